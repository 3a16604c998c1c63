/*
 * weights.c — the tensors of a Hugging Face model folder: model.safetensors,
 * or the shards that model.safetensors.index.json names. Every shard is
 * mmap'd by gptq_st_open (validated there); this file keeps one sorted table
 * of all tensor names across the shards for lookups, checks the index
 * against what the shards hold, and converts F32/F16/BF16 tensors to f32 on
 * demand (one tensor at a time: the caller never holds the whole model).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../format/format.h"
#include "../io/io.h"
#include "model.h"

typedef struct wt_entry {
    const char *name; /* points into the shard's header (valid while open) */
    int shard;
    int index;        /* gptq_st_get index inside the shard */
} wt_entry;

struct gptq_weights {
    char dir[2048];
    int nshards;
    gptq_st_file **shards;
    int n;
    wt_entry *by_name; /* (n) sorted by name */
};

/* "[256]", "[2, 3]", "[]" for messages. */
static void fmt_shape(char *b, size_t n, int ndim, const int64_t *shape)
{
    size_t k = (size_t)snprintf(b, n, "[");
    for (int d = 0; d < ndim && k < n; d++)
        k += (size_t)snprintf(b + k, n - k, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (k < n) snprintf(b + k, n - k, "]");
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const wt_entry *)a)->name, ((const wt_entry *)b)->name);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const wt_entry *lookup(const gptq_weights *w, const char *name)
{
    int lo = 0, hi = w->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(name, w->by_name[mid].name);
        if (c == 0) return &w->by_name[mid];
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

/* Open the listed shard files (names relative to dir) and build the table. */
static int open_shards(gptq_weights *w, int nfiles, const char *const *files)
{
    w->shards = gptq_calloc((size_t)nfiles, sizeof *w->shards, "weights shards");
    if (!w->shards) return GPTQ_ERR_NOMEM;
    int total = 0;
    for (int i = 0; i < nfiles; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", w->dir, files[i]);
        int st = gptq_st_open(path, &w->shards[i]);
        if (st) return st;
        w->nshards = i + 1;
        total += gptq_st_count(w->shards[i]);
    }
    w->by_name = gptq_calloc(total ? (size_t)total : 1, sizeof *w->by_name, "weights names");
    if (!w->by_name) return GPTQ_ERR_NOMEM;
    for (int s = 0; s < w->nshards; s++)
        for (int i = 0; i < gptq_st_count(w->shards[s]); i++) {
            gptq_st_info info;
            int st = gptq_st_get(w->shards[s], i, &info);
            if (st) return st;
            w->by_name[w->n++] = (wt_entry){info.name, s, i};
        }
    qsort(w->by_name, (size_t)w->n, sizeof *w->by_name, cmp_entry);
    for (int i = 1; i < w->n; i++)
        if (!strcmp(w->by_name[i].name, w->by_name[i - 1].name))
            return gptq_error(GPTQ_ERR_FORMAT, "%s: tensor '%s' appears in two shards (%s and %s)",
                              w->dir, w->by_name[i].name,
                              gptq_st_path(w->shards[w->by_name[i - 1].shard]),
                              gptq_st_path(w->shards[w->by_name[i].shard]));
    return GPTQ_OK;
}

/* model.safetensors.index.json: {"metadata": {...}, "weight_map": {tensor: shard}} */
static int open_index(gptq_weights *w, const char *ipath)
{
    cJSON *root = NULL;
    int st = gptq_json_read_file(ipath, &root);
    if (st) return st;
    const char **files = NULL;
    const cJSON *map = NULL;
    if (!cJSON_IsObject(root)) {
        st = gptq_error(GPTQ_ERR_FORMAT, "%s: the top level is not a JSON object", ipath);
        goto done;
    }
    st = gptq_json_get_object(root, "weight_map", &map, 1, ipath);
    if (st) goto done;
    int nmap = cJSON_GetArraySize(map);
    if (nmap == 0) {
        st = gptq_error(GPTQ_ERR_FORMAT, "%s: \"weight_map\" is empty", ipath);
        goto done;
    }
    files = gptq_calloc((size_t)nmap, sizeof *files, "shard names");
    if (!files) {
        st = GPTQ_ERR_NOMEM;
        goto done;
    }
    int nf = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, map)
    {
        if (!cJSON_IsString(it)) {
            st = gptq_error(GPTQ_ERR_FORMAT, "%s: weight_map[\"%s\"] must be a shard file name",
                            ipath, it->string);
            goto done;
        }
        const char *f = it->valuestring;
        /* A shard is a file beside the index: no paths, nothing hidden. */
        if (!f[0] || strchr(f, '/') || f[0] == '.') {
            st = gptq_error(GPTQ_ERR_FORMAT,
                            "%s: weight_map[\"%s\"] = \"%s\" is not a plain file name in the "
                            "model folder",
                            ipath, it->string, f);
            goto done;
        }
        files[nf++] = f;
    }
    qsort(files, (size_t)nf, sizeof *files, cmp_str);
    int nu = 0;
    for (int i = 0; i < nf; i++)
        if (nu == 0 || strcmp(files[i], files[nu - 1])) files[nu++] = files[i];
    for (int i = 0; i < nu; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", w->dir, files[i]);
        if (!gptq_input_present(path)) {
            st = gptq_error(GPTQ_ERR_IO, "%s names shard %s, which does not exist", ipath, path);
            goto done;
        }
    }
    st = open_shards(w, nu, files);
    if (st) goto done;
    /* Every tensor of the index must be in the shard it names. */
    cJSON_ArrayForEach(it, map)
    {
        const wt_entry *e = lookup(w, it->string);
        if (!e || strcmp(gptq_st_path(w->shards[e->shard]) + strlen(w->dir) + 1,
                         it->valuestring) != 0) {
            st = gptq_error(GPTQ_ERR_FORMAT, "%s: tensor '%s' is said to be in %s, which lacks it",
                            ipath, it->string, it->valuestring);
            goto done;
        }
    }
done:
    free(files);
    cJSON_Delete(root);
    return st;
}

