/*
 * test_model.c — the model loader and forward pass (src/model).
 *
 * Config parsing of both transformers styles and the clear errors
 * (unsupported architecture or rope scaling, OPT variants, missing keys);
 * weights: bad shard indexes, missing tensors; the forward pass of the
 * committed stories-260k against transformers' logits
 * (tests/data/model/golden_stories260k.safetensors, made by
 * tools/ref_forward.py on the device machine), its independence of the
 * thread count, a GPTQ checkpoint read back through dequantization, and the
 * per-layer API with its hooks.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/io.h"
#include "model/arch.h"
#include "model/model.h"
#include "synth_model.h"

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

static const char *src_root(void)
{
    const char *r = getenv("GPTQ_SOURCE_ROOT");
    return r ? r : ".";
}

static void stories_dir(char *buf, size_t n)
{
    snprintf(buf, n, "%s/tests/data/model/stories-260k", src_root());
}

static void expect_error(const char *json, int status, const char *needle1, const char *needle2)
{
    gptq_model_config c;
    int st = syn_parse(json, &c);
    cr_assert_eq(st, status, "status %d (%s), expected %d; message: %s", st, gptq_status_str(st),
                 status, gptq_last_error());
    cr_assert(strstr(gptq_last_error(), needle1), "message lacks \"%s\": %s", needle1,
              gptq_last_error());
    if (needle2)
        cr_assert(strstr(gptq_last_error(), needle2), "message lacks \"%s\": %s", needle2,
                  gptq_last_error());
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static void make_tmpdir(char *buf, size_t n)
{
    snprintf(buf, n, "/tmp/gptq_test_model_XXXXXX");
    cr_assert(mkdtemp(buf), "mkdtemp failed");
}

static void rm_tree(const char *dir)
{
    cr_assert_eq(gptq_remove_tree(dir), GPTQ_OK, "%s", gptq_last_error());
}

/* A tiny Llama config: D 16, 2 heads of 8, 1 KV head, F 24, 1 layer, V 32. */
static const char *k_tiny_llama =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 16, \"intermediate_size\": 24,"
    " \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"num_key_value_heads\": 1,"
    " \"vocab_size\": 32, \"rms_norm_eps\": 1e-5, \"tie_word_embeddings\": true,"
    " \"torch_dtype\": \"float32\"}";

