"""Accuracy-aware full-integer int8: quantize, and if top-1 on the validation split drops more than allowed,
rank ops by quantization error with LiteRT's QuantizationDebugger (RMSE / scale of each op's output against
its float twin), keep the worst ones in float (denylisted nodes) and try again — until the drop is within
tolerance or no candidate is left. The artifact's info records the sensitivity table, the ops kept float and
every trial; a tolerance that cannot be met is said plainly (and logged), never passed over.

Calibration runs once, on the fp32 flatbuffer the fp32 artifact is made of; each trial only re-quantizes the
calibrated model (``mlir_quantize``, the step the converter and the debugger both use)."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgeopt.core.inputs import Inputs, ordered

log = logging.getLogger(__name__)

SENSITIVITY_ROWS = 50  # rows of the table kept in the manifest (worst first)
UNIFORM_NOISE = 1 / np.sqrt(12)  # RMSE/scale of pure rounding noise: ops near it are quantized as well as they can be


def is_quantization_aware(model) -> bool:
    layers = getattr(model, "layers", [])
    return any(type(layer).__name__.startswith("Quantize") for layer in layers)


def trial_counts(n: int, cap: int | None = None) -> list[int]:
    """How many of the worst of ``n`` ops to keep float in successive trials: 1, 2, 3, 4, 6, 9, 13, ... then all but
    one. Never all ``n``: that file is the float model with int8 inputs and outputs, larger and slower than the fp32
    artifact (a block-pruned residual net's search ended there, 0.62× the fp32 p50), so a tolerance only it meets
    is reported as not met."""
    limit = min(n - 1, cap) if cap else n - 1
    if limit < 1:
        return []
    counts, k = [], 1
    while k < limit:
        counts.append(k)
        k = k + 1 if k < 4 else k + k // 2
    return [*counts, limit]


def input_order(tflite: bytes) -> list[str]:
    """The signature names of a TFLite model's inputs, in the order of its input tensors."""
    from edgeopt.runtimes.litert import interpreter_class

    interp = interpreter_class()[0](model_content=tflite)
    sig = next(iter((getattr(interp, "_get_full_signature_list", lambda: {})() or {}).values()), {})
    by_index = {i: name for name, i in (sig.get("inputs") or {}).items()}
    return [by_index[d["index"]] for d in interp.get_input_details()]


class Calibrated:
    """A float TFLite model calibrated once on ``samples``; ``quantize`` emits int8 flatbuffers from it.

    ``float_tflite`` gives the float flatbuffer to calibrate: the fp32 artifact's own bytes, so an int8 artifact
    costs one calibration pass and a re-quantize, not a second Keras → TFLite conversion (the converter's int8
    path converts the model again only to calibrate that same float graph). The debug model QuantizationDebugger
    ranks ops with is built only when the search needs the ranking. ``per_channel`` False: one weight scale per
    tensor (mlir_quantize's disable_per_channel), in the artifacts and in the debug model that ranks ops alike."""

    def __init__(self, float_tflite: Callable[[], bytes], samples: np.ndarray, debug_samples: int = 64,
                 per_channel: bool = True) -> None:
        self._float = float_tflite
        self._samples = samples
        self._debug_samples = debug_samples
        self._per_channel = per_channel
        self._calibrated: bytes | None = None
        self._debugger = None

    def _dataset(self, n: int | None = None):
        samples = self._samples if n is None else self._samples[:n]
        # several inputs: in the flatbuffer's input order (by name, as TFLite sorts them), which the calibrator and
        # QuantizationDebugger feed by position
        names = input_order(self._float()) if isinstance(samples, Inputs) else None

        def gen():
            for i in range(len(samples)):
                yield ordered(samples[i : i + 1], names)

        return gen

    @property
    def calibrated_model(self) -> bytes:
        """The float model with each tensor's calibrated range (what the converter's calibrate-only mode returns)."""
        if self._calibrated is None:
            from tensorflow.lite.python.optimize import calibrator

            model = calibrator.add_intermediate_tensors(self._float())
            self._calibrated = calibrator.Calibrator(model).calibrate(self._dataset())
        return self._calibrated

    @property
    def debugger(self):
        if self._debugger is None:
            import tensorflow as tf
            from tensorflow.lite.python.convert import mlir_quantize

            # the instrumented model QuantizationDebugger builds from a converter (NumericVerify after each op)
            debug_model = mlir_quantize(self.calibrated_model, enable_numeric_verify=True,
                                        disable_per_channel=not self._per_channel)
            self._debugger = tf.lite.experimental.QuantizationDebugger(
                quant_debug_model_content=debug_model, debug_dataset=self._dataset(self._debug_samples))
        return self._debugger

    def quantize(self, denylist: tuple[str, ...] | list[str] = (), io_type: str = "int8") -> bytes:
        import tensorflow as tf
        from tensorflow.lite.python.convert import mlir_quantize  # the converter's own quantize step

        dtype = tf.int8 if io_type == "int8" else tf.float32
        return mlir_quantize(self.calibrated_model, input_data_type=dtype, output_data_type=dtype,
                             denylisted_nodes=list(denylist) or None, disable_per_channel=not self._per_channel)

    def sensitivity(self) -> list[dict]:
        """Per quantized op: RMSE/scale and friends, worst first (QuantizationDebugger.layer_statistics_dump)."""
        dbg = self.debugger
        dbg.run()
        buf = io.StringIO()
        dbg.layer_statistics_dump(buf)
        buf.seek(0)
        rows = []
        for r in csv.DictReader(buf):
            scale = float(r["scale"]) or float("nan")
            mse = float(r["mean_squared_error"])
            rows.append({"op": r["op_name"], "tensor": r["tensor_name"],
                         "rmse_over_scale": round(float(np.sqrt(mse) / scale), 4),
                         "mean_error": float(f"{float(r['mean_error']):.4g}"),
                         "max_abs_error": float(f"{float(r['max_abs_error']):.4g}"),
                         "scale": float(f"{float(r['scale']):.4g}")})
        rows.sort(key=lambda row: -np.nan_to_num(row["rmse_over_scale"], nan=-1.0))
        return rows


@dataclass
class Int8Result:
    data: bytes
    info: dict
    float_io: Callable[[], bytes]  # the same quantization with float input/output (for the ONNX path)
    denylist: list[str] = field(default_factory=list)


def search(calibrated: Calibrated, x_val: np.ndarray, y_val: np.ndarray, float_accuracy: float,
           max_drop: float, io_type: str, max_float_ops: int | None,
           source_accuracy: float | None = None, task=None) -> Int8Result:
    """``source_accuracy``: the val top-1 the drop is measured against (the model compress was given);
    ``float_accuracy``, the float model's own, when None."""
    from edgeopt.runtimes import evaluate

    target = float_accuracy if source_accuracy is None else source_accuracy
    plain = calibrated.quantize((), io_type)
    acc = evaluate.accuracy(plain, "tflite", x_val, y_val, task)
    info = {"float_val_accuracy": round(float_accuracy, 6), "source_val_accuracy": round(target, 6),
            "int8_val_accuracy": round(acc, 6), "plain_int8_val_accuracy": round(acc, 6), "kept_float": [],
            "max_accuracy_drop": max_drop}
    if target - acc <= max_drop:
        info.update(search="not needed: plain int8 is within tolerance on the validation split", met=True)
        return Int8Result(plain, info, lambda: calibrated.quantize((), "float"))
    if target - float_accuracy > max_drop:  # keeping ops float cannot beat the float model itself
        info.update(met=False, search=f"TOLERANCE NOT MET: the float model is already {target - float_accuracy:.4f} "
                                      f"top-1 under the source on the validation split (allowed {max_drop:.4f}); "
                                      "no int8 search")
        log.warning("int8: %s", info["search"])
        return Int8Result(plain, info, lambda: calibrated.quantize((), "float"))
    table = calibrated.sensitivity()
    order = [row["tensor"] for row in table]
    trials = [{"float_ops": 0, "val_accuracy": round(acc, 6)}]
    best = (acc, 0, plain)
    met = False
    for k in trial_counts(len(order), max_float_ops):
        data = calibrated.quantize(order[:k], io_type)
        acc_k = evaluate.accuracy(data, "tflite", x_val, y_val, task)
        trials.append({"float_ops": k, "val_accuracy": round(acc_k, 6)})
        log.info("int8 search: %d op(s) float → val top-1 %.4f (float %.4f)", k, acc_k, float_accuracy)
        if acc_k > best[0]:
            best = (acc_k, k, data)
        if target - acc_k <= max_drop:
            best, met = (acc_k, k, data), True
            break
    acc, k, data = best
    kept = [{"op": row["op"], "tensor": row["tensor"], "rmse_over_scale": row["rmse_over_scale"]} for row in table[:k]]
    info.update(int8_val_accuracy=round(acc, 6), kept_float=kept, trials=trials, met=met,
                sensitivity=table[:SENSITIVITY_ROWS], sensitivity_metric="rmse_over_scale (rounding alone ≈ 0.289)")
    if met:
        info["search"] = f"kept {k} of {len(order)} quantized ops in float to stay within {max_drop:.4f} top-1"
        if 2 * k > len(order):  # within tolerance, but mostly a float model: its speed is not int8's
            info["search"] += " — most of the model runs in float: compare its p50 with the fp32 artifact's"
            log.warning("int8: %s", info["search"])
    else:
        tried = trials[-1]["float_ops"]
        info["search"] = (f"TOLERANCE NOT MET: best int8 drops {target - acc:.4f} top-1 on the validation "
                          f"split (allowed {max_drop:.4f}) after keeping up to {tried} of {len(order)} ops float "
                          f"(at least one stays int8); kept the most accurate trial ({k} float ops)")
        log.warning("int8: %s", info["search"])
    denylist = order[:k]
    return Int8Result(data, info, lambda: calibrated.quantize(denylist, "float"), denylist)
