/* plugin_good.c — a test plugin: the CPU backend's code built as a
 * separate shared module under another name, so the tests can prove that a
 * plugin loaded with dlopen computes through the vtable exactly what the
 * built-in backend computes. */
#include "backend.h"

const gptq_backend_iface *gptq_backend_entry(void);

const gptq_backend_iface *gptq_backend_entry(void)
{
    static gptq_backend_iface t;
    t = *gptq_cpu_backend_iface();
    t.name = "testcpu";
    t.description = "test plugin (CPU backend code loaded with dlopen)";
    return &t;
}