int gptq_weights_open(const char *dir, gptq_weights **out)
{
    *out = NULL;
    gptq_weights *w = gptq_calloc(1, sizeof *w, "weights");
    if (!w) return GPTQ_ERR_NOMEM;
    snprintf(w->dir, sizeof w->dir, "%s", dir);
    size_t len = strlen(w->dir);
    while (len > 1 && w->dir[len - 1] == '/') w->dir[--len] = '\0';

    char single[4096], index[4096];
    struct stat sb;
    if (stat(w->dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        /* one .safetensors file: its folder, and it as the only shard
         * (gptq_st_open says what is wrong with anything else: absent, a
         * FIFO, a symlink loop) */
        char *slash = strrchr(w->dir, '/');
        const char *f = slash ? slash + 1 : w->dir;
        char file[2048];
        snprintf(file, sizeof file, "%s", f);
        if (slash) *slash = '\0';
        else snprintf(w->dir, sizeof w->dir, ".");
        const char *fp = file;
        int st = open_shards(w, 1, &fp);
        if (st) {
            gptq_weights_close(w);
            return st;
        }
        *out = w;
        return GPTQ_OK;
    }
    snprintf(single, sizeof single, "%s/model.safetensors", w->dir);
    snprintf(index, sizeof index, "%s/model.safetensors.index.json", w->dir);
    int st;
    /* Whatever is at either name is opened, so that a FIFO, a folder or a
     * symlink loop is reported as such, not as a missing file. */
    if (gptq_input_present(single)) {
        const char *f = "model.safetensors";
        st = open_shards(w, 1, &f);
    } else if (gptq_input_present(index)) {
        st = open_index(w, index);
    } else {
        st = gptq_error(GPTQ_ERR_IO,
                        "%s: no model.safetensors nor model.safetensors.index.json (only "
                        "safetensors weights are read)",
                        w->dir);
    }
    if (st) {
        gptq_weights_close(w);
        return st;
    }
    *out = w;
    return GPTQ_OK;
}

void gptq_weights_close(gptq_weights *w)
{
    if (!w) return;
    for (int i = 0; i < w->nshards; i++) gptq_st_close(w->shards[i]);
    free(w->shards);
    free(w->by_name);
    free(w);
}

int gptq_weights_count(const gptq_weights *w) { return w ? w->n : 0; }

int gptq_weights_get(const gptq_weights *w, int i, gptq_st_info *info)
{
    if (i < 0 || i >= w->n)
        return gptq_error(GPTQ_ERR_INVALID, "%s: tensor index %d out of range", w->dir, i);
    /* shard order, then file order: walk the shards */
    for (int s = 0; s < w->nshards; s++) {
        int c = gptq_st_count(w->shards[s]);
        if (i < c) return gptq_st_get(w->shards[s], i, info);
        i -= c;
    }
    return gptq_error(GPTQ_ERR_INVALID, "%s: tensor index out of range", w->dir);
}

int gptq_weights_has(const gptq_weights *w, const char *name) { return lookup(w, name) != NULL; }

int gptq_weights_find(const gptq_weights *w, const char *name, gptq_st_info *info)
{
    const wt_entry *e = lookup(w, name);
    if (!e)
        return gptq_error(GPTQ_ERR_FORMAT, "tensor '%s' not found in %s (%s, %d tensors)", name,
                          w->dir, w->nshards > 1 ? "sharded" : "model.safetensors", w->n);
    return gptq_st_get(w->shards[e->shard], e->index, info);
}

int gptq_weights_check_float(const gptq_weights *w, const char *name, int ndim,
                             const int64_t *shape)
{
    gptq_st_info info;
    int st = gptq_weights_find(w, name, &info);
    if (st) return st;
    int same = info.ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = info.shape[d] == shape[d];
    if (!same) {
        char want[128], got[128];
        fmt_shape(want, sizeof want, ndim, shape);
        fmt_shape(got, sizeof got, info.ndim, info.shape);
        return gptq_error(GPTQ_ERR_SHAPE, "%s: tensor '%s' has shape %s, expected %s", w->dir,
                          name, got, want);
    }
    if (info.dtype != GPTQ_F32 && info.dtype != GPTQ_F16 && info.dtype != GPTQ_BF16)
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: tensor '%s' has dtype %s; only F32, F16 and BF16 weights are read",
                          w->dir, name, gptq_dtype_name(info.dtype));
    return GPTQ_OK;
}

