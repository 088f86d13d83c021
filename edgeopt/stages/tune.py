"""Tune stage: Keras Tuner searches a zoo builder's options and training settings on the validation split; the
best configuration is retrained on train+val for the full epochs and handed to the next stage. Inside compress the
tuned model is not a final artifact, so its figures are on the validation split (in-sample once retrained on
train+val, and marked so) and the test split is left for convert; ``edgeopt tune`` alone, whose tuned model is
the final result, reads the test split once for it (``final_split="test"``).

With ``distill: true`` every trial trains its candidate as a student of the input model (the teacher). The
search state lives in a cache folder keyed by data, teacher and search config, so an interrupted or repeated
run resumes instead of starting over. ``ctx.notes["tuning"]`` gets trials run, epochs spent, best
hyperparameters, best and final scores — manifest.json carries it to the benchmark report.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgeopt.errors import UsageError, nearest
from edgeopt.models import zoo
from edgeopt.models.zoo import ModelSpec, canonical_init, config_error
from edgeopt.train.tuner import PARAM_KEYS, Param, Scalar

if TYPE_CHECKING:
    from edgeopt.stages import StageContext

log = logging.getLogger(__name__)

OBJECTIVES = {"val_accuracy": "max", "val_loss": "min", "accuracy": "max", "loss": "min"}
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
# search-space keys that are training settings rather than builder options; the distillation ones need distill
TRAIN_KEYS = ("lr", "batch_size", "optimizer", "weight_decay")
DISTILL_KEYS = ("temperature", "distill_alpha")
SETTING_RULES = {"lr": "positive", "temperature": "positive", "weight_decay": "non_negative",
                 "batch_size": "positive_int", "distill_alpha": "unit"}


def _check_values(key: str, values: list, where: str = "") -> None:
    """Values a space key can take, checked without TensorFlow (a validation error: one line in the UsageError)."""
    if key == "optimizer":
        bad = [v for v in values if v not in OPTIMIZERS]
        problem = (f"unknown optimizer '{bad[0]}'{nearest(str(bad[0]), OPTIMIZERS)}; use one of {', '.join(OPTIMIZERS)}"
                   if bad else None)
    elif key in SETTING_RULES:
        problem = zoo.number_problem(key, SETTING_RULES[key], values)
    else:
        problem = zoo.option_problem(key, values)
    if problem:
        raise config_error(f"{where}{problem}")


class TuneConfig(BaseModel):
    """Keras Tuner search over a zoo builder's options and training settings (``space:``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    model: ModelSpec = ModelSpec(zoo="small_cnn")
    distill: bool = False  # train every trial as a student of the input model
    strategy: Literal["random", "hyperband", "bayesian"] = "hyperband"
    objective: str = "val_accuracy"
    max_trials: int = Field(10, ge=1)  # hyperband: a cap on top of its own bracket plan
    max_epochs: int = Field(9, ge=1)  # epochs per trial (random, bayesian); largest trial (hyperband)
    factor: int = Field(3, ge=2)  # hyperband's reduction factor
    hyperband_iterations: int = Field(1, ge=1)
    patience: int | None = Field(3, ge=1)  # early stopping on the objective (None: off)
    final_epochs: int | None = Field(None, ge=1)  # retrain on train+val (None: train.epochs)
    retrain: bool = True  # false: keep the best trial's model as trained in the search
    temperature: float = Field(4.0, gt=0)  # distillation settings of every trial (also searchable)
    alpha: float = Field(0.1, ge=0, le=1)
    batch_size: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0)
    cache_dir: str | None = None  # search state (default: <edgeopt cache>/tune/<hash of data+config>)
    overwrite: bool = False  # start the search afresh instead of resuming
    seed: int | None = None
    space: dict[str, Param | Scalar] = {}

    @field_validator("space", mode="before")
    @classmethod
    def _params(cls, v):
        if not isinstance(v, dict):
            raise config_error("space must be a mapping of name -> range")
        out = {}
        for key, value in v.items():
            if key == "init":  # xavier_uniform → glorot_uniform: the zoo and keras know the canonical names
                value = ({**value, "choice": [canonical_init(c) for c in value["choice"]]}
                         if isinstance(value, dict) and isinstance(value.get("choice"), list) else canonical_init(value))
            if not isinstance(value, dict):
                out[key] = value
                continue
            for k in value:
                if k not in PARAM_KEYS:
                    raise config_error(f"{key}: unknown key '{k}'{nearest(str(k), PARAM_KEYS)}; "
                               "use choice, int, float or boolean (+ sampling, step, default)")
            try:
                out[key] = Param.model_validate(value)
            except ValidationError as e:
                err = e.errors()[0]
                where = ".".join(str(x) for x in err["loc"])
                raise config_error(f"{key}{'.' + where if where else ''}: {err['msg']}") from None
        return out

    @field_validator("objective")
    @classmethod
    def _objective(cls, v: str) -> str:
        if v not in OBJECTIVES:
            raise config_error(f"unknown objective '{v}'{nearest(v, list(OBJECTIVES))}; use one of {', '.join(OBJECTIVES)}")
        return v

    @model_validator(mode="after")
    def _space(self) -> TuneConfig:
        if self.model.zoo is None:
            raise config_error("tune searches a zoo builder's options: give model: {zoo: small_cnn} (not a path)")
        builder = zoo.options(self.model.zoo)
        allowed = [*builder, *TRAIN_KEYS, *DISTILL_KEYS]
        searched = {k: v for k, v in self.space.items() if isinstance(v, Param)}
        if not searched:
            raise config_error("the search space is empty: add e.g. space: {width: {choice: [0.25, 0.5]}, "
                             "lr: {float: [0.0001, 0.01], sampling: log}}")
        for key, value in self.space.items():
            if key not in allowed:
                raise config_error(f"space key '{key}' is neither a {self.model.zoo} option nor a training setting"
                                 f"{nearest(key, allowed)}; use one of: {', '.join(allowed)}")
            if key in self.model.options:
                raise config_error(f"'{key}' is both fixed in model: and searched in space:; keep one")
            if key in DISTILL_KEYS and not self.distill:
                raise config_error(f"space key '{key}' needs distill: true")
            _check_values(key, value.values() if isinstance(value, Param) else [value], f"space.{key}: ")
        return self

    def space_dict(self) -> dict[str, Any]:
        return {k: v.model_dump(by_alias=True, exclude_none=True) if isinstance(v, Param) else v
                for k, v in self.space.items()}


