/*
 * ctensors_weights.c — a compressed-tensors pack-quantized linear read as
 * our v2 gptq_packed (model.h gptq_ct_check_tensors / gptq_ct_read_packed;
 * src/format/ctensors.c states the layout and its sources).
 */
#include <stdio.h>
#include <string.h>

#include "../format/ctensors.h"
#include "model.h"

/* name's header entry: dtype and 2-D shape {d0, d1} (d1 < 0: 1-D {d0}). */
static int expect(const gptq_weights *w, const char *dir, const char *name, gptq_dtype dt,
                  int64_t d0, int64_t d1, gptq_st_info *info)
{
    GPTQ_TRY(gptq_weights_find(w, name, info));
    const int nd = d1 < 0 ? 1 : 2;
    if (info->dtype == dt && info->ndim == nd && info->shape[0] == d0 &&
        (nd == 1 || info->shape[1] == d1))
        return GPTQ_OK;
    char want[64];
    if (nd == 1) snprintf(want, sizeof want, "[%lld]", (long long)d0);
    else snprintf(want, sizeof want, "[%lld, %lld]", (long long)d0, (long long)d1);
    return gptq_error(GPTQ_ERR_FORMAT, "%s: compressed-tensors tensor '%s' is %s with %d dims, "
                      "expected %s %s", dir, name, gptq_dtype_name(info->dtype), info->ndim,
                      gptq_dtype_name(dt), want);
}

/* The module's settings and N, K: from weight_shape (I64, or I32 as
 * compression_param_info declares it), checked against rows/cols when > 0. */
static int module_shape(const gptq_weights *w, const char *dir, const gptq_ckpt_quant *q,
                        const char *prefix, int64_t rows, int64_t cols, gptq_ckpt_quant *mq,
                        int64_t *N, int64_t *K)
{
    *mq = *q;
    if (q->dynamic.n) GPTQ_TRY(gptq_ckpt_quant_for_module(q, prefix, mq));
    char name[600];
    gptq_st_info info;
    snprintf(name, sizeof name, "%s.weight_shape", prefix);
    GPTQ_TRY(gptq_weights_find(w, name, &info));
    if (info.ndim != 1 || info.shape[0] != 2 || (info.dtype != GPTQ_I64 && info.dtype != GPTQ_I32))
        return gptq_error(GPTQ_ERR_FORMAT, "%s: '%s' must be I64 (or I32) [2]: {out, in}", dir,
                          name);
    int64_t v[2];
    for (int i = 0; i < 2; i++) {
        if (info.dtype == GPTQ_I64) memcpy(&v[i], (const char *)info.data + 8 * i, 8);
        else {
            int32_t x;
            memcpy(&x, (const char *)info.data + 4 * i, 4);
            v[i] = x;
        }
    }
    /* 2^40 bounds the arithmetic on them (a real weight is far smaller;
     * its tensors' shapes are checked against these next) */
    if (v[0] <= 0 || v[1] <= 0 || v[0] > (1ll << 40) || v[1] > (1ll << 40) ||
        (rows > 0 && v[0] != rows) || (cols > 0 && v[1] != cols))
        return gptq_error(GPTQ_ERR_FORMAT, "%s: '%s' = {%lld, %lld}, but the module is "
                          "(%lld, %lld) (out x in)", dir, name, (long long)v[0], (long long)v[1],
                          (long long)rows, (long long)cols);
    *N = v[0];
    *K = v[1];
    return GPTQ_OK;
}

int gptq_ct_check_tensors(const gptq_weights *w, const char *dir, const gptq_ckpt_quant *q,
                          const char *prefix, int64_t rows, int64_t cols)
{
    gptq_ckpt_quant mq;
    int64_t N = 0, K = 0;
    GPTQ_TRY(module_shape(w, dir, q, prefix, rows, cols, &mq, &N, &K));
    if (gptq_format_check_dims(GPTQ_ERR_FORMAT, mq.bits, N, K))
        return gptq_error_prefix(GPTQ_ERR_FORMAT, "%s: %s", dir, prefix);
    const int pf = 32 / mq.bits;
    const int64_t G = mq.group_size > 0 ? mq.group_size : K, ng = (K + G - 1) / G;
    char name[600];
    gptq_st_info info;
    snprintf(name, sizeof name, "%s.weight_packed", prefix);
    GPTQ_TRY(expect(w, dir, name, GPTQ_I32, N, (K + pf - 1) / pf, &info));
    snprintf(name, sizeof name, "%s.weight_scale", prefix);
    GPTQ_TRY(expect(w, dir, name, GPTQ_F16, N, ng, &info));
    snprintf(name, sizeof name, "%s.weight_zero_point", prefix);
    if (!mq.sym) GPTQ_TRY(expect(w, dir, name, GPTQ_I32, (N + pf - 1) / pf, ng, &info));
    /* the config and the tensors disagree: read as symmetric, the stored
     * zero points would be replaced by 2^(bits-1) without a word */
    else if (gptq_weights_has(w, name))
        return gptq_error(GPTQ_ERR_FORMAT, "%s: '%s' is stored, but quantization_config says "
                          "symmetric (no zero points): the config and the tensors disagree",
                          dir, name);
    return GPTQ_OK;
}

int gptq_ct_read_packed(const gptq_weights *w, const char *dir, const gptq_ckpt_quant *q,
                        const char *prefix, int64_t rows, int64_t cols, gptq_packed *p)
{
    memset(p, 0, sizeof *p);
    GPTQ_TRY(gptq_ct_check_tensors(w, dir, q, prefix, rows, cols));
    gptq_ckpt_quant mq;
    int64_t N = 0, K = 0;
    GPTQ_TRY(module_shape(w, dir, q, prefix, rows, cols, &mq, &N, &K));
    const int pf = 32 / mq.bits;
    const int64_t G = mq.group_size > 0 ? mq.group_size : K;
    gptq_ct_linear c = {.bits = mq.bits, .sym = mq.sym, .N = N, .K = K,
                        .ngroups = (K + G - 1) / G, .packed_cols = (K + pf - 1) / pf,
                        .zp_rows = mq.sym ? 0 : (N + pf - 1) / pf};
    char name[600];
    gptq_st_info a, b, z = {0};
    snprintf(name, sizeof name, "%s.weight_packed", prefix);
    GPTQ_TRY(gptq_weights_find(w, name, &a));
    snprintf(name, sizeof name, "%s.weight_scale", prefix);
    GPTQ_TRY(gptq_weights_find(w, name, &b));
    snprintf(name, sizeof name, "%s.weight_zero_point", prefix);
    if (!mq.sym) GPTQ_TRY(gptq_weights_find(w, name, &z));
    /* copies: the format does not align tensors, and an int32 load from
     * an unaligned address is undefined in C */
    c.weight_packed = gptq_malloc(a.nbytes, "weight_packed");
    c.weight_scale = gptq_malloc(b.nbytes, "weight_scale");
    c.weight_zero_point = mq.sym ? NULL : gptq_malloc(z.nbytes, "weight_zero_point");
    if (!c.weight_packed || !c.weight_scale || (!mq.sym && !c.weight_zero_point)) {
        gptq_ct_free(&c);
        return GPTQ_ERR_NOMEM;
    }
    memcpy(c.weight_packed, a.data, a.nbytes);
    memcpy(c.weight_scale, b.data, b.nbytes);
    if (!mq.sym) memcpy(c.weight_zero_point, z.data, z.nbytes);
    int st = gptq_ct_to_packed(&c, mq.group_size, p);
    gptq_ct_free(&c);
    if (st) gptq_error_prefix(st, "%s: %s", dir, prefix);
    return st;
}
