/*
 * backend_ops_cases.c — the op table (backend_ops_cases.h says what a row
 * is): per op a generator, the call through the vtable, a naive reference
 * and property checks; then the rows, with the shapes the HIP tests have
 * always used, and their tolerances with the reason for each.
 *
 * The naive references are plain loops written from backend.h's contract,
 * sums in double; where the contract fixes every f32 operation (elementwise
 * ops, grids, the GPTQ block, packed tensors) they perform those operations
 * and the CPU backend must give their bytes.
 */
#include "backend_ops_cases.h"

#include "quant/solve.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* data                                                                */
/* ------------------------------------------------------------------ */

static size_t tsize(int t) { return t == OC_F64 ? 8 : t == OC_U8 ? 1 : t == OC_U16 ? 2 : 4; }

static void *xcalloc(size_t n, size_t s)
{
    void *p = calloc(n ? n : 1, s);
    if (!p) {
        fprintf(stderr, "backend_ops_cases: out of host memory (%zu x %zu bytes)\n", n, s);
        exit(1); /* a test program, not the library */
    }
    return p;
}

static void *add_in(oc_data *d, int type, size_t n)
{
    oc_arr *a = &d->in[d->nin++];
    a->type = type;
    a->n = n;
    a->p = xcalloc(n, tsize(type));
    return a->p;
}

/* output k: buffer `from` downloaded after the call */
static void add_out(oc_data *d, const char *name, int from)
{
    const int k = d->nout++;
    d->name[k] = name;
    d->from[k] = from;
    d->out[k].type = d->in[from].type;
    d->out[k].n = d->in[from].n;
}

/* output k written by the call: {status, message names the problem, aux} */
static void add_status(oc_data *d)
{
    const int k = d->nout++;
    d->name[k] = "status";
    d->from[k] = -1;
    d->exact[k] = 1;
    d->out[k].type = OC_I32;
    d->out[k].n = 3;
}

static void alloc_outs(oc_data *d)
{
    for (int k = 0; k < d->nout; k++) d->out[k].p = xcalloc(d->out[k].n, tsize(d->out[k].type));
}

void oc_data_free(oc_data *d)
{
    for (int i = 0; i < d->nin; i++) free(d->in[i].p);
    for (int k = 0; k < d->nout; k++) free(d->out[k].p);
    memset(d, 0, sizeof *d);
}

void oc_clone(const oc_data *d, oc_data *o)
{
    *o = *d;
    for (int i = 0; i < d->nin; i++) {
        o->in[i].p = xcalloc(d->in[i].n, tsize(d->in[i].type));
        memcpy(o->in[i].p, d->in[i].p, d->in[i].n * tsize(d->in[i].type));
    }
    alloc_outs(o);
}

#define F32(a) ((float *)(a).p)
#define I32(a) ((int32_t *)(a).p)

/* the LCG of the HIP tests: uniform [-1, 1) */
static uint64_t g_rng;
static float rng_uniform(void)
{
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(g_rng >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}
static void fill(float *p, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++) p[i] = scale * rng_uniform();
}
static uint32_t rng_word(void)
{
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(g_rng >> 32);
}

/* fp16 and bf16 by their bit layouts (the CPU backend uses _Float16) */
static float h2f(uint16_t h)
{
    const int e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0 ? ldexpf((float)m, -24)
            : e == 31 ? (m ? NAN : INFINITY)
                      : ldexpf((float)(m | 1024), e - 25);
    return (h & 0x8000) ? -v : v;
}
/* x rounded to the nearest fp16 (ties to even), as f32 */
static float round_h(float x)
{
    const float a = fabsf(x);
    if (isnan(x)) return x;
    if (a >= 65520.0f) return copysignf(INFINITY, x);
    if (a < 0x1p-14f) return copysignf(rintf(a * 0x1p24f) * 0x1p-24f, x); /* subnormal quantum */
    int e;
    frexpf(a, &e); /* a in [2^(e-1), 2^e): 11 significant bits */
    const float q = ldexpf(1.0f, e - 11);
    return copysignf(rintf(a / q) * q, x);
}
static float bf2f(uint16_t h)
{
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ------------------------------------------------------------------ */
/* the call: status words and the row's env                            */
/* ------------------------------------------------------------------ */

/* A row expecting failure (msg set) records it; any other failure is the
 * call's. */
static int record(const op_case *c, gptq_backend *be, oc_data *d, int k, int st, int aux)
{
    const char *m = be->iface->error(be->ctx);
    int32_t *s = I32(d->out[k]);
    s[0] = st;
    s[1] = c->msg ? (st != GPTQ_OK && m && strstr(m, c->msg) != NULL) : 1;
    s[2] = aux;
    return st == GPTQ_OK || c->msg ? GPTQ_OK : st;
}

static void want_status(oc_data *d, int k, int st, int aux)
{
    int32_t *s = I32(d->out[k]);
    s[0] = st;
    s[1] = 1;
    s[2] = aux;
}

#define IFC(be) ((be)->iface)
#define CTX(be) ((be)->ctx)

/* ------------------------------------------------------------------ */
/* dense linear algebra in double (the references, and the inputs)     */
/* ------------------------------------------------------------------ */

/* A (n, n) -> its lower Cholesky factor in place (lower triangle read);
 * the first column whose pivot is not positive, or -1. */
static int64_t chol_lower(double *A, int64_t n)
{
    for (int64_t j = 0; j < n; j++) {
        double s = A[j * n + j];
        for (int64_t k = 0; k < j; k++) s -= A[j * n + k] * A[j * n + k];
        if (!(s > 0.0)) return j;
        const double l = sqrt(s);
        A[j * n + j] = l;
        for (int64_t i = j + 1; i < n; i++) {
            double t = A[i * n + j];
            for (int64_t k = 0; k < j; k++) t -= A[i * n + k] * A[j * n + k];
            A[i * n + j] = t / l;
        }
    }
    return -1;
}

/* H (C, C) SPD -> U upper (f32) with U^T U = H^-1, all in double:
 * H = L L^T, H^-1 = L^-T L^-1 = L2 L2^T, U = L2^T. */
static void naive_chol_inverse(const float *H, int64_t C, float *U)
{
    double *L = xcalloc((size_t)(C * C), 8), *Li = xcalloc((size_t)(C * C), 8);
    for (int64_t i = 0; i < C * C; i++) L[i] = H[i];
    chol_lower(L, C);
    for (int64_t j = 0; j < C; j++) /* Li = L^-1, column j: L Li[:, j] = e_j */
        for (int64_t i = j; i < C; i++) {
            double t = i == j ? 1.0 : 0.0;
            for (int64_t k = j; k < i; k++) t -= L[i * C + k] * Li[k * C + j];
            Li[i * C + j] = t / L[i * C + i];
        }
    for (int64_t i = 0; i < C; i++) /* L <- H^-1 = Li^T Li (lower part) */
        for (int64_t j = 0; j <= i; j++) {
            double t = 0.0;
            for (int64_t k = i; k < C; k++) t += Li[k * C + i] * Li[k * C + j];
            L[i * C + j] = t;
        }
    chol_lower(L, C);
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j < C; j++) U[i * C + j] = j >= i ? (float)L[j * C + i] : 0.0f;
    free(L);
    free(Li);
}

/* H = X^T X / n + 0.5 I + 0.5 v v^T with X, v uniform: eigenvalues near
 * 1/3 + 0.5 (condition number below ~3 for n >> C) plus a rank-1 spread. */
static void make_spd(float *H, int64_t C)
{
    const int64_t n = 2 * C + 64;
    float *X = xcalloc((size_t)(n * C), 4), *v = xcalloc((size_t)C, 4);
    fill(X, (size_t)(n * C), 1.0f);
    fill(v, (size_t)C, 1.0f);
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j <= i; j++) {
            double s = 0.0;
            for (int64_t r = 0; r < n; r++) s += (double)X[r * C + i] * X[r * C + j];
            double h = s / (double)n + (i == j ? 0.5 : 0.0) + 0.5 * (double)v[i] * v[j];
            H[i * C + j] = H[j * C + i] = (float)h;
        }
    free(X);
    free(v);
}

/* ------------------------------------------------------------------ */
/* gemm: p = {trans_a, trans_b, M, N, K, pad}; alpha 0.75, beta -0.25 with
 * padded views (pad > 0: leading dimensions + pad, offsets 3, 5, 7 pads),
 * beta 0 without (C then holds NaN: it must not be read).              */
/* ------------------------------------------------------------------ */

typedef struct gemm_geo {
    int ta, tb;
    int64_t M, N, K, lda, ldb, ldc;
    size_t aoff, boff, coff, na, nb, nc;
    float alpha, beta;
} gemm_geo;

static gemm_geo gemm_shape(const op_case *c)
{
    gemm_geo g = {.ta = (int)c->p[0], .tb = (int)c->p[1], .M = c->p[2], .N = c->p[3],
                  .K = c->p[4], .alpha = 0.75f};
    const int64_t pad = c->p[5];
    g.beta = pad ? -0.25f : 0.0f;
    const int64_t ar = g.ta ? g.K : g.M, ac = g.ta ? g.M : g.K;
    const int64_t br = g.tb ? g.N : g.K, bc = g.tb ? g.K : g.N;
    g.lda = ac + pad, g.ldb = bc + pad, g.ldc = g.N + pad;
    g.aoff = 3 * (size_t)pad, g.boff = 5 * (size_t)pad, g.coff = 7 * (size_t)pad;
    g.na = g.aoff + (size_t)(ar * g.lda), g.nb = g.boff + (size_t)(br * g.ldb);
    g.nc = g.coff + (size_t)(g.M * g.ldc);
    return g;
}

static void gemm_gen(const op_case *c, oc_data *d)
{
    const gemm_geo g = gemm_shape(c);
    fill(add_in(d, OC_F32, g.na), g.na, 1.0f);
    fill(add_in(d, OC_F32, g.nb), g.nb, 1.0f);
    float *C0 = add_in(d, OC_F32, g.nc);
    fill(C0, g.nc, 1.0f);
    if (g.beta == 0.0f)
        for (size_t i = 0; i < g.nc; i++) C0[i] = NAN;
    add_out(d, "C", 2);
}

static int gemm_call(const op_case *c, gptq_backend *be, gptq_buf **b, oc_data *d)
{
    (void)d;
    const gemm_geo g = gemm_shape(c);
    return IFC(be)->gemm(CTX(be), g.ta, g.tb, g.M, g.N, g.K, g.alpha, b[0], g.aoff, g.lda, b[1],
                         g.boff, g.ldb, g.beta, b[2], g.coff, g.ldc);
}

static void gemm_naive(const op_case *c, oc_data *d)
{
    const gemm_geo g = gemm_shape(c);
    const float *A = F32(d->in[0]), *B = F32(d->in[1]);
    float *Cm = F32(d->out[0]);
    memcpy(Cm, d->in[2].p, g.nc * 4);
    for (int64_t i = 0; i < g.M; i++)
        for (int64_t j = 0; j < g.N; j++) {
            double s = 0.0;
            for (int64_t k = 0; k < g.K; k++) {
                double a = g.ta ? A[g.aoff + (size_t)(k * g.lda + i)] : A[g.aoff + (size_t)(i * g.lda + k)];
                double bb = g.tb ? B[g.boff + (size_t)(j * g.ldb + k)] : B[g.boff + (size_t)(k * g.ldb + j)];
                s += a * bb;
            }
            float *o = &Cm[g.coff + (size_t)(i * g.ldc + j)];
            *o = (float)(g.alpha * s + (g.beta != 0.0f ? (double)g.beta * *o : 0.0));
        }
}

/* everything outside the C view keeps its bytes */
static int gemm_props(const op_case *c, const oc_data *d, char *msg, size_t n)
{
    const gemm_geo g = gemm_shape(c);
    const float *C0 = F32(d->in[2]), *Cm = F32(d->out[0]);
    for (size_t at = 0; at < g.nc; at++) {
        const int64_t i = at < g.coff ? -1 : (int64_t)(at - g.coff) / g.ldc;
        const int64_t j = at < g.coff ? -1 : (int64_t)(at - g.coff) % g.ldc;
        if (i >= 0 && j < g.N) continue;
        if (memcmp(&C0[at], &Cm[at], 4) != 0) {
            snprintf(msg, n, "gemm wrote outside C at element %zu", at);
            return 1;
        }
    }
    return 0;
}

static double gemm_flops(const op_case *c) { return 2.0 * (double)c->p[2] * c->p[3] * c->p[4]; }

/* ------------------------------------------------------------------ */
/* hessian_accumulate: p = {C, n}; S starts symmetric (10 x uniform),
 * two calls: rows [0, 3n/5) and the rest through x_off.                */
/* ------------------------------------------------------------------ */

static void hess_gen(const op_case *c, oc_data *d)
{
    const int64_t C = c->p[0], n = c->p[1];
    fill(add_in(d, OC_F32, (size_t)(n * C)), (size_t)(n * C), 1.0f);
    float *S = add_in(d, OC_F32, (size_t)(C * C));
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j <= i; j++) S[i * C + j] = S[j * C + i] = 10.0f * rng_uniform();
    add_out(d, "S", 1);
}

static int hess_call(const op_case *c, gptq_backend *be, gptq_buf **b, oc_data *d)
{
    (void)d;
    const int64_t C = c->p[0], n = c->p[1], n1 = n * 3 / 5;
    int st = IFC(be)->hessian_accumulate(CTX(be), b[1], b[0], 0, n1, C);
    return st ? st : IFC(be)->hessian_accumulate(CTX(be), b[1], b[0], (size_t)(n1 * C), n - n1, C);
}

static void hess_naive(const op_case *c, oc_data *d)
{
    const int64_t C = c->p[0], n = c->p[1];
    const float *X = F32(d->in[0]), *S0 = F32(d->in[1]);
    float *S = F32(d->out[0]);
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j < C; j++) {
            double s = 0.0;
            for (int64_t r = 0; r < n; r++) s += (double)X[r * C + i] * X[r * C + j];
            S[i * C + j] = (float)((double)S0[i * C + j] + s);
        }
}

static int hess_props(const op_case *c, const oc_data *d, char *msg, size_t n)
{
    const int64_t C = c->p[0];
    const float *S = F32(d->out[0]);
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j < i; j++)
            if (memcmp(&S[i * C + j], &S[j * C + i], 4) != 0) {
                snprintf(msg, n, "S not symmetric at (%lld, %lld)", (long long)i, (long long)j);
                return 1;
            }
    return 0;
}

static double hess_flops(const op_case *c) { return (double)c->p[1] * c->p[0] * c->p[0]; }

/* ------------------------------------------------------------------ */
/* cholesky_inverse_upper: p = {C, kind}: 0 a well-conditioned SPD H
 * (make_spd); 1 identity with a negative pivot at 70 (C >= 71: the
 * trailing block is where definiteness fails); 2 identity with a NaN at
 * (33, 101) (reported at its column). Output: U (kind 0) and the status
 * words {status, message, bad_col}.                                    */
/* ------------------------------------------------------------------ */

