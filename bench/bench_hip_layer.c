/*
 * bench_hip_layer.c — the GPTQ solve of one layer driven op by op on a
 * backend with the data resident on the device (the setting of the paper's
 * PyTorch timings: X and W already on the GPU), for the HIP plugin.
 *
 *   bench_hip_layer [--backend hip|cpu|PATH] [--tokens N] [--bits B]
 *                   [--group-size G] [--block B] [--reps K]
 *                   [--shapes RxC,...] [--no-check] [--attention] [--linear]
 *
 * Defaults: hip, 262144 tokens, 4 bits, g128 asym, blocks of 128, 3 reps,
 * shapes 4096x4096, 11008x4096, 4096x11008 (out x in).
 *
 * Versions compared: the backend under test, and the CPU reference (only
 * in the validation step, at a small shape).
 * Validation first (--no-check skips it): at 256x640 with 8192 tokens the
 * Hessian (rel. Frobenius < 1e-5), U (rel. Frobenius < 1e-4) and the whole
 * solve from the CPU's U (codes identical >= 99.9%, loss rel. diff < 1e-3)
 * are diffed against the CPU backend; at every benchmarked shape the
 * Hessian's entries are checked against float64 sums over all tokens on 64
 * sampled (i, j) pairs (error / sqrt(S_ii S_jj) < 1e-5).
 *
 * Timing (host clock around device work; the backend's sync before reading
 * it; one warm-up call first; the median of --reps):
 *   hessian_s  S += X^T X over all tokens, in calls of 4096 rows (as
 *              gptq_hessian_add cuts them) cycling over 4 distinct device
 *              batches of X (so the data are not one cached buffer);
 *   chol_s     cholesky_inverse_upper of the damped H (includes its NaN
 *              scans and the one host round trip for the pivot check);
 *   blocks_s   every gptq_block and lazy-update gemm of the solve;
 *   solve_s    chol_s + blocks_s measured as one region (what the paper's
 *              "solve" times: Cholesky inverse + all blocks + lazy GEMMs).
 * H and W are uploaded before each repetition, outside the timed region.
 * --attention also times the forward op `attention` at 4 x 2048 tokens,
 * 32 heads of 128 (informational, no reference); --linear the forward's
 * Linears (gemm f32 and linear_fast's TF32 kernels) at 32768 tokens.
 * Rates: hessian n*C*(C+1) flops (the triangle the SYRK computes); solve
 * C^3 (Cholesky C^3/3 + triangular inverse C^3/3, rounded up for the
 * blocked kernels' extra work) + 2*R*C*C (lazy updates) flops.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "quant/solve.h"

#define CHUNK 4096 /* rows per hessian_accumulate call */
#define NXBUF 4    /* distinct device batches of X */

static gptq_backend *g_be;

static void die(const char *what)
{
    fprintf(stderr, "bench_hip_layer: %s: %s\n", what, gptq_last_error());
    exit(1);
}

static void check(int st, const char *op)
{
    if (st) {
        fprintf(stderr, "bench_hip_layer: %s on %s failed: %s (%s)\n", op, g_be->iface->name,
                gptq_status_str(st), g_be->iface->error(g_be->ctx));
        exit(1);
    }
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "bench_hip_layer: out of host memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static gptq_buf *dalloc(gptq_backend *be, size_t n, const char *what)
{
    gptq_buf *b = NULL;
    if (gptq_be_alloc(be, n, &b, what)) die("alloc");
    return b;
}

static void up(gptq_backend *be, gptq_buf *b, const void *src, size_t n)
{
    if (gptq_be_upload(be, b, 0, src, n)) die("upload");
}

static void down(gptq_backend *be, const gptq_buf *b, void *dst, size_t n)
{
    if (gptq_be_download(be, b, 0, dst, n)) die("download");
}

static void dsync(gptq_backend *be) { check(be->iface->sync(be->ctx), "sync"); }

static uint64_t mix(uint64_t s)
{
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

/* X (n, C): a few shared directions plus per-column noise of varied scale,
 * so H has a spread of eigenvalues and no dead columns. */
static void fill_x(float *X, int64_t n, int64_t C, uint64_t seed)
{
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < n; t++) {
        uint64_t s = seed ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(t + 1));
        float z[4];
        for (int k = 0; k < 4; k++) {
            s = mix(s);
            z[k] = (float)((double)(s >> 11) / 9007199254740992.0) - 0.5f;
        }
        for (int64_t c = 0; c < C; c++) {
            s = mix(s);
            float u = (float)((double)(s >> 11) / 9007199254740992.0) - 0.5f;
            X[t * C + c] = u * (1.0f + (float)(c % 13)) + z[c & 3] * 2.0f;
        }
    }
}

