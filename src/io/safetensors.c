/*
 * safetensors.c — the .safetensors format: a validating mmap reader and a
 * streaming, atomic writer.
 *
 * Format (huggingface/safetensors, docs "Format"):
 *   8 bytes   N, unsigned little-endian 64-bit: length of the header
 *   N bytes   UTF-8 JSON object, may end in spaces (padding):
 *               "__metadata__": {string: string}          (optional)
 *               "<name>": {"dtype": "F32", "shape": [d0, d1, ...],
 *                          "data_offsets": [begin, end]}  (per tensor)
 *   rest      the data region; offsets are relative to its start, the
 *             tensors tile it exactly (no overlaps, no holes), row-major,
 *             little-endian.
 *
 * The reader checks all of that before anything is handed out, so code
 * above can index the data without further checks; tensor data stays in
 * the mapping (nothing big is read into memory). Every message names the
 * file and, where there is one, the tensor.
 *
 * The writer streams: declare every tensor, write bytes in declaration
 * order, commit. The header goes out on the first write (sizes are known
 * from the declarations), so a tensor never has to be held in memory
 * whole. Output goes to "<path>.tmp.XXXXXX" and is renamed over <path> by
 * commit; any failure or abort unlinks the temporary.
 */
#define _GNU_SOURCE /* mkstemp, fileno, strdup */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"

/* The reference implementation refuses headers above 100 MB; so do we. */
#define ST_MAX_HEADER ((uint64_t)100 << 20)
/* JSON numbers are doubles in cJSON: integers from 2^53 on are not exact,
 * so offsets and dimensions must stay below (8 PiB is no limit in practice). */
#define ST_MAX_INT ((uint64_t)1 << 53)

/* ------------------------------------------------------------------ */
/* Shared helpers                                                      */
/* ------------------------------------------------------------------ */

/* Offset of the first byte that breaks UTF-8 (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or n when s[0..n) is valid. */
static size_t utf8_check(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return i;
        }
        if (n - i < len) return i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        i += len;
    }
    return n;
}

/* numel and byte size of a shape, 0 on overflow past ST_MAX_INT. */
static int shape_size(int ndim, const int64_t *shape, size_t esize, uint64_t *numel,
                      uint64_t *nbytes)
{
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        uint64_t d = (uint64_t)shape[i];
        if (d != 0 && n > (ST_MAX_INT - 1) / d) return 0;
        n *= d;
    }
    if (n != 0 && esize > (ST_MAX_INT - 1) / n) return 0;
    *numel = n;
    *nbytes = n * esize;
    return 1;
}

/* "[3, 4]" for messages. */
static void shape_str(int ndim, const int64_t *shape, char *out, size_t size)
{
    size_t k = (size_t)snprintf(out, size, "[");
    for (int i = 0; i < ndim && k < size; i++)
        k += (size_t)snprintf(out + k, size - k, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (k < size) snprintf(out + k, size - k, "]");
}

/* ------------------------------------------------------------------ */
/* Reader                                                              */
/* ------------------------------------------------------------------ */

typedef struct st_entry {
    const char *name; /* key string inside `header` */
    gptq_dtype dtype;
    int ndim;
    int64_t shape[GPTQ_MAX_DIMS];
    uint64_t begin, end; /* byte range in the data region */
} st_entry;

struct gptq_st_file {
    char *path;
    void *map;           /* the whole file, read-only */
    size_t map_size;
    const uint8_t *data; /* start of the data region inside map */
    uint64_t data_size;
    cJSON *header;
    const cJSON *metadata; /* __metadata__ object or NULL */
    int n;
    st_entry *entries; /* (n) sorted by data offset */
    int *by_name;      /* (n) indices into entries, sorted by name */
};

/* qsort has no context argument; thread-local so that threads may open
 * files at the same time. */
static _Thread_local const st_entry *g_sort_entries;

static int cmp_offset(const void *a, const void *b)
{
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_name_idx(const void *a, const void *b)
{
    return strcmp(g_sort_entries[*(const int *)a].name, g_sort_entries[*(const int *)b].name);
}

/* A JSON number that is an integer in [0, 2^53). */
static int json_u64(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0.0 && d < (double)ST_MAX_INT) || floor(d) != d) return 0;
    *out = (uint64_t)d;
    return 1;
}

/* Describe a JSON value briefly for messages: 2.5, "x", an object. */
static void json_brief(const cJSON *v, char *out, size_t size)
{
    if (cJSON_IsNumber(v))
        snprintf(out, size, "%.17g", v->valuedouble);
    else if (cJSON_IsString(v))
        snprintf(out, size, "\"%.40s\"", v->valuestring ? v->valuestring : "");
    else if (cJSON_IsBool(v))
        snprintf(out, size, "%s", cJSON_IsTrue(v) ? "true" : "false");
    else if (cJSON_IsNull(v))
        snprintf(out, size, "null");
    else if (cJSON_IsArray(v))
        snprintf(out, size, "an array");
    else if (cJSON_IsObject(v))
        snprintf(out, size, "an object");
    else
        snprintf(out, size, "an invalid value");
}

