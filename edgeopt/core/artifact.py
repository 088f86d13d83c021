"""Artifact value object and the manifest.json that lists a compress run's outputs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from edgeopt import atomic
from edgeopt.errors import UsageError

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1
FORMATS = ("keras", "tflite", "onnx")
PRECISIONS = ("fp32", "fp16", "int8", "dynamic", "int16x8")
SUFFIX_FORMAT = {".tflite": "tflite", ".onnx": "onnx", ".keras": "keras", ".h5": "keras"}


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
    info: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)  # parity, sensitivity, ...

    @classmethod
    def from_file(cls, path: str | Path, *, name: str | None = None, precision: str = "fp32",
                  stages: tuple[str, ...] = (), parent: str | None = None, role: str = "artifact",
                  info: dict[str, Any] | None = None, relative_to: Path | None = None) -> Artifact:
        p = Path(path)
        fmt = format_of(p)
        rel = str(p.relative_to(relative_to)) if relative_to else str(p)
        return cls(name=name or p.name, path=rel, format=fmt, precision=precision,
                   size_bytes=p.stat().st_size if p.is_file() else _dir_size(p),
                   sha256=sha256_of(p) if p.is_file() else "", stages=tuple(stages), parent=parent,
                   role=role, info=dict(info or {}))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stages"] = list(self.stages)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Artifact:
        known = {f.name for f in fields(cls)}
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


def _dir_size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


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
        m = Manifest.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise UsageError(f"{path} is malformed ({e})", "re-run `edgeopt compress` to write it again") from None
    if m.schema_version != SCHEMA_VERSION:
        raise UsageError(f"{path} has schema_version {m.schema_version}, this edgeopt reads {SCHEMA_VERSION}",
                         "re-run `edgeopt compress` with this version")
    return m


def collect(paths: list[str | Path]) -> list[tuple[Artifact, Path]]:
    """Expand bench arguments (artifact files or compress folders) to (artifact, absolute path) pairs."""
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
    return out


def detect_precision(path: Path) -> str:
    """Best guess of a bare artifact's precision from its tensors (a manifest says it outright)."""
    try:
        fmt = format_of(path)
        if fmt == "tflite":
            return _tflite_precision(path)
        if fmt == "onnx":
            return _onnx_precision(path)
    except Exception:  # noqa: BLE001 — unreadable files fail later, in the runtime, with a real reason
        pass
    return "fp32"


def _tflite_precision(path: Path) -> str:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(path.read_bytes(), 0)
    types = set()
    for s in range(model.SubgraphsLength()):
        sg = model.Subgraphs(s)
        types |= {sg.Tensors(t).Type() for t in range(sg.TensorsLength())}
    tt = schema.TensorType
    if tt.INT16 in types and tt.INT8 in types:
        return "int16x8"
    if tt.INT8 in types or tt.UINT8 in types:
        # Full-integer graphs carry int8 activations into most ops; dynamic-range keeps float32 everywhere else.
        sg = model.Subgraphs(0)
        n_int8 = sum(1 for t in range(sg.TensorsLength()) if sg.Tensors(t).Type() in (tt.INT8, tt.UINT8))
        n_f32 = sum(1 for t in range(sg.TensorsLength()) if sg.Tensors(t).Type() == tt.FLOAT32)
        return "int8" if n_int8 > n_f32 else "dynamic"
    if tt.FLOAT16 in types:
        return "fp16"
    return "fp32"


def _onnx_precision(path: Path) -> str:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    ops = {n.op_type for n in model.graph.node}
    if ops & {"QuantizeLinear", "QLinearConv", "QLinearMatMul", "DynamicQuantizeLinear", "ConvInteger", "MatMulInteger"}:
        return "int8"
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        return "fp16"
    return "fp32"
