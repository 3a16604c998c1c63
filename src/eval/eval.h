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
} gptq_ppl_options;

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

#endif /* GPTQ_EVAL_H */
