/*
 * backend_ops_cases.h — every backend op described once, as rows of a table
 * (tests/backend_ops_cases.c), for the op test (tests/test_backend_ops.c)
 * and the op benchmark (bench/bench_ops.c).
 *
 * A row names an op (gptq_op), its shapes and parameters, and two
 * tolerances, each with its reason: `tol` for any backend against the CPU
 * backend, `ref` for the CPU backend against the row's naive reference (plain
 * C loops, sums in double, written from backend.h's contract). Per op the
 * case file holds: a generator of the inputs (seeded by the row), the call
 * through the vtable, the naive reference, and optional property checks that
 * need no reference (padding untouched, symmetry, U^T U H = I).
 *
 * Adding an op: one gptq_op entry + its slot (backend.h), its k_ops line
 * (src/backend.c), the CPU version, and here one k_defs entry and its rows.
 */
#ifndef GPTQ_BACKEND_OPS_CASES_H
#define GPTQ_BACKEND_OPS_CASES_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

enum oc_type { OC_F32, OC_F64, OC_I32, OC_U8, OC_U16 };
#define OC_MAXA 10

/* A host array. */
typedef struct oc_arr {
    int type; /* enum oc_type */
    size_t n; /* elements */
    void *p;
} oc_arr;

/* One row's data: in[i] is uploaded to device buffer i (n = 0: the op gets
 * NULL there); out[k] is downloaded from buffer from[k] after the call, or
 * written by the call itself (from[k] = -1: a status word, a host result).
 * exact[k]: compared byte for byte whatever the row's tolerance. */
typedef struct oc_data {
    int nin, nout;
    oc_arr in[OC_MAXA], out[OC_MAXA];
    int from[OC_MAXA], exact[OC_MAXA];
    const char *name[OC_MAXA]; /* of each output, for messages */
} oc_data;

enum oc_kind {
    OC_BYTES, /* identical bytes (a NaN matches any NaN: payloads differ by processor) */
    OC_FROB,  /* ||a - b||_F / ||b||_F < v[0]; a NaN or an infinity fails */
    OC_REL,   /* |a_i - b_i| <= v[0] |b_i| for every element */
    OC_SHARE, /* positions where every output is identical: share >= v[0] */
    OC_SOLVE, /* outputs (codes, scale, loss): identical codes share >= v[0], no
                 code more than 1 step off, summed loss relative difference <
                 v[1], every scale within v[2] relative */
};

typedef struct oc_tol {
    int kind; /* enum oc_kind */
    double v[3];
    const char *why;
} oc_tol;

typedef struct op_case {
    const char *name;
    gptq_op op;
    int64_t p[10];   /* shapes and switches; their meaning per op in backend_ops_cases.c */
    const char *env; /* "NAME=value" set while the row runs (a kernel variant), or NULL */
    const char *msg; /* a failing row: what every backend's message must contain */
    oc_tol tol;      /* a backend against the CPU backend */
    oc_tol ref;      /* the CPU backend against the naive reference */
} op_case;

extern const op_case oc_cases[];
extern const size_t oc_ncases;

/* The row's inputs (seeded by seed) and its outputs' shapes. */
void oc_gen(const op_case *c, uint64_t seed, oc_data *d);
/* A copy of d's inputs and output shapes, outputs zeroed (one per backend). */
void oc_clone(const oc_data *d, oc_data *out);
void oc_data_free(oc_data *d);
/* The naive reference into d's outputs. */
void oc_naive(const op_case *c, oc_data *d);
/* 1 when be runs the row: the op, or (the CPU backend lacking linear_fast)
 * the fallback the core takes, which the call then runs. */
int oc_runs_on(const op_case *c, gptq_backend *be, int as_reference);

/* Set (set = 1) or remove the row's env variable, if it has one. */
void oc_env(const op_case *c, int set);
/* Device side, for the test (oc_run) and the benchmark (the pieces). */
int oc_upload(gptq_backend *be, const oc_data *d, gptq_buf **dev);
int oc_call(const op_case *c, gptq_backend *be, gptq_buf **dev, oc_data *d);
int oc_download(gptq_backend *be, gptq_buf **dev, oc_data *d);
void oc_free_dev(gptq_backend *be, gptq_buf **dev);
/* upload, call (under the row's env), download, free: GPTQ_OK or the
 * failure (gptq_last_error says what). */
int oc_run(const op_case *c, gptq_backend *be, oc_data *d);

/* got against want with tol: 0 when within, else 1 and msg says where. The
 * measured figure (largest error, share) goes to *measured. */
int oc_compare(const oc_tol *tol, const oc_data *got, const oc_data *want, char *msg, size_t n,
               double *measured);
/* The op's own properties of d's outputs: 0 when they hold, else 1 + msg. */
int oc_props(const op_case *c, const oc_data *d, char *msg, size_t n);
/* The row with its sizes (the p[] that are sizes) times mult. */
op_case oc_scaled(const op_case *c, int64_t mult);
/* Floating-point operations of one call (0: a memory-bound op) and the
 * bytes its buffers hold. */
double oc_flops(const op_case *c);
double oc_bytes(const oc_data *d);

#endif
