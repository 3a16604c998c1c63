/*
 * config.c — Hugging Face config.json -> gptq_model_config.
 *
 * Both styles real hub models come in are read:
 *   transformers 4: "rope_theta", "rope_scaling" (null or default), "torch_dtype"
 *   transformers 5: "rope_parameters": {"rope_theta", "rope_type"}, "dtype"
 * Defaults follow the transformers config classes (LlamaConfig, MistralConfig,
 * Qwen2Config, OPTConfig), so a key they would default may be absent here too.
 * GPTQ checkpoints: "quantization_config" in config.json, else
 * quantize_config.json beside it; the synonyms other tools write (wbits,
 * w_bit, q_group_size, zero_point) are accepted.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "../format/format.h"
#include "../io/io.h"
#include "../text/tokenizer.h"
#include "model.h"

/* Getter results: GPTQ_OK / GPTQ_JSON_ABSENT are fine, negatives fail. */
#define CFG_TRY(expr)          \
    do {                       \
        int st_ = (expr);      \
        if (st_ < 0) return st_; \
    } while (0)

static int parse_dtype(const char *s, gptq_dtype *out)
{
    if (!strcmp(s, "float32") || !strcmp(s, "torch.float32")) *out = GPTQ_F32;
    else if (!strcmp(s, "float16") || !strcmp(s, "torch.float16")) *out = GPTQ_F16;
    else if (!strcmp(s, "bfloat16") || !strcmp(s, "torch.bfloat16")) *out = GPTQ_BF16;
    else return -1;
    return 0;
}

/* Bounds on the sizes a config may give, each far above any model in use
 * (noted beside it) and low enough that no product of them overflows an
 * int64 or a size_t: a config that asks for more is refused by key before
 * anything is allocated, instead of failing later with "out of memory". */
static const struct {
    const char *key;
    int64_t max;
} k_limits[] = {
    {"vocab_size", (int64_t)GPTQ_TOK_MAX_ID + 1}, /* 2^24; the largest in use ~2^18 */
    {"hidden_size", (int64_t)1 << 17},            /* largest in use 16384 */
    {"intermediate_size", (int64_t)1 << 20},      /* largest in use 53248 */
    {"ffn_dim", (int64_t)1 << 20},
    {"word_embed_proj_dim", (int64_t)1 << 17},
    {"num_hidden_layers", 1024},                  /* largest in use 126 */
    {"num_attention_heads", 4096},                /* largest in use 128 */
    {"num_key_value_heads", 4096},
    {"head_dim", 4096},                           /* largest in use 256 */
    {"max_position_embeddings", (int64_t)1 << 28}, /* largest in use ~10M */
};

/* Elements of one weight matrix (64 GiB in f32; Llama 3 405B's largest,
 * its embedding, has 2^31), and of all the decoder layers' linears
 * together (Llama 3 405B: 2^38.5). */
#define CFG_MAX_TENSOR ((int64_t)1 << 34)
#define CFG_MAX_LAYERS_TOTAL ((int64_t)1 << 41)

static int64_t limit_of(const char *key)
{
    for (size_t i = 0; i < sizeof k_limits / sizeof *k_limits; i++)
        if (!strcmp(k_limits[i].key, key)) return k_limits[i].max;
    return INT32_MAX;
}

/* A positive integer key (required or with default already in *out),
 * within its bound. */
static int get_pos(const cJSON *root, const char *key, int64_t *out, int required,
                   const char *file)
{
    int st = gptq_json_get_int(root, key, out, required, file);
    if (st < 0) return st;
    const int64_t max = limit_of(key);
    if (*out <= 0 || *out > max)
        return gptq_error(GPTQ_ERR_FORMAT,
                          "%s: \"%s\" = %lld is out of range (it must be 1 .. %lld)", file, key,
                          (long long)*out, (long long)max);
    return GPTQ_OK;
}

/* The sizes the forward and the checkpoint allocate from, checked as
 * products (all factors are bounded above, so none overflows here). */
