/*
 * pipeline.c — sequential GPTQ over a whole model (pipeline.h): calibration
 * activations layer by layer, one Hessian per true-sequential group,
 * module solves, and the packed tensors streamed into the checkpoint.
 *
 * The order in which tensors are declared (and so written and sharded):
 *   1. every source tensor that is not the weight or bias of a quantized
 *      linear (embeddings, norms, lm_head, OPT positions), copied in its
 *      own dtype and bytes, in the source's order;
 *   2. per layer, per linear in forward order: qweight, scales, g_idx,
 *      bias (fp16) — produced as each module finishes;
 *   3. every qzeros, in the same module order, once the zero-point format
 *      of the whole model is known (auto decides over all modules).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../format/format.h"
#include "../io/checkpoint.h"
#include "../model/model.h"
#include "solve.h"
#include "pipeline.h"

#define DEFAULT_BATCH_TOKENS 8192
/* Auto: one pass over all windows when its work buffers stay below this. */
#define FUSED_MAX_BYTES ((int64_t)2 << 30)
#define DEFAULT_SHARD_BYTES 4000000000ull

void gptq_pipeline_options_default(gptq_pipeline_options *o)
{
    memset(o, 0, sizeof *o);
    gptq_quant_config_default(&o->q);
    o->true_sequential = 1;
    o->format = GPTQ_PIPELINE_FORMAT_AUTO;
    o->batch_tokens = 0; /* auto */
    o->max_shard_bytes = DEFAULT_SHARD_BYTES;
}

/* The whole job's state. */
typedef struct pl {
    const gptq_pipeline_options *o;
    gptq_pipeline_stats *stats;
    gptq_backend *be;
    gptq_model *m;
    gptq_weights *w;
    const gptq_model_config *cfg;
    gptq_ckpt *ck;
    const char *model_dir;
    int nlayers;
    int rtn;

    /* zero points of every module until the end: (ngroups_q, rows) bytes,
     * module i of layer L at mod0[L] + i */
    int64_t *mod0;         /* (nlayers) */
    uint8_t **zeros;       /* (total) */
    int64_t *zeros_ng;     /* (total) groups of each */
    /* modules left in their source dtype (the format cannot pack their
     * shape; recorded in quantization_config's "dynamic"), same indexing */
    uint8_t *skip;         /* (total) 1: unpackable, 2: a dynamic "-:" rule */
    gptq_quant_config *mq; /* (total) each module's settings (dynamic rules applied) */
    int nskip;
    /* --lm-head: the head's prefix ("lm_head"), its zero points the last
     * slot (total - 1); NULL without */
    const char *head;

    /* calibration activations: chunks of whole sequences */
    gptq_buf **X;          /* (nchunks) each (chunk_nseq[c] * S, D) f32 */
    int64_t *chunk_nseq;   /* (nchunks) */
    int64_t nchunks, S;
    gptq_buf *Y;           /* (max chunk tokens, D) scratch for partial forwards */

    /* Hessians: one per group (only the current one with true-sequential) */
    gptq_hessian **H;      /* (most groups of a layer) */
    int maxgroups;
    int hook_group;        /* -1: every group in one pass */
    double hook_seconds;
    float *W;              /* (max rows * cols) f32 weight of one module */

    double t0;
    int64_t done, total;
} pl;

static int interrupted(const pl *p)
{
    if (p->o->interrupt && *p->o->interrupt)
        return gptq_error(GPTQ_ERR_INVALID, "interrupted: nothing was written to the output folder");
    return GPTQ_OK;
}

static void progress(pl *p, int layer, const char *stage, double within_layer)
{
    if (!p->o->on_progress) return;
    double f;
    if (p->rtn) {
        f = p->total ? (double)p->done / (double)p->total : 1.0;
    } else {
        f = ((double)layer + within_layer) / (double)p->nlayers;
    }
    if (f > 1.0) f = 1.0;
    gptq_progress ev = {.struct_size = sizeof ev, .layer = layer, .nlayers = p->nlayers,
                        .stage = stage, .done = p->done, .total = p->total, .fraction = f,
                        .elapsed = gptq_now() - p->t0};
    p->o->on_progress(p->o->user, &ev);
}

/* ------------------------------------------------------------------ */
/* Checks before any work                                              */
/* ------------------------------------------------------------------ */

/* p->mq[zi] = the options' settings with the first matching dynamic rule
 * applied; a "-:" rule marks the module skipped (2). */
static int module_config(pl *p, const char *prefix, int64_t zi)
{
    p->mq[zi] = p->o->q;
    const gptq_dyn_rule *r = NULL;
    if (p->o->dynamic) GPTQ_TRY(gptq_dynamic_match(p->o->dynamic, prefix, &r));
    if (!r) return GPTQ_OK;
    if (r->skip) {
        char why[300];
        snprintf(why, sizeof why, "--dynamic rule \"%s\"", r->key);
        p->skip[zi] = 2;
        p->nskip++;
        if (p->o->on_skip) p->o->on_skip(p->o->user, prefix, why);
        return GPTQ_OK;
    }
    if (r->bits > 0) p->mq[zi].bits = r->bits;
    if (r->group_size) p->mq[zi].group_size = r->group_size;
    if (r->sym >= 0) p->mq[zi].sym = r->sym;
    if (r->desc_act >= 0) p->mq[zi].desc_act = r->desc_act;
    /* GAR, as GPTQModel resolves it per module: a rule's desc_act: true
     * turns it off (also an --act-group-aware of the command line), and so
     * does a rule's group_size -1 (no groups to order); the rule's own
     * act_group_aware decides over both, and the check below refuses it
     * with desc_act or group_size -1 */
    if (r->desc_act == 1 || r->group_size == -1) p->mq[zi].act_group_aware = 0;
    if (r->act_group_aware >= 0) p->mq[zi].act_group_aware = r->act_group_aware;
    return GPTQ_OK;
}

