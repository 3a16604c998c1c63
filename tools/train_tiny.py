#!/usr/bin/python3
"""Make gptq-c's bundled demo: text, a byte-level BPE tokenizer and a tiny Llama, all for real.

Run from the repository root with Debian's Python (it has torch 1.13 and numpy):

    apt-get install -y python3.11-doc      # the Python 3.11 documentation, PSF License 2.0
    /usr/bin/python3 tools/train_tiny.py --out data/tiny-llama

Stages (each one deterministic; nothing touches the network):
  1. text:      the HTML pages of /usr/share/doc/python3.11/html -> plain text, one document per
                page; pages are split into train / eval by a hash of their path; data/text/calib.txt
                is a subset of the training pages, data/text/eval.txt a subset of the held-out ones.
  2. tokenizer: a byte-level BPE (GPT-2 style) trained on the training pages, written as a
                Hugging Face `tokenizers` tokenizer.json (+ tokenizer_config.json).
  3. model:     a LlamaForCausalLM defined here (RMSNorm, RoPE rotate_half, GQA, SwiGLU: the same
                function as transformers' Llama), trained on CPU, then written as bf16
                model.safetensors by a small writer below, with config.json and
                generation_config.json in transformers' layout.
  4. eval:      perplexity of the bf16 weights on data/text/eval.txt (protocol in data/README.md).

Why no `tokenizers`, `regex` or `safetensors` packages: Debian's Python here has none of them, so
the BPE trainer/encoder, the GPT-2 pre-tokenizer and the safetensors writer are written out below.
"""

import argparse
import hashlib
import html.parser
import json
import math
import os
import re
import struct
import sys
import time
import unicodedata

DOC_ROOT = "/usr/share/doc/python3.11/html"

# ----------------------------------------------------------------------------------------------
# 1. Text: HTML -> plain text
# ----------------------------------------------------------------------------------------------

# Pages that are indexes or tables of links rather than prose; their text would teach the model
# nothing but lists of names. license.html/copyright.html are legal text, kept out of the corpus
# (the licence is shipped separately in data/text/LICENSE).
SKIP_PAGES = {
    "genindex-all.html", "contents.html", "py-modindex.html", "search.html", "index.html",
    "license.html", "copyright.html", "bugs.html", "about.html", "download.html",
}

BLOCK_TAGS = {
    "p", "div", "section", "h1", "h2", "h3", "h4", "h5", "h6", "li", "ul", "ol", "dl", "dt", "dd",
    "pre", "table", "tr", "blockquote", "br", "hr", "aside", "figure", "caption", "thead", "tbody",
}


class _PageText(html.parser.HTMLParser):
    """Collects the text of a Sphinx page's <div class="body" role="main">.

    Block elements end lines; whitespace is collapsed outside <pre> and kept inside it; the
    headerlink anchors (the pilcrow after each heading) are dropped.
    """

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth = 0          # div nesting depth inside the main body; 0 = outside
        self.skip = 0           # >0 while inside script/style/headerlink
        self.pre = 0            # >0 while inside <pre>
        self.parts = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if self.depth == 0:
            if tag == "div" and a.get("role") == "main":
                self.depth = 1
            return
        if tag == "div":
            self.depth += 1
        if tag in ("script", "style") or (tag == "a" and "headerlink" in (a.get("class") or "")):
            self.skip += 1
            return
        if tag == "pre":
            self.pre += 1
        if tag in BLOCK_TAGS:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append(" ")

    def handle_endtag(self, tag):
        if self.depth == 0:
            return
        if tag in ("script", "style") or (tag == "a" and self.skip > 0):
            self.skip = max(0, self.skip - 1)
            return
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag in BLOCK_TAGS:
            self.parts.append("\n")
        if tag == "div":
            self.depth -= 1

    def handle_data(self, data):
        if self.depth == 0 or self.skip > 0:
            return
        if self.pre > 0:
            # Keep code exactly, but mark its lines so the line cleaner leaves them alone.
            self.parts.append(data.replace("\n", "\n\x00"))
        else:
            self.parts.append(re.sub(r"\s+", " ", data))


