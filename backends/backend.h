/*
 * backend.h — the backend vtable: the only thing a backend and the core
 * share. A backend fills one `gptq_backend_iface` with designated
 * initializers and exports it through one entry symbol:
 *
 *     const gptq_backend_iface *gptq_backend_entry(void);
 *
 * (the CPU backend is linked in and reached as gptq_cpu_backend_iface()).
 * The core checks `abi_version` and `struct_size` before it calls anything
 * and reports both numbers on a mismatch.
 *
 * Rules every slot follows
 *   - The backend context comes first; it is what `create` returned.
 *   - Return GPTQ_OK or a negative gptq_status (gptq.h). On failure the
 *     backend's `error(ctx)` explains it. No exit(), no abort().
 *   - Memory crosses only through alloc/upload/download/copy: the core never
 *     dereferences a gptq_buf. Offsets and sizes are in BYTES for those four
 *     and in ELEMENTS everywhere else (`*_off` arguments).
 *   - All matrices are row-major; a shape comment follows every buffer:
 *     `// (rows, cols) f32`. Letters: R rows of W (out features), C columns
 *     of W (in features), n calibration rows (tokens), T tokens of a forward
 *     batch, D hidden size, B block width.
 *   - Optional slots are marked OPTIONAL with what the core does when NULL.
 *
 * Determinism: the CPU backend's results are a pure function of its inputs
 * (the same bytes for every thread count). Other backends are measured
 * against it (tools and tests diff them), not required to match bit for bit.
 */
#ifndef GPTQ_BACKEND_H
#define GPTQ_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "gptq.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bump on any change of this struct or of a slot's meaning. */
/* 2: linear_fast; 3: the packed-tensor ops; 4: one layer solve (dot by rows,
 * dead_columns, w_hat left in W; hessian_finish and dot required) and
 * supports_op (a backend may decline an op at run time); 5: rope's rot (partial
 * rotary), attention's window and softcap; 6: gelu_tanh_mul, scale, softcap (Gemma)
 * and matmul_q_fast (the fast A16 matmul, summed in an order of the backend's
 * choosing); attention_kv (queries against a KV cache, for generation) */
#define GPTQ_BACKEND_ABI_VERSION 6u
#define GPTQ_BACKEND_ENTRY_SYMBOL "gptq_backend_entry"

typedef struct gptq_buf gptq_buf; /* defined by each backend */

/* Quantization grid parameters (per output row, per group). */
typedef struct gptq_grid_params {
    int bits;             /* maxq = 2^bits - 1 */
    int sym;
    int mse;              /* 0: min/max grid; 1: shrink search */
    float mse_norm;       /* 2.4 */
    int mse_grid;         /* 100 */
    float mse_maxshrink;  /* 0.8 */
} gptq_grid_params;

/* One block of the GPTQ solve: quantize columns [j0, j0+nb) of W in order,
 * feeding each column's error back into the later columns of the block.
 * For column j (R rows independent of each other):
 *   if (!grid_given && j % group_size == 0):
 *       grid of group gidx[j] from the CURRENT W[:, j : j+group_size)
 *       (the block is a multiple of the group or the group a multiple of
 *       the block, so those columns are up to date)
 *   s, z  = scale/zero of group gidx[j]
 *   q     = clamp(rint(w/s) + z, 0, maxq)        (round half to even)
 *   w_hat = s * (q - z)
 *   e     = (w - w_hat) / U[j, j]
 *   W[:, j+1 : j0+nb) -= e * U[j, j+1 : j0+nb)
 *   W[:, j] = w_hat;  Err[:, j-j0] = e;  loss[r] += (w - w_hat)^2 / U[j,j]^2 / 2
 * (after the last block W holds the dequantized weight, f32 scales).
 * The core then applies W[:, j0+nb:] -= Err * U[j0:j0+nb, j0+nb:] (gemm).
 * RTN is this op with U = I. */
