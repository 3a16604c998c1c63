"""gptq_c: Python bindings of libgptq (gptq-c) through ctypes, the standard
library only (numpy is used when it is installed: arrays in, arrays out).

The names follow GPTQModel's where they mean the same thing:

    from gptq_c import QuantizeConfig, quantize, evaluate, quantize_layer
    cfg = QuantizeConfig(bits=4, group_size=128, desc_act=False, sym=True, damp_percent=0.01)
    quantize("Llama-3.2-1B", "Llama-3.2-1B-gptq", cfg, calibration="wiki.txt")
    evaluate("Llama-3.2-1B-gptq", open("wiki.test.txt").read())["ppl"]
    generate("Llama-3.2-1B-gptq", "The capital of France is", max_new_tokens=32)["text"]
    r = quantize_layer(W, X=X, config=cfg)          # or H=H: one layer, r.codes, r.scales ...

Everything runs in libgptq (gptq_quantize_model_dir, gptq_evaluate,
gptq_quantize_layer, gptq_generator_*; gptq.h documents each); a failure raises GptqError with
the library's message, a progress callback that returns True cancels
(Cancelled, nothing written). The library is found through $GPTQ_LIB, else
the loader's search for libgptq.so.0.

The ctypes structs below mirror gptq.h. The versioned ones carry struct_size
(gptq.h "ABI rules"): these bindings pass their own size, so they keep
working with a newer libgptq whose structs grew.
"""
import ctypes
import ctypes.util
import os

try:
    import numpy as _np
except ImportError:  # numpy is optional
    _np = None

__all__ = ["QuantizeConfig", "quantize", "evaluate", "generate", "quantize_layer", "set_threads",
           "GptqError", "Cancelled", "LayerResult", "library"]

GPTQ_ERR_CANCELLED = -9
_c_i64 = ctypes.c_int64
_c_f32_p = ctypes.POINTER(ctypes.c_float)


