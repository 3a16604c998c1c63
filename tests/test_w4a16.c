/*
 * test_w4a16.c — the CPU backend's fast A16 matmul (matmul_q_fast,
 * backends/cpu/cpu_w4a16.c) diffed against the reference gptq_matmul_ref,
 * element by element, on every layout we write and read: 2, 3, 4 and 8 bits;
 * v1 and v2 zeros (a v2 zero of 0 included), sym and asym; groups of 16,
 * 32, 64, 128 and -1; g_idx = k / G and act-order; M in {1, 3, 17, 64};
 * in/out features that are not multiples of any tile width or of 32; K
 * long enough for decode's slabs (several slabs of 256 k, a short last
 * one) and N wide enough for several 1024-column units; each
 * code path the CPU runs (GPTQ_CPU_ISA=generic, avx2, avx512 in turn; the
 * test names the ones it ran and the ones this CPU cannot run); and the
 * same through the CLI (`gptq matmul --fast` against `gptq matmul`).
 *
 * The tolerance, argued. Both sides compute y = sum_k t_k (+ bh) with
 * t_k = xh_k * w_k, xh_k an fp16 value and w_k = s * (q_k - z) exact in f32.
 * In the standard model fl(a op b) = (a op b)(1 + d), |d| <= u = 2^-24 (no
 * underflow: every nonzero |t_k| >= 2^-24 * 2^-24 * 1 is far above 2^-126), a
 * computed sum of terms each of which went through at most n roundings
 * satisfies |fl(y) - y| <= gamma(n) * (sum_k |t_k| + |bh|), gamma(n) = n u /
 * (1 - n u) (Higham, Accuracy and Stability, Lemma 3.1 / eq. 3.4). Counting
 * the roundings a term sees (an addition into an exact 0 is exact):
 *   reference: its product (1), the K - 1 later sums at most, the bias (1):
 *              n <= K + 1;
 *   fast decode (M = 1), a block of 32 k sharing a group (products exact:
 *              an fp16 times an integer below 2^9 needs at most 20 bits): at
 *              most 31 sums in its chain (or 15 and 1 combining two chains),
 *              2 for s * sum + y (1 with FMA): <= 33;
 *   fast decode, any other block (nv <= 32 terms, each (q - z) times its
 *              exact scale): its product and its own sum (1 with FMA; an add
 *              into 0 is exact) and the later ones of the block: <= nv <= 32,
 *              and 1 into y: <= 33;
 *              then the later block sums of its slab (a slab: 8 blocks, or
 *              all of them) and, with several slabs, the later slab sums
 *              (P[0] + P[1] + ... in order): with B blocks in nslab slabs at
 *              most 33 + (B/nslab - 1) + (nslab - 1) <= 33 + B - 1 more, and
 *              the bias: n <= 33 + ceil(K / 32) <= K + 2 once K >= 32; for
 *              K < 32 (one short block into a y of 0, exact) n <= K + 1;
 *   fast prefill (M > 1): w = s (q - z) is exact (11 bits times 9); each
 *              chunk of c <= 128 k is one chain of x * w products (FMA: one
 *              rounding each, the first into 0; without FMA the product and
 *              the sum, the first sum exact): <= c; its sum into y (1, the
 *              first exact) and the later chunks' sums (ceil(K / 128) - 1)
 *              and the bias: n <= c + ceil(K / 128) + 1 <= K + 2 (K >= 1);
 * So both lie within gamma(K + 2) S of the exact sum, S = sum_k |t_k| + |bh|
 * (computed here in double, exactly: t_k has at most 31 significant bits),
 * and
 *        |y_fast - y_ref| <= 2 gamma(K + 2) S.
 * The bound is the f32 accumulation error of a K-term dot product, no fudge
 * factor; it still catches real faults: a zero point off by one moves an
 * output by |s| sum_k |xh_k| over the group, far above it (a test below
 * checks that the bound rejects exactly that fault).
 */
#include "cli_harness.h" /* first: it sets _GNU_SOURCE */

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "format/format.h"
#include "internal.h"

