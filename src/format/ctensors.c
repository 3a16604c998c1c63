/*
 * ctensors.c — the compressed-tensors "pack-quantized" layout of one
 * quantized linear (W4A16 / W8A16), converted from and to our gptq_packed
 * (v2 zero points), and the quantization_config that names it (ctensors.h).
 *
 * The layout, as read from the public sources (facts only, no code):
 * neuralmagic/compressed-tensors
 *   compressors/quantized_compressors/pack_quantized.py (pack_to_int32,
 *   unpack_from_int32, compression_param_info), quantization/quant_args.py,
 *   quantization/quant_scheme.py, config/base.py; and vllm-project/vllm
 *   model_executor/layers/quantization/compressed_tensors/schemes/
 *   compressed_tensors_wNa16.py (the parameters it registers):
 *
 *   weight_packed     (N, ceil(K/pf)) int32, pf = 32/b values a word, packed
 *                     along the input dim K: value k of row n is bit field
 *                     k % pf of word k / pf (field j at bits b*j..b*j+b-1);
 *                     a short last word is padded with 0 fields
 *   weight_scale      (N, ngroups) in the model dtype (we write fp16, as our
 *                     gptq checkpoints do)
 *   weight_zero_point (ceil(N/pf), ngroups) int32, asymmetric only: packed
 *                     along the OUTPUT dim N (packed_dim=0), same field rule
 *   weight_shape      (2) int64 {N, K} (vLLM registers it int64; the
 *                     compressor writes torch.tensor(weight.shape), int64)
 *
 * Codes: compressed-tensors quantizes to signed q_s in [-2^(b-1), 2^(b-1))
 * and packs q_s + 2^(b-1), i.e. the unsigned code; the zero point is signed
 * too and packed the same way. W = scale * (q_s - zp_s) = scale * (q - z)
 * with our unsigned q and z: the stored fields are exactly our codes and
 * zeros. Symmetric means zp_s = 0, z = 2^(b-1), which is what GPTQ's sym
 * grid uses; no weight_zero_point is stored then.
 *
 * Groups: contiguous along K (k / G). Act-order with a permuted g_idx
 * ("actorder": "group", weight_g_idx) is not written: refused here.
 */
#include <stdlib.h>
#include <string.h>

#include "ctensors.h"

int gptq_ct_check_bits(int status, int bits)
{
    if (bits == 4 || bits == 8) return GPTQ_OK;
    return gptq_error(status,
                      "compressed-tensors: %d bits: pack-quantized is written for 4 or 8 bits "
                      "(vLLM's WNA16 scheme runs those); use --bits 4 or 8, or --format gptq_v2",
                      bits);
}

/* pf = 32/b fields a word: value i in word i / pf, field i % pf. */
static void put_field(uint32_t *words, int64_t i, int b, uint32_t v)
{
    const int pf = 32 / b;
    words[i / pf] |= v << (b * (int)(i % pf));
}

static uint32_t get_field(const uint32_t *words, int64_t i, int b)
{
    const int pf = 32 / b;
    return (words[i / pf] >> (b * (int)(i % pf))) & ((1u << b) - 1u);
}

