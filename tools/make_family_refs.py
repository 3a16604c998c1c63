#!/usr/bin/env python3
"""make_family_refs.py — small transformers-made reference models, one per family.

For each family below it builds, with transformers' own classes
(AutoModelForCausalLM.from_config, seed fixed), a randomly initialised model
that keeps every structural feature of the family's real config scaled down
(hidden 64, 2 layers, 4 heads, 2 kv heads, intermediate 128, max positions
256, the vocabulary of data/tiny-llama's tokenizer so `gptq eval` can run
with that tokenizer.json), re-initialises its weights so the logits are not
trivial (linears and embeddings normal(0, 0.1); norm weights 1 + normal(0,
0.1), Gemma's 0 + normal(0, 0.1) since Gemma scales by 1 + w), saves it in
fp32 (safetensors) with relative links to data/tiny-llama's tokenizer files,
and writes beside it refs.safetensors:

  ids     (2, 96) I32     two fixed token sequences (seeded)
  pos     (P,) I32        the positions whose logits are kept (every 6th,
                          ending at the last: the full logits of 2x96
                          positions would be 1.2 MB a family)
  logits  (2, P, V) F32   the logits at those positions
  nll     (2, 95) F64     NLL of ids[b, t+1] given ids[b, :t+1], every t

computed in fp32 with eager attention and TF32 off; NLLs are log-softmax of
the fp32 logits in float64. Metadata: magic "gptq-c-family-ref", version "1",
family, architecture, and the torch/transformers versions.

Run on the device machine (transformers 5, torch and safetensors are there)
in the repository root:
  python3 tools/make_family_refs.py --tokenizer data/tiny-llama --out tests/data/families
then bring tests/data/families back (one tar through $OUT: $OUT keeps only 8
files).
"""
import argparse
import json
import os

import torch

SEQ = 96
NSEQ = 2
STD = 0.1
NORM_STD = 0.1

BASE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=16,
            max_position_embeddings=256, rms_norm_eps=1e-6,
            bos_token_id=0, eos_token_id=0, pad_token_id=None)


