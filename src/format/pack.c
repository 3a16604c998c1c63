/*
 * pack.c — the checkpoint tensors of the GPTQ formats (format.h): packing
 * a layer result into qweight / qzeros / scales / g_idx, unpacking them
 * again, the reference dequantizer and the reference A16 matmul that
 * kernels diff against.
 *
 * Dimension letters: K = in_features (cols of W), N = out_features (rows of
 * W), b = bits, G = group size, ngroups = ceil(K/G), M = rows of X.
 *
 * The layout (checked against AutoGPTQ qlinear_cuda_old.py pack(), GPTQModel
 * nn_modules/qlinear/__init__.py pack_original()/pack_block() and its
 * utils/model_dequant.py, and vLLM's gptq loader; facts only, no code):
 *
 *   qweight (K*b/32, N) int32   packed along K: W transposed
 *   qzeros  (ngroups, N*b/32)   packed along N
 *   scales  (ngroups, N) fp16
 *   g_idx   (K) int32
 *
 * One rule covers every bit width: along the packed dimension the b-bit
 * values form one little-endian bit stream, value i at stream bits
 * b*i .. b*i+b-1, stream bit t in bit (t % 32) of word t / 32. For b = 2, 4,
 * 8 (pf = 32/b values per word) that is "bit field j of word r holds value
 * r*pf + j"; for b = 3 every 32 values fill 3 words (96 bits) and the values
 * 10 (bits 30..32) and 21 (bits 63..65) straddle two words. Words are the
 * signed int32 view of the uint32 pattern (int32_t and uint32_t may alias).
 *
 * Zero points (the formats' zero_offset): v1 ("gptq") stores z - 1 in each
 * field and readers add 1 back; v2 ("gptq_v2") stores z. The -1 is applied
 * per field, never to the packed word (GPTQModel's word-wise subtraction is
 * wrong for 3 bits, and for a zero of 0 borrows from the neighbouring field:
 * vLLM issue #26343). A zero of 0 has no v1 field at all, so gptq_pack
 * refuses it and names v2 or sym.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"

/* ------------------------------------------------------------------ */
/* Bit streams                                                         */
/* ------------------------------------------------------------------ */

/* Writes b-bit values into consecutive 32-bit words that lie `stride`
 * words apart (stride N for qweight columns, 1 for qzeros rows). */
typedef struct bit_writer {
    uint32_t *dst;    /* next word to write */
    int64_t stride;   /* words between consecutive stream words */
    uint64_t acc;     /* pending bits, least significant first */
    int nacc;         /* number of pending bits (< 32 between calls) */
} bit_writer;

static void bw_put(bit_writer *w, uint32_t value, int bits)
{
    w->acc |= (uint64_t)value << w->nacc;
    w->nacc += bits;
    if (w->nacc >= 32) {
        *w->dst = (uint32_t)w->acc;
        w->dst += w->stride;
        w->acc >>= 32;
        w->nacc -= 32;
    }
}

typedef struct bit_reader {
    const uint32_t *src;
    int64_t stride;
    uint64_t acc;
    int nacc;
} bit_reader;

static uint32_t br_get(bit_reader *r, int bits)
{
    if (r->nacc < bits) {
        r->acc |= (uint64_t)*r->src << r->nacc;
        r->src += r->stride;
        r->nacc += 32;
    }
    uint32_t v = (uint32_t)(r->acc & ((1u << bits) - 1u));
    r->acc >>= bits;
    r->nacc -= bits;
    return v;
}

/* ------------------------------------------------------------------ */
/* Checks                                                              */
/* ------------------------------------------------------------------ */

/* bits and fmt are a format's (GPTQ_ERR_INVALID); K and N fill whole words
 * and ngroups is one of 1..K (GPTQ_ERR_SHAPE). */
