/*
 * gptq.c — the GPTQ driver: Hessian accumulation and the layer solve.
 *
 * Decisions live here (dead columns, act-order permutation, groups, damping
 * and its retries, block schedule); arithmetic lives in the backend and is
 * reached only through the vtable (backends/backend.h).
 *
 * Conventions fixed by this file (README "Algorithm"):
 *   - H = (2/n) * S, S = sum over batches of Xb^T Xb in the order given, n
 *     counted in rows of X (tokens, as GPTQModel; the paper code counts
 *     sequences, which scales H and the reported loss by seqlen).
 *   - Batches larger than GPTQ_HESSIAN_CHUNK rows are cut into chunks of
 *     that many rows (a constant, so the arithmetic does not depend on the
 *     machine).
 *   - Act-order sorts columns by diag(H) descending, ties by column index.
 *   - GAR (act_group_aware) orders whole groups, then columns inside each
 *     group (quant_order below states the rules and their sources).
 *   - Damp: lambda = damp_percent * mean(diag H) (mean in double), retried
 *     with damp_percent + k * damp_auto_increment (k = 1, 2, ..., in
 *     double: a float sum stops growing once the increment falls below half
 *     its ulp) while the Cholesky fails, up to damp_max and at most
 *     GPTQ_DAMP_MAX_RETRIES times; a retry whose lambda rounds to the same
 *     float as the last try's is refused (it would fail alike). Every damp
 *     tried is reported.
 *   - Grids at group starts come from the current (in-block updated) W; the
 *     block and group sizes are powers of two so a group never straddles a
 *     partly updated block.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../internal.h"
#include "../format/format.h"
#include "solve.h"

#ifndef GPTQ_HESSIAN_CHUNK
#define GPTQ_HESSIAN_CHUNK 4096 /* a constant: part of the defined arithmetic */
#endif

void gptq_quant_config_default(gptq_quant_config *c)
{
    memset(c, 0, sizeof *c);
    c->bits = 4;
    c->group_size = 128;
    c->sym = 1;
    c->desc_act = 0;
    c->act_group_aware = -1;
    c->static_groups = 0;
    c->mse = 0;
    c->mse_norm = 2.4f;
    c->mse_grid = 100;
    c->mse_maxshrink = 0.8f;
    c->damp_percent = 0.01f;
    c->damp_auto_increment = 0.01f;
    c->damp_max = 1.0f;
    c->block_size = 128;
    c->method = GPTQ_METHOD_GPTQ;
}

static int is_pow2(int64_t x) { return x > 0 && (x & (x - 1)) == 0; }

int gptq_quant_config_act_group_aware(const gptq_quant_config *c)
{
    if (c->method != GPTQ_METHOD_GPTQ) return 0; /* RTN has no Hessian to order by */
    if (c->act_group_aware != -1) return c->act_group_aware == 1;
    return !c->desc_act && c->group_size != -1;
}

int gptq_quant_config_check(const gptq_quant_config *c, int64_t rows, int64_t cols)
{
    if (gptq_format_check_bits(GPTQ_ERR_INVALID, "--bits", c->bits)) return GPTQ_ERR_INVALID;
    if (!(c->group_size == -1 || (c->group_size >= 16 && is_pow2(c->group_size))))
        return gptq_error(GPTQ_ERR_INVALID,
                          "--group-size %d: must be -1 or a power of two >= 16", c->group_size);
    if (!is_pow2(c->block_size) || c->block_size > 65536)
        return gptq_error(GPTQ_ERR_INVALID, "--block-size %d: must be a power of two in [1, 65536]",
                          c->block_size);
    /* 0 asks for no damping (retries add it only where the Cholesky fails);
     * a checkpoint's config needs (0, 1): the pipeline checks that */
    if (!(c->damp_percent >= 0.0f && c->damp_percent < 1.0f))
        return gptq_error(GPTQ_ERR_INVALID, "--damp-percent %g: must be in [0, 1)",
                          (double)c->damp_percent);
    if (!(c->damp_auto_increment >= 0.0f && c->damp_auto_increment <= 1.0f))
        return gptq_error(GPTQ_ERR_INVALID, "--damp-auto-increment %g: must be in [0, 1]",
                          (double)c->damp_auto_increment);
    if (!(c->damp_max >= c->damp_percent && c->damp_max <= 10.0f))
        return gptq_error(GPTQ_ERR_INVALID, "damp_max %g: must be in [damp_percent %g, 10]",
                          (double)c->damp_max, (double)c->damp_percent);
    if (c->mse && (c->mse_grid <= 0 || !(c->mse_maxshrink > 0.0f) || c->mse_maxshrink > 1.0f ||
                   !(c->mse_norm > 0.0f)))
        return gptq_error(GPTQ_ERR_INVALID, "bad --mse parameters");
    if (c->static_groups && c->group_size == -1)
        return gptq_error(GPTQ_ERR_INVALID, "--static-groups needs a --group-size");
    if (c->act_group_aware < -1 || c->act_group_aware > 1)
        return gptq_error(GPTQ_ERR_INVALID, "act_group_aware %d: must be -1 (auto), 0 or 1",
                          c->act_group_aware);
    /* as GPTQModel: both asked is an error (its QuantizeConfig raises), and
     * GAR orders groups, which a one-group row does not have */
    if (c->act_group_aware == 1 && c->desc_act)
        return gptq_error(GPTQ_ERR_INVALID, "--act-group-aware and --desc-act exclude each other "
                          "(GAR is act-order within groups; give one)");
    if (c->act_group_aware == 1 && c->group_size == -1)
        return gptq_error(GPTQ_ERR_INVALID, "--act-group-aware needs a --group-size (GAR orders "
                          "groups; -1 makes one group per row)");
    if (c->method != GPTQ_METHOD_GPTQ && c->method != GPTQ_METHOD_RTN)
        return gptq_error(GPTQ_ERR_INVALID, "unknown method %d", (int)c->method);
    if (rows <= 0 || cols <= 0)
        return gptq_error(GPTQ_ERR_SHAPE, "layer has %lld rows and %lld columns: both must be > 0",
                          (long long)rows, (long long)cols);
    return GPTQ_OK;
}

