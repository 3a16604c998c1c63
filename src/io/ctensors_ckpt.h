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

/* Before any work: GPTQ_OK when every rule of d (the --dynamic option)
 * fits the one config group of a run with settings q; a "-:" rule is
 * written as an "ignore" entry. Else GPTQ_ERR_INVALID naming the first
 * rule that changes bits, group_size or sym, or asks for act-order groups
 * (desc_act without q's static groups), and the way out. */
struct gptq_dynamic;
struct gptq_quant_config;
int gptq_ct_check_rules(const struct gptq_dynamic *d, const struct gptq_quant_config *q);

#endif /* GPTQ_IO_CTENSORS_CKPT_H */
