/*
 * backend_diff.c — `gptq diff` (backend_diff.h): one model quantized on two backends in
 * lockstep, layer by layer, every module and layer output compared.
 *
 * Thresholds (B against the reference A), one column per feed mode. The
 * figures they were chosen from: CPU vs the CPU's dlopen'd copy with a
 * seeded Hessian fault of the HIP backend's measured size (relative
 * Frobenius 7e-7, bench/HIP_NOTES.md: eps 1.2e-6 gives eps/sqrt(3) =
 * 6.9e-7) on tiny-llama (16x128 tokens), stories-260k, opt-18m and
 * llama-27m (16x256), 4-bit g128, sym and asym; CPU vs HIP on the device
 * in bench/RESULTS.md "Backend diff (CPU vs HIP)".
 *
 *   metric        ref     own     reason
 *   hess_rel_fed  1e-5    1e-5    the same input through two Hessian ops:
 *                                 f32 sums of n rows in different orders
 *                                 (tiles, FMA), ~sqrt(n) * 6e-8 apart; HIP
 *                                 measured 7e-7 (test_hip uses 1e-5 too).
 *                                 Compounding cannot touch it: it gates both.
 *   hess_rel      1e-5 +  same    each Hessian from its own input: to first
 *                 4 x_rel         order dH = X^T dX + dX^T X, about 2 x_rel
 *                                 when dX is spread like X; measured
 *                                 (hess - 1e-5) / x_rel <= 1.61.
 *   codes_same    >= 0.99 >= 0.4  ref: a value within ~1e-6 of a rounding
 *                                 boundary flips one code (f32 noise of H,
 *                                 U, W) and the error feedback carries the
 *                                 flip along the rest of the row; symmetric
 *                                 grids put the group's most negative
 *                                 weight exactly ON a tie (ref/README.md).
 *                                 Measured >= 99.67% (HIP: 99.52%). own:
 *                                 every flip changes the layer's output,
 *                                 so every later Hessian (x_rel 1e-3 ..
 *                                 2e-2) and solve: measured down to 70.7%
 *                                 after 1-6 layers (HIP at 16x128 tokens:
 *                                 59.9%; GPTQ's codes are that sensitive
 *                                 to H); unrelated codes agree ~20%.
 *   code_maxdiff  <= 15   <= 15   reported, a gate only above 4 bits: a
 *                                 diverged row's later codes move by
 *                                 several steps (measured 3 / 7, HIP 5 /
 *                                 8); the share of codes is the gate.
 *   scale_rel     < 0.5   < 1.0   a group's grid comes from the in-block
 *                                 updated W: in a row whose codes diverged
 *                                 its later groups' min/max moved by the
 *                                 fed-back errors, most in narrow groups
 *                                 (measured 0.146 / 0.389). Rows without a
 *                                 flip keep their scales to 1e-6 (measured
 *                                 7.7e-7): the share gate is codes/zeros.
 *   zeros_same    >= 0.99 >= 0.5  as codes (sym zeros are fixed: 100%);
 *                                 measured >= 99.74% / 86.0% (HIP 99.61%
 *                                 / 78.8%).
 *   loss_rel      < 0.03  < 0.25  the module's loss sums all rows; flipped
 *                                 rows change their terms (measured 0.0089
 *                                 / 0.082).
 *   out_rel_fed   < 0.025 < 0.2   B's quantized layer on A's input: flipped
 *                                 codes move about one grid step on < 1% of
 *                                 the weights (measured 0.0079 / 0.089)
 *                                 plus forward-op noise (1e-6).
 *   out_rel       < 0.025 < 0.5   ref: the same as out_rel_fed. own: each
 *                                 fed its own input: compounded over the
 *                                 layers before, grows with depth (measured
 *                                 0.233 after 6 layers).
 * The ref column is the backend's correctness gate (margins about 3x the
 * measured worst). The own column is an alarm for gross breakage only (a
 * wrong kernel gives codes near 20% and outputs off by O(1)): what a real
 * run on B inherits is chaotic, not a tolerance.
 *
 * "exact" (gptq_diff_thresholds_exact) sets every threshold to "no
 * difference": the CPU backend against a copy of itself must pass it.
 *
 * Memory on the host, per layer: every group's input X of A (T x cols
 * floats) and Hessian (cols^2), every module's result of A until B's
 * module is compared, and four (T, D) activations. On each backend: the
 * model's one loaded layer and work buffers, two (T, D) activations (three
 * on B).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/model.h"
#include "../quant/solve.h"
#include "../text/calib.h"
#include "backend_diff.h"

/* ------------------------------------------------------------------ */
/* Thresholds                                                          */
/* ------------------------------------------------------------------ */

