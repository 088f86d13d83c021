"""BatchNormalization folded into the layer before it (train/fold.py): the folded model computes what the original
computes in inference mode, leaves BNs it cannot fold in place, and leaves the input model untouched."""

from __future__ import annotations

import numpy as np
import pytest


def _layers():
    import tf_keras as keras

    return keras, keras.layers


def _moved(model, x) -> None:
    """Random BN statistics and affine weights, so a fold that ignores any of them shows."""
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if "BatchNormalization" in type(layer).__name__:
            layer.set_weights([rng.uniform(0.5, 2.0, w.shape).astype("float32") if "variance" in w.name
                               else rng.normal(0, 0.5, w.shape).astype("float32") for w in layer.weights])


def _conv_bn(keras, layers):
    inp = keras.Input((8, 8, 3))
    x = layers.Conv2D(6, 3, padding="same", use_bias=False, name="c1")(inp)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.ReLU()(x)
    x = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(x)  # with its own bias
    x = layers.BatchNormalization(name="bn2", center=False)(x)
    x = layers.Conv2D(4, 1, activation="relu", name="c_relu")(x)  # fused activation: its BN cannot fold
    x = layers.BatchNormalization(name="bn3")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(5, name="d")(x)
    x = layers.BatchNormalization(name="bn4", scale=False)(x)
    return keras.Model(inp, layers.Softmax()(x))


def _shared_output(keras, layers):
    inp = keras.Input((6, 6, 2))
    c = layers.Conv2D(4, 3, padding="same", name="c")(inp)
    b = layers.BatchNormalization(name="bn")(c)
    x = layers.Add()([b, c])  # the conv's output is read beside the BN: folding would change the Add
    x = layers.Flatten()(x)
    return keras.Model(inp, layers.Dense(3, name="d")(x))


def test_folded_model_computes_the_same():
    from edgeopt.train.fold import fold

    keras, layers = _layers()
    model = _conv_bn(keras, layers)
    x = np.random.default_rng(1).normal(size=(16, 8, 8, 3)).astype("float32")
    _moved(model, x)
    before = model.get_weights()
    folded, pairs = fold(model)
    assert pairs == {"bn1": "c1", "bn2": "dw", "bn4": "d"}  # bn3 follows a fused ReLU
    names = [layer.name for layer in folded.layers]
    assert "bn3" in names and not {"bn1", "bn2", "bn4"} & set(names)
    assert folded.get_layer("c1").use_bias and len(folded.get_layer("c1").get_weights()) == 2
    np.testing.assert_allclose(folded(x, training=False).numpy(), model(x, training=False).numpy(), atol=1e-5)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))  # input untouched


def test_bn_whose_input_is_read_elsewhere_stays():
    from edgeopt.train.fold import fold

    keras, layers = _layers()
    model = _shared_output(keras, layers)
    folded, pairs = fold(model)
    assert pairs == {} and folded is model


@pytest.mark.parametrize("builder, kwargs", [("small_cnn", {"width": 0.25, "depth": 2}),
                                             ("mobilenet_v2_like", {"alpha": 0.35, "blocks": [[1, 16, 1, 1],
                                                                                               [6, 24, 2, 2]]})])
def test_zoo_models_fold_every_bn(builder, kwargs, digits):
    from edgeopt.models import zoo
    from edgeopt.train.fold import fold

    model = zoo.build(builder, digits.input_shape, digits.num_classes, **kwargs)
    _moved(model, digits.x_train[:8])
    folded, pairs = fold(model)
    bns = [layer.name for layer in model.layers if "BatchNormalization" in type(layer).__name__]
    assert sorted(pairs) == sorted(bns)
    x = digits.x_val[:32]
    np.testing.assert_allclose(folded(x, training=False).numpy(), model(x, training=False).numpy(), atol=1e-5)


def test_layers_shared_with_another_model_still_fold():
    """tfmot's strip/clone reuse layer objects, so a BN has calls in other models too: only this model's count."""
    from edgeopt.train.fold import fold

    keras, layers = _layers()
    model = _conv_bn(keras, layers)
    x = np.random.default_rng(2).normal(size=(4, 8, 8, 3)).astype("float32")
    _moved(model, x)
    again = keras.models.clone_model(model, clone_function=lambda layer: layer)  # the same layer objects
    folded, pairs = fold(again)
    assert pairs == {"bn1": "c1", "bn2": "dw", "bn4": "d"}
    np.testing.assert_allclose(folded(x, training=False).numpy(), model(x, training=False).numpy(), atol=1e-5)


def test_bn_left_alone_when_folding_would_change_the_model():
    """A conv whose output is also a model output, and a BN called with training=True (always batch statistics)."""
    from edgeopt.train.fold import fold

    keras, layers = _layers()
    inp = keras.Input((6, 6, 2))
    c = layers.Conv2D(4, 3, padding="same", name="c")(inp)
    b = layers.BatchNormalization(name="bn")(c)
    c2 = layers.Conv2D(4, 3, padding="same", name="c2")(b)
    b2 = layers.BatchNormalization(name="bn2")(c2, training=True)
    model = keras.Model(inp, [c, layers.Flatten()(b2)])
    _, pairs = fold(model)
    assert pairs == {}


def test_named_inputs_and_outputs_keep_their_structure():
    from edgeopt.train.fold import fold

    keras, layers = _layers()
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    x = layers.BatchNormalization(name="bn")(layers.Dense(3, name="d")(layers.Concatenate()([a, b])))
    model = keras.Model({"a": a, "b": b}, {"score": layers.Dense(1, name="score")(x), "code": x})
    _moved(model, None)
    folded, pairs = fold(model)
    assert pairs == {"bn": "d"}
    feed = {"a": np.ones((2, 4), "float32"), "b": np.full((2, 4), 2.0, "float32")}
    got, want = folded(feed, training=False), model(feed, training=False)
    assert isinstance(got, dict) and set(got) == {"score", "code"}
    for k in want:
        np.testing.assert_allclose(got[k].numpy(), want[k].numpy(), atol=1e-5)
