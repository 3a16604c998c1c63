/*
 * test_rope.c — RoPE scaling (issue 11): src/model/rope.c.
 *
 * - the [cos | sin] table of each type (default, linear, dynamic, llama3,
 *   yarn) against an independent float64 computation written here from
 *   the formulas (transformers' modeling_rope_utils documentation, the
 *   YaRN paper, Llama 3.1's frequency smoothing), within a tolerance that
 *   fp32 rounding explains (see tol() below); the default table's bytes
 *   against the expression the forward used before this file existed;
 * - config.json parsing in the transformers 4 (rope_scaling + rope_theta)
 *   and 5 (rope_parameters) spellings, the defaults, and the refusals;
 * - a tiny Llama-3-style model (data/tiny-llama with rope_scaling llama3):
 *   `gptq eval` gives a perplexity different from the unscaled model's, and
 *   `gptq quantize --method rtn` writes a checkpoint that keeps the scaling.
 *
 * GPTQ_ROPE_DUMP=DIR writes each table checked here as DIR/NAME.json (the
 * config) and DIR/NAME.f32 (the table) for tools/rope_oracle.py.
 */
#include "cli_harness.h" /* first: it defines _GNU_SOURCE */

#include <float.h>
#include <math.h>

#include "io/io.h"
#include "model/arch.h"
#include "model/model.h"
#include "synth_model.h"

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

#define LLAMA_BASE                                                                    \
    "\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 10, \"hidden_size\": 256," \
    " \"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"intermediate_size\": 8"

static void parse_ok(const char *json, gptq_model_config *c)
{
    int st = syn_parse(json, c);
    cr_assert_eq(st, GPTQ_OK, "%s: %s", json, gptq_last_error());
}

static void parse_fails(const char *json, int status, const char *needle)
{
    gptq_model_config c;
    int st = syn_parse(json, &c);
    cr_assert_eq(st, status, "status %d, want %d for %s; message: %s", st, status, json,
                 gptq_last_error());
    cr_assert(strstr(gptq_last_error(), needle), "message lacks \"%s\": %s", needle,
              gptq_last_error());
}

/* The table of config `json` for S positions, dumped for the oracle when
 * GPTQ_ROPE_DUMP is set (malloc'd). */
static float *table_of(const char *name, const char *json, int64_t S, gptq_model_config *c)
{
    parse_ok(json, c);
    float *tab = malloc((size_t)(S * c->head_dim) * sizeof(float));
    cr_assert(tab);
    gptq_rope_table(c, S, tab);
    const char *dump = getenv("GPTQ_ROPE_DUMP");
    if (dump) {
        char p[1024];
        snprintf(p, sizeof p, "%s/%s.json", dump, name);
        ch_writef(p, "{\"S\": %lld, \"config\": %s}\n", (long long)S, json);
        snprintf(p, sizeof p, "%s/%s.f32", dump, name);
        ch_write(p, tab, (size_t)(S * c->head_dim) * sizeof(float));
    }
    return tab;
}

/* ------------------------------------------------------------------ */
/* the float64 reference                                               */
/* ------------------------------------------------------------------ */

/* Inverse frequency of pair i, from the formulas in float64. */
static double ref_inv(const gptq_model_config *c, int64_t S, int64_t i)
{
    const gptq_rope *r = &c->rope;
    const double d = (double)c->head_dim, f = r->factor;
    double theta = c->rope_theta;
    /* dynamic NTK (transformers' _compute_dynamic_ntk_parameters, seq_len S) */
    if (r->type == GPTQ_ROPE_DYNAMIC && S > c->max_positions)
        theta *= pow(f * (double)S / (double)c->max_positions - (f - 1), d / (d - 2));
    const double inv = pow(theta, -2.0 * (double)i / d);
    switch (r->type) {
    case GPTQ_ROPE_LINEAR: return inv / f;
    case GPTQ_ROPE_LLAMA3: {
        /* Llama 3.1: wavelengths below L/high kept, above L/low divided by
         * the factor, between them a blend linear in L / wavelength */
        const double L = (double)r->original_max, wl = 2 * M_PI / inv;
        if (wl < L / r->high_freq_factor) return inv;
        if (wl > L / r->low_freq_factor) return inv / f;
        const double s = (L / wl - r->low_freq_factor) / (r->high_freq_factor - r->low_freq_factor);
        return (1 - s) * inv / f + s * inv;
    }
    case GPTQ_ROPE_YARN: {
        /* YaRN: the pair index where the original length L makes n full
         * turns is d ln(L / (2 pi n)) / (2 ln theta); between the pairs of
         * beta_fast and beta_slow turns (floor/ceil when truncating) a
         * linear ramp blends the interpolated (inv / factor) frequencies
         * into the extrapolated (unchanged) ones */
        const double L = (double)r->original_max, lt = 2 * log(c->rope_theta);
        double lo = d * log(L / (2 * M_PI * r->beta_fast)) / lt;
        double hi = d * log(L / (2 * M_PI * r->beta_slow)) / lt;
        if (r->truncate) lo = floor(lo), hi = ceil(hi);
        lo = fmax(lo, 0);
        hi = fmin(hi, d - 1);
        if (lo == hi) hi += 0.001;
        const double ramp = fmin(fmax(((double)i - lo) / (hi - lo), 0), 1);
        return inv / f * ramp + inv * (1 - ramp);
    }
    default: return inv;
    }
}