/* Write a tiny Llama model folder with random weights; drop tensor `skip`. */
static void write_tiny_llama(const char *dir, const char *skip)
{
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_file(path, k_tiny_llama);
    const char *names[] = {
        "model.embed_tokens.weight",
        "model.layers.0.input_layernorm.weight",
        "model.layers.0.post_attention_layernorm.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.self_attn.k_proj.weight",
        "model.layers.0.self_attn.v_proj.weight",
        "model.layers.0.self_attn.o_proj.weight",
        "model.layers.0.mlp.gate_proj.weight",
        "model.layers.0.mlp.up_proj.weight",
        "model.layers.0.mlp.down_proj.weight",
        "model.norm.weight",
    };
    const int64_t shapes[][2] = {{32, 16}, {16, 0}, {16, 0}, {16, 16}, {8, 16}, {8, 16},
                                 {16, 16}, {24, 16}, {24, 16}, {16, 24}, {16, 0}};
    const int n = (int)(sizeof names / sizeof *names);
    gptq_tensor t[16];
    const char *keep[16];
    int k = 0;
    unsigned s = 12345u;
    for (int i = 0; i < n; i++) {
        if (skip && !strcmp(names[i], skip)) continue;
        int nd = shapes[i][1] ? 2 : 1;
        cr_assert_eq(gptq_tensor_alloc(&t[k], GPTQ_F32, nd, shapes[i]), GPTQ_OK);
        float *d = t[k].data;
        for (int64_t j = 0; j < gptq_tensor_numel(&t[k]); j++) {
            s = s * 1103515245u + 12345u;
            d[j] = nd == 1 ? 1.0f : ((float)((s >> 8) & 0xffff) / 65536.0f - 0.5f) * 0.5f;
        }
        keep[k++] = names[i];
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    cr_assert_eq(gptq_st_save(path, k, keep, t), GPTQ_OK, "%s", gptq_last_error());
    for (int i = 0; i < k; i++) gptq_tensor_free(&t[i]);
}

/* ------------------------------------------------------------------ */
/* config                                                              */
/* ------------------------------------------------------------------ */

Test(config, transformers4_style_llama)
{
    /* llama-27m's config.json as it is in shared/models */
    const char *j =
        "{\"architectures\": [\"LlamaForCausalLM\"], \"attention_bias\": false, \"head_dim\": 64,"
        " \"hidden_act\": \"silu\", \"hidden_size\": 512, \"intermediate_size\": 1536,"
        " \"max_position_embeddings\": 2048, \"mlp_bias\": false, \"model_type\": \"llama\","
        " \"num_attention_heads\": 8, \"num_hidden_layers\": 6, \"num_key_value_heads\": 4,"
        " \"rms_norm_eps\": 1e-05, \"tie_word_embeddings\": false, \"vocab_size\": 8192,"
        " \"rope_theta\": 10000.0, \"torch_dtype\": \"bfloat16\"}";
    gptq_model_config c;
    cr_assert_eq(syn_parse(j, &c), GPTQ_OK, "%s", gptq_last_error());
    cr_expect_eq(c.arch, &gptq_arch_llama);
    cr_expect_str_eq(c.architecture, "LlamaForCausalLM");
    cr_expect_eq(c.hidden_size, 512);
    cr_expect_eq(c.intermediate_size, 1536);
    cr_expect_eq(c.num_layers, 6);
    cr_expect_eq(c.num_heads, 8);
    cr_expect_eq(c.num_kv_heads, 4);
    cr_expect_eq(c.head_dim, 64);
    cr_expect_eq(c.vocab_size, 8192);
    cr_expect_eq(c.rope_theta, 10000.0);
    cr_expect_eq(c.norm_eps, 1e-5);
    cr_expect_eq(c.tie_word_embeddings, 0);
    cr_expect_eq(c.qkv_bias, 0);
    cr_expect_eq(c.mlp_bias, 0);
    cr_expect_eq(c.dtype, GPTQ_BF16);
    cr_expect_eq(c.quant.present, 0);
}

Test(config, transformers5_style_rope_parameters)
{
    /* v5: rope_parameters and dtype; no head_dim (D / H), no kv heads (= H) */
    const char *j =
        "{\"architectures\": [\"MistralForCausalLM\"], \"hidden_size\": 256,"
        " \"intermediate_size\": 512, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
        " \"vocab_size\": 100, \"rms_norm_eps\": 1e-6, \"sliding_window\": 4096,"
        " \"rope_parameters\": {\"rope_theta\": 500000.0, \"rope_type\": \"default\"},"
        " \"dtype\": \"float16\", \"attention_bias\": true}";
    gptq_model_config c;
    cr_assert_eq(syn_parse(j, &c), GPTQ_OK, "%s", gptq_last_error());
    cr_expect_eq(c.arch, &gptq_arch_llama);
    cr_expect_eq(c.head_dim, 64);
    cr_expect_eq(c.num_kv_heads, 4);
    cr_expect_eq(c.rope_theta, 500000.0);
    cr_expect_eq(c.dtype, GPTQ_F16);
    cr_expect_eq(c.sliding_window, 4096);
    cr_expect_eq(c.qkv_bias, 1);
    cr_expect_eq(c.o_bias, 1);
}

Test(config, qwen2_biases_and_tied)
{
    const char *j =
        "{\"architectures\": [\"Qwen2ForCausalLM\"], \"hidden_size\": 64,"
        " \"intermediate_size\": 128, \"num_hidden_layers\": 1, \"num_attention_heads\": 4,"
        " \"num_key_value_heads\": 2, \"vocab_size\": 100, \"rope_theta\": 1000000.0,"
        " \"rope_scaling\": null, \"tie_word_embeddings\": true, \"use_sliding_window\": false,"
        " \"sliding_window\": 32}";
    gptq_model_config c;
    cr_assert_eq(syn_parse(j, &c), GPTQ_OK, "%s", gptq_last_error());
    cr_expect_eq(c.qkv_bias, 1, "Qwen2 always has q/k/v biases");
    cr_expect_eq(c.o_bias, 0, "Qwen2 has no o_proj bias");
    cr_expect_eq(c.tie_word_embeddings, 1);
    cr_expect_eq(c.sliding_window, 0, "use_sliding_window false");
    cr_expect_eq(c.norm_eps, 1e-6, "transformers' default rms_norm_eps");
}

Test(config, opt_v5_style)
{
    /* opt-18m's config.json as it is in shared/models */
    const char *j =
        "{\"_remove_final_layer_norm\": false, \"activation_function\": \"relu\","
        " \"architectures\": [\"OPTForCausalLM\"], \"do_layer_norm_before\": true,"
        " \"dtype\": \"float16\", \"enable_bias\": true, \"ffn_dim\": 2048, \"hidden_size\": 512,"
        " \"layer_norm_elementwise_affine\": true, \"max_position_embeddings\": 2048,"
        " \"model_type\": \"opt\", \"num_attention_heads\": 8, \"num_hidden_layers\": 4,"
        " \"tie_word_embeddings\": true, \"vocab_size\": 8192, \"word_embed_proj_dim\": 512}";
    gptq_model_config c;
    cr_assert_eq(syn_parse(j, &c), GPTQ_OK, "%s", gptq_last_error());
    cr_expect_eq(c.arch, &gptq_arch_opt);
    cr_expect_eq(c.intermediate_size, 2048);
    cr_expect_eq(c.head_dim, 64);
    cr_expect_eq(c.num_kv_heads, 8);
    cr_expect_eq(c.pos_offset, 2);
    cr_expect_eq(c.qkv_bias, 1);
    cr_expect_eq(c.o_bias, 1);
    cr_expect_eq(c.mlp_bias, 1);
    cr_expect_eq(c.tie_word_embeddings, 1);
    cr_expect_eq(c.final_norm, 1);
    cr_expect_eq(c.norm_eps, 1e-5);
    cr_expect_eq(c.dtype, GPTQ_F16);
}

Test(config, errors_name_the_problem)
{
    expect_error("{\"architectures\": [\"GPT2LMHeadModel\"], \"vocab_size\": 10}",
                 GPTQ_ERR_UNSUPPORTED, "GPT2LMHeadModel", "LlamaForCausalLM");
    expect_error("{\"architectures\": [\"GPT2LMHeadModel\"]}", GPTQ_ERR_UNSUPPORTED,
                 "OPTForCausalLM", "Qwen2ForCausalLM");
    expect_error("{\"vocab_size\": 10}", GPTQ_ERR_FORMAT, "architectures", "model_type");
    /* missing required keys */
    expect_error("{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 10,"
                 " \"num_hidden_layers\": 1, \"num_attention_heads\": 2,"
                 " \"intermediate_size\": 8}",
                 GPTQ_ERR_FORMAT, "hidden_size", NULL);
    expect_error("{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 10,"
                 " \"hidden_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2}",
                 GPTQ_ERR_FORMAT, "intermediate_size", NULL);
    /* wrong type */
    expect_error("{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 10,"
                 " \"hidden_size\": \"8\", \"num_hidden_layers\": 1, \"num_attention_heads\": 2,"
                 " \"intermediate_size\": 8}",
                 GPTQ_ERR_FORMAT, "hidden_size", NULL);
}

#define LLAMA_BASE                                                                  \
    "\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 10, \"hidden_size\": 8," \
    " \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"intermediate_size\": 8"

Test(config, rope_scaling_unsupported)
{
    /* the scalings implemented are tested in test_rope.c; these are not */
    expect_error("{" LLAMA_BASE ", \"rope_scaling\": {\"rope_type\": \"longrope\", \"factor\": 8.0}}",
                 GPTQ_ERR_UNSUPPORTED, "longrope", "rope_scaling");
    expect_error("{" LLAMA_BASE ", \"rope_scaling\": {\"type\": \"su\", \"factor\": 2.0}}",
                 GPTQ_ERR_UNSUPPORTED, "\"su\"", NULL);
    expect_error("{" LLAMA_BASE ", \"rope_parameters\": {\"rope_theta\": 10000.0,"
                 " \"rope_type\": \"mrope\"}}",
                 GPTQ_ERR_UNSUPPORTED, "mrope", "rope_parameters");
    /* default is fine in both styles */
    gptq_model_config c;
    cr_expect_eq(syn_parse("{" LLAMA_BASE ", \"rope_scaling\": {\"rope_type\": \"default\"}}", &c),
                 GPTQ_OK, "%s", gptq_last_error());
    cr_expect_eq(syn_parse("{" LLAMA_BASE ", \"rope_scaling\": null}", &c), GPTQ_OK);
    expect_error("{" LLAMA_BASE ", \"hidden_act\": \"gelu\"}", GPTQ_ERR_UNSUPPORTED, "gelu",
                 NULL);
    expect_error("{" LLAMA_BASE ", \"num_key_value_heads\": 3}", GPTQ_ERR_FORMAT,
                 "num_key_value_heads", NULL);
}

#define OPT_BASE                                                                  \
    "\"architectures\": [\"OPTForCausalLM\"], \"vocab_size\": 10, \"hidden_size\": 8," \
    " \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"ffn_dim\": 16"

Test(config, opt_variants_refused)
{
    expect_error("{" OPT_BASE ", \"do_layer_norm_before\": false}", GPTQ_ERR_UNSUPPORTED,
                 "do_layer_norm_before", "post-LayerNorm");
    expect_error("{" OPT_BASE ", \"word_embed_proj_dim\": 4}", GPTQ_ERR_UNSUPPORTED,
                 "word_embed_proj_dim", NULL);
    expect_error("{" OPT_BASE ", \"activation_function\": \"gelu\"}", GPTQ_ERR_UNSUPPORTED,
                 "gelu", NULL);
    gptq_model_config c;
    cr_assert_eq(syn_parse("{" OPT_BASE ", \"enable_bias\": false}", &c), GPTQ_OK);
    cr_expect_eq(c.qkv_bias + c.o_bias + c.mlp_bias, 0);
}

Test(config, gptq_quantization_config_and_synonyms)
{
    gptq_model_config c;
    cr_assert_eq(syn_parse("{" LLAMA_BASE ", \"quantization_config\": {\"quant_method\": \"gptq\","
                           " \"bits\": 3, \"group_size\": 128, \"desc_act\": true, \"sym\": false,"
                           " \"checkpoint_format\": \"gptq\"}}",
                           &c),
                 GPTQ_OK, "%s", gptq_last_error());
    cr_expect_eq(c.quant.present, 1);
    cr_expect_eq(c.quant.bits, 3);
    cr_expect_eq(c.quant.group_size, 128);
    cr_expect_eq(c.quant.desc_act, 1);
    cr_expect_eq(c.quant.sym, 0);
    cr_expect_eq(c.quant.format, GPTQ_FORMAT_V1);

    cr_assert_eq(syn_parse("{" LLAMA_BASE ", \"quantization_config\": {\"quant_method\": \"gptq\","
                           " \"wbits\": 4, \"q_group_size\": 64, \"zero_point\": true,"
                           " \"format\": \"gptq_v2\"}}",
                           &c),
                 GPTQ_OK, "%s", gptq_last_error());
    cr_expect_eq(c.quant.bits, 4);
    cr_expect_eq(c.quant.group_size, 64);
    cr_expect_eq(c.quant.sym, 0, "zero_point true means asymmetric");
    cr_expect_eq(c.quant.format, GPTQ_FORMAT_V2);

    cr_assert_eq(syn_parse("{" LLAMA_BASE ", \"quantization_config\": {\"w_bit\": 8,"
                           " \"group_size\": -1}}", &c),
                 GPTQ_OK, "%s", gptq_last_error());
    cr_expect_eq(c.quant.bits, 8);
    cr_expect_eq(c.quant.group_size, -1);
    cr_expect_eq(c.quant.sym, 1, "sym defaults to true");

    expect_error("{" LLAMA_BASE ", \"quantization_config\": {\"quant_method\": \"awq\","
                 " \"bits\": 4}}",
                 GPTQ_ERR_UNSUPPORTED, "awq", NULL);
    expect_error("{" LLAMA_BASE ", \"quantization_config\": {\"quant_method\": \"gptq\"}}",
                 GPTQ_ERR_FORMAT, "bits", NULL);
    expect_error("{" LLAMA_BASE ", \"quantization_config\": {\"bits\": 5}}",
                 GPTQ_ERR_UNSUPPORTED, "bits = 5", NULL);
}

/* ------------------------------------------------------------------ */
/* weights                                                             */
/* ------------------------------------------------------------------ */

Test(weights, bad_shard_index)
{
    char dir[64], path[512];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_file(path, k_tiny_llama);
    gptq_weights *w = NULL;

    /* no weights at all */
    int st = gptq_weights_open(dir, &w);
    cr_expect_eq(st, GPTQ_ERR_IO);
    cr_expect(strstr(gptq_last_error(), "model.safetensors"), "%s", gptq_last_error());

    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    /* no weight_map */
    write_file(path, "{\"metadata\": {\"total_size\": 4}}");
    st = gptq_weights_open(dir, &w);
    cr_expect_eq(st, GPTQ_ERR_FORMAT);
    cr_expect(strstr(gptq_last_error(), "weight_map"), "%s", gptq_last_error());
    /* a shard outside the folder */
    write_file(path, "{\"weight_map\": {\"a\": \"../evil.safetensors\"}}");
    st = gptq_weights_open(dir, &w);
    cr_expect_eq(st, GPTQ_ERR_FORMAT);
    cr_expect(strstr(gptq_last_error(), "../evil.safetensors"), "%s", gptq_last_error());
    /* a shard that does not exist */
    write_file(path, "{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\"}}");
    st = gptq_weights_open(dir, &w);
    cr_expect_eq(st, GPTQ_ERR_IO);
    cr_expect(strstr(gptq_last_error(), "model-00001-of-00002.safetensors"), "%s",
              gptq_last_error());
    /* a tensor the index places in a shard that lacks it */
    char shard[512];
    snprintf(shard, sizeof shard, "%s/model-00001-of-00002.safetensors", dir);
    gptq_tensor t;
    int64_t shape[1] = {4};
    cr_assert_eq(gptq_tensor_alloc(&t, GPTQ_F32, 1, shape), GPTQ_OK);
    const char *names[1] = {"a"};
    cr_assert_eq(gptq_st_save(shard, 1, names, &t), GPTQ_OK, "%s", gptq_last_error());
    gptq_tensor_free(&t);
    write_file(path, "{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\","
                     " \"b\": \"model-00001-of-00002.safetensors\"}}");
    st = gptq_weights_open(dir, &w);
    cr_expect_eq(st, GPTQ_ERR_FORMAT);
    cr_expect(strstr(gptq_last_error(), "'b'"), "%s", gptq_last_error());
    /* and the good one opens, with lookups */
    write_file(path, "{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\"}}");
    st = gptq_weights_open(dir, &w);
    cr_assert_eq(st, GPTQ_OK, "%s", gptq_last_error());
    cr_expect_eq(gptq_weights_count(w), 1);
    cr_expect_eq(gptq_weights_has(w, "a"), 1);
    cr_expect_eq(gptq_weights_has(w, "b"), 0);
    gptq_st_info info;
    cr_expect_eq(gptq_weights_find(w, "zz", &info), GPTQ_ERR_FORMAT);
    cr_expect(strstr(gptq_last_error(), "zz"), "%s", gptq_last_error());
    gptq_weights_close(w);
    rm_tree(dir);
}

Test(weights, missing_tensor_names_it)
{
    char dir[64];
    make_tmpdir(dir, sizeof dir);
    write_tiny_llama(dir, "model.layers.0.mlp.up_proj.weight");
    gptq_backend *be = NULL;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK);
    gptq_model *m = NULL;
    /* refused at open, before any work (not when layer 0 is loaded) */
    int st = gptq_model_open(dir, be, &m);
    cr_expect_eq(st, GPTQ_ERR_FORMAT);
    cr_expect_null(m);
    cr_expect(strstr(gptq_last_error(), "model.layers.0.mlp.up_proj.weight"), "%s",
              gptq_last_error());
    cr_expect(strstr(gptq_last_error(), "layer 0"), "%s", gptq_last_error());
    gptq_backend_close(be);
    rm_tree(dir);
}

