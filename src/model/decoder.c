/*
 * decoder.c — the two halves of a decoder layer, written once for every
 * family (arch.h: gptq_attn_block and gptq_mlp_block say what differs). A
 * family's layer forward is its attention half, then its MLP half.
 *
 * The attention half, from the layer's input X (T, D) to X + attention:
 *   xn = norm(X)                        the family's norm, in_w / in_b
 *   hook of group 0 on xn               (the projections' input)
 *   q, k, v = lq(xn), lk(xn), lv(xn)    or one fused linear whose rows
 *                                       [q | k | v] the gather op splits;
 *                                       in generation, one joined tensor
 *                                       (gptq_model_kv_set_join) whose
 *                                       single row at T = 1 is read in
 *                                       place (offsets), else split
 *   q, k = norm of each head's vector   q_norm / k_norm, when given
 *   q, k = rope(q), rope(k)             when a table is given
 *   o = attention(q, k, v)              gptq_layer_attention: the layer's
 *                                       window, softcap, scale, KV cache
 *   hook of group 1 on o                (o_proj's input)
 *   y = lo(o), y = norm(y, post_norm)   the post-norm when given (Gemma)
 *   X' = X + y
 * The MLP half, from h (T, D) to h + MLP:
 *   xn = norm(h)                        in_w / in_b
 *   hook of group 2 on xn               (the MLP's input)
 *   g = act(lgate(xn)) * lup(xn)        gated (SwiGLU, GeGLU), gate and up
 *                                       from one fused linear [gate | up]
 *                                       split by the gather op (Phi-3);
 *   or g = relu(lgate(xn))              (OPT's fc1)
 *   hook of group 3 on g                (down's input)
 *   y = ldown(g), y = norm(y, post_norm)
 *   h' = h + y
 * Heads, head_dim, hidden and intermediate sizes and eps are the config's.
 */
#include "arch.h"

/* A hook's stop or error ends the block and goes back to the layer. */
#define BLOCK_HOOK(x, g, X, cols)                                 \
    do {                                                          \
        int h_ = gptq_layer_call_hook((x), (g), (X), (cols));     \
        if (h_) return h_;                                        \
    } while (0)

/* The columns idx (n of them) of the fused output (T, cols) into dst (T, n). */
static int split(const gptq_layer_ctx *x, gptq_buf *dst, const gptq_buf *fused, int64_t n,
                 int64_t cols, const gptq_buf *idx)
{
    return GPTQ_BE_OP(x->be, gather, dst, fused, x->T, n, x->T, cols, NULL, idx, 4);
}

int gptq_layer_attention_block(const gptq_layer_ctx *x, const gptq_attn_block *b,
                               const gptq_buf *X_in, gptq_buf *X_out)
{
    const gptq_model_config *c = x->c;
    gptq_backend *be = x->be;
    const int64_t T = x->T, D = c->hidden_size;
    const int64_t H = c->num_heads, Hk = c->num_kv_heads, d = c->head_dim;
    const float eps = (float)c->norm_eps;

    GPTQ_TRY(c->arch->norm(be, X_in, 0, b->in_w, b->in_b, T, D, eps, b->xn));
    BLOCK_HOOK(x, 0, b->xn, D);
    /* q, k, v: a buffer and an element offset each (views of one joined
     * output row at T = 1) */
    gptq_buf *Q = b->Q, *K = b->K, *V = b->V;
    size_t qo = 0, ko = 0, vo = 0;
    int lead, lk, lv;
    int64_t cq, ck, cv;
    if (b->fused) {
        const int64_t cols = (H + 2 * Hk) * d;
        GPTQ_TRY(gptq_layer_linear(x, b->lqkv, b->xn, b->fused));
        GPTQ_TRY(split(x, b->Q, b->fused, H * d, cols, b->iq));
        GPTQ_TRY(split(x, b->K, b->fused, Hk * d, cols, b->ik));
        GPTQ_TRY(split(x, b->V, b->fused, Hk * d, cols, b->iv));
    } else if (gptq_layer_joined(x, b->lq, &lead, &cq) && gptq_layer_joined(x, b->lk, &lk, &ck) &&
               gptq_layer_joined(x, b->lv, &lv, &cv) && lk == lead && lv == lead) {
        gptq_buf *J;
        int64_t cols;
        GPTQ_TRY(gptq_layer_linear_joined(x, lead, b->xn, &J, &cols));
        if (T == 1) {
            Q = K = V = J;
            qo = (size_t)cq, ko = (size_t)ck, vo = (size_t)cv;
        } else {
            GPTQ_TRY(gptq_layer_joined_split(x, b->Q, J, cq, H * d, cols));
            GPTQ_TRY(gptq_layer_joined_split(x, b->K, J, ck, Hk * d, cols));
            GPTQ_TRY(gptq_layer_joined_split(x, b->V, J, cv, Hk * d, cols));
        }
    } else {
        GPTQ_TRY(gptq_layer_linear(x, b->lq, b->xn, b->Q));
        GPTQ_TRY(gptq_layer_linear(x, b->lk, b->xn, b->K));
        GPTQ_TRY(gptq_layer_linear(x, b->lv, b->xn, b->V));
    }
    /* per head: Q (T, H d) is (T H, d) rows, one a head; into the work
     * buffers (from a joined row too) */
    if (b->q_norm) {
        GPTQ_TRY(c->arch->norm(be, Q, qo, b->q_norm, NULL, T * H, d, eps, b->Q));
        Q = b->Q, qo = 0;
    }
    if (b->k_norm) {
        GPTQ_TRY(c->arch->norm(be, K, ko, b->k_norm, NULL, T * Hk, d, eps, b->K));
        K = b->K, ko = 0;
    }
    if (b->rope) {
        GPTQ_TRY(GPTQ_BE_OP(be, rope, Q, qo, T, H, d, b->rot, b->pos, 0, b->rope, x->npos));
        GPTQ_TRY(GPTQ_BE_OP(be, rope, K, ko, T, Hk, d, b->rot, b->pos, 0, b->rope, x->npos));
    }
    GPTQ_TRY(gptq_layer_attention(x, Q, qo, K, ko, V, vo, H, Hk, d, b->scale, b->window,
                                  b->softcap, b->O));
    BLOCK_HOOK(x, 1, b->O, H * d);
    GPTQ_TRY(gptq_layer_linear(x, b->lo, b->O, b->Y));
    if (b->post_norm) GPTQ_TRY(c->arch->norm(be, b->Y, 0, b->post_norm, NULL, T, D, eps, b->Y));
    return GPTQ_BE_OP(be, add, X_in, 0, b->Y, 0, T * D, X_out, 0);
}

