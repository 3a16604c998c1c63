/*
 * model.h — Hugging Face causal language models inside libgptq (internal,
 * not installed): config.json -> architecture, safetensors weights (one
 * file or shards + index, fp or GPTQ-quantized), and the forward pass built
 * from the backend's forward ops, one decoder layer on the backend at a
 * time.
 *
 * Families are descriptions (arch.h), one file each:
 *   arch_llama.c  LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM,
 *                 Qwen3ForCausalLM (q/k norms)
 *   arch_phi3.c   Phi3ForCausalLM (fused qkv / gate_up, partial rotary, longrope)
 *   arch_gemma.c  Gemma2ForCausalLM, Gemma3ForCausalLM ((1 + w) norms around
 *                 attention and MLP, GeGLU, softcaps, a RoPE per layer type)
 *   arch_opt.c    OPTForCausalLM (pre-LayerNorm only)
 * Each says what its config.json holds, how its tensors are named, which
 * linears a decoder layer has in which true-sequential groups, and how the
 * layer computes; this file's functions run any of them.
 *
 * Activations: X (T, D) f32 on the backend, T = nseq * S tokens stored
 * sequence after sequence (row t = seq * S + position); every sequence is
 * attended to on its own (causal, positions 0 .. S-1).
 *
 * Linear modules of a decoder layer, in forward order, and their
 * true-sequential groups (the GPTQ paper's order, as its llama.py/opt.py)
 * come from the family, per layer (gptq_model_linear, gptq_model_group).
 *
 * Typical use by a quantization pipeline (true-sequential, batches of
 * calibration windows that do not fit in one call):
 *   gptq_model_open(dir, be, &m);
 *   for each batch b: gptq_model_embed(m, ids_b, nseq_b, S, X[b]);
 *   for L in layers:
 *     gptq_model_layer_load(m, L);
 *     for g in groups:
 *       for each batch b: gptq_model_layer_forward(m, L, X[b], Y[b], ..., hook, st)
 *         where the hook adds ev->X into the Hessian of group g and returns
 *         GPTQ_HOOK_STOP when ev->group == g (nothing after it is needed);
 *       quantize the group's modules, gptq_model_linear_set(m, L, i, W_hat);
 *     for each batch b: gptq_model_layer_forward(m, L, X[b], X[b], ..., NULL, NULL)
 *       (the quantized layer's output is the next layer's input);
 *   When all windows fit in one call (T = nsamples * S), one forward with a
 *   hook that accumulates, quantizes and swaps the weights at each group does
 *   the same in one pass.
 *
 * Every function returns GPTQ_OK or a negative gptq_status with a message
 * (gptq_last_error) naming the file, key or tensor at fault.
 */
#ifndef GPTQ_MODEL_H
#define GPTQ_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "../internal.h"

/* ------------------------------------------------------------------ */
/* Config                                                              */
/* ------------------------------------------------------------------ */

typedef struct gptq_arch gptq_arch; /* a family's description (arch.h) */

/* GPTQModel's per-module rules (quantization_config "dynamic"; dynamic.c):
 * in order, the first whose regex matches a module's name at its start
 * (Python's re.match) decides. */
#define GPTQ_DYNAMIC_MAX 32
typedef struct gptq_dyn_rule {
    char key[256];        /* as written: "-:<regex>", "+:<regex>" or "<regex>" */
    int skip;             /* "-:": the module stays unquantized */
    int bits;             /* -1: not overridden */
    int group_size;       /* 0: not overridden */
    int sym, desc_act;    /* -1: not overridden */
    int act_group_aware;  /* -1: not overridden (GPTQModel 5.0's per-module GAR) */
} gptq_dyn_rule;
typedef struct gptq_dynamic {
    int n;
    gptq_dyn_rule r[GPTQ_DYNAMIC_MAX];
} gptq_dynamic;

/* obj ("dynamic") into *out, every regex compiled and every value checked
 * (keys bits 2/3/4/8, group_size -1 or positive, sym, desc_act,
 * act_group_aware, which true refuses beside desc_act true or group_size
 * -1, as GPTQModel; anything else refused); messages start with what (a
 * file or option). */
