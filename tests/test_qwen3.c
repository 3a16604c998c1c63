/*
 * test_qwen3.c — Qwen3ForCausalLM (dense), issue 11: the config in its
 * transformers 4 and 5 spellings with Qwen3Config's defaults; the forward
 * of the synthetic Qwen3 of synth_model.h (head_dim 32 with D 64 and 4
 * heads; q_norm/k_norm) against a plain-C re-implementation in double
 * written from the architecture (below, sharing no code with src/model);
 * and `gptq quantize` (RTN, GPTQ) and `gptq eval` on it through the CLI,
 * the q/k norms copied into the checkpoint as they were.
 */
#include "cli_checks.h" /* first: it sets _GNU_SOURCE */

#include "internal.h" /* synth_model.h reports with gptq_error */
#include "io/io.h"
#include "model/arch.h"
#include "model/model.h"
#include "synth_model.h"

/* ------------------------------------------------------------------ */
/* config                                                              */
/* ------------------------------------------------------------------ */

static int parse_str(const char *json, gptq_model_config *c)
{
    cJSON *root = NULL;
    cr_assert_eq(gptq_json_parse(json, strlen(json), "config.json", &root), GPTQ_OK, "%s",
                 gptq_last_error());
    int st = gptq_model_config_parse(root, "config.json", c);
    cJSON_Delete(root);
    return st;
}

/* Qwen3-0.6B's shape: head_dim 128 where hidden_size / heads is 64. */
#define QWEN3_06B_KEYS                                                                          \
    "\"architectures\": [\"Qwen3ForCausalLM\"], \"attention_bias\": false,"                     \
    " \"attention_dropout\": 0.0, \"head_dim\": 128, \"hidden_act\": \"silu\","                 \
    " \"hidden_size\": 1024, \"intermediate_size\": 3072, \"max_position_embeddings\": 40960,"  \
    " \"max_window_layers\": 28, \"model_type\": \"qwen3\", \"num_attention_heads\": 16,"       \
    " \"num_hidden_layers\": 28, \"num_key_value_heads\": 8, \"rms_norm_eps\": 1e-06,"          \
    " \"sliding_window\": null, \"tie_word_embeddings\": true, \"use_sliding_window\": false,"  \
    " \"vocab_size\": 151936"

static void expect_qwen3_06b(const gptq_model_config *c)
{
    cr_expect_eq(c->arch, &gptq_arch_qwen3);
    cr_expect_str_eq(c->architecture, "Qwen3ForCausalLM");
    cr_expect_eq(c->hidden_size, 1024);
    cr_expect_eq(c->num_heads, 16);
    cr_expect_eq(c->num_kv_heads, 8);
    cr_expect_eq(c->head_dim, 128, "the explicit head_dim, not hidden_size / heads = 64");
    cr_expect_eq(c->intermediate_size, 3072);
    cr_expect_eq(c->num_layers, 28);
    cr_expect_eq(c->vocab_size, 151936);
    cr_expect_eq(c->rope_theta, 1000000.0);
    cr_expect_eq(c->norm_eps, 1e-6);
    cr_expect_eq(c->tie_word_embeddings, 1);
    cr_expect_eq(c->qkv_bias, 0);
    cr_expect_eq(c->o_bias, 0);
    cr_expect_eq(c->mlp_bias, 0);
    cr_expect_eq(c->sliding_window, 0, "use_sliding_window false");
    cr_expect_eq(c->dtype, GPTQ_BF16);
}

Test(config, qwen3_transformers4_spelling)
{
    gptq_model_config c;
    cr_assert_eq(parse_str("{" QWEN3_06B_KEYS ", \"rope_scaling\": null, \"rope_theta\": 1000000,"
                           " \"torch_dtype\": \"bfloat16\", \"transformers_version\": \"4.51.0\"}",
                           &c),
                 GPTQ_OK, "%s", gptq_last_error());
    expect_qwen3_06b(&c);
}

