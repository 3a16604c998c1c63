/*
 * qdev.h — packed tensors on a backend, and the layer solve that keeps the
 * weight there (internal to libgptq: the model pipeline's GPU path).
 */
#ifndef GPTQ_QUANT_QDEV_H
#define GPTQ_QUANT_QDEV_H

#include "../internal.h"

/* The four tensors of a gptq_packed in buffers of one backend, and the
 * vtable's view of them (t points into these buffers). */
typedef struct gptq_qdev {
    gptq_buf *qweight, *qzeros, *scales, *g_idx;
    gptq_qtensor t;
} gptq_qdev;

/* Upload p (checked first: shapes, g_idx) as format fmt. with_qweight 0:
 * qweight is not uploaded (the caller's device buffer is put in t.qweight). */
int gptq_qdev_upload(gptq_backend *be, const gptq_packed *p, gptq_format fmt, int with_qweight,
                     gptq_qdev *out);
void gptq_qdev_free(gptq_backend *be, gptq_qdev *q);

/* GPTQ for a weight that lives on the backend: W (R, C) f32, a buffer of be,
 * and h accumulated on be: the solve of gptq_quantize_layer_h (the same
 * statistics), with only qweight, scales and zeros coming down. On return
 * W holds the weight a loader of the checkpoint sees (the dequantize op on
 * pk: fp16 scales), pk the packed tensors on the host (v2 zeros: the format
 * is decided later), and res the scales, zeros, g_idx, perm and statistics
 * (codes and dequant NULL). R and C must suit the packing of cfg->bits. */
int gptq_quantize_layer_dev(gptq_backend *be, gptq_buf *W, int64_t R, int64_t C, gptq_hessian *h,
                            const gptq_quant_config *cfg, gptq_layer_result *res,
                            gptq_packed *pk);

#endif /* GPTQ_QUANT_QDEV_H */
