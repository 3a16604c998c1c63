/*
 * test_exact.c — rounding on exact ties: round half to even everywhere.
 *
 * The quantizer rounds w/s and the zero point -xmin/s with rintf (round half
 * to even, as torch.round, which the GPTQ reference code and every checkpoint
 * made with it use). Random weights almost never land on k + 1/2, so a
 * change to roundf (half away from zero) passes every other test. Here the
 * weights are built so that the ties are exact in float:
 *   - scales are powers of two and every weight a multiple of s/4, so w/s
 *     and -xmin/s are computed without rounding error;
 *   - each group holds ties of both signs with an even floor (+-0.5, +-2.5,
 *     where half-even and half-away differ) and with an odd one (+-1.5, where
 *     they agree), plus quarter values that are not ties;
 *   - the asymmetric range is [-(z0 + 1/2) s, (maxq - z0 - 1/2) s] with z0
 *     even, so the zero point itself is a tie (half-even z0, half-away
 *     z0 + 1); the symmetric one [-maxq s/2, maxq s/2].
 * The expected values come from the definition written here with floor()
 * (half_even), not with rintf; each test also counts the ties on which
 * half-even and half-away give different codes and fails if there are none,
 * so the construction cannot silently stop testing anything.
 *
 * Paths: RTN and GPTQ through gptq_quantize_layer (GPTQ with a diagonal
 * Hessian has no error feedback, so the solve must give the same codes; with
 * act-order and static groups too), and the CPU backend's gptq_block op with
 * a hand-made exact U, where the error feedback itself lands on a tie (of a
 * code, and of a zero point computed from the updated weights).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gptq.h"
#include "internal.h"

static gptq_backend *open_cpu(void)
{
    gptq_backend *be = NULL;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK, "%s", gptq_last_error());
    return be;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    cr_assert(p, "out of memory");
    return p;
}

/* ------------------------------------------------------------------ */
/* The definition                                                      */
/* ------------------------------------------------------------------ */

/* Round half to even, from floor alone. */
static double half_even(double x)
{
    const double f = floor(x), d = x - f;
    if (d < 0.5) return f;
    if (d > 0.5) return f + 1.0;
    return fmod(f, 2.0) == 0.0 ? f : f + 1.0;
}

/* Round half away from zero: what the mutant would do (only to count the
 * ties that tell the two apart). */
static double half_away(double x) { return x < 0.0 ? -floor(-x + 0.5) : floor(x + 0.5); }

static double clampq(double q, int maxq) { return q < 0.0 ? 0.0 : q > maxq ? maxq : q; }

Test(exact, half_even_itself)
{
    const double x[] = {0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 3.25, -3.75, 126.5, 127.5, 0.0};
    const double want[] = {0.0, 0.0, 2.0, -2.0, 2.0, -2.0, 3.0, -4.0, 126.0, 128.0, 0.0};
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
        cr_assert_eq(half_even(x[i]), want[i], "half_even(%g) = %g", x[i], half_even(x[i]));
}

/* The grid of one group by the definition (README "Algorithm"): asym over
 * [min(0, min w), max(0, max w)], scale (xmax - xmin)/maxq, zero
 * half_even(-xmin/scale); sym over [-m, m], zero (maxq + 1)/2; an all-zero
 * group over [-1, 1]. *ztie counts
 * the zero points that are discriminating ties. */
static void ref_grid(const float *w, int64_t g, int bits, int sym, float *s, float *z, int *ztie)
{
    const float maxq = (float)((1 << bits) - 1);
    float xmin = 0.0f, xmax = 0.0f;
    for (int64_t k = 0; k < g; k++) {
        xmin = w[k] < xmin ? w[k] : xmin;
        xmax = w[k] > xmax ? w[k] : xmax;
    }
    if (sym) {
        xmax = -xmin > xmax ? -xmin : xmax;
        xmin = -xmax;
    }
    if (xmin == 0.0f && xmax == 0.0f) { /* no range: [-1, 1] */
        xmin = -1.0f;
        xmax = 1.0f;
    }
    *s = (xmax - xmin) / maxq;
    if (sym) {
        *z = (maxq + 1.0f) / 2.0f;
        return;
    }
    const float x = -xmin / *s;
    *z = (float)half_even(x);
    if (half_away(x) != half_even(x)) (*ztie)++;
}

