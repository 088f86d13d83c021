"""The one TFLite and ONNX reader: ops, tensors, dtypes, constants and precision of the compressed tiny model."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.core import graph

# The tiny digits CNN (tests/conftest.py): 8×8×1 → Conv 3×3×8 (BN folded) → Flatten → Dense 10 → softmax.
CONV_W, DENSE_W = 3 * 3 * 1 * 8, 8 * 8 * 8 * 10


def _path(compressed, precision, fmt="tflite"):
    out, manifest = compressed
    return out / next(a.path for a in manifest.artifacts if a.precision == precision and a.format == fmt)


@pytest.mark.parametrize("precision, weight_dtype", [("fp32", "float32"), ("fp16", "float16"), ("int8", "int8")])
def test_tflite_ops_name_their_tensors(compressed, precision, weight_dtype):
    g = graph.read(_path(compressed, precision), "tflite")
    conv = next(op for op in g.main.ops if op.type == "CONV_2D")
    weights = g.main.tensors[conv.inputs[1]]
    if precision == "fp16":  # fp16 weights reach the conv through a DEQUANTIZE of a constant
        deq = next(op for op in g.main.ops if op.outputs == (conv.inputs[1],))
        assert deq.type == "DEQUANTIZE"
        weights = g.main.tensors[deq.inputs[0]]

    assert (weights.dtype, weights.const, weights.elems) == (weight_dtype, True, CONV_W)
    assert g.main.tensors[conv.outputs[0]].shape == (1, 8, 8, 8)  # batch-1
    assert not g.main.tensors[g.main.inputs[0]].const
    assert g.precision() == precision


def test_tflite_constants_hold_the_weights(compressed):
    arrays = graph.read(_path(compressed, "int8"), "tflite").constants()

    sizes = sorted(a.size for a in arrays if a.dtype == np.int8)
    assert sizes[-2:] == [CONV_W, DENSE_W]
    assert all(a.flags.c_contiguous for a in arrays)


def test_onnx_reads_shapes_on_request_and_from_bytes(compressed):
    path = _path(compressed, "fp32", "onnx")
    plain, inferred = graph.read(path, "onnx"), graph.read_onnx(path, shapes=True)
    conv = next(op for op in inferred.main.ops if op.type == "Conv")

    assert inferred.main.tensors[conv.outputs[0]].shape == (1, 8, 8, 8)
    assert conv.outputs[0] not in plain.main.tensors  # an activation: known only after shape inference
    assert inferred.main.tensors[conv.inputs[1]].const and "kernel_shape" in conv.attrs
    assert graph.read_onnx(path.read_bytes()).main.inputs == plain.main.inputs
    assert plain.precision() == "fp32"
    assert sum(a.size for a in plain.constants()) >= CONV_W + DENSE_W


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="no graph reader"):
        graph.read("model.keras", "keras")
