/*
 * hip_linalg.hip — the HIP backend's f32 linear algebra: a tiled GEMM
 * (gemm, and the lazy-batch update of the GPTQ solve), the Hessian
 * accumulation as a SYRK over the upper block triangle, and the blocked
 * Cholesky + triangular inverse behind cholesky_inverse_upper.
 *
 * No vendor BLAS: one GEMM kernel does all the matrix products. It is plain
 * f32 FMA arithmetic (no TF32 / tensor cores): the Hessian must stay within
 * f32 rounding of the CPU reference (relative error < 1e-5 in the tests).
 *
 * GEMM kernel: (128, 128) output tile per block of 256 threads, each
 * thread an (8, 8) sub-tile made of four (4, 4) pieces 64 rows/columns apart
 * (so its shared-memory reads are 16-byte vectors without bank conflicts),
 * k-steps of 8, two shared-memory buffers (the next k-step's global loads
 * are in flight while the current one is multiplied), 16-byte global loads
 * where the layout allows. Each output element is a single fmaf chain over
 * k in increasing order, then alpha * acc + beta * C.
 *
 * cholesky_inverse_upper uses the identity of the CPU backend (see
 * cpu_linalg.c): with J the reversal, factor J H J = L L^T (lower), then
 * U = J L^-1 J is upper with U^T U = H^-1. On the device:
 *   1. scan H for NaN/Inf (first one in memory order is reported);
 *   2. flip the C*C array in place (that is J H J);
 *   3. blocked right-looking Cholesky, blocks of 64: one kernel factors the
 *      diagonal block in shared memory AND inverts it (Dinv_k); the panel
 *      below is L21 = A21 Dinv_k^T (GEMM into a scratch panel, copied back);
 *      the trailing matrix gets A22 -= L21 L21^T (GEMM on lower tiles);
 *   4. triangular inverse X = L^-1 by right-looking block forward
 *      substitution, storing Y = X^T in the strict upper block triangle of
 *      the same array (free after step 3; the diagonal blocks of Y are the
 *      Dinv_k^T already computed), so no (C, C) workspace is needed:
 *        Y[0:k, k]   = Y-panel[0:k, k] Dinv_k^T              (GEMM + copy)
 *        Y[0:k+1, k+1:] -= Y[0:k+1, k] L[k+1:, k]^T            (two GEMMs)
 *      (block indices; Y starts as 0 there, the identity's off-diagonal);
 *   5. U[i][j] = X[C-1-i][C-1-j] = Y[C-1-j][C-1-i]: an in-place
 *      anti-transpose of the upper triangle; the strict lower part is zeroed;
 *   6. scan U for Inf/NaN (H too close to singular for f32).
 * A non-positive (or NaN) pivot stops with GPTQ_ERR_NUMERIC and *bad_col =
 * the column of H where the trailing block stops being positive definite,
 * C - 1 - (column of J H J), as the CPU backend reports it.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "hip_impl.h"

#define GT_M 128   /* output tile rows */
#define GT_N 128   /* output tile columns */
#define GT_K 8     /* k-step */
#define GT_PAD 4   /* shared-memory row padding (floats): conflict-free transposed stores */
#define GT_THREADS 256

typedef struct gemm_params {
    int64_t M, N, K;
    float alpha, beta;
    const float *A;
    int64_t lda;
    const float *B;
    int64_t ldb;
    float *C;
    int64_t ldc;
    int tiles;   /* HIP_TILES_* */
    int mirror;  /* also C[J, I] += tile (upper/lower modes) */
    int vec_a, vec_b, vec_c; /* 16-byte loads/stores allowed */
} gemm_params;

/* Tile t of a block triangle, counted row by row in the lower one:
 * t = r (r + 1) / 2 + c, 0 <= c <= r. */
__device__ static inline void tri_decode(int64_t t, int64_t *r, int64_t *c)
{
    int64_t rr = (int64_t)((sqrt(8.0 * (double)t + 1.0) - 1.0) * 0.5);
    while (rr * (rr + 1) / 2 > t) rr--;
    while ((rr + 1) * (rr + 2) / 2 <= t) rr++;
    *r = rr;
    *c = t - rr * (rr + 1) / 2;
}

/* Where this thread loads op(X) from: the 4 elements it brings into shared
 * memory at each k-step. TRANS = 1: X stored (K, MN) (op(X)(i, k) =
 * X[k * ld + i]), the thread takes k = k0 + tid / 32, i = i0 + 4 (tid % 32)
 * .. +3. TRANS = 0: X stored (MN, K), i = i0 + tid / 2, k = k0 + 4 (tid % 2)
 * .. +3. The pointer advances by `step` per k-step; `kk` is the thread's k
 * offset and `ok_i` whether its i (or, TRANS = 1 and vector, all 4) exists. */
typedef struct tile_src {
    const float *p;
    int64_t step;
    int kk;
    int ni; /* TRANS = 1: how many of i .. i+3 exist (0..4); TRANS = 0: i exists */
} tile_src;

template <int TRANS>
__device__ static inline tile_src tile_src_init(const float *X, int64_t ld, int64_t MN, int64_t i0)
{
    const int tid = (int)threadIdx.x;
    tile_src s;
    if (TRANS) {
        const int64_t i = i0 + 4 * (tid % 32);
        s.kk = tid / 32;
        s.p = X + (int64_t)s.kk * ld + i;
        s.step = GT_K * ld;
        const int64_t left = MN - i;
        s.ni = left <= 0 ? 0 : (left >= 4 ? 4 : (int)left);
    } else {
        const int64_t i = i0 + tid / 2;
        s.kk = 4 * (tid % 2);
        s.p = X + i * ld + s.kk;
        s.step = GT_K;
        s.ni = i < MN;
    }
    return s;
}

