/*
 * backend_diff.h — `gptq diff`: one model quantized on two backends in
 * lockstep, every module and every layer compared. Part of the gptq tool,
 * not of libgptq (a backend-validation tool over the library's internal
 * model and solve API; tests/test_diff.c compiles it in too). Backend A is the reference (the CPU backend), B the
 * one under test (the HIP plugin).
 *
 * The walk (the same true-sequential GPTQ as `gptq quantize`, pipeline.h,
 * with every calibration window in one forward pass per backend):
 *   the model is opened once per backend and the same windows embedded on
 *   both; for each decoder layer L:
 *     A: the layer runs forward; at each true-sequential group its input X
 *        is downloaded (kept), a Hessian accumulated from it on A, every
 *        module of the group quantized on A (gptq_quantize_layer) and its
 *        dequantization (fp16 scales, what a loader computes) put back;
 *     B: the same on B from B's own activations; at each group B's input,
 *        Hessian and module results are compared with A's right there, so
 *        a stop names the first module that diverged;
 *     then both quantized layers' outputs are downloaded and compared, and
 *     B's quantized layer is run once more on A's layer input (uploaded)
 *     to separate what B's layer does from what it inherits.
 *   With feed OWN (default) each backend feeds its own outputs to its next
 *   layer, as a real run on it would: differences compound with depth (a
 *   flipped code changes the layer output, hence every later Hessian and
 *   solve). Two metrics remove the inherited part: the Hessian B's op
 *   makes from A's group input (hess_rel_fed), and B's quantized layer fed
 *   A's layer input (out_rel_fed).
 *   With feed REF, B is fed A's activations: each layer of B starts from
 *   A's layer input, and each module of B is solved with the Hessian B's
 *   op makes from A's group input. Only B's own ops (Hessian, factor,
 *   solve, forward) differ, nothing is inherited, so its thresholds are
 *   tight: this is the backend's correctness gate. (in_rel is then 0 and
 *   out_rel_fed = out_rel.)
 *
 * Metrics (A is the reference, norms in double):
 *   x_rel        ||Xb - Xa||_F / ||Xa||_F, the group's input
 *   hess_rel     ||Hb - Ha||_F / ||Ha||_F, each Hessian from its own input
 *   hess_rel_fed the same with B's Hessian accumulated from Xa
 *   codes_same   share of identical integer codes; code_maxdiff the largest
 *                |qa - qb|
 *   scale_rel    max over (group, row) of |sb - sa| / |sa| (f32 scales)
 *   zeros_same   share of identical zero points
 *   loss_rel     |lb - la| / |la| of the module loss
 *   in_rel       ||Xb - Xa|| / ||Xa|| of the layer input
 *   out_rel      ||Yb - Ya|| / ||Ya|| of the quantized layers' outputs, each
 *                fed its own input
 *   out_rel_fed  ||B(Xa) - Ya|| / ||Ya||: B's quantized layer on A's input
 * Comparison order (STYLE lesson 9): a NaN on either side makes the metric
 * NaN (which fails every threshold); infinities must match in sign (else
 * the metric is +inf); then the metric. 0/0 is 0, x/0 is +inf.
 */
#ifndef GPTQ_CLI_BACKEND_DIFF_H
#define GPTQ_CLI_BACKEND_DIFF_H

#include <stdint.h>

#include "../internal.h"

/* The comparisons, in the order above: ||b - a||_F / ||a||_F over n
 * floats (norms in double), and |b - a| / |a|. */
double gptq_diff_rel_l2(const float *a, const float *b, int64_t n);
double gptq_diff_rel1(double a, double b);

/* Metric identifiers (bit i of a `fail` mask is metric i). */
typedef enum gptq_diff_metric {
    GPTQ_DIFF_HESS = 0,     /* hess_rel <= hess + hess_x * x_rel */
    GPTQ_DIFF_HESS_FED,     /* hess_rel_fed <= hess */
    GPTQ_DIFF_CODES,        /* codes_same >= codes */
    GPTQ_DIFF_CODE_MAXDIFF, /* code_maxdiff <= code_maxdiff */
    GPTQ_DIFF_SCALE,        /* scale_rel <= scale */
    GPTQ_DIFF_ZEROS,        /* zeros_same >= zeros */
    GPTQ_DIFF_LOSS,         /* loss_rel <= loss */
    GPTQ_DIFF_OUT,          /* out_rel <= out */
    GPTQ_DIFF_OUT_FED,      /* out_rel_fed <= out_fed */
    GPTQ_DIFF_NMETRICS
} gptq_diff_metric;

/* Name of a metric as FAILSPEC and the JSON records spell it ("codes"). */
const char *gptq_diff_metric_name(int metric);

typedef struct gptq_diff_thresholds {
    double hess;        /* max hess_rel_fed; hess_rel may add hess_x * x_rel */
    double hess_x;      /* Hessian difference allowed per unit of input difference */
    double codes;       /* min codes_same */
    double code_maxdiff;/* max code_maxdiff */
    double scale;       /* max scale_rel */
    double zeros;       /* min zeros_same */
    double loss;        /* max loss_rel */
    double out;         /* max out_rel */
    double out_fed;     /* max out_rel_fed */
} gptq_diff_thresholds;

