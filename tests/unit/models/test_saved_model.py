"""Plain SavedModels: which signature is used, --signature, and what describe() reports."""

from __future__ import annotations

import pytest

from edgeopt.errors import UsageError


@pytest.fixture(scope="module")
def two_signatures(tmp_path_factory):
    """A tf.Module with signatures 'double' and 'negate' and no serving_default."""
    import tensorflow as tf

    class M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def double(self, x):
            return {"y": 2 * x}

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def negate(self, x):
            return {"y": -x, "abs": tf.abs(x)}

    m = M()
    path = tmp_path_factory.mktemp("sm") / "two"
    tf.saved_model.save(m, str(path), signatures={"double": m.double, "negate": m.negate})
    return path


def test_several_signatures_without_serving_default_ask_for_one(two_signatures):
    from edgeopt.models.load import load_model

    with pytest.raises(UsageError, match="no serving_default signature but several: double, negate") as e:
        load_model(two_signatures)
    assert "--signature" in e.value.fix
    with pytest.raises(UsageError, match="no signature 'nope' .*double, negate"):
        load_model(two_signatures, signature="nope")


def test_signature_picks_which_function_runs_and_is_described(two_signatures):
    import numpy as np

    from edgeopt.models.load import load_model
    from edgeopt.models.saved_model import describe

    x = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(np.asarray(load_model(two_signatures, signature="double")(x)), 2 * x)
    negate = load_model(two_signatures, signature="negate")
    found = describe(negate)
    assert found["signature"] == "negate" and found["signatures"] == ["double", "negate"]
    assert found["inputs"] == [{"name": "x", "dtype": "float32", "shape": [None, 3]}]
    assert [o["name"] for o in found["outputs"]] == ["abs", "y"] and found["scored_output"] == "abs"
    np.testing.assert_allclose(np.asarray(negate(-x)), x)  # 'abs', the first output by name


def test_tf_keras_model_is_described_from_its_tensors(tiny_model_path):
    from edgeopt.models.load import load_model
    from edgeopt.models.saved_model import describe

    found = describe(load_model(tiny_model_path))
    assert found["kind"] == "tf_keras"
    assert found["inputs"][0]["dtype"] == "float32" and found["inputs"][0]["shape"] == [None, 8, 8, 1]
    assert found["outputs"][0]["shape"] == [None, 10]
