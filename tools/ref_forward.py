#!/usr/bin/env python3
"""ref_forward.py — golden forward-pass and perplexity figures from transformers.

The oracle for gptq-c's model code (src/model, src/eval): it loads a Hugging
Face model folder with transformers in fp32 (eager attention, TF32 off),
encodes a text with the `tokenizers` library exactly as the perplexity
protocol of shared/README.md says (the whole text, no special tokens added,
non-overlapping windows, remainder dropped) and writes one safetensors file:

  ids_short    (S,) I32        the first S token ids of the text
  logits_short (P, V) F32      logits of the forward over ids_short at the
                               positions pos_short (all S positions when
                               --full-logits, else a few)
  pos_short    (P,) I32        which positions logits_short holds
  nll_short    (S-1,) F64      per-token NLL of ids_short[t+1] given ids_short[:t+1]
  ids_windows  (K, L) I32      the first K windows of L tokens
  nll_windows  (K,) F64        sum of the L-1 next-token NLLs of each window
  nll_window0  (L-1,) F64      per-token NLLs of window 0

and in its metadata: magic "gptq-c-golden-forward", version "1", model, text,
seqlen, windows, tokens_total (of the whole text), ppl_windows (exp of the
mean NLL over the K windows, as "%.9g"), with --all ppl_all and windows_all
(every window of the text: the figure shared/README.md reports), and the
versions used.

NLLs are log-softmax of the fp32 logits computed in float64.

Run on the device machine (transformers, tokenizers and safetensors are
there), e.g.
  python3 tools/ref_forward.py --model .dev/models/llama-27m \
      --text .dev/models/text/eval.txt --windows 4 --out $OUT/golden_llama27m.safetensors
"""
import argparse
import math
import sys

import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="HF model folder")
    ap.add_argument("--text", required=True, help="UTF-8 text file")
    ap.add_argument("--name", default=None, help="model name for the metadata")
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--windows", type=int, default=4, help="K: windows to score (0: all)")
    ap.add_argument("--short", type=int, default=64, help="S: tokens of the short sequence")
    ap.add_argument("--full-logits", action="store_true", help="keep logits of every position")
    ap.add_argument("--all", action="store_true",
                    help="also score every window of the text (ppl_all in the metadata)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import tokenizers
    import transformers
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    dev = "cuda" if torch.cuda.is_available() else "cpu"

    tok = tokenizers.Tokenizer.from_file(f"{args.model}/tokenizer.json")
    text = open(args.text, encoding="utf-8", newline="").read()  # bytes as they are
    ids = tok.encode(text, add_special_tokens=False).ids
    n_total = len(ids)

    try:
        model = AutoModelForCausalLM.from_pretrained(
            args.model, dtype=torch.float32, attn_implementation="eager")
    except TypeError:
        model = AutoModelForCausalLM.from_pretrained(
            args.model, torch_dtype=torch.float32, attn_implementation="eager")
    model = model.to(dev).eval()

    def forward(seq):
        x = torch.tensor([seq], dtype=torch.long, device=dev)
        with torch.no_grad():
            out = model(input_ids=x, use_cache=False)
        return out.logits[0].float().cpu()  # (T, V) f32

    def token_nll(logits, seq):
        lp = torch.log_softmax(logits.double(), dim=-1)  # (T, V) f64
        tgt = torch.tensor(seq[1:], dtype=torch.long)
        return -lp[:-1].gather(1, tgt[:, None])[:, 0]  # (T-1,) f64

    S = args.short
    short = ids[:S]
    lg = forward(short)
    nll_short = token_nll(lg, short)
    pos = list(range(S)) if args.full_logits else [0, 1, S // 2 - 1, S - 1]
    logits_short = lg[pos].contiguous()

    L = args.seqlen
    nwin_all = n_total // L
    K = nwin_all if args.windows <= 0 else min(args.windows, nwin_all)
    wins, sums, nll0 = [], [], None
    for w in range(K):
        seq = ids[w * L:(w + 1) * L]
        nll = token_nll(forward(seq), seq)
        if w == 0:
            nll0 = nll
        wins.append(seq)
        sums.append(float(nll.sum()))
    ppl = math.exp(sum(sums) / (K * (L - 1)))
    ppl_all = None
    if args.all:
        tot = sum(sums)
        for w in range(K, nwin_all):
            seq = ids[w * L:(w + 1) * L]
            tot += float(token_nll(forward(seq), seq).sum())
        ppl_all = math.exp(tot / (nwin_all * (L - 1)))

    tensors = {
        "ids_short": torch.tensor(short, dtype=torch.int32),
        "logits_short": logits_short,
        "pos_short": torch.tensor(pos, dtype=torch.int32),
        "nll_short": nll_short.contiguous(),
        "ids_windows": torch.tensor(wins, dtype=torch.int32),
        "nll_windows": torch.tensor(sums, dtype=torch.float64),
        "nll_window0": nll0.contiguous(),
    }
    meta = {
        "magic": "gptq-c-golden-forward",
        "version": "1",
        "model": args.name or args.model.rstrip("/").split("/")[-1],
        "text": args.text.split("/")[-1],
        "seqlen": str(L),
        "windows": str(K),
        "tokens_total": str(n_total),
        "ppl_windows": "%.9g" % ppl,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "tokenizers": tokenizers.__version__,
        "device": torch.cuda.get_device_name(0) if dev == "cuda" else "cpu",
        "regenerate": "python3 tools/ref_forward.py (see its docstring) on a machine with transformers",
    }
    if ppl_all is not None:
        meta["ppl_all"] = "%.9g" % ppl_all
        meta["windows_all"] = str(nwin_all)
    save_file(tensors, args.out, metadata=meta)
    print(f"{meta['model']}: {args.text}: {n_total} tokens, {K} windows of {L}: ppl {ppl:.6f};"
          f" short nll mean {float(nll_short.mean()):.6f}"
          + (f"; all {nwin_all} windows: ppl {ppl_all:.6f}" if ppl_all is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
