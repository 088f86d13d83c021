"""Recipe: ordered stage configs (pydantic, from YAML). One registry of stage names; run() is the
one pipeline loop in compress.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgeopt.errors import UsageError, nearest

LR_KINDS = ("constant", "constant_then_exponential", "step", "cosine", "warmup_cosine")
# which optional LRSchedule keys each kind reads (others must stay unset: a key that does nothing is a mistake)
LR_KEYS = {"constant": (), "constant_then_exponential": ("hold_epochs", "decay_rate"),
           "step": ("step_epochs", "decay_rate"), "cosine": ("min_lr",), "warmup_cosine": ("warmup_epochs", "min_lr")}


class LRSchedule(BaseModel):
    """Learning rate over training, in epochs (edgeopt/train/schedules.py builds it for a stage).

    constant; constant_then_exponential (``initial`` for ``hold_epochs``, then × ``decay_rate`` per epoch);
    step (× ``decay_rate`` every ``step_epochs``); cosine (to ``min_lr`` at the last epoch); warmup_cosine
    (linear from 0 over ``warmup_epochs``, then cosine). Unset keys take per-kind defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["constant", "constant_then_exponential", "step", "cosine", "warmup_cosine"] = "constant"
    initial: float = Field(1e-3, gt=0)
    hold_epochs: float | None = Field(None, ge=0)
    decay_rate: float | None = Field(None, gt=0, le=1)
    step_epochs: float | None = Field(None, gt=0)
    warmup_epochs: float | None = Field(None, ge=0)
    min_lr: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _keys_fit_kind(self) -> LRSchedule:
        allowed = LR_KEYS[self.kind]
        for key in ("hold_epochs", "decay_rate", "step_epochs", "warmup_epochs", "min_lr"):
            if getattr(self, key) is not None and key not in allowed:
                raise ValueError(f"'{key}' does nothing for kind '{self.kind}' (it reads: "
                                 f"{', '.join(allowed) or 'only initial'})")
        if self.min_lr is not None and self.min_lr > self.initial:
            raise ValueError(f"min_lr {self.min_lr} is above initial {self.initial}")
        return self


class TrainDefaults(BaseModel):
    """Settings every training stage shares unless the stage overrides them."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=1)
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = "float32"
    lr_schedule: LRSchedule = LRSchedule()
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    weight_decay: float = Field(0.0, ge=0)  # adamw's decoupled weight decay (e.g. 0.004); the others ignore it
    seed: int = 0

    @field_validator("lr_schedule", mode="before")
    @classmethod
    def _schedule_shorthand(cls, v):
        # `lr_schedule: cosine` or `lr_schedule: 0.01` as shorthands
        if isinstance(v, str):
            return {"kind": v}
        if isinstance(v, int | float) and not isinstance(v, bool):
            return {"kind": "constant", "initial": v}
        return v


class ConvertConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    tflite: list[Literal["fp32", "fp16", "dynamic", "int8", "int16x8"]] = ["fp32", "fp16", "dynamic", "int8"]
    onnx: list[Literal["fp32", "int8"]] = ["fp32"]
    opset: int = Field(17, ge=11, le=21)
    int8_io: Literal["int8", "float"] = "int8"  # full-integer I/O (device style) or float I/O wrappers
    calibration_samples: int = Field(200, ge=1)
    max_accuracy_drop: float = Field(0.01, ge=0, le=1)  # absolute top-1 vs the float model
    # int8: when the drop exceeds max_accuracy_drop, keep the ops QuantizationDebugger ranks worst in float
    accuracy_aware: bool = True
    max_float_ops: int | None = Field(None, ge=1)  # stop the search after this many float ops (None: all)
    debug_samples: int = Field(64, ge=1)  # samples QuantizationDebugger runs to rank ops
    # ONNX int8: tf2onnx on the int8 TFLite, ONNX Runtime static quantization of the fp32 ONNX, or both and
    # keep the more accurate on the validation split
    onnx_int8: Literal["auto", "tflite", "ort_static"] = "auto"
    # drop tensor names and signature defs from TFLite files (LiteRT's strip_strings): a few hundred bytes
    # that matter on tiny models; inputs/outputs are then addressed by index only
    strip_strings: bool = False


# The one registry: recipe key -> config model. Config modules (no TensorFlow imports) add their entries.
STAGE_CONFIGS: dict[str, type[BaseModel]] = {"convert": ConvertConfig}
CONFIG_MODULES = ("edgeopt.stages.train_configs", "edgeopt.stages.compress_configs")
PLANNED = ("tune", "distill", "prune", "quantize", "cluster")


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
        return self.model_copy(update={"stages": [*self.stages, ("convert", ConvertConfig())]})


def parse_stage(name: str, cfg: dict[str, Any], where: str) -> BaseModel:
    _register_stage_modules()
    model = STAGE_CONFIGS.get(name)
    if model is None:
        if name in PLANNED:
            raise UsageError(f"{where}: stage '{name}' is not available in this edgeopt version",
                             f"use the stages it has: {', '.join(STAGE_CONFIGS)}")
        raise UsageError(f"{where}: unknown stage '{name}'{nearest(name, [*STAGE_CONFIGS, *PLANNED])}",
                         f"use one of {', '.join(STAGE_CONFIGS)}")
    try:
        return model.model_validate(cfg)
    except ValidationError as e:
        src, _, loc = where.partition(": ")
        raise _err(src, loc, e, list(model.model_fields)) from None


def _register_stage_modules() -> None:
    """Stage modules register their configs on import; their config modules import no TensorFlow."""
    import importlib

    for mod in CONFIG_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


def _err(source: str, where: str, e: ValidationError, fields: list[str] | None = None) -> UsageError:
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err["loc"])
    if err["type"] == "extra_forbidden":
        key = str(err["loc"][-1])
        hint = nearest(key, fields or [])
        return UsageError(f"{source}: {where}: unknown key '{loc}'{hint}", "see the recipe format in README.md")
    got = err.get("input")
    msg = f"{source}: {where}{'.' + loc if loc else ''}: {err['msg']}"
    if got is not None and not isinstance(got, dict):
        msg += f" (got {got!r})"
    return UsageError(msg, "see the recipe format in README.md")


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
