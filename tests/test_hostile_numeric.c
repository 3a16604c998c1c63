/*
 * test_hostile_numeric.c — hostile-input rows for the numbers (issue 9,
 * "numerics and messages"): damp options out of range and a damp schedule
 * that cannot succeed, NaN/Inf and tiny weights for `gptq layer`, `gptq
 * compare` on files holding NaN, impossible codes or a dequant that is not
 * theirs, `gptq eval` on weights and scales holding NaN/Inf, every numeric
 * option past its limit (the message gives the real limit), a short qweight,
 * a plugin failing without a reason, and the prefix every line carries.
 * Each row runs the built `gptq` (tests/cli_harness.h); inputs are made by
 * the library's own writers (gptq_st_save, gptq_st_writer) or by patching
 * bytes of a copy in place.
 */
#include "cli_harness.h"

#include <math.h>

#include "gptq.h"

/* ------------------------------------------------------------------ */
/* Builders                                                            */
/* ------------------------------------------------------------------ */

static void save(const char *dir, const char *file, int n, const char *const *names,
                 const gptq_tensor *t)
{
    char p[1024];
    cr_assert_eq(gptq_st_save(ch_join(p, dir, file), n, names, t), GPTQ_OK, "%s",
                 gptq_last_error());
}

/* deterministic numbers independent of libc: roughly normal, scaled */
static void fill(float *a, int64_t n, uint64_t seed, double scale)
{
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++) {
        double v = 0.0;
        for (int k = 0; k < 4; k++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            v += (double)(s >> 11) / 9007199254740992.0 - 0.5;
        }
        a[i] = (float)(v * scale);
    }
}

enum { LR = 64, LC = 128, LN = 256 }; /* layer rows: W (64, 128), X (256, 128) */

typedef enum { BAD_NONE, BAD_W, BAD_X, BAD_H } bad_where;

/* @/in.safetensors: W (LR, LC) of magnitude wmag and X (LN, LC); or, when
 * the bad value goes into H or indef_a is not 0, W and H (LC, LC) instead
 * of X: H = 2/n X^T X, or the identity with H[7][7] = -indef_a (positive
 * definite after damping exactly when lambda > indef_a). */
static void layer_input(const char *dir, double wmag, bad_where where, float bad, float indef_a)
{
    gptq_tensor t[2];
    const int64_t ws[2] = {LR, LC}, xs[2] = {LN, LC}, hs[2] = {LC, LC};
    const int use_h = where == BAD_H || indef_a != 0.0f;
    cr_assert_eq(gptq_tensor_alloc(&t[0], GPTQ_F32, 2, ws), GPTQ_OK);
    cr_assert_eq(gptq_tensor_alloc(&t[1], GPTQ_F32, 2, use_h ? hs : xs), GPTQ_OK);
    float *W = t[0].data, *Y = t[1].data;
    fill(W, LR * LC, 1, wmag);
    if (!use_h) {
        fill(Y, LN * LC, 2, 1.0);
    } else if (indef_a != 0.0f) {
        for (int i = 0; i < LC; i++) Y[i * LC + i] = 1.0f;
        Y[7 * LC + 7] = -indef_a;
    } else {
        float *X = malloc(sizeof(float) * LN * LC);
        fill(X, LN * LC, 2, 1.0);
        for (int a = 0; a < LC; a++)
            for (int b = 0; b < LC; b++) {
                double s = 0.0;
                for (int n = 0; n < LN; n++) s += (double)X[n * LC + a] * X[n * LC + b];
                Y[a * LC + b] = (float)(2.0 * s / LN);
            }
        free(X);
    }
    if (where == BAD_W) W[3 * LC + 5] = bad;
    if (where == BAD_X) Y[2 * LC + 7] = bad;
    if (where == BAD_H) Y[1 * LC + 2] = bad;
    const char *names[2] = {"W", use_h ? "H" : "X"};
    save(dir, "in.safetensors", 2, names, t);
    gptq_tensor_free(&t[0]);
    gptq_tensor_free(&t[1]);
}

