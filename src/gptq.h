/*
 * gptq.h — the one public header of libgptq.
 *
 * libgptq quantizes the linear layers of language models with GPTQ
 * (Frantar et al., ICLR 2023) and reads and writes the "gptq" checkpoint
 * format that transformers, vLLM and GPTQModel load.
 *
 * Conventions
 *   - Every function that can fail returns an int status: GPTQ_OK (0) or a
 *     negative gptq_status. gptq_last_error() then holds a message naming
 *     the file, tensor or argument at fault (thread-local).
 *   - The library never calls exit() or abort().
 *   - Matrices are row-major. Shapes are written as comments:
 *     W (rows=out, cols=in), X (n, in), H (in, in).
 *   - Objects behind opaque handles are created by gptq_*_open/new and
 *     released by the matching close/free; free(NULL) is always allowed.
 *
 * ABI rules (what may change without a new SONAME; README "Library")
 *   - Every function declared here is exported from libgptq, and nothing
 *     else: the library is built with -fvisibility=hidden and this header
 *     gives its own declarations default visibility (the pragma below), so
 *     a declaration added anywhere in this file is exported with no mark.
 *   - A struct the caller allocates and the library reads or fills, and
 *     that may grow, begins with `size_t struct_size`, set by its
 *     gptq_*_init(p): a macro over gptq_*_init_sized(p, sizeof *(p)), so
 *     the size is the caller's as it was compiled, and the library writes
 *     its defaults into those bytes only (struct_size = that size). Fields
 *     are only ever appended; the library reads and writes only the fields
 *     that lie inside struct_size and gives later ones their defaults, so a
 *     program built against an older gptq.h keeps working. A binding that
 *     lays the struct out itself calls gptq_*_init_sized with its own size
 *     (the function of the plain name is exported too: it writes the
 *     library's whole struct, right only for the library's sizeof). A struct_size
 *     smaller than the first version of its struct (or 0: not initialised)
 *     is refused with GPTQ_ERR_INVALID. Always call the init function, then
 *     set fields by name.
 *   - Structs without struct_size (gptq_tensor, gptq_st_info,
 *     gptq_quant_config, gptq_layer_result, gptq_packed) are frozen for
 *     this SONAME: a change to one of them bumps it. New settings go into
 *     the versioned structs (gptq_quantize_options embeds gptq_quant_config).
 *   - Enum values and status codes are only ever added.
 */
#ifndef GPTQ_H
#define GPTQ_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Everything declared from here to the matching pop is the exported API
 * (the library itself is compiled with -fvisibility=hidden). */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define GPTQ_VERSION_MAJOR 0
#define GPTQ_VERSION_MINOR 1
#define GPTQ_VERSION_PATCH 0
#define GPTQ_VERSION_STRING "0.1.0"

/* ------------------------------------------------------------------ */
/* Status and errors                                                   */
/* ------------------------------------------------------------------ */

typedef enum gptq_status {
    GPTQ_OK = 0,
    GPTQ_ERR_INVALID = -1,     /* bad argument or option */
    GPTQ_ERR_IO = -2,          /* open/read/write/rename failed */
    GPTQ_ERR_FORMAT = -3,      /* malformed file contents */
    GPTQ_ERR_NOMEM = -4,       /* allocation failed (host or device) */
    GPTQ_ERR_NUMERIC = -5,     /* NaN/Inf input, matrix not positive definite */
    GPTQ_ERR_UNSUPPORTED = -6, /* valid but not implemented (dtype, arch, op) */
    GPTQ_ERR_BACKEND = -7,     /* backend missing, incompatible or failed */
    GPTQ_ERR_SHAPE = -8,       /* tensor shapes do not agree */
    GPTQ_ERR_CANCELLED = -9,   /* a progress callback asked to stop (nothing was written) */
} gptq_status;

/* Name of a status code ("invalid argument", ...). */
const char *gptq_status_str(int status);
/* Message of the last failure on this thread ("" when none). */
const char *gptq_last_error(void);
/* Clear the message of this thread. */
void gptq_clear_error(void);

const char *gptq_version(void);
/* Monotonic clock in seconds (for timings). */
double gptq_now_seconds(void);

/* Threads of the CPU work from now on, n in [1, GPTQ_MAX_THREADS]: the
 * OpenMP threads of the CPU backend's parallel loops (omp_set_num_threads)
 * and OpenBLAS's own thread count (openblas_set_num_threads), which the CPU
 * backend keeps at 1 inside its tiles so that the results do not depend on
 * n. Without a call: OMP_NUM_THREADS, else every core. GPTQ_ERR_INVALID
 * outside the range; GPTQ_ERR_UNSUPPORTED for n > 1 in a build without
 * OpenMP. */
