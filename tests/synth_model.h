/*
 * synth_model.h — small synthetic model folders for the quantization tests
 * (test_checkpoint.c, test_quantize.c): random weights from a fixed LCG,
 * written with gptq_st_save, configs in the transformers layout.
 *
 *   Llama: D 64, 4 heads of 16, 2 KV heads, F 128, 2 layers, V 96, F32,
 *          untied lm_head, transformers-4 style config (rope_theta 10000.0).
 *   OPT:   D 64, 4 heads, ffn 128, 2 layers, V 96, F16, biases everywhere,
 *          tied embeddings, transformers-5 style config ("dtype").
 *   Qwen3: D 64, 4 heads of head_dim 32 (not D / heads), 2 KV heads, F 128,
 *          2 layers, V 512 (stories-260k's tokenizer fits), F32, q_norm and
 *          k_norm (32) in every layer with weights far from 1 (so that a norm
 *          applied after RoPE instead of before shows), tied embeddings,
 *          transformers-5 style config (rope_parameters, theta 1e6).
 *   Phi-3: D 64, 4 heads of 16, 2 KV heads, F 128, 2 layers, V 512, F32,
 *          fused self_attn.qkv_proj (128, 64) and mlp.gate_up_proj (256, 64),
 *          partial_rotary_factor 0.5 (8 of 16 dims rotate), longrope (4
 *          short and 4 long factors, original 64 of max_position 256),
 *          tied embeddings, transformers-4 style config.
 * Every linear has in and out features that are multiples of 32, so 2, 3,
 * 4 and 8 bits all pack, and 64 columns make two groups of 32.
 *
 * `mutate` (may be NULL) sees each tensor as f32 before it is stored, so a
 * test can shape a weight (e.g. a group whose zero point must be 0).
 *
 * Below the builders: what the family tests (test_qwen3.c, test_phi3.c,
 * test_gemma.c, test_model.c, test_rope.c) share to check a config and a
 * forward: a config parsed from text, a tensor read as f32, our logits of a
 * folder, and the double-precision pieces of their plain-C references.
 */
#ifndef GPTQ_TEST_SYNTH_MODEL_H
#define GPTQ_TEST_SYNTH_MODEL_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gptq.h"
#include "internal.h" /* gptq_error */
#include "io/io.h"
#include "model/model.h"

#define SYN_D 64
#define SYN_F 128
#define SYN_V 96
#define SYN_LAYERS 2
#define SYN_MAXPOS 128
/* the family argument of syn_write_model / syn_model_dir */
#define SYN_LLAMA 0
#define SYN_OPT 1
#define SYN_QWEN3 2
#define SYN_QWEN3_V 512
#define SYN_QWEN3_HD 32
#define SYN_PHI3 3
#define SYN_PHI3_V 512

static const char *const k_syn_phi3_config =
    "{\n"
    "  \"architectures\": [\"Phi3ForCausalLM\"],\n"
    "  \"hidden_act\": \"silu\",\n"
    "  \"hidden_size\": 64,\n"
    "  \"intermediate_size\": 128,\n"
    "  \"max_position_embeddings\": 256,\n"
    "  \"model_type\": \"phi3\",\n"
    "  \"num_attention_heads\": 4,\n"
    "  \"num_hidden_layers\": 2,\n"
    "  \"num_key_value_heads\": 2,\n"
    "  \"original_max_position_embeddings\": 64,\n"
    "  \"partial_rotary_factor\": 0.5,\n"
    "  \"rms_norm_eps\": 1e-05,\n"
    "  \"rope_scaling\": {\"long_factor\": [1.5, 3.0, 6.0, 12.0],\n"
    "                   \"short_factor\": [1.0, 1.25, 2.0, 3.5], \"type\": \"longrope\"},\n"
    "  \"rope_theta\": 10000.0,\n"
    "  \"sliding_window\": null,\n"
    "  \"tie_word_embeddings\": true,\n"
    "  \"vocab_size\": 512,\n"
    "  \"torch_dtype\": \"float32\"\n"
    "}\n";

