"""Runtime registry. A runtime module exposes ``NAME``, ``version()`` and ``load(path, threads, options)``
returning a Session with ``input_shape``, ``prepare(x)`` (float → input dtype), ``bind(xq)`` (set the input,
untimed), ``invoke()`` (the one timed call), ``invoke_prepared(xq)`` (bind + invoke + output) and ``run(x)``
(float batch in, float32 outputs out)."""

from __future__ import annotations

import importlib
from types import ModuleType

MODULES = {"litert": "edgeopt.runtimes.litert", "onnxruntime": "edgeopt.runtimes.onnxrt", "tf": "edgeopt.runtimes.tf"}
FOR_FORMAT = {"tflite": "litert", "onnx": "onnxruntime", "keras": "tf"}


def module(name: str) -> ModuleType:
    from edgeopt.errors import UsageError, nearest

    if name not in MODULES:
        raise UsageError(f"unknown runtime '{name}'{nearest(name, list(MODULES))}", f"use one of {', '.join(MODULES)}")
    return importlib.import_module(MODULES[name])


def for_format(fmt: str) -> str:
    return FOR_FORMAT[fmt]