#define GPTQ_MAX_THREADS 1024
int gptq_set_threads(int n);

/* ------------------------------------------------------------------ */
/* Host tensors                                                        */
/* ------------------------------------------------------------------ */

typedef enum gptq_dtype {
    GPTQ_F32 = 0,
    GPTQ_F16,
    GPTQ_BF16,
    GPTQ_I32,
    GPTQ_I64,
    GPTQ_F64,
    GPTQ_I16,
    GPTQ_I8,
    GPTQ_U8,
    GPTQ_BOOL,
    GPTQ_DTYPE_COUNT
} gptq_dtype;

#define GPTQ_MAX_DIMS 8

/* A dense host tensor. `data` is owned when `owned` is non-zero. */
typedef struct gptq_tensor {
    gptq_dtype dtype;
    int ndim;
    int64_t shape[GPTQ_MAX_DIMS];
    void *data;
    int owned;
} gptq_tensor;

size_t gptq_dtype_size(gptq_dtype dt);
/* Safetensors name of a dtype ("F32", "BF16", ...). */
const char *gptq_dtype_name(gptq_dtype dt);
/* Parse a safetensors dtype name; returns GPTQ_ERR_UNSUPPORTED if unknown. */
int gptq_dtype_from_name(const char *name, gptq_dtype *out);

int64_t gptq_tensor_numel(const gptq_tensor *t);
size_t gptq_tensor_nbytes(const gptq_tensor *t);
/* Allocate a zero-filled tensor. */
int gptq_tensor_alloc(gptq_tensor *t, gptq_dtype dt, int ndim, const int64_t *shape);
void gptq_tensor_free(gptq_tensor *t);

/* Element conversions (round-to-nearest-even for narrowing). */
float gptq_f16_to_f32(uint16_t h);
uint16_t gptq_f32_to_f16(float f);
float gptq_bf16_to_f32(uint16_t h);
uint16_t gptq_f32_to_bf16(float f);
/* Convert n elements of dtype `dt` (F32, F16, BF16) to f32. */
int gptq_convert_to_f32(float *dst, const void *src, gptq_dtype dt, int64_t n);

/* ------------------------------------------------------------------ */
/* Safetensors                                                         */
/* ------------------------------------------------------------------ */

typedef struct gptq_st_file gptq_st_file;     /* read-only, mmap'd */
typedef struct gptq_st_writer gptq_st_writer; /* streamed, atomic */

typedef struct gptq_st_info {
    const char *name;     /* valid while the file is open */
    gptq_dtype dtype;
    int ndim;
    int64_t shape[GPTQ_MAX_DIMS];
    const void *data;     /* points into the mapping */
    size_t nbytes;
} gptq_st_info;

/* Open and validate a .safetensors file: header length, JSON, every
 * dtype/shape/offset, offsets inside the file, no overlap, no gaps. */
int gptq_st_open(const char *path, gptq_st_file **out);
void gptq_st_close(gptq_st_file *f);
const char *gptq_st_path(const gptq_st_file *f);
int gptq_st_count(const gptq_st_file *f);
/* i-th tensor in file order (by data offset). */
int gptq_st_get(const gptq_st_file *f, int i, gptq_st_info *info);
/* Returns GPTQ_ERR_INVALID with a message when the name is absent. */
int gptq_st_find(const gptq_st_file *f, const char *name, gptq_st_info *info);
/* __metadata__ string value, or NULL. */
const char *gptq_st_metadata(const gptq_st_file *f, const char *key);
/* Copy a F32/F16/BF16 tensor into a new F32 host tensor. */
int gptq_st_read_f32(const gptq_st_file *f, const char *name, gptq_tensor *out);

/* Writer: declare every tensor, then write their bytes in declaration
 * order (in one or several chunks each), then commit. Data goes to a
 * temporary file beside `path`, renamed into place by commit; abort (or
 * any failure) removes it. Nothing at `path` changes before commit. */
int gptq_st_writer_open(const char *path, gptq_st_writer **out);
int gptq_st_writer_metadata(gptq_st_writer *w, const char *key, const char *value);
int gptq_st_writer_declare(gptq_st_writer *w, const char *name, gptq_dtype dt,
                           int ndim, const int64_t *shape);
int gptq_st_writer_write(gptq_st_writer *w, const void *data, size_t nbytes);
int gptq_st_writer_commit(gptq_st_writer *w); /* frees w */
void gptq_st_writer_abort(gptq_st_writer *w); /* frees w */

/* Convenience: write a whole set of host tensors atomically. */
int gptq_st_save(const char *path, int n, const char *const *names, const gptq_tensor *tensors);

/* ------------------------------------------------------------------ */
/* Backends                                                            */
/* ------------------------------------------------------------------ */

typedef struct gptq_backend gptq_backend;

