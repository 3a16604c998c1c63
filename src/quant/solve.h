/*
 * solve.h — the GPTQ layer solve's internal entry points (internal to
 * libgptq): the Hessian from activations already on the backend, the solve
 * with the weight on the backend (the model pipeline's path), and the block
 * loop (the layer solve of gptq.c and the benchmarks run this one loop).
 */
#ifndef GPTQ_QUANT_SOLVE_H
#define GPTQ_QUANT_SOLVE_H

#include <signal.h>

#include "../internal.h"

/* The solve's buffers, all of one backend, for W (R, C) in quantization
 * order, ngroups groups and blocks of B columns. */
typedef struct gptq_solve_bufs {
    gptq_buf *W;            /* (R, C) f32; after the blocks: the dequantized weight */
    gptq_buf *U;            /* (C, C) f32 upper factor of H^-1; NULL: RTN */
    gptq_buf *scale, *zero; /* (ngroups, R) f32 */
    gptq_buf *codes;        /* (R, C) u8 */
    gptq_buf *Err;          /* (R, B) f32 */
    gptq_buf *loss;         /* (R) f64, zero-filled at allocation */
    gptq_buf *gidx;         /* (C) i32: group of quantization position j */
} gptq_solve_bufs;

/* Allocate them (U only with with_u); on failure the ones made are freed. */
int gptq_solve_bufs_alloc(gptq_backend *be, gptq_solve_bufs *b, int64_t R, int64_t C,
                          int64_t ngroups, int64_t B, int with_u);
void gptq_solve_bufs_free(gptq_backend *be, gptq_solve_bufs *b);

/* The blocks: one gptq_block per B columns, each followed (when b->U is
 * set) by the lazy-update gemm W[:, j0+nb:] -= Err U[j0:j0+nb, j0+nb:].
 * Groups of G columns; grid_given: scale and zero already hold every grid.
 * interrupt (may be NULL) is checked before every block. */
int gptq_solve_blocks(gptq_backend *be, const gptq_solve_bufs *b, int64_t R, int64_t C, int64_t G,
                      int64_t B, int grid_given, const gptq_grid_params *gp,
                      const volatile sig_atomic_t *interrupt);

/* As gptq_hessian_add, for X (n, cols) f32 in a backend buffer of h's
 * backend, starting x_off ELEMENTS in. The same row chunks as
 * gptq_hessian_add, in the same order, so the sum is the same bytes as
 * adding the downloaded rows. Unlike gptq_hessian_add it does not scan X
 * for NaN/Inf (that would mean a download): a non-finite input shows up in
 * the finished Hessian, which gptq_quantize_layer rejects. */
int gptq_hessian_add_buf(gptq_hessian *h, const gptq_buf *X, size_t x_off, int64_t n);

/* GPTQ for a weight that lives on the backend: W (R, C) f32, a buffer of be,
 * and h accumulated on be: the solve of gptq_quantize_layer_h (the same
 * statistics), with only qweight, scales and zeros coming down. On return
 * W holds the weight a loader of the checkpoint sees (the dequantize op on
 * pk: fp16 scales), pk the packed tensors on the host (v2 zeros: the format
 * is decided later), and res the scales, zeros, g_idx, perm and statistics
 * (codes and dequant NULL). R and C must suit the packing of cfg->bits. */
int gptq_quantize_layer_dev(gptq_backend *be, gptq_buf *W, int64_t R, int64_t C, gptq_hessian *h,
                            const gptq_quant_config *cfg, gptq_layer_result *res,
                            gptq_packed *pk);

#endif /* GPTQ_QUANT_SOLVE_H */
