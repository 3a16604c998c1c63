/*
 * config.c — Hugging Face config.json -> gptq_model_config: the keys every
 * family shares, the architecture lookup over the families' descriptions
 * (k_archs), each family's keys (gptq_arch.keys, in its transformers 4 and
 * 5 spellings) and its own parse, the size bounds, and the quantization.
 *
 * Both styles real hub models come in are read:
 *   transformers 4: "rope_theta", "rope_scaling", "torch_dtype"
 *   transformers 5: "rope_parameters": {"rope_theta", "rope_type", ...}, "dtype"
 * (the RoPE scaling in either spelling: rope.c)
 * Defaults follow the transformers config classes (LlamaConfig, MistralConfig,
 * Qwen2Config, Qwen3Config, OPTConfig, Phi3Config, Gemma2Config, Gemma3TextConfig), so a
 * key they would default may be absent here too.
 * GPTQ checkpoints: "quantization_config" in config.json, else
 * quantize_config.json beside it; the synonyms other tools write (wbits,
 * w_bit, q_group_size, zero_point) are accepted.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../format/format.h"
#include "../io/io.h"
#include "../text/tokenizer.h"
#include "arch.h"

static int parse_dtype(const char *s, gptq_dtype *out)
{
    if (!strcmp(s, "float32") || !strcmp(s, "torch.float32")) *out = GPTQ_F32;
    else if (!strcmp(s, "float16") || !strcmp(s, "torch.float16")) *out = GPTQ_F16;
    else if (!strcmp(s, "bfloat16") || !strcmp(s, "torch.bfloat16")) *out = GPTQ_BF16;
    else return -1;
    return 0;
}

/* Bounds on the sizes a config may give, each far above any model in use
 * (noted beside it) and low enough that no product of them overflows an
 * int64 or a size_t: a config that asks for more is refused by key before
 * anything is allocated, instead of failing later with "out of memory". */
static const struct {
    const char *key;
    int64_t max;
} k_limits[] = {
    {"vocab_size", (int64_t)GPTQ_TOK_MAX_ID + 1}, /* 2^24; the largest in use ~2^18 */
    {"hidden_size", (int64_t)1 << 17},            /* largest in use 16384 */
    {"intermediate_size", (int64_t)1 << 20},      /* largest in use 53248 */
    {"ffn_dim", (int64_t)1 << 20},
    {"word_embed_proj_dim", (int64_t)1 << 17},
    {"num_hidden_layers", GPTQ_MAX_LAYERS},       /* largest in use 126 */
    {"num_attention_heads", 4096},                /* largest in use 128 */
    {"num_key_value_heads", 4096},
    {"head_dim", 4096},                           /* largest in use 256 */
    {"max_position_embeddings", (int64_t)1 << 28}, /* largest in use ~10M */
};

/* Elements of one weight matrix (64 GiB in f32; Llama 3 405B's largest,
 * its embedding, has 2^31), and of all the decoder layers' linears
 * together (Llama 3 405B: 2^38.5). */
#define CFG_MAX_TENSOR ((int64_t)1 << 34)
#define CFG_MAX_LAYERS_TOTAL ((int64_t)1 << 41)

static int64_t limit_of(const char *key)
{
    for (size_t i = 0; i < sizeof k_limits / sizeof *k_limits; i++)
        if (!strcmp(k_limits[i].key, key)) return k_limits[i].max;
    return INT32_MAX;
}

int gptq_config_get_size(const cJSON *root, const char *key, int64_t *out, int required,
                         const char *file)
{
    int st = gptq_json_get_int(root, key, out, required, file);
    if (st < 0) return st;
    const int64_t max = limit_of(key);
    if (*out <= 0 || *out > max)
        return gptq_error(GPTQ_ERR_FORMAT,
                          "%s: \"%s\" = %lld is out of range (it must be 1 .. %lld)", file, key,
                          (long long)*out, (long long)max);
    return GPTQ_OK;
}

/* The sizes the forward and the checkpoint allocate from, checked as
 * products (all factors are bounded above, so none overflows here). */
