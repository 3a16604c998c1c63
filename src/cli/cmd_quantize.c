/*
 * cmd_quantize.c — `gptq quantize MODEL_DIR -o OUT_DIR`: a Hugging Face
 * model folder in, a GPTQ checkpoint folder out (src/quant/pipeline.h says
 * how), with calibration from a text file (src/text/calib.h), a progress
 * bar, a per-module table as GPTQModel prints one, a JSON-lines log, and a
 * summary of sizes, bits per weight, time shares and peak memory.
 *
 * Output safety: OUT_DIR is checked against the output policy
 * (gptq_ckpt_check_out) before anything is read; --log-json FILE is
 * checked then too (not inside the model folder, not inside an OUT_DIR that
 * will be replaced, not the calibration file) and opened only when the
 * first record is written, so a run that fails before leaves it as it was.
 * Signals end the run at once with the temporary folder removed
 * (cli_signals.c).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "format/ctensors.h"
#include "format/format.h"
#include "io/ctensors_ckpt.h"
#include "internal.h"
#include "io/checkpoint.h"
#include "io/io.h"
#include "model/model.h"
#include "text/calib.h"

static const char *CMD = "quantize";

static void help(FILE *f)
{
    fprintf(f,
            "usage: gptq quantize MODEL_DIR -o OUT_DIR --calib FILE [options]\n\n"
            "Quantize every decoder-layer linear of a Hugging Face causal LM (Llama, Mistral,\n"
            "Qwen2, Qwen3, Phi-3, OPT) with GPTQ, layer by layer, and write a GPTQ checkpoint\n"
            "folder that transformers, vLLM and GPTQModel load. OUT_DIR appears complete or\n"
            "not at all (an existing OUT_DIR is replaced only when the new one is finished).\n\n"
            "  -o, --output DIR       the checkpoint folder to write: a new name, an empty\n"
            "                         folder, or an earlier output of gptq-c (replaced)\n"
            "  --overwrite            also replace an existing OUT_DIR that gptq-c did not\n"
            "                         write, with everything in it (never the model folder,\n"
            "                         a folder holding it, a file or a symlink)\n"
            "calibration (not needed with --method rtn):\n"
            "  --calib FILE           plain UTF-8 text, or JSON lines with a \"text\" field\n"
            "                         (.jsonl, or first character '{'; texts joined by \\n\\n)\n"
            "  --calib-bytes N        use only the first N bytes of the text (default: all)\n"
            "  --nsamples N           windows of calibration tokens (default 128)\n"
            "  --seqlen N             tokens per window (default 2048, or the model's\n"
            "                         max_position_embeddings if smaller)\n"
            "  --seed N               window positions, as the GPTQ paper's random windows\n"
            "                         (splitmix64; default 0). No BOS is added to a window.\n"
            "procedure:\n"
            "  --no-true-sequential   quantize all groups of a layer from one unquantized\n"
            "                         forward (default: q/k/v, then o, then gate/up, then down,\n"
            "                         each calibrated on the already-quantized ones)\n"
            "  --batch-tokens N|auto  tokens per forward pass. When all windows fit in one\n"
            "                         pass, each group is quantized inside it (fastest: one\n"
            "                         forward per layer); otherwise every group needs its own\n"
            "                         partial passes. auto (default): one pass if its work\n"
            "                         buffers take <= 2 GiB (on a GPU backend: <= 7/8 of its\n"
            "                         free memory), else 8192 (bounds memory)\n"
            "  --backend NAME|PATH    cpu (default), hip, or a plugin path\n"
            "  --forward-math f32|tf32  the calibration forward's Linears: f32 (default), or\n"
            "                         tf32 on a GPU's matrix units (inputs rounded to a 10-bit\n"
            "                         significand, as the GPTQ paper's fp16 forward; ~3x\n"
            "                         faster on an H100). Hessians and solves stay f32; the\n"
            "                         CPU backend ignores it\n"
            "output:\n"
            "  --format auto|gptq|gptq_v2  zero points: gptq (v1) stores z-1 and cannot hold\n"
            "                         z = 0; auto (default) writes gptq_v2 for --asym (GPTQModel\n"
            "                         refuses an asymmetric v1 checkpoint it did not make) or when\n"
            "                         a zero point is 0, else gptq (every loader reads it).\n"
            "                         gptq_v2 needs vLLM >= PR #26092 or GPTQModel\n"
            "  --format compressed-tensors  the compressed-tensors library's pack-quantized\n"
            "                         W4A16/W8A16 layout (vLLM's WNA16 kernels, also on ROCm):\n"
            "                         4 or 8 bits, one setting for every module; --desc-act\n"
            "                         without --static-groups is refused (act-order groups)\n"
            "  --max-shard-size SIZE  shard above this (default 4GB; 500MB, 2GiB, bytes)\n"
            "  --lm-head              quantize lm_head too (GPTQModel's lm_head=True), last,\n"
            "                         calibrated on the final norm's output; written as\n"
            "                         lm_head.qweight/qzeros/scales/g_idx with \"lm_head\": true.\n"
            "                         Refused for a model whose lm_head is tied to embed_tokens\n"
            "                         (tie_word_embeddings), as GPTQModel refuses it\n"
            "  --dynamic FILE|JSON    GPTQModel's per-module rules, a JSON object (inline when it\n"
            "                         starts with '{', else a file) of regex -> {}: \"-:REGEX\"\n"
            "                         leaves the modules it matches unquantized; \"+:REGEX\" or\n"
            "                         \"REGEX\" overrides bits, group_size, sym, desc_act and\n"
            "                         act_group_aware for them (a rule's desc_act: true or\n"
            "                         group_size -1 turns GAR off for its modules, as\n"
            "                         GPTQModel). The first rule whose regex matches\n"
            "                         the start of a module's name (model.layers.0.mlp.up_proj;\n"
            "                         Python's re.match, here PCRE2) decides. Written into\n"
            "                         quantization_config \"dynamic\" as given\n"
            "  --strict               fail when a module's shape cannot be packed at --bits\n"
            "                         (default: such a module is left in the model's dtype,\n"
            "                         noted, and listed in quantization_config \"dynamic\" as\n"
            "                         a \"-:\" rule, as GPTQModel records a skipped module)\n"
            "  --quiet                print nothing but errors\n"
            "  --log-json FILE        one JSON record per module (JSON lines)\n"
            CLI_COMMON_HELP
            "%s",
            CLI_QUANT_HELP);
}

/* ------------------------------------------------------------------ */
/* Progress, table, log                                                */
/* ------------------------------------------------------------------ */

