/* cli.h — what the subcommands of `gptq` share: option parsing helpers. */
#ifndef GPTQ_CLI_H
#define GPTQ_CLI_H

#include <stdint.h>

#include "gptq.h"

/* Each subcommand: returns the process exit status (0 ok, 1 failure, 2 usage). */
int cmd_layer(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_matmul(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
/* inspect's half for a compressed-tensors checkpoint whose quantization
 * (q) cmd_inspect read; dtype from its config.json (inspect_ctensors.c). */
struct gptq_ckpt_quant;
int cli_inspect_ctensors(const char *dir, const struct gptq_ckpt_quant *q, const char *dtype,
                         int json);

/* Make every signal that ends a run end it at once, removing the
 * temporaries the library registered, and turn a SIGBUS on a mapped input
 * file into a message naming it (cli_signals.c). Called once, first. */
void cli_signals_start(const char *cmd);

/* Print "gptq <cmd>: error: <fmt>" to stderr. */
void cli_err(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Print the library's last error for a failed call. Returns 1. */
int cli_fail(const char *cmd, int status);
/* Every other line for the user on stderr starts the same way:
 * "gptq <cmd>: warning: <fmt>" and "gptq <cmd>: <fmt>". */
void cli_warn(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void cli_note(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* The warning for a module (or file) `what` whose scales include n fp16
 * subnormals (gptq_layer_result.scales_subnormal and what follows it). */
void cli_warn_subnormal(const char *cmd, const char *what, int64_t n, double rel,
                        double out_err, double out_err_f32);

/* One tensor of an output file. */
typedef struct cli_tensor {
    const char *name;
    gptq_dtype dt;
    int ndim;
    int64_t shape[2];
    const void *data;
} cli_tensor;
/* Write tensors t[0..n) and metadata pairs meta[0..nmeta) to a safetensors
 * file, atomically (a temporary renamed into place). */
int cli_write_tensors(const char *path, const cli_tensor *t, int n, char meta[][2][64],
                      int nmeta);

/* Append the pair (key, printf(fmt, ...)) to meta[*n] (both cut at 63
 * bytes), *n += 1: the metadata of cli_write_tensors. */
void cli_meta(char meta[][2][64], int *n, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* Strict number parsing: the whole string, in range; 0 on success. */
int cli_parse_int(const char *s, long lo, long hi, long *out);
int cli_parse_float(const char *s, double lo, double hi, double *out);
/* The same for option `opt` (its value arg): on failure the message gives
 * the option, the value and the real limits; 0 on success, -1 then. */
int cli_int_opt(const char *cmd, const char *opt, const char *arg, long lo, long hi, long *out);
int cli_float_opt(const char *cmd, const char *opt, const char *arg, double lo, double hi,
                  double *out);

/* Options shared by `layer` and `quantize`: returns 1 if `opt` (a
 * getopt_long value from CLI_QUANT_LONGOPTS) was consumed, -1 on a bad
 * value (message printed), 0 if not a quantization option. */
int cli_quant_option(const char *cmd, int opt, const char *arg, gptq_quant_config *c);
/* Options that exclude each other (--act-group-aware with --desc-act or
 * --group-size -1): the message printed, 2 (usage); else 0. */
int cli_quant_conflicts(const char *cmd, const gptq_quant_config *c);

struct gptq_calib_options;

/* Calibration options shared by `quantize` and `diff` (--calib,
 * --calib-bytes, --nsamples, --seqlen, --seed): 1 if consumed, -1 on a bad
 * value (message printed), 0 if not one of them. *seqlen_given is set when
 * --seqlen appears. */
int cli_calib_option(const char *cmd, int opt, const char *arg, struct gptq_calib_options *co,
                     const char **calib, int *seqlen_given);

enum {
    OPT_BITS = 1000, OPT_GROUP, OPT_DESC_ACT, OPT_NO_DESC_ACT, OPT_SYM, OPT_ASYM,
    OPT_STATIC, OPT_DAMP, OPT_DAMP_INC, OPT_BLOCK, OPT_MSE, OPT_METHOD, OPT_GAR, OPT_NO_GAR,
    OPT_CALIB, OPT_CALIB_BYTES, OPT_NSAMPLES, OPT_SEQLEN, OPT_SEED,
    OPT_THREADS,
    OPT_CLI_LAST
};

/* Options every command takes (CLI_COMMON_LONGOPTS in its table,
 * CLI_COMMON_HELP in its help): --threads N. cli_common_option returns 1 if
 * `opt` was one of them (and applies it), -1 on a bad value (message
 * printed), 0 if not. */
int cli_common_option(const char *cmd, int opt, const char *arg);
#define CLI_COMMON_LONGOPTS {"threads", required_argument, 0, OPT_THREADS}
#define CLI_COMMON_HELP                                                                    \
    "  --threads N            CPU threads, 1..1024: OpenMP's and OpenBLAS's (default:\n"     \
    "                         OMP_NUM_THREADS, else every core); the CPU backend's\n"        \
    "                         results are the same bytes for any N\n"

#define CLI_QUANT_LONGOPTS                                                   \
    {"bits", required_argument, 0, OPT_BITS},                                \
    {"group-size", required_argument, 0, OPT_GROUP},                         \
    {"desc-act", no_argument, 0, OPT_DESC_ACT},                              \
    {"no-desc-act", no_argument, 0, OPT_NO_DESC_ACT},                        \
    {"act-group-aware", no_argument, 0, OPT_GAR},                            \
    {"no-act-group-aware", no_argument, 0, OPT_NO_GAR},                      \
    {"sym", no_argument, 0, OPT_SYM},                                        \
    {"asym", no_argument, 0, OPT_ASYM},                                      \
    {"static-groups", no_argument, 0, OPT_STATIC},                           \
    {"damp-percent", required_argument, 0, OPT_DAMP},                        \
    {"damp-auto-increment", required_argument, 0, OPT_DAMP_INC},             \
    {"block-size", required_argument, 0, OPT_BLOCK},                         \
    {"mse", no_argument, 0, OPT_MSE},                                        \
    {"method", required_argument, 0, OPT_METHOD}

#define CLI_QUANT_HELP                                                                     \
    "quantization (names as in GPTQModel/AutoGPTQ):\n"                                     \
    "  --bits N               2, 3, 4 or 8 (default 4)\n"                                  \
    "  --group-size N         -1 (one group per row) or a power of two >= 16 (default 128)\n" \
    "  --sym | --asym         symmetric grid, zero 2^(bits-1) (default --sym, as GPTQModel\n" \
    "                         and transformers)\n"                                          \
    "  --desc-act             act-order: columns by diag(H) descending (default off)\n"    \
    "  --act-group-aware | --no-act-group-aware  GAR: groups solved by their largest\n"     \
    "                         diag(H), columns in a group by diag(H); g_idx stays k / G, so\n" \
    "                         loaders need no act-order reordering (default on without\n"  \
    "                         --desc-act and with a --group-size, as GPTQModel 5.0 on)\n"  \
    "  --static-groups        grids from the original W before the solve\n"               \
    "  --damp-percent F       damp = F * mean(diag H), in (0, 1) (default 0.01, as the\n" \
    "                         paper and AutoGPTQ; GPTQModel uses 0.05, transformers 0.1;\n" \
    "                         `gptq layer` also takes 0)\n"                                 \
    "  --damp-auto-increment F  in [0, 1], added to damp when the Cholesky fails (default\n" \
    "                         0.01, as GPTQModel), up to 1.0 and at most 100 times\n"       \
    "  --block-size N         lazy-batch block, a power of two (default 128)\n"            \
    "  --mse                  grid search shrinking the range (grid 100, shrink 0.8,\n"    \
    "                         norm 2.4, as the paper code)\n"                               \
    "  --method gptq|rtn      GPTQ, or round-to-nearest on the same grid (default gptq)\n"

#endif
