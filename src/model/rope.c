/*
 * rope.c — RoPE scaling (config.json's rope_scaling / rope_parameters) and
 * the [cos | sin] table the backends' rope op applies.
 *
 * Both spellings are read:
 *   transformers 4: "rope_scaling": {"rope_type" (or "type"), "factor", ...},
 *                   "rope_theta" at the top level;
 *   transformers 5: "rope_parameters": {"rope_type", "rope_theta", "factor", ...}.
 * Types: default, linear, dynamic, llama3, yarn, and for the families that
 * allow it (gptq_rope_allow: Phi-3) longrope and partial_rotary_factor (as
 * transformers' modeling_rope_utils.py computes them; each parameter's
 * default is theirs). Anything else (longrope elsewhere, an unknown type, a
 * key the type does not use, a missing or non-positive parameter) is
 * refused by key and value.
 *
 * Partial rotary: only the first rot = int(head_dim * partial_rotary_factor)
 * dims of each head rotate; the table is (S, rot) and every frequency is of
 * dim rot (transformers' `dim`).
 *
 * longrope, for a forward over S tokens (positions 0 .. S-1): the short
 * factors when S <= original_max_position_embeddings, else the long ones
 * (transformers' longrope_frequency_update with seq_len = max(position) + 1
 * = S); inv_freq[i] = 1 / (factor[i] * theta ^ (2i / rot)); cos and sin are
 * multiplied by attention_factor, else by sqrt(1 + ln(s) / ln(original))
 * with s = max_position_embeddings / original when s > 1 (1 otherwise).
 *
 * Precision, so that the table matches transformers' bit for bit where the
 * math library allows: transformers builds inv_freq as an fp32 tensor from
 * Python (float64) scalars; every tensor op rounds to fp32, and a Python
 * scalar meeting an fp32 tensor is first rounded to fp32. `a / t` for a
 * scalar a is torch's reciprocal(t) * a (two roundings). The angle of
 * position p is f32(p * inv_freq), cos and sin are taken of that fp32 angle
 * and multiplied by the fp32 attention factor (yarn; 1 otherwise, exact).
 * Where torch's pow/cos run vectorized (Sleef, within 1 ulp) instead of the
 * C library's, a value may differ by 1 ulp: tools/rope_oracle.py measures it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/io.h"
#include "arch.h"

static const char *const k_type_names[] = {
    [GPTQ_ROPE_DEFAULT] = "default", [GPTQ_ROPE_LINEAR] = "linear",
    [GPTQ_ROPE_DYNAMIC] = "dynamic", [GPTQ_ROPE_LLAMA3] = "llama3",
    [GPTQ_ROPE_YARN] = "yarn", [GPTQ_ROPE_LONGROPE] = "longrope",
};
#define NTYPES ((int)(sizeof k_type_names / sizeof *k_type_names))

/* The keys each type reads besides rope_type, type, rope_theta and
 * partial_rotary_factor (transformers' validation lists). */
static const char *const k_type_keys[][9] = {
    [GPTQ_ROPE_DEFAULT] = {NULL},
    [GPTQ_ROPE_LINEAR] = {"factor", NULL},
    [GPTQ_ROPE_DYNAMIC] = {"factor", NULL},
    [GPTQ_ROPE_LLAMA3] = {"factor", "low_freq_factor", "high_freq_factor",
                          "original_max_position_embeddings", NULL},
    [GPTQ_ROPE_YARN] = {"factor", "original_max_position_embeddings", "attention_factor",
                        "beta_fast", "beta_slow", "mscale", "mscale_all_dim", "truncate", NULL},
    /* factor: optional, unused where an original length is known (always
     * with Phi-3: Phi3Config's default is 4096), as in transformers */
    [GPTQ_ROPE_LONGROPE] = {"short_factor", "long_factor", "factor",
                            "original_max_position_embeddings", "attention_factor", NULL},
};

static int key_known(gptq_rope_type t, const char *k)
{
    if (!strcmp(k, "rope_type") || !strcmp(k, "type") || !strcmp(k, "rope_theta") ||
        !strcmp(k, "partial_rotary_factor"))
        return 1;
    for (int i = 0; k_type_keys[t][i]; i++)
        if (!strcmp(k_type_keys[t][i], k)) return 1;
    return 0;
}

