#!/usr/bin/env python3
"""make_tokenizer_golden.py — golden token ids for tests/test_tokenizer.c.

Two steps, run in two places:

  prepare SHARED DATA   (here, plain Python, no `tokenizers` needed)
      Copies the tokenizer files of the shared models into DATA/<name>/
      (llama-27m and opt-18m share one tokenizer.json: one copy), writes the
      hand-made tokenizers (tiny vocabularies whose merges come from a small
      BPE training run in this script on a slice of SHARED/text/calib.txt),
      DATA/manifest.json and DATA/texts.json (slices of the shared texts plus
      hard cases).

  golden DATA OUT [FULLTEXT_DIR]   (on the device machine: `tokenizers`, transformers;
  golden-tar DATA OUT [FULLTEXT_DIR] packs the same files into OUT/goldens.tar)
      For every tokenizer of the manifest and every text, writes to
      OUT/golden_<name>.json what the REAL `tokenizers` library
      (Tokenizer.from_file(...).encode) gives without special tokens, what it
      adds with add_special_tokens=True, what transformers' AutoTokenizer
      adds (its BOS/EOS rules), and the decoded text. With FULLTEXT_DIR
      (holding eval.txt, wikitext2-test.raw.txt, tinystories-val.txt) it also
      writes OUT/golden_full.json: token count and FNV-1a 64 hash (over the
      ids as little-endian int32) of whole files, and prints transformers'
      counts for the perplexity texts.

  Used so (the device machine has no ../shared: the texts travel in an
  ignored folder):
      mkdir -p .tokdata && cp ../shared/text/{eval.txt,wikitext2-test.raw.txt,tinystories-val.txt} .tokdata/
      device run, carry [".tokdata"]:
      python3 tools/make_tokenizer_golden.py golden-tar tests/data/tokenizer $OUT .tokdata
      then untar $OUT/goldens.tar into tests/data/tokenizer/.

Golden file layout (one case per line):
  {"name": ..., "vocab_size": N, "bos_id": .., "eos_id": .., "cases": [
   {"i": text index, "ids": [...], "tok_pre": [...], "tok_suf": [...],
    "hf_pre": [...], "hf_suf": [...], "hf_core_same": bool,
    "decoded": "...", "decoded_skip": "..."}, ...]}
  ids + tok_pre/tok_suf: tokenizers encode(add_special_tokens=False/True)
  (True = tok_pre + ids + tok_suf). hf_pre/hf_suf: what transformers'
  tokenizer(text, add_special_tokens=True) puts around its own
  add_special_tokens=False ids; hf_core_same says whether those equal `ids`.
"""
import json
import os
import shutil
import sys
import time

GPT2_PAT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_PAT = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"""
              r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")
SP = "\u2581"


# ---------------------------------------------------------------- prepare

def bytes_to_unicode():
    """GPT-2's byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def train_bpe(words, nmerges, base):
    """Plain BPE training: words is {tuple(symbols): count}; returns merges.
    Ties between equally frequent pairs go to the smallest pair (determinism)."""
    words = dict(words)
    merges = []
    for _ in range(nmerges):
        counts = {}
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                counts[(a, b)] = counts.get((a, b), 0) + c
        if not counts:
            break
        best = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        if counts[best] < 2:
            break
        merges.append(best)
        new = {}
        for w, c in words.items():
            out = []
            i = 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] = new.get(tuple(out), 0) + c
        words = new
    return merges


def added(id_, content, special, lstrip=False, rstrip=False, single_word=False, normalized=False):
    return {"id": id_, "content": content, "single_word": single_word, "lstrip": lstrip,
            "rstrip": rstrip, "normalized": normalized, "special": special}


def sp_words(text):
    """SentencePiece-style words: spaces become U+2581 and start each word."""
    words = {}
    for line in text.split("\n"):
        for w in line.split(" "):
            if w:
                key = tuple(SP + w)
                words[key] = words.get(key, 0) + 1
    return words