static int check_model(pl *p)
{
    const gptq_model_config *c = p->cfg;
    const gptq_quant_config *q = &p->o->q;
    if (c->quant.present)
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s is already a GPTQ checkpoint (config.json has a "
                          "quantization_config): quantize the floating-point model instead",
                          p->model_dir);
    /* the checkpoint's quantization_config records it, and transformers,
     * optimum and GPTQModel refuse to load a value outside (0, 1) */
    if (!(q->damp_percent > 0.0f && q->damp_percent < 1.0f))
        return gptq_error(GPTQ_ERR_INVALID, "--damp-percent %g: must be in (0, 1) (loaders "
                          "refuse a checkpoint whose quantization_config has another value)",
                          (double)q->damp_percent);
    char prefix[512];
    for (int L = 0; L < p->nlayers; L++)
        for (int i = 0; i < gptq_model_nlinear(p->m, L); i++) {
            const gptq_linear_info *li = gptq_model_linear(p->m, L, i);
            const int64_t zi = p->mod0[L] + i;
            gptq_model_linear_prefix(p->m, L, i, prefix, sizeof prefix);
            int st = module_config(p, prefix, zi);
            if (st) return st;
            if (p->skip[zi]) continue;
            st = gptq_quant_config_check(&p->mq[zi], li->rows, li->cols);
            if (!st) st = gptq_format_check_group(GPTQ_ERR_UNSUPPORTED, p->mq[zi].group_size,
                                                  li->cols);
            if (st) return gptq_error_prefix(st, "%s", prefix);
            st = gptq_format_check_dims(GPTQ_ERR_UNSUPPORTED, p->mq[zi].bits, li->rows, li->cols);
            if (st && p->o->strict) return gptq_error_prefix(st, "%s", li->name);
            if (st) {
                /* left in its source dtype: the readers load a float weight
                 * where there is no qweight, as GPTQModel's loaders do */
                char why[600];
                snprintf(why, sizeof why, "%s; --strict makes this an error", gptq_last_error());
                p->skip[zi] = 1;
                p->nskip++;
                if (p->o->on_skip) p->o->on_skip(p->o->user, prefix, why);
            }
        }
    if (p->head) {
        const int64_t V = c->vocab_size, D = c->hidden_size, zi = p->total - 1;
        int st = module_config(p, p->head, zi);
        if (!st && p->skip[zi])
            st = gptq_error(GPTQ_ERR_INVALID, "--lm-head: a --dynamic \"-:\" rule leaves %s "
                            "unquantized; drop one of the two", p->head);
        if (!st) st = gptq_quant_config_check(&p->mq[zi], V, D);
        if (!st) st = gptq_format_check_group(GPTQ_ERR_UNSUPPORTED, p->mq[zi].group_size, D);
        if (!st) st = gptq_format_check_dims(GPTQ_ERR_UNSUPPORTED, p->mq[zi].bits, V, D);
        if (st) return gptq_error_prefix(st, "--lm-head: %s", p->head);
    }
    if (p->nskip == p->total)
        return gptq_error(GPTQ_ERR_UNSUPPORTED, "%s: every linear module was left unquantized "
                          "(none packs at %d bits, or --dynamic skips it); nothing to quantize",
                          p->model_dir, q->bits);
    if (!p->rtn) {
        const gptq_pipeline_options *o = p->o;
        if (!o->calib_ids || o->nsamples < 1 || o->seqlen < 2)
            return gptq_error(GPTQ_ERR_INVALID,
                              "GPTQ needs calibration windows (at least one of 2 tokens or more); "
                              "use --method rtn to quantize without calibration");
        if (o->seqlen > c->max_positions)
            return gptq_error(GPTQ_ERR_INVALID,
                              "--seqlen %lld exceeds the model's max_position_embeddings %lld",
                              (long long)o->seqlen, (long long)c->max_positions);
    }
    return GPTQ_OK;
}

/* ------------------------------------------------------------------ */
/* The checkpoint plan                                                 */
/* ------------------------------------------------------------------ */

/* 1 when `name` is the weight or bias of a quantized linear. */
static int is_quantized_tensor(const pl *p, const char *name)
{
    char prefix[512];
    if (p->head) {
        const size_t n = strlen(p->head);
        if (strncmp(name, p->head, n) == 0 &&
            (strcmp(name + n, ".weight") == 0 || strcmp(name + n, ".bias") == 0))
            return 1;
    }
    for (int L = 0; L < p->nlayers; L++)
        for (int i = 0; i < gptq_model_nlinear(p->m, L); i++) {
            gptq_model_linear_prefix(p->m, L, i, prefix, sizeof prefix);
            size_t n = strlen(prefix);
            if (strncmp(name, prefix, n) == 0 &&
                (strcmp(name + n, ".weight") == 0 || strcmp(name + n, ".bias") == 0))
                return !p->skip[p->mod0[L] + i];
        }
    return 0;
}

static int64_t ngroups_of(const gptq_quant_config *q, int64_t cols)
{
    const int64_t G = q->group_size == -1 ? cols : q->group_size;
    return (cols + G - 1) / G;
}

/* Declare the tensors of linear `prefix` (N, K): pass 0 qweight, scales,
 * g_idx and bias (its source weight must exist), pass 1 qzeros. */
