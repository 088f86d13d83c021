"""ONNX conversion: fp32 through tf2onnx, and int8 two ways with the choice between them:

- ``tflite``: tf2onnx's TFLite path on the (accuracy-aware) int8 TFLite with float I/O — the ONNX model
  carries exactly the TFLite quantization (same scales, same ops kept float), as QuantizeLinear /
  DequantizeLinear around float kernels, which ONNX Runtime fuses into integer kernels;
- ``ort_static``: ONNX Runtime static quantization (QDQ, per-channel int8 weights, int8 activations,
  MinMax calibration) of the fp32 ONNX with the same calibration samples.

``auto`` builds both, scores them on the validation split and keeps the more accurate (a tie goes to the
smaller gzip size). Both scores go in the artifact's info.

``u8s8`` is a precision of its own: ONNX Runtime static quantization with uint8 activations, int8 weights and
one scale per tensor (QDQ) — ORT's x86 default; per-tensor weights leave fewer distinct values, so the file
gzips ~20 % smaller than per-channel int8, at a small cost in agreement (benchmarks/results/quant_variants.md)."""

from __future__ import annotations

import gzip
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgeopt.core import graph
from edgeopt.core.inputs import Inputs

log = logging.getLogger(__name__)

TIE = 1e-9


def fresh_names() -> None:
    """tf2onnx numbers the names it makes from one process-wide counter (and its loop rewriter takes one when
    first imported): imported up front and reset, every conversion starts from the same count, so the same
    model gives the same .onnx bytes whatever was converted before in this process."""
    import tf2onnx.rewriter.loop_rewriter_base  # noqa: F401 — takes its name now, not during a conversion
    import tf2onnx.utils

    tf2onnx.utils.INTERNAL_NAME = 1


def onnx_bytes(model, opset: int = 17) -> bytes:
    import tensorflow as tf
    import tf2onnx
    import tf_keras

    from edgeopt.stages.convert.tflite import input_dtype

    dtype = input_dtype(model)
    if isinstance(dtype, dict):  # several inputs: each by its name, so ONNX Runtime is fed by name too
        spec = tuple(tf.TensorSpec((None, *[None if d is None else int(d) for d in shape[1:]]), tf.as_dtype(dt),
                                   name=name) for (name, dt), shape in zip(dtype.items(), model.input_shape, strict=True))
        fresh_names()
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
        return proto.SerializeToString()
    shape = (None, *[None if d is None else int(d) for d in model.input_shape[1:]])
    spec = (tf.TensorSpec(shape, tf.as_dtype(dtype), name="input"),)
    fresh_names()
    if isinstance(model, tf_keras.Model):
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
    else:
        fn = tf.function(lambda x: model(x, training=False))
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=opset)
    return proto.SerializeToString()


def from_tflite(tflite_float_io: bytes, opset: int) -> bytes:
    import tf2onnx

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "int8.tflite"
        path.write_bytes(tflite_float_io)
        fresh_names()
        proto, _ = tf2onnx.convert.from_tflite(str(path), opset=opset)
        names = _signature_names(str(path))
    if len(proto.graph.input) > 1 or len(proto.graph.output) > 1:
        _rename(proto, names)
    return proto.SerializeToString()


def _signature_names(path: str) -> dict[str, str]:
    """TFLite tensor name → its signature name (the model's input and output names): tf2onnx names the ONNX
    inputs and outputs after the tensors ("serving_default_feat:0", "StatefulPartitionedCall:1")."""
    from edgeopt.runtimes.litert import interpreter_class

    interp = interpreter_class()[0](model_path=path)
    sig = next(iter((getattr(interp, "_get_full_signature_list", lambda: {})() or {}).values()), {})
    by_index = {d["index"]: d["name"] for d in interp.get_tensor_details()}
    return {by_index[i]: name for side in ("inputs", "outputs") for name, i in (sig.get(side) or {}).items()
            if i in by_index}


