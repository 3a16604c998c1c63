/*
 * atomic.c — replace files and folders so that a reader (or a crash) sees
 * either the complete old version or the complete new one: write beside,
 * fsync, rename, fsync the directory. Also recursive removal of a folder
 * for cleaning up temporaries.
 */
#define _GNU_SOURCE /* renameat2, RENAME_EXCHANGE; nftw */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

int gptq_fsync_parent_dir(const char *path)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return gptq_error(GPTQ_ERR_INVALID, "%s: path too long", path);
    const char *dir = dirname(tmp);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return gptq_error(GPTQ_ERR_IO, "%s: cannot open its directory %s to sync it: %s", path,
                          dir, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    /* Some file systems cannot fsync a directory (EINVAL); the rename is
     * then as durable as that file system makes it. */
    if (rc != 0 && e != EINVAL && e != EROFS)
        return gptq_error(GPTQ_ERR_IO, "%s: syncing directory %s failed: %s", path, dir,
                          strerror(e));
    return GPTQ_OK;
}

static int write_all(int fd, const void *data, size_t n)
{
    const char *p = data;
    while (n > 0) {
        /* Linux writes at most about 2 GiB per call. */
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t k = write(fd, p, chunk);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (k == 0) {
            errno = EIO;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Files                                                               */
/* ------------------------------------------------------------------ */

int gptq_write_file_atomic(const char *path, const void *data, size_t n)
{
    if (!path || (!data && n > 0))
        return gptq_error(GPTQ_ERR_INVALID, "gptq_write_file_atomic: NULL path or data");
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp)
        return gptq_error(GPTQ_ERR_INVALID, "%s: path too long", path);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return gptq_error(GPTQ_ERR_IO, "%s: cannot create temporary file %s: %s", path, tmp,
                          strerror(errno));
    const char *step = "write";
    if (write_all(fd, data, n) != 0) goto fail;
    step = "fsync";
    if (fsync(fd) != 0) goto fail;
    /* mkstemp makes 0600; the files we publish are ordinary readable ones. */
    step = "chmod";
    if (fchmod(fd, 0644) != 0) goto fail;
    step = "close";
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    step = "rename";
    if (rename(tmp, path) != 0) goto fail;
    return gptq_fsync_parent_dir(path);

fail:;
    int e = errno;
    if (fd >= 0) close(fd);
    unlink(tmp);
    return gptq_error(GPTQ_ERR_IO, "%s: %s of temporary %s failed: %s", path, step, tmp,
                      strerror(e));
}

/* ------------------------------------------------------------------ */
/* Folders                                                             */
/* ------------------------------------------------------------------ */

/* `dir` without trailing slashes into out[size] ("/" stays "/"). */
static int strip_slashes(const char *dir, char *out, size_t size)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    if (n == 0 || n >= size) return -1;
    memcpy(out, dir, n);
    out[n] = '\0';
    return 0;
}

int gptq_mkdtemp_beside(const char *final_dir, char *out, size_t size)
{
    if (!final_dir || !out || size == 0)
        return gptq_error(GPTQ_ERR_INVALID, "gptq_mkdtemp_beside: NULL argument");
    char base[4096];
    if (strip_slashes(final_dir, base, sizeof base) != 0 || strcmp(base, "/") == 0)
        return gptq_error(GPTQ_ERR_INVALID, "\"%s\": not a usable output folder name",
                          final_dir);
    if (snprintf(out, size, "%s.tmp.XXXXXX", base) >= (int)size)
        return gptq_error(GPTQ_ERR_INVALID, "%s: path too long", final_dir);
    if (!mkdtemp(out))
        return gptq_error(GPTQ_ERR_IO, "%s: cannot create temporary folder %s: %s", final_dir,
                          out, strerror(errno));
    return GPTQ_OK;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    /* FTW_DP: a folder after its contents; everything else (files,
     * symlinks, FTW_SL) is unlinked itself, never followed. */
    int rc = (type == FTW_DP) ? rmdir(path) : unlink(path);
    return rc != 0 ? errno : 0;
}

int gptq_remove_tree(const char *path)
{
    if (!path) return gptq_error(GPTQ_ERR_INVALID, "gptq_remove_tree: NULL path");
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) return GPTQ_OK;
        return gptq_error(GPTQ_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) != 0)
            return gptq_error(GPTQ_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
        return GPTQ_OK;
    }
    int rc = nftw(path, remove_entry, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    if (rc != 0)
        return gptq_error(GPTQ_ERR_IO, "%s: cannot remove folder: %s", path,
                          strerror(rc > 0 ? rc : errno));
    return GPTQ_OK;
}