/* ------------------------------------------------------------------ */
/* Hessian                                                             */
/* ------------------------------------------------------------------ */

struct gptq_hessian {
    gptq_backend *be;
    int64_t cols, n;
    gptq_buf *S; /* (cols, cols) f32 sum of X^T X */
    gptq_buf *X; /* (GPTQ_HESSIAN_CHUNK, cols) f32 staging */
};

int gptq_hessian_new(gptq_backend *be, int64_t cols, gptq_hessian **out)
{
    *out = NULL;
    if (cols <= 0) return gptq_error(GPTQ_ERR_INVALID, "hessian: %lld columns", (long long)cols);
    gptq_hessian *h = gptq_calloc(1, sizeof *h, "hessian");
    if (!h) return GPTQ_ERR_NOMEM;
    h->be = be;
    h->cols = cols;
    int st = gptq_be_alloc(be, (size_t)(cols * cols) * 4, &h->S, "the Hessian");
    if (!st) st = gptq_be_alloc(be, (size_t)(GPTQ_HESSIAN_CHUNK * cols) * 4, &h->X,
                                "calibration inputs");
    if (st) {
        gptq_hessian_free(h);
        return st;
    }
    *out = h;
    return GPTQ_OK;
}

int gptq_hessian_add(gptq_hessian *h, const float *X, int64_t n)
{
    const int64_t C = h->cols;
    if (n < 0) return gptq_error(GPTQ_ERR_INVALID, "hessian: negative row count");
    /* the first non-finite element (a min-reduction: the same answer for
     * any thread count; this scan is memory-bound, so spread it) */
    int64_t bad = INT64_MAX;
#pragma omp parallel for reduction(min : bad) schedule(static)
    for (int64_t i = 0; i < n * C; i++)
        if (!isfinite(X[i]) && i < bad) bad = i;
    if (bad != INT64_MAX)
        return gptq_error(GPTQ_ERR_NUMERIC, "calibration input X has %s at row %lld, column %lld",
                          isnan(X[bad]) ? "NaN" : "Inf", (long long)(bad / C),
                          (long long)(bad % C));
    for (int64_t r0 = 0; r0 < n; r0 += GPTQ_HESSIAN_CHUNK) {
        int64_t m = n - r0 < GPTQ_HESSIAN_CHUNK ? n - r0 : GPTQ_HESSIAN_CHUNK;
        int st = gptq_be_upload(h->be, h->X, 0, X + r0 * C, (size_t)(m * C) * 4);
        if (!st)
            st = gptq_be_check(h->be,
                               h->be->iface->hessian_accumulate(h->be->ctx, h->S, h->X, 0, m, C),
                               "hessian_accumulate");
        if (st) return st;
    }
    h->n += n;
    return GPTQ_OK;
}

int gptq_hessian_add_buf(gptq_hessian *h, const gptq_buf *X, size_t x_off, int64_t n)
{
    const int64_t C = h->cols;
    if (n < 0) return gptq_error(GPTQ_ERR_INVALID, "hessian: negative row count");
    for (int64_t r0 = 0; r0 < n; r0 += GPTQ_HESSIAN_CHUNK) {
        int64_t m = n - r0 < GPTQ_HESSIAN_CHUNK ? n - r0 : GPTQ_HESSIAN_CHUNK;
        int st = gptq_be_check(h->be,
                               h->be->iface->hessian_accumulate(h->be->ctx, h->S, X,
                                                                x_off + (size_t)(r0 * C), m, C),
                               "hessian_accumulate");
        if (st) return st;
    }
    h->n += n;
    return GPTQ_OK;
}

int64_t gptq_hessian_count(const gptq_hessian *h) { return h->n; }

/* H = (2/n) S: the one f32 factor every use of the sum applies */
static float hessian_scale(const gptq_hessian *h) { return (float)(2.0 / (double)h->n); }

int gptq_hessian_get(gptq_hessian *h, float *H)
{
    const int64_t C = h->cols;
    if (h->n <= 0) return gptq_error(GPTQ_ERR_INVALID, "hessian: no calibration rows were added");
    int st = gptq_be_download(h->be, h->S, 0, H, (size_t)(C * C) * 4);
    if (st) return st;
    const float f = hessian_scale(h);
#pragma omp parallel for schedule(static) if (C > 1024)
    for (int64_t i = 0; i < C * C; i++) H[i] *= f;
    return GPTQ_OK;
}

void gptq_hessian_free(gptq_hessian *h)
{
    if (!h) return;
    gptq_be_free(h->be, h->S);
    gptq_be_free(h->be, h->X);
    free(h);
}

