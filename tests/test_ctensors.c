/*
 * test_ctensors.c — the compressed-tensors pack-quantized tensors
 * (src/format/ctensors.c): hand-derived words for 4 and 8 bits (worked out
 * in the comments from the bit positions pack_quantized.py documents, not
 * from our implementation), round trips for 4 and 8 bits, sym and asym,
 * shapes that leave short last words, the trip through our v2 gptq_packed
 * and back, and the refusals (act-order g_idx, a sym zero that is not
 * 2^(b-1), 3 bits, bits in the padding).
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format/ctensors.h"

static uint64_t rng_state;
static uint32_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ull) >> 32);
}

/* pack_quantized.py's docstring: 8 bits, signed [1, 2] -> unsigned
 * [129, 130] -> word 0x00008281 = 33409. Our codes are the unsigned ones. */
Test(ctensors, docstring_example_8bit)
{
    const uint8_t codes[2] = {129, 130};
    const int32_t zeros[1] = {128};
    const uint16_t scales[1] = {0x3c00};
    gptq_ct_linear c;
    cr_assert_eq(gptq_ct_pack(codes, zeros, scales, 1, 2, 1, 8, 1, &c), 0, "%s", gptq_last_error());
    cr_assert_eq(c.packed_cols, 1);
    cr_assert_eq(c.weight_packed[0], 33409);
    cr_assert_null(c.weight_zero_point, "sym stores no zero point");
    gptq_ct_free(&c);
}

/* 4 bits, K = 9: row 0 codes 0..8 -> word 0 fields 0..7 = 0x76543210, word
 * 1 holds value 8 in field 0 and zero padding: 0x00000008. Row 1 codes 15
 * -> 0xffffffff, 0x0000000f. Asym zeros for N = 9 rows, one group: packed
 * along N, rows 0..7 in word 0 (z_n = n: 0x76543210), row 8 in word 1. */
Test(ctensors, hand_words_4bit_asym)
{
    enum { N = 9, K = 9 };
    uint8_t codes[N * K];
    int32_t zeros[N];
    uint16_t scales[N];
    for (int n = 0; n < N; n++) {
        for (int k = 0; k < K; k++) codes[n * K + k] = (uint8_t)(n == 0 ? k : 15);
        zeros[n] = n;
        scales[n] = (uint16_t)(0x3c00 + n);
    }
    gptq_ct_linear c;
    cr_assert_eq(gptq_ct_pack(codes, zeros, scales, N, K, 1, 4, 0, &c), 0, "%s", gptq_last_error());
    cr_assert_eq(c.packed_cols, 2);
    cr_assert_eq(c.zp_rows, 2);
    cr_assert_eq((uint32_t)c.weight_packed[0], 0x76543210u);
    cr_assert_eq((uint32_t)c.weight_packed[1], 0x00000008u);
    cr_assert_eq((uint32_t)c.weight_packed[2], 0xffffffffu);
    cr_assert_eq((uint32_t)c.weight_packed[3], 0x0000000fu);
    cr_assert_eq((uint32_t)c.weight_zero_point[0], 0x76543210u);
    cr_assert_eq((uint32_t)c.weight_zero_point[1], 0x00000008u);
    for (int n = 0; n < N; n++) cr_assert_eq(c.weight_scale[n], 0x3c00 + n);
    gptq_ct_free(&c);
}

/* Two groups: weight_scale is (N, ngroups), ours (ngroups, N); the zero
 * words (ceil(N/pf), ngroups): group g of rows 0..7 is word [0][g]. */
Test(ctensors, scale_and_zero_transpose)
{
    enum { N = 8, K = 16, NG = 2 };
    uint8_t codes[N * K] = {0};
    int32_t zeros[NG * N];
    uint16_t scales[NG * N];
    for (int g = 0; g < NG; g++)
        for (int n = 0; n < N; n++) {
            zeros[g * N + n] = g == 0 ? 1 : 2;
            scales[g * N + n] = (uint16_t)(100 * g + n);
        }
    gptq_ct_linear c;
    cr_assert_eq(gptq_ct_pack(codes, zeros, scales, N, K, NG, 4, 0, &c), 0, "%s", gptq_last_error());
    for (int n = 0; n < N; n++)
        for (int g = 0; g < NG; g++) cr_assert_eq(c.weight_scale[n * NG + g], 100 * g + n);
    cr_assert_eq((uint32_t)c.weight_zero_point[0], 0x11111111u);
    cr_assert_eq((uint32_t)c.weight_zero_point[1], 0x22222222u);
    gptq_ct_free(&c);
}

