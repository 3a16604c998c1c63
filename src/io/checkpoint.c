/*
 * checkpoint.c — the GPTQ checkpoint folder writer (checkpoint.h): tensor
 * plan and shards, streamed safetensors files, the index, config.json with
 * quantization_config, quantize_config.json, copied tokenizer files, and
 * the atomic rename of the finished folder into place.
 */
#define _GNU_SOURCE /* dirfd, fstatat */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../format/format.h"
#include "checkpoint.h"
#include "io.h"

/* ------------------------------------------------------------------ */
/* Sizes                                                               */
/* ------------------------------------------------------------------ */

int gptq_parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } k_units[] = {
        {"", 1},           {"B", 1},
        {"KB", 1000ull},   {"MB", 1000000ull}, {"GB", 1000000000ull}, {"TB", 1000000000000ull},
        {"KiB", 1ull << 10}, {"MiB", 1ull << 20}, {"GiB", 1ull << 30}, {"TiB", 1ull << 40},
    };
    if (!s || !isdigit((unsigned char)s[0]))
        return gptq_error(GPTQ_ERR_INVALID,
                          "size \"%s\": expected a number of bytes or a number with a unit "
                          "(500MB, 4GB, 2GiB)",
                          s ? s : "(null)");
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return gptq_error(GPTQ_ERR_INVALID, "size \"%s\": must be at most %llu bytes", s,
                          (unsigned long long)UINT64_MAX);
    if (*end == '.')
        return gptq_error(GPTQ_ERR_INVALID, "size \"%s\": must be a whole number (1500MB, not "
                          "1.5GB)", s);
    for (size_t i = 0; i < sizeof k_units / sizeof *k_units; i++) {
        if (strcasecmp(end, k_units[i].unit) != 0) continue;
        /* "kb" and "KB" both mean 1000, "kib" 1024: case only of the letters */
        if (v == 0) return gptq_error(GPTQ_ERR_INVALID, "size \"%s\": must be > 0", s);
        if (v > UINT64_MAX / k_units[i].mult)
            return gptq_error(GPTQ_ERR_INVALID, "size \"%s\": must be at most %llu bytes", s,
                              (unsigned long long)UINT64_MAX);
        *out = (uint64_t)v * k_units[i].mult;
        return GPTQ_OK;
    }
    return gptq_error(GPTQ_ERR_INVALID,
                      "size \"%s\": unknown unit \"%s\" (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)", s,
                      end);
}

/* ------------------------------------------------------------------ */
/* The plan                                                            */
/* ------------------------------------------------------------------ */

typedef struct ck_entry {
    char *name;
    gptq_dtype dtype;
    int ndim;
    int64_t shape[GPTQ_MAX_DIMS];
    uint64_t nbytes;
    int shard;
} ck_entry;

/* Written into the temporary folder while it is unfinished (removed just
 * before the rename): a later run recognises a folder that a killed run
 * left by it, and removes it once that run's process is gone. */
#define PARTIAL_MARKER ".gptq-c-partial"

static void sweep_stale(const char *final_dir);
static int write_marker(const char *tmp);

struct gptq_ckpt {
    char final_dir[4096];
    char tmp[4096 + 16];
    uint64_t max_shard;
    ck_entry *e; /* (n) in declaration = write order */
    int n, cap;
    int planned;
    int nshards;
    int next;            /* next entry to write */
    gptq_st_writer *w;   /* the open shard, or NULL */
    uint64_t total;
};

