"""Report and Measurement: what a benchmark run found, as pydantic models with a versioned JSON form.

A report is the only thing the gate and the renderers read. It never knows how the artifacts were
made beyond the names in each result. The JSON Schema that ships beside this file is generated from
these models (``python -m edgeopt.core.report --write-schema``); a test fails when it is stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, model_validator
from pydantic.json_schema import GenerateJsonSchema

from edgeopt import atomic
from edgeopt.core.safe_yaml import load_json
from edgeopt.core.stats import Latency, Launch
from edgeopt.errors import Invalid, UsageError, validation_error

__all__ = ["SCHEMA_VERSION", "STATUSES", "Latency", "Launch", "Measurement", "Report", "load_report", "schema_path"]

SCHEMA_VERSION = 1
STATUSES = ("ok", "skipped", "failed")
REQUIRED_IN_FILE = ("schema_version", "environment", "results")
# result keys added later: omitted when empty
_ADDED = {"eval_peak_rss_mb": None, "launches": [], "group": None, "task": None, "metric": None, "metric_value": None,
          "lower_is_better": None, "metrics": {}}
_ADDED_LATENCY = ("launches", "noise")

_Count = Annotated[int, Field(ge=0)]
_Ms = Annotated[float, Field(ge=0)]
_Share = Annotated[float, Field(ge=0, le=1)]


class Measurement(BaseModel):
    """One artifact on one target with one runtime."""

    model_config = ConfigDict(extra="ignore")

    artifact: str = Field(min_length=1)
    format: str = Field(description="keras | tflite | onnx (the source model may name its own, e.g. savedmodel)")
    precision: str = Field(description="fp32 | fp16 | int8 | dynamic | int16x8")
    target: str = Field(min_length=1)
    runtime: str = Field(min_length=1)
    status: Literal["ok", "skipped", "failed"]
    error: str | None = None
    path: str | None = None
    role: Literal["artifact", "source"] = Field(
        "artifact", description="source: the model the artifacts were made from (reference for accuracy drop)")
    stages: list[str] = []
    size_bytes: _Count | None = None
    gzip_bytes: _Count | None = None
    params: _Count | None = None
    nonzero_params: _Count | None = None
    accuracy: _Share | None = None
    agreement: _Share | None = None
    max_abs_diff: _Ms | None = None
    task: Literal["classification", "multilabel", "regression", "raw"] | None = Field(
        None, description="What the outputs were scored for; raw: no labels, fidelity to the source model only")
    metric: str | None = Field(None, description="The task's headline metric (top1, f1, mae, agreement, cosine, or "
                                                 "the user's own): what budgets' min_metric/max_metric_drop judge")
    metric_value: float | None = Field(None, description="The headline metric's value on the eval split")
    lower_is_better: bool | None = Field(None, description="true for metrics such as mae, rmse")
    metrics: dict[str, float | None] = Field({}, description="Every figure of the task (top5, auc, rmse, r2, ...) "
                                                             "and the fidelity to the source (agreement, or cosine "
                                                             "and snr_db)")
    # Written as latency_ms; kept only when there are no raw samples (an estimate, an old file). With samples,
    # latency_ms is derived from them on every read: never a stored copy that could disagree.
    stored_latency: Latency | None = Field(None, alias="latency_ms", description="Summary of samples_ms (derived "
                                           "from them); without samples, an estimate's figure")
    samples_ms: list[_Ms] = Field([], description="Raw single-inference latencies; every statistic derives from these.")
    init_ms: _Ms | None = None
    first_ms: _Ms | None = None
    peak_rss_mb: _Ms | None = Field(None, description="Load + one batch-1 inference in a fresh worker (VmHWM, before any "
                                                       "evaluation; the largest over launches): what budgets use")
    eval_peak_rss_mb: _Ms | None = Field(None, description="The worker's VmHWM after the eval split (batched): not "
                                                            "what one inference needs")
    launches: list[Launch] = Field([], description="One record per worker launch, in order; samples_ms is their "
                                                   "samples one after another")
    group: Literal["new", "old"] | None = Field(None, description="A/B runs (bench --against): new artifact or its "
                                                                  "old twin, paired by artifact name")
    threads: Annotated[int, Field(ge=1)] | None = None
    estimated: bool = Field(False, description="true: latency_ms comes from the cost model, not a run")

    @model_validator(mode="after")
    def _derive_from_samples(self) -> Measurement:
        if self.samples_ms:
            self.stored_latency = None
        return self

    @property
    def latency_ms(self) -> Latency | None:
        return Latency.from_samples(self.samples_ms, self.launches) if self.samples_ms else self.stored_latency

    @latency_ms.setter
    def latency_ms(self, value: Latency | None) -> None:
        self.stored_latency = value

    @field_serializer("stored_latency")
    def _write_latency(self, _stored: Latency | None) -> dict[str, Any] | None:
        latency = self.latency_ms
        return latency.model_dump() if latency is not None else None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.artifact, self.target, self.runtime)

    def goodness(self, value: float) -> float:
        """A value of this result's task metric turned so that higher is better (mae, rmse: negated): the
        one place the verdicts read ``lower_is_better``."""
        return -value if self.lower_is_better else value

    def launch_samples(self) -> list[list[float]]:
        """Each launch's raw samples (one list for a result without launch records)."""
        from edgeopt.core.stats import split

        return split(self.samples_ms, self.launches)


