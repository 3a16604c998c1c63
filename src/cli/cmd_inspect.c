/*
 * cmd_inspect.c — `gptq inspect CKPT [--json]`: what a GPTQ checkpoint
 * folder is (bits, group size, sym, act-order and its g_idx, v1/v2 zero
 * points, dtype, the modules quantized and the ones the dynamic rules
 * leave unquantized, bits per weight with the scales/zeros/g_idx
 * overhead), and which inference engines' kernels run each quantized
 * module shape at full speed, with the reason when one does not.
 *
 * The engines are rows of k_engines (data, each with the files it was read
 * from); one function checks a row against a module shape (the group and
 * in/out conditions through inspect_rules.c, which the compressed-tensors
 * table shares). Nothing is written. Any architecture: the modules are the
 * tensors named "<prefix>.qweight", resolved through quantization_config
 * (and its "dynamic" rules) as the loaders resolve them. A compressed-tensors
 * checkpoint has its own facts and engine table: inspect_ctensors.c.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "format/format.h"
#include "inspect_rules.h"
#include "internal.h"
#include "io/io.h"
#include "model/model.h"

static const char *CMD = "inspect";

/* ------------------------------------------------------------------ */
/* The engines                                                         */
/* ------------------------------------------------------------------ */

/* One engine's kernel for a GPTQ module of (out, in) features, one GPU (no
 * tensor parallelism: per-partition sizes are the whole module's). */
typedef struct engine_rule {
    const char *name;
    unsigned bits;           /* bit b set: b-bit weights run */
    int sym_only;            /* no runtime zero points: symmetric grids only */
    inspect_geom geom;       /* group sizes, in/out multiples (inspect_rules.h) */
    int act_order_ok;        /* a g_idx other than k // group_size (act-order) */
    int zero0_ok;            /* a stored zero point of 0 (v2) reads right */
    int top_bits_only;       /* reads quantization_config "bits" only: a dynamic
                                rule's bits are not honoured */
    int fp16_only;           /* float16 activations only (bfloat16 is cast) */
    int needs_g_idx;         /* reads every module's g_idx tensor (absent: fails) */
    const char *platform;
    const char *note;        /* what it says when it runs, or NULL */
} engine_rule;

