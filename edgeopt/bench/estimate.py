"""Latency estimate for a target we cannot time: a per-op cost model read from the artifact's graph.

Every op of a .tflite or .onnx file becomes an ``OpCost`` (class, dtype, MACs, bytes moved). A target's
``calibration`` (targets/*.yaml) gives an effective throughput per op class and dtype (GMAC/s), a memory
bandwidth and a per-op dispatch overhead; an op costs ``max(MACs / throughput, bytes / bandwidth)``
plus the overhead (a roofline per op), and the estimate is the sum. The numbers are calibrated against
published figures (see ``benchmarks/estimator.py``); an estimate is labelled ``estimated`` wherever it
is shown and is never mixed with measured samples.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgeopt.core import graph

log = logging.getLogger(__name__)

OP_CLASSES = ("conv", "depthwise", "dense", "elementwise")
DTYPES = ("fp32", "int8", "dynamic", "fp16", "int16")
# What a runtime computes a dtype with when the calibration has no number for it: XNNPACK runs fp16-stored
# weights in fp32 on CPUs without fp16 arithmetic, dynamic-range models as int8 GEMMs on quantized activations.
DTYPE_FALLBACK = {"fp16": "fp32", "int16": "fp32", "dynamic": "int8", "int8": "fp32"}

_TFLITE_FREE = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "SHAPE"}
_TFLITE_CLASS = {"CONV_2D": "conv", "CONV_3D": "conv", "TRANSPOSE_CONV": "conv", "DEPTHWISE_CONV_2D": "depthwise",
                 "FULLY_CONNECTED": "dense", "BATCH_MATMUL": "dense"}
# graph dtype -> (cost-model dtype, bytes per element); anything else is costed as fp32
_TFLITE_DTYPES = {"float32": ("fp32", 4), "float16": ("fp16", 2), "int8": ("int8", 1), "uint8": ("int8", 1),
                  "int16": ("int16", 2), "int32": ("int32", 4), "int64": ("int64", 8), "bool": ("bool", 1)}
_ONNX_DTYPES = {k: v for k, v in _TFLITE_DTYPES.items() if k != "bool"}
_ONNX_FREE = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Shape", "Constant", "Identity", "Cast"}


@dataclass(frozen=True)
class OpCost:
    op: str  # the graph's own op name: CONV_2D, Conv, ...
    op_class: str  # conv | depthwise | dense | elementwise | free
    dtype: str  # fp32 | int8 | dynamic | fp16 | int16
    macs: int  # multiply-accumulates (elementwise ops: output elements × window)
    bytes: int  # activations read + weights read + outputs written


@dataclass
class Estimate:
    ms: float
    ops: int
    macs: int
    bytes: int
    by_class_ms: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"ms": round(self.ms, 4), "ops": self.ops, "macs": self.macs, "bytes": self.bytes,
                "by_class_ms": {k: round(v, 4) for k, v in self.by_class_ms.items()}, "notes": self.notes}


def graph_ops(path: str | Path, fmt: str) -> list[OpCost]:
    """The ops of a TFLite or ONNX artifact with their MACs, bytes and dtypes (batch 1)."""
    if fmt == "tflite":
        return tflite_ops(Path(path))
    if fmt == "onnx":
        return onnx_ops(Path(path))
    raise ValueError(f"no cost model for format {fmt!r} (tflite and onnx have one)")


def summarize(ops: list[OpCost]) -> dict[str, dict[str, int]]:
    """Per op class: count, MACs and bytes — what the report and the benchmark print."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: {"ops": 0, "macs": 0, "bytes": 0})
    for o in ops:
        s = out[f"{o.op_class}/{o.dtype}"]
        s["ops"] += 1
        s["macs"] += o.macs
        s["bytes"] += o.bytes
    return dict(sorted(out.items()))


# --- TFLite -------------------------------------------------------------------------------------------