/* Validate one header entry into *e. */
static int parse_entry(const char *path, const cJSON *item, uint64_t data_size, st_entry *e)
{
    const char *nm = item->string;
    e->name = nm;
    if (!cJSON_IsObject(item))
        return gptq_error(GPTQ_ERR_FORMAT,
                          "%s: tensor '%s': header entry must be an object with dtype, shape, "
                          "data_offsets",
                          path, nm);

    /* dtype */
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    if (!dt) return gptq_error(GPTQ_ERR_FORMAT, "%s: tensor '%s': no \"dtype\"", path, nm);
    if (!cJSON_IsString(dt) || !dt->valuestring)
        return gptq_error(GPTQ_ERR_FORMAT, "%s: tensor '%s': \"dtype\" must be a string", path,
                          nm);
    if (gptq_dtype_from_name(dt->valuestring, &e->dtype) != GPTQ_OK)
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: tensor '%s': unknown or unsupported dtype \"%s\" (known: F32 F16 "
                          "BF16 I32 I64 F64 I16 I8 U8 BOOL)",
                          path, nm, dt->valuestring);

    /* shape */
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(item, "shape");
    if (!sh) return gptq_error(GPTQ_ERR_FORMAT, "%s: tensor '%s': no \"shape\"", path, nm);
    if (!cJSON_IsArray(sh))
        return gptq_error(GPTQ_ERR_FORMAT, "%s: tensor '%s': \"shape\" must be an array", path,
                          nm);
    int nd = cJSON_GetArraySize(sh);
    if (nd > GPTQ_MAX_DIMS)
        return gptq_error(GPTQ_ERR_UNSUPPORTED, "%s: tensor '%s': %d dimensions (at most %d)",
                          path, nm, nd, GPTQ_MAX_DIMS);
    e->ndim = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, sh)
    {
        uint64_t v;
        if (!json_u64(d, &v)) {
            char got[64];
            json_brief(d, got, sizeof got);
            return gptq_error(GPTQ_ERR_FORMAT,
                              "%s: tensor '%s': shape dimension %d must be a non-negative "
                              "integer below 2^53 (got %s)",
                              path, nm, e->ndim, got);
        }
        e->shape[e->ndim++] = (int64_t)v;
    }
    uint64_t numel, need;
    if (!shape_size(e->ndim, e->shape, gptq_dtype_size(e->dtype), &numel, &need)) {
        char s[160];
        shape_str(e->ndim, e->shape, s, sizeof s);
        return gptq_error(GPTQ_ERR_FORMAT, "%s: tensor '%s': shape %s is too large (overflow)",
                          path, nm, s);
    }

    /* data_offsets */
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!off) return gptq_error(GPTQ_ERR_FORMAT, "%s: tensor '%s': no \"data_offsets\"", path, nm);
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return gptq_error(GPTQ_ERR_FORMAT,
                          "%s: tensor '%s': \"data_offsets\" must be an array [begin, end]", path,
                          nm);
    if (!json_u64(cJSON_GetArrayItem(off, 0), &e->begin) ||
        !json_u64(cJSON_GetArrayItem(off, 1), &e->end))
        return gptq_error(GPTQ_ERR_FORMAT,
                          "%s: tensor '%s': data_offsets must be non-negative integers below 2^53",
                          path, nm);
    if (e->begin > e->end)
        return gptq_error(GPTQ_ERR_FORMAT,
                          "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                          ") end before they begin",
                          path, nm, e->begin, e->end);
    if (e->end > data_size)
        return gptq_error(GPTQ_ERR_FORMAT,
                          "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                          ") reach past the end of the data (%" PRIu64
                          " bytes after the header; file truncated?)",
                          path, nm, e->begin, e->end, data_size);
    if (e->end - e->begin != need) {
        char s[160];
        shape_str(e->ndim, e->shape, s, sizeof s);
        return gptq_error(GPTQ_ERR_FORMAT,
                          "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 ") hold %" PRIu64
                          " bytes but %s shape %s needs %" PRIu64,
                          path, nm, e->begin, e->end, e->end - e->begin,
                          gptq_dtype_name(e->dtype), s, need);
    }
    return GPTQ_OK;
}

/* Validate the parsed header (root object) against a data region of
 * data_size bytes and fill f->entries / f->by_name / f->metadata. */
