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

/* ------------------------------------------------------------------ */
/* gptq matmul                                                         */
/* ------------------------------------------------------------------ */

/* A copy of tensor `name` of file f as a malloc'd array. */
static void *copy_tensor(gptq_st_file *f, const char *name, gptq_st_info *info)
{
    cr_assert_eq(gptq_st_find(f, name, info), GPTQ_OK, "no %s", name);
    void *p = malloc(info->nbytes ? info->nbytes : 1);
    cr_assert(p);
    memcpy(p, info->data, info->nbytes);
    return p;
}

/* The packed tensors of a `gptq layer` output (bits from its metadata). */
static void read_packed(const char *path, gptq_packed *p, gptq_format *fmt)
{
    gptq_st_file *f;
    cr_assert_eq(gptq_st_open(path, &f), GPTQ_OK, "%s", gptq_last_error());
    gptq_st_info qi, si, gi;
    memset(p, 0, sizeof *p);
    p->bits = atoi(gptq_st_metadata(f, "bits"));
    *fmt = strcmp(gptq_st_metadata(f, "checkpoint_format"), "gptq_v2") ? GPTQ_FORMAT_V1
                                                                      : GPTQ_FORMAT_V2;
    p->qweight = copy_tensor(f, "qweight", &qi);
    p->qzeros = copy_tensor(f, "qzeros", &gi);
    p->scales = copy_tensor(f, "scales", &si);
    p->g_idx = copy_tensor(f, "g_idx", &gi);
    p->out_features = qi.shape[1];
    p->in_features = qi.shape[0] * 32 / p->bits;
    p->ngroups = si.shape[0];
    gptq_st_close(f);
}

/* X (M, K) with values that exercise the fp16 rounding. */
static void write_x(const char *path, int64_t M, int64_t K, float **xout)
{
    gptq_tensor t;
    int64_t shape[2] = {M, K};
    cr_assert_eq(gptq_tensor_alloc(&t, GPTQ_F32, 2, shape), GPTQ_OK);
    float *x = t.data;
    uint32_t s = 7;
    for (int64_t i = 0; i < M * K; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 3.0f;
    }
    x[5] = 1.0f + 0x1p-11f; /* a tie in fp16 */
    x[9] = 3e-6f;           /* an fp16 subnormal */
    const char *names[1] = {"X"};
    cr_assert_eq(gptq_st_save(path, 1, names, &t), GPTQ_OK, "%s", gptq_last_error());
    *xout = malloc((size_t)(M * K) * 4);
    memcpy(*xout, x, (size_t)(M * K) * 4);
    gptq_tensor_free(&t);
}

/* `gptq matmul` on a `gptq layer` output: Y and W are gptq_matmul_ref's and
 * gptq_dequantize's bytes, for v1 and v2 zero formats and 3 and 4 bits. */
