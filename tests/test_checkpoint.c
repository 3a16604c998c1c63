/*
 * test_checkpoint.c — the GPTQ checkpoint folder (src/io/checkpoint.c) and
 * what `gptq quantize` writes into it (src/quant/pipeline.c, RTN: no
 * calibration, so these run in seconds on synthetic models).
 *
 * Expected values are derived by hand from the format description
 * (README.md "Checkpoint format", src/format/pack.c): bit positions of packed zero points, the
 * v1 word of symmetric 4-bit zeros (0x77777777), shard cuts for given sizes,
 * the sorted index and its total; and from the inputs themselves: copied
 * tensors must keep their bytes, the source config.json its text, and a
 * checkpoint must read back (through the model loader's dequantization) as
 * exactly the weights the pipeline reported.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/format.h"
#include "io/checkpoint.h"
#include "io/io.h"
#include "model/model.h"
#include "quant/pipeline.h"
#include "synth_model.h"

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

static void make_tmpdir(char *buf, size_t n)
{
    snprintf(buf, n, "/tmp/gptq_test_ckpt_XXXXXX");
    cr_assert(mkdtemp(buf), "mkdtemp failed");
}

static void rm_tree(const char *dir) { gptq_remove_tree(dir); }

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    cr_assert(fread(b, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    b[n] = '\0';
    if (len) *len = (size_t)n;
    return b;
}

static cJSON *read_json(const char *path)
{
    cJSON *j = NULL;
    cr_assert_eq(gptq_json_read_file(path, &j), GPTQ_OK, "%s", gptq_last_error());
    return j;
}

/* Entries of `parent` whose name starts with `prefix` (temporaries left
 * behind would show up here). */
static int count_prefixed(const char *parent, const char *prefix)
{
    DIR *d = opendir(parent);
    cr_assert(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) n++;
    closedir(d);
    return n;
}

static void write_file(const char *path, const char *text)
{
    cr_assert_eq(syn_write_text(path, text), 0, "cannot write %s", path);
}

/* ------------------------------------------------------------------ */
/* sizes                                                               */
/* ------------------------------------------------------------------ */

Test(size, parse_units_as_transformers)
{
    struct {
        const char *s;
        uint64_t v;
    } ok[] = {
        {"4GB", 4000000000ull}, {"500MB", 500000000ull}, {"2GiB", 2147483648ull},
        {"123", 123},           {"64KB", 64000},         {"1kib", 1024},
        {"7B", 7},              {"3MiB", 3145728},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        uint64_t v = 0;
        cr_assert_eq(gptq_parse_size(ok[i].s, &v), GPTQ_OK, "%s: %s", ok[i].s, gptq_last_error());
        cr_assert_eq(v, ok[i].v, "%s -> %llu", ok[i].s, (unsigned long long)v);
    }
    const char *bad[] = {"", "GB", "1.5GB", "0", "-1", "4XB", "4 GB", "0MB"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        uint64_t v = 0;
        cr_assert_eq(gptq_parse_size(bad[i], &v), GPTQ_ERR_INVALID, "\"%s\" accepted", bad[i]);
        cr_assert(strstr(gptq_last_error(), "size"), "%s", gptq_last_error());
    }
}

/* ------------------------------------------------------------------ */
/* qzeros                                                              */
/* ------------------------------------------------------------------ */