int gptq_dynamic_parse(const cJSON *obj, const char *what, gptq_dynamic *out);
/* The --dynamic option's rules: inline JSON when arg starts with '{',
 * else a JSON file's path; parsed as gptq_dynamic_parse does. */
int gptq_dynamic_load(const char *arg, gptq_dynamic *d);
/* *out = the first rule matching module, or NULL. */
int gptq_dynamic_match(const gptq_dynamic *d, const char *module, const gptq_dyn_rule **out);

/* The quantization a checkpoint declares (config.json "quantization_config",
 * or quantize_config.json beside it). */
typedef struct gptq_ckpt_quant {
    int present;          /* 0: a floating-point checkpoint */
    int bits;             /* bits | wbits | w_bit */
    int group_size;       /* group_size | q_group_size; -1 = one group per row */
    int desc_act;         /* desc_act (default 0) */
    int sym;              /* sym, or !zero_point (default 1) */
    int lm_head;          /* lm_head quantized too (default 0) */
    gptq_format format;   /* checkpoint_format | format: "gptq" (v1, default) or "gptq_v2" */
    gptq_dynamic dynamic; /* "dynamic" (n = 0 without) */
    int ctensors;         /* quant_method "compressed-tensors": pack-quantized tensors,
                             read into v2 (format GPTQ_FORMAT_V2); "ignore" as "-:" rules */
} gptq_ckpt_quant;

/* *out = q with the overrides of the dynamic rule matching module (bits,
 * group_size, sym, desc_act), and no rules of its own. */
int gptq_ckpt_quant_for_module(const gptq_ckpt_quant *q, const char *module,
                               gptq_ckpt_quant *out);

/* RoPE scaling (rope_scaling / rope_parameters; src/model/rope.c). */
typedef enum gptq_rope_type {
    GPTQ_ROPE_DEFAULT,
    GPTQ_ROPE_LINEAR,  /* inv_freq / factor */
    GPTQ_ROPE_DYNAMIC, /* NTK: the base grows with a sequence longer than max_positions */
    GPTQ_ROPE_LLAMA3,  /* per-frequency smoothing (Llama 3.1+) */
    GPTQ_ROPE_YARN,    /* frequency blend and attention factor (YaRN) */
    GPTQ_ROPE_LONGROPE,/* per-frequency short / long factors (Phi-3; families that allow it) */
} gptq_rope_type;

/* longrope's factor lists hold rot / 2 numbers: heads of up to 2 * this
 * many rotary dims */
#define GPTQ_ROPE_MAX_PAIRS 256

typedef struct gptq_rope {
    gptq_rope_type type;
    double factor;            /* every type but default */
    double low_freq_factor;   /* llama3 */
    double high_freq_factor;  /* llama3 */
    int64_t original_max;     /* llama3, yarn: original_max_position_embeddings */
    double attention_factor;  /* yarn: cos and sin are multiplied by it (1 otherwise) */
    double beta_fast, beta_slow; /* yarn (32, 1) */
    int truncate;             /* yarn: floor/ceil the correction range (1) */
    int64_t rot;              /* rotary dims of each head: head_dim * partial_rotary_factor
                               * (head_dim unless the family allows a partial factor) */
    double short_factor[GPTQ_ROPE_MAX_PAIRS]; /* longrope: rot / 2 each */
    double long_factor[GPTQ_ROPE_MAX_PAIRS];
} gptq_rope;

/* num_hidden_layers is at most this (config.c bounds it). */
#define GPTQ_MAX_LAYERS 1024

