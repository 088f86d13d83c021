"""LiteRT (TFLite) runtime: ai_edge_litert → tflite_runtime → tf.lite, in that order.

Stand-alone on purpose: numpy + an interpreter package, nothing from edgeopt, so the on-device
runner can ship this file as it is.
"""

from __future__ import annotations

import numpy as np

NAME = "litert"
FORMATS = ("tflite",)
# The interpreter packages, in the order interpreter_class tries them (import name → distribution).
PACKAGES = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime", "tensorflow": "tensorflow"}
INSTALL_HINT = "pip install ai-edge-litert (or tflite-runtime)"
STANDALONE = True


def interpreter_class():
    """(Interpreter class, OpResolverType or None, package name) of the first package that imports."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        return Interpreter, OpResolverType, "ai_edge_litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter, OpResolverType

        return Interpreter, OpResolverType, "tflite_runtime"
    except ImportError:
        pass
    try:
        import tensorflow as tf

        return tf.lite.Interpreter, tf.lite.experimental.OpResolverType, "tensorflow"
    except ImportError:
        raise ImportError(
            "no TFLite interpreter found — install ai-edge-litert (pip install ai-edge-litert) "
            "or tflite-runtime on this machine"
        ) from None


def version() -> str:
    _, _, pkg = interpreter_class()
    from importlib import metadata

    try:
        return f"{pkg} {metadata.version(PACKAGES[pkg])}"
    except metadata.PackageNotFoundError:
        return pkg


def quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    """Float input → the tensor's dtype, using its scale and zero point when it is quantized."""
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.integer):
        scale, zero = detail["quantization"]
        if scale == 0:
            return x.astype(dtype)
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
    return x.astype(dtype)


def dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    if np.issubdtype(detail["dtype"], np.integer):
        scale, zero = detail["quantization"]
        if scale != 0:
            return (y.astype(np.float32) - zero) * scale
    return y.astype(np.float32)


def _rows(x, start: int, stop: int):
    """Rows of a batch: an array, or a dict of named input arrays."""
    return {k: v[start:stop] for k, v in x.items()} if isinstance(x, dict) else x[start:stop]


def _n(x) -> int:
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


class Session:
    """One loaded model. ``run`` takes and returns float32; ``invoke_prepared`` is the timed path.

    Several inputs are fed as a dict by input name, and ``output`` names the output ``run`` returns (default: the
    first): TFLite orders a model's inputs and outputs by name, so the signature's names address them."""

    def __init__(self, path: str, threads: int | None = None, xnnpack: bool = True, output: str | None = None) -> None:
        Interpreter, resolver, _ = interpreter_class()
        kwargs = {"model_path": str(path), "num_threads": threads}
        if not xnnpack and resolver is not None:
            kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        self._interp = Interpreter(**kwargs)
        self._interp.allocate_tensors()
        self._batch = 1
        signatures = getattr(self._interp, "_get_full_signature_list", lambda: {})() or {}
        sig = next(iter(signatures.values()), {})
        self._in_index = dict(sig.get("inputs") or {})  # input name → tensor index (empty: names were stripped)
        self._out_index = dict(sig.get("outputs") or {})
        self._output_name = output if output in self._out_index else None
        self._refresh()
        self.invoke = self._interp.invoke  # the timed call, bound directly: no wrapper layer in the loop

    def _refresh(self) -> None:
        details = self._interp.get_input_details()
        self.input = details[0]
        by_index = {d["index"]: d for d in details}
        self.inputs = {name: by_index[i] for name, i in self._in_index.items() if i in by_index}
        outs = self._interp.get_output_details()
        want = self._out_index.get(self._output_name) if self._output_name else None
        self.output = next((d for d in outs if d["index"] == want), outs[0])

    @property
    def input_names(self) -> list[str]:
        return list(self.inputs)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.input["shape"][1:])

    def prepare(self, x):
        """Convert a float batch (or a dict of them by input name) to what the input tensors take (done outside
        timed regions)."""
        if isinstance(x, dict):
            return {name: quantize(np.asarray(x[name], dtype=np.float32), d) for name, d in self.inputs.items()}
        return quantize(np.asarray(x, dtype=np.float32), self.input)

    def bind(self, xq) -> None:
        """Copy a prepared input into the input tensor(s) (outside the timed region)."""
        named = xq if isinstance(xq, dict) else None
        first = next(iter(named.values())) if named else xq
        if first.shape[0] != self._batch:
            self._resize(first.shape[0])
        pairs = [(self.inputs[n], v) for n, v in named.items()] if named else [(self.input, xq)]
        if any(tuple(v.shape[1:]) != tuple(int(s) for s in d["shape"][1:]) for d, v in pairs):
            for d, v in pairs:  # a dynamic non-batch dimension (sequence length)
                self._interp.resize_tensor_input(d["index"], list(v.shape))
            self._interp.allocate_tensors()
            self._refresh()
            pairs = [(self.inputs[n], v) for n, v in named.items()] if named else [(self.input, xq)]
        for d, v in pairs:
            self._interp.set_tensor(d["index"], v)

    def invoke_prepared(self, xq) -> np.ndarray:
        self.bind(xq)
        # variable tensors (a fused LSTM's state) persist between invokes: each batch starts from zero state
        self._interp.reset_all_variables()
        self._interp.invoke()
        return self._interp.get_tensor(self.output["index"])

    def _resize(self, batch: int) -> None:
        if batch != self._batch:
            # set first: a graph whose state has a static batch (fused LSTM) fails to allocate, and the
            # one-at-a-time fallback must then resize back to 1
            self._batch = batch
            for d in (self.inputs.values() if len(self.inputs) > 1 else [self.input]):
                self._interp.resize_tensor_input(d["index"], [batch, *(int(s) for s in d["shape"][1:])])
            self._interp.allocate_tensors()
            self._refresh()

    def run(self, x, chunk: int = 64) -> np.ndarray:
        x = {k: np.asarray(v, dtype=np.float32) for k, v in x.items()} if isinstance(x, dict) \
            else np.asarray(x, dtype=np.float32)
        outs = []
        for start in range(0, _n(x), chunk):
            part = _rows(x, start, start + chunk)
            try:
                outs.append(dequantize(self.invoke_prepared(self.prepare(part)), self.output))
            except (RuntimeError, ValueError):
                # Some graphs cannot change batch size; fall back to one sample at a time.
                self._resize(1)
                for i in range(_n(part)):
                    outs.append(dequantize(self.invoke_prepared(self.prepare(_rows(part, i, i + 1))), self.output))
        return np.concatenate(outs, axis=0)


def load(path: str, threads: int | None = None, options: dict | None = None) -> Session:
    options = options or {}
    return Session(path, threads=threads, xnnpack=bool(options.get("xnnpack", True)), output=options.get("output"))