int gptq_ct_pack(const uint8_t *codes, const int32_t *zeros, const uint16_t *scales, int64_t N,
                 int64_t K, int64_t ngroups, int bits, int sym, gptq_ct_linear *out)
{
    memset(out, 0, sizeof *out);
    GPTQ_TRY(gptq_ct_check_bits(GPTQ_ERR_INVALID, bits));
    if (N <= 0 || K <= 0 || ngroups <= 0 || ngroups > K)
        return gptq_error(GPTQ_ERR_SHAPE, "compressed-tensors: %lld x %lld with %lld groups: "
                          "not a weight shape", (long long)N, (long long)K, (long long)ngroups);
    const int pf = 32 / bits;
    const uint32_t maxq = (1u << bits) - 1u, mid = 1u << (bits - 1);
    out->bits = bits;
    out->N = N;
    out->K = K;
    out->ngroups = ngroups;
    out->sym = sym;
    out->packed_cols = (K + pf - 1) / pf;
    out->zp_rows = sym ? 0 : (N + pf - 1) / pf;
    out->weight_packed = calloc((size_t)(N * out->packed_cols), 4);
    out->weight_scale = malloc((size_t)(N * ngroups) * 2);
    out->weight_zero_point = sym ? NULL : calloc((size_t)(out->zp_rows * ngroups), 4);
    if (!out->weight_packed || !out->weight_scale || (!sym && !out->weight_zero_point)) {
        gptq_ct_free(out);
        return gptq_error(GPTQ_ERR_NOMEM, "compressed-tensors: out of memory (%lld x %lld)",
                          (long long)N, (long long)K);
    }
    for (int64_t n = 0; n < N; n++) {
        uint32_t *row = (uint32_t *)out->weight_packed + n * out->packed_cols;
        for (int64_t k = 0; k < K; k++) {
            const uint32_t q = codes[n * K + k];
            if (q > maxq) {
                gptq_ct_free(out);
                return gptq_error(GPTQ_ERR_INVALID, "compressed-tensors: code %u at (%lld, %lld) "
                                  "above %u", q, (long long)n, (long long)k, maxq);
            }
            put_field(row, k, bits, q);
        }
    }
    for (int64_t g = 0; g < ngroups; g++)
        for (int64_t n = 0; n < N; n++) {
            /* ours (ngroups, N), theirs (N, ngroups) */
            out->weight_scale[n * ngroups + g] = scales[g * N + n];
            const int32_t z = zeros[g * N + n];
            if (sym ? (uint32_t)z != mid : (z < 0 || (uint32_t)z > maxq)) {
                gptq_ct_free(out);
                return gptq_error(GPTQ_ERR_INVALID,
                                  "compressed-tensors: zero point %d of group %lld, row %lld: %s",
                                  z, (long long)g, (long long)n,
                                  sym ? "a symmetric layer stores none, so it must be 2^(bits-1)"
                                      : "outside [0, 2^bits)");
            }
            if (sym) continue;
            /* column g of the (ceil(N/pf), ngroups) words, packed along N */
            uint32_t *zw = (uint32_t *)out->weight_zero_point;
            zw[(n / pf) * ngroups + g] |= (uint32_t)z << (bits * (int)(n % pf));
        }
    return GPTQ_OK;
}

int gptq_ct_unpack(const gptq_ct_linear *c, uint8_t *codes, int32_t *zeros, uint16_t *scales)
{
    GPTQ_TRY(gptq_ct_check_bits(GPTQ_ERR_INVALID, c->bits));
    const int b = c->bits, pf = 32 / b;
    const int64_t N = c->N, K = c->K, ng = c->ngroups;
    for (int64_t n = 0; n < N; n++) {
        const uint32_t *row = (const uint32_t *)c->weight_packed + n * c->packed_cols;
        for (int64_t k = 0; k < K; k++) codes[n * K + k] = (uint8_t)get_field(row, k, b);
        /* the padding fields of the last word: a writer puts 0 there */
        for (int64_t k = K; k < c->packed_cols * pf; k++)
            if (get_field(row, k, b))
                return gptq_error(GPTQ_ERR_INVALID, "compressed-tensors: weight_packed row %lld "
                                  "has bits set in the padding after column %lld",
                                  (long long)n, (long long)K);
    }
    const uint32_t *zw = (const uint32_t *)c->weight_zero_point;
    for (int64_t g = 0; g < ng; g++)
        for (int64_t n = 0; n < N; n++) {
            scales[g * N + n] = c->weight_scale[n * ng + g];
            zeros[g * N + n] =
                c->sym ? 1 << (b - 1)
                       : (int32_t)((zw[(n / pf) * ng + g] >> (b * (int)(n % pf))) &
                                   ((1u << b) - 1u));
        }
    return GPTQ_OK;
}

void gptq_ct_free(gptq_ct_linear *c)
{
    if (!c) return;
    free(c->weight_packed);
    free(c->weight_scale);
    free(c->weight_zero_point);
    memset(c, 0, sizeof *c);
}

int gptq_ct_from_packed(const gptq_packed *p, int group_size, int sym, gptq_ct_linear *out)
{
    memset(out, 0, sizeof *out);
    const int64_t N = p->out_features, K = p->in_features;
    const int64_t G = group_size == -1 ? K : group_size;
    GPTQ_TRY(gptq_ct_check_bits(GPTQ_ERR_INVALID, p->bits));
    for (int64_t k = 0; p->g_idx && k < K; k++)
        if (p->g_idx[k] != k / G)
            return gptq_error(GPTQ_ERR_UNSUPPORTED,
                              "compressed-tensors: g_idx[%lld] = %d, not %lld: act-order groups "
                              "(--desc-act without GAR) cannot be written as pack-quantized here; "
                              "use --act-group-aware, --static-groups, no --desc-act, or "
                              "--format gptq_v2", (long long)k, p->g_idx[k], (long long)(k / G));
    uint8_t *kn = malloc((size_t)(K * N));
    uint8_t *nk = malloc((size_t)(K * N));
    int32_t *z = malloc((size_t)(p->ngroups * N) * 4);
    int st = kn && nk && z ? GPTQ_OK : gptq_error(GPTQ_ERR_NOMEM, "compressed-tensors: out of "
                                                  "memory");
    if (!st) st = gptq_unpack(p, GPTQ_FORMAT_V2, kn, z);
    if (!st) {
        for (int64_t k = 0; k < K; k++)
            for (int64_t n = 0; n < N; n++) nk[n * K + k] = kn[k * N + n];
        st = gptq_ct_pack(nk, z, p->scales, N, K, p->ngroups, p->bits, sym, out);
    }
    free(kn);
    free(nk);
    free(z);
    return st;
}

