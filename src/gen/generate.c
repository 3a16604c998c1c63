/*
 * generate.c — text generation on a model kept on a backend (gptq.h,
 * "Text generation"): prefill and steps through the model's KV cache
 * (forward.c, gptq_model_kv_*), the sampler (transformers' processors in
 * transformers' order, our own PRNG), EOS ids, and the streaming decoder
 * (tokenizers' DecodeStream, with the prompt as context).
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/io.h"
#include "model/model.h"
#include "text/tokenizer.h"

#define MAX_EOS 16

struct gptq_generator {
    char dir[2048];
    gptq_model *m;
    gptq_tokenizer *tok;
    int64_t V, maxpos;
    int32_t eos[MAX_EOS];
    int neos;

    float *logits;  /* (V) the next-token logits */
    float *work;    /* (V) the sampler's copy */
    int32_t *order; /* (V) top-p's ids by value */
    unsigned char *seen; /* (V) the repetition penalty's ids */
    int64_t len;    /* tokens in the sequence */

    int32_t *ids;   /* (cap) prompt + generated */
    int64_t nprompt, cap;

    uint64_t rng[4];
    int seeded;

    /* the stream: ids[win0 .. len) decode to text starting with `prefix`;
     * ids before win_new were already emitted (tokenizers' prefix_index) */
    int64_t win0, win_new;
    char *prefix;
    size_t prefix_len;
    char *emitted; /* everything streamed, for the flush */
    size_t emitted_len, emitted_cap;
    char *out;     /* what the last stream call returned */
};

/* ------------------------------------------------------------------ */
/* PRNG: xoshiro256** seeded by splitmix64                             */
/* ------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro(uint64_t *s)
{
    const uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* uniform in [0, 1): the top 53 bits */
static double uniform(uint64_t *s) { return (double)(xoshiro(s) >> 11) * 0x1.0p-53; }

/* ------------------------------------------------------------------ */
/* open / close                                                        */
/* ------------------------------------------------------------------ */

/* eos_token_id of `file` (an int or a list of ints) into g; absent: 0 ids. */
static int read_eos(gptq_generator *g, const char *file)
{
    cJSON *root = NULL;
    GPTQ_TRY(gptq_json_read_file(file, &root));
    int st = GPTQ_OK;
    const cJSON *e = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "eos_token_id")
                                          : NULL;
    if (!cJSON_IsObject(root)) st = gptq_error(GPTQ_ERR_FORMAT, "%s: not a JSON object", file);
    const cJSON *one = cJSON_IsArray(e) ? e->child : e;
    for (; !st && one && !cJSON_IsNull(one); one = cJSON_IsArray(e) ? one->next : NULL) {
        const double v = cJSON_IsNumber(one) ? one->valuedouble : -1;
        if (!cJSON_IsNumber(one) || v != floor(v) || v < 0 || v >= (double)g->V)
            st = gptq_error(GPTQ_ERR_FORMAT,
                            "%s: \"eos_token_id\" must be a token id in [0, %lld) or a list of "
                            "them",
                            file, (long long)g->V);
        else if (g->neos == MAX_EOS)
            st = gptq_error(GPTQ_ERR_FORMAT, "%s: more than %d eos_token_id values", file,
                            MAX_EOS);
        else
            g->eos[g->neos++] = (int32_t)v;
    }
    cJSON_Delete(root);
    return st;
}

void gptq_generator_options_init_sized(gptq_generator_options *o, size_t size)
{
    const gptq_generator_options d = {
        .struct_size = sizeof d, .linears = GPTQ_LINEARS_AUTO, .join_linears = 1};
    gptq_versioned_init(o, size, &d, sizeof d);
}

void(gptq_generator_options_init)(gptq_generator_options *o)
{
    gptq_generator_options_init_sized(o, sizeof *o);
}

/* The first versions' sizes (the ABI rules in gptq.h): what a caller built
 * against them sets; the fields after are the library's defaults. */
