/*
 * test_cli_formats.c — checkpoints every loader takes (issue 13), through
 * the built gptq (tests/cli_harness.h):
 *   - an asymmetric checkpoint is gptq_v2 by default, its qzeros fields the
 *     zero points themselves (recomputed here from the model's weights);
 *     --format gptq forces v1 (fields z - 1) with the warning naming
 *     GPTQModel's refusal; both formats evaluate to the same perplexity;
 *   - a symmetric one stays gptq (v1), byte for byte what --format gptq
 *     writes, and no warning;
 *   - format and checkpoint_format are both written, in config.json and
 *     quantize_config.json;
 *   - `gptq inspect` on checkpoints Marlin runs and on ones it does not
 *     (3-bit, group 256, asymmetric, act-order for the ROCm Triton kernel),
 *     naming the reasons, in text and in --json.
 * Bad inputs for inspect and the group-size refusal are rows of
 * test_hostile_input.c (section "ecoformat").
 */
#include "cli_checks.h"

CC_SCRATCH_DIR("clifmt")

TestSuite(cli_formats, .init = setup, .fini = teardown, .timeout = 180);

/* config.json's quantization_config and quantize_config.json both have
 * format == checkpoint_format == want */
static void check_format_keys(const char *out, const char *want)
{
    char p[1024];
    cJSON *c = cc_json_file(ch_join(p, out, "config.json"));
    cJSON *q = cc_json_file(ch_join(p, out, "quantize_config.json"));
    const cJSON *objs[2] = {cJSON_GetObjectItemCaseSensitive(c, "quantization_config"), q};
    for (int i = 0; i < 2; i++) {
        cr_assert_str_eq(cc_str(objs[i], "checkpoint_format"), want, "%s (%d)", out, i);
        cr_assert_str_eq(cc_str(objs[i], "format"), want, "%s (%d)", out, i);
    }
    cJSON_Delete(c);
    cJSON_Delete(q);
}

static float bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* The 4-bit field n of row g of a qzeros tensor (ngroups, N/8) */
static int zero_field(const gptq_st_info *qz, int64_t g, int64_t n)
{
    const uint32_t *w = qz->data;
    return (int)((w[g * qz->shape[1] + n / 8] >> (4 * (n % 8))) & 0xF);
}

/* Every qzeros field of a module, against the zero points of its RTN
 * asymmetric 4-bit grid recomputed from the model's bf16 weight (README
 * "The algorithm" step 7: [min(0, min w), max(0, max w)], s = range / 15,
 * z = rint(-xmin / s), all in f32): field == z - offset. Returns how many
 * groups it checked. */
static int64_t check_zeros_against_weight(const char *model, const char *ckpt, const char *mod,
                                          int group, int offset)
{
    gptq_st_file *fm = cc_open_st(model), *fc = cc_open_st(ckpt);
    char n[256];
    snprintf(n, sizeof n, "%s.weight", mod);
    const gptq_st_info w = cc_tensor(fm, n);
    snprintf(n, sizeof n, "%s.qzeros", mod);
    const gptq_st_info qz = cc_tensor(fc, n);
    cr_assert_eq(w.dtype, GPTQ_BF16, "tiny-llama is bf16");
    const int64_t N = w.shape[0], K = w.shape[1], ng = K / group;
    cr_assert(qz.shape[0] == ng && qz.shape[1] * 8 == N, "%s: qzeros shape", mod);
    const uint16_t *h = w.data;
    int64_t checked = 0;
    for (int64_t r = 0; r < N; r++)
        for (int64_t g = 0; g < ng; g++) {
            float xmin = 0.0f, xmax = 0.0f;
            for (int64_t k = g * group; k < (g + 1) * group; k++) {
                const float v = bf16_to_f32(h[r * K + k]);
                if (v < xmin) xmin = v;
                if (v > xmax) xmax = v;
            }
            const float s = (xmax - xmin) / 15.0f;
            const int z = (int)rintf(-xmin / s);
            cr_assert_eq(zero_field(&qz, g, r), z - offset, "%s row %lld group %lld: field %d, "
                         "zero point %d, offset %d", mod, (long long)r, (long long)g,
                         zero_field(&qz, g, r), z, offset);
            checked++;
        }
    gptq_st_close(fm);
    gptq_st_close(fc);
    return checked;
}