static void round_trip(int bits, int sym, int64_t N, int64_t K, int64_t G)
{
    const int64_t ng = (K + G - 1) / G;
    uint8_t *codes = malloc((size_t)(N * K)), *back = malloc((size_t)(N * K));
    int32_t *zeros = malloc((size_t)(ng * N) * 4), *zb = malloc((size_t)(ng * N) * 4);
    uint16_t *sc = malloc((size_t)(ng * N) * 2), *sb = malloc((size_t)(ng * N) * 2);
    cr_assert(codes && back && zeros && zb && sc && sb);
    rng_state = 0x9e3779b97f4a7c15ull ^ (uint64_t)(bits * 131 + sym * 7 + N * 3 + K);
    for (int64_t i = 0; i < N * K; i++) codes[i] = (uint8_t)(rnd() & ((1u << bits) - 1));
    for (int64_t i = 0; i < ng * N; i++) {
        zeros[i] = sym ? 1 << (bits - 1) : (int32_t)(rnd() & ((1u << bits) - 1));
        sc[i] = (uint16_t)(rnd() & 0x7bff);
    }
    gptq_ct_linear c;
    cr_assert_eq(gptq_ct_pack(codes, zeros, sc, N, K, ng, bits, sym, &c), 0, "%s",
                 gptq_last_error());
    cr_assert_eq(gptq_ct_unpack(&c, back, zb, sb), 0, "%s", gptq_last_error());
    cr_assert_eq(memcmp(codes, back, (size_t)(N * K)), 0, "codes %d bits sym %d %lldx%lld", bits,
                 sym, (long long)N, (long long)K);
    cr_assert_eq(memcmp(zeros, zb, (size_t)(ng * N) * 4), 0);
    cr_assert_eq(memcmp(sc, sb, (size_t)(ng * N) * 2), 0);
    gptq_ct_free(&c);
    free(codes), free(back), free(zeros), free(zb), free(sc), free(sb);
}

Test(ctensors, round_trip_odd_shapes)
{
    const int64_t shapes[][3] = {{13, 37, 8}, {1, 1, 1}, {7, 9, 9}, {33, 64, 32}, {5, 100, 128}};
    for (int b = 4; b <= 8; b += 4)
        for (int sym = 0; sym < 2; sym++)
            for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
                const int64_t G = shapes[s][2] > shapes[s][1] ? shapes[s][1] : shapes[s][2];
                round_trip(b, sym, shapes[s][0], shapes[s][1], G);
            }
}

/* Our v2 tensors -> compressed-tensors -> v2 again: the same words. */
static void packed_trip(int bits, int sym, int G)
{
    enum { N = 32, K = 64 };
    gptq_layer_result r;
    memset(&r, 0, sizeof r);
    r.rows = N, r.cols = K, r.bits = bits, r.group_size = G == -1 ? K : G;
    r.ngroups = (K + r.group_size - 1) / r.group_size;
    r.codes = malloc(N * K);
    r.scales = malloc((size_t)(r.ngroups * N) * 4);
    r.zeros = malloc((size_t)(r.ngroups * N) * 4);
    r.g_idx = malloc(K * 4);
    cr_assert(r.codes && r.scales && r.zeros && r.g_idx);
    rng_state = 12345u + (uint64_t)bits;
    for (int i = 0; i < N * K; i++) r.codes[i] = (uint8_t)(rnd() & ((1u << bits) - 1));
    for (int64_t i = 0; i < r.ngroups * N; i++) {
        r.scales[i] = 0.001f * (float)(1 + (rnd() & 255));
        r.zeros[i] = sym ? 1 << (bits - 1) : (int32_t)(rnd() & ((1u << bits) - 1));
    }
    for (int k = 0; k < K; k++) r.g_idx[k] = k / r.group_size;
    gptq_packed p, q;
    gptq_ct_linear c;
    cr_assert_eq(gptq_pack(&r, GPTQ_FORMAT_V2, &p), 0, "%s", gptq_last_error());
    cr_assert_eq(gptq_ct_from_packed(&p, G, sym, &c), 0, "%s", gptq_last_error());
    /* the layout's first field is our code (n 0, k 0) */
    cr_assert_eq((uint32_t)c.weight_packed[0] & ((1u << bits) - 1), r.codes[0]);
    cr_assert_eq(gptq_ct_to_packed(&c, G, &q), 0, "%s", gptq_last_error());
    cr_assert_eq(memcmp(p.qweight, q.qweight, (size_t)(K * bits / 32 * N) * 4), 0);
    cr_assert_eq(memcmp(p.qzeros, q.qzeros, (size_t)(r.ngroups * N * bits / 32) * 4), 0);
    cr_assert_eq(memcmp(p.scales, q.scales, (size_t)(r.ngroups * N) * 2), 0);
    cr_assert_eq(memcmp(p.g_idx, q.g_idx, K * 4), 0);
    /* act-order groups: refused, naming the column */
    p.g_idx[0] = (int32_t)r.ngroups - 1;
    if (r.ngroups > 1) {
        gptq_ct_linear d;
        cr_assert_eq(gptq_ct_from_packed(&p, G, sym, &d), GPTQ_ERR_UNSUPPORTED);
        cr_assert(strstr(gptq_last_error(), "g_idx[0]"), "%s", gptq_last_error());
        cr_assert(strstr(gptq_last_error(), "act-order"), "%s", gptq_last_error());
    }
    gptq_packed_free(&p);
    gptq_packed_free(&q);
    gptq_ct_free(&c);
    free(r.codes), free(r.scales), free(r.zeros), free(r.g_idx);
}

