/*
 * cli_harness.h — run the built `gptq` binary as a user does, for the CLI
 * tests and the hostile-input tables (header only: each test is one
 * executable).
 *
 *   ch_run        fork/exec $GPTQ_CLI with a wall-clock limit (a hang is a
 *                 failure, never a stuck CI job), stdout and stderr captured
 *                 apart, the exit status or 128+signal
 *   ch_snap_*     a snapshot of a file or folder tree (type, mode, size and
 *                 an FNV-1a hash of every regular file's bytes, symlink
 *                 targets; FIFOs and devices by type only) to prove that
 *                 what the user had is byte-identical afterwards
 *   hostile_case  one row of a hostile-input table: the inputs it builds,
 *                 the command, the expected exit status and message
 *                 fragment, and the paths that must be untouched
 *
 * Paths in a row's argv, message and untouched list may start with
 *   @       the row's own fresh folder (made empty for each row)
 *   %DATA   the checkout's data/ folder (the bundled tiny model and text)
 *   %SHARED the shared models and text (a row that uses it skips when absent)
 */
#ifndef GPTQ_CLI_HARNESS_H
#define GPTQ_CLI_HARNESS_H

#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Environment                                                         */
/* ------------------------------------------------------------------ */

static inline const char *ch_cli(void)
{
    const char *p = getenv("GPTQ_CLI");
    cr_assert(p && *p, "GPTQ_CLI is not set (run the tests through meson test)");
    return p;
}

static inline const char *ch_source_root(void)
{
    const char *p = getenv("GPTQ_SOURCE_ROOT");
    cr_assert(p && *p, "GPTQ_SOURCE_ROOT is not set (run the tests through meson test)");
    return p;
}

/* The shared models and text, or NULL when absent (callers skip). */
static inline const char *ch_shared(void)
{
    const char *p = getenv("GPTQ_SHARED");
    struct stat st;
    if (!p || !*p || stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) return NULL;
    return p;
}

/* ------------------------------------------------------------------ */
/* Scratch folders                                                     */
/* ------------------------------------------------------------------ */

/* Remove a tree without following symlinks (FIFOs and sockets included). */
static inline int ch_rm_entry(const char *p, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (type == FTW_DP || type == FTW_D || type == FTW_DNR) {
        chmod(p, 0700);
        return rmdir(p) != 0 && errno != ENOENT;
    }
    return unlink(p) != 0 && errno != ENOENT;
}

static inline void ch_rm_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (!S_ISDIR(st.st_mode)) {
        unlink(path);
        return;
    }
    /* Make every folder writable and readable first (rows build read-only ones). */
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "chmod -R u+rwx '%s' 2>/dev/null", path);
    if (system(cmd)) { /* best effort */ }
    nftw(path, ch_rm_entry, 32, FTW_DEPTH | FTW_PHYS);
}

/* A fresh folder under $TMPDIR (or /tmp) into buf[512]. */
static inline void ch_mkdtemp(char *buf, const char *tag)
{
    const char *t = getenv("TMPDIR");
    snprintf(buf, 512, "%s/gptq-%s-XXXXXX", t && *t ? t : "/tmp", tag);
    cr_assert(mkdtemp(buf), "mkdtemp %s: %s", buf, strerror(errno));
}

/* buf[1024] = dir/name */
static inline char *ch_join(char *buf, const char *dir, const char *name)
{
    snprintf(buf, 1024, "%s/%s", dir, name);
    return buf;
}

/* Expand a leading @ / %DATA / %SHARED of s into out[size]; 0 on success,
 * -1 when %SHARED is asked for and absent. */
static inline int ch_expand(const char *s, const char *dir, char *out, size_t size)
{
    char data[1024];
    snprintf(data, sizeof data, "%s/data", ch_source_root());
    const struct { const char *tag, *val; } map[] = {
        {"@", dir}, {"%DATA", data}, {"%SHARED", ch_shared()}};
    out[0] = '\0';
    size_t n = 0;
    for (const char *p = s; *p;) {
        int hit = 0;
        for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
            size_t k = strlen(map[i].tag);
            if (!strncmp(p, map[i].tag, k)) {
                if (!map[i].val) return -1;
                n += (size_t)snprintf(out + n, n < size ? size - n : 0, "%s", map[i].val);
                p += k;
                hit = 1;
                break;
            }
        }
        if (!hit) {
            if (n + 1 < size) out[n] = *p;
            n++;
            p++;
        }
    }
    cr_assert(n < size, "path too long: %s", s);
    out[n] = '\0';
    return 0;
}

