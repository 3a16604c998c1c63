/*
 * kl.c — KL divergence of a model's next-token distributions against a
 * base model's, token by token, and the statistics of eval.h
 * (gptq_kl_stats: llama.cpp's --kl-divergence figures).
 *
 * Each side's log-softmax is taken from its f32 logits in double, so a
 * model compared with itself gives exactly 0 for every token (the same
 * bytes in, the same operations).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"

int gptq_kl_init(gptq_kl_acc *a, int64_t cap)
{
    memset(a, 0, sizeof *a);
    if (cap < 1) return gptq_error(GPTQ_ERR_INVALID, "kl divergence: no token to score");
    a->kl = gptq_malloc((size_t)cap * sizeof(float), "per-token KL divergences");
    if (!a->kl) return GPTQ_ERR_NOMEM;
    a->cap = cap;
    return GPTQ_OK;
}

void gptq_kl_free(gptq_kl_acc *a)
{
    free(a->kl);
    memset(a, 0, sizeof *a);
}

/* max and argmax (first on ties) of x (V), and ln sum exp(x - max) in
 * double. 0, or -1 when a value is not finite. */
static int row_stats(const float *x, int64_t V, double *mx, int64_t *arg, double *lse)
{
    float m = x[0];
    int64_t k = 0;
    for (int64_t v = 0; v < V; v++) {
        if (!isfinite(x[v])) return -1;
        if (x[v] > m) {
            m = x[v];
            k = v;
        }
    }
    double s = 0.0;
    for (int64_t v = 0; v < V; v++) s += exp((double)x[v] - m);
    *mx = m;
    *arg = k;
    *lse = log(s);
    return 0;
}

int gptq_kl_add(gptq_kl_acc *a, const float *base, const float *q, int64_t rows, int64_t V,
                const int32_t *target)
{
    if (a->n + rows > a->cap)
        return gptq_error(GPTQ_ERR_INVALID, "kl divergence: %lld tokens, more than the %lld "
                          "announced", (long long)(a->n + rows), (long long)a->cap);
    for (int64_t r = 0; r < rows; r++) {
        const float *b = base + r * V, *x = q + r * V;
        double mb, mq, lb, lq;
        int64_t ab, aq;
        const int bad_b = row_stats(b, V, &mb, &ab, &lb);
        if (bad_b || row_stats(x, V, &mq, &aq, &lq))
            return gptq_error(GPTQ_ERR_NUMERIC, "kl divergence: token %lld: a logit of the %s "
                              "model is NaN or Inf", (long long)(a->n + r),
                              bad_b ? "base" : "compared");
        if (target[r] < 0 || target[r] >= V)
            return gptq_error(GPTQ_ERR_INVALID, "kl divergence: token %lld: target id %d is "
                              "outside the vocabulary of %lld", (long long)(a->n + r),
                              (int)target[r], (long long)V);
        /* ln p(v) = x(v) - max - lse on each side */
        double kl = 0.0;
        for (int64_t v = 0; v < V; v++) {
            const double lpb = (double)b[v] - mb - lb, lpq = (double)x[v] - mq - lq;
            kl += exp(lpb) * (lpb - lpq);
        }
        a->kl[a->n + r] = (float)kl;
        a->kl_sum += kl;
        a->same_top += ab == aq;
        a->nll_base -= (double)b[target[r]] - mb - lb;
        a->nll_q -= (double)x[target[r]] - mq - lq;
    }
    a->n += rows;
    return GPTQ_OK;
}

static int cmp_float(const void *x, const void *y)
{
    const float a = *(const float *)x, b = *(const float *)y;
    return (a > b) - (a < b);
}

/* sorted v (n): linear interpolation at f * (n - 1) */
static double percentile(const float *v, int64_t n, double f)
{
    const double p = f * (double)(n - 1);
    const int64_t i = (int64_t)p;
    const double t = p - (double)i;
    return i + 1 < n ? (1.0 - t) * v[i] + t * v[i + 1] : v[n - 1];
}

int gptq_kl_finish(gptq_kl_acc *a, gptq_kl_stats *o)
{
    memset(o, 0, sizeof *o);
    if (a->n < 1) return gptq_error(GPTQ_ERR_INVALID, "kl divergence: no token was scored");
    const int64_t n = a->n;
    qsort(a->kl, (size_t)n, sizeof *a->kl, cmp_float);
    o->tokens = n;
    o->mean = a->kl_sum / (double)n;
    o->median = percentile(a->kl, n, 0.5);
    o->p99 = percentile(a->kl, n, 0.99);
    o->max = a->kl[n - 1];
    o->same_top = (double)a->same_top / (double)n;
    o->ppl_base = exp(a->nll_base / (double)n);
    o->ppl = exp(a->nll_q / (double)n);
    o->ln_ratio = (a->nll_q - a->nll_base) / (double)n;
    o->ratio = exp(o->ln_ratio);
    return GPTQ_OK;
}
