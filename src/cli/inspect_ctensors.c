/*
 * inspect_ctensors.c — `gptq inspect` on a compressed-tensors
 * "pack-quantized" checkpoint (cmd_inspect.c hands it over): the format
 * facts (bits, group or channel strategy, sym or asym, actorder, the ignore
 * list, the modules quantized and left out, bits per weight), then, per
 * module shape, which kernel of vLLM's compressed-tensors WNA16 scheme can
 * run it and which one vLLM picks on each platform, and which other
 * engines read the format at all.
 *
 * How vLLM runs this format, as read from its public source (facts only):
 *   layers/quantization/compressed_tensors/compressed_tensors.py
 *     (_is_wNa16_group_channel: strategy "channel" or "group", no input
 *     activations, static weights; with format "pack-quantized" the layer
 *     gets CompressedTensorsWNA16)
 *   layers/quantization/compressed_tensors/schemes/compressed_tensors_wNa16.py
 *     (WNA16_SUPPORTED_TYPES_MAP: symmetric 4-bit as uint4b8, 8-bit as
 *     uint8b128; WNA16_ZP_SUPPORTED_TYPES_MAP: asymmetric 4-bit uint4, 8-bit
 *     uint8 with weight_zero_point; get_min_capability 75; actorder "group"
 *     means a weight_g_idx; create_weights: on one GPU a group size must
 *     divide in_features (verify_group_size_divides_partition); then
 *     choose_mp_linear_kernel(MPLinearLayerConfig))
 *   model_executor/kernels/linear/__init__.py (_POSSIBLE_KERNELS, tried in
 *     this order, the first whose can_implement passes runs the layer.
 *     CUDA: CutlassW4A8 (int4 weights with fp8 activations, not W4A16),
 *     Machete, AllSpark, Marlin, Conch, Exllama, TritonW4A16, Humming.
 *     ROCm: RDNA3W4A16 and RDNAHybridW4A16 (RDNA consumer GPUs),
 *     TritonW4A16, Conch, Exllama.)
 * The kernel rows are their can_implement conditions for a layer with
 * 16-bit activations on one GPU (no tensor parallelism: per-partition
 * sizes are the module's). Left out: AllSpark (8-bit on sm80-89 only), the
 * RDNA kernels and Humming. Our reader takes actorder null or "weight"
 * only (no weight_g_idx), so no row here meets an act-order g_idx.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "inspect_rules.h"
#include "internal.h"
#include "io/io.h"
#include "model/model.h"

static const char *CMD = "inspect";

enum {
    E_MACHETE, E_MARLIN, E_CONCH, E_EXLLAMA, E_TRITON, E_LLAMACPP, E_VLLM_GPTQ, E_EXLLAMAV2,
    NENG
};

typedef struct ct_engine {
    const char *name;
    const char *kernel;           /* vLLM's kernel, as the picks name it (NULL: not vLLM's) */
    unsigned sym_bits, asym_bits; /* bit b set: b-bit weights, symmetric / with zero points */
    inspect_geom geom;            /* group sizes (-1: channel), in/out multiples; with
                                     geom.group_any, any positive group size */
    int group_strategy_only;      /* strategy "group" only, never "channel" */
    int pads_tiles;               /* newer vLLM zero-pads in/out to the tile instead */
    int out_mult_pack;            /* out_features a multiple of 32 / bits */
    int fp16_only;                /* float16 activations only */
    int optional_pkg;             /* needs a package vLLM does not install */
    const char *not_format;       /* a GPTQ-only loader: why it does not read this */
    const char *platform;
    const char *note;
} ct_engine;