/* ------------------------------------------------------------------ */
/* Small file builders                                                 */
/* ------------------------------------------------------------------ */

static inline void ch_write(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f, "cannot write %s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(data, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

static inline void ch_write_str(const char *path, const char *text)
{
    ch_write(path, text, strlen(text));
}

/* printf into a file */
__attribute__((format(printf, 2, 3))) static inline void ch_writef(const char *path,
                                                                   const char *fmt, ...)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f, "cannot write %s: %s", path, strerror(errno));
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    cr_assert_eq(fclose(f), 0);
}

/* Run a shell command (cp -a, truncate, ...); it must succeed. */
__attribute__((format(printf, 1, 2))) static inline void ch_sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    cr_assert_eq(rc, 0, "shell command failed (%d): %s", rc, cmd);
}

/* Read a whole file (NUL-terminated, malloc'd); NULL when unreadable. */
static inline char *ch_slurp(const char *path, size_t *n_out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    for (size_t k; b && (k = fread(b + n, 1, cap - n - 1, f)) > 0;) {
        n += k;
        if (cap - n < 2) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) free(b);
            b = nb;
        }
    }
    fclose(f);
    if (!b) return NULL;
    b[n] = '\0';
    if (n_out) *n_out = n;
    return b;
}

/* ------------------------------------------------------------------ */
/* Running the CLI                                                     */
/* ------------------------------------------------------------------ */

typedef struct cli_result {
    int status;     /* exit status; 128 + signal when killed */
    int signaled;   /* killed by a signal (not an exit with that status) */
    int timed_out;  /* killed by the harness after the limit */
    double seconds; /* wall time */
    char *out;      /* stdout (malloc'd, NUL-terminated) */
    char *err;      /* stderr */
} cli_result;

static inline void ch_result_free(cli_result *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

static inline double ch_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct ch_opts {
    double timeout;          /* seconds; 0: 60 */
    const char *cwd;         /* run there (NULL: inherit) */
    const char *stdin_path;  /* NULL: /dev/null */
    const char *const *env;  /* "NAME=value" to set, NULL-terminated list, or NULL */
    /* Called in the parent after the start, with the child's pid (kill tests). */
    void (*while_running)(pid_t pid, void *user);
    void *user;
} ch_opts;

/* Run `gptq argv...` (argv NULL-terminated, without the program). The child
 * runs in its own process group; past the limit the whole group gets
 * SIGKILL and timed_out is set. */
static inline void ch_run_opts(cli_result *r, const ch_opts *o, const char *const *argv)
{
    memset(r, 0, sizeof *r);
    char logd[512], outp[1024], errp[1024];
    ch_mkdtemp(logd, "log");
    ch_join(outp, logd, "stdout");
    ch_join(errp, logd, "stderr");
    const char *args[128];
    int n = 0;
    args[n++] = ch_cli();
    for (int i = 0; argv[i]; i++) {
        cr_assert(n < 127, "too many arguments");
        args[n++] = argv[i];
    }
    args[n] = NULL;
    const double t0 = ch_now();
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        setpgid(0, 0);
        int fi = open(o->stdin_path ? o->stdin_path : "/dev/null", O_RDONLY);
        int fo = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fi < 0 || fo < 0 || fe < 0) _exit(126);
        dup2(fi, 0);
        dup2(fo, 1);
        dup2(fe, 2);
        if (o->cwd && chdir(o->cwd) != 0) _exit(126);
        for (int i = 0; o->env && o->env[i]; i++) putenv((char *)o->env[i]);
        signal(SIGPIPE, SIG_DFL);
        /* as from a terminal: signals the test runner may ignore or block
         * reach the command with their defaults (the kill tests send them) */
        const int dfl[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM};
        for (size_t i = 0; i < sizeof dfl / sizeof dfl[0]; i++) signal(dfl[i], SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(args[0], (char *const *)args);
        _exit(127);
    }
    setpgid(pid, pid);
    if (o->while_running) o->while_running(pid, o->user);
    const double limit = o->timeout > 0 ? o->timeout : 60.0;
    int ws = 0;
    for (;;) {
        pid_t w = waitpid(pid, &ws, WNOHANG);
        if (w == pid) break;
        cr_assert(w == 0 || errno == EINTR, "waitpid: %s", strerror(errno));
        if (ch_now() - t0 > limit) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            waitpid(pid, &ws, 0);
            r->timed_out = 1;
            break;
        }
        struct timespec d = {0, 5 * 1000 * 1000};
        nanosleep(&d, NULL);
    }
    kill(-pid, SIGKILL); /* anything the run left in its group */
    r->seconds = ch_now() - t0;
    r->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
    r->signaled = WIFSIGNALED(ws);
    r->out = ch_slurp(outp, NULL);
    r->err = ch_slurp(errp, NULL);
    if (!r->out) r->out = strdup("");
    if (!r->err) r->err = strdup("");
    ch_rm_tree(logd);
}

