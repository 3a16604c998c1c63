/*
 * test_cli_inspect_ct.c — `gptq inspect` on compressed-tensors checkpoints
 * (issue 13), through the built gptq (tests/cli_harness.h):
 *   - the format facts: bits, strategy, sym, actorder, the ignore list, the
 *     modules, bits per weight (recomputed here from the tensors' sizes);
 *   - each vLLM WNA16 kernel's verdict with its reason, on checkpoints that
 *     set each condition apart: asym 4-bit g64 (ExLlama: no zero points;
 *     Conch: group 64), sym 8-bit per channel (Triton: 4-bit only;
 *     llama.cpp's converter: strategy group only), asym 8-bit (Marlin: uint4
 *     only with zero points), a bf16 against a float16 config (ExLlama);
 *   - the kernel vLLM picks per platform, and "none" where none runs;
 *   - GPTQ-only loaders say "not this format";
 *   - stories-260k (shared): in_features 64 below Marlin's tile, and the
 *     modules the format cannot pack counted as left out by ignore;
 *   - --json carries the same verdicts and picks; the gptq_v2 twin still
 *     gets the GPTQ table (both formats).
 * Bad inputs: test_hostile_input.c, section "ecogaps".
 */
#include "cli_checks.h"

CC_SCRATCH_DIR("cliict")

TestSuite(cli_inspect_ct, .init = setup, .fini = teardown, .timeout = 240);

/* tiny-llama quantized with RTN and args..., as compressed-tensors, in out */
#define ct_quantize(out, ...)                                                                  \
    do {                                                                                       \
        char m_[1024];                                                                         \
        cli_result r_;                                                                         \
        cc_ok(&r_, "quantize", cc_data(m_, "tiny-llama"), "-o", out, "--method", "rtn",        \
              "--quiet", "--format", "compressed-tensors", __VA_ARGS__);                       \
        ch_result_free(&r_);                                                                   \
    } while (0)

/* The line of engine `name` in the engines section and the lines under it. */
static const char *engine_block(const char *out, const char *name, char *buf, size_t size)
{
    const char *s = strstr(out, "engines (");
    cr_assert(s, "%s", out);
    s = strstr(s, name);
    cr_assert(s, "no engine %s in:\n%s", name, out);
    size_t n = 0;
    while (s[n] && n + 1 < size) {
        if (s[n] == '\n' && (s[n + 1] == '\n' || (s[n + 1] == ' ' && s[n + 2] == ' ' &&
                                                   s[n + 3] != ' ')))
            break;
        buf[n] = s[n];
        n++;
    }
    buf[n] = '\0';
    return buf;
}

/* engine's verdict on ckpt is yes/no, with reason in its block when given */
static void verdict(const char *out, const char *engine, int yes, const char *reason)
{
    char blk[4096];
    engine_block(out, engine, blk, sizeof blk);
    const char *v = blk + strlen(engine);
    while (*v == ' ') v++;
    cr_assert(!strncmp(v, yes ? "yes" : "no ", 3), "%s", blk);
    if (reason) cr_assert(strstr(blk, reason), "want \"%s\" in:\n%s", reason, blk);
}

/* the picks line of platform starts with want after the name */
static void pick(const char *out, const char *platform, const char *want)
{
    const char *s = strstr(out, "vLLM picks");
    cr_assert(s, "%s", out);
    s = strstr(s, platform);
    cr_assert(s, "no platform %s in:\n%s", platform, out);
    s += strlen(platform);
    while (*s == ' ') s++;
    cr_assert(!strncmp(s, want, strlen(want)), "%s: want \"%s\", got \"%.80s\"", platform, want,
              s);
}

static char *inspect(const char *ckpt)
{
    cli_result r;
    cc_ok(&r, "inspect", ckpt);
    char *out = strdup(r.out);
    ch_result_free(&r);
    return out;
}

