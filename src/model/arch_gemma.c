/*
 * arch_gemma.c — Gemma2ForCausalLM (gptq_arch_gemma2) and Gemma3ForCausalLM,
 * the text-only Gemma 3 (gptq_arch_gemma3), as transformers computes them:
 *   x = embed_tokens[ids] * normalizer, normalizer = sqrt(hidden_size) as a
 *       tensor of the model's dtype (forward.c: rounded to the embedding
 *       table's dtype; config embed_scale)
 *   per layer: n1 = norm(x, input_layernorm)
 *              q, k, v = q_proj(n1), k_proj(n1), v_proj(n1)
 *                (Gemma 3: q = norm(q, self_attn.q_norm) per head, same for k)
 *              a = attn(rope(q), rope(k), v) with scale query_pre_attn_scalar^-0.5,
 *                  the layer's sliding window (layer_types), and Gemma 2's
 *                  attn_logit_softcapping
 *              h = x + norm(o_proj(a), post_attention_layernorm)
 *              n2 = norm(h, pre_feedforward_layernorm)
 *              x' = h + norm(down_proj(gelu_tanh(gate_proj(n2)) * up_proj(n2)),
 *                            post_feedforward_layernorm)
 *   logits = softcap(lm_head(norm(x, model.norm)))   (lm_head = embed_tokens when
 *            tied; softcap = c tanh(./c) with Gemma 2's final_logit_softcapping)
 * norm = Gemma's RMSNorm: x * r * (1 + w), 1 + w summed in f32 (gptq_arch
 * .norm_offset: forward.c adds it when the weight is loaded) and the
 * product done by the rmsnorm op.
 * RoPE: Gemma 2 one table (rope_theta / rope_parameters); Gemma 3 two: the
 * sliding layers use rope_local_base_freq (transformers 4) or
 * rope_parameters.sliding_attention (5), the full ones rope_theta with
 * rope_scaling (4) or rope_parameters.full_attention (5).
 * Linears and true-sequential groups as Llama's: 0 q, 1 k, 2 v (qkv), 3 o
 * (o), 4 gate, 5 up (gate_up), 6 down (down).
 * Gemma3ForConditionalGeneration (gptq_arch_gemma3mm): its text model, the
 * keys in text_config, the tensors under model.language_model. (or
 * language_model.model.), run on text alone.
 * Refused by key and value: another hidden_activation, a layer type other
 * than full/sliding attention, use_bidirectional_attention, a softcap or
 * query_pre_attn_scalar that is not positive.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/io.h"
#include "arch.h"

/* ------------------------------------------------------------------ */
/* config                                                              */
/* ------------------------------------------------------------------ */

static const gptq_arch_name k_gemma2_names[] = {{"Gemma2ForCausalLM", "gemma2"}};
static const gptq_arch_name k_gemma3_names[] = {{"Gemma3ForCausalLM", "gemma3_text"}};
static const gptq_arch_name k_gemma3mm_names[] = {{"Gemma3ForConditionalGeneration", "gemma3"}};

/* The config classes' defaults: Gemma2Config, Gemma3TextConfig. */
#define F_(x) offsetof(gptq_model_config, x)
static const gptq_arch_key k_gemma2_keys[] = {
    {"intermediate_size", NULL, GPTQ_KEY_SIZE, F_(intermediate_size), 0, 9216},
    {"rms_norm_eps", NULL, GPTQ_KEY_NUM, F_(norm_eps), 0, 1e-6},
    {"rope_theta", "rope_parameters.rope_theta", GPTQ_KEY_NUM, F_(rope_theta), 0, 10000.0},
    {"tie_word_embeddings", NULL, GPTQ_KEY_BOOL, F_(tie_word_embeddings), 0, 1},
    {"max_position_embeddings", NULL, GPTQ_KEY_SIZE, F_(max_positions), 0, 8192},
};
/* rope_theta (the full layers') and rope_local_base_freq: parse reads
 * them, in either spelling */