int gptq_layer_mlp_block(const gptq_layer_ctx *x, const gptq_mlp_block *b, const gptq_buf *X_in,
                         gptq_buf *X_out)
{
    const gptq_model_config *c = x->c;
    gptq_backend *be = x->be;
    const int64_t T = x->T, D = c->hidden_size, F = c->intermediate_size;
    const float eps = (float)c->norm_eps;

    GPTQ_TRY(c->arch->norm(be, X_in, 0, b->in_w, b->in_b, T, D, eps, b->xn));
    BLOCK_HOOK(x, 2, b->xn, D);
    /* gate and up: a buffer and an element offset each (views of one
     * joined output row at T = 1); the activation writes G */
    const gptq_buf *G = b->G, *U = b->U;
    size_t go = 0, uo = 0;
    int lead, lu;
    int64_t cg, cu;
    if (b->fused) { /* gate first, then up (Phi3MLP's chunk) */
        GPTQ_TRY(gptq_layer_linear(x, b->lgu, b->xn, b->fused));
        GPTQ_TRY(split(x, b->G, b->fused, F, 2 * F, b->ig));
        GPTQ_TRY(split(x, b->U, b->fused, F, 2 * F, b->iu));
    } else if (b->act != GPTQ_MLP_RELU && gptq_layer_joined(x, b->lgate, &lead, &cg) &&
               gptq_layer_joined(x, b->lup, &lu, &cu) && lu == lead) {
        gptq_buf *J;
        int64_t cols;
        GPTQ_TRY(gptq_layer_linear_joined(x, lead, b->xn, &J, &cols));
        if (T == 1) {
            G = U = J;
            go = (size_t)cg, uo = (size_t)cu;
        } else {
            GPTQ_TRY(gptq_layer_joined_split(x, b->G, J, cg, F, cols));
            GPTQ_TRY(gptq_layer_joined_split(x, b->U, J, cu, F, cols));
        }
    } else {
        GPTQ_TRY(gptq_layer_linear(x, b->lgate, b->xn, b->G));
        if (b->act != GPTQ_MLP_RELU) GPTQ_TRY(gptq_layer_linear(x, b->lup, b->xn, b->U));
    }
    switch (b->act) {
    case GPTQ_MLP_SILU:
        GPTQ_TRY(GPTQ_BE_OP(be, silu_mul, G, go, U, uo, T * F, b->G, 0));
        break;
    case GPTQ_MLP_GELU_TANH:
        GPTQ_TRY(GPTQ_BE_OP(be, gelu_tanh_mul, G, go, U, uo, T * F, b->G, 0));
        break;
    case GPTQ_MLP_RELU:
        GPTQ_TRY(GPTQ_BE_OP(be, relu, b->G, 0, T * F));
        break;
    }
    BLOCK_HOOK(x, 3, b->G, F);
    GPTQ_TRY(gptq_layer_linear(x, b->ldown, b->G, b->Y));
    if (b->post_norm) GPTQ_TRY(c->arch->norm(be, b->Y, 0, b->post_norm, NULL, T, D, eps, b->Y));
    return GPTQ_BE_OP(be, add, X_in, 0, b->Y, 0, T * D, X_out, 0);
}
