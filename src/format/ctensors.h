/*
 * ctensors.h — the compressed-tensors "pack-quantized" tensors of one
 * linear (ctensors.c states the layout and its sources), internal.
 */
#ifndef GPTQ_FORMAT_CTENSORS_H
#define GPTQ_FORMAT_CTENSORS_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "format.h"

typedef struct gptq_ct_linear {
    int bits, sym;
    int64_t N, K, ngroups;     /* weight_shape {N, K}; ngroups = weight_scale's columns */
    int64_t packed_cols;       /* ceil(K / (32/bits)) */
    int64_t zp_rows;           /* ceil(N / (32/bits)); 0 when sym */
    int32_t *weight_packed;    /* (N, packed_cols) */
    uint16_t *weight_scale;    /* (N, ngroups) fp16 bits */
    int32_t *weight_zero_point; /* (zp_rows, ngroups); NULL when sym */
} gptq_ct_linear;

/* 0 for 4 and 8 bits; else `status` naming the widths and the way out. */
int gptq_ct_check_bits(int status, int bits);
/* Pack codes (N, K) in [0, 2^bits), zeros and fp16 scales (ngroups, N) as
 * ours are laid out; any N, K (short last words padded with 0). sym: every
 * zero must be 2^(bits-1) and none is stored. Frees nothing of the caller's. */
int gptq_ct_pack(const uint8_t *codes, const int32_t *zeros, const uint16_t *scales, int64_t N,
                 int64_t K, int64_t ngroups, int bits, int sym, gptq_ct_linear *out);
/* Back: codes (N, K), zeros and scales (ngroups, N); padding bits set in
 * weight_packed are refused. */
int gptq_ct_unpack(const gptq_ct_linear *c, uint8_t *codes, int32_t *zeros, uint16_t *scales);
void gptq_ct_free(gptq_ct_linear *c);

/* From our v2 tensors (g_idx must be k / group_size: act-order groups are
 * refused with GPTQ_ERR_UNSUPPORTED) and back (g_idx k / group_size). */
int gptq_ct_from_packed(const gptq_packed *p, int group_size, int sym, gptq_ct_linear *out);
int gptq_ct_to_packed(const gptq_ct_linear *c, int group_size, gptq_packed *out);

/* The quantization_config: one config group targeting "Linear" with
 * weights {num_bits, type int, symmetric, strategy group|channel,
 * group_size, actorder "weight" | null, dynamic false}, format
 * "pack-quantized", quant_method "compressed-tensors", quantization_status
 * "compressed", ignore [the given module names]. NULL when out of memory. */
cJSON *gptq_ct_quant_config(int bits, int group_size, int sym, int actorder_weight,
                            const char *const *ignore, int nignore);

#endif /* GPTQ_FORMAT_CTENSORS_H */
