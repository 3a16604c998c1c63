/*
 * ctensors_ckpt.c — a gptq-c checkpoint folder rewritten as a
 * compressed-tensors "pack-quantized" one (src/format/ctensors.c states the
 * tensors; ctensors_ckpt.h the folder).
 *
 * Every "<m>.qweight" module becomes <m>.weight_packed, .weight_scale,
 * .weight_zero_point (asymmetric only) and .weight_shape, in the place of
 * its GPTQ tensors; every other tensor is copied as it is. The modules the
 * source left unquantized ("-:" rules of its "dynamic": the shapes the
 * format cannot pack) and an unquantized lm_head go into "ignore" as
 * "re:<regex>" / "lm_head" (compressed-tensors matches "re:" entries with
 * Python's re.match, GPTQModel's "-:" rules likewise).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../format/ctensors.h"
#include "../model/model.h"
#include "checkpoint.h"
#include "ctensors_ckpt.h"
#include "io.h"

static const char *const k_gptq_sfx[] = {".qweight", ".qzeros", ".scales", ".g_idx"};

/* The module prefix of a GPTQ tensor name whose module has a qweight, in
 * buf; NULL for any other tensor. */
static const char *gptq_prefix(const gptq_weights *w, const char *name, char *buf, size_t size,
                               int *is_qweight)
{
    const size_t n = strlen(name);
    for (size_t i = 0; i < sizeof k_gptq_sfx / sizeof *k_gptq_sfx; i++) {
        const size_t s = strlen(k_gptq_sfx[i]);
        if (n <= s || n - s >= size || strcmp(name + n - s, k_gptq_sfx[i])) continue;
        memcpy(buf, name, n - s);
        buf[n - s] = '\0';
        char qw[700];
        snprintf(qw, sizeof qw, "%s.qweight", buf);
        if (!gptq_weights_has(w, qw)) return NULL;
        *is_qweight = i == 0;
        return buf;
    }
    return NULL;
}

/* The module's settings: one config group holds them all, so a dynamic
 * rule that changes bits, groups or sym cannot be written. */
static int module_quant(const gptq_ckpt_quant *q, const char *dir, const char *prefix,
                        gptq_ckpt_quant *mq)
{
    *mq = *q;
    if (q->dynamic.n) GPTQ_TRY(gptq_ckpt_quant_for_module(q, prefix, mq));
    if (mq->bits != q->bits || mq->group_size != q->group_size || mq->sym != q->sym)
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: %s: --dynamic gives it %d bits, group %d, %s; compressed-tensors "
                          "is written with one config group (%d bits, group %d, %s): use "
                          "--format gptq_v2 for per-module settings",
                          dir, prefix, mq->bits, mq->group_size, mq->sym ? "sym" : "asym",
                          q->bits, q->group_size, q->sym ? "sym" : "asym");
    return GPTQ_OK;
}

int gptq_ct_check_rules(const gptq_dynamic *d, const gptq_quant_config *q)
{
    for (int i = 0; i < d->n; i++) {
        const gptq_dyn_rule *r = &d->r[i];
        char what[64] = "";
        if (r->skip) continue;
        if (r->bits > 0 && r->bits != q->bits)
            snprintf(what, sizeof what, "bits %d", r->bits);
        else if (r->group_size && r->group_size != q->group_size)
            snprintf(what, sizeof what, "group_size %d", r->group_size);
        else if (r->sym >= 0 && r->sym != q->sym)
            snprintf(what, sizeof what, "sym %s", r->sym ? "true" : "false");
        else if (r->desc_act == 1 && !q->static_groups)
            snprintf(what, sizeof what, "desc_act true (act-order groups, a permuted g_idx)");
        if (!what[0]) continue;
        return gptq_error(GPTQ_ERR_INVALID,
                          "--format compressed-tensors: the --dynamic rule \"%s\" gives %s, but "
                          "compressed-tensors is written with one config group for every "
                          "quantized module (%d bits, group %d, %s; no act-order groups): use "
                          "--format gptq_v2 for per-module settings (\"-:\" rules, written as "
                          "\"ignore\", are fine)",
                          r->key, what, q->bits, q->group_size, q->sym ? "sym" : "asym");
    }
    return GPTQ_OK;
}

