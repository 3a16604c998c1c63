/*
 * test_genfast.c — `gptq generate` on the fast A16 kernel (issue 12,
 * genfast): a GPTQ checkpoint's linears kept packed and run by the
 * backend's matmul_q_fast, against the f32 path (dequantized once, gemm:
 * eval's forward).
 *
 * The two paths do not compute the same numbers, by contract: matmul_q_fast
 * rounds every activation to fp16 as it reads it (relative error up to
 * u16 = 2^-11 per element) and sums in its own order (f32, FMA allowed).
 * So the logits are held to a bound, not to bits (FAST_RTOL below), and
 * the greedy tokens of tiny-llama to equality over the first GREEDY_N
 * (measured to hold, see there). What cannot be faked: the two paths'
 * logits must differ (the fast path really ran: fp16 activations cannot
 * give the f32 bits on all 1536 logits), the summary names the kernel, and
 * the weight bytes kept are the packed tensors' own.
 */
#include <stddef.h>

#include "cli_checks.h"
#include "hip_plugin.h"

#include "model/arch.h"
#include "model/model.h"

/* Max |logit_fast - logit_f32| / max |logit_f32| over the vocabulary, at
 * the first step after a 9-token prompt. Each linear's output moves by at
 * most 2^-11 sum_k |x_k w_nk| from the fp16 rounding of x (plus the f32
 * sums' own gamma(K) ~ K 2^-24, far smaller); through 3 layers and the
 * residual stream of tiny-llama that measured 1.0e-4 (w4 g128 sym) and
 * 2.1e-4 (act-order, asym, quantized head); FAST_RTOL keeps about a 10x
 * margin. A wrong weight is far outside it: the zero points off by one
 * (zero_add flipped, a mutant tried once) gave 0.57 and 0.72. */
#define FAST_RTOL 2e-3
/* Greedy tokens that must agree between the two paths. Why they can: at a
 * step where every logit moved by at most delta, a top-2 gap of the f32
 * logits above 2 delta leaves the arg max where it was; the test logs the
 * smallest gap / (2 delta) over the steps: measured 3.78 (w4 g128) and 2.83
 * (act-order) over the 64, so at every step equality follows from the
 * bound, not luck (and the tokens agreed over 120 steps as well). */
#define GREEDY_N 64

static char *tiny(char *buf) { return cc_data(buf, "tiny-llama"); }

/* quantize tiny-llama into tmp/name with GPTQ (16 windows of 128 tokens of
 * data/text/calib.txt: a real solve, seconds) and up to three more options
 * (the list ends at the first NULL). */
static char *quantize(char *out, const char *tmp, const char *name, const char *a1,
                      const char *a2, const char *a3)
{
    char dir[1024], calib[1024];
    ch_join(out, tmp, name);
    cli_result q;
    cc_ok(&q, "quantize", tiny(dir), "-o", out, "--calib", cc_data(calib, "text/calib.txt"),
          "--nsamples", "16", "--seqlen", "128", "--quiet", a1, a2, a3);
    ch_result_free(&q);
    return out;
}

static gptq_generator *open_gen(const char *dir, gptq_backend *be, gptq_linears lin)
{
    gptq_generator_options o;
    gptq_generator_options_init(&o);
    o.linears = lin;
    gptq_generator *g = NULL;
    cr_assert_eq(gptq_generator_open_with(dir, be, &o, &g), GPTQ_OK, "%s", gptq_last_error());
    return g;
}

static void prefill(gptq_generator *g, const char *prompt, int64_t extra)
{
    int32_t *ids = NULL;
    int64_t n = 0;
    cr_assert_eq(gptq_generator_encode(g, prompt, strlen(prompt), &ids, &n), GPTQ_OK);
    cr_assert_eq(gptq_generator_prefill(g, ids, n, n + extra), GPTQ_OK, "%s", gptq_last_error());
    free(ids);
}

static gptq_generator_stats stats_of(const gptq_generator *g)
{
    gptq_generator_stats s;
    gptq_generator_stats_init(&s);
    cr_assert_eq(gptq_generator_get_stats(g, &s), GPTQ_OK, "%s", gptq_last_error());
    return s;
}

/* Bytes of a w-bit packed linear (rows, cols) in groups of G as the
 * checkpoint stores it: qweight, qzeros, fp16 scales, g_idx. */
static int64_t packed_bytes(int64_t rows, int64_t cols, int64_t bits, int64_t G)
{
    const int64_t ng = (cols + G - 1) / G;
    return cols * bits / 32 * rows * 4 + ng * (rows * bits / 32) * 4 + ng * rows * 2 + cols * 4;
}

