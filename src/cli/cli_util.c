/* cli_util.c — option parsing shared by the subcommands. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "format/format.h"
#include "text/calib.h"

static void cli_vline(const char *cmd, const char *kind, const char *fmt, va_list ap)
{
    fprintf(stderr, "gptq %s: %s", cmd, kind);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cli_err(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cli_vline(cmd, "error: ", fmt, ap);
    va_end(ap);
}

void cli_warn(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cli_vline(cmd, "warning: ", fmt, ap);
    va_end(ap);
}

void cli_note(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cli_vline(cmd, "", fmt, ap);
    va_end(ap);
}

void cli_warn_subnormal(const char *cmd, const char *what, int64_t n, double rel,
                        double out_err, double out_err_f32)
{
    if (isnan(out_err))
        cli_warn(cmd, "%s: %lld scales are below 6.1e-05, where fp16 (the checkpoint's scale "
                 "type) is subnormal: stored up to %.3g%% off", what, (long long)n, 100.0 * rel);
    else
        cli_warn(cmd, "%s: %lld scales are below 6.1e-05, where fp16 (the checkpoint's scale "
                 "type) is subnormal: stored up to %.3g%% off, which takes the output error "
                 "from %.6g (f32 scales) to %.6g (the scales written)", what, (long long)n,
                 100.0 * rel, out_err_f32, out_err);
}

int cli_fail(const char *cmd, int status)
{
    const char *m = gptq_last_error();
    cli_err(cmd, "%s", m && m[0] ? m : gptq_status_str(status));
    return 1;
}

int cli_parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int cli_parse_float(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int cli_int_opt(const char *cmd, const char *opt, const char *arg, long lo, long hi, long *out)
{
    if (cli_parse_int(arg, lo, hi, out) == 0) return 0;
    cli_err(cmd, "%s %s: must be an integer in [%ld, %ld]", opt, arg, lo, hi);
    return -1;
}

int cli_float_opt(const char *cmd, const char *opt, const char *arg, double lo, double hi,
                  double *out)
{
    if (cli_parse_float(arg, lo, hi, out) == 0) return 0;
    cli_err(cmd, "%s %s: must be a number in [%g, %g]", opt, arg, lo, hi);
    return -1;
}

int cli_quant_option(const char *cmd, int opt, const char *arg, gptq_quant_config *c)
{
    long l;
    double d;
    switch (opt) {
    case OPT_BITS:
        if (cli_parse_int(arg, 2, 8, &l) || !gptq_packing_of(l)) {
            cli_err(cmd, "--bits %s: must be 2, 3, 4 or 8", arg);
            return -1;
        }
        c->bits = (int)l;
        return 1;
    case OPT_GROUP:
        if (cli_parse_int(arg, -1, 1L << 30, &l) || l == 0 ||
            (l != -1 && (l < 16 || (l & (l - 1))))) {
            cli_err(cmd, "--group-size %s: must be -1 or a power of two in [16, 1073741824]", arg);
            return -1;
        }
        c->group_size = (int)l;
        return 1;
    case OPT_DESC_ACT: c->desc_act = 1; return 1;
    case OPT_NO_DESC_ACT: c->desc_act = 0; return 1;
    case OPT_SYM: c->sym = 1; return 1;
    case OPT_ASYM: c->sym = 0; return 1;
    case OPT_STATIC: c->static_groups = 1; return 1;
    case OPT_GAR: c->act_group_aware = 1; return 1;
    case OPT_NO_GAR: c->act_group_aware = 0; return 1;
    case OPT_MSE: c->mse = 1; return 1;
    case OPT_DAMP: {
        /* What a checkpoint's quantization_config may hold: transformers,
         * optimum and GPTQModel refuse damp_percent outside (0, 1). `gptq
         * layer` writes no config and also takes 0 (no damping: the retries
         * add it only where the Cholesky fails). The float must stay < 1. */
        const int open0 = strcmp(cmd, "layer") != 0;
        if (cli_parse_float(arg, 0.0, 1.0, &d) || (open0 && d == 0.0) || (float)d >= 1.0f) {
            cli_err(cmd, "--damp-percent %s: must be a number in %s, 1)%s", arg,
                    open0 ? "(0" : "[0", open0 ? " (loaders refuse other values in a "
                                                 "checkpoint's quantization_config)" : "");
            return -1;
        }
        c->damp_percent = (float)d;
        if (c->damp_max < c->damp_percent) c->damp_max = c->damp_percent;
        return 1;
    }
    case OPT_DAMP_INC:
        if (cli_float_opt(cmd, "--damp-auto-increment", arg, 0.0, 1.0, &d)) return -1;
        c->damp_auto_increment = (float)d;
        return 1;
    case OPT_BLOCK:
        if (cli_parse_int(arg, 1, 65536, &l) || (l & (l - 1))) {
            cli_err(cmd, "--block-size %s: must be a power of two in [1, 65536]", arg);
            return -1;
        }
        c->block_size = (int)l;
        return 1;
    case OPT_METHOD:
        if (strcmp(arg, "gptq") == 0) c->method = GPTQ_METHOD_GPTQ;
        else if (strcmp(arg, "rtn") == 0) c->method = GPTQ_METHOD_RTN;
        else {
            cli_err(cmd, "--method %s: must be gptq or rtn", arg);
            return -1;
        }
        return 1;
    default:
        return 0;
    }
}

