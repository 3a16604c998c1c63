#!/usr/bin/env python3
"""test_python.py — the Python bindings (python/gptq_c) against the library
and the CLI, with the standard library only (numpy when installed: then
quantize_layer runs on numpy arrays too).

Run by meson test `python` with GPTQ_LIB (the built libgptq.so),
PYTHONPATH (python/), GPTQ_SOURCE_ROOT and GPTQ_CLI. Each check asserts an
outcome made elsewhere: the ctypes structs have the library's sizes, one
layer gives the golden codes of ref/, a model quantized from Python is the
CLI's checkpoint byte for byte, the perplexity is `gptq eval`'s, a cancel
leaves nothing, a library error is raised with its message.
"""
import array
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

import gptq_c
from gptq_c import QuantizeConfig

try:
    import numpy as np
except ImportError:
    np = None

ROOT = os.environ["GPTQ_SOURCE_ROOT"]
CLI = os.environ["GPTQ_CLI"]
MODEL = os.path.join(ROOT, "data", "tiny-llama")
CALIB = os.path.join(ROOT, "data", "text", "calib.txt")
TEXT = os.path.join(ROOT, "data", "text", "eval.txt")
PROMPT = "Once upon a time, in a small village"


def read_safetensors(path):
    """{name: (dtype, shape, bytes)} of a safetensors file."""
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    head = json.loads(b[8:8 + n])
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        out[k] = (v["dtype"], v["shape"], b[8 + n + s:8 + n + e])
    return out


def rows_of(dtype_bytes, shape):
    a = array.array("f", dtype_bytes)
    return [list(a[r * shape[1]:(r + 1) * shape[1]]) for r in range(shape[0])]


