/*
 * skip_report.c — linked into every Criterion test executable (tests/meson.build):
 * makes skips visible and honours the user's GPTQ_SHARED.
 *
 * Criterion reports a skipped test as passed to meson (exit 0), so a run where
 * every GPU test or every ../shared test skipped looks like a clean pass. Here:
 *   - each skipped test appends "suite::test: reason" to
 *     $GPTQ_SKIP_DIR/<executable>.txt (truncated when the executable starts,
 *     so the file lists the skips of its latest run); scripts/test.sh prints
 *     them all, counted, at the end, and fails when a test that needs only
 *     the CPU and ../shared skipped while ../shared is present;
 *   - an executable whose tests all skipped exits 77, meson's skip code, so
 *     meson's summary counts it under "Skipped".
 *   - GPTQ_SHARED: tests read the shared models from $GPTQ_SHARED; meson test
 *     passes the user's environment through, so a value the user set wins and
 *     GPTQ_SHARED_DEFAULT (<source>/../shared, set by tests/meson.build) is
 *     only the fallback.
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char g_log[4096]; /* this executable's skip list, "" when not kept */
static size_t g_tests, g_skipped;

ReportHook(POST_TEST)(struct criterion_test_stats *stats)
{
    if (stats->test_status != CR_STATUS_SKIPPED || !g_log[0]) return;
    FILE *f = fopen(g_log, "a");
    if (!f) return;
    const char *why = stats->message && stats->message[0] ? stats->message : "(no reason given)";
    fprintf(f, "%s::%s: ", stats->test->category, stats->test->name);
    for (const char *p = why; *p; p++) fputc(*p == '\n' ? ' ' : *p, f); /* one line each */
    fputc('\n', f);
    fclose(f);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    g_tests = stats->nb_tests;
    g_skipped = stats->tests_skipped;
}

/* $GPTQ_SKIP_DIR/<basename of argv0>.txt, created empty; the directory is
 * made when missing (one level: meson-logs exists in a build dir). */
static void open_log(const char *argv0)
{
    const char *dir = getenv("GPTQ_SKIP_DIR");
    if (!dir || !dir[0]) return;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) return;
    const char *base = strrchr(argv0, '/');
    base = base ? base + 1 : argv0;
    if (snprintf(g_log, sizeof g_log, "%s/%s.txt", dir, base) >= (int)sizeof g_log) {
        g_log[0] = '\0';
        return;
    }
    FILE *f = fopen(g_log, "w");
    if (f) fclose(f);
    else g_log[0] = '\0';
}

int main(int argc, char *argv[])
{
    const char *shared = getenv("GPTQ_SHARED"), *dflt = getenv("GPTQ_SHARED_DEFAULT");
    if ((!shared || !shared[0]) && dflt && dflt[0]) setenv("GPTQ_SHARED", dflt, 1);
    struct criterion_test_set *tests = criterion_initialize();
    int rc = 0;
    if (criterion_handle_args(argc, argv, true)) {
        open_log(argv[0]);
        rc = !criterion_run_all_tests(tests);
        if (rc == 0 && g_tests > 0 && g_skipped == g_tests) rc = 77;
    }
    criterion_finalize(tests);
    return rc;
}