static const char *const k_metric_names[GPTQ_DIFF_NMETRICS] = {
    [GPTQ_DIFF_HESS] = "hess",           [GPTQ_DIFF_HESS_FED] = "hess_fed",
    [GPTQ_DIFF_CODES] = "codes",         [GPTQ_DIFF_CODE_MAXDIFF] = "code_maxdiff",
    [GPTQ_DIFF_SCALE] = "scale",         [GPTQ_DIFF_ZEROS] = "zeros",
    [GPTQ_DIFF_LOSS] = "loss",           [GPTQ_DIFF_OUT] = "out",
    [GPTQ_DIFF_OUT_FED] = "out_fed",
};

const char *gptq_diff_metric_name(int metric)
{
    return metric >= 0 && metric < GPTQ_DIFF_NMETRICS ? k_metric_names[metric] : "?";
}

void gptq_diff_thresholds_default(gptq_diff_thresholds *t, int feed)
{
    if (feed == GPTQ_DIFF_FEED_OWN) {
        t->hess = 1e-5;
        t->hess_x = 4.0;
        t->codes = 0.4;
        t->code_maxdiff = 15;
        t->scale = 1.0;
        t->zeros = 0.5;
        t->loss = 0.25;
        t->out = 0.5;
        t->out_fed = 0.2;
        return;
    }
    t->hess = 1e-5;
    t->hess_x = 4.0;
    t->codes = 0.99;
    t->code_maxdiff = 15;
    t->scale = 0.5;
    t->zeros = 0.99;
    t->loss = 0.03;
    t->out = 0.025;
    t->out_fed = 0.025;
}

void gptq_diff_thresholds_exact(gptq_diff_thresholds *t)
{
    t->hess = 0.0;
    t->hess_x = 0.0;
    t->codes = 1.0;
    t->code_maxdiff = 0;
    t->scale = 0.0;
    t->zeros = 1.0;
    t->loss = 0.0;
    t->out = 0.0;
    t->out_fed = 0.0;
}

static double *threshold_slot(gptq_diff_thresholds *t, const char *name, size_t len)
{
#define SLOT(str, field) \
    if (len == sizeof(str) - 1 && !strncmp(name, str, len)) return &t->field
    SLOT("hess", hess);
    SLOT("hess_fed", hess); /* one value for both Hessian checks */
    SLOT("hess_x", hess_x);
    SLOT("codes", codes);
    SLOT("code_maxdiff", code_maxdiff);
    SLOT("scale", scale);
    SLOT("zeros", zeros);
    SLOT("loss", loss);
    SLOT("out", out);
    SLOT("out_fed", out_fed);
#undef SLOT
    return NULL;
}

int gptq_diff_thresholds_parse(const char *spec, int feed, gptq_diff_thresholds *t)
{
    gptq_diff_thresholds_default(t, feed);
    if (!spec || !strcmp(spec, "default")) return GPTQ_OK;
    if (!strcmp(spec, "exact")) {
        gptq_diff_thresholds_exact(t);
        return GPTQ_OK;
    }
    const char *p = spec;
    while (*p) {
        const char *comma = strchr(p, ',');
        const size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (!eq)
            return gptq_error(GPTQ_ERR_INVALID,
                              "FAILSPEC '%s': '%.*s' is not METRIC=VALUE (or use 'default' or "
                              "'exact')", spec, (int)n, p);
        double *slot = threshold_slot(t, p, (size_t)(eq - p));
        if (!slot)
            return gptq_error(GPTQ_ERR_INVALID,
                              "FAILSPEC '%s': unknown metric '%.*s' (hess, hess_fed, hess_x, "
                              "codes, code_maxdiff, scale, zeros, loss, out, out_fed)",
                              spec, (int)(eq - p), p);
        char buf[64], *end;
        const size_t vn = n - (size_t)(eq + 1 - p);
        if (vn == 0 || vn >= sizeof buf)
            return gptq_error(GPTQ_ERR_INVALID, "FAILSPEC '%s': '%.*s' has no usable value", spec,
                              (int)n, p);
        memcpy(buf, eq + 1, vn);
        buf[vn] = '\0';
        const double v = strtod(buf, &end);
        if (*end || !isfinite(v) || v < 0.0)
            return gptq_error(GPTQ_ERR_INVALID,
                              "FAILSPEC '%s': value '%s' must be a non-negative number", spec,
                              buf);
        if ((slot == &t->codes || slot == &t->zeros) && v > 1.0)
            return gptq_error(GPTQ_ERR_INVALID,
                              "FAILSPEC '%s': '%.*s' is a share of identical values, in [0, 1]",
                              spec, (int)n, p);
        *slot = v;
        p = comma ? comma + 1 : p + n;
    }
    return GPTQ_OK;
}

