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

/* Columns [c0, c1) of Y (M, N) f32, every m, without the bias:
 *   Y[m][n] = sum over k of xh[m][k] * s[g][n] * (q[k][n] - z[g][n]), g = g_idx[k],
 * summed block by block (each output's order fixed by n, M and the ISA, never
 * by the thread count). c0 and c1 are multiples of the ISA's tile width
 * (W4_NT_*). zt and st (ngroups, c1 - c0) f32 are scratch for the zero
 * points and scales of these columns. */
typedef void (*w4_tiles_fn)(const w4_job *j, int64_t c0, int64_t c1, float *zt, float *st,
                            float *Y);

void cpu_w4_tiles_generic(const w4_job *j, int64_t c0, int64_t c1, float *zt, float *st, float *Y);
void cpu_w4_tiles_avx2(const w4_job *j, int64_t c0, int64_t c1, float *zt, float *st, float *Y);
void cpu_w4_tiles_avx512(const w4_job *j, int64_t c0, int64_t c1, float *zt, float *st, float *Y);

/* Columns per tile: 2 vectors of 4 (generic), 8 (AVX2) or 16 (AVX-512) lanes. */
enum { W4_NT_GENERIC = 8, W4_NT_AVX2 = 16, W4_NT_AVX512 = 32 };

#endif /* GPTQ_CPU_W4A16_H */
