/*
 * cmd_compare.c — `gptq compare A B`: the diff metrics of two `gptq layer`
 * outputs (A is the reference), for kernel developers diffing their own
 * results against gptq-c's:
 *   Hessian relative Frobenius error (when both hold H); share of identical
 *   codes and the largest code difference; largest relative scale
 *   difference; share of identical zeros; relative difference of the loss;
 *   relative L2 difference of the layer output on the calibration inputs,
 *   sqrt(tr(D H D^T) / tr(Wa H Wa^T)) with D = Wa - Wb (via A's H), else of
 *   the weights. Wa and Wb are made from each file's codes, zeros, f32
 *   scales and g_idx, scale * (code - zero) in f32 as `gptq layer` makes
 *   them; each file's stored dequant must be exactly that (one rounding of
 *   an exact product: every correct f32 computation gives these bits).
 * Exit 0, or 1 when --max-code-mismatch / --max-rel-output is exceeded, or
 * when a file fails a check: a NaN or Inf in any of its float tensors or
 * its loss, a code or zero outside [0, 2^bits - 1], a g_idx outside its
 * groups, or a dequant that is not its own codes and scales.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *CMD = "compare";

static void help(FILE *f)
{
    fprintf(f, "usage: gptq compare A.safetensors B.safetensors [options]\n\n"
               "Diff two `gptq layer` outputs (A is the reference).\n"
               "  --max-code-mismatch F  fail (exit 1) if more than this share of codes differ\n"
               "  --max-rel-output F     fail if the relative output difference exceeds F\n"
               "  --json                 one JSON object instead of lines\n");
}

static int load(gptq_st_file *f, const char *name, gptq_tensor *t, int required)
{
    gptq_st_info info;
    if (gptq_st_find(f, name, &info) != GPTQ_OK) {
        gptq_clear_error();
        if (required) cli_err(CMD, "%s: no tensor '%s' (not a `gptq layer` output?)",
                              gptq_st_path(f), name);
        return required ? -1 : 0;
    }
    if (info.dtype == GPTQ_F32 || info.dtype == GPTQ_F16 || info.dtype == GPTQ_BF16) {
        int st = gptq_st_read_f32(f, name, t);
        return st ? (cli_fail(CMD, st), -1) : 1;
    }
    int64_t shape[GPTQ_MAX_DIMS];
    memcpy(shape, info.shape, sizeof shape);
    if (gptq_tensor_alloc(t, info.dtype, info.ndim, shape)) return cli_fail(CMD, -1), -1;
    memcpy(t->data, info.data, info.nbytes);
    return 1;
}

static int same_shape(const gptq_tensor *a, const gptq_tensor *b)
{
    if (a->ndim != b->ndim || a->dtype != b->dtype) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

static double meta_num(gptq_st_file *f, const char *key)
{
    const char *v = gptq_st_metadata(f, key);
    return v ? strtod(v, NULL) : NAN;
}

/* Element i of a stored F32/F16/BF16 tensor as a double (others: 0). */
static double stored_value(const gptq_st_info *t, int64_t i)
{
    const unsigned char *b = t->data;
    uint32_t u32;
    uint16_t u16;
    float f;
    switch (t->dtype) {
    case GPTQ_F32: memcpy(&f, b + 4 * i, 4); return f;
    case GPTQ_F16: memcpy(&u16, b + 2 * i, 2); return gptq_f16_to_f32(u16);
    case GPTQ_BF16:
        memcpy(&u16, b + 2 * i, 2);
        u32 = (uint32_t)u16 << 16;
        memcpy(&f, &u32, 4);
        return f;
    default: return 0.0;
    }
}

/* Every floating-point tensor of the file, in file order: the first NaN or
 * Inf fails. 0, or 1 after the message. */
