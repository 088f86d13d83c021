"""Accuracy-aware int8 (QuantizationDebugger + float fallback) and the ONNX int8 choice."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest

from edgeopt.recipe import Recipe


@pytest.fixture(scope="module")
def outlier_model_path(tmp_path_factory, digits):
    """An MLP whose hidden layer has one outlier weight row on a pixel that is always 0 in digits.

    Float accuracy does not notice; per-channel int8 scales are set by the outlier, every other weight rounds
    to zero, and plain int8 falls to chance — the case the debugger's RMSE/scale is there to find."""
    import tensorflow as tf
    import tf_keras as keras

    assert float(np.abs(digits.x_train[:, 0, 0, 0]).max()) == 0.0
    tf.random.set_seed(1)
    inp = keras.Input(digits.input_shape)
    x = keras.layers.Dense(32, activation="relu", name="hidden")(keras.layers.Flatten()(inp))
    out = keras.layers.Activation("softmax")(keras.layers.Dense(10, name="logits")(x))
    model = keras.Model(inp, out)
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(digits.x_train, digits.y_train, epochs=15, batch_size=32, verbose=0)
    kernel, bias = model.get_layer("hidden").get_weights()
    kernel[0, :] = 500.0
    model.get_layer("hidden").set_weights([kernel, bias])
    path = tmp_path_factory.mktemp("outlier") / "outlier.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def searched(tmp_path_factory, outlier_model_path, digits):
    from edgeopt.compress import compress

    out = tmp_path_factory.mktemp("search") / "out"
    rec = Recipe.from_dict({"stages": [{"convert": {"tflite": ["fp32", "int8"], "onnx": ["int8"]}}]})
    return compress(outlier_model_path, digits, out, rec)


def test_trial_counts_grow_then_end_with_all_but_one():
    """All ops float is no int8 model (the float one with int8 I/O): the search stops one short of it."""
    from edgeopt.stages.convert.int8_search import trial_counts

    assert trial_counts(3) == [1, 2]
    assert trial_counts(20) == [1, 2, 3, 4, 6, 9, 13, 19]
    assert trial_counts(20, cap=5) == [1, 2, 3, 4, 5]
    assert trial_counts(4, cap=9) == [1, 2, 3]
    assert trial_counts(1) == [] and trial_counts(0) == []


def test_worst_op_stays_float_and_accuracy_comes_back(searched):
    art = {a.name: a for a in searched.artifacts}
    info = art["outlier_int8.tflite"].info
    search = info["int8"]
    assert search["plain_int8_val_accuracy"] < 0.3  # plain int8 is broken by the outlier
    assert search["met"] is True
    assert len(search["kept_float"]) == 1 and "/hidden/MatMul" in search["kept_float"][0]["tensor"]
    top = search["sensitivity"][0]
    assert top["op"] == "FULLY_CONNECTED" and top["rmse_over_scale"] > 10 > search["sensitivity"][1]["rmse_over_scale"]
    assert search["trials"][0] == {"float_ops": 0, "val_accuracy": search["plain_int8_val_accuracy"]}
    assert info["parity"]["within_tolerance"] is True


def test_onnx_int8_records_both_methods_and_why(searched):
    art = {a.name: a for a in searched.artifacts}
    onnx = art["outlier_int8.onnx"].info["onnx_int8"]
    assert set(onnx["candidates"]) == {"tflite", "ort_static"}
    assert onnx["method"] in onnx["candidates"] and onnx["reason"]
    for cand in onnx["candidates"].values():
        assert 0 <= cand["val_accuracy"] <= 1 and cand["gzip_bytes"] > 0
    # neither ONNX path keeps the outlier layer float under ORT's default optimizations: the verdict says so
    par = art["outlier_int8.onnx"].info["parity"]
    assert par["within_tolerance"] is (par["accuracy_drop"] <= 0.01)
    if not par["within_tolerance"]:
        assert par["verdict"].startswith("TOLERANCE NOT MET")


def test_unmeetable_tolerance_is_said_plainly(tmp_path, outlier_model_path, digits, caplog):
    """One calibration sample at 1e4 sets the int8 input scale: no float op can undo the input quantization."""
    from edgeopt.compress import compress
    from edgeopt.data.dataset import Dataset

    x = digits.x_train[:120].copy()
    x[0] *= 1e4
    poisoned = Dataset.from_arrays("poisoned", x, digits.y_train[:120], digits.x_val, digits.y_val, digits.x_test,
                                   digits.y_test, num_classes=10)
    rec = Recipe.from_dict({"stages": [{"convert": {"tflite": ["int8"], "onnx": [], "calibration_samples": 500,
                                                    "max_float_ops": 2}}]})
    with caplog.at_level(logging.WARNING, logger="edgeopt"):
        m = compress(outlier_model_path, poisoned, tmp_path / "out", rec)
    info = m.artifacts[-1].info
    assert info["int8"]["met"] is False
    assert info["int8"]["search"].startswith("TOLERANCE NOT MET")
    assert [t["float_ops"] for t in info["int8"]["trials"]] == [0, 1, 2]
    assert info["parity"]["within_tolerance"] is False
    assert any("TOLERANCE NOT MET" in r.getMessage() for r in caplog.records)