static const char *const k_isas[] = {"generic", "avx2", "avx512"};
enum { NISA = 3 };

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 16);
}
static float urand(void) { return (float)(rnd() % 2000001u) / 1e6f - 1.0f; } /* [-1, 1] */

/* zero-point modes: v1 with sym zeros 2^(b-1); v1 with asym zeros in [1,
 * maxq]; v2 with asym zeros in [0, maxq] (0 at every 7th) */
enum { Z_V1_SYM, Z_V1_ASYM, Z_V2_ASYM, NZ };
static const char *const k_zname[] = {"v1 sym", "v1 asym", "v2 asym"};

/* A random packed layer: codes uniform, scales in [2^-10, 2^-6), g_idx k / G
 * or act-order (position of k in a random order / G); G = -1: one group. */
static gptq_format make_layer(int b, int64_t N, int64_t K, int G, int act, int zmode,
                              gptq_packed *p)
{
    const int g = G < 0 ? (int)K : G;
    const int64_t ng = (K + g - 1) / g;
    const uint32_t maxq = (1u << b) - 1u;
    gptq_layer_result r;
    memset(&r, 0, sizeof r);
    r.rows = N;
    r.cols = K;
    r.bits = b;
    r.group_size = g;
    r.ngroups = ng;
    r.codes = malloc((size_t)(N * K));
    r.scales = malloc((size_t)(ng * N) * sizeof(float));
    r.zeros = malloc((size_t)(ng * N) * sizeof(int32_t));
    r.g_idx = malloc((size_t)K * sizeof(int32_t));
    int32_t *perm = malloc((size_t)K * sizeof(int32_t));
    cr_assert(r.codes && r.scales && r.zeros && r.g_idx && perm);
    for (int64_t i = 0; i < N * K; i++) r.codes[i] = (uint8_t)(rnd() & maxq);
    for (int64_t i = 0; i < ng * N; i++) {
        r.scales[i] = ldexpf(1.0f + (float)(rnd() % 1024) / 1024.0f, -10 + (int)(rnd() % 4));
        if (zmode == Z_V1_SYM) r.zeros[i] = 1 << (b - 1);
        else if (zmode == Z_V1_ASYM) r.zeros[i] = 1 + (int32_t)(rnd() % maxq);
        else r.zeros[i] = i % 7 == 0 ? 0 : (int32_t)(rnd() % (maxq + 1));
    }
    for (int64_t k = 0; k < K; k++) perm[k] = (int32_t)k;
    for (int64_t k = K - 1; act && k > 0; k--) { /* Fisher-Yates */
        const int64_t j = rnd() % (uint32_t)(k + 1);
        const int32_t t = perm[k];
        perm[k] = perm[j];
        perm[j] = t;
    }
    for (int64_t i = 0; i < K; i++) r.g_idx[perm[i]] = (int32_t)(i / g);
    const gptq_format fmt = zmode == Z_V2_ASYM ? GPTQ_FORMAT_V2 : GPTQ_FORMAT_V1;
    cr_assert_eq(gptq_pack(&r, fmt, p), GPTQ_OK, "%s", gptq_last_error());
    free(perm);
    free(r.codes);
    free(r.scales);
    free(r.zeros);
    free(r.g_idx);
    return fmt;
}

/* S[m][n] = sum_k |xh w| + |bh| in double (exact: each product fits 53 bits). */
static double *abs_sums(const gptq_packed *p, gptq_format fmt, const float *X, int64_t M,
                        const float *bias)
{
    const int64_t K = p->in_features, N = p->out_features;
    float *W = malloc((size_t)(N * K) * sizeof(float));
    double *S = malloc((size_t)(M * N) * sizeof(double));
    cr_assert(W && S);
    cr_assert_eq(gptq_dequantize(p, fmt, W), GPTQ_OK);
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = bias ? fabs((double)gptq_f16_to_f32(gptq_f32_to_f16(bias[n]))) : 0.0;
            for (int64_t k = 0; k < K; k++)
                s += fabs((double)gptq_f16_to_f32(gptq_f32_to_f16(X[m * K + k])) *
                          (double)W[n * K + k]);
            S[m * N + n] = s;
        }
    free(W);
    return S;
}

