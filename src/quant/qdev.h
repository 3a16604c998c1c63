/*
 * qdev.h — the layer solve that keeps the weight on the backend (internal
 * to libgptq: the model pipeline's GPU path).
 */
#ifndef GPTQ_QUANT_QDEV_H
#define GPTQ_QUANT_QDEV_H

#include "../internal.h"

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
