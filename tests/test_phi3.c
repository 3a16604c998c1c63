/*
 * test_phi3.c — Phi3ForCausalLM (Phi-3, Phi-3.5 mini, Phi-4-mini), issue
 * 11: the config in its transformers 4 and 5 spellings with Phi3Config's
 * defaults, longrope and partial_rotary_factor, and their refusals by key;
 * the longrope table (short factors up to original_max_position_embeddings
 * tokens, long beyond); the forward of the synthetic Phi-3 of synth_model.h
 * (fused qkv_proj / gate_up_proj, 8 of 16 dims rotating, longrope) against
 * a plain-C re-implementation in double written from the architecture
 * (sharing no code with src/model); and `gptq quantize` (RTN, GPTQ) writing
 * the fused linears packed, read back by `gptq eval`.
 */
#include "cli_checks.h" /* first: it sets _GNU_SOURCE */

#include "io/io.h"
#include "model/arch.h"
#include "model/model.h"
#include "synth_model.h"

/* ------------------------------------------------------------------ */
/* config                                                              */
/* ------------------------------------------------------------------ */

/* A JSON list of n numbers: 1 + i / 8 (short) or 4 + i (long). */
static char *factors(char *buf, int n, int lng)
{
    size_t k = 0;
    buf[k++] = '[';
    for (int i = 0; i < n; i++)
        k += (size_t)sprintf(buf + k, "%s%g", i ? ", " : "", lng ? 4.0 + i : 1.0 + i / 8.0);
    buf[k++] = ']';
    buf[k] = 0;
    return buf;
}

/* Phi-4-mini's shape: 24 heads of 128 (3072 / 24), 8 KV heads, 96 rotary
 * dims (0.75), longrope with 48 factors, original 4096 of 131072 */
#define PHI4_MINI_KEYS                                                                          \
    "\"architectures\": [\"Phi3ForCausalLM\"], \"hidden_act\": \"silu\", \"hidden_size\": 3072," \
    " \"intermediate_size\": 8192, \"max_position_embeddings\": 131072, \"model_type\": "       \
    "\"phi3\", \"num_attention_heads\": 24, \"num_hidden_layers\": 32,"                          \
    " \"num_key_value_heads\": 8, \"rms_norm_eps\": 1e-05, \"sliding_window\": 262144,"         \
    " \"tie_word_embeddings\": true, \"vocab_size\": 200064"

static void expect_phi4_mini(const gptq_model_config *c)
{
    cr_expect_eq(c->arch, &gptq_arch_phi3);
    cr_expect_eq(c->head_dim, 128);
    cr_expect_eq(c->num_kv_heads, 8);
    cr_expect_eq(c->intermediate_size, 8192);
    cr_expect_eq(c->rope.rot, 96, "128 * 0.75");
    cr_expect_eq(c->rope.type, GPTQ_ROPE_LONGROPE);
    cr_expect_eq(c->rope.original_max, 4096);
    cr_expect_eq(c->rope_theta, 10000.0);
    /* transformers: sqrt(1 + ln(131072 / 4096) / ln(4096)), in float64 */
    cr_expect_float_eq(c->rope.attention_factor, sqrt(1 + log(32.0) / log(4096.0)), 1e-15);
    cr_expect_eq(c->rope.short_factor[47], 1.0 + 47 / 8.0);
    cr_expect_eq(c->rope.long_factor[0], 4.0);
    cr_expect_eq(c->tie_word_embeddings, 1);
    cr_expect_eq(c->qkv_bias + c->o_bias + c->mlp_bias, 0, "Phi-3 has no biases");
    cr_expect_eq(c->sliding_window, 262144);
}

Test(config, phi3_transformers4_spelling)
{
    char s[1024], l[1024], json[4096];
    snprintf(json, sizeof json,
             "{" PHI4_MINI_KEYS ", \"original_max_position_embeddings\": 4096,"
             " \"partial_rotary_factor\": 0.75, \"rope_theta\": 10000.0, \"torch_dtype\": "
             "\"bfloat16\", \"rope_scaling\": {\"type\": \"longrope\", \"short_factor\": %s,"
             " \"long_factor\": %s}}",
             factors(s, 48, 0), factors(l, 48, 1));
    gptq_model_config c;
    cr_assert_eq(syn_parse(json, &c), GPTQ_OK, "%s", gptq_last_error());
    expect_phi4_mini(&c);
}

