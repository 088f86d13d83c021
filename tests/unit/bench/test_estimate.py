"""The latency estimator: op costs read from TFLite/ONNX graphs, and the roofline cost model's arithmetic."""

from __future__ import annotations

import pytest

from edgeopt.bench.estimate import Calibration, OpCost, estimate_ops, graph_ops, summarize, throughput_gmacs
from edgeopt.bench.targets import load_target

# The tiny digits CNN (tests/conftest.py): 8×8×1 → Conv 3×3×8 'same' → Flatten → Dense 10 → softmax.
CONV_MACS = 8 * 8 * 8 * 3 * 3 * 1
DENSE_MACS = 8 * 8 * 8 * 10


def _cal(**kw) -> Calibration:
    base = {"threads": 4, "gmacs": {"conv": {"fp32": 10.0, "int8": 40.0}, "depthwise": {"fp32": 2.0}},
            "bandwidth_gbs": 4.0, "op_overhead_us": 0.0, "invoke_overhead_us": 0.0,
            "sources": {"gmacs.conv": "test", "gmacs.depthwise": "test", "bandwidth_gbs": "test",
                        "op_overhead_us": "test", "invoke_overhead_us": "test"}}
    base.update(kw)
    return Calibration.model_validate(base)


def _artifact(compressed, precision: str, fmt: str = "tflite"):
    out, manifest = compressed
    return out / next(a.path for a in manifest.artifacts if a.precision == precision and a.format == fmt)


# fp16 weights are expanded to fp32 once at load time, so those ops compute (and read) fp32; dynamic-range
# quantization leaves the 72-weight conv in fp32 (the converter skips tensors under 1024 elements).
@pytest.mark.parametrize("precision,conv_dtype,dense_dtype", [("fp32", "fp32", "fp32"), ("fp16", "fp32", "fp32"),
                                                              ("int8", "int8", "int8"), ("dynamic", "fp32", "dynamic")])
def test_tflite_ops_have_macs_and_dtypes(compressed, precision, conv_dtype, dense_dtype):
    ops = graph_ops(_artifact(compressed, precision), "tflite")
    conv = [o for o in ops if o.op_class == "conv"]
    dense = [o for o in ops if o.op_class == "dense"]
    assert [o.macs for o in conv] == [CONV_MACS]
    assert [o.macs for o in dense] == [DENSE_MACS]
    assert conv[0].dtype == conv_dtype and dense[0].dtype == dense_dtype
    assert all(o.bytes > 0 for o in conv + dense)
    assert not any(o.op == "DEQUANTIZE" for o in ops)  # fp16 weights are expanded once, at load time


def test_quantized_graphs_move_fewer_bytes(compressed):
    def dense_bytes(precision):
        return sum(o.bytes for o in graph_ops(_artifact(compressed, precision), "tflite") if o.op_class == "dense")

    assert dense_bytes("int8") < dense_bytes("dynamic") < dense_bytes("fp32") == dense_bytes("fp16")
    assert dense_bytes("int8") >= DENSE_MACS  # at least one byte per int8 weight


def test_onnx_ops_match_the_tflite_graph(compressed):
    ops = graph_ops(_artifact(compressed, "fp32", "onnx"), "onnx")
    by = summarize(ops)
    assert by["conv/fp32"]["macs"] == CONV_MACS
    assert by["dense/fp32"]["macs"] == DENSE_MACS
    assert all(o.op_class in ("conv", "dense", "elementwise", "free") for o in ops)


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="no cost model"):
        graph_ops("model.keras", "keras")


def test_roofline_per_op_plus_overheads():
    ops = [OpCost("CONV_2D", "conv", "fp32", macs=10_000_000, bytes=4_000),  # compute-bound: 1 ms
           OpCost("DEPTHWISE_CONV_2D", "depthwise", "fp32", macs=1_000, bytes=8_000_000),  # memory-bound: 2 ms
           OpCost("RESHAPE", "free", "fp32", macs=0, bytes=0)]
    est = estimate_ops(ops, _cal())
    assert est.ms == pytest.approx(3.0)
    assert est.ops == 2 and est.macs == 10_001_000
    assert est.by_class_ms == pytest.approx({"conv": 1.0, "depthwise": 2.0})
    with_overhead = estimate_ops(ops, _cal(op_overhead_us=100, invoke_overhead_us=500))
    assert with_overhead.ms == pytest.approx(3.0 + 0.2 + 0.5)


def test_fewer_threads_scale_compute_not_bandwidth():
    ops = [OpCost("CONV_2D", "conv", "fp32", 10_000_000, 0), OpCost("ADD", "elementwise", "fp32", 0, 4_000_000)]
    four = estimate_ops(ops, _cal(gmacs={"conv": {"fp32": 10.0}}), threads=4)
    one = estimate_ops(ops, _cal(gmacs={"conv": {"fp32": 10.0}}), threads=1)
    assert four.ms == pytest.approx(1.0 + 1.0)
    assert one.ms == pytest.approx(4.0 + 1.0)
    assert any("scaled" in n for n in one.notes)
    capped = estimate_ops(ops, _cal(gmacs={"conv": {"fp32": 10.0}}), threads=8, cores=4)
    assert capped.ms == pytest.approx(four.ms)  # no more throughput than the calibrated cores


def test_dtype_fallbacks_are_noted():
    cal = _cal()
    notes: list[str] = []
    assert throughput_gmacs(cal, "conv", "dynamic", notes) == 40.0  # dynamic → int8
    assert throughput_gmacs(cal, "conv", "fp16", notes) == 10.0  # fp16 → fp32
    assert throughput_gmacs(cal, "depthwise", "int8", notes) == 2.0  # no int8 depthwise → fp32
    assert throughput_gmacs(cal, "dense", "fp32", notes) == 10.0  # no dense table → conv's
    assert len(notes) == 3 and all("timed as" in n for n in notes)


def test_int8_estimates_faster_than_fp32_on_rpi4(compressed):
    from edgeopt.bench.estimate import estimate_artifact

    rpi4 = load_target("rpi4")
    fp32 = estimate_artifact(_artifact(compressed, "fp32"), "tflite", rpi4)
    int8 = estimate_artifact(_artifact(compressed, "int8"), "tflite", rpi4)
    assert 0 < int8.ms <= fp32.ms
    with pytest.raises(ValueError, match="no calibration"):
        estimate_artifact(_artifact(compressed, "fp32"), "tflite", load_target("x86-cpu"))


@pytest.mark.parametrize("change,message", [
    ({"gmacs": {"depthwise": {"fp32": 1.0}}}, "at least conv"),
    ({"gmacs": {"conv": {"fp32": 1.0}, "matmul": {"fp32": 1.0}}}, "unknown op class"),
    ({"gmacs": {"conv": {"fp32": 1.0, "fp8": 2.0}}}, "unknown dtype"),
    ({"gmacs": {"conv": {"fp32": 0.0}}}, "must be > 0"),
    ({"sources": {"gmacs.conv": "x"}}, "missing"),
])
def test_calibration_validation(change, message):
    with pytest.raises(ValueError, match=message):
        _cal(**change)
