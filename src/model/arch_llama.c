/*
 * arch_llama.c — LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM
 * (gptq_arch_llama) and Qwen3ForCausalLM (gptq_arch_qwen3):
 *   x = embed_tokens[ids]
 *   per layer: h = x + o_proj(attn(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1)))
 *                    with n1 = rmsnorm(x, input_layernorm)
 *              (Qwen3: rope(qk(q_proj(n1), self_attn.q_norm)) and the same for k,
 *               qk = RMSNorm of each head's head_dim vector with a (head_dim) weight)
 *              x' = h + down_proj(silu(gate_proj(n2)) * up_proj(n2))
 *                    with n2 = rmsnorm(h, post_attention_layernorm)
 *   logits = lm_head(rmsnorm(x, model.norm))   (lm_head = embed_tokens when tied)
 * Linears and true-sequential groups (the GPTQ paper's llama.py order):
 *   0 self_attn.q_proj, 1 k_proj, 2 v_proj (group qkv, input n1),
 *   3 self_attn.o_proj (group o, input attn), 4 mlp.gate_proj, 5 mlp.up_proj
 *   (group gate_up, input n2), 6 mlp.down_proj (group down, silu(gate) * up).
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

static const gptq_arch_name k_names[] = {
    {"LlamaForCausalLM", "llama"},
    {"MistralForCausalLM", "mistral"},
    {"Qwen2ForCausalLM", "qwen2"},
};
static const gptq_arch_name k_qwen3_names[] = {{"Qwen3ForCausalLM", "qwen3"}};

#define F_(x) offsetof(gptq_model_config, x)
static const gptq_arch_key k_keys[] = {
    {"intermediate_size", NULL, GPTQ_KEY_SIZE, F_(intermediate_size), 1, 0},
    {"rms_norm_eps", NULL, GPTQ_KEY_NUM, F_(norm_eps), 0, 1e-6},
    {"rope_theta", "rope_parameters.rope_theta", GPTQ_KEY_NUM, F_(rope_theta), 0, 10000.0},
    {"tie_word_embeddings", NULL, GPTQ_KEY_BOOL, F_(tie_word_embeddings), 0, 0},
    {"max_position_embeddings", NULL, GPTQ_KEY_SIZE, F_(max_positions), 0, 2048},
};

/* The key is not written at all: Qwen3Config's defaults are for a key left
 * out; one written null is read as for Llama (num_key_value_heads and
 * sliding_window null are what Qwen3Config makes of them too). */
static int key_left_out(const cJSON *root, const char *key)
{
    return !cJSON_GetObjectItemCaseSensitive(root, key);
}

/* Sliding-window attention, as transformers' configs decide it:
 *   Mistral: sliding_window (4096 when left out, null: none) on every layer.
 *   Qwen2/Qwen3: only with use_sliding_window; sliding_window (4096 when
 *   left out) on the layers L >= max_window_layers (28 when left out), as
 *   Qwen2Config/Qwen3Config build layer_types.
 *   layer_types (transformers 5), when written: one "full_attention" or
 *   "sliding_attention" per layer, over the rule above.
 * c->layer_window[L] is the window of layer L (0: full causal). */
