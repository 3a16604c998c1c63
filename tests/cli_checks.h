/*
 * cli_checks.h — what the CLI command tests (test_cli_*.c) share on top of
 * cli_harness.h: paths of the bundled and shared data and of the test
 * plugins, a run that must succeed, `gptq eval`'s figures, JSON lines, and
 * a checkpoint's tensors read back through the library.
 */
#ifndef GPTQ_CLI_CHECKS_H
#define GPTQ_CLI_CHECKS_H

/* Paths are built in 1024-byte buffers from other such paths (short
 * folders under $TMPDIR and the checkout); GCC at -O3 cannot see that they
 * fit. A cut path would name a missing file and fail the test anyway. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#include "cli_harness.h" /* first: it sets _GNU_SOURCE */

#include <cjson/cJSON.h>
#include <math.h>
#include <pty.h>

#include "gptq.h"


/* buf[1024] = <checkout>/data/rel */
static inline char *cc_data(char *buf, const char *rel)
{
    snprintf(buf, 1024, "%s/data/%s", ch_source_root(), rel);
    return buf;
}

/* buf[1024] = <shared>/rel; skips the test when the shared folder is absent. */
static inline char *cc_shared(char *buf, const char *rel)
{
    const char *s = ch_shared();
    if (!s) cr_skip_test("needs the shared models and text (GPTQ_SHARED or ../shared)");
    snprintf(buf, 1024, "%s/%s", s, rel);
    struct stat st;
    if (stat(buf, &st) != 0) cr_skip_test("%s is absent", buf);
    return buf;
}

/* buf[1024] = the test plugin libgptq-test<name>.so (tests/meson.build). */
static inline char *cc_plugin(char *buf, const char *name)
{
    const char *d = getenv("GPTQ_TEST_PLUGIN_DIR");
    cr_assert(d && *d, "GPTQ_TEST_PLUGIN_DIR is not set (run through meson test)");
    snprintf(buf, 1024, "%s/libgptq-test%s.so", d, name);
    return buf;
}

/* Run `gptq args... NULL` (a 120 s limit: a hang fails) and require exit 0. */
#define cc_ok(r, ...)                                                                           \
    do {                                                                                        \
        ch_run((r), 120.0, __VA_ARGS__, NULL);                                                  \
        ch_expect((r), 0, "");                                                                \
    } while (0)

/* The same run, its output not read: `gptq args...` must exit 0. */
#define cc_ok_run(...)                                                                          \
    do {                                                                                        \
        cli_result cc_r_;                                                                       \
        cc_ok(&cc_r_, __VA_ARGS__);                                                             \
        ch_result_free(&cc_r_);                                                                 \
    } while (0)

/* A scratch folder per test for a suite's TestSuite(.init = setup, .fini =
 * teardown): g_dir, made under $TMPDIR with tag in its name and removed
 * with all it holds after the test; at(buf, name) = buf[1024] g_dir/name. */
#define CC_SCRATCH_DIR(tag)                                                                     \
    static char g_dir[512];                                                                     \
    static void setup(void) { ch_mkdtemp(g_dir, tag); }                                         \
    static void teardown(void) { ch_rm_tree(g_dir); }                                           \
    static inline char *at(char *buf, const char *name) { return ch_join(buf, g_dir, name); }

/* The figures of `gptq eval`'s one output line. */
typedef struct cc_ppl {
    double ppl;
    long long tokens, windows, predicted, seqlen;
    char text[32]; /* the ppl as printed, for exact comparisons */
} cc_ppl;

static inline cc_ppl cc_parse_ppl(const char *out)
{
    cc_ppl p = {0};
    const char *at = strstr(out, "ppl ");
    cr_assert(at, "no ppl line in:\n%s", out);
    int n = sscanf(at, "ppl %31s tokens %lld windows %lld predicted %lld seqlen %lld", p.text,
                   &p.tokens, &p.windows, &p.predicted, &p.seqlen);
    cr_assert_eq(n, 5, "unexpected eval line: %s", at);
    p.ppl = strtod(p.text, NULL);
    cr_assert(isfinite(p.ppl) && p.ppl > 1.0, "ppl %s", p.text);
    return p;
}

/* `gptq eval dir --text text [--seqlen seqlen] --max-windows w`; seqlen 0: none given. */
static inline cc_ppl cc_eval(const char *dir, const char *text, int seqlen, int windows)
{
    char sl[16], mw[16];
    snprintf(sl, sizeof sl, "%d", seqlen);
    snprintf(mw, sizeof mw, "%d", windows);
    cli_result r;
    if (seqlen)
        cc_ok(&r, "eval", dir, "--text", text, "--seqlen", sl, "--max-windows", mw);
    else
        cc_ok(&r, "eval", dir, "--text", text, "--max-windows", mw);
    cc_ppl p = cc_parse_ppl(r.out);
    ch_result_free(&r);
    return p;
}

/* stories-260k's tokenizer (512 tokens) into the model folder dir: a
 * synthetic model with that vocabulary then calibrates and evaluates on
 * text. */
static inline void cc_add_tokenizer(const char *dir)
{
    ch_sh("cp '%s/tests/data/model/stories-260k/tokenizer.json' "
          "'%s/tests/data/model/stories-260k/tokenizer_config.json' '%s/'",
          ch_source_root(), ch_source_root(), dir);
}

/* `gptq quantize model -o out` to 8 bits in groups of 32, calibrated on 8
 * windows of seqlen tokens of data/text/calib.txt; with --method method
 * and one more option extra when they are not NULL. Must succeed. */
