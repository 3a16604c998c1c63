/*
 * ctensors_ckpt.h — rewriting a gptq-c gptq_v2 checkpoint folder as a
 * compressed-tensors pack-quantized one (internal).
 */
#ifndef GPTQ_IO_CTENSORS_CKPT_H
#define GPTQ_IO_CTENSORS_CKPT_H

#include <stdint.h>

/* gptq_dir (a gptq_v2 checkpoint gptq-c wrote: 4 or 8 bits, g_idx k / G,
 * one setting for every quantized module) into out_dir through
 * gptq_ckpt_begin / finish (temporary folder, rename into place; out_dir
 * may be gptq_dir itself). config.json: the source's with the
 * compressed-tensors quantization_config (src/format/ctensors.h);
 * quantize_config.json: the same plus the source's "meta". actorder_weight:
 * write "actorder": "weight" (GAR or static groups: columns solved in
 * activation order, groups contiguous). max_shard_bytes 0: 4 GB. */
int gptq_ct_convert_dir(const char *gptq_dir, const char *out_dir, int actorder_weight,
                        uint64_t max_shard_bytes);

#endif /* GPTQ_IO_CTENSORS_CKPT_H */