static int check_layout(const char *fn, int bits, gptq_format fmt, int64_t K, int64_t N,
                        int64_t ngroups)
{
    if (gptq_format_check_bits(GPTQ_ERR_INVALID, "bits =", bits))
        return gptq_error_prefix(GPTQ_ERR_INVALID, "%s", fn);
    if (!gptq_format_get(fmt))
        return gptq_error(GPTQ_ERR_INVALID,
                          "%s: format %d is neither GPTQ_FORMAT_V1 (1) nor GPTQ_FORMAT_V2 (2)",
                          fn, (int)fmt);
    if (gptq_format_check_dims(GPTQ_ERR_SHAPE, bits, N, K))
        return gptq_error_prefix(GPTQ_ERR_SHAPE, "%s", fn);
    if (ngroups < 1 || ngroups > K)
        return gptq_error(GPTQ_ERR_SHAPE, "%s: ngroups = %lld outside [1, K = %lld]", fn,
                          (long long)ngroups, (long long)K);
    return GPTQ_OK;
}

/* The packed tensors a call needs are present and g_idx points at groups
 * that exist (a packed struct may come from a file: GPTQ_ERR_FORMAT). */
int gptq_packed_check(const char *fn, const gptq_packed *p, gptq_format fmt, int need_qweight,
                      int need_qzeros, int need_scales_gidx)
{
    if (!p) return gptq_error(GPTQ_ERR_INVALID, "%s: packed tensors are NULL", fn);
    int st = check_layout(fn, p->bits, fmt, p->in_features, p->out_features, p->ngroups);
    if (st) return st;
    if ((need_qweight && !p->qweight) || (need_qzeros && !p->qzeros) ||
        (need_scales_gidx && (!p->scales || !p->g_idx)))
        return gptq_error(GPTQ_ERR_INVALID, "%s: qweight, qzeros, scales or g_idx is NULL", fn);
    if (need_scales_gidx)
        for (int64_t k = 0; k < p->in_features; k++)
            if (p->g_idx[k] < 0 || p->g_idx[k] >= p->ngroups)
                return gptq_error(GPTQ_ERR_FORMAT, "%s: g_idx[%lld] = %d outside [0, ngroups = %lld)",
                                  fn, (long long)k, (int)p->g_idx[k], (long long)p->ngroups);
    return GPTQ_OK;
}

/* The scales as the checkpoint stores them, in fp16: the first (in memory
 * order) that overflows to Inf or rounds to 0 there is an error (a 0 scale
 * turns every weight of its group into 0); one below 2^-14 is stored as an
 * fp16 subnormal with fewer than 11 significant bits: counted in *nsub,
 * with the largest relative rounding |fp16(s) - s| / |s| in *maxrel. */
int gptq_scales_fp16_check(const char *fn, const float *s, int64_t ngroups, int64_t N,
                           int64_t *nsub, double *maxrel)
{
    int64_t bad = INT64_MAX, sub = 0;
    double mr = 0.0;
#pragma omp parallel for reduction(min : bad) reduction(+ : sub) reduction(max : mr) \
    schedule(static) if (ngroups * N > (1 << 16))
    for (int64_t i = 0; i < ngroups * N; i++) {
        const uint16_t h = gptq_f32_to_f16(s[i]);
        if ((h & 0x7c00u) == 0x7c00u || (h & 0x7fffu) == 0) {
            if (i < bad) bad = i;
        } else if ((h & 0x7c00u) == 0) {
            const double d = fabs((double)gptq_f16_to_f32(h) - (double)s[i]) / fabs((double)s[i]);
            sub++;
            if (d > mr) mr = d;
        }
    }
    if (nsub) *nsub = sub;
    if (maxrel) *maxrel = mr;
    if (bad == INT64_MAX) return GPTQ_OK;
    const int64_t g = bad / N, n = bad % N;
    if (!((gptq_f32_to_f16(s[bad]) & 0x7c00u) == 0x7c00u))
        return gptq_error(GPTQ_ERR_NUMERIC, "%s: scale %g at group %lld, row %lld rounds to 0 in "
                          "fp16, the checkpoint's scale type (its smallest step is 6e-08): every "
                          "weight of that group would be stored as 0; the weights are too small "
                          "for the gptq format (scale them up, or keep this module unquantized)",
                          fn, (double)s[bad], (long long)g, (long long)n);
    return gptq_error(GPTQ_ERR_NUMERIC, "%s: scale %g at group %lld, row %lld is not finite in "
                      "fp16 (|s| must stay below 65520)", fn, (double)s[bad], (long long)g,
                      (long long)n);
}

/* ------------------------------------------------------------------ */
/* Pack                                                                */
/* ------------------------------------------------------------------ */