def page_text(path):
    """Plain text of one documentation page: paragraphs separated by one blank line."""
    with open(path, encoding="utf-8") as f:
        p = _PageText()
        p.feed(f.read())
        p.close()
    raw = "".join(p.parts)
    lines = []
    for line in raw.split("\n"):
        if line.startswith("\x00"):
            lines.append(line[1:].rstrip())       # a code line: keep its indentation
        else:
            lines.append(line.strip())
    text = "\n".join(lines).replace("\x00", "")
    text = re.sub(r"\n{3,}", "\n\n", text).strip("\n")
    return text + "\n" if text else ""


def is_eval_page(rel):
    """About one page in eight is held out for evaluation: decided by a hash of its path."""
    return hashlib.sha256(rel.encode()).digest()[0] % 8 == 0


def is_calib_page(rel):
    """Which training pages go into calib.txt (a second, independent hash)."""
    return hashlib.sha256(("calib:" + rel).encode()).digest()[0] % 6 == 0


def collect_pages(root):
    """[(relative path, text)] of every prose page, sorted by path."""
    pages = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("_"))
        for name in sorted(filenames):
            if not name.endswith(".html"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            if rel in SKIP_PAGES or rel.startswith("genindex"):
                continue
            text = page_text(os.path.join(dirpath, name))
            if len(text) >= 200:
                pages.append((rel, text))
    pages.sort()
    return pages


def take_up_to(pages, limit, max_page):
    """Whole pages, in order, while the total stays within `limit` bytes; pages over `max_page`
    bytes are passed over so that the file holds many documents, not two or three long ones."""
    out, total = [], 0
    for rel, text in pages:
        n = len(text.encode())
        if n <= max_page and total + n <= limit:
            out.append((rel, text))
            total += n
    return out


def join_docs(pages):
    # Documents are separated by one blank line, the same way inside training and eval text.
    return "\n".join(text for _, text in pages)


# ----------------------------------------------------------------------------------------------
# 2. Byte-level BPE tokenizer (GPT-2 style)
# ----------------------------------------------------------------------------------------------

def bytes_to_unicode():
    """GPT-2's byte -> printable character table (the alphabet every ByteLevel tokenizer uses)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def _char_class(pred):
    """A regex character class (body only) of every code point for which pred(category) holds."""
    ranges, start, prev = [], None, None
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            ok = False
        else:
            ok = pred(unicodedata.category(chr(cp)))
        if ok:
            if start is None:
                start = cp
            prev = cp
        elif start is not None:
            ranges.append((start, prev))
            start = None
    if start is not None:
        ranges.append((start, prev))
    esc = lambda cp: "\\U%08x" % cp
    return "".join(esc(a) if a == b else esc(a) + "-" + esc(b) for a, b in ranges)


def gpt2_pretokenizer():
    """GPT-2's pre-tokenizer regex written for Python's `re` (no `regex` module here):
        's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+
    \\p{L} and \\p{N} are spelled out as ranges from unicodedata's general categories, and \\s as the
    Unicode White_Space set (what the Rust/Oniguruma regex in `tokenizers` means by \\s; Python's
    own \\s would also take U+001C..U+001F). Same pattern for any input, not only the corpus.
    """
    L = _char_class(lambda c: c[0] == "L")
    N = _char_class(lambda c: c[0] == "N")
    S = "\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
    pat = (r"'s|'t|'re|'ve|'m|'ll|'d| ?[%s]+| ?[%s]+| ?[^%s%s%s]+|[%s]+(?![^%s])|[%s]+"
           % (L, N, S, L, N, S, S, S))
    return re.compile(pat)


def word_counts(text, pretok, b2u):
    counts = {}
    for w in pretok.findall(text):
        u = "".join(b2u[b] for b in w.encode("utf-8"))
        counts[u] = counts.get(u, 0) + 1
    return counts


def train_bpe(counts, n_merges, log=print):
    """Classic BPE on word counts: repeatedly merge the most frequent adjacent pair.

    Ties go to the lexicographically smallest pair (a, b), so the result does not depend on dict
    order. Pair counts are updated incrementally, only for the words that hold the merged pair.
    """
    words = sorted(counts)               # deterministic word order
    freq = [counts[w] for w in words]
    syms = [list(w) for w in words]
    pair_count, where = {}, {}
    for i, s in enumerate(syms):
        for p in zip(s, s[1:]):
            pair_count[p] = pair_count.get(p, 0) + freq[i]
            where.setdefault(p, set()).add(i)
    merges = []
    for step in range(n_merges):
        if not pair_count:
            break
        top = max(pair_count.values())
        best = min(p for p, c in pair_count.items() if c == top)
        a, b = best
        ab = a + b
        merges.append(best)
        for i in sorted(where.pop(best, ())):
            s, f = syms[i], freq[i]
            for p in zip(s, s[1:]):
                c = pair_count[p] - f
                if c:
                    pair_count[p] = c
                else:
                    del pair_count[p]
            t, j = [], 0
            while j < len(s):
                if j + 1 < len(s) and s[j] == a and s[j + 1] == b:
                    t.append(ab)
                    j += 2
                else:
                    t.append(s[j])
                    j += 1
            syms[i] = t
            for p in zip(t, t[1:]):
                pair_count[p] = pair_count.get(p, 0) + f
                where.setdefault(p, set()).add(i)
        pair_count.pop(best, None)
        if step % 256 == 0:
            log("  merge %4d: %r + %r (count %d)" % (step, a, b, top))
    return merges


class BPE:
    """Encoder with the same result as `tokenizers`' BPE model with these merges: within each
    pre-token, repeatedly apply the lowest-ranked merge present (leftmost first)."""

    def __init__(self, vocab, merges, pretok, b2u):
        self.vocab = vocab
        self.rank = {p: r for r, p in enumerate(merges)}
        self.pretok = pretok
        self.b2u = b2u
        self.cache = {}

    def word(self, u):
        s = list(u)
        while len(s) > 1:
            best, bi = None, -1
            for i in range(len(s) - 1):
                r = self.rank.get((s[i], s[i + 1]))
                if r is not None and (best is None or r < best):
                    best, bi = r, i
            if best is None:
                break
            a, b = s[bi], s[bi + 1]
            t, j = [], 0
            while j < len(s):
                if j + 1 < len(s) and s[j] == a and s[j + 1] == b:
                    t.append(a + b)
                    j += 2
                else:
                    t.append(s[j])
                    j += 1
            s = t
        return [self.vocab[x] for x in s]

    def encode(self, text):
        # As `tokenizers` does, added tokens are cut out of the text before pre-tokenization
        # (the Python docs never contain "<|endoftext|>", so this never fires on our text).
        if SPECIAL in text:
            ids = []
            for i, part in enumerate(text.split(SPECIAL)):
                if i:
                    ids.append(self.vocab[SPECIAL])
                ids.extend(self.encode(part))
            return ids
        ids = []
        for w in self.pretok.findall(text):
            u = "".join(self.b2u[b] for b in w.encode("utf-8"))
            r = self.cache.get(u)
            if r is None:
                r = self.word(u)
                self.cache[u] = r
            ids.extend(r)
        return ids


SPECIAL = "<|endoftext|>"


def tokenizer_json(vocab, merges):
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{
            "id": vocab[SPECIAL], "content": SPECIAL, "single_word": False, "lstrip": False,
            "rstrip": False, "normalized": False, "special": True,
        }],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                           "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
            "ignore_merges": False, "vocab": vocab, "merges": [[a, b] for a, b in merges],
        },
    }


TOKENIZER_CONFIG = {
    "add_bos_token": False,
    "add_eos_token": False,
    "added_tokens_decoder": {
        "0": {"content": SPECIAL, "lstrip": False, "normalized": False, "rstrip": False,
              "single_word": False, "special": True},
    },
    "bos_token": SPECIAL,
    "eos_token": SPECIAL,
    "unk_token": None,
    "pad_token": None,
    "clean_up_tokenization_spaces": False,
    "model_max_length": 256,
    "tokenizer_class": "PreTrainedTokenizerFast",
}


def build_tokenizer(train_text, vocab_size, log=print):
    """vocab: special token 0, the 256 byte symbols 1..256 (sorted by character), then merges."""
    b2u = bytes_to_unicode()
    pretok = gpt2_pretokenizer()
    counts = word_counts(train_text, pretok, b2u)
    log("tokenizer: %d distinct pre-tokens" % len(counts))
    n_merges = vocab_size - 1 - 256
    merges = train_bpe(counts, n_merges, log)
    vocab = {SPECIAL: 0}
    for c in sorted(b2u.values()):
        vocab[c] = len(vocab)
    for a, b in merges:
        vocab[a + b] = len(vocab)
    assert len(vocab) == vocab_size, "merge produced a duplicate token"
    return vocab, merges, BPE(vocab, merges, pretok, b2u)


# ----------------------------------------------------------------------------------------------
# 3. The model: transformers' LlamaForCausalLM, written out
# ----------------------------------------------------------------------------------------------

def make_model_classes(torch):
    nn = torch.nn
    F = torch.nn.functional

    class RMSNorm(nn.Module):
        # transformers' LlamaRMSNorm: normalize in f32, then multiply by the weight.
        def __init__(self, n, eps):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(n))
            self.eps = eps

        def forward(self, x):
            dt = x.dtype
            x = x.float()
            x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
            return self.weight * x.to(dt)

    def rotate_half(x):
        # first half / second half, as transformers' rotate_half (not interleaved pairs)
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), dim=-1)

    def rope_cos_sin(T, d, theta):
        inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
        freqs = torch.outer(torch.arange(T, dtype=torch.float32), inv_freq)   # (T, d/2)
        emb = torch.cat((freqs, freqs), dim=-1)                               # (T, d)
        return emb.cos(), emb.sin()

    class Attention(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.nh, self.nkv, self.hd = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
            H = c["hidden_size"]
            self.q_proj = nn.Linear(H, self.nh * self.hd, bias=False)
            self.k_proj = nn.Linear(H, self.nkv * self.hd, bias=False)
            self.v_proj = nn.Linear(H, self.nkv * self.hd, bias=False)
            self.o_proj = nn.Linear(self.nh * self.hd, H, bias=False)

        def forward(self, x, cos, sin, mask):
            B, T, _ = x.shape
            q = self.q_proj(x).view(B, T, self.nh, self.hd).transpose(1, 2)    # (B, nh, T, hd)
            k = self.k_proj(x).view(B, T, self.nkv, self.hd).transpose(1, 2)   # (B, nkv, T, hd)
            v = self.v_proj(x).view(B, T, self.nkv, self.hd).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            # GQA: query head h reads key/value head h // (nh / nkv), as transformers' repeat_kv
            rep = self.nh // self.nkv
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
            s = (q @ k.transpose(2, 3)) / math.sqrt(self.hd) + mask              # (B, nh, T, T)
            p = F.softmax(s, dim=-1, dtype=torch.float32).to(q.dtype)
            o = (p @ v).transpose(1, 2).reshape(B, T, self.nh * self.hd)
            return self.o_proj(o)

    class MLP(nn.Module):
        def __init__(self, c):
            super().__init__()
            H, I = c["hidden_size"], c["intermediate_size"]
            self.gate_proj = nn.Linear(H, I, bias=False)
            self.up_proj = nn.Linear(H, I, bias=False)
            self.down_proj = nn.Linear(I, H, bias=False)

        def forward(self, x):
            return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))

    class Layer(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.self_attn = Attention(c)
            self.mlp = MLP(c)
            self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
            self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])

        def forward(self, x, cos, sin, mask):
            x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
            return x + self.mlp(self.post_attention_layernorm(x))

    class Inner(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
            self.layers = nn.ModuleList([Layer(c) for _ in range(c["num_hidden_layers"])])
            self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])

    class LlamaForCausalLM(nn.Module):
        """Parameter names are exactly transformers' (model.layers.N.self_attn.q_proj.weight ...)."""

        def __init__(self, c):
            super().__init__()
            self.c = c
            self.model = Inner(c)
            self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
            std = c["initializer_range"]
            for m in self.modules():
                if isinstance(m, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(m.weight, mean=0.0, std=std)

        def forward(self, ids):                      # ids (B, T) int64 -> logits (B, T, V) f32
            B, T = ids.shape
            cos, sin = rope_cos_sin(T, self.c["head_dim"], self.c["rope_theta"])
            mask = torch.full((T, T), float("-inf")).triu(1)
            x = self.model.embed_tokens(ids)
            for layer in self.model.layers:
                x = layer(x, cos, sin, mask)
            return self.lm_head(self.model.norm(x)).float()

    return LlamaForCausalLM


def llama_config(vocab_size, hidden, layers, heads, kv_heads, inter, max_pos):
    return {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "eos_token_id": 0,
        "head_dim": hidden // heads,
        "hidden_act": "silu",
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "intermediate_size": inter,
        "max_position_embeddings": max_pos,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "num_key_value_heads": kv_heads,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.46.0",
        "use_cache": True,
        "vocab_size": vocab_size,
    }


GENERATION_CONFIG = {
    "_from_model_config": True,
    "bos_token_id": 0,
    "eos_token_id": 0,
    "transformers_version": "4.46.0",
}


def write_safetensors(path, tensors):
    """tensors: {name: (dtype string, shape list, raw little-endian bytes)}.

    Layout: u64 little-endian header size, the JSON header (padded with spaces to a multiple of
    8 bytes so the data starts aligned), then each tensor's bytes in header order.
    """
    header, off = {"__metadata__": {"format": "pt"}}, 0
    names = sorted(tensors)
    for n in names:
        dt, shape, raw = tensors[n]
        header[n] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for n in names:
            f.write(tensors[n][2])
    os.replace(tmp, path)


def bf16_bytes(torch, t):
    """Round-to-nearest-even to bf16 (torch's own conversion) and return the raw 2-byte values."""
    return t.detach().to(torch.bfloat16).contiguous().view(torch.int16).numpy().astype("<i2").tobytes()


# ----------------------------------------------------------------------------------------------
# 4. Training and evaluation
# ----------------------------------------------------------------------------------------------

def perplexity(torch, model, ids, seqlen, batch=8):
    """exp(mean next-token NLL) over non-overlapping windows of `seqlen` tokens of `ids`, the
    remainder dropped; each window predicts its tokens 1..seqlen-1 from the ones before."""
    F = torch.nn.functional
    n = len(ids) // seqlen
    data = torch.tensor(ids[: n * seqlen], dtype=torch.int64).view(n, seqlen)
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, n, batch):
            x = data[i: i + batch]
            logits = model(x[:, :-1])
            nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                                  reduction="sum")
            total += float(nll.double())
            count += x[:, 1:].numel()
    return math.exp(total / count), n, count