static int declare_linear(pl *p, int pass, const char *prefix, int64_t N, int64_t K,
                          int has_bias, const gptq_quant_config *q)
{
    gptq_pipeline_stats *s = p->stats;
    const int b = q->bits;
    const int64_t ng = ngroups_of(q, K);
    char name[600];
    int st;
    if (pass == 1) {
        const int64_t qz[2] = {ng, N * b / 32};
        gptq_tensor_name(name, sizeof name, prefix, GPTQ_T_QZEROS);
        if ((st = gptq_ckpt_declare(p->ck, name, GPTQ_I32, 2, qz))) return st;
        s->qbytes += (uint64_t)(ng * N * b / 32) * 4;
        return GPTQ_OK;
    }
    gptq_st_info info;
    snprintf(name, sizeof name, "%s.weight", prefix);
    if ((st = gptq_weights_find(p->w, name, &info))) return st;
    if (info.ndim != 2 || info.shape[0] != N || info.shape[1] != K)
        return gptq_error(GPTQ_ERR_SHAPE, "%s: %s is not (%lld, %lld) as config.json "
                          "says", p->model_dir, name, (long long)N, (long long)K);
    s->qsrc_bytes += info.nbytes;
    s->qweights += (uint64_t)(N * K);
    const int64_t qw[2] = {K * b / 32, N}, sc[2] = {ng, N};
    gptq_tensor_name(name, sizeof name, prefix, GPTQ_T_QWEIGHT);
    if ((st = gptq_ckpt_declare(p->ck, name, GPTQ_I32, 2, qw))) return st;
    gptq_tensor_name(name, sizeof name, prefix, GPTQ_T_SCALES);
    if ((st = gptq_ckpt_declare(p->ck, name, GPTQ_F16, 2, sc))) return st;
    gptq_tensor_name(name, sizeof name, prefix, GPTQ_T_G_IDX);
    if ((st = gptq_ckpt_declare(p->ck, name, GPTQ_I32, 1, &K))) return st;
    s->qbytes += (uint64_t)(K * b / 32 * N) * 4 + (uint64_t)(ng * N) * 2 + (uint64_t)K * 4;
    if (has_bias) {
        gptq_tensor_name(name, sizeof name, prefix, GPTQ_T_BIAS);
        if ((st = gptq_ckpt_declare(p->ck, name, GPTQ_F16, 1, &N))) return st;
    }
    return GPTQ_OK;
}

static int plan(pl *p)
{
    gptq_pipeline_stats *s = p->stats;
    char prefix[512];
    int st;
    /* 1. the tensors that stay as they are */
    for (int i = 0; i < gptq_weights_count(p->w); i++) {
        gptq_st_info info;
        if ((st = gptq_weights_get(p->w, i, &info))) return st;
        uint64_t numel = 1;
        for (int d = 0; d < info.ndim; d++) numel *= (uint64_t)info.shape[d];
        s->params += numel;
        s->bytes_in += info.nbytes;
        if (is_quantized_tensor(p, info.name)) continue;
        if ((st = gptq_ckpt_declare(p->ck, info.name, info.dtype, info.ndim, info.shape)))
            return st;
    }
    /* 2. and 3. the quantized linears, the lm_head last (--lm-head); their
     * source weights must exist */
    for (int pass = 0; pass < 2; pass++) {
        for (int L = 0; L < p->nlayers; L++)
            for (int i = 0; i < gptq_model_nlinear(p->m, L); i++) {
                const gptq_linear_info *li = gptq_model_linear(p->m, L, i);
                if (p->skip[p->mod0[L] + i]) continue;
                gptq_model_linear_prefix(p->m, L, i, prefix, sizeof prefix);
                if ((st = declare_linear(p, pass, prefix, li->rows, li->cols, li->has_bias,
                                         &p->mq[p->mod0[L] + i])))
                    return st;
            }
        if (p->head && (st = declare_linear(p, pass, p->head, p->cfg->vocab_size,
                                            p->cfg->hidden_size, 0, &p->mq[p->total - 1])))
            return st;
    }
    if ((st = gptq_ckpt_plan(p->ck))) return st;
    s->nshards = gptq_ckpt_nshards(p->ck);
    s->bytes_out = gptq_ckpt_total_bytes(p->ck);
    return GPTQ_OK;
}

/* Copy the unquantized tensors, in declaration order. */
static int copy_plain(pl *p)
{
    for (int i = 0; i < gptq_weights_count(p->w); i++) {
        gptq_st_info info;
        int st = gptq_weights_get(p->w, i, &info);
        if (st) return st;
        if (is_quantized_tensor(p, info.name)) continue;
        if ((st = gptq_ckpt_write(p->ck, info.name, info.data, info.nbytes))) return st;
        if ((st = interrupted(p))) return st;
    }
    return GPTQ_OK;
}

/* ------------------------------------------------------------------ */
/* One module                                                          */
/* ------------------------------------------------------------------ */

/* One linear to quantize: a decoder layer's, or the lm_head (--lm-head). */
typedef struct target {
    int layer, index;     /* the lm_head: layer -1, index -1 */
    const char *name;     /* "self_attn.q_proj", "lm_head" */
    const char *prefix;   /* its tensors' prefix */
    int64_t R, C;
    int has_bias;
    int64_t zi;           /* its zero points p->zeros[zi], its settings p->mq[zi] */
    gptq_buf *Wdev;       /* GPTQ: its weight on the backend, replaced by the dequantization */
} target;

/* Quantize t with the accumulated Hessian hs (the Hessian and the weight
 * stay on the backend: gptq_quantize_layer_dev), or none (RTN: the weight
 * is read from the source); put the checkpoint's dequantization back into
 * t->Wdev, write its tensors, keep its zeros. */
