/*
 * test_cli_quantize.c — `gptq quantize` as a user runs it (the built binary,
 * tests/cli_harness.h): the checkpoint it writes, read back through the
 * library and evaluated with `gptq eval`; the summary, the calibration line
 * and --log-json checked against the checkpoint; every option at least once,
 * each where it shows (the checkpoint's tensors, quantize_config.json, the
 * log). The bundled tiny model (data/) always; the shared models (llama-27m
 * sharded bf16, opt-18m fp16, stories-260k fp32) when ../shared is there.
 *
 * Small calibration throughout (4-16 windows of 32-128 tokens) to stay
 * within CI time on two cores.
 */
#include "cli_checks.h"
#include "synth_model.h"

CC_SCRATCH_DIR("cliq")

TestSuite(cli_quantize, .init = setup, .fini = teardown, .timeout = 180);

/* tiny-llama's decoder Linears, in the order the pipeline quantizes them
 * (true-sequential groups), with their (out, in) shapes (data/README.md). */
static const struct {
    const char *name;
    int64_t rows, cols;
} k_tiny[7] = {
    {"self_attn.q_proj", 256, 256}, {"self_attn.k_proj", 128, 256}, {"self_attn.v_proj", 128, 256},
    {"self_attn.o_proj", 256, 256}, {"mlp.gate_proj", 384, 256},    {"mlp.up_proj", 384, 256},
    {"mlp.down_proj", 256, 384},
};

/* Every module of a checkpoint: its tensors have the shapes of the format
 * (README "Checkpoint format") for out x in = rows x cols. */
static void check_module_shapes(const gptq_st_file *f, const char *prefix, int64_t rows,
                                int64_t cols, int bits, int group)
{
    char n[600];
    const int64_t G = group == -1 ? cols : group, ng = (cols + G - 1) / G;
    snprintf(n, sizeof n, "%s.qweight", prefix);
    gptq_st_info i = cc_tensor(f, n);
    cr_assert(i.dtype == GPTQ_I32 && i.ndim == 2 && i.shape[0] == cols * bits / 32 &&
                  i.shape[1] == rows,
              "%s: shape (%lld, %lld)", n, (long long)i.shape[0], (long long)i.shape[1]);
    snprintf(n, sizeof n, "%s.qzeros", prefix);
    i = cc_tensor(f, n);
    cr_assert(i.dtype == GPTQ_I32 && i.shape[0] == ng && i.shape[1] == rows * bits / 32, "%s", n);
    snprintf(n, sizeof n, "%s.scales", prefix);
    i = cc_tensor(f, n);
    cr_assert(i.dtype == GPTQ_F16 && i.shape[0] == ng && i.shape[1] == rows, "%s", n);
    snprintf(n, sizeof n, "%s.g_idx", prefix);
    i = cc_tensor(f, n);
    cr_assert(i.dtype == GPTQ_I32 && i.ndim == 1 && i.shape[0] == cols, "%s", n);
}

/* The quantization_config of OUT/config.json and OUT/quantize_config.json
 * agree on the key (number or bool), and it has the wanted value. */
static void check_qconfig(const char *out, const char *key, double want)
{
    char p[1024];
    cJSON *c = cc_json_file(ch_join(p, out, "config.json"));
    cJSON *qc = cJSON_GetObjectItemCaseSensitive(c, "quantization_config");
    cJSON *q = cc_json_file(ch_join(p, out, "quantize_config.json"));
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(qc, key);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(q, key);
    if (!a) a = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(qc, "meta"), key);
    if (!b) b = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(q, "meta"), key);
    cr_assert(a && b, "%s: no \"%s\" in the quantization config", out, key);
    const double va = cJSON_IsBool(a) ? cJSON_IsTrue(a) : a->valuedouble;
    const double vb = cJSON_IsBool(b) ? cJSON_IsTrue(b) : b->valuedouble;
    cr_assert(va == want && vb == want, "%s: %s is %g / %g, want %g", out, key, va, vb, want);
    cJSON_Delete(c);
    cJSON_Delete(q);
}

/* checkpoint_format and format (both written: optimum reads format) are
 * `want` in config.json's quantization_config and in quantize_config.json */
static void check_format(const char *out, const char *want)
{
    char p[1024];
    cJSON *c = cc_json_file(ch_join(p, out, "config.json"));
    cJSON *q = cc_json_file(ch_join(p, out, "quantize_config.json"));
    const cJSON *objs[2] = {cJSON_GetObjectItemCaseSensitive(c, "quantization_config"), q};
    const char *keys[2] = {"checkpoint_format", "format"};
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 2; k++) {
            const char *f = cc_str(objs[i], keys[k]);
            cr_assert_str_eq(f, want, "%s: %s %s in %s", out, keys[k], f,
                             i ? "quantize_config.json" : "config.json");
        }
    cJSON_Delete(c);
    cJSON_Delete(q);
}

/* ------------------------------------------------------------------ */
/* GPTQ then eval: between the fp model and RTN                        */
/* ------------------------------------------------------------------ */

/* 2-bit asym g128, 16 x 128 calibration tokens; perplexity on the first 24
 * windows of 256 tokens of data/text/eval.txt. Measured (CPU, at bd8c07e):
 *   fp (bf16)   49.1936
 *   GPTQ w2     49.4290   (+0.24, the paper's column order)
 *               49.5511   (+0.36, GAR: the default since issue 13)
 *   RTN w2      51.1298   (+1.94)
 * A 2-bit model is never as good as fp; GPTQ must recover well over half
 * of what RTN loses at the same grid (it recovers 88% here in the paper's
 * order, 81% in GAR's; 50% leaves room for any honest change of the
 * numerics). */