/* ------------------------------------------------------------------ */
/* forward: stories-260k against transformers                          */
/* ------------------------------------------------------------------ */

typedef struct golden {
    gptq_st_file *f;
    const int32_t *ids_short;
    int64_t S;
    const float *logits;  /* (P, V) */
    const int32_t *pos;   /* (P) */
    int64_t P, V;
    const double *nll_short; /* (S-1) */
} golden;

static void golden_open(const char *path, golden *g)
{
    memset(g, 0, sizeof *g);
    cr_assert_eq(gptq_st_open(path, &g->f), GPTQ_OK, "%s (regenerate with tools/ref_forward.py)",
                 gptq_last_error());
    const char *magic = gptq_st_metadata(g->f, "magic");
    cr_assert(magic && !strcmp(magic, "gptq-c-golden-forward"), "%s: bad magic", path);
    cr_assert_str_eq(gptq_st_metadata(g->f, "version"), "1", "%s: golden version", path);
    gptq_st_info a, b, c, d;
    cr_assert_eq(gptq_st_find(g->f, "ids_short", &a), GPTQ_OK);
    cr_assert_eq(gptq_st_find(g->f, "logits_short", &b), GPTQ_OK);
    cr_assert_eq(gptq_st_find(g->f, "pos_short", &c), GPTQ_OK);
    cr_assert_eq(gptq_st_find(g->f, "nll_short", &d), GPTQ_OK);
    cr_assert(a.dtype == GPTQ_I32 && b.dtype == GPTQ_F32 && c.dtype == GPTQ_I32 &&
              d.dtype == GPTQ_F64);
    g->ids_short = a.data;
    g->S = a.shape[0];
    g->logits = b.data;
    g->P = b.shape[0];
    g->V = b.shape[1];
    g->pos = c.data;
    g->nll_short = d.data;
    cr_assert_eq(d.shape[0], g->S - 1);
}