static int quantize_linear(pl *p, const target *t, gptq_hessian *hs, int64_t hrows)
{
    const int64_t R = t->R, C = t->C;
    const char *prefix = t->prefix;
    char name[600];
    const double t0 = gptq_now();
    gptq_layer_result res = {0};
    gptq_packed pk = {0};
    uint16_t *bias16 = NULL;
    float *bias32 = NULL;
    int st;

    if (hs) {
        /* the Hessian and the weight stay on the device: solved, packed and
         * dequantized there */
        st = gptq_quantize_layer_dev(p->be, t->Wdev, R, C, hs, &p->mq[t->zi], &res, &pk);
        if (st) {
            gptq_error_prefix(st, "%s", prefix);
            goto done;
        }
    } else {
        const int64_t shape[2] = {R, C};
        snprintf(name, sizeof name, "%s.weight", prefix);
        st = gptq_weights_read_f32(p->w, name, 2, shape, p->W);
        if (!st) st = gptq_quantize_layer(p->be, p->W, R, C, NULL, &p->mq[t->zi], &res);
        if (st) {
            gptq_error_prefix(st, "%s", prefix);
            goto done;
        }
    }
    const double t_solve = res.seconds_solve;
    const double t1 = gptq_now();
    /* v2 holds any zero; the format is chosen at the end */
    if (!pk.qweight && (st = gptq_pack(&res, GPTQ_FORMAT_V2, &pk))) {
        gptq_error_prefix(st, "%s", prefix);
        goto done;
    }
    int64_t zero0 = 0, first0 = -1;
    for (int64_t k = 0; k < res.ngroups * R; k++)
        if (res.zeros[k] == 0) {
            if (first0 < 0) first0 = k;
            zero0++;
        }
    if (zero0 && p->o->format == GPTQ_FORMAT_V1) {
        st = gptq_error(GPTQ_ERR_INVALID,
                        "%s: group %lld of output row %lld has zero point 0 (%lld such groups in "
                        "this module), which the v1 \"gptq\" format cannot store (it stores z - 1); "
                        "use --format gptq_v2 or auto, or --sym",
                        prefix, (long long)(first0 / R), (long long)(first0 % R), (long long)zero0);
        goto done;
    }
    p->stats->zero0 += zero0;
    const int64_t zi = t->zi;
    p->zeros[zi] = gptq_malloc((size_t)(res.ngroups * R), "zero points");
    if (!p->zeros[zi]) {
        st = GPTQ_ERR_NOMEM;
        goto done;
    }
    for (int64_t k = 0; k < res.ngroups * R; k++) p->zeros[zi][k] = (uint8_t)res.zeros[k];
    p->zeros_ng[zi] = res.ngroups;

    /* the weight a loader will see: fp16 scales, (q - z) (GPTQ put it in
     * place already; a report wants it on the host) */
    if (hs) {
        if (p->o->on_module && p->o->module_weights &&
            (st = gptq_be_download(p->be, t->Wdev, 0, p->W, (size_t)(R * C) * sizeof(float))))
            goto done;
    } else if ((st = gptq_dequantize(&pk, GPTQ_FORMAT_V2, p->W))) {
        goto done;
    }

    const int b = p->mq[t->zi].bits;
    gptq_tensor_name(name, sizeof name, prefix, GPTQ_T_QWEIGHT);
    st = gptq_ckpt_write(p->ck, name, pk.qweight, (size_t)(C * b / 32 * R) * 4);
    gptq_tensor_name(name, sizeof name, prefix, GPTQ_T_SCALES);
    if (!st) st = gptq_ckpt_write(p->ck, name, pk.scales, (size_t)(res.ngroups * R) * 2);
    gptq_tensor_name(name, sizeof name, prefix, GPTQ_T_G_IDX);
    if (!st) st = gptq_ckpt_write(p->ck, name, pk.g_idx, (size_t)C * 4);
    if (!st && t->has_bias) {
        gptq_tensor_name(name, sizeof name, prefix, GPTQ_T_BIAS);
        bias16 = gptq_malloc((size_t)R * 2, "bias");
        bias32 = gptq_malloc((size_t)R * 4, "bias");
        if (!bias16 || !bias32) st = GPTQ_ERR_NOMEM;
        if (!st) st = gptq_weights_read_f32(p->w, name, 1, &R, bias32);
        /* f16 -> f32 -> f16 is exact: an fp16 source keeps its bytes */
        for (int64_t r = 0; !st && r < R; r++) bias16[r] = gptq_f32_to_f16(bias32[r]);
        if (!st) st = gptq_ckpt_write(p->ck, name, bias16, (size_t)R * 2);
    }
    if (st) goto done;
    const double t2 = gptq_now();
    p->stats->seconds_solve += t_solve;
    p->stats->seconds_write += t2 - t1;
    p->stats->nmodules++;
    p->done++;
    if (p->o->on_module) {
        gptq_module_report r = {
            .struct_size = sizeof r, .layer = t->layer, .index = t->index, .name = t->name, .prefix = prefix, .rows = R, .cols = C,
            .hessian_rows = hrows, .loss = res.loss, .out_rel_err = res.out_rel_err,
            .damp_used = res.damp_used, .damp_retries = res.damp_retries,
            .dead_cols = res.dead_cols, .seconds = t2 - t0, .seconds_solve = t_solve,
            .scales_subnormal = res.scales_subnormal,
            .scales_fp16_rel_err = res.scales_fp16_rel_err,
            .out_rel_err_f32 = res.out_rel_err_f32,
            .bits = res.bits, .group_size = res.group_size, .zero0 = zero0, .done = p->done,
            .total = p->total,
        };
        p->o->on_module(p->o->user, &r, p->o->module_weights ? p->W : NULL);
    }
done:
    free(bias16);
    free(bias32);
    gptq_packed_free(&pk);
    gptq_layer_result_free(&res);
    return st;
}

/* Linear i of layer L (loaded, for GPTQ: its weight is the target). */
static int quantize_module(pl *p, int L, int i, gptq_hessian *hs, int64_t hrows)
{
    const gptq_linear_info *li = gptq_model_linear(p->m, L, i);
    char prefix[512];
    gptq_model_linear_prefix(p->m, L, i, prefix, sizeof prefix);
    target t = {.layer = L, .index = i, .name = li->name, .prefix = prefix, .R = li->rows,
                .C = li->cols, .has_bias = li->has_bias, .zi = p->mod0[L] + i};
    if (hs) {
        int st = gptq_model_linear_buf(p->m, L, i, &t.Wdev);
        if (st) return gptq_error_prefix(st, "%s", prefix);
    }
    return quantize_linear(p, &t, hs, hrows);
}

/* ------------------------------------------------------------------ */
/* Calibration forward passes                                          */
/* ------------------------------------------------------------------ */

