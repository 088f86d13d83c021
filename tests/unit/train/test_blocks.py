"""Residual-branch removal on small models: which branches are removable (plain, forked inside, nested, a nested
model inside, an Add of three), which are not (projection shortcuts, a branch read outside itself), and the rebuilt
model computing exactly what the original computes with the removed branches' outputs forced to zero."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.train.test_channels import _bn_noise


def _zero_output(model, layer_name: str) -> None:
    """The branch's last layer (a BN, or a nested model ending in one) made to output zeros: γ = β = 0."""
    import tf_keras as keras

    layer = model.get_layer(layer_name)
    while isinstance(layer, keras.Model):
        layer = layer.layers[-1]
    assert isinstance(layer, keras.layers.BatchNormalization)
    w = layer.get_weights()
    w[0][:], w[1][:] = 0.0, 0.0
    layer.set_weights(w)


@pytest.fixture(scope="module")
def res_model():
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    L = keras.layers

    def cbn(x, n, name, k=3, relu=True):
        x = L.BatchNormalization(name=f"{name}_bn")(L.Conv2D(n, k, padding="same", name=name)(x))
        return L.ReLU(name=f"{name}_relu")(x) if relu else x

    inp = keras.Input((8, 8, 3), name="input")
    x = cbn(inp, 8, "stem")
    x = L.Add(name="add_a")([x, cbn(cbn(x, 8, "a1"), 8, "a2", relu=False)])  # plain block
    b = L.Concatenate(name="b_cat")([L.Conv2D(4, 1, name="b1")(x), L.Conv2D(4, 3, padding="same", name="b2")(x)])
    x = L.Add(name="add_b")([cbn(b, 8, "b3", relu=False), x])  # a fork inside; the skip comes second
    sub_in = keras.Input((8, 8, 8))
    sub = keras.Model(sub_in, L.BatchNormalization(name="sub_bn")(L.Conv2D(8, 3, padding="same")(sub_in)), name="sub")
    c = cbn(x, 8, "c1")
    c = L.Add(name="add_inner")([c, sub(c)])  # a residual inside a residual, its branch a nested model
    x = L.Add(name="add_c")([x, cbn(c, 8, "c2", relu=False)])
    x = L.Add(name="add_d")([L.Conv2D(16, 1, name="proj")(x), cbn(x, 16, "d1", relu=False)])  # projection shortcut
    x = L.Add(name="add_e")([x, cbn(x, 16, "e1", relu=False), cbn(x, 16, "e2", relu=False)])  # three inputs
    f = L.Conv2D(16, 1, name="f")(x)
    x = L.Concatenate(name="f_cat")([L.Add(name="add_f")([x, f]), f])  # the branch's output is read outside
    out = L.Dense(10, name="logits")(L.GlobalAveragePooling2D(name="gap")(x))  # logits: a softmax would saturate
    return _bn_noise(keras.Model(inp, out, name="res"))


def _x(n=6):
    return np.random.default_rng(1).random((n, 8, 8, 3), dtype=np.float32)


def test_finds_identity_branches_only(res_model):
    from edgeopt.train import blocks

    found = {b.name: b for b in blocks.find(res_model)}
    assert list(found) == ["add_a", "add_b", "add_inner", "add_c", "add_e:1", "add_e:2"]
    assert found["add_a"].layers == ("a1", "a1_bn", "a1_relu", "a2", "a2_bn") and found["add_a"].skip == "stem_relu"
    assert found["add_b"].position == 0 and set(found["add_b"].layers) == {"b1", "b2", "b_cat", "b3", "b3_bn"}
    assert found["add_inner"].layers == ("sub",) and found["add_inner"].skip == "c1_relu"
    assert {"c1", "sub", "add_inner", "c2_bn"} <= set(found["add_c"].layers)
    assert found["add_a"].params == sum(res_model.get_layer(n).count_params() for n in found["add_a"].layers)


@pytest.mark.parametrize("names", [["add_a"], ["add_b"], ["add_inner"], ["add_c"], ["add_e:2"],
                                   ["add_a", "add_c", "add_inner"], ["add_e:1", "add_e:2"], ["add_b", "add_e:1"]])
def test_removal_equals_the_branch_output_forced_to_zero(res_model, names):
    import tf_keras as keras

    from edgeopt.train import blocks
    from edgeopt.train.layers import copy_model

    found = {b.name: b for b in blocks.find(res_model)}
    slim = blocks.remove(res_model, [found[n] for n in names])
    ref = copy_model(res_model)
    for n in names:
        _zero_output(ref, found[n].layers[-1])
    x = _x()
    np.testing.assert_allclose(np.asarray(slim(x)), np.asarray(ref(x)), atol=1e-5)
    assert not np.allclose(np.asarray(slim(x)), np.asarray(res_model(x)), atol=1e-4)  # the branch did matter
    gone = {layer for n in names for layer in found[n].layers}
    kept = {layer.name for layer in slim.layers}
    assert not gone & kept and "logits" in kept and slim.name == "res"
    assert ("add_e" in kept) is (names != ["add_e:1", "add_e:2"])  # an Add left with its skip alone goes too
    for layer in slim.layers:  # fresh layers, own weights: training the copy leaves the source as it was
        assert layer is not res_model.get_layer(layer.name) or isinstance(layer, keras.layers.InputLayer)


