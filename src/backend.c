/*
 * backend.c — the backend registry: the built-in CPU backend, and plugins
 * loaded with dlopen by name or by path.
 *
 * A name without '/' other than "cpu" is looked up as libgptq-<name>.so in
 *   1. each folder of $GPTQ_BACKEND_PATH (':'-separated),
 *   2. the folder of the running executable and its ../backends/<name>,
 *   3. GPTQ_PLUGIN_DIR (the install folder, set by meson),
 *   4. the dynamic loader's own search (LD_LIBRARY_PATH, ...).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#ifndef GPTQ_PLUGIN_DIR
#define GPTQ_PLUGIN_DIR "/usr/local/lib/gptq-0"
#endif

/* op -> its slot in the table, its name, and whether every backend must
 * fill it (the rest are OPTIONAL: the core asks gptq_be_supports first). The
 * one list of ops: the required-slot check and gptq_be_supports read it. */
#define OP_SLOT(e, slot, req) [e] = {offsetof(gptq_backend_iface, slot), #slot, req}
static const struct {
    size_t off;
    const char *name;
    int required;
} k_ops[GPTQ_OP_COUNT] = {
    OP_SLOT(GPTQ_OP_GEMM, gemm, 1),
    OP_SLOT(GPTQ_OP_HESSIAN_ACCUMULATE, hessian_accumulate, 1),
    OP_SLOT(GPTQ_OP_CHOLESKY_INVERSE_UPPER, cholesky_inverse_upper, 1),
    OP_SLOT(GPTQ_OP_QUANT_GRID, quant_grid, 1),
    OP_SLOT(GPTQ_OP_GPTQ_BLOCK, gptq_block, 1),
    /* the forward ops: only a model forward pass needs them */
    OP_SLOT(GPTQ_OP_EMBEDDING, embedding, 0),
    OP_SLOT(GPTQ_OP_RMSNORM, rmsnorm, 0),
    OP_SLOT(GPTQ_OP_LAYERNORM, layernorm, 0),
    OP_SLOT(GPTQ_OP_ROPE, rope, 0),
    OP_SLOT(GPTQ_OP_ATTENTION, attention, 0),
    OP_SLOT(GPTQ_OP_SILU_MUL, silu_mul, 0),
    OP_SLOT(GPTQ_OP_RELU, relu, 0),
    OP_SLOT(GPTQ_OP_ADD, add, 0),
    OP_SLOT(GPTQ_OP_BIAS_ADD, bias_add, 0),
    OP_SLOT(GPTQ_OP_CROSS_ENTROPY, cross_entropy, 0),
    OP_SLOT(GPTQ_OP_LINEAR_FAST, linear_fast, 0),
    OP_SLOT(GPTQ_OP_HESSIAN_FINISH, hessian_finish, 1),
    OP_SLOT(GPTQ_OP_DOT, dot, 1),
    OP_SLOT(GPTQ_OP_PACK_CODES, pack_codes, 1),
    OP_SLOT(GPTQ_OP_DEQUANTIZE, dequantize, 1),
    OP_SLOT(GPTQ_OP_MATMUL_Q, matmul_q, 1),
    OP_SLOT(GPTQ_OP_GATHER, gather, 1),
    OP_SLOT(GPTQ_OP_TO_F32, to_f32, 1),
    OP_SLOT(GPTQ_OP_DEAD_COLUMNS, dead_columns, 1),
    OP_SLOT(GPTQ_OP_GELU_TANH_MUL, gelu_tanh_mul, 0),
    OP_SLOT(GPTQ_OP_SCALE, scale, 0),
    OP_SLOT(GPTQ_OP_SOFTCAP, softcap, 0),
    OP_SLOT(GPTQ_OP_MATMUL_Q_FAST, matmul_q_fast, 0),
    OP_SLOT(GPTQ_OP_ATTENTION_KV, attention_kv, 0),
};