def make_sp_bytefallback(train_text):
    """Llama-2 style: Prepend/Replace normalizer, byte fallback, merges as strings."""
    words = sp_words(train_text[:40000])
    chars = {}
    for w, c in words.items():
        for ch in w:
            chars[ch] = chars.get(ch, 0) + c
    # Keep only frequent characters so that rarer ones take the byte fallback.
    base = sorted(ch for ch, c in chars.items() if c >= 20)
    words = {tuple(ch for ch in w): c for w, c in words.items()}
    merges = train_bpe({w: c for w, c in words.items() if all(ch in base for ch in w)}, 150, base)
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for ch in base:
        vocab.setdefault(ch, len(vocab))
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    extra = ["<mask>", "<|user|>", "foo", "bar"]
    for t in extra:
        vocab.setdefault(t, len(vocab))
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [
            added(0, "<unk>", True), added(1, "<s>", True), added(2, "</s>", True),
            added(vocab["<mask>"], "<mask>", True, lstrip=True),
            added(vocab["<|user|>"], "<|user|>", False),
            added(vocab["foo"], "foo", False, normalized=True),
            added(vocab["bar"], "bar", False, single_word=True, rstrip=True),
        ],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": SP},
            {"type": "Replace", "pattern": {"String": " "}, "content": SP}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                    {"Sequence": {"id": "A", "type_id": 0}},
                                    {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": SP}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": ["%s %s" % m for m in merges]},
    }, {
        "tokenizer_class": "LlamaTokenizerFast", "add_bos_token": True, "add_eos_token": True,
        "bos_token": "<s>", "eos_token": {"__type": "AddedToken", "content": "</s>", "lstrip": False,
                                          "normalized": False, "rstrip": False, "single_word": False},
        "unk_token": "<unk>", "legacy": True, "model_max_length": 1000000,
    }


def make_sp_metaspace(train_text):
    """Older Llama/Mistral style: Metaspace pre-tokenizer, no byte fallback
    (unknown characters fuse into one <unk>), merges as [a, b] pairs."""
    words = sp_words(train_text[40000:80000])
    base = sorted({ch for w in words for ch in w if ch == SP or (ch.isascii() and ch.isalpha())})
    merges = train_bpe({w: c for w, c in words.items() if all(ch in base for ch in w)}, 120, base)
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "<sep>": 3}
    for ch in base:
        vocab.setdefault(ch, len(vocab))
    for ch in ".,!?'0123456789":
        vocab.setdefault(ch, len(vocab))
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [added(0, "<unk>", True), added(1, "<s>", True), added(2, "</s>", True),
                         added(3, "<sep>", True, lstrip=True, rstrip=True)],
        "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": SP, "prepend_scheme": "first",
                          "split": True},
        "post_processor": None,
        "decoder": {"type": "Metaspace", "replacement": SP, "prepend_scheme": "first", "split": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [list(m) for m in merges]},
    }, {
        "tokenizer_class": "PreTrainedTokenizerFast", "add_eos_token": True,
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
    }


def bl_words(text, prefix_space):
    m = bytes_to_unicode()
    words = {}
    for line in text.split("\n"):
        for k, w in enumerate(line.split(" ")):
            if not w:
                continue
            s = (" " if (k > 0 or prefix_space) else "") + w
            key = tuple(m[b] for b in s.encode("utf-8"))
            words[key] = words.get(key, 0) + 1
    return words


def bl_vocab(merges, specials):
    m = bytes_to_unicode()
    vocab = {}
    for b in range(256):
        vocab[m[b]] = len(vocab)
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    return vocab


def make_bl_split(train_text):
    """Llama-3 style: Split(regex) + ByteLevel(use_regex=false), ignore_merges,
    merges as pairs, BOS from a TemplateProcessing inside a Sequence."""
    merges = train_bpe(bl_words(train_text[80000:120000], False), 200, None)
    vocab = bl_vocab(merges, [])
    m = bytes_to_unicode()
    # Whole words with no merge path to them: only ignore_merges can emit them.
    for w in [" zebra", " Hello", "quantization"]:
        vocab.setdefault("".join(m[b] for b in w.encode()), len(vocab))
    sp = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
    toks = []
    for t in sp:
        vocab[t] = len(vocab)
        toks.append(added(vocab[t], t, True))
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": toks,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_PAT}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                        {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                      {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
                      {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>",
                                                      "ids": [vocab["<|begin_of_text|>"]],
                                                      "tokens": ["<|begin_of_text|>"]}}}]},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                  "vocab": vocab, "merges": [list(mm) for mm in merges]},
    }, {
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|begin_of_text|>",
        "eos_token": "<|end_of_text|>", "model_max_length": 131072,
    }


