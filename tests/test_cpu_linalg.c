/*
 * test_cpu_linalg.c — the CPU backend's linear algebra (cpu_linalg.c)
 * against naive double-precision references on awkward sizes, its error
 * reports (bad arguments, NaN, not positive definite with the failing
 * column), and its determinism: the same bytes for 1, 2 and 8 OpenMP
 * threads on sizes that span several tiles.
 *
 * Tolerances (metric: relative Frobenius error ||got - ref|| / ||ref||, the
 * reference computed in double from the same f32 inputs):
 *   gemm, hessian  1e-5   f32 sums of K <= 1000 terms of random data carry
 *                         a relative error of about sqrt(K) * 6e-8 ~ 2e-6.
 *   U vs U_ref     1e-5   U comes from H (cond < 20 here) through a
 *                         factorization and an inverse; the error grows like
 *                         cond * eps (~1e-6) times a slowly growing function
 *                         of C. Seen: <= 4e-7 up to C = 513.
 *   U^T U H - I    1e-5   Frobenius norm / sqrt(C), same reasoning.
 */
#include <criterion/criterion.h>
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu/cpu_impl.h"

#define TOL_GEMM 1e-5
#define TOL_HESS 1e-5
#define TOL_U 1e-5
#define TOL_UTUH 1e-5

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* Deterministic uniform [-1, 1) numbers (64-bit LCG, top bits). */
static uint64_t rng_state;
static void rng_seed(uint64_t s)
{
    rng_state = s * 6364136223846793005ull + 1442695040888963407ull;
}
static float rng_uniform(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng_state >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

static gptq_buf *buf_new(size_t nfloats)
{
    gptq_buf *b = malloc(sizeof *b);
    cr_assert(b);
    size_t nbytes = nfloats * sizeof(float);
    b->nbytes = nbytes;
    b->data = aligned_alloc(64, (nbytes + 63) / 64 * 64 + 64);
    cr_assert(b->data);
    memset(b->data, 0, nbytes);
    return b;
}

static void buf_free(gptq_buf *b)
{
    if (!b) return;
    free(b->data);
    free(b);
}

static void fill_uniform(float *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = rng_uniform();
}

/* ||got - ref||_F / ||ref||_F over n elements; a NaN in got fails. */
static double rel_frob(const float *got, const double *ref, size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(got[i])) return INFINITY;
        double d = (double)got[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
    }
    return den > 0.0 ? sqrt(num / den) : sqrt(num);
}

static void set_threads(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

/* Random SPD matrix H = A A^T / (2C) + 0.1 I with A (C, 2C): eigenvalues in
 * about [0.19, 3.0], so cond(H) < 20. Exactly symmetric. */
static void make_spd(float *h, int64_t C)
{
    int64_t K = 2 * C;
    float *a = malloc((size_t)(C * K) * sizeof(float));
    cr_assert(a);
    fill_uniform(a, (size_t)(C * K));
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j <= i; j++) {
            double s = 0.0;
            for (int64_t k = 0; k < K; k++) s += (double)a[i * K + k] * a[j * K + k];
            /* uniform [-1,1) has variance 1/3: scale to unit variance */
            float v = (float)(3.0 * s / (double)K);
            if (i == j) v += 0.1f;
            h[i * C + j] = v;
            h[j * C + i] = v;
        }
    free(a);
}

/* In-place double Cholesky a = R^T R, R upper in the upper triangle (n, n).
 * Returns 0, or -1 if a pivot is not positive. */
static int dchol_upper(double *a, int64_t n)
{
    for (int64_t j = 0; j < n; j++) {
        double d = a[j * n + j];
        for (int64_t k = 0; k < j; k++) d -= a[k * n + j] * a[k * n + j];
        if (!(d > 0.0)) return -1;
        d = sqrt(d);
        a[j * n + j] = d;
        for (int64_t i = j + 1; i < n; i++) {
            double s = a[j * n + i];
            for (int64_t k = 0; k < j; k++) s -= a[k * n + j] * a[k * n + i];
            a[j * n + i] = s / d;
        }
    }
    return 0;
}