int gptq_ckpt_begin(const char *out_dir, uint64_t max_shard_bytes, gptq_ckpt **out)
{
    *out = NULL;
    if (max_shard_bytes == 0)
        return gptq_error(GPTQ_ERR_INVALID, "checkpoint: max shard size must be > 0");
    gptq_ckpt *c = gptq_calloc(1, sizeof *c, "checkpoint writer");
    if (!c) return GPTQ_ERR_NOMEM;
    /* The resolved name: "x/." or "." would put the temporary inside the
     * folder it is to replace. */
    int st = gptq_path_canon(out_dir, c->final_dir, sizeof c->final_dir);
    if (st) {
        free(c);
        return gptq_error_prefix(st, "output folder");
    }
    sweep_stale(c->final_dir);
    st = gptq_mkdtemp_beside(c->final_dir, c->tmp, sizeof c->tmp);
    if (st) {
        free(c);
        return st;
    }
    /* mkdtemp makes it 0700; the finished folder is an ordinary readable
     * one, like the 0644 files the writers make */
    if (chmod(c->tmp, 0755) != 0) st = gptq_error(GPTQ_ERR_IO, "%s: chmod: %s", c->tmp, strerror(errno));
    if (!st) st = write_marker(c->tmp);
    if (st) {
        gptq_remove_tree(c->tmp);
        free(c);
        return st;
    }
    c->max_shard = max_shard_bytes;
    *out = c;
    return GPTQ_OK;
}

const char *gptq_ckpt_tmp_dir(const gptq_ckpt *c) { return c->tmp; }
int gptq_ckpt_nshards(const gptq_ckpt *c) { return c->nshards; }
uint64_t gptq_ckpt_total_bytes(const gptq_ckpt *c) { return c->total; }

int gptq_ckpt_declare(gptq_ckpt *c, const char *name, gptq_dtype dt, int ndim,
                      const int64_t *shape)
{
    if (c->planned)
        return gptq_error(GPTQ_ERR_INVALID, "checkpoint: tensor '%s' declared after the plan",
                          name);
    if ((unsigned)dt >= GPTQ_DTYPE_COUNT || ndim < 0 || ndim > GPTQ_MAX_DIMS)
        return gptq_error(GPTQ_ERR_INVALID, "checkpoint: tensor '%s': bad dtype or rank", name);
    if (c->n == c->cap) {
        int ncap = c->cap ? 2 * c->cap : 64;
        ck_entry *ne = realloc(c->e, (size_t)ncap * sizeof *ne);
        if (!ne) return gptq_error(GPTQ_ERR_NOMEM, "checkpoint: out of memory");
        c->e = ne;
        c->cap = ncap;
    }
    ck_entry *e = &c->e[c->n];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    if (!e->name) return gptq_error(GPTQ_ERR_NOMEM, "checkpoint: out of memory");
    e->dtype = dt;
    e->ndim = ndim;
    uint64_t nb = gptq_dtype_size(dt);
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) {
            free(e->name);
            return gptq_error(GPTQ_ERR_INVALID, "checkpoint: tensor '%s': negative dimension",
                              name);
        }
        e->shape[d] = shape[d];
        nb *= (uint64_t)shape[d];
    }
    e->nbytes = nb;
    c->n++;
    c->total += nb;
    return GPTQ_OK;
}

