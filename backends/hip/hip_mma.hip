/*
 * hip_mma.hip — linear_fast (backend.h): Y (M, N) = X (M, K) W^T with the
 * GPU's matrix units, for the forward passes of `--forward-math tf32`.
 *
 * NVIDIA (built by nvcc through hip_compat_nvidia.h): tensor cores in TF32,
 * through the WMMA API (m16n16k8; X and W rounded to TF32, a 10-bit
 * significand, when they are staged in shared memory; products accumulated
 * in f32). Tile: (128, 128) outputs per block of 8 warps, each warp a
 * (64, 32) piece = 4 x 2 fragments; k-steps of 32 (four mma k-steps), the
 * next k-step's global loads held in registers while the current one is
 * multiplied (16-byte loads: K % 4 == 0 and aligned rows, else the plain
 * f32 kernel runs instead). Edge tiles stage each fragment through shared
 * memory and store what is inside the matrix.
 *
 * AMD (gfx942): the plain f32 FMA kernel of hip_linalg.hip (hip_gemm_raw),
 * i.e. the exact f32 result. MI300X's matrix cores also multiply full f32
 * (v_mfma_f32_32x32x2f32); a kernel for them is not written yet, because no
 * AMD GPU here could test it (bench/HIP_NOTES.md).
 */
#include "hip_impl.h"

#ifdef GPTQ_HIP_ON_NVIDIA
#include <mma.h>

#define MM_BM 128
#define MM_BN 128
#define MM_BK 32
#define MM_LD (MM_BK + 4) /* shared row stride (floats): a multiple of 4, 16-byte rows apart */
#define MM_THREADS 256

namespace wmma = nvcuda::wmma;

typedef wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> frag_a;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major> frag_b;
typedef wmma::fragment<wmma::accumulator, 16, 16, 8, float> frag_c;

/* The 4 float4 a thread loads per (128, 32) tile of a K-contiguous matrix:
 * row r = tid / 8 + 32 i, column c = 4 (tid % 8). Rows outside give 0. */
__device__ static inline void mm_load(const float *__restrict__ P, int64_t rows, int64_t K,
                                      int64_t r0, int64_t k0, float4 v[4])
{
    const int tid = (int)threadIdx.x;
    const int c = 4 * (tid % 8);
    for (int i = 0; i < 4; i++) {
        const int64_t r = r0 + tid / 8 + 32 * i, k = k0 + c;
        if (r < rows && k < K) v[i] = *(const float4 *)(P + r * K + k);
        else v[i] = make_float4(0.f, 0.f, 0.f, 0.f);
    }
}

__device__ static inline void mm_store(float *S, const float4 v[4])
{
    const int tid = (int)threadIdx.x;
    const int c = 4 * (tid % 8);
    for (int i = 0; i < 4; i++) {
        float *d = S + (tid / 8 + 32 * i) * MM_LD + c;
        d[0] = wmma::__float_to_tf32(v[i].x);
        d[1] = wmma::__float_to_tf32(v[i].y);
        d[2] = wmma::__float_to_tf32(v[i].z);
        d[3] = wmma::__float_to_tf32(v[i].w);
    }
}