#define OPTIONS_V1_SIZE offsetof(gptq_generator_options, join_linears)
#define STATS_V1_SIZE offsetof(gptq_generator_stats, joined_linears)
#define HAS_FIELD(p, type, f) ((p)->struct_size >= offsetof(type, f) + sizeof((p)->f))

int gptq_generator_open(const char *model_dir, gptq_backend *be, gptq_generator **out)
{
    return gptq_generator_open_with(model_dir, be, NULL, out);
}

int gptq_generator_open_with(const char *model_dir, gptq_backend *be,
                             const gptq_generator_options *o, gptq_generator **out)
{
    *out = NULL;
    if (!model_dir || !be) return gptq_error(GPTQ_ERR_INVALID, "gptq_generator_open: bad argument");
    gptq_generator_options opt;
    gptq_generator_options_init(&opt);
    if (o && o->struct_size < OPTIONS_V1_SIZE)
        return gptq_error(GPTQ_ERR_INVALID,
                          "gptq_generator_options: struct_size %zu, the first version has %zu "
                          "(call gptq_generator_options_init)",
                          o->struct_size, (size_t)OPTIONS_V1_SIZE);
    if (o) opt.linears = o->linears;
    if (o && HAS_FIELD(o, gptq_generator_options, join_linears))
        opt.join_linears = o->join_linears;
    if (opt.linears != GPTQ_LINEARS_AUTO && opt.linears != GPTQ_LINEARS_FAST &&
        opt.linears != GPTQ_LINEARS_F32)
        return gptq_error(GPTQ_ERR_INVALID,
                          "gptq_generator_options: linears %d is none of GPTQ_LINEARS_AUTO, "
                          "_FAST, _F32",
                          (int)opt.linears);
    gptq_generator *g = gptq_calloc(1, sizeof *g, "generator");
    if (!g) return GPTQ_ERR_NOMEM;
    snprintf(g->dir, sizeof g->dir, "%s", model_dir);
    int st = gptq_model_open(model_dir, be, &g->m);
    if (!st) gptq_model_kv_set_linears(g->m, opt.linears);
    if (!st) gptq_model_kv_set_join(g->m, opt.join_linears);
    if (!st && !gptq_be_supports(be, GPTQ_OP_ATTENTION_KV))
        st = gptq_error(GPTQ_ERR_UNSUPPORTED,
                        "backend %s has no 'attention_kv' op (attention against a KV cache): "
                        "it cannot generate; use --backend cpu",
                        gptq_backend_name(be));
    if (!st) st = gptq_tok_load(model_dir, &g->tok);
    if (!st) {
        const gptq_model_config *c = gptq_model_config_of(g->m);
        g->V = c->vocab_size;
        g->maxpos = c->max_positions;
        g->logits = gptq_malloc((size_t)g->V * sizeof(float), "logits");
        g->work = gptq_malloc((size_t)g->V * sizeof(float), "logits");
        g->order = gptq_malloc((size_t)g->V * sizeof(int32_t), "logits");
        g->seen = gptq_malloc((size_t)g->V, "logits");
        if (!g->logits || !g->work || !g->order || !g->seen) st = GPTQ_ERR_NOMEM;
    }
    /* generation_config.json first (what transformers' generate uses), then config.json */
    char path[2200];
    snprintf(path, sizeof path, "%s/generation_config.json", model_dir);
    if (!st && gptq_input_present(path)) st = read_eos(g, path);
    snprintf(path, sizeof path, "%s/config.json", model_dir);
    if (!st && g->neos == 0) st = read_eos(g, path);
    if (st) {
        gptq_generator_close(g);
        return st;
    }
    *out = g;
    return GPTQ_OK;
}

void gptq_generator_close(gptq_generator *g)
{
    if (!g) return;
    gptq_model_close(g->m);
    gptq_tok_free(g->tok);
    free(g->logits);
    free(g->work);
    free(g->order);
    free(g->seen);
    free(g->ids);
    free(g->prefix);
    free(g->emitted);
    free(g->out);
    free(g);
}