Test(cli_formats, asym_default_is_v2_format_gptq_forces_v1_with_a_warning_same_ppl)
{
    char model[1024], text[1024], v2[1024], v1[1024], mf[1024];
    cc_data(model, "tiny-llama");
    cc_data(text, "text/eval.txt");
    ch_join(mf, model, "model.safetensors");
    cli_result r;
    cc_ok(&r, "quantize", model, "-o", at(v2, "v2"), "--method", "rtn", "--asym", "--group-size",
          "64");
    cr_assert(strstr(r.out, "format:  gptq_v2: asymmetric"), "%s", r.out);
    cr_assert(!strstr(r.err, "warning"), "auto warned: %s", r.err);
    ch_result_free(&r);
    check_format_keys(v2, "gptq_v2");
    cc_ok(&r, "quantize", model, "-o", at(v1, "v1"), "--method", "rtn", "--asym", "--group-size",
          "64", "--format", "gptq", "--quiet");
    cr_assert(strstr(r.err, "warning: --format gptq with --asym: GPTQModel's loader refuses an "
                            "asymmetric v1"),
              "%s", r.err);
    ch_result_free(&r);
    check_format_keys(v1, "gptq");
    /* v2 stores z, v1 z - 1: both against the weights, two module shapes */
    const char *mods[] = {"model.layers.0.self_attn.q_proj", "model.layers.2.mlp.down_proj"};
    for (int i = 0; i < 2; i++) {
        cr_assert(check_zeros_against_weight(mf, v2, mods[i], 64, 0) >= 256 * 4);
        cr_assert(check_zeros_against_weight(mf, v1, mods[i], 64, 1) >= 256 * 4);
    }
    /* everything but the zero points is the same bytes: the same weights,
     * so the same perplexity to the last digit */
    gptq_st_file *f1 = cc_open_st(v1), *f2 = cc_open_st(v2);
    gptq_st_info a = cc_tensor(f1, "model.layers.1.mlp.gate_proj.qweight"),
                 b = cc_tensor(f2, "model.layers.1.mlp.gate_proj.qweight");
    cr_assert(a.nbytes == b.nbytes && memcmp(a.data, b.data, a.nbytes) == 0);
    gptq_st_close(f1);
    gptq_st_close(f2);
    const cc_ppl e1 = cc_eval(v1, text, 128, 4), e2 = cc_eval(v2, text, 128, 4);
    cr_assert_str_eq(e1.text, e2.text, "v1 %s, v2 %s", e1.text, e2.text);
    /* gptq matmul reads both to the same Y and W, bit for bit */
    char x[1024], y1[1024], y2[1024];
    float X[3 * 384];
    for (int i = 0; i < 3 * 384; i++) X[i] = (float)((i * 7) % 13 - 6) / 8.0f;
    gptq_st_writer *sw;
    const int64_t xs[2] = {3, 384};
    cr_assert_eq(gptq_st_writer_open(at(x, "x.safetensors"), &sw), GPTQ_OK);
    cr_assert_eq(gptq_st_writer_declare(sw, "X", GPTQ_F32, 2, xs), GPTQ_OK);
    cr_assert_eq(gptq_st_writer_write(sw, X, sizeof X), GPTQ_OK);
    cr_assert_eq(gptq_st_writer_commit(sw), GPTQ_OK);
    const char *dn = "model.layers.2.mlp.down_proj";
    cc_ok_run("matmul", v1, "--module", dn, "-x", x, "-o", at(y1, "y1.safetensors"), "--dequant",
              "--quiet");
    cc_ok_run("matmul", v2, "--module", dn, "-x", x, "-o", at(y2, "y2.safetensors"), "--dequant",
              "--quiet");
    f1 = cc_open_st(y1);
    f2 = cc_open_st(y2);
    static const char *yt[] = {"Y", "W"};
    for (int i = 0; i < 2; i++) {
        a = cc_tensor(f1, yt[i]);
        b = cc_tensor(f2, yt[i]);
        cr_assert(a.nbytes == b.nbytes && !memcmp(a.data, b.data, a.nbytes), "%s differs", yt[i]);
    }
    gptq_st_close(f1);
    gptq_st_close(f2);
    /* inspect: GPTQModel refuses the v1 one, loads the v2 one */
    cc_ok(&r, "inspect", v1);
    cr_assert(strstr(r.out, "GPTQModel:   no: sym false with format gptq (v1)"), "%s", r.out);
    ch_result_free(&r);
    cc_ok(&r, "inspect", v2);
    cr_assert(strstr(r.out, "GPTQModel:   loads it"), "%s", r.out);
    ch_result_free(&r);
}

Test(cli_formats, sym_stays_v1_byte_identical_to_format_gptq)
{
    char model[1024], a[1024], b[1024], pa[1024], pb[1024];
    cc_data(model, "tiny-llama");
    cli_result r;
    cc_ok(&r, "quantize", model, "-o", at(a, "auto"), "--method", "rtn", "--quiet");
    cr_assert_str_eq(r.err, "", "%s", r.err);
    ch_result_free(&r);
    cc_ok(&r, "quantize", model, "-o", at(b, "v1"), "--method", "rtn", "--format", "gptq",
          "--quiet");
    cr_assert_str_eq(r.err, "", "a sym --format gptq warned: %s", r.err);
    ch_result_free(&r);
    check_format_keys(a, "gptq");
    cr_assert(cc_same_file(ch_join(pa, a, "model.safetensors"), ch_join(pb, b, "model.safetensors")));
    cr_assert(cc_same_file(ch_join(pa, a, "config.json"), ch_join(pb, b, "config.json")));
}

