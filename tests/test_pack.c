/*
 * test_pack.c — the "gptq" checkpoint tensors: hand-derived layouts for
 * 2, 3, 4 and 8 bits (expected words worked out in the comments below from
 * the bit positions, not taken from the implementation), pack/unpack round
 * trips, the dequantizer against the direct formula, the v1 zero-point
 * rule, the reference matmul against a double-precision sum and an
 * independent f32 loop, the shape errors, and the CPU backend's packed ops
 * (pack_codes, dequantize, matmul_q: a second implementation) against all
 * of these, byte for byte; the format table (format.h) and its two checks.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format/format.h"
#include "internal.h" /* the backend's vtable, for pack_codes */

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* A layer result owning its arrays, codes (N, K), scales/zeros
 * (ngroups, N), g_idx (K) = k / G unless the test overwrites it. */
static gptq_layer_result make_result(int bits, int64_t N, int64_t K, int G)
{
    gptq_layer_result r;
    memset(&r, 0, sizeof r);
    r.rows = N;
    r.cols = K;
    r.bits = bits;
    r.group_size = G;
    r.ngroups = (K + G - 1) / G;
    r.codes = calloc((size_t)(N * K), 1);
    r.scales = calloc((size_t)(r.ngroups * N), sizeof(float));
    r.zeros = calloc((size_t)(r.ngroups * N), sizeof(int32_t));
    r.g_idx = calloc((size_t)K, sizeof(int32_t));
    cr_assert(r.codes && r.scales && r.zeros && r.g_idx);
    for (int64_t k = 0; k < K; k++) r.g_idx[k] = (int32_t)(k / G);
    for (int64_t i = 0; i < r.ngroups * N; i++) {
        r.scales[i] = 1.0f;
        r.zeros[i] = 1 << (bits - 1);
    }
    return r;
}

static void free_result(gptq_layer_result *r)
{
    free(r->codes);
    free(r->scales);
    free(r->zeros);
    free(r->g_idx);
    memset(r, 0, sizeof *r);
}

/* The uint32 pattern of a stored int32 word (conversion to unsigned is
 * defined modulo 2^32). */
static uint32_t u32(int32_t w) { return (uint32_t)w; }

/* xorshift64*, a fixed seed per test: reproducible random codes. */
static uint64_t rng_state;
static uint32_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ull) >> 32);
}
static float rnd_unit(void) { return (float)(rnd() >> 8) / 16777216.0f; } /* [0, 1) */

/* ------------------------------------------------------------------ */
/* Hand-derived layouts                                                */
/* ------------------------------------------------------------------ */

/*
 * 4 bits, K = 16, N = 8, one group (G = 16), sym zero 8.
 * pf = 8: bit field j (bits 4j..4j+3) of qweight[r, n] holds q[8r + j, n].
 * Codes q[k, n] = (k + n) % 16, i.e. row n of W holds n, n+1, ..., n+15.
 *   qweight[0, 0]: fields j = 0..7 hold 0..7, nibble j = j, read from the top
 *     nibble down: 0x76543210.
 *   qweight[1, 0]: k = 8..15 hold 8..15: 0xFEDCBA98.
 *   qweight[0, 1]: k = 0..7 hold 1..8: 0x87654321.
 *   qweight[1, 1]: k = 8..15 hold 9..15, 0 (16 % 16): 0x0FEDCBA9.
 * qzeros (1, N*4/32 = 1): eight zeros of 8.
 *   v1 stores 8 - 1 = 7 in every nibble: 0x77777777.
 *   v2 stores 8: 0x88888888 (negative as int32).
 */