/* Tolerance on one table entry, |ours - ref|, for angle a (radians) and
 * attention factor m: inv_freq passes through at most ~8 fp32 roundings
 * (pow, reciprocals, the factor, llama3's smoothing, yarn's blend), each
 * 2^-24 relative, and the angle one more, so the fp32 angle is within
 * 16 eps * a of the exact one (cos and sin move by at most that much); the
 * fp32 cos/sin and the multiply by m add 2 eps. A wrong formula (a factor
 * not applied, a boundary off by a pair, a swapped blend) is off by 1e-3
 * and more at the positions used. */
static double tol(double a, double m)
{
    return m * (16 * FLT_EPSILON * fabs(a) + 2 * FLT_EPSILON);
}

static void check_table(const char *name, const char *json, int64_t S)
{
    gptq_model_config c;
    float *tab = table_of(name, json, S, &c);
    const int64_t d = c.head_dim, half = d / 2;
    const double m = c.rope.attention_factor;
    double worst = 0;
    for (int64_t i = 0; i < half; i++) {
        const double inv = ref_inv(&c, S, i);
        for (int64_t p = 0; p < S; p++) {
            const double a = (double)p * inv, t = tol(a, m);
            const double ec = fabs(tab[p * d + i] - m * cos(a));
            const double es = fabs(tab[p * d + half + i] - m * sin(a));
            cr_assert(ec <= t && es <= t,
                      "%s: position %lld pair %lld: cos %.9g vs %.9g, sin %.9g vs %.9g "
                      "(tolerance %.3g)",
                      name, (long long)p, (long long)i, tab[p * d + i], m * cos(a),
                      tab[p * d + half + i], m * sin(a), t);
            worst = fmax(worst, fmax(ec, es));
        }
    }
    cr_log_info("%s: largest difference from the float64 formulas %.3g", name, worst);
    free(tab);
}

/* ------------------------------------------------------------------ */
/* the tables                                                          */
/* ------------------------------------------------------------------ */

Test(rope_table, default_bytes_as_before)
{
    /* the expression the forward used before rope.c: these bytes are what
     * every existing model's logits were checked with */
    gptq_model_config c;
    const int64_t S = 300;
    float *tab = table_of("default", "{" LLAMA_BASE ", \"rope_theta\": 500000.0}", S, &c);
    const int64_t d = c.head_dim, half = d / 2;
    const float theta = (float)c.rope_theta;
    for (int64_t i = 0; i < half; i++) {
        const float inv = 1.0f / powf(theta, (float)(2 * i) / (float)d);
        for (int64_t p = 0; p < S; p++) {
            const float ang = (float)p * inv;
            const float co = (float)cos((double)ang), si = (float)sin((double)ang);
            cr_assert(!memcmp(&tab[p * d + i], &co, 4) && !memcmp(&tab[p * d + half + i], &si, 4),
                      "default table changed at position %lld pair %lld", (long long)p,
                      (long long)i);
        }
    }
    free(tab);
    check_table("default_ref", "{" LLAMA_BASE ", \"rope_theta\": 10000.0}", 512);
}

Test(rope_table, linear)
{
    check_table("linear", "{" LLAMA_BASE ", \"rope_scaling\": {\"type\": \"linear\", \"factor\": 3.0}}",
                512);
}