Test(config, qwen3_transformers5_spelling)
{
    gptq_model_config c;
    cr_assert_eq(parse_str("{" QWEN3_06B_KEYS ", \"rope_parameters\": {\"rope_theta\": 1000000,"
                           " \"rope_type\": \"default\"}, \"dtype\": \"bfloat16\","
                           " \"transformers_version\": \"5.0.0\"}",
                           &c),
                 GPTQ_OK, "%s", gptq_last_error());
    expect_qwen3_06b(&c);
}

/* Keys left out take Qwen3Config's defaults (head_dim 128, 32 KV heads,
 * rms_norm_eps 1e-6, rope_theta 10000, untied, a window of 4096 when
 * use_sliding_window); written null, they are read as for Llama
 * (hidden_size / heads, num_attention_heads as Qwen3Config does, no
 * window as Qwen3Config does). model_type alone is enough. */
Test(config, qwen3_defaults_and_fallbacks)
{
    gptq_model_config c;
    cr_assert_eq(parse_str("{\"model_type\": \"qwen3\", \"hidden_size\": 2048,"
                           " \"intermediate_size\": 4096, \"num_hidden_layers\": 2,"
                           " \"num_attention_heads\": 32, \"vocab_size\": 1000}",
                           &c),
                 GPTQ_OK, "%s", gptq_last_error());
    cr_expect_eq(c.arch, &gptq_arch_qwen3);
    cr_expect_eq(c.head_dim, 128);
    cr_expect_eq(c.num_kv_heads, 32);
    cr_expect_eq(c.norm_eps, 1e-6);
    cr_expect_eq(c.rope_theta, 10000.0);
    cr_expect_eq(c.tie_word_embeddings, 0);
    cr_expect_eq(c.sliding_window, 0);

    cr_assert_eq(parse_str("{\"architectures\": [\"Qwen3ForCausalLM\"], \"hidden_size\": 2048,"
                           " \"intermediate_size\": 4096, \"num_hidden_layers\": 2,"
                           " \"num_attention_heads\": 16, \"num_key_value_heads\": null,"
                           " \"head_dim\": null, \"vocab_size\": 1000,"
                           " \"use_sliding_window\": true}",
                           &c),
                 GPTQ_OK, "%s", gptq_last_error());
    cr_expect_eq(c.head_dim, 128, "2048 / 16");
    cr_expect_eq(c.num_kv_heads, 16);
    cr_expect_eq(c.sliding_window, 4096, "use_sliding_window with the window left out");

    /* a window written null is none; one written is kept */
    cr_assert_eq(parse_str("{\"architectures\": [\"Qwen3ForCausalLM\"], \"hidden_size\": 64,"
                           " \"intermediate_size\": 64, \"num_hidden_layers\": 1,"
                           " \"num_attention_heads\": 2, \"num_key_value_heads\": 2,"
                           " \"head_dim\": 48, \"vocab_size\": 10,"
                           " \"use_sliding_window\": true, \"sliding_window\": null}",
                           &c),
                 GPTQ_OK, "%s", gptq_last_error());
    cr_expect_eq(c.sliding_window, 0);
    cr_expect_eq(c.head_dim, 48);
    cr_assert_eq(parse_str("{\"architectures\": [\"Qwen3ForCausalLM\"], \"hidden_size\": 64,"
                           " \"intermediate_size\": 64, \"num_hidden_layers\": 1,"
                           " \"num_attention_heads\": 2, \"num_key_value_heads\": 1,"
                           " \"vocab_size\": 10, \"use_sliding_window\": true,"
                           " \"sliding_window\": 256,"
                           " \"attention_bias\": true, \"mlp_bias\": true}",
                           &c),
                 GPTQ_OK, "%s", gptq_last_error());
    cr_expect_eq(c.sliding_window, 256);
    cr_expect_eq(c.qkv_bias, 1, "attention_bias: q, k, v");
    cr_expect_eq(c.o_bias, 1, "attention_bias: o_proj too");
    cr_expect_eq(c.mlp_bias, 0, "Qwen3's MLP has no bias (mlp_bias is no Qwen3 key)");
}

