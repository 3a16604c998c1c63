/* test_backend.c — the backend registry: the built-in CPU backend, plugins
 * loaded with dlopen (good, too old, broken, incomplete, missing), and a
 * plugin computing through the vtable exactly what the built-in does. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gptq.h"
#include "internal.h"

static const char *plugin_dir(void)
{
    const char *d = getenv("GPTQ_TEST_PLUGIN_DIR");
    cr_assert(d, "GPTQ_TEST_PLUGIN_DIR is not set (run through meson test)");
    return d;
}

static void plugin_path(char *buf, size_t n, const char *which)
{
    snprintf(buf, n, "%s/libgptq-test%s.so", plugin_dir(), which);
}

Test(backend, builtin_cpu)
{
    gptq_backend *be = NULL;
    cr_assert_eq(gptq_backend_open("cpu", &be), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_str_eq(gptq_backend_name(be), "cpu");
    gptq_backend_close(be);
}

Test(backend, missing_by_name)
{
    setenv("GPTQ_BACKEND_PATH", "/nonexistent-dir-for-test", 1);
    gptq_backend *be = NULL;
    int st = gptq_backend_open("nosuchbackend", &be);
    cr_assert_eq(st, GPTQ_ERR_BACKEND);
    cr_assert_null(be);
    cr_assert(strstr(gptq_last_error(), "libgptq-nosuchbackend.so not found"), "%s",
              gptq_last_error());
    cr_assert(strstr(gptq_last_error(), "GPTQ_BACKEND_PATH"), "%s", gptq_last_error());
    unsetenv("GPTQ_BACKEND_PATH");
}

Test(backend, missing_by_path)
{
    gptq_backend *be = NULL;
    cr_assert_eq(gptq_backend_open("/nonexistent/libgptq-x.so", &be), GPTQ_ERR_BACKEND);
    cr_assert(strstr(gptq_last_error(), "no such file"), "%s", gptq_last_error());
}

Test(backend, bad_name)
{
    gptq_backend *be = NULL;
    cr_assert_eq(gptq_backend_open("../evil", &be), GPTQ_ERR_BACKEND); /* has '/' -> path */
    cr_assert_eq(gptq_backend_open("Bad Name", &be), GPTQ_ERR_INVALID);
}

Test(backend, too_old)
{
    char p[4096];
    plugin_path(p, sizeof p, "old");
    gptq_backend *be = NULL;
    cr_assert_eq(gptq_backend_open(p, &be), GPTQ_ERR_BACKEND);
    cr_assert(strstr(gptq_last_error(), "plugin too old"), "%s", gptq_last_error());
    char want[64];
    snprintf(want, sizeof want, "ABI version %u", GPTQ_BACKEND_ABI_VERSION - 1);
    cr_assert(strstr(gptq_last_error(), want), "%s", gptq_last_error());
}

Test(backend, broken)
{
    char p[4096];
    plugin_path(p, sizeof p, "broken");
    gptq_backend *be = NULL;
    cr_assert_eq(gptq_backend_open(p, &be), GPTQ_ERR_BACKEND);
    cr_assert(strstr(gptq_last_error(), "exports no 'gptq_backend_entry'"), "%s",
              gptq_last_error());
}

Test(backend, not_a_library)
{
    char p[] = "/tmp/gptq-test-notlib-XXXXXX";
    int fd = mkstemp(p);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, "hello", 5), 5);
    close(fd);
    gptq_backend *be = NULL;
    cr_assert_eq(gptq_backend_open(p, &be), GPTQ_ERR_BACKEND);
    cr_assert(strstr(gptq_last_error(), "cannot load backend plugin"), "%s", gptq_last_error());
    unlink(p);
}

Test(backend, empty_required_slot)
{
    char p[4096];
    plugin_path(p, sizeof p, "empty_slot");
    gptq_backend *be = NULL;
    cr_assert_eq(gptq_backend_open(p, &be), GPTQ_ERR_BACKEND);
    cr_assert(strstr(gptq_last_error(), "required slot 'gptq_block' is empty"), "%s",
              gptq_last_error());
}