static const ct_engine k_ct[NENG] = {
    /* kernels/linear/mixed_precision/machete.py (get_min_capability 90,
     * is_device_capability(90); can_implement) and
     * layers/quantization/utils/machete_utils.py
     * (query_machete_supported_quant_types: uint4, uint8 with zero points,
     * uint4b8, uint8b128 without; query_machete_supported_group_sizes:
     * [-1, 64, 128] for float16/bfloat16; check_machete_supports_shape:
     * MACHETE_PREPACKED_BLOCK_SHAPE in % 64, out % 128) */
    [E_MACHETE] = {.name = "vLLM WNA16 Machete", .kernel = "Machete",
                   .sym_bits = 1u << 4 | 1u << 8, .asym_bits = 1u << 4 | 1u << 8,
                   .geom = {.groups = {-1, 64, 128}, .ngroups = 3,
                            .in_div_group = 1, .in_mult = 64, .out_mult = 128},
                   .platform = "CUDA, compute capability 9.0 (H100, H200); float16 or bfloat16"},
    /* kernels/linear/mixed_precision/marlin.py (get_min_capability 75;
     * can_implement) and layers/quantization/utils/marlin_utils.py
     * (query_marlin_supported_quant_types: with zero points uint4 only,
     * without uint4b8 and uint8b128, none below capability 75;
     * MARLIN_SUPPORTED_GROUP_SIZES [-1, 32, 64, 128];
     * verify_marlin_supports_shape: out % GPTQ_MARLIN_MIN_THREAD_N 64,
     * in % GPTQ_MARLIN_MIN_THREAD_K 128; marlin_padded_nk: newer vLLM
     * zero-pads other shapes without act-order, "performance may be
     * degraded") */
    [E_MARLIN] = {.name = "vLLM WNA16 Marlin", .kernel = "Marlin",
                  .sym_bits = 1u << 4 | 1u << 8, .asym_bits = 1u << 4,
                  .geom = {.groups = {-1, 32, 64, 128}, .ngroups = 4,
                           .in_div_group = 1, .in_mult = 128, .out_mult = 64},
                  .pads_tiles = 1,
                  .platform = "CUDA, compute capability >= 7.5; float16 or bfloat16"},
    /* kernels/linear/mixed_precision/conch.py (get_min_capability 80;
     * _CONCH_SUPPORTED_WEIGHT_TYPES uint4, uint8, uint4b8, uint8b128;
     * _CONCH_SUPPORTED_GROUP_SIZES [-1, 128]; no g_idx; find_spec("conch"):
     * the conch-triton-kernels package) */
    [E_CONCH] = {.name = "vLLM WNA16 Conch", .kernel = "Conch",
                 .sym_bits = 1u << 4 | 1u << 8, .asym_bits = 1u << 4 | 1u << 8,
                 .geom = {.groups = {-1, 128}, .ngroups = 2,
                          .in_div_group = 1, .in_mult = 1, .out_mult = 1},
                 .optional_pkg = 1,
                 .platform = "CUDA >= 8.0 or ROCm, with pip's conch-triton-kernels installed"},
    /* kernels/linear/mixed_precision/exllama.py (get_min_capability 60;
     * is_cuda_alike; SUPPORTED_QUANT_TYPES uint4b8, uint8b128: no zero-point
     * types; out % (32 / bits); float16 activations only; group_size must
     * be positive and divide in_features) */
    [E_EXLLAMA] = {.name = "vLLM WNA16 ExLlama", .kernel = "ExLlama",
                   .sym_bits = 1u << 4 | 1u << 8,
                   .geom = {.group_any = 1, .in_div_group = 1, .in_mult = 1, .out_mult = 1},
                   .out_mult_pack = 1, .fp16_only = 1,
                   .platform = "CUDA >= 6.0 or ROCm; float16 only"},
    /* kernels/linear/mixed_precision/triton_w4a16.py
     * (TRITON_W4A16_SUPPORTED_QUANT_TYPES uint4b8, uint4;
     * TRITON_W4A16_SUPPORTED_GROUP_SIZES [-1, 32, 64, 128, 256] or the whole
     * row; float16/bfloat16; out % 8; no g_idx; in % group; "preferred over
     * MarlinLinearKernel/ExllamaLinearKernel on ROCm") */
    [E_TRITON] = {.name = "vLLM WNA16 Triton W4A16", .kernel = "Triton W4A16",
                  .sym_bits = 1u << 4, .asym_bits = 1u << 4,
                  .geom = {.groups = {-1, 32, 64, 128, 256}, .ngroups = 5,
                           .group_whole_row_ok = 1, .in_div_group = 1, .in_mult = 1,
                           .out_mult = 8},
                  .platform = "ROCm (MI300: vLLM's first choice there), or CUDA last"},
    /* ggml-org/llama.cpp convert_hf_to_gguf.py (ModelBase.dequant_model,
     * quant_method "compressed-tensors": one config group; format
     * "pack-quantized" asserts strategy "group", type int and integer
     * num_bits and group_size; dequant_packed takes any width and an
     * optional weight_zero_point) */
    [E_LLAMACPP] = {.name = "llama.cpp convert_hf_to_gguf", .sym_bits = 0x1fcu,
                    .asym_bits = 0x1fcu,
                    .geom = {.group_any = 1, .in_mult = 1, .out_mult = 1},
                    .group_strategy_only = 1,
                    .platform = "conversion to GGUF (dequantized to float, then a GGUF type)"},
    /* vllm/model_executor/layers/quantization/gptq_marlin.py and gptq.py
     * read quant_method "gptq" (qweight, qzeros, scales, g_idx) */
    [E_VLLM_GPTQ] = {.name = "vLLM gptq_marlin / gptq_gemm",
                     .not_format = "not this format: vLLM gives quant_method "
                                   "\"compressed-tensors\" to its compressed-tensors WNA16 "
                                   "scheme (the rows above); its GPTQ kernels read "
                                   "quant_method \"gptq\" checkpoints",
                     .platform = "CUDA or ROCm"},
    /* turboderp-org/exllamav2 exllamav2/ext.py (make_q_matrix: GPTQ's
     * qweight, qzeros, scales, g_idx) */
    [E_EXLLAMAV2] = {.name = "ExLlamaV2",
                     .not_format = "not this format: it reads GPTQ tensors (qweight, qzeros, "
                                   "scales); write --format gptq or gptq_v2 for it",
                     .platform = "CUDA; float16"},
};

