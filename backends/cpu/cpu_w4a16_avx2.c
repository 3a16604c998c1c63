/*
 * cpu_w4a16_avx2.c — the fast A16 matmul's tile loop for AVX2 + FMA (F16C
 * widens the scales), chosen at run time by cpu_w4a16.c when the CPU has
 * them. Compiled for every x86-64 build through target attributes: the rest
 * of the library keeps the baseline ISA.
 */
#if defined(__x86_64__)
#include <immintrin.h>

#define W4_VW 8
#define W4_VF __m256
#define W4_ATTR __attribute__((target("avx2,fma,f16c")))
#define W4_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define W4_SPLAT(x) _mm256_set1_ps(x)
#define W4_ENTRY cpu_w4_unit_avx2
#include "cpu_w4a16_kernel.h"

/* F16C conversions, 8 at a time, round to nearest even: the same values as
 * (float)(_Float16)x, without the library's software conversion. */
__attribute__((target("avx2,f16c"))) void cpu_w4_round_avx2(const float *x, float *xh, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(xh + i, _mm256_cvtph_ps(_mm256_cvtps_ph(
                                     _mm256_loadu_ps(x + i),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)));
    for (; i < n; i++) xh[i] = (float)(_Float16)x[i];
}
#else
typedef int cpu_w4a16_avx2_not_x86; /* ISO C wants a declaration in every file */
#endif
