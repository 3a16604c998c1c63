/*
 * test_calib.c — calibration windows (src/text/calib.c).
 *
 * The generator is checked against splitmix64's published first outputs
 * for seed 0 (Vigna's reference splitmix64.c: e220a8397b1dcdaf,
 * 6e789e6aa1b965f4, 06c45d188009454f); windows against the rule of the GPTQ
 * paper's data code (start uniform in [0, n - seqlen - 1], the window is
 * ids[start : start + seqlen]); files in both formats and every error.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/io.h"
#include "text/calib.h"

static const char *src_root(void)
{
    const char *r = getenv("GPTQ_SOURCE_ROOT");
    return r ? r : ".";
}

static void tmpfile_with(char *path, size_t n, const char *suffix, const char *text, size_t len)
{
    snprintf(path, n, "/tmp/gptq_test_calib_XXXXXX%s", suffix);
    int fd = mkstemps(path, (int)strlen(suffix));
    cr_assert(fd >= 0, "mkstemps failed");
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
}

Test(rng, splitmix64_published_values)
{
    uint64_t s = 0;
    cr_assert_eq(gptq_splitmix64(&s), 0xe220a8397b1dcdafull);
    cr_assert_eq(gptq_splitmix64(&s), 0x6e789e6aa1b965f4ull);
    cr_assert_eq(gptq_splitmix64(&s), 0x06c45d188009454full);
}

Test(rng, bounded_draws_cover_the_range_evenly)
{
    /* 7 buckets, 70000 draws: each count ~ 10000 +- 3 sigma (~ 280) */
    uint64_t s = 42;
    int count[7] = {0};
    for (int i = 0; i < 70000; i++) {
        uint64_t v = gptq_rand_below(&s, 7);
        cr_assert(v < 7);
        count[v]++;
    }
    for (int b = 0; b < 7; b++)
        cr_assert(count[b] > 9600 && count[b] < 10400, "bucket %d: %d", b, count[b]);
    cr_assert_eq(gptq_rand_below(&s, 1), 0u);
}

static int32_t *iota(int64_t n)
{
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)(i * 3 + 1);
    return ids;
}

Test(windows, same_seed_same_windows_other_seed_other_windows)
{
    const int64_t n = 5000;
    int32_t *ids = iota(n);
    gptq_calib_options o;
    gptq_calib_options_default(&o);
    cr_assert_eq(o.nsamples, 128);
    cr_assert_eq(o.seqlen, 2048);
    cr_assert_eq(o.seed, 0u);
    o.nsamples = 16;
    o.seqlen = 100;
    int32_t *a = malloc(16 * 100 * 4), *b = malloc(16 * 100 * 4), *c = malloc(16 * 100 * 4);
    int64_t sa[16], sb[16], sc[16];
    cr_assert_eq(gptq_calib_windows(ids, n, &o, a, sa), GPTQ_OK);
    cr_assert_eq(gptq_calib_windows(ids, n, &o, b, sb), GPTQ_OK);
    cr_assert(!memcmp(a, b, 16 * 100 * 4) && !memcmp(sa, sb, sizeof sa));
    o.seed = 1;
    cr_assert_eq(gptq_calib_windows(ids, n, &o, c, sc), GPTQ_OK);
    int same = 0;
    for (int s = 0; s < 16; s++) same += sa[s] == sc[s];
    cr_assert(same < 4, "seed 1 gave %d of 16 starts of seed 0", same);
    /* the rule: start in [0, n - seqlen - 1], window = ids[start ..] */
    for (int s = 0; s < 16; s++) {
        cr_assert(sa[s] >= 0 && sa[s] <= n - 100 - 1, "start %lld", (long long)sa[s]);
        cr_assert(!memcmp(a + s * 100, ids + sa[s], 100 * 4));
    }
    /* the first start of seed 0 is splitmix64's first output mod (n - seqlen) */
    cr_assert_eq(sa[0], (int64_t)(0xe220a8397b1dcdafull % (uint64_t)(n - 100)));
    free(a);
    free(b);
    free(c);
    free(ids);
}