Test(cli_inspect_ct, asym_4bit_group_64)
{
    char ck[1024];
    ct_quantize(at(ck, "a4g64"), "--asym", "--group-size", "64");
    char *out = inspect(ck);
    cr_assert(strstr(out, "format:      compressed-tensors pack-quantized (weight_packed, "
                          "weight_scale, weight_zero_point, weight_shape)") &&
                  strstr(out, "bits:        4, group size 64 (strategy group), asym, actorder "
                              "null") &&
                  strstr(out, "dtype:       bfloat16") && strstr(out, "ignore:      lm_head\n") &&
                  strstr(out, "modules:     21 quantized, 1 left unquantized by ignore "
                              "(lm_head)"),
              "%s", out);
    /* bits per weight from the tensors' sizes: weight_packed 4 bits a
     * weight, an fp16 weight_scale and a 4-bit zero point per 64 inputs of
     * each output, 16 bytes of weight_shape per module, over tiny-llama's
     * seven linears (out x in) of each of its 3 layers */
    const int64_t shp[7][2] = {{256, 256}, {128, 256}, {128, 256}, {256, 256},
                               {384, 256}, {384, 256}, {256, 384}};
    double bits = 0, weights = 0;
    for (int i = 0; i < 7; i++) {
        const double N = (double)shp[i][0], K = (double)shp[i][1];
        bits += 3 * (4 * K * N + (K / 64) * N * (16 + 4) + 128);
        weights += 3 * K * N;
    }
    char want[80];
    snprintf(want, sizeof want, "bits/weight: %.3f (codes 4.000", bits / weights);
    cr_assert(strstr(out, want), "want \"%s\" in:\n%s", want, out);
    cr_assert(strstr(out, "[4] 256 x 384, 4-bit, group 64, asym: 3 modules "
                          "(model.layers.0.mlp.down_proj, ...)"),
              "%s", out);

    verdict(out, "vLLM WNA16 Machete", 1, NULL);
    verdict(out, "vLLM WNA16 Marlin", 1, NULL);
    verdict(out, "vLLM WNA16 Conch", 0, "group size 64 (it takes -1 (channel), 128)");
    verdict(out, "vLLM WNA16 ExLlama", 0,
            "asymmetric (weight_zero_point): it runs symmetric weights only (bits 4, 8)");
    verdict(out, "vLLM WNA16 Triton W4A16", 1, NULL);
    verdict(out, "llama.cpp convert_hf_to_gguf", 1, NULL);
    verdict(out, "vLLM gptq_marlin / gptq_gemm", 0, "not this format");
    verdict(out, "ExLlamaV2", 0, "not this format: it reads GPTQ tensors");
    pick(out, "CUDA sm90 (H100, H200)", "Machete (every shape)");
    pick(out, "CUDA sm80-sm89 (A100, L40S)", "Marlin (every shape)");
    pick(out, "ROCm (MI300)", "Triton W4A16 (every shape)");
    free(out);
}

Test(cli_inspect_ct, sym_8bit_per_channel)
{
    char ck[1024];
    ct_quantize(at(ck, "s8c"), "--sym", "--bits", "8", "--group-size", "-1");
    char *out = inspect(ck);
    cr_assert(strstr(out, "bits:        8, strategy channel (one group per row), sym") &&
                  strstr(out, "(weight_packed, weight_scale, weight_shape)"),
              "%s", out);
    verdict(out, "vLLM WNA16 Marlin", 1, NULL);
    verdict(out, "vLLM WNA16 Conch", 1, NULL);
    verdict(out, "vLLM WNA16 ExLlama", 0,
            "channelwise (one group per row): it needs a positive group size");
    verdict(out, "vLLM WNA16 Triton W4A16", 0, "8-bit weights (it runs bits 4)");
    verdict(out, "llama.cpp convert_hf_to_gguf", 0,
            "strategy \"channel\": it asserts strategy \"group\"");
    pick(out, "CUDA sm80-sm89 (A100, L40S)", "Marlin");
    /* Triton runs 4-bit only, ExLlama no channel, Conch is not installed */
    pick(out, "ROCm (MI300)", "none: vLLM refuses the layer (every shape)");
    free(out);
}

Test(cli_inspect_ct, asym_8bit_and_float16_activations)
{
    char a8[1024], s4[1024], p[1024];
    ct_quantize(at(a8, "a8"), "--asym", "--bits", "8");
    char *out = inspect(a8);
    verdict(out, "vLLM WNA16 Machete", 1, NULL);
    verdict(out, "vLLM WNA16 Marlin", 0,
            "asymmetric 8-bit (weight_zero_point): with zero points it runs bits 4 only");
    pick(out, "CUDA sm90 (H100, H200)", "Machete");
    pick(out, "CUDA sm80-sm89 (A100, L40S)", "none: vLLM refuses the layer");
    free(out);

    /* sym 4-bit g128: ExLlama takes it only with float16 activations */
    ct_quantize(at(s4, "s4"), "--sym");
    out = inspect(s4);
    verdict(out, "vLLM WNA16 ExLlama", 0, "float16 activations only, and the model is bfloat16");
    free(out);
    ch_sh("cd '%s' && sed -i 's/\"bfloat16\"/\"float16\"/' config.json", s4);
    cJSON *cfg = cc_json_file(ch_join(p, s4, "config.json"));
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(cfg, "torch_dtype");
    if (!d) d = cJSON_GetObjectItemCaseSensitive(cfg, "dtype");
    cr_assert(cJSON_IsString(d) && !strcmp(d->valuestring, "float16"), "the dtype edit failed");
    cJSON_Delete(cfg);
    out = inspect(s4);
    verdict(out, "vLLM WNA16 ExLlama", 1, NULL);
    free(out);
}

