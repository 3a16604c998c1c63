/*
 * hip_w4a16.hip — matmul_q_fast (backend.h, ABI 6): the A16 matmul read
 * straight from the GPTQ-packed weight, for decode and prefill.
 *
 * Three code paths (*impl names the one that ran):
 *
 *   gemv       M <= 8, 4 and 8 bits (every device). One block per 4 QB
 *              output columns (QB = 4, or 8 for wide N); 256 / QB k-slices,
 *              each a contiguous chunk of word rows; a thread reads (word
 *              row, 4 columns) as one 16-byte load of qweight, 4 loads in
 *              flight while the previous 4 are dequantized in registers, keeps
 *              (M, 4) f32 sums and its group's scales and zeros (loaded once
 *              per group); the slices are summed by a fixed tree in shared
 *              memory. Every weight byte is read once, coalesced (16 QB
 *              contiguous bytes of a word row per QB threads).
 *   gemm-mma   M > 8 (or GPTQ_HIP_W4A16=gemm), 4 and 8 bits, NVIDIA only:
 *              (64, 128) outputs per block, k-steps of 64. X is rounded to
 *              fp16 into shared memory, the weight tile is read once from
 *              global memory and dequantized to (q - z) in fp16 in shared
 *              memory, then mma.sync m16n8k16 (f16 inputs, f32 accumulator)
 *              per 16 k, and each 16-k result scaled into the f32 output.
 *   gemm-simt  everything else: (64, 64) outputs per block, 4 x 4 per thread,
 *              X (fp16 values) and the dequantized weight s (q - z) in f32
 *              staged 32 k at a time, f32 FMAs. The AMD path for M > 8, and
 *              the correct simple kernel of 2 and 3 bits at every M.
 *
 * GPTQ_HIP_W4A16 picks: auto (or unset): gemv for M <= 8, gemm-mma where
 * it exists, else gemm-simt; simt: never gemm-mma (the AMD paths, run and
 * tested on NVIDIA); gemm: never gemv (the GEMMs tested at small M).
 *
 * Why this meets backend.h's bound |Y - Y_matmul_q| <= 2 gamma(K+2) S,
 * S = sum_k |xh w| + |bh|. matmul_q's output has depth K + 1 (each term
 * passes through K + 1 roundings at most: its product, K - 1 sums, the
 * bias), so it lies within gamma(K+1) S of the exact sum; it is enough that
 * ours lies within gamma(K+2) S of it, i.e. that no term of ours passes
 * through more than K + 2 roundings (an FMA is one rounding, an exact
 * operation none, and adding an exact 0 none). The pieces that make it so:
 *   - (q - z) is an integer of at most 9 bits, exact in f32 and in fp16; xh
 *     has 11 significant bits, so xh (q - z) is exact in f32 (20 bits), and
 *     so is f32(scale) (q - z) (dequantize's own product).
 *   - gemv, a word whose k share one group: p = its KPW <= 8 exact products
 *     summed by FMAs (KPW - 1 roundings), acc = fma(s, p, acc) (one per word
 *     of the slice's chunk of ch = ceil(KW / S) words, the scale exact
 *     inside the FMA), then the slices summed by a tree (ceil(log2 min(S,
 *     KW)) levels that add non-zero terms) and the bias (one). With KW =
 *     K / KPW words and S (32 or 64) slices the depth is <= KPW + ch +
 *     ceil(log2 min(S, KW)) <= K + 2 for every K (KW <= S: KPW + 1 +
 *     log2 KW <= KPW KW + 2; else K > 128 and 8 + K/128 + 1 + 6 <= K). A
 *     word of mixed groups (act-order): each exact product scaled by its own
 *     s in one FMA: depth <= ch KPW + ceil(log2 min(S, KW)) + 1, <= K + 2 the
 *     same way (KW > S: K/32 + 8 + 7 <= K + 2).
 *   - gemm-simt: FMAs of xh and the exact s (q - z), k in order, then the
 *     bias: depth K + 1, matmul_q's own.
 *   - gemm-mma: each 16-k piece is one mma with a zero accumulator: its 16
 *     products are exact, their sum formed in the tensor core's f32
 *     accumulator, then out = fma(s, D, out) (one rounding per piece).
 *     NVIDIA does not document the accumulator's rounding; Fasi, Higham,
 *     Mikaitis and Pranesh (PeerJ CS 2021) measured V100, T4 and A100 tensor
 *     cores adding with truncation, at most 2u per addition, i.e. the 15 sums
 *     of a piece count as 30 roundings at most. Depth <= 30 + K/16 + 1 <= K + 2
 *     for K >= 32; the host sends K < 32 to gemm-simt. A piece of mixed
 *     groups (act-order g_idx) runs one mma per group present, the other
 *     k's of B masked to 0, each result scaled by its group's s: up to 16
 *     scaled partials per piece, depth <= 30 + K + 1 in the worst case,
 *     beyond K + 2: for act-order checkpoints the bound holds to within that
 *     first-order slack (the op table measures it), not by this argument.
 * Every output is summed in an order fixed by its position, K, N, M and the
 * path (gemv's block width also by the device's multiprocessor count),
 * never by the scheduling of blocks: the same bytes on every run.
 *
 * X is read as f32 and rounded to fp16 as it is read (matmul_q's rounding);
 * the bias, rounded to fp16, is added last in one f32 sum. A g_idx outside
 * the groups (the core checks before it calls) is reported through the
 * deferred error word and its weights count as 0.
 */
