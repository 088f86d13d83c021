"""The one reader of artifact graphs: TFLite flatbuffers and ONNX protobufs, read without running them.

A ``Graph`` holds what the rest of edgeopt asks of a file's structure: its ops (type, input and output
tensors, the attributes cost models need), its tensors (dtype, batch-1 shape, whether they are constant
data), its constant arrays and the precision they add up to. Precision detection, parameter counts and
the latency estimator all read through here.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# Dtypes with a numpy equivalent: what constants are read as (bool and strings are not parameters).
NUMERIC = ("float32", "float16", "int8", "uint8", "int16", "int32", "int64")
_QUANTIZED_ONNX_OPS = {"QuantizeLinear", "QLinearConv", "QLinearMatMul", "DynamicQuantizeLinear", "ConvInteger",
                       "MatMulInteger"}


@dataclass(frozen=True)
class Tensor:
    dtype: str  # numpy's name: float32, float16, int8, uint8, int16, int32, int64, bool, ... (TFLite/ONNX's own if none)
    shape: tuple[int, ...]  # batch-1: unknown or dynamic dims read as 1; () reads as (1,)
    const: bool  # holds data in the file (weights, biases), not an activation
    scales: int = 0  # quantization scales stored (TFLite): 0 none, 1 per tensor, one per channel otherwise

    @property
    def elems(self) -> int:
        return int(np.prod(self.shape))


@dataclass(frozen=True)
class Op:
    type: str  # the format's own name: CONV_2D, Conv, ...
    inputs: tuple[Hashable, ...]  # tensor keys (TFLite: indices; ONNX: names); absent optional inputs dropped
    outputs: tuple[Hashable, ...]
    attrs: dict[str, Any] = field(default_factory=dict)  # ONNX: every attribute; TFLite pools: filter (h, w)


@dataclass(frozen=True)
class Subgraph:
    tensors: dict[Hashable, Tensor]
    ops: tuple[Op, ...]
    inputs: tuple[Hashable, ...]
    outputs: tuple[Hashable, ...]


@dataclass(frozen=True)
class Graph:
    format: str  # tflite | onnx
    subgraphs: tuple[Subgraph, ...]  # ONNX: the main graph only
    _source: Any = field(repr=False, compare=False)  # the parsed file, for constants()

    @property
    def main(self) -> Subgraph:
        return self.subgraphs[0]

    def constants(self) -> list[np.ndarray]:
        """Constant arrays (weights, biases, shapes), each stored buffer once."""
        return _tflite_constants(*self._source) if self.format == "tflite" else _onnx_constants(self._source)

    def precision(self) -> str:
        """fp32 | fp16 | int8 | dynamic | int8_weights | int16x8 (TFLite), fp32 | fp16 | int8 | u8s8 (ONNX), from
        the tensors' dtypes and the ops that consume them."""
        return _tflite_precision(self) if self.format == "tflite" else _onnx_precision(self)

    def macs(self) -> int:
        """Multiply-accumulates of one batch-1 inference in the main subgraph's conv, depthwise, transposed conv
        and fully-connected / matmul ops (the ops that make a CNN's cost; elementwise ops are not counted)."""
        sg = self.main
        count = tflite_op_macs if self.format == "tflite" else onnx_op_macs
        return int(sum(count(sg, op) or 0 for op in sg.ops))


def read(path: str | Path, fmt: str) -> Graph:
    """The graph of a .tflite or .onnx file; ValueError for any other format."""
    if fmt == "tflite":
        return read_tflite(Path(path).read_bytes())
    if fmt == "onnx":
        return read_onnx(path)
    raise ValueError(f"no graph reader for format {fmt!r} (tflite and onnx have one)")


# --- TFLite -------------------------------------------------------------------------------------------

