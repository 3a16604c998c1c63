/*
 * test_cli_layer.c — the `gptq layer` and `gptq compare` commands as a user
 * runs them: results, byte-identical outputs for OMP_NUM_THREADS 1/2/8, and
 * bad input: each gives a clear message and exit status 1 (2 for usage),
 * never a crash, and the output path is either complete or untouched.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gptq.h"

static char g_dir[256];

static void setup(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/gptq-cli-test-XXXXXX");
    cr_assert(mkdtemp(g_dir));
}

static void teardown(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(cli, .init = setup, .fini = teardown);

static const char *cli(void)
{
    const char *p = getenv("GPTQ_CLI");
    cr_assert(p, "GPTQ_CLI is not set (run through meson test)");
    return p;
}

/* Run the CLI with args; stderr+stdout captured into *out (static). Returns
 * the exit status, or 128+signal. */
static int run(const char *omp, char **out, const char *a0, ...)
{
    static char buf[16384];
    char logp[512];
    snprintf(logp, sizeof logp, "%s/log.txt", g_dir);
    const char *argv[32];
    int n = 0;
    argv[n++] = cli();
    va_list ap;
    va_start(ap, a0);
    for (const char *a = a0; a && n < 31; a = va_arg(ap, const char *)) argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        if (omp) setenv("OMP_NUM_THREADS", omp, 1);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int ws;
    waitpid(pid, &ws, 0);
    FILE *f = fopen(logp, "rb");
    size_t k = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[k] = '\0';
    if (f) fclose(f);
    *out = buf;
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

static void path(char *b, const char *name) { snprintf(b, 512, "%s/%s", g_dir, name); }

/* W (R, C) and X (n, C) (or H) into a safetensors file. */
static void write_input(const char *p, int64_t R, int64_t C, int64_t n, int use_h, float poison_w,
                        float poison_x)
{
    gptq_tensor t[2];
    int64_t ws[2] = {R, C}, xs[2] = {use_h ? C : n, C};
    cr_assert_eq(gptq_tensor_alloc(&t[0], GPTQ_F32, 2, ws), GPTQ_OK);
    cr_assert_eq(gptq_tensor_alloc(&t[1], GPTQ_F32, 2, xs), GPTQ_OK);
    float *w = t[0].data, *x = t[1].data;
    uint32_t s = 1;
    for (int64_t i = 0; i < R * C; i++) {
        s = s * 1664525u + 1013904223u;
        w[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 0.05f;
    }
    if (use_h) {
        for (int64_t i = 0; i < C; i++) x[i * C + i] = 1.0f;
    } else {
        for (int64_t i = 0; i < n * C; i++) {
            s = s * 1664525u + 1013904223u;
            x[i] = (float)(s >> 8) / 16777216.0f - 0.5f + (float)((i % C) % 5) * 0.3f;
        }
    }
    if (poison_w != 0.0f && R * C > 0) w[R * C / 2] = poison_w;
    if (poison_x != 0.0f) x[3] = poison_x;
    const char *names[2] = {"W", use_h ? "H" : "X"};
    cr_assert_eq(gptq_st_save(p, 2, names, t), GPTQ_OK, "%s", gptq_last_error());
    gptq_tensor_free(&t[0]);
    gptq_tensor_free(&t[1]);
}

static int exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

Test(cli, quantizes_and_compares)
{
    char in[512], out[512], *log;
    path(in, "in.safetensors");
    path(out, "out.safetensors");
    write_input(in, 64, 128, 256, 0, 0, 0);
    cr_assert_eq(run(NULL, &log, "layer", in, "-o", out, "--asym", "--desc-act", NULL), 0, "%s", log);
    cr_assert(strstr(log, "loss"), "%s", log);
    gptq_st_file *f;
    cr_assert_eq(gptq_st_open(out, &f), GPTQ_OK, "%s", gptq_last_error());
    const char *names[] = {"qweight", "qzeros", "scales", "g_idx", "codes", "zeros",
                           "scales_f32", "perm", "dequant", "H"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        gptq_st_info info;
        cr_assert_eq(gptq_st_find(f, names[i], &info), GPTQ_OK, "missing %s", names[i]);
    }
    gptq_st_info q;
    gptq_st_find(f, "qweight", &q);
    cr_assert_eq(q.shape[0], 128 * 4 / 32);
    cr_assert_eq(q.shape[1], 64);
    cr_assert(gptq_st_metadata(f, "loss"));
    cr_assert_str_eq(gptq_st_metadata(f, "desc_act"), "true");
    gptq_st_close(f);
    cr_assert_eq(run(NULL, &log, "compare", out, out, "--max-code-mismatch", "0", NULL), 0, "%s", log);
    cr_assert(strstr(log, "codes identical             100.000000%"), "%s", log);
    /* RTN differs from GPTQ: compare must say so and fail its threshold */
    char rtn[512];
    path(rtn, "rtn.safetensors");
    cr_assert_eq(run(NULL, &log, "layer", in, "-o", rtn, "--asym", "--method", "rtn", NULL), 0, "%s", log);
    cr_assert_eq(run(NULL, &log, "compare", out, rtn, "--max-code-mismatch", "0", NULL), 1, "%s", log);
    cr_assert(strstr(log, "more than --max-code-mismatch"), "%s", log);
}

/* The same command at 1, 2 and 8 threads writes identical tensors. */
Test(cli, identical_output_for_thread_counts)
{
    char in[512], o[3][512], *log;
    path(in, "in.safetensors");
    write_input(in, 64, 512, 700, 0, 0, 0);
    const char *th[3] = {"1", "2", "8"};
    const char *sets[3][4] = {{"--asym", "--desc-act", "--bits", "3"},
                              {"--sym", "--static-groups", "--desc-act", "--mse"},
                              {"--asym", "--group-size", "-1", "--mse"}};
    for (int s = 0; s < 3; s++) {
        for (int t = 0; t < 3; t++) {
            char nm[64];
            snprintf(nm, sizeof nm, "o%d.safetensors", t);
            path(o[t], nm);
            cr_assert_eq(run(th[t], &log, "layer", in, "-o", o[t], sets[s][0], sets[s][1],
                             sets[s][2], sets[s][3], NULL),
                         0, "%s", log);
        }
        gptq_st_file *f[3];
        for (int t = 0; t < 3; t++) cr_assert_eq(gptq_st_open(o[t], &f[t]), GPTQ_OK);
        for (int i = 0; i < gptq_st_count(f[0]); i++) {
            gptq_st_info a, b;
            gptq_st_get(f[0], i, &a);
            for (int t = 1; t < 3; t++) {
                cr_assert_eq(gptq_st_find(f[t], a.name, &b), GPTQ_OK);
                cr_assert_eq(a.nbytes, b.nbytes);
                cr_assert_eq(memcmp(a.data, b.data, a.nbytes), 0, "set %d: %s differs at %s threads",
                             s, a.name, th[t]);
            }
        }
        for (int t = 1; t < 3; t++)
            cr_assert_str_eq(gptq_st_metadata(f[0], "loss"), gptq_st_metadata(f[t], "loss"));
        for (int t = 0; t < 3; t++) gptq_st_close(f[t]);
    }
}

static void expect_failure(const char *in, const char *needle, const char *extra)
{
    char out[512], *log;
    path(out, "out.safetensors");
    unlink(out);
    int rc = extra ? run(NULL, &log, "layer", in, "-o", out, extra, NULL)
                   : run(NULL, &log, "layer", in, "-o", out, NULL);
    cr_assert_eq(rc, 1, "exit %d: %s", rc, log);
    cr_assert(strstr(log, needle), "expected \"%s\" in: %s", needle, log);
    cr_assert(strstr(log, "gptq layer: error:"), "%s", log);
    cr_assert(!exists(out), "output was written despite the error");
}

Test(cli, nan_in_w)
{
    char in[512];
    path(in, "in.safetensors");
    write_input(in, 32, 64, 64, 0, NAN, 0);
    expect_failure(in, "NaN or Inf at row 16", NULL);
}

Test(cli, inf_in_x)
{
    char in[512];
    path(in, "in.safetensors");
    write_input(in, 32, 64, 64, 0, 0, INFINITY);
    expect_failure(in, "calibration input X has Inf at row 0, column 3", NULL);
}

Test(cli, shape_mismatch)
{
    char in[512];
    path(in, "in.safetensors");
    gptq_tensor t[2];
    int64_t ws[2] = {32, 64}, xs[2] = {16, 48};
    gptq_tensor_alloc(&t[0], GPTQ_F32, 2, ws);
    gptq_tensor_alloc(&t[1], GPTQ_F32, 2, xs);
    const char *names[2] = {"W", "X"};
    cr_assert_eq(gptq_st_save(in, 2, names, t), GPTQ_OK);
    gptq_tensor_free(&t[0]);
    gptq_tensor_free(&t[1]);
    expect_failure(in, "X must be (n, 64) to match W (32, 64)", NULL);
}

Test(cli, zero_rows)
{
    char in[512];
    path(in, "in.safetensors");
    write_input(in, 0, 64, 16, 0, 0, 0);
    expect_failure(in, "0 rows", NULL);
    write_input(in, 32, 64, 0, 0, 0, 0);
    expect_failure(in, "X has no rows", NULL);
}

Test(cli, hessian_not_positive_definite)
{
    char in[512];
    path(in, "in.safetensors");
    gptq_tensor t[2];
    int64_t ws[2] = {32, 64}, hs[2] = {64, 64};
    gptq_tensor_alloc(&t[0], GPTQ_F32, 2, ws);
    gptq_tensor_alloc(&t[1], GPTQ_F32, 2, hs);
    float *h = t[1].data;
    for (int i = 0; i < 64; i++) h[i * 64 + i] = -1.0f; /* negative definite */
    const char *names[2] = {"W", "H"};
    cr_assert_eq(gptq_st_save(in, 2, names, t), GPTQ_OK);
    gptq_tensor_free(&t[0]);
    gptq_tensor_free(&t[1]);
    expect_failure(in, "not positive definite even with damp_percent", NULL);
}

Test(cli, unwritable_output)
{
    char in[512], *log;
    path(in, "in.safetensors");
    write_input(in, 32, 64, 64, 0, 0, 0);
    int rc = run(NULL, &log, "layer", in, "-o", "/nonexistent-dir/out.safetensors", NULL);
    cr_assert_eq(rc, 1, "%s", log);
    cr_assert(strstr(log, "/nonexistent-dir/out.safetensors"), "%s", log);
}

/* A failing run leaves an existing output file as it was. */
Test(cli, existing_output_untouched_on_failure)
{
    char in[512], out[512], *log;
    path(in, "in.safetensors");
    path(out, "keep.safetensors");
    write_input(in, 32, 64, 64, 0, NAN, 0);
    FILE *f = fopen(out, "wb");
    fputs("precious", f);
    fclose(f);
    cr_assert_eq(run(NULL, &log, "layer", in, "-o", out, NULL), 1, "%s", log);
    char buf[32] = {0};
    f = fopen(out, "rb");
    cr_assert_eq(fread(buf, 1, sizeof buf, f), 8);
    fclose(f);
    cr_assert_str_eq(buf, "precious");
}

Test(cli, truncated_and_corrupt_input)
{
    char in[512], *log;
    path(in, "in.safetensors");
    write_input(in, 32, 64, 64, 0, 0, 0);
    struct stat sb;
    stat(in, &sb);
    cr_assert_eq(truncate(in, sb.st_size / 2), 0);
    expect_failure(in, in, NULL);
    FILE *f = fopen(in, "wb");
    fputs("\x10\0\0\0\0\0\0\0{not json at all", f);
    fclose(f);
    expect_failure(in, in, NULL);
    cr_assert_eq(run(NULL, &log, "layer", "/nonexistent.safetensors", "-o", in, NULL), 1);
    cr_assert(strstr(log, "/nonexistent.safetensors"), "%s", log);
}

Test(cli, usage_errors)
{
    char in[512], *log;
    path(in, "in.safetensors");
    write_input(in, 32, 64, 64, 0, 0, 0);
    cr_assert_eq(run(NULL, &log, "layer", in, NULL), 2, "%s", log);
    cr_assert(strstr(log, "no output file"), "%s", log);
    cr_assert_eq(run(NULL, &log, "layer", in, "-o", "x", "--bits", "5", NULL), 2, "%s", log);
    cr_assert(strstr(log, "--bits 5"), "%s", log);
    cr_assert_eq(run(NULL, &log, "layer", in, "-o", "x", "--group-size", "100", NULL), 2, "%s", log);
    cr_assert_eq(run(NULL, &log, "layer", "--help", NULL), 0, "%s", log);
    cr_assert(strstr(log, "--damp-percent"), "%s", log);
    cr_assert_eq(run(NULL, &log, "nosuchcommand", NULL), 2, "%s", log);
}

Test(cli, missing_backend)
{
    char in[512], out[512], *log;
    path(in, "in.safetensors");
    path(out, "out.safetensors");
    write_input(in, 32, 64, 64, 0, 0, 0);
    setenv("GPTQ_BACKEND_PATH", g_dir, 1);
    int rc = run(NULL, &log, "layer", in, "-o", out, "--backend", "hip", NULL);
    unsetenv("GPTQ_BACKEND_PATH");
    cr_assert_eq(rc, 1, "%s", log);
    cr_assert(strstr(log, "backend \"hip\" is not available"), "%s", log);
    cr_assert(!exists(out));
}
