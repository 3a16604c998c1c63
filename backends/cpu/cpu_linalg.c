/*
 * cpu_linalg.c — the CPU backend's deterministic linear algebra: gemm,
 * hessian_accumulate (S += X^T X) and cholesky_inverse_upper (H -> U with
 * U^T U = H^-1).
 *
 * What makes these a reference (see also cpu_impl.h):
 *   - Every output is cut into tiles whose boundaries are compile-time
 *     constants (the LA_* sizes below), never a function of the thread count.
 *     Each tile is computed by ONE single-threaded OpenBLAS/LAPACK call (or a
 *     fixed sequence of them), so every element sees the same operations in
 *     the same order whether 1 or 64 threads run. OpenMP only hands whole
 *     tiles to threads (schedule(dynamic): who computes a tile varies, what
 *     is computed does not).
 *   - OpenBLAS must run single-threaded inside tiles: the backend's create
 *     sets openblas_set_num_threads(1), and every entry point here checks it
 *     again (cheap) because a program may have changed it since.
 *   - Steps that depend on earlier ones (the blocked Cholesky and triangular
 *     inverse) are separated by the barriers of the OpenMP loops; within a
 *     step the tiles are independent.
 * Changing a tile size changes the bytes of every result (the goldens in
 * ref/ must then be regenerated); it never changes them across thread counts.
 *
 * Layout: all matrices are row-major f32. LAPACK is called in column-major
 * mode on row-major blocks, reading a row-major lower triangle as a
 * column-major upper one (the same numbers, transposed view), so no block is
 * ever copied for LAPACKE's row-major conversion.
 */
#include <cblas.h>
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu_impl.h"

/* Tile sizes. Part of the defined arithmetic: see the header comment.
 * (Overridable with -D only to measure other sizes; a build with other
 * values gives other bytes than the goldens.) */
#ifndef LA_GEMM_TILE_M
#define LA_GEMM_TILE_M 256 /* gemm: rows of C per tile */
#endif
#ifndef LA_GEMM_TILE_N
#define LA_GEMM_TILE_N 256 /* gemm: columns of C per tile */
#endif
#ifndef LA_SYRK_TILE
#define LA_SYRK_TILE 512 /* hessian_accumulate: (T, T) tiles of S (512: measured best on the 16-core device CPU, bench/RESULTS.md) */
#endif
#ifndef LA_CHOL_NB
#define LA_CHOL_NB 256 /* cholesky/inverse: block size and tile size */
#endif

