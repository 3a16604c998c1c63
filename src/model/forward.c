/*
 * forward.c — the shared machinery of the forward pass of a Hugging Face
 * causal LM on a backend, one decoder layer's weights at a time: embed ->
 * decoder layers -> final norm -> lm_head -> next-token NLL. The family's
 * description (arch.h) names the tensors, lists each layer's linears,
 * groups and work buffers, and runs the layer; this file loads the
 * weights (float or GPTQ), checks that they are complete, owns the
 * buffers, calls the hooks, and does the embedding and the head.
 *
 * Weights are read from the mmap'd safetensors, converted to f32 (or
 * dequantized from GPTQ tensors) one tensor at a time in a host scratch
 * buffer, uploaded, and the scratch reused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../format/format.h"
#include "arch.h"

/* Logit rows per chunk of the head: at most this many floats of logits. */
#define HEAD_CHUNK_FLOATS ((int64_t)1 << 24)

/* The linears and groups of one decoder layer, from the family. */
typedef struct {
    gptq_linear_info *lin;
    int nlin;
    gptq_group_info *grp;
    int ngrp;
} layer_def;

/* A linear of generation's joined tensors: lead, the layer's index of its
 * group's first linear (-1: not joined), col its first output column; at
 * the lead, the joined tensor (cols outputs) and its bias (or NULL). */
typedef struct {
    int lead;
    int64_t col, cols;
    gptq_qdev q;
    gptq_buf *bias;
} joined;

struct gptq_model {
    gptq_model_config cfg;
    const gptq_arch *a;
    gptq_weights *w;
    gptq_backend *be;
    char dir[2048];
    char root[32];   /* the family's root that the weights use ("model.", "") */
    char layers[64]; /* root + the family's layers ("model.layers") */
    layer_def *def;  /* (num_layers) */
    int maxlin;      /* most linears of any layer */

    gptq_math math; /* of the Linears */

    /* the loaded decoder layer */
    int loaded;         /* -1: none */
    gptq_buf **W, **B;  /* (maxlin) */
    gptq_buf **nw, **nb; /* (a->nnorms) */

    /* the family's work buffers: (a->nwork), their element counts, and
     * scratch for the counts wanted (a->nwork more) */
    gptq_buf **work;
    int64_t *work_n;
    int64_t prep_T, prep_S, prep_p0; /* what a->prepare last filled them for */
    int64_t prep_npos;               /* and its npos (0: the buffers hold nothing) */

    /* host scratch for one tensor */
    float *host;
    size_t host_n;

    /* generation (gptq_model_kv_begin .. kv_end): every layer's weights stay
     * on the backend (rW, rB: (num_layers, maxlin); rnw, rnb: (num_layers,
     * nnorms); rloaded: which layers are there), and so do the embedding
     * tables and the head; kc, vc (num_layers) are the KV caches of kv_cap
     * positions, kv_len of them filled. rloaded NULL: none of this. */
    gptq_buf **rW, **rB, **rnw, **rnb;
    unsigned char *rloaded;
    gptq_buf *rE, *rP;                    /* embed_tokens, learned positions */
    gptq_buf *rh_nw, *rh_nb, *rh_W, *rh_B; /* final norm, lm_head */
    int rhead;                            /* the head is resident */
    gptq_buf **kc, **vc;
    int64_t kv_cap, kv_len;
    int64_t pos0;                         /* of the forward in progress */
    int kv_on;                            /* a kv_forward is in progress */

    /* generation's GPTQ linears (gptq_model_kv_set_linears). With the fast
     * path a packed linear stays packed: rQ (num_layers, maxlin) holds its
     * tensors for matmul_q_fast (qweight NULL: the linear is rW's f32), Q
     * is the loaded layer's row of rQ (NULL: none), rh_Q the head's. */
    gptq_linears linears;
    int fast_ok;                          /* kv_begin keeps packed linears packed */
    gptq_qdev *rQ, *Q;
    gptq_qdev rh_Q;
    int64_t n_fast, n_f32;                /* resident linears by path, head included */
    int64_t rbytes;                       /* resident weight bytes */
    const char *fast_impl;                /* what the last matmul_q_fast named */

    /* generation's joined linears (gptq_model_kv_set_join): a true-
     * sequential group's packed linears (one input) concatenated into one
     * tensor, one matmul_q_fast a step instead of one a linear. rJ
     * (num_layers, maxlin), J the loaded layer's row (NULL: none); jz the
     * joined output (jz_n floats); jidx the column indices the split of a
     * many-row output gathers with (njidx of them). */
    int join;                             /* kv_begin joins what it can (default 1) */
    joined *rJ, *J;
    gptq_buf *jz;
    int64_t jz_n;
    struct {
        int64_t col, n;
        gptq_buf *b;
    } jidx[32];
    int njidx;
    int64_t n_joined;                     /* linears kept joined (in n_fast too) */
};

/* ------------------------------------------------------------------ */
/* backend calls                                                       */
/* ------------------------------------------------------------------ */

static void free_buf(gptq_model *m, gptq_buf **b);

int gptq_be_missing_op(gptq_backend *be, gptq_op op)
{
    return gptq_error(GPTQ_ERR_UNSUPPORTED,
                      "backend %s has no '%s' op: it cannot run the model forward pass",
                      be->iface->name, gptq_op_name(op));
}

int gptq_layer_linear(const gptq_layer_ctx *x, int i, const gptq_buf *X, gptq_buf *Y)
{
    gptq_model *m = x->m;
    const gptq_linear_info *li = &m->def[x->layer].lin[i];
    gptq_backend *be = m->be;
    const int64_t T = x->T;
    if (T == 0) return GPTQ_OK;
    if (m->J && m->J[i].lead >= 0)
        return gptq_error(GPTQ_ERR_INVALID,
                          "linear %d of layer %d runs joined with its group "
                          "(gptq_layer_linear_joined)",
                          i, x->layer);
    const gptq_qdev *q = m->Q ? &m->Q[i] : NULL;
    if (q && q->qweight) {
        /* kept packed (generation): the bias, if any, is added below in
         * f32, as on the gemm path (the op's own would round it to fp16) */
        const char *impl = NULL;
        GPTQ_TRY(gptq_be_check(be,
                               be->iface->matmul_q_fast(be->ctx, &q->t, X, 0, T, NULL, Y, 0,
                                                        &impl),
                               "matmul_q_fast"));
        if (impl) m->fast_impl = impl;
    } else if (m->math == GPTQ_MATH_TF32 && gptq_be_supports(be, GPTQ_OP_LINEAR_FAST))
        GPTQ_TRY(gptq_be_check(be,
                          be->iface->linear_fast(be->ctx, T, li->rows, li->cols, X, 0, m->W[i], 0,
                                                 Y, 0),
                          "linear_fast"));
    else
        GPTQ_TRY(gptq_be_check(be,
                          be->iface->gemm(be->ctx, 0, 1, T, li->rows, li->cols, 1.0f, X, 0,
                                          li->cols, m->W[i], 0, li->cols, 0.0f, Y, 0, li->rows),
                          "gemm"));
    if (m->B[i]) GPTQ_TRY(GPTQ_BE_OP(be, bias_add, Y, 0, m->B[i], 0, T, li->rows));
    return GPTQ_OK;
}

int gptq_layer_joined(const gptq_layer_ctx *x, int i, int *lead, int64_t *col)
{
    const joined *J = x->m->J;
    if (!J || J[i].lead < 0) return 0;
    *lead = J[i].lead;
    *col = J[i].col;
    return 1;
}

