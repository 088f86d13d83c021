"""Convert stage: a model → TFLite (tflite.py) and ONNX (onnx.py), each with a parity record (accuracy, top-1
agreement, max abs diff) against the model on the test split and the seconds its build took.

TFLite precisions: ``fp32``; ``fp16`` (float16 weights); ``dynamic`` (the converter's dynamic-range mode: int8
weights, float tensors, hybrid kernels that quantize activations at each inference); ``int8_weights``
(weight-only: int8 weights dequantized to float, float compute at fp32 speed, through ai-edge-quantizer,
aiedge.py); ``int8`` (full-integer) and ``int16x8``. ONNX: ``fp32`` (tf2onnx), ``int8`` (see below) and
``u8s8`` (ONNX Runtime static: uint8 activations, int8 per-tensor weights, QDQ).

int8 is accuracy-aware (int8_search.py): ops QuantizationDebugger ranks worst stay float until the drop on the
validation split is within ``max_accuracy_drop``. ONNX int8 picks between tf2onnx on the int8 TFLite and ONNX
Runtime static quantization. Besides tf_keras models it converts the wrappers models.load returns for plain
SavedModels and Keras 3 models the bridge could not translate (PTQ only)."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgeopt import atomic
from edgeopt.core import metrics
from edgeopt.core.artifact import Artifact
from edgeopt.stages.convert import aiedge
from edgeopt.stages.convert.onnx import int8_bytes, onnx_bytes, u8s8
from edgeopt.stages.convert.tflite import (
    check_calibration,
    flex_bytes,
    input_dtype,
    int8_tflite,
    strip_strings,
    tflite_bytes,
)

if TYPE_CHECKING:
    from edgeopt.stages import StageContext

log = logging.getLogger(__name__)

QUANTIZED = ("int8", "int16x8", "int8_weights", "u8s8")  # precisions held to max_accuracy_drop


class ConvertConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    tflite: list[Literal["fp32", "fp16", "dynamic", "int8_weights", "int8", "int16x8"]] = [
        "fp32", "fp16", "dynamic", "int8"]
    onnx: list[Literal["fp32", "int8", "u8s8"]] = ["fp32"]
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


def parity(path: Path, fmt: str, x: np.ndarray, y: np.ndarray | None, reference: np.ndarray) -> dict:
    """Run the artifact in its runtime on the test split and compare with the source model's outputs
    (``y`` None: a data set without labels, no accuracy)."""
    from edgeopt.runtimes import evaluate

    outputs = evaluate.outputs(path, fmt, x)
    return {
        "accuracy": None if y is None else round(metrics.accuracy(outputs, y), 6),
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
    # unlabelled data come labelled with the source's top-1 (compress): val scores are then agreement
    labelled = getattr(ds, "labelled", True)
    x_val, y_val = (ds.x_val, ds.y_val) if len(ds.x_val) else (x_test, y_test)
    wants_int = any(p in ("int8", "int16x8") for p in cfg.tflite) or bool({"int8", "u8s8"} & set(cfg.onnx))
    if "int8_weights" in cfg.tflite:
        aiedge.require("tflite int8_weights (weight-only int8)")
    # refused here, before any conversion, so a bad calibration set never leaves half the artifacts behind
    dtype = input_dtype(model)
    calibration = check_calibration(ds.representative(cfg.calibration_samples), dtype) if wants_int else None
    reference = predict(model, x_test)
    ref_acc = metrics.accuracy(reference, y_test)
    float_val_acc = metrics.accuracy(predict(model, x_val), y_val) if wants_int else None
    # every tolerance is measured against the model compress was given (recipe.run measured it), not this input
    source_test = ctx.reference.get("test", ref_acc)
    source_val = ctx.reference.get("val" if len(ds.x_val) else "test", float_val_acc)
    # a QAT model's float artifacts come from its float twin (real float ops, not fake-quant); int8 from the QAT
    float_model = ctx.float_twin[1] if ctx.float_twin and ctx.float_twin[0] is model else model
    # Built once, on first use: the fp32 TFLite (the fp32 artifact, what int8 calibrates and int8_weights
    # quantizes), the int8 TFLite and the fp32 ONNX each serve more than one artifact.
    fp32_tflite = functools.cache(lambda: tflite_bytes(float_model, "fp32"))
    int8 = functools.cache(lambda: int8_tflite(model, calibration, x_val, y_val, float_val_acc, cfg, cfg.int8_io,
                                               source_val, fp32_tflite if model is float_model else None))
    fp32_onnx = functools.cache(lambda: onnx_bytes(float_model, cfg.opset))
    builders = Builders(fp32_tflite, int8, fp32_onnx)
    artifacts: list[Artifact] = []
    for fmt, precision in plan(cfg):
        ctx.progress(f"{fmt} {precision}")
        path = ctx.out_dir / f"{ctx.base_name}_{precision}.{fmt}"
        info: dict = {}
        started = time.perf_counter()
        try:
            data = _build(fmt, precision, float_model, cfg, calibration, builders, x_val, y_val, info)
            # what this artifact cost: the first to need a shared part (fp32 TFLite, calibration) pays for it
            info["convert_seconds"] = round(time.perf_counter() - started, 3)
            atomic.write_bytes(path, data)
        except Exception as e:  # noqa: BLE001 — one format failing never aborts the others
            artifacts.append(failed(ctx, path, fmt, precision, e, info))
            continue
        try:
            par = parity(path, fmt, x_test, y_test if labelled else None, reference)
        except Exception as e:  # noqa: BLE001
            if info.get("requires") != "flex":
                path.unlink(missing_ok=True)
                artifacts.append(failed(ctx, path, fmt, precision, e, info))
                continue
            # built, but this machine's runtime cannot run Select TF ops: kept, said so; bench tells per target
            par = {"error": f"{type(e).__name__}: {_first_line(e)}", "samples": 0}
            log.warning("%s %s needs the Flex delegate; no parity check here: %s", fmt, precision, par["error"])
            info["parity"] = par
            artifacts.append(Artifact.from_file(path, name=path.name, precision=precision,
                                                stages=(*ctx.stages_done, "convert"), parent=ctx.parent,
                                                info=info, relative_to=ctx.out_dir))
            continue
        # without labels y holds the source's own top-1 (source_test is 1.0): the drop is then 1 - agreement
        score = par["accuracy"] if labelled else par["agreement"]
        par["source_accuracy"] = round(source_test, 6) if labelled else None  # the model compress was given
        par["input_accuracy"] = round(ref_acc, 6) if labelled else None  # the model this stage converted
        par["accuracy_drop"] = round(source_test - score, 6)
        if precision in QUANTIZED:
            _tolerance(par, cfg, f"{fmt} {precision}", labelled)
        info["parity"] = par
        artifacts.append(Artifact.from_file(path, name=path.name, precision=precision,
                                            stages=(*ctx.stages_done, "convert"), parent=ctx.parent,
                                            info=info, relative_to=ctx.out_dir))
    return _against_fp32(artifacts)


@dataclass(frozen=True)
class Builders:
    """The parts more than one artifact is made from, each built on first use."""

    fp32_tflite: Callable[[], bytes]
    int8: Callable[[], object]  # int8_search.Int8Result
    fp32_onnx: Callable[[], bytes]


def _build(fmt: str, precision: str, float_model, cfg: ConvertConfig, calibration, built: Builders, x_val, y_val,
           info: dict) -> bytes:
    """One artifact's bytes; ``info`` gains what the build learned (int8 search, ONNX int8 choice, flex).
    ``float_model``: what the float TFLite files come from (a QAT model's float twin, else the model)."""
    if fmt == "tflite" and precision == "int8":
        result = built.int8()
        data, info["int8"] = result.data, result.info
    elif fmt == "tflite" and precision == "int8_weights":
        data = aiedge.weight_only(built.fp32_tflite())
    elif fmt == "tflite":
        try:
            data = (built.fp32_tflite() if precision == "fp32" else
                    tflite_bytes(float_model, precision, calibration, cfg.int8_io))
        except Exception as e:  # noqa: BLE001 — builtins could not express it: Select TF ops, said in the manifest
            if precision not in ("fp32", "fp16", "dynamic"):
                raise
            log.warning("%s: TFLite builtins cannot express this model; converting with Select TF ops (flex)",
                        precision)
            try:
                data = flex_bytes(float_model, precision)
            except Exception:  # noqa: BLE001 — flex did not help either: the builtins' reason is the one to give
                raise e from None
            info["requires"] = "flex"
            info["builtins_error"] = _first_line(e)
    elif precision == "int8":
        data, info["onnx_int8"] = int8_bytes(cfg.onnx_int8, lambda: built.int8().float_io(), built.fp32_onnx,
                                             calibration, x_val, y_val, cfg.opset)
    elif precision == "u8s8":
        data = u8s8(built.fp32_onnx(), calibration)
    else:
        data = built.fp32_onnx()
    if fmt == "tflite" and cfg.strip_strings:
        data = strip_strings(data)
    return data


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # the converter's message starts with source locations; its first "error:" line says what went wrong
    errors = [ln.split("error:", 1)[1].strip() for ln in lines if "error:" in ln]
    return ((errors[-1] if errors else lines[0]) if lines else type(e).__name__)[:300]


def failed(ctx: StageContext, path: Path, fmt: str, precision: str, e: BaseException, info: dict) -> Artifact:
    """The manifest entry of an artifact that could not be built or checked: status failed, with the reason."""
    reason = f"{type(e).__name__}: {_first_line(e)}"
    log.warning("%s %s failed: %s", fmt, precision, reason)
    return Artifact(name=path.name, path=path.name, format=fmt, precision=precision, size_bytes=0, sha256="",
                    stages=(*ctx.stages_done, "convert"), parent=ctx.parent, info=info, status="failed",
                    error=reason)


def _tolerance(par: dict, cfg: ConvertConfig, what: str, labelled: bool = True) -> None:
    drop = par["accuracy_drop"]
    par["within_tolerance"] = bool(drop <= cfg.max_accuracy_drop)
    if drop > cfg.max_accuracy_drop:
        score = "top-1" if labelled else "top-1 agreement"
        par["verdict"] = (f"TOLERANCE NOT MET: {what} is {100 * drop:.2f} points of {score} under the source model "
                          f"on the test split (allowed {100 * cfg.max_accuracy_drop:.2f})")
        log.warning("%s", par["verdict"])


def _against_fp32(artifacts: list[Artifact]) -> list[Artifact]:
    """Each reduced-precision file's size next to its format's fp32 file: one that is not smaller (an int8 graph
    with most ops kept float) is marked so, never shown as a win."""
    fp32 = {a.format: a for a in artifacts if a.precision == "fp32"}
    for a in artifacts:
        base = fp32.get(a.format)
        if a.precision == "fp32" or a.status == "failed" or base is None or not base.size_bytes:
            continue
        ratio = round(a.size_bytes / base.size_bytes, 4)
        a.info["size_vs_fp32"] = ratio
        if ratio >= 1.0:
            a.info["no_size_win"] = (f"{a.precision} file is {ratio:.2f}× the size of {base.name}: "
                                     "no size gain over fp32")
            log.warning("%s: %s", a.name, a.info["no_size_win"])
    return artifacts
