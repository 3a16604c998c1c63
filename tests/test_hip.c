/*
 * test_hip.c — the HIP backend plugin (libgptq-hip.so) against the CPU
 * reference backend, op by op, on random inputs; its error reports (out of
 * device memory, bad group index, not positive definite); and, in a build
 * without the plugin, the message that says how to build it.
 *
 * The GPU tests skip (with the loader's message) when the plugin cannot be
 * opened: no plugin built, or no GPU. The plugin is looked up in
 * $GPTQ_BUILD_ROOT/backends/hip first.
 *
 * Tolerances (HIP vs CPU; metric named per row):
 *   gemm        rel. Frobenius < 1e-5: both are f32 sums of K <= 300 terms in
 *               different orders (tiles, FMA): about sqrt(K) * 6e-8 apart.
 *   hessian     rel. Frobenius < 1e-5: the same, K = n = 1000 rows; and the
 *               HIP result exactly symmetric (both triangles get one value).
 *   U           rel. Frobenius < 1e-4 on a well-conditioned H (cond < 50):
 *               the two factor with different blockings and inverse
 *               algorithms; the error grows like cond * eps * f(C) (seen on
 *               the CPU alone: <= 4e-7 for cond < 20). Strict lower part
 *               exactly 0.
 *   quant_grid  identical bytes without MSE (the same f32 operations,
 *               IEEE division, no contraction); with MSE >= 99.9% identical
 *               rows (pow() of two libms may differ by an ulp and flip a
 *               near-tie between two shrink steps).
 *   gptq_block  one block from the same inputs: identical codes, errors,
 *               scales, zeros, W and losses (the kernel repeats the CPU's
 *               arithmetic operation for operation). A whole solve (blocks
 *               + lazy GEMM updates, same U): codes identical share >=
 *               99.9%, largest code difference <= 1 step, loss relative
 *               difference < 1e-3, scales within 1e-4 relative — the GEMMs
 *               round differently (1e-7 relative) and a value on a rounding
 *               boundary can flip one code, which then shifts later errors.
 *   packed ops  pack_codes, dequantize, matmul_q: identical bytes (exact by
 *               the contract: bit moves, one exact product, a k-order f32
 *               sum without FMA), a NaN output matching any NaN (payloads
 *               of inf - inf differ between processors).
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
#include "quant/qdev.h"

#define TOL_GEMM 1e-5
#define TOL_HESS 1e-5
#define TOL_U 1e-4
#define MIN_SAME_CODES 0.999
#define TOL_LOSS 1e-3
#define TOL_SCALE 1e-4

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

/* ||a - b||_F / ||b||_F; a NaN or an infinity in either fails. */
static double rel_frob(const float *a, const float *b, size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) return INFINITY;
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    return den > 0.0 ? sqrt(num / den) : sqrt(num);
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

/* ------------------------------------------------------------------ */
/* gemm                                                                */
/* ------------------------------------------------------------------ */

/* One gemm on both backends from the same inputs; returns the relative
 * Frobenius difference of C. Views sit at offsets with padded leading
 * dimensions so the bounds and strides are exercised. */
static double gemm_case(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, float beta,
                        int64_t pad)
{
    const int64_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    const int64_t lda = ac + pad, ldb = bc + pad, ldc = N + pad;
    const size_t aoff = 3 * (size_t)pad, boff = 5 * (size_t)pad, coff = 7 * (size_t)pad;
    const size_t na = aoff + (size_t)(ar * lda), nb = boff + (size_t)(br * ldb),
                 nc = coff + (size_t)(M * ldc);
    float *A = xmalloc(na * 4), *B = xmalloc(nb * 4), *C0 = xmalloc(nc * 4);
    float *Rh = xmalloc(nc * 4), *Rc = xmalloc(nc * 4);
    fill_uniform(A, na);
    fill_uniform(B, nb);
    fill_uniform(C0, nc);
    if (beta == 0.0f)
        for (size_t i = 0; i < nc; i++) C0[i] = NAN; /* beta 0: C must not be read */
    gptq_backend *be[2] = {g_hip, g_cpu};
    float *out[2] = {Rh, Rc};
    for (int k = 0; k < 2; k++) {
        gptq_buf *a = dev_from(be[k], A, na * 4), *b = dev_from(be[k], B, nb * 4),
                 *c = dev_from(be[k], C0, nc * 4);
        ok(be[k], IF(be[k])->gemm(be[k]->ctx, ta, tb, M, N, K, alpha, a, aoff, lda, b, boff, ldb,
                                  beta, c, coff, ldc),
           "gemm");
        dev_get(be[k], c, out[k], nc * 4);
        gptq_be_free(be[k], a);
        gptq_be_free(be[k], b);
        gptq_be_free(be[k], c);
    }
    /* the padding between rows is left alone */
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = N; j < ldc; j++) {
            size_t at = coff + (size_t)(i * ldc + j);
            if (beta != 0.0f) cr_assert_eq(Rh[at], C0[at], "gemm wrote outside C at (%lld, %lld)",
                                           (long long)i, (long long)j);
        }
    /* compare the C views only */
    float *vh = xmalloc((size_t)(M * N) * 4), *vc = xmalloc((size_t)(M * N) * 4);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            vh[i * N + j] = Rh[coff + (size_t)(i * ldc + j)];
            vc[i * N + j] = Rc[coff + (size_t)(i * ldc + j)];
        }
    double e = rel_frob(vh, vc, (size_t)(M * N));
    free(vh);
    free(vc);
    free(A);
    free(B);
    free(C0);
    free(Rh);
    free(Rc);
    return e;
}

Test(hip, gemm_vs_cpu)
{
    open_both();
    rng_seed(11);
    /* sizes: tails in every dimension, vector (multiple-of-4) and scalar paths */
    const int64_t sizes[][3] = {{131, 77, 53}, {256, 384, 200}, {1, 1, 1}, {5, 300, 7},
                                {260, 132, 300}, {129, 129, 129}};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int pad = 0; pad < 2; pad++) {
                    const int64_t M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
                    float beta = pad ? -0.25f : 0.0f;
                    double e = gemm_case(ta, tb, M, N, K, 0.75f, beta, pad ? 4 + s % 2 : 0);
                    cr_assert(e < TOL_GEMM,
                              "gemm ta=%d tb=%d M=%lld N=%lld K=%lld pad=%d: rel. error %.3g >= %g",
                              ta, tb, (long long)M, (long long)N, (long long)K, pad, e, TOL_GEMM);
                }
    close_both();
}

/* linear_fast (TF32 on NVIDIA, f32 on AMD) against the CPU's f32 gemm of the
 * same Linear. TF32 keeps 10 of f32's 23 significand bits: each input is
 * off by up to 2^-11 relative, so each product by ~1e-3 at worst and ~4e-4
 * typically; over K random-sign terms the errors average like the terms,
 * so the relative Frobenius error is ~4e-4 whatever K: 2e-3 is the bound.
 * Shapes: whole tiles, tails in M and N, N not a multiple of 8 (the staged
 * store), K not a multiple of 4 (the f32 fallback), K smaller than a
 * k-step. Rows of Y beyond the view stay untouched (checked). */
