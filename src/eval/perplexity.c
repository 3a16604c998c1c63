/*
 * perplexity.c — perplexity with non-overlapping windows (eval.h): windows
 * go through the model in batches (embed, every decoder layer, head), the
 * NLL of each predicted token is summed in double in window order.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"

int gptq_perplexity(gptq_model *m, const int32_t *ids, int64_t n, const gptq_ppl_options *o,
                    gptq_ppl_result *r)
{
    memset(r, 0, sizeof *r);
    const int64_t S = o && o->seqlen > 0 ? o->seqlen : 2048;
    if (S < 2) return gptq_error(GPTQ_ERR_INVALID, "perplexity: seqlen %lld < 2", (long long)S);
    int64_t nwin = n / S;
    if (nwin < 1)
        return gptq_error(GPTQ_ERR_INVALID,
                          "perplexity: the text has %lld tokens, fewer than one window of %lld",
                          (long long)n, (long long)S);
    if (o && o->max_windows > 0 && o->max_windows < nwin) nwin = o->max_windows;
    int64_t batch = o && o->batch > 0 ? o->batch : GPTQ_PPL_BATCH_TOKENS / S;
    if (batch < 1) batch = 1;
    if (batch > nwin) batch = nwin;

    double *tok = NULL;
    if (o && o->window_nll) {
        tok = gptq_malloc((size_t)(batch * (S - 1)) * sizeof(double), "token NLL");
        if (!tok) return GPTQ_ERR_NOMEM;
    }
    const double t0 = gptq_now();
    double sum = 0.0;
    int st = GPTQ_OK;
    for (int64_t w = 0; w < nwin && !st; w += batch) {
        const int64_t nb = nwin - w < batch ? nwin - w : batch;
        double s = 0.0;
        st = gptq_model_forward(m, ids + w * S, nb, S, &s, tok, NULL);
        if (st) {
            gptq_error_prefix(st, "perplexity: windows %lld..%lld", (long long)w,
                              (long long)(w + nb - 1));
            break;
        }
        sum += s;
        if (tok)
            for (int64_t b = 0; b < nb; b++) {
                double ws = 0.0;
                for (int64_t i = 0; i < S - 1; i++) ws += tok[b * (S - 1) + i];
                o->window_nll[w + b] = ws;
            }
        if (o && o->progress) o->progress(o->user, w + nb, nwin, sum, (w + nb) * (S - 1));
    }
    free(tok);
    if (st) return st;
    r->nll_sum = sum;
    r->tokens = n;
    r->windows = nwin;
    r->predicted = nwin * (S - 1);
    r->ppl = exp(sum / (double)r->predicted);
    r->seconds = gptq_now() - t0;
    return GPTQ_OK;
}
