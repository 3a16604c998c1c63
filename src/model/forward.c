/*
 * forward.c — the forward pass of a Hugging Face causal LM (model.h says
 * which and how) on a backend, one decoder layer's weights at a time:
 * embed -> decoder layers -> final norm -> lm_head -> next-token NLL.
 *
 * The core decides (module order, tensor names, RoPE angles, which rows
 * predict what); the backend computes (gemm and the FORWARD OPS of
 * backend.h). Weights are read from the mmap'd safetensors, converted to
 * f32 (or dequantized from GPTQ tensors) one tensor at a time in a host
 * scratch buffer, uploaded, and the scratch reused.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../format/format.h"
#include "model.h"

/* Logit rows per chunk of the head: at most this many floats of logits. */
#define HEAD_CHUNK_FLOATS ((int64_t)1 << 24)

/* The linear modules of a decoder layer (model.h). */
typedef struct {
    const char *name;
    int group;
} lin_def;

static const lin_def k_llama_lin[] = {
    {"self_attn.q_proj", 0}, {"self_attn.k_proj", 0}, {"self_attn.v_proj", 0},
    {"self_attn.o_proj", 1}, {"mlp.gate_proj", 2},    {"mlp.up_proj", 2},
    {"mlp.down_proj", 3},
};
static const lin_def k_opt_lin[] = {
    {"self_attn.q_proj", 0}, {"self_attn.k_proj", 0}, {"self_attn.v_proj", 0},
    {"self_attn.out_proj", 1}, {"fc1", 2}, {"fc2", 3},
};
static const char *const k_llama_groups[] = {"qkv", "o", "gate_up", "down"};
static const char *const k_opt_groups[] = {"qkv", "out", "fc1", "fc2"};

enum { LQ = 0, LK = 1, LV = 2, LO = 3 }; /* both families */
enum { LGATE = 4, LUP = 5, LDOWN = 6 };  /* Llama */
enum { LFC1 = 4, LFC2 = 5 };             /* OPT */

struct gptq_model {
    gptq_model_config cfg;
    gptq_weights *w;
    gptq_backend *be;
    char dir[2048];
    char root[16];   /* "model." or "" (OPT checkpoints saved without it) */
    char layers[32]; /* "model.layers" or "model.decoder.layers" */
    int nlin;
    gptq_linear_info lin[GPTQ_MAX_LINEARS];
    const char *const *group_names;

    gptq_math math; /* of the Linears */

    /* the loaded decoder layer */
    int loaded; /* -1: none */
    gptq_buf *W[GPTQ_MAX_LINEARS], *B[GPTQ_MAX_LINEARS];
    gptq_buf *n1w, *n1b, *n2w, *n2b;

    /* work buffers for up to ws_T tokens */
    int64_t ws_T, ws_S;
    gptq_buf *xn, *q, *k, *v, *att, *tmp, *g, *u, *pos;
    int64_t cs_S;
    gptq_buf *cs; /* (cs_S, d) RoPE [cos | sin] table */

    /* host scratch for one tensor */
    float *host;
    size_t host_n;
};

/* ------------------------------------------------------------------ */
/* backend calls                                                       */
/* ------------------------------------------------------------------ */

static int missing_op(gptq_backend *be, const char *op)
{
    return gptq_error(GPTQ_ERR_UNSUPPORTED,
                      "backend %s has no '%s' op: it cannot run the model forward pass",
                      be->iface->name, op);
}

