"""benchmark(): every artifact × target, the source model first (its outputs are the reference),
one fresh worker each, the report saved after every result so a crash keeps what was measured."""

from __future__ import annotations

import logging
import os
import platform
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from edgeopt.artifact import Artifact, collect
from edgeopt.bench import harness
from edgeopt.errors import UsageError
from edgeopt.report import Measurement, Report

log = logging.getLogger(__name__)

VERSIONED = ("tensorflow", "tf-keras", "ai-edge-litert", "onnxruntime", "onnxruntime-gpu", "tf2onnx", "onnx", "numpy",
             "tensorflow-model-optimization")


def host_environment() -> dict:
    from edgeopt import __version__
    from edgeopt.bench.runner import environment

    env = environment()
    env.pop("runtime_version", None)
    versions = {}
    for dist in VERSIONED:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    env.update({"edgeopt": __version__, "os": platform.platform(), "versions": versions,
                "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None})
    return env


def _ordered(items: list[tuple[Artifact, Path]]) -> list[tuple[Artifact, Path]]:
    return sorted(items, key=lambda it: 0 if it[0].role == "source" else 1)


def skipped(artifact: Artifact, path: Path, target: str, runtime: str, reason: str) -> Measurement:
    return Measurement(artifact=artifact.name, format=artifact.format, precision=artifact.precision, target=target,
                       runtime=runtime, status="skipped", error=reason, path=str(path), role=artifact.role,
                       stages=list(artifact.stages))


def benchmark(paths: list[str | Path], targets: list, dataset, out: str | Path | None = None,
              on_result: Callable[[Measurement], None] | None = None, on_start: Callable[[str], None] | None = None,
              **overrides) -> Report:
    """Measure every artifact found in ``paths`` on every target; returns (and saves to ``out``) the report.

    ``overrides`` are run settings (threads, warmup, min_runs, min_seconds, max_seconds, timeout_s).
    """
    items = _ordered(collect(list(paths)))
    if not items:
        raise UsageError("no artifacts found in " + ", ".join(map(str, paths)), "pass artifact files or compress folders")
    report = Report(environment=host_environment())
    report.environment["data"] = dataset.name
    report.environment["targets"] = {}
    labels = dataset.y_test
    with tempfile.TemporaryDirectory(prefix="edgeopt-bench-") as tmp:
        data_path = harness.write_inputs(Path(tmp), dataset.x_test)
        for target in targets:
            target = target.with_overrides(**overrides)
            if target.connection.kind != "local":
                raise UsageError(f"target '{target.name}' connects by {target.connection.kind}, which this build "
                                 "cannot reach yet", "use a local target such as x86-cpu")
            plan = harness.RunPlan.from_target(target)
            report.environment["targets"][target.name] = {"threads": plan.threads, "run": target.run.model_dump()}
            reference = None
            for artifact, path in items:
                runtime = _runtime_for(artifact, target)
                if on_start:
                    on_start(f"{artifact.name} on {target.name}")
                if runtime is None:
                    m, outputs = skipped(artifact, path, target.name, "-",
                                         f"target {target.name} has no runtime for {artifact.format}"), None
                else:
                    m, outputs = harness.bench_one(artifact, path, target, runtime, plan, data_path, labels, reference)
                if artifact.role == "source" and outputs is not None and reference is None:
                    reference = outputs
                report.results.append(m)
                if out:
                    report.save(out)  # partial reports survive a crash or Ctrl-C
                if on_result:
                    on_result(m)
    return report


def _runtime_for(artifact: Artifact, target) -> str | None:
    from edgeopt.runtimes import FOR_FORMAT

    runtime = FOR_FORMAT.get(artifact.format)
    return runtime if runtime in target.runtimes else None