static const engine_rule k_engines[] = {
    /* vllm/model_executor/layers/quantization/gptq_marlin.py (TYPE_MAP: (4,
     * sym) uint4b8, (8, sym) uint8b128; get_min_capability 75;
     * is_gptq_marlin_compatible) and utils/marlin_utils.py
     * (MARLIN_SUPPORTED_GROUP_SIZES [-1, 32, 64, 128]; verify_marlin_supports_shape:
     * out % GPTQ_MARLIN_MIN_THREAD_N 64, in % GPTQ_MARLIN_MIN_THREAD_K 128,
     * in % group) */
    {.name = "vLLM gptq_marlin", .bits = 1u << 4 | 1u << 8, .sym_only = 1,
     .geom = {.groups = {-1, 32, 64, 128}, .ngroups = 4, .in_div_group = 1, .in_mult = 128,
              .out_mult = 64},
     .act_order_ok = 1, .zero0_ok = 1,
     .platform = "CUDA, compute capability >= 7.5; float16 or bfloat16"},
    /* vllm/model_executor/layers/quantization/gptq.py (GPTQConfig: bits 2/3/4/8,
     * get_supported_act_dtypes [torch.half], get_min_capability 60, the
     * 4-bit warning; create_weights: in % group_size; checkpoint_format
     * gptq_v2 read since PR #26092) */
    {.name = "vLLM gptq_gemm", .bits = 1u << 2 | 1u << 3 | 1u << 4 | 1u << 8,
     .geom = {.group_any = 1, .in_div_group = 1, .in_mult = 1, .out_mult = 1},
     .act_order_ok = 1, .zero0_ok = 1, .fp16_only = 1,
     .platform = "CUDA or ROCm, compute capability >= 6.0; float16 only",
     .note = "4-bit: vLLM warns \"Currently, the 4-bit gptq_gemm kernel for GPTQ is buggy. "
             "Please switch to gptq_marlin.\""},
    /* vllm/model_executor/kernels/linear/mixed_precision/machete.py
     * (get_min_capability 90; can_implement) and
     * layers/quantization/utils/machete_utils.py (types without zero
     * points uint4b8/uint8b128, as gptq_marlin hands a GPTQ checkpoint over;
     * group sizes [-1, 64, 128] for 16-bit activations;
     * MACHETE_PREPACKED_BLOCK_SHAPE: in % 64, out % 128) */
    {.name = "Machete (vLLM)", .bits = 1u << 4 | 1u << 8, .sym_only = 1,
     .geom = {.groups = {-1, 64, 128}, .ngroups = 3, .in_div_group = 1, .in_mult = 64,
              .out_mult = 128},
     .act_order_ok = 1, .zero0_ok = 1,
     .platform = "CUDA, compute capability 9.0 (Hopper); float16 or bfloat16"},
    /* turboderp-org/exllamav2 exllamav2/ext.py (make_q_matrix, GPTQ path:
     * 4-bit words; "gptq_v2" turned into v1 by qzeros -= 0x11111111, which
     * borrows where a zero is 0), exllamav2/config.py
     * (quantization_config->checkpoint_format), ext_qmatrix.cpp (half);
     * ModelCloud/GPTQModel gptqmodel/nn_modules/qlinear/exllamav2.py
     * (SUPPORTS_BITS [4], SUPPORTS_GROUP_SIZE [-1, 32, 64, 128], in and out
     * divisible by 32) */
    {.name = "ExLlamaV2", .bits = 1u << 4,
     .geom = {.groups = {-1, 32, 64, 128}, .ngroups = 4, .in_div_group = 1, .in_mult = 32,
              .out_mult = 32},
     .act_order_ok = 1, .fp16_only = 1,
     .platform = "CUDA; float16"},
    /* vllm/model_executor/kernels/linear/mixed_precision/triton_w4a16.py
     * (TritonW4A16LinearKernel.can_implement: uint4b8 or uint4, 16-bit
     * activations, out % 8, no g_idx, group in [-1, 32, 64, 128, 256] or
     * the whole row, in % group); vLLM reaches it through
     * compressed-tensors' wNa16 scheme on ROCm */
    {.name = "vLLM Triton W4A16 (ROCm)", .bits = 1u << 4,
     .geom = {.groups = {-1, 32, 64, 128, 256}, .ngroups = 5, .group_whole_row_ok = 1,
              .in_div_group = 1, .in_mult = 1, .out_mult = 8},
     .zero0_ok = 1,
     .platform = "ROCm (MI300) through compressed-tensors wNa16; float16 or bfloat16"},
    /* ggml-org/llama.cpp convert_hf_to_gguf.py (ModelBase.dequant_model,
     * dequant_gptq: quant_config["bits"] in (2, 3, 4, 8), 3-bit raises
     * NotImplementedError; reads every module's g_idx; checkpoint_format
     * "gptq" adds 1 to the zeros, gptq_v2 not) */
    {.name = "llama.cpp convert_hf_to_gguf", .bits = 1u << 2 | 1u << 4 | 1u << 8,
     .geom = {.group_any = 1, .in_mult = 1, .out_mult = 1},
     .act_order_ok = 1, .zero0_ok = 1, .top_bits_only = 1, .needs_g_idx = 1,
     .platform = "conversion to GGUF (dequantized to float, then a GGUF type)"},
};
#define NENGINES ((int)(sizeof k_engines / sizeof *k_engines))

/* ------------------------------------------------------------------ */
/* Modules and their shapes                                            */
/* ------------------------------------------------------------------ */

typedef enum { GIDX_TRIVIAL, GIDX_MONOTONE, GIDX_ACT_ORDER, GIDX_ABSENT } gidx_kind;
static const char *const k_gidx_name[] = {"trivial (k // group_size)", "monotone, not k // "
                                          "group_size", "act-order (permuted)", "absent (k // "
                                          "group_size)"};
static const char *const k_gidx_json[] = {"trivial", "monotone", "act-order", "absent"};

