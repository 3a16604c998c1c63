/*
 * hip_backend.hip — the HIP backend plugin (libgptq-hip.so): its table, its
 * context, device memory and error reporting. The arithmetic lives in
 * hip_linalg.hip (GEMM, Hessian, Cholesky inverse), hip_quant.hip (grids,
 * the fused GPTQ block), hip_forward.hip (the model's forward ops) and
 * hip_w4a16.hip (matmul_q_fast). The plugin exports one symbol, gptq_backend_entry.
 *
 * Memory: one hipMalloc per buffer, zero-filled on the backend's stream.
 * upload/download are synchronous for the caller (the host memory may be
 * reused or read when they return); copy and every kernel are queued on the
 * stream in order. A failed allocation says how much was asked for and how
 * much the device has free, and returns GPTQ_ERR_NOMEM.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hip_impl.h"

/* ------------------------------------------------------------------------
 * errors
 * ---------------------------------------------------------------------- */

int hip_fail(hip_ctx *c, int status, const char *fmt, ...)
{
    if (c) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, sizeof c->err, fmt, ap);
        va_end(ap);
    }
    return status;
}

int hip_fail_rt(hip_ctx *c, hipError_t e, const char *what)
{
    (void)hipGetLastError(); /* clear, so the next check is not blamed */
    int st = (e == hipErrorOutOfMemory) ? GPTQ_ERR_NOMEM : GPTQ_ERR_BACKEND;
    return hip_fail(c, st, "%s: %s (%s)", what, hipGetErrorName(e), hipGetErrorString(e));
}

int hip_check_launch(hip_ctx *c, const char *kernel)
{
    hipError_t e = hipGetLastError();
    if (e == hipSuccess) return GPTQ_OK;
    char what[160];
    snprintf(what, sizeof what, "launch of kernel %s failed", kernel);
    return hip_fail_rt(c, e, what);
}

int hip_sync_checked(hip_ctx *c, const char *op)
{
    char what[160];
    snprintf(what, sizeof what, "%s: a queued kernel or copy failed", op);
    HIP_TRY(c, hipStreamSynchronize(c->stream), what);
    hip_flag_t f[HIP_FLAG_COUNT];
    HIP_TRY(c, hipMemcpyAsync(f, c->flags, sizeof f, hipMemcpyDeviceToHost, c->stream),
            "reading the kernels' error words");
    HIP_TRY(c, hipStreamSynchronize(c->stream), "reading the kernels' error words");
    if (f[HIP_FLAG_DEFERRED] != HIP_DEFER_NONE) {
        hip_flag_t code = f[HIP_FLAG_DEFERRED];
        /* report once: clear the word */
        HIP_TRY(c, hipMemsetAsync(c->flags + HIP_FLAG_DEFERRED, 0, sizeof(hip_flag_t), c->stream),
                "clearing the kernels' error word");
        if (code == HIP_DEFER_GIDX)
            return hip_fail(c, GPTQ_ERR_INVALID,
                            "gptq_block: gidx[%llu] = %lld is outside the groups that scale/zero "
                            "hold (the block was skipped; found at %s)",
                            f[HIP_FLAG_DEFER_A], (long long)f[HIP_FLAG_DEFER_B], op);
        if (code == HIP_DEFER_QGIDX)
            return hip_fail(c, GPTQ_ERR_INVALID,
                            "a packed tensor's g_idx[%llu] = %lld is outside its groups (found "
                            "at %s)", f[HIP_FLAG_DEFER_A], (long long)f[HIP_FLAG_DEFER_B], op);
        if (code == HIP_DEFER_INDEX)
            return hip_fail(c, GPTQ_ERR_INVALID,
                            "gather: index %lld (for dst row or column %llu) is outside the "
                            "source (found at %s)", (long long)f[HIP_FLAG_DEFER_B],
                            f[HIP_FLAG_DEFER_A], op);
        if (code == HIP_DEFER_CODE)
            return hip_fail(c, GPTQ_ERR_INVALID,
                            "pack_codes: code %llu at element %llu does not fit the bit width "
                            "(found at %s)", f[HIP_FLAG_DEFER_B], f[HIP_FLAG_DEFER_A], op);
        return hip_fail(c, GPTQ_ERR_BACKEND, "a kernel reported error code %llu (found at %s)",
                        code, op);
    }
    return GPTQ_OK;
}

