/*
 * fuzz_checkpoint.c — libFuzzer target for the reader of a GPTQ module:
 * a checkpoint's quantization_config and its packed tensors, as `gptq eval`
 * (forward.c) and `gptq matmul` read them.
 *
 * Input: a 4-byte little-endian length L, then L bytes of JSON (the
 * quantization_config object), then a safetensors file (the rest):
 *   - the JSON goes into a fixed small Llama config.json as its
 *     "quantization_config" and through gptq_model_config_parse;
 *   - the safetensors bytes become a memfd that gptq_weights_open reads as
 *     a one-file checkpoint;
 *   - gptq_weights_read_packed reads the module with the bare names (a
 *     `gptq layer` file) and with a checkpoint prefix, sizes taken from
 *     the tensors (as matmul does), then again with those sizes given (as
 *     the forward does): the same bytes both ways;
 *   - what it accepts is unpacked (codes below 2^bits) and dequantized by
 *     the CPU reference (pack.c, what the CPU backend must match): each
 *     W[n, k] is f32(scale[g_idx[k], n]) * (code - zero) of the unpacked
 *     codes and zeros, and gptq_matmul_ref's Y = X W^T is the k-order f32
 *     sum over that W (X exact in fp16), bit for bit (NaN matching NaN).
 *     (The CPU backend's own kernels need _Float16, which Debian's clang 14
 *     lacks on x86: tests/test_pack.c diffs them against pack.c.)
 * Every refusal carries a message.
 */
#define FUZZ_NAME "fuzz_checkpoint"
#include "fuzz_util.h"

#include <math.h>

#include "io/io.h"
#include "model/model.h"

static const char k_config[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 32, \"hidden_size\": 64, "
    "\"intermediate_size\": 128, \"num_hidden_layers\": 1, \"num_attention_heads\": 4}";

/* Largest weight (N * K values) multiplied: the work per input stays small. */
#define MAX_WEIGHT (1 << 18)

static int same_f32(const float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!(a[i] == b[i] && signbit(a[i]) == signbit(b[i])) && !(isnan(a[i]) && isnan(b[i])))
            return 0;
    return 1;
}

static int same_packed(const gptq_packed *a, const gptq_packed *b)
{
    const int64_t K = a->in_features, N = a->out_features, ng = a->ngroups;
    return a->bits == b->bits && K == b->in_features && N == b->out_features &&
           ng == b->ngroups &&
           !memcmp(a->qweight, b->qweight, (size_t)(K * a->bits / 32 * N) * 4) &&
           !memcmp(a->qzeros, b->qzeros, (size_t)(ng * (N * a->bits / 32)) * 4) &&
           !memcmp(a->scales, b->scales, (size_t)(ng * N) * 2) &&
           !memcmp(a->g_idx, b->g_idx, (size_t)K * 4);
}

static void use_packed(const gptq_packed *p, gptq_format fmt)
{
    const int64_t K = p->in_features, N = p->out_features, M = 2;
    if (N * K > MAX_WEIGHT) return;
    uint8_t *codes = malloc((size_t)(N * K)); // (K, N) as stored
    int32_t *zeros = malloc((size_t)(p->ngroups * N) * sizeof(int32_t));
    float *W = malloc((size_t)(N * K) * sizeof(float)); // (N, K)
    float *X = malloc((size_t)(M * K) * sizeof(float));
    float *Y = malloc((size_t)(M * N) * sizeof(float)), *Y2 = malloc((size_t)(M * N) * sizeof(float));
    CHECK(codes && zeros && W && X && Y && Y2);
    /* X: multiples of 0.375 up to 2.25, exact in fp16 */
    for (int64_t i = 0; i < M * K; i++) X[i] = (float)((i * 7) % 13 - 6) * 0.375f;

    CHECK(gptq_unpack(p, fmt, codes, zeros) == GPTQ_OK);
    for (int64_t i = 0; i < N * K; i++) CHECK(codes[i] < (1u << p->bits));
    int rc = gptq_dequantize(p, fmt, W);
    if (rc != GPTQ_OK) { /* only a g_idx naming a group that does not exist */
        CHECK(rc == GPTQ_ERR_FORMAT && strstr(gptq_last_error(), "g_idx"));
        CHECK(gptq_matmul_ref(p, fmt, X, M, NULL, Y) == rc);
        goto done;
    }
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) {
            const int64_t g = p->g_idx[k];
            const float w = gptq_f16_to_f32(p->scales[g * N + n]) *
                            (float)(codes[k * N + n] - zeros[g * N + n]);
            CHECK(same_f32(&w, &W[n * K + k], 1));
        }
    CHECK(gptq_matmul_ref(p, fmt, X, M, NULL, Y) == GPTQ_OK);
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            float acc = 0.0f;
            for (int64_t k = 0; k < K; k++) acc += X[m * K + k] * W[n * K + k];
            Y2[m * N + n] = acc;
        }
    CHECK(same_f32(Y, Y2, M * N));
done:
    free(codes);
    free(zeros);
    free(W);
    free(X);
    free(Y);
    free(Y2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4) return 0;
    const size_t L = (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 |
                     (size_t)data[3] << 24;
    if (L > size - 4) return 0;

    /* quantization_config, inside a config.json */
    char *exact = fuzz_copy(data + 4, L);
    cJSON *q = NULL;
    int rc = gptq_json_parse(exact, L, "fuzz/quantization_config", &q);
    free(exact);
    if (rc != GPTQ_OK) return 0;
    cJSON *root = cJSON_Parse(k_config);
    CHECK(root != NULL);
    cJSON_AddItemToObject(root, "quantization_config", q);
    gptq_model_config cfg;
    rc = gptq_model_config_parse(root, "fuzz/config.json", &cfg);
    cJSON_Delete(root);
    if (rc != GPTQ_OK) {
        CHECK(rc < 0 && strstr(gptq_last_error(), "fuzz/config.json"));
        return 0;
    }
    /* "quantization_config": null leaves a float checkpoint: read_packed
     * must refuse it */

    /* the packed tensors */
    const char *path = fuzz_memfd(data + 4 + L, size - 4 - L);
    gptq_weights *w = NULL;
    rc = gptq_weights_open(path, &w);
    if (rc != GPTQ_OK) {
        CHECK(rc < 0 && w == NULL && gptq_last_error()[0]);
        return 0;
    }
    static const char *const prefixes[] = {"", "model.layers.0.mlp.down_proj"};
    for (int i = 0; i < 2; i++) {
        gptq_packed p, p2;
        rc = gptq_weights_read_packed(w, &cfg.quant, prefixes[i], 0, 0, &p);
        if (rc != GPTQ_OK) {
            CHECK(rc < 0 && gptq_last_error()[0]);
            CHECK(!p.qweight && !p.qzeros && !p.scales && !p.g_idx);
            continue;
        }
        CHECK(p.bits == cfg.quant.bits && p.in_features > 0 && p.out_features > 0);
        CHECK(p.qweight && p.qzeros && p.scales && p.g_idx);
        const int64_t G = cfg.quant.group_size > 0 ? cfg.quant.group_size : p.in_features;
        CHECK(p.ngroups == (p.in_features + G - 1) / G);
        /* the forward's call: sizes from the model config */
        rc = gptq_weights_read_packed(w, &cfg.quant, prefixes[i], p.out_features, p.in_features,
                                      &p2);
        CHECK(rc == GPTQ_OK && same_packed(&p, &p2));
        gptq_packed_free(&p2);
        use_packed(&p, cfg.quant.format);
        gptq_packed_free(&p);
    }
    gptq_weights_close(w);
    return 0;
}
