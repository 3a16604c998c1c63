/*
 * bench_sgemm.c — how much of the machine's SGEMM rate the CPU backend's
 * deterministic linear algebra keeps.
 *
 *   bench_sgemm [C [n ...]]        defaults: C = 4096, n = 4096
 *   env BENCH_REPS (3), BENCH_PARTS (any of "hgc": hessian, gemm, cholesky)
 *
 * Versions compared, for each n:
 *   machine   OpenBLAS's own multi-threaded sgemm (all cores) on the same
 *             product X^T X, full (C, C) output: 2 n C^2 flops. Not
 *             deterministic across thread counts; the yardstick only.
 *   hessian   cpu_hessian_accumulate (tiled, single-threaded BLAS per tile,
 *             OpenMP over tiles), counted as the n C (C + 1) flops of the
 *             triangle it computes. share = hessian rate / machine rate.
 *   1-thread  OpenBLAS sgemm on one thread times the thread count: what a
 *             perfect split would reach (steadier on a shared machine).
 * Then cpu_gemm on (C, C) x (C, C), and cpu_cholesky_inverse_upper on
 * H = X^T X / n + 0.01 mean(diag) I in seconds.
 * Validation: the hessian against the machine sgemm result (relative
 * Frobenius difference); U^T U H v = v for a fixed v; and the factor
 * computed again with another thread count must have the same bytes.
 * On the device machine (gVisor) OpenBLAS detects its CPU as "Prescott"
 * and runs 3-4x slower: set OPENBLAS_CORETYPE (Haswell, SkylakeX).
 * Timings are the best of `reps` runs (wall clock).
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu/cpu_impl.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static gptq_buf *buf_new(size_t nfloats)
{
    gptq_buf *b = malloc(sizeof *b);
    size_t nbytes = nfloats * sizeof(float);
    if (b) {
        b->nbytes = nbytes;
        b->data = aligned_alloc(64, (nbytes + 63) / 64 * 64);
    }
    if (!b || !b->data) {
        fprintf(stderr, "bench_sgemm: out of memory (%zu bytes)\n", nbytes);
        exit(1);
    }
    memset(b->data, 0, nbytes);
    return b;
}

static void buf_free(gptq_buf *b)
{
    free(b->data);
    free(b);
}

static void check(int st, cpu_ctx *ctx, const char *what)
{
    if (st != GPTQ_OK) {
        fprintf(stderr, "bench_sgemm: %s failed (%d): %s\n", what, st, ctx->err);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    int64_t C = argc > 1 ? atoll(argv[1]) : 4096;
    int64_t ns_default[] = {4096};
    int64_t *ns = ns_default;
    int nn = 1;
    if (argc > 2) {
        nn = argc - 2;
        ns = malloc((size_t)nn * sizeof *ns);
        for (int i = 0; i < nn; i++) ns[i] = atoll(argv[i + 2]);
    }
    int reps = getenv("BENCH_REPS") ? atoi(getenv("BENCH_REPS")) : 3;
    /* BENCH_PARTS: any of h (hessian vs sgemm), g (gemm), c (cholesky) */
    const char *parts = getenv("BENCH_PARTS") ? getenv("BENCH_PARTS") : "hgc";
    int nthr = 1;
#ifdef _OPENMP
    nthr = omp_get_max_threads();