/* "cpu" (built in), another name ("hip": libgptq-hip.so looked up in
 * $GPTQ_BACKEND_PATH, then beside the library, then the install dir), or a
 * path to a plugin (contains '/'). Clear errors for missing, too old or
 * broken plugins. */
int gptq_backend_open(const char *name_or_path, gptq_backend **out);
void gptq_backend_close(gptq_backend *be);
const char *gptq_backend_name(const gptq_backend *be);
/* Peak device memory in use (bytes, the whole device's total - free) seen so
 * far, sampled after every allocation the library made on this backend, and
 * the device's total. GPTQ_ERR_UNSUPPORTED (and zeros) for backends that do
 * not report device memory (the CPU backend) or before any allocation. */
int gptq_backend_memory(const gptq_backend *be, size_t *peak_used, size_t *total);

/* ------------------------------------------------------------------ */
/* Quantization                                                        */
/* ------------------------------------------------------------------ */

typedef enum gptq_method { GPTQ_METHOD_GPTQ = 0, GPTQ_METHOD_RTN = 1 } gptq_method;

typedef struct gptq_quant_config {
    int bits;               /* 2, 3, 4, 8 */
    int group_size;         /* -1 (one group per row) or a power of two >= 16 */
    int sym;                /* 1: symmetric grid, zero = 2^(bits-1) */
    int desc_act;           /* act-order: columns by diag(H) descending */
    int static_groups;      /* grids from the original W before the solve */
    int mse;                /* grid search shrinking the range */
    float mse_norm;         /* error norm of the search (2.4) */
    int mse_grid;           /* steps of the search (100) */
    float mse_maxshrink;    /* largest shrink (0.8) */
    float damp_percent;     /* lambda = damp_percent * mean(diag H), in [0, 1) */
    float damp_auto_increment; /* added on a failed Cholesky (0.01), in [0, 1] */
    float damp_max;         /* give up above this damp_percent (1.0) */
    int block_size;         /* lazy-batch block B, a power of two <= 65536 (128) */
    gptq_method method;
    /* checked before every damp retry and every block of the solve:
     * non-zero stops it with GPTQ_ERR_INVALID "interrupted" (NULL: never) */
    const volatile sig_atomic_t *interrupt;
    /* group-aware act-order (GAR, GPTQModel's act_group_aware): groups of
     * group_size columns solved in order of their largest diag(H), columns
     * inside a group by diag(H) descending; g_idx stays k / group_size, so
     * the checkpoint is a plain (non-act-order) one. -1 (the default):
     * on when desc_act is off, group_size is not -1 and the method is GPTQ,
     * as GPTQModel (5.0 on) defaults it; 1: on, refused with desc_act or
     * group_size -1; 0: off (the paper's column order). Last, so the
     * fields before keep their offsets (the Python bindings mirror them). */
    int act_group_aware;
} gptq_quant_config;

/* At most this many damp retries per layer: the try at damp_percent, then
 * damp_percent + k * damp_auto_increment (in double) for k = 1, 2, ...,
 * while the Cholesky fails, the damp stays <= damp_max and the retry
 * changes lambda in float. The defaults (0.01 + k * 0.01 up to 1.0) need 99. */
#define GPTQ_DAMP_MAX_RETRIES 100

/* Defaults: bits 4, group 128, sym and no act-order (as GPTQModel and
 * transformers), act_group_aware -1 (GAR wherever it applies, as GPTQModel
 * 5.0 on), damp 0.01 (the paper and AutoGPTQ), increment 0.01 (as
 * GPTQModel), block 128, min/max grid. */
void gptq_quant_config_default(gptq_quant_config *c);
/* 1 when the solve uses GAR's order: method GPTQ and act_group_aware 1,
 * or -1 with desc_act off and group_size not -1; else 0. */
int gptq_quant_config_act_group_aware(const gptq_quant_config *c);
/* Validate; on failure the message names the option. */
int gptq_quant_config_check(const gptq_quant_config *c, int64_t rows, int64_t cols);

/* Hessian accumulator H = (2/n) * sum_b Xb^T Xb, n counted in rows of X
 * (tokens), batches in the order given. */
typedef struct gptq_hessian gptq_hessian;
int gptq_hessian_new(gptq_backend *be, int64_t cols, gptq_hessian **out);
/* X (n, cols) host f32; rejects NaN/Inf. */
int gptq_hessian_add(gptq_hessian *h, const float *X, int64_t n);
int64_t gptq_hessian_count(const gptq_hessian *h);
/* H (cols, cols) host f32, the finished Hessian. */
int gptq_hessian_get(gptq_hessian *h, float *H);
void gptq_hessian_free(gptq_hessian *h);