typedef struct gptq_block_args {
    gptq_buf *W;            /* (R, C) f32; columns of the block become w_hat */
    int64_t R, C;
    const gptq_buf *U;      /* (C, C) f32 upper: U^T U = H^-1; NULL = identity
                               (RTN: no error feedback, U_jj = 1) */
    int64_t j0, nb;         /* block columns [j0, j0+nb) */
    int64_t group_size;     /* columns per group; C when one group */
    int grid_given;         /* 1: scale/zero already hold every group's grid */
    const gptq_buf *gidx;   /* (C) i32: group of quantization position j */
    gptq_buf *scale;        /* (ngroups, R) f32 */
    gptq_buf *zero;         /* (ngroups, R) f32, integral values */
    gptq_buf *codes;        /* (R, C) u8, quantization order */
    gptq_buf *Err;          /* (R, nb) f32 */
    gptq_buf *loss;         /* (R) f64, accumulated */
    gptq_grid_params grid;
} gptq_block_args;

/* A GPTQ-packed linear on the device, the checkpoint's four tensors as
 * stored (src/format/pack.c states the layout):
 *   qweight (K*bits/32, N) i32: for each output n, the K codes of row n of W
 *           are one little-endian bit stream down column n (code k at stream
 *           bits bits*k .. bits*k+bits-1; stream bit t in bit t%32 of word
 *           t/32; 3-bit codes may straddle two words)
 *   qzeros  (ngroups, N*bits/32) i32: each group's N zeros one stream along
 *           the row; zero = field + zero_add (v1 "gptq": 1, v2: 0)
 *   scales  (ngroups, N) fp16 bits (u16)
 *   g_idx   (K) i32: group of input column k, in [0, ngroups) (the core
 *           checks that before it calls; a kernel must still not read
 *           outside the buffers)
 * bits is 2, 3, 4 or 8; K and N are multiples of 32/bits (32 for 3 bits). */
typedef struct gptq_qtensor {
    const gptq_buf *qweight, *qzeros, *scales, *g_idx;
    int bits;
    int zero_add;
    int64_t K, N, ngroups;
} gptq_qtensor;

/* The compute ops of the table, one per slot after the memory ones. The core
 * asks gptq_be_supports (src/internal.h) before it takes a path that needs
 * an OPTIONAL op, instead of looking at slots itself. Adding an op: one entry
 * here, its slot below, its line in k_ops (src/backend.c), the CPU backend's
 * version, and rows in tests/backend_ops_cases.c. */
typedef enum gptq_op {
    GPTQ_OP_GEMM = 0,
    GPTQ_OP_HESSIAN_ACCUMULATE,
    GPTQ_OP_CHOLESKY_INVERSE_UPPER,
    GPTQ_OP_QUANT_GRID,
    GPTQ_OP_GPTQ_BLOCK,
    GPTQ_OP_EMBEDDING,
    GPTQ_OP_RMSNORM,
    GPTQ_OP_LAYERNORM,
    GPTQ_OP_ROPE,
    GPTQ_OP_ATTENTION,
    GPTQ_OP_SILU_MUL,
    GPTQ_OP_RELU,
    GPTQ_OP_ADD,
    GPTQ_OP_BIAS_ADD,
    GPTQ_OP_CROSS_ENTROPY,
    GPTQ_OP_LINEAR_FAST,
    GPTQ_OP_HESSIAN_FINISH,
    GPTQ_OP_DOT,
    GPTQ_OP_PACK_CODES,
    GPTQ_OP_DEQUANTIZE,
    GPTQ_OP_MATMUL_Q,
    GPTQ_OP_GATHER,
    GPTQ_OP_TO_F32,
    GPTQ_OP_DEAD_COLUMNS,
    GPTQ_OP_GELU_TANH_MUL,
    GPTQ_OP_SCALE,
    GPTQ_OP_SOFTCAP,
    GPTQ_OP_MATMUL_Q_FAST,
    GPTQ_OP_ATTENTION_KV,
    GPTQ_OP_COUNT
} gptq_op;