static int check_finite(const char *file, gptq_st_file *f)
{
    for (int k = 0; k < gptq_st_count(f); k++) {
        gptq_st_info t;
        if (gptq_st_get(f, k, &t) != GPTQ_OK) continue;
        const size_t es = gptq_dtype_size(t.dtype);
        const int64_t n = es ? (int64_t)(t.nbytes / es) : 0;
        const int64_t cols = t.ndim == 2 && t.shape[1] > 0 ? t.shape[1] : 1;
        for (int64_t i = 0; i < n; i++) {
            const double v = stored_value(&t, i);
            if (isfinite(v)) continue;
            if (t.ndim == 2)
                cli_err(CMD, "%s: '%s' holds %g at (%lld, %lld): a NaN or Inf fails the "
                        "comparison", file, t.name, v, (long long)(i / cols), (long long)(i % cols));
            else
                cli_err(CMD, "%s: '%s' holds %g at %lld: a NaN or Inf fails the comparison", file,
                        t.name, v, (long long)i);
            return 1;
        }
    }
    return 0;
}

/* W (R, C) = scale * (code - zero) of each column's group (g_idx), in f32
 * as gptq_quantize_layer makes its dequant; the file's tensors checked
 * first: codes and zeros in [0, maxq], g_idx in [0, ngroups). 0, or 1
 * after the message. */
static int rebuild(const char *file, const gptq_tensor *codes, const gptq_tensor *scales,
                   const gptq_tensor *zeros, const gptq_tensor *gidx, int bits, float *W)
{
    const int64_t R = codes->shape[0], C = codes->shape[1], ng = scales->shape[0];
    const int maxq = (1 << bits) - 1;
    const uint8_t *q = codes->data;
    const float *s = scales->data;
    const int32_t *z = zeros->data, *g = gidx->data;
    if (scales->ndim != 2 || scales->shape[1] != R || gptq_tensor_numel(zeros) != ng * R ||
        gidx->ndim != 1 || gidx->shape[0] != C || gidx->dtype != GPTQ_I32 ||
        zeros->dtype != GPTQ_I32 || codes->dtype != GPTQ_U8) {
        cli_err(CMD, "%s: codes (%lld, %lld), scales_f32, zeros and g_idx do not agree in shape "
                "or dtype (not a `gptq layer` output?)", file, (long long)R, (long long)C);
        return 1;
    }
    for (int64_t k = 0; k < C; k++)
        if (g[k] < 0 || g[k] >= ng) {
            cli_err(CMD, "%s: g_idx[%lld] = %d is outside [0, %lld)", file, (long long)k, (int)g[k],
                    (long long)ng);
            return 1;
        }
    for (int64_t i = 0; i < ng * R; i++)
        if (z[i] < 0 || z[i] > maxq) {
            cli_err(CMD, "%s: zero point %d at group %lld, row %lld is outside [0, %d] (%d bits)",
                    file, (int)z[i], (long long)(i / R), (long long)(i % R), maxq, bits);
            return 1;
        }
    for (int64_t r = 0; r < R; r++)
        for (int64_t k = 0; k < C; k++) {
            const int64_t i = r * C + k, gi = (int64_t)g[k] * R + r;
            if (q[i] > maxq) {
                cli_err(CMD, "%s: code %d at (%lld, %lld) is outside [0, %d] (%d bits)", file,
                        (int)q[i], (long long)r, (long long)k, maxq, bits);
                return 1;
            }
            W[i] = s[gi] * ((float)q[i] - (float)z[gi]);
        }
    return 0;
}