void gptq_diff_options_default(gptq_diff_options *o)
{
    memset(o, 0, sizeof *o);
    gptq_quant_config_default(&o->q);
    gptq_diff_thresholds_default(&o->thr, GPTQ_DIFF_FEED_OWN);
}

/* ------------------------------------------------------------------ */
/* Metrics (fixed order: NaN, then infinities, then the value)         */
/* ------------------------------------------------------------------ */

double gptq_diff_rel_l2(const float *a, const float *b, int64_t n)
{
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const float x = a[i], y = b[i];
        if (isnan(x) || isnan(y)) return NAN;
        if (isinf(x) || isinf(y)) {
            if (x != y) return INFINITY;
            continue; /* the same infinity: no difference */
        }
        const double d = (double)y - (double)x;
        num += d * d;
        den += (double)x * (double)x;
    }
    if (den == 0.0) return num == 0.0 ? 0.0 : INFINITY;
    return sqrt(num / den);
}

double gptq_diff_rel1(double a, double b)
{
    if (isnan(a) || isnan(b)) return NAN;
    if (isinf(a) || isinf(b)) return a == b ? 0.0 : INFINITY;
    const double d = fabs(b - a);
    if (a == 0.0) return d == 0.0 ? 0.0 : INFINITY;
    return d / fabs(a);
}

/* ------------------------------------------------------------------ */
/* The walk's state                                                    */
/* ------------------------------------------------------------------ */

typedef struct side {
    gptq_backend *be;
    gptq_model *m;
    gptq_buf *X;            /* (T, D) this backend's activations (in place per layer) */
} side;

typedef struct dw {
    const gptq_diff_options *o;
    gptq_diff_summary *s;
    side A, B;
    gptq_buf *Xf;           /* (T, D) on B: A's layer input, for out_rel_fed */
    const gptq_model_config *cfg;
    int maxlin, maxgroups, nlayers; /* most linears and groups of a layer */
    int64_t T, D, maxc, maxw;

    int ref;                /* feed GPTQ_DIFF_FEED_REF */

    /* host, per layer */
    float **xg;             /* (maxgroups) (T, cols of group g) A's group inputs */
    float **Ha;             /* (maxgroups) (cols, cols) A's Hessian of group g */
    int64_t *hrows;         /* (maxgroups) */
    gptq_layer_result *ra;  /* (maxlin) A's result of each module */
    float *xb;              /* (T, maxc) B's group input */
    float *Hb, *Hf;         /* (maxc, maxc) B's own and fed Hessians */
    float *W;               /* (maxw) a module's weight */
    float *xa_in, *ya, *yb; /* (T, D) */

    gptq_diff_layer lr;     /* the current layer's record */
    int stop;               /* 1: stop_at_first hit; end the walk */
} dw;

/* Record a failing metric; the first one over the walk is named. */
static void note_fail(dw *w, int L, const char *module, int metric, double value, double thr,
                      const char *cmp)
{
    gptq_diff_summary *s = w->s;
    s->fail |= 1u << metric;
    if (s->first_layer >= 0) return;
    s->first_layer = L;
    snprintf(s->first_module, sizeof s->first_module, "%s", module ? module : "");
    s->first_metric = metric;
    s->first_value = value;
    s->first_threshold = thr;
    snprintf(s->first_message, sizeof s->first_message, "layer %d%s%s: %s %.6g %s %.6g", L,
             module ? ", " : "", module ? module : "", gptq_diff_metric_name(metric), value, cmp,
             thr);
}

/* Check value against a max (upper = 1) or min threshold; NaN fails. */
static unsigned check(dw *w, int L, const char *module, int metric, double value, double thr,
                      int upper)
{
    const int ok = upper ? value <= thr : value >= thr;
    if (ok) return 0;
    note_fail(w, L, module, metric, value, thr, upper ? ">" : "<");
    return 1u << metric;
}

/* Multiply H (C, C) entrywise by 1 + eps * u, u uniform [-1, 1) from the
 * seed, the same u for (i, j) and (j, i): the seeded Hessian fault. */
static void perturb(float *H, int64_t C, double eps, uint64_t seed)
{
    uint64_t st = seed;
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = i; j < C; j++) {
            const double u = (double)(gptq_splitmix64(&st) >> 11) * 0x1.0p-53 * 2.0 - 1.0;
            const float f = (float)(1.0 + eps * u);
            H[i * C + j] *= f;
            if (j != i) H[j * C + i] *= f;
        }
}