Test(cli_quantize, gptq_between_fp_and_rtn_log_and_summary_match_the_checkpoint)
{
    char model[1024], calib[1024], text[1024], gq[1024], rq[1024], log[1024];
    cc_data(model, "tiny-llama");
    cc_data(calib, "text/calib.txt");
    cc_data(text, "text/eval.txt");
    at(gq, "gptq");
    at(rq, "rtn");
    at(log, "log.jsonl");
    cli_result r;
    cc_ok(&r, "quantize", model, "-o", gq, "--calib", calib, "--nsamples", "16", "--seqlen", "128",
          "--bits", "2", "--asym", "--log-json", log);
    /* the calibration line: what was asked for */
    cr_assert(strstr(r.err, "calibration: ") && strstr(r.err, calib), "%s", r.err);
    cr_assert(strstr(r.err, "16 windows of 128 tokens (seed 0)"), "%s", r.err);
    cr_assert(strstr(r.err, "161678 tokens"), "calib.txt is 161,678 tokens (data/README.md):\n%s",
              r.err);
    /* progress on a non-terminal: plain lines, one per layer, 100% at the end */
    cr_assert(strstr(r.err, "layer 1/3") && strstr(r.err, "layer 3/3") && strstr(r.err, "[100%]"),
              "%s", r.err);
    /* the table: a row per module, then the summary */
    cr_assert(strstr(r.out, "out x in") && strstr(r.out, "mlp.down_proj"), "%s", r.out);
    /* the default order is GAR since issue 13 (gar): the summary names it */
    cr_assert(strstr(r.out, "quantized 21 linear modules (2-bit, group 128, asym, group-aware "
                            "act-order)"),
              "%s", r.out);
    /* asymmetric: gptq_v2 (GPTQModel refuses an asymmetric v1 checkpoint) */
    cr_assert(strstr(r.out, "format:  gptq_v2") && strstr(r.out, "1 shard)"), "%s", r.out);
    cr_assert(strstr(r.out, "peak RSS"), "%s", r.out);
    cr_assert(strstr(r.out, "BF16"), "the note on the kept dtype: %s", r.out);
    double mb_in = 0, mb_out = 0, bpw = 0, mweights = 0;
    const char *sz = strstr(r.out, "size:    "), *bl = strstr(r.out, "bits:    ");
    cr_assert(sz && sscanf(sz, "size:    %lf MB -> %lf MB", &mb_in, &mb_out) == 2, "%s", r.out);
    cr_assert(bl && sscanf(bl, "bits:    %lf bits/weight over the quantized linears (%lfM",
                           &bpw, &mweights) == 2,
              "%s", r.out);
    ch_result_free(&r);

    /* --log-json: one record per module, each matching the checkpoint */
    char *lines = ch_slurp(log, NULL);
    cr_assert(lines, "no --log-json file");
    cJSON *rec[64];
    const int n = cc_json_lines(lines, rec, 64);
    free(lines);
    cr_assert_eq(n, 21, "%d records, want 3 layers x 7 modules", n);
    gptq_st_file *f = cc_open_st(gq);
    int qweights = 0;
    double all_bytes = 0, packed_bytes = 0, src_bytes = 0, nweights = 0;
    for (int i = 0; i < gptq_st_count(f); i++) {
        gptq_st_info ti;
        cr_assert_eq(gptq_st_get(f, i, &ti), GPTQ_OK);
        qweights += strstr(ti.name, ".qweight") != NULL;
        all_bytes += (double)ti.nbytes;
        if (strstr(ti.name, ".qweight") || strstr(ti.name, ".qzeros") ||
            strstr(ti.name, ".scales") || strstr(ti.name, ".g_idx"))
            packed_bytes += (double)ti.nbytes;
    }
    cr_assert_eq(qweights, 21, "the checkpoint has %d quantized modules", qweights);
    gptq_st_file *f0 = cc_open_st(model);
    for (int i = 0; i < gptq_st_count(f0); i++) {
        gptq_st_info ti;
        cr_assert_eq(gptq_st_get(f0, i, &ti), GPTQ_OK);
        src_bytes += (double)ti.nbytes;
    }
    gptq_st_close(f0);
    for (int m = 0; m < 7; m++) nweights += 3.0 * (double)(k_tiny[m].rows * k_tiny[m].cols);
    /* the summary's figures are the checkpoint's, to the digits printed */
    cr_assert(fabs(mb_in - src_bytes / 1e6) <= 0.006, "size in %.2f MB, source %.0f bytes",
              mb_in, src_bytes);
    cr_assert(fabs(mb_out - all_bytes / 1e6) <= 0.006, "size out %.2f MB, checkpoint %.0f bytes",
              mb_out, all_bytes);
    cr_assert(fabs(mweights - nweights / 1e6) <= 0.006, "%.2fM weights, want %.0f", mweights,
              nweights);
    cr_assert(fabs(bpw - 8.0 * packed_bytes / nweights) <= 0.0006,
              "%.3f bits/weight printed, the packed tensors hold %.4f", bpw,
              8.0 * packed_bytes / nweights);
    for (int i = 0; i < n; i++) {
        const int layer = i / 7, m = i % 7;
        char prefix[256];
        snprintf(prefix, sizeof prefix, "model.layers.%d.%s", layer, k_tiny[m].name);
        cr_assert_eq((int)cc_num(rec[i], "layer"), layer);
        cr_assert_str_eq(cc_str(rec[i], "module"), k_tiny[m].name);
        cr_assert_str_eq(cc_str(rec[i], "tensor"), prefix);
        cr_assert_eq((int64_t)cc_num(rec[i], "rows"), k_tiny[m].rows, "%s", prefix);
        cr_assert_eq((int64_t)cc_num(rec[i], "cols"), k_tiny[m].cols, "%s", prefix);
        cr_assert_eq((int)cc_num(rec[i], "bits"), 2);
        cr_assert_eq((int)cc_num(rec[i], "group_size"), 128);
        cr_assert_eq((int64_t)cc_num(rec[i], "hessian_rows"), 16 * 128, "%s", prefix);
        cr_assert_eq(cc_num(rec[i], "damp_used"), 0.01, "%s: the default damp", prefix);
        const double loss = cc_num(rec[i], "loss"), err = cc_num(rec[i], "out_rel_err");
        cr_assert(loss > 0 && isfinite(loss) && err > 0 && err < 1, "%s: loss %g err %g", prefix,
                  loss, err);
        check_module_shapes(f, prefix, k_tiny[m].rows, k_tiny[m].cols, 2, 128);
        cJSON_Delete(rec[i]);
    }
    gptq_st_close(f);
    check_qconfig(gq, "bits", 2);
    check_qconfig(gq, "group_size", 128);
    check_qconfig(gq, "sym", 0);
    check_qconfig(gq, "desc_act", 0);

    /* RTN at the same grid: no calibration line, "RTN" in the summary */
    cc_ok(&r, "quantize", model, "-o", rq, "--method", "rtn", "--bits", "2", "--asym");
    cr_assert(!strstr(r.err, "calibration:"), "RTN reads no calibration text:\n%s", r.err);
    cr_assert(strstr(r.out, "quantized 21 linear modules (2-bit, group 128, asym, RTN)"), "%s",
              r.out);
    ch_result_free(&r);

    const cc_ppl fp = cc_eval(model, text, 256, 24), g = cc_eval(gq, text, 256, 24),
                 rt = cc_eval(rq, text, 256, 24);
    cr_assert(fp.windows == 24 && fp.predicted == 24 * 255 && g.predicted == fp.predicted &&
                  rt.predicted == fp.predicted,
              "windows %lld predicted %lld", fp.windows, fp.predicted);
    cr_log_info("tiny-llama w2 g128 asym: fp %.4f, GPTQ %.4f, RTN %.4f", fp.ppl, g.ppl, rt.ppl);
    cr_assert(g.ppl > fp.ppl, "GPTQ %.4f is not worse than fp %.4f at 2 bits", g.ppl, fp.ppl);
    cr_assert(g.ppl - fp.ppl < 0.5 * (rt.ppl - fp.ppl),
              "GPTQ %.4f recovers less than half of RTN's loss (fp %.4f, RTN %.4f)", g.ppl,
              fp.ppl, rt.ppl);
}

