/*
 * hip_packed.hip — the packed-tensor ops of the vtable (backend.h, ABI 3):
 * pack_codes, dequantize and the A16 matmul, as GPU kernels; gather (the
 * act-order permutations of the device-resident solve); to_f32 (half
 * precision widened: the loader's weights).
 *
 * All three are exact by construction, so they match the CPU backend (and
 * src/format/pack.c) bit for bit: packing moves bits; a dequantized weight
 * is one f32 product of exact operands; the matmul gives every output to
 * one thread, which sums its K products in k order with no FMA (each
 * product and each sum rounded to f32, as gptq_matmul_ref does). The
 * matmul is the kernel developers' oracle on the device, not a fast kernel:
 * a (16, 16) output tile per block, X (fp16-rounded) and the dequantized W
 * staged through shared memory 32 columns of k at a time.
 *
 * fp16 conversions are done on the bits here (no fp16 header: the same
 * code under nvcc and clang), round to nearest even, overflow to inf.
 *
 * Bad input the host cannot see cheaply (a g_idx outside the groups, a code
 * above 2^bits - 1) is reported through the deferred error word
 * (hip_impl.h): the op's output is then undefined and the next sync or
 * download fails with the place named.
 */
#include "hip_impl.h"

#if defined(GPTQ_HIP_ON_NVIDIA)
#define PMUL(a, b) __fmul_rn((a), (b))
#define PADD(a, b) __fadd_rn((a), (b))
#else
#pragma clang fp contract(off)
#define PMUL(a, b) ((a) * (b))
#define PADD(a, b) ((a) + (b))
#endif

__device__ static float f16_to_f32(uint32_t h)
{
    const uint32_t sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    uint32_t bits;
    if (e == 0x1fu) {
        bits = sign | 0x7f800000u | (m << 13); /* inf, nan */
    } else if (e != 0) {
        bits = sign | ((e + 112u) << 23) | (m << 13);
    } else if (m == 0) {
        bits = sign;
    } else { /* subnormal: m * 2^-24, exact in f32 */
        const float v = (float)m * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return __uint_as_float(bits);
}

/* f32 -> nearest fp16 value (ties to even), returned as f32. */
__device__ static float round_f16(float x)
{
    const uint32_t u = __float_as_uint(x), sign = u & 0x80000000u, a = u & 0x7fffffffu;
    uint32_t h;
    if (a >= 0x7f800000u) {
        h = a > 0x7f800000u ? 0x7e00u : 0x7c00u; /* nan, inf */
    } else if (a >= 0x477ff000u) { /* >= 65520: rounds to inf */
        h = 0x7c00u;
    } else if (a >= 0x38800000u) { /* normal fp16 */
        const uint32_t mant = a & 0x7fffffu, e = (a >> 23) - 112u;
        uint32_t r = (e << 10) | (mant >> 13);
        const uint32_t rest = mant & 0x1fffu;
        if (rest > 0x1000u || (rest == 0x1000u && (r & 1u))) r++;
        h = r;
    } else if (a < 0x33000000u) { /* below half the smallest subnormal: 0 */
        h = 0;
    } else { /* subnormal fp16: units of 2^-24 */
        const uint32_t e = a >> 23, mant = (a & 0x7fffffu) | 0x800000u;
        const uint32_t shift = 126u - e; /* value = mant * 2^(e-150) = (mant >> shift) 2^-24 */
        uint32_t r = mant >> shift;
        const uint32_t rest = mant & ((1u << shift) - 1u), half = 1u << (shift - 1u);
        if (rest > half || (rest == half && (r & 1u))) r++;
        h = r;
    }
    return f16_to_f32((sign >> 16) | h);
}

/* Value i of the b-bit stream whose word w lies at words[w * stride]. */
__device__ static uint32_t stream_get(const uint32_t *__restrict__ words, int64_t stride,
                                      int64_t i, int b)
{
    const int64_t t = i * b, w = t >> 5;
    const int sh = (int)(t & 31);
    uint64_t v = words[w * stride] >> sh;
    if (sh + b > 32) v |= (uint64_t)words[(w + 1) * stride] << (32 - sh);
    return (uint32_t)v & ((1u << b) - 1u);
}

typedef struct qview {
    const uint32_t *qw, *qz;
    const uint16_t *sc;
    const int32_t *gi;
    int bits, zero_add;
    int64_t K, N, ngroups;
} qview;

/* W[n][k] of a packed tensor; a bad g_idx is reported and gives 0. */
__device__ static float dequant_at(const qview &q, int64_t n, int64_t k, hip_flag_t *flags)
{
    const int64_t g = q.gi[k];
    if (g < 0 || g >= q.ngroups) {
        hip_defer(flags, HIP_DEFER_QGIDX, k, g);
        return 0.0f;
    }
    const int32_t code = (int32_t)stream_get(q.qw + n, q.N, k, q.bits);
    const int32_t z = (int32_t)stream_get(q.qz + g * (q.N * q.bits / 32), 1, n, q.bits) + q.zero_add;
    return PMUL(f16_to_f32(q.sc[g * q.N + n]), (float)(code - z));
}

/* ------------------------------------------------------------------ */

/* One thread per qweight word (w, r); r fastest (coalesced stores). */
__global__ void pack_codes_kernel(const uint8_t *__restrict__ codes, int64_t R, int64_t C,
                                  int bits, uint32_t *__restrict__ qw, hip_flag_t *flags)
{
    const int64_t words = C * bits / 32;
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= words * R) return;
    const int64_t w = i / R, r = i % R;
    const uint8_t *row = codes + r * C;
    const unsigned maxq = (1u << bits) - 1u;
    uint64_t acc = 0;
    for (int64_t k = 32 * w / bits; k < C && k * bits < 32 * w + 32; k++) {
        const unsigned v = row[k];
        if (v > maxq) hip_defer(flags, HIP_DEFER_CODE, r * C + k, v);
        const int64_t at = k * bits - 32 * w;
        acc |= at >= 0 ? (uint64_t)v << at : (uint64_t)v >> -at;
    }
    qw[w * R + r] = (uint32_t)acc;
}