static const char *const k_syn_llama_config =
    "{\n"
    "  \"architectures\": [\"LlamaForCausalLM\"],\n"
    "  \"hidden_size\": 64,\n"
    "  \"intermediate_size\": 128,\n"
    "  \"num_hidden_layers\": 2,\n"
    "  \"num_attention_heads\": 4,\n"
    "  \"num_key_value_heads\": 2,\n"
    "  \"max_position_embeddings\": 128,\n"
    "  \"vocab_size\": 96,\n"
    "  \"rms_norm_eps\": 1e-05,\n"
    "  \"rope_theta\": 10000.0,\n"
    "  \"tie_word_embeddings\": false,\n"
    "  \"model_type\": \"llama\",\n"
    "  \"torch_dtype\": \"float32\"\n"
    "}\n";

static const char *const k_syn_opt_config =
    "{\n"
    "  \"architectures\": [\"OPTForCausalLM\"],\n"
    "  \"hidden_size\": 64,\n"
    "  \"ffn_dim\": 128,\n"
    "  \"num_hidden_layers\": 2,\n"
    "  \"num_attention_heads\": 4,\n"
    "  \"max_position_embeddings\": 128,\n"
    "  \"vocab_size\": 96,\n"
    "  \"word_embed_proj_dim\": 64,\n"
    "  \"do_layer_norm_before\": true,\n"
    "  \"activation_function\": \"relu\",\n"
    "  \"enable_bias\": true,\n"
    "  \"tie_word_embeddings\": true,\n"
    "  \"model_type\": \"opt\",\n"
    "  \"dtype\": \"float16\"\n"
    "}\n";

static const char *const k_syn_qwen3_config =
    "{\n"
    "  \"architectures\": [\"Qwen3ForCausalLM\"],\n"
    "  \"attention_bias\": false,\n"
    "  \"head_dim\": 32,\n"
    "  \"hidden_act\": \"silu\",\n"
    "  \"hidden_size\": 64,\n"
    "  \"intermediate_size\": 128,\n"
    "  \"max_position_embeddings\": 128,\n"
    "  \"max_window_layers\": 2,\n"
    "  \"model_type\": \"qwen3\",\n"
    "  \"num_attention_heads\": 4,\n"
    "  \"num_hidden_layers\": 2,\n"
    "  \"num_key_value_heads\": 2,\n"
    "  \"rms_norm_eps\": 1e-06,\n"
    "  \"rope_parameters\": {\"rope_theta\": 1000000.0, \"rope_type\": \"default\"},\n"
    "  \"sliding_window\": null,\n"
    "  \"tie_word_embeddings\": true,\n"
    "  \"use_sliding_window\": false,\n"
    "  \"vocab_size\": 512,\n"
    "  \"dtype\": \"float32\"\n"
    "}\n";

typedef void (*syn_mutate_fn)(const char *name, int64_t rows, int64_t cols, float *data);

