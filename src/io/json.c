/*
 * json.c — JSON files for libgptq: read a whole file and parse it with
 * cJSON (errors give offset, line and column), and typed getters for the
 * config loaders with messages that name the file and the key.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"

/* ------------------------------------------------------------------ */
/* Parsing                                                             */
/* ------------------------------------------------------------------ */

static int is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Describe byte offset `off` of text[n]: "byte 17 (line 2, column 5), near '...'" */
static void describe_pos(const char *text, size_t n, size_t off, char *out, size_t size)
{
    if (off > n) off = n;
    size_t line = 1, col = 1;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    /* A short excerpt from the error on, unprintable bytes as '.', so the
     * message stays one readable line whatever the input holds. */
    char near[24];
    size_t k = 0;
    for (size_t i = off; i < n && k < 20; i++, k++) {
        unsigned char c = (unsigned char)text[i];
        near[k] = (c >= 0x20 && c < 0x7f && c != '\'') ? (char)c : '.';
    }
    near[k] = '\0';
    if (k == 0)
        snprintf(out, size, "byte %zu (line %zu, column %zu), at end of input", off, line, col);
    else
        snprintf(out, size, "byte %zu (line %zu, column %zu), near '%s'", off, line, col, near);
}

/* ------------------------------------------------------------------ */
/* Duplicate keys                                                      */
/* ------------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Append ".key" or "[i]" to path[len..] (cut short when it does not fit). */
static size_t path_push(char *path, size_t len, size_t cap, const cJSON *parent, const cJSON *v,
                        int index)
{
    int k = cJSON_IsObject(parent)
                ? snprintf(path + len, cap - len, "%s%s", len ? "." : "", v->string ? v->string : "")
                : snprintf(path + len, cap - len, "[%d]", index);
    if (k < 0) return len;
    return len + (size_t)k < cap ? len + (size_t)k : cap - 1;
}

/* Refuse an object that repeats a key, anywhere in the tree under v;
 * path[0..len) names v ("" for the root). */
static int unique_keys(const cJSON *v, const char *what, char *path, size_t len, size_t cap)
{
    if (!cJSON_IsObject(v) && !cJSON_IsArray(v)) return GPTQ_OK;
    if (cJSON_IsObject(v)) {
        size_t n = 0;
        for (const cJSON *c = v->child; c; c = c->next) n++;
        if (n > 1) {
            const char **keys = gptq_malloc(n * sizeof *keys, "JSON keys");
            if (!keys) return gptq_error_prefix(GPTQ_ERR_NOMEM, "%s", what);
            size_t i = 0;
            for (const cJSON *c = v->child; c; c = c->next) keys[i++] = c->string ? c->string : "";
            qsort(keys, n, sizeof *keys, cmp_str);
            const char *dup = NULL;
            for (i = 1; i < n && !dup; i++)
                if (strcmp(keys[i], keys[i - 1]) == 0) dup = keys[i];
            if (dup) {
                int rc = gptq_error(GPTQ_ERR_FORMAT,
                                    "%s: duplicate key \"%s\" in %s%s%s: JSON readers disagree "
                                    "on which one counts (Python keeps the last), so it is "
                                    "refused",
                                    what, dup, len ? "\"" : "the top-level object",
                                    len ? path : "", len ? "\"" : "");
                free(keys);
                return rc;
            }
            free(keys);
        }
    }
    int index = 0;
    for (const cJSON *c = v->child; c; c = c->next, index++) {
        if (!cJSON_IsObject(c) && !cJSON_IsArray(c)) continue;
        size_t l = path_push(path, len, cap, v, c, index);
        int rc = unique_keys(c, what, path, l, cap);
        path[len] = '\0';
        if (rc) return rc;
    }
    return GPTQ_OK;
}

int gptq_json_check_unique(const cJSON *root, const char *what)
{
    char path[320] = "";
    return unique_keys(root, what ? what : "(json)", path, 0, sizeof path);
}