/* ------------------------------------------------------------------ */
/* Output options                                                      */
/* ------------------------------------------------------------------ */

/* Every word of a qzeros tensor is `word` (every zero point the same). */
static void check_qzeros_words(const gptq_st_file *f, const char *name, uint32_t word)
{
    gptq_st_info i = cc_tensor(f, name);
    const uint32_t *w = i.data;
    for (size_t k = 0; k < i.nbytes / 4; k++)
        cr_assert_eq(w[k], word, "%s word %zu is %08x, want %08x", name, k, w[k], word);
}

/* `gptq matmul` on a checkpoint folder (--module, --dequant): W is the
 * round-to-nearest of the original bf16 weight on the checkpoint's grid
 * (|W - W0| <= s/2, plus |q - z| <= 8 steps of the fp16 rounding of s,
 * 2^-11 s each), and Y = X W^T up to X's rounding to fp16 (2^-11 relative
 * per element: 1e-3 on the Frobenius norm leaves room). */
static void check_matmul_of_the_checkpoint(const char *ckpt, const char *model)
{
    char x[1024], y[1024], src[1024];
    const int64_t M = 3, N = 256, K = 384; /* down_proj: (out, in) = (256, 384) */
    const char *names[1] = {"X"};
    gptq_tensor xt;
    const int64_t xs[2] = {M, K};
    cr_assert_eq(gptq_tensor_alloc(&xt, GPTQ_F32, 2, xs), GPTQ_OK);
    float *xd = xt.data;
    uint32_t seed = 5;
    for (int64_t i = 0; i < M * K; i++) {
        seed = seed * 1664525u + 1013904223u;
        xd[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
    cr_assert_eq(gptq_st_save(at(x, "x.safetensors"), 1, names, &xt), GPTQ_OK);
    cli_result r;
    cc_ok(&r, "matmul", ckpt, "--module", "model.layers.0.mlp.down_proj", "-x", x, "-o",
          at(y, "y.safetensors"), "--dequant");
    cr_assert(strstr(r.out, "Y (3, 256)") && strstr(r.out, "gptq_v2"), "%s", r.out);
    ch_result_free(&r);
    gptq_st_file *fy = cc_open_st(y), *fq = cc_open_st(ckpt),
                 *f0 = cc_open_st(ch_join(src, model, "model.safetensors"));
    const gptq_st_info wi = cc_tensor(fy, "W"), yi = cc_tensor(fy, "Y"),
                       si = cc_tensor(fq, "model.layers.0.mlp.down_proj.scales"),
                       w0 = cc_tensor(f0, "model.layers.0.mlp.down_proj.weight");
    cr_assert(wi.shape[0] == N && wi.shape[1] == K && yi.shape[0] == M && yi.shape[1] == N);
    cr_assert_eq(w0.dtype, GPTQ_BF16);
    const float *W = wi.data, *Y = yi.data;
    const uint16_t *sc = si.data, *b0 = w0.data;
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) {
            const double s = gptq_f16_to_f32(sc[(k / 128) * N + n]);
            const double d = fabs((double)W[n * K + k] - gptq_bf16_to_f32(b0[n * K + k]));
            cr_assert(d <= 0.5 * s + 8.0 * s / 2048.0 + 1e-12, "W[%lld][%lld] is %g off, s %g",
                      (long long)n, (long long)k, d, s);
        }
    double num = 0, den = 0;
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double ref = 0;
            for (int64_t k = 0; k < K; k++) ref += (double)xd[m * K + k] * W[n * K + k];
            num += (Y[m * N + n] - ref) * (Y[m * N + n] - ref);
            den += ref * ref;
        }
    cr_assert(sqrt(num / den) < 1e-3, "Y is %g off X W^T", sqrt(num / den));
    gptq_st_close(fy);
    gptq_st_close(fq);
    gptq_st_close(f0);
    gptq_tensor_free(&xt);
}

/* RTN 4-bit sym (zero point 8 everywhere): v1 stores z - 1 = 7 in every
 * field, --format gptq_v2 stores 8; the two evaluate the same (the same
 * weights). --max-shard-size splits the same checkpoint into shards with
 * an index, evaluating the same again. --bits 8 --group-size -1: one group
 * per row, zero 128 stored as 127. */
