/*
 * test_families.c — our forward against transformers, one small model per
 * family (issue 11).
 *
 * tests/data/families/<family>/ holds a randomly initialised model that
 * transformers built from the family's real config structure, scaled down,
 * and refs.safetensors: its logits (at every 6th position) and per-token
 * NLLs on two fixed sequences of 96 ids, computed by transformers in fp32
 * with eager attention and TF32 off (tools/make_family_refs.py; the command
 * is in tests/data/families/README.md).
 *
 * A family we support is compared: max |ours - ref| / max |ref| over the
 * kept logits, and max |NLL diff|, each below its tolerance. A family we do
 * not support yet must be refused at open with a message naming the
 * architecture or the key; when support lands, setting the row's `refused`
 * to NULL turns the row into the comparison.
 *
 * Every row runs on each backend: `families` on the CPU, `families_hip` on
 * the HIP plugin of this build ($GPTQ_BUILD_ROOT/backends/hip, as
 * test_hip.c finds it), which skips saying so when the plugin is not built
 * or no GPU is there (on NVIDIA: tools/device_families.sh runs them).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/io.h"
#include "model/model.h"

#include "hip_plugin.h"

/* Both sides compute in f32 throughout; they differ only by the order of
 * f32 sums (gemm blocking, softmax, RoPE angles): measured max |diff| /
 * max |ref| 7e-7 .. 9.4e-7 over the four compared families (logits up to
 * 3.7, width 64, 2 layers; phi3, compared since its support: 9.36e-7;
 * gemma2 7.29e-7 and gemma3 6.92e-7 on the CPU, 6.78e-7 and 8.94e-7 on the
 * HIP backend on an H200). 1e-5 keeps a margin of ~10x while any wrong
 * convention moves logits by far more (llama3 read with plain RoPE: 0.81
 * relative, measured). */
#define FAMILY_LOGIT_RTOL 1e-5
/* NLLs are log-softmax of those logits in f64 on both sides: measured max
 * |diff| 1.1e-6 .. 3.1e-6 nats (phi3: 1.4e-6; gemma2 1.19e-6, gemma3
 * 1.39e-6, through the final softcap as eval's NLL); 3e-5 for the same
 * margin. */
#define FAMILY_NLL_ATOL 3e-5
/* The HIP forward (backends/hip) in its default math, f32: the Linears are
 * one f32 GEMM kernel (an fmaf chain over k, no TF32: TF32 only with
 * --forward-math tf32, which this test does not set), attention dot
 * products are fmaf chains, norm statistics and softmax sums are in double,
 * expf/exp are the accurate library functions (no fast math). So it differs
 * from transformers, like the CPU, only by the order of f32 sums (FMA rounds
 * once where the CPU rounds twice: smaller, not larger, per-step errors):
 * the same tolerances. Measured on an H200 (tools/device_families.sh,
 * bench/RESULTS.md): 6.3e-7 .. 1.08e-6 relative (phi3 the largest), NLLs
 * 1.4e-6 .. 2.7e-6 nats, as on the CPU. */
#define FAMILY_HIP_LOGIT_RTOL FAMILY_LOGIT_RTOL
#define FAMILY_HIP_NLL_ATOL FAMILY_NLL_ATOL

typedef struct family_row {
    const char *family;  /* folder under tests/data/families */
    /* NULL: we support the family, compare it. Otherwise opening the model
     * must fail with a message containing this text (the architecture or
     * the unsupported key). */
    const char *refused;
} family_row;

static const family_row rows[] = {
    {.family = "llama"},
    {.family = "llama3"},
    {.family = "qwen3"},
    /* sliding_window 32: the 96 tokens cross it three times */
    {.family = "mistral"},
    /* softcaps 2 (attention) and 5 (logits), (1 + w) norms, GeGLU, the
     * sqrt(64) = 8 normalizer, sliding layer 0 (window 32) */
    {.family = "gemma2"},
    /* q/k norms, the sliding layer's own RoPE base (1e4 against 1e6) */
    {.family = "gemma3"},
    {.family = "phi3"},
};

static const char *src_root(void)
{
    const char *r = getenv("GPTQ_SOURCE_ROOT");
    return r ? r : ".";
}

typedef struct refs {
    gptq_st_file *f;
    const int32_t *ids; /* (NSEQ, S) */
    const int32_t *pos; /* (P) */
    const float *logits; /* (NSEQ, P, V) */
    const double *nll;   /* (NSEQ, S-1) */
    int64_t nseq, S, P, V;
} refs;