Test(config, phi3_transformers5_spelling)
{
    char s[1024], l[1024], json[4096];
    snprintf(json, sizeof json,
             "{" PHI4_MINI_KEYS ", \"dtype\": \"bfloat16\", \"rope_parameters\": {\"rope_type\": "
             "\"longrope\", \"rope_theta\": 10000.0, \"partial_rotary_factor\": 0.75,"
             " \"original_max_position_embeddings\": 4096, \"short_factor\": %s,"
             " \"long_factor\": %s}}",
             factors(s, 48, 0), factors(l, 48, 1));
    gptq_model_config c;
    cr_assert_eq(syn_parse(json, &c), GPTQ_OK, "%s", gptq_last_error());
    expect_phi4_mini(&c);
}

Test(config, phi3_defaults)
{
    /* Phi-3-mini-4k's keys: no rope_scaling, no kv heads (= heads), head
     * 3072 / 32 = 96 rotating whole; Phi3Config's defaults for the rest */
    gptq_model_config c;
    cr_assert_eq(syn_parse("{\"model_type\": \"phi3\", \"hidden_size\": 3072,"
                           " \"intermediate_size\": 8192, \"num_hidden_layers\": 32,"
                           " \"num_attention_heads\": 32, \"vocab_size\": 32064,"
                           " \"sliding_window\": 2047}",
                           &c),
                 GPTQ_OK, "%s", gptq_last_error());
    cr_expect_eq(c.arch, &gptq_arch_phi3);
    cr_expect_eq(c.num_kv_heads, 32);
    cr_expect_eq(c.head_dim, 96);
    cr_expect_eq(c.rope.rot, 96);
    cr_expect_eq(c.rope.type, GPTQ_ROPE_DEFAULT);
    cr_expect_eq(c.norm_eps, 1e-5);
    cr_expect_eq(c.max_positions, 4096);
    cr_expect_eq(c.tie_word_embeddings, 0);
    cr_expect_eq(c.sliding_window, 2047);
    /* longrope without original_max_position_embeddings: Phi3Config's 4096 */
    char s[512], l[512], json[2048];
    snprintf(json, sizeof json,
             "{\"model_type\": \"phi3\", \"hidden_size\": 64, \"intermediate_size\": 64,"
             " \"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"vocab_size\": 10,"
             " \"max_position_embeddings\": 16384, \"rope_scaling\": {\"type\": \"longrope\","
             " \"short_factor\": %s, \"long_factor\": %s}}",
             factors(s, 8, 0), factors(l, 8, 1));
    cr_assert_eq(syn_parse(json, &c), GPTQ_OK, "%s", gptq_last_error());
    cr_expect_eq(c.rope.original_max, 4096);
    cr_expect_float_eq(c.rope.attention_factor, sqrt(1 + log(4.0) / log(4096.0)), 1e-15);
}

/* json with short / long lists of ns / nl numbers, and the extra keys */
static void phi3_fails(int ns, int nl, const char *extra, int status, const char *needle)
{
    char s[1024], l[1024], json[4096];
    snprintf(json, sizeof json,
             "{" PHI4_MINI_KEYS "%s, \"rope_scaling\": {\"type\": \"longrope\", \"short_factor\": "
             "%s, \"long_factor\": %s}}",
             extra, factors(s, ns, 0), factors(l, nl, 1));
    gptq_model_config c;
    cr_expect_eq(syn_parse(json, &c), status, "%s: %s", needle, gptq_last_error());
    cr_expect(strstr(gptq_last_error(), needle), "want \"%s\" in: %s", needle,
              gptq_last_error());
}