typedef struct gptq_model_config {
    char architecture[64]; /* as written in config.json ("LlamaForCausalLM") */
    const gptq_arch *arch;    /* the family that accepted it */
    int64_t vocab_size;       /* V */
    int64_t hidden_size;      /* D */
    int64_t intermediate_size;/* F: SwiGLU width (Llama) or ffn_dim (OPT) */
    int64_t num_layers;
    int64_t num_heads;        /* H */
    int64_t num_kv_heads;     /* Hk (OPT: = H) */
    int64_t head_dim;         /* d: explicit head_dim, else D / H */
    int64_t max_positions;    /* max_position_embeddings */
    double norm_eps;          /* rms_norm_eps (Llama, default 1e-6), 1e-5 (OPT LayerNorm) */
    double rope_theta;        /* rope_theta or rope_parameters.rope_theta (default 1e4) */
    gptq_rope rope;           /* its scaling (default: none) */
    int qkv_bias;             /* q/k/v_proj have biases (attention_bias, Qwen2, OPT) */
    int o_bias;               /* o_proj / out_proj has a bias (attention_bias, OPT) */
    int mlp_bias;             /* gate/up/down or fc1/fc2 have biases (mlp_bias, OPT) */
    int norm_weight;          /* norms have a weight (OPT: elementwise_affine) */
    int norm_bias;            /* and a bias (OPT elementwise_affine; Llama: none) */
    int final_norm;           /* a final norm exists (OPT: !_remove_final_layer_norm) */
    int tie_word_embeddings;  /* lm_head shares embed_tokens */
    int64_t sliding_window;   /* 0: none; else attention window (Mistral/Qwen2/Qwen3) */
    int64_t layer_window[GPTQ_MAX_LAYERS]; /* per layer: sliding_window or 0 (full causal) */
    int64_t pos_offset;       /* learned positions: row = position + pos_offset (OPT: 2) */
    /* Gemma 2 / Gemma 3 (arch_gemma.c; 0 = unused by the other families) */
    double embed_scale;       /* embeddings *= this, rounded to f32 and then to the
                               * embedding table's dtype (Gemma: sqrt(hidden_size), as
                               * transformers' normalizer, a tensor of the model's dtype) */
    double final_softcap;     /* logits = c * tanh(logits / c) (final_logit_softcapping) */
    double attn_softcap;      /* attention scores soft-capped (attn_logit_softcapping) */
    double attn_scale;        /* attention scale (query_pre_attn_scalar ** -0.5) */
    gptq_rope rope_local;     /* Gemma 3: the RoPE of the sliding-window layers, and */
    double rope_local_theta;  /*   its base (rope_local_base_freq) */
    gptq_dtype dtype;         /* torch_dtype | dtype (F32 when absent) */
    gptq_ckpt_quant quant;
} gptq_model_config;

/* Parse a config.json tree (transformers 4 style: rope_theta, torch_dtype;
 * transformers 5 style: rope_parameters {rope_theta, rope_type}, dtype).
 * `file` names the source in messages. Errors:
 *   GPTQ_ERR_UNSUPPORTED  unknown architecture (the message names it and
 *                         every supported one), a rope type other than
 *                         default, linear, dynamic, llama3 or yarn,
 *                         hidden_act not silu (Llama) / relu (OPT),
 *                         OPT post-LayerNorm (do_layer_norm_before false) or
 *                         word_embed_proj_dim != hidden_size, quant_method
 *                         other than gptq, unusable bits, a layer_types
 *                         entry other than full_attention/sliding_attention.
 *   GPTQ_ERR_FORMAT       a required key absent, a key of the wrong type,
 *                         inconsistent sizes (heads vs kv heads ...), a
 *                         sliding_window that is not positive, a negative
 *                         max_window_layers, a layer_types of the wrong
 *                         length or sliding without a window. */
int gptq_model_config_parse(const cJSON *root, const char *file, gptq_model_config *c);
/* Read DIR/config.json (and DIR/quantize_config.json when config.json has
 * no quantization_config) and parse it. Every size is bounded (the
 * message names the key and its range), and so are the products that size
 * a tensor, before anything is allocated. */
int gptq_model_config_load(const char *dir, gptq_model_config *c);
/* Only the quantization settings of the checkpoint folder DIR: config.json's
 * quantization_config, else quantize_config.json; q->present is 0 when
 * neither says anything (the rest of config.json is not looked at, so a
 * shard's folder need not hold a whole model's config). */
