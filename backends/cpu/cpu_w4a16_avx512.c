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
#else
typedef int cpu_w4a16_avx512_not_x86; /* ISO C wants a declaration in every file */
#endif
