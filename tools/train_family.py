#!/usr/bin/env python3
"""train_family.py — one small model per family, trained from scratch on the device (issue 11).

For each family of FAMILIES below: a config from transformers' own config class
(AutoConfig.for_model), scaled down to hidden 256, 4 layers, intermediate 512,
with the family's head proportions and its specific features switched on; the
vocabulary and tokenizer of data/tiny-llama (1536 tokens); trained from scratch
on data/text/calib.txt for a fixed number of steps (seeded); saved with
save_pretrained in bf16 with tokenizer.json and tokenizer_config.json copied
beside it; then transformers' own perplexity of the saved folder (loaded back,
f32, eager attention, TF32 off) on data/text/eval.txt with the protocol of
data/README.md: the whole text encoded without special tokens, non-overlapping
windows of 256 tokens from the start, remainder dropped, ppl = exp(sum of the
next-token NLLs / predicted tokens). Written to OUT/<family>/hf_ppl.json.

Run on the device machine (torch with a GPU, transformers 5, tokenizers,
safetensors; no network) from the repository root:
  python3 tools/train_family.py --out /tmp/gptq-families [--only llama,qwen3] [--reuse]
  python3 tools/train_family.py --list      # the families, one per line: name architecture
tools/device_families.sh calls it. A family whose config or training fails is
reported and the others go on (exit status 1 at the end, naming it).
"""
import argparse
import json
import math
import os
import shutil
import sys
import time

HIDDEN, LAYERS, INTER, SEQ = 256, 4, 512, 256

# name: (model_type, architecture, config keys over BASE, what it keeps of the real family)
BASE = dict(hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=LAYERS,
            max_position_embeddings=SEQ, rms_norm_eps=1e-6,
            bos_token_id=0, eos_token_id=0, pad_token_id=None)
