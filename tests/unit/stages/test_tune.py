"""Tune stage: the search space reaches keras-tuner, Hyperband's plan is what its oracle runs, a tiny search
finishes with a retrained model and a tuning section, an interrupted search resumes without losing trials."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.errors import UsageError
from edgeopt.recipe import Recipe, TrainDefaults

# keras-tuner's oracle calls threading.currentThread().getName() on every call
pytestmark = pytest.mark.filterwarnings("ignore:(currentThread|getName).*:DeprecationWarning")

TINY = {"model": {"zoo": "mlp", "depth": 1}, "strategy": "random", "max_trials": 3, "max_epochs": 1,
        "space": {"width": {"choice": [0.25, 0.5]}, "lr": {"float": [0.003, 0.03], "sampling": "log"}}}


def _cfg(tmp_path, **over):
    raw = {**TINY, "cache_dir": str(tmp_path / "cache"), **over}
    return Recipe.from_dict({"stages": [{"tune": raw}]}).stages[0][1]


def test_space_declares_every_kind():
    import keras_tuner as kt

    from edgeopt.train.tuner import declare

    cfg = Recipe.from_dict({"stages": [{"tune": {"space": {
        "width": {"choice": [0.25, 1]}, "depth": {"int": [1, 3]}, "dropout": {"float": [0.0, 0.5], "step": 0.1},
        "lr": {"float": [1e-4, 1e-2], "sampling": "log"}, "batch_norm": {"boolean": True}, "kernel": 3}}}]}).stages[0][1]
    hp = kt.HyperParameters()
    values = declare(hp, cfg.space)
    assert values["width"] == 0.25 and isinstance(values["width"], float)
    assert values["depth"] == 1 and values["kernel"] == 3 and values["batch_norm"] is False
    kinds = {p.name: type(p).__name__ for p in hp.space}
    assert kinds == {"width": "Choice", "depth": "Int", "dropout": "Float", "lr": "Float", "batch_norm": "Boolean",
                     "kernel": "Fixed"}


@pytest.mark.parametrize("max_epochs, factor", [(3, 3), (9, 3), (4, 2)])
def test_hyperband_plan_matches_the_oracle(tmp_path, max_epochs, factor):
    import keras_tuner as kt

    from edgeopt.train.tuner import hyperband_plan, make_oracle

    oracle = make_oracle("hyperband", "val_accuracy", "max", max_trials=1000, max_epochs=max_epochs, factor=factor,
                         seed=0)
    hp = kt.HyperParameters()
    hp.Float("lr", 1e-4, 1e-1, sampling="log")
    oracle.hyperparameters = hp
    oracle._set_project_dir(str(tmp_path), "plan")
    trials = epochs = 0
    while True:
        trial = oracle.create_trial("tuner0")
        if trial.status == "STOPPED":
            break
        values = trial.hyperparameters.values
        trials += 1
        epochs += values["tuner/epochs"] - values["tuner/initial_epoch"]
        oracle.update_trial(trial.trial_id, {"val_accuracy": float(np.log(values["lr"]))})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    assert hyperband_plan(max_epochs, factor) == (trials, epochs)


class _Interrupt:
    """A reporter that stops the search when the ``at``-th trial starts (after the earlier ones finished)."""

    def __init__(self, at: int | None):
        self.at, self.started, self.done = at, [], []

    def trial_started(self, trial_id, values):
        self.started.append(trial_id)
        if self.at is not None and len(self.started) == self.at:
            raise KeyboardInterrupt

    def epoch_done(self, trial_id, epoch, epochs, logs):
        pass

    def trial_done(self, trial_id, score, epochs_run):
        self.done.append(trial_id)


def test_search_finishes_and_an_interrupted_one_resumes(tmp_path, digits):
    from edgeopt.stages.tune import search

    cfg, train = _cfg(tmp_path), TrainDefaults(epochs=2)
    first = _Interrupt(at=3)
    with pytest.raises(KeyboardInterrupt):
        search(None, digits, cfg, train, reporter=first)
    assert first.done == ["0", "1"]
    second = _Interrupt(at=None)
    result = search(None, digits, cfg, train, reporter=second)
    assert second.started == ["2"]  # the finished trials were not run again
    s = result.summary
    assert s["resumed"] is True and s["trials_run"] == 3 and s["trials_failed"] == 0
    assert s["epochs_spent"] == 3 and s["strategy"] == "random"
    assert set(s["best_hyperparameters"]) == {"width", "lr"}
    assert s["final"]["trained_on"] == "train+val" and s["final"]["epochs"] == 2
    assert 0.3 < s["final"]["test_accuracy"] <= 1.0  # digits, a tiny MLP, two epochs: well above chance
    assert result.model.layers[-1].name == "softmax"
    assert s["best_score"] == max(t["score"] for t in s["trials"])
    # a third run finds the search complete and only retrains
    third = _Interrupt(at=None)
    again = search(None, digits, cfg, train, reporter=third)
    assert third.started == [] and again.summary["best_trial"] == s["best_trial"]


def test_default_cache_folder_is_keyed_by_data_and_config(tmp_path, digits):
    from edgeopt.stages.tune import cache_directory

    a = _cfg(tmp_path, cache_dir=None)
    b = _cfg(tmp_path, cache_dir=None, max_trials=4)
    c = _cfg(tmp_path, cache_dir=None, retrain=False)  # does not change the search
    train = TrainDefaults()
    da, db, dc = (cache_directory(x, train, digits, None, tmp_path) for x in (a, b, c))
    assert da.parent == tmp_path / "tune" and da != db and da == dc


def test_search_errors_are_usage_errors(tmp_path, digits):
    from edgeopt.data.dataset import Dataset
    from edgeopt.stages.tune import search

    with pytest.raises(UsageError, match="head='bogus'"):  # a builder option only the builder can check
        search(None, digits, _cfg(tmp_path, model={"zoo": "small_cnn", "head": "bogus"}), TrainDefaults())
    with pytest.raises(UsageError, match="no teacher"):
        search(None, digits, _cfg(tmp_path, distill=True), TrainDefaults())
    no_val = Dataset.from_arrays("noval", digits.x_train, digits.y_train, digits.x_train[:0], digits.y_train[:0],
                                 digits.x_test, digits.y_test, num_classes=10)
    with pytest.raises(UsageError, match="no validation split"):
        search(None, no_val, _cfg(tmp_path), TrainDefaults())


def test_mobilenet_resolution_is_a_searchable_builder_option():
    import keras_tuner as kt

    from edgeopt.models import zoo
    from edgeopt.train.tuner import declare

    cfg = Recipe.from_dict({"stages": [{"tune": {"model": {"zoo": "mobilenet_v2_like", "alpha": 0.35},
                                                 "space": {"resolution": {"choice": [16, 24]}}}}]}).stages[0][1]
    values = declare(kt.HyperParameters(), cfg.space)
    model = zoo.build("mobilenet_v2_like", (32, 32, 3), 10, alpha=0.35, **values)
    assert model.input_shape == (None, 32, 32, 3)
    assert model.get_layer("resize").output_shape == (None, 16, 16, 3)
    assert model.name.endswith("_r16")
    with pytest.raises(UsageError, match="resolution must be a positive integer"):
        Recipe.from_dict({"stages": [{"tune": {"model": {"zoo": "mobilenet_v2_like"},
                                               "space": {"resolution": {"choice": [0, 24]}}}}]})