static int check_products(const gptq_model_config *c, const char *file)
{
    const int64_t D = c->hidden_size, V = c->vocab_size, F = c->intermediate_size;
    const int64_t Hd = c->num_heads * c->head_dim, Kd = c->num_kv_heads * c->head_dim;
    /* the MLP width under the family's own key name */
    const char *fkey = "intermediate_size";
    for (int i = 0; i < c->arch->nkeys; i++)
        if (c->arch->keys[i].field == offsetof(gptq_model_config, intermediate_size))
            fkey = c->arch->keys[i].v4;
    char what[96], pwhat[96];
    const struct {
        const char *what;
        int64_t n;
    } t[] = {
        {"vocab_size x hidden_size (embed_tokens, lm_head)", V * D},
        {"num_attention_heads x head_dim x hidden_size (q_proj)", Hd * D},
        {"num_key_value_heads x head_dim x hidden_size (k_proj)", Kd * D},
        {what, F * D},
        {pwhat, c->arch->positions ? (c->max_positions + c->pos_offset) * D : 0},
    };
    snprintf(what, sizeof what, "%s x hidden_size (the MLP)", fkey);
    snprintf(pwhat, sizeof pwhat, "(max_position_embeddings + %lld) x hidden_size (%s)",
             (long long)c->pos_offset, c->arch->positions ? c->arch->positions : "");
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        if (t[i].n > CFG_MAX_TENSOR)
            return gptq_error(GPTQ_ERR_FORMAT,
                              "%s: %s = %lld elements in one tensor, above the limit of 2^34",
                              file, t[i].what, (long long)t[i].n);
    /* a bound on any family's layer: q, o, k, v and three MLP matrices */
    const int64_t per_layer = 2 * Hd * D + 2 * Kd * D + 3 * F * D;
    if (per_layer * c->num_layers > CFG_MAX_LAYERS_TOTAL)
        return gptq_error(GPTQ_ERR_FORMAT,
                          "%s: num_hidden_layers %lld x %lld weights per layer = %lld, above the "
                          "limit of 2^41",
                          file, (long long)c->num_layers, (long long)per_layer,
                          (long long)(per_layer * c->num_layers));
    return GPTQ_OK;
}