int gptq_ckpt_quant_load(const char *dir, gptq_ckpt_quant *q);
/* A compressed-tensors quantization_config (quant_method already
 * "compressed-tensors"): format "pack-quantized", one config group
 * targeting ["Linear"], weights int 4 or 8 bits, strategy group or
 * channel, actorder null or "weight", no input activations; "ignore" as
 * dynamic "-:" rules, lm_head quantized unless ignored (ctensors_config.c). */
int gptq_ct_parse_quant(const cJSON *q, const char *file, gptq_ckpt_quant *out);

/* ------------------------------------------------------------------ */
/* Weights                                                             */
/* ------------------------------------------------------------------ */

/* The tensors of a model folder: DIR/model.safetensors, or the shards named
 * by DIR/model.safetensors.index.json ("weight_map": tensor -> shard file),
 * each mmap'd (gptq_st_open), nothing copied. A path to one .safetensors
 * file opens that file alone. */
typedef struct gptq_weights gptq_weights;

/* Errors name the folder, the index or the shard: no weights file, index
 * without weight_map, a shard name that is not a plain file name, a shard
 * that cannot be opened, a tensor the index places in a shard that lacks it. */
int gptq_weights_open(const char *dir, gptq_weights **out);
void gptq_weights_close(gptq_weights *w);
/* All tensors of all shards: count, and the i-th (shard order, then file
 * order). */
int gptq_weights_count(const gptq_weights *w);
int gptq_weights_get(const gptq_weights *w, int i, gptq_st_info *info);
/* Look a tensor up by name. Absent: GPTQ_ERR_FORMAT "tensor NAME not found
 * in DIR/...". gptq_weights_has returns 1/0 and sets no message. */
int gptq_weights_find(const gptq_weights *w, const char *name, gptq_st_info *info);
/* 1 when module `prefix` is stored packed: "<prefix>.qweight" (GPTQ) or
 * "<prefix>.weight_packed" (compressed-tensors). */
int gptq_weights_is_packed(const gptq_weights *w, const char *prefix);
/* A compressed-tensors module (ctensors_weights.c): its weight_shape {N, K}
 * against rows/cols (each when > 0), its tensors' dtypes and shapes; and
 * read into a v2 gptq_packed (g_idx k / G). Messages start with dir. */
int gptq_ct_check_tensors(const gptq_weights *w, const char *dir, const gptq_ckpt_quant *q,
                          const char *prefix, int64_t rows, int64_t cols);
int gptq_ct_read_packed(const gptq_weights *w, const char *dir, const gptq_ckpt_quant *q,
                        const char *prefix, int64_t rows, int64_t cols, gptq_packed *p);
int gptq_weights_has(const gptq_weights *w, const char *name);
/* Copy an F32/F16/BF16 tensor into dst as f32, checking its shape against
 * (ndim, shape) (GPTQ_ERR_SHAPE naming the tensor and both shapes). */
int gptq_weights_read_f32(const gptq_weights *w, const char *name, int ndim,
                          const int64_t *shape, float *dst);
/* The checks of gptq_weights_read_f32 without reading: `name` exists with
 * shape (ndim, shape) and dtype F32, F16 or BF16 (GPTQ_ERR_SHAPE /
 * GPTQ_ERR_UNSUPPORTED naming the tensor, both shapes or the dtype). */
int gptq_weights_check_float(const gptq_weights *w, const char *name, int ndim,
                             const int64_t *shape);
/* A string of the safetensors metadata ("__metadata__") of any shard, or NULL. */
const char *gptq_weights_metadata(const gptq_weights *w, const char *key);
/* The packed tensors PREFIX.qweight/qzeros/scales[/g_idx] of a GPTQ module
 * (PREFIX "" or NULL: the bare names, as `gptq layer` writes them), checked
 * against q (bits, group size) and (rows, cols) = (out, in) features (<= 0:
 * taken from scales and qweight). A missing g_idx is k // group_size. */
