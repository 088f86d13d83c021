"""He / Xavier initialisation: names checked without TensorFlow, variances as the papers say, reinitialise."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.errors import UsageError
from edgeopt.models import init
from edgeopt.recipe import Recipe


def test_names_aliases_and_unknown():
    assert init.check("he_normal") == "he_normal"
    assert init.check("Xavier_Uniform") == "glorot_uniform"
    assert init.check("kaiming_normal") == "he_normal"
    with pytest.raises(UsageError, match="unknown initializer 'he_norml' .*did you mean 'he_normal'"):
        init.check("he_norml")


def test_for_activation_picks_he_or_glorot_and_honours_override():
    assert init.for_activation("relu") == "he_normal"
    assert init.for_activation("relu6") == "he_normal"
    assert init.for_activation("tanh") == "glorot_uniform"
    assert init.for_activation("sigmoid") == "glorot_uniform"
    assert init.for_activation("relu", "xavier_normal") == "glorot_normal"


def test_recipe_aliases_become_keras_names_and_bad_ones_fail():
    r = Recipe.from_dict({"stages": [{"distill": {"student": {"zoo": "small_cnn", "init": "xavier_uniform"}}}]})
    assert r.stages[0][1].student.options["init"] == "glorot_uniform"
    with pytest.raises(UsageError, match="unknown initializer 'lecun_wrong'"):
        Recipe.from_dict({"stages": [{"tune": {"space": {"init": {"choice": ["he_normal", "lecun_wrong"]}}}}]})


@pytest.mark.parametrize("activation, expected_var", [("relu", lambda fi, fo: 2 / fi),
                                                      ("tanh", lambda fi, fo: 2 / (fi + fo))])
def test_zoo_kernels_have_the_paper_variance(activation, expected_var):
    from edgeopt.models import zoo

    model = zoo.build("mlp", (512,), 10, units=256, depth=1, activation=activation, batch_norm=False)
    kernel = model.get_layer("dense1").get_weights()[0]
    fan_in, fan_out = kernel.shape
    assert np.var(kernel) == pytest.approx(expected_var(fan_in, fan_out), rel=0.1)


def test_reinitialize_is_seeded_and_resets_batch_norm():
    from edgeopt.models import zoo

    a = zoo.build("small_cnn", (8, 8, 1), 10, width=0.25)
    a.get_layer("block1_bn").moving_mean.assign(np.full(8, 3.0, np.float32))
    init.reinitialize(a, seed=1)
    w1 = a.get_layer("block1_conv").get_weights()[0].copy()
    assert np.all(a.get_layer("block1_bn").moving_mean.numpy() == 0)
    init.reinitialize(a, seed=1)
    np.testing.assert_array_equal(a.get_layer("block1_conv").get_weights()[0], w1)
    init.reinitialize(a, seed=2)
    assert not np.array_equal(a.get_layer("block1_conv").get_weights()[0], w1)