Test(config, qwen3_errors)
{
    gptq_model_config c;
    /* 32 KV heads by default do not divide 16 heads: said, not guessed */
    cr_assert_eq(parse_str("{\"model_type\": \"qwen3\", \"hidden_size\": 64,"
                           " \"intermediate_size\": 64, \"num_hidden_layers\": 1,"
                           " \"num_attention_heads\": 16, \"vocab_size\": 10}",
                           &c),
                 GPTQ_ERR_FORMAT);
    cr_expect(strstr(gptq_last_error(), "num_attention_heads 16 is not a multiple of "
                                        "num_key_value_heads 32"),
              "%s", gptq_last_error());
    cr_assert_eq(parse_str("{\"architectures\": [\"Qwen3ForCausalLM\"], \"hidden_size\": 64,"
                           " \"intermediate_size\": 64, \"num_hidden_layers\": 1,"
                           " \"num_attention_heads\": 2, \"head_dim\": 33, \"vocab_size\": 10}",
                           &c),
                 GPTQ_ERR_FORMAT);
    cr_expect(strstr(gptq_last_error(), "head_dim 33 must be positive, even"), "%s",
              gptq_last_error());
    cr_assert_eq(parse_str("{\"architectures\": [\"Qwen4ForCausalLM\"], \"vocab_size\": 10}", &c),
                 GPTQ_ERR_UNSUPPORTED);
    cr_expect(strstr(gptq_last_error(), "Qwen3ForCausalLM"), "the supported list: %s",
              gptq_last_error());
}

/* ------------------------------------------------------------------ */
/* the forward against a plain-C reference                             */
/* ------------------------------------------------------------------ */

/* The synthetic Qwen3's sizes (synth_model.h) */
enum { RD = SYN_D, RF = SYN_F, RV = SYN_QWEN3_V, RH = 4, RHK = 2, RHD = SYN_QWEN3_HD,
       RL = SYN_LAYERS };
#define R_EPS 1e-6
#define R_THETA 1000000.0

/* Where the reference applies q_norm / k_norm: Qwen3 (before RoPE), or
 * the two wrong variants the test must tell apart from it. */
enum { QK_BEFORE_ROPE, QK_NONE, QK_AFTER_ROPE };

typedef struct {
    float *E, *fn;
    float *in[RL], *post[RL], *qn[RL], *kn[RL];
    float *W[RL][7]; /* q, k, v, o, gate, up, down: (out, in) */
} ref_weights;

static float *ref_read(gptq_weights *w, const char *name, int64_t r, int64_t c)
{
    const int64_t shape[2] = {r, c};
    float *p = malloc((size_t)(r * (c ? c : 1)) * sizeof(float));
    cr_assert(p);
    cr_assert_eq(gptq_weights_read_f32(w, name, c ? 2 : 1, shape, p), GPTQ_OK, "%s",
                 gptq_last_error());
    return p;
}

