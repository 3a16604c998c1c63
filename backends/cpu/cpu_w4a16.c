/*
 * cpu_w4a16.c — matmul_q_fast (backend.h, ABI 6): the A16 matmul read
 * straight from the GPTQ-packed weight (no dequantized copy), every layout
 * the formats allow: 2, 3, 4 and 8 bits, v1 and v2 zeros, any group size,
 * act-order g_idx. Decode (M = 1) and prefill (M > 1) share one tile loop
 * (cpu_w4a16_kernel.h), compiled for three ISAs:
 *
 *   generic  portable C (vector extensions of 4 lanes), no FMA
 *   avx2     AVX2 + FMA + F16C, 8 lanes            (x86-64 CPUs that have them)
 *   avx512   AVX-512F + FMA + F16C, 16 lanes       (x86-64 CPUs that have them)
 *
 * The best one the CPU runs is chosen at each call (__builtin_cpu_supports);
 * GPTQ_CPU_ISA=generic|avx2|avx512 forces one (a CPU without it: the call
 * fails with GPTQ_ERR_UNSUPPORTED naming what it runs), auto or unset picks.
 *
 * What it computes (backend.h states the contract and its error bound): X
 * rounded to fp16 as matmul_q does, each output's products summed tile by
 * tile and block by block (cpu_w4a16_kernel.h), then the fp16-rounded bias
 * added last. Columns beyond the last whole tile (N not a multiple of the
 * ISA's tile width) take matmul_q's own arithmetic. OpenMP spreads whole
 * tiles: an output's order depends on its column, M and the ISA, never on
 * the thread count, so the bytes are the same for any OMP_NUM_THREADS.
 */
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu_impl.h"
#include "cpu_w4a16.h"

typedef struct w4_isa {
    const char *name;
    w4_tiles_fn tiles;
    int64_t nt; /* columns per tile */
} w4_isa;

/* In order of preference: auto takes the last one the CPU runs. */
static const w4_isa k_isas[] = {
    {"generic", cpu_w4_tiles_generic, W4_NT_GENERIC},
#if defined(__x86_64__)
    {"avx2", cpu_w4_tiles_avx2, W4_NT_AVX2},
    {"avx512", cpu_w4_tiles_avx512, W4_NT_AVX512},
#endif
};
enum { W4_NISA = sizeof k_isas / sizeof *k_isas };

static int isa_runs(const w4_isa *isa)
{
#if defined(__x86_64__)
    const int fma_f16c = __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    if (isa->tiles == cpu_w4_tiles_avx2) return __builtin_cpu_supports("avx2") && fma_f16c;
    if (isa->tiles == cpu_w4_tiles_avx512) return __builtin_cpu_supports("avx512f") && fma_f16c;
#endif
    return isa->tiles == cpu_w4_tiles_generic;
}

/* The ISA of this call: $GPTQ_CPU_ISA, or the best the CPU runs. */
static int pick_isa(cpu_ctx *c, const char *op, const w4_isa **out)
{
    const char *want = getenv("GPTQ_CPU_ISA");
    if (!want || !want[0] || !strcmp(want, "auto")) {
        *out = &k_isas[0];
        for (int i = 0; i < W4_NISA; i++)
            if (isa_runs(&k_isas[i])) *out = &k_isas[i];
        return GPTQ_OK;
    }
    char runs[64] = "";
    for (int i = 0; i < W4_NISA; i++)
        if (isa_runs(&k_isas[i])) {
            strcat(runs, runs[0] ? ", " : "");
            strcat(runs, k_isas[i].name);
        }
    for (int i = 0; i < W4_NISA; i++)
        if (!strcmp(want, k_isas[i].name)) {
            if (!isa_runs(&k_isas[i]))
                return cpu_fail(c, GPTQ_ERR_UNSUPPORTED, "%s: GPTQ_CPU_ISA=%s: this CPU cannot "
                                "run it (it runs: %s)", op, want, runs);
            *out = &k_isas[i];
            return GPTQ_OK;
        }
    return cpu_fail(c, GPTQ_ERR_INVALID, "%s: GPTQ_CPU_ISA=%s is none of auto, generic, avx2, "
                    "avx512 (this build and CPU run: %s)", op, want, runs);
}

static float round_f16(float x) { return (float)(_Float16)x; }