/* W: Gaussian, std 0.02 (a trained layer's scale). */
static void fill_w(float *W, int64_t n, uint64_t seed)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        uint64_t s = mix(seed ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1)));
        double u1 = ((double)(s >> 11) + 1.0) / 9007199254740993.0;
        s = mix(s);
        double u2 = (double)(s >> 11) / 9007199254740992.0;
        W[i] = (float)(0.02 * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* S = sum over `tokens` rows of X^T X, cycling over the NXBUF batches. */
static double time_hessian(gptq_backend *be, gptq_buf *S, gptq_buf **xb, int64_t tokens, int64_t C)
{
    const gptq_backend_iface *it = be->iface;
    double t0 = gptq_now();
    for (int64_t r0 = 0, b = 0; r0 < tokens; r0 += CHUNK, b++) {
        int64_t m = tokens - r0 < CHUNK ? tokens - r0 : CHUNK;
        check(it->hessian_accumulate(be->ctx, S, xb[b % NXBUF], 0, m, C), "hessian_accumulate");
    }
    dsync(be);
    return gptq_now() - t0;
}

/* H = (2/n) S, damp 1% of the mean diagonal (the driver's defaults). */
static void finish_h(float *H, int64_t C, int64_t n)
{
    const float f = (float)(2.0 / (double)n);
    double mean = 0.0;
    for (int64_t i = 0; i < C * C; i++) H[i] *= f;
    for (int64_t i = 0; i < C; i++) mean += (double)H[i * C + i];
    mean /= (double)C;
    const float lambda = (float)(0.01 * mean);
    for (int64_t i = 0; i < C; i++) H[i * C + i] += lambda;
}

/* The solve's buffers (solve.h), group j / G at position j. */
static void bufs_alloc(gptq_backend *be, gptq_solve_bufs *b, int64_t R, int64_t C, int64_t G,
                       int64_t B)
{
    if (gptq_solve_bufs_alloc(be, b, R, C, (C + G - 1) / G, B, 1)) die("alloc");
    int32_t *gidx = xmalloc((size_t)C * 4);
    for (int64_t j = 0; j < C; j++) gidx[j] = (int32_t)(j / G);
    up(be, b->gidx, gidx, (size_t)C * 4);
    free(gidx);
}

/* The blocks of the solve: the library's loop (gptq_block, lazy-update gemm). */
static void run_blocks(gptq_backend *be, const gptq_solve_bufs *b, int64_t R, int64_t C,
                       int64_t G, int64_t B, const gptq_grid_params *gp)
{
    if (gptq_solve_blocks(be, b, R, C, G, B, 0, gp, NULL)) die("the blocks");
}

static double rel_frob(const float *a, const float *b, size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) return INFINITY;
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    return sqrt(num / den);
}

/* ------------------------------------------------------------------ */
/* Validation against the CPU backend at a small shape                 */
/* ------------------------------------------------------------------ */

