/*
 * calib.h — calibration data for `gptq quantize` (internal, not installed):
 * a text file read whole, encoded once, and cut into `nsamples` windows of
 * `seqlen` tokens at seeded random start positions.
 *
 * What it follows: the GPTQ paper code's data loaders (IST-DASLab/gptq
 * datautils.py) encode the whole calibration text once and take each
 * sample as input_ids[i : i + seqlen] with i = randint(0, n - seqlen - 1)
 * drawn from a seeded generator. We do the same with our own generator
 * (splitmix64, below: the same windows on every machine and libc for a
 * seed; libc rand() is never used), so start positions are uniform over
 * [0, n - seqlen - 1] (only 0 when n == seqlen).
 *
 * Special tokens: none are added, and no BOS is put in front of a window.
 * The paper code's windows are slices of one encoding, so they carry no
 * BOS either (only the very first token of the text could be one), and the
 * reference perplexities of shared/README.md were calibrated that way;
 * transformers 5's AutoTokenizer also ignores tokenizer_config.json's
 * add_bos_token when tokenizer.json has a post-processor (tokenizer.h).
 *
 * Input formats
 *   - plain UTF-8 text;
 *   - JSON lines (the name ends in ".jsonl", or the first non-space byte is
 *     '{'): one object per non-empty line with a string "text"; the texts
 *     are joined with "\n\n" (as the paper code joins WikiText-2's lines)
 *     and the result is used like a plain text.
 * max_bytes > 0 keeps only the first max_bytes bytes of the text (after the
 * JSON-lines join), cut back to a UTF-8 character boundary.
 */
#ifndef GPTQ_TEXT_CALIB_H
#define GPTQ_TEXT_CALIB_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

typedef struct gptq_calib_options {
    int64_t nsamples;   /* windows (128) */
    int64_t seqlen;     /* tokens per window (2048) */
    uint64_t seed;      /* (0) */
    size_t max_bytes;   /* 0: the whole text */
} gptq_calib_options;

void gptq_calib_options_default(gptq_calib_options *o);

typedef struct gptq_calib {
    int32_t *ids;        /* (nsamples, seqlen) token ids, window after window */
    int64_t *starts;     /* (nsamples) token offset of each window in the text */
    int64_t nsamples, seqlen;
    int64_t text_tokens; /* tokens of the whole (possibly cut) text */
    size_t text_bytes;   /* bytes of the text that was encoded */
    int jsonl;           /* 1: the file was read as JSON lines */
    int64_t records;     /* JSON-lines records (0 for plain text) */
} gptq_calib;

/* splitmix64 (Steele, Lea, Flood 2014): advance *state and return the next
 * 64-bit value. */
uint64_t gptq_splitmix64(uint64_t *state);
/* Uniform integer in [0, bound) (bound >= 1) by rejection, no modulo bias. */
uint64_t gptq_rand_below(uint64_t *state, uint64_t bound);

/* Read `path` as described above into a malloc'd NUL-terminated text.
 * Errors: GPTQ_ERR_IO (cannot open/read), GPTQ_ERR_INVALID (empty file,
 * or only whitespace), GPTQ_ERR_FORMAT (a JSON line that does not parse,
 * is not an object or lacks a string "text": the message gives the line). */
int gptq_calib_read_text(const char *path, size_t max_bytes, char **text, size_t *len, int *jsonl,
                         int64_t *records);

/* Cut windows from ids (n) host: out (nsamples, seqlen), starts (nsamples)
 * (may be NULL). Fewer than seqlen tokens: GPTQ_ERR_INVALID saying how many
 * there are. */
int gptq_calib_windows(const int32_t *ids, int64_t n, const gptq_calib_options *o, int32_t *out,
                       int64_t *starts);

/* All of it: read, encode with tok (no special tokens), cut windows. */
int gptq_calib_load(const gptq_tokenizer *tok, const char *path, const gptq_calib_options *o,
                    gptq_calib *out);
void gptq_calib_free(gptq_calib *c);

#endif /* GPTQ_TEXT_CALIB_H */