/* Load for the k-step starting at k0 (s.p already points there). */
template <int TRANS>
__device__ static inline void tile_load(const tile_src &s, int64_t K, int64_t k0, int vec,
                                        float r[4])
{
    const int64_t k = k0 + s.kk;
    if (TRANS) {
        if (k < K && vec && s.ni == 4) {
            float4 v = *(const float4 *)s.p;
            r[0] = v.x; r[1] = v.y; r[2] = v.z; r[3] = v.w;
        } else {
#pragma unroll
            for (int q = 0; q < 4; q++) r[q] = (k < K && q < s.ni) ? s.p[q] : 0.0f;
        }
    } else {
        if (s.ni && vec && k + 3 < K) {
            float4 v = *(const float4 *)s.p;
            r[0] = v.x; r[1] = v.y; r[2] = v.z; r[3] = v.w;
        } else {
#pragma unroll
            for (int q = 0; q < 4; q++) r[q] = (s.ni && k + q < K) ? s.p[q] : 0.0f;
        }
    }
}

/* Store what tile_load brought into the (GT_K, 128 + pad) shared tile. */
template <int TRANS>
__device__ static inline void tile_store(float (*S)[GT_M + GT_PAD], const float r[4])
{
    const int tid = (int)threadIdx.x;
    if (TRANS) {
        const int k = tid / 32, i = 4 * (tid % 32);
        *(float4 *)&S[k][i] = make_float4(r[0], r[1], r[2], r[3]);
    } else {
        const int i = tid / 2, k = 4 * (tid % 2);
#pragma unroll
        for (int q = 0; q < 4; q++) S[k + q][i] = r[q];
    }
}

/* Write row segment C[row][col .. col+3] = alpha * acc + beta * C (beta 0:
 * C is not read, as BLAS). */
__device__ static inline void store4(float *__restrict__ C, int64_t ldc, int64_t M, int64_t N,
                                     int64_t row, int64_t col, const float v[4], float alpha,
                                     float beta, int vec)
{
    if (row >= M) return;
    float *p = C + row * ldc + col;
    if (vec && col < N) {
        float4 o = make_float4(alpha * v[0], alpha * v[1], alpha * v[2], alpha * v[3]);
        if (beta != 0.0f) {
            float4 c = *(float4 *)p;
            o.x = o.x + beta * c.x;
            o.y = o.y + beta * c.y;
            o.z = o.z + beta * c.z;
            o.w = o.w + beta * c.w;
        }
        *(float4 *)p = o;
        return;
    }
#pragma unroll
    for (int q = 0; q < 4; q++)
        if (col + q < N) p[q] = beta != 0.0f ? alpha * v[q] + beta * p[q] : alpha * v[q];
}