/* One thread per W element, k fastest. */
__global__ void dequantize_kernel(qview q, float *__restrict__ W, hip_flag_t *flags)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= q.N * q.K) return;
    W[i] = dequant_at(q, i / q.K, i % q.K, flags);
}

#define MQ_T 16 /* (MQ_T, MQ_T) outputs per block */
#define MQ_KC 32 /* k columns staged at a time */

__global__ __launch_bounds__(MQ_T *MQ_T) void matmul_q_kernel(qview q,
                                                              const float *__restrict__ X,
                                                              int64_t M,
                                                              const float *__restrict__ bias,
                                                              float *__restrict__ Y,
                                                              hip_flag_t *flags)
{
    __shared__ float xs[MQ_T][MQ_KC + 1]; /* X rows m0.., fp16 values */
    __shared__ float ws[MQ_T][MQ_KC + 1]; /* W rows n0.. */
    const int tx = threadIdx.x % MQ_T, ty = threadIdx.x / MQ_T; /* n, m within the tile */
    const int64_t m0 = (int64_t)blockIdx.y * MQ_T, n0 = (int64_t)blockIdx.x * MQ_T;
    const int64_t K = q.K, N = q.N;
    float acc = 0.0f;
    for (int64_t k0 = 0; k0 < K; k0 += MQ_KC) {
        /* stage: 256 threads fill 16 x 32 of each (2 elements per thread) */
        for (int e = threadIdx.x; e < MQ_T * MQ_KC; e += MQ_T * MQ_T) {
            const int row = e / MQ_KC, col = e % MQ_KC;
            const int64_t k = k0 + col;
            const int64_t m = m0 + row, n = n0 + row;
            xs[row][col] = (m < M && k < K) ? round_f16(X[m * K + k]) : 0.0f;
            ws[row][col] = (n < N && k < K) ? dequant_at(q, n, k, flags) : 0.0f;
        }
        __syncthreads();
        const int kc = K - k0 < MQ_KC ? (int)(K - k0) : MQ_KC;
        for (int c = 0; c < kc; c++) acc = PADD(acc, PMUL(xs[ty][c], ws[tx][c]));
        __syncthreads();
    }
    const int64_t m = m0 + ty, n = n0 + tx;
    if (m < M && n < N) Y[m * N + n] = bias ? PADD(acc, round_f16(bias[n])) : acc;
}