#define TOL_TF32 2e-3
Test(hip, linear_fast_vs_cpu_gemm)
{
    open_both();
    cr_assert(IF(g_hip)->linear_fast != NULL, "the HIP backend has no linear_fast");
    rng_seed(13);
    const int64_t sizes[][3] = {{256, 256, 256}, {300, 200, 96}, {129, 132, 64},
                                {70, 36, 30}, {1, 8, 4}, {512, 4096 + 128, 520}, {200, 300, 64}};
    /* every NVIDIA kernel: v3 (the default), v2, v1 */
    static const char *const kv[3] = {"v3", "v2", "v1"};
    for (size_t s = 0; s < 3 * sizeof sizes / sizeof *sizes; s++) {
        setenv("GPTQ_HIP_LINEAR", kv[s % 3], 1);
        const int64_t M = sizes[s / 3][0], N = sizes[s / 3][1], K = sizes[s / 3][2];
        float *X = xmalloc((size_t)(M * K) * 4), *W = xmalloc((size_t)(N * K) * 4);
        float *Yh = xmalloc((size_t)(M * N + 8) * 4), *Yc = xmalloc((size_t)(M * N) * 4);
        fill_uniform(X, (size_t)(M * K));
        fill_uniform(W, (size_t)(N * K));
        gptq_buf *xh = dev_from(g_hip, X, (size_t)(M * K) * 4),
                 *wh = dev_from(g_hip, W, (size_t)(N * K) * 4);
        gptq_buf *yh = dev_new(g_hip, (size_t)(M * N + 8) * 4); /* zero-filled */
        ok(g_hip, IF(g_hip)->linear_fast(g_hip->ctx, M, N, K, xh, 0, wh, 0, yh, 0), "linear_fast");
        dev_get(g_hip, yh, Yh, (size_t)(M * N + 8) * 4);
        gptq_buf *xc = dev_from(g_cpu, X, (size_t)(M * K) * 4),
                 *wc = dev_from(g_cpu, W, (size_t)(N * K) * 4);
        gptq_buf *yc = dev_new(g_cpu, (size_t)(M * N) * 4);
        ok(g_cpu, IF(g_cpu)->gemm(g_cpu->ctx, 0, 1, M, N, K, 1.0f, xc, 0, K, wc, 0, K, 0.0f, yc, 0,
                                  N),
           "gemm");
        dev_get(g_cpu, yc, Yc, (size_t)(M * N) * 4);
        const double e = rel_frob(Yh, Yc, (size_t)(M * N));
        cr_log_info("linear_fast %s %lldx%lldx%lld: rel. error %.3g vs f32", kv[s % 3],
                    (long long)M, (long long)N, (long long)K, e);
        cr_assert(e < TOL_TF32, "linear_fast M=%lld N=%lld K=%lld: rel. error %.3g >= %g",
                  (long long)M, (long long)N, (long long)K, e, TOL_TF32);
        for (int t = 0; t < 8; t++)
            cr_assert_eq(Yh[M * N + t], 0.0f, "linear_fast wrote past Y (M=%lld N=%lld)",
                         (long long)M, (long long)N);
        gptq_be_free(g_hip, xh);
        gptq_be_free(g_hip, wh);
        gptq_be_free(g_hip, yh);
        gptq_be_free(g_cpu, xc);
        gptq_be_free(g_cpu, wc);
        gptq_be_free(g_cpu, yc);
        free(X);
        free(W);
        free(Yh);
        free(Yc);
    }
    unsetenv("GPTQ_HIP_LINEAR");
    close_both();
}

/* The Hessian finished on the GPU (hessian_finish: scale, damp) is the
 * host's: gptq_quantize_layer_h on HIP gives the bytes of gptq_hessian_get
 * + gptq_quantize_layer on HIP (same Cholesky input, same kernels after);
 * act-order and a dead column take the host path and agree too. */
Test(hip, quantize_with_the_accumulated_hessian_is_the_same)
{
    open_both();
    cr_assert(IF(g_hip)->hessian_finish != NULL, "the HIP backend has no hessian_finish");
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

/* ------------------------------------------------------------------ */
/* hessian_accumulate                                                  */
/* ------------------------------------------------------------------ */

static void hessian_case(int64_t C, int64_t n)
{
    const int64_t n1 = n * 3 / 5; /* two calls: rows [0, n1) and [n1, n) via x_off */
    float *X = xmalloc((size_t)(n * C) * 4), *S0 = xmalloc((size_t)(C * C) * 4);
    float *Sh = xmalloc((size_t)(C * C) * 4), *Sc = xmalloc((size_t)(C * C) * 4);
    fill_uniform(X, (size_t)(n * C));
    /* a symmetric starting S (the accumulation continues a previous one) */
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j <= i; j++) S0[i * C + j] = S0[j * C + i] = 10.0f * rng_uniform();
    gptq_backend *be[2] = {g_hip, g_cpu};
    float *out[2] = {Sh, Sc};
    for (int k = 0; k < 2; k++) {
        gptq_buf *x = dev_from(be[k], X, (size_t)(n * C) * 4);
        gptq_buf *s = dev_from(be[k], S0, (size_t)(C * C) * 4);
        ok(be[k], IF(be[k])->hessian_accumulate(be[k]->ctx, s, x, 0, n1, C), "hessian_accumulate");
        ok(be[k], IF(be[k])->hessian_accumulate(be[k]->ctx, s, x, (size_t)(n1 * C), n - n1, C),
           "hessian_accumulate");
        dev_get(be[k], s, out[k], (size_t)(C * C) * 4);
        gptq_be_free(be[k], x);
        gptq_be_free(be[k], s);
    }
    double e = rel_frob(Sh, Sc, (size_t)(C * C));
    cr_assert(e < TOL_HESS, "hessian C=%lld n=%lld: rel. error %.3g >= %g", (long long)C,
              (long long)n, e, TOL_HESS);
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j < i; j++)
            cr_assert_eq(Sh[i * C + j], Sh[j * C + i], "HIP S not symmetric at (%lld, %lld)",
                         (long long)i, (long long)j);
    free(X);
    free(S0);
    free(Sh);
    free(Sc);
}

Test(hip, hessian_vs_cpu)
{
    open_both();
    rng_seed(12);
    hessian_case(300, 1000); /* 3 tiles a side, vector loads */
    hessian_case(97, 1000);  /* one partial tile, scalar loads */
    hessian_case(257, 33);   /* a short batch */
    close_both();
}

/* ------------------------------------------------------------------ */
/* cholesky_inverse_upper                                              */
/* ------------------------------------------------------------------ */

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

static void chol_case(int64_t C)
{
    float *H = xmalloc((size_t)(C * C) * 4), *Uh = xmalloc((size_t)(C * C) * 4),
          *Uc = xmalloc((size_t)(C * C) * 4);
    make_spd(H, C);
    gptq_backend *be[2] = {g_hip, g_cpu};
    float *out[2] = {Uh, Uc};
    for (int k = 0; k < 2; k++) {
        gptq_buf *h = dev_from(be[k], H, (size_t)(C * C) * 4);
        int64_t bad = 12345;
        ok(be[k], IF(be[k])->cholesky_inverse_upper(be[k]->ctx, h, C, &bad), "cholesky_inverse_upper");
        cr_assert_eq(bad, -1, "bad_col %lld after success", (long long)bad);
        dev_get(be[k], h, out[k], (size_t)(C * C) * 4);
        gptq_be_free(be[k], h);
    }
    double e = rel_frob(Uh, Uc, (size_t)(C * C));
    cr_assert(e < TOL_U, "U C=%lld: rel. error %.3g >= %g", (long long)C, e, TOL_U);
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j < i; j++)
            cr_assert_eq(Uh[i * C + j], 0.0f, "U not upper at (%lld, %lld)", (long long)i,
                         (long long)j);
    /* independent of the CPU: U^T U H = I, checked on a few columns */
    double worst = 0.0;
    for (int64_t col = 0; col < C; col += (C > 7 ? C / 7 : 1)) {
        for (int64_t i = 0; i < C; i++) {
            double s = 0.0; /* (U^T U H)[i][col] = sum_k U[k][i] (U H)[k][col] */
            for (int64_t k = 0; k <= i; k++) {
                double uh = 0.0;
                for (int64_t m = k; m < C; m++) uh += (double)Uh[k * C + m] * H[m * C + col];
                s += (double)Uh[k * C + i] * uh;
            }
            double d = fabs(s - (i == col ? 1.0 : 0.0));
            if (d > worst) worst = d;
        }
    }
    cr_assert(worst < 1e-4, "U^T U H - I: largest entry %.3g (C=%lld)", worst, (long long)C);
    free(H);
    free(Uh);
    free(Uc);
}