int gptq_ct_to_packed(const gptq_ct_linear *c, int group_size, gptq_packed *out)
{
    memset(out, 0, sizeof *out);
    const int64_t N = c->N, K = c->K, ng = c->ngroups;
    const int64_t G = group_size == -1 ? K : group_size;
    if ((K + G - 1) / G != ng)
        return gptq_error(GPTQ_ERR_SHAPE, "compressed-tensors: %lld input columns in groups of "
                          "%lld make %lld groups, not the %lld of weight_scale", (long long)K,
                          (long long)G, (long long)((K + G - 1) / G), (long long)ng);
    gptq_layer_result r;
    memset(&r, 0, sizeof r);
    r.rows = N;
    r.cols = K;
    r.ngroups = ng;
    r.bits = c->bits;
    r.group_size = (int)G;
    r.codes = malloc((size_t)(N * K));
    r.zeros = malloc((size_t)(ng * N) * 4);
    r.scales = malloc((size_t)(ng * N) * 4);
    r.g_idx = malloc((size_t)K * 4);
    uint16_t *s16 = malloc((size_t)(ng * N) * 2);
    int st = r.codes && r.zeros && r.scales && r.g_idx && s16
                 ? GPTQ_OK
                 : gptq_error(GPTQ_ERR_NOMEM, "compressed-tensors: out of memory");
    if (!st) st = gptq_ct_unpack(c, r.codes, r.zeros, s16);
    if (!st) {
        /* fp16 -> f32 -> fp16 is exact: gptq_pack gives the same scales back */
        for (int64_t i = 0; i < ng * N; i++) r.scales[i] = gptq_f16_to_f32(s16[i]);
        for (int64_t k = 0; k < K; k++) r.g_idx[k] = (int32_t)(k / G);
        st = gptq_pack(&r, GPTQ_FORMAT_V2, out);
    }
    free(r.codes);
    free(r.zeros);
    free(r.scales);
    free(r.g_idx);
    free(s16);
    return st;
}

cJSON *gptq_ct_quant_config(int bits, int group_size, int sym, int actorder_weight,
                            const char *const *ignore, int nignore)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *groups = cJSON_AddObjectToObject(o, "config_groups");
    cJSON *g0 = groups ? cJSON_AddObjectToObject(groups, "group_0") : NULL;
    cJSON *targets = g0 ? cJSON_AddArrayToObject(g0, "targets") : NULL;
    cJSON *w = g0 ? cJSON_AddObjectToObject(g0, "weights") : NULL;
    int ok = targets && w;
    cJSON *t = ok ? cJSON_CreateString("Linear") : NULL;
    if (t) cJSON_AddItemToArray(targets, t);
    ok = ok && t && cJSON_AddNullToObject(g0, "input_activations") &&
         cJSON_AddNullToObject(g0, "output_activations") &&
         cJSON_AddNumberToObject(w, "num_bits", bits) &&
         cJSON_AddStringToObject(w, "type", "int") &&
         cJSON_AddBoolToObject(w, "symmetric", sym) &&
         cJSON_AddStringToObject(w, "strategy", group_size == -1 ? "channel" : "group") &&
         (group_size == -1 ? cJSON_AddNullToObject(w, "group_size") != NULL
                           : cJSON_AddNumberToObject(w, "group_size", group_size) != NULL) &&
         /* "weight": columns solved in activation order, groups still
          * contiguous (GAR, static groups): no weight_g_idx needed */
         (actorder_weight ? cJSON_AddStringToObject(w, "actorder", "weight") != NULL
                          : cJSON_AddNullToObject(w, "actorder") != NULL) &&
         cJSON_AddBoolToObject(w, "dynamic", 0) &&
         cJSON_AddStringToObject(o, "format", "pack-quantized") &&
         cJSON_AddStringToObject(o, "quant_method", "compressed-tensors") &&
         cJSON_AddStringToObject(o, "quantization_status", "compressed");
    cJSON *ig = ok ? cJSON_AddArrayToObject(o, "ignore") : NULL;
    ok = ok && ig;
    for (int i = 0; ok && i < nignore; i++) {
        cJSON *s = cJSON_CreateString(ignore[i]);
        ok = s != NULL;
        if (s) cJSON_AddItemToArray(ig, s);
    }
    if (ok) return o;
    cJSON_Delete(o);
    return NULL;
}
