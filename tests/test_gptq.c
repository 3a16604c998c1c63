/*
 * test_gptq.c — GPTQ on one layer through the CPU reference backend:
 *   - bit-exact for OMP_NUM_THREADS 1, 2 and 8 on every option combination
 *     (bits x group size x sym x act-order x static groups x mse x method);
 *   - properties that hold whatever the implementation: with H = c*I there is
 *     no error feedback, so GPTQ equals RTN and the loss has a closed form;
 *     RTN equals a grid computed here from the definition; GPTQ reduces the
 *     output error against RTN on correlated inputs; g_idx and perm follow
 *     act-order and static groups; dead columns; damping retries; failures.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "gptq.h"
#include "internal.h"
#include "quant/qdev.h"

static gptq_backend *open_cpu(void)
{
    gptq_backend *be = NULL;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK, "%s", gptq_last_error());
    return be;
}

/* deterministic pseudo-random numbers independent of libc */
static uint64_t g_rng;
static double urand(void)
{
    g_rng = g_rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(g_rng >> 11) / 9007199254740992.0;
}
static double nrand(void)
{
    double u = urand() + 1e-12, v = urand();
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* W (R, C) with a few outlier columns; X (n, C) correlated. */
static void make_layer(int64_t R, int64_t C, int64_t n, uint64_t seed, float *W, float *X)
{
    g_rng = seed;
    for (int64_t i = 0; i < R * C; i++) W[i] = (float)(0.02 * nrand());
    for (int64_t r = 0; r < R; r++) W[r * C + 5 % C] *= 8.0f;
    float *mix = malloc(sizeof(float) * 8 * C);
    for (int64_t i = 0; i < 8 * C; i++) mix[i] = (float)nrand();
    for (int64_t t = 0; t < n; t++) {
        double z[8];
        for (int k = 0; k < 8; k++) z[k] = nrand();
        for (int64_t c = 0; c < C; c++) {
            double v = 0.3 * nrand() * (1.0 + (double)(c % 7));
            for (int k = 0; k < 8; k++) v += z[k] * mix[k * C + c];
            X[t * C + c] = (float)v;
        }
    }
    free(mix);
}

static float *hessian_of(gptq_backend *be, const float *X, int64_t n, int64_t C)
{
    gptq_hessian *h;
    float *H = malloc(sizeof(float) * C * C);
    cr_assert_eq(gptq_hessian_new(be, C, &h), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(gptq_hessian_add(h, X, n), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(gptq_hessian_get(h, H), GPTQ_OK, "%s", gptq_last_error());
    gptq_hessian_free(h);
    return H;
}

static int same_result(const gptq_layer_result *a, const gptq_layer_result *b)
{
    const int64_t R = a->rows, C = a->cols, ng = a->ngroups;
    return a->ngroups == b->ngroups && memcmp(a->codes, b->codes, (size_t)(R * C)) == 0 &&
           memcmp(a->scales, b->scales, sizeof(float) * (size_t)(ng * R)) == 0 &&
           memcmp(a->zeros, b->zeros, sizeof(int32_t) * (size_t)(ng * R)) == 0 &&
           memcmp(a->g_idx, b->g_idx, sizeof(int32_t) * (size_t)C) == 0 &&
           memcmp(a->dequant, b->dequant, sizeof(float) * (size_t)(R * C)) == 0 &&
           memcmp(&a->loss, &b->loss, sizeof a->loss) == 0 &&
           memcmp(&a->out_rel_err, &b->out_rel_err, sizeof a->out_rel_err) == 0;
}

/* gptq_quantize_layer_h (the Hessian left where it was accumulated) gives
 * the bytes of gptq_hessian_get + gptq_quantize_layer, with and without
 * act-order and dead columns (the CPU backend takes the host path). */
Test(gptq, quantize_with_the_accumulated_hessian_is_the_same)
{
    gptq_backend *be = open_cpu();
    const int64_t R = 64, C = 256, n = 512;
    float *W = malloc(sizeof(float) * R * C), *X = malloc(sizeof(float) * n * C);
    for (int variant = 0; variant < 3; variant++) {
        make_layer(R, C, n, 31 + (uint64_t)variant, W, X);
        if (variant == 2)
            for (int64_t t = 0; t < n; t++) X[t * C + 7] = 0.0f; /* a dead column */
        gptq_quant_config q;
        gptq_quant_config_default(&q);
        q.sym = 0;
        q.desc_act = variant == 1;
        gptq_hessian *h;
        cr_assert_eq(gptq_hessian_new(be, C, &h), GPTQ_OK, "%s", gptq_last_error());
        cr_assert_eq(gptq_hessian_add(h, X, n), GPTQ_OK, "%s", gptq_last_error());
        float *H = malloc(sizeof(float) * C * C);
        cr_assert_eq(gptq_hessian_get(h, H), GPTQ_OK, "%s", gptq_last_error());
        gptq_layer_result a, b;
        cr_assert_eq(gptq_quantize_layer(be, W, R, C, H, &q, &a), GPTQ_OK, "%s", gptq_last_error());
        cr_assert_eq(gptq_quantize_layer_h(be, W, R, C, h, &q, &b), GPTQ_OK, "%s",
                     gptq_last_error());
        cr_assert(same_result(&a, &b), "variant %d: the accumulated Hessian gave other bytes",
                  variant);
        cr_assert_eq(a.dead_cols, variant == 2 ? 1 : 0);
        cr_assert_eq(b.dead_cols, a.dead_cols);
        /* the pipeline's call with W in a backend buffer (the CPU backend
         * takes its host path): packed tensors and the weight left behind
         * are gptq_pack's and gptq_dequantize's */
        gptq_packed pa, pd;
        gptq_layer_result d;
        float *Wh = malloc(sizeof(float) * R * C), *Wq = malloc(sizeof(float) * R * C);
        cr_assert_eq(gptq_pack(&a, GPTQ_FORMAT_V2, &pa), GPTQ_OK, "%s", gptq_last_error());
        cr_assert_eq(gptq_dequantize(&pa, GPTQ_FORMAT_V2, Wq), GPTQ_OK);
        gptq_buf *Wb = NULL;
        cr_assert_eq(gptq_be_alloc(be, sizeof(float) * R * C, &Wb, "W"), GPTQ_OK);
        cr_assert_eq(gptq_be_upload(be, Wb, 0, W, sizeof(float) * R * C), GPTQ_OK);
        cr_assert_eq(gptq_quantize_layer_dev(be, Wb, R, C, h, &q, Wh, &d, &pd), GPTQ_OK, "%s",
                     gptq_last_error());
        cr_assert(same_result(&a, &d), "variant %d: layer_dev gave other bytes", variant);
        cr_assert(memcmp(pa.qweight, pd.qweight, (size_t)(C / 8 * R) * 4) == 0 &&
                      memcmp(pa.qzeros, pd.qzeros, (size_t)(a.ngroups * R / 8) * 4) == 0 &&
                      memcmp(pa.scales, pd.scales, (size_t)(a.ngroups * R) * 2) == 0,
                  "variant %d: layer_dev packed other tensors", variant);
        cr_assert_eq(gptq_be_download(be, Wb, 0, Wh, sizeof(float) * R * C), GPTQ_OK);
        cr_assert(memcmp(Wh, Wq, sizeof(float) * R * C) == 0,
                  "variant %d: layer_dev left another weight", variant);
        gptq_be_free(be, Wb);
        gptq_packed_free(&pa);
        gptq_packed_free(&pd);
        gptq_layer_result_free(&d);
        free(Wh);
        free(Wq);
        gptq_layer_result_free(&a);
        gptq_layer_result_free(&b);
        gptq_hessian_free(h);
        free(H);
    }
    free(W);
    free(X);
    gptq_backend_close(be);
}

/* Every option combination, at OMP 1, 2 and 8 threads: identical bytes.
 * The layer spans several GEMM/Hessian tiles and blocks (C = 384 > 256). */
Test(gptq, bit_exact_across_threads_every_option, .timeout = 600)
{
    enum { R = 64, C = 384, N = 600 };
    gptq_backend *be = open_cpu();
    float *W = malloc(sizeof(float) * R * C), *X = malloc(sizeof(float) * N * C);
    make_layer(R, C, N, 11, W, X);
    const int threads[3] = {1, 2, 8};
    float *Hs[3];
    for (int t = 0; t < 3; t++) {
        omp_set_num_threads(threads[t]);
        Hs[t] = hessian_of(be, X, N, C);
    }
    cr_assert_eq(memcmp(Hs[0], Hs[1], sizeof(float) * C * C), 0, "Hessian differs at 2 threads");
    cr_assert_eq(memcmp(Hs[0], Hs[2], sizeof(float) * C * C), 0, "Hessian differs at 8 threads");
    const int bits[4] = {2, 3, 4, 8}, groups[3] = {-1, 32, 128};
    int combos = 0;
    for (int bi = 0; bi < 4; bi++)
        for (int gi = 0; gi < 3; gi++)
            for (int opt = 0; opt < 32; opt++) {
                gptq_quant_config cfg;
                gptq_quant_config_default(&cfg);
                cfg.bits = bits[bi];
                cfg.group_size = groups[gi];
                cfg.sym = opt & 1;
                cfg.desc_act = (opt >> 1) & 1;
                cfg.static_groups = (opt >> 2) & 1;
                cfg.mse = (opt >> 3) & 1;
                cfg.method = (opt >> 4) & 1 ? GPTQ_METHOD_RTN : GPTQ_METHOD_GPTQ;
                if (cfg.static_groups && cfg.group_size == -1) continue;
                if (cfg.mse && bits[bi] != 4 && bits[bi] != 3) continue; /* keep it quick */
                gptq_layer_result res[3];
                for (int t = 0; t < 3; t++) {
                    omp_set_num_threads(threads[t]);
                    cr_assert_eq(gptq_quantize_layer(be, W, R, C, Hs[0], &cfg, &res[t]), GPTQ_OK,
                                 "%s", gptq_last_error());
                }
                cr_assert(same_result(&res[0], &res[1]) && same_result(&res[0], &res[2]),
                          "bits %d group %d sym %d act %d static %d mse %d %s: results differ "
                          "across thread counts",
                          cfg.bits, cfg.group_size, cfg.sym, cfg.desc_act, cfg.static_groups,
                          cfg.mse, cfg.method == GPTQ_METHOD_RTN ? "rtn" : "gptq");
                for (int t = 0; t < 3; t++) gptq_layer_result_free(&res[t]);
                combos++;
            }
    cr_assert_geq(combos, 150);
    for (int t = 0; t < 3; t++) free(Hs[t]);
    free(W);
    free(X);
    gptq_backend_close(be);
}

/* The grid of DESIGN.md, written out here independently for RTN. */
static void ref_grid(const float *w, int64_t g, int bits, int sym, float *s, float *z)
{
    float maxq = (float)((1 << bits) - 1), lo = 0, hi = 0;
    for (int64_t k = 0; k < g; k++) {
        lo = w[k] < lo ? w[k] : lo;
        hi = w[k] > hi ? w[k] : hi;
    }
    if (sym) {
        hi = -lo > hi ? -lo : hi;
        lo = -hi;
    }
    if (lo == 0 && hi == 0) {
        lo = -1;
        hi = 1;
    }
    *s = (hi - lo) / maxq;
    *z = sym ? (maxq + 1) / 2 : nearbyintf(-lo / *s);
}

Test(gptq, rtn_matches_definition)
{
    enum { R = 32, C = 256 };
    gptq_backend *be = open_cpu();
    float *W = malloc(sizeof(float) * R * C), *X = malloc(sizeof(float) * 16 * C);
    make_layer(R, C, 16, 3, W, X);
    for (int bits = 2; bits <= 8; bits++) {
        if (bits != 2 && bits != 3 && bits != 4 && bits != 8) continue;
        for (int sym = 0; sym < 2; sym++) {
            gptq_quant_config cfg;
            gptq_quant_config_default(&cfg);
            cfg.method = GPTQ_METHOD_RTN;
            cfg.bits = bits;
            cfg.sym = sym;
            cfg.group_size = 64;
            gptq_layer_result res;
            cr_assert_eq(gptq_quantize_layer(be, W, R, C, NULL, &cfg, &res), GPTQ_OK, "%s",
                         gptq_last_error());
            const float maxq = (float)((1 << bits) - 1);
            for (int64_t r = 0; r < R; r++)
                for (int64_t g = 0; g < C / 64; g++) {
                    float s, z;
                    ref_grid(W + r * C + g * 64, 64, bits, sym, &s, &z);
                    cr_assert_eq(res.scales[g * R + r], s);
                    cr_assert_eq(res.zeros[g * R + r], (int32_t)z);
                    for (int64_t k = g * 64; k < (g + 1) * 64; k++) {
                        float q = nearbyintf(W[r * C + k] / s) + z;
                        q = q < 0 ? 0 : q > maxq ? maxq : q;
                        cr_assert_eq(res.codes[r * C + k], (uint8_t)q, "bits %d r %ld k %ld",
                                     bits, (long)r, (long)k);
                        cr_assert_eq(res.dequant[r * C + k], s * (q - z));
                    }
                }
            gptq_layer_result_free(&res);
        }
    }
    free(W);
    free(X);
    gptq_backend_close(be);
}

/* H = c*I: U is diagonal, no error feedback, so GPTQ = RTN, and the loss is
 * c*(1+damp)/2 * sum (w - w_hat)^2. */
Test(gptq, diagonal_hessian_equals_rtn)
{
    enum { R = 32, C = 256 };
    gptq_backend *be = open_cpu();
    float *W = malloc(sizeof(float) * R * C), *X = malloc(sizeof(float) * 16 * C);
    float *H = calloc((size_t)C * C, sizeof(float));
    make_layer(R, C, 16, 5, W, X);
    const float c = 4.0f;
    for (int i = 0; i < C; i++) H[i * C + i] = c;
    gptq_quant_config cfg;
    gptq_quant_config_default(&cfg);
    cfg.sym = 0;
    cfg.group_size = 32;
    gptq_layer_result g, r;
    cr_assert_eq(gptq_quantize_layer(be, W, R, C, H, &cfg, &g), GPTQ_OK, "%s", gptq_last_error());
    cfg.method = GPTQ_METHOD_RTN;
    cr_assert_eq(gptq_quantize_layer(be, W, R, C, NULL, &cfg, &r), GPTQ_OK, "%s",
                 gptq_last_error());
    cr_assert_eq(memcmp(g.codes, r.codes, R * C), 0, "GPTQ with H = cI differs from RTN");
    double sq = 0;
    for (int i = 0; i < R * C; i++) sq += ((double)W[i] - g.dequant[i]) * ((double)W[i] - g.dequant[i]);
    double want = sq * c * (1.0 + cfg.damp_percent) / 2.0;
    /* the solve's U_jj = 1/sqrt(c (1 + damp)) and lambda are f32 (a few
     * 6e-8 roundings), the sums double: measured 1.0e-7 relative */
    cr_assert(fabs(g.loss - want) <= 1e-6 * want, "loss %.9g, closed form %.9g (%.3g relative)",
              g.loss, want, g.loss / want - 1.0);
    cr_log_info("loss vs closed form: %.3g relative", g.loss / want - 1.0);
    gptq_layer_result_free(&g);
    gptq_layer_result_free(&r);
    free(W);
    free(X);
    free(H);
    gptq_backend_close(be);
}

/* GPTQ's purpose: a smaller output error than RTN on correlated inputs.
 * Measured on this layer (seed 9): GPTQ/RTN output error 0.456 and 0.452
 * (2 bits, without/with act-order), 0.411/0.434 (3), 0.399/0.425 (4),
 * 0.404/0.428 (8): the bound 0.5 is ~10% above the worst, so a solve that
 * loses most of its error feedback (a ratio near 1) fails. */
Test(gptq, beats_rtn_on_output_error)
{
    enum { R = 64, C = 256, N = 1024 };
    gptq_backend *be = open_cpu();
    float *W = malloc(sizeof(float) * R * C), *X = malloc(sizeof(float) * N * C);
    make_layer(R, C, N, 9, W, X);
    float *H = hessian_of(be, X, N, C);
    const int bits[4] = {2, 3, 4, 8};
    for (int i = 0; i < 4; i++)
        for (int act = 0; act < 2; act++) {
            gptq_quant_config cfg;
            gptq_quant_config_default(&cfg);
            cfg.bits = bits[i];
            cfg.desc_act = act;
            gptq_layer_result g, r;
            cr_assert_eq(gptq_quantize_layer(be, W, R, C, H, &cfg, &g), GPTQ_OK);
            cfg.method = GPTQ_METHOD_RTN;
            cr_assert_eq(gptq_quantize_layer(be, W, R, C, H, &cfg, &r), GPTQ_OK);
            cr_assert_lt(g.out_rel_err, 0.5 * r.out_rel_err, "%d bits act %d: GPTQ %.4g RTN %.4g",
                         bits[i], act, g.out_rel_err, r.out_rel_err);
            /* and the output error computed here directly from X agrees */
            double num = 0, den = 0;
            for (int t = 0; t < N; t++)
                for (int o = 0; o < R; o++) {
                    double y = 0, yh = 0;
                    for (int k = 0; k < C; k++) {
                        y += (double)X[t * C + k] * W[o * C + k];
                        yh += (double)X[t * C + k] * g.dequant[o * C + k];
                    }
                    num += (y - yh) * (y - yh);
                    den += y * y;
                }
            double direct = sqrt(num / den);
            cr_log_info("%d bits act %d: output error GPTQ %.6g RTN %.6g (ratio %.4f), direct "
                        "vs via H %.3g relative", bits[i], act, g.out_rel_err, r.out_rel_err,
                        g.out_rel_err / r.out_rel_err, direct / g.out_rel_err - 1.0);
            /* the two differ by H's rounding: H is summed in f32 over N = 1024
             * rows (~sqrt(N) * 6e-8 = 2e-6 relative, measured at most 2.3e-7
             * on the error); 1e-5 leaves room for that and no more */
            cr_assert(fabs(direct - g.out_rel_err) < 1e-5 * g.out_rel_err,
                      "direct %.7g vs via H %.7g", direct, g.out_rel_err);
            gptq_layer_result_free(&g);
            gptq_layer_result_free(&r);
        }
    free(W);
    free(X);
    free(H);
    gptq_backend_close(be);
}

Test(gptq, act_order_and_static_groups_indices)
{
    enum { R = 16, C = 128, N = 256, G = 32 };
    gptq_backend *be = open_cpu();
    float *W = malloc(sizeof(float) * R * C), *X = malloc(sizeof(float) * N * C);
    make_layer(R, C, N, 21, W, X);
    float *H = hessian_of(be, X, N, C);
    H[7 * C + 7] = H[9 * C + 9]; /* a tie: column order decides */
    gptq_quant_config cfg;
    gptq_quant_config_default(&cfg);
    cfg.group_size = G;
    cfg.desc_act = 1;
    gptq_layer_result a;
    cr_assert_eq(gptq_quantize_layer(be, W, R, C, H, &cfg, &a), GPTQ_OK);
    for (int j = 1; j < C; j++) {
        float d0 = H[a.perm[j - 1] * C + a.perm[j - 1]], d1 = H[a.perm[j] * C + a.perm[j]];
        cr_assert(d0 > d1 || (d0 == d1 && a.perm[j - 1] < a.perm[j]), "perm not descending at %d", j);
    }
    for (int j = 0; j < C; j++) cr_assert_eq(a.g_idx[a.perm[j]], j / G);
    cfg.static_groups = 1;
    gptq_layer_result s;
    cr_assert_eq(gptq_quantize_layer(be, W, R, C, H, &cfg, &s), GPTQ_OK);
    for (int k = 0; k < C; k++) cr_assert_eq(s.g_idx[k], k / G);
    /* static grids are those of the original W: RTN's grids */
    cfg.method = GPTQ_METHOD_RTN;
    gptq_layer_result r;
    cr_assert_eq(gptq_quantize_layer(be, W, R, C, NULL, &cfg, &r), GPTQ_OK);
    cr_assert_eq(memcmp(s.scales, r.scales, sizeof(float) * R * (C / G)), 0);
    gptq_layer_result_free(&a);
    gptq_layer_result_free(&s);
    gptq_layer_result_free(&r);
    free(W);
    free(X);
    free(H);
    gptq_backend_close(be);
}

Test(gptq, dead_column)
{
    enum { R = 16, C = 64, N = 128 };
    gptq_backend *be = open_cpu();
    float *W = malloc(sizeof(float) * R * C), *X = malloc(sizeof(float) * N * C);
    make_layer(R, C, N, 4, W, X);
    for (int t = 0; t < N; t++) X[t * C + 10] = 0.0f;
    float *H = hessian_of(be, X, N, C);
    gptq_quant_config cfg;
    gptq_quant_config_default(&cfg);
    cfg.group_size = -1;
    gptq_layer_result a;
    cr_assert_eq(gptq_quantize_layer(be, W, R, C, H, &cfg, &a), GPTQ_OK);
    cr_assert_eq(a.dead_cols, 1);
    for (int r = 0; r < R; r++) cr_assert_eq(a.dequant[r * C + 10], 0.0f);
    gptq_layer_result_free(&a);
    free(W);
    free(X);
    free(H);
    gptq_backend_close(be);
}

/* Low-rank H with damp 0: the first Cholesky fails, a retry succeeds. */
Test(gptq, damp_retry_reported)
{
    enum { R = 16, C = 64, N = 8 };
    gptq_backend *be = open_cpu();
    float *W = malloc(sizeof(float) * R * C), *X = malloc(sizeof(float) * N * C);
    make_layer(R, C, N, 8, W, X); /* n = 8 < C: H has rank 8 */
    float *H = hessian_of(be, X, N, C);
    gptq_quant_config cfg;
    gptq_quant_config_default(&cfg);
    cfg.damp_percent = 0.0f;
    gptq_layer_result a;
    cr_assert_eq(gptq_quantize_layer(be, W, R, C, H, &cfg, &a), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_geq(a.damp_retries, 1);
    cr_assert(a.damp_used > 0.0f && a.damp_used <= 1.0f);
    gptq_layer_result_free(&a);
    free(W);
    free(X);
    free(H);
    gptq_backend_close(be);
}

Test(gptq, not_positive_definite_after_damping)
{
    enum { R = 8, C = 32 };
    gptq_backend *be = open_cpu();
    float *W = calloc(R * C, sizeof(float)), *H = calloc(C * C, sizeof(float));
    for (int i = 0; i < C; i++) H[i * C + i] = 1.0f;
    H[3 * C + 3] = -1000.0f; /* mean(diag) < 0: no damping can fix it */
    gptq_quant_config cfg;
    gptq_quant_config_default(&cfg);
    cfg.group_size = -1;
    gptq_layer_result a;
    cr_assert_eq(gptq_quantize_layer(be, W, R, C, H, &cfg, &a), GPTQ_ERR_NUMERIC);
    cr_assert(strstr(gptq_last_error(), "not positive definite"), "%s", gptq_last_error());
    free(W);
    free(H);
    gptq_backend_close(be);
}

Test(gptq, rejects_nonfinite_and_bad_options)
{
    enum { R = 8, C = 32 };
    gptq_backend *be = open_cpu();
    float *W = calloc(R * C, sizeof(float)), *H = calloc(C * C, sizeof(float));
    for (int i = 0; i < C; i++) H[i * C + i] = 1.0f;
    gptq_quant_config cfg;
    gptq_quant_config_default(&cfg);
    cfg.group_size = -1;
    gptq_layer_result a;
    W[5 * C + 2] = NAN;
    cr_assert_eq(gptq_quantize_layer(be, W, R, C, H, &cfg, &a), GPTQ_ERR_NUMERIC);
    cr_assert(strstr(gptq_last_error(), "row 5, column 2"), "%s", gptq_last_error());
    W[5 * C + 2] = 0;
    H[1] = INFINITY;
    cr_assert_eq(gptq_quantize_layer(be, W, R, C, H, &cfg, &a), GPTQ_ERR_NUMERIC);
    H[1] = 0;
    cfg.bits = 5;
    cr_assert_eq(gptq_quantize_layer(be, W, R, C, H, &cfg, &a), GPTQ_ERR_INVALID);
    cr_assert(strstr(gptq_last_error(), "--bits 5"), "%s", gptq_last_error());
    cfg.bits = 4;
    cfg.group_size = 48;
    cr_assert_eq(gptq_quantize_layer(be, W, R, C, H, &cfg, &a), GPTQ_ERR_INVALID);
    cfg.group_size = -1;
    cr_assert_eq(gptq_quantize_layer(be, W, 0, C, H, &cfg, &a), GPTQ_ERR_SHAPE);
    float x[2 * C];
    for (int i = 0; i < 2 * C; i++) x[i] = 1.0f;
    x[C + 3] = NAN;
    gptq_hessian *h;
    cr_assert_eq(gptq_hessian_new(be, C, &h), GPTQ_OK);
    cr_assert_eq(gptq_hessian_add(h, x, 2), GPTQ_ERR_NUMERIC);
    cr_assert(strstr(gptq_last_error(), "row 1, column 3"), "%s", gptq_last_error());
    gptq_hessian_free(h);
    free(W);
    free(H);
    gptq_backend_close(be);
}
