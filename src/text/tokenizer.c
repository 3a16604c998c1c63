/*
 * tokenizer.c — BPE tokenizer read from a Hugging Face tokenizer.json: the
 * byte-level family (GPT-2, OPT, Qwen, Llama-3) and the SentencePiece-style
 * family (Llama-2, Mistral, stories-260k). See tokenizer.h for the API and
 * what is supported.
 *
 * The pipeline is the `tokenizers` library's, step by step (file names are
 * those of tokenizers/src, read for the rules, not copied):
 *   1. added tokens (tokenizer/added_vocabulary.rs): the non-normalized
 *      added tokens are cut out of the raw text first (leftmost-longest
 *      match, then single_word / lstrip / rstrip); each remaining piece is
 *      normalized, and the normalized added tokens (their content run
 *      through the same normalizer) are cut out of it.
 *   2. normalizers (Prepend, Replace) on each piece.
 *   3. pre-tokenizers (ByteLevel, Split, Metaspace, Digits, Sequence) split
 *      pieces into words; ByteLevel maps every byte to a printable
 *      character (GPT-2's table). Empty pieces are dropped at every step.
 *   4. the BPE model on each word (models/bpe/word.rs): characters (or
 *      <0xXX> byte tokens, or a fused <unk>) become symbols; the adjacent
 *      pair of lowest merge rank is merged first, leftmost among equal
 *      ranks, with a min-heap of (rank, position) whose stale entries are
 *      skipped when popped. Results are cached per word for one encode call.
 *   5. the post-processor adds its fixed prefix/suffix ids (BOS, ...).
 * Regexes (the GPT-2 split and Split patterns) run on PCRE2 in UTF + UCP
 * mode (the library uses Oniguruma; \s, \p{L}, \p{N} agree on the goldens).
 *
 * Strings are UTF-8 byte ranges (pointer + length) everywhere; nothing
 * relies on NUL termination except JSON keys, which cJSON gives us.
 */
#define _POSIX_C_SOURCE 200809L
#define PCRE2_CODE_UNIT_WIDTH 8

#include <limits.h>
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <utf8proc.h>

#include "../internal.h"
#include "../io/io.h"
#include "tokenizer.h"

/* Deepest pre-tokenizer chain we accept (each step needs its own scratch). */
#define MAX_PRE 8
/* Ids index dense tables (id -> token): no real vocabulary comes near
 * this (the largest have ~2^18 tokens), and a tiny file must not make the
 * loader allocate gigabytes. */
#define MAX_ID (GPTQ_TOK_MAX_ID + 1)
/* Words up to this many bytes are cached during one encode call. */
#define CACHE_MAX_WORD 256

static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ================================================================== */
/* Growable buffers                                                    */
/* ================================================================== */

typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

typedef struct {
    int32_t *p;
    size_t n, cap;
} ivec;

/* A byte range [a, b) of some string, and whether a pattern matched it. */
typedef struct {
    size_t a, b;
    int m;
} seg;

typedef struct {
    seg *p;
    size_t n, cap;
} segvec;

static int grow(void **p, size_t *cap, size_t need, size_t elem, const char *what)
{
    if (need <= *cap) return GPTQ_OK;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / elem)
            return gptq_error(GPTQ_ERR_NOMEM, "tokenizer: %s too large", what);
        ncap *= 2;
    }
    void *np = realloc(*p, ncap * elem);
    if (!np)
        return gptq_error(GPTQ_ERR_NOMEM, "tokenizer: out of memory for %s (%zu bytes)", what,
                          ncap * elem);
    *p = np;
    *cap = ncap;
    return GPTQ_OK;
}

static int sbuf_put(sbuf *b, const void *s, size_t n)
{
    GPTQ_TRY(grow((void **)&b->p, &b->cap, b->n + n + 1, 1, "text buffer"));
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return GPTQ_OK;
}

static int ivec_put(ivec *v, const int32_t *x, size_t n)
{
    GPTQ_TRY(grow((void **)&v->p, &v->cap, v->n + n, sizeof *v->p, "id buffer"));
    if (n) memcpy(v->p + v->n, x, n * sizeof *x);
    v->n += n;
    return GPTQ_OK;
}

static int ivec_push(ivec *v, int32_t x) { return ivec_put(v, &x, 1); }

static int seg_push(segvec *v, size_t a, size_t b, int m)
{
    GPTQ_TRY(grow((void **)&v->p, &v->cap, v->n + 1, sizeof *v->p, "split list"));
    v->p[v->n++] = (seg){a, b, m};
    return GPTQ_OK;
}

/* ================================================================== */
/* UTF-8                                                               */
/* ================================================================== */

/* Length of a valid UTF-8 sequence from its lead byte. */
static size_t u8len(unsigned char c) { return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }

/* Decode one character of valid UTF-8. */
static uint32_t u8dec(const char *s, size_t *len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t k = u8len(u[0]);
    *len = k;
    if (k == 1) return u[0];
    if (k == 2) return ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
    if (k == 3) return ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F);
    return ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) |
           ((uint32_t)(u[2] & 0x3F) << 6) | (u[3] & 0x3F);
}

static size_t u8enc(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* How many bytes at s[0..n) form the longest valid prefix of one UTF-8
 * character, and whether it is complete: returns the full length (1-4) of
 * a valid character, or -(valid prefix length) (at least -1) for an
 * invalid or truncated one. The ranges are Unicode's (Table 3-7): no
 * overlongs, no surrogates, nothing above U+10FFFF. */
static int u8check(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    int need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c == 0xE0) need = 2, lo = 0xA0;
    else if (c >= 0xE1 && c <= 0xEC) need = 2;
    else if (c == 0xED) need = 2, hi = 0x9F;
    else if (c >= 0xEE && c <= 0xEF) need = 2;
    else if (c == 0xF0) need = 3, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) need = 3;
    else if (c == 0xF4) need = 3, hi = 0x8F;
    else return -1;
    int k = 1;
    for (; k <= need; k++) {
        if ((size_t)k >= n) return -k;
        unsigned char d = s[k];
        if (k == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xBF)) return -k;
    }
    return need + 1;
}

/* Offset of the first invalid byte, or n when s is valid UTF-8. */
static size_t u8validate(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        int k = u8check(u + i, n - i);
        if (k < 0) return i;
        i += (size_t)k;
    }
    return n;
}

/* Append s to b with every invalid sequence replaced by U+FFFD, one per
 * maximal invalid subpart (Rust's String::from_utf8_lossy, which the
 * library applies to ByteLevel decoder output). */
static int put_lossy(sbuf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0;
    while (i < n) {
        int k = u[i] < 0x80 ? 1 : u8check(u + i, n - i);
        if (k > 0) {
            i += (size_t)k;
            continue;
        }
        GPTQ_TRY(sbuf_put(b, s + run, i - run));
        GPTQ_TRY(sbuf_put(b, "\xEF\xBF\xBD", 3));
        i += (size_t)(-k);
        run = i;
    }
    return sbuf_put(b, s + run, n - run);
}