/* One distinct module shape and settings, and the modules that have it. */
typedef struct shape {
    int64_t out, in;
    int bits, group, sym;
    gidx_kind gidx;
    int zero0;          /* some module of this shape stores a zero point of 0 */
    int nmod;
    char first[512];    /* the first module's name */
    int64_t zero0_count;
} shape;

typedef struct inspect {
    const char *dir;
    gptq_ckpt_quant q;
    char dtype[32];
    shape *sh;
    int nsh, capsh;
    int nquant, nskip;
    char skipped[4][512]; /* the first few */
    int64_t weights;      /* quantized weights (in * out summed) */
    int64_t qbytes;       /* their qweight, qzeros, scales and g_idx bytes */
    int64_t qweight_bytes;
    int gidx_count[4];
    int group_over_in;    /* a module whose group size exceeds its inputs */
    int by_gptqmodel;     /* meta.quantizer names gptqmodel >= 0.9.0 */
} inspect;

/* The verdict of engine e on shape s: 1 runs, 0 with the reason in why. */
static int engine_check(const engine_rule *e, const inspect *I, const shape *s, char *why,
                        size_t size)
{
    if (!(e->bits & (1u << s->bits))) {
        inspect_bits_why(s->bits, e->bits, why, size);
        return 0;
    }
    if (e->top_bits_only && s->bits != I->q.bits) {
        snprintf(why, size, "%d-bit from a dynamic rule: it reads only quantization_config "
                 "bits (%d)", s->bits, I->q.bits);
        return 0;
    }
    if (e->sym_only && !s->sym) {
        snprintf(why, size, "asymmetric: its GPTQ types carry no zero points (sym only)");
        return 0;
    }
    if (!inspect_geom_check(&e->geom, s->out, s->in, s->group, 0, "", why, size)) return 0;
    if (!e->act_order_ok && (s->gidx == GIDX_ACT_ORDER || s->gidx == GIDX_MONOTONE)) {
        snprintf(why, size, "g_idx is %s: it runs only g_idx = k // group_size",
                 k_gidx_name[s->gidx]);
        return 0;
    }
    if (e->needs_g_idx && s->gidx == GIDX_ABSENT) {
        snprintf(why, size, "no g_idx tensor (it reads <module>.g_idx for every module)");
        return 0;
    }
    if (!e->zero0_ok && s->zero0) {
        snprintf(why, size, "%lld zero points are 0, which it reads as 16 (its gptq_v2 "
                 "conversion subtracts 1 from each field)", (long long)s->zero0_count);
        return 0;
    }
    why[0] = '\0';
    return 1;
}

static shape *shape_for(inspect *I, const shape *key)
{
    for (int i = 0; i < I->nsh; i++) {
        shape *s = &I->sh[i];
        if (s->out == key->out && s->in == key->in && s->bits == key->bits &&
            s->group == key->group && s->sym == key->sym && s->gidx == key->gidx &&
            s->zero0 == key->zero0)
            return s;
    }
    if (I->nsh == I->capsh) {
        int cap = I->capsh ? 2 * I->capsh : 16;
        shape *n = realloc(I->sh, (size_t)cap * sizeof *n);
        if (!n) return NULL;
        I->sh = n;
        I->capsh = cap;
    }
    shape *s = &I->sh[I->nsh++];
    *s = *key;
    return s;
}

/* g_idx of a module (K entries, ngroups groups of G): which kind. */
static gidx_kind classify_gidx(const int32_t *g, int64_t K, int64_t G)
{
    int trivial = 1, monotone = 1;
    for (int64_t k = 0; k < K; k++) {
        if (g[k] != (int32_t)(k / G)) trivial = 0;
        if (k && g[k] < g[k - 1]) monotone = 0;
    }
    return trivial ? GIDX_TRIVIAL : monotone ? GIDX_MONOTONE : GIDX_ACT_ORDER;
}