static void chol_gen(const op_case *c, oc_data *d)
{
    const int64_t C = c->p[0];
    float *H = add_in(d, OC_F32, (size_t)(C * C));
    if (c->p[1] == 0) {
        make_spd(H, C);
        add_out(d, "U", 0);
    } else {
        for (int64_t i = 0; i < C; i++) H[i * C + i] = 1.0f;
        if (c->p[1] == 1) H[70 * C + 70] = -2.0f;
        else H[33 * C + 101] = NAN;
    }
    add_status(d);
}

static int chol_call(const op_case *c, gptq_backend *be, gptq_buf **b, oc_data *d)
{
    int64_t bad = 12345;
    int st = IFC(be)->cholesky_inverse_upper(CTX(be), b[0], c->p[0], &bad);
    return record(c, be, d, d->nout - 1, st, (int)bad);
}

static void chol_naive(const op_case *c, oc_data *d)
{
    const int64_t C = c->p[0];
    const float *H = F32(d->in[0]);
    if (c->p[1] == 0) {
        naive_chol_inverse(H, C, F32(d->out[0]));
        want_status(d, 1, GPTQ_OK, -1);
        return;
    }
    int64_t bad = -1;
    for (int64_t i = 0; i < C * C && bad < 0; i++)
        if (!isfinite(H[i])) bad = i % C; /* the first non-finite value, in memory order */
    if (bad < 0) { /* factor J H J (J the reversal): the failing column q names the trailing
                      block H[C-1-q:, C-1-q:] that is not positive definite */
        double *A = xcalloc((size_t)(C * C), 8);
        for (int64_t i = 0; i < C * C; i++) A[i] = H[C * C - 1 - i];
        bad = chol_lower(A, C);
        bad = bad < 0 ? bad : C - 1 - bad;
        free(A);
    }
    want_status(d, 0, GPTQ_ERR_NUMERIC, (int)bad);
}

/* U upper (strict lower part exactly 0) and U^T U H = I within 1e-4 on
 * every seventh column (cond(H) < 3: f32 factors are good to ~1e-6). */
static int chol_props(const op_case *c, const oc_data *d, char *msg, size_t n)
{
    if (c->p[1] != 0) return 0;
    const int64_t C = c->p[0];
    const float *U = F32(d->out[0]), *H = F32(d->in[0]);
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j < i; j++)
            if (U[i * C + j] != 0.0f) {
                snprintf(msg, n, "U not upper at (%lld, %lld)", (long long)i, (long long)j);
                return 1;
            }
    for (int64_t col = 0; col < C; col += (C > 7 ? C / 7 : 1))
        for (int64_t i = 0; i < C; i++) {
            double s = 0.0; /* (U^T U H)[i][col] = sum_k U[k][i] (U H)[k][col] */
            for (int64_t k = 0; k <= i; k++) {
                double uh = 0.0;
                for (int64_t m = k; m < C; m++) uh += (double)U[k * C + m] * H[m * C + col];
                s += (double)U[k * C + i] * uh;
            }
            if (!(fabs(s - (i == col ? 1.0 : 0.0)) < 1e-4)) {
                snprintf(msg, n, "(U^T U H)[%lld][%lld] = %.6g", (long long)i, (long long)col, s);
                return 1;
            }
        }
    return 0;
}

static double chol_flops(const op_case *c) { return (double)c->p[0] * c->p[0] * c->p[0]; }

/* ------------------------------------------------------------------ */
/* quant_grid: p = {bits, sym, mse, R, C, G}: every group of W (row 5 all
 * zero, row 6 without negatives), the last one short.                  */
/* ------------------------------------------------------------------ */

/* backend.h's grid of one row over g values (the contract, written out) */
static void naive_grid(const float *w, int64_t g, const gptq_grid_params *p, float *s_out,
                       float *z_out)
{
    const float maxq = (float)((1 << p->bits) - 1);
    float lo = 0.0f, hi = 0.0f;
    for (int64_t k = 0; k < g; k++) {
        lo = w[k] < lo ? w[k] : lo;
        hi = w[k] > hi ? w[k] : hi;
    }
    if (p->sym) {
        hi = -lo > hi ? -lo : hi;
        lo = -hi;
    }
    if (lo == 0.0f && hi == 0.0f) lo = -1.0f, hi = 1.0f;
    float s = (hi - lo) / maxq;
    float z = p->sym ? (maxq + 1.0f) / 2.0f : rintf(-lo / s);
    double best = INFINITY;
    for (int i = 0; p->mse && i < (int)(p->mse_maxshrink * (float)p->mse_grid); i++) {
        const float f = 1.0f - (float)i / (float)p->mse_grid;
        const float s1 = (f * hi - f * lo) / maxq;
        const float z1 = p->sym ? (maxq + 1.0f) / 2.0f : rintf(-(f * lo) / s1);
        double err = 0.0;
        for (int64_t k = 0; k < g; k++) {
            float q = rintf(w[k] / s1) + z1;
            q = q < 0.0f ? 0.0f : q > maxq ? maxq : q;
            err += pow(fabs((double)(s1 * (q - z1) - w[k])), (double)p->mse_norm);
        }
        if (err < best) best = err, s = s1, z = z1;
    }
    *s_out = s;
    *z_out = z;
}

static gptq_grid_params grid_of(int64_t bits, int64_t sym, int64_t mse)
{
    return (gptq_grid_params){(int)bits, (int)sym, (int)mse, 2.4f, 100, 0.8f};
}

static void grid_gen(const op_case *c, oc_data *d)
{
    const int64_t R = c->p[3], C = c->p[4], G = c->p[5], ng = (C + G - 1) / G;
    float *W = add_in(d, OC_F32, (size_t)(R * C));
    fill(W, (size_t)(R * C), 1.0f);
    for (int64_t j = 0; j < C; j++) W[5 * C + j] = 0.0f;
    for (int64_t j = 0; j < C; j++) W[6 * C + j] = fabsf(W[6 * C + j]);
    add_in(d, OC_F32, (size_t)(ng * R));
    add_in(d, OC_F32, (size_t)(ng * R));
    add_out(d, "scale", 1);
    add_out(d, "zero", 2);
}

static int grid_call(const op_case *c, gptq_backend *be, gptq_buf **b, oc_data *d)
{
    (void)d;
    const int64_t R = c->p[3], C = c->p[4], G = c->p[5];
    const gptq_grid_params gp = grid_of(c->p[0], c->p[1], c->p[2]);
    int st = GPTQ_OK;
    for (int64_t g = 0; !st && g * G < C; g++)
        st = IFC(be)->quant_grid(CTX(be), b[0], R, C, g * G, G < C - g * G ? G : C - g * G, g,
                                 b[1], b[2], &gp);
    return st;
}

static void grid_naive(const op_case *c, oc_data *d)
{
    const int64_t R = c->p[3], C = c->p[4], G = c->p[5];
    const gptq_grid_params gp = grid_of(c->p[0], c->p[1], c->p[2]);
    for (int64_t g = 0; g * G < C; g++)
        for (int64_t r = 0; r < R; r++)
            naive_grid(F32(d->in[0]) + r * C + g * G, G < C - g * G ? G : C - g * G, &gp,
                       &F32(d->out[0])[g * R + r], &F32(d->out[1])[g * R + r]);
}

/* ------------------------------------------------------------------ */
/* gptq_block: p = {R, C, G, B, bits, sym, mse, rtn, static_groups,
 * first_only}. W uniform with row 3 all zero, in quantization order (a
 * random permutation with static groups, whose grids are then given); U a
 * random upper factor (diagonal in [0.5, 1.5], the rest of size
 * 0.5/sqrt(C): any such U is the factor of an SPD H^-1), none for RTN. The
 * solve of src/quant/solve.c: blocks of B, each followed by the lazy gemm;
 * first_only: the first block alone. The finished columns of W hold w_hat.
 * Outputs poisoned (0xEE): every element written.                      */
/* ------------------------------------------------------------------ */

enum { BI_W, BI_U, BI_GIDX, BI_S, BI_Z, BI_CODES, BI_ERR, BI_LOSS };

static void block_gen(const op_case *c, oc_data *d)
{
    const int64_t R = c->p[0], C = c->p[1], G = c->p[2], B = c->p[3], ng = (C + G - 1) / G;
    const int mse = (int)c->p[6], rtn = (int)c->p[7], stat = (int)c->p[8];
    float *W0 = xcalloc((size_t)(R * C), 4);
    fill(W0, (size_t)(R * C), 1.0f);
    for (int64_t j = 0; j < C; j++) W0[3 * C + j] = 0.0f;
    int32_t *perm = xcalloc((size_t)C, 4);
    for (int64_t j = 0; j < C; j++) perm[j] = (int32_t)j;
    for (int64_t j = C - 1; stat && j > 0; j--) {
        int64_t k = (int64_t)((rng_uniform() + 1.0f) * 0.5f * (float)(j + 1)) % (j + 1);
        int32_t t = perm[j];
        perm[j] = perm[k];
        perm[k] = t;
    }
    float *W = add_in(d, OC_F32, (size_t)(R * C));
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < C; j++) W[r * C + j] = W0[r * C + perm[j]];
    float *U = add_in(d, OC_F32, rtn ? 0 : (size_t)(C * C));
    for (int64_t i = 0; !rtn && i < C; i++)
        for (int64_t j = i; j < C; j++)
            U[i * C + j] = i == j ? 1.0f + 0.5f * rng_uniform()
                                  : 0.5f / sqrtf((float)C) * rng_uniform();
    int32_t *gidx = add_in(d, OC_I32, (size_t)C);
    for (int64_t j = 0; j < C; j++) gidx[j] = (int32_t)((stat ? perm[j] : j) / G);
    float *S = add_in(d, OC_F32, (size_t)(ng * R)), *Z = add_in(d, OC_F32, (size_t)(ng * R));
    const gptq_grid_params gp = grid_of(c->p[4], c->p[5], mse);
    for (int64_t g = 0; (stat || rtn) && g < ng; g++) /* the given grids, from the unpermuted W */
        for (int64_t r = 0; r < R; r++)
            naive_grid(W0 + r * C + g * G, G < C - g * G ? G : C - g * G, &gp, &S[g * R + r],
                       &Z[g * R + r]);
    memset(add_in(d, OC_U8, (size_t)(R * C)), 0xEE, (size_t)(R * C));
    memset(add_in(d, OC_F32, (size_t)(R * B)), 0xEE, (size_t)(R * B) * 4);
    add_in(d, OC_F64, (size_t)R);
    if (c->p[9]) {
        add_out(d, "codes", BI_CODES);
        add_out(d, "Err", BI_ERR);
        add_out(d, "W", BI_W);
        if (!mse) { /* MSE grids may differ by an ulp of pow(): see the rows */
            add_out(d, "loss", BI_LOSS);
            add_out(d, "scale", BI_S);
            add_out(d, "zero", BI_Z);
        }
    } else { /* OC_SOLVE reads the first three; W and zero: block_props */
        add_out(d, "codes", BI_CODES);
        add_out(d, "scale", BI_S);
        add_out(d, "loss", BI_LOSS);
        add_out(d, "W", BI_W);
        add_out(d, "zero", BI_Z);
    }
    free(W0);
    free(perm);
}

/* first_only: one gptq_block; else the core's loop (src/quant/solve.c) */
static int block_call(const op_case *c, gptq_backend *be, gptq_buf **b, oc_data *d)
{
    (void)d;
    const int64_t R = c->p[0], C = c->p[1], G = c->p[2], B = c->p[3];
    const int given = c->p[7] || c->p[8];
    const gptq_grid_params gp = grid_of(c->p[4], c->p[5], c->p[6]);
    if (c->p[9]) {
        const gptq_block_args a = {
            .W = b[BI_W], .R = R, .C = C, .U = b[BI_U], .j0 = 0, .nb = B < C ? B : C,
            .group_size = G, .grid_given = given, .gidx = b[BI_GIDX], .scale = b[BI_S],
            .zero = b[BI_Z], .codes = b[BI_CODES], .Err = b[BI_ERR], .loss = b[BI_LOSS],
            .grid = gp,
        };
        return IFC(be)->gptq_block(CTX(be), &a);
    }
    const gptq_solve_bufs sb = {.W = b[BI_W], .U = b[BI_U], .scale = b[BI_S], .zero = b[BI_Z],
                                .codes = b[BI_CODES], .Err = b[BI_ERR], .loss = b[BI_LOSS],
                                .gidx = b[BI_GIDX]};
    return gptq_solve_blocks(be, &sb, R, C, G, B, given, &gp, NULL);
}

/* backend.h's block loop, then W[:, j0+nb:] -= Err U[j0:j0+nb, j0+nb:] in double */
static void block_naive(const op_case *c, oc_data *d)
{
    const int64_t R = c->p[0], C = c->p[1], G = c->p[2], B = c->p[3];
    const int given = c->p[7] || c->p[8];
    const gptq_grid_params gp = grid_of(c->p[4], c->p[5], c->p[6]);
    const float maxq = (float)((1 << gp.bits) - 1);
    float *W = xcalloc((size_t)(R * C), 4), *S = xcalloc(d->in[BI_S].n, 4);
    float *Z = xcalloc(d->in[BI_Z].n, 4), *E = xcalloc((size_t)(R * B), 4);
    uint8_t *codes = xcalloc((size_t)(R * C), 1);
    double *loss = xcalloc((size_t)R, 8);
    memcpy(W, d->in[BI_W].p, (size_t)(R * C) * 4);
    memcpy(S, d->in[BI_S].p, d->in[BI_S].n * 4);
    memcpy(Z, d->in[BI_Z].p, d->in[BI_Z].n * 4);
    memset(codes, 0xEE, (size_t)(R * C));
    memset(E, 0xEE, (size_t)(R * B) * 4);
    const float *U = d->in[BI_U].n ? F32(d->in[BI_U]) : NULL;
    const int32_t *gidx = I32(d->in[BI_GIDX]);
    for (int64_t j0 = 0; j0 < C; j0 += B) {
        const int64_t nb = B < C - j0 ? B : C - j0;
        for (int64_t r = 0; r < R; r++) {
            float *w = W + r * C;
            for (int64_t j = j0; j < j0 + nb; j++) {
                const int64_t g = gidx[j];
                if (!given && j % G == 0)
                    naive_grid(w + j, G < C - j ? G : C - j, &gp, &S[g * R + r], &Z[g * R + r]);
                const float s = S[g * R + r], z = Z[g * R + r];
                float q = rintf(w[j] / s) + z;
                q = q < 0.0f ? 0.0f : q > maxq ? maxq : q;
                const float what = s * (q - z), ujj = U ? U[j * C + j] : 1.0f;
                const float e = (w[j] - what) / ujj;
                codes[r * C + j] = (uint8_t)q;
                const double diff = (double)w[j] - (double)what;
                loss[r] += diff * diff / ((double)ujj * (double)ujj) / 2.0;
                E[r * nb + (j - j0)] = e;
                w[j] = what;
                for (int64_t k = j + 1; U && k < j0 + nb; k++) w[k] = w[k] - e * U[j * C + k];
            }
        }
        if (c->p[9]) break;
        for (int64_t r = 0; U && r < R; r++)
            for (int64_t k = j0 + nb; k < C; k++) {
                double t = 0.0;
                for (int64_t j = 0; j < nb; j++) t += (double)E[r * nb + j] * U[(j0 + j) * C + k];
                W[r * C + k] = (float)((double)W[r * C + k] - t);
            }
    }
    void *res[] = {[BI_W] = W, [BI_S] = S, [BI_Z] = Z, [BI_CODES] = codes, [BI_ERR] = E,
                   [BI_LOSS] = loss};
    for (int k = 0; k < d->nout; k++)
        memcpy(d->out[k].p, res[d->from[k]], d->out[k].n * tsize(d->out[k].type));
    free(W);
    free(S);
    free(Z);
    free(E);
    free(codes);
    free(loss);
}

