/*
 * cmd_eval.c — `gptq eval MODEL_DIR --text FILE`: perplexity of a Hugging
 * Face model folder (fp or GPTQ checkpoint) on a text, with the protocol of
 * src/eval/eval.h (whole text encoded without special tokens,
 * non-overlapping windows, remainder dropped), through the public
 * gptq_evaluate; with --kl-divergence the KL divergence of its next-token
 * distributions from a base model's (run beside it, --kl-base, or saved
 * earlier with --save-logits and read back with --logits), which needs each
 * batch's logits: that path runs the internal gptq_perplexity with a logits
 * hook (src/eval/kl.c, logits.c). --json prints every figure as one JSON
 * object.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "eval/eval.h"
#include "io/io.h"
#include "model/model.h"
#include "text/tokenizer.h"

#define CMD "eval"

/* What one run measured, from either path. */
typedef struct figures {
    double ppl, nll_sum, seconds;
    int64_t tokens, windows, predicted, seqlen;
} figures;

static void help(FILE *f)
{
    fprintf(f,
            "usage: gptq eval MODEL_DIR --text FILE [options]\n\n"
            "Perplexity of MODEL_DIR (config.json, safetensors weights, tokenizer.json;\n"
            "floating point or a GPTQ checkpoint, dequantized to f32) on FILE: the whole\n"
            "text is encoded with no special tokens added, cut into non-overlapping\n"
            "windows of --seqlen tokens (the remainder is dropped), and ppl = exp(mean\n"
            "next-token NLL over the seqlen-1 predicted tokens of every window), as\n"
            "the GPTQ papers measure it.\n\n"
            "options:\n"
            "  --text FILE          UTF-8 text (required)\n"
            "  --seqlen N           tokens per window (default 2048, or the model's\n"
            "                       max_position_embeddings when smaller)\n"
            "  --max-windows N      score only the first N windows (default: all)\n"
            "  --batch N            windows per forward pass (default: %d tokens' worth)\n"
            "  --backend NAME       cpu (default), or a plugin name/path\n"
            "  --forward-math f32|tf32  the Linears' arithmetic: f32 (default) or TF32 on a\n"
            "                       GPU's matrix units (the CPU backend ignores it)\n"
            "  --progress           print the running perplexity after each batch (stderr)\n"
            "  --json               print one JSON object with every figure, the model, the\n"
            "                       text and the options instead of the lines below\n"
            "KL divergence against a base (floating-point) model, on the same windows:\n"
            "  --kl-divergence      also report, over every predicted token, the mean,\n"
            "                       median, 99th percentile and max of KL(base || MODEL_DIR),\n"
            "                       the share of tokens whose top token is the same, the\n"
            "                       base's ppl and ppl(MODEL_DIR) / ppl(base); the base is\n"
            "  --kl-base FP_DIR     a model folder run beside MODEL_DIR (same tokenizer), or\n"
            "  --logits FILE        logits saved from it earlier with --save-logits\n"
            "  --save-logits FILE   save MODEL_DIR's logits on these windows to FILE (written\n"
            "                       beside it and renamed into place; f32, windows x\n"
            "                       (seqlen-1) x vocabulary: 4 bytes each), for later\n"
            "                       --kl-divergence --logits FILE runs\n"
            "  -h, --help           this text\n"
            CLI_COMMON_HELP "\n"
            "output (stdout): a line with ppl, tokens (of the whole text), windows,\n"
            "predicted tokens, seqlen, seconds (of the forward passes), the model and the\n"
            "text; with --kl-divergence a second line with the KL figures\n",
            GPTQ_PPL_BATCH_TOKENS);
}

/* What the logits of each batch feed (ppl options' user): the saved file,
 * or the KL divergence against the base model or saved logits. */
typedef struct eval_logits {
    const int32_t *ids;          /* (windows, S) */
    gptq_logits_writer *save;    /* --save-logits */
    gptq_model *base;            /* --kl-base */
    gptq_logits_file *saved;     /* --logits */
    gptq_kl_acc kl;
    float *base_lg;              /* (base_rows, V): the base's logits of a batch */
    int64_t base_rows;
} eval_logits;

