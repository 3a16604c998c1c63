/*
 * arch_opt.c — OPTForCausalLM (pre-LayerNorm only):
 *   x = embed_tokens[ids] + embed_positions[position + 2]
 *   per layer: h = x + out_proj(attn(q_proj(n1), k_proj(n1), v_proj(n1)))
 *                    with n1 = layernorm(x, self_attn_layer_norm)
 *              x' = h + fc2(relu(fc1(n2))), n2 = layernorm(h, final_layer_norm)
 *   logits = lm_head(layernorm(x, decoder.final_layer_norm))
 * Tensors are under "model.decoder.", or "decoder." in checkpoints saved
 * from OPTModel. Linears and true-sequential groups (the GPTQ paper's
 * opt.py order): 0 self_attn.q_proj, 1 k_proj, 2 v_proj (group qkv),
 * 3 self_attn.out_proj (group out), 4 fc1 (group fc1), 5 fc2 (group fc2).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../io/io.h"
#include "arch.h"

/* ------------------------------------------------------------------ */
/* config                                                              */
/* ------------------------------------------------------------------ */

static const gptq_arch_name k_names[] = {{"OPTForCausalLM", "opt"}};

#define F_(x) offsetof(gptq_model_config, x)
static const gptq_arch_key k_keys[] = {
    {"ffn_dim", NULL, GPTQ_KEY_SIZE, F_(intermediate_size), 1, 0},
    {"tie_word_embeddings", NULL, GPTQ_KEY_BOOL, F_(tie_word_embeddings), 0, 1},
    {"max_position_embeddings", NULL, GPTQ_KEY_SIZE, F_(max_positions), 0, 2048},
};

static int parse(const cJSON *root, const char *file, gptq_model_config *c)
{
    int before = 1;
    GPTQ_TRY(gptq_json_get_bool(root, "do_layer_norm_before", &before, 0, file));
    if (!before)
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: OPT with do_layer_norm_before = false (post-LayerNorm, as "
                          "opt-350m) is not supported",
                          file);
    int64_t proj = c->hidden_size;
    GPTQ_TRY(gptq_config_get_size(root, "word_embed_proj_dim", &proj, 0, file));
    if (proj != c->hidden_size)
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: OPT with word_embed_proj_dim %lld != hidden_size %lld (project_in/"
                          "project_out layers) is not supported",
                          file, (long long)proj, (long long)c->hidden_size);
    const char *act = "relu";
    GPTQ_TRY(gptq_json_get_str(root, "activation_function", &act, 0, file));
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
    GPTQ_TRY(gptq_json_get_bool(root, "enable_bias", &bias, 0, file));
    GPTQ_TRY(gptq_json_get_bool(root, "layer_norm_elementwise_affine", &affine, 0, file));
    GPTQ_TRY(gptq_json_get_bool(root, "_remove_final_layer_norm", &remove_final, 0, file));
    c->qkv_bias = c->o_bias = c->mlp_bias = bias;
    c->norm_weight = c->norm_bias = affine;
    c->final_norm = !remove_final;
    c->pos_offset = 2;
    c->sliding_window = 0;
    return GPTQ_OK;
}

/* ------------------------------------------------------------------ */
/* a decoder layer                                                     */
/* ------------------------------------------------------------------ */

enum { LQ, LK, LV, LOUT, LFC1, LFC2, NLIN };

/* The same linears and groups in every layer. */
static int linears(const gptq_model_config *c, int L, gptq_linear_info *out)
{
    const int64_t D = c->hidden_size, F = c->intermediate_size;
    const int64_t Hd = c->num_heads * c->head_dim, Kd = c->num_kv_heads * c->head_dim;
    const gptq_linear_info lin[NLIN] = {
        [LQ] = {"self_attn.q_proj", Hd, D, c->qkv_bias},
        [LK] = {"self_attn.k_proj", Kd, D, c->qkv_bias},
        [LV] = {"self_attn.v_proj", Kd, D, c->qkv_bias},
        [LOUT] = {"self_attn.out_proj", D, Hd, c->o_bias},
        [LFC1] = {"fc1", F, D, c->mlp_bias},
        [LFC2] = {"fc2", D, F, c->mlp_bias},
    };
    if (out) memcpy(out, lin, sizeof lin);
    return NLIN;
}

