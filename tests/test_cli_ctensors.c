/*
 * test_cli_ctensors.c — `gptq quantize --format compressed-tensors`
 * through the built gptq (tests/cli_harness.h):
 *   - the same run written as gptq_v2 and as compressed-tensors evaluates
 *     to the same perplexity string (asym 4-bit g64; sym 8-bit per channel);
 *   - config.json's quantization_config keys; quantize_config.json keeps
 *     gptq-c's meta (the output policy recognizes the folder: a second
 *     run replaces it without --overwrite);
 *   - every quantized linear's tensors, their dtypes and shapes;
 *   - `gptq matmul` on both gives the same Y and W bytes, `gptq generate`
 *     the same greedy text;
 *   - GPTQ with GAR (the default) writes "actorder": "weight";
 *   - tools/load_ctensors_torch.py (written from the format's description)
 *     dequantizes q_proj to the W gptq matmul gives (skips without torch).
 * Bad inputs: test_hostile_input.c, section "ctensors".
 */
#include "cli_checks.h"

#include <sys/wait.h>
#include <unistd.h>

CC_SCRATCH_DIR("clict")

TestSuite(cli_ctensors, .init = setup, .fini = teardown, .timeout = 240);

static const cJSON *weights_of(const cJSON *qc)
{
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(qc, "config_groups");
    cr_assert(cJSON_IsObject(g) && cJSON_GetArraySize(g) == 1, "config_groups: one group");
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(g->child, "weights");
    cr_assert(cJSON_IsObject(w));
    return w;
}

/* X (3, 256) F32 in g_dir/x.safetensors */
static void write_x(char *x)
{
    float X[3 * 256];
    for (int i = 0; i < 3 * 256; i++) X[i] = (float)((i * 7) % 13 - 6) / 8.0f;
    gptq_st_writer *sw;
    const int64_t xs[2] = {3, 256};
    cr_assert_eq(gptq_st_writer_open(at(x, "x.safetensors"), &sw), GPTQ_OK);
    cr_assert_eq(gptq_st_writer_declare(sw, "X", GPTQ_F32, 2, xs), GPTQ_OK);
    cr_assert_eq(gptq_st_writer_write(sw, X, sizeof X), GPTQ_OK);
    cr_assert_eq(gptq_st_writer_commit(sw), GPTQ_OK);
}

static void same_tensor(const char *fa, const char *fb, const char *name)
{
    gptq_st_file *f1 = cc_open_st(fa), *f2 = cc_open_st(fb);
    gptq_st_info a = cc_tensor(f1, name), b = cc_tensor(f2, name);
    cr_assert(a.nbytes == b.nbytes && !memcmp(a.data, b.data, a.nbytes), "%s: %s differs from %s",
              name, fa, fb);
    gptq_st_close(f1);
    gptq_st_close(f2);
}

/* quantize twice (gptq_v2, compressed-tensors) with `extra` options; the
 * same ppl; the config; the tensors; matmul's Y and W. */
