/*
 * cpu_forward.c — the CPU backend's forward ops (the FORWARD OPS section of
 * backend.h): embedding gather, RMSNorm, LayerNorm, RoPE, causal GQA
 * attention, SiLU-gate, GELU(tanh)-gate, ReLU, residual add, bias add, scale,
 * soft-capping, cross-entropy.
 *
 * What makes these a reference (see also cpu_impl.h):
 *   - OpenMP only spreads independent rows (or independent (sequence, head,
 *     query block) tiles of attention) over threads; the arithmetic of each
 *     output element is written out in one fixed order, so the bytes do not
 *     depend on the thread count.
 *   - Reductions over a row (norm statistics, softmax sums, logsumexp) are
 *     accumulated in double in index order.
 *   - Attention calls single-threaded OpenBLAS sgemm on tiles whose shapes
 *     depend only on S and the compile-time query block FW_ATTN_BQ (each
 *     output row of a tile comes out the same whoever computes the tile).
 *
 * Letters as in backend.h: T tokens, D hidden, V vocabulary, F features,
 * H query heads, Hk KV heads, d head_dim, S tokens per sequence.
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_impl.h"

/* Query rows per attention tile: part of the defined arithmetic (a tile's
 * sgemm shapes), never a function of the thread count. */
#define FW_ATTN_BQ 64

/* Elements per chunk of the elementwise ops (a chunk per OpenMP iteration). */
#define FW_CHUNK 16384

/* OpenBLAS must run single-threaded inside a tile (cpu_impl.h); a program
 * may have changed the count since create, so check again (cheap). */
static void fw_blas_single(void)
{
    if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
}

#define FW_CHECK(expr)               \
    do {                             \
        int st_ = (expr);            \
        if (st_) return st_;         \
    } while (0)

/* ------------------------------------------------------------------ */
/* embedding                                                           */
/* ------------------------------------------------------------------ */

int cpu_embedding(void *ctx, const gptq_buf *ids, size_t ids_off, // (T) i32
                  int64_t T, const gptq_buf *E, size_t e_off,     // (V, D)
                  int64_t V, int64_t D, gptq_buf *Y, size_t y_off, // (T, D)
                  int accumulate)
{
    cpu_ctx *c = ctx;
    static const char op[] = "embedding";
    if (T < 0 || V <= 0 || D <= 0) return cpu_fail(c, GPTQ_ERR_SHAPE, "%s: bad T, V or D", op);
    FW_CHECK(cpu_range(c, ids, ids_off, T, 4, op, "ids"));
    FW_CHECK(cpu_range(c, E, e_off, V * D, 4, op, "E"));
    FW_CHECK(cpu_range(c, Y, y_off, T * D, 4, op, "Y"));
    const int32_t *id = (const int32_t *)(const void *)ids->data + ids_off;
    for (int64_t t = 0; t < T; t++)
        if (id[t] < 0 || id[t] >= V)
            return cpu_fail(c, GPTQ_ERR_INVALID, "%s: id %d at row %lld is outside [0, %lld)",
                            op, id[t], (long long)t, (long long)V);
    const float *e = CPU_CF32(E, e_off);
    float *y = CPU_F32(Y, y_off);
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++) {
        const float *src = e + (int64_t)id[t] * D;
        float *dst = y + t * D;
        if (accumulate)
            for (int64_t i = 0; i < D; i++) dst[i] = dst[i] + src[i];
        else
            memcpy(dst, src, (size_t)D * sizeof(float));
    }
    return GPTQ_OK;
}

/* ------------------------------------------------------------------ */
/* norms                                                               */
/* ------------------------------------------------------------------ */

