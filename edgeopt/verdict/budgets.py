"""budgets.yaml: what a release may cost per target and per artifact, and what counts as a regression.

```yaml
targets:
  x86-cpu:                      # a target name, or "*" for every target
    max_size_kb: 200            # KB are KiB (1024 bytes); MB are MiB
    max_p90_ms: {limit: 5, level: warn}   # any limit may carry its own level
    max_accuracy_drop: 0.02     # absolute, vs the source model on the same target in the same report
    min_metric: 0.8             # the task's headline metric as the report names it (top1, f1, agreement, ...)
    max_metric: 0.3             # ... an upper bound, for lower-is-better metrics (mae, rmse)
    max_metric_drop: 0.01       # how much worse than the source (for a lower-is-better metric: the rise)
    artifacts:                  # per-artifact overrides: selector -> limits (+ level)
      "*_int8": {max_size_kb: 60}
      "format=onnx": {max_p90_ms: 3, level: warn}
regression:                     # used only with a baseline report
  p50: 0.10                     # min relative p50 change to flag (AND Mann-Whitney p < alpha)
  alpha: 0.01
  size: 0.0                     # relative size growth tolerated
  accuracy: 0.005               # absolute accuracy drop tolerated
  metric: 0.005                 # other tasks: how much worse the headline metric may get (its units; mae: a rise)
```

A selector is a glob on the artifact name (``*_int8``) or ``key=value`` terms joined by commas
(``format=tflite,precision=int8``; keys: name, format, precision, runtime, role). The source model's
results are the reference, not a release candidate: budgets skip them unless a selector says
``role=source``.

Precedence, per limit (later wins): ``targets["*"]``, ``targets[name]``, then the matching selectors of
``"*"`` and then of ``name``, each in file order. A limit's level is its own, else its block's.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edgeopt.core.safe_yaml import load_yaml
from edgeopt.errors import Invalid, UsageError, nearest, validation_error

Level = Literal["error", "warn"]
LEVELS = ("error", "warn")
LIMIT_KEYS = ("max_size_kb", "max_gzip_kb", "max_p50_ms", "max_p90_ms", "max_p99_ms", "min_accuracy",
              "max_accuracy_drop", "min_agreement", "max_peak_rss_mb", "min_metric", "max_metric", "max_metric_drop")
SELECTOR_KEYS = ("name", "format", "precision", "runtime", "role")
ALL_TARGETS = "*"

NonNegative = Annotated[float, Field(strict=True, ge=0)]
Fraction = Annotated[float, Field(strict=True, ge=0, le=1)]


class Limit(BaseModel):
    """One limit value; ``level`` None inherits the level of the block it is written in."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    limit: NonNegative
    level: Level | None = None

    def to_yaml_value(self) -> float | dict[str, Any]:
        return self.limit if self.level is None else {"limit": self.limit, "level": self.level}


def _as_limit(value: Any) -> Any:
    # Accept the short form `max_p90_ms: 5` next to `max_p90_ms: {limit: 5, level: warn}`.
    if isinstance(value, (dict, Limit)):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"limit": value}
    raise ValueError(f"expected a number or {{limit: N, level: warn}}, got {type(value).__name__} {value!r}")


class LimitSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    level: Level = "error"
    max_size_kb: Limit | None = None
    max_gzip_kb: Limit | None = None
    max_p50_ms: Limit | None = None
    max_p90_ms: Limit | None = None
    max_p99_ms: Limit | None = None
    min_accuracy: Limit | None = None
    max_accuracy_drop: Limit | None = None
    min_agreement: Limit | None = None
    max_peak_rss_mb: Limit | None = None
    min_metric: Limit | None = None
    max_metric: Limit | None = None
    max_metric_drop: Limit | None = None

    @field_validator(*LIMIT_KEYS, mode="before")
    @classmethod
    def _short_form(cls, v: Any) -> Any:
        return _as_limit(v)

    def limits(self) -> dict[str, Limit]:
        """The limits written in this block, by key, in LIMIT_KEYS order."""
        return {k: getattr(self, k) for k in LIMIT_KEYS if getattr(self, k) is not None}

    def _dump(self) -> dict[str, Any]:
        d: dict[str, Any] = {k: v.to_yaml_value() for k, v in self.limits().items()}
        if self.level != "error":
            d["level"] = self.level
        return d


class ArtifactBudget(LimitSet):
    pass


class TargetBudget(LimitSet):
    artifacts: dict[str, ArtifactBudget] = {}

    @field_validator("artifacts")
    @classmethod
    def _selectors_parse(cls, v: dict[str, ArtifactBudget]) -> dict[str, ArtifactBudget]:
        for selector in v:
            parse_selector(selector)
        return v

    def _dump(self) -> dict[str, Any]:
        d = super()._dump()
        if self.artifacts:
            d["artifacts"] = {sel: ab._dump() for sel, ab in self.artifacts.items()}
        return d


