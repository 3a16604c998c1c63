/*
 * hip_w4a16.hip — matmul_q_fast (backend.h, ABI 6): the A16 matmul read
 * straight from the GPTQ-packed weight, for decode and prefill.
 *
 * Four code paths (*impl names the one that ran):
 *
 *   gemv-mma   M <= 16, 4 bits, K >= 32, NVIDIA (the default there):
 *              tensor cores, the weight read from
 *              qweight straight into mma.sync fragments (the map is in the
 *              comment above the kernel); blocks of 8 warps x 64 columns, each
 *              warp streaming its L k-steps (32 k each) two at a time with
 *              the next two in flight; X staged once per block in shared
 *              memory as fp16 B fragments; K split over S blocks (about one
 *              wave), the partials summed in block order by the column tile's
 *              last block; launched with programmatic dependent launch.
 *   gemv       M <= 8: 8 bits, and 4 bits off NVIDIA or under
 *              GPTQ_HIP_W4A16=simt. One block per 4 QB
 *              output columns (QB = 4, or 8 for wide N); 256 / QB k-slices,
 *              each a contiguous chunk of word rows; a thread reads (word
 *              row, 4 columns) as one 16-byte load of qweight, 4 loads in
 *              flight while the previous 4 are dequantized in registers, keeps
 *              (M, 4) f32 sums and its group's scales and zeros (loaded once
 *              per group); the slices are summed by a fixed tree in shared
 *              memory. Every weight byte is read once, coalesced (16 QB
 *              contiguous bytes of a word row per QB threads).
 *   gemm-mma   M > 8 (4 bits: M > 16; or GPTQ_HIP_W4A16=gemm), 4 and 8
 *              bits, NVIDIA only:
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
 * GPTQ_HIP_W4A16 picks: auto (or unset) or mma: gemv-mma for 4 bits at
 * M <= 16 on NVIDIA, else gemv for M <= 8, gemm-mma where it exists, else
 * gemm-simt; simt: never a tensor-core path (the AMD paths, run and tested
 * on NVIDIA); gemm: never a GEMV (the GEMMs tested at small M).
 * GPTQ_HIP_PDL=0 launches gemv-mma plainly; GPTQ_HIP_GVM=async streams its
 * weights through a cp.async ring in shared memory instead of registers.
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
 *   - gemv-mma: the products are exact as in gemm-mma (x rounded to fp16
 *     times q - z in fp16: 1024 + q and 1024 + z are exact in fp16, so is
 *     their difference; (1024 + 16 q) / 16 - (64 + z) is one rounding of an
 *     exact small integer). Two ways to sum, chosen by the host
 *     (gvm_depth): chained, every mma of a warp's run of k-steps in one
 *     group adds into the same accumulator (under the truncation model, c
 *     chained k count 2 (c - 1) roundings, c <= min(32 L, K)), and the
 *     accumulator is scaled into out by one FMA at each change of group;
 *     or unchained, each mma from 0 (30) and scaled at once (one FMA per
 *     mma). Then the 8 warps' sums by a fixed tree (ceil(log2) of the warps
 *     with k: <= 3 levels), the S blocks' partials in block order (S - 1)
 *     and the bias (1). The host chains only when that total, 2 (c - 1) +
 *     min(L, K/32) + 3 + S, is <= K + 2 (K >= ~300 for L = 4; a 4096 x 4096
 *     layer: 254 + 4 + 3 + 3 + 1 = 265); else unchained: 30 + 2 min(L, K/32)
 *     + levels + S <= K + 2 for every K >= 32 (K = 32: 30 + 2 + 0 + 0 + 1).
 *     Steps whose 32 k are not of one group (act-order, groups not a
 *     multiple of 32) run after the warp's other steps, one masked pass per
 *     group present, each mma scaled at once: the act-order caveat of
 *     gemm-mma.
 * Every output is summed in an order fixed by its position, K, N, M and the
 * path (gemv's block width also by the device's multiprocessor count),
 * never by the scheduling of blocks (gemv-mma's last block to arrive sums
 * the partials in block order, whichever it is; its S and L depend on K, N,
 * M and the multiprocessor count): the same bytes on every run.
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

/* ------------------------------------------------------------------------
 * gemv-mma (NVIDIA): M <= 16, 4 bits, tensor cores
 *
 * D (16 x 8) = A (16 x 16) B (16 x 8) + C: A is the weight, its rows 16
 * output columns, B the X rows (8 tokens, zeros past M), D's rows outputs.
 * The 16 k of one mma need not be 16 consecutive k: any bijection onto the
 * mma's positions works if A and B use the same one. Lane (g = lane / 4,
 * t = lane % 4) of a warp holds A's k positions {2t, 2t+1, 2t+8, 2t+9};
 * they are nibbles {0, 4, 1, 5} (mma "lo") and {2, 6, 3, 7} (mma "hi") of
 * the word at word row 4 ks + t (k-step ks = 32 k), so a lane's A fragment
 * comes straight from one 32-bit qweight word per column:
 *   (w & 0x000f000f) | 0x64006400 is the fp16 pair (1024 + q0, 1024 + q4),
 *     minus the pair 1024 + z: q - z (one lop3, one sub);
 *   (w & 0x00f000f0) | 0x64006400 is (1024 + 16 q1, 1024 + 16 q5), times
 *     1/16 minus (64 + z) in one fma: q - z (one lop3, one fma);
 *   the same of w >> 8 for nibbles 2, 6 and 3, 7.
 * Every value there is an integer or a multiple of 1/16 below 2048 with few
 * bits: exact in fp16, and so is each result. A lane loads 4 adjacent
 * columns as one 16-byte word (quad A: n0 + 4g, rows g of mma j = 0..3 take
 * its component j) and 4 more 32 columns further (quad B, rows g + 8): a
 * warp reads 4 word rows x 64 columns, 256 contiguous bytes per word row.
 * B holds the same physical k of X: the lane's b0 is (x[8w], x[8w+4]) for
 * lo, rounded to fp16 from X as it is loaded (token g of the lane's block
 * of 8; 0 past M).
 *
 * A block is GVM_WARPS warps on one tile of 64 columns, warp i on k-steps
 * CS i .. CS i + CS - 1 of the block's share of K: every weight, g_idx, X
 * load of the warp is issued at once before any arithmetic (CS k-steps x
 * 2 x 16 bytes a lane in flight), with the scales and zeros of the group
 * the host's hint says the chunk starts in (checked against g_idx; the
 * hint only saves a wait). K beyond one block is split over blockIdx.y.
 * ---------------------------------------------------------------------- */

