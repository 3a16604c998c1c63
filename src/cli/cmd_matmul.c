/*
 * cmd_matmul.c — `gptq matmul SOURCE -x X -o OUT`: the reference A16 matmul
 * (and dequantized weight) of one GPTQ module, for diffing a kernel.
 *
 * SOURCE is a GPTQ checkpoint folder (config.json's quantization_config says
 * bits, group size and zero format; --module names the module) or one
 * .safetensors file: the output of `gptq layer` (bare qweight/qzeros/scales/
 * g_idx, bits and format in its metadata) or a checkpoint shard with
 * --module. The arithmetic is gptq_matmul_ref's, through the chosen
 * backend's matmul_q: every backend gives the same bytes. --fast runs the
 * backend's fast kernel instead (matmul_q_fast: the CPU's SIMD paths, the HIP
 * plugin's GEMV and GEMMs), whose
 * outputs lie within 2 gamma(K + 2) sum_k |x_k w_k| of the reference's.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "format/format.h"
#include "internal.h"
#include "io/io.h"
#include "model/model.h"

static const char *CMD = "matmul";

static void help(FILE *f)
{
    fprintf(f,
            "usage: gptq matmul SOURCE -x X.safetensors -o OUT.safetensors [options]\n\n"
            "The reference A16 matmul of one GPTQ module: Y = X W^T (+ bias), X rounded to\n"
            "fp16, W dequantized exactly (f32(fp16 scale) * (q - z)), each output summed over\n"
            "k = 0, 1, ... in f32 without FMA, the bias (rounded to fp16) added last. A kernel's\n"
            "output can be diffed against Y; W is the weight it should see.\n\n"
            "SOURCE: a GPTQ checkpoint folder (with --module), a file written by `gptq layer`,\n"
            "or one checkpoint shard (with --module).\n"
            "  -x, --x FILE           X (M, in_features): tensor \"X\", F32, F16 or BF16\n"
            "  -o, --output FILE      Y (M, out_features) F32, written atomically (an existing\n"
            "                         FILE is replaced only if it is a regular file other than\n"
            "                         the inputs)\n"
            "  --module PREFIX        the module, e.g. model.layers.0.mlp.down_proj\n"
            "  --bias                 add the module's bias (PREFIX.bias)\n"
            "  --dequant              also write W (out_features, in_features) F32\n"
            "  --backend NAME|PATH    cpu (default), hip, or a plugin path: the same bytes\n"
            "  --fast                 the backend's fast kernel instead of the reference (cpu:\n"
            "                         the packed weight read directly by SIMD code; the\n"
            "                         environment variable GPTQ_CPU_ISA=generic|avx2|avx512\n"
            "                         forces a path; hip: gemv for M <= 8, else gemm-mma on\n"
            "                         NVIDIA or gemm-simt, GPTQ_HIP_W4A16=simt|gemm forces\n"
            "                         one): X and bias rounded as above, the sums in\n"
            "                         the kernel's order, so each output lies within\n"
            "                         2 gamma(K+2) sum_k |x_k w_k| of the reference's,\n"
            "                         gamma(j) = j 2^-24 / (1 - j 2^-24)\n"
            "  --quiet                print nothing on success\n"
            CLI_COMMON_HELP);
}

/* bits / format / group size of a `gptq layer` file, from its metadata. */
static int quant_from_metadata(const gptq_weights *w, const char *src, gptq_ckpt_quant *q)
{
    const char *b = gptq_weights_metadata(w, "bits");
    const char *f = gptq_weights_metadata(w, "checkpoint_format");
    const char *g = gptq_weights_metadata(w, "group_size");
    long v;
    if (!b || cli_parse_int(b, 2, 8, &v)) {
        cli_err(CMD, "%s: no usable \"bits\" in the file's metadata: give a file written by "
                     "`gptq layer`, or a checkpoint folder", src);
        return 1;
    }
    memset(q, 0, sizeof *q);
    q->present = 1;
    q->bits = (int)v;
    q->group_size = -1;
    if (g && cli_parse_int(g, -1, 1 << 30, &v) == 0) q->group_size = (int)v;
    const gptq_format_traits *ft = f ? gptq_format_by_name(f) : gptq_format_get(GPTQ_FORMAT_V1);
    if (!ft) {
        cli_err(CMD, "%s: checkpoint_format \"%s\" is neither gptq nor gptq_v2", src, f);
        return 1;
    }
    q->format = ft->id;
    return 0;
}