static int la_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int la_thread_num(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Tiles are computed by single-threaded BLAS calls; make sure no one turned
 * OpenBLAS's own threading back on since create. */
static void la_blas_single(void)
{
    if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
}

static void *la_alloc(size_t nbytes)
{
    size_t n = (nbytes + 63) / 64 * 64;
    return aligned_alloc(64, n ? n : 64);
}

/* Check that a (rows, cols) row-major view with leading dimension ld at
 * element offset off lies inside buffer b, and that BLAS's int can hold it. */
static int la_check_view(cpu_ctx *cx, const char *op, const char *what, const gptq_buf *b,
                         size_t off, int64_t rows, int64_t cols, int64_t ld)
{
    if (!b || (!b->data && b->nbytes))
        return cpu_fail(cx, GPTQ_ERR_INVALID, "%s: buffer %s is NULL", op, what);
    if (rows < 0 || cols < 0 || rows > INT_MAX || cols > INT_MAX)
        return cpu_fail(cx, GPTQ_ERR_INVALID, "%s: %s has bad shape (%lld, %lld)", op, what,
                        (long long)rows, (long long)cols);
    if (ld < (cols > 1 ? cols : 1) || ld > INT_MAX)
        return cpu_fail(cx, GPTQ_ERR_INVALID,
                        "%s: %s leading dimension %lld is not in [max(1, cols=%lld), INT_MAX]", op,
                        what, (long long)ld, (long long)cols);
    if (rows == 0 || cols == 0) return GPTQ_OK;
    size_t nel = b->nbytes / sizeof(float);
    uint64_t avail = off <= nel ? (uint64_t)(nel - off) : 0;
    if (off > nel || (uint64_t)cols > avail ||
        (uint64_t)(rows - 1) > (avail - (uint64_t)cols) / (uint64_t)ld)
        return cpu_fail(cx, GPTQ_ERR_INVALID,
                        "%s: %s view (%lld x %lld, ld %lld) at element offset %zu runs past the "
                        "buffer (%zu f32 elements)",
                        op, what, (long long)rows, (long long)cols, (long long)ld, off, nel);
    return GPTQ_OK;
}

/* ------------------------------------------------------------------------
 * gemm
 * ---------------------------------------------------------------------- */

/* C = alpha * op(A) op(B) + beta * C over fixed (LA_GEMM_TILE_M,
 * LA_GEMM_TILE_N) tiles of C, one single-threaded sgemm over the full K per
 * tile. C must not overlap A or B. */
int cpu_gemm(void *ctx, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
             const gptq_buf *A, size_t a_off, int64_t lda, // op(A) (M, K) f32
             const gptq_buf *B, size_t b_off, int64_t ldb, // op(B) (K, N) f32
             float beta, gptq_buf *C, size_t c_off, int64_t ldc) // (M, N) f32
{
    cpu_ctx *cx = ctx;
    if (M < 0 || N < 0 || K < 0)
        return cpu_fail(cx, GPTQ_ERR_INVALID, "gemm: negative dimension (M=%lld, N=%lld, K=%lld)",
                        (long long)M, (long long)N, (long long)K);
    int st = la_check_view(cx, "gemm", "A", A, a_off, trans_a ? K : M, trans_a ? M : K, lda);
    if (st) return st;
    st = la_check_view(cx, "gemm", "B", B, b_off, trans_b ? N : K, trans_b ? K : N, ldb);
    if (st) return st;
    st = la_check_view(cx, "gemm", "C", C, c_off, M, N, ldc);
    if (st) return st;
    if (M == 0 || N == 0) return GPTQ_OK;
    la_blas_single();

    const float *a = CPU_CF32(A, a_off);
    const float *b = CPU_CF32(B, b_off);
    float *c = CPU_F32(C, c_off);
    const enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
    const enum CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
    const int64_t ntm = (M + LA_GEMM_TILE_M - 1) / LA_GEMM_TILE_M;
    const int64_t ntn = (N + LA_GEMM_TILE_N - 1) / LA_GEMM_TILE_N;
    const int64_t ntiles = ntm * ntn;

#pragma omp parallel for schedule(dynamic, 1) if (ntiles > 1)
    for (int64_t t = 0; t < ntiles; t++) {
        int64_t i0 = (t / ntn) * LA_GEMM_TILE_M;
        int64_t j0 = (t % ntn) * LA_GEMM_TILE_N;
        int64_t mi = M - i0 < LA_GEMM_TILE_M ? M - i0 : LA_GEMM_TILE_M;
        int64_t nj = N - j0 < LA_GEMM_TILE_N ? N - j0 : LA_GEMM_TILE_N;
        /* rows i0.. of op(A): rows of A, or columns of A when transposed */
        const float *at = trans_a ? a + i0 : a + i0 * lda;
        /* columns j0.. of op(B): columns of B, or rows of B when transposed */
        const float *bt = trans_b ? b + j0 * ldb : b + j0;
        cblas_sgemm(CblasRowMajor, ta, tb, (int)mi, (int)nj, (int)K, alpha, at, (int)lda, bt,
                    (int)ldb, beta, c + i0 * ldc + j0, (int)ldc);
    }
    return GPTQ_OK;
}

/* ------------------------------------------------------------------------
 * hessian_accumulate
 * ---------------------------------------------------------------------- */

/* S += X^T X. Only the tiles on and above the diagonal are computed: tile
 * (I, J), I <= J, is T = X[:, I]^T X[:, J] over all n rows in one
 * single-threaded call (ssyrk on the diagonal, sgemm elsewhere) into a
 * per-thread scratch tile, then added to S[I, J] and, transposed, to S[J, I].
 * So both triangles receive the same T values (S stays exactly symmetric when
 * it starts symmetric) and the result is S + fl(X^T X), whatever S held. */
int cpu_hessian_accumulate(void *ctx, gptq_buf *S, // (C, C) f32
                           const gptq_buf *X, size_t x_off, // (n, C) f32
                           int64_t n, int64_t C)
{
    cpu_ctx *cx = ctx;
    if (n < 0 || C < 0)
        return cpu_fail(cx, GPTQ_ERR_INVALID, "hessian_accumulate: negative n=%lld or C=%lld",
                        (long long)n, (long long)C);
    int st = la_check_view(cx, "hessian_accumulate", "S", S, 0, C, C, C > 0 ? C : 1);
    if (st) return st;
    st = la_check_view(cx, "hessian_accumulate", "X", X, x_off, n, C, C > 0 ? C : 1);
    if (st) return st;
    if (n == 0 || C == 0) return GPTQ_OK;
    la_blas_single();

    const int64_t T = LA_SYRK_TILE;
    const int64_t nt = (C + T - 1) / T;
    const int64_t ntiles = nt * (nt + 1) / 2;
    /* Tile list, off-diagonal (full sgemm) tiles first and diagonal (half the
     * work) last, so the dynamic schedule ends on small pieces. The order
     * only affects speed: tiles are independent. */
    int32_t *tiles = la_alloc((size_t)ntiles * 2 * sizeof(int32_t));
    int nthr = la_max_threads();
    float *scratch = la_alloc((size_t)nthr * (size_t)(T * T) * sizeof(float));
    if (!tiles || !scratch) {
        free(tiles);
        free(scratch);
        return cpu_fail(cx, GPTQ_ERR_NOMEM,
                        "hessian_accumulate: out of memory for %d scratch tiles", nthr);
    }
    int64_t k = 0;
    for (int64_t bi = 0; bi < nt; bi++)
        for (int64_t bj = bi + 1; bj < nt; bj++) {
            tiles[2 * k] = (int32_t)bi;
            tiles[2 * k + 1] = (int32_t)bj;
            k++;
        }
    for (int64_t bi = 0; bi < nt; bi++) {
        tiles[2 * k] = (int32_t)bi;
        tiles[2 * k + 1] = (int32_t)bi;
        k++;
    }

    const float *x = CPU_CF32(X, x_off);
    float *s = CPU_F32(S, 0);
#pragma omp parallel for schedule(dynamic, 1) if (ntiles > 1)
    for (int64_t t = 0; t < ntiles; t++) {
        int64_t i0 = tiles[2 * t] * T, j0 = tiles[2 * t + 1] * T;
        int64_t mi = C - i0 < T ? C - i0 : T;
        int64_t mj = C - j0 < T ? C - j0 : T;
        float *tt = scratch + (size_t)la_thread_num() * (size_t)(T * T); // (mi, mj), ld mj
        if (i0 == j0) {
            cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)mi, (int)n, 1.0f, x + i0,
                        (int)C, 0.0f, tt, (int)mj);
            for (int64_t a = 0; a < mi; a++) {
                float *srow = s + (i0 + a) * C + i0;
                const float *trow = tt + a * mj;
                for (int64_t b = a; b < mj; b++) srow[b] += trow[b];
            }
            /* lower part of the diagonal tile: S[i0+b][i0+a] += T[a][b], b > a */
            for (int64_t b = 1; b < mi; b++) {
                float *srow = s + (i0 + b) * C + i0;
                for (int64_t a = 0; a < b; a++) srow[a] += tt[a * mj + b];
            }
        } else {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)mi, (int)mj, (int)n, 1.0f,
                        x + i0, (int)C, x + j0, (int)C, 0.0f, tt, (int)mj);
            for (int64_t a = 0; a < mi; a++) {
                float *srow = s + (i0 + a) * C + j0;
                const float *trow = tt + a * mj;
                for (int64_t b = 0; b < mj; b++) srow[b] += trow[b];
            }
            for (int64_t b = 0; b < mj; b++) {
                float *srow = s + (j0 + b) * C + i0;
                for (int64_t a = 0; a < mi; a++) srow[a] += tt[a * mj + b];
            }
        }
    }
    free(tiles);
    free(scratch);
    return GPTQ_OK;
}

