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
 * ISA's tile width) take matmul_q's own arithmetic.
 *
 * How the work is split (one OpenMP region per call, a static split of
 * units, no other barrier than the one before a reduction):
 *   decode (M = 1), g_idx spanning at most W4_SLAB_MAXG groups in every
 *     slab of W4_SLAB blocks (every checkpoint without act-order): units are
 *     (slab, 1024 columns); each writes its slab's partial sums of its
 *     columns into P (nslab, N), then, after one barrier, Y[n] = P[0][n] +
 *     P[1][n] + ... in slab order. A thread so reads qweight as runs of
 *     4 KiB (its unit's b rows side by side, block after block), not as the
 *     short pieces of many rows a split of N alone gives at 16 threads (a
 *     7B layer's 4096 columns are 1 KiB of words per thread), which the
 *     hardware prefetchers barely follow.
 *   anything else (prefill, act-order decode): one slab of every block;
 *     units are runs of whole tiles, one per thread.
 * The slabs depend on K, M and g_idx only (the column split may follow the
 * thread count), so each output's order depends on its column, its slab's
 * blocks, M and the ISA, never on the thread count: the bytes are the same
 * for any OMP_NUM_THREADS. X and the bias are rounded to fp16 by the ISA's
 * own conversions (F16C on the SIMD paths). The scratch (X in fp16, partial
 * sums, each thread's zero/scale tables) is the context's, kept from call to
 * call (a decode step makes hundreds of calls).
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
    w4_unit_fn unit;
    w4_round_fn round; /* X and the bias to fp16 (F16C on the SIMD paths) */
    int64_t nt;        /* columns per tile */
} w4_isa;

/* In order of preference: auto takes the last one the CPU runs. */
static const w4_isa k_isas[] = {
    {"generic", cpu_w4_unit_generic, cpu_w4_round_generic, W4_NT_GENERIC},
#if defined(__x86_64__)
    {"avx2", cpu_w4_unit_avx2, cpu_w4_round_avx2, W4_NT_AVX2},
    {"avx512", cpu_w4_unit_avx512, cpu_w4_round_avx512, W4_NT_AVX512},
#endif
};
enum { W4_NISA = sizeof k_isas / sizeof *k_isas };

static int isa_runs(const w4_isa *isa)
{
#if defined(__x86_64__)
    const int fma_f16c = __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    if (isa->unit == cpu_w4_unit_avx2) return __builtin_cpu_supports("avx2") && fma_f16c;
    if (isa->unit == cpu_w4_unit_avx512) return __builtin_cpu_supports("avx512f") && fma_f16c;
#endif
    return isa->unit == cpu_w4_unit_generic;
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

enum {
    W4_SLAB = 8,       /* decode: blocks per slab (256 k; two groups of 128) */
    W4_SLAB_MAXG = 16, /* decode: most groups a slab may use (else one slab) */
    W4_CW = 1024       /* decode: columns per unit (4 KiB of words per qweight row) */
};

/* Groups [span[2s], span[2s + 1]) used by slab s (blocks [s*slab, (s+1)*slab),
 * from the blocks' own spans bspan); returns the widest. */
static int64_t slab_spans(const int32_t *bspan, int64_t nblk, int64_t slab, int32_t *span)
{
    int64_t widest = 0;
    for (int64_t s = 0; s * slab < nblk; s++) {
        const int64_t b1 = (s + 1) * slab < nblk ? (s + 1) * slab : nblk;
        int32_t lo = bspan[2 * s * slab], hi = bspan[2 * s * slab + 1];
        for (int64_t b = s * slab; b < b1; b++) {
            lo = bspan[2 * b] < lo ? bspan[2 * b] : lo;
            hi = bspan[2 * b + 1] > hi ? bspan[2 * b + 1] : hi;
        }
        span[2 * s] = lo;
        span[2 * s + 1] = hi;
        widest = hi - lo > widest ? hi - lo : widest;
    }
    return widest;
}

/* The context's scratch, at least n floats. */
static float *scratch(cpu_ctx *c, size_t n)
{
    if (n > c->w4_n) {
        free(c->w4_scratch);
        c->w4_scratch = malloc(n * sizeof(float));
        c->w4_n = c->w4_scratch ? n : 0;
    }
    return c->w4_scratch;
}

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
    const int64_t K = q->K, N = q->N, nblk = (K + 31) / 32, nt = isa->nt;
    st = cpu_range(c, X, x_off, M * K, 4, op, "X");
    if (!st) st = cpu_range(c, Y, y_off, M * N, 4, op, "Y");
    if (!st && bias) st = cpu_range(c, bias, 0, N, 4, op, "bias");
    if (st) return st;
    if (impl) *impl = isa->name;
    if (M == 0) return GPTQ_OK;

    const int32_t *gi = (const int32_t *)(const void *)q->g_idx->data;
    int64_t nth = 1;
#ifdef _OPENMP
    nth = omp_get_max_threads();
#endif
    /* Per block: its groups [bspan[2b], bspan[2b + 1]) and bgroup[b], the
     * group all of its 32 k share or -1 (one pass over g_idx); then per
     * slab: span. */
    int32_t *ints = malloc((size_t)(5 * nblk) * sizeof(int32_t));
    if (!ints) return cpu_fail(c, GPTQ_ERR_NOMEM, "%s: no memory for the block tables", op);
    int32_t *bspan = ints, *span = ints + 2 * nblk, *bgroup = ints + 4 * nblk;
    for (int64_t blk = 0; blk < nblk; blk++) {
        const int64_t k0 = 32 * blk, k1 = k0 + 32 < K ? k0 + 32 : K;
        int32_t lo = gi[k0], hi = gi[k0];
        for (int64_t k = k0 + 1; k < k1; k++) {
            lo = gi[k] < lo ? gi[k] : lo;
            hi = gi[k] > hi ? gi[k] : hi;
        }
        bspan[2 * blk] = lo;
        bspan[2 * blk + 1] = hi + 1;
        bgroup[blk] = lo == hi && k1 - k0 == 32 ? lo : -1;
    }
    /* The units: slabs of W4_SLAB blocks by W4_CW columns (decode, narrow
     * spans), else one slab of every block by a thread's share of the tiles. */
    const int64_t ntiles = N / nt, nmain = ntiles * nt;
    int64_t slab = nblk, cw = (ntiles + nth - 1) / nth * nt, widest = 0;
    if (M == 1 && nblk > W4_SLAB && nmain > 0) {
        widest = slab_spans(bspan, nblk, W4_SLAB, span);
        if (widest <= W4_SLAB_MAXG) {
            slab = W4_SLAB;
            cw = W4_CW;
        }
    }
    if (slab == nblk) widest = slab_spans(bspan, nblk, nblk, span);
    const int64_t nslab = (nblk + slab - 1) / slab, nchunk = cw > 0 ? (nmain + cw - 1) / cw : 0,
                  nunit = nslab * nchunk;

    /* Scratch: xh (M, K); P (nslab, N) when nslab > 1; bh (N) the bias in
     * fp16; per thread zt and st (widest, cw); wrow (K) for the tail columns. */
    const size_t tsz = (size_t)(widest * cw), np = nslab > 1 ? (size_t)(nslab * N) : 0;
    float *mem = scratch(c, (size_t)(M * K) + np + (size_t)N + 2 * tsz * (size_t)nth +
                                (size_t)K);
    if (!mem) {
        free(ints);
        return cpu_fail(c, GPTQ_ERR_NOMEM, "%s: no memory for X in fp16 and the partial sums "
                        "(%lld floats)", op, (long long)(M * K + (int64_t)np));
    }
    float *xh = mem, *P = xh + M * K, *bh = P + np, *tables = bh + N,
          *wrow = tables + 2 * tsz * (size_t)nth;
    isa->round(CPU_CF32(X, x_off), xh, M * K);
    const w4_job job = {.bits = q->bits, .zero_add = q->zero_add, .K = K, .N = N, .M = M,
                        .ngroups = q->ngroups,
                        .qw = (const uint32_t *)(const void *)q->qweight->data,
                        .qz = (const uint32_t *)(const void *)q->qzeros->data,
                        .sc = (const uint16_t *)(const void *)q->scales->data, .g_idx = gi,
                        .xh = xh, .bgroup = bgroup, .nblk = nblk};
    float *y = CPU_F32(Y, y_off);

#pragma omp parallel num_threads((int)nth) if (nunit > 1 && M * K * N > (1 << 16))
    {
        int64_t tn = 1, t = 0;
#ifdef _OPENMP
        tn = omp_get_num_threads();
        t = omp_get_thread_num();
#endif
        float *zt = tables + 2 * tsz * (size_t)t, *stab = zt + tsz;
        for (int64_t i = nunit * t / tn; i < nunit * (t + 1) / tn; i++) {
            const int64_t s = i / nchunk, ch = i % nchunk;
            const w4_unit u = {.n0 = ch * cw, .n1 = (ch + 1) * cw < nmain ? (ch + 1) * cw : nmain,
                               .blk0 = s * slab,
                               .blk1 = (s + 1) * slab < nblk ? (s + 1) * slab : nblk,
                               .g0 = span[2 * s], .g1 = span[2 * s + 1]};
            isa->unit(&job, &u, zt, stab, nslab > 1 ? P + s * N : y, N);
        }
        if (nslab > 1) {
            /* every slab's partial sums are in P: add them in slab order */
#pragma omp barrier
            for (int64_t n = ntiles * t / tn * nt; n < ntiles * (t + 1) / tn * nt; n++) {
                float sum = P[n];
                for (int64_t sl = 1; sl < nslab; sl++) sum += P[sl * N + n];
                y[n] = sum;
            }
        }
    }
    free(ints);
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
        isa->round(CPU_CF32(bias, 0), bh, N);
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) y[m * N + n] += bh[n];
    }
    return GPTQ_OK;
}
