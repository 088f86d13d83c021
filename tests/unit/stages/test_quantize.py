"""Quantize stage: QAT, prune-preserving QAT whose int8 TFLite keeps the zeros, reloadable QAT artifacts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeopt.recipe import Recipe, TrainDefaults
from edgeopt.stages.quantize import QuantizeConfig

PQAT_RECIPE = {"train": {"epochs": 2, "batch_size": 64},
               "stages": [{"prune": {"target_sparsity": 0.7}}, {"quantize": {"epochs": 1}},
                          {"convert": {"tflite": ["fp32", "int8"], "onnx": []}}]}


@pytest.fixture(scope="module")
def pqat(tmp_path_factory, tiny_model_path, digits):
    """prune 0.7 → PQAT → int8, the DESIGN recipe in small."""
    from edgeopt.compress import compress

    out = tmp_path_factory.mktemp("pqat") / "out"
    return out, compress(tiny_model_path, digits, out, Recipe.from_dict(PQAT_RECIPE))


def test_pqat_int8_tflite_keeps_the_sparsity(pqat):
    from edgeopt.core.artifact import param_counts

    out, manifest = pqat
    q = manifest.extra["quantization"]
    assert q["scheme"] == "pqat" and q["preserve_sparsity"]
    assert q["kernel_sparsity_after"] == pytest.approx(manifest.extra["pruning"]["achieved_sparsity"], abs=0.01)
    art = {a.name: a for a in manifest.artifacts}
    params, nonzero = param_counts(out / art["tiny_int8.tflite"].path, "tflite")
    # kernels are 72 + 5120 weights at 70% zeros; biases, BN and scales stay dense
    assert 1 - nonzero / params > 0.6
    par = art["tiny_int8.tflite"].info["parity"]
    assert par["agreement"] >= 0.9
    assert art["tiny_int8.tflite"].info["int8"]["search"].startswith("skipped: quantization-aware")
    dense_fp32 = json.loads((out / "manifest.json").read_text())["artifacts"]
    assert any(a["name"] == "tiny_quantize.keras" for a in dense_fp32)


def test_qat_artifact_saves_and_loads_back(pqat, digits):
    from edgeopt.models.load import load_model

    out, manifest = pqat
    art = {a.name: a for a in manifest.artifacts}
    model = load_model(out / art["tiny_quantize.keras"].path)
    assert any(type(layer).__name__ == "QuantizeWrapperV2" for layer in model.layers)
    # the fp32 TFLite is the float twin (same weights, no fake-quant): the loaded QAT model agrees with it up to
    # the quantization noise the fake-quant ops add
    tflite_out = _run_tflite(out / art["tiny_fp32.tflite"].path, digits.x_test)
    keras_out = np.asarray(model(digits.x_test))
    assert np.mean(keras_out.argmax(-1) == tflite_out.argmax(-1)) >= 0.95
    np.testing.assert_allclose(keras_out, tflite_out, atol=0.1)


def _op_counts(path_or_bytes) -> dict[str, int]:
    from collections import Counter
    from pathlib import Path

    from edgeopt.core import graph

    data = Path(path_or_bytes).read_bytes() if isinstance(path_or_bytes, Path) else path_or_bytes
    return dict(Counter(op.type for op in graph.read_tflite(data).main.ops))


FAKE_QUANT = {"QUANTIZE", "DEQUANTIZE", "FAKE_QUANT"}


def test_post_qat_float_artifacts_are_real_float_models(pqat):
    out, manifest = pqat
    art = {a.name: a for a in manifest.artifacts}
    assert manifest.extra["quantization"]["float_twin"] is True
    fp32 = _op_counts(out / art["tiny_fp32.tflite"].path)
    assert not FAKE_QUANT & set(fp32), fp32
    assert art["tiny_fp32.tflite"].info["parity"]["agreement"] >= 0.95


def test_qat_int8_folds_batchnorm_like_tfmot_by_hand(tiny_model_path, digits):
    """Conv+BN(+ReLU) annotated together: the int8 graph has the by-hand tfmot graph's ops, no stray MUL/ADD."""
    import tensorflow_model_optimization as tfmot

    from edgeopt.models.load import load_model
    from edgeopt.stages.convert.tflite import tflite_bytes
    from edgeopt.stages.quantize import apply_qat

    model = load_model(tiny_model_path)
    qat, _, kept_float = apply_qat(model, QuantizeConfig(), False, False)
    assert kept_float == []
    calibration = digits.representative(32)
    ours = _op_counts(tflite_bytes(qat, "int8", calibration))
    by_hand = _op_counts(tflite_bytes(tfmot.quantization.keras.quantize_model(model), "int8", calibration))
    assert ours == by_hand
    assert "MUL" not in ours and "ADD" not in ours


def _run_tflite(path, x):
    from edgeopt.runtimes import litert

    return litert.load(str(path)).run(x)


def test_plain_qat_and_passthrough(tmp_path, tiny_model_path, digits):
    from edgeopt.models.load import load_model
    from edgeopt.stages import StageContext, quantize

    model = load_model(tiny_model_path)
    ctx = StageContext(dataset=digits, out_dir=tmp_path, base_name="m", train=TrainDefaults(epochs=1))
    assert quantize.apply(model, ctx, QuantizeConfig(qat=False)) is model
    assert ctx.notes["quantization"]["qat"] is False
    qat = quantize.apply(model, ctx, QuantizeConfig(epochs=1, exclude=["dense"]))
    notes = ctx.notes["quantization"]
    assert notes["scheme"] == "qat" and "dense" in notes["kept_float"]
    assert qat.output_shape == model.output_shape
    assert any(type(layer).__name__ == "QuantizeWrapperV2" for layer in qat.layers)


def test_qat_annotates_the_batchnorms_that_fold_and_only_those():
    """A BN is annotated with its layer when the two fold (train/fold.foldable, the predicate cluster's
    fold_batch_norm uses): not when the conv output has another reader (the converter cannot fold it then), nor a
    BN called with training=True."""
    import tf_keras as keras

    from edgeopt.stages.quantize import foldable_batchnorms

    x = keras.Input((8, 8, 1))
    a = keras.layers.Conv2D(4, 3, padding="same", name="conv_a")(x)
    a = keras.layers.BatchNormalization(name="bn_a")(a)  # folds
    b = keras.layers.Conv2D(4, 3, padding="same", name="conv_b")(a)
    side = keras.layers.ReLU(name="side")(b)  # conv_b's output has a second reader
    b = keras.layers.BatchNormalization(name="bn_b")(b)
    c = keras.layers.Conv2D(4, 3, padding="same", name="conv_c")(keras.layers.Add()([b, side]))
    c = keras.layers.BatchNormalization(name="bn_c")(c, training=True)  # batch statistics, always
    model = keras.Model(x, keras.layers.GlobalAveragePooling2D()(c))
    chosen = [model.get_layer(n) for n in ("conv_a", "conv_b", "conv_c")]
    assert [layer.name for layer in foldable_batchnorms(model, chosen)] == ["bn_a"]
    assert foldable_batchnorms(model, chosen[1:]) == []  # conv_a left float: its BN is not annotated either
