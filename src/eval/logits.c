/*
 * logits.c — one evaluation's logits saved to a safetensors file and read
 * back for a later KL divergence (the format is in eval.h). Writing goes
 * through the streamed safetensors writer (a temporary beside the name,
 * renamed into place by the commit), a window at a time; reading maps the
 * file and checks that it was made for the same windows of the same ids.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"

#define LOGITS_MAGIC "gptq-c-logits"
#define LOGITS_VERSION "1"

struct gptq_logits_writer {
    gptq_st_writer *st;
    int64_t S, V, windows, done;
};

struct gptq_logits_file {
    gptq_st_file *st;
    const float *logits; /* (W, S-1, V) */
    int64_t S, V, windows;
};

static int meta_int(gptq_st_writer *w, const char *key, int64_t v)
{
    char b[32];
    snprintf(b, sizeof b, "%" PRId64, v);
    return gptq_st_writer_metadata(w, key, b);
}

int gptq_logits_create(const char *path, const gptq_logits_facts *f, const int32_t *ids,
                       gptq_logits_writer **out)
{
    *out = NULL;
    gptq_logits_writer *w = calloc(1, sizeof *w);
    if (!w) return gptq_error(GPTQ_ERR_NOMEM, "%s: out of memory", path);
    w->S = f->seqlen;
    w->V = f->vocab;
    w->windows = f->windows;
    int st = gptq_st_writer_open(path, &w->st);
    const int64_t ids_shape[2] = {f->windows, f->seqlen};
    const int64_t lg_shape[3] = {f->windows, f->seqlen - 1, f->vocab};
    if (!st) st = gptq_st_writer_metadata(w->st, "magic", LOGITS_MAGIC);
    if (!st) st = gptq_st_writer_metadata(w->st, "version", LOGITS_VERSION);
    if (!st) st = gptq_st_writer_metadata(w->st, "model", f->model);
    if (!st) st = gptq_st_writer_metadata(w->st, "text", f->text);
    if (!st) st = meta_int(w->st, "text_bytes", f->text_bytes);
    if (!st) st = meta_int(w->st, "tokens", f->tokens);
    if (!st) st = meta_int(w->st, "seqlen", f->seqlen);
    if (!st) st = meta_int(w->st, "windows", f->windows);
    if (!st) st = meta_int(w->st, "vocab", f->vocab);
    if (!st) st = gptq_st_writer_declare(w->st, "ids", GPTQ_I32, 2, ids_shape);
    if (!st) st = gptq_st_writer_declare(w->st, "logits", GPTQ_F32, 3, lg_shape);
    if (!st)
        st = gptq_st_writer_write(w->st, ids, (size_t)(f->windows * f->seqlen) * sizeof *ids);
    if (st) {
        gptq_logits_abort(w);
        return st;
    }
    *out = w;
    return GPTQ_OK;
}

int gptq_logits_append(gptq_logits_writer *w, int64_t nb, const float *logits)
{
    if (w->done + nb > w->windows)
        return gptq_error(GPTQ_ERR_INVALID, "saved logits: window %lld of %lld",
                          (long long)(w->done + nb), (long long)w->windows);
    /* window b's rows 0..S-2 of (nb * S, V): contiguous */
    const size_t n = (size_t)((w->S - 1) * w->V) * sizeof(float);
    for (int64_t b = 0; b < nb; b++) {
        int st = gptq_st_writer_write(w->st, logits + b * w->S * w->V, n);
        if (st) return st;
    }
    w->done += nb;
    return GPTQ_OK;
}

int gptq_logits_commit(gptq_logits_writer *w)
{
    int st;
    if (w->done == w->windows) {
        st = gptq_st_writer_commit(w->st); /* frees the writer, also on failure */
    } else {
        st = gptq_error(GPTQ_ERR_INVALID, "saved logits: %lld of %lld windows written",
                        (long long)w->done, (long long)w->windows);
        gptq_st_writer_abort(w->st);
    }
    free(w);
    return st;
}

void gptq_logits_abort(gptq_logits_writer *w)
{
    if (!w) return;
    if (w->st) gptq_st_writer_abort(w->st);
    free(w);
}

/* metadata key as an integer >= 1, or an error naming the file and key */
static int meta_pos(const gptq_st_file *f, const char *path, const char *key, int64_t *out)
{
    const char *v = gptq_st_metadata(f, key);
    char *end = NULL;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || end == v || *end || x < 1)
        return gptq_error(GPTQ_ERR_FORMAT, "%s: metadata \"%s\" is %s%s%s, not a positive "
                          "integer", path, key, v ? "\"" : "absent", v ? v : "", v ? "\"" : "");
    *out = x;
    return GPTQ_OK;
}