int hip_check_view(hip_ctx *c, const char *op, const char *what, const gptq_buf *b, size_t off,
                   int64_t rows, int64_t cols, int64_t ld)
{
    if (!b || (!b->ptr && b->nbytes))
        return hip_fail(c, GPTQ_ERR_INVALID, "%s: buffer %s is NULL", op, what);
    if (rows < 0 || cols < 0)
        return hip_fail(c, GPTQ_ERR_INVALID, "%s: %s has bad shape (%lld, %lld)", op, what,
                        (long long)rows, (long long)cols);
    if (ld < (cols > 1 ? cols : 1))
        return hip_fail(c, GPTQ_ERR_INVALID,
                        "%s: %s leading dimension %lld is less than max(1, cols=%lld)", op, what,
                        (long long)ld, (long long)cols);
    if (rows == 0 || cols == 0) return GPTQ_OK;
    size_t nel = b->nbytes / sizeof(float);
    uint64_t avail = off <= nel ? (uint64_t)(nel - off) : 0;
    if (off > nel || (uint64_t)cols > avail ||
        (uint64_t)(rows - 1) > (avail - (uint64_t)cols) / (uint64_t)ld)
        return hip_fail(c, GPTQ_ERR_INVALID,
                        "%s: %s view (%lld x %lld, ld %lld) at element offset %zu runs past the "
                        "buffer (%zu f32 elements)",
                        op, what, (long long)rows, (long long)cols, (long long)ld, off, nel);
    return GPTQ_OK;
}

/* ------------------------------------------------------------------------
 * lifecycle
 * ---------------------------------------------------------------------- */

static int hip_create(void **out)
{
    *out = NULL;
    hip_ctx *c = (hip_ctx *)calloc(1, sizeof *c);
    if (!c) return GPTQ_ERR_NOMEM;
    *out = c; /* the loader reads error(ctx) on failure, then calls destroy */
    int n = 0;
    hipError_t e = hipGetDeviceCount(&n);
    if (e != hipSuccess || n <= 0) {
        (void)hipGetLastError();
        return hip_fail(c, GPTQ_ERR_BACKEND,
                        "no GPU is usable by the HIP backend (device count %d: %s). Check the "
                        "driver, and HIP_VISIBLE_DEVICES / CUDA_VISIBLE_DEVICES",
                        n, e == hipSuccess ? "no devices" : hipGetErrorString(e));
    }
    /* The device the process has selected (device 0 unless the program
     * chose another before opening the backend). */
    HIP_TRY(c, hipGetDevice(&c->device), "hipGetDevice");
    HIP_TRY(c, hipSetDevice(c->device), "hipSetDevice");
    hipDeviceProp_t prop;
    HIP_TRY(c, hipGetDeviceProperties(&prop, c->device), "hipGetDeviceProperties");
    snprintf(c->device_name, sizeof c->device_name, "%s", prop.name);
    HIP_TRY(c, hipDeviceGetAttribute(&c->sm_count, hipDeviceAttributeMultiprocessorCount, c->device),
            "hipDeviceGetAttribute(multiprocessors)");
    HIP_TRY(c, hipDeviceGetAttribute(&c->smem_per_block, hipDeviceAttributeMaxSharedMemoryPerBlock,
                                     c->device),
            "hipDeviceGetAttribute(shared memory per block)");
    HIP_TRY(c, hipStreamCreateWithFlags(&c->stream, hipStreamNonBlocking), "hipStreamCreate");
    void *f = NULL;
    HIP_TRY(c, hipMalloc(&f, HIP_FLAG_COUNT * sizeof(hip_flag_t)), "hipMalloc(error words)");
    c->flags = (hip_flag_t *)f;
    HIP_TRY(c, hipMemsetAsync(c->flags, 0, HIP_FLAG_COUNT * sizeof(hip_flag_t), c->stream),
            "hipMemset(error words)");
    HIP_TRY(c, hipStreamSynchronize(c->stream), "hipStreamSynchronize");
    void *d = NULL;
    HIP_TRY(c, hipMalloc(&d, HIP_DOT_BLOCKS * sizeof(double)), "hipMalloc(dot partials)");
    c->dot_part = (double *)d;
    c->err[0] = '\0';
    return GPTQ_OK;
}

static void hip_destroy(void *ctx)
{
    hip_ctx *c = (hip_ctx *)ctx;
    if (!c) return;
    if (c->stream) (void)hipStreamSynchronize(c->stream);
    if (c->flags) (void)hipFree(c->flags);
    if (c->dot_part) (void)hipFree(c->dot_part);
    if (c->stream) (void)hipStreamDestroy(c->stream);
    (void)hipGetLastError();
    free(c);
}

