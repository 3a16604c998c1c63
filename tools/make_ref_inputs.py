#!/usr/bin/env python3
"""make_ref_inputs.py -- the golden cases of ref/: their inputs, options and expected outputs.

  /usr/bin/python3 tools/make_ref_inputs.py                  # ref/<case>/input.safetensors + case.json
  /usr/bin/python3 tools/make_ref_inputs.py --expected build-ref
        # ref/<case>/expected.safetensors from OUR CPU backend: runs
        #   OPENBLAS_CORETYPE=Haswell OMP_NUM_THREADS=1 <build>/src/cli/gptq layer \
        #       ref/<case>/input.safetensors -o ref/<case>/expected.safetensors <flags>
        # then stamps the metadata key gptq_ref_version = REF_VERSION into the file and
        # drops the tensor H (the Hessian echo, for size); the other tensor bytes are
        # left as the CLI wrote them.

Inputs are a pure function of the per-case numpy seed (numpy.random.default_rng, PCG64),
so re-running this script reproduces the same bytes with the same numpy major version.

Structure of an input (realistic for a linear layer of a language model):
  W (out, in) F32 ~ N(0, 0.02), three input columns scaled x8 (outlier features);
  X (n, in)   F32 = (Z A) * c: Z ~ N(0, 1), A = I + 0.5 N(0,1)/sqrt(in) (correlated inputs,
              so H is far from diagonal), c a log-normal per-channel scale with two
              channels x10 (activation outliers, which act-order reorders);
  or H (in, in) F32 given directly (the damping case).
"""
import argparse
import json
import os
import struct
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gptq_oracle import st_write  # noqa: E402

# Bump when the meaning of a golden changes (algorithm, options, file layout); the test
# (tests/test_ref.c, GPTQ_REF_VERSION) must agree.
REF_VERSION = "1"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REF = os.path.join(ROOT, "ref")

DAMP = ["--damp-percent", "0.01"]
# The cases made before GAR existed (act_group_aware, on by default since) were made in the
# paper's column order: their flags pin it, so their expected bytes stay as they were made.
PAPER = ["--no-act-group-aware"]
GAR = ["--act-group-aware"]

