/*
 * job.c — the whole job in the public API (gptq.h, "The whole job"): quantize
 * a model folder with calibration read from a file, evaluate a model, set the
 * thread count. The `gptq` command calls these same functions; they add the
 * versioned structs and cancellation on top of the pipeline (quant/pipeline.h)
 * and the perplexity (eval/eval.h).
 *
 * Versioned structs: a caller's struct is copied into a full local one that
 * holds the defaults (only its first struct_size bytes come from the
 * caller), and results are copied back the same way, so a program built
 * against an older, shorter struct keeps working (gptq.h, "ABI rules").
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../eval/eval.h"
#include "../io/checkpoint.h"
#include "../io/io.h"
#include "../model/model.h"
#include "../quant/pipeline.h"
#include "../text/calib.h"
#include "../text/tokenizer.h"

int gptq_set_threads(int n)
{
    if (n < 1 || n > GPTQ_MAX_THREADS)
        return gptq_error(GPTQ_ERR_INVALID, "threads %d: must be in [1, %d]", n, GPTQ_MAX_THREADS);
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    if (n > 1)
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "threads %d: this libgptq was built without OpenMP (-Dopenmp=disabled): "
                          "it runs on one thread", n);
#endif
    /* OpenBLAS's own pool: the CPU backend calls BLAS single-threaded on
     * fixed tiles (its results must not depend on the thread count) and sets
     * 1 again where it calls BLAS; this caps BLAS called anywhere else. */
    openblas_set_num_threads(n);
    return GPTQ_OK;
}

/* A caller's versioned struct: struct_size at least the first version's
 * size (all of these are at their first version: sizeof). */
static int check_size(size_t got, size_t first, const char *what)
{
    if (got < first)
        return gptq_error(GPTQ_ERR_INVALID,
                          "%s: struct_size %zu is smaller than the first version's %zu: call "
                          "%s_init() on it before setting fields",
                          what, got, first, what);
    return GPTQ_OK;
}

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

/* ------------------------------------------------------------------ */
/* Quantize                                                            */
/* ------------------------------------------------------------------ */

void gptq_quantize_options_init_sized(gptq_quantize_options *o, size_t size)
{
    gptq_quantize_options d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    gptq_quant_config_default(&d.q);
    gptq_calib_options co;
    gptq_calib_options_default(&co);
    d.nsamples = co.nsamples;
    d.seqlen = 0; /* the model's default: below */
    d.seed = co.seed;
    d.true_sequential = 1;
    gptq_versioned_init(o, size, &d, sizeof d);
}

void(gptq_quantize_options_init)(gptq_quantize_options *o)
{
    gptq_quantize_options_init_sized(o, sizeof *o);
}

void gptq_quantize_summary_init_sized(gptq_quantize_summary *s, size_t size)
{
    const gptq_quantize_summary d = {.struct_size = sizeof d};
    gptq_versioned_init(s, size, &d, sizeof d);
}

void(gptq_quantize_summary_init)(gptq_quantize_summary *s)
{
    gptq_quantize_summary_init_sized(s, sizeof *s);
}

/* The pipeline's callbacks, forwarding to the caller's and turning a
 * non-zero return of on_progress into the interrupt flag. */
typedef struct job {
    const gptq_quantize_options *o;
    volatile sig_atomic_t stop;  /* the interrupt flag the pipeline checks */
    int cancelled;               /* set by on_progress's return */
} job;

static void job_progress(void *user, const gptq_progress *p)
{
    job *j = user;
    if (j->o->on_progress && j->o->on_progress(j->o->user, p)) {
        j->cancelled = 1;
        j->stop = 1;
    }
}

static void job_module(void *user, const gptq_module_report *r, const float *W)
{
    (void)W;
    job *j = user;
    if (j->o->on_module) j->o->on_module(j->o->user, r);
}

static void job_skip(void *user, const char *prefix, const char *why)
{
    job *j = user;
    if (j->o->on_skip) j->o->on_skip(j->o->user, prefix, why);
}