def _document_schema(schema: dict[str, Any]) -> None:
    schema["description"] = " ".join(schema["description"].split())
    schema["required"] = list(REQUIRED_IN_FILE)  # defaults in memory (Report()), refused absent by load_report
    schema["properties"].update({
        "tuning": {"type": "object", "description": "Optional: the tune stage's summary (trials, best "
                                                    "hyperparameters, scores)."},
        "manifests": {"type": ["array", "object"], "description": "Optional: the compress run's manifest(s), "
                                                                  "with per-layer sensitivity and sparsity."}})


class Report(BaseModel):
    """What `edgeopt bench` measured: one result per (artifact, target, runtime). Extra top-level sections (e.g.
    "tuning", "manifests") are added by stages and allowed."""

    model_config = ConfigDict(extra="allow", title="edgeopt report.json", json_schema_extra=_document_schema)

    schema_version: int = Field(SCHEMA_VERSION, json_schema_extra={"const": SCHEMA_VERSION},
                                description="Bumped on any incompatible change; readers refuse other versions.")
    environment: dict[str, Any] = Field({}, description="Where and with what the benchmark ran (host, CPU, library "
                                                        "versions, ...).")
    results: list[Measurement] = []

    @property
    def extra(self) -> dict[str, Any]:
        """The sections stages add (e.g. "tuning", "manifests"), written after the results."""
        assert self.__pydantic_extra__ is not None
        return self.__pydantic_extra__

    @extra.setter
    def extra(self, sections: dict[str, Any]) -> None:
        sections = dict(sections)  # a copy first: ``rep.extra = rep.extra`` keeps them
        self.extra.clear()
        self.extra.update(sections)

    def to_json(self) -> str:
        data = self.model_dump(by_alias=True)
        for r in data["results"]:  # keys added after schema_version 1 are written only when they hold something
            for key, empty in _ADDED.items():
                if key in r and r[key] == empty:
                    del r[key]
            for key in _ADDED_LATENCY:
                if (r.get("latency_ms") or {}).get(key, 0) is None:
                    del r["latency_ms"][key]
        return json.dumps(data, indent=2) + "\n"

    def save(self, path: str | Path) -> Path:
        return atomic.write_text(path, self.to_json())

    def source_for(self, m: Measurement) -> Measurement | None:
        """The source-model result on the same target (and A/B group) that ``m`` is compared against, if any."""
        for r in self.results:
            if r.role == "source" and r.target == m.target and r.status == "ok" and r.group == m.group:
                return r
        return None

    @property
    def is_ab(self) -> bool:
        """Written by ``bench --against``: new artifacts and their old twins, measured interleaved."""
        return any(r.group == "old" for r in self.results)

    def split_ab(self) -> tuple[Report, Report]:
        """(new, old): an A/B report as two reports of the same run, for the gate to compare."""
        def part(group: str) -> Report:
            return Report(environment=self.environment, results=[r for r in self.results if r.group == group])

        return part("new"), part("old")


