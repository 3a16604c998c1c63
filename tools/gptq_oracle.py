#!/usr/bin/env python3
"""gptq_oracle.py -- an independent PyTorch implementation of GPTQ for one layer.

It exists to check gptq-c's CPU reference (and through it every backend) against
a second implementation written from the paper (Frantar et al., "GPTQ: Accurate
Post-Training Quantization for Generative Pre-trained Transformers", ICLR 2023,
Algorithm 1) and from the details that README.md "The algorithm, as the reference fixes it" fixes. It shares
no code with gptq-c, GPTQModel, AutoGPTQ or the paper authors' repository.

Runs on torch 1.13 (CPU) and newer (CPU or CUDA); float64 by default.

Input : a .safetensors file with W (out, in) F32 and either X (n, in) F32 (then
        H = (2/n) X^T X, n = rows of X) or H (in, in) F32 (used as given).
Output: a .safetensors file with
        codes   U8  (out, in)      integer codes, original column order
        scales  F32 (ngroups, out)
        zeros   I32 (ngroups, out)
        g_idx   I32 (in)           group of each input column
        perm    I32 (in)           quantization order: perm[i] = column
        dequant F32 (out, in)      scales[g_idx[k], r] * (codes[r, k] - zeros[g_idx[k], r])
        w_at_quant F64 (out, in)   the (error-fed) weight each code was rounded from
        metadata: loss, out_rel_err, damp_used, damp_retries, dead_cols,
                  oracle_torch, oracle_dtype, oracle_device, flags

Algorithm (the points where implementations differ are marked *):
  1. H0 = H (kept for the output error). Dead inputs: H_ii == 0 -> H_ii = 1, W[:, i] = 0.
  2. * Static groups: every group's grid from the dead-zeroed, un-permuted W, before the solve.
  3. * Act-order: perm = stable sort of diag(H) descending (ties keep column order).
     * GAR (--act-group-aware, GPTQModel's act_group_aware): the full groups of G columns
       in order of their score, the largest diag(H) among their columns, descending (stable:
       ties keep group order); inside each group its columns by diag(H) descending (stable);
       a partial last group (cols % G columns) after them in column order. Every group
       still gets its grid at its first position, from the current W, and keeps it as ITS
       OWN group's grid (the group the columns came from), so g_idx = column // G.
  4. Damp: H += lambda I, lambda = damp * mean(diag H); on a failed Cholesky damp += 0.01,
     give up once damp > 1.0.
  5. U = upper Cholesky factor of H^-1 (H^-1 = U^T U).
  6. Blocks of B columns; column j: when a group starts at j, its grid comes from
     * the CURRENT W[:, j:j+G) (already updated by the earlier columns of the same block;
       the paper authors' code uses W as of the block's start: --grid-from block-start);
     q = clamp(round_half_even(w/s) + z, 0, maxq); w_hat = s (q - z);
     loss += sum (w - w_hat)^2 / U_jj^2 / 2; e = (w - w_hat) / U_jj;
     W[:, j+1:block end] -= e U[j, j+1:block end]; after the block W[:, rest] -= E U[block, rest].
  7. Grid: asym xmin = min(0, min w), xmax = max(0, max w), both 0 -> -1, +1,
     s = (xmax - xmin)/maxq, z = round(-xmin/s); sym xmax = max(|xmin|, xmax), xmin = -xmax,
     * (README.md: always; the paper code only when xmin < 0), s likewise, z = (maxq+1)/2.
     MSE: for i in 0..int(maxshrink*grid)-1, p = 1 - i/grid, grid of (p xmin, p xmax)
     (sym keeps z), err = sum |w_hat - w|^norm per row, keep a strictly smaller error.
  8. g_idx: column // G; with act-order and no static groups, position-in-order // G.
     Static groups, GAR or both: column // G.
  9. out_rel_err = sqrt(tr(D H0 D^T) / tr(W H0 W^T)), D = W - W_hat, W the input W.
  RTN (--method rtn): grids per group of the input W in column order, no solve;
  loss = sum (w - w_hat)^2 / 2 (no Hessian weighting), damp_used = 0.
"""
import argparse
import json
import math
import struct
import sys

import numpy as np
import torch

# ----------------------------------------------------------------------------
# safetensors, by hand: u64 LE header length, JSON header, raw little-endian data
# ----------------------------------------------------------------------------

ST_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
    "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}