/* A number > 0 (finite: the JSON reader refuses others); where = "FILE: OBJ". */
static int get_positive(const cJSON *o, const char *key, double *v, int required,
                        const char *where)
{
    int st = gptq_json_get_num(o, key, v, required, where);
    if (st) return st < 0 ? st : GPTQ_OK;
    if (!(*v > 0))
        return gptq_error(GPTQ_ERR_FORMAT, "%s.%s = %g must be positive", where, key, *v);
    return GPTQ_OK;
}

/* The key is there and not null. */
static int present(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return v && !cJSON_IsNull(v);
}

/* yarn's get_mscale (the YaRN paper's 0.1 ln(s) + 1), in float64. */
static double yarn_mscale(double s, double m)
{
    return s <= 1 ? 1.0 : 0.1 * m * log(s) + 1.0;
}

/* rot from partial_rotary_factor prf as transformers: int(head_dim * prf);
 * key = "FILE: [OBJ.]partial_rotary_factor". */
static int set_rot(gptq_model_config *c, double prf, const char *key)
{
    const double x = (double)c->head_dim * prf;
    if (!(prf > 0 && prf <= 1) || (int64_t)x < 2 || (int64_t)x % 2)
        return gptq_error(GPTQ_ERR_FORMAT,
                          "%s = %g must be in (0, 1] and give an even number (at least 2) of "
                          "rotary dims of head_dim %lld (it gives %g)",
                          key, prf, (long long)c->head_dim, x);
    c->rope.rot = (int64_t)x;
    return GPTQ_OK;
}

/* longrope's list `key` of o: rot / 2 positive numbers into out. */
static int get_factors(const cJSON *o, const char *key, int64_t rot, double *out,
                       const char *where)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!a || cJSON_IsNull(a))
        return gptq_error(GPTQ_ERR_FORMAT, "%s: \"%s\" is missing", where, key);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != rot / 2)
        return gptq_error(GPTQ_ERR_FORMAT,
                          "%s.%s must be a list of %lld numbers (rotary dims %lld / 2), not %s%d",
                          where, key, (long long)(rot / 2), (long long)rot,
                          cJSON_IsArray(a) ? "a list of " : "a non-list of size ",
                          cJSON_IsArray(a) ? cJSON_GetArraySize(a) : 0);
    int i = 0;
    for (const cJSON *v = a->child; v; v = v->next, i++) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) || !isfinite(v->valuedouble))
            return gptq_error(GPTQ_ERR_FORMAT, "%s.%s[%d] must be a positive number", where, key,
                              i);
        out[i] = v->valuedouble;
    }
    return GPTQ_OK;
}

static int parse_object(const cJSON *root, const cJSON *o, const char *obj, int v5,
                        const char *file, gptq_model_config *c, const gptq_rope_allow *allow);

/* No scaling, every dim of a head rotating. */
static void rope_reset(gptq_model_config *c)
{
    gptq_rope *r = &c->rope;
    memset(r, 0, sizeof *r);
    r->type = GPTQ_ROPE_DEFAULT;
    r->attention_factor = 1.0;
    r->rot = c->head_dim;
}

int gptq_rope_parse(const cJSON *root, const char *file, gptq_model_config *c,
                    const gptq_rope_allow *allow)
{
    rope_reset(c);
    char key[4300];
    if (allow && allow->partial) {
        /* transformers 4: partial_rotary_factor at the top level */
        double prf = 1.0;
        GPTQ_TRY(gptq_json_get_num(root, "partial_rotary_factor", &prf, 0, file));
        snprintf(key, sizeof key, "%s: partial_rotary_factor", file);
        GPTQ_TRY(set_rot(c, prf, key));
    }
    const cJSON *rs = NULL, *rp = NULL;
    GPTQ_TRY(gptq_json_get_object(root, "rope_scaling", &rs, 0, file));
    GPTQ_TRY(gptq_json_get_object(root, "rope_parameters", &rp, 0, file));
    if (rs && rp && !cJSON_Compare(rs, rp, 1))
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: both \"rope_scaling\" and \"rope_parameters\" are set and differ: "
                          "unsupported (keep one)",
                          file);
    const cJSON *o = rp ? rp : rs;
    if (!o) return GPTQ_OK;
    return parse_object(root, o, rp ? "rope_parameters" : "rope_scaling", rp != NULL, file, c,
                        allow);
}

