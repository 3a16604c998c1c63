/*
 * test_permodule.c — per-module control of `gptq quantize` (issue 11):
 * a module whose shape the format cannot pack is left in the model's dtype,
 * noted, and listed in quantization_config "dynamic" as GPTQModel records a
 * skipped module ("-:<regex>": {}); --strict makes it an error; eval reads
 * the mixed checkpoint back. --lm-head quantizes the lm_head too (a tied one
 * is refused, as GPTQModel refuses it). --dynamic gives modules their own
 * bits / groups or skips them, as GPTQModel's dynamic does.
 *
 * The model is the bundled stories-260k (tests/data/model: fp32, its MLP
 * 172 wide, which 4 bits cannot pack: 172 is not a multiple of 8).
 */
#include "cli_checks.h"

static char g_dir[512];

static void setup(void) { ch_mkdtemp(g_dir, "permod"); }
static void teardown(void) { ch_rm_tree(g_dir); }

TestSuite(permodule, .init = setup, .fini = teardown, .timeout = 180);

static char *at(char *buf, const char *name) { return ch_join(buf, g_dir, name); }

static void stories(char *model, char *text)
{
    snprintf(model, 1024, "%s/tests/data/model/stories-260k", ch_source_root());
    snprintf(text, 1024, "%s/tests/data/model/tinystories-slice.txt", ch_source_root());
}

/* GPTQ at 4 bits: the 15 MLP linears (5 layers x gate/up/down) stay fp32,
 * each named in a note on stderr and in "dynamic"; the 20 attention
 * linears are packed. */
Test(permodule, unpackable_modules_left_unquantized)
{
    char model[1024], text[1024], out[1024], cfgp[1024], name[256];
    stories(model, text);
    cli_result r;
    cc_ok(&r, "quantize", model, "-o", at(out, "q4"), "--calib", text, "--nsamples", "8",
          "--seqlen", "128");
    cr_assert(strstr(r.err, "model.layers.0.mlp.gate_proj: left unquantized"), "%s", r.err);
    cr_assert(strstr(r.err, "model.layers.4.mlp.down_proj: left unquantized"), "%s", r.err);
    cr_assert(strstr(r.out, "quantized 20 linear modules"), "%s", r.out);
    cr_assert(strstr(r.out, "skipped: 15 linear modules"), "%s", r.out);
    ch_result_free(&r);

    cJSON *cfg = cc_json_file(ch_join(cfgp, out, "config.json"));
    const cJSON *qc = cJSON_GetObjectItemCaseSensitive(cfg, "quantization_config");
    const cJSON *dyn = cJSON_GetObjectItemCaseSensitive(qc, "dynamic");
    cr_assert(cJSON_IsObject(dyn), "no quantization_config.dynamic");
    cr_assert_eq(cJSON_GetArraySize(dyn), 15);
    const char *mods[3] = {"gate_proj", "up_proj", "down_proj"};
    for (int L = 0; L < 5; L++)
        for (int k = 0; k < 3; k++) {
            snprintf(name, sizeof name, "-:model\\.layers\\.%d\\.mlp\\.%s$", L, mods[k]);
            const cJSON *rule = cJSON_GetObjectItemCaseSensitive(dyn, name);
            cr_assert(cJSON_IsObject(rule) && !rule->child, "no empty rule %s", name);
        }
    cJSON_Delete(cfg);

    gptq_st_file *f = cc_open_st(out);
    gptq_st_info i = cc_tensor(f, "model.layers.2.mlp.gate_proj.weight");
    cr_assert_eq(i.dtype, GPTQ_F32, "the skipped module kept its dtype");
    cr_assert(i.shape[0] == 172 && i.shape[1] == 64);
    cr_assert_neq(gptq_st_find(f, "model.layers.2.mlp.gate_proj.qweight", &i), GPTQ_OK);
    i = cc_tensor(f, "model.layers.2.self_attn.q_proj.qweight");
    cr_assert(i.shape[0] == 64 * 4 / 32 && i.shape[1] == 64);
    gptq_st_close(f);

    /* eval loads the float MLP and dequantizes the attention. 4-bit
     * attention alone moves this model's perplexity by ~3% (measured: fp
     * 3.789, mixed 3.903 on the slice, 512-token windows); 10% leaves room
     * for float rounding across BLAS builds and catches a module read
     * wrongly (that gives many times fp) */
    const cc_ppl fp = cc_eval(model, text, 128, 8), q = cc_eval(out, text, 128, 8);
    cr_log_info("stories-260k attention at 4 bits: fp %.4f, mixed %.4f", fp.ppl, q.ppl);
    cr_assert(fabs(q.ppl - fp.ppl) < 0.10 * fp.ppl, "fp %.4f, mixed %.4f", fp.ppl, q.ppl);
}