/* Unicode White_Space (what Rust's \s and char::is_whitespace match). */
static int is_space_cp(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* Start of the character that ends at s[end) (end > 0). */
static size_t u8prev(const char *s, size_t end)
{
    size_t i = end - 1;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    return i;
}

/* ================================================================== */
/* Hash maps: bytes -> int32 and (int32, int32) -> (rank, id)          */
/* ================================================================== */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

/* Keys live in one arena; slots hold entry index + 1 (0 = empty). */
typedef struct {
    sbuf arena;
    size_t *off;
    uint32_t *len;
    int32_t *val;
    size_t n, cap;
    uint32_t *slot;
    size_t mask;
} strmap;

static void strmap_free(strmap *m)
{
    free(m->arena.p);
    free(m->off);
    free(m->len);
    free(m->val);
    free(m->slot);
    memset(m, 0, sizeof *m);
}

static int strmap_find(const strmap *m, const char *s, size_t n)
{
    if (!m->slot) return -1;
    size_t i = (size_t)hash_bytes(s, n) & m->mask;
    for (;;) {
        uint32_t e = m->slot[i];
        if (!e) return -1;
        e--;
        if (m->len[e] == n && memcmp(m->arena.p + m->off[e], s, n) == 0) return (int)e;
        i = (i + 1) & m->mask;
    }
}

static int32_t strmap_get(const strmap *m, const char *s, size_t n)
{
    int e = strmap_find(m, s, n);
    return e < 0 ? -1 : m->val[e];
}

static int strmap_rehash(strmap *m, size_t nslots)
{
    uint32_t *slot = calloc(nslots, sizeof *slot);
    if (!slot) return gptq_error(GPTQ_ERR_NOMEM, "tokenizer: out of memory for a hash table");
    size_t mask = nslots - 1;
    for (size_t e = 0; e < m->n; e++) {
        size_t i = (size_t)hash_bytes(m->arena.p + m->off[e], m->len[e]) & mask;
        while (slot[i]) i = (i + 1) & mask;
        slot[i] = (uint32_t)(e + 1);
    }
    free(m->slot);
    m->slot = slot;
    m->mask = mask;
    return GPTQ_OK;
}

/* Insert, or overwrite the value of an existing key; *entry gets its index. */
static int strmap_put(strmap *m, const char *s, size_t n, int32_t val, size_t *entry)
{
    if (n > UINT32_MAX) return gptq_error(GPTQ_ERR_INVALID, "tokenizer: key too long");
    int e = strmap_find(m, s, n);
    if (e >= 0) {
        m->val[e] = val;
        if (entry) *entry = (size_t)e;
        return GPTQ_OK;
    }
    if (m->n >= UINT32_MAX - 1) return gptq_error(GPTQ_ERR_INVALID, "tokenizer: too many keys");
    if (!m->slot || 2 * (m->n + 1) > m->mask + 1) GPTQ_TRY(strmap_rehash(m, m->slot ? 2 * (m->mask + 1) : 64));
    size_t cap = m->cap;
    GPTQ_TRY(grow((void **)&m->off, &cap, m->n + 1, sizeof *m->off, "hash keys"));
    cap = m->cap;
    GPTQ_TRY(grow((void **)&m->len, &cap, m->n + 1, sizeof *m->len, "hash keys"));
    cap = m->cap;
    GPTQ_TRY(grow((void **)&m->val, &cap, m->n + 1, sizeof *m->val, "hash values"));
    m->cap = cap;
    size_t off = m->arena.n;
    GPTQ_TRY(sbuf_put(&m->arena, s, n));
    m->off[m->n] = off;
    m->len[m->n] = (uint32_t)n;
    m->val[m->n] = val;
    size_t i = (size_t)hash_bytes(s, n) & m->mask;
    while (m->slot[i]) i = (i + 1) & m->mask;
    m->slot[i] = (uint32_t)(m->n + 1);
    if (entry) *entry = m->n;
    m->n++;
    return GPTQ_OK;
}

typedef struct {
    uint64_t *key; /* (a << 32) | b; UINT64_MAX = empty */
    uint32_t *rank;
    int32_t *out;
    size_t mask, n;
} pairmap;

static uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

static size_t pair_slot(uint64_t k, size_t mask) { return (size_t)((k * 0x9E3779B97F4A7C15ull) >> 20) & mask; }

static int pairmap_init(pairmap *m, size_t expected)
{
    size_t nslots = 64;
    while (nslots < 2 * expected + 2) nslots *= 2;
    m->key = malloc(nslots * sizeof *m->key);
    m->rank = malloc(nslots * sizeof *m->rank);
    m->out = malloc(nslots * sizeof *m->out);
    if (!m->key || !m->rank || !m->out)
        return gptq_error(GPTQ_ERR_NOMEM, "tokenizer: out of memory for the merge table");
    memset(m->key, 0xFF, nslots * sizeof *m->key);
    m->mask = nslots - 1;
    m->n = 0;
    return GPTQ_OK;
}

/* Later entries overwrite earlier ones, as the library's HashMap does. */
static void pairmap_put(pairmap *m, int32_t a, int32_t b, uint32_t rank, int32_t out)
{
    uint64_t k = pair_key(a, b);
    size_t i = pair_slot(k, m->mask);
    while (m->key[i] != UINT64_MAX && m->key[i] != k) i = (i + 1) & m->mask;
    if (m->key[i] == UINT64_MAX) m->n++;
    m->key[i] = k;
    m->rank[i] = rank;
    m->out[i] = out;
}

/* Slot of pair (a, b), or -1. */
static long pairmap_find(const pairmap *m, int32_t a, int32_t b)
{
    uint64_t k = pair_key(a, b);
    size_t i = pair_slot(k, m->mask);
    for (;;) {
        if (m->key[i] == k) return (long)i;
        if (m->key[i] == UINT64_MAX) return -1;
        i = (i + 1) & m->mask;
    }
}

/* ================================================================== */
/* Regexes                                                             */
/* ================================================================== */

static int regex_compile(pcre2_code **out, const char *pat, size_t n, uint32_t extra_opts,
                         const char *file, const char *what)
{
    int err = 0;
    PCRE2_SIZE erroff = 0;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, n, PCRE2_UTF | PCRE2_UCP | extra_opts, &err,
                                   &erroff, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return gptq_error(GPTQ_ERR_UNSUPPORTED, "%s: %s regex /%.*s/ does not compile at offset %zu: %s",
                          file, what, (int)(n > 200 ? 200 : n), pat, (size_t)erroff, (char *)msg);
    }
    /* JIT is only a speed-up: without it (or if it fails) matching still works. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    *out = re;
    return GPTQ_OK;
}

/* Next match of re in s[0..n) at or after `start`: 1 (and [*a, *b)), 0 if none.
 * The subject was validated once up front, hence NO_UTF_CHECK (without it
 * PCRE2 would rescan the whole subject on every call). */
static int regex_next(const pcre2_code *re, pcre2_match_data *md, const char *s, size_t n,
                      size_t start, size_t *a, size_t *b)
{
    int rc = pcre2_match(re, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK, md, NULL);
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH)
        /* A JIT stack overflow on a pathological input: retry interpreted. */
        rc = pcre2_match(re, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        return gptq_error(GPTQ_ERR_INVALID, "tokenizer: regex match failed at byte %zu: %s", start,
                          (char *)msg);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    *a = ov[0];
    *b = ov[1];
    return 1;
}

/* Cut s[0..n) into segments covering it: matches of re (m = 1) and the
 * gaps between them (m = 0). Empty matches are skipped. */
static int regex_segments(const pcre2_code *re, pcre2_match_data *md, const char *s, size_t n,
                          segvec *out)
{
    out->n = 0;
    size_t pos = 0, prev = 0;
    while (pos <= n) {
        size_t a, b;
        int rc = regex_next(re, md, s, n, pos, &a, &b);
        if (rc < 0) return rc;
        if (rc == 0) break;
        if (a == b) { /* empty match: step over one character */
            if (a >= n) break;
            pos = a + u8len((unsigned char)s[a]);
            continue;
        }
        if (a > prev) GPTQ_TRY(seg_push(out, prev, a, 0));
        GPTQ_TRY(seg_push(out, a, b, 1));
        prev = pos = b;
    }
    if (prev < n) GPTQ_TRY(seg_push(out, prev, n, 0));
    return GPTQ_OK;
}

/* Literal-string version of regex_segments. */
static int literal_segments(const char *pat, size_t plen, const char *s, size_t n, segvec *out)
{
    out->n = 0;
    size_t prev = 0, i = 0;
    while (plen && i + plen <= n) {
        const char *hit = memchr(s + i, pat[0], n - i - plen + 1);
        if (!hit) break;
        i = (size_t)(hit - s);
        if (memcmp(s + i, pat, plen) != 0) {
            i++;
            continue;
        }
        if (i > prev) GPTQ_TRY(seg_push(out, prev, i, 0));
        GPTQ_TRY(seg_push(out, i, i + plen, 1));
        prev = i = i + plen;
    }
    if (prev < n) GPTQ_TRY(seg_push(out, prev, n, 0));
    return GPTQ_OK;
}

enum { B_REMOVED, B_ISOLATED, B_MERGED_PREV, B_MERGED_NEXT, B_CONTIGUOUS };

/* Apply a split behaviour (tokenizer/normalizer.rs, SplitDelimiterBehavior)
 * to segments in place; the result holds the non-empty pieces. */
static void apply_behavior(segvec *v, int behavior, int invert)
{
    size_t k = 0;
    if (invert)
        for (size_t i = 0; i < v->n; i++) v->p[i].m = !v->p[i].m;
    switch (behavior) {
    case B_REMOVED:
        for (size_t i = 0; i < v->n; i++)
            if (!v->p[i].m) v->p[k++] = v->p[i];
        break;
    case B_ISOLATED:
        k = v->n;
        break;
    case B_MERGED_PREV: {
        int prev_match = 0;
        for (size_t i = 0; i < v->n; i++) {
            seg s = v->p[i];
            if (s.m && !prev_match && k > 0) v->p[k - 1].b = s.b;
            else v->p[k++] = s;
            prev_match = s.m;
        }
        break;
    }
    case B_MERGED_NEXT: {
        /* Walk backwards: a match joins the piece after it. Pieces are
         * written from the end of the array toward its front. */
        int prev_match = 0;
        size_t w = v->n;
        for (size_t i = v->n; i-- > 0;) {
            seg s = v->p[i];
            if (s.m && !prev_match && w < v->n) v->p[w].a = s.a;
            else v->p[--w] = s;
            prev_match = s.m;
        }
        k = v->n - w;
        memmove(v->p, v->p + w, k * sizeof *v->p);
        break;
    }
    case B_CONTIGUOUS: {
        int prev_match = 0;
        for (size_t i = 0; i < v->n; i++) {
            seg s = v->p[i];
            if (s.m == prev_match && k > 0) v->p[k - 1].b = s.b;
            else v->p[k++] = s;
            prev_match = s.m;
        }
        break;
    }
    }
    size_t j = 0;
    for (size_t i = 0; i < k; i++)
        if (v->p[i].b > v->p[i].a) v->p[j++] = v->p[i];
    v->n = j;
}

/* ================================================================== */
/* The tokenizer                                                       */
/* ================================================================== */

typedef struct {
    char *content; /* as written in added_tokens */
    size_t len;
    char *pat; /* what is matched: content, normalized when `normalized` */
    size_t plen;
    int32_t id;
    int special, lstrip, rstrip, single_word, normalized;
} added_tok;

/* Added tokens to match, bucketed by first byte, longest first. */
typedef struct {
    size_t start[257];
    int32_t *list; /* indices into tok->added */
} added_set;

enum { NORM_PREPEND, NORM_REPLACE, NORM_UNICODE };
typedef struct {
    int type;
    char *a; /* Prepend: the prefix; Replace: the literal pattern (re NULL) */
    size_t alen;
    char *b; /* Replace: the content */
    size_t blen;
    pcre2_code *re; /* Replace with a Regex pattern */
    int uflags;     /* NFC/NFKC/NFD/NFKD: utf8proc options */
} norm_step;

enum { PRE_BYTELEVEL, PRE_SPLIT, PRE_METASPACE };
enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER };
typedef struct {
    int type;
    int add_prefix_space, use_regex; /* ByteLevel */
    pcre2_code *re;                  /* Split (and Digits, as a Split) */
    char *lit;                       /* Split with a String pattern */
    size_t lit_len;
    int behavior, invert;
    char rep[8]; /* Metaspace replacement, UTF-8 */
    size_t rep_len;
    int prepend, split;
} pre_step;

enum { DEC_BYTELEVEL, DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP, DEC_METASPACE };
typedef struct {
    int type;
    char *a; /* Replace pattern; Strip / Metaspace: the character */
    size_t alen;
    char *b; /* Replace content */
    size_t blen;
    int start, stop; /* Strip */
    int prepend;     /* Metaspace */
} dec_step;

struct gptq_tokenizer {
    char file[512]; /* tokenizer.json path, for messages */

    /* BPE model */
    strmap vocab;
    pairmap merges;
    int32_t unk_id; /* -1: no unk_token */
    int fuse_unk, byte_fallback, ignore_merges;
    int32_t byte_id[256]; /* id of <0xXX>, -1 if absent */
    char *prefix, *suffix; /* continuing_subword_prefix, end_of_word_suffix */
    size_t prefix_len, suffix_len;

    added_tok *added;
    size_t nadded;
    added_set raw_set, norm_set;
    pcre2_code *word_re; /* one "word" character, for single_word */

    norm_step *norm;
    size_t nnorm;
    pre_step pre[MAX_PRE];
    size_t npre;
    pcre2_code *gpt2_re;

    ivec post_pre, post_suf; /* ids the post-processor puts around the text's */

    dec_step *dec;
    size_t ndec;
    int has_decoder;

    int32_t vocab_size;
    int32_t *model_entry; /* [vocab_size] vocab entry of each id, -1 */
    int32_t *added_of;    /* [vocab_size] index into added, -1 */

    /* GPT-2's byte <-> character table, UTF-8 encoded. */
    char bl_enc[256][2];
    unsigned char bl_len[256];
    int16_t bl_dec[324]; /* code point -> byte, -1 */

    int32_t bos_id, eos_id;
    int cfg_add_bos, cfg_add_eos;
};

static void build_byte_table(gptq_tokenizer *t)
{
    /* Printable bytes map to themselves; the others, in byte order, to
     * U+0100, U+0101, ... (GPT-2's bytes_to_unicode). */
    int n = 0;
    for (int i = 0; i < 324; i++) t->bl_dec[i] = -1;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        uint32_t cp = keep ? (uint32_t)b : (uint32_t)(256 + n++);
        char tmp[4];
        t->bl_len[b] = (unsigned char)u8enc(cp, tmp);
        memcpy(t->bl_enc[b], tmp, t->bl_len[b]);
        t->bl_dec[cp] = (int16_t)b;
    }
}

/* ================================================================== */
/* Loading tokenizer.json                                              */
/* ================================================================== */

static int bad(const gptq_tokenizer *t, const char *fmt, const char *arg)
{
    return gptq_error(GPTQ_ERR_FORMAT, "%s: %s%s", t->file, fmt, arg ? arg : "");
}