int gptq_rope_parse_object(const cJSON *root, const cJSON *o, const char *obj, int v5,
                           const char *file, gptq_model_config *c)
{
    rope_reset(c);
    return o ? parse_object(root, o, obj, v5, file, c, NULL) : GPTQ_OK;
}

/* The RoPE object o, spelled obj in messages, into c->rope (reset by the
 * caller) and c->rope_theta. */
static int parse_object(const cJSON *root, const cJSON *o, const char *obj, int v5,
                        const char *file, gptq_model_config *c, const gptq_rope_allow *allow)
{
    gptq_rope *r = &c->rope;
    char key[4300];
    char where[4200];
    snprintf(where, sizeof where, "%s: %s", file, obj);

    /* the type: rope_type, or the older "type" */
    const char *type = NULL, *type_old = NULL;
    GPTQ_TRY(gptq_json_get_str(o, "rope_type", &type, 0, where));
    GPTQ_TRY(gptq_json_get_str(o, "type", &type_old, 0, where));
    if (type && type_old && strcmp(type, type_old) != 0)
        return gptq_error(GPTQ_ERR_FORMAT,
                          "%s.rope_type \"%s\" and %s.type \"%s\" disagree", where, type, obj,
                          type_old);
    if (!type) type = type_old;
    /* transformers 5 takes a missing type for "default"; transformers 4
     * fails on a rope_scaling that names none */
    const int longrope = allow && allow->longrope;
    const char *more = longrope ? ", longrope" : "";
    if (!type && !v5)
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: \"%s\" is set but names no rope_type: unsupported "
                          "(supported: default, linear, dynamic, llama3, yarn%s)",
                          file, obj, more);
    if (!type) type = "default";
    int t = -1;
    for (int i = 0; i < NTYPES; i++)
        if (!strcmp(type, k_type_names[i]) && (i != GPTQ_ROPE_LONGROPE || longrope)) t = i;
    if (t < 0)
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s.rope_type \"%s\" is not supported (supported: default, linear, "
                          "dynamic, llama3, yarn%s)",
                          where, type, more);
    r->type = (gptq_rope_type)t;

    /* a key the type does not read would be ignored silently: refused */
    for (const cJSON *k = o->child; k; k = k->next)
        if (!key_known(r->type, k->string))
            return gptq_error(GPTQ_ERR_UNSUPPORTED,
                              "%s.%s is not used by rope_type \"%s\": unsupported (refused "
                              "rather than ignored)",
                              where, k->string, type);
    /* transformers 5 keeps rope_theta here (it wins over the top level) */
    GPTQ_TRY(gptq_json_get_num(o, "rope_theta", &c->rope_theta, 0, where));
    double prf = 1.0;
    GPTQ_TRY(gptq_json_get_num(o, "partial_rotary_factor", &prf, 0, where));
    if (allow && allow->partial && present(o, "partial_rotary_factor")) {
        /* transformers 5 keeps it here (it wins over the top level) */
        snprintf(key, sizeof key, "%s.partial_rotary_factor", where);
        GPTQ_TRY(set_rot(c, prf, key));
    } else if (prf != 1.0) {
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s.partial_rotary_factor = %g: only 1 is supported", where, prf);
    }
    if (r->type == GPTQ_ROPE_DEFAULT) return GPTQ_OK;

    GPTQ_TRY(get_positive(o, "factor", &r->factor, r->type != GPTQ_ROPE_LONGROPE, where));
    if (r->type == GPTQ_ROPE_DYNAMIC && r->rot == 2)
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: rope_type \"dynamic\" with 2 rotary dims: its exponent d / (d - 2) "
                          "is undefined",
                          where);
    if (r->type != GPTQ_ROPE_LLAMA3 && r->type != GPTQ_ROPE_YARN && r->type != GPTQ_ROPE_LONGROPE)
        return GPTQ_OK;

    /* original_max_position_embeddings: in the object, else at the top
     * level, else the family's default (longrope: Phi3Config's 4096), else
     * max_position_embeddings (transformers 5's standardization) */
    static const char om_key[] = "original_max_position_embeddings";
    int64_t om_in = 0, om_top = 0;
    if (present(o, om_key)) GPTQ_TRY(gptq_config_get_size(o, om_key, &om_in, 1, where));
    if (present(root, om_key)) GPTQ_TRY(gptq_config_get_size(root, om_key, &om_top, 1, file));
    if (om_in && om_top && om_in != om_top)
        return gptq_error(GPTQ_ERR_FORMAT,
                          "%s: original_max_position_embeddings %lld at the top level and %lld in "
                          "\"%s\" disagree",
                          file, (long long)om_top, (long long)om_in, obj);
    r->original_max = om_in ? om_in : om_top ? om_top : c->max_positions;
    if (!om_in && !om_top && r->type == GPTQ_ROPE_LONGROPE && allow->original_default > 0)
        r->original_max = allow->original_default;

    if (r->type == GPTQ_ROPE_LONGROPE) {
        if (r->rot / 2 > GPTQ_ROPE_MAX_PAIRS)
            return gptq_error(GPTQ_ERR_UNSUPPORTED,
                              "%s: longrope with %lld rotary dims: at most %d are supported",
                              where, (long long)r->rot, 2 * GPTQ_ROPE_MAX_PAIRS);
        GPTQ_TRY(get_factors(o, "short_factor", r->rot, r->short_factor, where));
        GPTQ_TRY(get_factors(o, "long_factor", r->rot, r->long_factor, where));
        double af = 0;
        int st = gptq_json_get_num(o, "attention_factor", &af, 0, where);
        if (st < 0) return st;
        if (st == GPTQ_OK && !(af > 0))
            return gptq_error(GPTQ_ERR_FORMAT, "%s.attention_factor = %g must be positive",
                              where, af);
        /* the scale is max_position_embeddings / original, as transformers
         * takes it whenever the original length is known (in float64) */
        const double s = (double)c->max_positions / (double)r->original_max;
        if (st != GPTQ_OK)
            af = s <= 1 ? 1.0 : sqrt(1 + log(s) / log((double)r->original_max));
        r->attention_factor = af;
        return GPTQ_OK;
    }

    if (r->type == GPTQ_ROPE_LLAMA3) {
        GPTQ_TRY(get_positive(o, "low_freq_factor", &r->low_freq_factor, 1, where));
        GPTQ_TRY(get_positive(o, "high_freq_factor", &r->high_freq_factor, 1, where));
        if (!(r->high_freq_factor > r->low_freq_factor))
            return gptq_error(GPTQ_ERR_FORMAT,
                              "%s.high_freq_factor = %g must be greater than low_freq_factor = %g",
                              where, r->high_freq_factor, r->low_freq_factor);
        return GPTQ_OK;
    }

    /* yarn: the factor given is used, as transformers 5 does (4.x replaced
     * it by max_position_embeddings / original_max_position_embeddings
     * whenever the latter was in rope_scaling, which made Qwen2.5's
     * documented factor 4 with both lengths 32768 a factor 1).
     * beta_fast / beta_slow default 32 / 1 (the paper's; transformers
     * writes `or 32`, so 0 is the default too); truncate defaults to true */
    r->beta_fast = 32;
    r->beta_slow = 1;
    r->truncate = 1;
    double af = 0, ms = 0, msa = 0;
    GPTQ_TRY(gptq_json_get_num(o, "beta_fast", &r->beta_fast, 0, where));
    GPTQ_TRY(gptq_json_get_num(o, "beta_slow", &r->beta_slow, 0, where));
    if (r->beta_fast == 0) r->beta_fast = 32;
    if (r->beta_slow == 0) r->beta_slow = 1;
    if (r->beta_fast < 0 || r->beta_slow < 0)
        return gptq_error(GPTQ_ERR_FORMAT, "%s: beta_fast = %g and beta_slow = %g must be positive",
                          where, r->beta_fast, r->beta_slow);
    GPTQ_TRY(gptq_json_get_bool(o, "truncate", &r->truncate, 0, where));
    GPTQ_TRY(gptq_json_get_num(o, "mscale", &ms, 0, where));
    GPTQ_TRY(gptq_json_get_num(o, "mscale_all_dim", &msa, 0, where));
    int st = gptq_json_get_num(o, "attention_factor", &af, 0, where);
    if (st < 0) return st;
    if (st == GPTQ_OK && !(af > 0))
        return gptq_error(GPTQ_ERR_FORMAT, "%s.attention_factor = %g must be positive", where, af);
    if (st != GPTQ_OK)
        af = ms != 0 && msa != 0 ? yarn_mscale(r->factor, ms) / yarn_mscale(r->factor, msa)
                                 : yarn_mscale(r->factor, 1.0);
    r->attention_factor = af;
    return GPTQ_OK;
}