typedef struct gptq_layer_result {
    int64_t rows, cols, ngroups;
    int bits;
    int group_size;          /* as used: cols when -1 was asked */
    uint8_t *codes;          /* (rows, cols) integer codes, original column order */
    float *scales;           /* (ngroups, rows) */
    int32_t *zeros;          /* (ngroups, rows) integer zero points (v2: as is) */
    int32_t *g_idx;          /* (cols) group of each input column */
    int32_t *perm;           /* (cols) quantization order: perm[i] = column */
    float *dequant;          /* (rows, cols) scales*(codes - zeros) */
    double loss;             /* sum (w - w_hat)^2 / U_jj^2 / 2 */
    double out_rel_err;      /* ||X W^T - X W_hat^T|| / ||X W^T|| (via H); W_hat with
                                the f32 scales, or with the fp16 scales the
                                checkpoint stores when some of those are subnormal */
    float damp_used;         /* damp_percent that succeeded */
    int damp_retries;
    int dead_cols;
    double seconds_solve;
    /* damp_percent of each Cholesky tried, in order: [0 .. damp_retries] */
    float damps_tried[GPTQ_DAMP_MAX_RETRIES + 1];
    /* The checkpoint stores the scales in fp16. A scale that rounds to 0
     * there fails the solve (GPTQ_ERR_NUMERIC); one below 2^-14 (6.1e-5)
     * becomes an fp16 subnormal and keeps fewer than 11 significant bits: */
    int64_t scales_subnormal;  /* how many */
    double scales_fp16_rel_err; /* largest |fp16(s) - s| / s among them (0: none) */
    double out_rel_err_f32;    /* out_rel_err with the f32 scales (the same value when no
                                  scale is subnormal; NaN without a Hessian) */
} gptq_layer_result;

/* Quantize one layer. W (rows, cols) f32, H (cols, cols) f32 finished
 * Hessian (ignored for RTN; may be NULL then). */
int gptq_quantize_layer(gptq_backend *be, const float *W, int64_t rows, int64_t cols,
                        const float *H, const gptq_quant_config *cfg,
                        gptq_layer_result *res);
/* The same with the Hessian as gptq_hessian_add left it (H = 2/n sum X^T X,
 * on h's backend, which must be be): the result is the same bits as
 * gptq_hessian_get + gptq_quantize_layer. H never comes to the host (it is
 * finished where it was accumulated): two transfers of cols^2 floats fewer
 * per layer on a GPU. RTN ignores h. */
int gptq_quantize_layer_h(gptq_backend *be, const float *W, int64_t rows, int64_t cols,
                          gptq_hessian *h, const gptq_quant_config *cfg, gptq_layer_result *res);
void gptq_layer_result_free(gptq_layer_result *res);

/* ------------------------------------------------------------------ */
/* Checkpoint tensors ("gptq" format)                                  */
/* ------------------------------------------------------------------ */

/* Zero-point convention of the packed qzeros: v1 ("gptq") stores z - 1,
 * v2 ("gptq_v2") stores z. */
typedef enum gptq_format { GPTQ_FORMAT_V1 = 1, GPTQ_FORMAT_V2 = 2 } gptq_format;

typedef struct gptq_packed {
    int bits;
    int64_t in_features, out_features, ngroups; /* K, N, ceil(K/G) */
    int32_t *qweight;  /* (K*bits/32, N) */
    int32_t *qzeros;   /* (ngroups, N*bits/32) */
    uint16_t *scales;  /* (ngroups, N) fp16 bits */
    int32_t *g_idx;    /* (K) */
} gptq_packed;

/* Pack a layer result. V1 needs every zero >= 1: returns GPTQ_ERR_INVALID
 * naming the group otherwise (use V2, or sym). 3 bits needs K and N
 * multiples of 32. A scale that is not finite or rounds to 0 in fp16:
 * GPTQ_ERR_NUMERIC naming the group and row. */
int gptq_pack(const gptq_layer_result *r, gptq_format fmt, gptq_packed *out);
/* Unpack codes (K, N) [note: transposed, as stored] and zeros (ngroups, N). */
int gptq_unpack(const gptq_packed *p, gptq_format fmt, uint8_t *codes_kn, int32_t *zeros);
/* W (N, K) f32 = scales[g_idx[k], n] * (q[k, n] - z[g_idx[k], n]). */
int gptq_dequantize(const gptq_packed *p, gptq_format fmt, float *W);
/* Reference W4A16 (any bits) matmul: Y (M, N) = X (M, K) * W^T + bias,
 * with X and bias rounded to fp16 as a kernel would see them and products
 * accumulated in f32 in k order. bias may be NULL. */
int gptq_matmul_ref(const gptq_packed *p, gptq_format fmt, const float *X, int64_t M,
                    const float *bias, float *Y);
