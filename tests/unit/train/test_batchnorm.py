"""Batch-norm re-estimation: moving statistics become those of the layer's inputs under the current weights;
nothing else moves; stale statistics (what a prune fine-tune leaves) cost accuracy that the pass brings back."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture()
def tiny(tiny_model_path):
    from edgeopt.models.load import load_model

    return load_model(tiny_model_path)


def _bn_inputs(model, x):
    import tf_keras as keras

    bn = model.get_layer(index=2)
    return np.asarray(keras.Model(model.input, bn.input)(x, training=False))


def _top1(model, x, y) -> float:
    return float(np.mean(np.asarray(model(x, training=False)).argmax(-1) == y))


def test_moving_statistics_become_those_of_the_inputs_and_nothing_else_moves(tiny, digits):
    from edgeopt.train.batchnorm import batchnorm_layers, reestimate

    (bn,) = batchnorm_layers(tiny)
    # change the weights under the BN as a prune does: 80 % of the conv kernel to zero
    conv = tiny.get_layer(index=1)
    k = conv.get_weights()[0]
    k[np.abs(k) < np.quantile(np.abs(k), 0.8)] = 0.0
    conv.set_weights([k])
    x = digits.x_train[:512]
    before = {w.name: w.numpy().copy() for w in tiny.weights}
    rec = reestimate(tiny, x, samples=len(x), batch_size=256)
    assert rec["layers"] == 1 and rec["samples"] == 512
    feats = _bn_inputs(tiny, x).reshape(-1, k.shape[-1])
    np.testing.assert_allclose(bn.moving_mean.numpy(), feats.mean(0), rtol=1e-3, atol=1e-5)
    halves = np.split(feats, 2)  # the average of the two batches' variances
    np.testing.assert_allclose(bn.moving_variance.numpy(), np.mean([h.var(0) for h in halves], 0), rtol=2e-3)
    moved = {w.name for w in tiny.weights if not np.array_equal(w.numpy(), before[w.name])}
    assert moved == {bn.moving_mean.name, bn.moving_variance.name}
    assert bn.momentum == 0.99  # the layer's own settings are put back


def test_stale_statistics_cost_accuracy_the_pass_brings_back(tiny, digits):
    from edgeopt.train.batchnorm import batchnorm_layers, reestimate

    good = _top1(tiny, digits.x_val, digits.y_val)
    (bn,) = batchnorm_layers(tiny)
    bn.moving_mean.assign(bn.moving_mean + 3.0)
    bn.moving_variance.assign(bn.moving_variance * 25.0)
    stale = _top1(tiny, digits.x_val, digits.y_val)
    assert stale < good - 0.2
    reestimate(tiny, digits.x_train)
    assert _top1(tiny, digits.x_val, digits.y_val) >= good - 0.02


def test_off_and_no_batchnorm_are_no_ops(tiny, digits):
    import tf_keras as keras

    from edgeopt.train.batchnorm import reestimate

    before = [w.copy() for w in tiny.get_weights()]
    assert reestimate(tiny, digits.x_train, samples=0) == {"layers": 1, "samples": 0}
    assert all(np.array_equal(a, b) for a, b in zip(before, tiny.get_weights(), strict=True))
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    assert reestimate(plain, np.ones((8, 4), np.float32)) == {"layers": 0, "samples": 0}


def test_qat_model_batchnorm_is_found_and_its_ranges_stay(tiny, digits):
    """Inside a QAT model the BN may sit in a tfmot wrapper; the training-mode pass must not move the
    quantizers' ranges (only the BN statistics)."""
    from edgeopt.stages.quantize import QuantizeConfig, apply_qat
    from edgeopt.train.batchnorm import batchnorm_layers, reestimate

    qat, _, _ = apply_qat(tiny, QuantizeConfig(), False, False)
    layers = batchnorm_layers(qat)
    assert len(layers) == 1
    stats = {id(v) for v in (layers[0].moving_mean, layers[0].moving_variance)}
    before = {id(w): w.numpy().copy() for w in qat.weights}
    reestimate(qat, digits.x_train, samples=512)
    moved = {id(w) for w in qat.weights if not np.array_equal(w.numpy(), before[id(w)])}
    assert moved and moved <= stats
