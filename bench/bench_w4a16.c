/*
 * bench_w4a16.c — the CPU backend's fast A16 matmul (matmul_q_fast) at
 * Llama-2-7B shapes, 4-bit, group 128, against the memory bandwidth this
 * program measures on the same machine.
 *
 *   bench_w4a16 [--layers N] [--reps N] [--m M] [--gb G] [--threads T,T,...]
 *
 * 1. Bandwidth, STREAM-like, OpenMP static over all threads, best of reps:
 *    "read"  s ^= a[i] over G GB (default 1) of 64-bit words (bytes: G GB);
 *    "triad" a[i] = b[i] + 3 c[i] over three arrays of G/3 GB (bytes: 3 x
 *            the array, STREAM's count: write-allocate traffic not counted).
 *    Arrays are first touched by the threads that use them.
 * 2. Validation: a 4096 x 4096 layer at M = 1 and M = 17 against
 *    gptq_matmul_ref, every output within 2 gamma(K + 2) sum|xh w| (the
 *    bound tests/test_w4a16.c argues); a failure ends the program (exit 1).
 * 3. One layer of each shape (in x out: 4096x4096 q/k/v/o, 4096x11008
 *    gate/up, 11008x4096 down) at M = 1 (decode) and M = --m (prefill,
 *    default 64): seconds per call (best of reps), GB/s of weight bytes
 *    read (qweight + qzeros + scales + g_idx, once per call), and that rate
 *    as a fraction of "read" and of "triad"; prefill also in GFLOP/s
 *    (2 M K N). One layer called again and again stays partly in the
 *    last-level cache (8 to 23 MB): these decode rates can pass the DRAM
 *    bandwidth; step 4 is the honest decode figure.
 * 4. A whole decode step: every linear of --layers decoder layers (default
 *    32, 7 linears each, all resident: 3.37 GB at 32, distinct weights, far
 *    beyond any cache), M = 1, in order: seconds, GB/s, fractions, tokens/s
 *    (attention and the rest not counted: the linears are the weight
 *    traffic of a decode step).
 * 5. --threads T,T,...: steps 1 (read and triad) and 4 again at each of
 *    those thread counts (omp_set_num_threads), one line each.
 * Where the weights live: gptq_qdev_upload puts them in buffers the CPU
 * backend allocates and zero-fills on the calling thread, as `gptq
 * generate`'s loader does; so their pages are first touched by the main
 * thread, exactly what a real run gets (on a machine of one NUMA node, as
 * the device's VM, placement does not matter; on several it would).
 * The ISA is the one matmul_q_fast picks (GPTQ_CPU_ISA forces one); threads
 * from OMP_NUM_THREADS. "GB/cpu-s" divides the same bytes by the process's
 * CPU seconds (all threads) of the best call: on a machine shared with other
 * work, where wall times stretch, it is what one core delivers per second it
 * actually ran (at 1 thread; at T threads roughly GB/s / T on an idle machine).
 */
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define W4A16_BENCH "bench_w4a16"
#include "w4a16_common.h"

static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- 1. bandwidth ---------------------------------------------------- */

static double bw_read(size_t n, int reps)
{
    uint64_t *a = malloc(n * sizeof(uint64_t));
    if (!a) return 0.0;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) a[i] = i;
    double best = 1e30;
    uint64_t sink = 0;
    for (int r = 0; r <= reps; r++) {
        uint64_t s = 0;
        const double t0 = gptq_now();
        /* an integer xor: the compiler vectorizes it (a float sum it may not reorder) */
#pragma omp parallel for schedule(static) reduction(^ : s)
        for (size_t i = 0; i < n; i++) s ^= a[i];
        const double t = gptq_now() - t0;
        sink ^= s;
        if (r > 0 && t < best) best = t;
    }
    free(a);
    if (sink == 1) printf("(never)\n");
    return (double)(n * sizeof(uint64_t)) / best / 1e9;
}

