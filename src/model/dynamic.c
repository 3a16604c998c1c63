/*
 * dynamic.c — GPTQModel's per-module rules, quantization_config "dynamic"
 * (model.h): an object of regex -> {} in order. A key "-:<regex>" leaves
 * the modules it matches unquantized; "+:<regex>" or a bare "<regex>"
 * overrides bits / group_size / sym / desc_act / act_group_aware for them. As GPTQModel and
 * vLLM do: the first rule whose regex matches decides, and a regex matches
 * as Python's re.match does, at the start of the module name (not
 * necessarily to its end). PCRE2 reads the regexes.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <pcre2.h>
#include <stdio.h>
#include <string.h>

#include "../format/format.h"
#include "../io/io.h"
#include "model.h"

static const char *rule_regex(const gptq_dyn_rule *r)
{
    return r->key + ((r->key[0] == '-' || r->key[0] == '+') && r->key[1] == ':' ? 2 : 0);
}

/* re compiled; else GPTQ_ERR_INVALID naming what, the rule and PCRE2's
 * message. */
static int compile(const char *what, const gptq_dyn_rule *r, pcre2_code **out)
{
    int err = 0;
    PCRE2_SIZE off = 0;
    *out = pcre2_compile((PCRE2_SPTR)rule_regex(r), PCRE2_ZERO_TERMINATED, 0, &err, &off, NULL);
    if (*out) return GPTQ_OK;
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    return gptq_error(GPTQ_ERR_INVALID, "%s: dynamic rule \"%s\": bad regex at offset %zu: %s",
                      what, r->key, (size_t)off, (const char *)msg);
}

int gptq_dynamic_parse(const cJSON *obj, const char *what, gptq_dynamic *out)
{
    memset(out, 0, sizeof *out);
    if (!cJSON_IsObject(obj))
        return gptq_error(GPTQ_ERR_FORMAT, "%s: \"dynamic\" must be an object of regex -> {}",
                          what);
    static const char *const keys[] = {"bits", "group_size", "sym", "desc_act",
                                       "act_group_aware"};
    for (const cJSON *it = obj->child; it; it = it->next) {
        if (out->n == GPTQ_DYNAMIC_MAX)
            return gptq_error(GPTQ_ERR_UNSUPPORTED, "%s: \"dynamic\" has more than %d rules",
                              what, GPTQ_DYNAMIC_MAX);
        gptq_dyn_rule *r = &out->r[out->n];
        if (strlen(it->string) >= sizeof r->key)
            return gptq_error(GPTQ_ERR_UNSUPPORTED, "%s: dynamic rule \"%.40s...\": longer than "
                              "%zu bytes", what, it->string, sizeof r->key - 1);
        snprintf(r->key, sizeof r->key, "%s", it->string);
        r->skip = strncmp(r->key, "-:", 2) == 0;
        r->bits = r->sym = r->desc_act = r->act_group_aware = -1;
        r->group_size = 0;
        if (!cJSON_IsObject(it))
            return gptq_error(GPTQ_ERR_FORMAT, "%s: dynamic rule \"%s\": its value must be an "
                              "object ({} or overrides of bits, group_size, sym, desc_act, "
                              "act_group_aware)",
                              what, r->key);
        for (const cJSON *k = it->child; k; k = k->next) {
            int known = 0;
            for (size_t j = 0; j < sizeof keys / sizeof *keys; j++) known |= !strcmp(k->string, keys[j]);
            if (!known)
                return gptq_error(GPTQ_ERR_UNSUPPORTED, "%s: dynamic rule \"%s\": unknown key "
                                  "\"%s\" (bits, group_size, sym, desc_act, act_group_aware)",
                                  what, r->key, k->string);
        }
        char ctx[400];
        snprintf(ctx, sizeof ctx, "%s: dynamic rule \"%s\"", what, r->key);
        int64_t v = 0;
        int st = gptq_json_get_int(it, "bits", &v, 0, ctx);
        if (st < 0) return st;
        if (st == GPTQ_OK) {
            if (gptq_format_check_bits(GPTQ_ERR_UNSUPPORTED, "bits", v))
                return gptq_error_prefix(GPTQ_ERR_UNSUPPORTED, "%s", ctx);
            r->bits = (int)v;
        }
        st = gptq_json_get_int(it, "group_size", &v, 0, ctx);
        if (st < 0) return st;
        if (st == GPTQ_OK) {
            if (v != -1 && (v <= 0 || v > INT32_MAX))
                return gptq_error(GPTQ_ERR_FORMAT, "%s: group_size = %lld (must be -1 or "
                                  "positive)", ctx, (long long)v);
            r->group_size = (int)v;
        }
        GPTQ_TRY(gptq_json_get_bool(it, "sym", &r->sym, 0, ctx));
        GPTQ_TRY(gptq_json_get_bool(it, "desc_act", &r->desc_act, 0, ctx));
        GPTQ_TRY(gptq_json_get_bool(it, "act_group_aware", &r->act_group_aware, 0, ctx));
        if (r->act_group_aware == 1 && (r->desc_act == 1 || r->group_size == -1))
            return gptq_error(GPTQ_ERR_FORMAT, "%s: act_group_aware true with %s (GAR orders the "
                              "groups of a non-act-order layer)", ctx,
                              r->desc_act == 1 ? "desc_act true" : "group_size -1");
        pcre2_code *re = NULL;
        GPTQ_TRY(compile(what, r, &re));
        pcre2_code_free(re);
        out->n++;
    }
    return GPTQ_OK;
}

