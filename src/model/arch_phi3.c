/*
 * arch_phi3.c — Phi3ForCausalLM (Phi-3, Phi-3.5 mini, Phi-4-mini):
 *   per layer: qkv = qkv_proj(n1), n1 = rmsnorm(x, input_layernorm), rows
 *                    [q (H d) | k (Hk d) | v (Hk d)]
 *              h = x + o_proj(attn(rope(q), rope(k), v))
 *              gu = gate_up_proj(n2), n2 = rmsnorm(h, post_attention_layernorm),
 *                    rows [gate (F) | up (F)]
 *              x' = h + down_proj(silu(gate) * up)
 *   logits = lm_head(rmsnorm(x, model.norm))   (lm_head = embed_tokens when tied)
 * RoPE rotates the first rot = head_dim * partial_rotary_factor dims of each
 * head (Phi-4-mini: 0.75), with Phi-3's longrope scaling (rope.c). No biases.
 * The fused linears are quantized as the checkpoint has them (GPTQModel
 * does too): 0 self_attn.qkv_proj (group qkv), 1 self_attn.o_proj (o),
 * 2 mlp.gate_up_proj (gate_up), 3 mlp.down_proj (down); act-order and
 * groups run over their fused output rows like any linear's. The forward
 * splits the fused outputs with the gather op (an exact copy).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../io/io.h"
#include "arch.h"

static const gptq_arch_name k_names[] = {{"Phi3ForCausalLM", "phi3"}};

/* Phi3Config's defaults */
#define F_(x) offsetof(gptq_model_config, x)
static const gptq_arch_key k_keys[] = {
    {"intermediate_size", NULL, GPTQ_KEY_SIZE, F_(intermediate_size), 1, 0},
    {"rms_norm_eps", NULL, GPTQ_KEY_NUM, F_(norm_eps), 0, 1e-5},
    {"rope_theta", "rope_parameters.rope_theta", GPTQ_KEY_NUM, F_(rope_theta), 0, 10000.0},
    {"tie_word_embeddings", NULL, GPTQ_KEY_BOOL, F_(tie_word_embeddings), 0, 0},
    {"max_position_embeddings", NULL, GPTQ_KEY_SIZE, F_(max_positions), 0, 4096},
};

/* partial_rotary_factor and longrope; original_max_position_embeddings
 * defaults to 4096 as in Phi3Config */
static const gptq_rope_allow k_rope = {1, 1, 4096};

static int parse(const cJSON *root, const char *file, gptq_model_config *c)
{
    /* Phi3Attention: head_dim if the config has one, else D / H */
    GPTQ_TRY(gptq_llama_parse_attention(root, file, c, &k_rope));
    c->qkv_bias = c->o_bias = c->mlp_bias = 0;
    c->norm_weight = 1;
    c->norm_bias = 0;
    c->final_norm = 1;
    /* Phi3Config: sliding_window None unless given (Phi-3-mini writes 2047);
     * transformers' Phi3 masks every layer with it */
    c->sliding_window = 0;
    GPTQ_TRY(gptq_json_get_int(root, "sliding_window", &c->sliding_window, 0, file));
    if (c->sliding_window < 0)
        return gptq_error(GPTQ_ERR_FORMAT, "%s: \"sliding_window\" = %lld must be positive",
                          file, (long long)c->sliding_window);
    for (int64_t L = 0; L < c->num_layers; L++) c->layer_window[L] = c->sliding_window;
    return GPTQ_OK;
}

enum { LQKV, LO, LGU, LDOWN, NLIN };

static int linears(const gptq_model_config *c, int L, gptq_linear_info *out)
{
    const int64_t D = c->hidden_size, F = c->intermediate_size;
    const int64_t Hd = c->num_heads * c->head_dim, Kd = c->num_kv_heads * c->head_dim;
    const gptq_linear_info lin[NLIN] = {
        [LQKV] = {"self_attn.qkv_proj", Hd + 2 * Kd, D, 0},
        [LO] = {"self_attn.o_proj", D, Hd, 0},
        [LGU] = {"mlp.gate_up_proj", 2 * F, D, 0},
        [LDOWN] = {"mlp.down_proj", D, F, 0},
    };
    if (out) memcpy(out, lin, sizeof lin);
    return NLIN;
}

static const int k_qkv[] = {LQKV}, k_o[] = {LO}, k_gate_up[] = {LGU}, k_down[] = {LDOWN};
static const gptq_group_info k_groups[] = {
    {"qkv", k_qkv, 1}, {"o", k_o, 1}, {"gate_up", k_gate_up, 1}, {"down", k_down, 1}};

