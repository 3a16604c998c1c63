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
#include "hessian_buf.h"
#include "qdev.h"

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

int gptq_hessian_get(gptq_hessian *h, float *H)
{
    const int64_t C = h->cols;
    if (h->n <= 0) return gptq_error(GPTQ_ERR_INVALID, "hessian: no calibration rows were added");
    int st = gptq_be_download(h->be, h->S, 0, H, (size_t)(C * C) * 4);
    if (st) return st;
    const float f = (float)(2.0 / (double)h->n);
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
 * argument: the diagonal is passed through a thread-local pointer. */
static _Thread_local const float *tl_diag;
static int cmp_desc(const void *pa, const void *pb)
{
    int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    float da = tl_diag[a], db = tl_diag[b];
    if (da > db) return -1;
    if (da < db) return 1;
    return (a > b) - (a < b);
}

/* The quantization order and the groups: perm (act-order when diag is
 * given: diag descending, ties by column; else the identity), gidx[j] the
 * group whose grid position j uses, and res->perm, res->g_idx[k] (the
 * group of column k, as the checkpoint stores it). */
static void quant_order(const gptq_quant_config *cfg, int64_t C, const float *diag, int32_t *perm,
                        int32_t *gidx, gptq_layer_result *res)
{
    const int64_t G = cfg->group_size == -1 ? C : cfg->group_size;
    for (int64_t j = 0; j < C; j++) perm[j] = (int32_t)j;
    if (diag) {
        tl_diag = diag;
        qsort(perm, (size_t)C, sizeof *perm, cmp_desc);
    }
    for (int64_t j = 0; j < C; j++) {
        gidx[j] = (int32_t)((cfg->static_groups ? perm[j] : j) / G);
        res->perm[j] = perm[j];
        res->g_idx[perm[j]] = cfg->static_groups ? (int32_t)(perm[j] / G) : (int32_t)(j / G);
    }
}

/* The first non-finite element (a min-reduction: the same index for any
 * thread count). The host-side loops of this file are data movement and
 * scans, spread over threads because at C = 11008 each touches ~0.5 GB. */
static int find_nonfinite(const float *a, int64_t n, int64_t *at)
{
    int64_t bad = INT64_MAX;
#pragma omp parallel for reduction(min : bad) schedule(static)
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(a[i]) && i < bad) bad = i;
    *at = bad;
    return bad != INT64_MAX;
}

/* Row r's part of rows_dot, summed in order. */
static double row_dot(const float *a, const float *b, const float *c, int64_t r, int64_t C)
{
    double s = 0.0;
    for (int64_t j = 0; j < C; j++) {
        const int64_t i = r * C + j;
        const double x = c ? (double)a[i] - (double)c[i] : (double)a[i];
        s += x * (b && !c ? (double)b[i] : x);
    }
    return s;
}

/* sum_i a[i] * b[i] over an (R, C) pair in double, deterministically for any
 * thread count: each row summed in order, then the rows in order. b NULL:
 * sum of a[i]^2; c given: sum of (a[i] - c[i])^2 (b unused). */
static double rows_dot(const float *a, const float *b, const float *c, int64_t R, int64_t C)
{
    double t = 0.0;
    double *part = malloc((size_t)R * sizeof(double));
    if (!part) { /* no memory for R doubles: the same sum, one thread */
        for (int64_t r = 0; r < R; r++) t += row_dot(a, b, c, r, C);
        return t;
    }
#pragma omp parallel for schedule(static) if (R * C > (1 << 20))
    for (int64_t r = 0; r < R; r++) part[r] = row_dot(a, b, c, r, C);
    for (int64_t r = 0; r < R; r++) t += part[r];
    free(part);
    return t;
}

/* dst = src over n floats, spread over threads (at 7B shapes a weight or a
 * Hessian is 64-485 MB) */
static void copy_f32(float *dst, const float *src, int64_t n)
{
    const int64_t chunk = 1 << 18;
#pragma omp parallel for schedule(static) if (n > (1 << 21))
    for (int64_t i = 0; i < n; i += chunk)
        memcpy(dst + i, src + i, (size_t)(n - i < chunk ? n - i : chunk) * 4);
}

typedef struct solve_bufs {
    gptq_buf *W, *U, *scale, *zero, *codes, *Err, *loss, *gidx;
} solve_bufs;

static void free_bufs(gptq_backend *be, solve_bufs *b)
{
    gptq_be_free(be, b->W);
    gptq_be_free(be, b->U);
    gptq_be_free(be, b->scale);
    gptq_be_free(be, b->zero);
    gptq_be_free(be, b->codes);
    gptq_be_free(be, b->Err);
    gptq_be_free(be, b->loss);
    gptq_be_free(be, b->gidx);
}

/* tr(A H A^T) for A (R, C) already on the device as Ab (Ahost: the same
 * values on the host), H (C, C) device: sum_ij A_ij (A H)_ij, one backend
 * gemm, then summed in double: on the device by the backend's dot where it
 * has one, else downloaded and summed against A here (rows_dot). */