# name, seed, (out, in, n), source of H ("X", "X-dead", "X-deadgroups", "H-lowrank",
# "X-short"), flags, covers
CASES = [
    ("w4_g128_asym", 101, (128, 256, 256), "X",
     ["--bits", "4", "--group-size", "128", "--asym"] + DAMP + PAPER,
     "4-bit, groups of 128, asymmetric grid; two blocks of 128 (the block GEMM update)"),
    ("w4_g32_sym_b64", 102, (64, 128, 256), "X",
     ["--bits", "4", "--group-size", "32", "--sym", "--block-size", "64"] + DAMP + PAPER,
     "4-bit, groups of 32 (several per block: grids from in-block updated W), symmetric"),
    ("w3_g128_asym_act", 103, (64, 256, 256), "X",
     ["--bits", "3", "--group-size", "128", "--asym", "--desc-act"] + DAMP + PAPER,
     "3-bit (the 96-bit packing), act-order: g_idx = position // G"),
    ("w2_g64_asym_b32", 104, (64, 128, 256), "X",
     ["--bits", "2", "--group-size", "64", "--asym", "--block-size", "32"] + DAMP + PAPER,
     "2-bit, groups of 64 wider than blocks of 32 (a group spans two blocks)"),
    ("w8_row_sym", 105, (64, 128, 256), "X",
     ["--bits", "8", "--group-size", "-1", "--sym"] + DAMP + PAPER,
     "8-bit, one group per row (group size -1), symmetric"),
    ("w4_g32_act_static", 106, (64, 128, 256), "X",
     ["--bits", "4", "--group-size", "32", "--asym", "--desc-act", "--static-groups",
      "--block-size", "64"] + DAMP + PAPER,
     "act-order + static groups: grids from the original W, group perm[j] // G, g_idx = k // G"),
    ("dead_cols_act", 107, (64, 128, 256), "X-dead",
     ["--bits", "4", "--group-size", "64", "--asym", "--desc-act"] + DAMP + PAPER,
     "two dead inputs (X columns 20 and 77 all zero: H_ii = 0 -> 1, W[:, i] = 0) with "
     "act-order: both tie at H_ii = 1 and keep column order"),
    ("damp_retry", 108, (64, 128, 16), "H-lowrank",
     ["--bits", "4", "--group-size", "128", "--asym", "--damp-percent", "0"] + PAPER,
     "H given directly, rank 16 of 128 (16 tokens), damp 0 asked: the first Cholesky fails, "
     "the retry at damp 0.01 succeeds (damp_used 0.01, damp_retries 1)"),
    ("mse_w4_g32", 109, (64, 128, 256), "X",
     ["--bits", "4", "--group-size", "32", "--asym", "--mse"] + DAMP + PAPER,
     "MSE grid search (100 steps, shrink to 0.8, norm 2.4), 4-bit groups of 32"),
    ("rtn_w4_g128", 110, (64, 256, 128), "X-short",
     ["--method", "rtn", "--bits", "4", "--group-size", "128", "--asym"] + PAPER,
     "round-to-nearest baseline, 4-bit groups of 128 (X only for the output error)"),
    # GAR (act_group_aware): groups by their largest diag(H), columns inside by diag(H)
    ("gar_w4_g128_asym", 111, (128, 512, 256), "X",
     ["--bits", "4", "--group-size", "128", "--asym"] + DAMP + GAR,
     "GAR, 4-bit groups of 128, asymmetric: four groups solved by their largest diag(H), "
     "columns inside by diag(H); grids stored as their own group's, g_idx = k // G"),
    ("gar_w4_g128_sym", 112, (64, 512, 256), "X",
     ["--bits", "4", "--group-size", "128", "--sym"] + DAMP + GAR,
     "GAR, 4-bit groups of 128, symmetric grid"),
    ("gar_dead_cols", 113, (64, 256, 256), "X-deadgroups",
     ["--bits", "4", "--group-size", "32", "--sym", "--block-size", "64"] + DAMP + GAR,
     "GAR with dead inputs: columns 20 and 77, and whole groups 3 and 6 (columns 96-127, "
     "192-223; H_ii = 0 -> 1): the two dead groups tie at score 1 and keep group order, "
     "and inside each the 32 columns tie at 1 and keep column order; symmetric"),
    ("gar_w4_g32_tail", 114, (64, 200, 256), "X",
     ["--bits", "4", "--group-size", "32", "--asym", "--block-size", "64"] + DAMP + GAR,
     "GAR with a partial last group: 200 = 6 x 32 + 8, the 8 tail columns quantized last "
     "in column order (as GPTQModel's extend_perm_with_tail)"),
    ("gar_w4_g32_static", 115, (64, 256, 256), "X",
     ["--bits", "4", "--group-size", "32", "--asym", "--static-groups", "--block-size", "64"]
     + DAMP + GAR,
     "GAR + static groups: grids from the original W, each column its own group's grid"),
]


def make_w(rng, out, cin):
    W = rng.normal(0.0, 0.02, size=(out, cin))
    outl = rng.choice(cin, size=3, replace=False)
    W[:, outl] *= 8.0
    return W.astype(np.float32)


def make_x(rng, n, cin):
    Z = rng.standard_normal(size=(n, cin))
    A = np.eye(cin) + 0.5 * rng.standard_normal(size=(cin, cin)) / np.sqrt(cin)
    c = np.exp(rng.normal(0.0, 0.5, size=cin))
    c[rng.choice(cin, size=2, replace=False)] *= 10.0
    return ((Z @ A) * c[None, :]).astype(np.float32)


