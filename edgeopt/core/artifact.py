"""Artifact value object, the facts of its file (sizes, parameter counts), and the manifest.json that lists a
compress run's outputs."""

from __future__ import annotations

import gzip
import hashlib
import logging
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from edgeopt import atomic
from edgeopt.core.safe_yaml import load_json
from edgeopt.errors import UsageError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1
FORMATS = ("keras", "tflite", "onnx")
PRECISIONS = ("fp32", "fp16", "int8", "dynamic", "int8_weights", "int16x8", "u8s8")
SUFFIX_FORMAT = {".tflite": "tflite", ".onnx": "onnx", ".keras": "keras", ".h5": "keras"}
# Small integer constants (shapes, axes, perms) are graph plumbing, not parameters.
_PLUMBING_MAX_ELEMS = 8


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def size_bytes(path: str | Path) -> int:
    path = Path(path)
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def gzip_bytes(path: str | Path) -> int:
    """Size after gzip -9: what sparsity and clustering buy on disk and over the air."""
    path = Path(path)
    if path.is_dir():
        return sum(len(gzip.compress(f.read_bytes(), 9)) for f in sorted(path.rglob("*")) if f.is_file())
    return len(gzip.compress(path.read_bytes(), compresslevel=9))


def param_counts(path: str | Path, fmt: str) -> tuple[int | None, int | None]:
    """(params, nonzero params) from the artifact file; (None, None) for formats read at run time."""
    import numpy as np

    from edgeopt.core import graph

    try:
        if fmt in ("tflite", "onnx"):
            params = nonzero = 0
            for a in graph.read(path, fmt).constants():
                if np.issubdtype(a.dtype, np.integer) and a.ndim <= 1 and a.size <= _PLUMBING_MAX_ELEMS:
                    continue
                params += int(a.size)
                nonzero += int(np.count_nonzero(a))
            return params, nonzero
    except Exception as e:  # noqa: BLE001 — a count we cannot read is missing, not fatal
        log.warning("could not count parameters of %s: %s", path, e)
    return None, None


class FileFacts:
    """What an artifact file is on disk: size, gzip -9 size, parameter counts.

    ``collect`` gives each artifact one; a value is read from the file on first use and kept, so every target of
    a run reports the same numbers without reading the file again.
    """

    def __init__(self, path: str | Path, fmt: str) -> None:
        self.path, self.format = Path(path), fmt

    @cached_property
    def size_bytes(self) -> int:
        return size_bytes(self.path)

    @cached_property
    def gzip_bytes(self) -> int:
        return gzip_bytes(self.path)

    @cached_property
    def _counts(self) -> tuple[int | None, int | None]:
        return param_counts(self.path, self.format)

    @property
    def params(self) -> int | None:
        return self._counts[0]

    @property
    def nonzero_params(self) -> int | None:
        return self._counts[1]

    def astuple(self) -> tuple[int, int, int | None, int | None]:
        """(size_bytes, gzip_bytes, params, nonzero_params)."""
        return self.size_bytes, self.gzip_bytes, self.params, self.nonzero_params


@dataclass(frozen=True)
class Artifact:
    """A file a stage produced. ``path`` is relative to the manifest's folder when in a manifest."""

    name: str
    path: str
    format: str
    precision: str
    size_bytes: int
    sha256: str
    stages: tuple[str, ...] = ()
    parent: str | None = None
    role: str = "artifact"  # "source": the input model, copied for reference runs
    status: str = "ok"  # "failed": asked for but could not be built; no file, ``error`` says why
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)  # parity, sensitivity, ...
    facts: FileFacts | None = field(default=None, compare=False, hash=False, repr=False)  # set by collect; not saved

    @classmethod
    def from_file(cls, path: str | Path, *, name: str | None = None, precision: str = "fp32",
                  stages: tuple[str, ...] = (), parent: str | None = None, role: str = "artifact",
                  info: dict[str, Any] | None = None, relative_to: Path | None = None) -> Artifact:
        p = Path(path)
        fmt = format_of(p)
        rel = str(p.relative_to(relative_to)) if relative_to else str(p)
        return cls(name=name or p.name, path=rel, format=fmt, precision=precision,
                   size_bytes=size_bytes(p),
                   sha256=sha256_of(p) if p.is_file() else "", stages=tuple(stages), parent=parent,
                   role=role, info=dict(info or {}))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(replace(self, facts=None))
        del d["facts"]
        d["stages"] = list(self.stages)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Artifact:
        known = {f.name for f in fields(cls)} - {"facts"}
        kw = {k: v for k, v in d.items() if k in known}
        kw["stages"] = tuple(kw.get("stages") or ())
        return cls(**kw)


