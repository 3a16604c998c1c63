/*
 * test_backend_ops.c — every row of tests/backend_ops_cases.c on every
 * backend that loads, one test per op:
 *   - the CPU backend against the row's naive reference (tolerance `ref`),
 *     so the table has teeth where there is no GPU;
 *   - every other backend against the CPU backend (tolerance `tol`): the HIP
 *     plugin when it loads (else a printed skip: no plugin built, no GPU),
 *     and each name or path in $GPTQ_TEST_BACKENDS (':'-separated; these
 *     must load).
 * The CPU backend runs every row (linear_fast through the core's fallback,
 * gemm); another backend that does not support an optional op (empty slot,
 * or its supports_op declines) is reported as skipped for it, not failed.
 * Each row's figures are printed.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_ops_cases.h"

enum { MAX_BE = 16 };
static gptq_backend *g_be[MAX_BE]; /* [0]: the CPU backend, the reference */
static int g_nbe;

static void open_backends(void)
{
    g_nbe = 0;
    cr_assert_eq(gptq_backend_open("cpu", &g_be[g_nbe++]), GPTQ_OK, "%s", gptq_last_error());
    /* the loader finds this build's plugin beside the executable (../backends/hip) */
    if (gptq_backend_open("hip", &g_be[g_nbe]) == GPTQ_OK) g_nbe++;
    else printf("[skip] hip: %s\n", gptq_last_error());
    const char *extra = getenv("GPTQ_TEST_BACKENDS");
    char *list = strdup(extra ? extra : "");
    cr_assert(list);
    for (char *save = NULL, *n = strtok_r(list, ":", &save); n; n = strtok_r(NULL, ":", &save)) {
        cr_assert(g_nbe < MAX_BE, "too many backends in GPTQ_TEST_BACKENDS");
        cr_assert_eq(gptq_backend_open(n, &g_be[g_nbe]), GPTQ_OK,
                     "GPTQ_TEST_BACKENDS names %s: %s", n, gptq_last_error());
        g_nbe++;
    }
    free(list);
}

static void close_backends(void)
{
    for (int i = 0; i < g_nbe; i++) gptq_backend_close(g_be[i]);
    g_nbe = 0;
}

static void row_label(const op_case *c, char *buf, size_t n)
{
    int k = snprintf(buf, n, "%s [", c->name), np = 10;
    while (np > 1 && !c->p[np - 1]) np--; /* trailing zeros: switches off */
    for (int i = 0; i < np && k > 0 && (size_t)k < n; i++)
        k += snprintf(buf + k, n - (size_t)k, i ? " %lld" : "%lld", (long long)c->p[i]);
    if (k > 0 && (size_t)k < n) snprintf(buf + k, n - (size_t)k, "]%s%s", c->env ? " " : "",
                                         c->env ? c->env : "");
}

/* got against want: an expectation (every row is checked and reported) */
static void check(const op_case *c, const oc_tol *tol, const oc_data *got, const oc_data *want,
                  const char *who, const char *against)
{
    char label[300], msg[400], fig[64] = "identical";
    row_label(c, label, sizeof label);
    double measured;
    const int bad = oc_compare(tol, got, want, msg, sizeof msg, &measured);
    if (tol->kind != OC_BYTES) snprintf(fig, sizeof fig, "within: %.3g", measured);
    printf("%s %s vs %s: %s (%s)\n", label, who, against, bad ? msg : fig, tol->why);
    cr_expect(!bad, "%s: %s against %s: %s; tolerance: %s", label, who, against, msg, tol->why);
    const int pbad = oc_props(c, got, msg, sizeof msg);
    cr_expect(!pbad, "%s on %s: %s", label, who, msg);
}

