"""Channel pruning surgery on small models with a residual add, a depthwise conv, concatenations, BN, Flatten and
Dense heads: which channels are tied, what is fixed, and the slim model computing exactly what the original
computes with the removed channels' readers zeroed."""

from __future__ import annotations

import numpy as np
import pytest


def _bn_noise(model, seed=0):
    """BN statistics away from (0, 1), so slicing them wrongly shows in the outputs."""
    import tf_keras as keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") if i != 1
                               else rng.normal(size=w.shape).astype("float32")
                               for i, w in enumerate(layer.get_weights())])
    return model


@pytest.fixture(scope="module")
def block_model():
    """stem → inverted residual (expand, depthwise, project, Add) → Concatenate with a side conv → strided conv →
    (GlobalAveragePooling | Flatten → Dense) → Concatenate → logits → softmax."""
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    layers = keras.layers
    inp = keras.Input((8, 8, 3), name="input")
    x = layers.ReLU(name="r0")(layers.BatchNormalization(name="stem_bn")(
        layers.Conv2D(8, 3, padding="same", name="stem")(inp)))
    y = layers.ReLU(name="r1")(layers.BatchNormalization(name="expand_bn")(layers.Conv2D(16, 1, name="expand")(x)))
    y = layers.BatchNormalization(name="dw_bn")(layers.DepthwiseConv2D(3, padding="same", name="dw")(y))
    y = layers.BatchNormalization(name="project_bn")(layers.Conv2D(8, 1, name="project")(y))
    x = layers.Add(name="add")([x, y])
    z = layers.Conv2D(4, 3, padding="same", name="side")(x)
    x = layers.Concatenate(name="cat")([x, z])
    x = layers.BatchNormalization(name="c2_bn")(layers.Conv2D(6, 3, strides=2, name="c2")(x))
    a = layers.GlobalAveragePooling2D(name="gap")(x)
    f = layers.Dense(12, activation="relu", name="fc")(layers.Flatten(name="flat")(x))
    h = layers.Concatenate(name="cat2")([a, f])
    out = layers.Activation("softmax", name="softmax")(layers.Dense(10, name="logits")(h))
    return _bn_noise(keras.Model(inp, out, name="block"))


def test_tied_channels_form_one_group_and_outputs_stay(block_model):
    from edgeopt.train import channels

    g = channels.analyse(block_model)
    found = {grp.name: grp for grp in channels.groups(g)}
    # the residual add ties the stem's and the projection's channels; the classifier's outputs are never cut
    assert set(found) == {"stem+project", "expand", "side", "c2", "fc"}
    assert found["stem+project"].layers == ("stem", "project") and len(found["stem+project"].sets) == 8
    assert all(len(s) == 2 for s in found["stem+project"].sets)
    assert "logits" not in {n for grp in found.values() for n in grp.layers}
    assert g.unsupported == {"softmax": "softmax mixes its channels"}


@pytest.mark.parametrize("importance", ["l1", "bn_gamma"])
def test_slim_model_equals_the_original_with_removed_channels_zeroed(block_model, importance):
    from edgeopt.train import channels

    g = channels.analyse(block_model)
    found = channels.groups(g)
    removed = channels.choose(g, {grp.name: 0.5 for grp in found}, importance, found)
    slim = channels.slim(g, removed)
    counts = channels.channel_counts(g, removed)
    assert counts == {"stem": {"before": 8, "after": 4}, "expand": {"before": 16, "after": 8},
                      "project": {"before": 8, "after": 4}, "side": {"before": 4, "after": 2},
                      "c2": {"before": 6, "after": 3}, "fc": {"before": 12, "after": 6},
                      "logits": {"before": 10, "after": 10}}
    assert slim.output_shape == block_model.output_shape and slim.input_shape == block_model.input_shape
    assert slim.get_layer("dw").depthwise_kernel.shape[-2] == 8 and slim.get_layer("expand_bn").gamma.shape[0] == 8
    assert slim.get_layer("fc").kernel.shape[0] == 3 * 3 * 3  # Flatten rows of the kept channels only
    # parameters: every Conv/Dense/BN/depthwise weight of a removed channel gone, nothing else
    assert slim.count_params() < 0.45 * block_model.count_params()
    x = np.random.default_rng(1).random((16, 8, 8, 3), dtype=np.float32)
    restore = channels.zero_removed(g, removed)
    try:
        zeroed = np.asarray(block_model(x, training=False))
    finally:
        restore()
    np.testing.assert_allclose(np.asarray(slim(x, training=False)), zeroed, atol=1e-5)
    assert not np.allclose(np.asarray(block_model(x, training=False)), zeroed, atol=1e-3)  # the cut did something