static int on_logits(void *user, int64_t w0, int64_t nb, int64_t S, int64_t V, const float *lg)
{
    eval_logits *e = user;
    if (e->save) return gptq_logits_append(e->save, nb, lg);
    if (e->base) {
        if (nb * S > e->base_rows) { /* the first batch is the largest */
            free(e->base_lg);
            e->base_lg = gptq_malloc((size_t)(nb * S * V) * sizeof(float), "base logits");
            if (!e->base_lg) return GPTQ_ERR_NOMEM;
            e->base_rows = nb * S;
        }
        double nll = 0.0;
        int st = gptq_model_forward(e->base, e->ids + w0 * S, nb, S, &nll, NULL, e->base_lg);
        if (st) return gptq_error_prefix(st, "the --kl-base model");
    }
    for (int64_t b = 0; b < nb; b++) {
        const float *base = e->base ? e->base_lg + b * S * V : gptq_logits_window(e->saved, w0 + b);
        int st = gptq_kl_add(&e->kl, base, lg + b * S * V, S - 1, V, e->ids + (w0 + b) * S + 1);
        if (st) return st;
    }
    return GPTQ_OK;
}

static int progress(void *user, const gptq_progress *p)
{
    (void)user;
    fprintf(stderr, "gptq eval: %lld/%lld windows, running ppl %.4f\n", (long long)p->done,
            (long long)p->total, p->metric);
    return 0;
}

/* The same line from the internal perplexity loop (the logits path). */
static int progress_ppl(void *user, int64_t done, int64_t total, double nll_sum,
                        int64_t predicted)
{
    (void)user;
    fprintf(stderr, "gptq eval: %lld/%lld windows, running ppl %.4f\n", (long long)done,
            (long long)total, predicted > 0 ? exp(nll_sum / (double)predicted) : 0.0);
    return 0;
}

/* --json: one object on stdout with every figure and what made them.
 * Returns 0, or 1 when it cannot be built. */
static int print_json(const char *dir, const char *text, int64_t text_bytes, const char *backend,
                      int math, long maxw, const figures *r, long seqlen,
                      const char *saved_to, const gptq_kl_stats *k, const char *kl_base,
                      const char *logits_in)
{
    cJSON *o = cJSON_CreateObject(), *kl = NULL;
    cJSON_AddStringToObject(o, "model", dir);
    cJSON_AddStringToObject(o, "text", text);
    cJSON_AddNumberToObject(o, "text_bytes", (double)text_bytes);
    cJSON_AddStringToObject(o, "backend", backend);
    cJSON_AddStringToObject(o, "forward_math", math == GPTQ_MATH_TF32 ? "tf32" : "f32");
    cJSON_AddNumberToObject(o, "seqlen", (double)seqlen);
    if (maxw > 0) cJSON_AddNumberToObject(o, "max_windows", (double)maxw);
    else cJSON_AddNullToObject(o, "max_windows");
    cJSON_AddNumberToObject(o, "ppl", r->ppl);
    cJSON_AddNumberToObject(o, "nll_sum", r->nll_sum);
    cJSON_AddNumberToObject(o, "tokens", (double)r->tokens);
    cJSON_AddNumberToObject(o, "windows", (double)r->windows);
    cJSON_AddNumberToObject(o, "predicted", (double)r->predicted);
    cJSON_AddNumberToObject(o, "seconds", r->seconds);
    if (saved_to) cJSON_AddStringToObject(o, "saved_logits", saved_to);
    else cJSON_AddNullToObject(o, "saved_logits");
    if (k) {
        kl = cJSON_AddObjectToObject(o, "kl_divergence");
        if (kl_base) cJSON_AddStringToObject(kl, "base_model", kl_base);
        else cJSON_AddNullToObject(kl, "base_model");
        if (logits_in) cJSON_AddStringToObject(kl, "base_logits", logits_in);
        else cJSON_AddNullToObject(kl, "base_logits");
        cJSON_AddNumberToObject(kl, "tokens", (double)k->tokens);
        cJSON_AddNumberToObject(kl, "mean", k->mean);
        cJSON_AddNumberToObject(kl, "median", k->median);
        cJSON_AddNumberToObject(kl, "p99", k->p99);
        cJSON_AddNumberToObject(kl, "max", k->max);
        cJSON_AddNumberToObject(kl, "same_top", k->same_top);
        cJSON_AddNumberToObject(kl, "ppl_base", k->ppl_base);
        cJSON_AddNumberToObject(kl, "ppl", k->ppl);
        cJSON_AddNumberToObject(kl, "ppl_ratio", k->ratio);
        cJSON_AddNumberToObject(kl, "ln_ppl_ratio", k->ln_ratio);
    } else {
        cJSON_AddNullToObject(o, "kl_divergence");
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) {
        cli_err(CMD, "out of memory printing the JSON result");
        return 1;
    }
    printf("%s\n", s);
    cJSON_free(s);
    return 0;
}