/* Double inverse of SPD h (n, n) by Gauss-Jordan with partial pivoting. */
static void dinverse(const float *h, double *inv, int64_t n)
{
    double *m = malloc((size_t)(n * n) * sizeof(double));
    cr_assert(m);
    for (int64_t i = 0; i < n * n; i++) m[i] = h[i];
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) inv[i * n + j] = i == j ? 1.0 : 0.0;
    for (int64_t c = 0; c < n; c++) {
        int64_t p = c;
        for (int64_t r = c + 1; r < n; r++)
            if (fabs(m[r * n + c]) > fabs(m[p * n + c])) p = r;
        if (p != c)
            for (int64_t k = 0; k < n; k++) {
                double t = m[c * n + k]; m[c * n + k] = m[p * n + k]; m[p * n + k] = t;
                t = inv[c * n + k]; inv[c * n + k] = inv[p * n + k]; inv[p * n + k] = t;
            }
        double d = m[c * n + c];
        for (int64_t k = 0; k < n; k++) { m[c * n + k] /= d; inv[c * n + k] /= d; }
        for (int64_t r = 0; r < n; r++) {
            if (r == c) continue;
            double f = m[r * n + c];
            if (f == 0.0) continue;
            for (int64_t k = 0; k < n; k++) {
                m[r * n + k] -= f * m[c * n + k];
                inv[r * n + k] -= f * inv[c * n + k];
            }
        }
    }
    free(m);
}

/* ------------------------------------------------------------------ */
/* gemm                                                                */
/* ------------------------------------------------------------------ */

/* One gemm case with padded leading dimensions and element offsets. */
static void check_gemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, float beta)
{
    cpu_ctx ctx = {.err = ""};
    int64_t ar = ta ? K : M, ac = ta ? M : K; /* A as stored */
    int64_t br = tb ? N : K, bc = tb ? K : N;
    int64_t lda = ac + 3, ldb = bc + 5, ldc = N + 2;
    size_t aoff = 11, boff = 7, coff = 5;
    gptq_buf *A = buf_new(aoff + (size_t)(ar * lda));
    gptq_buf *B = buf_new(boff + (size_t)(br * ldb));
    gptq_buf *C = buf_new(coff + (size_t)(M * ldc));
    fill_uniform(CPU_F32(A, 0), A->nbytes / 4);
    fill_uniform(CPU_F32(B, 0), B->nbytes / 4);
    fill_uniform(CPU_F32(C, 0), C->nbytes / 4);
    const float *a = CPU_CF32(A, aoff), *b = CPU_CF32(B, boff);
    float *c = CPU_F32(C, coff);
    if (beta == 0.0f) /* BLAS: beta = 0 means C is not read, NaN included */
        for (int64_t i = 0; i < M; i++) c[i * ldc] = NAN;

    double *ref = malloc((size_t)(M * N) * sizeof(double));
    cr_assert(ref);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0.0;
            for (int64_t k = 0; k < K; k++) {
                double x = ta ? a[k * lda + i] : a[i * lda + k];
                double y = tb ? b[j * ldb + k] : b[k * ldb + j];
                s += x * y;
            }
            ref[i * N + j] = alpha * s + (beta == 0.0f ? 0.0 : (double)beta * c[i * ldc + j]);
        }
    /* the padding between rows of C must survive */
    float pad_before = M > 0 ? c[N] : 0.0f;

    int st = cpu_gemm(&ctx, ta, tb, M, N, K, alpha, A, aoff, lda, B, boff, ldb, beta, C, coff,
                      ldc);
    cr_assert_eq(st, GPTQ_OK, "gemm failed: %s", ctx.err);
    float *got = malloc((size_t)(M * N) * sizeof(float));
    cr_assert(got);
    for (int64_t i = 0; i < M; i++) memcpy(got + i * N, c + i * ldc, (size_t)N * sizeof(float));
    double err = rel_frob(got, ref, (size_t)(M * N));
    cr_expect(err < TOL_GEMM, "gemm ta=%d tb=%d M=%lld N=%lld K=%lld: rel err %g", ta, tb,
              (long long)M, (long long)N, (long long)K, err);
    if (M > 0) cr_expect(c[N] == pad_before, "gemm wrote into the row padding of C");
    free(got);
    free(ref);
    buf_free(A);
    buf_free(B);
    buf_free(C);
}