static int index_header(gptq_st_file *f)
{
    const char *path = f->path;
    const cJSON *root = f->header;
    if (!cJSON_IsObject(root))
        return gptq_error(GPTQ_ERR_FORMAT, "%s: header must be a JSON object", path);

    int count = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, root)
    {
        if (!item->string)
            return gptq_error(GPTQ_ERR_FORMAT, "%s: header has a member without a name", path);
        if (strcmp(item->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(item))
                return gptq_error(GPTQ_ERR_FORMAT,
                                  "%s: \"__metadata__\" must be an object of strings", path);
            const cJSON *m;
            cJSON_ArrayForEach(m, item)
            {
                if (!cJSON_IsString(m) || !m->valuestring) {
                    char got[64];
                    json_brief(m, got, sizeof got);
                    return gptq_error(GPTQ_ERR_FORMAT,
                                      "%s: __metadata__ value of \"%s\" must be a string (got %s)",
                                      path, m->string ? m->string : "", got);
                }
            }
            f->metadata = item;
            continue;
        }
        count++;
    }

    f->entries = gptq_calloc((size_t)count, sizeof *f->entries, "safetensors index");
    f->by_name = gptq_calloc((size_t)count, sizeof *f->by_name, "safetensors index");
    if (!f->entries || !f->by_name) return gptq_error_prefix(GPTQ_ERR_NOMEM, "%s", path);

    int i = 0;
    cJSON_ArrayForEach(item, root)
    {
        if (strcmp(item->string, "__metadata__") == 0) continue;
        int rc = parse_entry(path, item, f->data_size, &f->entries[i]);
        if (rc != GPTQ_OK) return rc;
        i++;
    }
    f->n = count;

    /* File order, then an index by name over it. */
    qsort(f->entries, (size_t)count, sizeof *f->entries, cmp_offset);
    for (i = 0; i < count; i++) f->by_name[i] = i;
    g_sort_entries = f->entries;
    qsort(f->by_name, (size_t)count, sizeof *f->by_name, cmp_name_idx);
    g_sort_entries = NULL;
    /* Names are unique: gptq_json_parse refused duplicate keys. */

    /* Offsets must tile the data region: in file order, each tensor begins
     * where the previous ended, the last ends at the end of the file. */
    uint64_t at = 0;
    const char *prev = NULL;
    for (i = 0; i < count; i++) {
        const st_entry *e = &f->entries[i];
        if (e->begin < at)
            return gptq_error(GPTQ_ERR_FORMAT,
                              "%s: tensor '%s' at [%" PRIu64 ", %" PRIu64
                              ") overlaps tensor '%s' ending at %" PRIu64,
                              path, e->name, e->begin, e->end, prev, at);
        if (e->begin > at)
            return gptq_error(GPTQ_ERR_FORMAT,
                              "%s: hole in the data: bytes [%" PRIu64 ", %" PRIu64
                              ") before tensor '%s' belong to no tensor",
                              path, at, e->begin, e->name);
        at = e->end;
        prev = e->name;
    }
    if (at != f->data_size)
        return gptq_error(GPTQ_ERR_FORMAT,
                          "%s: hole in the data: bytes [%" PRIu64 ", %" PRIu64
                          ") after the last tensor belong to no tensor",
                          path, at, f->data_size);
    return GPTQ_OK;
}