typedef struct ui {
    int quiet, tty;
    int bar_shown;
    int header_done;
    int last_layer;
    FILE *log;
    const char *log_path;
    int log_failed;
} ui;

static void fmt_secs(double s, char *buf, size_t n)
{
    if (!(s >= 0.0) || s > 1e7) snprintf(buf, n, "--");
    else if (s < 60.0) snprintf(buf, n, "%.0fs", s);
    else if (s < 3600.0) snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60.0));
    else snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60.0, 60.0));
}

static void clear_bar(ui *u)
{
    if (u->bar_shown) {
        fputs("\r\033[K", stderr);
        u->bar_shown = 0;
    }
}

static int on_progress(void *user, const gptq_progress *p)
{
    ui *u = user;
    if (u->quiet) return 0;
    if (p->message) {
        cli_note(CMD, "%s", p->message);
        return 0;
    }
    char el[32], eta[32];
    fmt_secs(p->elapsed, el, sizeof el);
    fmt_secs(p->fraction > 0.0 ? p->elapsed * (1.0 - p->fraction) / p->fraction : -1.0, eta,
             sizeof eta);
    if (u->tty) {
        const int width = 30, fill = (int)(p->fraction * width + 0.5);
        char bar[64];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r\033[K[%s] %3.0f%% layer %d/%d %-8s modules %lld/%lld  %s, eta %s",
                bar, 100.0 * p->fraction, p->layer < p->nlayers ? p->layer + 1 : p->nlayers,
                p->nlayers, p->stage, (long long)p->done, (long long)p->total,
                el, eta);
        fflush(stderr);
        u->bar_shown = 1;
    } else if (p->layer != u->last_layer) {
        fprintf(stderr, "[%3.0f%%] layer %d/%d: %s (%s elapsed, eta %s)\n", 100.0 * p->fraction,
                p->layer < p->nlayers ? p->layer + 1 : p->nlayers, p->nlayers, p->stage, el, eta);
        fflush(stderr);
    }
    u->last_layer = p->layer;
    return 0;
}