static inline void cc_quantize_8bit(const char *model, const char *out, const char *method,
                                    int seqlen, const char *extra)
{
    char calib[1024], sl[16];
    cc_data(calib, "text/calib.txt");
    snprintf(sl, sizeof sl, "%d", seqlen);
    const char *argv[20] = {"quantize", model, "-o", out, "--calib", calib, "--nsamples", "8",
                            "--seqlen", sl, "--bits", "8", "--group-size", "32"};
    int n = 14;
    if (method) {
        argv[n++] = "--method";
        argv[n++] = method;
    }
    if (extra) argv[n++] = extra;
    argv[n] = NULL;
    cli_result r;
    const ch_opts o = {.timeout = 120.0};
    ch_run_opts(&r, &o, argv);
    ch_expect(&r, 0, "");
    ch_result_free(&r);
}

/* The checkpoint out's perplexity within a factor exp(tol) of the model's
 * (|log(q / fp)| < tol), `gptq eval` on 4 windows of seqlen tokens of
 * data/text/eval.txt each; what names the case in the log. The caller's
 * tol comes with its reason. */
static inline void cc_expect_ppl_near(const char *model, const char *out, int seqlen, double tol,
                                      const char *what)
{
    char text[1024];
    cc_data(text, "text/eval.txt");
    const cc_ppl fp = cc_eval(model, text, seqlen, 4), q = cc_eval(out, text, seqlen, 4);
    cr_log_info("%s: ppl fp %s, quantized %s", what, fp.text, q.text);
    cr_expect_lt(fabs(log(q.ppl / fp.ppl)), tol, "%s: ppl %s vs fp %s", what, q.text, fp.text);
}

/* Parse JSON lines of text into items[0..max); returns the count (every
 * non-empty line must parse). Free each with cJSON_Delete. */
static inline int cc_json_lines(const char *text, cJSON **items, int max)
{
    int n = 0;
    for (const char *p = text; *p;) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len) {
            cr_assert(n < max, "more than %d JSON lines", max);
            char *line = strndup(p, len);
            items[n] = cJSON_Parse(line);
            cr_assert(items[n], "not a JSON line: %s", line);
            free(line);
            n++;
        }
        p += len + (e ? 1 : 0);
    }
    return n;
}

static inline cJSON *cc_json_file(const char *path)
{
    char *s = ch_slurp(path, NULL);
    cr_assert(s, "cannot read %s", path);
    cJSON *j = cJSON_Parse(s);
    cr_assert(j, "%s is not JSON", path);
    free(s);
    return j;
}

static inline double cc_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsNumber(v), "no number \"%s\"", key);
    return v->valuedouble;
}

static inline const char *cc_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsString(v), "no string \"%s\"", key);
    return v->valuestring;
}

static inline int cc_bool(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsBool(v), "no boolean \"%s\"", key);
    return cJSON_IsTrue(v);
}

/* A one-file checkpoint's model.safetensors, open; tensors by name. */
static inline gptq_st_file *cc_open_st(const char *dir_or_file)
{
    char p[1024];
    struct stat st;
    cr_assert_eq(stat(dir_or_file, &st), 0, "%s is missing", dir_or_file);
    if (S_ISDIR(st.st_mode)) ch_join(p, dir_or_file, "model.safetensors");
    else snprintf(p, sizeof p, "%s", dir_or_file);
    gptq_st_file *f = NULL;
    cr_assert_eq(gptq_st_open(p, &f), GPTQ_OK, "%s: %s", p, gptq_last_error());
    return f;
}

static inline gptq_st_info cc_tensor(const gptq_st_file *f, const char *name)
{
    gptq_st_info i;
    cr_assert_eq(gptq_st_find(f, name, &i), GPTQ_OK, "%s: no tensor %s", gptq_st_path(f), name);
    return i;
}

/* The two files' bytes are the same. */
static inline int cc_same_file(const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    char *x = ch_slurp(a, &na), *y = ch_slurp(b, &nb);
    cr_assert(x && y, "cannot read %s or %s", a, b);
    int same = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

/* Run `gptq args... NULL` with stderr on a pseudo-terminal (stdout to a
 * file, stdin /dev/null), as a user at a terminal sees it; *err gets what
 * the terminal received (malloc'd). Returns the exit status (a 120 s limit:
 * a hang fails). */
static inline int cc_run_tty(char **out, char **err, const char *a0, ...)
{
    const char *argv[64];
    int n = 0;
    argv[n++] = ch_cli();
    va_list ap;
    va_start(ap, a0);
    for (const char *a = a0; a && n < 63; a = va_arg(ap, const char *)) argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    char logd[512], outp[1024];
    ch_mkdtemp(logd, "tty");
    ch_join(outp, logd, "stdout");
    int master = -1, slave = -1;
    cr_assert_eq(openpty(&master, &slave, NULL, NULL, NULL), 0, "openpty: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fi = open("/dev/null", O_RDONLY), fo = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fi < 0 || fo < 0) _exit(126);
        dup2(fi, 0);
        dup2(fo, 1);
        dup2(slave, 2);
        close(master);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(slave);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    cr_assert(buf);
    const double t0 = ch_now();
    for (;;) { /* read until the child's side closes (EIO on Linux) */
        cr_assert(ch_now() - t0 < 120.0, "timed out on a terminal");
        if (len + 4096 > cap) {
            buf = realloc(buf, cap *= 2);
            cr_assert(buf);
        }
        ssize_t k = read(master, buf + len, cap - len - 1);
        if (k <= 0) break;
        len += (size_t)k;
    }
    buf[len] = '\0';
    close(master);
    int ws = 0;
    waitpid(pid, &ws, 0);
    *err = buf;
    *out = ch_slurp(outp, NULL);
    ch_rm_tree(logd);
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

#endif