/* ------------------------------------------------------------------ */
/* the table                                                           */
/* ------------------------------------------------------------------ */

/* The unscaled inverse frequency of pair i with base theta, as
 * transformers: exponent f32(f32(2i) / d), pow in fp32 with the base
 * rounded to fp32, then reciprocal(.) * 1.0 (one rounding). */
static float inv_default(float theta, int64_t i, int64_t d)
{
    return 1.0f / powf(theta, (float)(2 * i) / (float)d);
}

/* yarn's correction range [lo, hi] over the pairs (float64, as
 * transformers' find_correction_range). */
static void yarn_range(const gptq_rope *r, double theta, double *lo, double *hi)
{
    const double d = (double)r->rot, om = (double)r->original_max;
    const double l2b = 2 * log(theta);
    double l = d * log(om / (r->beta_fast * 2 * M_PI)) / l2b;
    double h = d * log(om / (r->beta_slow * 2 * M_PI)) / l2b;
    if (r->truncate) {
        l = floor(l);
        h = ceil(h);
    }
    *lo = l > 0 ? l : 0;
    *hi = h < d - 1 ? h : d - 1;
    if (*lo == *hi) *hi += 0.001; /* transformers' guard against a zero-width ramp */
}

void gptq_rope_table(const gptq_model_config *c, int64_t S, float *tab)
{
    gptq_rope_table_of(&c->rope, c->rope_theta, c->max_positions, S, tab);
}