int gptq_json_parse(const char *text, size_t n, const char *what, cJSON **out)
{
    *out = NULL;
    if (!what) what = "(json)";
    if (!text && n > 0) return gptq_error(GPTQ_ERR_INVALID, "%s: no text to parse", what);

    /* cJSON is given a NUL-terminated copy: some cJSON releases read past
     * the end of an unterminated buffer on a cut-off string. */
    char *buf = gptq_malloc(n + 1, "JSON text");
    if (!buf) return gptq_error_prefix(GPTQ_ERR_NOMEM, "%s", what);
    if (n) memcpy(buf, text, n);
    buf[n] = '\0';

    size_t first = 0;
    while (first < n && is_json_space(buf[first])) first++;
    if (first == n) {
        free(buf);
        return gptq_error(GPTQ_ERR_FORMAT, "%s: empty JSON (%zu bytes of whitespace)", what, n);
    }

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(buf, &end, 0);
    if (!root) {
        /* cJSON stores the error position in return_parse_end (the same as
         * cJSON_GetErrorPtr, but not a global shared by threads). */
        size_t off = end ? (size_t)(end - buf) : 0;
        char pos[128];
        describe_pos(buf, n, off, pos, sizeof pos);
        free(buf);
        return gptq_error(GPTQ_ERR_FORMAT, "%s: invalid JSON at %s", what, pos);
    }
    size_t off = (size_t)(end - buf);
    while (off < n && is_json_space(buf[off])) off++;
    if (off < n) {
        char pos[128];
        describe_pos(buf, n, off, pos, sizeof pos);
        free(buf);
        cJSON_Delete(root);
        return gptq_error(GPTQ_ERR_FORMAT, "%s: unexpected data after the JSON value at %s",
                          what, pos);
    }
    free(buf);
    int rc = gptq_json_check_unique(root, what);
    if (rc) {
        cJSON_Delete(root);
        return rc;
    }
    *out = root;
    return GPTQ_OK;
}

int gptq_json_read_file(const char *path, cJSON **out)
{
    *out = NULL;
    if (!path) return gptq_error(GPTQ_ERR_INVALID, "gptq_json_read_file: path is NULL");
    int fd;
    uint64_t size;
    int rc = gptq_open_input(path, &fd, &size);
    if (rc) return rc;
    if (size > GPTQ_JSON_MAX_BYTES) {
        close(fd);
        return gptq_error(GPTQ_ERR_FORMAT,
                          "%s: %llu bytes, larger than the %zu MiB limit for JSON files", path,
                          (unsigned long long)size, GPTQ_JSON_MAX_BYTES >> 20);
    }
    /* Up to the limit + 1 byte (a file may grow after the fstat): more
     * than the limit is refused, not cut. */
    char *buf = NULL;
    size_t n = 0;
    int more = 0;
    rc = gptq_read_fd(fd, path, GPTQ_JSON_MAX_BYTES, size, &buf, &n, &more);
    close(fd);
    if (rc) return rc;
    if (more) {
        free(buf);
        return gptq_error(GPTQ_ERR_FORMAT, "%s: larger than the %zu MiB limit for JSON files",
                          path, GPTQ_JSON_MAX_BYTES >> 20);
    }
    rc = gptq_json_parse(buf, n, path, out);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Getters                                                             */
/* ------------------------------------------------------------------ */

static const char *type_name(const cJSON *v)
{
    if (cJSON_IsString(v)) return "string";
    if (cJSON_IsNumber(v)) return "number";
    if (cJSON_IsBool(v)) return "boolean";
    if (cJSON_IsArray(v)) return "array";
    if (cJSON_IsObject(v)) return "object";
    if (cJSON_IsNull(v)) return "null";
    return "invalid";
}

/* Look `key` up; GPTQ_OK with *v set, GPTQ_JSON_ABSENT, or an error. */
static int lookup(const cJSON *obj, const char *key, int required, const char *file,
                  const char *want, const cJSON **v)
{
    if (!file) file = "(json)";
    if (!key) return gptq_error(GPTQ_ERR_INVALID, "%s: JSON getter called without a key", file);
    if (!cJSON_IsObject(obj))
        return gptq_error(GPTQ_ERR_FORMAT, "%s: expected a JSON object holding \"%s\", got %s",
                          file, key, obj ? type_name(obj) : "nothing");
    /* Case-sensitive: config keys differ only in case at times. */
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!item || cJSON_IsNull(item)) {
        if (required)
            return gptq_error(GPTQ_ERR_FORMAT, "%s: \"%s\" is missing (must be %s)", file, key,
                              want);
        return GPTQ_JSON_ABSENT;
    }
    *v = item;
    return GPTQ_OK;
}