/* ch_run(&r, timeout, "quantize", dir, "-o", out, NULL) */
static inline void ch_run(cli_result *r, double timeout, const char *a0, ...)
{
    const char *argv[128];
    int n = 0;
    va_list ap;
    va_start(ap, a0);
    for (const char *a = a0; a; a = va_arg(ap, const char *)) {
        cr_assert(n < 127);
        argv[n++] = a;
    }
    va_end(ap);
    argv[n] = NULL;
    ch_opts o = {.timeout = timeout};
    ch_run_opts(r, &o, argv);
}

/* Assert a finished run: exit status and (optionally) a stderr fragment. */
#define ch_expect(r, want_status, fragment)                                                    \
    do {                                                                                        \
        cr_assert(!(r)->timed_out, "timed out after %.1f s; stderr:\n%s", (r)->seconds,        \
                  (r)->err);                                                                    \
        cr_assert_eq((r)->status, (want_status), "exit status %d, want %d; stderr:\n%s",       \
                     (r)->status, (want_status), (r)->err);                                     \
        if ((fragment) && *(const char *)(fragment))                                            \
            cr_assert(strstr((r)->err, (fragment)), "stderr lacks \"%s\":\n%s",              \
                      (const char *)(fragment), (r)->err);                                      \
    } while (0)

/* ------------------------------------------------------------------ */
/* Tree snapshots                                                      */
/* ------------------------------------------------------------------ */

typedef struct ch_entry {
    char *rel;     /* path below the root ("" for the root itself) */
    mode_t mode;   /* type and permission bits */
    off_t size;
    uint64_t hash; /* FNV-1a of the bytes (regular files) or the link target */
    dev_t dev;
    ino_t ino;
} ch_entry;

typedef struct ch_snap {
    int exists;
    size_t n, cap;
    ch_entry *e;
} ch_snap;

static inline uint64_t ch_fnv(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static inline uint64_t ch_hash_file(const char *path)
{
    uint64_t h = 1469598103934665603ull;
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) return 0;
    unsigned char buf[65536];
    for (ssize_t k; (k = read(fd, buf, sizeof buf)) > 0;) h = ch_fnv(h, buf, (size_t)k);
    close(fd);
    return h;
}

static inline void ch_snap_add(ch_snap *s, const char *root, const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->e = realloc(s->e, s->cap * sizeof *s->e);
        cr_assert(s->e);
    }
    ch_entry *e = &s->e[s->n++];
    size_t k = strlen(root);
    e->rel = strdup(path[k] == '/' ? path + k + 1 : path + k);
    e->mode = st.st_mode;
    e->size = S_ISREG(st.st_mode) || S_ISLNK(st.st_mode) ? st.st_size : 0;
    e->dev = st.st_dev;
    e->ino = st.st_ino;
    e->hash = 0;
    if (S_ISREG(st.st_mode)) {
        e->hash = ch_hash_file(path);
    } else if (S_ISLNK(st.st_mode)) {
        char t[4096];
        ssize_t m = readlink(path, t, sizeof t);
        e->hash = m > 0 ? ch_fnv(1469598103934665603ull, (unsigned char *)t, (size_t)m) : 0;
    }
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) return;
        /* sorted, so two snapshots list entries in the same order */
        struct dirent **list = NULL;
        closedir(d);
        int m = scandir(path, &list, NULL, alphasort);
        for (int i = 0; i < m; i++) {
            const char *nm = list[i]->d_name;
            if (strcmp(nm, ".") && strcmp(nm, "..")) {
                char *sub = NULL;
                cr_assert(asprintf(&sub, "%s/%s", path, nm) > 0);
                ch_snap_add(s, root, sub);
                free(sub);
            }
            free(list[i]);
        }
        free(list);
    }
}