Test(hip, cholesky_inverse_vs_cpu)
{
    open_both();
    rng_seed(13);
    chol_case(1);
    chol_case(64);  /* one block */
    chol_case(197); /* 3 blocks and a partial one */
    chol_case(300);
    close_both();
}

Test(hip, cholesky_not_positive_definite)
{
    open_both();
    const int64_t C = 150;
    float *H = xmalloc((size_t)(C * C) * 4);
    /* identity with one negative pivot at column 70: the trailing block
     * H[70:, 70:] is where positive definiteness fails, as the CPU says */
    memset(H, 0, (size_t)(C * C) * 4);
    for (int64_t i = 0; i < C; i++) H[i * C + i] = 1.0f;
    H[70 * C + 70] = -2.0f;
    gptq_backend *be[2] = {g_hip, g_cpu};
    for (int k = 0; k < 2; k++) {
        gptq_buf *h = dev_from(be[k], H, (size_t)(C * C) * 4);
        int64_t bad = -7;
        int st = IF(be[k])->cholesky_inverse_upper(be[k]->ctx, h, C, &bad);
        cr_assert_eq(st, GPTQ_ERR_NUMERIC, "%s: status %d", be[k]->iface->name, st);
        cr_assert_eq(bad, 70, "%s: bad_col %lld", be[k]->iface->name, (long long)bad);
        cr_assert(strstr(IF(be[k])->error(be[k]->ctx), "not positive definite"), "%s",
                  IF(be[k])->error(be[k]->ctx));
        /* a NaN: reported at its column, first in memory order */
        H[70 * C + 70] = 1.0f;
        H[33 * C + 101] = NAN;
        dev_put(be[k], h, H, (size_t)(C * C) * 4);
        st = IF(be[k])->cholesky_inverse_upper(be[k]->ctx, h, C, &bad);
        cr_assert_eq(st, GPTQ_ERR_NUMERIC, "%s: status %d", be[k]->iface->name, st);
        cr_assert_eq(bad, 101, "%s: bad_col %lld", be[k]->iface->name, (long long)bad);
        H[33 * C + 101] = 0.0f;
        H[70 * C + 70] = -2.0f;
        gptq_be_free(be[k], h);
    }
    free(H);
    close_both();
}

/* ------------------------------------------------------------------ */
/* quant_grid                                                          */
/* ------------------------------------------------------------------ */

Test(hip, quant_grid_vs_cpu)
{
    open_both();
    rng_seed(14);
    const int64_t R = 257, C = 300, G = 128, ngroups = 3;
    float *W = xmalloc((size_t)(R * C) * 4);
    fill_uniform(W, (size_t)(R * C));
    for (int64_t j = 0; j < C; j++) W[5 * C + j] = 0.0f;             /* an all-zero row */
    for (int64_t j = 0; j < C; j++) W[6 * C + j] = fabsf(W[6 * C + j]); /* no negatives */
    const int bits_list[] = {2, 3, 4, 8};
    float *s[2], *z[2];
    for (int k = 0; k < 2; k++) {
        s[k] = xmalloc((size_t)(ngroups * R) * 4);
        z[k] = xmalloc((size_t)(ngroups * R) * 4);
    }
    for (int bi = 0; bi < 4; bi++)
        for (int sym = 0; sym < 2; sym++)
            for (int mse = 0; mse < 2; mse++) {
                gptq_grid_params p = {bits_list[bi], sym, mse, 2.4f, 100, 0.8f};
                gptq_backend *be[2] = {g_hip, g_cpu};
                for (int k = 0; k < 2; k++) {
                    gptq_buf *w = dev_from(be[k], W, (size_t)(R * C) * 4);
                    gptq_buf *sb = dev_new(be[k], (size_t)(ngroups * R) * 4);
                    gptq_buf *zb = dev_new(be[k], (size_t)(ngroups * R) * 4);
                    for (int64_t g = 0; g < ngroups; g++) {
                        int64_t len = G < C - g * G ? G : C - g * G; /* last group: 44 */
                        ok(be[k], IF(be[k])->quant_grid(be[k]->ctx, w, R, C, g * G, len, g, sb, zb, &p),
                           "quant_grid");
                    }
                    dev_get(be[k], sb, s[k], (size_t)(ngroups * R) * 4);
                    dev_get(be[k], zb, z[k], (size_t)(ngroups * R) * 4);
                    gptq_be_free(be[k], w);
                    gptq_be_free(be[k], sb);
                    gptq_be_free(be[k], zb);
                }
                int64_t same = 0;
                for (int64_t i = 0; i < ngroups * R; i++)
                    same += s[0][i] == s[1][i] && z[0][i] == z[1][i];
                double share = (double)same / (double)(ngroups * R);
                if (!mse)
                    cr_assert_eq(same, ngroups * R,
                                 "bits %d sym %d: %lld of %lld grids differ from the CPU's",
                                 bits_list[bi], sym, (long long)(ngroups * R - same),
                                 (long long)(ngroups * R));
                else
                    cr_assert(share >= MIN_SAME_CODES, "bits %d sym %d mse: identical share %.5f",
                              bits_list[bi], sym, share);
            }
    for (int k = 0; k < 2; k++) {
        free(s[k]);
        free(z[k]);
    }
    free(W);
    close_both();
}

/* ------------------------------------------------------------------ */
/* gptq_block                                                          */
/* ------------------------------------------------------------------ */

typedef struct solve_out {
    uint8_t *codes;  /* (R, C) */
    float *scale;    /* (ngroups, R) */
    float *zero;     /* (ngroups, R) */
    float *W;        /* (R, C) after the solve */
    float *Err;      /* (R, B) of the last block */
    double *loss;    /* (R) */
} solve_out;

static void solve_out_free(solve_out *o)
{
    free(o->codes);
    free(o->scale);
    free(o->zero);
    free(o->W);
    free(o->Err);
    free(o->loss);
}

/* The solve of gptq.c driven op by op: blocks of B from j0 = 0 (all of them,
 * or only the first when first_only), the lazy GEMM after each. U may be
 * NULL (RTN). grid_given: scale/zero uploaded from S0/Z0. */
