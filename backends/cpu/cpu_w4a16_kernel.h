/*
 * cpu_w4a16_kernel.h — the unit loop of the fast A16 matmul, written once
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
 * formed exactly in f32 (q_minus_z), and so is s * (q - z) (an fp16
 * significand of 11 bits times an integer of at most 9 bits).
 *
 * Decode (M = 1) reads every weight once and does 4 vector operations per
 * weight vector, so it must stream memory well: the unit's blocks are
 * walked one at a time across all of the unit's columns, i.e. b qweight
 * rows read side by side, each a contiguous run of n1 - n0 words (the
 * caller makes units 1024 columns wide: 4 KiB runs the hardware prefetchers
 * follow), and each tile prefetches the lines W4_PF words further along
 * that walk. xh * (q - z) is exact in f32, so a block whose 32 k share one
 * group (every block when g_idx is k / G with G a multiple of 32) sums
 * xh * (q - z) in registers (two chains per vector, to hide the FMA
 * latency) and adds s * sum to Y in one FMA; any other block (act-order,
 * G = 16, the short last block) multiplies each (q - z) by its own group's
 * scale (exact) before its FMA.
 *
 * Prefill (M > 1) is compute-bound: for each chunk of W4_KC blocks and each
 * tile the weights are dequantized once to s * (q - z) in f32 (exact) into
 * wq (L1), then a microkernel of MR rows of X (6, 4, 2 or 1) x NV vectors
 * runs the chunk's k in one FMA chain per output, accumulators in
 * registers, and adds each chain's sum to Y.
 */
#include <stdint.h>
#include <string.h>

#include "cpu_w4a16.h"

#define NV 2                /* vectors per tile */
#define NT (NV * W4_VW)     /* columns per tile */
#define W4_KC 4             /* prefill: blocks per dequantized chunk (128 k) */
/* decode: prefetch distance in words along the unit's walk (-DW4_PF=N tries
 * another: on device-cpu 0 and 2048 were slower than 512, bench/RESULTS.md) */
#ifndef W4_PF
#define W4_PF 512
#endif
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
 * the unit's columns for its groups: zt, st ((g1 - g0), n1 - n0). */
static W4_ATTR void prep(const w4_job *j, const w4_unit *u, float *zt, float *st)
{
    const int b = j->bits;
    const int64_t N = j->N, ld = u->n1 - u->n0, zw = N * b / 32;
    const uint32_t mask = (1u << b) - 1u;
    for (int64_t g = u->g0; g < u->g1; g++) {
        const uint32_t *row = j->qz + g * zw; // (N*b/32) one stream of N zeros
        float *z = zt + (g - u->g0) * ld;
        for (int64_t n = u->n0; n < u->n1; n++) {
            const int64_t t = n * b;
            const int sh = (int)(t & 31);
            uint64_t v = row[t >> 5] >> sh;
            if (sh + b > 32) v |= (uint64_t)row[(t >> 5) + 1] << (32 - sh);
            z[n - u->n0] = 0x1p23f + (float)((int32_t)(v & mask) + j->zero_add);
        }
        const uint16_t *s16 = j->sc + g * N + u->n0;
        float *s = st + (g - u->g0) * ld;
        for (int64_t n = 0; n < ld; n++) {
            _Float16 h;
            memcpy(&h, &s16[n], sizeof h);
            s[n] = (float)h;
        }
    }
}

/* Decode, a block whose 32 k share one group: sum[v] = sum_i xh[i] (q_i - z)
 * for vector v of the tile, z the group's zero points of the tile's columns;
 * two chains per vector hide the FMA latency. When b divides 32 each word of
 * the block is loaded once and its 32 / b values taken from it in turn
 * (short live ranges: no register spills). */
W4_INLINE void dot_uniform(const uint32_t *p, int64_t N, const int b, const float *x,
                           const float *z, vf sum[NV])
{
    vf acc[NV][2], zv[NV];
    for (int v = 0; v < NV; v++) {
        zv[v] = ld_f(z + v * W4_VW);
        acc[v][0] = acc[v][1] = (vf){0};
    }
    if (32 % b == 0) {
        const int per = 32 / b;
        const uint32_t mask = (1u << b) - 1u;
        for (int r = 0; r < b; r++) {
            vu wv[NV];
            for (int v = 0; v < NV; v++) wv[v] = ld_u(p + r * N + v * W4_VW);
#pragma GCC unroll 16
            for (int i = 0; i < per; i++) {
                const vf xi = W4_SPLAT(x[r * per + i]);
                for (int v = 0; v < NV; v++) {
                    const vf w = q_minus_z((wv[v] >> (i * b)) & mask, zv[v]);
                    acc[v][i & 1] = W4_FMA(xi, w, acc[v][i & 1]);
                }
            }
        }
    } else {
#pragma GCC unroll 32
        for (int i = 0; i < 32; i++) {
            const vf xi = W4_SPLAT(x[i]);
            for (int v = 0; v < NV; v++) {
                const vf w = q_minus_z(value(p + v * W4_VW, N, i, b), zv[v]);
                acc[v][i & 1] = W4_FMA(xi, w, acc[v][i & 1]);
            }
        }
    }
    for (int v = 0; v < NV; v++) sum[v] = acc[v][0] + acc[v][1];
}