Test(gemm, matches_double_reference_awkward_sizes)
{
    rng_seed(1);
    static const int64_t shapes[][3] = {{1, 1, 1},     {7, 129, 300}, {513, 7, 129},
                                        {300, 513, 1}, {129, 300, 513}, {1, 300, 7},
                                        {300, 1, 129}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                check_gemm(ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], 0.75f, -0.5f);
}

Test(gemm, beta_zero_ignores_nan_and_k_zero_scales)
{
    rng_seed(2);
    check_gemm(0, 1, 300, 129, 7, 1.0f, 0.0f);
    check_gemm(1, 0, 7, 300, 0, 1.0f, 0.5f); /* K = 0: C = beta * C */
}

Test(gemm, rejects_bad_arguments)
{
    cpu_ctx ctx = {.err = ""};
    gptq_buf *A = buf_new(100), *B = buf_new(100), *C = buf_new(100);
    /* negative dimension */
    cr_expect_eq(cpu_gemm(&ctx, 0, 0, -1, 10, 10, 1, A, 0, 10, B, 0, 10, 0, C, 0, 10),
                 GPTQ_ERR_INVALID);
    cr_expect(strstr(ctx.err, "negative") != NULL, "message: %s", ctx.err);
    /* A (10, 10) at offset 1 runs one element past 100 */
    cr_expect_eq(cpu_gemm(&ctx, 0, 0, 10, 10, 10, 1, A, 1, 10, B, 0, 10, 0, C, 0, 10),
                 GPTQ_ERR_INVALID);
    cr_expect(strstr(ctx.err, "A view") != NULL, "message: %s", ctx.err);
    /* lda smaller than the columns */
    cr_expect_eq(cpu_gemm(&ctx, 0, 0, 5, 10, 10, 1, A, 0, 9, B, 0, 10, 0, C, 0, 10),
                 GPTQ_ERR_INVALID);
    /* C too small for (11, 10) */
    cr_expect_eq(cpu_gemm(&ctx, 1, 0, 11, 10, 5, 1, A, 0, 11, B, 0, 10, 0, C, 0, 10),
                 GPTQ_ERR_INVALID);
    cr_expect(strstr(ctx.err, "C view") != NULL, "message: %s", ctx.err);
    /* an offset far beyond the buffer must not wrap around */
    cr_expect_eq(cpu_gemm(&ctx, 0, 0, 1, 1, 1, 1, A, SIZE_MAX - 2, 1, B, 0, 1, 0, C, 0, 1),
                 GPTQ_ERR_INVALID);
    /* the exact fit is accepted */
    cr_expect_eq(cpu_gemm(&ctx, 0, 0, 10, 10, 10, 1, A, 0, 10, B, 0, 10, 0, C, 0, 10), GPTQ_OK,
                 "%s", ctx.err);
    buf_free(A);
    buf_free(B);
    buf_free(C);
}

/* ------------------------------------------------------------------ */
/* hessian_accumulate                                                  */
/* ------------------------------------------------------------------ */