/* One thread per dst element, j fastest. A bad index: reported, 0 written. */
template <typename T>
__global__ void gather_kernel(T *__restrict__ dst, const T *__restrict__ src, int64_t R,
                              int64_t C, int64_t Rs, int64_t Cs, const int32_t *__restrict__ ri,
                              const int32_t *__restrict__ ci, hip_flag_t *flags)
{
    const int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= R * C) return;
    const int64_t i = e / C, j = e % C;
    const int64_t si = ri ? ri[i] : i, sj = ci ? ci[j] : j;
    if (si < 0 || si >= Rs || sj < 0 || sj >= Cs) {
        hip_defer(flags, HIP_DEFER_INDEX, si < 0 || si >= Rs ? i : j, si < 0 || si >= Rs ? si : sj);
        dst[e] = T(0);
        return;
    }
    dst[e] = src[si * Cs + sj];
}

__global__ void to_f32_kernel(float *__restrict__ d, const uint16_t *__restrict__ s, int64_t n,
                              int bf16)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    d[i] = bf16 ? __uint_as_float((uint32_t)s[i] << 16) : f16_to_f32(s[i]);
}

/* ------------------------------------------------------------------ */

static int check_bytes(hip_ctx *c, const char *op, const char *what, const gptq_buf *b, size_t off,
                       uint64_t nbytes)
{
    if (!b || (!b->ptr && b->nbytes))
        return hip_fail(c, GPTQ_ERR_INVALID, "%s: buffer %s is NULL", op, what);
    if (off > b->nbytes || nbytes > b->nbytes - off)
        return hip_fail(c, GPTQ_ERR_INVALID,
                        "%s: %s needs %llu bytes at byte %zu, the buffer has %zu", op, what,
                        (unsigned long long)nbytes, off, b->nbytes);
    return GPTQ_OK;
}

int hip_check_qtensor(hip_ctx *c, const gptq_qtensor *q, const char *op)
{
    if (!q) return hip_fail(c, GPTQ_ERR_INVALID, "%s: no packed tensor", op);
    const int b = q->bits;
    if (b != 2 && b != 3 && b != 4 && b != 8)
        return hip_fail(c, GPTQ_ERR_INVALID, "%s: bits = %d (2, 3, 4 or 8)", op, b);
    const int64_t mult = b == 3 ? 32 : 32 / b;
    if (q->K <= 0 || q->N <= 0 || q->K % mult || q->N % mult)
        return hip_fail(c, GPTQ_ERR_SHAPE, "%s: K = %lld, N = %lld: both must be positive "
                        "multiples of %lld for %d bits", op, (long long)q->K, (long long)q->N,
                        (long long)mult, b);
    if (q->ngroups < 1 || q->ngroups > q->K)
        return hip_fail(c, GPTQ_ERR_SHAPE, "%s: ngroups = %lld outside [1, K = %lld]", op,
                        (long long)q->ngroups, (long long)q->K);
    int st = check_bytes(c, op, "qweight", q->qweight, 0, (uint64_t)(q->K * b / 32 * q->N) * 4);
    if (!st)
        st = check_bytes(c, op, "qzeros", q->qzeros, 0, (uint64_t)(q->ngroups * (q->N * b / 32)) * 4);
    if (!st) st = check_bytes(c, op, "scales", q->scales, 0, (uint64_t)(q->ngroups * q->N) * 2);
    if (!st) st = check_bytes(c, op, "g_idx", q->g_idx, 0, (uint64_t)q->K * 4);
    return st;
}