int gptq_generator_encode(gptq_generator *g, const char *text, size_t len, int32_t **ids,
                          int64_t *n)
{
    return gptq_tok_encode(g->tok, text, len, GPTQ_TOK_ADD_SPECIAL, ids, n);
}

int64_t gptq_generator_max_positions(const gptq_generator *g) { return g->maxpos; }
int64_t gptq_generator_vocab(const gptq_generator *g) { return g->V; }
const float *gptq_generator_logits(const gptq_generator *g) { return g->logits; }
int64_t gptq_generator_length(const gptq_generator *g) { return g->len; }

int gptq_generator_is_eos(const gptq_generator *g, int32_t id)
{
    for (int i = 0; i < g->neos; i++)
        if (g->eos[i] == id) return 1;
    return 0;
}

/* ------------------------------------------------------------------ */
/* prefill and steps                                                   */
/* ------------------------------------------------------------------ */

static int decode_ids(const gptq_generator *g, int64_t from, int64_t to, char **text,
                      size_t *len)
{
    return gptq_tok_decode(g->tok, g->ids + from, to - from, 1, text, len);
}

int gptq_generator_reserve(gptq_generator *g, int64_t cap)
{
    if (cap <= 0 || cap > g->maxpos)
        return gptq_error(GPTQ_ERR_INVALID,
                          "a KV cache of %lld positions: it must be in [1, %lld] "
                          "(max_position_embeddings)",
                          (long long)cap, (long long)g->maxpos);
    g->len = g->nprompt = 0; /* the sequence is gone with the cache's contents */
    return gptq_model_kv_begin(g->m, cap);
}

int gptq_generator_prefill(gptq_generator *g, const int32_t *ids, int64_t n, int64_t cap)
{
    if (n <= 0)
        return gptq_error(GPTQ_ERR_INVALID, "the prompt is empty (it encodes to no tokens)");
    if (n > g->maxpos)
        return gptq_error(GPTQ_ERR_INVALID,
                          "the prompt is %lld tokens, longer than the model's "
                          "max_position_embeddings (%lld)",
                          (long long)n, (long long)g->maxpos);
    if (cap < n || cap > g->maxpos)
        return gptq_error(GPTQ_ERR_INVALID,
                          "a KV cache of %lld positions for a prompt of %lld tokens: it must "
                          "be in [%lld, %lld] (max_position_embeddings)",
                          (long long)cap, (long long)n, (long long)n, (long long)g->maxpos);
    for (int64_t t = 0; t < n; t++)
        if (ids[t] < 0 || ids[t] >= g->V)
            return gptq_error(GPTQ_ERR_INVALID,
                              "prompt token %lld is id %d, outside the vocabulary [0, %lld)",
                              (long long)t, ids[t], (long long)g->V);
    int32_t *buf = realloc(g->ids, (size_t)cap * sizeof *buf);
    if (!buf) return gptq_error(GPTQ_ERR_NOMEM, "out of memory for %lld token ids", (long long)cap);
    g->ids = buf;
    memcpy(g->ids, ids, (size_t)n * sizeof *ids);
    g->nprompt = g->len = 0;
    g->cap = cap;
    g->seeded = 0;
    GPTQ_TRY(gptq_model_kv_begin(g->m, cap)); /* the weights once, an empty cache */
    GPTQ_TRY(gptq_model_kv_forward(g->m, ids, n, 1, g->logits));
    g->nprompt = g->len = n;
    /* the stream starts with the prompt as its context */
    free(g->prefix);
    g->prefix = NULL;
    g->win0 = 0;
    g->win_new = n;
    g->emitted_len = 0;
    return decode_ids(g, 0, n, &g->prefix, &g->prefix_len);
}