static int sliding_windows(const cJSON *root, const char *file, int mistral, int qwen,
                           gptq_model_config *c)
{
    c->sliding_window = 0;
    int use_sw = mistral;
    if (qwen) GPTQ_TRY(gptq_json_get_bool(root, "use_sliding_window", &use_sw, 0, file));
    const cJSON *sw = cJSON_GetObjectItemCaseSensitive(root, "sliding_window");
    if (use_sw && !sw) c->sliding_window = 4096;
    if (use_sw) GPTQ_TRY(gptq_json_get_int(root, "sliding_window", &c->sliding_window, 0, file));
    if (use_sw && sw && !cJSON_IsNull(sw) && c->sliding_window <= 0)
        return gptq_error(GPTQ_ERR_FORMAT, "%s: \"sliding_window\" = %lld must be positive",
                          file, (long long)c->sliding_window);
    int64_t first = 0; /* the first layer that slides */
    if (qwen) {
        first = 28;
        GPTQ_TRY(gptq_json_get_int(root, "max_window_layers", &first, 0, file));
        if (first < 0)
            return gptq_error(GPTQ_ERR_FORMAT,
                              "%s: \"max_window_layers\" = %lld must not be negative", file,
                              (long long)first);
    }
    for (int64_t L = 0; L < c->num_layers; L++)
        c->layer_window[L] = L >= first ? c->sliding_window : 0;

    const cJSON *types = NULL;
    GPTQ_TRY(gptq_json_get_array(root, "layer_types", &types, 0, file));
    if (!types) return GPTQ_OK;
    if (cJSON_GetArraySize(types) != c->num_layers)
        return gptq_error(GPTQ_ERR_FORMAT,
                          "%s: \"layer_types\" has %d entries, num_hidden_layers is %lld", file,
                          cJSON_GetArraySize(types), (long long)c->num_layers);
    for (int64_t L = 0; L < c->num_layers; L++) {
        const cJSON *t = cJSON_GetArrayItem(types, (int)L);
        if (!cJSON_IsString(t))
            return gptq_error(GPTQ_ERR_FORMAT, "%s: \"layer_types\"[%lld] must be a string",
                              file, (long long)L);
        if (!strcmp(t->valuestring, "full_attention")) {
            c->layer_window[L] = 0;
        } else if (!strcmp(t->valuestring, "sliding_attention")) {
            if (c->sliding_window == 0)
                return gptq_error(GPTQ_ERR_FORMAT,
                                  "%s: \"layer_types\"[%lld] is \"sliding_attention\" but no "
                                  "sliding_window is set (use_sliding_window, sliding_window)",
                                  file, (long long)L);
            c->layer_window[L] = c->sliding_window;
        } else {
            return gptq_error(GPTQ_ERR_UNSUPPORTED,
                              "%s: \"layer_types\"[%lld] = \"%s\" is not supported (only "
                              "\"full_attention\" and \"sliding_attention\")",
                              file, (long long)L, t->valuestring);
        }
    }
    return GPTQ_OK;
}

/* The attention and RoPE part of a Llama-like config (Llama, Mistral, Qwen2,
 * Qwen3, Phi-3): heads, head_dim, rms_norm_eps, hidden_act silu, the RoPE
 * scaling (allow: what the family accepts beyond Llama's, or NULL). */
int gptq_llama_parse_attention(const cJSON *root, const char *file, gptq_model_config *c,
                               const gptq_rope_allow *allow)
{
    const int qwen3 = c->arch == &gptq_arch_qwen3;
    /* Qwen3Config: num_key_value_heads 32 and head_dim 128 when left out */
    c->num_kv_heads = qwen3 && key_left_out(root, "num_key_value_heads") ? 32 : c->num_heads;
    GPTQ_TRY(gptq_config_get_size(root, "num_key_value_heads", &c->num_kv_heads, 0, file));
    c->head_dim = 0;
    GPTQ_TRY(gptq_json_get_int(root, "head_dim", &c->head_dim, 0, file));
    if (c->head_dim != 0) GPTQ_TRY(gptq_config_get_size(root, "head_dim", &c->head_dim, 1, file));
    if (c->head_dim == 0 && qwen3 && key_left_out(root, "head_dim")) c->head_dim = 128;
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
    if (!(c->norm_eps > 0))
        return gptq_error(GPTQ_ERR_FORMAT, "%s: rms_norm_eps must be positive", file);
    const char *act = "silu";
    GPTQ_TRY(gptq_json_get_str(root, "hidden_act", &act, 0, file));
    if (strcmp(act, "silu") != 0)
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: hidden_act \"%s\" is not supported for %s (only \"silu\")", file,
                          act, c->architecture);

    /* RoPE: theta from either style (the keys), the scaling (rope.c) */
    GPTQ_TRY(gptq_rope_parse(root, file, c, allow));
    if (!(c->rope_theta > 0))
        return gptq_error(GPTQ_ERR_FORMAT, "%s: rope_theta must be positive", file);
    return GPTQ_OK;
}