static void ref_load(const char *dir, ref_weights *rw)
{
    gptq_weights *w = NULL;
    cr_assert_eq(gptq_weights_open(dir, &w), GPTQ_OK, "%s", gptq_last_error());
    static const char *lin[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                 "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                 "mlp.down_proj"};
    const int64_t rc[7][2] = {{RH * RHD, RD}, {RHK * RHD, RD}, {RHK * RHD, RD}, {RD, RH * RHD},
                              {RF, RD},       {RF, RD},        {RD, RF}};
    char n[256];
    rw->E = ref_read(w, "model.embed_tokens.weight", RV, RD);
    rw->fn = ref_read(w, "model.norm.weight", RD, 0);
    for (int L = 0; L < RL; L++) {
        snprintf(n, sizeof n, "model.layers.%d.input_layernorm.weight", L);
        rw->in[L] = ref_read(w, n, RD, 0);
        snprintf(n, sizeof n, "model.layers.%d.post_attention_layernorm.weight", L);
        rw->post[L] = ref_read(w, n, RD, 0);
        snprintf(n, sizeof n, "model.layers.%d.self_attn.q_norm.weight", L);
        rw->qn[L] = ref_read(w, n, RHD, 0);
        snprintf(n, sizeof n, "model.layers.%d.self_attn.k_norm.weight", L);
        rw->kn[L] = ref_read(w, n, RHD, 0);
        for (int i = 0; i < 7; i++) {
            snprintf(n, sizeof n, "model.layers.%d.%s.weight", L, lin[i]);
            rw->W[L][i] = ref_read(w, n, rc[i][0], rc[i][1]);
        }
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
        free(rw->qn[L]);
        free(rw->kn[L]);
        for (int i = 0; i < 7; i++) free(rw->W[L][i]);
    }
}

/* y (n) = RMSNorm(x) * w, in place allowed */
static void ref_rms(const double *x, const float *w, int n, double *y)
{
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    const double r = 1.0 / sqrt(ss / n + R_EPS);
    for (int i = 0; i < n; i++) y[i] = (double)w[i] * (x[i] * r);
}

/* y (rows) = W (rows, cols) x */
static void ref_lin(const float *W, const double *x, int rows, int cols, double *y)
{
    for (int r = 0; r < rows; r++) {
        double s = 0.0;
        for (int c = 0; c < cols; c++) s += (double)W[r * cols + c] * x[c];
        y[r] = s;
    }
}

/* rotate_half RoPE of one head's vector x (RHD) at position p */
static void ref_rope(double *x, int p)
{
    for (int i = 0; i < RHD / 2; i++) {
        const double a = p * pow(R_THETA, -2.0 * i / RHD), c = cos(a), s = sin(a);
        const double x0 = x[i], x1 = x[i + RHD / 2];
        x[i] = x0 * c - x1 * s;
        x[i + RHD / 2] = x1 * c + x0 * s;
    }
}

/* logits (nseq * S, V) of ids (nseq, S), each sequence on its own */
static void ref_forward(const ref_weights *w, const int32_t *ids, int nseq, int S, int qk,
                        double *logits)
{
    const int T = nseq * S, QW = RH * RHD, KW = RHK * RHD;
    double *x = calloc((size_t)T * RD, sizeof *x), *q = calloc((size_t)T * QW, sizeof *q),
           *k = calloc((size_t)T * KW, sizeof *k), *v = calloc((size_t)T * KW, sizeof *v);
    double n[RD], att[RH * RHD], o[RD], g[RF], u[RF], sc[64];
    cr_assert(x && q && k && v && S <= 64);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < RD; i++) x[t * RD + i] = w->E[ids[t] * RD + i];
    for (int L = 0; L < RL; L++) {
        for (int t = 0; t < T; t++) {
            ref_rms(x + t * RD, w->in[L], RD, n);
            ref_lin(w->W[L][0], n, QW, RD, q + t * QW);
            ref_lin(w->W[L][1], n, KW, RD, k + t * KW);
            ref_lin(w->W[L][2], n, KW, RD, v + t * KW);
            for (int h = 0; h < RH; h++) {
                double *qh = q + t * QW + h * RHD;
                if (qk == QK_BEFORE_ROPE) ref_rms(qh, w->qn[L], RHD, qh);
                ref_rope(qh, t % S);
                if (qk == QK_AFTER_ROPE) ref_rms(qh, w->qn[L], RHD, qh);
            }
            for (int h = 0; h < RHK; h++) {
                double *kh = k + t * KW + h * RHD;
                if (qk == QK_BEFORE_ROPE) ref_rms(kh, w->kn[L], RHD, kh);
                ref_rope(kh, t % S);
                if (qk == QK_AFTER_ROPE) ref_rms(kh, w->kn[L], RHD, kh);
            }
        }
        for (int t = 0; t < T; t++) {
            const int t0 = t - t % S; /* the sequence's first row: causal within it */
            for (int h = 0; h < RH; h++) {
                const int kh = h / (RH / RHK);
                const double *qh = q + t * QW + h * RHD;
                double mx = -INFINITY, z = 0.0;
                for (int j = t0; j <= t; j++) {
                    double s = 0.0;
                    for (int i = 0; i < RHD; i++) s += qh[i] * k[j * KW + kh * RHD + i];
                    sc[j - t0] = s / sqrt((double)RHD);
                    if (sc[j - t0] > mx) mx = sc[j - t0];
                }
                for (int j = t0; j <= t; j++) z += sc[j - t0] = exp(sc[j - t0] - mx);
                for (int i = 0; i < RHD; i++) {
                    double s = 0.0;
                    for (int j = t0; j <= t; j++) s += sc[j - t0] * v[j * KW + kh * RHD + i];
                    att[h * RHD + i] = s / z;
                }
            }
            /* attention then MLP for row t: later rows read only k and v */
            double *xt = x + t * RD;
            ref_lin(w->W[L][3], att, RD, QW, o);
            for (int i = 0; i < RD; i++) xt[i] += o[i];
            ref_rms(xt, w->post[L], RD, n);
            ref_lin(w->W[L][4], n, RF, RD, g);
            ref_lin(w->W[L][5], n, RF, RD, u);
            for (int i = 0; i < RF; i++) g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
            ref_lin(w->W[L][6], g, RD, RF, o);
            for (int i = 0; i < RD; i++) xt[i] += o[i];
        }
    }
    for (int t = 0; t < T; t++) { /* final norm, tied lm_head */
        ref_rms(x + t * RD, w->fn, RD, n);
        ref_lin(w->E, n, RV, RD, logits + (size_t)t * RV);
    }
    free(x);
    free(q);
    free(k);
    free(v);
}

