/*
 * test_json.c — src/io/json.c: reading JSON files (errors with position),
 * the typed getters the config loaders use, and src/io/atomic.c: atomic
 * files, temporary folders beside a target, swapping a folder into place,
 * recursive removal.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/io.h"

static char g_dir[256];

static void setup(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/gptq-test-json-XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir), "mkdtemp: %s", strerror(errno));
}

static void teardown(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
}

TestSuite(json, .init = setup, .fini = teardown);
TestSuite(atomic, .init = setup, .fini = teardown);

static const char *P(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp, "%s: %s", path, strerror(errno));
    fputs(text, fp);
    cr_assert_eq(fclose(fp), 0);
}

static char *read_text(const char *path)
{
    FILE *fp = fopen(path, "rb");
    cr_assert_not_null(fp, "%s: %s", path, strerror(errno));
    static char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

/* Names in folder `dir`, sorted and joined by spaces ("" if empty). */
static const char *listing(const char *dir)
{
    static char out[2048];
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, alphasort);
    cr_assert(n >= 0, "scandir %s: %s", dir, strerror(errno));
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (strcmp(ents[i]->d_name, ".") && strcmp(ents[i]->d_name, "..")) {
            if (out[0]) strcat(out, " ");
            strcat(out, ents[i]->d_name);
        }
        free(ents[i]);
    }
    free(ents);
    return out;
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

/* ------------------------------------------------------------------ */
/* Reading                                                             */
/* ------------------------------------------------------------------ */

static const char k_config[] =
    "{\n"
    "  \"hidden_size\": 4096,\n"
    "  \"as_float\": 4096.0,\n"
    "  \"negative\": -5,\n"
    "  \"half\": 1.5,\n"
    "  \"big\": 9007199254740992,\n"
    "  \"eps\": 1e-5,\n"
    "  \"model_type\": \"llama\",\n"
    "  \"tie\": true,\n"
    "  \"off\": false,\n"
    "  \"rope_scaling\": null,\n"
    "  \"list\": [1, 2],\n"
    "  \"sub\": {\"bits\": 4}\n"
    "}\n";

Test(json, read_file_and_getters)
{
    write_text(P("config.json"), k_config);
    cJSON *root = NULL;
    ASSERT_OK(gptq_json_read_file(P("config.json"), &root));
    const char *f = "config.json";

    int64_t i = 0;
    ASSERT_OK(gptq_json_get_int(root, "hidden_size", &i, 1, f));
    cr_assert_eq(i, 4096);
    ASSERT_OK(gptq_json_get_int(root, "as_float", &i, 1, f));
    cr_assert_eq(i, 4096);
    ASSERT_OK(gptq_json_get_int(root, "negative", &i, 1, f));
    cr_assert_eq(i, -5);

    double d = 0;
    ASSERT_OK(gptq_json_get_num(root, "eps", &d, 1, f));
    cr_assert_eq(d, 1e-5);
    ASSERT_OK(gptq_json_get_num(root, "hidden_size", &d, 1, f));
    cr_assert_eq(d, 4096.0);

    const char *s = NULL;
    ASSERT_OK(gptq_json_get_str(root, "model_type", &s, 1, f));
    cr_assert_str_eq(s, "llama");

    int b = -1;
    ASSERT_OK(gptq_json_get_bool(root, "tie", &b, 1, f));
    cr_assert_eq(b, 1);
    ASSERT_OK(gptq_json_get_bool(root, "off", &b, 1, f));
    cr_assert_eq(b, 0);

    const cJSON *o = NULL;
    ASSERT_OK(gptq_json_get_object(root, "sub", &o, 1, f));
    ASSERT_OK(gptq_json_get_int(o, "bits", &i, 1, f));
    cr_assert_eq(i, 4);
    ASSERT_OK(gptq_json_get_array(root, "list", &o, 1, f));
    cr_assert_eq(cJSON_GetArraySize(o), 2);
    cJSON_Delete(root);
}