/* --strict: the first unpackable module fails the run as before, with
 * nothing written. */
Test(permodule, strict_refuses_unpackable)
{
    char model[1024], text[1024], out[1024];
    stories(model, text);
    cli_result r;
    ch_run(&r, 120.0, "quantize", model, "-o", at(out, "q4"), "--method", "rtn", "--strict",
           NULL);
    ch_expect(&r, 1, "mlp.gate_proj: 172 x 64 (out x in): 4-bit packing needs both");
    cr_assert(access(out, F_OK) != 0, "a failed run left %s", out);
    ch_result_free(&r);
}

/* RTN takes the same path: skipped modules are not solved, not written
 * packed, and no qzeros is declared for them. */
Test(permodule, rtn_skips_too)
{
    char model[1024], text[1024], out[1024];
    stories(model, text);
    cli_result r;
    cc_ok(&r, "quantize", model, "-o", at(out, "r4"), "--method", "rtn", "--quiet");
    cr_assert(!strstr(r.err, "left unquantized"), "--quiet prints no notes: %s", r.err);
    ch_result_free(&r);
    gptq_st_file *f = cc_open_st(out);
    gptq_st_info i;
    cr_assert_neq(gptq_st_find(f, "model.layers.0.mlp.down_proj.qzeros", &i), GPTQ_OK);
    i = cc_tensor(f, "model.layers.0.mlp.down_proj.weight");
    cr_assert(i.shape[0] == 64 && i.shape[1] == 172);
    i = cc_tensor(f, "model.layers.0.self_attn.o_proj.qzeros");
    gptq_st_close(f);
    const cc_ppl q = cc_eval(out, text, 128, 8);
    cr_assert(isfinite(q.ppl) && q.ppl > 1.0, "ppl %.4f", q.ppl);
}

/* --lm-head on data/tiny-llama (untied, bf16): lm_head written as GPTQModel
 * writes it (lm_head.qweight/qzeros/scales/g_idx, no lm_head.weight,
 * "lm_head": true), and eval reads it back through the head path. */
