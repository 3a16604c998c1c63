/*
 * solve.c — the block loop of the GPTQ solve (solve.h).
 */
#include "solve.h"

int gptq_solve_bufs_alloc(gptq_backend *be, gptq_solve_bufs *b, int64_t R, int64_t C,
                          int64_t ngroups, int64_t B, int with_u)
{
    *b = (gptq_solve_bufs){0};
    int st = gptq_be_alloc(be, (size_t)(R * C) * 4, &b->W, "the weight");
    if (!st) st = gptq_be_alloc(be, (size_t)(ngroups * R) * 4, &b->scale, "scales");
    if (!st) st = gptq_be_alloc(be, (size_t)(ngroups * R) * 4, &b->zero, "zeros");
    if (!st) st = gptq_be_alloc(be, (size_t)(R * C), &b->codes, "codes");
    if (!st) st = gptq_be_alloc(be, (size_t)(R * B) * 4, &b->Err, "block errors");
    if (!st) st = gptq_be_alloc(be, (size_t)R * 8, &b->loss, "losses");
    if (!st) st = gptq_be_alloc(be, (size_t)C * 4, &b->gidx, "group indices");
    if (!st && with_u) st = gptq_be_alloc(be, (size_t)(C * C) * 4, &b->U, "the inverse Hessian");
    if (st) gptq_solve_bufs_free(be, b);
    return st;
}

void gptq_solve_bufs_free(gptq_backend *be, gptq_solve_bufs *b)
{
    gptq_be_free(be, b->W);
    gptq_be_free(be, b->U);
    gptq_be_free(be, b->scale);
    gptq_be_free(be, b->zero);
    gptq_be_free(be, b->codes);
    gptq_be_free(be, b->Err);
    gptq_be_free(be, b->loss);
    gptq_be_free(be, b->gidx);
    *b = (gptq_solve_bufs){0};
}

int gptq_solve_blocks(gptq_backend *be, const gptq_solve_bufs *b, int64_t R, int64_t C, int64_t G,
                      int64_t B, int grid_given, const gptq_grid_params *gp,
                      const volatile sig_atomic_t *interrupt)
{
    for (int64_t j0 = 0; j0 < C; j0 += B) {
        if (interrupt && *interrupt) return gptq_error(GPTQ_ERR_INVALID, "interrupted");
        const int64_t nb = B < C - j0 ? B : C - j0;
        gptq_block_args a = {
            .W = b->W, .R = R, .C = C, .U = b->U, .j0 = j0, .nb = nb, .group_size = G,
            .grid_given = grid_given, .gidx = b->gidx, .scale = b->scale, .zero = b->zero,
            .codes = b->codes, .Err = b->Err, .loss = b->loss, .grid = *gp,
        };
        int st = gptq_be_check(be, be->iface->gptq_block(be->ctx, &a), "gptq_block");
        if (!st && b->U && j0 + nb < C)
            st = gptq_be_check(be,
                               be->iface->gemm(be->ctx, 0, 0, R, C - j0 - nb, nb, -1.0f, b->Err, 0,
                                               nb, b->U, (size_t)(j0 * C + j0 + nb), C, 1.0f,
                                               b->W, (size_t)(j0 + nb), C),
                               "gemm (lazy update)");
        if (st) return st;
    }
    return GPTQ_OK;
}