/* ------------------------------------------------------------------------
 * cholesky_inverse_upper
 *
 * With J the reversal permutation: factor A = J H J = M M^T (M lower). Then
 * R = J M J is upper with H = R R^T, and U = R^-1 = J M^-1 J is upper with
 * U^T U = R^-T R^-1 = H^-1, so U is the upper Cholesky factor of H^-1 (by
 * uniqueness) without forming H^-1. For a row-major C x C array, J H J is
 * the array read backwards, so the reversal is an in-place flip of the
 * C*C elements. Steps: flip, blocked lower Cholesky, blocked lower
 * triangular inverse, flip back, zero the strict lower part.
 * ---------------------------------------------------------------------- */

/* Reverse the n elements of a in place. */
static void la_flip(float *a, int64_t n)
{
    int64_t half = n / 2;
#pragma omp parallel for schedule(static) if (half > 65536)
    for (int64_t p = 0; p < half; p++) {
        float v = a[p];
        a[p] = a[n - 1 - p];
        a[n - 1 - p] = v;
    }
}

/* Size of block `blk` of an n-long axis cut into LA_CHOL_NB-blocks. */
static int64_t la_bs(int64_t blk, int64_t n)
{
    int64_t r = n - blk * LA_CHOL_NB;
    return r < LA_CHOL_NB ? r : LA_CHOL_NB;
}

