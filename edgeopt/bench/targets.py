"""Target: where a benchmark runs (data only, from targets/*.yaml), frozen once loaded."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgeopt import bundled
from edgeopt.bench.estimate import Calibration
from edgeopt.bench.plan import RunSettings
from edgeopt.core.safe_yaml import load_yaml
from edgeopt.errors import UsageError, nearest, validation_error


class Connection(BaseModel):
    """How to reach the target. String values may use ``${VAR}`` / ``${VAR:-default}`` (environment)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["local", "ssh", "qemu"] = "local"
    host: str | None = None
    user: str | None = None
    port: int = Field(22, ge=1, le=65535)
    identity_file: str | None = None  # private key; None: ssh's own defaults / agent
    known_hosts_file: str | None = None  # None: ~/.ssh/known_hosts
    accept_new_host_key: bool = False  # opt-in trust on first use; a *changed* key is still refused
    python: str = "python3"  # the device's interpreter (needs numpy and a runtime)
    connect_timeout_s: float = Field(10.0, gt=0)
    remote_tmp: str = "/tmp"  # where the per-run folder is made on the device
    sysroot: str | None = None  # qemu: default <EDGEOPT_CACHE>/sysroot-aarch64
    qemu_cpu: str | None = None  # qemu: -cpu model (e.g. cortex-a72); None: qemu's default ("max")

    @model_validator(mode="after")
    def _complete(self) -> Connection:
        if self.kind == "ssh" and not self.host:
            raise ValueError("an ssh connection needs a host")
        return self


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
    calibration: Calibration | None = None
    estimate_as: str | None = None  # use this other target's calibration (rpi4-emulated → rpi4)

    @model_validator(mode="after")
    def _check(self) -> TargetSpec:
        from edgeopt.runtimes import REGISTRY

        unknown = [r for r in self.runtimes if r not in REGISTRY]
        if unknown:
            raise ValueError(f"unknown runtime '{unknown[0]}' (use {', '.join(REGISTRY)})")
        if self.connection.kind == "qemu" and self.arch != "aarch64":
            raise ValueError("a qemu target emulates aarch64; set arch: aarch64")
        return self


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
    dirs += [Path.cwd() / "targets", bundled.folder("targets")]  # then the checkout's or the wheel's own
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


def load_target(name_or_path: str | Path, _seen: tuple[str, ...] = ()) -> Target:
    """A target by name (from ``available()``) or by path to a .yaml; bad input raises UsageError."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise UsageError(f"target file {p} does not exist", "pass an existing .yaml or a name from `edgeopt targets`")
        return _parse(p, _seen)
    known = available()
    if str(name_or_path) not in known:
        raise UsageError(f"unknown target '{name_or_path}'{nearest(str(name_or_path), list(known))}",
                         f"use one of {', '.join(known) or '(none found)'} or pass a path to a target .yaml")
    return _parse(known[str(name_or_path)], _seen)


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any) -> Any:
    """``${VAR}`` and ``${VAR:-default}`` in strings (recursively); an unset VAR without default stays as is."""
    if isinstance(value, str):
        return _ENV.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) if m.group(2) is not None
                                                                    else m.group(0)), value)
    if isinstance(value, dict):
        return {k: expand_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v) for v in value]
    return value


def _parse(path: Path, _seen: tuple[str, ...] = ()) -> Target:
    raw = load_yaml(path, "target file", "see targets/x86-cpu.yaml for the format") or {}
    if not isinstance(raw, dict):
        raise UsageError(f"target file {path} is not a mapping", "see targets/x86-cpu.yaml for the format")
    raw.setdefault("name", path.stem)
    if isinstance(raw.get("connection"), dict):
        raw["connection"] = expand_env(raw["connection"])
    try:
        spec = TargetSpec.model_validate(raw)
    except ValidationError as e:
        raise validation_error(e, f"target file {path}", "see targets/x86-cpu.yaml and targets/rpi4.yaml for the format") from None
    if spec.estimate_as and spec.calibration is None:
        if spec.estimate_as in _seen or spec.estimate_as == spec.name:
            raise UsageError(f"target file {path}: estimate_as '{spec.estimate_as}' refers back to itself",
                             "point estimate_as at a target with its own calibration")
        other = load_target(spec.estimate_as, _seen=(*_seen, spec.name))
        spec = spec.model_copy(update={"calibration": other.calibration})
    return Target(spec=spec, source=path)