Test(ctensors, through_gptq_packed)
{
    for (int b = 4; b <= 8; b += 4)
        for (int sym = 0; sym < 2; sym++) {
            packed_trip(b, sym, 16);
            packed_trip(b, sym, -1);
        }
}

Test(ctensors, refusals)
{
    uint8_t codes[8] = {0};
    int32_t zeros[1] = {7};
    uint16_t scales[1] = {0x3c00};
    gptq_ct_linear c;
    /* sym stores no zero: one of 7 at 4 bits (not 8) cannot be written */
    cr_assert_eq(gptq_ct_pack(codes, zeros, scales, 1, 8, 1, 4, 1, &c), GPTQ_ERR_INVALID);
    cr_assert(strstr(gptq_last_error(), "zero point 7"), "%s", gptq_last_error());
    cr_assert_eq(gptq_ct_pack(codes, zeros, scales, 1, 8, 1, 3, 0, &c), GPTQ_ERR_INVALID);
    cr_assert(strstr(gptq_last_error(), "3 bits"), "%s", gptq_last_error());
    /* a bit in the padding of a short last word */
    cr_assert_eq(gptq_ct_pack(codes, zeros, scales, 1, 7, 1, 4, 0, &c), 0, "%s", gptq_last_error());
    c.weight_packed[0] |= (int32_t)(1u << 28);
    uint8_t back[7];
    int32_t zb[1];
    uint16_t sb[1];
    cr_assert_eq(gptq_ct_unpack(&c, back, zb, sb), GPTQ_ERR_INVALID);
    cr_assert(strstr(gptq_last_error(), "padding"), "%s", gptq_last_error());
    gptq_ct_free(&c);
}

Test(ctensors, quant_config_keys)
{
    const char *ign[] = {"lm_head", "model.layers.0.mlp.down_proj"};
    cJSON *o = gptq_ct_quant_config(4, 128, 0, 1, ign, 2);
    cr_assert_not_null(o);
    cr_assert_str_eq(cJSON_GetObjectItem(o, "quant_method")->valuestring, "compressed-tensors");
    cr_assert_str_eq(cJSON_GetObjectItem(o, "format")->valuestring, "pack-quantized");
    const cJSON *w = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(o, "config_groups"), "group_0"), "weights");
    cr_assert_not_null(w);
    cr_assert_eq(cJSON_GetObjectItem(w, "num_bits")->valueint, 4);
    cr_assert_eq(cJSON_GetObjectItem(w, "group_size")->valueint, 128);
    cr_assert_str_eq(cJSON_GetObjectItem(w, "strategy")->valuestring, "group");
    cr_assert_str_eq(cJSON_GetObjectItem(w, "type")->valuestring, "int");
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(w, "symmetric")));
    cr_assert_str_eq(cJSON_GetObjectItem(w, "actorder")->valuestring, "weight");
    const cJSON *ig = cJSON_GetObjectItem(o, "ignore");
    cr_assert_eq(cJSON_GetArraySize(ig), 2);
    cr_assert_str_eq(cJSON_GetArrayItem(ig, 1)->valuestring, "model.layers.0.mlp.down_proj");
    cJSON_Delete(o);
    o = gptq_ct_quant_config(8, -1, 1, 0, NULL, 0);
    w = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(o, "config_groups"), "group_0"), "weights");
    cr_assert_str_eq(cJSON_GetObjectItem(w, "strategy")->valuestring, "channel");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(w, "group_size")));
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(w, "actorder")));
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(w, "symmetric")));
    cJSON_Delete(o);
}