Test(config, phi3_refusals_name_key_and_value)
{
    const int F = GPTQ_ERR_FORMAT;
    /* 96 rotary dims need 48 factors per list */
    phi3_fails(47, 48, ", \"partial_rotary_factor\": 0.75", F,
               "config.json: rope_scaling.short_factor must be a list of 48 numbers (rotary dims "
               "96 / 2), not a list of 47");
    phi3_fails(48, 64, ", \"partial_rotary_factor\": 0.75", F,
               "rope_scaling.long_factor must be a list of 48 numbers");
    /* without a partial factor all 128 dims rotate: 48 are too few */
    phi3_fails(48, 48, "", F, "rope_scaling.short_factor must be a list of 64 numbers");
    /* 128 * 0.7 = 89.6 -> 89 dims: odd; 1.5 and 0: out of (0, 1] */
    phi3_fails(48, 48, ", \"partial_rotary_factor\": 0.7", F,
               "config.json: partial_rotary_factor = 0.7 must be in (0, 1] and give an even "
               "number (at least 2) of rotary dims of head_dim 128 (it gives 89.6)");
    phi3_fails(48, 48, ", \"partial_rotary_factor\": 1.5", F, "partial_rotary_factor = 1.5");
    phi3_fails(48, 48, ", \"partial_rotary_factor\": 0", F, "partial_rotary_factor = 0 ");
    gptq_model_config c;
    /* a factor that is not a positive number, named by index */
    cr_expect_eq(syn_parse("{\"model_type\": \"phi3\", \"hidden_size\": 64, \"intermediate_size\":"
                           " 64, \"num_hidden_layers\": 1, \"num_attention_heads\": 4,"
                           " \"vocab_size\": 10, \"partial_rotary_factor\": 0.25, \"rope_scaling\":"
                           " {\"type\": \"longrope\", \"short_factor\": [1, 0],"
                           " \"long_factor\": [1, 2]}}",
                           &c),
                 F);
    cr_expect(strstr(gptq_last_error(), "rope_scaling.short_factor[1] must be a positive number"),
              "%s", gptq_last_error());
    /* Llama still refuses longrope and partial rotary */
    cr_expect_eq(syn_parse("{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\":"
                           " 64, \"num_hidden_layers\": 1, \"num_attention_heads\": 4,"
                           " \"vocab_size\": 10, \"rope_scaling\": {\"type\": \"longrope\","
                           " \"short_factor\": [1, 1, 1, 1, 1, 1, 1, 1], \"long_factor\": [1, 1,"
                           " 1, 1, 1, 1, 1, 1]}}",
                           &c),
                 GPTQ_ERR_UNSUPPORTED);
    cr_expect(strstr(gptq_last_error(), "rope_type \"longrope\" is not supported"), "%s",
              gptq_last_error());
    /* a key longrope does not read */
    cr_expect_eq(syn_parse("{\"model_type\": \"phi3\", \"hidden_size\": 64, \"intermediate_size\":"
                           " 64, \"num_hidden_layers\": 1, \"num_attention_heads\": 4,"
                           " \"vocab_size\": 10, \"rope_scaling\": {\"type\": \"longrope\","
                           " \"beta_fast\": 32, \"short_factor\": [1, 1, 1, 1, 1, 1, 1, 1],"
                           " \"long_factor\": [1, 1, 1, 1, 1, 1, 1, 1]}}",
                           &c),
                 GPTQ_ERR_UNSUPPORTED);
    cr_expect(strstr(gptq_last_error(), "rope_scaling.beta_fast is not used by rope_type "
                                        "\"longrope\""),
              "%s", gptq_last_error());
}

/* ------------------------------------------------------------------ */
/* the longrope table                                                  */
/* ------------------------------------------------------------------ */

/* The synthetic Phi-3's rope: rot 8, theta 1e4, original 64 of 256 */
static const double k_short[4] = {1.0, 1.25, 2.0, 3.5}, k_long[4] = {1.5, 3.0, 6.0, 12.0};