/* tiny-llama's seven linears per layer (config.json: D 256, F 384, 4
 * heads and 2 KV heads of 64), 3 layers: sum of f32 bytes minus packed
 * bytes at 4 bits, group 128. Joined (gptq_model_kv_set_join: q, k, v
 * one tensor, gate, up another), a group keeps one g_idx (256 i32) for
 * its linears: two fewer for q, k, v and one fewer for gate, up. */
static int64_t tiny_g_idx_joined_saves(void) { return 3 * (2 + 1) * 256 * 4; }
static int64_t tiny_saved_bytes(int joined)
{
    const int64_t sh[7][2] = {{256, 256}, {128, 256}, {128, 256}, {256, 256},
                              {384, 256}, {384, 256}, {256, 384}};
    int64_t saved = 0;
    for (int i = 0; i < 7; i++)
        saved += sh[i][0] * sh[i][1] * 4 - packed_bytes(sh[i][0], sh[i][1], 4, 128);
    return 3 * saved + (joined ? tiny_g_idx_joined_saves() : 0);
}

/* The first logits of both paths, their greedy tokens, the counts and
 * bytes, for a checkpoint quantized with the given options. head: the
 * lm_head is quantized too (--lm-head). */
static void fast_against_f32(const char *a1, const char *a2, const char *a3, int head)
{
    char tmp[512], ck[1024];
    ch_mkdtemp(tmp, "genfast");
    quantize(ck, tmp, "ck", a1, a2, a3);
    gptq_backend *be = NULL;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK);
    gptq_generator *gf = open_gen(ck, be, GPTQ_LINEARS_AUTO);
    gptq_generator *ge = open_gen(ck, be, GPTQ_LINEARS_F32);
    const char *prompt = "The kernel reads the packed weights once and";
    prefill(gf, prompt, GREEDY_N);
    prefill(ge, prompt, GREEDY_N);
    const int64_t np = gptq_generator_length(gf);

    const gptq_generator_stats sf = stats_of(gf), se = stats_of(ge);
    cr_assert_eq(sf.fast_linears, 21 + head, "fast linears %lld", (long long)sf.fast_linears);
    cr_assert_eq(sf.f32_linears, 1 - head);
    cr_assert(sf.fast_impl && *sf.fast_impl, "no kernel named");
    cr_assert_eq(se.fast_linears, 0);
    cr_assert_eq(se.f32_linears, 22);
    cr_assert_null(se.fast_impl);
    cr_assert_eq(se.kv_bytes, sf.kv_bytes);
    /* 3 layers x 2 caches x (prompt + GREEDY_N) positions x 2 KV heads x 64 dims x 4 bytes */
    cr_assert_eq(sf.kv_bytes, 3 * 2 * (np + GREEDY_N) * 2 * 64 * 4, "%lld",
                 (long long)sf.kv_bytes);
    if (!head)
        cr_assert_eq(se.weight_bytes - sf.weight_bytes, tiny_saved_bytes(1),
                     "f32 %lld, fast %lld bytes", (long long)se.weight_bytes,
                     (long long)sf.weight_bytes);

    const int64_t V = gptq_generator_vocab(gf);
    const float *lf = gptq_generator_logits(gf), *le = gptq_generator_logits(ge);
    double dmax = 0, emax = 0;
    int64_t same = 0;
    for (int64_t v = 0; v < V; v++) {
        cr_assert(isfinite(lf[v]) && isfinite(le[v]));
        const double d = fabs((double)lf[v] - le[v]);
        dmax = d > dmax ? d : dmax;
        emax = fabs(le[v]) > emax ? fabs(le[v]) : emax;
        same += lf[v] == le[v];
    }
    cr_log_info("%s %s %s: max |fast - f32| / max |f32| = %.3g, %lld of %lld logits equal",
                a1 ? a1 : "", a2 ? a2 : "", a3 ? a3 : "", dmax / emax, (long long)same,
                (long long)V);
    cr_assert(dmax / emax <= FAST_RTOL, "first logits: max |fast - f32| / max |f32| = %g > %g",
              dmax / emax, FAST_RTOL);
    cr_assert(same < V, "the fast path gave the f32 path's bits on every logit: it did not run");

    gptq_sampling s;
    gptq_sampling_init(&s);
    double worst = INFINITY; /* the smallest top-2 gap / (2 delta) */
    for (int i = 0; i < GREEDY_N; i++) {
        const float *xf = gptq_generator_logits(gf), *xe = gptq_generator_logits(ge);
        double delta = 0, top1 = -INFINITY, top2 = -INFINITY;
        for (int64_t v = 0; v < V; v++) {
            const double d = fabs((double)xf[v] - xe[v]);
            delta = d > delta ? d : delta;
            if (xe[v] > top1) {
                top2 = top1;
                top1 = xe[v];
            } else if (xe[v] > top2) {
                top2 = xe[v];
            }
        }
        const double r = (top1 - top2) / (2 * delta);
        worst = r < worst ? r : worst;
        int32_t a, b;
        cr_assert_eq(gptq_generator_sample(gf, &s, &a), GPTQ_OK);
        cr_assert_eq(gptq_generator_sample(ge, &s, &b), GPTQ_OK);
        cr_assert_eq(a, b, "greedy token %d: fast %d, f32 %d", i, a, b);
        cr_assert_eq(gptq_generator_step(gf, a), GPTQ_OK, "%s", gptq_last_error());
        cr_assert_eq(gptq_generator_step(ge, b), GPTQ_OK, "%s", gptq_last_error());
    }
    cr_log_info("%d greedy tokens agree; smallest top-2 gap / (2 max |fast - f32|): %.3g",
                GREEDY_N, worst);
    gptq_generator_close(gf);
    gptq_generator_close(ge);
    gptq_backend_close(be);
    ch_rm_tree(tmp);
}