int gptq_weights_read_packed(const gptq_weights *w, const gptq_ckpt_quant *q, const char *prefix,
                             int64_t rows, int64_t cols, gptq_packed *p);
/* The checks of gptq_weights_read_packed for a module of (rows, cols) =
 * (out, in) features without reading: qweight I32 [cols*bits/32, rows],
 * qzeros I32 [ngroups, rows*bits/32], scales F16 [ngroups, rows], g_idx
 * (optional) I32 [cols]; the message names the tensor, its dtype and shape
 * and the expected ones. */
int gptq_weights_check_packed(const gptq_weights *w, const gptq_ckpt_quant *q, const char *prefix,
                              int64_t rows, int64_t cols);

/* ------------------------------------------------------------------ */
/* The model and its forward pass                                      */
/* ------------------------------------------------------------------ */

/* gptq_model (opaque), gptq_model_open and gptq_model_close are public:
 * gptq.h. */

typedef struct gptq_linear_info {
    char name[64];      /* inside the layer: "self_attn.q_proj", "mlp.down_proj", "fc1" */
    int64_t rows, cols; /* out_features, in_features: W (rows, cols) */
    int has_bias;
} gptq_linear_info;

/* A true-sequential group: linears that read the same input. */
typedef struct gptq_group_info {
    const char *name;   /* "qkv", "o", "gate_up", "down" (OPT: "qkv", "out", "fc1", "fc2") */
    const int *lin;     /* its linears: indices into the layer's list, nlin of them */
    int nlin;
} gptq_group_info;

/* What a hook sees: the input of one true-sequential group of linears of
 * layer `layer`, just before they are applied. X (T, cols) on the backend
 * (T = nseq * S) is valid only during the call. rows, when not NULL, is an
 * i32 backend buffer of the nrows rows of X the group's modules see (the
 * tokens routed to them); NULL: every row, the same for all the group's
 * modules. */
typedef struct gptq_hook_event {
    int layer;
    int group;                 /* 0 .. ngroups-1 */
    const char *group_name;
    const int *lin;            /* the group's modules: linear indices, nlin of them */
    int nlin;
    const gptq_buf *X;         /* (T, cols) f32 */
    int64_t T, cols;
    const gptq_buf *rows;      /* (nrows) i32, or NULL: all T rows */
    int64_t nrows;             /* T when rows is NULL */
} gptq_hook_event;

/* For a hook that handles every row only: GPTQ_OK when ev covers all of
 * X, else GPTQ_ERR_UNSUPPORTED naming the layer and group (quantizing a
 * module on a subset of the tokens is not implemented yet). */
int gptq_hook_all_rows(const gptq_hook_event *ev);

/* A hook returns GPTQ_OK to go on, GPTQ_HOOK_STOP to end the layer's forward
 * right there (X_out is then left unspecified; use it when only the
 * Hessians of the first groups are wanted), or a negative status to fail
 * (returned as is). Inside the hook the caller may replace the group's
 * weights (gptq_model_linear_set): the forward then uses the new ones for
 * this group and after, which is how true-sequential quantization sees the
 * already-quantized earlier groups. */
#define GPTQ_HOOK_STOP 1
typedef int (*gptq_layer_hook)(void *user, const gptq_hook_event *ev);

/* gptq_model_open (gptq.h) reads DIR's config and weights index for
 * backend `be`; nothing is uploaded yet. */

/* Arithmetic of the forward's Linears: GPTQ_MATH_F32 (default) through the
 * backend's gemm (the CPU backend's is the reference), or GPTQ_MATH_TF32
 * through its linear_fast (matrix units, inputs rounded to TF32, as the
 * GPTQ paper's code runs its forward in fp16); a backend without
 * linear_fast keeps gemm. Attention, norms and the Hessians stay f32. */