/* Quantize the modules of group g from its finished Hessian. */
static int quantize_group(pl *p, int L, int g);

/* 1 when every module of group g of layer L is left unquantized: no
 * Hessian is needed there. */
static int group_skipped(const pl *p, int L, int g)
{
    const gptq_group_info *gi = gptq_model_group(p->m, L, g);
    for (int k = 0; k < gi->nlin; k++)
        if (!p->skip[p->mod0[L] + gi->lin[k]]) return 0;
    return 1;
}

/* One pass does it all when every window fits in one forward (one chunk):
 * at each group's input the Hessian is made and the group quantized right
 * there; the forward then goes on with the quantized weights, so its
 * output is the quantized layer's. The Hessians are the chunked passes'
 * bytes for bytes when their chunks are whole multiples of the Hessian's
 * 4096-row batches (the sums are then grouped alike); otherwise they differ
 * by float rounding only. */
static int fused_hook(void *user, const gptq_hook_event *ev)
{
    pl *p = user;
    if (group_skipped(p, ev->layer, ev->group)) return GPTQ_OK;
    int st = gptq_hook_all_rows(ev);
    /* the forward's queued kernels finish first: their time is forward time */
    if (!st) st = gptq_be_sync(p->be);
    if (st) return st;
    const double t0 = gptq_now();
    st = gptq_hessian_new(p->be, ev->cols, &p->H[ev->group]);
    if (!st) st = gptq_hessian_add_buf(p->H[ev->group], ev->X, 0, ev->T);
    if (!st) st = gptq_be_sync(p->be);
    p->stats->seconds_hessian += gptq_now() - t0;
    if (!st) st = quantize_group(p, ev->layer, ev->group);
    gptq_hessian_free(p->H[ev->group]);
    p->H[ev->group] = NULL;
    p->hook_seconds += gptq_now() - t0; /* all of it is not forward time */
    return st;
}

static int hessian_hook(void *user, const gptq_hook_event *ev)
{
    pl *p = user;
    if (p->hook_group >= 0 && ev->group != p->hook_group) return GPTQ_OK;
    int st = gptq_hook_all_rows(ev);
    if (!st) st = gptq_be_sync(p->be); /* queued forward kernels: forward time */
    if (st) return st;
    const double t0 = gptq_now();
    st = gptq_hessian_add_buf(p->H[ev->group], ev->X, 0, ev->T);
    if (!st) st = gptq_be_sync(p->be);
    p->hook_seconds += gptq_now() - t0;
    if (st) return st;
    /* nothing after this group's input is needed */
    if (p->hook_group >= 0 || ev->group == gptq_model_ngroups(p->m, ev->layer) - 1)
        return GPTQ_HOOK_STOP;
    return GPTQ_OK;
}

/* Run layer L over every chunk into the scratch Y, accumulating the
 * Hessian of group g (every group when g < 0). */
static int hessian_pass(pl *p, int L, int g)
{
    p->hook_group = g;
    for (int64_t c = 0; c < p->nchunks; c++) {
        int st = interrupted(p);
        if (st) return st;
        const double t0 = gptq_now(), h0 = p->hook_seconds;
        st = gptq_model_layer_forward(p->m, L, p->X[c], p->Y, p->chunk_nseq[c], p->S,
                                      hessian_hook, p);
        if (!st) st = gptq_be_sync(p->be);
        const double dt = gptq_now() - t0, dh = p->hook_seconds - h0;
        p->stats->seconds_forward += dt - dh;
        p->stats->seconds_hessian += dh;
        if (st) return gptq_error_prefix(st, "layer %d, calibration chunk %lld", L, (long long)c);
    }
    return GPTQ_OK;
}

static int quantize_group(pl *p, int L, int g)
{
    const int64_t hrows = gptq_hessian_count(p->H[g]);
    int st = GPTQ_OK;
    const gptq_group_info *gi = gptq_model_group(p->m, L, g);
    const int nlin = gptq_model_nlinear(p->m, L);
    for (int k = 0; k < gi->nlin && !st; k++) {
        const int i = gi->lin[k];
        if ((st = interrupted(p))) break;
        if (p->skip[p->mod0[L] + i]) {
            p->done++;
            continue;
        }
        progress(p, L, "quantize", (double)i / (double)(nlin + 1));
        st = quantize_module(p, L, i, p->H[g], hrows);
    }
    return st;
}

/* The input width of group g of layer L: its modules' cols. */
static int64_t group_cols(const pl *p, int L, int g)
{
    return gptq_model_linear(p->m, L, gptq_model_group(p->m, L, g)->lin[0])->cols;
}

static void free_hessians(pl *p)
{
    for (int g = 0; p->H && g < p->maxgroups; g++) {
        gptq_hessian_free(p->H[g]);
        p->H[g] = NULL;
    }
}