#endif
    printf("bench_sgemm: C=%lld, %d OpenMP threads, best of %d\n", (long long)C, nthr, reps);
    cpu_ctx ctx = {.err = ""};
    int64_t nmax = 0;
    for (int i = 0; i < nn; i++) nmax = ns[i] > nmax ? ns[i] : nmax;

    gptq_buf *X = buf_new((size_t)(nmax * C));
    float *x = (float *)(void *)X->data;
    unsigned long long r = 12345;
    for (int64_t i = 0; i < nmax * C; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(r >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
    }
    gptq_buf *S = buf_new((size_t)(C * C));
    float *full = malloc((size_t)(C * C) * sizeof(float));
    if (!full) return 1;

    for (int i = 0; i < nn && strchr(parts, 'h'); i++) {
        int64_t n = ns[i];
        /* machine: OpenBLAS threaded, full product */
        openblas_set_num_threads(nthr);
        double best_m = 1e30;
        for (int k = 0; k < reps; k++) {
            double t0 = now();
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)C, (int)C, (int)n, 1.0f, x,
                        (int)C, x, (int)C, 0.0f, full, (int)C);
            double t = now() - t0;
            best_m = t < best_m ? t : best_m;
        }
        openblas_set_num_threads(1);
        double gf_m = 2.0 * (double)n * (double)C * (double)C / best_m * 1e-9;
        /* one core's sgemm rate on the same product, times the threads: the
         * rate a perfectly parallel tiling would reach (steadier than the
         * threaded sgemm on a shared machine) */
        double best_1 = 1e30;
        for (int k = 0; k < reps; k++) {
            double t0 = now();
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)C, (int)C, (int)n, 1.0f, x,
                        (int)C, x, (int)C, 0.0f, full, (int)C);
            double t = now() - t0;
            best_1 = t < best_1 ? t : best_1;
        }
        double gf_1 = 2.0 * (double)n * (double)C * (double)C / best_1 * 1e-9;

        /* hessian: validate once, then time */
        double best_h = 1e30;
        for (int k = 0; k < reps; k++) {
            memset(S->data, 0, S->nbytes);
            double t0 = now();
            check(cpu_hessian_accumulate(&ctx, S, X, 0, n, C), &ctx, "hessian_accumulate");
            double t = now() - t0;
            best_h = t < best_h ? t : best_h;
        }
        const float *s = (const float *)(const void *)S->data;
        double num = 0.0, den = 0.0;
        for (int64_t e = 0; e < C * C; e++) {
            double d = (double)s[e] - (double)full[e];
            num += d * d;
            den += (double)full[e] * full[e];
        }
        double gf_h = (double)n * (double)C * (double)(C + 1) / best_h * 1e-9;
        printf("n=%6lld  machine sgemm %6.1f GFLOP/s  1-thread sgemm x %d %6.1f  hessian %6.1f "
               "GFLOP/s (%.3f s)  share %5.1f%% (of 1-thread x %d: %5.1f%%)  |S-full|/|full| "
               "%.2e\n",
               (long long)n, gf_m, nthr, gf_1 * nthr, gf_h, best_h, 100.0 * gf_h / gf_m, nthr,
               100.0 * gf_h / (gf_1 * nthr), sqrt(num / den));
    }

    /* cpu_gemm on (C, C) x (C, C) */
    if (strchr(parts, 'g')) {
        gptq_buf *Cb = buf_new((size_t)(C * C));
        int64_t K = C < nmax ? C : nmax;
        double best = 1e30;
        for (int k = 0; k < reps; k++) {
            double t0 = now();
            check(cpu_gemm(&ctx, 1, 0, C, C, K, 1.0f, X, 0, C, X, 0, C, 0.0f, Cb, 0, C), &ctx,
                  "gemm");
            double t = now() - t0;
            best = t < best ? t : best;
        }
        printf("gemm (%lld x %lld x %lld): %.1f GFLOP/s (%.3f s)\n", (long long)C, (long long)C,
               (long long)K, 2.0 * (double)C * (double)C * (double)K / best * 1e-9, best);
        buf_free(Cb);
    }

    /* cholesky_inverse_upper on H = S / n + damp I, S from the last n */
    if (strchr(parts, 'c')) {
        int64_t n = ns[nn - 1];
        float *h0 = malloc((size_t)(C * C) * sizeof(float));
        if (!h0) return 1;
        memset(S->data, 0, S->nbytes);
        check(cpu_hessian_accumulate(&ctx, S, X, 0, n, C), &ctx, "hessian_accumulate");
        const float *s = (const float *)(const void *)S->data;
        double mean = 0.0;
        for (int64_t e = 0; e < C; e++) mean += s[e * C + e] / (double)n;
        mean /= (double)C;
        for (int64_t e = 0; e < C * C; e++) h0[e] = s[e] / (float)n;
        for (int64_t e = 0; e < C; e++) h0[e * C + e] += (float)(0.01 * mean);
        double best = 1e30;
        for (int k = 0; k < reps; k++) {
            memcpy(S->data, h0, S->nbytes);
            int64_t bad;
            double t0 = now();
            check(cpu_cholesky_inverse_upper(&ctx, S, C, &bad), &ctx, "cholesky_inverse_upper");
            double t = now() - t0;
            best = t < best ? t : best;
        }
        /* determinism: the same bytes with another thread count */
        int other = nthr == 1 ? 2 : nthr == 2 ? 1 : nthr / 2 + 1;
        {
            gptq_buf *U2 = buf_new((size_t)(C * C));
            memcpy(U2->data, h0, U2->nbytes);
            int64_t bad;
#ifdef _OPENMP
            omp_set_num_threads(other);
#endif
            check(cpu_cholesky_inverse_upper(&ctx, U2, C, &bad), &ctx, "cholesky_inverse_upper");
#ifdef _OPENMP
            omp_set_num_threads(nthr);
#endif
            printf("cholesky_inverse_upper with %d threads: %s bytes as with %d\n", other,
                   memcmp(U2->data, S->data, S->nbytes) == 0 ? "the same" : "DIFFERENT", nthr);
            buf_free(U2);
        }
        /* validate: y = U^T U (H v) should equal v */
        const float *u = (const float *)(const void *)S->data;
        double *v = malloc((size_t)C * sizeof(double)), *hv = malloc((size_t)C * sizeof(double));
        double *w = malloc((size_t)C * sizeof(double));
        if (!v || !hv || !w) return 1;
        for (int64_t e = 0; e < C; e++) v[e] = sin((double)e);
        for (int64_t a = 0; a < C; a++) {
            double acc = 0.0;
            for (int64_t b = 0; b < C; b++) acc += (double)h0[a * C + b] * v[b];
            hv[a] = acc;
        }
        for (int64_t a = 0; a < C; a++) { /* w = U hv */
            double acc = 0.0;
            for (int64_t b = a; b < C; b++) acc += (double)u[a * C + b] * hv[b];
            w[a] = acc;
        }
        double num = 0.0, den = 0.0;
        for (int64_t b = 0; b < C; b++) { /* (U^T w)[b] */
            double acc = 0.0;
            for (int64_t a = 0; a <= b; a++) acc += (double)u[a * C + b] * w[a];
            num += (acc - v[b]) * (acc - v[b]);
            den += v[b] * v[b];
        }
        printf("cholesky_inverse_upper C=%lld: %.3f s (%.1f GFLOP/s counting 2C^3/3)  "
               "|U^T U H v - v|/|v| %.2e\n",
               (long long)C, best, 2.0 * (double)C * (double)C * (double)C / 3.0 / best * 1e-9,
               sqrt(num / den));
        free(v);
        free(hv);
        free(w);
        free(h0);
    }
    free(full);
    buf_free(S);
    buf_free(X);
    if (ns != ns_default) free(ns);
    return 0;
}
