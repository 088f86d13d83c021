"""`edgeopt bench`: measure artifacts on targets, show the results."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from edgeopt.cli import DATA_HELP, NUM_CLASSES_HELP, SCALE_HELP, TaskName, _console, _progress, app


def _check_labels(items, dataset):
    """Labels outside the model's classes would score a silent 0.0: refuse them, reading the class count from the
    first .tflite/.onnx artifact's output (no TensorFlow needed); the data set then has the model's class count
    (or --num-classes, checked against it). Returns the data set."""
    from edgeopt.core import graph
    from edgeopt.data.classes import fit_to_model

    for artifact, path in items:
        if artifact.format in ("tflite", "onnx") and path.is_file():
            try:
                g = graph.read(path, artifact.format).main
                shape = g.tensors[g.outputs[0]].shape
            except Exception:  # noqa: BLE001, S112 — an unreadable artifact fails in its own worker, with its reason
                continue
            if len(shape) == 2 and shape[-1] > 1:
                what = f"artifact {artifact.name}'s output"
                if not hasattr(dataset, "info"):
                    dataset.check_labels(int(shape[-1]), what)
                    return dataset
                return fit_to_model(dataset, int(shape[-1]), what)
    return dataset


def do_bench(paths: list[Path], targets: list[str], data: str, out: Path, against: list[Path] | None = None,
             num_classes: int | None = None, scale: str | None = None, task: str | None = None,
             metric: str | None = None, **overrides):
    from edgeopt.atomic import check_writable
    from edgeopt.bench.orchestrate import benchmark
    from edgeopt.bench.targets import load_target
    from edgeopt.core.artifact import collect
    from edgeopt.data.classes import check_class_order, describe, manifest_scale, one_line
    from edgeopt.data.loaders import is_image_folder, load_dataset

    check_writable(out, "--out")  # a folder here would fail only after every artifact was measured
    target_objs = [load_target(t) for t in targets]
    if metric:
        from edgeopt.core.metrics import load_metric

        load_metric(metric)  # an import error is exit 2 before any work
    recorded_scale = manifest_scale([*paths, *(against or [])]) if scale is None and is_image_folder(data) else None
    dataset = load_dataset(data, num_classes=num_classes, scale=scale or recorded_scale)
    if recorded_scale:
        dataset = replace(dataset, info={**dataset.info, "scale_from": "the compress output's manifest"})
    check_class_order(dataset, [*paths, *(against or [])])
    items = collect(list(paths))
    dataset = _check_labels(items, dataset)
    _console().print(one_line(describe(dataset)), highlight=False, markup=False, soft_wrap=True)
    n = (len(items) + (len(collect(list(against))) if against else 0)) * len(target_objs)
    with _progress() as progress:
        bar = progress.add_task("bench", total=n)
        report = benchmark(paths, target_objs, dataset, out, against=against, task=task, metric=metric,
                           on_start=lambda what: progress.update(bar, description=f"bench: {what}"),
                           on_result=lambda m: progress.advance(bar), **overrides)
        progress.update(bar, description="bench: done")
    return report


def _print_results(report) -> None:
    from edgeopt.render.terminal import results_view

    console = _console()
    for part in results_view(report, width=console.width):
        console.print(part)


@app.command()
def bench(paths: Annotated[list[Path], typer.Argument(help="Artifacts or compress output folders.")],
          data: Annotated[str, typer.Option(help=DATA_HELP)],
          out: Annotated[Path, typer.Option(help="report.json to write.")],
          target: Annotated[list[str], typer.Option(help="Target name or .yaml (repeatable).")] = ["x86-cpu"],
          threads: Annotated[int | None, typer.Option(help="Override the target's thread count.", min=1)] = None,
          warmup: Annotated[int | None, typer.Option(help="Warm-up runs.", min=0)] = None,
          min_runs: Annotated[int | None, typer.Option(help="Minimum timed runs.", min=1)] = None,
          min_seconds: Annotated[float | None, typer.Option(help="Minimum timed seconds.", min=0)] = None,
          max_seconds: Annotated[float | None, typer.Option(help="Stop timing after this.", min=0.01)] = None,
          max_runs: Annotated[int | None, typer.Option(help="Stop timing after this many runs.", min=1)] = None,
          timeout: Annotated[float | None, typer.Option(help="Per-launch worker timeout (s).", min=1)] = None,
          max_memory_mb: Annotated[int | None, typer.Option(
              help="Per-worker memory cap (MB); over it a result is 'failed: out of memory'.", min=64)] = None,
          launches: Annotated[int | None, typer.Option(help="Worker launches per artifact (target default 5).",
                                                       min=1)] = None,
          against: Annotated[list[Path] | None, typer.Option(
              help="A/B: old artifacts or compress folders (repeatable), paired by name with PATHS and measured "
                   "interleaved with them; `edgeopt gate` then judges each new one against its old twin.")] = None,
          allow_failures: Annotated[bool, typer.Option(help="Exit 0 even when an artifact failed.")] = False,
          num_classes: Annotated[int | None, typer.Option(help=NUM_CLASSES_HELP)] = None,
          scale: Annotated[str | None, typer.Option(help=SCALE_HELP)] = None,
          task: Annotated[TaskName | None, typer.Option(
              help="What the outputs are scored for (default: the compress manifest's, else inferred from the "
                   "outputs and the labels).")] = None,
          metric: Annotated[str | None, typer.Option(
              help="Your own headline metric, module:function (fn(y_true, y_pred) -> float).")] = None,
          ) -> None:
    """Benchmark artifacts on targets; write report.json. Exit 1 when an artifact failed (see --allow-failures)."""
    report = do_bench(paths, target, data, out, against=against, num_classes=num_classes, scale=scale,
                      threads=threads, warmup=warmup, min_runs=min_runs,
                      min_seconds=min_seconds, max_seconds=max_seconds, max_runs=max_runs, timeout_s=timeout,
                      max_memory_mb=max_memory_mb, launches=launches, task=task.value if task else None,
                      metric=metric)
    _print_results(report)
    failed = [m for m in report.results if m.status == "failed"]
    _console().print(f"report: {out}" + (f" ({len(failed)} failed)" if failed else ""))
    if failed and not allow_failures:
        _console().print(f"[red]{len(failed)} artifact(s) failed[/]: " + "; ".join(f"{m.artifact}: {m.error}"
                                                                                  for m in failed[:3])
                         + " (pass --allow-failures to exit 0 anyway)")
        raise typer.Exit(1)