Test(json, absent_and_null_keys)
{
    cJSON *root = NULL;
    ASSERT_OK(gptq_json_parse(k_config, strlen(k_config), "config.json", &root));
    /* Optional: GPTQ_JSON_ABSENT and the default stays. */
    int64_t i = 77;
    cr_assert_eq(gptq_json_get_int(root, "num_experts", &i, 0, "config.json"), GPTQ_JSON_ABSENT);
    cr_assert_eq(i, 77);
    const cJSON *o = (const cJSON *)0x1;
    cr_assert_eq(gptq_json_get_object(root, "rope_scaling", &o, 0, "config.json"),
                 GPTQ_JSON_ABSENT, "null counts as absent");
    cr_assert_eq(o, (const cJSON *)0x1);
    /* Required: an error naming file and key. */
    ASSERT_ERR(gptq_json_get_int(root, "num_experts", &i, 1, "config.json"), GPTQ_ERR_FORMAT,
               "config.json: \"num_experts\" is missing (must be an integer)");
    ASSERT_ERR(gptq_json_get_object(root, "rope_scaling", &o, 1, "config.json"), GPTQ_ERR_FORMAT,
               "config.json: \"rope_scaling\" is missing");
    /* Keys are case-sensitive. */
    cr_assert_eq(gptq_json_get_int(root, "Hidden_Size", &i, 0, "config.json"), GPTQ_JSON_ABSENT);
    cJSON_Delete(root);
}

Test(json, wrong_types)
{
    cJSON *root = NULL;
    ASSERT_OK(gptq_json_parse(k_config, strlen(k_config), "config.json", &root));
    const char *f = "config.json";
    int64_t i = 0;
    double d = 0;
    int b = 0;
    const char *s = NULL;
    const cJSON *o = NULL;
    ASSERT_ERR(gptq_json_get_int(root, "model_type", &i, 1, f), GPTQ_ERR_FORMAT,
               "config.json: \"model_type\" must be an integer (got string)");
    ASSERT_ERR(gptq_json_get_int(root, "half", &i, 0, f), GPTQ_ERR_FORMAT,
               "config.json: \"half\" must be an integer (got 1.5)");
    /* 2^53 is where doubles stop holding every integer. */
    ASSERT_ERR(gptq_json_get_int(root, "big", &i, 1, f), GPTQ_ERR_FORMAT,
               "\"big\" must be an integer");
    ASSERT_ERR(gptq_json_get_num(root, "tie", &d, 1, f), GPTQ_ERR_FORMAT,
               "\"tie\" must be a number (got boolean)");
    ASSERT_ERR(gptq_json_get_str(root, "hidden_size", &s, 1, f), GPTQ_ERR_FORMAT,
               "\"hidden_size\" must be a string (got number)");
    ASSERT_ERR(gptq_json_get_bool(root, "hidden_size", &b, 1, f), GPTQ_ERR_FORMAT,
               "\"hidden_size\" must be true or false (got number)");
    ASSERT_ERR(gptq_json_get_object(root, "list", &o, 1, f), GPTQ_ERR_FORMAT,
               "\"list\" must be an object (got array)");
    ASSERT_ERR(gptq_json_get_array(root, "sub", &o, 1, f), GPTQ_ERR_FORMAT,
               "\"sub\" must be an array (got object)");
    /* The getters want an object to look in. */
    const cJSON *list = cJSON_GetObjectItem(root, "list");
    ASSERT_ERR(gptq_json_get_int(list, "x", &i, 0, f), GPTQ_ERR_FORMAT,
               "config.json: expected a JSON object holding \"x\", got array");
    ASSERT_ERR(gptq_json_get_int(NULL, "x", &i, 0, f), GPTQ_ERR_FORMAT, "got nothing");
    cJSON_Delete(root);
}

Test(json, parse_error_gives_position)
{
    /* The error is the '}' on line 3, column 8 (byte 19 counted from 0). */
    write_text(P("bad.json"), "{\n  \"a\": 1,\n  \"b\": }\n");
    cJSON *root = (cJSON *)0x1;
    ASSERT_ERR(gptq_json_read_file(P("bad.json"), &root), GPTQ_ERR_FORMAT, "invalid JSON at byte");
    cr_assert_null(root);
    cr_assert_not_null(strstr(gptq_last_error(), P("bad.json")), "%s", gptq_last_error());
    cr_assert_not_null(strstr(gptq_last_error(), "line 3"), "%s", gptq_last_error());
}