static const char *hip_error(void *ctx) { return ctx ? ((hip_ctx *)ctx)->err : ""; }

/* ------------------------------------------------------------------------
 * memory
 * ---------------------------------------------------------------------- */

static int hip_mem_info(void *ctx, size_t *free_bytes, size_t *total_bytes)
{
    hip_ctx *c = (hip_ctx *)ctx;
    size_t f = 0, t = 0;
    HIP_TRY(c, hipMemGetInfo(&f, &t), "hipMemGetInfo");
    if (free_bytes) *free_bytes = f;
    if (total_bytes) *total_bytes = t;
    return GPTQ_OK;
}

static int hip_alloc(void *ctx, size_t nbytes, gptq_buf **out)
{
    hip_ctx *c = (hip_ctx *)ctx;
    *out = NULL;
    gptq_buf *b = (gptq_buf *)calloc(1, sizeof *b);
    if (!b) return hip_fail(c, GPTQ_ERR_NOMEM, "out of host memory for a buffer handle");
    void *p = NULL;
    /* hipMalloc(0) may return NULL: keep every buffer a real allocation */
    hipError_t e = hipMalloc(&p, nbytes ? nbytes : 4);
    if (e != hipSuccess) {
        (void)hipGetLastError();
        free(b);
        size_t fr = 0, tot = 0;
        int have = hipMemGetInfo(&fr, &tot) == hipSuccess;
        (void)hipGetLastError();
        int st = (e == hipErrorOutOfMemory) ? GPTQ_ERR_NOMEM : GPTQ_ERR_BACKEND;
        if (have)
            return hip_fail(c, st,
                            "device allocation of %zu bytes (%.1f MiB) failed: %s; %s has %.1f MiB "
                            "free of %.1f MiB",
                            nbytes, (double)nbytes / 1048576.0, hipGetErrorString(e),
                            c->device_name, (double)fr / 1048576.0, (double)tot / 1048576.0);
        return hip_fail(c, st, "device allocation of %zu bytes (%.1f MiB) failed: %s", nbytes,
                        (double)nbytes / 1048576.0, hipGetErrorString(e));
    }
    b->ptr = p;
    b->nbytes = nbytes;
    e = hipMemsetAsync(p, 0, nbytes ? nbytes : 4, c->stream);
    if (e != hipSuccess) {
        (void)hipFree(p);
        free(b);
        return hip_fail_rt(c, e, "zero-filling a new buffer");
    }
    *out = b;
    return GPTQ_OK;
}

static void hip_free(void *ctx, gptq_buf *b)
{
    (void)ctx;
    if (!b) return;
    /* hipFree waits for the device, so no queued kernel still uses it */
    (void)hipFree(b->ptr);
    (void)hipGetLastError();
    free(b);
}

static int check_range(hip_ctx *c, const gptq_buf *b, size_t off, size_t n, const char *op)
{
    if (!b) return hip_fail(c, GPTQ_ERR_INVALID, "%s: NULL buffer", op);
    if (off > b->nbytes || n > b->nbytes - off)
        return hip_fail(c, GPTQ_ERR_INVALID, "%s: bytes [%zu, %zu) outside a buffer of %zu", op,
                        off, off + n, b->nbytes);
    return GPTQ_OK;
}

static int hip_upload(void *ctx, gptq_buf *dst, size_t off, const void *src, size_t n)
{
    hip_ctx *c = (hip_ctx *)ctx;
    int st = check_range(c, dst, off, n, "upload");
    if (st) return st;
    if (!n) return GPTQ_OK;
    if (!src) return hip_fail(c, GPTQ_ERR_INVALID, "upload: NULL host pointer");
    HIP_TRY(c, hipMemcpyAsync((char *)dst->ptr + off, src, n, hipMemcpyHostToDevice, c->stream),
            "upload (host to device copy)");
    /* the caller may reuse src as soon as we return */
    HIP_TRY(c, hipStreamSynchronize(c->stream), "upload (host to device copy)");
    return GPTQ_OK;
}

static int hip_download(void *ctx, const gptq_buf *src, size_t off, void *dst, size_t n)
{
    hip_ctx *c = (hip_ctx *)ctx;
    int st = check_range(c, src, off, n, "download");
    if (st) return st;
    if (n && !dst) return hip_fail(c, GPTQ_ERR_INVALID, "download: NULL host pointer");
    if (n)
        HIP_TRY(c,
                hipMemcpyAsync(dst, (const char *)src->ptr + off, n, hipMemcpyDeviceToHost,
                               c->stream),
                "download (device to host copy)");
    return hip_sync_checked(c, "download");
}