static void pair(const char *tag, int bits, int sym, int group, const char *const *extra, int nx)
{
    char model[1024], text[1024], v2[1024], ct[1024], b[16], g[16];
    cc_data(model, "tiny-llama");
    cc_data(text, "text/eval.txt");
    snprintf(b, sizeof b, "%d", bits);
    snprintf(g, sizeof g, "%d", group);
    char n1[64], n2[64];
    snprintf(n1, sizeof n1, "%s_v2", tag);
    snprintf(n2, sizeof n2, "%s_ct", tag);
    at(v2, n1);
    at(ct, n2);
    for (int k = 0; k < 2; k++) {
        const char *argv[40] = {"quantize", model, "-o", k ? ct : v2, "--bits", b,
                                "--group-size", g, "--format", k ? "compressed-tensors" : "gptq_v2",
                                "--quiet", sym ? "--sym" : "--asym"};
        int n = 12;
        for (int i = 0; i < nx; i++) argv[n++] = extra[i];
        argv[n] = NULL;
        cli_result r;
        ch_run_opts(&r, &(ch_opts){.timeout = 200}, argv);
        cr_assert_eq(r.status, 0, "quantize: %s", r.err);
        ch_result_free(&r);
    }
    /* the same codes, zeros and fp16 scales: the same ppl, to the digit */
    const cc_ppl e1 = cc_eval(v2, text, 128, 4), e2 = cc_eval(ct, text, 128, 4);
    cr_assert_str_eq(e1.text, e2.text, "gptq_v2 %s, compressed-tensors %s", e1.text, e2.text);

    /* generate: the same greedy continuation */
    cli_result g1, g2;
    cc_ok(&g1, "generate", v2, "--prompt", "Once upon a time", "-n", "12");
    cc_ok(&g2, "generate", ct, "--prompt", "Once upon a time", "-n", "12");
    cr_assert(g1.out[0] && !strcmp(g1.out, g2.out), "generate: \"%s\" vs \"%s\"", g1.out,
              g2.out);
    ch_result_free(&g1);
    ch_result_free(&g2);

    char p[1024];
    cJSON *cfg = cc_json_file(ch_join(p, ct, "config.json"));
    const cJSON *qc = cJSON_GetObjectItemCaseSensitive(cfg, "quantization_config");
    cr_assert_str_eq(cc_str(qc, "quant_method"), "compressed-tensors");
    cr_assert_str_eq(cc_str(qc, "format"), "pack-quantized");
    cr_assert(!cJSON_GetObjectItemCaseSensitive(qc, "meta"), "config.json carries meta");
    const cJSON *w = weights_of(qc);
    cr_assert_eq((int)cc_num(w, "num_bits"), bits);
    cr_assert_str_eq(cc_str(w, "type"), "int");
    cr_assert_eq(cc_bool(w, "symmetric"), sym);
    cr_assert_str_eq(cc_str(w, "strategy"), group == -1 ? "channel" : "group");
    if (group != -1) cr_assert_eq((int)cc_num(w, "group_size"), group);
    const cJSON *ig = cJSON_GetObjectItemCaseSensitive(qc, "ignore");
    cr_assert(cJSON_IsArray(ig) && cJSON_GetArraySize(ig) == 1 &&
              !strcmp(cJSON_GetArrayItem(ig, 0)->valuestring, "lm_head"));
    cJSON_Delete(cfg);
    cJSON *qf = cc_json_file(ch_join(p, ct, "quantize_config.json"));
    cr_assert(cJSON_GetObjectItemCaseSensitive(qf, "meta"), "quantize_config.json lacks meta");
    cJSON_Delete(qf);

    /* every quantized linear's tensors, none of GPTQ's */
    gptq_st_file *f = cc_open_st(ct);
    const int pf = 32 / bits;
    const int64_t K = 256, G = group == -1 ? K : group, ng = (K + G - 1) / G;
    const char *q0 = "model.layers.1.self_attn.q_proj";
    char name[256];
    snprintf(name, sizeof name, "%s.weight_packed", q0);
    gptq_st_info t = cc_tensor(f, name);
    cr_assert(t.dtype == GPTQ_I32 && t.shape[0] == 256 && t.shape[1] == K / pf);
    snprintf(name, sizeof name, "%s.weight_scale", q0);
    t = cc_tensor(f, name);
    cr_assert(t.dtype == GPTQ_F16 && t.shape[0] == 256 && t.shape[1] == ng);
    snprintf(name, sizeof name, "%s.weight_shape", q0);
    t = cc_tensor(f, name);
    int64_t ws[2];
    memcpy(ws, t.data, sizeof ws);
    cr_assert(t.dtype == GPTQ_I64 && ws[0] == 256 && ws[1] == K);
    snprintf(name, sizeof name, "%s.weight_zero_point", q0);
    gptq_st_info z;
    cr_assert_eq(gptq_st_find(f, name, &z) == GPTQ_OK, !sym, "zero point stored iff asym");
    if (!sym) cr_assert(z.dtype == GPTQ_I32 && z.shape[0] == 256 / pf && z.shape[1] == ng);
    snprintf(name, sizeof name, "%s.qweight", q0);
    cr_assert_neq(gptq_st_find(f, name, &t), GPTQ_OK, "a GPTQ tensor is left");
    gptq_st_close(f);

    /* matmul: the same Y and W from both */
    char x[1024], y1[1024], y2[1024];
    write_x(x);
    cc_ok_run("matmul", v2, "--module", q0, "-x", x, "-o", at(y1, "y1.safetensors"), "--dequant",
              "--quiet");
    cc_ok_run("matmul", ct, "--module", q0, "-x", x, "-o", at(y2, "y2.safetensors"), "--dequant",
              "--quiet");
    same_tensor(y1, y2, "Y");
    same_tensor(y1, y2, "W");

    /* the independent loader: W as gptq matmul dequantizes it, exactly
     * (f32(fp16 scale) * small integer is exact in f32 both ways) */
    char cmd[4096], wt[1024];
    /* Debian's interpreter, where python3-torch installs, before one on PATH */
    const char *py = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
    snprintf(cmd, sizeof cmd, "%s '%s/tools/load_ctensors_torch.py' '%s' %s '%s'", py,
             ch_source_root(), ct, q0, at(wt, "wt.safetensors"));
    const int rc = system(cmd);
    if (WIFEXITED(rc) && WEXITSTATUS(rc) == 77)
        cr_skip_test("tools/load_ctensors_torch.py: torch is not installed");
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "%s: status %d", cmd, rc);
    same_tensor(y1, wt, "W");
}

Test(cli_ctensors, asym_4bit_g64_same_ppl_as_gptq_v2)
{
    const char *rtn[] = {"--method", "rtn"};
    pair("a4", 4, 0, 64, rtn, 2);
}

Test(cli_ctensors, sym_8bit_channel_same_ppl_as_gptq_v2)
{
    const char *rtn[] = {"--method", "rtn"};
    pair("s8", 8, 1, -1, rtn, 2);
}

/* GPTQ with GAR (the default): columns solved in activation order, groups
 * contiguous: "actorder": "weight"; the same ppl as its gptq_v2 twin */
Test(cli_ctensors, gptq_gar_actorder_weight)
{
    char calib[1024];
    cc_data(calib, "text/calib.txt");
    const char *extra[] = {"--calib", calib, "--nsamples", "2", "--seqlen", "64"};
    pair("gar", 4, 0, 64, extra, 6);
    char p[1024], ct[1024];
    cJSON *cfg = cc_json_file(ch_join(p, at(ct, "gar_ct"), "config.json"));
    const cJSON *w = weights_of(cJSON_GetObjectItemCaseSensitive(cfg, "quantization_config"));
    cr_assert_str_eq(cc_str(w, "actorder"), "weight");
    cJSON_Delete(cfg);
}

/* --format compressed-tensors over its own earlier output: ours (meta in
 * quantize_config.json), so no --overwrite is needed */
Test(cli_ctensors, rerun_replaces_its_own_folder)
{
    char model[1024], out[1024];
    cc_data(model, "tiny-llama");
    at(out, "again");
    for (int i = 0; i < 2; i++) {
        cc_ok_run("quantize", model, "-o", out, "--method", "rtn", "--format",
                  "compressed-tensors", "--quiet");
    }
}
