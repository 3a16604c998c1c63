/*
 * arch.h — a model family is a description plus a small forward (internal,
 * not installed). Each family file (arch_llama.c, arch_opt.c) exports one
 * const gptq_arch: the config.json names it accepts, the keys it reads, its
 * tensor names, the linears and true-sequential groups of a decoder layer,
 * its work buffers, and its layer forward built from backend ops, whose
 * halves are the shared gptq_layer_attention_block and gptq_layer_mlp_block
 * (decoder.c).
 * config.c (the architecture lookup over k_archs) and forward.c (loading,
 * buffers, hooks, embed, head) run every family from it and branch on none:
 * a new family is its file, its extern below, and its entry in k_archs.
 */
#ifndef GPTQ_ARCH_H
#define GPTQ_ARCH_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "model.h"

/* A config.json key read into a field of gptq_model_config before the
 * family's parse runs. */
typedef enum gptq_key_type {
    GPTQ_KEY_SIZE, /* int64, 1 .. config.c's bound for the v4 name */
    GPTQ_KEY_NUM,  /* double */
    GPTQ_KEY_BOOL, /* int 0/1 */
} gptq_key_type;

typedef struct gptq_arch_key {
    const char *v4;     /* the transformers 4 spelling ("rope_theta") */
    const char *v5;     /* the transformers 5 one where it moved ("rope_parameters.rope_theta":
                         * key rope_theta of object rope_parameters), else NULL; read after v4,
                         * it wins when both are there */
    gptq_key_type type;
    size_t field;       /* offsetof(gptq_model_config, ...) */
    int required;
    double def;         /* the value when absent (the transformers config class's default) */
} gptq_arch_key;

/* One accepted name: architectures[0], or model_type when no architectures. */
typedef struct gptq_arch_name {
    const char *arch, *model_type;
} gptq_arch_name;

/* A per-layer norm: its name and the length of its weight (and bias). */
typedef struct gptq_arch_norm {
    const char *name;   /* "input_layernorm", "self_attn.q_norm" */
    int per_head;       /* 1: (head_dim), applied to each head's vector (Qwen3's q/k norms);
                         * 0: (hidden_size) */
} gptq_arch_norm;

/* What a layer forward works with; forward.c fills it for each call. */
typedef struct gptq_layer_ctx {
    gptq_model *m;
    gptq_backend *be;
    const gptq_model_config *c;
    int layer;
    int64_t nseq, S, T;      /* T = nseq * S rows, sequence after sequence */
    int64_t pos0;            /* position of each sequence's first row: 0, or in generation
                              * the tokens already in the KV cache */
    int64_t npos;            /* pos0 + S: the positions the RoPE table covers (rope's P) */
    gptq_buf *kc, *vc;       /* generation: this layer's key / value cache (cap, Hk * d),
                              * positions 0 .. pos0 - 1 filled; NULL otherwise (only
                              * gptq_layer_attention looks at them) */
    gptq_buf *const *nw;     /* the layer's norms in gptq_arch.norms order: weight (or NULL) */
    gptq_buf *const *nb;     /*   and bias (or NULL) */
    gptq_buf *const *work;   /* the work buffers in gptq_arch.work order */
    int64_t prep_npos;       /* for prepare: the npos of the last prepare whose work
                              * buffers are still there (0: none; they hold nothing) */
    gptq_layer_hook hook;    /* may be NULL */
    void *user;
} gptq_layer_ctx;