void gptq_packed_free(gptq_packed *p)
{
    if (!p) return;
    /* Each array is its own allocation, so a reader that fills a
     * gptq_packed with four malloc'd arrays may free it here too. */
    free(p->qweight);
    free(p->qzeros);
    free(p->scales);
    free(p->g_idx);
    memset(p, 0, sizeof *p);
}

int gptq_packed_concat_cols(const gptq_packed *const *p, int n, gptq_packed *out, char *why,
                            size_t nwhy)
{
    if (n < 1) return snprintf(why, nwhy, "nothing to join"), 1;
    const gptq_packed *a = p[0];
    const int64_t K = a->in_features, G = a->ngroups, KW = K * a->bits / 32;
    int64_t N = 0;
    for (int j = 0; j < n; j++) {
        const gptq_packed *b = p[j];
        if (b->bits != a->bits || b->in_features != K || b->ngroups != G)
            return snprintf(why, nwhy, "bits, in_features or groups differ"), 1;
        if (b->out_features * b->bits % 32)
            return snprintf(why, nwhy, "%lld columns do not fill whole qzeros words",
                            (long long)b->out_features), 1;
        if (memcmp(b->g_idx, a->g_idx, (size_t)K * sizeof *a->g_idx))
            return snprintf(why, nwhy, "g_idx differs (different act-order permutations)"), 1;
        N += b->out_features;
    }
    gptq_packed o = {.bits = a->bits, .in_features = K, .out_features = N, .ngroups = G};
    o.qweight = gptq_malloc((size_t)(KW * N) * sizeof *o.qweight, "joined qweight");
    o.qzeros = gptq_malloc((size_t)(G * N * a->bits / 32) * sizeof *o.qzeros, "joined qzeros");
    o.scales = gptq_malloc((size_t)(G * N) * sizeof *o.scales, "joined scales");
    o.g_idx = gptq_malloc((size_t)K * sizeof *o.g_idx, "joined g_idx");
    if (!o.qweight || !o.qzeros || !o.scales || !o.g_idx) {
        gptq_packed_free(&o);
        return GPTQ_ERR_NOMEM;
    }
    memcpy(o.g_idx, a->g_idx, (size_t)K * sizeof *o.g_idx);
    const int64_t ZW = N * a->bits / 32;
    int64_t c0 = 0;
    for (int j = 0; j < n; c0 += p[j]->out_features, j++) {
        const gptq_packed *b = p[j];
        const int64_t Nj = b->out_features, zj = Nj * b->bits / 32, z0 = c0 * b->bits / 32;
        for (int64_t r = 0; r < KW; r++)
            memcpy(o.qweight + r * N + c0, b->qweight + r * Nj, (size_t)Nj * sizeof *o.qweight);
        for (int64_t g = 0; g < G; g++) {
            memcpy(o.qzeros + g * ZW + z0, b->qzeros + g * zj, (size_t)zj * sizeof *o.qzeros);
            memcpy(o.scales + g * N + c0, b->scales + g * Nj, (size_t)Nj * sizeof *o.scales);
        }
    }
    *out = o;
    return 0;
}