#include <stdlib.h>
#include <string.h>

#include "hip_impl.h"

#if defined(GPTQ_HIP_ON_NVIDIA)
#include <cuda_fp16.h>
#else
#include <hip/hip_fp16.h>
#pragma clang fp contract(off)
#endif

typedef struct w4_view {
    const uint32_t *qw, *qz;
    const uint16_t *sc;
    const int32_t *gi;
    int bits, zero_add;
    int64_t K, N, ngroups;
} w4_view;

/* x rounded to the nearest fp16 (ties to even), as an f32 */
__device__ static inline float w4_f16(float x) { return __half2float(__float2half_rn(x)); }

__device__ static inline float w4_scale(const w4_view &q, int64_t g, int64_t n)
{
    return __half2float(__ushort_as_half(q.sc[g * q.N + n]));
}

/* Value i of the b-bit stream whose word w lies at words[w * stride]. */
__device__ static inline uint32_t w4_stream(const uint32_t *__restrict__ words, int64_t stride,
                                            int64_t i, int b)
{
    const int64_t t = i * b, w = t >> 5;
    const int sh = (int)(t & 31);
    uint64_t v = words[w * stride] >> sh;
    if (sh + b > 32) v |= (uint64_t)words[(w + 1) * stride] << (32 - sh);
    return (uint32_t)v & ((1u << b) - 1u);
}

__device__ static inline int32_t w4_zero(const w4_view &q, int64_t g, int64_t n)
{
    return (int32_t)w4_stream(q.qz + g * (q.N * q.bits / 32), 1, n, q.bits) + q.zero_add;
}

/* The group of column k, or -1 (reported) when g_idx holds a bad one. */
__device__ static inline int64_t w4_group(const w4_view &q, int64_t k, int64_t g,
                                          hip_flag_t *flags)
{
    if (g < 0 || g >= q.ngroups) {
        hip_defer(flags, HIP_DEFER_QGIDX, k, g);
        return -1;
    }
    return g;
}

/* ------------------------------------------------------------------------
 * gemv: M <= MT rows, BITS 4 or 8, QB quads of columns per block
 * ---------------------------------------------------------------------- */

#define GV_THREADS 256
#define GV_UNROLL 4 /* 16-byte loads a thread keeps in flight, twice (double buffer) */

/* U words of a thread's chunk (word rows w0.., its 4 columns); past we: 0 */
template <int U>
__device__ static inline void gv_load(uint4 v[U], const uint32_t *__restrict__ wp, int64_t N,
                                      int64_t w0, int64_t we)
{
#pragma unroll
    for (int u = 0; u < U; u++)
        v[u] = w0 + u < we ? *(const uint4 *)(wp + (w0 + u) * N) : make_uint4(0, 0, 0, 0);
}

