/*
 * test_hip.c — the HIP backend plugin (libgptq-hip.so): its memory, its
 * error reports (out of device memory, views past a buffer, bad group
 * index), the layer solve on it against the CPU backend and its host path;
 * and, in a build without the plugin, the message that says how to build it.
 *
 * The GPU tests skip (with the loader's message) when the plugin cannot be
 * opened: no plugin built, or no GPU. The plugin is looked up in
 * $GPTQ_BUILD_ROOT/backends/hip first.
 *
 * The ops one by one, against the CPU backend, are rows of the op table
 * (tests/backend_ops_cases.c, run by test_backend_ops). Tolerances here:
 *   quantize_layer  codes identical share >= 99.9%, loss relative
 *               difference < 1e-3: the GEMMs of the solve round differently
 *               (1e-7 relative) and a value on a rounding boundary can flip
 *               one code, which then shifts later errors.
 *   layer_dev   the device-resident layer solve: identical packed tensors,
 *               weight and loss to the host path; out_rel_err within 1e-5
 *               relative (its damping term uses the fp16-scale W_hat and
 *               ||W||^2 is summed on the GPU).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/format.h"
#include "internal.h"
#include "quant/solve.h"

#define MIN_SAME_CODES 0.999
#define TOL_LOSS 1e-3

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static uint64_t rng_state;
static void rng_seed(uint64_t s) { rng_state = s * 6364136223846793005ull + 1442695040888963407ull; }
/* uniform [-1, 1) */
static float rng_uniform(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng_state >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}
static void fill_uniform(float *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = rng_uniform();
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    cr_assert(p, "out of host memory");
    return p;
}

/* This build's plugin folder: $GPTQ_BUILD_ROOT/backends/hip, or (run by
 * hand) ../backends/hip beside the test executable, where the loader looks. */
static const char *plugin_build_dir(void)
{
    static char dir[4096];
    const char *root = getenv("GPTQ_BUILD_ROOT");
    if (root) {
        snprintf(dir, sizeof dir, "%s/backends/hip", root);
        return dir;
    }
    char exe[4000];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return NULL;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash) return NULL;
    *slash = '\0';
    snprintf(dir, sizeof dir, "%s/../backends/hip", exe);
    return dir;
}

static int plugin_was_built(void)
{
    const char *d = plugin_build_dir();
    if (!d) return 0;
    char so[4200];
    snprintf(so, sizeof so, "%s/libgptq-hip.so", d);
    return access(so, F_OK) == 0;
}

static gptq_backend *g_cpu, *g_hip;

/* Open both backends, or skip the test saying why. */
static void open_both(void)
{
    const char *d = plugin_build_dir();
    if (d && plugin_was_built()) setenv("GPTQ_BACKEND_PATH", d, 1);
    int st = gptq_backend_open("hip", &g_hip);
    if (st != GPTQ_OK)
        cr_skip_test("HIP backend unavailable (no plugin built or no GPU): %s", gptq_last_error());
    cr_assert_eq(gptq_backend_open("cpu", &g_cpu), GPTQ_OK, "%s", gptq_last_error());
}

static void close_both(void)
{
    gptq_backend_close(g_hip);
    gptq_backend_close(g_cpu);
    g_hip = g_cpu = NULL;
}

static const gptq_backend_iface *IF(gptq_backend *be) { return be->iface; }

static gptq_buf *dev_new(gptq_backend *be, size_t nbytes)
{
    gptq_buf *b = NULL;
    cr_assert_eq(gptq_be_alloc(be, nbytes, &b, "test buffer"), GPTQ_OK, "%s", gptq_last_error());
    return b;
}

static void dev_put(gptq_backend *be, gptq_buf *b, const void *src, size_t n)
{
    cr_assert_eq(gptq_be_upload(be, b, 0, src, n), GPTQ_OK, "%s", gptq_last_error());
}

static void dev_get(gptq_backend *be, const gptq_buf *b, void *dst, size_t n)
{
    cr_assert_eq(gptq_be_download(be, b, 0, dst, n), GPTQ_OK, "%s", gptq_last_error());
}