Test(qzeros, four_two_eight_bits_by_hand)
{
    /* 4 bits: field j of the word holds zero j; v1 stores z - 1 */
    const uint8_t z4[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int32_t w = 0;
    cr_assert_eq(gptq_qzeros_pack(z4, 1, 8, 4, GPTQ_FORMAT_V2, &w), GPTQ_OK);
    cr_assert_eq((uint32_t)w, 0x87654321u);
    cr_assert_eq(gptq_qzeros_pack(z4, 1, 8, 4, GPTQ_FORMAT_V1, &w), GPTQ_OK);
    cr_assert_eq((uint32_t)w, 0x76543210u);
    /* symmetric 4-bit: every zero 8 -> v1 0x77777777 (README.md "Checkpoint format") */
    const uint8_t s4[8] = {8, 8, 8, 8, 8, 8, 8, 8};
    cr_assert_eq(gptq_qzeros_pack(s4, 1, 8, 4, GPTQ_FORMAT_V1, &w), GPTQ_OK);
    cr_assert_eq((uint32_t)w, 0x77777777u);
    /* 8 bits */
    const uint8_t z8[4] = {1, 2, 3, 255};
    cr_assert_eq(gptq_qzeros_pack(z8, 1, 4, 8, GPTQ_FORMAT_V2, &w), GPTQ_OK);
    cr_assert_eq((uint32_t)w, 0xFF030201u);
    cr_assert_eq(gptq_qzeros_pack(z8, 1, 4, 8, GPTQ_FORMAT_V1, &w), GPTQ_OK);
    cr_assert_eq((uint32_t)w, 0xFE020100u);
    /* 2 bits, two groups: 16 fields of 2 bits each per word */
    uint8_t z2[32];
    for (int i = 0; i < 32; i++) z2[i] = (uint8_t)(i < 16 ? 3 : 1);
    int32_t w2[2];
    cr_assert_eq(gptq_qzeros_pack(z2, 2, 16, 2, GPTQ_FORMAT_V2, w2), GPTQ_OK);
    cr_assert_eq((uint32_t)w2[0], 0xFFFFFFFFu);
    cr_assert_eq((uint32_t)w2[1], 0x55555555u);
    cr_assert_eq(gptq_qzeros_pack(z2, 2, 16, 2, GPTQ_FORMAT_V1, w2), GPTQ_OK);
    cr_assert_eq((uint32_t)w2[0], 0xAAAAAAAAu);
    cr_assert_eq((uint32_t)w2[1], 0x00000000u);
}

Test(qzeros, three_bits_cross_word_boundaries)
{
    /* 32 fields of 3 bits = 96 bits = 3 words; field 10 is bits 30..32 and
     * field 21 bits 63..65, straddling words. */
    uint8_t z[32] = {0};
    z[10] = 7; /* bits 30, 31, 32 */
    z[21] = 5; /* bits 63 and 65 */
    int32_t w[3];
    cr_assert_eq(gptq_qzeros_pack(z, 1, 32, 3, GPTQ_FORMAT_V2, w), GPTQ_OK);
    cr_assert_eq((uint32_t)w[0], 0xC0000000u);
    cr_assert_eq((uint32_t)w[1], 0x80000001u);
    cr_assert_eq((uint32_t)w[2], 0x00000002u);
    /* every field 1..7 cycling, checked bit by bit against the stream rule */
    for (int i = 0; i < 32; i++) z[i] = (uint8_t)(i % 7 + 1);
    int32_t v1[3];
    cr_assert_eq(gptq_qzeros_pack(z, 1, 32, 3, GPTQ_FORMAT_V1, v1), GPTQ_OK);
    for (int i = 0; i < 32; i++)
        for (int b = 0; b < 3; b++) {
            const int t = 3 * i + b;
            const unsigned bit = ((uint32_t)v1[t / 32] >> (t % 32)) & 1u;
            cr_assert_eq(bit, ((unsigned)(z[i] - 1) >> b) & 1u, "field %d bit %d", i, b);
        }
}

Test(qzeros, zero_point_0_has_no_v1_field)
{
    uint8_t z[16];
    for (int i = 0; i < 16; i++) z[i] = 5;
    z[8 + 3] = 0; /* group 1, row 3 */
    int32_t w[2];
    cr_assert_eq(gptq_qzeros_pack(z, 2, 8, 4, GPTQ_FORMAT_V1, w), GPTQ_ERR_INVALID);
    cr_assert(strstr(gptq_last_error(), "group 1, row 3"), "%s", gptq_last_error());
    cr_assert_eq(gptq_qzeros_pack(z, 2, 8, 4, GPTQ_FORMAT_V2, w), GPTQ_OK);
    cr_assert_eq((uint32_t)w[1], 0x55550555u);
}

/* ------------------------------------------------------------------ */
/* the folder writer                                                   */
/* ------------------------------------------------------------------ */

static const char *k_src_config =
    "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"rope_theta\": 10000.0,\n"
    "  \"rms_norm_eps\": 1e-05,\n  \"torch_dtype\": \"bfloat16\"\n}\n\n";

static void make_src(const char *src)
{
    char p[600];
    snprintf(p, sizeof p, "%s/config.json", src);
    write_file(p, k_src_config);
    snprintf(p, sizeof p, "%s/tokenizer.json", src);
    write_file(p, "{\"model\": {\"type\": \"BPE\"}}");
    snprintf(p, sizeof p, "%s/special_tokens_map.json", src);
    write_file(p, "{\"bos_token\": \"<s>\"}");
}

typedef struct {
    const char *name;
    int64_t n; /* bytes, as U8 */
} tdesc;

/* Declare and write the tensors (byte i of tensor k = k * 31 + i). */
static int write_all(gptq_ckpt *c, const tdesc *t, int n, int stop_after)
{
    for (int k = 0; k < n; k++)
        cr_assert_eq(gptq_ckpt_declare(c, t[k].name, GPTQ_U8, 1, &t[k].n), GPTQ_OK, "%s",
                     gptq_last_error());
    cr_assert_eq(gptq_ckpt_plan(c), GPTQ_OK, "%s", gptq_last_error());
    for (int k = 0; k < n && k < stop_after; k++) {
        uint8_t *b = malloc((size_t)t[k].n);
        for (int64_t i = 0; i < t[k].n; i++) b[i] = (uint8_t)(k * 31 + i);
        int st = gptq_ckpt_write(c, t[k].name, b, (size_t)t[k].n);
        free(b);
        if (st) return st;
    }
    return GPTQ_OK;
}

Test(writer, shards_index_config_and_copies)
{
    char root[256], src[300], out[300], p[700];
    make_tmpdir(root, sizeof root);
    snprintf(src, sizeof src, "%s/src", root);
    snprintf(out, sizeof out, "%s/out", root);
    mkdir(src, 0755);
    make_src(src);
    /* limit 1000: [z 400, a 400] (+300 would pass it), [m 300] (+1000),
     * [b 1000] (alone: larger than the limit on its own is allowed), [c 100] */
    const tdesc t[] = {{"z.weight", 400}, {"a.weight", 400}, {"m.qweight", 300},
                       {"b.big", 1000},   {"c.tail", 100}};
    const int expect_shard[] = {1, 1, 2, 3, 4};
    gptq_ckpt *c;
    cr_assert_eq(gptq_ckpt_begin(out, 1000, &c), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(write_all(c, t, 5, 5), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(gptq_ckpt_nshards(c), 4);
    cJSON *q = cJSON_CreateObject();
    cJSON_AddNumberToObject(q, "bits", 4);
    cJSON_AddStringToObject(q, "quant_method", "gptq");
    cr_assert_eq(gptq_ckpt_finish(c, src, q), GPTQ_OK, "%s", gptq_last_error());

    /* shards: their tensors and bytes, "format": "pt" */
    for (int k = 0; k < 5; k++) {
        snprintf(p, sizeof p, "%s/model-%05d-of-00004.safetensors", out, expect_shard[k]);
        gptq_st_file *f;
        cr_assert_eq(gptq_st_open(p, &f), GPTQ_OK, "%s", gptq_last_error());
        cr_assert_str_eq(gptq_st_metadata(f, "format"), "pt");
        gptq_st_info info;
        cr_assert_eq(gptq_st_find(f, t[k].name, &info), GPTQ_OK, "%s not in %s", t[k].name, p);
        cr_assert_eq((int64_t)info.nbytes, t[k].n);
        for (int64_t i = 0; i < t[k].n; i++)
            cr_assert_eq(((const uint8_t *)info.data)[i], (uint8_t)(k * 31 + i));
        gptq_st_close(f);
    }
    snprintf(p, sizeof p, "%s/model.safetensors", out);
    cr_assert(!exists(p), "a sharded checkpoint has no model.safetensors");

    /* index: total_size = 2200, keys sorted, each in its shard */
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", out);
    cJSON *idx = read_json(p);
    const cJSON *ts = cJSON_GetObjectItem(cJSON_GetObjectItem(idx, "metadata"), "total_size");
    cr_assert(cJSON_IsNumber(ts) && ts->valuedouble == 2200.0);
    const cJSON *wm = cJSON_GetObjectItem(idx, "weight_map");
    cr_assert_eq(cJSON_GetArraySize(wm), 5);
    const char *prev = "";
    int k = 0;
    for (const cJSON *e = wm->child; e; e = e->next, k++) {
        cr_assert(strcmp(prev, e->string) < 0, "weight_map not sorted: %s then %s", prev, e->string);
        prev = e->string;
        int which = -1;
        for (int j = 0; j < 5; j++)
            if (!strcmp(t[j].name, e->string)) which = j;
        cr_assert(which >= 0);
        char want[64];
        snprintf(want, sizeof want, "model-%05d-of-00004.safetensors", expect_shard[which]);
        cr_assert_str_eq(e->valuestring, want);
    }
    cJSON_Delete(idx);

    /* config.json: the source text up to its closing brace, unchanged */
    size_t n;
    char *cfg = slurp((snprintf(p, sizeof p, "%s/config.json", out), p), &n);
    const char *src_body = "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"rope_theta\": "
                           "10000.0,\n  \"rms_norm_eps\": 1e-05,\n  \"torch_dtype\": \"bfloat16\"";
    cr_assert(strncmp(cfg, src_body, strlen(src_body)) == 0, "config.json changed:\n%s", cfg);
    cJSON *cj = read_json(p);
    cJSON *qc = cJSON_GetObjectItem(cj, "quantization_config");
    cr_assert(cJSON_Compare(qc, q, 1), "quantization_config differs:\n%s", cfg);
    cr_assert_str_eq(cJSON_GetObjectItem(cj, "torch_dtype")->valuestring, "bfloat16");
    cJSON_Delete(cj);
    free(cfg);
    snprintf(p, sizeof p, "%s/quantize_config.json", out);
    cJSON *qj = read_json(p);
    cr_assert(cJSON_Compare(qj, q, 1));
    cJSON_Delete(qj);
    cJSON_Delete(q);

    /* tokenizer files copied as they are */
    const char *copied[] = {"tokenizer.json", "special_tokens_map.json"};
    for (int i = 0; i < 2; i++) {
        char a[700], b[700];
        snprintf(a, sizeof a, "%s/%s", src, copied[i]);
        snprintf(b, sizeof b, "%s/%s", out, copied[i]);
        char *x = slurp(a, NULL), *y = slurp(b, NULL);
        cr_assert_str_eq(x, y);
        free(x);
        free(y);
    }
    /* the output is an ordinary folder, and nothing is left beside it */
    struct stat sb;
    cr_assert_eq(stat(out, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0755);
    cr_assert_eq(count_prefixed(root, "out."), 0, "temporary folders left beside the output");
    rm_tree(root);
}

Test(writer, one_shard_is_model_safetensors_and_order_is_checked)
{
    char root[256], src[300], out[300], p[700];
    make_tmpdir(root, sizeof root);
    snprintf(src, sizeof src, "%s/src", root);
    snprintf(out, sizeof out, "%s/out", root);
    mkdir(src, 0755);
    make_src(src);
    gptq_ckpt *c;
    cr_assert_eq(gptq_ckpt_begin(out, 4000000000ull, &c), GPTQ_OK);
    const int64_t n = 8;
    cr_assert_eq(gptq_ckpt_declare(c, "b", GPTQ_U8, 1, &n), GPTQ_OK);
    cr_assert_eq(gptq_ckpt_declare(c, "a", GPTQ_U8, 1, &n), GPTQ_OK);
    cr_assert_eq(gptq_ckpt_declare(c, "a", GPTQ_U8, 1, &n), GPTQ_OK);
    cr_assert_eq(gptq_ckpt_plan(c), GPTQ_ERR_INVALID, "a duplicate name was planned");
    cr_assert(strstr(gptq_last_error(), "'a' declared twice"), "%s", gptq_last_error());
    gptq_ckpt_abort(c);
    cr_assert_eq(count_prefixed(root, "out."), 0);

    cr_assert_eq(gptq_ckpt_begin(out, 4000000000ull, &c), GPTQ_OK);
    cr_assert_eq(gptq_ckpt_declare(c, "b", GPTQ_U8, 1, &n), GPTQ_OK);
    cr_assert_eq(gptq_ckpt_declare(c, "a", GPTQ_U8, 1, &n), GPTQ_OK);
    cr_assert_eq(gptq_ckpt_plan(c), GPTQ_OK);
    const uint8_t d[8] = {0};
    cr_assert_eq(gptq_ckpt_write(c, "a", d, 8), GPTQ_ERR_INVALID);
    cr_assert(strstr(gptq_last_error(), "'a' written where 'b' was declared"), "%s",
              gptq_last_error());
    cr_assert_eq(gptq_ckpt_write(c, "b", d, 7), GPTQ_ERR_INVALID);
    cr_assert_eq(gptq_ckpt_write(c, "b", d, 8), GPTQ_OK);
    cJSON *q = cJSON_CreateObject();
    cr_assert_eq(gptq_ckpt_finish(c, src, q), GPTQ_ERR_INVALID, "finished with a tensor missing");
    cr_assert(!exists(out));
    cr_assert_eq(count_prefixed(root, "out."), 0);

    cr_assert_eq(gptq_ckpt_begin(out, 4000000000ull, &c), GPTQ_OK);
    cr_assert_eq(gptq_ckpt_declare(c, "b", GPTQ_U8, 1, &n), GPTQ_OK);
    cr_assert_eq(gptq_ckpt_plan(c), GPTQ_OK);
    cr_assert_eq(gptq_ckpt_nshards(c), 1);
    cr_assert_eq(gptq_ckpt_write(c, "b", d, 8), GPTQ_OK);
    cr_assert_eq(gptq_ckpt_finish(c, src, q), GPTQ_OK, "%s", gptq_last_error());
    snprintf(p, sizeof p, "%s/model.safetensors", out);
    cr_assert(exists(p));
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", out);
    cr_assert(!exists(p), "one shard needs no index");
    cJSON_Delete(q);
    rm_tree(root);
}

Test(writer, existing_folder_survives_a_failed_run)
{
    char root[256], src[300], out[300], p[700];
    make_tmpdir(root, sizeof root);
    snprintf(src, sizeof src, "%s/src", root);
    snprintf(out, sizeof out, "%s/out", root);
    mkdir(src, 0755);
    mkdir(out, 0755);
    make_src(src);
    snprintf(p, sizeof p, "%s/marker.txt", out);
    write_file(p, "old checkpoint");
    const tdesc t[] = {{"x", 100}, {"y", 100}};
    gptq_ckpt *c;
    /* half-written, then given up: the old folder is untouched */
    cr_assert_eq(gptq_ckpt_begin(out, 150, &c), GPTQ_OK);
    cr_assert_eq(write_all(c, t, 2, 1), GPTQ_OK);
    gptq_ckpt_abort(c);
    char *m = slurp(p, NULL);
    cr_assert_str_eq(m, "old checkpoint");
    free(m);
    cr_assert_eq(count_prefixed(root, "out."), 0, "the temporary folder was not removed");
    /* a finished one replaces it whole */
    cr_assert_eq(gptq_ckpt_begin(out, 150, &c), GPTQ_OK);
    cr_assert_eq(write_all(c, t, 2, 2), GPTQ_OK);
    cJSON *q = cJSON_CreateObject();
    cr_assert_eq(gptq_ckpt_finish(c, src, q), GPTQ_OK, "%s", gptq_last_error());
    cJSON_Delete(q);
    cr_assert(!exists(p), "the old folder's files are still there");
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", out);
    cr_assert(exists(p));
    cr_assert_eq(count_prefixed(root, "out."), 0);
    rm_tree(root);
}

/* ------------------------------------------------------------------ */
/* what the pipeline writes (RTN on synthetic models)                  */
/* ------------------------------------------------------------------ */

typedef struct {
    float *W[SYN_LAYERS * 8]; /* dequantized weight of each module */
    int64_t zero0;
} seen;

static void record(void *user, const gptq_module_report *r, const float *W)
{
    seen *s = user;
    const size_t k = (size_t)r->layer * 8 + (size_t)r->index;
    free(s->W[k]);
    s->W[k] = malloc((size_t)(r->rows * r->cols) * sizeof(float));
    memcpy(s->W[k], W, (size_t)(r->rows * r->cols) * sizeof(float));
    s->zero0 += r->zero0;
}

static void seen_free(seen *s)
{
    for (int k = 0; k < SYN_LAYERS * 8; k++) free(s->W[k]);
    memset(s, 0, sizeof *s);
}

static gptq_backend *cpu(void)
{
    gptq_backend *be;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK);
    return be;
}

static int run_rtn(const char *model, const char *out, gptq_quant_config q, int format,
                   uint64_t shard, seen *s, gptq_pipeline_stats *stats)
{
    gptq_backend *be = cpu();
    gptq_pipeline_options o;
    gptq_pipeline_options_default(&o);
    o.q = q;
    o.q.method = GPTQ_METHOD_RTN;
    o.format = format;
    if (shard) o.max_shard_bytes = shard;
    o.on_module = record;
    o.module_weights = 1;
    o.user = s;
    int st = gptq_quantize_model(be, model, out, &o, stats);
    gptq_backend_close(be);
    return st;
}

/* Every quantized linear of `out` reads back (model loader, dequantized
 * from its format) as the weight the pipeline reported. */
static void check_reads_back(const char *out, const seen *s)
{
    gptq_backend *be = cpu();
    gptq_model *m;
    cr_assert_eq(gptq_model_open(out, be, &m), GPTQ_OK, "%s", gptq_last_error());
    cr_assert(gptq_model_config_of(m)->quant.present);
    for (int L = 0; L < SYN_LAYERS; L++) {
        cr_assert_eq(gptq_model_layer_load(m, L), GPTQ_OK, "%s", gptq_last_error());
        for (int i = 0; i < gptq_model_nlinear(m, L); i++) {
            const gptq_linear_info *li = gptq_model_linear(m, L, i);
            float *W = malloc((size_t)(li->rows * li->cols) * sizeof(float));
            cr_assert_eq(gptq_model_linear_get(m, L, i, W), GPTQ_OK);
            cr_assert(s->W[L * 8 + i], "no report for layer %d module %d", L, i);
            cr_assert(memcmp(W, s->W[L * 8 + i], (size_t)(li->rows * li->cols) * 4) == 0,
                      "layer %d %s reads back differently", L, li->name);
            free(W);
        }
    }
    gptq_model_close(m);
    gptq_backend_close(be);
}

/* Tensors of `out` that are not quantized keep the source's bytes. */
static void check_copied(const char *src, const char *out)
{
    gptq_weights *a, *b;
    cr_assert_eq(gptq_weights_open(src, &a), GPTQ_OK);
    cr_assert_eq(gptq_weights_open(out, &b), GPTQ_OK, "%s", gptq_last_error());
    int copied = 0;
    for (int i = 0; i < gptq_weights_count(a); i++) {
        gptq_st_info x, y;
        gptq_weights_get(a, i, &x);
        if (strstr(x.name, "_proj.") || strstr(x.name, ".fc1.") || strstr(x.name, ".fc2.")) {
            char w[256];
            snprintf(w, sizeof w, "%s", x.name);
            cr_assert(!gptq_weights_has(b, w) || strstr(w, ".bias"),
                      "%s was copied although its module is quantized", w);
            continue;
        }
        cr_assert_eq(gptq_weights_find(b, x.name, &y), GPTQ_OK, "%s missing", x.name);
        cr_assert_eq(y.dtype, x.dtype, "%s changed dtype", x.name);
        cr_assert(x.nbytes == y.nbytes && memcmp(x.data, y.data, x.nbytes) == 0,
                  "%s changed bytes", x.name);
        copied++;
    }
    cr_assert(copied >= 4);
    gptq_weights_close(a);
    gptq_weights_close(b);
}

static void cfg_path(const char *dir, const char *file, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", dir, file);
}

Test(pipeline, llama_rtn_sym_v1_config_and_read_back, .timeout = 120)
{
    char root[256], model[300], out[300], p[700];
    cr_assert_eq(syn_model_dir(root, model, out, 0, NULL), GPTQ_OK, "%s", gptq_last_error());
    gptq_quant_config q;
    gptq_quant_config_default(&q);
    q.group_size = 32;
    seen s = {0};
    gptq_pipeline_stats stats;
    cr_assert_eq(run_rtn(model, out, q, GPTQ_PIPELINE_FORMAT_AUTO, 0, &s, &stats), GPTQ_OK, "%s",
                 gptq_last_error());
    cr_assert_eq(stats.format, GPTQ_FORMAT_V1, "sym zeros are 8: v1");
    cr_assert_eq(stats.nmodules, 14);
    check_reads_back(out, &s);
    check_copied(model, out);

    /* the tensors of one module, by hand: K = 64, N = 64, 4 bits, G 32 */
    gptq_weights *w;
    cr_assert_eq(gptq_weights_open(out, &w), GPTQ_OK);
    gptq_st_info info;
    cr_assert_eq(gptq_weights_find(w, "model.layers.1.self_attn.k_proj.qweight", &info), GPTQ_OK);
    cr_assert(info.dtype == GPTQ_I32 && info.shape[0] == 64 * 4 / 32 && info.shape[1] == 32);
    cr_assert_eq(gptq_weights_find(w, "model.layers.1.self_attn.k_proj.qzeros", &info), GPTQ_OK);
    cr_assert(info.dtype == GPTQ_I32 && info.shape[0] == 2 && info.shape[1] == 32 * 4 / 32);
    for (int k = 0; k < 2 * 4; k++)
        cr_assert_eq((uint32_t)((const int32_t *)info.data)[k], 0x77777777u, "sym v1 zeros");
    cr_assert_eq(gptq_weights_find(w, "model.layers.1.self_attn.k_proj.scales", &info), GPTQ_OK);
    cr_assert(info.dtype == GPTQ_F16 && info.shape[0] == 2 && info.shape[1] == 32);
    cr_assert_eq(gptq_weights_find(w, "model.layers.1.mlp.down_proj.g_idx", &info), GPTQ_OK);
    cr_assert(info.dtype == GPTQ_I32 && info.shape[0] == 128);
    for (int k = 0; k < 128; k++) cr_assert_eq(((const int32_t *)info.data)[k], k / 32);
    cr_assert(!gptq_weights_has(w, "model.layers.0.mlp.up_proj.weight"));
    gptq_weights_close(w);

    /* config.json: the source's keys kept, quantization_config complete */
    cfg_path(out, "config.json", p, sizeof p);
    cJSON *c = read_json(p);
    cr_assert_str_eq(cJSON_GetObjectItem(c, "torch_dtype")->valuestring, "float32");
    cr_assert_eq(cJSON_GetObjectItem(c, "hidden_size")->valueint, 64);
    const cJSON *qc = cJSON_GetObjectItem(c, "quantization_config");
    cr_assert(cJSON_IsObject(qc));
    cr_assert_eq(cJSON_GetObjectItem(qc, "bits")->valueint, 4);
    cr_assert_eq(cJSON_GetObjectItem(qc, "group_size")->valueint, 32);
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(qc, "desc_act")));
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(qc, "sym")));
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(qc, "lm_head")));
    cr_assert_str_eq(cJSON_GetObjectItem(qc, "quant_method")->valuestring, "gptq");
    cr_assert_str_eq(cJSON_GetObjectItem(qc, "checkpoint_format")->valuestring, "gptq");
    cr_assert_str_eq(cJSON_GetObjectItem(qc, "pack_dtype")->valuestring, "int32");
    cr_assert_eq(cJSON_GetObjectItem(qc, "damp_percent")->valuedouble, 0.01);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(qc, "true_sequential")));
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(qc, "static_groups")));
    const cJSON *meta = cJSON_GetObjectItem(qc, "meta");
    char ver[64];
    snprintf(ver, sizeof ver, "gptq-c:%s", gptq_version());
    cr_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(meta, "quantizer"), 0)->valuestring,
                     ver);
    cr_assert_eq(cJSON_GetObjectItem(meta, "damp_auto_increment")->valuedouble, 0.01);
    cr_assert_eq(cJSON_GetObjectItem(meta, "mse")->valuedouble, 0.0);
    cr_assert_str_eq(cJSON_GetObjectItem(meta, "method")->valuestring, "rtn");
    cfg_path(out, "quantize_config.json", p, sizeof p);
    cJSON *qj = read_json(p);
    cr_assert(cJSON_Compare(qj, qc, 1), "quantize_config.json differs from quantization_config");
    cJSON_Delete(qj);
    cJSON_Delete(c);
    cfg_path(out, "generation_config.json", p, sizeof p);
    cr_assert(exists(p), "generation_config.json not copied");
    seen_free(&s);
    rm_tree(root);
}