/* ------------------------------------------------------------------ */
/* inspect                                                             */
/* ------------------------------------------------------------------ */

/* The line of engine `name` in inspect's text output and the lines under
 * it (its reasons and notes), into buf. */
static const char *engine_block(const char *out, const char *name, char *buf, size_t size)
{
    const char *s = strstr(out, "engines (");
    cr_assert(s, "%s", out);
    s = strstr(s, name);
    cr_assert(s, "no engine %s in:\n%s", name, out);
    size_t n = 0;
    const char *e = s;
    while (*e && n + 1 < size) {
        if (*e == '\n' && e[1] == ' ' && e[2] == ' ' && e[3] != ' ') break;
        buf[n++] = *e++;
    }
    buf[n] = '\0';
    return buf;
}

static void inspect_case(const char *ckpt, const char *engine, int yes, const char *reason)
{
    cli_result r;
    cc_ok(&r, "inspect", ckpt);
    char blk[4096];
    engine_block(r.out, engine, blk, sizeof blk);
    const char *verdict = blk + strlen(engine);
    while (*verdict == ' ') verdict++;
    cr_assert(!strncmp(verdict, yes ? "yes" : "no ", 3), "%s: %s", ckpt, blk);
    if (reason) cr_assert(strstr(blk, reason), "%s: want \"%s\" in:\n%s", ckpt, reason, blk);
    ch_result_free(&r);
}

