"""edgeopt.models.zoo: builders, the separate softmax layer, initialisers by activation, BN placement, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgeopt.errors import UsageError
from edgeopt.models.init import default_initializer
from edgeopt.models.zoo import BUILDERS, build, options
from tests.conftest import SAMPLE_MODELS

keras = pytest.importorskip("tf_keras")

SHAPES = {"small_cnn": (8, 8, 1), "mobilenet_v2_like": (32, 32, 3), "mlp": (8, 8, 1)}


def _kernels(model):
    """(layer, initializer) for every conv, depthwise and dense kernel except the logits layer."""
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):  # a Conv2D subclass: test it first
            out.append((layer, layer.depthwise_initializer))
        elif isinstance(layer, keras.layers.Conv2D | keras.layers.Dense) and layer.name != "logits":
            out.append((layer, layer.kernel_initializer))
    return out


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_builder_output_and_separate_softmax(name):
    model = build(name, SHAPES[name], 7)
    assert model.output_shape == (None, 7)
    probs = model.predict(np.zeros((2, *SHAPES[name]), np.float32), verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    last, before = model.layers[-1], model.layers[-2]
    assert last.name == "softmax" and isinstance(last, keras.layers.Activation)
    assert last.get_config()["activation"] == "softmax" and last.dtype == "float32"
    assert before.name == "logits" and isinstance(before, keras.layers.Dense)
    assert before.get_config()["activation"] == "linear" and before.units == 7
    assert model.name.startswith(name)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_he_for_relu_glorot_for_tanh(name):
    relu = _kernels(build(name, SHAPES[name], 3, activation="relu"))
    tanh = _kernels(build(name, SHAPES[name], 3, activation="tanh"))
    assert relu and tanh
    assert all(isinstance(init, keras.initializers.HeNormal) for _, init in relu)
    assert all(isinstance(init, keras.initializers.GlorotUniform) for _, init in tanh)


def test_init_overrides_the_default():
    model = build("small_cnn", (8, 8, 1), 3, activation="relu", init="xavier_uniform")
    assert all(isinstance(init, keras.initializers.GlorotUniform) for _, init in _kernels(model))
    with pytest.raises(UsageError, match="unknown initializer"):
        build("small_cnn", (8, 8, 1), 3, init="hee_normal")


def test_default_initializer_by_family():
    for act in ("relu", "relu6", "elu", "selu", "swish", "gelu", "leaky_relu"):
        assert default_initializer(act) == "he_normal"
    for act in ("tanh", "sigmoid", "linear"):
        assert default_initializer(act) == "glorot_uniform"
    with pytest.raises(UsageError, match="did you mean 'relu'"):
        default_initializer("rleu")


@pytest.mark.parametrize("name", ["small_cnn", "mobilenet_v2_like"])
def test_batch_norm_follows_every_conv(name):
    model = build(name, SHAPES[name], 3)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]  # includes depthwise
    assert convs
    for conv in convs:
        following = [node.outbound_layer for node in conv.outbound_nodes]
        assert len(following) == 1 and isinstance(following[0], keras.layers.BatchNormalization), conv.name
        assert not conv.use_bias, conv.name  # BN's beta is the bias
    plain = build(name, SHAPES[name], 3, batch_norm=False)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in plain.layers)
    assert all(layer.use_bias for layer in plain.layers if isinstance(layer, keras.layers.Conv2D))


def test_mlp_batch_norm_after_dense():
    model = build("mlp", (8, 8, 1), 3, depth=3)
    hidden = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense) and layer.name != "logits"]
    assert len(hidden) == 3
    assert all(isinstance(d.outbound_nodes[0].outbound_layer, keras.layers.BatchNormalization) for d in hidden)


def test_small_cnn_downsamples_by_stride_with_fewer_tflite_ops():
    from edgeopt.core import graph
    from edgeopt.stages.convert.tflite import tflite_bytes

    pooled, strided = (build("small_cnn", (8, 8, 1), 10, width=0.25, downsample=d) for d in ("pool", "stride"))
    assert strided.name == "small_cnn_w0p25_d2_s" and strided.count_params() == pooled.count_params()
    assert not any(isinstance(layer, keras.layers.MaxPooling2D) for layer in strided.layers)
    assert [layer.strides for layer in strided.layers if type(layer) is keras.layers.Conv2D] == [(2, 2), (2, 2)]
    assert strided.get_layer("block2_relu").output_shape == (None, 2, 2, 16)  # the pooled model's map sizes
    assert pooled.get_layer("block2_pool").output_shape == (None, 2, 2, 16)
    ops = {n: [op.type for op in graph.read_tflite(tflite_bytes(m, "fp32")).main.ops] for n, m in
           (("pool", pooled), ("stride", strided))}
    assert "MAX_POOL_2D" in ops["pool"] and "MAX_POOL_2D" not in ops["stride"]
    assert len(ops["stride"]) == len(ops["pool"]) - 2
    # odd sizes: a stride-2 'same' conv rounds up; still a working classifier
    assert build("small_cnn", (9, 9, 1), 3, downsample="stride").output_shape == (None, 3)
    for bad in ("avg", ["pool"], ["pool", "avg"], 3):
        with pytest.raises(UsageError, match="downsample"):
            build("small_cnn", (8, 8, 1), 3, downsample=bad)


def test_small_cnn_downsamples_each_block_its_own_way():
    from edgeopt.models.zoo import ModelSpec

    mixed = build("small_cnn", (8, 8, 1), 10, width=0.25, downsample=["pool", "stride"])
    assert mixed.name == "small_cnn_w0p25_d2_p_s"
    assert [layer.strides for layer in mixed.layers if type(layer) is keras.layers.Conv2D] == [(1, 1), (2, 2)]
    assert [layer.name for layer in mixed.layers if isinstance(layer, keras.layers.MaxPooling2D)] == ["block1_pool"]
    assert mixed.get_layer("block2_relu").output_shape == (None, 2, 2, 16)
    spec = ModelSpec.model_validate({"zoo": "small_cnn", "width": 0.25, "downsample": ["pool", "stride"]})
    assert build(spec.zoo, (8, 8, 1), 10, **spec.options).name == mixed.name
    assert hash(spec) and spec.model_dump()["downsample"] == ["pool", "stride"]  # a recipe key the cache can hash


def test_width_depth_and_alpha_scale_the_models():
    def filters(model):
        return [layer.filters for layer in model.layers if type(layer) is keras.layers.Conv2D]

    assert filters(build("small_cnn", (8, 8, 1), 3, depth=3)) == [32, 64, 128]
    assert filters(build("small_cnn", (8, 8, 1), 3, width=0.25)) == [8, 16]
    assert build("mlp", (8, 8, 1), 3, width=0.5).get_layer("dense1").units == 64
    full, small = build("mobilenet_v2_like", (32, 32, 3), 10), build("mobilenet_v2_like", (32, 32, 3), 10, alpha=0.5)
    assert small.count_params() < 0.6 * full.count_params()
    assert any(isinstance(layer, keras.layers.Add) for layer in full.layers)  # residuals where shapes match
    assert all(isinstance(layer, keras.layers.DepthwiseConv2D) for layer in full.layers if layer.name.endswith("_dw"))
    # strides stop while the map is small, so 8x8 inputs work too
    assert build("mobilenet_v2_like", (8, 8, 1), 3).output_shape == (None, 3)


def test_shallower_keeps_the_rows_that_downsample_and_widen():
    from edgeopt.models.zoo import MOBILENET_V2_32PX_BLOCKS, shallower

    table = MOBILENET_V2_32PX_BLOCKS  # 16 x1, 24 x2, 32 x2 (s2), 64 x2 (s2), 96 x1: 8 blocks
    assert shallower(table, 8) == list(table)
    assert [r[1:3] for r in shallower(table, 6)] == [(16, 1), (24, 2), (32, 1), (64, 1), (96, 1)]
    assert [r[1] for r in shallower(table, 5)] == [16, 24, 32, 64, 96]  # one block per row
    assert [r[1] for r in shallower(table, 4)] == [16, 24, 32, 64]  # the last stride-1 row goes first
    assert shallower(table, 3) == [(1, 16, 1, 1), (6, 32, 1, 2), (6, 64, 1, 2)]
    assert shallower(table, 1) == [(6, 64, 1, 2)]
    for bad in (0, 9):
        with pytest.raises(UsageError, match="depth"):
            shallower(table, bad)


def test_mobilenet_depth_and_kernel():
    def blocks(model):
        return sorted({layer.name.split("_")[0] for layer in model.layers if layer.name.endswith("_dw")})

    deep, shallow = build("mobilenet_v2_like", (32, 32, 3), 10), build("mobilenet_v2_like", (32, 32, 3), 10, depth=3)
    assert len(blocks(deep)) == 8 and blocks(shallow) == ["block1", "block2", "block3"]
    assert shallow.count_params() < 0.3 * deep.count_params() and shallow.name == "mobilenet_v2_like_a1_d3"
    assert shallow.output_shape == (None, 10)
    wide = build("mobilenet_v2_like", (32, 32, 3), 10, depth=3, kernel=5)
    assert {layer.kernel_size for layer in wide.layers if layer.name.endswith("_dw")} == {(5, 5)}
    assert wide.name == "mobilenet_v2_like_a1_d3_k5"
    # a custom table is cut the same way
    table = [(1, 8, 1, 1), (4, 16, 3, 2)]
    assert len(blocks(build("mobilenet_v2_like", (16, 16, 1), 3, blocks=table, depth=2))) == 2
    with pytest.raises(UsageError, match="depth=5 for a table of 4 blocks"):
        build("mobilenet_v2_like", (16, 16, 1), 3, blocks=table, depth=5)


def test_flatten_head_and_model_name():
    model = build("small_cnn", (8, 8, 1), 3, head="flatten", width=0.5, name="student")
    assert model.name == "student" and any(isinstance(layer, keras.layers.Flatten) for layer in model.layers)
    assert build("small_cnn", (8, 8, 1), 3, width=0.5).name == "small_cnn_w0p5_d2"


def test_unknown_builder_and_option():
    with pytest.raises(UsageError) as err:
        build("small_cn", (8, 8, 1), 3)
    assert "did you mean 'small_cnn'" in err.value.problem and "mobilenet_v2_like" in err.value.fix
    with pytest.raises(UsageError) as err:
        build("small_cnn", (8, 8, 1), 3, widht=0.5)
    assert "did you mean 'width'" in err.value.problem and "base_filters" in err.value.fix
    assert "alpha" in options("mobilenet_v2_like") and "units" in options("mlp")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"width": 0}, "width"),
        ({"depth": 0}, "depth"),
        ({"dropout": 1.0}, "dropout"),
        ({"activation": "relu7"}, "unknown activation"),
        ({"head": "max"}, "head"),
    ],
)
def test_bad_option_values(kwargs, match):
    with pytest.raises(UsageError, match=match):
        build("small_cnn", (8, 8, 1), 3, **kwargs)


def test_bad_shapes_and_classes():
    with pytest.raises(UsageError, match="height, width, channels"):
        build("small_cnn", (64,), 3)
    with pytest.raises(UsageError, match="num_classes"):
        build("mlp", (64,), 1)
    assert build("mlp", (64,), 2).output_shape == (None, 2)


def test_import_is_light():
    code = "import sys, edgeopt.models.zoo; print(sorted(m for m in ('tensorflow', 'tf_keras', 'keras') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_sample_digits_model_is_a_zoo_model_with_the_recorded_accuracy(digits):
    path = SAMPLE_MODELS / "digits_cnn.keras"
    if not path.exists():
        pytest.skip("run python sample_models/build.py")
    entry = {e["name"]: e for e in json.loads((SAMPLE_MODELS / "models.json").read_text())["models"]}["digits_cnn"]
    model = keras.models.load_model(path)
    assert model.layers[-1].name == "softmax" and model.layers[-2].name == "logits"
    assert model.count_params() == entry["params"]
    accuracy = np.mean(np.argmax(model.predict(digits.x_test, verbose=0), axis=1) == digits.y_test)
    assert accuracy == pytest.approx(entry["test_accuracy"], abs=1e-4)