static int quad_trace_dev(gptq_backend *be, const gptq_buf *Ab, const float *Ahost, int64_t R,
                          int64_t C, const gptq_buf *Hb, double *out)
{
    gptq_buf *Tb = NULL;
    float *T = NULL;
    int st = gptq_be_alloc(be, (size_t)(R * C) * 4, &Tb, "output-error check");
    if (!st)
        st = gptq_be_check(be, be->iface->gemm(be->ctx, 0, 0, R, C, C, 1.0f, Ab, 0, C, Hb, 0, C,
                                               0.0f, Tb, 0, C),
                           "gemm");
    if (!st && gptq_be_supports(be, GPTQ_OP_DOT)) { /* summed where the product is (a GPU: no download) */
        st = gptq_be_check(be, be->iface->dot(be->ctx, Ab, 0, Tb, 0, R * C, out), "dot");
        gptq_be_free(be, Tb);
        return st;
    }
    if (!st && !(T = gptq_malloc((size_t)(R * C) * 4, "output-error check"))) st = GPTQ_ERR_NOMEM;
    if (!st) st = gptq_be_download(be, Tb, 0, T, (size_t)(R * C) * 4);
    if (!st) *out = rows_dot(Ahost, T, NULL, R, C);
    free(T);
    gptq_be_free(be, Tb);
    return st;
}

/* The same for A on the host: uploaded first. */
static int quad_trace(gptq_backend *be, const float *A, int64_t R, int64_t C, gptq_buf *Hb,
                      double *out)
{
    gptq_buf *Ab = NULL;
    int st = gptq_be_alloc(be, (size_t)(R * C) * 4, &Ab, "output-error check");
    if (!st) st = gptq_be_upload(be, Ab, 0, A, (size_t)(R * C) * 4);
    if (!st) st = quad_trace_dev(be, Ab, A, R, C, Hb, out);
    gptq_be_free(be, Ab);
    return st;
}

/* The caller's interrupt flag (gptq_quant_config.interrupt) is up. */
static int interrupted(const gptq_quant_config *cfg)
{
    if (cfg->interrupt && *cfg->interrupt)
        return gptq_error(GPTQ_ERR_INVALID, "interrupted");
    return GPTQ_OK;
}

/* Damp, factor, retry: b->U = the upper factor of (H + lambda I)^-1 with
 * lambda = damp * mean(diag H), damp raised while the Cholesky fails. H is
 * the sum S finished on the device (hdev: hessian_finish with hscale, its
 * diagonal in diag, both in quantization order) or Hq on the host (copied with lambda into the scratch
 * Hdamp and uploaded). b->W holds W in quantization order; at the first
 * attempt the output error's denominator is taken while W and the damped H
 * are on the device: *den = tr(W' Hdamp W'^T) - lambda wsq, wsq = ||W'||^2
 * (W' is 0 on dead columns, so their 1 + lambda adds nothing; the
 * permutation cancels in the trace). Wq: W on the host, for a backend
 * without dot (NULL otherwise). */
