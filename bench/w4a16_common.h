/*
 * w4a16_common.h — what the two matmul_q_fast benches share: bench_w4a16.c
 * (the CPU backend) and bench_hip_w4a16.c (any backend, the HIP plugin by
 * default). A random 4-bit g128 layer on the host and on the backend, the
 * X and Y buffers of a call, the call, and the validation of one call
 * against gptq_matmul_ref. Each bench keeps its own messages: it defines
 * W4A16_BENCH (its program name, the prefix of the errors below) before
 * including this, and prints the validation's outcome itself.
 *
 * One random stream (rnd) per program, drawn in the order each bench drew
 * it before the two shared this file, so their layers and inputs, and the
 * validation figures they print, are what they were.
 */
#ifndef GPTQ_BENCH_W4A16_COMMON_H
#define GPTQ_BENCH_W4A16_COMMON_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/format.h"
#include "internal.h"

#ifndef W4A16_BENCH
#error "define W4A16_BENCH (the program's name, for its messages) before including w4a16_common.h"
#endif

static uint64_t g_rng = 0x2545F4914F6CDD1Dull;
static inline uint32_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 16);
}

static inline void die(const char *what)
{
    fprintf(stderr, W4A16_BENCH ": %s: %s\n", what, gptq_last_error());
    exit(1);
}

/* Llama-2-7B's linears, in x out: q/k/v/o, gate/up, down; and a decoder
 * layer's seven (q, k, v, o, gate, up, down) in order, as rows of k_shapes */
static const int64_t k_shapes[3][2] = {{4096, 4096}, {4096, 11008}, {11008, 4096}};
static const int k_order[7] = {0, 0, 0, 0, 1, 1, 2};
/* the same layer as generation runs it with joined linears
 * (gptq_model_kv_set_join): q|k|v one tensor, o, gate|up one, down */
static const int64_t k_jshapes[4][2] = {{4096, 3 * 4096}, {4096, 4096}, {4096, 2 * 11008},
                                        {11008, 4096}};

/* ---- a random 4-bit g128 layer ---------------------------------------- */

typedef struct layer {
    gptq_qdev q;
    int64_t K, N;
    double bytes; /* weight bytes a call reads */
} layer;

/* How host_layer fills qweight; any word is a valid 4-bit stream.
 * QW_HASH: a multiplicative hash of the index, in parallel and drawing
 * nothing from rnd (bench_w4a16 builds gigabytes of layers on the CPU);
 * QW_RND: two rnd draws a word (bench_hip_w4a16). */
enum qw_fill { QW_HASH, QW_RND };

/* qweight as fill says; scales in [2^-11, 2^-7); zeros any (v2: every field
 * is a zero); g_idx k / 128. */
static inline gptq_packed host_layer(int64_t K, int64_t N, enum qw_fill fill)
{
    gptq_packed p = {.bits = 4, .in_features = K, .out_features = N, .ngroups = K / 128};
    p.qweight = malloc((size_t)(K / 8 * N) * 4);
    p.qzeros = malloc((size_t)(p.ngroups * N / 8) * 4);
    p.scales = malloc((size_t)(p.ngroups * N) * 2);
    p.g_idx = malloc((size_t)K * 4);
    if (!p.qweight || !p.qzeros || !p.scales || !p.g_idx) {
        fprintf(stderr, W4A16_BENCH ": out of memory\n");
        exit(1);
    }
    if (fill == QW_HASH) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < K / 8 * N; i++)
            p.qweight[i] = (int32_t)(uint32_t)(i * 2654435761u ^ (uint64_t)i >> 7);
    } else {
        for (int64_t i = 0; i < K / 8 * N; i++) p.qweight[i] = (int32_t)rnd() ^ (int32_t)(rnd() << 16);
    }
    for (int64_t i = 0; i < p.ngroups * N / 8; i++) p.qzeros[i] = (int32_t)rnd();
    for (int64_t i = 0; i < p.ngroups * N; i++) p.scales[i] = (uint16_t)(0x1000 + (rnd() >> 20));
    for (int64_t k = 0; k < K; k++) p.g_idx[k] = (int32_t)(k / 128);
    return p;
}

static inline void upload_layer(gptq_backend *be, const gptq_packed *p, layer *L)
{
    if (gptq_qdev_upload(be, p, GPTQ_FORMAT_V2, 1, &L->q)) die("upload");
    const int64_t K = p->in_features, N = p->out_features;
    L->K = K;
    L->N = N;
    L->bytes = (double)(K / 8 * N) * 4 + (double)(p->ngroups * N / 8) * 4 +
               (double)(p->ngroups * N) * 2 + (double)K * 4;
}