/* Tolerance of our f32 logits against transformers' f32 logits (GPU,
 * TF32 off): the two differ only by the order of f32 sums (gemm blocking,
 * softmax), which for a 5-layer model of width 64 moves logits of size ~10
 * by 1.3e-5 at most (measured); 1e-4 absolute + 1e-4 relative leaves a margin
 * of ~8x while still catching any wrong convention (a swapped RoPE half, a
 * missing bias, a wrong eps move logits by 1e-2 or more). */
#define LOGIT_ATOL 1e-4
#define LOGIT_RTOL 1e-4

Test(forward, stories260k_matches_transformers, .timeout = 60)
{
    char dir[512], gpath[512];
    stories_dir(dir, sizeof dir);
    snprintf(gpath, sizeof gpath, "%s/tests/data/model/golden_stories260k.safetensors",
             src_root());
    golden g;
    golden_open(gpath, &g);

    gptq_backend *be = NULL;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK);
    gptq_model *m = NULL;
    cr_assert_eq(gptq_model_open(dir, be, &m), GPTQ_OK, "%s", gptq_last_error());
    const int64_t S = g.S, V = g.V;
    cr_assert_eq(V, gptq_model_config_of(m)->vocab_size);
    float *logits = malloc((size_t)(S * V) * sizeof(float));
    double *nll = malloc((size_t)(S - 1) * sizeof(double));
    double nll_sum = 0.0;
    cr_assert_eq(gptq_model_forward(m, g.ids_short, 1, S, &nll_sum, nll, logits), GPTQ_OK, "%s",
                 gptq_last_error());

    double maxdiff = 0.0;
    int bad = 0;
    for (int64_t p = 0; p < g.P; p++)
        for (int64_t v = 0; v < V; v++) {
            double a = logits[(int64_t)g.pos[p] * V + v], b = g.logits[p * V + v];
            cr_assert(!isnan(a), "NaN logit at position %d, token %lld", g.pos[p], (long long)v);
            double dd = fabs(a - b);
            if (dd > maxdiff) maxdiff = dd;
            if (dd > LOGIT_ATOL + LOGIT_RTOL * fabs(b) && bad++ < 5)
                cr_log_error("position %d token %lld: %.7g vs transformers %.7g", g.pos[p],
                             (long long)v, a, b);
        }
    cr_log_info("stories-260k: %lld positions x %lld logits, max |diff| %.3g", (long long)g.P,
                (long long)V, maxdiff);
    cr_expect_eq(bad, 0, "%d logits outside the tolerance (max diff %.3g)", bad, maxdiff);
    double gsum = 0.0, maxn = 0.0;
    for (int64_t t = 0; t < S - 1; t++) {
        gsum += g.nll_short[t];
        double dd = fabs(nll[t] - g.nll_short[t]);
        if (dd > maxn) maxn = dd;
    }
    /* NLLs are differences of logits and logsumexps, which partly cancel the
     * logits' rounding: measured at most 4.7e-6 per token and 1.2e-8
     * relative on the sum; bounds ~10x those */
    cr_log_info("stories-260k: per-token NLL max diff %.3g, sum %.3g relative", maxn,
                fabs(nll_sum - gsum) / fabs(gsum));
    cr_expect_leq(maxn, 5e-5, "per-token NLL differs by %.3g", maxn);
    cr_expect_leq(fabs(nll_sum - gsum), 2e-7 * fabs(gsum), "NLL sum %.9g vs %.9g", nll_sum, gsum);
    free(logits);
    free(nll);
    gptq_model_close(m);
    gptq_backend_close(be);
    gptq_st_close(g.f);
}

Test(forward, same_bytes_for_any_thread_count, .timeout = 60)
{
    char dir[512];
    stories_dir(dir, sizeof dir);
    gptq_backend *be = NULL;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK);
    gptq_model *m = NULL;
    cr_assert_eq(gptq_model_open(dir, be, &m), GPTQ_OK, "%s", gptq_last_error());
    /* 2 sequences of 100 (attention tiles of 64 rows: a ragged last tile) */
    const int64_t nseq = 2, S = 100, V = gptq_model_config_of(m)->vocab_size;
    int32_t ids[200];
    for (int i = 0; i < 200; i++) ids[i] = (int32_t)((i * 37 + 11) % V);
    float *a = malloc((size_t)(nseq * S * V) * sizeof(float));
    float *b = malloc((size_t)(nseq * S * V) * sizeof(float));
    double na = 0, nb = 0;
    omp_set_num_threads(1);
    cr_assert_eq(gptq_model_forward(m, ids, nseq, S, &na, NULL, a), GPTQ_OK, "%s",
                 gptq_last_error());
    omp_set_num_threads(3);
    cr_assert_eq(gptq_model_forward(m, ids, nseq, S, &nb, NULL, b), GPTQ_OK, "%s",
                 gptq_last_error());
    cr_expect_eq(memcmp(a, b, (size_t)(nseq * S * V) * sizeof(float)), 0,
                 "logits differ between 1 and 3 threads");
    cr_expect_eq(memcmp(&na, &nb, sizeof na), 0, "NLL %.17g vs %.17g", na, nb);
    /* sequences are independent: the second alone gives its own rows */
    float *c = malloc((size_t)(S * V) * sizeof(float));
    double nc = 0;
    cr_assert_eq(gptq_model_forward(m, ids + S, 1, S, &nc, NULL, c), GPTQ_OK);
    double md = 0;
    for (int64_t i = 0; i < S * V; i++) md = fmax(md, fabs(c[i] - a[S * V + i]));
    /* not bytes: gemm tiles of a different M may sum in another order */
    cr_expect_leq(md, LOGIT_ATOL, "second sequence alone differs by %.3g", md);
    free(a);
    free(b);
    free(c);
    gptq_model_close(m);
    gptq_backend_close(be);
}

/* ------------------------------------------------------------------ */
/* per-layer API and hooks                                             */
/* ------------------------------------------------------------------ */

typedef struct {
    int calls[4];
    int64_t cols[4];
    int stop_at;  /* group to stop at, -1 never */
    gptq_model *m;
    int zero_group; /* group whose weights the hook zeroes, -1 none */
} hook_state;

static int test_hook(void *user, const gptq_hook_event *ev)
{
    hook_state *s = user;
    s->calls[ev->group]++;
    s->cols[ev->group] = ev->cols;
    /* every token reaches every module of a dense layer */
    if (ev->rows || ev->nrows != ev->T) return GPTQ_ERR_INVALID;
    if (ev->group == s->zero_group)
        for (int k = 0; k < ev->nlin; k++) {
            const int i = ev->lin[k];
            const gptq_linear_info *li = gptq_model_linear(s->m, ev->layer, i);
            float *z = calloc((size_t)(li->rows * li->cols), sizeof(float));
            int st = gptq_model_linear_set(s->m, ev->layer, i, z);
            free(z);
            if (st) return st;
        }
    return ev->group == s->stop_at ? GPTQ_HOOK_STOP : GPTQ_OK;
}

