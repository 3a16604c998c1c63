/*
 * format.h — the checkpoint formats gptq-c writes and reads, as tables
 * (internal to libgptq; STYLE.md lesson 17, after ggml's type_traits):
 * every reader, writer, option check and solver asks these tables and
 * their two checks instead of spelling a rule itself.
 *
 * What differs between GPTQ v1 and v2 is one row each (gptq_format_get);
 * what they share is one table each: the tensor names of a packed linear
 * (gptq_tensor_suffix) and the bit widths with their packing
 * (gptq_packing_of). Also here: the packed tensors on the host (pack.c,
 * which states the layout) and on a backend (qtensor.c).
 */
#ifndef GPTQ_FORMAT_FORMAT_H
#define GPTQ_FORMAT_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "../internal.h"

/* ------------------------------------------------------------------ */
/* The tables                                                          */
/* ------------------------------------------------------------------ */

typedef struct gptq_format_traits {
    gptq_format id;
    const char *quant_method;      /* quantization_config "quant_method" */
    const char *name;              /* its "checkpoint_format" (older: "format") */
    /* A field stores z - zero_offset; a reader adds it back. So a zero
     * below zero_offset has no field: v1 cannot store a zero of 0. */
    int zero_offset;
} gptq_format_traits;

/* The row of fmt; NULL when fmt is neither GPTQ_FORMAT_V1 nor V2. */
const gptq_format_traits *gptq_format_get(gptq_format fmt);
/* The row whose name is `name` ("gptq", "gptq_v2"); NULL for any other. */
const gptq_format_traits *gptq_format_by_name(const char *name);

/* The tensors of one packed linear, "<prefix>.<suffix>" (both formats). */
typedef enum gptq_tensor_kind {
    GPTQ_T_QWEIGHT, /* (K*bits/32, N) i32 */
    GPTQ_T_QZEROS,  /* (ngroups, N*bits/32) i32 */
    GPTQ_T_SCALES,  /* (ngroups, N) f16 */
    GPTQ_T_G_IDX,   /* (K) i32; a reader may find it absent: k / G */
    GPTQ_T_BIAS,    /* (N) f16, when the linear has one */
    GPTQ_T_COUNT
} gptq_tensor_kind;

extern const char *const gptq_tensor_suffix[GPTQ_T_COUNT];

/* "<prefix>.<suffix of t>" into buf[size] ("<suffix>" for an empty or NULL
 * prefix); returns buf. */
char *gptq_tensor_name(char *buf, size_t size, const char *prefix, gptq_tensor_kind t);

/* One bit width. Values are one little-endian bit stream along the packed
 * dimension, so K*bits and N*bits must fill whole 32-bit words: K and N
 * multiples of 32/bits values a word, and of 32 for 3 bits (32 values in 3
 * words, two of them straddling a word boundary). */
typedef struct gptq_packing {
    int bits;
    int mult; /* K and N are multiples of this: 32 / gcd(bits, 32) */
} gptq_packing;

/* The row for bits; NULL when the format does not pack that width. */
const gptq_packing *gptq_packing_of(int64_t bits);

/* ------------------------------------------------------------------ */
/* The two checks (each with its one message)                          */
/* ------------------------------------------------------------------ */

/* 0 when the format packs bits; else `status` with the message
 * "<what> <bits>: must be 2, 3, 4 or 8" (what: "--bits", "bits =", with
 * the caller's file or function prefixed by gptq_error_prefix). */
int gptq_format_check_bits(int status, const char *what, int64_t bits);
/* 0 when a (rows, cols) = (N, K) weight packs at bits (bits checked first,
 * as above with what "bits ="); else `status` with the message
 * "<N> x <K> (out x in): <b>-bit packing needs both to be positive
 * multiples of <mult>". */
int gptq_format_check_dims(int status, int bits, int64_t rows, int64_t cols);

/* The largest group size any loader's kernel runs, unless the group is
 * the whole row (group_size == in_features): GPTQModel's torch and triton
 * kernels list [-1, 16, ..., 1024] and accept another size only when it
 * equals in_features (gptqmodel/nn_modules/qlinear/__init__.py, _validate;
 * torch.py, tritonv2.py SUPPORTS_GROUP_SIZE); its Marlin, ExLlamaV2 and
 * Machete kernels and vLLM's gptq_marlin stop at 128. */
#define GPTQ_LOADER_MAX_GROUP 1024

/* 0 when a checkpoint module of in_features inputs may have group_size
 * (-1, at most GPTQ_LOADER_MAX_GROUP, or in_features); else `status` with
 * a message naming the limit, the kernels and what to use instead. */
int gptq_format_check_group(int status, int64_t group_size, int64_t in_features);

/* ------------------------------------------------------------------ */
/* pack.c (beside the public gptq_pack / unpack / dequantize / matmul)  */
/* ------------------------------------------------------------------ */

/* A packed tensor's shapes, the arrays a call needs, and (with
 * need_scales_gidx) every g_idx inside [0, ngroups); messages start with fn. */
int gptq_packed_check(const char *fn, const gptq_packed *p, gptq_format fmt, int need_qweight,
                      int need_qzeros, int need_scales_gidx);
/* Scales s (ngroups, N) f32 as fp16: GPTQ_ERR_NUMERIC naming the first
 * that is not finite or rounds to 0 there (message starts with fn); *nsub =
 * how many are fp16 subnormals, *maxrel their largest relative rounding
 * (either may be NULL). */
int gptq_scales_fp16_check(const char *fn, const float *s, int64_t ngroups, int64_t N,
                           int64_t *nsub, double *maxrel);
/* Zero points into qzeros words: zeros (ngroups, N) -> qzeros (ngroups,
 * N*bits/32) i32, each row one bit stream storing z - zero_offset (a zero
 * outside [zero_offset, maxq]: GPTQ_ERR_INVALID naming the group and row).
 * N must pack at bits (gptq_format_check_dims). */
int gptq_qzeros_pack(const uint8_t *zeros, int64_t ngroups, int64_t N, int bits, gptq_format fmt,
                     int32_t *qzeros);

/* Linears that read the same input as one: out = the columns of p[0],
 * p[1], .. side by side (out_features the sum), so that out's column
 * c0_j + n is column n of p[j] bit for bit (qweight rows and scales
 * concatenated; the qzeros words too, each p[j]'s N * bits a multiple of
 * 32). Returns 0 and fills out when they can be: the same bits, K, ngroups
 * and g_idx (one act-order permutation: q, k, v of one Hessian have it);
 * else 1 with out untouched and why (a reason, not an error: the caller
 * keeps them apart), or GPTQ_ERR_NOMEM (negative). */
int gptq_packed_concat_cols(const gptq_packed *const *p, int n, gptq_packed *out, char *why,
                            size_t nwhy);

/* ------------------------------------------------------------------ */
/* qtensor.c: packed tensors on a backend                              */
/* ------------------------------------------------------------------ */

/* The four tensors of a gptq_packed in buffers of one backend, and the
 * vtable's view of them (t points into these buffers). */
typedef struct gptq_qdev {
    gptq_buf *qweight, *qzeros, *scales, *g_idx;
    gptq_qtensor t;
} gptq_qdev;

/* Upload p (checked first: shapes, g_idx) as format fmt. with_qweight 0:
 * qweight is not uploaded (the caller's device buffer is put in t.qweight). */
int gptq_qdev_upload(gptq_backend *be, const gptq_packed *p, gptq_format fmt, int with_qweight,
                     gptq_qdev *out);
void gptq_qdev_free(gptq_backend *be, gptq_qdev *q);

#endif /* GPTQ_FORMAT_FORMAT_H */