static void run_solve(gptq_backend *be, const float *W0, int64_t R, int64_t C, const float *U,
                      int64_t G, int64_t B, const int32_t *gidx, int64_t ngroups, int grid_given,
                      const float *S0, const float *Z0, const gptq_grid_params *gp,
                      int first_only, solve_out *o)
{
    const size_t wbytes = (size_t)(R * C) * 4, gbytes = (size_t)(ngroups * R) * 4;
    gptq_buf *w = dev_from(be, W0, wbytes);
    gptq_buf *u = U ? dev_from(be, U, (size_t)(C * C) * 4) : NULL;
    gptq_buf *gi = dev_from(be, gidx, (size_t)C * 4);
    gptq_buf *sb = dev_new(be, gbytes), *zb = dev_new(be, gbytes);
    if (grid_given) {
        dev_put(be, sb, S0, gbytes);
        dev_put(be, zb, Z0, gbytes);
    }
    gptq_buf *codes = dev_new(be, (size_t)(R * C));
    gptq_buf *err = dev_new(be, (size_t)(R * B) * 4);
    gptq_buf *loss = dev_new(be, (size_t)R * 8);
    /* poison the outputs: every element must be written */
    unsigned char *poison = xmalloc((size_t)(R * C) > (size_t)(R * B) * 4 ? (size_t)(R * C) : (size_t)(R * B) * 4);
    memset(poison, 0xEE, (size_t)(R * C) > (size_t)(R * B) * 4 ? (size_t)(R * C) : (size_t)(R * B) * 4);
    dev_put(be, codes, poison, (size_t)(R * C));
    dev_put(be, err, poison, (size_t)(R * B) * 4);
    free(poison);
    for (int64_t j0 = 0; j0 < C; j0 += B) {
        const int64_t nb = B < C - j0 ? B : C - j0;
        gptq_block_args a = {
            .W = w, .R = R, .C = C, .U = u, .j0 = j0, .nb = nb, .group_size = G,
            .grid_given = grid_given, .gidx = gi, .scale = sb, .zero = zb, .codes = codes,
            .Err = err, .loss = loss, .grid = *gp,
        };
        ok(be, IF(be)->gptq_block(be->ctx, &a), "gptq_block");
        if (first_only) break;
        if (u && j0 + nb < C)
            ok(be, IF(be)->gemm(be->ctx, 0, 0, R, C - j0 - nb, nb, -1.0f, err, 0, nb, u,
                                (size_t)(j0 * C + j0 + nb), C, 1.0f, w, (size_t)(j0 + nb), C),
               "gemm (lazy update)");
    }
    o->codes = xmalloc((size_t)(R * C));
    o->scale = xmalloc(gbytes);
    o->zero = xmalloc(gbytes);
    o->W = xmalloc(wbytes);
    o->Err = xmalloc((size_t)(R * B) * 4);
    o->loss = xmalloc((size_t)R * 8);
    dev_get(be, codes, o->codes, (size_t)(R * C));
    dev_get(be, sb, o->scale, gbytes);
    dev_get(be, zb, o->zero, gbytes);
    dev_get(be, w, o->W, wbytes);
    dev_get(be, err, o->Err, (size_t)(R * B) * 4);
    dev_get(be, loss, o->loss, (size_t)R * 8);
    gptq_be_free(be, w);
    gptq_be_free(be, u);
    gptq_be_free(be, gi);
    gptq_be_free(be, sb);
    gptq_be_free(be, zb);
    gptq_be_free(be, codes);
    gptq_be_free(be, err);
    gptq_be_free(be, loss);
}

/* U for the tests: the CPU backend's factor of a well-conditioned H. */
static float *make_u(int64_t C)
{
    float *H = xmalloc((size_t)(C * C) * 4);
    make_spd(H, C);
    gptq_buf *h = dev_from(g_cpu, H, (size_t)(C * C) * 4);
    int64_t bad;
    ok(g_cpu, IF(g_cpu)->cholesky_inverse_upper(g_cpu->ctx, h, C, &bad), "cholesky_inverse_upper");
    dev_get(g_cpu, h, H, (size_t)(C * C) * 4);
    gptq_be_free(g_cpu, h);
    return H;
}

typedef struct block_case {
    const char *name;
    int64_t R, C, G, B;
    int bits, sym, mse, rtn, static_groups;
} block_case;

static void block_case_run(const block_case *bc)
{
    const int64_t R = bc->R, C = bc->C, G = bc->G, B = bc->B;
    const int64_t ngroups = (C + G - 1) / G;
    float *W = xmalloc((size_t)(R * C) * 4);
    fill_uniform(W, (size_t)(R * C));
    for (int64_t j = 0; j < C; j++) W[3 * C + j] = 0.0f; /* an all-zero row */
    float *U = bc->rtn ? NULL : make_u(C);
    int32_t *gidx = xmalloc((size_t)C * 4);
    /* static groups: a permuted order (act-order), grids from the CPU */
    int32_t *perm = xmalloc((size_t)C * 4);
    for (int64_t j = 0; j < C; j++) perm[j] = (int32_t)j;
    if (bc->static_groups)
        for (int64_t j = C - 1; j > 0; j--) {
            int64_t k = (int64_t)((rng_uniform() + 1.0f) * 0.5f * (float)(j + 1)) % (j + 1);
            int32_t t = perm[j];
            perm[j] = perm[k];
            perm[k] = t;
        }
    for (int64_t j = 0; j < C; j++) gidx[j] = (int32_t)((bc->static_groups ? perm[j] : j) / G);
    float *S0 = NULL, *Z0 = NULL;
    gptq_grid_params gp = {bc->bits, bc->sym, bc->mse, 2.4f, 100, 0.8f};
    const int grid_given = bc->static_groups || bc->rtn;
    if (grid_given) {
        S0 = xmalloc((size_t)(ngroups * R) * 4);
        Z0 = xmalloc((size_t)(ngroups * R) * 4);
        gptq_buf *w = dev_from(g_cpu, W, (size_t)(R * C) * 4);
        gptq_buf *sb = dev_new(g_cpu, (size_t)(ngroups * R) * 4), *zb = dev_new(g_cpu, (size_t)(ngroups * R) * 4);
        for (int64_t g = 0; g < ngroups; g++) {
            int64_t len = G < C - g * G ? G : C - g * G;
            ok(g_cpu, IF(g_cpu)->quant_grid(g_cpu->ctx, w, R, C, g * G, len, g, sb, zb, &gp), "quant_grid");
        }
        dev_get(g_cpu, sb, S0, (size_t)(ngroups * R) * 4);
        dev_get(g_cpu, zb, Z0, (size_t)(ngroups * R) * 4);
        gptq_be_free(g_cpu, w);
        gptq_be_free(g_cpu, sb);
        gptq_be_free(g_cpu, zb);
    }
    /* W in quantization order */
    float *Wp = xmalloc((size_t)(R * C) * 4);
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < C; j++) Wp[r * C + j] = W[r * C + perm[j]];

    /* 1. the first block alone: identical bytes */
    solve_out h1, c1;
    run_solve(g_hip, Wp, R, C, U, G, B, gidx, ngroups, grid_given, S0, Z0, &gp, 1, &h1);
    run_solve(g_cpu, Wp, R, C, U, G, B, gidx, ngroups, grid_given, S0, Z0, &gp, 1, &c1);
    const int64_t nb = B < C ? B : C;
    for (int64_t r = 0; r < R; r++) {
        for (int64_t j = 0; j < nb; j++) {
            cr_assert_eq(h1.codes[r * C + j], c1.codes[r * C + j],
                         "%s: first block: code (%lld, %lld) %d vs CPU %d", bc->name, (long long)r,
                         (long long)j, h1.codes[r * C + j], c1.codes[r * C + j]);
            cr_assert(memcmp(&h1.Err[r * B + j], &c1.Err[r * B + j], 4) == 0,
                      "%s: first block: error (%lld, %lld) %.9g vs CPU %.9g", bc->name,
                      (long long)r, (long long)j, h1.Err[r * B + j], c1.Err[r * B + j]);
        }
        cr_assert(memcmp(&h1.W[r * C], &c1.W[r * C], (size_t)C * 4) == 0,
                  "%s: first block: row %lld of W differs", bc->name, (long long)r);
        if (!bc->mse)
            cr_assert(memcmp(&h1.loss[r], &c1.loss[r], 8) == 0,
                      "%s: first block: loss of row %lld %.17g vs CPU %.17g", bc->name,
                      (long long)r, h1.loss[r], c1.loss[r]);
    }
    if (!bc->mse) {
        cr_assert(memcmp(h1.scale, c1.scale, (size_t)(ngroups * R) * 4) == 0,
                  "%s: first block: scales differ", bc->name);
        cr_assert(memcmp(h1.zero, c1.zero, (size_t)(ngroups * R) * 4) == 0,
                  "%s: first block: zeros differ", bc->name);
    }
    solve_out_free(&h1);
    solve_out_free(&c1);

    /* 2. the whole solve */
    solve_out h, c;
    run_solve(g_hip, Wp, R, C, U, G, B, gidx, ngroups, grid_given, S0, Z0, &gp, 0, &h);
    run_solve(g_cpu, Wp, R, C, U, G, B, gidx, ngroups, grid_given, S0, Z0, &gp, 0, &c);
    int64_t same = 0, maxd = 0;
    for (int64_t i = 0; i < R * C; i++) {
        int64_t d = (int64_t)h.codes[i] - (int64_t)c.codes[i];
        if (d < 0) d = -d;
        same += d == 0;
        if (d > maxd) maxd = d;
    }
    double share = (double)same / (double)(R * C);
    double lh = 0.0, lc = 0.0, smax = 0.0;
    for (int64_t r = 0; r < R; r++) {
        lh += h.loss[r];
        lc += c.loss[r];
    }
    for (int64_t i = 0; i < ngroups * R; i++) {
        double d = fabs((double)h.scale[i] - (double)c.scale[i]) / fabs((double)c.scale[i]);
        if (!(d <= smax)) smax = d; /* NaN propagates */
    }
    double lrel = fabs(lh - lc) / (lc > 0.0 ? lc : 1.0);
    cr_log_info("%s: codes identical %.6f, max diff %lld, loss %.9g vs %.9g (rel %.3g), max "
                "scale rel diff %.3g",
                bc->name, share, (long long)maxd, lh, lc, lrel, smax);
    cr_assert(share >= MIN_SAME_CODES, "%s: identical codes %.5f < %.3f", bc->name, share,
              MIN_SAME_CODES);
    cr_assert(maxd <= 1, "%s: a code differs by %lld steps", bc->name, (long long)maxd);
    cr_assert(lrel < TOL_LOSS, "%s: loss %.9g vs CPU %.9g (rel %.3g)", bc->name, lh, lc, lrel);
    cr_assert(smax < TOL_SCALE, "%s: a scale differs by %.3g relative", bc->name, smax);
    solve_out_free(&h);
    solve_out_free(&c);
    free(W);
    free(Wp);
    free(U);
    free(gidx);
    free(perm);
    free(S0);
    free(Z0);
}

