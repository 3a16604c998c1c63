/* plugin_nullerr.c — a plugin of the right ABI whose create fails and whose
 * error slot then returns NULL: the loader must still say something useful
 * (not "(null)"). */
#include "backend.h"

const gptq_backend_iface *gptq_backend_entry(void);

static int g_ctx;

static int nullerr_create(void **ctx)
{
    *ctx = &g_ctx;
    return GPTQ_ERR_BACKEND;
}

static void nullerr_destroy(void *ctx) { (void)ctx; }

static const char *nullerr_error(void *ctx)
{
    (void)ctx;
    return NULL;
}

const gptq_backend_iface *gptq_backend_entry(void)
{
    static gptq_backend_iface t;
    t = *gptq_cpu_backend_iface();
    t.name = "nullerr";
    t.create = nullerr_create;
    t.destroy = nullerr_destroy;
    t.error = nullerr_error;
    return &t;
}