/* --json: the same facts, verdicts and picks; the gptq_v2 twin gets the
 * GPTQ table */
Test(cli_inspect_ct, json_and_the_gptq_twin)
{
    char ck[1024], v2[1024], model[1024];
    ct_quantize(at(ck, "s8c"), "--sym", "--bits", "8", "--group-size", "-1");
    cli_result r;
    cc_ok(&r, "inspect", ck, "--json");
    cJSON *j = cJSON_Parse(r.out);
    cr_assert(j, "not JSON:\n%s", r.out);
    ch_result_free(&r);
    cr_assert_str_eq(cc_str(j, "quant_method"), "compressed-tensors");
    cr_assert_str_eq(cc_str(j, "strategy"), "channel");
    cr_assert_eq((int)cc_num(j, "bits"), 8);
    cr_assert_eq((int)cc_num(j, "group_size"), -1);
    cr_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "actorder")));
    cr_assert_eq((int)cc_num(j, "modules_quantized"), 21);
    const cJSON *ig = cJSON_GetObjectItemCaseSensitive(j, "ignore");
    cr_assert(cJSON_GetArraySize(ig) == 1 && !strcmp(cJSON_GetArrayItem(ig, 0)->valuestring,
                                                     "lm_head"));
    const cJSON *e;
    int seen = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "engines"))
    {
        const char *name = cc_str(e, "engine");
        const cJSON *s0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(e, "shapes"), 0);
        if (!strcmp(name, "vLLM WNA16 Triton W4A16")) {
            seen++;
            cr_assert(!cc_bool(e, "ok") && cc_bool(e, "this_format"));
            cr_assert(strstr(cc_str(s0, "reason"), "8-bit weights"));
        } else if (!strcmp(name, "ExLlamaV2")) {
            seen++;
            cr_assert(!cc_bool(e, "ok") && !cc_bool(e, "this_format"));
        } else if (!strcmp(name, "vLLM WNA16 Marlin")) {
            seen++;
            cr_assert(cc_bool(e, "ok") && cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(s0,
                                                                                        "reason")));
        }
    }
    cr_assert_eq(seen, 3);
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "vllm_picks"))
    {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(e, "shapes");
        cr_assert_eq(cJSON_GetArraySize(s), 4, "one pick per module shape");
        const cJSON *k = cJSON_GetArrayItem(s, 3);
        if (!strcmp(cc_str(e, "platform"), "CUDA sm90 (H100, H200)"))
            cr_assert(cJSON_IsString(k) && !strcmp(k->valuestring, "Machete"));
        if (!strcmp(cc_str(e, "platform"), "ROCm (MI300)")) cr_assert(cJSON_IsNull(k));
    }
    cJSON_Delete(j);

    /* the same run as gptq_v2: GPTQ's table, none of the WNA16 rows */
    cc_ok_run("quantize", cc_data(model, "tiny-llama"), "-o", at(v2, "v2"), "--method", "rtn",
              "--quiet", "--sym", "--bits", "8", "--group-size", "-1", "--format", "gptq_v2");
    char *out = inspect(v2);
    cr_assert(strstr(out, "vLLM gptq_marlin") && !strstr(out, "vLLM WNA16") &&
                  strstr(out, "format:      gptq_v2"),
              "%s", out);
    free(out);
}

/* stories-260k: hidden 64 (Marlin wants in % 128, Machete out % 128), and
 * its MLP of 172 the 4-bit words cannot pack: left unquantized, so in
 * "ignore" and counted as such */
Test(cli_inspect_ct, stories_marlin_tile_and_ignored_modules)
{
    char model[1024], ck[1024];
    cc_shared(model, "models/stories-260k");
    cc_ok_run("quantize", model, "-o", at(ck, "st"), "--method", "rtn", "--quiet", "--format",
              "compressed-tensors", "--group-size", "64");
    char *out = inspect(ck);
    cr_assert(strstr(out, "modules:     20 quantized, 15 left unquantized by ignore "
                          "(model.layers.0.mlp.down_proj, "),
              "%s", out);
    /* lm_head, then the 15 "-:" rules of the modules left out */
    cr_assert(strstr(out, "ignore:      lm_head, re:model\\.layers\\.0\\.mlp\\.gate_proj$, "),
              "%s", out);
    cr_assert(strstr(out, ", ... (16 entries)\n"), "%s", out);
    verdict(out, "vLLM WNA16 Marlin", 0,
            "in_features 64 is not a multiple of 128 (newer vLLM zero-pads it to the tile");
    verdict(out, "vLLM WNA16 Machete", 0, "out_features 64 is not a multiple of 128");
    verdict(out, "vLLM WNA16 Triton W4A16", 1, NULL);
    pick(out, "ROCm (MI300)", "Triton W4A16");
    free(out);
}
