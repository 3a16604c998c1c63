/*
 * ctensors_config.c — a compressed-tensors quantization_config read as the
 * checkpoint's quantization (model.h gptq_ct_parse_quant): the subset
 * gptq-c writes and its kernels run, pack-quantized integer weights with one
 * config group (src/format/ctensors.c states the layout and its sources:
 * compressed-tensors quantization/quant_args.py, quant_scheme.py,
 * config/base.py).
 */
#include <stdio.h>
#include <string.h>

#include "../io/io.h"
#include "model.h"

/* One "ignore" entry as a "-:" rule: "re:<regex>" keeps its regex, a plain
 * module name matches itself alone. */
static int ignore_rule(const char *entry, char *key, size_t size)
{
    if (!strncmp(entry, "re:", 3)) {
        snprintf(key, size, "-:%s", entry + 3);
        return GPTQ_OK;
    }
    size_t n = 0;
    key[n++] = '-';
    key[n++] = ':';
    for (const char *c = entry; *c; c++) {
        if (n + 3 >= size) return -1;
        if (strchr(".^$*+?()[]{}|\\", *c)) key[n++] = '\\';
        key[n++] = *c;
    }
    key[n++] = '$';
    key[n] = '\0';
    return GPTQ_OK;
}

int gptq_ct_parse_quant(const cJSON *q, const char *file, gptq_ckpt_quant *out)
{
    gptq_ckpt_quant r = {.present = 1, .format = GPTQ_FORMAT_V2, .ctensors = 1};
    const char *fmt = NULL;
    GPTQ_TRY(gptq_json_get_str(q, "format", &fmt, 1, file));
    if (strcmp(fmt, "pack-quantized"))
        return gptq_error(GPTQ_ERR_UNSUPPORTED, "%s: quantization_config: compressed-tensors "
                          "format \"%s\" is not read (only \"pack-quantized\")", file, fmt);
    const cJSON *groups = NULL;
    GPTQ_TRY(gptq_json_get_object(q, "config_groups", &groups, 1, file));
    if (cJSON_GetArraySize(groups) != 1)
        return gptq_error(GPTQ_ERR_UNSUPPORTED, "%s: quantization_config.config_groups has %d "
                          "groups; one is read (one setting for every Linear)", file,
                          cJSON_GetArraySize(groups));
    const cJSON *g = groups->child, *targets = NULL, *w = NULL, *act = NULL;
    if (!cJSON_IsObject(g))
        return gptq_error(GPTQ_ERR_FORMAT, "%s: quantization_config.config_groups.%s must be an "
                          "object", file, g->string);
    GPTQ_TRY(gptq_json_get_array(g, "targets", &targets, 1, file));
    const cJSON *t;
    int linear = 0;
    cJSON_ArrayForEach(t, targets) linear |= cJSON_IsString(t) && !strcmp(t->valuestring, "Linear");
    if (!linear || cJSON_GetArraySize(targets) != 1)
        return gptq_error(GPTQ_ERR_UNSUPPORTED, "%s: config_groups.%s.targets must be "
                          "[\"Linear\"]", file, g->string);
    GPTQ_TRY(gptq_json_get_object(g, "input_activations", &act, 0, file));
    if (act)
        return gptq_error(GPTQ_ERR_UNSUPPORTED, "%s: config_groups.%s quantizes activations; "
                          "only weight-only (W4A16, W8A16) checkpoints are read", file, g->string);
    GPTQ_TRY(gptq_json_get_object(g, "weights", &w, 1, file));
    int64_t bits = 0, gs = -1;
    const char *type = NULL, *strategy = NULL, *actorder = NULL;
    GPTQ_TRY(gptq_json_get_int(w, "num_bits", &bits, 1, file));
    /* the widths gptq_ct_check_bits allows (not called: this file links
     * without the packers, as the config fuzz target builds it) */
    if (bits != 4 && bits != 8)
        return gptq_error(GPTQ_ERR_UNSUPPORTED, "%s: compressed-tensors: %lld bits: only 4 or 8 "
                          "are read", file, (long long)bits);
    GPTQ_TRY(gptq_json_get_str(w, "type", &type, 1, file));
    if (strcmp(type, "int"))
        return gptq_error(GPTQ_ERR_UNSUPPORTED, "%s: weights type \"%s\": only \"int\"", file,
                          type);
    GPTQ_TRY(gptq_json_get_bool(w, "symmetric", &r.sym, 1, file));
    GPTQ_TRY(gptq_json_get_str(w, "strategy", &strategy, 1, file));
    if (!strcmp(strategy, "group")) {
        GPTQ_TRY(gptq_json_get_int(w, "group_size", &gs, 1, file));
        if (gs <= 0 || gs > INT32_MAX)
            return gptq_error(GPTQ_ERR_FORMAT, "%s: weights group_size %lld: must be positive",
                              file, (long long)gs);
    } else if (strcmp(strategy, "channel")) {
        return gptq_error(GPTQ_ERR_UNSUPPORTED, "%s: weights strategy \"%s\": only \"group\" or "
                          "\"channel\"", file, strategy);
    }
    /* "group": permuted groups in weight_g_idx, which is not read */
    GPTQ_TRY(gptq_json_get_str(w, "actorder", &actorder, 0, file));
    if (actorder && strcmp(actorder, "weight"))
        return gptq_error(GPTQ_ERR_UNSUPPORTED, "%s: weights actorder \"%s\": only null or "
                          "\"weight\" (contiguous groups) are read", file, actorder);
    r.bits = (int)bits;
    r.group_size = (int)gs;
    const cJSON *ignore = NULL, *e;
    GPTQ_TRY(gptq_json_get_array(q, "ignore", &ignore, 0, file));
    cJSON *dyn = cJSON_CreateObject();
    if (!dyn) return gptq_error(GPTQ_ERR_NOMEM, "%s: out of memory", file);
    int st = GPTQ_OK;
    cJSON_ArrayForEach(e, ignore)
    {
        char key[300];
        if (!cJSON_IsString(e) || ignore_rule(e->valuestring, key, sizeof key))
            st = gptq_error(GPTQ_ERR_FORMAT, "%s: quantization_config.ignore: every entry must "
                            "be a module name or \"re:<regex>\" of under 250 characters", file);
        else if (!strcmp(e->valuestring, "lm_head")) continue;
        else if (!cJSON_GetObjectItemCaseSensitive(dyn, key) && !cJSON_AddObjectToObject(dyn, key))
            st = gptq_error(GPTQ_ERR_NOMEM, "%s: out of memory", file);
        if (st) break;
    }
    /* lm_head is quantized unless ignored (it is a Linear) */
    r.lm_head = 1;
    cJSON_ArrayForEach(e, ignore) if (cJSON_IsString(e) && !strcmp(e->valuestring, "lm_head"))
        r.lm_head = 0;
    if (!st && cJSON_GetArraySize(dyn)) st = gptq_dynamic_parse(dyn, file, &r.dynamic);
    cJSON_Delete(dyn);
    if (st) return st;
    *out = r;
    return GPTQ_OK;
}
