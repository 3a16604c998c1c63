/*
 * bench_hip_w4a16.c — a backend's fast A16 matmul (matmul_q_fast; the HIP
 * plugin's backends/hip/hip_w4a16.hip by default) at Llama-2-7B shapes,
 * 4-bit, group 128, against the device copy bandwidth it measures.
 *
 *   bench_hip_w4a16 [--backend hip|cpu|PATH] [--layers N] [--reps N] [--gb G]
 *                   [--sections validate,shapes,decode,joined,floor,prefill]
 *
 * (--sections: the parts to run, default all but once; the copy bandwidth
 * always; once: one call of each shape, for a profiler)
 *
 * 1. Copy bandwidth: the backend's `copy` of G GB (default 1) from one
 *    device buffer to another (hipMemcpyAsync device to device on the HIP
 *    plugin), best of reps; bytes = read + write = 2 G GB.
 * 2. Validation: a 4096 x 4096 layer at M = 1 (gemv-mma on NVIDIA, else
 *    gemv), M = 17 (the GEMM), M = 16 under GPTQ_HIP_W4A16=mma (gemv-mma's
 *    two token blocks), then under GPTQ_HIP_W4A16=simt at M = 1 (the SIMT
 *    gemv) against gptq_matmul_ref, every output within 2 gamma(K + 2) sum|xh w|
 *    (backend.h's bound); a failure ends the program (exit 1).
 * 3. Each shape (in x out: 4096x4096 q/k/v/o, 4096x11008 gate/up, 11008x4096
 *    down) at M = 1: calls cycling over distinct resident copies of the
 *    layer (>= 512 MB in all, ten times the 50 MB L2 of an H100/H200, so no
 *    call finds its weight cached), seconds per call (best and median of
 *    reps; each timed pass is 4 rounds over the copies), GB/s of weight
 *    bytes (qweight + qzeros + scales + g_idx, read once per call) and that rate as a fraction of the copy bandwidth;
 *    on the default path, then under GPTQ_HIP_W4A16=simt.
 * 4. A whole decode step: every linear of --layers decoder layers (default
 *    32 x 7 linears, all distinct and resident: 3.4 GB), M = 1, back to back
 *    on the backend's stream, one sync at the end: seconds (best, median),
 *    GB/s, fraction of copy, steps/s if the linears were the whole step;
 *    at M = 1, at M = 16 (a batch of 16 sequences), then M = 1 under
 *    GPTQ_HIP_W4A16=simt (the SIMT GEMV). Then (section joined) the step
 *    as generation runs it by default, q|k|v and gate|up joined: 4 calls a
 *    layer (4096 x 12288, 4096 x 4096, 4096 x 22016, 11008 x 4096). Then the floor of a call: as many
 *    calls on one 128 x 128 layer (in L2): what launch and fixed latency
 *    cost each call whatever its size.
 * 5. Prefill M = 64, 512, 2048 at each shape: TFLOP/s (2 M K N flops).
 * Times are host clock around the queued calls and the backend's sync
 * (launch gaps included, as a decode loop sees them). hipEvents and a
 * hipGraph of the step would need the plugin's stream, which the backend
 * ABI does not expose (bench/HIP_NOTES.md).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define W4A16_BENCH "bench_hip_w4a16"
#include "w4a16_common.h"

static gptq_backend *g_be;

static void dsync(void)
{
    if (gptq_be_check(g_be, g_be->iface->sync(g_be->ctx), "sync")) die("sync");
}

static int cmp_d(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* best and median of n times (sorted in place) */
static void stats(double *t, int n, double *best, double *med)
{
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    *best = t[0];
    *med = t[n / 2];
}

/* ---- 1. copy bandwidth ---------------------------------------------- */

static double bw_copy(double gb, int reps)
{
    const size_t n = (size_t)(gb * 1e9) / 256 * 256;
    gptq_buf *a, *b;
    if (gptq_be_alloc(g_be, n, &a, "copy source") || gptq_be_alloc(g_be, n, &b, "copy target"))
        die("copy buffers");
    double best = 1e30;
    for (int r = 0; r <= reps; r++) {
        dsync();
        const double t0 = gptq_now();
        if (gptq_be_check(g_be, g_be->iface->copy(g_be->ctx, b, 0, a, 0, n), "copy")) die("copy");
        dsync();
        const double t = gptq_now() - t0;
        if (r > 0 && t < best) best = t;
    }
    gptq_be_free(g_be, a);
    gptq_be_free(g_be, b);
    return 2.0 * (double)n / best / 1e9;
}