def test_ort_static_only(tmp_path, tiny_model_path, digits):
    from edgeopt.compress import compress

    rec = Recipe.from_dict({"stages": [{"convert": {"tflite": [], "onnx": ["fp32", "int8"], "onnx_int8": "ort_static",
                                                    "opset": 15}}]})
    m = compress(tiny_model_path, digits, tmp_path / "out", rec)
    art = {a.name: a for a in m.artifacts}
    assert art["tiny_int8.onnx"].info["onnx_int8"]["method"] == "ort_static"
    assert list(art["tiny_int8.onnx"].info["onnx_int8"]["candidates"]) == ["ort_static"]
    assert art["tiny_int8.onnx"].info["parity"]["agreement"] >= 0.9
    assert art["tiny_int8.onnx"].size_bytes < art["tiny_fp32.onnx"].size_bytes


def test_strip_strings_keeps_outputs_and_drops_names(tmp_path, tiny_model_path, digits):
    from edgeopt.compress import compress
    from edgeopt.runtimes import litert

    runs = {}
    for strip in (False, True):
        rec = Recipe.from_dict({"stages": [{"convert": {"tflite": ["int8"], "onnx": [], "strip_strings": strip}}]})
        out = tmp_path / f"out_{strip}"
        art = compress(tiny_model_path, digits, out, rec).artifacts[-1]
        runs[strip] = (out / art.path, litert.load(str(out / art.path)).run(digits.x_test[:32]))
    assert runs[True][0].stat().st_size < runs[False][0].stat().st_size
    assert b"softmax" in runs[False][0].read_bytes() and b"softmax" not in runs[True][0].read_bytes()
    np.testing.assert_array_equal(runs[True][1], runs[False][1])


def test_a_search_that_keeps_most_ops_float_says_so(tmp_path, digits, caplog):
    """Four hidden layers, each with an outlier weight row on an input that is always 0 (pixel 0 of digits, then
    a hidden unit that never fires): every one of them breaks under int8, so the search must keep most of the
    model's quantized ops float to meet the tolerance — met, and said to be mostly a float model."""
    import tensorflow as tf
    import tf_keras as keras

    from edgeopt.compress import compress

    tf.random.set_seed(2)
    inp = keras.Input(digits.input_shape)
    x = keras.layers.Flatten()(inp)
    for i in range(4):
        x = keras.layers.Dense(32, activation="relu", name=f"h{i}")(x)
    out = keras.layers.Activation("softmax")(keras.layers.Dense(10, name="logits")(x))
    model = keras.Model(inp, out)
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(digits.x_train, digits.y_train, epochs=20, batch_size=32, verbose=0)
    for i in range(4):
        layer = model.get_layer(f"h{i}")
        kernel, bias = layer.get_weights()
        kernel[0, :] = 500.0  # input 0 is always 0: pixel 0, or unit 0 of the layer before, silenced below
        kernel[:, 0], bias[0] = 0.0, -1.0  # this layer's unit 0 never fires (and its own outlier row stays 0·500)
        layer.set_weights([kernel, bias])
    path = tmp_path / "outliers.keras"
    model.save(path)
    rec = Recipe.from_dict({"stages": [{"convert": {"tflite": ["int8"], "onnx": []}}]})
    with caplog.at_level(logging.WARNING, logger="edgeopt"):
        m = compress(path, digits, tmp_path / "out", rec)
    search = m.artifacts[-1].info["int8"]
    assert search["met"] is True and search["plain_int8_val_accuracy"] < 0.5, search
    kept, total = map(int, re.match(r"kept (\d+) of (\d+) quantized ops", search["search"]).groups())
    assert kept == len(search["kept_float"]) >= 4 and 2 * kept > total, search["search"]
    assert sum(k["op"] == "FULLY_CONNECTED" for k in search["kept_float"]) >= 4, search["kept_float"]
    assert "most of the model runs in float" in search["search"]
    assert any("most of the model runs in float" in r.getMessage() for r in caplog.records)
