/*
 * qdev.h — the layer solve that keeps the weight on the backend (internal
 * to libgptq: the model pipeline's GPU path).
 */
#ifndef GPTQ_QUANT_QDEV_H
#define GPTQ_QUANT_QDEV_H

#include "../internal.h"

/* GPTQ for a weight that lives on the backend: W (R, C) f32, a buffer of be,
 * and h accumulated on be. On return W holds the weight a loader of the
 * checkpoint sees (gptq_dequantize of pk: fp16 scales), pk the packed
 * tensors on the host (v2 zeros: the format is decided later), and res the
 * scales, zeros, g_idx, perm and statistics (codes and dequant NULL).
 *
 * On a backend that finishes Hessians in place and sums dot products
 * (hessian_finish, dot), without dead columns, W never leaves the device:
 * the solve works on a copy (act-order: W and H permuted there by gather,
 * the codes permuted back), codes are packed there (pack_codes), only
 * qweight, scales and zeros come down, and the dequantized weight is made
 * there (dequantize). out_rel_err is the same
 * statistic as gptq_quantize_layer's, except that its small damping term
 * lambda ||W - W_hat||^2 uses the checkpoint's fp16-scale W_hat.
 * Otherwise (dead columns: their edits are host code) W comes to the host
 * scratch Wh (R * C floats) and the host path runs: the same bytes as gptq_quantize_layer_h, gptq_pack and
 * gptq_dequantize. */
int gptq_quantize_layer_dev(gptq_backend *be, gptq_buf *W, int64_t R, int64_t C, gptq_hessian *h,
                            const gptq_quant_config *cfg, float *Wh, gptq_layer_result *res,
                            gptq_packed *pk);

#endif /* GPTQ_QUANT_QDEV_H */
