#!/usr/bin/python3
"""Perplexity of data/tiny-llama after round-to-nearest (RTN) weight quantization, as reference
figures for `gptq eval` on an RTN checkpoint (RTN needs no calibration, so these are exact
targets, up to float rounding).

    /usr/bin/python3 data/make/rtn_figures.py [data/tiny-llama]

Quantized: every Linear inside the decoder layers (q/k/v/o_proj, gate/up/down_proj); embeddings,
norms and lm_head stay as they are. Grid per row and per group of G consecutive input columns,
from the bf16 weights widened to f32, as DESIGN.md's step 7 (asym: xmin = min(0, min w),
xmax = max(0, max w), both 0 -> -1, +1; s = (xmax - xmin)/maxq; z = round(-xmin/s);
q = clamp(round(w/s) + z, 0, maxq); w_hat = s (q - z); round half to even). Perplexity protocol
as train_tiny.py: eval.txt, non-overlapping windows of 256 tokens, remainder dropped.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import train_tiny  # noqa: E402


def read_safetensors(torch, path):
    import struct
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        assert h["dtype"] == "BF16"
        a, b = h["data_offsets"]
        raw = torch.frombuffer(bytearray(data[a:b]), dtype=torch.int16)
        out[name] = raw.view(torch.bfloat16).float().view(h["shape"])
    return out


def rtn(torch, w, bits, group, sym):
    maxq = 2 ** bits - 1
    rows, cols = w.shape
    out = torch.empty_like(w)
    for c0 in range(0, cols, group):
        g = w[:, c0:c0 + group]
        xmin = torch.clamp(g.min(dim=1).values, max=0)
        xmax = torch.clamp(g.max(dim=1).values, min=0)
        if sym:
            xmax = torch.maximum(xmin.abs(), xmax)
            xmin = -xmax
        both0 = (xmin == 0) & (xmax == 0)
        xmin[both0], xmax[both0] = -1, 1
        s = (xmax - xmin) / maxq
        z = torch.full_like(s, (maxq + 1) / 2) if sym else torch.round(-xmin / s)
        q = torch.clamp(torch.round(g / s[:, None]) + z[:, None], 0, maxq)
        out[:, c0:c0 + group] = s[:, None] * (q - z[:, None])
    return out


def main():
    import torch
    torch.set_num_threads(1)
    model_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "data", "tiny-llama")
    text_dir = os.path.join(os.path.dirname(os.path.abspath(model_dir)), "text")
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    seqlen = cfg["max_position_embeddings"]
    tj = json.load(open(os.path.join(model_dir, "tokenizer.json"), encoding="utf-8"))
    bpe = train_tiny.BPE(tj["model"]["vocab"], [tuple(m) for m in tj["model"]["merges"]],
                         train_tiny.gpt2_pretokenizer(), train_tiny.bytes_to_unicode())
    ids = bpe.encode(open(os.path.join(text_dir, "eval.txt"), encoding="utf-8").read())
    sd = read_safetensors(torch, os.path.join(model_dir, "model.safetensors"))
    model = train_tiny.make_model_classes(torch)(cfg)
    model.load_state_dict(sd, strict=True)
    model.eval()
    ppl, nwin, ntok = train_tiny.perplexity(torch, model, ids, seqlen)
    print("fp (bf16 weights, f32 compute): %.4f  (%d windows of %d, %d predicted tokens)" % (
        ppl, nwin, seqlen, ntok))
    for bits, group, sym in [(4, 128, False), (4, 128, True), (3, 128, False), (4, -1, False),
                            (2, 128, False)]:
        q = {}
        for name, w in sd.items():
            if ".layers." in name and name.endswith("proj.weight"):
                q[name] = rtn(torch, w, bits, w.shape[1] if group < 0 else group, sym)
            else:
                q[name] = w
        model.load_state_dict(q, strict=True)
        ppl, _, _ = train_tiny.perplexity(torch, model, ids, seqlen)
        print("RTN w%d g%d %s: %.4f" % (bits, group, "sym" if sym else "asym", ppl))


if __name__ == "__main__":
    main()