static void b_layer(const char *d) { layer_input(d, 0.02, BAD_NONE, 0.0f, 0.0f); }
static void b_w_nan(const char *d) { layer_input(d, 0.02, BAD_W, NAN, 0.0f); }
static void b_w_inf(const char *d) { layer_input(d, 0.02, BAD_W, -INFINITY, 0.0f); }
static void b_x_nan(const char *d) { layer_input(d, 0.02, BAD_X, NAN, 0.0f); }
static void b_x_inf(const char *d) { layer_input(d, 0.02, BAD_X, INFINITY, 0.0f); }
static void b_h_nan(const char *d) { layer_input(d, 0.02, BAD_H, NAN, 0.0f); }
static void b_h_inf(const char *d) { layer_input(d, 0.02, BAD_H, INFINITY, 0.0f); }
/* f32 subnormal weights: their scales (~1e-41) round to 0 in fp16 */
static void b_tiny(const char *d) { layer_input(d, 1e-40, BAD_NONE, 0.0f, 0.0f); }
/* weights ~1e-6: scales ~1e-7 are fp16 subnormals (a step of 6e-8) */
static void b_small(const char *d) { layer_input(d, 1e-6, BAD_NONE, 0.0f, 0.0f); }
/* mean(diag H) = (127 - a) / 128: a = 0.0435 needs damp > 0.0439 (five
 * tries from 0.01 in steps of 0.01), a = 0.5 needs damp > 0.506, a = 0.999
 * needs damp > 1.015, above damp_max */
static void b_indef_small(const char *d) { layer_input(d, 0.02, BAD_NONE, 0.0f, 0.0435f); }
static void b_indef_big(const char *d) { layer_input(d, 0.02, BAD_NONE, 0.0f, 0.5f); }
static void b_indef_huge(const char *d) { layer_input(d, 0.02, BAD_NONE, 0.0f, 0.999f); }

/* Byte offset of tensor `name` in a safetensors file: 8 + the header
 * length + its data offset (the first tensor in file order is at 0). */
static long tensor_offset(const char *path, const char *name, size_t *nbytes)
{
    gptq_st_file *f = NULL;
    cr_assert_eq(gptq_st_open(path, &f), GPTQ_OK, "%s", gptq_last_error());
    gptq_st_info first, t;
    cr_assert_eq(gptq_st_get(f, 0, &first), GPTQ_OK);
    cr_assert_eq(gptq_st_find(f, name, &t), GPTQ_OK, "%s", gptq_last_error());
    const long rel = (long)((const char *)t.data - (const char *)first.data);
    if (nbytes) *nbytes = t.nbytes;
    gptq_st_close(f);
    FILE *fp = fopen(path, "rb");
    unsigned char h[8];
    cr_assert(fp && fread(h, 1, 8, fp) == 8);
    fclose(fp);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | h[i];
    return 8 + (long)hl + rel;
}

/* Overwrite n bytes of tensor `name` from byte `at` of its data. */
static void patch(const char *path, const char *name, size_t at, const void *bytes, size_t n)
{
    size_t nb = 0;
    const long off = tensor_offset(path, name, &nb);
    cr_assert(at + n <= nb, "patch past the end of %s", name);
    FILE *fp = fopen(path, "r+b");
    cr_assert(fp, "%s: %s", path, strerror(errno));
    cr_assert_eq(fseek(fp, off + (long)at, SEEK_SET), 0);
    cr_assert_eq(fwrite(bytes, 1, n, fp), n);
    cr_assert_eq(fclose(fp), 0);
}

static void patch_f32(const char *path, const char *name, size_t elem, float v)
{
    patch(path, name, elem * 4, &v, 4);
}

static void patch_u16(const char *path, const char *name, size_t elem, uint16_t v)
{
    const unsigned char b[2] = {(unsigned char)(v & 0xff), (unsigned char)(v >> 8)};
    patch(path, name, elem * 2, b, 2);
}

/* ------------------------------------------------------------------ */
/* compare: a = `gptq layer` of b_layer's input, b = a copy, one damaged */
/* ------------------------------------------------------------------ */

static void b_pair(const char *d)
{
    b_layer(d);
    ch_sh("'%s' layer '%s/in.safetensors' -o '%s/a.safetensors' --quiet", ch_cli(), d, d);
    ch_sh("cp '%s/a.safetensors' '%s/b.safetensors'", d, d);
}

static void in_file(char *p, const char *d, const char *f) { ch_join(p, d, f); }

