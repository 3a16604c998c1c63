/*
 * hip_forward.hip — the HIP backend's forward ops (the FORWARD OPS section
 * of backend.h): embedding gather, RMSNorm, LayerNorm, RoPE, causal GQA
 * attention, SiLU-gate, ReLU, residual add, bias add, cross-entropy.
 *
 * The formulas are those of cpu_forward.c, written with the same f32/f64
 * steps (statistics and softmax sums in double, no FMA contraction), so the
 * results differ from the CPU's only by the order of the reductions (norm
 * statistics and softmax sums summed by a tree here, in index order there;
 * attention dot products as one fmaf chain here, blocked in OpenBLAS there).
 *
 * Index inputs (token ids, positions, targets) are checked on the host
 * before the launch (one small download each), so a bad index is reported
 * by the call that received it, as the CPU backend does.
 *
 * Attention, two kernels:
 *   - tiled (head dims 64 and 128): 32 query rows per block, key/value tiles
 *     of 32 in shared memory, online softmax (running max, running double
 *     sum, output rescaled; p is normalized at the end rather than before
 *     the product with V, a rounding-level difference from the CPU);
 *   - row per block (any head dim; GPTQ_HIP_NAIVE_ATTENTION=1 forces it):
 *     the row's scores in shared memory (S floats, so S up to about 11k
 *     tokens in the default 48 KB), each thread whole dot products for its
 *     keys, block max / double sum, then the weighted sum of V with threads
 *     across the head dimension: the CPU's formula step for step.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hip_impl.h"

#define FW_THREADS 256 /* threads per row-reduction block (a power of two) */

/* Elements [off, off + n) of esize bytes inside buffer b. */
static int fw_range(hip_ctx *c, const gptq_buf *b, size_t off, int64_t n, size_t esize,
                    const char *op, const char *what)
{
    if (!b) return hip_fail(c, GPTQ_ERR_INVALID, "%s: %s is NULL", op, what);
    if (n < 0) return hip_fail(c, GPTQ_ERR_SHAPE, "%s: %s: negative size", op, what);
    size_t end = (off + (size_t)n) * esize;
    if (end / esize < off || end > b->nbytes)
        return hip_fail(c, GPTQ_ERR_SHAPE,
                        "%s: %s: elements [%zu, %zu) of %zu bytes lie outside the buffer "
                        "(%zu bytes)",
                        op, what, off, off + (size_t)n, esize, b->nbytes);
    return GPTQ_OK;
}

#define FW_CHECK(expr)       \
    do {                     \
        int st_ = (expr);    \
        if (st_) return st_; \
    } while (0)

/* Download n i32 starting at element off of b (for a host-side check). */
static int fetch_i32(hip_ctx *c, const gptq_buf *b, size_t off, int64_t n, int32_t **out,
                     const char *op)
{
    *out = NULL;
    int32_t *h = (int32_t *)malloc((size_t)(n > 0 ? n : 1) * 4);
    if (!h) return hip_fail(c, GPTQ_ERR_NOMEM, "%s: out of host memory for %lld indices", op, (long long)n);
    if (n > 0) {
        hipError_t e = hipMemcpyAsync(h, (const int32_t *)b->ptr + off, (size_t)n * 4,
                                      hipMemcpyDeviceToHost, c->stream);
        if (e == hipSuccess) e = hipStreamSynchronize(c->stream);
        if (e != hipSuccess) {
            free(h);
            return hip_fail_rt(c, e, op);
        }
    }
    *out = h;
    return GPTQ_OK;
}

static unsigned grid_1d(int64_t n, int threads)
{
    int64_t b = (n + threads - 1) / threads;
    return (unsigned)(b < 1 ? 1 : (b > 1048576 ? 1048576 : b));
}

/* Block-wide sum of one double per thread (blockDim.x == FW_THREADS). The
 * result is returned to every thread. */
__device__ static double block_sum_d(double v, double *sh)
{
    const int t = (int)threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (int s = FW_THREADS / 2; s > 0; s >>= 1) {
        if (t < s) sh[t] = sh[t] + sh[t + s];
        __syncthreads();
    }
    const double r = sh[0];
    __syncthreads();
    return r;
}

/* ------------------------------------------------------------------ */
/* embedding                                                           */
/* ------------------------------------------------------------------ */

__global__ void embedding_kernel(const int32_t *__restrict__ ids, const float *__restrict__ E,
                                 int64_t T, int64_t D, float *Y, int accumulate)
{
    const int64_t n = T * D;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t t = i / D, k = i % D;
        const float v = E[(int64_t)ids[t] * D + k];
        Y[i] = accumulate ? Y[i] + v : v;
    }
}

int hip_embedding(void *ctx, const gptq_buf *ids, size_t ids_off, // (T) i32
                  int64_t T, const gptq_buf *E, size_t e_off,     // (V, D)
                  int64_t V, int64_t D, gptq_buf *Y, size_t y_off, // (T, D)
                  int accumulate)
{
    hip_ctx *c = (hip_ctx *)ctx;
    static const char op[] = "embedding";
    if (T < 0 || V <= 0 || D <= 0) return hip_fail(c, GPTQ_ERR_SHAPE, "%s: bad T, V or D", op);
    FW_CHECK(fw_range(c, ids, ids_off, T, 4, op, "ids"));
    FW_CHECK(fw_range(c, E, e_off, V * D, 4, op, "E"));
    FW_CHECK(fw_range(c, Y, y_off, T * D, 4, op, "Y"));
    if (T == 0) return GPTQ_OK;
    int32_t *h;
    FW_CHECK(fetch_i32(c, ids, ids_off, T, &h, op));
    for (int64_t t = 0; t < T; t++)
        if (h[t] < 0 || h[t] >= V) {
            int st = hip_fail(c, GPTQ_ERR_INVALID, "%s: id %d at row %lld is outside [0, %lld)",
                              op, h[t], (long long)t, (long long)V);
            free(h);
            return st;
        }
    free(h);
    embedding_kernel<<<grid_1d(T * D, 256), 256, 0, c->stream>>>(
        (const int32_t *)ids->ptr + ids_off, HIP_CF32(E, e_off), T, D, HIP_F32(Y, y_off),
        accumulate);
    return hip_check_launch(c, "embedding");
}