static int groups(const gptq_model_config *c, int L, gptq_group_info *out)
{
    if (out) memcpy(out, k_groups, sizeof k_groups);
    return (int)(sizeof k_groups / sizeof *k_groups);
}

/* The split's column indices into the fused outputs (IQ .. IU) are i32. */
enum { WXN, WQKV, WQ, WK, WV, WATT, WTMP, WGU, WG, WU, WPOS, WROPE, IQ, IK, IV, IG, IU, NWORK };
static const char *const k_work[NWORK] = {
    "normed activations", "fused qkv", "queries", "keys", "values", "attention output",
    "layer output", "fused gate_up", "MLP activations", "MLP up projection", "positions",
    "rope table", "q columns", "k columns", "v columns", "gate columns", "up columns"};

static void work_counts(const gptq_model_config *c, int64_t T, int64_t S, int64_t *n)
{
    const int64_t D = c->hidden_size, F = c->intermediate_size;
    const int64_t Hd = c->num_heads * c->head_dim, Kd = c->num_kv_heads * c->head_dim;
    const int64_t k[NWORK] = {T * D, T * (Hd + 2 * Kd), T * Hd, T * Kd, T * Kd, T * Hd,
                              T * D, T * 2 * F, T * F, T * F, T, S * c->rope.rot,
                              Hd, Kd, Kd, F, F};
    memcpy(n, k, sizeof k);
}

/* Columns [first, first + n) as an i32 index buffer. */
static int upload_cols(const gptq_layer_ctx *x, gptq_buf *b, int64_t first, int64_t n)
{
    int32_t *v = gptq_malloc((size_t)n * sizeof(int32_t), "column indices");
    if (!v) return GPTQ_ERR_NOMEM;
    for (int64_t i = 0; i < n; i++) v[i] = (int32_t)(first + i);
    int st = gptq_be_upload(x->be, b, 0, v, (size_t)n * sizeof(int32_t));
    free(v);
    return st;
}

static int prepare(const gptq_layer_ctx *x)
{
    const gptq_model_config *c = x->c;
    const int64_t F = c->intermediate_size;
    const int64_t Hd = c->num_heads * c->head_dim, Kd = c->num_kv_heads * c->head_dim;
    GPTQ_TRY(gptq_rope_upload(x, x->work[WPOS], x->work[WROPE]));
    GPTQ_TRY(upload_cols(x, x->work[IQ], 0, Hd));
    GPTQ_TRY(upload_cols(x, x->work[IK], Hd, Kd));
    GPTQ_TRY(upload_cols(x, x->work[IV], Hd + Kd, Kd));
    GPTQ_TRY(upload_cols(x, x->work[IG], 0, F));
    return upload_cols(x, x->work[IU], F, F);
}

enum { NIN, NPOST };

static int forward(const gptq_layer_ctx *x, const gptq_buf *X_in, gptq_buf *X_out)
{
    const gptq_model_config *c = x->c;
    gptq_buf *const *w = x->work;

    const gptq_attn_block attn = {
        .in_w = x->nw[NIN],
        .lqkv = LQKV, .lo = LO,
        .fused = w[WQKV], .iq = w[IQ], .ik = w[IK], .iv = w[IV],
        .pos = w[WPOS], .rope = w[WROPE], .rot = c->rope.rot,
        .scale = (float)(1.0 / sqrt((double)c->head_dim)),
        .window = c->layer_window[x->layer],
        .xn = w[WXN], .Q = w[WQ], .K = w[WK], .V = w[WV], .O = w[WATT], .Y = w[WTMP],
    };
    GPTQ_LAYER_PART(gptq_layer_attention_block(x, &attn, X_in, X_out));

    const gptq_mlp_block mlp = {
        .in_w = x->nw[NPOST],
        .lgu = LGU, .ldown = LDOWN, .act = GPTQ_MLP_SILU,
        .fused = w[WGU], .ig = w[IG], .iu = w[IU],
        .xn = w[WXN], .G = w[WG], .U = w[WU], .Y = w[WTMP],
    };
    GPTQ_LAYER_PART(gptq_layer_mlp_block(x, &mlp, X_out, X_out));
    return GPTQ_OK;
}

static const char *const k_roots[] = {"model.", NULL};
static const gptq_arch_norm k_norms[] = {
    [NIN] = {"input_layernorm", 0},
    [NPOST] = {"post_attention_layernorm", 0},
};

const gptq_arch gptq_arch_phi3 = {
    .name = "Phi-3",
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
    .nnorms = (int)(sizeof k_norms / sizeof *k_norms),
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