int gptq_dynamic_match(const gptq_dynamic *d, const char *module, const gptq_dyn_rule **out)
{
    *out = NULL;
    for (int i = 0; i < d->n; i++) {
        pcre2_code *re = NULL;
        GPTQ_TRY(compile("dynamic", &d->r[i], &re));
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
        int rc = md ? pcre2_match(re, (PCRE2_SPTR)module, PCRE2_ZERO_TERMINATED, 0,
                                  PCRE2_ANCHORED, md, NULL)
                    : PCRE2_ERROR_NOMEMORY;
        pcre2_match_data_free(md);
        pcre2_code_free(re);
        if (rc >= 0) {
            *out = &d->r[i];
            return GPTQ_OK;
        }
        if (rc != PCRE2_ERROR_NOMATCH)
            return gptq_error(GPTQ_ERR_INVALID, "dynamic rule \"%s\": matching %s failed (PCRE2 "
                              "error %d)", d->r[i].key, module, rc);
    }
    return GPTQ_OK;
}

int gptq_ckpt_quant_for_module(const gptq_ckpt_quant *q, const char *module,
                               gptq_ckpt_quant *out)
{
    *out = *q;
    out->dynamic.n = 0;
    const gptq_dyn_rule *r = NULL;
    if (q->dynamic.n) GPTQ_TRY(gptq_dynamic_match(&q->dynamic, module, &r));
    if (!r || r->skip) return GPTQ_OK;
    if (r->bits > 0) out->bits = r->bits;
    if (r->group_size) out->group_size = r->group_size;
    if (r->sym >= 0) out->sym = r->sym;
    if (r->desc_act >= 0) out->desc_act = r->desc_act;
    return GPTQ_OK;
}

int gptq_dynamic_load(const char *arg, gptq_dynamic *d)
{
    cJSON *js = NULL;
    int st = arg[0] == '{' ? gptq_json_parse(arg, strlen(arg), "--dynamic", &js)
                           : gptq_json_read_file(arg, &js);
    if (st) return gptq_error_prefix(st, "--dynamic");
    char what[1100];
    snprintf(what, sizeof what, arg[0] == '{' ? "--dynamic" : "--dynamic %s", arg);
    st = gptq_dynamic_parse(js, what, d);
    cJSON_Delete(js);
    return st;
}
