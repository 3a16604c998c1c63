/* plugin_declines.c — the CPU backend's code under another name, whose
 * supports_op (ABI 4) declines rmsnorm, matmul_q_fast and attention_kv (ABI
 * 6: a backend that cannot generate) at run time, and also gemm (an op the
 * core requires) when $GPTQ_TEST_DECLINE_GEMM is set. */
#include <stdlib.h>

#include "backend.h"

const gptq_backend_iface *gptq_backend_entry(void);

static int declines_supports_op(void *ctx, gptq_op op)
{
    (void)ctx;
    if (op == GPTQ_OP_GEMM) return getenv("GPTQ_TEST_DECLINE_GEMM") == NULL;
    return op != GPTQ_OP_RMSNORM && op != GPTQ_OP_MATMUL_Q_FAST && op != GPTQ_OP_ATTENTION_KV;
}

const gptq_backend_iface *gptq_backend_entry(void)
{
    static gptq_backend_iface t;
    t = *gptq_cpu_backend_iface();
    t.name = "declines";
    t.description = "test plugin (CPU backend code; declines rmsnorm, matmul_q_fast and "
                    "attention_kv)";
    t.supports_op = declines_supports_op;
    return &t;
}