static const oc_arr *out_from(const oc_data *d, int from)
{
    for (int k = 0; k < d->nout; k++)
        if (d->from[k] == from) return &d->out[k];
    return NULL;
}

/* Every finished column of W holds its w_hat, s * (q - z) in f32 (an exact
 * difference, one product), from the codes and grids the call returned:
 * the first block's columns, or all after the solve. */
static int block_props(const op_case *c, const oc_data *d, char *msg, size_t n)
{
    const int64_t R = c->p[0], C = c->p[1], done = c->p[9] && c->p[3] < C ? c->p[3] : C;
    const oc_arr *W = out_from(d, BI_W), *S = out_from(d, BI_S), *Z = out_from(d, BI_Z);
    const oc_arr *Q = out_from(d, BI_CODES);
    if (!W || !S || !Z) return 0; /* the MSE first-block rows: no grids compared (see there) */
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < done; j++) {
            const int64_t g = I32(d->in[BI_GIDX])[j];
            const float s = F32(*S)[g * R + r], z = F32(*Z)[g * R + r];
            const float what = s * ((float)((const uint8_t *)Q->p)[r * C + j] - z);
            if (memcmp(&what, &F32(*W)[r * C + j], 4) != 0) {
                snprintf(msg, n, "W[%lld][%lld] = %.9g, not its w_hat s (q - z) = %.9g",
                         (long long)r, (long long)j, F32(*W)[r * C + j], what);
                return 1;
            }
        }
    return 0;
}

static double block_flops(const op_case *c)
{
    const double R = (double)c->p[0], C = (double)c->p[1], B = (double)c->p[3];
    return c->p[9] ? R * B * B : R * C * (B + C);
}

/* ------------------------------------------------------------------ */
/* forward ops                                                          */
/* ------------------------------------------------------------------ */

/* embedding: p = {T, D, V, bad}: Y += E[ids] (accumulate) with the ids read
 * from element 1 of their buffer; bad: id V at row 20 (an error, named). */
static void emb_gen(const op_case *c, oc_data *d)
{
    const int64_t T = c->p[0], D = c->p[1], V = c->p[2];
    int32_t *ids = add_in(d, OC_I32, (size_t)T + 1);
    for (int64_t t = 0; t <= T; t++) ids[t] = (int32_t)((t * 7 + 3) % V);
    if (c->p[3]) ids[21] = (int32_t)V;
    fill(add_in(d, OC_F32, (size_t)(V * D)), (size_t)(V * D), 1.0f);
    fill(add_in(d, OC_F32, (size_t)(T * D)), (size_t)(T * D), 1.0f);
    if (c->p[3]) add_status(d);
    else add_out(d, "Y", 2);
}

static int emb_call(const op_case *c, gptq_backend *be, gptq_buf **b, oc_data *d)
{
    int st = IFC(be)->embedding(CTX(be), b[0], 1, c->p[0], b[1], 0, c->p[2], c->p[1], b[2], 0, 1);
    return c->p[3] ? record(c, be, d, 0, st, 0) : st;
}

static void emb_naive(const op_case *c, oc_data *d)
{
    const int64_t T = c->p[0], D = c->p[1];
    if (c->p[3]) {
        want_status(d, 0, GPTQ_ERR_INVALID, 0);
        return;
    }
    const int32_t *ids = I32(d->in[0]) + 1;
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < D; i++)
            F32(d->out[0])[t * D + i] = F32(d->in[2])[t * D + i] + F32(d->in[1])[ids[t] * D + i];
}

/* rmsnorm / layernorm: p = {T, D, with w and b (layernorm)}; X 8 x uniform */
static void norm_gen(const op_case *c, oc_data *d)
{
    const int64_t T = c->p[0], D = c->p[1];
    fill(add_in(d, OC_F32, (size_t)(T * D)), (size_t)(T * D), 8.0f);
    fill(add_in(d, OC_F32, (size_t)D), (size_t)D, 1.0f);
    fill(add_in(d, OC_F32, (size_t)D), (size_t)D, 1.0f);
    fill(add_in(d, OC_F32, (size_t)(T * D)), (size_t)(T * D), 1.0f);
    add_out(d, "Y", 3);
}

static int rms_call(const op_case *c, gptq_backend *be, gptq_buf **b, oc_data *d)
{
    (void)d;
    return IFC(be)->rmsnorm(CTX(be), b[0], 0, b[1], 0, c->p[0], c->p[1], 1e-5f, b[3], 0);
}

static int ln_call(const op_case *c, gptq_backend *be, gptq_buf **b, oc_data *d)
{
    (void)d;
    const int wb = (int)c->p[2];
    return IFC(be)->layernorm(CTX(be), b[0], 0, wb ? b[1] : NULL, 0, wb ? b[2] : NULL, 0, c->p[0],
                              c->p[1], 1e-5f, b[3], 0);
}

static void norm_naive(const op_case *c, oc_data *d)
{
    const int64_t T = c->p[0], D = c->p[1];
    const int ln = c->op == GPTQ_OP_LAYERNORM, wb = ln ? (int)c->p[2] : 1;
    const float *X = F32(d->in[0]), *w = F32(d->in[1]), *bb = F32(d->in[2]);
    for (int64_t t = 0; t < T; t++) {
        const float *x = X + t * D;
        double mu = 0.0, v = 0.0;
        for (int64_t i = 0; ln && i < D; i++) mu += x[i];
        mu /= (double)D;
        for (int64_t i = 0; i < D; i++) v += ((double)x[i] - mu) * ((double)x[i] - mu);
        const float r = (float)(1.0 / sqrt(v / (double)D + (double)1e-5f));
        for (int64_t i = 0; i < D; i++) {
            float y = ln ? ((x[i] - (float)mu) * r) : w[i] * (x[i] * r);
            if (ln && wb) y = y * w[i] + bb[i];
            F32(d->out[0])[t * D + i] = y;
        }
    }
}

/* silu_mul, add: p = {n}; G 8 x uniform (silu over a wide range) */
static void ew_gen(const op_case *c, oc_data *d)
{
    const size_t n = (size_t)c->p[0];
    fill(add_in(d, OC_F32, n), n, 8.0f);
    fill(add_in(d, OC_F32, n), n, 1.0f);
    fill(add_in(d, OC_F32, n), n, 1.0f);
    add_out(d, "Y", 2);
}

static int silu_call(const op_case *c, gptq_backend *be, gptq_buf **b, oc_data *d)
{
    (void)d;
    return IFC(be)->silu_mul(CTX(be), b[0], 0, b[1], 0, c->p[0], b[2], 0);
}

static int add_call(const op_case *c, gptq_backend *be, gptq_buf **b, oc_data *d)
{
    (void)d;
    return IFC(be)->add(CTX(be), b[0], 0, b[1], 0, c->p[0], b[2], 0);
}

static void ew_naive(const op_case *c, oc_data *d)
{
    const float *g = F32(d->in[0]), *u = F32(d->in[1]);
    for (int64_t i = 0; i < c->p[0]; i++)
        F32(d->out[0])[i] = c->op == GPTQ_OP_ADD
                                ? g[i] + u[i]
                                : (float)((double)g[i] / (1.0 + exp(-(double)g[i])) * u[i]);
}

/* gelu_tanh_mul (ABI 6): ew_gen's G (8 x uniform: both tails of the gelu,
 * where 1 + tanh cancels) and U; the contract in double */
static int gelu_call(const op_case *c, gptq_backend *be, gptq_buf **b, oc_data *d)
{
    (void)d;
    return IFC(be)->gelu_tanh_mul(CTX(be), b[0], 0, b[1], 0, c->p[0], b[2], 0);
}

static void gelu_naive(const op_case *c, oc_data *d)
{
    const float *g = F32(d->in[0]), *u = F32(d->in[1]);
    for (int64_t i = 0; i < c->p[0]; i++) {
        const double x = g[i], inner = sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x);
        F32(d->out[0])[i] = (float)(0.5 * x * (1.0 + tanh(inner)) * u[i]);
    }
}

/* scale, softcap (ABI 6): p = {n, off, cap x 100 (softcap; 0: a failing
 * call)}: in place from element off, X 8 x uniform */
static void cap_gen(const op_case *c, oc_data *d)
{
    const size_t n = (size_t)(c->p[0] + c->p[1]);
    fill(add_in(d, OC_F32, n), n, 8.0f);
    if (c->op == GPTQ_OP_SOFTCAP && c->p[2] == 0) add_status(d);
    else add_out(d, "X", 0);
}

/* the scale of the rows: Gemma 2 9B's normalizer bf16(sqrt(3584)) = 60 is
 * exact; this one is not a power of two either */
#define OC_SCALE 33.9411255f

static int cap_call(const op_case *c, gptq_backend *be, gptq_buf **b, oc_data *d)
{
    const size_t off = (size_t)c->p[1];
    if (c->op == GPTQ_OP_SCALE) return IFC(be)->scale(CTX(be), b[0], off, c->p[0], OC_SCALE);
    const int st = IFC(be)->softcap(CTX(be), b[0], off, c->p[0], (float)c->p[2] / 100.0f);
    return c->p[2] == 0 ? record(c, be, d, 0, st, 0) : st;
}

/* scale: the one f32 product; softcap: c * tanh(x / c) in double */
static void cap_naive(const op_case *c, oc_data *d)
{
    if (c->op == GPTQ_OP_SOFTCAP && c->p[2] == 0) {
        want_status(d, 0, GPTQ_ERR_INVALID, 0);
        return;
    }
    const double cap = (float)c->p[2] / 100.0f;
    for (int64_t i = 0; i < c->p[0] + c->p[1]; i++) {
        const float x = F32(d->in[0])[i];
        F32(d->out[0])[i] = i < c->p[1] ? x
                            : c->op == GPTQ_OP_SCALE ? x * OC_SCALE
                                                     : (float)(cap * tanh((double)x / cap));
    }
}

/* relu: p = {n, off}: in place from element off (the first off untouched) */
static void relu_gen(const op_case *c, oc_data *d)
{
    fill(add_in(d, OC_F32, (size_t)(c->p[0] + c->p[1])), (size_t)(c->p[0] + c->p[1]), 8.0f);
    add_out(d, "X", 0);
}

static int relu_call(const op_case *c, gptq_backend *be, gptq_buf **b, oc_data *d)
{
    (void)d;
    return IFC(be)->relu(CTX(be), b[0], (size_t)c->p[1], c->p[0]);
}

static void relu_naive(const op_case *c, oc_data *d)
{
    for (int64_t i = 0; i < c->p[0] + c->p[1]; i++) {
        const float x = F32(d->in[0])[i];
        F32(d->out[0])[i] = i >= c->p[1] && x < 0.0f ? 0.0f : x;
    }
}

/* bias_add: p = {T, F} */
static void bias_gen(const op_case *c, oc_data *d)
{
    fill(add_in(d, OC_F32, (size_t)(c->p[0] * c->p[1])), (size_t)(c->p[0] * c->p[1]), 8.0f);
    fill(add_in(d, OC_F32, (size_t)c->p[1]), (size_t)c->p[1], 1.0f);
    add_out(d, "X", 0);
}

static int bias_call(const op_case *c, gptq_backend *be, gptq_buf **b, oc_data *d)
{
    (void)d;
    return IFC(be)->bias_add(CTX(be), b[0], 0, b[1], 0, c->p[0], c->p[1]);
}

static void bias_naive(const op_case *c, oc_data *d)
{
    for (int64_t t = 0; t < c->p[0]; t++)
        for (int64_t i = 0; i < c->p[1]; i++)
            F32(d->out[0])[t * c->p[1] + i] = F32(d->in[0])[t * c->p[1] + i] + F32(d->in[1])[i];
}

/* rope: p = {T, nh, d, P, S, rot}: positions t % S + 3, the table (P, rot)
 * of base 10000; rot 0 means d (whole heads), else dims rot .. d-1 must
 * come back untouched */
static int64_t rope_rot(const op_case *c) { return c->p[5] ? c->p[5] : c->p[2]; }

static void rope_gen(const op_case *c, oc_data *d)
{
    const int64_t T = c->p[0], nh = c->p[1], hd = c->p[2], P = c->p[3], rot = rope_rot(c);
    fill(add_in(d, OC_F32, (size_t)(T * nh * hd)), (size_t)(T * nh * hd), 1.0f);
    int32_t *pos = add_in(d, OC_I32, (size_t)T);
    for (int64_t t = 0; t < T; t++) pos[t] = (int32_t)(t % c->p[4] + 3);
    float *cs = add_in(d, OC_F32, (size_t)(P * rot));
    for (int64_t p = 0; p < P; p++)
        for (int64_t i = 0; i < rot / 2; i++) {
            const double ang = (double)p * pow(10000.0, -2.0 * (double)i / (double)rot);
            cs[p * rot + i] = (float)cos(ang);
            cs[p * rot + rot / 2 + i] = (float)sin(ang);
        }
    add_out(d, "X", 0);
}

static int rope_call(const op_case *c, gptq_backend *be, gptq_buf **b, oc_data *d)
{
    (void)d;
    return IFC(be)->rope(CTX(be), b[0], 0, c->p[0], c->p[1], c->p[2], rope_rot(c), b[1], 0, b[2],
                         c->p[3]);
}

static void rope_naive(const op_case *c, oc_data *d)
{
    const int64_t T = c->p[0], nh = c->p[1], hd = c->p[2], rot = rope_rot(c), h2 = rot / 2;
    const float *X = F32(d->in[0]), *cs = F32(d->in[2]);
    float *Y = F32(d->out[0]);
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < nh; h++) {
            const float *x = X + (t * nh + h) * hd, *co = cs + I32(d->in[1])[t] * rot;
            for (int64_t i = 0; i < h2; i++) {
                float a = x[i] * co[i], bs = x[i + h2] * co[h2 + i];
                Y[(t * nh + h) * hd + i] = a - bs;
                a = x[i + h2] * co[i];
                bs = x[i] * co[h2 + i];
                Y[(t * nh + h) * hd + i + h2] = a + bs;
            }
            for (int64_t i = rot; i < hd; i++) Y[(t * nh + h) * hd + i] = x[i];
        }
}

/* attention: p = {nseq, S, H, Hk, d, window, softcap x 100, bad}; Q 3 x
 * uniform (peaked softmax rows too: scores of standard deviation about 1,
 * so a cap of 0.5 bends most of them), O poisoned with NaN (every element
 * written); scale 1/sqrt(d). bad: window -1 (an error, named). */