def tflite_ops(path: Path) -> list[OpCost]:
    sg = graph.read_tflite(Path(path).read_bytes()).main
    info = _tensor_info(sg, _TFLITE_DTYPES)
    ops = []
    for op in sg.ops:
        name, ins, outs = op.type, list(op.inputs), list(op.outputs)
        if name == "DEQUANTIZE" and ins and sg.tensors[ins[0]].const:
            continue  # fp16/int8 weights expanded once at load time, not per inference
        nbytes = sum(info(t)[2] for t in ins + outs)
        out_shape = info(outs[0])[0] if outs else [1]
        out_elems = int(np.prod(out_shape))
        act_dtype = info(ins[0])[1] if ins else "fp32"
        w_dtype = info(ins[1])[1] if len(ins) > 1 else act_dtype
        dtype = _compute_dtype(act_dtype, w_dtype)
        heavy = graph.tflite_op_macs(sg, op)  # conv / depthwise / dense: the graph reader's MAC count
        if heavy is not None:
            macs, cls = heavy, _TFLITE_CLASS[name]
            if name == "TRANSPOSE_CONV":  # inputs: output shape, weights, activations
                dtype = _compute_dtype(info(ins[2])[1], info(ins[1])[1])
        elif name in _TFLITE_FREE:
            macs, cls, nbytes = 0, "free", 0
        else:
            window = max(int(np.prod(op.attrs.get("filter", (1, 1)))), 1) if "POOL" in name else 1
            if name == "MEAN" and ins:
                window = max(int(np.prod(info(ins[0])[0])) // max(out_elems, 1), 1)
            macs, cls, dtype = out_elems * window, "elementwise", act_dtype if act_dtype in DTYPES else "fp32"
        ops.append(OpCost(name, cls, dtype, int(macs), int(nbytes)))
    return ops


def _tensor_info(sg: graph.Subgraph, dtypes: dict[str, tuple[str, int]]):
    """tensor key -> (batch-1 shape, cost dtype, bytes); an unknown tensor reads as one fp32 element."""

    def info(key) -> tuple[list[int], str, int]:
        t = sg.tensors.get(key)
        if t is None:
            return [1], "fp32", 4
        dtype, size = dtypes.get(t.dtype, ("fp32", 4))
        return list(t.shape), dtype, t.elems * size

    return info


def _compute_dtype(act: str, weight: str) -> str:
    if act == "int8":
        return "int8"
    if act == "int16":
        return "int16"
    if weight == "int8":
        return "dynamic"  # float activations, int8 weights
    return "fp16" if weight == "fp16" else "fp32"


# --- ONNX ---------------------------------------------------------------------------------------------

def onnx_ops(path: Path) -> list[OpCost]:
    sg = graph.read_onnx(path, shapes=True).main
    get = _tensor_info(sg, _ONNX_DTYPES)
    producer = {o: n for n in sg.ops for o in n.outputs}

    def const(name: str) -> bool:
        return name in sg.tensors and sg.tensors[name].const

    def quantized(name: str) -> bool:  # QDQ graphs: ORT fuses DQ → Conv → Q into an int8 kernel
        n = producer.get(name)
        return n is not None and n.type == "DequantizeLinear" and not const(n.inputs[0])

    ops = []
    for n in sg.ops:
        ins = list(n.inputs)
        if n.type == "Constant" or (n.type in ("DequantizeLinear", "QuantizeLinear") and const(ins[0])):
            continue
        nbytes = sum(get(i)[2] for i in ins) + sum(get(o)[2] for o in n.outputs)
        out_shape = get(n.outputs[0])[0]
        out_elems = int(np.prod(out_shape))
        act = get(ins[0])[1] if ins else "fp32"
        if n.type in ("Conv", "ConvInteger", "QLinearConv", "ConvTranspose"):
            wi = 3 if n.type == "QLinearConv" else 1
            w = get(ins[wi])[0]
            group = n.attrs.get("group", 1)
            cls = "depthwise" if group > 1 and len(w) > 1 and w[1] == 1 else "conv"
            macs = graph.onnx_op_macs(sg, n)
            dtype = "int8" if n.type != "Conv" or quantized(ins[0]) else _compute_dtype(act, get(ins[wi])[1])
        elif n.type in ("Gemm", "MatMul", "MatMulInteger", "QLinearMatMul"):
            macs, cls = graph.onnx_op_macs(sg, n), "dense"
            dtype = "int8" if n.type != "Gemm" and n.type != "MatMul" or quantized(ins[0]) else \
                _compute_dtype(act, get(ins[1])[1])
        elif n.type in _ONNX_FREE:
            macs, cls, dtype, nbytes = 0, "free", act, 0
        else:
            window = 1
            if n.type in ("MaxPool", "AveragePool"):
                window = int(np.prod(n.attrs.get("kernel_shape", [1])))
            elif n.type in ("GlobalAveragePool", "ReduceMean") and ins:
                window = max(int(np.prod(get(ins[0])[0])) // max(out_elems, 1), 1)
            macs, cls = out_elems * window, "elementwise"
            dtype = "int8" if n.type.startswith("QLinear") else act if act in DTYPES else "fp32"
        ops.append(OpCost(n.type, cls, dtype, int(macs), int(nbytes)))
    return ops


# --- cost model ---------------------------------------------------------------------------------------

class CalibrationPoint(BaseModel):
    """A published latency the cost model is checked against."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    model: str  # mobilenet_v1 | mobilenet_v2 (what benchmarks/estimator.py builds)
    precision: Literal["fp32", "int8"]
    ms: float = Field(gt=0)
    source: str = Field(min_length=1)


class Calibration(BaseModel):
    """The estimator's cost model for one target; every number names its source in ``sources``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    threads: int = Field(ge=1)  # the thread count the throughputs hold for
    gmacs: dict[str, dict[str, float]]  # op class → dtype → effective GMAC/s
    bandwidth_gbs: float = Field(gt=0)  # effective memory bandwidth for memory-bound ops
    op_overhead_us: float = Field(0.0, ge=0)  # dispatch cost per op
    invoke_overhead_us: float = Field(0.0, ge=0)  # fixed cost per inference
    sources: dict[str, str]  # "gmacs.conv", "bandwidth_gbs", ... → where that number comes from
    points: tuple[CalibrationPoint, ...] = ()
    proxy: str | None = None  # set when the numbers are scaled from another device: how, and why

    @model_validator(mode="after")
    def _check(self) -> Calibration:
        if "conv" not in self.gmacs or "fp32" not in self.gmacs["conv"]:
            raise ValueError("gmacs needs at least conv: {fp32: ...}")
        for cls, table in self.gmacs.items():
            if cls not in OP_CLASSES:
                raise ValueError(f"unknown op class '{cls}' in gmacs (use {', '.join(OP_CLASSES)})")
            for dtype, v in table.items():
                if dtype not in DTYPES:
                    raise ValueError(f"unknown dtype '{dtype}' in gmacs.{cls} (use {', '.join(DTYPES)})")
                if not v > 0:
                    raise ValueError(f"gmacs.{cls}.{dtype} must be > 0, got {v}")
        needed = [f"gmacs.{c}" for c in self.gmacs] + ["bandwidth_gbs"]
        needed += [k for k in ("op_overhead_us", "invoke_overhead_us") if getattr(self, k)]
        missing = [k for k in needed if not self.sources.get(k)]
        if missing:
            raise ValueError(f"sources must say where each number comes from; missing {', '.join(missing)}")
        return self


def throughput_gmacs(cal: Calibration, op_class: str, dtype: str, notes: list[str] | None = None) -> float:
    """Effective GMAC/s for an op class and dtype, walking DTYPE_FALLBACK when the calibration has no number."""
    table = cal.gmacs.get(op_class) or cal.gmacs.get("conv") or {}
    seen, d = [], dtype
    while d not in table:
        seen.append(d)
        d = DTYPE_FALLBACK.get(d, "fp32")
        if d in seen:
            raise ValueError(f"calibration has no {op_class} throughput for {dtype} or a fallback")
    if d != dtype and notes is not None:
        note = f"{op_class}/{dtype} timed as {d} (no calibrated number for {dtype})"
        if note not in notes:
            notes.append(note)
    return float(table[d])


def estimate_ops(ops: list[OpCost], cal: Calibration, threads: int | None = None, cores: int | None = None) -> Estimate:
    """Sum of per-op rooflines for a ``Calibration`` at ``threads`` threads.

    Throughputs are for ``cal.threads`` threads and scale linearly with fewer (compute is split across
    cores); memory bandwidth is shared and does not scale.
    """
    notes: list[str] = []
    usable = min(threads or cal.threads, cores or cal.threads)
    scale = usable / cal.threads
    if scale != 1:
        notes.append(f"throughput scaled ×{scale:.2f} for {usable} of the {cal.threads} calibrated threads")
    total_s = cal.invoke_overhead_us * 1e-6
    by_class: dict[str, float] = defaultdict(float)
    macs = nbytes = counted = 0
    for o in ops:
        if o.op_class == "free":
            continue
        compute_s = o.macs / (throughput_gmacs(cal, o.op_class, o.dtype, notes) * 1e9 * scale)
        memory_s = o.bytes / (cal.bandwidth_gbs * 1e9)
        op_s = max(compute_s, memory_s) + cal.op_overhead_us * 1e-6
        by_class[o.op_class] += op_s * 1e3
        total_s += op_s
        macs += o.macs
        nbytes += o.bytes
        counted += 1
    return Estimate(ms=total_s * 1e3, ops=counted, macs=macs, bytes=nbytes, by_class_ms=dict(by_class), notes=notes)


def estimate_artifact(path: str | Path, fmt: str, target, threads: int | None = None) -> Estimate:
    """Estimated single-inference latency (ms) of one artifact on ``target`` (which must have a calibration)."""
    cal = target.calibration
    if cal is None:
        raise ValueError(f"target {target.name} has no calibration to estimate with")
    return estimate_ops(graph_ops(path, fmt), cal, threads=threads or target.threads, cores=target.cores)


def estimate_items(items, target) -> dict[str, float]:
    """Artifact name → estimated ms on ``target`` for every TFLite/ONNX artifact in ``items`` (errors skipped)."""
    out = {}
    for artifact, path in items:
        if artifact.format in ("tflite", "onnx"):
            try:
                out[artifact.name] = round(estimate_artifact(path, artifact.format, target).ms, 3)
            except Exception as e:  # noqa: BLE001 — informational only
                log.debug("no estimate for %s: %s", artifact.name, e)
    return out