int gptq_layer_linear_joined(const gptq_layer_ctx *x, int lead, const gptq_buf *X, gptq_buf **Y,
                             int64_t *cols)
{
    gptq_model *m = x->m;
    const joined *J = &m->J[lead];
    const int64_t n = x->T * J->cols;
    if (n > m->jz_n) {
        free_buf(m, &m->jz);
        m->jz_n = 0;
        GPTQ_TRY(gptq_be_alloc(m->be, (size_t)n * sizeof(float), &m->jz, "joined linear output"));
        m->jz_n = n;
    }
    *Y = m->jz;
    *cols = J->cols;
    if (x->T == 0) return GPTQ_OK;
    const char *impl = NULL;
    GPTQ_TRY(gptq_be_check(m->be,
                           m->be->iface->matmul_q_fast(m->be->ctx, &J->q.t, X, 0, x->T, NULL,
                                                       m->jz, 0, &impl),
                           "matmul_q_fast"));
    if (impl) m->fast_impl = impl;
    if (J->bias) GPTQ_TRY(GPTQ_BE_OP(m->be, bias_add, m->jz, 0, J->bias, 0, x->T, J->cols));
    return GPTQ_OK;
}

int gptq_layer_joined_split(const gptq_layer_ctx *x, gptq_buf *dst, const gptq_buf *Y,
                            int64_t col, int64_t n, int64_t cols)
{
    gptq_model *m = x->m;
    int k = 0;
    while (k < m->njidx && (m->jidx[k].col != col || m->jidx[k].n != n)) k++;
    if (k == m->njidx) { /* the indices col .. col + n - 1, once per split */
        if (k == (int)(sizeof m->jidx / sizeof *m->jidx))
            return gptq_error(GPTQ_ERR_INVALID, "more joined splits than %d", k);
        int32_t *h = malloc((size_t)n * sizeof *h);
        if (!h) return gptq_error(GPTQ_ERR_NOMEM, "out of host memory for split indices");
        for (int64_t j = 0; j < n; j++) h[j] = (int32_t)(col + j);
        gptq_buf *b = NULL;
        int st = gptq_be_alloc(m->be, (size_t)n * sizeof *h, &b, "split indices");
        if (!st) st = gptq_be_upload(m->be, b, 0, h, (size_t)n * sizeof *h);
        free(h);
        if (st) {
            gptq_be_free(m->be, b);
            return st;
        }
        m->jidx[k].col = col, m->jidx[k].n = n, m->jidx[k].b = b;
        m->njidx++;
    }
    return GPTQ_BE_OP(m->be, gather, dst, Y, x->T, n, x->T, cols, NULL, m->jidx[k].b, 4);
}

