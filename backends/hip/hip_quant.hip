/*
 * hip_quant.hip — quantization grids and the fused GPTQ block for the HIP
 * backend.
 *
 * gptq_block is ONE kernel launch per block of columns. GPTQ is independent
 * across the rows of W once U is known, so each thread owns one row and
 * walks the nb columns of the block in order: grid at a group start,
 * quantize, error, feed the error into the later columns of the block. A
 * thread block of HQ_ROWS rows first copies its (HQ_ROWS, nb) slice of W
 * into shared memory with coalesced loads (column-major there, padded, so
 * each thread's column walk is conflict-free), works there, and writes W,
 * the codes and the errors back coalesced. Every thread of a warp reads the
 * same U[j, k] at the same time (one broadcast load). When the slice does
 * not fit in shared memory (very large blocks) the same loop runs on global
 * memory directly.
 *
 * Arithmetic: the same operations in the same order as cpu_quant.c, with
 * no fused multiply-add (products and differences go through __fmul_rn /
 * __fsub_rn on NVIDIA; the HIP build compiles this file with contraction
 * off). Division and sqrt are IEEE (nvcc's default -prec-div/-prec-sqrt,
 * clang's default for HIP). So, given the same U, codes, scales, zeros,
 * errors and losses match the CPU backend bit for bit; the one exception is
 * the MSE grid search, whose pow() may differ by an ulp between libms.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>

#include "hip_impl.h"

#if defined(GPTQ_HIP_ON_NVIDIA)
#define QMUL(a, b) __fmul_rn((a), (b))
#define QSUB(a, b) __fsub_rn((a), (b))
#else
#pragma clang fp contract(off)
#define QMUL(a, b) ((a) * (b))
#define QSUB(a, b) ((a) - (b))
#endif

#define HQ_ROWS 32 /* rows (threads) per thread block */

/* The g values of one row's group: the first n_sm from shared memory
 * (stride sm_ld), the rest from global memory at gl. */
typedef struct col_src {
    const float *sm;
    int sm_ld;
    int64_t n_sm;
    const float *gl;
} col_src;

__device__ static inline float col_get(const col_src &s, int64_t k)
{
    return k < s.n_sm ? s.sm[k * s.sm_ld] : s.gl[k - s.n_sm];
}

/* Grid of one row over g values (see row_grid in cpu_quant.c: the same
 * steps). */
__device__ static void row_grid(const col_src &w, int64_t g, const gptq_grid_params &p,
                                float *scale_out, float *zero_out)
{
    const float maxq = (float)((1 << p.bits) - 1);
    float xmin = 0.0f, xmax = 0.0f;
    for (int64_t k = 0; k < g; k++) {
        const float v = col_get(w, k);
        if (v < xmin) xmin = v;
        if (v > xmax) xmax = v;
    }
    if (p.sym) {
        xmax = fmaxf(-xmin, xmax);
        xmin = -xmax;
    }
    if (xmin == 0.0f && xmax == 0.0f) {
        xmin = -1.0f;
        xmax = 1.0f;
    }
    const float zsym = (maxq + 1.0f) / 2.0f;
    float scale = QSUB(xmax, xmin) / maxq;
    float zero = p.sym ? zsym : rintf(-xmin / scale);
    if (p.mse) {
        double best = INFINITY;
        const int steps = (int)(p.mse_maxshrink * (float)p.mse_grid);
        for (int i = 0; i < steps; i++) {
            const float f = 1.0f - (float)i / (float)p.mse_grid;
            const float xmin1 = QMUL(f, xmin), xmax1 = QMUL(f, xmax);
            const float s1 = QSUB(xmax1, xmin1) / maxq;
            const float z1 = p.sym ? zsym : rintf(-xmin1 / s1);
            double err = 0.0;
            for (int64_t k = 0; k < g; k++) {
                const float v = col_get(w, k);
                const float q = fminf(fmaxf(rintf(v / s1) + z1, 0.0f), maxq);
                const float d = fabsf(QSUB(QMUL(s1, QSUB(q, z1)), v));
                err += pow((double)d, (double)p.mse_norm);
            }
            if (err < best) {
                best = err;
                scale = s1;
                zero = z1;
            }
        }
    }
    *scale_out = scale;
    *zero_out = zero;
}

static int check_grid(hip_ctx *c, const gptq_grid_params *p)
{
    if (p->bits < 1 || p->bits > 8)
        return hip_fail(c, GPTQ_ERR_INVALID, "bits %d outside 1..8", p->bits);
    if (p->mse && (p->mse_grid <= 0 || !(p->mse_maxshrink > 0.0f) || p->mse_maxshrink > 1.0f))
        return hip_fail(c, GPTQ_ERR_INVALID, "bad mse parameters");
    return GPTQ_OK;
}

/* ------------------------------------------------------------------------
 * quant_grid
 * ---------------------------------------------------------------------- */

__global__ void quant_grid_kernel(const float *__restrict__ W, int64_t R, int64_t C, int64_t c0,
                                  int64_t g, float *scale, float *zero, gptq_grid_params p)
{
    const int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= R) return;
    col_src src = {NULL, 0, 0, W + r * C + c0};
    row_grid(src, g, p, &scale[r], &zero[r]);
}

