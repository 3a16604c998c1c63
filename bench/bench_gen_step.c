/*
 * bench_gen_step.c — one `gptq generate` decode step (a token through every
 * layer and the head, against the KV cache) with the fast linears joined
 * (gptq_generator_options.join_linears = 1, the default: q|k|v and
 * gate|up one packed tensor each) and apart (= 0), through the public API.
 *
 *   bench_gen_step MODEL_DIR [--backend NAME] [--steps N] [--rounds R]
 *
 * Both generators are open at once on one backend; each round prefills a
 * fixed 16-token prompt on one, times N steps (forced tokens, no sampling),
 * then does the same on the other, so the two alternate through the
 * machine's changing state (a shared machine drifts by 10-20% over a
 * minute: runs of `gptq generate` one after the other were not comparable).
 * Prints the best time a step over the R rounds, for each, and their ratio.
 * The model is a GPTQ checkpoint (a floating-point one has nothing to join).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gptq.h"

static void die(const char *what)
{
    fprintf(stderr, "bench_gen_step: %s: %s\n", what, gptq_last_error());
    exit(1);
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *bname = "cpu";
    int steps = 100, rounds = 8;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--backend") && i + 1 < argc) bname = argv[++i];
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (argv[i][0] != '-' && !dir) dir = argv[i];
        else goto usage;
    }
    if (!dir || steps < 1 || rounds < 1) goto usage;
    gptq_backend *be = NULL;
    if (gptq_backend_open(bname, &be)) die("opening the backend");
    gptq_generator *g[2];
    for (int j = 0; j < 2; j++) {
        gptq_generator_options o;
        gptq_generator_options_init(&o);
        o.join_linears = j;
        if (gptq_generator_open_with(dir, be, &o, &g[j])) die(dir);
    }
    int32_t ids[16];
    for (int i = 0; i < 16; i++) ids[i] = 5 + 3 * i;
    const int64_t n = 16;
    double best[2] = {1e30, 1e30};
    for (int r = 0; r < rounds; r++)
        for (int j = 0; j < 2; j++) {
            if (gptq_generator_prefill(g[j], ids, n, n + steps + 1)) die("prefill");
            const double t0 = gptq_now_seconds();
            for (int s = 0; s < steps; s++)
                if (gptq_generator_step(g[j], (int32_t)(7 + s % 31))) die("step");
            const double t = (gptq_now_seconds() - t0) / steps;
            best[j] = t < best[j] ? t : best[j];
        }
    gptq_generator_stats st;
    gptq_generator_stats_init(&st);
    if (gptq_generator_get_stats(g[1], &st)) die("stats");
    printf("%s on %s (%s; %lld fast linears, %lld of them joined): decode step apart %.1f us, "
           "joined %.1f us, joined/apart %.3f (best of %d rounds of %d steps)\n",
           dir, bname, st.fast_impl ? st.fast_impl : "?", (long long)st.fast_linears,
           (long long)st.joined_linears, 1e6 * best[0], 1e6 * best[1], best[1] / best[0],
           rounds, steps);
    for (int j = 0; j < 2; j++) gptq_generator_close(g[j]);
    gptq_backend_close(be);
    return 0;
usage:
    fprintf(stderr, "usage: bench_gen_step MODEL_DIR [--backend NAME] [--steps N] [--rounds R]\n");
    return 2;
}
