/*
 * cmd_diff.c — `gptq diff MODEL_DIR --backends A,B --calib FILE`: quantize
 * one model on two backends in lockstep and compare every module and every
 * layer (src/cli/backend_diff.h says how and what each metric is). A is the
 * reference (cpu), B the backend under test (hip, or a plugin path).
 *
 * Output: a table row per module and a line per layer (--json: one JSON
 * record per module, per layer, and a summary at the end). Exit 0 when
 * every metric is within its threshold, 1 when one is not (or on an
 * error), 2 on a usage error.
 */
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "backend_diff.h"
#include "cli.h"
#include "internal.h"
#include "model/model.h"
#include "text/calib.h"
#include "text/tokenizer.h"

static const char *CMD = "diff";

#define DEFAULT_NSAMPLES 16
#define DEFAULT_SEQLEN 256

static void help(FILE *f)
{
    fprintf(f,
            "usage: gptq diff MODEL_DIR --calib FILE [--backends A,B] [options]\n\n"
            "Quantize MODEL_DIR with GPTQ on two backends at once, layer by layer, each on its\n"
            "own activations, and compare at every true-sequential group and every layer:\n"
            "Hessians, codes, scales, zeros, losses, and the quantized layers' outputs.\n"
            "A is the reference. Exit 1 when a metric is beyond its threshold.\n\n"
            "  --backends A,B         the two backends (default cpu,hip; a name or a plugin path)\n"
            "  --feed own|ref         own (default): each backend runs on its own activations,\n"
            "                         as a real run would (differences compound with depth);\n"
            "                         ref: B is fed A's layer inputs and solves with the\n"
            "                         Hessian its op makes from A's group inputs, so only B's\n"
            "                         ops differ (tight thresholds: the backend's gate)\n"
            "  --layers N             only the first N decoder layers (default: all)\n"
            "  --thresholds FAILSPEC  the thresholds (default: the --feed mode's column of the\n"
            "                         table in src/cli/backend_diff.c)\n"
            "  --stop-at-first FAILSPEC  as --thresholds, and stop at the first module or layer\n"
            "                         beyond one, naming layer, module and metric\n"
            "                         FAILSPEC: default | exact (no difference at all) |\n"
            "                         METRIC=VALUE,... over the defaults; metrics: hess, hess_x,\n"
            "                         codes, code_maxdiff, scale, zeros, loss, out, out_fed\n"
            "  --json                 one JSON record per module and per layer, then a summary\n"
            "  --fault-hessian EPS    diagnostic: multiply every Hessian of B by 1 + EPS*u,\n"
            "                         u uniform in [-1,1) (seeded by --fault-seed N): what a\n"
            "                         Hessian difference of that size does downstream\n"
            "calibration (all windows go through one forward pass per backend):\n"
            "  --calib FILE           plain UTF-8 text, or JSON lines with a \"text\" field\n"
            "  --calib-bytes N        use only the first N bytes of the text\n"
            "  --nsamples N           windows (default %d)\n"
            "  --seqlen N             tokens per window (default %d, or max_position_embeddings\n"
            "                         if smaller)\n"
            "  --seed N               window positions (splitmix64, as `gptq quantize`; default 0)\n"
            CLI_COMMON_HELP
            "%s"
            "\nColumns: x_rel the group input's relative difference; hess B's Hessian of its\n"
            "own input vs A's; hess_fed B's Hessian op on A's input vs A's; codes identical\n"
            "share and largest difference; scale largest relative difference; zeros identical\n"
            "share; loss relative difference. Per layer: in/out relative L2 differences of the\n"
            "layer input and the quantized layer's output (each backend on its own input), and\n"
            "out_fed: B's quantized layer run on A's input vs A's output.\n",
            DEFAULT_NSAMPLES, DEFAULT_SEQLEN, CLI_QUANT_HELP);
}

typedef struct ui {
    int json;
    int header_done;
} ui;

static void fail_names(unsigned fail, char *buf, size_t n)
{
    buf[0] = '\0';
    size_t used = 0;
    for (int m = 0; m < GPTQ_DIFF_NMETRICS; m++)
        if (fail & (1u << m)) {
            int k = snprintf(buf + used, n - used, "%s%s", used ? "," : "",
                             gptq_diff_metric_name(m));
            if (k < 0 || (size_t)k >= n - used) break;
            used += (size_t)k;
        }
}