/* A float as the decimal it came from (0.01f -> 0.01, not 0.0099999998). */
static double short_float(float f)
{
    char b[32];
    snprintf(b, sizeof b, "%.7g", (double)f);
    return strtod(b, NULL);
}

/* --log-json FILE, checked before any work: never inside the model folder
 * (it would write into the model) or inside an existing OUT_DIR (replaced
 * at the end, the log with it), never the calibration file, OUT_DIR itself
 * or a folder; it (or its folder) must be writable. 0, or 1 with the
 * message printed. */
static int check_log_path(const char *log, const char *model_dir, const char *out,
                          const char *calib)
{
    struct stat st;
    char lc[4096], oc[4096];
    if (gptq_path_within(log, model_dir)) {
        cli_err(CMD, "--log-json %s: is inside the model folder %s; write it elsewhere", log,
                model_dir);
        return 1;
    }
    if (stat(out, &st) == 0 && gptq_path_within(log, out)) {
        cli_err(CMD, "--log-json %s: is inside the output folder %s, which the run replaces "
                     "(the log would go with it); write it elsewhere", log, out);
        return 1;
    }
    if (calib && gptq_same_file(log, calib)) {
        cli_err(CMD, "--log-json %s: is the calibration file; write the log elsewhere", log);
        return 1;
    }
    if (gptq_path_canon(log, lc, sizeof lc) != GPTQ_OK) {
        cli_err(CMD, "--log-json %s: its folder does not exist", log);
        return 1;
    }
    if (gptq_path_canon(out, oc, sizeof oc) == GPTQ_OK && !strcmp(lc, oc)) {
        cli_err(CMD, "--log-json %s: is the output folder's name; write the log elsewhere", log);
        return 1;
    }
    if (stat(log, &st) == 0 && S_ISDIR(st.st_mode)) {
        cli_err(CMD, "--log-json %s: is a folder; give a file name", log);
        return 1;
    }
    /* writable: the file if it exists, else its folder (lc is absolute) */
    *strrchr(lc, '/') = '\0';
    const char *dir = lc[0] ? lc : "/";
    if (access(stat(log, &st) == 0 ? log : dir, W_OK) != 0) {
        cli_err(CMD, "--log-json %s: cannot be written: %s", log, strerror(errno));
        return 1;
    }
    return 0;
}

