#!/usr/bin/env python3
"""mutate.py - mutation spot-check of the core: does the test suite notice?

Each mutant is one textual search/replace in one source file (a rounding
mode, a clamp, a sign, an index, an offset) that a correct test suite must
reject. The tool never edits the checkout: it copies the tracked and
untracked-but-not-ignored files into WORK/tree (default WORK: build-mutate/,
ignored by git), configures WORK/tree/build once, and for each mutant writes
the mutated file into the copy, rebuilds incrementally, runs that mutant's
tests, and writes the original back (also on Ctrl-C or an error; the copy is
refreshed from the checkout at every start anyway).

Each mutant lists the tests that should kill it, fastest first, as meson test
names, optionally with a Criterion filter (`gptq:gptq/rtn_*` runs
`meson test gptq --test-args=--filter=gptq/rtn_*`); the first failing one
stops the mutant. A baseline run of every listed test on the unmutated copy
must pass first. Outcomes: killed (a test failed, crashed or timed out),
SURVIVED, stillborn (did not compile: fix the mutant), missing (the search
text is not in the file any more: update the mutant).

Usage: tools/mutate.py [--work DIR] [--only ID,ID] [--md tools/MUTANTS.md]
                       [--timeout S] [--list]
Not run by CI (it takes ~30-60 min on 2 cores). The shared models are read
from $GPTQ_SHARED, else <checkout>/../shared.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

QUANT = "backends/cpu/cpu_quant.c"
DRIVER = "src/quant/gptq.c"
SOLVE = "src/quant/solve.c"
LINALG = "backends/cpu/cpu_linalg.c"
PACK = "src/format/pack.c"
FORMAT = "src/format/format.c"
FWD_CPU = "backends/cpu/cpu_forward.c"
FWD = "src/model/arch_llama.c"
TOK = "src/text/tokenizer.c"

# quick test sets (each well under a minute here)
Q_FAST = ["exact", "ref", "gptq:gptq/rtn_matches_definition", "gptq:gptq/diagonal_hessian_equals_rtn"]
Q_SOLVE = ["ref", "gptq:gptq/beats_rtn_on_output_error", "gptq:gptq/diagonal_hessian_equals_rtn"]
P_FAST = ["pack", "checkpoint:qzeros/*"]
F_FAST = ["model:forward/*", "eval", "quantize:tiny/*"]
T_FAST = ["tokenizer"]
MODEL_FWD = "src/model/forward.c"
DECODER = "src/model/decoder.c"
J_PACK = ["pack:concat/*"]
J_BIAS = ["genfast:genfast/joined_opt_biases"]
J_GEN = ["genfast:genfast/joined_qwen3", "genfast:genfast/joined_linears_are_the_apart_bits"]

# (id, what it breaks, file, search, replace, tests)
MUTANTS = [
    # --- rounding -----------------------------------------------------------
    ("round-code", "rounding: code w/s half away from zero", QUANT,
     "rintf(w[j] / s) + z", "roundf(w[j] / s) + z", ["exact", "ref"]),
    ("round-zero", "rounding: zero point half away from zero", QUANT,
     "float zero = p->sym ? zsym : rintf(-xmin / scale);",
     "float zero = p->sym ? zsym : roundf(-xmin / scale);", ["exact", "ref"]),
    ("round-mse-zero", "rounding: the mse search's zero half away", QUANT,
     "float z1 = p->sym ? zsym : rintf(-xmin1 / s1);",
     "float z1 = p->sym ? zsym : roundf(-xmin1 / s1);", ["exact", "ref", "gptq:gptq/rtn_matches_definition"]),
    ("round-mse-code", "rounding: the mse search's codes truncated", QUANT,
     "float q = fminf(fmaxf(rintf(w[k] / s1) + z1, 0.0f), maxq);",
     "float q = fminf(fmaxf(truncf(w[k] / s1) + z1, 0.0f), maxq);",
     ["exact", "ref", "gptq:gptq/rtn_matches_definition"]),
    # --- clamping -----------------------------------------------------------
    ("clamp-low", "clamping: no lower clamp of the code", QUANT,
     "const float q = fminf(fmaxf(rintf(w[j] / s) + z, 0.0f), maxq);",
     "const float q = fminf(rintf(w[j] / s) + z, maxq);", ["exact", "ref"]),
    ("clamp-high", "clamping: no upper clamp of the code", QUANT,
     "const float q = fminf(fmaxf(rintf(w[j] / s) + z, 0.0f), maxq);",
     "const float q = fmaxf(rintf(w[j] / s) + z, 0.0f);", ["exact", "ref"]),
    ("clamp-maxq", "clamping: maxq one too small", QUANT,
     "const float maxq = (float)((1 << a->grid.bits) - 1);",
     "const float maxq = (float)((1 << a->grid.bits) - 2);", ["exact", "ref"]),
    # --- grid ---------------------------------------------------------------
    ("grid-range-zero", "grid: range not widened to include 0", QUANT,
     "float xmin = 0.0f, xmax = 0.0f;\n    for (int64_t k = 0; k < g; k++) {",
     "float xmin = w[0], xmax = w[0];\n    for (int64_t k = 0; k < g; k++) {", Q_FAST),
    ("grid-sym-max", "grid: sym range from max w, not max abs(w)", QUANT,
     "xmax = fmaxf(-xmin, xmax);", "xmax = fmaxf(xmin, xmax);", Q_FAST),
    # (rintf(maxq / 2) would be an equivalent mutant: maxq/2 = 2^(b-1) - 1/2
    # rounds half to even up to 2^(b-1))
    ("grid-zsym", "grid: sym zero 2^(b-1) - 1", QUANT,
     "const float zsym = (maxq + 1.0f) / 2.0f;", "const float zsym = (maxq - 1.0f) / 2.0f;", Q_FAST),
    ("grid-scale", "grid: scale over maxq + 1 levels", QUANT,
     "float scale = (xmax - xmin) / maxq;", "float scale = (xmax - xmin) / (maxq + 1.0f);", Q_FAST),
    ("grid-allzero", "grid: an all-zero group gets [-1, 0.5]", QUANT,
     "xmin = -1.0f;\n        xmax = 1.0f;", "xmin = -1.0f;\n        xmax = 0.5f;",
     ["exact", "ref", "gptq:gptq/dead_column", "gptq:gptq/rtn_matches_definition"]),
    ("grid-mse-shrink", "grid: the mse search skips the unshrunk range", QUANT,
     "float f = 1.0f - (float)i / (float)p->mse_grid;",
     "float f = 1.0f - (float)(i + 1) / (float)p->mse_grid;", Q_FAST),
    ("grid-group-start", "group index: grids at block-relative group starts", QUANT,
     "if (!a->grid_given && j % G == 0) {", "if (!a->grid_given && (j - j0) % G == 0) {",
     ["exact", "ref", "gptq:gptq/diagonal_hessian_equals_rtn"]),
    # --- error feedback and loss -------------------------------------------------
    ("errfb-sign", "error feedback: added instead of subtracted", QUANT,
     "for (int64_t k = j + 1; k < j0 + nb; k++) w[k] -= e * u[k];",
     "for (int64_t k = j + 1; k < j0 + nb; k++) w[k] += e * u[k];", ["exact", "ref"]),
    ("errfb-scale", "error feedback: error times U_jj instead of over it", QUANT,
     "const float e = (w[j] - what) / d;", "const float e = (w[j] - what) * d;", ["exact", "ref"]),
    ("errfb-last", "error feedback: the block's last column not updated", QUANT,
     "for (int64_t k = j + 1; k < j0 + nb; k++) w[k] -= e * u[k];",
     "for (int64_t k = j + 1; k < j0 + nb - 1; k++) w[k] -= e * u[k];", ["exact", "ref"]),
    ("loss-half", "loss: the 1/2 dropped", QUANT,
     "loss[r] += diff * diff / ((double)d * (double)d) / 2.0;",
     "loss[r] += diff * diff / ((double)d * (double)d);", Q_SOLVE),
    # --- lazy update ----------------------------------------------------------
    ("lazy-sign", "lazy update: later blocks get +E U", SOLVE,
     "be->iface->gemm(be->ctx, 0, 0, R, C - j0 - nb, nb, -1.0f, b->Err, 0,",
     "be->iface->gemm(be->ctx, 0, 0, R, C - j0 - nb, nb, 1.0f, b->Err, 0,", Q_SOLVE),
    ("lazy-first", "lazy update: skipped after the first block", SOLVE,
     "if (!st && b->U && j0 + nb < C)\n", "if (!st && b->U && j0 + nb < C && j0 > 0)\n", Q_SOLVE),
    ("lazy-offset", "lazy update: U read one column early", SOLVE,
     "nb, b->U, (size_t)(j0 * C + j0 + nb), C, 1.0f,",
     "nb, b->U, (size_t)(j0 * C + j0 + nb - 1), C, 1.0f,", Q_SOLVE),
    # --- damp schedule ---------------------------------------------------------
    ("damp-mean", "damp: lambda from the mean over C + 1", DRIVER,
     "mean /= (double)C;", "mean /= (double)(C + 1);", ["ref", "gptq:gptq/damp_retry_reported"]),
    ("damp-step", "damp schedule: doubling instead of adding the increment", DRIVER,
     "const float next = (float)(d0 + (double)(res->damp_retries + 1) * inc);",
     "const float next = (float)(2.0 * (double)damp + inc);",
     ["gptq:gptq/damp_schedule_pinned", "gptq:gptq/damp_retry_reported"]),
    ("damp-max", "damp schedule: the last step up to damp_max refused", DRIVER,
     "next > cfg->damp_max + 1e-6f", "next >= cfg->damp_max - 1e-6f",
     ["gptq:gptq/damp_schedule_pinned", "gptq:gptq/damp_retries_stop_with_a_reason"]),
    ("damp-count", "damp schedule: retries not counted", DRIVER,
     "        damp = next;\n        res->damp_retries++;", "        damp = next;",
     ["gptq:gptq/damp_retry_reported", "gptq:gptq/not_positive_definite_after_damping"]),
    # --- Hessian -------------------------------------------------------------
    ("hessian-scale", "Hessian scale: 1/n instead of 2/n", DRIVER,
     "return (float)(2.0 / (double)h->n);", "return (float)(1.0 / (double)h->n);",
     ["ref", "gptq", "cpu_linalg"]),
    ("hessian-count", "Hessian count: batches counted, not rows", DRIVER,
     "        if (st) return st;\n    }\n    h->n += n;\n    return GPTQ_OK;\n}\n\nint gptq_hessian_add_buf",
     "        if (st) return st;\n    }\n    h->n += 1;\n    return GPTQ_OK;\n}\n\nint gptq_hessian_add_buf",
     ["ref", "gptq", "cpu_linalg"]),
    ("dead-col", "dead columns: W not zeroed", LINALG,
     "for (int64_t r = 0; r < R; r++) w[r * C + i] = 0.0f;", "",
     ["gptq:gptq/dead_column", "ref"]),
    # --- act-order, group index, g_idx --------------------------------------------
    ("actorder-asc", "act-order: ascending diag(H)", DRIVER,
     "    if (da > db) return -1;\n    if (da < db) return 1;",
     "    if (da < db) return -1;\n    if (da > db) return 1;",
     ["ref", "gptq:gptq/act_order_and_static_groups_indices", "exact"]),
    ("actorder-ties", "act-order: ties by column descending", DRIVER,
     "return (a > b) - (a < b);", "return (a < b) - (a > b);",
     ["ref", "gptq:gptq/act_order_and_static_groups_indices", "exact"]),
    ("gidx-static", "group index: static groups follow the quantization order", DRIVER,
     "gidx[j] = (int32_t)((cfg->static_groups ? perm[j] : j) / G);", "gidx[j] = (int32_t)(j / G);",
     ["ref", "gptq:gptq/act_order_and_static_groups_indices", "exact"]),
    ("g_idx-order", "g_idx: stored in quantization order, not column order", DRIVER,
     "res->g_idx[perm[j]] = cfg->static_groups", "res->g_idx[j] = cfg->static_groups",
     ["ref", "gptq:gptq/act_order_and_static_groups_indices", "exact"]),
    ("perm-codes", "act-order: codes left in quantization order", DRIVER,
     "ipb, 1),", "NULL, 1),",
     ["exact", "ref"]),
    # --- packing, zero offsets, g_idx in the checkpoint ------------------------------
    ("pack-flush", "packing: a word flushed only past 32 bits", PACK,
     "    if (w->nacc >= 32) {", "    if (w->nacc > 32) {", P_FAST),
    ("unpack-mask", "unpacking: the field mask loses bit 0", PACK,
     "(uint32_t)(r->acc & ((1u << bits) - 1u));", "(uint32_t)(r->acc & ((1u << bits) - 2u));", P_FAST),
    ("pack-3bit-straddle", "packing 3 bits: the word-straddling bits dropped", PACK,
     "        w->acc >>= 32;\n        w->nacc -= 32;",
     "        w->acc = 0;\n        w->nacc -= 32;", P_FAST),
    ("pack-3bit-dims", "packing 3 bits: K a multiple of 16 accepted", FORMAT,
     "{.bits = 3, .mult = 32}", "{.bits = 3, .mult = 16}", P_FAST),
    ("pack-8bit-dims", "packing 8 bits: K a multiple of 2 accepted", FORMAT,
     "{.bits = 8, .mult = 4}", "{.bits = 8, .mult = 2}", P_FAST),
    ("v1-write", "v1 zero offset: z written instead of z - 1", PACK,
     "bw_put(&w, (uint32_t)(r->zeros[g * N + n] - zmin), b);",
     "bw_put(&w, (uint32_t)(r->zeros[g * N + n]), b);", P_FAST),
    ("v1-read", "v1 zero offset: field read without + 1", PACK,
     "const int32_t zadd = gptq_format_get(fmt)->zero_offset;", "const int32_t zadd = 0;", P_FAST),
    ("v2-read", "v2 zero offset: field read with + 1", PACK,
     "const int32_t zadd = gptq_format_get(fmt)->zero_offset;", "const int32_t zadd = 1;", P_FAST),
    ("g_idx-dequant", "g_idx: dequantize assumes sequential groups", PACK,
     "        int64_t g = p->g_idx[k];", "        int64_t g = k * p->ngroups / K;", P_FAST),
    ("g_idx-copy", "g_idx: not copied into the packed tensors", PACK,
     "memcpy(out->g_idx, r->g_idx, (size_t)K * sizeof(int32_t));",
     "memset(out->g_idx, 0, (size_t)K * sizeof(int32_t));", P_FAST),
    # --- the forward's norms, rope, attention -------------------------------------
    ("rmsnorm-eps", "RMSNorm: eps dropped", FWD_CPU,
     "float r = 1.0f / sqrtf(var + eps);", "float r = 1.0f / sqrtf(var);", F_FAST),
    ("rmsnorm-weight", "RMSNorm: weight not applied", FWD_CPU,
     "yr[i] = wt[i] * (xr[i] * r);", "yr[i] = xr[i] * r;", F_FAST),
    ("rmsnorm-mean", "RMSNorm: sum of squares over D - 1", FWD_CPU,
     "float var = (float)(ss / (double)D);", "float var = (float)(ss / (double)(D - 1));", F_FAST),
    ("layernorm-center", "LayerNorm: mean not subtracted", FWD_CPU,
     "float muf = (float)mu;", "float muf = 0.0f;", F_FAST),
    ("layernorm-bias", "LayerNorm: bias not added", FWD_CPU,
     "if (bs) z = z + bs[i];", "", F_FAST),
    ("rope-sign", "RoPE: rotation by -angle", FWD_CPU,
     "v[i] = a * co[i] - b * si[i];\n                v[i + half] = b * co[i] + a * si[i];",
     "v[i] = a * co[i] + b * si[i];\n                v[i + half] = b * co[i] - a * si[i];", F_FAST),
    ("rope-theta", "RoPE: inv_freq = theta^-(i/d)", FWD,
     "float inv = 1.0f / powf(theta, (float)(2 * i) / (float)d);",
     "float inv = 1.0f / powf(theta, (float)i / (float)d);", F_FAST),
    ("attn-mask", "attention: no causal mask inside a tile", FWD_CPU,
     "const int64_t nj = i0 + r + 1;", "const int64_t nj = nk;", F_FAST),
    ("attn-scale", "attention: scores over d, not sqrt(d)", FWD,
     "const float scale = (float)(1.0 / sqrt((double)d));", "const float scale = (float)(1.0 / (double)d);",
     F_FAST),
    ("attn-gqa", "attention: query head h reads KV head h % Hk", FWD_CPU,
     "const int64_t kvh = h / (H / Hk);", "const int64_t kvh = h % Hk;", F_FAST),
    # --- tokenizer merges ---------------------------------------------------------
    ("merge-rank", "BPE: highest rank merged first", TOK,
     "return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos;",
     "return a.rank != b.rank ? a.rank > b.rank : a.pos < b.pos;", T_FAST),
    ("merge-leftmost", "BPE: rightmost among equal ranks", TOK,
     "return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos;",
     "return a.rank != b.rank ? a.rank < b.rank : a.pos > b.pos;", T_FAST),
    ("merge-stale", "BPE: stale queue entries applied", TOK,
     "if (k < 0 || t->merges.out[k] != top.out) continue; /* stale entry */",
     "if (k < 0) continue;", T_FAST),
    ("merge-left-neighbour", "BPE: the new symbol's left pair not queued", TOK,
     "if (s[p].prev >= 0) TRY(push_pair(c, s[p].prev));", "", T_FAST),
    ("merge-rank-all-0", "BPE: every merge the same rank", TOK,
     "pairmap_put(&t->merges, ia, ib, rank, io);", "pairmap_put(&t->merges, ia, ib, 0, io);", T_FAST),
    # --- joined linears (generation: q|k|v, gate|up one packed tensor) -------------
    ("join-zeros", "joined tensor: every linear's qzeros words at column 0", PACK,
     "z0 = c0 * b->bits / 32;", "z0 = 0;", J_PACK),
    ("join-bias", "joined linears: the joined bias not added", MODEL_FWD,
     "if (J->bias) GPTQ_TRY(", "if (0 && J->bias) GPTQ_TRY(", J_BIAS),
    ("join-split", "joined linears: every split of a prompt's rows from column 0", MODEL_FWD,
     "h[j] = (int32_t)(col + j);", "h[j] = (int32_t)j;", J_GEN),
    ("join-kv-offsets", "joined linears: k and v read at each other's columns", DECODER,
     "qo = (size_t)cq, ko = (size_t)ck, vo = (size_t)cv;",
     "qo = (size_t)cq, ko = (size_t)cv, vo = (size_t)ck;", J_GEN),
]


def log(msg):
    print(msg, flush=True)


def run(cmd, cwd, env, timeout):
    """Run cmd in its own process group; kill the group on timeout or Ctrl-C.
    Returns (rc, output); rc None on timeout."""
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True, text=True, errors="replace")
    try:
        out, _ = p.communicate(timeout=timeout)
        return p.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        return None, out
    except BaseException:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise


def sync_tree(tree):
    """Copy the checkout's tracked and untracked-but-not-ignored files into tree."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           check=True, stdout=subprocess.PIPE).stdout.split(b"\0")
    for f in files:
        if not f:
            continue
        rel = f.decode()
        src, dst = os.path.join(ROOT, rel), os.path.join(tree, rel)
        if not os.path.isfile(src):
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if not os.path.exists(dst) or open(src, "rb").read() != open(dst, "rb").read():
            shutil.copy2(src, dst)