/* One quantized module: read and checked as eval reads it, then counted. */
static int add_module(inspect *I, const gptq_weights *w, const char *prefix)
{
    gptq_ckpt_quant mq;
    int st = gptq_ckpt_quant_for_module(&I->q, prefix, &mq);
    if (st) return cli_fail(CMD, st);
    const gptq_dyn_rule *r = NULL;
    if (I->q.dynamic.n && (st = gptq_dynamic_match(&I->q.dynamic, prefix, &r)))
        return cli_fail(CMD, st);
    if (r && r->skip) {
        cli_err(CMD, "%s: %s has a qweight, but the dynamic rule \"%s\" leaves it unquantized: "
                     "loaders would look for %s.weight", I->dir, prefix, r->key, prefix);
        return 1;
    }
    char name[600];
    gptq_packed p;
    if ((st = gptq_weights_read_packed(w, &I->q, prefix, 0, 0, &p))) return cli_fail(CMD, st);
    const int64_t K = p.in_features, N = p.out_features, G = mq.group_size > 0 ? mq.group_size : K;
    int32_t *zeros = malloc((size_t)(p.ngroups * N) * sizeof *zeros);
    st = zeros ? gptq_unpack(&p, I->q.format, NULL, zeros) : GPTQ_ERR_NOMEM;
    if (st) {
        free(zeros);
        gptq_packed_free(&p);
        return cli_fail(CMD, st);
    }
    int64_t z0 = 0;
    for (int64_t i = 0; i < p.ngroups * N; i++) z0 += zeros[i] == 0;
    free(zeros);
    shape key = {.out = N, .in = K, .bits = mq.bits, .group = mq.group_size, .sym = mq.sym,
                 .zero0 = z0 > 0};
    gptq_tensor_name(name, sizeof name, prefix, GPTQ_T_G_IDX);
    key.gidx = gptq_weights_has(w, name) ? classify_gidx(p.g_idx, K, G) : GIDX_ABSENT;
    gptq_packed_free(&p);
    if (mq.group_size > K && !I->group_over_in++)
        cli_warn(CMD, "%s: group size %d exceeds its %lld input features (one group of %lld): "
                      "vLLM's gptq kernels refuse it (the input size is not a multiple of the "
                      "group size)", prefix, mq.group_size, (long long)K, (long long)K);
    shape *s = shape_for(I, &key);
    if (!s) {
        cli_err(CMD, "out of memory");
        return 1;
    }
    if (!s->nmod++) snprintf(s->first, sizeof s->first, "%s", prefix);
    s->zero0_count += z0;
    I->nquant++;
    I->gidx_count[key.gidx]++;
    const int64_t ng = (K + G - 1) / G;
    const int64_t qw = K * mq.bits / 32 * N * 4;
    I->qweight_bytes += qw;
    I->qbytes += qw + ng * (N * mq.bits / 32) * 4 + ng * N * 2 +
                 (key.gidx == GIDX_ABSENT ? 0 : K * 4);
    I->weights += K * N;
    return 0;
}

/* 1 when quantization_config's meta.quantizer (a string or a list) names
 * "gptqmodel:<version>" with version >= 0.9.0: GPTQModel's
 * is_quantized_by_gptaq (gptqmodel/quantization/config.py) looks at the
 * first "gptqmodel" entry only, as here. */
/* 1 when s is "gptqmodel:<version>": *v2 = version >= 0.9.0. */
static int gptqmodel_entry(const char *s, int *v2)
{
    if (strncasecmp(s, "gptqmodel:", 10)) return 0;
    int v[3] = {0, 0, 0};
    sscanf(s + 10, "%d.%d.%d", &v[0], &v[1], &v[2]);
    *v2 = v[0] > 0 || v[1] >= 9;
    return 1;
}

static int made_by_gptqmodel_v2(const cJSON *qc)
{
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(qc, "meta"), "quantizer");
    int v2 = 0;
    if (cJSON_IsString(q)) return gptqmodel_entry(q->valuestring, &v2) && v2;
    const cJSON *it = NULL;
    if (cJSON_IsArray(q))
        cJSON_ArrayForEach(it, q)
            if (cJSON_IsString(it) && gptqmodel_entry(it->valuestring, &v2)) return v2;
    return 0;
}

