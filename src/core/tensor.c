/* tensor.c — host tensors and dtype conversions. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../internal.h"

static const struct {
    const char *name;
    size_t size;
} k_dtypes[GPTQ_DTYPE_COUNT] = {
    [GPTQ_F32] = {"F32", 4}, [GPTQ_F16] = {"F16", 2}, [GPTQ_BF16] = {"BF16", 2},
    [GPTQ_I32] = {"I32", 4}, [GPTQ_I64] = {"I64", 8}, [GPTQ_F64] = {"F64", 8},
    [GPTQ_I16] = {"I16", 2}, [GPTQ_I8] = {"I8", 1},   [GPTQ_U8] = {"U8", 1},
    [GPTQ_BOOL] = {"BOOL", 1},
};

size_t gptq_dtype_size(gptq_dtype dt)
{
    return (unsigned)dt < GPTQ_DTYPE_COUNT ? k_dtypes[dt].size : 0;
}

const char *gptq_dtype_name(gptq_dtype dt)
{
    return (unsigned)dt < GPTQ_DTYPE_COUNT ? k_dtypes[dt].name : "?";
}

int gptq_dtype_from_name(const char *name, gptq_dtype *out)
{
    for (int i = 0; i < GPTQ_DTYPE_COUNT; i++)
        if (name && strcmp(name, k_dtypes[i].name) == 0) {
            *out = (gptq_dtype)i;
            return GPTQ_OK;
        }
    return gptq_error(GPTQ_ERR_UNSUPPORTED, "unknown dtype \"%s\" (known: F32 F16 BF16 I32 I64 F64 I16 I8 U8 BOOL)",
                      name ? name : "(null)");
}

int64_t gptq_tensor_numel(const gptq_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t gptq_tensor_nbytes(const gptq_tensor *t)
{
    return (size_t)gptq_tensor_numel(t) * gptq_dtype_size(t->dtype);
}

int gptq_tensor_alloc(gptq_tensor *t, gptq_dtype dt, int ndim, const int64_t *shape)
{
    memset(t, 0, sizeof *t);
    if (ndim < 0 || ndim > GPTQ_MAX_DIMS || gptq_dtype_size(dt) == 0)
        return gptq_error(GPTQ_ERR_INVALID, "tensor: bad dtype or ndim %d", ndim);
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return gptq_error(GPTQ_ERR_INVALID, "tensor: negative dimension");
        t->shape[i] = shape[i];
    }
    t->data = gptq_calloc(gptq_tensor_nbytes(t), 1, "tensor");
    if (!t->data) return GPTQ_ERR_NOMEM;
    t->owned = 1;
    return GPTQ_OK;
}

void gptq_tensor_free(gptq_tensor *t)
{
    if (!t) return;
    if (t->owned) free(t->data);
    t->data = NULL;
    t->owned = 0;
}

float gptq_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalize */
            int e = -1;
            do { man <<= 1; e++; } while (!(man & 0x400u));
            man &= 0x3ffu;
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (man << 13);
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t gptq_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0));
    if (ax >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) { /* below the smallest normal half: subnormal */
        if (ax < 0x33000000u) return (uint16_t)sign; /* < 2^-25 rounds to 0 */
        uint32_t e = ax >> 23;
        uint32_t man = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; /* value = man * 2^(e-150), unit 2^-24 */
        uint32_t q = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = ax + 0xc8000000u; /* rebias exponent: -112 << 23 */
    uint32_t lsb = (r >> 13) & 1u;
    r += 0xfffu + lsb; /* round to nearest even */
    return (uint16_t)(sign | (r >> 13));
}

float gptq_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t gptq_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet nan */
    uint32_t lsb = (x >> 16) & 1u;
    x += 0x7fffu + lsb;
    return (uint16_t)(x >> 16);
}

int gptq_convert_to_f32(float *dst, const void *src, gptq_dtype dt, int64_t n)
{
    switch (dt) {
    case GPTQ_F32:
        memcpy(dst, src, (size_t)n * 4);
        return GPTQ_OK;
    case GPTQ_F16: {
        const uint16_t *s = src;
#pragma omp parallel for schedule(static) if (n > (1 << 20))
        for (int64_t i = 0; i < n; i++) dst[i] = gptq_f16_to_f32(s[i]);
        return GPTQ_OK;
    }
    case GPTQ_BF16: {
        const uint16_t *s = src;
#pragma omp parallel for schedule(static) if (n > (1 << 20))
        for (int64_t i = 0; i < n; i++) dst[i] = gptq_bf16_to_f32(s[i]);
        return GPTQ_OK;
    }
    default:
        return gptq_error(GPTQ_ERR_UNSUPPORTED, "cannot convert dtype %s to F32",
                          gptq_dtype_name(dt));
    }
}