static int64_t ngroups_of(const gptq_ckpt_quant *q, int64_t K)
{
    const int64_t G = q->group_size == -1 ? K : q->group_size;
    return (K + G - 1) / G;
}

/* pass 0: declare; pass 1: convert and write. */
static int one_module(gptq_ckpt *c, const gptq_weights *w, const gptq_ckpt_quant *q,
                      const char *dir, const char *prefix, int pass)
{
    gptq_ckpt_quant mq;
    GPTQ_TRY(module_quant(q, dir, prefix, &mq));
    char name[700];
    gptq_st_info sc;
    snprintf(name, sizeof name, "%s.scales", prefix);
    GPTQ_TRY(gptq_weights_find(w, name, &sc));
    snprintf(name, sizeof name, "%s.qweight", prefix);
    gptq_st_info qw;
    GPTQ_TRY(gptq_weights_find(w, name, &qw));
    if (sc.ndim != 2 || qw.ndim != 2)
        return gptq_error(GPTQ_ERR_FORMAT, "%s: %s: qweight and scales must be 2-D", dir, prefix);
    const int64_t N = sc.shape[1], K = qw.shape[0] * 32 / mq.bits, ng = ngroups_of(&mq, K);
    const int pf = 32 / mq.bits;
    const int64_t wp[2] = {N, (K + pf - 1) / pf}, ws[2] = {N, ng},
                  wz[2] = {(N + pf - 1) / pf, ng}, two = 2;
    if (pass == 0) {
        snprintf(name, sizeof name, "%s.weight_packed", prefix);
        GPTQ_TRY(gptq_ckpt_declare(c, name, GPTQ_I32, 2, wp));
        snprintf(name, sizeof name, "%s.weight_scale", prefix);
        GPTQ_TRY(gptq_ckpt_declare(c, name, GPTQ_F16, 2, ws));
        if (!mq.sym) {
            snprintf(name, sizeof name, "%s.weight_zero_point", prefix);
            GPTQ_TRY(gptq_ckpt_declare(c, name, GPTQ_I32, 2, wz));
        }
        snprintf(name, sizeof name, "%s.weight_shape", prefix);
        return gptq_ckpt_declare(c, name, GPTQ_I64, 1, &two);
    }
    gptq_packed p;
    gptq_ct_linear ct;
    memset(&ct, 0, sizeof ct);
    int st = gptq_weights_read_packed(w, q, prefix, N, K, &p);
    if (!st) st = gptq_ct_from_packed(&p, mq.group_size, mq.sym, &ct);
    gptq_packed_free(&p);
    if (st) return gptq_error_prefix(st, "%s: %s", dir, prefix);
    const int64_t shape[2] = {N, K};
    snprintf(name, sizeof name, "%s.weight_packed", prefix);
    st = gptq_ckpt_write(c, name, ct.weight_packed, (size_t)(wp[0] * wp[1]) * 4);
    snprintf(name, sizeof name, "%s.weight_scale", prefix);
    if (!st) st = gptq_ckpt_write(c, name, ct.weight_scale, (size_t)(N * ng) * 2);
    snprintf(name, sizeof name, "%s.weight_zero_point", prefix);
    if (!st && !mq.sym)
        st = gptq_ckpt_write(c, name, ct.weight_zero_point, (size_t)(wz[0] * wz[1]) * 4);
    snprintf(name, sizeof name, "%s.weight_shape", prefix);
    if (!st) st = gptq_ckpt_write(c, name, shape, sizeof shape);
    gptq_ct_free(&ct);
    return st;
}