static double max_abs_diff(const float *a, const double *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        cr_assert(isfinite(a[i]), "logit %zu is %g", i, (double)a[i]);
        m = fmax(m, fabs((double)a[i] - b[i]));
    }
    return m;
}

/* Our forward (f32, the CPU backend) against the reference (double): the
 * two differ by f32 rounding through 2 layers of width <= 128, most of it
 * the RoPE angles, which ours rounds to f32 as transformers does (an angle
 * of 12 rad carries an f32 error of ~5e-7): measured max |diff| 3.2e-6 on
 * logits up to 3.6; bound 3e-5 (~10x). Each wrong variant (no q/k norms;
 * the norms after RoPE) moves logits by far more (measured 3.0 and 1.1),
 * so the bound sees the placement of the norm too. */
#define QWEN3_LOGIT_TOL 3e-5

Test(forward, qwen3_matches_plain_c_reference, .timeout = 60)
{
    char root[256], model[300];
    cr_assert_eq(syn_model_dir(root, model, NULL, SYN_QWEN3, NULL), GPTQ_OK, "%s",
                 gptq_last_error());
    enum { NSEQ = 2, S = 13 };
    int32_t ids[NSEQ * S];
    uint32_t seed = 99u;
    for (int i = 0; i < NSEQ * S; i++) ids[i] = (int32_t)(syn_lcg(&seed) % RV);

    gptq_backend *be = NULL;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK);
    gptq_model *m = NULL;
    cr_assert_eq(gptq_model_open(model, be, &m), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(gptq_model_config_of(m)->arch, &gptq_arch_qwen3);
    const size_t n = (size_t)NSEQ * S * RV;
    float *ours = malloc(n * sizeof(float));
    double *ref = malloc(n * sizeof(double));
    cr_assert(ours && ref);
    cr_assert_eq(gptq_model_forward(m, ids, NSEQ, S, NULL, NULL, ours), GPTQ_OK, "%s",
                 gptq_last_error());

    ref_weights w;
    ref_load(model, &w);
    ref_forward(&w, ids, NSEQ, S, QK_BEFORE_ROPE, ref);
    const double d = max_abs_diff(ours, ref, n);
    double scale = 0.0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
    cr_log_info("qwen3: %zu logits (max |logit| %.3g), max |diff| vs the reference %.3g", n,
                scale, d);
    cr_expect_leq(d, QWEN3_LOGIT_TOL, "max |diff| %.3g", d);
    static const char *what[] = {"", "without q/k norms", "with the norms after RoPE"};
    for (int qk = QK_NONE; qk <= QK_AFTER_ROPE; qk++) {
        ref_forward(&w, ids, NSEQ, S, qk, ref);
        const double dv = max_abs_diff(ours, ref, n);
        cr_log_info("qwen3: the reference %s differs by %.3g", what[qk], dv);
        cr_expect_gt(dv, 100 * QWEN3_LOGIT_TOL, "the reference %s is as close (%.3g)", what[qk],
                     dv);
    }
    ref_free(&w);
    free(ours);
    free(ref);
    gptq_model_close(m);
    gptq_backend_close(be);
    ch_rm_tree(root);
}