/* w4 g128, the defaults (sym, GAR): q/k/v/o/gate/up/down of 3 layers on
 * the kernel, the lm_head (not quantized) on gemm. */
Test(genfast, w4_g128_fast_against_f32) { fast_against_f32(NULL, NULL, NULL, 0); }

/* act-order (g_idx not k // G), asymmetric zeros (gptq_v2), and a
 * quantized lm_head: all 22 linears on the kernel. */
Test(genfast, act_order_asym_head_fast_against_f32)
{
    fast_against_f32("--desc-act", "--asym", "--lm-head", 1);
}

/* ------------------------------------------------------------------ */
/* joined linears                                                      */
/* ------------------------------------------------------------------ */

/* The logits of g and h bit for bit, or the first that differs. */
static void same_logits(gptq_generator *g, gptq_generator *h, const char *when)
{
    const int64_t V = gptq_generator_vocab(g);
    const float *a = gptq_generator_logits(g), *b = gptq_generator_logits(h);
    for (int64_t v = 0; v < V; v++)
        cr_assert(memcmp(&a[v], &b[v], sizeof *a) == 0, "%s: logit %lld: joined %.9g, apart %.9g",
                  when, (long long)v, a[v], b[v]);
}

/* Joined against apart on a GPU: what the kernel sums in which order may
 * follow the tensor's width (gemv-mma splits K by the number of column
 * tiles), so the logits are held to a bound: each output moves by at most
 * backend.h's 2 gamma(K + 2) sum |x w| either way, some 1e-6 of the
 * largest logit of these models through two layers; JOIN_GPU_RTOL keeps a
 * wide margin and is still far below what a wrong column offset gives (the
 * CPU rows' mutants moved logits by 0.2 to 0.9 of their size). */
#define JOIN_GPU_RTOL 1e-4

static void close_logits(gptq_generator *g, gptq_generator *h, const char *when)
{
    const int64_t V = gptq_generator_vocab(g);
    const float *a = gptq_generator_logits(g), *b = gptq_generator_logits(h);
    double d = 0, m = 0;
    for (int64_t v = 0; v < V; v++) {
        cr_assert(isfinite(a[v]) && isfinite(b[v]), "%s: logit %lld not finite", when,
                  (long long)v);
        d = fmax(d, fabs((double)a[v] - b[v]));
        m = fmax(m, fabs((double)b[v]));
    }
    cr_assert(d <= JOIN_GPU_RTOL * m, "%s: max |joined - apart| = %g, %g of the largest logit",
              when, d, d / m);
}

/* The generators of checkpoint ck on be, joined (*gj, the default) and
 * apart (*ga), each prefilled with the same prompt and room for steps more. */
static void open_joined_and_apart(const char *ck, gptq_backend *be, int steps,
                                  gptq_generator **gj, gptq_generator **ga)
{
    gptq_generator_options o;
    gptq_generator_options_init(&o);
    cr_assert_eq(o.join_linears, 1);
    cr_assert_eq(gptq_generator_open_with(ck, be, &o, gj), GPTQ_OK, "%s", gptq_last_error());
    o.join_linears = 0;
    cr_assert_eq(gptq_generator_open_with(ck, be, &o, ga), GPTQ_OK, "%s", gptq_last_error());
    const char *prompt = "The kernel reads the packed weights once and";
    prefill(*gj, prompt, steps);
    prefill(*ga, prompt, steps);
}

/* Their logits after the prompt, then steps greedy tokens (the same on
 * both) each followed by the logits: the same bits (cpu) or within
 * JOIN_GPU_RTOL (gpu); label names the case in a failure. */