template <int BITS, int MT, int QB>
__global__ __launch_bounds__(GV_THREADS) void w4_gemv_kernel(w4_view q,
                                                             const float *__restrict__ X,
                                                             int64_t M, int xvec,
                                                             const float *__restrict__ bias,
                                                             float *__restrict__ Y,
                                                             hip_flag_t *flags)
{
    constexpr int S = GV_THREADS / QB; /* k slices (a power of 2) */
    constexpr int KPW = 32 / BITS;     /* k values per word */
    constexpr int OUT = MT * 4 * QB;   /* outputs of the block */
    constexpr uint32_t MASK = (1u << BITS) - 1u;
    __shared__ float red[S][OUT];
    const int quad = (int)threadIdx.x % QB, slice = (int)threadIdx.x / QB;
    const int64_t N = q.N, K = q.K, KW = K / KPW, zrow = N * BITS / 32;
    const int64_t n = ((int64_t)blockIdx.x * QB + quad) * 4;
    /* the slice's words: one contiguous chunk, so that its words share their
     * group's scales and zeros (loaded once per group, not once per word) */
    const int64_t ch = (KW + S - 1) / S, wb = slice * ch, we = wb + ch < KW ? wb + ch : KW;
    float acc[MT][4];
#pragma unroll
    for (int m = 0; m < MT; m++)
#pragma unroll
        for (int c = 0; c < 4; c++) acc[m][c] = 0.0f;

    if (n < N && wb < we) {
        const uint32_t *wp = q.qw + n;
        int64_t gcur = -1; /* the group whose s and zf are held */
        float s[4] = {0.0f, 0.0f, 0.0f, 0.0f}, zf[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        uint4 cur[GV_UNROLL], nxt[GV_UNROLL];
        gv_load<GV_UNROLL>(cur, wp, N, wb, we);
        for (int64_t w0 = wb; w0 < we; w0 += GV_UNROLL) {
            /* the next U words in flight while these are dequantized */
            gv_load<GV_UNROLL>(nxt, wp, N, w0 + GV_UNROLL, we);
#pragma unroll
            for (int u = 0; u < GV_UNROLL; u++) {
                const int64_t w = w0 + u, k0 = w * KPW;
                if (w >= we) break;
                const uint32_t words[4] = {cur[u].x, cur[u].y, cur[u].z, cur[u].w};
                int g[KPW];
                {
                    const int4 a = *(const int4 *)(q.gi + k0);
                    g[0] = a.x, g[1] = a.y, g[2] = a.z, g[3] = a.w;
                    if constexpr (KPW == 8) {
                        const int4 b = *(const int4 *)(q.gi + k0 + 4);
                        g[4] = b.x, g[5] = b.y, g[6] = b.z, g[7] = b.w;
                    }
                }
                float xh[MT][KPW];
#pragma unroll
                for (int m = 0; m < MT; m++) {
                    const float *xr = X + (int64_t)m * K + k0;
                    if (m >= M) {
#pragma unroll
                        for (int j = 0; j < KPW; j++) xh[m][j] = 0.0f;
                    } else if (xvec) {
#pragma unroll
                        for (int j = 0; j < KPW; j += 4) {
                            const float4 v = *(const float4 *)(xr + j);
                            xh[m][j] = w4_f16(v.x), xh[m][j + 1] = w4_f16(v.y);
                            xh[m][j + 2] = w4_f16(v.z), xh[m][j + 3] = w4_f16(v.w);
                        }
                    } else {
#pragma unroll
                        for (int j = 0; j < KPW; j++) xh[m][j] = w4_f16(xr[j]);
                    }
                }
                int same = 1;
#pragma unroll
                for (int j = 1; j < KPW; j++) same &= g[j] == g[0];
                if (same) {
                    /* one group: s * (sum of exact products xh (q - z)) */
                    if (g[0] != gcur) {
                        const int64_t gg = w4_group(q, k0, g[0], flags);
                        gcur = gg;
                        if (gg < 0) continue;
                        const uint2 sv = *(const uint2 *)(q.sc + gg * N + n);
                        s[0] = __half2float(__ushort_as_half((unsigned short)(sv.x & 0xffffu)));
                        s[1] = __half2float(__ushort_as_half((unsigned short)(sv.x >> 16)));
                        s[2] = __half2float(__ushort_as_half((unsigned short)(sv.y & 0xffffu)));
                        s[3] = __half2float(__ushort_as_half((unsigned short)(sv.y >> 16)));
                        const uint32_t zw = BITS == 4 ? q.qz[gg * zrow + n / 8] >> (4 * (n % 8))
                                                      : q.qz[gg * zrow + n / 4];
                        /* 2^23 + z: then 2^23 + q - (2^23 + z) is exact, no int-to-float */
#pragma unroll
                        for (int c = 0; c < 4; c++)
                            zf[c] = 8388608.0f + (float)((int)((zw >> (BITS * c)) & MASK) + q.zero_add);
                    }
#pragma unroll
                    for (int c = 0; c < 4; c++) {
                        float p[MT];
#pragma unroll
                        for (int m = 0; m < MT; m++) p[m] = 0.0f;
#pragma unroll
                        for (int j = 0; j < KPW; j++) {
                            const float d =
                                __uint_as_float(0x4B000000u | ((words[c] >> (BITS * j)) & MASK)) - zf[c];
#pragma unroll
                            for (int m = 0; m < MT; m++) p[m] = fmaf(xh[m][j], d, p[m]);
                        }
#pragma unroll
                        for (int m = 0; m < MT; m++) acc[m][c] = fmaf(s[c], p[m], acc[m][c]);
                    }
                } else {
                    /* act-order: each k its own group, each exact product scaled */
#pragma unroll
                    for (int j = 0; j < KPW; j++) {
                        const int64_t gg = w4_group(q, k0 + j, g[j], flags);
                        if (gg < 0) continue;
#pragma unroll
                        for (int c = 0; c < 4; c++) {
                            const float sj = w4_scale(q, gg, n + c);
                            const float d = (float)((int)((words[c] >> (BITS * j)) & MASK) -
                                                    w4_zero(q, gg, n + c));
#pragma unroll
                            for (int m = 0; m < MT; m++)
                                acc[m][c] = fmaf(sj, xh[m][j] * d, acc[m][c]);
                        }
                    }
                }
            }
#pragma unroll
            for (int u = 0; u < GV_UNROLL; u++) cur[u] = nxt[u];
        }
    }
#pragma unroll
    for (int m = 0; m < MT; m++)
#pragma unroll
        for (int c = 0; c < 4; c++) red[slice][m * 4 * QB + quad * 4 + c] = acc[m][c];
    __syncthreads();
    /* the slices summed as a fixed tree (slice i + slice i + h, h = S/2, ..., 1):
     * the same order on every run */
    for (int h = S / 2; h > 0; h /= 2) {
        for (int o = (int)threadIdx.x; o < h * OUT; o += GV_THREADS)
            red[o / OUT][o % OUT] += red[o / OUT + h][o % OUT];
        __syncthreads();
    }
    for (int o = (int)threadIdx.x; o < OUT; o += GV_THREADS) {
        const int m = o / (4 * QB), col = o % (4 * QB);
        const int64_t nn = (int64_t)blockIdx.x * 4 * QB + col;
        if (m < M && nn < N) Y[m * N + nn] = bias ? red[0][o] + w4_f16(bias[nn]) : red[0][o];
    }
}

/* ------------------------------------------------------------------------
 * gemm-simt: (64, 64) outputs per block, any bits
 * ---------------------------------------------------------------------- */

#define GS_T 64
#define GS_KC 32

__global__ __launch_bounds__(256) void w4_gemm_simt_kernel(w4_view q, const float *__restrict__ X,
                                                           int64_t M,
                                                           const float *__restrict__ bias,
                                                           float *__restrict__ Y,
                                                           hip_flag_t *flags)
{
    __shared__ float xs[GS_KC][GS_T + 1]; /* xs[k][m]: fp16 values of X */
    __shared__ float ws[GS_KC][GS_T + 1]; /* ws[k][n]: s (q - z), exact */
    const int tx = (int)threadIdx.x % 16, ty = (int)threadIdx.x / 16;
    const int64_t m0 = (int64_t)blockIdx.y * GS_T, n0 = (int64_t)blockIdx.x * GS_T;
    const int64_t K = q.K, N = q.N;
    float acc[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;
    for (int64_t k0 = 0; k0 < K; k0 += GS_KC) {
        for (int e = (int)threadIdx.x; e < GS_T * GS_KC; e += 256) {
            /* X with k fastest, W with n fastest: both reads coalesced */
            const int xr = e / GS_KC, xk = e % GS_KC;
            const int64_t m = m0 + xr, kx = k0 + xk;
            xs[xk][xr] = (m < M && kx < K) ? w4_f16(X[m * K + kx]) : 0.0f;
            const int wn = e % GS_T, wk = e / GS_T;
            const int64_t n = n0 + wn, k = k0 + wk;
            float w = 0.0f;
            if (n < N && k < K) {
                const int64_t g = w4_group(q, k, q.gi[k], flags);
                if (g >= 0)
                    w = w4_scale(q, g, n) *
                        (float)((int32_t)w4_stream(q.qw + n, N, k, q.bits) - w4_zero(q, g, n));
            }
            ws[wk][wn] = w;
        }
        __syncthreads();
        for (int kk = 0; kk < GS_KC; kk++) {
            float a[4], b[4];
            for (int i = 0; i < 4; i++) a[i] = xs[kk][ty + 16 * i];
            for (int j = 0; j < 4; j++) b[j] = ws[kk][tx + 16 * j];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            const int64_t m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
            if (m < M && n < N) Y[m * N + n] = bias ? acc[i][j] + w4_f16(bias[n]) : acc[i][j];
        }
}

/* ------------------------------------------------------------------------
 * gemm-mma (NVIDIA): (64, 128) outputs per block, 8 warps of (32, 32)
 * ---------------------------------------------------------------------- */

#ifdef GPTQ_HIP_ON_NVIDIA
#define GM_BM 64
#define GM_BN 128
#define GM_BK 64
#define GM_LD (GM_BK + 8) /* halves per shared row: rows 4 banks apart, no conflicts */
#define GM_NT (GM_BK / 16)

/* d = A (16 x 16, row) B (16 x 8, col), f16 inputs, f32 sums, accumulator 0 */
__device__ static inline void w4_mma(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%10,%10,%10,%10};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "f"(0.0f));
}

template <int BITS>
__global__ __launch_bounds__(256) void w4_gemm_mma_kernel(w4_view q, const float *__restrict__ X,
                                                          int64_t M,
                                                          const float *__restrict__ bias,
                                                          float *__restrict__ Y,
                                                          hip_flag_t *flags)
{
    constexpr int KPW = 32 / BITS, WPC = GM_BK / KPW; /* words of a column per k-step */
    constexpr uint32_t MASK = (1u << BITS) - 1u;
    __shared__ __align__(16) uint16_t xs[GM_BM * GM_LD]; /* xs[m][k] fp16 */
    __shared__ __align__(16) uint16_t ws[GM_BN * GM_LD]; /* ws[n][k] (q - z) in fp16 */
    __shared__ float ss[GM_NT][GM_BN]; /* scale of a one-group 16-k piece, per column */
    __shared__ int gs[GM_BK];          /* group of each k (-1: past K or bad) */
    __shared__ int tg[GM_NT];          /* group of each 16-k piece; -1 empty, -2 mixed */
    const int tid = (int)threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int wm = warp / 4, wn = warp % 4;
    const int64_t m0 = (int64_t)blockIdx.y * GM_BM, n0 = (int64_t)blockIdx.x * GM_BN;
    const int64_t K = q.K, N = q.N, KW = K / KPW;
    float out[2][4][4];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++)
            for (int r = 0; r < 4; r++) out[i][j][r] = 0.0f;

    for (int64_t k0 = 0; k0 < K; k0 += GM_BK) {
        if (tid < GM_BK) {
            const int64_t k = k0 + tid;
            gs[tid] = k < K ? (int)w4_group(q, k, q.gi[k], flags) : -1;
        }
        __syncthreads();
        /* X (64 x 64): 16 elements a thread, k fastest */
        for (int e = tid; e < GM_BM * GM_BK; e += 256) {
            const int r = e / GM_BK, kk = e % GM_BK;
            const int64_t m = m0 + r, k = k0 + kk;
            xs[r * GM_LD + kk] = __half_as_ushort(__float2half_rn(m < M && k < K ? X[m * K + k] : 0.0f));
        }
        /* W: WPC words of each of the 128 columns, n fastest (coalesced) */
        for (int e = tid; e < GM_BN * WPC; e += 256) {
            const int col = e % GM_BN, wr = e / GM_BN;
            const int64_t n = n0 + col, kw = k0 / KPW + wr;
            const uint32_t word = (n < N && kw < KW) ? q.qw[kw * N + n] : 0u;
            int gprev = -1;
            int32_t z = 0;
            for (int j = 0; j < KPW; j++) {
                const int kk = wr * KPW + j, g = gs[kk];
                float d = 0.0f;
                if (g >= 0 && n < N) {
                    if (g != gprev) z = w4_zero(q, g, n), gprev = g;
                    d = (float)((int32_t)((word >> (BITS * j)) & MASK) - z);
                }
                ws[col * GM_LD + kk] = __half_as_ushort(__float2half_rn(d));
            }
        }
        /* each piece's group (k past K or bad: any), and its scales */
        for (int e = tid; e < GM_NT * GM_BN; e += 256) {
            const int t = e / GM_BN, col = e % GM_BN;
            int g = -1;
            for (int j = 0; j < 16; j++) {
                const int gj = gs[t * 16 + j];
                if (gj < 0 || gj == g) continue;
                g = g == -1 ? gj : -2;
                if (g == -2) break;
            }
            if (col == 0) tg[t] = g;
            ss[t][col] = (g >= 0 && n0 + col < N) ? w4_scale(q, g, n0 + col) : 0.0f;
        }
        __syncthreads();
        for (int t = 0; t < GM_NT; t++) {
            const int g = tg[t];
            if (g == -1) continue;
            uint32_t a[2][4], b[4][2];
            for (int i = 0; i < 2; i++) {
                const uint16_t *p = xs + (wm * 32 + i * 16 + lane / 4) * GM_LD + t * 16 + (lane % 4) * 2;
                a[i][0] = *(const uint32_t *)p;
                a[i][1] = *(const uint32_t *)(p + 8 * GM_LD);
                a[i][2] = *(const uint32_t *)(p + 8);
                a[i][3] = *(const uint32_t *)(p + 8 * GM_LD + 8);
            }
            for (int j = 0; j < 4; j++) {
                const uint16_t *p = ws + (wn * 32 + j * 8 + lane / 4) * GM_LD + t * 16 + (lane % 4) * 2;
                b[j][0] = *(const uint32_t *)p;
                b[j][1] = *(const uint32_t *)(p + 8);
            }
            if (g >= 0) {
                for (int j = 0; j < 4; j++) {
                    const int col = wn * 32 + j * 8 + (lane % 4) * 2;
                    const float s0 = ss[t][col], s1 = ss[t][col + 1];
                    for (int i = 0; i < 2; i++) {
                        float d[4];
                        w4_mma(d, a[i], b[j][0], b[j][1]);
                        out[i][j][0] = fmaf(s0, d[0], out[i][j][0]);
                        out[i][j][1] = fmaf(s1, d[1], out[i][j][1]);
                        out[i][j][2] = fmaf(s0, d[2], out[i][j][2]);
                        out[i][j][3] = fmaf(s1, d[3], out[i][j][3]);
                    }
                }
                continue;
            }
            /* mixed groups (act-order): one masked mma per group present,
             * in the order the groups first appear in the piece */
            const int kb = t * 16 + (lane % 4) * 2;
            for (int u = 0; u < 16; u++) {
                const int gu = gs[t * 16 + u];
                int seen = gu < 0;
                for (int v = 0; v < u && !seen; v++) seen = gs[t * 16 + v] == gu;
                if (seen) continue;
                const uint32_t mk0 = (gs[kb] == gu ? 0xffffu : 0u) | (gs[kb + 1] == gu ? 0xffff0000u : 0u);
                const uint32_t mk1 = (gs[kb + 8] == gu ? 0xffffu : 0u) | (gs[kb + 9] == gu ? 0xffff0000u : 0u);
                for (int j = 0; j < 4; j++) {
                    const int64_t n = n0 + wn * 32 + j * 8 + (lane % 4) * 2;
                    const float s0 = n < N ? w4_scale(q, gu, n) : 0.0f;
                    const float s1 = n + 1 < N ? w4_scale(q, gu, n + 1) : 0.0f;
                    for (int i = 0; i < 2; i++) {
                        float d[4];
                        w4_mma(d, a[i], b[j][0] & mk0, b[j][1] & mk1);
                        out[i][j][0] = fmaf(s0, d[0], out[i][j][0]);
                        out[i][j][1] = fmaf(s1, d[1], out[i][j][1]);
                        out[i][j][2] = fmaf(s0, d[2], out[i][j][2]);
                        out[i][j][3] = fmaf(s1, d[3], out[i][j][3]);
                    }
                }
            }
        }
        __syncthreads(); /* the next step overwrites gs, xs, ws */
    }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++)
            for (int r = 0; r < 4; r++) {
                const int64_t m = m0 + wm * 32 + i * 16 + lane / 4 + (r >= 2 ? 8 : 0);
                const int64_t n = n0 + wn * 32 + j * 8 + (lane % 4) * 2 + (r & 1);
                if (m < M && n < N)
                    Y[m * N + n] = bias ? out[i][j][r] + w4_f16(bias[n]) : out[i][j][r];
            }
}
#endif /* GPTQ_HIP_ON_NVIDIA */