Test(layers, hooks_see_each_group_and_can_swap_weights, .timeout = 60)
{
    char dir[512];
    stories_dir(dir, sizeof dir);
    gptq_backend *be = NULL;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK);
    gptq_model *m = NULL;
    cr_assert_eq(gptq_model_open(dir, be, &m), GPTQ_OK, "%s", gptq_last_error());
    const gptq_model_config *c = gptq_model_config_of(m);
    cr_assert_eq(gptq_model_nlinear(m, 0), 7);
    cr_assert_eq(gptq_model_ngroups(m, 0), 4);
    cr_expect_eq(gptq_model_nlinear(m, (int)c->num_layers), 0, "no layer beyond the last");
    cr_expect_null(gptq_model_linear(m, -1, 0));
    cr_expect_null(gptq_model_linear(m, 0, 7));
    cr_expect_null(gptq_model_group(m, 0, 4));
    /* the groups name their modules: gate_up = {gate_proj, up_proj} */
    const gptq_group_info *gu = gptq_model_group(m, 4, 2);
    cr_assert_not_null(gu);
    cr_expect_str_eq(gu->name, "gate_up");
    cr_assert_eq(gu->nlin, 2);
    cr_expect_str_eq(gptq_model_linear(m, 4, gu->lin[0])->name, "mlp.gate_proj");
    cr_expect_str_eq(gptq_model_linear(m, 4, gu->lin[1])->name, "mlp.up_proj");
    char pfx[128];
    cr_assert_eq(gptq_model_linear_prefix(m, 2, 6, pfx, sizeof pfx), GPTQ_OK);
    cr_expect_str_eq(pfx, "model.layers.2.mlp.down_proj");

    const int64_t S = 16, D = c->hidden_size;
    int32_t ids[16];
    for (int i = 0; i < 16; i++) ids[i] = (int32_t)(i * 29 % c->vocab_size);
    gptq_buf *X = NULL, *Y = NULL, *Z = NULL;
    cr_assert_eq(gptq_model_alloc_hidden(m, 1, S, &X), GPTQ_OK);
    cr_assert_eq(gptq_model_alloc_hidden(m, 1, S, &Y), GPTQ_OK);
    cr_assert_eq(gptq_model_alloc_hidden(m, 1, S, &Z), GPTQ_OK);
    cr_assert_eq(gptq_model_embed(m, ids, 1, S, X), GPTQ_OK, "%s", gptq_last_error());

    hook_state hs = {.stop_at = -1, .m = m, .zero_group = -1};
    cr_assert_eq(gptq_model_layer_load(m, 0), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(gptq_model_layer_forward(m, 0, X, Y, 1, S, test_hook, &hs), GPTQ_OK, "%s",
                 gptq_last_error());
    for (int g = 0; g < 4; g++) cr_expect_eq(hs.calls[g], 1, "group %d called %d times", g, hs.calls[g]);
    cr_expect_eq(hs.cols[0], D);
    cr_expect_eq(hs.cols[1], c->num_heads * c->head_dim);
    cr_expect_eq(hs.cols[2], D);
    cr_expect_eq(hs.cols[3], c->intermediate_size);

    /* zeroing down_proj in the hook (group 3): the MLP adds nothing, so the
     * layer's output equals the attention residual h = x + attn, which a
     * hook-stop at group 2 leaves in Z (the forward writes X_out = h before
     * the MLP norm). */
    hook_state z = {.stop_at = -1, .m = m, .zero_group = 3};
    cr_assert_eq(gptq_model_layer_forward(m, 0, X, Y, 1, S, test_hook, &z), GPTQ_OK, "%s",
                 gptq_last_error());
    cr_assert_eq(gptq_model_layer_load(m, 0), GPTQ_OK); /* fresh weights again */
    hook_state st2 = {.stop_at = 2, .m = m, .zero_group = -1};
    cr_assert_eq(gptq_model_layer_forward(m, 0, X, Z, 1, S, test_hook, &st2), GPTQ_OK);
    cr_expect_eq(st2.calls[3], 0, "stopped at group 2: group 3 never called");
    float *y = malloc((size_t)(S * D) * 4), *zz = malloc((size_t)(S * D) * 4);
    cr_assert_eq(gptq_be_download(be, Y, 0, y, (size_t)(S * D) * 4), GPTQ_OK);
    cr_assert_eq(gptq_be_download(be, Z, 0, zz, (size_t)(S * D) * 4), GPTQ_OK);
    cr_expect_eq(memcmp(y, zz, (size_t)(S * D) * 4), 0, "zeroed down_proj: output != residual");

    /* linear_get returns what the checkpoint holds */
    const gptq_linear_info *q = gptq_model_linear(m, 0, 0);
    float *wq = malloc((size_t)(q->rows * q->cols) * 4), *ref = malloc((size_t)(q->rows * q->cols) * 4);
    cr_assert_eq(gptq_model_linear_get(m, 0, 0, wq), GPTQ_OK);
    int64_t shp[2] = {q->rows, q->cols};
    cr_assert_eq(gptq_weights_read_f32(gptq_model_weights(m), "model.layers.0.self_attn.q_proj.weight",
                                       2, shp, ref),
                 GPTQ_OK);
    cr_expect_eq(memcmp(wq, ref, (size_t)(q->rows * q->cols) * 4), 0);
    cr_expect_eq(gptq_model_linear_get(m, 1, 0, wq), GPTQ_ERR_INVALID, "layer 1 is not loaded");
    free(wq);
    free(ref);
    free(y);
    free(zz);
    gptq_be_free(be, X);
    gptq_be_free(be, Y);
    gptq_be_free(be, Z);
    gptq_model_close(m);
    gptq_backend_close(be);
}

/* An event for a subset of the tokens (a routed expert's) is refused by
 * the hooks that build Hessians over all rows, by name. */
Test(layers, hooks_refuse_a_token_subset)
{
    gptq_backend *be = NULL;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK);
    gptq_buf *rows = NULL;
    cr_assert_eq(gptq_be_alloc(be, 4 * sizeof(int32_t), &rows, "rows"), GPTQ_OK);
    gptq_hook_event ev = {.layer = 3, .group = 2, .group_name = "gate_up", .T = 16, .cols = 8,
                          .rows = NULL, .nrows = 16};
    cr_expect_eq(gptq_hook_all_rows(&ev), GPTQ_OK);
    ev.rows = rows;
    ev.nrows = 4;
    cr_assert_eq(gptq_hook_all_rows(&ev), GPTQ_ERR_UNSUPPORTED);
    cr_expect(strstr(gptq_last_error(), "layer 3, group gate_up: its modules see 4 of 16 tokens"),
              "%s", gptq_last_error());
    gptq_be_free(be, rows);
    gptq_backend_close(be);
}

/* ------------------------------------------------------------------ */
/* GPTQ checkpoints                                                    */
/* ------------------------------------------------------------------ */