int gptq_st_open(const char *path, gptq_st_file **out)
{
    if (!out) return gptq_error(GPTQ_ERR_INVALID, "gptq_st_open: out is NULL");
    *out = NULL;
    if (!path) return gptq_error(GPTQ_ERR_INVALID, "gptq_st_open: path is NULL");

    gptq_st_file *f = gptq_calloc(1, sizeof *f, "safetensors file");
    if (!f) return gptq_error_prefix(GPTQ_ERR_NOMEM, "%s", path);
    f->path = strdup(path);
    if (!f->path) {
        free(f);
        return gptq_error(GPTQ_ERR_NOMEM, "%s: out of memory", path);
    }

    /* A FIFO, directory or device is refused here, never waited on. */
    int fd;
    uint64_t fsize;
    int rc = gptq_open_input(path, &fd, &fsize);
    if (rc) goto fail;
    if (fsize < 8) {
        rc = gptq_error(GPTQ_ERR_FORMAT,
                        "%s: file is %" PRIu64 " bytes, too short for a safetensors file "
                        "(8-byte header length, then the header)",
                        path, fsize);
        close(fd);
        goto fail;
    }
    /* Map the whole file: the data is only touched when a caller reads it,
     * and pages come and go as the kernel likes (no copy in our memory). */
    f->map = mmap(NULL, (size_t)fsize, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        rc = gptq_error(GPTQ_ERR_IO, "%s: mmap of %" PRIu64 " bytes failed: %s", path, fsize,
                        strerror(map_errno));
        goto fail;
    }
    f->map_size = (size_t)fsize;
    /* so that a SIGBUS (the file shrank under the map) can name the file */
    gptq_map_register(f->map, f->map_size, f->path);

    const uint8_t *b = f->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | b[i];
    if (hlen < 2 || hlen > ST_MAX_HEADER) {
        rc = gptq_error(GPTQ_ERR_FORMAT,
                        "%s: header length %" PRIu64 " is not plausible (must be 2 .. %" PRIu64
                        " bytes); not a safetensors file?",
                        path, hlen, ST_MAX_HEADER);
        goto fail;
    }
    if (hlen > fsize - 8) {
        rc = gptq_error(GPTQ_ERR_FORMAT,
                        "%s: header length %" PRIu64 " reaches past the end of the file (%" PRIu64
                        " bytes): file truncated?",
                        path, hlen, fsize);
        goto fail;
    }
    const char *htext = (const char *)b + 8;
    size_t bad = utf8_check((const unsigned char *)htext, (size_t)hlen);
    if (bad != (size_t)hlen) {
        rc = gptq_error(GPTQ_ERR_FORMAT, "%s: header is not valid UTF-8 (byte %zu of the header)",
                        path, bad);
        goto fail;
    }
    char what[4200];
    snprintf(what, sizeof what, "%s: header", path);
    rc = gptq_json_parse(htext, (size_t)hlen, what, &f->header);
    if (rc != GPTQ_OK) goto fail;

    f->data = b + 8 + hlen;
    f->data_size = fsize - 8 - hlen;
    rc = index_header(f);
    if (rc != GPTQ_OK) goto fail;
    *out = f;
    return GPTQ_OK;

fail:
    gptq_st_close(f);
    return rc;
}

void gptq_st_close(gptq_st_file *f)
{
    if (!f) return;
    if (f->map) {
        gptq_map_unregister(f->map);
        munmap(f->map, f->map_size);
    }
    cJSON_Delete(f->header);
    free(f->entries);
    free(f->by_name);
    free(f->path);
    free(f);
}

const char *gptq_st_path(const gptq_st_file *f) { return f ? f->path : NULL; }

int gptq_st_count(const gptq_st_file *f) { return f ? f->n : 0; }

static void fill_info(const gptq_st_file *f, const st_entry *e, gptq_st_info *info)
{
    memset(info, 0, sizeof *info);
    info->name = e->name;
    info->dtype = e->dtype;
    info->ndim = e->ndim;
    for (int d = 0; d < e->ndim; d++) info->shape[d] = e->shape[d];
    info->data = f->data + e->begin;
    info->nbytes = (size_t)(e->end - e->begin);
}

int gptq_st_get(const gptq_st_file *f, int i, gptq_st_info *info)
{
    if (!f || !info) return gptq_error(GPTQ_ERR_INVALID, "gptq_st_get: NULL argument");
    if (i < 0 || i >= f->n)
        return gptq_error(GPTQ_ERR_INVALID, "%s: tensor index %d out of range (%d tensors)",
                          f->path, i, f->n);
    fill_info(f, &f->entries[i], info);
    return GPTQ_OK;
}