/* cJSON has no NaN/Inf: those become strings so a reader sees them. */
static int add_num(cJSON *o, const char *key, double v)
{
    if (isfinite(v)) return cJSON_AddNumberToObject(o, key, v) != NULL;
    return cJSON_AddStringToObject(o, key, isnan(v) ? "nan" : v > 0 ? "inf" : "-inf") != NULL;
}

static int add_fail(cJSON *o, unsigned fail)
{
    cJSON *arr = cJSON_AddArrayToObject(o, "fail");
    if (!arr) return 0;
    for (int m = 0; m < GPTQ_DIFF_NMETRICS; m++)
        if (fail & (1u << m)) cJSON_AddItemToArray(arr, cJSON_CreateString(gptq_diff_metric_name(m)));
    return 1;
}

static void print_json(cJSON *o)
{
    char *line = o ? cJSON_PrintUnformatted(o) : NULL;
    if (line) printf("%s\n", line);
    else cli_err(CMD, "out of memory formatting a JSON record");
    free(line);
    cJSON_Delete(o);
    fflush(stdout);
}

static void on_module(void *user, const gptq_diff_module *r)
{
    ui *u = user;
    char fails[160];
    fail_names(r->fail, fails, sizeof fails);
    if (u->json) {
        cJSON *o = cJSON_CreateObject();
        int ok = o && cJSON_AddStringToObject(o, "kind", "module") &&
                 cJSON_AddNumberToObject(o, "layer", r->layer) &&
                 cJSON_AddStringToObject(o, "module", r->name) &&
                 cJSON_AddStringToObject(o, "group", r->group_name) &&
                 cJSON_AddNumberToObject(o, "rows", (double)r->rows) &&
                 cJSON_AddNumberToObject(o, "cols", (double)r->cols) &&
                 cJSON_AddNumberToObject(o, "hessian_rows", (double)r->hessian_rows) &&
                 add_num(o, "x_rel", r->x_rel) && add_num(o, "hess_rel", r->hess_rel) &&
                 add_num(o, "hess_rel_fed", r->hess_rel_fed) &&
                 add_num(o, "codes_same", r->codes_same) &&
                 cJSON_AddNumberToObject(o, "code_maxdiff", r->code_maxdiff) &&
                 add_num(o, "scale_rel", r->scale_rel) && add_num(o, "zeros_same", r->zeros_same) &&
                 add_num(o, "loss_a", r->loss_a) && add_num(o, "loss_b", r->loss_b) &&
                 add_num(o, "loss_rel", r->loss_rel) && add_num(o, "out_err_a", r->out_err_a) &&
                 add_num(o, "out_err_b", r->out_err_b) &&
                 add_num(o, "damp_a", (double)r->damp_a) &&
                 add_num(o, "damp_b", (double)r->damp_b) && add_fail(o, r->fail);
        print_json(ok ? o : (cJSON_Delete(o), NULL));
        return;
    }
    if (!u->header_done) {
        printf("%5s  %-18s %10s  %9s %9s %9s  %9s %4s  %9s %8s  %9s\n", "layer", "module",
               "out x in", "x_rel", "hess", "hess_fed", "codes%", "maxd", "scale", "zeros%",
               "loss_rel");
        u->header_done = 1;
    }
    char shape[32];
    snprintf(shape, sizeof shape, "%lldx%lld", (long long)r->rows, (long long)r->cols);
    printf("%5d  %-18s %10s  %9.3g %9.3g %9.3g  %9.5f %4d  %9.3g %8.4f  %9.3g%s%s\n", r->layer,
           r->name, shape, r->x_rel, r->hess_rel, r->hess_rel_fed, 100.0 * r->codes_same,
           r->code_maxdiff, r->scale_rel, 100.0 * r->zeros_same, r->loss_rel,
           r->fail ? "  FAIL " : "", fails);
    fflush(stdout);
}