NP_TO_ST = {np.dtype(v).str: k for k, v in ST_DTYPES.items()}


def st_read(path):
    """Return (tensors: dict name -> numpy array, metadata: dict, raw: dict name -> bytes)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (hlen,) = struct.unpack("<Q", blob[:8])
    if 8 + hlen > len(blob):
        raise ValueError(f"{path}: header length {hlen} runs past the file")
    header = json.loads(blob[8:8 + hlen].decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + hlen
    tensors, raw = {}, {}
    for name, info in header.items():
        dt = info["dtype"]
        if dt == "BF16":  # keep raw; widen to f32 through the bit pattern
            b, e = info["data_offsets"]
            u16 = np.frombuffer(blob[base + b:base + e], dtype="<u2")
            arr = (u16.astype(np.uint32) << 16).view(np.float32).reshape(info["shape"])
        else:
            if dt not in ST_DTYPES:
                raise ValueError(f"{path}: tensor {name}: dtype {dt} not handled")
            b, e = info["data_offsets"]
            arr = np.frombuffer(blob[base + b:base + e],
                                dtype=np.dtype(ST_DTYPES[dt]).newbyteorder("<"))
            arr = arr.reshape(info["shape"])
        tensors[name] = arr
        raw[name] = blob[base + info["data_offsets"][0]:base + info["data_offsets"][1]]
    return tensors, meta, raw


def st_write(path, tensors, metadata=None):
    """tensors: list of (name, numpy array) in file order; metadata: dict str -> str."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    off = 0
    chunks = []
    for name, arr in tensors:
        arr = np.ascontiguousarray(arr)
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        key = np.dtype(arr.dtype).str.replace(">", "<").replace("|", "|")
        st = NP_TO_ST.get(key)
        if st is None:
            raise ValueError(f"tensor {name}: numpy dtype {arr.dtype} has no safetensors name")
        data = arr.tobytes()
        header[name] = {"dtype": st, "shape": list(arr.shape), "data_offsets": [off, off + len(data)]}
        chunks.append(data)
        off += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)  # data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for c in chunks:
            f.write(c)


# ----------------------------------------------------------------------------
# the quantization grid
# ----------------------------------------------------------------------------

def grid_minmax(w, maxq, sym):
    """w (rows, g) -> (xmin, xmax) per row before scale/zero, README.md rules."""
    zero = torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)
    xmin = torch.minimum(w.min(dim=1).values, zero)
    xmax = torch.maximum(w.max(dim=1).values, zero)
    if sym:
        xmax = torch.maximum(xmin.abs(), xmax)
        xmin = -xmax
    both0 = (xmin == 0) & (xmax == 0)
    xmin = torch.where(both0, torch.full_like(xmin, -1.0), xmin)
    xmax = torch.where(both0, torch.full_like(xmax, 1.0), xmax)
    return xmin, xmax


def scale_zero(xmin, xmax, maxq, sym):
    s = (xmax - xmin) / maxq
    if sym:
        z = torch.full_like(s, (maxq + 1) / 2)
    else:
        z = torch.round(-xmin / s)  # torch.round: half to even
    return s, z


def quant_codes(w, s, z, maxq):
    """w (rows, k), s/z (rows,) -> integer codes as float (rows, k)."""
    return torch.clamp(torch.round(w / s[:, None]) + z[:, None], 0, maxq)


def find_grid(w, maxq, sym, mse, mse_grid=100, maxshrink=0.8, norm=2.4):
    """Grid (scale, zero) per row for the group w (rows, g)."""
    xmin, xmax = grid_minmax(w, maxq, sym)
    s, z = scale_zero(xmin, xmax, maxq, sym)
    if not mse:
        return s, z
    best = torch.full_like(s, math.inf)
    for i in range(int(maxshrink * mse_grid)):
        p = 1 - i / mse_grid
        s1, z1 = scale_zero(p * xmin, p * xmax, maxq, sym)
        q = quant_codes(w, s1, z1, maxq)
        wh = s1[:, None] * (q - z1[:, None])
        err = (wh - w).abs().pow(norm).sum(dim=1)
        better = err < best
        best = torch.where(better, err, best)
        s = torch.where(better, s1, s)
        z = torch.where(better, z1, z)
    return s, z


# ----------------------------------------------------------------------------
# GPTQ for one layer
# ----------------------------------------------------------------------------

class Opts:
    pass