static int slot_filled(const gptq_backend_iface *it, gptq_op op)
{
    void (*slot)(void);
    memcpy(&slot, (const char *)it + k_ops[op].off, sizeof slot);
    return slot != NULL;
}

static int check_iface(const gptq_backend_iface *it, const char *where)
{
    if (!it)
        return gptq_error(GPTQ_ERR_BACKEND, "backend %s: entry returned no table", where);
    if (it->abi_version != GPTQ_BACKEND_ABI_VERSION)
        return gptq_error(GPTQ_ERR_BACKEND,
                          "backend %s: ABI version %u, this gptq needs %u (%s); rebuild the plugin "
                          "against this version",
                          where, it->abi_version, GPTQ_BACKEND_ABI_VERSION,
                          it->abi_version < GPTQ_BACKEND_ABI_VERSION ? "plugin too old"
                                                                     : "plugin newer than gptq");
    if (it->struct_size != sizeof(gptq_backend_iface))
        return gptq_error(GPTQ_ERR_BACKEND,
                          "backend %s: table size %u, expected %zu for ABI %u; rebuild the plugin",
                          where, it->struct_size, sizeof(gptq_backend_iface),
                          GPTQ_BACKEND_ABI_VERSION);
    /* the slots every backend must fill: memory, and the required ops */
    const void *mem[] = {(const void *)it->create, (const void *)it->destroy,
                         (const void *)it->error,  (const void *)it->alloc,
                         (const void *)it->free,   (const void *)it->upload,
                         (const void *)it->download, (const void *)it->copy,
                         (const void *)it->sync};
    static const char *mem_names[] = {"create", "destroy", "error",    "alloc", "free",
                                      "upload", "download", "copy", "sync"};
    for (size_t i = 0; i < sizeof mem / sizeof *mem; i++)
        if (!mem[i])
            return gptq_error(GPTQ_ERR_BACKEND, "backend %s: required slot '%s' is empty", where,
                              mem_names[i]);
    for (int op = 0; op < GPTQ_OP_COUNT; op++)
        if (k_ops[op].required && !slot_filled(it, (gptq_op)op))
            return gptq_error(GPTQ_ERR_BACKEND, "backend %s: required slot '%s' is empty", where,
                              k_ops[op].name);
    if (!it->name || !it->name[0])
        return gptq_error(GPTQ_ERR_BACKEND, "backend %s: table has no name", where);
    return GPTQ_OK;
}

static int finish_open(const gptq_backend_iface *it, void *dl, const char *path,
                       gptq_backend **out)
{
    int st = check_iface(it, path);
    if (st) return st;
    gptq_backend *be = gptq_calloc(1, sizeof *be, "backend");
    if (!be) return GPTQ_ERR_NOMEM;
    be->iface = it;
    be->dl = dl;
    snprintf(be->path, sizeof be->path, "%s", path);
    st = it->create(&be->ctx);
    if (st) {
        /* a plugin may fail without a context, or with an empty message */
        const char *why = be->ctx ? it->error(be->ctx) : NULL;
        int r = gptq_error(st < 0 ? st : GPTQ_ERR_BACKEND,
                           "backend %s (%s): initialisation failed (status %d): %s", it->name,
                           path, st, why && why[0] ? why : "the plugin gave no reason");
        if (be->ctx) it->destroy(be->ctx);
        free(be);
        return r;
    }
    for (int op = 0; op < GPTQ_OP_COUNT; op++)
        if (k_ops[op].required && !gptq_be_supports(be, (gptq_op)op)) {
            int r = gptq_error(GPTQ_ERR_BACKEND,
                               "backend %s (%s): declines the required op '%s' (supports_op)",
                               it->name, path, k_ops[op].name);
            it->destroy(be->ctx);
            free(be);
            return r;
        }
    *out = be;
    return GPTQ_OK;
}