def format_of(path: Path) -> str:
    if path.is_dir() and (path / "saved_model.pb").exists():
        return "keras"
    fmt = SUFFIX_FORMAT.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(f"{path} is not a model artifact (suffix {path.suffix!r})",
                         "pass a .tflite, .onnx, .keras/.h5 file, a SavedModel folder or a compress output folder")
    return fmt


@dataclass
class Manifest:
    source: dict[str, Any]
    artifacts: list[Artifact] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # sections stages add (tuning, sensitivity)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        d = {"schema_version": self.schema_version, "source": self.source,
             "artifacts": [a.to_dict() for a in self.artifacts]}
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        extra = {k: v for k, v in d.items() if k not in ("schema_version", "source", "artifacts")}
        return cls(source=dict(d.get("source") or {}), artifacts=[Artifact.from_dict(a) for a in d["artifacts"]],
                   extra=extra, schema_version=int(d.get("schema_version", -1)))

    def save(self, folder: str | Path) -> Path:
        return atomic.write_json(Path(folder) / MANIFEST, self.to_dict())


def load_manifest(folder: str | Path) -> Manifest:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise UsageError(f"{folder} has no {MANIFEST}", "pass a folder written by `edgeopt compress --out`")
    try:
        raw = load_json(path, "manifest", "re-run `edgeopt compress` to write it again")
        if not isinstance(raw, dict):
            raise UsageError(f"{path} is a JSON {type(raw).__name__}, not an object",
                             "re-run `edgeopt compress` to write it again")
        m = Manifest.from_dict(raw)
    except UsageError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UsageError(f"{path} is malformed ({e})", "re-run `edgeopt compress` to write it again") from None
    if m.schema_version != SCHEMA_VERSION:
        raise UsageError(f"{path} has schema_version {m.schema_version}, this edgeopt reads {SCHEMA_VERSION}",
                         "re-run `edgeopt compress` with this version")
    return m


def collect(paths: list[str | Path]) -> list[tuple[Artifact, Path]]:
    """Expand bench arguments (artifact files or compress folders) to (artifact, absolute path) pairs; each
    artifact carries the FileFacts of its file."""
    out: list[tuple[Artifact, Path]] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise UsageError(f"{p} does not exist", "pass an artifact file or a folder written by `edgeopt compress`")
        if p.is_dir() and (p / MANIFEST).is_file():
            m = load_manifest(p)
            for a in m.artifacts:
                out.append((a, (p / a.path).resolve()))
        else:
            out.append((Artifact.from_file(p, precision=detect_precision(p)), p.resolve()))
    return [(replace(a, facts=FileFacts(path, a.format)), path) for a, path in out]


def detect_precision(path: Path) -> str:
    """Best guess of a bare artifact's precision from its tensors (a manifest says it outright)."""
    from edgeopt.core import graph

    try:
        fmt = format_of(path)
        if fmt == "tflite":
            return graph.read_tflite(path.read_bytes()).precision()
        if fmt == "onnx":
            return graph.read_onnx(path, external_data=False).precision()
    except Exception:  # noqa: BLE001 — unreadable files fail later, in the runtime, with a real reason
        pass
    return "fp32"