def read_tflite(data: bytes) -> Graph:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(data, 0)
    dtypes = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}

    def has_data(b: int) -> bool:
        return b > 0 and (model.Buffers(b).DataLength() > 0 or model.Buffers(b).Size() > 0)

    subgraphs = []
    for s in range(model.SubgraphsLength()):
        sg = model.Subgraphs(s)
        tensors = {}
        for t in range(sg.TensorsLength()):
            tensor = sg.Tensors(t)
            shape = tuple(max(int(d), 1) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else (1,)
            quant = tensor.Quantization()
            tensors[t] = Tensor(dtypes.get(tensor.Type(), str(tensor.Type())), shape, has_data(tensor.Buffer()),
                                quant.ScaleLength() if quant is not None else 0)
        ops = []
        for i in range(sg.OperatorsLength()):
            op = sg.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            name = op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
            ins = tuple(int(t) for t in op.InputsAsNumpy() if t >= 0) if op.InputsLength() else ()
            outs = tuple(int(t) for t in op.OutputsAsNumpy()) if op.OutputsLength() else ()
            ops.append(Op(name, ins, outs, _tflite_attrs(op, schema)))
        ins = tuple(int(t) for t in sg.InputsAsNumpy()) if sg.InputsLength() else ()
        outs = tuple(int(t) for t in sg.OutputsAsNumpy()) if sg.OutputsLength() else ()
        subgraphs.append(Subgraph(tensors, tuple(ops), ins, outs))
    return Graph("tflite", tuple(subgraphs), (model, data))


def _op_shapes(sg: Subgraph, op: Op):
    """(input i → its shape, (1,) when unknown; the first output's element count, 1 when unknown): what both
    formats' MAC counts read."""
    def shape(i: int) -> tuple[int, ...]:
        t = sg.tensors.get(op.inputs[i]) if len(op.inputs) > i else None
        return t.shape if t is not None else (1,)

    out = sg.tensors.get(op.outputs[0]) if op.outputs else None
    return shape, out.elems if out is not None else 1


def tflite_op_macs(sg: Subgraph, op: Op) -> int | None:
    """MACs of one TFLite conv / depthwise / transposed conv / fully-connected / batch-matmul op (batch 1);
    None for every other op."""
    shape, out_elems = _op_shapes(sg, op)
    if op.type in ("CONV_2D", "CONV_3D"):  # weights [out, kh, kw, in]
        return out_elems * int(np.prod(shape(1)[1:]))
    if op.type == "TRANSPOSE_CONV":  # inputs: output shape, weights [out, kh, kw, in], activations
        return int(np.prod(shape(2))) * int(np.prod(shape(1)[:3]))
    if op.type == "DEPTHWISE_CONV_2D":  # weights [1, kh, kw, channels × multiplier]
        w = shape(1)
        return out_elems * int(np.prod(w[1:3])) if len(w) >= 3 else out_elems
    if op.type == "FULLY_CONNECTED":  # weights [units, in]
        return out_elems * shape(1)[-1]
    if op.type == "BATCH_MATMUL":
        return out_elems * shape(0)[-1]
    return None


def _tflite_attrs(op, schema) -> dict[str, Any]:
    if op.BuiltinOptionsType() != schema.BuiltinOptions.Pool2DOptions:
        return {}
    try:
        opts = schema.Pool2DOptions()
        table = op.BuiltinOptions()
        opts.Init(table.Bytes, table.Pos)
        return {"filter": (opts.FilterHeight(), opts.FilterWidth())}
    except Exception:  # noqa: BLE001 — a pool without readable options reads as one without a filter size
        return {}


def _tflite_constants(model, data: bytes) -> list[np.ndarray]:
    from ai_edge_litert import schema_py_generated as schema

    dtypes = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    out, seen = [], set()
    for s in range(model.SubgraphsLength()):
        sg = model.Subgraphs(s)
        for t in range(sg.TensorsLength()):
            tensor = sg.Tensors(t)
            b, dtype = tensor.Buffer(), dtypes.get(tensor.Type())
            if b == 0 or b in seen or dtype not in NUMERIC:
                continue
            buffer = model.Buffers(b)
            if buffer.DataLength() > 0:
                raw = buffer.DataAsNumpy().tobytes()
            elif buffer.Size() > 0:  # large models keep buffers after the flatbuffer
                raw = data[buffer.Offset() : buffer.Offset() + buffer.Size()]
            else:
                continue
            seen.add(b)
            out.append(np.frombuffer(raw, dtype=dtype))
    return out


def _tflite_precision(g: Graph) -> str:
    types = {t.dtype for sg in g.subgraphs for t in sg.tensors.values()}
    if "int16" in types and "int8" in types:
        return "int16x8"
    if "int8" in types or "uint8" in types:
        # Full-integer graphs carry int8 activations into most ops; dynamic-range keeps float32 everywhere else.
        dtypes = [t.dtype for t in g.main.tensors.values()]
        n_int8 = sum(1 for d in dtypes if d in ("int8", "uint8"))
        if n_int8 > dtypes.count("float32"):
            return "int8"
        # weight-only: every int8 tensor is a constant only DEQUANTIZE reads (float compute); dynamic-range
        # (hybrid) kernels read the int8 weights themselves
        main = g.main
        int8_keys = {k for k, t in main.tensors.items() if t.dtype in ("int8", "uint8")}
        readers = {op.type for op in main.ops if int8_keys & set(op.inputs)}
        weight_only = all(main.tensors[k].const for k in int8_keys) and readers <= {"DEQUANTIZE"}
        return "int8_weights" if int8_keys and weight_only else "dynamic"
    if "float16" in types:
        return "fp16"
    return "fp32"


# --- ONNX ---------------------------------------------------------------------------------------------

def read_onnx(source: str | Path | bytes, *, shapes: bool = False, external_data: bool = True) -> Graph:
    """``shapes``: run ONNX shape inference for activation shapes (the estimator); ``external_data``: load
    weights kept beside the file (needed for constants(), not for dtypes or ops)."""
    import onnx

    if isinstance(source, bytes):
        model = onnx.load_from_string(source)
    else:
        model = onnx.load(str(source), load_external_data=external_data)
    if shapes:
        try:
            model = onnx.shape_inference.infer_shapes(model)
        except Exception as e:  # noqa: BLE001 — fall back to the shapes the file already states
            log.debug("ONNX shape inference failed for %s: %s", source if not isinstance(source, bytes) else "bytes", e)
    g = model.graph
    tensors: dict[Hashable, Tensor] = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        tt = vi.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in tt.shape.dim)
        tensors[vi.name] = Tensor(_onnx_dtype(tt.elem_type), dims or (1,), False)
    for init in g.initializer:
        tensors[init.name] = Tensor(_onnx_dtype(init.data_type), tuple(int(d) for d in init.dims) or (1,), True)
    ops = tuple(Op(n.op_type, tuple(i for i in n.input if i), tuple(n.output),
                   {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}) for n in g.node)
    sub = Subgraph(tensors, ops, tuple(i.name for i in g.input), tuple(o.name for o in g.output))
    return Graph("onnx", (sub,), model)