/* ---- 2. validation --------------------------------------------------- */

static void validate(int64_t M)
{
    const check c = validate_call(g_be, M, QW_RND);
    if (c.m >= 0) {
        fprintf(stderr, "bench_hip_w4a16: validation failed (%s) at M=%lld "
                "Y[%lld][%lld]: %.9g vs reference %.9g (bound %.3g)\n", c.impl,
                (long long)M, (long long)c.m, (long long)c.n, c.got, c.ref, c.bound);
        exit(1);
    }
    printf("validated (%s): 4096x4096 M=%lld against gptq_matmul_ref, largest |diff| %.4f of "
           "2 gamma(K+2) sum|x w|\n", c.impl, (long long)M, c.worst);
}

/* ---- 3, 4, 5 ----------------------------------------------------------- */

/* seconds of `rounds` passes over the nl layers at M rows, one sync at the end */
static double pass(const layer *Ls, int nl, int rounds, int64_t M, const io *b, double *queued)
{
    dsync();
    const double t0 = gptq_now();
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < nl; i++) call(g_be, &Ls[i], M, b);
    if (queued) *queued = gptq_now() - t0; /* the host's side: queueing the calls */
    dsync();
    return gptq_now() - t0;
}

enum { MAXREPS = 64 };

int main(int argc, char **argv)
{
    int nlayers = 32, reps = 7;
    double gb = 1.0;
    const char *sections = "validate,shapes,decode,joined,floor,prefill";
    const char *bname = "hip";
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) goto usage;
        if (!strcmp(argv[i], "--layers")) nlayers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--gb")) gb = atof(argv[++i]);
        else if (!strcmp(argv[i], "--backend")) bname = argv[++i];
        else if (!strcmp(argv[i], "--sections")) sections = argv[++i];
        else goto usage;
    }
    if (nlayers < 1 || reps < 1 || reps > MAXREPS || !(gb > 0)) goto usage;
    if (gptq_backend_open(bname, &g_be)) die("opening the backend");
    if (!gptq_be_supports(g_be, GPTQ_OP_MATMUL_Q_FAST)) {
        fprintf(stderr, "bench_hip_w4a16: backend %s has no matmul_q_fast\n", bname);
        return 1;
    }
    const double cp = bw_copy(gb, reps);
    printf("backend %s; copy bandwidth (device to device, %.2f GB, read + write): %.1f GB/s\n",
           bname, gb, cp);
    if (strstr(sections, "validate")) {
        validate(1);
        validate(17);
        setenv("GPTQ_HIP_W4A16", "mma", 1); /* gemv-mma at 16 rows */
        validate(16);
        setenv("GPTQ_HIP_W4A16", "simt", 1); /* the SIMT GEMV (the AMD path) */
        validate(1);
        unsetenv("GPTQ_HIP_W4A16");
    }

    gptq_packed hp[3];
    for (int s = 0; s < 3; s++) hp[s] = host_layer(k_shapes[s][0], k_shapes[s][1], QW_RND);
    double t[MAXREPS + 1], best, med;

    /* (section once, for a profiler: one call at M = 1 of each shape, the
     * three of k_shapes then the joined q|k|v and gate|up, in that order) */
    if (strstr(sections, "once")) {
        io bo;
        make_io(g_be, 1, 11008, 2 * 11008, &bo, NULL);
        const int64_t *once[5] = {k_shapes[0], k_shapes[1], k_shapes[2], k_jshapes[0],
                                  k_jshapes[2]};
        for (int s = 0; s < 5; s++) {
            gptq_packed p = host_layer(once[s][0], once[s][1], QW_RND);
            layer L;
            upload_layer(g_be, &p, &L);
            gptq_packed_free(&p);
            const char *impl = call(g_be, &L, 1, &bo);
            dsync();
            printf("once: %lld x %lld, M = 1 (%s)\n", (long long)L.K, (long long)L.N, impl);
            gptq_qdev_free(g_be, &L.q);
        }
        free_io(g_be, &bo);
    }

    /* 3. one shape at M = 1, over distinct copies */
    printf("%-12s %5s %11s %11s %9s %7s  %s\n", "K x N", "M", "best s", "median s", "GB/s",
           "%copy", "path");
    for (int si = 0; si < 6 && strstr(sections, "shapes"); si++) {
        const int s = si % 3; /* each shape on the default path, then GPTQ_HIP_W4A16=simt */
        if (si == 3) setenv("GPTQ_HIP_W4A16", "simt", 1);
        layer L0;
        upload_layer(g_be, &hp[s], &L0);
        const int nc = (int)ceil(512e6 / L0.bytes);
        layer *Ls = calloc((size_t)nc, sizeof *Ls);
        if (!Ls) return 1;
        Ls[0] = L0;
        for (int i = 1; i < nc; i++) upload_layer(g_be, &hp[s], &Ls[i]);
        io b;
        make_io(g_be, 1, L0.K, L0.N, &b, NULL);
        const char *impl = call(g_be, &Ls[0], 1, &b);
        /* 4 rounds: the final sync's cost shared by 4 nc calls */
        for (int r = 0; r <= reps; r++) t[r] = pass(Ls, nc, 4, 1, &b, NULL) / (4 * nc);
        stats(t + 1, reps, &best, &med);
        char name[32];
        snprintf(name, sizeof name, "%lldx%lld", (long long)L0.K, (long long)L0.N);
        printf("%-12s %5d %11.3e %11.3e %9.1f %6.1f%%  %s (%d copies)\n", name, 1, best, med,
               L0.bytes / best / 1e9, 100 * L0.bytes / best / 1e9 / cp, impl, nc);
        free_io(g_be, &b);
        for (int i = 0; i < nc; i++) gptq_qdev_free(g_be, &Ls[i].q);
        free(Ls);
    }
    if (strstr(sections, "shapes")) unsetenv("GPTQ_HIP_W4A16");

    /* 4. the decode step: q, k, v, o, gate, up, down of every layer, resident */
    const int nl = nlayers * 7, decode = strstr(sections, "decode") != NULL;
    layer *Ls = calloc((size_t)nl, sizeof *Ls);
    if (!Ls) return 1;
    double bytes = 0.0;
    for (int i = 0; i < nl && decode; i++) {
        upload_layer(g_be, &hp[k_order[i % 7]], &Ls[i]);
        bytes += Ls[i].bytes;
    }
    io bx;
    make_io(g_be, 16, 11008, 11008, &bx, NULL); /* large enough for every shape and M */
    /* the default path at M = 1 and 16, then the SIMT GEMV (GPTQ_HIP_W4A16=simt) at M = 1 */
    static const struct { int64_t M; const char *mode; } runs[3] = {{1, NULL}, {16, NULL}, {1, "simt"}};
    for (int ri = 0; ri < 3 && decode; ri++) {
        if (runs[ri].mode) setenv("GPTQ_HIP_W4A16", runs[ri].mode, 1);
        const int64_t M = runs[ri].M;
        const char *impl = call(g_be, &Ls[0], M, &bx);
        for (int r = 0; r <= reps; r++) t[r] = pass(Ls, nl, 1, M, &bx, NULL);
        stats(t + 1, reps, &best, &med);
        printf("decode step, %d layers x 7 linears, %.2f GB of distinct resident weights, M = %lld "
               "(%s): best %.4f s (median %.4f), %.1f GB/s, %.1f%% of copy, %.1f steps/s\n",
               nlayers, bytes / 1e9, (long long)M, impl, best, med, bytes / best / 1e9,
               100 * bytes / best / 1e9 / cp, 1.0 / best);
        if (runs[ri].mode) unsetenv("GPTQ_HIP_W4A16");
    }
    for (int i = 0; i < nl && decode; i++) gptq_qdev_free(g_be, &Ls[i].q);
    free(Ls);
    /* the same step with joined linears (generation's default): four calls
     * a layer, q|k|v (4096 x 12288) and gate|up (4096 x 22016) one each */
    if (strstr(sections, "joined")) {
        const int nj = nlayers * 4;
        layer *Lj = calloc((size_t)nj, sizeof *Lj);
        gptq_packed jp[4];
        if (!Lj) return 1;
        for (int s = 0; s < 4; s++) jp[s] = host_layer(k_jshapes[s][0], k_jshapes[s][1], QW_RND);
        double jbytes = 0.0;
        for (int i = 0; i < nj; i++) {
            upload_layer(g_be, &jp[i % 4], &Lj[i]);
            jbytes += Lj[i].bytes;
        }
        for (int s = 0; s < 4; s++) gptq_packed_free(&jp[s]);
        const char *impl = call(g_be, &Lj[0], 1, &bx);
        for (int r = 0; r <= reps; r++) t[r] = pass(Lj, nj, 1, 1, &bx, NULL);
        stats(t + 1, reps, &best, &med);
        printf("decode step, joined, %d layers x 4 linears, %.2f GB of distinct resident weights, "
               "M = 1 (%s): best %.4f s (median %.4f), %.1f GB/s, %.1f%% of copy, %.1f steps/s\n",
               nlayers, jbytes / 1e9, impl, best, med, jbytes / best / 1e9,
               100 * jbytes / best / 1e9 / cp, 1.0 / best);
        for (int i = 0; i < nj; i++) gptq_qdev_free(g_be, &Lj[i].q);
        free(Lj);
    }
    /* the floor of a call: the same number of calls on one 128 x 128 layer
     * (66 KB, in L2), M = 1: launch, the kernel's fixed latency and the gap */
    if (strstr(sections, "floor")) {
        gptq_packed tp = host_layer(128, 128, QW_RND);
        layer T;
        upload_layer(g_be, &tp, &T);
        const char *impl = call(g_be, &T, 1, &bx);
        double tq[MAXREPS + 1], qbest, qmed;
        for (int r = 0; r <= reps; r++) t[r] = pass(&T, 1, nl, 1, &bx, &tq[r]);
        stats(t + 1, reps, &best, &med);
        stats(tq + 1, reps, &qbest, &qmed);
        printf("call floor: %d calls of one 128x128 layer, M = 1 (%s): best %.4f s (median %.4f), "
               "%.2f us a call, of which queueing on the host %.2f us (median)\n", nl, impl, best,
               med, 1e6 * best / nl, 1e6 * qmed / nl);
        gptq_qdev_free(g_be, &T.q);
        gptq_packed_free(&tp);
    }
    free_io(g_be, &bx);

    /* 5. prefill */
    printf("%-12s %5s %11s %11s %9s  %s\n", "K x N", "M", "best s", "median s", "TFLOP/s", "path");
    static const int64_t Mp[3] = {64, 512, 2048};
    for (int s = 0; s < 3 && strstr(sections, "prefill"); s++) {
        layer L;
        upload_layer(g_be, &hp[s], &L);
        for (int i = 0; i < 3; i++) {
            io b;
            make_io(g_be, Mp[i], L.K, L.N, &b, NULL);
            const char *impl = call(g_be, &L, Mp[i], &b);
            for (int r = 0; r <= reps; r++) t[r] = pass(&L, 1, 1, Mp[i], &b, NULL);
            stats(t + 1, reps, &best, &med);
            char name[32];
            snprintf(name, sizeof name, "%lldx%lld", (long long)L.K, (long long)L.N);
            printf("%-12s %5lld %11.3e %11.3e %9.2f  %s\n", name, (long long)Mp[i], best, med,
                   2.0 * (double)Mp[i] * (double)L.K * (double)L.N / best / 1e12, impl);
            free_io(g_be, &b);
        }
        gptq_qdev_free(g_be, &L.q);
    }
    for (int s = 0; s < 3; s++) gptq_packed_free(&hp[s]);
    gptq_backend_close(g_be);
    return 0;
usage:
    fprintf(stderr, "usage: bench_hip_w4a16 [--backend hip|cpu|PATH] [--layers N] [--reps N "
                    "(1..%d)] [--gb G] [--sections validate,shapes,decode,joined,floor,prefill]\n",
            MAXREPS);
    return 2;
}
