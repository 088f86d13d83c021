"""Convert stage: a tf_keras model → TFLite (fp32/fp16/dynamic/int8/int16x8) and ONNX (tf2onnx), each with
a parity record (accuracy, top-1 agreement, max abs diff) against the model on the test split."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edgeopt import atomic
from edgeopt.artifact import Artifact
from edgeopt.bench import measure
from edgeopt.errors import UsageError
from edgeopt.recipe import ConvertConfig
from edgeopt.stages.context import StageContext

log = logging.getLogger(__name__)


def check_calibration(samples: np.ndarray) -> np.ndarray:
    samples = np.asarray(samples, dtype=np.float32)
    if samples.size == 0:
        raise UsageError("the calibration set is empty", "pass a data set with training samples")
    if not np.all(np.isfinite(samples)):
        raise UsageError("the calibration set contains NaN or Inf values", "clean the training data before int8 conversion")
    return samples


def tflite_bytes(model, precision: str, calibration: np.ndarray | None = None, int8_io: str = "int8",
                 denylist: tuple[str, ...] = ()) -> bytes:
    """One TFLite flatbuffer. ``calibration`` feeds the representative dataset for int8/int16x8."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
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

    shape = (None, *[int(d) for d in model.input_shape[1:]])
    spec = (tf.TensorSpec(shape, tf.float32, name="input"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
    return proto.SerializeToString()


def parity(path: Path, fmt: str, x: np.ndarray, y: np.ndarray, reference: np.ndarray) -> dict:
    """Run the artifact in its runtime on the test split and compare with the source model's outputs."""
    from edgeopt.runtimes import for_format, module

    outputs = module(for_format(fmt)).load(str(path)).run(x)
    return {
        "accuracy": round(measure.accuracy(outputs, y), 6),
        "agreement": round(measure.agreement(outputs, reference), 6),
        "max_abs_diff": float(f"{measure.max_abs_diff(outputs, reference):.6g}"),
        "samples": int(len(x)),
    }


def plan(cfg: ConvertConfig) -> list[tuple[str, str]]:
    return [("tflite", p) for p in cfg.tflite] + [("onnx", p) for p in cfg.onnx]


def apply(model, ctx: StageContext, cfg: ConvertConfig) -> list[Artifact]:
    ds = ctx.dataset
    x_test, y_test = ds.x_test, ds.y_test
    reference = np.concatenate([np.asarray(model(x_test[i : i + 256], training=False))
                                for i in range(0, len(x_test), 256)])
    ref_acc = measure.accuracy(reference, y_test)
    calibration = ds.representative(cfg.calibration_samples)
    artifacts: list[Artifact] = []
    fp32_acc = None
    for fmt, precision in plan(cfg):
        ctx.progress(f"{fmt} {precision}")
        path = ctx.out_dir / f"{ctx.base_name}_{precision}.{fmt}"
        if fmt == "tflite":
            data = tflite_bytes(model, precision, calibration, cfg.int8_io)
        else:
            data = onnx_bytes(model, cfg.opset)
        atomic.write_bytes(path, data)
        par = parity(path, fmt, x_test, y_test, reference)
        par["source_accuracy"] = round(ref_acc, 6)
        if fmt == "tflite" and precision == "fp32":
            fp32_acc = par["accuracy"]
        if precision in ("int8", "int16x8"):
            base = fp32_acc if fp32_acc is not None else ref_acc
            drop = base - par["accuracy"]
            par["accuracy_drop"] = round(drop, 6)
            par["within_tolerance"] = bool(drop <= cfg.max_accuracy_drop)
            if drop > cfg.max_accuracy_drop:
                log.warning("%s %s drops %.2f points of top-1 (tolerance %.2f)", fmt, precision, 100 * drop,
                            100 * cfg.max_accuracy_drop)
        artifacts.append(Artifact.from_file(path, name=path.name, precision=precision,
                                            stages=(*ctx.stages_done, "convert"), parent=ctx.parent,
                                            info={"parity": par}, relative_to=ctx.out_dir))
    return artifacts