static char *dup_bytes(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A boolean member, `def` when absent or null; -1 (error set) on another type. */
static int jbool(const gptq_tokenizer *t, const cJSON *o, const char *key, int def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return def;
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    gptq_error(GPTQ_ERR_FORMAT, "%s: \"%s\" must be true or false", t->file, key);
    return -1;
}

static const char *jtype(const cJSON *o)
{
    const char *s = jstr(o, "type");
    return s ? s : "(no type)";
}

/* A {"String": "..."} or {"Regex": "..."} pattern. */
static int read_pattern(gptq_tokenizer *t, const cJSON *o, const char *what, char **lit,
                        size_t *lit_len, pcre2_code **re)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "pattern");
    const char *s;
    if ((s = jstr(p, "String"))) {
        if (!*s) return bad(t, what, ": empty String pattern");
        *lit_len = strlen(s);
        *lit = dup_bytes(s, *lit_len);
        if (!*lit) return gptq_error(GPTQ_ERR_NOMEM, "%s: out of memory", t->file);
        return GPTQ_OK;
    }
    if ((s = jstr(p, "Regex"))) return regex_compile(re, s, strlen(s), 0, t->file, what);
    return gptq_error(GPTQ_ERR_FORMAT, "%s: %s needs a pattern {\"String\": ...} or {\"Regex\": ...}",
                      t->file, what);
}

static int read_model(gptq_tokenizer *t, const cJSON *model)
{
    if (!cJSON_IsObject(model)) return bad(t, "no \"model\" object", NULL);
    const char *type = jstr(model, "type");
    if (!type && cJSON_GetObjectItemCaseSensitive(model, "merges")) type = "BPE";
    if (!type || strcmp(type, "BPE") != 0)
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: tokenizer model type \"%s\" is not supported (only BPE)", t->file,
                          type ? type : "(none)");
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0)
        return gptq_error(GPTQ_ERR_UNSUPPORTED, "%s: BPE dropout %g is not supported (it is random)",
                          t->file, dropout->valuedouble);

    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(vocab)) return bad(t, "model.vocab must be an object", NULL);
    for (const cJSON *e = vocab->child; e; e = e->next) {
        if (!cJSON_IsNumber(e) || !(e->valuedouble >= 0 && e->valuedouble <= GPTQ_TOK_MAX_ID) ||
            e->valuedouble != floor(e->valuedouble)) {
            char got[64];
            if (cJSON_IsNumber(e)) snprintf(got, sizeof got, "%.17g", e->valuedouble);
            else snprintf(got, sizeof got, "a JSON %s", cJSON_IsString(e) ? "string" : "non-number");
            return gptq_error(GPTQ_ERR_FORMAT,
                              "%s: model.vocab[\"%s\"] = %s: a token id must be an integer in "
                              "[0, %d]",
                              t->file, e->string, got, GPTQ_TOK_MAX_ID);
        }
        GPTQ_TRY(strmap_put(&t->vocab, e->string, strlen(e->string), (int32_t)e->valuedouble, NULL));
    }

    const char *s;
    if ((s = jstr(model, "continuing_subword_prefix")) && *s) {
        t->prefix_len = strlen(s);
        if (!(t->prefix = dup_bytes(s, t->prefix_len))) return gptq_error(GPTQ_ERR_NOMEM, "out of memory");
    }
    if ((s = jstr(model, "end_of_word_suffix")) && *s) {
        t->suffix_len = strlen(s);
        if (!(t->suffix = dup_bytes(s, t->suffix_len))) return gptq_error(GPTQ_ERR_NOMEM, "out of memory");
    }
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (merges && !cJSON_IsArray(merges)) return bad(t, "model.merges must be an array", NULL);
    GPTQ_TRY(pairmap_init(&t->merges, merges ? (size_t)cJSON_GetArraySize(merges) : 0));
    sbuf cat = {0};
    uint32_t rank = 0;
    int rc = GPTQ_OK;
    for (const cJSON *m = merges ? merges->child : NULL; m; m = m->next, rank++) {
        const char *a, *b;
        size_t alen, blen;
        if (cJSON_IsString(m)) { /* "a b" */
            const char *sp = strchr(m->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                rc = gptq_error(GPTQ_ERR_FORMAT, "%s: merge %u \"%s\" is not two tokens split by one space",
                                t->file, rank, m->valuestring);
                break;
            }
            a = m->valuestring;
            alen = (size_t)(sp - a);
            b = sp + 1;
            blen = strlen(b);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                   cJSON_IsString(m->child->next)) { /* ["a", "b"] */
            a = m->child->valuestring;
            alen = strlen(a);
            b = m->child->next->valuestring;
            blen = strlen(b);
        } else {
            rc = gptq_error(GPTQ_ERR_FORMAT, "%s: merge %u is neither \"a b\" nor [\"a\", \"b\"]",
                            t->file, rank);
            break;
        }
        int32_t ia = strmap_get(&t->vocab, a, alen), ib = strmap_get(&t->vocab, b, blen);
        /* The merged token is a + b without b's continuing_subword_prefix
         * ("t" + "##h" -> "th"); the library cuts prefix_len bytes off b. */
        if (blen < t->prefix_len) {
            rc = gptq_error(GPTQ_ERR_FORMAT, "%s: merge %u: \"%.*s\" is shorter than the subword prefix",
                            t->file, rank, (int)blen, b);
            break;
        }
        cat.n = 0;
        if ((rc = sbuf_put(&cat, a, alen)) < 0 ||
            (rc = sbuf_put(&cat, b + t->prefix_len, blen - t->prefix_len)) < 0)
            break;
        int32_t io = strmap_get(&t->vocab, cat.p, cat.n);
        if (ia < 0 || ib < 0 || io < 0) {
            rc = gptq_error(GPTQ_ERR_FORMAT, "%s: merge %u (\"%.*s\" \"%.*s\"): \"%s\" is not in the vocabulary",
                            t->file, rank, (int)alen, a, (int)blen, b,
                            ia < 0 ? "first token" : ib < 0 ? "second token" : cat.p);
            break;
        }
        pairmap_put(&t->merges, ia, ib, rank, io);
    }
    free(cat.p);
    GPTQ_TRY(rc);

    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    t->unk_id = -1;
    if (cJSON_IsString(unk)) {
        t->unk_id = strmap_get(&t->vocab, unk->valuestring, strlen(unk->valuestring));
        if (t->unk_id < 0)
            return gptq_error(GPTQ_ERR_FORMAT, "%s: unk_token \"%s\" is not in the vocabulary",
                              t->file, unk->valuestring);
    }
    if ((t->fuse_unk = jbool(t, model, "fuse_unk", 0)) < 0) return GPTQ_ERR_FORMAT;
    if ((t->byte_fallback = jbool(t, model, "byte_fallback", 0)) < 0) return GPTQ_ERR_FORMAT;
    if ((t->ignore_merges = jbool(t, model, "ignore_merges", 0)) < 0) return GPTQ_ERR_FORMAT;
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_id[b] = strmap_get(&t->vocab, name, 6);
    }
    return GPTQ_OK;
}

/* --- normalizers --------------------------------------------------- */

static int add_normalizer(gptq_tokenizer *t, const cJSON *o, size_t *cap)
{
    if (!o || cJSON_IsNull(o)) return GPTQ_OK;
    const char *type = jtype(o);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "normalizers");
        if (!cJSON_IsArray(list)) return bad(t, "normalizer Sequence without \"normalizers\"", NULL);
        for (const cJSON *e = list->child; e; e = e->next) GPTQ_TRY(add_normalizer(t, e, cap));
        return GPTQ_OK;
    }
    GPTQ_TRY(grow((void **)&t->norm, cap, t->nnorm + 1, sizeof *t->norm, "normalizers"));
    norm_step *st = &t->norm[t->nnorm];
    memset(st, 0, sizeof *st);
    if (strcmp(type, "Prepend") == 0) {
        const char *p = jstr(o, "prepend");
        if (!p) return bad(t, "normalizer Prepend without \"prepend\"", NULL);
        st->type = NORM_PREPEND;
        st->alen = strlen(p);
        if (!(st->a = dup_bytes(p, st->alen))) return gptq_error(GPTQ_ERR_NOMEM, "out of memory");
    } else if (strcmp(type, "Replace") == 0) {
        const char *c = jstr(o, "content");
        if (!c) return bad(t, "normalizer Replace without \"content\"", NULL);
        st->type = NORM_REPLACE;
        t->nnorm++; /* owned from here on, freed with the tokenizer */
        GPTQ_TRY(read_pattern(t, o, "normalizer Replace", &st->a, &st->alen, &st->re));
        st->blen = strlen(c);
        if (!(st->b = dup_bytes(c, st->blen))) return gptq_error(GPTQ_ERR_NOMEM, "out of memory");
        return GPTQ_OK;
    } else if (strcmp(type, "NFC") == 0 || strcmp(type, "NFKC") == 0 ||
               strcmp(type, "NFD") == 0 || strcmp(type, "NFKD") == 0) {
        /* Unicode normalization forms through utf8proc (Qwen2 uses NFC). */
        st->type = NORM_UNICODE;
        st->uflags = UTF8PROC_STABLE |
                     (type[2] == 'K' ? UTF8PROC_COMPAT : 0) |
                     (type[strlen(type) - 1] == 'C' ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE);
    } else {
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: normalizer \"%s\" is not supported (supported: Sequence, "
                          "Prepend, Replace, NFC, NFKC, NFD, NFKD)",
                          t->file, type);
    }
    t->nnorm++;
    return GPTQ_OK;
}

/* Run the normalizers on s[0..n); the result is in *out (a or b). */
static int normalize(const gptq_tokenizer *t, pcre2_match_data *md, segvec *segs, const char *s,
                     size_t n, sbuf *a, sbuf *b, sbuf **out)
{
    const char *cur = s;
    size_t cn = n;
    sbuf *dst = a;
    for (size_t k = 0; k < t->nnorm; k++) {
        const norm_step *st = &t->norm[k];
        dst->n = 0;
        if (st->type == NORM_PREPEND) {
            if (cn) GPTQ_TRY(sbuf_put(dst, st->a, st->alen));
            GPTQ_TRY(sbuf_put(dst, cur, cn));
        } else if (st->type == NORM_UNICODE) {
            utf8proc_uint8_t *u = NULL;
            utf8proc_ssize_t un = cn ? utf8proc_map((const utf8proc_uint8_t *)cur,
                                                    (utf8proc_ssize_t)cn, &u, st->uflags)
                                     : 0;
            if (un < 0) {
                free(u);
                return gptq_error(GPTQ_ERR_INVALID, "%s: Unicode normalization failed: %s",
                                  t->file, utf8proc_errmsg(un));
            }
            int pst = sbuf_put(dst, u ? (const char *)u : "", (size_t)un);
            free(u);
            GPTQ_TRY(pst);
        } else {
            if (st->re) GPTQ_TRY(regex_segments(st->re, md, cur, cn, segs));
            else GPTQ_TRY(literal_segments(st->a, st->alen, cur, cn, segs));
            GPTQ_TRY(sbuf_put(dst, "", 0));
            for (size_t i = 0; i < segs->n; i++) {
                if (segs->p[i].m) GPTQ_TRY(sbuf_put(dst, st->b, st->blen));
                else GPTQ_TRY(sbuf_put(dst, cur + segs->p[i].a, segs->p[i].b - segs->p[i].a));
            }
        }
        cur = dst->p;
        cn = dst->n;
        dst = dst == a ? b : a;
    }
    if (cur == s) { /* no normalizer: copy, so the caller always owns *out */
        a->n = 0;
        GPTQ_TRY(sbuf_put(a, s, n));
        *out = a;
    } else {
        *out = dst == a ? b : a;
    }
    return GPTQ_OK;
}