/* Decode, any other block (nv <= 32 values): sum[v] = sum_i xh[i] s_g (q_i -
 * z_g), g = gi[i] - g0, each (q - z) times its scale (exact) before the FMA.
 * zt, st: the tile's first column in the (g1 - g0, ld) tables. */
W4_INLINE void dot_scattered(const uint32_t *p, int64_t N, const int b, const float *x, int nv,
                             const int32_t *gi, int64_t g0, const float *zt, const float *st,
                             int64_t ld, vf sum[NV])
{
    for (int v = 0; v < NV; v++) sum[v] = (vf){0};
    for (int i = 0; i < nv; i++) {
        const int64_t g = gi[i] - g0;
        const vf xi = W4_SPLAT(x[i]);
        for (int v = 0; v < NV; v++) {
            const vf w = q_minus_z(value(p + v * W4_VW, N, i, b), ld_f(zt + g * ld + v * W4_VW)) *
                         ld_f(st + g * ld + v * W4_VW);
            sum[v] = W4_FMA(xi, w, sum[v]);
        }
    }
}

/* Decode: the unit's blocks one after the other, each across all of the
 * unit's tiles; Y (one row) holds the running sums. */
W4_INLINE void unit_decode(const w4_job *j, const int b, const w4_unit *u, const float *zt,
                           const float *st, float *Y)
{
    const int64_t N = j->N, K = j->K, ld = u->n1 - u->n0;
    for (int64_t blk = u->blk0; blk < u->blk1; blk++) {
        const uint32_t *row = j->qw + blk * b * N; // the block's first word row
        const float *x = j->xh + blk * 32;
        const int64_t g = j->bgroup[blk];
        const int nv = (int)(K - blk * 32 < 32 ? K - blk * 32 : 32);
        for (int64_t n = u->n0; n < u->n1; n += NT) {
            /* the lines W4_PF words further along the walk (this block's rows,
             * then the next block's from the unit's first column) */
            const int64_t ahead = (blk - u->blk0) * ld + (n - u->n0) + W4_PF;
            const int64_t pb = u->blk0 + ahead / ld, pn = u->n0 + ahead % ld;
            if (pb < u->blk1)
                for (int r = 0; r < b; r++)
                    for (int o = 0; o < NT; o += 16)
                        __builtin_prefetch(j->qw + (pb * b + r) * N + pn + o, 0, 3);
            const int64_t col = n - u->n0;
            vf sum[NV];
            if (g >= 0) {
                dot_uniform(row + n, N, b, x, zt + (g - u->g0) * ld + col, sum);
                const float *sg = st + (g - u->g0) * ld + col;
                for (int v = 0; v < NV; v++)
                    st_f(Y + n + v * W4_VW,
                         W4_FMA(ld_f(sg + v * W4_VW), sum[v], ld_f(Y + n + v * W4_VW)));
            } else {
                dot_scattered(row + n, N, b, x, nv, j->g_idx + blk * 32, u->g0, zt + col,
                              st + col, ld, sum);
                for (int v = 0; v < NV; v++)
                    st_f(Y + n + v * W4_VW, ld_f(Y + n + v * W4_VW) + sum[v]);
            }
        }
    }
}

/* Prefill: wq (nk, NT) = s * (q - z) of one tile over the chunk's blocks
 * [c0, c1), exact in f32. */