Test(pipeline, opt_fp16_biases_3bit_and_shards, .timeout = 120)
{
    char root[256], model[300], out[300], p[700];
    cr_assert_eq(syn_model_dir(root, model, out, 1, NULL), GPTQ_OK, "%s", gptq_last_error());
    gptq_quant_config q;
    gptq_quant_config_default(&q);
    q.bits = 3;
    q.sym = 0;
    q.group_size = 32;
    seen s = {0};
    gptq_pipeline_stats stats;
    cr_assert_eq(run_rtn(model, out, q, GPTQ_PIPELINE_FORMAT_AUTO, 20000, &s, &stats), GPTQ_OK,
                 "%s", gptq_last_error());
    cr_assert_eq(stats.nmodules, 12);
    cr_assert(stats.nshards > 2, "20 kB shards of a ~60 kB checkpoint: %d", stats.nshards);
    cfg_path(out, "model.safetensors.index.json", p, sizeof p);
    cr_assert(exists(p));
    check_reads_back(out, &s);
    check_copied(model, out);
    /* biases of quantized linears: fp16, the source's (fp16) values */
    gptq_weights *a, *b;
    cr_assert_eq(gptq_weights_open(model, &a), GPTQ_OK);
    cr_assert_eq(gptq_weights_open(out, &b), GPTQ_OK);
    gptq_st_info x, y;
    cr_assert_eq(gptq_weights_find(a, "model.decoder.layers.1.fc1.bias", &x), GPTQ_OK);
    cr_assert_eq(gptq_weights_find(b, "model.decoder.layers.1.fc1.bias", &y), GPTQ_OK);
    cr_assert(y.dtype == GPTQ_F16 && y.nbytes == x.nbytes && !memcmp(x.data, y.data, x.nbytes));
    cr_assert(!gptq_weights_has(b, "lm_head.weight"), "tied: no lm_head");
    cr_assert_eq(gptq_weights_find(b, "model.decoder.layers.0.fc2.qweight", &y), GPTQ_OK);
    cr_assert(y.shape[0] == 128 * 3 / 32 && y.shape[1] == 64);
    gptq_weights_close(a);
    gptq_weights_close(b);
    cfg_path(out, "config.json", p, sizeof p);
    cJSON *c = read_json(p);
    cr_assert_str_eq(cJSON_GetObjectItem(c, "dtype")->valuestring, "float16");
    cJSON_Delete(c);
    seen_free(&s);
    rm_tree(root);
}