int gptq_weights_read_f32(const gptq_weights *w, const char *name, int ndim,
                          const int64_t *shape, float *dst)
{
    int st = gptq_weights_check_float(w, name, ndim, shape);
    if (st) return st;
    gptq_st_info info;
    gptq_weights_find(w, name, &info);
    size_t esize = gptq_dtype_size(info.dtype);
    int64_t n = (int64_t)(info.nbytes / esize);
    if ((uintptr_t)info.data % esize == 0) {
        st = gptq_convert_to_f32(dst, info.data, info.dtype, n);
    } else {
        /* safetensors does not promise aligned tensors: go through a buffer */
        uint32_t tmp[1024];
        const int64_t chunk = (int64_t)(sizeof tmp / esize);
        const unsigned char *src = info.data;
        for (int64_t i = 0; i < n && !st; i += chunk) {
            int64_t k = n - i < chunk ? n - i : chunk;
            memcpy(tmp, src + (size_t)i * esize, (size_t)k * esize);
            st = gptq_convert_to_f32(dst + i, tmp, info.dtype, k);
        }
    }
    if (st) return gptq_error_prefix(st, "%s: tensor '%s'", w->dir, name);
    return GPTQ_OK;
}

const char *gptq_weights_metadata(const gptq_weights *w, const char *key)
{
    for (int i = 0; i < w->nshards; i++) {
        const char *v = gptq_st_metadata(w->shards[i], key);
        if (v) return v;
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* GPTQ tensors                                                        */
/* ------------------------------------------------------------------ */

/* The header entry of `name`: dtype and shape (ndim dims) must match. */
static int expect_tensor(const gptq_weights *w, const char *name, gptq_dtype dtype, int ndim,
                         const int64_t *shape, gptq_st_info *info)
{
    int st = gptq_weights_find(w, name, info);
    if (st) return st;
    int same = info->dtype == dtype && info->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = info->shape[d] == shape[d];
    if (same) return GPTQ_OK;
    char want[128], got[128];
    fmt_shape(want, sizeof want, ndim, shape);
    fmt_shape(got, sizeof got, info->ndim, info->shape);
    return gptq_error(GPTQ_ERR_FORMAT, "%s: GPTQ tensor '%s' is %s %s, expected %s %s", w->dir,
                      name, gptq_dtype_name(info->dtype), got, gptq_dtype_name(dtype), want);
}

int gptq_weights_is_packed(const gptq_weights *w, const char *prefix)
{
    char name[700];
    snprintf(name, sizeof name, "%s.qweight", prefix);
    if (gptq_weights_has(w, name)) return 1;
    snprintf(name, sizeof name, "%s.weight_packed", prefix);
    return gptq_weights_has(w, name);
}

int gptq_weights_check_packed(const gptq_weights *w, const gptq_ckpt_quant *q, const char *prefix,
                              int64_t rows, int64_t cols)
{
    if (q->ctensors) return gptq_ct_check_tensors(w, w->dir, q, prefix ? prefix : "", rows, cols);
    const char *what = prefix && prefix[0] ? prefix : "the module";
    /* a dynamic rule may give this module other bits or groups */
    gptq_ckpt_quant mq;
    if (q->dynamic.n) {
        GPTQ_TRY(gptq_ckpt_quant_for_module(q, prefix ? prefix : "", &mq));
        q = &mq;
    }
    if (!q->present)
        return gptq_error(GPTQ_ERR_FORMAT, "%s: %s: no quantization_config says how it is packed",
                          w->dir, what);
    const int bits = q->bits;
    if (gptq_format_check_dims(GPTQ_ERR_FORMAT, bits, rows, cols))
        return gptq_error_prefix(GPTQ_ERR_FORMAT, "%s: %s", w->dir, what);
    const int64_t G = q->group_size > 0 ? q->group_size : cols;
    const int64_t ng = (cols + G - 1) / G;
    char name[600];
    gptq_st_info info;
    const int64_t qw[2] = {cols * bits / 32, rows}, qz[2] = {ng, rows * bits / 32},
                  sc[2] = {ng, rows};
    gptq_tensor_name(name, sizeof name, prefix, GPTQ_T_SCALES);
    int st = expect_tensor(w, name, GPTQ_F16, 2, sc, &info);
    gptq_tensor_name(name, sizeof name, prefix, GPTQ_T_QWEIGHT);
    if (!st) st = expect_tensor(w, name, GPTQ_I32, 2, qw, &info);
    gptq_tensor_name(name, sizeof name, prefix, GPTQ_T_QZEROS);
    if (!st) st = expect_tensor(w, name, GPTQ_I32, 2, qz, &info);
    gptq_tensor_name(name, sizeof name, prefix, GPTQ_T_G_IDX); /* optional: k // G when absent */
    if (!st && gptq_weights_has(w, name)) st = expect_tensor(w, name, GPTQ_I32, 1, &cols, &info);
    return st;
}

/* A malloc'd copy of a tensor's bytes (gptq_packed owns its arrays). */
static void *copy_of(const gptq_weights *w, const char *name)
{
    gptq_st_info info;
    if (gptq_weights_find(w, name, &info)) return NULL;
    void *p = gptq_malloc(info.nbytes ? info.nbytes : 4, name);
    if (p) memcpy(p, info.data, info.nbytes);
    return p;
}

int gptq_weights_read_packed(const gptq_weights *w, const gptq_ckpt_quant *q, const char *prefix,
                             int64_t rows, int64_t cols, gptq_packed *p)
{
    memset(p, 0, sizeof *p);
    if (q->ctensors) return gptq_ct_read_packed(w, w->dir, q, prefix ? prefix : "", rows, cols, p);
    char name[600];
    gptq_st_info info;
    gptq_ckpt_quant mq;
    if (q->dynamic.n) {
        GPTQ_TRY(gptq_ckpt_quant_for_module(q, prefix ? prefix : "", &mq));
        q = &mq;
    }
    /* out_features from scales (ngroups, N), in_features from qweight
     * (K * bits / 32, N), when the caller does not know them */
    if (rows <= 0) {
        gptq_tensor_name(name, sizeof name, prefix, GPTQ_T_SCALES);
        GPTQ_TRY(gptq_weights_find(w, name, &info));
        if (info.ndim != 2)
            return gptq_error(GPTQ_ERR_FORMAT, "%s: '%s' must be F16 [ngroups, out_features]",
                              w->dir, name);
        rows = info.shape[1];
    }
    if (cols <= 0 && q->bits > 0) {
        gptq_tensor_name(name, sizeof name, prefix, GPTQ_T_QWEIGHT);
        GPTQ_TRY(gptq_weights_find(w, name, &info));
        if (info.ndim != 2 || (info.shape[0] * 32) % q->bits)
            return gptq_error(GPTQ_ERR_FORMAT, "%s: '%s' is not (in_features * %d / 32, N)",
                              w->dir, name, q->bits);
        cols = info.shape[0] * 32 / q->bits;
        /* g_idx (one entry per input) must say the same; a disagreement
         * names both, rather than blaming g_idx for a short qweight */
        gptq_st_info gi;
        gptq_tensor_name(name, sizeof name, prefix, GPTQ_T_G_IDX);
        if (gptq_weights_has(w, name) && gptq_weights_find(w, name, &gi) == GPTQ_OK &&
            gi.ndim == 1 && gi.shape[0] != cols)
            return gptq_error(GPTQ_ERR_FORMAT,
                              "%s: %s: 'qweight' has %lld rows, which hold %lld inputs at %d "
                              "bits, but 'g_idx' has %lld entries (one per input): qweight "
                              "should have %lld rows, or one of the two is damaged",
                              w->dir, prefix && prefix[0] ? prefix : "the module",
                              (long long)info.shape[0], (long long)cols, q->bits,
                              (long long)gi.shape[0], (long long)(gi.shape[0] * q->bits / 32));
    }
    GPTQ_TRY(gptq_weights_check_packed(w, q, prefix, rows, cols));
    const int64_t G = q->group_size > 0 ? q->group_size : cols;
    p->bits = q->bits;
    p->in_features = cols;
    p->out_features = rows;
    p->ngroups = (cols + G - 1) / G;
    gptq_tensor_name(name, sizeof name, prefix, GPTQ_T_SCALES);
    int st = (p->scales = copy_of(w, name)) ? GPTQ_OK : GPTQ_ERR_NOMEM;
    gptq_tensor_name(name, sizeof name, prefix, GPTQ_T_QWEIGHT);
    if (!st && !(p->qweight = copy_of(w, name))) st = GPTQ_ERR_NOMEM;
    gptq_tensor_name(name, sizeof name, prefix, GPTQ_T_QZEROS);
    if (!st && !(p->qzeros = copy_of(w, name))) st = GPTQ_ERR_NOMEM;
    gptq_tensor_name(name, sizeof name, prefix, GPTQ_T_G_IDX);
    if (!st && gptq_weights_has(w, name)) {
        if (!(p->g_idx = copy_of(w, name))) st = GPTQ_ERR_NOMEM;
    } else if (!st) { /* checkpoints without act-order may omit g_idx: k // G */
        p->g_idx = gptq_malloc((size_t)cols * sizeof(int32_t), name);
        if (!p->g_idx) st = GPTQ_ERR_NOMEM;
        for (int64_t k = 0; !st && k < cols; k++) p->g_idx[k] = (int32_t)(k / G);
    }
    if (st) gptq_packed_free(p);
    return st;
}
