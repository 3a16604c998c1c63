/*
 * atomic.c — replace files and folders so that a reader (or a crash) sees
 * either the complete old version or the complete new one: write beside,
 * fsync, rename, fsync the directory. Also recursive removal of a folder
 * for cleaning up temporaries, and the checks an output target passes
 * before any work (paths compared by device and inode, not by spelling).
 *
 * Every temporary is registered (cleanup.c) from its creation to its
 * rename or removal, each change inside a gptq_tmp_enter/leave section, so
 * that a process ending on a signal removes exactly what is unfinished.
 */
#define _GNU_SOURCE /* renameat2, RENAME_EXCHANGE; nftw */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
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
    gptq_tmp_enter();
    int fd = mkstemp(tmp);
    int e = errno;
    int reg = fd >= 0 ? gptq_tmp_register(tmp) : GPTQ_OK;
    gptq_tmp_leave();
    if (fd < 0)
        return gptq_error(GPTQ_ERR_IO, "%s: cannot create temporary file %s: %s", path, tmp,
                          strerror(e));
    if (reg) {
        close(fd);
        unlink(tmp);
        return reg;
    }
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
    gptq_tmp_enter();
    int rc = rename(tmp, path);
    e = errno;
    if (rc == 0) gptq_tmp_unregister(tmp);
    gptq_tmp_leave();
    errno = e;
    if (rc != 0) goto fail;
    return gptq_fsync_parent_dir(path);

fail:
    e = errno;
    if (fd >= 0) close(fd);
    gptq_tmp_enter();
    unlink(tmp);
    gptq_tmp_unregister(tmp);
    gptq_tmp_leave();
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
    gptq_tmp_enter();
    const int made = mkdtemp(out) != NULL;
    const int e = errno;
    int reg = made ? gptq_tmp_register(out) : GPTQ_OK;
    if (reg) rmdir(out);
    gptq_tmp_leave();
    if (!made)
        return gptq_error(GPTQ_ERR_IO, "%s: cannot create temporary folder %s: %s", final_dir,
                          out, strerror(e));
    return reg;
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
        gptq_tmp_enter();
        int rc = unlink(path);
        const int e = errno;
        if (rc == 0) gptq_tmp_unregister(path);
        gptq_tmp_leave();
        if (rc != 0) return gptq_error(GPTQ_ERR_IO, "%s: cannot remove: %s", path, strerror(e));
        return GPTQ_OK;
    }
    gptq_tmp_enter();
    int rc = nftw(path, remove_entry, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    const int e = errno;
    if (rc == 0) gptq_tmp_unregister(path);
    gptq_tmp_leave();
    errno = e;
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
        gptq_tmp_enter();
        int rc = rename(tmp, dst);
        const int e = errno;
        if (rc == 0) gptq_tmp_unregister(tmp);
        gptq_tmp_leave();
        if (rc != 0)
            return gptq_error(GPTQ_ERR_IO, "%s: cannot rename %s into place: %s", dst, tmp,
                              strerror(e));
        rc = gptq_fsync_parent_dir(dst);
        return rc != GPTQ_OK ? rc : 0;
    }
    if (!S_ISDIR(st.st_mode))
        return gptq_error(GPTQ_ERR_IO, "%s: exists and is not a folder; not replacing it",
                          dst);
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
 * back if that fails. Between the two renames `final` is absent; both run
 * in one section, so a signal never finds that state. The side folder is
 * registered from the moment it holds the old contents. */
static int swap_aside(const char *tmp, const char *dst)
{
    char old[4096 + 32];
    /* mkdtemp reserves a fresh name; rename(2) may replace an empty folder. */
    snprintf(old, sizeof old, "%s.old-XXXXXX", dst);
    int st = GPTQ_OK;
    gptq_tmp_enter();
    if (!mkdtemp(old)) {
        st = gptq_error(GPTQ_ERR_IO, "%s: cannot create %s to move the old folder aside: %s",
                        dst, old, strerror(errno));
    } else if ((st = gptq_tmp_register(old)) != GPTQ_OK) {
        rmdir(old);
    } else if (rename(dst, old) != 0) {
        int e = errno;
        gptq_tmp_unregister(old);
        rmdir(old);
        st = gptq_error(GPTQ_ERR_IO, "%s: cannot move the old folder aside to %s: %s", dst, old,
                        strerror(e));
    } else if (rename(tmp, dst) != 0) {
        int e = errno;
        /* Put the old one back so the user keeps what they had. */
        if (rename(old, dst) != 0) {
            st = gptq_error(GPTQ_ERR_IO,
                            "%s: cannot rename %s into place (%s), and moving the old folder "
                            "back from %s failed too: %s",
                            dst, tmp, strerror(e), old, strerror(errno));
        } else {
            st = gptq_error(GPTQ_ERR_IO, "%s: cannot rename %s into place: %s", dst, tmp,
                            strerror(e));
        }
        /* Either way `old` is no temporary of ours any more: it is the
         * user's folder, back in place or left where the message says. */
        gptq_tmp_unregister(old);
    } else {
        gptq_tmp_unregister(tmp);
    }
    gptq_tmp_leave();
    if (st) return st;
    return finish_swap(dst, old);
}