static void run_op(gptq_op op)
{
    open_backends();
    int rows = 0;
    int skipped[MAX_BE] = {0};
    for (size_t r = 0; r < oc_ncases; r++) {
        const op_case *c = &oc_cases[r];
        if (c->op != op) continue;
        rows++;
        char label[300];
        row_label(c, label, sizeof label);
        oc_data want, ref;
        oc_gen(c, r + 1, &want);
        oc_naive(c, &want);
        oc_clone(&want, &ref);
        cr_assert(oc_runs_on(c, g_be[0], 1), "%s: the CPU backend does not run it", label);
        cr_assert_eq(oc_run(c, g_be[0], &ref), GPTQ_OK, "%s on cpu: %s", label, gptq_last_error());
        check(c, &c->ref, &ref, &want, "cpu", "naive");
        for (int b = 1; b < g_nbe; b++) {
            const char *who = gptq_backend_name(g_be[b]);
            if (!oc_runs_on(c, g_be[b], 0)) {
                if (!skipped[b]++)
                    printf("[skip] %s on %s: not supported\n", gptq_op_name(op), who);
                continue;
            }
            oc_data got;
            oc_clone(&want, &got);
            cr_assert_eq(oc_run(c, g_be[b], &got), GPTQ_OK, "%s on %s: %s", label, who,
                         gptq_last_error());
            check(c, &c->tol, &got, &ref, who, "cpu");
            oc_data_free(&got);
        }
        oc_data_free(&ref);
        oc_data_free(&want);
    }
    close_backends();
    cr_assert(rows > 0, "the table has no row for %s", gptq_op_name(op));
}

/* The table is whole: every op has rows, every tolerance its reason. */
Test(backend_ops, every_op_has_rows_and_reasons)
{
    int n[GPTQ_OP_COUNT] = {0};
    for (size_t r = 0; r < oc_ncases; r++) {
        const op_case *c = &oc_cases[r];
        cr_assert((unsigned)c->op < GPTQ_OP_COUNT && c->name, "row %zu", r);
        cr_assert(c->tol.why && c->ref.why, "row %zu (%s): a tolerance without its reason", r,
                  c->name);
        n[c->op]++;
    }
    for (int op = 0; op < GPTQ_OP_COUNT; op++)
        cr_expect(n[op] > 0, "no row for %s", gptq_op_name((gptq_op)op));
}

#define OP_TEST(e, name) \
    Test(backend_ops, name) { run_op(e); }
OP_TEST(GPTQ_OP_GEMM, gemm)
OP_TEST(GPTQ_OP_HESSIAN_ACCUMULATE, hessian_accumulate)
OP_TEST(GPTQ_OP_CHOLESKY_INVERSE_UPPER, cholesky_inverse_upper)
OP_TEST(GPTQ_OP_QUANT_GRID, quant_grid)
OP_TEST(GPTQ_OP_GPTQ_BLOCK, gptq_block)
OP_TEST(GPTQ_OP_EMBEDDING, embedding)
OP_TEST(GPTQ_OP_RMSNORM, rmsnorm)
OP_TEST(GPTQ_OP_LAYERNORM, layernorm)
OP_TEST(GPTQ_OP_ROPE, rope)
OP_TEST(GPTQ_OP_ATTENTION, attention)
OP_TEST(GPTQ_OP_SILU_MUL, silu_mul)
OP_TEST(GPTQ_OP_RELU, relu)
OP_TEST(GPTQ_OP_ADD, add)
OP_TEST(GPTQ_OP_BIAS_ADD, bias_add)
OP_TEST(GPTQ_OP_CROSS_ENTROPY, cross_entropy)
OP_TEST(GPTQ_OP_LINEAR_FAST, linear_fast)
OP_TEST(GPTQ_OP_HESSIAN_FINISH, hessian_finish)
OP_TEST(GPTQ_OP_DOT, dot)
OP_TEST(GPTQ_OP_PACK_CODES, pack_codes)
OP_TEST(GPTQ_OP_DEQUANTIZE, dequantize)
OP_TEST(GPTQ_OP_MATMUL_Q, matmul_q)
OP_TEST(GPTQ_OP_GATHER, gather)
OP_TEST(GPTQ_OP_TO_F32, to_f32)
OP_TEST(GPTQ_OP_DEAD_COLUMNS, dead_columns)
OP_TEST(GPTQ_OP_GELU_TANH_MUL, gelu_tanh_mul)
OP_TEST(GPTQ_OP_SCALE, scale)
OP_TEST(GPTQ_OP_SOFTCAP, softcap)
OP_TEST(GPTQ_OP_MATMUL_Q_FAST, matmul_q_fast)
OP_TEST(GPTQ_OP_ATTENTION_KV, attention_kv)