def onnx_op_macs(sg: Subgraph, op: Op) -> int | None:
    """MACs of one ONNX Conv / ConvTranspose / QLinearConv / ConvInteger / Gemm / MatMul op (batch 1, shapes as
    the file or shape inference state them); None for every other op."""
    shape, out_elems = _op_shapes(sg, op)
    if op.type in ("Conv", "ConvInteger", "QLinearConv", "ConvTranspose"):  # weights [out, in / group, k...]
        w = shape(3 if op.type == "QLinearConv" else 1)
        return out_elems * (int(np.prod(w[1:])) if len(w) > 1 else 1)
    if op.type in ("Gemm", "MatMul", "MatMulInteger", "QLinearMatMul"):
        a = shape(3 if op.type == "QLinearMatMul" else 0)
        return out_elems * (a[-2] if op.attrs.get("transA", 0) and len(a) > 1 else a[-1])
    return None


def _onnx_dtype(code: int) -> str:
    from onnx import TensorProto

    name = TensorProto.DataType.Name(code) if code in TensorProto.DataType.values() else str(code)
    return {"FLOAT": "float32", "DOUBLE": "float64"}.get(name, name.lower())


def _onnx_constants(model) -> list[np.ndarray]:
    from onnx import numpy_helper

    arrays = [numpy_helper.to_array(t) for t in model.graph.initializer]
    for node in model.graph.node:
        if node.op_type == "Constant":
            arrays += [numpy_helper.to_array(a.t) for a in node.attribute if a.name == "value"]
    return arrays


def _onnx_precision(g: Graph) -> str:
    if {op.type for op in g.main.ops} & _QUANTIZED_ONNX_OPS:
        return "u8s8" if _onnx_activations(g) == {"uint8"} and _onnx_weights(g) == {"int8"} else "int8"
    if any(t.const and t.dtype == "float16" for t in g.main.tensors.values()):
        return "fp16"
    return "fp32"


def _onnx_activations(g: Graph) -> set[str]:
    """Dtypes activations are quantized to: the zero points of QuantizeLinear ops on non-constant inputs
    (uint8 when the zero point is left out, as the ONNX spec defaults)."""
    sg = g.main
    out = set()
    for op in sg.ops:
        if op.type != "QuantizeLinear" or not op.inputs or (op.inputs[0] in sg.tensors and sg.tensors[op.inputs[0]].const):
            continue
        zp = sg.tensors.get(op.inputs[2]) if len(op.inputs) > 2 else None
        out.add(zp.dtype if zp is not None else "uint8")
    return out


def _onnx_weights(g: Graph) -> set[str]:
    """Dtypes of the quantized weights: constants a DequantizeLinear turns into a Conv/MatMul/Gemm's weight input."""
    sg = g.main
    dequantized = {op.outputs[0]: sg.tensors[op.inputs[0]].dtype for op in sg.ops
                   if op.type == "DequantizeLinear" and op.inputs and op.outputs and op.inputs[0] in sg.tensors
                   and sg.tensors[op.inputs[0]].const}
    return {dequantized[op.inputs[1]] for op in sg.ops
            if op.type in ("Conv", "ConvTranspose", "MatMul", "Gemm") and len(op.inputs) > 1
            and op.inputs[1] in dequantized}