static void joined_like_apart(gptq_generator *gj, gptq_generator *ga, int steps, int gpu,
                              const char *label)
{
    char when[1200];
    snprintf(when, sizeof when, "%s after the prompt", label);
    if (gpu) close_logits(gj, ga, when);
    else same_logits(gj, ga, when);
    gptq_sampling s;
    gptq_sampling_init(&s);
    for (int i = 0; i < steps; i++) {
        int32_t a, b;
        cr_assert_eq(gptq_generator_sample(gj, &s, &a), GPTQ_OK);
        cr_assert_eq(gptq_generator_sample(ga, &s, &b), GPTQ_OK);
        cr_assert_eq(a, b, "%s: greedy token %d: joined %d, apart %d", label, i, a, b);
        cr_assert_eq(gptq_generator_step(gj, a), GPTQ_OK, "%s", gptq_last_error());
        cr_assert_eq(gptq_generator_step(ga, b), GPTQ_OK, "%s", gptq_last_error());
        snprintf(when, sizeof when, "%s step %d", label, i);
        if (gpu) close_logits(gj, ga, when);
        else same_logits(gj, ga, when);
    }
}

/* Joined linears (q, k, v one packed tensor, gate, up another: one
 * matmul_q_fast a group) against the same linears apart. On the CPU
 * backend each output column's sums depend on its column's tile, its
 * slab of k and g_idx (cpu_w4a16.c), not on the tensor's width, and
 * tiny-llama's widths (256, 128, 384) are whole tiles of every ISA: so the
 * logits must be the same bits, at the prompt (T > 1: the joined output
 * split by gather) and at each greedy step (T = 1: q, k, v and gate, up
 * read in place from the joined row). A column offset off by one, a
 * split of the wrong width or a bias left out cannot give them. The
 * counts say 15 of the 21 linears ran joined, and the bytes kept are the
 * apart ones' less the g_idx copies a group shares. Then the versioned
 * structs: a caller of the first options (no join_linears) gets the
 * default (joined) and one of the first stats is not written past its
 * size. */
static void joined_against_apart(const char *a1, const char *a2)
{
    char tmp[512], ck[1024];
    ch_mkdtemp(tmp, "genfast-join");
    quantize(ck, tmp, "ck", a1, a2, NULL);
    gptq_backend *be = NULL;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK);
    gptq_generator *gj = NULL, *ga = NULL;
    open_joined_and_apart(ck, be, 32, &gj, &ga);
    const gptq_generator_stats sj = stats_of(gj), sa = stats_of(ga);
    cr_assert_eq(sj.fast_linears, 21);
    cr_assert_eq(sa.fast_linears, 21);
    cr_assert_eq(sj.joined_linears, 15, "joined %lld", (long long)sj.joined_linears);
    cr_assert_eq(sa.joined_linears, 0);
    cr_assert_eq(sa.weight_bytes - sj.weight_bytes, tiny_g_idx_joined_saves(), "%lld - %lld",
                 (long long)sa.weight_bytes, (long long)sj.weight_bytes);
    joined_like_apart(gj, ga, 32, 0, "tiny-llama");
    gptq_generator_close(gj);
    gptq_generator_close(ga);

    /* the first versions of the structs */
    gptq_generator_options o;
    gptq_generator_options_init(&o);
    o.join_linears = 0; /* outside the old size: not read */
    o.struct_size = offsetof(gptq_generator_options, join_linears);
    gptq_generator *g1 = NULL;
    cr_assert_eq(gptq_generator_open_with(ck, be, &o, &g1), GPTQ_OK, "%s", gptq_last_error());
    prefill(g1, "The kernel", 1);
    gptq_generator_stats s1;
    gptq_generator_stats_init(&s1);
    s1.joined_linears = -7;
    s1.struct_size = offsetof(gptq_generator_stats, joined_linears);
    cr_assert_eq(gptq_generator_get_stats(g1, &s1), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(s1.fast_linears, 21);
    cr_assert_eq(s1.joined_linears, -7, "a field past struct_size was written");
    cr_assert_eq(stats_of(g1).joined_linears, 15, "the old options did not get the default");
    gptq_generator_close(g1);
    gptq_backend_close(be);
    ch_rm_tree(tmp);
}

Test(genfast, joined_linears_are_the_apart_bits) { joined_against_apart(NULL, NULL); }

/* act-order: q, k, v (and gate, up) of one input share the Hessian, so
 * GPTQ orders their columns the same and their g_idx agree: joined too */
Test(genfast, joined_linears_act_order_asym) { joined_against_apart("--desc-act", "--asym"); }