/* --- pre-tokenizers -------------------------------------------------- */

static int read_behavior(const gptq_tokenizer *t, const cJSON *o, int *out)
{
    const char *b = jstr(o, "behavior");
    if (!b) return bad(t, "Split pre-tokenizer without \"behavior\"", NULL);
    if (strcmp(b, "Removed") == 0) *out = B_REMOVED;
    else if (strcmp(b, "Isolated") == 0) *out = B_ISOLATED;
    else if (strcmp(b, "MergedWithPrevious") == 0) *out = B_MERGED_PREV;
    else if (strcmp(b, "MergedWithNext") == 0) *out = B_MERGED_NEXT;
    else if (strcmp(b, "Contiguous") == 0) *out = B_CONTIGUOUS;
    else return bad(t, "unknown Split behavior ", b);
    return GPTQ_OK;
}

/* Metaspace's prepend_scheme, or the older add_prefix_space. */
static int read_prepend(const gptq_tokenizer *t, const cJSON *o, int *out)
{
    const char *s = jstr(o, "prepend_scheme");
    int aps = jbool(t, o, "add_prefix_space", 1);
    if (aps < 0) return GPTQ_ERR_FORMAT;
    if (!s) *out = aps ? PREPEND_ALWAYS : PREPEND_NEVER;
    else if (strcmp(s, "always") == 0) *out = PREPEND_ALWAYS;
    else if (strcmp(s, "first") == 0) *out = PREPEND_FIRST;
    else if (strcmp(s, "never") == 0) *out = PREPEND_NEVER;
    else return bad(t, "unknown Metaspace prepend_scheme ", s);
    return GPTQ_OK;
}

static int read_replacement(const gptq_tokenizer *t, const cJSON *o, char *rep, size_t *len)
{
    const char *r = jstr(o, "replacement");
    if (!r) r = "\xE2\x96\x81"; /* U+2581, the default */
    size_t k = strlen(r);
    if (k == 0 || k > 4 || u8validate(r, k) != k || u8len((unsigned char)r[0]) != k)
        return bad(t, "Metaspace replacement must be one character: ", r);
    memcpy(rep, r, k);
    *len = k;
    return GPTQ_OK;
}

static int add_pretokenizer(gptq_tokenizer *t, const cJSON *o)
{
    if (!o || cJSON_IsNull(o)) return GPTQ_OK;
    const char *type = jtype(o);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "pretokenizers");
        if (!cJSON_IsArray(list)) return bad(t, "pre_tokenizer Sequence without \"pretokenizers\"", NULL);
        for (const cJSON *e = list->child; e; e = e->next) GPTQ_TRY(add_pretokenizer(t, e));
        return GPTQ_OK;
    }
    if (t->npre == MAX_PRE) return bad(t, "more than 8 pre-tokenizers", NULL);
    pre_step *st = &t->pre[t->npre];
    memset(st, 0, sizeof *st);
    if (strcmp(type, "ByteLevel") == 0) {
        st->type = PRE_BYTELEVEL;
        if ((st->add_prefix_space = jbool(t, o, "add_prefix_space", 1)) < 0) return GPTQ_ERR_FORMAT;
        if ((st->use_regex = jbool(t, o, "use_regex", 1)) < 0) return GPTQ_ERR_FORMAT;
        if (st->use_regex && !t->gpt2_re)
            GPTQ_TRY(regex_compile(&t->gpt2_re, GPT2_PATTERN, sizeof GPT2_PATTERN - 1, 0, t->file,
                              "ByteLevel"));
    } else if (strcmp(type, "Split") == 0) {
        st->type = PRE_SPLIT;
        t->npre++; /* owned from here on */
        GPTQ_TRY(read_pattern(t, o, "pre_tokenizer Split", &st->lit, &st->lit_len, &st->re));
        GPTQ_TRY(read_behavior(t, o, &st->behavior));
        if ((st->invert = jbool(t, o, "invert", 0)) < 0) return GPTQ_ERR_FORMAT;
        return GPTQ_OK;
    } else if (strcmp(type, "Digits") == 0) {
        /* Digits = Split on numeric characters (Rust char::is_numeric, i.e.
         * \p{N}): one per piece, or runs of them. */
        int individual = jbool(t, o, "individual_digits", 0);
        if (individual < 0) return GPTQ_ERR_FORMAT;
        st->type = PRE_SPLIT;
        st->behavior = B_ISOLATED;
        t->npre++;
        return regex_compile(&st->re, individual ? "\\p{N}" : "\\p{N}+", PCRE2_ZERO_TERMINATED, 0,
                             t->file, "Digits");
    } else if (strcmp(type, "Metaspace") == 0) {
        st->type = PRE_METASPACE;
        GPTQ_TRY(read_replacement(t, o, st->rep, &st->rep_len));
        GPTQ_TRY(read_prepend(t, o, &st->prepend));
        if ((st->split = jbool(t, o, "split", 1)) < 0) return GPTQ_ERR_FORMAT;
    } else {
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: pre_tokenizer \"%s\" is not supported (supported: ByteLevel, Split, "
                          "Metaspace, Digits, Sequence)",
                          t->file, type);
    }
    t->npre++;
    return GPTQ_OK;
}

/* --- post-processor ------------------------------------------------- */

/* A post-processor's token id: an integer in [0, MAX_ID) (casting a
 * number outside int32_t would be undefined). */
static int read_id(const gptq_tokenizer *t, const cJSON *v, const char *what, int32_t *id)
{
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < MAX_ID) ||
        v->valuedouble != (double)(int32_t)v->valuedouble)
        return gptq_error(GPTQ_ERR_FORMAT, "%s: post_processor %s: an id must be an integer in [0, 2^24)",
                          t->file, what);
    *id = (int32_t)v->valuedouble;
    return GPTQ_OK;
}

/* ["<s>", 1] of RobertaProcessing / BertProcessing. */
static int read_tok_pair(const gptq_tokenizer *t, const cJSON *o, const char *key, int32_t *id)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsArray(p) || cJSON_GetArraySize(p) != 2 || !cJSON_IsNumber(p->child->next))
        return gptq_error(GPTQ_ERR_FORMAT, "%s: post_processor \"%s\" must be [token, id]", t->file, key);
    return read_id(t, p->child->next, key, id);
}

/* Fold one post-processor into (pre, suf): the new one wraps the old. */
static int add_postprocessor(gptq_tokenizer *t, const cJSON *o)
{
    if (!o || cJSON_IsNull(o)) return GPTQ_OK;
    const char *type = jtype(o);
    ivec pre = {0}, suf = {0};
    int rc = GPTQ_OK;
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "processors");
        if (!cJSON_IsArray(list)) return bad(t, "post_processor Sequence without \"processors\"", NULL);
        for (const cJSON *e = list->child; e; e = e->next) GPTQ_TRY(add_postprocessor(t, e));
        return GPTQ_OK;
    } else if (strcmp(type, "ByteLevel") == 0) {
        return GPTQ_OK; /* only trims offsets */
    } else if (strcmp(type, "RobertaProcessing") == 0 || strcmp(type, "BertProcessing") == 0) {
        int32_t cls = -1, sep = -1;
        GPTQ_TRY(read_tok_pair(t, o, "cls", &cls));
        GPTQ_TRY(read_tok_pair(t, o, "sep", &sep));
        if ((rc = ivec_push(&pre, cls)) == 0) rc = ivec_push(&suf, sep);
    } else if (strcmp(type, "TemplateProcessing") == 0) {
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(o, "single");
        const cJSON *specials = cJSON_GetObjectItemCaseSensitive(o, "special_tokens");
        if (!cJSON_IsArray(single))
            return bad(t, "TemplateProcessing \"single\" must be an array of pieces", NULL);
        int seen_a = 0;
        for (const cJSON *e = single->child; e && rc == GPTQ_OK; e = e->next) {
            const cJSON *sq = cJSON_GetObjectItemCaseSensitive(e, "Sequence");
            const cJSON *sp = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken");
            if (sq) {
                const char *which = jstr(sq, "id");
                if (!which || strcmp(which, "A") != 0 || seen_a)
                    rc = bad(t, "TemplateProcessing \"single\" must hold sequence A exactly once", NULL);
                seen_a = 1;
            } else if (sp) {
                const char *name = jstr(sp, "id");
                const cJSON *def = name ? cJSON_GetObjectItemCaseSensitive(specials, name) : NULL;
                const cJSON *ids = cJSON_GetObjectItemCaseSensitive(def, "ids");
                if (!cJSON_IsArray(ids)) {
                    rc = bad(t, "TemplateProcessing: no special_tokens entry with ids for ",
                             name ? name : "(no id)");
                    break;
                }
                for (const cJSON *i = ids->child; i && rc == GPTQ_OK; i = i->next) {
                    int32_t id = -1;
                    rc = read_id(t, i, name, &id);
                    if (rc == GPTQ_OK) rc = ivec_push(seen_a ? &suf : &pre, id);
                }
            } else {
                rc = bad(t, "TemplateProcessing piece is neither Sequence nor SpecialToken", NULL);
            }
        }
        if (rc == GPTQ_OK && !seen_a) rc = bad(t, "TemplateProcessing \"single\" has no sequence A", NULL);
    } else {
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: post_processor \"%s\" is not supported (supported: TemplateProcessing, "
                          "RobertaProcessing, BertProcessing, ByteLevel, Sequence)",
                          t->file, type);
    }
    /* new pre = pre + old pre; new suf = old suf + suf */
    if (rc == GPTQ_OK) rc = ivec_put(&pre, t->post_pre.p, t->post_pre.n);
    if (rc == GPTQ_OK) rc = ivec_put(&t->post_suf, suf.p, suf.n);
    if (rc == GPTQ_OK) {
        free(t->post_pre.p);
        t->post_pre = pre;
        pre.p = NULL;
    }
    free(pre.p);
    free(suf.p);
    return rc;
}

/* --- decoder -------------------------------------------------------- */

