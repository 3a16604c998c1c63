/* plugin_nofast.c — the CPU backend's code under another name, whose
 * supports_op declines only matmul_q_fast: a backend that generates
 * (attention_kv) but has no fast A16 matmul, so `gptq generate` keeps its
 * GPTQ linears on f32 gemm (genfast). */
#include "backend.h"

const gptq_backend_iface *gptq_backend_entry(void);

static int nofast_supports_op(void *ctx, gptq_op op)
{
    (void)ctx;
    return op != GPTQ_OP_MATMUL_Q_FAST;
}

const gptq_backend_iface *gptq_backend_entry(void)
{
    static gptq_backend_iface t;
    t = *gptq_cpu_backend_iface();
    t.name = "nofast";
    t.description = "test plugin (CPU backend code; declines matmul_q_fast)";
    t.supports_op = nofast_supports_op;
    return &t;
}