/* Every family's forward with joined linears: a checkpoint of the model
 * (RTN, w4 g32) generated joined and apart, on the CPU the logits the same
 * bits after the prompt and at 8 greedy steps (on a GPU within
 * JOIN_GPU_RTOL). Covers what tiny-llama does
 * not: Qwen3's q/k norms read from the joined row, Gemma's GeGLU and
 * post-norms, Mistral's window, Phi-3's own fused linears (a group of one:
 * nothing joined), OPT's q, k, v biases joined (opt-18m, ../shared). Widths
 * are whole tiles of every ISA (multiples of 16): see joined_against_apart. */
static void joined_family_on(const char *dir, int64_t want_joined, const char *backend)
{
    const int gpu = strcmp(backend, "cpu") != 0;
    gptq_backend *be = tb_open_backend(backend, "");
    char tmp[512], ck[1024];
    ch_mkdtemp(tmp, "genfast-jfam");
    ch_join(ck, tmp, "ck");
    cli_result q;
    cc_ok(&q, "quantize", dir, "-o", ck, "--method", "rtn", "--group-size", "32", "--quiet");
    ch_result_free(&q);
    gptq_generator *gj = NULL, *ga = NULL;
    open_joined_and_apart(ck, be, 8, &gj, &ga);
    const gptq_generator_stats sj = stats_of(gj), sa = stats_of(ga);
    cr_assert_eq(sj.joined_linears, want_joined, "%s: joined %lld", dir,
                 (long long)sj.joined_linears);
    cr_assert_eq(sa.joined_linears, 0);
    cr_assert_eq(sj.fast_linears, sa.fast_linears);
    joined_like_apart(gj, ga, 8, gpu, dir);
    gptq_generator_close(gj);
    gptq_generator_close(ga);
    gptq_backend_close(be);
    ch_rm_tree(tmp);
}

static char *family(char *buf, const char *name)
{
    snprintf(buf, 1024, "%s/tests/data/families/%s", ch_source_root(), name);
    return buf;
}

/* 2 layers: q, k, v and gate, up joined in each; OPT (4 layers): q, k, v
 * (with biases) joined, fc1 alone. Each on the CPU (bits) and on the HIP
 * plugin of this build (the bound; skipped without it or a GPU:
 * tools/device_genfast.sh runs them on the device). */
#define JOINED_ROW(suite, name, fam, want, backend)                                              \
    Test(suite, name)                                                                           \
    {                                                                                           \
        char d[1024];                                                                           \
        joined_family_on(family(d, fam), want, backend);                                        \
    }
#define JOINED_ROWS(suite, backend)                                                             \
    JOINED_ROW(suite, joined_qwen3, "qwen3", 10, backend)                                       \
    JOINED_ROW(suite, joined_gemma2, "gemma2", 10, backend)                                     \
    JOINED_ROW(suite, joined_gemma3, "gemma3", 10, backend)                                     \
    JOINED_ROW(suite, joined_mistral, "mistral", 10, backend)                                   \
    JOINED_ROW(suite, joined_phi3_has_its_own, "phi3", 0, backend)                              \
    Test(suite, joined_opt_biases)                                                              \
    {                                                                                           \
        char d[1024];                                                                           \
        joined_family_on(cc_shared(d, "models/opt-18m"), 12, backend);                          \
    }
JOINED_ROWS(genfast, "cpu")
JOINED_ROWS(genfast_hip, "hip")

/* ------------------------------------------------------------------ */
/* the command line                                                    */
/* ------------------------------------------------------------------ */

/* `gptq generate` on a checkpoint: --linears fast and auto are the same
 * run (same stdout bytes) and say "fast <kernel> (21, 15 joined)" with the lm_head on
 * gemm; --linears f32 says "f32 gemm (22)", and its stdout is the
 * library's F32 greedy text; the weight bytes printed are smaller on the
 * fast path. On this checkpoint the greedy texts of both paths agree
 * (the logit test above argues why). */