/* In place on the lower triangle of a (n, n), ld n, cut into (NB, NB)
 * tiles: first the Cholesky factor a = L L^T, then a = L^-1. The strict
 * upper part is left as it was. Returns -1 on success, else the 0-based
 * column whose pivot was not positive (or not finite).
 *
 * Both run as one OpenMP task graph over tiles (tiled algorithms as in
 * PLASMA), so the factorization of one block column overlaps the updates
 * of the previous one and the inverse starts on finished tiles. Each task
 * is one single-threaded BLAS/LAPACK call on whole tiles, and `depend`
 * on the tile it writes orders every tile's operations as they are
 * created below: the arithmetic of every element is fixed by this code
 * and NB, not by which thread runs what or when.
 *
 * Cholesky, step k:  L_kk = chol(A_kk);  A_mk = A_mk L_kk^-T (m > k);
 *                    A_mm -= A_mk A_mk^T;  A_mj -= A_mk A_jk^T (k < j < m).
 * Inverse, step k (left to right, in place; with a 2x2 block check:
 * [[a,0],[b,c]] -> [[1/a,0],[-b/(ac),1/c]]):
 *                    A_mk = -A_mk A_kk^-1 (m > k);  A_mj += A_mk A_kj
 *                    (m > k > j);  A_kj = A_kk^-1 A_kj (j < k);
 *                    A_kk = A_kk^-1. */
