#!/usr/bin/env python3
"""load_ctensors_torch.py — an independent loader of a compressed-tensors
"pack-quantized" checkpoint (W4A16 / W8A16), written from the format's
public description, not from gptq-c's code, to check what gptq-c writes:

  weight_packed      (N, ceil(K/pf)) int32, pf = 32 // bits; value k of row n
                     is the unsigned field k % pf (bits*(k % pf) upwards) of
                     word k // pf; the unsigned field is the signed value plus
                     2**(bits-1)
  weight_scale       (N, ngroups), groups contiguous along K
  weight_zero_point  (ceil(N/pf), ngroups) int32, packed along N the same
                     way; absent when symmetric (signed zero 0)
  weight_shape       (2,) {N, K}
  W = scale * (q_signed - zp_signed)

(compressed-tensors: compressors/quantized_compressors/pack_quantized.py,
quantization/quant_args.py; vLLM: compressed_tensors_wNa16.py.)

usage: load_ctensors_torch.py CKPT MODULE OUT.safetensors
  writes W (N, K) float32, dequantized from CKPT's MODULE, to OUT.
Exit 77 when torch is not installed (a test skips then).
"""
import json
import os
import struct
import sys

try:
    import torch
except ImportError:
    print("torch is not installed: skipped", file=sys.stderr)
    sys.exit(77)

DTYPES = {"I32": torch.int32, "I64": torch.int64, "F16": torch.float16,
          "BF16": torch.bfloat16, "F32": torch.float32}


def read_safetensors(path):
    """name -> tensor, from the file's header and payload (no safetensors
    package needed)."""
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    header.pop("__metadata__", None)
    data = blob[8 + n:]
    out = {}
    for name, e in header.items():
        a, b = e["data_offsets"]
        t = torch.frombuffer(bytearray(data[a:b]), dtype=DTYPES[e["dtype"]])
        out[name] = t.reshape(e["shape"])
    return out


def unpack_fields(words, bits, dim):
    """Unsigned fields of int32 words, pf per word, along dim (0 or 1)."""
    pf = 32 // bits
    u = words.to(torch.int64) & 0xFFFFFFFF
    parts = [(u >> (bits * j)) & ((1 << bits) - 1) for j in range(pf)]
    # field j of word i is value i*pf + j
    st = torch.stack(parts, dim=dim + 1)
    shape = list(words.shape)
    shape[dim] *= pf
    return st.reshape(shape)


def main():
    ckpt, module, out = sys.argv[1:4]
    cfg = json.load(open(os.path.join(ckpt, "config.json")))["quantization_config"]
    assert cfg["quant_method"] == "compressed-tensors", cfg["quant_method"]
    assert cfg["format"] == "pack-quantized", cfg["format"]
    (group,) = cfg["config_groups"].values()
    w = group["weights"]
    bits, sym = w["num_bits"], w["symmetric"]
    t = read_safetensors(os.path.join(ckpt, "model.safetensors"))
    N, K = [int(v) for v in t[module + ".weight_shape"]]
    q = unpack_fields(t[module + ".weight_packed"], bits, 1)[:, :K] - (1 << (bits - 1))
    scale = t[module + ".weight_scale"].to(torch.float32)
    ng = scale.shape[1]
    G = K if w["strategy"] == "channel" else w["group_size"]
    assert ng == (K + G - 1) // G, (ng, K, G)
    if sym:
        zp = torch.zeros((N, ng), dtype=torch.int64)
    else:
        zp = unpack_fields(t[module + ".weight_zero_point"], bits, 0)[:N, :] - (1 << (bits - 1))
    gidx = torch.arange(K) // G
    W = scale[:, gidx] * (q - zp[:, gidx]).to(torch.float32)
    hb = json.dumps({"W": {"dtype": "F32", "shape": [N, K],
                           "data_offsets": [0, N * K * 4]}}).encode()
    hb += b" " * (-len(hb) % 8)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb +
                struct.pack("<%df" % (N * K), *W.flatten().tolist()))


if __name__ == "__main__":
    main()