static int cmp_name(const void *a, const void *b)
{
    const ck_entry *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

int gptq_ckpt_plan(gptq_ckpt *c)
{
    if (c->planned) return GPTQ_OK;
    if (c->n == 0) return gptq_error(GPTQ_ERR_INVALID, "checkpoint: no tensors declared");
    /* unique names (sorted copy of the pointers) */
    const ck_entry **sorted = malloc((size_t)c->n * sizeof *sorted);
    if (!sorted) return gptq_error(GPTQ_ERR_NOMEM, "checkpoint: out of memory");
    for (int i = 0; i < c->n; i++) sorted[i] = &c->e[i];
    qsort(sorted, (size_t)c->n, sizeof *sorted, cmp_name);
    for (int i = 1; i < c->n; i++)
        if (strcmp(sorted[i - 1]->name, sorted[i]->name) == 0) {
            int st = gptq_error(GPTQ_ERR_INVALID, "checkpoint: tensor '%s' declared twice",
                                sorted[i]->name);
            free(sorted);
            return st;
        }
    free(sorted);
    int shard = 0;
    uint64_t cur = 0;
    for (int i = 0; i < c->n; i++) {
        if (cur > 0 && cur + c->e[i].nbytes > c->max_shard) {
            shard++;
            cur = 0;
        }
        c->e[i].shard = shard;
        cur += c->e[i].nbytes;
    }
    c->nshards = shard + 1;
    c->planned = 1;
    return GPTQ_OK;
}

static void shard_name(const gptq_ckpt *c, int shard, char *buf, size_t size)
{
    if (c->nshards == 1)
        snprintf(buf, size, "model.safetensors");
    else
        snprintf(buf, size, "model-%05d-of-%05d.safetensors", shard + 1, c->nshards);
}

/* Open the writer of the shard that entry `first` starts and declare its
 * tensors. */
static int open_shard(gptq_ckpt *c, int first)
{
    char fname[64], path[sizeof c->tmp + 80];
    const int shard = c->e[first].shard;
    shard_name(c, shard, fname, sizeof fname);
    snprintf(path, sizeof path, "%s/%s", c->tmp, fname);
    int st = gptq_st_writer_open(path, &c->w);
    if (!st) st = gptq_st_writer_metadata(c->w, "format", "pt");
    for (int i = first; !st && i < c->n && c->e[i].shard == shard; i++)
        st = gptq_st_writer_declare(c->w, c->e[i].name, c->e[i].dtype, c->e[i].ndim,
                                    c->e[i].shape);
    if (st && c->w) {
        gptq_st_writer_abort(c->w);
        c->w = NULL;
    }
    return st;
}

int gptq_ckpt_write(gptq_ckpt *c, const char *name, const void *data, size_t nbytes)
{
    if (!c->planned) return gptq_error(GPTQ_ERR_INVALID, "checkpoint: write before the plan");
    if (c->next >= c->n)
        return gptq_error(GPTQ_ERR_INVALID, "checkpoint: tensor '%s' written after all %d "
                          "declared ones", name, c->n);
    const ck_entry *e = &c->e[c->next];
    if (strcmp(e->name, name) != 0)
        return gptq_error(GPTQ_ERR_INVALID,
                          "checkpoint: tensor '%s' written where '%s' was declared", name,
                          e->name);
    if (nbytes != e->nbytes)
        return gptq_error(GPTQ_ERR_INVALID, "checkpoint: tensor '%s': %zu bytes given, %llu "
                          "declared", name, nbytes, (unsigned long long)e->nbytes);
    int st = GPTQ_OK;
    if (!c->w && (st = open_shard(c, c->next))) return st;
    st = gptq_st_writer_write(c->w, data, nbytes);
    if (st) {
        gptq_st_writer_abort(c->w);
        c->w = NULL;
        return st;
    }
    c->next++;
    if (c->next == c->n || c->e[c->next].shard != e->shard) {
        st = gptq_st_writer_commit(c->w); /* frees the writer either way */
        c->w = NULL;
        if (st) return st;
    }
    return GPTQ_OK;
}

void gptq_ckpt_abort(gptq_ckpt *c)
{
    if (!c) return;
    if (c->w) gptq_st_writer_abort(c->w);
    if (c->tmp[0]) gptq_remove_tree(c->tmp);
    for (int i = 0; i < c->n; i++) free(c->e[i].name);
    free(c->e);
    free(c);
}

/* ------------------------------------------------------------------ */
/* JSON files                                                          */
/* ------------------------------------------------------------------ */

/* cJSON_Print indents with tabs; transformers writes two spaces. Print v
 * with every line after the first indented by `level` more steps. */
static char *print_json(const cJSON *v, int level)
{
    char *raw = cJSON_Print(v);
    if (!raw) return NULL;
    size_t tabs = 0, nl = 0, n = 0;
    for (const char *p = raw; *p; p++, n++) {
        tabs += *p == '\t';
        nl += *p == '\n';
    }
    char *out = malloc(n + tabs + nl * 2 * (size_t)level + 1);
    if (!out) {
        free(raw);
        return NULL;
    }
    size_t k = 0;
    for (const char *p = raw; *p; p++) {
        if (*p == '\t' && p > raw && p[-1] == ':') {
            out[k++] = ' '; /* "key":\tvalue */
        } else if (*p == '\t') {
            out[k++] = ' ';
            out[k++] = ' ';
        } else {
            out[k++] = *p;
            if (*p == '\n')
                for (int l = 0; l < 2 * level; l++) out[k++] = ' ';
        }
    }
    out[k] = '\0';
    free(raw);
    return out;
}

static int write_text(const char *dir, const char *name, const char *text)
{
    char path[4096 + 128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return gptq_write_file_atomic(path, text, strlen(text));
}

/* A source file, whole (a FIFO or device is refused, never waited on). */
static int read_file(const char *path, char **out, size_t *len)
{
    return gptq_read_input(path, SIZE_MAX, out, len, NULL);
}

/* config.json: the source text with "quantization_config" spliced in
 * before the final '}', so every other byte stays as the source wrote it.
 * A source that already names a quantization_config (null, say) is
 * rebuilt through cJSON instead. */
static int write_config(const gptq_ckpt *c, const char *src_dir, const cJSON *quant)
{
    char path[4096 + 64];
    snprintf(path, sizeof path, "%s/config.json", src_dir);
    char *text = NULL, *qtext = NULL, *out = NULL;
    size_t len;
    cJSON *root = NULL;
    int st = read_file(path, &text, &len);
    if (!st) st = gptq_json_parse(text, len, path, &root);
    if (!st && !cJSON_IsObject(root))
        st = gptq_error(GPTQ_ERR_FORMAT, "%s: not a JSON object", path);
    if (st) goto done;
    if (cJSON_HasObjectItem(root, "quantization_config")) {
        cJSON *copy = cJSON_Duplicate(quant, 1);
        if (!copy || !cJSON_ReplaceItemInObjectCaseSensitive(root, "quantization_config", copy)) {
            cJSON_Delete(copy);
            st = gptq_error(GPTQ_ERR_NOMEM, "config.json: out of memory");
            goto done;
        }
        out = print_json(root, 0);
        if (!out) {
            st = gptq_error(GPTQ_ERR_NOMEM, "config.json: out of memory");
            goto done;
        }
    } else {
        size_t end = len;
        while (end > 0 && text[end - 1] != '}') end--;
        size_t body = end - 1; /* index of the closing brace */
        while (body > 0 && isspace((unsigned char)text[body - 1])) body--;
        const int empty = text[body - 1] == '{';
        qtext = print_json(quant, 1);
        if (!qtext) {
            st = gptq_error(GPTQ_ERR_NOMEM, "config.json: out of memory");
            goto done;
        }
        size_t need = body + strlen(qtext) + 64;
        out = malloc(need);
        if (!out) {
            st = gptq_error(GPTQ_ERR_NOMEM, "config.json: out of memory");
            goto done;
        }
        snprintf(out, need, "%.*s%s\n  \"quantization_config\": %s\n}\n", (int)body, text,
                 empty ? "" : ",", qtext);
    }
    st = write_text(c->tmp, "config.json", out);
done:
    free(text);
    free(qtext);
    free(out);
    cJSON_Delete(root);
    return st;
}

static int write_index(const gptq_ckpt *c)
{
    const ck_entry **sorted = malloc((size_t)c->n * sizeof *sorted);
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_CreateObject(), *map = cJSON_CreateObject();
    char *text = NULL;
    int st = GPTQ_OK;
    if (!sorted || !root || !meta || !map) goto nomem;
    char num[32];
    snprintf(num, sizeof num, "%llu", (unsigned long long)c->total);
    /* raw text: cJSON would print a large count through a double */
    if (!cJSON_AddRawToObject(meta, "total_size", num)) goto nomem;
    cJSON_AddItemToObject(root, "metadata", meta);
    meta = NULL;
    cJSON_AddItemToObject(root, "weight_map", map);
    cJSON *wm = map;
    map = NULL;
    for (int i = 0; i < c->n; i++) sorted[i] = &c->e[i];
    qsort(sorted, (size_t)c->n, sizeof *sorted, cmp_name);
    for (int i = 0; i < c->n; i++) {
        char fname[64];
        shard_name(c, sorted[i]->shard, fname, sizeof fname);
        if (!cJSON_AddStringToObject(wm, sorted[i]->name, fname)) goto nomem;
    }
    text = print_json(root, 0);
    if (!text) goto nomem;
    size_t tl = strlen(text);
    char *t2 = realloc(text, tl + 2);
    if (!t2) goto nomem;
    text = t2;
    memcpy(text + tl, "\n", 2);
    st = write_text(c->tmp, "model.safetensors.index.json", text);
    goto done;
nomem:
    st = gptq_error(GPTQ_ERR_NOMEM, "model.safetensors.index.json: out of memory");
done:
    free(sorted);
    free(text);
    cJSON_Delete(root);
    cJSON_Delete(meta);
    cJSON_Delete(map);
    return st;
}

/* Files of the source folder copied as they are, when present. */
static const char *const k_copy_files[] = {
    "tokenizer.json",     "tokenizer_config.json", "generation_config.json",
    "special_tokens_map.json", "tokenizer.model",  "vocab.json",
    "merges.txt",         "added_tokens.json",     "chat_template.jinja",
    "chat_template.json",
};

static int copy_files(const gptq_ckpt *c, const char *src_dir)
{
    for (size_t i = 0; i < sizeof k_copy_files / sizeof *k_copy_files; i++) {
        char src[4096 + 64], dst[sizeof c->tmp + 64];
        snprintf(src, sizeof src, "%s/%s", src_dir, k_copy_files[i]);
        struct stat sb;
        if (stat(src, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        char *data;
        size_t len;
        int st = read_file(src, &data, &len);
        if (st) return st;
        snprintf(dst, sizeof dst, "%s/%s", c->tmp, k_copy_files[i]);
        st = gptq_write_file_atomic(dst, data, len);
        free(data);
        if (st) return st;
    }
    return GPTQ_OK;
}

/* ------------------------------------------------------------------ */
/* The output folder: what may be replaced, what a killed run left      */
/* ------------------------------------------------------------------ */

/* A name gptq_ckpt_finish writes or copies into a checkpoint folder. */
static int written_name(const char *name)
{
    static const char *const k_written[] = {
        "config.json", "quantize_config.json", "model.safetensors",
        "model.safetensors.index.json",
    };
    for (size_t i = 0; i < sizeof k_written / sizeof *k_written; i++)
        if (!strcmp(name, k_written[i])) return 1;
    for (size_t i = 0; i < sizeof k_copy_files / sizeof *k_copy_files; i++)
        if (!strcmp(name, k_copy_files[i])) return 1;
    /* model-00001-of-00003.safetensors */
    static const char pat[] = "model-#####-of-#####.safetensors";
    if (strlen(name) != sizeof pat - 1) return 0;
    for (size_t i = 0; pat[i]; i++)
        if (pat[i] == '#' ? !isdigit((unsigned char)name[i]) : name[i] != pat[i]) return 0;
    return 1;
}

/* 1 when quantize_config.json in dir names gptq-c as its quantizer. */
static int quantizer_is_us(const char *dir)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/quantize_config.json", dir);
    struct stat st;
    /* a regular file of sane size only: never block on a FIFO placed there */
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (1 << 20)) return 0;
    cJSON *root = NULL;
    if (gptq_json_read_file(path, &root) != GPTQ_OK) return 0;
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "meta");
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(meta, "quantizer");
    int ours = 0;
    if (cJSON_IsString(q)) ours = !strncmp(q->valuestring, "gptq-c:", 7);
    const cJSON *it;
    if (cJSON_IsArray(q))
        cJSON_ArrayForEach(it, q)
            if (cJSON_IsString(it) && !strncmp(it->valuestring, "gptq-c:", 7)) ours = 1;
    cJSON_Delete(root);
    return ours;
}

/* 1 when dir is a checkpoint gptq-c wrote and holds nothing else (regular
 * files with the names it writes); 0 with the reason in why[size]. An
 * empty folder counts as ours. */
static int written_by_us(const char *dir, char *why, size_t size)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(why, size, "it cannot be listed: %s", strerror(errno));
        return 0;
    }
    int n = 0, foreign = 0;
    for (struct dirent *e; !foreign && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        n++;
        struct stat st;
        if (!written_name(e->d_name) ||
            fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
            snprintf(why, size, "it holds %s, which gptq-c does not write", e->d_name);
            foreign = 1;
        }
    }
    closedir(d);
    if (n == 0) return 1;
    if (!foreign && !quantizer_is_us(dir)) {
        snprintf(why, size, "it has no quantize_config.json naming gptq-c as the quantizer");
        foreign = 1;
    }
    return !foreign;
}