/* W (R, C) = what a loader dequantizes: fp16 scales, (q - z), as
 * pipeline.c's gptq_pack + gptq_dequantize give (without the packing, which
 * needs sizes the diff does not). */
static void dequant_fp16(const gptq_layer_result *r, float *W)
{
    const int64_t R = r->rows, C = r->cols;
    for (int64_t i = 0; i < R; i++)
        for (int64_t k = 0; k < C; k++) {
            const int64_t g = r->g_idx[k];
            const float s = gptq_f16_to_f32(gptq_f32_to_f16(r->scales[g * R + i]));
            W[i * C + k] = s * (float)((int32_t)r->codes[i * C + k] - r->zeros[g * R + i]);
        }
}

/* Quantize linear i of the loaded layer L on one side with H, put the
 * dequantized weight back. */
static int quantize_put(dw *w, side *sd, int L, int i, const float *H, gptq_layer_result *res)
{
    const gptq_linear_info *li = gptq_model_linear(sd->m, L, i);
    int st = gptq_model_linear_get(sd->m, L, i, w->W);
    if (!st) st = gptq_quantize_layer(sd->be, w->W, li->rows, li->cols, H, &w->o->q, res);
    if (!st) {
        dequant_fp16(res, w->W);
        st = gptq_model_linear_set(sd->m, L, i, w->W);
    }
    return st ? gptq_error_prefix(st, "%s", li->name) : GPTQ_OK;
}

/* A Hessian of X (T, cols) on a backend: from a backend buffer, or from
 * host rows (Xhost != NULL). H (cols, cols) host out. */
static int hessian_of(gptq_backend *be, const gptq_buf *X, const float *Xhost, int64_t T,
                      int64_t cols, float *H, int64_t *rows)
{
    gptq_hessian *h = NULL;
    int st = gptq_hessian_new(be, cols, &h);
    if (!st) st = Xhost ? gptq_hessian_add(h, Xhost, T) : gptq_hessian_add_buf(h, X, 0, T);
    if (!st) st = gptq_hessian_get(h, H);
    if (!st && rows) *rows = gptq_hessian_count(h);
    gptq_hessian_free(h);
    return st;
}

/* ------------------------------------------------------------------ */
/* The hooks                                                           */
/* ------------------------------------------------------------------ */

/* A, the reference: keep the group's input and Hessian, quantize. */
static int hook_a(void *user, const gptq_hook_event *ev)
{
    dw *w = user;
    const int g = ev->group, L = ev->layer;
    const size_t nx = (size_t)(ev->T * ev->cols);
    int st = gptq_hook_all_rows(ev);
    if (st) return st;
    st = gptq_be_download(w->A.be, ev->X, 0, w->xg[g], nx * sizeof(float));
    if (!st) st = hessian_of(w->A.be, ev->X, NULL, ev->T, ev->cols, w->Ha[g], &w->hrows[g]);
    if (st) return gptq_error_prefix(st, "group %s", ev->group_name);
    for (int k = 0; k < ev->nlin && !st; k++)
        st = quantize_put(w, &w->A, L, ev->lin[k], w->Ha[g], &w->ra[ev->lin[k]]);
    return st;
}

