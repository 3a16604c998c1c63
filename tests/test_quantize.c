/*
 * test_quantize.c — `gptq quantize` end to end (src/quant/pipeline.c).
 *
 * Synthetic models (always): the single fused pass and the chunked passes
 * give the same checkpoint bytes (their Hessians are the same sums when
 * chunks are whole multiples of the Hessian's 4096-row batches); true-
 * sequential changes exactly the modules after the first group.
 *
 * The shared models (GPTQ_SHARED, skipped without it), at a setting that
 * fits CI time: 32 x 256 calibration tokens from the first 1,000,000 bytes
 * of calib.txt, 4-bit g128 asym, perplexity on the first 20 windows of 256
 * tokens of eval.txt. GPTQ must beat RTN there (the paper's claim, and the
 * reference table's ordering), and the checkpoint, re-opened from disk,
 * must evaluate to the same perplexity as the model held in memory with
 * the weights the pipeline reported (same weights, same forward: equal to
 * 1e-9 relative, the order of sums being the same).
 *
 * The bundled tiny model (data/tiny-llama, skipped when absent): a quick
 * GPTQ run that re-opens, beats RTN and evaluates within 0.15% of the
 * floating-point model (margins from measured figures, at the test).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eval/eval.h"
#include "io/io.h"
#include "model/arch.h"
#include "model/model.h"
#include "quant/pipeline.h"
#include "synth_model.h"
#include "text/calib.h"
#include "text/tokenizer.h"

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

static const char *src_root(void)
{
    const char *r = getenv("GPTQ_SOURCE_ROOT");
    return r ? r : ".";
}

static void make_tmpdir(char *buf, size_t n)
{
    snprintf(buf, n, "/tmp/gptq_test_quantize_XXXXXX");
    cr_assert(mkdtemp(buf), "mkdtemp failed");
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static gptq_backend *cpu(void)
{
    gptq_backend *be;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK);
    return be;
}

/* Tensor bytes of two checkpoints: equal (1) or not, per tensor name. */
static int same_tensor(const char *a_dir, const char *b_dir, const char *name)
{
    gptq_weights *a, *b;
    cr_assert_eq(gptq_weights_open(a_dir, &a), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(gptq_weights_open(b_dir, &b), GPTQ_OK, "%s", gptq_last_error());
    gptq_st_info x, y;
    cr_assert_eq(gptq_weights_find(a, name, &x), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(gptq_weights_find(b, name, &y), GPTQ_OK, "%s", gptq_last_error());
    int same = x.nbytes == y.nbytes && memcmp(x.data, y.data, x.nbytes) == 0;
    gptq_weights_close(a);
    gptq_weights_close(b);
    return same;
}

static int all_tensors_same(const char *a_dir, const char *b_dir)
{
    gptq_weights *a;
    cr_assert_eq(gptq_weights_open(a_dir, &a), GPTQ_OK);
    int same = 1;
    for (int i = 0; i < gptq_weights_count(a) && same; i++) {
        gptq_st_info x;
        gptq_weights_get(a, i, &x);
        same = same_tensor(a_dir, b_dir, x.name);
    }
    gptq_weights_close(a);
    return same;
}

typedef struct {
    int nlin;
    float **W; /* (layers * nlin) reported dequantized weights */
    int64_t n;
} seen;

static void record(void *user, const gptq_module_report *r, const float *W)
{
    seen *s = user;
    const int64_t k = (int64_t)r->layer * s->nlin + r->index;
    cr_assert(k < s->n);
    free(s->W[k]);
    s->W[k] = malloc((size_t)(r->rows * r->cols) * sizeof(float));
    memcpy(s->W[k], W, (size_t)(r->rows * r->cols) * sizeof(float));
}

static void seen_init(seen *s, int layers, int nlin)
{
    s->nlin = nlin;
    s->n = (int64_t)layers * nlin;
    s->W = calloc((size_t)s->n, sizeof *s->W);
}

static void seen_free(seen *s)
{
    for (int64_t k = 0; k < s->n; k++) free(s->W[k]);
    free(s->W);
    memset(s, 0, sizeof *s);
}

static int quantize(const char *model, const char *out, const gptq_quant_config *q,
                    const int32_t *ids, int64_t ns, int64_t S, int64_t batch_tokens, int ts,
                    seen *s)
{
    gptq_backend *be = cpu();
    gptq_pipeline_options o;
    gptq_pipeline_options_default(&o);
    o.q = *q;
    o.calib_ids = ids;
    o.nsamples = ns;
    o.seqlen = S;
    o.batch_tokens = batch_tokens;
    o.true_sequential = ts;
    if (s) {
        o.on_module = record;
        o.module_weights = 1;
        o.user = s;
    }
    gptq_pipeline_stats stats;
    int st = gptq_quantize_model(be, model, out, &o, &stats);
    gptq_backend_close(be);
    return st;
}

/* Random calibration ids for a synthetic model. */
static int32_t *rand_ids(int64_t n, uint32_t seed)
{
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)(syn_lcg(&seed) % SYN_V);
    return ids;
}

/* ------------------------------------------------------------------ */
/* synthetic models                                                    */
/* ------------------------------------------------------------------ */

static void fused_vs_chunked(int opt)
{
    char root[256], model[300], a[300], b[300];
    cr_assert_eq(syn_model_dir(root, model, NULL, opt, NULL), GPTQ_OK, "%s", gptq_last_error());
    snprintf(a, sizeof a, "%s/fused", root);
    snprintf(b, sizeof b, "%s/chunked", root);
    const int64_t ns = 256, S = 32; /* 8192 tokens: two 4096-token chunks */
    int32_t *ids = rand_ids(ns * S, 11u);
    gptq_quant_config q;
    gptq_quant_config_default(&q);
    q.group_size = 32;
    q.sym = 0;
    q.desc_act = 1;
    cr_assert_eq(quantize(model, a, &q, ids, ns, S, ns * S, 1, NULL), GPTQ_OK, "%s",
                 gptq_last_error());
    cr_assert_eq(quantize(model, b, &q, ids, ns, S, 4096, 1, NULL), GPTQ_OK, "%s",
                 gptq_last_error());
    cr_assert(all_tensors_same(a, b), "fused and chunked passes wrote different tensors");
    free(ids);
    gptq_remove_tree(root);
}

Test(synthetic, fused_pass_equals_chunked_passes_llama, .timeout = 120) { fused_vs_chunked(0); }
Test(synthetic, fused_pass_equals_chunked_passes_opt, .timeout = 120) { fused_vs_chunked(1); }

/* The CPU backend's results do not depend on the thread count, so neither
 * does a checkpoint (README.md "The algorithm, as the reference fixes it"). */
Test(synthetic, same_checkpoint_for_any_thread_count, .timeout = 120)
{
    char root[256], model[300], out[3][300];
    cr_assert_eq(syn_model_dir(root, model, NULL, 1, NULL), GPTQ_OK, "%s", gptq_last_error());
    const int64_t ns = 16, S = 32;
    int32_t *ids = rand_ids(ns * S, 17u);
    gptq_quant_config q;
    gptq_quant_config_default(&q);
    q.group_size = 32;
    q.sym = 0;
    const int threads[3] = {1, 2, 3};
    const int saved = omp_get_max_threads();
    for (int k = 0; k < 3; k++) {
        snprintf(out[k], sizeof out[k], "%s/t%d", root, threads[k]);
        omp_set_num_threads(threads[k]);
        cr_assert_eq(quantize(model, out[k], &q, ids, ns, S, 0, 1, NULL), GPTQ_OK, "%s",
                     gptq_last_error());
    }
    omp_set_num_threads(saved);
    cr_assert(all_tensors_same(out[0], out[1]), "1 and 2 threads differ");
    cr_assert(all_tensors_same(out[0], out[2]), "1 and 3 threads differ");
    free(ids);
    gptq_remove_tree(root);
}

/* --forward-math tf32 asks for the backend's linear_fast; the CPU backend has
 * none, so the forward stays its f32 gemm and the checkpoint is the same. */
Test(synthetic, forward_math_tf32_without_linear_fast_is_f32, .timeout = 120)
{
    char root[256], model[300], out[2][300];
    cr_assert_eq(syn_model_dir(root, model, NULL, 0, NULL), GPTQ_OK, "%s", gptq_last_error());
    const int64_t ns = 16, S = 32;
    int32_t *ids = rand_ids(ns * S, 19u);
    gptq_backend *be = cpu();
    cr_assert_null(be->iface->linear_fast, "the CPU backend grew a linear_fast: revisit this test");
    for (int math = 0; math < 2; math++) {
        snprintf(out[math], sizeof out[math], "%s/math%d", root, math);
        gptq_pipeline_options o;
        gptq_pipeline_options_default(&o);
        o.q.group_size = 32;
        o.calib_ids = ids;
        o.nsamples = ns;
        o.seqlen = S;
        o.forward_math = math;
        gptq_pipeline_stats stats;
        cr_assert_eq(gptq_quantize_model(be, model, out[math], &o, &stats), GPTQ_OK, "%s",
                     gptq_last_error());
    }
    gptq_backend_close(be);
    cr_assert(all_tensors_same(out[0], out[1]), "forward_math 1 changed the CPU's checkpoint");
    free(ids);
    gptq_remove_tree(root);
}

Test(synthetic, true_sequential_changes_only_later_groups, .timeout = 120)
{
    char root[256], model[300], a[300], b[300];
    cr_assert_eq(syn_model_dir(root, model, NULL, 0, NULL), GPTQ_OK, "%s", gptq_last_error());
    snprintf(a, sizeof a, "%s/ts", root);
    snprintf(b, sizeof b, "%s/nots", root);
    const int64_t ns = 16, S = 32;
    int32_t *ids = rand_ids(ns * S, 5u);
    gptq_quant_config q;
    gptq_quant_config_default(&q);
    q.group_size = 32;
    cr_assert_eq(quantize(model, a, &q, ids, ns, S, 0, 1, NULL), GPTQ_OK, "%s",
                 gptq_last_error());
    cr_assert_eq(quantize(model, b, &q, ids, ns, S, 0, 0, NULL), GPTQ_OK, "%s",
                 gptq_last_error());
    /* layer 0's q/k/v see the same input either way (the first group) */
    cr_assert(same_tensor(a, b, "model.layers.0.self_attn.q_proj.qweight"));
    cr_assert(same_tensor(a, b, "model.layers.0.self_attn.v_proj.scales"));
    /* o_proj's input comes from the quantized q/k/v only with true-sequential */
    cr_assert(!same_tensor(a, b, "model.layers.0.self_attn.o_proj.qweight"));
    cr_assert(!same_tensor(a, b, "model.layers.0.mlp.down_proj.qweight"));
    char p[400];
    snprintf(p, sizeof p, "%s/config.json", b);
    cJSON *c;
    cr_assert_eq(gptq_json_read_file(p, &c), GPTQ_OK);
    cr_assert(cJSON_IsFalse(
        cJSON_GetObjectItem(cJSON_GetObjectItem(c, "quantization_config"), "true_sequential")));
    cJSON_Delete(c);
    free(ids);
    gptq_remove_tree(root);
}

/* ------------------------------------------------------------------ */
/* perplexity helpers                                                  */
/* ------------------------------------------------------------------ */

static double ppl_of_dir(const char *dir, const int32_t *ids, int64_t n, int64_t S, int64_t nwin)
{
    gptq_backend *be = cpu();
    gptq_model *m;
    cr_assert_eq(gptq_model_open(dir, be, &m), GPTQ_OK, "%s", gptq_last_error());
    gptq_ppl_options o = {.seqlen = S, .max_windows = nwin};
    gptq_ppl_result r;
    cr_assert_eq(gptq_perplexity(m, ids, n, &o, &r), GPTQ_OK, "%s", gptq_last_error());
    gptq_model_close(m);
    gptq_backend_close(be);
    return r.ppl;
}

/* The source model with every quantized linear replaced in memory by the
 * weight the pipeline reported: embed, layers, head, as gptq_perplexity
 * does for one batch of nwin windows. */
static double ppl_in_memory(const char *src, const seen *s, const int32_t *ids, int64_t S,
                            int64_t nwin)
{
    gptq_backend *be = cpu();
    gptq_model *m;
    cr_assert_eq(gptq_model_open(src, be, &m), GPTQ_OK);
    gptq_buf *X;
    cr_assert_eq(gptq_model_alloc_hidden(m, nwin, S, &X), GPTQ_OK);
    cr_assert_eq(gptq_model_embed(m, ids, nwin, S, X), GPTQ_OK);
    const int L_n = (int)gptq_model_config_of(m)->num_layers;
    for (int L = 0; L < L_n; L++) {
        cr_assert_eq(gptq_model_layer_load(m, L), GPTQ_OK);
        for (int i = 0; i < gptq_model_nlinear(m, L); i++)
            cr_assert_eq(gptq_model_linear_set(m, L, i, s->W[L * s->nlin + i]), GPTQ_OK);
        cr_assert_eq(gptq_model_layer_forward(m, L, X, X, nwin, S, NULL, NULL), GPTQ_OK);
    }
    gptq_model_layer_unload(m);
    double sum = 0.0;
    cr_assert_eq(gptq_model_head_nll(m, X, ids, nwin, S, &sum, NULL), GPTQ_OK);
    gptq_be_free(be, X);
    gptq_model_close(m);
    gptq_backend_close(be);
    return exp(sum / (double)(nwin * (S - 1)));
}

static char *read_prefix(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    char *buf = malloc(max + 1);
    size_t n = fread(buf, 1, max, f);
    fclose(f);
    if (n == max)
        while (n > 0 && buf[n - 1] != '\n') n--; /* no token across the cut */
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* ------------------------------------------------------------------ */
/* shared models                                                       */
/* ------------------------------------------------------------------ */

/* Measured (this setting, CPU backend, GPTQ in the paper's column order):
 * perplexity fp / GPTQ / RTN
 *   llama-27m  73.8005 / 76.9287 / 79.4779: GPTQ costs 4.24%, RTN 7.69%
 *   opt-18m    28.3813 / 28.7366 / 29.4213: GPTQ costs 1.25%, RTN 3.66%
 * so GPTQ recovers 45% (llama) and 66% (opt) of what RTN loses. Asserted:
 * GPTQ's cost at most max_cost (about 1.2x the measured cost, well under
 * RTN's), and at most 0.7 of RTN's (measured 0.55 and 0.34): a solve that
 * degrades towards RTN fails, not only one that falls behind it.
 * gar (issue 13): the bounds are the paper order's, which the test pins
 * (act_group_aware 0). GAR, the default since, lowers nearly every
 * module's calibration loss and output error here, yet on these 20
 * windows measured 78.4924 (llama) and 28.9018 (opt), as act-order does
 * (opt: 28.8227): 8192 calibration tokens are few for an order fitted to
 * them; bench/RESULTS.md "GAR" has larger runs. */
static void shared_case(const char *name, double max_cost)
{
    const char *sh = getenv("GPTQ_SHARED");
    char model[512], calib[512], evalt[512];
    snprintf(model, sizeof model, "%s/models/%s", sh ? sh : "", name);
    snprintf(calib, sizeof calib, "%s/text/calib.txt", sh ? sh : "");
    snprintf(evalt, sizeof evalt, "%s/text/eval.txt", sh ? sh : "");
    if (!sh || !exists(model) || !exists(calib) || !exists(evalt))
        cr_skip_test("GPTQ_SHARED unset or without models/%s and text/: skipped", name);

    const int64_t S = 256, ns = 32, nwin = 20;
    gptq_tokenizer *tok;
    cr_assert_eq(gptq_tok_load(model, &tok), GPTQ_OK, "%s", gptq_last_error());
    gptq_calib_options co = {.nsamples = ns, .seqlen = S, .seed = 0, .max_bytes = 1000000};
    gptq_calib cal;
    cr_assert_eq(gptq_calib_load(tok, calib, &co, &cal), GPTQ_OK, "%s", gptq_last_error());
    size_t tl;
    char *text = read_prefix(evalt, 64 * 1024, &tl);
    int32_t *ids;
    int64_t n;
    cr_assert_eq(gptq_tok_encode(tok, text, tl, GPTQ_TOK_NO_SPECIAL, &ids, &n), GPTQ_OK);
    free(text);
    cr_assert(n >= S * nwin, "%lld tokens for %lld windows", (long long)n, (long long)nwin);

    char root[256], gq[300], rq[300];
    make_tmpdir(root, sizeof root);
    snprintf(gq, sizeof gq, "%s/gptq", root);
    snprintf(rq, sizeof rq, "%s/rtn", root);
    gptq_model_config cfg;
    cr_assert_eq(gptq_model_config_load(model, &cfg), GPTQ_OK);
    seen s;
    seen_init(&s, (int)cfg.num_layers, cfg.arch->linears(&cfg, 0, NULL));
    gptq_quant_config q;
    gptq_quant_config_default(&q);
    q.sym = 0;
    q.act_group_aware = 0; /* the order the bounds above were measured in */
    cr_assert_eq(quantize(model, gq, &q, cal.ids, ns, S, ns * S, 1, &s), GPTQ_OK, "%s",
                 gptq_last_error());
    q.method = GPTQ_METHOD_RTN;
    cr_assert_eq(quantize(model, rq, &q, NULL, 0, 0, 0, 1, NULL), GPTQ_OK, "%s",
                 gptq_last_error());

    const double p_gptq = ppl_of_dir(gq, ids, n, S, nwin);
    const double p_rtn = ppl_of_dir(rq, ids, n, S, nwin);
    const double p_fp = ppl_of_dir(model, ids, n, S, nwin);
    const double p_mem = ppl_in_memory(model, &s, ids, S, nwin);
    fprintf(stderr, "%s (32 x 256 calibration, 20 x 256 eval): fp %.4f, GPTQ %.4f, RTN %.4f, "
            "in memory %.6f\n", name, p_fp, p_gptq, p_rtn, p_mem);
    cr_assert(p_gptq < p_rtn, "%s: GPTQ %.4f does not beat RTN %.4f", name, p_gptq, p_rtn);
    cr_assert(p_gptq < (1.0 + max_cost) * p_fp, "%s: GPTQ %.4f costs more than %.1f%% over fp %.4f",
              name, p_gptq, 100.0 * max_cost, p_fp);
    cr_assert(p_gptq - p_fp < 0.7 * (p_rtn - p_fp),
              "%s: GPTQ %.4f recovers too little of RTN's loss (fp %.4f, RTN %.4f)", name, p_gptq,
              p_fp, p_rtn);
    cr_assert(fabs(p_mem - p_gptq) <= 1e-9 * p_gptq,
              "%s: the checkpoint evaluates to %.9f, the in-memory model to %.9f", name, p_gptq,
              p_mem);
    seen_free(&s);
    free(ids);
    gptq_calib_free(&cal);
    gptq_tok_free(tok);
    gptq_remove_tree(root);
}

Test(shared, llama27m_gptq_beats_rtn_and_reopens, .timeout = 600) { shared_case("llama-27m", 0.05); }
Test(shared, opt18m_gptq_beats_rtn_and_reopens, .timeout = 600) { shared_case("opt-18m", 0.015); }

/* ------------------------------------------------------------------ */
/* the bundled tiny model                                              */
/* ------------------------------------------------------------------ */

Test(tiny, data_tiny_llama_quantizes_and_evaluates, .timeout = 300)
{
    char model[512], calib[512], evalt[512];
    snprintf(model, sizeof model, "%s/data/tiny-llama", src_root());
    snprintf(calib, sizeof calib, "%s/data/text/calib.txt", src_root());
    snprintf(evalt, sizeof evalt, "%s/data/text/eval.txt", src_root());
    char cfgp[600];
    snprintf(cfgp, sizeof cfgp, "%s/config.json", model);
    if (!exists(cfgp) || !exists(calib) || !exists(evalt))
        cr_skip_test("data/tiny-llama or data/text absent: skipped");
    const int64_t S = 128, ns = 16, nwin = 10;
    gptq_tokenizer *tok;
    cr_assert_eq(gptq_tok_load(model, &tok), GPTQ_OK, "%s", gptq_last_error());
    gptq_calib_options co = {.nsamples = ns, .seqlen = S, .seed = 0};
    gptq_calib cal;
    cr_assert_eq(gptq_calib_load(tok, calib, &co, &cal), GPTQ_OK, "%s", gptq_last_error());
    size_t tl;
    char *text = read_prefix(evalt, 32 * 1024, &tl);
    int32_t *ids;
    int64_t n;
    cr_assert_eq(gptq_tok_encode(tok, text, tl, GPTQ_TOK_NO_SPECIAL, &ids, &n), GPTQ_OK);
    free(text);
    char root[256], out[300];
    make_tmpdir(root, sizeof root);
    snprintf(out, sizeof out, "%s/q", root);
    gptq_quant_config q;
    gptq_quant_config_default(&q);
    cr_assert_eq(quantize(model, out, &q, cal.ids, ns, S, 0, 1, NULL), GPTQ_OK, "%s",
                 gptq_last_error());
    snprintf(out, sizeof out, "%s/r", root);
    q.method = GPTQ_METHOD_RTN;
    cr_assert_eq(quantize(model, out, &q, NULL, 0, 0, 0, 1, NULL), GPTQ_OK, "%s",
                 gptq_last_error());
    const double p_rtn = ppl_of_dir(out, ids, n, S, nwin);
    snprintf(out, sizeof out, "%s/q", root);
    const double p_fp = ppl_of_dir(model, ids, n, S, nwin);
    const double p_q = ppl_of_dir(out, ids, n, S, nwin);
    fprintf(stderr, "tiny-llama (16 x 128 calibration, 10 x 128 eval): fp %.4f, GPTQ w4 %.4f, "
            "RTN w4 %.4f\n", p_fp, p_q, p_rtn);
    cr_assert(isfinite(p_q) && p_q > 1.0);
    /* measured: fp 46.9453, GPTQ 46.9686 (+0.050%) in the paper's order and
     * 46.9352 (-0.02%) in GAR's (the default since issue 13), RTN 47.0732
     * (+0.27%); the bound +0.15% is 3x GPTQ's largest measured cost and
     * half RTN's */
    cr_assert(p_q < p_rtn, "4-bit GPTQ %.4f does not beat RTN %.4f", p_q, p_rtn);
    cr_assert(p_q < 1.0015 * p_fp, "4-bit GPTQ %.4f costs more than 0.15%% over fp %.4f", p_q,
              p_fp);
    free(ids);
    gptq_calib_free(&cal);
    gptq_tok_free(tok);
    gptq_remove_tree(root);
}
