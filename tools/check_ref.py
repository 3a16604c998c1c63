#!/usr/bin/env python3
"""check_ref.py -- check the golden outputs of ref/ against the independent oracle.

  /usr/bin/python3 tools/check_ref.py oracle [--device cpu|cuda] [--dtypes float64 float32]
                                            [--out DIR] [CASE ...]
      run tools/gptq_oracle.py on every case (default out: build-ref/oracle), one file
      DIR/<case>.<device>.<dtype>.safetensors each, plus DIR/oracle_runs.json (times, versions)
  /usr/bin/python3 tools/check_ref.py compare [--oracle-dir DIR ...] [--write] [CASE ...]
      compare ref/<case>/expected.safetensors (OUR CPU backend, through the CLI) with every
      oracle output found for the case; with --write, ref/<case>/CHECK.md and ref/README.md

Figures (expected = gptq-c CPU float32, oracle = PyTorch, float64 unless said):
  codes_same     share of identical integer codes
  code_maxdiff   largest |code difference|
  first_div      first position in the quantization order where any code differs
  zeros_same     share of identical zero points
  scale_maxrel   max |s_exp - s_orc| / |s_orc|
  loss_rel       |loss_exp - loss_orc| / loss_orc
  err_rel        the same for the relative output error out_rel_err
  deq_relL2      ||dequant_exp - dequant_orc|| / ||dequant_orc||
  perm, g_idx, damp_used, damp_retries, dead_cols: equal or not
Self-consistency of expected.safetensors (no oracle needed): qweight/qzeros unpack to
codes/zeros (v1: z - 1), scales F16 = f16(scales_f32), dequant = scales_f32 * (codes - zeros)
recomputed in float32, g_idx from perm.
"""
import argparse
import glob
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gptq_oracle  # noqa: E402
from gptq_oracle import st_read  # noqa: E402

ROOT = os.path.dirname(HERE)
REF = os.path.join(ROOT, "ref")
DEFAULT_ORACLE_DIR = os.path.join(ROOT, "build-ref", "oracle")

# Verdict thresholds (float64 oracle against our float32): the error feedback carries every
# last-bit difference into later columns, so a few codes flip at rounding boundaries and a
# flip changes the following columns' targets; they are then off by one. What must hold:
# the discrete decisions (perm, g_idx, damp, dead columns) exactly, 99% of the codes, no
# code off by more than 1, and the loss to 1e-3 relative (a systematic error in the solve
# moves it by far more: see ref/README.md).
T_CODES_SAME = 0.99
T_CODE_MAXDIFF = 1
T_LOSS_REL = 1e-3
# A row whose codes differ must first differ where the oracle's w/s lies within T_TIE of a
# half-integer (a rounding tie: which way it goes is decided by the last bits of w and s,
# ~1e-6 apart between float32 and float64), or where the group's grid differs (a tie in
# the zero point or in the MSE search); anything else is a real difference.
T_TIE = 1e-3
T_SCALE_SAME = 1e-5


def cases(selected=None):
    out = []
    for d in sorted(glob.glob(os.path.join(REF, "*", "case.json"))):
        with open(d) as f:
            c = json.load(f)
        if selected and c["name"] not in selected:
            continue
        out.append(c)
    return out


# ----------------------------------------------------------------------------
# oracle runs
# ----------------------------------------------------------------------------

def run_oracle(a):
    import torch
    os.makedirs(a.out, exist_ok=True)
    devtag = torch.device(a.device).type
    log = {"torch": torch.__version__, "numpy": np.__version__, "device": a.device,
           "device_name": torch.cuda.get_device_name(0) if devtag == "cuda" else "cpu",
           "runs": []}
    for c in cases(a.cases):
        inp = os.path.join(REF, c["name"], "input.safetensors")
        for dt in a.dtypes:
            outp = os.path.join(a.out, f"{c['name']}.{devtag}.{dt}.safetensors")
            args = [inp, "-o", outp] + c["flags"] + ["--dtype", dt, "--device", a.device]
            t0 = time.time()
            gptq_oracle.main(args)
            log["runs"].append({"case": c["name"], "dtype": dt, "seconds": time.time() - t0,
                                "command": "python3 tools/gptq_oracle.py " + " ".join(
                                    os.path.relpath(x, ROOT) if x.startswith(ROOT) else x
                                    for x in args)})
    with open(os.path.join(a.out, f"oracle_runs.{devtag}.json"), "w") as f:
        json.dump(log, f, indent=1)