/* ------------------------------------------------------------------ */
/* norms: one block per row                                            */
/* ------------------------------------------------------------------ */

__global__ __launch_bounds__(FW_THREADS) void rmsnorm_kernel(const float *X, const float *__restrict__ w,
                                                             int64_t D, float eps, float *Y)
{
    __shared__ double sh[FW_THREADS];
    const int64_t t = blockIdx.x;
    const float *xr = X + t * D;
    float *yr = Y + t * D;
    double ss = 0.0;
    for (int64_t i = threadIdx.x; i < D; i += FW_THREADS) ss += (double)xr[i] * (double)xr[i];
    ss = block_sum_d(ss, sh);
    const float var = (float)(ss / (double)D);
    const float r = 1.0f / sqrtf(var + eps);
    for (int64_t i = threadIdx.x; i < D; i += FW_THREADS) yr[i] = w[i] * (xr[i] * r);
}

int hip_rmsnorm(void *ctx, const gptq_buf *X, size_t x_off, // (T, D)
                const gptq_buf *w, size_t w_off,            // (D)
                int64_t T, int64_t D, float eps, gptq_buf *Y, size_t y_off) // (T, D)
{
    hip_ctx *c = (hip_ctx *)ctx;
    static const char op[] = "rmsnorm";
    if (T < 0 || D <= 0) return hip_fail(c, GPTQ_ERR_SHAPE, "%s: bad T or D", op);
    FW_CHECK(fw_range(c, X, x_off, T * D, 4, op, "X"));
    FW_CHECK(fw_range(c, w, w_off, D, 4, op, "w"));
    FW_CHECK(fw_range(c, Y, y_off, T * D, 4, op, "Y"));
    if (T == 0) return GPTQ_OK;
    if (T > INT32_MAX) return hip_fail(c, GPTQ_ERR_SHAPE, "%s: too many rows", op);
    rmsnorm_kernel<<<(unsigned)T, FW_THREADS, 0, c->stream>>>(HIP_CF32(X, x_off), HIP_CF32(w, w_off),
                                                              D, eps, HIP_F32(Y, y_off));
    return hip_check_launch(c, "rmsnorm");
}

__global__ __launch_bounds__(FW_THREADS) void layernorm_kernel(const float *X, const float *w,
                                                               const float *b, int64_t D,
                                                               float eps, float *Y)
{
    __shared__ double sh[FW_THREADS];
    const int64_t t = blockIdx.x;
    const float *xr = X + t * D;
    float *yr = Y + t * D;
    double s = 0.0;
    for (int64_t i = threadIdx.x; i < D; i += FW_THREADS) s += (double)xr[i];
    s = block_sum_d(s, sh);
    const double mu = s / (double)D;
    double v = 0.0;
    for (int64_t i = threadIdx.x; i < D; i += FW_THREADS) {
        const double dx = (double)xr[i] - mu;
        v += dx * dx;
    }
    v = block_sum_d(v, sh);
    const float r = (float)(1.0 / sqrt(v / (double)D + (double)eps));
    const float muf = (float)mu;
    for (int64_t i = threadIdx.x; i < D; i += FW_THREADS) {
        float z = (xr[i] - muf) * r;
        if (w) z = z * w[i];
        if (b) z = z + b[i];
        yr[i] = z;
    }
}

int hip_layernorm(void *ctx, const gptq_buf *X, size_t x_off, // (T, D)
                  const gptq_buf *w, size_t w_off,            // (D) or NULL
                  const gptq_buf *b, size_t b_off,            // (D) or NULL
                  int64_t T, int64_t D, float eps, gptq_buf *Y, size_t y_off) // (T, D)
{
    hip_ctx *c = (hip_ctx *)ctx;
    static const char op[] = "layernorm";
    if (T < 0 || D <= 0) return hip_fail(c, GPTQ_ERR_SHAPE, "%s: bad T or D", op);
    FW_CHECK(fw_range(c, X, x_off, T * D, 4, op, "X"));
    if (w) FW_CHECK(fw_range(c, w, w_off, D, 4, op, "w"));
    if (b) FW_CHECK(fw_range(c, b, b_off, D, 4, op, "b"));
    FW_CHECK(fw_range(c, Y, y_off, T * D, 4, op, "Y"));
    if (T == 0) return GPTQ_OK;
    if (T > INT32_MAX) return hip_fail(c, GPTQ_ERR_SHAPE, "%s: too many rows", op);
    layernorm_kernel<<<(unsigned)T, FW_THREADS, 0, c->stream>>>(
        HIP_CF32(X, x_off), w ? HIP_CF32(w, w_off) : NULL, b ? HIP_CF32(b, b_off) : NULL, D, eps,
        HIP_F32(Y, y_off));
    return hip_check_launch(c, "layernorm");
}

