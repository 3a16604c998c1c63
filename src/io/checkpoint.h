/*
 * checkpoint.h — writing a GPTQ checkpoint folder that transformers, vLLM
 * and GPTQModel load unchanged (internal, not installed).
 *
 * The folder (src/format/pack.c states the tensor layouts, README.md
 * "Checkpoint format" sums them up):
 *   model.safetensors, or model-0000i-of-0000N.safetensors shards and
 *     model.safetensors.index.json {"metadata": {"total_size": bytes of all
 *     tensors}, "weight_map": {tensor: shard, keys sorted}}; every shard's
 *     safetensors metadata is {"format": "pt"};
 *   config.json: the source config.json byte for byte (so every value keeps
 *     its spelling: "rope_theta": 10000.0, "torch_dtype"/"dtype"), with
 *     "quantization_config" added before its closing brace;
 *   quantize_config.json: the same quantization_config object;
 *   the tokenizer and generation files of the source folder, copied.
 *
 * How it is written: every tensor is declared first (name, dtype, shape, in
 * the order the caller will produce them); gptq_ckpt_plan cuts that list
 * into shards (a new shard starts when the next tensor would push the
 * current one past max_shard_bytes, as transformers' sharding does; a
 * tensor larger than the limit gets a shard of its own); then tensors are
 * written in declaration order, each shard streamed by the safetensors
 * writer and committed when its last tensor is in. Everything goes into a
 * temporary folder beside the output (gptq_mkdtemp_beside) that
 * gptq_ckpt_finish renames into place (gptq_rename_dir_into_place), so an
 * existing output folder is never half-overwritten; gptq_ckpt_abort (and
 * any failure of finish) removes the temporary folder.
 */
#ifndef GPTQ_IO_CHECKPOINT_H
#define GPTQ_IO_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "../internal.h"

/* "4GB" (10^9), "500MB", "2GiB" (2^30), "64KB", "123B" or "123" bytes, as
 * transformers' max_shard_size. GPTQ_ERR_INVALID for anything else or 0. */
int gptq_parse_size(const char *s, uint64_t *out);

typedef struct gptq_ckpt gptq_ckpt;

/* The output-folder policy, checked before any work and again before the
 * rename: out_dir may be absent (its holding folder existing and
 * writable), an empty folder, or a folder gptq-c wrote (its
 * quantize_config.json names gptq-c as the quantizer, and it holds only
 * files gptq-c writes); any other folder only with `overwrite`. Never,
 * even with `overwrite`: a symlink, a file or anything else that is not a
 * folder, the model folder itself, a folder that holds it or one inside
 * it, the current folder or one that holds it, a mount point. Paths are
 * compared by device and inode after resolving symlinks, "." and "..".
 * GPTQ_ERR_INVALID (GPTQ_ERR_IO when a folder is missing or not writable)
 * with a message naming the folder and the reason. */
int gptq_ckpt_check_out(const char *out_dir, const char *model_dir, int overwrite);

/* Create the temporary folder beside out_dir (its resolved name, so that
 * "x/." works) with a marker naming this run, after removing the
 * temporaries beside it that a killed earlier run left (a marker whose
 * process of this machine is gone, or a finished checkpoint without one).
 * max_shard_bytes > 0. */
int gptq_ckpt_begin(const char *out_dir, uint64_t max_shard_bytes, gptq_ckpt **out);
/* Declare the next tensor (names unique). Only before gptq_ckpt_plan. */
int gptq_ckpt_declare(gptq_ckpt *c, const char *name, gptq_dtype dt, int ndim,
                      const int64_t *shape);
/* Assign shards and their file names; no declarations after it. */
int gptq_ckpt_plan(gptq_ckpt *c);
int gptq_ckpt_nshards(const gptq_ckpt *c);
/* Sum of the declared tensors' bytes (the index's total_size). */
uint64_t gptq_ckpt_total_bytes(const gptq_ckpt *c);
const char *gptq_ckpt_tmp_dir(const gptq_ckpt *c);

/* Write the next declared tensor whole: `name` must be the next one in
 * declaration order and nbytes its size (GPTQ_ERR_INVALID otherwise). */
int gptq_ckpt_write(gptq_ckpt *c, const char *name, const void *data, size_t nbytes);

/* After every tensor: the index (when sharded), config.json (src_dir's plus
 * quant_config as "quantization_config"), quantize_config.json (quant_config),
 * the tokenizer/generation files of src_dir that exist, then the rename
 * into out_dir. Frees c; on failure the temporary folder is removed. */
int gptq_ckpt_finish(gptq_ckpt *c, const char *src_dir, const cJSON *quant_config);
/* The same with quant_file written as quantize_config.json (config.json
 * gets quant): a format whose loaders read config.json strictly keeps
 * gptq-c's "meta" out of it (only the library's own keys there). */
int gptq_ckpt_finish2(gptq_ckpt *c, const char *src_dir, const cJSON *quant,
                      const cJSON *quant_file);
/* Give up: remove the temporary folder, free c (NULL is fine). */
void gptq_ckpt_abort(gptq_ckpt *c);

/* The quantization_config object gptq-c writes (a new tree; NULL when out
 * of memory or fmt is no format): bits, group_size, desc_act, sym, lm_head (false),
 * quant_method "gptq", format and checkpoint_format (the same: "gptq" | "gptq_v2"), pack_dtype
 * "int32", damp_percent, true_sequential, static_groups, and meta
 * {quantizer ["gptq-c:<version>"], damp_percent, damp_auto_increment,
 * static_groups, true_sequential, mse (the search norm, 0 when off, as
 * GPTQModel), method "gptq" | "rtn", act_group_aware (the resolved GAR
 * setting, 0 or 1: GPTQModel 5.0 on writes it in meta only)}. Names as
 * GPTQModel writes them. */
cJSON *gptq_ckpt_quant_config(const gptq_quant_config *q, gptq_format fmt, int true_sequential,
                              int act_group_aware);

#endif /* GPTQ_IO_CHECKPOINT_H */