Test(cli_quantize, format_v2_zeros_shards_and_group_per_row)
{
    char model[1024], text[1024], v1[1024], v2[1024], sh[1024], b8[1024], p[1024];
    cc_data(model, "tiny-llama");
    cc_data(text, "text/eval.txt");
    at(v1, "v1");
    at(v2, "v2");
    at(sh, "sharded");
    at(b8, "b8");
    cli_result r;
    cc_ok_run("quantize", model, "-o", v1, "--method", "rtn", "--sym", "--quiet");
    cc_ok(&r, "quantize", model, "-o", v2, "--method", "rtn", "--format", "gptq_v2");
    cr_assert(strstr(r.out, "gptq_v2 (as asked)"), "%s", r.out);
    ch_result_free(&r);
    check_format(v1, "gptq");
    check_format(v2, "gptq_v2");
    gptq_st_file *f1 = cc_open_st(v1), *f2 = cc_open_st(v2);
    check_qzeros_words(f1, "model.layers.0.self_attn.q_proj.qzeros", 0x77777777u);
    check_qzeros_words(f2, "model.layers.0.self_attn.q_proj.qzeros", 0x88888888u);
    check_qzeros_words(f2, "model.layers.2.mlp.down_proj.qzeros", 0x88888888u);
    /* everything but qzeros is the same bytes */
    gptq_st_info a = cc_tensor(f1, "model.layers.1.mlp.up_proj.qweight"),
                 b = cc_tensor(f2, "model.layers.1.mlp.up_proj.qweight");
    cr_assert(a.nbytes == b.nbytes && memcmp(a.data, b.data, a.nbytes) == 0);
    gptq_st_close(f1);
    gptq_st_close(f2);

    /* 1 MB shards: the 4.5 MB model's 2.4 MB checkpoint needs at least 3 */
    cc_ok(&r, "quantize", model, "-o", sh, "--method", "rtn", "--max-shard-size", "1MB");
    int nshards = 0;
    const char *s = strstr(r.out, "(all tensors, ");
    cr_assert(s && sscanf(s, "(all tensors, %d shards)", &nshards) == 1, "%s", r.out);
    ch_result_free(&r);
    cr_assert(nshards >= 3, "%d shards", nshards);
    cr_assert(access(ch_join(p, sh, "model.safetensors"), F_OK) != 0, "a sharded checkpoint "
              "has no model.safetensors");
    cJSON *idx = cc_json_file(ch_join(p, sh, "model.safetensors.index.json"));
    cJSON *map = cJSON_GetObjectItemCaseSensitive(idx, "weight_map");
    cr_assert(cJSON_IsObject(map));
    int ntensors = 0;
    for (int k = 1; k <= nshards; k++) {
        char name[128];
        snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", k, nshards);
        struct stat st;
        cr_assert_eq(stat(ch_join(p, sh, name), &st), 0, "%s is missing", name);
        /* the limit counts tensor bytes (as transformers); the header is small */
        cr_assert(st.st_size <= 1000000 + 16384, "%s is %lld bytes", name, (long long)st.st_size);
        gptq_st_file *f = cc_open_st(p);
        for (int i = 0; i < gptq_st_count(f); i++) {
            gptq_st_info ti;
            cr_assert_eq(gptq_st_get(f, i, &ti), GPTQ_OK);
            const cJSON *where = cJSON_GetObjectItemCaseSensitive(map, ti.name);
            cr_assert(cJSON_IsString(where) && !strcmp(where->valuestring, name),
                      "index places %s elsewhere than %s", ti.name, name);
            ntensors++;
        }
        gptq_st_close(f);
    }
    cr_assert_eq(cJSON_GetArraySize(map), ntensors, "the index lists tensors no shard holds");
    cJSON_Delete(idx);

    check_matmul_of_the_checkpoint(v2, model);

    const cc_ppl e1 = cc_eval(v1, text, 256, 4), e2 = cc_eval(v2, text, 256, 4),
                 e3 = cc_eval(sh, text, 256, 4);
    cr_assert_str_eq(e1.text, e2.text, "v1 %s vs v2 %s: the same weights", e1.text, e2.text);
    cr_assert_str_eq(e1.text, e3.text, "one file %s vs shards %s", e1.text, e3.text);

    cc_ok(&r, "quantize", model, "-o", b8, "--method", "rtn", "--bits", "8", "--group-size", "-1",
          "--format", "gptq", "--quiet");
    cr_assert_str_eq(r.out, "", "--quiet printed: %s", r.out);
    ch_result_free(&r);
    gptq_st_file *f8 = cc_open_st(b8);
    for (int m = 0; m < 7; m++) {
        char prefix[256], n[300];
        snprintf(prefix, sizeof prefix, "model.layers.1.%s", k_tiny[m].name);
        check_module_shapes(f8, prefix, k_tiny[m].rows, k_tiny[m].cols, 8, -1);
        snprintf(n, sizeof n, "%s.qzeros", prefix);
        check_qzeros_words(f8, n, 0x7f7f7f7fu);
    }
    gptq_st_close(f8);
    check_qconfig(b8, "bits", 8);
    check_qconfig(b8, "group_size", -1);
}

/* A checkpoint without g_idx tensors (AutoGPTQ writes none without
 * act-order): the reader takes g_idx[k] = k // G, so it evaluates exactly
 * as the same checkpoint with them. */
Test(cli_quantize, checkpoint_without_g_idx_reads_the_same)
{
    char model[1024], text[1024], q[1024], noidx[1024], p[1024], p2[1024];
    cc_data(model, "tiny-llama");
    cc_data(text, "text/eval.txt");
    cc_ok_run("quantize", model, "-o", at(q, "q"), "--method", "rtn", "--asym", "--group-size",
              "64", "--quiet");
    ch_sh("cp -a '%s' '%s'", q, at(noidx, "noidx"));
    /* rewrite model.safetensors without the g_idx tensors */
    gptq_st_file *f = cc_open_st(q);
    gptq_st_writer *w;
    cr_assert_eq(gptq_st_writer_open(ch_join(p, noidx, "model.safetensors"), &w), GPTQ_OK, "%s",
                 gptq_last_error());
    int kept = 0, dropped = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < gptq_st_count(f); i++) {
            gptq_st_info ti;
            cr_assert_eq(gptq_st_get(f, i, &ti), GPTQ_OK);
            if (strstr(ti.name, ".g_idx")) {
                dropped += pass == 0;
                continue;
            }
            if (pass == 0) {
                cr_assert_eq(gptq_st_writer_declare(w, ti.name, ti.dtype, ti.ndim, ti.shape),
                             GPTQ_OK, "%s", gptq_last_error());
                kept++;
            } else {
                cr_assert_eq(gptq_st_writer_write(w, ti.data, ti.nbytes), GPTQ_OK, "%s",
                             gptq_last_error());
            }
        }
    cr_assert_eq(gptq_st_writer_commit(w), GPTQ_OK, "%s", gptq_last_error());
    gptq_st_close(f);
    cr_assert(dropped == 21 && kept > 21, "dropped %d, kept %d", dropped, kept);
    gptq_st_file *g = cc_open_st(ch_join(p2, noidx, "model.safetensors"));
    gptq_st_info none;
    cr_assert_neq(gptq_st_find(g, "model.layers.0.mlp.up_proj.g_idx", &none), GPTQ_OK);
    gptq_st_close(g);
    const cc_ppl a = cc_eval(q, text, 256, 4), b = cc_eval(noidx, text, 256, 4);
    cr_assert_str_eq(a.text, b.text, "with g_idx %s, without %s", a.text, b.text);
}