static int check_products(const gptq_model_config *c, const char *file)
{
    const int64_t D = c->hidden_size, V = c->vocab_size, F = c->intermediate_size;
    const int64_t Hd = c->num_heads * c->head_dim, Kd = c->num_kv_heads * c->head_dim;
    const char *fkey = c->family == GPTQ_FAMILY_OPT ? "ffn_dim" : "intermediate_size";
    char what[96];
    const struct {
        const char *what;
        int64_t n;
    } t[] = {
        {"vocab_size x hidden_size (embed_tokens, lm_head)", V * D},
        {"num_attention_heads x head_dim x hidden_size (q_proj)", Hd * D},
        {"num_key_value_heads x head_dim x hidden_size (k_proj)", Kd * D},
        {what, F * D},
        {"(max_position_embeddings + 2) x hidden_size (OPT embed_positions)",
         c->family == GPTQ_FAMILY_OPT ? (c->max_positions + 2) * D : 0},
    };
    snprintf(what, sizeof what, "%s x hidden_size (the MLP)", fkey);
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        if (t[i].n > CFG_MAX_TENSOR)
            return gptq_error(GPTQ_ERR_FORMAT,
                              "%s: %s = %lld elements in one tensor, above the limit of 2^34",
                              file, t[i].what, (long long)t[i].n);
    const int64_t per_layer = 2 * Hd * D + 2 * Kd * D + 3 * F * D;
    if (per_layer * c->num_layers > CFG_MAX_LAYERS_TOTAL)
        return gptq_error(GPTQ_ERR_FORMAT,
                          "%s: num_hidden_layers %lld x %lld weights per layer = %lld, above the "
                          "limit of 2^41",
                          file, (long long)c->num_layers, (long long)per_layer,
                          (long long)(per_layer * c->num_layers));
    return GPTQ_OK;
}

/* rope_scaling (v4) / rope_parameters (v5): only the default rotary
 * embedding is implemented; anything else is refused by name. */
static int check_rope_type(const cJSON *obj, const char *key, const char *file)
{
    const char *type = NULL;
    CFG_TRY(gptq_json_get_str(obj, "rope_type", &type, 0, file));
    if (!type) CFG_TRY(gptq_json_get_str(obj, "type", &type, 0, file));
    if (type && strcmp(type, "default") != 0)
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: \"%s\" asks for rope type \"%s\": unsupported (only the default "
                          "rotary embedding is implemented)",
                          file, key, type);
    if (!type && !strcmp(key, "rope_scaling"))
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: \"rope_scaling\" is set but names no rope_type: unsupported (only "
                          "null or the default rotary embedding is implemented)",
                          file);
    return GPTQ_OK;
}

static int parse_quant(const cJSON *q, const char *file, gptq_ckpt_quant *out)
{
    gptq_ckpt_quant r = {.present = 1, .bits = 0, .group_size = 128, .desc_act = 0, .sym = 1,
                         .lm_head = 0, .format = GPTQ_FORMAT_V1};
    const char *method = NULL;
    CFG_TRY(gptq_json_get_str(q, "quant_method", &method, 0, file));
    if (!method) CFG_TRY(gptq_json_get_str(q, "method", &method, 0, file));
    if (method && strcmp(method, gptq_format_get(r.format)->quant_method) != 0)
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: quantization_config: quant_method \"%s\" is not supported (only "
                          "\"gptq\")",
                          file, method);
    int64_t v = 0;
    const char *bits_keys[] = {"bits", "wbits", "w_bit"};
    int found = 0;
    for (int i = 0; i < 3 && !found; i++) {
        int st = gptq_json_get_int(q, bits_keys[i], &v, 0, file);
        if (st < 0) return st;
        found = st == GPTQ_OK;
    }
    if (!found)
        return gptq_error(GPTQ_ERR_FORMAT,
                          "%s: quantization_config has no \"bits\" (nor wbits / w_bit)", file);
    if (gptq_format_check_bits(GPTQ_ERR_UNSUPPORTED, "bits =", v))
        return gptq_error_prefix(GPTQ_ERR_UNSUPPORTED, "%s: quantization_config", file);
    r.bits = (int)v;
    v = 128;
    int st = gptq_json_get_int(q, "group_size", &v, 0, file);
    if (st < 0) return st;
    if (st == GPTQ_JSON_ABSENT) CFG_TRY(gptq_json_get_int(q, "q_group_size", &v, 0, file));
    if (v != -1 && (v <= 0 || v > INT32_MAX))
        return gptq_error(GPTQ_ERR_FORMAT,
                          "%s: quantization_config: group_size = %lld (must be -1 or positive)",
                          file, (long long)v);
    r.group_size = (int)v;
    CFG_TRY(gptq_json_get_bool(q, "desc_act", &r.desc_act, 0, file));
    int zp = -1;
    st = gptq_json_get_bool(q, "sym", &r.sym, 0, file);
    if (st < 0) return st;
    if (st == GPTQ_JSON_ABSENT) {
        CFG_TRY(gptq_json_get_bool(q, "zero_point", &zp, 0, file));
        if (zp >= 0) r.sym = !zp;
    }
    CFG_TRY(gptq_json_get_bool(q, "lm_head", &r.lm_head, 0, file));
    const char *fmt = NULL;
    CFG_TRY(gptq_json_get_str(q, "checkpoint_format", &fmt, 0, file));
    if (!fmt) CFG_TRY(gptq_json_get_str(q, "format", &fmt, 0, file));
    if (fmt) {
        const gptq_format_traits *t = gptq_format_by_name(fmt);
        if (!t)
            return gptq_error(GPTQ_ERR_UNSUPPORTED,
                              "%s: quantization_config: checkpoint_format \"%s\" is not supported "
                              "(\"gptq\" or \"gptq_v2\")",
                              file, fmt);
        r.format = t->id;
    }
    *out = r;
    return GPTQ_OK;
}