void gptq_rope_table_of(const gptq_rope *r, double rope_theta, int64_t max_positions, int64_t S,
                        float *tab)
{
    gptq_rope_rows_of(r, rope_theta, max_positions, S, 0, tab);
}

int gptq_rope_same_rows(const gptq_rope *r, int64_t max_positions, int64_t P0, int64_t P1)
{
    /* the frequencies depend on the table's length only through these two
     * tests of gptq_rope_rows_of (dynamic NTK's base, longrope's factors) */
    if (r->type == GPTQ_ROPE_DYNAMIC) return P0 == P1 || (P0 <= max_positions && P1 <= max_positions);
    if (r->type == GPTQ_ROPE_LONGROPE) return (P0 > r->original_max) == (P1 > r->original_max);
    return 1;
}

void gptq_rope_rows_of(const gptq_rope *r, double rope_theta, int64_t max_positions, int64_t S,
                       int64_t p0, float *tab)
{
    const int64_t d = r->rot, half = d / 2;
    float theta = (float)rope_theta;
    const float f = (float)r->factor;
    /* dynamic NTK: for a forward over S > max_position_embeddings tokens
     * (transformers' seq_len = max(position_ids) + 1 = S, a 0-dim int64
     * tensor, so every step is fp32) the base becomes
     * theta * (factor * S / max_pos - (factor - 1)) ^ (d / (d - 2));
     * for S <= max_pos it is the unscaled table. */
    if (r->type == GPTQ_ROPE_DYNAMIC && S > max_positions) {
        float s = f * (float)S;
        s = s / (float)max_positions;
        s = s - (float)(r->factor - 1.0);
        s = powf(s, (float)((double)d / (double)(d - 2)));
        theta = theta * s;
    }
    double lo = 0, hi = 0;
    if (r->type == GPTQ_ROPE_YARN) yarn_range(r, rope_theta, &lo, &hi);
    /* llama3's wavelength bounds: old_len / low and / high in float64,
     * compared with the fp32 wavelengths after rounding to fp32 */
    const int llama3 = r->type == GPTQ_ROPE_LLAMA3;
    const double old = (double)r->original_max;
    const float lo_wl = llama3 ? (float)(old / r->low_freq_factor) : 0;
    const float hi_wl = llama3 ? (float)(old / r->high_freq_factor) : 0;
    const float att = (float)r->attention_factor;
    const double *ext = S > r->original_max ? r->long_factor : r->short_factor;

    for (int64_t i = 0; i < half; i++) {
        const float inv0 = inv_default(theta, i, d);
        float inv = inv0;
        if (r->type == GPTQ_ROPE_LINEAR) {
            inv = inv0 / f;
        } else if (llama3) {
            /* wavelen = 2 pi / inv = reciprocal(inv) * f32(2 pi) */
            const float wl = (1.0f / inv0) * (float)(2 * M_PI);
            if (wl > lo_wl) inv = inv0 / f;
            if (!(wl < hi_wl) && !(wl > lo_wl)) {
                const float sm = ((1.0f / wl) * (float)old - (float)r->low_freq_factor) /
                                 (float)(r->high_freq_factor - r->low_freq_factor);
                inv = (1.0f - sm) * inv / f + sm * inv;
            }
        } else if (r->type == GPTQ_ROPE_YARN) {
            /* ramp over pair i, clamped to [0, 1]; extrapolation share 1 - ramp */
            float ramp = ((float)i - (float)lo) / (float)(hi - lo);
            ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
            const float ex = 1.0f - ramp;
            const float pos = powf(theta, (float)(2 * i) / (float)d);
            const float inv_ex = 1.0f / pos, inv_in = 1.0f / (f * pos);
            inv = inv_in * (1.0f - ex) + inv_ex * ex;
        } else if (r->type == GPTQ_ROPE_LONGROPE) {
            /* 1 / (ext * theta ^ (2i / rot)): the product in fp32, then reciprocal */
            inv = 1.0f / ((float)ext[i] * powf(theta, (float)(2 * i) / (float)d));
        }
        for (int64_t p = p0; p < S; p++) {
            const float ang = (float)p * inv;
            tab[(p - p0) * d + i] = (float)cos((double)ang) * att;
            tab[(p - p0) * d + half + i] = (float)sin((double)ang) * att;
        }
    }
}

