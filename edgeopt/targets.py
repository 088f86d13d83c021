"""Target: where a benchmark runs (data only, from targets/*.yaml), frozen once loaded."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgeopt.errors import UsageError, nearest


class RunSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    warmup: int = Field(10, ge=0)
    min_runs: int = Field(50, ge=1)
    min_seconds: float = Field(1.0, ge=0)
    max_seconds: float = Field(30.0, gt=0)  # stop timing after this even if min_runs is not reached
    max_runs: int = Field(5000, ge=1)  # and after this many samples even if min_seconds is not reached
    timeout_s: float = Field(300.0, gt=0)  # whole worker (load + accuracy + timing) per artifact


class Connection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["local", "ssh", "qemu"] = "local"
    host: str | None = None
    user: str | None = None
    port: int = 22
    identity_file: str | None = None
    python: str = "python3"
    sysroot: str | None = None


class TargetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    description: str = ""
    arch: Literal["x86_64", "aarch64", "armv7l"] = "x86_64"
    cores: int = Field(ge=1)
    threads: int = Field(ge=1)
    device: Literal["cpu", "gpu"] = "cpu"
    runtimes: tuple[str, ...] = ("litert", "onnxruntime", "tf")
    runtime_options: dict[str, Any] = {}
    run: RunSettings = RunSettings()
    connection: Connection = Connection()
    calibration: dict[str, Any] = {}


@dataclass(frozen=True)
class Target:
    spec: TargetSpec
    source: Path | None = field(default=None, compare=False)

    def __getattr__(self, item: str) -> Any:  # name, threads, run, ... read through to the spec
        return getattr(self.spec, item)

    def with_overrides(self, **run_overrides: Any) -> Target:
        """A copy with threads/run settings overridden (CLI flags); None values are ignored."""
        overrides = {k: v for k, v in run_overrides.items() if v is not None}
        threads = overrides.pop("threads", None)
        run = self.spec.run.model_copy(update=overrides)
        spec = self.spec.model_copy(update={"run": run, **({"threads": threads} if threads else {})})
        return Target(spec=spec, source=self.source)


def search_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("EDGEOPT_TARGETS_PATH", "").split(os.pathsep) if p]
    dirs += [Path.cwd() / "targets", Path(__file__).resolve().parent.parent / "targets"]
    seen, out = set(), []
    for d in dirs:
        if d.is_dir() and d.resolve() not in seen:
            seen.add(d.resolve())
            out.append(d)
    return out


def available() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in search_dirs():
        for f in sorted(d.glob("*.yaml")):
            found.setdefault(f.stem, f)
    return found


def load_target(name_or_path: str | Path) -> Target:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise UsageError(f"target file {p} does not exist", "pass an existing .yaml or a name from `edgeopt targets`")
        return _parse(p)
    known = available()
    if str(name_or_path) not in known:
        raise UsageError(f"unknown target '{name_or_path}'{nearest(str(name_or_path), list(known))}",
                         f"use one of {', '.join(known) or '(none found)'} or pass a path to a target .yaml")
    return _parse(known[str(name_or_path)])


def _parse(path: Path) -> Target:
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise UsageError(f"target file {path} is not valid YAML ({e})", "fix the YAML syntax")
    if not isinstance(raw, dict):
        raise UsageError(f"target file {path} is not a mapping", "see targets/x86-cpu.yaml for the format")
    raw.setdefault("name", path.stem)
    try:
        spec = TargetSpec.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise UsageError(f"target file {path}: {loc}: {err['msg']}", "see targets/x86-cpu.yaml for the format")
    return Target(spec=spec, source=path)