template <int TA, int TB>
__global__ __launch_bounds__(GT_THREADS, 2) void gemm_kernel(gemm_params p)
{
    __shared__ __attribute__((aligned(16))) float As[2][GT_K][GT_M + GT_PAD];
    __shared__ __attribute__((aligned(16))) float Bs[2][GT_K][GT_N + GT_PAD];

    int64_t bi, bj;
    if (p.tiles == HIP_TILES_ALL) {
        bi = blockIdx.y;
        bj = blockIdx.x;
    } else {
        int64_t r, c;
        tri_decode((int64_t)blockIdx.x + (int64_t)blockIdx.y * gridDim.x, &r, &c);
        if (p.tiles == HIP_TILES_UPPER) {
            bi = c;
            bj = r;
        } else {
            bi = r;
            bj = c;
        }
        if (bi * GT_M >= p.M || bj * GT_N >= p.N) return;
    }
    const int64_t m0 = bi * GT_M, n0 = bj * GT_N;
    const int tid = (int)threadIdx.x, ty = tid / 16, tx = tid % 16;

    float acc[8][8];
#pragma unroll
    for (int i = 0; i < 8; i++)
#pragma unroll
        for (int j = 0; j < 8; j++) acc[i][j] = 0.0f;

    float ra[4], rb[4];
    tile_src sa = tile_src_init<TA>(p.A, p.lda, p.M, m0);
    tile_src sb = tile_src_init<TB ? 0 : 1>(p.B, p.ldb, p.N, n0);
    tile_load<TA>(sa, p.K, 0, p.vec_a, ra);
    tile_load<TB ? 0 : 1>(sb, p.K, 0, p.vec_b, rb);
    tile_store<TA>(As[0], ra);
    tile_store<TB ? 0 : 1>(Bs[0], rb);
    __syncthreads();

    int cur = 0;
    for (int64_t k0 = 0; k0 < p.K; k0 += GT_K) {
        const int more = k0 + GT_K < p.K;
        if (more) {
            sa.p += sa.step;
            sb.p += sb.step;
            tile_load<TA>(sa, p.K, k0 + GT_K, p.vec_a, ra);
            tile_load<TB ? 0 : 1>(sb, p.K, k0 + GT_K, p.vec_b, rb);
        }
#pragma unroll
        for (int kk = 0; kk < GT_K; kk++) {
            float a[8], b[8];
            const float4 a0 = *(const float4 *)&As[cur][kk][4 * ty];
            const float4 a1 = *(const float4 *)&As[cur][kk][64 + 4 * ty];
            const float4 b0 = *(const float4 *)&Bs[cur][kk][4 * tx];
            const float4 b1 = *(const float4 *)&Bs[cur][kk][64 + 4 * tx];
            a[0] = a0.x; a[1] = a0.y; a[2] = a0.z; a[3] = a0.w;
            a[4] = a1.x; a[5] = a1.y; a[6] = a1.z; a[7] = a1.w;
            b[0] = b0.x; b[1] = b0.y; b[2] = b0.z; b[3] = b0.w;
            b[4] = b1.x; b[5] = b1.y; b[6] = b1.z; b[7] = b1.w;
#pragma unroll
            for (int i = 0; i < 8; i++)
#pragma unroll
                for (int j = 0; j < 8; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        if (more) {
            /* the other buffer was last read before the previous barrier */
            tile_store<TA>(As[cur ^ 1], ra);
            tile_store<TB ? 0 : 1>(Bs[cur ^ 1], rb);
        }
        __syncthreads();
        cur ^= 1;
    }

    /* epilogue: rows m0 + {4ty.., 64+4ty..}, columns n0 + {4tx.., 64+4tx..} */
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const int64_t row = m0 + (i < 4 ? 4 * ty + i : 64 + 4 * ty + i - 4);
        store4(p.C, p.ldc, p.M, p.N, row, n0 + 4 * tx, &acc[i][0], p.alpha, p.beta, p.vec_c);
        store4(p.C, p.ldc, p.M, p.N, row, n0 + 64 + 4 * tx, &acc[i][4], p.alpha, p.beta, p.vec_c);
    }
    if (p.mirror && bi != bj) {
        /* C[J, I] gets the same values transposed: column j of the tile is
         * row n0 + j of C, its rows are contiguous columns there */
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const int64_t row = n0 + (j < 4 ? 4 * tx + j : 64 + 4 * tx + j - 4);
            float v0[4], v1[4];
#pragma unroll
            for (int q = 0; q < 4; q++) {
                v0[q] = acc[q][j];
                v1[q] = acc[4 + q][j];
            }
            /* M == N in the triangular modes */
            store4(p.C, p.ldc, p.N, p.M, row, m0 + 4 * ty, v0, p.alpha, p.beta, p.vec_c);
            store4(p.C, p.ldc, p.N, p.M, row, m0 + 64 + 4 * ty, v1, p.alpha, p.beta, p.vec_c);
        }
    }
}

static int aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

int hip_gemm_raw(hip_ctx *c, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                 float alpha,
                 const float *A, int64_t lda, // op(A) (M, K)
                 const float *B, int64_t ldb, // op(B) (K, N)
                 float beta, float *C, int64_t ldc, // (M, N)
                 int tiles, int mirror)
{
    if (M <= 0 || N <= 0) return GPTQ_OK;
    gemm_params p;
    p.M = M;
    p.N = N;
    p.K = K;
    p.alpha = alpha;
    p.beta = beta;
    p.A = A;
    p.lda = lda;
    p.B = B;
    p.ldb = ldb;
    p.C = C;
    p.ldc = ldc;
    p.tiles = tiles;
    p.mirror = mirror;
    /* 16-byte accesses: aligned base, leading dimension and contiguous
     * extent multiples of 4 (then a vector is wholly inside or outside) */
    p.vec_a = aligned16(A) && lda % 4 == 0 && (trans_a ? M % 4 == 0 : K % 4 == 0);
    p.vec_b = aligned16(B) && ldb % 4 == 0 && (trans_b ? K % 4 == 0 : N % 4 == 0);
    p.vec_c = aligned16(C) && ldc % 4 == 0 && N % 4 == 0 && (!mirror || M % 4 == 0);

    const int64_t ntm = (M + GT_M - 1) / GT_M, ntn = (N + GT_N - 1) / GT_N;
    dim3 grid;
    if (tiles == HIP_TILES_ALL) {
        if (ntm > 65535 || ntn > INT_MAX)
            return hip_fail(c, GPTQ_ERR_UNSUPPORTED, "gemm: %lld x %lld output is too large",
                            (long long)M, (long long)N);
        grid = dim3((unsigned)ntn, (unsigned)ntm, 1);
    } else {
        if (M != N) return hip_fail(c, GPTQ_ERR_INVALID, "gemm: triangular tiles need M == N");
        const int64_t nt = ntm * (ntm + 1) / 2;
        const int64_t gx = nt < 65536 ? nt : 65536;
        grid = dim3((unsigned)gx, (unsigned)((nt + gx - 1) / gx), 1);
    }
    const char *name;
    if (trans_a && trans_b) {
        gemm_kernel<1, 1><<<grid, GT_THREADS, 0, c->stream>>>(p);
        name = "gemm<T,T>";
    } else if (trans_a) {
        gemm_kernel<1, 0><<<grid, GT_THREADS, 0, c->stream>>>(p);
        name = "gemm<T,N>";
    } else if (trans_b) {
        gemm_kernel<0, 1><<<grid, GT_THREADS, 0, c->stream>>>(p);
        name = "gemm<N,T>";
    } else {
        gemm_kernel<0, 0><<<grid, GT_THREADS, 0, c->stream>>>(p);
        name = "gemm<N,N>";
    }
    return hip_check_launch(c, name);
}