static double gamma_n(int64_t n)
{
    const double u = 0x1p-24;
    return (double)n * u / (1.0 - (double)n * u);
}

/* Every output within 2 gamma(K + 2) S of the reference; returns the
 * largest |fast - ref| / bound seen (for the report). */
static double check_close(const float *Yf, const float *Yr, const double *S, int64_t M,
                          int64_t N, int64_t K, const char *what)
{
    const double g2 = 2.0 * gamma_n(K + 2);
    double worst = 0.0;
    for (int64_t i = 0; i < M * N; i++) {
        cr_assert(isfinite(Yf[i]), "%s: Y[%lld][%lld] = %g is not finite", what,
                  (long long)(i / N), (long long)(i % N), (double)Yf[i]);
        const double d = fabs((double)Yf[i] - (double)Yr[i]), bound = g2 * S[i];
        cr_assert(d <= bound, "%s: Y[%lld][%lld] = %.9g, reference %.9g: |diff| %.3g > "
                  "2 gamma(K+2) S = %.3g", what, (long long)(i / N), (long long)(i % N),
                  (double)Yf[i], (double)Yr[i], d, bound);
        if (bound > 0 && d / bound > worst) worst = d / bound;
    }
    return worst;
}

/* The fast matmul with GPTQ_CPU_ISA=isa: GPTQ_OK, or GPTQ_ERR_UNSUPPORTED
 * when this CPU cannot run it (then *ran stays 0). */
static int run_fast(gptq_backend *be, const char *isa, const gptq_packed *p, gptq_format fmt,
                    const float *X, int64_t M, const float *bias, float *Y)
{
    setenv("GPTQ_CPU_ISA", isa, 1);
    const char *impl = NULL;
    const int st = gptq_matmul_fast_on(be, p, fmt, X, M, bias, Y, &impl);
    unsetenv("GPTQ_CPU_ISA");
    if (st == GPTQ_ERR_UNSUPPORTED) {
        cr_assert(strstr(gptq_last_error(), "cannot run it"), "%s", gptq_last_error());
        return st;
    }
    cr_assert_eq(st, GPTQ_OK, "GPTQ_CPU_ISA=%s: %s", isa, gptq_last_error());
    cr_assert(impl && !strcmp(impl, isa), "GPTQ_CPU_ISA=%s ran %s", isa, impl ? impl : "(null)");
    return st;
}

/* One shape over every zero mode, group, act-order and M of Ms (nm of
 * them), on every ISA. */
