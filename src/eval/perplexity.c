/*
 * perplexity.c — perplexity with non-overlapping windows (eval.h): windows
 * go through the model in batches (embed, every decoder layer, head), the
 * NLL of each predicted token is summed in double in window order.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"

/* ------------------------------------------------------------------ */
/* A NaN or Inf: where it starts                                       */
/* ------------------------------------------------------------------ */

/* The first element of a stored F32/F16/BF16 tensor that is not finite
 * (its bits: NaN and Inf have every exponent bit set), or -1. */
static int64_t first_nonfinite(const gptq_st_info *t)
{
    const size_t es = gptq_dtype_size(t->dtype);
    const int64_t n = es ? (int64_t)(t->nbytes / es) : 0;
    const unsigned char *b = t->data;
    for (int64_t i = 0; i < n; i++) {
        if (t->dtype == GPTQ_F32) {
            uint32_t u;
            memcpy(&u, b + 4 * i, 4);
            if ((u & 0x7f800000u) == 0x7f800000u) return i;
        } else if (t->dtype == GPTQ_F16 || t->dtype == GPTQ_BF16) {
            uint16_t u;
            memcpy(&u, b + 2 * i, 2);
            const uint16_t e = t->dtype == GPTQ_F16 ? 0x7c00u : 0x7f80u;
            if ((u & e) == e) return i;
        }
    }
    return -1;
}

/* 1 when `name` belongs to decoder layer L ("...layers.<L>." at the start
 * or after a '.'); L < 0: to any layer. */
static int in_layer(const char *name, int L)
{
    char key[32];
    if (L >= 0) snprintf(key, sizeof key, "layers.%d.", L);
    else snprintf(key, sizeof key, "layers.");
    for (const char *p = strstr(name, key); p; p = strstr(p + 1, key))
        if (p == name || p[-1] == '.') return 1;
    return 0;
}

/* The first stored tensor of a part of the model that holds a NaN or Inf:
 * part 0 the embeddings, 1 + L decoder layer L, -1 the head (everything
 * outside the layers). Its description into msg; 0 when none. */
static int bad_tensor(gptq_weights *w, int part, char *msg, size_t size)
{
    for (int i = 0; i < gptq_weights_count(w); i++) {
        gptq_st_info t;
        if (gptq_weights_get(w, i, &t)) continue;
        const int mine = part == 0    ? strstr(t.name, "embed") != NULL
                         : part > 0   ? in_layer(t.name, part - 1)
                                      : !in_layer(t.name, -1);
        if (!mine) continue;
        const int64_t at = first_nonfinite(&t);
        if (at < 0) continue;
        snprintf(msg, size, "tensor '%s' holds a NaN or Inf at element %lld", t.name,
                 (long long)at);
        return 1;
    }
    return 0;
}

/* The forward of windows ids (nb, S) gave a non-finite NLL: run it again
 * part by part, find where the hidden states first stop being finite (the
 * embeddings, a decoder layer, or the head) and name the first stored
 * tensor of that part holding a NaN or Inf. Returns GPTQ_ERR_NUMERIC with
 * the message (or the failure of the rerun). */
static int explain_nonfinite(gptq_model *m, const int32_t *ids, int64_t nb, int64_t S, double nll)
{
    gptq_backend *be = gptq_model_backend(m);
    gptq_weights *w = gptq_model_weights(m);
    const gptq_model_config *c = gptq_model_config_of(m);
    const int64_t n = nb * S * c->hidden_size;
    gptq_buf *X = NULL;
    float *h = gptq_malloc((size_t)n * sizeof(float), "hidden states");
    if (!h) return GPTQ_ERR_NOMEM;
    int st = gptq_model_alloc_hidden(m, nb, S, &X);
    if (!st) st = gptq_model_embed(m, ids, nb, S, X);
    int part = -1; /* where the hidden states stop being finite: -1 the head */
    for (int L = -1; !st && L < c->num_layers && part < 0; L++) {
        if (L >= 0) st = gptq_model_layer_forward(m, L, X, X, nb, S, NULL, NULL);
        if (!st) st = gptq_be_download(be, X, 0, h, (size_t)n * sizeof(float));
        for (int64_t i = 0; !st && i < n; i++)
            if (!isfinite(h[i])) {
                part = L + 1;
                break;
            }
    }
    gptq_model_layer_unload(m);
    gptq_be_free(be, X);
    free(h);
    if (st) return st;
    char where[64], what[600];
    if (part == 0) snprintf(where, sizeof where, "the embeddings");
    else if (part > 0) snprintf(where, sizeof where, "the output of layer %d", part - 1);
    else snprintf(where, sizeof where, "the logits (final norm and lm_head)");
    if (!bad_tensor(w, part, what, sizeof what))
        snprintf(what, sizeof what, "no stored tensor there holds a NaN or Inf: the values "
                 "overflow f32 there");
    return gptq_error(GPTQ_ERR_NUMERIC, "the NLL is %g: values first stop being finite in %s "
                      "(%s)", nll, where, what);
}

/* ------------------------------------------------------------------ */
/* Perplexity                                                          */
/* ------------------------------------------------------------------ */

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
        if (!st && !isfinite(s)) st = explain_nonfinite(m, ids + w * S, nb, S, s);
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
        if (o && o->progress && o->progress(o->user, w + nb, nwin, sum, (w + nb) * (S - 1)))
            st = gptq_error(GPTQ_ERR_CANCELLED, "perplexity: cancelled after %lld of %lld windows",
                            (long long)(w + nb), (long long)nwin);
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