def upper_chol_of_inverse(H):
    """U upper triangular with U^T U = H^-1, or None when H is not positive definite."""
    L, info = torch.linalg.cholesky_ex(H)
    if int(info) != 0:
        return None
    Hinv = torch.cholesky_inverse(L)
    # U^T U = Hinv: U is the transpose of Hinv's lower factor.
    L2, info2 = torch.linalg.cholesky_ex(Hinv)
    if int(info2) != 0:
        return None
    return L2.transpose(0, 1).contiguous()


def gar_perm(d, G):
    """GAR's quantization order for the diagonal d (numpy, cols) and groups of G columns:
    perm[position] = column (step 3 of the module docstring)."""
    cols = d.shape[0]
    nfull = cols // G
    blocks = d[:nfull * G].reshape(nfull, G)
    group_order = np.argsort(-blocks.max(axis=1), kind="stable")
    parts = [g * G + np.argsort(-blocks[g], kind="stable") for g in group_order]
    parts.append(np.arange(nfull * G, cols))
    return np.concatenate(parts).astype(np.int64)


def grid_slot(j, G, perm_list, o):
    """Where the grid made at quantization position j (a group start) is kept: its position
    group, or with GAR the group its columns came from."""
    return perm_list[j] // G if o.act_group_aware else j // G