int hip_quant_grid(void *ctx, const gptq_buf *W, // (R, C) f32
                   int64_t R, int64_t C, int64_t c0, int64_t g, int64_t group,
                   gptq_buf *scale, // (ngroups, R) f32
                   gptq_buf *zero,  // (ngroups, R) f32
                   const gptq_grid_params *p)
{
    hip_ctx *c = (hip_ctx *)ctx;
    int st = check_grid(c, p);
    if (st) return st;
    if (R <= 0 || C <= 0 || c0 < 0 || g <= 0 || c0 + g > C || group < 0)
        return hip_fail(c, GPTQ_ERR_INVALID, "quant_grid: bad range c0=%lld g=%lld C=%lld",
                        (long long)c0, (long long)g, (long long)C);
    if (!W || !scale || !zero || W->nbytes < (size_t)(R * C) * 4 ||
        scale->nbytes < (size_t)((group + 1) * R) * 4 || zero->nbytes < (size_t)((group + 1) * R) * 4)
        return hip_fail(c, GPTQ_ERR_INVALID, "quant_grid: buffer too small");
    const int threads = 128;
    quant_grid_kernel<<<(unsigned)((R + threads - 1) / threads), threads, 0, c->stream>>>(
        HIP_CF32(W, 0), R, C, c0, g, HIP_F32(scale, group * R), HIP_F32(zero, group * R), *p);
    return hip_check_launch(c, "quant_grid");
}

/* ------------------------------------------------------------------------
 * gptq_block
 * ---------------------------------------------------------------------- */

typedef struct block_params {
    float *W;             /* (R, C) */
    int64_t R, C;
    const float *U;       /* (C, C) upper, or NULL: identity (RTN) */
    int64_t j0;
    int nb;
    int64_t G;
    int grid_given;
    const int32_t *gidx;  /* (C) */
    int64_t ngroups;
    float *S, *Z;         /* (ngroups, R) */
    uint8_t *codes;       /* (R, C) */
    float *Err;           /* (R, nb) */
    double *loss;         /* (R) */
    gptq_grid_params gp;
    hip_flag_t *flags;
} block_params;

/* Shared memory of the staged kernel, for nb columns. */
static size_t block_smem_bytes(int nb)
{
    return (size_t)nb * (2 * (HQ_ROWS + 1) * sizeof(float) + HQ_ROWS);
}

template <int STAGED>
__global__ __launch_bounds__(HQ_ROWS) void gptq_block_kernel(block_params p)
{
    extern __shared__ float smem[];
    const int t = (int)threadIdx.x, nb = p.nb, ld = HQ_ROWS + 1;
    const int64_t r0 = (int64_t)blockIdx.x * HQ_ROWS, r = r0 + t, R = p.R, C = p.C, j0 = p.j0;
    const int nrows = R - r0 < HQ_ROWS ? (int)(R - r0) : HQ_ROWS;
    float *sw = smem;                                  // (nb, ld): W[r0 + t][j0 + c] at c*ld + t
    float *se = smem + (size_t)nb * ld;                // (nb, ld): errors
    uint8_t *sq = (uint8_t *)(smem + (size_t)2 * nb * ld); // (nb, HQ_ROWS): codes

    /* group indices must address scale/zero (the same check for every
     * thread: a uniform exit); the host hears of it at its next sync */
    for (int j = 0; j < nb; j++) {
        const int32_t g = p.gidx[j0 + j];
        if (g < 0 || (int64_t)g >= p.ngroups) {
            if (t == 0) hip_defer(p.flags, HIP_DEFER_GIDX, j0 + j, g);
            return;
        }
    }

    if (STAGED) {
        for (int idx = t; idx < nrows * nb; idx += HQ_ROWS) {
            const int row = idx / nb, col = idx % nb;
            sw[col * ld + row] = p.W[(r0 + row) * C + j0 + col];
        }
        __syncthreads();
    }

    if (r < R) {
        const float maxq = (float)((1 << p.gp.bits) - 1);
        float *wrow = p.W + r * C; /* unstaged: this row in global memory */
        double lacc = p.loss[r];
        for (int j = 0; j < nb; j++) {
            const int64_t jj = j0 + j;
            const int64_t g = p.gidx[jj];
            if (!p.grid_given && jj % p.G == 0) {
                const int64_t len = p.G < C - jj ? p.G : C - jj;
                col_src src;
                if (STAGED) {
                    /* block columns from shared memory (in-block updates),
                     * the rest of a wide group from global memory */
                    const int64_t n_sm = len < nb - j ? len : nb - j;
                    src.sm = sw + j * ld + t;
                    src.sm_ld = ld;
                    src.n_sm = n_sm;
                    src.gl = wrow + jj + n_sm;
                } else {
                    src.sm = NULL;
                    src.sm_ld = 0;
                    src.n_sm = 0;
                    src.gl = wrow + jj;
                }
                float s1, z1;
                row_grid(src, len, p.gp, &s1, &z1);
                p.S[g * R + r] = s1;
                p.Z[g * R + r] = z1;
            }
            const float s = p.S[g * R + r], z = p.Z[g * R + r];
            const float w = STAGED ? sw[j * ld + t] : wrow[jj];
            const float q = fminf(fmaxf(rintf(w / s) + z, 0.0f), maxq);
            const float what = QMUL(s, QSUB(q, z));
            const float d = p.U ? p.U[jj * C + jj] : 1.0f;
            const float e = QSUB(w, what) / d;
            const double diff = (double)w - (double)what;
            lacc += diff * diff / ((double)d * (double)d) / 2.0;
            /* the column is done: it holds the dequantized weight */
            if (STAGED) {
                sq[j * HQ_ROWS + t] = (uint8_t)q;
                se[j * ld + t] = e;
                sw[j * ld + t] = what;
            } else {
                p.codes[r * C + jj] = (uint8_t)q;
                p.Err[r * nb + j] = e;
                wrow[jj] = what;
            }
            if (p.U) {
                const float *u = p.U + jj * C + j0; /* same address across the warp */
                if (STAGED) {
#pragma unroll 4
                    for (int k = j + 1; k < nb; k++)
                        sw[k * ld + t] = QSUB(sw[k * ld + t], QMUL(e, u[k]));
                } else {
                    for (int k = j + 1; k < nb; k++)
                        wrow[j0 + k] = QSUB(wrow[j0 + k], QMUL(e, u[k]));
                }
            }
        }
        p.loss[r] = lacc;
    }

    if (STAGED) {
        __syncthreads();
        for (int idx = t; idx < nrows * nb; idx += HQ_ROWS) {
            const int row = idx / nb, col = idx % nb;
            p.W[(r0 + row) * C + j0 + col] = sw[col * ld + row];
            p.codes[(r0 + row) * C + j0 + col] = sq[col * HQ_ROWS + row];
            p.Err[(r0 + row) * nb + col] = se[col * ld + row];
        }
    }
}