/* ------------------------------------------------------------------ */
/* rope                                                                */
/* ------------------------------------------------------------------ */

__global__ void rope_kernel(float *X, int64_t T, int64_t nh, int64_t d, int64_t rot,
                            const int32_t *__restrict__ pos, const float *__restrict__ cs)
{
    const int64_t half = rot / 2, n = T * nh * half;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n;
         e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t i = e % half, th = e / half, t = th / nh;
        const float *co = cs + (int64_t)pos[t] * rot, *si = co + half;
        float *v = X + th * d;
        const float a = v[i], b = v[i + half];
        v[i] = a * co[i] - b * si[i];
        v[i + half] = b * co[i] + a * si[i];
    }
}

int hip_rope(void *ctx, gptq_buf *X, size_t x_off, // (T, nh * d)
             int64_t T, int64_t nh, int64_t d, int64_t rot,
             const gptq_buf *pos, size_t pos_off, // (T) i32
             const gptq_buf *CS, int64_t P)       // (P, rot) [cos | sin]
{
    hip_ctx *c = (hip_ctx *)ctx;
    static const char op[] = "rope";
    if (T < 0 || nh <= 0 || d <= 0 || rot < 2 || rot > d || rot % 2 || P <= 0)
        return hip_fail(c, GPTQ_ERR_SHAPE, "%s: bad T, nh, d, rot (even, 2 .. d) or P", op);
    FW_CHECK(fw_range(c, X, x_off, T * nh * d, 4, op, "X"));
    FW_CHECK(fw_range(c, pos, pos_off, T, 4, op, "pos"));
    FW_CHECK(fw_range(c, CS, 0, P * rot, 4, op, "CS"));
    if (T == 0) return GPTQ_OK;
    int32_t *h;
    FW_CHECK(fetch_i32(c, pos, pos_off, T, &h, op));
    for (int64_t t = 0; t < T; t++)
        if (h[t] < 0 || h[t] >= P) {
            int st = hip_fail(c, GPTQ_ERR_INVALID,
                              "%s: position %d at row %lld is outside the table [0, %lld)", op,
                              h[t], (long long)t, (long long)P);
            free(h);
            return st;
        }
    free(h);
    rope_kernel<<<grid_1d(T * nh * (rot / 2), 256), 256, 0, c->stream>>>(
        HIP_F32(X, x_off), T, nh, d, rot, (const int32_t *)pos->ptr + pos_off, HIP_CF32(CS, 0));
    return hip_check_launch(c, "rope");
}

/* ------------------------------------------------------------------ */
/* attention                                                           */
/* ------------------------------------------------------------------ */

#define ATT_THREADS 128

/* Block (i, h, b) = query row i of head h of sequence b. Shared memory:
 * q (d floats), scores (i + 1 floats, of which keys j0 .. i are used:
 * j0 = 0, or i - window + 1 with a sliding window), reduction scratch.
 * softcap > 0: s = softcap * tanh(s / softcap) after the scale. */
__global__ __launch_bounds__(ATT_THREADS) void attention_kernel(
    const float *__restrict__ Q, const float *__restrict__ K, const float *__restrict__ V,
    int64_t S, int64_t H, int64_t Hk, int64_t d, float scale, int64_t window, float softcap,
    float *O)
{
    extern __shared__ double att_sh[]; /* ATT_THREADS doubles, then q (d), then scores */
    float *q = (float *)(att_sh + ATT_THREADS);
    float *sc = q + d;
    const int t = (int)threadIdx.x;
    const int64_t i = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    const int64_t kvh = h / (H / Hk), ldq = H * d, ldk = Hk * d, nj = i + 1;
    const int64_t j0 = window > 0 && i - window + 1 > 0 ? i - window + 1 : 0;
    const float *qr = Q + (b * S + i) * ldq + h * d;
    const float *kb = K + (b * S) * ldk + kvh * d;
    const float *vb = V + (b * S) * ldk + kvh * d;
    for (int64_t k = t; k < d; k += ATT_THREADS) q[k] = qr[k];
    __syncthreads();
    /* scores s_j = scale * (q . k_j) */
    float mx = -INFINITY;
    for (int64_t j = j0 + t; j < nj; j += ATT_THREADS) {
        const float *kr = kb + j * ldk;
        float s = 0.0f;
        for (int64_t k = 0; k < d; k++) s = fmaf(q[k], kr[k], s);
        s = scale * s;
        if (softcap > 0.0f) s = softcap * tanhf(s / softcap);
        sc[j] = s;
        mx = fmaxf(mx, s);
    }
    /* block max (in the double scratch, exact for floats) */
    att_sh[t] = (double)mx;
    __syncthreads();
    for (int st = ATT_THREADS / 2; st > 0; st >>= 1) {
        if (t < st) att_sh[t] = fmax(att_sh[t], att_sh[t + st]);
        __syncthreads();
    }
    const float m = (float)att_sh[0];
    __syncthreads();
    double sum = 0.0;
    for (int64_t j = j0 + t; j < nj; j += ATT_THREADS) {
        const float e = expf(sc[j] - m);
        sc[j] = e;
        sum += (double)e;
    }
    att_sh[t] = sum;
    __syncthreads();
    for (int st = ATT_THREADS / 2; st > 0; st >>= 1) {
        if (t < st) att_sh[t] = att_sh[t] + att_sh[t + st];
        __syncthreads();
    }
    const float inv = (float)(1.0 / att_sh[0]);
    for (int64_t j = j0 + t; j < nj; j += ATT_THREADS) sc[j] = sc[j] * inv;
    __syncthreads();
    /* o = sum_j p_j v_j, threads across the head dimension */
    float *orow = O + (b * S + i) * ldq + h * d;
    for (int64_t k = t; k < d; k += ATT_THREADS) {
        float o = 0.0f;
        for (int64_t j = j0; j < nj; j++) o = fmaf(sc[j], vb[j * ldk + k], o);
        orow[k] = o;
    }
}

