"""Keras Tuner for tf_keras models: its oracles (random, hyperband, bayesian) and chief/worker mode, our trials.

keras-tuner 1.4.8's own ``Tuner`` checks models against Keras 3 and rejects tf_keras ones, so ``EdgeTuner``
subclasses ``BaseTuner`` and overrides what touches a model: ``run_trial`` (the ``kt.HyperModel``'s
``build(hp)`` and ``fit(hp, model, epochs=, initial_epoch=, callbacks=)``, checkpoint the best epoch, return the
metrics), ``save_model`` and ``load_model``. Hyperband's
continued trials (``tuner/trial_id``, ``tuner/epochs``, ``tuner/initial_epoch``) are handled here too.

BaseTuner does I/O in ``__init__`` (it reloads a project folder: that is how an interrupted search resumes);
``open_tuner`` is the one place that constructs it. The oracle's state and one folder per trial live in
``directory``; every finished trial is written before the next starts, so an interruption loses only the
trial that was running (the oracle hands it out again on resume).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgeopt.models.zoo import config_error

log = logging.getLogger(__name__)

ENV_VARS = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")
TRIAL_INFO = "edgeopt_trial.json"  # per-trial facts keras-tuner does not keep (epochs run, seconds, worker)
Scalar = bool | int | float | str
PARAM_KEYS = ("choice", "int", "float", "boolean", "sampling", "step", "default")


class Param(BaseModel):
    """One searched value: ``{choice: [..]}``, ``{int: [lo, hi], step: 1}``, ``{float: [lo, hi], sampling: log}``
    or ``{boolean: true}``. A plain scalar in ``space:`` is a fixed value."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True,
                              serialize_by_alias=True)
    choice: list[Scalar] | None = None
    int_: tuple[int, int] | None = Field(None, alias="int")
    float_: tuple[float, float] | None = Field(None, alias="float")
    boolean: bool | None = None
    sampling: Literal["linear", "log"] | None = None
    step: float | None = Field(None, gt=0)
    default: Scalar | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Param:
        kinds = [k for k in ("choice", "int_", "float_", "boolean") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise config_error("give exactly one of choice, int, float, boolean")
        kind = kinds[0]
        if kind == "boolean" and self.boolean is not True:
            raise config_error("write {boolean: true} to search a flag (a fixed flag is a plain true/false)")
        if kind in ("choice", "boolean") and (self.sampling or self.step):
            raise config_error(f"sampling/step apply to int and float ranges, not to {kind.rstrip('_')}")
        if kind == "choice":
            if not self.choice:
                raise config_error("choice: [] is empty; list at least two values")
            if len(set(map(repr, self.choice))) != len(self.choice):
                raise config_error(f"choice {self.choice} lists a value twice")
            numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in self.choice)
            if not numeric and len({type(v) for v in self.choice}) > 1:
                raise config_error(f"choice {self.choice} mixes types; use numbers, strings or booleans only")
        if kind in ("int_", "float_"):
            lo, hi = getattr(self, kind)
            if lo >= hi:
                raise config_error(f"range [{lo}, {hi}] is empty or a single value; give lo < hi (or a fixed value)")
            if self.sampling == "log" and lo <= 0:
                raise config_error(f"log sampling needs a positive range, got [{lo}, {hi}]")
            if self.step is not None and self.step > hi - lo:
                raise config_error(f"step {self.step} is wider than the range [{lo}, {hi}]")
            if kind == "int_" and self.step is not None and self.step != int(self.step):
                raise config_error(f"an int range needs an integer step, got {self.step}")
        return self

    @property
    def kind(self) -> str:
        return next(k.rstrip("_") for k in ("choice", "int_", "float_", "boolean") if getattr(self, k) is not None)

    def values(self) -> list:
        """Representative values (for checks): the choices, or the range ends."""
        if self.choice is not None:
            return list(self.choice)
        if self.boolean:
            return [True, False]
        return list(self.int_ or self.float_)


class Reporter:
    """Progress hooks (the CLI draws bars with them; the compress stage logs)."""

    def trial_started(self, trial_id: str, values: dict) -> None: ...

    def epoch_done(self, trial_id: str, epoch: int, epochs: int, logs: dict) -> None: ...

    def trial_done(self, trial_id: str, score: float | None, epochs_run: int) -> None: ...