/* g_idx[k] of a module: every group holds exactly G columns; returns
 * whether the order is k / G. */
static int g_idx_is_identity(const gptq_st_file *f, const char *prefix, int64_t cols, int64_t G)
{
    char n[300];
    snprintf(n, sizeof n, "%s.g_idx", prefix);
    gptq_st_info i = cc_tensor(f, n);
    const int32_t *g = i.data;
    int64_t count[64] = {0};
    int ident = 1;
    for (int64_t k = 0; k < cols; k++) {
        cr_assert(g[k] >= 0 && g[k] < cols / G, "%s[%lld] = %d", n, (long long)k, g[k]);
        count[g[k]]++;
        ident &= g[k] == k / G;
    }
    for (int64_t q = 0; q < cols / G; q++)
        cr_assert_eq(count[q], G, "%s: group %lld has %lld columns", n, (long long)q,
                     (long long)count[q]);
    return ident;
}

/* --desc-act writes g_idx in the quantization order (a permutation of the
 * groups' columns); with --static-groups it is k / G again. The options the
 * run used are recorded in quantize_config.json. */
Test(cli_quantize, desc_act_permutes_g_idx_and_options_are_recorded)
{
    char model[1024], calib[1024], da[1024], sg[1024], log[1024];
    cc_data(model, "tiny-llama");
    cc_data(calib, "text/calib.txt");
    at(da, "desc");
    at(sg, "static");
    at(log, "log.jsonl");
    cli_result r;
    cc_ok_run("quantize", model, "-o", da, "--calib", calib, "--nsamples", "4", "--seqlen", "64",
              "--desc-act", "--asym", "--group-size", "64", "--quiet");
    gptq_st_file *f = cc_open_st(da);
    for (int layer = 0; layer < 3; layer++)
        for (int m = 0; m < 7; m++) {
            char prefix[256];
            snprintf(prefix, sizeof prefix, "model.layers.%d.%s", layer, k_tiny[m].name);
            cr_assert(!g_idx_is_identity(f, prefix, k_tiny[m].cols, 64),
                      "%s: act-order left g_idx in column order", prefix);
        }
    gptq_st_close(f);
    check_qconfig(da, "desc_act", 1);
    check_qconfig(da, "group_size", 64);

    /* static groups, and the solve's options, each recorded or logged */
    cc_ok(&r, "quantize", model, "-o", sg, "--calib", calib, "--nsamples", "4", "--seqlen", "64",
          "--desc-act", "--static-groups", "--damp-percent", "0.05", "--damp-auto-increment",
          "0.02", "--block-size", "64", "--mse", "--no-true-sequential", "--batch-tokens", "auto",
          "--forward-math", "tf32", "--backend", "cpu", "--seed", "5", "--calib-bytes", "200000",
          "--log-json", log);
    cr_assert(strstr(r.err, "4 windows of 64 tokens (seed 5)"), "%s", r.err);
    /* --calib-bytes 200000: the text cut there (at a character boundary) */
    char want[1100];
    snprintf(want, sizeof want, "calibration: %s, ", calib);
    const char *cl = strstr(r.err, want);
    unsigned long long nbytes = 0;
    long long ntok = 0;
    cr_assert(cl && sscanf(cl + strlen(want), "%llu bytes, %lld tokens", &nbytes, &ntok) == 2,
              "%s", r.err);
    cr_assert(nbytes <= 200000 && nbytes > 199990 && ntok > 0 && ntok < 161678,
              "--calib-bytes 200000 read %llu bytes, %lld tokens", nbytes, ntok);
    cr_assert(strstr(r.out, "act-order"), "%s", r.out);
    ch_result_free(&r);
    f = cc_open_st(sg);
    for (int m = 0; m < 7; m++) {
        char prefix[256];
        snprintf(prefix, sizeof prefix, "model.layers.0.%s", k_tiny[m].name);
        cr_assert(g_idx_is_identity(f, prefix, k_tiny[m].cols, 128),
                  "%s: static groups keep g_idx = k / G", prefix);
    }
    gptq_st_close(f);
    check_qconfig(sg, "static_groups", 1);
    check_qconfig(sg, "damp_percent", 0.05);
    check_qconfig(sg, "damp_auto_increment", 0.02);
    check_qconfig(sg, "true_sequential", 0);
    check_qconfig(sg, "mse", 2.4); /* the norm, as GPTQModel's "mse" (0: off) */
    char *lines = ch_slurp(log, NULL);
    cJSON *rec[64];
    const int n = cc_json_lines(lines, rec, 64);
    free(lines);
    cr_assert_eq(n, 21);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(cc_num(rec[i], "damp_used"), 0.05, "--damp-percent 0.05 in record %d", i);
        cr_assert_eq(cc_num(rec[i], "hessian_rows"), 4 * 64);
        cJSON_Delete(rec[i]);
    }
}

/* ------------------------------------------------------------------ */
/* The procedure's options change what they should, and only that      */
/* ------------------------------------------------------------------ */

static void read_log(const char *path, double loss[21])
{
    char *lines = ch_slurp(path, NULL);
    cr_assert(lines, "no log %s", path);
    cJSON *rec[64];
    const int n = cc_json_lines(lines, rec, 64);
    free(lines);
    cr_assert_eq(n, 21, "%s: %d records", path, n);
    for (int i = 0; i < n; i++) {
        loss[i] = cc_num(rec[i], "loss");
        cJSON_Delete(rec[i]);
    }
}