/* Tiled attention for head dims 64 and 128: block (query tile, head,
 * sequence) holds FA_BQ query rows, walks the key tiles up to its last row
 * (causal) with an online softmax: running max m and running sum l (double)
 * per row, the output rescaled by exp(m_old - m_new) when the max grows, and
 * divided by l at the end. K and V tiles are read once per FA_BQ query rows
 * instead of once per row. Each thread computes 4 scores of the (FA_BQ,
 * FA_BK) tile, their part of the softmax step (the 8 threads of a row share
 * its max and sum through shared memory), and a (4 rows, D/32 columns)
 * piece of the output. With a sliding window the walk starts at the key
 * tile of the first key the tile's first row sees, and the mask also drops
 * keys j <= i - window; softcap > 0 caps each scaled score as the row
 * kernel does. */
#define FA_BQ 32
#define FA_BK 32
#define FA_THREADS 256

template <int D>
__global__ __launch_bounds__(FA_THREADS) void attention_tiled_kernel(
    const float *__restrict__ Q, const float *__restrict__ K, const float *__restrict__ V,
    int64_t S, int64_t H, int64_t Hk, float scale, int64_t window, float softcap, float *O)
{
    __shared__ float sq[FA_BQ][D + 1];
    __shared__ float skv[FA_BK][D + 1];
    __shared__ float sp[FA_BQ][FA_BK + 1];
    __shared__ float salpha[FA_BQ], smax[FA_BQ];
    __shared__ double ssum[FA_BQ];
    __shared__ float smx8[FA_BQ][8];  /* per row: the 8 threads' partial maxima */
    __shared__ double ssm8[FA_BQ][8]; /* ... and partial sums of exp */
    constexpr int OW = D / 32; /* output columns per thread, per row */
    const int tid = (int)threadIdx.x;
    const int64_t h = blockIdx.y, b = blockIdx.z;
    const int64_t kvh = h / (H / Hk), ldq = H * D, ldk = Hk * D;
    const int64_t i0 = (int64_t)blockIdx.x * FA_BQ;
    const int nq = S - i0 < FA_BQ ? (int)(S - i0) : FA_BQ;
    const float *qb = Q + (b * S + i0) * ldq + h * D;
    const float *kb = K + (b * S) * ldk + kvh * D;
    const float *vb = V + (b * S) * ldk + kvh * D;
    for (int e = tid; e < FA_BQ * D; e += FA_THREADS) {
        const int r = e / D, k = e % D;
        sq[r][k] = r < nq ? qb[(int64_t)r * ldq + k] : 0.0f;
    }
    if (tid < FA_BQ) {
        smax[tid] = -INFINITY;
        ssum[tid] = 0.0;
    }
    float acc[4][OW];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int m = 0; m < OW; m++) acc[i][m] = 0.0f;
    /* output: rows 4 orow .. 4 orow + 3, columns ocol + 32 m (a warp shares
     * its rows: the probabilities are broadcast, V rows read contiguously) */
    const int orow = tid / 32, ocol = tid % 32;
    const int srow = tid / 8, scol = (tid % 8) * 4; /* scores: row, 4 columns */
    const int64_t last = i0 + nq - 1;               /* the tile's last query row */
    const int64_t first = window > 0 && i0 - window + 1 > 0 ? i0 - window + 1 : 0;
    for (int64_t j0 = first / FA_BK * FA_BK; j0 <= last; j0 += FA_BK) {
        const int nk = S - j0 < FA_BK ? (int)(S - j0) : FA_BK;
        __syncthreads(); /* the previous V tile and probabilities are consumed */
        for (int e = tid; e < FA_BK * D; e += FA_THREADS) {
            const int c = e / D, k = e % D;
            skv[c][k] = c < nk ? kb[(j0 + c) * ldk + k] : 0.0f;
        }
        __syncthreads();
        float s4[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int k = 0; k < D; k++) {
            const float qv = sq[srow][k];
#pragma unroll
            for (int q = 0; q < 4; q++) s4[q] = fmaf(qv, skv[scol + q][k], s4[q]);
        }
        /* the online softmax step, spread over the 8 threads of each row
         * (each owns 4 of its 32 scores): row max from the 8 partial maxima,
         * exp by the owners, the row's sum of exp from 8 partial sums (in
         * double, combined in a fixed order) */
        float lmax = -INFINITY;
#pragma unroll
        for (int q = 0; q < 4; q++) {
            const int64_t j = j0 + scol + q, i = i0 + srow;
            float sv = scale * s4[q];
            if (softcap > 0.0f) sv = softcap * tanhf(sv / softcap);
            const bool seen =
                srow < nq && scol + q < nk && j <= i && (window == 0 || j > i - window);
            s4[q] = seen ? sv : -INFINITY;
            lmax = fmaxf(lmax, s4[q]);
        }
        smx8[srow][tid % 8] = lmax;
        __syncthreads();
        const float mold = smax[srow];
        float mx = mold;
#pragma unroll
        for (int c = 0; c < 8; c++) mx = fmaxf(mx, smx8[srow][c]);
        double ls = 0.0;
#pragma unroll
        for (int q = 0; q < 4; q++) {
            const float pv = s4[q] == -INFINITY ? 0.0f : expf(s4[q] - mx);
            sp[srow][scol + q] = pv;
            ls += (double)pv;
        }
        ssm8[srow][tid % 8] = ls;
        __syncthreads();
        if (tid < FA_BQ) {
            const int r = tid;
            float m2 = smax[r];
            const float mo = m2;
            for (int c = 0; c < 8; c++) m2 = fmaxf(m2, smx8[r][c]);
            const float alpha = mo == -INFINITY ? 0.0f : expf(mo - m2);
            double l = 0.0;
            for (int c = 0; c < 8; c++) l += ssm8[r][c];
            ssum[r] = ssum[r] * (double)alpha + l;
            smax[r] = m2;
            salpha[r] = alpha;
        }
        __syncthreads();
        for (int e = tid; e < FA_BK * D; e += FA_THREADS) {
            const int c = e / D, k = e % D;
            skv[c][k] = c < nk ? vb[(j0 + c) * ldk + k] : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const float a = salpha[4 * orow + i];
#pragma unroll
            for (int m = 0; m < OW; m++) acc[i][m] = acc[i][m] * a;
        }
        for (int c = 0; c < FA_BK; c++) {
            float pv[4], vv[OW];
#pragma unroll
            for (int i = 0; i < 4; i++) pv[i] = sp[4 * orow + i][c];
#pragma unroll
            for (int m = 0; m < OW; m++) vv[m] = skv[c][ocol + 32 * m];
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int m = 0; m < OW; m++) acc[i][m] = fmaf(pv[i], vv[m], acc[i][m]);
        }
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int r = 4 * orow + i;
        if (r < nq) {
            const float inv = (float)(1.0 / ssum[r]);
            float *orow_p = O + (b * S + i0 + r) * ldq + h * D;
#pragma unroll
            for (int m = 0; m < OW; m++) orow_p[ocol + 32 * m] = acc[i][m] * inv;
        }
    }
}

