"""Precisions peers offer: weight-only int8 TFLite (int8_weights), per-tensor u8s8 ONNX, and the int8 TFLite
calibrated from the fp32 flatbuffer (one conversion, not two) — each read back through the one graph reader."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.core import graph
from edgeopt.errors import UsageError
from edgeopt.recipe import Recipe
from edgeopt.stages.convert import aiedge

needs_aiedge = pytest.mark.skipif(not aiedge.available(), reason="ai-edge-quantizer not installed (edgeopt[aiedge])")
WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


@pytest.fixture(scope="module")
def variants(tmp_path_factory, tiny_model_path, digits):
    from edgeopt.compress import compress

    tflite = ["fp32", "dynamic", "int8"] + (["int8_weights"] if aiedge.available() else [])
    out = tmp_path_factory.mktemp("variants") / "out"
    rec = Recipe.from_dict({"stages": [{"convert": {"tflite": tflite, "onnx": ["int8", "u8s8"]}}]})
    m = compress(tiny_model_path, digits, out, rec)
    return out, {(a.format, a.precision): a for a in m.artifacts if a.role == "artifact"}


def _graph(variants, fmt, precision):
    out, arts = variants
    return graph.read(out / arts[(fmt, precision)].path, fmt), arts[(fmt, precision)]


@needs_aiedge
def test_weight_only_int8_has_int8_weights_and_float_compute(variants):
    g, art = _graph(variants, "tflite", "int8_weights")
    sg = g.main
    assert g.precision() == "int8_weights"
    producer = {out: op for op in sg.ops for out in op.outputs}
    kernels = [op for op in sg.ops if op.type in WEIGHTED]
    assert kernels
    for op in kernels:
        assert sg.tensors[op.inputs[0]].dtype == "float32" and sg.tensors[op.outputs[0]].dtype == "float32"
        deq = producer[op.inputs[1]]  # the weight comes from an int8 constant through DEQUANTIZE
        assert deq.type == "DEQUANTIZE" and sg.tensors[deq.inputs[0]].dtype == "int8"
        assert sg.tensors[deq.inputs[0]].const
    fp32 = variants[1][("tflite", "fp32")]
    assert art.size_bytes < 0.5 * fp32.size_bytes
    par = art.info["parity"]
    assert par["agreement"] >= 0.99 and 0 < par["max_abs_diff"] < 0.1 and par["within_tolerance"] is True
    assert art.info["convert_seconds"] >= 0


def test_dynamic_range_reads_as_hybrid_not_weight_only(variants):
    g, art = _graph(variants, "tflite", "dynamic")
    sg = g.main
    # the hybrid kernel reads the int8 weights itself (the converter leaves weights under 1024 values float)
    hybrid = [op for op in sg.ops if op.type in WEIGHTED and sg.tensors[op.inputs[1]].dtype == "int8"]
    assert hybrid and all(sg.tensors[op.outputs[0]].dtype == "float32" for op in hybrid)
    assert g.precision() == "dynamic"


def test_u8s8_onnx_is_qdq_with_uint8_activations_and_per_tensor_int8_weights(variants):
    g, art = _graph(variants, "onnx", "u8s8")
    sg = g.main
    assert g.precision() == "u8s8"
    quantize = [op for op in sg.ops if op.type == "QuantizeLinear"]
    assert quantize and {sg.tensors[op.inputs[2]].dtype for op in quantize} == {"uint8"}
    dequantized = {op.outputs[0]: op for op in sg.ops if op.type == "DequantizeLinear"}
    convs = [op for op in sg.ops if op.type in ("Conv", "MatMul", "Gemm")]
    assert convs
    for op in convs:
        deq = dequantized[op.inputs[1]]
        assert sg.tensors[deq.inputs[0]].dtype == "int8" and sg.tensors[deq.inputs[1]].elems == 1  # one scale
    par = art.info["parity"]
    assert par["agreement"] >= 0.95 and "within_tolerance" in par
    # the existing ONNX int8 keeps its own reading (int8 activations)
    assert _graph(variants, "onnx", "int8")[0].precision() == "int8"


def test_int8_calibrated_from_the_fp32_flatbuffer_matches_the_converter(tiny_model_path, digits):
    """The int8 artifact is now calibrated on the fp32 artifact's flatbuffer: same outputs as the converter's own
    int8 path (which converts the model a second time to calibrate it)."""
    from edgeopt.models.load import load_model
    from edgeopt.runtimes import evaluate
    from edgeopt.stages.convert import check_calibration, tflite_bytes
    from edgeopt.stages.convert.int8_search import Calibrated

    model = load_model(tiny_model_path)
    model = getattr(model, "model", model)
    calibration = check_calibration(digits.representative(64))
    by_converter = tflite_bytes(model, "int8", calibration)
    ours = Calibrated(lambda: tflite_bytes(model, "fp32"), calibration).quantize()
    a, b = (evaluate.outputs(data, "tflite", digits.x_test) for data in (by_converter, ours))
    assert np.array_equal(a, b)
    assert graph.read_tflite(ours).precision() == "int8"


def test_recipe_parses_the_new_names_and_refuses_unknown_ones():
    cfg = Recipe.from_dict({"stages": [{"convert": {"tflite": ["int8_weights"], "onnx": ["u8s8"]}}]})
    name, convert = cfg.stages[0]
    assert name == "convert" and convert.tflite == ["int8_weights"] and convert.onnx == ["u8s8"]
    for bad in ({"tflite": ["weight_only"]}, {"onnx": ["uint8"]}):
        with pytest.raises(UsageError, match="Input should be"):
            Recipe.from_dict({"stages": [{"convert": bad}]})


def test_weight_only_without_the_extra_is_a_usage_error_before_any_file(tmp_path, tiny_model_path, digits,
                                                                        monkeypatch):
    from edgeopt.compress import compress

    monkeypatch.setattr(aiedge, "available", lambda: False)
    out = tmp_path / "out"
    rec = Recipe.from_dict({"stages": [{"convert": {"tflite": ["fp32", "int8_weights"], "onnx": []}}]})
    with pytest.raises(UsageError, match=r"ai-edge-quantizer.*edgeopt\[aiedge\]"):
        compress(tiny_model_path, digits, out, rec)
    assert not out.exists()