static void syn_config(gptq_model_config *c)
{
    cr_assert_eq(syn_parse(k_syn_phi3_config, c), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(c->rope.rot, 8);
    cr_assert_eq(c->rope.original_max, 64);
}

Test(rope_table, longrope_short_then_long)
{
    gptq_model_config c;
    syn_config(&c);
    const double att = sqrt(1 + log(4.0) / log(64.0));
    /* S = 64: the short factors; S = 65: the long ones, for every position */
    for (int64_t S = 64; S <= 65; S++) {
        float *tab = malloc((size_t)S * 8 * sizeof(float));
        cr_assert(tab);
        gptq_rope_table(&c, S, tab);
        double worst = 0;
        for (int64_t p = 0; p < S; p++)
            for (int i = 0; i < 4; i++) {
                const double f = S > 64 ? k_long[i] : k_short[i];
                const double a = (double)p / (f * pow(10000.0, 2.0 * i / 8.0));
                worst = fmax(worst, fabs(tab[p * 8 + i] - cos(a) * att));
                worst = fmax(worst, fabs(tab[p * 8 + 4 + i] - sin(a) * att));
            }
        /* fp32 angles (p * inv_freq rounded, as transformers): an angle of
         * up to 64 rad carries an error of ~4e-6; bound 2e-5 (the other
         * list moves values by > 0.1) */
        cr_expect_leq(worst, 2e-5, "S %lld: max |diff| %g", (long long)S, worst);
        free(tab);
    }
}

/* ------------------------------------------------------------------ */
/* the forward against a plain-C reference                             */
/* ------------------------------------------------------------------ */

enum { RD = SYN_D, RF = SYN_F, RV = SYN_PHI3_V, RH = 4, RHK = 2, RHD = 16, RROT = 8,
       RL = SYN_LAYERS, RORIG = 64 };
#define R_EPS 1e-5
#define R_THETA 10000.0

/* The reference as Phi-3, or a wrong variant the test must tell apart. */
enum { V_PHI3, V_OTHER_FACTORS, V_NO_ATT_FACTOR, V_LAST_DIMS_ROTATE, V_UP_GATE, NVARIANTS };

typedef struct {
    float *E, *fn;
    float *in[RL], *post[RL];
    float *W[RL][4]; /* qkv, o, gate_up, down: (out, in) */
} ref_weights;

static void ref_load(const char *dir, ref_weights *rw)
{
    gptq_weights *w = NULL;
    cr_assert_eq(gptq_weights_open(dir, &w), GPTQ_OK, "%s", gptq_last_error());
    static const char *lin[4] = {"self_attn.qkv_proj.weight", "self_attn.o_proj.weight",
                                 "mlp.gate_up_proj.weight", "mlp.down_proj.weight"};
    const int64_t rc[4][2] = {{(RH + 2 * RHK) * RHD, RD}, {RD, RH * RHD}, {2 * RF, RD}, {RD, RF}};
    rw->E = syn_read_f32(w, "model.embed_tokens.weight", RV, RD);
    rw->fn = syn_read_f32(w, "model.norm.weight", RD, 0);
    for (int L = 0; L < RL; L++) {
        rw->in[L] = syn_read_layer_f32(w, L, "input_layernorm.weight", RD, 0);
        rw->post[L] = syn_read_layer_f32(w, L, "post_attention_layernorm.weight", RD, 0);
        for (int i = 0; i < 4; i++)
            rw->W[L][i] = syn_read_layer_f32(w, L, lin[i], rc[i][0], rc[i][1]);
    }
    gptq_weights_close(w);
}

static void ref_free(ref_weights *rw)
{
    free(rw->E);
    free(rw->fn);
    for (int L = 0; L < RL; L++) {
        free(rw->in[L]);
        free(rw->post[L]);
        for (int i = 0; i < 4; i++) free(rw->W[L][i]);
    }
}

/* longrope on the first RROT dims of one head (x, RHD) at position p of a
 * forward over S tokens: rotate_half within those dims, the rest kept */
static void ref_rope(double *x, int p, int S, int variant)
{
    int lng = S > RORIG;
    if (variant == V_OTHER_FACTORS) lng = !lng;
    const double att =
        variant == V_NO_ATT_FACTOR ? 1.0 : sqrt(1 + log(256.0 / RORIG) / log(RORIG));
    double *r = variant == V_LAST_DIMS_ROTATE ? x + RHD - RROT : x;
    for (int i = 0; i < RROT / 2; i++) {
        const double f = lng ? k_long[i] : k_short[i];
        const double a = p / (f * pow(R_THETA, 2.0 * i / RROT));
        const double c = cos(a) * att, s = sin(a) * att;
        const double x0 = r[i], x1 = r[i + RROT / 2];
        r[i] = x0 * c - x1 * s;
        r[i + RROT / 2] = x1 * c + x0 * s;
    }
}

/* logits (nseq * S, V) of ids (nseq, S), each sequence on its own */
static void ref_forward(const ref_weights *w, const int32_t *ids, int nseq, int S, int variant,
                        double *logits)
{
    enum { QW = RH * RHD, KW = RHK * RHD, QKV = QW + 2 * KW };
    const int T = nseq * S;
    double *x = calloc((size_t)T * RD, sizeof *x), *qkv = calloc((size_t)T * QKV, sizeof *qkv),
           *sc = calloc((size_t)S, sizeof *sc);
    double n[RD], att[QW], o[RD], gu[2 * RF], h[RF];
    cr_assert(x && qkv && sc);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < RD; i++) x[t * RD + i] = w->E[ids[t] * RD + i];
    for (int L = 0; L < RL; L++) {
        for (int t = 0; t < T; t++) {
            syn_ref_rms(x + t * RD, w->in[L], RD, R_EPS, n);
            syn_ref_lin(w->W[L][0], n, QKV, RD, qkv + t * QKV);
            /* rows [q | k | v]: rope on the H query and Hk key heads */
            for (int hh = 0; hh < RH + RHK; hh++)
                ref_rope(qkv + t * QKV + hh * RHD, t % S, S, variant);
        }
        for (int t = 0; t < T; t++) {
            const int t0 = t - t % S;
            for (int hq = 0; hq < RH; hq++) {
                const int kh = hq / (RH / RHK);
                syn_ref_attend(qkv + t * QKV + hq * RHD, qkv + QW + kh * RHD,
                               qkv + QW + KW + kh * RHD, QKV, t0, t, RHD, sc, att + hq * RHD);
            }
            double *xt = x + t * RD;
            syn_ref_lin(w->W[L][1], att, RD, QW, o);
            for (int i = 0; i < RD; i++) xt[i] += o[i];
            syn_ref_rms(xt, w->post[L], RD, R_EPS, n);
            syn_ref_lin(w->W[L][2], n, 2 * RF, RD, gu);
            /* gate first, then up: silu(gate) * up */
            const double *g = gu + (variant == V_UP_GATE ? RF : 0);
            const double *u = gu + (variant == V_UP_GATE ? 0 : RF);
            for (int i = 0; i < RF; i++) h[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
            syn_ref_lin(w->W[L][3], h, RD, RF, o);
            for (int i = 0; i < RD; i++) xt[i] += o[i];
        }
    }
    for (int t = 0; t < T; t++) { /* final norm, tied lm_head */
        syn_ref_rms(x + t * RD, w->fn, RD, R_EPS, n);
        syn_ref_lin(w->E, n, RV, RD, logits + (size_t)t * RV);
    }
    free(x);
    free(qkv);
    free(sc);
}

/* Ours (f32, the CPU backend) against the reference (double): f32
 * rounding through 2 layers of width <= 256, most of it the fp32 RoPE
 * angles (transformers rounds them the same way; ~4e-6 rad at 70 rad):
 * measured max |diff| 3.6e-6 (S 13) and 8.2e-6 (S 70) on logits of a few
 * units; bound 5e-5 (~6x). Each wrong variant moves logits by 1.9 .. 5.6
 * (measured), so the bound sees the factor list chosen, the attention
 * factor, which dims rotate and the gate/up order. */
#define PHI3_LOGIT_TOL 5e-5

static void forward_case(int nseq, int S)
{
    char root[256], model[300];
    cr_assert_eq(syn_model_dir(root, model, NULL, SYN_PHI3, NULL), GPTQ_OK, "%s",
                 gptq_last_error());
    int32_t *ids = malloc((size_t)(nseq * S) * sizeof *ids);
    cr_assert(ids);
    uint32_t seed = 71u;
    for (int i = 0; i < nseq * S; i++) ids[i] = (int32_t)(syn_lcg(&seed) % RV);
    const size_t n = (size_t)nseq * S * RV;
    float *ours = syn_logits(model, &gptq_arch_phi3, ids, nseq, S, NULL);
    double *ref = malloc(n * sizeof(double));
    cr_assert(ref);
    ref_weights w;
    ref_load(model, &w);
    ref_forward(&w, ids, nseq, S, V_PHI3, ref);
    const double d = syn_max_abs_diff(ours, ref, n);
    cr_log_info("phi3 S %d: max |diff| vs the reference %.3g", S, d);
    cr_expect_leq(d, PHI3_LOGIT_TOL, "S %d: max |diff| %.3g", S, d);
    static const char *what[] = {"", "with the other factor list", "without the attention factor",
                                 "rotating the last dims", "with up and gate swapped"};
    for (int v = V_OTHER_FACTORS; v < NVARIANTS; v++) {
        ref_forward(&w, ids, nseq, S, v, ref);
        const double dv = syn_max_abs_diff(ours, ref, n);
        cr_log_info("phi3 S %d: the reference %s differs by %.3g", S, what[v], dv);
        cr_expect_gt(dv, 100 * PHI3_LOGIT_TOL, "S %d: the reference %s is as close (%.3g)", S,
                     what[v], dv);
    }
    ref_free(&w);
    free(ids);
    free(ours);
    free(ref);
    ch_rm_tree(root);
}

/* 2 sequences of 13 (short factors) and 1 of 70 > original 64 (long) */
Test(forward, phi3_short_factors_match_reference, .timeout = 60) { forward_case(2, 13); }
Test(forward, phi3_long_factors_match_reference, .timeout = 60) { forward_case(1, 70); }

/* ------------------------------------------------------------------ */
/* gptq quantize and gptq eval                                         */
/* ------------------------------------------------------------------ */

static void quantize_case(const char *method, const char *act_order)
{
    char root[256], model[300], out[1024], p[1024], what[64];
    cr_assert_eq(syn_model_dir(root, model, NULL, SYN_PHI3, NULL), GPTQ_OK, "%s",
                 gptq_last_error());
    cc_add_tokenizer(model); /* 512 tokens, as the synthetic vocab */
    ch_join(out, root, "out");
    cc_quantize_8bit(model, out, method, 32, act_order);
    gptq_st_file *f = cc_open_st(out);
    for (int L = 0; L < SYN_LAYERS; L++) {
        char n[256];
        gptq_st_info i;
        /* the fused linears packed as they are: 64 inputs, 8 bits -> 16
         * rows of 32-bit words; (4 + 2 * 2) * 16 and 2 * 128 outputs */
        snprintf(n, sizeof n, "model.layers.%d.self_attn.qkv_proj.qweight", L);
        i = cc_tensor(f, n);
        cr_expect(i.shape[0] == 64 * 8 / 32 && i.shape[1] == 128, "%s", n);
        snprintf(n, sizeof n, "model.layers.%d.mlp.gate_up_proj.qweight", L);
        i = cc_tensor(f, n);
        cr_expect(i.shape[0] == 64 * 8 / 32 && i.shape[1] == 2 * SYN_F, "%s", n);
        snprintf(n, sizeof n, "model.layers.%d.mlp.gate_up_proj.scales", L);
        i = cc_tensor(f, n);
        cr_expect(i.shape[0] == 2 && i.shape[1] == 2 * SYN_F, "%s: 2 groups of 32", n);
        snprintf(n, sizeof n, "model.layers.%d.mlp.down_proj.qweight", L);
        i = cc_tensor(f, n);
        cr_expect(i.shape[0] == SYN_F * 8 / 32 && i.shape[1] == SYN_D, "%s", n);
        snprintf(n, sizeof n, "model.layers.%d.self_attn.qkv_proj.weight", L);
        cr_expect_neq(gptq_st_find(f, n, &i), GPTQ_OK, "%s: left unquantized", n);
        snprintf(n, sizeof n, "model.layers.%d.self_attn.q_proj.qweight", L);
        cr_expect_neq(gptq_st_find(f, n, &i), GPTQ_OK, "%s: split", n);
    }
    gptq_st_close(f);
    cJSON *cfg = cc_json_file(ch_join(p, out, "config.json"));
    cr_expect_str_eq(cc_str(cfg, "model_type"), "phi3");
    cJSON_Delete(cfg);
    /* 8 bits: the fp model up to rounding (4 windows of 32 tokens):
     * measured ppl 989.86 fp, 988.44 RTN (-0.14%), 992.61 GPTQ act-order
     * (+0.28%); bound 2% as for Qwen3 (4 bits on 124 tokens of a random
     * model moves by up to 10%: too loose to check anything) */
    snprintf(what, sizeof what, "phi3 %s%s 8-bit", method, act_order ? " act-order" : "");
    cc_expect_ppl_near(model, out, 32, 0.02, what);
    ch_rm_tree(root);
}

Test(cli, phi3_quantize_rtn_and_eval, .timeout = 120) { quantize_case("rtn", NULL); }
Test(cli, phi3_quantize_gptq_act_order_and_eval, .timeout = 120)
{
    quantize_case("gptq", "--desc-act");
}