int gptq_logits_open(const char *path, int64_t seqlen, int64_t windows, int64_t vocab,
                     const int32_t *ids, gptq_logits_file **out)
{
    *out = NULL;
    gptq_logits_file *L = calloc(1, sizeof *L);
    if (!L) return gptq_error(GPTQ_ERR_NOMEM, "%s: out of memory", path);
    int st = gptq_st_open(path, &L->st);
    if (st) {
        free(L);
        return st;
    }
    const char *magic = gptq_st_metadata(L->st, "magic");
    const char *ver = gptq_st_metadata(L->st, "version");
    const char *model = gptq_st_metadata(L->st, "model");
    const char *text = gptq_st_metadata(L->st, "text");
    gptq_st_info ti, tl;
    if (!magic || strcmp(magic, LOGITS_MAGIC)) {
        st = gptq_error(GPTQ_ERR_FORMAT, "%s: not a logits file of gptq eval --save-logits "
                        "(no \"magic\": \"%s\" in its metadata)", path, LOGITS_MAGIC);
        goto fail;
    }
    if (!ver || strcmp(ver, LOGITS_VERSION)) {
        st = gptq_error(GPTQ_ERR_FORMAT, "%s: logits file version %s; this gptq reads version %s",
                        path, ver ? ver : "(none)", LOGITS_VERSION);
        goto fail;
    }
    if ((st = meta_pos(L->st, path, "seqlen", &L->S)) ||
        (st = meta_pos(L->st, path, "windows", &L->windows)) ||
        (st = meta_pos(L->st, path, "vocab", &L->V)))
        goto fail;
    if (L->S != seqlen) {
        st = gptq_error(GPTQ_ERR_INVALID, "%s holds windows of %lld tokens (saved from %s on %s); "
                        "this run uses --seqlen %lld", path, (long long)L->S,
                        model ? model : "?", text ? text : "?", (long long)seqlen);
        goto fail;
    }
    if (L->windows != windows) {
        st = gptq_error(GPTQ_ERR_INVALID, "%s holds %lld windows (saved from %s on %s); this run "
                        "scores %lld (give the same --max-windows and text)", path,
                        (long long)L->windows, model ? model : "?", text ? text : "?",
                        (long long)windows);
        goto fail;
    }
    if (L->V != vocab) {
        st = gptq_error(GPTQ_ERR_INVALID, "%s holds logits over a vocabulary of %lld (saved from "
                        "%s); this model's vocabulary has %lld", path, (long long)L->V,
                        model ? model : "?", (long long)vocab);
        goto fail;
    }
    if ((st = gptq_st_find(L->st, "ids", &ti)) || (st = gptq_st_find(L->st, "logits", &tl))) {
        gptq_error_prefix(st, "%s", path);
        goto fail;
    }
    if (ti.dtype != GPTQ_I32 || ti.ndim != 2 || ti.shape[0] != L->windows ||
        ti.shape[1] != L->S || tl.dtype != GPTQ_F32 || tl.ndim != 3 ||
        tl.shape[0] != L->windows || tl.shape[1] != L->S - 1 || tl.shape[2] != L->V) {
        st = gptq_error(GPTQ_ERR_FORMAT, "%s: tensors \"ids\" and \"logits\" must be I32 (%lld, "
                        "%lld) and F32 (%lld, %lld, %lld), as its metadata says", path,
                        (long long)L->windows, (long long)L->S, (long long)L->windows,
                        (long long)(L->S - 1), (long long)L->V);
        goto fail;
    }
    const int32_t *saved = ti.data;
    for (int64_t i = 0; i < windows * seqlen; i++)
        if (saved[i] != ids[i]) {
            st = gptq_error(GPTQ_ERR_INVALID, "%s was saved for other tokens: window %lld, "
                            "position %lld holds id %d there and %d here (it was made from %s "
                            "with %s's tokenizer: give the same text and a model with the same "
                            "tokenizer)", path, (long long)(i / seqlen), (long long)(i % seqlen),
                            (int)saved[i], (int)ids[i], text ? text : "?", model ? model : "?");
            goto fail;
        }
    L->logits = tl.data;
    *out = L;
    return GPTQ_OK;
fail:
    gptq_logits_close(L);
    return st;
}

const float *gptq_logits_window(const gptq_logits_file *f, int64_t w)
{
    return f->logits + w * (f->S - 1) * f->V;
}

const char *gptq_logits_meta(const gptq_logits_file *f, const char *key)
{
    return gptq_st_metadata(f->st, key);
}

void gptq_logits_close(gptq_logits_file *f)
{
    if (!f) return;
    gptq_st_close(f->st);
    free(f);
}