/* True-sequential (the default): q/k/v see the same inputs either way, so
 * layer 0's first group is the same; o_proj onwards is calibrated on the
 * quantized earlier groups, so it differs. --batch-tokens large enough for
 * every window is the single pass auto picks: the same bytes. A small
 * --batch-tokens (64: a pass per window) sums the Hessians in other
 * batches: layer 0's first group differs by f32 rounding, and a code that
 * flips with it (1e-3 relative; measured 4e-7, 3.6e-4 with 128 at
 * bd8c07e); later modules see inputs that went through the differently
 * rounded layers, and with 256 calibration tokens the differences compound
 * (measured up to 7% by layer 2): 25% bounds that, and would catch a pass
 * that skips or repeats windows. A JSON-lines calibration file is read as
 * such. */
Test(cli_quantize, true_sequential_batch_tokens_and_jsonl_calibration)
{
    char model[1024], calib[1024], jl[1024], o[4][1024], lg[4][1024], p[1024];
    cc_data(model, "tiny-llama");
    cc_data(calib, "text/calib.txt");
    at(jl, "calib.jsonl");
    /* JSON lines with a "text" field: the calibration text's first lines */
    char *txt = ch_slurp(calib, NULL);
    cr_assert(txt);
    FILE *jf = fopen(jl, "w");
    cr_assert(jf);
    char *save = NULL;
    int nl = 0;
    for (char *line = strtok_r(txt, "\n", &save); line && nl < 400;
         line = strtok_r(NULL, "\n", &save)) {
        cJSON *o1 = cJSON_CreateObject();
        cJSON_AddStringToObject(o1, "text", line);
        char *s = cJSON_PrintUnformatted(o1);
        fprintf(jf, "%s\n", s);
        free(s);
        cJSON_Delete(o1);
        nl++;
    }
    cr_assert_eq(fclose(jf), 0);
    free(txt);
    const char *extra[4][2] = {{"--true-sequential", "--true-sequential"},
                               {"--no-true-sequential", "--no-true-sequential"},
                               {"--batch-tokens", "4096"},
                               {"--batch-tokens", "64"}};
    for (int k = 0; k < 4; k++) {
        char nm[32];
        snprintf(nm, sizeof nm, "out%d", k);
        at(o[k], nm);
        snprintf(nm, sizeof nm, "log%d.jsonl", k);
        at(lg[k], nm);
        cli_result r;
        cc_ok(&r, "quantize", model, "-o", o[k], "--calib", jl, "--nsamples", "4", "--seqlen",
              "64", "--log-json", lg[k], extra[k][0], extra[k][1]);
        cr_assert(strstr(r.err, "(JSON lines)"), "%s", r.err);
        ch_result_free(&r);
    }
    double L[4][21];
    for (int k = 0; k < 4; k++) read_log(lg[k], L[k]);
    for (int m = 0; m < 3; m++)
        cr_assert_eq(L[0][m], L[1][m], "%s: the first group sees the same inputs", k_tiny[m].name);
    for (int m = 3; m < 7; m++)
        cr_assert_neq(L[0][m], L[1][m], "%s: true-sequential made no difference",
                      k_tiny[m].name);
    char a[1024];
    snprintf(a, sizeof a, "%s/model.safetensors", o[0]);
    cr_assert(cc_same_file(a, ch_join(p, o[2], "model.safetensors")),
              "--batch-tokens 4096 (one pass) differs from auto");
    for (int m = 0; m < 3; m++)
        cr_assert(fabs(L[3][m] - L[0][m]) <= 1e-3 * L[0][m], "module %d: loss %.9g vs %.9g", m,
                  L[3][m], L[0][m]);
    for (int m = 3; m < 21; m++)
        cr_assert(fabs(L[3][m] - L[0][m]) <= 0.25 * L[0][m], "module %d: loss %.9g vs %.9g", m,
                  L[3][m], L[0][m]);
}

/* --quiet prints nothing on either stream, calibration and all. */
Test(cli_quantize, quiet_prints_nothing)
{
    char model[1024], calib[1024], out[1024], p[1024];
    cc_data(model, "tiny-llama");
    cc_data(calib, "text/calib.txt");
    cli_result r;
    cc_ok(&r, "quantize", model, "--output", at(out, "q"), "--calib", calib, "--nsamples", "2",
          "--seqlen", "32", "--quiet");
    cr_assert_str_eq(r.out, "", "stdout: %s", r.out);
    cr_assert_str_eq(r.err, "", "stderr: %s", r.err);
    ch_result_free(&r);
    cr_assert_eq(access(ch_join(p, out, "model.safetensors"), F_OK), 0);
}

/* On a terminal, a progress bar redrawn in place (carriage return, clear
 * line), cleared before each table row and at the end; the table and the
 * summary still go to stdout. */
Test(cli_quantize, progress_bar_on_a_terminal)
{
    char model[1024], calib[1024], out[1024];
    cc_data(model, "tiny-llama");
    cc_data(calib, "text/calib.txt");
    char *o = NULL, *e = NULL;
    const int st = cc_run_tty(&o, &e, "quantize", model, "-o", at(out, "q"), "--calib", calib,
                              "--nsamples", "2", "--seqlen", "32", NULL);
    cr_assert_eq(st, 0, "exit %d; terminal:\n%s", st, e);
    cr_assert(strstr(e, "\r\033[K["), "no bar drawn in place:\n%s", e);
    cr_assert(strstr(e, "##############################] 100%"), "no full bar:\n%s", e);
    cr_assert(strstr(e, "layer 3/3") && strstr(e, "modules 21/21") && strstr(e, "eta"), "%s", e);
    cr_assert(!strstr(e, "[100%] layer"), "plain progress lines on a terminal:\n%s", e);
    const size_t n = strlen(e);
    cr_assert(n >= 4 && !strcmp(e + n - 4, "\r\033[K"), "the bar is not cleared at the end");
    cr_assert(strstr(o, "quantized 21 linear modules"), "%s", o);
    free(o);
    free(e);
}