__global__ __launch_bounds__(MM_THREADS) void linear_tf32_kernel(
    const float *__restrict__ X, const float *__restrict__ W, float *__restrict__ Y, int64_t M,
    int64_t N, int64_t K)
{
    __shared__ __align__(32) float As[MM_BM * MM_LD];
    __shared__ __align__(32) float Bs[MM_BN * MM_LD];
    __shared__ __align__(32) float Cs[8][16 * 16];
    const int warp = (int)threadIdx.x / 32, lane = (int)threadIdx.x % 32;
    const int wm = warp / 4, wn = warp % 4; /* warp tile (64, 32) at (64 wm, 32 wn) */
    const int64_t m0 = (int64_t)blockIdx.y * MM_BM, n0 = (int64_t)blockIdx.x * MM_BN;

    frag_c acc[4][2];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], 0.0f);

    float4 va[4], vb[4];
    mm_load(X, M, K, m0, 0, va);
    mm_load(W, N, K, n0, 0, vb);
    for (int64_t k0 = 0; k0 < K; k0 += MM_BK) {
        __syncthreads(); /* the previous step's fragments are loaded */
        mm_store(As, va);
        mm_store(Bs, vb);
        __syncthreads();
        if (k0 + MM_BK < K) { /* next step's loads in flight during the mma */
            mm_load(X, M, K, m0, k0 + MM_BK, va);
            mm_load(W, N, K, n0, k0 + MM_BK, vb);
        }
        for (int kk = 0; kk < MM_BK; kk += 8) {
            frag_a a[4];
            frag_b b[2];
            for (int i = 0; i < 4; i++)
                wmma::load_matrix_sync(a[i], As + (64 * wm + 16 * i) * MM_LD + kk, MM_LD);
            for (int j = 0; j < 2; j++)
                wmma::load_matrix_sync(b[j], Bs + (32 * wn + 16 * j) * MM_LD + kk, MM_LD);
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
        }
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 2; j++) {
            const int64_t r = m0 + 64 * wm + 16 * i, c = n0 + 32 * wn + 16 * j;
            if (r + 16 <= M && c + 16 <= N && N % 8 == 0) {
                wmma::store_matrix_sync(Y + r * N + c, acc[i][j], (unsigned)N,
                                        wmma::mem_row_major);
            } else if (r < M && c < N) {
                wmma::store_matrix_sync(Cs[warp], acc[i][j], 16, wmma::mem_row_major);
                __syncwarp();
                for (int e = lane; e < 256; e += 32) {
                    const int64_t rr = r + e / 16, cc = c + e % 16;
                    if (rr < M && cc < N) Y[rr * N + cc] = Cs[warp][e];
                }
                __syncwarp();
            }
        }
}
#endif /* GPTQ_HIP_ON_NVIDIA */

int hip_linear_fast(void *ctx, int64_t M, int64_t N, int64_t K,
                    const gptq_buf *X, size_t x_off, // (M, K) f32
                    const gptq_buf *W, size_t w_off, // (N, K) f32
                    gptq_buf *Y, size_t y_off)       // (M, N) f32
{
    hip_ctx *c = (hip_ctx *)ctx;
    if (M < 0 || N < 0 || K < 0)
        return hip_fail(c, GPTQ_ERR_INVALID,
                        "linear_fast: negative dimension (M=%lld, N=%lld, K=%lld)", (long long)M,
                        (long long)N, (long long)K);
    int st = hip_check_view(c, "linear_fast", "X", X, x_off, M, K, K);
    if (!st) st = hip_check_view(c, "linear_fast", "W", W, w_off, N, K, K);
    if (!st) st = hip_check_view(c, "linear_fast", "Y", Y, y_off, M, N, N);
    if (st) return st;
    if (M == 0 || N == 0) return GPTQ_OK;
    const float *x = HIP_CF32(X, x_off), *w = HIP_CF32(W, w_off);
    float *y = HIP_F32(Y, y_off);
#ifdef GPTQ_HIP_ON_NVIDIA
    const int64_t ntm = (M + MM_BM - 1) / MM_BM, ntn = (N + MM_BN - 1) / MM_BN;
    const int vec = K % 4 == 0 && ((uintptr_t)x % 16) == 0 && ((uintptr_t)w % 16) == 0 &&
                    ((uintptr_t)y % 32) == 0;
    if (vec && K > 0 && ntm <= 65535) {
        linear_tf32_kernel<<<dim3((unsigned)ntn, (unsigned)ntm, 1), MM_THREADS, 0, c->stream>>>(
            x, w, y, M, N, K);
        return hip_check_launch(c, "linear_tf32");
    }
#endif
    return hip_gemm_raw(c, 0, 1, M, N, K, 1.0f, x, K, w, K, 0.0f, y, N, HIP_TILES_ALL, 0);
}