static int damp_factor(gptq_backend *be, solve_bufs *b, int64_t R, int64_t C,
                       const gptq_quant_config *cfg, int hdev, const gptq_buf *S, float hscale, const float *diag, const float *Hq, float *Hdamp,
                       const float *Wq, double wsq, gptq_layer_result *res, double *den,
                       float *lambda_used)
{
    double mean = 0.0;
    for (int64_t i = 0; i < C; i++) mean += hdev ? (double)diag[i] : (double)Hq[i * C + i];
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
        if (hdev) {
            st = gptq_be_check(be, be->iface->hessian_finish(be->ctx, S, b->U, C, hscale,
                                                             lambda, NULL),
                               "hessian_finish");
        } else {
#pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < C; i++) {
                memcpy(Hdamp + i * C, Hq + i * C, (size_t)C * 4);
                Hdamp[i * C + i] += lambda;
            }
            st = gptq_be_upload(be, b->U, 0, Hdamp, (size_t)(C * C) * 4);
        }
        if (st) return st;
        if (res->damp_retries == 0) {
            double dd = 0.0;
            if ((st = quad_trace_dev(be, b->W, Wq, R, C, b->U, &dd))) return st;
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

/* The blocks: one gptq_block and one lazy-update gemm each (RTN: blocks
 * only). b->W in quantization order, b->gidx uploaded. */
static int run_blocks(gptq_backend *be, solve_bufs *b, int64_t R, int64_t C,
                      const gptq_quant_config *cfg, const gptq_grid_params *gp, int rtn)
{
    const int64_t G = cfg->group_size == -1 ? C : cfg->group_size, B = cfg->block_size;
    for (int64_t j0 = 0; j0 < C; j0 += B) {
        if (interrupted(cfg)) return interrupted(cfg);
        const int64_t nb = B < C - j0 ? B : C - j0;
        gptq_block_args a = {
            .W = b->W, .R = R, .C = C, .U = b->U, .j0 = j0, .nb = nb, .group_size = G,
            .grid_given = cfg->static_groups || rtn, .gidx = b->gidx, .scale = b->scale,
            .zero = b->zero, .codes = b->codes, .Err = b->Err, .loss = b->loss, .grid = *gp,
        };
        int st = gptq_be_check(be, be->iface->gptq_block(be->ctx, &a), "gptq_block");
        if (!st && !rtn && j0 + nb < C)
            st = gptq_be_check(be,
                               be->iface->gemm(be->ctx, 0, 0, R, C - j0 - nb, nb, -1.0f, b->Err, 0,
                                               nb, b->U, (size_t)(j0 * C + j0 + nb), C, 1.0f,
                                               b->W, (size_t)(j0 + nb), C),
                               "gemm (lazy update)");
        if (st) return st;
    }
    return GPTQ_OK;
}

/* The solve's device buffers for (R, C) with ngroups groups (U only for GPTQ). */
static int alloc_bufs(gptq_backend *be, solve_bufs *b, int64_t R, int64_t C, int64_t ngroups,
                      int64_t B, int rtn)
{
    int st = gptq_be_alloc(be, (size_t)(R * C) * 4, &b->W, "the weight");
    if (!st) st = gptq_be_alloc(be, (size_t)(ngroups * R) * 4, &b->scale, "scales");
    if (!st) st = gptq_be_alloc(be, (size_t)(ngroups * R) * 4, &b->zero, "zeros");
    if (!st) st = gptq_be_alloc(be, (size_t)(R * C), &b->codes, "codes");
    if (!st) st = gptq_be_alloc(be, (size_t)(R * B) * 4, &b->Err, "block errors");
    if (!st) st = gptq_be_alloc(be, (size_t)R * 8, &b->loss, "losses");
    if (!st) st = gptq_be_alloc(be, (size_t)C * 4, &b->gidx, "group indices");
    if (!st && !rtn) st = gptq_be_alloc(be, (size_t)(C * C) * 4, &b->U, "the inverse Hessian");
    return st;
}

/* The layer solve. H0: the Hessian on the host; or hs: the accumulated one
 * (H = 2/n S), kept on the device when the backend has hessian_finish and
 * neither act-order nor dead columns need it on the host (then the device
 * makes the same damped H the host would: the same bits). */
static int quantize_layer_impl(gptq_backend *be, const float *W0, int64_t R, int64_t C,
                               const float *H0, gptq_hessian *hs, const gptq_quant_config *cfg,
                               gptq_layer_result *res)
{
    memset(res, 0, sizeof *res);
    int st = gptq_quant_config_check(cfg, R, C);
    if (st) return st;
    const int rtn = cfg->method == GPTQ_METHOD_RTN;
    if (!rtn && !H0 && !hs) return gptq_error(GPTQ_ERR_INVALID, "GPTQ needs a Hessian (or use RTN)");
    int64_t at;
    if (find_nonfinite(W0, R * C, &at))
        return gptq_error(GPTQ_ERR_NUMERIC, "weight W has a NaN or Inf at row %lld, column %lld",
                          (long long)(at / C), (long long)(at % C));
    /* where H is: hdev (device, with its diagonal hdiag here) or H0 (host) */
    int hdev = 0;
    float hscale = 0.0f, *hdiag = NULL, *Hown = NULL;
    if (!rtn && hs) {
        if (hs->cols != C)
            return gptq_error(GPTQ_ERR_SHAPE, "the Hessian has %lld columns, W %lld",
                              (long long)hs->cols, (long long)C);
        if (hs->n <= 0)
            return gptq_error(GPTQ_ERR_INVALID, "hessian: no calibration rows were added");
        if (gptq_be_supports(be, GPTQ_OP_HESSIAN_FINISH) && !cfg->desc_act) {
            hscale = (float)(2.0 / (double)hs->n);
            if (!(hdiag = gptq_malloc((size_t)C * 4, "the diagonal"))) return GPTQ_ERR_NOMEM;
            st = gptq_be_check(be, be->iface->hessian_finish(be->ctx, hs->S, NULL, C, hscale,
                                                             0.0f, hdiag),
                               "hessian_finish");
            hdev = !st;
            for (int64_t i = 0; hdev && i < C; i++)
                if (hdiag[i] == 0.0f || !isfinite(hdiag[i])) hdev = 0; /* the host path says why */
            if (st) {
                free(hdiag);
                return st;
            }
        }
        if (!hdev) {
            if (!(Hown = gptq_malloc((size_t)(C * C) * 4, "the Hessian"))) {
                free(hdiag);
                return GPTQ_ERR_NOMEM;
            }
            if ((st = gptq_hessian_get(hs, Hown))) {
                free(Hown);
                free(hdiag);
                return st;
            }
            H0 = Hown;
        }
    }
    if (H0 && find_nonfinite(H0, C * C, &at)) {
        free(Hown);
        free(hdiag);
        return gptq_error(GPTQ_ERR_NUMERIC, "Hessian H has a NaN or Inf at row %lld, column %lld",
                          (long long)(at / C), (long long)(at % C));
    }

    const double t0 = gptq_now();
    const int64_t G = cfg->group_size == -1 ? C : cfg->group_size;
    const int64_t ngroups = (C + G - 1) / G;
    const int64_t B = cfg->block_size;
    const gptq_grid_params gp = {cfg->bits,     cfg->sym,           cfg->mse,
                                 cfg->mse_norm, cfg->mse_grid,      cfg->mse_maxshrink};

    solve_bufs b = {0};
    float lambda_used = 0.0f;
    double den = 0.0; /* tr(W' H0 W'^T), W' the dead-zeroed W (GPTQ: before the Cholesky) */
    float *W = gptq_malloc((size_t)(R * C) * 4, "the weight");  /* (R, C) permuted */
    float *Wt = gptq_malloc((size_t)(R * C) * 4, "the weight"); /* scratch */
    const int hhost = !rtn && !hdev; /* H, Hd: host copies of the Hessian */
    float *H = hhost ? gptq_malloc((size_t)(C * C) * 4, "the Hessian") : NULL;
    float *Hd = hhost ? gptq_malloc((size_t)(C * C) * 4, "the Hessian") : NULL;
    int32_t *perm = gptq_malloc((size_t)C * 4, "the permutation");
    int32_t *gidx = gptq_malloc((size_t)C * 4, "group indices");
    float *diag = hhost ? gptq_malloc((size_t)C * 4, "the diagonal") : NULL;
    uint8_t *codes_p = gptq_malloc((size_t)(R * C), "codes");
    double *loss = gptq_malloc((size_t)R * 8, "losses");
    res->codes = gptq_malloc((size_t)(R * C), "codes");
    res->scales = gptq_malloc((size_t)(ngroups * R) * 4, "scales");
    res->zeros = gptq_malloc((size_t)(ngroups * R) * 4, "zeros");
    res->g_idx = gptq_malloc((size_t)C * 4, "g_idx");
    res->perm = gptq_malloc((size_t)C * 4, "perm");
    res->dequant = gptq_malloc((size_t)(R * C) * 4, "the dequantized weight");
    float *zf = gptq_malloc((size_t)(ngroups * R) * 4, "zeros");
    if (!W || !Wt || (hhost && (!H || !Hd || !diag)) || !perm || !gidx || !codes_p || !loss ||
        !res->codes || !res->scales || !res->zeros || !res->g_idx || !res->perm ||
        !res->dequant || !zf) {
        st = GPTQ_ERR_NOMEM;
        goto done;
    }
    res->rows = R;
    res->cols = C;
    res->ngroups = ngroups;
    res->bits = cfg->bits;
    res->group_size = (int)G;
    copy_f32(Wt, W0, R * C);

    /* dead columns: no calibration signal -> H_ii = 1, W[:, i] = 0 (the
     * device path has none: it falls back to the host when it sees one) */
    if (hhost) {
        copy_f32(Hd, H0, C * C);
        for (int64_t i = 0; i < C; i++)
            if (Hd[i * C + i] == 0.0f) {
                Hd[i * C + i] = 1.0f;
                for (int64_t r = 0; r < R; r++) Wt[r * C + i] = 0.0f;
                res->dead_cols++;
            }
    }

    /* quantization order */
    if (cfg->desc_act && hhost)
        for (int64_t i = 0; i < C; i++) diag[i] = Hd[i * C + i];
    quant_order(cfg, C, cfg->desc_act && hhost ? diag : NULL, perm, gidx, res);

    /* backend buffers */
    if ((st = alloc_bufs(be, &b, R, C, ngroups, B, rtn))) goto done;

    /* static groups: grids from the original (dead-zeroed) W, column order */
    if (cfg->static_groups || rtn) {
        st = gptq_be_upload(be, b.W, 0, Wt, (size_t)(R * C) * 4);
        for (int64_t g = 0; !st && g < ngroups; g++) {
            int64_t len = G < C - g * G ? G : C - g * G;
            st = gptq_be_check(be, be->iface->quant_grid(be->ctx, b.W, R, C, g * G, len, g, b.scale,
                                                         b.zero, &gp),
                               "quant_grid");
        }
        if (st) goto done;
    }

    /* permute W (and H) into the quantization order; in column order (no
     * act-order) the copies are skipped: Wt and Hd are used as they are */
    int ident = 1;
    for (int64_t j = 0; j < C && ident; j++) ident = perm[j] == j;
    const float *Wq = ident ? Wt : W; /* (R, C) W in quantization order */
    const float *Hq = ident ? Hd : H; /* (C, C) undamped H in quantization order */
    float *Hdamp = ident ? H : Hd;    /* (C, C) scratch for H + lambda I */
    if (!ident) {
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < R; r++)
            for (int64_t j = 0; j < C; j++) W[r * C + j] = Wt[r * C + perm[j]];
        if (hhost) {
#pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < C; i++)
                for (int64_t j = 0; j < C; j++) H[i * C + j] = Hd[(int64_t)perm[i] * C + perm[j]];
        }
    }

    /* damp, factor, retry (W goes to the device first: the output error's
     * denominator is taken there) */
    st = gptq_be_upload(be, b.W, 0, Wq, (size_t)(R * C) * 4);
    if (!st && !rtn)
        st = damp_factor(be, &b, R, C, cfg, hdev, hs ? hs->S : NULL, hscale, hdiag, Hq, Hdamp,
                         gptq_be_supports(be, GPTQ_OP_DOT) ? NULL : Wq, rows_dot(Wq, NULL, NULL, R, C), res, &den,
                         &lambda_used);
    if (st) goto done;

    /* the blocks */
    if (!st) st = gptq_be_upload(be, b.gidx, 0, gidx, (size_t)C * 4);
    if (!st) st = run_blocks(be, &b, R, C, cfg, &gp, rtn);
    if (st) goto done;
    st = gptq_be_download(be, b.codes, 0, codes_p, (size_t)(R * C));
    if (!st) st = gptq_be_download(be, b.scale, 0, res->scales, (size_t)(ngroups * R) * 4);
    if (!st) st = gptq_be_download(be, b.zero, 0, zf, (size_t)(ngroups * R) * 4);
    if (!st) st = gptq_be_download(be, b.loss, 0, loss, (size_t)R * 8);
    if (st) goto done;
    res->seconds_solve = gptq_now() - t0;

    /* back to column order; dequantize exactly as the block did */
    for (int64_t i = 0; i < ngroups * R; i++) res->zeros[i] = (int32_t)zf[i];
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < C; j++) res->codes[r * C + perm[j]] = codes_p[r * C + j];
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++)
        for (int64_t k = 0; k < C; k++) {
            const int64_t g = res->g_idx[k];
            const float s = res->scales[g * R + r], z = zf[g * R + r];
            res->dequant[r * C + k] = s * ((float)res->codes[r * C + k] - z);
        }
    res->loss = 0.0;
    for (int64_t r = 0; r < R; r++) res->loss += loss[r];
    /* the scales as the checkpoint will store them: none may round to 0 */
    st = gptq_scales_fp16_check("scales", res->scales, ngroups, R, &res->scales_subnormal,
                                &res->scales_fp16_rel_err);
    if (st) goto done;

    /* Relative output error ||X D^T|| / ||X W^T|| through the undamped H0
     * (||X A^T||^2 = (n/2) tr(A H0 A^T); n/2 cancels). For GPTQ the
     * numerator needs no GEMM: the solve makes W' - W_hat = E U row by row
     * (E the scaled errors, W' the dead-zeroed W), and U Hd U^T = I for the
     * damped Hd = H0 + lambda I (+ 1 on dead diagonals, where W' - W_hat
     * is 0), so tr(D Hd D^T) = sum E^2 = 2 loss and
     * tr(D H0 D^T) = 2 loss - lambda ||D||^2. The denominator is one GEMM
     * (GPTQ: made before the Cholesky, see the damping). */
    if (H0 || hdev) {
        double num = 0.0, dsq = 0.0;
        if (rtn) {
            if (!b.U) st = gptq_be_alloc(be, (size_t)(C * C) * 4, &b.U, "output-error check");
            if (!st) st = gptq_be_upload(be, b.U, 0, H0, (size_t)(C * C) * 4);
            if (!st) st = quad_trace(be, W0, R, C, b.U, &den);
        }
        if (!st && rtn) {
#pragma omp parallel for schedule(static) if (R * C > (1 << 20))
            for (int64_t i = 0; i < R * C; i++) Wt[i] = W0[i] - res->dequant[i];
            st = quad_trace(be, Wt, R, C, b.U, &num);
        } else if (!st) {
            dsq = rows_dot(Wt, NULL, res->dequant, R, C);
            num = 2.0 * res->loss - (double)lambda_used * dsq;
        }
        if (st) goto done;
        res->out_rel_err = den > 0.0 ? sqrt(fmax(num, 0.0) / den) : 0.0;
    } else {
        res->out_rel_err = NAN;
    }
    res->out_rel_err_f32 = res->out_rel_err;
    /* Subnormal fp16 scales lose up to half their bits: the error reported
     * is then that of the weight written, W_hat with the fp16 scales (one
     * more GEMM, only then): D = W0 - W_hat16 in column order (W0 rather
     * than the dead-zeroed W': H0 is 0 on dead rows and columns), through
     * H0 on the device (b.U: the factor is used up). */
    if (res->scales_subnormal && (H0 || hdev)) {
        double num = 0.0;
#pragma omp parallel for schedule(static) if (R * C > (1 << 20))
        for (int64_t r = 0; r < R; r++)
            for (int64_t k = 0; k < C; k++) {
                const int64_t g = res->g_idx[k];
                const float s16 = gptq_f16_to_f32(gptq_f32_to_f16(res->scales[g * R + r]));
                Wt[r * C + k] = W0[r * C + k] - s16 * ((float)res->codes[r * C + k] - zf[g * R + r]);
            }
        if (hdev)
            st = gptq_be_check(be, be->iface->hessian_finish(be->ctx, hs->S, b.U, C, hscale, 0.0f,
                                                             NULL),
                               "hessian_finish");
        else
            st = gptq_be_upload(be, b.U, 0, H0, (size_t)(C * C) * 4);
        if (!st) st = quad_trace(be, Wt, R, C, b.U, &num);
        if (st) goto done;
        res->out_rel_err = den > 0.0 ? sqrt(fmax(num, 0.0) / den) : 0.0;
    }