typedef enum gptq_math { GPTQ_MATH_F32 = 0, GPTQ_MATH_TF32 = 1 } gptq_math;
void gptq_model_set_forward_math(gptq_model *m, gptq_math math);
const gptq_model_config *gptq_model_config_of(const gptq_model *m);
/* The folder it was opened from. */
const char *gptq_model_dir(const gptq_model *m);
gptq_weights *gptq_model_weights(gptq_model *m);
gptq_backend *gptq_model_backend(gptq_model *m);

/* The linear modules of decoder layer L (NULL / 0 for an index outside),
 * and its true-sequential groups in forward order. */
int gptq_model_nlinear(const gptq_model *m, int L);
const gptq_linear_info *gptq_model_linear(const gptq_model *m, int L, int i);
int gptq_model_ngroups(const gptq_model *m, int L);
const gptq_group_info *gptq_model_group(const gptq_model *m, int L, int g);
/* Full tensor prefix of linear i of layer L: "model.layers.3.self_attn.q_proj"
 * (append ".weight", ".bias", ".qweight" ...). */
int gptq_model_linear_prefix(const gptq_model *m, int L, int i, char *buf, size_t size);

/* Bytes of the work buffers a layer forward of nseq sequences of S tokens
 * allocates (the family's, arch.h), for sizing batches. */
int64_t gptq_model_work_bytes(const gptq_model *m, int64_t nseq, int64_t S);

/* Allocate a (T, D) f32 activation buffer (zeroed) for T = nseq * S. */
int gptq_model_alloc_hidden(gptq_model *m, int64_t nseq, int64_t S, gptq_buf **out);

/* X (nseq*S, D) = token embeddings of ids (nseq, S) host i32 (plus learned
 * positions 0 .. S-1 when the family has them, as OPT). The embedding table is uploaded for the call
 * and freed after. ids outside [0, V): GPTQ_ERR_INVALID. */
int gptq_model_embed(gptq_model *m, const int32_t *ids, int64_t nseq, int64_t S, gptq_buf *X);

/* Upload the weights of decoder layer L (f32; dequantized when the
 * checkpoint is GPTQ), freeing the previously loaded layer. */
int gptq_model_layer_load(gptq_model *m, int L);
/* Free the loaded layer's weights and the work buffers. */
void gptq_model_layer_unload(gptq_model *m);

/* Linear i of the loaded layer L: download W (rows, cols) f32 to host, or
 * replace it with W (rows, cols) f32 from host (the bias stays). */
int gptq_model_linear_get(gptq_model *m, int L, int i, float *W);
int gptq_model_linear_set(gptq_model *m, int L, int i, const float *W);
/* The same weight where it lives: the backend buffer of (rows, cols) f32
 * that the forward reads (valid until the next layer_load/unload); the
 * caller may overwrite it in place. */
int gptq_model_linear_buf(gptq_model *m, int L, int i, gptq_buf **W);

/* Run decoder layer L (loaded first if it is not): X_out = layer(X_in), both
 * (nseq*S, D) on the backend; X_out may be X_in (in place). hook may be
 * NULL; it is called once per group in order. A family with learned
 * positions (OPT) refuses S above max_position_embeddings (its table ends
 * there). A layer with a sliding window (config layer_window[L] > 0) lets
 * each query attend to at most that many keys, itself included. */
int gptq_model_layer_forward(gptq_model *m, int L, const gptq_buf *X_in, gptq_buf *X_out,
                             int64_t nseq, int64_t S, gptq_layer_hook hook, void *user);

/* Final norm + lm_head + next-token NLL for X (nseq*S, D), the output of
 * the last layer, and ids (nseq, S) host, the tokens it was made from:
 * adds to *nll_sum the NLL of ids[b, t+1] at position t for t < S-1 (the
 * S-1 predicted tokens of each sequence, summed in double in row order).
 * nll_tok (nseq, S-1) host f64 receives each one when not NULL. The head
 * weights are uploaded for the call; logits are made in chunks of rows. */
int gptq_model_head_nll(gptq_model *m, const gptq_buf *X, const int32_t *ids, int64_t nseq,
                        int64_t S, double *nll_sum, double *nll_tok);