/* Checks shared by both ways of replacing: `final` without trailing
 * slashes into dst; 1 when it exists as a folder, 0 when absent (then tmp
 * has been renamed in already), negative on error. */
static int prepare_dst(const char *tmp, const char *final, char *dst, size_t size)
{
    if (!tmp || !final)
        return gptq_error(GPTQ_ERR_INVALID, "gptq_rename_dir_into_place: NULL path");
    if (strlen(tmp) >= 4096 || strip_slashes(final, dst, size) != 0)
        return gptq_error(GPTQ_ERR_INVALID, "\"%s\": not a usable output folder name", final);
    struct stat st;
    if (lstat(dst, &st) != 0) {
        if (errno != ENOENT)
            return gptq_error(GPTQ_ERR_IO, "%s: cannot stat: %s", dst, strerror(errno));
        /* Nothing there: one rename. */
        if (rename(tmp, dst) != 0)
            return gptq_error(GPTQ_ERR_IO, "%s: cannot rename %s into place: %s", dst, tmp,
                              strerror(errno));
        int rc = gptq_fsync_parent_dir(dst);
        return rc != GPTQ_OK ? rc : 0;
    }
    if (!S_ISDIR(st.st_mode))
        return gptq_error(GPTQ_ERR_IO,
                          "%s: exists and is not a folder; not replacing it (the new output "
                          "is left in %s)",
                          dst, tmp);
    return 1;
}

/* After the new folder is in place: sync the parent, remove the old copy
 * (even when the sync failed, so nothing is left behind). */
static int finish_swap(const char *dst, const char *old)
{
    int rc = gptq_fsync_parent_dir(dst);
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", gptq_last_error());
    if (gptq_remove_tree(old) != GPTQ_OK)
        return gptq_error_prefix(GPTQ_ERR_IO,
                                 "%s: the new folder is in place, but the old copy left in %s "
                                 "could not be removed",
                                 dst, old);
    if (rc != GPTQ_OK) return gptq_error(rc, "%s", msg);
    return GPTQ_OK;
}

/* Move `final` aside under a fresh name, rename tmp in, move the old one
 * back if that fails. Between the two renames `final` is absent. */
static int swap_aside(const char *tmp, const char *dst)
{
    char old[4096 + 32];
    /* mkdtemp reserves a fresh name; rename(2) may replace an empty folder. */
    snprintf(old, sizeof old, "%s.old-XXXXXX", dst);
    if (!mkdtemp(old))
        return gptq_error(GPTQ_ERR_IO, "%s: cannot create %s to move the old folder aside: %s",
                          dst, old, strerror(errno));
    if (rename(dst, old) != 0) {
        int e = errno;
        rmdir(old);
        return gptq_error(GPTQ_ERR_IO, "%s: cannot move the old folder aside to %s: %s", dst, old,
                          strerror(e));
    }
    if (rename(tmp, dst) != 0) {
        int e = errno;
        /* Put the old one back so the user keeps what they had. */
        if (rename(old, dst) != 0)
            return gptq_error(GPTQ_ERR_IO,
                              "%s: cannot rename %s into place (%s), and moving the old folder "
                              "back from %s failed too: %s",
                              dst, tmp, strerror(e), old, strerror(errno));
        return gptq_error(GPTQ_ERR_IO, "%s: cannot rename %s into place: %s", dst, tmp,
                          strerror(e));
    }
    return finish_swap(dst, old);
}

int gptq_rename_dir_into_place(const char *tmp, const char *final)
{
    char dst[4096];
    int rc = prepare_dst(tmp, final, dst, sizeof dst);
    if (rc <= 0) return rc;
    /* Preferred: one atomic swap; afterwards `tmp` holds the old folder. */
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_EXCHANGE) == 0) return finish_swap(dst, tmp);
    int e = errno;
    if (e != EINVAL && e != ENOSYS && e != EOPNOTSUPP)
        return gptq_error(GPTQ_ERR_IO, "%s: cannot swap in %s: %s", dst, tmp, strerror(e));
    return swap_aside(tmp, dst);
}

int gptq_rename_dir_aside(const char *tmp, const char *final)
{
    char dst[4096];
    int rc = prepare_dst(tmp, final, dst, sizeof dst);
    if (rc <= 0) return rc;
    return swap_aside(tmp, dst);
}