typedef struct gptq_backend_iface {
    uint32_t abi_version;   /* GPTQ_BACKEND_ABI_VERSION the backend was built with */
    uint32_t struct_size;   /* sizeof(gptq_backend_iface) it was built with */
    const char *name;       /* "cpu", "hip" */
    const char *description;

    /* ---- lifecycle ---- */
    int (*create)(void **ctx);
    void (*destroy)(void *ctx);
    const char *(*error)(void *ctx); /* message of the last failure */

    /* ---- memory (offsets and sizes in bytes) ---- */
    int (*alloc)(void *ctx, size_t nbytes, gptq_buf **out); /* zero-filled */
    void (*free)(void *ctx, gptq_buf *b);
    int (*upload)(void *ctx, gptq_buf *dst, size_t dst_off, const void *src, size_t nbytes);
    int (*download)(void *ctx, const gptq_buf *src, size_t src_off, void *dst, size_t nbytes);
    int (*copy)(void *ctx, gptq_buf *dst, size_t dst_off, const gptq_buf *src,
                size_t src_off, size_t nbytes);
    int (*sync)(void *ctx);
    /* OPTIONAL: bytes free on the device (NULL: unknown, the core assumes
     * enough and relies on alloc failing cleanly). */
    int (*mem_info)(void *ctx, size_t *free_bytes, size_t *total_bytes);

    /* ---- linear algebra (f32, offsets in elements) ---- */
    /* C = alpha * op(A) op(B) + beta * C; op(A) (M, K), op(B) (K, N), C (M, N) */
    int (*gemm)(void *ctx, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                float alpha, const gptq_buf *A, size_t a_off, int64_t lda,
                const gptq_buf *B, size_t b_off, int64_t ldb, float beta,
                gptq_buf *C, size_t c_off, int64_t ldc);
    /* S += X^T X over the whole (C, C) matrix (both triangles written).
     * X (n, C) f32 at x_off; S (C, C) f32. */
    int (*hessian_accumulate)(void *ctx, gptq_buf *S, const gptq_buf *X, size_t x_off,
                              int64_t n, int64_t C);
    /* In place: H (C, C) SPD -> U upper with U^T U = H^-1 (strict lower
     * part zeroed). Not positive definite: GPTQ_ERR_NUMERIC, *bad_col set
     * to the failing column (0-based); H is then undefined. */
    int (*cholesky_inverse_upper)(void *ctx, gptq_buf *H, int64_t C, int64_t *bad_col);
    /* grid of one group for every row: columns [c0, c0+g) of W (R, C) f32
     * -> scale[group, :], zero[group, :] of (ngroups, R) f32 buffers. */
    int (*quant_grid)(void *ctx, const gptq_buf *W, int64_t R, int64_t C, int64_t c0,
                      int64_t g, int64_t group, gptq_buf *scale, gptq_buf *zero,
                      const gptq_grid_params *p);
    int (*gptq_block)(void *ctx, const gptq_block_args *a);

    /* ---- BEGIN FORWARD OPS (model pipeline) ---- */
    /* The decoder layers of src/model/forward.c are built from these and
     * `gemm` (a Linear: Y (T, out) = X (T, in) W^T, W (out, in) row-major,
     * i.e. gemm(0, 1, T, out, in, 1, X, in, W, in, 0, Y, out)).
     * Letters: T tokens of the batch (nseq sequences of S tokens, stored
     * sequence after sequence: row t = seq * S + position), D hidden size,
     * V vocabulary, F feature width, H query heads, Hk key/value heads
     * (H % Hk == 0: query head h reads KV head h / (H / Hk)), d head_dim.
     * Every buffer is f32 unless said; ids and positions are i32 buffers.
     * Unless a slot says otherwise, outputs must not alias inputs. */

    /* Y[t, :] = E[ids[t], :] (accumulate 0) or Y[t, :] += E[ids[t], :]
     * (accumulate 1: learned position embeddings added to token ones).
     * ids (T) i32; E (V, D); Y (T, D). An id outside [0, V): GPTQ_ERR_INVALID. */
    int (*embedding)(void *ctx, const gptq_buf *ids, size_t ids_off, int64_t T,
                     const gptq_buf *E, size_t e_off, int64_t V, int64_t D,
                     gptq_buf *Y, size_t y_off, int accumulate);
    /* RMSNorm (Llama): r = 1 / sqrt(mean_i(x_i^2) + eps) (mean in double,
     * r rounded to f32), y_i = w_i * (x_i * r).
     * X (T, D); w (D); Y (T, D) (may be X: in place). */
    int (*rmsnorm)(void *ctx, const gptq_buf *X, size_t x_off, const gptq_buf *w, size_t w_off,
                   int64_t T, int64_t D, float eps, gptq_buf *Y, size_t y_off);
    /* LayerNorm (OPT): mu = mean(x), var = mean((x - mu)^2) (biased; both
     * in double), y_i = ((x_i - mu) * r) * w_i + b_i with r = 1/sqrt(var+eps)
     * in f32. w (D) or NULL (1), b (D) or NULL (0). X (T, D); Y (T, D) (may be X). */
    int (*layernorm)(void *ctx, const gptq_buf *X, size_t x_off, const gptq_buf *w,
                     size_t w_off, const gptq_buf *b, size_t b_off, int64_t T, int64_t D,
                     float eps, gptq_buf *Y, size_t y_off);
    /* Rotary embedding, in place, the Hugging Face rotate_half convention
     * over the first rot dims of each head (the two halves of those rot
     * dims rotate together; dims rot .. d-1 pass through unchanged, as
     * partial_rotary_factor < 1 does):
     *   c = CS[pos[t], i], s = CS[pos[t], rot/2 + i], for i < rot/2:
     *   y[i]         = x[i] * c - x[i + rot/2] * s
     *   y[i + rot/2] = x[i + rot/2] * c + x[i] * s
     * X (T, nh * d): nh heads of d; rot even, 2 <= rot <= d; pos (T) i32 in
     * [0, P); CS (P, rot) the table [cos | sin] the core computes (so every
     * backend rotates by the same angles and RoPE scalings stay in the
     * core). ABI 5 added rot (before it, rot = d). */
    int (*rope)(void *ctx, gptq_buf *X, size_t x_off, int64_t T, int64_t nh, int64_t d,
                int64_t rot, const gptq_buf *pos, size_t pos_off, const gptq_buf *CS, int64_t P);
    /* Causal self-attention with GQA over nseq independent sequences of S
     * tokens (T = nseq * S). For sequence b, head h, query position i:
     *   s_j = (q . k_j) * scale for key positions j <= i, of KV head h/(H/Hk)
     *   p_j = exp(s_j - max s) / sum_j exp(s_j - max s)  (f32; sum in double)
     *   o   = sum_j p_j v_j
     * Q (T, H*d); K (T, Hk*d); V (T, Hk*d); O (T, H*d). scale is usually
     * 1/sqrt(d).
     * window (since ABI 5): 0 = full causal; W > 0 = sliding window: query i
     * sees key j only when i - W < j <= i, at most W keys, the current token
     * among them (transformers' sliding-window mask for Mistral/Qwen2/Qwen3:
     * kv_idx > q_idx - sliding_window, eager and sdpa alike). W < 0:
     * GPTQ_ERR_INVALID.
     * softcap (since ABI 5): 0 = none; c > 0: s_j = c * tanh(s_j / c) after
     * the scale, before the mask and softmax (Gemma 2's attention logit
     * soft-capping, as transformers' eager attention); c < 0 or not finite:
     * GPTQ_ERR_INVALID. */
    int (*attention)(void *ctx, const gptq_buf *Q, size_t q_off, const gptq_buf *K,
                     size_t k_off, const gptq_buf *V, size_t v_off, int64_t nseq, int64_t S,
                     int64_t H, int64_t Hk, int64_t d, float scale, int64_t window,
                     float softcap, gptq_buf *O, size_t o_off);
    /* SwiGLU: Y = silu(G) * U elementwise, silu(g) = g / (1 + exp(-g)).
     * G (T, F); U (T, F); Y (T, F) (may be G or U). n = T * F elements. */
    int (*silu_mul)(void *ctx, const gptq_buf *G, size_t g_off, const gptq_buf *U,
                    size_t u_off, int64_t n, gptq_buf *Y, size_t y_off);
    /* In place: X = max(X, 0) over n elements (NaN stays NaN). */
    int (*relu)(void *ctx, gptq_buf *X, size_t x_off, int64_t n);
    /* Residual: Y = A + B over n elements (Y may be A or B). */
    int (*add)(void *ctx, const gptq_buf *A, size_t a_off, const gptq_buf *B, size_t b_off,
               int64_t n, gptq_buf *Y, size_t y_off);
    /* Bias of a Linear, in place: X[t, :] += b. X (T, F); b (F). */
    int (*bias_add)(void *ctx, gptq_buf *X, size_t x_off, const gptq_buf *b, size_t b_off,
                    int64_t T, int64_t F);
    /* Next-token cross-entropy, for perplexity: for each row t with
     * tgt[t] >= 0, nll[t] = logsumexp(L[t, :]) - L[t, tgt[t]] computed in
     * double (max, sum of exp); rows with tgt[t] < 0 get nll[t] = 0.
     * L (T, V) logits; tgt (T) i32 (< V); nll (T) f64 out. */
    int (*cross_entropy)(void *ctx, const gptq_buf *L, size_t l_off, const gptq_buf *tgt,
                         size_t tgt_off, int64_t T, int64_t V, gptq_buf *nll, size_t nll_off);
    /* ---- END FORWARD OPS ---- */

    /* ---- since ABI 2 ---- */
    /* OPTIONAL. A Linear on the device's matrix units: Y (M, N) = X (M, K)
     * W^T, W (N, K) row-major, all f32 in memory, where the backend may round
     * X and W to TF32 (10-bit significand) and accumulate the products in f32
     * in any order. The core calls it only for forward passes, and only when
     * asked (gptq_model_set_forward_math, `--forward-math tf32`); the GPTQ
     * solve and the Hessian never use it. NULL: the core uses gemm. */
    int (*linear_fast)(void *ctx, int64_t M, int64_t N, int64_t K, const gptq_buf *X,
                       size_t x_off, const gptq_buf *W, size_t w_off, gptq_buf *Y, size_t y_off);
    /* The Hessian where it was accumulated, without a trip to the host:
     * H[i][j] = scale * S[i][j] (one f32 product each), then H[i][i] +=
     * lambda (one f32 sum) — the host's own operations, so the result is the
     * same bits (scale 1: a copy plus lambda). H NULL: only the diagonal.
     * diag (C) host out, or NULL: the scaled diagonal before lambda. S (C, C)
     * stays as it is (H must be another buffer). */
    int (*hessian_finish)(void *ctx, const gptq_buf *S, gptq_buf *H, int64_t C, float scale,
                          float lambda, float *diag);
    /* *out = sum over A, B, D (R, C) f32 of (A[i] - D[i]) * (B[i] - D[i])
     * (D NULL: A[i] * B[i]), each difference and product in double. The
     * CPU sums each row in column order, then the rows in order (so its
     * statistics are a function of the inputs); another backend in an order
     * of its choosing, the same on every call. */
    int (*dot)(void *ctx, const gptq_buf *A, const gptq_buf *B, const gptq_buf *D, int64_t R,
               int64_t C, double *out);

    /* ---- since ABI 3: the packed tensors (reference arithmetic, exact) ---- */
    /* Pack codes into a qweight: codes (R, C) u8 row-major (output row r,
     * input column k; every code < 2^bits) -> qweight (C*bits/32, R) i32 in
     * the layout of gptq_qtensor (code [r][k] is value k of column r's
     * stream). C and R multiples of 32/bits (32 for 3 bits). */
    int (*pack_codes)(void *ctx, const gptq_buf *codes, int64_t R, int64_t C, int bits,
                      gptq_buf *qweight);
    /* W (N, K) f32 at w_off = f32(scale[g][n]) * (float)(q[k][n] - z[g][n]),
     * g = g_idx[k]: one f32 product of exact operands (|q - z| < 2^9, an
     * fp16 has 11 significant bits), so every backend gives the same bits
     * as gptq_dequantize. */
    int (*dequantize)(void *ctx, const gptq_qtensor *q, gptq_buf *W, size_t w_off);
    /* The A16 matmul of gptq_matmul_ref, bit for bit: Y (M, N) at y_off =
     * X (M, K) at x_off (f32 in memory, each element rounded to fp16 as the
     * kernel reads it) times the dequantized W^T, each output summed over k
     * = 0, 1, ..., K-1 in that order in f32 (no FMA), then + f32(f16(bias[n]))
     * when bias (N) f32 is given (NULL: nothing added). A NaN output (an X
     * that rounds to inf in fp16 can give inf - inf) may carry any NaN
     * payload. */
    int (*matmul_q)(void *ctx, const gptq_qtensor *q, const gptq_buf *X, size_t x_off,
                    int64_t M, const gptq_buf *bias, gptq_buf *Y, size_t y_off);
    /* Gather (act-order permutations on the device): dst (R, C) with
     * dst[i][j] = src[rows[i]][cols[j]], elements of esize bytes (1 or 4),
     * src row-major with Cs elements a row; rows (R) / cols (C) i32 buffers
     * of indices into src (NULL: i, j). dst must not overlap src. An index
     * outside src is an error (a GPU may report it at the next sync). */
    int (*gather)(void *ctx, gptq_buf *dst, const gptq_buf *src, int64_t R, int64_t C,
                  int64_t Rs, int64_t Cs, const gptq_buf *rows, const gptq_buf *cols, int esize);
    /* Widen half-precision weights where they are used (the model loader
     * uploads the file's 2-byte values): dst[i] = src[i] for n elements,
     * src of dtype GPTQ_F16 or GPTQ_BF16 (gptq.h) at byte 0, dst f32 at
     * element dst_off. Exact (every fp16 and bf16 value is an f32), so every
     * backend gives the same bits. */
    int (*to_f32)(void *ctx, gptq_buf *dst, size_t dst_off, const gptq_buf *src, int64_t n,
                  int dtype);

    /* ---- since ABI 4 ---- */
    /* GPTQ's dead inputs (no calibration signal): for every column i with
     * H[i][i] == 0, H[i][i] = 1 and W[r][i] = 0 for every r. H (C, C) f32,
     * W (R, C) f32, both in place. */
    int (*dead_columns)(void *ctx, gptq_buf *H, gptq_buf *W, int64_t R, int64_t C);
    /* OPTIONAL. 1 when the backend runs op on this device, 0 when it
     * declines it (e.g. linear_fast on a device without matrix units); asked
     * only for ops whose slot is filled. A backend must not decline an op the
     * core requires (src/backend.c refuses to open it). NULL: every filled
     * slot is supported. */
    int (*supports_op)(void *ctx, gptq_op op);

    /* ---- since ABI 6: forward ops of Gemma 2 / Gemma 3 (OPTIONAL, as every
     * forward op: a backend without them cannot run those families) ---- */
    /* GeGLU: Y = gelu_tanh(G) * U elementwise, with PyTorch's
     * gelu(approximate="tanh") in f32, in this order (no contraction):
     *   inner = f32(sqrt(2/pi)) * (g + 0.044715f * (g * g * g))
     *   gelu  = (0.5f * g) * (1 + tanh(inner))
     * G (T, F); U (T, F); Y (T, F) (may be G or U). n = T * F elements. */
    int (*gelu_tanh_mul)(void *ctx, const gptq_buf *G, size_t g_off, const gptq_buf *U,
                         size_t u_off, int64_t n, gptq_buf *Y, size_t y_off);
    /* In place: X = X * s over n elements (one f32 product each: Gemma's
     * embedding normalizer). */
    int (*scale)(void *ctx, gptq_buf *X, size_t x_off, int64_t n, float s);
    /* In place: X = c * tanh(X / c) over n elements, each step rounded to
     * f32 as transformers' three tensor ops (Gemma 2's final logit
     * soft-capping). c > 0 and finite, else GPTQ_ERR_INVALID. */
    int (*softcap)(void *ctx, gptq_buf *X, size_t x_off, int64_t n, float c);

    /* ---- since ABI 6 too: the fast A16 matmul ---- */
    /* OPTIONAL (NULL or declined: gptq_matmul_fast_on and `gptq matmul
     * --fast` refuse, naming the backend). matmul_q's A16 matmul, fast: the
     * same arguments and the same X and bias roundings (X to fp16 as read,
     * f32(f16(bias[n])) added last in one f32 sum), the packed weight read
     * directly (never dequantized in full), but each output's K products
     * summed in an order of the backend's choosing, FMA allowed, the scale
     * applied to a partial sum of x * (q - z) or to each product. Every
     * order keeps each output within the f32 error of a K-term dot product
     * of matmul_q's:
     *   |Y - Y_matmul_q| <= 2 gamma(K + 2) (sum_k |xh[m,k] w[n,k]| + |bh[n]|),
     *   gamma(j) = j u / (1 - j u), u = 2^-24
     * (both lie within gamma(K + 2) of the exact sum: tests/test_w4a16.c
     * argues it). The result must not depend on the thread count. *impl
     * (when impl is not NULL) gets a static string naming the code path
     * that ran (the CPU backend: "generic", "avx2" or "avx512"). */
    int (*matmul_q_fast)(void *ctx, const gptq_qtensor *q, const gptq_buf *X, size_t x_off,
                         int64_t M, const gptq_buf *bias, gptq_buf *Y, size_t y_off,
                         const char **impl);

    /* since ABI 6 too: */
    /* OPTIONAL (generation; NULL: a model cannot generate with a KV cache
     * on this backend). Causal attention of T new queries of one sequence
     * against a cache of keys and values: query i sits at position p0 + i,
     * K and V hold the keys and values of positions 0 .. p0 + T - 1 (the new
     * tokens' already written at rows p0 ..). For query i, head h:
     *   s_j = (q . k_j) * scale for key positions j <= p0 + i (and j >
     *         p0 + i - window when window > 0), of KV head h/(H/Hk);
     *   softcap, softmax and o as `attention` (f32; the sum in double).
     * With p0 = 0 this is `attention` of one sequence of T tokens; query i
     * of a later call sees exactly what row p0 + i of one `attention` over
     * all p0 + T tokens sees. Q (T, H*d); K (p0+T, Hk*d); V (p0+T, Hk*d);
     * O (T, H*d). window < 0, softcap < 0 or not finite, p0 < 0:
     * GPTQ_ERR_INVALID. */
    int (*attention_kv)(void *ctx, const gptq_buf *Q, size_t q_off, const gptq_buf *K,
                        size_t k_off, const gptq_buf *V, size_t v_off, int64_t T, int64_t p0,
                        int64_t H, int64_t Hk, int64_t d, float scale, int64_t window,
                        float softcap, gptq_buf *O, size_t o_off);
} gptq_backend_iface;

typedef const gptq_backend_iface *(*gptq_backend_entry_fn)(void);

/* The built-in reference backend, exported by libgptq: a plugin may copy its
 * table and replace or decline slots (examples/plugin). */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif
const gptq_backend_iface *gptq_cpu_backend_iface(void);
#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif /* GPTQ_BACKEND_H */
