/*
 * cpu_w4a16.h — what the fast A16 matmul (cpu_w4a16.c) shares with its
 * per-ISA tile loops (cpu_w4a16_kernel.h, compiled once per ISA:
 * cpu_w4a16.c generic, cpu_w4a16_avx2.c, cpu_w4a16_avx512.c).
 *
 * Letters: K = in_features, N = out_features, M = rows of X, b = bits,
 * a block = 32 consecutive k (b words of every qweight column: 32 values of
 * b bits fill exactly b words, for every b, 3 included).
 */
#ifndef GPTQ_CPU_W4A16_H
#define GPTQ_CPU_W4A16_H

#include <stdint.h>

/* One call's inputs, prepared once before the threads start. */
typedef struct w4_job {
    int bits;
    int zero_add;            /* 1 for v1 ("gptq": stored z - 1), 0 for v2 */
    int64_t K, N, M, ngroups;
    const uint32_t *qw;      /* (K*b/32, N) qweight words */
    const uint32_t *qz;      /* (ngroups, N*b/32) qzeros words */
    const uint16_t *sc;      /* (ngroups, N) fp16 scales */
    const int32_t *g_idx;    /* (K) */
    const float *xh;         /* (M, K) X rounded to fp16 */
    const int32_t *bgroup;   /* (nblk) the group of every k of block i, or -1 when they differ
                                or the block is the short last one (K % 32 values) */
    int64_t nblk;            /* ceil(K / 32) */
} w4_job;

/* One piece of work: columns [n0, n1) (multiples of the ISA's tile width,
 * W4_NT_*) over blocks [blk0, blk1), whose k use groups [g0, g1) only. */
typedef struct w4_unit {
    int64_t n0, n1, blk0, blk1, g0, g1;
} w4_unit;

/* Sets Y[m * ldy + n] for n in [n0, n1), every m < M, to the unit's part of
 * the product, without the bias:
 *   sum over k of the unit's blocks of xh[m][k] * s[g][n] * (q[k][n] - z[g][n]), g = g_idx[k],
 * summed in an order fixed by n, the unit's blocks, M and the ISA (never by
 * the thread that runs it). zt and st ((g1 - g0) * (n1 - n0) f32 each) are
 * scratch for the zero points and scales of the unit. */
typedef void (*w4_unit_fn)(const w4_job *j, const w4_unit *u, float *zt, float *st, float *Y,
                           int64_t ldy);

void cpu_w4_unit_generic(const w4_job *j, const w4_unit *u, float *zt, float *st, float *Y,
                         int64_t ldy);
void cpu_w4_unit_avx2(const w4_job *j, const w4_unit *u, float *zt, float *st, float *Y,
                      int64_t ldy);
void cpu_w4_unit_avx512(const w4_job *j, const w4_unit *u, float *zt, float *st, float *Y,
                        int64_t ldy);

/* xh[i] = x[i] rounded to fp16 (nearest even), as f32, i < n. */
typedef void (*w4_round_fn)(const float *x, float *xh, int64_t n);

void cpu_w4_round_generic(const float *x, float *xh, int64_t n);
void cpu_w4_round_avx2(const float *x, float *xh, int64_t n);
void cpu_w4_round_avx512(const float *x, float *xh, int64_t n);

/* Columns per tile: 2 vectors of 4 (generic), 8 (AVX2) or 16 (AVX-512) lanes. */
enum { W4_NT_GENERIC = 8, W4_NT_AVX2 = 16, W4_NT_AVX512 = 32 };

#endif /* GPTQ_CPU_W4A16_H */