Test(rope_table, dynamic)
{
    /* S above max_position_embeddings: the base grows */
    const char *json = "{" LLAMA_BASE ", \"max_position_embeddings\": 128,"
                       " \"rope_scaling\": {\"rope_type\": \"dynamic\", \"factor\": 2.0}}";
    check_table("dynamic_long", json, 512);
    /* S within it: the unscaled table, byte for byte */
    gptq_model_config c, c0;
    float *t = table_of("dynamic_short", json, 128, &c);
    float *t0 = table_of("dynamic_short_default",
                         "{" LLAMA_BASE ", \"max_position_embeddings\": 128}", 128, &c0);
    cr_assert(!memcmp(t, t0, (size_t)(128 * c.head_dim) * sizeof(float)),
              "dynamic within max_position_embeddings must be the default table");
    free(t);
    free(t0);
    /* and the long one differs from the default at the last position */
    t = table_of("dynamic_long2", json, 512, &c);
    t0 = table_of("dynamic_long_default", "{" LLAMA_BASE ", \"max_position_embeddings\": 128}",
                  512, &c0);
    cr_assert(fabsf(t[511 * c.head_dim + 10] - t0[511 * c.head_dim + 10]) > 1e-3,
              "dynamic NTK did not change the table");
    free(t);
    free(t0);
}

Test(rope_table, llama3)
{
    /* head_dim 64, original length 64: pairs in all three bands
     * (wavelengths 6.3 .. 4.7e4 against 16 and 64) */
    check_table("llama3_small",
                "{" LLAMA_BASE ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0,"
                " \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0,"
                " \"original_max_position_embeddings\": 64}}",
                512);
    /* Llama 3.1 8B's own: head_dim 128, theta 5e5, 8192 */
    check_table("llama3_8b",
                "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 10,"
                " \"hidden_size\": 4096, \"num_hidden_layers\": 1, \"num_attention_heads\": 32,"
                " \"num_key_value_heads\": 8, \"intermediate_size\": 8,"
                " \"max_position_embeddings\": 131072, \"rope_theta\": 500000.0,"
                " \"rope_scaling\": {\"factor\": 8.0, \"low_freq_factor\": 1.0,"
                " \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192,"
                " \"rope_type\": \"llama3\"}}",
                600);
}

Test(rope_table, yarn)
{
    /* correction range pairs 0 .. 9 of 32: both sides and the ramp */
    check_table("yarn",
                "{" LLAMA_BASE ", \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0,"
                " \"original_max_position_embeddings\": 64}}",
                512);
    check_table("yarn_untruncated_mscale",
                "{" LLAMA_BASE ", \"rope_parameters\": {\"rope_type\": \"yarn\", \"factor\": 4.0,"
                " \"rope_theta\": 10000.0, \"original_max_position_embeddings\": 64,"
                " \"truncate\": false, \"beta_fast\": 16, \"beta_slow\": 2, \"mscale\": 1.0,"
                " \"mscale_all_dim\": 0.5}}",
                512);
    check_table("yarn_attention_factor",
                "{" LLAMA_BASE ", \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 16.0,"
                " \"attention_factor\": 0.75}}",
                512);
}

/* ------------------------------------------------------------------ */
/* config.json                                                         */
/* ------------------------------------------------------------------ */

Test(rope_config, llama31_both_spellings)
{
    gptq_model_config a, b;
    parse_ok("{" LLAMA_BASE ", \"rope_theta\": 500000.0, \"rope_scaling\": {\"factor\": 8.0,"
             " \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0,"
             " \"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"}}",
             &a);
    parse_ok("{" LLAMA_BASE ", \"rope_parameters\": {\"factor\": 8.0, \"low_freq_factor\": 1.0,"
             " \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192,"
             " \"rope_theta\": 500000.0, \"rope_type\": \"llama3\"}}",
             &b);
    for (const gptq_model_config *c = &a; c; c = c == &a ? &b : NULL) {
        cr_expect_eq(c->rope.type, GPTQ_ROPE_LLAMA3);
        cr_expect_eq(c->rope_theta, 500000.0);
        cr_expect_eq(c->rope.factor, 8.0);
        cr_expect_eq(c->rope.low_freq_factor, 1.0);
        cr_expect_eq(c->rope.high_freq_factor, 4.0);
        cr_expect_eq(c->rope.original_max, 8192);
        cr_expect_eq(c->rope.attention_factor, 1.0);
    }
}

