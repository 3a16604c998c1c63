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
 * memory and store what is inside the matrix. v2 and v3 load with cp.async
 * into a 3-stage ring, v3 (the default) with (64, 64) warp tiles;
 * GPTQ_HIP_LINEAR=v1|v2 selects an earlier kernel (bench_hip_layer --linear
 * times all three).
 *
 * AMD (gfx942): the plain f32 FMA kernel of hip_linalg.hip (hip_gemm_raw),
 * i.e. the exact f32 result. MI300X's matrix cores also multiply full f32
 * (v_mfma_f32_32x32x2f32); a kernel for them is not written yet, because no
 * AMD GPU here could test it (bench/HIP_NOTES.md).
 */
#include <stdlib.h>
#include <string.h>

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

/* v2 / v3: the global -> shared copies are asynchronous (cp.async, 16
 * bytes, zero-filled outside the matrix) into a 3-stage ring, so two k-steps
 * of loads are in flight while one is multiplied, and one barrier per
 * k-step; the TF32 rounding is applied to the fragments after they are read
 * from shared memory. v2: v1's tiles, 108 KiB of dynamic shared memory; v3:
 * (128, 256) blocks of (64, 64) warp tiles, 162 KiB. */
#define M2_STAGES 3

__device__ static inline void cp_async16(float *smem, const float *gmem, int src_bytes)
{
    const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem),
                 "r"(src_bytes));
}
__device__ static inline void cp_async_commit(void) { asm volatile("cp.async.commit_group;\n" ::); }
__device__ static inline void cp_async_wait_1(void) { asm volatile("cp.async.wait_group 1;\n" ::); }

/* NF fragments of 16 columns per warp: NF = 2 is v2 (block (128, 128),
 * warps (64, 32)), NF = 4 is v3 (block (128, 256), warps (64, 64): twice the
 * mma per fragment read from shared memory). */
template <int NF> struct m2_cfg {
    static constexpr int BN = 64 * NF;                      /* 4 warps across N */
    static constexpr int STAGE = (MM_BM + BN) * MM_LD;      /* floats */
    static constexpr int SMEM = M2_STAGES * STAGE * 4;      /* bytes */
};

/* this thread's 16-byte copies of k-step k0 into stage S: 4 of X's 128
 * rows, BN / 32 of W's BN rows */
template <int NF>
__device__ static inline void m2_load(float *S, const float *__restrict__ X,
                                      const float *__restrict__ W, int64_t M, int64_t N, int64_t K,
                                      int64_t m0, int64_t n0, int64_t k0)
{
    const int tid = (int)threadIdx.x;
    const int c = 4 * (tid % 8);
    const int64_t k = k0 + c;
    for (int i = 0; i < 4; i++) {
        const int r = tid / 8 + 32 * i;
        const int64_t gm = m0 + r;
        const int ok = gm < M && k < K;
        cp_async16(S + r * MM_LD + c, ok ? X + gm * K + k : X, ok ? 16 : 0);
    }
    for (int i = 0; i < m2_cfg<NF>::BN / 32; i++) {
        const int r = tid / 8 + 32 * i;
        const int64_t gn = n0 + r;
        const int ok = gn < N && k < K;
        cp_async16(S + (MM_BM + r) * MM_LD + c, ok ? W + gn * K + k : W, ok ? 16 : 0);
    }
}