/* Compare module i of B (result rb) with A's. */
static void compare_module(dw *w, int L, int i, const gptq_hook_event *ev, double x_rel,
                           double hess_rel, double hess_fed, const gptq_layer_result *rb)
{
    const gptq_layer_result *ra = &w->ra[i];
    const gptq_linear_info *li = gptq_model_linear(w->A.m, L, i);
    const gptq_diff_thresholds *t = &w->o->thr;
    const int64_t n = ra->rows * ra->cols, ng = ra->ngroups * ra->rows;
    gptq_diff_module r = {
        .layer = L, .index = i, .group = ev->group, .name = li->name,
        .group_name = ev->group_name, .rows = li->rows, .cols = li->cols,
        .hessian_rows = w->hrows[ev->group], .x_rel = x_rel, .hess_rel = hess_rel,
        .hess_rel_fed = hess_fed, .loss_a = ra->loss, .loss_b = rb->loss,
        .out_err_a = ra->out_rel_err, .out_err_b = rb->out_rel_err, .damp_a = ra->damp_used,
        .damp_b = rb->damp_used,
    };
    int64_t same = 0;
    int maxd = 0;
    for (int64_t k = 0; k < n; k++) {
        const int d = abs((int)ra->codes[k] - (int)rb->codes[k]);
        same += d == 0;
        if (d > maxd) maxd = d;
    }
    r.codes_same = n ? (double)same / (double)n : 1.0;
    r.code_maxdiff = maxd;
    double smax = 0.0;
    int64_t zsame = 0;
    for (int64_t k = 0; k < ng; k++) {
        const double e = gptq_diff_rel1((double)ra->scales[k], (double)rb->scales[k]);
        if (isnan(e) || e > smax) smax = e; /* a NaN stays */
        if (isnan(smax)) break;
    }
    for (int64_t k = 0; k < ng; k++) zsame += ra->zeros[k] == rb->zeros[k];
    r.scale_rel = smax;
    r.zeros_same = ng ? (double)zsame / (double)ng : 1.0;
    r.loss_rel = gptq_diff_rel1(ra->loss, rb->loss);

    const char *nm = li->name;
    unsigned f = 0;
    f |= check(w, L, nm, GPTQ_DIFF_HESS, hess_rel, t->hess + t->hess_x * x_rel, 1);
    f |= check(w, L, nm, GPTQ_DIFF_HESS_FED, hess_fed, t->hess, 1);
    f |= check(w, L, nm, GPTQ_DIFF_CODES, r.codes_same, t->codes, 0);
    f |= check(w, L, nm, GPTQ_DIFF_CODE_MAXDIFF, (double)r.code_maxdiff, t->code_maxdiff, 1);
    f |= check(w, L, nm, GPTQ_DIFF_SCALE, r.scale_rel, t->scale, 1);
    f |= check(w, L, nm, GPTQ_DIFF_ZEROS, r.zeros_same, t->zeros, 0);
    f |= check(w, L, nm, GPTQ_DIFF_LOSS, r.loss_rel, t->loss, 1);
    r.fail = f;

    /* the layer's and the walk's worst figures (NaN sticks) */
    gptq_diff_layer *lr = &w->lr;
    gptq_diff_summary *s = w->s;
#define WORST_MIN(dst, v) \
    if (isnan(v) || (v) < (dst)) (dst) = (v)
#define WORST_MAX(dst, v) \
    if (isnan(v) || (v) > (dst)) (dst) = (v)
    if (!isnan(lr->codes_same_min)) WORST_MIN(lr->codes_same_min, r.codes_same);
    if (!isnan(lr->hess_rel_max)) WORST_MAX(lr->hess_rel_max, r.hess_rel);
    if (!isnan(lr->hess_rel_fed_max)) WORST_MAX(lr->hess_rel_fed_max, r.hess_rel_fed);
    if (!isnan(lr->loss_rel_max)) WORST_MAX(lr->loss_rel_max, r.loss_rel);
    if (!isnan(lr->scale_rel_max)) WORST_MAX(lr->scale_rel_max, r.scale_rel);
    if (!isnan(s->codes_same_min)) WORST_MIN(s->codes_same_min, r.codes_same);
    if (!isnan(s->zeros_same_min)) WORST_MIN(s->zeros_same_min, r.zeros_same);
    if (!isnan(s->hess_rel_max)) WORST_MAX(s->hess_rel_max, r.hess_rel);
    if (!isnan(s->hess_rel_fed_max)) WORST_MAX(s->hess_rel_fed_max, r.hess_rel_fed);
    if (!isnan(s->loss_rel_max)) WORST_MAX(s->loss_rel_max, r.loss_rel);
    if (!isnan(s->scale_rel_max)) WORST_MAX(s->scale_rel_max, r.scale_rel);
    if (r.code_maxdiff > s->code_maxdiff_max) s->code_maxdiff_max = r.code_maxdiff;
    lr->fail |= f;
    s->modules++;
    if (f) s->failed_modules++;
    if (w->o->on_module) w->o->on_module(w->o->user, &r);
    if (f && w->o->stop_at_first) w->stop = 1;
}

/* B, under test: its own Hessian and the one from A's input, compared;
 * each module quantized and compared; stops the forward on a divergence
 * when asked to. */