Test(cli, matmul_of_a_layer_output_is_the_reference)
{
    char in[512], q[512], xp[512], yp[512], *log;
    path(in, "in.safetensors");
    path(q, "q.safetensors");
    path(xp, "x.safetensors");
    path(yp, "y.safetensors");
    write_input(in, 64, 128, 256, 0, 0, 0);
    float *X;
    const int64_t M = 7, K = 128, N = 64;
    write_x(xp, M, K, &X);
    const char *variants[3][3] = {{"--asym", "--format", "gptq_v2"},
                                  {"--desc-act", "--format", "gptq"},
                                  {"--bits", "3", "--asym"}};
    for (int v = 0; v < 3; v++) {
        cr_assert_eq(run(NULL, &log, "layer", in, "-o", q, variants[v][0], variants[v][1],
                         variants[v][2], "--quiet", NULL),
                     0, "%s", log);
        cr_assert_eq(run(NULL, &log, "matmul", q, "-x", xp, "-o", yp, "--dequant", NULL), 0,
                     "%s", log);
        cr_assert(strstr(log, "Y (7, 64) = X (7, 128) W^T"), "%s", log);
        gptq_packed p;
        gptq_format fmt;
        read_packed(q, &p, &fmt);
        float Y[7 * 64], *W = malloc((size_t)(N * K) * 4);
        cr_assert_eq(gptq_matmul_ref(&p, fmt, X, M, NULL, Y), GPTQ_OK, "%s", gptq_last_error());
        cr_assert_eq(gptq_dequantize(&p, fmt, W), GPTQ_OK, "%s", gptq_last_error());
        gptq_st_file *f;
        cr_assert_eq(gptq_st_open(yp, &f), GPTQ_OK, "%s", gptq_last_error());
        gptq_st_info yi, wi;
        cr_assert_eq(gptq_st_find(f, "Y", &yi), GPTQ_OK);
        cr_assert_eq(gptq_st_find(f, "W", &wi), GPTQ_OK);
        cr_assert(yi.shape[0] == M && yi.shape[1] == N && wi.shape[0] == N && wi.shape[1] == K);
        cr_assert(memcmp(yi.data, Y, sizeof Y) == 0, "variant %d: Y is not the reference's", v);
        cr_assert(memcmp(wi.data, W, (size_t)(N * K) * 4) == 0,
                  "variant %d: W is not gptq_dequantize's", v);
        gptq_st_close(f);
        gptq_packed_free(&p);
        free(W);
    }
    free(X);
}

/* A checkpoint folder with --module and --bias (hand-made: config.json with
 * a quantization_config, one module packed by gptq_pack). */