int cli_quant_conflicts(const char *cmd, const gptq_quant_config *c)
{
    if (c->act_group_aware == 1 && c->desc_act) {
        cli_err(cmd, "--act-group-aware and --desc-act exclude each other (GAR is act-order "
                     "within groups, as GPTQModel refuses both): give one");
        return 2;
    }
    if (c->act_group_aware == 1 && c->group_size == -1) {
        cli_err(cmd, "--act-group-aware needs a --group-size: GAR orders groups, and "
                     "--group-size -1 makes one group per row");
        return 2;
    }
    return 0;
}

int cli_calib_option(const char *cmd, int opt, const char *arg, struct gptq_calib_options *co,
                     const char **calib, int *seqlen_given)
{
    long l;
    switch (opt) {
    case OPT_CALIB: *calib = arg; return 1;
    case OPT_CALIB_BYTES:
        if (cli_int_opt(cmd, "--calib-bytes", arg, 1, LONG_MAX, &l)) return -1;
        co->max_bytes = (size_t)l;
        return 1;
    case OPT_NSAMPLES:
        if (cli_int_opt(cmd, "--nsamples", arg, 1, 1L << 24, &l)) return -1;
        co->nsamples = l;
        return 1;
    case OPT_SEQLEN:
        if (cli_int_opt(cmd, "--seqlen", arg, 2, 1L << 24, &l)) return -1;
        co->seqlen = l;
        *seqlen_given = 1;
        return 1;
    case OPT_SEED:
        if (cli_int_opt(cmd, "--seed", arg, 0, LONG_MAX, &l)) return -1;
        co->seed = (uint64_t)l;
        return 1;
    default:
        return 0;
    }
}

int cli_write_tensors(const char *path, const cli_tensor *t, int n, char meta[][2][64], int nmeta)
{
    gptq_st_writer *w = NULL;
    int st = gptq_st_writer_open(path, &w);
    if (st) return st;
    for (int i = 0; !st && i < nmeta; i++) st = gptq_st_writer_metadata(w, meta[i][0], meta[i][1]);
    for (int i = 0; !st && i < n; i++)
        st = gptq_st_writer_declare(w, t[i].name, t[i].dt, t[i].ndim, t[i].shape);
    for (int i = 0; !st && i < n; i++) {
        size_t nb = gptq_dtype_size(t[i].dt);
        for (int d = 0; d < t[i].ndim; d++) nb *= (size_t)t[i].shape[d];
        st = gptq_st_writer_write(w, t[i].data, nb);
    }
    if (st) {
        gptq_st_writer_abort(w);
        return st;
    }
    return gptq_st_writer_commit(w);
}

void cli_meta(char meta[][2][64], int *n, const char *key, const char *fmt, ...)
{
    snprintf(meta[*n][0], 64, "%s", key);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(meta[*n][1], 64, fmt, ap);
    va_end(ap);
    (*n)++;
}

int cli_common_option(const char *cmd, int opt, const char *arg)
{
    if (opt != OPT_THREADS) return 0;
    long n;
    if (cli_int_opt(cmd, "--threads", arg, 1, GPTQ_MAX_THREADS, &n)) return -1;
    if (gptq_set_threads((int)n)) {
        cli_err(cmd, "--threads %s: %s", arg, gptq_last_error());
        return -1;
    }
    return 1;
}