static int tensors(gptq_ckpt *c, const gptq_weights *w, const gptq_ckpt_quant *q,
                   const char *dir, int pass)
{
    for (int i = 0; i < gptq_weights_count(w); i++) {
        gptq_st_info info;
        GPTQ_TRY(gptq_weights_get(w, i, &info));
        char prefix[600];
        int is_qweight = 0;
        if (gptq_prefix(w, info.name, prefix, sizeof prefix, &is_qweight)) {
            if (is_qweight) GPTQ_TRY(one_module(c, w, q, dir, prefix, pass));
            continue;
        }
        if (pass == 0) GPTQ_TRY(gptq_ckpt_declare(c, info.name, info.dtype, info.ndim, info.shape));
        else GPTQ_TRY(gptq_ckpt_write(c, info.name, info.data, info.nbytes));
    }
    return GPTQ_OK;
}

/* config.json's object, and quantize_config.json's: the same with gptq-c's
 * "meta" (the output policy knows our folders by it). */
static int configs(const gptq_ckpt_quant *q, const cJSON *src_meta, int actorder_weight,
                   cJSON **cfg, cJSON **qcfg)
{
    const char *ign[GPTQ_DYNAMIC_MAX + 1];
    char re[GPTQ_DYNAMIC_MAX][260];
    int n = 0;
    if (!q->lm_head) ign[n++] = "lm_head";
    for (int i = 0; i < q->dynamic.n; i++) {
        if (!q->dynamic.r[i].skip) continue;
        snprintf(re[i], sizeof re[i], "re:%s", q->dynamic.r[i].key + 2); /* "-:" */
        ign[n++] = re[i];
    }
    *cfg = gptq_ct_quant_config(q->bits, q->group_size, q->sym, actorder_weight, ign, n);
    *qcfg = gptq_ct_quant_config(q->bits, q->group_size, q->sym, actorder_weight, ign, n);
    cJSON *meta = src_meta ? cJSON_Duplicate(src_meta, 1) : NULL;
    if (!*cfg || !*qcfg || !meta) {
        cJSON_Delete(*cfg);
        cJSON_Delete(*qcfg);
        cJSON_Delete(meta);
        return gptq_error(GPTQ_ERR_NOMEM, "compressed-tensors: quantization_config: out of memory");
    }
    cJSON_AddItemToObject(*qcfg, "meta", meta);
    return GPTQ_OK;
}

int gptq_ct_convert_dir(const char *gptq_dir, const char *out_dir, int actorder_weight,
                        uint64_t max_shard_bytes)
{
    gptq_ckpt_quant q;
    gptq_weights *w = NULL;
    gptq_ckpt *c = NULL;
    cJSON *cfg = NULL, *qcfg = NULL, *src_q = NULL;
    char path[4200];
    int st = gptq_ckpt_quant_load(gptq_dir, &q);
    if (!st && (!q.present || q.format != GPTQ_FORMAT_V2))
        st = gptq_error(GPTQ_ERR_FORMAT, "%s: not a gptq_v2 checkpoint", gptq_dir);
    if (!st) st = gptq_ct_check_bits(GPTQ_ERR_UNSUPPORTED, q.bits);
    snprintf(path, sizeof path, "%s/quantize_config.json", gptq_dir);
    if (!st) st = gptq_json_read_file(path, &src_q);
    if (!st) st = configs(&q, cJSON_GetObjectItemCaseSensitive(src_q, "meta"), actorder_weight,
                          &cfg, &qcfg);
    if (!st) st = gptq_weights_open(gptq_dir, &w);
    if (!st) st = gptq_ckpt_begin(out_dir, max_shard_bytes ? max_shard_bytes : 4000000000ull, &c);
    if (!st) st = tensors(c, w, &q, gptq_dir, 0);
    if (!st) st = gptq_ckpt_plan(c);
    if (!st) st = tensors(c, w, &q, gptq_dir, 1);
    if (!st) {
        st = gptq_ckpt_finish2(c, gptq_dir, cfg, qcfg); /* frees c either way */
        c = NULL;
    }
    gptq_ckpt_abort(c);
    gptq_weights_close(w);
    cJSON_Delete(cfg);
    cJSON_Delete(qcfg);
    cJSON_Delete(src_q);
    return st;
}
