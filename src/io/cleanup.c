/*
 * cleanup.c — what a process ending on a signal needs to leave nothing
 * behind: a registry of the temporaries that exist on disk (the output
 * folder being written, a file being written beside its final name) and a
 * registry of the memory-mapped input files (to name the file behind a
 * SIGBUS). Both are read from a signal handler or a signal-waiting thread,
 * so everything that reads them here is async-signal-safe: atomics, fixed
 * tables, openat/getdents64/unlinkat/close, no malloc, no stdio, no locks.
 *
 * The program (src/cli/cli_signals.c) decides what a signal does; the
 * library never exits. The handshake that keeps a signal from removing a
 * temporary while a thread renames it into place: a thread changing the
 * temporaries on disk (create + register, rename + unregister, remove +
 * unregister) does so inside gptq_tmp_enter/leave; the dying thread sets
 * `dying` and waits until no such section runs; a thread that enters a
 * section after that blocks for good (the process is about to _exit).
 */
#define _GNU_SOURCE /* syscall */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "io.h"

/* ------------------------------------------------------------------ */
/* Sections                                                            */
/* ------------------------------------------------------------------ */

static atomic_int g_sections; /* threads inside gptq_tmp_enter/leave */
static atomic_int g_dying;    /* set once by gptq_tmp_cleanup_for_exit */

static void nap_ms(long ms)
{
    struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&d, &d) != 0 && errno == EINTR) {}
}

void gptq_tmp_enter(void)
{
    /* seq_cst on both sides: of "sections++ then read dying" here and
     * "dying = 1 then read sections" in the cleanup, at least one thread
     * sees the other's write. */
    atomic_fetch_add(&g_sections, 1);
    if (!atomic_load(&g_dying)) return;
    atomic_fetch_sub(&g_sections, 1);
    for (;;) nap_ms(1000); /* the dying thread ends the process */
}

void gptq_tmp_leave(void) { atomic_fetch_sub(&g_sections, 1); }

/* ------------------------------------------------------------------ */
/* Temporaries                                                         */
/* ------------------------------------------------------------------ */

enum { SLOT_FREE = 0, SLOT_CLAIMED = 1, SLOT_SET = 2 };

#define TMP_SLOTS 16
static struct {
    atomic_int state;
    char path[4096 + 64];
} g_tmp[TMP_SLOTS];

int gptq_tmp_register(const char *path)
{
    size_t n = strlen(path);
    if (n >= sizeof g_tmp[0].path)
        return gptq_error(GPTQ_ERR_INVALID, "%s: path too long for a temporary", path);
    for (int i = 0; i < TMP_SLOTS; i++) {
        int want = SLOT_FREE;
        if (!atomic_compare_exchange_strong(&g_tmp[i].state, &want, SLOT_CLAIMED)) continue;
        memcpy(g_tmp[i].path, path, n + 1);
        atomic_store(&g_tmp[i].state, SLOT_SET);
        return GPTQ_OK;
    }
    return gptq_error(GPTQ_ERR_INVALID, "%s: more than %d temporaries at once", path, TMP_SLOTS);
}

void gptq_tmp_unregister(const char *path)
{
    for (int i = 0; i < TMP_SLOTS; i++)
        if (atomic_load(&g_tmp[i].state) == SLOT_SET && strcmp(g_tmp[i].path, path) == 0) {
            atomic_store(&g_tmp[i].state, SLOT_FREE);
            return;
        }
}

/* The kernel's record of getdents64 (linux/dirent.h). */
struct k_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/* Remove `name` under dirfd: a file or symlink is unlinked, a folder
 * emptied (never following a symlink) and removed. Async-signal-safe;
 * 0 when it is gone. */
static int rm_at(int dirfd, const char *name, int depth)
{
    if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT) return 0;
    if (errno != EISDIR || depth > 32) return -1;
    /* A few passes: entries removed while reading a folder may shift the
     * listing, so read it again until the folder itself goes. */
    for (int pass = 0; pass < 4; pass++) {
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) return errno == ENOENT ? 0 : -1;
        _Alignas(8) char buf[4096];
        for (long k; (k = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0;) {
            for (long off = 0; off < k;) {
                const struct k_dirent64 *d = (const struct k_dirent64 *)(buf + off);
                off += d->d_reclen;
                if (strcmp(d->d_name, ".") && strcmp(d->d_name, ".."))
                    rm_at(fd, d->d_name, depth + 1);
            }
        }
        close(fd);
        if (unlinkat(dirfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT) return 0;
        if (errno != ENOTEMPTY && errno != EEXIST) return -1;
    }
    return -1;
}

int gptq_tmp_cleanup_for_exit(char *first, size_t size)
{
    if (first && size) first[0] = '\0';
    atomic_store(&g_dying, 1);
    /* A rename in progress finishes first (milliseconds); 5 s bound it in
     * case that thread is the one that called us or is stuck. */
    for (int i = 0; i < 500 && atomic_load(&g_sections) > 0; i++) nap_ms(10);
    int removed = 0;
    for (int i = 0; i < TMP_SLOTS; i++) {
        if (atomic_load(&g_tmp[i].state) != SLOT_SET) continue;
        if (rm_at(AT_FDCWD, g_tmp[i].path, 0) != 0) continue;
        if (removed++ == 0 && first && size) {
            size_t n = strlen(g_tmp[i].path);
            if (n >= size) n = size - 1;
            memcpy(first, g_tmp[i].path, n);
            first[n] = '\0';
        }
    }
    return removed;
}

/* ------------------------------------------------------------------ */
/* Mapped files                                                        */
/* ------------------------------------------------------------------ */

/* A model has at most a few hundred shards; past the table's size a
 * mapping is simply not named in the SIGBUS message. */
#define MAP_SLOTS 1024
static struct {
    atomic_int state;
    uintptr_t base;
    size_t len;
    const char *path;
} g_map[MAP_SLOTS];

void gptq_map_register(const void *base, size_t len, const char *path)
{
    for (int i = 0; i < MAP_SLOTS; i++) {
        int want = SLOT_FREE;
        if (!atomic_compare_exchange_strong(&g_map[i].state, &want, SLOT_CLAIMED)) continue;
        g_map[i].base = (uintptr_t)base;
        g_map[i].len = len;
        g_map[i].path = path;
        atomic_store(&g_map[i].state, SLOT_SET);
        return;
    }
}

void gptq_map_unregister(const void *base)
{
    for (int i = 0; i < MAP_SLOTS; i++)
        if (atomic_load(&g_map[i].state) == SLOT_SET && g_map[i].base == (uintptr_t)base) {
            atomic_store(&g_map[i].state, SLOT_FREE);
            return;
        }
}

const char *gptq_map_lookup(const void *addr)
{
    const uintptr_t a = (uintptr_t)addr;
    for (int i = 0; i < MAP_SLOTS; i++)
        if (atomic_load(&g_map[i].state) == SLOT_SET && a >= g_map[i].base &&
            a - g_map[i].base < g_map[i].len)
            return g_map[i].path;
    return NULL;
}