int cpu_rmsnorm(void *ctx, const gptq_buf *X, size_t x_off, // (T, D)
                const gptq_buf *w, size_t w_off,            // (D)
                int64_t T, int64_t D, float eps, gptq_buf *Y, size_t y_off) // (T, D)
{
    cpu_ctx *c = ctx;
    static const char op[] = "rmsnorm";
    if (T < 0 || D <= 0) return cpu_fail(c, GPTQ_ERR_SHAPE, "%s: bad T or D", op);
    FW_CHECK(cpu_range(c, X, x_off, T * D, 4, op, "X"));
    FW_CHECK(cpu_range(c, w, w_off, D, 4, op, "w"));
    FW_CHECK(cpu_range(c, Y, y_off, T * D, 4, op, "Y"));
    const float *x = CPU_CF32(X, x_off), *wt = CPU_CF32(w, w_off);
    float *y = CPU_F32(Y, y_off);
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++) {
        const float *xr = x + t * D;
        float *yr = y + t * D;
        double ss = 0.0;
        for (int64_t i = 0; i < D; i++) ss += (double)xr[i] * (double)xr[i];
        float var = (float)(ss / (double)D);
        float r = 1.0f / sqrtf(var + eps);
        for (int64_t i = 0; i < D; i++) yr[i] = wt[i] * (xr[i] * r);
    }
    return GPTQ_OK;
}

int cpu_layernorm(void *ctx, const gptq_buf *X, size_t x_off, // (T, D)
                  const gptq_buf *w, size_t w_off,            // (D) or NULL
                  const gptq_buf *b, size_t b_off,            // (D) or NULL
                  int64_t T, int64_t D, float eps, gptq_buf *Y, size_t y_off) // (T, D)
{
    cpu_ctx *c = ctx;
    static const char op[] = "layernorm";
    if (T < 0 || D <= 0) return cpu_fail(c, GPTQ_ERR_SHAPE, "%s: bad T or D", op);
    FW_CHECK(cpu_range(c, X, x_off, T * D, 4, op, "X"));
    if (w) FW_CHECK(cpu_range(c, w, w_off, D, 4, op, "w"));
    if (b) FW_CHECK(cpu_range(c, b, b_off, D, 4, op, "b"));
    FW_CHECK(cpu_range(c, Y, y_off, T * D, 4, op, "Y"));
    const float *x = CPU_CF32(X, x_off);
    const float *wt = w ? CPU_CF32(w, w_off) : NULL, *bs = b ? CPU_CF32(b, b_off) : NULL;
    float *y = CPU_F32(Y, y_off);
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++) {
        const float *xr = x + t * D;
        float *yr = y + t * D;
        double s = 0.0;
        for (int64_t i = 0; i < D; i++) s += (double)xr[i];
        double mu = s / (double)D;
        double v = 0.0;
        for (int64_t i = 0; i < D; i++) {
            double dx = (double)xr[i] - mu;
            v += dx * dx;
        }
        float r = (float)(1.0 / sqrt(v / (double)D + (double)eps));
        float muf = (float)mu;
        for (int64_t i = 0; i < D; i++) {
            float z = (xr[i] - muf) * r;
            if (wt) z = z * wt[i];
            if (bs) z = z + bs[i];
            yr[i] = z;
        }
    }
    return GPTQ_OK;
}

/* ------------------------------------------------------------------ */
/* rope                                                                */
/* ------------------------------------------------------------------ */

