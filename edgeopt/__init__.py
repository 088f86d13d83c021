"""edgeopt: take a trained Keras model to a small device and prove it fits.

Public API (imports nothing heavy until called): ``compress``, ``benchmark``, ``gate``, ``optimize``, ``load_report``.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["compress", "benchmark", "gate", "optimize", "load_report", "__version__"]


def compress(model, data, out, recipe=None, cache: bool = True, **kwargs):
    """Run a recipe (default: convert to every TFLite/ONNX format) on ``model``; returns the Manifest.
    ``cache=False``: neither read nor write the stage cache."""
    from edgeopt.compress import compress as _compress

    return _compress(model, data, out, recipe=recipe, cache=cache, **kwargs)


def benchmark(paths, target="x86-cpu", data="digits", out=None, num_classes=None, scale=None, **overrides):
    """Benchmark artifacts (files or compress folders) on one or more targets; returns the Report. ``num_classes``
    and ``scale`` as bench's ``--num-classes`` and ``--scale`` (scale: default from the compress outputs'
    manifests for an image folder)."""
    from os import PathLike

    from edgeopt.bench.orchestrate import benchmark as _benchmark
    from edgeopt.bench.targets import load_target
    from edgeopt.data.classes import manifest_scale
    from edgeopt.data.loaders import is_image_folder, load_dataset

    targets = [load_target(t) for t in ([target] if isinstance(target, str) else target)]
    paths = list(paths) if isinstance(paths, list | tuple) else [paths]
    if scale is None and isinstance(data, str | PathLike) and is_image_folder(data):
        scale = manifest_scale(paths)
    return _benchmark(paths, targets, load_dataset(data, num_classes=num_classes, scale=scale), out, **overrides)


def gate(report, budgets=None, baseline=None):
    """Check a report against budgets and/or a baseline report (objects or paths); returns the Verdict."""
    from pathlib import Path

    from edgeopt.core.report import Report
    from edgeopt.verdict.budgets import load_budgets
    from edgeopt.verdict.gate import check
    from edgeopt.verdict.inputs import load_input

    if isinstance(budgets, (str, Path)):
        budgets = load_budgets(budgets)
    if isinstance(baseline, (str, Path)):
        baseline = load_input(baseline, "baseline")
    return check(report if isinstance(report, Report) else load_report(report), budgets=budgets, baseline=baseline)


def optimize(model, data, target, budgets, out, trials=20, **kwargs):
    """Search compressions of ``model`` for ``target`` under ``budgets`` (an Optuna study; see edgeopt.optimize);
    returns front.json's content, with best/ written in ``out`` when a candidate meets every budget."""
    from edgeopt.optimize import optimize as _optimize

    return _optimize(model, data, target, budgets, out, trials=trials, **kwargs)


def load_report(path):
    from edgeopt.core.report import load_report as _load

    return _load(path)
