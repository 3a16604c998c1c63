#!/usr/bin/python3
"""Write the fuzzers' seed corpora: a few small, valid files.

corpus_safetensors/: safetensors files written by hand from the format
description (8-byte little-endian header length, JSON header padded with
spaces to a multiple of 8, data region tiled by the tensors), no torch.
corpus_json/: small JSON documents shaped like the configs gptq-c reads.
corpus_config/: config.json files of every family and style the config
reader knows, with and without a quantization_config.
corpus_tokenizer/: tiny tokenizer.json files, one per family of components
(run.sh adds the small test tokenizers of tests/data/tokenizer at run time).
corpus_checkpoint/: the fuzz_checkpoint input: a 4-byte little-endian
length, a quantization_config, a safetensors file of one packed module
(qweight/qzeros/scales[/g_idx]), for each bit width and zero format.

The regress-* files beside them are not written here: they are inputs the
fuzzers found (each also a unit test, named in the commit that fixed it).

Run from anywhere: /usr/bin/python3 tests/fuzz/make_corpus.py
"""
import json
import os
import random
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

    write_configs()
    write_tokenizers()
    write_checkpoints()


def dump(obj):
    return (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode()


LLAMA = {"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 96,
         "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2,
         "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "rope_scaling": None,
         "hidden_act": "silu", "max_position_embeddings": 256, "tie_word_embeddings": False,
         "torch_dtype": "bfloat16", "vocab_size": 512}


def write_configs():
    gptq = {"bits": 4, "group_size": 32, "desc_act": False, "sym": True, "lm_head": False,
            "quant_method": "gptq", "checkpoint_format": "gptq"}
    v5 = dict(LLAMA, dtype="float16", head_dim=16,
              rope_parameters={"rope_theta": 500000.0, "rope_type": "default"})
    del v5["torch_dtype"], v5["rope_theta"], v5["rope_scaling"]
    configs = {
        "llama.json": dict(LLAMA, quantization_config=gptq),
        "llama-v5.json": v5,
        "mistral.json": dict(LLAMA, architectures=["MistralForCausalLM"], sliding_window=128,
                             attention_bias=True, mlp_bias=True),
        "qwen2.json": dict(LLAMA, architectures=["Qwen2ForCausalLM"], use_sliding_window=True,
                           sliding_window=64, tie_word_embeddings=True,
                           quantization_config={"wbits": 3, "q_group_size": -1,
                                                "zero_point": True, "format": "gptq_v2"}),
        "opt.json": {"architectures": ["OPTForCausalLM"], "hidden_size": 64, "ffn_dim": 256,
                     "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 512,
                     "do_layer_norm_before": True, "word_embed_proj_dim": 64,
                     "activation_function": "relu", "enable_bias": True,
                     "layer_norm_elementwise_affine": True, "max_position_embeddings": 2048,
                     "torch_dtype": "float16",
                     "quantization_config": dict(gptq, bits=8, desc_act=True)},
        # no quantization_config: the loader reads the same bytes again as
        # quantize_config.json, whose keys sit at the top level
        "model-type-only.json": {"model_type": "llama", "hidden_size": 32,
                                 "intermediate_size": 64, "num_attention_heads": 2,
                                 "num_hidden_layers": 1, "vocab_size": 64, "bits": 2,
                                 "group_size": 16, "sym": False, "method": "gptq"},
    }
    for name, obj in configs.items():
        write("corpus_config", name, dump(obj))


def bpe(vocab, merges, **model):
    """A BPE model section; vocab a list of tokens (ids in order)."""
    m = {"type": "BPE", "dropout": None, "unk_token": None, "fuse_unk": False,
         "byte_fallback": False, "vocab": {t: i for i, t in enumerate(vocab)},
         "merges": merges}
    m.update(model)
    return m


def added(content, i, special=True, **kw):
    a = {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": not special, "special": special}
    a.update(kw)
    return a


def write_tokenizers():
    # byte-level: GPT-2's byte table for the printable ASCII, "Ġ" for a space
    chars = [chr(c) for c in range(0x21, 0x7F)] + ["\u0120", "\u010a"]
    words = ["\u0120t", "he", "\u0120the", "in", "er", "\u0120a", "on"]
    bl_merges = ["\u0120 t", "h e", "\u0120t he", "i n", "e r", "\u0120 a", "o n"]
    special = ["<|endoftext|>", "<pad>"]
    vocab = chars + words + special
    write("corpus_tokenizer", "bytelevel.json", dump({
        "added_tokens": [added(t, vocab.index(t)) for t in special],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}]},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<|endoftext|>"}},
                                      {"Sequence": {"id": "A"}}],
                           "special_tokens": {"<|endoftext|>": {"ids": [vocab.index(special[0])]}}},
        "decoder": {"type": "ByteLevel"},
        "model": bpe(vocab, bl_merges, ignore_merges=True)}))
    # SentencePiece style: Prepend + Replace, byte fallback, <unk>, fused
    sp = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    sp += ["\u2581", "a", "b", "c", "\u2581a", "ab", "\u2581ab", "\u2581abc", "bc"]
    write("corpus_tokenizer", "sentencepiece.json", dump({
        "added_tokens": [added("<unk>", 0), added("<s>", 1), added("</s>", 2),
                         added("[x]", 9999, special=False, lstrip=True, rstrip=True,
                               single_word=True)],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
            {"type": "Replace", "pattern": {"Regex": "\\t+"}, "content": "  "}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "Sequence", "processors": [
            {"type": "BertProcessing", "sep": ["</s>", 2], "cls": ["<s>", 1]}]},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": bpe(sp, [["\u2581", "a"], ["a", "b"], ["\u2581a", "b"], ["\u2581ab", "c"],
                          ["b", "c"]], unk_token="<unk>", fuse_unk=True, byte_fallback=True)}))
    # Metaspace and Split, a subword prefix and word suffix (merges as pairs)
    ms = ["[UNK]", "x", "y", "##y", "xy</w>", "x</w>", "y</w>", "\u2581", "\u2581x"]
    write("corpus_tokenizer", "metaspace.json", dump({
        "added_tokens": [added("[UNK]", 0)],
        "normalizer": {"type": "NFKD"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "\\p{P}+"}, "behavior": "Isolated",
             "invert": False},
            {"type": "Split", "pattern": {"String": "-"}, "behavior": "MergedWithNext",
             "invert": True},
            {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first",
             "split": True}]},
        "post_processor": {"type": "RobertaProcessing", "sep": ["[UNK]", 0], "cls": ["x", 1]},
        "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always"},
        "model": bpe(ms, ["x ##y"], unk_token="[UNK]", continuing_subword_prefix="##",
                     end_of_word_suffix="</w>")}))