/* The checks of step and append: a sequence, id a token, room for it. */
static int check_next(const gptq_generator *g, int32_t id)
{
    if (g->len == 0) return gptq_error(GPTQ_ERR_INVALID, "no sequence started (prefill first)");
    if (id < 0 || id >= g->V)
        return gptq_error(GPTQ_ERR_INVALID, "token id %d is outside the vocabulary [0, %lld)",
                          id, (long long)g->V);
    if (g->len >= g->cap)
        return gptq_error(GPTQ_ERR_INVALID,
                          "the sequence has reached its %lld positions (the KV cache)",
                          (long long)g->cap);
    return GPTQ_OK;
}

int gptq_generator_step(gptq_generator *g, int32_t id)
{
    GPTQ_TRY(check_next(g, id));
    /* the appended tokens not yet in the cache, then id, in one batch */
    const int64_t k0 = gptq_model_kv_len(g->m);
    g->ids[g->len] = id;
    GPTQ_TRY(gptq_model_kv_forward(g->m, g->ids + k0, g->len + 1 - k0, 1, g->logits));
    g->len++;
    return GPTQ_OK;
}

int gptq_generator_append(gptq_generator *g, int32_t id)
{
    GPTQ_TRY(check_next(g, id));
    g->ids[g->len++] = id;
    return GPTQ_OK;
}

/* ------------------------------------------------------------------ */
/* sampling                                                            */
/* ------------------------------------------------------------------ */

void gptq_sampling_init_sized(gptq_sampling *s, size_t size)
{
    const gptq_sampling d = {.struct_size = sizeof d, .temperature = 0.0, .top_k = 0,
                             .top_p = 1.0, .repeat_penalty = 1.0, .seed = 0};
    gptq_versioned_init(s, size, &d, sizeof d);
}

void(gptq_sampling_init)(gptq_sampling *s) { gptq_sampling_init_sized(s, sizeof *s); }

int gptq_sampling_check(const gptq_sampling *s)
{
    if (!s || s->struct_size < sizeof *s) /* the first version's size */
        return gptq_error(GPTQ_ERR_INVALID,
                          "gptq_sampling: struct_size %zu, the first version has %zu "
                          "(call gptq_sampling_init)",
                          s ? s->struct_size : 0, sizeof *s);
    if (!(s->temperature >= 0 && isfinite(s->temperature)))
        return gptq_error(GPTQ_ERR_INVALID, "temperature %g must be >= 0 (0: greedy)",
                          s->temperature);
    if (s->top_k < 0) return gptq_error(GPTQ_ERR_INVALID, "top_k %lld must be >= 0 (0: off)",
                                        (long long)s->top_k);
    if (!(s->top_p > 0 && s->top_p <= 1))
        return gptq_error(GPTQ_ERR_INVALID, "top_p %g must be in (0, 1] (1: off)", s->top_p);
    if (!(s->repeat_penalty > 0 && isfinite(s->repeat_penalty)))
        return gptq_error(GPTQ_ERR_INVALID, "repeat_penalty %g must be > 0 (1: off)",
                          s->repeat_penalty);
    return GPTQ_OK;
}

/* the lowest id among the largest values (a NaN is never the largest) */
static int32_t argmax(const float *l, int64_t V)
{
    int64_t best = 0;
    for (int64_t i = 1; i < V; i++)
        if (l[i] > l[best] || (l[best] != l[best] && l[i] == l[i])) best = i;
    return (int32_t)best;
}

/* qsort's comparison has no user pointer: the values of this thread's sort */
static _Thread_local const float *g_sort_vals;
static int by_value_desc(const void *a, const void *b)
{
    const int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    const float x = g_sort_vals[i], y = g_sort_vals[j];
    if (x != y) return x > y ? -1 : 1;
    return i < j ? -1 : i > j; /* ties by id: the order is a function of the values */
}