static gptq_buf *dev_from(gptq_backend *be, const void *src, size_t n)
{
    gptq_buf *b = dev_new(be, n);
    dev_put(be, b, src, n);
    return b;
}

static void ok(gptq_backend *be, int st, const char *op)
{
    cr_assert_eq(st, GPTQ_OK, "%s on %s: %s (%s)", op, be->iface->name, gptq_status_str(st),
                 be->iface->error(be->ctx));
}

/* ------------------------------------------------------------------ */
/* The plugin is missing (CPU-only build)                              */
/* ------------------------------------------------------------------ */

Test(hip, missing_plugin_message)
{
    if (plugin_was_built())
        cr_skip_test("the HIP plugin is built here; this test checks the CPU-only build");
    char dir[] = "/tmp/gptq-test-hip-XXXXXX";
    cr_assert(mkdtemp(dir), "mkdtemp failed");
    setenv("GPTQ_BACKEND_PATH", dir, 1);
    gptq_backend *be = NULL;
    int st = gptq_backend_open("hip", &be);
    unsetenv("GPTQ_BACKEND_PATH");
    rmdir(dir);
    if (st == GPTQ_OK) {
        char where[600];
        snprintf(where, sizeof where, "%s", be->path);
        gptq_backend_close(be);
        cr_skip_test("a HIP plugin is installed outside this build (%s)", where);
    }
    cr_assert_eq(st, GPTQ_ERR_BACKEND, "status %d: %s", st, gptq_last_error());
    cr_assert_null(be);
    const char *m = gptq_last_error();
    cr_assert(strstr(m, "libgptq-hip.so not found"), "%s", m);
    cr_assert(strstr(m, dir), "the message should list the folder searched: %s", m);
    cr_assert(strstr(m, "-Dhip=enabled"), "the message should say how to build it: %s", m);
}

/* ------------------------------------------------------------------ */
/* Memory                                                              */
/* ------------------------------------------------------------------ */

Test(hip, alloc_zeroed_roundtrip_and_bounds)
{
    open_both();
    const size_t n = 100003; /* odd size */
    gptq_buf *b = dev_new(g_hip, n);
    unsigned char *h = xmalloc(n);
    memset(h, 0xAB, n);
    dev_get(g_hip, b, h, n);
    for (size_t i = 0; i < n; i++) cr_assert_eq(h[i], 0, "byte %zu of a new buffer is %d", i, h[i]);
    for (size_t i = 0; i < n; i++) h[i] = (unsigned char)(i * 7 + 3);
    dev_put(g_hip, b, h, n);
    gptq_buf *c = dev_new(g_hip, n);
    ok(g_hip, IF(g_hip)->copy(g_hip->ctx, c, 10, b, 0, n - 10), "copy");
    unsigned char *g = xmalloc(n);
    dev_get(g_hip, c, g, n);
    for (size_t i = 10; i < n; i++) cr_assert_eq(g[i], h[i - 10], "copy: byte %zu", i);
    /* overlapping copy inside one buffer: memmove semantics */
    ok(g_hip, IF(g_hip)->copy(g_hip->ctx, b, 5, b, 0, n - 5), "copy (overlap)");
    dev_get(g_hip, b, g, n);
    for (size_t i = 5; i < n; i++) cr_assert_eq(g[i], h[i - 5], "overlapping copy: byte %zu", i);
    /* out of range */
    cr_assert_eq(IF(g_hip)->upload(g_hip->ctx, b, n - 3, h, 4), GPTQ_ERR_INVALID);
    cr_assert(strstr(IF(g_hip)->error(g_hip->ctx), "outside"), "%s", IF(g_hip)->error(g_hip->ctx));
    cr_assert_eq(IF(g_hip)->download(g_hip->ctx, b, n, g, 1), GPTQ_ERR_INVALID);
    size_t fr = 0, tot = 0;
    ok(g_hip, IF(g_hip)->mem_info(g_hip->ctx, &fr, &tot), "mem_info");
    cr_assert(tot > 0 && fr <= tot, "mem_info: free %zu of %zu", fr, tot);
    free(h);
    free(g);
    gptq_be_free(g_hip, b);
    gptq_be_free(g_hip, c);
    close_both();
}

