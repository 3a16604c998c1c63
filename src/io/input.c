/*
 * input.c — opening and reading the files a user hands us, safely.
 *
 * Every reader of libgptq (JSON files, safetensors, calibration and
 * evaluation text, the tokenizer) opens its input here. A plain open() of
 * a FIFO blocks until some other process opens it for writing, which may
 * be never; reading a device (/dev/zero) never ends. So an input is
 * opened non-blocking (a FIFO then opens at once), checked with fstat to
 * be a regular file, and only then switched back to blocking reads.
 */
#define _GNU_SOURCE /* O_CLOEXEC with older headers */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"

static const char *kind_of(mode_t m)
{
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "not a file";
}

int gptq_open_input(const char *path, int *fd_out, uint64_t *size_out)
{
    *fd_out = -1;
    if (!path) return gptq_error(GPTQ_ERR_INVALID, "gptq_open_input: path is NULL");
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return gptq_error(GPTQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return gptq_error(GPTQ_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return gptq_error(GPTQ_ERR_IO, "%s: not a regular file (%s)", path, kind_of(st.st_mode));
    }
    /* A regular file never blocks, but reads should not see EAGAIN either. */
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        int e = errno;
        close(fd);
        return gptq_error(GPTQ_ERR_IO, "%s: fcntl: %s", path, strerror(e));
    }
    *fd_out = fd;
    if (size_out) *size_out = (uint64_t)st.st_size;
    return GPTQ_OK;
}

int gptq_input_present(const char *path)
{
    struct stat st;
    /* lstat: a dangling or looping symlink is there too, and the reader
     * then says what is wrong with it instead of "missing". */
    return lstat(path, &st) == 0 || (errno != ENOENT && errno != ENOTDIR);
}

int gptq_read_fd(int fd, const char *path, size_t max, uint64_t size_hint, char **out,
                 size_t *len, int *more)
{
    *out = NULL;
    *len = 0;
    if (more) *more = 0;
    /* The size is a hint for the first buffer, one byte more so that the
     * end shows without growing it (a file may grow while we read it: the
     * loop, not fstat, decides how much there is). Never more than 64 MiB
     * up front: a sparse file may claim terabytes. */
    size_t cap = size_hint < (uint64_t)max ? (size_t)size_hint + 1 : max;
    if (cap < 4096) cap = 4096;
    if (cap > ((size_t)64 << 20)) cap = (size_t)64 << 20;
    char *buf = gptq_malloc(cap + 1, "file contents");
    if (!buf) return gptq_error_prefix(GPTQ_ERR_NOMEM, "%s", path);
    size_t n = 0;
    for (;;) {
        if (n == max) {
            /* One byte more says whether the file goes on. */
            char probe;
            ssize_t k = read(fd, &probe, 1);
            if (k < 0 && errno == EINTR) continue;
            if (more) *more = k > 0;
            break;
        }
        if (n == cap) {
            size_t ncap = cap > max / 2 ? max : cap * 2;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) {
                free(buf);
                return gptq_error(GPTQ_ERR_NOMEM, "%s: out of memory reading %zu bytes", path,
                                  ncap);
            }
            buf = nb;
            cap = ncap;
        }
        size_t want = (cap < max ? cap : max) - n;
        ssize_t k = read(fd, buf + n, want);
        if (k < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            free(buf);
            return gptq_error(GPTQ_ERR_IO, "%s: read failed after %zu bytes: %s", path, n,
                              strerror(e));
        }
        if (k == 0) break;
        n += (size_t)k;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return GPTQ_OK;
}

int gptq_read_input(const char *path, size_t max, char **out, size_t *len, int *more)
{
    *out = NULL;
    *len = 0;
    if (more) *more = 0;
    int fd;
    uint64_t size = 0; /* set by gptq_open_input on success (GCC cannot see it) */
    int st = gptq_open_input(path, &fd, &size);
    if (st) return st;
    st = gptq_read_fd(fd, path, max, size, out, len, more);
    close(fd);
    return st;
}