static const gptq_arch_key k_gemma3_keys[] = {
    /* Gemma3TextConfig has defaults for these too (Gemma 3 4B's text_config
     * leaves vocab_size and num_attention_heads out) */
    {"vocab_size", NULL, GPTQ_KEY_SIZE, F_(vocab_size), 0, 262208},
    {"hidden_size", NULL, GPTQ_KEY_SIZE, F_(hidden_size), 0, 2304},
    {"num_hidden_layers", NULL, GPTQ_KEY_SIZE, F_(num_layers), 0, 26},
    {"num_attention_heads", NULL, GPTQ_KEY_SIZE, F_(num_heads), 0, 8},
    {"intermediate_size", NULL, GPTQ_KEY_SIZE, F_(intermediate_size), 0, 9216},
    {"rms_norm_eps", NULL, GPTQ_KEY_NUM, F_(norm_eps), 0, 1e-6},
    {"tie_word_embeddings", NULL, GPTQ_KEY_BOOL, F_(tie_word_embeddings), 0, 1},
    {"max_position_embeddings", NULL, GPTQ_KEY_SIZE, F_(max_positions), 0, 131072},
};

static const char *const k_types[] = {"full_attention", "sliding_attention"};

/* A soft-capping key: null or absent gives def (0: none), else a positive
 * number. */
static int get_softcap(const cJSON *root, const char *key, double def, const char *file,
                       double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    *out = def;
    if (v && cJSON_IsNull(v)) *out = 0.0;
    if (!v || cJSON_IsNull(v)) return GPTQ_OK;
    GPTQ_TRY(gptq_json_get_num(root, key, out, 1, file));
    if (!(*out > 0) || !isfinite(*out))
        return gptq_error(GPTQ_ERR_FORMAT, "%s: \"%s\" = %g must be positive (or null: none)",
                          file, key, *out);
    return GPTQ_OK;
}

/* Layer types: layer_types when written (one "full_attention" or
 * "sliding_attention" per layer), else transformers' default: layer i
 * slides unless (i + 1) % pattern == 0 (Gemma 2: pattern 2; Gemma 3:
 * sliding_window_pattern, 6 when absent). c->layer_window[L] gets the
 * window of a sliding layer, 0 for a full one. */
static int layer_types(const cJSON *root, const char *file, int64_t pattern,
                       gptq_model_config *c)
{
    const cJSON *types = NULL;
    GPTQ_TRY(gptq_json_get_array(root, "layer_types", &types, 0, file));
    if (types && cJSON_GetArraySize(types) != c->num_layers)
        return gptq_error(GPTQ_ERR_FORMAT,
                          "%s: \"layer_types\" has %d entries, num_hidden_layers is %lld", file,
                          cJSON_GetArraySize(types), (long long)c->num_layers);
    for (int64_t L = 0; L < c->num_layers; L++) {
        int sliding = (L + 1) % pattern != 0;
        if (types) {
            const cJSON *t = cJSON_GetArrayItem(types, (int)L);
            if (!cJSON_IsString(t))
                return gptq_error(GPTQ_ERR_FORMAT, "%s: \"layer_types\"[%lld] must be a string",
                                  file, (long long)L);
            sliding = !strcmp(t->valuestring, k_types[1]);
            if (!sliding && strcmp(t->valuestring, k_types[0]) != 0)
                return gptq_error(GPTQ_ERR_UNSUPPORTED,
                                  "%s: \"layer_types\"[%lld] = \"%s\" is not supported for %s "
                                  "(only \"full_attention\" and \"sliding_attention\")",
                                  file, (long long)L, t->valuestring, c->architecture);
        }
        if (sliding && c->sliding_window == 0)
            return gptq_error(GPTQ_ERR_FORMAT,
                              "%s: layer %lld is a sliding_attention layer but \"sliding_window\" "
                              "is null",
                              file, (long long)L);
        c->layer_window[L] = sliding ? c->sliding_window : 0;
    }
    return GPTQ_OK;
}

/* Gemma 3's two RoPEs: c->rope / rope_theta for the full layers,
 * c->rope_local / rope_local_theta for the sliding ones.
 *   transformers 5: rope_parameters {"sliding_attention": {...},
 *     "full_attention": {...}} (either missing: default type, its theta
 *     from the keys below);
 *   transformers 4: rope_theta (1e6) with rope_scaling for the full layers,
 *     rope_local_base_freq (1e4) unscaled for the sliding ones. */