def make_bl_gpt2(train_text):
    """GPT-2 / RoBERTa style: ByteLevel(add_prefix_space=true, use_regex=true),
    merges as "a b" strings, RobertaProcessing."""
    merges = train_bpe(bl_words(train_text[120000:150000], True), 120, None)
    vocab = bl_vocab(merges, [])
    toks = []
    for t in ["<s>", "</s>", "<pad>"]:
        vocab[t] = len(vocab)
        toks.append(added(vocab[t], t, True))
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": toks,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", vocab["</s>"]],
                           "cls": ["<s>", vocab["<s>"]], "trim_offsets": True, "add_prefix_space": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": "", "end_of_word_suffix": "",
                  "fuse_unk": False, "byte_fallback": False,
                  "vocab": vocab, "merges": ["%s %s" % mm for mm in merges]},
    }, {
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
        "pad_token": "<pad>",
    }


def make_cs_affix(train_text):
    """WordPiece-like BPE: whitespace Split (Removed), continuing_subword_prefix
    "##", end_of_word_suffix "</w>", unfused <unk>, no decoder (tokens joined
    by spaces), BertProcessing."""
    words = {}
    for w in train_text[150000:170000].split():
        if all(c.isascii() and c.isalpha() for c in w):
            syms = [w[0]] + ["##" + c for c in w[1:]]
            syms[-1] += "</w>"
            words[tuple(syms)] = words.get(tuple(syms), 0) + 1
    merges = train_bpe_affix(words, 150)
    vocab = {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2}
    for c in sorted({c for w in words for sym in w for c in sym.replace("##", "").replace("</w>", "")}):
        for v in (c, "##" + c, c + "</w>", "##" + c + "</w>"):
            vocab.setdefault(v, len(vocab))
    for a, b in merges:
        vocab.setdefault(a + b[2:], len(vocab))
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [added(0, "[UNK]", True), added(1, "[CLS]", True), added(2, "[SEP]", True)],
        "normalizer": None,
        "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Removed", "invert": False},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 2], "cls": ["[CLS]", 1]},
        "decoder": None,
        "model": {"type": "BPE", "dropout": None, "unk_token": "[UNK]",
                  "continuing_subword_prefix": "##", "end_of_word_suffix": "</w>",
                  "fuse_unk": False, "byte_fallback": False,
                  "vocab": vocab, "merges": ["%s %s" % m for m in merges]},
    }, {"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]", "cls_token": "[CLS]",
        "sep_token": "[SEP]"}


def train_bpe_affix(words, nmerges):
    """train_bpe for symbols carrying "##": merging a and ##b gives a + b."""
    words = dict(words)
    merges = []
    for _ in range(nmerges):
        counts = {}
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                counts[(a, b)] = counts.get((a, b), 0) + c
        if not counts:
            break
        best = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        if counts[best] < 2:
            break
        merges.append(best)
        new = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1][2:])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] = new.get(tuple(out), 0) + c
        words = new
    return merges


