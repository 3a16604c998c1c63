/*
 * cmd_layer.c — `gptq layer IN -o OUT`: GPTQ (or RTN) on one layer.
 *
 * IN (.safetensors): W (out, in) F32/F16/BF16, and X (n, in) calibration
 * inputs or H (in, in) a finished Hessian.
 * OUT (.safetensors, written atomically): the checkpoint tensors qweight,
 * qzeros, scales (F16), g_idx; and for diffing: codes U8 (out, in), zeros
 * I32 (ngroups, out), scales_f32 F32 (ngroups, out), perm I32 (in), dequant
 * F32 (out, in), H F32 (in, in) the Hessian used (undamped); statistics in
 * the metadata (loss, out_rel_err, damp_used, damp_retries, dead_cols,
 * seconds_hessian, seconds_solve, the options).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "format/format.h"
#include "io/io.h"

static const char *CMD = "layer";

static void help(FILE *f)
{
    fprintf(f,
            "usage: gptq layer IN.safetensors -o OUT.safetensors [options]\n\n"
            "Quantize one linear layer. IN holds W (out, in) and either X (n, in), the\n"
            "layer's calibration inputs, or H (in, in), a Hessian 2/n X^T X.\n\n"
            "  -o, --output FILE      where to write (atomically: FILE appears whole or not at all;\n"
            "                         an existing FILE is replaced only if it is a regular file\n"
            "                         other than IN)\n"
            "  --backend NAME|PATH    cpu (default), hip, or a plugin path\n"
            "  --format auto|gptq|gptq_v2  zero points of qzeros: gptq (v1) stores z-1 and cannot\n"
            "                         hold z = 0; auto (default) writes gptq unless a zero is 0\n"
            "  --quiet                print nothing on success\n"
            CLI_COMMON_HELP
            "%s"
            "\nOutput tensors: qweight qzeros scales g_idx (checkpoint layout), codes zeros\n"
            "scales_f32 perm dequant H; metadata: loss out_rel_err damp_used damp_retries\n"
            "dead_cols seconds_hessian seconds_solve and the options.\n",
            CLI_QUANT_HELP);
}

static int find_opt(const gptq_st_file *f, const char *name, gptq_st_info *info)
{
    for (int i = 0; i < gptq_st_count(f); i++) {
        if (gptq_st_get(f, i, info) == GPTQ_OK && strcmp(info->name, name) == 0) return 1;
    }
    return 0;
}

int cmd_layer(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"output", required_argument, 0, 'o'},
        {"backend", required_argument, 0, 'b'},
        {"format", required_argument, 0, 'f'},
        {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},
        CLI_QUANT_LONGOPTS,
        CLI_COMMON_LONGOPTS,
        {0, 0, 0, 0},
    };
    gptq_quant_config cfg;
    gptq_quant_config_default(&cfg);
    const char *out = NULL, *backend = "cpu", *format = "auto";
    int quiet = 0;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1;) {
        int r = cli_quant_option(CMD, c, optarg, &cfg);
        if (r == 0) r = cli_common_option(CMD, c, optarg);
        if (r < 0) return 2;
        if (r > 0) continue;
        switch (c) {
        case 'o': out = optarg; break;
        case 'b': backend = optarg; break;
        case 'f': format = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': help(stdout); return 0;
        default: help(stderr); return 2;
        }
    }
    if (optind == argc - 2 && !out) {
        cli_err(CMD, "unexpected argument \"%s\": the output file is given with -o "
                     "(gptq layer IN.safetensors -o OUT.safetensors; --help lists the options)",
                argv[optind + 1]);
        return 2;
    }
    if (optind != argc - 1 || !out) {
        cli_err(CMD, optind >= argc ? "no input file" : !out ? "no output file (-o)"
                                                              : "more than one input file");
        help(stderr);
        return 2;
    }
    if (cli_quant_conflicts(CMD, &cfg)) return 2;
    if (strcmp(format, "auto") && !gptq_format_by_name(format)) {
        cli_err(CMD, "--format %s: must be auto, gptq or gptq_v2", format);
        return 2;
    }
    const char *in = argv[optind];
    /* before any work: never replace the input, a device, a FIFO, ... */
    if (gptq_out_check_file(out, (const char *const[]){in}, 1)) return cli_fail(CMD, 1);

    int rc = 1, st;
    gptq_st_file *f = NULL;
    gptq_backend *be = NULL;
    gptq_hessian *hs = NULL;
    gptq_tensor W = {0}, X = {0}, Ht = {0};
    float *H = NULL;
    gptq_layer_result res = {0};
    gptq_packed pk = {0};
    gptq_st_info wi, xi, hi;

    if ((st = gptq_st_open(in, &f))) return cli_fail(CMD, st);
    if (!find_opt(f, "W", &wi)) {
        cli_err(CMD, "%s: no tensor 'W' (the weight, shape (out, in))", in);
        goto done;
    }
    if (wi.ndim != 2) {
        cli_err(CMD, "%s: W must be 2-D (out, in), it has %d dimensions", in, wi.ndim);
        goto done;
    }
    const int64_t R = wi.shape[0], C = wi.shape[1];
    const int has_x = find_opt(f, "X", &xi), has_h = find_opt(f, "H", &hi);
    if (has_x && has_h) {
        cli_err(CMD, "%s: holds both X and H; give one", in);
        goto done;
    }
    if (!has_x && !has_h && cfg.method == GPTQ_METHOD_GPTQ) {
        cli_err(CMD, "%s: GPTQ needs calibration inputs X (n, in) or a Hessian H (in, in)", in);
        goto done;
    }
    if (has_x && (xi.ndim != 2 || xi.shape[1] != C)) {
        cli_err(CMD, "%s: X must be (n, %lld) to match W (%lld, %lld)", in, (long long)C,
                (long long)R, (long long)C);
        goto done;
    }
    if (has_x && xi.shape[0] == 0) {
        cli_err(CMD, "%s: X has no rows", in);
        goto done;
    }
    if (has_h && (hi.ndim != 2 || hi.shape[0] != C || hi.shape[1] != C)) {
        cli_err(CMD, "%s: H must be (%lld, %lld) to match W (%lld, %lld)", in, (long long)C,
                (long long)C, (long long)R, (long long)C);
        goto done;
    }
    if ((st = gptq_quant_config_check(&cfg, R, C))) {
        cli_fail(CMD, st);
        goto done;
    }
    if ((st = gptq_format_check_dims(GPTQ_ERR_UNSUPPORTED, cfg.bits, R, C))) {
        cli_fail(CMD, gptq_error_prefix(st, "%s", in));
        goto done;
    }
    if ((st = gptq_st_read_f32(f, "W", &W))) goto fail;
    if ((st = gptq_backend_open(backend, &be))) goto fail;

    double t_h = 0.0;
    if (has_x || has_h) {
        H = malloc((size_t)(C * C) * 4);
        if (!H) {
            cli_err(CMD, "out of memory for a %lld x %lld Hessian", (long long)C, (long long)C);
            goto done;
        }
        if (has_x) {
            if ((st = gptq_st_read_f32(f, "X", &X))) goto fail;
            double t0 = gptq_now_seconds();
            if ((st = gptq_hessian_new(be, C, &hs))) goto fail;
            if ((st = gptq_hessian_add(hs, X.data, xi.shape[0]))) goto fail;
            if ((st = gptq_hessian_get(hs, H))) goto fail;
            t_h = gptq_now_seconds() - t0;
        } else {
            if ((st = gptq_st_read_f32(f, "H", &Ht))) goto fail;
            memcpy(H, Ht.data, (size_t)(C * C) * 4);
        }
    }
    if ((st = gptq_quantize_layer(be, W.data, R, C, H, &cfg, &res))) goto fail;

    const gptq_format_traits *ft = gptq_format_by_name(format); /* NULL: auto */
    gptq_format fmt = ft ? ft->id : GPTQ_FORMAT_V1;
    st = gptq_pack(&res, fmt, &pk);
    if (st == GPTQ_ERR_INVALID && strcmp(format, "auto") == 0) {
        fmt = GPTQ_FORMAT_V2;
        st = gptq_pack(&res, fmt, &pk);
    }
    if (st) goto fail;

    const int64_t K = C, N = R, ng = res.ngroups;
    cli_tensor t[] = {
        {gptq_tensor_suffix[GPTQ_T_QWEIGHT], GPTQ_I32, 2, {K * cfg.bits / 32, N}, pk.qweight},
        {gptq_tensor_suffix[GPTQ_T_QZEROS], GPTQ_I32, 2, {ng, N * cfg.bits / 32}, pk.qzeros},
        {gptq_tensor_suffix[GPTQ_T_SCALES], GPTQ_F16, 2, {ng, N}, pk.scales},
        {gptq_tensor_suffix[GPTQ_T_G_IDX], GPTQ_I32, 1, {K, 0}, pk.g_idx},
        {"codes", GPTQ_U8, 2, {R, C}, res.codes},
        {"zeros", GPTQ_I32, 2, {ng, R}, res.zeros},
        {"scales_f32", GPTQ_F32, 2, {ng, R}, res.scales},
        {"perm", GPTQ_I32, 1, {C, 0}, res.perm},
        {"dequant", GPTQ_F32, 2, {R, C}, res.dequant},
        {"H", GPTQ_F32, 2, {C, C}, H},
    };
    int nt = H ? 10 : 9;
    char meta[24][2][64];
    int nm = 0;
    cli_meta(meta, &nm, "quantizer", "gptq-c:%s", gptq_version());
    cli_meta(meta, &nm, "backend", "%s", gptq_backend_name(be));
    cli_meta(meta, &nm, "method", "%s", cfg.method == GPTQ_METHOD_RTN ? "rtn" : "gptq");
    cli_meta(meta, &nm, "bits", "%d", cfg.bits);
    cli_meta(meta, &nm, "group_size", "%d", cfg.group_size);
    cli_meta(meta, &nm, "sym", "%s", cfg.sym ? "true" : "false");
    cli_meta(meta, &nm, "desc_act", "%s", cfg.desc_act ? "true" : "false");
    /* as the solve resolved it (the default follows desc_act and group_size) */
    cli_meta(meta, &nm, "act_group_aware", "%s",
             gptq_quant_config_act_group_aware(&cfg) ? "true" : "false");
    cli_meta(meta, &nm, "static_groups", "%s", cfg.static_groups ? "true" : "false");
    cli_meta(meta, &nm, "mse", "%s", cfg.mse ? "true" : "false");
    cli_meta(meta, &nm, "block_size", "%d", cfg.block_size);
    cli_meta(meta, &nm, "damp_percent", "%.9g", (double)cfg.damp_percent);
    cli_meta(meta, &nm, "checkpoint_format", "%s", gptq_format_get(fmt)->name);
    cli_meta(meta, &nm, "nsamples", "%lld", has_x ? (long long)xi.shape[0] : 0LL);
    cli_meta(meta, &nm, "loss", "%.17g", res.loss);
    cli_meta(meta, &nm, "out_rel_err", "%.17g", res.out_rel_err);
    cli_meta(meta, &nm, "damp_used", "%.9g", (double)res.damp_used);
    cli_meta(meta, &nm, "damp_retries", "%d", res.damp_retries);
    cli_meta(meta, &nm, "dead_cols", "%d", res.dead_cols);
    cli_meta(meta, &nm, "seconds_hessian", "%.6f", t_h);
    cli_meta(meta, &nm, "seconds_solve", "%.6f", res.seconds_solve);
    if ((st = cli_write_tensors(out, t, nt, meta, nm))) goto fail;
    if (res.scales_subnormal)
        cli_warn_subnormal(CMD, in, res.scales_subnormal, res.scales_fp16_rel_err,
                           res.out_rel_err, res.out_rel_err_f32);
    if (!quiet)
        printf("%s: %lld x %lld, %d-bit g%d %s%s%s%s: loss %.6g, output rel. error %.6g, damp "
               "%.4g (%d retries), %d dead columns, hessian %.3f s, solve %.3f s -> %s (%s)\n",
               in, (long long)R, (long long)C, cfg.bits, cfg.group_size, cfg.sym ? "sym" : "asym",
               cfg.desc_act ? " act-order" : "",
               gptq_quant_config_act_group_aware(&cfg) ? " group-aware act-order" : "",
               cfg.method == GPTQ_METHOD_RTN ? " RTN" : "",
               res.loss, res.out_rel_err, (double)res.damp_used, res.damp_retries, res.dead_cols,
               t_h, res.seconds_solve, out, gptq_format_get(fmt)->name);
    rc = 0;
    goto done;
fail:
    cli_fail(CMD, st);
done:
    gptq_packed_free(&pk);
    gptq_layer_result_free(&res);
    gptq_hessian_free(hs);
    gptq_tensor_free(&W);
    gptq_tensor_free(&X);
    gptq_tensor_free(&Ht);
    free(H);
    gptq_backend_close(be);
    gptq_st_close(f);
    return rc;
}