def train(torch, model, ids, steps, batch, seqlen, lr, seed, log):
    F = torch.nn.functional
    g = torch.Generator().manual_seed(seed)
    data = torch.tensor(ids, dtype=torch.int64)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.95), eps=1e-8)
    warmup = max(1, steps // 20)
    t0 = time.time()
    for step in range(steps):
        # linear warmup, then cosine decay to a tenth of the peak
        if step < warmup:
            cur = lr * (step + 1) / warmup
        else:
            q = (step - warmup) / max(1, steps - warmup)
            cur = lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * q)))
        for group in opt.param_groups:
            group["lr"] = cur
        starts = torch.randint(0, len(ids) - seqlen - 1, (batch,), generator=g)
        x = torch.stack([data[s: s + seqlen + 1] for s in starts.tolist()])
        logits = model(x[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            log("  step %5d  lr %.2e  loss %.4f  (%.0f s)" % (step, cur, loss.item(), time.time() - t0))
    return time.time() - t0


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


LICENSE_HEAD = """\
The files in this folder (calib.txt, eval.txt) are text of the Python 3.11 documentation, as
shipped by Debian bookworm's package python3.11-doc (HTML under /usr/share/doc/python3.11/html),
converted to plain text by tools/train_tiny.py. The tokenizer and the model weights in
../tiny-llama were trained on text of the same documentation.

Summary of changes (PSF License Agreement, clause 3): the HTML pages were converted to plain text
(navigation, sidebars, scripts and markup removed; code blocks kept verbatim); a subset of the
pages was selected and concatenated, one blank line between pages.

The Python documentation is distributed under the PSF License Agreement (PSF License 2.0, the
Python licence); code examples in it are in addition under the Zero-Clause BSD licence. Its
copyright notice and its complete "History and License" page follow, as converted from
copyright.html and license.html of the same package.

==================================================================================================

"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="data/tiny-llama", help="model folder to write")
    ap.add_argument("--text-dir", default=None, help="text folder (default: OUT/../text)")
    ap.add_argument("--docs", default=DOC_ROOT, help="Python documentation HTML root")
    ap.add_argument("--vocab", type=int, default=1536)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--inter", type=int, default=384)
    ap.add_argument("--seqlen", type=int, default=256, help="training and eval window")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--calib-bytes", type=int, default=450_000)
    ap.add_argument("--eval-bytes", type=int, default=160_000)
    args = ap.parse_args()

    import torch
    torch.set_num_threads(1)          # the build machine is shared; one core is the fair share
    torch.manual_seed(args.seed)
    out = args.out
    text_dir = args.text_dir or os.path.join(os.path.dirname(os.path.abspath(out)), "text")
    os.makedirs(out, exist_ok=True)
    os.makedirs(text_dir, exist_ok=True)
    log_lines = []

    def log(msg):
        print(msg, flush=True)
        log_lines.append(msg)

    t_all = time.time()
    # 1. text
    pages = collect_pages(args.docs)
    train_pages = [p for p in pages if not is_eval_page(p[0])]
    eval_pages = [p for p in pages if is_eval_page(p[0])]
    order = lambda p: hashlib.sha256(("order:" + p[0]).encode()).digest()
    calib = take_up_to(sorted(train_pages, key=order), args.calib_bytes, 60_000)
    evals = take_up_to(sorted(eval_pages, key=order), args.eval_bytes, 30_000)
    train_text = join_docs(train_pages)
    calib_text = join_docs(sorted(calib))
    eval_text = join_docs(sorted(evals))
    with open(os.path.join(text_dir, "calib.txt"), "w", encoding="utf-8") as f:
        f.write(calib_text)
    with open(os.path.join(text_dir, "eval.txt"), "w", encoding="utf-8") as f:
        f.write(eval_text)
    with open(os.path.join(text_dir, "LICENSE"), "w", encoding="utf-8") as f:
        f.write(LICENSE_HEAD)
        f.write(page_text(os.path.join(args.docs, "copyright.html")))
        f.write("\n" + "=" * 98 + "\n\n")
        f.write(page_text(os.path.join(args.docs, "license.html")))
    log("text: %d pages; train %d pages %d bytes; eval pool %d pages; calib.txt %d pages %d bytes;"
        " eval.txt %d pages %d bytes" % (
            len(pages), len(train_pages), len(train_text.encode()), len(eval_pages), len(calib),
            len(calib_text.encode()), len(evals), len(eval_text.encode())))
    log("eval.txt pages: " + " ".join(r for r, _ in sorted(evals)))

    # 2. tokenizer
    vocab, merges, bpe = build_tokenizer(train_text, args.vocab, log)
    write_json(os.path.join(out, "tokenizer.json"), tokenizer_json(vocab, merges))
    write_json(os.path.join(out, "tokenizer_config.json"), TOKENIZER_CONFIG)
    train_ids = bpe.encode(train_text)
    eval_ids = bpe.encode(eval_text)
    calib_ids = bpe.encode(calib_text)
    log("tokens: train %d, calib.txt %d, eval.txt %d" % (len(train_ids), len(calib_ids), len(eval_ids)))

    # 3. model
    cfg = llama_config(args.vocab, args.hidden, args.layers, args.heads, args.kv_heads, args.inter,
                       args.seqlen)
    Model = make_model_classes(torch)
    model = Model(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    log("model: %d layers, hidden %d, heads %d/%d kv, intermediate %d, vocab %d: %d parameters" % (
        args.layers, args.hidden, args.heads, args.kv_heads, args.inter, args.vocab, n_params))
    secs = train(torch, model, train_ids, args.steps, args.batch, args.seqlen, args.lr, args.seed, log)
    log("training: %d steps of %d x %d tokens in %.0f s" % (args.steps, args.batch, args.seqlen, secs))

    model.eval()
    ppl32, nwin, ntok = perplexity(torch, model, eval_ids, args.seqlen)
    # What the files hold: bf16 weights. Evaluate those (widened back to f32), as a loader would.
    tensors = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            tensors[name] = ("BF16", list(p.shape), bf16_bytes(torch, p))
            p.copy_(p.to(torch.bfloat16).float())
    ppl16, _, _ = perplexity(torch, model, eval_ids, args.seqlen)
    log("eval.txt: %d windows of %d tokens, %d predicted tokens: perplexity %.4f (f32 weights),"
        " %.4f (bf16 weights, f32 compute)" % (nwin, args.seqlen, ntok, ppl32, ppl16))

    write_safetensors(os.path.join(out, "model.safetensors"), tensors)
    write_json(os.path.join(out, "config.json"), cfg)
    write_json(os.path.join(out, "generation_config.json"), GENERATION_CONFIG)
    log("total time %.0f s" % (time.time() - t_all))
    with open(os.path.join(out, "train_log.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(log_lines) + "\n")


if __name__ == "__main__":
    main()