/* The code of w on grid (s, z); *qtie counts discriminating ties. */
static int ref_code(float w, float s, float z, int bits, int *qtie)
{
    const int maxq = (1 << bits) - 1;
    const float x = w / s;
    const double q = clampq(half_even(x) + z, maxq);
    if (clampq(half_away(x) + z, maxq) != q) (*qtie)++;
    return (int)q;
}

/* ------------------------------------------------------------------ */
/* Tie groups                                                          */
/* ------------------------------------------------------------------ */

/* g weights (g >= 4) whose grid is exactly scale s (a power of two), laid
 * out as the header says: the two ends of the range first, then ties
 * +-(m + 1/2) s by increasing m inside the range alternating with quarter
 * values +-(m + 1/4) s; rot rotates the order so ends are not always first. */
static void tie_group(float *w, int64_t g, int bits, int sym, float s, int64_t rot)
{
    const int maxq = (1 << bits) - 1;
    const int z0 = (maxq / 2) & ~1; /* even: 0, 2, 6, 126 for 2, 3, 4, 8 bits */
    const double lo = sym ? -maxq / 2.0 : -(z0 + 0.5), hi = sym ? maxq / 2.0 : maxq - z0 - 0.5;
    float *v = xmalloc(sizeof(float) * (size_t)g);
    v[0] = (float)(lo * s);
    v[1] = (float)(hi * s);
    int64_t n = 2, m = 0, sign = 1, quarter = 0;
    while (n < g) {
        double t = quarter ? sign * (m + 0.25) : sign * (m + 0.5);
        if (t >= lo && t <= hi) v[n++] = (float)(t * s);
        /* next: +tie, -tie, +quarter, -quarter, then m + 1 (restart at
         * m = 0 when the range is exhausted, as in the 2-bit grid) */
        if (sign == 1) {
            sign = -1;
        } else {
            sign = 1;
            if (quarter) {
                quarter = 0;
                m = (m + 1.5 > hi && -(m + 1.5) < lo) ? 0 : m + 1;
            } else {
                quarter = 1;
            }
        }
    }
    for (int64_t k = 0; k < g; k++) w[k] = v[(k + rot) % g];
    free(v);
}

/* R rows of C columns in groups of G; row r uses bits, sym, and a scale
 * cycling over 1, 1/8, 4, 2^-7 per (row, group). */
static void tie_layer(float *W, int64_t R, int64_t C, int64_t G, int bits, int sym)
{
    static const float scales[] = {1.0f, 0.125f, 4.0f, 0.0078125f};
    for (int64_t r = 0; r < R; r++)
        for (int64_t g0 = 0; g0 < C; g0 += G)
            tie_group(W + r * C + g0, G, bits, sym, scales[(r + g0 / G) % 4], r + g0 / G);
}

/* Check a layer result against the definition applied to W group by group
 * (column order); returns the discriminating ties seen (codes + zeros). */
static int check_result(const float *W, int64_t R, int64_t C, int64_t G, int bits, int sym,
                        const gptq_layer_result *res, const char *what)
{
    int qtie = 0, ztie = 0;
    cr_assert_eq(res->ngroups, C / G, "%s: %lld groups", what, (long long)res->ngroups);
    for (int64_t r = 0; r < R; r++)
        for (int64_t g = 0; g < C / G; g++) {
            float s, z;
            ref_grid(W + r * C + g * G, G, bits, sym, &s, &z, &ztie);
            cr_assert_eq(res->scales[g * R + r], s, "%s: row %lld group %lld: scale %a, want %a",
                         what, (long long)r, (long long)g, (double)res->scales[g * R + r],
                         (double)s);
            cr_assert_eq(res->zeros[g * R + r], (int32_t)z,
                         "%s: row %lld group %lld: zero %d, want %d (round half to even)", what,
                         (long long)r, (long long)g, res->zeros[g * R + r], (int)z);
            for (int64_t k = g * G; k < (g + 1) * G; k++) {
                const int q = ref_code(W[r * C + k], s, z, bits, &qtie);
                cr_assert_eq(res->codes[r * C + k], q,
                             "%s: row %lld col %lld: w/s = %g: code %d, want %d (half to even)",
                             what, (long long)r, (long long)k, (double)(W[r * C + k] / s),
                             res->codes[r * C + k], q);
                cr_assert_eq(res->dequant[r * C + k], s * ((float)q - z),
                             "%s: row %lld col %lld: dequant", what, (long long)r, (long long)k);
            }
        }
    cr_assert_gt(qtie, 0, "%s: the construction made no discriminating code tie", what);
    if (!sym) cr_assert_gt(ztie, 0, "%s: the construction made no zero point tie", what);
    return qtie + ztie;
}