static int64_t la_chol_inv_lower(float *a, int64_t n)
{
    const int64_t NB = LA_CHOL_NB;
    const int64_t nt = (n + NB - 1) / NB;
    const int ld = (int)n;
    /* dependence tokens: one byte per tile, only their addresses matter */
    char *dep = calloc((size_t)(nt * nt), 1);
    if (!dep) return -2;
    int64_t bad = -1; /* first failing column; written by one potrf task */
    int failed = 0;   /* once set, the remaining tasks do nothing */
#define LA_T(bi, bj) (a + (bi) * NB * n + (bj) * NB)
#define LA_FAILED(f) __atomic_load_n(&(f), __ATOMIC_RELAXED)
#pragma omp parallel
#pragma omp single
    {
        for (int64_t k = 0; k < nt; k++) {
            const int kb = (int)la_bs(k, n);
#pragma omp task default(shared) firstprivate(k, kb) depend(inout : dep[k * nt + k])
            if (!LA_FAILED(failed)) {
                float *akk = LA_T(k, k);
                /* the row-major lower tile is the column-major upper one */
                lapack_int info = LAPACKE_spotrf_work(LAPACK_COL_MAJOR, 'U', kb, akk, ld);
                int64_t col = info > 0 ? k * NB + info - 1 : info < 0 ? k * NB : -1;
                /* OpenBLAS's potrf tests `pivot <= 0`, which a NaN passes */
                for (int64_t d = 0; col < 0 && d < kb; d++)
                    if (!(akk[d * n + d] > 0.0f) || !isfinite(akk[d * n + d])) col = k * NB + d;
                if (col >= 0) {
                    bad = col;
                    __atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
                }
            }
            for (int64_t m = k + 1; m < nt; m++) {
#pragma omp task default(shared) firstprivate(k, m, kb) depend(in : dep[k * nt + k]) \
    depend(inout : dep[m * nt + k])
                if (!LA_FAILED(failed))
                    cblas_strsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit,
                                (int)la_bs(m, n), kb, 1.0f, LA_T(k, k), ld, LA_T(m, k), ld);
            }
            for (int64_t m = k + 1; m < nt; m++) {
                const int mb = (int)la_bs(m, n);
#pragma omp task default(shared) firstprivate(k, m, kb, mb) depend(in : dep[m * nt + k]) \
    depend(inout : dep[m * nt + m])
                if (!LA_FAILED(failed))
                    cblas_ssyrk(CblasRowMajor, CblasLower, CblasNoTrans, mb, kb, -1.0f, LA_T(m, k),
                                ld, 1.0f, LA_T(m, m), ld);
                for (int64_t j = k + 1; j < m; j++) {
#pragma omp task default(shared) firstprivate(k, m, j, kb, mb) \
    depend(in : dep[m * nt + k], dep[j * nt + k]) depend(inout : dep[m * nt + j])
                    if (!LA_FAILED(failed))
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mb, NB, kb, -1.0f,
                                    LA_T(m, k), ld, LA_T(j, k), ld, 1.0f, LA_T(m, j), ld);
                }
            }
        }
        for (int64_t k = 0; k < nt; k++) {
            const int kb = (int)la_bs(k, n);
            for (int64_t m = k + 1; m < nt; m++) {
#pragma omp task default(shared) firstprivate(k, m, kb) depend(in : dep[k * nt + k]) \
    depend(inout : dep[m * nt + k])
                if (!LA_FAILED(failed))
                    cblas_strsm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit,
                                (int)la_bs(m, n), kb, -1.0f, LA_T(k, k), ld, LA_T(m, k), ld);
            }
            for (int64_t m = k + 1; m < nt; m++)
                for (int64_t j = 0; j < k; j++) {
#pragma omp task default(shared) firstprivate(k, m, j, kb) \
    depend(in : dep[m * nt + k], dep[k * nt + j]) depend(inout : dep[m * nt + j])
                    if (!LA_FAILED(failed))
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)la_bs(m, n),
                                    NB, kb, 1.0f, LA_T(m, k), ld, LA_T(k, j), ld, 1.0f,
                                    LA_T(m, j), ld);
                }
            for (int64_t j = 0; j < k; j++) {
#pragma omp task default(shared) firstprivate(k, j, kb) depend(in : dep[k * nt + k]) \
    depend(inout : dep[k * nt + j])
                if (!LA_FAILED(failed))
                    cblas_strsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit,
                                kb, NB, 1.0f, LA_T(k, k), ld, LA_T(k, j), ld);
            }
#pragma omp task default(shared) firstprivate(k, kb) depend(inout : dep[k * nt + k])
            if (!LA_FAILED(failed)) {
                /* after a successful potrf the diagonal is > 0: info > 0
                 * (an exact zero) cannot happen; treat it as a failure */
                lapack_int info =
                    LAPACKE_strtri_work(LAPACK_COL_MAJOR, 'U', 'N', kb, LA_T(k, k), ld);
                if (info != 0) {
                    bad = k * NB + (info > 0 ? info - 1 : 0);
                    __atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
                }
            }
        }
    } /* the implicit barriers wait for every task */
