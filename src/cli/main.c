/* main.c — the `gptq` command: dispatch to subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} subcommand;

static const subcommand k_cmds[] = {
    {"layer", cmd_layer, "GPTQ (or RTN) on one layer: W + X or H in, packed tensors out"},
    {"compare", cmd_compare, "diff metrics between two `gptq layer` outputs"},
    {"quantize", cmd_quantize, "quantize a Hugging Face model folder into a GPTQ checkpoint"},
    {"eval", cmd_eval, "perplexity of a model folder (fp or GPTQ) on a text"},
    {"diff", cmd_diff, "quantize a model on two backends in lockstep and compare every layer"},
    {"matmul", cmd_matmul, "the reference A16 matmul of one GPTQ module, to diff a kernel against"},
    {"generate", cmd_generate, "continue a prompt with a model folder (fp or GPTQ), KV-cached"},
    {"inspect", cmd_inspect, "a GPTQ checkpoint's format facts and which engines' kernels run it"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: gptq <command> [options]   (gptq-c %s)\n\ncommands:\n", gptq_version());
    for (size_t i = 0; i < sizeof k_cmds / sizeof *k_cmds; i++)
        fprintf(f, "  %-10s %s\n", k_cmds[i].name, k_cmds[i].summary);
    fprintf(f, "\n`gptq <command> --help` describes each.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("gptq-c %s\n", gptq_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof k_cmds / sizeof *k_cmds; i++)
        if (!strcmp(argv[1], k_cmds[i].name)) {
            cli_signals_start(k_cmds[i].name);
            return k_cmds[i].run(argc - 1, argv + 1);
        }
    fprintf(stderr, "gptq: error: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