int gptq_ckpt_check_out(const char *out_dir, const char *model_dir, int overwrite)
{
    if (!out_dir || !out_dir[0]) return gptq_error(GPTQ_ERR_INVALID, "empty output folder name");
    struct stat st;
    const int exists = lstat(out_dir, &st) == 0;
    if (!exists && errno != ENOENT)
        return gptq_error(GPTQ_ERR_IO, "%s: cannot stat: %s", out_dir, strerror(errno));
    if (exists && S_ISLNK(st.st_mode))
        return gptq_error(GPTQ_ERR_INVALID,
                          "%s: is a symbolic link; the output folder is replaced by a rename, "
                          "which would replace the link, not its target: name the folder "
                          "itself, or a new one",
                          out_dir);
    if (exists && !S_ISDIR(st.st_mode))
        return gptq_error(GPTQ_ERR_INVALID,
                          "%s: exists and is not a folder (the output is a checkpoint folder); "
                          "not replacing it: choose another name",
                          out_dir);
    char c[PATH_MAX];
    if (gptq_path_canon(out_dir, c, sizeof c) != GPTQ_OK)
        return gptq_error(GPTQ_ERR_IO, "%s: the folder that would hold the output does not "
                          "exist", out_dir);
    if (model_dir && exists && gptq_same_file(out_dir, model_dir))
        return gptq_error(GPTQ_ERR_INVALID,
                          "the output folder %s is the model folder itself: choose another one",
                          out_dir);
    if (model_dir && exists && gptq_path_within(model_dir, out_dir))
        return gptq_error(GPTQ_ERR_INVALID,
                          "the output folder %s holds the model folder %s: replacing it would "
                          "delete the model; choose another one",
                          out_dir, model_dir);
    if (model_dir && gptq_path_within(out_dir, model_dir))
        return gptq_error(GPTQ_ERR_INVALID,
                          "the output folder %s is inside the model folder %s: write it "
                          "elsewhere",
                          out_dir, model_dir);
    if (exists && gptq_path_within(".", out_dir))
        return gptq_error(GPTQ_ERR_INVALID,
                          "the output folder %s is the current folder or holds it; it is "
                          "replaced as a whole by a rename, which would leave you in a deleted "
                          "folder: name a new folder (e.g. -o ./checkpoint) or run from "
                          "another folder",
                          out_dir);
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", c);
    char *slash = strrchr(parent, '/');
    if (slash == parent) slash[1] = '\0';
    else *slash = '\0';
    struct stat ps;
    if (stat(parent, &ps) != 0)
        return gptq_error(GPTQ_ERR_IO, "%s: cannot stat %s: %s", out_dir, parent, strerror(errno));
    if (exists && st.st_dev != ps.st_dev)
        return gptq_error(GPTQ_ERR_INVALID,
                          "the output folder %s is a mount point; it cannot be replaced by a "
                          "rename: name a folder inside it",
                          out_dir);
    if (access(parent, W_OK | X_OK) != 0)
        return gptq_error(GPTQ_ERR_IO, "%s: cannot write in its folder %s: %s", out_dir, parent,
                          strerror(errno));
    char why[600];
    if (exists && !overwrite && !written_by_us(out_dir, why, sizeof why))
        return gptq_error(GPTQ_ERR_INVALID,
                          "%s: exists and is not an output folder of gptq-c (%s); not replacing "
                          "it: choose a new folder, or give --overwrite to replace it and "
                          "everything in it",
                          out_dir, why);
    return GPTQ_OK;
}