static int parse_quant(const cJSON *q, const char *file, gptq_ckpt_quant *out)
{
    gptq_ckpt_quant r = {.present = 1, .bits = 0, .group_size = 128, .desc_act = 0, .sym = 1,
                         .lm_head = 0, .format = GPTQ_FORMAT_V1};
    const char *method = NULL;
    GPTQ_TRY(gptq_json_get_str(q, "quant_method", &method, 0, file));
    if (!method) GPTQ_TRY(gptq_json_get_str(q, "method", &method, 0, file));
    if (method && !strcmp(method, "compressed-tensors")) return gptq_ct_parse_quant(q, file, out);
    if (method && strcmp(method, gptq_format_get(r.format)->quant_method) != 0)
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: quantization_config: quant_method \"%s\" is not supported (only "
                          "\"gptq\" or \"compressed-tensors\")",
                          file, method);
    int64_t v = 0;
    const char *bits_keys[] = {"bits", "wbits", "w_bit"};
    int found = 0;
    for (int i = 0; i < 3 && !found; i++) {
        int st = gptq_json_get_int(q, bits_keys[i], &v, 0, file);
        if (st < 0) return st;
        found = st == GPTQ_OK;
    }
    if (!found)
        return gptq_error(GPTQ_ERR_FORMAT,
                          "%s: quantization_config has no \"bits\" (nor wbits / w_bit)", file);
    if (gptq_format_check_bits(GPTQ_ERR_UNSUPPORTED, "bits =", v))
        return gptq_error_prefix(GPTQ_ERR_UNSUPPORTED, "%s: quantization_config", file);
    r.bits = (int)v;
    v = 128;
    int st = gptq_json_get_int(q, "group_size", &v, 0, file);
    if (st < 0) return st;
    if (st == GPTQ_JSON_ABSENT) GPTQ_TRY(gptq_json_get_int(q, "q_group_size", &v, 0, file));
    if (v != -1 && (v <= 0 || v > INT32_MAX))
        return gptq_error(GPTQ_ERR_FORMAT,
                          "%s: quantization_config: group_size = %lld (must be -1 or positive)",
                          file, (long long)v);
    r.group_size = (int)v;
    GPTQ_TRY(gptq_json_get_bool(q, "desc_act", &r.desc_act, 0, file));
    int zp = -1;
    st = gptq_json_get_bool(q, "sym", &r.sym, 0, file);
    if (st < 0) return st;
    if (st == GPTQ_JSON_ABSENT) {
        GPTQ_TRY(gptq_json_get_bool(q, "zero_point", &zp, 0, file));
        if (zp >= 0) r.sym = !zp;
    }
    GPTQ_TRY(gptq_json_get_bool(q, "lm_head", &r.lm_head, 0, file));
    /* act_group_aware (GAR), where GPTQModel 5.0 on writes it (meta) or a
     * user may (top level): g_idx stays k / G, so loading needs nothing
     * from it; GPTQModel's config refuses it true beside desc_act true */
    const cJSON *meta = NULL;
    GPTQ_TRY(gptq_json_get_object(q, "meta", &meta, 0, file));
    const cJSON *const gar_in[] = {q, meta};
    for (int i = 0; i < 2; i++) {
        int gar = -1;
        if (gar_in[i]) GPTQ_TRY(gptq_json_get_bool(gar_in[i], "act_group_aware", &gar, 0, file));
        if (gar == 1 && r.desc_act)
            return gptq_error(GPTQ_ERR_FORMAT, "%s: quantization_config%s: act_group_aware and "
                              "desc_act are both true (GPTQModel refuses that pair)", file,
                              i ? ".meta" : "");
    }
    const cJSON *dyn = NULL;
    GPTQ_TRY(gptq_json_get_object(q, "dynamic", &dyn, 0, file));
    if (dyn) GPTQ_TRY(gptq_dynamic_parse(dyn, file, &r.dynamic));
    const char *fmt = NULL, *fmt2 = NULL;
    GPTQ_TRY(gptq_json_get_str(q, "checkpoint_format", &fmt, 0, file));
    GPTQ_TRY(gptq_json_get_str(q, "format", &fmt2, 0, file));
    /* vLLM, ExLlamaV2 and llama.cpp's converter read the first, optimum the
     * second: two values would be two readings of the zero points */
    if (fmt && fmt2 && strcmp(fmt, fmt2))
        return gptq_error(GPTQ_ERR_FORMAT,
                          "%s: quantization_config: checkpoint_format \"%s\" and format \"%s\" "
                          "disagree (vLLM and ExLlamaV2 read the first, optimum the second, so "
                          "the zero points would be read two ways)",
                          file, fmt, fmt2);
    if (!fmt) fmt = fmt2;
    if (fmt) {
        const gptq_format_traits *t = gptq_format_by_name(fmt);
        if (!t)
            return gptq_error(GPTQ_ERR_UNSUPPORTED,
                              "%s: quantization_config: checkpoint_format \"%s\" is not supported "
                              "(\"gptq\" or \"gptq_v2\")",
                              file, fmt);
        r.format = t->id;
    }
    *out = r;
    return GPTQ_OK;
}

/* Every family; an unknown architecture's message lists their names. */
static const gptq_arch *const k_archs[] = {&gptq_arch_llama, &gptq_arch_qwen3, &gptq_arch_opt,
                                             &gptq_arch_phi3, &gptq_arch_gemma2,
                                             &gptq_arch_gemma3, &gptq_arch_gemma3mm};
#define NARCHS ((int)(sizeof k_archs / sizeof *k_archs))

/* The keys every family reads. */
static const gptq_arch_key k_shared_keys[] = {
    {"vocab_size", NULL, GPTQ_KEY_SIZE, offsetof(gptq_model_config, vocab_size), 1, 0},
    {"hidden_size", NULL, GPTQ_KEY_SIZE, offsetof(gptq_model_config, hidden_size), 1, 0},
    {"num_hidden_layers", NULL, GPTQ_KEY_SIZE, offsetof(gptq_model_config, num_layers), 1, 0},
    {"num_attention_heads", NULL, GPTQ_KEY_SIZE, offsetof(gptq_model_config, num_heads), 1, 0},
};

/* Key k into its field of c: the default, then the v4 spelling, then the
 * v5 one ("object.key") over it. A required key has one spelling. */
