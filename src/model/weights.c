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

static int file_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
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
        if (!file_exists(path)) {
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
    snprintf(single, sizeof single, "%s/model.safetensors", w->dir);
    snprintf(index, sizeof index, "%s/model.safetensors.index.json", w->dir);
    int st;
    if (file_exists(single)) {
        const char *f = "model.safetensors";
        st = open_shards(w, 1, &f);
    } else if (file_exists(index)) {
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

int gptq_weights_read_f32(const gptq_weights *w, const char *name, int ndim,
                          const int64_t *shape, float *dst)
{
    gptq_st_info info;
    int st = gptq_weights_find(w, name, &info);
    if (st) return st;
    int same = info.ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = info.shape[d] == shape[d];
    if (!same) {
        char want[128] = "", got[128] = "";
        size_t a = 0, b = 0;
        for (int d = 0; d < ndim && a < sizeof want; d++)
            a += (size_t)snprintf(want + a, sizeof want - a, "%s%lld", d ? ", " : "",
                                  (long long)shape[d]);
        for (int d = 0; d < info.ndim && b < sizeof got; d++)
            b += (size_t)snprintf(got + b, sizeof got - b, "%s%lld", d ? ", " : "",
                                  (long long)info.shape[d]);
        return gptq_error(GPTQ_ERR_SHAPE, "%s: tensor '%s' has shape [%s], expected [%s]", w->dir,
                          name, got, want);
    }
    if (info.dtype != GPTQ_F32 && info.dtype != GPTQ_F16 && info.dtype != GPTQ_BF16)
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: tensor '%s' has dtype %s; only F32, F16 and BF16 weights are read",
                          w->dir, name, gptq_dtype_name(info.dtype));
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