/* ------------------------------------------------------------------------
 * host side
 * ---------------------------------------------------------------------- */

template <int BITS, int MT, int QB>
static void launch_gemv_q(hip_ctx *c, const w4_view &v, const float *x, int64_t M, int xvec,
                          const float *b, float *y)
{
    const unsigned grid = (unsigned)((v.N + 4 * QB - 1) / (4 * QB));
    w4_gemv_kernel<BITS, MT, QB><<<grid, GV_THREADS, 0, c->stream>>>(v, x, M, xvec, b, y, c->flags);
}

template <int BITS, int MT>
static void launch_gemv_m(hip_ctx *c, const w4_view &v, const float *x, int64_t M, int xvec,
                          const float *b, float *y)
{
    /* 32 columns a block (128 contiguous bytes a word row) when that still
     * gives four blocks per multiprocessor (latency is hidden by warps in
     * flight), else 16 */
    if (v.N / 32 >= 4 * (int64_t)c->sm_count) launch_gemv_q<BITS, MT, 8>(c, v, x, M, xvec, b, y);
    else launch_gemv_q<BITS, MT, 4>(c, v, x, M, xvec, b, y);
}

template <int BITS>
static void launch_gemv(hip_ctx *c, const w4_view &v, const float *x, int64_t M, int xvec,
                        const float *b, float *y)
{
    if (M == 1) launch_gemv_m<BITS, 1>(c, v, x, M, xvec, b, y);
    else if (M == 2) launch_gemv_m<BITS, 2>(c, v, x, M, xvec, b, y);
    else if (M <= 4) launch_gemv_m<BITS, 4>(c, v, x, M, xvec, b, y);
    else launch_gemv_m<BITS, 8>(c, v, x, M, xvec, b, y);
}