def test_the_least_important_filters_go(block_model):
    from edgeopt.train import channels

    g = channels.analyse(block_model)
    (side,) = [grp for grp in channels.groups(g) if grp.name == "side"]
    removed = channels.choose(g, {"side": 0.5}, "l1", [side])
    l1 = np.abs(block_model.get_layer("side").kernel.numpy()).reshape(-1, 4).sum(0)
    gone = [i for i, n in enumerate(g.produced["side"]) if g.find(n) in removed]
    assert sorted(gone) == sorted(np.argsort(l1)[:2].tolist())


def test_unsupported_layers_keep_their_channels_and_a_layer_keeps_one():
    import tf_keras as keras

    from edgeopt.train import channels

    inp = keras.Input((6, 6, 2))
    a = keras.layers.Conv2D(4, 3, name="a")(inp)
    b = keras.layers.Conv2D(4, 1, name="b")(a)
    r = keras.layers.Reshape((4 * 4 * 4,), name="reshape")(b)  # no rule: b's channels stay
    out = keras.layers.Dense(3, name="head")(r)
    model = keras.Model(inp, out)
    g = channels.analyse(model)
    assert "reshape" in g.unsupported
    found = channels.groups(g)
    assert [grp.name for grp in found] == ["a"]
    removed = channels.choose(g, {"a": 0.99}, "l1", found)
    slim = channels.slim(g, removed)
    assert slim.get_layer("a").filters == 1 and slim.get_layer("b").filters == 4
    x = np.random.default_rng(0).random((4, 6, 6, 2), dtype=np.float32)
    restore = channels.zero_removed(g, removed)
    np.testing.assert_allclose(np.asarray(slim(x)), np.asarray(model(x)), atol=1e-5)
    restore()


def test_slim_model_converts_to_tflite_with_fewer_macs(block_model):
    from edgeopt.core import graph
    from edgeopt.stages.convert.tflite import tflite_bytes
    from edgeopt.train import channels

    g = channels.analyse(block_model)
    found = channels.groups(g)
    slim = channels.slim(g, channels.choose(g, {grp.name: 0.5 for grp in found}, "l1", found))
    before, after = (graph.read_tflite(tflite_bytes(m, "fp32")) for m in (block_model, slim))
    # stem 8x8x(3·9)·8 + expand 64·8·16 + dw 64·9·16 + project 64·16·8 + side 64·(8·9)·4 + c2 9·(12·9)·6
    # + fc 54·12 + logits 18·10
    assert before.macs() == 8 * 8 * 27 * 8 + 64 * 8 * 16 + 64 * 9 * 16 + 64 * 16 * 8 + 64 * 72 * 4 + 9 * 108 * 6 \
        + 54 * 12 + 18 * 10
    assert after.macs() < 0.4 * before.macs()


def test_a_sequential_model_prunes_from_its_first_layer():
    import tf_keras as keras

    from edgeopt.train import channels

    model = keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Conv2D(6, 3, name="c1"),
                              keras.layers.BatchNormalization(name="bn"), keras.layers.Flatten(name="flat"),
                              keras.layers.Dense(3, name="head")])
    g = channels.analyse(model)
    found = channels.groups(g)
    assert [grp.name for grp in found] == ["c1"] and not g.unsupported
    removed = channels.choose(g, {"c1": 0.5}, "l1", found)
    slim = channels.slim(g, removed)
    x = np.random.default_rng(0).random((4, 6, 6, 2), dtype=np.float32)
    restore = channels.zero_removed(g, removed)
    np.testing.assert_allclose(np.asarray(slim(x)), np.asarray(model(x)), atol=1e-5)
    restore()
    assert slim.get_layer("c1").filters == 3 and slim.get_layer("head").kernel.shape[0] == 4 * 4 * 3