/* ------------------------------------------------------------------ */
/* gptq_quantize_layer: RTN and GPTQ with a diagonal Hessian            */
/* ------------------------------------------------------------------ */

enum { T_R = 12, T_C = 64 };

/* H = diag(d), d_j = 1 + j/C: distinct, so act-order really permutes
 * (descending diag = reversed columns) */
static float *diag_hessian(int64_t C)
{
    float *H = calloc((size_t)(C * C), sizeof(float));
    cr_assert(H);
    for (int64_t j = 0; j < C; j++) H[j * C + j] = 1.0f + (float)j / (float)C;
    return H;
}

static void run_layer(int bits, int sym, int group, gptq_method method, int desc_act,
                      int static_groups, int block)
{
    const int64_t R = T_R, C = T_C, G = group == -1 ? C : group;
    gptq_backend *be = open_cpu();
    float *W = xmalloc(sizeof(float) * R * C);
    tie_layer(W, R, C, G, bits, sym);
    float *H = method == GPTQ_METHOD_GPTQ ? diag_hessian(C) : NULL;
    gptq_quant_config q;
    gptq_quant_config_default(&q);
    q.bits = bits;
    q.sym = sym;
    q.group_size = group;
    q.method = method;
    q.desc_act = desc_act;
    q.static_groups = static_groups;
    q.block_size = block;
    gptq_layer_result res;
    cr_assert_eq(gptq_quantize_layer(be, W, R, C, H, &q, &res), GPTQ_OK, "%s",
                 gptq_last_error());
    char what[96];
    snprintf(what, sizeof what, "%s w%d %s g%d%s%s b%d",
             method == GPTQ_METHOD_RTN ? "rtn" : "gptq", bits, sym ? "sym" : "asym", group,
             desc_act ? " act-order" : "", static_groups ? " static" : "", block);
    check_result(W, R, C, G, bits, sym, &res, what);
    if (desc_act) /* the order really changed: descending diag reverses it */
        cr_assert_eq(res.perm[0], C - 1, "%s: perm[0] = %d", what, res.perm[0]);
    gptq_layer_result_free(&res);
    free(H);
    free(W);
    gptq_backend_close(be);
}

Test(exact, rtn_ties_every_grid)
{
    const int bits[] = {2, 3, 4, 8};
    for (int b = 0; b < 4; b++)
        for (int sym = 0; sym < 2; sym++) {
            run_layer(bits[b], sym, -1, GPTQ_METHOD_RTN, 0, 0, 128);
            run_layer(bits[b], sym, 16, GPTQ_METHOD_RTN, 0, 0, 128);
        }
}

/* The grid inside the block (group starts, from the in-block W), and the
 * code of every column, with blocks smaller and larger than the group. */
Test(exact, gptq_diagonal_hessian_ties_every_grid)
{
    const int bits[] = {2, 3, 4, 8};
    for (int b = 0; b < 4; b++)
        for (int sym = 0; sym < 2; sym++) {
            run_layer(bits[b], sym, -1, GPTQ_METHOD_GPTQ, 0, 0, 128);
            run_layer(bits[b], sym, 16, GPTQ_METHOD_GPTQ, 0, 0, 32);
            run_layer(bits[b], sym, 32, GPTQ_METHOD_GPTQ, 0, 0, 16);
        }
}

/* Act-order (one group per row: the grid does not depend on the order)
 * and static groups (grids from quant_grid before the solve). */
