"""LR schedules: the recipe curve in Python and in tf_keras agree, each kind has its documented shape."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeopt.errors import UsageError
from edgeopt.recipe import Recipe, TrainDefaults
from edgeopt.train import schedules
from edgeopt.train.schedules import LRSchedule

KINDS = [
    {"kind": "constant", "initial": 0.01},
    {"kind": "constant_then_exponential", "initial": 0.001, "hold_epochs": 10, "decay_rate": 0.9},
    {"kind": "step", "initial": 0.1, "step_epochs": 3, "decay_rate": 0.5},
    {"kind": "cosine", "initial": 0.01, "min_lr": 0.0001},
    {"kind": "warmup_cosine", "initial": 0.01, "warmup_epochs": 2},
]


@pytest.mark.parametrize("raw", KINDS, ids=lambda r: r["kind"])
def test_tf_schedule_matches_python_curve(raw):
    steps, epochs = 7, 20
    sched = schedules.build(LRSchedule(**raw), steps_per_epoch=steps, epochs=epochs)
    for step in (0, 1, 6, 7, 13, 20, 69, 70, 71, 100, 139, 140, 200):
        want = schedules.lr_at(raw, step / steps, epochs)
        assert float(sched(step)) == pytest.approx(want, rel=1e-5, abs=1e-9), step


def test_constant_then_exponential_holds_then_decays_per_epoch():
    cfg = {"kind": "constant_then_exponential", "initial": 0.001, "hold_epochs": 10, "decay_rate": 0.9}
    assert [schedules.lr_at(cfg, e, 20) for e in (0, 5, 9.99)] == [0.001] * 3
    assert schedules.lr_at(cfg, 10, 20) == pytest.approx(0.001 * 0.9)
    assert schedules.lr_at(cfg, 10.5, 20) == pytest.approx(0.001 * 0.9)  # changes at epoch boundaries only
    assert schedules.lr_at(cfg, 12, 20) == pytest.approx(0.001 * 0.9 ** 3)


def test_cosines_start_end_and_warm_up():
    cos = {"kind": "cosine", "initial": 0.01, "min_lr": 0.001}
    assert schedules.lr_at(cos, 0, 10) == pytest.approx(0.01)
    assert schedules.lr_at(cos, 5, 10) == pytest.approx(0.001 + 0.009 * 0.5)
    assert schedules.lr_at(cos, 10, 10) == pytest.approx(0.001)
    warm = {"kind": "warmup_cosine", "initial": 0.01, "warmup_epochs": 2}
    assert schedules.lr_at(warm, 0, 10) == 0.0
    assert schedules.lr_at(warm, 1, 10) == pytest.approx(0.005)
    assert schedules.lr_at(warm, 2, 10) == pytest.approx(0.01)
    values = [schedules.lr_at(warm, e, 10) for e in np.linspace(2, 10, 17)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_step_drops_every_n_epochs_with_kind_default():
    cfg = LRSchedule(kind="step", initial=0.1, step_epochs=2)
    assert schedules.params(cfg)["decay_rate"] == 0.5
    assert [schedules.lr_at(cfg, e, 8) for e in (0, 1.9, 2, 4)] == pytest.approx([0.1, 0.1, 0.05, 0.025])


def test_initial_override_and_shorthands():
    train = TrainDefaults(lr_schedule={"kind": "cosine", "initial": 0.1})
    assert schedules.resolve(train, initial=0.5).initial == 0.5
    assert schedules.resolve(train, initial=0.5).kind == "cosine"
    assert Recipe.from_dict({"train": {"lr_schedule": "cosine"}}).train.lr_schedule.kind == "cosine"
    assert Recipe.from_dict({"train": {"lr_schedule": 0.02}}).train.lr_schedule.initial == 0.02
    assert schedules.resolve(None).kind == "constant"


def test_recipe_round_trip_with_schedule_and_optimizer():
    raw = {"train": {"epochs": 3, "optimizer": "sgd", "precision": "mixed_bfloat16",
                     "lr_schedule": {"kind": "warmup_cosine", "initial": 0.05, "warmup_epochs": 1, "min_lr": 0.0}}}
    r = Recipe.from_dict(raw)
    assert Recipe.from_dict(r.to_dict()) == r


@pytest.mark.parametrize("raw, needle", [
    ({"kind": "cosine", "hold_epochs": 3}, "'hold_epochs' does nothing for kind 'cosine'"),
    ({"kind": "cosin"}, "got 'cosin'"),
    ({"kind": "constant", "initial": 0}, "initial"),
    ({"kind": "cosine", "initial": 0.001, "min_lr": 0.01}, "min_lr 0.01 is above initial"),
    ({"kind": "step", "decay_rate": 1.5}, "decay_rate"),
    ({"kind": "constant", "warmup": 1}, "unknown key"),
])
def test_bad_schedules_are_one_line_errors(raw, needle):
    with pytest.raises(UsageError) as e:
        Recipe.from_dict({"train": {"lr_schedule": raw}})
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


def test_schedule_trains_and_saves_with_the_model(tmp_path):
    import tf_keras as keras

    model = keras.Sequential([keras.layers.Input((4,)), keras.layers.Dense(3), keras.layers.Softmax()])
    lr = schedules.build({"kind": "step", "initial": 0.1, "step_epochs": 1, "decay_rate": 0.5}, 2, 3)
    model.compile(schedules.optimizer(TrainDefaults(optimizer="sgd"), lr), "sparse_categorical_crossentropy")
    model.fit(np.ones((8, 4), "float32"), np.zeros(8, "int64"), batch_size=4, epochs=2, verbose=0)
    assert int(model.optimizer.iterations) == 4
    assert float(model.optimizer.learning_rate) == pytest.approx(0.1 * 0.5)  # what the last step (3: epoch 1) used
    assert float(lr(model.optimizer.iterations)) == pytest.approx(0.1 * 0.5 ** 2)  # what the next epoch gets
    model.save(tmp_path / "m.keras")
    back = keras.models.load_model(tmp_path / "m.keras")
    assert back.optimizer.get_config()["learning_rate"]["config"]["kind"] == "step"
    assert math.isclose(float(back.optimizer._learning_rate(3)), float(lr(3)))
