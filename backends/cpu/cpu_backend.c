/*
 * cpu_backend.c — the CPU reference backend's table, context and memory.
 * The arithmetic lives in cpu_linalg.c (GEMM, Hessian, Cholesky, dot),
 * cpu_quant.c (grids, the GPTQ block) and cpu_forward.c (model ops).
 * Why its results are bit-exact: see cpu_impl.h.
 */
#include <cblas.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "cpu_impl.h"

int cpu_fail(cpu_ctx *c, int status, const char *fmt, ...)
{
    if (c) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, sizeof c->err, fmt, ap);
        va_end(ap);
    }
    return status;
}

int cpu_range(cpu_ctx *c, const gptq_buf *b, size_t off, int64_t n, size_t esize,
              const char *op, const char *what)
{
    if (!b) return cpu_fail(c, GPTQ_ERR_INVALID, "%s: %s is NULL", op, what);
    if (n < 0) return cpu_fail(c, GPTQ_ERR_SHAPE, "%s: %s: negative size", op, what);
    size_t end = (off + (size_t)n) * esize;
    if (end / esize < off || end > b->nbytes)
        return cpu_fail(c, GPTQ_ERR_SHAPE,
                        "%s: %s: elements [%zu, %zu) of %zu bytes lie outside the buffer "
                        "(%zu bytes)",
                        op, what, off, off + (size_t)n, esize, b->nbytes);
    return GPTQ_OK;
}

static int cpu_create(void **ctx)
{
    cpu_ctx *c = calloc(1, sizeof *c);
    if (!c) return GPTQ_ERR_NOMEM;
    /* Tiles are spread over OpenMP threads; each BLAS call runs on one
     * thread so its result cannot depend on a thread partition. */
    openblas_set_num_threads(1);
    *ctx = c;
    return GPTQ_OK;
}

static void cpu_destroy(void *ctx)
{
    if (ctx) free(((cpu_ctx *)ctx)->w4_scratch);
    free(ctx);
}

static const char *cpu_error(void *ctx) { return ctx ? ((cpu_ctx *)ctx)->err : ""; }

static int cpu_alloc(void *ctx, size_t nbytes, gptq_buf **out)
{
    *out = NULL;
    gptq_buf *b = malloc(sizeof *b);
    size_t padded = (nbytes + 63) / 64 * 64;
    if (padded < nbytes) return cpu_fail(ctx, GPTQ_ERR_NOMEM, "size overflow (%zu bytes)", nbytes);
    void *data = b ? aligned_alloc(64, padded ? padded : 64) : NULL;
    if (!data) {
        free(b);
        return cpu_fail(ctx, GPTQ_ERR_NOMEM, "out of host memory (%zu bytes)", nbytes);
    }
    memset(data, 0, padded ? padded : 64);
    b->nbytes = nbytes;
    b->data = data;
    *out = b;
    return GPTQ_OK;
}

static void cpu_free(void *ctx, gptq_buf *b)
{
    (void)ctx;
    if (!b) return;
    free(b->data);
    free(b);
}

static int check_range(cpu_ctx *c, const gptq_buf *b, size_t off, size_t n, const char *op)
{
    if (!b) return cpu_fail(c, GPTQ_ERR_INVALID, "%s: NULL buffer", op);
    if (off > b->nbytes || n > b->nbytes - off)
        return cpu_fail(c, GPTQ_ERR_INVALID, "%s: bytes [%zu, %zu) outside a buffer of %zu", op,
                        off, off + n, b->nbytes);
    return GPTQ_OK;
}

/* memcpy spread over threads for large copies (calibration activations
 * are hundreds of MB; one core copies them at a fraction of the memory
 * bandwidth). Bytes are bytes: the result does not depend on the split. */
static void par_copy(void *dst, const void *src, size_t n)
{
    const size_t chunk = (size_t)1 << 20;
    if (n < 8 * chunk) {
        memcpy(dst, src, n);
        return;
    }
    const int64_t nchunks = (int64_t)((n + chunk - 1) / chunk);
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < nchunks; c++) {
        size_t at = (size_t)c * chunk, len = n - at < chunk ? n - at : chunk;
        memcpy((unsigned char *)dst + at, (const unsigned char *)src + at, len);
    }
}

static int cpu_upload(void *ctx, gptq_buf *dst, size_t off, const void *src, size_t n)
{
    int st = check_range(ctx, dst, off, n, "upload");
    if (st) return st;
    if (n) par_copy(dst->data + off, src, n);
    return GPTQ_OK;
}

static int cpu_download(void *ctx, const gptq_buf *src, size_t off, void *dst, size_t n)
{
    int st = check_range(ctx, src, off, n, "download");
    if (st) return st;
    if (n) par_copy(dst, src->data + off, n);
    return GPTQ_OK;
}

static int cpu_copy(void *ctx, gptq_buf *dst, size_t doff, const gptq_buf *src, size_t soff,
                    size_t n)
{
    int st = check_range(ctx, dst, doff, n, "copy");
    if (!st) st = check_range(ctx, src, soff, n, "copy");
    if (st) return st;
    if (n) memmove(dst->data + doff, src->data + soff, n);
    return GPTQ_OK;
}

static int cpu_sync(void *ctx)
{
    (void)ctx;
    return GPTQ_OK;
}

static const gptq_backend_iface k_cpu_iface = {
    .abi_version = GPTQ_BACKEND_ABI_VERSION,
    .struct_size = sizeof(gptq_backend_iface),
    .name = "cpu",
    .description = "OpenBLAS + LAPACKE + OpenMP reference (bit-exact for any thread count)",
    .create = cpu_create,
    .destroy = cpu_destroy,
    .error = cpu_error,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_upload,
    .download = cpu_download,
    .copy = cpu_copy,
    .sync = cpu_sync,
    .mem_info = NULL,
    .gemm = cpu_gemm,
    .hessian_accumulate = cpu_hessian_accumulate,
    .cholesky_inverse_upper = cpu_cholesky_inverse_upper,
    .quant_grid = cpu_quant_grid,
    .gptq_block = cpu_gptq_block,
    .hessian_finish = cpu_hessian_finish,
    .dot = cpu_dot,
    .dead_columns = cpu_dead_columns,
    /* forward ops: cpu_forward.c */
    .embedding = cpu_embedding,
    .rmsnorm = cpu_rmsnorm,
    .layernorm = cpu_layernorm,
    .rope = cpu_rope,
    .attention = cpu_attention,
    .silu_mul = cpu_silu_mul,
    .relu = cpu_relu,
    .add = cpu_add,
    .bias_add = cpu_bias_add,
    .cross_entropy = cpu_cross_entropy,
    /* packed tensors: cpu_packed.c */
    .pack_codes = cpu_pack_codes,
    .dequantize = cpu_dequantize,
    .matmul_q = cpu_matmul_q,
    .gather = cpu_gather,
    .to_f32 = cpu_to_f32,
    .supports_op = NULL, /* every filled slot runs */
    .gelu_tanh_mul = cpu_gelu_tanh_mul,
    .scale = cpu_scale,
    .softcap = cpu_softcap,
    /* the fast A16 matmul: cpu_w4a16.c */
    .matmul_q_fast = cpu_matmul_q_fast,
    .attention_kv = cpu_attention_kv,
};

const gptq_backend_iface *gptq_cpu_backend_iface(void) { return &k_cpu_iface; }