/* Make group 0 of output row 0 of layer 0's q_proj all positive: its
 * asymmetric grid then starts at min(0, min w) = 0, so its zero point is 0. */
static void positive_group(const char *name, int64_t rows, int64_t cols, float *d)
{
    (void)rows;
    if (strcmp(name, "model.layers.0.self_attn.q_proj.weight") != 0) return;
    for (int64_t k = 0; k < 32 && k < cols; k++) d[k] = fabsf(d[k]) + 0.01f;
}

Test(pipeline, zero_point_0_refused_in_v1_written_as_v2, .timeout = 120)
{
    char root[256], model[300], out[300], p[700];
    cr_assert_eq(syn_model_dir(root, model, out, 0, positive_group), GPTQ_OK, "%s",
                 gptq_last_error());
    /* an earlier output of gptq-c (the only kind replaced without
     * --overwrite), recognisable by its quantize_config.json */
    mkdir(out, 0755);
    snprintf(p, sizeof p, "%s/quantize_config.json", out);
    const char *old = "{\"meta\": {\"quantizer\": [\"gptq-c:old\"]}}";
    write_file(p, old);
    gptq_quant_config q;
    gptq_quant_config_default(&q);
    q.sym = 0;
    q.group_size = 32;
    seen s = {0};
    gptq_pipeline_stats stats;

    /* v1 asked: refused at the module, naming it and the group */
    int st = run_rtn(model, out, q, GPTQ_FORMAT_V1, 0, &s, &stats);
    cr_assert_eq(st, GPTQ_ERR_INVALID);
    const char *msg = gptq_last_error();
    cr_assert(strstr(msg, "model.layers.0.self_attn.q_proj") && strstr(msg, "group 0") &&
                  strstr(msg, "row 0") && strstr(msg, "gptq_v2"),
              "%s", msg);
    char *m = slurp(p, NULL);
    cr_assert_str_eq(m, old, "the existing output folder was touched");
    free(m);
    cr_assert_eq(count_prefixed(root, "out."), 0, "temporary folder left behind");

    /* auto: v2, recorded, the zero stored as 0 */
    seen_free(&s);
    cr_assert_eq(run_rtn(model, out, q, GPTQ_PIPELINE_FORMAT_AUTO, 0, &s, &stats), GPTQ_OK, "%s",
                 gptq_last_error());
    cr_assert_eq(stats.format, GPTQ_FORMAT_V2);
    cr_assert(stats.zero0 >= 1 && s.zero0 == stats.zero0);
    m = slurp(p, NULL);
    cr_assert(m && strcmp(m, old), "old folder not replaced");
    free(m);
    cfg_path(out, "config.json", p, sizeof p);
    cJSON *c = read_json(p);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(c, "quantization_config"),
                                         "checkpoint_format")->valuestring,
                     "gptq_v2");
    cJSON_Delete(c);
    gptq_weights *w;
    cr_assert_eq(gptq_weights_open(out, &w), GPTQ_OK);
    gptq_st_info info;
    cr_assert_eq(gptq_weights_find(w, "model.layers.0.self_attn.q_proj.qzeros", &info), GPTQ_OK);
    cr_assert_eq(((const uint32_t *)info.data)[0] & 0xFu, 0u, "v2 stores the zero as is");
    gptq_weights_close(w);
    check_reads_back(out, &s);

    /* without such a group, auto still writes v2 for an asymmetric grid
     * (GPTQModel refuses an asymmetric v1 checkpoint it did not make), v1
     * asked writes v1 (every zero fits), a symmetric grid is v1 under auto;
     * gptq_v2 asked writes v2 */
    char model2[300];
    snprintf(model2, sizeof model2, "%s/model2", root);
    mkdir(model2, 0755);
    cr_assert_eq(syn_write_model(model2, 0, NULL), GPTQ_OK);
    seen_free(&s);
    cr_assert_eq(run_rtn(model2, out, q, GPTQ_PIPELINE_FORMAT_AUTO, 0, &s, &stats), GPTQ_OK);
    cr_assert_eq(stats.zero0, 0);
    cr_assert_eq(stats.format, GPTQ_FORMAT_V2);
    seen_free(&s);
    cr_assert_eq(run_rtn(model2, out, q, GPTQ_FORMAT_V1, 0, &s, &stats), GPTQ_OK);
    cr_assert_eq(stats.format, GPTQ_FORMAT_V1);
    check_reads_back(out, &s);
    gptq_quant_config qs = q;
    qs.sym = 1;
    seen_free(&s);
    cr_assert_eq(run_rtn(model2, out, qs, GPTQ_PIPELINE_FORMAT_AUTO, 0, &s, &stats), GPTQ_OK);
    cr_assert_eq(stats.format, GPTQ_FORMAT_V1);
    seen_free(&s);
    cr_assert_eq(run_rtn(model2, out, q, GPTQ_FORMAT_V2, 0, &s, &stats), GPTQ_OK);
    cr_assert_eq(stats.format, GPTQ_FORMAT_V2);
    check_reads_back(out, &s);
    seen_free(&s);
    rm_tree(root);
}

