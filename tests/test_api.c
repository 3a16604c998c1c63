/*
 * test_api.c — the whole job through the public API only: this file
 * includes gptq.h and nothing else of the library, and links the shared
 * libgptq (tests/meson.build), so everything it calls is exported.
 *
 * tiny-llama (data/) quantized with gptq_quantize_model_dir gives the same
 * checkpoint bytes as `gptq quantize` with the same options (the CLI calls
 * the same function); the result evaluates with gptq_model_open +
 * gptq_evaluate to the perplexity `gptq eval` prints; a progress callback
 * that returns non-zero cancels quantize (GPTQ_ERR_CANCELLED, the output
 * folder absent, or an earlier output untouched, no temporary left) and
 * evaluate; versioned structs that were not initialised are refused.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gptq.h"

static char g_model[4096], g_calib[4096], g_text[4096], g_tmp[4096];

static void setup(void)
{
    const char *root = getenv("GPTQ_SOURCE_ROOT");
    cr_assert(root, "GPTQ_SOURCE_ROOT is not set (meson test sets it)");
    snprintf(g_model, sizeof g_model, "%s/data/tiny-llama", root);
    snprintf(g_calib, sizeof g_calib, "%s/data/text/calib.txt", root);
    snprintf(g_text, sizeof g_text, "%s/data/text/eval.txt", root);
    snprintf(g_tmp, sizeof g_tmp, "/tmp/gptq-test-api-XXXXXX");
    cr_assert(mkdtemp(g_tmp), "mkdtemp");
}

static void teardown(void)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    cr_assert(system(cmd) == 0);
}

TestSuite(api, .init = setup, .fini = teardown, .timeout = 240);

/* The options every test here uses: GPTQ 4-bit g128 on 8 windows of 64
 * tokens (small: the point is the API, the pipeline has its own tests). */