static int check_q(hip_ctx *c, const gptq_qtensor *q, const char *op, qview *v)
{
    const int st = hip_check_qtensor(c, q, op);
    if (st) return st;
    const int b = q->bits;
    *v = qview{(const uint32_t *)q->qweight->ptr, (const uint32_t *)q->qzeros->ptr,
               (const uint16_t *)q->scales->ptr, (const int32_t *)q->g_idx->ptr, b, q->zero_add,
               q->K, q->N, q->ngroups};
    return GPTQ_OK;
}

static unsigned blocks_for(int64_t n, int threads)
{
    return (unsigned)((n + threads - 1) / threads);
}

int hip_pack_codes(void *ctx, const gptq_buf *codes, int64_t R, int64_t C, int bits,
                   gptq_buf *qweight)
{
    hip_ctx *c = (hip_ctx *)ctx;
    static const char op[] = "pack_codes";
    if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
        return hip_fail(c, GPTQ_ERR_INVALID, "%s: bits = %d (2, 3, 4 or 8)", op, bits);
    const int64_t mult = bits == 3 ? 32 : 32 / bits;
    if (R <= 0 || C <= 0 || R % mult || C % mult)
        return hip_fail(c, GPTQ_ERR_SHAPE, "%s: R = %lld, C = %lld: both must be positive "
                        "multiples of %lld for %d bits", op, (long long)R, (long long)C,
                        (long long)mult, bits);
    int st = check_bytes(c, op, "codes", codes, 0, (uint64_t)(R * C));
    if (!st) st = check_bytes(c, op, "qweight", qweight, 0, (uint64_t)(C * bits / 32 * R) * 4);
    if (st) return st;
    const int64_t n = C * bits / 32 * R;
    pack_codes_kernel<<<blocks_for(n, 256), 256, 0, c->stream>>>(
        (const uint8_t *)codes->ptr, R, C, bits, (uint32_t *)qweight->ptr, c->flags);
    return hip_check_launch(c, op);
}

int hip_dequantize(void *ctx, const gptq_qtensor *q, gptq_buf *W, size_t w_off)
{
    hip_ctx *c = (hip_ctx *)ctx;
    qview v;
    int st = check_q(c, q, "dequantize", &v);
    if (!st) st = hip_check_view(c, "dequantize", "W", W, w_off, q->N, q->K, q->K);
    if (st) return st;
    dequantize_kernel<<<blocks_for(q->N * q->K, 256), 256, 0, c->stream>>>(v, HIP_F32(W, w_off),
                                                                          c->flags);
    return hip_check_launch(c, "dequantize");
}

int hip_matmul_q(void *ctx, const gptq_qtensor *q, const gptq_buf *X, size_t x_off, int64_t M,
                 const gptq_buf *bias, gptq_buf *Y, size_t y_off)
{
    hip_ctx *c = (hip_ctx *)ctx;
    static const char op[] = "matmul_q";
    qview v;
    int st = check_q(c, q, op, &v);
    if (st) return st;
    if (M < 0) return hip_fail(c, GPTQ_ERR_SHAPE, "%s: M = %lld is negative", op, (long long)M);
    if (M == 0) return GPTQ_OK;
    st = hip_check_view(c, op, "X", X, x_off, M, q->K, q->K);
    if (!st) st = hip_check_view(c, op, "Y", Y, y_off, M, q->N, q->N);
    if (!st && bias) st = hip_check_view(c, op, "bias", bias, 0, 1, q->N, q->N);
    if (st) return st;
    const int64_t gy = (M + MQ_T - 1) / MQ_T;
    if (gy > 65535) return hip_fail(c, GPTQ_ERR_SHAPE, "%s: M = %lld rows exceed one launch "
                                    "(%d)", op, (long long)M, 65535 * MQ_T);
    dim3 grid((unsigned)((q->N + MQ_T - 1) / MQ_T), (unsigned)gy);
    matmul_q_kernel<<<grid, MQ_T * MQ_T, 0, c->stream>>>(v, HIP_CF32(X, x_off), M,
                                                         bias ? HIP_CF32(bias, 0) : NULL,
                                                         HIP_F32(Y, y_off), c->flags);
    return hip_check_launch(c, op);
}