/* A layer quantized through the plugin equals the built-in's, byte for byte. */
Test(backend, plugin_matches_builtin)
{
    char p[4096];
    plugin_path(p, sizeof p, "good");
    gptq_backend *cpu = NULL, *plug = NULL;
    cr_assert_eq(gptq_backend_open("cpu", &cpu), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(gptq_backend_open(p, &plug), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_str_eq(gptq_backend_name(plug), "testcpu");

    enum { R = 64, C = 256, N = 512 };
    float *W = malloc(sizeof(float) * R * C), *X = malloc(sizeof(float) * N * C);
    float *H1 = malloc(sizeof(float) * C * C), *H2 = malloc(sizeof(float) * C * C);
    srand(7);
    for (int i = 0; i < R * C; i++) W[i] = ((float)rand() / (float)RAND_MAX - 0.5f) * 0.1f;
    for (int i = 0; i < N * C; i++) X[i] = (float)rand() / (float)RAND_MAX - 0.5f + (float)(i % C == 3);

    gptq_hessian *h1, *h2;
    cr_assert_eq(gptq_hessian_new(cpu, C, &h1), GPTQ_OK);
    cr_assert_eq(gptq_hessian_new(plug, C, &h2), GPTQ_OK);
    cr_assert_eq(gptq_hessian_add(h1, X, N), GPTQ_OK);
    cr_assert_eq(gptq_hessian_add(h2, X, N), GPTQ_OK);
    cr_assert_eq(gptq_hessian_get(h1, H1), GPTQ_OK);
    cr_assert_eq(gptq_hessian_get(h2, H2), GPTQ_OK);
    cr_assert_eq(memcmp(H1, H2, sizeof(float) * C * C), 0, "Hessians differ");

    gptq_quant_config cfg;
    gptq_quant_config_default(&cfg);
    cfg.desc_act = 1;
    cfg.sym = 0;
    gptq_layer_result a, b;
    cr_assert_eq(gptq_quantize_layer(cpu, W, R, C, H1, &cfg, &a), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(gptq_quantize_layer(plug, W, R, C, H2, &cfg, &b), GPTQ_OK, "%s",
                 gptq_last_error());
    cr_assert_eq(memcmp(a.codes, b.codes, R * C), 0);
    cr_assert_eq(memcmp(a.scales, b.scales, sizeof(float) * a.ngroups * R), 0);
    cr_assert_eq(memcmp(a.dequant, b.dequant, sizeof(float) * R * C), 0);
    cr_assert_eq(a.loss, b.loss);
    gptq_layer_result_free(&a);
    gptq_layer_result_free(&b);
    gptq_hessian_free(h1);
    gptq_hessian_free(h2);
    free(W);
    free(X);
    free(H1);
    free(H2);
    gptq_backend_close(plug);
    gptq_backend_close(cpu);
}

/* supports_op (ABI 4): a declined op is unsupported although its slot is
 * filled; declining a required op fails the open. */
Test(backend, supports_op_declines)
{
    char p[4096];
    plugin_path(p, sizeof p, "declines");
    gptq_backend *be = NULL;
    cr_assert_eq(gptq_backend_open(p, &be), GPTQ_OK, "%s", gptq_last_error());
    cr_assert_eq(gptq_be_supports(be, GPTQ_OP_RMSNORM), 0);
    cr_assert_eq(gptq_be_supports(be, GPTQ_OP_LAYERNORM), 1);
    cr_assert_eq(gptq_be_supports(be, GPTQ_OP_LINEAR_FAST), 0); /* empty slot */
    cr_assert_eq(gptq_be_supports(be, GPTQ_OP_COUNT), 0);
    cr_assert_str_eq(gptq_op_name(GPTQ_OP_RMSNORM), "rmsnorm");
    cr_assert_eq(gptq_op_of_slot(offsetof(gptq_backend_iface, rmsnorm)), GPTQ_OP_RMSNORM);
    cr_assert_eq(gptq_op_of_slot(offsetof(gptq_backend_iface, alloc)), GPTQ_OP_COUNT);
    gptq_backend_close(be);

    setenv("GPTQ_TEST_DECLINE_GEMM", "1", 1);
    int st = gptq_backend_open(p, &be);
    unsetenv("GPTQ_TEST_DECLINE_GEMM");
    cr_assert_eq(st, GPTQ_ERR_BACKEND);
    cr_assert_null(be);
    cr_assert(strstr(gptq_last_error(), "declines the required op 'gemm'"), "%s",
              gptq_last_error());
}