static int quantize_layer_gptq(pl *p, int L)
{
    int st = gptq_model_layer_load(p->m, L);
    if (st) return st;
    if (p->o->true_sequential && p->nchunks == 1) {
        progress(p, L, "forward", 0.0);
        const double t0 = gptq_now(), h0 = p->hook_seconds;
        st = gptq_model_layer_forward(p->m, L, p->X[0], p->X[0], p->chunk_nseq[0], p->S,
                                      fused_hook, p);
        if (!st) st = gptq_be_sync(p->be);
        /* the hook counts its Hessian, solve and write time itself */
        p->stats->seconds_forward += gptq_now() - t0 - (p->hook_seconds - h0);
        if (st) gptq_error_prefix(st, "layer %d", L);
        return st;
    }
    const int ngroups = gptq_model_ngroups(p->m, L), nlin = gptq_model_nlinear(p->m, L);
    if (p->o->true_sequential) {
        for (int g = 0; g < ngroups && !st; g++) {
            if (group_skipped(p, L, g)) {
                p->done += gptq_model_group(p->m, L, g)->nlin;
                continue;
            }
            progress(p, L, "hessian", 0.0);
            st = gptq_hessian_new(p->be, group_cols(p, L, g), &p->H[g]);
            if (!st) st = hessian_pass(p, L, g);
            if (!st) st = quantize_group(p, L, g);
            free_hessians(p);
        }
    } else {
        progress(p, L, "hessian", 0.0);
        for (int g = 0; g < ngroups && !st; g++)
            st = gptq_hessian_new(p->be, group_cols(p, L, g), &p->H[g]);
        if (!st) st = hessian_pass(p, L, -1);
        for (int g = 0; g < ngroups && !st; g++) st = quantize_group(p, L, g);
        free_hessians(p);
    }
    if (st) return st;
    /* the quantized layer's outputs: the next layer's inputs, in place */
    for (int64_t c = 0; c < p->nchunks && !st; c++) {
        if ((st = interrupted(p))) break;
        progress(p, L, "forward",
                 ((double)nlin + (double)c / (double)p->nchunks) / (double)(nlin + 1));
        const double t0 = gptq_now();
        st = gptq_model_layer_forward(p->m, L, p->X[c], p->X[c], p->chunk_nseq[c], p->S, NULL,
                                      NULL);
        if (!st) st = gptq_be_sync(p->be);
        p->stats->seconds_forward += gptq_now() - t0;
        if (st) gptq_error_prefix(st, "layer %d, calibration chunk %lld", L, (long long)c);
    }
    return st;
}

/* Embed the calibration windows into chunks of whole sequences. */
static int embed_calibration(pl *p)
{
    const gptq_pipeline_options *o = p->o;
    const int64_t S = o->seqlen, D = p->cfg->hidden_size;
    int64_t bt = o->batch_tokens;
    if (bt <= 0) {
        /* auto: the forward's work buffers (as the family sizes them) plus
         * the output scratch, for every window at once */
        const int64_t bytes = gptq_model_work_bytes(p->m, o->nsamples, S) +
                              o->nsamples * S * D * (int64_t)sizeof(float);
        /* a backend with its own device memory (HIP) may use most of what
         * is free there: the layer's weights, a Hessian and the solve's
         * buffers need far less than the 1/8 kept back */
        const size_t dev_free = gptq_be_mem_free(p->be);
        const int64_t limit = dev_free ? (int64_t)(dev_free / 8 * 7) : FUSED_MAX_BYTES;
        bt = bytes <= limit ? o->nsamples * S : DEFAULT_BATCH_TOKENS;
    }
    int64_t spc = bt / S;
    if (spc < 1) spc = 1;
    if (spc > o->nsamples) spc = o->nsamples;
    p->S = S;
    p->nchunks = (o->nsamples + spc - 1) / spc;
    p->X = gptq_calloc((size_t)p->nchunks, sizeof *p->X, "calibration chunks");
    p->chunk_nseq = gptq_calloc((size_t)p->nchunks, sizeof *p->chunk_nseq, "calibration chunks");
    if (!p->X || !p->chunk_nseq) return GPTQ_ERR_NOMEM;
    progress(p, 0, "embed", 0.0);
    const double t0 = gptq_now();
    int st = gptq_be_alloc(p->be, (size_t)(spc * S * D) * sizeof(float), &p->Y,
                           "layer output scratch");
    for (int64_t c = 0; c < p->nchunks && !st; c++) {
        const int64_t first = c * spc;
        const int64_t n = o->nsamples - first < spc ? o->nsamples - first : spc;
        p->chunk_nseq[c] = n;
        st = gptq_model_alloc_hidden(p->m, n, S, &p->X[c]);
        if (!st) st = gptq_model_embed(p->m, o->calib_ids + first * S, n, S, p->X[c]);
        if (!st) st = interrupted(p);
    }
    p->stats->seconds_forward += gptq_now() - t0;
    if (st) return gptq_error_prefix(st, "embedding the calibration windows");
    return GPTQ_OK;
}

/* ------------------------------------------------------------------ */
/* The job                                                             */
/* ------------------------------------------------------------------ */

/* The qzeros of one module (N outputs, zero points in slot zi). */
static int write_qzeros_of(pl *p, const char *prefix, int64_t N, int64_t zi)
{
    const int b = p->mq[zi].bits;
    const int64_t ng = p->zeros_ng[zi];
    char name[600];
    int32_t *qz = gptq_malloc((size_t)(ng * N * b / 32) * 4, "qzeros");
    if (!qz) return GPTQ_ERR_NOMEM;
    int st = gptq_qzeros_pack(p->zeros[zi], ng, N, b, p->stats->format, qz);
    if (st) gptq_error_prefix(st, "%s", prefix);
    gptq_tensor_name(name, sizeof name, prefix, GPTQ_T_QZEROS);
    if (!st) st = gptq_ckpt_write(p->ck, name, qz, (size_t)(ng * N * b / 32) * 4);
    free(qz);
    return st;
}

static int write_qzeros(pl *p)
{
    char prefix[512];
    int st = GPTQ_OK;
    for (int L = 0; L < p->nlayers && !st; L++)
        for (int i = 0; i < gptq_model_nlinear(p->m, L) && !st; i++) {
            const int64_t zi = p->mod0[L] + i;
            if (p->skip[zi]) continue;
            gptq_model_linear_prefix(p->m, L, i, prefix, sizeof prefix);
            st = write_qzeros_of(p, prefix, gptq_model_linear(p->m, L, i)->rows, zi);
        }
    if (!st && p->head) st = write_qzeros_of(p, p->head, p->cfg->vocab_size, p->total - 1);
    return st;
}

/* --lm-head: the head quantized last, as GPTQModel does, calibrated on the
 * final norm of the last (quantized) layer's outputs in p->X (GPTQ), or
 * RTN. Its weight goes to the backend for the solve and is freed after. */