typedef struct gptq_arch {
    const char *name;                /* "Llama", "OPT" (messages) */
    const gptq_arch_name *names;     /* accepted architectures, nnames of them */
    int nnames;
    const char *sub_config;          /* the object of config.json that holds the model's
                                      * keys ("text_config": a multimodal wrapper's text
                                      * model); NULL: the top level. dtype and
                                      * quantization_config stay at the top level */
    const gptq_arch_key *keys;       /* read in order, nkeys of them; a key for the field
                                      * of a shared one (vocab_size ...) replaces it (with
                                      * the family's default) */
    int nkeys;
    /* The rest of the family's config: checks, derived sizes, flags. */
    int (*parse)(const cJSON *root, const char *file, gptq_model_config *c);

    /* Tensor names. The root is the first of roots whose embed tensor
     * exists (else roots[0]); names below are under it except lm_head. */
    const char *const *roots;        /* NULL-terminated: "model." (, "") */
    const char *embed;               /* "embed_tokens.weight" (V, D) */
    const char *positions;           /* learned positions (max_positions + pos_offset, D),
                                      * row = position + pos_offset; NULL: none */
    const char *layers;              /* "layers": layer L is "<root>layers.<L>." */
    const gptq_arch_norm *norms;     /* per-layer norms, nnorms */
    int nnorms;
    const char *final_norm;          /* "norm" (when config final_norm) */
    float norm_offset;               /* every norm (per-layer and final) scales by
                                      * norm_offset + weight, the sum in f32 when the
                                      * weight is loaded (Gemma: 1; others 0) */
    const char *lm_head;             /* "lm_head" (when not tied) */

    /* The linears of layer L in forward order: returns their count and
     * fills out[] when not NULL. Names are relative to the layer. */
    int (*linears)(const gptq_model_config *c, int L, gptq_linear_info *out);
    /* The true-sequential groups of layer L, as linears. */
    int (*groups)(const gptq_model_config *c, int L, gptq_group_info *out);

    /* Work buffers (4-byte elements) for T = nseq * S rows and a RoPE table
     * of S positions (S >= the rows' largest position + 1): names, and
     * element counts (0: not allocated). */
    const char *const *work;
    int nwork;
    void (*work_counts)(const gptq_model_config *c, int64_t T, int64_t S, int64_t *n);
    /* Fill what the work buffers hold for every layer (positions, tables)
     * when S changed or T grew; NULL: nothing to fill. */
    int (*prepare)(const gptq_layer_ctx *x);

    /* The family's norm (final norm of the head too): Y = norm(X rows
     * [off/D, +n)) with weight w and bias b (either may be NULL). */
    int (*norm)(gptq_backend *be, const gptq_buf *X, size_t off, const gptq_buf *w,
                const gptq_buf *b, int64_t n, int64_t D, float eps, gptq_buf *Y);
    /* X_out = layer(X_in) (X_out may be X_in), calling the hook at each
     * group's input (gptq_layer_call_hook). */
    int (*forward)(const gptq_layer_ctx *x, const gptq_buf *X_in, gptq_buf *X_out);
} gptq_arch;

extern const gptq_arch gptq_arch_llama, gptq_arch_qwen3, gptq_arch_opt, gptq_arch_phi3;
extern const gptq_arch gptq_arch_gemma2, gptq_arch_gemma3, gptq_arch_gemma3mm;

/* arch_llama.c: RMSNorm with a weight (b unused), the norm of Llama, Qwen3
 * and Phi-3. */
int gptq_llama_rmsnorm(gptq_backend *be, const gptq_buf *X, size_t off, const gptq_buf *w,
                       const gptq_buf *b, int64_t n, int64_t D, float eps, gptq_buf *Y);

/* config.c: a positive integer key within its bound (required, or with
 * its default already in *out). */
int gptq_config_get_size(const cJSON *root, const char *key, int64_t *out, int required,
                         const char *file);

/* What a family accepts beyond Llama's RoPE (NULL: nothing more). */
typedef struct gptq_rope_allow {
    int partial;              /* partial_rotary_factor (top level, or in the rope object) */
    int longrope;             /* rope_type "longrope" */
    int64_t original_default; /* longrope's original_max_position_embeddings when no key
                               * gives it (the config class's default; 0: max_positions) */
} gptq_rope_allow;

/* rope.c: c->rope from rope_scaling / rope_parameters (c->head_dim,
 * max_positions and rope_theta already read), refusing what it does not
 * implement by key and value; and the table (S, rope.rot) = [cos | sin] of
 * positions 0 .. S-1 for a forward over S tokens. */
int gptq_rope_parse(const cJSON *root, const char *file, gptq_model_config *c,
                    const gptq_rope_allow *allow);
/* arch_llama.c: the attention and RoPE keys of a Llama-like config (heads,
 * head_dim, rms_norm_eps, hidden_act silu, rope via gptq_rope_parse). */
int gptq_llama_parse_attention(const cJSON *root, const char *file, gptq_model_config *c,
                               const gptq_rope_allow *allow);
void gptq_rope_table(const gptq_model_config *c, int64_t S, float *tab);
/* The same for RoPE r of base theta (a family with a RoPE per layer type:
 * Gemma 3's sliding layers). */
void gptq_rope_table_of(const gptq_rope *r, double theta, int64_t max_positions, int64_t S,
                        float *tab);
/* One RoPE object o (NULL: default) named obj ("rope_parameters.full_attention")
 * into c->rope and c->rope_theta (theta kept when o has none); v5: a missing
 * rope_type means default (transformers 5), else it is refused (4). */
int gptq_rope_parse_object(const cJSON *root, const cJSON *o, const char *obj, int v5,
                           const char *file, gptq_model_config *c);
