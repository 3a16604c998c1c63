/*
 * solve.h — the block loop of the GPTQ solve over backend buffers
 * (internal to libgptq: the layer solve of gptq.c and the benchmark of its
 * ops run this one loop).
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

#endif /* GPTQ_QUANT_SOLVE_H */