static int open_plugin(const char *path, gptq_backend **out, int quiet_missing)
{
    dlerror();
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *why = dlerror();
        return gptq_error(quiet_missing ? GPTQ_ERR_IO : GPTQ_ERR_BACKEND,
                          "cannot load backend plugin %s: %s", path, why ? why : "unknown error");
    }
    gptq_backend_entry_fn entry = NULL;
    void *sym = dlsym(dl, GPTQ_BACKEND_ENTRY_SYMBOL);
    memcpy(&entry, &sym, sizeof entry);
    if (!entry) {
        dlclose(dl);
        return gptq_error(GPTQ_ERR_BACKEND,
                          "backend plugin %s is broken: it exports no '%s' symbol", path,
                          GPTQ_BACKEND_ENTRY_SYMBOL);
    }
    int st = finish_open(entry(), dl, path, out);
    if (st) dlclose(dl);
    return st;
}

static int file_exists(const char *p) { return access(p, F_OK) == 0; }

int gptq_backend_open(const char *name, gptq_backend **out)
{
    *out = NULL;
    if (!name || !name[0]) return gptq_error(GPTQ_ERR_INVALID, "empty backend name");
    if (strcmp(name, "cpu") == 0) return finish_open(gptq_cpu_backend_iface(), NULL, "built-in", out);
    if (strchr(name, '/')) {
        if (!file_exists(name))
            return gptq_error(GPTQ_ERR_BACKEND, "backend plugin %s: no such file", name);
        return open_plugin(name, out, 0);
    }
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-'))
            return gptq_error(GPTQ_ERR_INVALID, "bad backend name \"%s\"", name);

    char file[128], cand[PATH_MAX + 160], tried[2048] = "";
    snprintf(file, sizeof file, "libgptq-%s.so", name);
    size_t tl = 0;
#define TRY_CANDIDATE(...)                                                                        \
    do {                                                                                          \
        snprintf(cand, sizeof cand, __VA_ARGS__);                                                 \
        if (file_exists(cand)) return open_plugin(cand, out, 0);                                  \
        int k_ = snprintf(tried + tl, sizeof tried - tl, "%s%.300s", tl ? ", " : "", cand);       \
        if (k_ > 0 && tl + (size_t)k_ < sizeof tried) tl += (size_t)k_;                           \
    } while (0)

    const char *env = getenv("GPTQ_BACKEND_PATH");
    if (env && *env) {
        char *dup = strdup(env);
        if (!dup) return gptq_error(GPTQ_ERR_NOMEM, "out of memory");
        for (char *save = NULL, *d = strtok_r(dup, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
            snprintf(cand, sizeof cand, "%s/%s", d, file);
            if (file_exists(cand)) {
                free(dup);
                return open_plugin(cand, out, 0);
            }
            int k = snprintf(tried + tl, sizeof tried - tl, "%s%.300s", tl ? ", " : "", cand);
            if (k > 0 && tl + (size_t)k < sizeof tried) tl += (size_t)k;
        }
        free(dup);
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            TRY_CANDIDATE("%s/%s", exe, file);
            TRY_CANDIDATE("%s/../backends/%s/%s", exe, name, file);
        }
    }
    TRY_CANDIDATE("%s/%s", GPTQ_PLUGIN_DIR, file);
#undef TRY_CANDIDATE
    /* last: the loader's own search path */
    if (open_plugin(file, out, 1) == GPTQ_OK) return GPTQ_OK;
    /* how to get it: gptq-c builds one plugin, hip, for AMD or (through
     * nvcc) NVIDIA; any other name is a third party's plugin */
    const char *how =
        !strcmp(name, "hip") ? "Build it with `meson setup build -Dhip=enabled` (AMD; NVIDIA: "
                               "add -Doffload_arch=sm_90)"
        : !strcmp(name, "cuda") ? "On NVIDIA, gptq-c's GPU backend is the hip plugin built "
                                  "with nvcc (`meson setup build -Dhip=enabled "
                                  "-Doffload_arch=sm_90`, your GPU's sm_NN): use --backend hip"
                                : "gptq-c builds no such backend (only cpu and hip): install the "
                                  "plugin that provides it";
    return gptq_error(GPTQ_ERR_BACKEND,
                      "backend \"%s\" is not available: %s not found (tried %s, and the loader "
                      "path). %s; or point GPTQ_BACKEND_PATH at the folder holding it",
                      name, file, tried, how);
}