/* The logits path: tokenize, open the base (--kl-base: same vocabulary and
 * ids; --logits: a file made for these windows) or the file to save, run
 * the perplexity with each batch's logits fed to on_logits. f gets the
 * figures, ks (with kl) the KL statistics. Returns 0 or a status (with its
 * message printed when it was not the library's). */
static int eval_logits_path(gptq_model *m, gptq_backend *be, const char *dir, const char *text,
                            const char *buf, size_t len, long seqlen, long maxw, long batch,
                            int math, int prog, int kl, const char *kl_base,
                            const char *logits_in, const char *logits_out, figures *f,
                            gptq_kl_stats *ks)
{
    gptq_tokenizer *tok = NULL, *btok = NULL;
    int32_t *ids = NULL, *bids = NULL;
    int64_t n = 0, bn = 0;
    eval_logits el = {0};
    int st;
    gptq_model_set_forward_math(m, (gptq_math)math);
    if ((st = gptq_tok_load(dir, &tok)) ||
        (st = gptq_tok_encode(tok, buf, len, GPTQ_TOK_NO_SPECIAL, &ids, &n))) {
        gptq_error_prefix(st, "encoding %s", text);
        goto done;
    }
    if (seqlen == 0) {
        const int64_t maxpos = gptq_model_config_of(m)->max_positions;
        seqlen = maxpos > 0 && maxpos < 2048 ? (long)maxpos : 2048;
    }
    const int64_t V = gptq_model_config_of(m)->vocab_size;
    /* the windows gptq_perplexity will score (none: it says why) */
    int64_t nwin = n / seqlen;
    if (maxw > 0 && maxw < nwin) nwin = maxw;
    el.ids = ids;
    if (kl_base && nwin > 0) { /* the base model, same vocabulary and the same ids */
        if ((st = gptq_model_open(kl_base, be, &el.base))) {
            gptq_error_prefix(st, "--kl-base");
            goto done;
        }
        gptq_model_set_forward_math(el.base, (gptq_math)math);
        const int64_t bV = gptq_model_config_of(el.base)->vocab_size;
        if (bV != V) {
            st = gptq_error(GPTQ_ERR_INVALID, "--kl-base %s has a vocabulary of %lld, %s of "
                            "%lld: not comparable", kl_base, (long long)bV, dir, (long long)V);
            goto done;
        }
        if ((st = gptq_tok_load(kl_base, &btok)) ||
            (st = gptq_tok_encode(btok, buf, len, GPTQ_TOK_NO_SPECIAL, &bids, &bn))) {
            gptq_error_prefix(st, "--kl-base %s", kl_base);
            goto done;
        }
        for (int64_t i = 0; i < nwin * seqlen; i++)
            if (i >= bn || bids[i] != ids[i]) {
                st = gptq_error(GPTQ_ERR_INVALID, "--kl-base %s's tokenizer encodes %s "
                                "differently from %s's (token %lld): the two models' next-token "
                                "distributions are not comparable", kl_base, text, dir,
                                (long long)i);
                goto done;
            }
    }
    if (logits_in && nwin > 0 &&
        (st = gptq_logits_open(logits_in, seqlen, nwin, V, ids, &el.saved)))
        goto done;
    if (kl && nwin > 0 && (st = gptq_kl_init(&el.kl, nwin * (seqlen - 1)))) goto done;
    if (logits_out && nwin > 0) {
        const gptq_logits_facts fa = {.model = dir, .text = text, .text_bytes = (int64_t)len,
                                      .tokens = n, .seqlen = seqlen, .windows = nwin,
                                      .vocab = V};
        if ((st = gptq_logits_create(logits_out, &fa, ids, &el.save))) goto done;
    }
    gptq_ppl_options o = {.seqlen = seqlen, .max_windows = maxw, .batch = batch,
                          .on_logits = on_logits, .logits_user = &el};
    if (prog) o.progress = progress_ppl;
    gptq_ppl_result r;
    if ((st = gptq_perplexity(m, ids, n, &o, &r))) goto done;
    if (el.save) {
        st = gptq_logits_commit(el.save);
        el.save = NULL;
        if (st) goto done;
    }
    if (kl && (st = gptq_kl_finish(&el.kl, ks))) goto done;
    *f = (figures){.ppl = r.ppl, .nll_sum = r.nll_sum, .seconds = r.seconds, .tokens = r.tokens,
                   .windows = r.windows, .predicted = r.predicted, .seqlen = seqlen};
done:
    gptq_logits_abort(el.save);
    gptq_logits_close(el.saved);
    gptq_model_close(el.base);
    gptq_kl_free(&el.kl);
    free(el.base_lg);
    free(ids);
    free(bids);
    gptq_tok_free(tok);
    gptq_tok_free(btok);
    return st;
}