static int parse(const cJSON *root, const char *file, gptq_model_config *c)
{
    const int qwen2 = !strcmp(c->architecture, "Qwen2ForCausalLM");
    const int mistral = !strcmp(c->architecture, "MistralForCausalLM");
    const int qwen3 = c->arch == &gptq_arch_qwen3;
    GPTQ_TRY(gptq_llama_parse_attention(root, file, c, NULL));
    const cJSON *prf = cJSON_GetObjectItemCaseSensitive(root, "partial_rotary_factor");
    if (prf && !cJSON_IsNull(prf) && !(cJSON_IsNumber(prf) && prf->valuedouble == 1.0))
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: partial_rotary_factor other than 1 is not supported", file);

    /* Biases: Llama/Mistral/Qwen3 attention_bias covers q, k, v and o; Qwen2
     * always has q/k/v biases and none on o_proj; Qwen3's MLP has none. */
    int ab = 0, mb = 0;
    GPTQ_TRY(gptq_json_get_bool(root, "attention_bias", &ab, 0, file));
    GPTQ_TRY(gptq_json_get_bool(root, "mlp_bias", &mb, 0, file));
    c->qkv_bias = qwen2 ? 1 : ab;
    c->o_bias = qwen2 ? 0 : ab;
    c->mlp_bias = qwen3 ? 0 : mb;
    c->norm_weight = 1;
    c->norm_bias = 0;
    c->final_norm = 1;

    return sliding_windows(root, file, mistral, qwen2 || qwen3, c);
}

/* ------------------------------------------------------------------ */
/* a decoder layer                                                     */
/* ------------------------------------------------------------------ */

enum { LQ, LK, LV, LO, LGATE, LUP, LDOWN, NLIN };