FAMILIES = {
    "llama": ("llama", "LlamaForCausalLM", dict(
        num_attention_heads=4, num_key_value_heads=4, head_dim=64, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
        "Llama 2 style: MHA 4 x 64, untied, plain RoPE"),
    "llama3": ("llama", "LlamaForCausalLM", dict(
        num_attention_heads=8, num_key_value_heads=2, head_dim=32, tie_word_embeddings=True,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 64}),
        "Llama 3.2 style: GQA 8/2 x 32, tied, rope llama3 factor 32 (original 64)"),
    "qwen3": ("qwen3", "Qwen3ForCausalLM", dict(
        num_attention_heads=4, num_key_value_heads=2, head_dim=128, tie_word_embeddings=True,
        use_sliding_window=False, sliding_window=None,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
        "Qwen3 0.6B style: explicit head_dim 128 (4 x 128 != 256), q/k RMSNorm, tied"),
    "mistral": ("mistral", "MistralForCausalLM", dict(
        num_attention_heads=8, num_key_value_heads=2, head_dim=32, sliding_window=64,
        tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
        "Mistral 7B v0.1 style: GQA 8/2, sliding_window 64 < the 256-token windows"),
    "phi3": ("phi3", "Phi3ForCausalLM", dict(
        num_attention_heads=4, num_key_value_heads=2, head_dim=64, tie_word_embeddings=False,
        partial_rotary_factor=0.75, original_max_position_embeddings=64, sliding_window=None,
        rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                         "original_max_position_embeddings": 64,
                         # rotary dims 48: 24 factors each
                         "short_factor": [1.0 + 0.05 * i for i in range(24)],
                         "long_factor": [1.0 + 0.3 * i for i in range(24)]}),
        "Phi-4-mini style: fused qkv/gate_up, partial rotary 0.75, longrope (original 64)"),
    "gemma2": ("gemma2", "Gemma2ForCausalLM", dict(
        num_attention_heads=4, num_key_value_heads=2, head_dim=64, query_pre_attn_scalar=64,
        hidden_activation="gelu_pytorch_tanh", attn_logit_softcapping=50.0,
        final_logit_softcapping=30.0, sliding_window=64, tie_word_embeddings=True,
        layer_types=["sliding_attention", "full_attention"] * (LAYERS // 2)),
        "Gemma 2 style: softcaps 50/30, sliding 64 / full alternating, (1 + w) norms, tied"),
    "gemma3": ("gemma3_text", "Gemma3ForCausalLM", dict(
        num_attention_heads=4, num_key_value_heads=1, head_dim=64, query_pre_attn_scalar=64,
        hidden_activation="gelu_pytorch_tanh", sliding_window=64, tie_word_embeddings=True,
        layer_types=["sliding_attention"] * (LAYERS - 1) + ["full_attention"],
        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                         "full_attention": {"rope_type": "default", "rope_theta": 1000000.0}}),
        "Gemma 3 1B style: MQA 4/1, q/k norms, 3 local (sliding 64, theta 1e4) : 1 global (1e6)"),
    "opt": ("opt", "OPTForCausalLM", dict(
        num_attention_heads=4, ffn_dim=4 * HIDDEN, word_embed_proj_dim=HIDDEN,
        do_layer_norm_before=True, enable_bias=True, tie_word_embeddings=True,
        intermediate_size=None, rms_norm_eps=None),
        "OPT-125m style: pre-LayerNorm, learned positions, biases, ReLU, tied"),
}

STEPS, BATCH, LR, WARMUP, SEED = 300, 16, 3e-3, 30, 1234


def tokens(tok_dir, path):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
    with open(path, encoding="utf-8") as f:
        return tok.encode(f.read(), add_special_tokens=False).ids


def config_for(name, vocab):
    from transformers import AutoConfig
    mtype, arch, kw, _ = FAMILIES[name]
    kw = {k: v for k, v in dict(BASE, **kw).items() if v is not None or k in (
        "pad_token_id", "sliding_window")}
    kw["vocab_size"] = vocab
    kw["architectures"] = [arch]
    return AutoConfig.for_model(mtype, **kw)


def train_one(name, train_ids, eval_ids, args, dev):
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    t0 = time.time()
    cfg = config_for(name, args.vocab)
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").to(dev)
    arch = type(model).__name__
    nparams = sum(p.numel() for p in model.parameters())
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": other, "weight_decay": 0.0}],
                            lr=LR, betas=(0.9, 0.95), fused=dev == "cuda")
    data = torch.tensor(train_ids, dtype=torch.long, device=dev)
    g = torch.Generator(device="cpu").manual_seed(SEED)
    model.train()
    losses = []
    for step in range(args.steps):
        lr = LR * (step + 1) / WARMUP if step < WARMUP else \
            LR * (0.1 + 0.45 * (1 + math.cos(math.pi * (step - WARMUP) / (args.steps - WARMUP))))
        for grp in opt.param_groups:
            grp["lr"] = lr
        starts = torch.randint(0, len(train_ids) - SEQ, (BATCH,), generator=g)
        x = torch.stack([data[s:s + SEQ] for s in starts.tolist()])
        with torch.autocast(device_type=dev, dtype=torch.bfloat16, enabled=dev == "cuda"):
            logits = model(input_ids=x, use_cache=False).logits
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].float().reshape(-1, args.vocab),
                                                 x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == args.steps - 1:
            losses.append((step, round(loss.item(), 4)))
    train_s = time.time() - t0

    d = os.path.join(args.out, name)
    if os.path.exists(d):
        shutil.rmtree(d)
    model.to(torch.bfloat16).save_pretrained(d)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(args.tokenizer, f), d)
    del model, opt

    # transformers' perplexity of the saved folder, f32
    m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32,
                                             attn_implementation="eager").to(dev).eval()
    nwin = len(eval_ids) // SEQ
    if args.max_windows:
        nwin = min(nwin, args.max_windows)
    ev = torch.tensor(eval_ids[:nwin * SEQ], dtype=torch.long, device=dev).view(nwin, SEQ)
    nll = 0.0
    with torch.no_grad():
        for b in range(0, nwin, 32):
            x = ev[b:b + 32]
            lg = m(input_ids=x, use_cache=False).logits.double()
            lp = torch.log_softmax(lg[:, :-1], dim=-1)
            nll += -lp.gather(2, x[:, 1:, None]).sum().item()
    pred = nwin * (SEQ - 1)
    res = {"family": name, "architecture": arch, "model_type": FAMILIES[name][0],
           "what": FAMILIES[name][3], "parameters": nparams,
           "ppl": math.exp(nll / pred), "nll_sum": nll, "windows": nwin, "seqlen": SEQ,
           "predicted": pred, "eval_tokens": len(eval_ids), "train_tokens": len(train_ids),
           "steps": args.steps, "batch": BATCH, "lr": LR, "seed": SEED, "losses": losses,
           "train_seconds": round(train_s, 1), "seconds": round(time.time() - t0, 1),
           "torch": torch.__version__, "transformers": transformers.__version__,
           "device": torch.cuda.get_device_name() if dev == "cuda" else "cpu"}
    with open(os.path.join(d, "hf_ppl.json"), "w") as f:
        json.dump(res, f, indent=1)
    print(f"{name}: {arch} {nparams} params, loss {losses[0][1]} -> {losses[-1][1]}, "
          f"transformers ppl {res['ppl']:.6f} over {nwin} windows of {SEQ}, "
          f"{res['train_seconds']} s training, {res['seconds']} s in all", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="folder of the trained models (one sub-folder per family)")
    ap.add_argument("--tokenizer", default="data/tiny-llama")
    ap.add_argument("--calib", default="data/text/calib.txt")
    ap.add_argument("--eval", default="data/text/eval.txt")
    ap.add_argument("--only", help="comma-separated families (default: all)")
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--max-windows", type=int, default=0, help="eval windows (0: all)")
    ap.add_argument("--reuse", action="store_true",
                    help="keep a family whose folder already holds hf_ppl.json")
    ap.add_argument("--list", action="store_true", help="print the families and exit")
    args = ap.parse_args()
    if args.list:
        for k, (mtype, arch, _, what) in FAMILIES.items():
            print(f"{k}\t{arch}\t{what}")
        return
    if not args.out:
        ap.error("--out is required")

    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    with open(os.path.join(args.tokenizer, "config.json")) as f:
        args.vocab = json.load(f)["vocab_size"]
    train_ids = tokens(args.tokenizer, args.calib)
    eval_ids = tokens(args.tokenizer, args.eval)
    print(f"calib {len(train_ids)} tokens, eval {len(eval_ids)} tokens, device {dev}", flush=True)
    os.makedirs(args.out, exist_ok=True)
    names = args.only.split(",") if args.only else list(FAMILIES)
    failed = []
    for name in names:
        if name not in FAMILIES:
            failed.append(f"{name}: no such family ({', '.join(FAMILIES)})")
            continue
        if args.reuse and os.path.exists(os.path.join(args.out, name, "hf_ppl.json")):
            print(f"{name}: reused {os.path.join(args.out, name)}", flush=True)
            continue
        try:
            train_one(name, train_ids, eval_ids, args, dev)
        except Exception as e:  # report and go on: one run trains every family it can
            import traceback
            traceback.print_exc()
            failed.append(f"{name}: {type(e).__name__}: {e}")
    if failed:
        print("failed: " + "; ".join(failed), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