/* S0 arbitrary (not symmetric), then S = S0 + X^T X over both triangles. */
static void check_hessian(int64_t n, int64_t C)
{
    cpu_ctx ctx = {.err = ""};
    size_t xoff = 13;
    gptq_buf *S = buf_new((size_t)(C * C));
    gptq_buf *X = buf_new(xoff + (size_t)(n * C));
    float *s = CPU_F32(S, 0);
    fill_uniform(s, (size_t)(C * C));
    fill_uniform(CPU_F32(X, 0), X->nbytes / 4);
    const float *x = CPU_CF32(X, xoff);
    double *ref = malloc((size_t)(C * C) * sizeof(double));
    cr_assert(ref);
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j < C; j++) {
            double acc = 0.0;
            for (int64_t r = 0; r < n; r++) acc += (double)x[r * C + i] * x[r * C + j];
            ref[i * C + j] = s[i * C + j] + acc;
        }
    int st = cpu_hessian_accumulate(&ctx, S, X, xoff, n, C);
    cr_assert_eq(st, GPTQ_OK, "hessian failed: %s", ctx.err);
    double err = rel_frob(s, ref, (size_t)(C * C));
    cr_expect(err < TOL_HESS, "hessian n=%lld C=%lld: rel err %g", (long long)n, (long long)C,
              err);
    free(ref);
    buf_free(S);
    buf_free(X);
}

Test(hessian, matches_double_reference_awkward_sizes)
{
    rng_seed(3);
    static const int64_t shapes[][2] = {{1, 1}, {7, 129}, {300, 513}, {513, 300}, {129, 7},
                                        {1, 300}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        check_hessian(shapes[i][0], shapes[i][1]);
}

Test(hessian, symmetric_input_stays_exactly_symmetric)
{
    rng_seed(4);
    cpu_ctx ctx = {.err = ""};
    int64_t n = 100, C = 513; /* C spans a partial third tile */
    gptq_buf *S = buf_new((size_t)(C * C)), *X = buf_new((size_t)(n * C));
    fill_uniform(CPU_F32(X, 0), (size_t)(n * C));
    for (int pass = 0; pass < 2; pass++) /* zero start, then accumulate again */
        cr_assert_eq(cpu_hessian_accumulate(&ctx, S, X, 0, n, C), GPTQ_OK, "%s", ctx.err);
    const float *s = CPU_CF32(S, 0);
    int64_t asym = 0;
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j < i; j++)
            if (memcmp(&s[i * C + j], &s[j * C + i], sizeof(float)) != 0) asym++;
    cr_expect_eq(asym, 0, "%lld pairs differ between the triangles", (long long)asym);
    buf_free(S);
    buf_free(X);
}

Test(hessian, rejects_bad_arguments)
{
    cpu_ctx ctx = {.err = ""};
    gptq_buf *S = buf_new(100), *X = buf_new(100);
    cr_expect_eq(cpu_hessian_accumulate(&ctx, S, X, 0, -1, 10), GPTQ_ERR_INVALID);
    /* S (11, 11) does not fit 100 floats */
    cr_expect_eq(cpu_hessian_accumulate(&ctx, S, X, 0, 1, 11), GPTQ_ERR_INVALID);
    cr_expect(strstr(ctx.err, "S") != NULL, "message: %s", ctx.err);
    /* X (10, 10) at offset 1 runs past */
    cr_expect_eq(cpu_hessian_accumulate(&ctx, S, X, 1, 10, 10), GPTQ_ERR_INVALID);
    cr_expect(strstr(ctx.err, "X view") != NULL, "message: %s", ctx.err);
    cr_expect_eq(cpu_hessian_accumulate(&ctx, S, X, 0, 10, 10), GPTQ_OK, "%s", ctx.err);
    buf_free(S);
    buf_free(X);
}

/* ------------------------------------------------------------------ */
/* cholesky_inverse_upper                                              */
/* ------------------------------------------------------------------ */