/* use_sliding_window with a window shorter than the sequence: refused
 * (sliding-window attention is not implemented), naming the window; a
 * sequence within it runs. */
Test(forward, qwen3_sliding_window_refused_beyond_it)
{
    char root[256], model[300], path[400];
    cr_assert_eq(syn_model_dir(root, model, NULL, SYN_QWEN3, NULL), GPTQ_OK, "%s",
                 gptq_last_error());
    char *cfg = ch_slurp(ch_join(path, model, "config.json"), NULL);
    cr_assert(cfg);
    /* the same lengths, so the edit is in place */
    static const char w0[] = "\"sliding_window\": null", w1[] = "\"sliding_window\":    8",
                      u0[] = "\"use_sliding_window\": false",
                      u1[] = "\"use_sliding_window\":  true";
    char *a = strstr(cfg, w0), *b = strstr(cfg, u0);
    cr_assert(a && b && sizeof w0 == sizeof w1 && sizeof u0 == sizeof u1, "%s", cfg);
    memcpy(a, w1, sizeof w1 - 1);
    memcpy(b, u1, sizeof u1 - 1);
    ch_write_str(path, cfg);
    free(cfg);
    gptq_backend *be = NULL;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK);
    gptq_model *m = NULL;
    cr_assert_eq(gptq_model_open(model, be, &m), GPTQ_OK, "%s", gptq_last_error());
    int32_t ids[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    double nll = 0.0;
    cr_expect_eq(gptq_model_forward(m, ids, 1, 8, &nll, NULL, NULL), GPTQ_OK, "%s",
                 gptq_last_error());
    cr_expect_eq(gptq_model_forward(m, ids, 1, 9, &nll, NULL, NULL), GPTQ_ERR_UNSUPPORTED);
    cr_expect(strstr(gptq_last_error(), "sequences of 9 tokens exceed the sliding window of 8"),
              "%s", gptq_last_error());
    gptq_model_close(m);
    gptq_backend_close(be);
    ch_rm_tree(root);
}

/* ------------------------------------------------------------------ */
/* gptq quantize and gptq eval                                         */
/* ------------------------------------------------------------------ */

/* The synthetic Qwen3 with stories-260k's tokenizer (512 tokens, as its
 * vocab_size), so that GPTQ's calibration and eval can read text. */
static void qwen3_with_tokenizer(char *root, char *model)
{
    cr_assert_eq(syn_model_dir(root, model, NULL, SYN_QWEN3, NULL), GPTQ_OK, "%s",
                 gptq_last_error());
    ch_sh("cp '%s/tests/data/model/stories-260k/tokenizer.json' "
          "'%s/tests/data/model/stories-260k/tokenizer_config.json' '%s/'",
          ch_source_root(), ch_source_root(), model);
}