/* Call a forward op slot, or report that the backend lacks it. */
#define BE_OP(be, op, ...)                                                             \
    ((be)->iface->op ? gptq_be_check((be), (be)->iface->op((be)->ctx, __VA_ARGS__), #op) \
                     : missing_op((be), #op))

#define TRY(expr)            \
    do {                     \
        int st_ = (expr);    \
        if (st_) return st_; \
    } while (0)

/* Y (T, rows) = X (T, cols) W^T (+ bias), W (rows, cols). */
static int linear(gptq_model *m, const gptq_buf *X, int64_t T, int i, gptq_buf *Y)
{
    const gptq_linear_info *li = &m->lin[i];
    gptq_backend *be = m->be;
    if (T == 0) return GPTQ_OK;
    if (m->math == GPTQ_MATH_TF32 && gptq_be_supports(be, GPTQ_OP_LINEAR_FAST))
        TRY(gptq_be_check(be,
                          be->iface->linear_fast(be->ctx, T, li->rows, li->cols, X, 0, m->W[i], 0,
                                                 Y, 0),
                          "linear_fast"));
    else
        TRY(gptq_be_check(be,
                          be->iface->gemm(be->ctx, 0, 1, T, li->rows, li->cols, 1.0f, X, 0,
                                          li->cols, m->W[i], 0, li->cols, 0.0f, Y, 0, li->rows),
                          "gemm"));
    if (m->B[i]) TRY(BE_OP(be, bias_add, Y, 0, m->B[i], 0, T, li->rows));
    return GPTQ_OK;
}

void gptq_model_set_forward_math(gptq_model *m, gptq_math math) { m->math = math; }

static void free_buf(gptq_model *m, gptq_buf **b)
{
    gptq_be_free(m->be, *b);
    *b = NULL;
}

static float *host_scratch(gptq_model *m, size_t n)
{
    if (n > m->host_n) {
        float *p = realloc(m->host, n * sizeof(float));
        if (!p) {
            gptq_error(GPTQ_ERR_NOMEM, "out of host memory for a %.1f MiB tensor",
                       (double)n * 4.0 / 1048576.0);
            return NULL;
        }
        m->host = p;
        m->host_n = n;
    }
    return m->host;
}

/* Upload n floats from host into a new backend buffer. */
static int upload_new(gptq_model *m, const float *src, size_t n, const char *what, gptq_buf **out)
{
    TRY(gptq_be_alloc(m->be, n * sizeof(float), out, what));
    int st = gptq_be_upload(m->be, *out, 0, src, n * sizeof(float));
    if (st) free_buf(m, out);
    return st;
}

/* A floating-point tensor of the given shape -> new f32 backend buffer.
 * fp16/bf16 go over as they are and are widened by the backend (to_f32:
 * half the bytes to move, the same bits); f32, or a tensor the checks of
 * gptq_weights_read_f32 must refuse, goes through the host. */
static int upload_tensor(gptq_model *m, const char *name, int ndim, const int64_t *shape,
                         gptq_buf **out)
{
    size_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
    gptq_st_info info;
    int half = gptq_weights_find(m->w, name, &info) == GPTQ_OK &&
               (info.dtype == GPTQ_F16 || info.dtype == GPTQ_BF16) && info.ndim == ndim &&
               info.nbytes == n * 2;
    for (int d = 0; half && d < ndim; d++) half = info.shape[d] == shape[d];
    if (half) {
        gptq_buf *raw = NULL;
        int st = gptq_be_alloc(m->be, n * 2, &raw, name);
        if (!st) st = gptq_be_upload(m->be, raw, 0, info.data, n * 2);
        if (!st) st = gptq_be_alloc(m->be, n * sizeof(float), out, name);
        if (!st)
            st = gptq_be_check(m->be,
                               m->be->iface->to_f32(m->be->ctx, *out, 0, raw, (int64_t)n,
                                                    (int)info.dtype),
                               "to_f32");
        gptq_be_free(m->be, raw);
        if (st) free_buf(m, out);
        return st;
    }
    float *h = host_scratch(m, n);
    if (!h) return GPTQ_ERR_NOMEM;
    TRY(gptq_weights_read_f32(m->w, name, ndim, shape, h));
    return upload_new(m, h, n, name, out);
}

/* ------------------------------------------------------------------ */
/* GPTQ tensors -> f32                                                 */
/* ------------------------------------------------------------------ */

/* *W (rows, cols) f32, a new backend buffer = dequantized
 * P.qweight/qzeros/scales/g_idx, by the backend's dequantize (the same
 * bytes as gptq_dequantize on every backend; the packed tensors travel,
 * a quarter of the f32 weight at 8 bits, an eighth at 4). */
static int dequant_linear(gptq_model *m, const char *prefix, int64_t rows, int64_t cols,
                          gptq_buf **W)
{
    gptq_packed p = {0};
    int st = gptq_weights_read_packed(m->w, &m->cfg.quant, prefix, rows, cols, &p);
    if (st) return st;
    gptq_qdev qd;
    if ((st = gptq_qdev_upload(m->be, &p, m->cfg.quant.format, 1, &qd))) {
        st = gptq_error_prefix(st, "%s: %s", m->dir, prefix);
        goto done;
    }
    st = gptq_be_alloc(m->be, (size_t)(rows * cols) * sizeof(float), W, prefix);
    if (!st)
        st = gptq_be_check(m->be, m->be->iface->dequantize(m->be->ctx, &qd.t, *W, 0),
                           "dequantize");
    if (st) {
        gptq_error_prefix(st, "%s: %s", m->dir, prefix);
        free_buf(m, W);
    }
    gptq_qdev_free(m->be, &qd);
done:
    gptq_packed_free(&p);
    return st;
}

/* Linear `prefix` (W (rows, cols), bias (rows) when has_bias) -> backend. */
static int load_linear(gptq_model *m, const char *prefix, int64_t rows, int64_t cols,
                       int has_bias, gptq_buf **W, gptq_buf **B)
{
    char name[512];
    snprintf(name, sizeof name, "%s.qweight", prefix);
    if (gptq_weights_has(m->w, name)) {
        TRY(dequant_linear(m, prefix, rows, cols, W));
    } else {
        snprintf(name, sizeof name, "%s.weight", prefix);
        int64_t shape[2] = {rows, cols};
        TRY(upload_tensor(m, name, 2, shape, W));
    }
    if (has_bias) {
        snprintf(name, sizeof name, "%s.bias", prefix);
        TRY(upload_tensor(m, name, 1, &rows, B));
    }
    return GPTQ_OK;
}

/* ------------------------------------------------------------------ */
/* completeness                                                        */
/* ------------------------------------------------------------------ */

/* The tensors load_linear reads for `prefix`: a GPTQ module or a float
 * weight, and the bias when the config says there is one. */
static int check_linear_tensors(const gptq_model *m, const char *prefix, int64_t rows,
                                int64_t cols, int has_bias)
{
    char name[600];
    snprintf(name, sizeof name, "%s.qweight", prefix);
    if (gptq_weights_has(m->w, name)) {
        TRY(gptq_weights_check_packed(m->w, &m->cfg.quant, prefix, rows, cols));
    } else {
        snprintf(name, sizeof name, "%s.weight", prefix);
        const int64_t shape[2] = {rows, cols};
        TRY(gptq_weights_check_float(m->w, name, 2, shape));
    }
    if (has_bias) {
        snprintf(name, sizeof name, "%s.bias", prefix);
        TRY(gptq_weights_check_float(m->w, name, 1, &rows));
    }
    return GPTQ_OK;
}

/* The tensors load_norm reads for `name`. */
static int check_norm_tensors(const gptq_model *m, const char *name, int with_bias)
{
    char full[600];
    const int64_t D = m->cfg.hidden_size;
    if (m->cfg.family == GPTQ_FAMILY_OPT && !m->cfg.norm_bias) return GPTQ_OK;
    snprintf(full, sizeof full, "%s.weight", name);
    TRY(gptq_weights_check_float(m->w, full, 1, &D));
    if (with_bias) {
        snprintf(full, sizeof full, "%s.bias", name);
        TRY(gptq_weights_check_float(m->w, full, 1, &D));
    }
    return GPTQ_OK;
}

/* Every tensor that the forward pass (embed, layer_load, head_load) and a
 * checkpoint of the model read, with its shape and dtype, from the
 * headers alone; and no decoder layer beyond num_hidden_layers, which
 * nothing would read (a quantizer would copy it unquantized). */
static int check_complete(const gptq_model *m)
{
    const gptq_model_config *c = &m->cfg;
    const int opt = c->family == GPTQ_FAMILY_OPT;
    const int64_t V = c->vocab_size, D = c->hidden_size;
    char name[512];
    snprintf(name, sizeof name, "%s%sembed_tokens.weight", m->root, opt ? "decoder." : "");
    const int64_t emb[2] = {V, D};
    TRY(gptq_weights_check_float(m->w, name, 2, emb));
    if (opt) {
        snprintf(name, sizeof name, "%sdecoder.embed_positions.weight", m->root);
        const int64_t pos[2] = {c->max_positions + c->pos_offset, D};
        TRY(gptq_weights_check_float(m->w, name, 2, pos));
    }
    for (int L = 0; L < c->num_layers; L++) {
        int st = GPTQ_OK;
        for (int i = 0; i < m->nlin && !st; i++) {
            snprintf(name, sizeof name, "%s.%d.%s", m->layers, L, m->lin[i].name);
            st = check_linear_tensors(m, name, m->lin[i].rows, m->lin[i].cols,
                                      m->lin[i].has_bias);
        }
        if (!st) {
            snprintf(name, sizeof name, "%s.%d.%s", m->layers, L,
                     opt ? "self_attn_layer_norm" : "input_layernorm");
            st = check_norm_tensors(m, name, opt);
        }
        if (!st) {
            snprintf(name, sizeof name, "%s.%d.%s", m->layers, L,
                     opt ? "final_layer_norm" : "post_attention_layernorm");
            st = check_norm_tensors(m, name, opt);
        }
        if (st) return gptq_error_prefix(st, "layer %d", L);
    }
    if (c->final_norm) {
        snprintf(name, sizeof name, "%s%s", m->root, opt ? "decoder.final_layer_norm" : "norm");
        TRY(check_norm_tensors(m, name, opt));
    }
    if (!c->tie_word_embeddings) TRY(check_linear_tensors(m, "lm_head", V, D, 0));

    /* "<layers>.<N>." with N >= num_hidden_layers */
    const size_t k = strlen(m->layers);
    for (int i = 0; i < gptq_weights_count(m->w); i++) {
        gptq_st_info info;
        TRY(gptq_weights_get(m->w, i, &info));
        const char *p = info.name;
        if (strncmp(p, m->layers, k) != 0 || p[k] != '.' || p[k + 1] < '0' || p[k + 1] > '9')
            continue;
        char *end;
        const unsigned long long idx = strtoull(p + k + 1, &end, 10);
        if (*end == '.' && idx >= (unsigned long long)c->num_layers)
            return gptq_error(GPTQ_ERR_FORMAT,
                              "%s: tensor '%s' belongs to layer %llu, but config.json has "
                              "num_hidden_layers = %lld (layers 0 .. %lld): the config and the "
                              "weights disagree, and that layer would be left out of the forward "
                              "pass",
                              m->dir, p, idx, (long long)c->num_layers,
                              (long long)c->num_layers - 1);
    }
    return GPTQ_OK;
}

/* ------------------------------------------------------------------ */
/* open / close                                                        */
/* ------------------------------------------------------------------ */

int gptq_model_open(const char *dir, gptq_backend *be, gptq_model **out)
{
    *out = NULL;
    if (!be) return gptq_error(GPTQ_ERR_INVALID, "gptq_model_open: no backend");
    gptq_model *m = gptq_calloc(1, sizeof *m, "model");
    if (!m) return GPTQ_ERR_NOMEM;
    m->be = be;
    m->loaded = -1;
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    int st = gptq_model_config_load(dir, &m->cfg);
    if (!st) st = gptq_weights_open(dir, &m->w);
    if (st) {
        gptq_model_close(m);
        return st;
    }
    const gptq_model_config *c = &m->cfg;
    const lin_def *defs;
    if (c->family == GPTQ_FAMILY_OPT) {
        defs = k_opt_lin;
        m->nlin = (int)(sizeof k_opt_lin / sizeof *k_opt_lin);
        m->group_names = k_opt_groups;
        /* Some OPT checkpoints were saved from OPTModel: names without "model." */
        snprintf(m->root, sizeof m->root, "%s",
                 !gptq_weights_has(m->w, "model.decoder.embed_tokens.weight") &&
                         gptq_weights_has(m->w, "decoder.embed_tokens.weight")
                     ? ""
                     : "model.");
        snprintf(m->layers, sizeof m->layers, "%sdecoder.layers", m->root);
    } else {
        defs = k_llama_lin;
        m->nlin = (int)(sizeof k_llama_lin / sizeof *k_llama_lin);
        m->group_names = k_llama_groups;
        snprintf(m->root, sizeof m->root, "model.");
        snprintf(m->layers, sizeof m->layers, "model.layers");
    }
    const int64_t D = c->hidden_size, F = c->intermediate_size;
    const int64_t Hd = c->num_heads * c->head_dim, Kd = c->num_kv_heads * c->head_dim;
    for (int i = 0; i < m->nlin; i++) {
        gptq_linear_info *li = &m->lin[i];
        li->name = defs[i].name;
        li->group = defs[i].group;
        switch (i) {
        case LQ: li->rows = Hd; li->cols = D; li->has_bias = c->qkv_bias; break;
        case LK:
        case LV: li->rows = Kd; li->cols = D; li->has_bias = c->qkv_bias; break;
        case LO: li->rows = D; li->cols = Hd; li->has_bias = c->o_bias; break;
        default:
            if (c->family == GPTQ_FAMILY_OPT) {
                li->rows = i == LFC1 ? F : D;
                li->cols = i == LFC1 ? D : F;
            } else {
                li->rows = i == LDOWN ? D : F;
                li->cols = i == LDOWN ? F : D;
            }
            li->has_bias = c->mlp_bias;
        }
    }
    /* Fail now, not after minutes of work (or with a checkpoint that only
     * fails when it is used), if anything the forward needs is absent. */
    st = check_complete(m);
    if (st) {
        gptq_model_close(m);
        return st;
    }
    *out = m;
    return GPTQ_OK;
}

static void free_workspace(gptq_model *m)
{
    gptq_buf **bs[] = {&m->xn, &m->q, &m->k, &m->v, &m->att, &m->tmp, &m->g, &m->u, &m->pos, &m->cs};
    for (size_t i = 0; i < sizeof bs / sizeof *bs; i++) free_buf(m, bs[i]);
    m->ws_T = m->ws_S = m->cs_S = 0;
}

void gptq_model_layer_unload(gptq_model *m)
{
    if (!m) return;
    for (int i = 0; i < GPTQ_MAX_LINEARS; i++) {
        free_buf(m, &m->W[i]);
        free_buf(m, &m->B[i]);
    }
    free_buf(m, &m->n1w);
    free_buf(m, &m->n1b);
    free_buf(m, &m->n2w);
    free_buf(m, &m->n2b);
    m->loaded = -1;
    free_workspace(m);
}

void gptq_model_close(gptq_model *m)
{
    if (!m) return;
    if (m->be) gptq_model_layer_unload(m);
    gptq_weights_close(m->w);
    free(m->host);
    free(m);
}

const gptq_model_config *gptq_model_config_of(const gptq_model *m) { return &m->cfg; }
gptq_weights *gptq_model_weights(gptq_model *m) { return m->w; }
gptq_backend *gptq_model_backend(gptq_model *m) { return m->be; }
int gptq_model_nlinear(const gptq_model *m) { return m->nlin; }
int gptq_model_ngroups(const gptq_model *m) { return m->lin[m->nlin - 1].group + 1; }

const gptq_linear_info *gptq_model_linear(const gptq_model *m, int i)
{
    return i >= 0 && i < m->nlin ? &m->lin[i] : NULL;
}

int gptq_model_linear_prefix(const gptq_model *m, int L, int i, char *buf, size_t size)
{
    if (L < 0 || L >= m->cfg.num_layers || i < 0 || i >= m->nlin)
        return gptq_error(GPTQ_ERR_INVALID, "linear %d of layer %d does not exist (%d x %lld)", i,
                          L, m->nlin, (long long)m->cfg.num_layers);
    int k = snprintf(buf, size, "%s.%d.%s", m->layers, L, m->lin[i].name);
    if (k < 0 || (size_t)k >= size)
        return gptq_error(GPTQ_ERR_INVALID, "tensor prefix buffer too small");
    return GPTQ_OK;
}

int gptq_model_alloc_hidden(gptq_model *m, int64_t nseq, int64_t S, gptq_buf **out)
{
    if (nseq <= 0 || S <= 0) return gptq_error(GPTQ_ERR_INVALID, "empty batch (%lld x %lld)",
                                               (long long)nseq, (long long)S);
    return gptq_be_alloc(m->be, (size_t)(nseq * S * m->cfg.hidden_size) * sizeof(float), out,
                         "hidden states");
}

/* ------------------------------------------------------------------ */
/* embedding                                                           */
/* ------------------------------------------------------------------ */

static int check_batch(const gptq_model *m, int64_t nseq, int64_t S)
{
    const gptq_model_config *c = &m->cfg;
    if (nseq <= 0 || S <= 0)
        return gptq_error(GPTQ_ERR_INVALID, "empty batch (%lld sequences of %lld tokens)",
                          (long long)nseq, (long long)S);
    if (c->family == GPTQ_FAMILY_OPT && S > c->max_positions)
        return gptq_error(GPTQ_ERR_INVALID,
                          "%s: sequences of %lld tokens exceed OPT's %lld learned positions "
                          "(max_position_embeddings)",
                          m->dir, (long long)S, (long long)c->max_positions);
    if (c->sliding_window > 0 && S > c->sliding_window)
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: sequences of %lld tokens exceed the sliding window of %lld, which "
                          "is not implemented",
                          m->dir, (long long)S, (long long)c->sliding_window);
    return GPTQ_OK;
}

/* Upload ids (T) host i32 into a new backend buffer. */
static int upload_ids(gptq_model *m, const int32_t *ids, int64_t T, gptq_buf **out)
{
    TRY(gptq_be_alloc(m->be, (size_t)T * sizeof(int32_t), out, "token ids"));
    int st = gptq_be_upload(m->be, *out, 0, ids, (size_t)T * sizeof(int32_t));
    if (st) free_buf(m, out);
    return st;
}

int gptq_model_embed(gptq_model *m, const int32_t *ids, int64_t nseq, int64_t S, gptq_buf *X)
{
    TRY(check_batch(m, nseq, S));
    const gptq_model_config *c = &m->cfg;
    const int64_t T = nseq * S, V = c->vocab_size, D = c->hidden_size;
    for (int64_t t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= V)
            return gptq_error(GPTQ_ERR_INVALID, "token id %d at %lld is outside the vocabulary [0, %lld)",
                              ids[t], (long long)t, (long long)V);
    char name[256];
    gptq_buf *E = NULL, *idb = NULL, *P = NULL;
    int64_t shape[2] = {V, D};
    snprintf(name, sizeof name, "%s%sembed_tokens.weight", m->root,
             c->family == GPTQ_FAMILY_OPT ? "decoder." : "");
    int st = upload_tensor(m, name, 2, shape, &E);
    if (!st) st = upload_ids(m, ids, T, &idb);
    if (!st) st = BE_OP(m->be, embedding, idb, 0, T, E, 0, V, D, X, 0, 0);
    if (!st && c->family == GPTQ_FAMILY_OPT) {
        /* learned positions: row position + 2 of embed_positions */
        free_buf(m, &E);
        int32_t *pos = gptq_malloc((size_t)T * sizeof(int32_t), "positions");
        if (!pos) st = GPTQ_ERR_NOMEM;
        for (int64_t t = 0; !st && t < T; t++) pos[t] = (int32_t)(t % S + c->pos_offset);
        if (!st) {
            free_buf(m, &idb);
            st = upload_ids(m, pos, T, &idb);
        }
        free(pos);
        int64_t pshape[2] = {c->max_positions + c->pos_offset, D};
        snprintf(name, sizeof name, "%sdecoder.embed_positions.weight", m->root);
        if (!st) st = upload_tensor(m, name, 2, pshape, &P);
        if (!st) st = BE_OP(m->be, embedding, idb, 0, T, P, 0, pshape[0], D, X, 0, 1);
    }
    free_buf(m, &E);
    free_buf(m, &P);
    free_buf(m, &idb);
    return st;
}

/* ------------------------------------------------------------------ */
/* decoder layers                                                      */
/* ------------------------------------------------------------------ */

static int load_norm(gptq_model *m, const char *name, int with_bias, gptq_buf **w, gptq_buf **b)
{
    char full[512];
    int64_t D = m->cfg.hidden_size;
    if (m->cfg.family == GPTQ_FAMILY_OPT && !m->cfg.norm_bias) return GPTQ_OK;
    snprintf(full, sizeof full, "%s.weight", name);
    TRY(upload_tensor(m, full, 1, &D, w));
    if (with_bias) {
        snprintf(full, sizeof full, "%s.bias", name);
        TRY(upload_tensor(m, full, 1, &D, b));
    }
    return GPTQ_OK;
}

int gptq_model_layer_load(gptq_model *m, int L)
{
    if (L < 0 || L >= m->cfg.num_layers)
        return gptq_error(GPTQ_ERR_INVALID, "%s: layer %d does not exist (%lld layers)", m->dir, L,
                          (long long)m->cfg.num_layers);
    /* free the previous layer's weights, keep the work buffers */
    for (int i = 0; i < GPTQ_MAX_LINEARS; i++) {
        free_buf(m, &m->W[i]);
        free_buf(m, &m->B[i]);
    }
    free_buf(m, &m->n1w);
    free_buf(m, &m->n1b);
    free_buf(m, &m->n2w);
    free_buf(m, &m->n2b);
    m->loaded = -1;

    char prefix[512], norm[512];
    int st = GPTQ_OK;
    for (int i = 0; i < m->nlin && !st; i++) {
        snprintf(prefix, sizeof prefix, "%s.%d.%s", m->layers, L, m->lin[i].name);
        st = load_linear(m, prefix, m->lin[i].rows, m->lin[i].cols, m->lin[i].has_bias, &m->W[i],
                         &m->B[i]);
    }
    const int opt = m->cfg.family == GPTQ_FAMILY_OPT;
    if (!st) {
        snprintf(norm, sizeof norm, "%s.%d.%s", m->layers, L,
                 opt ? "self_attn_layer_norm" : "input_layernorm");
        st = load_norm(m, norm, opt, &m->n1w, &m->n1b);
    }
    if (!st) {
        snprintf(norm, sizeof norm, "%s.%d.%s", m->layers, L,
                 opt ? "final_layer_norm" : "post_attention_layernorm");
        st = load_norm(m, norm, opt, &m->n2w, &m->n2b);
    }
    if (st) {
        gptq_error_prefix(st, "loading layer %d", L);
        gptq_model_layer_unload(m);
        return st;
    }
    m->loaded = L;
    return GPTQ_OK;
}

static int check_linear(const gptq_model *m, int L, int i)
{
    if (m->loaded != L || L < 0)
        return gptq_error(GPTQ_ERR_INVALID, "layer %d is not loaded (loaded: %d)", L, m->loaded);
    if (i < 0 || i >= m->nlin)
        return gptq_error(GPTQ_ERR_INVALID, "linear %d does not exist (%d per layer)", i, m->nlin);
    return GPTQ_OK;
}

int gptq_model_linear_get(gptq_model *m, int L, int i, float *W)
{
    TRY(check_linear(m, L, i));
    return gptq_be_download(m->be, m->W[i], 0, W,
                            (size_t)(m->lin[i].rows * m->lin[i].cols) * sizeof(float));
}

int gptq_model_linear_set(gptq_model *m, int L, int i, const float *W)
{
    TRY(check_linear(m, L, i));
    return gptq_be_upload(m->be, m->W[i], 0, W,
                          (size_t)(m->lin[i].rows * m->lin[i].cols) * sizeof(float));
}

int gptq_model_linear_buf(gptq_model *m, int L, int i, gptq_buf **W)
{
    *W = NULL;
    TRY(check_linear(m, L, i));
    *W = m->W[i];
    return GPTQ_OK;
}

/* RoPE table CS (S, d) = [cos | sin] of position p times inv_freq_i, the
 * angles rounded as transformers rounds them: inv_freq_i = 1 / theta^(2i/d)
 * in f32, angle = f32(p * inv_freq_i). */
static int ensure_rope(gptq_model *m, int64_t S)
{
    if (m->cs && m->cs_S == S) return GPTQ_OK;
    free_buf(m, &m->cs);
    const int64_t d = m->cfg.head_dim, half = d / 2;
    float *tab = gptq_malloc((size_t)(S * d) * sizeof(float), "rope table");
    if (!tab) return GPTQ_ERR_NOMEM;
    const float theta = (float)m->cfg.rope_theta;
    for (int64_t i = 0; i < half; i++) {
        float inv = 1.0f / powf(theta, (float)(2 * i) / (float)d);
        for (int64_t p = 0; p < S; p++) {
            float ang = (float)p * inv;
            tab[p * d + i] = (float)cos((double)ang);
            tab[p * d + half + i] = (float)sin((double)ang);
        }
    }
    int st = upload_new(m, tab, (size_t)(S * d), "rope table", &m->cs);
    free(tab);
    if (!st) m->cs_S = S;
    return st;
}

/* Work buffers for T = nseq * S tokens, and the positions t % S. */
static int ensure_workspace(gptq_model *m, int64_t nseq, int64_t S)
{
    const int64_t T = nseq * S;
    const gptq_model_config *c = &m->cfg;
    if (T > m->ws_T) {
        gptq_buf *cs = m->cs;
        int64_t cs_S = m->cs_S;
        m->cs = NULL;
        free_workspace(m);
        m->cs = cs;
        m->cs_S = cs_S;
        const int64_t D = c->hidden_size, F = c->intermediate_size;
        const int64_t Hd = c->num_heads * c->head_dim, Kd = c->num_kv_heads * c->head_dim;
        struct {
            gptq_buf **b;
            int64_t n;
            const char *what;
        } want[] = {
            {&m->xn, T * D, "normed activations"}, {&m->q, T * Hd, "queries"},
            {&m->k, T * Kd, "keys"},               {&m->v, T * Kd, "values"},
            {&m->att, T * Hd, "attention output"}, {&m->tmp, T * D, "layer output"},
            {&m->g, T * F, "MLP activations"},
            {&m->u, c->family == GPTQ_FAMILY_LLAMA ? T * F : 0, "MLP up projection"},
            {&m->pos, T, "positions"},
        };
        for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
            if (!want[i].n) continue;
            int st = gptq_be_alloc(m->be, (size_t)want[i].n * 4, want[i].b, want[i].what);
            if (st) {
                free_workspace(m);
                return st;
            }
        }
        m->ws_T = T;
        m->ws_S = 0;
    }
    if (m->ws_S != S) {
        /* positions of every row (only rope reads them) */
        int32_t *pos = gptq_malloc((size_t)T * sizeof(int32_t), "positions");
        if (!pos) return GPTQ_ERR_NOMEM;
        for (int64_t t = 0; t < T; t++) pos[t] = (int32_t)(t % S);
        int st = gptq_be_upload(m->be, m->pos, 0, pos, (size_t)T * sizeof(int32_t));
        free(pos);
        if (st) return st;
        m->ws_S = S;
    }
    return GPTQ_OK;
}

/* Call the hook for group g with input X (T, cols); 1 = stop. */
static int call_hook(gptq_model *m, int L, int g, const gptq_buf *X, int64_t T, int64_t cols,
                     gptq_layer_hook hook, void *user)
{
    if (!hook) return GPTQ_OK;
    int first = -1, count = 0;
    for (int i = 0; i < m->nlin; i++)
        if (m->lin[i].group == g) {
            if (first < 0) first = i;
            count++;
        }
    gptq_hook_event ev = {.layer = L, .group = g, .group_name = m->group_names[g],
                          .first = first, .count = count, .X = X, .T = T, .cols = cols};
    int st = hook(user, &ev);
    if (st < 0) return st;
    return st == GPTQ_HOOK_STOP ? GPTQ_HOOK_STOP : GPTQ_OK;
}

#define HOOK(g, X, cols)                                                \
    do {                                                                \
        int h_ = call_hook(m, L, (g), (X), T, (cols), hook, user);      \
        if (h_) return h_ == GPTQ_HOOK_STOP ? GPTQ_OK : h_;             \
    } while (0)

int gptq_model_layer_forward(gptq_model *m, int L, const gptq_buf *X_in, gptq_buf *X_out,
                             int64_t nseq, int64_t S, gptq_layer_hook hook, void *user)
{
    TRY(check_batch(m, nseq, S));
    if (m->loaded != L) TRY(gptq_model_layer_load(m, L));
    TRY(ensure_workspace(m, nseq, S));
    const gptq_model_config *c = &m->cfg;
    gptq_backend *be = m->be;
    const int opt = c->family == GPTQ_FAMILY_OPT;
    const int64_t T = nseq * S, D = c->hidden_size, F = c->intermediate_size;
    const int64_t H = c->num_heads, Hk = c->num_kv_heads, d = c->head_dim;
    const float eps = (float)c->norm_eps;
    const float scale = (float)(1.0 / sqrt((double)d));

    /* attention block */
    if (opt)
        TRY(BE_OP(be, layernorm, X_in, 0, m->n1w, 0, m->n1b, 0, T, D, eps, m->xn, 0));
    else
        TRY(BE_OP(be, rmsnorm, X_in, 0, m->n1w, 0, T, D, eps, m->xn, 0));
    HOOK(0, m->xn, D);
    TRY(linear(m, m->xn, T, LQ, m->q));
    TRY(linear(m, m->xn, T, LK, m->k));
    TRY(linear(m, m->xn, T, LV, m->v));
    if (!opt) {
        TRY(ensure_rope(m, S));
        TRY(BE_OP(be, rope, m->q, 0, T, H, d, m->pos, 0, m->cs, S));
        TRY(BE_OP(be, rope, m->k, 0, T, Hk, d, m->pos, 0, m->cs, S));
    }
    TRY(BE_OP(be, attention, m->q, 0, m->k, 0, m->v, 0, nseq, S, H, Hk, d, scale, m->att, 0));
    HOOK(1, m->att, H * d);
    TRY(linear(m, m->att, T, LO, m->tmp));
    TRY(BE_OP(be, add, X_in, 0, m->tmp, 0, T * D, X_out, 0));

    /* MLP block */
    if (opt)
        TRY(BE_OP(be, layernorm, X_out, 0, m->n2w, 0, m->n2b, 0, T, D, eps, m->xn, 0));
    else
        TRY(BE_OP(be, rmsnorm, X_out, 0, m->n2w, 0, T, D, eps, m->xn, 0));
    HOOK(2, m->xn, D);
    if (opt) {
        TRY(linear(m, m->xn, T, LFC1, m->g));
        TRY(BE_OP(be, relu, m->g, 0, T * F));
        HOOK(3, m->g, F);
        TRY(linear(m, m->g, T, LFC2, m->tmp));
    } else {
        TRY(linear(m, m->xn, T, LGATE, m->g));
        TRY(linear(m, m->xn, T, LUP, m->u));
        TRY(BE_OP(be, silu_mul, m->g, 0, m->u, 0, T * F, m->g, 0));
        HOOK(3, m->g, F);
        TRY(linear(m, m->g, T, LDOWN, m->tmp));
    }
    TRY(BE_OP(be, add, X_out, 0, m->tmp, 0, T * D, X_out, 0));
    return GPTQ_OK;
}

/* ------------------------------------------------------------------ */
/* head                                                                */
/* ------------------------------------------------------------------ */

typedef struct {
    gptq_buf *nw, *nb; /* final norm (D) */
    gptq_buf *W;       /* (V, D) lm_head */
    gptq_buf *B;       /* (V) bias or NULL */
    gptq_buf *xn;      /* (CH, D) normed rows */
    gptq_buf *lg;      /* (CH, V) logits */
    int64_t CH;
} head_ws;

static void head_free(gptq_model *m, head_ws *h)
{
    free_buf(m, &h->nw);
    free_buf(m, &h->nb);
    free_buf(m, &h->W);
    free_buf(m, &h->B);
    free_buf(m, &h->xn);
    free_buf(m, &h->lg);
}

static int head_load(gptq_model *m, int64_t T, head_ws *h)
{
    const gptq_model_config *c = &m->cfg;
    const int64_t V = c->vocab_size, D = c->hidden_size;
    const int opt = c->family == GPTQ_FAMILY_OPT;
    char name[256];
    memset(h, 0, sizeof *h);
    if (c->final_norm) {
        snprintf(name, sizeof name, "%s%s", m->root, opt ? "decoder.final_layer_norm" : "norm");
        TRY(load_norm(m, name, opt, &h->nw, &h->nb));
    }
    if (c->tie_word_embeddings) {
        int64_t shape[2] = {V, D};
        snprintf(name, sizeof name, "%s%sembed_tokens.weight", m->root, opt ? "decoder." : "");
        TRY(upload_tensor(m, name, 2, shape, &h->W));
    } else {
        TRY(load_linear(m, "lm_head", V, D, 0, &h->W, &h->B));
    }
    h->CH = HEAD_CHUNK_FLOATS / V;
    if (h->CH < 1) h->CH = 1;
    if (h->CH > T) h->CH = T;
    TRY(gptq_be_alloc(m->be, (size_t)(h->CH * D) * 4, &h->xn, "head activations"));
    TRY(gptq_be_alloc(m->be, (size_t)(h->CH * V) * 4, &h->lg, "logits"));
    return GPTQ_OK;
}

/* logits of rows [r0, r0+n) of X into h->lg (n, V). */
static int head_chunk(gptq_model *m, head_ws *h, const gptq_buf *X, int64_t r0, int64_t n)
{
    const gptq_model_config *c = &m->cfg;
    const int64_t V = c->vocab_size, D = c->hidden_size;
    gptq_backend *be = m->be;
    const gptq_buf *src = X;
    size_t off = (size_t)(r0 * D);
    if (c->final_norm) {
        if (c->family == GPTQ_FAMILY_OPT)
            TRY(BE_OP(be, layernorm, X, off, h->nw, 0, h->nb, 0, n, D, (float)c->norm_eps, h->xn, 0));
        else
            TRY(BE_OP(be, rmsnorm, X, off, h->nw, 0, n, D, (float)c->norm_eps, h->xn, 0));
        src = h->xn;
        off = 0;
    }
    TRY(gptq_be_check(be,
                      be->iface->gemm(be->ctx, 0, 1, n, V, D, 1.0f, src, off, D, h->W, 0, D, 0.0f,
                                      h->lg, 0, V),
                      "gemm"));
    if (h->B) TRY(BE_OP(be, bias_add, h->lg, 0, h->B, 0, n, V));
    return GPTQ_OK;
}

int gptq_model_head_logits(gptq_model *m, const gptq_buf *X, int64_t row0, int64_t nrows,
                           float *logits)
{
    if (row0 < 0 || nrows <= 0)
        return gptq_error(GPTQ_ERR_INVALID, "head logits: bad rows [%lld, +%lld)",
                          (long long)row0, (long long)nrows);
    head_ws h;
    int st = head_load(m, nrows, &h);
    const int64_t V = m->cfg.vocab_size;
    for (int64_t r = 0; !st && r < nrows; r += h.CH) {
        int64_t n = nrows - r < h.CH ? nrows - r : h.CH;
        st = head_chunk(m, &h, X, row0 + r, n);
        if (!st) st = gptq_be_download(m->be, h.lg, 0, logits + r * V, (size_t)(n * V) * 4);
    }
    head_free(m, &h);
    return st;
}

int gptq_model_head_nll(gptq_model *m, const gptq_buf *X, const int32_t *ids, int64_t nseq,
                        int64_t S, double *nll_sum, double *nll_tok)
{
    TRY(check_batch(m, nseq, S));
    const int64_t T = nseq * S, V = m->cfg.vocab_size;
    for (int64_t t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= V)
            return gptq_error(GPTQ_ERR_INVALID, "token id %d at %lld is outside the vocabulary [0, %lld)",
                              ids[t], (long long)t, (long long)V);
    head_ws h;
    gptq_buf *tgt = NULL, *nll = NULL;
    int32_t *tg = NULL;
    double *nl = NULL;
    int st = head_load(m, T, &h);
    if (!st) st = gptq_be_alloc(m->be, (size_t)h.CH * 4, &tgt, "targets");
    if (!st) st = gptq_be_alloc(m->be, (size_t)h.CH * 8, &nll, "token NLL");
    if (!st) {
        tg = gptq_malloc((size_t)h.CH * 4, "targets");
        nl = gptq_malloc((size_t)h.CH * 8, "token NLL");
        if (!tg || !nl) st = GPTQ_ERR_NOMEM;
    }
    double sum = 0.0;
    for (int64_t r = 0; !st && r < T; r += h.CH) {
        int64_t n = T - r < h.CH ? T - r : h.CH;
        /* row t predicts ids[t + 1] unless it ends its sequence */
        for (int64_t i = 0; i < n; i++) {
            int64_t t = r + i;
            tg[i] = (t % S) < S - 1 ? ids[t + 1] : -1;
        }
        st = head_chunk(m, &h, X, r, n);
        if (!st) st = gptq_be_upload(m->be, tgt, 0, tg, (size_t)n * 4);
        if (!st) st = BE_OP(m->be, cross_entropy, h.lg, 0, tgt, 0, n, V, nll, 0);
        if (!st) st = gptq_be_download(m->be, nll, 0, nl, (size_t)n * 8);
        for (int64_t i = 0; !st && i < n; i++) {
            int64_t t = r + i, p = t % S;
            if (p == S - 1) continue;
            sum += nl[i];
            if (nll_tok) nll_tok[(t / S) * (S - 1) + p] = nl[i];
        }
    }
    if (!st) *nll_sum += sum;
    free(tg);
    free(nl);
    free_buf(m, &tgt);
    free_buf(m, &nll);
    head_free(m, &h);
    return st;
}

/* ------------------------------------------------------------------ */
/* the whole pass                                                      */
/* ------------------------------------------------------------------ */

int gptq_model_forward(gptq_model *m, const int32_t *ids, int64_t nseq, int64_t S,
                       double *nll_sum, double *nll_tok, float *logits)
{
    gptq_buf *X = NULL;
    TRY(check_batch(m, nseq, S));
    int st = gptq_model_alloc_hidden(m, nseq, S, &X);
    if (!st) st = gptq_model_embed(m, ids, nseq, S, X);
    for (int L = 0; !st && L < m->cfg.num_layers; L++) {
        st = gptq_model_layer_load(m, L);
        if (!st) st = gptq_model_layer_forward(m, L, X, X, nseq, S, NULL, NULL);
        if (st) gptq_error_prefix(st, "layer %d", L);
    }
    gptq_model_layer_unload(m); /* weights and work buffers before the head */
    if (!st && (nll_sum || nll_tok)) {
        double s = 0.0;
        st = gptq_model_head_nll(m, X, ids, nseq, S, &s, nll_tok);
        if (!st && nll_sum) *nll_sum += s;
    }
    if (!st && logits) st = gptq_model_head_logits(m, X, 0, nseq * S, logits);
    gptq_be_free(m->be, X);
    return st;
}