/* A --log-json file that cannot take the records (a full device): said
 * once, naming the file, and the checkpoint is still written. (The exit
 * status is left unchecked here: 0 today, see the report of issue 14.) */
Test(cli_quantize, log_json_write_failure_is_reported_once)
{
    char model[1024], out[1024], p[1024];
    cc_data(model, "tiny-llama");
    struct stat st;
    if (stat("/dev/full", &st) != 0) cr_skip_test("no /dev/full");
    cli_result r;
    ch_run(&r, 120.0, "quantize", model, "-o", at(out, "q"), "--method", "rtn", "--log-json",
           "/dev/full", NULL);
    cr_assert(!r.timed_out);
    const char *m = strstr(r.err, "/dev/full");
    cr_assert(m && strstr(r.err, "--log-json"), "%s", r.err);
    cr_assert(!strstr(m + 1, "/dev/full"), "reported more than once:\n%s", r.err);
    cr_assert_eq(access(ch_join(p, out, "model.safetensors"), F_OK), 0);
    ch_result_free(&r);
}

/* --backend with a plugin path (the CPU code loaded with dlopen): the same
 * checkpoint bytes as the built-in backend. */
Test(cli_quantize, plugin_backend_writes_the_same_bytes)
{
    char model[1024], calib[1024], a[1024], b[1024], plug[1024], pa[1024], pb[1024];
    cc_data(model, "tiny-llama");
    cc_data(calib, "text/calib.txt");
    cc_plugin(plug, "good");
    cc_ok_run("quantize", model, "-o", at(a, "cpu"), "--calib", calib, "--nsamples", "2",
              "--seqlen", "32", "--quiet");
    cc_ok_run("quantize", model, "-o", at(b, "plugin"), "--calib", calib, "--nsamples", "2",
              "--seqlen", "32", "--quiet", "--backend", plug);
    cr_assert(cc_same_file(ch_join(pa, a, "model.safetensors"), ch_join(pb, b, "model.safetensors")),
              "the plugin wrote other bytes");
}

/* A group of non-negative weights has zero point 0 under an asym grid
 * (xmin = 0): auto writes gptq_v2 and says how many such zeros there are,
 * flagging the module's table row; --format gptq refuses, naming the
 * module, and writes nothing. (The synthetic model of synth_model.h, its
 * first q_proj's first group made positive, as test_checkpoint.c does.) */
static void positive_group(const char *name, int64_t rows, int64_t cols, float *d)
{
    (void)rows;
    if (strcmp(name, "model.layers.0.self_attn.q_proj.weight") != 0) return;
    for (int64_t k = 0; k < 32 && k < cols; k++) d[k] = fabsf(d[k]) + 0.01f;
}

Test(cli_quantize, zero_point_0_writes_v2_and_v1_refuses)
{
    char root[256], model[300], v2[1024], v1[1024];
    cr_assert_eq(syn_model_dir(root, model, NULL, 0, positive_group), GPTQ_OK, "%s",
                 gptq_last_error());
    cli_result r;
    cc_ok(&r, "quantize", model, "-o", at(v2, "v2"), "--method", "rtn", "--asym", "--group-size",
          "32");
    long long nz = 0;
    const char *f = strstr(r.out, "format:  gptq_v2: ");
    cr_assert(f && sscanf(f, "format:  gptq_v2: %lld zero points are 0", &nz) == 1 && nz >= 1,
              "%s", r.out);
    cr_assert(strstr(r.out, "(zero point 0)"), "no table row flagged:\n%s", r.out);
    ch_result_free(&r);
    check_format(v2, "gptq_v2");
    ch_run(&r, 60.0, "quantize", model, "-o", at(v1, "v1"), "--method", "rtn", "--asym",
           "--group-size", "32", "--format", "gptq", NULL);
    ch_expect(&r, 1, "model.layers.0.self_attn.q_proj");
    cr_assert(access(v1, F_OK) != 0, "a refused run left %s", v1);
    ch_result_free(&r);
    ch_rm_tree(root);
}

/* -h prints the usage on stdout, every option named. */
Test(cli_quantize, help_names_every_option)
{
    cli_result r;
    cc_ok(&r, "quantize", "--help");
    static const char *opts[] = {"--output", "--calib", "--calib-bytes", "--nsamples", "--seqlen",
                                 "--seed", "--no-true-sequential", "--batch-tokens", "--backend",
                                 "--forward-math", "--format", "--max-shard-size", "--quiet",
                                 "--log-json", "--bits", "--group-size", "--sym", "--desc-act",
                                 "--static-groups", "--damp-percent", "--damp-auto-increment",
                                 "--block-size", "--mse", "--method"};
    for (size_t i = 0; i < sizeof opts / sizeof *opts; i++)
        cr_assert(strstr(r.out, opts[i]), "--help lacks %s", opts[i]);
    cr_assert_str_eq(r.err, "");
    ch_result_free(&r);
}

/* ------------------------------------------------------------------ */
/* The shared models                                                   */
/* ------------------------------------------------------------------ */

/* RTN 3-bit g128 asym, perplexity on 8 windows of 128 tokens of the shared
 * eval.txt. Measured at bd8c07e: llama-27m fp 98.272, RTN 127.705 (x1.30);
 * opt-18m fp 35.340, RTN 40.253 (x1.139), as shared/README.md's full-text
 * figures order them (RTN w3 costs 39% and 13% there). The bounds: a real
 * loss (> 2%), and no blow-up (< 1.6x). */
static void shared_rtn_case(const char *name, const char *bias_tensor)
{
    char model[1024], text[1024], out[1024];
    char rel[128];
    snprintf(rel, sizeof rel, "models/%s", name);
    cc_shared(model, rel);
    cc_shared(text, "text/eval.txt");
    cli_result r;
    cc_ok(&r, "quantize", model, "-o", at(out, "q"), "--method", "rtn", "--bits", "3", "--asym");
    cr_assert(strstr(r.out, "3-bit, group 128, asym, RTN"), "%s", r.out);
    ch_result_free(&r);
    if (bias_tensor) { /* the format's biases are fp16 */
        gptq_st_file *f = cc_open_st(out);
        gptq_st_info i = cc_tensor(f, bias_tensor);
        cr_assert_eq(i.dtype, GPTQ_F16, "%s is not fp16", bias_tensor);
        gptq_st_close(f);
    }
    const cc_ppl fp = cc_eval(model, text, 128, 8), q = cc_eval(out, text, 128, 8);
    cr_log_info("%s RTN w3: fp %.4f, quantized %.4f", name, fp.ppl, q.ppl);
    cr_assert(q.ppl > 1.02 * fp.ppl && q.ppl < 1.6 * fp.ppl, "%s: fp %.4f, RTN w3 %.4f", name,
              fp.ppl, q.ppl);
}

