/*
 * fuzz_tokenizer.c — libFuzzer target for the tokenizer reader
 * (src/text/tokenizer.c).
 *
 * The input bytes are a tokenizer.json (a memfd, reached as
 * /proc/self/fd/N). gptq_tok_load_files must refuse it with a message
 * naming the file, or give a tokenizer that keeps its promises on a few
 * fixed texts (spaces, digits, punctuation, multi-byte UTF-8, added-token
 * look-alikes) and on the input's own bytes (so the model's own strings
 * reach the BPE, the regexes and the normalizers):
 *   - encode returns OK, or GPTQ_ERR_INVALID for invalid UTF-8 (or a
 *     regex of the file that hits PCRE2's match limit) only;
 *   - every id is in [0, vocab_size), n is 0 exactly when ids is NULL;
 *   - decode of those ids succeeds (with and without the special tokens)
 *     and gives valid UTF-8 (invalid bytes become U+FFFD);
 *   - every id has a piece, and looking the piece up gives an id.
 */
#define FUZZ_NAME "fuzz_tokenizer"
#include "fuzz_util.h"

#include "text/tokenizer.h"

/* Valid UTF-8 of n bytes? (the decoder's promise) */
static int utf8_ok(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
                 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!k || i + k > n || (k == 2 && c < 0xC2)) return 0;
        uint32_t cp = k == 1 ? c : c & (0x7F >> k);
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if ((k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += k;
    }
    return 1;
}

static void run_text(const gptq_tokenizer *tok, const char *text, size_t len)
{
    const int32_t V = gptq_tok_vocab_size(tok);
    for (int special = 0; special < 2; special++) {
        int32_t *ids = NULL;
        int64_t n = -1;
        int rc = gptq_tok_encode(tok, text, len, special, &ids, &n);
        if (rc != GPTQ_OK) {
            /* invalid UTF-8, or a pathological Split/Replace regex that
             * ran into PCRE2's match limit */
            CHECK(rc == GPTQ_ERR_INVALID);
            CHECK(!utf8_ok((const unsigned char *)text, len) ||
                  strstr(gptq_last_error(), "regex match failed"));
            CHECK(ids == NULL);
            return;
        }
        CHECK(n >= 0 && (n == 0) == (ids == NULL));
        for (int64_t i = 0; i < n; i++) {
            CHECK(ids[i] >= 0 && ids[i] < V);
            size_t plen = 0;
            const char *piece = gptq_tok_piece(tok, ids[i], &plen);
            /* an added token without a model entry has no piece */
            if (piece) CHECK(gptq_tok_piece_id(tok, piece, plen) >= 0);
        }
        for (int skip = 0; skip < 2; skip++) {
            char *out = NULL;
            size_t olen = 0;
            CHECK(gptq_tok_decode(tok, ids, n, skip, &out, &olen) == GPTQ_OK);
            CHECK(out != NULL && out[olen] == '\0');
            CHECK(utf8_ok((const unsigned char *)out, olen));
            free(out);
        }
        free(ids);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const texts[] = {
        "Hello, world! It's 2024: 3.14159 and 42.",
        "  two  spaces,\ttab\nnew line\r\n",
        " leading space and trailing ",
        "caf\xC3\xA9 na\xC3\xAFve \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xF0\x9F\x99\x82 \xE2\x96\x81x",
        "<s>a</s><unk><|endoftext|><pad>[CLS] x [SEP]",
        "don't we'll I'm they've you'd",
        "",
        "\xFF\xFE bad utf-8",
    };
    const char *path = fuzz_memfd(data, size);
    gptq_clear_error();
    gptq_tokenizer *tok = NULL;
    int rc = gptq_tok_load_files(path, NULL, &tok);
    if (rc != GPTQ_OK) {
        CHECK(rc < 0 && tok == NULL);
        CHECK(strstr(gptq_last_error(), path) != NULL);
        return 0;
    }
    CHECK(gptq_tok_vocab_size(tok) >= 0);
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) run_text(tok, texts[i], strlen(texts[i]));
    /* The input itself: its strings are the vocabulary's and the added
     * tokens', the pieces most likely to reach every path. */
    char *own = fuzz_copy(data, size < 2048 ? size : 2048);
    run_text(tok, own, size < 2048 ? size : 2048);
    free(own);
    /* Every id with a piece decodes alone; a gap in the ids is refused. */
    const int32_t V = gptq_tok_vocab_size(tok);
    for (int32_t id = 0; id < V && id < 512; id++) {
        char *out = NULL;
        int has = gptq_tok_piece(tok, id, NULL) != NULL;
        CHECK(gptq_tok_decode(tok, &id, 1, 0, &out, NULL) == (has ? GPTQ_OK : GPTQ_ERR_INVALID));
        free(out);
    }
    gptq_tok_free(tok);
    return 0;
}
