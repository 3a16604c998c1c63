/*
 * cpu_packed.c — the packed-tensor ops of the vtable (backend.h, ABI 3):
 * pack_codes, dequantize and the A16 matmul, on host memory; gather, the
 * act-order permutations of the device-resident solve; to_f32, half
 * precision widened (the loader's weights).
 *
 * These are a second implementation of the rules that src/format/pack.c
 * implements for the public API (tests diff the two): pack.c walks each
 * stream with a bit reader/writer; here every word and every value is
 * addressed directly (value i of a b-bit stream starts at bit b*i), which is
 * also how the GPU kernels of backends/hip read them. fp16 goes through the
 * compiler's _Float16 (IEEE binary16, round to nearest even), pack.c has its
 * own bit-level conversion: two roads to the same bits.
 *
 * Rows (outputs n) are independent: spread over OpenMP threads, each
 * output's arithmetic fixed by the code alone (the same bytes for any
 * thread count).
 */
#include <stdlib.h>
#include <string.h>

#include "cpu_impl.h"

static float f16_bits_to_f32(uint16_t h)
{
    _Float16 v;
    memcpy(&v, &h, sizeof v);
    return (float)v;
}

/* f32 -> nearest fp16 (ties to even; |x| >= 65520 -> inf) -> f32. */
static float round_f16(float x) { return (float)(_Float16)x; }

/* Value i of the b-bit stream whose word w lies at words[w * stride]. */
static uint32_t stream_get(const uint32_t *words, int64_t stride, int64_t i, int b)
{
    const int64_t t = i * b, w = t >> 5;
    const int sh = (int)(t & 31);
    uint64_t v = words[w * stride] >> sh;
    if (sh + b > 32) v |= (uint64_t)words[(w + 1) * stride] << (32 - sh);
    return (uint32_t)v & ((1u << b) - 1u);
}

/* Shapes, buffer sizes and g_idx of a packed tensor (cpu_impl.h). */
int cpu_check_q(cpu_ctx *c, const gptq_qtensor *q, const char *op)
{
    if (!q) return cpu_fail(c, GPTQ_ERR_INVALID, "%s: no packed tensor", op);
    const int b = q->bits;
    if (b != 2 && b != 3 && b != 4 && b != 8)
        return cpu_fail(c, GPTQ_ERR_INVALID, "%s: bits = %d (2, 3, 4 or 8)", op, b);
    const int64_t mult = b == 3 ? 32 : 32 / b;
    if (q->K <= 0 || q->N <= 0 || q->K % mult || q->N % mult)
        return cpu_fail(c, GPTQ_ERR_SHAPE, "%s: K = %lld, N = %lld: both must be positive "
                        "multiples of %lld for %d bits", op, (long long)q->K, (long long)q->N,
                        (long long)mult, b);
    if (q->ngroups < 1 || q->ngroups > q->K)
        return cpu_fail(c, GPTQ_ERR_SHAPE, "%s: ngroups = %lld outside [1, K = %lld]", op,
                        (long long)q->ngroups, (long long)q->K);
    int st = cpu_range(c, q->qweight, 0, q->K * b / 32 * q->N, 4, op, "qweight");
    if (!st) st = cpu_range(c, q->qzeros, 0, q->ngroups * (q->N * b / 32), 4, op, "qzeros");
    if (!st) st = cpu_range(c, q->scales, 0, q->ngroups * q->N, 2, op, "scales");
    if (!st) st = cpu_range(c, q->g_idx, 0, q->K, 4, op, "g_idx");
    if (st) return st;
    const int32_t *gi = (const int32_t *)(const void *)q->g_idx->data;
    for (int64_t k = 0; k < q->K; k++)
        if (gi[k] < 0 || gi[k] >= q->ngroups)
            return cpu_fail(c, GPTQ_ERR_INVALID, "%s: g_idx[%lld] = %d outside [0, ngroups = %lld)",
                            op, (long long)k, (int)gi[k], (long long)q->ngroups);
    return GPTQ_OK;
}

