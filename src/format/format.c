/*
 * format.c — the format tables and their checks (format.h).
 */
#include <stdio.h>
#include <string.h>

#include "format.h"

static const gptq_format_traits k_formats[] = {
    {.id = GPTQ_FORMAT_V1, .quant_method = "gptq", .name = "gptq", .zero_offset = 1},
    {.id = GPTQ_FORMAT_V2, .quant_method = "gptq", .name = "gptq_v2", .zero_offset = 0},
};

const char *const gptq_tensor_suffix[GPTQ_T_COUNT] = {
    [GPTQ_T_QWEIGHT] = "qweight", [GPTQ_T_QZEROS] = "qzeros", [GPTQ_T_SCALES] = "scales",
    [GPTQ_T_G_IDX] = "g_idx",     [GPTQ_T_BIAS] = "bias",
};

static const gptq_packing k_packings[] = {
    {.bits = 2, .mult = 16},
    {.bits = 3, .mult = 32},
    {.bits = 4, .mult = 8},
    {.bits = 8, .mult = 4},
};
/* the widths of k_packings, as the messages list them */
static const char k_bits_text[] = "2, 3, 4 or 8";

#define COUNT(a) (sizeof(a) / sizeof *(a))

const gptq_format_traits *gptq_format_get(gptq_format fmt)
{
    for (size_t i = 0; i < COUNT(k_formats); i++)
        if (k_formats[i].id == fmt) return &k_formats[i];
    return NULL;
}

const gptq_format_traits *gptq_format_by_name(const char *name)
{
    for (size_t i = 0; name && i < COUNT(k_formats); i++)
        if (!strcmp(k_formats[i].name, name)) return &k_formats[i];
    return NULL;
}

char *gptq_tensor_name(char *buf, size_t size, const char *prefix, gptq_tensor_kind t)
{
    if (prefix && prefix[0]) snprintf(buf, size, "%s.%s", prefix, gptq_tensor_suffix[t]);
    else snprintf(buf, size, "%s", gptq_tensor_suffix[t]);
    return buf;
}

const gptq_packing *gptq_packing_of(int64_t bits)
{
    for (size_t i = 0; i < COUNT(k_packings); i++)
        if (k_packings[i].bits == bits) return &k_packings[i];
    return NULL;
}

int gptq_format_check_bits(int status, const char *what, int64_t bits)
{
    if (gptq_packing_of(bits)) return GPTQ_OK;
    return gptq_error(status, "%s %lld: must be %s", what, (long long)bits, k_bits_text);
}

int gptq_format_check_dims(int status, int bits, int64_t rows, int64_t cols)
{
    const gptq_packing *pk = gptq_packing_of(bits);
    if (!pk) return gptq_format_check_bits(status, "bits =", bits);
    if (rows > 0 && cols > 0 && rows % pk->mult == 0 && cols % pk->mult == 0) return GPTQ_OK;
    return gptq_error(status, "%lld x %lld (out x in): %d-bit packing needs both to be positive "
                      "multiples of %d", (long long)rows, (long long)cols, bits, pk->mult);
}

int gptq_format_check_group(int status, int64_t group_size, int64_t in_features)
{
    if (group_size <= GPTQ_LOADER_MAX_GROUP || group_size == in_features) return GPTQ_OK;
    return gptq_error(status,
                      "group size %lld with %lld input features: no loader's kernel runs a group "
                      "above %d unless it is the whole row (GPTQModel's torch and triton kernels "
                      "take group sizes up to %d or equal to in_features; its Marlin, ExLlamaV2 "
                      "and Machete kernels and vLLM's gptq_marlin up to 128): use --group-size "
                      "%d or less, or -1 (one group per row)",
                      (long long)group_size, (long long)in_features, GPTQ_LOADER_MAX_GROUP,
                      GPTQ_LOADER_MAX_GROUP, GPTQ_LOADER_MAX_GROUP);
}