static int hook_b(void *user, const gptq_hook_event *ev)
{
    dw *w = user;
    const int g = ev->group, L = ev->layer;
    const int64_t T = ev->T, C = ev->cols;
    const size_t nx = (size_t)(T * C);
    int st = gptq_hook_all_rows(ev);
    if (!st) st = gptq_be_download(w->B.be, ev->X, 0, w->xb, nx * sizeof(float));
    if (!st) st = hessian_of(w->B.be, ev->X, NULL, T, C, w->Hb, NULL);
    if (!st) st = hessian_of(w->B.be, NULL, w->xg[g], T, C, w->Hf, NULL);
    if (st) return gptq_error_prefix(st, "group %s", ev->group_name);
    if (w->o->fault_hessian > 0.0) {
        const uint64_t seed = w->o->fault_seed ^ ((uint64_t)L << 32) ^ (uint64_t)g;
        perturb(w->Hb, C, w->o->fault_hessian, seed);
        perturb(w->Hf, C, w->o->fault_hessian, seed);
    }
    const double x_rel = gptq_diff_rel_l2(w->xg[g], w->xb, (int64_t)nx);
    const double hess_rel = gptq_diff_rel_l2(w->Ha[g], w->Hb, C * C);
    const double hess_fed = gptq_diff_rel_l2(w->Ha[g], w->Hf, C * C);
    for (int k = 0; k < ev->nlin && !st; k++) {
        const int i = ev->lin[k];
        gptq_layer_result rb;
        st = quantize_put(w, &w->B, L, i, w->ref ? w->Hf : w->Hb, &rb);
        if (st) break;
        compare_module(w, L, i, ev, x_rel, hess_rel, hess_fed, &rb);
        gptq_layer_result_free(&rb);
        gptq_layer_result_free(&w->ra[i]);
        if (w->stop) return GPTQ_HOOK_STOP;
    }
    return st;
}

/* ------------------------------------------------------------------ */
/* One layer                                                           */
/* ------------------------------------------------------------------ */

static int diff_layer(dw *w, int L)
{
    const int64_t nseq = w->o->nsamples, S = w->o->seqlen, T = w->T, D = w->D;
    const size_t nb = (size_t)(T * D) * sizeof(float);
    gptq_diff_summary *s = w->s;
    gptq_diff_layer *lr = &w->lr;
    memset(lr, 0, sizeof *lr);
    lr->layer = L;
    lr->codes_same_min = 1.0;

    /* the layer inputs, both kept on the host (B's only for in_rel);
     * feeding the reference's activations, B starts from A's input */
    int st = gptq_be_download(w->A.be, w->A.X, 0, w->xa_in, nb);
    if (!st && w->ref) st = gptq_be_upload(w->B.be, w->B.X, 0, w->xa_in, nb);
    if (!st) st = gptq_be_download(w->B.be, w->B.X, 0, w->yb, nb);
    if (st) return gptq_error_prefix(st, "layer %d input", L);
    lr->in_rel = gptq_diff_rel_l2(w->xa_in, w->yb, T * D);

    double t0 = gptq_now();
    st = gptq_model_layer_forward(w->A.m, L, w->A.X, w->A.X, nseq, S, hook_a, w);
    lr->seconds_a = gptq_now() - t0;
    if (st) return gptq_error_prefix(st, "backend %s, layer %d", gptq_backend_name(w->A.be), L);
    t0 = gptq_now();
    st = gptq_model_layer_forward(w->B.m, L, w->B.X, w->B.X, nseq, S, hook_b, w);
    lr->seconds_b = gptq_now() - t0;
    if (st) return gptq_error_prefix(st, "backend %s, layer %d", gptq_backend_name(w->B.be), L);
    s->seconds_a += lr->seconds_a;
    s->seconds_b += lr->seconds_b;
    if (w->stop) return GPTQ_OK; /* B's forward ended inside the layer */

    /* the quantized layers' outputs, and B's layer on A's input */
    st = gptq_be_download(w->A.be, w->A.X, 0, w->ya, nb);
    if (!st) st = gptq_be_download(w->B.be, w->B.X, 0, w->yb, nb);
    if (st) return gptq_error_prefix(st, "layer %d output", L);
    lr->out_rel = gptq_diff_rel_l2(w->ya, w->yb, T * D);
    if (w->ref) {
        lr->out_rel_fed = lr->out_rel; /* B's layer already ran on A's input */
    } else {
        st = gptq_be_upload(w->B.be, w->Xf, 0, w->xa_in, nb);
        if (!st) st = gptq_model_layer_forward(w->B.m, L, w->Xf, w->Xf, nseq, S, NULL, NULL);
        if (!st) st = gptq_be_download(w->B.be, w->Xf, 0, w->yb, nb);
        if (st) return gptq_error_prefix(st, "backend %s, layer %d on the reference's input",
                                         gptq_backend_name(w->B.be), L);
        lr->out_rel_fed = gptq_diff_rel_l2(w->ya, w->yb, T * D);
    }

    const gptq_diff_thresholds *t = &w->o->thr;
    unsigned f = check(w, L, NULL, GPTQ_DIFF_OUT_FED, lr->out_rel_fed, t->out_fed, 1);
    f |= check(w, L, NULL, GPTQ_DIFF_OUT, lr->out_rel, t->out, 1);
    lr->fail |= f;
    if (!isnan(s->out_rel_max) && (isnan(lr->out_rel) || lr->out_rel > s->out_rel_max))
        s->out_rel_max = lr->out_rel;
    if (!isnan(s->out_rel_fed_max) &&
        (isnan(lr->out_rel_fed) || lr->out_rel_fed > s->out_rel_fed_max))
        s->out_rel_fed_max = lr->out_rel_fed;
    s->layers++;
    if (lr->fail) s->failed_layers++;
    if (w->o->on_layer) w->o->on_layer(w->o->user, lr);
    if (lr->fail && w->o->stop_at_first) w->stop = 1;
    return GPTQ_OK;
}