Test(genfast, cli_linears_and_summary)
{
    char tmp[512], ck[1024];
    ch_mkdtemp(tmp, "genfast-cli");
    quantize(ck, tmp, "ck", NULL, NULL, NULL);
    cli_result fa, au, fe;
    cc_ok(&fa, "generate", ck, "--prompt", "The kernel", "-n", "24", "--linears", "fast");
    cc_ok(&au, "generate", ck, "--prompt", "The kernel", "-n", "24");
    cc_ok(&fe, "generate", ck, "--prompt", "The kernel", "-n", "24", "--linears", "f32");
    cr_assert_str_eq(fa.out, au.out);
    cr_assert_str_eq(fa.out, fe.out, "fast \"%s\", f32 \"%s\"", fa.out, fe.out);
    cr_assert(strlen(fa.out) > 10, "a short text: \"%s\"", fa.out);
    cr_assert(strstr(fa.err, "linears: fast ") && strstr(fa.err, " (21, 15 joined), f32 gemm (1);"),
              "%s", fa.err);
    cr_assert(strstr(au.err, "linears: fast ") && strstr(au.err, " (21, 15 joined), f32 gemm (1);"),
              "%s", au.err);
    cr_assert(strstr(fe.err, "linears: f32 gemm (22);"), "%s", fe.err);
    double wf = 0, we = 0;
    cr_assert(strstr(fa.err, "; weights ") &&
              sscanf(strstr(fa.err, "; weights "), "; weights %lf MiB", &wf) == 1);
    cr_assert(strstr(fe.err, "; weights ") &&
              sscanf(strstr(fe.err, "; weights "), "; weights %lf MiB", &we) == 1);
    /* the printed MiB to two decimals: the difference is tiny_saved_bytes */
    cr_assert(fabs((we - wf) - (double)tiny_saved_bytes(1) / 1048576.0) < 0.011,
              "weights: fast %.2f MiB, f32 %.2f MiB", wf, we);
    cr_assert(strstr(fe.err, "generated 24 tokens") && strstr(fe.err, "stopped: -n"), "%s",
              fe.err);

    /* the library's F32 text, one step per token */
    gptq_backend *be = NULL;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK);
    gptq_generator *g = open_gen(ck, be, GPTQ_LINEARS_F32);
    prefill(g, "The kernel", 24);
    gptq_sampling s;
    gptq_sampling_init(&s);
    for (int i = 0; i < 24; i++) {
        int32_t id;
        cr_assert_eq(gptq_generator_sample(g, &s, &id), GPTQ_OK);
        cr_assert_neq(id, 0, "EOS among the tokens: a weak check");
        cr_assert_eq(gptq_generator_step(g, id), GPTQ_OK);
    }
    char *text = NULL;
    cr_assert_eq(gptq_generator_text(g, &text, NULL), GPTQ_OK);
    cr_assert_str_eq(fe.out, text);
    free(text);
    gptq_generator_close(g);
    gptq_backend_close(be);
    ch_result_free(&fa);
    ch_result_free(&au);
    ch_result_free(&fe);
    ch_rm_tree(tmp);
}

/* A backend that generates but has no matmul_q_fast (the nofast test
 * plugin: the CPU code declining only that op): auto falls back to the f32
 * linears, says so, and prints the cpu backend's --linears f32 bytes. A
 * floating-point model says f32 gemm on any backend. */
Test(genfast, backend_without_the_op_falls_back)
{
    char tmp[512], ck[1024], plug[1024], dir[1024];
    ch_mkdtemp(tmp, "genfast-nofast");
    quantize(ck, tmp, "ck", NULL, NULL, NULL);
    cc_plugin(plug, "nofast");
    cli_result nf, fe, fp;
    cc_ok(&nf, "generate", ck, "--prompt", "The kernel", "-n", "16", "--backend", plug);
    cc_ok(&fe, "generate", ck, "--prompt", "The kernel", "-n", "16", "--linears", "f32");
    cc_ok(&fp, "generate", tiny(dir), "--prompt", "The kernel", "-n", "4");
    cr_assert(strstr(nf.err, "linears: f32 gemm (22);") && !strstr(nf.err, "linears: fast"),
              "%s", nf.err);
    cr_assert_str_eq(nf.out, fe.out);
    cr_assert(strstr(fp.err, "linears: f32 gemm (22);"), "%s", fp.err);
    ch_result_free(&nf);
    ch_result_free(&fe);
    ch_result_free(&fp);
    ch_rm_tree(tmp);
}

/* A compressed-tensors checkpoint (the reader converts weight_packed to
 * the GPTQ layout) runs on the kernel too, with the same bytes out as its
 * gptq_v2 twin from the same quantization. */
Test(genfast, compressed_tensors_fast)
{
    char tmp[512], v2[1024], ct[1024];
    ch_mkdtemp(tmp, "genfast-ct");
    quantize(v2, tmp, "v2", "--format", "gptq_v2", NULL);
    quantize(ct, tmp, "ct", "--format", "compressed-tensors", NULL);
    cli_result a, b;
    cc_ok(&a, "generate", v2, "--prompt", "The kernel", "-n", "16", "--linears", "fast");
    cc_ok(&b, "generate", ct, "--prompt", "The kernel", "-n", "16", "--linears", "fast");
    cr_assert_str_eq(a.out, b.out);
    cr_assert(strstr(b.err, "linears: fast ") && strstr(b.err, " (21, 15 joined), f32 gemm (1);"),
              "%s", b.err);
    ch_result_free(&a);
    ch_result_free(&b);
    ch_rm_tree(tmp);
}

/* ------------------------------------------------------------------ */
/* append: no forward for the last token                               */
/* ------------------------------------------------------------------ */

