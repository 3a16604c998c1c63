/*
 * calib.c — calibration windows for `gptq quantize` (calib.h): read a
 * plain-text or JSON-lines file, encode it once, draw window starts with
 * splitmix64 from the seed.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../internal.h"
#include "../io/io.h"
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

/* The joined text of a JSON-lines file, built line by line. */
typedef struct jl_text {
    char *p;
    size_t n, cap;
    int64_t records, line;
} jl_text;

/* One line raw[0..n) (without its '\n'): append its "text", after "\n\n"
 * when it is not the first record; blank lines are skipped. */
static int jl_add_line(const char *path, jl_text *t, const char *raw, size_t n)
{
    t->line++;
    size_t a = 0, b = n;
    while (a < b && is_space(raw[a])) a++;
    while (b > a && is_space(raw[b - 1])) b--;
    if (a == b) return GPTQ_OK;
    cJSON *obj = cJSON_ParseWithLength(raw + a, b - a);
    const cJSON *txt = obj ? cJSON_GetObjectItemCaseSensitive(obj, "text") : NULL;
    if (!obj || !cJSON_IsObject(obj) || !cJSON_IsString(txt)) {
        int st = gptq_error(GPTQ_ERR_FORMAT,
                            "calibration file %s, line %lld: %s (JSON lines need one object "
                            "with a string \"text\" per line)",
                            path, (long long)t->line,
                            !obj ? "not valid JSON"
                            : !cJSON_IsObject(obj) ? "not a JSON object"
                            : !txt ? "no \"text\" field" : "\"text\" is not a string");
        cJSON_Delete(obj);
        return st;
    }
    char what[4200];
    snprintf(what, sizeof what, "calibration file %s, line %lld", path, (long long)t->line);
    int st = gptq_json_check_unique(obj, what);
    if (st) {
        cJSON_Delete(obj);
        return st;
    }
    /* A record's text plus its "\n\n" separator is shorter than its line
     * ({"text":""} alone is 11 bytes, and unescaping only shrinks). */
    size_t tl = strlen(txt->valuestring);
    if (t->n + tl + 3 > t->cap) {
        size_t ncap = t->cap ? t->cap : 1 << 16;
        while (ncap < t->n + tl + 3) ncap *= 2;
        char *np = realloc(t->p, ncap);
        if (!np) {
            cJSON_Delete(obj);
            return gptq_error(GPTQ_ERR_NOMEM, "calibration text %s: out of memory", path);
        }
        t->p = np;
        t->cap = ncap;
    }
    if (t->records > 0) {
        memcpy(t->p + t->n, "\n\n", 2);
        t->n += 2;
    }
    memcpy(t->p + t->n, txt->valuestring, tl);
    t->n += tl;
    t->p[t->n] = '\0';
    t->records++;
    cJSON_Delete(obj);
    return GPTQ_OK;
}

/* Read JSON lines from fd, the first `have` bytes of which are already in
 * buf (cap bytes + 1), line by line: only the current line and the joined
 * text are held, and with max_bytes > 0 the reading stops once the joined
 * text is longer than max_bytes (what the cut needs). A line longer than
 * GPTQ_JSON_MAX_BYTES is refused: no JSON file of ours may be larger. */