Test(json, trailing_data_and_empty)
{
    write_text(P("trail.json"), "{\"a\": 1}\n{\"b\": 2}\n");
    cJSON *root;
    ASSERT_ERR(gptq_json_read_file(P("trail.json"), &root), GPTQ_ERR_FORMAT,
               "unexpected data after the JSON value at byte 9 (line 2, column 1), near '{\"b\": 2}.'");
    write_text(P("ws.json"), "  [1]  \n\t\r\n");
    ASSERT_OK(gptq_json_read_file(P("ws.json"), &root));
    cr_assert(cJSON_IsArray(root));
    cJSON_Delete(root);
    write_text(P("empty.json"), "");
    ASSERT_ERR(gptq_json_read_file(P("empty.json"), &root), GPTQ_ERR_FORMAT, "empty JSON");
    write_text(P("blank.json"), " \n ");
    ASSERT_ERR(gptq_json_read_file(P("blank.json"), &root), GPTQ_ERR_FORMAT, "empty JSON (3 bytes");
    write_text(P("cut.json"), "{\"a\": \"unterminated");
    ASSERT_ERR(gptq_json_read_file(P("cut.json"), &root), GPTQ_ERR_FORMAT, "invalid JSON");
}

Test(json, parse_does_not_need_a_terminator)
{
    /* Parse a slice of a bigger buffer: only the first 7 bytes count. */
    const char text[] = "[1,2,3]garbage";
    cJSON *root;
    ASSERT_OK(gptq_json_parse(text, 7, "slice", &root));
    cr_assert_eq(cJSON_GetArraySize(root), 3);
    cJSON_Delete(root);
    ASSERT_ERR(gptq_json_parse(text, 6, "slice", &root), GPTQ_ERR_FORMAT, "slice: invalid JSON");
    /* A NUL inside the text is not the end of it. */
    ASSERT_ERR(gptq_json_parse("{}\0{}", 5, "nul", &root), GPTQ_ERR_FORMAT,
               "nul: unexpected data after the JSON value at byte 2");
}

Test(json, file_errors)
{
    cJSON *root;
    ASSERT_ERR(gptq_json_read_file(P("absent.json"), &root), GPTQ_ERR_IO,
               "absent.json: cannot open: No such file or directory");
    ASSERT_ERR(gptq_json_read_file(g_dir, &root), GPTQ_ERR_IO,
               "not a regular file (a directory)");
    /* A FIFO with no writer is refused at once, never waited on. */
    cr_assert_eq(mkfifo(P("fifo.json"), 0644), 0);
    ASSERT_ERR(gptq_json_read_file(P("fifo.json"), &root), GPTQ_ERR_IO,
               "fifo.json: not a regular file (a FIFO)");
    /* A device never ends: refused too. */
    ASSERT_ERR(gptq_json_read_file("/dev/zero", &root), GPTQ_ERR_IO,
               "/dev/zero: not a regular file (a character device)");
    /* A symlink loop says so, not "missing". */
    cr_assert_eq(symlink("loop.json", P("loop.json")), 0);
    ASSERT_ERR(gptq_json_read_file(P("loop.json"), &root), GPTQ_ERR_IO,
               "Too many levels of symbolic links");
    /* A sparse file past the limit is refused before it is read. */
    int fd = open(P("huge.json"), O_CREAT | O_WRONLY, 0644);
    cr_assert(fd >= 0);
    cr_assert_eq(ftruncate(fd, (off_t)GPTQ_JSON_MAX_BYTES + 1), 0);
    close(fd);
    ASSERT_ERR(gptq_json_read_file(P("huge.json"), &root), GPTQ_ERR_FORMAT,
               "larger than the 256 MiB limit");
}

/* Duplicate keys: cJSON keeps both (lookups see the first), Python the
 * last; every JSON we read refuses them, naming the key and its object. */