static int validate(gptq_backend *be, int bits, int64_t G, int64_t B)
{
    const int64_t R = 256, C = 640, n = 8192;
    gptq_backend *cpu = NULL;
    if (gptq_backend_open("cpu", &cpu)) die("open cpu");
    float *X = xmalloc((size_t)(n * C) * 4), *W = xmalloc((size_t)(R * C) * 4);
    float *Sh = xmalloc((size_t)(C * C) * 4), *Sc = xmalloc((size_t)(C * C) * 4);
    float *Uh = xmalloc((size_t)(C * C) * 4), *Uc = xmalloc((size_t)(C * C) * 4);
    fill_x(X, n, C, 3);
    fill_w(W, R * C, 4);
    gptq_backend *bes[2] = {be, cpu};
    float *S[2] = {Sh, Sc}, *U[2] = {Uh, Uc};
    for (int k = 0; k < 2; k++) {
        g_be = bes[k];
        gptq_buf *x = dalloc(bes[k], (size_t)(n * C) * 4, "X");
        gptq_buf *s = dalloc(bes[k], (size_t)(C * C) * 4, "S");
        up(bes[k], x, X, (size_t)(n * C) * 4);
        for (int64_t r0 = 0; r0 < n; r0 += CHUNK)
            check(bes[k]->iface->hessian_accumulate(bes[k]->ctx, s, x, (size_t)(r0 * C),
                                                    n - r0 < CHUNK ? n - r0 : CHUNK, C),
                  "hessian_accumulate");
        down(bes[k], s, S[k], (size_t)(C * C) * 4);
        gptq_be_free(bes[k], x);
        gptq_be_free(bes[k], s);
    }
    double eh = rel_frob(Sh, Sc, (size_t)(C * C));
    /* U of the CPU's H on both */
    memcpy(Uh, Sc, (size_t)(C * C) * 4);
    finish_h(Uh, C, n);
    memcpy(Uc, Uh, (size_t)(C * C) * 4);
    for (int k = 0; k < 2; k++) {
        g_be = bes[k];
        gptq_buf *h = dalloc(bes[k], (size_t)(C * C) * 4, "H");
        up(bes[k], h, U[k], (size_t)(C * C) * 4);
        int64_t bad;
        check(bes[k]->iface->cholesky_inverse_upper(bes[k]->ctx, h, C, &bad), "cholesky_inverse_upper");
        down(bes[k], h, U[k], (size_t)(C * C) * 4);
        gptq_be_free(bes[k], h);
    }
    double eu = rel_frob(Uh, Uc, (size_t)(C * C));
    /* the solve from the CPU's U on both */
    gptq_grid_params gp = {bits, 0, 0, 2.4f, 100, 0.8f};
    uint8_t *codes[2];
    double loss[2];
    for (int k = 0; k < 2; k++) {
        g_be = bes[k];
        gptq_solve_bufs b;
        bufs_alloc(bes[k], &b, R, C, G, B);
        up(bes[k], b.W, W, (size_t)(R * C) * 4);
        up(bes[k], b.U, Uc, (size_t)(C * C) * 4);
        run_blocks(bes[k], &b, R, C, G, B, &gp);
        codes[k] = xmalloc((size_t)(R * C));
        down(bes[k], b.codes, codes[k], (size_t)(R * C));
        double *l = xmalloc((size_t)R * 8);
        down(bes[k], b.loss, l, (size_t)R * 8);
        loss[k] = 0.0;
        for (int64_t r = 0; r < R; r++) loss[k] += l[r];
        free(l);
        gptq_solve_bufs_free(bes[k], &b);
    }
    int64_t same = 0;
    for (int64_t i = 0; i < R * C; i++) same += codes[0][i] == codes[1][i];
    double share = (double)same / (double)(R * C), lrel = fabs(loss[0] - loss[1]) / loss[1];
    int okay = eh < 1e-5 && eu < 1e-4 && share >= 0.999 && lrel < 1e-3;
    printf("# validation vs cpu (%lldx%lld, %lld tokens): hessian rel %.3g (<1e-5), U rel %.3g "
           "(<1e-4), codes identical %.6f (>=0.999), loss %.9g vs %.9g rel %.3g (<1e-3): %s\n",
           (long long)R, (long long)C, (long long)n, eh, eu, share, loss[0], loss[1], lrel,
           okay ? "PASS" : "FAIL");
    free(codes[0]);
    free(codes[1]);
    free(X);
    free(W);
    free(Sh);
    free(Sc);
    free(Uh);
    free(Uc);
    gptq_backend_close(cpu);
    g_be = be;
    return okay;
}

/* ------------------------------------------------------------------ */
/* The forward pass's attention (informational)                        */
/* ------------------------------------------------------------------ */

/* Causal attention over nseq sequences of S tokens, H heads of d (Llama-2-7B:
 * 32 x 128, no GQA): median seconds and TFLOP/s counting the causal half of
 * Q K^T and P V (2 * 2 * nseq * H * d * S^2 / 2 flops). */