Test(hip, gptq_block_vs_cpu)
{
    open_both();
    rng_seed(15);
    const block_case cases[] = {
        {"4-bit g128 asym", 200, 384, 128, 128, 4, 0, 0, 0, 0},
        {"3-bit one group sym", 130, 300, 300, 128, 3, 1, 0, 0, 0},
        {"2-bit g32 asym", 97, 256, 32, 128, 2, 0, 0, 0, 0},
        {"4-bit g64 B32 (group over blocks)", 64, 256, 64, 32, 4, 0, 0, 0, 0},
        {"8-bit g128 mse", 66, 256, 128, 128, 8, 0, 1, 0, 0},
        {"4-bit g128 static groups act-order", 100, 384, 128, 128, 4, 1, 0, 0, 1},
        {"4-bit g128 RTN (U = I)", 90, 256, 128, 128, 4, 0, 0, 1, 0},
        {"4-bit g512 B512 (unstaged kernel)", 70, 1024, 512, 512, 4, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) block_case_run(&cases[i]);
    close_both();
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
    gptq_quant_config cfg;
    gptq_quant_config_default(&cfg);
    cfg.sym = 0;
    cfg.desc_act = 1;
    gptq_layer_result rh, rc;
    cr_assert_eq(gptq_quantize_layer(g_hip, W, R, C, H, &cfg, &rh), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(gptq_quantize_layer(g_cpu, W, R, C, H, &cfg, &rc), GPTQ_OK, "%s", gptq_last_error());
    int64_t same = 0;
    for (int64_t i = 0; i < R * C; i++) same += rh.codes[i] == rc.codes[i];
    double share = (double)same / (double)(R * C);
    double lrel = fabs(rh.loss - rc.loss) / rc.loss;
    cr_log_info("quantize_layer: codes identical %.6f, loss %.9g vs %.9g", share, rh.loss, rc.loss);
    cr_assert(share >= MIN_SAME_CODES, "identical codes %.5f", share);
    cr_assert(lrel < TOL_LOSS, "loss %.9g vs CPU %.9g", rh.loss, rc.loss);
    cr_assert(memcmp(rh.perm, rc.perm, (size_t)C * 4) == 0, "act-order permutations differ");
    gptq_layer_result_free(&rh);
    gptq_layer_result_free(&rc);
    free(W);
    free(H);
    close_both();
}

/* ------------------------------------------------------------------ */
/* Packed tensors: pack_codes, dequantize, matmul_q                    */
/* ------------------------------------------------------------------ */

/* A random packed tensor (act-order-like g_idx); codes (N, K) kept. */
static void random_packed(int bits, gptq_format fmt, int64_t N, int64_t K, int G, gptq_packed *p,
                          uint8_t **codes_out)
{
    gptq_layer_result r = {0};
    r.rows = N;
    r.cols = K;
    r.bits = bits;
    r.group_size = G;
    r.ngroups = (K + G - 1) / G;
    r.codes = xmalloc((size_t)(N * K));
    r.scales = xmalloc((size_t)(r.ngroups * N) * 4);
    r.zeros = xmalloc((size_t)(r.ngroups * N) * 4);
    r.g_idx = xmalloc((size_t)K * 4);
    const uint32_t levels = 1u << bits, zmin = fmt == GPTQ_FORMAT_V1 ? 1 : 0;
    /* u in [0, 1) */
#define U01() ((rng_uniform() + 1.0f) * 0.4995f)
    for (int64_t i = 0; i < N * K; i++) r.codes[i] = (uint8_t)(U01() * (float)levels);
    for (int64_t i = 0; i < r.ngroups * N; i++) {
        r.zeros[i] = (int32_t)zmin + (int32_t)(U01() * (float)(levels - zmin));
        r.scales[i] = 1e-3f + U01() * 0.04f;
    }
#undef U01
    for (int64_t k = 0; k < K; k++) r.g_idx[k] = (int32_t)((k * 7) % K / G);
    cr_assert_eq(gptq_pack(&r, fmt, p), GPTQ_OK, "%s", gptq_last_error());
    *codes_out = r.codes;
    r.codes = NULL;
    gptq_layer_result_free(&r);
}

Test(hip, packed_ops_vs_cpu)
{
    open_both();
    rng_seed(31);
    const int bits_list[4] = {2, 3, 4, 8};
    const int64_t N = 96, K = 224, M = 37; /* tiles of 16 and 32 do not divide M, K */
    const float edge[] = {70000.0f, -65520.0f, 65519.0f, 1.0f + 0x1p-11f, 3e-6f, -1e-7f,
                          0x1p-25f, 0x1.8p-25f, 0x1p-24f};
    float *X = xmalloc((size_t)(M * K) * 4), *bias = xmalloc((size_t)N * 4);
    float *Wc = xmalloc((size_t)(N * K) * 4), *Wg = xmalloc((size_t)(N * K) * 4);
    float *Yc = xmalloc((size_t)(M * N) * 4), *Yg = xmalloc((size_t)(M * N) * 4);
    fill_uniform(X, (size_t)(M * K));
    for (size_t i = 0; i < sizeof edge / sizeof *edge; i++) X[i * 101] = edge[i];
    fill_uniform(bias, (size_t)N);
    for (int bi = 0; bi < 4; bi++)
        for (int f = 1; f <= 2; f++) {
            const int b = bits_list[bi];
            const gptq_format fmt = (gptq_format)f;
            gptq_packed p;
            uint8_t *codes;
            random_packed(b, fmt, N, K, 32, &p, &codes);
            /* dequantize, matmul: the host reference's bytes */
            cr_assert_eq(gptq_dequantize(&p, fmt, Wc), GPTQ_OK, "%s", gptq_last_error());
            cr_assert_eq(gptq_dequantize_on(g_hip, &p, fmt, Wg), GPTQ_OK, "%s", gptq_last_error());
            cr_expect(memcmp(Wc, Wg, (size_t)(N * K) * 4) == 0, "bits %d v%d: dequantize", b, f);
            for (int wb = 0; wb < 2; wb++) {
                cr_assert_eq(gptq_matmul_ref(&p, fmt, X, M, wb ? bias : NULL, Yc), GPTQ_OK);
                cr_assert_eq(gptq_matmul_on(g_hip, &p, fmt, X, M, wb ? bias : NULL, Yg), GPTQ_OK,
                             "%s", gptq_last_error());
                int64_t diff = 0;
                /* bytes, except that a NaN is any NaN: inf - inf (X has
                 * values that round to +-inf in fp16) gives the default NaN
                 * of each processor, 0xffc00000 on x86, 0x7fffffff on GPUs */
                for (int64_t i = 0; i < M * N; i++)
                    diff += !(isnan(Yc[i]) && isnan(Yg[i])) && memcmp(&Yc[i], &Yg[i], 4) != 0;
                cr_expect_eq(diff, 0, "bits %d v%d bias %d: %lld of %lld outputs differ", b, f,
                             wb, (long long)diff, (long long)(M * N));
            }
            /* pack_codes: gptq_pack's words */
            const size_t nqw = (size_t)(K * b / 32 * N) * 4;
            gptq_buf *cb = dev_from(g_hip, codes, (size_t)(N * K)), *qb = dev_new(g_hip, nqw);
            ok(g_hip, IF(g_hip)->pack_codes(g_hip->ctx, cb, N, K, b, qb), "pack_codes");
            int32_t *qw = xmalloc(nqw);
            dev_get(g_hip, qb, qw, nqw);
            cr_expect(memcmp(qw, p.qweight, nqw) == 0, "bits %d: pack_codes", b);
            /* a code too wide: reported at the next sync, not packed silently */
            if (b < 8) {
                const uint8_t big = (uint8_t)(1u << b);
                cr_assert_eq(gptq_be_upload(g_hip, cb, 77, &big, 1), GPTQ_OK);
                ok(g_hip, IF(g_hip)->pack_codes(g_hip->ctx, cb, N, K, b, qb), "pack_codes (queue)");
                cr_expect_eq(IF(g_hip)->sync(g_hip->ctx), GPTQ_ERR_INVALID);
                cr_expect(strstr(IF(g_hip)->error(g_hip->ctx), "at element 77") != NULL, "%s",
                          IF(g_hip)->error(g_hip->ctx));
            }
            /* a g_idx outside the groups, past the host's check: reported too */
            gptq_qdev q;
            cr_assert_eq(gptq_qdev_upload(g_hip, &p, fmt, 1, &q), GPTQ_OK, "%s", gptq_last_error());
            const int32_t badg = (int32_t)p.ngroups + 3;
            cr_assert_eq(gptq_be_upload(g_hip, q.g_idx, 5 * 4, &badg, 4), GPTQ_OK);
            gptq_buf *wb = dev_new(g_hip, (size_t)(N * K) * 4);
            ok(g_hip, IF(g_hip)->dequantize(g_hip->ctx, &q.t, wb, 0), "dequantize (queue)");
            cr_expect_eq(IF(g_hip)->sync(g_hip->ctx), GPTQ_ERR_INVALID);
            cr_expect(strstr(IF(g_hip)->error(g_hip->ctx), "g_idx[5]") != NULL, "%s",
                      IF(g_hip)->error(g_hip->ctx));
            gptq_be_free(g_hip, wb);
            gptq_qdev_free(g_hip, &q);
            gptq_be_free(g_hip, cb);
            gptq_be_free(g_hip, qb);
            free(qw);
            free(codes);
            gptq_packed_free(&p);
        }
    free(X);
    free(bias);
    free(Wc);
    free(Wg);
    free(Yc);
    free(Yg);
    close_both();
}

/* gather, f32 and u8, with row and column indices, against the CPU */
Test(hip, gather_vs_cpu)
{
    open_both();
    rng_seed(41);
    const int64_t Rs = 96, Cs = 160, R = 80, C = 150;
    /* outputs up to (Rs, Cs): the modes with one index array keep the other extent */
    float *src = xmalloc((size_t)(Rs * Cs) * 4), *dc = xmalloc((size_t)(Rs * Cs) * 4),
          *dg = xmalloc((size_t)(Rs * Cs) * 4);
    fill_uniform(src, (size_t)(Rs * Cs));
    int32_t ri[80], ci[150];
    for (int64_t i = 0; i < R; i++) ri[i] = (int32_t)((i * 17 + 5) % Rs);
    for (int64_t j = 0; j < C; j++) ci[j] = (int32_t)((j * 31 + 3) % Cs);
    for (int es = 1; es <= 4; es += 3)
        for (int mode = 0; mode < 3; mode++) { /* rows+cols, cols only, rows only */
            const int64_t r = mode == 1 ? Rs : R, c = mode == 2 ? Cs : C;
            gptq_backend *bes[2] = {g_cpu, g_hip};
            float *outs[2] = {dc, dg};
            for (int k = 0; k < 2; k++) {
                gptq_backend *be = bes[k];
                gptq_buf *s = dev_from(be, src, (size_t)(Rs * Cs) * 4), *d = dev_new(be, (size_t)(r * c) * 4);
                gptq_buf *rb = mode == 1 ? NULL : dev_from(be, ri, sizeof ri);
                gptq_buf *cb = mode == 2 ? NULL : dev_from(be, ci, sizeof ci);
                ok(be, IF(be)->gather(be->ctx, d, s, r, c, Rs, es == 4 ? Cs : Cs * 4, rb, cb, es),
                   "gather");
                dev_get(be, d, outs[k], (size_t)(r * c) * (size_t)es);
                gptq_be_free(be, s);
                gptq_be_free(be, d);
                gptq_be_free(be, rb);
                gptq_be_free(be, cb);
            }
            cr_expect(memcmp(dc, dg, (size_t)(r * c) * (size_t)es) == 0,
                      "gather esize %d mode %d differs", es, mode);
            /* and it is the gather: spot checks against src */
            if (es == 4 && mode == 0)
                for (int64_t i = 0; i < R; i += 7)
                    for (int64_t j = 0; j < C; j += 11)
                        cr_assert(dg[i * C + j] == src[ri[i] * Cs + ci[j]]);
        }
    /* an index outside the source: an error, reported */
    int32_t bad[150];
    memcpy(bad, ci, sizeof bad);
    bad[4] = (int32_t)Cs;
    gptq_buf *s = dev_from(g_hip, src, (size_t)(Rs * Cs) * 4), *d = dev_new(g_hip, (size_t)(R * C) * 4);
    gptq_buf *cb = dev_from(g_hip, bad, sizeof bad);
    ok(g_hip, IF(g_hip)->gather(g_hip->ctx, d, s, R, C, Rs, Cs, NULL, cb, 4), "gather (queue)");
    cr_expect_eq(IF(g_hip)->sync(g_hip->ctx), GPTQ_ERR_INVALID);
    cr_expect(strstr(IF(g_hip)->error(g_hip->ctx), "gather: index 160") != NULL, "%s",
              IF(g_hip)->error(g_hip->ctx));
    gptq_be_free(g_hip, s);
    gptq_be_free(g_hip, d);
    gptq_be_free(g_hip, cb);
    free(src);
    free(dc);
    free(dg);
    close_both();
}

/* to_f32 over every fp16 and bf16 pattern: the CPU's bits (NaN as NaN) */
Test(hip, to_f32_vs_cpu)
{
    open_both();
    enum { N = 65536 };
    uint16_t *h = xmalloc(N * 2);
    float *fc = xmalloc(N * 4), *fg = xmalloc(N * 4);
    for (int i = 0; i < N; i++) h[i] = (uint16_t)i;
    for (int bf = 0; bf < 2; bf++) {
        gptq_backend *bes[2] = {g_cpu, g_hip};
        float *outs[2] = {fc, fg};
        for (int k = 0; k < 2; k++) {
            gptq_buf *s = dev_from(bes[k], h, N * 2), *d = dev_new(bes[k], (N + 1) * 4);
            ok(bes[k], IF(bes[k])->to_f32(bes[k]->ctx, d, 1, s, N, bf ? GPTQ_BF16 : GPTQ_F16),
               "to_f32");
            cr_assert_eq(gptq_be_download(bes[k], d, 4, outs[k], N * 4), GPTQ_OK);
            gptq_be_free(bes[k], s);
            gptq_be_free(bes[k], d);
        }
        int bad = 0;
        for (int i = 0; i < N; i++)
            bad += !(isnan(fc[i]) && isnan(fg[i])) && memcmp(&fc[i], &fg[i], 4) != 0;
        cr_expect_eq(bad, 0, "%s: %d of 65536 patterns differ", bf ? "bf16" : "f16", bad);
    }
    free(h);
    free(fc);
    free(fg);
    close_both();
}

/* The pipeline's layer solve with W on the GPU against the entry with W on
 * the host, on the same GPU (one solve: the same bits, output error
 * included): variants asym, sym, static groups, a dead column, act-order,
 * act-order with static groups, and weights ~5e-5 whose scales are fp16
 * subnormals (both then report the error of the fp16-scale weight). */
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

/* ------------------------------------------------------------------ */
/* Forward ops                                                         */
/* ------------------------------------------------------------------ */

/* Tolerances of the forward ops (HIP vs CPU):
 *   embedding, relu, add, bias_add, rope: identical (the same single f32
 *     operations, no contraction);
 *   rmsnorm, layernorm, silu_mul: rel. Frobenius < 1e-6 (double statistics
 *     summed in another order can move r by an ulp; expf of two libms may
 *     differ by an ulp or two);
 *   attention: rel. Frobenius < 1e-5 (dot products over d = 64 and softmax
 *     sums in other orders);
 *   cross_entropy: relative 1e-10 per row (double arithmetic, sums in
 *     another order, exp/log of two libms). */
#define TOL_FW_NORM 1e-6
#define TOL_FW_ATTN 1e-5
#define TOL_FW_CE 1e-10

/* Run `fn` on both backends with n_in float inputs (host arrays) and one
 * float output of n_out elements, return the two outputs. */
typedef int (*fw_fn)(gptq_backend *be, gptq_buf **in, gptq_buf *out);

static void fw_both(fw_fn fn, int n_in, const float *const *in, const size_t *in_n, size_t n_out,
                    const float *out_init, float *res_h, float *res_c)
{
    gptq_backend *be[2] = {g_hip, g_cpu};
    float *res[2] = {res_h, res_c};
    for (int k = 0; k < 2; k++) {
        gptq_buf *bi[8];
        for (int i = 0; i < n_in; i++) bi[i] = dev_from(be[k], in[i], in_n[i] * 4);
        gptq_buf *bo = dev_from(be[k], out_init, n_out * 4);
        ok(be[k], fn(be[k], bi, bo), "forward op");
        dev_get(be[k], bo, res[k], n_out * 4);
        for (int i = 0; i < n_in; i++) gptq_be_free(be[k], bi[i]);
        gptq_be_free(be[k], bo);
    }
}

enum { FT = 37, FD = 200, FV = 53 };

static int f_embed(gptq_backend *be, gptq_buf **in, gptq_buf *out)
{
    return IF(be)->embedding(be->ctx, in[0], 1, FT, in[1], 0, FV, FD, out, 0, 1);
}
static int f_rms(gptq_backend *be, gptq_buf **in, gptq_buf *out)
{
    return IF(be)->rmsnorm(be->ctx, in[0], 0, in[1], 0, FT, FD, 1e-5f, out, 0);
}
static int f_ln(gptq_backend *be, gptq_buf **in, gptq_buf *out)
{
    return IF(be)->layernorm(be->ctx, in[0], 0, in[1], 0, in[2], 0, FT, FD, 1e-5f, out, 0);
}
static int f_ln_plain(gptq_backend *be, gptq_buf **in, gptq_buf *out)
{
    return IF(be)->layernorm(be->ctx, in[0], 0, NULL, 0, NULL, 0, FT, FD, 1e-5f, out, 0);
}
static int f_silu(gptq_backend *be, gptq_buf **in, gptq_buf *out)
{
    return IF(be)->silu_mul(be->ctx, in[0], 0, in[1], 0, FT * FD, out, 0);
}
static int f_add(gptq_backend *be, gptq_buf **in, gptq_buf *out)
{
    return IF(be)->add(be->ctx, in[0], 0, in[1], 0, FT * FD, out, 0);
}
static int f_relu(gptq_backend *be, gptq_buf **in, gptq_buf *out)
{
    (void)in;
    return IF(be)->relu(be->ctx, out, 3, FT * FD - 3);
}
static int f_bias(gptq_backend *be, gptq_buf **in, gptq_buf *out)
{
    return IF(be)->bias_add(be->ctx, out, 0, in[0], 0, FT, FD);
}

static void expect_same(const float *a, const float *b, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        cr_assert(memcmp(&a[i], &b[i], 4) == 0, "%s: element %zu: %.9g vs CPU %.9g", what, i,
                  a[i], b[i]);
}

Test(hip, forward_elementwise_and_norms_vs_cpu)
{
    open_both();
    rng_seed(21);
    const size_t n = (size_t)FT * FD;
    float *X = xmalloc(n * 4), *Y = xmalloc(n * 4), *w = xmalloc(FD * 4), *b = xmalloc(FD * 4);
    float *E = xmalloc((size_t)FV * FD * 4), *rh = xmalloc(n * 4), *rc = xmalloc(n * 4);
    fill_uniform(X, n);
    fill_uniform(Y, n);
    fill_uniform(w, FD);
    fill_uniform(b, FD);
    fill_uniform(E, (size_t)FV * FD);
    for (size_t i = 0; i < n; i++) X[i] *= 8.0f; /* silu over a wide range */
    float ids_f[FT + 1];                         /* i32 bit patterns, from offset 1 */
    for (int t = 0; t <= FT; t++) {
        int32_t id = (int32_t)((t * 7 + 3) % FV);
        memcpy(&ids_f[t], &id, 4);
    }

    const float *in1[] = {ids_f, E};
    const size_t n1[] = {FT + 1, (size_t)FV * FD};
    fw_both(f_embed, 2, in1, n1, n, Y, rh, rc);
    expect_same(rh, rc, n, "embedding (accumulate)");

    const float *in2[] = {X, w, b};
    const size_t n2[] = {n, FD, FD};
    fw_both(f_rms, 2, in2, n2, n, Y, rh, rc);
    cr_assert(rel_frob(rh, rc, n) < TOL_FW_NORM, "rmsnorm: %.3g", rel_frob(rh, rc, n));
    fw_both(f_ln, 3, in2, n2, n, Y, rh, rc);
    cr_assert(rel_frob(rh, rc, n) < TOL_FW_NORM, "layernorm: %.3g", rel_frob(rh, rc, n));
    fw_both(f_ln_plain, 1, in2, n2, n, Y, rh, rc);
    cr_assert(rel_frob(rh, rc, n) < TOL_FW_NORM, "layernorm (no w, b): %.3g", rel_frob(rh, rc, n));

    const float *in3[] = {X, Y};
    const size_t n3[] = {n, n};
    fw_both(f_silu, 2, in3, n3, n, Y, rh, rc);
    cr_assert(rel_frob(rh, rc, n) < TOL_FW_NORM, "silu_mul: %.3g", rel_frob(rh, rc, n));
    fw_both(f_add, 2, in3, n3, n, Y, rh, rc);
    expect_same(rh, rc, n, "add");
    fw_both(f_relu, 0, NULL, NULL, n, X, rh, rc);
    expect_same(rh, rc, n, "relu");
    const float *in4[] = {b};
    const size_t n4[] = {FD};
    fw_both(f_bias, 1, in4, n4, n, X, rh, rc);
    expect_same(rh, rc, n, "bias_add");

    /* a bad id is reported by the call */
    int32_t bad[FT];
    for (int t = 0; t < FT; t++) bad[t] = t == 20 ? FV : 0;
    gptq_buf *bi = dev_from(g_hip, bad, sizeof bad), *be_ = dev_from(g_hip, E, (size_t)FV * FD * 4);
    gptq_buf *bo = dev_new(g_hip, n * 4);
    cr_assert_eq(IF(g_hip)->embedding(g_hip->ctx, bi, 0, FT, be_, 0, FV, FD, bo, 0, 0),
                 GPTQ_ERR_INVALID);
    cr_assert(strstr(IF(g_hip)->error(g_hip->ctx), "row 20"), "%s", IF(g_hip)->error(g_hip->ctx));
    gptq_be_free(g_hip, bi);
    gptq_be_free(g_hip, be_);
    gptq_be_free(g_hip, bo);
    free(X);
    free(Y);
    free(w);
    free(b);
    free(E);
    free(rh);
    free(rc);
    close_both();
}

enum { AN = 2, AS = 75, AH = 4, AHK = 2, AD = 64, AP = 80 };

static int f_rope(gptq_backend *be, gptq_buf **in, gptq_buf *out)
{
    return IF(be)->rope(be->ctx, out, 0, AN * AS, AH, AD, in[0], 0, in[1], AP);
}
static void attn_case(int64_t nseq, int64_t S, int64_t H, int64_t Hk, int64_t d, int naive)
{
    const size_t nq = (size_t)(nseq * S * H * d), nk = (size_t)(nseq * S * Hk * d);
    float *Q = xmalloc(nq * 4), *K = xmalloc(nk * 4), *V = xmalloc(nk * 4);
    float *out[2] = {xmalloc(nq * 4), xmalloc(nq * 4)}, *poison = xmalloc(nq * 4);
    fill_uniform(Q, nq);
    fill_uniform(K, nk);
    fill_uniform(V, nk);
    for (size_t i = 0; i < nq; i++) {
        Q[i] *= 3.0f; /* peaked softmax rows too */
        poison[i] = NAN;
    }
    if (naive) setenv("GPTQ_HIP_NAIVE_ATTENTION", "1", 1);
    gptq_backend *be[2] = {g_hip, g_cpu};
    for (int k = 0; k < 2; k++) {
        gptq_buf *q = dev_from(be[k], Q, nq * 4), *kk = dev_from(be[k], K, nk * 4),
                 *v = dev_from(be[k], V, nk * 4), *o = dev_from(be[k], poison, nq * 4);
        ok(be[k], IF(be[k])->attention(be[k]->ctx, q, 0, kk, 0, v, 0, nseq, S, H, Hk, d,
                                       1.0f / sqrtf((float)d), o, 0),
           "attention");
        dev_get(be[k], o, out[k], nq * 4);
        gptq_be_free(be[k], q);
        gptq_be_free(be[k], kk);
        gptq_be_free(be[k], v);
        gptq_be_free(be[k], o);
    }
    unsetenv("GPTQ_HIP_NAIVE_ATTENTION");
    double e = rel_frob(out[0], out[1], nq);
    cr_assert(e < TOL_FW_ATTN, "attention nseq %lld S %lld H %lld Hk %lld d %lld%s: rel. error %.3g",
              (long long)nseq, (long long)S, (long long)H, (long long)Hk, (long long)d,
              naive ? " (row kernel)" : "", e);
    free(Q);
    free(K);
    free(V);
    free(out[0]);
    free(out[1]);
    free(poison);
}

Test(hip, forward_rope_attention_cross_entropy_vs_cpu)
{
    open_both();
    rng_seed(22);
    const size_t nq = (size_t)AN * AS * AH * AD, nk = (size_t)AN * AS * AHK * AD;
    float *Q = xmalloc(nq * 4), *K = xmalloc(nk * 4), *V = xmalloc(nk * 4);
    float *rh = xmalloc(nq * 4), *rc = xmalloc(nq * 4), *cs = xmalloc((size_t)AP * AD * 4);
    fill_uniform(Q, nq);
    fill_uniform(K, nk);
    fill_uniform(V, nk);
    for (int p = 0; p < AP; p++)
        for (int i = 0; i < AD / 2; i++) {
            double ang = p * pow(10000.0, -2.0 * i / AD);
            cs[p * AD + i] = (float)cos(ang);
            cs[p * AD + AD / 2 + i] = (float)sin(ang);
        }
    float pos_f[AN * AS];
    for (int t = 0; t < AN * AS; t++) {
        int32_t p = (int32_t)(t % AS + 3);
        memcpy(&pos_f[t], &p, 4);
    }
    const float *in1[] = {pos_f, cs};
    const size_t n1[] = {AN * AS, (size_t)AP * AD};
    fw_both(f_rope, 2, in1, n1, nq, Q, rh, rc);
    expect_same(rh, rc, nq, "rope");

    /* attention: both HIP kernels (tiled for d 64/128, row per block for
     * any d or when forced), GQA, a partial last query tile (S = 75) */
    attn_case(AN, AS, AH, AHK, AD, 0);
    attn_case(AN, AS, AH, AHK, AD, 1);
    attn_case(1, 100, 2, 1, 128, 0);
    attn_case(3, 33, 3, 3, 32, 0);

    /* cross-entropy: logits (T, V), some targets negative (ignored) */
    enum { CT = 29, CV = 1000 };
    float *Lg = xmalloc((size_t)CT * CV * 4);
    fill_uniform(Lg, (size_t)CT * CV);
    for (size_t i = 0; i < (size_t)CT * CV; i++) Lg[i] *= 10.0f;
    int32_t tg[CT];
    for (int t = 0; t < CT; t++) tg[t] = t % 5 == 0 ? -100 : (t * 37) % CV;
    double nh[CT], nc[CT];
    gptq_backend *be[2] = {g_hip, g_cpu};
    double *res[2] = {nh, nc};
    for (int k = 0; k < 2; k++) {
        gptq_buf *l = dev_from(be[k], Lg, (size_t)CT * CV * 4), *t = dev_from(be[k], tg, sizeof tg);
        gptq_buf *o = dev_new(be[k], sizeof nh);
        ok(be[k], IF(be[k])->cross_entropy(be[k]->ctx, l, 0, t, 0, CT, CV, o, 0), "cross_entropy");
        dev_get(be[k], o, res[k], sizeof nh);
        gptq_be_free(be[k], l);
        gptq_be_free(be[k], t);
        gptq_be_free(be[k], o);
    }
    for (int t = 0; t < CT; t++) {
        if (tg[t] < 0) {
            cr_assert_eq(nh[t], 0.0, "row %d: ignored target gives %g", t, nh[t]);
            continue;
        }
        cr_assert(fabs(nh[t] - nc[t]) <= TOL_FW_CE * fabs(nc[t]), "cross_entropy row %d: %.17g vs %.17g",
                  t, nh[t], nc[t]);
    }
    free(Lg);
    free(Q);
    free(K);
    free(V);
    free(rh);
    free(rc);
    free(cs);
    close_both();
}
