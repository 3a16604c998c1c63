/* plugin_empty_slot.c — a plugin of the right ABI whose table leaves a
 * required slot (gptq_block) empty. */
#include "backend.h"

const gptq_backend_iface *gptq_backend_entry(void);

const gptq_backend_iface *gptq_backend_entry(void)
{
    static gptq_backend_iface t;
    t = *gptq_cpu_backend_iface();
    t.name = "emptyslot";
    t.gptq_block = 0;
    return &t;
}
