/*
 * attention.c — the attention half of a decoder layer, written once for
 * every family (arch.h: gptq_attn_block says what differs). From the
 * layer's input X (T, D) to X + attention's contribution:
 *   xn = norm(X)                        the family's norm, in_w / in_b
 *   hook of group 0 on xn               (the projections' input)
 *   q, k, v = lq(xn), lk(xn), lv(xn)    or one fused linear whose rows
 *                                       [q | k | v] the gather op splits
 *   q, k = norm of each head's vector   q_norm / k_norm, when given
 *   q, k = rope(q), rope(k)             when a table is given
 *   o = attention(q, k, v)              gptq_layer_attention: the layer's
 *                                       window, softcap, scale, KV cache
 *   hook of group 1 on o                (o_proj's input)
 *   y = lo(o), y = norm(y, post_norm)   the post-norm when given (Gemma)
 *   X' = X + y
 * Heads, head_dim, hidden size and eps are the config's.
 */
#include "arch.h"

/* A hook's stop or error ends the block and goes back to the layer. */
#define BLOCK_HOOK(x, g, X, cols)                                 \
    do {                                                          \
        int h_ = gptq_layer_call_hook((x), (g), (X), (cols));     \
        if (h_) return h_;                                        \
    } while (0)

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
    if (b->fused) {
        const int64_t cols = (H + 2 * Hk) * d;
        GPTQ_TRY(gptq_layer_linear(x, b->lqkv, b->xn, b->fused));
        GPTQ_TRY(GPTQ_BE_OP(be, gather, b->Q, b->fused, T, H * d, T, cols, NULL, b->iq, 4));
        GPTQ_TRY(GPTQ_BE_OP(be, gather, b->K, b->fused, T, Hk * d, T, cols, NULL, b->ik, 4));
        GPTQ_TRY(GPTQ_BE_OP(be, gather, b->V, b->fused, T, Hk * d, T, cols, NULL, b->iv, 4));
    } else {
        GPTQ_TRY(gptq_layer_linear(x, b->lq, b->xn, b->Q));
        GPTQ_TRY(gptq_layer_linear(x, b->lk, b->xn, b->K));
        GPTQ_TRY(gptq_layer_linear(x, b->lv, b->xn, b->V));
    }
    /* per head: Q (T, H d) is (T H, d) rows, one a head */
    if (b->q_norm) GPTQ_TRY(c->arch->norm(be, b->Q, 0, b->q_norm, NULL, T * H, d, eps, b->Q));
    if (b->k_norm) GPTQ_TRY(c->arch->norm(be, b->K, 0, b->k_norm, NULL, T * Hk, d, eps, b->K));
    if (b->rope) {
        GPTQ_TRY(GPTQ_BE_OP(be, rope, b->Q, 0, T, H, d, b->rot, b->pos, 0, b->rope, x->npos));
        GPTQ_TRY(GPTQ_BE_OP(be, rope, b->K, 0, T, Hk, d, b->rot, b->pos, 0, b->rope, x->npos));
    }
    GPTQ_TRY(gptq_layer_attention(x, b->Q, b->K, b->V, H, Hk, d, b->scale, b->window,
                                  b->softcap, b->O));
    BLOCK_HOOK(x, 1, b->O, H * d);
    GPTQ_TRY(gptq_layer_linear(x, b->lo, b->O, b->Y));
    if (b->post_norm) GPTQ_TRY(c->arch->norm(be, b->Y, 0, b->post_norm, NULL, T, D, eps, b->Y));
    return GPTQ_BE_OP(be, add, X_in, 0, b->Y, 0, T * D, X_out, 0);
}