def families(vocab):
    b = dict(BASE, vocab_size=vocab)
    return {
        # the control: the structure of data/tiny-llama (untied, plain RoPE)
        "llama": ("llama", dict(b, tie_word_embeddings=False,
                                rope_parameters={"rope_type": "default", "rope_theta": 10000.0})),
        # Llama 3.2-style: tied, rope "llama3" with factor 8; the original
        # context (32) is small so that the scaling touches head_dim 16's
        # frequencies (wavelengths 8..32 are blended, longer ones divided by 8)
        "llama3": ("llama", dict(b, tie_word_embeddings=True,
                                 rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0,
                                                  "factor": 8.0, "low_freq_factor": 1.0,
                                                  "high_freq_factor": 4.0,
                                                  "original_max_position_embeddings": 32})),
        # Qwen3: q/k per-head RMSNorm, head_dim 32 != 64/4, tied (0.6B is)
        "qwen3": ("qwen3", dict(b, head_dim=32, tie_word_embeddings=True,
                                use_sliding_window=False, sliding_window=None,
                                rope_parameters={"rope_type": "default",
                                                 "rope_theta": 1000000.0})),
        # Mistral: sliding window 32 < the sequence, explicit head_dim 32
        "mistral": ("mistral", dict(b, head_dim=32, sliding_window=32, tie_word_embeddings=False,
                                    rope_parameters={"rope_type": "default",
                                                     "rope_theta": 1000000.0})),
        # Gemma 2: softcaps (small enough to bite at this scale), sliding
        # window on alternate layers, query_pre_attn_scalar != head_dim
        "gemma2": ("gemma2", dict(b, tie_word_embeddings=True, hidden_activation="gelu_pytorch_tanh",
                                  query_pre_attn_scalar=24, attn_logit_softcapping=2.0,
                                  final_logit_softcapping=5.0, sliding_window=32,
                                  layer_types=["sliding_attention", "full_attention"])),
        # Gemma 3 (text): q/k norms, sliding/full pattern, local rope base
        "gemma3": ("gemma3_text", dict(b, tie_word_embeddings=True,
                                       hidden_activation="gelu_pytorch_tanh",
                                       query_pre_attn_scalar=24, sliding_window=32,
                                       layer_types=["sliding_attention", "full_attention"])),
        # Phi-3: partial rotary 0.75 (12 of 16 dims) and longrope, whose long
        # factors apply past the original 64 positions
        "phi3": ("phi3", dict(b, tie_word_embeddings=False, partial_rotary_factor=0.75,
                              original_max_position_embeddings=64, sliding_window=None,
                              rope_parameters={
                                  "rope_type": "longrope", "rope_theta": 10000.0,
                                  "original_max_position_embeddings": 64,
                                  "short_factor": [1.0, 1.1, 1.3, 1.6, 2.0, 2.5],
                                  "long_factor": [1.0, 1.5, 2.5, 4.0, 6.0, 8.0]})),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenizer", required=True, help="folder of tokenizer.json (data/tiny-llama)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default=None, help="comma-separated families")
    args = ap.parse_args()

    import transformers

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    dev = "cuda" if torch.cuda.is_available() else "cpu"

    vocab = json.load(open(os.path.join(args.tokenizer, "config.json")))["vocab_size"]
    g = torch.Generator().manual_seed(1234)
    ids = torch.randint(0, vocab, (NSEQ, SEQ), generator=g, dtype=torch.long)
    pos = torch.arange(SEQ - 1 - 6 * (SEQ // 6 - 1), SEQ, 6)
    fams = families(vocab)
    only = args.only.split(",") if args.only else list(fams)
    failed = []
    for name in only:
        try:
            one(name, fams[name], ids, pos, dev, args)
        except Exception as e:  # report and go on: one run makes every family it can
            import traceback
            traceback.print_exc()
            failed.append(f"{name}: {e}")
    with open(os.path.join(args.out, "versions.txt"), "w") as f:
        f.write(f"torch {torch.__version__}\ntransformers {transformers.__version__}\n")
    if failed:
        raise SystemExit("failed: " + "; ".join(failed))


def one(name, fam, ids, pos, dev, args):
    import transformers
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForCausalLM

    mtype, kw = fam
    cfg = AutoConfig.for_model(mtype, **kw)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
    model = model.to(torch.float32)
    gemma = mtype.startswith("gemma")
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if p.dim() == 1 and "norm" in pname:
                p.copy_(torch.randn(p.shape) * NORM_STD + (0.0 if gemma else 1.0))
            else:
                p.copy_(torch.randn(p.shape) * STD)
    model = model.to(dev).eval()
    with torch.no_grad():
        out = model(input_ids=ids.to(dev), use_cache=False)
    logits = out.logits.float()
    lp = torch.log_softmax(logits.double(), dim=-1)
    nll = -lp[:, :-1, :].gather(2, ids[:, 1:, None].to(dev)).squeeze(2)
    d = os.path.join(args.out, name)
    os.makedirs(d, exist_ok=True)
    model.to("cpu").save_pretrained(d, safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):  # links, not 7 copies of 88 kB
        link = os.path.join(d, f)
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.relpath(os.path.join(args.tokenizer, f), d), link)
    gen = os.path.join(d, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)
    meta = {"magic": "gptq-c-family-ref", "version": "1", "family": name,
            "architecture": type(model).__name__, "torch": torch.__version__,
            "transformers": transformers.__version__}
    save_file({"ids": ids.to(torch.int32).contiguous(),
               "pos": pos.to(torch.int32).contiguous(),
               "logits": logits[:, pos, :].cpu().contiguous(),
               "nll": nll.cpu().contiguous()},
              os.path.join(d, "refs.safetensors"), metadata=meta)
    print(f"{name}: {type(model).__name__} max|logit| {logits.abs().max().item():.4g} "
          f"mean nll {nll.mean().item():.4f} files "
          + " ".join(f"{f}={os.path.getsize(os.path.join(d, f))}" for f in sorted(os.listdir(d))),
          flush=True)


if __name__ == "__main__":
    main()