int cpu_pack_codes(void *ctx, const gptq_buf *codes, int64_t R, int64_t C, int bits,
                   gptq_buf *qweight)
{
    cpu_ctx *c = ctx;
    static const char op[] = "pack_codes";
    if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
        return cpu_fail(c, GPTQ_ERR_INVALID, "%s: bits = %d (2, 3, 4 or 8)", op, bits);
    const int64_t mult = bits == 3 ? 32 : 32 / bits;
    if (R <= 0 || C <= 0 || R % mult || C % mult)
        return cpu_fail(c, GPTQ_ERR_SHAPE, "%s: R = %lld, C = %lld: both must be positive "
                        "multiples of %lld for %d bits", op, (long long)R, (long long)C,
                        (long long)mult, bits);
    int st = cpu_range(c, codes, 0, R * C, 1, op, "codes");
    if (!st) st = cpu_range(c, qweight, 0, C * bits / 32 * R, 4, op, "qweight");
    if (st) return st;
    const uint8_t *cd = codes->data;
    const unsigned maxq = (1u << bits) - 1u;
    int64_t bad = INT64_MAX;
#pragma omp parallel for reduction(min : bad) schedule(static) if (R * C > (1 << 20))
    for (int64_t i = 0; i < R * C; i++)
        if (cd[i] > maxq && i < bad) bad = i;
    if (bad != INT64_MAX)
        return cpu_fail(c, GPTQ_ERR_INVALID, "%s: code %u at row %lld, column %lld exceeds %u "
                        "(%d bits)", op, (unsigned)cd[bad], (long long)(bad / C),
                        (long long)(bad % C), maxq, bits);
    uint32_t *qw = (uint32_t *)(void *)qweight->data;
    const int64_t words = C * bits / 32;
#pragma omp parallel for schedule(static) if (R * C > (1 << 20))
    for (int64_t r = 0; r < R; r++) {
        const uint8_t *row = cd + r * C; // (C) codes of output r
        for (int64_t w = 0; w < words; w++) {
            /* the values with a bit in [32w, 32w + 32) */
            uint64_t acc = 0;
            for (int64_t k = 32 * w / bits; k < C && k * bits < 32 * w + 32; k++) {
                const int64_t at = k * bits - 32 * w; /* < 0: the value began a word earlier */
                acc |= at >= 0 ? (uint64_t)row[k] << at : (uint64_t)row[k] >> -at;
            }
            qw[w * R + r] = (uint32_t)acc;
        }
    }
    return GPTQ_OK;
}

/* Row n of the dequantized W (K) (cpu_impl.h). */
void cpu_dequant_row(const gptq_qtensor *q, int64_t n, float *wrow)
{
    const int b = q->bits;
    const int64_t N = q->N;
    const uint32_t *qw = (const uint32_t *)(const void *)q->qweight->data;
    const uint32_t *qz = (const uint32_t *)(const void *)q->qzeros->data;
    const uint16_t *sc = (const uint16_t *)(const void *)q->scales->data;
    const int32_t *gi = (const int32_t *)(const void *)q->g_idx->data;
    const int64_t zwords = N * b / 32;
    for (int64_t k = 0; k < q->K; k++) {
        const int64_t g = gi[k];
        const int32_t code = (int32_t)stream_get(qw + n, N, k, b);
        const int32_t z = (int32_t)stream_get(qz + g * zwords, 1, n, b) + q->zero_add;
        wrow[k] = f16_bits_to_f32(sc[g * N + n]) * (float)(code - z);
    }
}

int cpu_dequantize(void *ctx, const gptq_qtensor *q, gptq_buf *W, size_t w_off)
{
    cpu_ctx *c = ctx;
    int st = cpu_check_q(c, q, "dequantize");
    if (!st) st = cpu_range(c, W, w_off, q->N * q->K, 4, "dequantize", "W");
    if (st) return st;
    float *w = CPU_F32(W, w_off);
#pragma omp parallel for schedule(static) if (q->N * q->K > (1 << 20))
    for (int64_t n = 0; n < q->N; n++) cpu_dequant_row(q, n, w + n * q->K);
    return GPTQ_OK;
}

int cpu_matmul_q(void *ctx, const gptq_qtensor *q, const gptq_buf *X, size_t x_off, int64_t M,
                 const gptq_buf *bias, gptq_buf *Y, size_t y_off)
{
    cpu_ctx *c = ctx;
    static const char op[] = "matmul_q";
    int st = cpu_check_q(c, q, op);
    if (st) return st;
    if (M < 0) return cpu_fail(c, GPTQ_ERR_SHAPE, "%s: M = %lld is negative", op, (long long)M);
    const int64_t K = q->K, N = q->N;
    st = cpu_range(c, X, x_off, M * K, 4, op, "X");
    if (!st) st = cpu_range(c, Y, y_off, M * N, 4, op, "Y");
    if (!st && bias) st = cpu_range(c, bias, 0, N, 4, op, "bias");
    if (st) return st;
    if (M == 0) return GPTQ_OK;
    float *xh = malloc((size_t)(M * K) * sizeof(float)); // (M, K) X as fp16 values
    if (!xh) return cpu_fail(c, GPTQ_ERR_NOMEM, "%s: no memory for X in fp16 (%lld floats)", op,
                             (long long)(M * K));
    const float *x = CPU_CF32(X, x_off);
    for (int64_t i = 0; i < M * K; i++) xh[i] = round_f16(x[i]);
    const float *bs = bias ? CPU_CF32(bias, 0) : NULL;
    float *y = CPU_F32(Y, y_off);
    int nomem = 0;
#pragma omp parallel reduction(| : nomem)
    {
        float *wrow = malloc((size_t)K * sizeof(float)); // (K) row n of W
        if (!wrow) nomem = 1;
#pragma omp for schedule(static)
        for (int64_t n = 0; n < N; n++) {
            if (!wrow) continue;
            cpu_dequant_row(q, n, wrow);
            for (int64_t m = 0; m < M; m++) {
                const float *xr = xh + m * K;
                float acc = 0.0f;
                for (int64_t k = 0; k < K; k++) acc += xr[k] * wrow[k];
                y[m * N + n] = bs ? acc + round_f16(bs[n]) : acc;
            }
        }
        free(wrow);
    }
    free(xh);
    if (nomem) return cpu_fail(c, GPTQ_ERR_NOMEM, "%s: no memory for a row of W", op);
    return GPTQ_OK;
}

