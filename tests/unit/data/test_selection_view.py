"""data.arrays.selection_view: the view optimize and the explore benchmark rank settings on."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.core.inputs import Inputs
from edgeopt.data.arrays import selection_view
from edgeopt.data.dataset import Dataset
from edgeopt.errors import UsageError


def _data(n_train=200, n_val=40, n_test=30, seed=0, x_train=None):
    rng = np.random.default_rng(seed)
    # x carries its own row id so that rows can be followed through the view
    x = [np.arange(n, dtype=np.float32)[:, None] + off for n, off in ((n_train, 0), (n_val, 10_000), (n_test, 20_000))]
    y = [rng.choice(3, size=n, p=[0.6, 0.3, 0.1]) for n in (n_train, n_val, n_test)]
    return Dataset.from_arrays("d", x_train if x_train is not None else x[0], y[0], x[1], y[1], x[2], y[2])


def test_the_view_scores_on_val_and_its_stages_choose_on_held_out_train_rows():
    d = _data()
    v = selection_view(d, 0.15, seed=3)
    np.testing.assert_array_equal(v.x_test, d.x_val)  # candidates are ranked on the validation split
    np.testing.assert_array_equal(v.y_test, d.y_val)
    ids_train, ids_val = v.x_train[:, 0], v.x_val[:, 0]
    assert len(ids_val) == 30 and len(ids_train) == 170  # 15 % of 200
    assert set(ids_train).isdisjoint(ids_val) and set(ids_train) | set(ids_val) == set(range(200))
    assert ids_val.max() < 10_000 and v.x_test[:, 0].min() >= 10_000  # no validation row reaches a stage
    np.testing.assert_array_equal(v.y_val, d.y_train[ids_val.astype(int)])  # labels moved with their rows
    np.testing.assert_array_equal(v.y_train, d.y_train[ids_train.astype(int)])
    # stratified: each class in the held-out rows in proportion (±1 row) to train
    for c in range(3):
        assert abs(np.sum(v.y_val == c) - 0.15 * np.sum(d.y_train == c)) <= 1
    assert v.info["selection_view"] == {"holdout": 0.15, "stage_val_rows": 30, "train_rows": 170, "scored_rows": 40}
    again = selection_view(d, 0.15, seed=3)
    np.testing.assert_array_equal(again.x_val, v.x_val)  # seeded: every worker of a study gets the same view
    assert not np.array_equal(selection_view(d, 0.15, seed=4).x_val, v.x_val)


def test_holdout_zero_only_moves_val_to_test():
    d = _data()
    v = selection_view(d, 0)
    for a, b in ((v.x_train, d.x_train), (v.x_val, d.x_val), (v.x_test, d.x_val), (v.y_test, d.y_val)):
        np.testing.assert_array_equal(a, b)


def test_per_split_targets_and_several_inputs_move_with_their_rows():
    rng = np.random.default_rng(1)
    x = {"a": rng.normal(size=(50, 2)).astype(np.float32), "b": np.arange(50, dtype=np.float32)[:, None]}
    d = Dataset.from_arrays("m", Inputs(x), rng.normal(size=50), Inputs({k: v[:10] for k, v in x.items()}),
                            rng.normal(size=10), Inputs({k: v[:5] for k, v in x.items()}), rng.normal(size=5))
    assert d.label_kind == "values"
    v = selection_view(d, 0.2)
    held = v.x_val["b"][:, 0].astype(int)
    assert len(held) == 10 and set(held).isdisjoint(v.x_train["b"][:, 0].astype(int))
    t_train, t_val, t_test = v.targets
    np.testing.assert_array_equal(t_val, d.targets[0][held])
    np.testing.assert_array_equal(t_test, d.targets[1])
    assert len(t_train) == 40


def test_no_validation_split_or_too_little_train_is_a_usage_error():
    d = _data()
    empty = Dataset.from_arrays("e", d.x_train, d.y_train, d.x_val[:0], d.y_val[:0], d.x_test, d.y_test)
    with pytest.raises(UsageError, match="no validation split"):
        selection_view(empty, 0.15)
    one = Dataset.from_arrays("o", d.x_train[:1], d.y_train[:1], d.x_val, d.y_val, d.x_test, d.y_test)
    with pytest.raises(UsageError, match=r"holdout: 0"):
        selection_view(one, 0.15)
    assert len(selection_view(one, 0).x_train) == 1