Test(windows, exactly_one_window_and_too_short)
{
    int32_t *ids = iota(100);
    gptq_calib_options o = {.nsamples = 3, .seqlen = 100, .seed = 9};
    int32_t out[300];
    int64_t st[3];
    cr_assert_eq(gptq_calib_windows(ids, 100, &o, out, st), GPTQ_OK);
    for (int s = 0; s < 3; s++) cr_assert_eq(st[s], 0);
    o.seqlen = 101;
    cr_assert_eq(gptq_calib_windows(ids, 100, &o, out, st), GPTQ_ERR_INVALID);
    cr_assert(strstr(gptq_last_error(), "has 100 tokens") &&
                  strstr(gptq_last_error(), "--seqlen 101"),
              "%s", gptq_last_error());
    free(ids);
}

Test(files, plain_text_and_byte_limit_on_a_character_boundary)
{
    char p[128];
    /* "aé" is 3 bytes: a cut after 2 bytes would split the é */
    const char *text = "a\xc3\xa9 bcd";
    tmpfile_with(p, sizeof p, ".txt", text, strlen(text));
    char *t;
    size_t n;
    int jsonl;
    int64_t rec;
    cr_assert_eq(gptq_calib_read_text(p, 0, &t, &n, &jsonl, &rec), GPTQ_OK);
    cr_assert(n == strlen(text) && !memcmp(t, text, n) && !jsonl && rec == 0);
    free(t);
    cr_assert_eq(gptq_calib_read_text(p, 2, &t, &n, &jsonl, &rec), GPTQ_OK);
    cr_assert_eq(n, 1, "cut inside a character: %zu bytes", n);
    cr_assert_str_eq(t, "a");
    free(t);
    cr_assert_eq(gptq_calib_read_text(p, 3, &t, &n, &jsonl, &rec), GPTQ_OK);
    cr_assert_str_eq(t, "a\xc3\xa9");
    free(t);
    unlink(p);
}

Test(files, jsonl_by_extension_and_by_first_character)
{
    char p[128], q[128];
    const char *text = "{\"text\": \"first \\\"doc\\\"\", \"id\": 1}\n\n"
                       "  {\"id\": 2, \"text\": \"second\\nline\"}\n"
                       "{\"text\": \"\\u00e9t\\u00e9\"}";
    tmpfile_with(p, sizeof p, ".jsonl", text, strlen(text));
    tmpfile_with(q, sizeof q, ".txt", text, strlen(text)); /* detected by its '{' */
    const char *want = "first \"doc\"\n\nsecond\nline\n\n\xc3\xa9t\xc3\xa9";
    for (int k = 0; k < 2; k++) {
        char *t;
        size_t n;
        int jsonl;
        int64_t rec;
        cr_assert_eq(gptq_calib_read_text(k ? q : p, 0, &t, &n, &jsonl, &rec), GPTQ_OK, "%s",
                     gptq_last_error());
        cr_assert(jsonl && rec == 3);
        cr_assert_str_eq(t, want);
        cr_assert_eq(n, strlen(want));
        free(t);
    }
    unlink(p);
    unlink(q);
}

Test(files, errors_name_file_and_line)
{
    char *t;
    size_t n;
    int jsonl;
    int64_t rec;
    cr_assert_eq(gptq_calib_read_text("/nonexistent/calib.txt", 0, &t, &n, &jsonl, &rec),
                 GPTQ_ERR_IO);
    cr_assert(strstr(gptq_last_error(), "/nonexistent/calib.txt"), "%s", gptq_last_error());
    char p[128];
    tmpfile_with(p, sizeof p, ".txt", "", 0);
    cr_assert_eq(gptq_calib_read_text(p, 0, &t, &n, &jsonl, &rec), GPTQ_ERR_INVALID);
    cr_assert(strstr(gptq_last_error(), "empty"), "%s", gptq_last_error());
    unlink(p);
    tmpfile_with(p, sizeof p, ".txt", " \n\t\n", 4);
    cr_assert_eq(gptq_calib_read_text(p, 0, &t, &n, &jsonl, &rec), GPTQ_ERR_INVALID);
    cr_assert(strstr(gptq_last_error(), "only whitespace"), "%s", gptq_last_error());
    unlink(p);
    const char *bad[] = {
        "{\"text\": \"ok\"}\n{\"text\": \"broken\n",  /* line 2: not valid JSON */
        "{\"text\": \"ok\"}\n\n[1, 2]\n",               /* line 3: not an object */
        "{\"text\": \"ok\"}\n{\"content\": \"x\"}\n",    /* line 2: no text */
        "{\"text\": 5}\n",                              /* line 1: not a string */
    };
    const char *want[] = {"line 2: not valid JSON", "line 3: not a JSON object",
                          "line 2: no \"text\" field", "line 1: \"text\" is not a string"};
    for (int i = 0; i < 4; i++) {
        tmpfile_with(p, sizeof p, ".jsonl", bad[i], strlen(bad[i]));
        cr_assert_eq(gptq_calib_read_text(p, 0, &t, &n, &jsonl, &rec), GPTQ_ERR_FORMAT);
        cr_assert(strstr(gptq_last_error(), want[i]) && strstr(gptq_last_error(), p), "%s",
                  gptq_last_error());
        unlink(p);
    }
}