Test(cli, matmul_of_a_checkpoint_module_with_bias)
{
    char dir[512], cfgp[600], st[600], xp[512], yp[512], *log;
    path(dir, "ckpt");
    cr_assert_eq(mkdir(dir, 0755), 0);
    snprintf(cfgp, sizeof cfgp, "%s/config.json", dir);
    FILE *f = fopen(cfgp, "w");
    cr_assert(f);
    fputs("{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\",\n"
          " \"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 1,\n"
          " \"num_attention_heads\": 4, \"num_key_value_heads\": 4, \"vocab_size\": 32,\n"
          " \"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-6,\n"
          " \"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 4,\n"
          "   \"group_size\": 32, \"desc_act\": false, \"sym\": false,\n"
          "   \"checkpoint_format\": \"gptq_v2\"}}\n", f);
    fclose(f);
    /* down_proj: (out 64, in 128) */
    const int64_t N = 64, K = 128, G = 32, ng = K / G, M = 5;
    gptq_layer_result r = {0};
    r.rows = N;
    r.cols = K;
    r.bits = 4;
    r.group_size = (int)G;
    r.ngroups = ng;
    r.codes = malloc((size_t)(N * K));
    r.scales = malloc((size_t)(ng * N) * 4);
    r.zeros = malloc((size_t)(ng * N) * 4);
    r.g_idx = malloc((size_t)K * 4);
    uint32_t s = 3;
    for (int64_t i = 0; i < N * K; i++) r.codes[i] = (uint8_t)((s = s * 1664525u + 1013904223u) >> 28);
    for (int64_t i = 0; i < ng * N; i++) {
        r.zeros[i] = (int32_t)(i % 16); /* zero points 0 included: v2 */
        r.scales[i] = 0.01f + (float)(i % 7) * 0.003f;
    }
    for (int64_t k = 0; k < K; k++) r.g_idx[k] = (int32_t)(k / G);
    gptq_packed p;
    cr_assert_eq(gptq_pack(&r, GPTQ_FORMAT_V2, &p), GPTQ_OK, "%s", gptq_last_error());
    gptq_tensor t[5];
    const int64_t qs[2] = {K / 8, N}, zs[2] = {ng, N / 8}, ss[2] = {ng, N}, gs[1] = {K},
                  bs[1] = {N};
    cr_assert_eq(gptq_tensor_alloc(&t[0], GPTQ_I32, 2, qs), GPTQ_OK);
    cr_assert_eq(gptq_tensor_alloc(&t[1], GPTQ_I32, 2, zs), GPTQ_OK);
    cr_assert_eq(gptq_tensor_alloc(&t[2], GPTQ_F16, 2, ss), GPTQ_OK);
    cr_assert_eq(gptq_tensor_alloc(&t[3], GPTQ_I32, 1, gs), GPTQ_OK);
    cr_assert_eq(gptq_tensor_alloc(&t[4], GPTQ_F32, 1, bs), GPTQ_OK);
    memcpy(t[0].data, p.qweight, (size_t)(K / 8 * N) * 4);
    memcpy(t[1].data, p.qzeros, (size_t)(ng * N / 8) * 4);
    memcpy(t[2].data, p.scales, (size_t)(ng * N) * 2);
    memcpy(t[3].data, p.g_idx, (size_t)K * 4);
    float *bias = t[4].data;
    for (int64_t n = 0; n < N; n++) bias[n] = 0.25f * (float)n - 3.0f + 1e-4f;
    const char *names[5] = {"model.layers.0.mlp.down_proj.qweight",
                            "model.layers.0.mlp.down_proj.qzeros",
                            "model.layers.0.mlp.down_proj.scales",
                            "model.layers.0.mlp.down_proj.g_idx",
                            "model.layers.0.mlp.down_proj.bias"};
    snprintf(st, sizeof st, "%s/model.safetensors", dir);
    cr_assert_eq(gptq_st_save(st, 5, names, t), GPTQ_OK, "%s", gptq_last_error());
    float *X;
    path(xp, "x.safetensors");
    path(yp, "y.safetensors");
    write_x(xp, M, K, &X);
    /* a folder needs --module */
    cr_assert_eq(run(NULL, &log, "matmul", dir, "-x", xp, "-o", yp, NULL), 2, "%s", log);
    cr_assert(strstr(log, "--module"), "%s", log);
    cr_assert_eq(run(NULL, &log, "matmul", dir, "-x", xp, "-o", yp, "--module",
                     "model.layers.0.mlp.down_proj", "--bias", NULL),
                 0, "%s", log);
    float Y[5 * 64];
    cr_assert_eq(gptq_matmul_ref(&p, GPTQ_FORMAT_V2, X, M, bias, Y), GPTQ_OK);
    gptq_st_file *yf;
    gptq_st_info yi;
    cr_assert_eq(gptq_st_open(yp, &yf), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(gptq_st_find(yf, "Y", &yi), GPTQ_OK);
    cr_assert(memcmp(yi.data, Y, sizeof Y) == 0, "Y is not the reference's (bias added)");
    cr_assert_str_eq(gptq_st_metadata(yf, "checkpoint_format"), "gptq_v2");
    gptq_st_close(yf);
    /* an X of the wrong width is refused, naming the file and the width wanted */
    float *X2;
    write_x(xp, M, K / 2, &X2);
    cr_assert_eq(run(NULL, &log, "matmul", dir, "-x", xp, "-o", yp, "--module",
                     "model.layers.0.mlp.down_proj", NULL),
                 1, "%s", log);
    cr_assert(strstr(log, "x.safetensors: X must be (M, 128)"), "%s", log);
    /* a module that does not exist is named */
    cr_assert_eq(run(NULL, &log, "matmul", dir, "-x", xp, "-o", yp, "--module",
                     "model.layers.3.mlp.down_proj", NULL),
                 1, "%s", log);
    cr_assert(strstr(log, "model.layers.3.mlp.down_proj.scales"), "%s", log);
    for (int i = 0; i < 5; i++) gptq_tensor_free(&t[i]);
    gptq_packed_free(&p);
    gptq_layer_result_free(&r);
    free(X);
    free(X2);
}