#define GVM_WARPS 8 /* warps of a block, each its own chunk of k-steps */
#define GVM_COLS 64 /* output columns of a block (and of each warp) */

/* A group's scales (f32) and zero terms of the lane's 4 columns from n:
 * zl = the fp16 pair (1024 + z, 1024 + z), zh = (-(64 + z), -(64 + z));
 * zeros past N (those columns' weights are 0 and never written). */
struct gvm_grp {
    float s[4];
    uint32_t zl[4], zh[4];
};

__device__ static inline void gvm_group(const w4_view &q, int64_t g, int64_t n, gvm_grp &G)
{
    if (n >= q.N) {
        for (int c = 0; c < 4; c++) G.s[c] = 0.0f, G.zl[c] = 0x64006400u, G.zh[c] = 0xd400d400u;
        return;
    }
    const uint2 sv = __ldg((const uint2 *)(q.sc + g * q.N + n));
    G.s[0] = __half2float(__ushort_as_half((unsigned short)(sv.x & 0xffffu)));
    G.s[1] = __half2float(__ushort_as_half((unsigned short)(sv.x >> 16)));
    G.s[2] = __half2float(__ushort_as_half((unsigned short)(sv.y & 0xffffu)));
    G.s[3] = __half2float(__ushort_as_half((unsigned short)(sv.y >> 16)));
    const uint32_t zw = __ldg(q.qz + g * (q.N / 8) + n / 8) >> (4 * (n % 8));
    for (int c = 0; c < 4; c++) {
        const uint32_t z = (uint32_t)((int)((zw >> (4 * c)) & 15u) + q.zero_add);
        /* fp16 bits: 1024 + z is 0x6400 + z (spacing 1 in [1024, 2048)),
         * -(64 + z) is 0xd400 + 16 z (spacing 1/16 in [64, 128)) */
        const uint32_t lo = 0x6400u + z, hi = 0xd400u + 16u * z;
        G.zl[c] = lo | (lo << 16), G.zh[c] = hi | (hi << 16);
    }
}

/* q - z of nibbles 0 and 4 of w (fp16 pair) */
__device__ static inline uint32_t gvm_lo(uint32_t w, uint32_t zl)
{
    const uint32_t h = (w & 0x000f000fu) | 0x64006400u;
    uint32_t d;
    asm("sub.rn.f16x2 %0, %1, %2;\n" : "=r"(d) : "r"(h), "r"(zl));
    return d;
}

/* q - z of nibbles 1 and 5 of w: (1024 + 16 q) * 1/16 + (-(64 + z)), one rounding of an exact value */
__device__ static inline uint32_t gvm_hi(uint32_t w, uint32_t zh)
{
    const uint32_t h = (w & 0x00f000f0u) | 0x64006400u;
    uint32_t d;
    asm("fma.rn.f16x2 %0, %1, %2, %3;\n" : "=r"(d) : "r"(h), "r"(0x2c002c00u), "r"(zh));
    return d;
}