static void b_cmp_nan_dequant_b(const char *d)
{
    char p[1024];
    b_pair(d);
    in_file(p, d, "b.safetensors");
    patch_f32(p, "dequant", 5, NAN);
}
static void b_cmp_nan_dequant_a(const char *d)
{
    char p[1024];
    b_pair(d);
    in_file(p, d, "a.safetensors");
    patch_f32(p, "dequant", 0, NAN);
}
static void b_cmp_inf_scales_b(const char *d)
{
    char p[1024];
    b_pair(d);
    in_file(p, d, "b.safetensors");
    patch_f32(p, "scales_f32", 3, INFINITY);
}
/* the checkpoint's fp16 scales, which the comparison itself does not use */
static void b_cmp_nan_fp16_scales_b(const char *d)
{
    char p[1024];
    b_pair(d);
    in_file(p, d, "b.safetensors");
    patch_u16(p, "scales", 3, 0x7e00);
}
static void b_cmp_nan_h_a(const char *d)
{
    char p[1024];
    b_pair(d);
    in_file(p, d, "a.safetensors");
    patch_f32(p, "H", 130, NAN);
}
static void b_cmp_nan_h_b(const char *d)
{
    char p[1024];
    b_pair(d);
    in_file(p, d, "b.safetensors");
    patch_f32(p, "H", 1, NAN);
}
/* every code 255: compared as identical before (the dequant was unchanged) */
static void b_cmp_codes_255(const char *d)
{
    char p[1024];
    b_pair(d);
    in_file(p, d, "b.safetensors");
    unsigned char *ff = malloc(LR * LC);
    memset(ff, 0xff, LR * LC);
    patch(p, "codes", 0, ff, LR * LC);
    free(ff);
}
/* one code moved within the grid, the dequant left as it was */
static void b_cmp_code_vs_dequant(const char *d)
{
    char p[1024];
    b_pair(d);
    in_file(p, d, "b.safetensors");
    size_t nb;
    const long off = tensor_offset(p, "codes", &nb);
    FILE *fp = fopen(p, "r+b");
    cr_assert(fp);
    cr_assert_eq(fseek(fp, off + 9, SEEK_SET), 0);
    int c = fgetc(fp);
    cr_assert(c >= 0 && c <= 15);
    cr_assert_eq(fseek(fp, off + 9, SEEK_SET), 0);
    fputc(c == 15 ? 14 : c + 1, fp);
    cr_assert_eq(fclose(fp), 0);
}
static void b_cmp_zero_99(const char *d)
{
    char p[1024];
    b_pair(d);
    in_file(p, d, "b.safetensors");
    const int32_t z = 99;
    patch(p, "zeros", 4 * 4, &z, 4);
}
static void b_cmp_gidx_7(const char *d)
{
    char p[1024];
    b_pair(d);
    in_file(p, d, "b.safetensors");
    const int32_t g = 7;
    patch(p, "g_idx", 3 * 4, &g, 4);
}
/* the dequant moved by one float step: not the file's codes and scales */
static void b_cmp_dequant_ulp(const char *d)
{
    char p[1024];
    b_pair(d);
    in_file(p, d, "b.safetensors");
    gptq_st_file *f = NULL;
    gptq_st_info t;
    cr_assert_eq(gptq_st_open(p, &f), GPTQ_OK);
    cr_assert_eq(gptq_st_find(f, "dequant", &t), GPTQ_OK);
    float v;
    memcpy(&v, (const char *)t.data + 4 * 11, 4);
    gptq_st_close(f);
    patch_f32(p, "dequant", 11, nextafterf(v, INFINITY));
}

/* a copy of a.safetensors with qweight one row short (the other tensors and
 * the metadata `gptq matmul` reads kept) into short.safetensors, and X */
static void b_short_qweight(const char *d)
{
    char a[1024], s[1024];
    b_pair(d);
    in_file(a, d, "a.safetensors");
    in_file(s, d, "short.safetensors");
    gptq_st_file *f = NULL;
    gptq_st_writer *w = NULL;
    cr_assert_eq(gptq_st_open(a, &f), GPTQ_OK);
    cr_assert_eq(gptq_st_writer_open(s, &w), GPTQ_OK);
    const char *keys[] = {"bits", "group_size", "checkpoint_format"};
    for (int k = 0; k < 3; k++)
        cr_assert_eq(gptq_st_writer_metadata(w, keys[k], gptq_st_metadata(f, keys[k])), GPTQ_OK);
    const int n = gptq_st_count(f);
    for (int i = 0; i < n; i++) {
        gptq_st_info t;
        cr_assert_eq(gptq_st_get(f, i, &t), GPTQ_OK);
        int64_t shape[GPTQ_MAX_DIMS];
        memcpy(shape, t.shape, sizeof shape);
        if (!strcmp(t.name, "qweight")) shape[0]--;
        cr_assert_eq(gptq_st_writer_declare(w, t.name, t.dtype, t.ndim, shape), GPTQ_OK);
    }
    for (int i = 0; i < n; i++) {
        gptq_st_info t;
        cr_assert_eq(gptq_st_get(f, i, &t), GPTQ_OK);
        size_t nb = t.nbytes;
        if (!strcmp(t.name, "qweight")) nb -= (size_t)t.shape[1] * 4;
        cr_assert_eq(gptq_st_writer_write(w, t.data, nb), GPTQ_OK, "%s", gptq_last_error());
    }
    cr_assert_eq(gptq_st_writer_commit(w), GPTQ_OK, "%s", gptq_last_error());
    gptq_st_close(f);
    gptq_tensor x;
    const int64_t xs[2] = {4, LC};
    cr_assert_eq(gptq_tensor_alloc(&x, GPTQ_F32, 2, xs), GPTQ_OK);
    fill(x.data, 4 * LC, 3, 1.0);
    const char *names[1] = {"X"};
    save(d, "x.safetensors", 1, names, &x);
    gptq_tensor_free(&x);
}