int gptq_quantize_model_dir(gptq_backend *be, const char *model_dir, const char *out_dir,
                            const gptq_quantize_options *opts, gptq_quantize_summary *summary)
{
    if (!be || !model_dir || !out_dir || !opts)
        return gptq_error(GPTQ_ERR_INVALID, "gptq_quantize_model_dir: NULL argument");
    GPTQ_TRY(check_size(opts->struct_size, sizeof *opts, "gptq_quantize_options"));
    if (summary) GPTQ_TRY(check_size(summary->struct_size, sizeof *summary, "gptq_quantize_summary"));
    gptq_quantize_options o;
    gptq_quantize_options_init(&o);
    memcpy(&o, opts, min_size(opts->struct_size, sizeof o));

    const int rtn = o.q.method == GPTQ_METHOD_RTN;
    if (!rtn && !o.calib_path)
        return gptq_error(GPTQ_ERR_INVALID,
                          "GPTQ needs calibration text (calib_path), or the RTN method");
    if (o.nsamples < 1 || o.nsamples > (1L << 20))
        return gptq_error(GPTQ_ERR_INVALID, "nsamples %lld: must be in [1, 1048576]",
                          (long long)o.nsamples);
    /* the output policy before anything is read (the pipeline checks again) */
    GPTQ_TRY(gptq_ckpt_check_out(out_dir, model_dir, o.overwrite));

    gptq_dynamic *dyn = NULL; /* ~8 kB: off the stack */
    gptq_tokenizer *tok = NULL;
    gptq_calib cal = {0};
    gptq_pipeline_stats stats;
    memset(&stats, 0, sizeof stats);
    job j = {.o = &o};
    int st = GPTQ_OK;
    if (o.dynamic) {
        dyn = gptq_malloc(sizeof *dyn, "dynamic rules");
        if (!dyn) return GPTQ_ERR_NOMEM;
        if ((st = gptq_dynamic_load(o.dynamic, dyn))) goto done;
    }
    gptq_model_config cfg;
    if ((st = gptq_model_config_load(model_dir, &cfg))) goto done;
    if (o.seqlen == 0) o.seqlen = cfg.max_positions < 2048 ? cfg.max_positions : 2048;
    if (!rtn && (o.seqlen < 2 || o.seqlen > cfg.max_positions)) {
        st = gptq_error(GPTQ_ERR_INVALID, "seqlen %lld: must be in [2, %lld], %s's "
                        "max_position_embeddings", (long long)o.seqlen, (long long)cfg.max_positions,
                        model_dir);
        goto done;
    }

    gptq_pipeline_options po;
    gptq_pipeline_options_default(&po);
    po.q = o.q;
    if (!rtn) {
        const double t0 = gptq_now();
        gptq_calib_options co;
        gptq_calib_options_default(&co);
        co.nsamples = o.nsamples;
        co.seqlen = o.seqlen;
        co.seed = o.seed;
        co.max_bytes = o.calib_bytes;
        if ((st = gptq_tok_load(model_dir, &tok))) goto done;
        if ((st = gptq_calib_load(tok, o.calib_path, &co, &cal))) goto done;
        char msg[1400];
        snprintf(msg, sizeof msg,
                 "calibration: %.1000s%s, %zu bytes, %lld tokens -> %lld windows of %lld tokens "
                 "(seed %llu) in %.1f s",
                 o.calib_path, cal.jsonl ? " (JSON lines)" : "", cal.text_bytes,
                 (long long)cal.text_tokens, (long long)cal.nsamples, (long long)cal.seqlen,
                 (unsigned long long)o.seed, gptq_now() - t0);
        gptq_progress ev = {.struct_size = sizeof ev, .stage = "calibration", .nlayers = (int)cfg.num_layers,
                            .elapsed = gptq_now() - t0, .message = msg};
        job_progress(&j, &ev);
        if (j.cancelled) {
            st = gptq_error(GPTQ_ERR_CANCELLED, "cancelled after the calibration: nothing was "
                            "written to %s", out_dir);
            goto done;
        }
        po.calib_ids = cal.ids;
        po.nsamples = cal.nsamples;
        po.seqlen = cal.seqlen;
    }
    po.true_sequential = o.true_sequential;
    po.format = o.format;
    po.batch_tokens = o.batch_tokens;
    if (o.max_shard_bytes) po.max_shard_bytes = o.max_shard_bytes;
    po.forward_math = o.forward_math;
    po.overwrite = o.overwrite;
    po.strict = o.strict;
    po.lm_head = o.lm_head;
    po.dynamic = dyn;
    po.interrupt = &j.stop;
    po.on_progress = job_progress;
    po.on_module = job_module;
    po.on_skip = job_skip;
    po.user = &j;
    st = gptq_quantize_model(be, model_dir, out_dir, &po, &stats);
    if (st && j.cancelled)
        st = gptq_error(GPTQ_ERR_CANCELLED, "cancelled by the progress callback: nothing was "
                        "written to %s", out_dir);
    if (!st && summary) {
        gptq_quantize_summary s;
        gptq_quantize_summary_init(&s);
        s.format = stats.format;
        s.nshards = stats.nshards;
        s.nmodules = stats.nmodules;
        s.nskipped = stats.nskipped;
        s.zero0 = stats.zero0;
        s.params = stats.params;
        s.bytes_in = stats.bytes_in;
        s.bytes_out = stats.bytes_out;
        s.qweights = stats.qweights;
        s.qbytes = stats.qbytes;
        s.qsrc_bytes = stats.qsrc_bytes;
        s.nsamples = rtn ? 0 : cal.nsamples;
        s.seqlen = rtn ? 0 : cal.seqlen;
        s.seconds_total = stats.seconds_total;
        s.seconds_forward = stats.seconds_forward;
        s.seconds_hessian = stats.seconds_hessian;
        s.seconds_solve = stats.seconds_solve;
        s.seconds_write = stats.seconds_write;
        const size_t keep = summary->struct_size;
        memcpy(summary, &s, min_size(keep, sizeof s));
        summary->struct_size = keep;
    }
done:
    gptq_calib_free(&cal);
    gptq_tok_free(tok);
    free(dyn);
    return st;
}