/* "pid P host H boot B": the run, its machine, and the machine's boot (a
 * pid means nothing after a reboot). */
static void run_identity(char *out, size_t size, long pid)
{
    char host[256] = "?", boot[64] = "?";
    if (gethostname(host, sizeof host - 1) != 0) snprintf(host, sizeof host, "?");
    host[sizeof host - 1] = '\0';
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) {
        if (!fgets(boot, sizeof boot, f)) snprintf(boot, sizeof boot, "?");
        fclose(f);
        boot[strcspn(boot, "\n")] = '\0';
    }
    snprintf(out, size, "gptq-c partial output: pid %ld host %s boot %s\n", pid, host, boot);
}

static int write_marker(const char *tmp)
{
    char path[PATH_MAX + 32], text[512];
    snprintf(path, sizeof path, "%s/%s", tmp, PARTIAL_MARKER);
    run_identity(text, sizeof text, (long)getpid());
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        int e = errno;
        return gptq_error(GPTQ_ERR_IO, "%s: cannot write: %s", path, strerror(e));
    }
    return GPTQ_OK;
}

/* 1 when the temporary folder `dir` is ours and its run is over: its
 * marker names a process of this machine and boot that no longer exists,
 * or it has no marker and is empty or a whole checkpoint (a run killed
 * before writing its marker, after its last step, or the old folder it
 * swapped out). */
