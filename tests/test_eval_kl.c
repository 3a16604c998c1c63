/*
 * test_eval_kl.c — `gptq eval`'s richer output (issue 12) as a user runs it:
 * --json (one object with every figure and what made it), the model and
 * text named on the human line, --kl-divergence against a base model
 * (--kl-base FP_DIR, or logits saved with --save-logits and read back with
 * --logits FILE). Models: data/tiny-llama and a GPTQ checkpoint of it made
 * here; windows of 64 tokens of data/text/eval.txt.
 */
#include "cli_checks.h"

#include "eval/eval.h"

static char g_dir[512];

static void setup(void) { ch_mkdtemp(g_dir, "evalkl"); }
static void teardown(void) { ch_rm_tree(g_dir); }

TestSuite(eval_kl, .init = setup, .fini = teardown, .timeout = 240);

#define SEQ "64"
#define WIN "6" /* 6 windows x 63 predicted tokens = 378 */
#define NTOK (6 * 63)

/* `gptq eval dir --json [extra...]`: the one object on stdout */
static cJSON *eval_json(const char *dir, const char *a, const char *b, const char *c,
                        const char *d)
{
    char text[1024];
    cc_data(text, "text/eval.txt");
    cli_result r;
    const char *argv[] = {"eval", dir, "--text", text, "--seqlen", SEQ,
                          "--max-windows", WIN, "--json", a, b, c, d, NULL};
    ch_opts o = {.timeout = 120.0};
    ch_run_opts(&r, &o, argv);
    ch_expect(&r, 0, "");
    cJSON *items[2];
    const int n = cc_json_lines(r.out, items, 2);
    cr_assert_eq(n, 1, "stdout holds %d lines, want one JSON object:\n%s", n, r.out);
    cr_assert(cJSON_IsObject(items[0]));
    ch_result_free(&r);
    return items[0];
}

static const cJSON *kl_of(const cJSON *j)
{
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(j, "kl_divergence");
    cr_assert(cJSON_IsObject(k), "no \"kl_divergence\" object");
    return k;
}

/* A GPTQ checkpoint of tiny-llama, 3 bits (so that it differs visibly), in
 * g_dir/q. */
static void make_ckpt(char *out)
{
    char model[1024], calib[1024];
    cc_data(model, "tiny-llama");
    cc_data(calib, "text/calib.txt");
    ch_join(out, g_dir, "q");
    cli_result r;
    cc_ok(&r, "quantize", model, "-o", out, "--calib", calib, "--nsamples", "16", "--seqlen",
          "64", "--bits", "3", "--quiet");
    ch_result_free(&r);
}

/* --json: every figure, the model, the text and the options, nothing else
 * on stdout; the figures are those of the human line. */
Test(eval_kl, json_has_every_figure)
{
    char model[1024], text[1024];
    cc_data(model, "tiny-llama");
    cc_data(text, "text/eval.txt");
    cJSON *j = eval_json(model, NULL, NULL, NULL, NULL);
    cr_assert_str_eq(cc_str(j, "model"), model);
    cr_assert_str_eq(cc_str(j, "text"), text);
    cr_assert_str_eq(cc_str(j, "backend"), "cpu");
    cr_assert_str_eq(cc_str(j, "forward_math"), "f32");
    cr_assert_eq(cc_num(j, "seqlen"), 64);
    cr_assert_eq(cc_num(j, "max_windows"), 6);
    cr_assert_eq(cc_num(j, "tokens"), 59019); /* data/README.md */
    cr_assert_eq(cc_num(j, "text_bytes"), 159677);
    cr_assert_eq(cc_num(j, "windows"), 6);
    cr_assert_eq(cc_num(j, "predicted"), NTOK);
    cr_assert(cc_num(j, "seconds") >= 0.0);
    const double ppl = cc_num(j, "ppl");
    /* ppl = exp(nll_sum / predicted), both printed to full precision */
    cr_assert(fabs(log(ppl) - cc_num(j, "nll_sum") / NTOK) < 1e-12, "ppl %.17g nll_sum %.17g",
              ppl, cc_num(j, "nll_sum"));
    cr_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "kl_divergence")));
    cr_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "saved_logits")));
    /* the human line: the same figure, naming the model and the text */
    cli_result r;
    cc_ok(&r, "eval", model, "--text", text, "--seqlen", SEQ, "--max-windows", WIN);
    const cc_ppl p = cc_parse_ppl(r.out);
    cr_assert(fabs(p.ppl - ppl) <= 5e-7 * ppl, "line %s, json %.17g", p.text, ppl);
    char want[2200];
    snprintf(want, sizeof want, "model %s  text %s\n", model, text);
    cr_assert(strstr(r.out, want), "the line does not name the model and text:\n%s", r.out);
    ch_result_free(&r);
    cJSON_Delete(j);
}