/* ------------------------------------------------------------------ */
/* models: the bundled tiny-llama (BF16) and text                      */
/* ------------------------------------------------------------------ */

static void b_model(const char *d)
{
    ch_sh("cp -a '%s/data/tiny-llama' '%s/model'", ch_source_root(), d);
    ch_sh("head -c 6000 '%s/data/text/eval.txt' > '%s/t.txt'", ch_source_root(), d);
}

static void model_file(char *p, const char *d) { ch_join(p, d, "model/model.safetensors"); }

static void b_eval_nan_weight(const char *d)
{
    char p[1024];
    b_model(d);
    model_file(p, d);
    patch_u16(p, "model.layers.1.mlp.up_proj.weight", 1000, 0x7fc0); /* BF16 NaN */
}
static void b_eval_inf_weight(const char *d)
{
    char p[1024];
    b_model(d);
    model_file(p, d);
    patch_u16(p, "model.layers.0.self_attn.q_proj.weight", 77, 0xff80); /* BF16 -Inf */
}
static void b_eval_nan_lm_head(const char *d)
{
    char p[1024];
    b_model(d);
    model_file(p, d);
    patch_u16(p, "lm_head.weight", 300, 0x7fc0);
}
static void b_eval_nan_norm(const char *d)
{
    char p[1024];
    b_model(d);
    model_file(p, d);
    patch_u16(p, "model.norm.weight", 5, 0x7fc0);
}
/* an RTN checkpoint of tiny-llama whose one fp16 scale is NaN or Inf */
static void b_ckpt(const char *d)
{
    b_model(d);
    ch_sh("'%s' quantize '%s/model' -o '%s/q' --method rtn --quiet", ch_cli(), d, d);
}
static void b_eval_nan_scale(const char *d)
{
    char p[1024];
    b_ckpt(d);
    ch_join(p, d, "q/model.safetensors");
    patch_u16(p, "model.layers.2.self_attn.v_proj.scales", 5, 0x7e00); /* fp16 NaN */
}
static void b_eval_inf_scale(const char *d)
{
    char p[1024];
    b_ckpt(d);
    ch_join(p, d, "q/model.safetensors");
    patch_u16(p, "model.layers.0.mlp.down_proj.scales", 17, 0x7c00); /* fp16 +Inf */
}

/* One module's BF16 weight scaled by f (re-rounded to BF16 by truncation:
 * the values only need the magnitude). */
static void scale_module(const char *d, const char *name, float f)
{
    char p[1024];
    size_t nb;
    model_file(p, d);
    const long off = tensor_offset(p, name, &nb);
    unsigned char *b = malloc(nb);
    FILE *fp = fopen(p, "r+b");
    cr_assert(fp && b);
    cr_assert_eq(fseek(fp, off, SEEK_SET), 0);
    cr_assert_eq(fread(b, 1, nb, fp), nb);
    for (size_t i = 0; i < nb; i += 2) {
        uint32_t u = (uint32_t)(b[i] | b[i + 1] << 8) << 16;
        float v;
        memcpy(&v, &u, 4);
        v *= f;
        memcpy(&u, &v, 4);
        b[i] = (unsigned char)(u >> 16);
        b[i + 1] = (unsigned char)(u >> 24);
    }
    cr_assert_eq(fseek(fp, off, SEEK_SET), 0);
    cr_assert_eq(fwrite(b, 1, nb, fp), nb);
    cr_assert_eq(fclose(fp), 0);
    free(b);
}
/* up_proj of layer 0 at ~1e-6 (BF16 keeps it): fp16-subnormal scales */
static void b_model_small_module(const char *d)
{
    b_model(d);
    scale_module(d, "model.layers.0.mlp.up_proj.weight", 5e-5f);
}
/* ... at ~1e-40 (a BF16 subnormal): scales that round to 0 in fp16 */
static void b_model_tiny_module(const char *d)
{
    b_model(d);
    scale_module(d, "model.layers.1.self_attn.k_proj.weight", 5e-39f);
}

