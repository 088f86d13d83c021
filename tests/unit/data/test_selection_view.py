"""data.arrays.selection_view: the view optimize and the explore benchmark rank settings on."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.core.inputs import Inputs
from edgeopt.data.arrays import selection_view
from edgeopt.data.dataset import Dataset
from edgeopt.errors import UsageError


def _data(n_train=100, n_val=200, n_test=30, seed=0):
    rng = np.random.default_rng(seed)
    # x carries its own row id so that rows can be followed through the view
    x = [np.arange(n, dtype=np.float32)[:, None] + off for n, off in ((n_train, 0), (n_val, 10_000), (n_test, 20_000))]
    y = [rng.choice(3, size=n, p=[0.6, 0.3, 0.1]) for n in (n_train, n_val, n_test)]
    return Dataset.from_arrays("d", x[0], y[0], x[1], y[1], x[2], y[2])


def test_the_stages_choose_on_part_of_val_and_the_rest_ranks():
    d = _data()
    v = selection_view(d, 0.4, seed=3)
    np.testing.assert_array_equal(v.x_train, d.x_train)  # candidates train on all of train
    np.testing.assert_array_equal(v.y_train, d.y_train)
    stage_ids, ranked_ids = v.x_val[:, 0] - 10_000, v.x_test[:, 0] - 10_000
    assert len(stage_ids) == 80 and len(ranked_ids) == 120  # 40 % of 200
    assert set(stage_ids).isdisjoint(ranked_ids) and set(stage_ids) | set(ranked_ids) == set(range(200))
    assert v.x_test[:, 0].max() < 20_000  # the test split is never in the view
    np.testing.assert_array_equal(v.y_val, d.y_val[stage_ids.astype(int)])  # labels moved with their rows
    np.testing.assert_array_equal(v.y_test, d.y_val[ranked_ids.astype(int)])
    for c in range(3):  # stratified: each class in the stages' part in proportion (±1 row)
        assert abs(np.sum(v.y_val == c) - 0.4 * np.sum(d.y_val == c)) <= 1
    assert v.info["selection_view"] == {"holdout": 0.4, "stage_rows": 80, "ranked_rows": 120, "of_val_rows": 200,
                                        "test_split": "the ranked rows"}
    # the final view of the chosen candidate: the same train and stage rows, and the real test split
    f = selection_view(d, 0.4, seed=3, final=True)
    np.testing.assert_array_equal(f.x_val, v.x_val)
    np.testing.assert_array_equal(f.x_train, v.x_train)
    np.testing.assert_array_equal(f.x_test, d.x_test)
    np.testing.assert_array_equal(f.y_test, d.y_test)
    assert f.info["selection_view"]["test_split"] == "the data set's"
    again = selection_view(d, 0.4, seed=3)
    np.testing.assert_array_equal(again.x_val, v.x_val)  # seeded: every worker of a study gets the same view
    assert not np.array_equal(selection_view(d, 0.4, seed=4).x_val, v.x_val)


def test_holdout_zero_lets_all_of_val_do_both():
    d = _data()
    v = selection_view(d, 0)
    for a, b in ((v.x_train, d.x_train), (v.x_val, d.x_val), (v.x_test, d.x_val), (v.y_test, d.y_val)):
        np.testing.assert_array_equal(a, b)


def test_per_split_targets_and_several_inputs_move_with_their_rows():
    rng = np.random.default_rng(1)
    x = {"a": rng.normal(size=(50, 2)).astype(np.float32), "b": np.arange(50, dtype=np.float32)[:, None]}
    d = Dataset.from_arrays("m", Inputs({k: v[:30] for k, v in x.items()}), rng.normal(size=30), Inputs(x),
                            rng.normal(size=50), Inputs({k: v[:5] for k, v in x.items()}), rng.normal(size=5))
    assert d.label_kind == "values"
    v = selection_view(d, 0.2)
    stage_rows, ranked_rows = v.x_val["b"][:, 0].astype(int), v.x_test["b"][:, 0].astype(int)
    assert len(stage_rows) == 10 and len(ranked_rows) == 40 and set(stage_rows).isdisjoint(ranked_rows)
    t_train, t_val, t_test = v.targets
    np.testing.assert_array_equal(t_train, d.targets[0])
    np.testing.assert_array_equal(t_val, d.targets[1][stage_rows])
    np.testing.assert_array_equal(t_test, d.targets[1][ranked_rows])
    np.testing.assert_array_equal(selection_view(d, 0.2, final=True).targets[2], d.targets[2])


def test_no_validation_split_or_one_row_is_a_usage_error():
    d = _data()
    empty = Dataset.from_arrays("e", d.x_train, d.y_train, d.x_val[:0], d.y_val[:0], d.x_test, d.y_test)
    with pytest.raises(UsageError, match="no validation split"):
        selection_view(empty, 0.5)
    one = Dataset.from_arrays("o", d.x_train, d.y_train, d.x_val[:1], d.y_val[:1], d.x_test, d.y_test)
    with pytest.raises(UsageError, match=r"smaller `optimize: \{holdout: \.\.\.\}` \(0: none\)"):
        selection_view(one, 0.5)
    assert len(selection_view(one, 0).x_test) == 1
    ten = Dataset.from_arrays("t", d.x_train, d.y_train, d.x_val[:10], d.y_val[:10], d.x_test, d.y_test)
    with pytest.raises(UsageError, match="too few to give 0.97 of them to the stages"):
        selection_view(ten, 0.97)  # all ten rows to the stages, none left to rank
    assert len(selection_view(ten, 0.5).x_test) == 5