Test(permodule, lm_head_quantized_and_read_back)
{
    char model[1024], calib[1024], text[1024], out[1024], cfgp[1024];
    cc_data(model, "tiny-llama");
    cc_data(calib, "text/calib.txt");
    cc_data(text, "text/eval.txt");
    cli_result r;
    cc_ok(&r, "quantize", model, "-o", at(out, "qh"), "--calib", calib, "--nsamples", "16",
          "--seqlen", "128", "--lm-head");
    cr_assert(strstr(r.out, " head  lm_head "), "no table row for the head: %s", r.out);
    cr_assert(strstr(r.out, "quantized 22 linear modules"), "%s", r.out);
    ch_result_free(&r);
    cJSON *cfg = cc_json_file(ch_join(cfgp, out, "config.json"));
    cr_assert(cc_bool(cJSON_GetObjectItemCaseSensitive(cfg, "quantization_config"), "lm_head"));
    cJSON_Delete(cfg);
    gptq_st_file *f = cc_open_st(out);
    gptq_st_info i = cc_tensor(f, "lm_head.qweight"); /* (K*4/32, N) = (32, 1536) */
    cr_assert(i.dtype == GPTQ_I32 && i.shape[0] == 32 && i.shape[1] == 1536);
    i = cc_tensor(f, "lm_head.qzeros"); /* (K/128, N*4/32) */
    cr_assert(i.shape[0] == 2 && i.shape[1] == 192);
    i = cc_tensor(f, "lm_head.scales");
    cr_assert(i.dtype == GPTQ_F16 && i.shape[0] == 2 && i.shape[1] == 1536);
    i = cc_tensor(f, "lm_head.g_idx");
    cr_assert(i.shape[0] == 256);
    cr_assert_neq(gptq_st_find(f, "lm_head.weight", &i), GPTQ_OK, "lm_head.weight was kept");
    i = cc_tensor(f, "model.embed_tokens.weight");
    cr_assert_eq(i.dtype, GPTQ_BF16, "embed_tokens keeps its dtype");
    gptq_st_close(f);
    /* eval can only run by dequantizing lm_head.q* (there is no
     * lm_head.weight). Measured: fp 62.848, every linear and the head at 4
     * bits 62.928 (+0.13%) on the whole eval text; this tiny model's
     * perplexity barely moves with 4-bit weights, so 2% catches a head read
     * wrongly (a wrong bit order or scale gives a perplexity many times fp) */
    const cc_ppl fp = cc_eval(model, text, 128, 64), q = cc_eval(out, text, 128, 64);
    cr_log_info("tiny-llama with --lm-head: fp %.4f, quantized %.4f", fp.ppl, q.ppl);
    cr_assert(fabs(q.ppl - fp.ppl) < 0.02 * fp.ppl, "fp %.4f, with lm_head %.4f", fp.ppl, q.ppl);
}

/* A tied lm_head is refused, as GPTQModel refuses it (NotImplementedError:
 * tied_weights=True), before anything is written. */
Test(permodule, lm_head_tied_refused)
{
    char model[1024], text[1024], out[1024];
    stories(model, text);
    cli_result r;
    ch_run(&r, 120.0, "quantize", model, "-o", at(out, "qt"), "--method", "rtn", "--lm-head",
           NULL);
    ch_expect(&r, 1, "--lm-head:");
    cr_assert(strstr(r.err, "tie_word_embeddings"), "%s", r.err);
    cr_assert(access(out, F_OK) != 0, "a refused run left %s", out);
    ch_result_free(&r);
}

/* RTN --lm-head: no calibration, the head packed all the same. */
Test(permodule, lm_head_rtn)
{
    char model[1024], out[1024];
    cc_data(model, "tiny-llama");
    cli_result r;
    cc_ok(&r, "quantize", model, "-o", at(out, "qr"), "--method", "rtn", "--lm-head", "--quiet");
    ch_result_free(&r);
    gptq_st_file *f = cc_open_st(out);
    gptq_st_info i = cc_tensor(f, "lm_head.qzeros");
    cr_assert(i.shape[0] == 2 && i.shape[1] == 192);
    gptq_st_close(f);
}

/* --dynamic on data/tiny-llama: layer 0 at 8 bits with groups of 64, layer
 * 1's MLP skipped, layer 2 as the options say (4 bits, groups of 128). The
 * rules are written into quantization_config "dynamic" as given (GPTQModel
 * writes its dynamic dict as the user gave it), and eval reads the mixed
 * checkpoint: each module with its own bits and groups. */