Test(pipeline, interrupt_leaves_no_trace)
{
    char root[256], model[300], out[300];
    cr_assert_eq(syn_model_dir(root, model, out, 0, NULL), GPTQ_OK, "%s", gptq_last_error());
    gptq_backend *be = cpu();
    gptq_pipeline_options o;
    gptq_pipeline_options_default(&o);
    o.q.method = GPTQ_METHOD_RTN;
    static volatile sig_atomic_t flag = 1;
    o.interrupt = &flag;
    gptq_pipeline_stats stats;
    cr_assert_eq(gptq_quantize_model(be, model, out, &o, &stats), GPTQ_ERR_INVALID);
    cr_assert(strstr(gptq_last_error(), "interrupted"), "%s", gptq_last_error());
    cr_assert(!exists(out));
    cr_assert_eq(count_prefixed(root, "out."), 0);
    /* refusing to write over the source */
    o.interrupt = NULL;
    cr_assert_eq(gptq_quantize_model(be, model, model, &o, &stats), GPTQ_ERR_INVALID);
    cr_assert(strstr(gptq_last_error(), "model folder itself"), "%s", gptq_last_error());
    gptq_backend_close(be);
    rm_tree(root);
}

Test(pipeline, refuses_what_cannot_be_packed)
{
    char root[256], model[300], out[300];
    cr_assert_eq(syn_model_dir(root, model, out, 0, NULL), GPTQ_OK, "%s", gptq_last_error());
    gptq_backend *be = cpu();
    gptq_pipeline_options o;
    gptq_pipeline_options_default(&o);
    gptq_pipeline_stats stats;
    /* GPTQ without calibration */
    cr_assert_eq(gptq_quantize_model(be, model, out, &o, &stats), GPTQ_ERR_INVALID);
    cr_assert(strstr(gptq_last_error(), "calibration"), "%s", gptq_last_error());
    /* windows longer than the model's positions */
    int32_t ids[2 * 200] = {0};
    o.calib_ids = ids;
    o.nsamples = 2;
    o.seqlen = 200;
    cr_assert_eq(gptq_quantize_model(be, model, out, &o, &stats), GPTQ_ERR_INVALID);
    cr_assert(strstr(gptq_last_error(), "max_position_embeddings 128"), "%s", gptq_last_error());
    /* a GPTQ checkpoint as input */
    o.q.method = GPTQ_METHOD_RTN;
    cr_assert_eq(gptq_quantize_model(be, model, out, &o, &stats), GPTQ_OK);
    char out2[320];
    snprintf(out2, sizeof out2, "%s/out2", root);
    cr_assert_eq(gptq_quantize_model(be, out, out2, &o, &stats), GPTQ_ERR_UNSUPPORTED);
    cr_assert(strstr(gptq_last_error(), "already a GPTQ checkpoint"), "%s", gptq_last_error());
    cr_assert(!exists(out2));
    gptq_backend_close(be);
    rm_tree(root);
}