void gptq_packed_free(gptq_packed *p);

/* The same two on a backend's device (its dequantize and matmul_q ops): host
 * in, host out, the same bits as gptq_dequantize and gptq_matmul_ref (the
 * backend contract makes both exact). For kernel developers: the reference
 * on the GPU, at sizes where the host loop is slow. */
int gptq_dequantize_on(gptq_backend *be, const gptq_packed *p, gptq_format fmt, float *W);
int gptq_matmul_on(gptq_backend *be, const gptq_packed *p, gptq_format fmt, const float *X,
                   int64_t M, const float *bias, float *Y);
/* A fast A16 matmul of the backend (its matmul_q_fast: the CPU backend's
 * SIMD kernels read the packed weight directly): the same X and bias
 * roundings as gptq_matmul_ref, the products summed in another order, so
 * each output lies within 2 gamma(K + 2) (sum_k |xh_k w_k| + |bh|) of the
 * reference's, gamma(j) = j 2^-24 / (1 - j 2^-24). *impl (may be NULL) gets
 * the code path that ran ("generic", "avx2", "avx512" on the CPU; the
 * environment variable GPTQ_CPU_ISA forces one). GPTQ_ERR_UNSUPPORTED when
 * the backend has none. */
int gptq_matmul_fast_on(gptq_backend *be, const gptq_packed *p, gptq_format fmt, const float *X,
                        int64_t M, const float *bias, float *Y, const char **impl);

/* ------------------------------------------------------------------ */
/* The whole job: open a model, quantize it, evaluate it               */
/* ------------------------------------------------------------------ */

/* A Hugging Face model folder opened on a backend: config.json (the
 * families README lists), safetensors weights (memory-mapped, checked
 * against the architecture), tokenizer.json. Only local folders are read:
 * a hub id ("meta-llama/Llama-3.2-1B") that is no folder is refused with
 * how to download one. The backend is borrowed: it must outlive the model. */
typedef struct gptq_model gptq_model;
int gptq_model_open(const char *dir, gptq_backend *be, gptq_model **out);
void gptq_model_close(gptq_model *m);

/* What a progress callback is told (versioned: see the ABI rules). */
typedef struct gptq_progress {
    size_t struct_size;
    const char *stage;       /* quantize: "calibration", "embed", "hessian", "quantize",
                                "forward", "lm_head", "finish"; evaluate: "eval" */
    int layer, nlayers;      /* decoder layer being worked on (nlayers when finishing;
                                0 and 0 for evaluate) */
    int64_t done, total;     /* quantize: modules finished, of all; evaluate: windows */
    double fraction;         /* estimated share of the job done, 0..1 */
    double elapsed;          /* seconds since the job started */
    double metric;           /* evaluate: the running perplexity; quantize: 0 */
    const char *message;     /* a line for the user, or NULL (quantize, stage
                                "calibration": what was read and how many windows) */
} gptq_progress;

/* Return 0 to go on, non-zero to cancel the job: it stops at the next check
 * (between modules and forward chunks, inside a layer's solve between
 * blocks; between evaluation batches) and returns GPTQ_ERR_CANCELLED, with
 * nothing written (the quantize output folder is as it was). */
typedef int (*gptq_progress_fn)(void *user, const gptq_progress *p);

/* One quantized module (versioned), as GPTQModel reports one. */
typedef struct gptq_module_report {
    size_t struct_size;
    int layer, index;        /* decoder layer (-1: the lm_head), linear index in the layer */
    const char *name;        /* "self_attn.q_proj" */
    const char *prefix;      /* "model.layers.3.self_attn.q_proj" */
    int64_t rows, cols;
    int64_t hessian_rows;    /* calibration tokens behind the Hessian (0: RTN) */
    double loss, out_rel_err;
    float damp_used;
    int damp_retries, dead_cols;
    double seconds;          /* this module: solve + pack + write */
    double seconds_solve;
    int bits, group_size;
    int64_t scales_subnormal;   /* scales stored as fp16 subnormals (gptq_layer_result) */
    double scales_fp16_rel_err; /* their largest relative rounding */
    double out_rel_err_f32;     /* out_rel_err with the f32 scales */
    int64_t zero0;           /* (group, row) zero points equal to 0 */
    int64_t done, total;     /* modules finished (this one included), of all */
} gptq_module_report;

/* gptq_quantize_model_dir's settings (versioned: gptq_quantize_options_init
 * first). The names are `gptq quantize`'s options; README "Commands". */