static const struct {
    const char *arch, *model_type;
    gptq_family family;
} k_archs[] = {
    {"LlamaForCausalLM", "llama", GPTQ_FAMILY_LLAMA},
    {"MistralForCausalLM", "mistral", GPTQ_FAMILY_LLAMA},
    {"Qwen2ForCausalLM", "qwen2", GPTQ_FAMILY_LLAMA},
    {"OPTForCausalLM", "opt", GPTQ_FAMILY_OPT},
};

static int parse_llama(const cJSON *root, const char *file, gptq_model_config *c)
{
    const int qwen2 = !strcmp(c->architecture, "Qwen2ForCausalLM");
    const int mistral = !strcmp(c->architecture, "MistralForCausalLM");
    CFG_TRY(get_pos(root, "intermediate_size", &c->intermediate_size, 1, file));
    c->num_kv_heads = c->num_heads;
    CFG_TRY(get_pos(root, "num_key_value_heads", &c->num_kv_heads, 0, file));
    c->head_dim = 0;
    CFG_TRY(gptq_json_get_int(root, "head_dim", &c->head_dim, 0, file));
    if (c->head_dim != 0) CFG_TRY(get_pos(root, "head_dim", &c->head_dim, 1, file));
    if (c->head_dim == 0) {
        if (c->hidden_size % c->num_heads)
            return gptq_error(GPTQ_ERR_FORMAT,
                              "%s: hidden_size %lld is not a multiple of num_attention_heads %lld "
                              "and no head_dim is given",
                              file, (long long)c->hidden_size, (long long)c->num_heads);
        c->head_dim = c->hidden_size / c->num_heads;
    }
    /* below 2^31 as every other size, so that heads * head_dim fits in 64 bits */
    if (c->head_dim <= 0 || c->head_dim > INT32_MAX || c->head_dim % 2)
        return gptq_error(GPTQ_ERR_FORMAT,
                          "%s: head_dim %lld must be positive, even (RoPE) and below 2^31", file,
                          (long long)c->head_dim);
    if (c->num_heads % c->num_kv_heads)
        return gptq_error(GPTQ_ERR_FORMAT,
                          "%s: num_attention_heads %lld is not a multiple of num_key_value_heads "
                          "%lld",
                          file, (long long)c->num_heads, (long long)c->num_kv_heads);
    c->norm_eps = 1e-6;
    CFG_TRY(gptq_json_get_num(root, "rms_norm_eps", &c->norm_eps, 0, file));
    if (!(c->norm_eps > 0))
        return gptq_error(GPTQ_ERR_FORMAT, "%s: rms_norm_eps must be positive", file);
    const char *act = "silu";
    CFG_TRY(gptq_json_get_str(root, "hidden_act", &act, 0, file));
    if (strcmp(act, "silu") != 0)
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: hidden_act \"%s\" is not supported for %s (only \"silu\")", file,
                          act, c->architecture);

    /* RoPE: theta from either style; scaling only default. */
    c->rope_theta = 10000.0;
    CFG_TRY(gptq_json_get_num(root, "rope_theta", &c->rope_theta, 0, file));
    const cJSON *rp = NULL;
    CFG_TRY(gptq_json_get_object(root, "rope_parameters", &rp, 0, file));
    if (rp) {
        CFG_TRY(gptq_json_get_num(rp, "rope_theta", &c->rope_theta, 0, file));
        CFG_TRY(check_rope_type(rp, "rope_parameters", file));
    }
    const cJSON *rs = NULL;
    CFG_TRY(gptq_json_get_object(root, "rope_scaling", &rs, 0, file));
    if (rs) CFG_TRY(check_rope_type(rs, "rope_scaling", file));
    if (!(c->rope_theta > 0))
        return gptq_error(GPTQ_ERR_FORMAT, "%s: rope_theta must be positive", file);
    const cJSON *prf = cJSON_GetObjectItemCaseSensitive(root, "partial_rotary_factor");
    if (prf && !cJSON_IsNull(prf) && !(cJSON_IsNumber(prf) && prf->valuedouble == 1.0))
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: partial_rotary_factor other than 1 is not supported", file);

    /* Biases: Llama/Mistral attention_bias covers q, k, v and o; Qwen2 always
     * has q/k/v biases and none on o_proj. */
    int ab = 0, mb = 0;
    CFG_TRY(gptq_json_get_bool(root, "attention_bias", &ab, 0, file));
    CFG_TRY(gptq_json_get_bool(root, "mlp_bias", &mb, 0, file));
    c->qkv_bias = qwen2 ? 1 : ab;
    c->o_bias = qwen2 ? 0 : ab;
    c->mlp_bias = mb;
    c->norm_bias = 0;
    c->final_norm = 1;
    c->tie_word_embeddings = 0;
    CFG_TRY(gptq_json_get_bool(root, "tie_word_embeddings", &c->tie_word_embeddings, 0, file));

    /* Sliding windows: remembered; the forward refuses sequences longer. */
    c->sliding_window = 0;
    int use_sw = mistral;
    if (qwen2) {
        use_sw = 0;
        CFG_TRY(gptq_json_get_bool(root, "use_sliding_window", &use_sw, 0, file));
    }
    if (use_sw) CFG_TRY(gptq_json_get_int(root, "sliding_window", &c->sliding_window, 0, file));
    if (c->sliding_window < 0) c->sliding_window = 0;
    c->max_positions = 2048;
    CFG_TRY(get_pos(root, "max_position_embeddings", &c->max_positions, 0, file));
    return GPTQ_OK;
}