Test(files, non_regular_files_refused_at_once)
{
    char *t;
    size_t n;
    int jsonl;
    int64_t rec;
    char dir[64] = "/tmp/gptq_test_calib_dir_XXXXXX", fifo[128], loop[128];
    cr_assert(mkdtemp(dir));
    /* a folder: not "read error" */
    cr_assert_eq(gptq_calib_read_text(dir, 0, &t, &n, &jsonl, &rec), GPTQ_ERR_IO);
    cr_assert(strstr(gptq_last_error(), "not a regular file (a directory)"), "%s",
              gptq_last_error());
    /* a FIFO without a writer: refused, not waited on */
    snprintf(fifo, sizeof fifo, "%s/calib.fifo", dir);
    cr_assert_eq(mkfifo(fifo, 0644), 0);
    cr_assert_eq(gptq_calib_read_text(fifo, 100, &t, &n, &jsonl, &rec), GPTQ_ERR_IO);
    cr_assert(strstr(gptq_last_error(), "calib.fifo: not a regular file (a FIFO)"), "%s",
              gptq_last_error());
    /* a device that never ends, even with a byte limit */
    cr_assert_eq(gptq_calib_read_text("/dev/zero", 100, &t, &n, &jsonl, &rec), GPTQ_ERR_IO);
    cr_assert(strstr(gptq_last_error(), "not a regular file (a character device)"), "%s",
              gptq_last_error());
    snprintf(loop, sizeof loop, "%s/loop.txt", dir);
    cr_assert_eq(symlink("loop.txt", loop), 0);
    cr_assert_eq(gptq_calib_read_text(loop, 0, &t, &n, &jsonl, &rec), GPTQ_ERR_IO);
    cr_assert(strstr(gptq_last_error(), "Too many levels of symbolic links"), "%s",
              gptq_last_error());
    unlink(loop);
    unlink(fifo);
    rmdir(dir);
}

/* A byte limit reads only what it keeps: a file of 64 GiB (sparse: text,
 * then zeros) takes no time and no memory; and what is kept is exactly
 * the prefix a whole read would have kept. */