int cpu_matmul_q_fast(void *ctx, const gptq_qtensor *q, const gptq_buf *X, size_t x_off,
                      int64_t M, const gptq_buf *bias, gptq_buf *Y, size_t y_off,
                      const char **impl)
{
    cpu_ctx *c = ctx;
    static const char op[] = "matmul_q_fast";
    const w4_isa *isa;
    int st = pick_isa(c, op, &isa);
    if (!st) st = cpu_check_q(c, q, op);
    if (st) return st;
    if (M < 0) return cpu_fail(c, GPTQ_ERR_SHAPE, "%s: M = %lld is negative", op, (long long)M);
    const int64_t K = q->K, N = q->N, nblk = (K + 31) / 32;
    st = cpu_range(c, X, x_off, M * K, 4, op, "X");
    if (!st) st = cpu_range(c, Y, y_off, M * N, 4, op, "Y");
    if (!st && bias) st = cpu_range(c, bias, 0, N, 4, op, "bias");
    if (st) return st;
    if (impl) *impl = isa->name;
    if (M == 0) return GPTQ_OK;

    /* One allocation: xh (M, K) X as fp16 values, bgroup (nblk), wrow (K) for the tail. */
    float *mem = malloc((size_t)(M * K + nblk + K) * sizeof(float));
    if (!mem) return cpu_fail(c, GPTQ_ERR_NOMEM, "%s: no memory for X in fp16 (%lld floats)",
                              op, (long long)(M * K));
    float *xh = mem;
    int32_t *bgroup = (int32_t *)(void *)(xh + M * K);
    float *wrow = (float *)(void *)(bgroup + nblk);
    const float *x = CPU_CF32(X, x_off);
    for (int64_t i = 0; i < M * K; i++) xh[i] = round_f16(x[i]);
    const int32_t *gi = (const int32_t *)(const void *)q->g_idx->data;
    for (int64_t blk = 0; blk < nblk; blk++) {
        const int64_t k0 = 32 * blk;
        int32_t g = k0 + 32 <= K ? gi[k0] : -1;
        for (int64_t k = k0 + 1; g >= 0 && k < k0 + 32; k++)
            if (gi[k] != g) g = -1;
        bgroup[blk] = g;
    }
    const w4_job job = {.bits = q->bits, .zero_add = q->zero_add, .K = K, .N = N, .M = M,
                        .ngroups = q->ngroups,
                        .qw = (const uint32_t *)(const void *)q->qweight->data,
                        .qz = (const uint32_t *)(const void *)q->qzeros->data,
                        .sc = (const uint16_t *)(const void *)q->scales->data, .g_idx = gi,
                        .xh = xh, .bgroup = bgroup, .nblk = nblk};
    float *y = CPU_F32(Y, y_off);

    /* Whole tiles, a contiguous run of them per thread. */
    const int64_t ntiles = N / isa->nt, nmain = ntiles * isa->nt;
    int nomem = 0;
#pragma omp parallel reduction(| : nomem) if (ntiles > 1 && M * K * N > (1 << 16))
    {
        int64_t nth = 1, t = 0;
#ifdef _OPENMP
        nth = omp_get_num_threads();
        t = omp_get_thread_num();
#endif
        const int64_t c0 = ntiles * t / nth * isa->nt, c1 = ntiles * (t + 1) / nth * isa->nt;
        if (c1 > c0) {
            /* zero points and scales of the thread's columns, (ngroups, c1 - c0) each */
            float *zt = malloc((size_t)(q->ngroups * (c1 - c0)) * 2 * sizeof(float));
            if (zt) isa->tiles(&job, c0, c1, zt, zt + q->ngroups * (c1 - c0), y);
            else nomem = 1;
            free(zt);
        }
    }
    if (nomem) {
        free(mem);
        return cpu_fail(c, GPTQ_ERR_NOMEM, "%s: no memory for the zero points and scales of "
                        "a thread's columns", op);
    }
    /* The last N % nt columns: matmul_q's arithmetic (k order, no FMA). */
    for (int64_t n = nmain; n < N; n++) {
        cpu_dequant_row(q, n, wrow);
        for (int64_t m = 0; m < M; m++) {
            const float *xr = xh + m * K;
            float acc = 0.0f;
            for (int64_t k = 0; k < K; k++) acc += xr[k] * wrow[k];
            y[m * N + n] = acc;
        }
    }
    if (bias) {
        const float *bs = CPU_CF32(bias, 0);
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) y[m * N + n] += round_f16(bs[n]);
    }
    free(mem);
    return GPTQ_OK;
}