int gptq_generator_sample(gptq_generator *g, const gptq_sampling *s, int32_t *id)
{
    GPTQ_TRY(gptq_sampling_check(s));
    if (g->len == 0) return gptq_error(GPTQ_ERR_INVALID, "no sequence started (prefill first)");
    if (gptq_model_kv_len(g->m) < g->len)
        return gptq_error(GPTQ_ERR_INVALID,
                          "token %lld was appended without running the model: its logits are "
                          "not computed (step computes them)",
                          (long long)g->len - 1);
    const int64_t V = g->V;
    float *l = g->work;
    memcpy(l, g->logits, (size_t)V * sizeof *l);
    for (int64_t i = 0; i < V; i++)
        if (isnan(l[i]))
            return gptq_error(GPTQ_ERR_NUMERIC,
                              "%s: the logits of position %lld hold a NaN (id %lld)", g->dir,
                              (long long)g->len, (long long)i);
    if (s->repeat_penalty != 1.0) {
        /* each distinct id of the sequence once (transformers gathers and scatters) */
        const float p = (float)s->repeat_penalty;
        memset(g->seen, 0, (size_t)V);
        for (int64_t t = 0; t < g->len; t++) {
            const int32_t k = g->ids[t];
            if (g->seen[k]) continue;
            g->seen[k] = 1;
            l[k] = l[k] < 0 ? l[k] * p : l[k] / p;
        }
    }
    if (s->temperature == 0.0) {
        *id = argmax(l, V);
        return GPTQ_OK;
    }
    if (!g->seeded) {
        uint64_t x = s->seed;
        for (int i = 0; i < 4; i++) g->rng[i] = splitmix64(&x);
        g->seeded = 1;
    }
    const float temp = (float)s->temperature;
    for (int64_t i = 0; i < V; i++) l[i] = l[i] / temp;
    /* the ids by value, largest first: top-k and top-p cut this list */
    for (int64_t i = 0; i < V; i++) g->order[i] = (int32_t)i;
    g_sort_vals = l;
    qsort(g->order, (size_t)V, sizeof *g->order, by_value_desc);
    int64_t keep = V;
    if (s->top_k > 0 && s->top_k < V) {
        const float kth = l[g->order[s->top_k - 1]];
        keep = s->top_k;
        while (keep < V && l[g->order[keep]] == kth) keep++; /* ties with the k-th stay */
    }
    const double mx = (double)l[g->order[0]];
    double total = 0.0;
    for (int64_t r = 0; r < keep; r++) total += exp((double)l[g->order[r]] - mx);
    if (s->top_p < 1.0) {
        /* keep the ids until the probability summed before one reaches top_p */
        double before = 0.0;
        int64_t r = 0;
        for (; r < keep && (r == 0 || before < s->top_p); r++)
            before += exp((double)l[g->order[r]] - mx) / total;
        keep = r;
        total = 0.0;
        for (r = 0; r < keep; r++) total += exp((double)l[g->order[r]] - mx);
    }
    const double u = uniform(g->rng) * total;
    double acc = 0.0;
    int64_t r = 0;
    for (; r < keep - 1; r++) {
        acc += exp((double)l[g->order[r]] - mx);
        if (u < acc) break;
    }
    *id = g->order[r];
    return GPTQ_OK;
}

/* ------------------------------------------------------------------ */
/* text                                                                */
/* ------------------------------------------------------------------ */

static int ends_with_replacement(const char *s, size_t n)
{
    return n >= 3 && (unsigned char)s[n - 3] == 0xEF && (unsigned char)s[n - 2] == 0xBF &&
           (unsigned char)s[n - 1] == 0xBD;
}