int gptq_pack(const gptq_layer_result *r, gptq_format fmt, gptq_packed *out)
{
    static const char fn[] = "gptq_pack";
    if (!out) return gptq_error(GPTQ_ERR_INVALID, "%s: out is NULL", fn);
    memset(out, 0, sizeof *out);
    if (!r) return gptq_error(GPTQ_ERR_INVALID, "%s: layer result is NULL", fn);
    const int b = r->bits;
    const int64_t N = r->rows, K = r->cols, ngroups = r->ngroups;
    int st = check_layout(fn, b, fmt, K, N, ngroups);
    if (st) return st;
    if (r->group_size > 0 && ngroups != (K + r->group_size - 1) / r->group_size)
        return gptq_error(GPTQ_ERR_SHAPE, "%s: ngroups = %lld but ceil(K = %lld / group_size = %d) = %lld",
                          fn, (long long)ngroups, (long long)K, r->group_size,
                          (long long)((K + r->group_size - 1) / r->group_size));
    if (!r->codes || !r->scales || !r->zeros || !r->g_idx)
        return gptq_error(GPTQ_ERR_INVALID, "%s: layer result lacks codes, scales, zeros or g_idx", fn);

    const uint32_t maxq = (1u << b) - 1u;
    const int32_t zmin = gptq_format_get(fmt)->zero_offset;

    /* Validate everything before allocating: nothing half-written escapes.
     * The scans are min-reductions (the first bad element in memory order,
     * whatever the thread count): at 7B sizes each covers ~45M codes. */
    int64_t bad = INT64_MAX;
#pragma omp parallel for reduction(min : bad) schedule(static) if (N * K > (1 << 20))
    for (int64_t i = 0; i < N * K; i++)
        if (r->codes[i] > maxq && i < bad) bad = i;
    if (bad != INT64_MAX)
        return gptq_error(GPTQ_ERR_INVALID, "%s: code %u at row %lld, col %lld exceeds "
                          "maxq = %u of %d bits", fn, (unsigned)r->codes[bad],
                          (long long)(bad / K), (long long)(bad % K), maxq, b);
    bad = INT64_MAX;
#pragma omp parallel for reduction(min : bad) schedule(static) if (ngroups * N > (1 << 16))
    for (int64_t i = 0; i < ngroups * N; i++) {
        const int32_t z = r->zeros[i];
        if (z < zmin || (uint32_t)z > maxq)
            if (i < bad) bad = i;
    }
    if (bad != INT64_MAX) {
        const int64_t g = bad / N, n = bad % N;
        const int32_t z = r->zeros[bad];
        if (z == 0) /* below zmin: v1 */
            return gptq_error(GPTQ_ERR_INVALID, "%s: zero point 0 at group %lld, row %lld "
                              "cannot be stored in the v1 \"gptq\" format (it stores z - 1 and a "
                              "-1 field borrows from its neighbour in readers): write "
                              "checkpoint_format \"gptq_v2\" (GPTQ_FORMAT_V2) or quantize with sym",
                              fn, (long long)g, (long long)n);
        return gptq_error(GPTQ_ERR_INVALID, "%s: zero point %d at group %lld, row %lld "
                          "outside [0, maxq = %u]", fn, (int)z, (long long)g, (long long)n, maxq);
    }
    if ((st = gptq_scales_fp16_check(fn, r->scales, ngroups, N, NULL, NULL))) return st;
    for (int64_t k = 0; k < K; k++)
        if (r->g_idx[k] < 0 || r->g_idx[k] >= ngroups)
            return gptq_error(GPTQ_ERR_INVALID, "%s: g_idx[%lld] = %d outside [0, ngroups = %lld)",
                              fn, (long long)k, (int)r->g_idx[k], (long long)ngroups);

    const int64_t qw_rows = K * b / 32, qz_cols = N * b / 32;
    out->bits = b;
    out->in_features = K;
    out->out_features = N;
    out->ngroups = ngroups;
    out->qweight = gptq_malloc((size_t)(qw_rows * N) * sizeof(int32_t), "gptq_pack qweight");
    out->qzeros = gptq_malloc((size_t)(ngroups * qz_cols) * sizeof(int32_t), "gptq_pack qzeros");
    out->scales = gptq_malloc((size_t)(ngroups * N) * sizeof(uint16_t), "gptq_pack scales");
    out->g_idx = gptq_malloc((size_t)K * sizeof(int32_t), "gptq_pack g_idx");
    if (!out->qweight || !out->qzeros || !out->scales || !out->g_idx) {
        gptq_packed_free(out);
        return GPTQ_ERR_NOMEM;
    }

    /* qweight: for each output n, the K codes of row n of W are one stream
     * down column n of qweight. K*b is a multiple of 32, so the writer ends
     * with no pending bits. */
    /* columns of qweight are independent words: spread them */
#pragma omp parallel for schedule(static) if (N * K > (1 << 20))
    for (int64_t n = 0; n < N; n++) {
        bit_writer w = {(uint32_t *)out->qweight + n, N, 0, 0};
        const uint8_t *row = r->codes + n * K; // (K) codes of output n
        for (int64_t k = 0; k < K; k++) bw_put(&w, row[k], b);
    }
    /* qzeros: each group's N zeros are one stream along the row. */
    for (int64_t g = 0; g < ngroups; g++) {
        bit_writer w = {(uint32_t *)out->qzeros + g * qz_cols, 1, 0, 0};
        for (int64_t n = 0; n < N; n++)
            bw_put(&w, (uint32_t)(r->zeros[g * N + n] - zmin), b);
    }
    for (int64_t i = 0; i < ngroups * N; i++) out->scales[i] = gptq_f32_to_f16(r->scales[i]);
    memcpy(out->g_idx, r->g_idx, (size_t)K * sizeof(int32_t));
    return GPTQ_OK;
}