int cpu_gather(void *ctx, gptq_buf *dst, const gptq_buf *src, int64_t R, int64_t C, int64_t Rs,
               int64_t Cs, const gptq_buf *rows, const gptq_buf *cols, int esize)
{
    cpu_ctx *c = ctx;
    static const char op[] = "gather";
    if (esize != 1 && esize != 4)
        return cpu_fail(c, GPTQ_ERR_INVALID, "%s: element size %d (1 or 4)", op, esize);
    if (R < 0 || C < 0 || Rs < 0 || Cs < 0)
        return cpu_fail(c, GPTQ_ERR_SHAPE, "%s: negative shape", op);
    int st = cpu_range(c, dst, 0, R * C, (size_t)esize, op, "dst");
    if (!st) st = cpu_range(c, src, 0, Rs * Cs, (size_t)esize, op, "src");
    if (!st && rows) st = cpu_range(c, rows, 0, R, 4, op, "rows");
    if (!st && cols) st = cpu_range(c, cols, 0, C, 4, op, "cols");
    if (st) return st;
    if (dst->data < src->data + src->nbytes && src->data < dst->data + dst->nbytes)
        return cpu_fail(c, GPTQ_ERR_INVALID, "%s: dst overlaps src", op);
    const int32_t *ri = rows ? (const int32_t *)(const void *)rows->data : NULL;
    const int32_t *ci = cols ? (const int32_t *)(const void *)cols->data : NULL;
    if (!ri && R > Rs) return cpu_fail(c, GPTQ_ERR_SHAPE, "%s: %lld rows of %lld", op,
                                       (long long)R, (long long)Rs);
    if (!ci && C > Cs) return cpu_fail(c, GPTQ_ERR_SHAPE, "%s: %lld columns of %lld", op,
                                       (long long)C, (long long)Cs);
    for (int64_t i = 0; ri && i < R; i++)
        if (ri[i] < 0 || ri[i] >= Rs)
            return cpu_fail(c, GPTQ_ERR_INVALID, "%s: rows[%lld] = %d outside [0, %lld)", op,
                            (long long)i, (int)ri[i], (long long)Rs);
    /* c0 >= 0: the columns are the run c0 .. c0 + C - 1 (a split of a
     * joined output): each row is one copy */
    int64_t c0 = ci ? (C > 0 ? ci[0] : -1) : 0;
    for (int64_t j = 0; ci && j < C; j++) {
        if (ci[j] < 0 || ci[j] >= Cs)
            return cpu_fail(c, GPTQ_ERR_INVALID, "%s: cols[%lld] = %d outside [0, %lld)", op,
                            (long long)j, (int)ci[j], (long long)Cs);
        if (ci[j] != c0 + j) c0 = -1;
    }
#pragma omp parallel for schedule(static) if (R * C > (1 << 20))
    for (int64_t i = 0; i < R; i++) {
        const int64_t si = ri ? ri[i] : i;
        if (c0 >= 0) {
            memcpy(dst->data + (size_t)(i * C) * (size_t)esize,
                   src->data + (size_t)(si * Cs + c0) * (size_t)esize, (size_t)C * (size_t)esize);
        } else if (esize == 4) {
            const uint32_t *s = (const uint32_t *)(const void *)src->data + si * Cs;
            uint32_t *d = (uint32_t *)(void *)dst->data + i * C;
            for (int64_t j = 0; j < C; j++) d[j] = s[ci ? ci[j] : j];
        } else {
            const uint8_t *s = src->data + si * Cs;
            uint8_t *d = dst->data + i * C;
            for (int64_t j = 0; j < C; j++) d[j] = s[ci ? ci[j] : j];
        }
    }
    return GPTQ_OK;
}

int cpu_to_f32(void *ctx, gptq_buf *dst, size_t dst_off, const gptq_buf *src, int64_t n, int dtype)
{
    cpu_ctx *c = ctx;
    static const char op[] = "to_f32";
    if (dtype != GPTQ_F16 && dtype != GPTQ_BF16)
        return cpu_fail(c, GPTQ_ERR_INVALID, "%s: dtype %d is neither F16 nor BF16", op, dtype);
    int st = cpu_range(c, dst, dst_off, n, 4, op, "dst");
    if (!st) st = cpu_range(c, src, 0, n, 2, op, "src");
    if (st) return st;
    const uint16_t *s = (const uint16_t *)(const void *)src->data;
    float *d = CPU_F32(dst, dst_off);
    if (dtype == GPTQ_BF16) {
#pragma omp parallel for schedule(static) if (n > (1 << 20))
        for (int64_t i = 0; i < n; i++) {
            const uint32_t u = (uint32_t)s[i] << 16;
            memcpy(&d[i], &u, 4);
        }
    } else {
#pragma omp parallel for schedule(static) if (n > (1 << 20))
        for (int64_t i = 0; i < n; i++) d[i] = f16_bits_to_f32(s[i]);
    }
    return GPTQ_OK;
}