/* Logits (nrows, V) host f32 of rows [row0, row0+nrows) of X (T, D). */
int gptq_model_head_logits(gptq_model *m, const gptq_buf *X, int64_t row0, int64_t nrows,
                           float *logits);

/* The lm_head's tensor prefix ("lm_head"); NULL when tie_word_embeddings
 * makes embed_tokens the head. */
const char *gptq_model_head_prefix(const gptq_model *m);
/* The lm_head's input for rows X (T, D), the last layer's output: *out =
 * Y (T, D) filled with the final norm of X, or X itself when the model has
 * no final norm (OPT with _remove_final_layer_norm). */
int gptq_model_final_norm(gptq_model *m, const gptq_buf *X, gptq_buf *Y, int64_t T,
                          const gptq_buf **out);

/* The whole pass: embed, every layer, head. nll_sum/nll_tok as
 * gptq_model_head_nll; logits (nseq*S, V) host f32 when not NULL. */
int gptq_model_forward(gptq_model *m, const int32_t *ids, int64_t nseq, int64_t S,
                       double *nll_sum, double *nll_tok, float *logits);

/* Generation with a KV cache (one sequence). kv_begin uploads every
 * layer's weights (dequantized when GPTQ, or kept packed for the fast A16
 * matmul: gptq_model_kv_set_linears), the embedding tables and the
 * head, and keeps them with a key and a value cache of cap positions per
 * layer until kv_end (or close); it needs the backend's attention_kv
 * (GPTQ_ERR_UNSUPPORTED naming the backend otherwise). kv_forward runs T
 * tokens ids at positions kv_len .. kv_len + T - 1 (all at once: a prompt;
 * or one: a decoding step) through every layer, their keys and values
 * joining the cache, and writes the logits (nlast, V) host f32 of the last
 * nlast of them (0: none). Row t of it equals row kv_len + t of a
 * gptq_model_forward over every token so far up to the rounding of the
 * matrix products' shapes. kv_reset empties the cache (a new sequence); so does kv_begin on a
 * model whose weights are already kept, growing the cache to cap when it
 * is smaller. */
int gptq_model_kv_begin(gptq_model *m, int64_t cap);
/* How kv_begin keeps the GPTQ-packed linears (gptq.h, gptq_linears):
 * set before the first kv_begin, which applies it (GPTQ_LINEARS_FAST on a
 * backend without matmul_q_fast, or on a model without a packed linear:
 * GPTQ_ERR_UNSUPPORTED). Forward passes outside generation always
 * dequantize to f32. */
void gptq_model_kv_set_linears(gptq_model *m, gptq_linears linears);
/* Whether kv_begin joins the fast linears of a true-sequential group (q, k,
 * v; gate, up: one input) into one packed tensor, one matmul_q_fast for
 * the group (default 1; set before the first kv_begin). Column n of a
 * linear is the joined tensor's column col + n with the same weights;
 * what the backend's kernel sums in which order may follow the tensor's
 * width (backend.h's bound holds either way). Linears whose bits, groups
 * or g_idx differ stay apart. */
void gptq_model_kv_set_join(gptq_model *m, int join);
/* What kv_begin kept (zeros before it): linears by path, the code path
 * the last matmul_q_fast named (NULL: none ran), the weights' and the KV
 * caches' bytes on the backend. */
void gptq_model_kv_stats(const gptq_model *m, int64_t *fast_linears, int64_t *f32_linears,
                         const char **fast_impl, int64_t *weight_bytes, int64_t *kv_bytes);
/* Of kv_stats' fast linears, how many run joined with others. */
int64_t gptq_model_kv_joined(const gptq_model *m);
int gptq_model_kv_forward(gptq_model *m, const int32_t *ids, int64_t T, int64_t nlast,
                          float *logits);
int64_t gptq_model_kv_len(const gptq_model *m);
void gptq_model_kv_reset(gptq_model *m);
void gptq_model_kv_end(gptq_model *m);

#endif /* GPTQ_MODEL_H */