int gptq_qzeros_pack(const uint8_t *zeros, // (ngroups, N)
                     int64_t ngroups, int64_t N, int bits, gptq_format fmt,
                     int32_t *qzeros) // (ngroups, N*bits/32)
{
    /* only N is packed here: 32 stands for a K that fits every width */
    int st = gptq_format_check_dims(GPTQ_ERR_INVALID, bits, N, 32);
    if (st) return gptq_error_prefix(st, "qzeros");
    const gptq_format_traits *t = gptq_format_get(fmt);
    if (!t) return gptq_error(GPTQ_ERR_INVALID, "qzeros: format %d is not a GPTQ format", (int)fmt);
    const uint32_t maxq = (1u << bits) - 1u;
    for (int64_t g = 0; g < ngroups; g++) {
        bit_writer w = {(uint32_t *)qzeros + g * (N * bits / 32), 1, 0, 0};
        for (int64_t n = 0; n < N; n++) {
            const int z = zeros[g * N + n];
            if (z < t->zero_offset || (uint32_t)z > maxq)
                return gptq_error(GPTQ_ERR_INVALID,
                                  "qzeros: zero point %d at group %lld, row %lld cannot be stored "
                                  "in the \"%s\" format",
                                  z, (long long)g, (long long)n, t->name);
            bw_put(&w, (uint32_t)(z - t->zero_offset), bits);
        }
    }
    return GPTQ_OK;
}

/* ------------------------------------------------------------------ */
/* Unpack and dequantize                                               */
/* ------------------------------------------------------------------ */

/* A v1 field f unpacks to f + 1 with no wrap: a field of maxq (which
 * gptq_pack never writes) gives 2^b, as the v1 kernels of AutoGPTQ and vLLM
 * compute it; GPTQModel's newer loader masks it to 0 instead. */
int gptq_unpack(const gptq_packed *p, gptq_format fmt,
                uint8_t *codes_kn, // (K, N) codes, as stored (W transposed); may be NULL
                int32_t *zeros)    // (ngroups, N) zero points; may be NULL
{
    int st = gptq_packed_check("gptq_unpack", p, fmt, codes_kn != NULL, zeros != NULL, 0);
    if (st) return st;
    const int b = p->bits;
    const int64_t K = p->in_features, N = p->out_features, ngroups = p->ngroups;
    const int32_t zadd = gptq_format_get(fmt)->zero_offset;
    if (codes_kn)
#pragma omp parallel for schedule(static) if (N * K > (1 << 20))
        for (int64_t n = 0; n < N; n++) {
            bit_reader rd = {(const uint32_t *)p->qweight + n, N, 0, 0};
            for (int64_t k = 0; k < K; k++) codes_kn[k * N + n] = (uint8_t)br_get(&rd, b);
        }
    if (zeros)
        for (int64_t g = 0; g < ngroups; g++) {
            bit_reader rd = {(const uint32_t *)p->qzeros + g * (N * b / 32), 1, 0, 0};
            for (int64_t n = 0; n < N; n++) zeros[g * N + n] = (int32_t)br_get(&rd, b) + zadd;
        }
    return GPTQ_OK;
}

/* Row n of the dequantized W: wrow[k] = f32(scale_fp16[g_idx[k], n]) *
 * (float)(q[k, n] - z[g_idx[k], n]). Exact in f32: q - z is an integer of
 * at most 9 bits and an fp16 has an 11-bit significand, so the product
 * needs at most 20 bits (subnormal fp16 scales too). */
static void dequant_row(const gptq_packed *p, const int32_t *zeros, int64_t n, float *wrow)
{
    const int b = p->bits;
    const int64_t N = p->out_features, K = p->in_features;
    bit_reader rd = {(const uint32_t *)p->qweight + n, N, 0, 0};
    for (int64_t k = 0; k < K; k++) {
        int32_t q = (int32_t)br_get(&rd, b);
        int64_t g = p->g_idx[k];
        float s = gptq_f16_to_f32(p->scales[g * N + n]);
        wrow[k] = s * (float)(q - zeros[g * N + n]);
    }
}