static void on_module(void *user, const gptq_module_report *r)
{
    ui *u = user;
    /* opened at the first record: a run that fails before leaves the file
     * as it was */
    if (u->log_path && !u->log && !u->log_failed && !(u->log = fopen(u->log_path, "w"))) {
        clear_bar(u);
        cli_err(CMD, "--log-json %s: cannot open for writing: %s; no records", u->log_path,
                strerror(errno));
        u->log_failed = 1;
    }
    if (u->log && !u->log_failed) {
        cJSON *o = cJSON_CreateObject();
        int ok = o && cJSON_AddNumberToObject(o, "layer", r->layer) &&
                 cJSON_AddStringToObject(o, "module", r->name) &&
                 cJSON_AddStringToObject(o, "tensor", r->prefix) &&
                 cJSON_AddNumberToObject(o, "rows", (double)r->rows) &&
                 cJSON_AddNumberToObject(o, "cols", (double)r->cols) &&
                 cJSON_AddNumberToObject(o, "loss", r->loss) &&
                 cJSON_AddNumberToObject(o, "out_rel_err", r->out_rel_err) &&
                 cJSON_AddNumberToObject(o, "damp_used", short_float(r->damp_used)) &&
                 cJSON_AddNumberToObject(o, "damp_retries", r->damp_retries) &&
                 cJSON_AddNumberToObject(o, "dead_cols", r->dead_cols) &&
                 cJSON_AddNumberToObject(o, "zero0", (double)r->zero0) &&
                 cJSON_AddNumberToObject(o, "hessian_rows", (double)r->hessian_rows) &&
                 cJSON_AddNumberToObject(o, "seconds", r->seconds) &&
                 cJSON_AddNumberToObject(o, "seconds_solve", r->seconds_solve) &&
                 cJSON_AddNumberToObject(o, "bits", r->bits) &&
                 cJSON_AddNumberToObject(o, "group_size", r->group_size);
        char *line = ok ? cJSON_PrintUnformatted(o) : NULL;
        if (!line || fprintf(u->log, "%s\n", line) < 0 || fflush(u->log) != 0) {
            clear_bar(u);
            cli_err(CMD, "--log-json %s: write failed; no further records", u->log_path);
            u->log_failed = 1;
        }
        free(line);
        cJSON_Delete(o);
    }
    if (r->scales_subnormal) {
        clear_bar(u);
        cli_warn_subnormal(CMD, r->prefix, r->scales_subnormal, r->scales_fp16_rel_err,
                           r->out_rel_err, r->out_rel_err_f32);
    }
    if (u->quiet) return;
    clear_bar(u);
    if (!u->header_done) {
        printf("%5s  %-20s %11s  %11s  %8s  %7s  %7s  %10s\n", "layer", "module", "out x in",
               "loss", "samples", "damp", "time s", "out err");
        u->header_done = 1;
    }
    char shape[32], damp[16], err[24], layer[16];
    /* the lm_head (--lm-head) comes after the layers */
    snprintf(layer, sizeof layer, r->layer < 0 ? "head" : "%d", r->layer);
    snprintf(shape, sizeof shape, "%lldx%lld", (long long)r->rows, (long long)r->cols);
    /* RTN has neither a damp nor an output error (no calibration) */
    snprintf(damp, sizeof damp, r->hessian_rows ? "%.4f" : "-", (double)r->damp_used);
    snprintf(err, sizeof err, isnan(r->out_rel_err) ? "-" : "%.5g", r->out_rel_err);
    printf("%5s  %-20s %11s  %11.5g  %8lld  %7s  %7.3f  %10s%s\n", layer, r->name, shape,
           r->loss, (long long)r->hessian_rows, damp, r->seconds, err,
           r->damp_retries ? "  (damp raised)" : r->zero0 ? "  (zero point 0)" : "");
    fflush(stdout);
}

static void on_skip(void *user, const char *prefix, const char *why)
{
    ui *u = user;
    if (u->quiet) return;
    cli_note(CMD, "%s: left unquantized in the model's dtype (%s)", prefix, why);
}

static void fmt_bytes(uint64_t b, char *buf, size_t n)
{
    if (b >= 1000000000ull) snprintf(buf, n, "%.2f GB", (double)b / 1e9);
    else if (b >= 1000000ull) snprintf(buf, n, "%.2f MB", (double)b / 1e6);
    else snprintf(buf, n, "%.1f kB", (double)b / 1e3);
}