/* ------------------------------------------------------------------ */
/* The layer solve                                                     */
/* ------------------------------------------------------------------ */

void gptq_layer_result_free(gptq_layer_result *r)
{
    if (!r) return;
    free(r->codes);
    free(r->scales);
    free(r->zeros);
    free(r->g_idx);
    free(r->perm);
    free(r->dequant);
    memset(r, 0, sizeof *r);
}

/* Act-order: argsort of diag(H) descending, ties by column index (a total
 * order, so qsort's instability cannot show). C11 qsort has no context
 * argument: the diagonal is passed through a thread-local pointer (GAR's
 * group scores go the same way). */
static _Thread_local const float *tl_diag;
static int cmp_desc(const void *pa, const void *pb)
{
    int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    float da = tl_diag[a], db = tl_diag[b];
    if (da > db) return -1;
    if (da < db) return 1;
    return (a > b) - (a < b);
}

/* GAR (group aware reordering; Gafni, Karnieli, Hanani, "Dual Precision
 * Quantization for Efficient and Accurate Deep Neural Networks Inference",
 * CVPRW 2025), as GPTQModel implements it (its act_group_aware; read in
 * ModelCloud/GPTQModel gptqmodel/quantization/gar.py, gptq.py quantize()
 * and config.py, tags v5.0.0 to v7.3.4):
 *   - diag(H) after the dead columns are set to 1 (gptq.py does that first);
 *   - the G columns of each full group sorted by diag(H) descending
 *     (compute_local_perms: torch.sort/topk, unstable, ties unspecified);
 *   - the full groups ordered by their score, the largest diag(H) in the
 *     group (compute_global_perm, metric "max" by default; "mean", "sum",
 *     "median" exist but quantize() never asks for them), descending, by a
 *     stable argsort since GPTQModel PR #1973 (ties keep group order);
 *   - a last partial group (C % G columns) appended after them in column
 *     order (extend_perm_with_tail, since PR #2762; before it 5.0 dropped
 *     those columns);
 *   - grids at every G-th position of that order from the current W, as
 *     without GAR, each stored as its original group's grid, so g_idx =
 *     k / G (gptq.py reorders its scale list by the inverse group order);
 *   - config.py: act_group_aware None (unset) becomes True for GPTQ;
 *     desc_act True with it unset turns it off (with a warning); both True
 *     raises ValueError; a dynamic rule's desc_act: true turns it off for
 *     its module; group_size <= 0 with it raises (gptq.py, PR #2761).
 * Ours differs where GPTQModel leaves a choice open: ties inside a group
 * go by column index (a total order, the same bytes on every machine); and
 * with static groups each column uses its own group's grid (group
 * perm[j] / G), where GPTQModel's static branch indexes its grids by the
 * quantization position for GAR, i.e. by a grid computed on other columns.
 * score and order: room for C / G entries each. */
static void gar_order(int64_t C, int64_t G, const float *diag, float *score, int32_t *order,
                      int32_t *perm)
{
    const int64_t nfull = C / G;
    for (int64_t g = 0; g < nfull; g++) {
        score[g] = diag[g * G];
        for (int64_t k = g * G + 1; k < (g + 1) * G; k++)
            if (diag[k] > score[g]) score[g] = diag[k];
        order[g] = (int32_t)g;
    }
    tl_diag = score;
    qsort(order, (size_t)nfull, sizeof *order, cmp_desc);
    tl_diag = diag;
    for (int64_t p = 0; p < nfull; p++) {
        for (int64_t i = 0; i < G; i++) perm[p * G + i] = (int32_t)(order[p] * G + i);
        qsort(perm + p * G, (size_t)G, sizeof *perm, cmp_desc);
    }
    for (int64_t k = nfull * G; k < C; k++) perm[k] = (int32_t)k;
}

/* The quantization order and the groups: perm (act-order: diag descending,
 * ties by column; GAR: gar_order; else the identity), gidx[j] the group
 * whose grid position j uses, and res->perm, res->g_idx[k] (the group of
 * column k, as the checkpoint stores it). Act-order's groups are runs of G
 * positions (g_idx = position / G); static groups and GAR keep each
 * column's own group (g_idx = k / G). score, order: gar_order's room. */
static void quant_order(const gptq_quant_config *cfg, int64_t C, const float *diag, int act,
                        int gar, float *score, int32_t *order, int32_t *perm, int32_t *gidx,
                        gptq_layer_result *res)
{
    const int64_t G = cfg->group_size == -1 ? C : cfg->group_size;
    const int own_group = cfg->static_groups || gar;
    for (int64_t j = 0; j < C; j++) perm[j] = (int32_t)j;
    if (act) {
        tl_diag = diag;
        qsort(perm, (size_t)C, sizeof *perm, cmp_desc);
    } else if (gar) {
        gar_order(C, G, diag, score, order, perm);
    }
    for (int64_t j = 0; j < C; j++) {
        gidx[j] = (int32_t)((own_group ? perm[j] : j) / G);
        res->perm[j] = perm[j];
        res->g_idx[perm[j]] = own_group ? (int32_t)(perm[j] / G) : (int32_t)(j / G);
    }
}

/* The first non-finite element (a min-reduction: the same index for any
 * thread count). */
static int find_nonfinite(const float *a, int64_t n, int64_t *at)
{
    int64_t bad = INT64_MAX;
#pragma omp parallel for reduction(min : bad) schedule(static)
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(a[i]) && i < bad) bad = i;
    *at = bad;
    return bad != INT64_MAX;
}