/* Add a host tensor view (not owned) to a list for gptq_st_save. */
typedef struct tlist {
    int n;
    char names[256][128];
    const char *np[256];
    gptq_tensor t[256];
} tlist;

static void tl_add(tlist *l, const char *name, gptq_dtype dt, int nd, int64_t d0, int64_t d1,
                   void *data)
{
    cr_assert_lt(l->n, 256);
    snprintf(l->names[l->n], sizeof l->names[0], "%s", name);
    l->np[l->n] = l->names[l->n];
    gptq_tensor *t = &l->t[l->n++];
    memset(t, 0, sizeof *t);
    t->dtype = dt;
    t->ndim = nd;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->data = data;
}

/* stories-260k quantized with RTN 8-bit g32 asym (gptq_v2 zeros), written
 * as a GPTQ checkpoint (qweight/qzeros/scales/g_idx) and, beside it, as an
 * fp32 checkpoint of the dequantized weights. Reading the GPTQ one must give
 * the very same logits as the fp32 one (the loader's dequantization is
 * gptq_dequantize on the checkpoint's tensors), and both must stay close to
 * the original model (8 bits: a transposed or misgrouped tensor would not). */
Test(gptq_ckpt, reads_as_its_dequantized_weights, .timeout = 120)
{
    char sdir[512], qdir[64], fdir[64], path[600];
    stories_dir(sdir, sizeof sdir);
    make_tmpdir(qdir, sizeof qdir);
    make_tmpdir(fdir, sizeof fdir);
    gptq_backend *be = NULL;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK);
    gptq_model *m = NULL;
    cr_assert_eq(gptq_model_open(sdir, be, &m), GPTQ_OK, "%s", gptq_last_error());
    const gptq_model_config *c = gptq_model_config_of(m);
    gptq_weights *w = gptq_model_weights(m);

    static tlist ql, fl; /* big: not on the stack */
    ql.n = fl.n = 0;
    void *to_free[256];
    int nfree = 0;
    /* unquantized tensors: copied as f32 into both */
    for (int i = 0; i < gptq_weights_count(w); i++) {
        gptq_st_info info;
        cr_assert_eq(gptq_weights_get(w, i, &info), GPTQ_OK);
        if (strstr(info.name, "_proj.weight")) continue;
        float *d = malloc(info.nbytes);
        to_free[nfree++] = d;
        cr_assert_eq(gptq_weights_read_f32(w, info.name, info.ndim, info.shape, d), GPTQ_OK);
        tl_add(&ql, info.name, GPTQ_F32, info.ndim, info.shape[0], info.shape[1], d);
        tl_add(&fl, info.name, GPTQ_F32, info.ndim, info.shape[0], info.shape[1], d);
    }
    gptq_quant_config qc;
    gptq_quant_config_default(&qc);
    qc.bits = 8;
    qc.group_size = 32;
    qc.sym = 0;
    qc.method = GPTQ_METHOD_RTN;
    static gptq_packed pk[64];
    int npk = 0;
    for (int L = 0; L < c->num_layers; L++)
        for (int i = 0; i < gptq_model_nlinear(m, L); i++) {
            const gptq_linear_info *li = gptq_model_linear(m, L, i);
            char pfx[256], name[300];
            cr_assert_eq(gptq_model_linear_prefix(m, L, i, pfx, sizeof pfx), GPTQ_OK);
            float *W = malloc((size_t)(li->rows * li->cols) * 4);
            int64_t shp[2] = {li->rows, li->cols};
            snprintf(name, sizeof name, "%s.weight", pfx);
            cr_assert_eq(gptq_weights_read_f32(w, name, 2, shp, W), GPTQ_OK);
            gptq_layer_result res;
            memset(&res, 0, sizeof res);
            cr_assert_eq(gptq_quantize_layer(be, W, li->rows, li->cols, NULL, &qc, &res), GPTQ_OK,
                         "%s: %s", pfx, gptq_last_error());
            gptq_packed *p = &pk[npk++];
            cr_assert_eq(gptq_pack(&res, GPTQ_FORMAT_V2, p), GPTQ_OK, "%s", gptq_last_error());
            gptq_layer_result_free(&res);
            cr_assert_eq(gptq_dequantize(p, GPTQ_FORMAT_V2, W), GPTQ_OK);
            to_free[nfree++] = W;
            tl_add(&fl, name, GPTQ_F32, 2, li->rows, li->cols, W);
            snprintf(name, sizeof name, "%s.qweight", pfx);
            tl_add(&ql, name, GPTQ_I32, 2, li->cols * 8 / 32, li->rows, p->qweight);
            snprintf(name, sizeof name, "%s.qzeros", pfx);
            tl_add(&ql, name, GPTQ_I32, 2, p->ngroups, li->rows * 8 / 32, p->qzeros);
            snprintf(name, sizeof name, "%s.scales", pfx);
            tl_add(&ql, name, GPTQ_F16, 2, p->ngroups, li->rows, p->scales);
            snprintf(name, sizeof name, "%s.g_idx", pfx);
            tl_add(&ql, name, GPTQ_I32, 1, li->cols, 0, p->g_idx);
        }
    snprintf(path, sizeof path, "%s/model.safetensors", qdir);
    cr_assert_eq(gptq_st_save(path, ql.n, ql.np, ql.t), GPTQ_OK, "%s", gptq_last_error());
    snprintf(path, sizeof path, "%s/model.safetensors", fdir);
    cr_assert_eq(gptq_st_save(path, fl.n, fl.np, fl.t), GPTQ_OK, "%s", gptq_last_error());

    /* configs: the original plus quantization_config (synonyms on purpose) */
    char cpath[600];
    snprintf(cpath, sizeof cpath, "%s/config.json", sdir);
    cJSON *root = NULL;
    cr_assert_eq(gptq_json_read_file(cpath, &root), GPTQ_OK);
    char *plain = cJSON_Print(root);
    snprintf(path, sizeof path, "%s/config.json", fdir);
    write_file(path, plain);
    cJSON *q = cJSON_CreateObject();
    cJSON_AddStringToObject(q, "quant_method", "gptq");
    cJSON_AddNumberToObject(q, "wbits", 8);
    cJSON_AddNumberToObject(q, "group_size", 32);
    cJSON_AddBoolToObject(q, "zero_point", 1);
    cJSON_AddStringToObject(q, "checkpoint_format", "gptq_v2");
    cJSON_AddItemToObject(root, "quantization_config", q);
    char *quant = cJSON_Print(root);
    snprintf(path, sizeof path, "%s/config.json", qdir);
    write_file(path, quant);
    free(plain);
    free(quant);
    cJSON_Delete(root);

    /* forward all three on the same tokens */
    const int64_t S = 48, V = c->vocab_size;
    int32_t ids[48];
    for (int i = 0; i < S; i++) ids[i] = (int32_t)((i * 53 + 7) % V);
    float *lq = malloc((size_t)(S * V) * 4), *lf = malloc((size_t)(S * V) * 4);
    double nq = 0, nf = 0, n0 = 0;
    gptq_model *mq = NULL, *mf = NULL;
    cr_assert_eq(gptq_model_open(qdir, be, &mq), GPTQ_OK, "%s", gptq_last_error());
    cr_expect_eq(gptq_model_config_of(mq)->quant.format, GPTQ_FORMAT_V2);
    cr_assert_eq(gptq_model_forward(mq, ids, 1, S, &nq, NULL, lq), GPTQ_OK, "%s",
                 gptq_last_error());
    cr_assert_eq(gptq_model_open(fdir, be, &mf), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(gptq_model_forward(mf, ids, 1, S, &nf, NULL, lf), GPTQ_OK, "%s",
                 gptq_last_error());
    cr_assert_eq(gptq_model_forward(m, ids, 1, S, &n0, NULL, NULL), GPTQ_OK);
    cr_expect_eq(memcmp(lq, lf, (size_t)(S * V) * 4), 0,
                 "GPTQ checkpoint logits differ from its dequantized fp32 twin");
    /* 8-bit RTN g32 moves the mean NLL on these tokens by 0.12% (measured:
     * 17.5225 vs 17.5432); 0.3% allows other rounding of the same weights,
     * not a wrong scale, zero or group (a misplaced 8-bit group moves it by
     * far more) */
    cr_expect_leq(fabs(nq - n0) / n0, 0.003, "NLL %.6f (8-bit) vs %.6f (fp)", nq / (S - 1),
                  n0 / (S - 1));
    cr_log_info("8-bit RTN g32 checkpoint: mean NLL %.6f vs fp %.6f", nq / (S - 1), n0 / (S - 1));

    gptq_model_close(mq);
    free(lq);
    free(lf);
    gptq_model_close(mf);
    for (int i = 0; i < npk; i++) gptq_packed_free(&pk[i]);
    for (int i = 0; i < nfree; i++) free(to_free[i]);
    gptq_model_close(m);
    gptq_backend_close(be);
    rm_tree(qdir);
    rm_tree(fdir);
}