static int stale_ours(const char *dir)
{
    char path[PATH_MAX + 32], text[512] = "";
    snprintf(path, sizeof path, "%s/%s", dir, PARTIAL_MARKER);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        char why[600];
        return errno == ENOENT && written_by_us(dir, why, sizeof why);
    }
    struct stat st;
    ssize_t k = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? read(fd, text, sizeof text - 1) : -1;
    close(fd);
    if (k <= 0) return 0;
    text[k] = '\0';
    long pid = 0, my_pid = 0;
    char host[256], boot[64], my_host[256], my_boot[64], mine[512];
    if (sscanf(text, "gptq-c partial output: pid %ld host %255s boot %63s", &pid, host, boot) !=
            3 || pid <= 0)
        return 0;
    run_identity(mine, sizeof mine, pid);
    if (sscanf(mine, "gptq-c partial output: pid %ld host %255s boot %63s", &my_pid, my_host,
               my_boot) != 3)
        return 0;
    /* another machine (a shared file system): cannot tell, leave it;
     * another boot of this one: its runs are over */
    if (strcmp(host, my_host)) return 0;
    if (strcmp(boot, my_boot)) return 1;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* Remove "<final>.tmp.XXXXXX" folders beside final_dir that a killed run
 * left (stale_ours). Best effort: what cannot be removed stays. */