static void check_cholinv(int64_t C)
{
    cpu_ctx ctx = {.err = ""};
    gptq_buf *H = buf_new((size_t)(C * C));
    float *h0 = malloc((size_t)(C * C) * sizeof(float));
    cr_assert(h0);
    make_spd(h0, C);
    memcpy(CPU_F32(H, 0), h0, (size_t)(C * C) * sizeof(float));
    int64_t bad = 123;
    int st = cpu_cholesky_inverse_upper(&ctx, H, C, &bad);
    cr_assert_eq(st, GPTQ_OK, "C=%lld: %s", (long long)C, ctx.err);
    cr_expect_eq(bad, -1);
    const float *u = CPU_CF32(H, 0);

    int64_t nonzero_lower = 0;
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j < i; j++)
            if (u[i * C + j] != 0.0f) nonzero_lower++;
    cr_expect_eq(nonzero_lower, 0, "C=%lld: %lld nonzero entries below the diagonal",
                 (long long)C, (long long)nonzero_lower);

    /* reference: U_ref = upper Cholesky factor of inv(H), all in double */
    double *uref = malloc((size_t)(C * C) * sizeof(double));
    cr_assert(uref);
    dinverse(h0, uref, C);
    cr_assert_eq(dchol_upper(uref, C), 0);
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j < i; j++) uref[i * C + j] = 0.0;
    double err = rel_frob(u, uref, (size_t)(C * C));
    cr_expect(err < TOL_U, "C=%lld: ||U - U_ref|| / ||U_ref|| = %g", (long long)C, err);

    /* ||U^T U H - I||_F / sqrt(C), in double from the f32 U and H */
    double *uth = malloc((size_t)(C * C) * sizeof(double)); /* U H */
    cr_assert(uth);
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j < C; j++) {
            double s = 0.0;
            for (int64_t k = i; k < C; k++) s += (double)u[i * C + k] * h0[k * C + j];
            uth[i * C + j] = s;
        }
    double res = 0.0;
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j < C; j++) {
            double s = 0.0;
            for (int64_t k = 0; k <= i && k < C; k++) s += (double)u[k * C + i] * uth[k * C + j];
            double d = s - (i == j ? 1.0 : 0.0);
            res += d * d;
        }
    res = sqrt(res / (double)C);
    cr_expect(res < TOL_UTUH, "C=%lld: ||U^T U H - I|| / sqrt(C) = %g", (long long)C, res);
    free(uth);
    free(uref);
    free(h0);
    buf_free(H);
}

Test(cholinv, matches_double_reference_awkward_sizes)
{
    rng_seed(5);
    static const int64_t sizes[] = {1, 7, 129, 300, 513};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) check_cholinv(sizes[i]);
}

/* A diagonally dominant H whose diagonal is positive except H[k][k] = -5:
 * every trailing block H[j:, j:] with j > k is positive definite
 * (Gershgorin: diagonal >= 1, off-diagonal row sums < 1e-2), H[k:, k:] is
 * not (e_k^T H e_k < 0). The factorization starts from the last column, so
 * it must fail exactly at column k. */
static void check_not_pd_at(int64_t C, int64_t k)
{
    cpu_ctx ctx = {.err = ""};
    gptq_buf *H = buf_new((size_t)(C * C));
    float *h = CPU_F32(H, 0);
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j <= i; j++) {
            float v = i == j ? 1.0f + (float)i / (float)C : 1e-2f / (float)C * rng_uniform();
            h[i * C + j] = v;
            h[j * C + i] = v;
        }
    h[k * C + k] = -5.0f;
    int64_t bad = -7;
    int st = cpu_cholesky_inverse_upper(&ctx, H, C, &bad);
    cr_expect_eq(st, GPTQ_ERR_NUMERIC, "C=%lld k=%lld: status %d", (long long)C, (long long)k,
                 st);
    cr_expect_eq(bad, k, "C=%lld: bad_col %lld, expected %lld", (long long)C, (long long)bad,
                 (long long)k);
    cr_expect(strstr(ctx.err, "not positive definite") != NULL, "message: %s", ctx.err);
    buf_free(H);
}