Test(exact, gptq_act_order_and_static_groups_ties)
{
    for (int sym = 0; sym < 2; sym++) {
        run_layer(4, sym, -1, GPTQ_METHOD_GPTQ, 1, 0, 16);
        run_layer(3, sym, 16, GPTQ_METHOD_GPTQ, 1, 1, 32);
        run_layer(8, sym, 16, GPTQ_METHOD_GPTQ, 0, 1, 128);
    }
}

/* The mse grid search on tie groups: with 16 steps and shrinks down to 1/2,
 * every candidate f = 1 - i/16 is exact, so are f*xmin, f*xmax and the
 * candidate scale f*s, and each candidate zero -f*xmin/(f*s) = z0 + 1/2 is
 * a tie again: whatever shrink the search keeps, its zero must be z0 and its
 * scale one of the candidates, and the codes follow from those. */
Test(exact, mse_search_zero_ties)
{
    const int64_t R = T_R, C = T_C, G = 16;
    gptq_backend *be = open_cpu();
    float *W = xmalloc(sizeof(float) * R * C);
    for (int b = 0; b < 3; b++) {
        const int bits = b == 0 ? 3 : b == 1 ? 4 : 8;
        const int maxq = (1 << bits) - 1, z0 = (maxq / 2) & ~1;
        tie_layer(W, R, C, G, bits, 0);
        gptq_quant_config q;
        gptq_quant_config_default(&q);
        q.bits = bits;
        q.sym = 0;
        q.group_size = (int)G;
        q.method = GPTQ_METHOD_RTN;
        q.mse = 1;
        q.mse_grid = 16;
        q.mse_maxshrink = 0.5f;
        gptq_layer_result res;
        cr_assert_eq(gptq_quantize_layer(be, W, R, C, NULL, &q, &res), GPTQ_OK, "%s",
                     gptq_last_error());
        int qtie = 0, shrunk = 0;
        for (int64_t r = 0; r < R; r++)
            for (int64_t g = 0; g < C / G; g++) {
                float s, z;
                int zt = 0;
                ref_grid(W + r * C + g * G, G, bits, 0, &s, &z, &zt);
                const float s1 = res.scales[g * R + r];
                int cand = 0;
                for (int i = 0; i < 8 && !cand; i++)
                    cand = s1 == (1.0f - (float)i / 16.0f) * s;
                cr_assert(cand, "w%d row %lld group %lld: scale %a is no candidate of %a", bits,
                          (long long)r, (long long)g, (double)s1, (double)s);
                shrunk += s1 != s;
                cr_assert_eq(res.zeros[g * R + r], z0,
                             "w%d row %lld group %lld: zero %d, want %d (a tie at every shrink)",
                             bits, (long long)r, (long long)g, res.zeros[g * R + r], z0);
                for (int64_t k = g * G; k < (g + 1) * G; k++) {
                    const int c = ref_code(W[r * C + k], s1, (float)z0, bits, &qtie);
                    cr_assert_eq(res.codes[r * C + k], c, "w%d row %lld col %lld: code %d, want %d",
                                 bits, (long long)r, (long long)k, res.codes[r * C + k], c);
                }
            }
        cr_log_info("w%d mse: %d of %d grids shrunk, %d discriminating code ties", bits, shrunk,
                    (int)(R * (C / G)), qtie);
        gptq_layer_result_free(&res);
    }
    free(W);
    gptq_backend_close(be);
}

/* A group of zeros has no range: it gets [-1, 1], scale 2/maxq (in f32, so
 * the asym zero half_even(1/f32(2/15)) = half_even(7.4999996) is 7 for 4
 * bits, no tie; check_result takes it from the same definition) and every
 * code is the zero. RTN and GPTQ (diagonal H), asym and sym. */