def hyperband_plan(max_epochs: int, factor: int = 3, iterations: int = 1) -> tuple[int, int]:
    """(trials, epochs) one full Hyperband run schedules — keras-tuner's bracket arithmetic, without early stops."""
    brackets, e = 0, float(max_epochs)
    while e >= 1:
        e, brackets = e / factor, brackets + 1
    end_size = math.ceil(1 + math.log(max_epochs, factor))
    trials = epochs = 0
    for b in range(brackets):
        for r in range(b + 1):
            size = math.ceil(end_size / (b + 1) * factor ** (b - r))
            now = math.ceil(max_epochs / factor ** (b - r))
            before = math.ceil(max_epochs / factor ** (b - r + 1)) if r else 0
            trials += size
            epochs += size * (now - before)
    return trials * iterations, epochs * iterations


def make_oracle(strategy: str, objective: str, direction: str, *, max_trials: int, max_epochs: int, factor: int = 3,
                iterations: int = 1, seed: int | None = None):
    import keras_tuner as kt

    obj = kt.Objective(objective, direction)
    common = {"objective": obj, "seed": seed, "max_consecutive_failed_trials": 3}
    if strategy == "random":
        return kt.oracles.RandomSearchOracle(max_trials=max_trials, **common)
    if strategy == "bayesian":
        return kt.oracles.BayesianOptimizationOracle(max_trials=max_trials, **common)
    if strategy == "hyperband":
        oracle = kt.oracles.HyperbandOracle(max_epochs=max_epochs, factor=factor, hyperband_iterations=iterations,
                                            **common)
        oracle.max_trials = max_trials  # Hyperband plans by brackets; this caps it (create_trial honours it)
        return oracle
    from edgeopt.errors import UsageError

    raise UsageError(f"unknown strategy '{strategy}'", "use random, hyperband or bayesian")


def declare(hp, space: dict[str, Any]) -> dict[str, Any]:
    """Register ``space`` (recipe Params or fixed scalars) on keras-tuner HyperParameters; returns the values."""
    for name, p in space.items():
        if not hasattr(p, "kind"):
            hp.Fixed(name, p)
        elif p.kind == "choice":
            values = list(p.choice)
            if any(isinstance(v, float) for v in values):
                values = [float(v) for v in values]
            hp.Choice(name, values, default=p.default)
        elif p.kind == "int":
            hp.Int(name, int(p.int_[0]), int(p.int_[1]), step=int(p.step) if p.step else None,
                   sampling=p.sampling or "linear", default=p.default)
        elif p.kind == "float":
            hp.Float(name, float(p.float_[0]), float(p.float_[1]), step=p.step, sampling=p.sampling or "linear",
                     default=p.default)
        else:
            hp.Boolean(name, default=bool(p.default))
    return {name: hp.get(name) for name in space}


@contextlib.contextmanager
def distributed(role: str | None, worker: str | None = None, oracle: str = "127.0.0.1:8765") -> Iterator[None]:
    """Set keras-tuner's chief/worker variables for the block (``role``: chief, worker or None = leave as is)."""
    if role is None:
        yield
        return
    host, _, port = oracle.rpartition(":")
    if not host or not port.isdigit():
        from edgeopt.errors import UsageError

        raise UsageError(f"--oracle {oracle!r} is not HOST:PORT", "write e.g. --oracle 127.0.0.1:8765")
    tuner_id = "chief" if role == "chief" else (worker if str(worker).startswith("tuner") else f"tuner{worker}")
    if role == "worker" and (not worker or "chief" in str(worker)):
        from edgeopt.errors import UsageError

        raise UsageError(f"worker id {worker!r} is not usable", "give each worker its own id: --worker 0, --worker 1")
    before = {k: os.environ.get(k) for k in ENV_VARS}
    os.environ.update({"KERASTUNER_TUNER_ID": tuner_id, "KERASTUNER_ORACLE_IP": host, "KERASTUNER_ORACLE_PORT": port})
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def role_from_env() -> str | None:
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return None
    return "chief" if "chief" in os.environ.get("KERASTUNER_TUNER_ID", "") else "worker"


def open_tuner(oracle, hypermodel, directory: str | Path, *, overwrite: bool = False,
               reporter: Reporter | None = None, patience: int | None = None, project_name: str = "search"):
    """Construct the tuner for ``hypermodel`` (a ``kt.HyperModel`` whose ``fit`` returns ``(model, history)``),
    which reloads ``directory``/``project_name`` when it holds a search."""
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):  # keras-tuner prints "Reloading Tuner from ..."
        tuner = _tuner_class()(oracle, hypermodel, directory=str(directory), project_name=project_name,
                               overwrite=overwrite, reporter=reporter or Reporter(), patience=patience)
    if quiet.getvalue().strip():
        log.info("%s", quiet.getvalue().strip())
    return tuner


def trial_info(project_dir: str | Path) -> dict[str, dict]:
    """trial_id -> what EdgeTuner recorded for it (epochs_run, seconds, tuner_id), read from the trial folders."""
    out = {}
    for path in sorted(Path(project_dir).glob(f"trial_*/{TRIAL_INFO}")):
        info = json.loads(path.read_text())
        out[info["trial_id"]] = info
    return out