Test(permodule, dynamic_rules_written_and_read_back)
{
    char model[1024], calib[1024], text[1024], out[1024], cfgp[1024];
    cc_data(model, "tiny-llama");
    cc_data(calib, "text/calib.txt");
    cc_data(text, "text/eval.txt");
    const char *rules = "{\"-:model\\\\.layers\\\\.1\\\\.mlp\\\\.\": {}, "
                        "\"+:model\\\\.layers\\\\.0\\\\.\": {\"bits\": 8, \"group_size\": 64}}";
    cli_result r;
    cc_ok(&r, "quantize", model, "-o", at(out, "qd"), "--calib", calib, "--nsamples", "16",
          "--seqlen", "128", "--dynamic", rules);
    cr_assert(strstr(r.err, "model.layers.1.mlp.up_proj: left unquantized in the model's dtype "
                            "(--dynamic rule \"-:model\\.layers\\.1\\.mlp\\.\")"), "%s", r.err);
    cr_assert(!strstr(r.err, "model.layers.1.self_attn"), "%s", r.err);
    cr_assert(strstr(r.out, "quantized 18 linear modules"), "%s", r.out);
    ch_result_free(&r);

    cJSON *cfg = cc_json_file(ch_join(cfgp, out, "config.json"));
    const cJSON *qc = cJSON_GetObjectItemCaseSensitive(cfg, "quantization_config");
    char *dyn = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(qc, "dynamic"));
    cr_assert_str_eq(dyn, "{\"-:model\\\\.layers\\\\.1\\\\.mlp\\\\.\":{},"
                          "\"+:model\\\\.layers\\\\.0\\\\.\":{\"bits\":8,\"group_size\":64}}");
    free(dyn);
    cr_assert_eq(cc_num(qc, "bits"), 4);
    cJSON_Delete(cfg);

    gptq_st_file *f = cc_open_st(out);
    gptq_st_info i = cc_tensor(f, "model.layers.0.mlp.down_proj.qweight"); /* (384*8/32, 256) */
    cr_assert(i.shape[0] == 96 && i.shape[1] == 256, "(%lld, %lld)", (long long)i.shape[0],
              (long long)i.shape[1]);
    i = cc_tensor(f, "model.layers.0.mlp.down_proj.scales"); /* (384/64, 256) */
    cr_assert(i.shape[0] == 6 && i.shape[1] == 256);
    i = cc_tensor(f, "model.layers.0.mlp.down_proj.qzeros"); /* (6, 256*8/32) */
    cr_assert(i.shape[0] == 6 && i.shape[1] == 64);
    i = cc_tensor(f, "model.layers.1.mlp.gate_proj.weight");
    cr_assert_eq(i.dtype, GPTQ_BF16);
    cr_assert_neq(gptq_st_find(f, "model.layers.1.mlp.gate_proj.qweight", &i), GPTQ_OK);
    i = cc_tensor(f, "model.layers.1.self_attn.q_proj.qweight"); /* 4 bits: (256*4/32, 256) */
    cr_assert(i.shape[0] == 32);
    i = cc_tensor(f, "model.layers.2.mlp.down_proj.scales"); /* groups of 128: 3 */
    cr_assert(i.shape[0] == 3);
    gptq_st_close(f);

    /* measured: fp 57.925, mixed 57.945 (+0.04%) on 64 windows of 128; the
     * bound as in lm_head_quantized_and_read_back: an 8-bit module read as
     * 4 bits fails to load, one read with wrong groups gives many times fp */
    const cc_ppl fp = cc_eval(model, text, 128, 64), q = cc_eval(out, text, 128, 64);
    cr_log_info("tiny-llama with --dynamic: fp %.4f, mixed %.4f", fp.ppl, q.ppl);
    cr_assert(fabs(q.ppl - fp.ppl) < 0.02 * fp.ppl, "fp %.4f, mixed %.4f", fp.ppl, q.ppl);

    /* the reference matmul of the 8-bit module reads its own bits */
    char x[1024], y[1024];
    ch_sh("cd '%s' && python3 -c \"import struct,json; h=json.dumps({'X':{'dtype':'F32',"
          "'shape':[2,384],'data_offsets':[0,3072]}}).encode(); h+=b' '*(-len(h)%%8); "
          "open('x.safetensors','wb').write(struct.pack('<Q',len(h))+h+struct.pack('<768f',"
          "*[(k%%7-3)/4 for k in range(768)]))\"", g_dir);
    cc_ok(&r, "matmul", out, "--module", "model.layers.0.mlp.down_proj", "-x",
          ch_join(x, g_dir, "x.safetensors"), "-o", ch_join(y, g_dir, "y.safetensors"));
    cr_assert(strstr(r.out, ": 8-bit gptq"), "the module's own bits: %s", r.out);
    ch_result_free(&r);
}