Test(exact, all_zero_group_grid)
{
    const int64_t R = 4, C = 32, G = 16;
    gptq_backend *be = open_cpu();
    float *W = xmalloc(sizeof(float) * R * C), *H = diag_hessian(C);
    for (int bits = 2; bits <= 8; bits *= 2)
        for (int sym = 0; sym < 2; sym++)
            for (int m = 0; m < 2; m++) {
                tie_layer(W, R, C, G, bits, sym);
                for (int64_t r = 0; r < R; r++)
                    memset(W + r * C + (r % 2) * G, 0, sizeof(float) * (size_t)G);
                gptq_quant_config q;
                gptq_quant_config_default(&q);
                q.bits = bits;
                q.sym = sym;
                q.group_size = (int)G;
                q.method = m ? GPTQ_METHOD_GPTQ : GPTQ_METHOD_RTN;
                gptq_layer_result res;
                cr_assert_eq(gptq_quantize_layer(be, W, R, C, m ? H : NULL, &q, &res), GPTQ_OK,
                             "%s", gptq_last_error());
                const float maxq = (float)((1 << bits) - 1);
                for (int64_t r = 0; r < R; r++) {
                    const int64_t g = r % 2;
                    cr_assert_eq(res.scales[g * R + r], 2.0f / maxq,
                                 "w%d sym %d %s: all-zero group: scale %a, want 2/maxq", bits,
                                 sym, m ? "gptq" : "rtn", (double)res.scales[g * R + r]);
                    for (int64_t k = g * G; k < (g + 1) * G; k++)
                        cr_assert_eq(res.codes[r * C + k], res.zeros[g * R + r]);
                }
                check_result(W, R, C, G, bits, sym, &res, "all-zero groups");
                gptq_layer_result_free(&res);
            }
    free(H);
    free(W);
    gptq_backend_close(be);
}

/* Spelled out once, so a reader sees what "half to even" means here: 4-bit
 * asym, range [-6.5, 8.5] (scale 1): the zero is 6, not 7; w = 2.5 gives
 * code 2 + 6 = 8, w = -2.5 gives -2 + 6 = 4, w = 0.5 gives 6, w = -0.5 gives
 * 6, w = 1.5 gives 8 (odd floor: both rules agree). */
Test(exact, rtn_spelled_out)
{
    gptq_backend *be = open_cpu();
    float W[16] = {-6.5f, 8.5f, 2.5f, -2.5f, 0.5f, -0.5f, 1.5f, -1.5f,
                   4.5f,  -4.5f, 0.25f, 3.0f, 0.0f, 7.0f, -6.0f, 8.0f};
    const uint8_t want[16] = {0, 14, 8, 4, 6, 6, 8, 4, 10, 2, 6, 9, 6, 13, 0, 14};
    gptq_quant_config q;
    gptq_quant_config_default(&q);
    q.bits = 4;
    q.sym = 0;
    q.group_size = -1;
    q.method = GPTQ_METHOD_RTN;
    gptq_layer_result res;
    cr_assert_eq(gptq_quantize_layer(be, W, 1, 16, NULL, &q, &res), GPTQ_OK, "%s",
                 gptq_last_error());
    cr_assert_eq(res.scales[0], 1.0f);
    cr_assert_eq(res.zeros[0], 6, "zero %d: -xmin/s = 6.5 rounds half to even, to 6",
                 res.zeros[0]);
    for (int k = 0; k < 16; k++)
        cr_assert_eq(res.codes[k], want[k], "w = %g: code %d, want %d", (double)W[k],
                     res.codes[k], want[k]);
    gptq_layer_result_free(&res);
    gptq_backend_close(be);
}

/* ------------------------------------------------------------------ */
/* The CPU backend's gptq_block with an exact U                        */
/* ------------------------------------------------------------------ */

static gptq_buf *dev_from(gptq_backend *be, const void *src, size_t n)
{
    gptq_buf *b = NULL;
    cr_assert_eq(gptq_be_alloc(be, n, &b, "test buffer"), GPTQ_OK, "%s", gptq_last_error());
    if (src) cr_assert_eq(gptq_be_upload(be, b, 0, src, n), GPTQ_OK, "%s", gptq_last_error());
    return b;
}

/* The block by the definition, in float as the reference computes it:
 * column by column, a group's grid from the updated weights at its start
 * (unless given), code, error e = (w - s(q - z))/U_jj fed forward to the
 * block's later columns through row j of U. */
