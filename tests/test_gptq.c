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
#include "quant/solve.h"

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
 * act-order and dead columns (the same solve from another Hessian buffer). */
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
        /* the pipeline's call with W in a backend buffer (the same solve):
         * the same grid and statistics; packed tensors and the weight left
         * behind are gptq_pack's and gptq_dequantize's */
        gptq_packed pa, pd;
        gptq_layer_result d;
        float *Wh = malloc(sizeof(float) * R * C), *Wq = malloc(sizeof(float) * R * C);
        cr_assert_eq(gptq_pack(&a, GPTQ_FORMAT_V2, &pa), GPTQ_OK, "%s", gptq_last_error());
        cr_assert_eq(gptq_dequantize(&pa, GPTQ_FORMAT_V2, Wq), GPTQ_OK);
        gptq_buf *Wb = NULL;
        cr_assert_eq(gptq_be_alloc(be, sizeof(float) * R * C, &Wb, "W"), GPTQ_OK);
        cr_assert_eq(gptq_be_upload(be, Wb, 0, W, sizeof(float) * R * C), GPTQ_OK);
        cr_assert_eq(gptq_quantize_layer_dev(be, Wb, R, C, h, &q, &d, &pd), GPTQ_OK, "%s",
                     gptq_last_error());
        cr_assert(!d.codes && !d.dequant, "variant %d: layer_dev downloaded codes", variant);
        cr_assert(memcmp(a.scales, d.scales, sizeof(float) * (size_t)(a.ngroups * R)) == 0 &&
                      memcmp(a.zeros, d.zeros, sizeof(int32_t) * (size_t)(a.ngroups * R)) == 0 &&
                      memcmp(a.g_idx, d.g_idx, sizeof(int32_t) * (size_t)C) == 0 &&
                      memcmp(&a.loss, &d.loss, sizeof a.loss) == 0 &&
                      memcmp(&a.out_rel_err, &d.out_rel_err, sizeof a.out_rel_err) == 0 &&
                      a.dead_cols == d.dead_cols,
                  "variant %d: layer_dev gave other bytes", variant);
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
                /* without act-order: GAR (the default) on half of the combinations,
                 * the paper's order on the other half */
                cfg.act_group_aware = cfg.desc_act || gi == 0 ? 0 : (bi + gi) & 1;
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
                          "bits %d group %d sym %d act %d gar %d static %d mse %d %s: results "
                          "differ across thread counts",
                          cfg.bits, cfg.group_size, cfg.sym, cfg.desc_act, cfg.act_group_aware,
                          cfg.static_groups,
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

/* The grid of README.md "The algorithm, as the reference fixes it", written out here independently for RTN. */
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

/* ------------------------------------------------------------------ */
/* The damp schedule (issue 14) and fp16 scales (issue 9)              */
/* ------------------------------------------------------------------ */

/* H = I (C, C) except H[7][7] = -a: H + lambda I is positive definite
 * exactly when lambda > a, lambda = damp * mean(diag H), mean = (C-1-a)/C.
 * So the Cholesky fails for every damp <= a / mean and succeeds at the
 * first one above: a picks where the schedule stops. */
static float *indefinite_h(int C, float a)
{
    float *H = calloc((size_t)C * C, sizeof(float));
    for (int i = 0; i < C; i++) H[i * C + i] = 1.0f;
    H[7 * C + 7] = -a;
    return H;
}

/* Solve W (R, C) = a small ramp with H, damp d0 and increment inc; the
 * status, the result (on success) and the message. */
static int damp_run(float a, float d0, float inc, gptq_layer_result *res)
{
    enum { R = 8, C = 32 };
    gptq_backend *be = open_cpu();
    float *H = indefinite_h(C, a), W[R * C];
    for (int i = 0; i < R * C; i++) W[i] = 0.01f * (float)((i * 7) % 13 - 6);
    gptq_quant_config cfg;
    gptq_quant_config_default(&cfg);
    cfg.group_size = -1;
    cfg.damp_percent = d0;
    cfg.damp_auto_increment = inc;
    int st = gptq_quantize_layer(be, W, R, C, H, &cfg, res);
    free(H);
    gptq_backend_close(be);
    return st;
}

/* The whole schedule on a Hessian that needs 60 retries: damp_k =
 * float(0.01 + k * 0.001) summed in double for k = 0..60, in order, and
 * the last one used. */