static inline uint32_t syn_lcg(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

/* roughly N(0, scale^2): the sum of 4 uniforms */
static inline float syn_randn(uint32_t *s, float scale)
{
    float a = 0.0f;
    for (int i = 0; i < 4; i++) a += (float)syn_lcg(s) / 16777216.0f - 0.5f;
    return a * 1.7320508f * scale;
}

static inline int syn_write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

/* Write the folder of `family` (SYN_LLAMA, SYN_OPT, SYN_QWEN3, SYN_PHI3); returns
 * GPTQ_OK or the failing status. */
static inline int syn_write_model(const char *dir, int family, syn_mutate_fn mutate)
{
    const int opt = family == SYN_OPT, qwen3 = family == SYN_QWEN3, phi3 = family == SYN_PHI3;
    char path[1024];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (syn_write_text(path, opt     ? k_syn_opt_config
                             : qwen3 ? k_syn_qwen3_config
                             : phi3  ? k_syn_phi3_config
                                     : k_syn_llama_config))
        return GPTQ_ERR_IO;
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    if (syn_write_text(path, "{\"bos_token_id\": 1}\n")) return GPTQ_ERR_IO;

    enum { MAXT = 64 };
    char names[MAXT][96];
    int64_t shapes[MAXT][2];
    int isnorm[MAXT];
    int n = 0;
#define ADD(nm, r, c, norm)                                        \
    do {                                                           \
        snprintf(names[n], sizeof names[n], "%s", nm);             \
        shapes[n][0] = (r);                                        \
        shapes[n][1] = (c);                                        \
        isnorm[n] = (norm);                                        \
        n++;                                                       \
    } while (0)
    char nm[96];
    const int64_t D = SYN_D, F = SYN_F, V = qwen3 ? SYN_QWEN3_V : phi3 ? SYN_PHI3_V : SYN_V;
    /* query and key/value widths: 4 and 2 heads of 16 (Llama), of 32 (Qwen3) */
    const int64_t hd = qwen3 ? SYN_QWEN3_HD : 16, HD = 4 * hd, KV = 2 * hd;
    if (!opt) {
        ADD("model.embed_tokens.weight", V, D, 0);
        for (int L = 0; L < SYN_LAYERS; L++) {
            const char *lin[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                 "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                 "mlp.down_proj"};
            const int64_t rc[][2] = {{HD, D}, {KV, D}, {KV, D}, {D, HD}, {F, D}, {F, D}, {D, F}};
            /* Phi-3: the fused [q | k | v] and [gate | up] */
            const char *lin3[] = {"self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj",
                                  "mlp.down_proj"};
            const int64_t rc3[][2] = {{HD + 2 * KV, D}, {D, HD}, {2 * F, D}, {D, F}};
            snprintf(nm, sizeof nm, "model.layers.%d.input_layernorm.weight", L);
            ADD(nm, D, 0, 1);
            for (int i = 0; phi3 && i < 4; i++) {
                snprintf(nm, sizeof nm, "model.layers.%d.%s.weight", L, lin3[i]);
                ADD(nm, rc3[i][0], rc3[i][1], 0);
            }
            for (int i = 0; !phi3 && i < 7; i++) {
                snprintf(nm, sizeof nm, "model.layers.%d.%s.weight", L, lin[i]);
                ADD(nm, rc[i][0], rc[i][1], 0);
            }
            snprintf(nm, sizeof nm, "model.layers.%d.post_attention_layernorm.weight", L);
            ADD(nm, D, 0, 1);
            if (qwen3) {
                snprintf(nm, sizeof nm, "model.layers.%d.self_attn.q_norm.weight", L);
                ADD(nm, hd, 0, 3);
                snprintf(nm, sizeof nm, "model.layers.%d.self_attn.k_norm.weight", L);
                ADD(nm, hd, 0, 3);
            }
        }
        ADD("model.norm.weight", D, 0, 1);
        if (!qwen3 && !phi3) ADD("lm_head.weight", V, D, 0);
    } else {
        ADD("model.decoder.embed_tokens.weight", V, D, 0);
        ADD("model.decoder.embed_positions.weight", SYN_MAXPOS + 2, D, 0);
        for (int L = 0; L < SYN_LAYERS; L++) {
            const char *lin[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                 "self_attn.out_proj", "fc1", "fc2"};
            const int64_t rc[][2] = {{D, D}, {D, D}, {D, D}, {D, D}, {F, D}, {D, F}};
            for (int i = 0; i < 6; i++) {
                snprintf(nm, sizeof nm, "model.decoder.layers.%d.%s.weight", L, lin[i]);
                ADD(nm, rc[i][0], rc[i][1], 0);
                snprintf(nm, sizeof nm, "model.decoder.layers.%d.%s.bias", L, lin[i]);
                ADD(nm, rc[i][0], 0, 2);
            }
            const char *norms[] = {"self_attn_layer_norm", "final_layer_norm"};
            for (int k = 0; k < 2; k++) {
                snprintf(nm, sizeof nm, "model.decoder.layers.%d.%s.weight", L, norms[k]);
                ADD(nm, D, 0, 1);
                snprintf(nm, sizeof nm, "model.decoder.layers.%d.%s.bias", L, norms[k]);
                ADD(nm, D, 0, 2);
            }
        }
        ADD("model.decoder.final_layer_norm.weight", D, 0, 1);
        ADD("model.decoder.final_layer_norm.bias", D, 0, 2);
    }
#undef ADD
    gptq_tensor t[MAXT];
    const char *tn[MAXT];
    memset(t, 0, sizeof t);
    uint32_t seed = opt ? 777u : qwen3 ? 3303u : phi3 ? 3141u : 4242u;
    int st = GPTQ_OK;
    for (int i = 0; i < n && !st; i++) {
        const int nd = shapes[i][1] ? 2 : 1;
        const int64_t numel = shapes[i][0] * (nd == 2 ? shapes[i][1] : 1);
        float *f = malloc((size_t)numel * sizeof(float));
        if (!f) return GPTQ_ERR_NOMEM;
        for (int64_t j = 0; j < numel; j++)
            f[j] = isnorm[i] == 1   ? 1.0f + syn_randn(&seed, 0.05f)
                   : isnorm[i] == 2 ? syn_randn(&seed, 0.02f)
                   : isnorm[i] == 3 ? 1.0f + syn_randn(&seed, 0.4f)
                                    : syn_randn(&seed, 0.125f);
        if (mutate) mutate(names[i], shapes[i][0], nd == 2 ? shapes[i][1] : 1, f);
        st = gptq_tensor_alloc(&t[i], opt ? GPTQ_F16 : GPTQ_F32, nd, shapes[i]);
        if (!st) {
            if (opt)
                for (int64_t j = 0; j < numel; j++)
                    ((uint16_t *)t[i].data)[j] = gptq_f32_to_f16(f[j]);
            else
                memcpy(t[i].data, f, (size_t)numel * sizeof(float));
        }
        free(f);
        tn[i] = names[i];
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!st) st = gptq_st_save(path, n, tn, t);
    for (int i = 0; i < n; i++) gptq_tensor_free(&t[i]);
    return st;
}

/* A fresh temporary folder root (256 chars) with the synthetic model written
 * to root/model (300 chars); out (300 chars, or NULL) is set to root/out,
 * not created. GPTQ_OK or the failing step's status. */
static inline int syn_model_dir(char *root, char *model, char *out, int family,
                                syn_mutate_fn mutate)
{
    snprintf(root, 256, "/tmp/gptq_test_syn_XXXXXX");
    if (!mkdtemp(root)) return gptq_error(GPTQ_ERR_IO, "mkdtemp %s failed", root);
    snprintf(model, 300, "%s/model", root);
    if (out) snprintf(out, 300, "%s/out", root);
    if (mkdir(model, 0755) != 0) return gptq_error(GPTQ_ERR_IO, "mkdir %s failed", model);
    return syn_write_model(model, family, mutate);
}

/* ------------------------------------------------------------------ */
/* checks of a config and a forward                                    */
/* ------------------------------------------------------------------ */

/* c from the config.json text json: gptq_model_config_parse's status (the
 * text itself must be JSON). */
static inline int syn_parse(const char *json, gptq_model_config *c)
{
    cJSON *root = NULL;
    int st = gptq_json_parse(json, strlen(json), "config.json", &root);
    cr_assert_eq(st, GPTQ_OK, "test JSON does not parse: %s", gptq_last_error());
    st = gptq_model_config_parse(root, "config.json", c);
    cJSON_Delete(root);
    return st;
}

/* Tensor `name` of w as f32 (r, c), or (r) when c is 0; free() it. */
static inline float *syn_read_f32(gptq_weights *w, const char *name, int64_t r, int64_t c)
{
    const int64_t shape[2] = {r, c};
    float *p = malloc((size_t)(r * (c ? c : 1)) * sizeof(float));
    cr_assert(p);
    cr_assert_eq(gptq_weights_read_f32(w, name, c ? 2 : 1, shape, p), GPTQ_OK, "%s",
                 gptq_last_error());
    return p;
}

/* Tensor "model.layers.<L>.<name>" of w, as syn_read_f32. */
static inline float *syn_read_layer_f32(gptq_weights *w, int L, const char *name, int64_t r,
                                        int64_t c)
{
    char n[256];
    snprintf(n, sizeof n, "model.layers.%d.%s", L, name);
    return syn_read_f32(w, n, r, c);
}

/* Our logits (nseq * S, V) of the model folder dir on ids (nseq, S), on
 * the CPU backend; free() them. arch: the family dir must open as (NULL:
 * any); *V (may be NULL) gets the vocabulary size. */
static inline float *syn_logits(const char *dir, const gptq_arch *arch, const int32_t *ids,
                                int64_t nseq, int64_t S, int64_t *V)
{
    gptq_backend *be = NULL;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK, "%s", gptq_last_error());
    gptq_model *m = NULL;
    cr_assert_eq(gptq_model_open(dir, be, &m), GPTQ_OK, "%s: %s", dir, gptq_last_error());
    const gptq_model_config *c = gptq_model_config_of(m);
    if (arch) cr_assert_eq(c->arch, arch, "%s opened as %s", dir, c->architecture);
    if (V) *V = c->vocab_size;
    float *lg = malloc((size_t)(nseq * S * c->vocab_size) * sizeof *lg);
    cr_assert(lg);
    cr_assert_eq(gptq_model_forward(m, ids, nseq, S, NULL, NULL, lg), GPTQ_OK, "%s",
                 gptq_last_error());
    gptq_model_close(m);
    gptq_backend_close(be);
    return lg;
}

/* The plain-C references compute in double. */

/* y (n) = RMSNorm(x) * w with eps, in place allowed */
static inline void syn_ref_rms(const double *x, const float *w, int n, double eps, double *y)
{
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    const double r = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++) y[i] = (double)w[i] * (x[i] * r);
}

