/*
 * example_backend.c — a gptq-c backend plugin built outside the source
 * tree, against the INSTALLED headers and libgptq (pkg-config gptq):
 *
 *     meson setup build && ninja -C build          (meson.build beside this)
 *     gptq layer IN.safetensors -o OUT.safetensors --backend build/libgptq-example.so
 *
 * It starts from the reference CPU backend's table (gptq_cpu_backend_iface,
 * exported by libgptq), wraps one op (gemm: counted, then passed on),
 * declines an optional one at run time (linear_fast, through supports_op:
 * the core then takes the path it takes for an empty slot) and states the
 * ABI it was built for. A real backend fills every slot with its own code,
 * the same way: designated initializers or a copy, one exported entry.
 * With GPTQ_EXAMPLE_VERBOSE set it prints how many gemm calls it wrapped
 * when the backend is closed.
 */
#include <stdio.h>
#include <stdlib.h>

#include <gptq/backend.h>

/* the one symbol a plugin exports (the loader looks it up with dlsym) */
__attribute__((visibility("default"))) const gptq_backend_iface *gptq_backend_entry(void);

static const gptq_backend_iface *g_cpu; /* the table this one wraps */
static long g_gemm_calls;

static int example_gemm(void *ctx, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                        float alpha, const gptq_buf *A, size_t a_off, int64_t lda,
                        const gptq_buf *B, size_t b_off, int64_t ldb, float beta, gptq_buf *C,
                        size_t c_off, int64_t ldc)
{
    g_gemm_calls++;
    return g_cpu->gemm(ctx, trans_a, trans_b, M, N, K, alpha, A, a_off, lda, B, b_off, ldb, beta,
                       C, c_off, ldc);
}

static void example_destroy(void *ctx)
{
    if (getenv("GPTQ_EXAMPLE_VERBOSE"))
        fprintf(stderr, "example backend: %ld gemm calls wrapped\n", g_gemm_calls);
    g_cpu->destroy(ctx);
}

static int example_supports_op(void *ctx, gptq_op op)
{
    (void)ctx;
    return op != GPTQ_OP_LINEAR_FAST;
}

const gptq_backend_iface *gptq_backend_entry(void)
{
    static gptq_backend_iface t;
    g_cpu = gptq_cpu_backend_iface();
    t = *g_cpu;
    t.abi_version = GPTQ_BACKEND_ABI_VERSION; /* what this plugin was compiled against */
    t.struct_size = (uint32_t)sizeof t;
    t.name = "example";
    t.description = "out-of-tree example: the CPU backend with gemm wrapped, linear_fast declined";
    t.destroy = example_destroy;
    t.gemm = example_gemm;
    t.supports_op = example_supports_op;
    return &t;
}
