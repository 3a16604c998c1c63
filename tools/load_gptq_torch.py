#!/usr/bin/env python3
"""load_gptq_torch.py — load a GPTQ checkpoint written by `gptq quantize` with
transformers' own model class and measure its perplexity in PyTorch: the proof
that the checkpoint means, to a PyTorch reader, what gptq-c means by it.

How it reads the checkpoint (independently of gptq-c's code, from the format
description: README.md "Checkpoint format", GPTQModel / AutoGPTQ / vLLM docs):
  - config.json without its quantization_config builds the model through
    AutoConfig + AutoModelForCausalLM.from_config (fp32);
  - every tensor that is not part of a quantized Linear is loaded with
    load_state_dict (embeddings, norms, lm_head, OPT positions);
  - every Linear P with P.qweight is replaced by a module whose weight is
    dequantized HERE, in PyTorch, from P.qweight / P.qzeros / P.scales /
    P.g_idx (and P.bias):
        qweight (K*b/32, N) int32: for output n the K codes form one
            little-endian bit stream down column n (code k at stream bits
            b*k .. b*k+b-1, stream bit t in bit t%32 of word t//32); for
            b = 2, 4, 8 that is field k % (32/b) of word k // (32/b), for
            b = 3 every 32 codes fill 3 words and codes 10 and 21 straddle;
        qzeros (ngroups, N*b/32): one such stream along each row;
            checkpoint_format "gptq" (v1) stores z - 1 (add 1 back),
            "gptq_v2" stores z;
        scales (ngroups, N) fp16; g_idx (K) the group of input k;
        W[n, k] = scales[g_idx[k], n] * (q[k, n] - z[g_idx[k], n]).
Perplexity (shared/README.md): the whole text encoded with tokenizer.json by
the `tokenizers` library, no special tokens; non-overlapping windows of
--seqlen tokens, the remainder dropped; exp(mean next-token NLL) over the
seqlen-1 predicted tokens of each window, NLL summed in float64.

usage: python3 tools/load_gptq_torch.py CKPT [CKPT ...] --text eval.txt
           [--seqlen 512] [--max-windows N] [--expect PPL ...] [--device cuda]
Prints one line per checkpoint; with --expect (one per checkpoint, e.g. the
`gptq eval` figures) also the relative difference, and exits 1 when any is
above --rtol (default 1e-3, i.e. 0.1%).
"""
import argparse
import json
import math
import os
import struct
import sys
import tempfile

import torch


# ---------------------------------------------------------------------------
# safetensors, read by hand (header JSON + raw little-endian data)
# ---------------------------------------------------------------------------

_DT = {
    "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I32": torch.int32, "I64": torch.int64, "U8": torch.uint8, "I8": torch.int8,
    "I16": torch.int16, "F64": torch.float64, "BOOL": torch.bool,
}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        s, t = e["data_offsets"]
        buf = bytearray(data[base + s:base + t])
        ten = torch.frombuffer(buf, dtype=_DT[e["dtype"]]) if t > s else \
            torch.empty(0, dtype=_DT[e["dtype"]])
        out[name] = ten.reshape(e["shape"]).clone()
    return out, header.get("__metadata__", {})


def read_checkpoint(d):
    idx = os.path.join(d, "model.safetensors.index.json")
    tensors = {}
    if os.path.exists(idx):
        with open(idx) as f:
            wm = json.load(f)["weight_map"]
        for shard in sorted(set(wm.values())):
            t, meta = read_safetensors(os.path.join(d, shard))
            assert meta.get("format") == "pt", f"{shard}: metadata {meta}"
            tensors.update(t)
        assert set(wm) == set(tensors), "index and shards disagree"
    else:
        tensors, meta = read_safetensors(os.path.join(d, "model.safetensors"))
        assert meta.get("format") == "pt", f"metadata {meta}"
    return tensors


# ---------------------------------------------------------------------------
# the GPTQ tensors
# ---------------------------------------------------------------------------

def unpack_stream(words, bits, count):
    """words (W, C) int32, each column one little-endian bit stream ->
    (count, C) int64 values of `bits` bits (value i at stream bits
    bits*i .. bits*i+bits-1)."""
    w = words.to(torch.int64) & 0xFFFFFFFF              # the uint32 pattern
    w = torch.cat([w, torch.zeros_like(w[:1])], dim=0)  # room for a straddle
    i = torch.arange(count, dtype=torch.int64)
    t = bits * i
    lo_word, shift = t // 32, t % 32
    lo = w[lo_word] >> shift[:, None]
    hi = w[lo_word + 1] << (32 - shift)[:, None]        # bits past the word end
    return (lo | hi) & ((1 << bits) - 1)


def dequantize(qweight, qzeros, scales, g_idx, bits, fmt):
    """-> W (N, K) float32."""
    K = qweight.shape[0] * 32 // bits
    N = qweight.shape[1]
    ngroups = qzeros.shape[0]
    q = unpack_stream(qweight, bits, K)                     # (K, N)
    z = unpack_stream(qzeros.t().contiguous(), bits, N).t()  # (ngroups, N)
    if fmt == "gptq":
        z = z + 1
    elif fmt != "gptq_v2":
        raise ValueError(f"checkpoint_format {fmt}")
    assert scales.shape == (ngroups, N) and g_idx.shape == (K,)
    g = g_idx.to(torch.int64)
    assert int(g.min()) >= 0 and int(g.max()) < ngroups
    s = scales.to(torch.float32)
    Wt = s[g] * (q - z[g]).to(torch.float32)                # (K, N)
    return Wt.t().contiguous()