static void sweep_stale(const char *final_dir)
{
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", final_dir);
    char *slash = strrchr(parent, '/');
    if (!slash) return;
    const char *base = final_dir + (slash - parent) + 1;
    if (slash == parent) slash[1] = '\0';
    else *slash = '\0';
    const size_t bl = strlen(base);
    DIR *d = opendir(parent);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        const char *nm = e->d_name;
        if (strncmp(nm, base, bl) || strncmp(nm + bl, ".tmp.", 5) || strlen(nm + bl + 5) != 6)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), nm, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode))
            continue;
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", strcmp(parent, "/") ? parent : "", nm) >=
            (int)sizeof path)
            continue;
        if (stale_ours(path)) gptq_remove_tree(path);
    }
    closedir(d);
}

int gptq_ckpt_finish(gptq_ckpt *c, const char *src_dir, const cJSON *quant)
{
    return gptq_ckpt_finish2(c, src_dir, quant, quant);
}

int gptq_ckpt_finish2(gptq_ckpt *c, const char *src_dir, const cJSON *quant,
                      const cJSON *quant_file)
{
    int st = GPTQ_OK;
    char *qtext = NULL;
    if (!c->planned || c->next != c->n) {
        st = gptq_error(GPTQ_ERR_INVALID, "checkpoint: finish with %d of %d tensors written",
                        c->next, c->n);
        goto fail;
    }
    if (c->nshards > 1 && (st = write_index(c))) goto fail;
    if ((st = write_config(c, src_dir, quant))) goto fail;
    qtext = print_json(quant_file, 0);
    if (!qtext) {
        st = gptq_error(GPTQ_ERR_NOMEM, "quantize_config.json: out of memory");
        goto fail;
    }
    size_t ql = strlen(qtext);
    char *q2 = realloc(qtext, ql + 2);
    if (!q2) {
        st = gptq_error(GPTQ_ERR_NOMEM, "quantize_config.json: out of memory");
        goto fail;
    }
    qtext = q2;
    memcpy(qtext + ql, "\n", 2);
    if ((st = write_text(c->tmp, "quantize_config.json", qtext))) goto fail;
    if ((st = copy_files(c, src_dir))) goto fail;
    char marker[sizeof c->tmp + 32];
    snprintf(marker, sizeof marker, "%s/%s", c->tmp, PARTIAL_MARKER);
    if (unlink(marker) != 0 && errno != ENOENT) {
        st = gptq_error(GPTQ_ERR_IO, "%s: cannot remove: %s", marker, strerror(errno));
        goto fail;
    }
    if ((st = gptq_rename_dir_into_place(c->tmp, c->final_dir))) {
        /* If only the removal of the old copy failed, the new folder is in
         * place and tmp is gone: removing it again is harmless. */
        goto fail;
    }
    c->tmp[0] = '\0';
    free(qtext);
    gptq_ckpt_abort(c);
    return GPTQ_OK;
fail:
    free(qtext);
    gptq_ckpt_abort(c);
    return st;
}

