/*
 * test_gar.c — GAR (act_group_aware, issue 13) through the built `gptq`:
 *   - `layer`: on by default (metadata act_group_aware true, perm in whole
 *     groups ordered by their largest diag(H), g_idx = k / G), off with
 *     --no-act-group-aware (the paper's order), --desc-act, --group-size -1
 *     or RTN, as GPTQModel resolves it;
 *   - `quantize`: the default checkpoint is GAR's (different bytes from the
 *     paper order's, g_idx still k / G), quantization_config.meta records
 *     act_group_aware where GPTQModel writes it, in config.json and
 *     quantize_config.json; eval reads it back;
 *   - --dynamic: a rule's desc_act: true turns GAR off for its modules
 *     (act-order there), a rule's act_group_aware: false gives the paper's
 *     order to its modules only, and the rule is written back.
 * The goldens of ref/ (test ref) pin GAR's bytes against the oracle; the
 * hostile rows (test hostile_args, hostile_input) its refusals.
 */
#include "cli_checks.h"

static char g_dir[512];

static void setup(void) { ch_mkdtemp(g_dir, "gar"); }
static void teardown(void) { ch_rm_tree(g_dir); }

TestSuite(gar, .init = setup, .fini = teardown, .timeout = 240);

static char *at(char *buf, const char *name) { return ch_join(buf, g_dir, name); }

/* A `gptq layer` input: W (R, C) and X (n, C) whose columns have scales
 * 1 + (c * 37 % 97) / 10, so diag(H) differs from column to column. */
static void write_layer_input(const char *p, int64_t R, int64_t C, int64_t n)
{
    gptq_tensor t[2];
    int64_t sw[2] = {R, C}, sx[2] = {n, C};
    cr_assert_eq(gptq_tensor_alloc(&t[0], GPTQ_F32, 2, sw), GPTQ_OK);
    cr_assert_eq(gptq_tensor_alloc(&t[1], GPTQ_F32, 2, sx), GPTQ_OK);
    float *w = t[0].data, *x = t[1].data;
    uint64_t s = 12345;
    for (int64_t i = 0; i < R * C + n * C; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        const float u = (float)((double)(s >> 11) / 9007199254740992.0) - 0.5f;
        if (i < R * C) w[i] = 0.05f * u;
        else x[i - R * C] = u * (1.0f + (float)((i - R * C) % C * 37 % 97) / 10.0f);
    }
    const char *names[2] = {"W", "X"};
    cr_assert_eq(gptq_st_save(p, 2, names, t), GPTQ_OK, "%s", gptq_last_error());
    gptq_tensor_free(&t[0]);
    gptq_tensor_free(&t[1]);
}

/* The bytes of tensor name in two files are the same */
static int same_tensor(const gptq_st_file *a, const gptq_st_file *b, const char *name)
{
    gptq_st_info x = cc_tensor(a, name), y = cc_tensor(b, name);
    return x.nbytes == y.nbytes && memcmp(x.data, y.data, x.nbytes) == 0;
}

static const int32_t *i32(const gptq_st_file *f, const char *name, int64_t n)
{
    gptq_st_info i = cc_tensor(f, name);
    cr_assert(i.dtype == GPTQ_I32 && i.nbytes == (size_t)n * 4, "%s", name);
    return i.data;
}

/* `gptq layer IN -o OUT args...`; the output opened */
static gptq_st_file *layer(const char *in, const char *out, const char *a0, const char *a1,
                           const char *a2)
{
    cli_result r;
    cc_ok(&r, "layer", in, "-o", out, "--quiet", "--asym", "--group-size", "32", a0, a1, a2);
    ch_result_free(&r);
    return cc_open_st(out);
}

