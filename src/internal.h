/*
 * internal.h — what the parts of libgptq share and programs do not see:
 * the error helpers and the backend handle with its checked wrappers.
 */
#ifndef GPTQ_INTERNAL_H
#define GPTQ_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "gptq.h"
#include "../backends/backend.h"

#if defined(__GNUC__)
#define GPTQ_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define GPTQ_PRINTF(a, b)
#endif

/* Set this thread's error message and return `status` (for `return
 * gptq_error(GPTQ_ERR_IO, "%s: %s", path, strerror(errno));`). */
int gptq_error(int status, const char *fmt, ...) GPTQ_PRINTF(2, 3);
/* Prefix the current message: "<prefix>: <old message>"; returns status. */
int gptq_error_prefix(int status, const char *fmt, ...) GPTQ_PRINTF(2, 3);

/* Return from the calling function when expr gives an error (a negative
 * gptq_status); 0 and positive results (counts, GPTQ_HOOK_STOP) go on. */
#define GPTQ_TRY(expr)                       \
    do {                                     \
        int gptq_try_ = (expr);              \
        if (gptq_try_ < 0) return gptq_try_; \
    } while (0)

/* Checked allocation: NULL after setting GPTQ_ERR_NOMEM with `what`. */
void *gptq_malloc(size_t nbytes, const char *what);
void *gptq_calloc(size_t n, size_t size, const char *what);
/* A versioned struct's init (gptq.h, the ABI rules): dst's first size
 * bytes = the defaults def (full bytes, the library's struct; zeros past
 * them), its struct_size = size. size < sizeof(size_t): nothing is written
 * (the struct cannot hold struct_size; the call that reads it refuses). */
void gptq_versioned_init(void *dst, size_t size, const void *def, size_t full);

/* Monotonic seconds. */
double gptq_now(void);

/* A loaded backend: its table, its context, the plugin handle. */
struct gptq_backend {
    const gptq_backend_iface *iface;
    void *ctx;
    void *dl;        /* dlopen handle, NULL for built-in */
    char path[512];  /* where it was loaded from ("built-in") */
    /* device memory in use (total - free, from mem_info), sampled after
     * every allocation: memory in use only grows at an allocation, so the
     * largest sample is the peak of what the device had in use */
    size_t mem_peak, mem_total;
};

/* Wrappers: call the slot, turn a failure into this thread's message
 * "backend <name>: <op>: <backend message>". */
int gptq_be_check(gptq_backend *be, int status, const char *op);
int gptq_be_alloc(gptq_backend *be, size_t nbytes, gptq_buf **out, const char *what);
void gptq_be_free(gptq_backend *be, gptq_buf *b);
/* Free device memory now (bytes); 0 when the backend does not say (the CPU
 * backend: host memory, which the core does not probe). */
size_t gptq_be_mem_free(gptq_backend *be);
/* Wait for the backend's queued work (timing: a GPU's kernels run after the
 * call that queued them returns). */
int gptq_be_sync(gptq_backend *be);
/* 1 when the backend has op (its slot is filled and its supports_op, if
 * any, says yes), 0 otherwise. */
int gptq_be_supports(const gptq_backend *be, gptq_op op);
/* The op whose slot lies at offsetof(gptq_backend_iface, slot) = off;
 * GPTQ_OP_COUNT for a slot that is no op (memory, lifecycle). */
gptq_op gptq_op_of_slot(size_t off);
/* The name of op as in messages ("hessian_finish"). */
const char *gptq_op_name(gptq_op op);
int gptq_be_upload(gptq_backend *be, gptq_buf *dst, size_t off, const void *src, size_t n);
int gptq_be_download(gptq_backend *be, const gptq_buf *src, size_t off, void *dst, size_t n);

#endif /* GPTQ_INTERNAL_H */
