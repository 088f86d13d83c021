"""int8 TFLite with one weight scale per tensor (convert: {per_channel: false}) and without the converter's
metadata (strip_metadata) and with one shared empty buffer (share_empty_buffers): read back through the one
graph reader, run in real LiteRT."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.core import graph
from edgeopt.errors import UsageError
from edgeopt.recipe import Recipe
from edgeopt.stages.convert.tflite import METADATA, share_empty_buffers, strip_metadata

WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


@pytest.fixture(scope="module")
def int8_pair(tmp_path_factory, tiny_model_path, digits):
    """per_channel true / false → (path, artifact) of the int8 TFLite (the second also without metadata, and its
    tensors without data on the shared empty buffer)."""
    from edgeopt.compress import compress

    out = {}
    for per_channel in (True, False):
        folder = tmp_path_factory.mktemp(f"pc_{per_channel}") / "out"
        conv = {"tflite": ["int8"], "onnx": [], "per_channel": per_channel, "strip_metadata": not per_channel,
                "share_empty_buffers": not per_channel}
        art = compress(tiny_model_path, digits, folder, Recipe.from_dict({"stages": [{"convert": conv}]})).artifacts[-1]
        out[per_channel] = (folder / art.path, art)
    return out


def _weight_scales(path) -> dict[str, list[int]]:
    g = graph.read(path, "tflite")
    sg = g.main
    return {op.type: [sg.tensors[i].scales for i in op.inputs[1:] if sg.tensors[i].const] for op in sg.ops
            if op.type in WEIGHTED}


def test_per_tensor_int8_has_one_scale_per_weight_tensor(int8_pair):
    per_channel, per_tensor = _weight_scales(int8_pair[True][0]), _weight_scales(int8_pair[False][0])
    assert per_channel["CONV_2D"][0] == 8  # the tiny model's 8 filters: one scale each
    assert per_tensor and all(n == 1 for scales in per_tensor.values() for n in scales)
    assert graph.read(int8_pair[False][0], "tflite").precision() == "int8"
    assert int8_pair[False][1].size_bytes < int8_pair[True][1].size_bytes


def test_per_tensor_int8_runs_in_litert_and_keeps_parity(int8_pair, digits):
    from edgeopt.runtimes import litert

    path, art = int8_pair[False]
    par = art.info["parity"]  # convert's own parity run: LiteRT on the test split
    assert par["within_tolerance"] is True and par["agreement"] >= 0.97
    session = litert.load(str(path))
    out = session.run(digits.x_test[:64])
    assert out.shape == (64, digits.num_classes)
    ref = litert.load(str(int8_pair[True][0])).run(digits.x_test[:64])
    assert np.mean(out.argmax(1) == ref.argmax(1)) >= 0.95


def test_strip_metadata_drops_only_the_converters_entries(int8_pair, digits):
    from tensorflow.lite.tools import flatbuffer_utils

    from edgeopt.runtimes import litert

    kept = int8_pair[True][0].read_bytes()
    assert all(name in kept for name in METADATA)
    stripped = int8_pair[False][0].read_bytes()
    assert not any(name in stripped for name in METADATA)
    # the same model with and without: same outputs, signature (input/output names) still there
    data = strip_metadata(kept)
    assert len(data) < len(kept) - 100
    a, b = (int8_pair[True][0].with_name(n) for n in ("a.tflite", "b.tflite"))
    a.write_bytes(kept)
    b.write_bytes(data)
    sa, sb = litert.load(str(a)), litert.load(str(b))
    assert sb.input_names == sa.input_names and len(sa.input_names) == 1  # the signature runner still finds it
    np.testing.assert_array_equal(sa.run(digits.x_test[:32]), sb.run(digits.x_test[:32]))
    # metadata the converter did not write survives, its buffer too
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(kept))
    entry = type(model.metadata[0])()
    entry.name, entry.buffer = b"TFLITE_METADATA", len(model.buffers)
    blob = type(model.buffers[0])()
    blob.data = np.frombuffer(b"user metadata", np.uint8)
    model.buffers.append(blob)
    model.metadata.append(entry)
    mine = strip_metadata(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
    back = flatbuffer_utils.convert_bytearray_to_object(bytearray(mine))
    assert [m.name for m in back.metadata] == [b"TFLITE_METADATA"]
    assert bytes(back.buffers[back.metadata[0].buffer].data) == b"user metadata"
    assert strip_metadata(data) == data  # nothing left to drop: the bytes as they were


def _buffers(data: bytes):
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    return model, [t for sg in model.subgraphs for t in sg.tensors]


def test_tensors_without_data_share_the_empty_buffer_with_the_same_outputs(int8_pair, digits):
    import gzip

    from edgeopt.runtimes import litert

    plain = int8_pair[True][0].read_bytes()
    model, tensors = _buffers(plain)
    empty = [t for t in tensors if model.buffers[t.buffer].data is None]
    assert len(empty) >= 5 and len({t.buffer for t in empty}) == len(empty)  # the converter: one empty buffer each
    shared = share_empty_buffers(plain)
    model2, tensors2 = _buffers(shared)
    assert len(model2.buffers) == len(model.buffers) - len(empty)
    assert all(t2.buffer == 0 for t, t2 in zip(tensors, tensors2, strict=True) if t in empty)
    for t, t2 in zip(tensors, tensors2, strict=True):  # constants keep their bytes
        if t not in empty:
            np.testing.assert_array_equal(model2.buffers[t2.buffer].data, model.buffers[t.buffer].data)
    assert [m.name for m in model2.metadata] == [m.name for m in model.metadata]  # metadata still finds its data
    for m, m2 in zip(model.metadata, model2.metadata, strict=True):
        np.testing.assert_array_equal(model2.buffers[m2.buffer].data, model.buffers[m.buffer].data)
    assert len(gzip.compress(shared, 9)) < len(gzip.compress(plain, 9))
    a, b = (int8_pair[True][0].with_name(n) for n in ("p.tflite", "s.tflite"))
    a.write_bytes(plain)
    b.write_bytes(shared)
    np.testing.assert_array_equal(litert.load(str(a)).run(digits.x_test[:32]),
                                  litert.load(str(b)).run(digits.x_test[:32]))
    assert share_empty_buffers(shared) == shared  # nothing left to share: the bytes as they were
    # the recipe option: the per-tensor file was written that way, and it still runs (the parity test above)
    model3, tensors3 = _buffers(int8_pair[False][0].read_bytes())
    assert all(t.buffer == 0 for t in tensors3 if model3.buffers[t.buffer].data is None)


@pytest.mark.parametrize("files", [{"tflite": ["int8"], "onnx": []}, {"tflite": ["fp32"], "onnx": ["int8"]}])
def test_per_tensor_is_refused_for_a_qat_model(tmp_path, tiny_model_path, digits, files):
    """Every integer file of a QAT model keeps its trained per-channel ranges: the int8 TFLite, and the ONNX int8
    made from it."""
    from edgeopt.compress import compress

    rec = Recipe.from_dict({"stages": [{"quantize": {"epochs": 1}}, {"convert": {**files, "per_channel": False}}]})
    with pytest.raises(UsageError, match="per_channel: false cannot apply to a quantization-aware model"):
        compress(tiny_model_path, digits, tmp_path / "out", rec)
    assert not list((tmp_path / "out").glob("*.tflite"))


def test_the_int8_search_ranks_and_keeps_float_per_tensor_too(tiny_model_path, digits):
    from edgeopt.models.load import load_model
    from edgeopt.stages.convert.int8_search import Calibrated
    from edgeopt.stages.convert.tflite import check_calibration, tflite_bytes

    model = load_model(tiny_model_path)
    model = getattr(model, "model", model)
    fp32 = tflite_bytes(model, "fp32")
    calibrated = Calibrated(lambda: fp32, check_calibration(digits.representative(32)), 16, per_channel=False)
    table = calibrated.sensitivity()  # the debug model is quantized per tensor as the artifacts are
    assert table and all(row["rmse_over_scale"] >= 0 for row in table)
    data = calibrated.quantize([table[0]["tensor"]])
    g = graph.read_tflite(data)
    int8_weights = [g.main.tensors[i] for op in g.main.ops if op.type in WEIGHTED for i in op.inputs[1:2]
                    if g.main.tensors[i].dtype == "int8"]
    assert int8_weights and all(t.scales == 1 for t in int8_weights)
    assert any(g.main.tensors[op.outputs[0]].dtype == "float32" for op in g.main.ops if op.type in WEIGHTED)


def test_ort_static_int8_follows_per_channel(tiny_model_path, digits):
    """ONNX Runtime's static int8 of the fp32 ONNX: per-channel weight scales by default, one per tensor with
    per_channel: false (what int8_bytes passes from the convert config)."""
    import onnx

    from edgeopt.models.load import load_model
    from edgeopt.stages.convert.onnx import onnx_bytes, ort_static

    fp32 = onnx_bytes(load_model(tiny_model_path))
    calibration = digits.x_train[:32].astype(np.float32)

    def weight_scale_sizes(data: bytes) -> list[int]:
        g = onnx.load_from_string(data).graph
        inits = {t.name: t for t in g.initializer}
        return [int(np.prod(inits[n.input[1]].dims)) for n in g.node
                if n.op_type == "DequantizeLinear" and n.input[0] in inits and n.input[1] in inits]

    per_channel = weight_scale_sizes(ort_static(fp32, calibration))
    per_tensor = weight_scale_sizes(ort_static(fp32, calibration, per_channel=False))
    assert max(per_channel) > 1 and per_tensor and set(per_tensor) == {1}


def test_sharing_the_empty_buffer_keeps_a_stateful_lstm_exact(tmp_path):
    """A fused LSTM keeps its state in variable tensors: after sharing, two invokes in a row give the same outputs."""
    import tensorflow as tf
    import tf_keras as keras

    from edgeopt.runtimes import litert

    model = keras.Sequential([keras.Input((5, 3), batch_size=1), keras.layers.LSTM(4), keras.layers.Dense(2)])
    data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    shared = share_empty_buffers(data)
    _, tensors = _buffers(shared)
    assert any(t.isVariable for t in tensors) and len(shared) < len(data)
    x = np.random.default_rng(0).random((1, 5, 3)).astype(np.float32)
    runs = []
    for name, blob in (("plain.tflite", data), ("shared.tflite", shared)):
        (tmp_path / name).write_bytes(blob)
        session = litert.load(str(tmp_path / name))
        runs.append([session.run(x), session.run(x)])
    np.testing.assert_array_equal(np.asarray(runs[0]), np.asarray(runs[1]))


def test_a_file_with_constants_outside_the_flatbuffer_is_left_as_it_is(int8_pair, caplog):
    """Models over 2 GB keep their constants after the flatbuffer (buffer offset/size): rewriting the object
    would drop them, so neither rewrite touches such a file, and each says why."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(int8_pair[True][0].read_bytes()))
    big = next(b for b in model.buffers if b.data is not None and len(b.data) > 8)
    big.data, big.offset, big.size = None, 4096, 1024  # as if written after the flatbuffer
    data = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    with caplog.at_level("WARNING"):
        assert share_empty_buffers(data) == data and strip_metadata(data) == data
    assert caplog.text.count("outside the flatbuffer") == 2