/* Rows [p0, S) of the table of S positions into tab ((S - p0) rows of
 * r->rot): row p the same bits as row p of gptq_rope_table_of's. */
void gptq_rope_rows_of(const gptq_rope *r, double theta, int64_t max_positions, int64_t S,
                       int64_t p0, float *tab);
/* 1 when the tables of P0 and of P1 positions agree on their common rows
 * (not so for dynamic NTK beyond max_positions, or longrope across
 * original_max_position_embeddings). */
int gptq_rope_same_rows(const gptq_rope *r, int64_t max_positions, int64_t P0, int64_t P1);
/* Upload the positions pos0 + t % S of the T rows (i32) and the table of
 * npos = pos0 + S positions to pos and tab (the layer forwards' prepare). */
int gptq_rope_upload(const gptq_layer_ctx *x, gptq_buf *pos, gptq_buf *tab);
/* The table of RoPE r (base theta) for x->npos positions to tab: only the
 * rows past those of x->prep_npos's table when that one's rows are this
 * one's (gptq_rope_same_rows), else all of them. */
int gptq_rope_upload_table(const gptq_layer_ctx *x, const gptq_rope *r, double theta,
                           gptq_buf *tab);

/* forward.c, for the layer forwards. */
/* Y (T, rows) = X (T, cols) W_i^T (+ bias) with linear i of the loaded layer. */
int gptq_layer_linear(const gptq_layer_ctx *x, int i, const gptq_buf *X, gptq_buf *Y);
/* The layer's causal self-attention, O (T, H*d) from Q (T, H*d), K and V
 * (T, Hk*d) after RoPE: the backend's attention over x's nseq sequences of
 * S tokens; in generation (x->kc set) K and V are appended to the layer's
 * cache at position pos0 and the queries attend to the whole cache
 * (attention_kv). window and softcap as the attention op. */
int gptq_layer_attention(const gptq_layer_ctx *x, gptq_buf *Q, size_t q_off, gptq_buf *K,
                         size_t k_off, gptq_buf *V, size_t v_off, int64_t H, int64_t Hk,
                         int64_t d, float scale, int64_t window, float softcap, gptq_buf *O);
/* Generation's joined linears (gptq_model_kv_set_join): 1 when linear i of
 * the loaded layer runs inside its group's joined tensor, whose first
 * linear is *lead and where its outputs are columns *col ..; else 0. */
int gptq_layer_joined(const gptq_layer_ctx *x, int i, int *lead, int64_t *col);
/* *Y (T, *cols) = X W^T (+ bias) with the joined tensor of lead: the
 * model's scratch, valid until the next joined call. */
int gptq_layer_linear_joined(const gptq_layer_ctx *x, int lead, const gptq_buf *X, gptq_buf **Y,
                             int64_t *cols);
/* dst (T, n) = columns col .. col + n - 1 of Y (T, cols) (the gather op:
 * an exact copy). */
int gptq_layer_joined_split(const gptq_layer_ctx *x, gptq_buf *dst, const gptq_buf *Y,
                            int64_t col, int64_t n, int64_t cols);
/* The hook for group g with input X (T, cols): GPTQ_OK, GPTQ_HOOK_STOP or an error. */
int gptq_layer_call_hook(const gptq_layer_ctx *x, int g, const gptq_buf *X, int64_t cols);

/* The attention half of a decoder layer, for gptq_layer_attention_block:
 * what differs between families. The layer forward fills one from its
 * norms, work buffers and layer; a NULL step is left out. Shapes: T rows,
 * D = hidden_size, H / Hk heads of d = head_dim (the config's). */
typedef struct gptq_attn_block {
    /* the input norm (the family's norm; its weight and bias as it takes them) */
    const gptq_buf *in_w, *in_b;
    /* the projections, linears of the layer: q, k, v, or one fused linear
     * lqkv into fused (T, (H + 2 Hk) d), whose rows [q | k | v] are split by
     * the i32 column indices iq (H d), ik, iv (Hk d) (Phi-3); and o */
    int lq, lk, lv, lqkv, lo;
    gptq_buf *fused;                 /* NULL: q, k, v apart */
    const gptq_buf *iq, *ik, *iv;
    /* the norm of each head's vector after the projection, before RoPE: its
     * (d) weight (Qwen3, Gemma 3) */
    const gptq_buf *q_norm, *k_norm;
    /* RoPE of the first rot dims of each head: positions (T) and table
     * (npos, rot); rope NULL: none (OPT's positions are in the embedding) */
    const gptq_buf *pos, *rope;
    int64_t rot;
    float scale;                     /* gptq_layer_attention's */
    int64_t window;
    float softcap;
    /* the norm of o's output before the residual: its (D) weight (Gemma) */
    const gptq_buf *post_norm;
    /* work: xn (T, D) the normed input, Q (T, H d), K and V (T, Hk d), O the
     * attention output (T, H d), Y o's output (T, D) */
    gptq_buf *xn, *Q, *K, *V, *O, *Y;
} gptq_attn_block;

