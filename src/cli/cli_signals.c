/*
 * cli_signals.c — what a signal does to a `gptq` run: it ends the run at
 * once, wherever the run is (a loop, a blocking open of a FIFO, a GPU
 * call), after removing the temporaries the library registered
 * (io/io.h: the unfinished output folder or file), so that an existing
 * output is untouched and nothing is left beside it.
 *
 * SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM and SIGXCPU
 * (the signals whose default ends the process): the handler, on whatever
 * thread the kernel picks (the BLAS library starts its threads before
 * main, so blocking the signals everywhere is not possible), only writes
 * the signal number into a pipe. A thread of ours reads it, removes the
 * temporaries (waiting for a rename in progress, see cleanup.c), says so
 * on stderr and _exits with 128 + the signal number. A signal ignored when
 * the program starts (nohup) stays ignored.
 *
 * SIGBUS: a memory-mapped input file shrank under its mapping (truncated
 * or rewritten while being read). The handler, on the faulting thread,
 * names the file, removes the temporaries and _exits 1. A SIGBUS outside
 * our mappings gets the same cleanup, then the default action (a core).
 */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "io/io.h"

static const struct {
    int sig;
    const char *name;
} k_signals[] = {
    {SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"}, {SIGTERM, "SIGTERM"},
    {SIGUSR1, "SIGUSR1"}, {SIGUSR2, "SIGUSR2"}, {SIGALRM, "SIGALRM"}, {SIGXCPU, "SIGXCPU"},
};

static const char *g_cmd = "";
static int g_pipe[2] = {-1, -1};

/* Append s to buf[0..*n) within size (async-signal-safe). */
static void put(char *buf, size_t size, size_t *n, const char *s)
{
    for (; *s && *n + 1 < size; s++) buf[(*n)++] = *s;
}

/* Remove the temporaries, write "gptq CMD: <what>[; removed the unfinished
 * PATH]" to stderr. Async-signal-safe. */
static void clean_and_say(const char *prefix, const char *what)
{
    char tmp[4200], msg[8800];
    const int removed = gptq_tmp_cleanup_for_exit(tmp, sizeof tmp);
    size_t n = 0;
    put(msg, sizeof msg, &n, "gptq ");
    put(msg, sizeof msg, &n, g_cmd);
    put(msg, sizeof msg, &n, prefix);
    put(msg, sizeof msg, &n, what);
    if (removed) {
        put(msg, sizeof msg, &n, "; removed the unfinished ");
        put(msg, sizeof msg, &n, tmp);
    }
    msg[n++] = '\n';
    for (size_t off = 0; off < n;) {
        ssize_t k = write(STDERR_FILENO, msg + off, n - off);
        if (k <= 0 && errno != EINTR) break;
        if (k > 0) off += (size_t)k;
    }
}

static void on_signal(int sig)
{
    const int e = errno;
    unsigned char b = (unsigned char)sig;
    if (write(g_pipe[1], &b, 1) < 0) {
        /* the pipe is full only if signals keep coming: one is enough */
    }
    errno = e;
}

static void *signal_thread(void *arg)
{
    (void)arg;
    unsigned char b = 0;
    while (read(g_pipe[0], &b, 1) != 1) {}
    const int sig = b;
    char what[64] = "interrupted by signal";
    for (size_t i = 0; i < sizeof k_signals / sizeof *k_signals; i++)
        if (k_signals[i].sig == sig) {
            size_t n = 0;
            put(what, sizeof what, &n, "interrupted by ");
            put(what, sizeof what, &n, k_signals[i].name);
            what[n] = '\0';
        }
    clean_and_say(": ", what);
    _exit(128 + sig);
}

static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
    (void)ctx;
    const char *file = gptq_map_lookup(si->si_addr);
    if (file) {
        char what[4400];
        size_t n = 0;
        put(what, sizeof what, &n, file);
        put(what, sizeof what, &n, ": changed during the run (truncated or rewritten while "
                                   "being read)");
        what[n] = '\0';
        clean_and_say(": error: ", what);
        _exit(1);
    }
    clean_and_say(": error: ", "bus error (SIGBUS) outside any input file");
    /* the default action on return: the fault repeats and dumps a core */
    signal(sig, SIG_DFL);
}

void cli_signals_start(const char *cmd)
{
    g_cmd = cmd;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGBUS, &sa, NULL);

    /* Without the pipe or the thread, the signals keep their defaults. */
    if (pipe2(g_pipe, O_CLOEXEC) != 0) return;
    pthread_t t;
    if (pthread_create(&t, NULL, signal_thread, NULL) != 0) return;
    pthread_detach(t);
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART; /* other threads' calls go on until the _exit */
    for (size_t i = 0; i < sizeof k_signals / sizeof *k_signals; i++) {
        struct sigaction old;
        if (sigaction(k_signals[i].sig, NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
        sigaction(k_signals[i].sig, &sa, NULL);
    }
}