static void sweep_m(int b, int64_t K, int64_t N, const int64_t *Ms, size_t nm)
{
    static const int groups[] = {16, 32, 64, 128, -1};
    gptq_backend *be;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK);
    int ran[NISA] = {0}, cases = 0;
    double worst = 0.0;
    for (int zm = 0; zm < NZ; zm++)
        for (size_t gi = 0; gi < sizeof groups / sizeof *groups; gi++)
            for (int act = 0; act < 2; act++) {
                if (groups[gi] > K) continue;
                gptq_packed p;
                const gptq_format fmt = make_layer(b, N, K, groups[gi], act, zm, &p);
                for (size_t mi = 0; mi < nm; mi++) {
                    const int64_t M = Ms[mi];
                    float *X = malloc((size_t)(M * K) * sizeof(float));
                    float *bias = malloc((size_t)N * sizeof(float));
                    float *Yr = malloc((size_t)(M * N) * sizeof(float));
                    float *Yf = malloc((size_t)(M * N) * sizeof(float));
                    cr_assert(X && bias && Yr && Yf);
                    for (int64_t i = 0; i < M * K; i++) X[i] = urand() * 4.0f;
                    for (int64_t n = 0; n < N; n++) bias[n] = urand();
                    const float *bs = mi % 2 ? bias : NULL; /* with and without a bias */
                    cr_assert_eq(gptq_matmul_ref(&p, fmt, X, M, bs, Yr), GPTQ_OK);
                    double *S = abs_sums(&p, fmt, X, M, bs);
                    for (int i = 0; i < NISA; i++) {
                        memset(Yf, 0xff, (size_t)(M * N) * sizeof(float)); /* NaN canaries */
                        if (run_fast(be, k_isas[i], &p, fmt, X, M, bs, Yf)) continue;
                        char what[160];
                        snprintf(what, sizeof what, "%d-bit %s K=%lld N=%lld G=%d%s M=%lld%s %s",
                                 b, k_zname[zm], (long long)K, (long long)N, groups[gi],
                                 act ? " act-order" : "", (long long)M, bs ? " bias" : "",
                                 k_isas[i]);
                        const double w = check_close(Yf, Yr, S, M, N, K, what);
                        if (w > worst) worst = w;
                        ran[i]++;
                    }
                    cases++;
                    free(S);
                    free(X);
                    free(bias);
                    free(Yr);
                    free(Yf);
                }
                gptq_packed_free(&p);
            }
    cr_assert(ran[0] == cases, "the generic path must run everywhere");
    fprintf(stderr, "w4a16 %d-bit K=%lld N=%lld: %d cases; ran:", b, (long long)K, (long long)N,
            cases);
    for (int i = 0; i < NISA; i++)
        if (ran[i]) fprintf(stderr, " %s", k_isas[i]);
    fprintf(stderr, "; not on this CPU:");
    int missing = 0;
    for (int i = 0; i < NISA; i++)
        if (!ran[i]) missing += fprintf(stderr, " %s", k_isas[i]) > 0;
    if (!missing) fprintf(stderr, " none");
    fprintf(stderr, "; largest |fast - ref| = %.3f of the bound\n", worst);
    gptq_backend_close(be);
}

static void sweep(int b, int64_t K, int64_t N)
{
    static const int64_t Ms[] = {1, 3, 17, 64};
    sweep_m(b, K, N, Ms, sizeof Ms / sizeof *Ms);
}

/* in/out features off every tile width (8, 16, 32 columns) and off 32 in K
 * (a short last block) where the bit width allows it */
Test(w4a16, bits4_odd) { sweep(4, 200, 40); }
Test(w4a16, bits4_wide) { sweep(4, 256, 264); }
Test(w4a16, bits8_odd) { sweep(8, 196, 36); }
Test(w4a16, bits2_odd) { sweep(2, 208, 48); }
Test(w4a16, bits3) { sweep(3, 224, 96); } /* 3 bits: K, N multiples of 32 */
Test(w4a16, tiny_k) { sweep(4, 8, 8); }    /* one short block, only tail columns on AVX */

/* Decode's slabs and units: K of 3 slabs (the last one short, with a short
 * last block), N of 2 units of 1024 columns plus tail columns; groups of 16
 * (16 per slab: still slabs), 128 and -1; act-order (one slab); and a small
 * M (prefill) on the same layer. */
static const int64_t k_decode_ms[] = {1, 2};
Test(w4a16, bits4_slabs, .timeout = 120) { sweep_m(4, 712, 1064, k_decode_ms, 2); }
Test(w4a16, bits3_slabs, .timeout = 120) { sweep_m(3, 544, 1056, k_decode_ms, 2); }
Test(w4a16, bits8_slabs, .timeout = 120) { sweep_m(8, 620, 1100, k_decode_ms, 2); }

/* The same bytes for 1, 2, 3 and 5 threads: decode (M = 1, slabs of 256 k by
 * units of 1024 columns, summed after a barrier; act-order: one slab) and
 * prefill (M = 5, runs of tiles). */