int cmd_compare(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"max-code-mismatch", required_argument, 0, 'c'},
        {"max-rel-output", required_argument, 0, 'r'},
        {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},
        CLI_COMMON_LONGOPTS,
        {0, 0, 0, 0},
    };
    double max_mis = -1, max_out = -1;
    int json = 0;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", longopts, NULL)) != -1;) {
        const int r = cli_common_option(CMD, c, optarg);
        if (r < 0) return 2;
        if (r > 0) continue;
        switch (c) {
        case 'c':
            if (cli_float_opt(CMD, "--max-code-mismatch", optarg, 0, 1, &max_mis)) return 2;
            break;
        case 'r':
            if (cli_float_opt(CMD, "--max-rel-output", optarg, 0, 1e30, &max_out)) return 2;
            break;
        case 'j': json = 1; break;
        case 'h': help(stdout); return 0;
        default: help(stderr); return 2;
        }
    }
    if (argc - optind != 2) {
        cli_err(CMD, "give two files");
        help(stderr);
        return 2;
    }
    int rc = 1, st;
    gptq_st_file *fa = NULL, *fb = NULL;
    enum { CODES, SCALES, ZEROS, DEQ, GIDX, H, NT };
    static const char *names[NT] = {"codes", "scales_f32", "zeros", "dequant", "g_idx", "H"};
    gptq_tensor ta[NT] = {{0}}, tb[NT] = {{0}};
    float *wa = NULL, *wb = NULL; /* (R, C) each file's weight from its codes and scales */
    int have_h = 0;
    if ((st = gptq_st_open(argv[optind], &fa)) || (st = gptq_st_open(argv[optind + 1], &fb))) {
        cli_fail(CMD, st);
        goto done;
    }
    for (int i = 0; i < NT; i++) {
        int ra = load(fa, names[i], &ta[i], i != H), rb = load(fb, names[i], &tb[i], i != H);
        if (ra < 0 || rb < 0) goto done;
        if (i == H) have_h = ra && rb;
        if ((i != H || have_h) && !same_shape(&ta[i], &tb[i])) {
            cli_err(CMD, "'%s' has different shapes or dtypes in %s and %s", names[i],
                    argv[optind], argv[optind + 1]);
            goto done;
        }
    }
    const int64_t R = ta[CODES].shape[0], C = ta[CODES].shape[1];
    const int64_t nz = gptq_tensor_numel(&ta[ZEROS]);
    /* the checks: every value finite, codes and scales make the dequant */
    const char *fname[2] = {argv[optind], argv[optind + 1]};
    gptq_tensor *tt[2] = {ta, tb};
    gptq_st_file *ff[2] = {fa, fb};
    if (ta[CODES].ndim != 2 || ta[DEQ].ndim != 2 || ta[DEQ].shape[0] != R ||
        ta[DEQ].shape[1] != C || (have_h && (ta[H].shape[0] != C || ta[H].shape[1] != C))) {
        cli_err(CMD, "%s: codes (%lld, %lld), dequant and H do not agree in shape", fname[0],
                (long long)R, (long long)C);
        goto done;
    }
    wa = malloc((size_t)(R * C) * sizeof *wa);
    wb = malloc((size_t)(R * C) * sizeof *wb);
    if (!wa || !wb) {
        cli_err(CMD, "out of memory");
        goto done;
    }
    for (int f = 0; f < 2; f++) {
        float *w = f ? wb : wa;
        long bits = 8; /* the widest codes a U8 holds, without metadata */
        const char *bm = gptq_st_metadata(ff[f], "bits");
        if (bm && cli_parse_int(bm, 2, 8, &bits)) {
            cli_err(CMD, "%s: metadata bits \"%s\" is not 2, 3, 4 or 8", fname[f], bm);
            goto done;
        }
        if (check_finite(fname[f], ff[f])) goto done;
        const char *lm = gptq_st_metadata(ff[f], "loss");
        if (lm && !isfinite(strtod(lm, NULL))) {
            cli_err(CMD, "%s: metadata loss is \"%s\": a NaN or Inf fails the comparison",
                    fname[f], lm);
            goto done;
        }
        if (rebuild(fname[f], &tt[f][CODES], &tt[f][SCALES], &tt[f][ZEROS], &tt[f][GIDX],
                    (int)bits, w))
            goto done;
        const float *dq = tt[f][DEQ].data;
        for (int64_t i = 0; i < R * C; i++)
            if (dq[i] != w[i]) {
                cli_err(CMD, "%s: dequant (%lld, %lld) is %.9g, but its scale * (code - zero) is "
                        "%.9g: the file's tensors disagree", fname[f], (long long)(i / C),
                        (long long)(i % C), (double)dq[i], (double)w[i]);
                goto done;
            }
    }
    const uint8_t *ca = ta[CODES].data, *cb = tb[CODES].data;
    int64_t same = 0;
    int maxd = 0;
    for (int64_t i = 0; i < R * C; i++) {
        int d = abs((int)ca[i] - (int)cb[i]);
        same += d == 0;
        if (d > maxd) maxd = d;
    }
    const float *sa = ta[SCALES].data, *sb = tb[SCALES].data;
    double smax = 0;
    for (int64_t i = 0; i < nz; i++) {
        double d = fabs((double)sa[i] - sb[i]) / fmax(fabs((double)sa[i]), 1e-30);
        if (d > smax || isnan(d)) smax = d;
    }
    const int32_t *za = ta[ZEROS].data, *zb = tb[ZEROS].data;
    int64_t zsame = 0;
    for (int64_t i = 0; i < nz; i++) zsame += za[i] == zb[i];
    double num = 0, den = 0, herr = NAN;
    const char *outkind = "dequantized weights";
    if (have_h) {
        const float *Ha = ta[H].data, *Hb = tb[H].data;
        double hn = 0, hd = 0;
        for (int64_t i = 0; i < C * C; i++) {
            double d = (double)Ha[i] - Hb[i];
            hn += d * d;
            hd += (double)Ha[i] * Ha[i];
        }
        herr = hd > 0 ? sqrt(hn / hd) : 0;
        /* output difference through A's Hessian, row by row */
        double *tmp = malloc((size_t)C * sizeof *tmp);
        if (!tmp) {
            cli_err(CMD, "out of memory");
            goto done;
        }
        for (int64_t r = 0; r < R; r++) {
            const float *a = wa + r * C, *b = wb + r * C;
            for (int64_t k = 0; k < C; k++) tmp[k] = (double)a[k] - b[k];
            for (int64_t i = 0; i < C; i++) {
                double hd_i = 0, ha_i = 0;
                for (int64_t k = 0; k < C; k++) {
                    hd_i += Ha[i * C + k] * tmp[k];
                    ha_i += Ha[i * C + k] * (double)a[k];
                }
                num += tmp[i] * hd_i;
                den += (double)a[i] * ha_i;
            }
        }
        free(tmp);
        outkind = "layer output on the calibration inputs";
    } else {
        for (int64_t i = 0; i < R * C; i++) {
            double d = (double)wa[i] - wb[i];
            num += d * d;
            den += (double)wa[i] * wa[i];
        }
    }
    if (!isfinite(num) || !isfinite(den)) { /* finite inputs whose products overflow */
        cli_err(CMD, "the output difference overflows (%g / %g)", num, den);
        goto done;
    }
    /* A all zero: any difference is infinitely relative */
    double outrel = den > 0 ? sqrt(fmax(num, 0) / den) : num > 0 ? INFINITY : 0;
    double la = meta_num(fa, "loss"), lb = meta_num(fb, "loss");
    double lrel = fabs(la - lb) / fmax(fabs(la), 1e-300);
    double mis = 1.0 - (double)same / (double)(R * C);
    if (json)
        printf("{\"hessian_rel_err\": %.6g, \"codes_identical\": %.8f, \"codes_max_diff\": %d, "
               "\"scales_max_rel_diff\": %.6g, \"zeros_identical\": %.8f, \"loss_rel_diff\": "
               "%.6g, \"output_rel_diff\": %.6g}\n",
               herr, 1.0 - mis, maxd, smax, (double)zsame / (double)nz, lrel, outrel);
    else {
        if (have_h) printf("hessian relative error      %.6g\n", herr);
        printf("codes identical             %.6f%% (%lld of %lld), largest difference %d\n",
               100.0 * (1.0 - mis), (long long)same, (long long)(R * C), maxd);
        printf("scales largest rel. diff    %.6g\n", smax);
        printf("zeros identical             %.6f%%\n", 100.0 * (double)zsame / (double)nz);
        printf("loss                        %.9g vs %.9g (rel. diff %.6g)\n", la, lb, lrel);
        printf("relative difference of the %s: %.6g\n", outkind, outrel);
    }
    rc = 0;
    if (max_mis >= 0 && mis > max_mis) {
        cli_err(CMD, "%.6g of the codes differ, more than --max-code-mismatch %g", mis, max_mis);
        rc = 1;
    }
    if (max_out >= 0 && !(outrel <= max_out)) {
        cli_err(CMD, "relative output difference %.6g exceeds --max-rel-output %g", outrel,
                max_out);
        rc = 1;
    }
done:
    free(wa);
    free(wb);
    for (int i = 0; i < NT; i++) {
        gptq_tensor_free(&ta[i]);
        gptq_tensor_free(&tb[i]);
    }
    gptq_st_close(fa);
    gptq_st_close(fb);
    return rc;
}