static int read_key(const cJSON *root, const gptq_arch_key *k, const char *file,
                    gptq_model_config *c)
{
    void *f = (char *)c + k->field;
    if (k->type == GPTQ_KEY_SIZE) *(int64_t *)f = (int64_t)k->def;
    else if (k->type == GPTQ_KEY_NUM) *(double *)f = k->def;
    else *(int *)f = (int)k->def;
    for (int v = 0; v < 2; v++) {
        const char *key = v ? k->v5 : k->v4, *dot = key ? strchr(key, '.') : NULL;
        const cJSON *obj = root;
        if (!key) continue;
        if (dot) {
            char parent[64];
            snprintf(parent, sizeof parent, "%.*s", (int)(dot - key), key);
            GPTQ_TRY(gptq_json_get_object(root, parent, &obj, 0, file));
            if (!obj) continue;
            key = dot + 1;
        }
        if (k->type == GPTQ_KEY_SIZE)
            GPTQ_TRY(gptq_config_get_size(obj, key, f, k->required, file));
        else if (k->type == GPTQ_KEY_NUM)
            GPTQ_TRY(gptq_json_get_num(obj, key, f, k->required, file));
        else
            GPTQ_TRY(gptq_json_get_bool(obj, key, f, k->required, file));
    }
    return GPTQ_OK;
}

static int unknown_arch(const char *file, const char *name)
{
    char list[512] = "";
    size_t n = 0;
    for (int a = 0; a < NARCHS; a++)
        for (int i = 0; i < k_archs[a]->nnames && n < sizeof list; i++)
            n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "",
                                  k_archs[a]->names[i].arch);
    return gptq_error(GPTQ_ERR_UNSUPPORTED,
                      "%s: architecture \"%s\" is not supported (supported: %s)", file, name,
                      list);
}

int gptq_model_config_parse(const cJSON *root, const char *file, gptq_model_config *c)
{
    memset(c, 0, sizeof *c);
    if (!file) file = "config.json";
    if (!cJSON_IsObject(root))
        return gptq_error(GPTQ_ERR_FORMAT, "%s: the top level is not a JSON object", file);

    /* architecture: architectures[0], else model_type */
    const char *arch = NULL;
    const cJSON *archs = NULL;
    GPTQ_TRY(gptq_json_get_array(root, "architectures", &archs, 0, file));
    if (archs) {
        const cJSON *a0 = cJSON_GetArrayItem(archs, 0);
        if (!a0 || !cJSON_IsString(a0))
            return gptq_error(GPTQ_ERR_FORMAT,
                              "%s: \"architectures\" must be a non-empty array of strings", file);
        arch = a0->valuestring;
    }
    const char *mtype = NULL;
    GPTQ_TRY(gptq_json_get_str(root, "model_type", &mtype, 0, file));
    const gptq_arch_name *found = NULL;
    for (int a = 0; a < NARCHS; a++)
        for (int i = 0; i < k_archs[a]->nnames; i++) {
            const gptq_arch_name *n = &k_archs[a]->names[i];
            if ((arch && !strcmp(arch, n->arch)) || (!arch && mtype && !strcmp(mtype, n->model_type))) {
                found = n;
                c->arch = k_archs[a];
            }
        }
    if (!found) {
        if (!arch && !mtype)
            return gptq_error(GPTQ_ERR_FORMAT,
                              "%s: neither \"architectures\" nor \"model_type\" is given", file);
        return unknown_arch(file, arch ? arch : mtype);
    }
    snprintf(c->architecture, sizeof c->architecture, "%s", found->arch);

    /* the model's keys: the top level, or the family's sub-object of it
     * (messages then name it: "config.json: text_config: ...") */
    const cJSON *mroot = root;
    char mfile[4200];
    snprintf(mfile, sizeof mfile, "%s", file);
    if (c->arch->sub_config) {
        GPTQ_TRY(gptq_json_get_object(root, c->arch->sub_config, &mroot, 1, file));
        snprintf(mfile, sizeof mfile, "%s: %s", file, c->arch->sub_config);
    }
    for (size_t i = 0; i < sizeof k_shared_keys / sizeof *k_shared_keys; i++) {
        int own = 0;
        for (int j = 0; j < c->arch->nkeys; j++)
            own |= c->arch->keys[j].field == k_shared_keys[i].field;
        if (!own) GPTQ_TRY(read_key(mroot, &k_shared_keys[i], mfile, c));
    }
    for (int i = 0; i < c->arch->nkeys; i++)
        GPTQ_TRY(read_key(mroot, &c->arch->keys[i], mfile, c));
    GPTQ_TRY(c->arch->parse(mroot, mfile, c));
    GPTQ_TRY(check_products(c, mfile));

    /* dtype (informational: weights are converted to f32 whatever it says) */
    c->dtype = GPTQ_F32;
    const char *dt = NULL;
    GPTQ_TRY(gptq_json_get_str(root, "dtype", &dt, 0, file));
    if (!dt) GPTQ_TRY(gptq_json_get_str(root, "torch_dtype", &dt, 0, file));
    if (dt && parse_dtype(dt, &c->dtype))
        return gptq_error(GPTQ_ERR_UNSUPPORTED,
                          "%s: dtype \"%s\" is not supported (float32, float16, bfloat16)", file,
                          dt);

    const cJSON *q = NULL;
    GPTQ_TRY(gptq_json_get_object(root, "quantization_config", &q, 0, file));
    if (q) GPTQ_TRY(parse_quant(q, file, &c->quant));
    return GPTQ_OK;
}