/* Snapshot a path (file, folder tree, symlink itself, FIFO by type). */
static inline ch_snap ch_snap_take(const char *path)
{
    ch_snap s = {0};
    struct stat st;
    s.exists = lstat(path, &st) == 0;
    if (s.exists) ch_snap_add(&s, path, path);
    return s;
}

static inline void ch_snap_free(ch_snap *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->e[i].rel);
    free(s->e);
    memset(s, 0, sizeof *s);
}

/* 1 when equal; otherwise 0 and a description of the first difference in msg. */
static inline int ch_snap_equal(const ch_snap *a, const ch_snap *b, char *msg, size_t size)
{
    if (a->exists != b->exists) {
        snprintf(msg, size, "%s", a->exists ? "was removed" : "appeared");
        return 0;
    }
    size_t i = 0;
    for (; i < a->n && i < b->n; i++) {
        const ch_entry *x = &a->e[i], *y = &b->e[i];
        if (strcmp(x->rel, y->rel)) {
            snprintf(msg, size, "entry \"%s\" became \"%s\"", x->rel, y->rel);
            return 0;
        }
        if (x->mode != y->mode || x->size != y->size || x->hash != y->hash) {
            snprintf(msg, size, "\"%s\" changed (mode %o->%o, size %lld->%lld)", x->rel,
                     (unsigned)x->mode, (unsigned)y->mode, (long long)x->size,
                     (long long)y->size);
            return 0;
        }
    }
    if (a->n != b->n) {
        snprintf(msg, size, "\"%s\" %s", i < a->n ? a->e[i].rel : b->e[i].rel,
                 i < a->n ? "was removed" : "appeared");
        return 0;
    }
    return 1;
}

/* Names in `dir` that look like our temporaries ("*.tmp.*", "*.old-*");
 * the first one into found[size], 1 if any. */
static inline int ch_find_temp(const char *dir, char *found, size_t size)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int hit = 0;
    for (struct dirent *e; !hit && (e = readdir(d));) {
        if (strstr(e->d_name, ".tmp.") || strstr(e->d_name, ".old-")) {
            snprintf(found, size, "%s/%s", dir, e->d_name);
            hit = 1;
        }
    }
    closedir(d);
    return hit;
}

/* ------------------------------------------------------------------ */
/* Hostile-input tables                                                */
/* ------------------------------------------------------------------ */

#define CH_MAX_ARGS 40
#define CH_MAX_KEEP 6

typedef struct hostile_case {
    const char *name;                /* unique within its table */
    void (*build)(const char *dir);  /* makes the row's inputs in its folder (may be NULL) */
    const char *argv[CH_MAX_ARGS];   /* the command, NULL-terminated; @, %DATA, %SHARED expand */
    int status;                      /* expected exit status */
    const char *msg;                 /* fragment expected in stderr (expanded); NULL: none */
    const char *keep[CH_MAX_KEEP];   /* paths that must be byte-identical afterwards */
    double timeout;                  /* seconds; 0: 30 */
    const char *cwd;                 /* run there (expanded); NULL: the row's folder */
    const char *const *env;          /* "NAME=value" set for the run, NULL-terminated, or NULL */
    const char *const *skip_on;      /* stderr fragments saying the row's backend is absent
                                      * here (no plugin, no GPU): then the row skips;
                                      * NULL-terminated, or NULL: never */
} hostile_case;

