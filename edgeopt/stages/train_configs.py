"""Recipe configs of the training stages: tune and distill. No TensorFlow here: recipes are parsed and
checked (search space included) before anything heavy is imported."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from edgeopt.errors import UsageError, nearest
from edgeopt.models import init as init_mod
from edgeopt.models import zoo
from edgeopt.recipe import STAGE_CONFIGS

STRATEGIES = ("random", "hyperband", "bayesian")
OBJECTIVES = {"val_accuracy": "max", "val_loss": "min", "accuracy": "max", "loss": "min"}
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
# search-space keys that are training settings rather than builder options; the distillation ones need distill
TRAIN_KEYS = ("lr", "batch_size", "optimizer", "weight_decay")
DISTILL_KEYS = ("temperature", "distill_alpha")
Scalar = bool | int | float | str
PARAM_KEYS = ("choice", "int", "float", "boolean", "sampling", "step", "default")


def _bad(msg: str) -> PydanticCustomError:
    """A validation error whose message is ours alone (no "Value error, " prefix in the one-line UsageError)."""
    return PydanticCustomError("edgeopt", msg)


def _check_values(key: str, values: list, where: str = "") -> None:
    """Values a key can take, checked without TensorFlow (a validation error: one line in the UsageError)."""
    problem = _value_problem(key, values)
    if problem:
        raise _bad(f"{where}{problem}")


def _value_problem(key: str, values: list) -> str | None:
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)]
    if key == "init":
        for v in values:
            try:
                init_mod.check(v)
            except UsageError as e:
                return e.problem
    elif key == "activation":
        bad = [v for v in values if v not in init_mod.ACTIVATIONS]
        if bad:
            return f"unknown activation '{bad[0]}'{nearest(str(bad[0]), sorted(init_mod.ACTIVATIONS))}"
    elif key == "optimizer":
        bad = [v for v in values if v not in OPTIMIZERS]
        if bad:
            return f"unknown optimizer '{bad[0]}'{nearest(str(bad[0]), OPTIMIZERS)}; use one of {', '.join(OPTIMIZERS)}"
    elif key in ("lr", "width", "alpha", "temperature"):
        bad = [v for v in values if v not in numbers or v <= 0]
        if bad:
            return f"{key} must be positive, got {bad[0]!r}"
    elif key == "weight_decay":
        bad = [v for v in values if v not in numbers or v < 0]
        if bad:
            return f"{key} must be ≥ 0, got {bad[0]!r}"
    elif key in ("batch_size", "depth", "kernel", "units", "base_filters", "resolution"):
        bad = [v for v in values if not isinstance(v, int) or isinstance(v, bool) or v < 1]
        if bad:
            return f"{key} must be a positive integer, got {bad[0]!r}"
    elif key == "dropout":
        bad = [v for v in values if v not in numbers or not 0 <= v < 1]
        if bad:
            return f"{key} must be in [0, 1), got {bad[0]!r}"
    elif key == "distill_alpha":
        bad = [v for v in values if v not in numbers or not 0 <= v <= 1]
        if bad:
            return f"{key} must be in [0, 1], got {bad[0]!r}"
    return None


def _canonical_init(name):
    try:
        return init_mod.check(name) if isinstance(name, str) else name
    except UsageError:
        return name  # reported with the other value checks


class ModelSpec(BaseModel):
    """``{zoo: small_cnn, width: 0.25, ...}`` (a zoo builder and its options) or ``{path: student.keras}``."""

    model_config = ConfigDict(extra="allow", frozen=True)
    zoo: str | None = None
    path: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _canonical_init(cls, v):
        if isinstance(v, dict) and isinstance(v.get("init"), str):
            return {**v, "init": _canonical_init(v["init"])}
        return v

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        if (self.zoo is None) == (self.path is None):
            raise _bad("give exactly one of `zoo: <builder>` or `path: <model file>`")
        if self.path is not None and self.options:
            raise _bad(f"options {sorted(self.options)} only apply to a zoo builder, not to a model file")
        if self.zoo is not None:
            if self.zoo not in zoo.BUILDERS:
                raise _bad(f"unknown zoo model '{self.zoo}'{nearest(self.zoo, list(zoo.BUILDERS))}; "
                                 f"use one of: {', '.join(zoo.BUILDERS)}")
            allowed = zoo.options(self.zoo)
            for key in self.options:
                if key not in allowed:
                    raise _bad(f"{self.zoo} has no option '{key}'{nearest(key, allowed)}; "
                                     f"its options are: {', '.join(allowed)}")
            for key, value in self.options.items():
                _check_values(key, [value], f"{key}: ")
        return self

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


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
            raise _bad("give exactly one of choice, int, float, boolean")
        kind = kinds[0]
        if kind == "boolean" and self.boolean is not True:
            raise _bad("write {boolean: true} to search a flag (a fixed flag is a plain true/false)")
        if kind in ("choice", "boolean") and (self.sampling or self.step):
            raise _bad(f"sampling/step apply to int and float ranges, not to {kind.rstrip('_')}")
        if kind == "choice":
            if not self.choice:
                raise _bad("choice: [] is empty; list at least two values")
            if len(set(map(repr, self.choice))) != len(self.choice):
                raise _bad(f"choice {self.choice} lists a value twice")
            numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in self.choice)
            if not numeric and len({type(v) for v in self.choice}) > 1:
                raise _bad(f"choice {self.choice} mixes types; use numbers, strings or booleans only")
        if kind in ("int_", "float_"):
            lo, hi = getattr(self, kind)
            if lo >= hi:
                raise _bad(f"range [{lo}, {hi}] is empty or a single value; give lo < hi (or a fixed value)")
            if self.sampling == "log" and lo <= 0:
                raise _bad(f"log sampling needs a positive range, got [{lo}, {hi}]")
            if self.step is not None and self.step > hi - lo:
                raise _bad(f"step {self.step} is wider than the range [{lo}, {hi}]")
            if kind == "int_" and self.step is not None and self.step != int(self.step):
                raise _bad(f"an int range needs an integer step, got {self.step}")
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
    cache_dir: str | None = None  # search state (default: ~/.cache/edgeopt/tune/<hash of data+config>)
    overwrite: bool = False  # start the search afresh instead of resuming
    seed: int | None = None
    space: dict[str, Param | Scalar] = {}

    @field_validator("space", mode="before")
    @classmethod
    def _params(cls, v):
        if not isinstance(v, dict):
            raise _bad("space must be a mapping of name -> range")
        out = {}
        for key, value in v.items():
            if key == "init":  # xavier_uniform → glorot_uniform: the zoo and keras know the canonical names
                value = ({**value, "choice": [_canonical_init(c) for c in value["choice"]]}
                         if isinstance(value, dict) and isinstance(value.get("choice"), list) else _canonical_init(value))
            if not isinstance(value, dict):
                out[key] = value
                continue
            for k in value:
                if k not in PARAM_KEYS:
                    raise _bad(f"{key}: unknown key '{k}'{nearest(str(k), PARAM_KEYS)}; "
                               "use choice, int, float or boolean (+ sampling, step, default)")
            try:
                out[key] = Param.model_validate(value)
            except ValidationError as e:
                err = e.errors()[0]
                where = ".".join(str(x) for x in err["loc"])
                raise _bad(f"{key}{'.' + where if where else ''}: {err['msg']}") from None
        return out

    @field_validator("objective")
    @classmethod
    def _objective(cls, v: str) -> str:
        if v not in OBJECTIVES:
            raise _bad(f"unknown objective '{v}'{nearest(v, list(OBJECTIVES))}; use one of {', '.join(OBJECTIVES)}")
        return v

    @model_validator(mode="after")
    def _space(self) -> TuneConfig:
        if self.model.zoo is None:
            raise _bad("tune searches a zoo builder's options: give model: {zoo: small_cnn} (not a path)")
        builder = zoo.options(self.model.zoo)
        allowed = [*builder, *TRAIN_KEYS, *DISTILL_KEYS]
        searched = {k: v for k, v in self.space.items() if isinstance(v, Param)}
        if not searched:
            raise _bad("the search space is empty: add e.g. space: {width: {choice: [0.25, 0.5]}, "
                             "lr: {float: [0.0001, 0.01], sampling: log}}")
        for key, value in self.space.items():
            if key not in allowed:
                raise _bad(f"space key '{key}' is neither a {self.model.zoo} option nor a training setting"
                                 f"{nearest(key, allowed)}; use one of: {', '.join(allowed)}")
            if key in self.model.options:
                raise _bad(f"'{key}' is both fixed in model: and searched in space:; keep one")
            if key in DISTILL_KEYS and not self.distill:
                raise _bad(f"space key '{key}' needs distill: true")
            _check_values(key, value.values() if isinstance(value, Param) else [value], f"space.{key}: ")
        return self

    def space_dict(self) -> dict[str, Any]:
        return {k: v.model_dump(by_alias=True, exclude_none=True) if isinstance(v, Param) else v
                for k, v in self.space.items()}


class DistillConfig(BaseModel):
    """Teacher → student: loss = alpha·CE(labels) + (1 − alpha)·T²·KL(teacher_T ‖ student_T)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    student: ModelSpec | None = None  # None: keep training the previous stage's model
    teacher: str | None = None  # a model file; default: the model compress was given
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.1, ge=0, le=1)
    epochs: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0)


STAGE_CONFIGS.update({"tune": TuneConfig, "distill": DistillConfig})