static int be_dot(gptq_backend *be, const gptq_buf *A, const gptq_buf *B, const gptq_buf *D,
                  int64_t R, int64_t C, double *out)
{
    return gptq_be_check(be, be->iface->dot(be->ctx, A, B, D, R, C, out), "dot");
}

/* A (R, C) on the backend holds no NaN or Inf: its sum of squares in double
 * is finite (no square of a finite float overflows it); otherwise A comes
 * to the host to name the first bad element ("<what> has a NaN ..."). */
static int check_finite(gptq_backend *be, const gptq_buf *A, int64_t R, int64_t C,
                        const char *what)
{
    double sq = 0.0;
    int st = be_dot(be, A, A, NULL, R, C, &sq);
    if (st || isfinite(sq)) return st;
    float *h = gptq_malloc((size_t)(R * C) * 4, what);
    int64_t at = -1;
    st = h ? gptq_be_download(be, A, 0, h, (size_t)(R * C) * 4) : GPTQ_ERR_NOMEM;
    if (!st && find_nonfinite(h, R * C, &at))
        st = gptq_error(GPTQ_ERR_NUMERIC, "%s has a NaN or Inf at row %lld, column %lld", what,
                        (long long)(at / C), (long long)(at % C));
    else if (!st) /* a backend whose dot disagrees with its memory */
        st = gptq_error(GPTQ_ERR_NUMERIC, "%s: its squared norm is not finite", what);
    free(h);
    return st;
}

/* tr(A H A^T) = sum_ij A_ij (A H)_ij for A (R, C) and H (C, C) on the
 * backend: one gemm, one dot. */
static int quad_trace(gptq_backend *be, const gptq_buf *A, int64_t R, int64_t C,
                      const gptq_buf *H, double *out)
{
    gptq_buf *T = NULL;
    int st = gptq_be_alloc(be, (size_t)(R * C) * 4, &T, "output-error check");
    if (!st)
        st = gptq_be_check(be, be->iface->gemm(be->ctx, 0, 0, R, C, C, 1.0f, A, 0, C, H, 0, C,
                                               0.0f, T, 0, C),
                           "gemm");
    if (!st) st = be_dot(be, A, T, NULL, R, C, out);
    gptq_be_free(be, T);
    return st;
}

/* The same for D = W - X, the difference one f32 subtraction on the host
 * (W downloaded; X (R, C) host is overwritten with D). */
static int diff_trace(gptq_backend *be, const gptq_buf *W, float *X, int64_t R, int64_t C,
                      const gptq_buf *H, double *out)
{
    const size_t n = (size_t)(R * C) * 4;
    float *Wh = gptq_malloc(n, "output-error check");
    gptq_buf *Db = NULL;
    int st = Wh ? gptq_be_download(be, W, 0, Wh, n) : GPTQ_ERR_NOMEM;
    if (!st) {
#pragma omp parallel for schedule(static) if (R * C > (1 << 20))
        for (int64_t i = 0; i < R * C; i++) X[i] = Wh[i] - X[i];
        st = gptq_be_alloc(be, n, &Db, "output-error check");
    }
    if (!st) st = gptq_be_upload(be, Db, 0, X, n);
    if (!st) st = quad_trace(be, Db, R, C, H, out);
    gptq_be_free(be, Db);
    free(Wh);
    return st;
}

/* The caller's interrupt flag (gptq_quant_config.interrupt) is up. */
static int interrupted(const gptq_quant_config *cfg)
{
    if (cfg->interrupt && *cfg->interrupt)
        return gptq_error(GPTQ_ERR_INVALID, "interrupted");
    return GPTQ_OK;
}

/* Damp, factor, retry: b->U = the upper factor of (Hq + lambda I)^-1 with
 * lambda = damp * mean(diag Hq), damp raised while the Cholesky fails. Hq
 * (C, C) is H in quantization order with its dead columns set, dq its
 * diagonal; b->W holds W' (dead columns 0) in that order. At the first
 * attempt the output error's denominator is taken from the damped H:
 * *den = tr(W' Hdamp W'^T) - lambda wsq, wsq = ||W'||^2 (W' is 0 on dead
 * columns, so their 1 + lambda adds nothing; the permutation cancels in
 * the trace). */