Test(json, duplicate_keys_refused)
{
    cJSON *root;
    const char *top = "{\"a\": 1, \"b\": 2, \"a\": 3}";
    ASSERT_ERR(gptq_json_parse(top, strlen(top), "cfg", &root),
               GPTQ_ERR_FORMAT, "cfg: duplicate key \"a\" in the top-level object");
    const char *nested = "{\"q\": {\"bits\": 4, \"x\": [1, {\"k\": 1, \"k\": 2}]}}";
    ASSERT_ERR(gptq_json_parse(nested, strlen(nested), "cfg", &root), GPTQ_ERR_FORMAT,
               "duplicate key \"k\" in \"q.x[1]\"");
    const char *deep = "{\"q\": {\"bits\": 4, \"bits\": 8}}";
    ASSERT_ERR(gptq_json_parse(deep, strlen(deep), "cfg", &root), GPTQ_ERR_FORMAT,
               "duplicate key \"bits\" in \"q\"");
    /* the same key in two different objects is fine */
    const char *ok = "{\"a\": {\"k\": 1}, \"b\": {\"k\": 2}, \"k\": [{\"k\": 3}]}";
    cr_assert_eq(gptq_json_parse(ok, strlen(ok), "ok", &root), GPTQ_OK, "%s", gptq_last_error());
    cJSON_Delete(root);
    /* and through a file, naming it */
    FILE *f = fopen(P("dup.json"), "w");
    cr_assert(f);
    fputs("{\"vocab_size\": 10, \"vocab_size\": 20}", f);
    fclose(f);
    ASSERT_ERR(gptq_json_read_file(P("dup.json"), &root), GPTQ_ERR_FORMAT,
               "dup.json: duplicate key \"vocab_size\"");
}

/* ------------------------------------------------------------------ */
/* Atomic files and folders                                            */
/* ------------------------------------------------------------------ */

