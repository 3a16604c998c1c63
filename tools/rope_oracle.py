#!/usr/bin/python3
"""rope_oracle.py -- an independent check of gptq-c's RoPE tables (issue 11).

Recomputes the [cos | sin] table of each case tests/test_rope.c dumps, the
way transformers' rotary embedding builds it in PyTorch (fp32 tensors,
Python-float scalars, modeling_rope_utils.py's documented formulas for the
default, linear, dynamic, llama3 and yarn types), and prints the largest
absolute difference from gptq-c's table per case. Not a dependency of the
product; needs python3-torch and python3-numpy (Debian: /usr/bin/python3).

    GPTQ_ROPE_DUMP=/tmp/rope OPENBLAS_CORETYPE=Haswell build/tests/test_rope
    /usr/bin/python3 tools/rope_oracle.py /tmp/rope [--max-diff 1e-6]
"""
import glob
import json
import math
import os
import sys

import numpy as np
import torch


def rope_params(cfg):
    """The scaling object and rope_theta, either spelling."""
    obj = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    theta = obj.get("rope_theta", cfg.get("rope_theta", 10000.0))
    kind = obj.get("rope_type", obj.get("type", "default"))
    return obj, float(theta), kind


def inv_freq_default(theta, dim):
    # base ** (arange(0, dim, 2) / dim) in fp32, then 1 / that
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def table(cfg, S):
    d = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    maxpos = cfg.get("max_position_embeddings", 2048)
    obj, theta, kind = rope_params(cfg)
    orig = obj.get("original_max_position_embeddings",
                   cfg.get("original_max_position_embeddings", maxpos))
    att = 1.0
    if kind == "default":
        inv = inv_freq_default(theta, d)
    elif kind == "linear":
        inv = inv_freq_default(theta, d) / obj["factor"]
    elif kind == "dynamic":
        # a forward over S tokens: seq_len = max(position_ids) + 1, a tensor
        f = obj["factor"]
        seq = torch.maximum(torch.tensor(S), torch.tensor(maxpos))
        if S > maxpos:
            base = theta * ((f * seq / maxpos) - (f - 1)) ** (d / (d - 2))
        else:
            base = theta
        inv = 1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    elif kind == "llama3":
        f, lo, hi = obj["factor"], obj["low_freq_factor"], obj["high_freq_factor"]
        inv0 = inv_freq_default(theta, d)
        wl = 2 * math.pi / inv0
        low_wl, high_wl = orig / lo, orig / hi
        inv = torch.where(wl > low_wl, inv0 / f, inv0)
        smooth = (orig / wl - lo) / (hi - lo)
        blended = (1 - smooth) * inv / f + smooth * inv
        medium = ~(wl < high_wl) * ~(wl > low_wl)
        inv = torch.where(medium, blended, inv)
    elif kind == "yarn":
        f = obj["factor"]
        bf, bs = obj.get("beta_fast") or 32, obj.get("beta_slow") or 1
        att = obj.get("attention_factor")
        if att is None:
            def ms(s, m=1.0):
                return 1.0 if s <= 1 else 0.1 * m * math.log(s) + 1.0
            if obj.get("mscale") and obj.get("mscale_all_dim"):
                att = ms(f, obj["mscale"]) / ms(f, obj["mscale_all_dim"])
            else:
                att = ms(f)

        def corr(n):  # the pair where the original length makes n turns
            return d * math.log(orig / (n * 2 * math.pi)) / (2 * math.log(theta))
        lo, hi = corr(bf), corr(bs)
        if obj.get("truncate", True):
            lo, hi = math.floor(lo), math.ceil(hi)
        lo, hi = max(lo, 0), min(hi, d - 1)
        if lo == hi:
            hi += 0.001
        ramp = torch.clamp((torch.arange(d // 2, dtype=torch.float32) - lo) / (hi - lo), 0, 1)
        ex = 1 - ramp
        pos = theta ** (torch.arange(0, d, 2).float() / d)
        inv = (1.0 / (f * pos)) * (1 - ex) + (1.0 / pos) * ex
    else:
        raise SystemExit("unknown rope type %r" % kind)
    p = torch.arange(S).float()
    ang = (inv[:, None].float() @ p[None, :]).t()  # (S, d/2), as the forward's matmul
    tab = torch.cat([ang.cos() * att, ang.sin() * att], dim=1).numpy()
    # the same fp32 angles through float64 cos/sin rounded to fp32: tells a
    # difference in the angles from one in torch's fp32 cos/sin
    a64 = ang.double()
    exact = torch.cat([a64.cos().float() * att, a64.sin().float() * att], dim=1).numpy()
    return tab, exact


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    limit = float(sys.argv[sys.argv.index("--max-diff") + 1]) if "--max-diff" in sys.argv else None
    worst = 0.0
    names = sorted(glob.glob(os.path.join(sys.argv[1], "*.json")))
    if not names:
        raise SystemExit("no dumped tables in %s (run test_rope with GPTQ_ROPE_DUMP)" % sys.argv[1])
    for js in names:
        case = json.load(open(js))
        want, exact = table(case["config"], case["S"])
        got = np.fromfile(js[:-5] + ".f32", dtype=np.float32).reshape(want.shape)
        diff = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
        ndiff = int(np.sum(got != want))
        nangle = int(np.sum(got != exact))
        worst = max(worst, diff)
        print("%-24s S %4d  max |ours - torch| %.3g  differing %5d of %6d;"
              " with float64 cos/sin of torch's fp32 angles: %d"
              % (os.path.basename(js)[:-5], case["S"], diff, ndiff, want.size, nangle))
    print("largest difference %.3g (torch %s)" % (worst, torch.__version__))
    if limit is not None and worst > limit:
        sys.exit(1)


if __name__ == "__main__":
    main()