static int damp_factor(gptq_backend *be, gptq_solve_bufs *b, int64_t R, int64_t C,
                       const gptq_quant_config *cfg, const gptq_buf *Hq, const float *dq,
                       double wsq, gptq_layer_result *res, double *den, float *lambda_used)
{
    double mean = 0.0;
    for (int64_t i = 0; i < C; i++) mean += (double)dq[i];
    mean /= (double)C;
    /* damp_k = float(damp_percent + k * increment), the sum in double (a
     * float running sum drifts, and stops growing for a tiny increment);
     * k = 0 and 1 give the damps of the float loop this replaced */
    const double d0 = (double)cfg->damp_percent, inc = (double)cfg->damp_auto_increment;
    float damp = cfg->damp_percent, lambda = 0.0f;
    int st;
    for (;;) {
        if (interrupted(cfg)) return interrupted(cfg);
        lambda = (float)((double)damp * mean);
        res->damps_tried[res->damp_retries] = damp;
        /* scale 1: Hq copied, lambda added to its diagonal */
        st = gptq_be_check(be, be->iface->hessian_finish(be->ctx, Hq, b->U, C, 1.0f, lambda, NULL),
                           "hessian_finish");
        if (st) return st;
        if (res->damp_retries == 0) {
            double dd = 0.0;
            if ((st = quad_trace(be, b->W, R, C, b->U, &dd))) return st;
            *den = dd - (double)lambda * wsq;
        }
        int64_t bad = -1;
        int cst = be->iface->cholesky_inverse_upper(be->ctx, b->U, C, &bad);
        if (cst == GPTQ_OK) break;
        if (cst != GPTQ_ERR_NUMERIC) return gptq_be_check(be, cst, "cholesky_inverse_upper");
        const float next = (float)(d0 + (double)(res->damp_retries + 1) * inc);
        const char *why = NULL;
        if (!(mean > 0.0))
            why = "mean(diag H) is not positive, so no damping can help";
        else if (inc <= 0.0)
            why = "damp_auto_increment is 0: no retry";
        else if (next > cfg->damp_max + 1e-6f)
            why = "the next damp would pass damp_max";
        else if (res->damp_retries == GPTQ_DAMP_MAX_RETRIES)
            why = "that is the most retries allowed";
        else if ((float)((double)next * mean) == lambda)
            why = "damp_auto_increment is too small to change lambda in float precision";
        if (why)
            return gptq_error(GPTQ_ERR_NUMERIC,
                              "the Hessian is not positive definite even with damp_percent "
                              "%.4g (%d retries from %.4g in steps of %.4g; column %lld fails "
                              "the Cholesky); %s: the calibration data may be degenerate or H "
                              "may not be a Hessian",
                              (double)damp, res->damp_retries, d0, inc, (long long)bad, why);
        damp = next;
        res->damp_retries++;
    }
    res->damp_used = damp;
    *lambda_used = lambda;
    return GPTQ_OK;
}

/* The layer solve, the one path of every caller and backend. W (R, C) f32
 * in column order on be (left as it is); H = hscale * S (C, C) on be, or S
 * NULL (RTN only: no output error). The config is checked. Fills res but
 * for codes and dequant, which stay on be in column order: *codes_out
 * (R, C) u8 and *what_out (R, C) f32, the dequantized weight with the f32
 * scales (either out may be NULL: not wanted; the caller frees them). */