@dataclass
class SearchResult:
    model: Any  # the final model (None on a worker, which only runs trials)
    summary: dict[str, Any]


def trial_model(dataset, cfg: TuneConfig, train, soft: np.ndarray | None, base_seed: int):
    """The search's keras_tuner HyperModel: ``build(hp)`` makes a candidate from hyperparameters, ``fit(hp, model,
    ...)`` trains it through train/fit.py (labels alone, or distilled from the teacher logits ``soft``)."""
    return _trial_model_class()(dataset, cfg, train, soft, base_seed)


@functools.cache
def _trial_model_class():
    import keras_tuner as kt

    class TrialModel(kt.HyperModel):
        def __init__(self, dataset, cfg: TuneConfig, train, soft: np.ndarray | None, base_seed: int):
            super().__init__(name="edgeopt_tune")
            self.dataset, self.cfg, self.train, self.soft, self.seed = dataset, cfg, train, soft, base_seed
            self.max_epochs = cfg.max_epochs

        def build(self, hp):
            import tf_keras as keras

            from edgeopt.train.tuner import declare

            keras.utils.set_random_seed(self.seed)  # same initial weights for the same configuration
            values = declare(hp, self.cfg.space)
            options = {**self.cfg.model.options,
                       **{k: v for k, v in values.items() if k not in TRAIN_KEYS and k not in DISTILL_KEYS}}
            return zoo.build(self.cfg.model.zoo, self.dataset.input_shape, self.dataset.num_classes, **options)

        def settings(self, hp_values: dict, epochs: int):
            from edgeopt.train.fit import Settings

            cfg = self.cfg
            return Settings.from_train(
                self.train, epochs=epochs, lr=hp_values.get("lr", cfg.lr),
                batch_size=hp_values.get("batch_size", cfg.batch_size), optimizer=hp_values.get("optimizer"),
                weight_decay=hp_values.get("weight_decay"), temperature=hp_values.get("temperature", cfg.temperature),
                alpha=hp_values.get("distill_alpha", cfg.alpha), seed=self.seed)

        def fit(self, hp, model, epochs: int = 1, initial_epoch: int = 0, callbacks=()):
            from edgeopt.train.fit import train

            ds = self.dataset
            return train(model, ds.x_train, ds.y_train, self.settings(hp.values, epochs), soft=self.soft,
                         validation=(ds.x_val, ds.y_val), callbacks=list(callbacks), initial_epoch=initial_epoch)

    return TrialModel


class LogReporter:
    """Per-trial lines in the log (compress draws one bar step per stage; trials show up above it)."""

    def __init__(self, total: int | None = None):
        self.total, self.done = total, 0

    def trial_started(self, trial_id: str, values: dict) -> None:
        log.debug("trial %s: %s", trial_id, values)

    def epoch_done(self, trial_id: str, epoch: int, epochs: int, logs: dict) -> None:
        log.debug("trial %s epoch %d/%d: %s", trial_id, epoch, epochs, logs)

    def trial_done(self, trial_id: str, score: float | None, epochs_run: int) -> None:
        self.done += 1
        of = f"/{self.total}" if self.total else ""
        log.info("tune: trial %s done (%d%s): score %.4f after %d epochs", trial_id, self.done, of, score or 0,
                 epochs_run)