done:
    free_bufs(be, &b);
    free(Hown);
    free(hdiag);
    free(W);
    free(Wt);
    free(H);
    free(Hd);
    free(perm);
    free(gidx);
    free(diag);
    free(codes_p);
    free(loss);
    free(zf);
    if (st) gptq_layer_result_free(res);
    return st;
}

int gptq_quantize_layer(gptq_backend *be, const float *W0, int64_t R, int64_t C, const float *H0,
                        const gptq_quant_config *cfg, gptq_layer_result *res)
{
    return quantize_layer_impl(be, W0, R, C, H0, NULL, cfg, res);
}

int gptq_quantize_layer_h(gptq_backend *be, const float *W0, int64_t R, int64_t C,
                          gptq_hessian *h, const gptq_quant_config *cfg, gptq_layer_result *res)
{
    if (h && h->be != be)
        return gptq_error(GPTQ_ERR_INVALID, "the Hessian was made on another backend");
    return quantize_layer_impl(be, W0, R, C, NULL, h, cfg, res);
}

/* ------------------------------------------------------------------ */
/* The layer solve with the weight on the backend (qdev.h)             */
/* ------------------------------------------------------------------ */

/* W to the host and back around the host-side solve (act-order, dead
 * columns, or a backend that cannot finish Hessians in place). */
