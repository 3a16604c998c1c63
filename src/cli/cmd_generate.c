/*
 * cmd_generate.c — `gptq generate MODEL_DIR --prompt TEXT`: text from a
 * model folder (fp or GPTQ checkpoint) with a KV cache, streamed to stdout
 * as it becomes final; the speeds of the prompt and of the decoding on
 * stderr. The library's generator (gptq.h, "Text generation") does the
 * work.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "io/io.h"

#define CMD "generate"

static void help(FILE *f)
{
    fprintf(f,
            "usage: gptq generate MODEL_DIR (--prompt TEXT | --prompt-file FILE) [options]\n\n"
            "Continue the prompt with MODEL_DIR (config.json, safetensors weights,\n"
            "tokenizer.json; floating point or a GPTQ checkpoint: its packed linears on the\n"
            "backend's fast A16 matmul when it has one, see --linears). The prompt is encoded with the tokenizer's special tokens (as transformers'\n"
            "tokenizer(text)) and run in one batch; then one token at a time against the\n"
            "cached keys and values, until an EOS id (generation_config.json, else\n"
            "config.json eos_token_id) or -n tokens. The new text goes to stdout as it\n"
            "becomes final; timings go to stderr.\n\n"
            "options:\n"
            "  --prompt TEXT        the prompt (UTF-8)\n"
            "  --prompt-file FILE   the prompt from a file (UTF-8)\n"
            "  -n N                 new tokens at most (default 128; 0: none), and at most\n"
            "                       what max_position_embeddings leaves after the prompt\n"
            "  --temperature F      >= 0 (default 0: greedy, the most likely token)\n"
            "  --top-k N            keep the N most likely tokens (default 0: all)\n"
            "  --top-p F            in (0, 1]: keep the most likely tokens up to this\n"
            "                       probability (default 1: all)\n"
            "  --repeat-penalty F   > 0: the logit of a token already in the sequence is\n"
            "                       divided by F (multiplied when negative), as transformers'\n"
            "                       repetition_penalty (default 1: off)\n"
            "  --seed N             seed of the sampler's PRNG (xoshiro256**; default 0): the\n"
            "                       same seed gives the same tokens\n"
            "  --linears MODE       how a GPTQ-packed linear runs: auto (default: fast when\n"
            "                       the backend has the fast A16 matmul, else f32), fast\n"
            "                       (kept packed; activations rounded to fp16 as the kernel\n"
            "                       reads them; refused without the op or without packed\n"
            "                       linears), f32 (dequantized to f32 once: eval's forward,\n"
            "                       the same logits bit for bit)\n"
            "  --no-join            run q, k, v (and gate, up) as separate fast linears\n"
            "                       (default: the fast linears of one input joined into one\n"
            "                       packed tensor: one kernel call for q, k, v, one for\n"
            "                       gate, up)\n"
            "  --backend NAME       cpu (default), or a plugin name/path\n"
            CLI_COMMON_HELP
            "  -h, --help           this text\n\n"
            "stderr at the end: prompt tokens and tokens/s of the prompt pass, new tokens\n"
            "and tokens/s of the decoding, why it stopped (eos, -n, positions), the linears'\n"
            "paths (fast and its kernel, f32 gemm) and the bytes of the weights and the KV\n"
            "cache on the backend\n");
}

/* Print a piece of text at once (stdout may be a pipe). */
static int put(const char *s, size_t n)
{
    if (n && fwrite(s, 1, n, stdout) != n) return -1;
    return fflush(stdout);
}

/* "fast avx512 (21), f32 gemm (1)": each path that runs and its linears. */
static void describe_linears(const gptq_generator_stats *gs, char *buf, size_t size)
{
    int k = 0;
    buf[0] = 0;
    if (gs->fast_linears && gs->joined_linears)
        k = snprintf(buf, size, "fast %s (%lld, %lld joined)",
                     gs->fast_impl ? gs->fast_impl : "(not run)", (long long)gs->fast_linears,
                     (long long)gs->joined_linears);
    else if (gs->fast_linears)
        k = snprintf(buf, size, "fast %s (%lld)", gs->fast_impl ? gs->fast_impl : "(not run)",
                     (long long)gs->fast_linears);
    if (gs->f32_linears && k >= 0 && (size_t)k < size)
        snprintf(buf + k, size - (size_t)k, "%sf32 gemm (%lld)", k ? ", " : "",
                 (long long)gs->f32_linears);
}

