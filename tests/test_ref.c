/*
 * test_ref.c — the golden cases of ref/: for every case, run `gptq layer`
 * (CPU backend) on ref/<case>/input.safetensors with the flags of
 * ref/<case>/case.json and require every tensor of
 * ref/<case>/expected.safetensors byte for byte (memcmp), and the statistics
 * in the metadata (loss, out_rel_err, damp, dead columns, format, options) as
 * the same strings. Timings and the quantizer version string are not compared.
 *
 * The goldens were made by the same CPU backend (tools/make_ref_inputs.py
 * --expected) and checked against an independent PyTorch oracle
 * (tools/check_ref.py; ref/<case>/CHECK.md has the figures), so a failure
 * here means the reference's output bytes changed: either a regression, or an
 * intended change that needs new goldens (and a new GPTQ_REF_VERSION if their
 * meaning changed). The message says how to regenerate.
 *
 * GAR (act_group_aware) is on by default since the gar_* cases were added;
 * the cases made before it were made in the paper's column order, and their
 * case.json flags pin it with --no-act-group-aware, so their expected bytes
 * are the ones they were made with. Their expected files carry no
 * act_group_aware metadata: the CLI's must then say false.
 *
 * The test runs under meson's environment: OPENBLAS_CORETYPE=Haswell pins the
 * BLAS kernels the goldens were made with; the thread count is left as it is
 * (the goldens were made with OMP_NUM_THREADS=1, the reference promises the
 * same bytes for any count).
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gptq.h"

/* The version that tools/make_ref_inputs.py (REF_VERSION) stamps into
 * expected.safetensors as metadata "gptq_ref_version". */
#define GPTQ_REF_VERSION "1"

#define REGEN_HINT                                                                       \
    "regenerate the goldens (after checking the change is intended, see ref/README.md):\n" \
    "  meson setup build-ref && ninja -C build-ref\n"                                     \
    "  /usr/bin/python3 tools/make_ref_inputs.py --expected build-ref\n"                  \
    "  /usr/bin/python3 tools/check_ref.py oracle && /usr/bin/python3 tools/check_ref.py " \
    "compare --write"

/* The cases; test `ref, table_lists_every_case` keeps this in step with ref/. */
typedef struct ref_case {
    char name[64];
} ref_case;

static ref_case k_cases[] = {
    {"damp_retry"},        {"dead_cols_act"},  {"mse_w4_g32"},        {"rtn_w4_g128"},
    {"w2_g64_asym_b32"},   {"w3_g128_asym_act"}, {"w4_g128_asym"},    {"w4_g32_act_static"},
    {"w4_g32_sym_b64"},    {"w8_row_sym"},
    /* gar */
    {"gar_w4_g128_asym"},  {"gar_w4_g128_sym"}, {"gar_dead_cols"},    {"gar_w4_g32_tail"},
    {"gar_w4_g32_static"},
};
#define NCASES (sizeof k_cases / sizeof k_cases[0])

/* Metadata compared exactly (as strings); everything the solve decides. */
static const char *k_meta_keys[] = {
    "loss",          "out_rel_err", "damp_used",  "damp_retries", "dead_cols",
    "checkpoint_format", "method",  "bits",       "group_size",   "sym",
    "desc_act",      "static_groups", "mse",      "block_size",   "damp_percent",
    "backend",       "act_group_aware",
};

static const char *src_root(void)
{
    const char *p = getenv("GPTQ_SOURCE_ROOT");
    cr_assert(p, "GPTQ_SOURCE_ROOT is not set (run through meson test)");
    return p;
}

/* The CLI: $GPTQ_CLI (set by tests/meson.build), else $GPTQ_BUILD_ROOT/src/cli/gptq. */
static void cli_path(char *buf, size_t n)
{
    const char *p = getenv("GPTQ_CLI");
    if (p && *p) {
        snprintf(buf, n, "%s", p);
        return;
    }
    const char *b = getenv("GPTQ_BUILD_ROOT");
    cr_assert(b, "neither GPTQ_CLI nor GPTQ_BUILD_ROOT is set (run through meson test)");
    snprintf(buf, n, "%s/src/cli/gptq", b);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    cr_assert(n >= 0);
    rewind(f);
    char *s = malloc((size_t)n + 1);
    cr_assert(s);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n, "short read of %s", path);
    s[n] = '\0';
    fclose(f);
    return s;
}