static void attn_gen(const op_case *c, oc_data *d)
{
    const int64_t T = c->p[0] * c->p[1], nq = T * c->p[2] * c->p[4], nk = T * c->p[3] * c->p[4];
    fill(add_in(d, OC_F32, (size_t)nq), (size_t)nq, 3.0f);
    fill(add_in(d, OC_F32, (size_t)nk), (size_t)nk, 1.0f);
    fill(add_in(d, OC_F32, (size_t)nk), (size_t)nk, 1.0f);
    float *O = add_in(d, OC_F32, (size_t)nq);
    for (int64_t i = 0; i < nq; i++) O[i] = NAN;
    if (c->p[7]) add_status(d);
    else add_out(d, "O", 3);
}

static int attn_call(const op_case *c, gptq_backend *be, gptq_buf **b, oc_data *d)
{
    const int64_t window = c->p[7] ? -1 : c->p[5];
    int st = IFC(be)->attention(CTX(be), b[0], 0, b[1], 0, b[2], 0, c->p[0], c->p[1], c->p[2],
                                c->p[3], c->p[4], 1.0f / sqrtf((float)c->p[4]), window,
                                (float)c->p[6] / 100.0f, b[3], 0);
    return c->p[7] ? record(c, be, d, 0, st, 0) : st;
}

/* The contract in double: scaled score, capped (tanh), then only keys
 * i - window < j <= i (window 0: j <= i) enter the softmax. */
static void attn_naive(const op_case *c, oc_data *d)
{
    const int64_t S = c->p[1], H = c->p[2], Hk = c->p[3], hd = c->p[4], W = c->p[5];
    if (c->p[7]) {
        want_status(d, 0, GPTQ_ERR_INVALID, 0);
        return;
    }
    const float *Q = F32(d->in[0]), *K = F32(d->in[1]), *V = F32(d->in[2]);
    const double scale = 1.0f / sqrtf((float)hd), cap = (double)((float)c->p[6] / 100.0f);
    double *p = xcalloc((size_t)S, 8);
    for (int64_t b = 0; b < c->p[0]; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < S; i++) {
                const float *q = Q + ((b * S + i) * H + h) * hd;
                const int64_t kh = h / (H / Hk), lo = W > 0 && i - W + 1 > 0 ? i - W + 1 : 0;
                double mx = -INFINITY, sum = 0.0;
                for (int64_t j = lo; j <= i; j++) {
                    const float *k = K + ((b * S + j) * Hk + kh) * hd;
                    double s = 0.0;
                    for (int64_t e = 0; e < hd; e++) s += (double)q[e] * k[e];
                    p[j] = s * scale;
                    if (cap > 0.0) p[j] = cap * tanh(p[j] / cap);
                    mx = p[j] > mx ? p[j] : mx;
                }
                for (int64_t j = lo; j <= i; j++) sum += p[j] = exp(p[j] - mx);
                for (int64_t e = 0; e < hd; e++) {
                    double o = 0.0;
                    for (int64_t j = lo; j <= i; j++)
                        o += p[j] * V[((b * S + j) * Hk + kh) * hd + e];
                    F32(d->out[0])[((b * S + i) * H + h) * hd + e] = (float)(o / sum);
                }
            }
    free(p);
}

static double attn_flops(const op_case *c)
{ /* QK^T and PV over the causal half (the full triangle's, also for a window) */
    return 2.0 * (double)c->p[0] * c->p[2] * c->p[1] * (c->p[1] + 1) * c->p[4];
}

/* attention_kv: p = {T, p0, H, Hk, d, window, softcap x 100, bad}; T
 * queries at positions p0 .. p0+T-1 (3 x uniform), a cache of p0 + T keys
 * and values, O poisoned with NaN; scale 1/sqrt(d). bad: p0 -1 (an error,
 * named). */
static void akv_gen(const op_case *c, oc_data *d)
{
    const int64_t T = c->p[0], Sk = c->p[1] + T;
    const int64_t nq = T * c->p[2] * c->p[4], nk = Sk * c->p[3] * c->p[4];
    fill(add_in(d, OC_F32, (size_t)nq), (size_t)nq, 3.0f);
    fill(add_in(d, OC_F32, (size_t)nk), (size_t)nk, 1.0f);
    fill(add_in(d, OC_F32, (size_t)nk), (size_t)nk, 1.0f);
    float *O = add_in(d, OC_F32, (size_t)nq);
    for (int64_t i = 0; i < nq; i++) O[i] = NAN;
    if (c->p[7]) add_status(d);
    else add_out(d, "O", 3);
}

static int akv_call(const op_case *c, gptq_backend *be, gptq_buf **b, oc_data *d)
{
    const int64_t p0 = c->p[7] ? -1 : c->p[1];
    int st = IFC(be)->attention_kv(CTX(be), b[0], 0, b[1], 0, b[2], 0, c->p[0], p0, c->p[2],
                                   c->p[3], c->p[4], 1.0f / sqrtf((float)c->p[4]), c->p[5],
                                   (float)c->p[6] / 100.0f, b[3], 0);
    return c->p[7] ? record(c, be, d, 0, st, 0) : st;
}

/* The contract in double: query i at position a = p0 + i sees the cache's
 * keys a - window < j <= a (window 0: j <= a). */
static void akv_naive(const op_case *c, oc_data *d)
{
    const int64_t T = c->p[0], p0 = c->p[1], H = c->p[2], Hk = c->p[3], hd = c->p[4];
    const int64_t W = c->p[5];
    if (c->p[7]) {
        want_status(d, 0, GPTQ_ERR_INVALID, 0);
        return;
    }
    const float *Q = F32(d->in[0]), *K = F32(d->in[1]), *V = F32(d->in[2]);
    const double scale = 1.0f / sqrtf((float)hd), cap = (double)((float)c->p[6] / 100.0f);
    double *p = xcalloc((size_t)(p0 + T), 8);
    for (int64_t h = 0; h < H; h++)
        for (int64_t i = 0; i < T; i++) {
            const int64_t a = p0 + i, kh = h / (H / Hk);
            const int64_t lo = W > 0 && a - W + 1 > 0 ? a - W + 1 : 0;
            const float *q = Q + (i * H + h) * hd;
            double mx = -INFINITY, sum = 0.0;
            for (int64_t j = lo; j <= a; j++) {
                const float *k = K + (j * Hk + kh) * hd;
                double sc = 0.0;
                for (int64_t e = 0; e < hd; e++) sc += (double)q[e] * k[e];
                p[j] = sc * scale;
                if (cap > 0.0) p[j] = cap * tanh(p[j] / cap);
                mx = p[j] > mx ? p[j] : mx;
            }
            for (int64_t j = lo; j <= a; j++) sum += p[j] = exp(p[j] - mx);
            for (int64_t e = 0; e < hd; e++) {
                double o = 0.0;
                for (int64_t j = lo; j <= a; j++) o += p[j] * V[(j * Hk + kh) * hd + e];
                F32(d->out[0])[(i * H + h) * hd + e] = (float)(o / sum);
            }
        }
    free(p);
}

static double akv_flops(const op_case *c)
{ /* QK^T and PV of T queries over about p0 + T keys each */
    return 4.0 * (double)c->p[0] * c->p[2] * (double)(c->p[1] + c->p[0]) * c->p[4];
}

/* cross_entropy: p = {T, V}; logits 10 x uniform, every fifth target
 * negative (ignored: nll exactly 0) */
static void ce_gen(const op_case *c, oc_data *d)
{
    const int64_t T = c->p[0], V = c->p[1];
    fill(add_in(d, OC_F32, (size_t)(T * V)), (size_t)(T * V), 10.0f);
    int32_t *tg = add_in(d, OC_I32, (size_t)T);
    for (int64_t t = 0; t < T; t++) tg[t] = t % 5 == 0 ? -100 : (int32_t)((t * 37) % V);
    add_in(d, OC_F64, (size_t)T);
    add_out(d, "nll", 2);
}

static int ce_call(const op_case *c, gptq_backend *be, gptq_buf **b, oc_data *d)
{
    (void)d;
    return IFC(be)->cross_entropy(CTX(be), b[0], 0, b[1], 0, c->p[0], c->p[1], b[2], 0);
}

static void ce_naive(const op_case *c, oc_data *d)
{
    const int64_t V = c->p[1];
    for (int64_t t = 0; t < c->p[0]; t++) {
        const float *l = F32(d->in[0]) + t * V;
        const int32_t tg = I32(d->in[1])[t];
        double mx = l[0], s = 0.0;
        for (int64_t j = 0; j < V; j++) mx = l[j] > mx ? l[j] : mx;
        for (int64_t j = 0; j < V; j++) s += exp((double)l[j] - mx);
        ((double *)d->out[0].p)[t] = tg < 0 ? 0.0 : mx + log(s) - (double)l[tg];
    }
}

/* ------------------------------------------------------------------ */
/* linear_fast: p = {M, N, K}: Y = X W^T into a Y of M*N + 8 elements (the
 * 8 past it stay 0). A backend without it: the core's gemm, which the CPU
 * backend then runs as the reference.                                  */
/* ------------------------------------------------------------------ */

static void lin_gen(const op_case *c, oc_data *d)
{
    const int64_t M = c->p[0], N = c->p[1], K = c->p[2];
    fill(add_in(d, OC_F32, (size_t)(M * K)), (size_t)(M * K), 1.0f);
    fill(add_in(d, OC_F32, (size_t)(N * K)), (size_t)(N * K), 1.0f);
    add_in(d, OC_F32, (size_t)(M * N) + 8);
    add_out(d, "Y", 2);
}

static int lin_call(const op_case *c, gptq_backend *be, gptq_buf **b, oc_data *d)
{
    (void)d;
    const int64_t M = c->p[0], N = c->p[1], K = c->p[2];
    if (gptq_be_supports(be, GPTQ_OP_LINEAR_FAST))
        return IFC(be)->linear_fast(CTX(be), M, N, K, b[0], 0, b[1], 0, b[2], 0);
    return IFC(be)->gemm(CTX(be), 0, 1, M, N, K, 1.0f, b[0], 0, K, b[1], 0, K, 0.0f, b[2], 0, N);
}

static void lin_naive(const op_case *c, oc_data *d)
{
    const int64_t M = c->p[0], N = c->p[1], K = c->p[2];
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0.0;
            for (int64_t k = 0; k < K; k++)
                s += (double)F32(d->in[0])[i * K + k] * F32(d->in[1])[j * K + k];
            F32(d->out[0])[i * N + j] = (float)s;
        }
}

static int lin_props(const op_case *c, const oc_data *d, char *msg, size_t n)
{
    const size_t MN = (size_t)(c->p[0] * c->p[1]);
    for (size_t t = 0; t < 8; t++)
        if (F32(d->out[0])[MN + t] != 0.0f) {
            snprintf(msg, n, "linear_fast wrote past Y (element %zu)", MN + t);
            return 1;
        }
    return 0;
}

static double lin_flops(const op_case *c) { return 2.0 * (double)c->p[0] * c->p[1] * c->p[2]; }

/* ------------------------------------------------------------------ */
/* the layer solve's helpers. hessian_finish: p = {C, with H}: scale
 * 2/1000, lambda 0.01 (the core's 2/n and damping); diag the host output.
 * dot: p = {R, C, with D, B is A (one buffer, as the core's sums of
 * squares)}. dead_columns: p = {R, C, dead (0 none, 1 several, 2 all)}.  */
/* ------------------------------------------------------------------ */

static void fin_gen(const op_case *c, oc_data *d)
{
    const int64_t C = c->p[0];
    fill(add_in(d, OC_F32, (size_t)(C * C)), (size_t)(C * C), 500.0f);
    add_in(d, OC_F32, c->p[1] ? (size_t)(C * C) : 0);
    if (c->p[1]) add_out(d, "H", 1);
    const int k = d->nout++;
    d->name[k] = "diag";
    d->from[k] = -1;
    d->out[k].type = OC_F32;
    d->out[k].n = (size_t)C;
}

static int fin_call(const op_case *c, gptq_backend *be, gptq_buf **b, oc_data *d)
{
    return IFC(be)->hessian_finish(CTX(be), b[0], b[1], c->p[0], 2.0f / 1000.0f, 0.01f,
                                   F32(d->out[d->nout - 1]));
}

static void fin_naive(const op_case *c, oc_data *d)
{
    const int64_t C = c->p[0];
    const float *S = F32(d->in[0]), scale = 2.0f / 1000.0f;
    for (int64_t i = 0; i < C; i++) {
        F32(d->out[d->nout - 1])[i] = scale * S[i * C + i];
        for (int64_t j = 0; c->p[1] && j < C; j++) {
            float h = scale * S[i * C + j];
            if (i == j) h = h + 0.01f; /* lambda on the diagonal only (x + 0 turns -0 into +0) */
            F32(d->out[0])[i * C + j] = h;
        }
    }
}

/* A and B uniform, D too: with D the terms (a - d)(b - d) average 1/3 */
static void dot_gen(const op_case *c, oc_data *d)
{
    const size_t n = (size_t)(c->p[0] * c->p[1]);
    fill(add_in(d, OC_F32, n), n, 1.0f);
    fill(add_in(d, OC_F32, c->p[3] ? 0 : n), c->p[3] ? 0 : n, 1.0f);
    fill(add_in(d, OC_F32, c->p[2] ? n : 0), c->p[2] ? n : 0, 1.0f);
    const int k = d->nout++;
    d->name[k] = "sum";
    d->from[k] = -1;
    d->out[k].type = OC_F64;
    d->out[k].n = 1;
}

static int dot_call(const op_case *c, gptq_backend *be, gptq_buf **b, oc_data *d)
{
    return IFC(be)->dot(CTX(be), b[0], c->p[3] ? b[0] : b[1], b[2], c->p[0], c->p[1],
                        (double *)d->out[0].p);
}

/* backend.h's CPU order: each row in column order, then the rows in order */
static void dot_naive(const op_case *c, oc_data *d)
{
    const int64_t R = c->p[0], C = c->p[1];
    const float *A = F32(d->in[0]), *B = c->p[3] ? A : F32(d->in[1]);
    const float *D = c->p[2] ? F32(d->in[2]) : NULL;
    double s = 0.0;
    for (int64_t r = 0; r < R; r++) {
        double row = 0.0;
        for (int64_t i = r * C; i < (r + 1) * C; i++)
            row += D ? ((double)A[i] - D[i]) * ((double)B[i] - D[i]) : (double)A[i] * B[i];
        s += row;
    }
    *(double *)d->out[0].p = s;
}

/* H symmetric uniform with its diagonal in [0.5, 1.5) except the dead
 * columns' 0 (one of them -0: it is == 0 too); W uniform. */
static void dead_gen(const op_case *c, oc_data *d)
{
    const int64_t R = c->p[0], C = c->p[1];
    float *H = add_in(d, OC_F32, (size_t)(C * C));
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j <= i; j++) H[i * C + j] = H[j * C + i] = rng_uniform();
    for (int64_t i = 0; i < C; i++) {
        const int dead = c->p[2] == 2 || (c->p[2] == 1 && (i == 0 || i == C - 1 || i % 37 == 5));
        H[i * C + i] = dead ? (i == 5 ? -0.0f : 0.0f) : 1.0f + 0.5f * rng_uniform();
    }
    fill(add_in(d, OC_F32, (size_t)(R * C)), (size_t)(R * C), 1.0f);
    add_out(d, "H", 0);
    add_out(d, "W", 1);
}