def _rename(proto, names: dict[str, str]) -> None:
    """Rename the graph's inputs and outputs (and every reference to them) — a model with several is fed and read
    by name, the same names as the Keras model, its TFLite file and the fp32 ONNX."""
    g = proto.graph
    for value in (*g.input, *g.output):
        if value.name in names:
            value.name = names[value.name]
    for node in g.node:
        for seq in (node.input, node.output):
            for j, name in enumerate(seq):
                if name in names:
                    seq[j] = names[name]


def ort_static(fp32_onnx: bytes, calibration, *, activations: str = "int8", per_channel: bool = True) -> bytes:
    """ONNX Runtime static quantization (QDQ, int8 weights, MinMax calibration on ``calibration``, fed by input
    name when there are several); ``activations`` int8 or uint8, weights per channel or per tensor."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    name = graph.read_onnx(fp32_onnx).main.inputs[0]
    named = isinstance(calibration, Inputs)  # several inputs: fed by name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(range(len(calibration)))

        def get_next(self):
            i = next(self._it, None)
            if i is None:
                return None
            return dict(calibration[i : i + 1].items()) if named else {name: calibration[i : i + 1]}

    act = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}[activations]
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(fp32_onnx)
        quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=act, weight_type=QuantType.QInt8)
        return dst.read_bytes()


def u8s8(fp32_onnx: bytes, calibration) -> bytes:
    """uint8 activations, int8 weights, per-tensor scales, QDQ: ONNX Runtime's default static int8 for x86."""
    return ort_static(fp32_onnx, calibration, activations="uint8", per_channel=False)


def evaluate_onnx(data: bytes, x: np.ndarray, y: np.ndarray, task=None) -> tuple[float, int]:
    """(validation top-1 — or ``task``'s metric, higher = better — and gzip -9 size as core.artifact.gzip_bytes
    counts it) of one candidate."""
    from edgeopt.runtimes import evaluate

    return evaluate.accuracy(data, "onnx", x, y, task), len(gzip.compress(data, compresslevel=9))


def int8_bytes(method: str, tflite_float_io: Callable[[], bytes], fp32_onnx: Callable[[], bytes], calibration: np.ndarray,
          x_val: np.ndarray, y_val: np.ndarray, opset: int, task=None, per_channel: bool = True) -> tuple[bytes, dict]:
    """(ONNX int8 bytes, info with the method chosen, why, and each candidate's validation score). ``per_channel``:
    ORT's weight scales as convert's per_channel asks (the TFLite path carries the TFLite int8's own)."""
    makers = {"tflite": lambda: from_tflite(tflite_float_io(), opset),
              "ort_static": lambda: ort_static(fp32_onnx(), calibration, per_channel=per_channel)}
    names = list(makers) if method == "auto" else [method]
    built, scores = {}, {}
    for name in names:
        try:
            built[name] = makers[name]()
        except Exception as e:  # noqa: BLE001 — in auto mode one path failing leaves the other
            if method != "auto":
                raise
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            scores[name] = {"error": first}
            log.warning("ONNX int8 via %s failed: %s", name, first)
            continue
        acc, gz = evaluate_onnx(built[name], x_val, y_val, task)
        scores[name] = {"val_accuracy": round(acc, 6), "gzip_bytes": gz, "size_bytes": len(built[name])}
    if not built:
        raise RuntimeError(f"ONNX int8: every method failed ({scores})")
    chosen = max(built, key=lambda n: (scores[n]["val_accuracy"], -scores[n]["gzip_bytes"]))
    if len(built) == 1:
        reason = f"only {chosen} was {'asked for' if method != 'auto' else 'built'}"
    else:
        other = next(n for n in built if n != chosen)
        a, b = scores[chosen]["val_accuracy"], scores[other]["val_accuracy"]
        reason = (f"higher validation top-1 ({a:.4f} vs {b:.4f})" if a - b > TIE else
                  f"same validation top-1 ({a:.4f}); smaller gzip ({scores[chosen]['gzip_bytes']} vs "
                  f"{scores[other]['gzip_bytes']} bytes)")
    return built[chosen], {"method": chosen, "reason": reason, "candidates": scores}
