"""Convert stage: a model → TFLite (fp32/fp16/dynamic/int8/int16x8, tflite.py) and ONNX (fp32 via tf2onnx, int8,
onnx.py), each with a parity record (accuracy, top-1 agreement, max abs diff) against the model on the test split.

int8 is accuracy-aware (int8_search.py): ops QuantizationDebugger ranks worst stay float until the drop on the
validation split is within ``max_accuracy_drop``. ONNX int8 picks between tf2onnx on the int8 TFLite and ONNX
Runtime static quantization. Besides tf_keras models it converts the wrappers models.load returns for plain
SavedModels and Keras 3 models the bridge could not translate (PTQ only)."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgeopt import atomic
from edgeopt.core import metrics
from edgeopt.core.artifact import Artifact
from edgeopt.stages.convert.onnx import int8_bytes, onnx_bytes
from edgeopt.stages.convert.tflite import check_calibration, int8_tflite, strip_strings, tflite_bytes

if TYPE_CHECKING:
    from edgeopt.stages import StageContext

log = logging.getLogger(__name__)


class ConvertConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    tflite: list[Literal["fp32", "fp16", "dynamic", "int8", "int16x8"]] = ["fp32", "fp16", "dynamic", "int8"]
    onnx: list[Literal["fp32", "int8"]] = ["fp32"]
    opset: int = Field(17, ge=11, le=21)
    int8_io: Literal["int8", "float"] = "int8"  # full-integer I/O (device style) or float I/O wrappers
    calibration_samples: int = Field(200, ge=1)
    max_accuracy_drop: float = Field(0.01, ge=0, le=1)  # absolute top-1 vs the float model
    # int8: when the drop exceeds max_accuracy_drop, keep the ops QuantizationDebugger ranks worst in float
    accuracy_aware: bool = True
    max_float_ops: int | None = Field(None, ge=1)  # stop the search after this many float ops (None: all)
    debug_samples: int = Field(64, ge=1)  # samples QuantizationDebugger runs to rank ops
    # ONNX int8: tf2onnx on the int8 TFLite, ONNX Runtime static quantization of the fp32 ONNX, or both and
    # keep the more accurate on the validation split
    onnx_int8: Literal["auto", "tflite", "ort_static"] = "auto"
    # drop tensor names and signature defs from TFLite files (LiteRT's strip_strings): a few hundred bytes
    # that matter on tiny models; inputs/outputs are then addressed by index only
    strip_strings: bool = False


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


def predict(model, x: np.ndarray) -> np.ndarray:
    """Outputs of a tf_keras model or a models.load wrapper on ``x``, in inference mode, 256 rows at a time."""
    return np.concatenate([np.asarray(model(x[i : i + 256], training=False)) for i in range(0, len(x), 256)])


def apply(model, ctx: StageContext, cfg: ConvertConfig) -> list[Artifact]:
    ds = ctx.dataset
    x_test, y_test = ds.x_test, ds.y_test
    x_val, y_val = (ds.x_val, ds.y_val) if len(ds.x_val) else (x_test, y_test)
    wants_int = any(p in ("int8", "int16x8") for p in cfg.tflite) or "int8" in cfg.onnx
    # refused here, before any conversion, so a bad calibration set never leaves half the artifacts behind
    calibration = check_calibration(ds.representative(cfg.calibration_samples)) if wants_int else None
    reference = predict(model, x_test)
    ref_acc = metrics.accuracy(reference, y_test)
    float_val_acc = metrics.accuracy(predict(model, x_val), y_val) if wants_int else None
    # every tolerance is measured against the model compress was given (recipe.run measured it), not this input
    source_test = ctx.reference.get("test", ref_acc)
    source_val = ctx.reference.get("val" if len(ds.x_val) else "test", float_val_acc)
    # a QAT model's float artifacts come from its float twin (real float ops, not fake-quant); int8 from the QAT
    float_model = ctx.float_twin[1] if ctx.float_twin and ctx.float_twin[0] is model else model
    # Built once, on first use: the int8 TFLite and the fp32 ONNX each serve more than one artifact.
    int8 = functools.cache(lambda: int8_tflite(model, calibration, x_val, y_val, float_val_acc, cfg, cfg.int8_io,
                                               source_val))
    fp32_onnx = functools.cache(lambda: onnx_bytes(float_model, cfg.opset))
    artifacts: list[Artifact] = []
    for fmt, precision in plan(cfg):
        ctx.progress(f"{fmt} {precision}")
        path = ctx.out_dir / f"{ctx.base_name}_{precision}.{fmt}"
        info: dict = {}
        if fmt == "tflite" and precision == "int8":
            result = int8()
            data, info["int8"] = result.data, result.info
        elif fmt == "tflite":
            data = tflite_bytes(float_model, precision, calibration, cfg.int8_io)
        elif precision == "int8":
            data, info["onnx_int8"] = int8_bytes(cfg.onnx_int8, lambda: int8().float_io(), fp32_onnx,
                                                      calibration, x_val, y_val, cfg.opset)
        else:
            data = fp32_onnx()
        if fmt == "tflite" and cfg.strip_strings:
            data = strip_strings(data)
        atomic.write_bytes(path, data)
        par = parity(path, fmt, x_test, y_test, reference)
        par["source_accuracy"] = round(source_test, 6)  # the model compress was given
        par["input_accuracy"] = round(ref_acc, 6)  # the model this stage converted (the last stage's result)
        par["accuracy_drop"] = round(source_test - par["accuracy"], 6)
        if precision in ("int8", "int16x8"):
            _tolerance(par, cfg, f"{fmt} {precision}")
        info["parity"] = par
        artifacts.append(Artifact.from_file(path, name=path.name, precision=precision,
                                            stages=(*ctx.stages_done, "convert"), parent=ctx.parent,
                                            info=info, relative_to=ctx.out_dir))
    return _against_fp32(artifacts)


def _tolerance(par: dict, cfg: ConvertConfig, what: str) -> None:
    drop = par["accuracy_drop"]
    par["within_tolerance"] = bool(drop <= cfg.max_accuracy_drop)
    if drop > cfg.max_accuracy_drop:
        par["verdict"] = (f"TOLERANCE NOT MET: {what} is {100 * drop:.2f} points of top-1 under the source model "
                          f"on the test split (allowed {100 * cfg.max_accuracy_drop:.2f})")
        log.warning("%s", par["verdict"])


def _against_fp32(artifacts: list[Artifact]) -> list[Artifact]:
    """Each reduced-precision file's size next to its format's fp32 file: one that is not smaller (an int8 graph
    with most ops kept float) is marked so, never shown as a win."""
    fp32 = {a.format: a for a in artifacts if a.precision == "fp32"}
    for a in artifacts:
        base = fp32.get(a.format)
        if a.precision == "fp32" or base is None or not base.size_bytes:
            continue
        ratio = round(a.size_bytes / base.size_bytes, 4)
        a.info["size_vs_fp32"] = ratio
        if ratio >= 1.0:
            a.info["no_size_win"] = (f"{a.precision} file is {ratio:.2f}× the size of {base.name}: "
                                     "no size gain over fp32")
            log.warning("%s: %s", a.name, a.info["no_size_win"])
    return artifacts