/* A model against itself: every token's KL is exactly 0 (the same logits
 * on both sides, the same operations), the top token always agrees, and
 * the ppl ratio is exactly 1. */
Test(eval_kl, model_against_itself_is_zero)
{
    char model[1024];
    cc_data(model, "tiny-llama");
    cJSON *j = eval_json(model, "--kl-divergence", "--kl-base", model, NULL);
    const cJSON *k = kl_of(j);
    cr_assert_str_eq(cc_str(k, "base_model"), model);
    cr_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(k, "base_logits")));
    cr_assert_eq(cc_num(k, "tokens"), NTOK);
    cr_assert_eq(cc_num(k, "mean"), 0.0);
    cr_assert_eq(cc_num(k, "max"), 0.0);
    cr_assert_eq(cc_num(k, "p99"), 0.0);
    cr_assert_eq(cc_num(k, "same_top"), 1.0);
    cr_assert_eq(cc_num(k, "ppl_ratio"), 1.0);
    cr_assert_eq(cc_num(k, "ppl_base"), cc_num(k, "ppl"));
    cJSON_Delete(j);
}

/* A GPTQ checkpoint against its fp model: KL > 0, ordered statistics, some
 * top tokens differ, and the ppl figures agree with the two plain evals:
 * the KL run's log-softmax of the logits and the forward's own NLL sum
 * the same f32 logits in double in different orders (1e-12 relative
 * measured; 1e-9 allowed). The saved-logits route gives the very same
 * figures as the --kl-base route (the same bytes in). */