/* ------------------------------------------------------------------ */
/* Inputs the fuzzer found (tests/fuzz/fuzz_checkpoint)                */
/* ------------------------------------------------------------------ */

/* Write `n` tensors (name, I32 or F16 zeros of `shape`) to DIR/m.safetensors
 * and read the module back with gptq_weights_read_packed, sizes from the
 * tensors (as `gptq matmul` reads them). */
static int read_module(const char *dir, int n, const char *const *names, const gptq_dtype *dt,
                       const int64_t (*shape)[2], const gptq_ckpt_quant *q)
{
    char path[300];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    gptq_st_writer *w;
    cr_assert_eq(gptq_st_writer_open(path, &w), GPTQ_OK, "%s", gptq_last_error());
    for (int i = 0; i < n; i++)
        cr_assert_eq(gptq_st_writer_declare(w, names[i], dt[i], 2, shape[i]), GPTQ_OK);
    for (int i = 0; i < n; i++) {
        size_t nb = (size_t)(shape[i][0] * shape[i][1]) * gptq_dtype_size(dt[i]);
        void *zero = calloc(1, nb ? nb : 1);
        cr_assert_eq(gptq_st_writer_write(w, zero, nb), GPTQ_OK);
        free(zero);
    }
    cr_assert_eq(gptq_st_writer_commit(w), GPTQ_OK, "%s", gptq_last_error());
    gptq_weights *wt;
    cr_assert_eq(gptq_weights_open(path, &wt), GPTQ_OK, "%s", gptq_last_error());
    gptq_packed p;
    int st = gptq_weights_read_packed(wt, q, "", 0, 0, &p);
    if (st == GPTQ_OK) gptq_packed_free(&p);
    gptq_weights_close(wt);
    return st;
}