/* Run argv (argv[0] the program) with stdout+stderr into logp; exit status or 128+signal. */
static int run_logged(char *const *argv, const char *logp)
{
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork failed");
    if (pid == 0) {
        int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    int ws = 0;
    cr_assert_eq(waitpid(pid, &ws, 0), pid);
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

/* One element of tensor t at flat index i, printed for a mismatch message. */
static void fmt_elem(char *b, size_t n, gptq_dtype dt, const void *data, size_t i)
{
    switch (dt) {
    case GPTQ_F32: snprintf(b, n, "%.9g", (double)((const float *)data)[i]); break;
    case GPTQ_I32: snprintf(b, n, "%d", ((const int32_t *)data)[i]); break;
    case GPTQ_U8: snprintf(b, n, "%u", ((const uint8_t *)data)[i]); break;
    case GPTQ_F16:
        snprintf(b, n, "%.6g (0x%04x)", (double)gptq_f16_to_f32(((const uint16_t *)data)[i]),
                 ((const uint16_t *)data)[i]);
        break;
    default: snprintf(b, n, "?"); break;
    }
}

/* Compare one expected tensor with the same name in `got`: fails the test on a
 * difference, or (report_only) returns the number of differing elements. */
static size_t compare_tensor(const char *cname, const gptq_st_info *e, gptq_st_file *got,
                             int report_only)
{
    gptq_st_info g;
    cr_assert_eq(gptq_st_find(got, e->name, &g), GPTQ_OK,
                 "%s: the CLI output has no tensor '%s' (expected has it)", cname, e->name);
    cr_assert_eq(g.dtype, e->dtype, "%s: tensor %s is %s, expected %s", cname, e->name,
                 gptq_dtype_name(g.dtype), gptq_dtype_name(e->dtype));
    cr_assert_eq(g.ndim, e->ndim, "%s: tensor %s has %d dims, expected %d", cname, e->name,
                 g.ndim, e->ndim);
    for (int d = 0; d < e->ndim; d++)
        cr_assert_eq(g.shape[d], e->shape[d], "%s: tensor %s dim %d is %lld, expected %lld",
                     cname, e->name, d, (long long)g.shape[d], (long long)e->shape[d]);
    cr_assert_eq(g.nbytes, e->nbytes);
    if (memcmp(g.data, e->data, e->nbytes) == 0) return 0;
    const size_t es = gptq_dtype_size(e->dtype);
    const size_t nel = e->nbytes / es;
    size_t ndiff = 0, first = 0;
    for (size_t i = 0; i < nel; i++)
        if (memcmp((const char *)g.data + i * es, (const char *)e->data + i * es, es) != 0) {
            if (ndiff == 0) first = i;
            ndiff++;
        }
    if (report_only) return ndiff;
    char ge[48], ee[48];
    fmt_elem(ge, sizeof ge, e->dtype, g.data, first);
    fmt_elem(ee, sizeof ee, e->dtype, e->data, first);
    const int64_t cols = e->ndim == 2 ? e->shape[1] : 1;
    cr_assert_fail("%s: tensor %s differs in %zu of %zu elements; first at flat index %zu "
            "(row %lld, col %lld): got %s, expected %s\n" REGEN_HINT,
            cname, e->name, ndiff, nel, first, (long long)(first / (size_t)cols),
            (long long)(first % (size_t)cols), ge, ee);
    return ndiff;
}

/* Run the CLI on a case (its flags, then `extra` ones, which override) and compare
 * with the golden. report_only: return the number of differing tensor elements
 * and metadata values instead of failing. */
static size_t run_case(const char *cname, const char *const *extra, int report_only)
{
    const char *root = src_root();
    char dir[1024], p_case[1100], p_in[1100], p_exp[1100];
    snprintf(dir, sizeof dir, "%s/ref/%s", root, cname);
    snprintf(p_case, sizeof p_case, "%s/case.json", dir);
    snprintf(p_in, sizeof p_in, "%s/input.safetensors", dir);
    snprintf(p_exp, sizeof p_exp, "%s/expected.safetensors", dir);

    /* the golden and its version first: a stale golden says so before any run */
    gptq_st_file *exp = NULL;
    cr_assert_eq(gptq_st_open(p_exp, &exp), GPTQ_OK, "%s: %s\n" REGEN_HINT, cname,
                 gptq_last_error());
    const char *ver = gptq_st_metadata(exp, "gptq_ref_version");
    cr_assert(ver && strcmp(ver, GPTQ_REF_VERSION) == 0,
              "%s: expected.safetensors has gptq_ref_version %s, this test wants %s\n" REGEN_HINT,
              cname, ver ? ver : "(none)", GPTQ_REF_VERSION);

    /* options */
    char *text = read_text(p_case);
    cJSON *cj = cJSON_Parse(text);
    cr_assert(cj, "%s: case.json is not valid JSON", cname);
    const cJSON *flags = cJSON_GetObjectItemCaseSensitive(cj, "flags");
    cr_assert(cJSON_IsArray(flags), "%s: case.json has no \"flags\" array", cname);

    char tmp[] = "/tmp/gptq-ref-XXXXXX";
    cr_assert(mkdtemp(tmp), "mkdtemp failed");
    char p_out[128], p_log[128], cli[1024];
    snprintf(p_out, sizeof p_out, "%s/out.safetensors", tmp);
    snprintf(p_log, sizeof p_log, "%s/log.txt", tmp);
    cli_path(cli, sizeof cli);

    char *argv[64];
    int n = 0;
    argv[n++] = cli;
    argv[n++] = "layer";
    argv[n++] = p_in;
    argv[n++] = "-o";
    argv[n++] = p_out;
    argv[n++] = "--quiet";
    const cJSON *it;
    cJSON_ArrayForEach(it, flags)
    {
        cr_assert(cJSON_IsString(it) && n < 63, "%s: case.json flags must be strings", cname);
        argv[n++] = it->valuestring;
    }
    for (int k = 0; extra && extra[k] && n < 63; k++) argv[n++] = (char *)extra[k];
    argv[n] = NULL;
    int rc = run_logged(argv, p_log);
    if (rc != 0) {
        char *log = read_text(p_log);
        cr_assert_fail("%s: `gptq layer` exited with %d:\n%s", cname, rc, log);
    }

    gptq_st_file *got = NULL;
    cr_assert_eq(gptq_st_open(p_out, &got), GPTQ_OK, "%s: %s", cname, gptq_last_error());
    int nt = gptq_st_count(exp);
    cr_assert(nt >= 9, "%s: expected.safetensors holds only %d tensors", cname, nt);
    size_t ndiff = 0;
    for (int i = 0; i < nt; i++) {
        gptq_st_info e;
        cr_assert_eq(gptq_st_get(exp, i, &e), GPTQ_OK);
        ndiff += compare_tensor(cname, &e, got, report_only);
    }
    for (size_t k = 0; k < sizeof k_meta_keys / sizeof *k_meta_keys; k++) {
        const char *ev = gptq_st_metadata(exp, k_meta_keys[k]);
        const char *gv = gptq_st_metadata(got, k_meta_keys[k]);
        /* made before the key existed: in the paper's order (see the top) */
        if (!ev && strcmp(k_meta_keys[k], "act_group_aware") == 0) ev = "false";
        cr_assert(ev, "%s: expected.safetensors lacks metadata '%s'\n" REGEN_HINT, cname,
                  k_meta_keys[k]);
        cr_assert(gv, "%s: the CLI output lacks metadata '%s'", cname, k_meta_keys[k]);
        if (report_only) {
            ndiff += strcmp(gv, ev) != 0;
            continue;
        }
        cr_assert_str_eq(gv, ev, "%s: metadata %s is %s, expected %s\n" REGEN_HINT, cname,
                         k_meta_keys[k], gv, ev);
    }

    gptq_st_close(got);
    gptq_st_close(exp);
    cJSON_Delete(cj);
    free(text);
    unlink(p_out);
    unlink(p_log);
    rmdir(tmp);
    return ndiff;
}

ParameterizedTestParameters(ref, golden)
{
    return cr_make_param_array(ref_case, k_cases, NCASES);
}

ParameterizedTest(ref_case *c, ref, golden, .timeout = 120)
{
    run_case(c->name, NULL, 0);
}

/* Every folder of ref/ with a case.json is in k_cases and the other way round,
 * so a new golden cannot go untested. */
Test(ref, table_lists_every_case)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/ref", src_root());
    DIR *d = opendir(dir);
    cr_assert(d, "cannot open %s", dir);
    int found[NCASES] = {0};
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char p[1400];
        struct stat sb;
        snprintf(p, sizeof p, "%s/%s/case.json", dir, de->d_name);
        if (stat(p, &sb) != 0) continue;
        size_t i = 0;
        while (i < NCASES && strcmp(k_cases[i].name, de->d_name) != 0) i++;
        cr_assert(i < NCASES, "ref/%s has a case.json but is not in k_cases of tests/test_ref.c",
                  de->d_name);
        found[i] = 1;
    }
    closedir(d);
    for (size_t i = 0; i < NCASES; i++)
        cr_assert(found[i], "k_cases lists %s, but ref/%s/case.json does not exist",
                  k_cases[i].name, k_cases[i].name);
}

/* Negative control: the harness must see a change. The same case with a slightly
 * different damping (0.011 instead of 0.01) changes the solve; the comparison
 * has to report differing bytes (in codes, scales, dequant, loss, ...). */
Test(ref, catches_a_changed_solve, .timeout = 120)
{
    const char *extra[] = {"--damp-percent", "0.011", NULL};
    size_t ndiff = run_case("w4_g128_asym", extra, 1);
    cr_assert_gt(ndiff, 100, "damp 0.011 instead of 0.01 changed only %zu values", ndiff);
}