static int solve_layer(gptq_backend *be, const gptq_buf *W, int64_t R, int64_t C,
                       const gptq_buf *S, float hscale, const gptq_quant_config *cfg,
                       gptq_layer_result *res, gptq_buf **codes_out, gptq_buf **what_out)
{
    const int rtn = cfg->method == GPTQ_METHOD_RTN;
    if (!rtn && !S) return gptq_error(GPTQ_ERR_INVALID, "GPTQ needs a Hessian (or use RTN)");
    const int64_t G = cfg->group_size == -1 ? C : cfg->group_size;
    const int64_t ngroups = (C + G - 1) / G, B = cfg->block_size;
    const gptq_grid_params gp = {cfg->bits,     cfg->sym,      cfg->mse,
                                 cfg->mse_norm, cfg->mse_grid, cfg->mse_maxshrink};
    const size_t nw = (size_t)(R * C) * 4;
    gptq_solve_bufs b = {0};
    gptq_buf *Hq = NULL, *Wt = NULL, *pb = NULL, *ipb = NULL, *codes = NULL, *what = NULL;
    float lambda_used = 0.0f, *Xh = NULL;
    double den = 0.0, wsq = 0.0;
    float *diag = gptq_malloc((size_t)C * 4, "the diagonal");
    float *dq = gptq_malloc((size_t)C * 4, "the diagonal");
    int32_t *perm = gptq_malloc((size_t)C * 4, "the permutation");
    int32_t *iperm = gptq_malloc((size_t)C * 4, "the permutation");
    int32_t *gidx = gptq_malloc((size_t)C * 4, "group indices");
    float *gscore = gptq_malloc((size_t)ngroups * 4, "group scores");
    int32_t *gorder = gptq_malloc((size_t)ngroups * 4, "the group order");
    double *loss = gptq_malloc((size_t)R * 8, "losses");
    float *zf = gptq_malloc((size_t)(ngroups * R) * 4, "zeros");
    res->scales = gptq_malloc((size_t)(ngroups * R) * 4, "scales");
    res->zeros = gptq_malloc((size_t)(ngroups * R) * 4, "zeros");
    res->g_idx = gptq_malloc((size_t)C * 4, "g_idx");
    res->perm = gptq_malloc((size_t)C * 4, "perm");
    int st = GPTQ_OK;
    if (!diag || !dq || !perm || !iperm || !gidx || !gscore || !gorder || !loss || !zf || !res->scales || !res->zeros ||
        !res->g_idx || !res->perm) {
        st = GPTQ_ERR_NOMEM;
        goto done;
    }
    res->rows = R;
    res->cols = C;
    res->ngroups = ngroups;
    res->bits = cfg->bits;
    res->group_size = (int)G;

    /* the inputs are finite; Hq = hscale S and its diagonal */
    st = check_finite(be, W, R, C, "weight W");
    if (!st && S) st = gptq_be_alloc(be, (size_t)(C * C) * 4, &Hq, "the Hessian");
    if (!st && S)
        st = gptq_be_check(be, be->iface->hessian_finish(be->ctx, S, Hq, C, hscale, 0.0f, diag),
                           "hessian_finish");
    if (!st && S) st = check_finite(be, Hq, C, C, "Hessian H");
    if (st) goto done;
    const double t0 = gptq_now();

    /* dead columns (GPTQ): no calibration signal -> H_ii = 1, W[:, i] = 0
     * (on Wt, a copy: W' below) */
    for (int64_t i = 0; !rtn && i < C; i++)
        if (diag[i] == 0.0f) {
            diag[i] = 1.0f;
            res->dead_cols++;
        }
    if (res->dead_cols) {
        st = gptq_be_alloc(be, nw, &Wt, "the weight");
        if (!st) st = gptq_be_check(be, be->iface->copy(be->ctx, Wt, 0, W, 0, nw), "copy");
        if (!st)
            st = gptq_be_check(be, be->iface->dead_columns(be->ctx, Hq, Wt, R, C), "dead_columns");
        if (st) goto done;
    }
    const gptq_buf *Wc = Wt ? Wt : W; /* W' in column order */

    /* the quantization order (act-order: diag(H) descending; GAR) */
    quant_order(cfg, C, diag, cfg->desc_act && !rtn, gptq_quant_config_act_group_aware(cfg),
                gscore, gorder, perm, gidx, res);
    int ident = 1;
    for (int64_t j = 0; j < C; j++) {
        ident &= perm[j] == j;
        iperm[perm[j]] = (int32_t)j;
        dq[j] = diag[perm[j]];
    }
    if ((st = gptq_solve_bufs_alloc(be, &b, R, C, ngroups, B, !rtn))) goto done;

    /* static groups (and RTN): every grid from W' in column order first */
    for (int64_t g = 0; (cfg->static_groups || rtn) && !st && g < ngroups; g++) {
        const int64_t len = G < C - g * G ? G : C - g * G;
        st = gptq_be_check(be, be->iface->quant_grid(be->ctx, Wc, R, C, g * G, len, g, b.scale,
                                                     b.zero, &gp),
                           "quant_grid");
    }
    /* W' (and H) in the quantization order; act-order: gathered there (the
     * permuted H through b.U, which the damping overwrites) */
    if (!st && ident) st = gptq_be_check(be, be->iface->copy(be->ctx, b.W, 0, Wc, 0, nw), "copy");
    if (!st && !ident) {
        st = gptq_be_alloc(be, (size_t)C * 4, &pb, "the permutation");
        if (!st) st = gptq_be_upload(be, pb, 0, perm, (size_t)C * 4);
        if (!st) st = gptq_be_alloc(be, (size_t)C * 4, &ipb, "the permutation");
        if (!st) st = gptq_be_upload(be, ipb, 0, iperm, (size_t)C * 4);
        if (!st)
            st = gptq_be_check(be, be->iface->gather(be->ctx, b.W, Wc, R, C, R, C, NULL, pb, 4),
                               "gather (W)");
        if (!st)
            st = gptq_be_check(be, be->iface->gather(be->ctx, b.U, Hq, C, C, C, C, pb, pb, 4),
                               "gather (H)");
        gptq_buf *t = Hq;
        Hq = b.U;
        b.U = t;
    }
    if (!st && !rtn) st = be_dot(be, b.W, b.W, NULL, R, C, &wsq);
    if (!st && !rtn) st = damp_factor(be, &b, R, C, cfg, Hq, dq, wsq, res, &den, &lambda_used);
    if (!st && !rtn) { /* used up: its memory goes back before the blocks */
        gptq_be_free(be, Hq);
        Hq = NULL;
    }

    /* the blocks; then codes and W_hat back in column order */
    if (!st) st = gptq_be_upload(be, b.gidx, 0, gidx, (size_t)C * 4);
    if (!st)
        st = gptq_solve_blocks(be, &b, R, C, G, B, cfg->static_groups || rtn, &gp,
                               cfg->interrupt);
    if (!st && ident) {
        codes = b.codes;
        what = b.W;
        b.codes = b.W = NULL;
    } else if (!st) {
        st = gptq_be_alloc(be, (size_t)(R * C), &codes, "codes");
        if (!st) st = gptq_be_alloc(be, nw, &what, "the dequantized weight");
        if (!st)
            st = gptq_be_check(be, be->iface->gather(be->ctx, codes, b.codes, R, C, R, C, NULL,
                                                     ipb, 1),
                               "gather (codes)");
        if (!st)
            st = gptq_be_check(be, be->iface->gather(be->ctx, what, b.W, R, C, R, C, NULL, ipb, 4),
                               "gather (W_hat)");
    }
    if (!st) st = gptq_be_download(be, b.scale, 0, res->scales, (size_t)(ngroups * R) * 4);
    if (!st) st = gptq_be_download(be, b.zero, 0, zf, (size_t)(ngroups * R) * 4);
    if (!st) st = gptq_be_download(be, b.loss, 0, loss, (size_t)R * 8);
    if (st) goto done;
    res->seconds_solve = gptq_now() - t0;
    for (int64_t i = 0; i < ngroups * R; i++) res->zeros[i] = (int32_t)zf[i];
    res->loss = 0.0;
    for (int64_t r = 0; r < R; r++) res->loss += loss[r];
    /* the scales as the checkpoint will store them: none may round to 0 */
    st = gptq_scales_fp16_check("scales", res->scales, ngroups, R, &res->scales_subnormal,
                                &res->scales_fp16_rel_err);
    if (st) goto done;

    /* Relative output error ||X D^T|| / ||X W^T|| through the undamped H
     * (||X A^T||^2 = (n/2) tr(A H A^T); n/2 cancels). For GPTQ the
     * numerator needs no GEMM: the solve makes W' - W_hat = E U row by row
     * (E the scaled errors), and U Hd U^T = I for the damped Hd = H +
     * lambda I (+ 1 on dead diagonals, where W' - W_hat is 0), so
     * tr(D Hd D^T) = sum E^2 = 2 loss and tr(D H D^T) = 2 loss - lambda
     * ||D||^2. The denominator is one GEMM (GPTQ: taken in the damping).
     * RTN: both by GEMM, D = W - W_hat. */
    res->out_rel_err = NAN;
    if (S) {
        double num = 0.0, dsq = 0.0;
        if (rtn) {
            st = quad_trace(be, W, R, C, Hq, &den);
            if (!st && !(Xh = gptq_malloc(nw, "output-error check"))) st = GPTQ_ERR_NOMEM;
            if (!st) st = gptq_be_download(be, what, 0, Xh, nw);
            if (!st) st = diff_trace(be, W, Xh, R, C, Hq, &num);
        } else {
            st = be_dot(be, Wc, Wc, what, R, C, &dsq);
            num = 2.0 * res->loss - (double)lambda_used * dsq;
        }
        if (st) goto done;
        res->out_rel_err = den > 0.0 ? sqrt(fmax(num, 0.0) / den) : 0.0;
    }
    res->out_rel_err_f32 = res->out_rel_err;
    /* Subnormal fp16 scales lose up to half their bits: the error reported
     * is then that of the weight written, W_hat16 with the fp16 scales: D =
     * W - W_hat16 (W rather than W': H is 0 on dead rows and columns),
     * through H finished again (into b.U for GPTQ: the factor is used up). */
    if (res->scales_subnormal && S) {
        double num = 0.0;
        uint8_t *ch = gptq_malloc((size_t)(R * C), "codes");
        if (!Xh) Xh = gptq_malloc(nw, "output-error check");
        st = ch && Xh ? gptq_be_download(be, codes, 0, ch, (size_t)(R * C)) : GPTQ_ERR_NOMEM;
        if (!st) {
#pragma omp parallel for schedule(static) if (R * C > (1 << 20))
            for (int64_t r = 0; r < R; r++)
                for (int64_t k = 0; k < C; k++) {
                    const int64_t g = res->g_idx[k];
                    const float s16 =
                        gptq_f16_to_f32(gptq_f32_to_f16(res->scales[g * R + r]));
                    Xh[r * C + k] = s16 * ((float)ch[r * C + k] - zf[g * R + r]);
                }
            st = gptq_be_check(be, be->iface->hessian_finish(be->ctx, S, rtn ? Hq : b.U, C,
                                                             hscale, 0.0f, NULL),
                               "hessian_finish");
        }
        if (!st) st = diff_trace(be, W, Xh, R, C, rtn ? Hq : b.U, &num);
        free(ch);
        if (st) goto done;
        res->out_rel_err = den > 0.0 ? sqrt(fmax(num, 0.0) / den) : 0.0;
    }

done:
    gptq_solve_bufs_free(be, &b);
    gptq_be_free(be, Hq);
    gptq_be_free(be, Wt);
    gptq_be_free(be, pb);
    gptq_be_free(be, ipb);
    if (!st && codes_out) {
        *codes_out = codes;
        codes = NULL;
    }
    if (!st && what_out) {
        *what_out = what;
        what = NULL;
    }
    gptq_be_free(be, codes);
    gptq_be_free(be, what);
    free(Xh);
    free(diag);
    free(dq);
    free(perm);
    free(iperm);
    free(gidx);
    free(gscore);
    free(gorder);
    free(loss);
    free(zf);
    if (st) gptq_layer_result_free(res);
    return st;
}