static int add_decoder(gptq_tokenizer *t, const cJSON *o, size_t *cap)
{
    if (!o || cJSON_IsNull(o)) return GPTQ_OK;
    const char *type = jtype(o);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "decoders");
        if (!cJSON_IsArray(list)) return bad(t, "decoder Sequence without \"decoders\"", NULL);
        for (const cJSON *e = list->child; e; e = e->next) GPTQ_TRY(add_decoder(t, e, cap));
        return GPTQ_OK;
    }
    GPTQ_TRY(grow((void **)&t->dec, cap, t->ndec + 1, sizeof *t->dec, "decoders"));
    dec_step *st = &t->dec[t->ndec];
    memset(st, 0, sizeof *st);
    if (strcmp(type, "ByteLevel") == 0) {
        st->type = DEC_BYTELEVEL;
    } else if (strcmp(type, "ByteFallback") == 0) {
        st->type = DEC_BYTEFALLBACK;
    } else if (strcmp(type, "Fuse") == 0) {
        st->type = DEC_FUSE;
    } else if (strcmp(type, "Replace") == 0) {
        const char *c = jstr(o, "content");
        if (!c) return bad(t, "decoder Replace without \"content\"", NULL);
        pcre2_code *re = NULL;
        st->type = DEC_REPLACE;
        t->ndec++;
        GPTQ_TRY(read_pattern(t, o, "decoder Replace", &st->a, &st->alen, &re));
        if (re) {
            pcre2_code_free(re);
            return gptq_error(GPTQ_ERR_UNSUPPORTED, "%s: decoder Replace with a Regex pattern is not supported",
                              t->file);
        }
        st->blen = strlen(c);
        if (!(st->b = dup_bytes(c, st->blen))) return gptq_error(GPTQ_ERR_NOMEM, "out of memory");
        return GPTQ_OK;
    } else if (strcmp(type, "Strip") == 0) {
        const char *c = jstr(o, "content");
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "start");
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "stop");
        if (!c || !*c || u8len((unsigned char)c[0]) != strlen(c) || !cJSON_IsNumber(a) || !cJSON_IsNumber(b))
            return bad(t, "decoder Strip needs one-character \"content\", \"start\" and \"stop\"", NULL);
        st->type = DEC_STRIP;
        st->alen = strlen(c);
        if (!(st->a = dup_bytes(c, st->alen))) return gptq_error(GPTQ_ERR_NOMEM, "out of memory");
        st->start = a->valueint;
        st->stop = b->valueint;
    } else if (strcmp(type, "Metaspace") == 0) {
        char rep[8];
        st->type = DEC_METASPACE;
        GPTQ_TRY(read_replacement(t, o, rep, &st->alen));
        GPTQ_TRY(read_prepend(t, o, &st->prepend));
        if (!(st->a = dup_bytes(rep, st->alen))) return gptq_error(GPTQ_ERR_NOMEM, "out of memory");
    } else {
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: decoder \"%s\" is not supported (supported: ByteLevel, ByteFallback, Fuse, "
                          "Replace, Strip, Metaspace, Sequence)",
                          t->file, type);
    }
    t->ndec++;
    return GPTQ_OK;
}

/* --- added tokens ----------------------------------------------------- */

static int build_set(gptq_tokenizer *t, added_set *set, int normalized)
{
    size_t count[256] = {0}, n = 0;
    for (size_t i = 0; i < t->nadded; i++)
        if (t->added[i].normalized == normalized && t->added[i].plen) {
            count[(unsigned char)t->added[i].pat[0]]++;
            n++;
        }
    set->list = malloc((n ? n : 1) * sizeof *set->list);
    if (!set->list) return gptq_error(GPTQ_ERR_NOMEM, "out of memory for added tokens");
    set->start[0] = 0;
    for (int b = 0; b < 256; b++) set->start[b + 1] = set->start[b] + count[b];
    size_t fill[256];
    memcpy(fill, set->start, sizeof fill);
    for (size_t i = 0; i < t->nadded; i++)
        if (t->added[i].normalized == normalized && t->added[i].plen)
            set->list[fill[(unsigned char)t->added[i].pat[0]]++] = (int32_t)i;
    /* Longest pattern first within a bucket, so the first hit at a position
     * is the leftmost-longest match (buckets are small: insertion sort). */
    for (int b = 0; b < 256; b++) {
        for (size_t i = set->start[b] + 1; i < set->start[b + 1]; i++) {
            int32_t x = set->list[i];
            size_t j = i;
            while (j > set->start[b] && t->added[set->list[j - 1]].plen < t->added[x].plen) {
                set->list[j] = set->list[j - 1];
                j--;
            }
            set->list[j] = x;
        }
    }
    return GPTQ_OK;
}

