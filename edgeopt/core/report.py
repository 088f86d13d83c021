"""Report and Measurement: what a benchmark run found, as plain data with a versioned JSON form.

A report is the only thing the gate and the renderers read. It never knows how the artifacts were
made beyond the names in each result.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from edgeopt import atomic
from edgeopt.errors import UsageError

SCHEMA_VERSION = 1
STATUSES = ("ok", "skipped", "failed")


@dataclass
class Latency:
    """Summary of raw single-inference samples (milliseconds). Derived, never stored alone."""

    p50: float
    p90: float
    p99: float
    mean: float
    std: float
    n: int

    @classmethod
    def from_samples(cls, samples_ms: list[float]) -> Latency:
        import numpy as np

        a = np.asarray(samples_ms, dtype=np.float64)
        if a.size == 0:
            raise ValueError("no latency samples")
        p50, p90, p99 = np.percentile(a, [50, 90, 99])
        return cls(
            p50=float(p50),
            p90=float(p90),
            p99=float(p99),
            mean=float(a.mean()),
            std=float(a.std(ddof=1)) if a.size > 1 else 0.0,
            n=int(a.size),
        )

    @property
    def cv(self) -> float:
        return self.std / self.mean if self.mean else 0.0


@dataclass
class Measurement:
    """One artifact on one target with one runtime."""

    artifact: str
    format: str
    precision: str
    target: str
    runtime: str
    status: str = "ok"
    error: str | None = None
    path: str | None = None
    role: str = "artifact"  # "source" for the model the artifacts were made from
    stages: list[str] = field(default_factory=list)
    size_bytes: int | None = None
    gzip_bytes: int | None = None
    params: int | None = None
    nonzero_params: int | None = None
    accuracy: float | None = None
    agreement: float | None = None
    max_abs_diff: float | None = None
    latency_ms: Latency | None = None
    samples_ms: list[float] = field(default_factory=list)
    init_ms: float | None = None
    first_ms: float | None = None
    peak_rss_mb: float | None = None
    threads: int | None = None
    estimated: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.artifact, self.target, self.runtime)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["latency_ms"] = asdict(self.latency_ms) if self.latency_ms else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Measurement:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if kw.get("latency_ms"):
            kw["latency_ms"] = Latency(**kw["latency_ms"])
        m = cls(**kw)
        if m.status not in STATUSES:
            raise ValueError(f"status {m.status!r} is not one of {STATUSES}")
        return m


@dataclass
class Report:
    environment: dict[str, Any] = field(default_factory=dict)
    results: list[Measurement] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. "tuning", "manifests": sections added by stages
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema_version": self.schema_version,
            "environment": self.environment,
            "results": [r.to_dict() for r in self.results],
        }
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Report:
        extra = {k: v for k, v in d.items() if k not in ("schema_version", "environment", "results")}
        return cls(
            environment=dict(d.get("environment") or {}),
            results=[Measurement.from_dict(r) for r in d.get("results") or []],
            extra=extra,
            schema_version=int(d.get("schema_version", -1)),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def save(self, path: str | Path) -> Path:
        return atomic.write_text(path, self.to_json())

    def source_for(self, m: Measurement) -> Measurement | None:
        """The source-model result on the same target that ``m`` is compared against, if any."""
        for r in self.results:
            if r.role == "source" and r.target == m.target and r.status == "ok":
                return r
        return None


def load_report(path: str | Path) -> Report:
    """Read and validate a report.json; bad input raises UsageError with the fix."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"report {path} does not exist", "pass the report.json written by `edgeopt bench --out`")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"report {path} is not valid JSON ({e})", "re-run `edgeopt bench` to write it again") from None
    if not isinstance(data, dict):
        raise UsageError(f"report {path} is not a JSON object", "pass a report.json written by `edgeopt bench`")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UsageError(
            f"report {path} has schema_version {version!r}, this edgeopt reads {SCHEMA_VERSION}",
            "re-run `edgeopt bench` with this version to write a compatible report",
        )
    problems = schema_problems(data)
    if problems:
        raise UsageError(f"report {path} is malformed: {problems[0]}", "re-run `edgeopt bench` to write it again")
    try:
        report = Report.from_dict(data)
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise UsageError(f"report {path} is malformed ({e})", "re-run `edgeopt bench` to write it again") from None
    return report


def schema_path() -> Path:
    return Path(__file__).with_name("report.schema.json")


def schema_problems(data: Any, limit: int = 10) -> list[str]:
    """Where ``data`` breaks report.schema.json, as "results[2].size_bytes: expected integer, got str".

    A small validator for the subset of JSON Schema that file uses (type, required, properties, items,
    enum, const, minimum, maximum, minLength, oneOf, $ref), so readers can refuse a malformed report at
    the boundary without a jsonschema dependency.
    """
    schema = json.loads(schema_path().read_text())
    problems: list[str] = []
    _check_node(data, schema, schema, "", problems, limit)
    return problems


_JSON_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _JSON_TYPES[name])


def _check_node(value: Any, node: dict[str, Any], root: dict[str, Any], where: str, out: list[str],
                limit: int) -> None:
    if len(out) >= limit:
        return
    here = where or "top level"
    if "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    if "oneOf" in node:
        trials, all_names = [], []
        for option in node["oneOf"]:
            trial: list[str] = []
            _check_node(value, option, root, where, trial, limit)
            option = root["$defs"][option["$ref"].rsplit("/", 1)[-1]] if "$ref" in option else option
            names = option.get("type", [])
            names = [names] if isinstance(names, str) else names
            all_names += names
            trials.append((not any(_is_type(value, t) for t in names), len(trial), trial))
        if all(t[2] for t in trials):
            best = min(trials)
            if best[0]:  # no option of the value's type: say which types would do
                out.append(f"{here}: expected {' or '.join(all_names)}, got {type(value).__name__} {value!r:.40}")
            else:
                out.extend(best[2][: limit - len(out)])
        return
    types = node.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else types
        if not any(_is_type(value, t) for t in names):
            out.append(f"{here}: expected {' or '.join(names)}, got {type(value).__name__} {value!r:.40}")
            return
    if "const" in node and value != node["const"]:
        out.append(f"{here}: expected {node['const']!r}, got {value!r:.40}")
    if "enum" in node and value not in node["enum"]:
        out.append(f"{here}: expected one of {', '.join(map(str, node['enum']))}, got {value!r:.40}")
    if _is_type(value, "number"):
        if "minimum" in node and value < node["minimum"]:
            out.append(f"{here}: {value} is below the minimum {node['minimum']}")
        if "maximum" in node and value > node["maximum"]:
            out.append(f"{here}: {value} is above the maximum {node['maximum']}")
    if isinstance(value, str) and len(value) < node.get("minLength", 0):
        out.append(f"{here}: must not be empty")
    if isinstance(value, dict):
        for key in node.get("required", []):
            if key not in value:
                out.append(f"{here}: missing required key '{key}'")
        for key, sub in node.get("properties", {}).items():
            if key in value:
                _check_node(value[key], sub, root, f"{where}.{key}" if where else key, out, limit)
    if isinstance(value, list) and "items" in node:
        for i, item in enumerate(value):
            _check_node(item, node["items"], root, f"{where}[{i}]", out, limit)
