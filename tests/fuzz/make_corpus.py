#!/usr/bin/python3
"""Write the fuzzers' seed corpora: a few small, valid files.

corpus_safetensors/: safetensors files written by hand from the format
description (8-byte little-endian header length, JSON header padded with
spaces to a multiple of 8, data region tiled by the tensors), no torch.
corpus_json/: small JSON documents shaped like the configs gptq-c reads.

Run from anywhere: /usr/bin/python3 tests/fuzz/make_corpus.py
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = {"F32": 4, "F16": 2, "BF16": 2, "I32": 4, "I64": 8, "F64": 8,
         "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def safetensors(tensors, metadata=None):
    """tensors: list of (name, dtype, shape, raw bytes) in file order."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    data = b""
    for name, dtype, shape, raw in tensors:
        n = 1
        for d in shape:
            n *= d
        assert len(raw) == n * SIZES[dtype], name
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def write(sub, name, blob):
    d = os.path.join(HERE, sub)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(blob)


def main():
    # 1. No tensors, metadata only.
    write("corpus_safetensors", "empty.safetensors",
          safetensors([], {"format": "pt", "note": "no tensors"}))
    # 2. The three float types a model uses.
    write("corpus_safetensors", "floats.safetensors", safetensors([
        ("w.f32", "F32", (2, 3), struct.pack("<6f", 1, -2, 0.5, 3.25, 0, -0.125)),
        ("w.f16", "F16", (4,), struct.pack("<4H", 0x3C00, 0xC000, 0x3800, 0x7BFF)),
        ("w.bf16", "BF16", (1, 2), struct.pack("<2H", 0x3F80, 0xC040)),
    ], {"format": "pt"}))
    # 3. A quantized layer's tensors, an odd-sized U8 first (odd offsets),
    #    a scalar and empty tensors.
    write("corpus_safetensors", "mixed.safetensors", safetensors([
        ("odd", "U8", (3,), b"\x01\x02\x03"),
        ("layer.qweight", "I32", (1, 4), struct.pack("<4i", 0x77777777, -1, 0, 123456)),
        ("layer.scales", "F16", (1, 4), struct.pack("<4H", 0x2E66, 0x2E66, 0x3000, 0x3400)),
        ("layer.g_idx", "I32", (8,), struct.pack("<8i", *([0] * 8))),
        ("scalar", "F64", (), struct.pack("<d", 3.5)),
        ("empty", "F32", (0, 4), b""),
        ("ids", "I64", (2,), struct.pack("<2q", 1, -1)),
        ("mask", "BOOL", (2,), b"\x00\x01"),
    ], {"format": "pt", "quantizer": "gptq-c"}))

    configs = {
        "config.json": {
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "hidden_size": 64, "intermediate_size": 172, "num_attention_heads": 8,
            "num_key_value_heads": 4, "num_hidden_layers": 2, "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0, "rope_scaling": None, "tie_word_embeddings": True,
            "torch_dtype": "bfloat16", "vocab_size": 512,
            "quantization_config": {"bits": 4, "group_size": 128, "desc_act": False,
                                    "sym": True, "quant_method": "gptq"}},
        "index.json": {"metadata": {"total_size": 1234},
                       "weight_map": {"a.weight": "model-00001-of-00002.safetensors",
                                      "b.weight": "model-00002-of-00002.safetensors"}},
        "misc.json": [1, -2.5e-3, "t\u00e9xt \\u00e9", True, None, {"nested": [[], {}]}],
    }
    for name, obj in configs.items():
        write("corpus_json", name, (json.dumps(obj, indent=2) + "\n").encode())


if __name__ == "__main__":
    main()