static int read_added(gptq_tokenizer *t, const cJSON *list, pcre2_match_data *md)
{
    if (!list || cJSON_IsNull(list)) return GPTQ_OK;
    if (!cJSON_IsArray(list)) return bad(t, "\"added_tokens\" must be an array", NULL);
    size_t n = (size_t)cJSON_GetArraySize(list);
    t->added = calloc(n ? n : 1, sizeof *t->added);
    if (!t->added) return gptq_error(GPTQ_ERR_NOMEM, "out of memory for added tokens");
    sbuf na = {0}, nb = {0};
    segvec segs = {0};
    int rc = GPTQ_OK;
    int need_word = 0;
    for (const cJSON *e = list->child; e && rc == GPTQ_OK; e = e->next) {
        const char *content = jstr(e, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (!content || !cJSON_IsNumber(id) || !(id->valuedouble >= 0 && id->valuedouble <= GPTQ_TOK_MAX_ID) ||
            id->valuedouble != floor(id->valuedouble)) {
            rc = gptq_error(GPTQ_ERR_FORMAT,
                            "%s: added token \"%.40s\" needs \"content\" and an integer \"id\" in "
                            "[0, %d]",
                            t->file, content ? content : "(no content)", GPTQ_TOK_MAX_ID);
            break;
        }
        size_t len = strlen(content);
        int dup = 0;
        for (size_t i = 0; i < t->nadded; i++)
            if (t->added[i].len == len && memcmp(t->added[i].content, content, len) == 0) dup = 1;
        if (dup || len == 0) continue; /* the library keeps the first of equal tokens */
        added_tok *a = &t->added[t->nadded];
        a->len = len;
        if (!(a->content = dup_bytes(content, len))) {
            rc = gptq_error(GPTQ_ERR_NOMEM, "out of memory");
            break;
        }
        t->nadded++;
        /* The id the library gives: the vocabulary's when the content is in
         * it, else the one written here. */
        int32_t vid = strmap_get(&t->vocab, content, len);
        a->id = vid >= 0 ? vid : (int32_t)id->valuedouble;
        if ((a->special = jbool(t, e, "special", 0)) < 0 || (a->lstrip = jbool(t, e, "lstrip", 0)) < 0 ||
            (a->rstrip = jbool(t, e, "rstrip", 0)) < 0 ||
            (a->single_word = jbool(t, e, "single_word", 0)) < 0 ||
            (a->normalized = jbool(t, e, "normalized", !a->special)) < 0) {
            rc = GPTQ_ERR_FORMAT;
            break;
        }
        need_word |= a->single_word;
        if (a->normalized && t->nnorm) {
            sbuf *res;
            if ((rc = normalize(t, md, &segs, content, len, &na, &nb, &res)) < 0) break;
            a->plen = res->n;
            a->pat = dup_bytes(res->p, res->n);
        } else {
            a->plen = len;
            a->pat = dup_bytes(content, len);
        }
        if (!a->pat) rc = gptq_error(GPTQ_ERR_NOMEM, "out of memory");
    }
    free(na.p);
    free(nb.p);
    free(segs.p);
    GPTQ_TRY(rc);
    GPTQ_TRY(build_set(t, &t->raw_set, 0));
    GPTQ_TRY(build_set(t, &t->norm_set, 1));
    /* Rust regex \w: Alphabetic, marks, decimal digits, connector
     * punctuation, joiners (what single_word checks around a match). */
    if (need_word)
        GPTQ_TRY(regex_compile(&t->word_re, "[\\p{L}\\p{Nl}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}]",
                          PCRE2_ZERO_TERMINATED, PCRE2_ANCHORED, t->file, "word character"));
    return GPTQ_OK;
}

/* --- tokenizer_config.json -------------------------------------------- */

int32_t gptq_tok_piece_id(const gptq_tokenizer *t, const char *piece, size_t len)
{
    for (size_t i = 0; i < t->nadded; i++)
        if (t->added[i].len == len && memcmp(t->added[i].content, piece, len) == 0) return t->added[i].id;
    return strmap_get(&t->vocab, piece, len);
}

/* bos_token / eos_token: a string or an AddedToken object {"content": ...}. */
static int32_t config_token(const gptq_tokenizer *t, const cJSON *cfg, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    const char *s = cJSON_IsString(v) ? v->valuestring : jstr(v, "content");
    return s ? gptq_tok_piece_id(t, s, strlen(s)) : -1;
}

static int read_config(gptq_tokenizer *t, const char *path)
{
    t->bos_id = t->eos_id = -1;
    t->cfg_add_bos = t->cfg_add_eos = -1;
    if (!path) return GPTQ_OK;
    cJSON *cfg = NULL;
    GPTQ_TRY(gptq_json_read_file(path, &cfg));
    int rc = GPTQ_OK;
    if (!cJSON_IsObject(cfg)) {
        rc = gptq_error(GPTQ_ERR_FORMAT, "%s: must hold a JSON object", path);
    } else {
        t->bos_id = config_token(t, cfg, "bos_token");
        t->eos_id = config_token(t, cfg, "eos_token");
        int v = 0;
        if ((rc = gptq_json_get_bool(cfg, "add_bos_token", &v, 0, path)) == GPTQ_OK) t->cfg_add_bos = v;
        if (rc >= 0 && (rc = gptq_json_get_bool(cfg, "add_eos_token", &v, 0, path)) == GPTQ_OK)
            t->cfg_add_eos = v;
        if (rc > 0) rc = GPTQ_OK;
    }
    cJSON_Delete(cfg);
    return rc;
}

/* --- load / free ----------------------------------------------------- */

void gptq_tok_free(gptq_tokenizer *t)
{
    if (!t) return;
    strmap_free(&t->vocab);
    free(t->merges.key);
    free(t->merges.rank);
    free(t->merges.out);
    free(t->prefix);
    free(t->suffix);
    for (size_t i = 0; i < t->nadded; i++) {
        free(t->added[i].content);
        free(t->added[i].pat);
    }
    free(t->added);
    free(t->raw_set.list);
    free(t->norm_set.list);
    pcre2_code_free(t->word_re);
    for (size_t i = 0; i < t->nnorm; i++) {
        free(t->norm[i].a);
        free(t->norm[i].b);
        pcre2_code_free(t->norm[i].re);
    }
    free(t->norm);
    for (size_t i = 0; i < t->npre; i++) {
        pcre2_code_free(t->pre[i].re);
        free(t->pre[i].lit);
    }
    pcre2_code_free(t->gpt2_re);
    free(t->post_pre.p);
    free(t->post_suf.p);
    for (size_t i = 0; i < t->ndec; i++) {
        free(t->dec[i].a);
        free(t->dec[i].b);
    }
    free(t->dec);
    free(t->model_entry);
    free(t->added_of);
    free(t);
}

/* tokenizer.json is UTF-8 (the library's JSON parser refuses anything
 * else), but cJSON passes invalid bytes through: every key and string is
 * checked once here, so that the pipeline (u8dec, the decoders' output)
 * only ever sees well-formed UTF-8. `under` names the enclosing key. */
static int check_utf8(const gptq_tokenizer *t, const cJSON *o, const char *under)
{
    for (; o; o = o->next) {
        size_t n = o->string ? strlen(o->string) : 0;
        if (o->string && u8validate(o->string, n) != n)
            return gptq_error(GPTQ_ERR_FORMAT, "%s: a key under \"%s\" is not valid UTF-8", t->file,
                              under);
        const char *key = o->string ? o->string : under;
        n = cJSON_IsString(o) ? strlen(o->valuestring) : 0;
        if (cJSON_IsString(o) && u8validate(o->valuestring, n) != n)
            return gptq_error(GPTQ_ERR_FORMAT, "%s: a string of \"%s\" is not valid UTF-8", t->file,
                              key);
        GPTQ_TRY(check_utf8(t, o->child, key));
    }
    return GPTQ_OK;
}

static int load_json(gptq_tokenizer *t, const cJSON *root)
{
    if (!cJSON_IsObject(root)) return bad(t, "must hold a JSON object", NULL);
    GPTQ_TRY(check_utf8(t, root->child, "(top level)"));
    GPTQ_TRY(read_model(t, cJSON_GetObjectItemCaseSensitive(root, "model")));
    size_t cap = 0;
    GPTQ_TRY(add_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), &cap));
    GPTQ_TRY(add_pretokenizer(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer")));
    GPTQ_TRY(add_postprocessor(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor")));
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    t->has_decoder = dec && !cJSON_IsNull(dec);
    cap = 0;
    GPTQ_TRY(add_decoder(t, dec, &cap));

    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md) return gptq_error(GPTQ_ERR_NOMEM, "out of memory");
    int rc = read_added(t, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), md);
    pcre2_match_data_free(md);
    GPTQ_TRY(rc);

    /* id tables */
    int32_t maxid = -1;
    for (size_t e = 0; e < t->vocab.n; e++)
        if (t->vocab.val[e] > maxid) maxid = t->vocab.val[e];
    for (size_t i = 0; i < t->nadded; i++)
        if (t->added[i].id > maxid) maxid = t->added[i].id;
    if (t->vocab.n == 0)
        return gptq_error(GPTQ_ERR_FORMAT,
                          "%s: model.vocab is empty: the tokenizer has no tokens to encode with",
                          t->file);
    t->vocab_size = maxid + 1;
    t->model_entry = malloc(((size_t)t->vocab_size + 1) * sizeof *t->model_entry);
    t->added_of = malloc(((size_t)t->vocab_size + 1) * sizeof *t->added_of);
    if (!t->model_entry || !t->added_of) return gptq_error(GPTQ_ERR_NOMEM, "out of memory for the id table");
    for (int32_t i = 0; i < t->vocab_size; i++) t->model_entry[i] = t->added_of[i] = -1;
    for (size_t e = 0; e < t->vocab.n; e++)
        if (t->model_entry[t->vocab.val[e]] < 0) t->model_entry[t->vocab.val[e]] = (int32_t)e;
    for (size_t i = 0; i < t->nadded; i++)
        if (t->added_of[t->added[i].id] < 0) t->added_of[t->added[i].id] = (int32_t)i;
    for (size_t i = 0; i < t->post_pre.n + t->post_suf.n; i++) {
        int32_t id = i < t->post_pre.n ? t->post_pre.p[i] : t->post_suf.p[i - t->post_pre.n];
        /* a gap in the ids is no token either: decode would refuse it */
        if (id < 0 || id >= t->vocab_size || (t->model_entry[id] < 0 && t->added_of[id] < 0))
            return gptq_error(GPTQ_ERR_FORMAT,
                              "%s: post_processor adds id %d, which is not in the vocabulary", t->file, id);
    }
    build_byte_table(t);
    return GPTQ_OK;
}

int gptq_tok_load_files(const char *tokenizer_json, const char *config_path, gptq_tokenizer **out)
{
    if (!out || !tokenizer_json) return gptq_error(GPTQ_ERR_INVALID, "gptq_tok_load_files: NULL argument");
    *out = NULL;
    gptq_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return gptq_error(GPTQ_ERR_NOMEM, "out of memory for a tokenizer");
    snprintf(t->file, sizeof t->file, "%s", tokenizer_json);
    cJSON *root = NULL;
    int rc = gptq_json_read_file(tokenizer_json, &root);
    if (rc == GPTQ_OK) rc = load_json(t, root);
    cJSON_Delete(root);
    if (rc == GPTQ_OK) rc = read_config(t, config_path);
    if (rc != GPTQ_OK) {
        gptq_tok_free(t);
        return rc;
    }
    *out = t;
    return GPTQ_OK;
}

int gptq_tok_load(const char *model_dir, gptq_tokenizer **out)
{
    if (!model_dir || !out) return gptq_error(GPTQ_ERR_INVALID, "gptq_tok_load: NULL argument");
    char tj[4096], cfg[4096];
    if ((size_t)snprintf(tj, sizeof tj, "%s/tokenizer.json", model_dir) >= sizeof tj ||
        (size_t)snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", model_dir) >= sizeof cfg)
        return gptq_error(GPTQ_ERR_INVALID, "%s: path too long", model_dir);
    /* tokenizer_config.json is optional; whatever is at its name (a FIFO,
     * a symlink loop) is read or refused, never waited on or ignored. */
    return gptq_tok_load_files(tj, gptq_input_present(cfg) ? cfg : NULL, out);
}

/* ================================================================== */
/* Encoding                                                            */
/* ================================================================== */

typedef struct {
    int32_t id;
    int32_t prev, next; /* linked list over the word; -1 at the ends */
    uint32_t len;       /* bytes covered; 0 = merged into its left neighbour */
} sym;

typedef struct {
    uint32_t rank, pos;
    int32_t out;
} cand;

typedef struct {
    const gptq_tokenizer *t;
    ivec out;
    pcre2_match_data *md;
    sbuf norm_a, norm_b;
    sbuf lvl_a[MAX_PRE], lvl_b[MAX_PRE];
    segvec segs[MAX_PRE];
    segvec nsegs; /* normalizer / added-token scratch */
    sbuf tmp;
    sym *syms;
    size_t syms_cap;
    cand *heap;
    size_t heap_cap, heap_n;
    strmap cache; /* word -> index into cache_at */
    size_t *cache_at;
    uint32_t *cache_cnt;
    size_t cache_cap;
    ivec cache_ids;
} enc_ctx;

static void ctx_free(enc_ctx *c)
{
    free(c->out.p);
    pcre2_match_data_free(c->md);
    free(c->norm_a.p);
    free(c->norm_b.p);
    for (int i = 0; i < MAX_PRE; i++) {
        free(c->lvl_a[i].p);
        free(c->lvl_b[i].p);
        free(c->segs[i].p);
    }
    free(c->nsegs.p);
    free(c->tmp.p);
    free(c->syms);
    free(c->heap);
    strmap_free(&c->cache);
    free(c->cache_at);
    free(c->cache_cnt);
    free(c->cache_ids.p);
}

static int cand_less(cand a, cand b) { return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos; }

static int heap_push(enc_ctx *c, cand x)
{
    GPTQ_TRY(grow((void **)&c->heap, &c->heap_cap, c->heap_n + 1, sizeof *c->heap, "merge queue"));
    size_t i = c->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(x, c->heap[p])) break;
        c->heap[i] = c->heap[p];
        i = p;
    }
    c->heap[i] = x;
    return GPTQ_OK;
}

static cand heap_pop(enc_ctx *c)
{
    cand top = c->heap[0], x = c->heap[--c->heap_n];
    size_t i = 0, n = c->heap_n;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= n) break;
        size_t m = (l + 1 < n && cand_less(c->heap[l + 1], c->heap[l])) ? l + 1 : l;
        if (!cand_less(c->heap[m], x)) break;
        c->heap[i] = c->heap[m];
        i = m;
    }
    if (n) c->heap[i] = x;
    return top;
}

static int push_pair(enc_ctx *c, int32_t left)
{
    const sym *s = c->syms;
    int32_t right = s[left].next;
    if (right < 0) return GPTQ_OK;
    long k = pairmap_find(&c->t->merges, s[left].id, s[right].id);
    if (k < 0) return GPTQ_OK;
    return heap_push(c, (cand){c->t->merges.rank[k], (uint32_t)left, c->t->merges.out[k]});
}

static int add_sym(enc_ctx *c, size_t *n, int32_t id, uint32_t len)
{
    GPTQ_TRY(grow((void **)&c->syms, &c->syms_cap, *n + 1, sizeof *c->syms, "BPE symbols"));
    c->syms[*n] = (sym){id, (int32_t)*n - 1, -1, len};
    if (*n > 0) c->syms[*n - 1].next = (int32_t)*n;
    (*n)++;
    return GPTQ_OK;
}

/* The BPE model on one word (models/bpe/model.rs merge_word + word.rs
 * merge_all); appends its ids to c->out. */
static int bpe_word(enc_ctx *c, const char *w, size_t n)
{
    const gptq_tokenizer *t = c->t;
    if (n >= INT32_MAX) return gptq_error(GPTQ_ERR_INVALID, "tokenizer: a word of %zu bytes is too long", n);
    if (t->ignore_merges) {
        int32_t id = strmap_get(&t->vocab, w, n);
        if (id >= 0) return ivec_push(&c->out, id);
    }
    size_t ns = 0;
    int32_t unk = -1; /* pending unknown run */
    uint32_t unk_len = 0;
    for (size_t i = 0; i < n;) {
        size_t cl = u8len((unsigned char)w[i]);
        const char *piece = w + i;
        size_t plen = cl;
        if ((t->prefix && i > 0) || (t->suffix && i + cl == n)) {
            c->tmp.n = 0;
            if (t->prefix && i > 0) GPTQ_TRY(sbuf_put(&c->tmp, t->prefix, t->prefix_len));
            GPTQ_TRY(sbuf_put(&c->tmp, w + i, cl));
            if (t->suffix && i + cl == n) GPTQ_TRY(sbuf_put(&c->tmp, t->suffix, t->suffix_len));
            piece = c->tmp.p;
            plen = c->tmp.n;
        }
        int32_t id = strmap_get(&t->vocab, piece, plen);
        if (id >= 0) {
            if (unk >= 0) {
                GPTQ_TRY(add_sym(c, &ns, unk, unk_len));
                unk = -1;
            }
            GPTQ_TRY(add_sym(c, &ns, id, (uint32_t)cl));
        } else {
            int done = 0;
            if (t->byte_fallback) {
                int all = 1;
                for (size_t k = 0; k < plen; k++) all &= t->byte_id[(unsigned char)piece[k]] >= 0;
                if (all) {
                    /* like the library, a pending <unk> is not flushed first */
                    for (size_t k = 0; k < plen; k++)
                        GPTQ_TRY(add_sym(c, &ns, t->byte_id[(unsigned char)piece[k]], 1));
                    done = 1;
                }
            }
            if (!done && t->unk_id >= 0) {
                if (unk >= 0 && t->fuse_unk) {
                    unk_len += (uint32_t)cl;
                } else {
                    if (unk >= 0) GPTQ_TRY(add_sym(c, &ns, unk, unk_len));
                    unk = t->unk_id;
                    unk_len = (uint32_t)cl;
                }
            }
            /* no unk_token and no byte: the character is dropped, as there */
        }
        i += cl;
    }
    if (unk >= 0) GPTQ_TRY(add_sym(c, &ns, unk, unk_len));

    c->heap_n = 0;
    for (size_t i = 0; i + 1 < ns; i++) GPTQ_TRY(push_pair(c, (int32_t)i));
    sym *s = c->syms;
    while (c->heap_n) {
        cand top = heap_pop(c);
        int32_t p = (int32_t)top.pos;
        if (s[p].len == 0 || s[p].next < 0) continue;
        int32_t r = s[p].next;
        long k = pairmap_find(&t->merges, s[p].id, s[r].id);
        if (k < 0 || t->merges.out[k] != top.out) continue; /* stale entry */
        s[p].id = top.out;
        s[p].len += s[r].len;
        s[p].next = s[r].next;
        s[r].len = 0;
        if (s[p].next >= 0) s[s[p].next].prev = p;
        if (s[p].prev >= 0) GPTQ_TRY(push_pair(c, s[p].prev));
        GPTQ_TRY(push_pair(c, p));
        s = c->syms; /* push_pair never reallocates syms, but keep it obvious */
    }
    for (size_t i = 0; i < ns; i++)
        if (s[i].len) GPTQ_TRY(ivec_push(&c->out, s[i].id));
    return GPTQ_OK;
}

