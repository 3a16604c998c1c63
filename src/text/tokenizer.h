/*
 * tokenizer.h — the BPE tokenizer of a Hugging Face model folder
 * (tokenizer.json + tokenizer_config.json), for calibration and perplexity.
 * Internal to libgptq (not installed).
 *
 * What it reproduces: the ids of the `tokenizers` library's
 * Tokenizer.from_file("tokenizer.json").encode(text, add_special_tokens)
 * and its decode(ids, skip_special_tokens), for BPE models of the two
 * families LLMs use:
 *   - byte-level BPE (GPT-2, OPT, RoBERTa, Qwen, Llama-3): ByteLevel and
 *     Split(regex) pre-tokenizers, ByteLevel decoder;
 *   - SentencePiece-style BPE (Llama-2, Mistral, TinyLlama): Prepend/Replace
 *     normalizers or the Metaspace pre-tokenizer, byte fallback, fuse_unk.
 * Checked against tokenizers 0.23.2 / transformers 5.17 by
 * tests/test_tokenizer.c (goldens from tools/make_tokenizer_golden.py).
 * Anything else in tokenizer.json (WordPiece/Unigram models, NFC/NFKC and
 * other normalizers, other pre-tokenizers/decoders) fails at load time with
 * GPTQ_ERR_UNSUPPORTED naming the file and the component.
 *
 * Special tokens: GPTQ_TOK_ADD_SPECIAL applies tokenizer.json's
 * post_processor (TemplateProcessing, RobertaProcessing, BertProcessing,
 * ByteLevel, Sequence). That is also what transformers 5.17's AutoTokenizer
 * adds: it was checked to ignore tokenizer_config.json's add_bos_token /
 * add_eos_token whenever tokenizer.json has its own post-processor (so
 * llama-27m, add_bos_token: true, gets no BOS from either library). The
 * flags are still read and reported by gptq_tok_config_adds() for callers
 * that want transformers 4's LlamaTokenizerFast rule instead.
 *
 * A loaded tokenizer is immutable: encode/decode may run on several
 * threads at once.
 */
#ifndef GPTQ_TEXT_TOKENIZER_H
#define GPTQ_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct gptq_tokenizer gptq_tokenizer;

/* Load model_dir/tokenizer.json and, if present, model_dir/tokenizer_config.json. */
int gptq_tok_load(const char *model_dir, gptq_tokenizer **out);
/* Same from explicit paths; config_path may be NULL (no tokenizer_config.json). */
int gptq_tok_load_files(const char *tokenizer_json, const char *config_path, gptq_tokenizer **out);
void gptq_tok_free(gptq_tokenizer *tok);

/* Values of encode's `special` argument. */
enum {
    GPTQ_TOK_NO_SPECIAL = 0,  /* the text's own tokens only (perplexity protocol) */
    GPTQ_TOK_ADD_SPECIAL = 1, /* plus what the post-processor adds (BOS, ...) */
};

/* Encode len bytes of UTF-8 text (need not be NUL-terminated; invalid
 * UTF-8 is GPTQ_ERR_INVALID with the byte offset). Added tokens written in
 * the text ("<s>", "<|endoftext|>") map to their ids. On success *ids is a
 * malloc'd array of *n ids (free() it; NULL when *n is 0). */
int gptq_tok_encode(const gptq_tokenizer *tok, const char *text, size_t len, int special,
                    int32_t **ids, int64_t *n);

/* Decode n ids to text as tokenizers' decode does (invalid UTF-8 from
 * byte tokens becomes U+FFFD, as there). skip_special drops special added
 * tokens. *text is malloc'd and NUL-terminated, *len its length without
 * the NUL (len may be NULL). An id out of range is GPTQ_ERR_INVALID. */
int gptq_tok_decode(const gptq_tokenizer *tok, const int32_t *ids, int64_t n, int skip_special,
                    char **text, size_t *len);

/* The largest token id a tokenizer.json may use: the id tables hold one
 * entry per id up to the largest (2 x 64 MiB at this bound), and the
 * largest vocabularies in use have about 2^18 tokens. Larger ids are
 * refused by value, as is an empty model.vocab. */
#define GPTQ_TOK_MAX_ID ((1 << 24) - 1)

/* Largest id + 1 over the model vocabulary and the added tokens (the rows
 * an embedding needs). */
int32_t gptq_tok_vocab_size(const gptq_tokenizer *tok);
/* Ids of tokenizer_config.json's bos_token / eos_token; -1 when not set. */
int32_t gptq_tok_bos_id(const gptq_tokenizer *tok);
int32_t gptq_tok_eos_id(const gptq_tokenizer *tok);
/* tokenizer_config.json's add_bos_token / add_eos_token: 1 true, 0 false,
 * -1 absent. Informational: encode does not apply them (see above). */
void gptq_tok_config_adds(const gptq_tokenizer *tok, int *add_bos, int *add_eos);
/* The string of token `id` as stored in the vocabulary (byte-level tokens
 * in their mapped form); NULL if no token has that id. */
const char *gptq_tok_piece(const gptq_tokenizer *tok, int32_t id, size_t *len);
/* Id of a token string (added tokens first, then the model vocabulary); -1 if none. */
int32_t gptq_tok_piece_id(const gptq_tokenizer *tok, const char *piece, size_t len);

#endif /* GPTQ_TEXT_TOKENIZER_H */