static int gemma3_rope(const cJSON *root, const char *file, gptq_model_config *c)
{
    const cJSON *rs = NULL, *rp = NULL;
    GPTQ_TRY(gptq_json_get_object(root, "rope_scaling", &rs, 0, file));
    GPTQ_TRY(gptq_json_get_object(root, "rope_parameters", &rp, 0, file));
    if (rs && rp)
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: both \"rope_scaling\" and \"rope_parameters\" are set: unsupported "
                          "(keep one)",
                          file);
    const cJSON *obj[2] = {rs, NULL}; /* full, sliding */
    for (const cJSON *k = rp ? rp->child : NULL; k; k = k->next) {
        const int i = !strcmp(k->string, k_types[0]) ? 0 : !strcmp(k->string, k_types[1]) ? 1 : -1;
        if (i < 0 || !cJSON_IsObject(k))
            return gptq_error(GPTQ_ERR_UNSUPPORTED,
                              "%s: rope_parameters.%s is not supported for %s (rope_parameters "
                              "holds one object per layer type: \"full_attention\", "
                              "\"sliding_attention\")",
                              file, k->string, c->architecture);
        obj[i] = k;
    }
    double theta[2] = {1000000.0, 10000.0};
    GPTQ_TRY(gptq_json_get_num(root, "rope_theta", &theta[0], 0, file));
    GPTQ_TRY(gptq_json_get_num(root, "rope_local_base_freq", &theta[1], 0, file));
    static const char *const names[2] = {"rope_parameters.full_attention",
                                         "rope_parameters.sliding_attention"};
    for (int i = 1; i >= 0; i--) { /* sliding first: the full one stays in c->rope */
        c->rope_theta = theta[i];
        GPTQ_TRY(gptq_rope_parse_object(root, obj[i], rp ? names[i] : "rope_scaling", rp != NULL,
                                        file, c));
        if (!(c->rope_theta > 0))
            return gptq_error(GPTQ_ERR_FORMAT, "%s: the %s layers' rope_theta must be positive",
                              file, i ? "sliding" : "full");
        if (i) {
            c->rope_local = c->rope;
            c->rope_local_theta = c->rope_theta;
        }
    }
    return GPTQ_OK;
}

/* Gemma 3: the text model, or the multimodal wrapper's text model */
static int is_gemma3(const gptq_model_config *c)
{
    return c->arch == &gptq_arch_gemma3 || c->arch == &gptq_arch_gemma3mm;
}

/* root is config.json's top level, or its text_config (Gemma 3's
 * multimodal wrapper: config.c reads the sub-object) */