int cmd_eval(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"text", required_argument, 0, 't'},
        {"seqlen", required_argument, 0, 's'},
        {"max-windows", required_argument, 0, 'w'},
        {"batch", required_argument, 0, 'n'},
        {"backend", required_argument, 0, 'b'},
        {"forward-math", required_argument, 0, 'f'},
        {"progress", no_argument, 0, 'p'},
        {"json", no_argument, 0, 'j'},
        {"kl-divergence", no_argument, 0, 'k'},
        {"kl-base", required_argument, 0, 'B'},
        {"logits", required_argument, 0, 'L'},
        {"save-logits", required_argument, 0, 'S'},
        {"help", no_argument, 0, 'h'},
        CLI_COMMON_LONGOPTS,
        {0, 0, 0, 0},
    };
    const char *text = NULL, *backend = "cpu";
    const char *kl_base = NULL, *logits_in = NULL, *logits_out = NULL;
    long seqlen = 0, maxw = 0, batch = 0; /* seqlen 0: min(2048, the model's positions) */
    int prog = 0, math = GPTQ_MATH_F32, json = 0, kl = 0;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", longopts, NULL)) != -1;) {
        const int r = cli_common_option(CMD, c, optarg);
        if (r < 0) return 2;
        if (r > 0) continue;
        switch (c) {
        case 't': text = optarg; break;
        case 's':
            if (cli_int_opt(CMD, "--seqlen", optarg, 2, 1L << 20, &seqlen)) return 2;
            break;
        case 'w':
            if (cli_int_opt(CMD, "--max-windows", optarg, 1, 1L << 40, &maxw)) return 2;
            break;
        case 'n':
            if (cli_int_opt(CMD, "--batch", optarg, 1, 1L << 20, &batch)) return 2;
            break;
        case 'b': backend = optarg; break;
        case 'f':
            if (strcmp(optarg, "f32") && strcmp(optarg, "tf32")) {
                cli_err(CMD, "--forward-math %s: f32 or tf32", optarg);
                return 2;
            }
            math = !strcmp(optarg, "tf32") ? GPTQ_MATH_TF32 : GPTQ_MATH_F32;
            break;
        case 'p': prog = 1; break;
        case 'j': json = 1; break;
        case 'k': kl = 1; break;
        case 'B': kl_base = optarg; break;
        case 'L': logits_in = optarg; break;
        case 'S': logits_out = optarg; break;
        case 'h': help(stdout); return 0;
        default: help(stderr); return 2;
        }
    }
    if (optind != argc - 1 || !text) {
        cli_err(CMD, optind >= argc ? "no model folder" : !text ? "no --text FILE"
                                                                : "more than one model folder");
        help(stderr);
        return 2;
    }
    const char *usage = NULL; /* the base of a KL divergence: one of two, and only with it */
    if (kl && !kl_base && !logits_in)
        usage = "--kl-divergence needs its base: --kl-base FP_DIR or --logits FILE";
    else if (kl_base && logits_in)
        usage = "--kl-base and --logits both give the base: give one";
    else if (!kl && kl_base)
        usage = "--kl-base FP_DIR needs --kl-divergence";
    else if (!kl && logits_in)
        usage = "--logits FILE needs --kl-divergence (FILE holds the base's logits)";
    else if (kl && logits_out)
        usage = "--save-logits saves MODEL_DIR's own logits: run it without --kl-divergence "
                "(on the base model)";
    if (usage) {
        cli_err(CMD, "%s", usage);
        return 2;
    }
    const char *dir = argv[optind];
    /* before any work: never replace an input, a device, a FIFO, ... */
    if (logits_out &&
        gptq_out_check_file(logits_out, (const char *const[]){text, dir, kl_base}, kl_base ? 3 : 2))
        return cli_fail(CMD, 1);

    int rc = 1, st;
    gptq_backend *be = NULL;
    gptq_model *m = NULL;
    char *buf = NULL;
    figures f = {0};
    gptq_kl_stats ks = {0};

    /* the text, whole (a FIFO or device is refused, never waited on) */
    size_t len = 0;
    if ((st = gptq_read_input(text, SIZE_MAX, &buf, &len, NULL))) return cli_fail(CMD, st);

    if ((st = gptq_backend_open(backend, &be))) {
        rc = cli_fail(CMD, st);
        goto done;
    }
    if ((st = gptq_model_open(dir, be, &m))) {
        rc = cli_fail(CMD, st);
        goto done;
    }
    if (kl || logits_out) {
        if ((st = eval_logits_path(m, be, dir, text, buf, len, seqlen, maxw, batch, math, prog,
                                   kl, kl_base, logits_in, logits_out, &f, &ks))) {
            rc = cli_fail(CMD, st);
            goto done;
        }
    } else {
        gptq_eval_options o;
        gptq_eval_options_init(&o);
        o.seqlen = seqlen;
        o.max_windows = maxw;
        o.batch = batch;
        o.forward_math = math;
        if (prog) o.on_progress = progress;
        gptq_eval_result r;
        gptq_eval_result_init(&r);
        if ((st = gptq_evaluate(m, buf, len, &o, &r))) {
            if (st != GPTQ_ERR_CANCELLED && strncmp(gptq_last_error(), "encoding", 8) == 0)
                cli_err(CMD, "encoding %s:", text); /* the library's message says the rest */
            rc = cli_fail(CMD, st);
            goto done;
        }
        f = (figures){.ppl = r.ppl, .nll_sum = r.nll_sum, .seconds = r.seconds,
                      .tokens = r.tokens, .windows = r.windows, .predicted = r.predicted,
                      .seqlen = r.seqlen};
    }
    if (json) {
        rc = print_json(dir, text, (int64_t)len, backend, math, maxw, &f, (long)f.seqlen,
                        logits_out, kl ? &ks : NULL, kl_base, logits_in);
        goto done;
    }
    printf("ppl %.6f  tokens %lld  windows %lld  predicted %lld  seqlen %lld  seconds %.1f  "
           "model %s  text %s\n",
           f.ppl, (long long)f.tokens, (long long)f.windows, (long long)f.predicted,
           (long long)f.seqlen, f.seconds, dir, text);
    if (kl)
        printf("kl-divergence from %s %s: mean %.6f  median %.6f  p99 %.6f  max %.6f  "
               "same-top %.3f%%  ppl-base %.6f  ppl-ratio %.6f  tokens %lld\n",
               kl_base ? "the model" : "the logits in", kl_base ? kl_base : logits_in, ks.mean,
               ks.median, ks.p99, ks.max, 100.0 * ks.same_top, ks.ppl_base, ks.ratio,
               (long long)ks.tokens);
    if (logits_out)
        cli_note(CMD, "saved the logits of %lld windows of %lld tokens to %s",
                 (long long)f.windows, (long long)f.seqlen, logits_out);
    rc = 0;
done:
    free(buf);
    gptq_model_close(m);
    gptq_backend_close(be);
    return rc;
}