int hip_gather(void *ctx, gptq_buf *dst, const gptq_buf *src, int64_t R, int64_t C, int64_t Rs,
               int64_t Cs, const gptq_buf *rows, const gptq_buf *cols, int esize)
{
    hip_ctx *c = (hip_ctx *)ctx;
    static const char op[] = "gather";
    if (esize != 1 && esize != 4)
        return hip_fail(c, GPTQ_ERR_INVALID, "%s: element size %d (1 or 4)", op, esize);
    if (R < 0 || C < 0 || Rs < 0 || Cs < 0)
        return hip_fail(c, GPTQ_ERR_SHAPE, "%s: negative shape", op);
    if ((!rows && R > Rs) || (!cols && C > Cs))
        return hip_fail(c, GPTQ_ERR_SHAPE, "%s: (%lld, %lld) from (%lld, %lld) without indices",
                        op, (long long)R, (long long)C, (long long)Rs, (long long)Cs);
    int st = check_bytes(c, op, "dst", dst, 0, (uint64_t)(R * C) * (uint64_t)esize);
    if (!st) st = check_bytes(c, op, "src", src, 0, (uint64_t)(Rs * Cs) * (uint64_t)esize);
    if (!st && rows) st = check_bytes(c, op, "rows", rows, 0, (uint64_t)R * 4);
    if (!st && cols) st = check_bytes(c, op, "cols", cols, 0, (uint64_t)C * 4);
    if (st) return st;
    const char *d0 = (const char *)dst->ptr, *s0 = (const char *)src->ptr;
    if (d0 < s0 + src->nbytes && s0 < d0 + dst->nbytes)
        return hip_fail(c, GPTQ_ERR_INVALID, "%s: dst overlaps src", op);
    if (R * C == 0) return GPTQ_OK;
    const int32_t *ri = rows ? (const int32_t *)rows->ptr : NULL;
    const int32_t *ci = cols ? (const int32_t *)cols->ptr : NULL;
    if (esize == 4)
        gather_kernel<uint32_t><<<blocks_for(R * C, 256), 256, 0, c->stream>>>(
            (uint32_t *)dst->ptr, (const uint32_t *)src->ptr, R, C, Rs, Cs, ri, ci, c->flags);
    else
        gather_kernel<uint8_t><<<blocks_for(R * C, 256), 256, 0, c->stream>>>(
            (uint8_t *)dst->ptr, (const uint8_t *)src->ptr, R, C, Rs, Cs, ri, ci, c->flags);
    return hip_check_launch(c, op);
}

int hip_to_f32(void *ctx, gptq_buf *dst, size_t dst_off, const gptq_buf *src, int64_t n, int dtype)
{
    hip_ctx *c = (hip_ctx *)ctx;
    static const char op[] = "to_f32";
    if (dtype != GPTQ_F16 && dtype != GPTQ_BF16)
        return hip_fail(c, GPTQ_ERR_INVALID, "%s: dtype %d is neither F16 nor BF16", op, dtype);
    if (n < 0) return hip_fail(c, GPTQ_ERR_SHAPE, "%s: n = %lld", op, (long long)n);
    int st = check_bytes(c, op, "dst", dst, dst_off * 4, (uint64_t)n * 4);
    if (!st) st = check_bytes(c, op, "src", src, 0, (uint64_t)n * 2);
    if (st || n == 0) return st;
    to_f32_kernel<<<blocks_for(n, 256), 256, 0, c->stream>>>(
        HIP_F32(dst, dst_off), (const uint16_t *)src->ptr, n, dtype == GPTQ_BF16);
    return hip_check_launch(c, op);
}