/* ---- a call ----------------------------------------------------------- */

typedef struct io {
    gptq_buf *X, *Y;
} io;

/* X (M x K) random in [-1, 1], uploaded; Y (M x N) allocated. Xhost: when
 * not NULL, gets X. */
static inline void make_io(gptq_backend *be, int64_t M, int64_t K, int64_t N, io *b,
                           float *Xhost)
{
    float *X = malloc((size_t)(M * K) * 4);
    if (!X) exit(1);
    for (int64_t i = 0; i < M * K; i++) X[i] = (float)(rnd() % 2001u) / 1000.0f - 1.0f;
    if (gptq_be_alloc(be, (size_t)(M * K) * 4, &b->X, "X") ||
        gptq_be_upload(be, b->X, 0, X, (size_t)(M * K) * 4) ||
        gptq_be_alloc(be, (size_t)(M * N) * 4, &b->Y, "Y"))
        die("buffers");
    if (Xhost) memcpy(Xhost, X, (size_t)(M * K) * 4);
    free(X);
}

static inline void free_io(gptq_backend *be, io *b)
{
    gptq_be_free(be, b->X);
    gptq_be_free(be, b->Y);
}

/* Y = X W through matmul_q_fast; returns the path it took */
static inline const char *call(gptq_backend *be, const layer *L, int64_t M, const io *b)
{
    const char *impl = NULL;
    if (gptq_be_check(be, be->iface->matmul_q_fast(be->ctx, &L->q.t, b->X, 0, M, NULL, b->Y, 0,
                                                   &impl), "matmul_q_fast"))
        die("matmul_q_fast");
    return impl;
}

/* ---- validation ------------------------------------------------------- */

/* What validate_call found. */
typedef struct check {
    const char *impl;       /* the path matmul_q_fast took */
    double worst;           /* the largest |diff| / bound over the outputs checked */
    int64_t m, n;           /* the first output past its bound; m = -1: none */
    double got, ref, bound; /* that output, its reference and its bound */
} check;

/* A 4096 x 4096 layer (qweight as fill says) at M rows through
 * matmul_q_fast against gptq_matmul_ref: every output within
 * 2 gamma(K + 2) sum|xh w| (xh: x rounded to f16; the bound backend.h states
 * and tests/test_w4a16.c argues). Stops at the first output past it. */
static inline check validate_call(gptq_backend *be, int64_t M, enum qw_fill fill)
{
    const int64_t K = 4096, N = 4096;
    gptq_packed p = host_layer(K, N, fill);
    layer L;
    upload_layer(be, &p, &L);
    io b;
    float *X = malloc((size_t)(M * K) * 4), *Yr = malloc((size_t)(M * N) * 4),
          *Yf = malloc((size_t)(M * N) * 4), *W = malloc((size_t)(N * K) * 4);
    if (!X || !Yr || !Yf || !W) exit(1);
    make_io(be, M, K, N, &b, X);
    check c = {.impl = call(be, &L, M, &b), .m = -1};
    if (gptq_be_download(be, b.Y, 0, Yf, (size_t)(M * N) * 4)) die("download");
    if (gptq_matmul_ref(&p, GPTQ_FORMAT_V2, X, M, NULL, Yr) || gptq_dequantize(&p, GPTQ_FORMAT_V2, W))
        die("reference");
    const double u = 0x1p-24, g2 = 2.0 * (double)(K + 2) * u / (1.0 - (double)(K + 2) * u);
    for (int64_t m = 0; m < M && c.m < 0; m++)
        for (int64_t n = 0; n < N && c.m < 0; n++) {
            double S = 0.0;
            for (int64_t k = 0; k < K; k++)
                S += fabs((double)gptq_f16_to_f32(gptq_f32_to_f16(X[m * K + k])) * W[n * K + k]);
            const double d = fabs((double)Yf[m * N + n] - (double)Yr[m * N + n]);
            if (!(d <= g2 * S)) { /* a NaN fails too */
                c.m = m;
                c.n = n;
                c.got = (double)Yf[m * N + n];
                c.ref = (double)Yr[m * N + n];
                c.bound = g2 * S;
            } else if (d / (g2 * S) > c.worst) c.worst = d / (g2 * S);
        }
    free(X);
    free(Yr);
    free(Yf);
    free(W);
    free_io(be, &b);
    gptq_qdev_free(be, &L.q);
    gptq_packed_free(&p);
    return c;
}

#endif