int gptq_dequantize(const gptq_packed *p, gptq_format fmt,
                    float *W) // (N, K) f32, out
{
    static const char fn[] = "gptq_dequantize";
    int st = gptq_packed_check(fn, p, fmt, 1, 1, 1);
    if (st) return st;
    if (!W) return gptq_error(GPTQ_ERR_INVALID, "%s: W is NULL", fn);
    const int64_t N = p->out_features, K = p->in_features;
    int32_t *zeros = gptq_malloc((size_t)(p->ngroups * N) * sizeof(int32_t), "gptq_dequantize zeros");
    if (!zeros) return GPTQ_ERR_NOMEM;
    gptq_unpack(p, fmt, NULL, zeros);
#pragma omp parallel for schedule(static) if (N * K > (1 << 20))
    for (int64_t n = 0; n < N; n++) dequant_row(p, zeros, n, W + n * K);
    free(zeros);
    return GPTQ_OK;
}

/* ------------------------------------------------------------------ */
/* Reference A16 matmul                                                */
/* ------------------------------------------------------------------ */

/* The oracle a kernel is diffed against. Its arithmetic, exactly:
 *   xh[m, k] = f32(f16(X[m, k]))  round to nearest even; |x| >= 65520 -> inf
 *   bh[n]    = f32(f16(bias[n]))  (0 when bias is NULL, and then not added)
 *   w[n, k]  = as gptq_dequantize (exact in f32)
 *   acc = +0.0f; for k = 0, 1, ..., K-1: acc = acc + (xh[m, k] * w[n, k])
 *     each product rounded to f32, then each sum rounded to f32; no FMA
 *     (the build passes -ffp-contract=off), no reassociation, one thread
 *   Y[m, n] = acc + bh[n]   (bias added last, one f32 rounding)
 * The result is a pure function of the packed bytes, X and bias. A fast
 * kernel that accumulates in a different order or in fp16 differs from it by
 * rounding; its test states how much it may. */
int gptq_matmul_ref(const gptq_packed *p, gptq_format fmt,
                    const float *X,    // (M, K) f32 activations
                    int64_t M,
                    const float *bias, // (N) f32, or NULL
                    float *Y)          // (M, N) f32, out
{
    static const char fn[] = "gptq_matmul_ref";
    int st = gptq_packed_check(fn, p, fmt, 1, 1, 1);
    if (st) return st;
    if (M < 0) return gptq_error(GPTQ_ERR_SHAPE, "%s: M = %lld is negative", fn, (long long)M);
    if (M == 0) return GPTQ_OK;
    if (!X || !Y) return gptq_error(GPTQ_ERR_INVALID, "%s: X or Y is NULL", fn);
    const int64_t N = p->out_features, K = p->in_features;

    /* One allocation carved into: xh (M, K), wrow (K), zeros (ngroups, N). */
    size_t nx = (size_t)(M * K), nz = (size_t)(p->ngroups * N);
    float *mem = gptq_malloc((nx + (size_t)K) * sizeof(float) + nz * sizeof(int32_t),
                             "gptq_matmul_ref scratch");
    if (!mem) return GPTQ_ERR_NOMEM;
    float *xh = mem;                          // (M, K) X rounded to fp16
    float *wrow = xh + nx;                    // (K) row n of W
    int32_t *zeros = (int32_t *)(wrow + K);   // (ngroups, N)

    for (size_t i = 0; i < nx; i++) xh[i] = gptq_f16_to_f32(gptq_f32_to_f16(X[i]));
    gptq_unpack(p, fmt, NULL, zeros);

    for (int64_t n = 0; n < N; n++) {
        dequant_row(p, zeros, n, wrow);
        const float bh = bias ? gptq_f16_to_f32(gptq_f32_to_f16(bias[n])) : 0.0f;
        for (int64_t m = 0; m < M; m++) {
            const float *x = xh + m * K;
            float acc = 0.0f;
            for (int64_t k = 0; k < K; k++) acc += x[k] * wrow[k];
            Y[m * N + n] = bias ? acc + bh : acc;
        }
    }
    free(mem);
    return GPTQ_OK;
}