/* append(a) then step(b) against step(a), step(b): the same sequence and
 * text, and the logits of b's position from one 2-token batch instead of
 * two 1-token ones (f32 either way; KV_RTOL of test_generate.c, 1e-5,
 * bounds such shape-only differences). Between them, sample refuses:
 * the logits of a's position were never computed. append, like step,
 * refuses an id outside the vocabulary and a full cache. */
Test(genfast, append_defers_the_forward)
{
    char dir[1024];
    gptq_backend *be = NULL;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK);
    gptq_generator *ga = open_gen(tiny(dir), be, GPTQ_LINEARS_AUTO);
    gptq_generator *gs = open_gen(dir, be, GPTQ_LINEARS_AUTO);
    prefill(ga, "The kernel", 3);
    prefill(gs, "The kernel", 3);
    const int64_t np = gptq_generator_length(ga), V = gptq_generator_vocab(ga);
    gptq_sampling s;
    gptq_sampling_init(&s);
    int32_t a, b = 42, c;
    cr_assert_eq(gptq_generator_sample(ga, &s, &a), GPTQ_OK);
    cr_assert_eq(gptq_generator_append(ga, a), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(gptq_generator_length(ga), np + 1);
    cr_assert_eq(gptq_generator_sample(ga, &s, &c), GPTQ_ERR_INVALID);
    cr_assert(strstr(gptq_last_error(), "appended without running the model"), "%s",
              gptq_last_error());
    cr_assert_eq(gptq_generator_append(ga, (int32_t)V), GPTQ_ERR_INVALID);
    cr_assert_eq(gptq_generator_step(ga, b), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(gptq_generator_step(gs, a), GPTQ_OK);
    cr_assert_eq(gptq_generator_step(gs, b), GPTQ_OK);
    cr_assert_eq(gptq_generator_length(ga), np + 2);
    const float *la = gptq_generator_logits(ga), *ls = gptq_generator_logits(gs);
    double dmax = 0, smax = 0;
    for (int64_t v = 0; v < V; v++) {
        dmax = fmax(dmax, fabs((double)la[v] - ls[v]));
        smax = fmax(smax, fabs((double)ls[v]));
    }
    cr_log_info("append + step against two steps: max |diff| / max |logit| = %.3g", dmax / smax);
    cr_assert(dmax <= 1e-5 * smax, "max |diff| / max |logit| = %g", dmax / smax);
    char *ta = NULL, *ts = NULL;
    cr_assert_eq(gptq_generator_text(ga, &ta, NULL), GPTQ_OK);
    cr_assert_eq(gptq_generator_text(gs, &ts, NULL), GPTQ_OK);
    cr_assert_str_eq(ta, ts);
    /* the cache holds np + 3 positions: one more append, then it is full */
    cr_assert_eq(gptq_generator_append(ga, b), GPTQ_OK);
    cr_assert_eq(gptq_generator_append(ga, b), GPTQ_ERR_INVALID);
    cr_assert(strstr(gptq_last_error(), "reached its"), "%s", gptq_last_error());
    free(ta);
    free(ts);
    gptq_generator_close(ga);
    gptq_generator_close(gs);
    gptq_backend_close(be);
}

/* ------------------------------------------------------------------ */
/* the library's options and stats                                     */
/* ------------------------------------------------------------------ */

/* Versioned structs: an uninitialised size and an unknown linears value
 * are refused by name; GPTQ_LINEARS_FAST on a floating-point model and on
 * a backend without the op is refused when the model is loaded; stats
 * before anything is loaded are zeros. */
Test(genfast, options_and_stats_refusals)
{
    char dir[1024], plug[1024];
    gptq_backend *be = NULL, *nf = NULL;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK);
    gptq_generator_options o;
    gptq_generator_options_init(&o);
    gptq_generator *g = NULL;
    o.struct_size = 0;
    cr_assert_eq(gptq_generator_open_with(tiny(dir), be, &o, &g), GPTQ_ERR_INVALID);
    cr_assert(strstr(gptq_last_error(), "struct_size 0"), "%s", gptq_last_error());
    gptq_generator_options_init(&o);
    o.linears = (gptq_linears)7;
    cr_assert_eq(gptq_generator_open_with(dir, be, &o, &g), GPTQ_ERR_INVALID);
    cr_assert(strstr(gptq_last_error(), "linears 7"), "%s", gptq_last_error());
    cr_assert_null(g);

    g = open_gen(dir, be, GPTQ_LINEARS_FAST);
    gptq_generator_stats st;
    gptq_generator_stats_init(&st);
    cr_assert_eq(gptq_generator_get_stats(g, &st), GPTQ_OK);
    cr_assert(st.fast_linears == 0 && st.f32_linears == 0 && st.weight_bytes == 0 &&
              st.kv_bytes == 0 && !st.fast_impl);
    st.struct_size = 8;
    cr_assert_eq(gptq_generator_get_stats(g, &st), GPTQ_ERR_INVALID);
    cr_assert_eq(gptq_generator_reserve(g, 16), GPTQ_ERR_UNSUPPORTED);
    cr_assert(strstr(gptq_last_error(), "has no GPTQ-packed linear"), "%s", gptq_last_error());
    gptq_generator_close(g);

    char tmp[512], ck[1024];
    ch_mkdtemp(tmp, "genfast-opts");
    quantize(ck, tmp, "ck", "--method", "rtn", NULL);
    cr_assert_eq(gptq_backend_open(cc_plugin(plug, "nofast"), &nf), GPTQ_OK, "%s",
                 gptq_last_error());
    g = open_gen(ck, nf, GPTQ_LINEARS_FAST);
    cr_assert_eq(gptq_generator_reserve(g, 16), GPTQ_ERR_UNSUPPORTED);
    cr_assert(strstr(gptq_last_error(), "backend nofast has no fast A16 matmul"), "%s",
              gptq_last_error());
    gptq_generator_close(g);
    gptq_backend_close(nf);
    gptq_backend_close(be);
    ch_rm_tree(tmp);
}