/* A word through the per-call cache. */
static int emit_word(enc_ctx *c, const char *w, size_t n)
{
    if (n == 0) return GPTQ_OK;
    if (n > CACHE_MAX_WORD) return bpe_word(c, w, n);
    int e = strmap_find(&c->cache, w, n);
    /* a word may give no ids (unknown characters, no unk): then there is
     * no array to point into (NULL + 0 is undefined) */
    if (e >= 0) {
        size_t k = (size_t)c->cache.val[e];
        if (c->cache_cnt[k] == 0) return GPTQ_OK;
        return ivec_put(&c->out, c->cache_ids.p + c->cache_at[k], c->cache_cnt[k]);
    }
    size_t start = c->out.n;
    GPTQ_TRY(bpe_word(c, w, n));
    size_t k = c->cache.n, cap = c->cache_cap;
    GPTQ_TRY(grow((void **)&c->cache_at, &cap, k + 1, sizeof *c->cache_at, "word cache"));
    cap = c->cache_cap;
    GPTQ_TRY(grow((void **)&c->cache_cnt, &cap, k + 1, sizeof *c->cache_cnt, "word cache"));
    c->cache_cap = cap;
    c->cache_at[k] = c->cache_ids.n;
    c->cache_cnt[k] = (uint32_t)(c->out.n - start);
    if (c->out.n > start) GPTQ_TRY(ivec_put(&c->cache_ids, c->out.p + start, c->out.n - start));
    return strmap_put(&c->cache, w, n, (int32_t)k, NULL);
}

/* Map bytes to GPT-2's characters into b (appending). */
static int put_bytelevel(const gptq_tokenizer *t, sbuf *b, const char *s, size_t n)
{
    GPTQ_TRY(grow((void **)&b->p, &b->cap, b->n + 2 * n + 1, 1, "text buffer"));
    char *o = b->p + b->n;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)s[i];
        *o++ = t->bl_enc[x][0];
        if (t->bl_len[x] == 2) *o++ = t->bl_enc[x][1];
    }
    b->n = (size_t)(o - b->p);
    b->p[b->n] = '\0';
    return GPTQ_OK;
}

/* Pre-tokenizer `step` on the piece s[0..n); `first` says whether the
 * piece starts at offset 0 of the original text (Metaspace "first"). */
static int run_pre(enc_ctx *c, size_t step, const char *s, size_t n, int first)
{
    const gptq_tokenizer *t = c->t;
    if (n == 0) return GPTQ_OK;
    if (step == t->npre) return emit_word(c, s, n);
    const pre_step *p = &t->pre[step];
    segvec *segs = &c->segs[step];
    sbuf *a = &c->lvl_a[step], *b = &c->lvl_b[step];
    const char *src = s;
    size_t sn = n;

    switch (p->type) {
    case PRE_BYTELEVEL:
        if (p->add_prefix_space && s[0] != ' ') {
            b->n = 0;
            GPTQ_TRY(sbuf_put(b, " ", 1));
            GPTQ_TRY(sbuf_put(b, s, n));
            src = b->p;
            sn = b->n;
        }
        if (p->use_regex) {
            GPTQ_TRY(regex_segments(t->gpt2_re, c->md, src, sn, segs));
        } else {
            segs->n = 0;
            GPTQ_TRY(seg_push(segs, 0, sn, 0));
        }
        for (size_t i = 0; i < segs->n; i++) {
            seg g = segs->p[i];
            a->n = 0;
            GPTQ_TRY(put_bytelevel(t, a, src + g.a, g.b - g.a));
            GPTQ_TRY(run_pre(c, step + 1, a->p, a->n, first && g.a == 0));
        }
        return GPTQ_OK;
    case PRE_SPLIT:
        if (p->re) GPTQ_TRY(regex_segments(p->re, c->md, s, n, segs));
        else GPTQ_TRY(literal_segments(p->lit, p->lit_len, s, n, segs));
        apply_behavior(segs, p->behavior, p->invert);
        break;
    case PRE_METASPACE: {
        /* spaces -> replacement, maybe a leading replacement, then split
         * before every replacement (MergedWithNext) */
        int starts = s[0] == ' ' || (n >= p->rep_len && memcmp(s, p->rep, p->rep_len) == 0);
        b->n = 0;
        if (!starts && (p->prepend == PREPEND_ALWAYS || (p->prepend == PREPEND_FIRST && first)))
            GPTQ_TRY(sbuf_put(b, p->rep, p->rep_len));
        GPTQ_TRY(sbuf_put(b, "", 0));
        for (size_t i = 0; i < n;) {
            const char *sp = memchr(s + i, ' ', n - i);
            size_t e = sp ? (size_t)(sp - s) : n;
            GPTQ_TRY(sbuf_put(b, s + i, e - i));
            if (sp) GPTQ_TRY(sbuf_put(b, p->rep, p->rep_len));
            i = e + 1;
        }
        src = b->p;
        sn = b->n;
        if (p->split) {
            GPTQ_TRY(literal_segments(p->rep, p->rep_len, src, sn, segs));
            apply_behavior(segs, B_MERGED_NEXT, 0);
        } else {
            segs->n = 0;
            GPTQ_TRY(seg_push(segs, 0, sn, 0));
        }
        break;
    }
    }
    for (size_t i = 0; i < segs->n; i++) {
        seg g = segs->p[i];
        GPTQ_TRY(run_pre(c, step + 1, src + g.a, g.b - g.a, first && g.a == 0));
    }
    return GPTQ_OK;
}

/* Does the character before s[pos) / at s[pos) count as a word character? */
static int word_at(const gptq_tokenizer *t, enc_ctx *c, const char *s, size_t n, size_t pos)
{
    size_t a, b;
    return regex_next(t->word_re, c->md, s, n, pos, &a, &b) == 1;
}

/* Next added token of `set` in s[*pos..n): returns 1 and its span [*ma, *mb)
 * (after lstrip/rstrip, never starting before `floor`) and index, 0 when
 * there is none. Follows added_vocabulary.rs find_matches. */
static int next_added(enc_ctx *c, const added_set *set, const char *s, size_t n, size_t *pos,
                      size_t floor, size_t *ma, size_t *mb, size_t *which)
{
    const gptq_tokenizer *t = c->t;
    if (set->start[256] == 0) return 0;
    size_t p = *pos;
    while (p < n) {
        unsigned char x = (unsigned char)s[p];
        const added_tok *hit = NULL;
        size_t hi = 0;
        for (size_t k = set->start[x]; k < set->start[x + 1]; k++) {
            const added_tok *a = &t->added[set->list[k]];
            if (a->plen <= n - p && memcmp(s + p, a->pat, a->plen) == 0) {
                hit = a;
                hi = (size_t)set->list[k];
                break; /* longest first */
            }
        }
        if (!hit) {
            p++;
            continue;
        }
        size_t start = p, stop = p + hit->plen;
        p = stop; /* a discarded match still consumes its text */
        if (hit->single_word) {
            int left_word = start > 0 && word_at(t, c, s, n, u8prev(s, start));
            int right_word = stop < n && word_at(t, c, s, n, stop);
            if (left_word || right_word) continue;
        }
        if (hit->lstrip) {
            size_t k = start;
            while (k > 0) {
                size_t q = u8prev(s, k), cl;
                if (!is_space_cp(u8dec(s + q, &cl))) break;
                k = q;
            }
            start = k > floor ? k : floor;
        }
        if (hit->rstrip) {
            while (stop < n) {
                size_t cl;
                if (!is_space_cp(u8dec(s + stop, &cl))) break;
                stop += cl;
            }
        }
        *ma = start;
        *mb = stop;
        *which = hi;
        *pos = stop;
        return 1;
    }
    *pos = n;
    return 0;
}

/* One piece of raw text between non-normalized added tokens: normalize,
 * cut out the normalized added tokens, pre-tokenize the rest. */
static int encode_piece(enc_ctx *c, const char *s, size_t n, int first)
{
    const gptq_tokenizer *t = c->t;
    if (n == 0) return GPTQ_OK;
    sbuf *nb;
    GPTQ_TRY(normalize(t, c->md, &c->nsegs, s, n, &c->norm_a, &c->norm_b, &nb));
    /* The normalized text lives in nb until this piece is done; the
     * pre-tokenizers use their own buffers. */
    const char *ns = nb->p;
    size_t nn = nb->n, pos = 0, done = 0, ma, mb, k;
    while (next_added(c, &t->norm_set, ns, nn, &pos, done, &ma, &mb, &k) == 1) {
        GPTQ_TRY(run_pre(c, 0, ns + done, ma - done, first && done == 0));
        GPTQ_TRY(ivec_push(&c->out, t->added[k].id));
        done = mb;
    }
    return run_pre(c, 0, ns + done, nn - done, first && done == 0);
}

