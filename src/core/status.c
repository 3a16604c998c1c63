/* status.c — status names and the thread-local error message. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../internal.h"

static _Thread_local char g_msg[2048];

const char *gptq_status_str(int status)
{
    switch (status) {
    case GPTQ_OK: return "ok";
    case GPTQ_ERR_INVALID: return "invalid argument";
    case GPTQ_ERR_IO: return "i/o error";
    case GPTQ_ERR_FORMAT: return "bad file format";
    case GPTQ_ERR_NOMEM: return "out of memory";
    case GPTQ_ERR_NUMERIC: return "numerical failure";
    case GPTQ_ERR_UNSUPPORTED: return "unsupported";
    case GPTQ_ERR_BACKEND: return "backend failure";
    case GPTQ_ERR_SHAPE: return "shape mismatch";
    case GPTQ_ERR_CANCELLED: return "cancelled";
    default: return "unknown status";
    }
}

const char *gptq_last_error(void) { return g_msg; }
void gptq_clear_error(void) { g_msg[0] = '\0'; }
const char *gptq_version(void) { return GPTQ_VERSION_STRING; }

int gptq_error(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    return status;
}

int gptq_error_prefix(int status, const char *fmt, ...)
{
    char old[sizeof g_msg];
    memcpy(old, g_msg, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    if (k >= 0 && (size_t)k + 2 < sizeof g_msg && old[0]) {
        /* append ": <old>" truncated to what fits */
        size_t at = (size_t)k, room = sizeof g_msg - at - 1;
        size_t n = strlen(old) + 2 < room ? strlen(old) + 2 : room;
        memcpy(g_msg + at, ": ", 2);
        memcpy(g_msg + at + 2, old, n - 2);
        g_msg[at + n] = '\0';
    }
    return status;
}

void *gptq_malloc(size_t nbytes, const char *what)
{
    void *p = malloc(nbytes ? nbytes : 1);
    if (!p)
        gptq_error(GPTQ_ERR_NOMEM, "out of memory allocating %zu bytes for %s", nbytes, what);
    return p;
}

void *gptq_calloc(size_t n, size_t size, const char *what)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        gptq_error(GPTQ_ERR_NOMEM, "out of memory allocating %zu x %zu bytes for %s", n, size,
                   what);
    return p;
}

double gptq_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double gptq_now_seconds(void) { return gptq_now(); }

void gptq_versioned_init(void *dst, size_t size, const void *def, size_t full)
{
    if (!dst || size < sizeof(size_t)) return;
    memset(dst, 0, size);
    memcpy(dst, def, size < full ? size : full);
    memcpy(dst, &size, sizeof size); /* struct_size, the first member */
}