/* ------------------------------------------------------------------------
 * gemm and hessian_accumulate slots
 * ---------------------------------------------------------------------- */

int hip_gemm(void *ctx, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
             const gptq_buf *A, size_t a_off, int64_t lda, // op(A) (M, K) f32
             const gptq_buf *B, size_t b_off, int64_t ldb, // op(B) (K, N) f32
             float beta, gptq_buf *C, size_t c_off, int64_t ldc) // (M, N) f32
{
    hip_ctx *cx = (hip_ctx *)ctx;
    if (M < 0 || N < 0 || K < 0)
        return hip_fail(cx, GPTQ_ERR_INVALID, "gemm: negative dimension (M=%lld, N=%lld, K=%lld)",
                        (long long)M, (long long)N, (long long)K);
    int st = hip_check_view(cx, "gemm", "A", A, a_off, trans_a ? K : M, trans_a ? M : K, lda);
    if (!st) st = hip_check_view(cx, "gemm", "B", B, b_off, trans_b ? N : K, trans_b ? K : N, ldb);
    if (!st) st = hip_check_view(cx, "gemm", "C", C, c_off, M, N, ldc);
    if (st) return st;
    if (M == 0 || N == 0) return GPTQ_OK;
    return hip_gemm_raw(cx, trans_a, trans_b, M, N, K, alpha, HIP_CF32(A, a_off), lda,
                        HIP_CF32(B, b_off), ldb, beta, HIP_F32(C, c_off), ldc, HIP_TILES_ALL, 0);
}

/* S += X^T X: tiles (I, J) with I <= J are X[:, I]^T X[:, J] accumulated
 * over all n rows from zero, then added to S[I, J] and (I < J) to S[J, I]
 * transposed: both triangles get the same values, as in the CPU backend. */
int hip_hessian_accumulate(void *ctx, gptq_buf *S, // (C, C) f32
                           const gptq_buf *X, size_t x_off, // (n, C) f32
                           int64_t n, int64_t C)
{
    hip_ctx *cx = (hip_ctx *)ctx;
    if (n < 0 || C < 0)
        return hip_fail(cx, GPTQ_ERR_INVALID, "hessian_accumulate: negative n=%lld or C=%lld",
                        (long long)n, (long long)C);
    int st = hip_check_view(cx, "hessian_accumulate", "S", S, 0, C, C, C > 0 ? C : 1);
    if (!st) st = hip_check_view(cx, "hessian_accumulate", "X", X, x_off, n, C, C > 0 ? C : 1);
    if (st) return st;
    if (n == 0 || C == 0) return GPTQ_OK;
    return hip_gemm_raw(cx, 1, 0, C, C, n, 1.0f, HIP_CF32(X, x_off), C, HIP_CF32(X, x_off), C,
                        1.0f, HIP_F32(S, 0), C, HIP_TILES_UPPER, 1);
}

/* H = scale * S, then H[i][i] += lambda (two roundings, as the host does
 * them: no contraction in this build). */
__global__ void hessian_finish_kernel(const float *__restrict__ S, float *__restrict__ H,
                                      int64_t C, float scale, float lambda)
{
    const int64_t n = C * C;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float v = S[i] * scale;
        if (i / C == i % C) v = v + lambda;
        H[i] = v;
    }
}

__global__ void hessian_diag_kernel(const float *__restrict__ S, float *__restrict__ d, int64_t C,
                                    float scale)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < C;
         i += (int64_t)gridDim.x * blockDim.x)
        d[i] = S[i * C + i] * scale;
}

/* dot: DOT_BLOCKS fixed block partials (a tree in shared memory), then one
 * block sums them in order: the same bits on every call. */
