"""Convert stage: a model → TFLite (fp32/fp16/dynamic/int8/int16x8) and ONNX (fp32 via tf2onnx, int8), each with
a parity record (accuracy, top-1 agreement, max abs diff) against the model on the test split.

int8 is accuracy-aware (int8_search.py): ops QuantizationDebugger ranks worst stay float until the drop on the
validation split is within ``max_accuracy_drop``. ONNX int8 picks between tf2onnx on the int8 TFLite and ONNX
Runtime static quantization (onnx_int8.py). Besides tf_keras models it converts the wrappers keras_compat
returns for plain SavedModels and Keras 3 models the bridge could not translate (PTQ only)."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

from edgeopt import atomic
from edgeopt.core import metrics
from edgeopt.core.artifact import Artifact
from edgeopt.errors import UsageError
from edgeopt.recipe import ConvertConfig
from edgeopt.stages.context import StageContext
from edgeopt.stages.convert import int8_search, onnx_int8

log = logging.getLogger(__name__)


def check_calibration(samples: np.ndarray) -> np.ndarray:
    samples = np.asarray(samples, dtype=np.float32)
    if samples.size == 0:
        raise UsageError("the calibration set is empty", "pass a data set with training samples")
    if not np.all(np.isfinite(samples)):
        raise UsageError("the calibration set contains NaN or Inf values", "clean the training data before int8 conversion")
    return samples


def converter_for(model):
    """TFLiteConverter for a tf_keras model, or for any callable model wrapper (SavedModel, Keras 3)."""
    import tensorflow as tf
    import tf_keras

    if isinstance(model, tf_keras.Model):
        return tf.lite.TFLiteConverter.from_keras_model(model)
    return tf.lite.TFLiteConverter.from_saved_model(model.saved_model_dir())


def tflite_bytes(model, precision: str, calibration: np.ndarray | None = None, int8_io: str = "int8",
                 denylist: tuple[str, ...] = ()) -> bytes:
    """One TFLite flatbuffer. ``calibration`` feeds the representative dataset for int8/int16x8."""
    import tensorflow as tf

    converter = converter_for(model)
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif precision in ("int8", "int16x8"):
        if calibration is None:
            raise ValueError(f"{precision} conversion needs calibration samples")
        samples = check_calibration(calibration)

        def representative():
            for i in range(len(samples)):
                yield [samples[i : i + 1]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        if precision == "int8":
            ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if denylist:
                ops.append(tf.lite.OpsSet.TFLITE_BUILTINS)  # denylisted ops stay float
            converter.target_spec.supported_ops = ops
            if int8_io == "int8":
                converter.inference_input_type = tf.int8
                converter.inference_output_type = tf.int8
        else:
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            ]
    elif precision != "fp32":
        raise ValueError(f"unknown TFLite precision {precision!r}")
    return converter.convert()


def onnx_bytes(model, opset: int = 17) -> bytes:
    import tensorflow as tf
    import tf2onnx
    import tf_keras

    shape = (None, *[int(d) for d in model.input_shape[1:]])
    spec = (tf.TensorSpec(shape, tf.float32, name="input"),)
    if isinstance(model, tf_keras.Model):
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
    else:
        fn = tf.function(lambda x: model(x, training=False))
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=opset)
    return proto.SerializeToString()


def int8_tflite(model, calibration: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, float_val_acc: float,
                cfg: ConvertConfig, io_type: str) -> int8_search.Int8Result:
    """Full-integer int8; accuracy-aware unless the model is quantization-aware (QAT fixed its ranges) or the
    recipe turned it off."""
    from edgeopt.runtimes import evaluate

    if int8_search.is_quantization_aware(model) or not cfg.accuracy_aware:
        data = tflite_bytes(model, "int8", calibration, io_type)
        acc = evaluate.accuracy(data, "tflite", x_val, y_val)
        why = ("quantization-aware model: ranges come from training" if cfg.accuracy_aware
               else "accuracy_aware is off")
        met = float_val_acc - acc <= cfg.max_accuracy_drop
        info = {"float_val_accuracy": round(float_val_acc, 6), "int8_val_accuracy": round(acc, 6),
                "kept_float": [], "met": met, "search": f"skipped: {why}"}
        return int8_search.Int8Result(data, info, lambda: tflite_bytes(model, "int8", calibration, "float"))
    calibrated = int8_search.Calibrated(lambda: converter_for(model), calibration, cfg.debug_samples)
    return int8_search.search(calibrated, x_val, y_val, float_val_acc, cfg.max_accuracy_drop, io_type,
                              cfg.max_float_ops)


def parity(path: Path, fmt: str, x: np.ndarray, y: np.ndarray, reference: np.ndarray) -> dict:
    """Run the artifact in its runtime on the test split and compare with the source model's outputs."""
    from edgeopt.runtimes import evaluate

    outputs = evaluate.outputs(path, fmt, x)
    return {
        "accuracy": round(metrics.accuracy(outputs, y), 6),
        "agreement": round(metrics.agreement(outputs, reference), 6),
        "max_abs_diff": float(f"{metrics.max_abs_diff(outputs, reference):.6g}"),
        "samples": int(len(x)),
    }