/* From config.json: torch_dtype (transformers 4) or dtype (5), else
 * "unknown"; and whether GPTQModel made it (made_by_gptqmodel_v2). */
static void read_config_facts(const char *dir, char *dtype, size_t size, int *by_gptqmodel)
{
    snprintf(dtype, size, "unknown");
    *by_gptqmodel = 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *root = NULL;
    if (!gptq_input_present(path) || gptq_json_read_file(path, &root)) return;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "torch_dtype");
    if (!cJSON_IsString(d)) d = cJSON_GetObjectItemCaseSensitive(root, "dtype");
    if (cJSON_IsString(d)) snprintf(dtype, size, "%s", d->valuestring);
    *by_gptqmodel =
        made_by_gptqmodel_v2(cJSON_GetObjectItemCaseSensitive(root, "quantization_config"));
    cJSON_Delete(root);
}

/* GPTQModel's own loader (gptqmodel/models/loader.py): a "gptq" (v1)
 * checkpoint with sym false is refused unless GPTQModel >= 0.9.0 made it.
 * 1 loads; 0 with the reason. */
static int gptqmodel_loads(const inspect *I, char *why, size_t size)
{
    if (I->q.format != GPTQ_FORMAT_V1 || I->q.sym || I->by_gptqmodel) {
        why[0] = '\0';
        return 1;
    }
    snprintf(why, size, "sym false with format gptq (v1), and meta.quantizer names no "
             "gptqmodel >= 0.9.0: its loader refuses it (\"only supported if produced by "
             "gptqmodel version >= 0.9.0\"); gptq_v2 loads");
    return 0;
}

/* ------------------------------------------------------------------ */
/* Output                                                              */
/* ------------------------------------------------------------------ */

static void print_text(const inspect *I)
{
    const gptq_ckpt_quant *q = &I->q;
    printf("checkpoint %s\n", I->dir);
    printf("  format:      %s (%s)\n", gptq_format_get(q->format)->name,
           q->format == GPTQ_FORMAT_V1 ? "v1: zero points stored as z - 1"
                                       : "v2: zero points stored as they are");
    printf("  bits:        %d, group size %d, %s, desc_act %s%s\n", q->bits, q->group_size,
           q->sym ? "sym" : "asym", q->desc_act ? "true" : "false",
           q->lm_head ? ", lm_head quantized" : "");
    printf("  dtype:       %s\n", I->dtype);
    for (int i = 0; i < q->dynamic.n; i++) {
        const gptq_dyn_rule *r = &q->dynamic.r[i];
        char d[160] = "";
        size_t n = 0;
        if (r->skip) n += (size_t)snprintf(d + n, sizeof d - n, ", left unquantized");
        if (r->bits > 0) n += (size_t)snprintf(d + n, sizeof d - n, ", bits %d", r->bits);
        if (r->group_size)
            n += (size_t)snprintf(d + n, sizeof d - n, ", group_size %d", r->group_size);
        if (r->sym >= 0)
            n += (size_t)snprintf(d + n, sizeof d - n, ", sym %s", r->sym ? "true" : "false");
        if (r->desc_act >= 0)
            snprintf(d + n, sizeof d - n, ", desc_act %s", r->desc_act ? "true" : "false");
        printf("  dynamic:     %s -> %s\n", r->key, d[0] ? d + 2 : "no override");
    }
    printf("  modules:     %d quantized, %d left unquantized by the dynamic rules", I->nquant,
           I->nskip);
    for (int i = 0; i < I->nskip && i < 4; i++) printf("%s%s", i ? ", " : " (", I->skipped[i]);
    printf("%s\n", I->nskip > 4 ? ", ...)" : I->nskip ? ")" : "");
    const double w = I->weights ? (double)I->weights : 1.0;
    printf("  bits/weight: %.3f (codes %.3f + scales, zeros and g_idx %.3f)\n",
           8.0 * (double)I->qbytes / w, 8.0 * (double)I->qweight_bytes / w,
           8.0 * (double)(I->qbytes - I->qweight_bytes) / w);
    for (int g = 0; g < 4; g++)
        if (I->gidx_count[g]) printf("  g_idx:       %s in %d modules\n", k_gidx_name[g],
                                     I->gidx_count[g]);
    printf("\nmodule shapes (out x in):\n");
    for (int i = 0; i < I->nsh; i++) {
        const shape *s = &I->sh[i];
        printf("  [%d] %lld x %lld, %d-bit, group %d, %s, g_idx %s", i + 1, (long long)s->out,
               (long long)s->in, s->bits, s->group, s->sym ? "sym" : "asym",
               k_gidx_json[s->gidx]);
        if (s->zero0) printf(", %lld zero points of 0", (long long)s->zero0_count);
        printf(": %d module%s (%s%s)\n", s->nmod, s->nmod == 1 ? "" : "s", s->first,
               s->nmod > 1 ? ", ..." : "");
    }
    char why[300];
    const int gm = gptqmodel_loads(I, why, sizeof why);
    printf("  GPTQModel:   %s%s\n", gm ? "loads it" : "no: ", why);
    printf("\nengines (one GPU, no tensor parallelism), per module shape:\n");
    for (int e = 0; e < NENGINES; e++) {
        const engine_rule *r = &k_engines[e];
        int nok = 0;
        for (int i = 0; i < I->nsh; i++) nok += engine_check(r, I, &I->sh[i], why, sizeof why);
        inspect_print_engine(r->name, nok == I->nsh, r->platform);
        for (int i = 0; i < I->nsh; i++)
            if (!engine_check(r, I, &I->sh[i], why, sizeof why)) inspect_print_refusal(i, why);
        if (nok && r->note && (r->bits & 1u << 4)) {
            int four = 0;
            for (int i = 0; i < I->nsh; i++) four |= I->sh[i].bits == 4;
            if (four) printf("      note: %s\n", r->note);
        }
        if (nok && r->fp16_only && strcmp(I->dtype, "float16") && strcmp(I->dtype, "unknown"))
            printf("      note: float16 activations only: the %s model runs in float16\n",
                   I->dtype);
    }
}