/* Causality across attention tiles (64 query rows each): the NLLs of the
 * first 200 tokens of a 300-token sequence equal those of the 200-token
 * sequence alone (4 tiles, the last one ragged). A mask or tile-offset error lets later keys leak into
 * earlier rows and changes them by far more than the tolerance (which only
 * allows for gemm tiles of another shape summing in another order). */
Test(forward, causal_across_attention_tiles, .timeout = 60)
{
    char dir[512];
    stories_dir(dir, sizeof dir);
    gptq_backend *be = NULL;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK);
    gptq_model *m = NULL;
    cr_assert_eq(gptq_model_open(dir, be, &m), GPTQ_OK, "%s", gptq_last_error());
    const int64_t V = gptq_model_config_of(m)->vocab_size;
    int32_t ids[300];
    for (int i = 0; i < 300; i++) ids[i] = (int32_t)((i * 71 + 5) % V);
    double long_nll[299], short_nll[199], s1 = 0, s2 = 0;
    cr_assert_eq(gptq_model_forward(m, ids, 1, 300, &s1, long_nll, NULL), GPTQ_OK, "%s",
                 gptq_last_error());
    cr_assert_eq(gptq_model_forward(m, ids, 1, 200, &s2, short_nll, NULL), GPTQ_OK, "%s",
                 gptq_last_error());
    double md = 0;
    for (int i = 0; i < 199; i++) md = fmax(md, fabs(long_nll[i] - short_nll[i]));
    /* only the attention tiles' sum order differs: measured 7.7e-6 */
    cr_log_info("causal: first 199 NLLs differ by %.3g between S = 300 and S = 200", md);
    cr_expect_leq(md, 1e-5, "first 199 NLLs differ by %.3g between S = 300 and S = 200", md);
    gptq_model_close(m);
    gptq_backend_close(be);
}

/* Older GPTQ checkpoints keep their settings only in quantize_config.json. */
Test(config, quantize_config_json_beside)
{
    char dir[64], path[512];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_file(path, k_tiny_llama);
    gptq_model_config c;
    cr_assert_eq(gptq_model_config_load(dir, &c), GPTQ_OK, "%s", gptq_last_error());
    cr_expect_eq(c.quant.present, 0);
    snprintf(path, sizeof path, "%s/quantize_config.json", dir);
    write_file(path, "{\"bits\": 4, \"group_size\": 128, \"desc_act\": true, \"sym\": true}");
    cr_assert_eq(gptq_model_config_load(dir, &c), GPTQ_OK, "%s", gptq_last_error());
    cr_expect_eq(c.quant.present, 1);
    cr_expect_eq(c.quant.bits, 4);
    cr_expect_eq(c.quant.desc_act, 1);
    cr_expect_eq(c.quant.format, GPTQ_FORMAT_V1, "checkpoint_format defaults to gptq (v1)");
    write_file(path, "{\"bits\": 4, \"group_size\": \"x\"}");
    cr_expect_eq(gptq_model_config_load(dir, &c), GPTQ_ERR_FORMAT);
    cr_expect(strstr(gptq_last_error(), "quantize_config.json"), "%s", gptq_last_error());
    cr_expect(strstr(gptq_last_error(), "group_size"), "%s", gptq_last_error());
    rm_tree(dir);
}

/* Every size is bounded by key, and the products that size a tensor too,
 * before anything is allocated; the largest values in use pass. */
/* A Llama config of the given sizes (as JSON text) plus extra members. */
static void expect_llama(const char *vocab, const char *hidden, const char *layers,
                         const char *heads, const char *inter, const char *extra,
                         const char *needle1, const char *needle2)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": %s, \"hidden_size\": %s,"
             " \"num_hidden_layers\": %s, \"num_attention_heads\": %s, \"intermediate_size\": %s"
             "%s}",
             vocab, hidden, layers, heads, inter, extra);
    expect_error(json, GPTQ_ERR_FORMAT, needle1, needle2);
}

Test(config, sizes_bounded_by_key_and_product)
{
    expect_llama("10", "8", "1e9", "2", "8", "", "\"num_hidden_layers\" = 1000000000 is out of range",
                 "1 .. 1024");
    expect_llama("2147483647", "8", "1", "2", "8", "", "\"vocab_size\" = 2147483647 is out of range",
                 "1 .. 16777216");
    expect_llama("10", "262144", "1", "2", "8", "", "\"hidden_size\" = 262144 is out of range", NULL);
    expect_llama("10", "8", "1", "2", "2097152", "", "\"intermediate_size\" = 2097152", NULL);
    expect_llama("10", "8", "1", "8192", "8", "", "\"num_attention_heads\" = 8192", NULL);
    expect_llama("10", "8", "1", "2", "8", ", \"num_key_value_heads\": 0",
                 "\"num_key_value_heads\" = 0 is out of range", NULL);
    expect_llama("10", "8", "1", "2", "8", ", \"head_dim\": 8192", "\"head_dim\" = 8192 is out of range",
                 NULL);
    expect_llama("10", "8", "1", "2", "8", ", \"head_dim\": -4", "\"head_dim\" = -4 is out of range",
                 NULL);
    expect_llama("10", "8", "1", "2", "8", ", \"max_position_embeddings\": 1e12",
                 "\"max_position_embeddings\" = 1000000000000", NULL);
    /* each within its bound, the product not */
    expect_llama("16777216", "131072", "1", "2", "8", "", "vocab_size x hidden_size",
                 "2199023255552");
    expect_llama("10", "131072", "1", "4096", "8", ", \"head_dim\": 4096",
                 "num_attention_heads x head_dim x hidden_size", NULL);
    expect_llama("10", "131072", "1", "2", "1048576", "", "intermediate_size x hidden_size (the MLP)",
                 NULL);
    expect_llama("10", "131072", "1024", "2", "131072", "", "num_hidden_layers 1024 x", "2^41");
    expect_error("{\"architectures\": [\"OPTForCausalLM\"], \"vocab_size\": 10, \"hidden_size\": "
                 "131072, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"ffn_dim\": 8,"
                 " \"max_position_embeddings\": 268435456}",
                 GPTQ_ERR_FORMAT, "(max_position_embeddings + 2) x hidden_size", NULL);
    /* Llama 3 405B's sizes parse */
    gptq_model_config c;
    cr_assert_eq(syn_parse("{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 128256,"
                           " \"hidden_size\": 16384, \"num_hidden_layers\": 126,"
                           " \"num_attention_heads\": 128, \"num_key_value_heads\": 8,"
                           " \"intermediate_size\": 53248, \"max_position_embeddings\": 131072}",
                           &c),
                 GPTQ_OK, "%s", gptq_last_error());
    cr_expect_eq(c.num_layers, 126);
}