static int wrong_type(const char *file, const char *key, const char *want, const cJSON *v)
{
    return gptq_error(GPTQ_ERR_FORMAT, "%s: \"%s\" must be %s (got %s)", file ? file : "(json)",
                      key, want, type_name(v));
}

int gptq_json_get_int(const cJSON *obj, const char *key, int64_t *out, int required,
                      const char *file)
{
    const cJSON *v = NULL;
    int rc = lookup(obj, key, required, file, "an integer", &v);
    if (rc != GPTQ_OK) return rc;
    if (!cJSON_IsNumber(v)) return wrong_type(file, key, "an integer", v);
    double d = v->valuedouble;
    /* |d| < 2^53: from 2^53 on a double no longer holds every integer, so
     * the value in the file may not be the one we read (2^53 + 1 parses as
     * 2^53). */
    const double lim = 9007199254740992.0;
    if (!(d > -lim && d < lim) || floor(d) != d)
        return gptq_error(GPTQ_ERR_FORMAT, "%s: \"%s\" must be an integer (got %.17g)",
                          file ? file : "(json)", key, d);
    *out = (int64_t)d;
    return GPTQ_OK;
}

int gptq_json_get_num(const cJSON *obj, const char *key, double *out, int required,
                      const char *file)
{
    const cJSON *v = NULL;
    int rc = lookup(obj, key, required, file, "a number", &v);
    if (rc != GPTQ_OK) return rc;
    if (!cJSON_IsNumber(v)) return wrong_type(file, key, "a number", v);
    if (!isfinite(v->valuedouble))
        return gptq_error(GPTQ_ERR_FORMAT, "%s: \"%s\" must be a finite number",
                          file ? file : "(json)", key);
    *out = v->valuedouble;
    return GPTQ_OK;
}

int gptq_json_get_str(const cJSON *obj, const char *key, const char **out, int required,
                      const char *file)
{
    const cJSON *v = NULL;
    int rc = lookup(obj, key, required, file, "a string", &v);
    if (rc != GPTQ_OK) return rc;
    if (!cJSON_IsString(v) || !v->valuestring) return wrong_type(file, key, "a string", v);
    *out = v->valuestring;
    return GPTQ_OK;
}

int gptq_json_get_bool(const cJSON *obj, const char *key, int *out, int required,
                       const char *file)
{
    const cJSON *v = NULL;
    int rc = lookup(obj, key, required, file, "true or false", &v);
    if (rc != GPTQ_OK) return rc;
    if (!cJSON_IsBool(v)) return wrong_type(file, key, "true or false", v);
    *out = cJSON_IsTrue(v) ? 1 : 0;
    return GPTQ_OK;
}

int gptq_json_get_object(const cJSON *obj, const char *key, const cJSON **out, int required,
                         const char *file)
{
    const cJSON *v = NULL;
    int rc = lookup(obj, key, required, file, "an object", &v);
    if (rc != GPTQ_OK) return rc;
    if (!cJSON_IsObject(v)) return wrong_type(file, key, "an object", v);
    *out = v;
    return GPTQ_OK;
}

int gptq_json_get_array(const cJSON *obj, const char *key, const cJSON **out, int required,
                        const char *file)
{
    const cJSON *v = NULL;
    int rc = lookup(obj, key, required, file, "an array", &v);
    if (rc != GPTQ_OK) return rc;
    if (!cJSON_IsArray(v)) return wrong_type(file, key, "an array", v);
    *out = v;
    return GPTQ_OK;
}