class Bindings(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="gptq-test-python-")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def test_struct_sizes_match_the_library(self):
        # each init function writes the C struct's sizeof into struct_size:
        # the ctypes mirror must have exactly that size (a field missing,
        # added or of another type changes it)
        lib = gptq_c.library
        for init, cls in [("gptq_quantize_options_init", gptq_c._QuantizeOptions),
                          ("gptq_quantize_summary_init", gptq_c._QuantizeSummary),
                          ("gptq_eval_options_init", gptq_c._EvalOptions),
                          ("gptq_eval_result_init", gptq_c._EvalResult),
                          ("gptq_sampling_init", gptq_c._Sampling),
                          ("gptq_generator_options_init", gptq_c._GeneratorOptions),
                          ("gptq_generator_stats_init", gptq_c._GeneratorStats)]:
            buf = (gptq_c.ctypes.c_char * 4096)()
            f = getattr(lib, init)
            f.argtypes = [gptq_c.ctypes.c_void_p]
            f(buf)
            size = gptq_c.ctypes.c_size_t.from_buffer(buf).value
            self.assertEqual(size, gptq_c.ctypes.sizeof(cls), init)

    def golden_layer(self, use_numpy):
        case = os.path.join(ROOT, "ref", "w4_g128_asym")
        inp = read_safetensors(os.path.join(case, "input.safetensors"))
        exp = read_safetensors(os.path.join(case, "expected.safetensors"))
        W = rows_of(inp["W"][2], inp["W"][1])
        X = rows_of(inp["X"][2], inp["X"][1])
        if use_numpy:
            W, X = np.array(W, dtype=np.float32), np.array(X, dtype=np.float32)
        # the golden's flags pin the paper's order (gar)
        cfg = QuantizeConfig(bits=4, group_size=128, sym=False, damp_percent=0.01,
                             act_group_aware=False)
        r = gptq_c.quantize_layer(W, X=X, config=cfg)
        codes = bytes(r.codes.tobytes() if use_numpy else r.codes)
        self.assertEqual(codes, exp["codes"][2], "codes differ from the golden case")
        zeros = r.zeros.astype(np.int32).tobytes() if use_numpy else r.zeros.tobytes()
        self.assertEqual(zeros, exp["zeros"][2])
        self.assertEqual(r.damp_retries, 0)

    def test_quantize_layer_golden(self):
        self.golden_layer(False)

    @unittest.skipIf(np is None, "numpy is not installed")
    def test_quantize_layer_golden_numpy(self):
        self.golden_layer(True)

    def test_quantize_layer_bad_input(self):
        with self.assertRaises(ValueError):
            gptq_c.quantize_layer([[1.0, 2.0], [3.0]], X=[[1.0, 2.0]])
        with self.assertRaises(gptq_c.GptqError) as e:
            gptq_c.quantize_layer([[1.0] * 32] * 4, X=[[1.0] * 32] * 8,
                                  config=QuantizeConfig(bits=5))
        self.assertIn("bits", str(e.exception))

    def test_quantize_like_the_cli_and_evaluate(self):
        out_py, out_cli = os.path.join(self.tmp, "py"), os.path.join(self.tmp, "cli")
        seen = []
        s = gptq_c.quantize(MODEL, out_py, QuantizeConfig(bits=4, group_size=128),
                            calibration=CALIB, nsamples=8, seqlen=64, seed=5,
                            on_module=lambda m: seen.append(m["prefix"]))
        self.assertEqual(s["nmodules"], 21)  # tiny-llama: 3 layers x 7 Linears
        self.assertEqual(len(seen), 21)
        self.assertEqual(s["format"], "gptq")
        subprocess.run([CLI, "quantize", MODEL, "-o", out_cli, "--calib", CALIB, "--nsamples",
                        "8", "--seqlen", "64", "--seed", "5", "--quiet"], check=True)
        for name in ("model.safetensors", "config.json"):
            with open(os.path.join(out_py, name), "rb") as a, \
                    open(os.path.join(out_cli, name), "rb") as b:
                self.assertEqual(a.read(), b.read(), name)
        with open(TEXT, encoding="utf-8") as f:
            text = f.read()
        r = gptq_c.evaluate(out_py, text, seqlen=128, max_windows=3)
        cli = subprocess.run([CLI, "eval", out_py, "--text", TEXT, "--seqlen", "128",
                              "--max-windows", "3"], check=True, capture_output=True,
                             text=True).stdout.split()
        self.assertEqual(cli[0], "ppl")
        self.assertEqual("%.6f" % r["ppl"], cli[1])  # the same computation, as printed
        self.assertEqual(r["windows"], 3)

    def cli_generate(self, model, *args):
        # stdout is a pipe: the generated text only, no newline added
        return subprocess.run([CLI, "generate", model, "--prompt", PROMPT, *args], check=True,
                              capture_output=True).stdout.decode("utf-8")

    def test_generate_like_the_cli(self):
        # greedy on the fp model: the CLI's bytes; the streamed pieces are the text
        pieces = []
        r = gptq_c.generate(MODEL, PROMPT, max_new_tokens=24, stream=pieces.append)
        self.assertEqual(r["text"], self.cli_generate(MODEL, "-n", "24"))
        self.assertEqual("".join(pieces), r["text"])
        self.assertGreater(len(r["text"]), 0)
        self.assertEqual(len(r["tokens"]) == 24, r["stopped"] == "max_new_tokens")
        self.assertEqual(r["fast_linears"], 0)  # an fp model has nothing packed
        # seeded sampling draws the CLI's tokens (the library's own PRNG)
        kw = dict(temperature=0.9, top_k=40, top_p=0.95, repetition_penalty=1.1, seed=7)
        r1 = gptq_c.generate(MODEL, PROMPT, max_new_tokens=24, **kw)
        self.assertEqual(r1["text"], self.cli_generate(
            MODEL, "-n", "24", "--temperature", "0.9", "--top-k", "40", "--top-p", "0.95",
            "--repeat-penalty", "1.1", "--seed", "7"))
        self.assertEqual(gptq_c.generate(MODEL, PROMPT, max_new_tokens=24, **kw), r1)
        # a GPTQ checkpoint: packed linears on the fast kernel (auto) or f32, as the CLI
        out = os.path.join(self.tmp, "rtn")
        subprocess.run([CLI, "quantize", MODEL, "-o", out, "--method", "rtn", "--quiet"],
                       check=True)
        fast = gptq_c.generate(out, PROMPT, max_new_tokens=16)
        self.assertEqual((fast["fast_linears"], fast["f32_linears"]), (21, 1))  # lm_head f32
        self.assertEqual(fast["joined_linears"], 15)  # q, k, v and gate, up of 3 layers
        self.assertTrue(fast["fast_impl"])
        self.assertEqual(fast["text"], self.cli_generate(out, "-n", "16"))
        apart = gptq_c.generate(out, PROMPT, max_new_tokens=16, join_linears=False)
        self.assertEqual(apart["joined_linears"], 0)
        self.assertEqual(apart["text"], fast["text"])  # the same bits on the CPU
        self.assertEqual(apart["text"], self.cli_generate(out, "-n", "16", "--no-join"))
        f32 = gptq_c.generate(out, PROMPT, max_new_tokens=16, linears="f32")
        self.assertEqual((f32["fast_linears"], f32["f32_linears"]), (0, 22))
        self.assertGreater(f32["weight_bytes"], fast["weight_bytes"])  # f32 vs packed weights
        self.assertEqual(f32["text"], self.cli_generate(out, "-n", "16", "--linears", "f32"))
        # max_positions caps the new tokens (tiny-llama: 256 positions)
        long = gptq_c.generate(MODEL, PROMPT, max_new_tokens=10000)
        self.assertIn(long["stopped"], ("positions", "eos"))
        self.assertLessEqual(long["prompt_tokens"] + len(long["tokens"]), 256)

    def test_generate_errors(self):
        with self.assertRaises(ValueError):
            gptq_c.generate(MODEL, PROMPT, linears="fastest")
        with self.assertRaises(ValueError):
            gptq_c.generate(MODEL, PROMPT, max_new_tokens=-1)
        with self.assertRaises(gptq_c.GptqError) as e:
            gptq_c.generate(MODEL, PROMPT, temperature=-1.0)
        self.assertIn("temperature", str(e.exception))
        with self.assertRaises(gptq_c.GptqError) as e:  # nothing packed to run fast
            gptq_c.generate(MODEL, PROMPT, linears="fast")
        missing = os.path.join(self.tmp, "no-such-model")
        with self.assertRaises(gptq_c.GptqError) as e:
            gptq_c.generate(missing, PROMPT)
        self.assertIn(missing, str(e.exception))

    def test_cancel_and_errors(self):
        out = os.path.join(self.tmp, "out")
        calls = []

        def stop_at_third(p):
            calls.append(p["stage"])
            return len(calls) >= 3

        with self.assertRaises(gptq_c.Cancelled):
            gptq_c.quantize(MODEL, out, calibration=CALIB, nsamples=4, seqlen=64,
                            progress=stop_at_third)
        self.assertEqual(len(calls), 3)
        self.assertEqual(calls[0], "calibration")
        self.assertFalse(os.path.exists(out))
        self.assertEqual(os.listdir(self.tmp), [], "a temporary was left")

        # an exception in a callback cancels the job and comes back as itself
        def boom(p):
            raise KeyError("from the callback")

        with self.assertRaises(KeyError):
            gptq_c.quantize(MODEL, out, calibration=CALIB, nsamples=4, seqlen=64, progress=boom)
        self.assertFalse(os.path.exists(out))

        with self.assertRaises(gptq_c.GptqError) as e:
            gptq_c.evaluate("meta-llama/Llama-3.2-1B", "text")
        self.assertIn("huggingface-cli download", str(e.exception))
        with self.assertRaises(gptq_c.GptqError):
            gptq_c.set_threads(0)
        gptq_c.set_threads(1)


if __name__ == "__main__":
    sys.exit(0 if unittest.main(exit=False, verbosity=2).result.wasSuccessful() else 1)