static int hip_copy(void *ctx, gptq_buf *dst, size_t doff, const gptq_buf *src, size_t soff,
                    size_t n)
{
    hip_ctx *c = (hip_ctx *)ctx;
    int st = check_range(c, dst, doff, n, "copy");
    if (!st) st = check_range(c, src, soff, n, "copy");
    if (st) return st;
    if (!n) return GPTQ_OK;
    const char *s = (const char *)src->ptr + soff;
    char *d = (char *)dst->ptr + doff;
    /* memmove semantics, as the CPU backend: an overlapping copy inside one
     * buffer goes through a temporary */
    if (src->ptr == dst->ptr && s < d + n && d < s + n) {
        void *tmp = NULL;
        HIP_TRY(c, hipMalloc(&tmp, n), "copy (temporary for an overlapping copy)");
        hipError_t e = hipMemcpyAsync(tmp, s, n, hipMemcpyDeviceToDevice, c->stream);
        if (e == hipSuccess) e = hipMemcpyAsync(d, tmp, n, hipMemcpyDeviceToDevice, c->stream);
        if (e == hipSuccess) e = hipStreamSynchronize(c->stream);
        (void)hipFree(tmp);
        if (e != hipSuccess) return hip_fail_rt(c, e, "copy (device to device)");
        return GPTQ_OK;
    }
    HIP_TRY(c, hipMemcpyAsync(d, s, n, hipMemcpyDeviceToDevice, c->stream),
            "copy (device to device)");
    return GPTQ_OK;
}

static int hip_sync(void *ctx) { return hip_sync_checked((hip_ctx *)ctx, "sync"); }

/* ------------------------------------------------------------------------
 * the table
 * ---------------------------------------------------------------------- */

static const gptq_backend_iface k_hip_iface = {
    .abi_version = GPTQ_BACKEND_ABI_VERSION,
    .struct_size = sizeof(gptq_backend_iface),
    .name = "hip",
#if defined(GPTQ_HIP_ON_NVIDIA)
    .description = "HIP kernels built for NVIDIA with nvcc (hip_compat_nvidia.h): tiled f32 GEMM, "
                   "SYRK Hessian, blocked Cholesky inverse, fused GPTQ blocks, W4A16 GEMV and "
                   "tensor-core GEMM",
#else
    .description = "HIP kernels for AMD GPUs: tiled f32 GEMM, SYRK Hessian, blocked Cholesky "
                   "inverse, fused GPTQ blocks, W4A16 GEMV and GEMM",
#endif
    .create = hip_create,
    .destroy = hip_destroy,
    .error = hip_error,
    .alloc = hip_alloc,
    .free = hip_free,
    .upload = hip_upload,
    .download = hip_download,
    .copy = hip_copy,
    .sync = hip_sync,
    .mem_info = hip_mem_info,
    .gemm = hip_gemm,
    .hessian_accumulate = hip_hessian_accumulate,
    .cholesky_inverse_upper = hip_cholesky_inverse_upper,
    .quant_grid = hip_quant_grid,
    .gptq_block = hip_gptq_block,
    .embedding = hip_embedding,
    .rmsnorm = hip_rmsnorm,
    .layernorm = hip_layernorm,
    .rope = hip_rope,
    .attention = hip_attention,
    .silu_mul = hip_silu_mul,
    .relu = hip_relu,
    .add = hip_add,
    .bias_add = hip_bias_add,
    .cross_entropy = hip_cross_entropy,
    .linear_fast = hip_linear_fast,
    .hessian_finish = hip_hessian_finish,
    .dot = hip_dot,
    .pack_codes = hip_pack_codes,
    .dequantize = hip_dequantize,
    .matmul_q = hip_matmul_q,
    .gather = hip_gather,
    .to_f32 = hip_to_f32,
    .dead_columns = hip_dead_columns,
    .supports_op = NULL, /* every filled slot runs on every device it opens */
    .gelu_tanh_mul = hip_gelu_tanh_mul,
    .scale = hip_scale,
    .softcap = hip_softcap,
    .matmul_q_fast = hip_matmul_q_fast,
    .attention_kv = hip_attention_kv,
};

extern "C" __attribute__((visibility("default"))) const gptq_backend_iface *
gptq_backend_entry(void)
{
    return &k_hip_iface;
}
