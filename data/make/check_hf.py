#!/usr/bin/env python3
"""Cross-check data/tiny-llama against the real Hugging Face libraries (where they are installed,
e.g. the device machine; the build machine has neither `tokenizers` nor `transformers`).

    python3 data/make/check_hf.py [data/tiny-llama]

Checks, each printed as OK or MISMATCH:
  1. `tokenizers` loads tokenizer.json and encodes data/text/{eval,calib}.txt to exactly the ids
     that tools/train_tiny.py's own BPE encoder gives (the ids the perplexity was measured on);
     decoding gives the text back.
  2. transformers' AutoTokenizer (tokenizer_config.json) adds no BOS/EOS.
  3. transformers' LlamaForCausalLM loads the folder and, in f32 on the CPU, gives the perplexity
     that train_log.txt reports for the bf16 weights (same protocol: non-overlapping windows of
     config max_position_embeddings tokens, remainder dropped); and tools/train_tiny.py's model
     class gives the same logits.
"""
import json
import math
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import train_tiny  # noqa: E402


def main():
    model_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "data", "tiny-llama")
    text_dir = os.path.join(os.path.dirname(os.path.abspath(model_dir)), "text")
    tj = json.load(open(os.path.join(model_dir, "tokenizer.json"), encoding="utf-8"))
    merges = [tuple(m) for m in tj["model"]["merges"]]
    ours = train_tiny.BPE(tj["model"]["vocab"], merges, train_tiny.gpt2_pretokenizer(),
                          train_tiny.bytes_to_unicode())
    ok = True

    import tokenizers
    tok = tokenizers.Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    ids = {}
    for name in ("eval.txt", "calib.txt"):
        text = open(os.path.join(text_dir, name), encoding="utf-8").read()
        a = tok.encode(text, add_special_tokens=False).ids
        b = ours.encode(text)
        same = a == b
        first = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), None)
        dec = tok.decode(a) == text
        print("%s %s: tokenizers %d ids, ours %d ids%s; decode round trip %s" % (
            "OK" if same and dec else "MISMATCH", name, len(a), len(b),
            "" if same else " (first difference at %s)" % first, dec))
        ok &= same and dec
        ids[name] = a

    # The project's tokenizer test strings (edge cases: Unicode, whitespace runs, contractions).
    tpath = os.path.join(ROOT, "tests", "data", "tokenizer", "texts.json")
    if os.path.exists(tpath):
        texts = [t["text"] for t in json.load(open(tpath, encoding="utf-8"))]
        bad = [i for i, t in enumerate(texts)
               if tok.encode(t, add_special_tokens=False).ids != ours.encode(t)]
        print("%s tests/data/tokenizer/texts.json: %d texts, %d differ %s" % (
            "OK" if not bad else "MISMATCH", len(texts), len(bad), bad[:10]))
        ok &= not bad

    import torch
    import transformers
    at = transformers.AutoTokenizer.from_pretrained(model_dir)
    e = at("import os")["input_ids"]
    good = e == tok.encode("import os", add_special_tokens=False).ids
    print("%s AutoTokenizer adds no special tokens: %s" % ("OK" if good else "MISMATCH", e))
    ok &= good

    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    seqlen = cfg["max_position_embeddings"]
    torch.backends.cuda.matmul.allow_tf32 = False
    hf = transformers.LlamaForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    hf.eval()

    class Wrap(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m(input_ids=x).logits.float()

    ppl, nwin, ntok = train_tiny.perplexity(torch, Wrap(hf), ids["eval.txt"], seqlen)
    log = open(os.path.join(model_dir, "train_log.txt"), encoding="utf-8").read()
    m = re.search(r"perplexity [0-9.]+ \(f32 weights\), ([0-9.]+) \(bf16 weights", log)
    want = float(m.group(1))
    good = abs(ppl - want) <= 1e-4 * want
    print("%s transformers %s perplexity %.4f over %d windows (%d tokens); train_log says %.4f" % (
        "OK" if good else "MISMATCH", transformers.__version__, ppl, nwin, ntok, want))
    ok &= good

    mine = train_tiny.make_model_classes(torch)(cfg)
    sd = {k: v.float() for k, v in hf.state_dict().items()}
    missing = mine.load_state_dict(sd, strict=True)
    x = torch.tensor(ids["eval.txt"][:seqlen]).view(1, seqlen)
    with torch.no_grad():
        d = (Wrap(hf)(x) - mine(x)).abs().max().item()
    good = d < 1e-3
    print("%s logits of train_tiny's model class vs transformers: max |diff| %.3g" % (
        "OK" if good else "MISMATCH", d))
    ok &= good
    print("ALL OK" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
