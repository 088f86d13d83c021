"""Inputs: several named arrays as one batch of samples."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.core.inputs import Inputs
from edgeopt.data.dataset import group_named
from edgeopt.errors import UsageError


def test_rows_select_every_input():
    x = Inputs({"a": np.arange(6).reshape(3, 2), "b": np.arange(3)})
    assert len(x) == 3 and x.names == ["a", "b"]
    assert x[1:]["a"].tolist() == [[2, 3], [4, 5]] and x[[0, 2]]["b"].tolist() == [0, 2]


@pytest.mark.parametrize("value", ["text", {"a": 1}, 3.0])
def test_a_scalar_is_not_samples(value):
    with pytest.raises(ValueError, match="holds one value"):
        Inputs({"a": np.ones((3, 2)), "b": value})


def test_a_scalar_input_in_data_keys_is_one_line_with_the_fix():  # found by the full fuzz set
    with pytest.raises(UsageError, match=r"x_train\.\*: input a holds one value") as e:
        group_named({"x_train.a": "text", "y_train": np.zeros(3)}, "--data m:f")
    assert "an array of samples" in e.value.fix