Test(eval_kl, gptq_against_fp_and_saved_logits)
{
    char model[1024], q[1024], saved[1024];
    cc_data(model, "tiny-llama");
    make_ckpt(q);
    ch_join(saved, g_dir, "fp.logits");
    cJSON *fp = eval_json(model, "--save-logits", saved, NULL, NULL);
    cr_assert_str_eq(cc_str(fp, "saved_logits"), saved);
    cJSON *qp = eval_json(q, NULL, NULL, NULL, NULL);
    cJSON *kb = eval_json(q, "--kl-divergence", "--kl-base", model, NULL);
    cJSON *kf = eval_json(q, "--kl-divergence", "--logits", saved, NULL);
    const cJSON *k = kl_of(kb);
    const double mean = cc_num(k, "mean"), med = cc_num(k, "median"), p99 = cc_num(k, "p99"),
                 mx = cc_num(k, "max"), top = cc_num(k, "same_top");
    cr_log_info("gptq w3 vs fp, %d tokens: KL mean %.6f median %.6f p99 %.6f max %.6f, same "
                "top %.4f, ppl ratio %.6f", NTOK, mean, med, p99, mx, top,
                cc_num(k, "ppl_ratio"));
    cr_assert(mean > 0.0 && med > 0.0 && med <= p99 && p99 <= mx && mean <= mx,
              "mean %g median %g p99 %g max %g", mean, med, p99, mx);
    cr_assert(top > 0.5 && top < 1.0, "same top %g", top);
    const double ppl_fp = cc_num(fp, "ppl"), ppl_q = cc_num(qp, "ppl");
    cr_assert(fabs(cc_num(k, "ppl_base") / ppl_fp - 1.0) < 1e-9, "ppl_base %.17g, fp eval %.17g",
              cc_num(k, "ppl_base"), ppl_fp);
    cr_assert(fabs(cc_num(k, "ppl") / ppl_q - 1.0) < 1e-9);
    cr_assert(fabs(cc_num(k, "ppl_ratio") / (ppl_q / ppl_fp) - 1.0) < 1e-9,
              "ratio %.17g, the two evals give %.17g", cc_num(k, "ppl_ratio"), ppl_q / ppl_fp);
    cr_assert(fabs(exp(cc_num(k, "ln_ppl_ratio")) - cc_num(k, "ppl_ratio")) < 1e-12);
    /* the kl run's own ppl is the plain eval's */
    cr_assert_eq(cc_num(kb, "ppl"), ppl_q);
    /* from the saved file: the same numbers */
    const cJSON *k2 = kl_of(kf);
    cr_assert_str_eq(cc_str(k2, "base_logits"), saved);
    static const char *const keys[] = {"tokens", "mean", "median", "p99", "max", "same_top",
                                       "ppl_base", "ppl", "ppl_ratio", "ln_ppl_ratio"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cr_assert_eq(cc_num(k, keys[i]), cc_num(k2, keys[i]), "%s: %.17g from the model, %.17g "
                     "from the saved logits", keys[i], cc_num(k, keys[i]), cc_num(k2, keys[i]));
    cJSON_Delete(fp);
    cJSON_Delete(qp);
    cJSON_Delete(kb);
    cJSON_Delete(kf);
}

/* The saved file: a safetensors file whose metadata names the model, text
 * and windows, ids (W, S) and logits (W, S-1, V); the logits of window 0
 * predict its tokens 1..S-1 (the NLL they give is the eval's first
 * window's share). The human KL line names the base. */
Test(eval_kl, saved_file_layout_and_human_line)
{
    char model[1024], text[1024], saved[1024];
    cc_data(model, "tiny-llama");
    cc_data(text, "text/eval.txt");
    ch_join(saved, g_dir, "fp.logits");
    cli_result r;
    cc_ok(&r, "eval", model, "--text", text, "--seqlen", SEQ, "--max-windows", WIN,
          "--save-logits", saved);
    cr_assert(strstr(r.err, "saved the logits of 6 windows"), "%s", r.err);
    ch_result_free(&r);
    gptq_st_file *f;
    cr_assert_eq(gptq_st_open(saved, &f), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_str_eq(gptq_st_metadata(f, "magic"), "gptq-c-logits");
    cr_assert_str_eq(gptq_st_metadata(f, "model"), model);
    cr_assert_str_eq(gptq_st_metadata(f, "text"), text);
    cr_assert_str_eq(gptq_st_metadata(f, "seqlen"), "64");
    cr_assert_str_eq(gptq_st_metadata(f, "windows"), "6");
    cr_assert_str_eq(gptq_st_metadata(f, "vocab"), "1536");
    gptq_st_info ids, lg;
    cr_assert_eq(gptq_st_find(f, "ids", &ids), GPTQ_OK);
    cr_assert_eq(gptq_st_find(f, "logits", &lg), GPTQ_OK);
    cr_assert(ids.dtype == GPTQ_I32 && ids.shape[0] == 6 && ids.shape[1] == 64);
    cr_assert(lg.dtype == GPTQ_F32 && lg.shape[0] == 6 && lg.shape[1] == 63 && lg.shape[2] == 1536);
    /* mean NLL of all windows from the stored logits = ln(ppl) of the eval */
    const int32_t *id = ids.data;
    const float *L = lg.data;
    double nll = 0.0;
    for (int w = 0; w < 6; w++)
        for (int t = 0; t < 63; t++) {
            const float *x = L + ((size_t)w * 63 + t) * 1536;
            double m = x[0], s = 0.0;
            for (int v = 1; v < 1536; v++) m = fmax(m, x[v]);
            for (int v = 0; v < 1536; v++) s += exp(x[v] - m);
            nll += m + log(s) - x[id[w * 64 + t + 1]];
        }
    gptq_st_close(f);
    cc_ok(&r, "eval", model, "--text", text, "--seqlen", SEQ, "--max-windows", WIN,
          "--kl-divergence", "--logits", saved);
    const cc_ppl p = cc_parse_ppl(r.out);
    cr_assert(fabs(exp(nll / NTOK) / p.ppl - 1.0) < 1e-6, "stored logits give %.6f, eval %s",
              exp(nll / NTOK), p.text);
    char want[2200];
    snprintf(want, sizeof want, "kl-divergence from the logits in %s: mean 0.000000", saved);
    cr_assert(strstr(r.out, want), "no KL line naming %s:\n%s", saved, r.out);
    ch_result_free(&r);
}

/* The statistics on rows whose KL is known in closed form: base logits
 * (0, 0), p = (1/2, 1/2); compared logits (ln k, 0), q = (k, 1) / (k + 1),
 * KL = 1/2 ln(1/(2 q0)) + 1/2 ln(1/(2 q1)); one more row (0, 1) whose top
 * token differs. Percentiles interpolate the sorted values at f (n - 1);
 * the target is id 0 everywhere. Tolerance: the library sums in double
 * from f32 logits (ln k rounded to f32: 3e-8 relative). */
Test(eval_kl, statistics_of_known_rows)
{
    enum { N = 6 };
    const double k[N - 1] = {1, 2, 3, 4, 5};
    float base[N * 2] = {0}, q[N * 2];
    int32_t target[N] = {0};
    double want[N], nll_q = 0.0;
    for (int i = 0; i < N; i++) {
        q[2 * i] = i < N - 1 ? (float)log(k[i]) : 0.0f;
        q[2 * i + 1] = i < N - 1 ? 0.0f : 1.0f;
        const double e0 = exp((double)q[2 * i]), e1 = exp((double)q[2 * i + 1]);
        const double q0 = e0 / (e0 + e1), q1 = e1 / (e0 + e1);
        want[i] = 0.5 * log(0.5 / q0) + 0.5 * log(0.5 / q1);
        nll_q -= log(q0);
    }
    gptq_kl_acc a;
    cr_assert_eq(gptq_kl_init(&a, N), GPTQ_OK);
    cr_assert_eq(gptq_kl_add(&a, base, q, 4, 2, target), GPTQ_OK);
    cr_assert_eq(gptq_kl_add(&a, base + 8, q + 8, 2, 2, target + 4), GPTQ_OK);
    /* one token more than announced is refused */
    cr_assert_eq(gptq_kl_add(&a, base, q, 1, 2, target), GPTQ_ERR_INVALID);
    gptq_kl_stats s;
    cr_assert_eq(gptq_kl_finish(&a, &s), GPTQ_OK);
    double sorted[N], mean = 0.0;
    memcpy(sorted, want, sizeof sorted);
    for (int i = 0; i < N; i++) {
        mean += want[i] / N;
        for (int j = i; j > 0 && sorted[j] < sorted[j - 1]; j--) {
            const double t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    }
    const double p99 = 0.05 * sorted[4] + 0.95 * sorted[5]; /* at 0.99 * 5 = 4.95 */
    const double med = 0.5 * (sorted[2] + sorted[3]);
    cr_assert_eq(s.tokens, N);
    cr_assert(fabs(s.mean - mean) < 1e-7 * mean, "mean %.9g want %.9g", s.mean, mean);
    cr_assert(fabs(s.median - med) < 1e-7 * med, "median %.9g want %.9g", s.median, med);
    cr_assert(fabs(s.p99 - p99) < 1e-7 * p99, "p99 %.9g want %.9g", s.p99, p99);
    cr_assert(fabs(s.max - sorted[5]) < 1e-7 * sorted[5]);
    cr_assert(fabs(s.same_top - 5.0 / 6.0) < 1e-15, "same top %g", s.same_top);
    cr_assert(fabs(s.ppl_base - 2.0) < 1e-12, "ppl_base %.17g", s.ppl_base);
    cr_assert(fabs(s.ppl - exp(nll_q / N)) < 1e-7 * s.ppl);
    cr_assert(fabs(s.ratio - s.ppl / s.ppl_base) < 1e-12);
    gptq_kl_free(&a);
    /* a NaN logit names its side */
    float bad[2] = {0.0f, NAN};
    cr_assert_eq(gptq_kl_init(&a, 1), GPTQ_OK);
    cr_assert_eq(gptq_kl_add(&a, base, bad, 1, 2, target), GPTQ_ERR_NUMERIC);
    cr_assert(strstr(gptq_last_error(), "compared"), "%s", gptq_last_error());
    gptq_kl_free(&a);
}
