"""Recipe: the recipe's ``train:`` defaults and its ordered stage configs (pydantic, from YAML), parsed through
the one stage registry (edgeopt.stages.STAGES), and ``run``: the one pipeline loop."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from edgeopt.core.artifact import Artifact
from edgeopt.errors import UsageError, nearest, validation_error
from edgeopt.stages import STAGES, StageContext
from edgeopt.train.fit import TrainDefaults

log = logging.getLogger(__name__)


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    train: TrainDefaults = TrainDefaults()
    stages: list[tuple[str, Any]] = []

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None, source: str = "recipe") -> Recipe:
        raw = dict(raw or {})
        unknown = set(raw) - {"train", "stages"}
        if unknown:
            key = sorted(unknown)[0]
            raise UsageError(f"{source}: unknown top-level key '{key}'{nearest(key, ['train', 'stages'])}",
                             "a recipe has `train:` and `stages:`")
        try:
            train = TrainDefaults.model_validate(raw.get("train") or {})
        except ValidationError as e:
            raise _err(source, "train", e, list(TrainDefaults.model_fields)) from None
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
        return cls(train=train, stages=stages)

    def to_dict(self) -> dict[str, Any]:
        return {"train": self.train.model_dump(mode="json"),
                "stages": [{name: cfg.model_dump(mode="json")} for name, cfg in self.stages]}

    def with_default_convert(self) -> Recipe:
        if any(name == "convert" for name, _ in self.stages):
            return self
        return self.model_copy(update={"stages": [*self.stages, ("convert", STAGES["convert"].config())]})


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
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise UsageError(f"recipe {p} is not valid YAML ({str(e).splitlines()[0]})", "fix the YAML syntax") from None
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


def run(recipe: Recipe, model, ctx: StageContext) -> list[Artifact]:
    """The pipeline loop: every stage in order on ``ctx``. A model stage's result is the next stage's input,
    saved as ``<base>_<stage>.keras``; an artifact stage's files are added as they are. Returns the artifacts."""
    artifacts: list[Artifact] = []
    for name, cfg in recipe.stages:
        stage = STAGES[name]
        log.info("stage %s", name)
        result = stage.apply(model, ctx, cfg)
        if stage.yields == "artifacts":
            artifacts.extend(result)
        else:
            model = result
            ctx.stages_done.append(name)
            artifacts.append(_save_keras(model, ctx, name))
            ctx.parent = artifacts[-1].name
    return artifacts


def _save_keras(model, ctx: StageContext, stage: str) -> Artifact:
    path = ctx.out_dir / f"{ctx.base_name}_{stage}.keras"
    model.save(path)
    return Artifact.from_file(path, name=path.name, precision="fp32", stages=tuple(ctx.stages_done),
                              parent=ctx.parent, relative_to=ctx.out_dir)