template <int NF>
__global__ __launch_bounds__(MM_THREADS) void linear_tf32_ring_kernel(
    const float *__restrict__ X, const float *__restrict__ W, float *__restrict__ Y, int64_t M,
    int64_t N, int64_t K)
{
    extern __shared__ __align__(128) float smem[];
    constexpr int BN = m2_cfg<NF>::BN, STAGE = m2_cfg<NF>::STAGE;
    const int warp = (int)threadIdx.x / 32, lane = (int)threadIdx.x % 32;
    const int wm = warp / 4, wn = warp % 4; /* warp tile (64, 16 NF) */
    const int64_t m0 = (int64_t)blockIdx.y * MM_BM, n0 = (int64_t)blockIdx.x * BN;
    const int64_t nk = (K + MM_BK - 1) / MM_BK;

    frag_c acc[4][NF];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < NF; j++) wmma::fill_fragment(acc[i][j], 0.0f);

    for (int s = 0; s < M2_STAGES - 1; s++) {
        if (s < nk) m2_load<NF>(smem + s * STAGE, X, W, M, N, K, m0, n0, s * MM_BK);
        cp_async_commit();
    }
    for (int64_t t = 0; t < nk; t++) {
        cp_async_wait_1(); /* k-step t has landed (this thread's copies) */
        __syncthreads();   /* ... everyone's; and k-step t-1's stage is free */
        const int64_t tn = t + M2_STAGES - 1;
        if (tn < nk)
            m2_load<NF>(smem + (tn % M2_STAGES) * STAGE, X, W, M, N, K, m0, n0, tn * MM_BK);
        cp_async_commit();
        const float *As = smem + (t % M2_STAGES) * STAGE, *Bs = As + MM_BM * MM_LD;
        for (int kk = 0; kk < MM_BK; kk += 8) {
            frag_a a[4];
            frag_b b[NF];
            for (int i = 0; i < 4; i++) {
                wmma::load_matrix_sync(a[i], As + (64 * wm + 16 * i) * MM_LD + kk, MM_LD);
                for (int e = 0; e < a[i].num_elements; e++)
                    a[i].x[e] = wmma::__float_to_tf32(a[i].x[e]);
            }
            for (int j = 0; j < NF; j++) {
                wmma::load_matrix_sync(b[j], Bs + (16 * NF * wn + 16 * j) * MM_LD + kk, MM_LD);
                for (int e = 0; e < b[j].num_elements; e++)
                    b[j].x[e] = wmma::__float_to_tf32(b[j].x[e]);
            }
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < NF; j++) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
        }
    }
    /* the ring is free now: edge tiles stage their fragments in it */
    asm volatile("cp.async.wait_group 0;\n" ::);
    __syncthreads();
    float(*Cs)[16 * 16] = (float(*)[16 * 16])smem;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < NF; j++) {
            const int64_t r = m0 + 64 * wm + 16 * i, c = n0 + 16 * NF * wn + 16 * j;
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

template <int NF>
static int launch_ring(hip_ctx *c, const float *x, const float *w, float *y, int64_t M, int64_t N,
                       int64_t K, int *attr_set, const char *name)
{
    if (!*attr_set) {
        HIP_TRY(c,
                hipFuncSetAttribute((const void *)linear_tf32_ring_kernel<NF>,
                                    hipFuncAttributeMaxDynamicSharedMemorySize, m2_cfg<NF>::SMEM),
                "hipFuncSetAttribute(linear_tf32)");
        *attr_set = 1;
    }
    const int64_t ntm = (M + MM_BM - 1) / MM_BM, ntn = (N + m2_cfg<NF>::BN - 1) / m2_cfg<NF>::BN;
    linear_tf32_ring_kernel<NF><<<dim3((unsigned)ntn, (unsigned)ntm, 1), MM_THREADS,
                                  m2_cfg<NF>::SMEM, c->stream>>>(x, w, y, M, N, K);
    return hip_check_launch(c, name);
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
        /* GPTQ_HIP_LINEAR=v1: the register-staged kernel (kept for comparison) */
        const char *kv = getenv("GPTQ_HIP_LINEAR");
        if (kv && !strcmp(kv, "v1")) {
            linear_tf32_kernel<<<dim3((unsigned)ntn, (unsigned)ntm, 1), MM_THREADS, 0,
                                 c->stream>>>(x, w, y, M, N, K);
            return hip_check_launch(c, "linear_tf32");
        }
        static int attr2 = 0, attr3 = 0;
        if (kv && !strcmp(kv, "v2"))
            return launch_ring<2>(c, x, w, y, M, N, K, &attr2, "linear_tf32_v2");
        return launch_ring<4>(c, x, w, y, M, N, K, &attr3, "linear_tf32_v3");
    }
#endif
    return hip_gemm_raw(c, 0, 1, M, N, K, 1.0f, x, K, w, K, 0.0f, y, N, HIP_TILES_ALL, 0);
}
