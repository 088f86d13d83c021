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
from edgeopt.core.inputs import Inputs, feed
from edgeopt.errors import UsageError
from edgeopt.stages.convert import aiedge, int8_search
from edgeopt.stages.convert.onnx import int8_bytes, onnx_bytes, u8s8
from edgeopt.stages.convert.tflite import (
    check_calibration,
    flex_bytes,
    input_dtype,
    int8_tflite,
    share_empty_buffers,
    strip_metadata,
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
    # absolute, in the task's metric (top-1 for classification; a rise for lower-is-better ones) vs the source
    max_accuracy_drop: float = Field(0.01, ge=0, le=1)
    # int8: when the drop exceeds max_accuracy_drop, keep the ops QuantizationDebugger ranks worst in float
    accuracy_aware: bool = True
    max_float_ops: int | None = Field(None, ge=1)  # stop the search after this many float ops (None: all but one)
    debug_samples: int = Field(64, ge=1)  # samples QuantizationDebugger runs to rank ops
    # ONNX int8: tf2onnx on the int8 TFLite, ONNX Runtime static quantization of the fp32 ONNX, or both and
    # keep the more accurate on the validation split
    onnx_int8: Literal["auto", "tflite", "ort_static"] = "auto"
    # drop tensor names and signature defs from TFLite files (LiteRT's strip_strings): a few hundred bytes
    # that matter on tiny models; inputs/outputs are then addressed by index only
    strip_strings: bool = False
    # int8 / int16x8 TFLite weights: one scale (and zero point) per output channel, the converter's default, or one
    # per tensor (false): fewer quantization parameters, clustered weights keep as few distinct int8 values as they
    # have clusters (gzip), and what per-tensor-only accelerators take. Post-training only: a QAT model's ranges
    # were trained per channel, so false is refused for it
    per_channel: bool = True
    # drop the converter's metadata (min_runtime_version, CONVERSION_METADATA: its version and flags) from TFLite
    # files: ~200 bytes no runtime reads; tensors, ops and signature defs stay
    strip_metadata: bool = False
    # TFLite tensors without data (activations, inputs, outputs) share buffer 0, the schema's empty buffer, instead
    # of one empty buffer each as the converter writes them: ~8 gzip bytes per tensor, nothing else changes
    share_empty_buffers: bool = False


def parity(path: Path, fmt: str, x: np.ndarray, y: np.ndarray | None, reference: np.ndarray, task=None,
           others: dict | None = None) -> dict:
    """Run the artifact in its runtime on the test split and compare with the source model's outputs
    (``y`` None: a data set without labels, no accuracy). ``task`` (core.metrics.Task; classification when None)
    adds its headline metric (``metric``, ``score``), its other figures (``metrics``) and, for outputs that are not
    class scores, cosine similarity and SNR to the source instead of agreement."""
    from edgeopt.runtimes import evaluate

    task = task or metrics.make_task("classification")
    outputs = evaluate.outputs(path, fmt, x, task.output)
    par: dict = {"accuracy": None if y is None or task.name != "classification" else round(metrics.accuracy(outputs, y), 6)}
    par.update(task.fidelity(outputs, reference))
    par["max_abs_diff"] = float(f"{metrics.max_abs_diff(outputs, reference):.6g}")
    par["samples"] = int(len(x))
    if y is not None:
        figures = task.figures(outputs, y)
        par.update(metric=task.metric.name, score=figures[task.metric.name], metrics=figures)
    if others:  # the other outputs of a model with several, listed: fidelity, and their task's figures with labels
        par["outputs"] = {}
        for name, (ref, other_task, other_y) in others.items():
            out = evaluate.outputs(path, fmt, x, name)
            entry = {"task": other_task.name, **other_task.fidelity(out, ref),
                     "max_abs_diff": float(f"{metrics.max_abs_diff(out, ref):.6g}")}
            if other_y is not None:
                entry["metrics"] = other_task.figures(out, other_y)
            par["outputs"][name] = entry
    return par


def other_outputs(model, ds, task) -> dict:
    """name → (the model's outputs on the test split, their task, their labels or None) for every output of a model
    with several but the scored one (``task.output``)."""
    if not task.output:
        return {}
    every = predict_outputs(model, ds.x_test)
    labels = getattr(ds, "output_labels", None) or {}
    out = {}
    for name, ref in every.items():
        if name == task.output:
            continue
        y = labels[name][2] if name in labels else None
        kind = metrics.OutputKind.of(ref)
        try:
            which = metrics.infer_task(ref, y)[0] if y is not None else "raw"
        except UsageError:  # labels that do not say what the output is: it is listed by its fidelity alone
            which, y = "raw", None
        if which == "classification":
            y = y.reshape(len(y), -1).argmax(1) if y.ndim > 1 and y.shape[-1] > 1 else y.reshape(-1).astype(np.int64)
        out[name] = (ref, metrics.make_task(which, num_classes=kind.width, classifier_output=kind.class_scores(which)),
                     None if which == "raw" else y)
    return out


def plan(cfg: ConvertConfig) -> list[tuple[str, str]]:
    return [("tflite", p) for p in cfg.tflite] + [("onnx", p) for p in cfg.onnx]


def predict(model, x: np.ndarray) -> np.ndarray:
    """Outputs of a tf_keras model or a models.load wrapper on ``x`` (an array, or core.inputs.Inputs fed by input
    name), in inference mode, 256 rows at a time. A model with several outputs: its first (the headline)."""
    return next(iter(predict_outputs(model, x).values()))


def predict_outputs(model, x) -> dict[str, np.ndarray]:
    """Every output of the model on ``x``, by output name in the model's order (one output: its name or "output")."""
    names = list(getattr(model, "input_names", None) or []) if isinstance(x, Inputs) else None
    out_names = list(getattr(model, "output_names", None) or [])
    parts: dict[str, list[np.ndarray]] = {}
    for i in range(0, len(x), 256):
        out = model(feed(x[i : i + 256], names), training=False)
        if isinstance(out, dict):
            items = list(out.items())
        elif isinstance(out, list | tuple):
            items = [(out_names[j] if j < len(out_names) else f"output_{j}", o) for j, o in enumerate(out)]
        else:
            items = [(out_names[0] if out_names else "output", out)]
        for name, o in items:
            parts.setdefault(str(name), []).append(np.asarray(o))
    return {name: np.concatenate(p) for name, p in parts.items()}


def apply(model, ctx: StageContext, cfg: ConvertConfig) -> list[Artifact]:
    ds = ctx.dataset
    task = ctx.task
    x_test, y_test = ds.x_test, ds.y_test
    # unlabelled data come labelled with the source's outputs or top-1 (compress): scores are then fidelity
    labelled = getattr(ds, "labelled", True)
    x_val, y_val = (ds.x_val, ds.y_val) if len(ds.x_val) else (x_test, y_test)
    wants_int = any(p in ("int8", "int16x8") for p in cfg.tflite) or bool({"int8", "u8s8"} & set(cfg.onnx))
    if "int8_weights" in cfg.tflite:
        aiedge.require("tflite int8_weights (weight-only int8)")
    # every integer file of a QAT model comes from its trained ranges: int8 / int16x8 TFLite, and ONNX int8
    # through tf2onnx of that TFLite
    quantized_from_tflite = bool({"int8", "int16x8"} & set(cfg.tflite)) or "int8" in cfg.onnx
    if not cfg.per_channel and quantized_from_tflite and int8_search.is_quantization_aware(model):
        raise UsageError("convert: per_channel: false cannot apply to a quantization-aware model (QAT trained its conv "
                         "weights' ranges per channel; the converter keeps them)",
                         "drop the quantize stage (or set quantize: {qat: false}) for per-tensor post-training int8, "
                         "or keep per_channel: true")
    # refused here, before any conversion, so a bad calibration set never leaves half the artifacts behind
    dtype = input_dtype(model)  # several inputs: name → dtype, in the model's order (what calibration follows)
    calibration = check_calibration(ds.representative(cfg.calibration_samples), dtype) if wants_int else None
    reference = predict(model, x_test)
    others = other_outputs(model, ds, task)
    ref_acc = task.score(reference, y_test)
    float_val_acc = task.score(predict(model, x_val), y_val) if wants_int else None
    # every tolerance is measured against the model compress was given (recipe.run measured it), not this input
    source_test = ctx.reference.get("test", ref_acc)
    source_val = ctx.reference.get("val" if len(ds.x_val) else "test", float_val_acc)
    # a QAT model's float artifacts come from its float twin (real float ops, not fake-quant); int8 from the QAT
    float_model = ctx.float_twin[1] if ctx.float_twin and ctx.float_twin[0] is model else model
    # Built once, on first use: the fp32 TFLite (the fp32 artifact, what int8 calibrates and int8_weights
    # quantizes), the int8 TFLite and the fp32 ONNX each serve more than one artifact.
    fp32_tflite = functools.cache(lambda: tflite_bytes(float_model, "fp32"))
    int8 = functools.cache(lambda: int8_tflite(model, calibration, x_val, y_val, float_val_acc, cfg, cfg.int8_io,
                                               source_val, fp32_tflite if model is float_model else None, task))
    fp32_onnx = functools.cache(lambda: onnx_bytes(float_model, cfg.opset))
    builders = Builders(fp32_tflite, int8, fp32_onnx)
    artifacts: list[Artifact] = []
    for fmt, precision in plan(cfg):
        ctx.progress(f"{fmt} {precision}")
        path = ctx.out_dir / f"{ctx.base_name}_{precision}.{fmt}"
        info: dict = {}
        started = time.perf_counter()
        try:
            data = _build(fmt, precision, float_model, cfg, calibration, builders, x_val, y_val, info, task)
            # what this artifact cost: the first to need a shared part (fp32 TFLite, calibration) pays for it
            info["convert_seconds"] = round(time.perf_counter() - started, 3)
            atomic.write_bytes(path, data)
        except Exception as e:  # noqa: BLE001 — one format failing never aborts the others
            artifacts.append(failed(ctx, path, fmt, precision, e, info))
            continue
        try:
            par = parity(path, fmt, x_test, y_test, reference, task, others)
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
        # without labels y holds the source's own top-1 or outputs (source_test is 1.0): the drop is then fidelity's
        score = par["score"]
        classification = task.name == "classification"
        par["source_accuracy"] = round(source_test, 6) if classification else None  # the model compress was given
        par["input_accuracy"] = round(ref_acc, 6) if classification else None  # the model this stage converted
        par["accuracy_drop"] = round(task.drop(source_test, score), 6) if classification or not labelled else None
        par["source_score"], par["drop"] = round(source_test, 6), round(task.drop(source_test, score), 6)
        if precision in QUANTIZED:
            _tolerance(par, cfg, f"{fmt} {precision}", task)
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
           info: dict, task=None) -> bytes:
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
                    tflite_bytes(float_model, precision, calibration, cfg.int8_io, per_channel=cfg.per_channel))
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
                                             calibration, x_val, y_val, cfg.opset, task, cfg.per_channel)
    elif precision == "u8s8":
        data = u8s8(built.fp32_onnx(), calibration)
    else:
        data = built.fp32_onnx()
    if fmt == "tflite" and cfg.strip_strings:
        data = strip_strings(data)
    if fmt == "tflite" and cfg.strip_metadata:
        data = strip_metadata(data)
    if fmt == "tflite" and cfg.share_empty_buffers:
        data = share_empty_buffers(data)
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


def _tolerance(par: dict, cfg: ConvertConfig, what: str, task) -> None:
    drop = par["drop"]
    par["within_tolerance"] = bool(drop <= cfg.max_accuracy_drop)
    if drop > cfg.max_accuracy_drop:
        if task.name == "classification":
            par["verdict"] = (f"TOLERANCE NOT MET: {what} is {100 * drop:.2f} points of top-1 under the source model "
                              f"on the test split (allowed {100 * cfg.max_accuracy_drop:.2f})")
        elif task.metric.name == "agreement":
            par["verdict"] = (f"TOLERANCE NOT MET: {what} is {100 * drop:.2f} points of top-1 agreement under the "
                              f"source model on the test split (allowed {100 * cfg.max_accuracy_drop:.2f})")
        else:
            worse = "over" if task.metric.lower_is_better else "under"
            par["verdict"] = (f"TOLERANCE NOT MET: {what} is {drop:.4f} {task.metric.name} {worse} the source model "
                              f"on the test split (allowed {cfg.max_accuracy_drop:.4f})")
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