static int layer_dev_via_host(gptq_backend *be, gptq_buf *W, int64_t R, int64_t C,
                              gptq_hessian *hs, const gptq_quant_config *cfg, float *Wh,
                              gptq_layer_result *res, gptq_packed *pk)
{
    const size_t nw = (size_t)(R * C) * 4;
    int st = gptq_be_download(be, W, 0, Wh, nw);
    if (!st) st = quantize_layer_impl(be, Wh, R, C, NULL, hs, cfg, res);
    if (!st) st = gptq_pack(res, GPTQ_FORMAT_V2, pk);
    if (!st) st = gptq_dequantize(pk, GPTQ_FORMAT_V2, Wh);
    if (!st) st = gptq_be_upload(be, W, 0, Wh, nw);
    if (st) {
        gptq_layer_result_free(res);
        gptq_packed_free(pk);
    }
    return st;
}

static int dev_dot(gptq_backend *be, const gptq_buf *A, const gptq_buf *B, int64_t n, double *out)
{
    return gptq_be_check(be, be->iface->dot(be->ctx, A, 0, B, 0, n, out), "dot");
}

int gptq_quantize_layer_dev(gptq_backend *be, gptq_buf *W, int64_t R, int64_t C, gptq_hessian *hs,
                            const gptq_quant_config *cfg, float *Wh, gptq_layer_result *res,
                            gptq_packed *pk)
{
    memset(res, 0, sizeof *res);
    memset(pk, 0, sizeof *pk);
    int st = gptq_quant_config_check(cfg, R, C);
    if (st) return st;
    if (cfg->method != GPTQ_METHOD_GPTQ || !hs || !W)
        return gptq_error(GPTQ_ERR_INVALID, "gptq_quantize_layer_dev: GPTQ with a weight buffer "
                          "and an accumulated Hessian");
    if (hs->be != be)
        return gptq_error(GPTQ_ERR_INVALID, "the Hessian was made on another backend");
    if (hs->cols != C)
        return gptq_error(GPTQ_ERR_SHAPE, "the Hessian has %lld columns, W %lld",
                          (long long)hs->cols, (long long)C);
    if (hs->n <= 0) return gptq_error(GPTQ_ERR_INVALID, "hessian: no calibration rows were added");
    const int b_ = cfg->bits;
    if ((st = gptq_format_check_dims(GPTQ_ERR_UNSUPPORTED, b_, R, C))) return st;

    /* the device path, or the host's */
    const float hscale = (float)(2.0 / (double)hs->n);
    int device = gptq_be_supports(be, GPTQ_OP_HESSIAN_FINISH) && gptq_be_supports(be, GPTQ_OP_DOT);
    float *diag = device ? gptq_malloc((size_t)C * 4, "the diagonal") : NULL;
    if (device && !diag) return GPTQ_ERR_NOMEM;
    if (device) {
        st = gptq_be_check(be, be->iface->hessian_finish(be->ctx, hs->S, NULL, C, hscale, 0.0f,
                                                         diag),
                           "hessian_finish");
        if (st) {
            free(diag);
            return st;
        }
        for (int64_t i = 0; i < C && device; i++)
            device = diag[i] != 0.0f && isfinite(diag[i]); /* the host path says why */
    }
    if (!device) {
        free(diag);
        return layer_dev_via_host(be, W, R, C, hs, cfg, Wh, res, pk);
    }

    const double t0 = gptq_now();
    const int64_t G = cfg->group_size == -1 ? C : cfg->group_size;
    const int64_t ngroups = (C + G - 1) / G, B = cfg->block_size;
    const gptq_grid_params gp = {cfg->bits,     cfg->sym,      cfg->mse,
                                 cfg->mse_norm, cfg->mse_grid, cfg->mse_maxshrink};
    const size_t nw = (size_t)(R * C) * 4, nqw = (size_t)(C * b_ / 32 * R) * 4;
    solve_bufs b = {0};
    gptq_qdev q = {0};
    gptq_buf *qw = NULL;
    /* act-order: the permutation, its inverse, H and the codes permuted */
    gptq_buf *pb = NULL, *ipb = NULL, *Sp = NULL, *codes_col = NULL;
    int32_t *perm = gptq_malloc((size_t)C * 4, "the permutation");
    int32_t *iperm = gptq_malloc((size_t)C * 4, "the permutation");
    int32_t *gidx = gptq_malloc((size_t)C * 4, "group indices");
    float *dq = gptq_malloc((size_t)C * 4, "the diagonal");
    float lambda_used = 0.0f;
    double den = 0.0, wsq = 0.0;
    double *loss = gptq_malloc((size_t)R * 8, "losses");
    float *zf = gptq_malloc((size_t)(ngroups * R) * 4, "zeros");
    uint8_t *z8 = gptq_malloc((size_t)(ngroups * R), "zeros");
    res->scales = gptq_malloc((size_t)(ngroups * R) * 4, "scales");
    res->zeros = gptq_malloc((size_t)(ngroups * R) * 4, "zeros");
    res->g_idx = gptq_malloc((size_t)C * 4, "g_idx");
    res->perm = gptq_malloc((size_t)C * 4, "perm");
    pk->qweight = gptq_malloc(nqw, "qweight");
    pk->qzeros = gptq_malloc((size_t)(ngroups * (R * b_ / 32)) * 4, "qzeros");
    pk->scales = gptq_malloc((size_t)(ngroups * R) * 2, "scales");
    pk->g_idx = gptq_malloc((size_t)C * 4, "g_idx");
    if (!loss || !zf || !z8 || !res->scales || !res->zeros || !res->g_idx || !res->perm ||
        !pk->qweight || !pk->qzeros || !pk->scales || !pk->g_idx || !perm || !iperm || !gidx ||
        !dq) {
        st = GPTQ_ERR_NOMEM;
        goto done;
    }
    res->rows = R;
    res->cols = C;
    res->ngroups = ngroups;
    res->bits = b_;
    res->group_size = (int)G;
    /* quantization order (act-order: diag(H) descending, as the host path) */
    quant_order(cfg, C, cfg->desc_act ? diag : NULL, perm, gidx, res);
    memcpy(pk->g_idx, res->g_idx, (size_t)C * 4);
    int ident = 1;
    for (int64_t j = 0; j < C; j++) {
        ident &= perm[j] == j;
        iperm[perm[j]] = (int32_t)j;
        dq[j] = diag[perm[j]];
    }

    /* a working copy of W in quantization order; ||W||^2 (in double: finite
     * exactly when every element is) for the NaN/Inf check and the output
     * error; act-order: H's sum permuted alike */
    if ((st = alloc_bufs(be, &b, R, C, ngroups, B, 0))) goto done;
    if (ident) {
        st = gptq_be_check(be, be->iface->copy(be->ctx, b.W, 0, W, 0, nw), "copy");
    } else {
        st = gptq_be_alloc(be, (size_t)C * 4, &pb, "the permutation");
        if (!st) st = gptq_be_upload(be, pb, 0, perm, (size_t)C * 4);
        if (!st) st = gptq_be_alloc(be, (size_t)C * 4, &ipb, "the permutation");
        if (!st) st = gptq_be_upload(be, ipb, 0, iperm, (size_t)C * 4);
        if (!st)
            st = gptq_be_check(be, be->iface->gather(be->ctx, b.W, W, R, C, R, C, NULL, pb, 4),
                               "gather (W)");
        if (!st) st = gptq_be_alloc(be, (size_t)(C * C) * 4, &Sp, "the permuted Hessian");
        if (!st)
            st = gptq_be_check(be, be->iface->gather(be->ctx, Sp, hs->S, C, C, C, C, pb, pb, 4),
                               "gather (H)");
    }
    if (!st) st = dev_dot(be, b.W, b.W, R * C, &wsq);
    if (st) goto done;
    if (!isfinite(wsq)) {
        int64_t at = -1;
        if (!(st = gptq_be_download(be, W, 0, Wh, nw)) && find_nonfinite(Wh, R * C, &at))
            st = gptq_error(GPTQ_ERR_NUMERIC, "weight W has a NaN or Inf at row %lld, column %lld",
                            (long long)(at / C), (long long)(at % C));
        else if (!st)
            st = gptq_error(GPTQ_ERR_NUMERIC, "weight W: its squared norm is not finite");
        goto done;
    }
    /* static groups: every grid from the original W (column order) first */
    for (int64_t g = 0; cfg->static_groups && !st && g < ngroups; g++) {
        const int64_t len = G < C - g * G ? G : C - g * G;
        st = gptq_be_check(be, be->iface->quant_grid(be->ctx, W, R, C, g * G, len, g, b.scale,
                                                     b.zero, &gp),
                           "quant_grid");
    }
    if (!st)
        st = damp_factor(be, &b, R, C, cfg, 1, ident ? hs->S : Sp, hscale, dq, NULL, NULL, NULL,
                         wsq, res, &den, &lambda_used);
    gptq_be_free(be, Sp);
    Sp = NULL;
    if (!st) st = gptq_be_upload(be, b.gidx, 0, gidx, (size_t)C * 4);
    if (!st) st = run_blocks(be, &b, R, C, cfg, &gp, 0);
    /* codes back to column order, packed where they are; what the
     * checkpoint needs comes down */
    if (!st && !ident) {
        st = gptq_be_alloc(be, (size_t)(R * C), &codes_col, "codes");
        if (!st)
            st = gptq_be_check(be, be->iface->gather(be->ctx, codes_col, b.codes, R, C, R, C, NULL,
                                                     ipb, 1),
                               "gather (codes)");
    }
    if (!st) st = gptq_be_alloc(be, nqw, &qw, "qweight");
    if (!st)
        st = gptq_be_check(be, be->iface->pack_codes(be->ctx, ident ? b.codes : codes_col, R, C,
                                                     b_, qw),
                           "pack_codes");
    if (!st) st = gptq_be_download(be, qw, 0, pk->qweight, nqw);
    if (!st) st = gptq_be_download(be, b.scale, 0, res->scales, (size_t)(ngroups * R) * 4);
    if (!st) st = gptq_be_download(be, b.zero, 0, zf, (size_t)(ngroups * R) * 4);
    if (!st) st = gptq_be_download(be, b.loss, 0, loss, (size_t)R * 8);
    if (st) goto done;
    res->seconds_solve = gptq_now() - t0;

    /* the checkpoint's scales and zeros (gptq_pack's checks) */
    st = gptq_scales_fp16_check("scales", res->scales, ngroups, R, &res->scales_subnormal,
                                &res->scales_fp16_rel_err);
    if (st) goto done;
    for (int64_t i = 0; i < ngroups * R; i++) {
        res->zeros[i] = (int32_t)zf[i];
        z8[i] = (uint8_t)res->zeros[i];
        pk->scales[i] = gptq_f32_to_f16(res->scales[i]);
    }
    pk->bits = b_;
    pk->in_features = C;
    pk->out_features = R;
    pk->ngroups = ngroups;
    if ((st = gptq_qzeros_pack(z8, ngroups, R, b_, GPTQ_FORMAT_V2, pk->qzeros))) goto done;
    res->loss = 0.0;
    for (int64_t r = 0; r < R; r++) res->loss += loss[r];

    /* the checkpoint's weight into the working copy; the output error's
     * numerator 2 loss - lambda ||W - W_hat||^2 (see quantize_layer_impl),
     * ||W - W_hat||^2 = ||W||^2 - 2 W.W_hat + ||W_hat||^2 from exact double
     * products (W_hat here with the fp16 scales); then W_hat into W */
    double wx = 0.0, xx = 0.0;
    st = gptq_qdev_upload(be, pk, GPTQ_FORMAT_V2, 0, &q);
    q.t.qweight = qw;
    if (!st) st = gptq_be_check(be, be->iface->dequantize(be->ctx, &q.t, b.W, 0), "dequantize");
    if (!st) st = dev_dot(be, W, b.W, R * C, &wx);
    if (!st) st = dev_dot(be, b.W, b.W, R * C, &xx);
    if (st) goto done;
    const double dsq = fmax(wsq - 2.0 * wx + xx, 0.0);
    const double num = 2.0 * res->loss - (double)lambda_used * dsq;
    res->out_rel_err = den > 0.0 ? sqrt(fmax(num, 0.0) / den) : 0.0;
    res->out_rel_err_f32 = res->out_rel_err;
    /* subnormal fp16 scales: the error of the weight written (see
     * quantize_layer_impl), D = W - W_hat16 made on the host (Wh and a
     * scratch), through H0 = hscale S finished into b.U */
    if (res->scales_subnormal) {
        float *Dh = gptq_malloc(nw, "output-error check");
        double num16 = 0.0;
        st = Dh ? gptq_be_download(be, W, 0, Wh, nw) : GPTQ_ERR_NOMEM;
        if (!st) st = gptq_be_download(be, b.W, 0, Dh, nw);
        if (!st) {
#pragma omp parallel for schedule(static) if (R * C > (1 << 20))
            for (int64_t i = 0; i < R * C; i++) Dh[i] = Wh[i] - Dh[i];
            st = gptq_be_check(be, be->iface->hessian_finish(be->ctx, hs->S, b.U, C, hscale, 0.0f,
                                                             NULL),
                               "hessian_finish");
        }
        if (!st) st = quad_trace(be, Dh, R, C, b.U, &num16);
        free(Dh);
        if (st) goto done;
        res->out_rel_err = den > 0.0 ? sqrt(fmax(num16, 0.0) / den) : 0.0;
    }
    if ((st = gptq_be_check(be, be->iface->copy(be->ctx, W, 0, b.W, 0, nw), "copy"))) goto done;

done:
    free_bufs(be, &b);
    gptq_qdev_free(be, &q);
    gptq_be_free(be, qw);
    gptq_be_free(be, pb);
    gptq_be_free(be, ipb);
    gptq_be_free(be, Sp);
    gptq_be_free(be, codes_col);
    free(perm);
    free(iperm);
    free(gidx);
    free(dq);
    free(diag);
    free(loss);
    free(zf);
    free(z8);
    if (st) {
        gptq_layer_result_free(res);
        gptq_packed_free(pk);
    }
    return st;
}