int hip_matmul_q_fast(void *ctx, const gptq_qtensor *q, const gptq_buf *X, size_t x_off,
                      int64_t M, const gptq_buf *bias, gptq_buf *Y, size_t y_off,
                      const char **impl)
{
    hip_ctx *c = (hip_ctx *)ctx;
    static const char op[] = "matmul_q_fast";
    const char *mode = getenv("GPTQ_HIP_W4A16");
    if (!mode || !mode[0]) mode = "auto";
    if (strcmp(mode, "auto") && strcmp(mode, "simt") && strcmp(mode, "gemm"))
        return hip_fail(c, GPTQ_ERR_INVALID, "%s: GPTQ_HIP_W4A16=%s is none of auto, simt, gemm",
                        op, mode);
    int st = hip_check_qtensor(c, q, op);
    if (st) return st;
    if (M < 0) return hip_fail(c, GPTQ_ERR_SHAPE, "%s: M = %lld is negative", op, (long long)M);
    st = hip_check_view(c, op, "X", X, x_off, M, q->K, q->K);
    if (!st) st = hip_check_view(c, op, "Y", Y, y_off, M, q->N, q->N);
    if (!st && bias) st = hip_check_view(c, op, "bias", bias, 0, 1, q->N, q->N);
    if (st) return st;

    const int fast_bits = q->bits == 4 || q->bits == 8;
    const char *path = "gemm-simt";
    if (fast_bits && M <= 8 && strcmp(mode, "gemm")) path = "gemv";
#ifdef GPTQ_HIP_ON_NVIDIA
    else if (fast_bits && q->K >= 32 && strcmp(mode, "simt")) path = "gemm-mma";
#endif
    if (impl) *impl = path;
    if (M == 0) return GPTQ_OK;

    const w4_view v = {(const uint32_t *)q->qweight->ptr, (const uint32_t *)q->qzeros->ptr,
                       (const uint16_t *)q->scales->ptr, (const int32_t *)q->g_idx->ptr,
                       q->bits, q->zero_add, q->K, q->N, q->ngroups};
    const float *x = HIP_CF32(X, x_off), *b = bias ? HIP_CF32(bias, 0) : NULL;
    float *y = HIP_F32(Y, y_off);
    if (!strcmp(path, "gemv")) {
        const int xvec = q->K % 4 == 0 && (uintptr_t)x % 16 == 0;
        if (q->bits == 4) launch_gemv<4>(c, v, x, M, xvec, b, y);
        else launch_gemv<8>(c, v, x, M, xvec, b, y);
        return hip_check_launch(c, "matmul_q_fast (gemv)");
    }
#ifdef GPTQ_HIP_ON_NVIDIA
    if (!strcmp(path, "gemm-mma")) {
        const int64_t gy = (M + GM_BM - 1) / GM_BM;
        if (gy > 65535)
            return hip_fail(c, GPTQ_ERR_SHAPE, "%s: M = %lld rows exceed one launch (%d)", op,
                            (long long)M, 65535 * GM_BM);
        const dim3 grid((unsigned)((q->N + GM_BN - 1) / GM_BN), (unsigned)gy);
        if (q->bits == 4)
            w4_gemm_mma_kernel<4><<<grid, 256, 0, c->stream>>>(v, x, M, b, y, c->flags);
        else
            w4_gemm_mma_kernel<8><<<grid, 256, 0, c->stream>>>(v, x, M, b, y, c->flags);
        return hip_check_launch(c, "matmul_q_fast (gemm-mma)");
    }
#endif
    const int64_t gy = (M + GS_T - 1) / GS_T;
    if (gy > 65535)
        return hip_fail(c, GPTQ_ERR_SHAPE, "%s: M = %lld rows exceed one launch (%d)", op,
                        (long long)M, 65535 * GS_T);
    const dim3 grid((unsigned)((q->N + GS_T - 1) / GS_T), (unsigned)gy);
    w4_gemm_simt_kernel<<<grid, 256, 0, c->stream>>>(v, x, M, b, y, c->flags);
    return hip_check_launch(c, "matmul_q_fast (gemm-simt)");
}