typedef struct gptq_quantize_options {
    size_t struct_size;
    gptq_quant_config q;        /* gptq_quant_config_default */
    /* calibration (ignored by RTN): plain UTF-8 text, or JSON lines with a
     * "text" field (.jsonl or a first character '{') */
    const char *calib_path;
    size_t calib_bytes;         /* read at most this much of it (0: all) */
    int64_t nsamples;           /* windows (128) */
    int64_t seqlen;             /* tokens per window (0: 2048, or the model's
                                   max_position_embeddings when smaller) */
    uint64_t seed;              /* window positions (0) */
    int true_sequential;        /* 1 */
    int format;                 /* 0 auto, GPTQ_FORMAT_V1 or GPTQ_FORMAT_V2 */
    int64_t batch_tokens;       /* tokens per forward pass (0: auto) */
    uint64_t max_shard_bytes;   /* 0: 4 GB */
    int forward_math;           /* 0 f32, 1 tf32 (a GPU's matrix units) */
    int overwrite;              /* replace an output folder gptq-c did not write */
    int strict;                 /* fail on a module the format cannot pack */
    int lm_head;                /* quantize the lm_head too */
    /* GPTQModel's per-module rules: a JSON object (inline when it starts
     * with '{', else a file's path), or NULL */
    const char *dynamic;
    gptq_progress_fn on_progress;   /* optional; non-zero cancels */
    void (*on_module)(void *user, const gptq_module_report *r);   /* optional */
    /* optional: a module left unquantized (prefix), and why; before any work */
    void (*on_skip)(void *user, const char *prefix, const char *why);
    void *user;
} gptq_quantize_options;

void gptq_quantize_options_init_sized(gptq_quantize_options *o, size_t size);
void gptq_quantize_options_init(gptq_quantize_options *o);
#define gptq_quantize_options_init(o) gptq_quantize_options_init_sized((o), sizeof *(o))

/* What a finished quantization did (versioned: gptq_quantize_summary_init). */
typedef struct gptq_quantize_summary {
    size_t struct_size;
    gptq_format format;          /* zero-point format written */
    int nshards, nmodules, nskipped;
    int64_t zero0;               /* zero points equal to 0 over the model */
    uint64_t params;             /* elements of all source tensors */
    uint64_t bytes_in, bytes_out;   /* all tensors, source and checkpoint */
    uint64_t qweights;           /* elements of the quantized linears' weights */
    uint64_t qbytes;             /* their qweight + qzeros + scales + g_idx bytes */
    uint64_t qsrc_bytes;         /* their weights' bytes in the source */
    int64_t nsamples, seqlen;    /* calibration windows used (0 for RTN) */
    double seconds_total, seconds_forward, seconds_hessian, seconds_solve, seconds_write;
} gptq_quantize_summary;

void gptq_quantize_summary_init_sized(gptq_quantize_summary *s, size_t size);
void gptq_quantize_summary_init(gptq_quantize_summary *s);
#define gptq_quantize_summary_init(s) gptq_quantize_summary_init_sized((s), sizeof *(s))

/* Quantize the model folder model_dir into the checkpoint folder out_dir
 * on backend be: what `gptq quantize` does. out_dir is written into a
 * temporary folder renamed into place at the end, after the output policy
 * (README "Output safety", with o->overwrite) was checked before any work
 * and again before the rename; on any failure or cancel nothing changes at
 * out_dir. summary may be NULL. */
int gptq_quantize_model_dir(gptq_backend *be, const char *model_dir, const char *out_dir,
                            const gptq_quantize_options *o, gptq_quantize_summary *summary);

/* Perplexity settings (versioned: gptq_eval_options_init). */
typedef struct gptq_eval_options {
    size_t struct_size;
    int64_t seqlen;             /* tokens per window (0: 2048, or the model's
                                   max_position_embeddings when smaller) */
    int64_t max_windows;        /* score only the first N windows (0: all) */
    int64_t batch;              /* windows per forward pass (0: 8192 tokens' worth) */
    int forward_math;           /* 0 f32, 1 tf32 */
    gptq_progress_fn on_progress;   /* optional, after each batch; non-zero cancels */
    void *user;
} gptq_eval_options;

void gptq_eval_options_init_sized(gptq_eval_options *o, size_t size);
void gptq_eval_options_init(gptq_eval_options *o);
#define gptq_eval_options_init(o) gptq_eval_options_init_sized((o), sizeof *(o))

typedef struct gptq_eval_result {
    size_t struct_size;
    double ppl;                  /* exp(nll_sum / predicted) */
    double nll_sum;
    int64_t tokens;              /* of the whole text */
    int64_t windows, predicted, seqlen;
    double seconds;              /* of the forward passes */
} gptq_eval_result;

void gptq_eval_result_init_sized(gptq_eval_result *r, size_t size);
void gptq_eval_result_init(gptq_eval_result *r);
#define gptq_eval_result_init(r) gptq_eval_result_init_sized((r), sizeof *(r))