static int read_jsonl(const char *path, int fd, char *buf, size_t cap, size_t have,
                      size_t max_bytes, jl_text *t)
{
    size_t n = have;
    int eof = 0, st = GPTQ_OK;
    while (!st) {
        /* the complete lines in buf[0..n) */
        size_t p = 0;
        for (const char *nl; !st && (nl = memchr(buf + p, '\n', n - p));) {
            st = jl_add_line(path, t, buf + p, (size_t)(nl - buf) - p);
            p = (size_t)(nl - buf) + 1;
            if (max_bytes > 0 && t->n > max_bytes) break;
        }
        if (st || (max_bytes > 0 && t->n > max_bytes)) break;
        memmove(buf, buf + p, n - p);
        n -= p;
        if (eof) {
            if (n > 0) st = jl_add_line(path, t, buf, n);
            break;
        }
        if (n == cap) {
            if (cap >= GPTQ_JSON_MAX_BYTES) {
                st = gptq_error(GPTQ_ERR_FORMAT,
                                "calibration file %s, line %lld: longer than %zu MiB", path,
                                (long long)t->line + 1, GPTQ_JSON_MAX_BYTES >> 20);
                break;
            }
            char *nb = realloc(buf, 2 * cap + 1);
            if (!nb) {
                st = gptq_error(GPTQ_ERR_NOMEM, "calibration text %s: out of memory", path);
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t k = read(fd, buf + n, cap - n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
            st = gptq_error(GPTQ_ERR_IO, "calibration text %s: read failed: %s", path,
                            strerror(errno));
            break;
        }
        if (k == 0) eof = 1;
        n += (size_t)k;
    }
    free(buf);
    return st;
}

int gptq_calib_read_text(const char *path, size_t max_bytes, char **text, size_t *len, int *jsonl,
                         int64_t *records)
{
    *text = NULL;
    *len = 0;
    *jsonl = 0;
    *records = 0;
    int fd;
    uint64_t size;
    int st = gptq_open_input(path, &fd, &size);
    if (st) return gptq_error_prefix(st, "calibration text");

    /* Plain text is read up to max_bytes + 1 bytes (the byte after the cut
     * says whether the cut splits a character); nothing more is needed.
     * JSON lines are told apart by the name or by the first non-space
     * byte, which the first block shows. */
    const size_t limit = max_bytes > 0 && max_bytes < SIZE_MAX ? max_bytes + 1 : SIZE_MAX;
    const size_t block = 4096;
    char *raw = gptq_malloc(block + 1, "calibration text");
    if (!raw) {
        close(fd);
        return gptq_error_prefix(GPTQ_ERR_NOMEM, "%s", path);
    }
    size_t n = 0;
    const size_t want = ends_with(path, ".jsonl") || limit > block ? block : limit;
    while (n < want) {
        ssize_t k = read(fd, raw + n, want - n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
            int e = errno;
            free(raw);
            close(fd);
            return gptq_error(GPTQ_ERR_IO, "calibration text %s: read failed: %s", path,
                              strerror(e));
        }
        if (k == 0) break;
        n += (size_t)k;
    }
    size_t first = 0;
    while (first < n && is_space(raw[first])) first++;
    if (ends_with(path, ".jsonl") || (first < n && raw[first] == '{')) {
        jl_text t = {0};
        st = read_jsonl(path, fd, raw, block, n, max_bytes, &t); /* frees raw */
        close(fd);
        if (!st && (t.records == 0 || t.n == 0))
            st = gptq_error(GPTQ_ERR_INVALID, "calibration file %s: no text in its JSON lines",
                            path);
        if (st) {
            free(t.p);
            return st;
        }
        raw = t.p;
        n = t.n;
        *jsonl = 1;
        *records = t.records;
    } else {
        if (n == want && n < limit) {
            /* the rest of the plain text, up to the limit */
            char *rest = NULL;
            size_t nr = 0;
            st = gptq_read_fd(fd, path, limit - n, size > n ? size - n : 0, &rest, &nr, NULL);
            if (!st) {
                char *all = realloc(raw, n + nr + 1);
                if (!all) {
                    st = gptq_error(GPTQ_ERR_NOMEM, "calibration text %s: out of memory", path);
                } else {
                    raw = all;
                    memcpy(raw + n, rest, nr + 1);
                    n += nr;
                }
            }
            free(rest);
        }
        close(fd);
        if (st) {
            free(raw);
            return st;
        }
        raw[n] = '\0';
        while (first < n && is_space(raw[first])) first++;
        if (first == n) {
            free(raw);
            return gptq_error(GPTQ_ERR_INVALID, "calibration text %s is empty%s", path,
                              n == 0 ? "" : n < limit ? " (only whitespace)"
                                                      : " (only whitespace in the bytes read)");
        }
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
