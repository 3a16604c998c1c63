/*
 * no_forward.c — for the fuzz targets that read configs: the family files
 * (src/model/arch_*.c) hold their layer forwards beside their config
 * parsing, and those call into forward.c, decoder.c and backend.c,
 * which a config reader never reaches. These stand in for them (linking
 * the real ones would pull in the whole CPU backend) and fail if ever
 * called.
 */
#include "model/arch.h"

static int not_here(void)
{
    return gptq_error(GPTQ_ERR_UNSUPPORTED, "fuzz: no forward pass in this target");
}

int gptq_be_check(gptq_backend *be, int status, const char *op)
{
    (void)be, (void)status, (void)op;
    return not_here();
}

int gptq_be_upload(gptq_backend *be, gptq_buf *dst, size_t off, const void *src, size_t n)
{
    (void)be, (void)dst, (void)off, (void)src, (void)n;
    return not_here();
}

int gptq_be_supports(const gptq_backend *be, gptq_op op)
{
    (void)be, (void)op;
    return 0;
}

gptq_op gptq_op_of_slot(size_t off)
{
    (void)off;
    return (gptq_op)0;
}

int gptq_be_missing_op(gptq_backend *be, gptq_op op)
{
    (void)be, (void)op;
    return not_here();
}

int gptq_layer_linear(const gptq_layer_ctx *x, int i, const gptq_buf *X, gptq_buf *Y)
{
    (void)x, (void)i, (void)X, (void)Y;
    return not_here();
}

int gptq_layer_call_hook(const gptq_layer_ctx *x, int g, const gptq_buf *X, int64_t cols)
{
    (void)x, (void)g, (void)X, (void)cols;
    return not_here();
}

int gptq_layer_attention_block(const gptq_layer_ctx *x, const gptq_attn_block *b,
                               const gptq_buf *X_in, gptq_buf *X_out)
{
    (void)x, (void)b, (void)X_in, (void)X_out;
    return not_here();
}

int gptq_layer_mlp_block(const gptq_layer_ctx *x, const gptq_mlp_block *b, const gptq_buf *X_in,
                         gptq_buf *X_out)
{
    (void)x, (void)b, (void)X_in, (void)X_out;
    return not_here();
}