static void on_layer(void *user, const gptq_diff_layer *r)
{
    ui *u = user;
    char fails[160];
    fail_names(r->fail, fails, sizeof fails);
    if (u->json) {
        cJSON *o = cJSON_CreateObject();
        int ok = o && cJSON_AddStringToObject(o, "kind", "layer") &&
                 cJSON_AddNumberToObject(o, "layer", r->layer) &&
                 add_num(o, "in_rel", r->in_rel) && add_num(o, "out_rel", r->out_rel) &&
                 add_num(o, "out_rel_fed", r->out_rel_fed) &&
                 add_num(o, "codes_same_min", r->codes_same_min) &&
                 add_num(o, "hess_rel_max", r->hess_rel_max) &&
                 add_num(o, "hess_rel_fed_max", r->hess_rel_fed_max) &&
                 add_num(o, "loss_rel_max", r->loss_rel_max) &&
                 add_num(o, "scale_rel_max", r->scale_rel_max) &&
                 add_num(o, "seconds_a", r->seconds_a) && add_num(o, "seconds_b", r->seconds_b) &&
                 add_fail(o, r->fail);
        print_json(ok ? o : (cJSON_Delete(o), NULL));
        return;
    }
    printf("layer %d: in %.3g  out %.3g  out_fed %.3g  (codes >= %.4f%%, A %.2f s, B %.2f s)  "
           "%s%s\n",
           r->layer, r->in_rel, r->out_rel, r->out_rel_fed, 100.0 * r->codes_same_min,
           r->seconds_a, r->seconds_b, r->fail ? "FAIL " : "ok", fails);
    fflush(stdout);
}

static void print_summary(const ui *u, const gptq_diff_summary *s, const char *na,
                          const char *nb, const gptq_diff_options *o)
{
    char fails[160];
    fail_names(s->fail, fails, sizeof fails);
    if (u->json) {
        cJSON *t = cJSON_CreateObject();
        int ok = t && cJSON_AddStringToObject(t, "kind", "summary") &&
                 cJSON_AddStringToObject(t, "a", na) && cJSON_AddStringToObject(t, "b", nb) &&
                 cJSON_AddNumberToObject(t, "layers", s->layers) &&
                 cJSON_AddNumberToObject(t, "modules", s->modules) &&
                 cJSON_AddNumberToObject(t, "failed_modules", s->failed_modules) &&
                 cJSON_AddNumberToObject(t, "failed_layers", s->failed_layers) &&
                 cJSON_AddBoolToObject(t, "stopped", s->stopped) &&
                 cJSON_AddStringToObject(t, "feed", o->feed == GPTQ_DIFF_FEED_REF ? "ref" : "own") &&
                 cJSON_AddStringToObject(t, "first_divergence", s->first_message) &&
                 add_num(t, "codes_same_min", s->codes_same_min) &&
                 cJSON_AddNumberToObject(t, "code_maxdiff_max", s->code_maxdiff_max) &&
                 add_num(t, "zeros_same_min", s->zeros_same_min) &&
                 add_num(t, "hess_rel_max", s->hess_rel_max) &&
                 add_num(t, "hess_rel_fed_max", s->hess_rel_fed_max) &&
                 add_num(t, "scale_rel_max", s->scale_rel_max) &&
                 add_num(t, "loss_rel_max", s->loss_rel_max) &&
                 add_num(t, "out_rel_max", s->out_rel_max) &&
                 add_num(t, "out_rel_fed_max", s->out_rel_fed_max) &&
                 add_num(t, "seconds_a", s->seconds_a) && add_num(t, "seconds_b", s->seconds_b) &&
                 cJSON_AddNumberToObject(t, "bits", o->q.bits) &&
                 cJSON_AddNumberToObject(t, "group_size", o->q.group_size) &&
                 cJSON_AddBoolToObject(t, "sym", o->q.sym) &&
                 cJSON_AddBoolToObject(t, "desc_act", o->q.desc_act) &&
                 cJSON_AddBoolToObject(t, "act_group_aware",
                                       gptq_quant_config_act_group_aware(&o->q)) &&
                 cJSON_AddNumberToObject(t, "nsamples", (double)o->nsamples) &&
                 cJSON_AddNumberToObject(t, "seqlen", (double)o->seqlen) &&
                 add_num(t, "fault_hessian", o->fault_hessian) && add_fail(t, s->fail);
        print_json(ok ? t : (cJSON_Delete(t), NULL));
        return;
    }
    printf("\n%s vs %s, feed %s: %d layers, %d modules (%d-bit, group %d, %s%s%s, %lld x %lld "
           "tokens)%s\n",
           na, nb, o->feed == GPTQ_DIFF_FEED_REF ? "ref" : "own", s->layers, s->modules,
           o->q.bits, o->q.group_size, o->q.sym ? "sym" : "asym",
           o->q.desc_act ? ", act-order" : "",
           gptq_quant_config_act_group_aware(&o->q) ? ", group-aware act-order" : "",
           (long long)o->nsamples, (long long)o->seqlen,
           s->stopped ? ", stopped at the first divergence" : "");
    char out[64] = "- (no layer finished)";
    if (s->layers) snprintf(out, sizeof out, "%.3g (fed %.3g)", s->out_rel_max, s->out_rel_fed_max);
    printf("  worst: codes identical %.4f%% (largest difference %d), zeros identical %.4f%%,\n"
           "         hess %.3g (fed %.3g), scale %.3g, loss %.3g, out %s\n",
           100.0 * s->codes_same_min, s->code_maxdiff_max, 100.0 * s->zeros_same_min,
           s->hess_rel_max, s->hess_rel_fed_max, s->scale_rel_max, s->loss_rel_max, out);
    printf("  time:  %s %.2f s, %s %.2f s\n", na, s->seconds_a, nb, s->seconds_b);
    if (o->fault_hessian > 0)
        printf("  fault: every Hessian of %s perturbed by a relative %g (seed %llu)\n", nb,
               o->fault_hessian, (unsigned long long)o->fault_seed);
    if (s->fail)
        printf("  FAIL (%s): %d modules and %d layers beyond the thresholds; first: %s\n", fails,
               s->failed_modules, s->failed_layers, s->first_message);
    else
        printf("  ok: every metric within its threshold\n");
}