Test(cholinv, not_positive_definite_reports_column)
{
    rng_seed(6);
    check_not_pd_at(1, 0);
    check_not_pd_at(7, 3);
    check_not_pd_at(300, 299); /* the very first pivot of the reversed matrix */
    check_not_pd_at(700, 50);  /* reversed column 649: third block, after two updates */
    check_not_pd_at(700, 0);   /* the last pivot */
}

/* A dense SPD matrix minus 10 v v^T has a negative eigenvalue somewhere;
 * the reported column j must be where, checked in double, H[j:, j:] stops
 * being positive definite while H[j+1:, j+1:] still is. */
Test(cholinv, dense_negative_eigenvalue)
{
    rng_seed(7);
    cpu_ctx ctx = {.err = ""};
    int64_t C = 300;
    gptq_buf *H = buf_new((size_t)(C * C));
    float *h0 = malloc((size_t)(C * C) * sizeof(float));
    float *v = malloc((size_t)C * sizeof(float));
    cr_assert(h0 && v);
    make_spd(h0, C);
    fill_uniform(v, (size_t)C);
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j < C; j++) h0[i * C + j] -= 10.0f * v[i] * v[j];
    memcpy(CPU_F32(H, 0), h0, (size_t)(C * C) * sizeof(float));
    int64_t bad = -7;
    cr_assert_eq(cpu_cholesky_inverse_upper(&ctx, H, C, &bad), GPTQ_ERR_NUMERIC);
    cr_assert(bad >= 0 && bad < C, "bad_col %lld", (long long)bad);
    for (int64_t j0 = bad; j0 <= bad + 1 && j0 < C; j0++) {
        int64_t m = C - j0;
        double *sub = malloc((size_t)(m * m) * sizeof(double));
        cr_assert(sub);
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < m; j++) sub[i * m + j] = h0[(j0 + i) * C + j0 + j];
        int pd = dchol_upper(sub, m) == 0;
        cr_expect_eq(pd, j0 != bad, "H[%lld:, %lld:] positive definite: %d (bad_col %lld)",
                     (long long)j0, (long long)j0, pd, (long long)bad);
        free(sub);
    }
    free(v);
    free(h0);
    buf_free(H);
}

Test(cholinv, rejects_nan_and_bad_arguments)
{
    cpu_ctx ctx = {.err = ""};
    int64_t C = 20, bad = -7;
    gptq_buf *H = buf_new((size_t)(C * C));
    float *h = CPU_F32(H, 0);
    for (int64_t i = 0; i < C; i++) h[i * C + i] = 1.0f;
    h[3 * C + 5] = NAN;
    cr_expect_eq(cpu_cholesky_inverse_upper(&ctx, H, C, &bad), GPTQ_ERR_NUMERIC);
    cr_expect_eq(bad, 5);
    cr_expect(strstr(ctx.err, "(3, 5)") != NULL, "message: %s", ctx.err);
    h[3 * C + 5] = INFINITY;
    cr_expect_eq(cpu_cholesky_inverse_upper(&ctx, H, C, &bad), GPTQ_ERR_NUMERIC);
    cr_expect_eq(cpu_cholesky_inverse_upper(&ctx, H, -1, &bad), GPTQ_ERR_INVALID);
    cr_expect_eq(cpu_cholesky_inverse_upper(&ctx, H, C + 1, &bad), GPTQ_ERR_INVALID);
    /* identity in, identity out */
    h[3 * C + 5] = 0.0f;
    cr_expect_eq(cpu_cholesky_inverse_upper(&ctx, H, C, NULL), GPTQ_OK, "%s", ctx.err);
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j < C; j++)
            cr_expect_eq(h[i * C + j], i == j ? 1.0f : 0.0f, "(%lld, %lld)", (long long)i,
                         (long long)j);
    buf_free(H);
}