/* Perplexity of m on text (len bytes of UTF-8), as `gptq eval` and the GPTQ
 * papers measure it: the whole text encoded with the model folder's
 * tokenizer.json, no special tokens added, cut into non-overlapping windows
 * of seqlen tokens (the remainder dropped), ppl = exp(mean NLL of the
 * seqlen - 1 predicted tokens of every window). A floating-point model or a
 * GPTQ checkpoint (dequantized to f32). */
int gptq_evaluate(gptq_model *m, const char *text, size_t len, const gptq_eval_options *o,
                  gptq_eval_result *r);

/* ------------------------------------------------------------------ */
/* Text generation                                                     */
/* ------------------------------------------------------------------ */

/* A model folder (fp or GPTQ checkpoint: ours, GPTQModel's, AutoGPTQ's)
 * kept on a backend with its tokenizer for generating text, one sequence
 * at a time, with a KV cache: the prompt goes through the model in one
 * batch (prefill), then every new token alone against the cached keys and
 * values (step). Typical use:
 *   gptq_generator_open(dir, be, &g);
 *   gptq_generator_encode(g, text, len, &ids, &n);   (special tokens added
 *                                                     as tokenizer(text))
 *   gptq_generator_prefill(g, ids, n, n + max_new);
 *   loop: gptq_generator_sample(g, &s, &id); stop at gptq_generator_is_eos;
 *         gptq_generator_step(g, id) (the last token: gptq_generator_append);
 *         gptq_generator_stream(g, &txt, &len);
 * The model needs the backend's attention_kv op; a backend without it is
 * refused by open with GPTQ_ERR_UNSUPPORTED naming it. */
typedef struct gptq_generator gptq_generator;

/* Sampling, applied in transformers' order to the next-token logits:
 * repetition penalty (RepetitionPenaltyLogitsProcessor: each distinct id of
 * the prompt and the generated tokens gets l / penalty when l > 0, l *
 * penalty otherwise), then temperature 0: the arg max (the lowest id among
 * equal maxima, as torch.argmax); else l / temperature, top-k (ids below
 * the k-th largest value dropped, ties kept), top-p (the most likely ids
 * whose probabilities, summed in descending order, first reach top_p;
 * at least one), and a draw from the softmax of what is left (double).
 * Draws come from our own PRNG: xoshiro256** seeded through splitmix64
 * with `seed`, one 53-bit uniform per token, so a seed gives the same
 * tokens on every machine and backend where the logits are the same.
 * Versioned (the ABI rules above): gptq_sampling_init first. */
typedef struct gptq_sampling {
    size_t struct_size;    /* set by gptq_sampling_init */
    double temperature;    /* >= 0; 0: greedy (default) */
    int64_t top_k;         /* >= 0; 0: off (default) */
    double top_p;          /* in (0, 1]; 1: off (default) */
    double repeat_penalty; /* > 0; 1: off (default) */
    uint64_t seed;         /* default 0 */
} gptq_sampling;
void gptq_sampling_init_sized(gptq_sampling *s, size_t size);
void gptq_sampling_init(gptq_sampling *s);
#define gptq_sampling_init(s) gptq_sampling_init_sized((s), sizeof *(s))
/* GPTQ_ERR_INVALID naming the field for a value outside its range. */
int gptq_sampling_check(const gptq_sampling *s);

/* How generation runs a GPTQ-packed linear (a checkpoint's qweight, or a
 * compressed-tensors weight_packed). */
typedef enum gptq_linears {
    /* the backend's fast A16 matmul when it has one (matmul_q_fast: the
     * packed tensors stay on the backend, activations rounded to fp16 as
     * they are read, products summed in the kernel's order), else F32 */
    GPTQ_LINEARS_AUTO = 0,
    /* matmul_q_fast; a backend without it, or a model without a packed
     * linear, is refused (GPTQ_ERR_UNSUPPORTED) */
    GPTQ_LINEARS_FAST = 1,
    /* dequantized to f32 once and multiplied by the backend's gemm: the
     * forward of gptq_evaluate, the same logits bit for bit */
    GPTQ_LINEARS_F32 = 2,
} gptq_linears;

/* Versioned (the ABI rules above): gptq_generator_options_init first. */
typedef struct gptq_generator_options {
    size_t struct_size;   /* set by gptq_generator_options_init */
    gptq_linears linears; /* default GPTQ_LINEARS_AUTO */
    /* appended after the first version: 1 (default) runs the
     * fast linears of one input (q, k, v; gate, up) as one joined packed
     * tensor, one matmul_q_fast for the group; 0 keeps them apart */
    int join_linears;
} gptq_generator_options;
void gptq_generator_options_init_sized(gptq_generator_options *o, size_t size);
void gptq_generator_options_init(gptq_generator_options *o);
#define gptq_generator_options_init(o) gptq_generator_options_init_sized((o), sizeof *(o))