static void refs_open(const char *dir, const char *family, refs *r)
{
    char path[600];
    snprintf(path, sizeof path, "%s/refs.safetensors", dir);
    memset(r, 0, sizeof *r);
    cr_assert_eq(gptq_st_open(path, &r->f), GPTQ_OK, "%s", gptq_last_error());
    const char *magic = gptq_st_metadata(r->f, "magic");
    cr_assert(magic && !strcmp(magic, "gptq-c-family-ref"), "%s: bad magic", path);
    const char *fam = gptq_st_metadata(r->f, "family");
    cr_assert(fam && !strcmp(fam, family), "%s: family %s", path, fam ? fam : "(none)");
    gptq_st_info a, b, c, d;
    cr_assert_eq(gptq_st_find(r->f, "ids", &a), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(gptq_st_find(r->f, "pos", &b), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(gptq_st_find(r->f, "logits", &c), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(gptq_st_find(r->f, "nll", &d), GPTQ_OK, "%s", gptq_last_error());
    cr_assert(a.dtype == GPTQ_I32 && b.dtype == GPTQ_I32 && c.dtype == GPTQ_F32 &&
              d.dtype == GPTQ_F64);
    r->ids = a.data;
    r->nseq = a.shape[0];
    r->S = a.shape[1];
    r->pos = b.data;
    r->P = b.shape[0];
    r->logits = c.data;
    r->V = c.shape[2];
    r->nll = d.data;
    cr_assert(c.shape[0] == r->nseq && c.shape[1] == r->P && d.shape[0] == r->nseq &&
              d.shape[1] == r->S - 1);
}

/* Our forward over the first S tokens of each sequence against the kept
 * logits at positions < S and the NLLs of t < S-1. */
static void compare(const char *family, const char *be, gptq_model *m, const refs *r, int64_t S,
                    double rtol, double atol)
{
    int32_t *ids = malloc((size_t)(r->nseq * S) * sizeof *ids);
    float *lg = malloc((size_t)(r->nseq * S * r->V) * sizeof *lg);
    double *nll = malloc((size_t)(r->nseq * (S - 1)) * sizeof *nll);
    cr_assert(ids && lg && nll);
    for (int64_t b = 0; b < r->nseq; b++)
        memcpy(ids + b * S, r->ids + b * r->S, (size_t)S * sizeof *ids);
    double sum = 0.0;
    cr_assert_eq(gptq_model_forward(m, ids, r->nseq, S, &sum, nll, lg), GPTQ_OK, "%s: %s",
                 family, gptq_last_error());
    double dmax = 0.0, scale = 0.0, nmax = 0.0;
    int64_t kept = 0;
    for (int64_t b = 0; b < r->nseq; b++)
        for (int64_t p = 0; p < r->P; p++) {
            if (r->pos[p] >= S) continue;
            kept++;
            const float *ref = r->logits + (b * r->P + p) * r->V;
            const float *our = lg + (b * S + r->pos[p]) * r->V;
            for (int64_t v = 0; v < r->V; v++) {
                cr_assert(isfinite(our[v]), "%s: logit %lld is %g", family, (long long)v,
                          (double)our[v]);
                dmax = fmax(dmax, fabs((double)our[v] - ref[v]));
                scale = fmax(scale, fabs((double)ref[v]));
            }
        }
    for (int64_t b = 0; b < r->nseq; b++)
        for (int64_t t = 0; t < S - 1; t++)
            nmax = fmax(nmax, fabs(nll[b * (S - 1) + t] - r->nll[b * (r->S - 1) + t]));
    cr_assert_gt(kept, 0, "%s: no kept position below %lld", family, (long long)S);
    const double rel = dmax / scale;
    cr_log_info("%s on %s: %lld positions x %lld logits (max |ref| %.3g): max |diff| / max |ref| "
                "%.3g; %lld NLLs: max |diff| %.3g",
                family, be, (long long)kept, (long long)r->V, scale, rel,
                (long long)(r->nseq * (S - 1)), nmax);
    cr_expect_leq(rel, rtol, "%s on %s: logits max rel diff %.3g", family, be, rel);
    cr_expect_leq(nmax, atol, "%s on %s: NLL max diff %.3g", family, be, nmax);
    free(ids);
    free(lg);
    free(nll);
}

static void run_row(const family_row *row, const char *backend)
{
    gptq_backend *be = tb_open_backend(backend, "");
    const int hip = !strcmp(backend, "hip");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tests/data/families/%s", src_root(), row->family);
    refs r;
    refs_open(dir, row->family, &r);
    gptq_model *m = NULL;
    const int st = gptq_model_open(dir, be, &m);
    if (row->refused) {
        cr_log_info("%s on %s: refused: %s", row->family, backend, gptq_last_error());
        cr_expect_neq(st, GPTQ_OK, "%s: opened, but the row says refused: support landed? "
                      "set .refused = NULL", row->family);
        cr_expect(strstr(gptq_last_error(), row->refused), "%s: the refusal does not name %s: %s",
                  row->family, row->refused, gptq_last_error());
    } else {
        cr_assert_eq(st, GPTQ_OK, "%s: %s", row->family, gptq_last_error());
        compare(row->family, backend, m, &r, r.S,
                hip ? FAMILY_HIP_LOGIT_RTOL : FAMILY_LOGIT_RTOL,
                hip ? FAMILY_HIP_NLL_ATOL : FAMILY_NLL_ATOL);
        gptq_model_close(m);
    }
    gptq_backend_close(be);
    gptq_st_close(r.f);
}

static void run_family(const char *family, const char *backend)
{
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (!strcmp(rows[i].family, family)) {
            run_row(&rows[i], backend);
            return;
        }
    cr_assert_fail("no row for %s", family);
}

Test(families, llama) { run_family("llama", "cpu"); }
Test(families, llama3) { run_family("llama3", "cpu"); }
Test(families, qwen3) { run_family("qwen3", "cpu"); }
Test(families, mistral) { run_family("mistral", "cpu"); }
Test(families, gemma2) { run_family("gemma2", "cpu"); }
Test(families, gemma3) { run_family("gemma3", "cpu"); }
Test(families, phi3) { run_family("phi3", "cpu"); }

Test(families_hip, llama) { run_family("llama", "hip"); }
Test(families_hip, llama3) { run_family("llama3", "hip"); }
Test(families_hip, qwen3) { run_family("qwen3", "hip"); }
Test(families_hip, mistral) { run_family("mistral", "hip"); }
Test(families_hip, gemma2) { run_family("gemma2", "hip"); }
Test(families_hip, gemma3) { run_family("gemma3", "hip"); }
Test(families_hip, phi3) { run_family("phi3", "hip"); }
