/*
 * hip_impl.h — what the files of the HIP backend share: the buffer and
 * context layouts, error helpers, and the declarations of the slots each
 * file implements.
 *
 * One source, two toolchains: clang (HIP, AMD gfx942) includes the HIP
 * runtime; nvcc (CUDA, the H100 of the device machine) includes our own
 * hip_compat_nvidia.h, which maps the few hip* calls used here onto CUDA.
 *
 * Rules the backend follows (backend.h has the contract):
 *   - Every runtime call is checked; a failure becomes GPTQ_ERR_NOMEM (out
 *     of device memory) or GPTQ_ERR_BACKEND with a message in ctx->err.
 *   - All work runs in order on ctx->stream. Ops return as soon as their
 *     kernels are queued, except where a result must reach the host
 *     (download, sync, a failed factorization); errors a kernel meets while
 *     running show at the next sync/download.
 *   - The file is compiled with FMA contraction OFF (nvcc --fmad=false,
 *     clang -ffp-contract=off): products are fused only where the code says
 *     fmaf(). The quantization loop matches the CPU reference's arithmetic
 *     operation for operation (see hip_quant.hip).
 */
#ifndef GPTQ_HIP_IMPL_H
#define GPTQ_HIP_IMPL_H

#if defined(__CUDACC__) && !defined(__HIP__)
#include "hip_compat_nvidia.h"
#else
#include <hip/hip_runtime.h>
#endif

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

/* A device allocation. `nbytes` is what was asked for; `ptr` is 256-byte
 * aligned (hipMalloc). */
struct gptq_buf {
    size_t nbytes;
    void *ptr;
};

/* Device words the kernels report through (one zeroed allocation made at
 * create, 64-bit so that element indices of any matrix fit). Read back only
 * where the op must answer the host. */
enum {
    HIP_FLAG_MIN_A = 0,    /* atomicMin slots of one op (reset to ~0 before use) */
    HIP_FLAG_MIN_B = 1,
    HIP_FLAG_DEFERRED = 2, /* a kernel rejected its input: code (0: none) */
    HIP_FLAG_DEFER_A = 3,  /* details of that rejection */
    HIP_FLAG_DEFER_B = 4,
    HIP_FLAG_COUNT = 8
};
typedef unsigned long long hip_flag_t;

/* deferred error codes (HIP_FLAG_DEFERRED) */
enum {
    HIP_DEFER_NONE = 0,
    HIP_DEFER_GIDX = 1,  /* gptq_block: A = position j, B = group */
    HIP_DEFER_QGIDX = 2, /* dequantize/matmul_q: A = column k, B = g_idx[k] */
    HIP_DEFER_CODE = 3,  /* pack_codes: A = element r*C + k, B = the code */
    HIP_DEFER_INDEX = 4  /* gather: A = the dst row or column, B = its bad index */
};

/* Blocks of dot's first pass (fixed: the order of its sum is part of the
 * result). */
#define HIP_DOT_BLOCKS 1024

/* A kernel rejects its input: the first report wins (code, and two words
 * of detail); the host hears of it at its next sync (hip_sync_checked). */
#if defined(__CUDACC__) || defined(__HIP__)
__device__ static inline void hip_defer(hip_flag_t *flags, unsigned code, int64_t a, int64_t b)
{
    if (atomicCAS(&flags[HIP_FLAG_DEFERRED], 0ull, (hip_flag_t)code) == 0ull) {
        flags[HIP_FLAG_DEFER_A] = (hip_flag_t)a;
        flags[HIP_FLAG_DEFER_B] = (hip_flag_t)b;
    }
}
#endif

typedef struct hip_ctx {
    int device;
    hipStream_t stream;
    int sm_count;
    int smem_per_block;      /* default limit of dynamic + static shared memory */
    char device_name[256];
    hip_flag_t *flags;       /* (HIP_FLAG_COUNT) device words, see above */
    double *dot_part;        /* (HIP_DOT_BLOCKS) partial sums of dot, made at create */
    char err[1024];
} hip_ctx;