def pack_stream(values, bits):
    """Little-endian bit stream of b-bit values -> 32-bit words."""
    acc, nacc, words = 0, 0, []
    for v in values:
        acc |= v << nacc
        nacc += bits
        while nacc >= 32:
            words.append(acc & 0xFFFFFFFF)
            acc >>= 32
            nacc -= 32
    assert nacc == 0
    return words


def module(rng, bits, K, N, group, prefix="", gidx="plain"):
    """qweight (K*b/32, N), qzeros (ngroups, N*b/32), scales (ngroups, N) F16,
    g_idx (K) of one module with random codes, zeros and scales."""
    G = group if group > 0 else K
    ng = (K + G - 1) // G
    maxq = (1 << bits) - 1
    codes = [[rng.randint(0, maxq) for _ in range(N)] for _ in range(K)]  # (K, N)
    qweight = []
    cols = [pack_stream([codes[k][n] for k in range(K)], bits) for n in range(N)]
    for r in range(K * bits // 32):
        qweight += [cols[n][r] for n in range(N)]
    qzeros = []
    for g in range(ng):
        qzeros += pack_stream([rng.randint(0, maxq) for _ in range(N)], bits)
    # fp16 scales between 2^-8 and 2^-4, a few negative
    scales = [((rng.random() < 0.1) << 15) | (rng.randint(7, 11) << 10) | rng.randint(0, 1023)
              for _ in range(ng * N)]
    g_idx = [k // G for k in range(K)]
    if gidx == "act-order":
        rng.shuffle(g_idx)
    p = prefix + "." if prefix else ""
    t = [(p + "qweight", "I32", (K * bits // 32, N), struct.pack("<%dI" % len(qweight), *qweight)),
         (p + "qzeros", "I32", (ng, N * bits // 32), struct.pack("<%dI" % len(qzeros), *qzeros)),
         (p + "scales", "F16", (ng, N), struct.pack("<%dH" % len(scales), *scales))]
    if gidx != "none":
        t.append((p + "g_idx", "I32", (K,), struct.pack("<%di" % K, *g_idx)))
    return t


def write_checkpoints():
    rng = random.Random(9)
    cases = [  # name, quantization_config, bits, K, N, group, prefix, g_idx
        ("4bit-g4", {"bits": 4, "group_size": 4, "sym": True}, 4, 16, 8, 4, "", "plain"),
        ("4bit-actorder", {"bits": 4, "group_size": 4, "desc_act": True}, 4, 16, 8, 4,
         "model.layers.0.mlp.down_proj", "act-order"),
        ("3bit-v2", {"bits": 3, "group_size": 16, "sym": False,
                     "checkpoint_format": "gptq_v2"}, 3, 32, 32, 16, "", "none"),
        ("2bit-perrow", {"wbits": 2, "group_size": -1, "quant_method": "gptq"}, 2, 16, 16,
         -1, "model.layers.0.mlp.down_proj", "plain"),
        ("8bit", {"bits": 8, "q_group_size": 2, "format": "gptq"}, 8, 8, 4, 2, "", "plain"),
    ]
    for name, qc, bits, K, N, group, prefix, gidx in cases:
        q = json.dumps(qc).encode()
        st = safetensors(module(rng, bits, K, N, group, prefix, gidx), {"format": "pt"})
        write("corpus_checkpoint", name + ".bin", struct.pack("<I", len(q)) + q + st)


if __name__ == "__main__":
    main()