Test(w4a16, thread_count_does_not_change_bytes)
{
#ifdef _OPENMP
    gptq_backend *be;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK);
    for (int c = 0; c < 4; c++) {
        const int act = c & 1;
        gptq_packed p;
        const int64_t K = 1000, N = 2088, M = c < 2 ? 1 : 5;
        const gptq_format fmt = make_layer(4, N, K, 128, act, Z_V1_ASYM, &p);
        float *X = malloc((size_t)(M * K) * sizeof(float));
        float *Y1 = malloc((size_t)(M * N) * sizeof(float)), *Yt = malloc((size_t)(M * N) * 4);
        cr_assert(X && Y1 && Yt);
        for (int64_t i = 0; i < M * K; i++) X[i] = urand();
        const int saved = omp_get_max_threads();
        for (int i = 0; i < NISA; i++) {
            omp_set_num_threads(1);
            if (run_fast(be, k_isas[i], &p, fmt, X, M, NULL, Y1)) continue;
            for (int t = 2; t <= 5; t += 1 + (t == 3)) {
                omp_set_num_threads(t);
                run_fast(be, k_isas[i], &p, fmt, X, M, NULL, Yt);
                cr_assert(!memcmp(Y1, Yt, (size_t)(M * N) * 4), "%s M=%lld%s: %d threads "
                          "differ from 1", k_isas[i], (long long)M, act ? " act-order" : "", t);
            }
        }
        omp_set_num_threads(saved);
        free(X);
        free(Y1);
        free(Yt);
        gptq_packed_free(&p);
    }
    gptq_backend_close(be);
#else
    cr_skip("built without OpenMP: one thread only");
#endif
}

/* The bound is tight enough to fail a real fault: the packed bytes read with
 * the other zero convention (every zero off by one) break it on almost every
 * output, on every ISA. */
Test(w4a16, bound_rejects_a_zero_off_by_one)
{
    gptq_backend *be;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK);
    gptq_packed p;
    const int64_t K = 256, N = 64, M = 3;
    make_layer(4, N, K, 128, 0, Z_V1_ASYM, &p);
    float *X = malloc((size_t)(M * K) * 4), *Yr = malloc((size_t)(M * N) * 4),
          *Yf = malloc((size_t)(M * N) * 4);
    cr_assert(X && Yr && Yf);
    for (int64_t i = 0; i < M * K; i++) X[i] = urand();
    cr_assert_eq(gptq_matmul_ref(&p, GPTQ_FORMAT_V1, X, M, NULL, Yr), GPTQ_OK);
    double *S = abs_sums(&p, GPTQ_FORMAT_V1, X, M, NULL);
    for (int i = 0; i < NISA; i++) {
        if (run_fast(be, k_isas[i], &p, GPTQ_FORMAT_V2, X, M, NULL, Yf)) continue;
        int64_t over = 0;
        for (int64_t j = 0; j < M * N; j++)
            over += fabs((double)Yf[j] - (double)Yr[j]) > 2.0 * gamma_n(K + 2) * S[j];
        cr_assert(over >= M * N * 9 / 10, "%s: only %lld of %lld outputs break the bound with "
                  "every zero off by one", k_isas[i], (long long)over, (long long)(M * N));
    }
    free(S);
    free(X);
    free(Yr);
    free(Yf);
    gptq_packed_free(&p);
    gptq_backend_close(be);
}

/* GPTQ_CPU_ISA: unknown names refused with the list; auto and unset pick
 * the last path this CPU runs; the choice is reported. */