static int print_json(const inspect *I)
{
    const gptq_ckpt_quant *q = &I->q;
    cJSON *o = cJSON_CreateObject(), *dyn = cJSON_CreateArray(), *skip = cJSON_CreateArray(),
          *shapes = cJSON_CreateArray(), *engines = cJSON_CreateArray();
    int ok = o && dyn && skip && shapes && engines, owned = 0;
    if (!ok) goto fail;
    const double w = I->weights ? (double)I->weights : 1.0;
    char gm_why[300];
    ok = cJSON_AddStringToObject(o, "checkpoint", I->dir) &&
         cJSON_AddStringToObject(o, "checkpoint_format", gptq_format_get(q->format)->name) &&
         cJSON_AddNumberToObject(o, "bits", q->bits) &&
         cJSON_AddNumberToObject(o, "group_size", q->group_size) &&
         cJSON_AddBoolToObject(o, "sym", q->sym) &&
         cJSON_AddBoolToObject(o, "desc_act", q->desc_act) &&
         cJSON_AddBoolToObject(o, "lm_head", q->lm_head) &&
         cJSON_AddStringToObject(o, "dtype", I->dtype) &&
         cJSON_AddBoolToObject(o, "gptqmodel_loads", gptqmodel_loads(I, gm_why, sizeof gm_why)) &&
         cJSON_AddNumberToObject(o, "modules_quantized", I->nquant) &&
         cJSON_AddNumberToObject(o, "modules_skipped", I->nskip) &&
         cJSON_AddNumberToObject(o, "bits_per_weight", 8.0 * (double)I->qbytes / w) &&
         cJSON_AddNumberToObject(o, "bits_per_weight_codes", 8.0 * (double)I->qweight_bytes / w);
    if (!ok) goto fail;
    cJSON_AddItemToObject(o, "dynamic", dyn);
    cJSON_AddItemToObject(o, "skipped", skip);
    cJSON_AddItemToObject(o, "shapes", shapes);
    cJSON_AddItemToObject(o, "engines", engines);
    owned = 1;
    for (int i = 0; ok && i < q->dynamic.n; i++)
        ok = cJSON_AddItemToArray(dyn, cJSON_CreateString(q->dynamic.r[i].key));
    for (int i = 0; ok && i < I->nskip && i < 4; i++)
        ok = cJSON_AddItemToArray(skip, cJSON_CreateString(I->skipped[i]));
    for (int i = 0; ok && i < I->nsh; i++) {
        const shape *s = &I->sh[i];
        cJSON *j = cJSON_CreateObject();
        ok = j && cJSON_AddItemToArray(shapes, j) && cJSON_AddNumberToObject(j, "out", s->out) &&
             cJSON_AddNumberToObject(j, "in", s->in) &&
             cJSON_AddNumberToObject(j, "bits", s->bits) &&
             cJSON_AddNumberToObject(j, "group_size", s->group) &&
             cJSON_AddBoolToObject(j, "sym", s->sym) &&
             cJSON_AddStringToObject(j, "g_idx", k_gidx_json[s->gidx]) &&
             cJSON_AddNumberToObject(j, "zero_points_0", (double)s->zero0_count) &&
             cJSON_AddNumberToObject(j, "modules", s->nmod) &&
             cJSON_AddStringToObject(j, "first_module", s->first);
    }
    for (int e = 0; ok && e < NENGINES; e++) {
        const engine_rule *r = &k_engines[e];
        cJSON *j = cJSON_CreateObject(), *per = cJSON_CreateArray();
        int nok = 0;
        ok = j && per && cJSON_AddItemToArray(engines, j) &&
             cJSON_AddStringToObject(j, "engine", r->name) &&
             cJSON_AddStringToObject(j, "platform", r->platform);
        if (ok) cJSON_AddItemToObject(j, "shapes", per);
        else cJSON_Delete(per);
        for (int i = 0; ok && i < I->nsh; i++) {
            char why[300];
            const int yes = engine_check(r, I, &I->sh[i], why, sizeof why);
            nok += yes;
            ok = inspect_json_verdict(per, yes, why);
        }
        ok = ok && cJSON_AddBoolToObject(j, "ok", nok == I->nsh) &&
             (r->note ? cJSON_AddStringToObject(j, "note", r->note) != NULL
                      : cJSON_AddNullToObject(j, "note") != NULL);
    }
    char *text = ok ? cJSON_Print(o) : NULL;
    if (!text) goto fail;
    printf("%s\n", text);
    free(text);
    cJSON_Delete(o);
    return 0;
fail:
    cJSON_Delete(o);
    if (!owned) {
        cJSON_Delete(dyn);
        cJSON_Delete(skip);
        cJSON_Delete(shapes);
        cJSON_Delete(engines);
    }
    cli_err(CMD, "out of memory");
    return 1;
}