/* ------------------------------------------------------------------ */
/* the RoPE table, extended by rows                                    */
/* ------------------------------------------------------------------ */

/* A generation step adds one row to the RoPE table instead of making it
 * again (gptq_rope_upload_table): right only when the rows of the table of
 * P0 positions are those of the table of P1 positions. For every type and
 * pairs on both sides of the limits (max_positions 64, original 32):
 * gptq_rope_same_rows says 1 exactly when the two tables agree bit for bit
 * on their common rows, and rows_of(P, p0) is rows p0.. of the table of P. */
Test(genfast, rope_rows_extend_the_table)
{
    enum { ROT = 16, MAXP = 64 };
    gptq_rope r[6];
    memset(r, 0, sizeof r);
    for (int t = 0; t < 6; t++) {
        r[t].rot = ROT;
        r[t].attention_factor = 1.0;
        r[t].factor = 4.0;
        r[t].original_max = 32;
    }
    r[0].type = GPTQ_ROPE_DEFAULT;
    r[1].type = GPTQ_ROPE_LINEAR;
    r[2].type = GPTQ_ROPE_DYNAMIC;
    r[3].type = GPTQ_ROPE_LLAMA3;
    r[3].low_freq_factor = 1.0;
    r[3].high_freq_factor = 4.0;
    r[4].type = GPTQ_ROPE_YARN;
    r[4].beta_fast = 32;
    r[4].beta_slow = 1;
    r[4].truncate = 1;
    r[4].attention_factor = 1.2;
    r[5].type = GPTQ_ROPE_LONGROPE;
    for (int i = 0; i < ROT / 2; i++) {
        r[5].short_factor[i] = 1.0 + 0.1 * i;
        r[5].long_factor[i] = 2.0 + 0.3 * i;
    }
    static const int64_t pairs[][2] = {{1, 2},   {10, 11}, {31, 32}, {32, 33}, {33, 40},
                                       {63, 64}, {64, 65}, {65, 66}, {20, 70}, {70, 80}};
    static float t0[100 * ROT], t1[100 * ROT], part[100 * ROT];
    int differing = 0;
    for (int t = 0; t < 6; t++)
        for (size_t k = 0; k < sizeof pairs / sizeof *pairs; k++) {
            const int64_t P0 = pairs[k][0], P1 = pairs[k][1];
            gptq_rope_table_of(&r[t], 10000.0, MAXP, P0, t0);
            gptq_rope_table_of(&r[t], 10000.0, MAXP, P1, t1);
            const int equal = !memcmp(t0, t1, (size_t)(P0 * ROT) * sizeof(float));
            differing += !equal;
            cr_assert_eq(gptq_rope_same_rows(&r[t], MAXP, P0, P1), equal,
                         "type %d, %lld and %lld positions: tables %s", t, (long long)P0,
                         (long long)P1, equal ? "agree" : "differ");
            gptq_rope_rows_of(&r[t], 10000.0, MAXP, P1, P0, part);
            cr_assert(!memcmp(part, t1 + P0 * ROT, (size_t)((P1 - P0) * ROT) * sizeof(float)),
                      "type %d: rows %lld.. of %lld", t, (long long)P0, (long long)P1);
        }
    /* dynamic: 64/65, 65/66, 20/70, 70/80; longrope: 32/33, 20/70 */
    cr_assert_eq(differing, 6, "%d pairs differ", differing);
}
