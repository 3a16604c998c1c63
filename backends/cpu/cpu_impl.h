/*
 * cpu_impl.h — what the files of the CPU backend share.
 *
 * Why this backend is the reference (read before changing any of it):
 *   - Every result element is computed in an order fixed by the code and by
 *     compile-time tile sizes, never by the number of threads: OpenMP only
 *     spreads independent tiles or rows over threads, and OpenBLAS is called
 *     single-threaded (openblas_set_num_threads(1) at create) on tiles whose
 *     boundaries do not depend on the thread count.
 *   - No -ffast-math, no FMA contraction (-ffp-contract=off, meson.build).
 *   - Rounding is rintf() in the default mode: round half to even, as
 *     torch.round.
 *   - OpenBLAS picks its kernels by CPU at run time; the tests and goldens
 *     fix them with OPENBLAS_CORETYPE so that machines of different
 *     generations give the same bytes.
 */
#ifndef GPTQ_CPU_IMPL_H
#define GPTQ_CPU_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

struct gptq_buf {
    size_t nbytes;
    unsigned char *data; /* 64-byte aligned */
};

typedef struct cpu_ctx {
    char err[1024];
    float *w4_scratch; /* matmul_q_fast's scratch (cpu_w4a16.c), kept between calls */
    size_t w4_n;       /* its size in floats */
} cpu_ctx;