/* ------------------------------------------------------------------ */
/* The command                                                         */
/* ------------------------------------------------------------------ */

static void help(FILE *f)
{
    fprintf(f,
            "usage: gptq inspect CKPT [--json]\n\n"
            "What the GPTQ or compressed-tensors checkpoint folder CKPT is, and which\n"
            "engines' kernels run it. A GPTQ checkpoint:\n"
            "bits, group size, sym, desc_act and its g_idx (k // group_size, monotone or\n"
            "permuted), zero-point format (gptq v1 or gptq_v2), dtype, the modules\n"
            "quantized and the ones the dynamic rules leave unquantized, bits per weight\n"
            "with the scales/zeros/g_idx overhead; then, for every quantized module shape,\n"
            "yes or no (with the reason) for vLLM's gptq_marlin and gptq_gemm, Machete,\n"
            "ExLlamaV2, vLLM's Triton W4A16 on ROCm and llama.cpp's GGUF converter (one\n"
            "GPU, no tensor parallelism). A compressed-tensors (pack-quantized) one: bits,\n"
            "group or channel strategy, sym, actorder, the ignore list, the modules and\n"
            "bits per weight; then, per module shape, each kernel of vLLM's\n"
            "compressed-tensors WNA16 scheme (Machete, Marlin, Conch, ExLlama, Triton\n"
            "W4A16) with the reason when it cannot, the kernel vLLM picks on CUDA sm90,\n"
            "sm80-89, sm75 and ROCm, llama.cpp's GGUF converter, and the GPTQ-only\n"
            "loaders that do not read the format. Nothing is written.\n\n"
            "  --json       the same as one JSON object on stdout\n"
            "  -h, --help   this text\n");
}

