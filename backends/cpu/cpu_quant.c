/*
 * cpu_quant.c — quantization grids and the GPTQ block loop (reference).
 *
 * GPTQ is independent across the rows of W once U is known: every row runs
 * the same sequential column loop. So rows are spread over OpenMP threads and
 * each row's arithmetic is fixed by the code alone (bit-exact for any thread
 * count). Rounding is rintf (round half to even, as torch.round).
 */
#include <math.h>
#include <string.h>

#include "cpu_impl.h"

/* Grid of one row over g values: scale and (integral) zero.
 * asym: [min(0, min w), max(0, max w)]; sym: [-m, m], m = max |w|;
 * an all-zero range becomes [-1, 1]. With mse, the range is shrunk by
 * p = 1 - i/grid (i < maxshrink*grid) and the p with the smallest
 * sum |w_hat - w|^norm kept (first one on ties). */
static void row_grid(const float *w, int64_t g, const gptq_grid_params *p, float *scale_out,
                     float *zero_out)
{
    const float maxq = (float)((1 << p->bits) - 1);
    float xmin = 0.0f, xmax = 0.0f;
    for (int64_t k = 0; k < g; k++) {
        if (w[k] < xmin) xmin = w[k];
        if (w[k] > xmax) xmax = w[k];
    }
    if (p->sym) {
        xmax = fmaxf(-xmin, xmax);
        xmin = -xmax;
    }
    if (xmin == 0.0f && xmax == 0.0f) {
        xmin = -1.0f;
        xmax = 1.0f;
    }
    const float zsym = (maxq + 1.0f) / 2.0f;
    float scale = (xmax - xmin) / maxq;
    float zero = p->sym ? zsym : rintf(-xmin / scale);
    if (p->mse) {
        double best = INFINITY;
        int steps = (int)(p->mse_maxshrink * (float)p->mse_grid);
        for (int i = 0; i < steps; i++) {
            float f = 1.0f - (float)i / (float)p->mse_grid;
            float xmin1 = f * xmin, xmax1 = f * xmax;
            float s1 = (xmax1 - xmin1) / maxq;
            float z1 = p->sym ? zsym : rintf(-xmin1 / s1);
            double err = 0.0;
            for (int64_t k = 0; k < g; k++) {
                float q = fminf(fmaxf(rintf(w[k] / s1) + z1, 0.0f), maxq);
                float d = fabsf(s1 * (q - z1) - w[k]);
                err += pow((double)d, (double)p->mse_norm);
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

static int check_grid(cpu_ctx *c, const gptq_grid_params *p)
{
    if (p->bits < 1 || p->bits > 8)
        return cpu_fail(c, GPTQ_ERR_INVALID, "bits %d outside 1..8", p->bits);
    if (p->mse && (p->mse_grid <= 0 || !(p->mse_maxshrink > 0.0f) || p->mse_maxshrink > 1.0f))
        return cpu_fail(c, GPTQ_ERR_INVALID, "bad mse parameters");
    return GPTQ_OK;
}

int cpu_quant_grid(void *ctx, const gptq_buf *W, int64_t R, int64_t C, int64_t c0, int64_t g,
                   int64_t group, gptq_buf *scale, gptq_buf *zero, const gptq_grid_params *p)
{
    int st = check_grid(ctx, p);
    if (st) return st;
    if (R <= 0 || C <= 0 || c0 < 0 || g <= 0 || c0 + g > C || group < 0)
        return cpu_fail(ctx, GPTQ_ERR_INVALID, "quant_grid: bad range c0=%lld g=%lld C=%lld",
                        (long long)c0, (long long)g, (long long)C);
    if (W->nbytes < (size_t)(R * C) * 4 || scale->nbytes < (size_t)((group + 1) * R) * 4 ||
        zero->nbytes < (size_t)((group + 1) * R) * 4)
        return cpu_fail(ctx, GPTQ_ERR_INVALID, "quant_grid: buffer too small");
    const float *w = CPU_CF32(W, 0);
    float *s = CPU_F32(scale, group * R), *z = CPU_F32(zero, group * R);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++) row_grid(w + r * C + c0, g, p, &s[r], &z[r]);
    return GPTQ_OK;
}

int cpu_gptq_block(void *ctx, const gptq_block_args *a)
{
    int st = check_grid(ctx, &a->grid);
    if (st) return st;
    const int64_t R = a->R, C = a->C, j0 = a->j0, nb = a->nb, G = a->group_size;
    if (R <= 0 || C <= 0 || j0 < 0 || nb <= 0 || j0 + nb > C || G <= 0)
        return cpu_fail(ctx, GPTQ_ERR_INVALID, "gptq_block: bad block [%lld, %lld) of %lld",
                        (long long)j0, (long long)(j0 + nb), (long long)C);
    if (!a->grid_given && G < nb && (nb % G != 0 || j0 % G != 0))
        return cpu_fail(ctx, GPTQ_ERR_INVALID,
                        "gptq_block: group %lld does not tile the block [%lld, %lld)",
                        (long long)G, (long long)j0, (long long)(j0 + nb));
    if (a->W->nbytes < (size_t)(R * C) * 4 || a->codes->nbytes < (size_t)(R * C) ||
        a->Err->nbytes < (size_t)(R * nb) * 4 || a->loss->nbytes < (size_t)R * 8 ||
        a->gidx->nbytes < (size_t)C * 4 || (a->U && a->U->nbytes < (size_t)(C * C) * 4))
        return cpu_fail(ctx, GPTQ_ERR_INVALID, "gptq_block: buffer too small");
    const int64_t ngroups = (int64_t)(a->scale->nbytes / 4 / (size_t)R);
    const int32_t *gidx = (const int32_t *)(const void *)a->gidx->data;
    for (int64_t j = j0; j < j0 + nb; j++)
        if (gidx[j] < 0 || gidx[j] >= ngroups)
            return cpu_fail(ctx, GPTQ_ERR_INVALID, "gptq_block: gidx[%lld] = %d outside %lld groups",
                            (long long)j, gidx[j], (long long)ngroups);

    float *W = CPU_F32(a->W, 0), *E = CPU_F32(a->Err, 0);
    float *S = CPU_F32(a->scale, 0), *Z = CPU_F32(a->zero, 0);
    const float *U = a->U ? CPU_CF32(a->U, 0) : NULL;
    uint8_t *codes = a->codes->data;
    double *loss = (double *)(void *)a->loss->data;
    const float maxq = (float)((1 << a->grid.bits) - 1);

#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++) {
        float *w = W + r * C;
        for (int64_t j = j0; j < j0 + nb; j++) {
            const int64_t g = gidx[j];
            if (!a->grid_given && j % G == 0) {
                int64_t len = G < C - j ? G : C - j;
                row_grid(w + j, len, &a->grid, &S[g * R + r], &Z[g * R + r]);
            }
            const float s = S[g * R + r], z = Z[g * R + r];
            const float q = fminf(fmaxf(rintf(w[j] / s) + z, 0.0f), maxq);
            const float what = s * (q - z);
            const float d = U ? U[j * C + j] : 1.0f;
            const float e = (w[j] - what) / d;
            codes[r * C + j] = (uint8_t)q;
            const double diff = (double)w[j] - (double)what;
            loss[r] += diff * diff / ((double)d * (double)d) / 2.0;
            E[r * nb + (j - j0)] = e;
            w[j] = what; /* the column is done: it holds the dequantized weight */
            if (U) {
                const float *u = U + j * C;
                for (int64_t k = j + 1; k < j0 + nb; k++) w[k] -= e * u[k];
            }
        }
    }
    return GPTQ_OK;
}
