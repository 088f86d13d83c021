"""Tap pruning (prune: {structure: tap}): a convolution's zeros come in whole kernel taps (all input channels of
one filter at one kernel position), which the TFLite file stores as runs; other layers are pruned as before."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from edgeopt.errors import UsageError
from edgeopt.recipe import Recipe, TrainDefaults
from edgeopt.stages.prune import PruneConfig


def _ctx(tmp_path, data):
    from edgeopt.stages import StageContext

    return StageContext(dataset=data, out_dir=tmp_path, base_name="m", train=TrainDefaults(epochs=3, batch_size=32))


def _partial_taps(kernel: np.ndarray) -> int:
    """Taps (kernel positions of one filter) that are neither all zero nor free of zeros."""
    zero = kernel == 0
    return int(np.sum(zero.any(axis=-2) & ~zero.all(axis=-2)))


def test_tap_mask_zeroes_whole_taps_of_least_magnitude():
    from edgeopt.train.taps import tap_mask

    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 3, 4, 5)).astype("float32")
    kernel[0, 0, :, 0] = 10.0  # the strongest tap stays
    mask = tap_mask(kernel, 0.6)
    assert mask.shape == kernel.shape
    taps = mask[..., 0, :]
    assert np.all(mask == np.expand_dims(taps, -2))  # one value per tap, all its input channels
    assert int((taps == 0).sum()) == round(0.6 * 45) and taps[0, 0, 0] == 1
    assert tap_mask(kernel, 0.0).min() == 1


@pytest.fixture(scope="module")
def student(digits):
    from edgeopt.models import zoo
    from edgeopt.train.fit import Settings, train

    model = zoo.build("small_cnn", digits.input_shape, digits.num_classes, width=0.5, depth=2)
    model, _ = train(model, digits.x_train, digits.y_train, Settings(epochs=3, batch_size=32, lr=0.01))
    return model


def test_tap_pruning_zeroes_whole_taps_and_gzips_smaller(tmp_path, student, digits):
    from edgeopt.stages import prune
    from edgeopt.stages.convert import tflite_bytes

    sizes, kernels = {}, {}
    for structure in (None, "tap"):
        ctx = _ctx(tmp_path / str(structure), digits)
        cfg = PruneConfig(target_sparsity=0.8, structure=structure, skip_first=True, skip_last=True)
        out = prune.apply(student, ctx, cfg)
        notes = ctx.notes["pruning"]
        assert notes["structure"] == structure and notes["achieved_sparsity"] >= 0.78
        kernels[structure] = out.get_layer("block2_conv").get_weights()[0]
        flat = tflite_bytes(out, "int8", digits.representative(64), per_channel=False)
        sizes[structure] = len(gzip.compress(flat, 9, mtime=0))
        if structure == "tap":
            assert notes["tap_layers"] == ["block2_conv"]
            assert {r["layer"] for r in ctx.notes["sensitivity"]["layers"]} == {"block2_conv"}
    assert _partial_taps(kernels["tap"]) == 0 and _partial_taps(kernels[None]) > 10
    assert sizes["tap"] < sizes[None], sizes  # the same share of zeros, in runs


def test_tap_needs_a_convolution_among_the_pruned_layers(tmp_path, digits):
    import tf_keras as keras

    from edgeopt.stages import prune

    inp = keras.Input(digits.input_shape)
    x = keras.layers.Flatten()(inp)
    x = keras.layers.Dense(16, activation="relu")(x)
    mlp = keras.Model(inp, keras.layers.Dense(digits.num_classes, activation="softmax")(x))
    with pytest.raises(UsageError, match="structure 'tap' prunes Conv1D/Conv2D"):
        prune.apply(mlp, _ctx(tmp_path, digits), PruneConfig(target_sparsity=0.5, structure="tap"))


def test_tap_in_a_recipe():
    cfg = Recipe.from_dict({"stages": [{"prune": {"structure": "tap", "target_sparsity": 0.8}}]}).stages[0][1]
    assert cfg.structure == "tap" and cfg.m_by_n is None and cfg.allocation == "sensitivity"
    with pytest.raises(UsageError, match="'channel', 'tap' or 'M:N'"):
        Recipe.from_dict({"stages": [{"prune": {"structure": "taps"}}]})


def test_the_sensitivity_scan_prunes_tap_layers_by_taps(student):
    from edgeopt.train.layers import copy_model
    from edgeopt.train.sensitivity import magnitude_units

    model = copy_model(student)
    layer = model.get_layer("block2_conv")
    by_tap, plain = magnitude_units([layer], taps={"block2_conv"})[0], magnitude_units([layer])[0]
    for unit, partial in ((by_tap, 0), (plain, None)):
        restore = unit.apply(0.75)
        kernel = layer.get_weights()[0]
        assert np.mean(kernel == 0) == pytest.approx(0.75, abs=0.01)
        assert _partial_taps(kernel) == 0 if partial == 0 else _partial_taps(kernel) > 10
        restore()
    assert np.count_nonzero(layer.get_weights()[0]) == layer.get_weights()[0].size


def test_conv1d_taps_and_mixed_precision(tmp_path, digits):
    """A Conv1D kernel ([w, in, out]) loses whole taps too, and tap pruning trains under mixed_bfloat16."""
    import tf_keras as keras

    from edgeopt.stages import prune

    inp = keras.Input(digits.input_shape)
    x = keras.layers.Reshape((64, 1))(inp)
    x = keras.layers.Conv1D(8, 3, padding="same", activation="relu", name="c1")(x)
    x = keras.layers.Conv1D(8, 3, padding="same", activation="relu", name="c2")(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(inp, keras.layers.Dense(digits.num_classes, activation="softmax", name="out")(x))
    cfg = PruneConfig(target_sparsity=0.75, structure="tap", allocation="uniform", skip_first=True, skip_last=True,
                      epochs=2, precision="mixed_bfloat16", early_stopping=False)
    ctx = _ctx(tmp_path, digits)
    out = prune.apply(model, ctx, cfg)
    notes = ctx.notes["pruning"]
    assert notes["tap_layers"] == ["c2"] and notes["fine_tune"]["precision"]["used"] == "mixed_bfloat16"
    kernel = out.get_layer("c2").get_weights()[0]
    assert kernel.dtype == np.float32 and np.mean(kernel == 0) == pytest.approx(0.75, abs=0.02)
    assert _partial_taps(kernel) == 0