int cpu_rope(void *ctx, gptq_buf *X, size_t x_off, // (T, nh * d)
             int64_t T, int64_t nh, int64_t d, int64_t rot,
             const gptq_buf *pos, size_t pos_off, // (T) i32
             const gptq_buf *CS, int64_t P)       // (P, rot) [cos | sin]
{
    cpu_ctx *c = ctx;
    static const char op[] = "rope";
    if (T < 0 || nh <= 0 || d <= 0 || rot < 2 || rot > d || rot % 2 || P <= 0)
        return cpu_fail(c, GPTQ_ERR_SHAPE, "%s: bad T, nh, d, rot (even, 2 .. d) or P", op);
    FW_CHECK(cpu_range(c, X, x_off, T * nh * d, 4, op, "X"));
    FW_CHECK(cpu_range(c, pos, pos_off, T, 4, op, "pos"));
    FW_CHECK(cpu_range(c, CS, 0, P * rot, 4, op, "CS"));
    const int32_t *ps = (const int32_t *)(const void *)pos->data + pos_off;
    for (int64_t t = 0; t < T; t++)
        if (ps[t] < 0 || ps[t] >= P)
            return cpu_fail(c, GPTQ_ERR_INVALID,
                            "%s: position %d at row %lld is outside the table [0, %lld)", op,
                            ps[t], (long long)t, (long long)P);
    float *x = CPU_F32(X, x_off);
    const float *cs = CPU_CF32(CS, 0);
    const int64_t half = rot / 2;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++) {
        const float *co = cs + (int64_t)ps[t] * rot, *si = co + half;
        for (int64_t h = 0; h < nh; h++) {
            float *v = x + (t * nh + h) * d;
            for (int64_t i = 0; i < half; i++) {
                float a = v[i], b = v[i + half];
                v[i] = a * co[i] - b * si[i];
                v[i + half] = b * co[i] + a * si[i];
            }
        }
    }
    return GPTQ_OK;
}

/* ------------------------------------------------------------------ */
/* attention                                                           */
/* ------------------------------------------------------------------ */

/* One tile: head h, query rows [i0, i1) at positions p0 + i0 .. p0 + i1 - 1,
 * q/o rows counted from q/o, k/v rows from k/v (a sequence's first key, or
 * the cache's). Keys k0 .. p0 + i1 - 1 are the only ones any row of the
 * tile may see (causal; k0 = 0 without a window, else the first key the
 * tile's first row sees). sc is scratch of FW_ATTN_BQ * (p0 + i1) floats.
 * With p0 = 0 and without window and softcap the arithmetic is that of
 * ABI 4 (the same calls on the same shapes). */
