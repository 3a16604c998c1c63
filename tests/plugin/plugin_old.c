/* plugin_old.c — a test plugin built against an older backend ABI. */
#include <string.h>

#include "backend.h"

const gptq_backend_iface *gptq_backend_entry(void);

const gptq_backend_iface *gptq_backend_entry(void)
{
    static gptq_backend_iface t;
    memset(&t, 0, sizeof t);
    t.abi_version = GPTQ_BACKEND_ABI_VERSION - 1;
    t.struct_size = (uint32_t)sizeof t;
    t.name = "old";
    return &t;
}