Test(hip, out_of_memory_is_an_error)
{
    open_both();
    const size_t pib = (size_t)1 << 50;
    gptq_buf *b = NULL;
    int st = IF(g_hip)->alloc(g_hip->ctx, pib, &b);
    cr_assert_eq(st, GPTQ_ERR_NOMEM, "1 PiB alloc: status %d (%s)", st,
                 IF(g_hip)->error(g_hip->ctx));
    cr_assert_null(b);
    const char *m = IF(g_hip)->error(g_hip->ctx);
    cr_assert(strstr(m, "1125899906842624 bytes"), "the message should give the size: %s", m);
    cr_assert(strstr(m, "MiB free of"), "the message should give free/total memory: %s", m);
    /* the wrapper names what was being allocated */
    cr_assert_eq(gptq_be_alloc(g_hip, pib, &b, "the test's petabyte"), GPTQ_ERR_NOMEM);
    cr_assert(strstr(gptq_last_error(), "the test's petabyte"), "%s", gptq_last_error());
    /* and the device still works */
    gptq_buf *ok_b = dev_new(g_hip, 1 << 20);
    float x = 3.5f, y = 0.0f;
    cr_assert_eq(gptq_be_upload(g_hip, ok_b, 64, &x, 4), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(gptq_be_download(g_hip, ok_b, 64, &y, 4), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(y, 3.5f);
    gptq_be_free(g_hip, ok_b);
    close_both();
}

/* The Hessian finished on the GPU (hessian_finish: scale, damp) is the
 * host's: gptq_quantize_layer_h on HIP gives the bytes of gptq_hessian_get
 * + gptq_quantize_layer on HIP (same Cholesky input, same kernels after);
 * act-order and a dead column take the host path and agree too. */
Test(hip, quantize_with_the_accumulated_hessian_is_the_same)
{
    open_both();
    rng_seed(17);
    const int64_t R = 128, C = 256, n = 1024;
    float *W = xmalloc((size_t)(R * C) * 4), *X = xmalloc((size_t)(n * C) * 4);
    float *H = xmalloc((size_t)(C * C) * 4);
    for (int variant = 0; variant < 3; variant++) {
        fill_uniform(W, (size_t)(R * C));
        fill_uniform(X, (size_t)(n * C));
        if (variant == 2)
            for (int64_t t = 0; t < n; t++) X[t * C + 9] = 0.0f;
        gptq_quant_config q;
        gptq_quant_config_default(&q);
        q.sym = variant != 0;
        q.desc_act = variant == 1;
        gptq_hessian *h;
        cr_assert_eq(gptq_hessian_new(g_hip, C, &h), GPTQ_OK, "%s", gptq_last_error());
        cr_assert_eq(gptq_hessian_add(h, X, n), GPTQ_OK, "%s", gptq_last_error());
        cr_assert_eq(gptq_hessian_get(h, H), GPTQ_OK, "%s", gptq_last_error());
        gptq_layer_result a, b;
        cr_assert_eq(gptq_quantize_layer(g_hip, W, R, C, H, &q, &a), GPTQ_OK, "%s",
                     gptq_last_error());
        cr_assert_eq(gptq_quantize_layer_h(g_hip, W, R, C, h, &q, &b), GPTQ_OK, "%s",
                     gptq_last_error());
        cr_assert(memcmp(a.codes, b.codes, (size_t)(R * C)) == 0, "variant %d: codes differ",
                  variant);
        cr_assert(memcmp(a.scales, b.scales, (size_t)(a.ngroups * R) * 4) == 0,
                  "variant %d: scales differ", variant);
        cr_assert(memcmp(a.zeros, b.zeros, (size_t)(a.ngroups * R) * 4) == 0,
                  "variant %d: zeros differ", variant);
        cr_assert(a.loss == b.loss && a.damp_used == b.damp_used && a.dead_cols == b.dead_cols,
                  "variant %d: loss %.9g vs %.9g, damp %g vs %g", variant, a.loss, b.loss,
                  (double)a.damp_used, (double)b.damp_used);
        cr_assert(a.out_rel_err == b.out_rel_err, "variant %d: out_rel_err %.17g vs %.17g",
                  variant, a.out_rel_err, b.out_rel_err);
        gptq_layer_result_free(&a);
        gptq_layer_result_free(&b);
        gptq_hessian_free(h);
    }
    free(W);
    free(X);
    free(H);
    close_both();
}

Test(hip, gemm_rejects_views_past_the_buffer)
{
    open_both();
    gptq_buf *a = dev_new(g_hip, 16 * 16 * 4), *c = dev_new(g_hip, 16 * 16 * 4);
    int st = IF(g_hip)->gemm(g_hip->ctx, 0, 0, 16, 16, 17, 1.0f, a, 0, 17, a, 0, 16, 0.0f, c, 0, 16);
    cr_assert_eq(st, GPTQ_ERR_INVALID);
    cr_assert(strstr(IF(g_hip)->error(g_hip->ctx), "runs past the buffer"), "%s",
              IF(g_hip)->error(g_hip->ctx));
    gptq_be_free(g_hip, a);
    gptq_be_free(g_hip, c);
    close_both();
}

/* H = X^T X / n + 0.5 I with X uniform: eigenvalues near 1/3 + 0.5, so a
 * condition number below ~3 for n >> C; a rank-1 bump adds some spread. */
static void make_spd(float *H, int64_t C)
{
    const int64_t n = 2 * C + 64;
    float *X = xmalloc((size_t)(n * C) * 4), *v = xmalloc((size_t)C * 4);
    fill_uniform(X, (size_t)(n * C));
    fill_uniform(v, (size_t)C);
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j <= i; j++) {
            double s = 0.0;
            for (int64_t r = 0; r < n; r++) s += (double)X[r * C + i] * X[r * C + j];
            double h = s / (double)n + (i == j ? 0.5 : 0.0) + 0.5 * (double)v[i] * v[j];
            H[i * C + j] = H[j * C + i] = (float)h;
        }
    free(X);
    free(v);
}

Test(hip, gptq_block_bad_group_index)
{
    open_both();
    const int64_t R = 40, C = 128, B = 128;
    gptq_buf *w = dev_new(g_hip, (size_t)(R * C) * 4), *gi = dev_new(g_hip, (size_t)C * 4);
    gptq_buf *sb = dev_new(g_hip, (size_t)R * 4), *zb = dev_new(g_hip, (size_t)R * 4);
    gptq_buf *codes = dev_new(g_hip, (size_t)(R * C)), *err = dev_new(g_hip, (size_t)(R * B) * 4);
    gptq_buf *loss = dev_new(g_hip, (size_t)R * 8);
    int32_t gidx[128] = {0};
    gidx[77] = 5; /* only group 0 exists */
    dev_put(g_hip, gi, gidx, sizeof gidx);
    gptq_block_args a = {
        .W = w, .R = R, .C = C, .U = NULL, .j0 = 0, .nb = B, .group_size = C, .grid_given = 0,
        .gidx = gi, .scale = sb, .zero = zb, .codes = codes, .Err = err, .loss = loss,
        .grid = {4, 0, 0, 2.4f, 100, 0.8f},
    };
    /* the kernel finds it; the next sync reports it */
    int st = IF(g_hip)->gptq_block(g_hip->ctx, &a);
    if (st == GPTQ_OK) st = IF(g_hip)->sync(g_hip->ctx);
    cr_assert_eq(st, GPTQ_ERR_INVALID, "status %d", st);
    cr_assert(strstr(IF(g_hip)->error(g_hip->ctx), "gidx[77] = 5"), "%s",
              IF(g_hip)->error(g_hip->ctx));
    /* reported once: the backend goes on working */
    cr_assert_eq(IF(g_hip)->sync(g_hip->ctx), GPTQ_OK, "%s", IF(g_hip)->error(g_hip->ctx));
    gptq_be_free(g_hip, w);
    gptq_be_free(g_hip, gi);
    gptq_be_free(g_hip, sb);
    gptq_be_free(g_hip, zb);
    gptq_be_free(g_hip, codes);
    gptq_be_free(g_hip, err);
    gptq_be_free(g_hip, loss);
    close_both();
}

/* ------------------------------------------------------------------ */
/* The driver end to end on the HIP backend                            */
/* ------------------------------------------------------------------ */

Test(hip, quantize_layer_vs_cpu)
{
    open_both();
    rng_seed(16);
    const int64_t R = 96, C = 256;
    float *W = xmalloc((size_t)(R * C) * 4), *H = xmalloc((size_t)(C * C) * 4);
    fill_uniform(W, (size_t)(R * C));
    make_spd(H, C);
    /* act-order; gar (issue 13): GAR with groups of 32, and with static groups */
    for (int variant = 0; variant < 3; variant++) {
        gptq_quant_config cfg;
        gptq_quant_config_default(&cfg);
        cfg.sym = 0;
        cfg.desc_act = variant == 0;
        cfg.act_group_aware = variant == 0 ? 0 : 1;
        cfg.group_size = variant == 0 ? 128 : 32;
        cfg.static_groups = variant == 2;
        gptq_layer_result rh, rc;
        cr_assert_eq(gptq_quantize_layer(g_hip, W, R, C, H, &cfg, &rh), GPTQ_OK, "%s",
                     gptq_last_error());
        cr_assert_eq(gptq_quantize_layer(g_cpu, W, R, C, H, &cfg, &rc), GPTQ_OK, "%s",
                     gptq_last_error());
        int64_t same = 0;
        for (int64_t i = 0; i < R * C; i++) same += rh.codes[i] == rc.codes[i];
        double share = (double)same / (double)(R * C);
        double lrel = fabs(rh.loss - rc.loss) / rc.loss;
        cr_log_info("quantize_layer variant %d: codes identical %.6f, loss %.9g vs %.9g",
                    variant, share, rh.loss, rc.loss);
        cr_assert(share >= MIN_SAME_CODES, "variant %d: identical codes %.5f", variant, share);
        cr_assert(lrel < TOL_LOSS, "variant %d: loss %.9g vs CPU %.9g", variant, rh.loss,
                  rc.loss);
        cr_assert(memcmp(rh.perm, rc.perm, (size_t)C * 4) == 0,
                  "variant %d: permutations differ", variant);
        cr_assert(memcmp(rh.g_idx, rc.g_idx, (size_t)C * 4) == 0, "variant %d: g_idx",
                  variant);
        int ident = 1;
        for (int64_t j = 0; j < C; j++) ident &= rc.perm[j] == j;
        cr_assert(!ident, "variant %d: the order did not move", variant);
        gptq_layer_result_free(&rh);
        gptq_layer_result_free(&rc);
    }
    free(W);
    free(H);
    close_both();
}

/* The pipeline's layer solve with W on the GPU against the entry with W on
 * the host, on the same GPU (one solve: the same bits, output error
 * included): variants asym, sym, static groups, a dead column (these four
 * in GAR's order, the default: gar, issue 13), act-order, act-order with
 * static groups, and weights ~5e-5 whose scales are fp16 subnormals (both
 * then report the error of the fp16-scale weight). */
Test(hip, quantize_layer_dev_is_the_host_path)
{
    open_both();
    rng_seed(23);
    const int64_t R = 128, C = 256, n = 1024;
    float *W = xmalloc((size_t)(R * C) * 4), *X = xmalloc((size_t)(n * C) * 4);
    float *Wa = xmalloc((size_t)(R * C) * 4), *Wb = xmalloc((size_t)(R * C) * 4);
    for (int variant = 0; variant < 7; variant++) {
        fill_uniform(W, (size_t)(R * C));
        if (variant == 6)
            for (int64_t i = 0; i < R * C; i++) W[i] *= 5e-5f;
        fill_uniform(X, (size_t)(n * C));
        for (int64_t t = 0; t < n; t++) /* columns of unequal scale: act-order reorders */
            for (int64_t c = 0; c < C; c++) X[t * C + c] *= 0.5f + (float)((c * 37) % 11) * 0.2f;
        if (variant == 3)
            for (int64_t t = 0; t < n; t++) X[t * C + 9] = 0.0f;
        gptq_quant_config q;
        gptq_quant_config_default(&q);
        q.sym = variant != 0;
        q.static_groups = variant == 2 || variant == 5;
        q.desc_act = variant >= 4;
        gptq_hessian *h;
        cr_assert_eq(gptq_hessian_new(g_hip, C, &h), GPTQ_OK, "%s", gptq_last_error());
        cr_assert_eq(gptq_hessian_add(h, X, n), GPTQ_OK, "%s", gptq_last_error());
        gptq_layer_result a, b;
        gptq_packed pa, pb;
        cr_assert_eq(gptq_quantize_layer_h(g_hip, W, R, C, h, &q, &a), GPTQ_OK, "%s",
                     gptq_last_error());
        cr_assert_eq(gptq_pack(&a, GPTQ_FORMAT_V2, &pa), GPTQ_OK, "%s", gptq_last_error());
        cr_assert_eq(gptq_dequantize(&pa, GPTQ_FORMAT_V2, Wa), GPTQ_OK, "%s", gptq_last_error());
        gptq_buf *Wd = dev_from(g_hip, W, (size_t)(R * C) * 4);
        cr_assert_eq(gptq_quantize_layer_dev(g_hip, Wd, R, C, h, &q, &b, &pb), GPTQ_OK, "%s",
                     gptq_last_error());
        dev_get(g_hip, Wd, Wb, (size_t)(R * C) * 4);
        const int64_t ng = a.ngroups;
        cr_assert(memcmp(pa.qweight, pb.qweight, (size_t)(C / 8 * R) * 4) == 0,
                  "variant %d: qweight differs", variant);
        cr_assert(memcmp(pa.qzeros, pb.qzeros, (size_t)(ng * R / 8) * 4) == 0,
                  "variant %d: qzeros differ", variant);
        cr_assert(memcmp(pa.scales, pb.scales, (size_t)(ng * R) * 2) == 0,
                  "variant %d: scales differ", variant);
        cr_assert(memcmp(pa.g_idx, pb.g_idx, (size_t)C * 4) == 0, "variant %d: g_idx", variant);
        cr_assert(memcmp(a.scales, b.scales, (size_t)(ng * R) * 4) == 0 &&
                      memcmp(a.zeros, b.zeros, (size_t)(ng * R) * 4) == 0,
                  "variant %d: result scales/zeros differ", variant);
        cr_assert(memcmp(Wa, Wb, (size_t)(R * C) * 4) == 0, "variant %d: the weight differs",
                  variant);
        cr_assert(a.loss == b.loss && a.damp_used == b.damp_used && a.dead_cols == b.dead_cols,
                  "variant %d: loss %.17g vs %.17g", variant, a.loss, b.loss);
        cr_assert(a.out_rel_err == b.out_rel_err && a.dead_cols == (variant == 3),
                  "variant %d: out_rel_err %.17g vs %.17g", variant, a.out_rel_err,
                  b.out_rel_err);
        cr_assert(a.scales_subnormal == b.scales_subnormal &&
                      (variant == 6) == (b.scales_subnormal > 0),
                  "variant %d: %lld and %lld subnormal scales", variant,
                  (long long)a.scales_subnormal, (long long)b.scales_subnormal);
        if (variant == 6) /* the fp16 rounding shows: the two errors differ */
            cr_assert(fabs(b.out_rel_err - b.out_rel_err_f32) > 1e-4 * b.out_rel_err,
                      "variant 6: %.9g vs %.9g with f32 scales", b.out_rel_err,
                      b.out_rel_err_f32);
        if (variant >= 4) {
            int moved = 0;
            for (int64_t j = 0; j < C; j++) moved += b.perm[j] != j;
            cr_assert(moved > C / 2 && memcmp(a.perm, b.perm, (size_t)C * 4) == 0,
                      "variant %d: act-order permutation (%d moved)", variant, moved);
        }
        gptq_be_free(g_hip, Wd);
        gptq_layer_result_free(&a);
        gptq_layer_result_free(&b);
        gptq_packed_free(&pa);
        gptq_packed_free(&pb);
        gptq_hessian_free(h);
    }
    free(W);
    free(X);
    free(Wa);
    free(Wb);
    close_both();
}