static int quantize_head(pl *p)
{
    const int64_t V = p->cfg->vocab_size, D = p->cfg->hidden_size;
    const int64_t shape[2] = {V, D};
    char name[600];
    target t = {.layer = -1, .index = -1, .name = p->head, .prefix = p->head, .R = V, .C = D,
                .zi = p->total - 1};
    gptq_hessian *H = NULL;
    int st = interrupted(p);
    if (st) return st;
    progress(p, p->nlayers - 1, "lm_head", 1.0);
    snprintf(name, sizeof name, "%s.weight", p->head);
    if (p->rtn) {
        st = quantize_linear(p, &t, NULL, 0);
        goto done;
    }
    st = gptq_hessian_new(p->be, D, &H);
    const double t0 = gptq_now();
    for (int64_t c = 0; c < p->nchunks && !st; c++) {
        const gptq_buf *in = NULL;
        const int64_t T = p->chunk_nseq[c] * p->S;
        st = gptq_model_final_norm(p->m, p->X[c], p->Y, T, &in);
        if (!st) st = gptq_hessian_add_buf(H, in, 0, T);
        if (!st) st = gptq_be_sync(p->be);
        if (!st) st = interrupted(p);
    }
    p->stats->seconds_hessian += gptq_now() - t0;
    if (!st) st = gptq_weights_read_f32(p->w, name, 2, shape, p->W);
    if (!st) st = gptq_be_alloc(p->be, (size_t)(V * D) * sizeof(float), &t.Wdev, name);
    if (!st) st = gptq_be_upload(p->be, t.Wdev, 0, p->W, (size_t)(V * D) * sizeof(float));
    if (!st) st = quantize_linear(p, &t, H, gptq_hessian_count(H));
done:
    gptq_hessian_free(H);
    gptq_be_free(p->be, t.Wdev);
    if (st) gptq_error_prefix(st, "--lm-head");
    return st;
}

/* qc's "dynamic", as GPTQModel writes it: first the modules left
 * unquantized because they do not pack, each a negative rule "-:<regex>"
 * with an empty object (loaders re.match the regex against the module
 * name, and the first matching rule decides: so these come before the
 * user's rules, and each is the name with its dots escaped, anchored at
 * the end); then the --dynamic rules in their order. -1 when out of
 * memory. */
static int add_dynamic(const pl *p, cJSON *qc)
{
    cJSON *dyn = cJSON_AddObjectToObject(qc, "dynamic");
    if (!dyn) return -1;
    char prefix[512], rule[1100];
    for (int L = 0; L < p->nlayers; L++)
        for (int i = 0; i < gptq_model_nlinear(p->m, L); i++) {
            if (p->skip[p->mod0[L] + i] != 1) continue;
            gptq_model_linear_prefix(p->m, L, i, prefix, sizeof prefix);
            size_t n = 0;
            rule[n++] = '-';
            rule[n++] = ':';
            for (const char *c = prefix; *c; c++) {
                if (*c == '.') rule[n++] = '\\';
                rule[n++] = *c;
            }
            rule[n++] = '$';
            rule[n] = '\0';
            if (!cJSON_AddObjectToObject(dyn, rule)) return -1;
        }
    for (int k = 0; p->o->dynamic && k < p->o->dynamic->n; k++) {
        const gptq_dyn_rule *r = &p->o->dynamic->r[k];
        cJSON *o = cJSON_AddObjectToObject(dyn, r->key);
        if (!o) return -1;
        if (r->bits > 0 && !cJSON_AddNumberToObject(o, "bits", r->bits)) return -1;
        if (r->group_size && !cJSON_AddNumberToObject(o, "group_size", r->group_size)) return -1;
        if (r->sym >= 0 && !cJSON_AddBoolToObject(o, "sym", r->sym)) return -1;
        if (r->desc_act >= 0 && !cJSON_AddBoolToObject(o, "desc_act", r->desc_act)) return -1;
        if (r->act_group_aware >= 0 &&
            !cJSON_AddBoolToObject(o, "act_group_aware", r->act_group_aware))
            return -1;
    }
    return 0;
}