/* Record a message in the context and return status. */
int cpu_fail(cpu_ctx *c, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Check that elements [off, off + n) of esize bytes lie inside buffer b
 * (a message naming op and what otherwise). */
int cpu_range(cpu_ctx *c, const gptq_buf *b, size_t off, int64_t n, size_t esize,
              const char *op, const char *what);

/* Typed views of a buffer at an element offset. */
#define CPU_F32(b, off) ((float *)(void *)((b)->data) + (off))
#define CPU_CF32(b, off) ((const float *)(const void *)((b)->data) + (off))

/* cpu_linalg.c: the deterministic tiled linear algebra. */
int cpu_gemm(void *ctx, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
             const gptq_buf *A, size_t a_off, int64_t lda, const gptq_buf *B, size_t b_off,
             int64_t ldb, float beta, gptq_buf *C, size_t c_off, int64_t ldc);
int cpu_hessian_accumulate(void *ctx, gptq_buf *S, const gptq_buf *X, size_t x_off, int64_t n,
                           int64_t C);
int cpu_cholesky_inverse_upper(void *ctx, gptq_buf *H, int64_t C, int64_t *bad_col);
int cpu_hessian_finish(void *ctx, const gptq_buf *S, gptq_buf *H, int64_t C, float scale,
                       float lambda, float *diag);
int cpu_dot(void *ctx, const gptq_buf *A, const gptq_buf *B, const gptq_buf *D, int64_t R,
            int64_t C, double *out);
int cpu_dead_columns(void *ctx, gptq_buf *H, gptq_buf *W, int64_t R, int64_t C);

/* cpu_quant.c: grids and the GPTQ block loop. */
int cpu_quant_grid(void *ctx, const gptq_buf *W, int64_t R, int64_t C, int64_t c0, int64_t g,
                   int64_t group, gptq_buf *scale, gptq_buf *zero, const gptq_grid_params *p);
int cpu_gptq_block(void *ctx, const gptq_block_args *a);

/* cpu_forward.c: the forward ops (backend.h, FORWARD OPS). */
int cpu_embedding(void *ctx, const gptq_buf *ids, size_t ids_off, int64_t T, const gptq_buf *E,
                  size_t e_off, int64_t V, int64_t D, gptq_buf *Y, size_t y_off, int accumulate);
int cpu_rmsnorm(void *ctx, const gptq_buf *X, size_t x_off, const gptq_buf *w, size_t w_off,
                int64_t T, int64_t D, float eps, gptq_buf *Y, size_t y_off);
int cpu_layernorm(void *ctx, const gptq_buf *X, size_t x_off, const gptq_buf *w, size_t w_off,
                  const gptq_buf *b, size_t b_off, int64_t T, int64_t D, float eps, gptq_buf *Y,
                  size_t y_off);
int cpu_rope(void *ctx, gptq_buf *X, size_t x_off, int64_t T, int64_t nh, int64_t d,
             int64_t rot, const gptq_buf *pos, size_t pos_off, const gptq_buf *CS, int64_t P);
int cpu_attention(void *ctx, const gptq_buf *Q, size_t q_off, const gptq_buf *K, size_t k_off,
                  const gptq_buf *V, size_t v_off, int64_t nseq, int64_t S, int64_t H,
                  int64_t Hk, int64_t d, float scale, int64_t window, float softcap,
                  gptq_buf *O, size_t o_off);
int cpu_attention_kv(void *ctx, const gptq_buf *Q, size_t q_off, const gptq_buf *K,
                     size_t k_off, const gptq_buf *V, size_t v_off, int64_t T, int64_t p0,
                     int64_t H, int64_t Hk, int64_t d, float scale, int64_t window,
                     float softcap, gptq_buf *O, size_t o_off);
int cpu_silu_mul(void *ctx, const gptq_buf *G, size_t g_off, const gptq_buf *U, size_t u_off,
                 int64_t n, gptq_buf *Y, size_t y_off);
int cpu_gelu_tanh_mul(void *ctx, const gptq_buf *G, size_t g_off, const gptq_buf *U,
                      size_t u_off, int64_t n, gptq_buf *Y, size_t y_off);
int cpu_scale(void *ctx, gptq_buf *X, size_t x_off, int64_t n, float s);
int cpu_softcap(void *ctx, gptq_buf *X, size_t x_off, int64_t n, float cap);
int cpu_relu(void *ctx, gptq_buf *X, size_t x_off, int64_t n);
int cpu_add(void *ctx, const gptq_buf *A, size_t a_off, const gptq_buf *B, size_t b_off,
            int64_t n, gptq_buf *Y, size_t y_off);
int cpu_bias_add(void *ctx, gptq_buf *X, size_t x_off, const gptq_buf *b, size_t b_off,
                 int64_t T, int64_t F);
int cpu_cross_entropy(void *ctx, const gptq_buf *L, size_t l_off, const gptq_buf *tgt,
                      size_t tgt_off, int64_t T, int64_t V, gptq_buf *nll, size_t nll_off);

/* cpu_packed.c: the packed tensors (pack_codes, dequantize, matmul_q). */
int cpu_pack_codes(void *ctx, const gptq_buf *codes, int64_t R, int64_t C, int bits,
                   gptq_buf *qweight);
int cpu_dequantize(void *ctx, const gptq_qtensor *q, gptq_buf *W, size_t w_off);
int cpu_matmul_q(void *ctx, const gptq_qtensor *q, const gptq_buf *X, size_t x_off, int64_t M,
                 const gptq_buf *bias, gptq_buf *Y, size_t y_off);
int cpu_gather(void *ctx, gptq_buf *dst, const gptq_buf *src, int64_t R, int64_t C, int64_t Rs,
               int64_t Cs, const gptq_buf *rows, const gptq_buf *cols, int esize);
int cpu_to_f32(void *ctx, gptq_buf *dst, size_t dst_off, const gptq_buf *src, int64_t n, int dtype);
/* Shapes, buffer sizes and g_idx of a packed tensor (a message naming op). */
int cpu_check_q(cpu_ctx *c, const gptq_qtensor *q, const char *op);
/* Row n (K) of the dequantized W of a checked packed tensor: the reference's values. */
void cpu_dequant_row(const gptq_qtensor *q, int64_t n, float *wrow);

/* cpu_w4a16.c: matmul_q_fast, the A16 matmul read straight from the packed
 * weight (SIMD paths chosen at run time; GPTQ_CPU_ISA forces one). */
int cpu_matmul_q_fast(void *ctx, const gptq_qtensor *q, const gptq_buf *X, size_t x_off,
                      int64_t M, const gptq_buf *bias, gptq_buf *Y, size_t y_off,
                      const char **impl);

#endif /* GPTQ_CPU_IMPL_H */