/* c += A B (f16 inputs, f32 accumulator) */
__device__ static inline void gvm_mma(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, "
        "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* out += s acc (one FMA per output), acc = 0. out is the lane's 16 MB
 * entries of its warp's sums in shared memory (no other lane touches them):
 * acc's d0, d1 are quad A's column j, tokens 2t, 2t+1; d2, d3 quad B's. */
template <int MB>
__device__ static inline void gvm_flush(float (*out)[GVM_COLS], float acc[MB][4][4],
                                        const gvm_grp &A, const gvm_grp &B, int g, int t)
{
#pragma unroll
    for (int mb = 0; mb < MB; mb++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int r = 0; r < 4; r++) {
                float &o = out[8 * mb + 2 * t + (r & 1)][(r < 2 ? 0 : 32) + 4 * g + j];
                o = fmaf(r < 2 ? A.s[j] : B.s[j], acc[mb][j][r], o);
                acc[mb][j][r] = 0.0f;
            }
}

/* One k-step of the lane's 8 columns against MB blocks of 8 tokens, 2 mmas
 * per column quad component and token block, adding into acc. CHAIN: acc
 * is scaled into out later (once per group); else the lo mmas (from acc =
 * 0) are scaled into out, then the hi ones: one FMA per mma and output,
 * and B is masked by mk (the lane's x-pairs of k in another group set to 0;
 * all ones: none). */
template <int MB, bool CHAIN>
__device__ static inline void gvm_step(float acc[MB][4][4], float (*out)[GVM_COLS], uint4 wa,
                                       uint4 wb, const uint32_t xb[MB][4], const uint32_t mk[4],
                                       const gvm_grp &A, const gvm_grp &B, int g, int t)
{
    const uint32_t a4[4] = {wa.x, wa.y, wa.z, wa.w}, b4[4] = {wb.x, wb.y, wb.z, wb.w};
#pragma unroll
    for (int half = 0; half < 2; half++) {
#pragma unroll
        for (int j = 0; j < 4; j++) {
            /* lo: nibbles 0, 4 (a0, a1) and 1, 5 (a2, a3); hi: the same of w >> 8.
             * a0: row g (quad A) k 2t, 2t+1; a1: row g + 8 (quad B); a2, a3: k 2t+8, 2t+9 */
            const uint32_t wA = half ? a4[j] >> 8 : a4[j], wB = half ? b4[j] >> 8 : b4[j];
            const uint32_t a[4] = {gvm_lo(wA, A.zl[j]), gvm_lo(wB, B.zl[j]), gvm_hi(wA, A.zh[j]),
                                   gvm_hi(wB, B.zh[j])};
#pragma unroll
            for (int mb = 0; mb < MB; mb++)
                gvm_mma(acc[mb][j], a, xb[mb][2 * half] & (CHAIN ? ~0u : mk[2 * half]),
                        xb[mb][2 * half + 1] & (CHAIN ? ~0u : mk[2 * half + 1]));
        }
        if constexpr (!CHAIN) gvm_flush<MB>(out, acc, A, B, g, t);
    }
}

/* (a, b) rounded to the fp16 pair, a in the low half */
__device__ static inline uint32_t gvm_pack(float a, float b)
{
    const __half2 h = __floats2half2_rn(a, b);
    return *reinterpret_cast<const uint32_t *>(&h);
}

/* X slots (uint4: 8 k of one token as the 4 fp16 pairs a lane's B takes)
 * a block stages in shared memory: tokens x its words <= this */
template <int MB> struct gvm_xs {
    static constexpr int n = MB == 1 ? 1536 : 768;
};

/* A k-step whose 32 k are not of one group (act-order, or groups not a
 * multiple of 32): one pass per group present, in the order of their first
 * k, the x of the other k masked to 0, each mma scaled into out at once.
 * It loads what it needs again (the step's weights, g_idx, X from xs, the
 * groups): the kernel runs it after its main loop, so the rare path's
 * registers are not the main loop's. */
template <int MB>
__device__ static inline void gvm_mixed(const w4_view &q, int64_t ks, int64_t nA, int64_t nB,
                                       const uint4 *xs, int64_t xw0, int64_t xwn, int64_t M,
                                       float (*out)[GVM_COLS], int g, int t, int lane,
                                       hip_flag_t *flags)
{
    const int64_t N = q.N, KW = q.K / 8, k = 32 * ks + lane, w = 4 * ks + t;
    const uint4 z4 = make_uint4(0, 0, 0, 0);
    const uint4 wa = w < KW && nA < N ? __ldg((const uint4 *)(q.qw + w * N + nA)) : z4;
    const uint4 wb = w < KW && nB < N ? __ldg((const uint4 *)(q.qw + w * N + nB)) : z4;
    const int gl = k < q.K ? __ldg(q.gi + k) : 0;
    uint32_t xb[MB][4];
    for (int mb = 0; mb < MB; mb++) {
        const int64_t m = 8 * mb + g;
        const uint4 v = m < M && w < KW ? xs[m * xwn + (w - xw0)] : z4;
        xb[mb][0] = v.x, xb[mb][1] = v.y, xb[mb][2] = v.z, xb[mb][3] = v.w;
    }
    float acc[MB][4][4];
    for (int mb = 0; mb < MB; mb++)
        for (int j = 0; j < 4; j++)
            for (int r = 0; r < 4; r++) acc[mb][j][r] = 0.0f;
    unsigned todo = __ballot_sync(0xffffffffu, k < q.K);
    while (todo) {
        const int l0 = __ffs(todo) - 1;
        const int gu = __shfl_sync(0xffffffffu, gl, l0);
        const unsigned in = __ballot_sync(0xffffffffu, k < q.K && gl == gu);
        todo &= ~in;
        if (gu < 0 || gu >= q.ngroups) {
            if (lane == l0) hip_defer(flags, HIP_DEFER_QGIDX, k, gu);
            continue;
        }
        gvm_grp A, B;
        gvm_group(q, gu, nA, A);
        gvm_group(q, gu, nB, B);
        /* the lane's k: 32 ks + 8 t + nibble; pairs (0, 4), (1, 5), (2, 6), (3, 7) */
        const unsigned bt = (in >> (8 * t)) & 0xffu;
        uint32_t mk[4];
        for (int p = 0; p < 4; p++)
            mk[p] = ((bt >> p) & 1u ? 0x0000ffffu : 0u) | ((bt >> (p + 4)) & 1u ? 0xffff0000u : 0u);
        gvm_step<MB, false>(acc, out, wa, wb, xb, mk, A, B, g, t);
    }
}

/* Programmatic dependent launch (NVIDIA sm_90+): this grid lets the next
 * kernel on the stream start (launch_dependents) while it runs; a grid
 * launched so waits (wait) until the grids before it have finished and
 * their memory is visible. gemv-mma issues its first weight, g_idx and
 * scale loads before it waits: they read nothing an earlier call writes,
 * and a decode loop's next linear then starts its DRAM reads under the
 * tail of the one before. Elsewhere both are nothing (the launch is plain). */
__device__ static inline void gvm_pdl_launch_dependents(void)
{
#if defined(GPTQ_HIP_ON_NVIDIA) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

__device__ static inline void gvm_pdl_wait(void)
{
#if defined(GPTQ_HIP_ON_NVIDIA) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

/* Two k-steps of the warp's (its weights and g_idx), none past ke */
__device__ static inline void gvm_load2(const w4_view &q, int64_t ks, int64_t ke, int64_t nA,
                                        int64_t nB, int t, int lane, uint4 wa[2], uint4 wb[2],
                                        int gl[2])
{
    const int64_t N = q.N, KW = q.K / 8;
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const int64_t w = 4 * (ks + i) + t, k = 32 * (ks + i) + lane;
        const bool in = ks + i < ke;
        const uint4 z4 = make_uint4(0, 0, 0, 0);
        wa[i] = in && w < KW && nA < N ? __ldg((const uint4 *)(q.qw + w * N + nA)) : z4;
        wb[i] = in && w < KW && nB < N ? __ldg((const uint4 *)(q.qw + w * N + nB)) : z4;
        gl[i] = in && k < q.K ? __ldg(q.gi + k) : 0;
    }
}

/* cp.async (sm_80+): 16 (or 4) bytes from global to shared memory without
 * registers; an invalid source copies nothing and fills zeros (src-size 0;
 * the address is then q's base, never read). The copies of a thread are
 * grouped by commit and waited for by wait_group (that thread's own). */
#define GVM_STAGES 3 /* two-step stages of a warp's ring: two in flight while one is used */

__device__ static inline void gvm_cp16(void *dst, const void *src, bool valid)
{
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src),
                 "r"(valid ? 16 : 0)
                 : "memory");
}