W4_INLINE void dequant_chunk(const w4_job *j, const int b, const w4_unit *u, int64_t c0,
                             int64_t c1, int64_t n, const float *zt, const float *st, float *wq)
{
    const int64_t N = j->N, K = j->K, ld = u->n1 - u->n0, col = n - u->n0;
    for (int64_t blk = c0; blk < c1; blk++) {
        const uint32_t *p = j->qw + blk * b * N + n;
        float *w = wq + (blk - c0) * 32 * NT;
        const int64_t g = j->bgroup[blk];
        if (g >= 0) {
            vf zv[NV], sv[NV];
            for (int v = 0; v < NV; v++) {
                zv[v] = ld_f(zt + (g - u->g0) * ld + col + v * W4_VW);
                sv[v] = ld_f(st + (g - u->g0) * ld + col + v * W4_VW);
            }
#pragma GCC unroll 32
            for (int i = 0; i < 32; i++)
                for (int v = 0; v < NV; v++)
                    st_f(w + i * NT + v * W4_VW,
                         q_minus_z(value(p + v * W4_VW, N, i, b), zv[v]) * sv[v]);
            continue;
        }
        const int nv = (int)(K - blk * 32 < 32 ? K - blk * 32 : 32);
        for (int i = 0; i < nv; i++) {
            const int64_t gg = j->g_idx[blk * 32 + i] - u->g0;
            for (int v = 0; v < NV; v++)
                st_f(w + i * NT + v * W4_VW,
                     q_minus_z(value(p + v * W4_VW, N, i, b), ld_f(zt + gg * ld + col + v * W4_VW)) *
                         ld_f(st + gg * ld + col + v * W4_VW));
        }
    }
}

/* Prefill microkernel: Y[m][tile] += sum_i x[m][i] wq[i] for MR rows of X
 * (rows K apart) over nk k, one FMA chain per output (MR * NV chains in
 * registers). */
W4_INLINE void micro(const float *wq, int64_t nk, const int MR, const float *x, int64_t K,
                     float *Y, int64_t ldy)
{
    vf acc[6][NV];
    for (int m = 0; m < MR; m++)
        for (int v = 0; v < NV; v++) acc[m][v] = (vf){0};
#pragma GCC unroll 2
    for (int64_t i = 0; i < nk; i++) {
        vf w[NV];
        for (int v = 0; v < NV; v++) w[v] = ld_f(wq + i * NT + v * W4_VW);
        for (int m = 0; m < MR; m++) {
            const vf xi = W4_SPLAT(x[m * K + i]);
            for (int v = 0; v < NV; v++) acc[m][v] = W4_FMA(xi, w[v], acc[m][v]);
        }
    }
    for (int m = 0; m < MR; m++)
        for (int v = 0; v < NV; v++) {
            float *y = Y + m * ldy + v * W4_VW;
            st_f(y, ld_f(y) + acc[m][v]);
        }
}

W4_INLINE void unit_prefill(const w4_job *j, const int b, const w4_unit *u, const float *zt,
                            const float *st, float *Y, int64_t ldy)
{
    const int64_t K = j->K, M = j->M;
    float wq[W4_KC * 32 * NT]; // (W4_KC * 32, NT) one dequantized chunk of a tile
    for (int64_t c0 = u->blk0; c0 < u->blk1; c0 += W4_KC) {
        const int64_t c1 = c0 + W4_KC < u->blk1 ? c0 + W4_KC : u->blk1;
        const int64_t nk = (c1 * 32 < K ? c1 * 32 : K) - c0 * 32;
        const float *x = j->xh + c0 * 32;
        for (int64_t n = u->n0; n < u->n1; n += NT) {
            dequant_chunk(j, b, u, c0, c1, n, zt, st, wq);
            for (int64_t m = 0; m < M;) {
                const int64_t left = M - m;
                const int MR = left >= 6 ? 6 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
                float *y = Y + m * ldy + n;
                if (MR == 6) micro(wq, nk, 6, x + m * K, K, y, ldy);
                else if (MR == 4) micro(wq, nk, 4, x + m * K, K, y, ldy);
                else if (MR == 2) micro(wq, nk, 2, x + m * K, K, y, ldy);
                else micro(wq, nk, 1, x + m * K, K, y, ldy);
                m += MR;
            }
        }
    }
}

W4_INLINE void unit(const w4_job *j, const int b, const w4_unit *u, const float *zt,
                    const float *st, float *Y, int64_t ldy)
{
    if (j->M == 1) unit_decode(j, b, u, zt, st, Y);
    else unit_prefill(j, b, u, zt, st, Y, ldy);
}

W4_ATTR void W4_ENTRY(const w4_job *j, const w4_unit *u, float *zt, float *st, float *Y,
                      int64_t ldy)
{
    for (int64_t m = 0; m < j->M; m++)
        memset(Y + m * ldy + u->n0, 0, (size_t)(u->n1 - u->n0) * sizeof(float));
    prep(j, u, zt, st);
    switch (j->bits) {
    case 2: unit(j, 2, u, zt, st, Y, ldy); break;
    case 3: unit(j, 3, u, zt, st, Y, ldy); break;
    case 4: unit(j, 4, u, zt, st, Y, ldy); break;
    case 8: unit(j, 8, u, zt, st, Y, ldy); break;
    default: break; /* the caller checked bits */
    }
}
