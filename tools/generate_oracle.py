#!/usr/bin/env python3
"""generate_oracle.py — transformers' greedy generation against `gptq generate`.

For each model folder (default: every folder of tests/data/families and
data/tiny-llama, plus tests/data/model/stories-260k), transformers generates
N new tokens greedily from a fixed prompt (the prompt encoded as
tokenizer(prompt) encodes it, special tokens added; do_sample=False,
fp32, eager attention, TF32 off, its KV cache as generate uses it; it stops
at the model's EOS as generate does), and the continuation's text is
decode(prompt + new, skip_special_tokens=True) past decode(prompt): what
`gptq generate` prints on stdout. With --gptq PATH (the built binary) the
same command runs ours and the two are compared: the first token where the
ids differ is reported with transformers' gap between its two largest
logits there (a gap below ~1e-5 of the logits' scale is a near-tie that f32
reordering may flip; anything larger is a bug). Families transformers
builds but we refuse (Gemma before its support) are reported as such.

Run on the device machine, in the repository root, after building gptq
(tools/device_gpu.sh builds it; any build of the CLI will do):
  python3 tools/generate_oracle.py --gptq build/src/cli/gptq -n 32 > $OUT/generate_oracle.txt
Without --gptq it only prints transformers' ids and text (JSON lines).
Exit status 1 when a supported model's output differs beyond a near-tie.
"""
import argparse
import glob
import json
import os
import subprocess
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPT = "The kernel"
PROMPTS = {"stories-260k": "Once upon a time"}


def models(root):
    out = sorted(glob.glob(os.path.join(root, "tests/data/families/*/config.json")))
    out = [os.path.dirname(p) for p in out]
    out.append(os.path.join(root, "data/tiny-llama"))
    out.append(os.path.join(root, "tests/data/model/stories-260k"))
    return out


def oracle(path, prompt, n):
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    enc = tok(prompt, return_tensors="pt")
    ids = enc["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, attention_mask=enc["attention_mask"], max_new_tokens=n,
                             do_sample=False, num_beams=1, output_scores=True,
                             return_dict_in_generate=True, repetition_penalty=1.0,
                             temperature=None, top_k=None, top_p=None)
    seq = out.sequences[0].tolist()
    new = seq[ids.shape[1]:]
    eos = model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if new and new[-1] in eos:  # ours does not print the EOS token's text (special anyway)
        new = new[:-1]
    gaps = []
    for s in out.scores:
        top = torch.topk(s[0].float(), 2).values
        gaps.append(float(top[0] - top[1]))
    prefix = tok.decode(ids[0].tolist(), skip_special_tokens=True)
    whole = tok.decode(ids[0].tolist() + new, skip_special_tokens=True)
    text = whole[len(prefix):] if whole.startswith(prefix) else tok.decode(
        new, skip_special_tokens=True)
    scale = max(float(s.abs().max()) for s in out.scores) if out.scores else 1.0
    return {"prompt_ids": ids[0].tolist(), "new_ids": new, "text": text, "gaps": gaps,
            "scale": scale}


def ours(gptq, path, prompt, n):
    r = subprocess.run([gptq, "generate", path, "--prompt", prompt, "-n", str(n)],
                       capture_output=True)
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*", help="model folders (default: see above)")
    ap.add_argument("-n", type=int, default=32, help="new tokens (default 32)")
    ap.add_argument("--gptq", help="the built gptq binary: compare with ours")
    ap.add_argument("--root", default=".", help="the repository root")
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    bad = 0
    for path in a.models or models(a.root):
        name = os.path.basename(path.rstrip("/"))
        prompt = PROMPTS.get(name, PROMPT)
        rec = {"model": path, "prompt": prompt, "n": a.n}
        try:
            rec.update(oracle(path, prompt, a.n))
        except Exception as e:  # a family transformers cannot build here
            rec["oracle_error"] = repr(e)
            print(json.dumps(rec))
            continue
        if a.gptq:
            rc, out, err = ours(a.gptq, path, prompt, a.n)
            rec["ours_status"] = rc
            rec["ours_text"] = out
            if rc != 0:
                rec["verdict"] = "refused by gptq: " + err.strip().splitlines()[-1] if err else "?"
            elif out == rec["text"]:
                rec["verdict"] = "same text"
            else:
                # where the texts part: the near-tie check is on the ids' gaps
                k = 0
                while k < min(len(out), len(rec["text"])) and out[k] == rec["text"][k]:
                    k += 1
                tie = min(rec["gaps"]) < 1e-5 * rec["scale"] if rec["gaps"] else False
                rec["verdict"] = ("differs at character %d; smallest top-2 gap %.3g (scale %.3g)%s"
                                  % (k, min(rec["gaps"]), rec["scale"],
                                     ": a near-tie" if tie else ""))
                bad += not tie
        print(json.dumps(rec, ensure_ascii=False))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