/* vLLM's chooser order per platform (kernels/linear/__init__.py; the
 * kernels' minimum capabilities: Machete 9.0, Conch 8.0, Marlin 7.5). */
static const struct {
    const char *name;
    int order[5], n;
} k_plat[] = {
    {"CUDA sm90 (H100, H200)", {E_MACHETE, E_MARLIN, E_CONCH, E_EXLLAMA, E_TRITON}, 5},
    {"CUDA sm80-sm89 (A100, L40S)", {E_MARLIN, E_CONCH, E_EXLLAMA, E_TRITON}, 4},
    {"CUDA sm75 (T4)", {E_MARLIN, E_EXLLAMA, E_TRITON}, 3},
    {"ROCm (MI300)", {E_TRITON, E_CONCH, E_EXLLAMA}, 3},
};
#define NPLAT ((int)(sizeof k_plat / sizeof *k_plat))

typedef struct ct_shape {
    int64_t out, in;
    int bits, group, sym;
    int nmod;
    char first[512];
} ct_shape;

typedef struct ct_inspect {
    const char *dir;
    const gptq_ckpt_quant *q;
    const char *dtype;
    const char *strategy, *actorder; /* as written; actorder NULL: null */
    const cJSON *ignore;             /* the raw list, or NULL */
    ct_shape *sh;
    int nsh, capsh;
    int nquant, nskip;
    char skipped[4][512];
    int64_t weights, bytes, packed_bytes;
} ct_inspect;

/* The verdict of engine e on shape s: 1 runs, 0 with the reason in why. */
static int ct_check(const ct_engine *e, const ct_inspect *I, const ct_shape *s, char *why,
                    size_t size)
{
    char l1[32], l2[32];
    const int G = s->group;
    if (e->not_format) {
        snprintf(why, size, "%s", e->not_format);
        return 0;
    }
    if (!((s->sym ? e->sym_bits : e->asym_bits) & 1u << s->bits)) {
        if (!s->sym && (e->sym_bits & 1u << s->bits) && !e->asym_bits)
            snprintf(why, size, "asymmetric (weight_zero_point): it runs symmetric weights "
                     "only (bits%s)", inspect_bit_list(e->sym_bits, l1, sizeof l1));
        else if (!s->sym && (e->sym_bits & 1u << s->bits))
            snprintf(why, size, "asymmetric %d-bit (weight_zero_point): with zero points it "
                     "runs bits%s only", s->bits, inspect_bit_list(e->asym_bits, l2, sizeof l2));
        else
            inspect_bits_why(s->bits, e->sym_bits | e->asym_bits, why, size);
        return 0;
    }
    if (G == -1 && e->group_strategy_only) {
        snprintf(why, size, "strategy \"channel\": it asserts strategy \"group\"");
        return 0;
    }
    if (e->geom.group_any && G == -1) {
        snprintf(why, size, "channelwise (one group per row): it needs a positive group size");
        return 0;
    }
    if (!inspect_geom_check(&e->geom, s->out, s->in, G, 1,
                            e->pads_tiles ? " (newer vLLM zero-pads it to the tile, slower; "
                                            "older vLLM refuses it)" : "",
                            why, size))
        return 0;
    if (e->out_mult_pack && s->out % (32 / s->bits)) {
        snprintf(why, size, "out_features %lld is not a multiple of %d (32 / bits)",
                 (long long)s->out, 32 / s->bits);
        return 0;
    }
    /* vLLM's --dtype auto runs a bfloat16 model in bfloat16 */
    if (e->fp16_only && !strcmp(I->dtype, "bfloat16")) {
        snprintf(why, size, "float16 activations only, and the model is %s (vLLM's --dtype "
                 "float16 would run it)", I->dtype);
        return 0;
    }
    why[0] = '\0';
    return 1;
}

