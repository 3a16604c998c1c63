/*
 * qtensor.c — packed tensors on a backend (format.h) and the public
 * dequantize / A16 matmul through a backend's ops (gptq.h).
 */
#include <string.h>

#include "format.h"

void gptq_qdev_free(gptq_backend *be, gptq_qdev *q)
{
    if (!q) return;
    gptq_be_free(be, q->qweight);
    gptq_be_free(be, q->qzeros);
    gptq_be_free(be, q->scales);
    gptq_be_free(be, q->g_idx);
    memset(q, 0, sizeof *q);
}

int gptq_qdev_upload(gptq_backend *be, const gptq_packed *p, gptq_format fmt, int with_qweight,
                     gptq_qdev *out)
{
    memset(out, 0, sizeof *out);
    int st = gptq_packed_check("packed tensor", p, fmt, with_qweight, 1, 1);
    if (st) return st;
    const int b = p->bits;
    const int64_t K = p->in_features, N = p->out_features, ng = p->ngroups;
    const size_t nqw = (size_t)(K * b / 32 * N) * 4, nqz = (size_t)(ng * (N * b / 32)) * 4,
                 nsc = (size_t)(ng * N) * 2, ngi = (size_t)K * 4;
    if (with_qweight) {
        st = gptq_be_alloc(be, nqw, &out->qweight, "qweight");
        if (!st) st = gptq_be_upload(be, out->qweight, 0, p->qweight, nqw);
    }
    if (!st) st = gptq_be_alloc(be, nqz, &out->qzeros, "qzeros");
    if (!st) st = gptq_be_upload(be, out->qzeros, 0, p->qzeros, nqz);
    if (!st) st = gptq_be_alloc(be, nsc, &out->scales, "scales");
    if (!st) st = gptq_be_upload(be, out->scales, 0, p->scales, nsc);
    if (!st) st = gptq_be_alloc(be, ngi, &out->g_idx, "g_idx");
    if (!st) st = gptq_be_upload(be, out->g_idx, 0, p->g_idx, ngi);
    if (st) {
        gptq_qdev_free(be, out);
        return st;
    }
    out->t = (gptq_qtensor){.qweight = out->qweight, .qzeros = out->qzeros,
                            .scales = out->scales, .g_idx = out->g_idx, .bits = b,
                            .zero_add = gptq_format_get(fmt)->zero_offset, .K = K, .N = N,
                            .ngroups = ng};
    return GPTQ_OK;
}

int gptq_dequantize_on(gptq_backend *be, const gptq_packed *p, gptq_format fmt, float *W)
{
    if (!be) return gptq_error(GPTQ_ERR_INVALID, "gptq_dequantize_on: no backend");
    if (!W) return gptq_error(GPTQ_ERR_INVALID, "gptq_dequantize_on: W is NULL");
    gptq_qdev q;
    int st = gptq_qdev_upload(be, p, fmt, 1, &q);
    if (st) return gptq_error_prefix(st, "gptq_dequantize_on");
    const size_t nw = (size_t)(p->in_features * p->out_features) * 4;
    gptq_buf *Wb = NULL;
    st = gptq_be_alloc(be, nw, &Wb, "the dequantized weight");
    if (!st) st = gptq_be_check(be, be->iface->dequantize(be->ctx, &q.t, Wb, 0), "dequantize");
    if (!st) st = gptq_be_download(be, Wb, 0, W, nw);
    gptq_be_free(be, Wb);
    gptq_qdev_free(be, &q);
    return st;
}

/* gptq_matmul_on and gptq_matmul_fast_on: the same transfers around
 * matmul_q or matmul_q_fast. */
static int matmul_via(gptq_backend *be, const gptq_packed *p, gptq_format fmt, const float *X,
                      int64_t M, const float *bias, float *Y, int fast, const char **impl)
{
    const char *fn = fast ? "gptq_matmul_fast_on" : "gptq_matmul_on";
    if (!be) return gptq_error(GPTQ_ERR_INVALID, "%s: no backend", fn);
    if (fast && !gptq_be_supports(be, GPTQ_OP_MATMUL_Q_FAST))
        return gptq_error(GPTQ_ERR_UNSUPPORTED, "%s: backend %s has no fast A16 matmul "
                          "(matmul_q_fast); the cpu backend has one, or use the reference "
                          "(without --fast)", fn, gptq_backend_name(be));
    if (M < 0) return gptq_error(GPTQ_ERR_SHAPE, "%s: M = %lld is negative", fn, (long long)M);
    if (M > 0 && (!X || !Y)) return gptq_error(GPTQ_ERR_INVALID, "%s: X or Y is NULL", fn);
    gptq_qdev q;
    int st = gptq_qdev_upload(be, p, fmt, 1, &q);
    if (st) return gptq_error_prefix(st, "%s", fn);
    if (M == 0 && !fast) {
        gptq_qdev_free(be, &q);
        return GPTQ_OK;
    }
    const int64_t K = p->in_features, N = p->out_features;
    gptq_buf *Xb = NULL, *Bb = NULL, *Yb = NULL;
    /* M = 0 still runs a fast op (it reports its code path), on 1-element buffers */
    const int64_t mx = M > 0 ? M : 0;
    st = gptq_be_alloc(be, (size_t)(mx * K > 0 ? mx * K : 1) * 4, &Xb, "X");
    if (!st && M > 0) st = gptq_be_upload(be, Xb, 0, X, (size_t)(M * K) * 4);
    if (!st && bias) st = gptq_be_alloc(be, (size_t)N * 4, &Bb, "bias");
    if (!st && bias) st = gptq_be_upload(be, Bb, 0, bias, (size_t)N * 4);
    if (!st) st = gptq_be_alloc(be, (size_t)(mx * N > 0 ? mx * N : 1) * 4, &Yb, "Y");
    if (!st && fast)
        st = gptq_be_check(be, be->iface->matmul_q_fast(be->ctx, &q.t, Xb, 0, M, Bb, Yb, 0, impl),
                           "matmul_q_fast");
    else if (!st)
        st = gptq_be_check(be, be->iface->matmul_q(be->ctx, &q.t, Xb, 0, M, Bb, Yb, 0), "matmul_q");
    if (!st && M > 0) st = gptq_be_download(be, Yb, 0, Y, (size_t)(M * N) * 4);
    gptq_be_free(be, Xb);
    gptq_be_free(be, Bb);
    gptq_be_free(be, Yb);
    gptq_qdev_free(be, &q);
    return st;
}

int gptq_matmul_on(gptq_backend *be, const gptq_packed *p, gptq_format fmt, const float *X,
                   int64_t M, const float *bias, float *Y)
{
    return matmul_via(be, p, fmt, X, M, bias, Y, 0, NULL);
}

int gptq_matmul_fast_on(gptq_backend *be, const gptq_packed *p, gptq_format fmt, const float *X,
                        int64_t M, const float *bias, float *Y, const char **impl)
{
    if (impl) *impl = NULL;
    return matmul_via(be, p, fmt, X, M, bias, Y, 1, impl);
}