int hip_attention(void *ctx, const gptq_buf *Q, size_t q_off, // (T, H*d)
                  const gptq_buf *K, size_t k_off,            // (T, Hk*d)
                  const gptq_buf *V, size_t v_off,            // (T, Hk*d)
                  int64_t nseq, int64_t S, int64_t H, int64_t Hk, int64_t d, float scale,
                  int64_t window, float softcap,
                  gptq_buf *O, size_t o_off)                  // (T, H*d)
{
    hip_ctx *c = (hip_ctx *)ctx;
    static const char op[] = "attention";
    if (window < 0 || !(softcap >= 0.0f && isfinite(softcap)))
        return hip_fail(c, GPTQ_ERR_INVALID,
                        "%s: window %lld and softcap %g must be >= 0 (and softcap finite)", op,
                        (long long)window, (double)softcap);
    if (nseq < 0 || S <= 0 || H <= 0 || Hk <= 0 || d <= 0 || H % Hk)
        return hip_fail(c, GPTQ_ERR_SHAPE,
                        "%s: bad shape (nseq %lld, S %lld, H %lld, Hk %lld, d %lld; H must be a "
                        "multiple of Hk)",
                        op, (long long)nseq, (long long)S, (long long)H, (long long)Hk,
                        (long long)d);
    const int64_t T = nseq * S;
    FW_CHECK(fw_range(c, Q, q_off, T * H * d, 4, op, "Q"));
    FW_CHECK(fw_range(c, K, k_off, T * Hk * d, 4, op, "K"));
    FW_CHECK(fw_range(c, V, v_off, T * Hk * d, 4, op, "V"));
    FW_CHECK(fw_range(c, O, o_off, T * H * d, 4, op, "O"));
    if (T == 0) return GPTQ_OK;
    if (S > INT32_MAX || H > 65535 || nseq > 65535)
        return hip_fail(c, GPTQ_ERR_SHAPE, "%s: grid too large", op);
    /* GPTQ_HIP_NAIVE_ATTENTION=1 selects the row-per-block kernel (bench and
     * tests compare the two) */
    const char *naive = getenv("GPTQ_HIP_NAIVE_ATTENTION");
    if ((d == 64 || d == 128) && !(naive && naive[0] == '1')) {
        dim3 g((unsigned)((S + FA_BQ - 1) / FA_BQ), (unsigned)H, (unsigned)nseq);
        if (d == 64)
            attention_tiled_kernel<64><<<g, FA_THREADS, 0, c->stream>>>(
                HIP_CF32(Q, q_off), HIP_CF32(K, k_off), HIP_CF32(V, v_off), S, H, Hk, scale,
                window, softcap, HIP_F32(O, o_off));
        else
            attention_tiled_kernel<128><<<g, FA_THREADS, 0, c->stream>>>(
                HIP_CF32(Q, q_off), HIP_CF32(K, k_off), HIP_CF32(V, v_off), S, H, Hk, scale,
                window, softcap, HIP_F32(O, o_off));
        return hip_check_launch(c, "attention (tiled)");
    }
    const size_t smem = ATT_THREADS * sizeof(double) + (size_t)(d + S) * sizeof(float);
    if (smem > (size_t)c->smem_per_block)
        return hip_fail(c, GPTQ_ERR_UNSUPPORTED,
                        "%s: %lld tokens per sequence need %zu bytes of shared memory per row "
                        "(the device gives %d)",
                        op, (long long)S, smem, c->smem_per_block);
    dim3 grid((unsigned)S, (unsigned)H, (unsigned)nseq);
    attention_kernel<<<grid, ATT_THREADS, smem, c->stream>>>(
        HIP_CF32(Q, q_off), HIP_CF32(K, k_off), HIP_CF32(V, v_off), S, H, Hk, d, scale,
        window, softcap, HIP_F32(O, o_off));
    return hip_check_launch(c, "attention");
}