static int parse(const cJSON *root, const char *file, gptq_model_config *c)
{
    const int g3 = is_gemma3(c);

    /* heads: num_key_value_heads 4 and head_dim 256 when left out, as the
     * config classes */
    c->num_kv_heads = 4;
    GPTQ_TRY(gptq_config_get_size(root, "num_key_value_heads", &c->num_kv_heads, 0, file));
    c->head_dim = 256;
    GPTQ_TRY(gptq_config_get_size(root, "head_dim", &c->head_dim, 0, file));
    if (c->head_dim % 2)
        return gptq_error(GPTQ_ERR_FORMAT, "%s: head_dim %lld must be even (RoPE)", file,
                          (long long)c->head_dim);
    if (c->num_heads % c->num_kv_heads)
        return gptq_error(GPTQ_ERR_FORMAT,
                          "%s: num_attention_heads %lld is not a multiple of num_key_value_heads "
                          "%lld",
                          file, (long long)c->num_heads, (long long)c->num_kv_heads);
    if (!(c->norm_eps > 0))
        return gptq_error(GPTQ_ERR_FORMAT, "%s: rms_norm_eps must be positive", file);

    const char *act = "gelu_pytorch_tanh";
    GPTQ_TRY(gptq_json_get_str(root, "hidden_activation", &act, 0, file));
    if (strcmp(act, "gelu_pytorch_tanh") != 0)
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: hidden_activation \"%s\" is not supported for %s (only "
                          "\"gelu_pytorch_tanh\")",
                          file, act, c->architecture);
    int bidir = 0;
    GPTQ_TRY(gptq_json_get_bool(root, "use_bidirectional_attention", &bidir, 0, file));
    if (bidir)
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: \"use_bidirectional_attention\" = true is not supported (a causal "
                          "language model attends to earlier tokens only)",
                          file);

    /* attention: scale, soft-capping */
    double qpas = 256;
    GPTQ_TRY(gptq_json_get_num(root, "query_pre_attn_scalar", &qpas, 0, file));
    if (!(qpas > 0) || !isfinite(qpas))
        return gptq_error(GPTQ_ERR_FORMAT, "%s: \"query_pre_attn_scalar\" = %g must be positive",
                          file, qpas);
    c->attn_scale = pow(qpas, -0.5);
    GPTQ_TRY(get_softcap(root, "attn_logit_softcapping", g3 ? 0.0 : 50.0, file,
                         &c->attn_softcap));
    GPTQ_TRY(get_softcap(root, "final_logit_softcapping", g3 ? 0.0 : 30.0, file,
                         &c->final_softcap));
    c->embed_scale = sqrt((double)c->hidden_size);

    /* RoPE */
    if (g3) {
        GPTQ_TRY(gemma3_rope(root, file, c));
    } else {
        GPTQ_TRY(gptq_rope_parse(root, file, c, NULL));
        if (!(c->rope_theta > 0))
            return gptq_error(GPTQ_ERR_FORMAT, "%s: rope_theta must be positive", file);
    }

    /* sliding windows: sliding_window 4096 when left out (null: none) */
    c->sliding_window = 4096;
    GPTQ_TRY(gptq_json_get_int(root, "sliding_window", &c->sliding_window, 0, file));
    const cJSON *sw = cJSON_GetObjectItemCaseSensitive(root, "sliding_window");
    if (sw && cJSON_IsNull(sw)) c->sliding_window = 0;
    if (sw && !cJSON_IsNull(sw) && c->sliding_window <= 0)
        return gptq_error(GPTQ_ERR_FORMAT, "%s: \"sliding_window\" = %lld must be positive", file,
                          (long long)c->sliding_window);
    int64_t pattern = 2;
    if (g3) {
        pattern = 6;
        GPTQ_TRY(gptq_json_get_int(root, "sliding_window_pattern", &pattern, 0, file));
        if (pattern <= 0)
            return gptq_error(GPTQ_ERR_FORMAT,
                              "%s: \"sliding_window_pattern\" = %lld must be positive", file,
                              (long long)pattern);
    }
    GPTQ_TRY(layer_types(root, file, pattern, c));

    int ab = 0;
    GPTQ_TRY(gptq_json_get_bool(root, "attention_bias", &ab, 0, file));
    c->qkv_bias = c->o_bias = ab;
    c->mlp_bias = 0;
    c->norm_weight = 1;
    c->norm_bias = 0;
    c->final_norm = 1;
    return GPTQ_OK;
}

/* ------------------------------------------------------------------ */
/* a decoder layer                                                     */
/* ------------------------------------------------------------------ */

enum { LQ, LK, LV, LO, LGATE, LUP, LDOWN, NLIN };

static int linears(const gptq_model_config *c, int L, gptq_linear_info *out)
{
    const int64_t D = c->hidden_size, F = c->intermediate_size;
    const int64_t Hd = c->num_heads * c->head_dim, Kd = c->num_kv_heads * c->head_dim;
    const gptq_linear_info lin[NLIN] = {
        [LQ] = {"self_attn.q_proj", Hd, D, c->qkv_bias},
        [LK] = {"self_attn.k_proj", Kd, D, c->qkv_bias},
        [LV] = {"self_attn.v_proj", Kd, D, c->qkv_bias},
        [LO] = {"self_attn.o_proj", D, Hd, c->o_bias},
        [LGATE] = {"mlp.gate_proj", F, D, 0},
        [LUP] = {"mlp.up_proj", F, D, 0},
        [LDOWN] = {"mlp.down_proj", D, F, 0},
    };
    if (out) memcpy(out, lin, sizeof lin);
    return NLIN;
}

