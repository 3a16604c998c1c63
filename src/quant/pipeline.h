/*
 * pipeline.h — `gptq quantize`: a whole Hugging Face model folder in, a
 * GPTQ checkpoint folder out (internal, not installed; the CLI and tests
 * call it).
 *
 * The scheme (GPTQ paper, Section 4 "Step 3" and its llama.py/opt.py):
 *   1. the calibration windows (nsamples, seqlen) are embedded once into
 *      hidden states X, kept on the backend in chunks of whole sequences
 *      (batch_tokens tokens per forward pass bound the work buffers);
 *   2. for each decoder layer L, with only L's weights loaded:
 *      true-sequential (default): for each group of linears in forward
 *      order (q/k/v, o, gate/up, down; OPT: q/k/v, out, fc1, fc2) the layer
 *      runs forward on every chunk up to that group's input (the model's
 *      hook stops it there), accumulating ONE Hessian for the group; each
 *      module of the group is quantized (gptq_quantize_layer), its weight in
 *      the loaded layer replaced by the checkpoint's dequantization (fp16
 *      scales, exactly what a loader will compute), so the next group is
 *      calibrated on the quantized earlier ones;
 *      without true-sequential: one forward per chunk accumulates every
 *      group's Hessian from the unquantized layer;
 *      then the quantized layer runs forward on every chunk in place: its
 *      outputs are layer L+1's calibration inputs;
 *   3. packed tensors are streamed to the checkpoint as each module
 *      finishes; qzeros come last, once the zero-point format is known.
 * RTN needs no calibration and no forward pass: each weight is read from
 * the source file, rounded and packed.
 *
 * Memory: the hidden states X (nsamples * seqlen * hidden f32), one layer's
 * weights, the forward work buffers of one chunk, the Hessians of one group
 * (all groups without true-sequential), one module's solve, and the zero
 * points of every module (ngroups x rows bytes each, 1/16 of the fp16
 * weights at group 128) until the end.
 *
 * Zero-point format (checkpoint_format): GPTQ_PIPELINE_FORMAT_AUTO writes
 * "gptq_v2" (z stored; vLLM reads it since PR #26092, GPTQModel natively)
 * for an asymmetric checkpoint (q.sym 0: GPTQModel refuses a v1 one not
 * made by GPTQModel >= 0.9.0) or when a zero point is 0, else "gptq" (v1,
 * z - 1 stored: every sym checkpoint); V1 fails at the first module that
 * has a zero of 0, naming it and the group; V2 always writes v2.
 */
#ifndef GPTQ_QUANT_PIPELINE_H
#define GPTQ_QUANT_PIPELINE_H

#include <signal.h>
#include <stdint.h>

#include "../internal.h"

/* The pipeline reports each module (gptq_module_report) and its progress
 * (gptq_progress, without cancel: see interrupt) with gptq.h's structs. */

enum { GPTQ_PIPELINE_FORMAT_AUTO = 0 }; /* or GPTQ_FORMAT_V1 / GPTQ_FORMAT_V2 */

typedef struct gptq_pipeline_options {
    gptq_quant_config q;
    int true_sequential;        /* 1 (default) */
    int format;                 /* GPTQ_PIPELINE_FORMAT_AUTO, GPTQ_FORMAT_V1, GPTQ_FORMAT_V2 */
    const int32_t *calib_ids;   /* (nsamples, seqlen); NULL for RTN */
    int64_t nsamples, seqlen;
    int64_t batch_tokens;       /* tokens per forward pass (at least one sequence); 0: auto,
                                   all windows in one fused pass when that pass's work
                                   buffers take at most 2 GiB, else 8192 */
    uint64_t max_shard_bytes;   /* 0: 4 GB */
    int forward_math;           /* gptq_math of the forward's Linears (model.h): 0 f32
                                   (default), 1 tf32 (a GPU's matrix units) */
    /* replace an existing output folder that gptq-c did not write (the
     * policy: gptq_ckpt_check_out in io/checkpoint.h) */
    int overwrite;
    /* a module whose shape the format cannot pack at q.bits: 0 (default)
     * leaves it in its source dtype (listed in quantization_config's
     * "dynamic" as "-:<name>", on_skip told), 1 fails the run */
    int strict;
    /* quantize the lm_head too (GPTQModel's lm_head=True), after the
     * layers, calibrated on the final norm's output; refused when it is
     * tied to the embedding */
    int lm_head;
    /* GPTQModel's per-module rules (model.h; NULL: none): "-:" rules leave
     * modules unquantized, others override bits / group_size / sym /
     * desc_act; written into quantization_config "dynamic" */
    const struct gptq_dynamic *dynamic;
    /* checked between modules and forward chunks: non-zero stops the job
     * (GPTQ_ERR_INVALID "interrupted"); the output folder is untouched */
    const volatile sig_atomic_t *interrupt;
    /* optional callbacks; W_dequant (rows, cols) f32 is the weight the
     * checkpoint dequantizes to, valid during the call, when module_weights
     * is set (else NULL: on a GPU backend the weight stays on the device,
     * and handing it over costs a download per module) */
    void (*on_module)(void *user, const gptq_module_report *r, const float *W_dequant);
    int module_weights;
    void (*on_progress)(void *user, const gptq_progress *p);
    /* a module left unquantized (prefix "model.layers.0.mlp.gate_proj"),
     * and why; before any work */
    void (*on_skip)(void *user, const char *prefix, const char *why);
    void *user;
} gptq_pipeline_options;

/* Defaults: gptq_quant_config_default, true-sequential, format auto,
 * batch tokens auto, 4 GB shards. */
void gptq_pipeline_options_default(gptq_pipeline_options *o);

typedef struct gptq_pipeline_stats {
    gptq_format format;          /* written */
    int nshards;
    int nmodules;
    int nskipped;                /* modules left unquantized (options.strict) */
    int64_t zero0;               /* zero points equal to 0 over the model */
    uint64_t params;             /* elements of all source tensors */
    uint64_t bytes_in;           /* bytes of all source tensors */
    uint64_t bytes_out;          /* bytes of all checkpoint tensors */
    uint64_t qweights;           /* elements of the quantized linears' weights */
    uint64_t qbytes;             /* their qweight + qzeros + scales + g_idx bytes */
    uint64_t qsrc_bytes;         /* their weights' bytes in the source */
    double seconds_total;
    double seconds_forward;      /* embedding and layer forwards (Hessian time excluded) */
    double seconds_hessian;      /* accumulation and download of the Hessians */
    double seconds_solve;        /* gptq_quantize_layer */
    double seconds_write;        /* packing, copying and writing the checkpoint */
} gptq_pipeline_stats;

/* Quantize model_dir into out_dir (written atomically: see checkpoint.h),
 * after checking out_dir against the output policy (gptq_ckpt_check_out,
 * with o->overwrite), again before the rename. Errors name the module,
 * file or option at fault; on any error nothing changes at out_dir and the
 * temporary folder is removed. */
int gptq_quantize_model(gptq_backend *be, const char *model_dir, const char *out_dir,
                        const gptq_pipeline_options *o, gptq_pipeline_stats *stats);

#endif /* GPTQ_QUANT_PIPELINE_H */