def test_cmd(build, spec):
    name, _, flt = spec.partition(":")
    cmd = ["meson", "test", "-C", build, "--no-rebuild", "--print-errorlogs", name]
    if flt:
        cmd.append("--test-args=--filter=" + flt)
    return cmd


def failing_tests(out):
    """The Criterion tests that failed or crashed, as suite::test."""
    names = []
    for m in re.finditer(r"\[(?:FAIL|CRASH)\]\s+(?:\x1b\[[0-9;]*m)*([\w-]+::[\w-]+)", out):
        if m.group(1) not in names:
            names.append(m.group(1))
    return names


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=os.path.join(ROOT, "build-mutate"))
    ap.add_argument("--only", default="", help="comma-separated mutant ids")
    ap.add_argument("--md", default="", help="write the result table (markdown) here")
    ap.add_argument("--timeout", type=int, default=300, help="seconds per test command")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()

    ids = [m[0] for m in MUTANTS]
    assert len(set(ids)) == len(ids), "duplicate mutant ids"
    assert not any("|" in m[1] for m in MUTANTS), "a '|' would break the markdown table"
    todo = [m for m in MUTANTS if not a.only or m[0] in a.only.split(",")]
    if a.list:
        for m in todo:
            log(f"{m[0]:22} {m[2]:28} {m[1]}  [{' '.join(m[5])}]")
        return 0

    tree = os.path.join(a.work, "tree")
    build = os.path.join(tree, "build")
    os.makedirs(tree, exist_ok=True)
    sync_tree(tree)
    env = dict(os.environ)
    env.setdefault("GPTQ_SHARED", os.path.realpath(os.path.join(ROOT, "..", "shared")))
    env["OPENBLAS_CORETYPE"] = "Haswell"
    if not os.path.isdir(build):
        rc, out = run(["meson", "setup", build, "-Dtests=enabled", "-Dwerror=false"], tree, env, 600)
        if rc != 0:
            log(out)
            return 2
    rc, out = run(["ninja", "-C", build], tree, env, 3600)
    if rc != 0:
        log(out)
        return 2

    # baseline: every test the mutants use passes on the unmutated copy
    specs = []
    for m in todo:
        for s in m[5]:
            if s not in specs:
                specs.append(s)
    log(f"baseline: {len(specs)} test commands")
    for s in specs:
        rc, out = run(test_cmd(build, s), tree, env, a.timeout)
        if rc != 0:
            log(out[-3000:])
            log(f"baseline failed: {s}: fix the suite (or the environment) first")
            return 2

    rows = []
    t_all = time.time()
    for mid, what, rel, search, replace, tests in todo:
        path = os.path.join(tree, rel)
        orig = open(path, encoding="utf-8").read()
        n = orig.count(search)
        if n != 1:
            rows.append((mid, what, rel, "missing" if n == 0 else f"ambiguous ({n})", ""))
            log(f"{mid}: search text found {n} times in {rel}")
            continue
        t0 = time.time()
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write(orig.replace(search, replace))
            rc, out = run(["ninja", "-C", build], tree, env, 1200)
            if rc != 0:
                outcome, by = "stillborn", out.strip().splitlines()[-1][:100] if out.strip() else ""
            else:
                outcome, by = "SURVIVED", ""
                for s in tests:
                    rc, out = run(test_cmd(build, s), tree, env, a.timeout)
                    if rc != 0:
                        fails = failing_tests(out)
                        outcome = "killed" if rc is not None else "killed (timeout)"
                        by = s.partition(":")[0] + (": " + ", ".join(fails[:3]) if fails else "")
                        break
        finally:
            with open(path, "w", encoding="utf-8") as f:
                f.write(orig)
        rows.append((mid, what, rel, outcome, by))
        log(f"{mid:22} {outcome:10} {time.time() - t0:6.1f}s  {by}")
    # leave the copy built as the checkout is
    run(["ninja", "-C", build], tree, env, 1200)

    if a.md and a.only and os.path.exists(a.md):
        # a partial run updates its rows of the existing table
        new = {r[0]: r for r in rows}
        old = []
        for line in open(a.md, encoding="utf-8"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 5 and cells[0] in ids:
                old.append(tuple(cells))
        seen = {r[0] for r in old}
        rows = [new.get(r[0], r) for r in old] + [r for r in rows if r[0] not in seen]
        rows.sort(key=lambda r: ids.index(r[0]))
    counted = [r for r in rows if r[3].startswith(("killed", "SURVIVED"))]
    killed = sum(1 for r in counted if r[3].startswith("killed"))
    summary = (f"{killed} of {len(counted)} mutants killed "
               f"({100.0 * killed / max(len(counted), 1):.1f}%), {len(rows) - len(counted)} not run"
               + ("" if a.only else f", {time.time() - t_all:.0f} s"))
    log(summary)
    if a.md:
        with open(a.md, "w", encoding="utf-8") as f:
            f.write("# Mutation spot-check (tools/mutate.py)\n\n")
            f.write("Each mutant is one textual change to the core; a test must fail on it. "
                    "Regenerate with `tools/mutate.py --md tools/MUTANTS.md` (not run by CI).\n\n")
            f.write(f"Result: {summary}.\n\n")
            f.write("| mutant | what it breaks | file | outcome | killed by |\n")
            f.write("| --- | --- | --- | --- | --- |\n")
            for r in rows:
                f.write(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} |\n")
    return 0 if killed == len(counted) else 1


if __name__ == "__main__":
    sys.exit(main())
