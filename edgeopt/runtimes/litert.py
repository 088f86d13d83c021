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


class Session:
    """One loaded model. ``run`` takes and returns float32; ``invoke_prepared`` is the timed path."""

    def __init__(self, path: str, threads: int | None = None, xnnpack: bool = True) -> None:
        Interpreter, resolver, _ = interpreter_class()
        kwargs = {"model_path": str(path), "num_threads": threads}
        if not xnnpack and resolver is not None:
            kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        self._interp = Interpreter(**kwargs)
        self._interp.allocate_tensors()
        self._batch = 1
        self._refresh()
        self.invoke = self._interp.invoke  # the timed call, bound directly: no wrapper layer in the loop

    def _refresh(self) -> None:
        self.input = self._interp.get_input_details()[0]
        self.output = self._interp.get_output_details()[0]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.input["shape"][1:])

    def prepare(self, x: np.ndarray) -> np.ndarray:
        """Convert a float batch to what the input tensor takes (done outside timed regions)."""
        return quantize(np.asarray(x, dtype=np.float32), self.input)

    def bind(self, xq: np.ndarray) -> None:
        """Copy a prepared input into the input tensor (outside the timed region)."""
        if xq.shape[0] != self._batch:
            self._resize(xq.shape[0])
        if tuple(xq.shape[1:]) != self.input_shape:  # a dynamic non-batch dimension (sequence length)
            self._interp.resize_tensor_input(self.input["index"], list(xq.shape))
            self._interp.allocate_tensors()
            self._refresh()
        self._interp.set_tensor(self.input["index"], xq)

    def invoke_prepared(self, xq: np.ndarray) -> np.ndarray:
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
            self._interp.resize_tensor_input(self.input["index"], [batch, *self.input_shape])
            self._interp.allocate_tensors()
            self._refresh()

    def run(self, x: np.ndarray, chunk: int = 64) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        outs = []
        for start in range(0, len(x), chunk):
            part = x[start : start + chunk]
            try:
                outs.append(dequantize(self.invoke_prepared(self.prepare(part)), self.output))
            except (RuntimeError, ValueError):
                # Some graphs cannot change batch size; fall back to one sample at a time.
                self._resize(1)
                for i in range(len(part)):
                    outs.append(dequantize(self.invoke_prepared(self.prepare(part[i : i + 1])), self.output))
        return np.concatenate(outs, axis=0)


def load(path: str, threads: int | None = None, options: dict | None = None) -> Session:
    options = options or {}
    return Session(path, threads=threads, xnnpack=bool(options.get("xnnpack", True)))