Test(rope_config, defaults)
{
    gptq_model_config c;
    /* no scaling; null; transformers 5 without a type */
    parse_ok("{" LLAMA_BASE "}", &c);
    cr_expect_eq(c.rope.type, GPTQ_ROPE_DEFAULT);
    cr_expect_eq(c.rope.attention_factor, 1.0);
    parse_ok("{" LLAMA_BASE ", \"rope_scaling\": null}", &c);
    cr_expect_eq(c.rope.type, GPTQ_ROPE_DEFAULT);
    parse_ok("{" LLAMA_BASE ", \"rope_parameters\": {\"rope_theta\": 1e6}}", &c);
    cr_expect_eq(c.rope.type, GPTQ_ROPE_DEFAULT);
    cr_expect_eq(c.rope_theta, 1e6);
    /* the older "type" key */
    parse_ok("{" LLAMA_BASE ", \"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 2}}", &c);
    cr_expect_eq(c.rope.type, GPTQ_ROPE_DYNAMIC);
    cr_expect_eq(c.rope.factor, 2.0);
    /* yarn: beta 32 / 1, truncate, attention 0.1 ln(factor) + 1, the
     * original length from max_position_embeddings, or the top level */
    parse_ok("{" LLAMA_BASE ", \"max_position_embeddings\": 4096,"
             " \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0, \"beta_fast\": 0}}",
             &c);
    cr_expect_eq(c.rope.beta_fast, 32.0);
    cr_expect_eq(c.rope.beta_slow, 1.0);
    cr_expect_eq(c.rope.truncate, 1);
    cr_expect_eq(c.rope.original_max, 4096);
    cr_expect_float_eq(c.rope.attention_factor, 0.1 * log(4.0) + 1, 1e-15);
    parse_ok("{" LLAMA_BASE ", \"original_max_position_embeddings\": 1024,"
             " \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0, \"mscale\": 1.0,"
             " \"mscale_all_dim\": 0.5}}",
             &c);
    cr_expect_eq(c.rope.original_max, 1024);
    cr_expect_float_eq(c.rope.attention_factor, (0.1 * log(4.0) + 1) / (0.05 * log(4.0) + 1),
                       1e-15);
    /* a factor of 1 or below: no attention factor (transformers' get_mscale) */
    parse_ok("{" LLAMA_BASE ", \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 0.5}}", &c);
    cr_expect_eq(c.rope.attention_factor, 1.0);
}

Test(rope_config, refusals_name_key_and_value)
{
    const int U = GPTQ_ERR_UNSUPPORTED, F = GPTQ_ERR_FORMAT;
    parse_fails("{" LLAMA_BASE ", \"rope_scaling\": {\"rope_type\": \"longrope\", \"factor\": 4,"
                " \"short_factor\": [1], \"long_factor\": [1]}}",
                U, "rope_scaling.rope_type \"longrope\" is not supported");
    parse_fails("{" LLAMA_BASE ", \"rope_parameters\": {\"rope_type\": \"ntk\"}}", U,
                "rope_parameters.rope_type \"ntk\" is not supported");
    parse_fails("{" LLAMA_BASE ", \"rope_scaling\": {\"factor\": 8.0}}", U,
                "\"rope_scaling\" is set but names no rope_type");
    parse_fails("{" LLAMA_BASE ", \"rope_scaling\": {\"rope_type\": \"linear\", \"type\": \"dynamic\","
                " \"factor\": 2}}",
                F, "rope_scaling.rope_type \"linear\" and rope_scaling.type \"dynamic\" disagree");
    parse_fails("{" LLAMA_BASE ", \"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 2,"
                " \"low_freq_factor\": 1}}",
                U, "rope_scaling.low_freq_factor is not used by rope_type \"linear\"");
    parse_fails("{" LLAMA_BASE ", \"rope_scaling\": {\"rope_type\": \"linear\"}}", F,
                "rope_scaling: \"factor\" is missing");
    parse_fails("{" LLAMA_BASE ", \"rope_scaling\": {\"rope_type\": \"dynamic\", \"factor\": 0}}", F,
                "rope_scaling.factor = 0 must be positive");
    parse_fails("{" LLAMA_BASE ", \"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": \"2\"}}",
                F, "rope_scaling: \"factor\" must be a number");
    parse_fails("{" LLAMA_BASE ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8,"
                " \"low_freq_factor\": 4, \"high_freq_factor\": 4,"
                " \"original_max_position_embeddings\": 8192}}",
                F, "rope_scaling.high_freq_factor = 4 must be greater than low_freq_factor = 4");
    parse_fails("{" LLAMA_BASE ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8,"
                " \"high_freq_factor\": 4, \"original_max_position_embeddings\": 8192}}",
                F, "rope_scaling: \"low_freq_factor\" is missing");
    parse_fails("{" LLAMA_BASE ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8,"
                " \"low_freq_factor\": 1, \"high_freq_factor\": 4,"
                " \"original_max_position_embeddings\": 0}}",
                F, "\"original_max_position_embeddings\" = 0 is out of range");
    parse_fails("{" LLAMA_BASE ", \"original_max_position_embeddings\": 4096, \"rope_scaling\":"
                " {\"rope_type\": \"yarn\", \"factor\": 4, \"original_max_position_embeddings\": 8192}}",
                F, "original_max_position_embeddings 4096 at the top level and 8192");
    parse_fails("{" LLAMA_BASE ", \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4,"
                " \"beta_slow\": -1}}",
                F, "beta_slow = -1");
    parse_fails("{" LLAMA_BASE ", \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4,"
                " \"attention_factor\": 0}}",
                F, "rope_scaling.attention_factor = 0 must be positive");
    parse_fails("{" LLAMA_BASE ", \"rope_parameters\": {\"rope_type\": \"default\","
                " \"partial_rotary_factor\": 0.5}}",
                U, "rope_parameters.partial_rotary_factor = 0.5");
    parse_fails("{" LLAMA_BASE ", \"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 2},"
                " \"rope_parameters\": {\"rope_type\": \"linear\", \"factor\": 4}}",
                U, "both \"rope_scaling\" and \"rope_parameters\" are set and differ");
}