/* quantize_config.json of dir into *q, when there is one (q->present
 * stays 0 when not). Whatever is at the name (a FIFO, a symlink loop) is
 * read or refused, never waited on or taken for absent. */
static int load_quantize_config(const char *dir, gptq_ckpt_quant *q)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/quantize_config.json", dir);
    if (!gptq_input_present(path)) return GPTQ_OK;
    cJSON *root = NULL;
    int st = gptq_json_read_file(path, &root);
    if (st) return st;
    if (!cJSON_IsObject(root))
        st = gptq_error(GPTQ_ERR_FORMAT, "%s: the top level is not a JSON object", path);
    else
        st = parse_quant(root, path, q);
    cJSON_Delete(root);
    return st;
}

/* "owner/name" with the characters the Hugging Face hub allows in each
 * part (letters, digits, '-', '_', '.'; neither part starting with '.'). */
static int looks_like_hub_id(const char *s)
{
    const char *slash = strchr(s, '/');
    if (!slash || strchr(slash + 1, '/') || slash == s || !slash[1]) return 0;
    if (s[0] == '.' || slash[1] == '.') return 0;
    for (const char *c = s; *c; c++)
        if (c != slash && !((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                            (*c >= '0' && *c <= '9') || *c == '-' || *c == '_' || *c == '.'))
            return 0;
    return 1;
}

int gptq_model_config_load(const char *dir, gptq_model_config *c)
{
    struct stat sb;
    if (stat(dir, &sb) != 0 && errno == ENOENT && looks_like_hub_id(dir))
        return gptq_error(GPTQ_ERR_IO,
                          "%s: no such folder. It looks like a Hugging Face hub id, but gptq-c "
                          "reads only local model folders (it downloads nothing): get one first, "
                          "e.g. `huggingface-cli download %s --local-dir %s` (or `git lfs install "
                          "&& git clone https://huggingface.co/%s`), then give that folder",
                          dir, dir, strrchr(dir, '/') + 1, dir);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *root = NULL;
    int st = gptq_json_read_file(path, &root);
    if (st) return st;
    st = gptq_model_config_parse(root, path, c);
    cJSON_Delete(root);
    if (st || c->quant.present) return st;
    /* Older GPTQ checkpoints keep their settings only in quantize_config.json. */
    return load_quantize_config(dir, &c->quant);
}

int gptq_ckpt_quant_load(const char *dir, gptq_ckpt_quant *q)
{
    memset(q, 0, sizeof *q);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (gptq_input_present(path)) {
        cJSON *root = NULL;
        int st = gptq_json_read_file(path, &root);
        if (st) return st;
        const cJSON *qc = NULL;
        st = cJSON_IsObject(root)
                 ? gptq_json_get_object(root, "quantization_config", &qc, 0, path)
                 : gptq_error(GPTQ_ERR_FORMAT, "%s: the top level is not a JSON object", path);
        if (st >= 0 && qc) st = parse_quant(qc, path, q);
        cJSON_Delete(root);
        if (st < 0 || q->present) return st;
    }
    return load_quantize_config(dir, q);
}