Test(gar, layer_default_and_its_switches)
{
    enum { R = 32, C = 256, N = 128, G = 32 };
    char in[1024], out[1024], gar_out[1024];
    write_layer_input(at(in, "in.safetensors"), R, C, N);

    /* default: GAR. perm runs through whole groups, in the order of their
     * largest diag(H) (H is in the output), each by diag(H) descending */
    gptq_st_file *f = layer(in, at(out, "gar.safetensors"), NULL, NULL, NULL);
    cr_assert_str_eq(gptq_st_metadata(f, "act_group_aware"), "true");
    cr_assert_str_eq(gptq_st_metadata(f, "desc_act"), "false");
    const int32_t *perm = i32(f, "perm", C), *g = i32(f, "g_idx", C);
    const float *H = cc_tensor(f, "H").data;
    float prev_max = INFINITY;
    int ordered = 1;
    for (int p = 0; p < C / G; p++) {
        const int grp = perm[p * G] / G;
        float mx = -INFINITY;
        for (int i = 0; i < G; i++) {
            const int k = perm[p * G + i];
            cr_assert_eq(k / G, grp, "position %d: column %d outside group %d", p * G + i, k, grp);
            if (i) cr_assert(H[k * C + k] <= H[perm[p * G + i - 1] * (C + 1)], "not descending");
            mx = fmaxf(mx, H[k * C + k]);
        }
        cr_assert(mx <= prev_max, "group %d (largest diag %g) after a smaller one", grp, mx);
        ordered &= grp == p;
        prev_max = mx;
    }
    cr_assert(!ordered, "this input's groups are not in column order: GAR must move them");
    for (int k = 0; k < C; k++) cr_assert_eq(g[k], k / G, "g_idx[%d]", k);
    gptq_st_close(f);

    /* --no-act-group-aware: the paper's order; the codes differ */
    f = layer(in, at(out, "paper.safetensors"), "--no-act-group-aware", NULL, NULL);
    cr_assert_str_eq(gptq_st_metadata(f, "act_group_aware"), "false");
    perm = i32(f, "perm", C);
    for (int k = 0; k < C; k++) cr_assert_eq(perm[k], k);
    gptq_st_file *fg = cc_open_st(at(gar_out, "gar.safetensors"));
    cr_assert(!same_tensor(f, fg, "codes"), "GAR changed no code");
    gptq_st_close(fg);
    gptq_st_close(f);

    /* the last of --act-group-aware / --no-act-group-aware wins */
    f = layer(in, at(out, "last.safetensors"), "--no-act-group-aware", "--act-group-aware", NULL);
    cr_assert_str_eq(gptq_st_metadata(f, "act_group_aware"), "true");
    gptq_st_close(f);

    /* off by default where it cannot apply: act-order, one group per row, RTN */
    f = layer(in, at(out, "act.safetensors"), "--desc-act", NULL, NULL);
    cr_assert_str_eq(gptq_st_metadata(f, "act_group_aware"), "false");
    gptq_st_close(f);
    f = layer(in, at(out, "row.safetensors"), "--group-size", "-1", NULL);
    cr_assert_str_eq(gptq_st_metadata(f, "act_group_aware"), "false");
    perm = i32(f, "perm", C);
    for (int k = 0; k < C; k++) cr_assert_eq(perm[k], k);
    gptq_st_close(f);
    f = layer(in, at(out, "rtn.safetensors"), "--method", "rtn", "--act-group-aware");
    cr_assert_str_eq(gptq_st_metadata(f, "act_group_aware"), "false");
    gptq_st_close(f);
}

/* quantization_config (config.json and quantize_config.json) of dir:
 * meta.act_group_aware and desc_act */
static void check_recorded(const char *dir, int gar, int desc_act)
{
    const char *files[2] = {"config.json", "quantize_config.json"};
    for (int i = 0; i < 2; i++) {
        char p[1024];
        cJSON *j = cc_json_file(ch_join(p, dir, files[i]));
        const cJSON *q = i ? j : cJSON_GetObjectItemCaseSensitive(j, "quantization_config");
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(q, "meta");
        cr_assert_eq(cc_bool(meta, "act_group_aware"), gar, "%s: meta.act_group_aware", p);
        cr_assert_eq(cc_bool(q, "desc_act"), desc_act, "%s: desc_act", p);
        cJSON_Delete(j);
    }
}

/* g_idx of module prefix is k / G */
static int trivial_g_idx(const gptq_st_file *f, const char *prefix, int64_t cols, int G)
{
    char n[300];
    snprintf(n, sizeof n, "%s.g_idx", prefix);
    const int32_t *g = i32(f, n, cols);
    for (int64_t k = 0; k < cols; k++)
        if (g[k] != k / G) return 0;
    return 1;
}

static void quantize(const char *out, const char *a0, const char *a1, const char *a2)
{
    char model[1024], calib[1024];
    cc_data(model, "tiny-llama");
    cc_data(calib, "text/calib.txt");
    cli_result r;
    cc_ok(&r, "quantize", model, "-o", out, "--calib", calib, "--nsamples", "4", "--seqlen",
          "64", "--asym", "--group-size", "64", "--quiet", a0, a1, a2);
    ch_result_free(&r);
}

static const struct {
    const char *name;
    int64_t cols;
} k_mods[7] = {
    {"self_attn.q_proj", 256}, {"self_attn.k_proj", 256}, {"self_attn.v_proj", 256},
    {"self_attn.o_proj", 256}, {"mlp.gate_proj", 256},    {"mlp.up_proj", 256},
    {"mlp.down_proj", 384},
};

