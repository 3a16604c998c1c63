/*
 * calib.c — calibration windows for `gptq quantize` (calib.h): read a
 * plain-text or JSON-lines file, encode it once, draw window starts with
 * splitmix64 from the seed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../internal.h"
#include "calib.h"

void gptq_calib_options_default(gptq_calib_options *o)
{
    o->nsamples = 128;
    o->seqlen = 2048;
    o->seed = 0;
    o->max_bytes = 0;
}

/* ------------------------------------------------------------------ */
/* Random numbers                                                      */
/* ------------------------------------------------------------------ */

uint64_t gptq_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t gptq_rand_below(uint64_t *state, uint64_t bound)
{
    if (bound <= 1) return 0;
    /* Accept only draws below the largest multiple of bound that fits in
     * 2^64, so every residue is equally likely. */
    const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t x;
    do x = gptq_splitmix64(state);
    while (x >= limit);
    return x % bound;
}

/* ------------------------------------------------------------------ */
/* Reading                                                             */
/* ------------------------------------------------------------------ */

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int read_whole(const char *path, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return gptq_error(GPTQ_ERR_IO, "calibration text %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        fclose(f);
        return gptq_error(GPTQ_ERR_NOMEM, "calibration text %s: out of memory", path);
    }
    for (;;) {
        if (n == cap) {
            char *nb = realloc(buf, 2 * cap + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                return gptq_error(GPTQ_ERR_NOMEM, "calibration text %s: out of memory", path);
            }
            buf = nb;
            cap *= 2;
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (k == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return gptq_error(GPTQ_ERR_IO, "calibration text %s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return GPTQ_OK;
}

/* Join the "text" fields of the JSON lines of raw (n bytes) into a new
 * text, separated by "\n\n". */
static int join_jsonl(const char *path, const char *raw, size_t n, char **out, size_t *len,
                      int64_t *records)
{
    /* A record's text plus its "\n\n" separator is shorter than its line
     * ({"text":""} alone is 11 bytes, and unescaping only shrinks): n + 1
     * bytes hold the result. */
    char *dst = malloc(n + 1);
    if (!dst) return gptq_error(GPTQ_ERR_NOMEM, "calibration text %s: out of memory", path);
    size_t k = 0;
    int64_t nrec = 0, line = 0;
    for (size_t p = 0; p < n;) {
        size_t e = p;
        while (e < n && raw[e] != '\n') e++;
        line++;
        size_t a = p, b = e;
        while (a < b && is_space(raw[a])) a++;
        while (b > a && is_space(raw[b - 1])) b--;
        p = e + 1;
        if (a == b) continue;
        cJSON *obj = cJSON_ParseWithLength(raw + a, b - a);
        const cJSON *t = obj ? cJSON_GetObjectItemCaseSensitive(obj, "text") : NULL;
        if (!obj || !cJSON_IsObject(obj) || !cJSON_IsString(t)) {
            int st = gptq_error(GPTQ_ERR_FORMAT,
                                "calibration file %s, line %lld: %s (JSON lines need one object "
                                "with a string \"text\" per line)",
                                path, (long long)line,
                                !obj ? "not valid JSON"
                                : !cJSON_IsObject(obj) ? "not a JSON object"
                                : !t ? "no \"text\" field" : "\"text\" is not a string");
            cJSON_Delete(obj);
            free(dst);
            return st;
        }
        size_t tl = strlen(t->valuestring);
        if (nrec > 0) {
            memcpy(dst + k, "\n\n", 2);
            k += 2;
        }
        memcpy(dst + k, t->valuestring, tl);
        k += tl;
        nrec++;
        cJSON_Delete(obj);
    }
    dst[k] = '\0';
    *out = dst;
    *len = k;
    *records = nrec;
    return GPTQ_OK;
}

int gptq_calib_read_text(const char *path, size_t max_bytes, char **text, size_t *len, int *jsonl,
                         int64_t *records)
{
    *text = NULL;
    *len = 0;
    *jsonl = 0;
    *records = 0;
    char *raw;
    size_t n;
    int st = read_whole(path, &raw, &n);
    if (st) return st;
    size_t first = 0;
    while (first < n && is_space(raw[first])) first++;
    if (first == n) {
        free(raw);
        return gptq_error(GPTQ_ERR_INVALID, "calibration text %s is empty%s", path,
                          n ? " (only whitespace)" : "");
    }
    if (ends_with(path, ".jsonl") || raw[first] == '{') {
        char *joined = NULL;
        size_t jl = 0;
        int64_t nrec = 0;
        st = join_jsonl(path, raw, n, &joined, &jl, &nrec);
        free(raw);
        if (st) return st;
        if (nrec == 0 || jl == 0) {
            free(joined);
            return gptq_error(GPTQ_ERR_INVALID, "calibration file %s: no text in its JSON lines",
                              path);
        }
        raw = joined;
        n = jl;
        *jsonl = 1;
        *records = nrec;
    }
    if (max_bytes > 0 && n > max_bytes) {
        /* cut back to the start of a UTF-8 character (not a 10xxxxxx byte) */
        size_t cut = max_bytes;
        while (cut > 0 && ((unsigned char)raw[cut] & 0xC0u) == 0x80u) cut--;
        n = cut;
        raw[n] = '\0';
    }
    *text = raw;
    *len = n;
    return GPTQ_OK;
}

/* ------------------------------------------------------------------ */
/* Windows                                                             */
/* ------------------------------------------------------------------ */

int gptq_calib_windows(const int32_t *ids, int64_t n, const gptq_calib_options *o,
                       int32_t *out,    // (nsamples, seqlen)
                       int64_t *starts) // (nsamples) or NULL
{
    const int64_t S = o->seqlen, ns = o->nsamples;
    if (S < 1) return gptq_error(GPTQ_ERR_INVALID, "--seqlen %lld: must be >= 1", (long long)S);
    if (ns < 1)
        return gptq_error(GPTQ_ERR_INVALID, "--nsamples %lld: must be >= 1", (long long)ns);
    if (n < S)
        return gptq_error(GPTQ_ERR_INVALID,
                          "the calibration text has %lld tokens, fewer than one window of "
                          "--seqlen %lld",
                          (long long)n, (long long)S);
    /* The paper code: i = randint(0, n - seqlen - 1), both ends included. */
    const uint64_t nstarts = n > S ? (uint64_t)(n - S) : 1u;
    uint64_t state = o->seed;
    for (int64_t s = 0; s < ns; s++) {
        const int64_t i = (int64_t)gptq_rand_below(&state, nstarts);
        memcpy(out + s * S, ids + i, (size_t)S * sizeof *out);
        if (starts) starts[s] = i;
    }
    return GPTQ_OK;
}

void gptq_calib_free(gptq_calib *c)
{
    if (!c) return;
    free(c->ids);
    free(c->starts);
    memset(c, 0, sizeof *c);
}

int gptq_calib_load(const gptq_tokenizer *tok, const char *path, const gptq_calib_options *o,
                    gptq_calib *out)
{
    memset(out, 0, sizeof *out);
    if (o->seqlen < 1 || o->nsamples < 1)
        return gptq_error(GPTQ_ERR_INVALID, "calibration: --nsamples %lld and --seqlen %lld must "
                          "be >= 1", (long long)o->nsamples, (long long)o->seqlen);
    char *text;
    size_t len;
    int jsonl;
    int64_t records;
    int st = gptq_calib_read_text(path, o->max_bytes, &text, &len, &jsonl, &records);
    if (st) return st;
    int32_t *ids = NULL;
    int64_t n = 0;
    st = gptq_tok_encode(tok, text, len, GPTQ_TOK_NO_SPECIAL, &ids, &n);
    free(text);
    if (st) return gptq_error_prefix(st, "calibration text %s", path);
    out->ids = gptq_malloc((size_t)(o->nsamples * o->seqlen) * sizeof(int32_t), "calibration windows");
    out->starts = gptq_malloc((size_t)o->nsamples * sizeof(int64_t), "calibration windows");
    if (!out->ids || !out->starts) {
        free(ids);
        gptq_calib_free(out);
        return GPTQ_ERR_NOMEM;
    }
    st = gptq_calib_windows(ids, n, o, out->ids, out->starts);
    free(ids);
    if (st) {
        gptq_calib_free(out);
        return gptq_error_prefix(st, "%s", path);
    }
    out->nsamples = o->nsamples;
    out->seqlen = o->seqlen;
    out->text_tokens = n;
    out->text_bytes = len;
    out->jsonl = jsonl;
    out->records = records;
    return GPTQ_OK;
}