/* The kernel vLLM picks for shape s on platform p: the first in its order
 * that can run it (an optional package counted as absent); -1: none. */
static int ct_pick(const ct_inspect *I, int p, const ct_shape *s)
{
    char why[400];
    for (int i = 0; i < k_plat[p].n; i++) {
        const ct_engine *e = &k_ct[k_plat[p].order[i]];
        if (!e->optional_pkg && ct_check(e, I, s, why, sizeof why)) return k_plat[p].order[i];
    }
    return -1;
}

static ct_shape *shape_for(ct_inspect *I, const ct_shape *key)
{
    for (int i = 0; i < I->nsh; i++) {
        ct_shape *s = &I->sh[i];
        if (s->out == key->out && s->in == key->in && s->bits == key->bits &&
            s->group == key->group && s->sym == key->sym)
            return s;
    }
    if (I->nsh == I->capsh) {
        const int cap = I->capsh ? 2 * I->capsh : 16;
        ct_shape *n = realloc(I->sh, (size_t)cap * sizeof *n);
        if (!n) return NULL;
        I->sh = n;
        I->capsh = cap;
    }
    ct_shape *s = &I->sh[I->nsh++];
    *s = *key;
    return s;
}

/* 1 when quantization_config's ignore leaves prefix unquantized (its "-:"
 * rules, and "lm_head" itself); -1 with the message on a failure. */
static int ignored(const ct_inspect *I, const char *prefix)
{
    if (!strcmp(prefix, "lm_head") && !I->q->lm_head) return 1;
    const gptq_dyn_rule *r = NULL;
    if (I->q->dynamic.n && gptq_dynamic_match(&I->q->dynamic, prefix, &r)) return -1;
    return r && r->skip;
}

/* One module with a weight_packed: read as eval reads it, then counted. */
static int add_module(ct_inspect *I, const gptq_weights *w, const char *prefix)
{
    const int ig = ignored(I, prefix);
    if (ig < 0) return cli_fail(CMD, GPTQ_ERR_FORMAT);
    if (ig) {
        cli_err(CMD, "%s: %s has a weight_packed, but quantization_config.ignore leaves it "
                     "unquantized: loaders would look for %s.weight", I->dir, prefix, prefix);
        return 1;
    }
    gptq_ckpt_quant mq;
    int st = gptq_ckpt_quant_for_module(I->q, prefix, &mq);
    gptq_packed p;
    if (!st) st = gptq_weights_read_packed(w, I->q, prefix, 0, 0, &p);
    if (st) return cli_fail(CMD, st);
    const int64_t K = p.in_features, N = p.out_features, ng = p.ngroups;
    gptq_packed_free(&p);
    ct_shape key = {.out = N, .in = K, .bits = mq.bits, .group = mq.group_size, .sym = mq.sym};
    ct_shape *s = shape_for(I, &key);
    if (!s) {
        cli_err(CMD, "out of memory");
        return 1;
    }
    if (!s->nmod++) snprintf(s->first, sizeof s->first, "%s", prefix);
    I->nquant++;
    /* weight_packed (N, ceil(K/pf)) int32, weight_scale (N, ng) fp16,
     * weight_zero_point (ceil(N/pf), ng) int32 when asym, weight_shape 2 int64 */
    const int pf = 32 / mq.bits;
    const int64_t packed = N * ((K + pf - 1) / pf) * 4;
    I->packed_bytes += packed;
    I->bytes += packed + N * ng * 2 + (mq.sym ? 0 : (N + pf - 1) / pf * ng * 4) + 16;
    I->weights += K * N;
    return 0;
}