def plan(cfg: ConvertConfig) -> list[tuple[str, str]]:
    return [("tflite", p) for p in cfg.tflite] + [("onnx", p) for p in cfg.onnx]


def strip_strings(data: bytes) -> bytes:
    """LiteRT's flatbuffer_utils.strip_strings: no tensor/subgraph names, no signature defs; same arithmetic."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    flatbuffer_utils.strip_strings(model)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _predict(model, x: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(model(x[i : i + 256], training=False)) for i in range(0, len(x), 256)])


def apply(model, ctx: StageContext, cfg: ConvertConfig) -> list[Artifact]:
    ds = ctx.dataset
    x_test, y_test = ds.x_test, ds.y_test
    x_val, y_val = (ds.x_val, ds.y_val) if len(ds.x_val) else (x_test, y_test)
    wants_int = any(p in ("int8", "int16x8") for p in cfg.tflite) or "int8" in cfg.onnx
    # refused here, before any conversion, so a bad calibration set never leaves half the artifacts behind
    calibration = check_calibration(ds.representative(cfg.calibration_samples)) if wants_int else None
    reference = _predict(model, x_test)
    ref_acc = metrics.accuracy(reference, y_test)
    float_val_acc = metrics.accuracy(_predict(model, x_val), y_val) if wants_int else None
    # Built once, on first use: the int8 TFLite and the fp32 ONNX each serve more than one artifact.
    int8 = functools.cache(lambda: int8_tflite(model, calibration, x_val, y_val, float_val_acc, cfg, cfg.int8_io))
    fp32_onnx = functools.cache(lambda: onnx_bytes(model, cfg.opset))
    artifacts: list[Artifact] = []
    fp32_acc = None
    for fmt, precision in plan(cfg):
        ctx.progress(f"{fmt} {precision}")
        path = ctx.out_dir / f"{ctx.base_name}_{precision}.{fmt}"
        info: dict = {}
        if fmt == "tflite" and precision == "int8":
            result = int8()
            data, info["int8"] = result.data, result.info
        elif fmt == "tflite":
            data = tflite_bytes(model, precision, calibration, cfg.int8_io)
        elif precision == "int8":
            data, info["onnx_int8"] = onnx_int8.build(cfg.onnx_int8, lambda: int8().float_io(), fp32_onnx,
                                                      calibration, x_val, y_val, cfg.opset)
        else:
            data = fp32_onnx()
        if fmt == "tflite" and cfg.strip_strings:
            data = strip_strings(data)
        atomic.write_bytes(path, data)
        par = parity(path, fmt, x_test, y_test, reference)
        par["source_accuracy"] = round(ref_acc, 6)
        if fmt == "tflite" and precision == "fp32":
            fp32_acc = par["accuracy"]
        if precision in ("int8", "int16x8"):
            _tolerance(par, fp32_acc if fp32_acc is not None else ref_acc, cfg, f"{fmt} {precision}")
        info["parity"] = par
        artifacts.append(Artifact.from_file(path, name=path.name, precision=precision,
                                            stages=(*ctx.stages_done, "convert"), parent=ctx.parent,
                                            info=info, relative_to=ctx.out_dir))
    return artifacts


def _tolerance(par: dict, base: float, cfg: ConvertConfig, what: str) -> None:
    drop = base - par["accuracy"]
    par["accuracy_drop"] = round(drop, 6)
    par["within_tolerance"] = bool(drop <= cfg.max_accuracy_drop)
    if drop > cfg.max_accuracy_drop:
        par["verdict"] = (f"TOLERANCE NOT MET: {what} drops {100 * drop:.2f} points of top-1 on the test split "
                          f"(allowed {100 * cfg.max_accuracy_drop:.2f})")
        log.warning("%s", par["verdict"])