__device__ static inline void gvm_cp4(void *dst, const void *src, bool valid)
{
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(d), "l"(src),
                 "r"(valid ? 4 : 0)
                 : "memory");
}

__device__ static inline void gvm_cp_commit(void) { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

template <int N> __device__ static inline void gvm_cp_wait(void)
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

/* A warp's ring: per stage, its 2 k-steps' weights (quad A, quad B) and
 * g_idx, each lane's own slots */
struct gvm_ring {
    uint4 w[GVM_STAGES][2][2][32];
    int gi[GVM_STAGES][2][32];
};

/* Chunk c (k-steps ks0 + 2c, + 1; none at or past ke) into stage c % STAGES */
__device__ static inline void gvm_issue(const w4_view &q, gvm_ring &r, int c, int64_t ks0,
                                        int64_t ke, int64_t nA, int64_t nB, int t, int lane)
{
    const int64_t N = q.N, KW = q.K / 8;
    const int st = c % GVM_STAGES;
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const int64_t ks = ks0 + 2 * (int64_t)c + i, w = 4 * ks + t, k = 32 * ks + lane;
        const bool in = ks < ke && w < KW;
        gvm_cp16(&r.w[st][i][0][lane], in && nA < N ? (const void *)(q.qw + w * N + nA) : q.qw,
                 in && nA < N);
        gvm_cp16(&r.w[st][i][1][lane], in && nB < N ? (const void *)(q.qw + w * N + nB) : q.qw,
                 in && nB < N);
        gvm_cp4(&r.gi[st][i][lane], ks < ke && k < q.K ? (const void *)(q.gi + k) : q.gi,
                ks < ke && k < q.K);
    }
    gvm_cp_commit();
}

/* grid (ceil(N / 64), S): block (x, y) computes columns 64 x .. of k-steps
 * GVM_WARPS L y .. (warp i: its L steps from GVM_WARPS L y + L i), streaming
 * them two at a time with the next two in flight; with S > 1 each block
 * leaves its partial in ws[y] and the last of the column tile's S blocks to
 * finish sums ws[0..S-1] in order. gs: the group size when g_idx may be
 * k / gs (the hint), else 0. CHAIN: the host found the chained sums within
 * the depth bound (the header). */