static void bench_attention(gptq_backend *be, int64_t nseq, int64_t S, int reps)
{
    const int64_t H = 32, d = 128, T = nseq * S;
    const size_t n = (size_t)(T * H * d);
    float *h = xmalloc(n * 4);
    fill_w(h, (int64_t)n, 5);
    for (size_t i = 0; i < n; i++) h[i] *= 50.0f; /* unit-size entries */
    gptq_buf *q = dalloc(be, n * 4, "Q"), *k = dalloc(be, n * 4, "K"), *v = dalloc(be, n * 4, "V"),
             *o = dalloc(be, n * 4, "O");
    up(be, q, h, n * 4);
    up(be, k, h, n * 4);
    up(be, v, h, n * 4);
    /* the HIP backend's two kernels: tiled (default), row per block */
    for (int naive = 0; naive < 2; naive++) {
        if (naive) setenv("GPTQ_HIP_NAIVE_ATTENTION", "1", 1);
        double t[99];
        for (int r = 0; r <= reps; r++) {
            double t0 = gptq_now();
            check(be->iface->attention(be->ctx, q, 0, k, 0, v, 0, nseq, S, H, H, d,
                                       1.0f / sqrtf((float)d), 0, 0.0f, o, 0),
                  "attention");
            dsync(be);
            if (r > 0) t[r - 1] = gptq_now() - t0;
        }
        unsetenv("GPTQ_HIP_NAIVE_ATTENTION");
        double m = median(t, reps);
        printf("# attention (%s kernel) %lld x %lld tokens, %lld heads of %lld: %.4f s, "
               "%.2f TFLOP/s\n",
               naive ? "row" : "tiled", (long long)nseq, (long long)S, (long long)H, (long long)d,
               m, 2.0 * (double)nseq * H * d * (double)S * S / m / 1e12);
    }
    gptq_be_free(be, q);
    gptq_be_free(be, k);
    gptq_be_free(be, v);
    gptq_be_free(be, o);
    free(h);
}

/* ------------------------------------------------------------------ */
/* The forward's Linears: linear_fast (TF32) against gemm (f32)         */
/* ------------------------------------------------------------------ */

/* Y (M, N) = X (M, K) W^T at the Llama-2-7B Linear shapes: median seconds and
 * TFLOP/s (2 M N K) of gemm (f32), linear_fast v1, v2, v3 (GPTQ_HIP_LINEAR),
 * and each TF32 kernel's relative Frobenius distance from the f32 result on
 * the first 512 rows. */
