/*
 * eval.h — perplexity of a model on a token stream (internal).
 *
 * The protocol (shared/README.md, as the GPTQ papers measure it): the whole
 * text is encoded with no special tokens added, the ids are cut into
 * non-overlapping windows of `seqlen` tokens, the remainder is dropped, and
 * ppl = exp(sum of next-token NLLs / number of predicted tokens), seqlen - 1
 * predicted tokens per window (the first token of a window has no context).
 */
#ifndef GPTQ_EVAL_H
#define GPTQ_EVAL_H

#include <stdint.h>

#include "../model/model.h"

typedef struct gptq_ppl_options {
    int64_t seqlen;       /* tokens per window (2048 when 0) */
    int64_t max_windows;  /* score only the first N windows (0: all) */
    int64_t batch;        /* windows per forward pass (0: as many as fit
                             GPTQ_PPL_BATCH_TOKENS tokens, at least 1) */
    double *window_nll;   /* optional out: (windows) NLL sum of each window */
    /* optional: called after each batch with windows done / total; a
     * non-zero return stops the run (GPTQ_ERR_CANCELLED) */
    int (*progress)(void *user, int64_t done, int64_t total, double nll_sum,
                    int64_t predicted);
    void *user;
    /* optional: called after each batch with its logits (nb * S, V) host
     * f32, windows [w0, w0 + nb); a non-zero return stops the run with that
     * status. Batches are then also bounded by GPTQ_PPL_LOGIT_BYTES. */
    int (*on_logits)(void *logits_user, int64_t w0, int64_t nb, int64_t S, int64_t V,
                     const float *logits);
    void *logits_user;
} gptq_ppl_options;

/* Largest logits buffer of one batch when on_logits is set (at least one
 * window's worth is always used). */
#define GPTQ_PPL_LOGIT_BYTES ((size_t)256 << 20)

/* Tokens per forward pass when batch is 0 (bounds the activations). */
#define GPTQ_PPL_BATCH_TOKENS 8192

typedef struct gptq_ppl_result {
    double ppl;          /* exp(nll_sum / predicted) */
    double nll_sum;      /* summed in double, window order */
    int64_t tokens;      /* ids given (the whole text) */
    int64_t windows;     /* windows scored */
    int64_t predicted;   /* windows * (seqlen - 1) */
    double seconds;      /* wall time of the forward passes */
} gptq_ppl_result;

/* Perplexity over ids (n) host i32. Fewer than one window of tokens:
 * GPTQ_ERR_INVALID saying how many there are. */
int gptq_perplexity(gptq_model *m, const int32_t *ids, int64_t n, const gptq_ppl_options *o,
                    gptq_ppl_result *r);

/* ------------------------------------------------------------------ */
/* KL divergence against a base model (kl.c)                           */
/* ------------------------------------------------------------------ */

/* The statistics llama.cpp's perplexity tool reports with --kl-divergence,
 * over every predicted token t (the same tokens as the perplexity):
 *   KL_t = sum_v p_base(v) (ln p_base(v) - ln p_q(v)), log-softmax of each
 *          side's f32 logits in double (the whole vocabulary: llama.cpp's
 *          stored base drops terms with ln p_base <= -16);
 *   mean, median, 99th percentile and max of KL_t (a percentile at
 *          fraction f: the sorted values linearly interpolated at
 *          f * (n - 1), as llama.cpp's);
 *   same_top: the share of tokens whose argmax (the first, on ties) is the
 *          same on both sides ("Same top p");
 *   ppl_base, ppl: exp(mean NLL of the target) of each side, and
 *   ln_ratio = mean ln p_base(target) - mean ln p_q(target), ratio =
 *          exp(ln_ratio) = ppl / ppl_base ("Mean PPL(Q)/PPL(base)"). */
typedef struct gptq_kl_acc {
    double kl_sum, nll_base, nll_q;
    int64_t n, same_top;
    float *kl;   /* (cap) KL_t of every token so far, for the percentiles */
    int64_t cap;
} gptq_kl_acc;

typedef struct gptq_kl_stats {
    int64_t tokens;
    double mean, median, p99, max;
    double same_top; /* fraction, 0..1 */
    double ppl_base, ppl, ratio, ln_ratio;
} gptq_kl_stats;

/* cap: the number of tokens that will be added (windows * (S - 1)). */
int gptq_kl_init(gptq_kl_acc *a, int64_t cap);
void gptq_kl_free(gptq_kl_acc *a);
/* rows tokens: base and q logits (rows, V) f32, target[r] the id row r
 * predicts. A non-finite logit or a target outside the vocabulary:
 * GPTQ_ERR_NUMERIC / GPTQ_ERR_INVALID naming the row. */
int gptq_kl_add(gptq_kl_acc *a, const float *base, const float *q, int64_t rows, int64_t V,
                const int32_t *target);
/* Sorts the stored values (the accumulator stays usable for nothing else
 * but gptq_kl_free). GPTQ_ERR_INVALID when no token was added. */
int gptq_kl_finish(gptq_kl_acc *a, gptq_kl_stats *out);

/* ------------------------------------------------------------------ */
/* Saved logits (logits.c)                                             */
/* ------------------------------------------------------------------ */

/* A safetensors file (gptq-c writes it beside its name and renames it into
 * place) holding one evaluation's logits, to compare later models with:
 *   "ids"    I32 (W, S)       the windows' token ids
 *   "logits" F32 (W, S-1, V)  the logits of positions 0..S-2 of each window
 *                             (the predictions of tokens 1..S-1)
 * metadata: "magic" "gptq-c-logits", "version" "1", "model", "text" (the
 * paths as given), "text_bytes", "tokens" (of the whole text), "seqlen",
 * "windows", "vocab". */
typedef struct gptq_logits_writer gptq_logits_writer;
typedef struct gptq_logits_file gptq_logits_file;

typedef struct gptq_logits_facts {
    const char *model, *text;
    int64_t text_bytes, tokens, seqlen, windows, vocab;
} gptq_logits_facts;

/* ids: the W * S ids of the windows that will be written, in order. */
int gptq_logits_create(const char *path, const gptq_logits_facts *f, const int32_t *ids,
                       gptq_logits_writer **out);
/* The logits (nb * S, V) of the next nb windows, as on_logits gets them. */
int gptq_logits_append(gptq_logits_writer *w, int64_t nb, const float *logits);
int gptq_logits_commit(gptq_logits_writer *w); /* frees w; all windows written */
void gptq_logits_abort(gptq_logits_writer *w); /* frees w; nothing left behind */

/* Open a saved file for a run that scores `windows` windows of `seqlen`
 * ids (ids: windows * seqlen) over a vocabulary of `vocab`: anything else
 * (not such a file, another seqlen, window count, vocabulary or other ids)
 * is refused naming FILE, what it holds and what this run has. */
int gptq_logits_open(const char *path, int64_t seqlen, int64_t windows, int64_t vocab,
                     const int32_t *ids, gptq_logits_file **out);
/* The stored logits of window w: (S-1, V). */
const float *gptq_logits_window(const gptq_logits_file *f, int64_t w);
const char *gptq_logits_meta(const gptq_logits_file *f, const char *key);
void gptq_logits_close(gptq_logits_file *f);

#endif /* GPTQ_EVAL_H */
