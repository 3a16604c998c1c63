/*
 * bench_ops.c — every row of the op table (tests/backend_ops_cases.c), or
 * those whose name or op contains --filter, on each backend: seconds per
 * call and GFLOP/s (ops with a flop count) or GB/s (the bytes of the
 * inputs, once: a lower bound on the traffic). --scale multiplies the rows'
 * sizes. The inputs are uploaded again before each timed call (in-place ops
 * consume them); only the call and a sync are timed. Results are not
 * checked here: test_backend_ops does that.
 *
 *   bench_ops [--backend NAME]... [--filter TEXT] [--scale N] [--reps N]
 * Backends: cpu and hip (when it loads) unless named.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_ops_cases.h"

static int usage(void)
{
    fprintf(stderr, "usage: bench_ops [--backend NAME]... [--filter TEXT] [--scale N] "
                    "[--reps N]\n");
    return 2;
}

/* best seconds of reps calls of row c on be */
static int time_row(const op_case *c, gptq_backend *be, int reps, double *best)
{
    oc_data d;
    oc_gen(c, 1, &d);
    gptq_buf *dev[OC_MAXA];
    int st = GPTQ_OK;
    *best = 1e30;
    for (int r = 0; !st && r <= reps; r++) { /* r = 0: warm-up */
        st = oc_upload(be, &d, dev);
        if (!st) st = gptq_be_sync(be);
        const double t0 = gptq_now();
        if (!st) st = oc_call(c, be, dev, &d);
        if (!st) st = gptq_be_sync(be);
        const double t = gptq_now() - t0;
        if (r > 0 && t < *best) *best = t;
        oc_free_dev(be, dev);
    }
    oc_data_free(&d);
    return st;
}

int main(int argc, char **argv)
{
    const char *names[8], *filter = NULL;
    int nnames = 0, reps = 5;
    long scale = 1;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) return usage();
        if (!strcmp(argv[i], "--backend") && nnames < 8) names[nnames++] = argv[++i];
        else if (!strcmp(argv[i], "--filter")) filter = argv[++i];
        else if (!strcmp(argv[i], "--scale")) scale = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[++i]);
        else return usage();
    }
    if (scale < 1 || reps < 1) return usage();
    gptq_backend *be[8];
    int nbe = 0;
    if (!nnames) {
        names[nnames++] = "cpu";
        gptq_backend *h = NULL;
        if (gptq_backend_open("hip", &h) == GPTQ_OK) be[nbe++] = h;
        else fprintf(stderr, "hip: not loaded (%s)\n", gptq_last_error());
    }
    for (int i = 0; i < nnames; i++) {
        if (gptq_backend_open(names[i], &be[nbe]) != GPTQ_OK) {
            fprintf(stderr, "bench_ops: %s\n", gptq_last_error());
            return 1;
        }
        nbe++;
    }
    printf("%-48s %-8s %12s %12s\n", "row", "backend", "ms/call", "rate");
    int rc = 0;
    for (size_t r = 0; r < oc_ncases; r++) {
        const op_case c = oc_scaled(&oc_cases[r], scale);
        if (c.msg) continue; /* a failing call: nothing to time */
        if (filter && !strstr(c.name, filter) && !strstr(gptq_op_name(c.op), filter)) continue;
        char label[160];
        int k = snprintf(label, sizeof label, "%s", c.name);
        int np = 10;
        while (np > 1 && !c.p[np - 1]) np--; /* trailing zeros: switches off */
        for (int i = 0; i < np && k > 0 && (size_t)k < sizeof label; i++)
            k += snprintf(label + k, sizeof label - (size_t)k, " %lld", (long long)c.p[i]);
        oc_data d;
        oc_gen(&c, 1, &d);
        const double bytes = oc_bytes(&d), flops = oc_flops(&c);
        oc_data_free(&d);
        for (int b = 0; b < nbe; b++) {
            if (!gptq_be_supports(be[b], c.op)) continue;
            double t;
            oc_env(&c, 1);
            const int st = time_row(&c, be[b], reps, &t);
            oc_env(&c, 0);
            if (st) {
                fprintf(stderr, "%s on %s: %s\n", label, gptq_backend_name(be[b]),
                        gptq_last_error());
                rc = 1;
                continue;
            }
            printf("%-48.48s %-8s %12.4f %8.1f %s\n", label, gptq_backend_name(be[b]), t * 1e3,
                   flops > 0.0 ? flops / t * 1e-9 : bytes / t * 1e-9,
                   flops > 0.0 ? "GFLOP/s" : "GB/s");
        }
    }
    for (int b = 0; b < nbe; b++) gptq_backend_close(be[b]);
    return rc;
}