class GptqError(RuntimeError):
    """A libgptq call failed: .status is the gptq_status, the text its message."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Cancelled(GptqError):
    """A progress callback asked to stop (GPTQ_ERR_CANCELLED): nothing was written."""


class _QuantConfig(ctypes.Structure):  # gptq_quant_config (frozen)
    _fields_ = [("bits", ctypes.c_int), ("group_size", ctypes.c_int), ("sym", ctypes.c_int),
                ("desc_act", ctypes.c_int), ("static_groups", ctypes.c_int),
                ("mse", ctypes.c_int), ("mse_norm", ctypes.c_float), ("mse_grid", ctypes.c_int),
                ("mse_maxshrink", ctypes.c_float), ("damp_percent", ctypes.c_float),
                ("damp_auto_increment", ctypes.c_float), ("damp_max", ctypes.c_float),
                ("block_size", ctypes.c_int), ("method", ctypes.c_int),
                ("interrupt", ctypes.c_void_p), ("act_group_aware", ctypes.c_int)]


class _Progress(ctypes.Structure):  # gptq_progress
    _fields_ = [("struct_size", ctypes.c_size_t), ("stage", ctypes.c_char_p),
                ("layer", ctypes.c_int), ("nlayers", ctypes.c_int), ("done", _c_i64),
                ("total", _c_i64), ("fraction", ctypes.c_double), ("elapsed", ctypes.c_double),
                ("metric", ctypes.c_double), ("message", ctypes.c_char_p)]


class _ModuleReport(ctypes.Structure):  # gptq_module_report
    _fields_ = [("struct_size", ctypes.c_size_t), ("layer", ctypes.c_int),
                ("index", ctypes.c_int), ("name", ctypes.c_char_p), ("prefix", ctypes.c_char_p),
                ("rows", _c_i64), ("cols", _c_i64), ("hessian_rows", _c_i64),
                ("loss", ctypes.c_double), ("out_rel_err", ctypes.c_double),
                ("damp_used", ctypes.c_float), ("damp_retries", ctypes.c_int),
                ("dead_cols", ctypes.c_int), ("seconds", ctypes.c_double),
                ("seconds_solve", ctypes.c_double), ("bits", ctypes.c_int),
                ("group_size", ctypes.c_int), ("scales_subnormal", _c_i64),
                ("scales_fp16_rel_err", ctypes.c_double), ("out_rel_err_f32", ctypes.c_double),
                ("zero0", _c_i64), ("done", _c_i64), ("total", _c_i64)]


_PROGRESS_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(_Progress))
_MODULE_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(_ModuleReport))
_SKIP_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p)


class _QuantizeOptions(ctypes.Structure):  # gptq_quantize_options
    _fields_ = [("struct_size", ctypes.c_size_t), ("q", _QuantConfig),
                ("calib_path", ctypes.c_char_p), ("calib_bytes", ctypes.c_size_t),
                ("nsamples", _c_i64), ("seqlen", _c_i64), ("seed", ctypes.c_uint64),
                ("true_sequential", ctypes.c_int), ("format", ctypes.c_int),
                ("batch_tokens", _c_i64), ("max_shard_bytes", ctypes.c_uint64),
                ("forward_math", ctypes.c_int), ("overwrite", ctypes.c_int),
                ("strict", ctypes.c_int), ("lm_head", ctypes.c_int),
                ("dynamic", ctypes.c_char_p), ("on_progress", _PROGRESS_FN),
                ("on_module", _MODULE_FN), ("on_skip", _SKIP_FN), ("user", ctypes.c_void_p)]


class _QuantizeSummary(ctypes.Structure):  # gptq_quantize_summary
    _fields_ = [("struct_size", ctypes.c_size_t), ("format", ctypes.c_int),
                ("nshards", ctypes.c_int), ("nmodules", ctypes.c_int),
                ("nskipped", ctypes.c_int), ("zero0", _c_i64), ("params", ctypes.c_uint64),
                ("bytes_in", ctypes.c_uint64), ("bytes_out", ctypes.c_uint64),
                ("qweights", ctypes.c_uint64), ("qbytes", ctypes.c_uint64),
                ("qsrc_bytes", ctypes.c_uint64), ("nsamples", _c_i64), ("seqlen", _c_i64),
                ("seconds_total", ctypes.c_double), ("seconds_forward", ctypes.c_double),
                ("seconds_hessian", ctypes.c_double), ("seconds_solve", ctypes.c_double),
                ("seconds_write", ctypes.c_double)]


class _EvalOptions(ctypes.Structure):  # gptq_eval_options
    _fields_ = [("struct_size", ctypes.c_size_t), ("seqlen", _c_i64), ("max_windows", _c_i64),
                ("batch", _c_i64), ("forward_math", ctypes.c_int),
                ("on_progress", _PROGRESS_FN), ("user", ctypes.c_void_p)]


class _EvalResult(ctypes.Structure):  # gptq_eval_result
    _fields_ = [("struct_size", ctypes.c_size_t), ("ppl", ctypes.c_double),
                ("nll_sum", ctypes.c_double), ("tokens", _c_i64), ("windows", _c_i64),
                ("predicted", _c_i64), ("seqlen", _c_i64), ("seconds", ctypes.c_double)]


class _LayerResult(ctypes.Structure):  # gptq_layer_result (frozen)
    _fields_ = [("rows", _c_i64), ("cols", _c_i64), ("ngroups", _c_i64), ("bits", ctypes.c_int),
                ("group_size", ctypes.c_int), ("codes", ctypes.POINTER(ctypes.c_uint8)),
                ("scales", _c_f32_p), ("zeros", ctypes.POINTER(ctypes.c_int32)),
                ("g_idx", ctypes.POINTER(ctypes.c_int32)),
                ("perm", ctypes.POINTER(ctypes.c_int32)), ("dequant", _c_f32_p),
                ("loss", ctypes.c_double), ("out_rel_err", ctypes.c_double),
                ("damp_used", ctypes.c_float), ("damp_retries", ctypes.c_int),
                ("dead_cols", ctypes.c_int), ("seconds_solve", ctypes.c_double),
                ("damps_tried", ctypes.c_float * 101), ("scales_subnormal", _c_i64),
                ("scales_fp16_rel_err", ctypes.c_double), ("out_rel_err_f32", ctypes.c_double)]


class _Sampling(ctypes.Structure):  # gptq_sampling
    _fields_ = [("struct_size", ctypes.c_size_t), ("temperature", ctypes.c_double),
                ("top_k", _c_i64), ("top_p", ctypes.c_double),
                ("repeat_penalty", ctypes.c_double), ("seed", ctypes.c_uint64)]


class _GeneratorOptions(ctypes.Structure):  # gptq_generator_options
    _fields_ = [("struct_size", ctypes.c_size_t), ("linears", ctypes.c_int),
                ("join_linears", ctypes.c_int)]


class _GeneratorStats(ctypes.Structure):  # gptq_generator_stats
    _fields_ = [("struct_size", ctypes.c_size_t), ("fast_linears", _c_i64),
                ("f32_linears", _c_i64), ("fast_impl", ctypes.c_char_p),
                ("weight_bytes", _c_i64), ("kv_bytes", _c_i64), ("joined_linears", _c_i64)]


def _load():
    path = os.environ.get("GPTQ_LIB") or ctypes.util.find_library("gptq") or "libgptq.so.0"
    lib = ctypes.CDLL(path)
    P = ctypes.POINTER
    vp, cp, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    sigs = {
        "gptq_last_error": (cp, []),
        "gptq_version": (cp, []),
        "gptq_set_threads": (i, [i]),
        "gptq_backend_open": (i, [cp, P(vp)]),
        "gptq_backend_close": (None, [vp]),
        "gptq_model_open": (i, [cp, vp, P(vp)]),
        "gptq_model_close": (None, [vp]),
        "gptq_quant_config_default": (None, [P(_QuantConfig)]),
        "gptq_quantize_options_init_sized": (None, [P(_QuantizeOptions), ctypes.c_size_t]),
        "gptq_quantize_summary_init_sized": (None, [P(_QuantizeSummary), ctypes.c_size_t]),
        "gptq_quantize_model_dir": (i, [vp, cp, cp, P(_QuantizeOptions), P(_QuantizeSummary)]),
        "gptq_eval_options_init_sized": (None, [P(_EvalOptions), ctypes.c_size_t]),
        "gptq_eval_result_init_sized": (None, [P(_EvalResult), ctypes.c_size_t]),
        "gptq_evaluate": (i, [vp, cp, ctypes.c_size_t, P(_EvalOptions), P(_EvalResult)]),
        "gptq_hessian_new": (i, [vp, _c_i64, P(vp)]),
        "gptq_hessian_add": (i, [vp, _c_f32_p, _c_i64]),
        "gptq_hessian_free": (None, [vp]),
        "gptq_quantize_layer": (i, [vp, _c_f32_p, _c_i64, _c_i64, _c_f32_p, P(_QuantConfig),
                                    P(_LayerResult)]),
        "gptq_quantize_layer_h": (i, [vp, _c_f32_p, _c_i64, _c_i64, vp, P(_QuantConfig),
                                      P(_LayerResult)]),
        "gptq_layer_result_free": (None, [P(_LayerResult)]),
        "gptq_sampling_init_sized": (None, [P(_Sampling), ctypes.c_size_t]),
        "gptq_sampling_check": (i, [P(_Sampling)]),
        "gptq_generator_options_init_sized": (None, [P(_GeneratorOptions), ctypes.c_size_t]),
        "gptq_generator_open_with": (i, [cp, vp, P(_GeneratorOptions), P(vp)]),
        "gptq_generator_close": (None, [vp]),
        "gptq_generator_encode": (i, [vp, cp, ctypes.c_size_t, P(P(ctypes.c_int32)), P(_c_i64)]),
        "gptq_generator_max_positions": (_c_i64, [vp]),
        "gptq_generator_prefill": (i, [vp, P(ctypes.c_int32), _c_i64, _c_i64]),
        "gptq_generator_step": (i, [vp, ctypes.c_int32]),
        "gptq_generator_append": (i, [vp, ctypes.c_int32]),
        "gptq_generator_sample": (i, [vp, P(_Sampling), P(ctypes.c_int32)]),
        "gptq_generator_is_eos": (i, [vp, ctypes.c_int32]),
        "gptq_generator_stream": (i, [vp, i, P(ctypes.c_char_p), P(ctypes.c_size_t)]),
        "gptq_generator_text": (i, [vp, P(ctypes.c_void_p), P(ctypes.c_size_t)]),
        "gptq_generator_stats_init_sized": (None, [P(_GeneratorStats), ctypes.c_size_t]),
        "gptq_generator_get_stats": (i, [vp, P(_GeneratorStats)]),
    }
    for name, (res, args) in sigs.items():
        f = getattr(lib, name)
        f.restype = res
        f.argtypes = args
    return lib


library = _load()


def _check(status):
    if status != 0:
        msg = library.gptq_last_error().decode("utf-8", "replace")
        raise (Cancelled if status == GPTQ_ERR_CANCELLED else GptqError)(status, msg)


def set_threads(n):
    """CPU threads from now on (gptq_set_threads: OpenMP's and OpenBLAS's)."""
    _check(library.gptq_set_threads(int(n)))


class QuantizeConfig:
    """GPTQModel's QuantizeConfig names. damp_percent defaults to 0.01 (the
    paper's and AutoGPTQ's, gptq-c's default; GPTQModel's is 0.05)."""

    def __init__(self, bits=4, group_size=128, desc_act=False, sym=True, damp_percent=0.01,
                 damp_auto_increment=0.01, static_groups=False, mse=False, block_size=128,
                 true_sequential=True, lm_head=False, method="gptq", format="auto",
                 dynamic=None, act_group_aware=None):
        self.bits, self.group_size, self.desc_act, self.sym = bits, group_size, desc_act, sym
        self.damp_percent, self.damp_auto_increment = damp_percent, damp_auto_increment
        self.static_groups, self.mse, self.block_size = static_groups, mse, block_size
        self.true_sequential, self.lm_head, self.method = true_sequential, lm_head, method
        self.format, self.dynamic = format, dynamic
        # GAR: None (the library's default: on without desc_act), True or False
        self.act_group_aware = act_group_aware

    def _fill(self, q):
        if self.method not in ("gptq", "rtn"):
            raise ValueError(f"method {self.method!r}: 'gptq' or 'rtn'")
        q.bits, q.group_size = int(self.bits), int(self.group_size)
        q.sym, q.desc_act = int(bool(self.sym)), int(bool(self.desc_act))
        q.static_groups, q.mse = int(bool(self.static_groups)), int(bool(self.mse))
        q.damp_percent, q.damp_auto_increment = self.damp_percent, self.damp_auto_increment
        q.block_size, q.method = int(self.block_size), 0 if self.method == "gptq" else 1
        if self.act_group_aware is not None:
            q.act_group_aware = int(bool(self.act_group_aware))

    def _quant_config(self):
        q = _QuantConfig()
        library.gptq_quant_config_default(ctypes.byref(q))
        self._fill(q)
        return q


class _Callbacks:
    """Python callables behind the C callbacks; an exception in one cancels
    the job and is raised again after it."""

    def __init__(self, progress, on_module):
        self.progress, self.on_module, self.error = progress, on_module, None

        def c_progress(user, p):
            if self.error is not None:
                return 1
            if self.progress is None:
                return 0
            ev = {k: getattr(p.contents, k) for k, _ in _Progress._fields_ if k != "struct_size"}
            for k in ("stage", "message"):
                ev[k] = ev[k].decode() if ev[k] is not None else None
            try:
                return 1 if self.progress(ev) else 0
            except BaseException as e:  # re-raised by raise_pending
                self.error = e
                return 1

        def c_module(user, r):
            if self.on_module is None or self.error is not None:
                return
            rep = {k: getattr(r.contents, k) for k, _ in _ModuleReport._fields_
                   if k != "struct_size"}
            rep["name"], rep["prefix"] = rep["name"].decode(), rep["prefix"].decode()
            try:
                self.on_module(rep)
            except BaseException as e:
                self.error = e

        self.c_progress = _PROGRESS_FN(c_progress)
        self.c_module = _MODULE_FN(c_module)

    def raise_pending(self):
        if self.error is not None:
            raise self.error


class _Backend:
    def __init__(self, name):
        self.h = ctypes.c_void_p()
        _check(library.gptq_backend_open(name.encode(), ctypes.byref(self.h)))

    def __enter__(self):
        return self.h

    def __exit__(self, *exc):
        library.gptq_backend_close(self.h)


def _bytes_path(p):
    return os.fsencode(p) if p is not None else None


def quantize(model_dir, out_dir, config=None, calibration=None, nsamples=128, seqlen=0, seed=0,
             calibration_bytes=0, backend="cpu", overwrite=False, strict=False, batch_tokens=0,
             max_shard_size=0, forward_math="f32", progress=None, on_module=None):
    """Quantize the model folder model_dir into the checkpoint folder out_dir
    (gptq_quantize_model_dir: what `gptq quantize` does). calibration: a text
    or JSON-lines file (not needed with method="rtn"). progress(dict) may
    return True to cancel (Cancelled); on_module(dict) sees each module's
    report. Returns the summary as a dict."""
    config = config or QuantizeConfig()
    o = _QuantizeOptions()
    library.gptq_quantize_options_init_sized(ctypes.byref(o), ctypes.sizeof(o))
    # (a libgptq older than these bindings has no *_init_sized: _load fails)
    config._fill(o.q)
    keep = [_bytes_path(calibration), config.dynamic.encode() if config.dynamic else None]
    o.calib_path, o.dynamic = keep
    o.calib_bytes, o.nsamples, o.seqlen, o.seed = calibration_bytes, nsamples, seqlen, seed
    o.true_sequential, o.lm_head = int(bool(config.true_sequential)), int(bool(config.lm_head))
    formats = {"auto": 0, "gptq": 1, "gptq_v2": 2}
    if config.format not in formats:
        raise ValueError(f"format {config.format!r}: one of {sorted(formats)}")
    o.format = formats[config.format]
    o.batch_tokens, o.max_shard_bytes = batch_tokens, max_shard_size
    o.forward_math = {"f32": 0, "tf32": 1}[forward_math]
    o.overwrite, o.strict = int(bool(overwrite)), int(bool(strict))
    cb = _Callbacks(progress, on_module)
    o.on_progress, o.on_module = cb.c_progress, cb.c_module
    s = _QuantizeSummary()
    library.gptq_quantize_summary_init_sized(ctypes.byref(s), ctypes.sizeof(s))
    with _Backend(backend) as be:
        st = library.gptq_quantize_model_dir(be, _bytes_path(model_dir), _bytes_path(out_dir),
                                             ctypes.byref(o), ctypes.byref(s))
    cb.raise_pending()
    _check(st)
    out = {k: getattr(s, k) for k, _ in _QuantizeSummary._fields_ if k != "struct_size"}
    out["format"] = {1: "gptq", 2: "gptq_v2"}.get(out["format"], out["format"])
    return out


def evaluate(model_dir, text, seqlen=0, max_windows=0, batch=0, backend="cpu",
             forward_math="f32", progress=None):
    """Perplexity of the model folder (floating point or a GPTQ checkpoint) on
    text (str or bytes), as `gptq eval` measures it (gptq_evaluate). Returns a
    dict: ppl, nll_sum, tokens, windows, predicted, seqlen, seconds."""
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    o = _EvalOptions()
    library.gptq_eval_options_init_sized(ctypes.byref(o), ctypes.sizeof(o))
    o.seqlen, o.max_windows, o.batch = seqlen, max_windows, batch
    o.forward_math = {"f32": 0, "tf32": 1}[forward_math]
    cb = _Callbacks(progress, None)
    o.on_progress = cb.c_progress
    r = _EvalResult()
    library.gptq_eval_result_init_sized(ctypes.byref(r), ctypes.sizeof(r))
    with _Backend(backend) as be:
        m = ctypes.c_void_p()
        _check(library.gptq_model_open(_bytes_path(model_dir), be, ctypes.byref(m)))
        try:
            st = library.gptq_evaluate(m, data, len(data), ctypes.byref(o), ctypes.byref(r))
        finally:
            library.gptq_model_close(m)
    cb.raise_pending()
    _check(st)
    return {k: getattr(r, k) for k, _ in _EvalResult._fields_ if k != "struct_size"}


_LINEARS = {"auto": 0, "fast": 1, "f32": 2}
_libc = ctypes.CDLL(None)
_libc.free.argtypes = [ctypes.c_void_p]
_libc.free.restype = None


def generate(model_dir, prompt, max_new_tokens=128, temperature=0.0, top_k=0, top_p=1.0,
             repetition_penalty=1.0, seed=0, backend="cpu", linears="auto", stream=None,
             join_linears=True):
    """Generate text from prompt with the model folder (floating point, a GPTQ
    checkpoint or a compressed-tensors one), as `gptq generate` does (the
    gptq_generator_* calls): the prompt in one batch, then one token at a
    time against the KV cache; temperature 0 is greedy. transformers'
    names: repetition_penalty, max_new_tokens. linears: "auto", "fast" or
    "f32" (gptq_linears); join_linears False runs q, k, v (and gate, up) as
    separate fast linears (gptq_generator_options.join_linears, `gptq
    generate --no-join`). stream(str), when given, gets the text as it
    becomes final. Returns a dict: text, tokens (the generated ids),
    prompt_tokens, stopped ("eos", "max_new_tokens" or "positions"), and
    the generator's stats (fast_linears, f32_linears, fast_impl,
    weight_bytes, kv_bytes, joined_linears)."""
    if linears not in _LINEARS:
        raise ValueError(f"linears {linears!r}: one of {sorted(_LINEARS)}")
    if int(max_new_tokens) < 0:
        raise ValueError(f"max_new_tokens {max_new_tokens}: must be >= 0")
    data = prompt.encode("utf-8") if isinstance(prompt, str) else bytes(prompt)
    s = _Sampling()
    library.gptq_sampling_init_sized(ctypes.byref(s), ctypes.sizeof(s))
    s.temperature, s.top_k, s.top_p = temperature, top_k, top_p
    s.repeat_penalty, s.seed = repetition_penalty, seed
    _check(library.gptq_sampling_check(ctypes.byref(s)))
    o = _GeneratorOptions()
    library.gptq_generator_options_init_sized(ctypes.byref(o), ctypes.sizeof(o))
    o.linears = _LINEARS[linears]
    o.join_linears = 1 if join_linears else 0
    with _Backend(backend) as be:
        g = ctypes.c_void_p()
        _check(library.gptq_generator_open_with(_bytes_path(model_dir), be, ctypes.byref(o),
                                                ctypes.byref(g)))
        try:
            return _generate_on(g, data, int(max_new_tokens), s, stream)
        finally:
            library.gptq_generator_close(g)


def _generate_on(g, data, max_new, s, stream):
    ids_p, n = ctypes.POINTER(ctypes.c_int32)(), _c_i64()
    _check(library.gptq_generator_encode(g, data, len(data), ctypes.byref(ids_p),
                                         ctypes.byref(n)))
    try:
        cap_max = library.gptq_generator_max_positions(g)
        if n.value < 1 or n.value > cap_max:
            raise GptqError(-1, f"the prompt is {n.value} tokens: the model takes 1 to {cap_max}")
        _check(library.gptq_generator_prefill(g, ids_p, n.value,
                                              min(n.value + max_new, cap_max)))
    finally:
        _libc.free(ids_p)

    def flush(final):
        if stream is None:
            return
        t, ln = ctypes.c_char_p(), ctypes.c_size_t()
        _check(library.gptq_generator_stream(g, int(final), ctypes.byref(t), ctypes.byref(ln)))
        if ln.value:
            stream(ctypes.string_at(t, ln.value).decode("utf-8", "replace"))

    want = min(max_new, cap_max - n.value)
    stopped = "positions" if want < max_new else "max_new_tokens"
    tokens, tok = [], ctypes.c_int32()
    while len(tokens) < want:
        _check(library.gptq_generator_sample(g, ctypes.byref(s), ctypes.byref(tok)))
        if library.gptq_generator_is_eos(g, tok.value):
            stopped = "eos"  # as `gptq generate`: the EOS token is not part of the output
            break
        # the last token's logits are never read: appended without a forward
        last = len(tokens) + 1 == want
        _check((library.gptq_generator_append if last else library.gptq_generator_step)(
            g, tok.value))
        tokens.append(tok.value)
        flush(False)
    flush(True)
    text_p, ln = ctypes.c_void_p(), ctypes.c_size_t()
    _check(library.gptq_generator_text(g, ctypes.byref(text_p), ctypes.byref(ln)))
    try:
        text = ctypes.string_at(text_p, ln.value).decode("utf-8", "replace")
    finally:
        _libc.free(text_p)
    st = _GeneratorStats()
    library.gptq_generator_stats_init_sized(ctypes.byref(st), ctypes.sizeof(st))
    _check(library.gptq_generator_get_stats(g, ctypes.byref(st)))
    stats = {k: getattr(st, k) for k, _ in _GeneratorStats._fields_ if k != "struct_size"}
    if stats["fast_impl"] is not None:
        stats["fast_impl"] = stats["fast_impl"].decode()
    return dict(text=text, tokens=tokens, prompt_tokens=n.value, stopped=stopped, **stats)


def _matrix(a, what):
    """(ctypes float array, rows, cols) of a 2-D numpy array or list of rows."""
    if _np is not None and isinstance(a, _np.ndarray):
        if a.ndim != 2:
            raise ValueError(f"{what}: 2-D, got shape {a.shape}")
        c = _np.ascontiguousarray(a, dtype=_np.float32)
        return c, c.ctypes.data_as(_c_f32_p), c.shape[0], c.shape[1]
    rows = [list(r) for r in a]
    if not rows or any(len(r) != len(rows[0]) for r in rows):
        raise ValueError(f"{what}: a non-empty 2-D array (rows of equal length)")
    flat = (ctypes.c_float * (len(rows) * len(rows[0])))(*[v for r in rows for v in r])
    return flat, ctypes.cast(flat, _c_f32_p), len(rows), len(rows[0])


def _out(ptr, n, shape, typecode):
    """A copy of n elements at ptr: a numpy array of shape when numpy is
    there, else an array.array (flat, row-major)."""
    if _np is not None:
        return _np.ctypeslib.as_array(ptr, shape=(n,)).copy().reshape(shape)
    import array
    return array.array(typecode, ptr[:n])


class LayerResult:
    """gptq_layer_result as Python values: codes (rows, cols) uint8, scales
    and zeros (ngroups, rows), g_idx and perm (cols), dequant (rows, cols),
    loss, out_rel_err, damp_used, damp_retries, dead_cols."""


def quantize_layer(W, X=None, H=None, config=None, backend="cpu"):
    """GPTQ (or RTN) on one layer, W (out, in) with its calibration inputs X
    (n, in) or a finished Hessian H (in, in): what `gptq layer` does."""
    config = config or QuantizeConfig()
    if (X is None) == (H is None) and config.method != "rtn":
        raise ValueError("give X (calibration inputs) or H (a Hessian), one of them")
    w_keep, w, rows, cols = _matrix(W, "W")
    q = config._quant_config()
    r = _LayerResult()
    with _Backend(backend) as be:
        if X is not None:
            x_keep, x, n, xc = _matrix(X, "X")
            if xc != cols:
                raise ValueError(f"X has {xc} columns, W {cols}")
            h = ctypes.c_void_p()
            _check(library.gptq_hessian_new(be, cols, ctypes.byref(h)))
            try:
                _check(library.gptq_hessian_add(h, x, n))
                _check(library.gptq_quantize_layer_h(be, w, rows, cols, h, ctypes.byref(q),
                                                     ctypes.byref(r)))
            finally:
                library.gptq_hessian_free(h)
        else:
            hp = None
            if H is not None:
                h_keep, hp, hr, hc = _matrix(H, "H")
                if hr != cols or hc != cols:
                    raise ValueError(f"H is ({hr}, {hc}), W has {cols} columns")
            _check(library.gptq_quantize_layer(be, w, rows, cols, hp, ctypes.byref(q),
                                               ctypes.byref(r)))
    try:
        out = LayerResult()
        ng = r.ngroups
        out.codes = _out(r.codes, rows * cols, (rows, cols), "B")
        out.scales = _out(r.scales, ng * rows, (ng, rows), "f")
        out.zeros = _out(r.zeros, ng * rows, (ng, rows), "i")
        out.g_idx = _out(r.g_idx, cols, (cols,), "i")
        out.perm = _out(r.perm, cols, (cols,), "i")
        out.dequant = _out(r.dequant, rows * cols, (rows, cols), "f")
        for k in ("bits", "group_size", "loss", "out_rel_err", "damp_used", "damp_retries",
                  "dead_cols"):
            setattr(out, k, getattr(r, k))
        return out
    finally:
        library.gptq_layer_result_free(ctypes.byref(r))