@functools.cache
def _tuner_class():
    import numpy as np
    import tf_keras as keras
    from keras_tuner import errors as kt_errors
    from keras_tuner.engine import base_tuner

    from edgeopt.errors import UsageError

    class BestEpoch(keras.callbacks.Callback):
        """Keep the weights of the best epoch by the objective (restored at the end); stop after ``patience``."""

        def __init__(self, monitor: str, direction: str, patience: int | None):
            super().__init__()
            self.monitor, self.sign, self.patience = monitor, (1.0 if direction == "max" else -1.0), patience
            self.best, self.best_epoch, self.weights, self.wait = -np.inf, None, None, 0

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get(self.monitor)
            if value is None or not np.isfinite(value):
                return
            if self.sign * value > self.best:
                self.best, self.best_epoch, self.wait = self.sign * value, epoch, 0
                self.weights = self.model.get_weights()
            else:
                self.wait += 1
                if self.patience is not None and self.wait >= self.patience:
                    self.model.stop_training = True

        def on_train_end(self, logs=None):
            if self.weights is not None:
                self.model.set_weights(self.weights)

    class EdgeTuner(base_tuner.BaseTuner):
        def __init__(self, oracle, hypermodel, *, reporter, patience, **kwargs):
            self.reporter, self.patience = reporter, patience
            self.usage_error = None
            super().__init__(oracle, hypermodel=hypermodel, **kwargs)

        def run_trial(self, trial, *args, **kwargs):
            hp = trial.hyperparameters
            values = hp.values
            try:
                model = self.hypermodel.build(hp)
            except UsageError as e:  # a bad space is the user's to fix, not a failed trial to retry
                self.usage_error = e
                raise kt_errors.FatalError(str(e)) from None
            if "tuner/trial_id" in values:  # Hyperband: continue the best model of the previous round
                model.load_weights(self._checkpoint(values["tuner/trial_id"]))
            epochs = int(values.get("tuner/epochs", getattr(self.hypermodel, "max_epochs", 1)))
            initial = int(values.get("tuner/initial_epoch", 0))
            objective = self.oracle.objective
            best = BestEpoch(objective.name, objective.direction, self.patience)
            progress = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: self.reporter.epoch_done(
                trial.trial_id, e + 1, epochs, dict(logs or {})))
            self.reporter.trial_started(trial.trial_id, {k: v for k, v in values.items() if not k.startswith("tuner/")})
            start = time.perf_counter()
            trained, history = self.hypermodel.fit(hp, model, epochs=epochs, initial_epoch=initial,
                                                   callbacks=[best, progress])
            self.save_model(trial.trial_id, trained)
            series = history.get(objective.name, [])
            at = best.best_epoch - initial if best.best_epoch is not None else len(series) - 1
            metrics = {k: float(v[at]) for k, v in history.items() if v and np.isfinite(v[at])}
            if objective.name not in metrics:
                raise ValueError(f"objective '{objective.name}' was not measured (got {sorted(history)})")
            info = {"trial_id": trial.trial_id, "tuner_id": self.tuner_id, "epochs_run": len(series),
                    "epochs": epochs, "initial_epoch": initial, "seconds": round(time.perf_counter() - start, 2),
                    "score": metrics[objective.name], objective.name: [round(float(v), 6) for v in series]}
            Path(self.get_trial_dir(trial.trial_id), TRIAL_INFO).write_text(json.dumps(info, indent=1))
            self.reporter.trial_done(trial.trial_id, metrics[objective.name], len(series))
            return metrics

        def save_model(self, trial_id, model, step=0):
            model.save_weights(self._checkpoint(trial_id))

        def load_model(self, trial):
            model = self.hypermodel.build(trial.hyperparameters)
            model.load_weights(self._checkpoint(trial.trial_id))
            return model

        def _checkpoint(self, trial_id) -> str:
            return os.path.join(self.get_trial_dir(trial_id), "checkpoint.weights.h5")

    return EdgeTuner


def run_search(tuner, *, quiet: bool = True) -> float:
    """``tuner.search()`` without keras-tuner's console tables; returns the seconds it took."""
    start = time.perf_counter()
    if quiet and hasattr(tuner.oracle, "verbose"):
        with contextlib.suppress(AttributeError):
            tuner.oracle.verbose = 0
    sink: Callable = contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext()
    from keras_tuner import errors as kt_errors

    try:
        with sink:
            tuner.search()
    except kt_errors.FatalError:
        if getattr(tuner, "usage_error", None) is not None:
            raise tuner.usage_error from None
        raise
    return time.perf_counter() - start