/* decoder.c: X_out = X_in + attention(norm(X_in)) as b describes it
 * (X_out may be X_in), calling the hooks of group 0 (on the normed input)
 * and group 1 (on o's input). GPTQ_OK, GPTQ_HOOK_STOP (a hook stopped: the
 * rest of the layer is not needed) or an error; a layer forward calls it
 * with GPTQ_LAYER_PART. */
int gptq_layer_attention_block(const gptq_layer_ctx *x, const gptq_attn_block *b,
                               const gptq_buf *X_in, gptq_buf *X_out);

/* The activation of an MLP half. */
typedef enum gptq_mlp_act {
    GPTQ_MLP_SILU,      /* gated: silu(gate) * up (the silu_mul op) */
    GPTQ_MLP_GELU_TANH, /* gated: gelu_tanh(gate) * up (gelu_tanh_mul) */
    GPTQ_MLP_RELU,      /* relu(gate), no up (OPT's fc1) */
} gptq_mlp_act;

/* The MLP half of a decoder layer, for gptq_layer_mlp_block, as
 * gptq_attn_block for the attention half. F = intermediate_size. */
typedef struct gptq_mlp_block {
    const gptq_buf *in_w, *in_b;     /* the norm before the MLP */
    /* the linears of the layer: gate and up (gate alone for relu), or one
     * fused linear lgu into fused (T, 2F), whose rows [gate | up] are split
     * by the i32 column indices ig, iu (F) (Phi-3); and down */
    int lgate, lup, lgu, ldown;
    gptq_buf *fused;                 /* NULL: gate and up apart */
    const gptq_buf *ig, *iu;
    gptq_mlp_act act;
    const gptq_buf *post_norm;       /* the norm of down's output before the residual:
                                      * its (D) weight (Gemma); NULL: none */
    /* work: xn (T, D) the normed input, G (T, F) the gate and the
     * activation, U (T, F) the up projection, Y (T, D) down's output */
    gptq_buf *xn, *G, *U, *Y;
} gptq_mlp_block;

/* decoder.c: X_out = X_in + mlp(norm(X_in)) as b describes it (X_out may
 * be X_in), calling the hooks of group 2 (on the normed input) and group 3
 * (on down's input); returns as gptq_layer_attention_block. */
int gptq_layer_mlp_block(const gptq_layer_ctx *x, const gptq_mlp_block *b, const gptq_buf *X_in,
                         gptq_buf *X_out);
/* The layer's norm j (x->nw), or NULL where the family has fewer norms
 * (Llama beside Qwen3's q/k norms, Gemma 2 beside Gemma 3). */
static inline const gptq_buf *gptq_layer_norm_w(const gptq_layer_ctx *x, int j)
{
    return j < x->c->arch->nnorms ? x->nw[j] : NULL;
}
/* The error for a backend that lacks a forward op. */
int gptq_be_missing_op(gptq_backend *be, gptq_op op);

/* Call a forward op slot, or report that the backend lacks it (an empty
 * slot, or one its supports_op declines). */
#define GPTQ_BE_OP(be, op, ...)                                                              \
    (gptq_be_supports((be), gptq_op_of_slot(offsetof(gptq_backend_iface, op)))              \
         ? gptq_be_check((be), (be)->iface->op((be)->ctx, __VA_ARGS__), #op)                 \
         : gptq_be_missing_op((be), gptq_op_of_slot(offsetof(gptq_backend_iface, op))))

/* In a layer forward: a part that calls hooks (gptq_layer_attention_block,
 * gptq_layer_mlp_block);
 * a hook's stop ends the layer (GPTQ_OK), an error returns it. */
#define GPTQ_LAYER_PART(call)                                               \
    do {                                                                    \
        int h_ = (call);                                                    \
        if (h_) return h_ == GPTQ_HOOK_STOP ? GPTQ_OK : h_;                 \
    } while (0)

/* In a layer forward: the hook of group g; a stop ends the layer (GPTQ_OK). */
#define GPTQ_LAYER_HOOK(x, g, X, cols) GPTQ_LAYER_PART(gptq_layer_call_hook((x), (g), (X), (cols)))

#endif /* GPTQ_ARCH_H */