int cmd_generate(int argc, char **argv)
{
    enum { O_PROMPT = 1, O_FILE, O_TEMP, O_TOPK, O_TOPP, O_PEN, O_SEED, O_BACKEND, O_LINEARS,
           O_NOJOIN };
    static const struct option longopts[] = {
        {"prompt", required_argument, 0, O_PROMPT},
        {"prompt-file", required_argument, 0, O_FILE},
        {"temperature", required_argument, 0, O_TEMP},
        {"top-k", required_argument, 0, O_TOPK},
        {"top-p", required_argument, 0, O_TOPP},
        {"repeat-penalty", required_argument, 0, O_PEN},
        {"seed", required_argument, 0, O_SEED},
        {"backend", required_argument, 0, O_BACKEND},
        {"linears", required_argument, 0, O_LINEARS},
        {"no-join", no_argument, 0, O_NOJOIN},
        CLI_COMMON_LONGOPTS,
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *prompt = NULL, *pfile = NULL, *backend = "cpu";
    long nnew = 128, topk = 0, seed = 0;
    double v;
    gptq_sampling s;
    gptq_sampling_init(&s);
    gptq_generator_options go;
    gptq_generator_options_init(&go);
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "hn:", longopts, NULL)) != -1;) {
        const int r = cli_common_option(CMD, c, optarg);
        if (r < 0) return 2;
        if (r > 0) continue;
        switch (c) {
        case O_PROMPT: prompt = optarg; break;
        case O_FILE: pfile = optarg; break;
        case 'n':
            if (cli_int_opt(CMD, "-n", optarg, 0, 1L << 30, &nnew)) return 2;
            break;
        case O_TEMP:
            if (cli_float_opt(CMD, "--temperature", optarg, 0.0, 1e6, &s.temperature)) return 2;
            break;
        case O_TOPK:
            if (cli_int_opt(CMD, "--top-k", optarg, 0, 1L << 30, &topk)) return 2;
            s.top_k = topk;
            break;
        case O_TOPP:
            if (cli_float_opt(CMD, "--top-p", optarg, 0.0, 1.0, &v)) return 2;
            if (v == 0.0) {
                cli_err(CMD, "--top-p %s: must be in (0, 1]", optarg);
                return 2;
            }
            s.top_p = v;
            break;
        case O_PEN:
            if (cli_float_opt(CMD, "--repeat-penalty", optarg, 0.0, 1e6, &v)) return 2;
            if (v == 0.0) {
                cli_err(CMD, "--repeat-penalty %s: must be > 0", optarg);
                return 2;
            }
            s.repeat_penalty = v;
            break;
        case O_SEED:
            if (cli_int_opt(CMD, "--seed", optarg, 0, 0x7fffffffffffffffL, &seed)) return 2;
            s.seed = (uint64_t)seed;
            break;
        case O_BACKEND: backend = optarg; break;
        case O_LINEARS:
            if (!strcmp(optarg, "auto")) go.linears = GPTQ_LINEARS_AUTO;
            else if (!strcmp(optarg, "fast")) go.linears = GPTQ_LINEARS_FAST;
            else if (!strcmp(optarg, "f32")) go.linears = GPTQ_LINEARS_F32;
            else {
                cli_err(CMD, "--linears %s: must be auto, fast or f32", optarg);
                return 2;
            }
            break;
        case O_NOJOIN: go.join_linears = 0; break;
        case 'h': help(stdout); return 0;
        default: help(stderr); return 2;
        }
    }
    if (optind != argc - 1 || (!prompt == !pfile)) {
        cli_err(CMD, optind >= argc     ? "no model folder"
                     : optind < argc - 1 ? "more than one model folder"
                     : prompt            ? "--prompt and --prompt-file together"
                                         : "no --prompt TEXT or --prompt-file FILE");
        help(stderr);
        return 2;
    }
    const char *dir = argv[optind];

    int rc = 1, st;
    gptq_backend *be = NULL;
    gptq_generator *g = NULL;
    char *buf = NULL;
    int32_t *ids = NULL;
    int64_t n = 0;
    size_t len = 0;
    if (pfile) {
        /* a FIFO or device is refused, never waited on; at most 64 MiB */
        int more = 0;
        if ((st = gptq_read_input(pfile, (size_t)64 << 20, &buf, &len, &more)))
            return cli_fail(CMD, st);
        if (more) {
            cli_err(CMD, "%s: the prompt file is larger than 64 MiB", pfile);
            free(buf);
            return 1;
        }
    }
    const char *text = pfile ? buf : prompt;
    if (!pfile) len = strlen(prompt);
    if (len == 0) {
        cli_err(CMD, "%s: the prompt is empty", pfile ? pfile : "--prompt");
        goto done;
    }
    if ((st = gptq_backend_open(backend, &be)) || (st = gptq_generator_open_with(dir, be, &go, &g))) {
        rc = cli_fail(CMD, st);
        goto done;
    }
    if ((st = gptq_generator_encode(g, text, len, &ids, &n))) {
        cli_err(CMD, "encoding the prompt%s%s:", pfile ? " of " : "", pfile ? pfile : "");
        rc = cli_fail(CMD, st);
        goto done;
    }
    const int64_t maxpos = gptq_generator_max_positions(g);
    if (n > maxpos) {
        cli_err(CMD, "the prompt is %lld tokens, longer than the model's max_position_embeddings "
                     "(%lld)",
                (long long)n, (long long)maxpos);
        goto done;
    }
    int64_t want = nnew;
    if (n + want > maxpos) {
        want = maxpos - n;
        cli_note(CMD, "-n %ld: only %lld new tokens fit in max_position_embeddings (%lld)", nnew,
                 (long long)want, (long long)maxpos);
    }
    double t0 = gptq_now_seconds();
    if ((st = gptq_generator_reserve(g, n + want))) {
        rc = cli_fail(CMD, st);
        goto done;
    }
    const double t_load = gptq_now_seconds() - t0;
    t0 = gptq_now_seconds();
    if ((st = gptq_generator_prefill(g, ids, n, n + want))) {
        rc = cli_fail(CMD, st);
        goto done;
    }
    const double t_prompt = gptq_now_seconds() - t0;
    t0 = gptq_now_seconds();
    int64_t made = 0;
    const char *why = want < nnew ? "positions" : "-n";
    const char *piece;
    size_t plen;
    while (made < want) {
        int32_t id;
        if ((st = gptq_generator_sample(g, &s, &id))) {
            rc = cli_fail(CMD, st);
            goto done;
        }
        if (gptq_generator_is_eos(g, id)) {
            why = "eos";
            break;
        }
        /* the last token's logits would go unread: append it without a forward */
        if ((st = made + 1 < want ? gptq_generator_step(g, id) : gptq_generator_append(g, id)) ||
            (st = gptq_generator_stream(g, 0, &piece, &plen))) {
            rc = cli_fail(CMD, st);
            goto done;
        }
        made++;
        if (put(piece, plen)) {
            cli_err(CMD, "writing to stdout failed");
            goto done;
        }
    }
    const double t_gen = gptq_now_seconds() - t0;
    if ((st = gptq_generator_stream(g, 1, &piece, &plen))) {
        rc = cli_fail(CMD, st);
        goto done;
    }
    if (put(piece, plen) || (isatty(STDOUT_FILENO) && put("\n", 1))) {
        cli_err(CMD, "writing to stdout failed");
        goto done;
    }
    gptq_generator_stats gs;
    gptq_generator_stats_init(&gs);
    if ((st = gptq_generator_get_stats(g, &gs))) {
        rc = cli_fail(CMD, st);
        goto done;
    }
    char paths[160];
    describe_linears(&gs, paths, sizeof paths);
    cli_note(CMD,
             "model on %s in %.3f s; prompt %lld tokens in %.3f s (%.1f tokens/s); generated "
             "%lld tokens in %.3f s (%.1f tokens/s); stopped: %s; linears: %s; weights %.2f MiB, "
             "KV cache %.2f MiB",
             backend, t_load, (long long)n, t_prompt,
             t_prompt > 0 ? (double)n / t_prompt : 0.0, (long long)made,
             t_gen, t_gen > 0 ? (double)made / t_gen : 0.0, why, paths,
             (double)gs.weight_bytes / 1048576.0, (double)gs.kv_bytes / 1048576.0);
    rc = 0;
done:
    free(buf);
    free(ids);
    gptq_generator_close(g);
    gptq_backend_close(be);
    return rc;
}