void gptq_backend_close(gptq_backend *be)
{
    if (!be) return;
    if (be->ctx) be->iface->destroy(be->ctx);
    if (be->dl) dlclose(be->dl);
    free(be);
}

const char *gptq_backend_name(const gptq_backend *be) { return be ? be->iface->name : "(none)"; }

int gptq_be_check(gptq_backend *be, int status, const char *op)
{
    if (status == GPTQ_OK) return GPTQ_OK;
    const char *m = be->iface->error(be->ctx);
    return gptq_error(status < 0 ? status : GPTQ_ERR_BACKEND, "backend %s: %s: %s",
                      be->iface->name, op, m && m[0] ? m : gptq_status_str(status));
}

int gptq_be_alloc(gptq_backend *be, size_t nbytes, gptq_buf **out, const char *what)
{
    *out = NULL;
    int st = be->iface->alloc(be->ctx, nbytes, out);
    if (st) {
        const char *m = be->iface->error(be->ctx);
        return gptq_error(st, "backend %s: cannot allocate %.1f MiB for %s: %s", be->iface->name,
                          (double)nbytes / 1048576.0, what, m && m[0] ? m : gptq_status_str(st));
    }
    size_t fr = 0, tot = 0;
    if (be->iface->mem_info && be->iface->mem_info(be->ctx, &fr, &tot) == GPTQ_OK && tot >= fr) {
        if (tot - fr > be->mem_peak) be->mem_peak = tot - fr;
        be->mem_total = tot;
    }
    return GPTQ_OK;
}

const char *gptq_op_name(gptq_op op)
{
    return (unsigned)op < GPTQ_OP_COUNT ? k_ops[op].name : "unknown op";
}

int gptq_be_supports(const gptq_backend *be, gptq_op op)
{
    if ((unsigned)op >= GPTQ_OP_COUNT || !slot_filled(be->iface, op)) return 0;
    return !be->iface->supports_op || be->iface->supports_op(be->ctx, op);
}

gptq_op gptq_op_of_slot(size_t off)
{
    for (int op = 0; op < GPTQ_OP_COUNT; op++)
        if (k_ops[op].off == off) return (gptq_op)op;
    return GPTQ_OP_COUNT;
}

int gptq_be_sync(gptq_backend *be)
{
    return be->iface->sync ? gptq_be_check(be, be->iface->sync(be->ctx), "sync") : GPTQ_OK;
}

size_t gptq_be_mem_free(gptq_backend *be)
{
    size_t fr = 0, tot = 0;
    if (!be->iface->mem_info || be->iface->mem_info(be->ctx, &fr, &tot) != GPTQ_OK) return 0;
    return fr;
}

int gptq_backend_memory(const gptq_backend *be, size_t *peak_used, size_t *total)
{
    if (peak_used) *peak_used = be ? be->mem_peak : 0;
    if (total) *total = be ? be->mem_total : 0;
    return be && be->mem_total ? GPTQ_OK : GPTQ_ERR_UNSUPPORTED;
}

void gptq_be_free(gptq_backend *be, gptq_buf *b)
{
    if (b) be->iface->free(be->ctx, b);
}

int gptq_be_upload(gptq_backend *be, gptq_buf *dst, size_t off, const void *src, size_t n)
{
    return gptq_be_check(be, be->iface->upload(be->ctx, dst, off, src, n), "upload");
}

int gptq_be_download(gptq_backend *be, const gptq_buf *src, size_t off, void *dst, size_t n)
{
    return gptq_be_check(be, be->iface->download(be->ctx, src, off, dst, n), "download");
}