/* attention_kv: block (i, h) = query i (position p0 + i) of head h against
 * the cache K, V of p0 + T rows; the arithmetic of attention_kernel (the
 * row kernel) with the positions offset. Shared memory: the reduction
 * scratch, q (d floats), scores (p0 + i + 1 floats). */
__global__ __launch_bounds__(ATT_THREADS) void attention_kv_kernel(
    const float *__restrict__ Q, const float *__restrict__ K, const float *__restrict__ V,
    int64_t p0, int64_t H, int64_t Hk, int64_t d, float scale, int64_t window, float softcap,
    float *O)
{
    extern __shared__ double att_sh[];
    float *q = (float *)(att_sh + ATT_THREADS);
    float *sc = q + d;
    const int t = (int)threadIdx.x;
    const int64_t i = blockIdx.x, h = blockIdx.y, pos = p0 + i;
    const int64_t kvh = h / (H / Hk), ldq = H * d, ldk = Hk * d, nj = pos + 1;
    const int64_t j0 = window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
    const float *qr = Q + i * ldq + h * d;
    const float *kb = K + kvh * d;
    const float *vb = V + kvh * d;
    for (int64_t k = t; k < d; k += ATT_THREADS) q[k] = qr[k];
    __syncthreads();
    float mx = -INFINITY;
    for (int64_t j = j0 + t; j < nj; j += ATT_THREADS) {
        const float *kr = kb + j * ldk;
        float s = 0.0f;
        for (int64_t k = 0; k < d; k++) s = fmaf(q[k], kr[k], s);
        s = scale * s;
        if (softcap > 0.0f) s = softcap * tanhf(s / softcap);
        sc[j] = s;
        mx = fmaxf(mx, s);
    }
    att_sh[t] = (double)mx;
    __syncthreads();
    for (int st = ATT_THREADS / 2; st > 0; st >>= 1) {
        if (t < st) att_sh[t] = fmax(att_sh[t], att_sh[t + st]);
        __syncthreads();
    }
    const float m = (float)att_sh[0];
    __syncthreads();
    double sum = 0.0;
    for (int64_t j = j0 + t; j < nj; j += ATT_THREADS) {
        const float e = expf(sc[j] - m);
        sc[j] = e;
        sum += (double)e;
    }
    att_sh[t] = sum;
    __syncthreads();
    for (int st = ATT_THREADS / 2; st > 0; st >>= 1) {
        if (t < st) att_sh[t] = att_sh[t] + att_sh[t + st];
        __syncthreads();
    }
    const float inv = (float)(1.0 / att_sh[0]);
    for (int64_t j = j0 + t; j < nj; j += ATT_THREADS) sc[j] = sc[j] * inv;
    __syncthreads();
    float *orow = O + i * ldq + h * d;
    for (int64_t k = t; k < d; k += ATT_THREADS) {
        float o = 0.0f;
        for (int64_t j = j0; j < nj; j++) o = fmaf(sc[j], vb[j * ldk + k], o);
        orow[k] = o;
    }
}

int hip_attention_kv(void *ctx, const gptq_buf *Q, size_t q_off, // (T, H*d)
                     const gptq_buf *K, size_t k_off,            // (p0+T, Hk*d)
                     const gptq_buf *V, size_t v_off,            // (p0+T, Hk*d)
                     int64_t T, int64_t p0, int64_t H, int64_t Hk, int64_t d, float scale,
                     int64_t window, float softcap,
                     gptq_buf *O, size_t o_off)                  // (T, H*d)
{
    hip_ctx *c = (hip_ctx *)ctx;
    static const char op[] = "attention_kv";
    if (window < 0 || !(softcap >= 0.0f && isfinite(softcap)) || p0 < 0)
        return hip_fail(c, GPTQ_ERR_INVALID,
                        "%s: window %lld, softcap %g and p0 %lld must be >= 0 (and softcap "
                        "finite)",
                        op, (long long)window, (double)softcap, (long long)p0);
    if (T < 0 || H <= 0 || Hk <= 0 || d <= 0 || H % Hk)
        return hip_fail(c, GPTQ_ERR_SHAPE,
                        "%s: bad shape (T %lld, H %lld, Hk %lld, d %lld; H must be a multiple "
                        "of Hk)",
                        op, (long long)T, (long long)H, (long long)Hk, (long long)d);
    FW_CHECK(fw_range(c, Q, q_off, T * H * d, 4, op, "Q"));
    FW_CHECK(fw_range(c, K, k_off, (p0 + T) * Hk * d, 4, op, "K"));
    FW_CHECK(fw_range(c, V, v_off, (p0 + T) * Hk * d, 4, op, "V"));
    FW_CHECK(fw_range(c, O, o_off, T * H * d, 4, op, "O"));
    if (T == 0) return GPTQ_OK;
    if (T > INT32_MAX || H > 65535)
        return hip_fail(c, GPTQ_ERR_SHAPE, "%s: grid too large", op);
    const size_t smem = ATT_THREADS * sizeof(double) + (size_t)(d + p0 + T) * sizeof(float);
    if (smem > (size_t)c->smem_per_block)
        return hip_fail(c, GPTQ_ERR_UNSUPPORTED,
                        "%s: %lld cached positions need %zu bytes of shared memory per query "
                        "(the device gives %d)",
                        op, (long long)(p0 + T), smem, c->smem_per_block);
    dim3 grid((unsigned)T, (unsigned)H, 1);
    attention_kv_kernel<<<grid, ATT_THREADS, smem, c->stream>>>(
        HIP_CF32(Q, q_off), HIP_CF32(K, k_off), HIP_CF32(V, v_off), p0, H, Hk, d, scale,
        window, softcap, HIP_F32(O, o_off));
    return hip_check_launch(c, "attention_kv");
}

