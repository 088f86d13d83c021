"""Prune stage: schedule sizing, per-layer sparsity, 2:4, exclusions, and the models tfmot cannot wrap."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.errors import UsageError
from edgeopt.recipe import Recipe, TrainDefaults
from edgeopt.stages.cluster import ClusterConfig
from edgeopt.stages.prune import PruneConfig
from edgeopt.stages.quantize import QuantizeConfig


def _ctx(tmp_path, data, epochs=1, batch=64):
    from edgeopt.stages import StageContext

    return StageContext(dataset=data, out_dir=tmp_path, base_name="m", train=TrainDefaults(epochs=epochs,
                                                                                             batch_size=batch))


@pytest.fixture(scope="module")
def tiny(tiny_model_path):
    from edgeopt.models.load import load_model

    return load_model(tiny_model_path)


@pytest.mark.parametrize("cfg", [PruneConfig(target_sparsity=0.8, structure="2:4", exclude=["conv*"], skip_last=True),
                                 QuantizeConfig(preserve_sparsity=True, epochs=2),
                                 ClusterConfig(number_of_clusters=8, centroid_init="linear")])
def test_configs_round_trip(cfg):
    name = {PruneConfig: "prune", QuantizeConfig: "quantize", ClusterConfig: "cluster"}[type(cfg)]
    rec = Recipe(stages=[(name, cfg)])
    assert Recipe.from_dict(rec.to_dict()) == rec


@pytest.mark.parametrize("bad, match", [
    ({"target_sparsity": 1.0}, "target_sparsity"), ({"target_sparsity": -0.1}, "target_sparsity"),
    ({"structure": "4:2"}, "M:N"), ({"structure": "two:four"}, "M:N"),
    ({"initial_sparsity": 0.6, "target_sparsity": 0.5}, "initial_sparsity"),
    ({"begin_step": 10, "end_step": 5}, "end_step"), ({"schedule": "cubic"}, "schedule"),
])
def test_bad_prune_config_is_a_usage_error(bad, match):
    with pytest.raises(UsageError, match=match):
        Recipe.from_dict({"stages": [{"prune": bad}]})


def test_schedule_is_sized_to_the_step_count():
    from edgeopt.stages.prune import size_schedule
    from edgeopt.train.fit import Settings

    p = Settings(epochs=2, batch_size=64, lr=1e-3)  # 20 steps an epoch: 1258 digits / 64
    s = size_schedule(PruneConfig(target_sparsity=0.8), p, 1258)
    assert s.total_steps == 40 and s.begin_step == 0
    assert s.end_step <= 39 and (s.end_step - s.begin_step) % s.frequency == 0
    assert s.frequency <= s.end_step - s.begin_step
    const = size_schedule(PruneConfig(schedule="constant"), p, 1258)
    assert const.end_step == -1 and const.frequency <= 39


@pytest.mark.parametrize("cfg, match", [
    (PruneConfig(frequency=100), "frequency 100 exceeds"),  # TFMOT's default on small data: never fires
    (PruneConfig(end_step=500), "end_step 500 is past the last fine-tune step 39"),
    (PruneConfig(begin_step=39), "begin_step 39"),
    (PruneConfig(schedule="constant", frequency=60), "frequency 60 exceeds"),
])
def test_impossible_schedule_is_a_usage_error(cfg, match):
    from edgeopt.stages.prune import size_schedule
    from edgeopt.train.fit import Settings

    with pytest.raises(UsageError, match=match):
        size_schedule(cfg, Settings(epochs=2, batch_size=64, lr=1e-3), 1258)


def test_prune_reaches_target_and_records_each_layer(tmp_path, tiny, digits):
    from edgeopt.stages import prune

    before = [w.copy() for w in tiny.get_weights()]
    ctx = _ctx(tmp_path, digits, epochs=2)
    out = prune.apply(tiny, ctx, PruneConfig(target_sparsity=0.6, allocation="uniform"))
    rec = ctx.notes["pruning"]
    assert set(rec["pruned_layers"]) == {"conv2d", "dense"}
    for name in rec["pruned_layers"]:
        assert rec["layers"][name]["sparsity"] == pytest.approx(0.6, abs=0.02)
        kernel = out.get_layer(name).get_weights()[0]
        assert 1 - np.count_nonzero(kernel) / kernel.size == pytest.approx(0.6, abs=0.02)
    assert rec["schedule"]["frequency"] <= rec["schedule"]["end_step"]
    assert not any(type(layer).__name__.startswith("Prune") for layer in out.layers)  # stripped
    assert all(np.array_equal(a, b) for a, b in zip(before, tiny.get_weights(), strict=True))  # input untouched


def test_exclusions_and_skip_last_keep_layers_dense(tmp_path, tiny, digits):
    from edgeopt.stages import prune

    ctx = _ctx(tmp_path, digits)
    out = prune.apply(tiny, ctx, PruneConfig(target_sparsity=0.5, skip_last=True))
    assert ctx.notes["pruning"]["pruned_layers"] == ["conv2d"]
    assert np.count_nonzero(out.get_layer("dense").get_weights()[0]) == tiny.get_layer("dense").get_weights()[0].size
    with pytest.raises(UsageError, match="exclude pattern 'nope' matches no layer"):
        prune.apply(tiny, ctx, PruneConfig(exclude=["nope"]))
    with pytest.raises(UsageError, match="no prunable layer left"):
        prune.apply(tiny, ctx, PruneConfig(exclude=["Conv2D", "Dense"]))


def test_two_four_names_the_layer_that_cannot_take_it(tmp_path, tiny, digits):
    from tensorflow_model_optimization.python.core.sparsity.keras.pruning_utils import is_pruned_m_by_n

    from edgeopt.stages import prune

    ctx = _ctx(tmp_path, digits)
    with pytest.raises(UsageError, match=r"2:4 .*'conv2d' \(Conv2D\) has 1.*exclude it"):
        prune.apply(tiny, ctx, PruneConfig(structure="2:4"))
    out = prune.apply(tiny, ctx, PruneConfig(structure="2:4", exclude=["conv2d"]))
    kernel = out.get_layer("dense").kernel
    assert is_pruned_m_by_n(kernel, (2, 4), last_channel="C_IN") or is_pruned_m_by_n(kernel, (2, 4))
    assert ctx.notes["pruning"]["layers"]["dense"]["sparsity"] == pytest.approx(0.5, abs=0.01)


def test_subclassed_model_and_unknown_weighted_layer_are_refused(tmp_path, digits, tiny):
    import tf_keras as keras

    from edgeopt.stages import prune

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.flat = keras.layers.Flatten()
            self.out = keras.layers.Dense(10, activation="softmax")

        def call(self, x):
            return self.out(self.flat(x))

    net = Net()
    net(digits.x_test[:2])
    ctx = _ctx(tmp_path, digits)
    with pytest.raises(UsageError, match="subclassed Model.*PTQ-only"):
        prune.apply(net, ctx, PruneConfig())

    class Scale(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(name="w", shape=(shape[-1],), initializer="ones")

        def call(self, x):
            return x * self.w

    inp = keras.Input(digits.input_shape)
    x = keras.layers.Flatten()(keras.layers.Conv2D(4, 3)(inp))
    x = Scale(name="my_scale")(x)
    model = keras.Model(inp, keras.layers.Dense(10, activation="softmax")(x))
    with pytest.raises(UsageError, match=r"layer 'my_scale' \(Scale\).*exclude it"):
        prune.apply(model, ctx, PruneConfig())
    out = prune.apply(model, ctx, PruneConfig(exclude=["my_scale"], target_sparsity=0.5))
    assert "my_scale" in ctx.notes["pruning"]["kept_dense"] or "my_scale" not in ctx.notes["pruning"]["layers"]
    assert out.output_shape == model.output_shape


def test_sensitivity_allocation_reaches_the_target_with_per_layer_sparsities(tmp_path, tiny, digits):
    from edgeopt.stages import prune

    ctx = _ctx(tmp_path, digits, epochs=2)
    out = prune.apply(tiny, ctx, PruneConfig(target_sparsity=0.7, allocation="sensitivity"))
    scan = ctx.notes["sensitivity"]
    assert scan["allocation"] == "sensitivity" and scan["split"] == "val" and scan["shares"] == [0.5, 0.75, 0.9]
    chosen = {row["layer"]: row["chosen"] for row in scan["layers"]}
    assert set(chosen) == {"conv2d", "dense"} and scan["achieved"] == pytest.approx(0.7, abs=1e-3)
    assert all({"top1_drop@0.5", "top1_drop@0.9", "loss_increase@0.75"} <= set(row) for row in scan["layers"])
    rec = ctx.notes["pruning"]
    assert rec["allocation"] == "sensitivity"
    for name, share in chosen.items():  # each layer pruned to its own share
        kernel = out.get_layer(name).get_weights()[0]
        assert 1 - np.count_nonzero(kernel) / kernel.size == pytest.approx(share, abs=0.02)
    assert rec["achieved_sparsity"] == pytest.approx(0.7, abs=0.02)


@pytest.mark.parametrize("bad, match", [
    ({"allocation": "greedy"}, "allocation"), ({"sensitivity_shares": [0.5, 1.2]}, "sensitivity_shares"),
    ({"sensitivity_shares": []}, "sensitivity_shares"), ({"sensitivity_samples": 0}, "sensitivity_samples"),
    ({"allocation": "sensitivity", "structure": "2:4"}, "structure 2:4 fixes them"),
    ({"structure": "channels"}, "'channel', 'tap' or 'M:N'"), ({"structure": "channel", "importance": "l2"}, "importance"),
])
def test_bad_allocation_keys_are_usage_errors(bad, match):  # UsageError: the CLI's exit 2
    with pytest.raises(UsageError, match=match):
        Recipe.from_dict({"stages": [{"prune": bad}]})


def test_structure_defaults():
    assert PruneConfig().allocation == "sensitivity"
    assert PruneConfig(structure="2:4").allocation == "uniform"  # M:N fixes every layer's share
    cfg = Recipe.from_dict({"stages": [{"prune": {"structure": "channel", "target_sparsity": 0.5}}]}).stages[0][1]
    assert cfg.structure == "channel" and cfg.m_by_n is None and cfg.importance == "l1"


@pytest.mark.parametrize("allocation", ["uniform", "sensitivity"])
def test_channel_pruning_gives_a_smaller_dense_model_with_fewer_macs(tmp_path, tiny, digits, allocation):
    from edgeopt.stages import prune

    ctx = _ctx(tmp_path, digits, epochs=1)
    out = prune.apply(tiny, ctx, PruneConfig(structure="channel", target_sparsity=0.5, allocation=allocation))
    rec = ctx.notes["pruning"]
    assert rec["structure"] == "channel" and rec["channels"] == {"prunable": 8, "removed": 4}
    assert rec["layers"]["conv2d"] == {"before": 8, "after": 4} and rec["layers"]["dense"]["after"] == 10
    assert out.get_layer("conv2d").filters == 4 and out.get_layer("dense").kernel.shape[0] == 8 * 8 * 4
    assert rec["params"]["after"] < 0.55 * rec["params"]["before"] == 0.55 * tiny.count_params()
    assert rec["macs"]["after"] < 0.55 * rec["macs"]["before"] and rec["macs"]["ratio"] > 1.8
    assert ("sensitivity" in ctx.notes) is (allocation == "sensitivity")
    assert out.output_shape == tiny.output_shape
    assert np.mean(np.argmax(out.predict(digits.x_val, verbose=0), -1) == digits.y_val) > 0.5
    assert all(np.count_nonzero(w) == w.size for w in out.get_layer("conv2d").get_weights())  # dense, not masked
    assert out.optimizer is None  # saved without the fine-tune's optimizer (its LR schedule is edgeopt code)