static void bench_linear(gptq_backend *be, int64_t M, int reps)
{
    static const int64_t nk[][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
    printf("# linear (forward Linear) at %lld tokens: seconds (TFLOP/s), rel. error vs f32 "
           "on 512 rows\n", (long long)M);
    printf("%-12s %16s %16s %16s %16s %9s %9s %9s\n", "N x K", "gemm f32", "tf32 v1",
           "tf32 v2", "tf32 v3", "err v1", "err v2", "err v3");
    for (size_t s = 0; s < sizeof nk / sizeof *nk; s++) {
        const int64_t N = nk[s][0], K = nk[s][1];
        float *h = xmalloc((size_t)(M * K) * 4);
        fill_w(h, M * K, 21);
        gptq_buf *x = dalloc(be, (size_t)(M * K) * 4, "X"), *w = dalloc(be, (size_t)(N * K) * 4, "W"),
                 *y = dalloc(be, (size_t)(M * N) * 4, "Y");
        up(be, x, h, (size_t)(M * K) * 4);
        fill_w(h, N * K, 22);
        up(be, w, h, (size_t)(N * K) * 4);
        free(h);
        const int64_t rows = M < 512 ? M : 512;
        float *ref = xmalloc((size_t)(rows * N) * 4), *got = xmalloc((size_t)(rows * N) * 4);
        double tm[4], err[4] = {0, 0, 0, 0};
        for (int kind = 0; kind < 4; kind++) {
            if (kind == 1) setenv("GPTQ_HIP_LINEAR", "v1", 1);
            if (kind == 2) setenv("GPTQ_HIP_LINEAR", "v2", 1);
            if (kind == 3) setenv("GPTQ_HIP_LINEAR", "v3", 1);
            double t[99];
            for (int r = 0; r <= reps; r++) {
                double t0 = gptq_now();
                if (kind == 0)
                    check(be->iface->gemm(be->ctx, 0, 1, M, N, K, 1.0f, x, 0, K, w, 0, K, 0.0f, y,
                                          0, N),
                          "gemm");
                else
                    check(be->iface->linear_fast(be->ctx, M, N, K, x, 0, w, 0, y, 0),
                          "linear_fast");
                dsync(be);
                if (r > 0) t[r - 1] = gptq_now() - t0;
            }
            tm[kind] = median(t, reps);
            down(be, y, kind ? got : ref, (size_t)(rows * N) * 4);
            if (kind) {
                double num = 0, den = 0;
                for (int64_t i = 0; i < rows * N; i++) {
                    const double d = (double)got[i] - (double)ref[i];
                    num += d * d;
                    den += (double)ref[i] * ref[i];
                }
                err[kind] = sqrt(num / den);
            }
        }
        unsetenv("GPTQ_HIP_LINEAR");
        char sh[32], c[4][40];
        snprintf(sh, sizeof sh, "%lldx%lld", (long long)N, (long long)K);
        for (int kind = 0; kind < 4; kind++)
            snprintf(c[kind], sizeof c[kind], "%.4f (%.1f)", tm[kind],
                     2.0 * (double)M * N * K / tm[kind] / 1e12);
        printf("%-12s %16s %16s %16s %16s %9.2e %9.2e %9.2e\n", sh, c[0], c[1], c[2], c[3],
               err[1], err[2], err[3]);
        free(ref);
        free(got);
        gptq_be_free(be, x);
        gptq_be_free(be, w);
        gptq_be_free(be, y);
    }
}

/* ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    const char *backend = "hip", *shapes = "4096x4096,11008x4096,4096x11008";
    int64_t tokens = 262144, G = 128, B = 128;
    int bits = 4, reps = 3, do_check = 1, attn = 0, lin = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--backend") && i + 1 < argc) backend = argv[++i];
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) tokens = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--bits") && i + 1 < argc) bits = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--group-size") && i + 1 < argc) G = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--block") && i + 1 < argc) B = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--shapes") && i + 1 < argc) shapes = argv[++i];
        else if (!strcmp(argv[i], "--no-check")) do_check = 0;
        else if (!strcmp(argv[i], "--attention")) attn = 1;
        else if (!strcmp(argv[i], "--linear")) lin = 1;
        else {
            fprintf(stderr, "usage: bench_hip_layer [--backend NAME] [--tokens N] [--bits B] "
                            "[--group-size G] [--block B] [--reps K] [--shapes RxC,...] "
                            "[--no-check] [--attention] [--linear]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > 99 || tokens < 1 || B < 1 || G < 1) {
        fprintf(stderr, "bench_hip_layer: bad --reps, --tokens, --block or --group-size\n");
        return 2;
    }
    if (gptq_backend_open(backend, &g_be)) die("backend");
    gptq_backend *be = g_be;
    printf("# gptq-c %s bench_hip_layer: backend %s (%s), %lld tokens, %d-bit g%lld asym, "
           "blocks of %lld, median of %d\n",
           gptq_version(), be->iface->name, be->iface->description, (long long)tokens, bits,
           (long long)G, (long long)B, reps);
    if (do_check && !validate(be, bits, G, B)) {
        fprintf(stderr, "bench_hip_layer: validation against the CPU backend failed\n");
        return 1;
    }
    printf("%-12s %10s %8s %10s %9s %9s %9s %11s %10s\n", "shape", "hessian_s", "TFLOP/s",
           "hess_err", "chol_s", "blocks_s", "solve_s", "solve_TF/s", "loss");
    char *list = strdup(shapes);
    int status = 0;
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        long long Rl, Cl;
        if (sscanf(tok, "%lldx%lld", &Rl, &Cl) != 2 || Rl <= 0 || Cl <= 0) {
            fprintf(stderr, "bench_hip_layer: bad shape '%s'\n", tok);
            return 2;
        }
        const int64_t R = Rl, C = Cl;

        /* --- Hessian --- */
        float *Xh = xmalloc((size_t)(NXBUF * CHUNK * C) * 4);
        fill_x(Xh, NXBUF * CHUNK, C, 7);
        gptq_buf *xb[NXBUF];
        for (int k = 0; k < NXBUF; k++) {
            xb[k] = dalloc(be, (size_t)(CHUNK * C) * 4, "X batch");
            up(be, xb[k], Xh + (size_t)k * CHUNK * C, (size_t)(CHUNK * C) * 4);
        }
        gptq_buf *S = dalloc(be, (size_t)(C * C) * 4, "S");
        (void)time_hessian(be, S, xb, CHUNK, C); /* warm-up */
        double th[99];
        float *H = xmalloc((size_t)(C * C) * 4);
        float *zero = xmalloc((size_t)(C * C) * 4);
        memset(zero, 0, (size_t)(C * C) * 4);
        for (int r = 0; r < reps; r++) {
            up(be, S, zero, (size_t)(C * C) * 4);
            th[r] = time_hessian(be, S, xb, tokens, C);
        }
        down(be, S, H, (size_t)(C * C) * 4);
        free(zero);
        /* sampled entries against float64 over all tokens */
        double herr = 0.0;
        uint64_t s = 99;
        for (int k = 0; k < 64; k++) {
            s = mix(s + 0x9E37);
            int64_t i = (int64_t)(s % (uint64_t)C);
            s = mix(s);
            int64_t j = k < 8 ? i : (int64_t)(s % (uint64_t)C);
            double dij = 0.0, dii = 0.0, djj = 0.0;
            for (int64_t t = 0; t < tokens; t++) {
                const float *x = Xh + (size_t)(((t / CHUNK) % NXBUF) * CHUNK + t % CHUNK) * C;
                dij += (double)x[i] * x[j];
                dii += (double)x[i] * x[i];
                djj += (double)x[j] * x[j];
            }
            double e = fabs((double)H[i * C + j] - dij) / sqrt(dii * djj);
            if (!(e <= herr)) herr = e;
        }
        if (!(herr < 1e-5)) status = 1;
        for (int k = 0; k < NXBUF; k++) gptq_be_free(be, xb[k]);
        gptq_be_free(be, S);
        free(Xh);

        /* --- solve --- */
        finish_h(H, C, tokens);
        float *W = xmalloc((size_t)(R * C) * 4);
        fill_w(W, R * C, 42);
        gptq_solve_bufs b;
        bufs_alloc(be, &b, R, C, G, B);
        gptq_grid_params gp = {bits, 0, 0, 2.4f, 100, 0.8f};
        double tc[99], tb[99], ts[99], loss = 0.0;
        for (int r = 0; r <= reps; r++) { /* r = 0: warm-up */
            /* split timing: factor, then blocks */
            up(be, b.U, H, (size_t)(C * C) * 4);
            up(be, b.W, W, (size_t)(R * C) * 4);
            double t0 = gptq_now();
            int64_t bad = -1;
            check(be->iface->cholesky_inverse_upper(be->ctx, b.U, C, &bad), "cholesky_inverse_upper");
            dsync(be);
            double t1 = gptq_now();
            run_blocks(be, &b, R, C, G, B, &gp);
            dsync(be);
            double t2 = gptq_now();
            /* one region, as the paper's solve */
            up(be, b.U, H, (size_t)(C * C) * 4);
            up(be, b.W, W, (size_t)(R * C) * 4);
            double t3 = gptq_now();
            check(be->iface->cholesky_inverse_upper(be->ctx, b.U, C, &bad), "cholesky_inverse_upper");
            run_blocks(be, &b, R, C, G, B, &gp);
            dsync(be);
            double t4 = gptq_now();
            if (r > 0) {
                tc[r - 1] = t1 - t0;
                tb[r - 1] = t2 - t1;
                ts[r - 1] = t4 - t3;
            }
        }
        {
            /* loss of one solve from a zeroed accumulator */
            double *l = xmalloc((size_t)R * 8);
            memset(l, 0, (size_t)R * 8);
            up(be, b.loss, l, (size_t)R * 8);
            up(be, b.U, H, (size_t)(C * C) * 4);
            up(be, b.W, W, (size_t)(R * C) * 4);
            int64_t bad = -1;
            check(be->iface->cholesky_inverse_upper(be->ctx, b.U, C, &bad), "cholesky_inverse_upper");
            run_blocks(be, &b, R, C, G, B, &gp);
            down(be, b.loss, l, (size_t)R * 8);
            for (int64_t r = 0; r < R; r++) loss += l[r];
            free(l);
        }
        gptq_solve_bufs_free(be, &b);
        double mh = median(th, reps), mc = median(tc, reps), mb = median(tb, reps),
               ms = median(ts, reps);
        double hflops = (double)tokens * (double)C * (double)(C + 1);
        double sflops = (double)C * C * C + 2.0 * (double)R * C * C;
        printf("%-12s %10.4f %8.2f %10.2e %9.4f %9.4f %9.4f %11.2f %10.4g\n", tok, mh,
               hflops / mh / 1e12, herr, mc, mb, ms, sflops / ms / 1e12, loss);
        fflush(stdout);
        if (!isfinite(loss)) status = 1;
        free(H);
        free(W);
    }
    free(list);
    if (attn) bench_attention(be, 4, 2048, reps);
    if (lin) bench_linear(be, 32768, reps);
    gptq_backend_close(be);
    if (status) fprintf(stderr, "bench_hip_layer: a Hessian check or a loss failed\n");
    return status;
}
