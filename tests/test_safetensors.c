/*
 * test_safetensors.c — the safetensors reader and writer.
 *
 * Round trips (every dtype, empty and scalar tensors, chunked writes, odd
 * offsets), the header bytes checked against the format description by
 * parsing them independently, atomicity of the writer (abort, overrun,
 * short commit, a real write failure via RLIMIT_FSIZE), and one test per
 * malformed file: each bad file is written byte by byte here and the test
 * asserts the status code and a piece of the message.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "gptq.h"

/* ------------------------------------------------------------------ */
/* Fixture: a fresh folder per test                                    */
/* ------------------------------------------------------------------ */

static char g_dir[256];

static void setup(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/gptq-test-st-XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir), "mkdtemp: %s", strerror(errno));
}

static void teardown(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
}

TestSuite(st, .init = setup, .fini = teardown);

/* Path of `name` inside the test folder (a rotating static buffer). */
static const char *P(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

/* Number of entries in the test folder (to see that no temporary is left). */
static int dir_entries(void)
{
    DIR *d = opendir(g_dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp, "%s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(data, 1, n, fp), n);
    cr_assert_eq(fclose(fp), 0);
}

/* Whole file into a malloc'd buffer; *n its size. */
static uint8_t *read_bytes(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    cr_assert_not_null(fp, "%s: %s", path, strerror(errno));
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)sz + 1);
    cr_assert_eq(fread(b, 1, (size_t)sz, fp), (size_t)sz);
    fclose(fp);
    *n = (size_t)sz;
    return b;
}

/* A safetensors file by hand: 8-byte little-endian `hlen`, the header
 * text, then `ndata` data bytes (a counting pattern). */
static void write_st(const char *path, uint64_t hlen, const char *header, size_t ndata)
{
    size_t h = strlen(header);
    size_t n = 8 + h + ndata;
    uint8_t *b = malloc(n);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(hlen >> (8 * i));
    memcpy(b + 8, header, h);
    for (size_t i = 0; i < ndata; i++) b[8 + h + i] = (uint8_t)i;
    write_bytes(path, b, n);
    free(b);
}

/* The usual case: the length field matches the header. */
static void write_st_ok(const char *path, const char *header, size_t ndata)
{
    write_st(path, strlen(header), header, ndata);
}

#define ASSERT_ERR(expr, code, sub)                                                         \
    do {                                                                                    \
        int rc_ = (expr);                                                                   \
        cr_assert_eq(rc_, (code), "status %d (%s), want %d (%s); message: %s", rc_,         \
                     gptq_status_str(rc_), (code), gptq_status_str(code), gptq_last_error()); \
        cr_assert_not_null(strstr(gptq_last_error(), (sub)),                                \
                           "message \"%s\" lacks \"%s\"", gptq_last_error(), (sub));        \
    } while (0)

#define ASSERT_OK(expr)                                                                     \
    do {                                                                                    \
        int rc_ = (expr);                                                                   \
        cr_assert_eq(rc_, GPTQ_OK, "status %d: %s", rc_, gptq_last_error());               \
    } while (0)

/* Open a bad file and check the failure. */
static void expect_bad(const char *path, int code, const char *sub)
{
    gptq_st_file *f = (gptq_st_file *)0x1;
    ASSERT_ERR(gptq_st_open(path, &f), code, sub);
    cr_assert_null(f, "out must be NULL on failure");
    /* Every reader message names the file. */
    cr_assert_not_null(strstr(gptq_last_error(), path), "message \"%s\" lacks the path",
                       gptq_last_error());
}

/* ------------------------------------------------------------------ */
/* Round trips                                                         */
/* ------------------------------------------------------------------ */

typedef struct spec {
    const char *name;
    gptq_dtype dt;
    int ndim;
    int64_t shape[GPTQ_MAX_DIMS];
} spec;

/* Every dtype; a U8 of odd size first so later tensors sit at odd
 * offsets; a scalar; empty tensors in the middle and at the end. */
static const spec k_specs[] = {
    {"odd.u8", GPTQ_U8, 1, {5}},
    {"w.f32", GPTQ_F32, 2, {2, 3}},
    {"h.f16", GPTQ_F16, 1, {4}},
    {"empty.mid", GPTQ_F32, 3, {2, 0, 3}},
    {"b.bf16", GPTQ_BF16, 3, {1, 1, 2}},
    {"q.i32", GPTQ_I32, 1, {3}},
    {"l.i64", GPTQ_I64, 1, {2}},
    {"scalar.f64", GPTQ_F64, 0, {0}},
    {"s.i16", GPTQ_I16, 2, {3, 1}},
    {"c.i8", GPTQ_I8, 1, {7}},
    {"m.bool", GPTQ_BOOL, 1, {2}},
    {"empty.end", GPTQ_BF16, 1, {0}},
};
#define NSPECS ((int)(sizeof k_specs / sizeof k_specs[0]))

static size_t spec_bytes(const spec *s)
{
    size_t n = 1;
    for (int d = 0; d < s->ndim; d++) n *= (size_t)s->shape[d];
    return n * gptq_dtype_size(s->dt);
}

/* Test pattern: byte k of tensor i. */
static uint8_t pat(int i, size_t k) { return (uint8_t)(31 * i + 7 * k + 1); }