/* The same linears and groups in every layer. */
static int linears(const gptq_model_config *c, int L, gptq_linear_info *out)
{
    const int64_t D = c->hidden_size, F = c->intermediate_size;
    const int64_t Hd = c->num_heads * c->head_dim, Kd = c->num_kv_heads * c->head_dim;
    const gptq_linear_info lin[NLIN] = {
        [LQ] = {"self_attn.q_proj", Hd, D, c->qkv_bias},
        [LK] = {"self_attn.k_proj", Kd, D, c->qkv_bias},
        [LV] = {"self_attn.v_proj", Kd, D, c->qkv_bias},
        [LO] = {"self_attn.o_proj", D, Hd, c->o_bias},
        [LGATE] = {"mlp.gate_proj", F, D, c->mlp_bias},
        [LUP] = {"mlp.up_proj", F, D, c->mlp_bias},
        [LDOWN] = {"mlp.down_proj", D, F, c->mlp_bias},
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

enum { WXN, WQ, WK, WV, WATT, WTMP, WG, WU, WPOS, WROPE, NWORK };
static const char *const k_work[NWORK] = {
    "normed activations", "queries", "keys", "values", "attention output", "layer output",
    "MLP activations", "MLP up projection", "positions", "rope table"};

static void work_counts(const gptq_model_config *c, int64_t T, int64_t S, int64_t *n)
{
    const int64_t D = c->hidden_size, F = c->intermediate_size;
    const int64_t Hd = c->num_heads * c->head_dim, Kd = c->num_kv_heads * c->head_dim;
    const int64_t k[NWORK] = {T * D, T * Hd, T * Kd, T * Kd, T * Hd, T * D, T * F, T * F,
                              T, S * c->head_dim};
    memcpy(n, k, sizeof k);
}

/* The positions t % S of every row (only rope reads them) and the RoPE
 * table (S, d) = [cos | sin] (rope.c: the scaling, rounded as
 * transformers rounds it). */
static int prepare(const gptq_layer_ctx *x)
{
    return gptq_rope_upload(x, x->work[WPOS], x->work[WROPE]);
}

/* RMSNorm: a weight, no bias (b is NULL); Phi-3's too */
int gptq_llama_rmsnorm(gptq_backend *be, const gptq_buf *X, size_t off, const gptq_buf *w,
                       const gptq_buf *b, int64_t n, int64_t D, float eps, gptq_buf *Y)
{
    return GPTQ_BE_OP(be, rmsnorm, X, off, w, 0, n, D, eps, Y, 0);
}

/* The per-layer norms: Llama's two, Qwen3's two more. */
enum { NIN, NPOST, NQ, NK };

static int forward(const gptq_layer_ctx *x, const gptq_buf *X_in, gptq_buf *X_out)
{
    const gptq_model_config *c = x->c;
    gptq_buf *const *w = x->work;
    const int64_t d = c->head_dim;

    const gptq_attn_block attn = {
        .in_w = x->nw[NIN],
        .lq = LQ, .lk = LK, .lv = LV, .lo = LO,
        .q_norm = gptq_layer_norm_w(x, NQ), /* Qwen3 */
        .k_norm = gptq_layer_norm_w(x, NK),
        .pos = w[WPOS], .rope = w[WROPE], .rot = d,
        .scale = (float)(1.0 / sqrt((double)d)),
        .window = c->layer_window[x->layer],
        .xn = w[WXN], .Q = w[WQ], .K = w[WK], .V = w[WV], .O = w[WATT], .Y = w[WTMP],
    };
    GPTQ_LAYER_PART(gptq_layer_attention_block(x, &attn, X_in, X_out));

    const gptq_mlp_block mlp = {
        .in_w = x->nw[NPOST],
        .lgate = LGATE, .lup = LUP, .ldown = LDOWN, .act = GPTQ_MLP_SILU,
        .xn = w[WXN], .G = w[WG], .U = w[WU], .Y = w[WTMP],
    };
    GPTQ_LAYER_PART(gptq_layer_mlp_block(x, &mlp, X_out, X_out));
    return GPTQ_OK;
}

static const char *const k_roots[] = {"model.", NULL};
static const gptq_arch_norm k_norms[] = {
    [NIN] = {"input_layernorm", 0},
    [NPOST] = {"post_attention_layernorm", 0},
    [NQ] = {"self_attn.q_norm", 1},
    [NK] = {"self_attn.k_norm", 1},
};

const gptq_arch gptq_arch_llama = {
    .name = "Llama",
    .names = k_names,
    .nnames = (int)(sizeof k_names / sizeof *k_names),
    .keys = k_keys,
    .nkeys = (int)(sizeof k_keys / sizeof *k_keys),
    .parse = parse,
    .roots = k_roots,
    .embed = "embed_tokens.weight",
    .positions = NULL,
    .layers = "layers",
    .norms = k_norms,
    .nnorms = NPOST + 1,
    .final_norm = "norm",
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

/* Qwen3 dense: Llama's description with q_norm and k_norm in every layer
 * (parse and the forward see it by c->arch). Its keys are Llama's:
 * Qwen3Config's defaults are the same but for max_position_embeddings
 * (32768 there), which every Qwen3 config.json writes. */
const gptq_arch gptq_arch_qwen3 = {
    .name = "Qwen3",
    .names = k_qwen3_names,
    .nnames = (int)(sizeof k_qwen3_names / sizeof *k_qwen3_names),
    .keys = k_keys,
    .nkeys = (int)(sizeof k_keys / sizeof *k_keys),
    .parse = parse,
    .roots = k_roots,
    .embed = "embed_tokens.weight",
    .positions = NULL,
    .layers = "layers",
    .norms = k_norms,
    .nnorms = NK + 1,
    .final_norm = "norm",
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