#define DOT_BLOCKS HIP_DOT_BLOCKS
#define DOT_THREADS 256
__global__ __launch_bounds__(DOT_THREADS) void dot_partial_kernel(const float *__restrict__ a,
                                                                  const float *__restrict__ b,
                                                                  const float *__restrict__ d,
                                                                  int64_t n, double *part)
{
    __shared__ double sh[DOT_THREADS];
    double s = 0.0;
    for (int64_t i = (int64_t)blockIdx.x * DOT_THREADS + threadIdx.x; i < n;
         i += (int64_t)DOT_BLOCKS * DOT_THREADS) {
        const double di = d ? (double)d[i] : 0.0;
        s += ((double)a[i] - di) * ((double)b[i] - di);
    }
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int w = DOT_THREADS / 2; w > 0; w /= 2) {
        if ((int)threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = sh[0];
}

__global__ void dot_final_kernel(double *part)
{
    if (threadIdx.x == 0 && blockIdx.x == 0) {
        double s = 0.0;
        for (int i = 0; i < DOT_BLOCKS; i++) s += part[i];
        part[0] = s;
    }
}

int hip_dot(void *ctx, const gptq_buf *A, const gptq_buf *B, const gptq_buf *D, int64_t R,
            int64_t C, double *out)
{
    hip_ctx *cx = (hip_ctx *)ctx;
    if (R < 0 || C < 0)
        return hip_fail(cx, GPTQ_ERR_INVALID, "dot: shape (%lld, %lld)", (long long)R,
                        (long long)C);
    const int64_t n = R * C;
    int st = hip_check_view(cx, "dot", "A", A, 0, 1, n, n > 0 ? n : 1);
    if (!st) st = hip_check_view(cx, "dot", "B", B, 0, 1, n, n > 0 ? n : 1);
    if (!st && D) st = hip_check_view(cx, "dot", "D", D, 0, 1, n, n > 0 ? n : 1);
    if (st) return st;
    *out = 0.0;
    if (n == 0) return GPTQ_OK;
    double *part = cx->dot_part;
    dot_partial_kernel<<<DOT_BLOCKS, DOT_THREADS, 0, cx->stream>>>(
        HIP_CF32(A, 0), HIP_CF32(B, 0), D ? HIP_CF32(D, 0) : NULL, n, part);
    st = hip_check_launch(cx, "dot");
    if (!st) {
        dot_final_kernel<<<1, 1, 0, cx->stream>>>(part);
        st = hip_check_launch(cx, "dot (final)");
    }
    if (st) return st;
    HIP_TRY(cx, hipMemcpyAsync(out, part, sizeof(double), hipMemcpyDeviceToHost, cx->stream),
            "dot (download)");
    HIP_TRY(cx, hipStreamSynchronize(cx->stream), "dot (download)");
    return GPTQ_OK;
}

int hip_hessian_finish(void *ctx, const gptq_buf *S, gptq_buf *H, int64_t C, float scale,
                       float lambda, float *diag)
{
    hip_ctx *cx = (hip_ctx *)ctx;
    if (C <= 0) return hip_fail(cx, GPTQ_ERR_INVALID, "hessian_finish: C=%lld", (long long)C);
    int st = hip_check_view(cx, "hessian_finish", "S", S, 0, C, C, C);
    if (!st && H) st = hip_check_view(cx, "hessian_finish", "H", H, 0, C, C, C);
    if (st) return st;
    if (H == S) return hip_fail(cx, GPTQ_ERR_INVALID, "hessian_finish: H must not be S");
    if (H) {
        const int64_t blocks = (C * C + 255) / 256 < 65536 ? (C * C + 255) / 256 : 65536;
        hessian_finish_kernel<<<(unsigned)blocks, 256, 0, cx->stream>>>(HIP_CF32(S, 0),
                                                                        HIP_F32(H, 0), C, scale,
                                                                        lambda);
        st = hip_check_launch(cx, "hessian_finish");
        if (st) return st;
    }
    if (diag) {
        float *d = NULL;
        HIP_TRY(cx, hipMalloc((void **)&d, (size_t)C * 4), "hipMalloc (hessian diagonal)");
        hessian_diag_kernel<<<(unsigned)((C + 255) / 256), 256, 0, cx->stream>>>(HIP_CF32(S, 0), d,
                                                                                 C, scale);
        st = hip_check_launch(cx, "hessian_finish (diagonal)");
        hipError_t e = hipSuccess;
        if (!st) e = hipMemcpyAsync(diag, d, (size_t)C * 4, hipMemcpyDeviceToHost, cx->stream);
        if (!st && e == hipSuccess) e = hipStreamSynchronize(cx->stream);
        (void)hipFree(d);
        if (!st && e != hipSuccess) return hip_fail_rt(cx, e, "hessian_finish (diagonal download)");
    }
    return st;
}

/* dead_columns: one thread per element of W (and of H's diagonal) */
__global__ void dead_columns_kernel(float *__restrict__ H, float *__restrict__ W, int64_t R,
                                    int64_t C)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < R * C;
         i += (int64_t)gridDim.x * blockDim.x)
        if (H[(i % C) * C + i % C] == 0.0f) W[i] = 0.0f;
}

__global__ void dead_diag_kernel(float *__restrict__ H, int64_t C)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < C;
         i += (int64_t)gridDim.x * blockDim.x)
        if (H[i * C + i] == 0.0f) H[i * C + i] = 1.0f;
}

int hip_dead_columns(void *ctx, gptq_buf *H, gptq_buf *W, int64_t R, int64_t C)
{
    hip_ctx *cx = (hip_ctx *)ctx;
    if (R <= 0 || C <= 0)
        return hip_fail(cx, GPTQ_ERR_INVALID, "dead_columns: shape (%lld, %lld)", (long long)R,
                        (long long)C);
    int st = hip_check_view(cx, "dead_columns", "H", H, 0, C, C, C);
    if (!st) st = hip_check_view(cx, "dead_columns", "W", W, 0, R, C, C);
    if (st) return st;
    /* W first: it reads the diagonal that the second kernel sets to 1 */
    const int64_t blocks = (R * C + 255) / 256 < 65536 ? (R * C + 255) / 256 : 65536;
    dead_columns_kernel<<<(unsigned)blocks, 256, 0, cx->stream>>>(HIP_F32(H, 0), HIP_F32(W, 0),
                                                                   R, C);
    st = hip_check_launch(cx, "dead_columns");
    if (st) return st;
    dead_diag_kernel<<<(unsigned)((C + 255) / 256), 256, 0, cx->stream>>>(HIP_F32(H, 0), C);
    return hip_check_launch(cx, "dead_columns (diagonal)");
}

/* ------------------------------------------------------------------------
 * cholesky_inverse_upper
 * ---------------------------------------------------------------------- */

#define CH_NB 64 /* Cholesky / inverse block: one diagonal block fits a thread block's shared memory */
#define CH_THREADS 256

