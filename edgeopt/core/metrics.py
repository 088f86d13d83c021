"""What can be measured without running the model: size, gzip size, parameter counts; and scores
computed from outputs: accuracy, top-1 agreement, max abs difference."""

from __future__ import annotations

import functools
import gzip
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# Small integer constants (shapes, axes, perms) are graph plumbing, not parameters.
_PLUMBING_MAX_ELEMS = 8


def size_bytes(path: Path) -> int:
    path = Path(path)
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def gzip_bytes(path: Path) -> int:
    """Size after gzip -9: what sparsity and clustering buy on disk and over the air."""
    path = Path(path)
    if path.is_dir():
        return sum(len(gzip.compress(f.read_bytes(), 9)) for f in sorted(path.rglob("*")) if f.is_file())
    return len(gzip.compress(path.read_bytes(), compresslevel=9))


def _count(arrays) -> tuple[int, int]:
    params = nonzero = 0
    for a in arrays:
        if np.issubdtype(a.dtype, np.integer) and a.ndim <= 1 and a.size <= _PLUMBING_MAX_ELEMS:
            continue
        params += int(a.size)
        nonzero += int(np.count_nonzero(a))
    return params, nonzero


def tflite_constants(path: Path) -> list[np.ndarray]:
    """Constant tensors (weights, biases) of a .tflite flatbuffer, read from the schema, no interpreter."""
    from ai_edge_litert import schema_py_generated as schema

    buf = Path(path).read_bytes()
    model = schema.Model.GetRootAsModel(buf, 0)
    dtypes = {
        schema.TensorType.FLOAT32: np.float32, schema.TensorType.FLOAT16: np.float16,
        schema.TensorType.INT8: np.int8, schema.TensorType.UINT8: np.uint8,
        schema.TensorType.INT32: np.int32, schema.TensorType.INT64: np.int64,
        schema.TensorType.INT16: np.int16,
    }
    out = []
    seen = set()
    for s in range(model.SubgraphsLength()):
        sg = model.Subgraphs(s)
        for t in range(sg.TensorsLength()):
            tensor = sg.Tensors(t)
            b = tensor.Buffer()
            if b in seen or b == 0:
                continue
            buffer = model.Buffers(b)
            dtype = dtypes.get(tensor.Type())
            if dtype is None:
                continue
            if buffer.DataLength() > 0:
                raw = buffer.DataAsNumpy().tobytes()
            elif buffer.Size() > 0:  # large models keep buffers after the flatbuffer
                raw = buf[buffer.Offset() : buffer.Offset() + buffer.Size()]
            else:
                continue
            seen.add(b)
            out.append(np.frombuffer(raw, dtype=dtype))
    return out


def onnx_constants(path: Path) -> list[np.ndarray]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    arrays = [numpy_helper.to_array(t) for t in model.graph.initializer]
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    arrays.append(numpy_helper.to_array(attr.t))
    return arrays


def param_counts(path: Path, fmt: str) -> tuple[int | None, int | None]:
    """(params, nonzero params) from the artifact file; (None, None) for formats read at run time."""
    try:
        if fmt == "tflite":
            return _count(tflite_constants(path))
        if fmt == "onnx":
            return _count(onnx_constants(path))
    except Exception as e:  # noqa: BLE001 — a count we cannot read is missing, not fatal
        log.warning("could not count parameters of %s: %s", path, e)
    return None, None


def file_facts(path: Path, fmt: str) -> tuple[int, int, int | None, int | None]:
    """(size_bytes, gzip_bytes, params, nonzero_params) of an artifact, computed once per file version:
    every target of a run measures the same files."""
    path = Path(path)
    return _file_facts(str(path.resolve()), fmt, path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _file_facts(path: str, fmt: str, _mtime_ns: int) -> tuple[int, int, int | None, int | None]:
    p = Path(path)
    return (size_bytes(p), gzip_bytes(p), *param_counts(p, fmt))


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(outputs, axis=-1) == np.asarray(labels).reshape(-1)))


def agreement(outputs: np.ndarray, reference: np.ndarray) -> float:
    """Share of samples whose top-1 class matches the reference model's."""
    return float(np.mean(np.argmax(outputs, axis=-1) == np.argmax(reference, axis=-1)))


def max_abs_diff(outputs: np.ndarray, reference: np.ndarray) -> float:
    return float(np.max(np.abs(outputs.astype(np.float64) - reference.astype(np.float64))))