static void ref_block(float *W, int64_t R, int64_t C, const float *U, int64_t G, int grid_given,
                      int bits, int sym, float *S, float *Z, uint8_t *codes, int *ties)
{
    for (int64_t r = 0; r < R; r++) {
        float *w = W + r * C;
        for (int64_t j = 0; j < C; j++) {
            const int64_t g = j / G;
            if (!grid_given && j % G == 0)
                ref_grid(w + j, G, bits, sym, &S[g * R + r], &Z[g * R + r], ties);
            const float s = S[g * R + r], z = Z[g * R + r];
            const int q = ref_code(w[j], s, z, bits, ties);
            codes[r * C + j] = (uint8_t)q;
            const float e = (w[j] - s * ((float)q - z)) / U[j * C + j];
            for (int64_t k = j + 1; k < C; k++) w[k] -= e * U[j * C + k];
        }
    }
}

/* One block [0, C) through the CPU backend's op; returns codes, S, Z. */
static void cpu_block(gptq_backend *be, const float *W, int64_t R, int64_t C, const float *U,
                      int64_t G, int grid_given, int bits, int sym, float *S, float *Z,
                      uint8_t *codes)
{
    const int64_t ng = C / G;
    int32_t *gidx = xmalloc(sizeof(int32_t) * (size_t)C);
    for (int64_t j = 0; j < C; j++) gidx[j] = (int32_t)(j / G);
    gptq_buf *w = dev_from(be, W, sizeof(float) * (size_t)(R * C));
    gptq_buf *u = dev_from(be, U, sizeof(float) * (size_t)(C * C));
    gptq_buf *gi = dev_from(be, gidx, sizeof(int32_t) * (size_t)C);
    gptq_buf *sb = dev_from(be, grid_given ? S : NULL, sizeof(float) * (size_t)(ng * R));
    gptq_buf *zb = dev_from(be, grid_given ? Z : NULL, sizeof(float) * (size_t)(ng * R));
    gptq_buf *cb = dev_from(be, NULL, (size_t)(R * C));
    gptq_buf *eb = dev_from(be, NULL, sizeof(float) * (size_t)(R * C));
    double *zeros = calloc((size_t)R, sizeof(double));
    gptq_buf *lb = dev_from(be, zeros, sizeof(double) * (size_t)R);
    gptq_block_args a = {
        .W = w, .R = R, .C = C, .U = u, .j0 = 0, .nb = C, .group_size = G,
        .grid_given = grid_given, .gidx = gi, .scale = sb, .zero = zb, .codes = cb,
        .Err = eb, .loss = lb, .grid = {.bits = bits, .sym = sym},
    };
    int st = be->iface->gptq_block(be->ctx, &a);
    cr_assert_eq(st, GPTQ_OK, "gptq_block: %s", be->iface->error(be->ctx));
    cr_assert_eq(gptq_be_download(be, cb, 0, codes, (size_t)(R * C)), GPTQ_OK);
    cr_assert_eq(gptq_be_download(be, sb, 0, S, sizeof(float) * (size_t)(ng * R)), GPTQ_OK);
    cr_assert_eq(gptq_be_download(be, zb, 0, Z, sizeof(float) * (size_t)(ng * R)), GPTQ_OK);
    gptq_buf *bufs[] = {w, u, gi, sb, zb, cb, eb, lb};
    for (int i = 0; i < 8; i++) gptq_be_free(be, bufs[i]);
    free(zeros);
    free(gidx);
}

/* Codes after error feedback: 4-bit sym, grid given (scale 1, zero 8).
 * Column 0 codes w0 = +-0.25 to 8 (error +-0.25); U01 = 2 moves column 1
 * from +-3 onto +-2.5: codes 10 and 6 (half away: 11 and 5). Row 2 feeds
 * +0.75 through U01 = 2 (w0 = 0.75 codes 9, error -0.25) onto 4.5: code 12. */