static int dead_call(const op_case *c, gptq_backend *be, gptq_buf **b, oc_data *d)
{
    (void)d;
    return IFC(be)->dead_columns(CTX(be), b[0], b[1], c->p[0], c->p[1]);
}

static void dead_naive(const op_case *c, oc_data *d)
{
    const int64_t R = c->p[0], C = c->p[1];
    float *H = F32(d->out[0]), *W = F32(d->out[1]);
    memcpy(H, d->in[0].p, (size_t)(C * C) * 4);
    memcpy(W, d->in[1].p, (size_t)(R * C) * 4);
    for (int64_t i = 0; i < C; i++) {
        if (H[i * C + i] != 0.0f) continue;
        H[i * C + i] = 1.0f;
        for (int64_t r = 0; r < R; r++) W[r * C + i] = 0.0f;
    }
}

/* ------------------------------------------------------------------ */
/* packed tensors                                                       */
/* ------------------------------------------------------------------ */

/* value i of the b-bit stream whose word w is words[w * stride] */
static uint32_t stream_value(const int32_t *words, int64_t stride, int64_t i, int b)
{
    uint32_t v = 0;
    for (int t = 0; t < b; t++) {
        const int64_t bit = i * b + t;
        v |= (((uint32_t)words[(bit / 32) * stride] >> (bit % 32)) & 1u) << t;
    }
    return v;
}

/* pack_codes: p = {bits, R, C, bad}: codes (R, C) random; bad: code 2^bits
 * at element 77 (an error naming it) */
static void pack_gen(const op_case *c, oc_data *d)
{
    const int b = (int)c->p[0];
    const int64_t R = c->p[1], C = c->p[2];
    uint8_t *codes = add_in(d, OC_U8, (size_t)(R * C));
    for (int64_t i = 0; i < R * C; i++) codes[i] = (uint8_t)(rng_word() >> (32 - b));
    if (c->p[3]) codes[77] = (uint8_t)(1u << b);
    add_in(d, OC_I32, (size_t)(C * b / 32 * R));
    if (c->p[3]) add_status(d);
    else add_out(d, "qweight", 1);
}

static int pack_call(const op_case *c, gptq_backend *be, gptq_buf **b, oc_data *d)
{
    int st = IFC(be)->pack_codes(CTX(be), b[0], c->p[1], c->p[2], (int)c->p[0], b[1]);
    if (!c->p[3]) return st;
    if (!st) st = IFC(be)->sync(CTX(be)); /* a GPU finds it in the kernel */
    return record(c, be, d, 0, st, 0);
}

static void pack_naive(const op_case *c, oc_data *d)
{
    const int b = (int)c->p[0];
    const int64_t R = c->p[1], C = c->p[2];
    if (c->p[3]) {
        want_status(d, 0, GPTQ_ERR_INVALID, 0);
        return;
    }
    int32_t *qw = I32(d->out[0]);
    for (int64_t r = 0; r < R; r++) /* code [r][k]: bits b*k.. of column r's stream */
        for (int64_t k = 0; k < C; k++)
            for (int t = 0; t < b; t++) {
                const int64_t bit = k * b + t;
                if ((((const uint8_t *)d->in[0].p)[r * C + k] >> t) & 1)
                    qw[(bit / 32) * R + r] = (int32_t)((uint32_t)qw[(bit / 32) * R + r] | (1u << (bit % 32)));
            }
}

/* dequantize / matmul_q: p = {bits, format (1 v1: zero + 1, 2 v2), N, K, G,
 * bad g_idx (dequantize) or bias (matmul_q), M, in order}. Random words are
 * valid code streams; scales random positive normal fp16; g_idx (7k % K) / G
 * (an act-order-like order), or k / G with `in order` (a checkpoint without
 * act-order); X uniform with the edge values of fp16 (overflow
 * to inf, the largest finite, ties, subnormals) at every 101st element. */
enum { QI_QW, QI_QZ, QI_SC, QI_GI, QI_OUT, QI_X, QI_BIAS };

static void q_gen(const op_case *c, oc_data *d)
{
    const int b = (int)c->p[0];
    const int64_t N = c->p[2], K = c->p[3], G = c->p[4], ng = (K + G - 1) / G;
    int32_t *qw = add_in(d, OC_I32, (size_t)(K * b / 32 * N));
    for (size_t i = 0; i < d->in[0].n; i++) qw[i] = (int32_t)rng_word();
    int32_t *qz = add_in(d, OC_I32, (size_t)(ng * (N * b / 32)));
    for (size_t i = 0; i < d->in[1].n; i++) qz[i] = (int32_t)rng_word();
    uint16_t *sc = add_in(d, OC_U16, (size_t)(ng * N));
    for (size_t i = 0; i < d->in[2].n; i++) sc[i] = (uint16_t)(0x1000 + (rng_word() >> 20)); /* 2^-11 .. 2^-7 */
    int32_t *gi = add_in(d, OC_I32, (size_t)K);
    for (int64_t k = 0; k < K; k++) gi[k] = (int32_t)((c->p[7] ? k : (k * 7) % K) / G);
    if (c->op == GPTQ_OP_DEQUANTIZE) {
        if (c->p[5]) gi[5] = (int32_t)ng + 3;
        add_in(d, OC_F32, (size_t)(N * K));
        if (c->p[5]) add_status(d);
        else add_out(d, "W", QI_OUT);
        return;
    }
    const int64_t M = c->p[6];
    add_in(d, OC_F32, (size_t)(M * N));
    float *X = add_in(d, OC_F32, (size_t)(M * K));
    fill(X, (size_t)(M * K), 1.0f);
    static const float edge[] = {70000.0f, -65520.0f, 65519.0f, 1.0f + 0x1p-11f, 3e-6f, -1e-7f,
                                 0x1p-25f, 0x1.8p-25f, 0x1p-24f};
    /* matmul_q_fast is compared in norm: no X that overflows fp16 (inf, NaN outputs) */
    const size_t e0 = c->op == GPTQ_OP_MATMUL_Q_FAST ? 2 : 0;
    for (size_t i = e0; i < sizeof edge / sizeof *edge && i * 101 < (size_t)(M * K); i++)
        X[i * 101] = edge[i];
    fill(add_in(d, OC_F32, c->p[5] ? (size_t)N : 0), c->p[5] ? (size_t)N : 0, 1.0f);
    add_out(d, "Y", QI_OUT);
}

static gptq_qtensor q_of(const op_case *c, gptq_buf **b)
{
    return (gptq_qtensor){.qweight = b[QI_QW], .qzeros = b[QI_QZ], .scales = b[QI_SC],
                          .g_idx = b[QI_GI], .bits = (int)c->p[0], .zero_add = c->p[1] == 1,
                          .K = c->p[3], .N = c->p[2], .ngroups = (c->p[3] + c->p[4] - 1) / c->p[4]};
}

static int deq_call(const op_case *c, gptq_backend *be, gptq_buf **b, oc_data *d)
{
    const gptq_qtensor q = q_of(c, b);
    int st = IFC(be)->dequantize(CTX(be), &q, b[QI_OUT], 0);
    if (!c->p[5]) return st;
    if (!st) st = IFC(be)->sync(CTX(be)); /* a GPU finds it in the kernel */
    return record(c, be, d, 0, st, 0);
}

static int mm_call(const op_case *c, gptq_backend *be, gptq_buf **b, oc_data *d)
{
    (void)d;
    const gptq_qtensor q = q_of(c, b);
    return IFC(be)->matmul_q(CTX(be), &q, b[QI_X], 0, c->p[6], b[QI_BIAS], b[QI_OUT], 0);
}

static int fastmm_call(const op_case *c, gptq_backend *be, gptq_buf **b, oc_data *d)
{
    (void)d;
    const gptq_qtensor q = q_of(c, b);
    return IFC(be)->matmul_q_fast(CTX(be), &q, b[QI_X], 0, c->p[6], b[QI_BIAS], b[QI_OUT], 0,
                                  NULL);
}

/* W[n][k] = f32(scale) * (float)(q - z): one exact product */
static float q_weight(const op_case *c, const oc_data *d, int64_t n, int64_t k)
{
    const int b = (int)c->p[0];
    const int64_t N = c->p[2], g = I32(d->in[QI_GI])[k];
    const uint32_t q = stream_value(I32(d->in[QI_QW]) + n, N, k, b);
    const int64_t z = (int64_t)stream_value(I32(d->in[QI_QZ]) + g * (N * b / 32), 1, n, b) +
                      (c->p[1] == 1);
    return h2f(((const uint16_t *)d->in[QI_SC].p)[g * N + n]) * (float)((int64_t)q - z);
}

static void deq_naive(const op_case *c, oc_data *d)
{
    const int64_t N = c->p[2], K = c->p[3];
    if (c->p[5]) {
        want_status(d, 0, GPTQ_ERR_INVALID, 0);
        return;
    }
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) F32(d->out[0])[n * K + k] = q_weight(c, d, n, k);
}

/* Y = f16(X) W^T summed over k in order in f32, + f32(f16(bias)) */
static void mm_naive(const op_case *c, oc_data *d)
{
    const int64_t N = c->p[2], K = c->p[3], M = c->p[6];
    float *W = xcalloc((size_t)K, 4);
    for (int64_t n = 0; n < N; n++) {
        for (int64_t k = 0; k < K; k++) W[k] = q_weight(c, d, n, k);
        for (int64_t m = 0; m < M; m++) {
            float acc = 0.0f;
            for (int64_t k = 0; k < K; k++) {
                const float t = round_h(F32(d->in[QI_X])[m * K + k]) * W[k];
                acc = acc + t;
            }
            F32(d->out[0])[m * N + n] = c->p[5] ? acc + round_h(F32(d->in[QI_BIAS])[n]) : acc;
        }
    }
    free(W);
}

static double mm_flops(const op_case *c) { return 2.0 * (double)c->p[6] * c->p[2] * c->p[3]; }

/* gather: p = {esize, mode (0 rows and cols, 1 cols only, 2 rows only, 3
 * rows and a run of cols), Rs, Cs, R, C, bad}: src (Rs, Cs) of 4-byte
 * elements (u8: rows of 4 Cs bytes), rows[i] = (17i + 5) % Rs, cols[j] =
 * (31j + 3) % Cs, or in mode 3 cols[j] = Cs - C + j (the last C columns: a
 * split of a joined output, which a backend may copy row by row); bad:
 * cols[4] = Cs. */
static void gather_dims(const op_case *c, int64_t *r, int64_t *cc, int64_t *cs)
{
    const int es = (int)c->p[0], mode = (int)c->p[1];
    *r = mode == 1 ? c->p[2] : c->p[4];
    *cs = es == 4 ? c->p[3] : 4 * c->p[3];
    *cc = mode == 2 ? *cs : c->p[5];
}

static void gather_gen(const op_case *c, oc_data *d)
{
    const int64_t Rs = c->p[2], Cs = c->p[3];
    int64_t r, cc, cs;
    gather_dims(c, &r, &cc, &cs);
    fill(add_in(d, OC_F32, (size_t)(Rs * Cs)), (size_t)(Rs * Cs), 1.0f);
    int32_t *ri = add_in(d, OC_I32, c->p[1] == 1 ? 0 : (size_t)r);
    for (int64_t i = 0; c->p[1] != 1 && i < r; i++) ri[i] = (int32_t)((i * 17 + 5) % Rs);
    int32_t *ci = add_in(d, OC_I32, c->p[1] == 2 ? 0 : (size_t)cc);
    for (int64_t j = 0; c->p[1] != 2 && j < cc; j++)
        ci[j] = (int32_t)(c->p[1] == 3 ? cs - cc + j : (j * 31 + 3) % cs);
    if (c->p[6]) ci[4] = (int32_t)cs;
    add_in(d, c->p[0] == 4 ? OC_F32 : OC_U8, (size_t)(r * cc));
    if (c->p[6]) add_status(d);
    else add_out(d, "dst", 3);
}

static int gather_call(const op_case *c, gptq_backend *be, gptq_buf **b, oc_data *d)
{
    int64_t r, cc, cs;
    gather_dims(c, &r, &cc, &cs);
    int st = IFC(be)->gather(CTX(be), b[3], b[0], r, cc, c->p[2], cs, b[1], b[2], (int)c->p[0]);
    if (!c->p[6]) return st;
    if (!st) st = IFC(be)->sync(CTX(be)); /* a GPU finds it in the kernel */
    return record(c, be, d, 0, st, 0);
}

static void gather_naive(const op_case *c, oc_data *d)
{
    const int es = (int)c->p[0];
    int64_t r, cc, cs;
    gather_dims(c, &r, &cc, &cs);
    if (c->p[6]) {
        want_status(d, 0, GPTQ_ERR_INVALID, 0);
        return;
    }
    const unsigned char *src = d->in[0].p;
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < cc; j++) {
            const int64_t si = d->in[1].n ? I32(d->in[1])[i] : i;
            const int64_t sj = d->in[2].n ? I32(d->in[2])[j] : j;
            memcpy((unsigned char *)d->out[0].p + (i * cc + j) * es, src + (si * cs + sj) * es,
                   (size_t)es);
        }
}

/* to_f32: p = {bf16}: every 16-bit pattern, into dst from element 1 */
static void tof_gen(const op_case *c, oc_data *d)
{
    (void)c;
    uint16_t *h = add_in(d, OC_U16, 65536);
    for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    add_in(d, OC_F32, 65537);
    add_out(d, "dst", 1);
}

static int tof_call(const op_case *c, gptq_backend *be, gptq_buf **b, oc_data *d)
{
    (void)d;
    return IFC(be)->to_f32(CTX(be), b[1], 1, b[0], 65536, c->p[0] ? GPTQ_BF16 : GPTQ_F16);
}

static void tof_naive(const op_case *c, oc_data *d)
{
    for (int i = 0; i < 65536; i++) {
        const uint16_t h = ((const uint16_t *)d->in[0].p)[i];
        F32(d->out[0])[i + 1] = c->p[0] ? bf2f(h) : h2f(h);
    }
}

/* ------------------------------------------------------------------ */
/* the ops                                                              */
/* ------------------------------------------------------------------ */

typedef struct oc_def {
    void (*gen)(const op_case *, oc_data *);
    int (*call)(const op_case *, gptq_backend *, gptq_buf **, oc_data *);
    void (*naive)(const op_case *, oc_data *);
    int (*props)(const op_case *, const oc_data *, char *, size_t);
    double (*flops)(const op_case *);
    unsigned sizes; /* bit i: p[i] is a size (the benchmark multiplies it) */
} oc_def;