static void write_specs(const char *path, size_t chunk)
{
    gptq_st_writer *w = NULL;
    ASSERT_OK(gptq_st_writer_open(path, &w));
    ASSERT_OK(gptq_st_writer_metadata(w, "quantizer", "gptq-c"));
    ASSERT_OK(gptq_st_writer_metadata(w, "note", "h\xc3\xa9llo \"quoted\""));
    for (int i = 0; i < NSPECS; i++)
        ASSERT_OK(gptq_st_writer_declare(w, k_specs[i].name, k_specs[i].dt, k_specs[i].ndim,
                                         k_specs[i].shape));
    for (int i = 0; i < NSPECS; i++) {
        size_t n = spec_bytes(&k_specs[i]);
        uint8_t *b = malloc(n + 1);
        for (size_t k = 0; k < n; k++) b[k] = pat(i, k);
        for (size_t at = 0; at < n; at += chunk)
            ASSERT_OK(gptq_st_writer_write(w, b + at, n - at < chunk ? n - at : chunk));
        free(b);
    }
    ASSERT_OK(gptq_st_writer_commit(w));
}

static void check_specs(const char *path)
{
    gptq_st_file *f = NULL;
    ASSERT_OK(gptq_st_open(path, &f));
    cr_assert_eq(gptq_st_count(f), NSPECS);
    cr_assert_str_eq(gptq_st_path(f), path);
    cr_assert_str_eq(gptq_st_metadata(f, "format"), "pt");
    cr_assert_str_eq(gptq_st_metadata(f, "quantizer"), "gptq-c");
    cr_assert_str_eq(gptq_st_metadata(f, "note"), "h\xc3\xa9llo \"quoted\"");
    cr_assert_null(gptq_st_metadata(f, "absent"));
    for (int i = 0; i < NSPECS; i++) {
        const spec *s = &k_specs[i];
        gptq_st_info info;
        ASSERT_OK(gptq_st_find(f, s->name, &info));
        cr_assert_str_eq(info.name, s->name);
        cr_assert_eq(info.dtype, s->dt, "%s", s->name);
        cr_assert_eq(info.ndim, s->ndim, "%s", s->name);
        for (int d = 0; d < s->ndim; d++) cr_assert_eq(info.shape[d], s->shape[d]);
        size_t n = spec_bytes(s);
        cr_assert_eq(info.nbytes, n, "%s", s->name);
        const uint8_t *b = info.data;
        for (size_t k = 0; k < n; k++)
            cr_assert_eq(b[k], pat(i, k), "%s byte %zu", s->name, k);
    }
    /* gptq_st_get walks the file in data order. */
    const uint8_t *prev = NULL;
    for (int i = 0; i < NSPECS; i++) {
        gptq_st_info info;
        ASSERT_OK(gptq_st_get(f, i, &info));
        cr_assert(prev == NULL || (const uint8_t *)info.data >= prev);
        prev = (const uint8_t *)info.data + info.nbytes;
    }
    gptq_st_info info;
    ASSERT_ERR(gptq_st_get(f, NSPECS, &info), GPTQ_ERR_INVALID, "out of range");
    ASSERT_ERR(gptq_st_get(f, -1, &info), GPTQ_ERR_INVALID, "out of range");
    ASSERT_ERR(gptq_st_find(f, "nope", &info), GPTQ_ERR_INVALID, "no tensor named 'nope'");
    gptq_st_close(f);
}

Test(st, round_trip_one_chunk_per_tensor)
{
    write_specs(P("a.safetensors"), (size_t)1 << 20);
    check_specs(P("a.safetensors"));
    cr_assert_eq(dir_entries(), 1, "a temporary file was left behind");
}

Test(st, round_trip_chunked_writes)
{
    write_specs(P("a.safetensors"), 3);
    check_specs(P("a.safetensors"));
    write_specs(P("b.safetensors"), 1);
    check_specs(P("b.safetensors"));
    /* The same declarations give the same bytes however they are chunked. */
    size_t na, nb;
    uint8_t *a = read_bytes(P("a.safetensors"), &na);
    uint8_t *b = read_bytes(P("b.safetensors"), &nb);
    cr_assert_eq(na, nb);
    cr_assert(memcmp(a, b, na) == 0);
    free(a);
    free(b);
}

/* The bytes on disk against the format description, parsed here without
 * the library's reader: length field, padding, key order, offsets. */