int cmd_matmul(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"x", required_argument, 0, 'x'},       {"output", required_argument, 0, 'o'},
        {"module", required_argument, 0, 'm'},  {"bias", no_argument, 0, 'B'},
        {"dequant", no_argument, 0, 'd'},       {"backend", required_argument, 0, 'b'},
        {"quiet", no_argument, 0, 'q'},         {"help", no_argument, 0, 'h'},
        {"fast", no_argument, 0, 'F'},
        CLI_COMMON_LONGOPTS,
        {0, 0, 0, 0},
    };
    const char *xpath = NULL, *out = NULL, *module = NULL, *backend = "cpu";
    int with_bias = 0, dequant = 0, quiet = 0, fast = 0;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "x:o:h", longopts, NULL)) != -1;) {
        const int r = cli_common_option(CMD, c, optarg);
        if (r < 0) return 2;
        if (r > 0) continue;
        switch (c) {
        case 'x': xpath = optarg; break;
        case 'o': out = optarg; break;
        case 'm': module = optarg; break;
        case 'B': with_bias = 1; break;
        case 'd': dequant = 1; break;
        case 'b': backend = optarg; break;
        case 'q': quiet = 1; break;
        case 'F': fast = 1; break;
        case 'h': help(stdout); return 0;
        default: help(stderr); return 2;
        }
    }
    if (optind == argc - 2 && !out) {
        cli_err(CMD, "unexpected argument \"%s\": the output file is given with -o "
                     "(gptq matmul SOURCE -x X.safetensors -o OUT.safetensors; --help lists "
                     "the options)",
                argv[optind + 1]);
        return 2;
    }
    if (optind != argc - 1 || !xpath || !out) {
        cli_err(CMD, optind >= argc ? "no SOURCE"
                     : optind < argc - 1 ? "more than one SOURCE"
                     : !xpath ? "no activations (-x X.safetensors)"
                              : "no output file (-o)");
        help(stderr);
        return 2;
    }
    const char *src = argv[optind];
    struct stat sb;
    if (stat(src, &sb) != 0) {
        cli_err(CMD, "%s: no such file or folder", src);
        return 1;
    }
    const int folder = S_ISDIR(sb.st_mode);
    if (folder && !module) {
        cli_err(CMD, "%s is a checkpoint folder: --module names the module (e.g. "
                     "model.layers.0.mlp.down_proj)", src);
        return 2;
    }
    /* before any work: never replace an input, a device, a FIFO, ... */
    if (gptq_out_check_file(out, (const char *const[]){src, xpath}, 2)) return cli_fail(CMD, 1);

    int rc = 1, st;
    gptq_weights *w = NULL;
    gptq_st_file *xf = NULL;
    gptq_backend *be = NULL;
    gptq_tensor X = {0};
    gptq_packed p = {0};
    float *bias = NULL, *Y = NULL, *Wd = NULL;
    gptq_ckpt_quant q;
    if (folder) {
        gptq_model_config cfg;
        if ((st = gptq_model_config_load(src, &cfg))) goto fail;
        if (!cfg.quant.present) {
            cli_err(CMD, "%s is not a GPTQ checkpoint (config.json has no quantization_config)",
                    src);
            goto done;
        }
        q = cfg.quant;
    }
    if ((st = gptq_weights_open(src, &w))) goto fail;
    if (!folder && module && !gptq_weights_metadata(w, "bits")) {
        /* a checkpoint shard: the settings are in its folder's config */
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", src);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = '\0';
        else snprintf(dir, sizeof dir, ".");
        if ((st = gptq_ckpt_quant_load(dir, &q))) goto fail;
        if (!q.present) {
            cli_err(CMD, "%s: no \"bits\" in the file's metadata, and its folder %s has no "
                         "quantization_config (config.json) nor quantize_config.json",
                    src, dir);
            goto done;
        }
    } else if (!folder && quant_from_metadata(w, src, &q)) {
        goto done;
    }
    if ((st = gptq_weights_read_packed(w, &q, module, 0, 0, &p))) goto fail;
    const int64_t K = p.in_features, N = p.out_features;

    gptq_st_info xi;
    if ((st = gptq_st_open(xpath, &xf))) goto fail;
    if (gptq_st_find(xf, "X", &xi) != GPTQ_OK) {
        cli_err(CMD, "%s: no tensor 'X' (the activations, shape (M, %lld))", xpath, (long long)K);
        goto done;
    }
    if (xi.ndim != 2 || xi.shape[1] != K) {
        cli_err(CMD, "%s: X must be (M, %lld) for this module (in_features %lld); it is %d-D%s",
                xpath, (long long)K, (long long)K, xi.ndim,
                xi.ndim == 2 ? " with another width" : "");
        goto done;
    }
    if ((st = gptq_st_read_f32(xf, "X", &X))) goto fail;
    const int64_t M = xi.shape[0];
    if (with_bias) {
        char name[600];
        snprintf(name, sizeof name, "%s%sbias", module ? module : "", module ? "." : "");
        if (!(bias = malloc((size_t)N * sizeof(float)))) goto nomem;
        if ((st = gptq_weights_read_f32(w, name, 1, &N, bias))) goto fail;
    }
    if ((st = gptq_backend_open(backend, &be))) goto fail;
    if (!(Y = malloc((size_t)(M * N > 0 ? M * N : 1) * sizeof(float)))) goto nomem;
    const char *kernel = "reference";
    const double t0 = gptq_now();
    if (fast) st = gptq_matmul_fast_on(be, &p, q.format, X.data, M, bias, Y, &kernel);
    else st = gptq_matmul_on(be, &p, q.format, X.data, M, bias, Y);
    if (st) goto fail;
    if (dequant) {
        if (!(Wd = malloc((size_t)(N * K) * sizeof(float)))) goto nomem;
        if ((st = gptq_dequantize_on(be, &p, q.format, Wd))) goto fail;
    }
    const double secs = gptq_now() - t0;

    cli_tensor t[2] = {{"Y", GPTQ_F32, 2, {M, N}, Y}, {"W", GPTQ_F32, 2, {N, K}, Wd}};
    char meta[8][2][64];
    int nm = 0;
    cli_meta(meta, &nm, "producer", "gptq-c:%s matmul", gptq_version());
    cli_meta(meta, &nm, "backend", "%s", gptq_backend_name(be));
    cli_meta(meta, &nm, "bits", "%d", p.bits);
    cli_meta(meta, &nm, "checkpoint_format", "%s", gptq_format_get(q.format)->name);
    cli_meta(meta, &nm, "bias", "%s", with_bias ? "true" : "false");
    cli_meta(meta, &nm, "kernel", "%s%s", fast ? "fast " : "", kernel);
    cli_meta(meta, &nm, "arithmetic", "%s", fast ? "x,bias->fp16; f32 sums in the kernel's order"
                                                 : "x,bias->fp16; k-order f32 sums; no fma");
    if ((st = cli_write_tensors(out, t, dequant ? 2 : 1, meta, nm))) goto fail;
    if (!quiet)
        printf("Y (%lld, %lld) = X (%lld, %lld) W^T%s: %d-bit %s, backend %s, %s%s, "
               "%.3f s -> %s\n",
               (long long)M, (long long)N, (long long)M, (long long)K, with_bias ? " + bias" : "",
               p.bits, gptq_format_get(q.format)->name, gptq_backend_name(be),
               fast ? "fast kernel " : "reference kernel", fast && kernel ? kernel : "", secs, out);
    rc = 0;
    goto done;
nomem:
    cli_err(CMD, "out of memory");
    goto done;
fail:
    cli_fail(CMD, st);
done:
    gptq_packed_free(&p);
    gptq_tensor_free(&X);
    free(bias);
    free(Y);
    free(Wd);
    if (xf) gptq_st_close(xf);
    gptq_weights_close(w);
    gptq_backend_close(be);
    return rc;
}