Test(layout, four_bit_hand)
{
    gptq_layer_result r = make_result(4, 8, 16, 16);
    for (int n = 0; n < 8; n++)
        for (int k = 0; k < 16; k++) r.codes[n * 16 + k] = (uint8_t)((k + n) % 16);

    gptq_packed p;
    cr_assert_eq(gptq_pack(&r, GPTQ_FORMAT_V1, &p), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(p.bits, 4);
    cr_assert_eq(p.in_features, 16);
    cr_assert_eq(p.out_features, 8);
    cr_assert_eq(p.ngroups, 1);
    /* qweight is (K*b/32 = 2, N = 8): element [r, n] at r*8 + n. */
    cr_expect_eq(u32(p.qweight[0 * 8 + 0]), 0x76543210u);
    cr_expect_eq(u32(p.qweight[1 * 8 + 0]), 0xFEDCBA98u);
    cr_expect_eq(u32(p.qweight[0 * 8 + 1]), 0x87654321u);
    cr_expect_eq(u32(p.qweight[1 * 8 + 1]), 0x0FEDCBA9u);
    cr_expect_eq(u32(p.qzeros[0]), 0x77777777u);
    cr_expect_eq(p.qzeros[0], 0x77777777);
    gptq_packed_free(&p);
    cr_assert_null(p.qweight);

    cr_assert_eq(gptq_pack(&r, GPTQ_FORMAT_V2, &p), GPTQ_OK, "%s", gptq_last_error());
    cr_expect_eq(u32(p.qzeros[0]), 0x88888888u);
    cr_expect_lt(p.qzeros[0], 0, "the int32 view of 0x88888888 is negative");
    cr_expect_eq(u32(p.qweight[0]), 0x76543210u, "qweight does not depend on v1/v2");
    gptq_packed_free(&p);
    free_result(&r);
}

/*
 * 2 bits, K = 16, N = 16, one group. pf = 16: field j at bits 2j..2j+1.
 * Codes q[k, 0] = k % 4: each byte holds 0,1,2,3 in fields 0..3 =
 *   0 | 1<<2 | 2<<4 | 3<<6 = 0b11100100 = 0xE4, so qweight[0, 0] = 0xE4E4E4E4.
 * Codes q[k, 1] = 3 for all k: every field 0b11: 0xFFFFFFFF (int32 -1).
 * Zeros z[0, n] = 1 + n % 3 (asym, all >= 1), v1 stores n % 3:
 *   fields n = 0..15: 0,1,2,0,1,2,0,1,2,0,1,2,0,1,2,0. Nibble i holds
 *   fields 2i (bits 0-1) and 2i+1 (bits 2-3):
 *     i0: 0 | 1<<2 = 4   i1: 2 | 0 = 2   i2: 1 | 2<<2 = 9   i3: 0 | 1<<2 = 4
 *     i4: 2              i5: 9           i6: 4              i7: 2 | 0 = 2
 *   read from i7 down: 0x24924924.
 *   v2 stores n % 3 + 1: 1,2,3,1,2,3,...,1 -> nibbles i0: 1 | 2<<2 = 9,
 *   i1: 3 | 1<<2 = 7, i2: 2 | 3<<2 = 14 (E), then repeating 9,7,E with
 *   i7 = f14 | f15<<2 = 3 | 1<<2 = 7: read from i7 down 0x79E79E79.
 */
Test(layout, two_bit_hand)
{
    gptq_layer_result r = make_result(2, 16, 16, 16);
    for (int k = 0; k < 16; k++) {
        r.codes[0 * 16 + k] = (uint8_t)(k % 4);
        r.codes[1 * 16 + k] = 3;
    }
    for (int n = 0; n < 16; n++) r.zeros[n] = 1 + n % 3;

    gptq_packed p;
    cr_assert_eq(gptq_pack(&r, GPTQ_FORMAT_V1, &p), GPTQ_OK, "%s", gptq_last_error());
    /* qweight (K*2/32 = 1, N = 16) */
    cr_expect_eq(u32(p.qweight[0]), 0xE4E4E4E4u);
    cr_expect_eq(p.qweight[1], -1);
    cr_expect_eq(p.qweight[2], 0, "row 2 of W is all codes 0");
    cr_expect_eq(u32(p.qzeros[0]), 0x24924924u);
    gptq_packed_free(&p);

    cr_assert_eq(gptq_pack(&r, GPTQ_FORMAT_V2, &p), GPTQ_OK, "%s", gptq_last_error());
    cr_expect_eq(u32(p.qzeros[0]), 0x79E79E79u);
    gptq_packed_free(&p);
    free_result(&r);
}

/*
 * 8 bits, K = 4, N = 4, one group. pf = 4: byte j of qweight[0, n] holds
 * q[j, n].
 *   q[:, 0] = 0x10, 0x20, 0xAB, 0xFF -> 0xFFAB2010.
 * Zeros z[0, n] = 0x01, 0x80, 0xFF, 0x43; v1 stores z - 1 = 0x00, 0x7F,
 *   0xFE, 0x42 in bytes 0..3 of qzeros[0, 0] -> 0x42FE7F00; v2 stores them
 *   as is -> 0x43FF8001.
 */
Test(layout, eight_bit_hand)
{
    gptq_layer_result r = make_result(8, 4, 4, 4);
    const uint8_t col0[4] = {0x10, 0x20, 0xAB, 0xFF};
    for (int k = 0; k < 4; k++) r.codes[0 * 4 + k] = col0[k];
    r.zeros[0] = 0x01;
    r.zeros[1] = 0x80;
    r.zeros[2] = 0xFF;
    r.zeros[3] = 0x43;

    gptq_packed p;
    cr_assert_eq(gptq_pack(&r, GPTQ_FORMAT_V1, &p), GPTQ_OK, "%s", gptq_last_error());
    cr_expect_eq(u32(p.qweight[0]), 0xFFAB2010u);
    cr_expect_eq(u32(p.qzeros[0]), 0x42FE7F00u);
    gptq_packed_free(&p);
    cr_assert_eq(gptq_pack(&r, GPTQ_FORMAT_V2, &p), GPTQ_OK, "%s", gptq_last_error());
    cr_expect_eq(u32(p.qzeros[0]), 0x43FF8001u);
    gptq_packed_free(&p);
    free_result(&r);
}

/*
 * 3 bits, K = 32, N = 32, one group. The 32 codes of column n = 0 form one
 * 96-bit little-endian stream in qweight[0..2, 0], value v at bits 3v..3v+2.
 * Codes c[v] = v % 8, except c[10] = 6 (0b110) and c[21] = 3 (0b011), chosen
 * so that the two fields that straddle words are not symmetric in their bits.
 *
 * word 0 (stream bits 0..31): c0..c9 at bits 3v (each 3-bit group is one
 *   octal digit): octal c9..c0 = 1 0 7 6 5 4 3 2 1 0 ->
 *   001 000 111 110 101 100 011 010 001 000 (bits 29..0);
 *   c10 = 110: its bit 0 (0) at bit 30, its bit 1 (1) at bit 31.
 *   bits 31..0: 10 001000111110101100011010001000
 *             = 1000 1000 1111 1010 1100 0110 1000 1000 = 0x88FAC688.
 * word 1 (stream bits 32..63): bit 0 = bit 2 of c10 = 1; c11..c20 at bits
 *   1 + 3(v-11): c20..c11 = 4 3 2 1 0 7 6 5 4 3 ->
 *   100 011 010 001 000 111 110 101 100 011 (bits 30..1);
 *   bit 31 = bit 0 of c21 (0b011) = 1.
 *   bits 31..0: 1 100011010001000111110101100011 1
 *             = 1100 0110 1000 1000 1111 1010 1100 0111 = 0xC688FAC7.
 * word 2 (stream bits 64..95): bits 0,1 = bits 1,2 of c21 = 1, 0; c22..c31
 *   at bits 2 + 3(v-22): c31..c22 = 7 6 5 4 3 2 1 0 7 6 ->
 *   111 110 101 100 011 010 001 000 111 110 (bits 31..2).
 *   bits 31..0: 111110101100011010001000111110 01
 *             = 1111 1010 1100 0110 1000 1000 1111 1001 = 0xFAC688F9.
 * qzeros (1, 32*3/32 = 3) packs the same stream along N: with v2 zeros
 * z[0, n] = c[n] (stored as is) its three words equal the three above.
 */
Test(layout, three_bit_hand)
{
    gptq_layer_result r = make_result(3, 32, 32, 32);
    uint8_t c[32];
    for (int v = 0; v < 32; v++) c[v] = (uint8_t)(v % 8);
    c[10] = 6;
    c[21] = 3;
    for (int k = 0; k < 32; k++) r.codes[0 * 32 + k] = c[k];
    for (int n = 0; n < 32; n++) r.zeros[n] = c[n];

    gptq_packed p;
    cr_assert_eq(gptq_pack(&r, GPTQ_FORMAT_V2, &p), GPTQ_OK, "%s", gptq_last_error());
    /* qweight (32*3/32 = 3, N = 32): column 0 at [0], [32], [64]. */
    cr_expect_eq(u32(p.qweight[0 * 32]), 0x88FAC688u, "word 0: got 0x%08X", u32(p.qweight[0]));
    cr_expect_eq(u32(p.qweight[1 * 32]), 0xC688FAC7u, "word 1: got 0x%08X", u32(p.qweight[32]));
    cr_expect_eq(u32(p.qweight[2 * 32]), 0xFAC688F9u, "word 2: got 0x%08X", u32(p.qweight[64]));
    cr_expect_eq(p.qweight[1], 0, "column 1 is all codes 0");
    /* qzeros (1, 3): the same stream along N. */
    cr_expect_eq(u32(p.qzeros[0]), 0x88FAC688u);
    cr_expect_eq(u32(p.qzeros[1]), 0xC688FAC7u);
    cr_expect_eq(u32(p.qzeros[2]), 0xFAC688F9u);

    /* The straddling fields come back whole. */
    uint8_t codes_kn[32 * 32];
    int32_t zeros[32];
    cr_assert_eq(gptq_unpack(&p, GPTQ_FORMAT_V2, codes_kn, zeros), GPTQ_OK, "%s", gptq_last_error());
    cr_expect_eq(codes_kn[10 * 32 + 0], 6);
    cr_expect_eq(codes_kn[21 * 32 + 0], 3);
    cr_expect_eq(zeros[10], 6);
    cr_expect_eq(zeros[21], 3);
    gptq_packed_free(&p);

    /* v1 with every zero 1: each field holds 0, all words 0. */
    for (int n = 0; n < 32; n++) r.zeros[n] = 1;
    cr_assert_eq(gptq_pack(&r, GPTQ_FORMAT_V1, &p), GPTQ_OK, "%s", gptq_last_error());
    cr_expect_eq(p.qzeros[0], 0);
    cr_expect_eq(p.qzeros[1], 0);
    cr_expect_eq(p.qzeros[2], 0);
    gptq_packed_free(&p);
    /* v1 with the sym zero 4 stores 3 = 0b011 in every field, so stream bit
     * t is set unless t % 3 == 2.
     * word 0 (t = i): bits 2, 5, ..., 29 clear; bits 31..0 read
     *   1101 1011 0110 1101 1011 0110 1101 1011 = 0xDB6DB6DB.
     * word 1 (t = 32 + i, 32 % 3 = 2): clear where i % 3 == 0; bits 31..0
     *   1011 0110 1101 1011 0110 1101 1011 0110 = 0xB6DB6DB6.
     * word 2 (t = 64 + i, 64 % 3 = 1): clear where i % 3 == 1; bits 31..0
     *   0110 1101 1011 0110 1101 1011 0110 1101 = 0x6DB6DB6D. */
    for (int n = 0; n < 32; n++) r.zeros[n] = 4;
    cr_assert_eq(gptq_pack(&r, GPTQ_FORMAT_V1, &p), GPTQ_OK, "%s", gptq_last_error());
    cr_expect_eq(u32(p.qzeros[0]), 0xDB6DB6DBu, "got 0x%08X", u32(p.qzeros[0]));
    cr_expect_eq(u32(p.qzeros[1]), 0xB6DB6DB6u, "got 0x%08X", u32(p.qzeros[1]));
    cr_expect_eq(u32(p.qzeros[2]), 0x6DB6DB6Du, "got 0x%08X", u32(p.qzeros[2]));
    gptq_packed_free(&p);
    free_result(&r);
}

/*
 * Act-order g_idx: 4 bits, K = 16, N = 8, G = 8, two groups. The
 * quantization order visits even columns first, so g_idx[k] = 0 for even k
 * and 1 for odd k (position in the order // G), while qweight keeps the
 * original column order. Group 0: scale 0.5, zero 3; group 1: scale 2, zero
 * 10 (both exact in fp16). All codes 5:
 *   even k: 0.5 * (5 - 3) = 1;  odd k: 2 * (5 - 10) = -10.
 * g_idx is stored as given; scales as fp16 0.5 = 0x3800, 2 = 0x4000.
 */
Test(layout, act_order_g_idx)
{
    gptq_layer_result r = make_result(4, 8, 16, 8);
    memset(r.codes, 5, 8 * 16);
    for (int k = 0; k < 16; k++) r.g_idx[k] = k % 2;
    for (int n = 0; n < 8; n++) {
        r.scales[0 * 8 + n] = 0.5f;
        r.zeros[0 * 8 + n] = 3;
        r.scales[1 * 8 + n] = 2.0f;
        r.zeros[1 * 8 + n] = 10;
    }
    gptq_packed p;
    cr_assert_eq(gptq_pack(&r, GPTQ_FORMAT_V1, &p), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(p.ngroups, 2);
    for (int k = 0; k < 16; k++) cr_expect_eq(p.g_idx[k], k % 2);
    cr_expect_eq(p.scales[0], 0x3800);
    cr_expect_eq(p.scales[8], 0x4000);
    /* v1 zeros: group 0 fields 2 -> 0x22222222, group 1 fields 9 -> 0x99999999 */
    cr_expect_eq(u32(p.qzeros[0]), 0x22222222u);
    cr_expect_eq(u32(p.qzeros[1]), 0x99999999u);
    float W[8 * 16];
    cr_assert_eq(gptq_dequantize(&p, GPTQ_FORMAT_V1, W), GPTQ_OK, "%s", gptq_last_error());
    for (int n = 0; n < 8; n++)
        for (int k = 0; k < 16; k++)
            cr_expect_eq(W[n * 16 + k], k % 2 == 0 ? 1.0f : -10.0f, "W[%d, %d] = %g", n, k,
                         (double)W[n * 16 + k]);
    gptq_packed_free(&p);
    free_result(&r);
}

/* ------------------------------------------------------------------ */
/* Round trips and the dequantizer                                     */
/* ------------------------------------------------------------------ */

static void fill_random(gptq_layer_result *r, gptq_format fmt)
{
    const int maxq = (1 << r->bits) - 1;
    const int zmin = fmt == GPTQ_FORMAT_V1 ? 1 : 0;
    for (int64_t i = 0; i < r->rows * r->cols; i++) r->codes[i] = (uint8_t)(rnd() % (uint32_t)(maxq + 1));
    for (int64_t i = 0; i < r->ngroups * r->rows; i++) {
        r->zeros[i] = zmin + (int32_t)(rnd() % (uint32_t)(maxq + 1 - zmin));
        r->scales[i] = 1e-3f + rnd_unit() * 0.05f; /* not exact in fp16 */
    }
    /* act-order-like g_idx: a random permutation's position // G */
    int64_t K = r->cols;
    int32_t *perm = malloc((size_t)K * sizeof(int32_t));
    for (int64_t k = 0; k < K; k++) perm[k] = (int32_t)k;
    for (int64_t k = K - 1; k > 0; k--) {
        int64_t j = rnd() % (uint32_t)(k + 1);
        int32_t t = perm[k];
        perm[k] = perm[j];
        perm[j] = t;
    }
    for (int64_t i = 0; i < K; i++) r->g_idx[perm[i]] = (int32_t)(i / r->group_size);
    free(perm);
}

Test(roundtrip, all_bits_both_formats)
{
    const int bits_list[4] = {2, 3, 4, 8};
    const int64_t N = 64, K = 96;
    const int G = 32;
    rng_state = 0x9E3779B97F4A7C15ull;
    for (int bi = 0; bi < 4; bi++)
        for (int f = 1; f <= 2; f++) {
            gptq_format fmt = (gptq_format)f;
            int b = bits_list[bi];
            gptq_layer_result r = make_result(b, N, K, G);
            fill_random(&r, fmt);
            gptq_packed p;
            cr_assert_eq(gptq_pack(&r, fmt, &p), GPTQ_OK, "bits %d v%d: %s", b, f, gptq_last_error());
            uint8_t *codes_kn = malloc((size_t)(K * N));
            int32_t *zeros = malloc((size_t)(r.ngroups * N) * sizeof(int32_t));
            cr_assert_eq(gptq_unpack(&p, fmt, codes_kn, zeros), GPTQ_OK, "%s", gptq_last_error());
            int bad = 0;
            for (int64_t n = 0; n < N; n++)
                for (int64_t k = 0; k < K; k++)
                    if (codes_kn[k * N + n] != r.codes[n * K + k] && bad++ < 5)
                        cr_log_error("bits %d v%d: code [n=%lld, k=%lld] %u != %u", b, f,
                                     (long long)n, (long long)k, codes_kn[k * N + n], r.codes[n * K + k]);
            for (int64_t i = 0; i < r.ngroups * N; i++)
                if (zeros[i] != r.zeros[i] && bad++ < 10)
                    cr_log_error("bits %d v%d: zero %lld: %d != %d", b, f, (long long)i, zeros[i], r.zeros[i]);
            cr_expect_eq(bad, 0, "bits %d v%d: %d mismatches", b, f, bad);
            cr_expect_eq(memcmp(p.g_idx, r.g_idx, (size_t)K * sizeof(int32_t)), 0);
            /* the same stream layout means the words are full: a second pack
             * gives the same bytes (no uninitialized words) */
            gptq_packed p2;
            cr_assert_eq(gptq_pack(&r, fmt, &p2), GPTQ_OK);
            cr_expect_eq(memcmp(p.qweight, p2.qweight, (size_t)(K * b / 32 * N) * 4), 0);
            cr_expect_eq(memcmp(p.qzeros, p2.qzeros, (size_t)(r.ngroups * N * b / 32) * 4), 0);
            /* the checkpoint writer's qzeros (from 8-bit zeros) are these words */
            uint8_t *z8 = malloc((size_t)(r.ngroups * N));
            for (int64_t i = 0; i < r.ngroups * N; i++) z8[i] = (uint8_t)r.zeros[i];
            cr_assert_eq(gptq_qzeros_pack(z8, r.ngroups, N, b, fmt, p2.qzeros), GPTQ_OK, "%s",
                         gptq_last_error());
            cr_expect_eq(memcmp(p.qzeros, p2.qzeros, (size_t)(r.ngroups * N * b / 32) * 4), 0,
                         "bits %d v%d: gptq_qzeros_pack differs from gptq_pack", b, f);
            free(z8);
            gptq_packed_free(&p2);
            free(codes_kn);
            free(zeros);
            gptq_packed_free(&p);
            free_result(&r);
        }
}

/* Dequantize against the direct formula, computed from the layer result
 * (not from the packed words): W[n, k] = f32(f16(scale[g, n])) *
 * (q[n, k] - z[g, n]) with g = g_idx[k]; exact, so compared for equality. */
Test(dequant, direct_formula)
{
    const int bits_list[4] = {2, 3, 4, 8};
    const int64_t N = 32, K = 64;
    rng_state = 12345;
    for (int bi = 0; bi < 4; bi++)
        for (int f = 1; f <= 2; f++) {
            gptq_format fmt = (gptq_format)f;
            int b = bits_list[bi];
            gptq_layer_result r = make_result(b, N, K, 16);
            fill_random(&r, fmt);
            gptq_packed p;
            cr_assert_eq(gptq_pack(&r, fmt, &p), GPTQ_OK, "%s", gptq_last_error());
            float *W = malloc((size_t)(N * K) * sizeof(float));
            cr_assert_eq(gptq_dequantize(&p, fmt, W), GPTQ_OK, "%s", gptq_last_error());
            int bad = 0;
            for (int64_t n = 0; n < N; n++)
                for (int64_t k = 0; k < K; k++) {
                    int64_t g = r.g_idx[k];
                    double s = gptq_f16_to_f32(gptq_f32_to_f16(r.scales[g * N + n]));
                    double want = s * (double)((int)r.codes[n * K + k] - r.zeros[g * N + n]);
                    if ((double)W[n * K + k] != want && bad++ < 5)
                        cr_log_error("bits %d v%d: W[%lld, %lld] = %.9g, want %.9g", b, f,
                                     (long long)n, (long long)k, (double)W[n * K + k], want);
                }
            cr_expect_eq(bad, 0);
            free(W);
            gptq_packed_free(&p);
            free_result(&r);
        }
}

/* ------------------------------------------------------------------ */
/* Joined linears (gptq_packed_concat_cols, generation's q|k|v)        */
/* ------------------------------------------------------------------ */

/* Three linears of one input (widths 32, 64, 32; act-order g_idx shared)
 * joined: every bit width and format, the joined tensor dequantizes to the
 * three weights stacked, bit for bit (row c0 + n of the joined W is row n
 * of linear j), and its g_idx is theirs. Then what must stay apart, with
 * the reason: a g_idx that differs in one place, different bits, a width
 * that does not fill whole qzeros words. */
Test(concat, columns_side_by_side_and_refusals)
{
    const int bits_list[4] = {2, 3, 4, 8};
    const int64_t K = 64, Ns[3] = {32, 64, 32};
    rng_state = 777;
    for (int bi = 0; bi < 4; bi++)
        for (int f = 1; f <= 2; f++) {
            const gptq_format fmt = (gptq_format)f;
            const int b = bits_list[bi];
            gptq_layer_result r[3];
            gptq_packed p[3];
            const gptq_packed *pp[3];
            for (int j = 0; j < 3; j++) {
                r[j] = make_result(b, Ns[j], K, 16);
                fill_random(&r[j], fmt);
                if (j) memcpy(r[j].g_idx, r[0].g_idx, (size_t)K * sizeof *r[0].g_idx);
                cr_assert_eq(gptq_pack(&r[j], fmt, &p[j]), GPTQ_OK, "%s", gptq_last_error());
                pp[j] = &p[j];
            }
            gptq_packed o;
            char why[128] = "";
            cr_assert_eq(gptq_packed_concat_cols(pp, 3, &o, why, sizeof why), 0, "%s", why);
            cr_assert_eq(o.out_features, 128);
            cr_assert(o.bits == b && o.in_features == K && o.ngroups == p[0].ngroups);
            cr_assert_eq(memcmp(o.g_idx, p[0].g_idx, (size_t)K * sizeof *o.g_idx), 0);
            float *W = malloc((size_t)(128 * K) * sizeof(float));
            float *Wj = malloc((size_t)(64 * K) * sizeof(float));
            cr_assert(W && Wj);
            cr_assert_eq(gptq_dequantize(&o, fmt, W), GPTQ_OK, "%s", gptq_last_error());
            for (int j = 0, c0 = 0; j < 3; c0 += (int)Ns[j], j++) {
                cr_assert_eq(gptq_dequantize(&p[j], fmt, Wj), GPTQ_OK, "%s", gptq_last_error());
                cr_assert_eq(memcmp(W + (size_t)c0 * K, Wj, (size_t)(Ns[j] * K) * sizeof *W), 0,
                             "bits %d v%d: linear %d is not rows %d.. of the joined W", b, f, j,
                             c0);
            }
            free(W);
            free(Wj);
            gptq_packed_free(&o);

            /* kept apart, saying why */
            p[2].g_idx[5] = p[2].g_idx[5] == 0 ? 1 : 0;
            cr_assert_eq(gptq_packed_concat_cols(pp, 3, &o, why, sizeof why), 1);
            cr_assert(strstr(why, "g_idx"), "%s", why);
            p[2].g_idx[5] = p[0].g_idx[5];
            p[1].bits = b == 8 ? 4 : 8;
            cr_assert_eq(gptq_packed_concat_cols(pp, 3, &o, why, sizeof why), 1);
            cr_assert(strstr(why, "bits"), "%s", why);
            p[1].bits = b;
            const int64_t n1 = p[1].out_features;
            p[1].out_features = b == 3 ? 16 : 32 / b / 2 + 1; /* not whole qzeros words */
            cr_assert_eq(gptq_packed_concat_cols(pp, 3, &o, why, sizeof why), 1);
            cr_assert(strstr(why, "qzeros words"), "%s", why);
            p[1].out_features = n1;
            for (int j = 0; j < 3; j++) {
                gptq_packed_free(&p[j]);
                free_result(&r[j]);
            }
        }
}

/* ------------------------------------------------------------------ */
/* Zero points in v1 and v2                                            */
/* ------------------------------------------------------------------ */

Test(zeros, v1_rejects_zero_point_0)
{
    gptq_layer_result r = make_result(4, 8, 16, 8);
    r.zeros[1 * 8 + 3] = 0; /* group 1, row 3 */
    gptq_packed p;
    memset(&p, 0xAB, sizeof p);
    gptq_clear_error();
    int st = gptq_pack(&r, GPTQ_FORMAT_V1, &p);
    cr_expect_eq(st, GPTQ_ERR_INVALID);
    const char *msg = gptq_last_error();
    cr_expect(strstr(msg, "group 1") != NULL, "message: %s", msg);
    cr_expect(strstr(msg, "row 3") != NULL, "message: %s", msg);
    cr_expect(strstr(msg, "gptq_v2") != NULL, "message: %s", msg);
    cr_expect(strstr(msg, "sym") != NULL, "message: %s", msg);
    cr_expect_null(p.qweight, "nothing is left allocated on failure");
    cr_expect_null(p.qzeros);
    gptq_packed_free(&p); /* harmless on the zeroed struct */

    /* v2 stores the 0 as is: 4-bit fields of group 1 are 8,8,8,0,8,8,8,8
     * (n = 0..7, field n at bits 4n): 0x88880888. */
    cr_assert_eq(gptq_pack(&r, GPTQ_FORMAT_V2, &p), GPTQ_OK, "%s", gptq_last_error());
    cr_expect_eq(u32(p.qzeros[1]), 0x88880888u, "got 0x%08X", u32(p.qzeros[1]));
    int32_t zeros[2 * 8];
    cr_assert_eq(gptq_unpack(&p, GPTQ_FORMAT_V2, NULL, zeros), GPTQ_OK);
    cr_expect_eq(zeros[1 * 8 + 3], 0);
    gptq_packed_free(&p);
    free_result(&r);
}

Test(zeros, out_of_range_values_rejected)
{
    gptq_layer_result r = make_result(4, 8, 16, 16);
    r.zeros[2] = 16; /* above maxq = 15 */
    gptq_packed p;
    cr_expect_eq(gptq_pack(&r, GPTQ_FORMAT_V2, &p), GPTQ_ERR_INVALID);
    cr_expect(strstr(gptq_last_error(), "row 2") != NULL, "%s", gptq_last_error());
    r.zeros[2] = 8;
    r.codes[5 * 16 + 7] = 16; /* code above maxq */
    cr_expect_eq(gptq_pack(&r, GPTQ_FORMAT_V2, &p), GPTQ_ERR_INVALID);
    cr_expect(strstr(gptq_last_error(), "row 5, col 7") != NULL, "%s", gptq_last_error());
    r.codes[5 * 16 + 7] = 15;
    r.g_idx[3] = 1; /* only one group */
    cr_expect_eq(gptq_pack(&r, GPTQ_FORMAT_V2, &p), GPTQ_ERR_INVALID);
    cr_expect(strstr(gptq_last_error(), "g_idx[3]") != NULL, "%s", gptq_last_error());
    r.g_idx[3] = 0;
    r.scales[4] = 70000.0f; /* overflows fp16 */
    cr_expect_eq(gptq_pack(&r, GPTQ_FORMAT_V2, &p), GPTQ_ERR_NUMERIC);
    r.scales[4] = 1.0f;
    cr_expect_eq(gptq_pack(&r, (gptq_format)3, &p), GPTQ_ERR_INVALID);
    cr_expect_eq(gptq_pack(&r, GPTQ_FORMAT_V2, &p), GPTQ_OK, "restored: %s", gptq_last_error());
    gptq_packed_free(&p);
    free_result(&r);
}

/* A v1 field of maxq (never written by gptq_pack) unpacks to 2^b, as the v1
 * kernels compute field + 1. 4 bits, qzeros word 0xFFFFFFFF -> 16. */
Test(zeros, v1_field_maxq_unpacks_to_2_pow_b)
{
    int32_t qweight[1 * 8] = {0};
    int32_t qzeros[1] = {-1};
    uint16_t scales[8] = {0};
    int32_t g_idx[8] = {0};
    gptq_packed p = {4, 8, 8, 1, qweight, qzeros, scales, g_idx};
    int32_t zeros[8];
    cr_assert_eq(gptq_unpack(&p, GPTQ_FORMAT_V1, NULL, zeros), GPTQ_OK, "%s", gptq_last_error());
    for (int n = 0; n < 8; n++) cr_expect_eq(zeros[n], 16);
    cr_assert_eq(gptq_unpack(&p, GPTQ_FORMAT_V2, NULL, zeros), GPTQ_OK);
    for (int n = 0; n < 8; n++) cr_expect_eq(zeros[n], 15);
}

/* ------------------------------------------------------------------ */
/* Reference matmul                                                    */
/* ------------------------------------------------------------------ */

/*
 * Hand case: 4 bits, K = 8, N = 8, all codes 9, sym zero 8, scale 1, so
 * W = 1 everywhere. X = 1 + 2^-12 in every entry: not an fp16 (its ulp at 1
 * is 2^-10), it rounds to 1, so Y = 8 exactly (8 + 8 * 2^-12 without the
 * rounding). bias 0.1 rounds to fp16 0x2E66 = 1638 * 2^-14 =
 * 0.0999755859375, so Y = 8.0999755859375 = 132710 / 16384, exact in f32.
 */
Test(matmul, hand_fp16_rounding_of_x_and_bias)
{
    gptq_layer_result r = make_result(4, 8, 8, 8);
    memset(r.codes, 9, 64);
    gptq_packed p;
    cr_assert_eq(gptq_pack(&r, GPTQ_FORMAT_V1, &p), GPTQ_OK, "%s", gptq_last_error());
    float X[2 * 8], bias[8], Y[2 * 8];
    for (int i = 0; i < 16; i++) X[i] = 1.0f + 1.0f / 4096.0f;
    for (int n = 0; n < 8; n++) bias[n] = 0.1f;
    cr_assert_eq(gptq_matmul_ref(&p, GPTQ_FORMAT_V1, X, 2, NULL, Y), GPTQ_OK, "%s", gptq_last_error());
    for (int i = 0; i < 16; i++) cr_expect_eq(Y[i], 8.0f, "Y[%d] = %.9g", i, (double)Y[i]);
    cr_assert_eq(gptq_matmul_ref(&p, GPTQ_FORMAT_V1, X, 2, bias, Y), GPTQ_OK);
    for (int i = 0; i < 16; i++)
        cr_expect_eq(Y[i], 132710.0f / 16384.0f, "Y[%d] = %.12g", i, (double)Y[i]);
    /* M = 0 is a valid empty product */
    cr_expect_eq(gptq_matmul_ref(&p, GPTQ_FORMAT_V1, NULL, 0, NULL, NULL), GPTQ_OK);
    gptq_packed_free(&p);
    free_result(&r);
}

static float h(float x) { return gptq_f16_to_f32(gptq_f32_to_f16(x)); }

/*
 * Random case, every bit width: against
 *  (a) a double-precision sum of the same fp16-rounded inputs and exact
 *      weights. Tolerance: recursive f32 summation of K products, each
 *      product and each partial sum rounded once (unit roundoff u = 2^-24),
 *      plus the final bias addition, stays within (K + 2) * u * (sum_k
 *      |xh*w| + |bh|) (Higham, Accuracy and Stability, 3.1 and 3.5).
 *  (b) an independent f32 loop in k order from the layer result: bitwise
 *      equal, because the reference fixes that exact order.
 */
Test(matmul, against_double_and_f32_loop)
{
    const int bits_list[4] = {2, 3, 4, 8};
    const int64_t N = 32, K = 128, M = 3;
    rng_state = 777;
    for (int bi = 0; bi < 4; bi++)
        for (int f = 1; f <= 2; f++) {
            gptq_format fmt = (gptq_format)f;
            int b = bits_list[bi];
            gptq_layer_result r = make_result(b, N, K, 32);
            fill_random(&r, fmt);
            gptq_packed p;
            cr_assert_eq(gptq_pack(&r, fmt, &p), GPTQ_OK, "%s", gptq_last_error());
            float X[3 * 128], bias[32], Y[3 * 32];
            for (int i = 0; i < M * K; i++) X[i] = (rnd_unit() - 0.5f) * 8.0f;
            for (int n = 0; n < N; n++) bias[n] = rnd_unit() - 0.5f;
            cr_assert_eq(gptq_matmul_ref(&p, fmt, X, M, bias, Y), GPTQ_OK, "%s", gptq_last_error());
            int bad = 0;
            for (int64_t m = 0; m < M; m++)
                for (int64_t n = 0; n < N; n++) {
                    double sum = 0.0, abs_sum = 0.0;
                    float acc = 0.0f;
                    for (int64_t k = 0; k < K; k++) {
                        int64_t g = r.g_idx[k];
                        float s = h(r.scales[g * N + n]);
                        float w = s * (float)((int)r.codes[n * K + k] - r.zeros[g * N + n]);
                        float x = h(X[m * K + k]);
                        sum += (double)x * (double)w;
                        abs_sum += fabs((double)x * (double)w);
                        acc = acc + x * w;
                    }
                    double bh = h(bias[n]);
                    double want = sum + bh;
                    double tol = (double)(K + 2) * 0x1p-24 * (abs_sum + fabs(bh));
                    float y = Y[m * N + n];
                    if (!(fabs((double)y - want) <= tol) && bad++ < 5)
                        cr_log_error("bits %d v%d: Y[%lld, %lld] = %.9g, double %.12g, tol %.3g", b, f,
                                     (long long)m, (long long)n, (double)y, want, tol);
                    float y32 = acc + (float)bh;
                    if (memcmp(&y, &y32, sizeof y) != 0 && bad++ < 5)
                        cr_log_error("bits %d v%d: Y[%lld, %lld] = %.9g but the k-order f32 loop gives %.9g",
                                     b, f, (long long)m, (long long)n, (double)y, (double)y32);
                }
            cr_expect_eq(bad, 0, "bits %d v%d", b, f);
            gptq_packed_free(&p);
            free_result(&r);
        }
}

/* ------------------------------------------------------------------ */
/* Shapes                                                              */
/* ------------------------------------------------------------------ */

static int pack_shape(int bits, int64_t N, int64_t K, int G)
{
    gptq_layer_result r = make_result(bits, N, K, G);
    gptq_packed p;
    int st = gptq_pack(&r, GPTQ_FORMAT_V2, &p);
    gptq_packed_free(&p);
    free_result(&r);
    return st;
}

Test(shape, errors)
{
    /* 3 bits needs K and N multiples of 32 */
    cr_expect_eq(pack_shape(3, 32, 16, 16), GPTQ_ERR_SHAPE);
    cr_expect(strstr(gptq_last_error(), "32 x 16 (out x in): 3-bit packing needs both to be "
                                        "positive multiples of 32") != NULL, "%s",
              gptq_last_error());
    cr_expect_eq(pack_shape(3, 16, 32, 32), GPTQ_ERR_SHAPE);
    cr_expect(strstr(gptq_last_error(), "16 x 32 (out x in)") != NULL, "%s", gptq_last_error());
    cr_expect_eq(pack_shape(3, 32, 64, 32), GPTQ_OK, "%s", gptq_last_error());
    /* 4 bits: multiples of 8 */
    cr_expect_eq(pack_shape(4, 8, 12, 4), GPTQ_ERR_SHAPE);
    cr_expect_eq(pack_shape(4, 4, 8, 8), GPTQ_ERR_SHAPE);
    cr_expect_eq(pack_shape(4, 8, 8, 8), GPTQ_OK, "%s", gptq_last_error());
    /* 2 bits: multiples of 16; 8 bits: multiples of 4 */
    cr_expect_eq(pack_shape(2, 16, 8, 8), GPTQ_ERR_SHAPE);
    cr_expect_eq(pack_shape(2, 16, 16, 16), GPTQ_OK, "%s", gptq_last_error());
    cr_expect_eq(pack_shape(8, 6, 4, 4), GPTQ_ERR_SHAPE);
    cr_expect_eq(pack_shape(8, 4, 4, 4), GPTQ_OK, "%s", gptq_last_error());
    /* bits outside {2, 3, 4, 8} */
    cr_expect_eq(pack_shape(5, 32, 32, 32), GPTQ_ERR_INVALID);
    cr_expect(strstr(gptq_last_error(), "bits = 5") != NULL, "%s", gptq_last_error());

    /* ngroups that does not match ceil(K / G) */
    gptq_layer_result r = make_result(4, 8, 16, 8);
    r.ngroups = 1;
    gptq_packed p;
    cr_expect_eq(gptq_pack(&r, GPTQ_FORMAT_V2, &p), GPTQ_ERR_SHAPE);
    cr_expect(strstr(gptq_last_error(), "ngroups") != NULL, "%s", gptq_last_error());
    r.ngroups = 2;

    /* a packed struct with a bad g_idx (as a file could hold) */
    cr_assert_eq(gptq_pack(&r, GPTQ_FORMAT_V2, &p), GPTQ_OK);
    p.g_idx[5] = 7;
    float W[8 * 16];
    cr_expect_eq(gptq_dequantize(&p, GPTQ_FORMAT_V2, W), GPTQ_ERR_FORMAT);
    cr_expect(strstr(gptq_last_error(), "g_idx[5] = 7") != NULL, "%s", gptq_last_error());
    p.g_idx[5] = 0;
    p.in_features = 12;
    cr_expect_eq(gptq_unpack(&p, GPTQ_FORMAT_V2, NULL, NULL), GPTQ_ERR_SHAPE);
    cr_expect_eq(gptq_matmul_ref(&p, GPTQ_FORMAT_V2, W, 1, NULL, W), GPTQ_ERR_SHAPE);
    p.in_features = 16;
    cr_expect_eq(gptq_matmul_ref(&p, GPTQ_FORMAT_V2, W, -1, NULL, W), GPTQ_ERR_SHAPE);
    gptq_packed_free(&p);
    free_result(&r);
}

/* ------------------------------------------------------------------ */
/* The format table                                                    */
/* ------------------------------------------------------------------ */

/* Each width packs, and its multiple is the fewest values that fill whole
 * 32-bit words (searched here, not read from the table); nothing else packs. */
Test(format, bit_widths)
{
    for (int b = -1; b <= 33; b++) {
        const gptq_packing *pk = gptq_packing_of(b);
        const int packs = b == 2 || b == 3 || b == 4 || b == 8;
        cr_expect_eq(pk != NULL, packs, "bits %d", b);
        if (!pk) continue;
        int m = 1;
        while (m * b % 32) m++;
        cr_expect_eq(pk->bits, b);
        cr_expect_eq(pk->mult, m, "bits %d: mult %d, fewest values filling words %d", b,
                     pk->mult, m);
    }
}

Test(format, rows_and_names)
{
    const gptq_format_traits *v1 = gptq_format_by_name("gptq");
    const gptq_format_traits *v2 = gptq_format_by_name("gptq_v2");
    cr_assert(v1 && v2);
    cr_expect_eq(v1->id, GPTQ_FORMAT_V1);
    cr_expect_eq(v1->zero_offset, 1);
    cr_expect_eq(v2->id, GPTQ_FORMAT_V2);
    cr_expect_eq(v2->zero_offset, 0);
    cr_expect_str_eq(v1->quant_method, "gptq");
    cr_expect_str_eq(v2->quant_method, "gptq");
    cr_expect_eq(gptq_format_get(GPTQ_FORMAT_V1), v1);
    cr_expect_eq(gptq_format_get(GPTQ_FORMAT_V2), v2);
    cr_expect_null(gptq_format_get((gptq_format)0));
    cr_expect_null(gptq_format_get((gptq_format)3));
    cr_expect_null(gptq_format_by_name("GPTQ"));
    cr_expect_null(gptq_format_by_name("gptq_v3"));
    cr_expect_null(gptq_format_by_name(NULL));
    char name[64];
    cr_expect_str_eq(gptq_tensor_name(name, sizeof name, "model.layers.0.mlp.up_proj",
                                      GPTQ_T_QZEROS), "model.layers.0.mlp.up_proj.qzeros");
    cr_expect_str_eq(gptq_tensor_name(name, sizeof name, "", GPTQ_T_G_IDX), "g_idx");
    cr_expect_str_eq(gptq_tensor_name(name, sizeof name, NULL, GPTQ_T_BIAS), "bias");
}

/* One message per rule, whatever the caller (its status, its prefix). */
Test(format, one_message_per_rule)
{
    cr_expect_eq(gptq_format_check_bits(GPTQ_ERR_UNSUPPORTED, "--bits", 4), GPTQ_OK);
    cr_expect_eq(gptq_format_check_bits(GPTQ_ERR_UNSUPPORTED, "--bits", 5), GPTQ_ERR_UNSUPPORTED);
    cr_expect_str_eq(gptq_last_error(), "--bits 5: must be 2, 3, 4 or 8");
    cr_expect_eq(gptq_format_check_dims(GPTQ_ERR_FORMAT, 3, 32, 64), GPTQ_OK);
    cr_expect_eq(gptq_format_check_dims(GPTQ_ERR_FORMAT, 4, 8, 12), GPTQ_ERR_FORMAT);
    cr_expect_str_eq(gptq_last_error(),
                     "8 x 12 (out x in): 4-bit packing needs both to be positive multiples of 8");
    cr_expect_eq(gptq_format_check_dims(GPTQ_ERR_SHAPE, 2, -16, 16), GPTQ_ERR_SHAPE);
    cr_expect_eq(gptq_format_check_dims(GPTQ_ERR_SHAPE, 6, 96, 96), GPTQ_ERR_SHAPE);
    cr_expect_str_eq(gptq_last_error(), "bits = 6: must be 2, 3, 4 or 8");
    /* the qzeros writer asks the same check, for N */
    const uint8_t z[12] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    int32_t w[2];
    cr_expect_eq(gptq_qzeros_pack(z, 1, 12, 4, GPTQ_FORMAT_V2, w), GPTQ_ERR_INVALID);
    cr_expect(strstr(gptq_last_error(), "qzeros: 12 x 32 (out x in): 4-bit packing") != NULL,
              "%s", gptq_last_error());
}

/* ------------------------------------------------------------------ */
/* The CPU backend's packed ops (backend.h, ABI 3)                     */
/* ------------------------------------------------------------------ */

/* Awkward activations for the fp16 rounding: overflow to inf, the largest
 * finite, ties, subnormals, values that round to zero. */
static const float k_edge_x[] = {70000.0f,     -65520.0f,     65519.0f,   65504.0f,
                                 1.0f + 0x1p-11f, 1.0f + 0x1p-12f, 3e-6f,  -1e-7f,
                                 0x1p-25f,     0x1.8p-25f,    -0x1p-26f,  0x1p-24f};

Test(backend_ops, dequantize_and_matmul_are_the_reference)
{
    gptq_backend *be;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK, "%s", gptq_last_error());
    const int bits_list[4] = {2, 3, 4, 8};
    const int64_t N = 64, K = 96, M = 5;
    rng_state = 4242;
    for (int bi = 0; bi < 4; bi++)
        for (int f = 1; f <= 2; f++) {
            const gptq_format fmt = (gptq_format)f;
            const int b = bits_list[bi];
            gptq_layer_result r = make_result(b, N, K, 32);
            fill_random(&r, fmt);
            gptq_packed p;
            cr_assert_eq(gptq_pack(&r, fmt, &p), GPTQ_OK, "%s", gptq_last_error());
            float *W1 = malloc((size_t)(N * K) * 4), *W2 = malloc((size_t)(N * K) * 4);
            float X[5 * 96], bias[64], Y1[5 * 64], Y2[5 * 64];
            for (int i = 0; i < M * K; i++) X[i] = (rnd_unit() - 0.5f) * 8.0f;
            for (size_t i = 0; i < sizeof k_edge_x / sizeof *k_edge_x; i++) X[i * 37] = k_edge_x[i];
            for (int n = 0; n < N; n++) bias[n] = rnd_unit() - 0.5f;
            bias[3] = 1e5f; /* inf in fp16 */
            cr_assert_eq(gptq_dequantize(&p, fmt, W1), GPTQ_OK, "%s", gptq_last_error());
            cr_assert_eq(gptq_dequantize_on(be, &p, fmt, W2), GPTQ_OK, "%s", gptq_last_error());
            cr_expect(memcmp(W1, W2, (size_t)(N * K) * 4) == 0, "bits %d v%d: dequantize differs",
                      b, f);
            for (int wb = 0; wb < 2; wb++) {
                const float *bs = wb ? bias : NULL;
                cr_assert_eq(gptq_matmul_ref(&p, fmt, X, M, bs, Y1), GPTQ_OK, "%s",
                             gptq_last_error());
                cr_assert_eq(gptq_matmul_on(be, &p, fmt, X, M, bs, Y2), GPTQ_OK, "%s",
                             gptq_last_error());
                cr_expect(memcmp(Y1, Y2, sizeof Y1) == 0, "bits %d v%d bias %d: matmul differs",
                          b, f, wb);
            }
            /* a g_idx outside the groups is an error, not a read past scales */
            p.g_idx[7] = (int32_t)p.ngroups;
            cr_expect_eq(gptq_dequantize_on(be, &p, fmt, W2), GPTQ_ERR_FORMAT);
            cr_expect(strstr(gptq_last_error(), "g_idx[7]") != NULL, "%s", gptq_last_error());
            free(W1);
            free(W2);
            gptq_packed_free(&p);
            free_result(&r);
        }
    gptq_backend_close(be);
}

Test(backend_ops, pack_codes_is_gptq_pack)
{
    gptq_backend *be;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK, "%s", gptq_last_error());
    const int bits_list[4] = {2, 3, 4, 8};
    const int64_t N = 64, K = 96;
    rng_state = 99;
    for (int bi = 0; bi < 4; bi++) {
        const int b = bits_list[bi];
        gptq_layer_result r = make_result(b, N, K, 32);
        fill_random(&r, GPTQ_FORMAT_V2);
        gptq_packed p;
        cr_assert_eq(gptq_pack(&r, GPTQ_FORMAT_V2, &p), GPTQ_OK, "%s", gptq_last_error());
        const size_t nqw = (size_t)(K * b / 32 * N) * 4;
        gptq_buf *cb = NULL, *qb = NULL;
        cr_assert_eq(gptq_be_alloc(be, (size_t)(N * K), &cb, "codes"), GPTQ_OK);
        cr_assert_eq(gptq_be_alloc(be, nqw, &qb, "qweight"), GPTQ_OK);
        cr_assert_eq(gptq_be_upload(be, cb, 0, r.codes, (size_t)(N * K)), GPTQ_OK);
        cr_assert_eq(be->iface->pack_codes(be->ctx, cb, N, K, b, qb), GPTQ_OK, "%s",
                     be->iface->error(be->ctx));
        int32_t *qw = malloc(nqw);
        cr_assert_eq(gptq_be_download(be, qb, 0, qw, nqw), GPTQ_OK);
        cr_expect(memcmp(qw, p.qweight, nqw) == 0, "bits %d: pack_codes differs from gptq_pack", b);
        /* a code too wide for the bit width is refused, and named */
        uint8_t big = (uint8_t)(1u << b);
        if (b < 8) {
            cr_assert_eq(gptq_be_upload(be, cb, 77, &big, 1), GPTQ_OK);
            cr_expect_eq(be->iface->pack_codes(be->ctx, cb, N, K, b, qb), GPTQ_ERR_INVALID);
            cr_expect(strstr(be->iface->error(be->ctx), "row 0, column 77") != NULL, "%s",
                      be->iface->error(be->ctx));
        }
        free(qw);
        gptq_be_free(be, cb);
        gptq_be_free(be, qb);
        gptq_packed_free(&p);
        free_result(&r);
    }
    gptq_backend_close(be);
}