Test(w4a16, isa_variable)
{
    gptq_backend *be;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK);
    gptq_packed p;
    make_layer(4, 32, 64, 32, 0, Z_V1_SYM, &p);
    float X[64] = {0}, Y[32];
    const char *best = NULL, *impl = NULL;
    for (int i = 0; i < NISA; i++) {
        setenv("GPTQ_CPU_ISA", k_isas[i], 1);
        if (gptq_matmul_fast_on(be, &p, GPTQ_FORMAT_V1, X, 1, NULL, Y, &impl) == GPTQ_OK)
            best = k_isas[i];
    }
    cr_assert(best);
    unsetenv("GPTQ_CPU_ISA");
    cr_assert_eq(gptq_matmul_fast_on(be, &p, GPTQ_FORMAT_V1, X, 1, NULL, Y, &impl), GPTQ_OK);
    cr_assert_str_eq(impl, best);
    setenv("GPTQ_CPU_ISA", "auto", 1);
    cr_assert_eq(gptq_matmul_fast_on(be, &p, GPTQ_FORMAT_V1, X, 1, NULL, Y, &impl), GPTQ_OK);
    cr_assert_str_eq(impl, best);
    setenv("GPTQ_CPU_ISA", "sse9", 1);
    cr_assert_eq(gptq_matmul_fast_on(be, &p, GPTQ_FORMAT_V1, X, 1, NULL, Y, &impl),
                 GPTQ_ERR_INVALID);
    cr_assert(strstr(gptq_last_error(), "GPTQ_CPU_ISA=sse9 is none of auto, generic, avx2, avx512"),
              "%s", gptq_last_error());
    unsetenv("GPTQ_CPU_ISA");
    fprintf(stderr, "w4a16: auto picks %s on this CPU\n", best);
    gptq_packed_free(&p);
    gptq_backend_close(be);
}

/* ------------------------------------------------------------------ */
/* gptq matmul --fast against gptq matmul, through the built CLI        */
/* ------------------------------------------------------------------ */

static void save_f32(const char *path, const char *name, int64_t R, int64_t C, float scale)
{
    float *d = malloc((size_t)(R * C) * sizeof(float));
    cr_assert(d);
    for (int64_t i = 0; i < R * C; i++) d[i] = urand() * scale;
    gptq_tensor t = {GPTQ_F32, 2, {R, C}, d, 0};
    cr_assert_eq(gptq_st_save(path, 1, &name, &t), GPTQ_OK, "%s", gptq_last_error());
    free(d);
}

static const float *tensor_f32(gptq_st_file *f, const char *name, int64_t R, int64_t C)
{
    gptq_st_info i;
    cr_assert_eq(gptq_st_find(f, name, &i), GPTQ_OK, "%s", gptq_last_error());
    cr_assert(i.dtype == GPTQ_F32 && i.ndim == 2 && i.shape[0] == R && i.shape[1] == C,
              "%s: wrong dtype or shape", name);
    return i.data;
}

static const char *st_meta(gptq_st_file *f, const char *key)
{
    const char *v = gptq_st_metadata(f, key);
    return v ? v : "";
}

/* Layer files of several layouts (`gptq layer`), then for each: the
 * reference Y and W (--dequant), and --fast under every ISA this CPU runs:
 * each output within 2 gamma(K+2) S of the reference, S from the file's W. */