def make_case(name, seed, shape, src, flags, covers):
    out, cin, n = shape
    rng = np.random.default_rng(seed)
    W = make_w(rng, out, cin)
    tensors = [("W", W)]
    if src in ("X", "X-dead", "X-deadgroups", "X-short"):
        X = make_x(rng, n, cin)
        if src == "X-dead":
            X[:, [20, 77]] = 0.0
        if src == "X-deadgroups":
            X[:, [20, 77]] = 0.0
            X[:, 96:128] = 0.0
            X[:, 192:224] = 0.0
        tensors.append(("X", X))
    elif src == "H-lowrank":
        # n = 16 tokens for 128 inputs: H = (2/n) X^T X has rank 16. Rounded to f32 its
        # 112 null directions get eigenvalues of both signs near 1e-7 * ||H||, so a
        # Cholesky without damping fails in any precision, and 0.01 * mean(diag H) is far
        # above that noise.
        X = make_x(rng, n, cin).astype(np.float64)
        H = (2.0 / n) * (X.T @ X)
        tensors.append(("H", H.astype(np.float32)))
    else:
        raise ValueError(src)
    d = os.path.join(REF, name)
    os.makedirs(d, exist_ok=True)
    st_write(os.path.join(d, "input.safetensors"), tensors,
             {"gptq_ref_case": name, "gptq_ref_seed": str(seed), "format": "pt"})
    case = {
        "name": name,
        "covers": covers,
        "seed": seed,
        "rows_out": out, "cols_in": cin,
        "hessian_from": "H" if src == "H-lowrank" else "X",
        "n_tokens": n,
        "flags": flags,
    }
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(case, f, indent=1)
        f.write("\n")
    print(f"ref/{name}: W {W.shape} {tensors[1][0]} {tensors[1][1].shape}")


def stamp_version(path, version, drop=("H",)):
    """Add gptq_ref_version to the safetensors metadata and drop the tensors in `drop`
    (the CLI's echo of the Hessian: 64-256 KiB a case, pinned anyway by the loss, which
    the test compares exactly); every other tensor byte stays as the CLI wrote it."""
    with open(path, "rb") as f:
        blob = f.read()
    (hlen,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + hlen].decode("utf-8"))
    base = 8 + hlen
    meta = header.pop("__metadata__", None) or {}
    meta["gptq_ref_version"] = version
    names = sorted(header, key=lambda k: header[k]["data_offsets"][0])
    out_header = {"__metadata__": meta}
    data = []
    off = 0
    for name in names:
        if name in drop:
            continue
        b, e = header[name]["data_offsets"]
        out_header[name] = dict(header[name], data_offsets=[off, off + (e - b)])
        data.append(blob[base + b:base + e])
        off += e - b
    hjson = json.dumps(out_header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for d in data:
            f.write(d)
    os.replace(tmp, path)


def make_expected(build, only):
    cli = os.path.join(os.path.abspath(build), "src", "cli", "gptq")
    if not os.access(cli, os.X_OK):
        raise SystemExit(f"{cli}: not built (ninja -C {build})")
    env = dict(os.environ, OPENBLAS_CORETYPE="Haswell", OMP_NUM_THREADS="1")
    for name, *_ in CASES:
        if only and name not in only:
            continue
        d = os.path.join(REF, name)
        with open(os.path.join(d, "case.json")) as f:
            case = json.load(f)
        exp = os.path.join(d, "expected.safetensors")
        cmd = [cli, "layer", os.path.join(d, "input.safetensors"), "-o", exp] + case["flags"]
        print("+ OPENBLAS_CORETYPE=Haswell OMP_NUM_THREADS=1 " + " ".join(
            os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd))
        subprocess.run(cmd, check=True, env=env, cwd=ROOT)
        stamp_version(exp, REF_VERSION)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--expected", metavar="BUILD_DIR",
                    help="write expected.safetensors with BUILD_DIR/src/cli/gptq instead of inputs")
    ap.add_argument("cases", nargs="*", help="only these cases (default all)")
    a = ap.parse_args()
    if a.expected:
        make_expected(a.expected, set(a.cases))
        return
    for c in CASES:
        if a.cases and c[0] not in a.cases:
            continue
        make_case(*c)


if __name__ == "__main__":
    main()