int gptq_rope_upload(const gptq_layer_ctx *x, gptq_buf *pos_buf, gptq_buf *tab_buf)
{
    const int64_t T = x->T, S = x->S;
    int32_t *pos = gptq_malloc((size_t)T * sizeof(int32_t), "positions");
    if (!pos) return GPTQ_ERR_NOMEM;
    for (int64_t t = 0; t < T; t++) pos[t] = (int32_t)(x->pos0 + t % S);
    int st = gptq_be_upload(x->be, pos_buf, 0, pos, (size_t)T * sizeof(int32_t));
    free(pos);
    if (st) return st;
    return gptq_rope_upload_table(x, &x->c->rope, x->c->rope_theta, tab_buf);
}

int gptq_rope_upload_table(const gptq_layer_ctx *x, const gptq_rope *r, double theta,
                           gptq_buf *tab_buf)
{
    /* the table of P positions, as transformers makes it for a forward whose
     * largest position is P - 1 (dynamic NTK and longrope depend on P); the
     * rows the buffer holds from the last prepare's table stay when they
     * are this one's (a generation step adds one row) */
    const int64_t P = x->npos, rot = r->rot, have = x->prep_npos;
    int64_t from = 0;
    if (have > 0 && gptq_rope_same_rows(r, x->c->max_positions, have, P))
        from = have < P ? have : P;
    if (from == P) return GPTQ_OK;
    float *tab = gptq_malloc((size_t)((P - from) * rot) * sizeof(float), "rope table");
    if (!tab) return GPTQ_ERR_NOMEM;
    gptq_rope_rows_of(r, theta, x->c->max_positions, P, from, tab);
    int st = gptq_be_upload(x->be, tab_buf, (size_t)(from * rot) * sizeof(float), tab,
                            (size_t)((P - from) * rot) * sizeof(float));
    free(tab);
    return st;
}