/* ------------------------------------------------------------------ */
/* quantization_config                                                 */
/* ------------------------------------------------------------------ */

/* A float option as the decimal the user wrote (0.01f -> 0.01, not
 * 0.009999999776). */
static double short_float(float f)
{
    char b[32];
    snprintf(b, sizeof b, "%.7g", (double)f);
    return strtod(b, NULL);
}

cJSON *gptq_ckpt_quant_config(const gptq_quant_config *q, gptq_format fmt, int true_sequential,
                              int act_group_aware)
{
    const gptq_format_traits *t = gptq_format_get(fmt);
    if (!t) return NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON *meta = cJSON_CreateObject();
    cJSON *quantizer = cJSON_CreateArray();
    if (!o || !meta || !quantizer) goto fail;
    char ver[64];
    snprintf(ver, sizeof ver, "gptq-c:%s", gptq_version());
    const double damp = short_float(q->damp_percent);
    const double mse = q->mse ? short_float(q->mse_norm) : 0.0;
    int ok = cJSON_AddNumberToObject(o, "bits", q->bits) &&
             cJSON_AddNumberToObject(o, "group_size", q->group_size) &&
             cJSON_AddBoolToObject(o, "desc_act", q->desc_act) &&
             cJSON_AddBoolToObject(o, "sym", q->sym) &&
             cJSON_AddBoolToObject(o, "lm_head", 0) &&
             cJSON_AddStringToObject(o, "quant_method", t->quant_method) &&
             /* both spellings: optimum's GPTQQuantizer reads "format" (since
              * optimum PR #2385) and, without it, takes "gptq" and adds v1's
              * +1 to every zero of a v2 checkpoint; vLLM, ExLlamaV2 and
              * llama.cpp's converter read "checkpoint_format" */
             cJSON_AddStringToObject(o, "format", t->name) &&
             cJSON_AddStringToObject(o, "checkpoint_format", t->name) &&
             cJSON_AddStringToObject(o, "pack_dtype", "int32") &&
             cJSON_AddNumberToObject(o, "damp_percent", damp) &&
             cJSON_AddBoolToObject(o, "true_sequential", true_sequential) &&
             cJSON_AddBoolToObject(o, "static_groups", q->static_groups);
    cJSON *qs = ok ? cJSON_CreateString(ver) : NULL;
    if (!qs) goto fail;
    cJSON_AddItemToArray(quantizer, qs);
    cJSON_AddItemToObject(meta, "quantizer", quantizer);
    quantizer = NULL;
    ok = cJSON_AddNumberToObject(meta, "damp_percent", damp) &&
         cJSON_AddNumberToObject(meta, "damp_auto_increment", short_float(q->damp_auto_increment)) &&
         cJSON_AddBoolToObject(meta, "static_groups", q->static_groups) &&
         cJSON_AddBoolToObject(meta, "true_sequential", true_sequential) &&
         cJSON_AddNumberToObject(meta, "mse", mse) &&
         cJSON_AddBoolToObject(meta, "act_group_aware", act_group_aware) &&
         cJSON_AddStringToObject(meta, "method", q->method == GPTQ_METHOD_RTN ? "rtn" : "gptq");
    if (!ok) goto fail;
    cJSON_AddItemToObject(o, "meta", meta);
    return o;
fail:
    cJSON_Delete(o);
    cJSON_Delete(meta);
    cJSON_Delete(quantizer);
    return NULL;
}
