/*
 * test_hostile_args.c — hostile-input rows for the command line itself:
 * unknown commands and options, missing and malformed values. Each row runs
 * the built `gptq` and checks the exit status (2: usage, 1: bad input), the
 * message, and that nothing the user had was touched (tests/cli_harness.h).
 */
#include "cli_harness.h"

static void mk_model(const char *dir)
{
    ch_sh("cp -a '%s/data/tiny-llama' '%s/model'", ch_source_root(), dir);
}

static hostile_case args_table[] = {
    {.name = "no_command", .argv = {NULL}, .status = 2, .msg = "usage"},
    {.name = "unknown_command", .argv = {"frobnicate", NULL}, .status = 2, .msg = "frobnicate"},
    {.name = "quantize_no_model", .argv = {"quantize", "-o", "@/out", NULL}, .status = 2,
     .msg = "no model folder"},
    {.name = "quantize_no_output", .build = mk_model,
     .argv = {"quantize", "@/model", "--method", "rtn", NULL}, .status = 2, .msg = "-o",
     .keep = {"@/model"}},
    {.name = "quantize_unknown_option", .build = mk_model,
     .argv = {"quantize", "@/model", "-o", "@/out", "--bogus", NULL}, .status = 2,
     .msg = "bogus", .keep = {"@/model"}},
    {.name = "quantize_bits_5", .build = mk_model,
     .argv = {"quantize", "@/model", "-o", "@/out", "--method", "rtn", "--bits", "5", NULL},
     .status = 2, .msg = "--bits", .keep = {"@/model"}},
};
CH_TABLE(hostile_args, args_table)