/* ------------------------------------------------------------------ */
/* Evaluate                                                            */
/* ------------------------------------------------------------------ */

void gptq_eval_options_init_sized(gptq_eval_options *o, size_t size)
{
    const gptq_eval_options d = {.struct_size = sizeof d};
    gptq_versioned_init(o, size, &d, sizeof d);
}

void(gptq_eval_options_init)(gptq_eval_options *o) { gptq_eval_options_init_sized(o, sizeof *o); }

void gptq_eval_result_init_sized(gptq_eval_result *r, size_t size)
{
    const gptq_eval_result d = {.struct_size = sizeof d};
    gptq_versioned_init(r, size, &d, sizeof d);
}

void(gptq_eval_result_init)(gptq_eval_result *r) { gptq_eval_result_init_sized(r, sizeof *r); }

typedef struct eval_job {
    const gptq_eval_options *o;
    double t0;
} eval_job;

static int eval_progress(void *user, int64_t done, int64_t total, double nll_sum, int64_t predicted)
{
    eval_job *j = user;
    gptq_progress ev = {.struct_size = sizeof ev, .stage = "eval", .done = done, .total = total,
                        .fraction = total ? (double)done / (double)total : 1.0,
                        .elapsed = gptq_now() - j->t0,
                        .metric = predicted > 0 ? exp(nll_sum / (double)predicted) : 0.0};
    return j->o->on_progress(j->o->user, &ev);
}

int gptq_evaluate(gptq_model *m, const char *text, size_t len, const gptq_eval_options *opts,
                  gptq_eval_result *res)
{
    if (!m || !text || !opts || !res)
        return gptq_error(GPTQ_ERR_INVALID, "gptq_evaluate: NULL argument");
    GPTQ_TRY(check_size(opts->struct_size, sizeof *opts, "gptq_eval_options"));
    GPTQ_TRY(check_size(res->struct_size, sizeof *res, "gptq_eval_result"));
    gptq_eval_options o;
    gptq_eval_options_init(&o);
    memcpy(&o, opts, min_size(opts->struct_size, sizeof o));
    if (o.forward_math != GPTQ_MATH_F32 && o.forward_math != GPTQ_MATH_TF32)
        return gptq_error(GPTQ_ERR_INVALID, "forward_math %d: 0 (f32) or 1 (tf32)", o.forward_math);
    if (o.seqlen != 0 && (o.seqlen < 2 || o.seqlen > (1L << 20)))
        return gptq_error(GPTQ_ERR_INVALID, "seqlen %lld: must be 0 (the default) or in [2, "
                          "1048576]", (long long)o.seqlen);
    if (o.max_windows < 0 || o.batch < 0 || o.batch > (1L << 20))
        return gptq_error(GPTQ_ERR_INVALID, "max_windows %lld, batch %lld: must be >= 0 (0: "
                          "all, auto), batch at most 1048576", (long long)o.max_windows,
                          (long long)o.batch);

    int64_t seqlen = o.seqlen;
    if (seqlen == 0) {
        const int64_t maxpos = gptq_model_config_of(m)->max_positions;
        seqlen = maxpos > 0 && maxpos < 2048 ? maxpos : 2048;
    }
    gptq_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    int64_t n = 0;
    GPTQ_TRY(gptq_tok_load(gptq_model_dir(m), &tok));
    int st = gptq_tok_encode(tok, text, len, GPTQ_TOK_NO_SPECIAL, &ids, &n);
    gptq_tok_free(tok);
    if (st) return gptq_error_prefix(st, "encoding the text");

    gptq_model_set_forward_math(m, (gptq_math)o.forward_math);
    eval_job j = {.o = &o, .t0 = gptq_now()};
    gptq_ppl_options po = {.seqlen = seqlen, .max_windows = o.max_windows, .batch = o.batch};
    if (o.on_progress) {
        po.progress = eval_progress;
        po.user = &j;
    }
    gptq_ppl_result r;
    st = gptq_perplexity(m, ids, n, &po, &r);
    free(ids);
    if (st) return st;
    gptq_eval_result out;
    gptq_eval_result_init(&out);
    out.ppl = r.ppl;
    out.nll_sum = r.nll_sum;
    out.tokens = r.tokens;
    out.windows = r.windows;
    out.predicted = r.predicted;
    out.seqlen = seqlen;
    out.seconds = r.seconds;
    const size_t keep = res->struct_size;
    memcpy(res, &out, min_size(keep, sizeof out));
    res->struct_size = keep;
    return GPTQ_OK;
}