static const int k_qkv[] = {LQ, LK, LV}, k_out[] = {LOUT}, k_fc1[] = {LFC1}, k_fc2[] = {LFC2};
static const gptq_group_info k_groups[] = {
    {"qkv", k_qkv, 3}, {"out", k_out, 1}, {"fc1", k_fc1, 1}, {"fc2", k_fc2, 1}};

static int groups(const gptq_model_config *c, int L, gptq_group_info *out)
{
    if (out) memcpy(out, k_groups, sizeof k_groups);
    return (int)(sizeof k_groups / sizeof *k_groups);
}

enum { WXN, WQ, WK, WV, WATT, WTMP, WG, NWORK };
static const char *const k_work[NWORK] = {"normed activations", "queries", "keys", "values",
                                          "attention output", "layer output", "MLP activations"};

static void work_counts(const gptq_model_config *c, int64_t T, int64_t S, int64_t *n)
{
    const int64_t D = c->hidden_size, F = c->intermediate_size;
    const int64_t Hd = c->num_heads * c->head_dim, Kd = c->num_kv_heads * c->head_dim;
    const int64_t k[NWORK] = {T * D, T * Hd, T * Kd, T * Kd, T * Hd, T * D, T * F};
    memcpy(n, k, sizeof k);
}

static int norm(gptq_backend *be, const gptq_buf *X, size_t off, const gptq_buf *w,
                const gptq_buf *b, int64_t n, int64_t D, float eps, gptq_buf *Y)
{
    return GPTQ_BE_OP(be, layernorm, X, off, w, 0, b, 0, n, D, eps, Y, 0);
}

static int forward(const gptq_layer_ctx *x, const gptq_buf *X_in, gptq_buf *X_out)
{
    const gptq_model_config *c = x->c;
    gptq_buf *const *w = x->work;

    /* no RoPE: the learned positions were added to the embedding */
    const gptq_attn_block attn = {
        .in_w = x->nw[0], .in_b = x->nb[0],
        .lq = LQ, .lk = LK, .lv = LV, .lo = LOUT,
        .scale = (float)(1.0 / sqrt((double)c->head_dim)),
        .xn = w[WXN], .Q = w[WQ], .K = w[WK], .V = w[WV], .O = w[WATT], .Y = w[WTMP],
    };
    GPTQ_LAYER_PART(gptq_layer_attention_block(x, &attn, X_in, X_out));

    const gptq_mlp_block mlp = {
        .in_w = x->nw[1], .in_b = x->nb[1],
        .lgate = LFC1, .ldown = LFC2, .act = GPTQ_MLP_RELU,
        .xn = w[WXN], .G = w[WG], .Y = w[WTMP],
    };
    GPTQ_LAYER_PART(gptq_layer_mlp_block(x, &mlp, X_out, X_out));
    return GPTQ_OK;
}

/* "decoder." alone: checkpoints saved from OPTModel */
static const char *const k_roots[] = {"model.", "", NULL};
static const gptq_arch_norm k_norms[] = {{"self_attn_layer_norm", 0}, {"final_layer_norm", 0}};

const gptq_arch gptq_arch_opt = {
    .name = "OPT",
    .names = k_names,
    .nnames = (int)(sizeof k_names / sizeof *k_names),
    .keys = k_keys,
    .nkeys = (int)(sizeof k_keys / sizeof *k_keys),
    .parse = parse,
    .roots = k_roots,
    .embed = "decoder.embed_tokens.weight",
    .positions = "decoder.embed_positions.weight",
    .layers = "decoder.layers",
    .norms = k_norms,
    .nnorms = 2,
    .final_norm = "decoder.final_layer_norm",
    .lm_head = "lm_head",
    .linears = linears,
    .groups = groups,
    .work = k_work,
    .nwork = NWORK,
    .work_counts = work_counts,
    .prepare = NULL,
    .norm = norm,
    .forward = forward,
};