/* The quantization_config as written (config.json's, else
 * quantize_config.json, as gptq_ckpt_quant_load looks): strategy, actorder
 * and the ignore list. *root is freed by the caller. */
static int read_raw(ct_inspect *I, cJSON **root)
{
    char path[4096];
    const cJSON *qc = NULL;
    snprintf(path, sizeof path, "%s/config.json", I->dir);
    if (gptq_input_present(path) && !gptq_json_read_file(path, root))
        qc = cJSON_GetObjectItemCaseSensitive(*root, "quantization_config");
    if (!cJSON_IsObject(qc)) {
        cJSON_Delete(*root);
        *root = NULL;
        snprintf(path, sizeof path, "%s/quantize_config.json", I->dir);
        int st = gptq_json_read_file(path, root);
        if (st) return cli_fail(CMD, st);
        qc = *root;
    }
    /* gptq_ckpt_quant_load parsed this very object: its shape is known */
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(qc, "config_groups");
    const cJSON *wt = cJSON_GetObjectItemCaseSensitive(g ? g->child : NULL, "weights");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(wt, "strategy");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(wt, "actorder");
    const cJSON *ig = cJSON_GetObjectItemCaseSensitive(qc, "ignore");
    I->strategy = cJSON_IsString(s) ? s->valuestring : "?";
    I->actorder = cJSON_IsString(a) ? a->valuestring : NULL;
    I->ignore = cJSON_IsArray(ig) ? ig : NULL;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Output                                                              */
/* ------------------------------------------------------------------ */

static void print_text(const ct_inspect *I)
{
    const gptq_ckpt_quant *q = I->q;
    printf("checkpoint %s\n", I->dir);
    printf("  format:      compressed-tensors pack-quantized (weight_packed, weight_scale%s, "
           "weight_shape)\n", q->sym ? "" : ", weight_zero_point");
    printf("  bits:        %d, ", q->bits);
    if (q->group_size == -1) printf("strategy channel (one group per row)");
    else printf("group size %d (strategy %s)", q->group_size, I->strategy);
    printf(", %s, actorder %s\n", q->sym ? "sym" : "asym",
           I->actorder ? "weight (columns in activation order, groups contiguous)" : "null");
    printf("  dtype:       %s\n", I->dtype);
    printf("  ignore:      ");
    const cJSON *e;
    int n = 0;
    /* the first few; --json gives them all */
    if (I->ignore) cJSON_ArrayForEach(e, I->ignore)
            if (cJSON_IsString(e) && n++ < 4) printf("%s%s", n > 1 ? ", " : "", e->valuestring);
    if (n > 4) printf(", ... (%d entries)", n);
    printf("%s\n", n ? "" : "(none)");
    printf("  modules:     %d quantized, %d left unquantized by ignore", I->nquant, I->nskip);
    for (int i = 0; i < I->nskip && i < 4; i++) printf("%s%s", i ? ", " : " (", I->skipped[i]);
    printf("%s\n", I->nskip > 4 ? ", ...)" : I->nskip ? ")" : "");
    const double w = I->weights ? (double)I->weights : 1.0;
    printf("  bits/weight: %.3f (codes %.3f + weight_scale%s and weight_shape %.3f)\n",
           8.0 * (double)I->bytes / w, 8.0 * (double)I->packed_bytes / w,
           q->sym ? "" : ", weight_zero_point", 8.0 * (double)(I->bytes - I->packed_bytes) / w);
    printf("\nmodule shapes (out x in):\n");
    for (int i = 0; i < I->nsh; i++) {
        const ct_shape *s = &I->sh[i];
        printf("  [%d] %lld x %lld, %d-bit, group %d, %s: %d module%s (%s%s)\n", i + 1,
               (long long)s->out, (long long)s->in, s->bits, s->group, s->sym ? "sym" : "asym",
               s->nmod, s->nmod == 1 ? "" : "s", s->first, s->nmod > 1 ? ", ..." : "");
    }
    printf("\nengines (one GPU, no tensor parallelism), per module shape:\n");
    char why[400];
    for (int k = 0; k < NENG; k++) {
        const ct_engine *r = &k_ct[k];
        int nok = 0;
        for (int i = 0; i < I->nsh; i++) nok += ct_check(r, I, &I->sh[i], why, sizeof why);
        inspect_print_engine(r->name, nok == I->nsh, r->platform);
        if (r->not_format) {
            printf("      %s\n", r->not_format);
            continue;
        }
        for (int i = 0; i < I->nsh; i++)
            if (!ct_check(r, I, &I->sh[i], why, sizeof why)) inspect_print_refusal(i, why);
    }
    printf("\nvLLM picks (the first kernel in its order that runs the layer; Conch counted "
           "absent):\n");
    for (int p = 0; p < NPLAT; p++) {
        printf("  %-30s", k_plat[p].name);
        int same = 1;
        for (int i = 1; i < I->nsh; i++) same &= ct_pick(I, p, &I->sh[i]) == ct_pick(I, p, I->sh);
        for (int i = 0; i < (same ? 1 : I->nsh); i++) {
            const int k = ct_pick(I, p, &I->sh[i]);
            if (!same) printf("%s[%d] ", i ? ", " : " ", i + 1);
            else printf(" ");
            printf("%s", k < 0 ? "none: vLLM refuses the layer" : k_ct[k].kernel);
        }
        printf("%s\n", same && I->nsh > 1 ? " (every shape)" : "");
    }
}

static int print_json(const ct_inspect *I)
{
    const gptq_ckpt_quant *q = I->q;
    cJSON *o = cJSON_CreateObject();
    int ok = o != NULL;
    const double w = I->weights ? (double)I->weights : 1.0;
    ok = ok && cJSON_AddStringToObject(o, "checkpoint", I->dir) &&
         cJSON_AddStringToObject(o, "quant_method", "compressed-tensors") &&
         cJSON_AddStringToObject(o, "format", "pack-quantized") &&
         cJSON_AddNumberToObject(o, "bits", q->bits) &&
         cJSON_AddNumberToObject(o, "group_size", q->group_size) &&
         cJSON_AddStringToObject(o, "strategy", I->strategy) &&
         cJSON_AddBoolToObject(o, "sym", q->sym) &&
         (I->actorder ? cJSON_AddStringToObject(o, "actorder", I->actorder) != NULL
                      : cJSON_AddNullToObject(o, "actorder") != NULL) &&
         cJSON_AddBoolToObject(o, "lm_head", q->lm_head) &&
         cJSON_AddStringToObject(o, "dtype", I->dtype) &&
         cJSON_AddNumberToObject(o, "modules_quantized", I->nquant) &&
         cJSON_AddNumberToObject(o, "modules_skipped", I->nskip) &&
         cJSON_AddNumberToObject(o, "bits_per_weight", 8.0 * (double)I->bytes / w) &&
         cJSON_AddNumberToObject(o, "bits_per_weight_codes", 8.0 * (double)I->packed_bytes / w);
    cJSON *ig = ok ? (I->ignore ? cJSON_Duplicate(I->ignore, 1) : cJSON_CreateArray()) : NULL;
    ok = ig && cJSON_AddItemToObject(o, "ignore", ig);
    cJSON *skip = ok ? cJSON_AddArrayToObject(o, "skipped") : NULL;
    for (int i = 0; skip && i < I->nskip && i < 4; i++)
        ok = ok && cJSON_AddItemToArray(skip, cJSON_CreateString(I->skipped[i]));
    cJSON *shapes = ok && skip ? cJSON_AddArrayToObject(o, "shapes") : NULL;
    for (int i = 0; shapes && ok && i < I->nsh; i++) {
        const ct_shape *s = &I->sh[i];
        cJSON *j = cJSON_CreateObject();
        ok = j && cJSON_AddItemToArray(shapes, j) && cJSON_AddNumberToObject(j, "out", s->out) &&
             cJSON_AddNumberToObject(j, "in", s->in) &&
             cJSON_AddNumberToObject(j, "bits", s->bits) &&
             cJSON_AddNumberToObject(j, "group_size", s->group) &&
             cJSON_AddBoolToObject(j, "sym", s->sym) &&
             cJSON_AddNumberToObject(j, "modules", s->nmod) &&
             cJSON_AddStringToObject(j, "first_module", s->first);
    }
    cJSON *engines = ok && shapes ? cJSON_AddArrayToObject(o, "engines") : NULL;
    for (int k = 0; engines && ok && k < NENG; k++) {
        const ct_engine *r = &k_ct[k];
        cJSON *j = cJSON_CreateObject();
        cJSON *per = j && cJSON_AddItemToArray(engines, j) ? cJSON_AddArrayToObject(j, "shapes")
                                                            : NULL;
        ok = per && cJSON_AddStringToObject(j, "engine", r->name) &&
             cJSON_AddStringToObject(j, "platform", r->platform) &&
             cJSON_AddBoolToObject(j, "this_format", r->not_format == NULL);
        int nok = 0;
        for (int i = 0; ok && i < I->nsh; i++) {
            char why[400];
            const int yes = ct_check(r, I, &I->sh[i], why, sizeof why);
            nok += yes;
            ok = inspect_json_verdict(per, yes, why);
        }
        ok = ok && cJSON_AddBoolToObject(j, "ok", nok == I->nsh);
    }
    cJSON *picks = ok && engines ? cJSON_AddArrayToObject(o, "vllm_picks") : NULL;
    for (int p = 0; picks && ok && p < NPLAT; p++) {
        cJSON *j = cJSON_CreateObject();
        cJSON *per = j && cJSON_AddItemToArray(picks, j) ? cJSON_AddArrayToObject(j, "shapes")
                                                          : NULL;
        ok = per && cJSON_AddStringToObject(j, "platform", k_plat[p].name);
        for (int i = 0; ok && i < I->nsh; i++) {
            const int k = ct_pick(I, p, &I->sh[i]);
            ok = cJSON_AddItemToArray(per, k < 0 ? cJSON_CreateNull()
                                                 : cJSON_CreateString(k_ct[k].kernel));
        }
    }
    char *text = ok && picks ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    if (!text) {
        cli_err(CMD, "out of memory");
        return 1;
    }
    printf("%s\n", text);
    free(text);
    return 0;
}

/* ------------------------------------------------------------------ */
/* The command's compressed-tensors half                              */
/* ------------------------------------------------------------------ */

int cli_inspect_ctensors(const char *dir, const gptq_ckpt_quant *q, const char *dtype, int json)
{
    ct_inspect I = {.dir = dir, .q = q, .dtype = dtype};
    cJSON *raw = NULL;
    if (read_raw(&I, &raw)) return 1;
    gptq_weights *w = NULL;
    int st = gptq_weights_open(dir, &w);
    if (st) {
        cJSON_Delete(raw);
        return cli_fail(CMD, st);
    }
    int rc = 0;
    for (int i = 0; !rc && i < gptq_weights_count(w); i++) {
        gptq_st_info t;
        if ((st = gptq_weights_get(w, i, &t))) {
            rc = cli_fail(CMD, st);
            break;
        }
        const size_t n = strlen(t.name);
        char prefix[512], name[600];
        if (n > 14 && n - 14 < sizeof prefix && !strcmp(t.name + n - 14, ".weight_packed")) {
            snprintf(prefix, sizeof prefix, "%.*s", (int)(n - 14), t.name);
            rc = add_module(&I, w, prefix);
        } else if (n > 13 && n - 13 < sizeof prefix && !strcmp(t.name + n - 13, ".weight_scale")) {
            /* a module's scales without its weight_packed: neither float
             * nor quantized (a float Linear has no weight_scale here) */
            snprintf(prefix, sizeof prefix, "%.*s", (int)(n - 13), t.name);
            snprintf(name, sizeof name, "%s.weight_packed", prefix);
            if (!gptq_weights_has(w, name)) {
                cli_err(CMD, "%s: %s has weight_scale but no tensor '%s'", dir, prefix, name);
                rc = 1;
            }
        } else if (n > 7 && n - 7 < sizeof prefix && !strcmp(t.name + n - 7, ".weight") &&
                   t.ndim == 2) {
            /* a float Linear (or an embedding): left unquantized by ignore? */
            snprintf(prefix, sizeof prefix, "%.*s", (int)(n - 7), t.name);
            const int ig = ignored(&I, prefix);
            if (ig < 0) rc = cli_fail(CMD, GPTQ_ERR_FORMAT);
            else if (ig && I.nskip++ < 4)
                snprintf(I.skipped[I.nskip - 1], sizeof I.skipped[0], "%s", prefix);
        }
    }
    if (!rc && !I.nquant) {
        cli_err(CMD, "%s: no quantized module (no tensor named <module>.weight_packed), though "
                     "its config declares compressed-tensors pack-quantized", dir);
        rc = 1;
    }
    if (!rc) rc = json ? print_json(&I) : (print_text(&I), 0);
    gptq_weights_close(w);
    free(I.sh);
    cJSON_Delete(raw);
    return rc;
}