static const int k_qkv[] = {LQ, LK, LV}, k_o[] = {LO}, k_gate_up[] = {LGATE, LUP},
                 k_down[] = {LDOWN};
static const gptq_group_info k_groups[] = {
    {"qkv", k_qkv, 3}, {"o", k_o, 1}, {"gate_up", k_gate_up, 2}, {"down", k_down, 1}};

static int groups(const gptq_model_config *c, int L, gptq_group_info *out)
{
    if (out) memcpy(out, k_groups, sizeof k_groups);
    return (int)(sizeof k_groups / sizeof *k_groups);
}

enum { WXN, WQ, WK, WV, WATT, WTMP, WG, WU, WPOS, WROPE, WROPE_LOCAL, NWORK };
static const char *const k_work[NWORK] = {
    "normed activations", "queries", "keys", "values", "attention output", "layer output",
    "MLP activations", "MLP up projection", "positions", "rope table", "local rope table"};

static void work_counts(const gptq_model_config *c, int64_t T, int64_t S, int64_t *n)
{
    const int64_t D = c->hidden_size, F = c->intermediate_size;
    const int64_t Hd = c->num_heads * c->head_dim, Kd = c->num_kv_heads * c->head_dim;
    const int64_t local = is_gemma3(c) ? S * c->head_dim : 0;
    const int64_t k[NWORK] = {T * D, T * Hd, T * Kd, T * Kd, T * Hd, T * D, T * F, T * F,
                              T, S * c->head_dim, local};
    memcpy(n, k, sizeof k);
}

/* The positions and the full layers' table; Gemma 3 also the sliding
 * layers' one. */
static int prepare(const gptq_layer_ctx *x)
{
    GPTQ_TRY(gptq_rope_upload(x, x->work[WPOS], x->work[WROPE]));
    if (!is_gemma3(x->c)) return GPTQ_OK;
    const int64_t S = x->npos, d = x->c->head_dim; /* the table covers pos0 + S positions */
    float *tab = gptq_malloc((size_t)(S * d) * sizeof(float), "local rope table");
    if (!tab) return GPTQ_ERR_NOMEM;
    gptq_rope_table_of(&x->c->rope_local, x->c->rope_local_theta, x->c->max_positions, S, tab);
    int st = gptq_be_upload(x->be, x->work[WROPE_LOCAL], 0, tab, (size_t)(S * d) * sizeof(float));
    free(tab);
    return st;
}

/* The per-layer norms: four around attention and MLP, Gemma 3's q/k norms. */
enum { NIN, NPOST_ATTN, NPRE_FF, NPOST_FF, NQ, NK };

static int forward(const gptq_layer_ctx *x, const gptq_buf *X_in, gptq_buf *X_out)
{
    const gptq_model_config *c = x->c;
    gptq_buf *const *w = x->work;
    const int64_t window = c->layer_window[x->layer];

    const gptq_attn_block attn = {
        .in_w = x->nw[NIN],
        .lq = LQ, .lk = LK, .lv = LV, .lo = LO,
        .q_norm = gptq_layer_norm_w(x, NQ), /* Gemma 3 */
        .k_norm = gptq_layer_norm_w(x, NK),
        /* Gemma 3's sliding layers rotate with their own table */
        .pos = w[WPOS], .rope = is_gemma3(c) && window > 0 ? w[WROPE_LOCAL] : w[WROPE],
        .rot = c->head_dim,
        .scale = (float)c->attn_scale, .window = window, .softcap = (float)c->attn_softcap,
        .post_norm = x->nw[NPOST_ATTN],
        .xn = w[WXN], .Q = w[WQ], .K = w[WK], .V = w[WV], .O = w[WATT], .Y = w[WTMP],
    };
    GPTQ_LAYER_PART(gptq_layer_attention_block(x, &attn, X_in, X_out));

    const gptq_mlp_block mlp = {
        .in_w = x->nw[NPRE_FF],
        .lgate = LGATE, .lup = LUP, .ldown = LDOWN, .act = GPTQ_MLP_GELU_TANH,
        .post_norm = x->nw[NPOST_FF],
        .xn = w[WXN], .G = w[WG], .U = w[WU], .Y = w[WTMP],
    };
    GPTQ_LAYER_PART(gptq_layer_mlp_block(x, &mlp, X_out, X_out));
    return GPTQ_OK;
}