/* y (rows) = W (rows, cols) x */
static inline void syn_ref_lin(const float *W, const double *x, int rows, int cols, double *y)
{
    for (int r = 0; r < rows; r++) {
        double s = 0.0;
        for (int c = 0; c < cols; c++) s += (double)W[r * cols + c] * x[c];
        y[r] = s;
    }
}

/* One query head's softmax attention over key rows t0 .. t (causal, a
 * window already applied to t0), scale 1/sqrt(d): q (d); k and v the head's
 * vector of row 0, rows `stride` doubles apart; sc (t - t0 + 1) scratch;
 * out (d). */
static inline void syn_ref_attend(const double *q, const double *k, const double *v,
                                  int stride, int t0, int t, int d, double *sc, double *out)
{
    double mx = -INFINITY, z = 0.0;
    for (int j = t0; j <= t; j++) {
        double s = 0.0;
        for (int i = 0; i < d; i++) s += q[i] * k[j * stride + i];
        sc[j - t0] = s / sqrt((double)d);
        if (sc[j - t0] > mx) mx = sc[j - t0];
    }
    for (int j = t0; j <= t; j++) z += sc[j - t0] = exp(sc[j - t0] - mx);
    for (int i = 0; i < d; i++) {
        double s = 0.0;
        for (int j = t0; j <= t; j++) s += sc[j - t0] * v[j * stride + i];
        out[i] = s / z;
    }
}

/* max |ours - ref| over n logits, every one of ours finite */
static inline double syn_max_abs_diff(const float *ours, const double *ref, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        cr_assert(isfinite(ours[i]), "logit %zu is %g", i, (double)ours[i]);
        m = fmax(m, fabs((double)ours[i] - ref[i]));
    }
    return m;
}

#endif /* GPTQ_TEST_SYNTH_MODEL_H */