static void print_summary(const gptq_quantize_summary *s, const gptq_model_config *cfg,
                          const char *out, const gptq_quant_config *q, long rss_kb,
                          const gptq_backend *be)
{
    char bi[32], bo[32], qi[32], qo[32];
    fmt_bytes(s->bytes_in, bi, sizeof bi);
    fmt_bytes(s->bytes_out, bo, sizeof bo);
    fmt_bytes(s->qsrc_bytes, qi, sizeof qi);
    fmt_bytes(s->qbytes, qo, sizeof qo);
    const double T = s->seconds_total > 0 ? s->seconds_total : 1e-9;
    const double other =
        s->seconds_total - s->seconds_forward - s->seconds_hessian - s->seconds_solve - s->seconds_write;
    printf("\nquantized %d linear modules (%d-bit, group %d, %s%s%s%s) in %.1f s -> %s\n",
           s->nmodules, q->bits, q->group_size, q->sym ? "sym" : "asym",
           q->desc_act ? ", act-order" : "",
           gptq_quant_config_act_group_aware(q) ? ", group-aware act-order" : "",
           q->method == GPTQ_METHOD_RTN ? ", RTN" : "", s->seconds_total, out);
    if (s->format == GPTQ_FORMAT_V1)
        printf("  format:  gptq (v1): every zero point is >= 1\n");
    else if (s->zero0)
        printf("  format:  gptq_v2: %lld zero points are 0, which v1 cannot store (vLLM reads\n"
               "           gptq_v2 since PR #26092; GPTQModel natively)\n",
               (long long)s->zero0);
    else if (!q->sym)
        printf("  format:  gptq_v2: asymmetric (GPTQModel refuses an asymmetric v1 checkpoint\n"
               "           it did not make; vLLM reads gptq_v2 since PR #26092)\n");
    else
        printf("  format:  gptq_v2 (as asked)\n");
    printf("  size:    %s -> %s (all tensors, %d shard%s)\n", bi, bo, s->nshards,
           s->nshards == 1 ? "" : "s");
    printf("  bits:    %.3f bits/weight over the quantized linears (%.2fM weights, %s -> %s,\n"
           "           scales/zeros/g_idx included); %.3f bits/param over the whole model\n",
           s->qweights ? 8.0 * (double)s->qbytes / (double)s->qweights : 0.0,
           (double)s->qweights / 1e6, qi, qo,
           s->params ? 8.0 * (double)s->bytes_out / (double)s->params : 0.0);
    printf("  time:    forward %.1f s (%.0f%%), hessian %.1f s (%.0f%%), solve %.1f s (%.0f%%), "
           "pack+write %.1f s (%.0f%%), other %.1f s\n",
           s->seconds_forward, 100 * s->seconds_forward / T, s->seconds_hessian,
           100 * s->seconds_hessian / T, s->seconds_solve, 100 * s->seconds_solve / T,
           s->seconds_write, 100 * s->seconds_write / T, other > 0 ? other : 0.0);
    size_t dpeak = 0, dtotal = 0;
    if (gptq_backend_memory(be, &dpeak, &dtotal) == GPTQ_OK)
        printf("  memory:  peak RSS %.1f MB; device (%s) peak in use %.2f GB of %.2f GB\n",
               (double)rss_kb / 1024.0, gptq_backend_name(be), (double)dpeak / 1e9,
               (double)dtotal / 1e9);
    else
        printf("  memory:  peak RSS %.1f MB\n", (double)rss_kb / 1024.0);
    if (s->nskipped)
        printf("  skipped: %d linear modules left in the model's dtype (the notes above say why;\n"
               "           listed in quantization_config \"dynamic\")\n",
               s->nskipped);
    if (cfg->dtype != GPTQ_F16)
        printf("  note:    scales and biases are fp16 (the format's); the rest keeps %s, and\n"
               "           config.json keeps the model's dtype\n",
               gptq_dtype_name(cfg->dtype));
}

/* ------------------------------------------------------------------ */
/* The command                                                         */
/* ------------------------------------------------------------------ */

enum {
    OPT_NO_TS = OPT_CLI_LAST + 1, OPT_TS, OPT_FORMAT, OPT_SHARD, OPT_BATCH, OPT_BACKEND, OPT_QUIET, OPT_LOG,
    OPT_MATH, OPT_OVERWRITE, OPT_STRICT, OPT_LM_HEAD, OPT_DYNAMIC
};