/* ------------------------------------------------------------------ */
/* a tiny Llama-3-style model through the CLI                          */
/* ------------------------------------------------------------------ */

static double ppl_of(const char *dir)
{
    char text[1024];
    snprintf(text, sizeof text, "%s/data/text/eval.txt", ch_source_root());
    cli_result r;
    ch_run(&r, 120, "eval", dir, "--text", text, "--max-windows", "4", NULL);
    ch_expect(&r, 0, "");
    double ppl = 0;
    cr_assert(sscanf(r.out, "ppl %lf", &ppl) == 1, "no ppl in: %s", r.out);
    cr_assert(isfinite(ppl) && ppl > 1, "ppl %g", ppl);
    ch_result_free(&r);
    return ppl;
}

Test(rope_cli, tiny_llama3_eval_and_rtn, .timeout = 300)
{
    char tmp[512], m[1024], q[1024], plain[1024];
    ch_mkdtemp(tmp, "rope");
    ch_join(m, tmp, "m");
    ch_join(q, tmp, "q");
    snprintf(plain, sizeof plain, "%s/data/tiny-llama", ch_source_root());
    /* original length 64 of the 256 positions eval uses: pairs with a
     * wavelength above 64 are divided by 8, between 16 and 64 blended */
    ch_sh("cp -r '%s' '%s' && python3 -c \"import json, sys; p = sys.argv[1]; c = json.load(open(p)); "
          "c['rope_scaling'] = {'rope_type': 'llama3', 'factor': 8.0, 'low_freq_factor': 1.0, "
          "'high_freq_factor': 4.0, 'original_max_position_embeddings': 64}; "
          "json.dump(c, open(p, 'w'), indent=2)\" '%s/config.json'",
          plain, m, m);
    const double p0 = ppl_of(plain), p1 = ppl_of(m);
    cr_log_info("tiny-llama ppl: unscaled %.6f, llama3 factor 8 %.6f", p0, p1);
    /* the same weights under other angles: the perplexity moves (by 21% on
     * this model); a scaling silently ignored would give p0 to the digit */
    cr_assert(fabs(p1 - p0) > 1e-3 * p0, "llama3 scaling left the perplexity at %g", p1);

    cli_result r;
    ch_run(&r, 120, "quantize", m, "-o", q, "--method", "rtn", "--quiet", NULL);
    ch_expect(&r, 0, "");
    ch_result_free(&r);
    char cfg[1200];
    gptq_model_config c;
    cr_assert_eq(gptq_model_config_load(ch_join(cfg, tmp, "q"), &c), GPTQ_OK, "%s",
                 gptq_last_error());
    cr_expect_eq(c.rope.type, GPTQ_ROPE_LLAMA3, "the checkpoint lost its rope_scaling");
    cr_expect_eq(c.rope.original_max, 64);
    const double pq = ppl_of(q);
    /* 4-bit RTN of the scaled model stays near it (within 10%) */
    cr_assert(fabs(pq - p1) < 0.1 * p1, "rtn checkpoint ppl %g vs %g", pq, p1);
    ch_rm_tree(tmp);
}