/* ------------------------------------------------------------------ */
/* elementwise                                                         */
/* ------------------------------------------------------------------ */

__global__ void silu_mul_kernel(const float *G, const float *U, int64_t n, float *Y)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const float a = G[i];
        Y[i] = (a / (1.0f + expf(-a))) * U[i];
    }
}

/* PyTorch's gelu(approximate="tanh") constants rounded to f32, as its
 * kernels hold them (kBeta = sqrt(2) * (2 / sqrt(pi)) * 0.5) */
#define GELU_BETA ((float)0.7978845608028654) /* the double M_SQRT2 * M_2_SQRTPI * 0.5 */
#define GELU_KAPPA 0.044715f

__global__ void gelu_tanh_mul_kernel(const float *G, const float *U, int64_t n, float *Y)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const float a = G[i];
        const float inner = GELU_BETA * (a + GELU_KAPPA * (a * a * a));
        Y[i] = ((0.5f * a) * (1.0f + tanhf(inner))) * U[i];
    }
}

__global__ void scale_kernel(float *X, int64_t n, float s)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        X[i] = X[i] * s;
}

__global__ void softcap_kernel(float *X, int64_t n, float cap)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        X[i] = cap * tanhf(X[i] / cap);
}

__global__ void relu_kernel(float *X, int64_t n)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        if (X[i] < 0.0f) X[i] = 0.0f;
}

__global__ void add_kernel(const float *A, const float *B, int64_t n, float *Y)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        Y[i] = A[i] + B[i];
}

__global__ void bias_add_kernel(float *X, const float *__restrict__ b, int64_t T, int64_t F)
{
    const int64_t n = T * F;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        X[i] = X[i] + b[i % F];
}

int hip_silu_mul(void *ctx, const gptq_buf *G, size_t g_off, // (n)
                 const gptq_buf *U, size_t u_off,            // (n)
                 int64_t n, gptq_buf *Y, size_t y_off)       // (n)
{
    hip_ctx *c = (hip_ctx *)ctx;
    static const char op[] = "silu_mul";
    FW_CHECK(fw_range(c, G, g_off, n, 4, op, "G"));
    FW_CHECK(fw_range(c, U, u_off, n, 4, op, "U"));
    FW_CHECK(fw_range(c, Y, y_off, n, 4, op, "Y"));
    if (n == 0) return GPTQ_OK;
    silu_mul_kernel<<<grid_1d(n, 256), 256, 0, c->stream>>>(HIP_CF32(G, g_off), HIP_CF32(U, u_off),
                                                            n, HIP_F32(Y, y_off));
    return hip_check_launch(c, "silu_mul");
}

int hip_gelu_tanh_mul(void *ctx, const gptq_buf *G, size_t g_off, // (n)
                      const gptq_buf *U, size_t u_off,            // (n)
                      int64_t n, gptq_buf *Y, size_t y_off)       // (n)
{
    hip_ctx *c = (hip_ctx *)ctx;
    static const char op[] = "gelu_tanh_mul";
    FW_CHECK(fw_range(c, G, g_off, n, 4, op, "G"));
    FW_CHECK(fw_range(c, U, u_off, n, 4, op, "U"));
    FW_CHECK(fw_range(c, Y, y_off, n, 4, op, "Y"));
    if (n == 0) return GPTQ_OK;
    gelu_tanh_mul_kernel<<<grid_1d(n, 256), 256, 0, c->stream>>>(
        HIP_CF32(G, g_off), HIP_CF32(U, u_off), n, HIP_F32(Y, y_off));
    return hip_check_launch(c, op);
}

int hip_scale(void *ctx, gptq_buf *X, size_t x_off, int64_t n, float s) // (n)
{
    hip_ctx *c = (hip_ctx *)ctx;
    FW_CHECK(fw_range(c, X, x_off, n, 4, "scale", "X"));
    if (n == 0) return GPTQ_OK;
    scale_kernel<<<grid_1d(n, 256), 256, 0, c->stream>>>(HIP_F32(X, x_off), n, s);
    return hip_check_launch(c, "scale");
}

int hip_softcap(void *ctx, gptq_buf *X, size_t x_off, int64_t n, float cap) // (n)
{
    hip_ctx *c = (hip_ctx *)ctx;
    static const char op[] = "softcap";
    if (!(cap > 0.0f && isfinite(cap)))
        return hip_fail(c, GPTQ_ERR_INVALID, "%s: cap %g must be positive and finite", op,
                        (double)cap);
    FW_CHECK(fw_range(c, X, x_off, n, 4, op, "X"));
    if (n == 0) return GPTQ_OK;
    softcap_kernel<<<grid_1d(n, 256), 256, 0, c->stream>>>(HIP_F32(X, x_off), n, cap);
    return hip_check_launch(c, op);
}

