"""Recipe: the recipe's ``train:`` defaults, its ``max_stage_drop`` and its ordered stage configs (pydantic, from
YAML), parsed through the one stage registry (edgeopt.stages.STAGES), and ``run``: the one pipeline loop with its
accuracy guard.

The guard measures the source model once in the task's headline metric (``ctx.task``: top-1 for classification;
on the validation split, and on the test split for convert's tolerances) and every model stage's result against
it — the source, never the previous stage, so small losses cannot add up unseen. A stage whose result is more than
``max_stage_drop`` worse than the source (for a lower-is-better metric: higher) stops the pipeline; what came
before it stays, and the manifest's ``guard`` section says where and why it stopped, naming the metric."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgeopt.core.artifact import Artifact
from edgeopt.core.metrics import TASK_NAMES
from edgeopt.core.safe_yaml import load_yaml
from edgeopt.errors import UsageError, nearest, validation_error
from edgeopt.stage_cache import Chain
from edgeopt.stage_step import deterministic, fresh_state, run_model_stage
from edgeopt.stages import STAGES, StageContext
from edgeopt.train.fit import TrainDefaults

log = logging.getLogger(__name__)


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    train: TrainDefaults = TrainDefaults()
    # a model stage may lose at most this much of the task's metric (absolute, validation split) against the source
    max_stage_drop: float = Field(0.02, ge=0, le=1)
    stages: list[tuple[str, Any]] = []
    # classification | multilabel | regression | raw; None: inferred from the model's output and the labels
    task: Literal["classification", "multilabel", "regression", "raw"] | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None, source: str = "recipe") -> Recipe:
        raw = dict(raw or {})
        unknown = set(raw) - set(TOP_LEVEL)
        if unknown:
            key = sorted(unknown)[0]
            raise UsageError(f"{source}: unknown top-level key '{key}'{nearest(key, list(TOP_LEVEL))}",
                             "a recipe has `task:`, `train:`, `max_stage_drop:` and `stages:`")
        try:
            train = TrainDefaults.model_validate(raw.get("train") or {})
        except ValidationError as e:
            raise _err(source, "train", e, list(TrainDefaults.model_fields)) from None
        drop = raw.get("max_stage_drop", cls.model_fields["max_stage_drop"].default)
        if isinstance(drop, bool) or not isinstance(drop, int | float) or not 0 <= drop <= 1:
            raise UsageError(f"{source}: max_stage_drop must be a number from 0 to 1 (got {drop!r})",
                             "give the top-1 a stage may lose against the source model, e.g. max_stage_drop: 0.02")
        task = raw.get("task")
        if task is not None and task not in TASK_NAMES:
            raise UsageError(f"{source}: task must be one of {', '.join(TASK_NAMES)} (got {task!r})",
                             "write e.g. `task: regression`, or leave it out to infer it from the model and labels")
        stages = []
        if not isinstance(raw.get("stages") or [], list):
            raise UsageError(f"{source}: stages must be a list (got {raw['stages']!r})",
                             "write `stages:` followed by `- <stage>: {...}` items")
        for i, entry in enumerate(raw.get("stages") or []):
            if not isinstance(entry, dict) or len(entry) != 1:
                raise UsageError(f"{source}: stages[{i}] must be a mapping with one stage name",
                                 "write e.g. `- convert: {tflite: [fp32, int8]}`")
            (name, cfg), = entry.items()
            stages.append((name, parse_stage(name, cfg or {}, f"{source}: stages[{i}].{name}")))
        return cls(train=train, max_stage_drop=float(drop), stages=stages, task=task)

    def to_dict(self) -> dict[str, Any]:
        d = {"train": self.train.model_dump(mode="json"), "max_stage_drop": self.max_stage_drop,
             "stages": [{name: cfg.model_dump(mode="json")} for name, cfg in self.stages]}
        if self.task is not None:
            d["task"] = self.task
        return d

    def with_default_convert(self) -> Recipe:
        if any(name == "convert" for name, _ in self.stages):
            return self
        return self.model_copy(update={"stages": [*self.stages, ("convert", STAGES["convert"].config())]})


TOP_LEVEL = ("task", "train", "max_stage_drop", "stages")


def parse_stage(name: str, cfg: dict[str, Any], where: str) -> BaseModel:
    stage = STAGES.get(name)
    if stage is None:
        raise UsageError(f"{where}: unknown stage '{name}'{nearest(name, list(STAGES))}",
                         f"use one of {', '.join(STAGES)}")
    try:
        return stage.config.model_validate(cfg)
    except ValidationError as e:
        src, _, loc = where.partition(": ")
        raise _err(src, loc, e, list(stage.config.model_fields)) from None


def _err(source: str, where: str, e: ValidationError, fields: list[str] | None = None) -> UsageError:
    fix = "see the recipe format in README.md"

    def explain(bad):
        loc = bad.path()
        if bad.kind == "extra_forbidden":
            return where, f"unknown key '{loc}'{nearest(str(bad.loc[-1]), fields or [])}", fix
        got = f" (got {bad.value!r})" if bad.value is not None and not isinstance(bad.value, dict) else ""
        return f"{where}{'.' + loc if loc else ''}", bad.message + got, fix

    return validation_error(e, source, fix, explain)


def load_recipe(path: str | Path | None) -> Recipe:
    if path is None:
        return Recipe().with_default_convert()
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"recipe {p} does not exist", "pass a recipe .yaml (see README.md) or omit --recipe")
    raw = load_yaml(p, "recipe", "pass a recipe .yaml (see README.md) or omit --recipe")
    if raw is not None and not isinstance(raw, dict):
        raise UsageError(f"recipe {p} is not a mapping", "a recipe has `train:` and `stages:`")
    return Recipe.from_dict(raw, source=str(p)).with_default_convert()


def stage_config(path: str | Path | None, name: str, default: dict[str, Any], **overrides: Any):
    """(config, TrainDefaults) of the first ``name`` stage of the recipe at ``path`` — or of ``default`` without a
    recipe — with ``overrides`` on top (``None`` = not given): a command that runs one stage alone."""
    rec = load_recipe(path) if path else Recipe()
    found = [cfg for n, cfg in rec.stages if n == name]
    if path and not found:
        raise UsageError(f"recipe {path} has no {name} stage", f"add `- {name}: {{...}}` to its stages")
    raw = found[0].model_dump(mode="json", by_alias=True, exclude_none=True) if found else dict(default)
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return parse_stage(name, raw, name), rec.train


def run(recipe: Recipe, model, ctx: StageContext, cache: Chain | None = None) -> list[Artifact]:
    """The pipeline loop: every stage in order on ``ctx``. A model stage's result is the next stage's input,
    saved as ``<base>_<stage>.keras`` with its validation figures; an artifact stage's files are added as they
    are. A model stage that loses more than ``recipe.max_stage_drop`` of the task's metric (``ctx.task``) against
    the source stops the loop (``ctx.notes["guard"]`` says so). Returns the artifacts made.

    ``cache``: the stage cache's keys for this model and data (stage_cache.Chain.start); a model stage whose key
    is there is restored from it instead of run, and one that ran is stored. The next stage always starts from
    the model as saved (loaded back from its .keras file), every stage from the same seeds, under TensorFlow's
    op determinism: a run resumed from the cache makes the same bytes as one that ran every stage."""
    task = ctx.task
    training = [name for name, _ in recipe.stages if STAGES[name].yields == "model"]
    if training and not task.classifier_labels:
        raise UsageError(f"stage '{training[0]}' trains against class labels; task {task.name} supports convert only",
                         "remove the training stages from the recipe (convert works for every task)")
    if training and (getattr(ctx.dataset, "input_shapes", None) or task.output):
        raise UsageError(f"stage '{training[0]}' trains models of one input and one output; this one has several",
                         "remove the training stages from the recipe (convert works with several inputs and outputs)")
    x_val, y_val, split = guard_split(ctx.dataset)
    ctx.reference = {split: score(model, x_val, y_val, task),
                     "test": score(model, ctx.dataset.x_test, ctx.dataset.y_test, task)}
    source_acc = previous = ctx.reference[split]
    shown = "top-1" if task.metric.name == "top1" else task.metric.name
    guard = {"verdict": "passed", "metric": f"{shown} on the {split} split", "source_accuracy": round(source_acc, 6),
             "max_stage_drop": recipe.max_stage_drop,
             "reference": {k: round(v, 6) for k, v in ctx.reference.items()}, "stages": []}
    if not task.classifier_labels:  # the keys keep their names; the figures are the task's metric
        guard["lower_is_better"] = task.metric.lower_is_better
    guard.update(task=task.name, metric_name=task.metric.name)
    ctx.notes["guard"] = guard
    record = {"enabled": cache is not None, "stages": []}
    if training:
        ctx.notes["cache"] = record
    artifacts: list[Artifact] = []
    key = None
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".stages-", dir=ctx.out_dir))  # each model stage's saved result
    try:
        with deterministic():
            for i, (name, cfg) in enumerate(recipe.stages):
                stage = STAGES[name]
                fresh_state(recipe.train.seed, model, ctx.teacher)  # the same start whatever ran before it here
                if stage.yields == "artifacts":
                    log.info("stage %s", name)
                    artifacts.extend(stage.apply(model, ctx, cfg))
                    continue
                key = cache.key(key, name, cfg, recipe.train) if cache else None
                step = run_model_stage(name, cfg, model, ctx, cache, key, work / f"{i}-{name}",
                                       lambda m: score(m, x_val, y_val, task))
                record["stages"].append({"stage": name, "key": key, "from_cache": step.from_cache})
                acc = step.accuracy
                figures = {"stage": name, "split": split, "accuracy": round(acc, 6),
                           "source_accuracy": round(source_acc, 6), "drop": round(task.drop(source_acc, acc), 6),
                           "stage_drop": round(task.drop(previous, acc), 6)}
                guard["stages"].append(figures)
                if task.drop(source_acc, acc) > recipe.max_stage_drop:
                    guard.update(verdict="stopped", stopped_at=name, kept=[a.name for a in artifacts],
                                 message=stopped_message(figures, recipe.max_stage_drop, shown), fix=stage.fix)
                    log.warning("%s — %s", guard["message"], stage.fix)
                    return artifacts
                model, previous = step.model, acc
                ctx.stages_done.append(name)
                info = {"validation": figures, "cache": {"from_cache": step.from_cache, "key": key}}
                artifacts.append(_place_keras(step.keras, ctx, name, info))
                ctx.parent = artifacts[-1].name
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return artifacts


def guard_split(dataset) -> tuple[np.ndarray, np.ndarray, str]:
    """The split the guard judges on: validation, or test when the data set has no validation samples."""
    if len(dataset.x_val):
        return dataset.x_val, dataset.y_val, "val"
    log.warning("data '%s' has no validation split: the accuracy guard judges on the test split", dataset.name)
    return dataset.x_test, dataset.y_test, "test"


def top1(model, x: np.ndarray, y: np.ndarray) -> float:
    from edgeopt.core import metrics
    from edgeopt.stages.convert import predict

    return float(metrics.accuracy(predict(model, x), y))


def score(model, x: np.ndarray, y: np.ndarray, task) -> float:
    """The task's headline metric of ``model`` on (x, y) — top-1 for classification."""
    from edgeopt.stages.convert import predict

    return float(task.score(predict(model, x), y))


def stopped_message(figures: dict, max_drop: float, metric: str = "top-1") -> str:
    return (f"stage '{figures['stage']}' lost {figures['drop']:.4f} {metric} against the source model on the "
            f"{figures['split']} split ({figures['source_accuracy']:.4f} → {figures['accuracy']:.4f}; allowed "
            f"max_stage_drop {max_drop:.4f}); the pipeline stopped there")


def _place_keras(keras_file: Path, ctx: StageContext, stage: str, info: dict) -> Artifact:
    path = ctx.out_dir / f"{ctx.base_name}_{stage}.keras"
    shutil.copyfile(keras_file, path)
    return Artifact.from_file(path, name=path.name, precision="fp32", stages=tuple(ctx.stages_done),
                              parent=ctx.parent, info=info, relative_to=ctx.out_dir)
