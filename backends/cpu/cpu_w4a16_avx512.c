/*
 * cpu_w4a16_avx512.c — the fast A16 matmul's tile loop for AVX-512F (16
 * lanes; F16C widens the scales), chosen at run time by cpu_w4a16.c when the
 * CPU has it. Compiled for every x86-64 build through target attributes.
 */
#if defined(__x86_64__)
#include <immintrin.h>

#define W4_VW 16
#define W4_VF __m512
#define W4_ATTR __attribute__((target("avx512f,fma,f16c")))
#define W4_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define W4_SPLAT(x) _mm512_set1_ps(x)
#define W4_ENTRY cpu_w4_unit_avx512
#include "cpu_w4a16_kernel.h"

/* F16C-style conversions, 16 at a time, round to nearest even: the same
 * values as (float)(_Float16)x, without the library's software conversion. */
__attribute__((target("avx512f,f16c"))) void cpu_w4_round_avx512(const float *x, float *xh,
                                                                 int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(xh + i, _mm512_cvtph_ps(_mm512_cvtps_ph(
                                     _mm512_loadu_ps(x + i),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)));
    for (; i < n; i++) xh[i] = (float)(_Float16)x[i];
}
#else
typedef int cpu_w4a16_avx512_not_x86; /* ISO C wants a declaration in every file */
#endif