class RegressionRules(BaseModel):
    """How far a result may move against the baseline before the gate calls it a regression."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    p50: NonNegative = 0.10  # relative p50 change; flagged only when ALSO significant
    alpha: Annotated[float, Field(strict=True, gt=0, lt=1)] = 0.01  # two-sided Mann-Whitney U
    size: NonNegative = 0.0  # relative size growth
    accuracy: Fraction = 0.005  # absolute accuracy drop
    metric: NonNegative = 0.005  # absolute worsening of a non-classification task's metric (in its own units)
    level: Level = "error"


class Budgets(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    targets: dict[str, TargetBudget] = {}
    regression: RegressionRules = RegressionRules()

    @classmethod
    def from_dict(cls, data: Any, source: str = "budgets.yaml") -> Budgets:
        """Validate a parsed budgets mapping; bad input raises UsageError naming the key and the fix."""
        if not isinstance(data, dict):
            raise UsageError(f"{source}: expected a mapping with 'targets:' and/or 'regression:', "
                             f"got {type(data).__name__}", "see the budgets.yaml format in the README")
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise _usage_error(e, source) from None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"targets": {name: tb._dump() for name, tb in self.targets.items()}}
        d["regression"] = self.regression.model_dump()
        return d


def load_budgets(path: str | Path) -> Budgets:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"budgets file {path} does not exist", "pass an existing budgets.yaml to --budgets")
    raw = load_yaml(path, "budgets file", "pass a budgets.yaml (see README.md) to --budgets")
    if raw is None:
        raise UsageError(f"{path.name}: the file is empty", "add a 'targets:' section with limits per target")
    return Budgets.from_dict(raw, source=path.name)


# --- selectors ----------------------------------------------------------------------------------------

def parse_selector(selector: str) -> dict[str, str]:
    """``"*_int8"`` -> {"name": "*_int8"}; ``"format=onnx,precision=int8"`` -> both terms (AND)."""
    if "=" not in selector:
        return {"name": selector}
    terms: dict[str, str] = {}
    for term in selector.split(","):
        key, sep, value = (s.strip() for s in term.partition("="))
        if not sep or not key or not value:
            raise ValueError(f"artifact selector {selector!r}: term {term.strip()!r} is not key=value")
        if key not in SELECTOR_KEYS:
            raise ValueError(f"artifact selector {selector!r}: unknown key {key!r}{nearest(key, SELECTOR_KEYS)}; "
                             f"use one of {', '.join(SELECTOR_KEYS)}")
        terms[key] = value
    return terms


def selector_matches(selector: str, fields: dict[str, str]) -> bool:
    """Whether a result with these fields (name, format, precision, runtime, role) is selected.

    Source-model results are selected only by a selector that asks for ``role=source``.
    """
    terms = parse_selector(selector)
    if fields.get("role") == "source" and terms.get("role") != "source":
        return False
    return all(fnmatch.fnmatchcase(str(fields.get(k, "")), pattern) for k, pattern in terms.items())


# --- errors -------------------------------------------------------------------------------------------

def _keys_at(loc: tuple[Any, ...]) -> tuple[str, ...]:
    """The valid keys of the mapping at ``loc`` (for the did-you-mean of an unknown key)."""
    if not loc:
        return tuple(Budgets.model_fields)
    if loc[0] == "regression":
        return tuple(RegressionRules.model_fields)
    if loc[-1] in LIMIT_KEYS:
        return tuple(Limit.model_fields)
    if len(loc) >= 3 and loc[2] == "artifacts":
        return tuple(ArtifactBudget.model_fields)
    return tuple(TargetBudget.model_fields)


def _usage_error(e: ValidationError, source: str) -> UsageError:
    return validation_error(e, source, "see the budgets.yaml format in the README", _explain)


def _explain(bad: Invalid) -> tuple[str, str, str]:
    loc, kind, value = bad.loc, bad.kind, bad.value
    if kind == "extra_forbidden":
        parent, key = loc[:-1], str(loc[-1])
        valid = _keys_at(parent)
        return bad.path(parent) or "top level", f"unknown key '{key}'{nearest(key, valid)}", \
            f"valid keys there: {', '.join(valid)}"
    where = bad.path() or "top level"
    got = f", got {type(value).__name__} {_short(value)}"
    if kind in ("float_type", "float_parsing", "int_type", "int_parsing"):
        key = next((str(x) for x in reversed(loc) if str(x) != "limit"), where)
        return where, f"expected a number{got}", f"write a number, e.g. {key}: 5"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return where, f"expected a mapping{got}", "indent the keys under it (key: value)"
    if kind == "literal_error":
        return where, f"expected one of {', '.join(LEVELS)}{got}", "use level: error or warn"
    if kind == "value_error":
        fix = f"write a number, e.g. {loc[-1]}: 5" if loc and loc[-1] in LIMIT_KEYS else \
            "see the budgets.yaml format in the README"
        return where, bad.reason, fix
    return where, f"{bad.message}{got}", "see the budgets.yaml format in the README"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