int gptq_quantize_model(gptq_backend *be, const char *model_dir, const char *out_dir,
                        const gptq_pipeline_options *o, gptq_pipeline_stats *stats)
{
    memset(stats, 0, sizeof *stats);
    pl P = {0}, *p = &P;
    /* the interrupt flag reaches the layer solves (their damp retries and
     * blocks) through the quantization options */
    gptq_pipeline_options oi = *o;
    if (!oi.q.interrupt) oi.q.interrupt = o->interrupt;
    p->o = &oi;
    p->stats = stats;
    p->be = be;
    p->model_dir = model_dir;
    p->t0 = gptq_now();
    p->rtn = o->q.method == GPTQ_METHOD_RTN;
    p->hook_group = -1;
    if (o->format != GPTQ_PIPELINE_FORMAT_AUTO && !gptq_format_get((gptq_format)o->format))
        return gptq_error(GPTQ_ERR_INVALID, "format %d: auto (0), gptq (1) or gptq_v2 (2)",
                          o->format);
    int st = gptq_ckpt_check_out(out_dir, model_dir, o->overwrite);
    if (st) return st;
    st = gptq_model_open(model_dir, be, &p->m);
    if (st) return st;
    gptq_model_set_forward_math(p->m, o->forward_math ? GPTQ_MATH_TF32 : GPTQ_MATH_F32);
    p->w = gptq_model_weights(p->m);
    p->cfg = gptq_model_config_of(p->m);
    p->nlayers = (int)p->cfg->num_layers;
    p->mod0 = gptq_calloc((size_t)p->nlayers, sizeof *p->mod0, "module counts");
    if (!p->mod0) {
        st = GPTQ_ERR_NOMEM;
        goto done;
    }
    int64_t maxw = 0;
    p->head = o->lm_head ? gptq_model_head_prefix(p->m) : NULL;
    if (o->lm_head && !p->head) {
        /* GPTQModel refuses it too (NotImplementedError for tied weights) */
        st = gptq_error(GPTQ_ERR_UNSUPPORTED,
                        "--lm-head: %s ties lm_head to the embedding (tie_word_embeddings), "
                        "which would stay unquantized for the input side; GPTQModel refuses "
                        "to quantize a tied lm_head, and so does gptq-c",
                        model_dir);
        goto done;
    }
    for (int L = 0; L < p->nlayers; L++) {
        p->mod0[L] = p->total;
        p->total += gptq_model_nlinear(p->m, L);
        if (gptq_model_ngroups(p->m, L) > p->maxgroups) p->maxgroups = gptq_model_ngroups(p->m, L);
        for (int i = 0; i < gptq_model_nlinear(p->m, L); i++) {
            const gptq_linear_info *li = gptq_model_linear(p->m, L, i);
            if (li->rows * li->cols > maxw) maxw = li->rows * li->cols;
        }
    }
    if (p->head) {
        p->total++; /* the head's zero points: the last slot */
        if (p->cfg->vocab_size * p->cfg->hidden_size > maxw)
            maxw = p->cfg->vocab_size * p->cfg->hidden_size;
    }
    p->skip = gptq_calloc((size_t)p->total, 1, "skipped modules");
    p->mq = gptq_calloc((size_t)p->total, sizeof *p->mq, "module settings");
    if (!p->skip || !p->mq) {
        st = GPTQ_ERR_NOMEM;
        goto done;
    }
    if ((st = check_model(p))) goto done;
    stats->nskipped = p->nskip;

    p->H = gptq_calloc((size_t)p->maxgroups, sizeof *p->H, "Hessians");
    p->W = gptq_malloc((size_t)maxw * sizeof(float), "a module's weight");
    p->zeros = gptq_calloc((size_t)p->total, sizeof *p->zeros, "zero points");
    p->zeros_ng = gptq_calloc((size_t)p->total, sizeof *p->zeros_ng, "zero points");
    if (!p->H || !p->W || !p->zeros || !p->zeros_ng) {
        st = GPTQ_ERR_NOMEM;
        goto done;
    }

    if ((st = gptq_ckpt_begin(out_dir, o->max_shard_bytes ? o->max_shard_bytes
                                                          : DEFAULT_SHARD_BYTES, &p->ck)))
        goto done;
    if ((st = plan(p))) goto done;
    double tw = gptq_now();
    st = copy_plain(p);
    stats->seconds_write += gptq_now() - tw;
    if (st) goto done;

    if (p->rtn) {
        for (int L = 0; L < p->nlayers && !st; L++)
            for (int i = 0; i < gptq_model_nlinear(p->m, L) && !st; i++) {
                if ((st = interrupted(p))) break;
                if (p->skip[p->mod0[L] + i]) {
                    p->done++;
                    continue;
                }
                progress(p, L, "quantize", 0.0);
                st = quantize_module(p, L, i, NULL, 0);
            }
    } else {
        st = embed_calibration(p);
        for (int L = 0; L < p->nlayers && !st; L++) st = quantize_layer_gptq(p, L);
        gptq_model_layer_unload(p->m);
    }
    if (!st && p->head) st = quantize_head(p);
    if (st) goto done;

    /* The zero-point format over the whole model. An asymmetric checkpoint
     * (quantization_config "sym": false) is v2 even when every zero would
     * fit v1: GPTQModel's loader (gptqmodel/models/loader.py) refuses a
     * "gptq" (v1) checkpoint with sym false unless its meta.quantizer
     * names "gptqmodel:<version>" with version >= 0.9.0
     * (MIN_VERSION_WITH_V2, is_quantized_by_gptaq in
     * quantization/config.py), which ours never does. Symmetric ones stay
     * v1, the format every loader reads, unless a zero of 0 (a --dynamic
     * asymmetric module) needs v2. */
    stats->format = o->format != GPTQ_PIPELINE_FORMAT_AUTO ? (gptq_format)o->format
                    : !o->q.sym || stats->zero0 ? GPTQ_FORMAT_V2 : GPTQ_FORMAT_V1;
    progress(p, p->nlayers, "finish", 1.0);
    tw = gptq_now();
    if ((st = write_qzeros(p))) goto done;
    cJSON *qc = gptq_ckpt_quant_config(&o->q, stats->format, o->true_sequential,
                                       gptq_quant_config_act_group_aware(&o->q));
    /* GPTQModel's lm_head=True */
    if (qc && p->head && !cJSON_ReplaceItemInObjectCaseSensitive(qc, "lm_head", cJSON_CreateTrue())) {
        cJSON_Delete(qc);
        qc = NULL;
    }
    if (qc && (p->nskip || p->o->dynamic) && add_dynamic(p, qc)) {
        cJSON_Delete(qc);
        qc = NULL;
    }
    if (!qc) {
        st = gptq_error(GPTQ_ERR_NOMEM, "quantization_config: out of memory");
        goto done;
    }
    /* the output folder may have changed during the run: check again
     * before replacing it */
    st = gptq_ckpt_check_out(out_dir, model_dir, o->overwrite);
    if (!st) st = gptq_ckpt_finish(p->ck, model_dir, qc); /* frees ck either way */
    else gptq_ckpt_abort(p->ck);
    p->ck = NULL;
    cJSON_Delete(qc);
    stats->seconds_write += gptq_now() - tw;

done:
    gptq_ckpt_abort(p->ck);
    free_hessians(p);
    if (p->X)
        for (int64_t c = 0; c < p->nchunks; c++) gptq_be_free(be, p->X[c]);
    gptq_be_free(be, p->Y);
    free(p->X);
    free(p->chunk_nseq);
    if (p->zeros)
        for (int64_t k = 0; k < p->total; k++) free(p->zeros[k]);
    free(p->zeros);
    free(p->zeros_ng);
    free(p->skip);
    free(p->mq);
    free(p->mod0);
    free(p->H);
    free(p->W);
    gptq_model_close(p->m);
    stats->seconds_total = gptq_now() - p->t0;
    return st;
}