# ----------------------------------------------------------------------------
# unpacking the checkpoint tensors (from README.md's "Checkpoint format", independently of src/format)
# ----------------------------------------------------------------------------

def unpack_rows(words, bits, nvals):
    """words (nw, M) int32 packed along axis 0 -> values (nvals, M)."""
    u = words.astype(np.int64) & 0xFFFFFFFF
    maxq = (1 << bits) - 1
    out = np.zeros((nvals, u.shape[1]), dtype=np.int64)
    if bits in (2, 4, 8):
        pf = 32 // bits
        for v in range(nvals):
            out[v] = (u[v // pf] >> (bits * (v % pf))) & maxq
    elif bits == 3:
        for v in range(nvals):
            blk, k = divmod(v, 32)
            bit = 3 * k  # in the 96-bit little-endian stream of words 3*blk .. 3*blk+2
            w0, off = divmod(bit, 32)
            val = u[3 * blk + w0] >> off
            if off + 3 > 32:
                val = val | (u[3 * blk + w0 + 1] << (32 - off))
            out[v] = val & maxq
    else:
        raise ValueError(bits)
    return out


def self_check(exp, meta):
    """Internal consistency of one expected.safetensors. Returns a list of (what, ok, detail)."""
    res = []
    bits = int(meta["bits"])
    codes = exp["codes"].astype(np.int64)
    R, C = codes.shape
    zeros = exp["zeros"].astype(np.int64)
    ng = zeros.shape[0]
    q = unpack_rows(exp["qweight"], bits, C)  # (K, N)
    res.append(("qweight unpacks to codes^T", bool(np.array_equal(q, codes.T)), ""))
    zq = unpack_rows(exp["qzeros"].T, bits, R).T  # qzeros (ng, N*b/32) packed along N
    v1 = meta.get("checkpoint_format") == "gptq"
    want = ((zeros - 1) & ((1 << bits) - 1)) if v1 else zeros
    res.append((f"qzeros unpack to zeros ({'v1: z-1' if v1 else 'v2: z'})",
                bool(np.array_equal(zq, want)), meta.get("checkpoint_format", "?")))
    s32 = exp["scales_f32"]
    res.append(("scales F16 = f16(scales_f32)",
                bool(np.array_equal(exp["scales"], s32.astype(np.float16))), ""))
    g = exp["g_idx"].astype(np.int64)
    deq = (s32[g, :].T * (codes.astype(np.float32) - zeros[g, :].T.astype(np.float32)))
    res.append(("dequant = scales_f32 * (codes - zeros) in f32",
                bool(np.array_equal(deq.astype(np.float32), exp["dequant"])), ""))
    perm = exp["perm"].astype(np.int64)
    G = C if int(meta["group_size"]) == -1 else int(meta["group_size"])
    inv = np.empty_like(perm)
    inv[perm] = np.arange(C)
    static = meta.get("static_groups") == "true"
    want_g = (np.arange(C) // G) if (static or meta.get("desc_act") != "true") else inv // G
    res.append(("g_idx from perm and G", bool(np.array_equal(g, want_g)), ""))
    res.append(("perm is a permutation", bool(np.array_equal(np.sort(perm), np.arange(C))), ""))
    res.append(("codes within [0, maxq]", bool(codes.max() <= (1 << bits) - 1), ""))
    res.append((f"{ng} groups of {G}", ng == (C + G - 1) // G, ""))
    return res


# ----------------------------------------------------------------------------
# comparison
# ----------------------------------------------------------------------------

def relf(a, b):
    a, b = float(a), float(b)
    return abs(a - b) / abs(b) if b != 0 else (0.0 if a == 0 else float("inf"))


def compare_one(exp, em, orc, om):
    ce = exp["codes"].astype(np.int64)
    co = orc["codes"].astype(np.int64)
    perm = orc["perm"].astype(np.int64)
    diff = ce != co
    pos_diff = diff[:, perm].any(axis=0)  # in quantization order
    se, so = exp["scales_f32"].astype(np.float64), orc["scales"].astype(np.float64)
    de, do = exp["dequant"].astype(np.float64), orc["dequant"].astype(np.float64)
    m = {
        "codes_same": float(1.0 - diff.mean()),
        "code_maxdiff": int(np.abs(ce - co).max()),
        "rows_diff": int(diff.any(axis=1).sum()),
        "first_div": int(np.argmax(pos_diff)) if pos_diff.any() else -1,
        "zeros_same": float((exp["zeros"] == orc["zeros"]).mean()),
        "scale_maxrel": float(np.max(np.abs(se - so) / np.abs(so))),
        "loss_exp": float(em["loss"]), "loss_orc": float(om["loss"]),
        "loss_rel": relf(em["loss"], om["loss"]),
        "err_rel": relf(em["out_rel_err"], om["out_rel_err"]),
        "deq_relL2": float(np.linalg.norm(de - do) / np.linalg.norm(do)),
        "perm_eq": bool(np.array_equal(exp["perm"], orc["perm"])),
        "gidx_eq": bool(np.array_equal(exp["g_idx"], orc["g_idx"])),
        "damp_eq": abs(float(em["damp_used"]) - float(om["damp_used"])) < 1e-6,
        "retries_eq": int(em["damp_retries"]) == int(om["damp_retries"]),
        "dead_eq": int(em["dead_cols"]) == int(om["dead_cols"]),
        "damp_used": float(em["damp_used"]), "damp_retries": int(em["damp_retries"]),
        "dead_cols": int(em["dead_cols"]),
        "oracle": f"torch {om.get('oracle_torch')} {om.get('oracle_device')} {om.get('oracle_dtype')}",
        "dtype": om.get("oracle_dtype"),
    }
    # Rows are independent in GPTQ (U is shared, each row runs its own column loop), so a
    # row's first differing code is where the two computations first parted: classify it.
    starts = {"tie": 0, "grid": 0, "other": 0}
    details = []
    if diff.any() and "w_at_quant" in orc:
        gi = orc["g_idx"].astype(np.int64)
        for r in np.nonzero(diff.any(axis=1))[0]:
            p = int(np.argmax(diff[r, perm]))
            k = int(perm[p])
            g = int(gi[k])
            s_o, z_o = float(orc["scales"][g, r]), int(orc["zeros"][g, r])
            s_e, z_e = float(exp["scales_f32"][g, r]), int(exp["zeros"][g, r])
            x = float(orc["w_at_quant"][r, k]) / s_o
            dist = abs(x - np.floor(x) - 0.5)
            if abs(s_e - s_o) > T_SCALE_SAME * abs(s_o) or z_e != z_o:
                kind = "grid"
            elif dist < T_TIE:
                kind = "tie"
            else:
                kind = "other"
            starts[kind] += 1
            if len(details) < 8:
                details.append(f"row {r} pos {p} col {k}: codes {ce[r, k]} (ours) vs {co[r, k]}, "
                               f"w/s = {x:.6f} ({kind})")
    m["starts"] = starts
    m["start_details"] = details
    ok = (m["perm_eq"] and m["gidx_eq"] and m["damp_eq"] and m["retries_eq"] and m["dead_eq"]
          and m["codes_same"] >= T_CODES_SAME and m["code_maxdiff"] <= T_CODE_MAXDIFF
          and m["loss_rel"] <= T_LOSS_REL and starts["other"] == 0)
    m["verdict"] = "agree" if ok else "DIFFER"
    return m


def fmt_row(tag, m):
    return (f"| {tag} | {m['codes_same']:.4%} | {m['code_maxdiff']} | {m['rows_diff']} | "
            f"{m['first_div']} | {m['zeros_same']:.4%} | {m['scale_maxrel']:.2e} | "
            f"{m['loss_rel']:.2e} | {m['err_rel']:.2e} | {m['deq_relL2']:.2e} | "
            f"{'yes' if m['perm_eq'] and m['gidx_eq'] else 'NO'} | "
            f"{'yes' if m['damp_eq'] and m['retries_eq'] and m['dead_eq'] else 'NO'} | "
            f"{m['starts']['tie']}/{m['starts']['grid']}/{m['starts']['other']} | "
            f"{m['verdict']} |")


TABLE_HEAD = ("| oracle | codes same | max code diff | rows with a diff | first diverging position "
              "| zeros same | scales max rel | loss rel | out_rel_err rel | dequant rel L2 "
              "| perm & g_idx equal | damp, retries, dead equal | diverging rows start at tie/grid/other "
              "| verdict |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def gitrev():
    try:
        import subprocess
        return subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %s"],
                              capture_output=True, text=True).stdout.strip()
    except Exception:
        return "?"


def compare(a):
    dirs = a.oracle_dir or [DEFAULT_ORACLE_DIR]
    runlogs = {}
    for d in dirs:
        for p in glob.glob(os.path.join(d, "oracle_runs.*.json")):
            with open(p) as f:
                lg = json.load(f)
            for r in lg["runs"]:
                runlogs[(r["case"], lg["device"].split(":")[0], r["dtype"], lg["torch"])] = (r, lg)
    summary = []
    all_ok = True
    for c in cases(a.cases):
        name = c["name"]
        exp_p = os.path.join(REF, name, "expected.safetensors")
        if not os.path.exists(exp_p):
            print(f"{name}: no expected.safetensors (make it: tools/make_ref_inputs.py --expected BUILD)")
            all_ok = False
            continue
        exp, em, _ = st_read(exp_p)
        sc = self_check(exp, em)
        rows = []
        for d in dirs:
            for p in sorted(glob.glob(os.path.join(d, f"{name}.*.safetensors"))):
                orc, om, _ = st_read(p)
                m = compare_one(exp, em, orc, om)
                dev, dt = os.path.basename(p)[len(name) + 1:].split(".")[:2]
                rows.append((f"{dev} {dt} torch {om.get('oracle_torch', '?')}", m, p))
        print(f"== {name}: loss {float(em['loss']):.9g}  damp {em['damp_used']} "
              f"({em['damp_retries']} retries)  dead {em['dead_cols']}  format {em.get('checkpoint_format')}")
        for what, ok, det in sc:
            if not ok:
                all_ok = False
            print(f"   self-check {'ok  ' if ok else 'FAIL'} {what} {det}")
        for tag, m, _ in rows:
            print(f"   {tag:30s} codes same {m['codes_same']:.4%} maxdiff {m['code_maxdiff']} "
                  f"rows {m['rows_diff']} first_div {m['first_div']} zeros {m['zeros_same']:.4%} "
                  f"scale {m['scale_maxrel']:.1e} loss {m['loss_rel']:.1e} err {m['err_rel']:.1e} "
                  f"deq {m['deq_relL2']:.1e} perm {m['perm_eq']} gidx {m['gidx_eq']} "
                  f"damp {m['damp_eq']} starts {m['starts']} -> {m['verdict']}")
            for dl in m["start_details"]:
                print(f"      {dl}")
            if m["dtype"] == "float64" and m["verdict"] != "agree":
                all_ok = False
        summary.append((c, em, sc, rows))
        if a.write:
            write_check_md(c, em, sc, rows, runlogs)
    if a.write:
        write_readme(summary)
    return 0 if all_ok else 1


def write_check_md(c, em, sc, rows, runlogs):
    name = c["name"]
    L = [f"# {name}: how it was checked", "",
         f"Covers: {c['covers']}.", "",
         f"Input: `input.safetensors`, W ({c['rows_out']}, {c['cols_in']}) F32, "
         + (f"X ({c['n_tokens']}, {c['cols_in']}) F32" if c["hessian_from"] == "X"
            else f"H ({c['cols_in']}, {c['cols_in']}) F32 given directly (from {c['n_tokens']} tokens)")
         + f"; numpy seed {c['seed']} (tools/make_ref_inputs.py).", "",
         "Expected (`expected.safetensors`): gptq-c's CPU backend through the CLI, float32:", "",
         "```",
         f"OPENBLAS_CORETYPE=Haswell OMP_NUM_THREADS=1 build-ref/src/cli/gptq layer "
         f"ref/{name}/input.safetensors -o ref/{name}/expected.safetensors {' '.join(c['flags'])}",
         "```", "",
         f"made by `{em.get('quantizer')}` ({em.get('checkpoint_format')} zero points), "
         f"gptq_ref_version {em.get('gptq_ref_version')}: loss {em['loss']}, out_rel_err "
         f"{em['out_rel_err']}, damp_used {em['damp_used']} ({em['damp_retries']} retries), "
         f"dead columns {em['dead_cols']}.", "",
         "## Self-consistency of the expected file", ""]
    for what, ok, det in sc:
        L.append(f"- {'ok' if ok else '**FAIL**'}: {what}" + (f" ({det})" if det else ""))
    L += ["", "## Against the oracle (tools/gptq_oracle.py, an independent PyTorch GPTQ)", ""]
    cmds = []
    for tag, m, p in rows:
        dev, dt = tag.split()[:2]
        r = runlogs.get((name, dev, dt, tag.split()[-1]))
        if r:
            cmds.append(f"- {tag}: torch {r[1]['torch']} on {r[1]['device_name']}, "
                        f"{r[0]['seconds']:.2f} s: `{r[0]['command']}`")
        else:
            cmds.append(f"- {tag}: {m['oracle']}")
    L += cmds + ["", TABLE_HEAD]
    for tag, m, _ in rows:
        L.append(fmt_row(tag, m))
    for tag, m, _ in rows:
        if m["start_details"]:
            L += ["", f"Where the diverging rows start ({tag}, first 8):", ""]
            L += [f"- {dl}" for dl in m["start_details"]]
    L += ["", f"Thresholds for 'agree': codes same >= {T_CODES_SAME:.0%}, max code diff <= "
          f"{T_CODE_MAXDIFF}, loss rel <= {T_LOSS_REL:g}, perm, g_idx, damp_used, damp_retries "
          f"and dead columns equal, and every row whose codes differ first differs at a rounding "
          f"tie (the oracle's w/s within {T_TIE:g} of a half-integer) or at a group whose grid "
          f"differs, never elsewhere. The dequant rel L2 is reported, not judged: one flipped "
          f"code at a group's extreme weight is a whole step of a large weight. The float32 "
          f"rows are for information (a float32 oracle on another library's kernels is no "
          f"closer to us than the float64 one).", ""]
    note = CASE_NOTES.get(name)
    if note:
        L += ["## Notes", "", note, ""]
    L += [f"Checked at commit `{gitrev()}` with `tools/check_ref.py compare --write`.", ""]
    with open(os.path.join(REF, name, "CHECK.md"), "w") as f:
        f.write("\n".join(L))


# Per-case remarks that the figures alone do not explain (from the investigation).
SYM_TIE = (
    "With a symmetric grid, xmin = -xmax and s = 2 xmax / maxq, so the group's most negative "
    "weight w = -xmax has w/s = -maxq/2 = -7.5 exactly (4 bits): a rounding tie in exact "
    "arithmetic, and both choices (code 0: w_hat = -8s, code 1: w_hat = -7s) miss by s/2. "
    "Which way it goes is decided by the last bits of w and s, so float32 vs float64, and even "
    "two float64 libraries (torch 1.13 CPU, 2.11 CPU, 2.11 CUDA), pick differently for a few "
    "rows; the error feedback then carries the difference along the row (off by one only). "
    "Every diverging row here starts at such a tie at the group's extreme column (an outlier "
    "column), none elsewhere. Our bytes are deterministic; other backends must expect these "
    "tie flips against the CPU reference on symmetric grids.")
CASE_NOTES = {
    "w4_g32_sym_b64": SYM_TIE,
    "w8_row_sym": "The symmetric tie (see w4_g32_sym_b64: w/s = -127.5 at the row's most negative "
                  "weight) exists here too; in this case every implementation rounded it the "
                  "same way.",
    "damp_retry": "The f32-rounded rank-16 H has eigenvalues of both signs near 1e-7 ||H|| in "
                  "its null space, so the undamped Cholesky fails in float32 and float64 alike; "
                  "all implementations retried once and succeeded at damp_percent 0.01.",
    "dead_cols_act": "Columns 20 and 77 are dead (H_ii = 0 -> 1, W[:, i] = 0); with act-order "
                     "they tie at H_ii = 1 and keep column order (20 before 77) in perm, as "
                     "the oracle's stable sort does.",
    "rtn_w4_g128": "RTN: grids per group of the input W, no Hessian in the solve; the loss is "
                   "sum (w - w_hat)^2 / 2 (U_jj taken as 1), as the CPU backend reports it.",
    "gar_dead_cols": "The dead groups 3 and 6 score 1 (their H_ii set to 1) below every live "
                     "group and tie with each other: perm ends with group 3's columns, then "
                     "group 6's, each in column order. The case is symmetric on purpose: a "
                     "dead group's weights are all 0, whose grid is the [-1, 1] fallback, and "
                     "with an asymmetric grid its zero point -xmin/s = maxq/2 = 7.5 is an exact "
                     "tie that float32 (s = f32(2/15) > 2/15: 7) and float64 (8) round apart "
                     "(codes 7 vs 8 for the same w_hat 0: an asymmetric version agreed on 75% "
                     "of the codes, the dead groups' whole difference); the symmetric zero "
                     "point is fixed.",
    "gar_w4_g128_asym": "Seeded fault: the oracle in the paper's order (without "
                        "--act-group-aware) agrees on 57.9% of the codes, perm differs and "
                        "126 of 128 diverging rows start at non-ties.",
    "gar_w4_g32_static": "Seeded fault: the oracle in the paper's order (without "
                         "--act-group-aware) agrees on 54.4% of the codes (static grids are the "
                         "same: zeros 100%), every diverging row starting at a non-tie.",
}


def write_readme(summary):
    L = ["# ref/ -- golden cases of gptq-c's CPU reference", "",
         "Each folder holds one layer-quantization case:", "",
         "- `input.safetensors`: `W` (out, in) F32 and either `X` (n, in) F32, calibration inputs "
         "(H = (2/n) X^T X, n = rows), or `H` (in, in) F32; metadata gptq_ref_case, gptq_ref_seed.",
         "- `case.json`: name, what it covers, seed, shapes, and `flags`, the CLI options.",
         "- `expected.safetensors`: what `gptq layer` (CPU backend) wrote: `qweight` I32, "
         "`qzeros` I32, `scales` F16, `g_idx` I32 (checkpoint tensors), `codes` U8 (out, in), "
         "`zeros` I32 (ngroups, out), `scales_f32` F32 (ngroups, out), `perm` I32 (in), "
         "`dequant` F32 (out, in); metadata loss, out_rel_err, damp_used, damp_retries, "
         "dead_cols, the options, timings, and `gptq_ref_version` (the CLI's echo `H` is "
         "dropped to keep ref/ small; the exact loss pins it).",
         "- `CHECK.md`: how the case was checked against the independent oracle, with the figures.",
         "", "tests/test_ref.c runs the CLI on every case and compares every tensor of "
         "expected.safetensors byte for byte (memcmp), and the metadata loss, out_rel_err, "
         "damp_used, damp_retries, dead_cols exactly (timings ignored).", "",
         "## Cases", "",
         "| case | covers | shape (out x in, tokens) | flags | codes same (CPU f64) | loss rel | verdict |",
         "|---|---|---|---|---|---|---|"]
    # a compare of some cases keeps the other cases' rows as the README has them
    old_rows = {}
    readme = os.path.join(REF, "README.md")
    if os.path.exists(readme):
        with open(readme) as f:
            for line in f:
                name = line.split("|")[1].strip() if line.startswith("| ") else ""
                old_rows[name] = line.rstrip("\n")
    done = {c["name"]: (c, rows) for c, em, sc, rows in summary}
    for c in cases():
        if c["name"] not in done:
            if c["name"] in old_rows:
                L.append(old_rows[c["name"]])
            continue
        c, rows = done[c["name"]]
        f64 = [m for tag, m, _ in rows if tag.startswith("cpu float64 torch 1.")]
        m = f64[0] if f64 else None
        L.append(f"| {c['name']} | {c['covers']} | {c['rows_out']} x {c['cols_in']}, "
                 f"{c['n_tokens']} {'(H)' if c['hessian_from'] == 'H' else ''} | "
                 f"`{' '.join(c['flags'])}` | "
                 + (f"{m['codes_same']:.4%} | {m['loss_rel']:.1e} | {m['verdict']} |" if m
                    else "- | - | no oracle run |"))
    L += ["", "## Regenerating", "",
          "Inputs (pure function of the seeds; numpy's PCG64):", "",
          "```", "/usr/bin/python3 tools/make_ref_inputs.py", "```", "",
          "Expected outputs (our CPU backend; bump REF_VERSION in tools/make_ref_inputs.py and "
          "GPTQ_REF_VERSION in tests/test_ref.c together when their meaning changes):", "",
          "```", "meson setup build-ref && ninja -C build-ref",
          "/usr/bin/python3 tools/make_ref_inputs.py --expected build-ref", "```", "",
          "Oracle runs and the check (CHECK.md files and this README):", "",
          "```",
          "/usr/bin/python3 tools/check_ref.py oracle --dtypes float64 float32   # CPU, torch 1.13",
          "# on the device machine (torch 2.x), results unpacked into build-ref/:",
          "#   python3 tools/check_ref.py oracle --device cuda --out build-ref/oracle-cuda",
          "#   python3 tools/check_ref.py oracle --device cpu --out build-ref/oracle-cpu2",
          "/usr/bin/python3 tools/check_ref.py compare --oracle-dir build-ref/oracle "
          "--oracle-dir build-ref/oracle-cuda --oracle-dir build-ref/oracle-cpu2 --write",
          "```", ""]
    L += README_NOTES
    with open(os.path.join(REF, "README.md"), "w") as f:
        f.write("\n".join(L))


README_NOTES = [
    "## What the agreement means", "",
    "- The oracle (tools/gptq_oracle.py) is a PyTorch GPTQ written from the paper and "
    "README.md's algorithm, float64 by default. Its blocked solve was itself checked against an "
    "unblocked OBS solve with an explicit inverse Hessian downdated after every column "
    "(`--method gptq-naive`) and against `--block-size 1`: identical codes and loss to 1e-15 "
    "in float64 on every GPTQ case except w4_g32_sym_b64, where the symmetric-grid ties "
    "(below) flip a few codes.",
    "- The check separates real differences from rounding noise: rows are independent in "
    "GPTQ, so for every row whose codes differ, the first differing code is classified as a "
    "rounding tie (the oracle's w/s within 1e-3 of a half-integer), a grid difference, or "
    "other. Seeded faults show it bites: the oracle with `--grid-from block-start` (the "
    "paper authors' code computes a group's grid from W as of the block start, not from the "
    "in-block updated W that README.md's algorithm fixes) agrees on only 69.7% of the codes of "
    "mse_w4_g32 and 91.8% of w4_g32_sym_b64 (all rows start at a grid difference); "
    "damp_percent 0.012 instead of 0.01 gives 83.7% (w4_g128_asym) and 93.4% (mse_w4_g32), "
    "with rows starting at non-ties. Against our goldens every float64 oracle gives 100% "
    "identical codes on 9 of 10 cases and 99.57-99.74% on w4_g32_sym_b64, every diverging "
    "row starting at a tie.",
    "- Symmetric grids put the group's most negative weight exactly on a rounding tie "
    "(w/s = -maxq/2); see ref/w4_g32_sym_b64/CHECK.md. Backends compared with the CPU "
    "reference must allow these flips on symmetric cases.",
    "- GAR (`act_group_aware`, on by default since the cases gar_* were added): the cases "
    "made before it carry `--no-act-group-aware` in case.json, the column order they were "
    "made in, so their expected bytes are unchanged (their CHECK.md show the command as it "
    "was run then, without the flag, which meant the same order). The oracle implements GAR "
    "from its description (tools/gptq_oracle.py, step 3), independently of src/quant/gptq.c; "
    "the gar_* cases were checked against the CPU oracle (torch 1.13, float64 and float32) "
    "only: 100% identical codes on all five.",
    "- Where README.md's algorithm departs from the paper authors' code, the oracle follows it: "
    "grids from the in-block updated W; sym sets xmin = -xmax always (their code only where "
    "xmin < 0, which gives an all-non-negative group a half-width grid that clips at 7/15 of "
    "its maximum); n counts tokens.", ""]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("oracle")
    o.add_argument("--device", default="cpu")
    o.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    o.add_argument("--out", default=DEFAULT_ORACLE_DIR)
    o.add_argument("cases", nargs="*")
    c = sub.add_parser("compare")
    c.add_argument("--oracle-dir", action="append",
                   help="a folder of oracle outputs (repeat the option for several)")
    c.add_argument("--write", action="store_true")
    c.add_argument("cases", nargs="*")
    a = ap.parse_args()
    if a.cmd == "oracle":
        run_oracle(a)
        return 0
    return compare(a)


if __name__ == "__main__":
    sys.exit(main())