/* index of the first non-finite element (atomicMin into *first) */
__global__ void nonfinite_scan_kernel(const float *__restrict__ a, int64_t n, hip_flag_t *first)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        if (!isfinite(a[i])) {
            atomicMin(first, (hip_flag_t)i);
            return; /* later elements of this thread have larger indices */
        }
}

/* a[p] <-> a[n-1-p]: the C*C array read backwards is J A J */
__global__ void flip_kernel(float *a, int64_t n)
{
    const int64_t half = n / 2;
    for (int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; p < half;
         p += (int64_t)gridDim.x * blockDim.x) {
        float v = a[p];
        a[p] = a[n - 1 - p];
        a[n - 1 - p] = v;
    }
}

/* Factor the lower triangle of the diagonal block (n, n), n <= CH_NB, at A
 * (ld lda) in place, A = L L^T, and write Dinv = L^-1 ((CH_NB, CH_NB),
 * zero outside its lower n x n triangle). A pivot that is not positive and
 * finite sets *bad = min(*bad, col0 + j) and stops (Dinv then undefined).
 * Right-looking: column j is scaled by 1/sqrt(pivot), then the trailing
 * triangle gets the rank-1 update. The inverse: thread c solves L x = e_c
 * by forward substitution (column c of L^-1). */
__global__ __launch_bounds__(CH_THREADS) void chol_diag_kernel(float *A, int64_t lda, int n,
                                                               float *Dinv, hip_flag_t *bad,
                                                               int64_t col0)
{
    __shared__ float L[CH_NB][CH_NB + 1];
    __shared__ float X[CH_NB][CH_NB + 1];
    const int tid = (int)threadIdx.x;
    if (*bad != ~0ull) return; /* an earlier block failed: H is undefined anyway */
    for (int idx = tid; idx < CH_NB * CH_NB; idx += CH_THREADS) {
        const int i = idx / CH_NB, j = idx % CH_NB;
        L[i][j] = (i < n && j <= i) ? A[(int64_t)i * lda + j] : 0.0f;
    }
    __syncthreads();
    for (int j = 0; j < n; j++) {
        const float d = L[j][j];
        if (!(d > 0.0f) || !isfinite(d)) {
            if (tid == 0) atomicMin(bad, (hip_flag_t)(col0 + j));
            return; /* every thread saw the same d: uniform exit */
        }
        const float ljj = sqrtf(d);
        __syncthreads(); /* all have read L[j][j] */
        for (int i = j + 1 + tid; i < n; i += CH_THREADS) L[i][j] = L[i][j] / ljj;
        if (tid == 0) L[j][j] = ljj;
        __syncthreads();
        for (int i = j + 1 + tid / 16; i < n; i += CH_THREADS / 16) {
            const float lij = L[i][j];
            for (int c = j + 1 + tid % 16; c <= i; c += 16) L[i][c] = L[i][c] - lij * L[c][j];
        }
        __syncthreads();
    }
    for (int idx = tid; idx < n * n; idx += CH_THREADS) {
        const int i = idx / n, j = idx % n;
        if (j <= i) A[(int64_t)i * lda + j] = L[i][j];
    }
    /* X = L^-1, column c by thread c; X[k][c] = 0 for k < c */
    if (tid < CH_NB) {
        const int c = tid;
        for (int i = 0; i < CH_NB; i++) {
            float v = 0.0f;
            if (c < n && i < n && i >= c) {
                float s = 0.0f;
                for (int k = c; k < i; k++) s = s + L[i][k] * X[k][c];
                v = ((i == c ? 1.0f : 0.0f) - s) / L[i][i];
            }
            X[i][c] = v;
        }
    }
    __syncthreads();
    for (int idx = tid; idx < CH_NB * CH_NB; idx += CH_THREADS) {
        const int i = idx / CH_NB, j = idx % CH_NB;
        Dinv[idx] = X[i][j];
    }
}

/* Zero the strict upper block triangle (block row < block column, blocks of
 * CH_NB): Y starts as the identity's off-diagonal part. */
__global__ void zero_upper_blocks_kernel(float *S, int64_t C)
{
    const int64_t i = (int64_t)blockIdx.y * blockDim.y + threadIdx.y;
    const int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < C && j < C && i / CH_NB < j / CH_NB) S[i * C + j] = 0.0f;
}

/* Y[a][b], a <= b: from the array (block row < block column) or, inside a
 * diagonal block k, Dinv_k^T. */
__device__ static inline float y_val(const float *S, const float *Dinv, int64_t C, int64_t a,
                                     int64_t b)
{
    const int64_t ka = a / CH_NB, kb = b / CH_NB;
    if (ka == kb)
        return Dinv[ka * CH_NB * CH_NB + (b - ka * CH_NB) * CH_NB + (a - ka * CH_NB)];
    return S[a * C + b];
}

/* U[i][j] = Y[C-1-j][C-1-i] for i <= j (pairs swapped in place by one
 * thread each), U = 0 below the diagonal. */
__global__ void assemble_u_kernel(float *S, const float *__restrict__ Dinv, int64_t C)
{
    const int64_t i = (int64_t)blockIdx.y * blockDim.y + threadIdx.y;
    const int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= C || j >= C) return;
    if (i > j) {
        S[i * C + j] = 0.0f;
        return;
    }
    if (i + j > C - 1) return; /* its partner's thread does this pair */
    const int64_t pi = C - 1 - j, pj = C - 1 - i;
    const float here = y_val(S, Dinv, C, i, j);
    const float there = y_val(S, Dinv, C, pi, pj);
    S[i * C + j] = there;
    S[pi * C + pj] = here;
}