int gptq_rename_dir_into_place(const char *tmp, const char *final)
{
    char dst[4096];
    int rc = prepare_dst(tmp, final, dst, sizeof dst);
    if (rc <= 0) return rc;
    /* Preferred: one atomic swap; afterwards `tmp` holds the old folder
     * (still registered: a signal from here on removes the old copy, which
     * is what finish_swap does). */
    gptq_tmp_enter();
    rc = renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_EXCHANGE);
    int e = errno;
    gptq_tmp_leave();
    if (rc == 0) return finish_swap(dst, tmp);
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

/* ------------------------------------------------------------------ */
/* Output targets                                                      */
/* ------------------------------------------------------------------ */

int gptq_path_canon(const char *path, char *out, size_t size)
{
    char p[4096];
    if (!path || strip_slashes(path, p, sizeof p) != 0)
        return gptq_error(GPTQ_ERR_INVALID, "\"%s\": not a usable path", path ? path : "");
    char *slash = strrchr(p, '/');
    const char *base = slash ? slash + 1 : p;
    char real[PATH_MAX];
    if (!strcmp(p, "/") || !strcmp(base, ".") || !strcmp(base, "..")) {
        /* "x/." and "x/.." name a folder only through its parent's entry:
         * resolve the whole path. */
        if (!realpath(p, real))
            return gptq_error(GPTQ_ERR_IO, "%s: %s", path, strerror(errno));
        if (snprintf(out, size, "%s", real) >= (int)size)
            return gptq_error(GPTQ_ERR_INVALID, "%s: path too long", path);
        return GPTQ_OK;
    }
    const char *dir = slash ? (slash == p ? "/" : p) : ".";
    if (slash && slash != p) *slash = '\0';
    if (!realpath(dir, real))
        return gptq_error(GPTQ_ERR_IO, "%s: the folder %s that would hold it: %s", path, dir,
                          strerror(errno));
    if (snprintf(out, size, "%s%s%s", real, strcmp(real, "/") ? "/" : "", base) >= (int)size)
        return gptq_error(GPTQ_ERR_INVALID, "%s: path too long", path);
    return GPTQ_OK;
}

int gptq_same_file(const char *a, const char *b)
{
    struct stat x, y;
    return stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

int gptq_path_within(const char *path, const char *dir)
{
    struct stat d, s;
    if (stat(dir, &d) != 0 || !S_ISDIR(d.st_mode)) return 0;
    char c[PATH_MAX];
    if (stat(path, &s) == 0) {
        if (s.st_dev == d.st_dev && s.st_ino == d.st_ino) return 1;
        /* an existing path counts where it resolves to (a symlink to a
         * model folder is that folder) */
        if (!realpath(path, c)) return 0;
    } else if (gptq_path_canon(path, c, sizeof c) != GPTQ_OK) {
        return 0;
    }
    /* c is absolute and its folders carry no symlinks: walk up them. */
    for (char *slash; (slash = strrchr(c, '/')) != NULL;) {
        if (slash == c) slash[1] = '\0';
        else *slash = '\0';
        if (stat(c, &s) == 0 && s.st_dev == d.st_dev && s.st_ino == d.st_ino) return 1;
        if (slash == c) break;
    }
    return 0;
}

static const char *kind_name(mode_t m)
{
    return S_ISDIR(m) ? "a folder" : S_ISFIFO(m) ? "a FIFO" : S_ISCHR(m) ? "a character device"
           : S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

int gptq_out_check_file(const char *out, const char *const *inputs, int n)
{
    if (!out || !out[0]) return gptq_error(GPTQ_ERR_INVALID, "empty output file name");
    struct stat st;
    const int exists = lstat(out, &st) == 0;
    if (exists && S_ISLNK(st.st_mode))
        return gptq_error(GPTQ_ERR_INVALID,
                          "%s: is a symbolic link; not replacing it (name the file itself, or "
                          "choose another name)",
                          out);
    if (exists && !S_ISREG(st.st_mode))
        return gptq_error(GPTQ_ERR_INVALID,
                          "%s: exists and is %s; only a regular file is replaced: choose "
                          "another name",
                          out, kind_name(st.st_mode));
    for (int i = 0; i < n; i++) {
        if (!inputs[i]) continue;
        if (exists && gptq_same_file(out, inputs[i]))
            return gptq_error(GPTQ_ERR_INVALID,
                              "%s: is the input %s itself (the same file); choose another "
                              "output name",
                              out, inputs[i]);
        struct stat is;
        if (stat(inputs[i], &is) == 0 && S_ISDIR(is.st_mode) && gptq_path_within(out, inputs[i]))
            return gptq_error(GPTQ_ERR_INVALID,
                              "%s: is inside the input folder %s; write it elsewhere", out,
                              inputs[i]);
    }
    char c[PATH_MAX];
    if (gptq_path_canon(out, c, sizeof c) != GPTQ_OK)
        return gptq_error(GPTQ_ERR_IO, "%s: the folder that would hold it does not exist", out);
    *strrchr(c, '/') = '\0';
    const char *dir = c[0] ? c : "/";
    if (access(dir, W_OK | X_OK) != 0)
        return gptq_error(GPTQ_ERR_IO, "%s: cannot write in its folder %s: %s", out, dir,
                          strerror(errno));
    return GPTQ_OK;
}