/* ------------------------------------------------------------------ */
/* The walk                                                            */
/* ------------------------------------------------------------------ */

static int check_inputs(dw *w, const char *dir)
{
    const gptq_diff_options *o = w->o;
    const gptq_model_config *ca = w->cfg, *cb = gptq_model_config_of(w->B.m);
    if (ca->quant.present)
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s is already a GPTQ checkpoint: diff the floating-point model", dir);
    if (ca->num_layers != cb->num_layers || ca->hidden_size != cb->hidden_size)
        return gptq_error(GPTQ_ERR_BACKEND, "%s: the two backends read different configs", dir);
    if (!o->calib_ids || o->nsamples < 1 || o->seqlen < 2)
        return gptq_error(GPTQ_ERR_INVALID,
                          "diff: calibration windows needed (at least one of 2 tokens or more)");
    if (o->q.method == GPTQ_METHOD_RTN)
        return gptq_error(GPTQ_ERR_INVALID,
                          "diff: RTN uses no Hessian and no forward pass; diff GPTQ instead");
    if (o->seqlen > ca->max_positions)
        return gptq_error(GPTQ_ERR_INVALID, "diff: seqlen %lld exceeds %s's "
                          "max_position_embeddings %lld", (long long)o->seqlen, dir,
                          (long long)ca->max_positions);
    if (o->feed != GPTQ_DIFF_FEED_OWN && o->feed != GPTQ_DIFF_FEED_REF)
        return gptq_error(GPTQ_ERR_INVALID, "diff: feed %d is neither own (0) nor ref (1)",
                          o->feed);
    if (o->max_layers < 0)
        return gptq_error(GPTQ_ERR_INVALID, "diff: max_layers %d is negative", o->max_layers);
    for (int L = 0; L < w->nlayers; L++)
        for (int i = 0; i < gptq_model_nlinear(w->A.m, L); i++) {
            const gptq_linear_info *li = gptq_model_linear(w->A.m, L, i);
            int st = gptq_quant_config_check(&o->q, li->rows, li->cols);
            if (st) return gptq_error_prefix(st, "%s", li->name);
        }
    return GPTQ_OK;
}

/* The host buffers: group g's as wide as its widest over the layers. */
static int alloc_host(dw *w)
{
    gptq_model *m = w->A.m;
    w->maxc = w->maxw = 0;
    for (int L = 0; L < w->nlayers; L++) {
        if (gptq_model_nlinear(m, L) > w->maxlin) w->maxlin = gptq_model_nlinear(m, L);
        if (gptq_model_ngroups(m, L) > w->maxgroups) w->maxgroups = gptq_model_ngroups(m, L);
    }
    int64_t *gcols = gptq_calloc((size_t)w->maxgroups, sizeof *gcols, "group widths");
    w->xg = gptq_calloc((size_t)w->maxgroups, sizeof *w->xg, "group inputs");
    w->Ha = gptq_calloc((size_t)w->maxgroups, sizeof *w->Ha, "Hessians");
    w->hrows = gptq_calloc((size_t)w->maxgroups, sizeof *w->hrows, "Hessians");
    w->ra = gptq_calloc((size_t)w->maxlin, sizeof *w->ra, "module results");
    if (!gcols || !w->xg || !w->Ha || !w->hrows || !w->ra) {
        free(gcols);
        return GPTQ_ERR_NOMEM;
    }
    for (int L = 0; L < w->nlayers; L++) {
        for (int i = 0; i < gptq_model_nlinear(m, L); i++) {
            const gptq_linear_info *li = gptq_model_linear(m, L, i);
            if (li->cols > w->maxc) w->maxc = li->cols;
            if (li->rows * li->cols > w->maxw) w->maxw = li->rows * li->cols;
        }
        for (int g = 0; g < gptq_model_ngroups(m, L); g++) {
            const int64_t c = gptq_model_linear(m, L, gptq_model_group(m, L, g)->lin[0])->cols;
            if (c > gcols[g]) gcols[g] = c;
        }
    }
    const size_t td = (size_t)(w->T * w->D);
    int st = GPTQ_OK;
    for (int g = 0; g < w->maxgroups && !st; g++) {
        w->xg[g] = gptq_malloc((size_t)(w->T * gcols[g]) * sizeof(float), "a group's input");
        w->Ha[g] = gptq_malloc((size_t)(gcols[g] * gcols[g]) * sizeof(float), "a Hessian");
        if (!w->xg[g] || !w->Ha[g]) st = GPTQ_ERR_NOMEM;
    }
    free(gcols);
    if (st) return st;
    w->xb = gptq_malloc((size_t)(w->T * w->maxc) * sizeof(float), "a group's input");
    w->Hb = gptq_malloc((size_t)(w->maxc * w->maxc) * sizeof(float), "a Hessian");
    w->Hf = gptq_malloc((size_t)(w->maxc * w->maxc) * sizeof(float), "a Hessian");
    w->W = gptq_malloc((size_t)w->maxw * sizeof(float), "a module's weight");
    w->xa_in = gptq_malloc(td * sizeof(float), "activations");
    w->ya = gptq_malloc(td * sizeof(float), "activations");
    w->yb = gptq_malloc(td * sizeof(float), "activations");
    if (!w->xb || !w->Hb || !w->Hf || !w->W || !w->xa_in || !w->ya || !w->yb)
        return GPTQ_ERR_NOMEM;
    return GPTQ_OK;
}

