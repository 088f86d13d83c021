"""Load a model — a file, or bytes still in memory — into the runtime for its format and read its outputs.

The one place the engine runs an artifact outside a benchmark: convert's parity check, the int8 search's
trials and the ONNX int8 choice all score through ``outputs``. Scores themselves come from core.metrics."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from edgeopt.core import metrics
from edgeopt.core.inputs import feed


def outputs(model: str | Path | bytes, fmt: str, x, output: str | None = None) -> np.ndarray:
    """Float32 outputs of ``model`` (a path, or the serialized bytes of a ``fmt`` file) for the batch ``x`` (an
    array, or core.inputs.Inputs fed by name); ``output``: which one, by name, of a model with several."""
    from edgeopt.runtimes import for_format, module

    runtime = module(for_format(fmt))
    options = {"output": output} if output else {}
    x = feed(x)
    if isinstance(model, bytes | bytearray):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"trial.{fmt}"
            path.write_bytes(model)
            return runtime.load(str(path), options=options).run(x)
    return runtime.load(str(model), options=options).run(x)


def accuracy(model: str | Path | bytes, fmt: str, x: np.ndarray, y: np.ndarray, task=None) -> float:
    """Top-1 accuracy of ``model`` in its runtime on (x, y); with ``task`` (core.metrics.Task), its headline
    metric oriented so that higher is better (a lower-is-better metric negated): what searches maximise."""
    if task is None:
        return metrics.accuracy(outputs(model, fmt, x), y)
    return task.oriented(outputs(model, fmt, x, task.output), y)