/* The public entries with W (and H) on the host: uploaded, solved, the
 * codes and the dequantized weight downloaded. */
static int layer_from_host(gptq_backend *be, const float *W0, int64_t R, int64_t C,
                           const float *H0, const gptq_buf *S, float hscale,
                           const gptq_quant_config *cfg, gptq_layer_result *res)
{
    const size_t nw = (size_t)(R * C) * 4;
    gptq_buf *Wb = NULL, *Hb = NULL, *codes = NULL, *what = NULL;
    int st = gptq_be_alloc(be, nw, &Wb, "the weight");
    if (!st) st = gptq_be_upload(be, Wb, 0, W0, nw);
    if (!st && H0) st = gptq_be_alloc(be, (size_t)(C * C) * 4, &Hb, "the Hessian");
    if (!st && H0) st = gptq_be_upload(be, Hb, 0, H0, (size_t)(C * C) * 4);
    if (!st) st = solve_layer(be, Wb, R, C, H0 ? Hb : S, hscale, cfg, res, &codes, &what);
    if (!st) {
        res->codes = gptq_malloc((size_t)(R * C), "codes");
        res->dequant = gptq_malloc(nw, "the dequantized weight");
        st = res->codes && res->dequant ? GPTQ_OK : GPTQ_ERR_NOMEM;
    }
    if (!st) st = gptq_be_download(be, codes, 0, res->codes, (size_t)(R * C));
    if (!st) st = gptq_be_download(be, what, 0, res->dequant, nw);
    gptq_be_free(be, Wb);
    gptq_be_free(be, Hb);
    gptq_be_free(be, codes);
    gptq_be_free(be, what);
    if (st) gptq_layer_result_free(res);
    return st;
}