static int parse_opt(const cJSON *root, const char *file, gptq_model_config *c)
{
    int before = 1;
    CFG_TRY(gptq_json_get_bool(root, "do_layer_norm_before", &before, 0, file));
    if (!before)
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: OPT with do_layer_norm_before = false (post-LayerNorm, as "
                          "opt-350m) is not supported",
                          file);
    CFG_TRY(get_pos(root, "ffn_dim", &c->intermediate_size, 1, file));
    int64_t proj = c->hidden_size;
    CFG_TRY(get_pos(root, "word_embed_proj_dim", &proj, 0, file));
    if (proj != c->hidden_size)
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: OPT with word_embed_proj_dim %lld != hidden_size %lld (project_in/"
                          "project_out layers) is not supported",
                          file, (long long)proj, (long long)c->hidden_size);
    const char *act = "relu";
    CFG_TRY(gptq_json_get_str(root, "activation_function", &act, 0, file));
    if (strcmp(act, "relu") != 0)
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: activation_function \"%s\" is not supported for OPT (only \"relu\")",
                          file, act);
    if (c->hidden_size % c->num_heads)
        return gptq_error(GPTQ_ERR_FORMAT,
                          "%s: hidden_size %lld is not a multiple of num_attention_heads %lld",
                          file, (long long)c->hidden_size, (long long)c->num_heads);
    c->num_kv_heads = c->num_heads;
    c->head_dim = c->hidden_size / c->num_heads;
    c->norm_eps = 1e-5; /* torch.nn.LayerNorm's default, which OPT uses */
    c->rope_theta = 0;
    int bias = 1, affine = 1, remove_final = 0;
    CFG_TRY(gptq_json_get_bool(root, "enable_bias", &bias, 0, file));
    CFG_TRY(gptq_json_get_bool(root, "layer_norm_elementwise_affine", &affine, 0, file));
    CFG_TRY(gptq_json_get_bool(root, "_remove_final_layer_norm", &remove_final, 0, file));
    c->qkv_bias = c->o_bias = c->mlp_bias = bias;
    c->norm_bias = affine;
    c->final_norm = !remove_final;
    c->tie_word_embeddings = 1;
    CFG_TRY(gptq_json_get_bool(root, "tie_word_embeddings", &c->tie_word_embeddings, 0, file));
    c->max_positions = 2048;
    CFG_TRY(get_pos(root, "max_position_embeddings", &c->max_positions, 0, file));
    c->pos_offset = 2;
    c->sliding_window = 0;
    return GPTQ_OK;
}