static const char *const k_roots[] = {"model.", NULL};
/* the multimodal wrapper's text model: transformers 5 names it
 * model.language_model.*, 4 language_model.model.* (the vision tower's
 * tensors are copied into a checkpoint as they are) */
static const char *const k_mm_roots[] = {"model.language_model.", "language_model.model.", NULL};
static const gptq_arch_norm k_norms[] = {
    [NIN] = {"input_layernorm", 0},
    [NPOST_ATTN] = {"post_attention_layernorm", 0},
    [NPRE_FF] = {"pre_feedforward_layernorm", 0},
    [NPOST_FF] = {"post_feedforward_layernorm", 0},
    [NQ] = {"self_attn.q_norm", 1},
    [NK] = {"self_attn.k_norm", 1},
};

const gptq_arch gptq_arch_gemma2 = {
    .name = "Gemma 2",
    .names = k_gemma2_names,
    .nnames = (int)(sizeof k_gemma2_names / sizeof *k_gemma2_names),
    .keys = k_gemma2_keys,
    .nkeys = (int)(sizeof k_gemma2_keys / sizeof *k_gemma2_keys),
    .parse = parse,
    .roots = k_roots,
    .embed = "embed_tokens.weight",
    .positions = NULL,
    .layers = "layers",
    .norms = k_norms,
    .nnorms = NPOST_FF + 1,
    .final_norm = "norm",
    .norm_offset = 1.0f,
    .lm_head = "lm_head",
    .linears = linears,
    .groups = groups,
    .work = k_work,
    .nwork = NWORK,
    .work_counts = work_counts,
    .prepare = prepare,
    .norm = gptq_llama_rmsnorm,
    .forward = forward,
};

/* Gemma 3 (text): Gemma 2's description with q_norm and k_norm, a RoPE
 * per layer type, and other defaults (parse and the forward see it by
 * c->arch). */
const gptq_arch gptq_arch_gemma3 = {
    .name = "Gemma 3",
    .names = k_gemma3_names,
    .nnames = (int)(sizeof k_gemma3_names / sizeof *k_gemma3_names),
    .keys = k_gemma3_keys,
    .nkeys = (int)(sizeof k_gemma3_keys / sizeof *k_gemma3_keys),
    .parse = parse,
    .roots = k_roots,
    .embed = "embed_tokens.weight",
    .positions = NULL,
    .layers = "layers",
    .norms = k_norms,
    .nnorms = NK + 1,
    .final_norm = "norm",
    .norm_offset = 1.0f,
    .lm_head = "lm_head",
    .linears = linears,
    .groups = groups,
    .work = k_work,
    .nwork = NWORK,
    .work_counts = work_counts,
    .prepare = prepare,
    .norm = gptq_llama_rmsnorm,
    .forward = forward,
};

/* Gemma3ForConditionalGeneration's text model: Gemma 3's description, its
 * keys in text_config, its tensors under the language model's root; a
 * text-only forward (no image tokens) is the text model's, as transformers
 * computes it without pixel values. An untied lm_head is looked for as
 * "lm_head" (transformers 5's name). */
const gptq_arch gptq_arch_gemma3mm = {
    .name = "Gemma 3 (multimodal, text model)",
    .names = k_gemma3mm_names,
    .nnames = (int)(sizeof k_gemma3mm_names / sizeof *k_gemma3mm_names),
    .sub_config = "text_config",
    .keys = k_gemma3_keys,
    .nkeys = (int)(sizeof k_gemma3_keys / sizeof *k_gemma3_keys),
    .parse = parse,
    .roots = k_mm_roots,
    .embed = "embed_tokens.weight",
    .positions = NULL,
    .layers = "layers",
    .norms = k_norms,
    .nnorms = NK + 1,
    .final_norm = "norm",
    .norm_offset = 1.0f,
    .lm_head = "lm_head",
    .linears = linears,
    .groups = groups,
    .work = k_work,
    .nwork = NWORK,
    .work_counts = work_counts,
    .prepare = prepare,
    .norm = gptq_llama_rmsnorm,
    .forward = forward,
};