/* ------------------------------------------------------------------ */
/* Determinism across thread counts                                    */
/* ------------------------------------------------------------------ */

/* Sizes span several tiles in both directions (tiles are 256). (OpenBLAS
 * is not switched to more threads here: its pthread pool torn down at the
 * exit of Criterion's forked test process crashed intermittently; the
 * entry points pin it to 1 regardless.) */
Test(determinism, same_bytes_for_1_2_8_threads)
{
    rng_seed(8);
    cpu_ctx ctx = {.err = ""};
    const int threads[] = {1, 2, 8};
    const int64_t M = 700, N = 600, K = 300, n = 1000, C = 700;
    const int64_t CH = 1100, n2 = n * C / CH; /* the factorization's size */
    gptq_buf *A = buf_new((size_t)(M * K)), *B = buf_new((size_t)(K * N));
    gptq_buf *X = buf_new((size_t)(n * C));
    fill_uniform(CPU_F32(A, 0), (size_t)(M * K));
    fill_uniform(CPU_F32(B, 0), (size_t)(K * N));
    fill_uniform(CPU_F32(X, 0), (size_t)(n * C));
    float *c0 = malloc((size_t)(M * N) * sizeof(float));
    cr_assert(c0);
    fill_uniform(c0, (size_t)(M * N));

    gptq_buf *Cb[3], *S[3], *U[3];
    for (int t = 0; t < 3; t++) {
        set_threads(threads[t]);
        Cb[t] = buf_new((size_t)(M * N));
        memcpy(CPU_F32(Cb[t], 0), c0, (size_t)(M * N) * sizeof(float));
        cr_assert_eq(cpu_gemm(&ctx, 0, 0, M, N, K, 0.5f, A, 0, K, B, 0, N, 1.0f, Cb[t], 0, N),
                     GPTQ_OK, "%s", ctx.err);
        S[t] = buf_new((size_t)(C * C));
        cr_assert_eq(cpu_hessian_accumulate(&ctx, S[t], X, 0, n, C), GPTQ_OK, "%s", ctx.err);
        /* H = X2^T X2 / n2 + 0.01 I (X2 = the first CH columns of X read
         * as (n2, CH)): SPD, 5 tiles wide, so that the task graph of the
         * factorization has many tiles in flight at once */
        U[t] = buf_new((size_t)(CH * CH));
        cr_assert_eq(cpu_hessian_accumulate(&ctx, U[t], X, 0, n2, CH), GPTQ_OK, "%s", ctx.err);
        float *u = CPU_F32(U[t], 0);
        for (int64_t i = 0; i < CH * CH; i++) u[i] /= (float)n2;
        for (int64_t i = 0; i < CH; i++) u[i * CH + i] += 0.01f;
        int64_t bad;
        cr_assert_eq(cpu_cholesky_inverse_upper(&ctx, U[t], CH, &bad), GPTQ_OK, "%s", ctx.err);
    }
    openblas_set_num_threads(1);
    set_threads(2);
    for (int t = 1; t < 3; t++) {
        cr_expect(memcmp(Cb[0]->data, Cb[t]->data, Cb[0]->nbytes) == 0,
                  "gemm: %d threads differ from 1", threads[t]);
        cr_expect(memcmp(S[0]->data, S[t]->data, S[0]->nbytes) == 0,
                  "hessian: %d threads differ from 1", threads[t]);
        cr_expect(memcmp(U[0]->data, U[t]->data, U[0]->nbytes) == 0,
                  "cholesky_inverse_upper: %d threads differ from 1", threads[t]);
    }
    for (int t = 0; t < 3; t++) {
        buf_free(Cb[t]);
        buf_free(S[t]);
        buf_free(U[t]);
    }
    free(c0);
    buf_free(A);
    buf_free(B);
    buf_free(X);
}