Test(gptq, damp_schedule_pinned)
{
    /* mean = (31 - 0.0673) / 32 = 0.96665: damp 0.069 gives lambda 0.06670 < a,
     * damp 0.070 gives 0.06767 > a (margins of 0.5%, far above float rounding) */
    gptq_layer_result r;
    cr_assert_eq(damp_run(0.0673f, 0.01f, 0.001f, &r), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(r.damp_retries, 60);
    float fsum = 0.01f;
    int float_differs = 0;
    for (int k = 0; k <= 60; k++) {
        const float want = (float)((double)0.01f + (double)k * (double)0.001f);
        cr_assert_eq(r.damps_tried[k], want, "damp %d: %.9g, want %.9g", k,
                     (double)r.damps_tried[k], (double)want);
        /* and the decimal meant: 0.01f and 0.001f are within 1e-9 of 0.01 and
         * 0.001, so 61 steps stay within 1e-7 of it, and float rounds 0.07
         * to within 4e-9 */
        cr_assert(fabs((double)r.damps_tried[k] - (0.01 + 0.001 * k)) < 2e-7, "damp %d: %.9g", k,
                  (double)r.damps_tried[k]);
        if (k > 0) fsum += 0.001f;
        float_differs |= fsum != want;
    }
    /* a float running sum would have tried other damps: this test tells */
    cr_assert(float_differs, "the float sum gives the same schedule: the test cannot see it");
    cr_assert_eq(r.damp_used, r.damps_tried[60]);
    cr_assert_eq(r.damps_tried[61], 0.0f, "nothing recorded past the last try");
    gptq_layer_result_free(&r);

    /* the defaults from damp 0.01 in steps of 0.01: 0.05 is the first above
     * a / mean = 0.045 (a = 0.0435, mean 0.9674) */
    cr_assert_eq(damp_run(0.0435f, 0.01f, 0.01f, &r), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(r.damp_retries, 4);
    const float want5[5] = {0.01f, 0.02f, (float)(3 * (double)0.01f), (float)(4 * (double)0.01f),
                            (float)(5 * (double)0.01f)};
    for (int k = 0; k < 5; k++) cr_assert_eq(r.damps_tried[k], want5[k], "damp %d", k);
    /* k = 0 and 1 as the float loop gave them (0.01f + 0.01f is exact) */
    cr_assert_eq(r.damps_tried[1], 0.01f + 0.01f);
    gptq_layer_result_free(&r);
}

/* The retries stop: at the bound, at damp_max, at an increment too small
 * to move lambda (1e-30 looped forever before), and when no damp can help;
 * each says why, fast. */
Test(gptq, damp_retries_stop_with_a_reason)
{
    gptq_layer_result r;
    const double t0 = gptq_now_seconds();
    /* needs damp > 0.5 / 0.953 = 0.52; 0.01 + 100 * 0.001 = 0.11 */
    cr_assert_eq(damp_run(0.5f, 0.01f, 0.001f, &r), GPTQ_ERR_NUMERIC);
    const char *e = gptq_last_error();
    cr_assert(strstr(e, "damp_percent 0.11 (100 retries from 0.01 in steps of 0.001") &&
                  strstr(e, "the most retries allowed"), "%s", e);
    cr_assert_eq(GPTQ_DAMP_MAX_RETRIES, 100);
    /* needs damp > 0.99 / 0.9378 = 1.056 > damp_max 1 */
    cr_assert_eq(damp_run(0.99f, 0.01f, 0.01f, &r), GPTQ_ERR_NUMERIC);
    e = gptq_last_error();
    cr_assert(strstr(e, "damp_percent 1 (99 retries") && strstr(e, "would pass damp_max"), "%s", e);
    cr_assert_eq(damp_run(0.0435f, 0.01f, 1e-30f, &r), GPTQ_ERR_NUMERIC);
    e = gptq_last_error();
    cr_assert(strstr(e, "(0 retries") && strstr(e, "too small to change lambda"), "%s", e);
    cr_assert_eq(damp_run(0.0435f, 0.01f, 0.0f, &r), GPTQ_ERR_NUMERIC);
    cr_assert(strstr(gptq_last_error(), "damp_auto_increment is 0"), "%s", gptq_last_error());
    cr_assert_eq(damp_run(100.0f, 0.01f, 0.01f, &r), GPTQ_ERR_NUMERIC); /* mean < 0 */
    e = gptq_last_error();
    cr_assert(strstr(e, "(0 retries") && strstr(e, "no damping can help"), "%s", e);
    /* 32 x 32 Cholesky factorizations: well under a second on any machine */
    cr_assert_lt(gptq_now_seconds() - t0, 10.0);
}

/* The interrupt flag stops the solve (the damp loop and the blocks). */
Test(gptq, interrupt_flag_stops_the_solve)
{
    enum { R = 8, C = 32 };
    gptq_backend *be = open_cpu();
    float *H = indefinite_h(C, 0.0f), W[R * C];
    for (int i = 0; i < R * C; i++) W[i] = 0.01f * (float)(i % 5);
    volatile sig_atomic_t flag = 1;
    gptq_quant_config cfg;
    gptq_quant_config_default(&cfg);
    cfg.group_size = -1;
    cfg.interrupt = &flag;
    gptq_layer_result r;
    cr_assert_eq(gptq_quantize_layer(be, W, R, C, H, &cfg, &r), GPTQ_ERR_INVALID);
    cr_assert(strstr(gptq_last_error(), "interrupted"), "%s", gptq_last_error());
    cfg.method = GPTQ_METHOD_RTN; /* no damping: the blocks see it */
    cr_assert_eq(gptq_quantize_layer(be, W, R, C, NULL, &cfg, &r), GPTQ_ERR_INVALID);
    cr_assert(strstr(gptq_last_error(), "interrupted"), "%s", gptq_last_error());
    flag = 0;
    cr_assert_eq(gptq_quantize_layer(be, W, R, C, NULL, &cfg, &r), GPTQ_OK, "%s",
                 gptq_last_error());
    gptq_layer_result_free(&r);
    free(H);
    gptq_backend_close(be);
}

/* Weights of magnitude `mag`: W (R, C) and a Hessian from correlated X. */
static void small_layer(int R, int C, double mag, float *W, float **H, gptq_backend *be)
{
    float *X = malloc(sizeof(float) * 256 * C);
    make_layer(R, C, 256, 11, W, X);
    for (int i = 0; i < R * C; i++) W[i] = (float)((double)W[i] * mag / 0.02);
    *H = hessian_of(be, X, 256, C);
    free(X);
}

/* Scales that round to 0 in fp16 (weights ~1e-40, f32 subnormals): an
 * error, from the solve and from gptq_pack, never all-zero scales. */
Test(gptq, fp16_zero_scale_is_an_error)
{
    enum { R = 16, C = 64 };
    gptq_backend *be = open_cpu();
    float W[R * C], *H;
    small_layer(R, C, 1e-40, W, &H, be);
    gptq_quant_config cfg;
    gptq_quant_config_default(&cfg);
    cfg.group_size = 32;
    gptq_layer_result r;
    cr_assert_eq(gptq_quantize_layer(be, W, R, C, H, &cfg, &r), GPTQ_ERR_NUMERIC);
    cr_assert(strstr(gptq_last_error(), "rounds to 0 in fp16") &&
                  strstr(gptq_last_error(), "group 0, row 0"), "%s", gptq_last_error());
    cfg.method = GPTQ_METHOD_RTN;
    cr_assert_eq(gptq_quantize_layer(be, W, R, C, NULL, &cfg, &r), GPTQ_ERR_NUMERIC);
    /* gptq_pack on a result whose one scale is too small for fp16 */
    for (int i = 0; i < R * C; i++) W[i] *= 1e38f;
    cr_assert_eq(gptq_quantize_layer(be, W, R, C, NULL, &cfg, &r), GPTQ_OK, "%s",
                 gptq_last_error());
    r.scales[1 * R + 3] = 2e-8f; /* below half the smallest fp16 step, 5.96e-8 */
    gptq_packed p;
    cr_assert_eq(gptq_pack(&r, GPTQ_FORMAT_V2, &p), GPTQ_ERR_NUMERIC);
    cr_assert(strstr(gptq_last_error(), "gptq_pack: scale 2e-08 at group 1, row 3 rounds to 0"),
              "%s", gptq_last_error());
    cr_assert_null(p.qweight, "nothing half-packed");
    gptq_layer_result_free(&r);
    free(H);
    gptq_backend_close(be);
}

/* ||X D^T||^2 / ||X W^T||^2 through H in double, D = W - s * (q - z) with
 * s the f32 scales or their fp16 roundings. */
static double rel_err_here(const gptq_layer_result *r, const float *W, const float *H, int fp16)
{
    const int64_t R = r->rows, C = r->cols;
    double num = 0.0, den = 0.0;
    double *d = malloc(sizeof(double) * C);
    for (int64_t i = 0; i < R; i++) {
        for (int64_t k = 0; k < C; k++) {
            const int64_t g = r->g_idx[k];
            float s = r->scales[g * R + i];
            if (fp16) s = gptq_f16_to_f32(gptq_f32_to_f16(s));
            d[k] = (double)W[i * C + k] - (double)s * ((double)r->codes[i * C + k] - r->zeros[g * R + i]);
        }
        for (int64_t a = 0; a < C; a++)
            for (int64_t b = 0; b < C; b++) {
                num += d[a] * H[a * C + b] * d[b];
                den += (double)W[i * C + a] * H[a * C + b] * W[i * C + b];
            }
    }
    free(d);
    return sqrt(num / den);
}

/* Weights ~1e-6 make every scale an fp16 subnormal (~1e-7, a step of
 * 6e-8): counted, their rounding measured, and the output error reported
 * is that of the fp16-scale weight the checkpoint holds. */
Test(gptq, fp16_subnormal_scales_reported)
{
    enum { R = 16, C = 64 };
    gptq_backend *be = open_cpu();
    float W[R * C], *H;
    small_layer(R, C, 1e-6, W, &H, be);
    gptq_quant_config cfg;
    gptq_quant_config_default(&cfg);
    cfg.group_size = 32;
    for (int m = 0; m < 2; m++) {
        cfg.method = m ? GPTQ_METHOD_RTN : GPTQ_METHOD_GPTQ;
        gptq_layer_result r;
        cr_assert_eq(gptq_quantize_layer(be, W, R, C, H, &cfg, &r), GPTQ_OK, "%s",
                     gptq_last_error());
        int64_t nsub = 0;
        double maxrel = 0.0;
        for (int64_t i = 0; i < r.ngroups * R; i++) {
            const double s = r.scales[i], s16 = gptq_f16_to_f32(gptq_f32_to_f16(r.scales[i]));
            if (fabs(s) < 6.103515625e-05) { /* 2^-14, the smallest normal fp16 */
                nsub++;
                if (fabs(s16 - s) / fabs(s) > maxrel) maxrel = fabs(s16 - s) / fabs(s);
            }
        }
        cr_assert_eq(nsub, r.ngroups * R, "every scale is subnormal at this size");
        cr_assert_eq(r.scales_subnormal, nsub);
        cr_assert_eq(r.scales_fp16_rel_err, maxrel);
        cr_assert_gt(maxrel, 0.01, "a step of 6e-8 on scales ~1e-7: several %% off");
        const double e16 = rel_err_here(&r, W, H, 1), e32 = rel_err_here(&r, W, H, 0);
        /* the library's quadratic forms go through an f32 GEMM of (C, C) with
         * C = 64: relative rounding ~1e-6, so 1e-4 is a wide margin; the
         * subnormal rounding moves the error far more than that */
        cr_assert(fabs(r.out_rel_err - e16) <= 1e-4 * e16, "%s: out_rel_err %.9g, here %.9g",
                  m ? "rtn" : "gptq", r.out_rel_err, e16);
        cr_assert(fabs(r.out_rel_err_f32 - e32) <= 1e-4 * e32, "%s: f32 error %.9g, here %.9g",
                  m ? "rtn" : "gptq", r.out_rel_err_f32, e32);
        /* ten times that tolerance: the checks above tell the two apart */
        cr_assert(fabs(e16 - e32) > 1e-3 * e32, "the fp16 rounding must show: %.9g vs %.9g", e16,
                  e32);
        gptq_layer_result_free(&r);
    }
    /* ordinary weights: no subnormal scale, the one error */
    free(H);
    small_layer(R, C, 0.02, W, &H, be);
    gptq_layer_result r;
    cfg.method = GPTQ_METHOD_GPTQ;
    cr_assert_eq(gptq_quantize_layer(be, W, R, C, H, &cfg, &r), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(r.scales_subnormal, 0);
    cr_assert_eq(r.scales_fp16_rel_err, 0.0);
    cr_assert_eq(memcmp(&r.out_rel_err, &r.out_rel_err_f32, sizeof(double)), 0);
    gptq_layer_result_free(&r);
    free(H);
    gptq_backend_close(be);
}

/* ------------------------------------------------------------------ */
/* gar (issue 13): group-aware act-order (act_group_aware)             */
/* ------------------------------------------------------------------ */

/* GAR's order written out from its rules (src/gptq.h, README "Algorithm"):
 * full groups by their largest d, descending, ties by group index; inside
 * each, columns by d descending, ties by column index; the C % G tail
 * last in column order. Selection by scans, not the library's sort. */
static void gar_expected(const float *d, int C, int G, int32_t *perm)
{
    const int nfull = C / G;
    int used_g[64] = {0}, n = 0;
    for (int p = 0; p < nfull; p++) {
        int best = -1;
        float bmax = 0.0f;
        for (int g = 0; g < nfull; g++) {
            if (used_g[g]) continue;
            float m = d[g * G];
            for (int k = g * G; k < (g + 1) * G; k++) m = d[k] > m ? d[k] : m;
            if (best < 0 || m > bmax) best = g, bmax = m;
        }
        used_g[best] = 1;
        int used_k[64] = {0};
        for (int i = 0; i < G; i++) {
            int bk = -1;
            for (int k = 0; k < G; k++)
                if (!used_k[k] && (bk < 0 || d[best * G + k] > d[best * G + bk])) bk = k;
            used_k[bk] = 1;
            perm[n++] = best * G + bk;
        }
    }
    for (int k = nfull * G; k < C; k++) perm[n++] = k;
}

/* A diagonal H with chosen values: group 1 and 2 tie at their largest
 * diag(H) (9), group 1 holds a tie inside (5, 5), the tail of 8 columns
 * has the largest values of all and still goes last. Then perm is GAR's
 * order, g_idx = k / G, and with no error feedback (H diagonal) the codes,
 * grids and dequantized weight are those of the paper's order: each grid
 * is kept as its own group's. */
Test(gptq, gar_order_and_grids)
{
    enum { R = 16, G = 16, C = 4 * G + 8 };
    gptq_backend *be = open_cpu();
    float *W = malloc(sizeof(float) * R * C), *X = malloc(sizeof(float) * 4 * C);
    float *H = calloc((size_t)C * C, sizeof(float)), d[C];
    make_layer(R, C, 4, 41, W, X);
    g_rng = 43;
    for (int k = 0; k < C; k++) d[k] = (float)(1.0 + urand());
    d[0 * G + 11] = 3.0f;
    d[1 * G + 2] = 9.0f;
    d[1 * G + 5] = d[1 * G + 9] = 5.0f;
    d[2 * G + 14] = 9.0f;
    d[3 * G + 0] = 5.0f;
    for (int k = 4 * G; k < C; k++) d[k] = 100.0f + (float)k;
    for (int k = 0; k < C; k++) H[k * C + k] = d[k];
    int32_t want[C];
    gar_expected(d, C, G, want);
    cr_assert_eq(want[0], 1 * G + 2, "the constructed order starts with group 1's 9");
    cr_assert_eq(want[G], 2 * G + 14, "group 2 (tied at 9) second");

    gptq_quant_config cfg;
    gptq_quant_config_default(&cfg);
    cfg.group_size = G;
    cfg.block_size = G; /* blocks the groups tile, the tail a short last one */
    cfg.sym = 0;
    cr_assert_eq(gptq_quant_config_act_group_aware(&cfg), 1, "GAR is the default");
    gptq_layer_result a, p;
    cr_assert_eq(gptq_quantize_layer(be, W, R, C, H, &cfg, &a), GPTQ_OK, "%s", gptq_last_error());
    for (int j = 0; j < C; j++)
        cr_assert_eq(a.perm[j], want[j], "perm[%d] = %d, GAR's rules give %d", j, a.perm[j],
                     want[j]);
    for (int k = 0; k < C; k++) cr_assert_eq(a.g_idx[k], k / G, "g_idx[%d]", k);
    cfg.act_group_aware = 0;
    cr_assert_eq(gptq_quantize_layer(be, W, R, C, H, &cfg, &p), GPTQ_OK, "%s", gptq_last_error());
    for (int j = 0; j < C; j++) cr_assert_eq(p.perm[j], j, "paper order: the identity");
    cr_assert_eq(memcmp(a.codes, p.codes, R * C), 0, "codes differ from the paper order's");
    cr_assert_eq(memcmp(a.scales, p.scales, sizeof(float) * R * a.ngroups), 0,
                 "a grid is kept in another group's slot");
    cr_assert_eq(memcmp(a.zeros, p.zeros, sizeof(int32_t) * R * a.ngroups), 0);
    cr_assert_eq(memcmp(a.dequant, p.dequant, sizeof(float) * R * C), 0);
    gptq_layer_result_free(&a);
    gptq_layer_result_free(&p);
    free(W);
    free(X);
    free(H);
    gptq_backend_close(be);
}

/* One group per layer (C = G): GAR's one group sorted by diag(H) is
 * act-order, and both keep g_idx 0: the same bytes, on a correlated H
 * (error feedback in full). With several groups the two differ. */
Test(gptq, gar_single_group_is_act_order)
{
    enum { R = 32, C = 128, N = 256 };
    gptq_backend *be = open_cpu();
    float *W = malloc(sizeof(float) * R * C), *X = malloc(sizeof(float) * N * C);
    make_layer(R, C, N, 47, W, X);
    float *H = hessian_of(be, X, N, C);
    gptq_quant_config cfg;
    gptq_quant_config_default(&cfg);
    cfg.group_size = C;
    gptq_layer_result g, a;
    cr_assert_eq(gptq_quantize_layer(be, W, R, C, H, &cfg, &g), GPTQ_OK, "%s", gptq_last_error());
    cfg.desc_act = 1;
    cr_assert_eq(gptq_quantize_layer(be, W, R, C, H, &cfg, &a), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(memcmp(g.perm, a.perm, sizeof(int32_t) * C), 0);
    cr_assert(same_result(&g, &a), "GAR with one group differs from act-order");
    gptq_layer_result_free(&g);
    gptq_layer_result_free(&a);
    cfg.group_size = 32;
    cr_assert_eq(gptq_quantize_layer(be, W, R, C, H, &cfg, &a), GPTQ_OK);
    cfg.desc_act = 0;
    cr_assert_eq(gptq_quantize_layer(be, W, R, C, H, &cfg, &g), GPTQ_OK);
    cr_assert_neq(memcmp(g.perm, a.perm, sizeof(int32_t) * C), 0);
    for (int k = 0; k < C; k++) cr_assert_eq(g.g_idx[k], k / 32);
    gptq_layer_result_free(&g);
    gptq_layer_result_free(&a);
    free(W);
    free(X);
    free(H);
    gptq_backend_close(be);
}

/* The default follows desc_act, group_size and method as GPTQModel's does;
 * asked for explicitly, it is refused where it cannot apply. */
Test(gptq, gar_default_and_refusals)
{
    enum { R = 8, C = 64 };
    gptq_quant_config c;
    gptq_quant_config_default(&c);
    cr_assert_eq(c.act_group_aware, -1);
    cr_assert_eq(gptq_quant_config_act_group_aware(&c), 1);
    c.desc_act = 1;
    cr_assert_eq(gptq_quant_config_act_group_aware(&c), 0, "desc_act turns the default off");
    c.desc_act = 0;
    c.group_size = -1;
    cr_assert_eq(gptq_quant_config_act_group_aware(&c), 0, "no groups: off");
    c.group_size = 32;
    c.method = GPTQ_METHOD_RTN;
    cr_assert_eq(gptq_quant_config_act_group_aware(&c), 0, "RTN has no Hessian: off");
    c.act_group_aware = 1;
    cr_assert_eq(gptq_quant_config_act_group_aware(&c), 0, "RTN: off even when asked");
    c.method = GPTQ_METHOD_GPTQ;
    cr_assert_eq(gptq_quant_config_act_group_aware(&c), 1);
    c.act_group_aware = 0;
    cr_assert_eq(gptq_quant_config_act_group_aware(&c), 0);

    gptq_quant_config_default(&c);
    c.act_group_aware = 1;
    c.desc_act = 1;
    cr_assert_eq(gptq_quant_config_check(&c, R, C), GPTQ_ERR_INVALID);
    cr_assert(strstr(gptq_last_error(), "--act-group-aware and --desc-act"), "%s",
              gptq_last_error());
    c.desc_act = 0;
    c.group_size = -1;
    cr_assert_eq(gptq_quant_config_check(&c, R, C), GPTQ_ERR_INVALID);
    cr_assert(strstr(gptq_last_error(), "needs a --group-size"), "%s", gptq_last_error());
    c.group_size = 32;
    cr_assert_eq(gptq_quant_config_check(&c, R, C), GPTQ_OK);
    c.act_group_aware = 2;
    cr_assert_eq(gptq_quant_config_check(&c, R, C), GPTQ_ERR_INVALID);
    cr_assert(strstr(gptq_last_error(), "act_group_aware 2"), "%s", gptq_last_error());
    /* the default with desc_act or a row group is no conflict */
    gptq_quant_config_default(&c);
    c.desc_act = 1;
    cr_assert_eq(gptq_quant_config_check(&c, R, C), GPTQ_OK);
    c.desc_act = 0;
    c.group_size = -1;
    cr_assert_eq(gptq_quant_config_check(&c, R, C), GPTQ_OK);
}