/* Open model_dir (config.json, weights, tokenizer.json, and the EOS ids of
 * generation_config.json or else config.json: eos_token_id, an int or a
 * list) on backend be (borrowed). gptq_generator_open uses the defaults of
 * gptq_generator_options; o NULL means the same. */
int gptq_generator_open(const char *model_dir, gptq_backend *be, gptq_generator **out);
int gptq_generator_open_with(const char *model_dir, gptq_backend *be,
                             const gptq_generator_options *o, gptq_generator **out);
void gptq_generator_close(gptq_generator *g);
/* Encode text with the special tokens the tokenizer adds (as transformers'
 * tokenizer(text)); *ids malloc'd (free()). */
int gptq_generator_encode(gptq_generator *g, const char *text, size_t len, int32_t **ids,
                          int64_t *n);
/* max_position_embeddings, the vocabulary size V. */
int64_t gptq_generator_max_positions(const gptq_generator *g);
int64_t gptq_generator_vocab(const gptq_generator *g);
/* Upload the model (every layer, its GPTQ linears as gptq_linears says;
 * the embedding and the head) and a KV cache of cap positions (1 .. max_position_embeddings)
 * now, so that prefill times only the prompt; prefill does it when not
 * done (weights once per generator, the cache grown when too small). */
int gptq_generator_reserve(gptq_generator *g, int64_t cap);
/* Start a sequence: the cache holds cap positions (n <= cap <=
 * max_position_embeddings), the n prompt ids (n >= 1) go through the model
 * in one batch. The sampler's PRNG is reseeded at the next sample. */
int gptq_generator_prefill(gptq_generator *g, const int32_t *ids, int64_t n, int64_t cap);
/* Append token id (as sampled, or forced) and compute the next logits
 * (with those of the tokens appended by gptq_generator_append before it,
 * in one batch). */
int gptq_generator_step(gptq_generator *g, int32_t id);
/* Append token id without running the model: for the last token of a
 * generation, whose logits nobody reads (the text and the stream include
 * it). Its keys and values are computed by the next step, with that
 * step's token; until then gptq_generator_sample refuses (the logits are
 * those of the position before it). */
int gptq_generator_append(gptq_generator *g, int32_t id);
/* The next-token logits (V), valid until the next prefill/step; tokens in
 * the sequence so far (prompt + steps). */
const float *gptq_generator_logits(const gptq_generator *g);
int64_t gptq_generator_length(const gptq_generator *g);
/* The next token under s (which must pass gptq_sampling_check). */
int gptq_generator_sample(gptq_generator *g, const gptq_sampling *s, int32_t *id);
/* 1 when id is one of the model's EOS ids. */
int gptq_generator_is_eos(const gptq_generator *g, int32_t id);
/* Streaming: the text of the generated tokens that became final since the
 * last call (as tokenizers' DecodeStream, with the prompt as its context:
 * nothing is returned while the text ends in an incomplete UTF-8 sequence
 * or could still change; special tokens skipped). *text points into g
 * (valid until the next call), *len its bytes (0: nothing new). With
 * flush = 1, whatever is left of the final text (the end of a sequence). */
int gptq_generator_stream(gptq_generator *g, int flush, const char **text, size_t *len);
/* The whole generated text: decode(prompt + generated) past
 * decode(prompt), special tokens skipped (malloc'd, NUL-terminated). */
int gptq_generator_text(gptq_generator *g, char **text, size_t *len);

/* What the model kept on the backend runs on, once it is there (after
 * gptq_generator_reserve or the first prefill; zeros before).
 * Versioned (the ABI rules above): gptq_generator_stats_init first. */
typedef struct gptq_generator_stats {
    size_t struct_size;     /* set by gptq_generator_stats_init */
    int64_t fast_linears;   /* linears on the backend's matmul_q_fast (lm_head included) */
    int64_t f32_linears;    /* linears as f32 weights through gemm (lm_head included) */
    const char *fast_impl;  /* the code path the last matmul_q_fast call named
                               ("avx512", static); NULL before one ran */
    int64_t weight_bytes;   /* the model on the backend: linears as kept (packed or
                               f32), biases, norms, embedding tables, head */
    int64_t kv_bytes;       /* the key and value caches */
    int64_t joined_linears; /* of fast_linears, those run joined with their group (appended) */
} gptq_generator_stats;
void gptq_generator_stats_init_sized(gptq_generator_stats *s, size_t size);
void gptq_generator_stats_init(gptq_generator_stats *s);
#define gptq_generator_stats_init(s) gptq_generator_stats_init_sized((s), sizeof *(s))
int gptq_generator_get_stats(const gptq_generator *g, gptq_generator_stats *s);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif /* GPTQ_H */