static const oc_def k_defs[GPTQ_OP_COUNT] = {
    [GPTQ_OP_GEMM] = {gemm_gen, gemm_call, gemm_naive, gemm_props, gemm_flops, 0x1C},
    [GPTQ_OP_HESSIAN_ACCUMULATE] = {hess_gen, hess_call, hess_naive, hess_props, hess_flops, 0x3},
    [GPTQ_OP_CHOLESKY_INVERSE_UPPER] = {chol_gen, chol_call, chol_naive, chol_props, chol_flops, 0x1},
    [GPTQ_OP_QUANT_GRID] = {grid_gen, grid_call, grid_naive, NULL, NULL, 0x18},
    [GPTQ_OP_GPTQ_BLOCK] = {block_gen, block_call, block_naive, block_props, block_flops, 0x1},
    [GPTQ_OP_EMBEDDING] = {emb_gen, emb_call, emb_naive, NULL, NULL, 0x1},
    [GPTQ_OP_RMSNORM] = {norm_gen, rms_call, norm_naive, NULL, NULL, 0x1},
    [GPTQ_OP_LAYERNORM] = {norm_gen, ln_call, norm_naive, NULL, NULL, 0x1},
    [GPTQ_OP_ROPE] = {rope_gen, rope_call, rope_naive, NULL, NULL, 0x1},
    [GPTQ_OP_ATTENTION] = {attn_gen, attn_call, attn_naive, NULL, attn_flops, 0x1},
    [GPTQ_OP_SILU_MUL] = {ew_gen, silu_call, ew_naive, NULL, NULL, 0x1},
    [GPTQ_OP_RELU] = {relu_gen, relu_call, relu_naive, NULL, NULL, 0x1},
    [GPTQ_OP_ADD] = {ew_gen, add_call, ew_naive, NULL, NULL, 0x1},
    [GPTQ_OP_BIAS_ADD] = {bias_gen, bias_call, bias_naive, NULL, NULL, 0x1},
    [GPTQ_OP_CROSS_ENTROPY] = {ce_gen, ce_call, ce_naive, NULL, NULL, 0x1},
    [GPTQ_OP_LINEAR_FAST] = {lin_gen, lin_call, lin_naive, lin_props, lin_flops, 0x7},
    [GPTQ_OP_HESSIAN_FINISH] = {fin_gen, fin_call, fin_naive, NULL, NULL, 0x1},
    [GPTQ_OP_DOT] = {dot_gen, dot_call, dot_naive, NULL, NULL, 0x3},
    [GPTQ_OP_PACK_CODES] = {pack_gen, pack_call, pack_naive, NULL, NULL, 0x2},
    [GPTQ_OP_DEQUANTIZE] = {q_gen, deq_call, deq_naive, NULL, NULL, 0xC},
    [GPTQ_OP_MATMUL_Q] = {q_gen, mm_call, mm_naive, NULL, mm_flops, 0x4C},
    [GPTQ_OP_MATMUL_Q_FAST] = {q_gen, fastmm_call, mm_naive, NULL, mm_flops, 0x4C},
    [GPTQ_OP_GATHER] = {gather_gen, gather_call, gather_naive, NULL, NULL, 0},
    [GPTQ_OP_TO_F32] = {tof_gen, tof_call, tof_naive, NULL, NULL, 0},
    [GPTQ_OP_DEAD_COLUMNS] = {dead_gen, dead_call, dead_naive, NULL, NULL, 0x3},
    [GPTQ_OP_GELU_TANH_MUL] = {ew_gen, gelu_call, gelu_naive, NULL, NULL, 0x1},
    [GPTQ_OP_SCALE] = {cap_gen, cap_call, cap_naive, NULL, NULL, 0x1},
    [GPTQ_OP_SOFTCAP] = {cap_gen, cap_call, cap_naive, NULL, NULL, 0x1},
    [GPTQ_OP_ATTENTION_KV] = {akv_gen, akv_call, akv_naive, NULL, akv_flops, 0x3},
};

void oc_gen(const op_case *c, uint64_t seed, oc_data *d)
{
    memset(d, 0, sizeof *d);
    g_rng = seed * 6364136223846793005ull + 1442695040888963407ull;
    k_defs[c->op].gen(c, d);
    alloc_outs(d);
}

void oc_naive(const op_case *c, oc_data *d) { k_defs[c->op].naive(c, d); }

int oc_props(const op_case *c, const oc_data *d, char *msg, size_t n)
{
    return k_defs[c->op].props ? k_defs[c->op].props(c, d, msg, n) : 0;
}

op_case oc_scaled(const op_case *c, int64_t mult)
{
    op_case o = *c;
    for (int i = 0; i < 10; i++)
        if (k_defs[c->op].sizes >> i & 1u) o.p[i] *= mult;
    return o;
}

double oc_flops(const op_case *c) { return k_defs[c->op].flops ? k_defs[c->op].flops(c) : 0.0; }

double oc_bytes(const oc_data *d)
{
    double b = 0.0;
    for (int i = 0; i < d->nin; i++) b += (double)(d->in[i].n * tsize(d->in[i].type));
    return b;
}

int oc_runs_on(const op_case *c, gptq_backend *be, int as_reference)
{
    return gptq_be_supports(be, c->op) || (as_reference && c->op == GPTQ_OP_LINEAR_FAST);
}

int oc_upload(gptq_backend *be, const oc_data *d, gptq_buf **dev)
{
    memset(dev, 0, sizeof(gptq_buf *) * OC_MAXA);
    for (int i = 0; i < d->nin; i++) {
        const size_t n = d->in[i].n * tsize(d->in[i].type);
        if (!n) continue;
        int st = gptq_be_alloc(be, n, &dev[i], "an op input");
        if (!st) st = gptq_be_upload(be, dev[i], 0, d->in[i].p, n);
        if (st) return st;
    }
    return GPTQ_OK;
}

int oc_call(const op_case *c, gptq_backend *be, gptq_buf **dev, oc_data *d)
{
    return gptq_be_check(be, k_defs[c->op].call(c, be, dev, d), gptq_op_name(c->op));
}

int oc_download(gptq_backend *be, gptq_buf **dev, oc_data *d)
{
    int st = gptq_be_sync(be);
    for (int k = 0; !st && k < d->nout; k++)
        if (d->from[k] >= 0)
            st = gptq_be_download(be, dev[d->from[k]], 0, d->out[k].p,
                                  d->out[k].n * tsize(d->out[k].type));
    return st;
}

void oc_free_dev(gptq_backend *be, gptq_buf **dev)
{
    for (int i = 0; i < OC_MAXA; i++) gptq_be_free(be, dev[i]);
    memset(dev, 0, sizeof(gptq_buf *) * OC_MAXA);
}

void oc_env(const op_case *c, int set)
{
    if (!c->env) return;
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(c->env, "="), c->env);
    if (set) setenv(name, c->env + strlen(name) + (c->env[strlen(name)] == '='), 1);
    else unsetenv(name);
}

int oc_run(const op_case *c, gptq_backend *be, oc_data *d)
{
    oc_env(c, 1);
    gptq_buf *dev[OC_MAXA];
    int st = oc_upload(be, d, dev);
    if (!st) st = oc_call(c, be, dev, d);
    if (!st) st = oc_download(be, dev, d);
    oc_free_dev(be, dev);
    oc_env(c, 0);
    return st;
}

/* ------------------------------------------------------------------ */
/* comparison                                                           */
/* ------------------------------------------------------------------ */

static double elem(const oc_arr *a, size_t i)
{
    switch (a->type) {
    case OC_F32: return ((const float *)a->p)[i];
    case OC_F64: return ((const double *)a->p)[i];
    case OC_I32: return ((const int32_t *)a->p)[i];
    case OC_U16: return ((const uint16_t *)a->p)[i];
    default: return ((const uint8_t *)a->p)[i];
    }
}

/* element i of got and want: the same bytes, or two NaNs */
static int same(const oc_arr *g, const oc_arr *w, size_t i)
{
    const size_t s = tsize(g->type);
    if (memcmp((const char *)g->p + i * s, (const char *)w->p + i * s, s) == 0) return 1;
    return (g->type == OC_F32 || g->type == OC_F64) && isnan(elem(g, i)) && isnan(elem(w, i));
}