int gptq_layer_attention(const gptq_layer_ctx *x, gptq_buf *Q, size_t q_off, gptq_buf *K,
                         size_t k_off, gptq_buf *V, size_t v_off, int64_t H, int64_t Hk,
                         int64_t d, float scale, int64_t window, float softcap, gptq_buf *O)
{
    gptq_backend *be = x->be;
    if (!x->kc)
        return GPTQ_BE_OP(be, attention, Q, q_off, K, k_off, V, v_off, x->nseq, x->S, H, Hk, d,
                          scale, window, softcap, O, 0);
    /* the new keys and values at rows pos0 .. pos0 + T - 1 of the cache */
    const size_t row = (size_t)(Hk * d) * sizeof(float);
    GPTQ_TRY(gptq_be_check(be,
                           be->iface->copy(be->ctx, x->kc, (size_t)x->pos0 * row, K,
                                           k_off * sizeof(float), (size_t)x->T * row),
                           "copy"));
    GPTQ_TRY(gptq_be_check(be,
                           be->iface->copy(be->ctx, x->vc, (size_t)x->pos0 * row, V,
                                           v_off * sizeof(float), (size_t)x->T * row),
                           "copy"));
    return GPTQ_BE_OP(be, attention_kv, Q, q_off, x->kc, 0, x->vc, 0, x->T, x->pos0, H, Hk, d,
                      scale, window, softcap, O, 0);
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
    GPTQ_TRY(gptq_be_alloc(m->be, n * sizeof(float), out, what));
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
    GPTQ_TRY(gptq_weights_read_f32(m->w, name, ndim, shape, h));
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

/* Q = the packed tensors of linear `prefix` on the backend, as the
 * checkpoint has them (generation's fast linears: matmul_q_fast reads
 * them). */
static int load_packed(gptq_model *m, const char *prefix, int64_t rows, int64_t cols,
                       gptq_qdev *Q)
{
    gptq_packed p = {0};
    int st = gptq_weights_read_packed(m->w, &m->cfg.quant, prefix, rows, cols, &p);
    if (!st && (st = gptq_qdev_upload(m->be, &p, m->cfg.quant.format, 1, Q)))
        gptq_error_prefix(st, "%s: %s", m->dir, prefix);
    gptq_packed_free(&p);
    return st;
}

/* Linear `prefix` (W (rows, cols), bias (rows) when has_bias) -> backend;
 * a packed one into Q instead of W (left NULL) when Q is given and
 * generation keeps packed linears packed. */
static int load_linear(gptq_model *m, const char *prefix, int64_t rows, int64_t cols,
                       int has_bias, gptq_buf **W, gptq_buf **B, gptq_qdev *Q)
{
    char name[512];
    if (Q && m->fast_ok && gptq_weights_is_packed(m->w, prefix)) {
        GPTQ_TRY(load_packed(m, prefix, rows, cols, Q));
    } else if (gptq_weights_is_packed(m->w, prefix)) {
        GPTQ_TRY(dequant_linear(m, prefix, rows, cols, W));
    } else {
        snprintf(name, sizeof name, "%s.weight", prefix);
        int64_t shape[2] = {rows, cols};
        GPTQ_TRY(upload_tensor(m, name, 2, shape, W));
    }
    if (has_bias) {
        snprintf(name, sizeof name, "%s.bias", prefix);
        GPTQ_TRY(upload_tensor(m, name, 1, &rows, B));
    }
    return GPTQ_OK;
}

/* The length of a per-layer norm's weight: head_dim or hidden_size. */
static int64_t norm_len(const gptq_model_config *c, const gptq_arch_norm *n)
{
    return n->per_head ? c->head_dim : c->hidden_size;
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
    if (gptq_weights_is_packed(m->w, prefix)) {
        GPTQ_TRY(gptq_weights_check_packed(m->w, &m->cfg.quant, prefix, rows, cols));
    } else {
        snprintf(name, sizeof name, "%s.weight", prefix);
        const int64_t shape[2] = {rows, cols};
        GPTQ_TRY(gptq_weights_check_float(m->w, name, 2, shape));
    }
    if (has_bias) {
        snprintf(name, sizeof name, "%s.bias", prefix);
        GPTQ_TRY(gptq_weights_check_float(m->w, name, 1, &rows));
    }
    return GPTQ_OK;
}

/* The tensors load_norm reads for `name` of length D: a weight and a bias
 * as the config has them. */
static int check_norm_tensors(const gptq_model *m, const char *name, int64_t D)
{
    char full[600];
    if (m->cfg.norm_weight) {
        snprintf(full, sizeof full, "%s.weight", name);
        GPTQ_TRY(gptq_weights_check_float(m->w, full, 1, &D));
    }
    if (m->cfg.norm_bias) {
        snprintf(full, sizeof full, "%s.bias", name);
        GPTQ_TRY(gptq_weights_check_float(m->w, full, 1, &D));
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
    const gptq_arch *a = m->a;
    const int64_t V = c->vocab_size, D = c->hidden_size;
    char name[512];
    snprintf(name, sizeof name, "%s%s", m->root, a->embed);
    const int64_t emb[2] = {V, D};
    GPTQ_TRY(gptq_weights_check_float(m->w, name, 2, emb));
    if (a->positions) {
        snprintf(name, sizeof name, "%s%s", m->root, a->positions);
        const int64_t pos[2] = {c->max_positions + c->pos_offset, D};
        GPTQ_TRY(gptq_weights_check_float(m->w, name, 2, pos));
    }
    for (int L = 0; L < c->num_layers; L++) {
        const layer_def *d = &m->def[L];
        int st = GPTQ_OK;
        for (int i = 0; i < d->nlin && !st; i++) {
            snprintf(name, sizeof name, "%s.%d.%s", m->layers, L, d->lin[i].name);
            st = check_linear_tensors(m, name, d->lin[i].rows, d->lin[i].cols,
                                      d->lin[i].has_bias);
        }
        for (int j = 0; j < a->nnorms && !st; j++) {
            snprintf(name, sizeof name, "%s.%d.%s", m->layers, L, a->norms[j].name);
            st = check_norm_tensors(m, name, norm_len(c, &a->norms[j]));
        }
        if (st) return gptq_error_prefix(st, "layer %d", L);
    }
    if (c->final_norm) {
        snprintf(name, sizeof name, "%s%s", m->root, a->final_norm);
        GPTQ_TRY(check_norm_tensors(m, name, D));
    }
    if (!c->tie_word_embeddings) GPTQ_TRY(check_linear_tensors(m, a->lm_head, V, D, 0));

    /* "<layers>.<N>." with N >= num_hidden_layers */
    const size_t k = strlen(m->layers);
    for (int i = 0; i < gptq_weights_count(m->w); i++) {
        gptq_st_info info;
        GPTQ_TRY(gptq_weights_get(m->w, i, &info));
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

/* Each layer's linears and groups from the family, and the arrays of the
 * loaded layer and the work buffers sized for them. */
static int describe_layers(gptq_model *m)
{
    const gptq_arch *a = m->a;
    const gptq_model_config *c = &m->cfg;
    m->def = gptq_calloc((size_t)c->num_layers, sizeof *m->def, "layer descriptions");
    if (!m->def) return GPTQ_ERR_NOMEM;
    for (int L = 0; L < c->num_layers; L++) {
        layer_def *d = &m->def[L];
        d->nlin = a->linears(c, L, NULL);
        d->ngrp = a->groups(c, L, NULL);
        d->lin = gptq_calloc((size_t)d->nlin, sizeof *d->lin, "layer description");
        d->grp = gptq_calloc((size_t)d->ngrp, sizeof *d->grp, "layer description");
        if (!d->lin || !d->grp) return GPTQ_ERR_NOMEM;
        a->linears(c, L, d->lin);
        a->groups(c, L, d->grp);
        if (d->nlin > m->maxlin) m->maxlin = d->nlin;
    }
    m->W = gptq_calloc((size_t)m->maxlin, sizeof *m->W, "layer weights");
    m->B = gptq_calloc((size_t)m->maxlin, sizeof *m->B, "layer weights");
    m->nw = gptq_calloc((size_t)a->nnorms, sizeof *m->nw, "layer norms");
    m->nb = gptq_calloc((size_t)a->nnorms, sizeof *m->nb, "layer norms");
    m->work = gptq_calloc((size_t)a->nwork, sizeof *m->work, "work buffers");
    m->work_n = gptq_calloc((size_t)a->nwork * 2, sizeof *m->work_n, "work buffers");
    if (!m->W || !m->B || !m->nw || !m->nb || !m->work || !m->work_n) return GPTQ_ERR_NOMEM;
    return GPTQ_OK;
}

int gptq_model_open(const char *dir, gptq_backend *be, gptq_model **out)
{
    *out = NULL;
    if (!be) return gptq_error(GPTQ_ERR_INVALID, "gptq_model_open: no backend");
    gptq_model *m = gptq_calloc(1, sizeof *m, "model");
    if (!m) return GPTQ_ERR_NOMEM;
    m->be = be;
    m->loaded = -1;
    m->join = 1;
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    int st = gptq_model_config_load(dir, &m->cfg);
    if (!st) st = gptq_weights_open(dir, &m->w);
    if (!st) {
        const gptq_arch *a = m->a = m->cfg.arch;
        /* the root the weights use: the first of the family's with the embedding */
        snprintf(m->root, sizeof m->root, "%s", a->roots[0]);
        for (int r = 0; a->roots[r]; r++) {
            char name[256];
            snprintf(name, sizeof name, "%s%s", a->roots[r], a->embed);
            if (!gptq_weights_has(m->w, name)) continue;
            snprintf(m->root, sizeof m->root, "%s", a->roots[r]);
            break;
        }
        snprintf(m->layers, sizeof m->layers, "%s%s", m->root, a->layers);
        st = describe_layers(m);
    }
    /* Fail now, not after minutes of work (or with a checkpoint that only
     * fails when it is used), if anything the forward needs is absent. */
    if (!st) st = check_complete(m);
    if (st) {
        gptq_model_close(m);
        return st;
    }
    *out = m;
    return GPTQ_OK;
}

static void free_workspace(gptq_model *m)
{
    for (int i = 0; m->work && i < m->a->nwork; i++) {
        free_buf(m, &m->work[i]);
        m->work_n[i] = 0;
    }
    free_buf(m, &m->jz);
    m->jz_n = 0;
    for (int i = 0; i < m->njidx; i++) free_buf(m, &m->jidx[i].b);
    m->njidx = 0;
    m->prep_T = m->prep_S = m->prep_p0 = m->prep_npos = 0;
}

/* Free the loaded layer's weights (resident ones too: a load that failed
 * half way). */
static void free_current(gptq_model *m)
{
    for (int i = 0; m->W && i < m->maxlin; i++) {
        free_buf(m, &m->W[i]);
        free_buf(m, &m->B[i]);
    }
    for (int j = 0; m->nw && j < m->a->nnorms; j++) {
        free_buf(m, &m->nw[j]);
        free_buf(m, &m->nb[j]);
    }
    m->Q = NULL; /* rQ's and rJ's tensors: kv_end frees them */
    m->J = NULL;
    m->loaded = -1;
}

/* Let go of the loaded layer: its weights are freed, or only forgotten
 * when they are resident (generation keeps every layer). */
static void free_layer(gptq_model *m)
{
    if (m->rloaded && m->loaded >= 0 && m->rloaded[m->loaded]) {
        memset(m->W, 0, (size_t)m->maxlin * sizeof *m->W);
        memset(m->B, 0, (size_t)m->maxlin * sizeof *m->B);
        memset(m->nw, 0, (size_t)m->a->nnorms * sizeof *m->nw);
        memset(m->nb, 0, (size_t)m->a->nnorms * sizeof *m->nb);
        m->Q = NULL;
        m->J = NULL;
        m->loaded = -1;
        return;
    }
    free_current(m);
}

void gptq_model_layer_unload(gptq_model *m)
{
    if (!m) return;
    free_layer(m);
    free_workspace(m);
}

void gptq_model_close(gptq_model *m)
{
    if (!m) return;
    if (m->be) gptq_model_kv_end(m);
    if (m->be) gptq_model_layer_unload(m);
    for (int L = 0; m->def && L < m->cfg.num_layers; L++) {
        free(m->def[L].lin);
        free(m->def[L].grp);
    }
    free(m->def);
    free(m->W);
    free(m->B);
    free(m->nw);
    free(m->nb);
    free(m->work);
    free(m->work_n);
    gptq_weights_close(m->w);
    free(m->host);
    free(m);
}

const gptq_model_config *gptq_model_config_of(const gptq_model *m) { return &m->cfg; }
const char *gptq_model_dir(const gptq_model *m) { return m->dir; }
gptq_weights *gptq_model_weights(gptq_model *m) { return m->w; }
gptq_backend *gptq_model_backend(gptq_model *m) { return m->be; }

static const layer_def *def_of(const gptq_model *m, int L)
{
    return L >= 0 && L < m->cfg.num_layers ? &m->def[L] : NULL;
}

int gptq_model_nlinear(const gptq_model *m, int L)
{
    const layer_def *d = def_of(m, L);
    return d ? d->nlin : 0;
}

const gptq_linear_info *gptq_model_linear(const gptq_model *m, int L, int i)
{
    const layer_def *d = def_of(m, L);
    return d && i >= 0 && i < d->nlin ? &d->lin[i] : NULL;
}

int gptq_model_ngroups(const gptq_model *m, int L)
{
    const layer_def *d = def_of(m, L);
    return d ? d->ngrp : 0;
}

const gptq_group_info *gptq_model_group(const gptq_model *m, int L, int g)
{
    const layer_def *d = def_of(m, L);
    return d && g >= 0 && g < d->ngrp ? &d->grp[g] : NULL;
}

int gptq_model_linear_prefix(const gptq_model *m, int L, int i, char *buf, size_t size)
{
    const gptq_linear_info *li = gptq_model_linear(m, L, i);
    if (!li)
        return gptq_error(GPTQ_ERR_INVALID, "linear %d of layer %d does not exist (%lld layers)",
                          i, L, (long long)m->cfg.num_layers);
    int k = snprintf(buf, size, "%s.%d.%s", m->layers, L, li->name);
    if (k < 0 || (size_t)k >= size)
        return gptq_error(GPTQ_ERR_INVALID, "tensor prefix buffer too small");
    return GPTQ_OK;
}

int64_t gptq_model_work_bytes(const gptq_model *m, int64_t nseq, int64_t S)
{
    int64_t *n = m->work_n + m->a->nwork, bytes = 0; /* the scratch half */
    m->a->work_counts(&m->cfg, nseq * S, S, n);
    for (int i = 0; i < m->a->nwork; i++) bytes += n[i] * 4;
    return bytes;
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
    if (m->a->positions && m->pos0 + S > c->max_positions)
        return gptq_error(GPTQ_ERR_INVALID,
                          "%s: sequences of %lld tokens exceed %s's %lld learned positions "
                          "(max_position_embeddings)",
                          m->dir, (long long)(m->pos0 + S), m->a->name,
                          (long long)c->max_positions);
    return GPTQ_OK;
}

/* Upload ids (T) host i32 into a new backend buffer. */
static int upload_ids(gptq_model *m, const int32_t *ids, int64_t T, gptq_buf **out)
{
    GPTQ_TRY(gptq_be_alloc(m->be, (size_t)T * sizeof(int32_t), out, "token ids"));
    int st = gptq_be_upload(m->be, *out, 0, ids, (size_t)T * sizeof(int32_t));
    if (st) free_buf(m, out);
    return st;
}

/* X (n) *= the config's embed_scale rounded to f32 and then to the dtype of
 * the embedding table `name` (transformers multiplies by a tensor of the
 * model's dtype: Gemma 2 9B's sqrt(3584) = 59.87 is 60 in bf16). The product
 * itself stays f32, as every activation of this forward. */
static int scale_embeddings(gptq_model *m, const char *name, gptq_buf *X, int64_t n)
{
    gptq_st_info info;
    GPTQ_TRY(gptq_weights_find(m->w, name, &info));
    float s = (float)m->cfg.embed_scale;
    if (info.dtype == GPTQ_BF16) s = gptq_bf16_to_f32(gptq_f32_to_bf16(s));
    if (info.dtype == GPTQ_F16) s = gptq_f16_to_f32(gptq_f32_to_f16(s));
    return GPTQ_BE_OP(m->be, scale, X, 0, n, s);
}

int gptq_model_embed(gptq_model *m, const int32_t *ids, int64_t nseq, int64_t S, gptq_buf *X)
{
    GPTQ_TRY(check_batch(m, nseq, S));
    const gptq_model_config *c = &m->cfg;
    const int64_t T = nseq * S, V = c->vocab_size, D = c->hidden_size;
    for (int64_t t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= V)
            return gptq_error(GPTQ_ERR_INVALID, "token id %d at %lld is outside the vocabulary [0, %lld)",
                              ids[t], (long long)t, (long long)V);
    char name[256];
    gptq_buf *E = NULL, *idb = NULL, *P = NULL;
    int64_t shape[2] = {V, D};
    snprintf(name, sizeof name, "%s%s", m->root, m->a->embed);
    /* the tables are uploaded for the call, or resident in generation */
    int st = m->rE ? GPTQ_OK : upload_tensor(m, name, 2, shape, &E);
    if (!st) st = upload_ids(m, ids, T, &idb);
    if (!st)
        st = GPTQ_BE_OP(m->be, embedding, idb, 0, T, m->rE ? m->rE : E, 0, V, D, X, 0, 0);
    if (!st && c->embed_scale != 0.0) st = scale_embeddings(m, name, X, T * D);
    if (!st && m->a->positions) {
        /* learned positions: row pos0 + position + pos_offset of the table */
        free_buf(m, &E);
        int32_t *pos = gptq_malloc((size_t)T * sizeof(int32_t), "positions");
        if (!pos) st = GPTQ_ERR_NOMEM;
        for (int64_t t = 0; !st && t < T; t++)
            pos[t] = (int32_t)(m->pos0 + t % S + c->pos_offset);
        if (!st) {
            free_buf(m, &idb);
            st = upload_ids(m, pos, T, &idb);
        }
        free(pos);
        int64_t pshape[2] = {c->max_positions + c->pos_offset, D};
        snprintf(name, sizeof name, "%s%s", m->root, m->a->positions);
        if (!st && !m->rP) st = upload_tensor(m, name, 2, pshape, &P);
        if (!st)
            st = GPTQ_BE_OP(m->be, embedding, idb, 0, T, m->rP ? m->rP : P, 0, pshape[0], D, X,
                            0, 1);
    }
    free_buf(m, &E);
    free_buf(m, &P);
    free_buf(m, &idb);
    return st;
}

/* ------------------------------------------------------------------ */
/* decoder layers                                                      */
/* ------------------------------------------------------------------ */

/* Norm `name` of length D: its weight and bias as the config has them
 * (else NULL). */
static int load_norm(gptq_model *m, const char *name, int64_t D, gptq_buf **w, gptq_buf **b)
{
    char full[600];
    if (m->cfg.norm_weight && m->a->norm_offset != 0.0f) {
        /* the family scales by offset + w (Gemma: 1 + w, the sum in f32 as
         * transformers' 1.0 + weight.float()) */
        snprintf(full, sizeof full, "%s.weight", name);
        float *h = host_scratch(m, (size_t)D);
        if (!h) return GPTQ_ERR_NOMEM;
        GPTQ_TRY(gptq_weights_read_f32(m->w, full, 1, &D, h));
        for (int64_t i = 0; i < D; i++) h[i] = m->a->norm_offset + h[i];
        GPTQ_TRY(upload_new(m, h, (size_t)D, full, w));
    } else if (m->cfg.norm_weight) {
        snprintf(full, sizeof full, "%s.weight", name);
        GPTQ_TRY(upload_tensor(m, full, 1, &D, w));
    }
    if (m->cfg.norm_bias) {
        snprintf(full, sizeof full, "%s.bias", name);
        GPTQ_TRY(upload_tensor(m, full, 1, &D, b));
    }
    return GPTQ_OK;
}

/* Generation: group g's linears of layer L joined into one packed tensor
 * at J[lead] (gptq_packed_concat_cols) when there are two or more, all
 * packed, of one input width and all with a bias or none; J[i].lead and
 * .col of each then say where its columns are. Linears that cannot be
 * joined are left alone (J[i].lead stays -1). */
static int join_group(gptq_model *m, int L, const gptq_group_info *g, joined *J)
{
    const layer_def *d = &m->def[L];
    enum { MAXJ = 8 };
    if (g->nlin < 2 || g->nlin > MAXJ) return GPTQ_OK;
    char name[MAXJ][512];
    const gptq_linear_info *li0 = &d->lin[g->lin[0]];
    for (int j = 0; j < g->nlin; j++) {
        const gptq_linear_info *li = &d->lin[g->lin[j]];
        snprintf(name[j], sizeof name[j], "%s.%d.%s", m->layers, L, li->name);
        if (!gptq_weights_is_packed(m->w, name[j]) || li->cols != li0->cols ||
            li->has_bias != li0->has_bias)
            return GPTQ_OK;
    }
    gptq_packed p[MAXJ] = {{0}}, o = {0};
    const gptq_packed *pp[MAXJ];
    int st = GPTQ_OK, n = 0;
    int64_t cols = 0;
    for (; n < g->nlin && !st; n++) {
        const gptq_linear_info *li = &d->lin[g->lin[n]];
        st = gptq_weights_read_packed(m->w, &m->cfg.quant, name[n], li->rows, li->cols, &p[n]);
        pp[n] = &p[n];
        cols += li->rows;
    }
    char why[128];
    int r = st ? st : gptq_packed_concat_cols(pp, g->nlin, &o, why, sizeof why);
    for (int j = 0; j < n; j++) gptq_packed_free(&p[j]);
    if (r < 0) return r;
    if (r > 0) return GPTQ_OK; /* kept apart */
    joined *lead = &J[g->lin[0]];
    st = gptq_qdev_upload(m->be, &o, m->cfg.quant.format, 1, &lead->q);
    gptq_packed_free(&o);
    if (st) return gptq_error_prefix(st, "%s: %s (joined with its group)", m->dir, name[0]);
    if (li0->has_bias) { /* the biases side by side, as f32 */
        float *h = host_scratch(m, (size_t)cols);
        if (!h) st = GPTQ_ERR_NOMEM;
        int64_t c = 0;
        for (int j = 0; j < g->nlin && !st; c += d->lin[g->lin[j]].rows, j++) {
            char bn[600];
            snprintf(bn, sizeof bn, "%s.bias", name[j]);
            const int64_t rows = d->lin[g->lin[j]].rows;
            st = gptq_weights_read_f32(m->w, bn, 1, &rows, h + c);
        }
        if (!st) st = upload_new(m, h, (size_t)cols, "joined bias", &lead->bias);
        if (st) {
            gptq_qdev_free(m->be, &lead->q);
            return st;
        }
    }
    lead->cols = cols;
    int64_t c = 0;
    for (int j = 0; j < g->nlin; c += d->lin[g->lin[j]].rows, j++) {
        J[g->lin[j]].lead = g->lin[0];
        J[g->lin[j]].col = c;
    }
    return GPTQ_OK;
}

int gptq_model_layer_load(gptq_model *m, int L)
{
    if (L < 0 || L >= m->cfg.num_layers)
        return gptq_error(GPTQ_ERR_INVALID, "%s: layer %d does not exist (%lld layers)", m->dir, L,
                          (long long)m->cfg.num_layers);
    free_layer(m); /* the previous layer's weights; the work buffers stay */
    const int nn = m->a->nnorms, ml = m->maxlin;
    if (m->rloaded && m->rloaded[L]) { /* resident (generation) */
        memcpy(m->W, m->rW + (size_t)L * ml, (size_t)ml * sizeof *m->W);
        memcpy(m->B, m->rB + (size_t)L * ml, (size_t)ml * sizeof *m->B);
        memcpy(m->nw, m->rnw + (size_t)L * nn, (size_t)nn * sizeof *m->nw);
        memcpy(m->nb, m->rnb + (size_t)L * nn, (size_t)nn * sizeof *m->nb);
        m->Q = m->rQ + (size_t)L * ml;
        m->J = m->rJ + (size_t)L * ml;
        m->loaded = L;
        return GPTQ_OK;
    }

    const layer_def *d = &m->def[L];
    char name[512];
    int st = GPTQ_OK;
    joined *J = m->rloaded ? m->rJ + (size_t)L * ml : NULL;
    for (int g = 0; J && m->join && m->fast_ok && g < d->ngrp && !st; g++)
        st = join_group(m, L, &d->grp[g], J);
    for (int i = 0; i < d->nlin && !st; i++) {
        if (J && J[i].lead >= 0) continue; /* in its group's joined tensor */
        snprintf(name, sizeof name, "%s.%d.%s", m->layers, L, d->lin[i].name);
        st = load_linear(m, name, d->lin[i].rows, d->lin[i].cols, d->lin[i].has_bias, &m->W[i],
                         &m->B[i], m->rloaded ? &m->rQ[(size_t)L * ml + i] : NULL);
    }
    for (int j = 0; j < m->a->nnorms && !st; j++) {
        snprintf(name, sizeof name, "%s.%d.%s", m->layers, L, m->a->norms[j].name);
        st = load_norm(m, name, norm_len(&m->cfg, &m->a->norms[j]), &m->nw[j], &m->nb[j]);
    }
    if (st) {
        gptq_error_prefix(st, "loading layer %d", L);
        free_current(m);
        gptq_model_layer_unload(m);
        return st;
    }
    m->loaded = L;
    if (m->rloaded) { /* generation keeps it */
        memcpy(m->rW + (size_t)L * ml, m->W, (size_t)ml * sizeof *m->W);
        memcpy(m->rB + (size_t)L * ml, m->B, (size_t)ml * sizeof *m->B);
        memcpy(m->rnw + (size_t)L * nn, m->nw, (size_t)nn * sizeof *m->nw);
        memcpy(m->rnb + (size_t)L * nn, m->nb, (size_t)nn * sizeof *m->nb);
        m->Q = m->rQ + (size_t)L * ml;
        m->J = J;
        m->rloaded[L] = 1;
    }
    return GPTQ_OK;
}

static int check_linear(const gptq_model *m, int L, int i)
{
    if (m->loaded != L || L < 0)
        return gptq_error(GPTQ_ERR_INVALID, "layer %d is not loaded (loaded: %d)", L, m->loaded);
    if (i < 0 || i >= m->def[L].nlin)
        return gptq_error(GPTQ_ERR_INVALID, "linear %d does not exist (%d in layer %d)", i,
                          m->def[L].nlin, L);
    if (!m->W[i])
        return gptq_error(GPTQ_ERR_INVALID,
                          "linear %d of layer %d is kept packed for generation: it has no f32 "
                          "weight",
                          i, L);
    return GPTQ_OK;
}

int gptq_model_linear_get(gptq_model *m, int L, int i, float *W)
{
    GPTQ_TRY(check_linear(m, L, i));
    const gptq_linear_info *li = &m->def[L].lin[i];
    return gptq_be_download(m->be, m->W[i], 0, W, (size_t)(li->rows * li->cols) * sizeof(float));
}

int gptq_model_linear_set(gptq_model *m, int L, int i, const float *W)
{
    GPTQ_TRY(check_linear(m, L, i));
    const gptq_linear_info *li = &m->def[L].lin[i];
    return gptq_be_upload(m->be, m->W[i], 0, W, (size_t)(li->rows * li->cols) * sizeof(float));
}

int gptq_model_linear_buf(gptq_model *m, int L, int i, gptq_buf **W)
{
    *W = NULL;
    GPTQ_TRY(check_linear(m, L, i));
    *W = m->W[i];
    return GPTQ_OK;
}

/* The family's work buffers for x's T = nseq * S rows (each grown when it
 * needs more), filled by its prepare when S changed or T grew. */
static int ensure_workspace(gptq_model *m, const gptq_layer_ctx *x)
{
    const gptq_arch *a = m->a;
    int64_t *have = m->work_n, *want = m->work_n + a->nwork;
    /* the RoPE table for the positions of this call, or of the whole KV
     * cache in generation (grown once, not at every token) */
    a->work_counts(&m->cfg, x->T, x->npos > m->kv_cap ? x->npos : m->kv_cap, want);
    int grew = 0;
    for (int i = 0; i < a->nwork; i++) {
        if (want[i] <= have[i]) continue;
        free_buf(m, &m->work[i]);
        int st = gptq_be_alloc(m->be, (size_t)want[i] * 4, &m->work[i], a->work[i]);
        if (st) {
            free_workspace(m);
            return st;
        }
        have[i] = want[i];
        grew = 1;
    }
    if (a->prepare &&
        (grew || x->S != m->prep_S || x->T > m->prep_T || x->pos0 != m->prep_p0)) {
        /* what the buffers hold from the last prepare, unless one was
         * reallocated (a generation step extends the RoPE table by its
         * new rows instead of making it again) */
        gptq_layer_ctx px = *x;
        px.prep_npos = grew ? 0 : m->prep_npos;
        m->prep_npos = 0; /* until this one has filled them */
        GPTQ_TRY(a->prepare(&px));
        m->prep_T = x->T;
        m->prep_S = x->S;
        m->prep_p0 = x->pos0;
        m->prep_npos = x->npos;
    }
    return GPTQ_OK;
}

int gptq_layer_call_hook(const gptq_layer_ctx *x, int g, const gptq_buf *X, int64_t cols)
{
    if (!x->hook) return GPTQ_OK;
    const gptq_group_info *gi = &x->m->def[x->layer].grp[g];
    gptq_hook_event ev = {.layer = x->layer, .group = g, .group_name = gi->name,
                          .lin = gi->lin, .nlin = gi->nlin, .X = X, .T = x->T, .cols = cols,
                          .rows = NULL, .nrows = x->T};
    int st = x->hook(x->user, &ev);
    if (st < 0) return st;
    return st == GPTQ_HOOK_STOP ? GPTQ_HOOK_STOP : GPTQ_OK;
}

int gptq_hook_all_rows(const gptq_hook_event *ev)
{
    if (!ev->rows) return GPTQ_OK;
    return gptq_error(GPTQ_ERR_UNSUPPORTED,
                      "layer %d, group %s: its modules see %lld of %lld tokens, and quantizing "
                      "a module on a subset of the tokens is not implemented",
                      ev->layer, ev->group_name, (long long)ev->nrows, (long long)ev->T);
}

int gptq_model_layer_forward(gptq_model *m, int L, const gptq_buf *X_in, gptq_buf *X_out,
                             int64_t nseq, int64_t S, gptq_layer_hook hook, void *user)
{
    GPTQ_TRY(check_batch(m, nseq, S));
    if (m->loaded != L) GPTQ_TRY(gptq_model_layer_load(m, L));
    const gptq_layer_ctx x = {.m = m, .be = m->be, .c = &m->cfg, .layer = L, .nseq = nseq,
                              .S = S, .T = nseq * S, .pos0 = m->pos0, .npos = m->pos0 + S,
                              .kc = m->kv_on ? m->kc[L] : NULL,
                              .vc = m->kv_on ? m->vc[L] : NULL,
                              .nw = m->nw, .nb = m->nb, .work = m->work, .hook = hook,
                              .user = user};
    GPTQ_TRY(ensure_workspace(m, &x));
    return m->a->forward(&x, X_in, X_out);
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
    if (m->rhead) h->nw = h->nb = h->W = h->B = NULL; /* resident: kv_end frees them */
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
    char name[256];
    memset(h, 0, sizeof *h);
    if (m->rhead) {
        h->nw = m->rh_nw;
        h->nb = m->rh_nb;
        h->W = m->rh_W;
        h->B = m->rh_B;
    } else if (c->final_norm) {
        snprintf(name, sizeof name, "%s%s", m->root, m->a->final_norm);
        GPTQ_TRY(load_norm(m, name, D, &h->nw, &h->nb));
    }
    if (m->rhead) {
        /* resident: loaded by kv_begin */
    } else if (c->tie_word_embeddings) {
        int64_t shape[2] = {V, D};
        snprintf(name, sizeof name, "%s%s", m->root, m->a->embed);
        GPTQ_TRY(upload_tensor(m, name, 2, shape, &h->W));
    } else {
        GPTQ_TRY(load_linear(m, m->a->lm_head, V, D, 0, &h->W, &h->B, NULL));
    }
    h->CH = HEAD_CHUNK_FLOATS / V;
    if (h->CH < 1) h->CH = 1;
    if (h->CH > T) h->CH = T;
    GPTQ_TRY(gptq_be_alloc(m->be, (size_t)(h->CH * D) * 4, &h->xn, "head activations"));
    GPTQ_TRY(gptq_be_alloc(m->be, (size_t)(h->CH * V) * 4, &h->lg, "logits"));
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
        GPTQ_TRY(m->a->norm(be, X, off, h->nw, h->nb, n, D, (float)c->norm_eps, h->xn));
        src = h->xn;
        off = 0;
    }
    if (m->rhead && m->rh_Q.qweight) { /* a packed head kept packed (generation) */
        const char *impl = NULL;
        GPTQ_TRY(gptq_be_check(be,
                               be->iface->matmul_q_fast(be->ctx, &m->rh_Q.t, src, off, n, NULL,
                                                        h->lg, 0, &impl),
                               "matmul_q_fast"));
        if (impl) m->fast_impl = impl;
    } else {
        GPTQ_TRY(gptq_be_check(be,
                               be->iface->gemm(be->ctx, 0, 1, n, V, D, 1.0f, src, off, D, h->W,
                                               0, D, 0.0f, h->lg, 0, V),
                               "gemm"));
    }
    if (h->B) GPTQ_TRY(GPTQ_BE_OP(be, bias_add, h->lg, 0, h->B, 0, n, V));
    /* final logit soft-capping (Gemma 2): the logits every caller sees,
     * perplexity's included */
    if (c->final_softcap != 0.0)
        GPTQ_TRY(GPTQ_BE_OP(be, softcap, h->lg, 0, n * V, (float)c->final_softcap));
    return GPTQ_OK;
}

const char *gptq_model_head_prefix(const gptq_model *m)
{
    return m->cfg.tie_word_embeddings ? NULL : m->a->lm_head;
}

int gptq_model_final_norm(gptq_model *m, const gptq_buf *X, gptq_buf *Y, int64_t T,
                          const gptq_buf **out)
{
    const gptq_model_config *c = &m->cfg;
    *out = X;
    if (!c->final_norm) return GPTQ_OK;
    char name[256];
    gptq_buf *nw = NULL, *nb = NULL;
    snprintf(name, sizeof name, "%s%s", m->root, m->a->final_norm);
    int st = load_norm(m, name, c->hidden_size, &nw, &nb);
    if (!st) st = m->a->norm(m->be, X, 0, nw, nb, T, c->hidden_size, (float)c->norm_eps, Y);
    free_buf(m, &nw);
    free_buf(m, &nb);
    if (!st) *out = Y;
    return st;
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
    GPTQ_TRY(check_batch(m, nseq, S));
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
        if (!st) st = GPTQ_BE_OP(m->be, cross_entropy, h.lg, 0, tgt, 0, n, V, nll, 0);
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
    GPTQ_TRY(check_batch(m, nseq, S));
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

/* ------------------------------------------------------------------ */
/* generation: resident weights and a KV cache                         */
/* ------------------------------------------------------------------ */

void gptq_model_kv_set_linears(gptq_model *m, gptq_linears linears) { m->linears = linears; }

void gptq_model_kv_set_join(gptq_model *m, int join) { m->join = join != 0; }

int64_t gptq_model_kv_joined(const gptq_model *m) { return m->n_joined; }

/* 1 when some linear of the model (the head included) is GPTQ-packed. */
static int any_packed(const gptq_model *m)
{
    char name[512];
    for (int L = 0; L < m->cfg.num_layers; L++)
        for (int i = 0; i < m->def[L].nlin; i++) {
            snprintf(name, sizeof name, "%s.%d.%s", m->layers, L, m->def[L].lin[i].name);
            if (gptq_weights_is_packed(m->w, name)) return 1;
        }
    return !m->cfg.tie_word_embeddings && gptq_weights_is_packed(m->w, m->a->lm_head);
}

/* Bytes of a packed linear's four tensors on the backend. */
static int64_t qdev_bytes(const gptq_qtensor *t)
{
    const int64_t b = t->bits;
    return t->K * b / 32 * t->N * 4 + t->ngroups * (t->N * b / 32) * 4 + t->ngroups * t->N * 2 +
           t->K * 4;
}

/* One resident linear (W f32 or Q packed, bias B) in the counts. */
static void account_linear(gptq_model *m, int64_t rows, int64_t cols, const gptq_buf *W,
                           const gptq_buf *B, const gptq_qdev *Q)
{
    if (Q && Q->qweight) {
        m->n_fast++;
        m->rbytes += qdev_bytes(&Q->t);
    } else if (W) {
        m->n_f32++;
        m->rbytes += rows * cols * 4;
    }
    if (B) m->rbytes += rows * 4;
}

/* The counts of what kv_begin kept: linears by path, weight bytes. */
static void resident_account(gptq_model *m)
{
    const gptq_model_config *c = &m->cfg;
    const int64_t V = c->vocab_size, D = c->hidden_size;
    const int ml = m->maxlin, nn = m->a->nnorms;
    m->n_fast = m->n_f32 = m->rbytes = m->n_joined = 0;
    for (int L = 0; L < c->num_layers; L++) {
        const layer_def *d = &m->def[L];
        const size_t r = (size_t)L * (size_t)ml;
        for (int i = 0; i < d->nlin; i++) {
            const joined *J = &m->rJ[r + i];
            if (J->lead < 0) {
                account_linear(m, d->lin[i].rows, d->lin[i].cols, m->rW[r + i], m->rB[r + i],
                               &m->rQ[r + i]);
                continue;
            }
            m->n_fast++, m->n_joined++;
            if (J->lead == i) /* the joined tensor and bias, once */
                m->rbytes += qdev_bytes(&J->q.t) + (J->bias ? J->cols * 4 : 0);
        }
        for (int j = 0; j < nn; j++) {
            const int64_t n = norm_len(c, &m->a->norms[j]);
            m->rbytes += (m->rnw[(size_t)L * nn + j] ? n * 4 : 0) +
                         (m->rnb[(size_t)L * nn + j] ? n * 4 : 0);
        }
    }
    m->rbytes += V * D * 4; /* embed_tokens (the head too when tied) */
    if (m->rP) m->rbytes += (c->max_positions + c->pos_offset) * D * 4;
    m->rbytes += (m->rh_nw ? D * 4 : 0) + (m->rh_nb ? D * 4 : 0);
    if (c->tie_word_embeddings) m->n_f32++;
    else account_linear(m, V, D, m->rh_W, m->rh_B, &m->rh_Q);
}

void gptq_model_kv_stats(const gptq_model *m, int64_t *fast_linears, int64_t *f32_linears,
                         const char **fast_impl, int64_t *weight_bytes, int64_t *kv_bytes)
{
    const gptq_model_config *c = &m->cfg;
    *fast_linears = m->n_fast;
    *f32_linears = m->n_f32;
    *fast_impl = m->fast_impl;
    *weight_bytes = m->rbytes;
    *kv_bytes = m->rloaded ? 2 * c->num_layers * m->kv_cap * c->num_kv_heads * c->head_dim * 4
                           : 0;
}

int gptq_model_kv_begin(gptq_model *m, int64_t cap)
{
    const gptq_model_config *c = &m->cfg;
    if (cap <= 0 || cap > INT32_MAX / 64)
        return gptq_error(GPTQ_ERR_INVALID, "KV cache of %lld positions: must be in [1, %d]",
                          (long long)cap, INT32_MAX / 64);
    const size_t kvbytes = (size_t)cap * (size_t)(c->num_kv_heads * c->head_dim) * sizeof(float);
    if (m->rloaded) { /* the weights are there: an empty cache of at least cap positions */
        m->kv_len = 0;
        if (cap <= m->kv_cap) return GPTQ_OK;
        int st = GPTQ_OK;
        for (int L = 0; L < c->num_layers; L++) {
            free_buf(m, &m->kc[L]);
            free_buf(m, &m->vc[L]);
            if (!st) st = gptq_be_alloc(m->be, kvbytes, &m->kc[L], "key cache");
            if (!st) st = gptq_be_alloc(m->be, kvbytes, &m->vc[L], "value cache");
        }
        m->kv_cap = cap;
        if (st) gptq_model_kv_end(m);
        return st;
    }
    if (!gptq_be_supports(m->be, GPTQ_OP_ATTENTION_KV))
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "backend %s has no 'attention_kv' op (attention against a KV cache): "
                          "it cannot generate",
                          m->be->iface->name);
    const int has_fast = gptq_be_supports(m->be, GPTQ_OP_MATMUL_Q_FAST);
    if (m->linears == GPTQ_LINEARS_FAST && !has_fast)
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "backend %s has no fast A16 matmul (matmul_q_fast): the fast linears "
                          "cannot run on it (the f32 linears can)",
                          m->be->iface->name);
    if (m->linears == GPTQ_LINEARS_FAST && !any_packed(m))
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s has no GPTQ-packed linear: the fast linears have nothing to run "
                          "(a floating-point model runs on f32 linears)",
                          m->dir);
    m->fast_ok = has_fast && m->linears != GPTQ_LINEARS_F32;
    gptq_model_layer_unload(m);
    const size_t NL = (size_t)c->num_layers, ml = (size_t)m->maxlin, nn = (size_t)m->a->nnorms;
    m->rQ = gptq_calloc(NL * ml, sizeof *m->rQ, "resident packed weights");
    m->rJ = gptq_calloc(NL * ml, sizeof *m->rJ, "resident joined weights");
    for (size_t i = 0; m->rJ && i < NL * ml; i++) m->rJ[i].lead = -1;
    m->rW = gptq_calloc(NL * ml, sizeof *m->rW, "resident weights");
    m->rB = gptq_calloc(NL * ml, sizeof *m->rB, "resident weights");
    m->rnw = gptq_calloc(NL * (nn ? nn : 1), sizeof *m->rnw, "resident norms");
    m->rnb = gptq_calloc(NL * (nn ? nn : 1), sizeof *m->rnb, "resident norms");
    m->rloaded = gptq_calloc(NL, 1, "resident layers");
    m->kc = gptq_calloc(NL, sizeof *m->kc, "KV cache");
    m->vc = gptq_calloc(NL, sizeof *m->vc, "KV cache");
    int st = m->rQ && m->rJ && m->rW && m->rB && m->rnw && m->rnb && m->rloaded && m->kc && m->vc
                 ? GPTQ_OK
                 : GPTQ_ERR_NOMEM;
    m->kv_cap = cap;
    m->kv_len = 0;
    for (size_t L = 0; !st && L < NL; L++) {
        st = gptq_model_layer_load(m, (int)L);
        if (!st) st = gptq_be_alloc(m->be, kvbytes, &m->kc[L], "key cache");
        if (!st) st = gptq_be_alloc(m->be, kvbytes, &m->vc[L], "value cache");
    }
    free_layer(m);
    /* the embedding tables and the head */
    char name[256];
    const int64_t V = c->vocab_size, D = c->hidden_size;
    const int64_t shape[2] = {V, D}, pshape[2] = {c->max_positions + c->pos_offset, D};
    snprintf(name, sizeof name, "%s%s", m->root, m->a->embed);
    if (!st) st = upload_tensor(m, name, 2, shape, &m->rE);
    snprintf(name, sizeof name, "%s%s", m->root, m->a->positions ? m->a->positions : "");
    if (!st && m->a->positions) st = upload_tensor(m, name, 2, pshape, &m->rP);
    snprintf(name, sizeof name, "%s%s", m->root, m->a->final_norm);
    if (!st && c->final_norm) st = load_norm(m, name, D, &m->rh_nw, &m->rh_nb);
    if (!st && c->tie_word_embeddings) m->rh_W = m->rE; /* the same table: freed once */
    if (!st && !c->tie_word_embeddings)
        st = load_linear(m, m->a->lm_head, V, D, 0, &m->rh_W, &m->rh_B, &m->rh_Q);
    if (!st) m->rhead = 1;
    if (!st) resident_account(m);
    if (st) {
        gptq_error_prefix(st, "%s: keeping the model on backend %s for generation", m->dir,
                          m->be->iface->name);
        gptq_model_kv_end(m);
    }
    return st;
}

int64_t gptq_model_kv_len(const gptq_model *m) { return m->kv_len; }

void gptq_model_kv_reset(gptq_model *m) { m->kv_len = 0; }

void gptq_model_kv_end(gptq_model *m)
{
    if (!m || !m->rloaded) return;
    free_layer(m);
    const size_t NL = (size_t)m->cfg.num_layers, ml = (size_t)m->maxlin;
    const size_t nn = (size_t)m->a->nnorms;
    for (size_t i = 0; m->rW && i < NL * ml; i++) {
        free_buf(m, &m->rW[i]);
        free_buf(m, &m->rB[i]);
    }
    for (size_t i = 0; m->rQ && i < NL * ml; i++) gptq_qdev_free(m->be, &m->rQ[i]);
    for (size_t i = 0; m->rJ && i < NL * ml; i++) {
        gptq_qdev_free(m->be, &m->rJ[i].q);
        free_buf(m, &m->rJ[i].bias);
    }
    gptq_qdev_free(m->be, &m->rh_Q);
    for (size_t i = 0; m->rnw && i < NL * nn; i++) {
        free_buf(m, &m->rnw[i]);
        free_buf(m, &m->rnb[i]);
    }
    for (size_t L = 0; m->kc && L < NL; L++) {
        free_buf(m, &m->kc[L]);
        free_buf(m, &m->vc[L]);
    }
    if (m->rh_W == m->rE) m->rh_W = NULL;
    free_buf(m, &m->rE);
    free_buf(m, &m->rP);
    free_buf(m, &m->rh_nw);
    free_buf(m, &m->rh_nb);
    free_buf(m, &m->rh_W);
    free_buf(m, &m->rh_B);
    free(m->rQ);
    free(m->rJ);
    m->rJ = m->J = NULL;
    free(m->rW);
    free(m->rB);
    free(m->rnw);
    free(m->rnb);
    free(m->rloaded);
    free(m->kc);
    free(m->vc);
    m->rW = m->rB = m->rnw = m->rnb = m->kc = m->vc = NULL;
    m->rQ = m->Q = NULL;
    m->rloaded = NULL;
    m->rhead = m->fast_ok = 0;
    m->kv_cap = m->kv_len = 0;
    m->n_fast = m->n_f32 = m->rbytes = m->n_joined = 0;
    m->fast_impl = NULL;
    free_workspace(m);
}

int gptq_model_kv_forward(gptq_model *m, const int32_t *ids, int64_t T, int64_t nlast,
                          float *logits)
{
    if (!m->rloaded)
        return gptq_error(GPTQ_ERR_INVALID, "%s: no KV cache open (gptq_model_kv_begin)",
                          m->dir);
    if (T <= 0 || nlast < 0 || nlast > T)
        return gptq_error(GPTQ_ERR_INVALID, "KV forward of %lld tokens with %lld logit rows",
                          (long long)T, (long long)nlast);
    if (m->kv_len + T > m->kv_cap)
        return gptq_error(GPTQ_ERR_INVALID,
                          "%s: %lld more tokens do not fit the KV cache (%lld of %lld positions "
                          "used)",
                          m->dir, (long long)T, (long long)m->kv_len, (long long)m->kv_cap);
    gptq_buf *X = NULL;
    m->pos0 = m->kv_len;
    m->kv_on = 1;
    int st = gptq_model_alloc_hidden(m, 1, T, &X);
    if (!st) st = gptq_model_embed(m, ids, 1, T, X);
    for (int L = 0; !st && L < m->cfg.num_layers; L++) {
        st = gptq_model_layer_forward(m, L, X, X, 1, T, NULL, NULL);
        if (st) gptq_error_prefix(st, "layer %d", L);
    }
    free_layer(m);
    m->pos0 = 0;
    m->kv_on = 0;
    /* the cache holds the new positions only once every layer has them */
    if (!st) m->kv_len += T;
    if (!st && nlast > 0) st = gptq_model_head_logits(m, X, T - nlast, nlast, logits);
    gptq_be_free(m->be, X);
    return st;
}