Test(w4a16, cli_fast_against_reference)
{
    char dir[512], in[1024], xp[1024], q[1024], yr[1024], yf[1024];
    ch_mkdtemp(dir, "w4a16");
    const int64_t K = 128, M = 17;
    ch_join(xp, dir, "x.safetensors");
    save_f32(xp, "X", M, K, 2.0f);
    struct {
        int64_t N;
        const char *opts[6];
    } v[] = {
        {72, {"--bits", "4", "--asym", "--format", "gptq_v2", NULL}},
        {72, {"--bits", "4", "--desc-act", "--group-size", "32", NULL}},
        {96, {"--bits", "3", "--asym", "--group-size", "-1", NULL}},
        {36, {"--bits", "8", "--group-size", "64", NULL}},
        {48, {"--bits", "2", "--asym", "--desc-act", NULL}},
    };
    int ran[NISA] = {0};
    for (size_t c = 0; c < sizeof v / sizeof *v; c++) {
        const int64_t N = v[c].N;
        ch_join(in, dir, "in.safetensors");
        {
            float *d = malloc((size_t)((N + 256) * K) * sizeof(float));
            cr_assert(d);
            for (int64_t i = 0; i < (N + 256) * K; i++) d[i] = urand();
            const char *names[2] = {"W", "X"};
            gptq_tensor t[2] = {{GPTQ_F32, 2, {N, K}, d, 0}, {GPTQ_F32, 2, {256, K}, d + N * K, 0}};
            cr_assert_eq(gptq_st_save(in, 2, names, t), GPTQ_OK, "%s", gptq_last_error());
            free(d);
        }
        const char *argv[24] = {"layer", in, "-o", ch_join(q, dir, "q.safetensors"), "--quiet"};
        int n = 5;
        for (int i = 0; v[c].opts[i]; i++) argv[n++] = v[c].opts[i];
        cli_result r;
        ch_opts o = {.timeout = 120};
        ch_run_opts(&r, &o, argv);
        ch_expect(&r, 0, "");
        ch_result_free(&r);
        ch_run(&r, 120, "matmul", q, "-x", xp, "-o", ch_join(yr, dir, "yr.safetensors"),
               "--dequant", NULL);
        ch_expect(&r, 0, "");
        cr_assert(strstr(r.out, "reference kernel"), "%s", r.out);
        ch_result_free(&r);
        gptq_st_file *fr, *fx;
        cr_assert_eq(gptq_st_open(yr, &fr), GPTQ_OK);
        cr_assert_eq(gptq_st_open(xp, &fx), GPTQ_OK);
        const float *Yr = tensor_f32(fr, "Y", M, N), *W = tensor_f32(fr, "W", N, K),
                    *X = tensor_f32(fx, "X", M, K);
        double *S = malloc((size_t)(M * N) * sizeof(double));
        cr_assert(S);
        for (int64_t m = 0; m < M; m++)
            for (int64_t j = 0; j < N; j++) {
                S[m * N + j] = 0.0;
                for (int64_t k = 0; k < K; k++)
                    S[m * N + j] += fabs((double)gptq_f16_to_f32(gptq_f32_to_f16(X[m * K + k])) *
                                         (double)W[j * K + k]);
            }
        for (int i = 0; i < NISA; i++) {
            char env[64];
            snprintf(env, sizeof env, "GPTQ_CPU_ISA=%s", k_isas[i]);
            const char *envs[] = {env, NULL};
            const char *fa[] = {"matmul", q, "-x", xp, "-o", ch_join(yf, dir, "yf.safetensors"),
                                "--fast", NULL};
            ch_opts fo = {.timeout = 120, .env = envs};
            ch_run_opts(&r, &fo, fa);
            if (r.status == 1 && strstr(r.err, "cannot run it")) {
                ch_result_free(&r);
                continue;
            }
            ch_expect(&r, 0, "");
            char want[64];
            snprintf(want, sizeof want, "fast kernel %s", k_isas[i]);
            cr_assert(strstr(r.out, want), "%s: %s", want, r.out);
            ch_result_free(&r);
            gptq_st_file *ff;
            cr_assert_eq(gptq_st_open(yf, &ff), GPTQ_OK);
            snprintf(want, sizeof want, "fast %s", k_isas[i]);
            cr_assert_str_eq(st_meta(ff, "kernel"), want);
            char what[128];
            snprintf(what, sizeof what, "cli case %zu (N=%lld %s %s) %s", c, (long long)N,
                     v[c].opts[0], v[c].opts[1], k_isas[i]);
            check_close(tensor_f32(ff, "Y", M, N), Yr, S, M, N, K, what);
            gptq_st_close(ff);
            ran[i]++;
        }
        free(S);
        gptq_st_close(fr);
        gptq_st_close(fx);
    }
    cr_assert(ran[0] == (int)(sizeof v / sizeof *v));
    /* an unknown GPTQ_CPU_ISA: exit 1 naming the choices, no output written */
    const char *envs[] = {"GPTQ_CPU_ISA=sse9", NULL};
    const char *fa[] = {"matmul", q, "-x", xp, "-o", ch_join(yf, dir, "bad.safetensors"), "--fast",
                        NULL};
    ch_opts fo = {.timeout = 60, .env = envs};
    cli_result r;
    ch_run_opts(&r, &fo, fa);
    ch_expect(&r, 1, "GPTQ_CPU_ISA=sse9 is none of auto, generic, avx2, avx512");
    cr_assert(access(yf, F_OK) != 0, "a failed --fast wrote %s", yf);
    ch_result_free(&r);
    ch_rm_tree(dir);
}