static double bw_triad(size_t n, int reps)
{
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float)),
          *c = malloc(n * sizeof(float));
    if (!a || !b || !c) return 0.0;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        a[i] = 0.0f;
        b[i] = 1.0f;
        c[i] = 2.0f;
    }
    double best = 1e30;
    for (int r = 0; r <= reps; r++) {
        const double t0 = gptq_now();
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) a[i] = b[i] + 3.0f * c[i];
        const double t = gptq_now() - t0;
        if (r > 0 && t < best) best = t;
    }
    if (a[n / 2] != 7.0f) printf("triad: wrong result\n");
    free(a);
    free(b);
    free(c);
    return 3.0 * (double)(n * sizeof(float)) / best / 1e9;
}

/* ---- a random 4-bit g128 layer on the backend ------------------------ */

/* qweight hashed in parallel: a decode step is gigabytes of layers */
static void make_layer(gptq_backend *be, int64_t K, int64_t N, layer *L)
{
    gptq_packed p = host_layer(K, N, QW_HASH);
    upload_layer(be, &p, L);
    gptq_packed_free(&p);
}

/* ---- 2. validation --------------------------------------------------- */

static void validate(gptq_backend *be, int64_t M)
{
    const check c = validate_call(be, M, QW_HASH);
    if (c.m >= 0) {
        fprintf(stderr, "bench_w4a16: validation failed at M=%lld Y[%lld][%lld]: %.9g "
                "vs reference %.9g (bound %.3g)\n", (long long)M, (long long)c.m,
                (long long)c.n, c.got, c.ref, c.bound);
        exit(1);
    }
    printf("validated: 4096x4096 M=%lld against gptq_matmul_ref, largest |diff| %.3f of "
           "2 gamma(K+2) sum|x w|\n", (long long)M, c.worst);
}

/* ---- 3 and 4 --------------------------------------------------------- */

/* best wall seconds of reps calls; *cpu: the process CPU seconds of that call */
static double time_layer(gptq_backend *be, const layer *L, int64_t M, int reps, double *cpu)
{
    io b;
    make_io(be, M, L->K, L->N, &b, NULL);
    double best = 1e30;
    for (int r = 0; r <= reps; r++) {
        const double c0 = cpu_now(), t0 = gptq_now();
        call(be, L, M, &b);
        const double t = gptq_now() - t0;
        if (r > 0 && t < best) {
            best = t;
            *cpu = cpu_now() - c0;
        }
    }
    free_io(be, &b);
    return best;
}

/* best wall seconds of reps decode steps (every layer in order, M = 1);
 * *cpu: the process CPU seconds of that step */
static double time_step(gptq_backend *be, const layer *Ls, int nl, const io *bx, int reps,
                        double *cpu)
{
    double best = 1e30;
    for (int r = 0; r <= reps; r++) {
        const double c0 = cpu_now(), t0 = gptq_now();
        for (int i = 0; i < nl; i++) call(be, &Ls[i], 1, bx);
        const double t = gptq_now() - t0;
        if (r > 0 && t < best) {
            best = t;
            *cpu = cpu_now() - c0;
        }
    }
    return best;
}