/* OUT's tensor `name` has the dtype, shape and bytes it has in MODEL. */
static void expect_copied(const char *model, const char *out, const char *name)
{
    gptq_st_file *a = cc_open_st(model), *b = cc_open_st(out);
    gptq_st_info x = cc_tensor(a, name), y = cc_tensor(b, name);
    cr_expect(x.dtype == y.dtype && x.ndim == 1 && y.ndim == 1 && x.shape[0] == y.shape[0] &&
                  x.nbytes == y.nbytes && memcmp(x.data, y.data, x.nbytes) == 0,
              "%s is not copied as it was", name);
    gptq_st_close(a);
    gptq_st_close(b);
}

static void quantize_case(const char *method)
{
    char root[256], model[300], out[1024], calib[1024], text[1024];
    qwen3_with_tokenizer(root, model);
    ch_join(out, root, "out");
    cc_data(calib, "text/calib.txt");
    cc_data(text, "text/eval.txt");
    cli_result r;
    cc_ok(&r, "quantize", model, "-o", out, "--method", method, "--calib", calib, "--nsamples",
          "8", "--seqlen", "32", "--bits", "8", "--group-size", "32");
    ch_result_free(&r);
    gptq_st_file *f = cc_open_st(out);
    for (int L = 0; L < SYN_LAYERS; L++) {
        char n[256];
        /* q_proj (128, 64) and o_proj (64, 128): head_dim x heads != hidden */
        snprintf(n, sizeof n, "model.layers.%d.self_attn.q_proj.qweight", L);
        gptq_st_info i = cc_tensor(f, n);
        cr_expect(i.shape[0] == 64 * 8 / 32 && i.shape[1] == 4 * SYN_QWEN3_HD, "%s", n);
        snprintf(n, sizeof n, "model.layers.%d.self_attn.o_proj.qweight", L);
        i = cc_tensor(f, n);
        cr_expect(i.shape[0] == 4 * SYN_QWEN3_HD * 8 / 32 && i.shape[1] == SYN_D, "%s", n);
        snprintf(n, sizeof n, "model.layers.%d.self_attn.q_norm.qweight", L);
        cr_expect_neq(gptq_st_find(f, n, &i), GPTQ_OK, "%s: a norm was quantized", n);
    }
    gptq_st_close(f);
    for (int L = 0; L < SYN_LAYERS; L++) {
        char n[256];
        snprintf(n, sizeof n, "model.layers.%d.self_attn.q_norm.weight", L);
        expect_copied(model, out, n);
        snprintf(n, sizeof n, "model.layers.%d.self_attn.k_norm.weight", L);
        expect_copied(model, out, n);
    }
    cJSON *cfg = cc_json_file(ch_join(calib, out, "config.json"));
    cr_expect_str_eq(cc_str(cfg, "model_type"), "qwen3");
    cr_expect_eq(cc_num(cfg, "head_dim"), SYN_QWEN3_HD);
    cJSON_Delete(cfg);
    /* The checkpoint evaluates, and at 8 bits it is the fp model up to
     * rounding: 4 windows of 32 tokens, measured ppl 759.30 fp, 759.62 GPTQ
     * (+0.04%), 756.09 RTN (-0.4%); bound 2%. (At 4 bits a random model's
     * ppl on 124 tokens moves by up to 10%: too loose to check anything.) */
    cc_ppl fp = cc_eval(model, text, 32, 4), q = cc_eval(out, text, 32, 4);
    cr_log_info("qwen3 %s: ppl fp %s, 8-bit %s", method, fp.text, q.text);
    cr_expect_lt(fabs(log(q.ppl / fp.ppl)), 0.02, "ppl %s vs fp %s", q.text, fp.text);
    ch_rm_tree(root);
}

Test(cli, qwen3_quantize_rtn_and_eval, .timeout = 120) { quantize_case("rtn"); }
Test(cli, qwen3_quantize_gptq_and_eval, .timeout = 120) { quantize_case("gptq"); }