enum {
    OPT_BACKENDS = OPT_CLI_LAST + 1, OPT_LAYERS, OPT_THRESHOLDS, OPT_STOP, OPT_JSON, OPT_FAULT, OPT_FAULT_SEED, OPT_FEED
};

int cmd_diff(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, 0, 'h'},
        {"calib", required_argument, 0, OPT_CALIB},
        {"calib-bytes", required_argument, 0, OPT_CALIB_BYTES},
        {"nsamples", required_argument, 0, OPT_NSAMPLES},
        {"seqlen", required_argument, 0, OPT_SEQLEN},
        {"seed", required_argument, 0, OPT_SEED},
        {"backends", required_argument, 0, OPT_BACKENDS},
        {"layers", required_argument, 0, OPT_LAYERS},
        {"thresholds", required_argument, 0, OPT_THRESHOLDS},
        {"stop-at-first", required_argument, 0, OPT_STOP},
        {"json", no_argument, 0, OPT_JSON},
        {"feed", required_argument, 0, OPT_FEED},
        {"fault-hessian", required_argument, 0, OPT_FAULT},
        {"fault-seed", required_argument, 0, OPT_FAULT_SEED},
        CLI_QUANT_LONGOPTS,
        CLI_COMMON_LONGOPTS,
        {0, 0, 0, 0},
    };
    gptq_diff_options o;
    gptq_diff_options_default(&o);
    gptq_calib_options co;
    gptq_calib_options_default(&co);
    co.nsamples = DEFAULT_NSAMPLES;
    co.seqlen = DEFAULT_SEQLEN;
    const char *calib = NULL, *backends = "cpu,hip", *spec = NULL;
    int seqlen_given = 0;
    ui u = {0};
    long l;
    double d;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", longopts, NULL)) != -1;) {
        int r = cli_quant_option(CMD, c, optarg, &o.q);
        if (r == 0) r = cli_calib_option(CMD, c, optarg, &co, &calib, &seqlen_given);
        if (r == 0) r = cli_common_option(CMD, c, optarg);
        if (r < 0) return 2;
        if (r > 0) continue;
        switch (c) {
        case 'h': help(stdout); return 0;
        case OPT_BACKENDS: backends = optarg; break;
        case OPT_LAYERS:
            if (cli_int_opt(CMD, "--layers", optarg, 1, INT_MAX, &l)) return 2;
            o.max_layers = (int)l;
            break;
        case OPT_STOP:
        case OPT_THRESHOLDS:
            if (c == OPT_STOP) o.stop_at_first = 1;
            if (spec && strcmp(spec, optarg)) {
                cli_err(CMD, "--thresholds and --stop-at-first give different FAILSPECs "
                             "('%s', '%s'): give one", spec, optarg);
                return 2;
            }
            spec = optarg;
            break;
        case OPT_JSON: u.json = 1; break;
        case OPT_FEED:
            if (!strcmp(optarg, "own")) o.feed = GPTQ_DIFF_FEED_OWN;
            else if (!strcmp(optarg, "ref")) o.feed = GPTQ_DIFF_FEED_REF;
            else {
                cli_err(CMD, "--feed %s: must be own or ref", optarg);
                return 2;
            }
            break;
        case OPT_FAULT:
            if (cli_float_opt(CMD, "--fault-hessian", optarg, 0.0, 1.0, &d)) return 2;
            o.fault_hessian = d;
            break;
        case OPT_FAULT_SEED:
            if (cli_int_opt(CMD, "--fault-seed", optarg, 0, LONG_MAX, &l)) return 2;
            o.fault_seed = (uint64_t)l;
            break;
        default: help(stderr); return 2;
        }
    }
    if (cli_quant_conflicts(CMD, &o.q)) return 2;
    if (optind != argc - 1) {
        cli_err(CMD, optind >= argc ? "no model folder" : "more than one model folder");
        help(stderr);
        return 2;
    }
    const char *model_dir = argv[optind];
    if (!calib) {
        cli_err(CMD, "GPTQ needs calibration text: --calib FILE");
        return 2;
    }
    if (o.q.method == GPTQ_METHOD_RTN) {
        cli_err(CMD, "--method rtn: RTN uses no Hessian and no forward pass; diff GPTQ instead");
        return 2;
    }
    if (gptq_diff_thresholds_parse(spec, o.feed, &o.thr)) {
        cli_err(CMD, "%s", gptq_last_error());
        return 2;
    }
    char na[512], nb[512];
    const char *comma = strchr(backends, ',');
    if (!comma || comma == backends || !comma[1] || strchr(comma + 1, ',') ||
        (size_t)(comma - backends) >= sizeof na || strlen(comma + 1) >= sizeof nb) {
        cli_err(CMD, "--backends %s: must be two backends A,B (for example cpu,hip)", backends);
        return 2;
    }
    snprintf(na, sizeof na, "%.*s", (int)(comma - backends), backends);
    snprintf(nb, sizeof nb, "%s", comma + 1);

    int rc = 1, st;
    gptq_model_config cfg;
    gptq_tokenizer *tok = NULL;
    gptq_calib cal = {0};
    gptq_backend *ba = NULL, *bb = NULL;
    gptq_diff_summary s;
    if ((st = gptq_model_config_load(model_dir, &cfg))) return cli_fail(CMD, st);
    if (!seqlen_given && co.seqlen > cfg.max_positions) co.seqlen = cfg.max_positions;
    if (co.seqlen > cfg.max_positions) {
        cli_err(CMD, "--seqlen %lld exceeds %s's max_position_embeddings (%lld)",
                (long long)co.seqlen, model_dir, (long long)cfg.max_positions);
        return 2;
    }
    if ((st = gptq_tok_load(model_dir, &tok))) goto fail;
    if ((st = gptq_calib_load(tok, calib, &co, &cal))) goto fail;
    if ((st = gptq_backend_open(na, &ba))) goto fail;
    if ((st = gptq_backend_open(nb, &bb))) goto fail;
    if (!u.json)
        cli_note(CMD, "%s, %s (reference) vs %s, %lld windows of %lld tokens (seed %llu)",
                model_dir, na, nb, (long long)cal.nsamples, (long long)cal.seqlen,
                (unsigned long long)co.seed);
    o.calib_ids = cal.ids;
    o.nsamples = cal.nsamples;
    o.seqlen = cal.seqlen;
    o.on_module = on_module;
    o.on_layer = on_layer;
    o.user = &u;
    if ((st = gptq_diff_models(ba, bb, model_dir, &o, &s))) goto fail;
    print_summary(&u, &s, na, nb, &o);
    if (s.stopped) cli_err(CMD, "stopped at the first divergence: %s", s.first_message);
    rc = s.fail ? 1 : 0;
    goto done;
fail:
    cli_fail(CMD, st);
done:
    gptq_calib_free(&cal);
    gptq_tok_free(tok);
    gptq_backend_close(ba);
    gptq_backend_close(bb);
    return rc;
}