#define HIP_F32(b, off) ((float *)((b)->ptr) + (off))
#define HIP_CF32(b, off) ((const float *)((b)->ptr) + (off))

/* Record a message, return status. */
int hip_fail(hip_ctx *c, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* A runtime call failed: message "<what>: <name> (<string>)", status
 * GPTQ_ERR_NOMEM for out-of-memory, else GPTQ_ERR_BACKEND. Clears the
 * runtime's last-error state so later calls are not blamed. */
int hip_fail_rt(hip_ctx *c, hipError_t e, const char *what);
/* After a kernel launch: GPTQ_OK, or the launch error named by `kernel`. */
int hip_check_launch(hip_ctx *c, const char *kernel);
/* Wait for the stream, then report a deferred kernel error (flags). */
int hip_sync_checked(hip_ctx *c, const char *op);

#define HIP_TRY(c, call, what)                                   \
    do {                                                         \
        hipError_t e_ = (call);                                  \
        if (e_ != hipSuccess) return hip_fail_rt((c), e_, what); \
    } while (0)

/* Bounds of a (rows, cols) row-major f32 view with leading dimension ld at
 * element offset off inside buffer b (the same rule as the CPU backend). */
int hip_check_view(hip_ctx *c, const char *op, const char *what, const gptq_buf *b, size_t off,
                   int64_t rows, int64_t cols, int64_t ld);

/* hip_linalg.hip */
int hip_gemm(void *ctx, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
             const gptq_buf *A, size_t a_off, int64_t lda, const gptq_buf *B, size_t b_off,
             int64_t ldb, float beta, gptq_buf *C, size_t c_off, int64_t ldc);
int hip_hessian_accumulate(void *ctx, gptq_buf *S, const gptq_buf *X, size_t x_off, int64_t n,
                           int64_t C);
int hip_cholesky_inverse_upper(void *ctx, gptq_buf *H, int64_t C, int64_t *bad_col);

/* The tiled f32 GEMM on raw device pointers (used by the slots above and by
 * the Cholesky): C = alpha op(A) op(B) + beta C. `tiles` picks which
 * (128, 128) output tiles run: all, the upper (I <= J) or lower (I >= J)
 * block triangle (then M == N); `mirror` also adds each off-diagonal
 * tile's result, transposed, into C[J, I] (the Hessian). */
enum { HIP_TILES_ALL = 0, HIP_TILES_UPPER = 1, HIP_TILES_LOWER = 2 };
int hip_gemm_raw(hip_ctx *c, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                 float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                 float *C, int64_t ldc, int tiles, int mirror);

/* hip_mma.hip: linear_fast (TF32 tensor cores on NVIDIA; f32 on AMD for now) */
int hip_linear_fast(void *ctx, int64_t M, int64_t N, int64_t K, const gptq_buf *X, size_t x_off,
                    const gptq_buf *W, size_t w_off, gptq_buf *Y, size_t y_off);

int hip_dot(void *ctx, const gptq_buf *A, const gptq_buf *B, const gptq_buf *D, int64_t R,
            int64_t C, double *out);
int hip_dead_columns(void *ctx, gptq_buf *H, gptq_buf *W, int64_t R, int64_t C);
int hip_hessian_finish(void *ctx, const gptq_buf *S, gptq_buf *H, int64_t C, float scale,
                       float lambda, float *diag);

/* hip_quant.hip */
int hip_quant_grid(void *ctx, const gptq_buf *W, int64_t R, int64_t C, int64_t c0, int64_t g,
                   int64_t group, gptq_buf *scale, gptq_buf *zero, const gptq_grid_params *p);
int hip_gptq_block(void *ctx, const gptq_block_args *a);

/* hip_forward.hip: the forward ops (backend.h, FORWARD OPS) */
int hip_embedding(void *ctx, const gptq_buf *ids, size_t ids_off, int64_t T, const gptq_buf *E,
                  size_t e_off, int64_t V, int64_t D, gptq_buf *Y, size_t y_off, int accumulate);
int hip_rmsnorm(void *ctx, const gptq_buf *X, size_t x_off, const gptq_buf *w, size_t w_off,
                int64_t T, int64_t D, float eps, gptq_buf *Y, size_t y_off);
int hip_layernorm(void *ctx, const gptq_buf *X, size_t x_off, const gptq_buf *w, size_t w_off,
                  const gptq_buf *b, size_t b_off, int64_t T, int64_t D, float eps, gptq_buf *Y,
                  size_t y_off);
int hip_rope(void *ctx, gptq_buf *X, size_t x_off, int64_t T, int64_t nh, int64_t d,
             int64_t rot, const gptq_buf *pos, size_t pos_off, const gptq_buf *CS, int64_t P);
int hip_attention(void *ctx, const gptq_buf *Q, size_t q_off, const gptq_buf *K, size_t k_off,
                  const gptq_buf *V, size_t v_off, int64_t nseq, int64_t S, int64_t H, int64_t Hk,
                  int64_t d, float scale, int64_t window, float softcap, gptq_buf *O,
                  size_t o_off);
int hip_attention_kv(void *ctx, const gptq_buf *Q, size_t q_off, const gptq_buf *K,
                     size_t k_off, const gptq_buf *V, size_t v_off, int64_t T, int64_t p0,
                     int64_t H, int64_t Hk, int64_t d, float scale, int64_t window,
                     float softcap, gptq_buf *O, size_t o_off);
int hip_silu_mul(void *ctx, const gptq_buf *G, size_t g_off, const gptq_buf *U, size_t u_off,
                 int64_t n, gptq_buf *Y, size_t y_off);
int hip_gelu_tanh_mul(void *ctx, const gptq_buf *G, size_t g_off, const gptq_buf *U,
                      size_t u_off, int64_t n, gptq_buf *Y, size_t y_off);
int hip_scale(void *ctx, gptq_buf *X, size_t x_off, int64_t n, float s);
int hip_softcap(void *ctx, gptq_buf *X, size_t x_off, int64_t n, float cap);
int hip_relu(void *ctx, gptq_buf *X, size_t x_off, int64_t n);
int hip_add(void *ctx, const gptq_buf *A, size_t a_off, const gptq_buf *B, size_t b_off, int64_t n,
            gptq_buf *Y, size_t y_off);
int hip_bias_add(void *ctx, gptq_buf *X, size_t x_off, const gptq_buf *b, size_t b_off, int64_t T,
                 int64_t F);
int hip_cross_entropy(void *ctx, const gptq_buf *L, size_t l_off, const gptq_buf *tgt,
                      size_t tgt_off, int64_t T, int64_t V, gptq_buf *nll, size_t nll_off);

/* hip_packed.hip: the packed tensors */
int hip_pack_codes(void *ctx, const gptq_buf *codes, int64_t R, int64_t C, int bits,
                   gptq_buf *qweight);
int hip_dequantize(void *ctx, const gptq_qtensor *q, gptq_buf *W, size_t w_off);
int hip_matmul_q(void *ctx, const gptq_qtensor *q, const gptq_buf *X, size_t x_off, int64_t M,
                 const gptq_buf *bias, gptq_buf *Y, size_t y_off);
/* The checks every packed-tensor op makes (bits, shapes, buffer sizes), its
 * message naming op. */
int hip_check_qtensor(hip_ctx *c, const gptq_qtensor *q, const char *op);
int hip_gather(void *ctx, gptq_buf *dst, const gptq_buf *src, int64_t R, int64_t C, int64_t Rs,
               int64_t Cs, const gptq_buf *rows, const gptq_buf *cols, int esize);
int hip_to_f32(void *ctx, gptq_buf *dst, size_t dst_off, const gptq_buf *src, int64_t n, int dtype);

/* hip_w4a16.hip: matmul_q_fast (the GEMV for decode, the GEMMs for prefill) */
int hip_matmul_q_fast(void *ctx, const gptq_qtensor *q, const gptq_buf *X, size_t x_off,
                      int64_t M, const gptq_buf *bias, gptq_buf *Y, size_t y_off,
                      const char **impl);

#endif /* GPTQ_HIP_IMPL_H */