static void attn_tile(const float *q, const float *k, const float *v, float *o, int64_t p0,
                      int64_t H, int64_t Hk, int64_t d, float scale, int64_t window,
                      float softcap, int64_t h, int64_t i0, int64_t i1, float *sc)
{
    const int64_t kvh = h / (H / Hk);
    const int64_t a0 = p0 + i0, a1 = p0 + i1; /* positions of the tile's rows */
    const int64_t k0 = window > 0 && a0 - window + 1 > 0 ? a0 - window + 1 : 0;
    const int64_t m = i1 - i0, nk = a1 - k0;
    const int64_t ldq = H * d, ldk = Hk * d;
    const float *qt = q + i0 * ldq + h * d;   // (m, d) stride ldq
    const float *kt = k + k0 * ldk + kvh * d; // (nk, d) stride ldk
    const float *vt = v + k0 * ldk + kvh * d; // (nk, d) stride ldk
    float *ot = o + i0 * ldq + h * d;         // (m, d) stride ldq

    /* scores (m, nk) = scale * Q K^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)nk, (int)d, scale, qt,
                (int)ldq, kt, (int)ldk, 0.0f, sc, (int)nk);
    /* causal softmax row by row: row r (query position i = a0 + r) sees keys
     * max(0, i - window + 1) .. i, local columns lo .. nj-1 */
    for (int64_t r = 0; r < m; r++) {
        float *s = sc + r * nk;
        const int64_t i = a0 + r, nj = i - k0 + 1;
        const int64_t lo = window > 0 && i - window + 1 > k0 ? i - window + 1 - k0 : 0;
        if (softcap > 0.0f)
            for (int64_t j = lo; j < nj; j++) s[j] = softcap * tanhf(s[j] / softcap);
        float mx = s[lo];
        for (int64_t j = lo + 1; j < nj; j++)
            if (s[j] > mx) mx = s[j];
        double sum = 0.0;
        for (int64_t j = lo; j < nj; j++) {
            float e = expf(s[j] - mx);
            s[j] = e;
            sum += (double)e;
        }
        float inv = (float)(1.0 / sum);
        for (int64_t j = 0; j < lo; j++) s[j] = 0.0f;
        for (int64_t j = lo; j < nj; j++) s[j] = s[j] * inv;
        for (int64_t j = nj; j < nk; j++) s[j] = 0.0f;
    }
    /* O (m, d) = P (m, nk) V (nk, d) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)d, (int)nk, 1.0f, sc,
                (int)nk, vt, (int)ldk, 0.0f, ot, (int)ldq);
}

/* The tiles of nseq sequences of S queries at positions p0 .. p0 + S - 1
 * (sequence b's q/o rows b*S.., its k/v rows b*(p0+S)..), over threads. */
static int attn_tiles(cpu_ctx *c, const char *op, const float *q, const float *k,
                      const float *v, float *o, int64_t nseq, int64_t S, int64_t p0, int64_t H,
                      int64_t Hk, int64_t d, float scale, int64_t window, float softcap)
{
    fw_blas_single();
    const int64_t nqb = (S + FW_ATTN_BQ - 1) / FW_ATTN_BQ;
    const int64_t ntiles = nseq * H * nqb, Sk = p0 + S;
    int nomem = 0;
#pragma omp parallel
    {
        float *sc = malloc((size_t)FW_ATTN_BQ * (size_t)Sk * sizeof(float));
        if (!sc) {
#pragma omp atomic write
            nomem = 1;
        }
        /* Largest tiles (last query blocks) first would balance better, but
         * dynamic scheduling already does; who runs a tile never changes it. */
#pragma omp for schedule(dynamic, 1)
        for (int64_t tile = 0; tile < ntiles; tile++) {
            if (!sc) continue;
            const int64_t qb = nqb - 1 - tile % nqb; /* big tiles first */
            const int64_t h = (tile / nqb) % H, b = tile / (nqb * H);
            const int64_t i0 = qb * FW_ATTN_BQ;
            const int64_t i1 = i0 + FW_ATTN_BQ < S ? i0 + FW_ATTN_BQ : S;
            attn_tile(q + b * S * H * d, k + b * Sk * Hk * d, v + b * Sk * Hk * d,
                      o + b * S * H * d, p0, H, Hk, d, scale, window, softcap, h, i0, i1, sc);
        }
        free(sc);
    }
    if (nomem) return cpu_fail(c, GPTQ_ERR_NOMEM, "%s: out of memory for score tiles", op);
    return GPTQ_OK;
}

static int attn_check(cpu_ctx *c, const char *op, int64_t nseq, int64_t S, int64_t p0,
                      int64_t H, int64_t Hk, int64_t d, int64_t window, float softcap)
{
    if (window < 0 || !(softcap >= 0.0f && isfinite(softcap)) || p0 < 0)
        return cpu_fail(c, GPTQ_ERR_INVALID,
                        "%s: window %lld, softcap %g and p0 %lld must be >= 0 (and softcap "
                        "finite)",
                        op, (long long)window, (double)softcap, (long long)p0);
    if (nseq < 0 || S <= 0 || H <= 0 || Hk <= 0 || d <= 0 || H % Hk)
        return cpu_fail(c, GPTQ_ERR_SHAPE,
                        "%s: bad shape (nseq %lld, S %lld, H %lld, Hk %lld, d %lld; H must be a "
                        "multiple of Hk)",
                        op, (long long)nseq, (long long)S, (long long)H, (long long)Hk,
                        (long long)d);
    if (p0 + S > INT32_MAX / FW_ATTN_BQ || H * d > INT32_MAX)
        return cpu_fail(c, GPTQ_ERR_SHAPE, "%s: S or H*d too large", op);
    return GPTQ_OK;
}

int cpu_attention(void *ctx, const gptq_buf *Q, size_t q_off, // (T, H*d)
                  const gptq_buf *K, size_t k_off,            // (T, Hk*d)
                  const gptq_buf *V, size_t v_off,            // (T, Hk*d)
                  int64_t nseq, int64_t S, int64_t H, int64_t Hk, int64_t d, float scale,
                  int64_t window, float softcap,
                  gptq_buf *O, size_t o_off)                  // (T, H*d)
{
    cpu_ctx *c = ctx;
    static const char op[] = "attention";
    FW_CHECK(attn_check(c, op, nseq, S, 0, H, Hk, d, window, softcap));
    const int64_t T = nseq * S;
    FW_CHECK(cpu_range(c, Q, q_off, T * H * d, 4, op, "Q"));
    FW_CHECK(cpu_range(c, K, k_off, T * Hk * d, 4, op, "K"));
    FW_CHECK(cpu_range(c, V, v_off, T * Hk * d, 4, op, "V"));
    FW_CHECK(cpu_range(c, O, o_off, T * H * d, 4, op, "O"));
    if (T == 0) return GPTQ_OK;
    return attn_tiles(c, op, CPU_CF32(Q, q_off), CPU_CF32(K, k_off), CPU_CF32(V, v_off),
                      CPU_F32(O, o_off), nseq, S, 0, H, Hk, d, scale, window, softcap);
}

int cpu_attention_kv(void *ctx, const gptq_buf *Q, size_t q_off, // (T, H*d)
                     const gptq_buf *K, size_t k_off,            // (p0+T, Hk*d)
                     const gptq_buf *V, size_t v_off,            // (p0+T, Hk*d)
                     int64_t T, int64_t p0, int64_t H, int64_t Hk, int64_t d, float scale,
                     int64_t window, float softcap,
                     gptq_buf *O, size_t o_off)                  // (T, H*d)
{
    cpu_ctx *c = ctx;
    static const char op[] = "attention_kv";
    FW_CHECK(attn_check(c, op, 1, T, p0, H, Hk, d, window, softcap));
    FW_CHECK(cpu_range(c, Q, q_off, T * H * d, 4, op, "Q"));
    FW_CHECK(cpu_range(c, K, k_off, (p0 + T) * Hk * d, 4, op, "K"));
    FW_CHECK(cpu_range(c, V, v_off, (p0 + T) * Hk * d, 4, op, "V"));
    FW_CHECK(cpu_range(c, O, o_off, T * H * d, 4, op, "O"));
    return attn_tiles(c, op, CPU_CF32(Q, q_off), CPU_CF32(K, k_off), CPU_CF32(V, v_off),
                      CPU_F32(O, o_off), 1, T, p0, H, Hk, d, scale, window, softcap);
}

/* ------------------------------------------------------------------ */
/* elementwise                                                         */
/* ------------------------------------------------------------------ */

/* PyTorch's gelu(approximate="tanh") constants, as its kernels round them
 * to f32: kBeta = sqrt(2) * (2 / sqrt(pi)) * 0.5 = sqrt(2 / pi). */
#define GELU_BETA ((float)0.7978845608028654) /* the double M_SQRT2 * M_2_SQRTPI * 0.5 */
#define GELU_KAPPA 0.044715f

/* The activations of the gated ops. */
typedef enum { ACT_SILU, ACT_GELU_TANH } fw_act;

static inline float act(fw_act kind, float a)
{
    if (kind == ACT_SILU) return a / (1.0f + expf(-a)); /* silu(a) = a / (1 + exp(-a)) */
    /* gelu_tanh(a) = 0.5 a (1 + tanh(beta (a + kappa a^3))) */
    const float inner = GELU_BETA * (a + GELU_KAPPA * (a * a * a));
    return (0.5f * a) * (1.0f + tanhf(inner));
}

/* The gated ops: Y = act(G) * U elementwise, n elements. The activation is
 * an enum, not a function pointer, so that it stays inlined in the OpenMP
 * loop (GCC outlines the loop before it could fold a constant pointer). */
static int gated_mul(cpu_ctx *c, const char *op, fw_act kind,
                     const gptq_buf *G, size_t g_off,      // (n)
                     const gptq_buf *U, size_t u_off,      // (n)
                     int64_t n, gptq_buf *Y, size_t y_off) // (n)
{
    FW_CHECK(cpu_range(c, G, g_off, n, 4, op, "G"));
    FW_CHECK(cpu_range(c, U, u_off, n, 4, op, "U"));
    FW_CHECK(cpu_range(c, Y, y_off, n, 4, op, "Y"));
    const float *g = CPU_CF32(G, g_off), *u = CPU_CF32(U, u_off);
    float *y = CPU_F32(Y, y_off);
#pragma omp parallel for schedule(static)
    for (int64_t i0 = 0; i0 < n; i0 += FW_CHUNK) {
        const int64_t i1 = i0 + FW_CHUNK < n ? i0 + FW_CHUNK : n;
        for (int64_t i = i0; i < i1; i++) y[i] = act(kind, g[i]) * u[i];
    }
    return GPTQ_OK;
}

int cpu_silu_mul(void *ctx, const gptq_buf *G, size_t g_off, // (n)
                 const gptq_buf *U, size_t u_off,            // (n)
                 int64_t n, gptq_buf *Y, size_t y_off)       // (n)
{
    return gated_mul(ctx, "silu_mul", ACT_SILU, G, g_off, U, u_off, n, Y, y_off);
}

int cpu_gelu_tanh_mul(void *ctx, const gptq_buf *G, size_t g_off, // (n)
                      const gptq_buf *U, size_t u_off,            // (n)
                      int64_t n, gptq_buf *Y, size_t y_off)       // (n)
{
    return gated_mul(ctx, "gelu_tanh_mul", ACT_GELU_TANH, G, g_off, U, u_off, n, Y, y_off);
}

int cpu_scale(void *ctx, gptq_buf *X, size_t x_off, int64_t n, float s) // (n)
{
    cpu_ctx *c = ctx;
    FW_CHECK(cpu_range(c, X, x_off, n, 4, "scale", "X"));
    float *x = CPU_F32(X, x_off);
#pragma omp parallel for schedule(static)
    for (int64_t i0 = 0; i0 < n; i0 += FW_CHUNK) {
        const int64_t i1 = i0 + FW_CHUNK < n ? i0 + FW_CHUNK : n;
        for (int64_t i = i0; i < i1; i++) x[i] = x[i] * s;
    }
    return GPTQ_OK;
}

int cpu_softcap(void *ctx, gptq_buf *X, size_t x_off, int64_t n, float cap) // (n)
{
    cpu_ctx *c = ctx;
    static const char op[] = "softcap";
    if (!(cap > 0.0f && isfinite(cap)))
        return cpu_fail(c, GPTQ_ERR_INVALID, "%s: cap %g must be positive and finite", op,
                        (double)cap);
    FW_CHECK(cpu_range(c, X, x_off, n, 4, op, "X"));
    float *x = CPU_F32(X, x_off);
#pragma omp parallel for schedule(static)
    for (int64_t i0 = 0; i0 < n; i0 += FW_CHUNK) {
        const int64_t i1 = i0 + FW_CHUNK < n ? i0 + FW_CHUNK : n;
        for (int64_t i = i0; i < i1; i++) x[i] = cap * tanhf(x[i] / cap);
    }
    return GPTQ_OK;
}

int cpu_relu(void *ctx, gptq_buf *X, size_t x_off, int64_t n) // (n)
{
    cpu_ctx *c = ctx;
    FW_CHECK(cpu_range(c, X, x_off, n, 4, "relu", "X"));
    float *x = CPU_F32(X, x_off);
#pragma omp parallel for schedule(static)
    for (int64_t i0 = 0; i0 < n; i0 += FW_CHUNK) {
        const int64_t i1 = i0 + FW_CHUNK < n ? i0 + FW_CHUNK : n;
        for (int64_t i = i0; i < i1; i++)
            if (x[i] < 0.0f) x[i] = 0.0f;
    }
    return GPTQ_OK;
}

int cpu_add(void *ctx, const gptq_buf *A, size_t a_off, // (n)
            const gptq_buf *B, size_t b_off,            // (n)
            int64_t n, gptq_buf *Y, size_t y_off)       // (n)
{
    cpu_ctx *c = ctx;
    static const char op[] = "add";
    FW_CHECK(cpu_range(c, A, a_off, n, 4, op, "A"));
    FW_CHECK(cpu_range(c, B, b_off, n, 4, op, "B"));
    FW_CHECK(cpu_range(c, Y, y_off, n, 4, op, "Y"));
    const float *a = CPU_CF32(A, a_off), *b = CPU_CF32(B, b_off);
    float *y = CPU_F32(Y, y_off);
#pragma omp parallel for schedule(static)
    for (int64_t i0 = 0; i0 < n; i0 += FW_CHUNK) {
        const int64_t i1 = i0 + FW_CHUNK < n ? i0 + FW_CHUNK : n;
        for (int64_t i = i0; i < i1; i++) y[i] = a[i] + b[i];
    }
    return GPTQ_OK;
}

int cpu_bias_add(void *ctx, gptq_buf *X, size_t x_off, // (T, F)
                 const gptq_buf *b, size_t b_off,      // (F)
                 int64_t T, int64_t F)
{
    cpu_ctx *c = ctx;
    static const char op[] = "bias_add";
    if (T < 0 || F <= 0) return cpu_fail(c, GPTQ_ERR_SHAPE, "%s: bad T or F", op);
    FW_CHECK(cpu_range(c, X, x_off, T * F, 4, op, "X"));
    FW_CHECK(cpu_range(c, b, b_off, F, 4, op, "b"));
    float *x = CPU_F32(X, x_off);
    const float *bs = CPU_CF32(b, b_off);
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++) {
        float *xr = x + t * F;
        for (int64_t i = 0; i < F; i++) xr[i] = xr[i] + bs[i];
    }
    return GPTQ_OK;
}