template <int MB, bool CHAIN, bool ASYNC>
__global__ __launch_bounds__(GVM_WARPS * 32, 2) void w4_gemv_mma_kernel(
    w4_view q, const float *__restrict__ X, int64_t M, int xvec, const float *__restrict__ bias,
    float *__restrict__ Y, float *__restrict__ ws, unsigned *__restrict__ cnt, int64_t gs,
    int64_t L, hip_flag_t *flags)
{
    constexpr int TOK = 8 * MB;
    __shared__ __align__(16) float red[GVM_WARPS][TOK][GVM_COLS];
    __shared__ __align__(16) uint4 xs[gvm_xs<MB>::n];
    __shared__ int last;
    const int tid = (int)threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
    const int64_t N = q.N, K = q.K, KW = K / 8, KS = (KW + 3) / 4;
    const int64_t n0 = (int64_t)blockIdx.x * GVM_COLS, nA = n0 + 4 * g, nB = nA + 32;
    const int64_t kb = (int64_t)blockIdx.y * GVM_WARPS * L; /* the block's first k-step */
    const int64_t ks0 = kb + warp * L, ke = ks0 + L < KS ? ks0 + L : KS;
    const int64_t xw0 = 4 * kb, xwe = 4 * (kb + GVM_WARPS * L) < KW ? 4 * (kb + GVM_WARPS * L) : KW;
    const int64_t xwn = xwe > xw0 ? xwe - xw0 : 0; /* the block's words */
    gvm_pdl_launch_dependents();

    /* the first two k-steps' loads (ASYNC: the first STAGES - 1 chunks into
     * the warp's ring in dynamic shared memory), and the hinted group's
     * scales and zeros */
    extern __shared__ __align__(16) unsigned char gvm_dyn[];
    gvm_ring &ring = ((gvm_ring *)(void *)gvm_dyn)[warp];
    uint4 wa0[2], wb0[2], wa1[2], wb1[2];
    int gl0[2], gl1[2];
    if constexpr (ASYNC) {
#pragma unroll
        for (int c = 0; c < GVM_STAGES - 1; c++) gvm_issue(q, ring, c, ks0, ke, nA, nB, t, lane);
    } else {
        gvm_load2(q, ks0, ke, nA, nB, t, lane, wa0, wb0, gl0);
    }
    int64_t gcur = INT64_MIN; /* the group whose scales and zeros are held (none: no g_idx value) */
    gvm_grp GA, GB;
    if (gs > 0 && ks0 < KS) {
        gcur = 32 * ks0 / gs;
        gvm_group(q, gcur, nA, GA);
        gvm_group(q, gcur, nB, GB);
    }
    /* the calls before this one on the stream (X's producer, the last user
     * of ws, cnt and Y) done: nothing above reads their outputs or writes */
    gvm_pdl_wait();
    /* the block's X as B fragments in fp16: xs[m xwn + w - xw0] = (x[8w],
     * x[8w+4]), (x[8w+1], x[8w+5]), (x[8w+2], x[8w+6]), (x[8w+3], x[8w+7]) */
    for (int64_t e = tid; e < M * xwn; e += GVM_WARPS * 32) {
        const int64_t m = e / xwn, w = xw0 + e % xwn;
        const float *xr = X + m * K + 8 * w;
        float x[8];
        if (xvec) {
            const float4 p = __ldg((const float4 *)xr), r = __ldg((const float4 *)(xr + 4));
            x[0] = p.x, x[1] = p.y, x[2] = p.z, x[3] = p.w;
            x[4] = r.x, x[5] = r.y, x[6] = r.z, x[7] = r.w;
        } else {
            for (int j = 0; j < 8; j++) x[j] = __ldg(xr + j);
        }
        xs[e] = make_uint4(gvm_pack(x[0], x[4]), gvm_pack(x[1], x[5]), gvm_pack(x[2], x[6]),
                           gvm_pack(x[3], x[7]));
    }
    /* the warp's sums live in red[warp], each lane's entries its own */
    float(*out)[GVM_COLS] = red[warp];
    float acc[MB][4][4];
#pragma unroll
    for (int mb = 0; mb < MB; mb++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int r = 0; r < 4; r++) {
                acc[mb][j][r] = 0.0f;
                out[8 * mb + 2 * t + (r & 1)][(r < 2 ? 0 : 32) + 4 * g + j] = 0.0f;
            }
    __syncthreads();
    const uint32_t all[4] = {~0u, ~0u, ~0u, ~0u};
    bool live = false; /* acc holds sums of the held group not yet scaled into out */

    uint64_t pend = 0; /* the warp's steps (bit ks - ks0) with k of several groups */
    /* one k-step: the same branch for the whole warp */
    auto step = [&](int64_t ks, uint4 wa, uint4 wb, int gl) {
        if (ks >= ke) return;
        const int64_t k = 32 * ks + lane, w = 4 * ks + t;
        const int g0 = __shfl_sync(0xffffffffu, gl, 0);
        if (!__all_sync(0xffffffffu, k >= K || gl == g0)) {
            pend |= 1ull << (ks - ks0); /* done after the loop, from their own loads */
            return;
        }
        /* the k-step's 32 k in one group (in-order groups of a multiple of 32) */
        if (g0 != gcur) {
            if (CHAIN && live) gvm_flush<MB>(out, acc, GA, GB, g, t), live = false;
            gcur = g0;
            if (g0 < 0 || g0 >= q.ngroups) {
                if (lane == 0) hip_defer(flags, HIP_DEFER_QGIDX, 32 * ks, g0);
            } else {
                gvm_group(q, g0, nA, GA);
                gvm_group(q, g0, nB, GB);
            }
        }
        if (g0 < 0 || g0 >= q.ngroups) return;
        uint32_t xb[MB][4];
#pragma unroll
        for (int mb = 0; mb < MB; mb++) {
            const int64_t m = 8 * mb + g;
            const uint4 v = m < M && w < KW ? xs[m * xwn + (w - xw0)] : make_uint4(0, 0, 0, 0);
            xb[mb][0] = v.x, xb[mb][1] = v.y, xb[mb][2] = v.z, xb[mb][3] = v.w;
        }
        gvm_step<MB, CHAIN>(acc, out, wa, wb, xb, all, GA, GB, g, t);
        live = true;
    };
    if constexpr (ASYNC) {
        /* chunk c computed while chunks c + 1, c + 2 are in flight */
        for (int c = 0; ks0 + 2 * (int64_t)c < ke; c++) {
            gvm_issue(q, ring, c + GVM_STAGES - 1, ks0, ke, nA, nB, t, lane);
            gvm_cp_wait<GVM_STAGES - 1>();
            const int st = c % GVM_STAGES;
            const int64_t ks = ks0 + 2 * (int64_t)c;
            step(ks, ring.w[st][0][0][lane], ring.w[st][0][1][lane], ring.gi[st][0][lane]);
            step(ks + 1, ring.w[st][1][0][lane], ring.w[st][1][1][lane], ring.gi[st][1][lane]);
        }
        gvm_cp_wait<0>();
    }
    for (int64_t ks = ks0; !ASYNC && ks < ke; ks += 4) {
        gvm_load2(q, ks + 2, ke, nA, nB, t, lane, wa1, wb1, gl1);
        step(ks, wa0[0], wb0[0], gl0[0]);
        step(ks + 1, wa0[1], wb0[1], gl0[1]);
        gvm_load2(q, ks + 4, ke, nA, nB, t, lane, wa0, wb0, gl0);
        step(ks + 2, wa1[0], wb1[0], gl1[0]);
        step(ks + 3, wa1[1], wb1[1], gl1[1]);
    }
    if (CHAIN && live) gvm_flush<MB>(out, acc, GA, GB, g, t);
    /* act-order (or groups not a multiple of 32): the mixed steps after the
     * others, in k order, when the main loop's registers are free */
    while (pend) {
        const int i = __ffsll((long long)pend) - 1;
        pend &= pend - 1;
        gvm_mixed<MB>(q, ks0 + i, nA, nB, xs, xw0, xwn, M, out, g, t, lane, flags);
    }

    /* the warps' sums: a fixed tree in shared memory, the rows of the M tokens */
    __syncthreads();
    const int Mt = (int)M; /* <= TOK */
    for (int h = GVM_WARPS / 2; h > 0; h /= 2) {
        for (int o = tid; o < h * Mt * GVM_COLS; o += GVM_WARPS * 32) {
            const int wv = o / (Mt * GVM_COLS), m = (o / GVM_COLS) % Mt, col = o % GVM_COLS;
            red[wv][m][col] += red[wv + h][m][col];
        }
        __syncthreads();
    }
    const int S = (int)gridDim.y;
    if (S == 1) {
        for (int o = tid; o < Mt * GVM_COLS; o += GVM_WARPS * 32) {
            const int m = o / GVM_COLS, col = o % GVM_COLS;
            const int64_t n = n0 + col;
            if (n < N) Y[m * N + n] = bias ? red[0][m][col] + w4_f16(bias[n]) : red[0][m][col];
        }
        return;
    }
    /* split K: the partial to ws[y], then the tile's last block sums them in
     * the order y = 0, 1, ..: the same sum whichever block finishes last */
    for (int o = tid; o < Mt * GVM_COLS; o += GVM_WARPS * 32) {
        const int m = o / GVM_COLS, col = o % GVM_COLS;
        const int64_t n = n0 + col;
        if (n < N) ws[((int64_t)blockIdx.y * M + m) * N + n] = red[0][m][col];
    }
    __threadfence();
    __syncthreads();
    if (tid == 0) last = atomicAdd(&cnt[blockIdx.x], 1u) == (unsigned)S - 1u;
    __syncthreads();
    if (!last) return;
    __threadfence();
    for (int o = tid; o < Mt * GVM_COLS; o += GVM_WARPS * 32) {
        const int m = o / GVM_COLS, col = o % GVM_COLS;
        const int64_t n = n0 + col;
        if (n >= N) continue;
        float v = __ldcg(ws + (int64_t)m * N + n);
        for (int y = 1; y < S; y++) v += __ldcg(ws + ((int64_t)y * M + m) * N + n);
        Y[m * N + n] = bias ? v + w4_f16(bias[n]) : v;
    }
    if (tid == 0) cnt[blockIdx.x] = 0u; /* ready for the next call on the stream */
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

#ifdef GPTQ_HIP_ON_NVIDIA
/* gemv-mma: the split-K workspace grown to nws floats and nct counters
 * (zeroed) on first need, kept in the context for the later calls */
static int gvm_workspace(hip_ctx *c, size_t nws, size_t nct)
{
    if (c->gvm_ws_n < nws || c->gvm_cnt_n < nct) {
        /* the stream may still use the old buffers */
        HIP_TRY(c, hipStreamSynchronize(c->stream), "hipStreamSynchronize");
    }
    if (c->gvm_ws_n < nws) {
        if (c->gvm_ws) (void)hipFree(c->gvm_ws);
        c->gvm_ws = NULL, c->gvm_ws_n = 0;
        void *p = NULL;
        HIP_TRY(c, hipMalloc(&p, nws * sizeof(float)), "hipMalloc(gemv-mma partials)");
        c->gvm_ws = (float *)p, c->gvm_ws_n = nws;
    }
    if (c->gvm_cnt_n < nct) {
        if (c->gvm_cnt) (void)hipFree(c->gvm_cnt);
        c->gvm_cnt = NULL, c->gvm_cnt_n = 0;
        void *p = NULL;
        HIP_TRY(c, hipMalloc(&p, nct * sizeof(unsigned)), "hipMalloc(gemv-mma counters)");
        HIP_TRY(c, hipMemsetAsync(p, 0, nct * sizeof(unsigned), c->stream),
                "hipMemset(gemv-mma counters)");
        c->gvm_cnt = (unsigned *)p, c->gvm_cnt_n = nct;
    }
    return GPTQ_OK;
}

/* The most roundings a term of gemv-mma's output passes through (the header's
 * argument): the piece (a chain of one group's k in a warp: 2 (c - 1) for c
 * chained k; or one mma's 16: 30) and the warp's FMAs into out (one per
 * group or per mma), the warps' tree (the levels with more than one warp of
 * k), the S blocks' partials in order and the bias. */
static int64_t gvm_depth(int64_t K, int64_t L, int chain, int64_t S)
{
    const int64_t KS = (K / 8 + 3) / 4, steps = KS < L ? KS : L;
    const int64_t chained = 32 * L < K ? 32 * L : K;
    int64_t warps = (KS + L - 1) / L, levels = 0;
    if (warps > GVM_WARPS) warps = GVM_WARPS;
    while ((1 << levels) < warps) levels++;
    const int64_t piece = chain ? 2 * (chained - 1) + steps : 30 + 2 * steps;
    return piece + levels + (S - 1) + 1;
}

/* The launch, with programmatic dependent launch allowed (gvm_pdl_wait)
 * when pdl */
template <int MB, bool CHAIN, bool ASYNC>
static void gvm_launch(hip_ctx *c, dim3 grid, bool pdl, const w4_view &v, const float *x,
                       int64_t M, int xvec, const float *b, float *y, int64_t gs, int64_t L)
{
    const size_t dyn = ASYNC ? GVM_WARPS * sizeof(gvm_ring) : 0;
    static int attr_set; /* per instance: the dynamic shared memory beyond 48 KB allowed */
    if (ASYNC && !attr_set) {
        (void)cudaFuncSetAttribute(w4_gemv_mma_kernel<MB, CHAIN, ASYNC>,
                                   cudaFuncAttributeMaxDynamicSharedMemorySize, (int)dyn);
        attr_set = 1;
    }
    cudaLaunchConfig_t cfg = {};
    cudaLaunchAttribute at[1];
    cfg.gridDim = grid;
    cfg.blockDim = dim3(GVM_WARPS * 32);
    cfg.dynamicSmemBytes = dyn;
    cfg.stream = c->stream;
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at;
    cfg.numAttrs = pdl ? 1 : 0;
    (void)cudaLaunchKernelEx(&cfg, w4_gemv_mma_kernel<MB, CHAIN, ASYNC>, v, x, M, xvec, b, y, c->gvm_ws,
                             c->gvm_cnt, gs, L, c->flags);
}

/* The kernel instance for chain and async (the weights through registers or
 * a cp.async ring in shared memory) */
template <int MB>
static void gvm_launch_mb(hip_ctx *c, dim3 grid, bool chain, bool async, bool pdl,
                          const w4_view &v, const float *x, int64_t M, int xvec, const float *b,
                          float *y, int64_t gs, int64_t L)
{
    if (chain && async) gvm_launch<MB, true, true>(c, grid, pdl, v, x, M, xvec, b, y, gs, L);
    else if (chain) gvm_launch<MB, true, false>(c, grid, pdl, v, x, M, xvec, b, y, gs, L);
    else if (async) gvm_launch<MB, false, true>(c, grid, pdl, v, x, M, xvec, b, y, gs, L);
    else gvm_launch<MB, false, false>(c, grid, pdl, v, x, M, xvec, b, y, gs, L);
}

/* async: GPTQ_HIP_GVM=async (faster at 4096 x 11008, slower at 4096 x 4096
 * and over a decode step on the H200; bench/HIP_NOTES.md); pdl: unless
 * GPTQ_HIP_PDL=0 */
static int launch_gemv_mma(hip_ctx *c, const w4_view &v, const float *x, int64_t M, int xvec,
                           const float *b, float *y, bool async, bool pdl)
{
    const int64_t KS = (v.K / 8 + 3) / 4, tiles = (v.N + GVM_COLS - 1) / GVM_COLS;
    /* S blocks a column tile: about one wave of blocks (two a
     * multiprocessor), each warp L >= 1 k-steps; more when the block's X
     * would not fit in xs */
    int64_t S = 2 * (int64_t)(c->sm_count > 0 ? c->sm_count : 1) / tiles;
    if (S < 1) S = 1;
    if (S > (KS + GVM_WARPS - 1) / GVM_WARPS) S = (KS + GVM_WARPS - 1) / GVM_WARPS;
    const int64_t xsn = M <= 8 ? gvm_xs<1>::n : gvm_xs<2>::n;
    int64_t L = (KS + S * GVM_WARPS - 1) / (S * GVM_WARPS);
    if (L > 64) L = 64; /* the kernel's mask of mixed steps */
    while (L > 1 && M * 4 * GVM_WARPS * L > xsn) L--;
    S = (KS + GVM_WARPS * L - 1) / (GVM_WARPS * L);
    if (M * 4 * GVM_WARPS * L > xsn || S > 65535 || tiles > 0x7fffffff)
        return hip_fail(c, GPTQ_ERR_SHAPE, "matmul_q_fast: K = %lld, N = %lld, M = %lld exceed one "
                        "gemv-mma launch", (long long)v.K, (long long)v.N, (long long)M);
    if (S > 1) {
        const int st = gvm_workspace(c, (size_t)(S * M * v.N), (size_t)tiles);
        if (st) return st;
    }
    /* the hint: groups of gs k in order, if the shape allows it (g_idx decides) */
    const int64_t gs = v.ngroups > 0 && v.K % v.ngroups == 0 && (v.K / v.ngroups) % 32 == 0
                           ? v.K / v.ngroups : 0;
    const int chain = gvm_depth(v.K, L, 1, S) <= v.K + 2;
    const dim3 grid((unsigned)tiles, (unsigned)S);
    if (M <= 8) gvm_launch_mb<1>(c, grid, chain, async, pdl, v, x, M, xvec, b, y, gs, L);
    else gvm_launch_mb<2>(c, grid, chain, async, pdl, v, x, M, xvec, b, y, gs, L);
    return hip_check_launch(c, "matmul_q_fast (gemv-mma)");
}
#endif

int hip_matmul_q_fast(void *ctx, const gptq_qtensor *q, const gptq_buf *X, size_t x_off,
                      int64_t M, const gptq_buf *bias, gptq_buf *Y, size_t y_off,
                      const char **impl)
{
    hip_ctx *c = (hip_ctx *)ctx;
    static const char op[] = "matmul_q_fast";
    const char *mode = getenv("GPTQ_HIP_W4A16");
    if (!mode || !mode[0]) mode = "auto";
    if (strcmp(mode, "auto") && strcmp(mode, "simt") && strcmp(mode, "gemm") && strcmp(mode, "mma"))
        return hip_fail(c, GPTQ_ERR_INVALID,
                        "%s: GPTQ_HIP_W4A16=%s is none of auto, simt, gemm, mma", op, mode);
    const char *gvm = getenv("GPTQ_HIP_GVM"), *pdl = getenv("GPTQ_HIP_PDL");
    if (gvm && gvm[0] && strcmp(gvm, "reg") && strcmp(gvm, "async"))
        return hip_fail(c, GPTQ_ERR_INVALID, "%s: GPTQ_HIP_GVM=%s is neither reg nor async", op, gvm);
    if (pdl && pdl[0] && strcmp(pdl, "0") && strcmp(pdl, "1"))
        return hip_fail(c, GPTQ_ERR_INVALID, "%s: GPTQ_HIP_PDL=%s is neither 0 nor 1", op, pdl);
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
    /* 4 bits, M <= 16: the tensor-core GEMV (bench/HIP_NOTES.md: the fastest
     * decode path on the H200, at 16 rows 6.5x faster than gemm-mma) */
    if (q->bits == 4 && M <= 16 && q->K >= 32 && (!strcmp(mode, "auto") || !strcmp(mode, "mma")))
        path = "gemv-mma";
#endif
    if (impl) *impl = path;
    if (M == 0) return GPTQ_OK;

    const w4_view v = {(const uint32_t *)q->qweight->ptr, (const uint32_t *)q->qzeros->ptr,
                       (const uint16_t *)q->scales->ptr, (const int32_t *)q->g_idx->ptr,
                       q->bits, q->zero_add, q->K, q->N, q->ngroups};
    const float *x = HIP_CF32(X, x_off), *b = bias ? HIP_CF32(bias, 0) : NULL;
    float *y = HIP_F32(Y, y_off);
    const int xvec = q->K % 4 == 0 && (uintptr_t)x % 16 == 0;
#ifdef GPTQ_HIP_ON_NVIDIA
    if (!strcmp(path, "gemv-mma"))
        return launch_gemv_mma(c, v, x, M, xvec, b, y, gvm && !strcmp(gvm, "async"),
                               !(pdl && !strcmp(pdl, "0")));
#endif
    if (!strcmp(path, "gemv")) {
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