int cmd_quantize(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"output", required_argument, 0, 'o'},
        {"help", no_argument, 0, 'h'},
        {"calib", required_argument, 0, OPT_CALIB},
        {"calib-bytes", required_argument, 0, OPT_CALIB_BYTES},
        {"nsamples", required_argument, 0, OPT_NSAMPLES},
        {"seqlen", required_argument, 0, OPT_SEQLEN},
        {"seed", required_argument, 0, OPT_SEED},
        {"no-true-sequential", no_argument, 0, OPT_NO_TS},
        {"true-sequential", no_argument, 0, OPT_TS},
        {"format", required_argument, 0, OPT_FORMAT},
        {"max-shard-size", required_argument, 0, OPT_SHARD},
        {"batch-tokens", required_argument, 0, OPT_BATCH},
        {"backend", required_argument, 0, OPT_BACKEND},
        {"forward-math", required_argument, 0, OPT_MATH},
        {"quiet", no_argument, 0, OPT_QUIET},
        {"log-json", required_argument, 0, OPT_LOG},
        {"overwrite", no_argument, 0, OPT_OVERWRITE},
        {"strict", no_argument, 0, OPT_STRICT},
        {"lm-head", no_argument, 0, OPT_LM_HEAD},
        {"dynamic", required_argument, 0, OPT_DYNAMIC},
        CLI_QUANT_LONGOPTS,
        CLI_COMMON_LONGOPTS,
        {0, 0, 0, 0},
    };
    gptq_quantize_options qo;
    gptq_quantize_options_init(&qo);
    gptq_calib_options co;
    gptq_calib_options_default(&co);
    const char *out = NULL, *calib = NULL, *backend = "cpu", *log_path = NULL;
    int seqlen_given = 0, ctensors = 0;
    ui u = {.last_layer = -1};
    long l;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1;) {
        int r = cli_quant_option(CMD, c, optarg, &qo.q);
        if (r == 0) r = cli_calib_option(CMD, c, optarg, &co, &calib, &seqlen_given);
        if (r == 0) r = cli_common_option(CMD, c, optarg);
        if (r < 0) return 2;
        if (r > 0) continue;
        switch (c) {
        case 'o': out = optarg; break;
        case 'h': help(stdout); return 0;
        case OPT_NO_TS: qo.true_sequential = 0; break;
        case OPT_TS: qo.true_sequential = 1; break;
        case OPT_FORMAT:
            ctensors = !strcmp(optarg, "compressed-tensors");
            if (!strcmp(optarg, "auto")) qo.format = 0; /* auto: gptq_quantize_options */
            /* quantized as gptq_v2 (any zero), then rewritten (ctensors_ckpt.h) */
            else if (ctensors) qo.format = GPTQ_FORMAT_V2;
            else if (gptq_format_by_name(optarg)) qo.format = gptq_format_by_name(optarg)->id;
            else {
                cli_err(CMD, "--format %s: must be auto, gptq, gptq_v2 or compressed-tensors", optarg);
                return 2;
            }
            break;
        case OPT_SHARD:
            if (gptq_parse_size(optarg, &qo.max_shard_bytes)) {
                cli_err(CMD, "--max-shard-size: %s", gptq_last_error());
                return 2;
            }
            break;
        case OPT_BATCH:
            if (!strcmp(optarg, "auto")) {
                qo.batch_tokens = 0;
                break;
            }
            if (cli_parse_int(optarg, 1, 1L << 30, &l)) {
                cli_err(CMD, "--batch-tokens %s: must be auto or an integer in [1, 1073741824]",
                        optarg);
                return 2;
            }
            qo.batch_tokens = l;
            break;
        case OPT_BACKEND: backend = optarg; break;
        case OPT_MATH:
            if (strcmp(optarg, "f32") && strcmp(optarg, "tf32")) {
                cli_err(CMD, "--forward-math %s: f32 or tf32", optarg);
                return 2;
            }
            qo.forward_math = !strcmp(optarg, "tf32");
            break;
        case OPT_QUIET: u.quiet = 1; break;
        case OPT_LOG: log_path = optarg; break;
        case OPT_OVERWRITE: qo.overwrite = 1; break;
        case OPT_STRICT: qo.strict = 1; break;
        case OPT_LM_HEAD: qo.lm_head = 1; break;
        case OPT_DYNAMIC: qo.dynamic = optarg; break;
        default: help(stderr); return 2;
        }
    }
    if (optind == argc - 2 && !out) {
        cli_err(CMD, "unexpected argument \"%s\": the output folder is given with -o "
                     "(gptq quantize MODEL_DIR -o OUT_DIR; --help lists the options)",
                argv[optind + 1]);
        return 2;
    }
    if (optind != argc - 1 || !out) {
        cli_err(CMD, optind >= argc ? "no model folder" : !out ? "no output folder (-o)"
                                                                : "more than one model folder");
        help(stderr);
        return 2;
    }
    if (cli_quant_conflicts(CMD, &qo.q)) return 2;
    if (ctensors && gptq_ct_check_bits(GPTQ_ERR_INVALID, qo.q.bits)) {
        cli_err(CMD, "--format %s", gptq_last_error());
        return 2;
    }
    /* act-order g_idx (columns' groups permuted) needs compressed-tensors'
     * "actorder": "group" with weight_g_idx, which is not written here; GAR
     * and static groups keep g_idx = k / G */
    if (ctensors && qo.q.desc_act && !qo.q.static_groups) {
        cli_err(CMD, "--format compressed-tensors with --desc-act: act-order groups (a permuted "
                     "g_idx) are not written as pack-quantized; add --static-groups, or drop "
                     "--desc-act (GAR, the default, keeps most of its gain), or use --format "
                     "gptq_v2");
        return 2;
    }
    /* one config group: rules that change a module's settings are known
     * now, and refused before any work (not at the rewrite after it) */
    if (ctensors && qo.dynamic) {
        gptq_dynamic *d = malloc(sizeof *d); /* ~8 kB: off the stack */
        if (!d) {
            cli_err(CMD, "out of memory");
            return 1;
        }
        const int bad = gptq_dynamic_load(qo.dynamic, d) ? 1
                        : gptq_ct_check_rules(d, &qo.q)  ? 2
                                                         : 0;
        free(d);
        if (bad) return cli_fail(CMD, 1), bad;
    }
    const char *model_dir = argv[optind];
    const int rtn = qo.q.method == GPTQ_METHOD_RTN;
    if (!rtn && !calib) {
        cli_err(CMD, "GPTQ needs calibration text: --calib FILE (or --method rtn)");
        return 2;
    }
    /* the output policy before anything is read (the pipeline checks again) */
    if (gptq_ckpt_check_out(out, model_dir, qo.overwrite)) return cli_fail(CMD, 1);
    if (log_path && check_log_path(log_path, model_dir, out, calib)) return 1;
    if (qo.format == GPTQ_FORMAT_V1 && !qo.q.sym)
        cli_warn(CMD, "--format gptq with --asym: GPTQModel's loader refuses an asymmetric v1 "
                      "(\"gptq\") checkpoint unless GPTQModel >= 0.9.0 made it (\"Loading of a "
                      "sym=False model with format=gptq is only supported if produced by "
                      "gptqmodel version >= 0.9.0\"); vLLM, transformers and ExLlamaV2 read it. "
                      "Leave --format at auto to write gptq_v2");
    int rc = 1, st;

    gptq_model_config cfg;
    gptq_backend *be = NULL;
    gptq_quantize_summary sum;
    gptq_quantize_summary_init(&sum);
    if ((st = gptq_model_config_load(model_dir, &cfg))) return cli_fail(CMD, st);
    if (!seqlen_given && co.seqlen > cfg.max_positions) co.seqlen = cfg.max_positions;
    if (!rtn && co.seqlen > cfg.max_positions) {
        cli_err(CMD, "--seqlen %lld exceeds %s's max_position_embeddings (%lld)",
                (long long)co.seqlen, model_dir, (long long)cfg.max_positions);
        return 2;
    }
    u.log_path = log_path;
    u.tty = isatty(fileno(stderr));
    qo.calib_path = calib;
    qo.calib_bytes = co.max_bytes;
    qo.nsamples = co.nsamples;
    qo.seqlen = co.seqlen;
    qo.seed = co.seed;

    if ((st = gptq_backend_open(backend, &be))) goto fail;
    /* Each module allocates and frees host buffers of up to ~0.5 GB (a 7B
     * model: a few thousand such buffers). glibc would mmap and unmap each,
     * and every page of a new map is a page fault (35M of them, ~10% of a
     * 7B run on the H100). Keep freed memory for reuse instead: no mmap for
     * big blocks, no trimming of the heap's top. */
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, INT_MAX);
    qo.on_module = on_module;
    qo.on_progress = on_progress;
    qo.on_skip = on_skip;
    qo.user = &u;
    st = gptq_quantize_model_dir(be, model_dir, out, &qo, &sum);
    clear_bar(&u);
    if (st) goto fail;
    if (ctensors &&
        (st = gptq_ct_convert_dir(out, out,
                                  gptq_quant_config_act_group_aware(&qo.q) || qo.q.desc_act,
                                  qo.max_shard_bytes))) {
        cli_fail(CMD, st);
        cli_err(CMD, "the gptq_v2 checkpoint stays in %s", out);
        goto done;
    }
    if (!u.quiet) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        print_summary(&sum, &cfg, out, &qo.q, ru.ru_maxrss, be);
        if (ctensors)
            printf("  then rewritten as compressed-tensors pack-quantized (quant_method "
                   "\"compressed-tensors\")\n");
    }
    rc = 0;
    goto done;
fail:
    clear_bar(&u);
    cli_fail(CMD, st);
done:
    if (u.log) fclose(u.log);
    gptq_backend_close(be);
    return rc;
}