/* a plugin whose create fails and whose error() returns NULL */
static void b_nullerr(const char *d)
{
    b_layer(d);
    const char *pd = getenv("GPTQ_TEST_PLUGIN_DIR");
    cr_assert(pd && *pd, "GPTQ_TEST_PLUGIN_DIR is not set (run through meson test)");
    ch_sh("ln -s '%s/libgptq-testnullerr.so' '%s/nullerr.so'", pd, d);
}

/* ------------------------------------------------------------------ */
/* The table                                                           */
/* ------------------------------------------------------------------ */

#define LAYER(...) {"layer", "@/in.safetensors", "-o", "@/out.safetensors", __VA_ARGS__, NULL}
#define QUANT(...) {"quantize", "@/model", "-o", "@/out", __VA_ARGS__, NULL}

static hostile_case numeric_table[] = {
    /* --damp-percent: (0, 1) where a config is written; layer also takes 0 */
    {.name = "quantize_damp_0", .build = b_model, .argv = QUANT("--damp-percent", "0"),
     .status = 2, .msg = "--damp-percent 0: must be a number in (0, 1)", .keep = {"@/model"}},
    {.name = "quantize_damp_1", .build = b_model, .argv = QUANT("--damp-percent", "1"),
     .status = 2, .msg = "--damp-percent 1: must be a number in (0, 1)", .keep = {"@/model"}},
    {.name = "quantize_damp_neg", .build = b_model, .argv = QUANT("--damp-percent", "-1"),
     .status = 2, .msg = "--damp-percent -1: must be a number in (0, 1)"},
    {.name = "quantize_damp_nan", .build = b_model, .argv = QUANT("--damp-percent", "nan"),
     .status = 2, .msg = "--damp-percent nan: must be a number in (0, 1)"},
    {.name = "quantize_damp_inf", .build = b_model, .argv = QUANT("--damp-percent", "inf"),
     .status = 2, .msg = "--damp-percent inf: must be a number in (0, 1)"},
    {.name = "quantize_damp_just_below_1", .build = b_model,
     .argv = QUANT("--damp-percent", "0.99999999"), .status = 2,
     .msg = "must be a number in (0, 1)"}, /* rounds to 1.0f */
    {.name = "layer_damp_1", .build = b_layer, .argv = LAYER("--damp-percent", "1"), .status = 2,
     .msg = "--damp-percent 1: must be a number in [0, 1)", .keep = {"@/in.safetensors"}},
    {.name = "layer_damp_neg", .build = b_layer, .argv = LAYER("--damp-percent", "-0.01"),
     .status = 2, .msg = "--damp-percent -0.01: must be a number in [0, 1)"},
    {.name = "layer_damp_nan", .build = b_layer, .argv = LAYER("--damp-percent", "nan"),
     .status = 2, .msg = "--damp-percent nan"},
    {.name = "layer_damp_0_ok", .build = b_layer, .argv = LAYER("--damp-percent", "0"),
     .status = 0},
    {.name = "layer_inc_neg", .build = b_layer, .argv = LAYER("--damp-auto-increment", "-1"),
     .status = 2, .msg = "--damp-auto-increment -1: must be a number in [0, 1]"},
    {.name = "layer_inc_2", .build = b_layer, .argv = LAYER("--damp-auto-increment", "2"),
     .status = 2, .msg = "--damp-auto-increment 2: must be a number in [0, 1]"},
    {.name = "layer_inc_inf", .build = b_layer, .argv = LAYER("--damp-auto-increment", "inf"),
     .status = 2, .msg = "--damp-auto-increment inf"},
    /* the retries: a tiny increment used to loop forever */
    {.name = "layer_inc_1e-30_terminates", .build = b_indef_small,
     .argv = LAYER("--damp-auto-increment", "1e-30"), .status = 1,
     .msg = "too small to change lambda", .timeout = 20},
    {.name = "layer_retries_bounded", .build = b_indef_big,
     .argv = LAYER("--damp-percent", "0.01", "--damp-auto-increment", "0.001"), .status = 1,
     .msg = "(100 retries from 0.01 in steps of 0.001", .timeout = 20},
    {.name = "layer_retries_succeed", .build = b_indef_small, .argv = LAYER("--quiet"),
     .status = 0},
    {.name = "layer_retries_reach_damp_max", .build = b_indef_huge,
     .argv = LAYER("--damp-auto-increment", "0.5"), .status = 1,
     .msg = "would pass damp_max"},
    /* NaN and Inf in the layer's inputs */
    {.name = "layer_w_nan", .build = b_w_nan, .argv = LAYER("--quiet"), .status = 1,
     .msg = "weight W has a NaN or Inf at row 3, column 5"},
    {.name = "layer_w_inf", .build = b_w_inf, .argv = LAYER("--quiet"), .status = 1,
     .msg = "weight W has a NaN or Inf at row 3, column 5"},
    {.name = "layer_x_nan", .build = b_x_nan, .argv = LAYER("--quiet"), .status = 1,
     .msg = "X has NaN at row 2, column 7"},
    {.name = "layer_x_inf", .build = b_x_inf, .argv = LAYER("--quiet"), .status = 1,
     .msg = "X has Inf at row 2, column 7"},
    {.name = "layer_h_nan", .build = b_h_nan, .argv = LAYER("--quiet"), .status = 1,
     .msg = "Hessian H has a NaN or Inf at row 1, column 2"},
    {.name = "layer_h_inf", .build = b_h_inf, .argv = LAYER("--quiet"), .status = 1,
     .msg = "Hessian H has a NaN or Inf at row 1, column 2"},
    {.name = "layer_rtn_w_nan", .build = b_w_nan, .argv = LAYER("--method", "rtn"), .status = 1,
     .msg = "row 3, column 5"},
    /* fp16 scales: 0 is an error, subnormal a warning with the error it adds */
    {.name = "layer_tiny_weights", .build = b_tiny, .argv = LAYER("--quiet"), .status = 1,
     .msg = "rounds to 0 in fp16"},
    {.name = "layer_tiny_weights_rtn", .build = b_tiny, .argv = LAYER("--method", "rtn"),
     .status = 1, .msg = "rounds to 0 in fp16"},
    {.name = "layer_subnormal_scales", .build = b_small, .argv = LAYER("--quiet"), .status = 0,
     .msg = "gptq layer: warning: @/in.safetensors: 64 scales are below 6.1e-05"},
    {.name = "layer_subnormal_scales_error", .build = b_small, .argv = LAYER("--quiet"),
     .status = 0, .msg = "(the scales written)"},
    {.name = "quantize_subnormal_module", .build = b_model_small_module,
     .argv = QUANT("--method", "rtn", "--quiet"), .status = 0,
     .msg = "gptq quantize: warning: model.layers.0.mlp.up_proj: "},
    {.name = "quantize_zero_scale_module", .build = b_model_tiny_module,
     .argv = QUANT("--method", "rtn", "--quiet"), .status = 1,
     .msg = "model.layers.1.self_attn.k_proj: scales: scale", .keep = {"@/model"}},
    /* compare: NaN in either file, codes outside the grid, a foreign dequant */
    {.name = "compare_same_ok", .build = b_pair,
     .argv = {"compare", "@/a.safetensors", "@/b.safetensors", "--max-rel-output", "0", NULL},
     .status = 0},
    {.name = "compare_nan_dequant_b", .build = b_cmp_nan_dequant_b,
     .argv = {"compare", "@/a.safetensors", "@/b.safetensors", NULL}, .status = 1,
     .msg = "@/b.safetensors: 'dequant' holds nan at (0, 5)"},
    {.name = "compare_nan_dequant_a", .build = b_cmp_nan_dequant_a,
     .argv = {"compare", "@/a.safetensors", "@/b.safetensors", NULL}, .status = 1,
     .msg = "@/a.safetensors: 'dequant' holds nan at (0, 0)"},
    {.name = "compare_inf_scales_b", .build = b_cmp_inf_scales_b,
     .argv = {"compare", "@/a.safetensors", "@/b.safetensors", NULL}, .status = 1,
     .msg = "'scales_f32' holds inf"},
    {.name = "compare_nan_fp16_scales_b", .build = b_cmp_nan_fp16_scales_b,
     .argv = {"compare", "@/a.safetensors", "@/b.safetensors", NULL}, .status = 1,
     .msg = "@/b.safetensors: 'scales' holds nan at (0, 3)"},
    {.name = "compare_nan_h_a", .build = b_cmp_nan_h_a,
     .argv = {"compare", "@/a.safetensors", "@/b.safetensors", NULL}, .status = 1,
     .msg = "@/a.safetensors: 'H' holds nan at (1, 2)"},
    {.name = "compare_nan_h_b", .build = b_cmp_nan_h_b,
     .argv = {"compare", "@/a.safetensors", "@/b.safetensors", "--json", NULL}, .status = 1,
     .msg = "@/b.safetensors: 'H' holds nan"},
    {.name = "compare_codes_255", .build = b_cmp_codes_255,
     .argv = {"compare", "@/a.safetensors", "@/b.safetensors", NULL}, .status = 1,
     .msg = "code 255 at (0, 0) is outside [0, 15] (4 bits)"},
    {.name = "compare_code_vs_dequant", .build = b_cmp_code_vs_dequant,
     .argv = {"compare", "@/a.safetensors", "@/b.safetensors", NULL}, .status = 1,
     .msg = "dequant (0, 9) is"},
    {.name = "compare_dequant_one_ulp", .build = b_cmp_dequant_ulp,
     .argv = {"compare", "@/a.safetensors", "@/b.safetensors", NULL}, .status = 1,
     .msg = "the file's tensors disagree"},
    {.name = "compare_zero_99", .build = b_cmp_zero_99,
     .argv = {"compare", "@/a.safetensors", "@/b.safetensors", NULL}, .status = 1,
     .msg = "zero point 99 at group 0, row 4 is outside [0, 15]"},
    {.name = "compare_gidx_7", .build = b_cmp_gidx_7,
     .argv = {"compare", "@/a.safetensors", "@/b.safetensors", NULL}, .status = 1,
     .msg = "g_idx[3] = 7 is outside [0, 1)"},
    /* eval: a NaN or Inf is an error naming where values stop being finite */
    {.name = "eval_ok", .build = b_model,
     .argv = {"eval", "@/model", "--text", "@/t.txt", "--seqlen", "64", "--max-windows", "2",
              NULL},
     .status = 0},
    {.name = "eval_nan_weight", .build = b_eval_nan_weight,
     .argv = {"eval", "@/model", "--text", "@/t.txt", "--seqlen", "64", "--max-windows", "2",
              NULL},
     .status = 1,
     .msg = "the output of layer 1 (tensor 'model.layers.1.mlp.up_proj.weight' holds a NaN or "
            "Inf at element 1000)",
     .keep = {"@/model"}},
    {.name = "eval_inf_weight", .build = b_eval_inf_weight,
     .argv = {"eval", "@/model", "--text", "@/t.txt", "--seqlen", "64", "--max-windows", "2",
              NULL},
     .status = 1, .msg = "'model.layers.0.self_attn.q_proj.weight' holds a NaN or Inf at element 77"},
    {.name = "eval_nan_lm_head", .build = b_eval_nan_lm_head,
     .argv = {"eval", "@/model", "--text", "@/t.txt", "--seqlen", "64", "--max-windows", "2",
              NULL},
     .status = 1, .msg = "the logits (final norm and lm_head) (tensor 'lm_head.weight'"},
    {.name = "eval_nan_norm", .build = b_eval_nan_norm,
     .argv = {"eval", "@/model", "--text", "@/t.txt", "--seqlen", "64", "--max-windows", "2",
              NULL},
     .status = 1, .msg = "tensor 'model.norm.weight' holds a NaN or Inf at element 5"},
    {.name = "eval_nan_scale", .build = b_eval_nan_scale,
     .argv = {"eval", "@/q", "--text", "@/t.txt", "--seqlen", "64", "--max-windows", "2", NULL},
     .status = 1,
     .msg = "the output of layer 2 (tensor 'model.layers.2.self_attn.v_proj.scales' holds a NaN "
            "or Inf at element 5)",
     .timeout = 60},
    {.name = "eval_inf_scale", .build = b_eval_inf_scale,
     .argv = {"eval", "@/q", "--text", "@/t.txt", "--seqlen", "64", "--max-windows", "2", NULL},
     .status = 1, .msg = "'model.layers.0.mlp.down_proj.scales' holds a NaN or Inf at element 17",
     .timeout = 60},
    /* every numeric option past its limit: the message gives the limit */
    {.name = "nsamples_too_many", .build = b_model, .argv = QUANT("--nsamples", "100000000"),
     .status = 2, .msg = "--nsamples 100000000: must be an integer in [1, 16777216]"},
    {.name = "nsamples_0", .build = b_model, .argv = QUANT("--nsamples", "0"), .status = 2,
     .msg = "--nsamples 0: must be an integer in [1, 16777216]"},
    {.name = "seqlen_1", .build = b_model, .argv = QUANT("--seqlen", "1"), .status = 2,
     .msg = "--seqlen 1: must be an integer in [2, 16777216]"},
    {.name = "seqlen_huge", .build = b_model, .argv = QUANT("--seqlen", "99999999999"),
     .status = 2, .msg = "--seqlen 99999999999: must be an integer in [2, 16777216]"},
    {.name = "block_size_2p30", .build = b_model, .argv = QUANT("--block-size", "1073741824"),
     .status = 2, .msg = "--block-size 1073741824: must be a power of two in [1, 65536]"},
    {.name = "block_size_3", .build = b_layer, .argv = LAYER("--block-size", "3"), .status = 2,
     .msg = "--block-size 3: must be a power of two in [1, 65536]"},
    {.name = "group_size_8", .build = b_layer, .argv = LAYER("--group-size", "8"), .status = 2,
     .msg = "--group-size 8: must be -1 or a power of two in [16, 1073741824]"},
    {.name = "group_size_2p31", .build = b_layer, .argv = LAYER("--group-size", "2147483648"),
     .status = 2, .msg = "must be -1 or a power of two in [16, 1073741824]"},
    {.name = "bits_16", .build = b_layer, .argv = LAYER("--bits", "16"), .status = 2,
     .msg = "--bits 16: must be 2, 3, 4 or 8"},
    {.name = "batch_tokens_0", .build = b_model, .argv = QUANT("--batch-tokens", "0"),
     .status = 2, .msg = "--batch-tokens 0: must be auto or an integer in [1, 1073741824]"},
    {.name = "seed_negative", .build = b_model, .argv = QUANT("--seed", "-1"), .status = 2,
     .msg = "--seed -1: must be an integer in [0, 9223372036854775807]"},
    {.name = "seed_2p64", .build = b_model, .argv = QUANT("--seed", "18446744073709551616"),
     .status = 2, .msg = "must be an integer in [0, 9223372036854775807]"},
    {.name = "calib_bytes_0", .build = b_model, .argv = QUANT("--calib-bytes", "0"), .status = 2,
     .msg = "--calib-bytes 0: must be an integer in [1, 9223372036854775807]"},
    {.name = "max_shard_size_huge", .build = b_model,
     .argv = QUANT("--method", "rtn", "--max-shard-size", "99999999999999999999999"), .status = 2,
     .msg = "must be at most 18446744073709551615 bytes"},
    {.name = "max_shard_size_fraction", .build = b_model,
     .argv = QUANT("--method", "rtn", "--max-shard-size", "1.5GB"), .status = 2,
     .msg = "must be a whole number"},
    {.name = "eval_seqlen_1", .build = b_model,
     .argv = {"eval", "@/model", "--text", "@/t.txt", "--seqlen", "1", NULL}, .status = 2,
     .msg = "--seqlen 1: must be an integer in [2, 1048576]"},
    {.name = "eval_batch_0", .build = b_model,
     .argv = {"eval", "@/model", "--text", "@/t.txt", "--batch", "0", NULL}, .status = 2,
     .msg = "--batch 0: must be an integer in [1, 1048576]"},
    {.name = "eval_max_windows_0", .build = b_model,
     .argv = {"eval", "@/model", "--text", "@/t.txt", "--max-windows", "0", NULL}, .status = 2,
     .msg = "--max-windows 0: must be an integer in [1, 1099511627776]"},
    {.name = "compare_max_rel_output_neg", .build = b_pair,
     .argv = {"compare", "@/a.safetensors", "@/b.safetensors", "--max-rel-output", "-1", NULL},
     .status = 2, .msg = "--max-rel-output -1: must be a number in [0, 1e+30]"},
    {.name = "compare_max_code_mismatch_2", .build = b_pair,
     .argv = {"compare", "@/a.safetensors", "@/b.safetensors", "--max-code-mismatch", "2", NULL},
     .status = 2, .msg = "--max-code-mismatch 2: must be a number in [0, 1]"},
    {.name = "diff_layers_0", .build = b_model,
     .argv = {"diff", "@/model", "--calib", "@/t.txt", "--layers", "0", NULL}, .status = 2,
     .msg = "--layers 0: must be an integer in [1, 2147483647]"},
    /* a short qweight is named as such (it used to blame g_idx) */
    {.name = "matmul_short_qweight", .build = b_short_qweight,
     .argv = {"matmul", "@/short.safetensors", "-x", "@/x.safetensors", "-o", "@/y.safetensors",
              NULL},
     .status = 1, .msg = "'qweight' has 15 rows, which hold 120 inputs at 4 bits, but 'g_idx' has "
                         "128 entries"},
    /* a plugin that fails without saying why: no "(null)" */
    {.name = "plugin_null_error", .build = b_nullerr,
     .argv = LAYER("--backend", "@/nullerr.so"), .status = 1,
     .msg = "initialisation failed (status -7): the plugin gave no reason"},
    /* every line starts "gptq <command>:" */
    {.name = "unknown_command_prefix", .argv = {"frobnicate", NULL}, .status = 2,
     .msg = "gptq: error: unknown command 'frobnicate'"},
    {.name = "quantize_note_prefix", .build = b_model,
     .argv = QUANT("--calib", "@/t.txt", "--nsamples", "2", "--seqlen", "32"), .status = 0,
     .msg = "gptq quantize: calibration: @/t.txt", .timeout = 120},
};
CH_TABLE(hostile_numeric, numeric_table)