int main(int argc, char **argv)
{
    int nlayers = 32, reps = 5, nsweep = 0, sweep[16];
    int64_t Mp = 64;
    double gb = 1.0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) goto usage;
        if (!strcmp(argv[i], "--layers")) nlayers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--m")) Mp = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--gb")) gb = atof(argv[++i]);
        else if (!strcmp(argv[i], "--threads")) {
            for (char *t = strtok(argv[++i], ","); t; t = strtok(NULL, ",")) {
                if (nsweep == 16 || atoi(t) < 1) goto usage;
                sweep[nsweep++] = atoi(t);
            }
        } else goto usage;
    }
    if (nlayers < 1 || reps < 1 || Mp < 1 || !(gb > 0)) goto usage;
    gptq_backend *be;
    if (gptq_backend_open("cpu", &be)) die("cpu backend");
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    const size_t nread = (size_t)(gb * 1e9 / 8), ntriad = (size_t)(gb * 1e9 / 4) / 3;
    const double rd = bw_read(nread, reps), tr = bw_triad(ntriad, reps);
    printf("threads %d; bandwidth over %.2f GB: read %.1f GB/s, triad %.1f GB/s\n", threads, gb,
           rd, tr);
    validate(be, 1);
    validate(be, 17);

    const char *impl = NULL;
    printf("one layer called repeatedly (partly cache-resident; the decode step below is not)\n");
    printf("%-12s %5s %10s %9s %7s %7s %9s %9s\n", "K x N", "M", "seconds", "GB/s", "%read",
           "%triad", "GB/cpu-s", "GFLOP/s");
    for (int s = 0; s < 3; s++) {
        layer L;
        make_layer(be, k_shapes[s][0], k_shapes[s][1], &L);
        const int64_t Ms[2] = {1, Mp};
        for (int i = 0; i < 2; i++) {
            double cpu = 0.0;
            const double t = time_layer(be, &L, Ms[i], reps, &cpu);
            const double gbs = L.bytes / t / 1e9;
            char name[32];
            snprintf(name, sizeof name, "%lldx%lld", (long long)L.K, (long long)L.N);
            printf("%-12s %5lld %10.6f %9.1f %6.1f%% %6.1f%% %9.2f %9.1f\n", name,
                   (long long)Ms[i], t, gbs, 100 * gbs / rd, 100 * gbs / tr, L.bytes / cpu / 1e9,
                   2.0 * (double)Ms[i] * (double)L.K * (double)L.N / t / 1e9);
        }
        io b;
        make_io(be, 1, L.K, L.N, &b, NULL);
        impl = call(be, &L, 1, &b);
        free_io(be, &b);
        gptq_qdev_free(be, &L.q);
    }

    /* the decode step: q, k, v, o, gate, up, down of every layer, resident */
    const int nl = nlayers * 7;
    layer *Ls = calloc((size_t)nl, sizeof *Ls);
    if (!Ls) return 1;
    double bytes = 0.0;
    for (int i = 0; i < nl; i++) {
        make_layer(be, k_shapes[k_order[i % 7]][0], k_shapes[k_order[i % 7]][1], &Ls[i]);
        bytes += Ls[i].bytes;
    }
    io bx;
    make_io(be, 1, 11008, 11008, &bx, NULL); /* large enough for every shape */
    double cpu = 0.0;
    const double best = time_step(be, Ls, nl, &bx, reps, &cpu), gbs = bytes / best / 1e9;
    printf("decode step, %d layers x 7 linears, %.2f GB of weights: %.4f s, %.1f GB/s, %.1f%% of "
           "read, %.1f%% of triad, %.2f tokens/s; %.2f GB/cpu-s\n", nlayers, bytes / 1e9, best,
           gbs, 100 * gbs / rd, 100 * gbs / tr, 1.0 / best, bytes / cpu / 1e9);
    printf("isa %s\n", impl ? impl : "?");
    for (int i = 0; i < nsweep; i++) {
#ifdef _OPENMP
        omp_set_num_threads(sweep[i]);
#endif
        const double r = bw_read(nread, reps), t = bw_triad(ntriad, reps);
        const double s = time_step(be, Ls, nl, &bx, reps, &cpu), g = bytes / s / 1e9;
        printf("threads %2d: read %5.1f GB/s, triad %5.1f GB/s; decode step %.4f s, %5.1f GB/s, "
               "%5.1f%% of read, %5.1f%% of triad, %6.2f tokens/s\n", sweep[i], r, t, s, g,
               100 * g / r, 100 * g / t, 1.0 / s);
    }
    for (int i = 0; i < nl; i++) gptq_qdev_free(be, &Ls[i].q);
    free(Ls);
    free_io(be, &bx);
    gptq_backend_close(be);
    return 0;
usage:
    fprintf(stderr, "usage: bench_w4a16 [--layers N] [--reps N] [--m M] [--gb G] "
            "[--threads T,T,...]\n");
    return 2;
}
