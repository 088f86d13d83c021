"""runtimes.evaluate: a file and its bytes give the same outputs, the source model's up to conversion error."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.core import metrics
from edgeopt.runtimes import evaluate


@pytest.mark.parametrize("name, fmt", [("tiny_fp32.tflite", "tflite"), ("tiny_fp32.onnx", "onnx")])
def test_path_and_bytes_score_the_same(compressed, tiny_model_path, digits, name, fmt):
    from edgeopt.models.load import load_model

    out, _ = compressed
    x, y = digits.x_test[:64], digits.y_test[:64]
    from_path = evaluate.outputs(out / name, fmt, x)
    from_bytes = evaluate.outputs((out / name).read_bytes(), fmt, x)
    np.testing.assert_array_equal(from_path, from_bytes)
    expected = np.asarray(load_model(tiny_model_path)(x, training=False))
    np.testing.assert_allclose(from_path, expected, atol=1e-4)
    assert evaluate.accuracy(out / name, fmt, x, y) == metrics.accuracy(expected, y)