int oc_compare(const oc_tol *tol, const oc_data *got, const oc_data *want, char *msg, size_t n,
               double *measured)
{
    *measured = 0.0;
    if (tol->kind == OC_SHARE || tol->kind == OC_SOLVE) {
        const size_t len = want->out[0].n;
        size_t nsame = 0;
        for (size_t i = 0; i < len; i++) {
            int all = 1;
            for (int k = 0; k < want->nout && (tol->kind == OC_SHARE || k == 0); k++)
                all &= same(&got->out[k], &want->out[k], i);
            nsame += (size_t)all;
        }
        const double share = len ? (double)nsame / (double)len : 1.0;
        *measured = share;
        if (share < tol->v[0]) {
            snprintf(msg, n, "identical share %.6f < %g", share, tol->v[0]);
            return 1;
        }
        if (tol->kind == OC_SHARE) return 0;
        /* OC_SOLVE: codes at most 1 step off, summed loss, every scale */
        double maxd = 0.0, lg = 0.0, lw = 0.0, smax = 0.0;
        for (size_t i = 0; i < len; i++) {
            const double dd = fabs(elem(&got->out[0], i) - elem(&want->out[0], i));
            maxd = dd > maxd ? dd : maxd;
        }
        for (size_t i = 0; i < want->out[2].n; i++) {
            lg += elem(&got->out[2], i);
            lw += elem(&want->out[2], i);
        }
        for (size_t i = 0; i < want->out[1].n; i++) {
            const double w = elem(&want->out[1], i);
            const double dd = fabs(elem(&got->out[1], i) - w) / fabs(w);
            if (!(dd <= smax)) smax = dd; /* NaN propagates */
        }
        const double lrel = fabs(lg - lw) / (lw > 0.0 ? lw : 1.0);
        if (maxd > 1.0 || !(lrel < tol->v[1]) || !(smax < tol->v[2])) {
            snprintf(msg, n,
                     "identical codes %.6f, largest code step %g (<= 1), loss rel. %.3g (< %g), "
                     "scale rel. %.3g (< %g)",
                     share, maxd, lrel, tol->v[1], smax, tol->v[2]);
            return 1;
        }
        return 0;
    }
    for (int k = 0; k < want->nout; k++) {
        const oc_arr *g = &got->out[k], *w = &want->out[k];
        if (tol->kind == OC_BYTES || want->exact[k]) {
            for (size_t i = 0; i < w->n; i++)
                if (!same(g, w, i)) {
                    snprintf(msg, n, "%s[%zu]: %.9g, want %.9g (identical bytes)", want->name[k],
                             i, elem(g, i), elem(w, i));
                    return 1;
                }
        } else if (tol->kind == OC_FROB) {
            double num = 0.0, den = 0.0;
            for (size_t i = 0; i < w->n; i++) {
                const double a = elem(g, i), b = elem(w, i);
                num += (a - b) * (a - b);
                den += b * b;
            }
            const double e = den > 0.0 ? sqrt(num / den) : sqrt(num);
            *measured = e > *measured || isnan(e) ? e : *measured;
            if (!(e < tol->v[0])) { /* a NaN or an infinity fails */
                snprintf(msg, n, "%s: rel. Frobenius error %.3g >= %g", want->name[k], e,
                         tol->v[0]);
                return 1;
            }
        } else { /* OC_REL */
            for (size_t i = 0; i < w->n; i++) {
                const double a = elem(g, i), b = elem(w, i), e = fabs(a - b);
                if (b != 0.0 && e / fabs(b) > *measured) *measured = e / fabs(b);
                if (!(e <= tol->v[0] * fabs(b))) {
                    snprintf(msg, n, "%s[%zu]: %.17g, want %.17g (rel. %g)", want->name[k], i,
                             a, b, tol->v[0]);
                    return 1;
                }
            }
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* the rows                                                             */
/* ------------------------------------------------------------------ */

/* Reasons, shared by the rows that share them. */
#define WHY_EXACT_OPS "the contract fixes every f32 operation (no contraction): the same bytes"
#define WHY_GEMM                                                                                  \
    "f32 sums of K <= 300 terms in different orders (tiles, FMA): about sqrt(K) * 6e-8 apart"
#define TOL_GEMM {OC_FROB, {1e-5}, WHY_GEMM}
#define REF_GEMM {OC_FROB, {1e-5}, "an f32 sum against a double one: " WHY_GEMM}

#define GEMM4(ta, tb, M, N, K, pad)                                                        \
    {"gemm", GPTQ_OP_GEMM, {ta, tb, M, N, K, 0}, .tol = TOL_GEMM, .ref = REF_GEMM},         \
        {"gemm padded", GPTQ_OP_GEMM, {ta, tb, M, N, K, pad}, .tol = TOL_GEMM, .ref = REF_GEMM}
/* tails in every dimension, vector (multiple-of-4) and scalar paths, views
 * at offsets with padded leading dimensions (pad 4 or 5) */
#define GEMM_ROWS(M, N, K, pad)                                                            \
    GEMM4(0, 0, M, N, K, pad), GEMM4(0, 1, M, N, K, pad), GEMM4(1, 0, M, N, K, pad),        \
        GEMM4(1, 1, M, N, K, pad)

#define TOL_HESS {OC_FROB, {1e-5}, "f32 sums of n = 1000 rows in different orders: ~sqrt(n) * 6e-8"}
#define REF_HESS {OC_FROB, {1e-5}, "the CPU's f32 SYRK against a double sum: ~sqrt(n) * 6e-8"}

#define TOL_U                                                                                     \
    {OC_FROB,                                                                                     \
     {1e-4},                                                                                      \
     "cond(H) < 50; other blockings and inverse algorithms: the error grows like cond * eps * "   \
     "f(C) (the CPU alone: <= 4e-7 for cond < 20)"}
#define REF_U {OC_FROB, {1e-5}, "f32 factor and inverse against double ones, cond(H) < 3"}
#define TOL_NPD {OC_BYTES, {0}, "the status, the column named and the message are facts"}

#define GRID(bits, sym)                                                                        \
    {"quant_grid", GPTQ_OP_QUANT_GRID, {bits, sym, 0, 257, 300, 128},                          \
     .tol = {OC_BYTES, {0}, "the same f32 operations, IEEE division, no contraction"},         \
     .ref = {OC_BYTES, {0}, WHY_EXACT_OPS}},                                                   \
        {"quant_grid mse", GPTQ_OP_QUANT_GRID, {bits, sym, 1, 257, 300, 128},                  \
         .tol = {OC_SHARE, {0.999}, "pow() of two libms may differ by an ulp and flip a "      \
                                    "near-tie between two shrink steps"},                       \
         .ref = {OC_SHARE, {0.999}, "pow() in the same libm, but a near-tie is one ulp away"}}

/* gptq_block: the first block alone, then the whole solve */
#define BLOCK(name, R, C, G, B, bits, sym, mse, rtn, stat)                                       \
    {name " first block", GPTQ_OP_GPTQ_BLOCK, {R, C, G, B, bits, sym, mse, rtn, stat, 1},        \
     .tol = {OC_BYTES, {0}, "the kernel repeats the CPU's arithmetic operation for operation"},  \
     .ref = {OC_BYTES, {0}, WHY_EXACT_OPS}},                                                     \
        {name " solve", GPTQ_OP_GPTQ_BLOCK, {R, C, G, B, bits, sym, mse, rtn, stat, 0},          \
         .tol = {OC_SOLVE, {0.999, 1e-3, 1e-4}, WHY_SOLVE}, .ref = {OC_SOLVE, {0.999, 1e-3, 1e-4}, WHY_SOLVE}}
#define WHY_SOLVE                                                                               \
    "the lazy gemms round differently (1e-7 relative): a value on a rounding boundary flips "   \
    "one code by a step, which shifts later errors"

#define TOL_FW_NORM(what)                                                                       \
    {OC_FROB, {1e-6}, what ": double statistics summed in another order move r by an ulp; expf " \
                           "of two libms differs by an ulp or two"}
#define TOL_ATTN                                                                                 \
    {OC_FROB, {1e-5}, "dot products over d and softmax sums in other orders (f32 against "       \
                      "f32, or against double)"}

#define LIN3(M, N, K)                                                                            \
    {"linear_fast v3", GPTQ_OP_LINEAR_FAST, {M, N, K}, "GPTQ_HIP_LINEAR=v3", .tol = TOL_TF32,   \
     .ref = REF_GEMM},                                                                           \
        {"linear_fast v2", GPTQ_OP_LINEAR_FAST, {M, N, K}, "GPTQ_HIP_LINEAR=v2",                 \
         .tol = TOL_TF32, .ref = REF_GEMM},                                                      \
        {"linear_fast v1", GPTQ_OP_LINEAR_FAST, {M, N, K}, "GPTQ_HIP_LINEAR=v1",                 \
         .tol = TOL_TF32, .ref = REF_GEMM}
#define TOL_TF32                                                                                 \
    {OC_FROB, {2e-3}, "TF32 keeps 10 of 23 significand bits: each product off by ~4e-4 "         \
                      "typically, averaging over K random-sign terms: ~4e-4 whatever K"}

#define PACKED_EXACT                                                                             \
    .tol = {OC_BYTES, {0}, "exact by the contract: bit moves, one exact product, a k-order f32 " \
                           "sum without FMA"},                                                   \
    .ref = {OC_BYTES, {0}, WHY_EXACT_OPS}
#define QROWS(bits)                                                                               \
    {"dequantize v1", GPTQ_OP_DEQUANTIZE, {bits, 1, 96, 224, 32, 0}, PACKED_EXACT},               \
        {"dequantize v2", GPTQ_OP_DEQUANTIZE, {bits, 2, 96, 224, 32, 0}, PACKED_EXACT},           \
        {"matmul_q v1", GPTQ_OP_MATMUL_Q, {bits, 1, 96, 224, 32, 0, 37}, PACKED_EXACT},           \
        {"matmul_q v1 bias", GPTQ_OP_MATMUL_Q, {bits, 1, 96, 224, 32, 1, 37}, PACKED_EXACT},      \
        {"matmul_q v2", GPTQ_OP_MATMUL_Q, {bits, 2, 96, 224, 32, 0, 37}, PACKED_EXACT},           \
        {"matmul_q v2 bias", GPTQ_OP_MATMUL_Q, {bits, 2, 96, 224, 32, 1, 37}, PACKED_EXACT},      \
        {"pack_codes", GPTQ_OP_PACK_CODES, {bits, 96, 224, 0}, PACKED_EXACT}
/* kernels (issue 12): matmul_q_fast, the sums in the kernel's order */
#define TOL_FASTMM                                                                               \
    {OC_FROB, {1e-5}, "the K = 224 products summed in the kernel's order (FMA): each output "    \
                      "within 2 gamma(K+2) sum|x w| of the k-order sum (tests/test_w4a16.c "     \
                      "checks that bound element by element); in norm, random roundings give "  \
                      "~sqrt(K) 2^-24 ~ 1e-6"}
#define FASTROWS(bits)                                                                           \
    {"matmul_q_fast v1", GPTQ_OP_MATMUL_Q_FAST, {bits, 1, 96, 224, 32, 0, 37}, .tol = TOL_FASTMM, \
     .ref = TOL_FASTMM},                                                                         \
        {"matmul_q_fast v2 bias", GPTQ_OP_MATMUL_Q_FAST, {bits, 2, 96, 224, 32, 1, 37},          \
         .tol = TOL_FASTMM, .ref = TOL_FASTMM},                                                  \
        {"matmul_q_fast v1 decode", GPTQ_OP_MATMUL_Q_FAST, {bits, 1, 96, 224, 32, 0, 1},         \
         .tol = TOL_FASTMM, .ref = TOL_FASTMM}
/* hipq4: the HIP backend's matmul_q_fast paths (backends/hip/hip_w4a16.hip):
 * gemv (M <= 8), gemm-mma (NVIDIA, M > 8), gemm-simt (GPTQ_HIP_W4A16=simt,
 * the AMD path; and 2/3 bits). p = {bits, format, N, K, G, bias, M, in order}:
 * N = 200 and K = 328 are multiples of no tile (gemv 16/32 columns, mma
 * (64, 128) outputs and k-steps of 64, simt 64); K = 4096 runs several rounds
 * of gemv's loads; G = K is one group (group size -1), G = 40 splits the
 * mma's 16-k pieces between groups even in order; `in order` 0 is act-order. */
#define TOL_HIPQ4                                                                                \
    {OC_FROB, {1e-5}, "sums in the kernel's order (gemv: 8-k words, then k-slices; mma: 16-k "  \
                      "pieces scaled into f32): each output within 2 gamma(K+2) sum|x w| of "   \
                      "the k-order sum (hip_w4a16.hip counts the roundings); in norm, random "  \
                      "roundings give ~sqrt(depth) 2^-24 < 1e-6 for K <= 4096"}
#define REF_HIPQ4                                                                                \
    {OC_FROB, {1e-5}, "the CPU backend's fast kernel (its own order, FMA) against double sums: " \
                      "each output within gamma(K+2) sum|x w|; in norm ~sqrt(K) 2^-24 < 1e-6"}
#define HIPQ4(name, bits, fmt, N, K, G, bias, M, inorder, env_)                                   \
    {"matmul_q_fast hipq4 " name, GPTQ_OP_MATMUL_Q_FAST, {bits, fmt, N, K, G, bias, M, inorder}, \
     env_, .tol = TOL_HIPQ4, .ref = REF_HIPQ4}
#define HIPQ4ROWS(b)                                                                             \
    HIPQ4("gemv", b, 1, 200, 328, 128, 0, 1, 1, NULL),                                           \
        HIPQ4("gemv act-order bias", b, 2, 200, 328, 32, 1, 1, 0, NULL),                         \
        HIPQ4("gemv one group bias", b, 2, 200, 328, 328, 1, 3, 1, NULL),                        \
        HIPQ4("gemv act-order", b, 1, 200, 328, 128, 0, 8, 0, NULL),                             \
        HIPQ4("gemv K 4096", b, 1, 256, 4096, 128, 0, 1, 1, NULL),                               \
        HIPQ4("gemv K 4096 act-order", b, 2, 256, 4096, 128, 1, 2, 0, NULL),                     \
        HIPQ4("gemm", b, 1, 200, 328, 32, 1, 17, 1, NULL),                                       \
        HIPQ4("gemm mixed pieces", b, 2, 200, 328, 40, 0, 64, 1, NULL),                          \
        HIPQ4("gemm act-order bias", b, 1, 200, 328, 32, 1, 300, 0, NULL),                       \
        HIPQ4("gemm one group", b, 2, 200, 328, 328, 0, 300, 1, NULL),                           \
        HIPQ4("gemm small M", b, 2, 200, 328, 128, 1, 1, 1, "GPTQ_HIP_W4A16=gemm"),              \
        HIPQ4("gemm small M act-order", b, 1, 200, 328, 32, 0, 3, 0, "GPTQ_HIP_W4A16=gemm"),     \
        HIPQ4("simt", b, 1, 200, 328, 128, 1, 17, 1, "GPTQ_HIP_W4A16=simt"),                     \
        HIPQ4("simt act-order", b, 2, 200, 328, 32, 0, 64, 0, "GPTQ_HIP_W4A16=simt"),            \
        HIPQ4("simt gemv", b, 2, 200, 328, 328, 1, 8, 1, "GPTQ_HIP_W4A16=simt")
/* hipgemv: the NVIDIA tensor-core GEMV (gemv-mma: 4 bits, M <= 16, the
 * default there; GPTQ_HIP_W4A16=mma names it, GPTQ_HIP_GVM=async runs its
 * cp.async-ring variant; the same HIPQ4 row shape,
 * tolerance and reference). M = 1, 5 (one block of 8 tokens), 16 (two);
 * N = 200 ends in a partial 64-column tile (one quad in, one out); K = 328
 * ends in a partial 32-k step; K = 4096 is split over 4 blocks (the
 * workspace and the last block's ordered sum) and chains each group's mmas
 * in the accumulator (K >= 1280 here: the depth bound allows it), K = 328
 * does not; groups 128 and 32 (every k-step in one group), 40 (k-steps of
 * two groups in order: a flush at each change, and mixed steps done last),
 * one group (the hint's group 0 for all of K) and act-order (mixed k-steps:
 * one masked pass per group); K = 32 is the smallest K it takes. The SIMT
 * gemv (the AMD path) runs under GPTQ_HIP_W4A16=simt. Off NVIDIA (and at 8
 * bits) the mode runs the default paths. */
#define GVMMA(name, fmt, N, K, G, bias, M, inorder)                                              \
    HIPQ4("gemv-mma " name, 4, fmt, N, K, G, bias, M, inorder, "GPTQ_HIP_W4A16=mma")
#define HIPGEMVROWS                                                                              \
    GVMMA("M 1", 1, 200, 328, 128, 0, 1, 1), GVMMA("M 5 bias g32", 2, 200, 328, 32, 1, 5, 1),     \
        GVMMA("M 16 g40", 1, 200, 328, 40, 0, 16, 1),                                            \
        GVMMA("M 16 one group bias", 2, 200, 328, 328, 1, 16, 1),                                \
        GVMMA("M 1 act-order bias", 2, 200, 328, 32, 1, 1, 0),                                   \
        GVMMA("M 5 act-order", 1, 200, 328, 128, 0, 5, 0),                                       \
        GVMMA("K 4096 M 1", 2, 200, 4096, 128, 0, 1, 1),                                         \
        GVMMA("K 4096 M 16 bias", 1, 264, 4096, 128, 1, 16, 1),                                  \
        GVMMA("K 4096 M 9 act-order", 2, 200, 4096, 128, 0, 9, 0),                               \
        GVMMA("K 32", 1, 200, 32, 32, 1, 3, 1),                                                  \
        GVMMA("K 1280 M 2 g40 chain bias", 1, 264, 1280, 40, 1, 2, 1),                           \
        GVMMA("K 4096 one group M 1", 2, 200, 4096, 4096, 0, 1, 1),                              \
        GVMMA("K 4096 M 3 g32 chain", 1, 264, 4096, 32, 0, 3, 1),                                \
        HIPQ4("gemv-mma async K 4096 M 1", 4, 2, 264, 4096, 128, 1, 1, 1, "GPTQ_HIP_GVM=async"), \
        HIPQ4("gemv-mma async M 16 g40", 4, 1, 200, 1280, 40, 0, 16, 1, "GPTQ_HIP_GVM=async"),   \
        HIPQ4("gemv-mma async act-order", 4, 2, 200, 4096, 128, 0, 3, 0, "GPTQ_HIP_GVM=async"),  \
        HIPQ4("simt gemv M 1", 4, 1, 200, 328, 128, 0, 1, 1, "GPTQ_HIP_W4A16=simt"),             \
        HIPQ4("simt gemv K 4096 act-order", 4, 2, 256, 4096, 128, 1, 2, 0, "GPTQ_HIP_W4A16=simt"), \
        HIPQ4("gemm M 16 K 4096", 4, 1, 200, 4096, 128, 0, 16, 1, NULL)
#define TOL_FAIL {OC_BYTES, {0}, "a failing call: its status and a message naming the problem"}

#define TOL_DOT(size)                                                                            \
    {OC_REL, {1e-9}, "double products summed in another order: ~sqrt(n) eps sum|terms| / |sum| " \
                     "(random roundings) < 1e-11 for n ~ 1e5 and " size}
#define REF_DOT                                                                                  \
    {OC_BYTES, {0}, "backend.h fixes the CPU's order: each row in column order, then the rows"}
#define TOL_DEAD {OC_BYTES, {0}, "a comparison with 0 and stores of 1 and 0"}

#define GATHER(es, mode)                                                                         \
    {"gather", GPTQ_OP_GATHER, {es, mode, 96, 160, 80, 150, 0},                                  \
     .tol = {OC_BYTES, {0}, "element moves"}, .ref = {OC_BYTES, {0}, "element moves"}}

const op_case oc_cases[] = {
    GEMM_ROWS(131, 77, 53, 4),
    GEMM_ROWS(256, 384, 200, 5),
    GEMM_ROWS(1, 1, 1, 4),
    GEMM_ROWS(5, 300, 7, 5),
    GEMM_ROWS(260, 132, 300, 4),
    GEMM_ROWS(129, 129, 129, 5),

    /* 3 tiles a side with vector loads; one partial tile, scalar loads; a short batch */
    {"hessian_accumulate", GPTQ_OP_HESSIAN_ACCUMULATE, {300, 1000}, .tol = TOL_HESS, .ref = REF_HESS},
    {"hessian_accumulate", GPTQ_OP_HESSIAN_ACCUMULATE, {97, 1000}, .tol = TOL_HESS, .ref = REF_HESS},
    {"hessian_accumulate", GPTQ_OP_HESSIAN_ACCUMULATE, {257, 33}, .tol = TOL_HESS, .ref = REF_HESS},

    /* one element, one block, 3 blocks and a partial one, 300 */
    {"cholesky_inverse_upper", GPTQ_OP_CHOLESKY_INVERSE_UPPER, {1, 0}, .tol = TOL_U, .ref = REF_U},
    {"cholesky_inverse_upper", GPTQ_OP_CHOLESKY_INVERSE_UPPER, {64, 0}, .tol = TOL_U, .ref = REF_U},
    {"cholesky_inverse_upper", GPTQ_OP_CHOLESKY_INVERSE_UPPER, {197, 0}, .tol = TOL_U, .ref = REF_U},
    {"cholesky_inverse_upper", GPTQ_OP_CHOLESKY_INVERSE_UPPER, {300, 0}, .tol = TOL_U, .ref = REF_U},
    {"cholesky_inverse_upper negative pivot", GPTQ_OP_CHOLESKY_INVERSE_UPPER, {150, 1},
     .msg = "not positive definite", .tol = TOL_NPD, .ref = TOL_NPD},
    {"cholesky_inverse_upper NaN", GPTQ_OP_CHOLESKY_INVERSE_UPPER, {150, 2},
     .msg = "at (33, 101)", .tol = TOL_NPD, .ref = TOL_NPD},

    GRID(2, 0), GRID(2, 1), GRID(3, 0), GRID(3, 1), GRID(4, 0), GRID(4, 1), GRID(8, 0), GRID(8, 1),

    BLOCK("4-bit g128 asym", 200, 384, 128, 128, 4, 0, 0, 0, 0),
    BLOCK("3-bit one group sym", 130, 300, 300, 128, 3, 1, 0, 0, 0),
    BLOCK("2-bit g32 asym", 97, 256, 32, 128, 2, 0, 0, 0, 0),
    BLOCK("4-bit g64 B32 (group over blocks)", 64, 256, 64, 32, 4, 0, 0, 0, 0),
    BLOCK("8-bit g128 mse", 66, 256, 128, 128, 8, 0, 1, 0, 0),
    BLOCK("4-bit g128 static groups act-order", 100, 384, 128, 128, 4, 1, 0, 0, 1),
    BLOCK("4-bit g128 RTN (U = I)", 90, 256, 128, 128, 4, 0, 0, 1, 0),
    BLOCK("4-bit g512 B512 (unstaged kernel)", 70, 1024, 512, 512, 4, 0, 0, 0, 0),

    {"embedding accumulate", GPTQ_OP_EMBEDDING, {37, 200, 53, 0},
     .tol = {OC_BYTES, {0}, "a copy and one f32 sum"}, .ref = {OC_BYTES, {0}, WHY_EXACT_OPS}},
    {"embedding bad id", GPTQ_OP_EMBEDDING, {37, 200, 53, 1}, .msg = "row 20", .tol = TOL_FAIL,
     .ref = TOL_FAIL},
    {"rmsnorm", GPTQ_OP_RMSNORM, {37, 200}, .tol = TOL_FW_NORM("rmsnorm"),
     .ref = TOL_FW_NORM("r in double against the CPU's f32 var + eps")},
    {"layernorm", GPTQ_OP_LAYERNORM, {37, 200, 1}, .tol = TOL_FW_NORM("layernorm"),
     .ref = TOL_FW_NORM("layernorm")},
    {"layernorm without w, b", GPTQ_OP_LAYERNORM, {37, 200, 0}, .tol = TOL_FW_NORM("layernorm"),
     .ref = TOL_FW_NORM("layernorm")},
    {"rope", GPTQ_OP_ROPE, {150, 4, 64, 80, 75},
     .tol = {OC_BYTES, {0}, "two f32 products and a sum per element, no contraction"},
     .ref = {OC_BYTES, {0}, WHY_EXACT_OPS}},
    /* partial rotary (Phi-3 partial_rotary_factor): Phi-4-mini's 96 of 128,
     * and half of 64; the dims past rot pass through */
    {"rope partial 96 of 128", GPTQ_OP_ROPE, {150, 3, 128, 80, 75, 96},
     .tol = {OC_BYTES, {0}, "two f32 products and a sum per element, no contraction"},
     .ref = {OC_BYTES, {0}, WHY_EXACT_OPS}},
    {"rope partial 32 of 64", GPTQ_OP_ROPE, {37, 4, 64, 40, 37, 32},
     .tol = {OC_BYTES, {0}, "two f32 products and a sum per element, no contraction"},
     .ref = {OC_BYTES, {0}, WHY_EXACT_OPS}},
    /* both HIP kernels (tiled for d 64/128, row per block for any d or when
     * forced), GQA, a partial last query tile (S = 75) */
    {"attention GQA", GPTQ_OP_ATTENTION, {2, 75, 4, 2, 64}, .tol = TOL_ATTN, .ref = TOL_ATTN},
    {"attention GQA row kernel", GPTQ_OP_ATTENTION, {2, 75, 4, 2, 64},
     "GPTQ_HIP_NAIVE_ATTENTION=1", .tol = TOL_ATTN, .ref = TOL_ATTN},
    {"attention d128", GPTQ_OP_ATTENTION, {1, 100, 2, 1, 128}, .tol = TOL_ATTN, .ref = TOL_ATTN},
    {"attention d32", GPTQ_OP_ATTENTION, {3, 33, 3, 3, 32}, .tol = TOL_ATTN, .ref = TOL_ATTN},
    /* sliding window and soft-capping (ABI 5) on both HIP kernels: a window
     * inside one key tile (20 < 32) and across tiles (40), one as long as
     * the sequence (= full causal), a window of 1 (each row sees itself
     * only: O = V of its own row, up to the division by its one exp), a cap
     * that bends most scores (0.5), and both. The tolerance stays TOL_ATTN:
     * the cap adds one tanhf per score (an ulp or two against tanh in
     * double) and fewer keys only shorten the sums. */
    {"attention window 20", GPTQ_OP_ATTENTION, {2, 75, 4, 2, 64, 20}, .tol = TOL_ATTN,
     .ref = TOL_ATTN},
    {"attention window 20 row kernel", GPTQ_OP_ATTENTION, {2, 75, 4, 2, 64, 20},
     "GPTQ_HIP_NAIVE_ATTENTION=1", .tol = TOL_ATTN, .ref = TOL_ATTN},
    {"attention window 40 d128", GPTQ_OP_ATTENTION, {1, 100, 2, 1, 128, 40}, .tol = TOL_ATTN,
     .ref = TOL_ATTN},
    {"attention window = S", GPTQ_OP_ATTENTION, {2, 75, 4, 2, 64, 75}, .tol = TOL_ATTN,
     .ref = TOL_ATTN},
    {"attention window > S d32", GPTQ_OP_ATTENTION, {3, 33, 3, 3, 32, 1000}, .tol = TOL_ATTN,
     .ref = TOL_ATTN},
    {"attention window 1", GPTQ_OP_ATTENTION, {1, 40, 2, 2, 64, 1}, .tol = TOL_ATTN,
     .ref = TOL_ATTN},
    {"attention softcap", GPTQ_OP_ATTENTION, {2, 75, 4, 2, 64, 0, 50}, .tol = TOL_ATTN,
     .ref = TOL_ATTN},
    {"attention softcap row kernel", GPTQ_OP_ATTENTION, {2, 75, 4, 2, 64, 0, 50},
     "GPTQ_HIP_NAIVE_ATTENTION=1", .tol = TOL_ATTN, .ref = TOL_ATTN},
    {"attention window and softcap", GPTQ_OP_ATTENTION, {2, 75, 4, 2, 128, 33, 50},
     .tol = TOL_ATTN, .ref = TOL_ATTN},
    {"attention window and softcap d32", GPTQ_OP_ATTENTION, {3, 33, 3, 3, 32, 7, 50},
     .tol = TOL_ATTN, .ref = TOL_ATTN},
    {"attention negative window", GPTQ_OP_ATTENTION, {1, 8, 2, 2, 64, 0, 0, 1}, .msg = "window",
     .tol = TOL_FAIL, .ref = TOL_FAIL},
    /* attention_kv (ABI 6, generation): one decoding query after 74 cached
     * positions, a chunk of 5 queries at 40 (the prompt's continuation), a
     * prompt (p0 0), a window of 20 that cuts the cache, softcap, and d 32;
     * the tolerance is attention's: the same sums over fewer queries */
    {"attention_kv one query", GPTQ_OP_ATTENTION_KV, {1, 74, 4, 2, 64}, .tol = TOL_ATTN,
     .ref = TOL_ATTN},
    {"attention_kv chunk at 40", GPTQ_OP_ATTENTION_KV, {5, 40, 4, 2, 128}, .tol = TOL_ATTN,
     .ref = TOL_ATTN},
    {"attention_kv prompt", GPTQ_OP_ATTENTION_KV, {75, 0, 4, 2, 64}, .tol = TOL_ATTN,
     .ref = TOL_ATTN},
    {"attention_kv window 20", GPTQ_OP_ATTENTION_KV, {3, 90, 4, 2, 64, 20}, .tol = TOL_ATTN,
     .ref = TOL_ATTN},
    {"attention_kv window and softcap d32", GPTQ_OP_ATTENTION_KV, {2, 33, 3, 3, 32, 7, 50},
     .tol = TOL_ATTN, .ref = TOL_ATTN},
    {"attention_kv negative p0", GPTQ_OP_ATTENTION_KV, {1, 8, 2, 2, 64, 0, 0, 1}, .msg = "p0",
     .tol = TOL_FAIL, .ref = TOL_FAIL},
    {"silu_mul", GPTQ_OP_SILU_MUL, {7400}, .tol = TOL_FW_NORM("silu_mul"),
     .ref = TOL_FW_NORM("silu in double against f32 with expf")},
    /* Gemma (ABI 6): GeGLU, the embedding normalizer, final logit soft-capping
     * (a cap of 5 bends the 8 x uniform inputs hard, one of 30 as Gemma 2's
     * barely) */
    {"gelu_tanh_mul", GPTQ_OP_GELU_TANH_MUL, {7400},
     .tol = {OC_FROB, {1e-6}, "tanhf of two libms differs by an ulp or two"},
     .ref = {OC_FROB, {1e-6}, "f32 steps and tanhf against the formula in double: a few ulps "
                              "per element"}},
    {"scale", GPTQ_OP_SCALE, {7397, 3}, .tol = {OC_BYTES, {0}, "one f32 product"},
     .ref = {OC_BYTES, {0}, "one f32 product"}},
    {"softcap 5", GPTQ_OP_SOFTCAP, {7397, 3, 500},
     .tol = {OC_FROB, {1e-6}, "tanhf of two libms differs by an ulp or two"},
     .ref = {OC_FROB, {1e-6}, "f32 division, tanhf and product against double: a few ulps"}},
    {"softcap 30", GPTQ_OP_SOFTCAP, {7400, 0, 3000},
     .tol = {OC_FROB, {1e-6}, "tanhf of two libms differs by an ulp or two"},
     .ref = {OC_FROB, {1e-6}, "f32 division, tanhf and product against double: a few ulps"}},
    {"softcap cap 0", GPTQ_OP_SOFTCAP, {64, 0, 0}, .msg = "cap", .tol = TOL_FAIL,
     .ref = TOL_FAIL},
    {"relu", GPTQ_OP_RELU, {7397, 3}, .tol = {OC_BYTES, {0}, "a comparison"},
     .ref = {OC_BYTES, {0}, "a comparison"}},
    {"add", GPTQ_OP_ADD, {7400}, .tol = {OC_BYTES, {0}, "one f32 sum"},
     .ref = {OC_BYTES, {0}, "one f32 sum"}},
    {"bias_add", GPTQ_OP_BIAS_ADD, {37, 200}, .tol = {OC_BYTES, {0}, "one f32 sum"},
     .ref = {OC_BYTES, {0}, "one f32 sum"}},
    {"cross_entropy", GPTQ_OP_CROSS_ENTROPY, {29, 1000},
     .tol = {OC_REL, {1e-10}, "double arithmetic, sums in another order, exp/log of two libms"},
     .ref = {OC_REL, {1e-10}, "double arithmetic, sums in another order"}},

    /* whole tiles, tails in M and N, N not a multiple of 8 (the staged
     * store), K not a multiple of 4 (the f32 fallback), K below a k-step;
     * every NVIDIA kernel (v3 the default, v2, v1) */
    LIN3(256, 256, 256), LIN3(300, 200, 96), LIN3(129, 132, 64), LIN3(70, 36, 30),
    LIN3(1, 8, 4), LIN3(512, 4224, 520), LIN3(200, 300, 64),

    {"hessian_finish", GPTQ_OP_HESSIAN_FINISH, {300, 1},
     .tol = {OC_BYTES, {0}, "one f32 product and one f32 sum: the host's own operations"},
     .ref = {OC_BYTES, {0}, WHY_EXACT_OPS}},
    {"hessian_finish diagonal only", GPTQ_OP_HESSIAN_FINISH, {257, 0},
     .tol = {OC_BYTES, {0}, "one f32 product: the host's own operation"},
     .ref = {OC_BYTES, {0}, WHY_EXACT_OPS}},
    /* rows of one column count; one long row; (A - D)^2 with B the buffer A */
    {"dot", GPTQ_OP_DOT, {333, 301, 0, 0}, .tol = TOL_DOT("|sum| ~ sqrt(n) / 3 ~ 100"),
     .ref = REF_DOT},
    {"dot with D", GPTQ_OP_DOT, {333, 301, 1, 0}, .tol = TOL_DOT("sum ~ n / 3"), .ref = REF_DOT},
    {"dot one row", GPTQ_OP_DOT, {1, 100003, 0, 0}, .tol = TOL_DOT("|sum| ~ sqrt(n) / 3 ~ 100"),
     .ref = REF_DOT},
    {"dot A with itself, D", GPTQ_OP_DOT, {257, 96, 1, 1}, .tol = TOL_DOT("sum ~ n * 2 / 3"),
     .ref = REF_DOT},

    /* no dead column, several (the first, the last, one whose diagonal is -0), all */
    {"dead_columns none", GPTQ_OP_DEAD_COLUMNS, {97, 300, 0}, .tol = TOL_DEAD, .ref = TOL_DEAD},
    {"dead_columns several", GPTQ_OP_DEAD_COLUMNS, {97, 300, 1}, .tol = TOL_DEAD,
     .ref = TOL_DEAD},
    {"dead_columns all", GPTQ_OP_DEAD_COLUMNS, {33, 64, 2}, .tol = TOL_DEAD, .ref = TOL_DEAD},

    QROWS(2), QROWS(3), QROWS(4), QROWS(8),
    FASTROWS(2), FASTROWS(3), FASTROWS(4), FASTROWS(8),
    /* hipq4: the HIP kernels' paths and edges (2 and 3 bits: gemm-simt) */
    HIPQ4ROWS(4), HIPQ4ROWS(8),
    HIPQ4("simple 2 bits act-order", 2, 1, 224, 352, 32, 1, 5, 0, NULL),
    HIPQ4("simple 3 bits", 3, 2, 224, 352, 128, 0, 70, 1, NULL),
    /* hipgemv: the tensor-core GEMV's paths and edges */
    HIPGEMVROWS,
    {"pack_codes code too wide", GPTQ_OP_PACK_CODES, {2, 96, 224, 1}, .msg = "77",
     .tol = TOL_FAIL, .ref = TOL_FAIL},
    {"pack_codes code too wide", GPTQ_OP_PACK_CODES, {3, 96, 224, 1}, .msg = "77",
     .tol = TOL_FAIL, .ref = TOL_FAIL},
    {"pack_codes code too wide", GPTQ_OP_PACK_CODES, {4, 96, 224, 1}, .msg = "77",
     .tol = TOL_FAIL, .ref = TOL_FAIL},
    {"dequantize bad g_idx", GPTQ_OP_DEQUANTIZE, {4, 2, 96, 224, 32, 1}, .msg = "g_idx[5]",
     .tol = TOL_FAIL, .ref = TOL_FAIL},

    GATHER(4, 0), GATHER(4, 1), GATHER(4, 2), GATHER(1, 0), GATHER(1, 1), GATHER(1, 2),
    GATHER(4, 3), GATHER(1, 3),
    {"gather index outside", GPTQ_OP_GATHER, {4, 1, 96, 160, 80, 150, 1}, .msg = "160",
     .tol = TOL_FAIL, .ref = TOL_FAIL},

    {"to_f32 f16", GPTQ_OP_TO_F32, {0}, .tol = {OC_BYTES, {0}, "every f16 is an f32"},
     .ref = {OC_BYTES, {0}, "every f16 is an f32"}},
    {"to_f32 bf16", GPTQ_OP_TO_F32, {1}, .tol = {OC_BYTES, {0}, "every bf16 is an f32"},
     .ref = {OC_BYTES, {0}, "every bf16 is an f32"}},
};
const size_t oc_ncases = sizeof oc_cases / sizeof *oc_cases;
