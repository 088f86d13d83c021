"""Sensitivity scan and allocation: the overall target is reached, sensitive layers get less, the scan restores
the weights it touched."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.train.sensitivity import Curve, allocate, overall, scan_shares


def _curve(name, params, damage, shares=(0.5, 0.75, 0.9)):
    return Curve(name, params, tuple(shares), tuple(damage), tuple(damage))


@pytest.mark.parametrize("target", [0.3, 0.5, 0.8, 0.9])
def test_allocation_reaches_the_requested_overall_sparsity(target):
    curves = [_curve("a", 1000, [0.0, 0.01, 0.3]), _curve("b", 300, [0.2, 0.5, 1.0]),
              _curve("c", 5000, [0.0, 0.0, 0.02]), _curve("d", 10, [0.5, 0.9, 2.0])]
    shares = allocate(curves, target)
    assert overall(shares, {c.name: c.params for c in curves}) == pytest.approx(target, abs=1e-6)
    assert all(0 <= s <= 0.9 + 1e-9 for s in shares.values())


def test_sensitive_layers_get_less_and_robust_ones_more():
    curves = [_curve("robust", 1000, [0.0, 0.0, 0.01]), _curve("fragile", 1000, [0.3, 0.8, 1.5])]
    shares = allocate(curves, 0.6)
    assert shares["robust"] == pytest.approx(0.9, abs=1e-6) and shares["fragile"] == pytest.approx(0.3, abs=1e-6)
    # less summed damage than the uniform 0.6 everywhere
    def dmg(c, s):
        return float(np.interp(s, [0, *c.shares], [0, *c.loss_increase]))
    assert sum(dmg(c, shares[c.name]) for c in curves) < sum(dmg(c, 0.6) for c in curves)


def test_noisy_and_negative_drops_do_not_break_the_allocation():
    curves = [_curve("a", 100, [-0.01, 0.02, 0.01]), _curve("b", 100, [0.0, -0.05, 0.3])]
    shares = allocate(curves, 0.7)
    assert overall(shares, {"a": 100, "b": 100}) == pytest.approx(0.7, abs=1e-6)


def test_scan_shares_reach_a_target_above_the_configured_ones():
    assert scan_shares([0.5, 0.75, 0.9], 0.8) == (0.5, 0.75, 0.9)
    assert scan_shares([0.5, 0.75, 0.9], 0.9) == (0.5, 0.75, 0.9, 0.95)
    assert scan_shares([0.5], 0.8) == (0.5, 0.9)
    with pytest.raises(ValueError, match="cannot reach"):
        allocate([_curve("a", 10, [0.1, 0.2, 0.3])], 0.95)


def test_scan_measures_each_layer_and_restores_its_weights(tiny_model_path, digits):
    from edgeopt.models.load import load_model
    from edgeopt.train.sensitivity import magnitude_units, sample, scan

    model = load_model(tiny_model_path)
    before = [w.copy() for w in model.get_weights()]
    x, y = sample(digits.x_val, digits.y_val, 200)
    units = magnitude_units([model.get_layer("conv2d"), model.get_layer("dense")])
    curves = scan(model, units, x, y, (0.5, 0.99))
    assert [c.name for c in curves] == ["conv2d", "dense"]
    assert curves[1].params == model.get_layer("dense").kernel.shape.num_elements()
    for c in curves:  # pruning 99 % of a layer hurts more than 50 %
        assert c.loss_increase[1] > c.loss_increase[0] and c.loss_increase[1] > 0.05
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
