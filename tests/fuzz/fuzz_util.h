/*
 * fuzz_util.h — what the libFuzzer targets share: the broken-promise check
 * and the input as a file without touching the disk.
 */
#ifndef GPTQ_FUZZ_UTIL_H
#define GPTQ_FUZZ_UTIL_H

#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gptq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken promise traps, so the fuzzer keeps the input. FUZZ_NAME is the
 * target's name, defined before this header. */
#define CHECK(cond)                                                                         \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "%s: broken promise: %s (line %d); last error: %s\n",          \
                    FUZZ_NAME, #cond, __LINE__, gptq_last_error());                         \
            __builtin_trap();                                                               \
        }                                                                                   \
    } while (0)

/* The bytes as the content of the process's one memfd, reached as
 * /proc/self/fd/N: a regular file for every reader, nothing on disk.
 * Returns the path (static storage). */
static inline const char *fuzz_memfd(const void *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create(FUZZ_NAME, MFD_CLOEXEC);
        if (fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size)) {
        perror("memfd write");
        abort();
    }
    return path;
}

/* An exactly sized heap copy (data past `size` is not ours to read, and
 * ASan sees an over-read of it); free() it. */
static inline char *fuzz_copy(const void *data, size_t size)
{
    char *p = malloc(size ? size : 1);
    if (!p) abort();
    memcpy(p, data, size);
    return p;
}

#endif /* GPTQ_FUZZ_UTIL_H */