Test(backend_ops, gather_rows_and_columns)
{
    gptq_backend *be;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK, "%s", gptq_last_error());
    enum { RS = 6, CS = 9, R = 4, C = 5 };
    float src[RS * CS], dst[R * C];
    for (int i = 0; i < RS * CS; i++) src[i] = (float)i;
    const int32_t ri[R] = {5, 0, 2, 2}, ci[C] = {8, 1, 1, 0, 4};
    gptq_buf *s = NULL, *d = NULL, *rb = NULL, *cb = NULL;
    cr_assert_eq(gptq_be_alloc(be, sizeof src, &s, "src"), GPTQ_OK);
    cr_assert_eq(gptq_be_alloc(be, sizeof dst, &d, "dst"), GPTQ_OK);
    cr_assert_eq(gptq_be_alloc(be, sizeof ri, &rb, "rows"), GPTQ_OK);
    cr_assert_eq(gptq_be_alloc(be, sizeof ci, &cb, "cols"), GPTQ_OK);
    gptq_be_upload(be, s, 0, src, sizeof src);
    gptq_be_upload(be, rb, 0, ri, sizeof ri);
    gptq_be_upload(be, cb, 0, ci, sizeof ci);
    cr_assert_eq(be->iface->gather(be->ctx, d, s, R, C, RS, CS, rb, cb, 4), GPTQ_OK, "%s",
                 be->iface->error(be->ctx));
    gptq_be_download(be, d, 0, dst, sizeof dst);
    for (int i = 0; i < R; i++)
        for (int j = 0; j < C; j++)
            cr_expect_eq(dst[i * C + j], (float)(ri[i] * CS + ci[j]), "dst[%d][%d] = %g", i, j,
                         (double)dst[i * C + j]);
    /* bytes: the first R rows, columns by cols, of src viewed as u8 (RS, CS * 4) */
    cr_assert_eq(be->iface->gather(be->ctx, d, s, R, C, RS, CS * 4, NULL, cb, 1), GPTQ_OK);
    uint8_t b8[R * C];
    gptq_be_download(be, d, 0, b8, sizeof b8);
    for (int i = 0; i < R; i++)
        for (int j = 0; j < C; j++)
            cr_expect_eq(b8[i * C + j], ((const uint8_t *)src)[i * CS * 4 + ci[j]]);
    /* an index outside the source is refused, and named */
    const int32_t bad[C] = {8, 1, 9, 0, 4};
    gptq_be_upload(be, cb, 0, bad, sizeof bad);
    cr_expect_eq(be->iface->gather(be->ctx, d, s, R, C, RS, CS, rb, cb, 4), GPTQ_ERR_INVALID);
    cr_expect(strstr(be->iface->error(be->ctx), "cols[2] = 9 outside [0, 9)") != NULL, "%s",
              be->iface->error(be->ctx));
    gptq_be_free(be, s);
    gptq_be_free(be, d);
    gptq_be_free(be, rb);
    gptq_be_free(be, cb);
    gptq_backend_close(be);
}