#undef LA_T
#undef LA_FAILED
    free(dep);
    return failed ? bad : -1;
}

int cpu_cholesky_inverse_upper(void *ctx, gptq_buf *H, // (C, C) f32, in place
                               int64_t C, int64_t *bad_col)
{
    cpu_ctx *cx = ctx;
    if (bad_col) *bad_col = -1;
    if (C < 0)
        return cpu_fail(cx, GPTQ_ERR_INVALID, "cholesky_inverse_upper: negative C=%lld",
                        (long long)C);
    int st = la_check_view(cx, "cholesky_inverse_upper", "H", H, 0, C, C, C > 0 ? C : 1);
    if (st) return st;
    if (C == 0) return GPTQ_OK;
    la_blas_single();

    float *h = CPU_F32(H, 0);
    const int64_t nel = C * C;
    /* Reject NaN/Inf up front: potrf would not stop on a NaN. The first bad
     * element in memory order is reported, whatever the thread count. */
    int64_t first_bad = nel;
#pragma omp parallel for schedule(static) reduction(min : first_bad)
    for (int64_t r = 0; r < C; r++)
        for (int64_t c = 0; c < C; c++)
            if (!isfinite(h[r * C + c])) {
                if (r * C + c < first_bad) first_bad = r * C + c;
                break;
            }
    if (first_bad < nel) {
        if (bad_col) *bad_col = first_bad % C;
        return cpu_fail(cx, GPTQ_ERR_NUMERIC,
                        "cholesky_inverse_upper: H (%lld x %lld) holds %g at (%lld, %lld)",
                        (long long)C, (long long)C, (double)h[first_bad],
                        (long long)(first_bad / C), (long long)(first_bad % C));
    }

    la_flip(h, nel); /* h = J H J; its lower triangle is H's upper one */
    int64_t bad = la_chol_inv_lower(h, C);
    if (bad == -2)
        return cpu_fail(cx, GPTQ_ERR_NOMEM, "cholesky_inverse_upper: out of memory (C=%lld)",
                        (long long)C);
    if (bad >= 0) {
        /* column q of J H J is column C-1-q of H: the trailing block
         * H[C-1-q:, C-1-q:] is where positive definiteness fails */
        int64_t col = C - 1 - bad;
        if (bad_col) *bad_col = col;
        return cpu_fail(cx, GPTQ_ERR_NUMERIC,
                        "cholesky_inverse_upper: H (%lld x %lld) is not positive definite: the "
                        "factorization failed at column %lld (the trailing block from there is "
                        "not positive definite)",
                        (long long)C, (long long)C, (long long)col);
    }
    la_flip(h, nel); /* h = J M^-1 J: upper; its strict lower part is leftover input */

    /* zero the strict lower part; find the first non-finite entry of U (an
     * inverse that overflowed: H too close to singular for f32) */
    first_bad = nel;
#pragma omp parallel for schedule(static) reduction(min : first_bad)
    for (int64_t r = 0; r < C; r++) {
        float *row = h + r * C;
        memset(row, 0, (size_t)r * sizeof(float));
        for (int64_t c = r; c < C; c++)
            if (!isfinite(row[c])) {
                if (r * C + c < first_bad) first_bad = r * C + c;
                break;
            }
    }
    if (first_bad < nel) {
        if (bad_col) *bad_col = first_bad % C;
        return cpu_fail(cx, GPTQ_ERR_NUMERIC,
                        "cholesky_inverse_upper: H (%lld x %lld) is too close to singular: U "
                        "overflows at (%lld, %lld)",
                        (long long)C, (long long)C, (long long)(first_bad / C),
                        (long long)(first_bad % C));
    }
    return GPTQ_OK;
}

/* ------------------------------------------------------------------------
 * hessian_finish, dot, dead_columns: the layer solve's host arithmetic
 * ---------------------------------------------------------------------- */