def check_teacher(teacher, dataset, role: str = "teacher") -> None:
    """The teacher must be a classifier over the data set's classes (softmax or logits output)."""
    from edgeopt.train.distiller import logits_of, num_classes

    logits_of(teacher, role)
    if num_classes(teacher) != dataset.num_classes:
        raise UsageError(f"the {role} outputs {num_classes(teacher)} classes but data '{dataset.name}' has "
                         f"{dataset.num_classes}", f"pass the data set the {role} was trained on")


def planned_trials(cfg: TuneConfig) -> int:
    if cfg.strategy != "hyperband":
        return cfg.max_trials
    from edgeopt.train.tuner import hyperband_plan

    return min(cfg.max_trials, hyperband_plan(cfg.max_epochs, cfg.factor, cfg.hyperband_iterations)[0])


def cache_directory(cfg: TuneConfig, train, dataset, teacher, root: str | Path | None = None) -> Path:
    """``cfg.cache_dir`` when set, else ``<root or edgeopt.cache.root()>/tune/<hash>``."""
    if cfg.cache_dir:
        return Path(cfg.cache_dir).expanduser()
    h = hashlib.sha256()
    keep = cfg.model_dump(mode="json", exclude={"retrain", "final_epochs", "cache_dir", "overwrite"})
    h.update(json.dumps({"tune": keep, "train": train.model_dump(mode="json")}, sort_keys=True).encode())
    for arr in (dataset.x_train, dataset.y_train, dataset.x_val, dataset.y_val):
        h.update(np.ascontiguousarray(arr).tobytes())
    if teacher is not None:
        for w in teacher.get_weights():
            h.update(np.ascontiguousarray(w).tobytes())
    from edgeopt import cache

    base = Path(root) if root else cache.root()
    return base / "tune" / h.hexdigest()[:16]


def search(teacher, dataset, cfg: TuneConfig, train, *, cache_root: str | Path | None = None,
           reporter=None, final_split: Literal["val", "test"] = "test") -> SearchResult:
    """Run (or resume) the search, then the final training; a distributed worker only runs trials.
    ``final_split``: where the final model's figures come from ("val" when it is not a final artifact)."""
    from edgeopt.models.load import use_legacy_keras

    use_legacy_keras()
    from edgeopt.train import tuner as tuner_mod
    from edgeopt.train.distiller import teacher_logits

    if cfg.objective.startswith("val_") and not len(dataset.x_val):
        raise UsageError(f"data '{dataset.name}' has no validation split for objective {cfg.objective}",
                         "give x_val/y_val, or use objective: accuracy")
    if cfg.distill:
        if teacher is None:
            raise UsageError("tune has distill: true but there is no teacher model", "pass the teacher model")
        check_teacher(teacher, dataset)
    role = tuner_mod.role_from_env()
    seed = cfg.seed if cfg.seed is not None else train.seed
    soft = teacher_logits(teacher, dataset.x_train) if cfg.distill else None
    directory = cache_directory(cfg, train, dataset, teacher if cfg.distill else None, cache_root)
    project = directory / "search"
    resumed = (project / "oracle.json").exists() and not cfg.overwrite
    oracle = tuner_mod.make_oracle(cfg.strategy, cfg.objective, OBJECTIVES[cfg.objective], max_trials=cfg.max_trials,
                                   max_epochs=cfg.max_epochs, factor=cfg.factor, iterations=cfg.hyperband_iterations,
                                   seed=seed)
    hypermodel = trial_model(dataset, cfg, train, soft, seed)
    reporter = reporter or LogReporter(planned_trials(cfg))
    tuner = tuner_mod.open_tuner(oracle, hypermodel, directory, overwrite=cfg.overwrite, reporter=reporter,
                                 patience=cfg.patience)
    log.info("tune: %s search in %s%s", cfg.strategy, project, " (resuming)" if resumed else "")
    seconds = tuner_mod.run_search(tuner)
    if role == "worker":
        return SearchResult(None, {"role": "worker", "cache_dir": str(directory)})
    return _finish(tuner, hypermodel, teacher, dataset, cfg, directory, resumed, seconds, final_split)