class DequantLinear(torch.nn.Module):
    def __init__(self, W, bias):
        super().__init__()
        self.register_buffer("weight", W)
        self.register_buffer("bias", None if bias is None else bias.to(torch.float32))

    def forward(self, x):
        return torch.nn.functional.linear(x, self.weight, self.bias)


# ---------------------------------------------------------------------------
# model
# ---------------------------------------------------------------------------

def load_model(d, device):
    from transformers import AutoConfig, AutoModelForCausalLM

    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    qc = cfg.pop("quantization_config")
    assert qc["quant_method"] == "gptq" and qc.get("lm_head") is False
    bits, fmt = qc["bits"], qc.get("checkpoint_format", qc.get("format", "gptq"))
    # gptq-c writes both keys (optimum reads "format"); they must agree
    assert qc.get("format", fmt) == fmt, f"{d}: checkpoint_format {fmt}, format {qc['format']}"
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(cfg, f)
        config = AutoConfig.from_pretrained(tmp)
    try:
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    except TypeError:  # transformers 4 spells it torch_dtype
        model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)
    model = model.float()
    tensors = read_checkpoint(d)
    prefixes = sorted(k[:-len(".qweight")] for k in tensors if k.endswith(".qweight"))
    replaced = set()
    for p in prefixes:
        W = dequantize(tensors[p + ".qweight"], tensors[p + ".qzeros"], tensors[p + ".scales"],
                       tensors[p + ".g_idx"], bits, fmt)
        bias = tensors.get(p + ".bias")
        parent, _, child = p.rpartition(".")
        old = model.get_submodule(p)
        assert isinstance(old, torch.nn.Linear), p
        assert old.weight.shape == W.shape, (p, old.weight.shape, W.shape)
        assert (old.bias is None) == (bias is None), p
        setattr(model.get_submodule(parent), child, DequantLinear(W, bias))
        for suffix in (".qweight", ".qzeros", ".scales", ".g_idx", ".bias"):
            replaced.add(p + suffix)
    rest = {k: v.to(torch.float32) for k, v in tensors.items() if k not in replaced}
    missing, unexpected = model.load_state_dict(rest, strict=False)
    # What may be missing: the quantized linears' own buffers (set above) and
    # a tied lm_head (shares the embedding).
    missing = [m for m in missing if not any(m.startswith(p + ".") for p in prefixes)
               and not (m == "lm_head.weight" and config.tie_word_embeddings)]
    assert not missing and not unexpected, (missing, unexpected)
    if config.tie_word_embeddings and hasattr(model, "tie_weights"):
        model.tie_weights()
    return model.to(device).eval(), len(prefixes), qc


@torch.no_grad()
def perplexity(model, ids, seqlen, max_windows, device, batch=16):
    nwin = len(ids) // seqlen
    if max_windows:
        nwin = min(nwin, max_windows)
    x = torch.tensor(ids[:nwin * seqlen], dtype=torch.int64).reshape(nwin, seqlen)
    nll = 0.0
    for b in range(0, nwin, batch):
        xb = x[b:b + batch].to(device)
        logits = model(input_ids=xb).logits.to(torch.float32)
        lp = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]), xb[:, 1:].reshape(-1),
            reduction="none")
        nll += lp.to(torch.float64).sum().item()
    return math.exp(nll / (nwin * (seqlen - 1))), nwin


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ckpt", nargs="+")
    ap.add_argument("--text", required=True)
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--max-windows", type=int, default=0)
    ap.add_argument("--expect", type=float, nargs="*", default=[])
    ap.add_argument("--rtol", type=float, default=1e-3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 as the reference protocol
    torch.backends.cudnn.allow_tf32 = False
    import tokenizers
    import transformers
    from tokenizers import Tokenizer
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, tokenizers "
          f"{tokenizers.__version__}, device {a.device}"
          f"{' (' + torch.cuda.get_device_name() + ')' if a.device == 'cuda' else ''}", flush=True)
    with open(a.text, encoding="utf-8") as f:
        text = f.read()
    bad = 0
    for i, d in enumerate(a.ckpt):
        try:
            tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
            ids = tok.encode(text, add_special_tokens=False).ids
            model, nq, qc = load_model(d, a.device)
            ppl, nwin = perplexity(model, ids, a.seqlen, a.max_windows, a.device)
        except Exception:  # report and go on with the next checkpoint
            import traceback
            traceback.print_exc()
            print(f"{d}: FAILED", flush=True)
            bad += 1
            continue
        line = (f"{d}: ppl {ppl:.6f} ({len(ids)} tokens, {nwin} windows of {a.seqlen}; "
                f"{nq} linears dequantized in PyTorch, {qc['bits']}-bit "
                f"g{qc['group_size']} {'sym' if qc['sym'] else 'asym'}"
                f"{' act-order' if qc['desc_act'] else ''} {qc['checkpoint_format']})")
        if i < len(a.expect):
            rel = abs(ppl - a.expect[i]) / a.expect[i]
            line += f"; gptq eval {a.expect[i]:.4f}, rel. diff {rel:.2e}"
            bad += rel > a.rtol
        print(line, flush=True)
        del model
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