Test(st, header_bytes_follow_the_format)
{
    write_specs(P("a.safetensors"), 64);
    size_t n;
    uint8_t *b = read_bytes(P("a.safetensors"), &n);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | b[i];
    cr_assert_eq(hlen % 8, 0, "header length %" PRIu64 " not padded to 8", hlen);
    cr_assert(hlen + 8 <= n);
    /* Padding is spaces after the closing brace. */
    size_t end = 8 + (size_t)hlen;
    while (b[end - 1] == ' ') end--;
    cr_assert_eq(b[end - 1], '}');
    cr_assert(8 + hlen - end < 8);

    char *text = strndup((const char *)b + 8, (size_t)hlen);
    cJSON *root = cJSON_Parse(text);
    cr_assert_not_null(root);
    /* __metadata__ first, "format" first inside it. */
    cJSON *first = root->child;
    cr_assert_str_eq(first->string, "__metadata__");
    cr_assert_str_eq(first->child->string, "format");
    cr_assert_str_eq(first->child->valuestring, "pt");
    /* Tensors follow in declaration order, packed back to back. */
    uint64_t at = 0;
    cJSON *e = first->next;
    for (int i = 0; i < NSPECS; i++, e = e->next) {
        cr_assert_not_null(e);
        cr_assert_str_eq(e->string, k_specs[i].name);
        cr_assert_str_eq(cJSON_GetObjectItem(e, "dtype")->valuestring,
                         gptq_dtype_name(k_specs[i].dt));
        cJSON *off = cJSON_GetObjectItem(e, "data_offsets");
        cr_assert_eq((uint64_t)cJSON_GetArrayItem(off, 0)->valuedouble, at);
        at += spec_bytes(&k_specs[i]);
        cr_assert_eq((uint64_t)cJSON_GetArrayItem(off, 1)->valuedouble, at);
        cJSON *sh = cJSON_GetObjectItem(e, "shape");
        cr_assert_eq(cJSON_GetArraySize(sh), k_specs[i].ndim);
    }
    cr_assert_null(e);
    cr_assert_eq(8 + hlen + at, n, "data region is not exactly the tensors");
    cJSON_Delete(root);
    free(text);
    free(b);

    struct stat st;
    cr_assert_eq(stat(P("a.safetensors"), &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0644);
}

Test(st, no_tensors)
{
    gptq_st_writer *w;
    ASSERT_OK(gptq_st_writer_open(P("e.safetensors"), &w));
    ASSERT_OK(gptq_st_writer_commit(w));
    gptq_st_file *f;
    ASSERT_OK(gptq_st_open(P("e.safetensors"), &f));
    cr_assert_eq(gptq_st_count(f), 0);
    cr_assert_str_eq(gptq_st_metadata(f, "format"), "pt");
    gptq_st_close(f);

    /* A minimal hand-made file: "{}" and no data. */
    write_st_ok(P("m.safetensors"), "{}", 0);
    ASSERT_OK(gptq_st_open(P("m.safetensors"), &f));
    cr_assert_eq(gptq_st_count(f), 0);
    cr_assert_null(gptq_st_metadata(f, "format"));
    gptq_st_close(f);
}

Test(st, format_metadata_can_be_overridden)
{
    gptq_st_writer *w;
    ASSERT_OK(gptq_st_writer_open(P("e.safetensors"), &w));
    ASSERT_OK(gptq_st_writer_metadata(w, "format", "np"));
    ASSERT_OK(gptq_st_writer_metadata(w, "k", "1"));
    ASSERT_OK(gptq_st_writer_metadata(w, "k", "2")); /* last value wins */
    ASSERT_OK(gptq_st_writer_commit(w));
    gptq_st_file *f;
    ASSERT_OK(gptq_st_open(P("e.safetensors"), &f));
    cr_assert_str_eq(gptq_st_metadata(f, "format"), "np");
    cr_assert_str_eq(gptq_st_metadata(f, "k"), "2");
    gptq_st_close(f);
}

/* Values from the IEEE formats: f16 0x3c00 = 1, 0xc000 = -2, 0x3800 = 0.5,
 * 0x7bff = 65504 (largest), 0x0001 = 2^-24 (smallest subnormal);
 * bf16 0x3f80 = 1, 0xc040 = -3, 0x4049 = 3.140625. The U8 first puts both
 * 16-bit tensors at odd addresses. */
Test(st, read_f32_converts_f16_bf16_f32)
{
    const uint16_t h[5] = {0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001};
    const uint16_t bf[3] = {0x3f80, 0xc040, 0x4049};
    const float fl[2] = {1.5f, -0.25f};
    const uint8_t one = 9;
    const int32_t iv[1] = {7};
    gptq_st_writer *w;
    ASSERT_OK(gptq_st_writer_open(P("c.safetensors"), &w));
    ASSERT_OK(gptq_st_writer_declare(w, "pad", GPTQ_U8, 1, (int64_t[]){1}));
    ASSERT_OK(gptq_st_writer_declare(w, "h", GPTQ_F16, 1, (int64_t[]){5}));
    ASSERT_OK(gptq_st_writer_declare(w, "bf", GPTQ_BF16, 2, (int64_t[]){3, 1}));
    ASSERT_OK(gptq_st_writer_declare(w, "f", GPTQ_F32, 1, (int64_t[]){2}));
    ASSERT_OK(gptq_st_writer_declare(w, "i", GPTQ_I32, 1, (int64_t[]){1}));
    ASSERT_OK(gptq_st_writer_declare(w, "z", GPTQ_F16, 2, (int64_t[]){0, 4}));
    ASSERT_OK(gptq_st_writer_write(w, &one, 1));
    ASSERT_OK(gptq_st_writer_write(w, h, sizeof h));
    ASSERT_OK(gptq_st_writer_write(w, bf, sizeof bf));
    ASSERT_OK(gptq_st_writer_write(w, fl, sizeof fl));
    ASSERT_OK(gptq_st_writer_write(w, iv, sizeof iv));
    ASSERT_OK(gptq_st_writer_commit(w));

    gptq_st_file *f;
    ASSERT_OK(gptq_st_open(P("c.safetensors"), &f));
    gptq_tensor t;
    ASSERT_OK(gptq_st_read_f32(f, "h", &t));
    cr_assert_eq(t.dtype, GPTQ_F32);
    cr_assert_eq(t.ndim, 1);
    cr_assert_eq(t.shape[0], 5);
    const float *v = t.data;
    cr_assert_eq(v[0], 1.0f);
    cr_assert_eq(v[1], -2.0f);
    cr_assert_eq(v[2], 0.5f);
    cr_assert_eq(v[3], 65504.0f);
    cr_assert_eq(v[4], 0x1p-24f);
    gptq_tensor_free(&t);

    ASSERT_OK(gptq_st_read_f32(f, "bf", &t));
    cr_assert_eq(t.ndim, 2);
    cr_assert_eq(t.shape[0], 3);
    v = t.data;
    cr_assert_eq(v[0], 1.0f);
    cr_assert_eq(v[1], -3.0f);
    cr_assert_eq(v[2], 3.140625f);
    gptq_tensor_free(&t);

    ASSERT_OK(gptq_st_read_f32(f, "f", &t));
    v = t.data;
    cr_assert_eq(v[0], 1.5f);
    cr_assert_eq(v[1], -0.25f);
    gptq_tensor_free(&t);

    ASSERT_OK(gptq_st_read_f32(f, "z", &t));
    cr_assert_eq(gptq_tensor_numel(&t), 0);
    cr_assert_eq(t.shape[1], 4);
    gptq_tensor_free(&t);

    ASSERT_ERR(gptq_st_read_f32(f, "i", &t), GPTQ_ERR_UNSUPPORTED, "tensor 'i' has dtype I32");
    ASSERT_ERR(gptq_st_read_f32(f, "nope", &t), GPTQ_ERR_INVALID, "no tensor named 'nope'");
    gptq_st_close(f);
}

Test(st, save_convenience)
{
    gptq_tensor t[2];
    ASSERT_OK(gptq_tensor_alloc(&t[0], GPTQ_F32, 2, (int64_t[]){2, 2}));
    ASSERT_OK(gptq_tensor_alloc(&t[1], GPTQ_I32, 1, (int64_t[]){3}));
    for (int i = 0; i < 4; i++) ((float *)t[0].data)[i] = (float)i - 1.5f;
    for (int i = 0; i < 3; i++) ((int32_t *)t[1].data)[i] = -i;
    const char *names[2] = {"a", "b"};
    ASSERT_OK(gptq_st_save(P("s.safetensors"), 2, names, t));
    gptq_st_file *f;
    ASSERT_OK(gptq_st_open(P("s.safetensors"), &f));
    cr_assert_eq(gptq_st_count(f), 2);
    gptq_st_info info;
    ASSERT_OK(gptq_st_find(f, "a", &info));
    cr_assert(memcmp(info.data, t[0].data, 16) == 0);
    ASSERT_OK(gptq_st_find(f, "b", &info));
    cr_assert(memcmp(info.data, t[1].data, 12) == 0);
    gptq_st_close(f);
    /* A duplicate name fails and leaves nothing. */
    const char *dup[2] = {"a", "a"};
    ASSERT_ERR(gptq_st_save(P("d.safetensors"), 2, dup, t), GPTQ_ERR_INVALID,
               "tensor 'a' declared twice");
    cr_assert_eq(access(P("d.safetensors"), F_OK), -1);
    cr_assert_eq(dir_entries(), 1);
    gptq_tensor_free(&t[0]);
    gptq_tensor_free(&t[1]);
}

/* ------------------------------------------------------------------ */
/* Writer: atomicity and argument checks                               */
/* ------------------------------------------------------------------ */

static const char k_old[] = "OLD CONTENT, must survive";

static void put_old(const char *path) { write_bytes(path, k_old, sizeof k_old); }

static void assert_old(const char *path)
{
    size_t n;
    uint8_t *b = read_bytes(path, &n);
    cr_assert_eq(n, sizeof k_old);
    cr_assert(memcmp(b, k_old, n) == 0, "the existing file was changed");
    free(b);
    cr_assert_eq(dir_entries(), 1, "a temporary file was left behind");
}

Test(st, abort_leaves_existing_file)
{
    const char *p = P("x.safetensors");
    put_old(p);
    gptq_st_writer *w;
    ASSERT_OK(gptq_st_writer_open(p, &w));
    cr_assert_eq(dir_entries(), 2); /* the temporary exists while writing */
    ASSERT_OK(gptq_st_writer_declare(w, "a", GPTQ_F32, 1, (int64_t[]){4}));
    float v[2] = {1, 2};
    ASSERT_OK(gptq_st_writer_write(w, v, sizeof v));
    gptq_st_writer_abort(w);
    assert_old(p);
}

Test(st, overrun_fails_and_cleans_up)
{
    const char *p = P("x.safetensors");
    put_old(p);
    gptq_st_writer *w;
    ASSERT_OK(gptq_st_writer_open(p, &w));
    ASSERT_OK(gptq_st_writer_declare(w, "a", GPTQ_F32, 1, (int64_t[]){2}));
    ASSERT_OK(gptq_st_writer_declare(w, "b", GPTQ_F32, 1, (int64_t[]){1}));
    float v[3] = {1, 2, 3};
    ASSERT_ERR(gptq_st_writer_write(w, v, sizeof v), GPTQ_ERR_INVALID,
               "tensor 'a': write of 12 bytes overruns its declared size of 8 bytes");
    cr_assert_eq(dir_entries(), 1, "temporary not removed at the failure");
    /* Later calls refuse; commit fails and frees. */
    ASSERT_ERR(gptq_st_writer_write(w, v, 4), GPTQ_ERR_INVALID, "failed earlier");
    ASSERT_ERR(gptq_st_writer_commit(w), GPTQ_ERR_INVALID, "failed earlier");
    assert_old(p);
}

Test(st, write_after_last_tensor_fails)
{
    const char *p = P("x.safetensors");
    put_old(p);
    gptq_st_writer *w;
    ASSERT_OK(gptq_st_writer_open(p, &w));
    ASSERT_OK(gptq_st_writer_declare(w, "a", GPTQ_I8, 1, (int64_t[]){2}));
    ASSERT_OK(gptq_st_writer_write(w, "ab", 2));
    ASSERT_ERR(gptq_st_writer_write(w, "c", 1), GPTQ_ERR_INVALID,
               "after all 1 declared tensors are complete");
    gptq_st_writer_abort(w);
    assert_old(p);
}

Test(st, short_commit_fails_and_cleans_up)
{
    const char *p = P("x.safetensors");
    put_old(p);
    gptq_st_writer *w;
    ASSERT_OK(gptq_st_writer_open(p, &w));
    ASSERT_OK(gptq_st_writer_declare(w, "a", GPTQ_F32, 1, (int64_t[]){2}));
    ASSERT_OK(gptq_st_writer_declare(w, "b", GPTQ_F16, 1, (int64_t[]){4}));
    float v[2] = {1, 2};
    ASSERT_OK(gptq_st_writer_write(w, v, sizeof v));
    ASSERT_OK(gptq_st_writer_write(w, v, 2));
    ASSERT_ERR(gptq_st_writer_commit(w), GPTQ_ERR_INVALID,
               "commit with tensor 'b' incomplete: 2 of 8 bytes written");
    assert_old(p);
}

/* A real write error: the file-size limit makes write(2) fail with EFBIG
 * once the temporary passes 64 KiB (SIGXFSZ ignored so it is an error,
 * not a signal). The status must be an I/O error, from write or commit. */
Test(st, write_error_fails_and_cleans_up)
{
    const char *p = P("x.safetensors");
    put_old(p);
    size_t n = (size_t)1 << 20;
    uint8_t *big = calloc(n, 1);
    gptq_st_writer *w;
    ASSERT_OK(gptq_st_writer_open(p, &w));
    ASSERT_OK(gptq_st_writer_declare(w, "big", GPTQ_U8, 1, (int64_t[]){(int64_t)n}));

    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 64 << 10;
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = gptq_st_writer_write(w, big, n);
    if (rc == GPTQ_OK) rc = gptq_st_writer_commit(w);
    else gptq_st_writer_abort(w);
    setrlimit(RLIMIT_FSIZE, &old);

    cr_assert_eq(rc, GPTQ_ERR_IO, "status %d: %s", rc, gptq_last_error());
    cr_assert_not_null(strstr(gptq_last_error(), strerror(EFBIG)), "%s", gptq_last_error());
    cr_assert_not_null(strstr(gptq_last_error(), p), "%s", gptq_last_error());
    free(big);
    assert_old(p);
}

Test(st, commit_replaces_existing_file)
{
    const char *p = P("x.safetensors");
    put_old(p);
    write_specs(p, 100);
    check_specs(p);
    cr_assert_eq(dir_entries(), 1);
}

Test(st, unwritable_output_path)
{
    gptq_st_writer *w = (gptq_st_writer *)0x1;
    /* Tests run as root, so a read-only folder would not stop the write:
     * use a path under a regular file and one under a missing folder. */
    ASSERT_ERR(gptq_st_writer_open("/etc/hostname/x.safetensors", &w), GPTQ_ERR_IO,
               "/etc/hostname/x.safetensors: cannot create a temporary file beside it: Not a "
               "directory");
    cr_assert_null(w);
    char missing[600];
    snprintf(missing, sizeof missing, "%s/no/such/dir/x.safetensors", g_dir);
    ASSERT_ERR(gptq_st_writer_open(missing, &w), GPTQ_ERR_IO, "No such file or directory");
    cr_assert_not_null(strstr(gptq_last_error(), missing));
    const char *names[1] = {"a"};
    gptq_tensor t;
    ASSERT_OK(gptq_tensor_alloc(&t, GPTQ_F32, 1, (int64_t[]){1}));
    ASSERT_ERR(gptq_st_save(missing, 1, names, &t), GPTQ_ERR_IO, missing);
    gptq_tensor_free(&t);
}

Test(st, declare_checks)
{
    gptq_st_writer *w;
    ASSERT_OK(gptq_st_writer_open(P("x.safetensors"), &w));
    ASSERT_OK(gptq_st_writer_declare(w, "a", GPTQ_F32, 1, (int64_t[]){2}));
    ASSERT_ERR(gptq_st_writer_declare(w, "a", GPTQ_F16, 1, (int64_t[]){2}), GPTQ_ERR_INVALID,
               "tensor 'a' declared twice");
    ASSERT_ERR(gptq_st_writer_declare(w, "b", GPTQ_DTYPE_COUNT, 1, (int64_t[]){2}),
               GPTQ_ERR_INVALID, "tensor 'b': bad dtype");
    ASSERT_ERR(gptq_st_writer_declare(w, "c", GPTQ_F32, 2, (int64_t[]){2, -1}), GPTQ_ERR_INVALID,
               "tensor 'c': dimension 1 is negative");
    ASSERT_ERR(gptq_st_writer_declare(w, "d", GPTQ_F32, GPTQ_MAX_DIMS + 1, (int64_t[9]){0}),
               GPTQ_ERR_INVALID, "tensor 'd': ndim 9");
    ASSERT_ERR(gptq_st_writer_declare(w, "e", GPTQ_F32, 3,
                                      (int64_t[]){INT64_C(1) << 30, INT64_C(1) << 30, 1 << 20}),
               GPTQ_ERR_INVALID, "tensor 'e': too large");
    ASSERT_ERR(gptq_st_writer_declare(w, "__metadata__", GPTQ_F32, 0, NULL), GPTQ_ERR_INVALID,
               "not a tensor name");
    ASSERT_ERR(gptq_st_writer_declare(w, "", GPTQ_F32, 0, NULL), GPTQ_ERR_INVALID, "empty");
    ASSERT_ERR(gptq_st_writer_declare(w, "bad\xff", GPTQ_F32, 0, NULL), GPTQ_ERR_INVALID,
               "not valid UTF-8");
    /* The rejected declarations did not spoil the writer. */
    float v[2] = {3, 4};
    ASSERT_OK(gptq_st_writer_write(w, v, sizeof v));
    ASSERT_ERR(gptq_st_writer_declare(w, "late", GPTQ_F32, 0, NULL), GPTQ_ERR_INVALID,
               "declared after data was written");
    ASSERT_ERR(gptq_st_writer_metadata(w, "late", "x"), GPTQ_ERR_INVALID,
               "given after data was written");
    ASSERT_OK(gptq_st_writer_commit(w));
    gptq_st_file *f;
    ASSERT_OK(gptq_st_open(P("x.safetensors"), &f));
    cr_assert_eq(gptq_st_count(f), 1);
    gptq_st_close(f);
}

/* ------------------------------------------------------------------ */
/* Malformed files                                                     */
/* ------------------------------------------------------------------ */

Test(st, missing_file)
{
    expect_bad(P("absent.safetensors"), GPTQ_ERR_IO, "cannot open: No such file or directory");
}

Test(st, directory_instead_of_file)
{
    expect_bad(g_dir, GPTQ_ERR_IO, "not a regular file (a directory)");
}

/* A FIFO is refused at once (a blocking open would wait for a writer
 * forever), a device likewise, a symlink loop says so. */
Test(st, fifo_device_and_symlink_loop)
{
    cr_assert_eq(mkfifo(P("pipe.safetensors"), 0644), 0);
    expect_bad(P("pipe.safetensors"), GPTQ_ERR_IO, "pipe.safetensors: not a regular file (a FIFO)");
    expect_bad("/dev/zero", GPTQ_ERR_IO, "/dev/zero: not a regular file (a character device)");
    cr_assert_eq(symlink("loop.safetensors", P("loop.safetensors")), 0);
    expect_bad(P("loop.safetensors"), GPTQ_ERR_IO, "cannot open: Too many levels of symbolic links");
}

Test(st, shorter_than_8_bytes)
{
    write_bytes(P("bad.safetensors"), "\x02\0\0\0\0", 5);
    expect_bad(P("bad.safetensors"), GPTQ_ERR_FORMAT, "file is 5 bytes, too short");
    write_bytes(P("empty.safetensors"), "", 0);
    expect_bad(P("empty.safetensors"), GPTQ_ERR_FORMAT, "file is 0 bytes");
}

Test(st, header_cut)
{
    /* The length says 100 bytes, the file ends after 20. */
    write_st(P("bad.safetensors"), 100, "{\"a\": {\"dtype\": \"F3", 0);
    expect_bad(P("bad.safetensors"), GPTQ_ERR_FORMAT,
               "header length 100 reaches past the end of the file");
}

Test(st, data_cut)
{
    write_st_ok(P("bad.safetensors"),
                "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8);
    expect_bad(P("bad.safetensors"), GPTQ_ERR_FORMAT,
               "tensor 'w': data_offsets [0, 16) reach past the end of the data (8 bytes");
}

Test(st, header_length_absurd)
{
    write_st(P("bad.safetensors"), UINT64_C(1) << 60, "{}", 0);
    expect_bad(P("bad.safetensors"), GPTQ_ERR_FORMAT,
               "header length 1152921504606846976 is not plausible");
    write_st(P("one.safetensors"), 1, "{}", 0);
    expect_bad(P("one.safetensors"), GPTQ_ERR_FORMAT, "header length 1 is not plausible");
    write_st(P("zero.safetensors"), 0, "{}", 0);
    expect_bad(P("zero.safetensors"), GPTQ_ERR_FORMAT, "header length 0 is not plausible");
}

Test(st, corrupt_json)
{
    write_st_ok(P("bad.safetensors"), "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],}", 0);
    expect_bad(P("bad.safetensors"), GPTQ_ERR_FORMAT, "header: invalid JSON at byte");
    write_st_ok(P("trail.safetensors"), "{} x", 0);
    expect_bad(P("trail.safetensors"), GPTQ_ERR_FORMAT, "unexpected data after the JSON value");
    write_st_ok(P("nul.safetensors"), "{}\0", 0); /* strlen stops: "{}" only */
    gptq_st_file *f;
    ASSERT_OK(gptq_st_open(P("nul.safetensors"), &f));
    gptq_st_close(f);
}

Test(st, header_not_an_object)
{
    write_st_ok(P("bad.safetensors"), "[1, 2]  ", 0);
    expect_bad(P("bad.safetensors"), GPTQ_ERR_FORMAT, "header must be a JSON object");
}

Test(st, header_not_utf8)
{
    write_st_ok(P("bad.safetensors"), "{\"\xc3\x28\":1}", 0);
    expect_bad(P("bad.safetensors"), GPTQ_ERR_FORMAT, "header is not valid UTF-8 (byte 2");
}

Test(st, header_padded_with_spaces_is_fine)
{
    write_st_ok(P("ok.safetensors"),
                "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}        ", 8);
    gptq_st_file *f;
    ASSERT_OK(gptq_st_open(P("ok.safetensors"), &f));
    gptq_st_info info;
    ASSERT_OK(gptq_st_find(f, "w", &info));
    cr_assert_eq(info.nbytes, 8);
    /* write_st fills data with 0, 1, 2, ... */
    cr_assert_eq(((const uint8_t *)info.data)[5], 5);
    gptq_st_close(f);
}

Test(st, offsets_out_of_range)
{
    write_st_ok(P("bad.safetensors"),
                "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[1000,1004]}}", 8);
    expect_bad(P("bad.safetensors"), GPTQ_ERR_FORMAT,
               "tensor 'w': data_offsets [1000, 1004) reach past the end of the data");
    write_st_ok(P("rev.safetensors"),
                "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[8,4]}}", 8);
    expect_bad(P("rev.safetensors"), GPTQ_ERR_FORMAT, "tensor 'w': data_offsets [8, 4) end before");
    write_st_ok(P("neg.safetensors"),
                "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[-4,0]}}", 8);
    expect_bad(P("neg.safetensors"), GPTQ_ERR_FORMAT,
               "tensor 'w': data_offsets must be non-negative integers");
    write_st_ok(P("huge.safetensors"),
                "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,1e300]}}", 8);
    expect_bad(P("huge.safetensors"), GPTQ_ERR_FORMAT, "data_offsets must be non-negative");
    write_st_ok(P("three.safetensors"),
                "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4,8]}}", 4);
    expect_bad(P("three.safetensors"), GPTQ_ERR_FORMAT, "must be an array [begin, end]");
}

Test(st, overlapping_tensors)
{
    write_st_ok(P("bad.safetensors"),
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                12);
    expect_bad(P("bad.safetensors"), GPTQ_ERR_FORMAT,
               "tensor 'b' at [4, 12) overlaps tensor 'a' ending at 8");
}

Test(st, size_not_matching_dtype_and_shape)
{
    /* The brief's example, message in full. */
    write_st_ok(P("model.safetensors"),
                "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,10]}}", 10);
    char want[700];
    snprintf(want, sizeof want,
             "%s: tensor 'w': data_offsets [0, 10) hold 10 bytes but F32 shape [3] needs 12",
             P("model.safetensors"));
    expect_bad(P("model.safetensors"), GPTQ_ERR_FORMAT, want);
    cr_assert_str_eq(gptq_last_error(), want);
}

Test(st, unknown_dtype)
{
    write_st_ok(P("bad.safetensors"),
                "{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4);
    expect_bad(P("bad.safetensors"), GPTQ_ERR_UNSUPPORTED,
               "tensor 'w': unknown or unsupported dtype \"F8_E4M3\"");
    write_st_ok(P("num.safetensors"),
                "{\"w\":{\"dtype\":4,\"shape\":[4],\"data_offsets\":[0,4]}}", 4);
    expect_bad(P("num.safetensors"), GPTQ_ERR_FORMAT, "tensor 'w': \"dtype\" must be a string");
    write_st_ok(P("none.safetensors"), "{\"w\":{\"shape\":[4],\"data_offsets\":[0,4]}}", 4);
    expect_bad(P("none.safetensors"), GPTQ_ERR_FORMAT, "tensor 'w': no \"dtype\"");
}

Test(st, bad_shapes)
{
    write_st_ok(P("neg.safetensors"),
                "{\"w\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0);
    expect_bad(P("neg.safetensors"), GPTQ_ERR_FORMAT,
               "tensor 'w': shape dimension 0 must be a non-negative integer below 2^53 (got -1)");
    write_st_ok(P("frac.safetensors"),
                "{\"w\":{\"dtype\":\"U8\",\"shape\":[2,2.5],\"data_offsets\":[0,5]}}", 5);
    expect_bad(P("frac.safetensors"), GPTQ_ERR_FORMAT, "shape dimension 1 must be a non-negative integer below 2^53 (got 2.5)");
    write_st_ok(P("str.safetensors"),
                "{\"w\":{\"dtype\":\"U8\",\"shape\":[\"4\"],\"data_offsets\":[0,4]}}", 4);
    expect_bad(P("str.safetensors"), GPTQ_ERR_FORMAT, "(got \"4\")");
    write_st_ok(P("obj.safetensors"),
                "{\"w\":{\"dtype\":\"U8\",\"shape\":4,\"data_offsets\":[0,4]}}", 4);
    expect_bad(P("obj.safetensors"), GPTQ_ERR_FORMAT, "\"shape\" must be an array");
    write_st_ok(P("dims.safetensors"),
                "{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}",
                1);
    expect_bad(P("dims.safetensors"), GPTQ_ERR_UNSUPPORTED, "tensor 'w': 9 dimensions (at most 8)");
    /* The product overflows even though each dimension is fine. */
    write_st_ok(P("ovf.safetensors"),
                "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
                "\"data_offsets\":[0,4]}}",
                4);
    expect_bad(P("ovf.safetensors"), GPTQ_ERR_FORMAT, "shape [4294967296, 4294967296] is too large");
}

Test(st, hole_between_tensors)
{
    write_st_ok(P("bad.safetensors"),
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                12);
    expect_bad(P("bad.safetensors"), GPTQ_ERR_FORMAT,
               "hole in the data: bytes [4, 8) before tensor 'b'");
    /* Bytes after the last tensor are a hole too. */
    write_st_ok(P("tail.safetensors"),
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 6);
    expect_bad(P("tail.safetensors"), GPTQ_ERR_FORMAT,
               "hole in the data: bytes [4, 6) after the last tensor");
    /* And data with no tensors at all. */
    write_st_ok(P("none.safetensors"), "{}", 3);
    expect_bad(P("none.safetensors"), GPTQ_ERR_FORMAT, "bytes [0, 3) after the last tensor");
}

Test(st, tensors_in_any_header_order)
{
    /* The header may list tensors in any order; get() follows offsets. */
    write_st_ok(P("ok.safetensors"),
                "{\"late\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[3,5]},"
                "\"early\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]},"
                "\"empty\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[5,5]}}",
                5);
    gptq_st_file *f;
    ASSERT_OK(gptq_st_open(P("ok.safetensors"), &f));
    gptq_st_info info;
    ASSERT_OK(gptq_st_get(f, 0, &info));
    cr_assert_str_eq(info.name, "early");
    ASSERT_OK(gptq_st_get(f, 1, &info));
    cr_assert_str_eq(info.name, "late");
    cr_assert_eq(((const uint8_t *)info.data)[0], 3);
    ASSERT_OK(gptq_st_get(f, 2, &info));
    cr_assert_str_eq(info.name, "empty");
    cr_assert_eq(info.nbytes, 0);
    gptq_st_close(f);
}

Test(st, duplicate_tensor_names)
{
    write_st_ok(P("bad.safetensors"),
                "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
                2);
    expect_bad(P("bad.safetensors"), GPTQ_ERR_FORMAT,
               "duplicate key \"a\" in the top-level object");
    /* __metadata__ twice is the same refusal */
    write_st_ok(P("meta.safetensors"), "{\"__metadata__\":{},\"__metadata__\":{}}", 0);
    expect_bad(P("meta.safetensors"), GPTQ_ERR_FORMAT, "duplicate key \"__metadata__\"");
}

Test(st, entry_not_an_object)
{
    write_st_ok(P("bad.safetensors"), "{\"a\":[1,2]}", 0);
    expect_bad(P("bad.safetensors"), GPTQ_ERR_FORMAT, "tensor 'a': header entry must be an object");
}

Test(st, metadata_not_strings)
{
    write_st_ok(P("bad.safetensors"), "{\"__metadata__\":{\"format\":\"pt\",\"n\":1}}", 0);
    expect_bad(P("bad.safetensors"), GPTQ_ERR_FORMAT,
               "__metadata__ value of \"n\" must be a string (got 1)");
    write_st_ok(P("arr.safetensors"), "{\"__metadata__\":[\"pt\"]}", 0);
    expect_bad(P("arr.safetensors"), GPTQ_ERR_FORMAT,
               "\"__metadata__\" must be an object of strings");
}

/* ------------------------------------------------------------------ */
/* Files from another writer                                           */
/* ------------------------------------------------------------------ */

/* tests/fuzz/make_corpus.py writes safetensors with Python's struct and
 * json modules from the format description, independently of our writer;
 * the values below are the ones that script packs. */
Test(st, reads_files_made_by_python)
{
    const char *root = getenv("GPTQ_SOURCE_ROOT");
    if (!root) cr_skip_test("GPTQ_SOURCE_ROOT not set (run through meson test)");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fuzz/corpus_safetensors/floats.safetensors", root);
    gptq_st_file *f;
    ASSERT_OK(gptq_st_open(path, &f));
    cr_assert_eq(gptq_st_count(f), 3);
    cr_assert_str_eq(gptq_st_metadata(f, "format"), "pt");
    gptq_tensor t;
    ASSERT_OK(gptq_st_read_f32(f, "w.f32", &t));
    const float want32[6] = {1, -2, 0.5f, 3.25f, 0, -0.125f};
    cr_assert(memcmp(t.data, want32, sizeof want32) == 0);
    cr_assert_eq(t.shape[0], 2);
    cr_assert_eq(t.shape[1], 3);
    gptq_tensor_free(&t);
    ASSERT_OK(gptq_st_read_f32(f, "w.f16", &t));
    const float want16[4] = {1, -2, 0.5f, 65504};
    cr_assert(memcmp(t.data, want16, sizeof want16) == 0);
    gptq_tensor_free(&t);
    ASSERT_OK(gptq_st_read_f32(f, "w.bf16", &t));
    const float wantbf[2] = {1, -3};
    cr_assert(memcmp(t.data, wantbf, sizeof wantbf) == 0);
    gptq_tensor_free(&t);
    gptq_st_close(f);

    snprintf(path, sizeof path, "%s/tests/fuzz/corpus_safetensors/mixed.safetensors", root);
    ASSERT_OK(gptq_st_open(path, &f));
    cr_assert_eq(gptq_st_count(f), 8);
    cr_assert_str_eq(gptq_st_metadata(f, "quantizer"), "gptq-c");
    gptq_st_info info;
    ASSERT_OK(gptq_st_get(f, 1, &info));
    cr_assert_str_eq(info.name, "layer.qweight");
    int32_t q[4];
    memcpy(q, info.data, sizeof q); /* at offset 3: not aligned */
    cr_assert_eq(q[0], 0x77777777);
    cr_assert_eq(q[1], -1);
    cr_assert_eq(q[3], 123456);
    ASSERT_OK(gptq_st_find(f, "scalar", &info));
    cr_assert_eq(info.ndim, 0);
    double s;
    memcpy(&s, info.data, sizeof s);
    cr_assert_eq(s, 3.5);
    gptq_st_close(f);
}

/* Dimensions above 1e15 must survive as exact integers: cJSON would print
 * such doubles as 1.12589990684262e+15, which is why the writer hands it
 * numbers as raw text. An empty tensor carries them without data. */
Test(st, large_dimensions_round_trip_exactly)
{
    const int64_t big = (INT64_C(1) << 50) + 3;
    gptq_st_writer *w;
    ASSERT_OK(gptq_st_writer_open(P("big.safetensors"), &w));
    ASSERT_OK(gptq_st_writer_declare(w, "e", GPTQ_F32, 2, (int64_t[]){0, big}));
    ASSERT_OK(gptq_st_writer_commit(w));
    size_t n;
    uint8_t *b = read_bytes(P("big.safetensors"), &n);
    cr_assert_not_null(memmem(b, n, "\"shape\":[0,1125899906842627]", 28), "%.*s", (int)n - 8,
                       b + 8);
    free(b);
    gptq_st_file *f;
    ASSERT_OK(gptq_st_open(P("big.safetensors"), &f));
    gptq_st_info info;
    ASSERT_OK(gptq_st_find(f, "e", &info));
    cr_assert_eq(info.shape[1], big);
    cr_assert_eq(info.nbytes, 0);
    gptq_st_close(f);
}