def _finish(tuner, hypermodel, teacher, dataset, cfg: TuneConfig, directory: Path, resumed: bool,
            seconds: float, final_split: str = "test") -> SearchResult:
    from edgeopt.train import tuner as tuner_mod
    from edgeopt.train.distiller import teacher_logits
    from edgeopt.train.fit import evaluate, train

    oracle = tuner.oracle
    best_trials = oracle.get_best_trials(1)
    if not best_trials:
        raise RuntimeError(f"no trial of the search in {directory} finished; see the trial folders for errors")
    best = best_trials[0]
    info = tuner_mod.trial_info(directory / "search")
    trials = sorted(oracle.trials.values(), key=lambda t: t.trial_id)
    hp_values = {k: v for k, v in best.hyperparameters.values.items() if not k.startswith("tuner/")}
    final_epochs = cfg.final_epochs or hypermodel.train.epochs
    if cfg.retrain:
        x = np.concatenate([dataset.x_train, dataset.x_val])
        y = np.concatenate([dataset.y_train, dataset.y_val])
        soft = teacher_logits(teacher, x) if cfg.distill else None
        model = hypermodel.build(best.hyperparameters)
        model, _ = train(model, x, y, hypermodel.settings(hp_values, final_epochs), soft=soft)
    else:
        model = tuner.load_model(best)
    if final_split == "val" and not len(dataset.x_val):
        final_split = None
    split_x, split_y = ((dataset.x_test, dataset.y_test) if final_split == "test" else
                        (dataset.x_val, dataset.y_val))
    final = evaluate(model, split_x, split_y) if final_split else {}
    figures = {"split": final_split, "in_sample": bool(final_split == "val" and cfg.retrain),
               **{f"{final_split}_{k}": v for k, v in final.items()}}
    summary = {
        "strategy": cfg.strategy, "objective": cfg.objective, "model": cfg.model.zoo, "distill": cfg.distill,
        "trials_run": sum(t.status == "COMPLETED" for t in trials),
        "trials_failed": sum(t.status in ("FAILED", "INVALID") for t in trials),
        "epochs_spent": sum(i.get("epochs_run", 0) for i in info.values()),
        "search_seconds": round(seconds, 1), "resumed": resumed, "cache_dir": str(directory),
        "best_trial": best.trial_id, "best_hyperparameters": hp_values, "best_score": round(float(best.score), 6),
        "final": {"trained_on": "train+val" if cfg.retrain else "train (best trial)",
                  "epochs": final_epochs if cfg.retrain else None, **figures,
                  "params": int(model.count_params())},
        "trials": [{"id": t.trial_id, "status": t.status,
                    "score": None if t.score is None else round(float(t.score), 6),
                    "epochs": info.get(t.trial_id, {}).get("epochs_run"),
                    "worker": info.get(t.trial_id, {}).get("tuner_id"),
                    "hyperparameters": t.hyperparameters.values} for t in trials],
    }
    if cfg.distill:
        summary["teacher"] = {**(evaluate(teacher, split_x, split_y) if final_split else {}),
                              "split": final_split, "params": int(teacher.count_params())}
    log.info("tune: best %s %.4f (trial %s, %s); final %s accuracy %s", cfg.objective, best.score, best.trial_id,
             hp_values, final_split, final.get("accuracy"))
    return SearchResult(model, summary)


def apply(model, ctx: StageContext, cfg: TuneConfig):
    from edgeopt.train.tuner import role_from_env

    if role_from_env() == "worker":
        raise UsageError("KERASTUNER_TUNER_ID names a worker, but compress needs the search's result",
                         "run workers with `edgeopt tune --worker ID` and compress (or `edgeopt tune --chief`) as chief")
    ctx.progress(f"tune: {cfg.strategy} search, up to {planned_trials(cfg)} trials")
    result = search(model if cfg.distill else None, ctx.dataset, cfg, ctx.train,
                    cache_root=ctx.cache_dir, reporter=LogReporter(planned_trials(cfg)), final_split="val")
    ctx.notes["tuning"] = result.summary
    return result.model


# --- `edgeopt tune`: the search alone -------------------------------------------------------------------------

_LR = {"float": [1e-4, 1e-2], "sampling": "log"}
DEFAULT_SPACES = {"small_cnn": {"width": {"choice": [0.25, 0.5, 1.0]}, "depth": {"int": [1, 3]}, "lr": _LR},
                  "mobilenet_v2_like": {"alpha": {"choice": [0.35, 0.5, 1.0]}, "lr": _LR},
                  "mlp": {"width": {"choice": [0.25, 0.5, 1.0]}, "depth": {"int": [1, 3]}, "lr": _LR}}


def write_outputs(result: SearchResult, out: str | Path, name: str) -> Path:
    """``out``/<name>_tuned.keras and ``out``/tuning.json; returns the model path."""
    from edgeopt import atomic

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}_tuned.keras"
    result.model.save(path)
    atomic.write_text(out / "tuning.json", json.dumps({"tuning": result.summary}, indent=2, default=str) + "\n")
    return path
