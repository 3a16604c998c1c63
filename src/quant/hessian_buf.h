/*
 * hessian_buf.h — Hessian accumulation from activations that already live
 * on the backend (internal to libgptq; the model pipeline uses it so the
 * calibration activations never travel to the host and back).
 */
#ifndef GPTQ_QUANT_HESSIAN_BUF_H
#define GPTQ_QUANT_HESSIAN_BUF_H

#include "../internal.h"

/* As gptq_hessian_add, for X (n, cols) f32 in a backend buffer of h's
 * backend, starting x_off ELEMENTS in. The same row chunks as
 * gptq_hessian_add, in the same order, so the sum is the same bytes as
 * adding the downloaded rows. Unlike gptq_hessian_add it does not scan X
 * for NaN/Inf (that would mean a download): a non-finite input shows up in
 * the finished Hessian, which gptq_quantize_layer rejects. */
int gptq_hessian_add_buf(gptq_hessian *h, const gptq_buf *X, size_t x_off, int64_t n);

#endif /* GPTQ_QUANT_HESSIAN_BUF_H */