def load_report(path: str | Path) -> Report:
    """Read and validate a report.json; bad input raises UsageError with the fix."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"report {path} does not exist", "pass the report.json written by `edgeopt bench --out`")
    data = load_json(path, "report", "re-run `edgeopt bench` to write it again")
    if not isinstance(data, dict):
        raise UsageError(f"report {path} is not a JSON object", "pass a report.json written by `edgeopt bench`")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UsageError(
            f"report {path} has schema_version {version!r}, this edgeopt reads {SCHEMA_VERSION}",
            "re-run `edgeopt bench` with this version to write a compatible report",
        )
    fix = "re-run `edgeopt bench` to write it again"
    missing = [k for k in REQUIRED_IN_FILE if k not in data]
    if missing:
        raise UsageError(f"report {path} does not match the report schema: top level: missing required key "
                         f"'{missing[0]}'", fix)
    try:
        return Report.model_validate(data, strict=True)
    except ValidationError as e:
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise validation_error(e, f"report {path} does not match the report schema", fix, _schema_words(more)) from None


# --- the JSON Schema ----------------------------------------------------------------------------------

_JSON_TYPES = {"int": "integer", "float": "number", "string": "string", "bool": "boolean", "list": "array",
               "dict": "object", "model": "object", "model_attributes": "object"}


def _schema_words(more: str):
    """Word a pydantic error the way JSON Schema would: "results[2].size_bytes: expected integer or null"."""

    def explain(bad: Invalid) -> tuple[str, str, str]:
        fix = "re-run `edgeopt bench` to write it again"
        here = _place(bad.loc) or "top level"
        got = f", got {type(bad.value).__name__} {bad.value!r:.40}"
        kind = bad.kind.removesuffix("_type").removesuffix("_parsing").removesuffix("_from_float")
        if bad.kind == "missing":
            return _place(bad.loc[:-1]) or "top level", f"missing required key '{bad.loc[-1]}'{more}", fix
        if kind in _JSON_TYPES:
            null = " or null" if _nullable(bad.loc) else ""
            return here, f"expected {_JSON_TYPES[kind]}{null}{got}{more}", fix
        if bad.kind == "literal_error":
            return here, f"expected one of {bad.ctx['expected'].replace(' or ', ', ').replace(chr(39), '')}{more}", fix
        if bad.kind in ("greater_than_equal", "less_than_equal"):
            word, bound = ("below the minimum", bad.ctx["ge"]) if "ge" in bad.ctx else ("above the maximum", bad.ctx["le"])
            return here, f"{bad.value} is {word} {bound:g}{more}", fix
        if bad.kind == "string_too_short":
            return here, f"must not be empty{more}", fix
        return here, f"{bad.reason}{more}", fix

    return explain


def _place(loc: tuple[str | int, ...]) -> str:
    """("results", 2, "samples_ms", 5) -> "results[2].samples_ms[5]"."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out


def _nullable(loc: tuple[str | int, ...]) -> bool:
    """Whether a result's field at ``loc`` (results[i].<field>) also accepts null."""
    if len(loc) != 3 or loc[0] != "results":
        return False
    field = next((f for name, f in Measurement.model_fields.items() if (f.alias or name) == loc[2]), None)
    return field is not None and type(None) in get_args(field.annotation)


class _Schema(GenerateJsonSchema):
    def field_title_should_be_set(self, schema) -> bool:  # "title": "Size Bytes" on every field is noise
        return False


def schema_path() -> Path:
    return Path(__file__).with_name("report.schema.json")


def json_schema() -> dict[str, Any]:
    """report.json's JSON Schema (draft 2020-12), generated from the models."""
    return {"$schema": GenerateJsonSchema.schema_dialect,
            **Report.model_json_schema(by_alias=True, schema_generator=_Schema)}


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2) + "\n"


def write_schema(path: str | Path | None = None) -> Path:
    return atomic.write_text(path or schema_path(), schema_text())


if __name__ == "__main__":  # the maintainers' command that regenerates the shipped schema file
    import logging

    if sys.argv[1:] != ["--write-schema"]:
        sys.exit("usage: python -m edgeopt.core.report --write-schema")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("edgeopt.core.report").info("wrote %s", write_schema())