Test(files, byte_limit_reads_only_what_it_keeps)
{
    char p[128], q[128];
    /* plain: 10000 bytes of text ("ab\xc3\xa9 " repeated), then zeros */
    static char text[10000];
    for (size_t i = 0; i < sizeof text; i++) text[i] = "ab\xc3\xa9 "[i % 5];
    tmpfile_with(p, sizeof p, ".txt", text, sizeof text);
    cr_assert_eq(truncate(p, (off_t)64 << 30), 0);
    char *t;
    size_t n;
    int jsonl;
    int64_t rec;
    const size_t limits[] = {1, 3, 4095, 4096, 4097, 5000, 9999};
    for (size_t k = 0; k < sizeof limits / sizeof *limits; k++) {
        cr_assert_eq(gptq_calib_read_text(p, limits[k], &t, &n, &jsonl, &rec), GPTQ_OK, "%s",
                     gptq_last_error());
        /* the cut backs off to a character boundary: at most 3 bytes short */
        cr_assert(n <= limits[k] && n + 3 >= limits[k] && !memcmp(t, text, n),
                  "limit %zu: %zu bytes", limits[k], n);
        free(t);
    }
    unlink(p);

    /* JSON lines across many 4 KiB blocks, one line longer than a block,
     * then an endless line of zeros */
    static char jl[64000];
    size_t m = 0;
    for (int i = 0; m < sizeof jl - 9000; i++) {
        int len = i == 7 ? 6000 : 10 + i % 50;
        m += (size_t)snprintf(jl + m, sizeof jl - m, "{\"text\": \"");
        for (int c = 0; c < len; c++) jl[m++] = (char)('a' + (i + c) % 26);
        m += (size_t)snprintf(jl + m, sizeof jl - m, "\"}\n");
    }
    tmpfile_with(q, sizeof q, ".jsonl", jl, m);
    char *whole;
    size_t nw;
    cr_assert_eq(gptq_calib_read_text(q, 0, &whole, &nw, &jsonl, &rec), GPTQ_OK, "%s",
                 gptq_last_error());
    cr_assert(jsonl && nw > 40000);
    cr_assert_eq(truncate(q, (off_t)64 << 30), 0);
    const size_t jlimits[] = {1, 100, 4096, 7000, 30000};
    for (size_t k = 0; k < sizeof jlimits / sizeof *jlimits; k++) {
        cr_assert_eq(gptq_calib_read_text(q, jlimits[k], &t, &n, &jsonl, &rec), GPTQ_OK, "%s",
                     gptq_last_error());
        cr_assert(jsonl && n == jlimits[k] && !memcmp(t, whole, n), "limit %zu: %zu bytes",
                  jlimits[k], n);
        free(t);
    }
    free(whole);
    /* without a limit the endless line is refused, not read into memory */
    cr_assert_eq(gptq_calib_read_text(q, 0, &t, &n, &jsonl, &rec), GPTQ_ERR_FORMAT);
    cr_assert(strstr(gptq_last_error(), "longer than 256 MiB"), "%s", gptq_last_error());
    unlink(q);
}

Test(files, jsonl_duplicate_key_refused)
{
    char p[128];
    const char *text = "{\"text\": \"a\"}\n{\"text\": \"b\", \"text\": \"c\"}\n";
    tmpfile_with(p, sizeof p, ".jsonl", text, strlen(text));
    char *t;
    size_t n;
    int jsonl;
    int64_t rec;
    cr_assert_eq(gptq_calib_read_text(p, 0, &t, &n, &jsonl, &rec), GPTQ_ERR_FORMAT);
    cr_assert(strstr(gptq_last_error(), "line 2: duplicate key \"text\""), "%s",
              gptq_last_error());
    unlink(p);
}

Test(load, encodes_and_cuts_with_the_model_tokenizer)
{
    char dir[512], text[512];
    snprintf(dir, sizeof dir, "%s/tests/data/model/stories-260k", src_root());
    snprintf(text, sizeof text, "%s/tests/data/model/tinystories-slice.txt", src_root());
    gptq_tokenizer *tok;
    cr_assert_eq(gptq_tok_load(dir, &tok), GPTQ_OK, "%s", gptq_last_error());
    /* the windows are slices of the whole text's encoding, no BOS added */
    char *t;
    size_t n;
    int jsonl;
    int64_t rec;
    cr_assert_eq(gptq_calib_read_text(text, 0, &t, &n, &jsonl, &rec), GPTQ_OK);
    int32_t *ids;
    int64_t nids;
    cr_assert_eq(gptq_tok_encode(tok, t, n, GPTQ_TOK_NO_SPECIAL, &ids, &nids), GPTQ_OK);
    free(t);
    gptq_calib_options o = {.nsamples = 8, .seqlen = 64, .seed = 3};
    gptq_calib c;
    cr_assert_eq(gptq_calib_load(tok, text, &o, &c), GPTQ_OK, "%s", gptq_last_error());
    cr_assert(c.nsamples == 8 && c.seqlen == 64 && c.text_tokens == nids && !c.jsonl);
    for (int s = 0; s < 8; s++) {
        cr_assert(c.starts[s] >= 0 && c.starts[s] < nids - 64);
        cr_assert(!memcmp(c.ids + s * 64, ids + c.starts[s], 64 * 4));
    }
    gptq_calib_free(&c);
    /* too short: says how many tokens there are */
    o.seqlen = nids + 1;
    cr_assert_eq(gptq_calib_load(tok, text, &o, &c), GPTQ_ERR_INVALID);
    char want[64];
    snprintf(want, sizeof want, "has %lld tokens", (long long)nids);
    cr_assert(strstr(gptq_last_error(), want) && strstr(gptq_last_error(), "tinystories-slice"),
              "%s", gptq_last_error());
    free(ids);
    gptq_tok_free(tok);
}