/* ------------------------------------------------------------------ */
/* cross-entropy                                                       */
/* ------------------------------------------------------------------ */

int cpu_cross_entropy(void *ctx, const gptq_buf *L, size_t l_off, // (T, V)
                      const gptq_buf *tgt, size_t tgt_off,        // (T) i32
                      int64_t T, int64_t V, gptq_buf *nll, size_t nll_off) // (T) f64
{
    cpu_ctx *c = ctx;
    static const char op[] = "cross_entropy";
    if (T < 0 || V <= 0) return cpu_fail(c, GPTQ_ERR_SHAPE, "%s: bad T or V", op);
    FW_CHECK(cpu_range(c, L, l_off, T * V, 4, op, "L"));
    FW_CHECK(cpu_range(c, tgt, tgt_off, T, 4, op, "tgt"));
    FW_CHECK(cpu_range(c, nll, nll_off, T, 8, op, "nll"));
    const int32_t *tg = (const int32_t *)(const void *)tgt->data + tgt_off;
    for (int64_t t = 0; t < T; t++)
        if (tg[t] >= V)
            return cpu_fail(c, GPTQ_ERR_INVALID, "%s: target %d at row %lld is >= V = %lld", op,
                            tg[t], (long long)t, (long long)V);
    const float *lg = CPU_CF32(L, l_off);
    double *out = (double *)(void *)nll->data + nll_off;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++) {
        if (tg[t] < 0) {
            out[t] = 0.0;
            continue;
        }
        const float *r = lg + t * V;
        double mx = (double)r[0];
        for (int64_t j = 1; j < V; j++)
            if ((double)r[j] > mx) mx = (double)r[j];
        double s = 0.0;
        for (int64_t j = 0; j < V; j++) s += exp((double)r[j] - mx);
        out[t] = mx + log(s) - (double)r[tg[t]];
    }
    return GPTQ_OK;
}