int gptq_quantize_layer(gptq_backend *be, const float *W0, int64_t R, int64_t C, const float *H0,
                        const gptq_quant_config *cfg, gptq_layer_result *res)
{
    memset(res, 0, sizeof *res);
    int st = gptq_quant_config_check(cfg, R, C);
    return st ? st : layer_from_host(be, W0, R, C, H0, NULL, 1.0f, cfg, res);
}

/* An accumulated Hessian's checks: its backend, its width, its rows. */
static int hessian_check(gptq_backend *be, const gptq_hessian *h, int64_t C)
{
    if (h->be != be) return gptq_error(GPTQ_ERR_INVALID, "the Hessian was made on another backend");
    if (h->cols != C)
        return gptq_error(GPTQ_ERR_SHAPE, "the Hessian has %lld columns, W %lld",
                          (long long)h->cols, (long long)C);
    if (h->n <= 0) return gptq_error(GPTQ_ERR_INVALID, "hessian: no calibration rows were added");
    return GPTQ_OK;
}

int gptq_quantize_layer_h(gptq_backend *be, const float *W0, int64_t R, int64_t C,
                          gptq_hessian *h, const gptq_quant_config *cfg, gptq_layer_result *res)
{
    memset(res, 0, sizeof *res);
    int st = gptq_quant_config_check(cfg, R, C);
    if (st) return st;
    /* RTN takes no Hessian (and reports no output error) */
    if (!h || cfg->method == GPTQ_METHOD_RTN)
        return layer_from_host(be, W0, R, C, NULL, NULL, 1.0f, cfg, res);
    if ((st = hessian_check(be, h, C))) return st;
    return layer_from_host(be, W0, R, C, NULL, h->S, hessian_scale(h), cfg, res);
}

int gptq_quantize_layer_dev(gptq_backend *be, gptq_buf *W, int64_t R, int64_t C, gptq_hessian *hs,
                            const gptq_quant_config *cfg, gptq_layer_result *res, gptq_packed *pk)
{
    memset(res, 0, sizeof *res);
    memset(pk, 0, sizeof *pk);
    int st = gptq_quant_config_check(cfg, R, C);
    if (st) return st;
    if (cfg->method != GPTQ_METHOD_GPTQ || !hs || !W)
        return gptq_error(GPTQ_ERR_INVALID, "gptq_quantize_layer_dev: GPTQ with a weight buffer "
                          "and an accumulated Hessian");
    if ((st = hessian_check(be, hs, C))) return st;
    const int b_ = cfg->bits;
    if ((st = gptq_format_check_dims(GPTQ_ERR_UNSUPPORTED, b_, R, C))) return st;

    gptq_buf *codes = NULL, *qw = NULL;
    gptq_qdev q = {0};
    const size_t nqw = (size_t)(C * b_ / 32 * R) * 4;
    st = solve_layer(be, W, R, C, hs->S, hessian_scale(hs), cfg, res, &codes, NULL);
    if (st) return st;
    const int64_t ngroups = res->ngroups;
    uint8_t *z8 = gptq_malloc((size_t)(ngroups * R), "zeros");
    pk->qweight = gptq_malloc(nqw, "qweight");
    pk->qzeros = gptq_malloc((size_t)(ngroups * (R * b_ / 32)) * 4, "qzeros");
    pk->scales = gptq_malloc((size_t)(ngroups * R) * 2, "scales");
    pk->g_idx = gptq_malloc((size_t)C * 4, "g_idx");
    if (!z8 || !pk->qweight || !pk->qzeros || !pk->scales || !pk->g_idx) {
        st = GPTQ_ERR_NOMEM;
        goto done;
    }
    /* the codes packed where they are; the checkpoint's tensors */
    st = gptq_be_alloc(be, nqw, &qw, "qweight");
    if (!st)
        st = gptq_be_check(be, be->iface->pack_codes(be->ctx, codes, R, C, b_, qw), "pack_codes");
    if (!st) st = gptq_be_download(be, qw, 0, pk->qweight, nqw);
    if (st) goto done;
    for (int64_t i = 0; i < ngroups * R; i++) {
        z8[i] = (uint8_t)res->zeros[i];
        pk->scales[i] = gptq_f32_to_f16(res->scales[i]);
    }
    memcpy(pk->g_idx, res->g_idx, (size_t)C * 4);
    pk->bits = b_;
    pk->in_features = C;
    pk->out_features = R;
    pk->ngroups = ngroups;
    if ((st = gptq_qzeros_pack(z8, ngroups, R, b_, GPTQ_FORMAT_V2, pk->qzeros))) goto done;
    /* W becomes the weight a loader of the checkpoint sees (fp16 scales) */
    st = gptq_qdev_upload(be, pk, GPTQ_FORMAT_V2, 0, &q);
    q.t.qweight = qw;
    if (!st) st = gptq_be_check(be, be->iface->dequantize(be->ctx, &q.t, W, 0), "dequantize");

done:
    gptq_qdev_free(be, &q);
    gptq_be_free(be, qw);
    gptq_be_free(be, codes);
    free(z8);
    if (st) {
        gptq_layer_result_free(res);
        gptq_packed_free(pk);
    }
    return st;
}
