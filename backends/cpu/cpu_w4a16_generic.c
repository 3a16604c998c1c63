/*
 * cpu_w4a16_generic.c — the fast A16 matmul's tile loop in portable C
 * (GCC/Clang vector extensions of 4 lanes: SSE2 on x86-64, NEON on arm64,
 * plain scalar code elsewhere), for CPUs without AVX2 and as the reference
 * the SIMD paths are diffed beside. No FMA: -ffp-contract=off keeps a * b + c
 * two roundings, which the error bound of backend.h counts.
 */
#define W4_VW 4
typedef float w4_vf4 __attribute__((vector_size(16)));
#define W4_VF w4_vf4
#define W4_ATTR
#define W4_FMA(a, b, c) ((a) * (b) + (c))
#define W4_SPLAT(x) ((w4_vf4){(x), (x), (x), (x)})
#define W4_ENTRY cpu_w4_unit_generic
#include "cpu_w4a16_kernel.h"

/* The compiler's conversion (software on baseline x86-64: ~15 ns a value). */
void cpu_w4_round_generic(const float *x, float *xh, int64_t n)
{
    for (int64_t i = 0; i < n; i++) xh[i] = (float)(_Float16)x[i];
}