Test(cli_formats, inspect_marlin_eligible_or_not_with_the_reasons)
{
    char model[1024], calib[1024], sym[1024], b3[1024], g256[1024], da[1024];
    cc_data(model, "tiny-llama");
    cc_data(calib, "text/calib.txt");
    cli_result r;
    cc_ok_run("quantize", model, "-o", at(sym, "sym"), "--method", "rtn", "--quiet");
    cc_ok_run("quantize", model, "-o", at(b3, "b3"), "--method", "rtn", "--bits", "3", "--quiet");
    cc_ok_run("quantize", model, "-o", at(g256, "g256"), "--method", "rtn", "--group-size", "256",
              "--quiet");
    cc_ok_run("quantize", model, "-o", at(da, "da"), "--calib", calib, "--nsamples", "2",
              "--seqlen", "32", "--desc-act", "--quiet");

    /* 4-bit g128 sym, shapes multiples of 64 / 128: every engine */
    cc_ok(&r, "inspect", sym);
    cr_assert(strstr(r.out, "format:      gptq (v1") && strstr(r.out, "dtype:       bfloat16") &&
                  strstr(r.out, "21 quantized, 0 left unquantized") &&
                  strstr(r.out, "g_idx:       trivial (k // group_size) in 21 modules"),
              "%s", r.out);
    /* bits per weight: 4 per code, an fp16 scale and a 4-bit zero per 128
     * inputs of each output, a 32-bit g_idx per input, over tiny-llama's
     * seven linears (out x in) of each of its 3 layers */
    const int64_t shp[7][2] = {{256, 256}, {128, 256}, {128, 256}, {256, 256},
                               {384, 256}, {384, 256}, {256, 384}};
    double bits = 0, weights = 0;
    for (int i = 0; i < 7; i++) {
        const double N = (double)shp[i][0], K = (double)shp[i][1];
        bits += 4 * K * N + (K / 128) * N * (16 + 4) + 32 * K;
        weights += K * N;
    }
    char want[64];
    snprintf(want, sizeof want, "bits/weight: %.3f (codes 4.000", bits / weights);
    cr_assert(strstr(r.out, want), "want \"%s\" in:\n%s", want, r.out);
    ch_result_free(&r);
    inspect_case(sym, "vLLM gptq_marlin", 1, NULL);
    inspect_case(sym, "Machete (vLLM)", 1, NULL);
    inspect_case(sym, "ExLlamaV2", 1, NULL);
    inspect_case(sym, "vLLM gptq_gemm", 1, "is buggy. Please switch to gptq_marlin.");

    /* 3-bit: Marlin, Machete, ExLlamaV2, Triton and llama.cpp's converter say no */
    inspect_case(b3, "vLLM gptq_marlin", 0, "3-bit weights (it runs bits 4, 8)");
    inspect_case(b3, "llama.cpp convert_hf_to_gguf", 0, "3-bit weights (it runs bits 2, 4, 8)");
    inspect_case(b3, "vLLM gptq_gemm", 1, NULL);
    /* group 256 */
    inspect_case(g256, "vLLM gptq_marlin", 0, "group size 256 (it takes -1, 32, 64, 128)");
    /* the ROCm Triton kernel takes 256, but not for down_proj's 384 inputs */
    inspect_case(g256, "vLLM Triton W4A16 (ROCm)", 0,
                 "[4] in_features 384 is not a multiple of the group size 256");
    inspect_case(g256, "llama.cpp convert_hf_to_gguf", 1, NULL);
    /* act-order: Marlin runs it, the ROCm Triton kernel does not */
    inspect_case(da, "vLLM gptq_marlin", 1, NULL);
    inspect_case(da, "vLLM Triton W4A16 (ROCm)", 0,
                 "g_idx is act-order (permuted): it runs only g_idx = k // group_size");

    /* without g_idx tensors (loaders take k // group_size): llama.cpp's
     * converter reads every module's g_idx */
    char noidx[1024], pn[1024];
    ch_sh("cp -a '%s' '%s'", sym, at(noidx, "noidx"));
    gptq_st_file *f = cc_open_st(sym);
    gptq_st_writer *w;
    cr_assert_eq(gptq_st_writer_open(ch_join(pn, noidx, "model.safetensors"), &w), GPTQ_OK);
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < gptq_st_count(f); i++) {
            gptq_st_info ti;
            cr_assert_eq(gptq_st_get(f, i, &ti), GPTQ_OK);
            if (strstr(ti.name, ".g_idx")) continue;
            cr_assert_eq(pass ? gptq_st_writer_write(w, ti.data, ti.nbytes)
                              : gptq_st_writer_declare(w, ti.name, ti.dtype, ti.ndim, ti.shape),
                         GPTQ_OK, "%s", gptq_last_error());
        }
    cr_assert_eq(gptq_st_writer_commit(w), GPTQ_OK);
    gptq_st_close(f);
    cc_ok(&r, "inspect", noidx);
    cr_assert(strstr(r.out, "g_idx:       absent (k // group_size) in 21 modules"), "%s", r.out);
    ch_result_free(&r);
    inspect_case(noidx, "llama.cpp convert_hf_to_gguf", 0, "no g_idx tensor");
    inspect_case(noidx, "vLLM gptq_marlin", 1, NULL);

    /* --json: the same verdicts */
    cc_ok(&r, "inspect", b3, "--json");
    cJSON *j = cJSON_Parse(r.out);
    cr_assert(j, "not JSON:\n%s", r.out);
    cr_assert_str_eq(cc_str(j, "checkpoint_format"), "gptq");
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(j, "bits")->valueint, 3);
    const cJSON *e;
    int seen = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "engines"))
    {
        if (strcmp(cc_str(e, "engine"), "vLLM gptq_marlin")) continue;
        seen = 1;
        cr_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(e, "ok")));
        const cJSON *v = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(e, "shapes"), 0);
        cr_assert(strstr(cc_str(v, "reason"), "3-bit"));
    }
    cr_assert(seen);
    cJSON_Delete(j);
    ch_result_free(&r);
}

/* --dynamic: a "-:" rule's module is counted as left unquantized and named;
 * a "+:" rule's 8-bit modules are their own shapes, which llama.cpp's
 * converter misreads (it takes quantization_config's bits for every module) */
Test(cli_formats, inspect_dynamic_rules)
{
    char model[1024], out[1024];
    cc_data(model, "tiny-llama");
    cli_result r;
    cc_ok_run("quantize", model, "-o", at(out, "dyn"), "--method", "rtn", "--quiet", "--dynamic",
              "{\"-:model\\\\.layers\\\\.0\\\\.mlp\\\\.up_proj$\": {}, "
              "\"+:model\\\\.layers\\\\.1\\\\.\": {\"bits\": 8, \"group_size\": 64}}");
    cc_ok(&r, "inspect", out);
    cr_assert(strstr(r.out, "20 quantized, 1 left unquantized by the dynamic rules "
                            "(model.layers.0.mlp.up_proj)"),
              "%s", r.out);
    cr_assert(strstr(r.out, "dynamic:     +:model\\.layers\\.1\\. -> bits 8, group_size 64\n"),
              "%s", r.out);
    cr_assert(strstr(r.out, "8-bit, group 64, sym, g_idx trivial: 2 modules "
                            "(model.layers.1.self_attn.q_proj, ...)"),
              "%s", r.out);
    ch_result_free(&r);
    inspect_case(out, "llama.cpp convert_hf_to_gguf", 0,
                 "8-bit from a dynamic rule: it reads only quantization_config bits (4)");
    inspect_case(out, "vLLM gptq_marlin", 1, NULL);
}