/* Only the quantization settings of a folder, for a checkpoint shard:
 * config.json's quantization_config, else quantize_config.json, without
 * parsing the rest of config.json. */
Test(config, ckpt_quant_load)
{
    char dir[64], path[512];
    make_tmpdir(dir, sizeof dir);
    gptq_ckpt_quant q;
    cr_assert_eq(gptq_ckpt_quant_load(dir, &q), GPTQ_OK, "%s", gptq_last_error());
    cr_expect_eq(q.present, 0);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_file(path, "{\"architectures\": [\"Nothing\"], \"quantization_config\": "
                     "{\"bits\": 3, \"group_size\": 64, \"sym\": false}}");
    cr_assert_eq(gptq_ckpt_quant_load(dir, &q), GPTQ_OK, "%s", gptq_last_error());
    cr_expect(q.present && q.bits == 3 && q.group_size == 64 && !q.sym);
    write_file(path, "{\"architectures\": [\"Nothing\"]}");
    snprintf(path, sizeof path, "%s/quantize_config.json", dir);
    write_file(path, "{\"bits\": 8, \"group_size\": -1}");
    cr_assert_eq(gptq_ckpt_quant_load(dir, &q), GPTQ_OK, "%s", gptq_last_error());
    cr_expect(q.present && q.bits == 8 && q.group_size == -1);
    write_file(path, "{\"bits\": 8, \"bits\": 4}");
    cr_expect_eq(gptq_ckpt_quant_load(dir, &q), GPTQ_ERR_FORMAT);
    cr_expect(strstr(gptq_last_error(), "quantize_config.json: duplicate key \"bits\""), "%s",
              gptq_last_error());
    /* a FIFO at the name is refused, not waited on nor skipped */
    unlink(path);
    cr_assert_eq(mkfifo(path, 0644), 0);
    cr_expect_eq(gptq_ckpt_quant_load(dir, &q), GPTQ_ERR_IO);
    cr_expect(strstr(gptq_last_error(), "not a regular file (a FIFO)"), "%s", gptq_last_error());
    rm_tree(dir);
}

/* gptq_model_open checks every tensor before any work: shapes printed as
 * shapes, dtypes, and no layer beyond num_hidden_layers. */
Test(weights, model_open_checks_completeness)
{
    char dir[64], path[512];
    make_tmpdir(dir, sizeof dir);
    gptq_backend *be = NULL;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK);
    gptq_model *m = NULL;
    /* the complete model opens */
    write_tiny_llama(dir, NULL);
    cr_assert_eq(gptq_model_open(dir, be, &m), GPTQ_OK, "%s", gptq_last_error());
    gptq_model_close(m);
    m = NULL;
    const char *drops[] = {"model.norm.weight", "model.embed_tokens.weight",
                           "model.layers.0.input_layernorm.weight"};
    for (int i = 0; i < 3; i++) {
        write_tiny_llama(dir, drops[i]);
        cr_expect_eq(gptq_model_open(dir, be, &m), GPTQ_ERR_FORMAT, "%s", drops[i]);
        cr_expect_null(m);
        cr_expect(strstr(gptq_last_error(), drops[i]), "%s", gptq_last_error());
    }
    /* untied: lm_head is needed */
    write_tiny_llama(dir, NULL);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_file(path, "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 16,"
                     " \"intermediate_size\": 24, \"num_hidden_layers\": 1,"
                     " \"num_attention_heads\": 2, \"num_key_value_heads\": 1,"
                     " \"vocab_size\": 32, \"tie_word_embeddings\": false}");
    cr_expect_eq(gptq_model_open(dir, be, &m), GPTQ_ERR_FORMAT);
    cr_expect(strstr(gptq_last_error(), "'lm_head.weight' not found"), "%s", gptq_last_error());
    /* a tensor of layer 1 in a model whose config has one layer */
    write_file(path, k_tiny_llama);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    gptq_st_file *f;
    cr_assert_eq(gptq_st_open(path, &f), GPTQ_OK);
    int n = gptq_st_count(f);
    const char *names[32];
    gptq_tensor t[32];
    char extra[] = "model.layers.1.input_layernorm.weight";
    for (int i = 0; i < n; i++) {
        gptq_st_info info;
        cr_assert_eq(gptq_st_get(f, i, &info), GPTQ_OK);
        names[i] = info.name;
        t[i] = (gptq_tensor){.dtype = info.dtype, .ndim = info.ndim, .data = (void *)info.data};
        for (int d = 0; d < info.ndim; d++) t[i].shape[d] = info.shape[d];
        if (!strcmp(info.name, "model.layers.0.input_layernorm.weight")) {
            names[n] = extra;
            t[n] = t[i];
        }
    }
    char path2[512];
    snprintf(path2, sizeof path2, "%s/model2.safetensors", dir);
    cr_assert_eq(gptq_st_save(path2, n + 1, names, t), GPTQ_OK, "%s", gptq_last_error());
    gptq_st_close(f);
    cr_assert_eq(rename(path2, path), 0);
    cr_expect_eq(gptq_model_open(dir, be, &m), GPTQ_ERR_FORMAT);
    cr_expect(strstr(gptq_last_error(), "'model.layers.1.input_layernorm.weight' belongs to "
                                        "layer 1, but config.json has num_hidden_layers = 1"),
              "%s", gptq_last_error());
    gptq_backend_close(be);
    rm_tree(dir);
}

/* ------------------------------------------------------------------ */
/* Inputs the fuzzers found (tests/fuzz: fuzz_config, fuzz_checkpoint) */
/* ------------------------------------------------------------------ */

/* head_dim had no upper bound: 2^32 passed, and the forward's
 * num_heads * head_dim could overflow 64 bits. It is now capped like every
 * size key (config.c's bounds table: 1 .. 4096). */
Test(config, fuzz_head_dim_bounded)
{
    expect_error("{" LLAMA_BASE ", \"head_dim\": 4294967296}", GPTQ_ERR_FORMAT, "head_dim",
                 "1 .. 4096");
    gptq_model_config c;
    cr_assert_eq(syn_parse("{" LLAMA_BASE ", \"head_dim\": 4096}", &c), GPTQ_OK, "%s",
                 gptq_last_error());
    cr_expect_eq(c.head_dim, 4096);
}