def test_rebuilt_layers_own_their_weights(res_model):
    from edgeopt.train import blocks

    slim = blocks.remove(res_model, blocks.find(res_model)[:1])
    before = res_model.get_layer("stem").kernel.numpy().copy()
    slim.get_layer("stem").kernel.assign(np.zeros_like(before))
    np.testing.assert_array_equal(res_model.get_layer("stem").kernel.numpy(), before)


def test_models_without_removable_blocks():
    import tf_keras as keras

    from edgeopt.train import blocks

    L = keras.layers
    inp = keras.Input((6, 6, 2))
    x = L.Conv2D(4, 3, padding="same", name="c0")(inp)
    x = L.Add(name="proj_add")([L.Conv2D(8, 1, name="proj")(x), L.Conv2D(8, 3, padding="same", name="c1")(x)])
    y = L.Conv2D(8, 1, name="c2")(inp)
    x = L.Add(name="two_paths")([x, y])  # neither input is the other's skip: each reaches the model input around it
    plain = keras.Model(inp, L.Dense(3)(L.Flatten()(x)))
    seq = keras.Sequential([keras.Input((6, 6, 2)), L.Conv2D(4, 3), L.Flatten(), L.Dense(3)])
    x = np.random.default_rng(0).random((3, 6, 6, 2), dtype=np.float32)
    for model in (plain, seq):
        assert blocks.find(model) == []
        copy = blocks.remove(model, [])
        np.testing.assert_allclose(np.asarray(copy(x)), np.asarray(model(x)), atol=1e-6)


def test_residual_add_as_the_model_output_and_on_the_input():
    import tf_keras as keras

    from edgeopt.train import blocks

    inp = keras.Input((4,))
    out = keras.layers.Add(name="add")([inp, keras.layers.Dense(4, name="d")(inp)])
    model = keras.Model(inp, out)
    (b,) = blocks.find(model)
    assert b.layers == ("d",) and b.skip == inp._keras_history.layer.name
    x = np.random.default_rng(0).random((2, 4), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(blocks.remove(model, [b])(x)), x, atol=1e-6)


def test_rebuilt_model_converts_to_tflite_with_fewer_ops(res_model):
    from edgeopt.core import graph
    from edgeopt.stages.convert.tflite import tflite_bytes
    from edgeopt.train import blocks

    found = {b.name: b for b in blocks.find(res_model)}
    slim = blocks.remove(res_model, [found["add_a"], found["add_e:1"], found["add_e:2"]])
    before, after = (graph.read_tflite(tflite_bytes(m, "fp32")) for m in (res_model, slim))
    # add_a: a1, a2 (BN folded, ReLU fused) and the ADD; add_e: e1, e2 and its two ADDs
    assert len(after.main.ops) == len(before.main.ops) - 7
    assert before.macs() - after.macs() == 2 * 64 * 72 * 8 + 2 * 64 * 144 * 16


def test_select_takes_the_cheapest_and_records_the_scan(res_model):
    import tf_keras as keras

    from edgeopt.train import blocks

    model = keras.models.clone_model(res_model)
    model.set_weights(res_model.get_weights())
    bn = model.get_layer("b3_bn")  # add_b's branch made nearly silent: removing it costs almost nothing
    w = bn.get_weights()
    w[0][:], w[1][:] = 1e-4, 0.0
    bn.set_weights(w)
    logits = model.get_layer("logits")  # softened: every other removal then moves the loss measurably
    logits.set_weights([v * 0.02 for v in logits.get_weights()])
    x = np.random.default_rng(2).random((64, 8, 8, 3), dtype=np.float32)
    y = np.argmax(np.asarray(model(x)), -1)  # the model's own answers: its top-1 is 1.0
    found = blocks.find(model)
    seen = []
    for greedy in (True, False):
        chosen, scan = blocks.select(model, found, 2, x, y, greedy=greedy, prepare=seen.append)
        assert chosen[0].name == "add_b" and len(chosen) == 2
        assert scan["base"]["val_top1"] == 1.0 and scan["samples"] == 64 and scan["greedy"] is greedy
        first = scan["rounds"][0]
        assert set(first["val_top1"]) == {b.name for b in found} and first["loss"]["add_b"] - scan["base"]["loss"] < 1e-3
        assert len(scan["rounds"]) == (2 if greedy else 1)
    assert len(seen) == len(found) * 2 + len(found) - 1  # prepare ran on every candidate scored


def test_a_branch_inside_a_chosen_one_is_never_picked_after_it(res_model):
    """add_inner lies inside add_c's branch: once one of them is gone, removing the other removes nothing more (or
    everything again), so it is no candidate; nor do the two count as two removable blocks."""
    import tf_keras as keras

    from edgeopt.train import blocks

    model = keras.models.clone_model(res_model)
    model.set_weights(res_model.get_weights())
    bn = model.get_layer("c2_bn")  # add_c's branch made silent: it goes first
    w = bn.get_weights()
    w[0][:], w[1][:] = 1e-4, 0.0
    bn.set_weights(w)
    x = np.random.default_rng(3).random((64, 8, 8, 3), dtype=np.float32)
    y = np.argmax(np.asarray(model(x)), -1)
    found = blocks.find(model)
    assert blocks.most_removable(found) == len(found) - 1  # add_c and add_inner go together
    for greedy in (True, False):
        chosen, _ = blocks.select(model, found, 2, x, y, greedy=greedy)
        names = [b.name for b in chosen]
        # either goes first (inside the silent branch, add_inner is as free); the other is then no candidate
        assert names[0] in ("add_c", "add_inner") and not {"add_c", "add_inner"} <= set(names) and len(names) == 2