Test(exact, block_error_feedback_lands_on_code_ties)
{
    gptq_backend *be = open_cpu();
    enum { R = 3, C = 4 };
    const float W0[R * C] = {0.25f, 3.0f, 1.0f, 0.0f, -0.25f, -3.0f, -1.0f, 0.0f,
                             0.75f, 4.0f, 0.5f, -0.5f};
    const float U[C * C] = {1, 2, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
    float S[R] = {1, 1, 1}, Z[R] = {8, 8, 8}, Sr[R], Zr[R];
    memcpy(Sr, S, sizeof S);
    memcpy(Zr, Z, sizeof Z);
    uint8_t got[R * C], want[R * C];
    float Wr[R * C];
    memcpy(Wr, W0, sizeof W0);
    int ties = 0;
    ref_block(Wr, R, C, U, C, 1, 4, 1, Sr, Zr, want, &ties);
    cr_assert_eq(Wr[1], 2.5f, "the construction: row 0 column 1 is updated onto 2.5");
    cr_assert_eq(Wr[5], -2.5f, "the construction: row 1 column 1 is updated onto -2.5");
    cr_assert_geq(ties, 2, "the construction made %d discriminating ties", ties);
    cr_assert_eq(want[1], 10);
    cr_assert_eq(want[5], 6);
    cpu_block(be, W0, R, C, U, C, 1, 4, 1, S, Z, got);
    for (int i = 0; i < R * C; i++)
        cr_assert_eq(got[i], want[i], "row %d col %d: code %d, want %d (half to even)", i / C,
                     i % C, got[i], want[i]);
    gptq_backend_close(be);
}

/* A zero point computed from updated weights: 4-bit asym, groups of 2.
 * Group 0 = [0.25, 15]: grid [0, 15], scale 1, zero 0; w0 codes 0, error
 * 0.25. U02 = 2, U03 = -2 move group 1 from [-6, 8] onto [-6.5, 8.5]:
 * scale 1, zero half_even(6.5) = 6 (half away: 7), codes 0 and 14 (half
 * away: 0 and 15). Row 1 starts on a tie: w0 = 0.5 codes 0 (half away: 1),
 * error 0.5, which moves [-5.5, 7.5] onto the same [-6.5, 8.5]. */
Test(exact, block_zero_point_tie_after_feedback)
{
    gptq_backend *be = open_cpu();
    enum { R = 2, C = 4, G = 2 };
    const float W0[R * C] = {0.25f, 15.0f, -6.0f, 8.0f, 0.5f, 15.0f, -5.5f, 7.5f};
    const float U[C * C] = {1, 0, 2, -2, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
    float S[R * C / G], Z[R * C / G], Sr[R * C / G], Zr[R * C / G];
    uint8_t got[R * C], want[R * C];
    float Wr[R * C];
    memcpy(Wr, W0, sizeof W0);
    int ties = 0;
    ref_block(Wr, R, C, U, G, 0, 4, 0, Sr, Zr, want, &ties);
    cr_assert_eq(Wr[2], -6.5f, "the construction: row 0 column 2 is updated onto -6.5");
    cr_assert_eq(Wr[3], 8.5f, "the construction: row 0 column 3 is updated onto 8.5");
    cr_assert_eq(Wr[6], -6.5f, "the construction: row 1 column 2 is updated onto -6.5");
    cr_assert_eq(Zr[1 * R + 0], 6.0f, "the construction: the zero of row 0 group 1");
    cr_assert_eq(Zr[1 * R + 1], 6.0f, "the construction: the zero of row 1 group 1");
    cr_assert_geq(ties, 4, "the construction made %d discriminating ties", ties);
    cpu_block(be, W0, R, C, U, G, 0, 4, 0, S, Z, got);
    for (int i = 0; i < R * C / G; i++) {
        cr_assert_eq(S[i], Sr[i], "group %d row %d: scale %g, want %g", i / R, i % R,
                     (double)S[i], (double)Sr[i]);
        cr_assert_eq(Z[i], Zr[i], "group %d row %d: zero %g, want %g (half to even)", i / R,
                     i % R, (double)Z[i], (double)Zr[i]);
    }
    for (int i = 0; i < R * C; i++)
        cr_assert_eq(got[i], want[i], "row %d col %d: code %d, want %d (half to even)", i / C,
                     i % C, got[i], want[i]);
    gptq_backend_close(be);
}
