/*
 * cpu_w4a16_kernel.h — the tile loop of the fast A16 matmul, written once
 * with GCC/Clang vector extensions and compiled once per ISA. The file that
 * includes it defines:
 *   W4_VW       lanes per vector (4 generic, 8 AVX2, 16 AVX-512)
 *   W4_VF       the f32 vector type of W4_VW lanes
 *   W4_ATTR     the attribute of every function here (a target(...) or nothing)
 *   W4_FMA(a, b, c), W4_SPLAT(x)   a * b + c and a broadcast
 *   W4_ENTRY    the name of the entry (cpu_w4a16.h declares it)
 * and includes it once. cpu_w4a16.h states what the entry computes.
 *
 * How it reads the packed weight: a tile is NV = 2 vectors of columns; for
 * each block of 32 k (b words of qweight per column) value i of the block
 * is, in every lane, (word[i*b / 32] >> (i*b % 32)) & (2^b - 1) (3-bit
 * values 10 and 21 take their high bits from the next word): one shift and
 * one mask per 32-bit lane, the words loaded straight from qweight. q - z is
 * formed exactly in f32 (q_minus_z); xh * (q - z) is exact in f32
 * (an fp16 significand of 11 bits times an integer of at most 9 bits), so
 * the only roundings are the sums: a block whose 32 k share one group
 * (every block when g_idx is k / G with G a multiple of 32) sums
 * xh * (q - z) in registers (two chains for one row of X, to hide the FMA
 * latency) and adds s * sum to Y in one FMA; any other block (act-order,
 * G = 16, the short last block) multiplies each (q - z) by its own group's
 * scale (exact) before its FMA.
 *
 * Loop order, for memory: a thread owns columns [c0, c1); for each chunk of
 * W4_KB blocks it sweeps its tiles, so each qweight row it reads is one
 * contiguous run of (c1 - c0) words (hardware prefetchers follow it, few
 * pages in flight), and Y's (M, c1 - c0) running sums stay in cache.
 */
#include <stdint.h>
#include <string.h>

#include "cpu_w4a16.h"

#define NV 2                /* vectors per tile */
#define NT (NV * W4_VW)     /* columns per tile */
#define W4_KB 4             /* blocks per chunk: 128 k */
#define W4_INLINE static inline __attribute__((always_inline)) W4_ATTR

typedef W4_VF vf;
typedef uint32_t vu __attribute__((vector_size(W4_VW * 4)));

W4_INLINE vu ld_u(const uint32_t *p)
{
    vu v;
    memcpy(&v, p, sizeof v);
    return v;
}

