/*
 * cmd_eval.c — `gptq eval MODEL_DIR --text FILE`: perplexity of a Hugging
 * Face model folder (fp or GPTQ checkpoint) on a text, with the protocol of
 * src/eval/eval.h (whole text encoded without special tokens,
 * non-overlapping windows, remainder dropped).
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "eval/eval.h"
#include "io/io.h"
#include "model/model.h"

#define CMD "eval"

static void help(FILE *f)
{
    fprintf(f,
            "usage: gptq eval MODEL_DIR --text FILE [options]\n\n"
            "Perplexity of MODEL_DIR (config.json, safetensors weights, tokenizer.json;\n"
            "floating point or a GPTQ checkpoint, dequantized to f32) on FILE: the whole\n"
            "text is encoded with no special tokens added, cut into non-overlapping\n"
            "windows of --seqlen tokens (the remainder is dropped), and ppl = exp(mean\n"
            "next-token NLL over the seqlen-1 predicted tokens of every window), as\n"
            "the GPTQ papers measure it.\n\n"
            "options:\n"
            "  --text FILE          UTF-8 text (required)\n"
            "  --seqlen N           tokens per window (default 2048, or the model's\n"
            "                       max_position_embeddings when smaller)\n"
            "  --max-windows N      score only the first N windows (default: all)\n"
            "  --batch N            windows per forward pass (default: %d tokens' worth)\n"
            "  --backend NAME       cpu (default), or a plugin name/path\n"
            "  --forward-math f32|tf32  the Linears' arithmetic: f32 (default) or TF32 on a\n"
            "                       GPU's matrix units (the CPU backend ignores it)\n"
            "  --progress           print the running perplexity after each batch (stderr)\n"
            "  -h, --help           this text\n"
            CLI_COMMON_HELP "\n"
            "output (stdout, one line): ppl, tokens (of the whole text), windows,\n"
            "predicted tokens, seconds (of the forward passes)\n",
            GPTQ_PPL_BATCH_TOKENS);
}

static int progress(void *user, const gptq_progress *p)
{
    (void)user;
    fprintf(stderr, "gptq eval: %lld/%lld windows, running ppl %.4f\n", (long long)p->done,
            (long long)p->total, p->metric);
    return 0;
}

int cmd_eval(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"text", required_argument, 0, 't'},
        {"seqlen", required_argument, 0, 's'},
        {"max-windows", required_argument, 0, 'w'},
        {"batch", required_argument, 0, 'n'},
        {"backend", required_argument, 0, 'b'},
        {"forward-math", required_argument, 0, 'f'},
        {"progress", no_argument, 0, 'p'},
        {"help", no_argument, 0, 'h'},
        CLI_COMMON_LONGOPTS,
        {0, 0, 0, 0},
    };
    const char *text = NULL, *backend = "cpu";
    long seqlen = 0, maxw = 0, batch = 0; /* seqlen 0: min(2048, the model's positions) */
    int prog = 0, math = GPTQ_MATH_F32;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", longopts, NULL)) != -1;) {
        const int r = cli_common_option(CMD, c, optarg);
        if (r < 0) return 2;
        if (r > 0) continue;
        switch (c) {
        case 't': text = optarg; break;
        case 's':
            if (cli_int_opt(CMD, "--seqlen", optarg, 2, 1L << 20, &seqlen)) return 2;
            break;
        case 'w':
            if (cli_int_opt(CMD, "--max-windows", optarg, 1, 1L << 40, &maxw)) return 2;
            break;
        case 'n':
            if (cli_int_opt(CMD, "--batch", optarg, 1, 1L << 20, &batch)) return 2;
            break;
        case 'b': backend = optarg; break;
        case 'f':
            if (strcmp(optarg, "f32") && strcmp(optarg, "tf32")) {
                cli_err(CMD, "--forward-math %s: f32 or tf32", optarg);
                return 2;
            }
            math = !strcmp(optarg, "tf32") ? GPTQ_MATH_TF32 : GPTQ_MATH_F32;
            break;
        case 'p': prog = 1; break;
        case 'h': help(stdout); return 0;
        default: help(stderr); return 2;
        }
    }
    if (optind != argc - 1 || !text) {
        cli_err(CMD, optind >= argc ? "no model folder" : !text ? "no --text FILE"
                                                                : "more than one model folder");
        help(stderr);
        return 2;
    }
    const char *dir = argv[optind];

    int rc = 1, st;
    gptq_backend *be = NULL;
    gptq_model *m = NULL;
    char *buf = NULL;

    /* the text, whole (a FIFO or device is refused, never waited on) */
    size_t len = 0;
    if ((st = gptq_read_input(text, SIZE_MAX, &buf, &len, NULL))) return cli_fail(CMD, st);

    if ((st = gptq_backend_open(backend, &be))) {
        rc = cli_fail(CMD, st);
        goto done;
    }
    if ((st = gptq_model_open(dir, be, &m))) {
        rc = cli_fail(CMD, st);
        goto done;
    }
    gptq_eval_options o;
    gptq_eval_options_init(&o);
    o.seqlen = seqlen;
    o.max_windows = maxw;
    o.batch = batch;
    o.forward_math = math;
    if (prog) o.on_progress = progress;
    gptq_eval_result r;
    gptq_eval_result_init(&r);
    if ((st = gptq_evaluate(m, buf, len, &o, &r))) {
        if (st != GPTQ_ERR_CANCELLED && strncmp(gptq_last_error(), "encoding", 8) == 0)
            cli_err(CMD, "encoding %s:", text); /* the library's message says the rest */
        rc = cli_fail(CMD, st);
        goto done;
    }
    printf("ppl %.6f  tokens %lld  windows %lld  predicted %lld  seqlen %ld  seconds %.1f\n", r.ppl,
           (long long)r.tokens, (long long)r.windows, (long long)r.predicted, (long)r.seqlen, r.seconds);
    rc = 0;
done:
    free(buf);
    gptq_model_close(m);
    gptq_backend_close(be);
    return rc;
}