/* The table at the top of diff.c (each value with its reason), for feed
 * GPTQ_DIFF_FEED_OWN or GPTQ_DIFF_FEED_REF. */
void gptq_diff_thresholds_default(gptq_diff_thresholds *t, int feed);
/* Every threshold at "no difference at all" (two copies of one backend). */
void gptq_diff_thresholds_exact(gptq_diff_thresholds *t);
/* FAILSPEC: "default", "exact", or a comma list of METRIC=VALUE overriding
 * the defaults (METRIC a gptq_diff_metric_name, or hess_x). A bad name or
 * value: GPTQ_ERR_INVALID naming it. */
int gptq_diff_thresholds_parse(const char *spec, int feed, gptq_diff_thresholds *t);

/* One module of one layer, compared. */
typedef struct gptq_diff_module {
    int layer, index, group;
    const char *name;           /* "self_attn.q_proj" */
    const char *group_name;     /* "qkv" */
    int64_t rows, cols, hessian_rows;
    double x_rel, hess_rel, hess_rel_fed;
    double codes_same;          /* 0..1 */
    int code_maxdiff;
    double scale_rel, zeros_same;
    double loss_a, loss_b, loss_rel;
    double out_err_a, out_err_b;/* each backend's own quantization output error */
    float damp_a, damp_b;
    unsigned fail;              /* bit m set: metric m beyond its threshold */
} gptq_diff_module;

/* One layer, after both quantized layers ran. */
typedef struct gptq_diff_layer {
    int layer;
    double in_rel, out_rel, out_rel_fed;
    /* worst module figures of the layer */
    double codes_same_min, hess_rel_max, hess_rel_fed_max, loss_rel_max, scale_rel_max;
    unsigned fail;              /* module failures of the layer ORed, plus OUT / OUT_FED */
    double seconds_a, seconds_b;/* the layer on each backend (forward, Hessians, solves) */
} gptq_diff_layer;

/* What B's layers and solves are fed. */
typedef enum gptq_diff_feed {
    GPTQ_DIFF_FEED_OWN = 0, /* B's own activations and Hessians: a real run on B */
    GPTQ_DIFF_FEED_REF = 1, /* A's: every layer of B starts from A's layer input and
                               every module of B is solved with the Hessian B's op
                               makes from A's group input (hess_rel_fed), so only B's
                               ops differ: nothing compounds */
} gptq_diff_feed;

typedef struct gptq_diff_options {
    gptq_quant_config q;
    gptq_diff_feed feed;
    const int32_t *calib_ids;   /* (nsamples, seqlen) */
    int64_t nsamples, seqlen;
    int max_layers;             /* 0: every layer; else the first max_layers */
    gptq_diff_thresholds thr;
    int stop_at_first;          /* end the walk at the first metric beyond its threshold */
    /* A seeded fault, for showing what a Hessian difference does downstream
     * (and that the metrics see it): every Hessian B makes (own and fed) is
     * multiplied entrywise by 1 + fault_hessian * u, u uniform in [-1, 1),
     * symmetric, from splitmix64(fault_seed). 0: off. */
    double fault_hessian;
    uint64_t fault_seed;
    /* optional callbacks, in walk order: every module of layer L, then L */
    void (*on_module)(void *user, const gptq_diff_module *r);
    void (*on_layer)(void *user, const gptq_diff_layer *r);
    void *user;
} gptq_diff_options;

/* Defaults: gptq_quant_config_default, feed own, its default thresholds,
 * no stop, all layers, no fault. */
void gptq_diff_options_default(gptq_diff_options *o);

typedef struct gptq_diff_summary {
    int layers, modules;        /* compared */
    int failed_modules, failed_layers;
    unsigned fail;              /* every failure ORed */
    int stopped;                /* 1: stop_at_first ended the walk */
    /* the first divergence (layer -1 when none) */
    int first_layer;
    char first_module[64];      /* "" when a layer metric (out, out_fed) */
    int first_metric;
    double first_value, first_threshold;
    char first_message[320];    /* "layer 3, mlp.down_proj: codes 0.9712 < 0.99" */
    /* worst figures over the walk */
    double codes_same_min, hess_rel_max, hess_rel_fed_max, loss_rel_max, scale_rel_max;
    double zeros_same_min, out_rel_max, out_rel_fed_max;
    int code_maxdiff_max;
    double seconds_a, seconds_b;
} gptq_diff_summary;

/* Diff model_dir quantized on a (reference) and b. Returns GPTQ_OK when the
 * walk finished or was stopped by stop_at_first (the summary says which
 * thresholds failed), or a negative status (a backend or model error,
 * named). The backends are borrowed. */
int gptq_diff_models(gptq_backend *a, gptq_backend *b, const char *model_dir,
                     const gptq_diff_options *o, gptq_diff_summary *s);

#endif /* GPTQ_CLI_BACKEND_DIFF_H */