int hip_gptq_block(void *ctx, const gptq_block_args *a)
{
    hip_ctx *c = (hip_ctx *)ctx;
    int st = check_grid(c, &a->grid);
    if (st) return st;
    const int64_t R = a->R, C = a->C, j0 = a->j0, nb = a->nb, G = a->group_size;
    if (R <= 0 || C <= 0 || j0 < 0 || nb <= 0 || j0 + nb > C || G <= 0)
        return hip_fail(c, GPTQ_ERR_INVALID, "gptq_block: bad block [%lld, %lld) of %lld",
                        (long long)j0, (long long)(j0 + nb), (long long)C);
    if (nb > INT_MAX / 2)
        return hip_fail(c, GPTQ_ERR_UNSUPPORTED, "gptq_block: block of %lld columns", (long long)nb);
    if (!a->grid_given && G < nb && (nb % G != 0 || j0 % G != 0))
        return hip_fail(c, GPTQ_ERR_INVALID,
                        "gptq_block: group %lld does not tile the block [%lld, %lld)",
                        (long long)G, (long long)j0, (long long)(j0 + nb));
    if (!a->W || !a->codes || !a->Err || !a->loss || !a->gidx || !a->scale || !a->zero)
        return hip_fail(c, GPTQ_ERR_INVALID, "gptq_block: a buffer is NULL");
    if (a->W->nbytes < (size_t)(R * C) * 4 || a->codes->nbytes < (size_t)(R * C) ||
        a->Err->nbytes < (size_t)(R * nb) * 4 || a->loss->nbytes < (size_t)R * 8 ||
        a->gidx->nbytes < (size_t)C * 4 || (a->U && a->U->nbytes < (size_t)(C * C) * 4) ||
        a->zero->nbytes < a->scale->nbytes)
        return hip_fail(c, GPTQ_ERR_INVALID, "gptq_block: buffer too small");

    block_params p;
    p.W = HIP_F32(a->W, 0);
    p.R = R;
    p.C = C;
    p.U = a->U ? HIP_CF32(a->U, 0) : NULL;
    p.j0 = j0;
    p.nb = (int)nb;
    p.G = G;
    p.grid_given = a->grid_given;
    p.gidx = (const int32_t *)a->gidx->ptr;
    p.ngroups = (int64_t)(a->scale->nbytes / 4 / (size_t)R);
    p.S = HIP_F32(a->scale, 0);
    p.Z = HIP_F32(a->zero, 0);
    p.codes = (uint8_t *)a->codes->ptr;
    p.Err = HIP_F32(a->Err, 0);
    p.loss = (double *)a->loss->ptr;
    p.gp = a->grid;
    p.flags = c->flags;

    const unsigned nblocks = (unsigned)((R + HQ_ROWS - 1) / HQ_ROWS);
    const size_t smem = block_smem_bytes((int)nb);
    if (smem <= (size_t)c->smem_per_block) {
        gptq_block_kernel<1><<<nblocks, HQ_ROWS, smem, c->stream>>>(p);
        return hip_check_launch(c, "gptq_block (staged)");
    }
    gptq_block_kernel<0><<<nblocks, HQ_ROWS, 0, c->stream>>>(p);
    return hip_check_launch(c, "gptq_block (global)");
}