def quantize_layer(W_in, H_in, o):
    """W_in (rows, cols), H_in (cols, cols) or None, both torch in the working dtype."""
    rows, cols = W_in.shape
    dev, dt = W_in.device, W_in.dtype
    maxq = 2 ** o.bits - 1
    G = cols if o.group_size == -1 else o.group_size
    ngroups = (cols + G - 1) // G
    B = o.block_size
    if o.method == "gptq" and not (B % G == 0 or G % B == 0):
        raise SystemExit(f"block size {B} and group size {G}: one must divide the other")

    scales = torch.zeros(ngroups, rows, dtype=dt, device=dev)
    zeros = torch.zeros(ngroups, rows, dtype=dt, device=dev)
    codes = torch.zeros(rows, cols, dtype=dt, device=dev)
    res = {"damp_used": 0.0, "damp_retries": 0, "dead_cols": 0}

    if o.method == "rtn":
        W = W_in.clone()
        for g in range(ngroups):
            c0, c1 = g * G, min(cols, (g + 1) * G)
            s, z = find_grid(W[:, c0:c1], maxq, o.sym, o.mse)
            scales[g], zeros[g] = s, z
            codes[:, c0:c1] = quant_codes(W[:, c0:c1], s, z, maxq)
        perm = torch.arange(cols, device=dev)
        g_idx = torch.arange(cols, device=dev) // G
        deq = scales[g_idx].t() * (codes - zeros[g_idx].t())
        res["loss"] = float(((W - deq) ** 2).sum() / 2)
        res["w_at_quant"] = W
        return codes, scales, zeros, g_idx, perm, deq, res

    H = H_in.clone()
    W = W_in.clone()
    dead = torch.diagonal(H) == 0
    res["dead_cols"] = int(dead.sum())
    idx = torch.nonzero(dead).flatten()
    H[idx, idx] = 1
    W[:, dead] = 0

    static = None
    if o.static_groups:
        static = []
        for g in range(ngroups):
            c0, c1 = g * G, min(cols, (g + 1) * G)
            static.append(find_grid(W[:, c0:c1], maxq, o.sym, o.mse))

    if o.desc_act and o.act_group_aware:
        raise SystemExit("--desc-act and --act-group-aware exclude each other")
    if o.desc_act:
        d = torch.diagonal(H).detach().cpu().numpy()
        perm_np = np.argsort(-d, kind="stable")  # descending, ties in column order
        perm = torch.from_numpy(perm_np.astype(np.int64)).to(dev)
    elif o.act_group_aware:
        perm = torch.from_numpy(gar_perm(torch.diagonal(H).detach().cpu().numpy(), G)).to(dev)
    else:
        perm = torch.arange(cols, device=dev)
    W = W[:, perm].contiguous()
    H = H[perm][:, perm].contiguous()

    # Damp, with retries on a failed Cholesky. The step is added to the float the
    # caller gave, as a C loop `damp += 0.01f` would do in its own precision.
    damp = o.damp_percent
    mean_diag = torch.diagonal(H).mean()
    retries = 0
    while True:
        Hd = H.clone()
        Hd.diagonal().add_(damp * mean_diag)
        U = upper_chol_of_inverse(Hd)
        if U is not None:
            break
        retries += 1
        damp = damp + o.damp_increment
        if damp > o.damp_max + 1e-9:
            raise SystemExit(f"Hessian not positive definite up to damp_percent {o.damp_max}")
    res["damp_used"] = damp
    res["damp_retries"] = retries

    perm_list = [int(c) for c in perm.cpu()]
    qpos = torch.zeros(rows, cols, dtype=dt, device=dev)  # codes in quantization order
    wpos = torch.zeros(rows, cols, dtype=dt, device=dev)  # w as quantized, same order
    loss = torch.zeros((), dtype=dt, device=dev)
    s = z = None
    if o.method == "gptq-naive":
        # Self-check of the solve: the OBS update with an explicit inverse Hessian that is
        # downdated after every column (the paper's Eq. 3 before its Cholesky
        # reformulation). No blocks, no U: W is always fully updated, which is what the
        # blocked solve's "grid from the current W" means.
        Hinv = torch.cholesky_inverse(torch.linalg.cholesky(Hd))
        for j in range(cols):
            if static is not None:
                s, z = static[perm_list[j] // G]
            elif j % G == 0:
                s, z = find_grid(W[:, j:min(cols, j + G)], maxq, o.sym, o.mse)
                g = grid_slot(j, G, perm_list, o)
                scales[g], zeros[g] = s, z
            w = W[:, j].clone()
            q = quant_codes(w[:, None], s, z, maxq)[:, 0]
            wh = s * (q - z)
            qpos[:, j] = q
            wpos[:, j] = w
            d = Hinv[j, j]
            loss = loss + ((w - wh) ** 2).sum() / d / 2
            W[:, j + 1:] -= ((w - wh) / d)[:, None] * Hinv[j, j + 1:][None, :]
            Hinv = Hinv - Hinv[:, j:j + 1] @ Hinv[j:j + 1, :] / d
    for b0 in (range(0, cols, B) if o.method == "gptq" else []):
        b1 = min(cols, b0 + B)
        Wb = W[:, b0:b1].clone()
        Eb = torch.zeros_like(Wb)
        Wstart = W  # W as of the block's start, for --grid-from block-start
        for j in range(b0, b1):
            jj = j - b0
            if static is not None:
                s, z = static[perm_list[j] // G]
            elif j % G == 0:
                g = grid_slot(j, G, perm_list, o)
                end = min(cols, j + G)
                if o.grid_from == "current":
                    # in-block columns come updated from Wb, later blocks from W
                    grp = torch.cat([Wb[:, jj:min(b1, end) - b0], W[:, b1:end]], dim=1) \
                        if end > b1 else Wb[:, jj:end - b0]
                else:
                    grp = Wstart[:, j:end]
                s, z = find_grid(grp, maxq, o.sym, o.mse)
                scales[g], zeros[g] = s, z
            w = Wb[:, jj]
            q = quant_codes(w[:, None], s, z, maxq)[:, 0]
            wh = s * (q - z)
            qpos[:, j] = q
            wpos[:, j] = w
            u = U[j, j]
            loss = loss + ((w - wh) ** 2).sum() / (u * u) / 2
            e = (w - wh) / u
            Wb[:, jj + 1:] -= e[:, None] * U[j, j + 1:b1][None, :]
            Eb[:, jj] = e
        if b1 < cols:
            W[:, b1:] -= Eb @ U[b0:b1, b1:]
    if static is not None:
        for g in range(ngroups):
            scales[g], zeros[g] = static[g]

    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(cols, device=dev)
    codes = qpos[:, inv]
    res["w_at_quant"] = wpos[:, inv]
    if o.static_groups or o.act_group_aware or not o.desc_act:
        g_idx = torch.arange(cols, device=dev) // G
    else:
        g_idx = inv // G
    deq = scales[g_idx].t() * (codes - zeros[g_idx].t())
    res["loss"] = float(loss)
    return codes, scales, zeros, g_idx, perm, deq, res


def parse_args(argv):
    ap = argparse.ArgumentParser(description="Independent PyTorch GPTQ oracle for one layer.")
    ap.add_argument("input", help=".safetensors with W (out,in) and X (n,in) or H (in,in)")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--group-size", type=int, default=128)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--sym", dest="sym", action="store_true")
    g.add_argument("--asym", dest="sym", action="store_false")
    ap.set_defaults(sym=False)
    ap.add_argument("--desc-act", action="store_true")
    ga = ap.add_mutually_exclusive_group()
    ga.add_argument("--act-group-aware", dest="act_group_aware", action="store_true",
                    help="GAR: groups by their largest diag(H), columns inside by diag(H)")
    ga.add_argument("--no-act-group-aware", dest="act_group_aware", action="store_false",
                    help="the paper's column order (the oracle's default)")
    ap.set_defaults(act_group_aware=False)
    ap.add_argument("--static-groups", action="store_true")
    ap.add_argument("--damp-percent", type=float, default=0.01)
    ap.add_argument("--damp-increment", type=float, default=0.01)
    ap.add_argument("--damp-max", type=float, default=1.0)
    ap.add_argument("--block-size", type=int, default=128)
    ap.add_argument("--mse", action="store_true")
    ap.add_argument("--method", choices=["gptq", "rtn", "gptq-naive"], default="gptq",
                    help="gptq-naive: unblocked OBS solve with an explicit, downdated H^-1 "
                         "(a self-check of the blocked Cholesky solve; slow)")
    ap.add_argument("--grid-from", choices=["current", "block-start"], default="current",
                    help="group grid from the in-block updated W (README.md's algorithm) or from W as of "
                         "the block start (the paper authors' code)")
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:0 ...")
    return ap.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    o = parse_args(argv)
    if o.bits not in (2, 3, 4, 8):
        raise SystemExit(f"--bits {o.bits}: expected 2, 3, 4 or 8")
    dt = torch.float64 if o.dtype == "float64" else torch.float32
    dev = torch.device(o.device)
    t, _, _ = st_read(o.input)
    if "W" not in t:
        raise SystemExit(f"{o.input}: no tensor W")
    W = torch.from_numpy(np.array(t["W"], dtype=np.float32)).to(dev).to(dt)
    rows, cols = W.shape
    if "H" in t:
        H = torch.from_numpy(np.array(t["H"], dtype=np.float32)).to(dev).to(dt)
    elif "X" in t:
        X = torch.from_numpy(np.array(t["X"], dtype=np.float32)).to(dev).to(dt)
        H = (2.0 / X.shape[0]) * (X.t() @ X)
    else:
        H = None
        if o.method != "rtn":
            raise SystemExit(f"{o.input}: GPTQ needs X or H")
    if H is not None and tuple(H.shape) != (cols, cols):
        raise SystemExit(f"{o.input}: H is {tuple(H.shape)}, W has {cols} columns")

    codes, scales, zeros, g_idx, perm, deq, res = quantize_layer(W, H, o)

    if H is not None:
        D = W - deq
        num = float(torch.sum((D @ H) * D))
        den = float(torch.sum((W @ H) * W))
        res["out_rel_err"] = math.sqrt(max(num, 0.0) / den) if den > 0 else float("nan")
    else:
        res["out_rel_err"] = float("nan")

    def np_(x, d):
        return x.detach().cpu().numpy().astype(d)

    meta = {
        "loss": repr(res["loss"]),
        "out_rel_err": repr(res["out_rel_err"]),
        "damp_used": repr(float(res["damp_used"])),
        "damp_retries": str(res["damp_retries"]),
        "dead_cols": str(res["dead_cols"]),
        "oracle_torch": torch.__version__,
        "oracle_dtype": o.dtype,
        "oracle_device": str(dev) + (f" ({torch.cuda.get_device_name(dev)})"
                                     if dev.type == "cuda" else ""),
        "flags": " ".join(argv[1:] if argv and argv[0] == o.input else argv),
    }
    st_write(o.output, [
        ("codes", np_(codes, np.uint8)),
        ("scales", np_(scales, np.float32)),
        ("zeros", np_(zeros, np.int32)),
        ("g_idx", np_(g_idx, np.int32)),
        ("perm", np_(perm, np.int32)),
        ("dequant", np_(deq, np.float32)),
        # the weight each code was computed from (after the error feedback), original
        # column order: lets tools/check_ref.py tell rounding ties from real differences
        ("w_at_quant", np_(res["w_at_quant"], np.float64)),
    ], meta)
    print(f"{o.output}: loss {res['loss']:.9g} out_rel_err {res['out_rel_err']:.6g} "
          f"damp {res['damp_used']:.4g} (retries {res['damp_retries']}), dead {res['dead_cols']}")


if __name__ == "__main__":
    main()