int gptq_diff_models(gptq_backend *a, gptq_backend *b, const char *model_dir,
                     const gptq_diff_options *o, gptq_diff_summary *s)
{
    memset(s, 0, sizeof *s);
    s->first_layer = -1;
    s->first_metric = -1;
    s->codes_same_min = s->zeros_same_min = 1.0;
    if (!a || !b || !model_dir || !o)
        return gptq_error(GPTQ_ERR_INVALID, "diff: NULL backend, folder or options");
    dw W = {0}, *w = &W;
    w->o = o;
    w->s = s;
    w->A.be = a;
    w->B.be = b;
    w->ref = o->feed == GPTQ_DIFF_FEED_REF;
    int st = gptq_model_open(model_dir, a, &w->A.m);
    if (!st) st = gptq_model_open(model_dir, b, &w->B.m);
    if (st) goto done;
    w->cfg = gptq_model_config_of(w->A.m);
    w->nlayers = (int)w->cfg->num_layers;
    if (o->max_layers > 0 && o->max_layers < w->nlayers) w->nlayers = o->max_layers;
    w->T = o->nsamples * o->seqlen;
    w->D = w->cfg->hidden_size;
    if ((st = check_inputs(w, model_dir))) goto done;
    if ((st = alloc_host(w))) goto done;

    /* the same windows embedded on both */
    st = gptq_model_alloc_hidden(w->A.m, o->nsamples, o->seqlen, &w->A.X);
    if (!st) st = gptq_model_alloc_hidden(w->B.m, o->nsamples, o->seqlen, &w->B.X);
    if (!st && !w->ref) st = gptq_model_alloc_hidden(w->B.m, o->nsamples, o->seqlen, &w->Xf);
    if (!st) st = gptq_model_embed(w->A.m, o->calib_ids, o->nsamples, o->seqlen, w->A.X);
    if (!st) st = gptq_model_embed(w->B.m, o->calib_ids, o->nsamples, o->seqlen, w->B.X);
    if (st) {
        gptq_error_prefix(st, "embedding the calibration windows");
        goto done;
    }
    for (int L = 0; L < w->nlayers && !st && !w->stop; L++) st = diff_layer(w, L);
    s->stopped = w->stop;
    gptq_model_layer_unload(w->A.m);
    gptq_model_layer_unload(w->B.m);

done:
    for (int i = 0; w->ra && i < w->maxlin; i++) gptq_layer_result_free(&w->ra[i]);
    for (int g = 0; w->xg && g < w->maxgroups; g++) {
        free(w->xg[g]);
        free(w->Ha[g]);
    }
    free(w->ra);
    free(w->xg);
    free(w->Ha);
    free(w->hrows);
    free(w->xb);
    free(w->Hb);
    free(w->Hf);
    free(w->W);
    free(w->xa_in);
    free(w->ya);
    free(w->yb);
    if (w->A.m) gptq_be_free(a, w->A.X);
    if (w->B.m) {
        gptq_be_free(b, w->B.X);
        gptq_be_free(b, w->Xf);
    }
    gptq_model_close(w->A.m);
    gptq_model_close(w->B.m);
    return st;
}