static int set_out(gptq_generator *g, const char *s, size_t n, const char **text, size_t *len)
{
    free(g->out);
    g->out = gptq_malloc(n + 1, "streamed text");
    if (!g->out) return GPTQ_ERR_NOMEM;
    memcpy(g->out, s, n);
    g->out[n] = 0;
    if (g->emitted_len + n + 1 > g->emitted_cap) {
        size_t cap = (g->emitted_len + n + 1) * 2;
        char *e = realloc(g->emitted, cap);
        if (!e) return gptq_error(GPTQ_ERR_NOMEM, "out of memory for the streamed text");
        g->emitted = e;
        g->emitted_cap = cap;
    }
    memcpy(g->emitted + g->emitted_len, s, n);
    g->emitted_len += n;
    *text = g->out;
    *len = n;
    return GPTQ_OK;
}

int gptq_generator_text(gptq_generator *g, char **text, size_t *len)
{
    char *all = NULL, *pre = NULL;
    size_t alen = 0, plen = 0;
    *text = NULL;
    int st = decode_ids(g, 0, g->len, &all, &alen);
    if (!st) st = decode_ids(g, 0, g->nprompt, &pre, &plen);
    if (!st) {
        /* past the prompt's text when it is a prefix (it is unless the first
         * generated bytes complete a character of the prompt's last token) */
        const size_t skip = plen <= alen && !memcmp(all, pre, plen) ? plen : 0;
        memmove(all, all + skip, alen - skip + 1);
        *text = all;
        if (len) *len = alen - skip;
        all = NULL;
    }
    free(all);
    free(pre);
    return st;
}

int gptq_generator_stream(gptq_generator *g, int flush, const char **text, size_t *len)
{
    *text = "";
    *len = 0;
    if (g->len == 0) return GPTQ_OK;
    if (flush) {
        char *all = NULL;
        size_t alen = 0;
        GPTQ_TRY(gptq_generator_text(g, &all, &alen));
        int st = GPTQ_OK;
        if (alen > g->emitted_len && !memcmp(all, g->emitted, g->emitted_len))
            st = set_out(g, all + g->emitted_len, alen - g->emitted_len, text, len);
        free(all);
        return st;
    }
    /* tokenizers' DecodeStream step: the window's text, once it is longer
     * than the prefix and does not end in an incomplete character */
    char *s = NULL;
    size_t n = 0;
    GPTQ_TRY(decode_ids(g, g->win0, g->len, &s, &n));
    int st = GPTQ_OK;
    if (n > g->prefix_len && !ends_with_replacement(s, n) &&
        !memcmp(s, g->prefix, g->prefix_len)) {
        st = set_out(g, s + g->prefix_len, n - g->prefix_len, text, len);
        /* the new window starts at the tokens just emitted */
        g->win0 = g->win_new;
        g->win_new = g->len;
        free(g->prefix);
        g->prefix = NULL;
        if (!st) st = decode_ids(g, g->win0, g->len, &g->prefix, &g->prefix_len);
    }
    free(s);
    return st;
}

/* ------------------------------------------------------------------ */
/* what runs                                                           */
/* ------------------------------------------------------------------ */

void gptq_generator_stats_init_sized(gptq_generator_stats *s, size_t size)
{
    const gptq_generator_stats d = {.struct_size = sizeof d};
    gptq_versioned_init(s, size, &d, sizeof d);
}

void(gptq_generator_stats_init)(gptq_generator_stats *s)
{
    gptq_generator_stats_init_sized(s, sizeof *s);
}

int gptq_generator_get_stats(const gptq_generator *g, gptq_generator_stats *s)
{
    if (!g || !s || s->struct_size < STATS_V1_SIZE)
        return gptq_error(GPTQ_ERR_INVALID,
                          "gptq_generator_stats: struct_size %zu, the first version has %zu "
                          "(call gptq_generator_stats_init)",
                          s ? s->struct_size : 0, (size_t)STATS_V1_SIZE);
    gptq_model_kv_stats(g->m, &s->fast_linears, &s->f32_linears, &s->fast_impl,
                        &s->weight_bytes, &s->kv_bytes);
    if (HAS_FIELD(s, gptq_generator_stats, joined_linears))
        s->joined_linears = gptq_model_kv_joined(g->m);
    return GPTQ_OK;
}
