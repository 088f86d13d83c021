"""Load a model — a file, or bytes still in memory — into the runtime for its format and read its outputs.

The one place the engine runs an artifact outside a benchmark: convert's parity check, the int8 search's
trials and the ONNX int8 choice all score through ``outputs``. Scores themselves come from core.metrics."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from edgeopt.core import metrics


def outputs(model: str | Path | bytes, fmt: str, x: np.ndarray) -> np.ndarray:
    """Float32 outputs of ``model`` (a path, or the serialized bytes of a ``fmt`` file) for the batch ``x``."""
    from edgeopt.runtimes import for_format, module

    runtime = module(for_format(fmt))
    if isinstance(model, bytes | bytearray):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"trial.{fmt}"
            path.write_bytes(model)
            return runtime.load(str(path)).run(x)
    return runtime.load(str(model)).run(x)


def accuracy(model: str | Path | bytes, fmt: str, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of ``model`` in its runtime on (x, y)."""
    return metrics.accuracy(outputs(model, fmt, x), y)