Test(cli_quantize, shared_llama27m_sharded_bf16_rtn) { shared_rtn_case("llama-27m", NULL); }

Test(cli_quantize, shared_opt18m_fp16_rtn)
{
    shared_rtn_case("opt-18m", "model.decoder.layers.0.self_attn.q_proj.bias");
}

/* stories-260k (fp32; its MLP is 172 wide: only 8-bit packs it). GPTQ 8-bit
 * is within 0.5% of fp on tinystories-val (measured at bd8c07e on 16
 * windows of 128: fp 4.1473). 4 bits with --strict is refused naming the module. */
Test(cli_quantize, shared_stories260k_fp32_gptq_8bit)
{
    char model[1024], text[1024], out[1024], o4[1024];
    cc_shared(model, "models/stories-260k");
    cc_shared(text, "text/tinystories-val.txt");
    cli_result r;
    cc_ok_run("quantize", model, "-o", at(out, "q8"), "--calib", text, "--nsamples", "8",
              "--seqlen", "128", "--bits", "8", "--quiet");
    const cc_ppl fp = cc_eval(model, text, 128, 16), q = cc_eval(out, text, 128, 16);
    cr_log_info("stories-260k GPTQ w8: fp %.4f, quantized %.4f", fp.ppl, q.ppl);
    cr_assert(fabs(q.ppl - fp.ppl) < 0.005 * fp.ppl, "fp %.4f, w8 %.4f", fp.ppl, q.ppl);
    ch_run(&r, 120.0, "quantize", model, "-o", at(o4, "q4"), "--method", "rtn", "--strict",
           NULL);
    ch_expect(&r, 1, "gate_proj");
    cr_assert(access(o4, F_OK) != 0, "a failed run left %s", o4);
    ch_result_free(&r);
}

/* ------------------------------------------------------------------ */
/* Errors: exit status, the option or file named, nothing written       */
/* ------------------------------------------------------------------ */

static void mk_calib_model(const char *dir)
{
    ch_sh("cp -a '%s/data/tiny-llama' '%s/model'", ch_source_root(), dir);
}

static hostile_case quantize_errors[] = {
    {.name = "model_folder_missing",
     .argv = {"quantize", "@/nothing", "-o", "@/out", "--method", "rtn", NULL}, .status = 1,
     .msg = "@/nothing"},
    {.name = "calib_missing", .build = mk_calib_model,
     .argv = {"quantize", "@/model", "-o", "@/out", "--calib", "@/none.txt", NULL}, .status = 1,
     .msg = "none.txt", .keep = {"@/model"}},
    {.name = "seqlen_beyond_positions", .build = mk_calib_model,
     .argv = {"quantize", "@/model", "-o", "@/out", "--calib", "%DATA/text/calib.txt", "--seqlen",
              "300", NULL},
     .status = 2, .msg = "max_position_embeddings", .keep = {"@/model"}},
    {.name = "shard_size_overflows", .build = mk_calib_model,
     .argv = {"quantize", "@/model", "-o", "@/out", "--method", "rtn", "--max-shard-size",
              "99999999999TB", NULL},
     .status = 2, .msg = "--max-shard-size", .keep = {"@/model"}},
    {.name = "block_size_not_power_of_two", .build = mk_calib_model,
     .argv = {"quantize", "@/model", "-o", "@/out", "--method", "rtn", "--block-size", "100",
              NULL},
     .status = 2, .msg = "--block-size", .keep = {"@/model"}},
    {.name = "nsamples_zero", .build = mk_calib_model,
     .argv = {"quantize", "@/model", "-o", "@/out", "--calib", "%DATA/text/calib.txt",
              "--nsamples", "0", NULL},
     .status = 2, .msg = "--nsamples", .keep = {"@/model"}},
    {.name = "calib_bytes_zero", .build = mk_calib_model,
     .argv = {"quantize", "@/model", "-o", "@/out", "--calib", "%DATA/text/calib.txt",
              "--calib-bytes", "0", NULL},
     .status = 2, .msg = "--calib-bytes", .keep = {"@/model"}},
    {.name = "log_json_unwritable", .build = mk_calib_model,
     .argv = {"quantize", "@/model", "-o", "@/out", "--method", "rtn", "--log-json",
              "@/no/such/dir/log.jsonl", NULL},
     .status = 1, .msg = "log.jsonl", .keep = {"@/model"}},
    {.name = "backend_plugin_missing", .build = mk_calib_model,
     .argv = {"quantize", "@/model", "-o", "@/out", "--method", "rtn", "--backend",
              "@/libgptq-nothere.so", NULL},
     .status = 1, .msg = "libgptq-nothere.so", .keep = {"@/model"}},
    {.name = "backend_name_missing", .build = mk_calib_model,
     .argv = {"quantize", "@/model", "-o", "@/out", "--method", "rtn", "--backend",
              "nosuchbackend", NULL},
     .status = 1, .msg = "nosuchbackend", .keep = {"@/model"}},
};
CH_TABLE(cli_quantize_errors, quantize_errors)

/* A plugin built for an older ABI is refused with both numbers. */
Test(cli_quantize, old_plugin_refused)
{
    char model[1024], out[1024], plug[1024];
    cc_data(model, "tiny-llama");
    cc_plugin(plug, "old");
    cli_result r;
    ch_run(&r, 60.0, "quantize", model, "-o", at(out, "q"), "--method", "rtn", "--backend", plug,
           NULL);
    ch_expect(&r, 1, "ABI");
    cr_assert(access(out, F_OK) != 0, "a failed run left %s", out);
    ch_result_free(&r);
}
