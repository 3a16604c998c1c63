#!/usr/bin/env python3
"""make_random_llama.py — a Hugging Face Llama folder with random bf16 weights
at a real model's shapes, for timing `gptq quantize` end to end (bench/RESULTS.md).

    python3 bench/make_random_llama.py OUT_DIR [--shape llama-2-7b] [--tokenizer DIR]

Weights: normal(0, 0.02) for embeddings and linears (as Llama's
initializer_range), ones for the RMSNorm weights; made on the GPU when there is
one (seed 0), written as bf16 safetensors shards of at most 5 GB with
model.safetensors.index.json, as transformers writes them. The tokenizer files
are copied from --tokenizer (default data/tiny-llama: 1,536 tokens, so every id
is below the vocabulary size); only its ids matter for timing.
Needs torch and safetensors (the device machine has both).
"""
import argparse
import json
import os
import shutil
import sys
import time

import torch
from safetensors.torch import save_file

SHAPES = {
    # name: (layers, hidden, intermediate, heads, kv heads, vocab, max positions)
    "llama-2-7b": (32, 4096, 11008, 32, 32, 32000, 4096),
    "llama-2-13b": (40, 5120, 13824, 40, 40, 32000, 4096),
    "small": (2, 512, 1376, 8, 8, 32000, 4096),  # a smoke test of this script
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--shape", default="llama-2-7b", choices=sorted(SHAPES))
    ap.add_argument("--tokenizer", default="data/tiny-llama")
    ap.add_argument("--shard-bytes", type=int, default=5_000_000_000)
    a = ap.parse_args()
    L, D, F, H, Hk, V, P = SHAPES[a.shape]
    hd = D // H
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator(device=dev).manual_seed(0)
    t0 = time.time()
    tmp = a.out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)

    def rnd(*shape):
        return (torch.randn(*shape, generator=g, device=dev, dtype=torch.float32) * 0.02).to(
            torch.bfloat16).cpu()

    def ones(n):
        return torch.ones(n, dtype=torch.bfloat16)

    names = [("model.embed_tokens.weight", lambda: rnd(V, D))]
    for i in range(L):
        p = f"model.layers.{i}."
        names += [
            (p + "input_layernorm.weight", lambda: ones(D)),
            (p + "self_attn.q_proj.weight", lambda: rnd(H * hd, D)),
            (p + "self_attn.k_proj.weight", lambda: rnd(Hk * hd, D)),
            (p + "self_attn.v_proj.weight", lambda: rnd(Hk * hd, D)),
            (p + "self_attn.o_proj.weight", lambda: rnd(D, H * hd)),
            (p + "post_attention_layernorm.weight", lambda: ones(D)),
            (p + "mlp.gate_proj.weight", lambda: rnd(F, D)),
            (p + "mlp.up_proj.weight", lambda: rnd(F, D)),
            (p + "mlp.down_proj.weight", lambda: rnd(D, F)),
        ]
    names += [("model.norm.weight", lambda: ones(D)), ("lm_head.weight", lambda: rnd(V, D))]

    shards, cur, cur_bytes, total = [], {}, 0, 0
    for name, make in names:
        t = make()
        nb = t.numel() * t.element_size()
        if cur and cur_bytes + nb > a.shard_bytes:
            shards.append(cur)
            cur, cur_bytes = {}, 0
        cur[name] = t
        cur_bytes += nb
        total += nb
    shards.append(cur)
    weight_map = {}
    n = len(shards)
    for k, sh in enumerate(shards):
        fn = f"model-{k + 1:05d}-of-{n:05d}.safetensors"
        save_file(sh, os.path.join(tmp, fn), metadata={"format": "pt"})
        for name in sh:
            weight_map[name] = fn
    with open(os.path.join(tmp, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    cfg = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": D, "intermediate_size": F, "num_hidden_layers": L,
        "num_attention_heads": H, "num_key_value_heads": Hk, "head_dim": hd,
        "vocab_size": V, "max_position_embeddings": P, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "rope_scaling": None, "hidden_act": "silu",
        "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": False,
        "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16",
        "initializer_range": 0.02, "transformers_version": "4.46.0",
    }
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    for fn in ("tokenizer.json", "tokenizer_config.json"):
        src = os.path.join(a.tokenizer, fn)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(tmp, fn))
    shutil.rmtree(a.out, ignore_errors=True)
    os.rename(tmp, a.out)
    print(f"make_random_llama: {a.shape} ({L} layers, hidden {D}, intermediate {F}, {H} heads), "
          f"{total / 1e9:.2f} GB bf16 in {n} shards -> {a.out} in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
