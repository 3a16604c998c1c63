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
#else
typedef int cpu_w4a16_avx2_not_x86; /* ISO C wants a declaration in every file */
#endif