/* Run one row: a fresh folder, build, snapshot, run, check status,
 * message, untouched paths and that no temporary of ours is left in the
 * row's folder. Skips a row that needs %SHARED when it is absent. */
static inline void ch_run_case(const hostile_case *c)
{
    char dir[512];
    ch_mkdtemp(dir, "hostile");
    const char *argv[CH_MAX_ARGS + 1];
    static char ex[CH_MAX_ARGS][1024];
    int n = 0;
    for (; n < CH_MAX_ARGS && c->argv[n]; n++) {
        if (ch_expand(c->argv[n], dir, ex[n], sizeof ex[n]) != 0) {
            ch_rm_tree(dir);
            cr_skip_test("%s: needs the shared models and text (set GPTQ_SHARED or put "
                         "../shared beside the checkout)",
                         c->name);
        }
        argv[n] = ex[n];
    }
    argv[n] = NULL;
    if (c->build) c->build(dir);
    ch_snap snaps[CH_MAX_KEEP];
    char keep[CH_MAX_KEEP][1024];
    int nk = 0;
    for (; nk < CH_MAX_KEEP && c->keep[nk]; nk++) {
        cr_assert_eq(ch_expand(c->keep[nk], dir, keep[nk], sizeof keep[nk]), 0);
        snaps[nk] = ch_snap_take(keep[nk]);
    }
    char cwd[1024];
    cr_assert_eq(ch_expand(c->cwd ? c->cwd : "@", dir, cwd, sizeof cwd), 0);
    cli_result r;
    ch_opts o = {.timeout = c->timeout > 0 ? c->timeout : 30.0, .cwd = cwd, .env = c->env};
    ch_run_opts(&r, &o, argv);
    for (int i = 0; c->skip_on && c->skip_on[i]; i++) {
        if (!strstr(r.err, c->skip_on[i])) continue;
        for (int j = 0; j < nk; j++) ch_snap_free(&snaps[j]);
        ch_result_free(&r);
        ch_rm_tree(dir);
        cr_skip_test("%s: needs a GPU backend (HIP plugin and GPU), not available here "
                     "(stderr says \"%s\")",
                     c->name,
                     c->skip_on[i]);
    }
    cr_assert(!r.timed_out, "%s: timed out after %.1f s (a hang); stderr:\n%s", c->name,
              r.seconds, r.err);
    cr_assert_eq(r.status, c->status, "%s: exit status %d, want %d; stderr:\n%s", c->name,
                 r.status, c->status, r.err);
    if (c->msg) {
        char want[2048];
        cr_assert_eq(ch_expand(c->msg, dir, want, sizeof want), 0);
        cr_assert(strstr(r.err, want), "%s: stderr lacks \"%s\":\n%s", c->name, want, r.err);
    }
    for (int i = 0; i < nk; i++) {
        ch_snap now = ch_snap_take(keep[i]);
        char why[1024];
        cr_assert(ch_snap_equal(&snaps[i], &now, why, sizeof why), "%s: %s: %s", c->name,
                  keep[i], why);
        ch_snap_free(&now);
        ch_snap_free(&snaps[i]);
    }
    char tmpf[1024];
    cr_assert(!ch_find_temp(dir, tmpf, sizeof tmpf), "%s: a temporary was left: %s", c->name,
              tmpf);
    ch_result_free(&r);
    ch_rm_tree(dir);
}

/* Declare a Criterion parameterized test over a table:
 *   static hostile_case my_table[] = {...};
 *   CH_TABLE(suite, my_table)
 * Each row is its own test; a failure names the row. Criterion runs each
 * test in a fresh process of the same binary, where pointers of the
 * parent's address space mean nothing: the parameter is the row's index,
 * the row itself is read from the child's copy of the table. */
#define CH_TABLE(suite, table)                                                                  \
    static int table##_idx[sizeof table / sizeof table[0]];                                     \
    ParameterizedTestParameters(suite, table)                                                   \
    {                                                                                           \
        for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) table##_idx[i] = (int)i;    \
        return cr_make_param_array(int, table##_idx, sizeof table / sizeof table[0]);           \
    }                                                                                           \
    ParameterizedTest(int *row, suite, table, .timeout = 120) { ch_run_case(&table[*row]); }

#endif