/* A qweight of 0 rows (in_features 0) with group_size -1 divided by a
 * group size of 0 (SIGFPE); a scales of 0 columns gave out_features 0. */
Test(read_packed, fuzz_empty_module_refused)
{
    char dir[64];
    make_tmpdir(dir, sizeof dir);
    const char *names[] = {"qweight", "qzeros", "scales"};
    const gptq_dtype dt[] = {GPTQ_I32, GPTQ_I32, GPTQ_F16};
    const gptq_ckpt_quant q = {.present = 1, .bits = 4, .group_size = -1};
    const int64_t no_rows[3][2] = {{0, 8}, {1, 1}, {1, 8}};
    cr_expect_eq(read_module(dir, 3, names, dt, no_rows, &q), GPTQ_ERR_FORMAT);
    cr_expect(strstr(gptq_last_error(), "8 x 0 (out x in): 4-bit packing needs both to be positive"), "%s", gptq_last_error());
    const int64_t no_cols[3][2] = {{1, 0}, {1, 0}, {1, 0}};
    cr_expect_eq(read_module(dir, 3, names, dt, no_cols, &q), GPTQ_ERR_FORMAT);
    cr_expect(strstr(gptq_last_error(), "0 x 8 (out x in)"), "%s", gptq_last_error());
    /* the same module with one row of words reads */
    const int64_t fine[3][2] = {{1, 8}, {1, 1}, {1, 8}};
    cr_expect_eq(read_module(dir, 3, names, dt, fine, &q), GPTQ_OK, "%s", gptq_last_error());
    rm_tree(dir);
}

/* A g_idx of the wrong length was reported as "expected I32 [80]" for 8
 * inputs (a stray 0 printed after a 1-D shape). */
Test(read_packed, wrong_g_idx_names_its_shape)
{
    char dir[64];
    make_tmpdir(dir, sizeof dir);
    const char *names[] = {"qweight", "qzeros", "scales", "g_idx"};
    const gptq_dtype dt[] = {GPTQ_I32, GPTQ_I32, GPTQ_F16, GPTQ_I32};
    const gptq_ckpt_quant q = {.present = 1, .bits = 4, .group_size = -1};
    const int64_t shape[4][2] = {{1, 8}, {1, 1}, {1, 8}, {1, 7}};
    cr_expect_eq(read_module(dir, 4, names, dt, shape, &q), GPTQ_ERR_FORMAT);
    cr_expect(strstr(gptq_last_error(), "is I32 [1, 7], expected I32 [8]"), "%s",
              gptq_last_error());
    rm_tree(dir);
}
