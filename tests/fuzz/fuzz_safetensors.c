/*
 * fuzz_safetensors.c — libFuzzer target for the safetensors reader.
 *
 * The input bytes become a file (a memfd, reached as /proc/self/fd/N, so
 * nothing touches the disk); gptq_st_open must either refuse it with a
 * message or hand out tensors that satisfy the reader's promises:
 *   - get(i) walks the data region in order, tensors back to back;
 *   - find(name) gives the same tensor as get;
 *   - every byte of every tensor is readable (a bad bound would fault);
 *   - nbytes == numel * dtype size;
 *   - read_f32 works on the float tensors;
 *   - writing the tensors again with the writer and reading that back
 *     gives the same names, dtypes, shapes and bytes (in /dev/shm, small
 *     files only).
 * A broken promise calls __builtin_trap() so the fuzzer keeps the input.
 */
#define FUZZ_NAME "fuzz_safetensors"
#include "fuzz_util.h"

static int64_t numel(const gptq_st_info *in)
{
    int64_t n = 1;
    for (int d = 0; d < in->ndim; d++) n *= in->shape[d];
    return n;
}

static int same_info(const gptq_st_info *a, const gptq_st_info *b)
{
    if (strcmp(a->name, b->name) || a->dtype != b->dtype || a->ndim != b->ndim ||
        a->nbytes != b->nbytes)
        return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0;
}

/* Write every tensor of f with the writer, open the result, compare. */
static void round_trip(const gptq_st_file *f)
{
    static char path[128];
    if (!path[0]) snprintf(path, sizeof path, "/dev/shm/gptq-fuzz-%d.safetensors", (int)getpid());
    int n = gptq_st_count(f);
    gptq_st_writer *w;
    if (gptq_st_writer_open(path, &w) != GPTQ_OK) return; /* no /dev/shm: skip */
    for (int i = 0; i < n; i++) {
        gptq_st_info in;
        CHECK(gptq_st_get(f, i, &in) == GPTQ_OK);
        CHECK(gptq_st_writer_declare(w, in.name, in.dtype, in.ndim, in.shape) == GPTQ_OK);
    }
    const char *fmt = gptq_st_metadata(f, "format");
    if (fmt) CHECK(gptq_st_writer_metadata(w, "format", fmt) == GPTQ_OK);
    for (int i = 0; i < n; i++) {
        gptq_st_info in;
        CHECK(gptq_st_get(f, i, &in) == GPTQ_OK);
        /* Two chunks, to pass through the chunked path too. */
        size_t half = in.nbytes / 2;
        CHECK(gptq_st_writer_write(w, in.data, half) == GPTQ_OK);
        CHECK(gptq_st_writer_write(w, (const uint8_t *)in.data + half, in.nbytes - half) ==
              GPTQ_OK);
    }
    CHECK(gptq_st_writer_commit(w) == GPTQ_OK);

    gptq_st_file *g;
    CHECK(gptq_st_open(path, &g) == GPTQ_OK);
    CHECK(gptq_st_count(g) == n);
    CHECK(strcmp(gptq_st_metadata(g, "format"), fmt ? fmt : "pt") == 0);
    for (int i = 0; i < n; i++) {
        gptq_st_info a, b;
        CHECK(gptq_st_get(f, i, &a) == GPTQ_OK);
        CHECK(gptq_st_find(g, a.name, &b) == GPTQ_OK);
        CHECK(same_info(&a, &b));
    }
    gptq_st_close(g);
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_memfd(data, size);
    gptq_clear_error();
    gptq_st_file *f = NULL;
    int rc = gptq_st_open(path, &f);
    if (rc != GPTQ_OK) {
        /* Refused: with a message naming the file, and no handle. */
        CHECK(rc < 0 && f == NULL);
        CHECK(strstr(gptq_last_error(), path) != NULL);
        return 0;
    }

    int n = gptq_st_count(f);
    CHECK(n >= 0);
    const uint8_t *next = NULL;
    size_t total = 0;
    unsigned sum = 0;
    int has_empty_name = 0;
    for (int i = 0; i < n; i++) {
        gptq_st_info in;
        CHECK(gptq_st_get(f, i, &in) == GPTQ_OK);
        CHECK(in.ndim >= 0 && in.ndim <= GPTQ_MAX_DIMS);
        for (int d = 0; d < in.ndim; d++) CHECK(in.shape[d] >= 0);
        CHECK((size_t)numel(&in) * gptq_dtype_size(in.dtype) == in.nbytes);
        if (next) CHECK((const uint8_t *)in.data == next);
        next = (const uint8_t *)in.data + in.nbytes;
        total += in.nbytes;
        /* Touch every byte: a bound past the mapping faults here. */
        const uint8_t *b = in.data;
        for (size_t k = 0; k < in.nbytes; k++) sum += b[k];

        gptq_st_info again;
        CHECK(gptq_st_find(f, in.name, &again) == GPTQ_OK);
        CHECK(again.data == in.data && same_info(&in, &again));
        if (!in.name[0]) has_empty_name = 1;

        if ((in.dtype == GPTQ_F32 || in.dtype == GPTQ_F16 || in.dtype == GPTQ_BF16) &&
            in.nbytes <= (1u << 16)) {
            gptq_tensor t;
            CHECK(gptq_st_read_f32(f, in.name, &t) == GPTQ_OK);
            CHECK(gptq_tensor_numel(&t) == numel(&in));
            gptq_tensor_free(&t);
        }
    }
    /* The tensors tile the data region: what follows the 8-byte length
     * and the header, to the end of the input. */
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | data[i];
    CHECK(size >= 8 && hlen <= size - 8 && total == size - 8 - hlen);
    (void)gptq_st_metadata(f, "format");
    (void)sum;

    /* The writer refuses empty names (the reader accepts them). */
    if (!has_empty_name && n <= 64 && total <= (1u << 16)) round_trip(f);
    gptq_st_close(f);
    return 0;
}