int cmd_inspect(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int json = 0;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", longopts, NULL)) != -1;) {
        switch (c) {
        case 'j': json = 1; break;
        case 'h': help(stdout); return 0;
        default: help(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        cli_err(CMD, optind >= argc ? "no checkpoint folder" : "more than one checkpoint folder");
        help(stderr);
        return 2;
    }
    inspect I = {.dir = argv[optind]};
    struct stat sb;
    if (stat(I.dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        cli_err(CMD, "%s: not a folder (give the checkpoint's folder: config.json and its "
                     "safetensors)", I.dir);
        return 1;
    }
    int st = gptq_ckpt_quant_load(I.dir, &I.q);
    if (st) return cli_fail(CMD, st);
    if (!I.q.present) {
        cli_err(CMD, "%s: not a GPTQ checkpoint: no quantization_config in a config.json, "
                     "and no quantize_config.json", I.dir);
        return 1;
    }
    read_config_facts(I.dir, I.dtype, sizeof I.dtype, &I.by_gptqmodel);
    /* the GPTQ engine table names kernels that never see a compressed-tensors
     * checkpoint: its own facts and table (inspect_ctensors.c) */
    if (I.q.ctensors) return cli_inspect_ctensors(I.dir, &I.q, I.dtype, json);
    gptq_weights *w = NULL;
    if ((st = gptq_weights_open(I.dir, &w))) return cli_fail(CMD, st);
    int rc = 0;
    for (int i = 0; !rc && i < gptq_weights_count(w); i++) {
        gptq_st_info t;
        if ((st = gptq_weights_get(w, i, &t))) {
            rc = cli_fail(CMD, st);
            break;
        }
        const size_t n = strlen(t.name);
        char prefix[512];
        if (n > 8 && n - 8 < sizeof prefix && !strcmp(t.name + n - 8, ".qweight")) {
            snprintf(prefix, sizeof prefix, "%.*s", (int)(n - 8), t.name);
            rc = add_module(&I, w, prefix);
        } else if (n > 7 && n - 7 < sizeof prefix && !strcmp(t.name + n - 7, ".qzeros")) {
            /* a module's other tensors without its qweight: not to be skipped */
            char qw[600];
            snprintf(prefix, sizeof prefix, "%.*s", (int)(n - 7), t.name);
            if (!gptq_weights_has(w, gptq_tensor_name(qw, sizeof qw, prefix, GPTQ_T_QWEIGHT))) {
                cli_err(CMD, "%s: %s has qzeros but no tensor '%s'", I.dir, prefix, qw);
                rc = 1;
            }
        } else if (n > 7 && n - 7 < sizeof prefix && !strcmp(t.name + n - 7, ".weight") &&
                   t.ndim == 2 && I.q.dynamic.n) {
            /* a float Linear: left unquantized by a "-:" rule? */
            snprintf(prefix, sizeof prefix, "%.*s", (int)(n - 7), t.name);
            const gptq_dyn_rule *r = NULL;
            if ((st = gptq_dynamic_match(&I.q.dynamic, prefix, &r))) rc = cli_fail(CMD, st);
            else if (r && r->skip && I.nskip++ < 4)
                snprintf(I.skipped[I.nskip - 1], sizeof I.skipped[0], "%s", prefix);
        }
    }
    if (!rc && !I.nquant) {
        cli_err(CMD, "%s: no quantized module (no tensor named <module>.qweight), though its "
                     "config declares GPTQ", I.dir);
        rc = 1;
    }
    if (!rc) rc = json ? print_json(&I) : (print_text(&I), 0);
    gptq_weights_close(w);
    free(I.sh);
    return rc;
}