static const st_entry *find_entry(const gptq_st_file *f, const char *name)
{
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const st_entry *e = &f->entries[f->by_name[mid]];
        int c = strcmp(name, e->name);
        if (c == 0) return e;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

int gptq_st_find(const gptq_st_file *f, const char *name, gptq_st_info *info)
{
    if (!f || !name || !info) return gptq_error(GPTQ_ERR_INVALID, "gptq_st_find: NULL argument");
    const st_entry *e = find_entry(f, name);
    if (!e)
        return gptq_error(GPTQ_ERR_INVALID, "%s: no tensor named '%s' (%d tensors in the file)",
                          f->path, name, f->n);
    fill_info(f, e, info);
    return GPTQ_OK;
}

const char *gptq_st_metadata(const gptq_st_file *f, const char *key)
{
    if (!f || !key || !f->metadata) return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(f->metadata, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int gptq_st_read_f32(const gptq_st_file *f, const char *name, gptq_tensor *out)
{
    if (!out) return gptq_error(GPTQ_ERR_INVALID, "gptq_st_read_f32: out is NULL");
    memset(out, 0, sizeof *out);
    gptq_st_info info;
    int rc = gptq_st_find(f, name, &info);
    if (rc != GPTQ_OK) return rc;
    if (info.dtype != GPTQ_F32 && info.dtype != GPTQ_F16 && info.dtype != GPTQ_BF16)
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: tensor '%s' has dtype %s; only F32, F16 and BF16 convert to F32",
                          f->path, name, gptq_dtype_name(info.dtype));
    rc = gptq_tensor_alloc(out, GPTQ_F32, info.ndim, info.shape);
    if (rc != GPTQ_OK) return gptq_error_prefix(rc, "%s: tensor '%s'", f->path, name);

    size_t esize = gptq_dtype_size(info.dtype);
    int64_t n = (int64_t)(info.nbytes / esize);
    float *dst = out->data; // (numel) f32
    if (((uintptr_t)info.data % esize) == 0) {
        rc = gptq_convert_to_f32(dst, info.data, info.dtype, n);
    } else {
        /* The format does not align tensors; a 16-bit load from an odd
         * address is undefined in C, so go through an aligned buffer. */
        uint32_t tmp[1024];
        const int64_t chunk = (int64_t)(sizeof tmp / esize);
        const uint8_t *src = info.data;
        rc = GPTQ_OK;
        for (int64_t i = 0; i < n && rc == GPTQ_OK; i += chunk) {
            int64_t k = n - i < chunk ? n - i : chunk;
            memcpy(tmp, src + (size_t)i * esize, (size_t)k * esize);
            rc = gptq_convert_to_f32(dst + i, tmp, info.dtype, k);
        }
    }
    if (rc != GPTQ_OK) {
        gptq_tensor_free(out);
        return gptq_error_prefix(rc, "%s: tensor '%s'", f->path, name);
    }
    return GPTQ_OK;
}

/* ------------------------------------------------------------------ */
/* Writer                                                              */
/* ------------------------------------------------------------------ */

typedef struct wr_tensor {
    char *name;
    gptq_dtype dtype;
    int ndim;
    int64_t shape[GPTQ_MAX_DIMS];
    uint64_t nbytes;
} wr_tensor;

typedef struct wr_meta {
    char *key, *value;
} wr_meta;

struct gptq_st_writer {
    char *path;
    char *tmp;   /* "<path>.tmp.XXXXXX", unlinked on failure */
    FILE *fp;    /* NULL once closed */
    wr_tensor *t; /* (n) in declaration order = file order */
    int n, cap;
    wr_meta *meta; /* (nmeta) in the order given */
    int nmeta, meta_cap;
    int started;  /* header written */
    int failed;   /* an error happened; only abort/commit (which fails) remain */
    int cur;      /* tensor being written */
    uint64_t cur_done, total, total_done;
};

/* Record the failure: close and unlink the temporary so that nothing is
 * left behind even if the caller never calls abort. */
static int wr_fail(gptq_st_writer *w, int status)
{
    if (w->fp) {
        fclose(w->fp);
        w->fp = NULL;
    }
    if (!w->failed && w->tmp) {
        gptq_tmp_enter();
        unlink(w->tmp);
        gptq_tmp_unregister(w->tmp);
        gptq_tmp_leave();
    }
    w->failed = 1;
    return status;
}

static void wr_free(gptq_st_writer *w)
{
    for (int i = 0; i < w->n; i++) free(w->t[i].name);
    for (int i = 0; i < w->nmeta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->t);
    free(w->meta);
    free(w->tmp);
    free(w->path);
    free(w);
}

int gptq_st_writer_open(const char *path, gptq_st_writer **out)
{
    if (!out) return gptq_error(GPTQ_ERR_INVALID, "gptq_st_writer_open: out is NULL");
    *out = NULL;
    if (!path || !path[0]) return gptq_error(GPTQ_ERR_INVALID, "gptq_st_writer_open: empty path");
    gptq_st_writer *w = gptq_calloc(1, sizeof *w, "safetensors writer");
    if (!w) return gptq_error_prefix(GPTQ_ERR_NOMEM, "%s", path);
    size_t plen = strlen(path);
    w->path = strdup(path);
    w->tmp = malloc(plen + sizeof ".tmp.XXXXXX");
    if (!w->path || !w->tmp) {
        wr_free(w);
        return gptq_error(GPTQ_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(w->tmp, path, plen);
    memcpy(w->tmp + plen, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    /* Same directory as path: rename(2) only moves within a file system. */
    gptq_tmp_enter();
    int fd = mkstemp(w->tmp);
    int e = errno;
    int reg = fd >= 0 ? gptq_tmp_register(w->tmp) : GPTQ_OK;
    if (reg) {
        close(fd);
        unlink(w->tmp);
    }
    gptq_tmp_leave();
    if (reg) {
        wr_free(w);
        return reg;
    }
    if (fd < 0) {
        wr_free(w);
        return gptq_error(GPTQ_ERR_IO, "%s: cannot create a temporary file beside it: %s", path,
                          strerror(e));
    }
    w->fp = fdopen(fd, "wb");
    if (!w->fp) {
        e = errno;
        close(fd);
        gptq_tmp_enter();
        unlink(w->tmp);
        gptq_tmp_unregister(w->tmp);
        gptq_tmp_leave();
        wr_free(w);
        return gptq_error(GPTQ_ERR_IO, "%s: fdopen failed: %s", path, strerror(e));
    }
    *out = w;
    return GPTQ_OK;
}

static int wr_usable(gptq_st_writer *w, const char *what)
{
    if (!w) return gptq_error(GPTQ_ERR_INVALID, "%s: writer is NULL", what);
    if (w->failed)
        return gptq_error(GPTQ_ERR_INVALID, "%s: %s: the writer failed earlier; abort it", w->path,
                          what);
    return GPTQ_OK;
}

int gptq_st_writer_metadata(gptq_st_writer *w, const char *key, const char *value)
{
    int rc = wr_usable(w, "metadata");
    if (rc != GPTQ_OK) return rc;
    if (!key || !value)
        return gptq_error(GPTQ_ERR_INVALID, "%s: metadata key and value must not be NULL",
                          w->path);
    if (w->started)
        return gptq_error(GPTQ_ERR_INVALID,
                          "%s: metadata \"%s\" given after data was written (the header is out)",
                          w->path, key);
    if (utf8_check((const unsigned char *)key, strlen(key)) != strlen(key) ||
        utf8_check((const unsigned char *)value, strlen(value)) != strlen(value))
        return gptq_error(GPTQ_ERR_INVALID, "%s: metadata \"%s\": not valid UTF-8", w->path, key);
    for (int i = 0; i < w->nmeta; i++)
        if (strcmp(w->meta[i].key, key) == 0) { /* the last value wins */
            char *v = strdup(value);
            if (!v) return gptq_error(GPTQ_ERR_NOMEM, "%s: out of memory", w->path);
            free(w->meta[i].value);
            w->meta[i].value = v;
            return GPTQ_OK;
        }
    if (w->nmeta == w->meta_cap) {
        int ncap = w->meta_cap ? 2 * w->meta_cap : 8;
        wr_meta *nm = realloc(w->meta, (size_t)ncap * sizeof *nm);
        if (!nm) return gptq_error(GPTQ_ERR_NOMEM, "%s: out of memory", w->path);
        w->meta = nm;
        w->meta_cap = ncap;
    }
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return gptq_error(GPTQ_ERR_NOMEM, "%s: out of memory", w->path);
    }
    w->meta[w->nmeta].key = k;
    w->meta[w->nmeta].value = v;
    w->nmeta++;
    return GPTQ_OK;
}

int gptq_st_writer_declare(gptq_st_writer *w, const char *name, gptq_dtype dt, int ndim,
                           const int64_t *shape)
{
    int rc = wr_usable(w, "declare");
    if (rc != GPTQ_OK) return rc;
    if (!name || !name[0])
        return gptq_error(GPTQ_ERR_INVALID, "%s: tensor name must not be empty", w->path);
    if (w->started)
        return gptq_error(GPTQ_ERR_INVALID,
                          "%s: tensor '%s' declared after data was written (declare all first)",
                          w->path, name);
    if (strcmp(name, "__metadata__") == 0)
        return gptq_error(GPTQ_ERR_INVALID, "%s: \"__metadata__\" is not a tensor name", w->path);
    if (utf8_check((const unsigned char *)name, strlen(name)) != strlen(name))
        return gptq_error(GPTQ_ERR_INVALID, "%s: tensor name '%s' is not valid UTF-8", w->path,
                          name);
    if ((unsigned)dt >= GPTQ_DTYPE_COUNT)
        return gptq_error(GPTQ_ERR_INVALID, "%s: tensor '%s': bad dtype %d", w->path, name,
                          (int)dt);
    if (ndim < 0 || ndim > GPTQ_MAX_DIMS || (ndim > 0 && !shape))
        return gptq_error(GPTQ_ERR_INVALID, "%s: tensor '%s': ndim %d (must be 0 .. %d)",
                          w->path, name, ndim, GPTQ_MAX_DIMS);
    for (int d = 0; d < ndim; d++)
        if (shape[d] < 0)
            return gptq_error(GPTQ_ERR_INVALID,
                              "%s: tensor '%s': dimension %d is negative (%" PRId64 ")", w->path,
                              name, d, shape[d]);
    uint64_t numel, nbytes;
    if (!shape_size(ndim, shape, gptq_dtype_size(dt), &numel, &nbytes) ||
        nbytes >= ST_MAX_INT - w->total)
        return gptq_error(GPTQ_ERR_INVALID, "%s: tensor '%s': too large", w->path, name);
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return gptq_error(GPTQ_ERR_INVALID, "%s: tensor '%s' declared twice", w->path, name);

    if (w->n == w->cap) {
        int ncap = w->cap ? 2 * w->cap : 16;
        wr_tensor *nt = realloc(w->t, (size_t)ncap * sizeof *nt);
        if (!nt) return gptq_error(GPTQ_ERR_NOMEM, "%s: out of memory", w->path);
        w->t = nt;
        w->cap = ncap;
    }
    wr_tensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) return gptq_error(GPTQ_ERR_NOMEM, "%s: out of memory", w->path);
    t->dtype = dt;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
    t->nbytes = nbytes;
    w->total += nbytes;
    w->n++;
    return GPTQ_OK;
}

/* JSON array text "[a,b,...]" of int64 values into a new string. Numbers
 * go in as raw text so that cJSON never prints them in %g form. */
static char *raw_int_array(int n, const int64_t *v)
{
    size_t cap = 2 + (size_t)n * 21 + 1;
    char *s = malloc(cap);
    if (!s) return NULL;
    size_t k = 0;
    s[k++] = '[';
    for (int i = 0; i < n; i++)
        k += (size_t)snprintf(s + k, cap - k, "%s%" PRId64, i ? "," : "", v[i]);
    s[k++] = ']';
    s[k] = '\0';
    return s;
}

/* Build the header JSON (cJSON keeps insertion order, so "__metadata__"
 * comes first and tensors follow in declaration order) and write it. */
static int wr_header(gptq_st_writer *w)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_CreateObject();
    int ok = root && meta;
    if (ok) cJSON_AddItemToObject(root, "__metadata__", meta);
    else cJSON_Delete(meta);

    /* "format": "pt" first, as torch-made files have it, unless overridden. */
    const char *format = "pt";
    for (int i = 0; i < w->nmeta; i++)
        if (strcmp(w->meta[i].key, "format") == 0) format = w->meta[i].value;
    ok = ok && cJSON_AddStringToObject(meta, "format", format);
    for (int i = 0; ok && i < w->nmeta; i++)
        if (strcmp(w->meta[i].key, "format") != 0)
            ok = cJSON_AddStringToObject(meta, w->meta[i].key, w->meta[i].value) != NULL;

    uint64_t at = 0;
    for (int i = 0; ok && i < w->n; i++) {
        const wr_tensor *t = &w->t[i];
        int64_t offs[2] = {(int64_t)at, (int64_t)(at + t->nbytes)};
        char *shape = raw_int_array(t->ndim, t->shape);
        char *range = raw_int_array(2, offs);
        cJSON *e = cJSON_CreateObject();
        ok = shape && range && e;
        if (ok) {
            cJSON_AddItemToObject(root, t->name, e);
            ok = cJSON_AddStringToObject(e, "dtype", gptq_dtype_name(t->dtype)) &&
                 cJSON_AddRawToObject(e, "shape", shape) &&
                 cJSON_AddRawToObject(e, "data_offsets", range);
        } else {
            cJSON_Delete(e);
        }
        free(shape);
        free(range);
        at += t->nbytes;
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!text) return wr_fail(w, gptq_error(GPTQ_ERR_NOMEM, "%s: out of memory building the header", w->path));

    /* Pad with spaces to a multiple of 8, as the reference writer does, so
     * the data region starts 8-byte aligned. */
    size_t len = strlen(text);
    size_t padded = (len + 7) & ~(size_t)7;
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    static const char spaces[8] = "        ";
    int wok = fwrite(lenb, 1, 8, w->fp) == 8 && fwrite(text, 1, len, w->fp) == len &&
              fwrite(spaces, 1, padded - len, w->fp) == padded - len;
    int e = errno;
    free(text);
    if (!wok)
        return wr_fail(w, gptq_error(GPTQ_ERR_IO, "%s: writing the header to %s failed: %s",
                                     w->path, w->tmp, strerror(e)));
    w->started = 1;
    return GPTQ_OK;
}

int gptq_st_writer_write(gptq_st_writer *w, const void *data, size_t nbytes)
{
    int rc = wr_usable(w, "write");
    if (rc != GPTQ_OK) return rc;
    if (!data && nbytes > 0)
        return wr_fail(w, gptq_error(GPTQ_ERR_INVALID, "%s: write of %zu bytes from NULL",
                                     w->path, nbytes));
    if (!w->started && (rc = wr_header(w)) != GPTQ_OK) return rc;
    if (nbytes == 0) return GPTQ_OK;

    /* Finished (and empty) tensors are behind us. */
    while (w->cur < w->n && w->cur_done == w->t[w->cur].nbytes) {
        w->cur++;
        w->cur_done = 0;
    }
    if (w->cur >= w->n)
        return wr_fail(w, gptq_error(GPTQ_ERR_INVALID,
                                     "%s: write of %zu bytes after all %d declared tensors are "
                                     "complete",
                                     w->path, nbytes, w->n));
    const wr_tensor *t = &w->t[w->cur];
    /* A chunk stays inside one tensor: a caller whose sizes are off is
     * stopped at the tensor where it happens, not at commit. */
    if (nbytes > t->nbytes - w->cur_done)
        return wr_fail(w, gptq_error(GPTQ_ERR_INVALID,
                                     "%s: tensor '%s': write of %zu bytes overruns its declared "
                                     "size of %" PRIu64 " bytes (%" PRIu64 " already written)",
                                     w->path, t->name, nbytes, t->nbytes, w->cur_done));
    if (fwrite(data, 1, nbytes, w->fp) != nbytes)
        return wr_fail(w, gptq_error(GPTQ_ERR_IO, "%s: tensor '%s': writing %zu bytes to %s failed: %s",
                                     w->path, t->name, nbytes, w->tmp, strerror(errno)));
    w->cur_done += nbytes;
    w->total_done += nbytes;
    return GPTQ_OK;
}

int gptq_st_writer_commit(gptq_st_writer *w)
{
    int rc = wr_usable(w, "commit");
    if (rc != GPTQ_OK) {
        if (w) gptq_st_writer_abort(w);
        return rc;
    }
    if (!w->started && (rc = wr_header(w)) != GPTQ_OK) goto out;
    if (w->total_done != w->total) {
        while (w->cur < w->n && w->cur_done == w->t[w->cur].nbytes) {
            w->cur++;
            w->cur_done = 0;
        }
        const wr_tensor *t = &w->t[w->cur < w->n ? w->cur : w->n - 1];
        rc = wr_fail(w, gptq_error(GPTQ_ERR_INVALID,
                                   "%s: commit with tensor '%s' incomplete: %" PRIu64 " of %" PRIu64
                                   " bytes written (%" PRIu64 " of %" PRIu64 " in all)",
                                   w->path, t->name, w->cur_done, t->nbytes, w->total_done,
                                   w->total));
        goto out;
    }

    const char *step = "flush";
    int fd = fileno(w->fp);
    if (fflush(w->fp) != 0) goto io_fail;
    step = "fsync";
    if (fsync(fd) != 0) goto io_fail;
    /* mkstemp creates 0600; a model file is an ordinary readable file. */
    step = "chmod";
    if (fchmod(fd, 0644) != 0) goto io_fail;
    step = "close";
    FILE *fp = w->fp;
    w->fp = NULL;
    if (fclose(fp) != 0) goto io_fail;
    step = "rename";
    gptq_tmp_enter();
    rc = rename(w->tmp, w->path);
    int e = errno;
    if (rc == 0) gptq_tmp_unregister(w->tmp);
    gptq_tmp_leave();
    errno = e;
    if (rc != 0) goto io_fail;
    free(w->tmp); /* gone: nothing to unlink from here on */
    w->tmp = NULL;
    rc = gptq_fsync_parent_dir(w->path);
    goto out;

io_fail:
    rc = wr_fail(w, gptq_error(GPTQ_ERR_IO, "%s: %s of the temporary %s failed: %s", w->path, step,
                               w->tmp, strerror(errno)));
out:
    if (rc != GPTQ_OK) wr_fail(w, rc);
    wr_free(w);
    return rc;
}

void gptq_st_writer_abort(gptq_st_writer *w)
{
    if (!w) return;
    wr_fail(w, GPTQ_OK);
    wr_free(w);
}

int gptq_st_save(const char *path, int n, const char *const *names, const gptq_tensor *tensors)
{
    if (n < 0 || (n > 0 && (!names || !tensors)))
        return gptq_error(GPTQ_ERR_INVALID, "%s: gptq_st_save: bad tensor list",
                          path ? path : "(null)");
    gptq_st_writer *w;
    int rc = gptq_st_writer_open(path, &w);
    if (rc != GPTQ_OK) return rc;
    for (int i = 0; i < n; i++) {
        rc = gptq_st_writer_declare(w, names[i], tensors[i].dtype, tensors[i].ndim,
                                    tensors[i].shape);
        if (rc != GPTQ_OK) goto fail;
    }
    for (int i = 0; i < n; i++) {
        size_t nb = gptq_tensor_nbytes(&tensors[i]);
        if (nb > 0 && !tensors[i].data) {
            rc = gptq_error(GPTQ_ERR_INVALID, "%s: tensor '%s' has no data", path, names[i]);
            goto fail;
        }
        rc = gptq_st_writer_write(w, tensors[i].data, nb);
        if (rc != GPTQ_OK) goto fail;
    }
    return gptq_st_writer_commit(w);

fail:
    gptq_st_writer_abort(w);
    return rc;
}