static int read_flags(hip_ctx *c, hip_flag_t *f, const char *op)
{
    HIP_TRY(c, hipMemcpyAsync(f, c->flags, 2 * sizeof(hip_flag_t), hipMemcpyDeviceToHost, c->stream),
            op);
    HIP_TRY(c, hipStreamSynchronize(c->stream), op);
    return GPTQ_OK;
}

static int reset_min_flags(hip_ctx *c)
{
    HIP_TRY(c, hipMemsetAsync(c->flags + HIP_FLAG_MIN_A, 0xff, 2 * sizeof(hip_flag_t), c->stream),
            "cholesky_inverse_upper: resetting the error words");
    return GPTQ_OK;
}

static unsigned scan_blocks(int64_t n)
{
    int64_t b = (n + 255) / 256;
    return (unsigned)(b < 65536 ? (b > 0 ? b : 1) : 65536);
}

/* The body of cholesky_inverse_upper once the scratch is allocated. */
static int chol_inv_steps(hip_ctx *c, float *S, int64_t C, float *Dinv, float *T,
                          int64_t *bad_col)
{
    const int64_t nel = C * C, nblk = (C + CH_NB - 1) / CH_NB;
    hip_flag_t f[2];
    int st;

    /* 1. NaN/Inf */
    if ((st = reset_min_flags(c))) return st;
    nonfinite_scan_kernel<<<scan_blocks(nel), 256, 0, c->stream>>>(S, nel,
                                                                    c->flags + HIP_FLAG_MIN_B);
    if ((st = hip_check_launch(c, "nonfinite_scan"))) return st;
    if ((st = read_flags(c, f, "cholesky_inverse_upper: NaN/Inf scan"))) return st;
    if (f[1] != ~0ull) {
        const int64_t at = (int64_t)f[1];
        float v = 0.0f;
        HIP_TRY(c, hipMemcpyAsync(&v, S + at, 4, hipMemcpyDeviceToHost, c->stream),
                "cholesky_inverse_upper: reading a bad element");
        HIP_TRY(c, hipStreamSynchronize(c->stream), "cholesky_inverse_upper");
        if (bad_col) *bad_col = at % C;
        return hip_fail(c, GPTQ_ERR_NUMERIC,
                        "cholesky_inverse_upper: H (%lld x %lld) holds %g at (%lld, %lld)",
                        (long long)C, (long long)C, (double)v, (long long)(at / C),
                        (long long)(at % C));
    }

    /* 2. J H J */
    flip_kernel<<<scan_blocks(nel / 2), 256, 0, c->stream>>>(S, nel);
    if ((st = hip_check_launch(c, "flip"))) return st;

    /* 3. blocked Cholesky, lower */
    for (int64_t k = 0; k < nblk; k++) {
        const int64_t k0 = k * CH_NB, kb = C - k0 < CH_NB ? C - k0 : CH_NB;
        float *Dk = Dinv + k * CH_NB * CH_NB; // (CH_NB, CH_NB)
        chol_diag_kernel<<<1, CH_THREADS, 0, c->stream>>>(S + k0 * C + k0, C, (int)kb, Dk,
                                                          c->flags + HIP_FLAG_MIN_A, k0);
        if ((st = hip_check_launch(c, "chol_diag"))) return st;
        const int64_t r0 = k0 + kb, m = C - r0;
        if (m <= 0) break;
        /* L21 = A21 Dinv_k^T into T (m, kb), ld CH_NB; then back into A */
        st = hip_gemm_raw(c, 0, 1, m, kb, kb, 1.0f, S + r0 * C + k0, C, Dk, CH_NB, 0.0f, T, CH_NB,
                          HIP_TILES_ALL, 0);
        if (st) return st;
        HIP_TRY(c,
                hipMemcpy2DAsync(S + r0 * C + k0, (size_t)C * 4, T, CH_NB * 4, (size_t)kb * 4,
                                 (size_t)m, hipMemcpyDeviceToDevice, c->stream),
                "cholesky_inverse_upper: panel copy");
        /* A22 -= L21 L21^T on the lower tiles */
        st = hip_gemm_raw(c, 0, 1, m, m, kb, -1.0f, T, CH_NB, T, CH_NB, 1.0f, S + r0 * C + r0, C,
                          HIP_TILES_LOWER, 0);
        if (st) return st;
    }
    if ((st = read_flags(c, f, "cholesky_inverse_upper: factorization"))) return st;
    if (f[0] != ~0ull) {
        const int64_t col = C - 1 - (int64_t)f[0];
        if (bad_col) *bad_col = col;
        return hip_fail(c, GPTQ_ERR_NUMERIC,
                        "cholesky_inverse_upper: H (%lld x %lld) is not positive definite: the "
                        "factorization failed at column %lld (the trailing block from there is "
                        "not positive definite)",
                        (long long)C, (long long)C, (long long)col);
    }

    /* 4. Y = (L^-1)^T in the strict upper block triangle */
    {
        dim3 blk(32, 8), grd((unsigned)((C + 31) / 32), (unsigned)((C + 7) / 8));
        zero_upper_blocks_kernel<<<grd, blk, 0, c->stream>>>(S, C);
        if ((st = hip_check_launch(c, "zero_upper_blocks"))) return st;
    }
    for (int64_t k = 0; k < nblk; k++) {
        const int64_t k0 = k * CH_NB, kb = C - k0 < CH_NB ? C - k0 : CH_NB, r0 = k0 + kb;
        const float *Dk = Dinv + k * CH_NB * CH_NB;
        if (k > 0) {
            /* Y[0:k0, k] = B^T[0:k0, k] Dinv_k^T  (T: (k0, kb), ld CH_NB) */
            st = hip_gemm_raw(c, 0, 1, k0, kb, kb, 1.0f, S + k0, C, Dk, CH_NB, 0.0f, T, CH_NB,
                              HIP_TILES_ALL, 0);
            if (st) return st;
            HIP_TRY(c,
                    hipMemcpy2DAsync(S + k0, (size_t)C * 4, T, CH_NB * 4, (size_t)kb * 4,
                                     (size_t)k0, hipMemcpyDeviceToDevice, c->stream),
                    "cholesky_inverse_upper: inverse panel copy");
        }
        if (r0 >= C) break;
        /* B^T[0:r0, r0:] -= Y[0:r0, k] L[r0:, k]^T: rows above the diagonal
         * block from T, the diagonal block's rows from Dinv_k^T */
        if (k > 0) {
            st = hip_gemm_raw(c, 0, 1, k0, C - r0, kb, -1.0f, T, CH_NB, S + r0 * C + k0, C, 1.0f,
                              S + r0, C, HIP_TILES_ALL, 0);
            if (st) return st;
        }
        st = hip_gemm_raw(c, 1, 1, kb, C - r0, kb, -1.0f, Dk, CH_NB, S + r0 * C + k0, C, 1.0f,
                          S + k0 * C + r0, C, HIP_TILES_ALL, 0);
        if (st) return st;
    }

    /* 5. U = J X J, zero below */
    {
        dim3 blk(32, 8), grd((unsigned)((C + 31) / 32), (unsigned)((C + 7) / 8));
        assemble_u_kernel<<<grd, blk, 0, c->stream>>>(S, Dinv, C);
        if ((st = hip_check_launch(c, "assemble_u"))) return st;
    }

    /* 6. Inf/NaN in U */
    if ((st = reset_min_flags(c))) return st;
    nonfinite_scan_kernel<<<scan_blocks(nel), 256, 0, c->stream>>>(S, nel,
                                                                    c->flags + HIP_FLAG_MIN_B);
    if ((st = hip_check_launch(c, "nonfinite_scan"))) return st;
    if ((st = read_flags(c, f, "cholesky_inverse_upper: U scan"))) return st;
    if (f[1] != ~0ull) {
        const int64_t at = (int64_t)f[1];
        if (bad_col) *bad_col = at % C;
        return hip_fail(c, GPTQ_ERR_NUMERIC,
                        "cholesky_inverse_upper: H (%lld x %lld) is too close to singular: U "
                        "overflows at (%lld, %lld)",
                        (long long)C, (long long)C, (long long)(at / C), (long long)(at % C));
    }
    return GPTQ_OK;
}

