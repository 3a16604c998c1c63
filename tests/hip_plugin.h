/*
 * hip_plugin.h — a test's backend by name: "hip" is this build's plugin
 * ($GPTQ_BUILD_ROOT/backends/hip, put first on GPTQ_BACKEND_PATH when it
 * was built there), and the test skips, saying why, when it cannot be
 * opened (no plugin built, no GPU); any other name must open. The skip's
 * text starts "HIP backend unavailable": scripts/test.sh counts such
 * skips as GPU ones. hint, when not "", is added to the reason ("; run
 * tools/device_diff.sh on a GPU").
 */
#ifndef GPTQ_TESTS_HIP_PLUGIN_H
#define GPTQ_TESTS_HIP_PLUGIN_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gptq.h"

static inline gptq_backend *tb_open_backend(const char *name, const char *hint)
{
    gptq_backend *be = NULL;
    if (!strcmp(name, "hip")) {
        const char *root = getenv("GPTQ_BUILD_ROOT");
        char dir[4096], so[4200];
        snprintf(dir, sizeof dir, "%s/backends/hip", root ? root : ".");
        snprintf(so, sizeof so, "%s/libgptq-hip.so", dir);
        if (access(so, F_OK) == 0) setenv("GPTQ_BACKEND_PATH", dir, 1);
        if (gptq_backend_open("hip", &be) != GPTQ_OK)
            cr_skip_test("HIP backend unavailable (no plugin built or no GPU%s): %s", hint,
                         gptq_last_error());
        return be;
    }
    cr_assert_eq(gptq_backend_open(name, &be), GPTQ_OK, "%s", gptq_last_error());
    return be;
}

#endif