Test(atomic, write_file)
{
    ASSERT_OK(gptq_write_file_atomic(P("f.json"), "new", 3));
    cr_assert_str_eq(read_text(P("f.json")), "new");
    struct stat st;
    cr_assert_eq(stat(P("f.json"), &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0644);
    /* Overwrite; nothing else appears beside it. */
    ASSERT_OK(gptq_write_file_atomic(P("f.json"), "newer", 5));
    cr_assert_str_eq(read_text(P("f.json")), "newer");
    ASSERT_OK(gptq_write_file_atomic(P("empty"), "", 0));
    cr_assert_str_eq(read_text(P("empty")), "");
    cr_assert_str_eq(listing(g_dir), "empty f.json");
}

Test(atomic, write_file_unwritable)
{
    ASSERT_ERR(gptq_write_file_atomic("/etc/hostname/f.json", "x", 1), GPTQ_ERR_IO,
               "/etc/hostname/f.json: cannot create temporary file");
    ASSERT_ERR(gptq_write_file_atomic(P("no/such/f.json"), "x", 1), GPTQ_ERR_IO,
               "No such file or directory");
}

Test(atomic, mkdtemp_beside)
{
    char tmp[600];
    char want[600];
    snprintf(want, sizeof want, "%s/out.tmp.", g_dir);
    char final[600];
    snprintf(final, sizeof final, "%s/out//", g_dir);
    ASSERT_OK(gptq_mkdtemp_beside(final, tmp, sizeof tmp));
    cr_assert_eq(strncmp(tmp, want, strlen(want)), 0, "%s", tmp);
    struct stat st;
    cr_assert_eq(stat(tmp, &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    char small[8];
    ASSERT_ERR(gptq_mkdtemp_beside(final, small, sizeof small), GPTQ_ERR_INVALID, "too long");
    ASSERT_ERR(gptq_mkdtemp_beside("/etc/hostname/out", tmp, sizeof tmp), GPTQ_ERR_IO,
               "cannot create temporary folder");
}

/* A folder with a file, a subfolder and a symlink that points outside. */
static void fill(const char *dir, const char *tag)
{
    char p[700];
    snprintf(p, sizeof p, "%s/file.txt", dir);
    write_text(p, tag);
    snprintf(p, sizeof p, "%s/sub", dir);
    cr_assert_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/sub/deep.txt", dir);
    write_text(p, tag);
    snprintf(p, sizeof p, "%s/link", dir);
    cr_assert_eq(symlink(P("outside.txt"), p), 0);
}

Test(atomic, rename_dir_into_empty_place)
{
    char tmp[600];
    ASSERT_OK(gptq_mkdtemp_beside(P("out"), tmp, sizeof tmp));
    fill(tmp, "new");
    ASSERT_OK(gptq_rename_dir_into_place(tmp, P("out")));
    cr_assert_str_eq(read_text(P("out/file.txt")), "new");
    cr_assert_str_eq(listing(g_dir), "out");
}

Test(atomic, rename_dir_replaces_existing)
{
    write_text(P("outside.txt"), "keep me");
    cr_assert_eq(mkdir(P("out"), 0755), 0);
    fill(P("out"), "old");
    char tmp[600];
    ASSERT_OK(gptq_mkdtemp_beside(P("out"), tmp, sizeof tmp));
    fill(tmp, "new");
    ASSERT_OK(gptq_rename_dir_into_place(tmp, P("out")));
    cr_assert_str_eq(read_text(P("out/file.txt")), "new");
    cr_assert_str_eq(read_text(P("out/sub/deep.txt")), "new");
    /* The old copy is gone, the temporary name too; the symlink's
     * target outside was not followed when the old folder was removed. */
    cr_assert_str_eq(listing(g_dir), "out outside.txt");
    cr_assert_str_eq(read_text(P("outside.txt")), "keep me");
}

Test(atomic, rename_dir_refuses_to_replace_a_file)
{
    write_text(P("out"), "a file");
    char tmp[600];
    ASSERT_OK(gptq_mkdtemp_beside(P("out"), tmp, sizeof tmp));
    ASSERT_ERR(gptq_rename_dir_into_place(tmp, P("out")), GPTQ_ERR_IO,
               "exists and is not a folder");
    cr_assert_str_eq(read_text(P("out")), "a file");
    struct stat st;
    cr_assert_eq(stat(tmp, &st), 0, "the new output must be kept");
}

Test(atomic, remove_tree)
{
    write_text(P("outside.txt"), "keep me");
    cr_assert_eq(mkdir(P("t"), 0755), 0);
    fill(P("t"), "x");
    ASSERT_OK(gptq_remove_tree(P("t")));
    cr_assert_str_eq(listing(g_dir), "outside.txt");
    cr_assert_str_eq(read_text(P("outside.txt")), "keep me");
    ASSERT_OK(gptq_remove_tree(P("absent")));
    /* A symlink to a folder is removed as a link. */
    cr_assert_eq(mkdir(P("real"), 0755), 0);
    write_text(P("real/x"), "x");
    cr_assert_eq(symlink(P("real"), P("ln")), 0);
    ASSERT_OK(gptq_remove_tree(P("ln")));
    cr_assert_str_eq(listing(g_dir), "outside.txt real");
}

/* The fallback for file systems without RENAME_EXCHANGE, run directly. */
Test(atomic, rename_dir_aside_replaces_existing)
{
    write_text(P("outside.txt"), "keep me");
    cr_assert_eq(mkdir(P("out"), 0755), 0);
    fill(P("out"), "old");
    char tmp[600];
    ASSERT_OK(gptq_mkdtemp_beside(P("out"), tmp, sizeof tmp));
    fill(tmp, "new");
    ASSERT_OK(gptq_rename_dir_aside(tmp, P("out/")));
    cr_assert_str_eq(read_text(P("out/file.txt")), "new");
    cr_assert_str_eq(listing(g_dir), "out outside.txt");
    cr_assert_str_eq(read_text(P("outside.txt")), "keep me");
    /* Absent target: a plain rename. */
    ASSERT_OK(gptq_mkdtemp_beside(P("fresh"), tmp, sizeof tmp));
    ASSERT_OK(gptq_rename_dir_aside(tmp, P("fresh")));
    cr_assert_str_eq(listing(g_dir), "fresh out outside.txt");
}

/* When the new folder cannot be renamed in, the old one is put back. */
Test(atomic, rename_dir_aside_restores_on_failure)
{
    cr_assert_eq(mkdir(P("out"), 0755), 0);
    write_text(P("out/file.txt"), "old");
    ASSERT_ERR(gptq_rename_dir_aside(P("no-such-tmp"), P("out")), GPTQ_ERR_IO,
               "cannot rename");
    cr_assert_str_eq(read_text(P("out/file.txt")), "old");
    cr_assert_str_eq(listing(g_dir), "out");
}