static void small_options(gptq_quantize_options *o)
{
    gptq_quantize_options_init(o);
    o->calib_path = g_calib;
    o->nsamples = 8;
    o->seqlen = 64;
    o->seed = 3;
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    cr_assert(b && fread(b, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    b[len] = '\0';
    *n = (size_t)len;
    return b;
}

typedef struct counts {
    int progress, modules, calib_message;
    int cancel_at;   /* cancel at this progress call (0: never) */
    int cancel_eval; /* evaluate: cancel at the first batch */
} counts;

static int on_progress(void *user, const gptq_progress *p)
{
    counts *c = user;
    cr_assert(p->struct_size >= sizeof *p, "progress struct_size %zu", p->struct_size);
    cr_assert(p->fraction >= 0.0 && p->fraction <= 1.0, "fraction %g", p->fraction);
    if (p->message && !strcmp(p->stage, "calibration")) c->calib_message++;
    c->progress++;
    if (c->cancel_eval) return 1;
    return c->cancel_at && c->progress >= c->cancel_at;
}

static void on_module(void *user, const gptq_module_report *r)
{
    counts *c = user;
    cr_assert(r->struct_size >= sizeof *r);
    cr_assert(r->prefix && !strncmp(r->prefix, "model.layers.", 13), "prefix %s", r->prefix);
    cr_assert(isfinite(r->loss) && r->loss >= 0.0);
    c->modules++;
}

Test(api, quantize_like_the_cli_then_evaluate)
{
    char out_api[4200], out_cli[4200], cmd[16384];
    snprintf(out_api, sizeof out_api, "%s/api", g_tmp);
    snprintf(out_cli, sizeof out_cli, "%s/cli", g_tmp);

    gptq_backend *be = NULL;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK, "%s", gptq_last_error());
    gptq_quantize_options o;
    small_options(&o);
    counts c = {0};
    o.on_progress = on_progress;
    o.on_module = on_module;
    o.user = &c;
    gptq_quantize_summary s;
    gptq_quantize_summary_init(&s);
    int st = gptq_quantize_model_dir(be, g_model, out_api, &o, &s);
    cr_assert_eq(st, GPTQ_OK, "%s", gptq_last_error());
    /* tiny-llama: 3 layers x 7 Linears */
    cr_assert_eq(s.nmodules, 21);
    cr_assert_eq(c.modules, 21);
    cr_assert_eq(c.calib_message, 1, "one calibration note");
    cr_assert_eq(s.nsamples, 8);
    cr_assert_eq(s.seqlen, 64);
    cr_assert_eq(s.format, GPTQ_FORMAT_V1, "sym: every zero point is >= 1");

    const char *cli = getenv("GPTQ_CLI");
    cr_assert(cli, "GPTQ_CLI is not set");
    snprintf(cmd, sizeof cmd,
             "'%s' quantize '%s' -o '%s' --calib '%s' --nsamples 8 --seqlen 64 --seed 3 --quiet "
             "--threads 2",
             cli, g_model, out_cli, g_calib);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    char fa[4300], fb[4300];
    size_t na, nb;
    snprintf(fa, sizeof fa, "%s/model.safetensors", out_api);
    snprintf(fb, sizeof fb, "%s/model.safetensors", out_cli);
    char *a = slurp(fa, &na), *b = slurp(fb, &nb);
    cr_assert(na == nb && memcmp(a, b, na) == 0, "the API and the CLI wrote different bytes");
    free(a);
    free(b);

    /* evaluate the checkpoint: the perplexity `gptq eval` prints */
    gptq_model *m = NULL;
    cr_assert_eq(gptq_model_open(out_api, be, &m), GPTQ_OK, "%s", gptq_last_error());
    size_t tn;
    char *text = slurp(g_text, &tn);
    gptq_eval_options eo;
    gptq_eval_options_init(&eo);
    eo.seqlen = 128;
    eo.max_windows = 4;
    eo.on_progress = on_progress;
    counts ec = {0};
    eo.user = &ec;
    gptq_eval_result r;
    gptq_eval_result_init(&r);
    cr_assert_eq(gptq_evaluate(m, text, tn, &eo, &r), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(r.windows, 4);
    cr_assert_eq(r.predicted, 4 * 127);
    cr_assert(ec.progress >= 1);
    snprintf(cmd, sizeof cmd, "'%s' eval '%s' --text '%s' --seqlen 128 --max-windows 4", cli,
             out_api, g_text);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    char ppl_cli[64] = "", ppl_api[64];
    cr_assert_eq(fscanf(p, "ppl %63s", ppl_cli), 1, "gptq eval printed no ppl");
    cr_assert_eq(pclose(p), 0);
    /* the same computation: the same value, as the CLI prints it */
    snprintf(ppl_api, sizeof ppl_api, "%.6f", r.ppl);
    cr_assert_str_eq(ppl_api, ppl_cli);

    /* cancelled from the first evaluation batch */
    ec.cancel_eval = 1;
    gptq_eval_result_init(&r);
    cr_assert_eq(gptq_evaluate(m, text, tn, &eo, &r), GPTQ_ERR_CANCELLED);
    cr_assert(strstr(gptq_last_error(), "cancelled"), "%s", gptq_last_error());
    free(text);
    gptq_model_close(m);
    gptq_backend_close(be);
}

/* The names in dir (one level), sorted into buf as "a\nb\n". */
static void listing(const char *dir, char *buf, size_t n)
{
    struct dirent **e = NULL;
    int k = scandir(dir, &e, NULL, alphasort);
    cr_assert(k >= 0, "scandir %s", dir);
    buf[0] = '\0';
    for (int i = 0; i < k; i++) {
        if (strcmp(e[i]->d_name, ".") && strcmp(e[i]->d_name, "..")) {
            strncat(buf, e[i]->d_name, n - strlen(buf) - 1);
            strncat(buf, "\n", n - strlen(buf) - 1);
        }
        free(e[i]);
    }
    free(e);
}

Test(api, cancel_from_progress_leaves_nothing)
{
    char out[4200], before[4096], after[4096];
    snprintf(out, sizeof out, "%s/out", g_tmp);
    gptq_backend *be = NULL;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK);
    gptq_quantize_options o;
    small_options(&o);
    counts c = {.cancel_at = 4}; /* after calibration and the embedding, mid-layer */
    o.on_progress = on_progress;
    o.on_module = on_module;
    o.user = &c;
    listing(g_tmp, before, sizeof before);
    cr_assert_eq(gptq_quantize_model_dir(be, g_model, out, &o, NULL), GPTQ_ERR_CANCELLED, "%s",
                 gptq_last_error());
    cr_assert(strstr(gptq_last_error(), "nothing was written"), "%s", gptq_last_error());
    struct stat sb;
    cr_assert(stat(out, &sb) != 0, "%s exists after a cancel", out);
    listing(g_tmp, after, sizeof after);
    cr_assert_str_eq(after, before, "a temporary was left beside the output");

    /* an earlier output stays as it was */
    counts ok = {0};
    o.user = &ok;
    cr_assert_eq(gptq_quantize_model_dir(be, g_model, out, &o, NULL), GPTQ_OK, "%s",
                 gptq_last_error());
    char f[4300];
    size_t n0, n1;
    snprintf(f, sizeof f, "%s/model.safetensors", out);
    char *b0 = slurp(f, &n0);
    struct stat s0;
    cr_assert(stat(f, &s0) == 0);
    o.q.bits = 8; /* a different checkpoint, were it written */
    for (int at = 1; at <= 12; at += 5) {
        counts cc = {.cancel_at = at};
        o.user = &cc;
        listing(g_tmp, before, sizeof before);
        cr_assert_eq(gptq_quantize_model_dir(be, g_model, out, &o, NULL), GPTQ_ERR_CANCELLED,
                     "cancel at progress call %d: %s", at, gptq_last_error());
        listing(g_tmp, after, sizeof after);
        cr_assert_str_eq(after, before);
        char *b1 = slurp(f, &n1);
        struct stat s1;
        cr_assert(stat(f, &s1) == 0);
        cr_assert(n0 == n1 && !memcmp(b0, b1, n0) && s0.st_ino == s1.st_ino,
                  "cancel at %d changed the earlier output", at);
        free(b1);
    }
    free(b0);
    gptq_backend_close(be);
}

Test(api, versioned_structs_and_arguments)
{
    gptq_backend *be = NULL;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK);
    char out[4200];
    snprintf(out, sizeof out, "%s/o", g_tmp);

    /* not initialised: refused, naming the init function */
    gptq_quantize_options o;
    memset(&o, 0, sizeof o);
    cr_assert_eq(gptq_quantize_model_dir(be, g_model, out, &o, NULL), GPTQ_ERR_INVALID);
    cr_assert(strstr(gptq_last_error(), "gptq_quantize_options_init"), "%s", gptq_last_error());
    gptq_eval_options eo;
    memset(&eo, 0, sizeof eo);
    gptq_eval_result r;
    gptq_eval_result_init(&r);
    gptq_model *m = NULL;
    cr_assert_eq(gptq_model_open(g_model, be, &m), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(gptq_evaluate(m, "hello", 5, &eo, &r), GPTQ_ERR_INVALID);
    cr_assert(strstr(gptq_last_error(), "gptq_eval_options_init"), "%s", gptq_last_error());
    gptq_eval_options_init(&eo);
    cr_assert_eq(gptq_evaluate(m, "hello", 5, &eo, &r), GPTQ_ERR_INVALID, "fewer tokens than a window");
    gptq_model_close(m);

    /* GPTQ without calibration; bad counts */
    small_options(&o);
    o.calib_path = NULL;
    cr_assert_eq(gptq_quantize_model_dir(be, g_model, out, &o, NULL), GPTQ_ERR_INVALID);
    cr_assert(strstr(gptq_last_error(), "calibration"), "%s", gptq_last_error());
    small_options(&o);
    o.nsamples = 0;
    cr_assert_eq(gptq_quantize_model_dir(be, g_model, out, &o, NULL), GPTQ_ERR_INVALID);
    small_options(&o);
    o.seqlen = 100000; /* tiny-llama's max_position_embeddings is 256 */
    cr_assert_eq(gptq_quantize_model_dir(be, g_model, out, &o, NULL), GPTQ_ERR_INVALID);
    cr_assert(strstr(gptq_last_error(), "256"), "%s", gptq_last_error());
    struct stat sb;
    cr_assert(stat(out, &sb) != 0, "a refused run wrote %s", out);

    /* a hub id is no folder: say how to get one */
    cr_assert_neq(gptq_model_open("meta-llama/Llama-3.2-1B", be, &m), GPTQ_OK);
    cr_assert(strstr(gptq_last_error(), "huggingface-cli download meta-llama/Llama-3.2-1B"),
              "%s", gptq_last_error());

    /* threads */
    cr_assert_eq(gptq_set_threads(0), GPTQ_ERR_INVALID);
    cr_assert_eq(gptq_set_threads(-3), GPTQ_ERR_INVALID);
    cr_assert_eq(gptq_set_threads(GPTQ_MAX_THREADS + 1), GPTQ_ERR_INVALID);
    cr_assert_eq(gptq_set_threads(2), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_str_eq(gptq_status_str(GPTQ_ERR_CANCELLED), "cancelled");
    gptq_backend_close(be);
}

/* The init of a versioned struct writes the caller's size, not the
 * library's (gptq.h, the ABI rules): a caller built against the first
 * version of gptq_generator_options / gptq_generator_stats (sizes up to the
 * appended join_linears / joined_linears) passes that size through the
 * macro's _sized function; the bytes past it (here a canary of 0xa5) stay
 * as they were, struct_size is that size, the defaults inside it are set.
 * The macro passes sizeof: the whole struct, with the appended default. A
 * size too small to hold struct_size writes nothing. */
Test(api, init_writes_only_the_callers_size)
{
    union {
        gptq_generator_options o;
        gptq_generator_stats s;
        unsigned char b[256];
    } u;
    const size_t ov1 = offsetof(gptq_generator_options, join_linears);
    memset(u.b, 0xa5, sizeof u.b);
    gptq_generator_options_init_sized(&u.o, ov1);
    cr_assert_eq(u.o.struct_size, ov1);
    cr_assert_eq(u.o.linears, GPTQ_LINEARS_AUTO);
    for (size_t i = ov1; i < sizeof u.b; i++)
        cr_assert_eq(u.b[i], 0xa5, "options: byte %zu past the caller's %zu written", i, ov1);
    const size_t sv1 = offsetof(gptq_generator_stats, joined_linears);
    memset(u.b, 0xa5, sizeof u.b);
    gptq_generator_stats_init_sized(&u.s, sv1);
    cr_assert_eq(u.s.struct_size, sv1);
    cr_assert(u.s.fast_linears == 0 && u.s.kv_bytes == 0 && u.s.fast_impl == NULL);
    for (size_t i = sv1; i < sizeof u.b; i++)
        cr_assert_eq(u.b[i], 0xa5, "stats: byte %zu past the caller's %zu written", i, sv1);

    gptq_generator_options o;
    memset(&o, 0xa5, sizeof o);
    gptq_generator_options_init(&o);
    cr_assert_eq(o.struct_size, sizeof o);
    cr_assert_eq(o.join_linears, 1);
    gptq_sampling s;
    memset(&s, 0xa5, sizeof s);
    gptq_sampling_init(&s);
    cr_assert(s.struct_size == sizeof s && s.top_p == 1.0 && s.repeat_penalty == 1.0 &&
              s.top_k == 0);
    gptq_quantize_options q;
    gptq_quantize_options_init(&q);
    cr_assert(q.struct_size == sizeof q && q.true_sequential == 1 && q.nsamples > 0);

    memset(u.b, 0xa5, sizeof u.b);
    gptq_eval_result_init_sized((gptq_eval_result *)(void *)u.b, 4);
    for (size_t i = 0; i < sizeof u.b; i++) cr_assert_eq(u.b[i], 0xa5, "byte %zu written", i);
}