int gptq_model_config_parse(const cJSON *root, const char *file, gptq_model_config *c)
{
    memset(c, 0, sizeof *c);
    if (!file) file = "config.json";
    if (!cJSON_IsObject(root))
        return gptq_error(GPTQ_ERR_FORMAT, "%s: the top level is not a JSON object", file);

    /* architecture: architectures[0], else model_type */
    const char *arch = NULL;
    const cJSON *archs = NULL;
    CFG_TRY(gptq_json_get_array(root, "architectures", &archs, 0, file));
    if (archs) {
        const cJSON *a0 = cJSON_GetArrayItem(archs, 0);
        if (!a0 || !cJSON_IsString(a0))
            return gptq_error(GPTQ_ERR_FORMAT,
                              "%s: \"architectures\" must be a non-empty array of strings", file);
        arch = a0->valuestring;
    }
    const char *mtype = NULL;
    CFG_TRY(gptq_json_get_str(root, "model_type", &mtype, 0, file));
    int k = -1;
    for (int i = 0; i < (int)(sizeof k_archs / sizeof *k_archs); i++)
        if ((arch && !strcmp(arch, k_archs[i].arch)) ||
            (!arch && mtype && !strcmp(mtype, k_archs[i].model_type)))
            k = i;
    if (k < 0) {
        if (!arch && !mtype)
            return gptq_error(GPTQ_ERR_FORMAT,
                              "%s: neither \"architectures\" nor \"model_type\" is given", file);
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: architecture \"%s\" is not supported (supported: %s)", file,
                          arch ? arch : mtype, GPTQ_SUPPORTED_ARCHS);
    }
    snprintf(c->architecture, sizeof c->architecture, "%s", k_archs[k].arch);
    c->family = k_archs[k].family;

    CFG_TRY(get_pos(root, "vocab_size", &c->vocab_size, 1, file));
    CFG_TRY(get_pos(root, "hidden_size", &c->hidden_size, 1, file));
    CFG_TRY(get_pos(root, "num_hidden_layers", &c->num_layers, 1, file));
    CFG_TRY(get_pos(root, "num_attention_heads", &c->num_heads, 1, file));

    int st = c->family == GPTQ_FAMILY_OPT ? parse_opt(root, file, c) : parse_llama(root, file, c);
    if (st) return st;
    CFG_TRY(check_products(c, file));

    /* dtype (informational: weights are converted to f32 whatever it says) */
    c->dtype = GPTQ_F32;
    const char *dt = NULL;
    CFG_TRY(gptq_json_get_str(root, "dtype", &dt, 0, file));
    if (!dt) CFG_TRY(gptq_json_get_str(root, "torch_dtype", &dt, 0, file));
    if (dt && parse_dtype(dt, &c->dtype))
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: dtype \"%s\" is not supported (float32, float16, bfloat16)", file,
                          dt);

    const cJSON *q = NULL;
    CFG_TRY(gptq_json_get_object(root, "quantization_config", &q, 0, file));
    if (q) CFG_TRY(parse_quant(q, file, &c->quant));
    return GPTQ_OK;
}

/* quantize_config.json of dir into *q, when there is one (q->present
 * stays 0 when not). Whatever is at the name (a FIFO, a symlink loop) is
 * read or refused, never waited on or taken for absent. */
static int load_quantize_config(const char *dir, gptq_ckpt_quant *q)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/quantize_config.json", dir);
    if (!gptq_input_present(path)) return GPTQ_OK;
    cJSON *root = NULL;
    int st = gptq_json_read_file(path, &root);
    if (st) return st;
    if (!cJSON_IsObject(root))
        st = gptq_error(GPTQ_ERR_FORMAT, "%s: the top level is not a JSON object", path);
    else
        st = parse_quant(root, path, q);
    cJSON_Delete(root);
    return st;
}

int gptq_model_config_load(const char *dir, gptq_model_config *c)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *root = NULL;
    int st = gptq_json_read_file(path, &root);
    if (st) return st;
    st = gptq_model_config_parse(root, path, c);
    cJSON_Delete(root);
    if (st || c->quant.present) return st;
    /* Older GPTQ checkpoints keep their settings only in quantize_config.json. */
    return load_quantize_config(dir, &c->quant);
}

int gptq_ckpt_quant_load(const char *dir, gptq_ckpt_quant *q)
{
    memset(q, 0, sizeof *q);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (gptq_input_present(path)) {
        cJSON *root = NULL;
        int st = gptq_json_read_file(path, &root);
        if (st) return st;
        const cJSON *qc = NULL;
        st = cJSON_IsObject(root)
                 ? gptq_json_get_object(root, "quantization_config", &qc, 0, path)
                 : gptq_error(GPTQ_ERR_FORMAT, "%s: the top level is not a JSON object", path);
        if (st >= 0 && qc) st = parse_quant(qc, path, q);
        cJSON_Delete(root);
        if (st < 0 || q->present) return st;
    }
    return load_quantize_config(dir, q);
}