def make_bl_behaviors(train_text):
    """Byte-level BPE behind a chain of Split behaviours and Digits, ByteLevel
    with add_prefix_space but no regex, no post-processor."""
    tj, cfg = make_bl_gpt2(train_text)
    tj["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "\\p{P}"}, "behavior": "MergedWithPrevious", "invert": False},
        {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithNext", "invert": False},
        {"type": "Split", "pattern": {"Regex": "[0-9]"}, "behavior": "Contiguous", "invert": True},
        {"type": "Digits", "individual_digits": True},
        {"type": "Split", "pattern": {"Regex": "q"}, "behavior": "Removed", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": False}]}
    tj["post_processor"] = None
    return tj, {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>"}


def make_sp_always(train_text):
    """transformers 5 Llama style: Metaspace(prepend_scheme always, split
    false), a Regex Replace normalizer, a normalized lstrip added token,
    TemplateProcessing with BOS and EOS."""
    tj, cfg = make_sp_bytefallback(train_text)
    vocab = tj["model"]["vocab"]
    vocab.setdefault("<ns>", len(vocab))
    tj["added_tokens"].append(added(vocab["<ns>"], "<ns>", False, lstrip=True, normalized=True))
    tj["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Replace", "pattern": {"Regex": "\\t"}, "content": " "}]}
    tj["pre_tokenizer"] = {"type": "Metaspace", "replacement": SP, "prepend_scheme": "always", "split": False}
    tj["post_processor"] = {"type": "TemplateProcessing",
                            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                       {"Sequence": {"id": "A", "type_id": 0}},
                                       {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                            "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                                     {"Sequence": {"id": "B", "type_id": 1}}],
                            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]},
                                               "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}}
    return tj, {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
                "unk_token": "<unk>"}


HARD_CASES = [
    "", " ", "  ", "\n", "\t", "\n\n\n", "Hello world", " Hello world", "  Hello  world  ",
    "Hello\n\nworld\n", "tabs\tand\t\ttabs", "line1\r\nline2\rline3", "trailing spaces   ",
    "   leading", "I'm you're he'll she'd we've they're it's", "I'M YOU'RE HE'LL 'S",
    "numbers 1234567890 3.14159 1,000,000 2024-01-01 007", "x1y22z333 123456789012",
    "unicode: caf\u00e9 na\u00efve r\u00e9sum\u00e9 Stra\u00dfe \u00c5ngstr\u00f6m",
    "combining: e\u0301 a\u0308 n\u0303 \u0915\u093f",
    "CJK: \u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \u4e2d\u6587\u5b57\u7b26 \ud55c\uad6d\uc5b4",
    "emoji: \U0001F600\U0001F44D\U0001F3FD \U0001F468\u200d\U0001F469\u200d\U0001F467 \U0001F1EB\U0001F1F7",
    "mixed: \u03b1\u03b2\u03b3 \u0416\u0417\u0418 \u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u05e2\u05d1\u05e8\u05d9\u05ea",
    "\u00a0nbsp\u2003emspace\u3000ideographic\u2028linesep",
    "zero\u200bwidth\u200djoiner\ufeffbom",
    "special <s> inside </s> text", "<s>", "</s><s>", "a<s>b", " <s> ", "<s>Hello",
    "<|endoftext|>middle<pad>end", "<unk> and <0x41>",
    "<mask>", "hello <mask> world", "hello<mask>world", "  <mask>  x", "<|user|>hi<|user|>",
    "foo bar foobar afoo barfoo", "bar", "x bar  y", "(bar)",
    "<sep>", "a <sep> b", "a  <sep>  b",
    "<|begin_of_text|>Hi<|eot_id|>", "zebra Zebra zebras Hello quantization",
    "\u2581already\u2581has\u2581metaspace \u2581", "\u0120byte level chars \u0120 \u010a",
    "!!!???...,,, ---", "a-b_c.d/e\\f", "$100 & 50% #hash @user ~tilde^ `code`",
    "control\x01\x02\x7f chars", "x" * 300, " " * 40 + "end", "end" + " " * 40,
    "The the THE tHe", "don't won't can't shouldn't", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "def f(x):\n    return x**2  # comment\n\tpass\n",
    "a\tb\t\tc", "<ns>", "x <ns> y", "  <ns>", "x\t<ns>", "q-quick quiz qq", "v1.2.3-rc4! (yes)...",
    "hello, world! 12345 x", "Straße 42, naïve! café.", "[CLS] [SEP] [UNK]",
]


def prepare(shared, data):
    os.makedirs(data, exist_ok=True)
    models = os.path.join(shared, "models")
    a = open(os.path.join(models, "llama-27m", "tokenizer.json"), "rb").read()
    b = open(os.path.join(models, "opt-18m", "tokenizer.json"), "rb").read()
    if a != b:
        sys.exit("llama-27m and opt-18m tokenizer.json differ: store both")
    manifest = []
    for name in ["llama-27m", "opt-18m", "stories-260k"]:
        os.makedirs(os.path.join(data, name), exist_ok=True)
        shutil.copyfile(os.path.join(models, name, "tokenizer_config.json"),
                        os.path.join(data, name, "tokenizer_config.json"))
        if name != "opt-18m":
            shutil.copyfile(os.path.join(models, name, "tokenizer.json"),
                            os.path.join(data, name, "tokenizer.json"))
        tj = "llama-27m/tokenizer.json" if name == "opt-18m" else name + "/tokenizer.json"
        manifest.append({"name": name, "tokenizer": tj, "config": name + "/tokenizer_config.json"})
    calib = open(os.path.join(shared, "text", "calib.txt"), encoding="utf-8").read(200000)
    for name, fn in [("sp-bytefallback", make_sp_bytefallback), ("sp-metaspace", make_sp_metaspace),
                     ("bl-split", make_bl_split), ("bl-gpt2", make_bl_gpt2),
                     ("cs-affix", make_cs_affix), ("bl-behaviors", make_bl_behaviors),
                     ("sp-always", make_sp_always)]:
        tj, cfg = fn(calib)
        os.makedirs(os.path.join(data, name), exist_ok=True)
        with open(os.path.join(data, name, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(tj, f, ensure_ascii=False, indent=1)
        with open(os.path.join(data, name, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(cfg, f, ensure_ascii=False, indent=1)
        manifest.append({"name": name, "tokenizer": name + "/tokenizer.json",
                         "config": name + "/tokenizer_config.json"})
    texts = []
    for fname, starts in [("eval.txt", [0, 500000, 1000000]), ("wikitext2-test.raw.txt", [0, 700000]),
                          ("tinystories-val.txt", [0, 400000])]:
        full = open(os.path.join(shared, "text", fname), encoding="utf-8").read()
        for s in starts:
            texts.append({"src": "%s@%d" % (fname, s), "text": full[s:s + 2000]})
    for t in HARD_CASES:
        texts.append({"src": "hard", "text": t})
    with open(os.path.join(data, "texts.json"), "w", encoding="utf-8") as f:
        json.dump(texts, f, ensure_ascii=False, indent=0)
    with open(os.path.join(data, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump({"tokenizers": manifest}, f, indent=1)
    print("prepared", len(manifest), "tokenizers,", len(texts), "texts in", data)


# ---------------------------------------------------------------- golden

def fnv1a64(ids):
    h = 0xcbf29ce484222325
    for i in ids:
        for byte in int(i).to_bytes(4, "little", signed=True):
            h ^= byte
            h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def wrap_diff(full, core):
    """full = pre + core + suf: return (pre, suf) or None."""
    n = len(core)
    for p in range(len(full) - n + 1):
        if full[p:p + n] == core:
            return full[:p], full[p + n:]
    return None


def golden(data, out, fulltext=None):
    import tempfile
    import tokenizers
    import transformers
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer
    print("tokenizers", tokenizers.__version__, "transformers", transformers.__version__)
    manifest = json.load(open(os.path.join(data, "manifest.json")))["tokenizers"]
    texts = [t["text"] for t in json.load(open(os.path.join(data, "texts.json"), encoding="utf-8"))]
    os.makedirs(out, exist_ok=True)
    loaded = {}
    for m in manifest:
        tj = os.path.join(data, m["tokenizer"])
        tok = Tokenizer.from_file(tj)
        tmp = tempfile.mkdtemp()
        shutil.copyfile(tj, os.path.join(tmp, "tokenizer.json"))
        shutil.copyfile(os.path.join(data, m["config"]), os.path.join(tmp, "tokenizer_config.json"))
        hf = AutoTokenizer.from_pretrained(tmp)
        loaded[m["name"]] = tok
        cases = []
        ndiff = 0
        for i, t in enumerate(texts):
            ids = tok.encode(t, add_special_tokens=False).ids
            full = tok.encode(t, add_special_tokens=True).ids
            pre_suf = wrap_diff(full, ids)
            hcore = hf(t, add_special_tokens=False)["input_ids"]
            hfull = hf(t, add_special_tokens=True)["input_ids"]
            hps = wrap_diff(hfull, hcore)
            if hcore != ids:
                ndiff += 1
            cases.append({"i": i, "ids": ids, "tok_pre": pre_suf[0], "tok_suf": pre_suf[1],
                          "hf_pre": hps[0], "hf_suf": hps[1], "hf_core_same": hcore == ids,
                          "decoded": tok.decode(ids, skip_special_tokens=False),
                          "decoded_skip": tok.decode(ids, skip_special_tokens=True)})
        print("%-16s %s: %d texts, transformers core differs from tokenizers on %d; bos %s eos %s"
              % (m["name"], type(hf).__name__, len(texts), ndiff, hf.bos_token_id, hf.eos_token_id))
        with open(os.path.join(out, "golden_%s.json" % m["name"]), "w", encoding="utf-8") as f:
            head = {"name": m["name"], "tokenizers": tokenizers.__version__,
                    "transformers": transformers.__version__, "hf_class": type(hf).__name__,
                    "vocab_size": tok.get_vocab_size(with_added_tokens=True),
                    "bos_id": hf.bos_token_id, "eos_id": hf.eos_token_id}
            f.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "cases": [\n')
            f.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in cases))
            f.write("\n]}\n")
    if fulltext:
        res = []
        for name, fname in [("llama-27m", "eval.txt"), ("llama-27m", "wikitext2-test.raw.txt"),
                            ("stories-260k", "tinystories-val.txt"),
                            ("stories-260k", "wikitext2-test.raw.txt"),
                            ("sp-bytefallback", "eval.txt"), ("bl-split", "eval.txt"),
                            ("bl-gpt2", "wikitext2-test.raw.txt"), ("sp-metaspace", "tinystories-val.txt")]:
            text = open(os.path.join(fulltext, fname), encoding="utf-8").read()
            t0 = time.time()
            ids = loaded[name].encode(text, add_special_tokens=False).ids
            dt = time.time() - t0
            res.append({"tokenizer": name, "file": fname, "n": len(ids), "fnv1a64": fnv1a64(ids),
                        "first": ids[:16], "last": ids[-16:]})
            print("%-16s %-24s %8d tokens in %.2f s  %s" % (name, fname, len(ids), dt, res[-1]["fnv1a64"]))
        with open(os.path.join(out, "golden_full.json"), "w") as f:
            json.dump(res, f, indent=1)
        # What transformers' AutoTokenizer counts on the same files.
        for name, fname in [("llama-27m", "eval.txt"), ("stories-260k", "tinystories-val.txt"),
                            ("stories-260k", "wikitext2-test.raw.txt")]:
            m = [mm for mm in manifest if mm["name"] == name][0]
            tmp = tempfile.mkdtemp()
            shutil.copyfile(os.path.join(data, m["tokenizer"]), os.path.join(tmp, "tokenizer.json"))
            shutil.copyfile(os.path.join(data, m["config"]), os.path.join(tmp, "tokenizer_config.json"))
            hf = AutoTokenizer.from_pretrained(tmp)
            text = open(os.path.join(fulltext, fname), encoding="utf-8").read()
            print("transformers %-16s %-24s %8d tokens (add_special_tokens=False), %8d (True)"
                  % (name, fname, len(hf(text, add_special_tokens=False)["input_ids"]),
                     len(hf(text)["input_ids"])))


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "prepare":
        prepare(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 4 and sys.argv[1] == "golden":
        golden(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None)
    elif len(sys.argv) >= 4 and sys.argv[1] == "golden-tar":
        # Same, packed into OUT/goldens.tar (the device returns at most 8 files).
        import tarfile
        import tempfile
        tmp = tempfile.mkdtemp()
        golden(sys.argv[2], tmp, sys.argv[4] if len(sys.argv) > 4 else None)
        with tarfile.open(os.path.join(sys.argv[3], "goldens.tar"), "w") as tf:
            for fn in sorted(os.listdir(tmp)):
                tf.add(os.path.join(tmp, fn), arcname=fn)
    else:
        sys.exit(__doc__)