/* to_f32 over every 16-bit pattern: the core's conversions, bit for bit (a
 * NaN stays a NaN; its payload is not part of the contract). */
Test(backend_ops, to_f32_every_half_and_bfloat16)
{
    gptq_backend *be;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK, "%s", gptq_last_error());
    enum { N = 65536 };
    uint16_t *h = malloc(N * 2);
    float *f = malloc(N * 4);
    for (int i = 0; i < N; i++) h[i] = (uint16_t)i;
    gptq_buf *src = NULL, *dst = NULL;
    cr_assert_eq(gptq_be_alloc(be, N * 2, &src, "src"), GPTQ_OK);
    cr_assert_eq(gptq_be_alloc(be, (N + 3) * 4, &dst, "dst"), GPTQ_OK);
    gptq_be_upload(be, src, 0, h, N * 2);
    for (int bf = 0; bf < 2; bf++) {
        cr_assert_eq(be->iface->to_f32(be->ctx, dst, 3, src, N, bf ? GPTQ_BF16 : GPTQ_F16),
                     GPTQ_OK, "%s", be->iface->error(be->ctx));
        gptq_be_download(be, dst, 12, f, N * 4);
        int bad = 0;
        for (int i = 0; i < N; i++) {
            const float want = bf ? gptq_bf16_to_f32(h[i]) : gptq_f16_to_f32(h[i]);
            if (isnan(want) ? !isnan(f[i]) : memcmp(&want, &f[i], 4) != 0) bad++;
        }
        cr_expect_eq(bad, 0, "%s: %d patterns differ", bf ? "bf16" : "f16", bad);
    }
    cr_expect_eq(be->iface->to_f32(be->ctx, dst, 4, src, N, GPTQ_BF16), GPTQ_ERR_SHAPE);
    cr_expect_eq(be->iface->to_f32(be->ctx, dst, 0, src, N, GPTQ_F32), GPTQ_ERR_INVALID);
    gptq_be_free(be, src);
    gptq_be_free(be, dst);
    free(h);
    free(f);
    gptq_backend_close(be);
}