/* The default checkpoint is GAR's: recorded, g_idx = k / G everywhere, other
 * bytes than the paper order's; --desc-act records false; eval reads both. */
Test(gar, quantize_default_checkpoint_is_gar)
{
    char d[1024], p[1024], a[1024], text[1024];
    quantize(at(d, "default"), NULL, NULL, NULL);
    quantize(at(p, "paper"), "--no-act-group-aware", NULL, NULL);
    quantize(at(a, "act"), "--desc-act", NULL, NULL);
    check_recorded(d, 1, 0);
    check_recorded(p, 0, 0);
    check_recorded(a, 0, 1);
    gptq_st_file *fd = cc_open_st(d), *fp = cc_open_st(p);
    int differ = 0;
    for (int L = 0; L < 3; L++)
        for (int m = 0; m < 7; m++) {
            char prefix[256], n[300];
            snprintf(prefix, sizeof prefix, "model.layers.%d.%s", L, k_mods[m].name);
            cr_assert(trivial_g_idx(fd, prefix, k_mods[m].cols, 64), "%s: g_idx", prefix);
            snprintf(n, sizeof n, "%s.qweight", prefix);
            differ += !same_tensor(fd, fp, n);
        }
    cr_assert_geq(differ, 20, "GAR changed only %d of 21 modules' qweight", differ);
    gptq_st_close(fd);
    gptq_st_close(fp);
    cc_data(text, "text/eval.txt");
    cc_ppl e = cc_eval(d, text, 64, 4);
    cr_assert(e.ppl > 1.0 && isfinite(e.ppl), "eval of the GAR checkpoint: %g", e.ppl);
}

/* --dynamic: a rule's desc_act: true gives its modules act-order (g_idx
 * permuted) and GAR off, the others keep GAR; a rule's act_group_aware:
 * false gives q_proj the paper's order (layer 0's q_proj, the first module,
 * then has the bytes of the paper-order run, and k_proj, calibrated on the
 * same inputs, those of the default run). Both rules are written back. */
Test(gar, dynamic_rules_and_gar)
{
    char d[1024], p[1024], x[1024], y[1024], cfgp[1024];
    quantize(at(d, "default"), NULL, NULL, NULL);
    quantize(at(p, "paper"), "--no-act-group-aware", NULL, NULL);
    quantize(at(x, "down_act"), "--dynamic",
             "{\"+:model\\\\.layers\\\\.\\\\d+\\\\.mlp\\\\.down_proj\": {\"desc_act\": true}}", NULL);
    quantize(at(y, "q_paper"), "--dynamic",
             "{\"+:.*q_proj\": {\"act_group_aware\": false}}", NULL);

    gptq_st_file *fx = cc_open_st(x), *fd = cc_open_st(d), *fp = cc_open_st(p), *fy = cc_open_st(y);
    for (int L = 0; L < 3; L++) {
        char prefix[256];
        snprintf(prefix, sizeof prefix, "model.layers.%d.mlp.down_proj", L);
        cr_assert(!trivial_g_idx(fx, prefix, 384, 64), "%s: act-order by its rule", prefix);
        snprintf(prefix, sizeof prefix, "model.layers.%d.mlp.up_proj", L);
        cr_assert(trivial_g_idx(fx, prefix, 256, 64), "%s", prefix);
    }
    /* layer 0 before down_proj: the default run's bytes (GAR) */
    cr_assert(same_tensor(fx, fd, "model.layers.0.mlp.up_proj.qweight"));
    cr_assert(same_tensor(fy, fp, "model.layers.0.self_attn.q_proj.qweight"),
              "q_proj: not the paper order's bytes");
    cr_assert(!same_tensor(fy, fd, "model.layers.0.self_attn.q_proj.qweight"));
    cr_assert(same_tensor(fy, fd, "model.layers.0.self_attn.k_proj.qweight"),
              "k_proj: not GAR's bytes");
    gptq_st_close(fx);
    gptq_st_close(fd);
    gptq_st_close(fp);
    gptq_st_close(fy);

    check_recorded(x, 1, 0);
    cJSON *c = cc_json_file(ch_join(cfgp, y, "config.json"));
    const cJSON *dyn = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(c, "quantization_config"), "dynamic");
    const cJSON *rule = cJSON_GetObjectItemCaseSensitive(dyn, "+:.*q_proj");
    cr_assert(cJSON_IsObject(rule), "the rule is not written back");
    cr_assert_eq(cc_bool(rule, "act_group_aware"), 0);
    cJSON_Delete(c);
    char text[1024];
    cc_data(text, "text/eval.txt");
    cc_ppl e = cc_eval(y, text, 64, 2);
    cr_assert(isfinite(e.ppl), "eval reads the rule back");
}