int gptq_tok_encode(const gptq_tokenizer *t, const char *text, size_t len, int special,
                    int32_t **ids, int64_t *n)
{
    if (!t || (!text && len) || !ids || !n)
        return gptq_error(GPTQ_ERR_INVALID, "gptq_tok_encode: NULL argument");
    if (special != GPTQ_TOK_NO_SPECIAL && special != GPTQ_TOK_ADD_SPECIAL)
        return gptq_error(GPTQ_ERR_INVALID, "gptq_tok_encode: special must be 0 or 1 (got %d)", special);
    *ids = NULL;
    *n = 0;
    if (!text) text = "";
    size_t bad_at = u8validate(text, len);
    if (bad_at != len)
        return gptq_error(GPTQ_ERR_INVALID, "tokenizer: text is not valid UTF-8 at byte %zu of %zu", bad_at,
                          len);
    enc_ctx c;
    memset(&c, 0, sizeof c);
    c.t = t;
    c.md = pcre2_match_data_create(1, NULL);
    int rc = c.md ? GPTQ_OK : gptq_error(GPTQ_ERR_NOMEM, "out of memory for regex matching");
    if (rc == GPTQ_OK && special) rc = ivec_put(&c.out, t->post_pre.p, t->post_pre.n);
    size_t pos = 0, done = 0, ma, mb, k;
    while (rc == GPTQ_OK) {
        int hit = next_added(&c, &t->raw_set, text, len, &pos, done, &ma, &mb, &k);
        if (hit != 1) {
            rc = encode_piece(&c, text + done, len - done, done == 0);
            break;
        }
        rc = encode_piece(&c, text + done, ma - done, done == 0);
        if (rc == GPTQ_OK) rc = ivec_push(&c.out, t->added[k].id);
        done = mb;
    }
    if (rc == GPTQ_OK && special) rc = ivec_put(&c.out, t->post_suf.p, t->post_suf.n);
    if (rc == GPTQ_OK) {
        *n = (int64_t)c.out.n;
        *ids = c.out.n ? c.out.p : NULL;
        if (c.out.n) c.out.p = NULL;
    }
    ctx_free(&c);
    return rc;
}

/* ================================================================== */
/* Decoding                                                            */
/* ================================================================== */

/* A list of strings in one buffer. */
typedef struct {
    sbuf buf;
    size_t *off, *len;
    size_t n, cap;
} strlist;

static int sl_add(strlist *l, const char *s, size_t n)
{
    size_t cap = l->cap;
    GPTQ_TRY(grow((void **)&l->off, &cap, l->n + 1, sizeof *l->off, "decode list"));
    cap = l->cap;
    GPTQ_TRY(grow((void **)&l->len, &cap, l->n + 1, sizeof *l->len, "decode list"));
    l->cap = cap;
    l->off[l->n] = l->buf.n;
    l->len[l->n] = n;
    l->n++;
    return sbuf_put(&l->buf, s, n);
}

/* Start a new token, then extend it with sl_cat. */
static int sl_cat(strlist *l, const char *s, size_t n)
{
    l->len[l->n - 1] += n;
    return sbuf_put(&l->buf, s, n);
}

static void sl_free(strlist *l)
{
    free(l->buf.p);
    free(l->off);
    free(l->len);
}

/* Parse "<0xXX>" (what the ByteFallback decoder recognises). */
static int byte_token(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char h = s[i];
        int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
                : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* One decoder step from `in` to `out` (decoders in tokenizers/src/decoders, decode_chain). */
static int decode_step(const gptq_tokenizer *t, const dec_step *d, const strlist *in, strlist *out)
{
    out->n = 0;
    out->buf.n = 0;
    switch (d->type) {
    case DEC_BYTELEVEL: {
        sbuf raw = {0};
        int rc = GPTQ_OK;
        for (size_t i = 0; i < in->n && rc == GPTQ_OK; i++) {
            const char *s = in->buf.p + in->off[i];
            size_t n = in->len[i], k = 0, mark = raw.n;
            while (k < n && rc == GPTQ_OK) {
                size_t cl;
                uint32_t cp = u8dec(s + k, &cl);
                if (cp >= 324 || t->bl_dec[cp] < 0) break;
                char byte = (char)t->bl_dec[cp];
                rc = sbuf_put(&raw, &byte, 1);
                k += cl;
            }
            if (rc == GPTQ_OK && k < n) { /* a character outside the table: the token as is */
                raw.n = mark;
                rc = sbuf_put(&raw, s, n);
            }
        }
        if (rc == GPTQ_OK) rc = sl_add(out, "", 0);
        if (rc == GPTQ_OK) {
            size_t before = out->buf.n;
            rc = put_lossy(&out->buf, raw.p ? raw.p : "", raw.n);
            out->len[0] = out->buf.n - before;
        }
        free(raw.p);
        return rc;
    }
    case DEC_BYTEFALLBACK: {
        size_t i = 0;
        while (i < in->n) {
            const char *s = in->buf.p + in->off[i];
            if (byte_token(s, in->len[i]) < 0) {
                GPTQ_TRY(sl_add(out, s, in->len[i]));
                i++;
                continue;
            }
            size_t j = i;
            sbuf run = {0};
            int rc = GPTQ_OK;
            for (; j < in->n && rc == GPTQ_OK; j++) {
                int v = byte_token(in->buf.p + in->off[j], in->len[j]);
                if (v < 0) break;
                char byte = (char)v;
                rc = sbuf_put(&run, &byte, 1);
            }
            /* valid UTF-8: one token; else one U+FFFD per byte, as there */
            if (rc == GPTQ_OK && u8validate(run.p, run.n) == run.n) {
                rc = sl_add(out, run.p, run.n);
            } else {
                for (size_t k = 0; k < run.n && rc == GPTQ_OK; k++) rc = sl_add(out, "\xEF\xBF\xBD", 3);
            }
            free(run.p);
            GPTQ_TRY(rc);
            i = j;
        }
        return GPTQ_OK;
    }
    case DEC_FUSE:
        GPTQ_TRY(sl_add(out, "", 0));
        for (size_t i = 0; i < in->n; i++) GPTQ_TRY(sl_cat(out, in->buf.p + in->off[i], in->len[i]));
        return GPTQ_OK;
    case DEC_REPLACE:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->buf.p + in->off[i];
            size_t n = in->len[i], k = 0, prev = 0;
            GPTQ_TRY(sl_add(out, "", 0));
            while (k + d->alen <= n) {
                if (memcmp(s + k, d->a, d->alen) == 0) {
                    GPTQ_TRY(sl_cat(out, s + prev, k - prev));
                    GPTQ_TRY(sl_cat(out, d->b, d->blen));
                    k += d->alen;
                    prev = k;
                } else {
                    k++;
                }
            }
            GPTQ_TRY(sl_cat(out, s + prev, n - prev));
        }
        return GPTQ_OK;
    case DEC_STRIP:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->buf.p + in->off[i];
            size_t a = 0, b = in->len[i];
            for (int k = 0; k < d->start && b - a >= d->alen && memcmp(s + a, d->a, d->alen) == 0; k++)
                a += d->alen;
            for (int k = 0; k < d->stop && b - a >= d->alen && memcmp(s + b - d->alen, d->a, d->alen) == 0; k++)
                b -= d->alen;
            GPTQ_TRY(sl_add(out, s + a, b - a));
        }
        return GPTQ_OK;
    case DEC_METASPACE:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->buf.p + in->off[i];
            size_t n = in->len[i], k = 0, prev = 0;
            int drop = i == 0 && d->prepend != PREPEND_NEVER;
            GPTQ_TRY(sl_add(out, "", 0));
            while (k < n) {
                if (k + d->alen <= n && memcmp(s + k, d->a, d->alen) == 0) {
                    GPTQ_TRY(sl_cat(out, s + prev, k - prev));
                    if (!drop) GPTQ_TRY(sl_cat(out, " ", 1));
                    k += d->alen;
                    prev = k;
                } else {
                    k += u8len((unsigned char)s[k]);
                }
            }
            GPTQ_TRY(sl_cat(out, s + prev, n - prev));
        }
        return GPTQ_OK;
    }
    return gptq_error(GPTQ_ERR_INVALID, "tokenizer: bad decoder step");
}

int gptq_tok_decode(const gptq_tokenizer *t, const int32_t *ids, int64_t n, int skip_special, char **text,
                    size_t *len)
{
    if (!t || (!ids && n) || n < 0 || !text) return gptq_error(GPTQ_ERR_INVALID, "gptq_tok_decode: bad argument");
    *text = NULL;
    strlist l[2];
    memset(l, 0, sizeof l);
    int rc = GPTQ_OK;
    for (int64_t i = 0; i < n && rc == GPTQ_OK; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->vocab_size || (t->added_of[id] < 0 && t->model_entry[id] < 0)) {
            rc = gptq_error(GPTQ_ERR_INVALID, "tokenizer: id %d at position %lld is not in the vocabulary (size %d)",
                            id, (long long)i, t->vocab_size);
            break;
        }
        if (t->added_of[id] >= 0) {
            const added_tok *a = &t->added[t->added_of[id]];
            if (skip_special && a->special) continue;
            /* A normalized added token decodes from its normalized form
             * (tokenizers 0.23 added_vocabulary.rs simple_id_to_token), so
             * that the decoder undoes what the normalizer did to it. */
            rc = sl_add(&l[0], a->pat, a->plen);
        } else {
            int32_t e = t->model_entry[id];
            rc = sl_add(&l[0], t->vocab.arena.p + t->vocab.off[e], t->vocab.len[e]);
        }
    }
    int cur = 0;
    for (size_t k = 0; k < t->ndec && rc == GPTQ_OK; k++) {
        rc = decode_step(t, &t->dec[k], &l[cur], &l[1 - cur]);
        cur = 1 - cur;
    }
    sbuf res = {0};
    if (rc == GPTQ_OK) rc = sbuf_put(&res, "", 0);
    for (size_t i = 0; i < l[cur].n && rc == GPTQ_OK; i++) {
        if (i > 0 && !t->has_decoder) rc = sbuf_put(&res, " ", 1); /* no decoder: join with spaces */
        if (rc == GPTQ_OK) rc = sbuf_put(&res, l[cur].buf.p + l[cur].off[i], l[cur].len[i]);
    }
    sl_free(&l[0]);
    sl_free(&l[1]);
    if (rc != GPTQ_OK) {
        free(res.p);
        return rc;
    }
    *text = res.p;
    if (len) *len = res.n;
    return GPTQ_OK;
}

/* ================================================================== */
/* Accessors                                                           */
/* ================================================================== */

int32_t gptq_tok_vocab_size(const gptq_tokenizer *t) { return t ? t->vocab_size : 0; }
int32_t gptq_tok_bos_id(const gptq_tokenizer *t) { return t ? t->bos_id : -1; }
int32_t gptq_tok_eos_id(const gptq_tokenizer *t) { return t ? t->eos_id : -1; }

void gptq_tok_config_adds(const gptq_tokenizer *t, int *add_bos, int *add_eos)
{
    if (add_bos) *add_bos = t ? t->cfg_add_bos : -1;
    if (add_eos) *add_eos = t ? t->cfg_add_eos : -1;
}

const char *gptq_tok_piece(const gptq_tokenizer *t, int32_t id, size_t *len)
{
    if (!t || id < 0 || id >= t->vocab_size) return NULL;
    if (t->added_of[id] >= 0) {
        if (len) *len = t->added[t->added_of[id]].len;
        return t->added[t->added_of[id]].content;
    }
    int32_t e = t->model_entry[id];
    if (e < 0) return NULL;
    if (len) *len = t->vocab.len[e];
    return t->vocab.arena.p + t->vocab.off[e];
}