W4_INLINE vf ld_f(const float *p)
{
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

W4_INLINE void st_f(float *p, vf v) { memcpy(p, &v, sizeof v); }

/* Value i (0 <= i < 32) of a block for the W4_VW columns whose first block
 * word is at p (the block's b words of a column lie N words apart). */
W4_INLINE vu value(const uint32_t *p, int64_t N, int i, int b)
{
    const int t = i * b, w = t >> 5, sh = t & 31;
    vu v = ld_u(p + w * N) >> sh;
    if (sh + b > 32) v |= ld_u(p + (w + 1) * N) << (32 - sh);
    return v & ((1u << b) - 1u);
}

/* q - z in f32, exactly, without an int-to-float conversion: the bits of
 * 2^23 + q are 0x4B000000 | q (q < 2^23), so one OR makes the float 2^23 + q,
 * and subtracting zf = 2^23 + z (exact) leaves q - z (|q - z| <= 256: exact).
 * On AVX-512 the mask and the OR are one vpternlogd. */
W4_INLINE vf q_minus_z(vu q, vf zf) { return (vf)(q | 0x4B000000u) - zf; }

/* Zero points as 2^23 + z (zero_add included; q_minus_z) and f32 scales of
 * columns [c0, c1) for every group: zt, st (ngroups, c1 - c0). */
static W4_ATTR void prep(const w4_job *j, int64_t c0, int64_t c1, float *zt, float *st)
{
    const int b = j->bits;
    const int64_t N = j->N, ld = c1 - c0, zw = N * b / 32;
    const uint32_t mask = (1u << b) - 1u;
    for (int64_t g = 0; g < j->ngroups; g++) {
        const uint32_t *row = j->qz + g * zw; // (N*b/32) one stream of N zeros
        float *z = zt + g * ld;
        for (int64_t n = c0; n < c1; n++) {
            const int64_t t = n * b;
            const int sh = (int)(t & 31);
            uint64_t v = row[t >> 5] >> sh;
            if (sh + b > 32) v |= (uint64_t)row[(t >> 5) + 1] << (32 - sh);
            z[n - c0] = 0x1p23f + (float)((int32_t)(v & mask) + j->zero_add);
        }
        const uint16_t *s16 = j->sc + g * N + c0;
        float *s = st + g * ld;
        for (int64_t n = 0; n < ld; n++) {
            _Float16 h;
            memcpy(&h, &s16[n], sizeof h);
            s[n] = (float)h;
        }
    }
}

/* Decode (M = 1): the block's weights go from qweight straight into the
 * FMAs. A block whose 32 k share one group: sum[v] = sum_i xh[i] (q_i - z)
 * for vector v of the tile, z the group's zero points of the tile's
 * columns; two chains per vector hide the FMA latency. */
W4_INLINE void dot_uniform(const uint32_t *p, int64_t N, const int b, const float *x,
                           const float *z, vf sum[NV])
{
    vf acc[NV][2], zv[NV];
    for (int v = 0; v < NV; v++) {
        zv[v] = ld_f(z + v * W4_VW);
        acc[v][0] = acc[v][1] = (vf){0};
    }
#pragma GCC unroll 32
    for (int i = 0; i < 32; i++) {
        const vf xi = W4_SPLAT(x[i]);
        for (int v = 0; v < NV; v++) {
            const vf w = q_minus_z(value(p + v * W4_VW, N, i, b), zv[v]);
            acc[v][i & 1] = W4_FMA(xi, w, acc[v][i & 1]);
        }
    }
    for (int v = 0; v < NV; v++) sum[v] = acc[v][0] + acc[v][1];
}

/* Any other block (nv <= 32 values): sum[v] = sum_i xh[i] s_g (q_i - z_g),
 * g = gi[i], each (q - z) times its scale (exact) before the FMA. zt, st:
 * the tile's first column in the (ngroups, ld) tables. */
W4_INLINE void dot_scattered(const uint32_t *p, int64_t N, const int b, const float *x, int nv,
                             const int32_t *gi, const float *zt, const float *st, int64_t ld,
                             vf sum[NV])
{
    for (int v = 0; v < NV; v++) sum[v] = (vf){0};
    for (int i = 0; i < nv; i++) {
        const int64_t g = gi[i];
        const vf xi = W4_SPLAT(x[i]);
        for (int v = 0; v < NV; v++) {
            const vf w = q_minus_z(value(p + v * W4_VW, N, i, b), ld_f(zt + g * ld + v * W4_VW)) *
                         ld_f(st + g * ld + v * W4_VW);
            sum[v] = W4_FMA(xi, w, sum[v]);
        }
    }
}

/* Prefill (M > 1): the block is decoded once into wq (32, NT) f32, then
 * every row of X reads it from L1. A block sharing group g holds q - z
 * (exact integers; s is applied to each row's sum), any other block
 * s_g (q - z_g) (exact). */
W4_INLINE void decode_block(const uint32_t *p, int64_t N, const int b, int nv, int64_t g,
                            const int32_t *gi, const float *zt, const float *st, int64_t ld,
                            float *wq)
{
    if (g >= 0) {
        vf zv[NV];
        for (int v = 0; v < NV; v++) zv[v] = ld_f(zt + g * ld + v * W4_VW);
#pragma GCC unroll 32
        for (int i = 0; i < 32; i++)
            for (int v = 0; v < NV; v++)
                st_f(wq + i * NT + v * W4_VW, q_minus_z(value(p + v * W4_VW, N, i, b), zv[v]));
        return;
    }
    for (int i = 0; i < nv; i++) {
        const int64_t gg = gi[i];
        for (int v = 0; v < NV; v++)
            st_f(wq + i * NT + v * W4_VW,
                 q_minus_z(value(p + v * W4_VW, N, i, b), ld_f(zt + gg * ld + v * W4_VW)) *
                     ld_f(st + gg * ld + v * W4_VW));
    }
}

/* sum[m][v] = sum_i xh[m][i] wq[i][v] for MT rows of X (x, rows K apart):
 * one chain per output, MT * NV of them. */
W4_INLINE void dot_rows(const float *wq, int nv, const int MT, const float *x, int64_t K,
                        vf sum[4][NV])
{
    for (int m = 0; m < MT; m++)
        for (int v = 0; v < NV; v++) sum[m][v] = (vf){0};
#pragma GCC unroll 4
    for (int i = 0; i < nv; i++) {
        vf w[NV];
        for (int v = 0; v < NV; v++) w[v] = ld_f(wq + i * NT + v * W4_VW);
        for (int m = 0; m < MT; m++) {
            const vf xi = W4_SPLAT(x[m * K + i]);
            for (int v = 0; v < NV; v++) sum[m][v] = W4_FMA(xi, w[v], sum[m][v]);
        }
    }
}

/* Y[m][tile] += s_g sum[m] (a block of one group g: st_g the group's scales
 * of the tile) or += sum[m] (any other block: st_g NULL). */
W4_INLINE void add_rows(float *y, int64_t N, const int MT, const float *st_g, vf sum[4][NV])
{
    for (int m = 0; m < MT; m++)
        for (int v = 0; v < NV; v++) {
            float *yv = y + m * N + v * W4_VW;
            if (st_g) st_f(yv, W4_FMA(ld_f(st_g + v * W4_VW), sum[m][v], ld_f(yv)));
            else st_f(yv, ld_f(yv) + sum[m][v]);
        }
}

/* Columns [c0, c1) of every row of Y. */
W4_INLINE void tiles(const w4_job *j, const int b, int64_t c0, int64_t c1, const float *zt,
                     const float *st, float *Y)
{
    const int64_t N = j->N, K = j->K, M = j->M, ld = c1 - c0;
    float wq[32 * NT]; // (32, NT) one decoded block (prefill)
    for (int64_t m = 0; m < M; m++) memset(Y + m * N + c0, 0, (size_t)ld * sizeof(float));
    for (int64_t blk0 = 0; blk0 < j->nblk; blk0 += W4_KB) {
        const int64_t blk1 = blk0 + W4_KB < j->nblk ? blk0 + W4_KB : j->nblk;
        for (int64_t n0 = c0; n0 < c1; n0 += NT) {
            const int64_t col = n0 - c0;
            for (int64_t blk = blk0; blk < blk1; blk++) {
                const uint32_t *p = j->qw + blk * b * N + n0; // the block's first word row
                const float *x = j->xh + blk * 32;             // (M, K) from k = 32 blk
                const int64_t g = j->bgroup[blk];
                const int nv = (int)(K - blk * 32 < 32 ? K - blk * 32 : 32);
                const float *st_g = g >= 0 ? st + g * ld + col : NULL;
                if (M == 1) {
                    vf sum[4][NV];
                    if (g >= 0) dot_uniform(p, N, b, x, zt + g * ld + col, sum[0]);
                    else dot_scattered(p, N, b, x, nv, j->g_idx + blk * 32, zt + col, st + col,
                                       ld, sum[0]);
                    add_rows(Y + n0, N, 1, st_g, sum);
                    continue;
                }
                decode_block(p, N, b, nv, g, j->g_idx + blk * 32, zt + col, st + col, ld, wq);
                for (int64_t m0 = 0; m0 < M;) {
                    vf sum[4][NV];
                    const int64_t left = M - m0;
                    const int MT = left >= 4 ? 4 : left >= 2 ? 2 : 1;
                    if (MT == 4) dot_rows(wq, nv, 4, x + m0 * K, K, sum);
                    else if (MT == 2) dot_rows(wq, nv, 2, x + m0 * K, K, sum);
                    else dot_rows(wq, nv, 1, x + m0 * K, K, sum);
                    add_rows(Y + m0 * N + n0, N, MT, st_g, sum);
                    m0 += MT;
                }
            }
        }
    }
}

W4_ATTR void W4_ENTRY(const w4_job *j, int64_t c0, int64_t c1, float *zt, float *st, float *Y)
{
    prep(j, c0, c1, zt, st);
    switch (j->bits) {
    case 2: tiles(j, 2, c0, c1, zt, st, Y); break;
    case 3: tiles(j, 3, c0, c1, zt, st, Y); break;
    case 4: tiles(j, 4, c0, c1, zt, st, Y); break;
    case 8: tiles(j, 8, c0, c1, zt, st, Y); break;
    default: break; /* the caller checked bits */
    }
}