int hip_relu(void *ctx, gptq_buf *X, size_t x_off, int64_t n) // (n)
{
    hip_ctx *c = (hip_ctx *)ctx;
    FW_CHECK(fw_range(c, X, x_off, n, 4, "relu", "X"));
    if (n == 0) return GPTQ_OK;
    relu_kernel<<<grid_1d(n, 256), 256, 0, c->stream>>>(HIP_F32(X, x_off), n);
    return hip_check_launch(c, "relu");
}

int hip_add(void *ctx, const gptq_buf *A, size_t a_off, // (n)
            const gptq_buf *B, size_t b_off,            // (n)
            int64_t n, gptq_buf *Y, size_t y_off)       // (n)
{
    hip_ctx *c = (hip_ctx *)ctx;
    static const char op[] = "add";
    FW_CHECK(fw_range(c, A, a_off, n, 4, op, "A"));
    FW_CHECK(fw_range(c, B, b_off, n, 4, op, "B"));
    FW_CHECK(fw_range(c, Y, y_off, n, 4, op, "Y"));
    if (n == 0) return GPTQ_OK;
    add_kernel<<<grid_1d(n, 256), 256, 0, c->stream>>>(HIP_CF32(A, a_off), HIP_CF32(B, b_off), n,
                                                       HIP_F32(Y, y_off));
    return hip_check_launch(c, "add");
}

int hip_bias_add(void *ctx, gptq_buf *X, size_t x_off, // (T, F)
                 const gptq_buf *b, size_t b_off,      // (F)
                 int64_t T, int64_t F)
{
    hip_ctx *c = (hip_ctx *)ctx;
    static const char op[] = "bias_add";
    if (T < 0 || F <= 0) return hip_fail(c, GPTQ_ERR_SHAPE, "%s: bad T or F", op);
    FW_CHECK(fw_range(c, X, x_off, T * F, 4, op, "X"));
    FW_CHECK(fw_range(c, b, b_off, F, 4, op, "b"));
    if (T == 0) return GPTQ_OK;
    bias_add_kernel<<<grid_1d(T * F, 256), 256, 0, c->stream>>>(HIP_F32(X, x_off),
                                                                HIP_CF32(b, b_off), T, F);
    return hip_check_launch(c, "bias_add");
}

/* ------------------------------------------------------------------ */
/* cross-entropy: one block per row                                    */
/* ------------------------------------------------------------------ */

__global__ __launch_bounds__(FW_THREADS) void cross_entropy_kernel(const float *L,
                                                                   const int32_t *__restrict__ tgt,
                                                                   int64_t V, double *nll)
{
    __shared__ double sh[FW_THREADS];
    const int64_t t = blockIdx.x;
    const int tid = (int)threadIdx.x;
    if (tgt[t] < 0) { /* uniform for the block */
        if (tid == 0) nll[t] = 0.0;
        return;
    }
    const float *r = L + t * V;
    double mx = -INFINITY;
    for (int64_t j = tid; j < V; j += FW_THREADS) mx = fmax(mx, (double)r[j]);
    sh[tid] = mx;
    __syncthreads();
    for (int s = FW_THREADS / 2; s > 0; s >>= 1) {
        if (tid < s) sh[tid] = fmax(sh[tid], sh[tid + s]);
        __syncthreads();
    }
    mx = sh[0];
    __syncthreads();
    double s = 0.0;
    for (int64_t j = tid; j < V; j += FW_THREADS) s += exp((double)r[j] - mx);
    s = block_sum_d(s, sh);
    if (tid == 0) nll[t] = mx + log(s) - (double)r[tgt[t]];
}

int hip_cross_entropy(void *ctx, const gptq_buf *L, size_t l_off, // (T, V)
                      const gptq_buf *tgt, size_t tgt_off,        // (T) i32
                      int64_t T, int64_t V, gptq_buf *nll, size_t nll_off) // (T) f64
{
    hip_ctx *c = (hip_ctx *)ctx;
    static const char op[] = "cross_entropy";
    if (T < 0 || V <= 0) return hip_fail(c, GPTQ_ERR_SHAPE, "%s: bad T or V", op);
    FW_CHECK(fw_range(c, L, l_off, T * V, 4, op, "L"));
    FW_CHECK(fw_range(c, tgt, tgt_off, T, 4, op, "tgt"));
    FW_CHECK(fw_range(c, nll, nll_off, T, 8, op, "nll"));
    if (T == 0) return GPTQ_OK;
    if (T > INT32_MAX) return hip_fail(c, GPTQ_ERR_SHAPE, "%s: too many rows", op);
    int32_t *h;
    FW_CHECK(fetch_i32(c, tgt, tgt_off, T, &h, op));
    for (int64_t t = 0; t < T; t++)
        if (h[t] >= V) {
            int st = hip_fail(c, GPTQ_ERR_INVALID, "%s: target %d at row %lld is >= V = %lld",
                              op, h[t], (long long)t, (long long)V);
            free(h);
            return st;
        }
    free(h);
    cross_entropy_kernel<<<(unsigned)T, FW_THREADS, 0, c->stream>>>(
        HIP_CF32(L, l_off), (const int32_t *)tgt->ptr + tgt_off, V, (double *)nll->ptr + nll_off);
    return hip_check_launch(c, "cross_entropy");
}