int hip_cholesky_inverse_upper(void *ctx, gptq_buf *H, // (C, C) f32, in place
                               int64_t C, int64_t *bad_col)
{
    hip_ctx *c = (hip_ctx *)ctx;
    if (bad_col) *bad_col = -1;
    if (C < 0)
        return hip_fail(c, GPTQ_ERR_INVALID, "cholesky_inverse_upper: negative C=%lld",
                        (long long)C);
    int st = hip_check_view(c, "cholesky_inverse_upper", "H", H, 0, C, C, C > 0 ? C : 1);
    if (st) return st;
    if (C == 0) return GPTQ_OK;
    if (C > 2000000000LL / CH_NB)
        return hip_fail(c, GPTQ_ERR_UNSUPPORTED, "cholesky_inverse_upper: C=%lld is too large",
                        (long long)C);

    /* scratch: the inverted diagonal blocks and one (C, CH_NB) panel */
    const int64_t nblk = (C + CH_NB - 1) / CH_NB;
    const size_t dbytes = (size_t)nblk * CH_NB * CH_NB * 4, tbytes = (size_t)C * CH_NB * 4;
    void *d = NULL, *t = NULL;
    hipError_t e = hipMalloc(&d, dbytes + tbytes);
    if (e != hipSuccess) {
        (void)hipGetLastError();
        size_t fr = 0, tot = 0;
        (void)hipMemGetInfo(&fr, &tot);
        (void)hipGetLastError();
        return hip_fail(c, e == hipErrorOutOfMemory ? GPTQ_ERR_NOMEM : GPTQ_ERR_BACKEND,
                        "cholesky_inverse_upper: scratch of %zu bytes (%.1f MiB) for C=%lld: %s; "
                        "%s has %.1f MiB free of %.1f MiB",
                        dbytes + tbytes, (double)(dbytes + tbytes) / 1048576.0, (long long)C,
                        hipGetErrorString(e), c->device_name, (double)fr / 1048576.0,
                        (double)tot / 1048576.0);
    }
    t = (char *)d + dbytes;
    st = chol_inv_steps(c, HIP_F32(H, 0), C, (float *)d, (float *)t, bad_col);
    /* hipFree waits for the queued kernels that still use the scratch */
    hipError_t fe = hipFree(d);
    if (!st && fe != hipSuccess) return hip_fail_rt(c, fe, "cholesky_inverse_upper: freeing scratch");
    (void)hipGetLastError();
    return st;
}
