/*
 * fuzz_config.c — libFuzzer target for the model-config reader
 * (src/model/config.c).
 *
 * The input bytes are a config.json. They go through
 *   - gptq_json_parse + gptq_model_config_parse (in memory, an exactly
 *     sized buffer), and
 *   - gptq_model_config_load on a folder holding them as config.json and
 *     also as quantize_config.json (so the loader's fallback for a config
 *     without quantization_config reads the same object as a
 *     quantize_config.json).
 * A refusal must carry a message naming the file. An accepted config must
 * satisfy what the forward pass and the weight readers rely on: positive
 * sizes below 2^31, heads a multiple of kv heads, an even head_dim (RoPE),
 * positive eps and theta, a known dtype, a quantization with usable bits
 * and group size.
 */
#define FUZZ_NAME "fuzz_config"
#include "fuzz_util.h"

#include <math.h>

#include "io/io.h"
#include "model/arch.h"
#include "model/model.h"

static int pos31(int64_t v) { return v > 0 && v <= INT32_MAX; }

static void check_config(const gptq_model_config *c)
{
    const int gemma3 = c->arch == &gptq_arch_gemma3 || c->arch == &gptq_arch_gemma3mm;
    const int gemma = c->arch == &gptq_arch_gemma2 || gemma3;
    const int rope = c->arch == &gptq_arch_llama || c->arch == &gptq_arch_qwen3 ||
                     c->arch == &gptq_arch_phi3 || gemma; /* the RoPE families */
    CHECK(rope || c->arch == &gptq_arch_opt);
    int named = 0; /* the architecture is one the family accepts */
    for (int i = 0; i < c->arch->nnames; i++) named |= !strcmp(c->arch->names[i].arch, c->architecture);
    CHECK(named);
    CHECK(pos31(c->vocab_size) && pos31(c->hidden_size) && pos31(c->intermediate_size));
    CHECK(pos31(c->num_layers) && pos31(c->num_heads) && pos31(c->num_kv_heads));
    CHECK(pos31(c->head_dim) && pos31(c->max_positions));
    CHECK(c->num_heads % c->num_kv_heads == 0);
    CHECK(c->norm_eps > 0 && isfinite(c->norm_eps));
    CHECK(c->sliding_window >= 0);
    for (int64_t L = 0; L < c->num_layers; L++) /* a layer slides by the window or not at all */
        CHECK(c->layer_window[L] == 0 || c->layer_window[L] == c->sliding_window);
    CHECK(c->dtype == GPTQ_F32 || c->dtype == GPTQ_F16 || c->dtype == GPTQ_BF16);
    if (rope) {
        CHECK(c->head_dim % 2 == 0);
        CHECK(c->rope_theta > 0 && isfinite(c->rope_theta));
    } else {
        CHECK(c->head_dim * c->num_heads == c->hidden_size && c->num_kv_heads == c->num_heads);
    }
    if (gemma) { /* what its forward multiplies by: positive and finite, caps 0 = none */
        CHECK(c->attn_scale > 0 && isfinite(c->attn_scale));
        CHECK(c->embed_scale > 0 && isfinite(c->embed_scale));
        CHECK(c->attn_softcap >= 0 && isfinite(c->attn_softcap));
        CHECK(c->final_softcap >= 0 && isfinite(c->final_softcap));
        CHECK(!gemma3 || (c->rope_local_theta > 0 && isfinite(c->rope_local_theta)));
    }
    const gptq_ckpt_quant *q = &c->quant;
    if (q->present) {
        CHECK(q->bits == 2 || q->bits == 3 || q->bits == 4 || q->bits == 8);
        CHECK(q->group_size == -1 || q->group_size > 0);
        CHECK(q->format == GPTQ_FORMAT_V1 || q->format == GPTQ_FORMAT_V2);
        CHECK((q->desc_act | q->sym | q->lm_head) <= 1 && q->desc_act >= 0 && q->sym >= 0);
    }
}

/* The same model read twice (a struct compare would see padding). */
static int same_config(const gptq_model_config *a, const gptq_model_config *b)
{
    return !strcmp(a->architecture, b->architecture) && a->arch == b->arch &&
           a->vocab_size == b->vocab_size && a->hidden_size == b->hidden_size &&
           a->intermediate_size == b->intermediate_size && a->num_layers == b->num_layers &&
           a->num_heads == b->num_heads && a->num_kv_heads == b->num_kv_heads &&
           a->head_dim == b->head_dim && a->max_positions == b->max_positions &&
           a->norm_eps == b->norm_eps && a->rope_theta == b->rope_theta &&
           a->qkv_bias == b->qkv_bias && a->o_bias == b->o_bias && a->mlp_bias == b->mlp_bias &&
           a->norm_weight == b->norm_weight && a->norm_bias == b->norm_bias && a->final_norm == b->final_norm &&
           a->tie_word_embeddings == b->tie_word_embeddings &&
           a->sliding_window == b->sliding_window && a->pos_offset == b->pos_offset &&
           a->dtype == b->dtype &&
           !memcmp(a->layer_window, b->layer_window, sizeof a->layer_window);
}

static char dir[64];

static void remove_dir(void)
{
    char p[128];
    snprintf(p, sizeof p, "%s/config.json", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/quantize_config.json", dir);
    unlink(p);
    rmdir(dir);
}

static void put_file(const char *name, const uint8_t *data, size_t size)
{
    char p[128];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
        perror(p);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) { /* /dev/shm keeps the per-input writes off the disk */
        snprintf(dir, sizeof dir, "/dev/shm/gptq-fuzz-config-XXXXXX");
        if (!mkdtemp(dir)) {
            snprintf(dir, sizeof dir, "/tmp/gptq-fuzz-config-XXXXXX");
            if (!mkdtemp(dir)) {
                perror("mkdtemp");
                abort();
            }
        }
        atexit(remove_dir);
    }

    /* In memory: the parse the loader runs. */
    char *exact = fuzz_copy(data, size);
    cJSON *root = NULL;
    gptq_model_config a;
    int rc_a = gptq_json_parse(exact, size, "fuzz/config.json", &root);
    free(exact);
    if (rc_a == GPTQ_OK) rc_a = gptq_model_config_parse(root, "fuzz/config.json", &a);
    cJSON_Delete(root);
    if (rc_a != GPTQ_OK) CHECK(rc_a < 0 && strstr(gptq_last_error(), "fuzz/config.json"));
    else check_config(&a);

    /* The loader on a folder: config.json, and the same bytes as
     * quantize_config.json for its fallback. */
    put_file("config.json", data, size);
    put_file("quantize_config.json", data, size);
    gptq_model_config b;
    int rc_b = gptq_model_config_load(dir, &b);
    /* The loader refuses what the parse refused (same tree); it may also
     * refuse a config the parse accepted, through quantize_config.json. */
    if (rc_a != GPTQ_OK) CHECK(rc_b == rc_a);
    if (rc_b != GPTQ_OK) {
        CHECK(rc_b < 0 && strstr(gptq_last_error(), dir));
        return 0;
    }
    check_config(&b);
    CHECK(same_config(&a, &b));
    if (a.quant.present) CHECK(b.quant.present && b.quant.bits == a.quant.bits &&
                               b.quant.group_size == a.quant.group_size);
    return 0;
}