int cpu_hessian_finish(void *ctx, const gptq_buf *S, // (C, C) f32
                       gptq_buf *H,                  // (C, C) f32 or NULL
                       int64_t C, float scale, float lambda, float *diag)
{
    cpu_ctx *cx = ctx;
    if (C <= 0)
        return cpu_fail(cx, GPTQ_ERR_INVALID, "hessian_finish: C=%lld", (long long)C);
    int st = la_check_view(cx, "hessian_finish", "S", S, 0, C, C, C);
    if (!st && H) st = la_check_view(cx, "hessian_finish", "H", H, 0, C, C, C);
    if (st) return st;
    if (H == S) return cpu_fail(cx, GPTQ_ERR_INVALID, "hessian_finish: H must not be S");
    const float *s = CPU_CF32(S, 0);
    if (diag)
        for (int64_t i = 0; i < C; i++) diag[i] = s[i * C + i] * scale;
    if (!H) return GPTQ_OK;
    float *h = CPU_F32(H, 0);
#pragma omp parallel for schedule(static) if (C > 1024)
    for (int64_t i = 0; i < C; i++) {
        for (int64_t j = 0; j < C; j++) h[i * C + j] = s[i * C + j] * scale;
        h[i * C + i] += lambda;
    }
    return GPTQ_OK;
}

/* Row r of dot: its C terms summed in column order. */
static double dot_row(const float *a, const float *b, const float *d, int64_t r, int64_t C)
{
    double s = 0.0;
    for (int64_t j = r * C; j < (r + 1) * C; j++) {
        const double dj = d ? (double)d[j] : 0.0;
        s += ((double)a[j] - dj) * ((double)b[j] - dj);
    }
    return s;
}

int cpu_dot(void *ctx, const gptq_buf *A, const gptq_buf *B, const gptq_buf *D, // (R, C) f32
            int64_t R, int64_t C, double *out)
{
    cpu_ctx *cx = ctx;
    *out = 0.0;
    if (R < 0 || C < 0)
        return cpu_fail(cx, GPTQ_ERR_INVALID, "dot: shape (%lld, %lld)", (long long)R,
                        (long long)C);
    int st = la_check_view(cx, "dot", "A", A, 0, R, C, C > 0 ? C : 1);
    if (!st) st = la_check_view(cx, "dot", "B", B, 0, R, C, C > 0 ? C : 1);
    if (!st && D) st = la_check_view(cx, "dot", "D", D, 0, R, C, C > 0 ? C : 1);
    if (st) return st;
    /* rows in parallel into partials, then the partials in order: the same
     * sum for any thread count */
    double *part = la_alloc((size_t)(R > 0 ? R : 1) * sizeof(double));
    if (!part) return cpu_fail(cx, GPTQ_ERR_NOMEM, "dot: out of memory (%lld rows)", (long long)R);
    const float *a = CPU_CF32(A, 0), *b = CPU_CF32(B, 0), *d = D ? CPU_CF32(D, 0) : NULL;
#pragma omp parallel for schedule(static) if (R * C > (1 << 20))
    for (int64_t r = 0; r < R; r++) part[r] = dot_row(a, b, d, r, C);
    double t = 0.0;
    for (int64_t r = 0; r < R; r++) t += part[r];
    free(part);
    *out = t;
    return GPTQ_OK;
}

int cpu_dead_columns(void *ctx, gptq_buf *H, // (C, C) f32
                     gptq_buf *W,            // (R, C) f32
                     int64_t R, int64_t C)
{
    cpu_ctx *cx = ctx;
    if (R <= 0 || C <= 0)
        return cpu_fail(cx, GPTQ_ERR_INVALID, "dead_columns: shape (%lld, %lld)", (long long)R,
                        (long long)C);
    int st = la_check_view(cx, "dead_columns", "H", H, 0, C, C, C);
    if (!st) st = la_check_view(cx, "dead_columns", "W", W, 0, R, C, C);
    if (st) return st;
    float *h = CPU_F32(H, 0), *w = CPU_F32(W, 0);
    for (int64_t i = 0; i < C; i++)
        if (h[i * C + i] == 0.0f) {
            h[i * C + i] = 1.0f;
            for (int64_t r = 0; r < R; r++) w[r * C + i] = 0.0f;
        }
    return GPTQ_OK;
}
