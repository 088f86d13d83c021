"""`edgeopt compress`: run a recipe on a model, show the artifacts it wrote with every model's top-1 and its drop
from the source model; exit 1 when the accuracy guard stopped the pipeline or an int8 artifact missed its
tolerance (``--allow-drop`` keeps 0 for the latter) or an artifact asked for could not be built."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeopt.cli import DATA_HELP, NUM_CLASSES_HELP, SCALE_HELP, TaskName, _console, _fmt, _progress, app


def do_compress(model: Path, data: str, out: Path, recipe: Path | None, force: bool = False,
                signature: str | None = None, num_classes: int | None = None, scale: str | None = None,
                cache: bool = True, cache_max_mb: float | None = None, task: str | None = None,
                metric: str | None = None):
    from edgeopt.compress import compress
    from edgeopt.data.loaders import load_dataset
    from edgeopt.models.load import check_model_path
    from edgeopt.out_folder import check_out
    from edgeopt.recipe import load_recipe
    from edgeopt.stages.convert import plan

    check_out(out, check_model_path(model), force)  # before any work: never over a user's files
    rec = load_recipe(recipe)
    if metric:
        from edgeopt.core.metrics import load_metric

        load_metric(metric)  # an import error is exit 2 before any work
    data = load_dataset(data, num_classes=num_classes, scale=scale)  # bad names fail here, before any progress is drawn
    total = len(rec.stages) - 1 + sum(len(plan(cfg)) for name, cfg in rec.stages if name == "convert")
    with _progress() as progress:
        bar = progress.add_task("compress", total=total)

        def step(msg: str) -> None:
            progress.update(bar, description=f"compress: {msg}")
            progress.advance(bar)

        manifest = compress(model, data, out, recipe=rec, progress=step, force=force, signature=signature,
                            cache=cache, cache_max_mb=cache_max_mb, task=task, metric=metric)
        progress.update(bar, completed=total, description="compress: done")
    return manifest


def _figures(a) -> tuple[dict, dict]:
    """(validation figures, test figures) of an artifact: {accuracy, drop} each (the task's metric), empty when
    not measured."""
    val = a.info.get("validation") or {}
    par = a.info.get("parity") or {}
    if "score" in par:
        return val, {"accuracy": par.get("score"), "drop": par.get("drop")}
    return val, {"accuracy": par.get("accuracy"), "drop": par.get("accuracy_drop")}


def _note(a, guard: dict) -> str:
    par = a.info.get("parity") or {}
    if a.role == "source":
        return "source"
    if a.status == "failed":
        return f"FAILED: {a.error}"
    if a.info.get("requires") == "flex":
        return "requires flex (Select TF ops)" + ("" if "accuracy" in par else f"; not run here: {par.get('error')}")
    if par.get("within_tolerance") is False:
        return "TOLERANCE NOT MET"
    if a.info.get("no_size_win"):
        return f"no size win ({a.info['size_vs_fp32']:.2f}× fp32)"
    if guard.get("verdict") == "stopped":
        return f"kept (stopped at {guard['stopped_at']})"
    return ""


def _macs(a, out: Path) -> float | None:
    """Millions of MACs of one inference of a TFLite / ONNX artifact (the graph reader's count)."""
    from edgeopt.core import graph

    if a.status == "failed" or a.format not in ("tflite", "onnx"):
        return None
    try:
        g = graph.read_tflite((out / a.path).read_bytes()) if a.format == "tflite" else \
            graph.read_onnx(out / a.path, shapes=True)
        return g.macs() / 1e6
    except Exception:  # noqa: BLE001 — a count we cannot read is shown as missing
        return None


def _drop(v) -> str:
    return _fmt(None if v is None else round(v, 4) + 0.0, "+.4f")  # + 0.0: no "-0.0000"


def _print_manifest(manifest, out: Path) -> None:
    from rich.table import Table

    from edgeopt.data.classes import one_line

    guard = manifest.extra.get("guard") or {}
    if manifest.source.get("dataset"):
        _console().print(one_line(manifest.source["dataset"]), highlight=False, markup=False, soft_wrap=True)
    found = manifest.source.get("model") or {}
    if found:
        def side(ts):
            return ", ".join(f"{t['name']} {t['dtype']} {tuple(t['shape'] or ())}" for t in ts) or "?"

        sig = (f" (signature {found['signature']}; has {', '.join(found['signatures'])})"
               if found.get("signature") else "")
        _console().print(f"model: {found.get('kind')}{sig}: {side(found.get('inputs', []))} → "
                         f"{side(found.get('outputs', []))}")
    src = manifest.source
    name = {"top1": "top-1", None: "top-1"}.get(src.get("metric"), src.get("metric"))
    if src.get("task"):
        why = f" (inferred: {src['inferred']})" if src.get("inferred") else ""
        also = f"; also {', '.join(src['also'])}" if src.get("also") else ""
        better = ", lower is better" if src.get("lower_is_better") else ""
        _console().print(f"task: {src['task']}{why} — metric {name}{better}{also}", highlight=False)
    fid = "cosine" if any("cosine" in (a.info.get("parity") or {}) for a in manifest.artifacts) else "agreement"
    t = Table(title=f"artifacts in {out}")
    cols = ("artifact", "format", "precision", "size KB", f"val {name}", "val Δ src", f"test {name}", "test Δ src",
            fid, "MMACs", "note")
    for col in cols:
        t.add_column(col, justify="left" if col in ("artifact", "format", "precision", "note") else "right")
    src_val = guard.get("source_accuracy")
    for a in manifest.artifacts:
        val, test = _figures(a)
        if a.role == "source":
            val = {"accuracy": src_val, "drop": 0.0 if src_val is not None else None}
            ref = (guard.get("reference") or {}).get("test")
            test = {"accuracy": ref, "drop": 0.0 if ref is not None else None}
        size = "-" if a.status == "failed" else f"{a.size_bytes / 1024:.1f}"
        t.add_row(a.name, a.format, a.precision, size, _fmt(val.get("accuracy"), ".4f"),
                  _drop(val.get("drop")), _fmt(test["accuracy"], ".4f"), _drop(test["drop"]),
                  _fmt((a.info.get("parity") or {}).get(fid), ".4f"), _fmt(_macs(a, out), ".2f"),
                  _note(a, guard))
    _console().print(t)
    pruning = manifest.extra.get("pruning") or {}
    if (pruning.get("macs") or {}).get("after"):
        m, ch = pruning["macs"], pruning.get("channels") or {}
        ops, gone = pruning.get("ops") or {}, (pruning.get("blocks") or {}).get("removed")
        _console().print((f"channel pruning: {ch.get('removed')} of {ch.get('prunable')} prunable channels removed; "
                          if ch else "block pruning: ")
                         + (f"{len(gone)} residual block(s) removed ({', '.join(gone)}); " if gone else "")
                         + f"MACs {m['before'] / 1e6:.2f}M → {m['after'] / 1e6:.2f}M ({m['ratio']}× fewer)"
                         + (f"; TFLite ops {ops['before']} → {ops['after']}" if ops.get("after") else ""))
    if guard.get("verdict") == "stopped":
        rejected = guard["stages"][-1]
        _console().print(f"stopped at {guard['stopped_at']}: its model ({rejected['accuracy']:.4f} on "
                         f"{rejected['split']}, {rejected['drop']:+.4f} vs source) was not kept")


def verdict_lines(manifest, allow_drop: bool = False) -> list[str]:
    """Why compress's verdict is no (exit 1), one line each; empty when it is yes."""
    guard = manifest.extra.get("guard") or {}
    if guard.get("verdict") == "stopped":
        return [f"{guard['message']} — {guard['fix']}"]
    # an artifact asked for but not built: the run said so in the manifest, and the verdict is no
    failed = [f"{a.name} was not built: {a.error}" for a in manifest.artifacts if a.status == "failed"]
    if allow_drop:
        return failed
    return failed + [f"{a.name}: {a.info['parity']['verdict']} — raise convert.max_accuracy_drop, fine-tune (quantize: "
            "{qat: true}), or pass --allow-drop to keep exit 0" for a in manifest.artifacts
            if (a.info.get("parity") or {}).get("within_tolerance") is False]


@app.command()
def compress(model: Annotated[Path, typer.Argument(help="tf_keras .keras/.h5 file or SavedModel folder.")],
             data: Annotated[str, typer.Option(help=DATA_HELP)],
             out: Annotated[Path, typer.Option(help="Output folder (manifest.json + artifacts).")],
             recipe: Annotated[Path | None, typer.Option(help="Recipe YAML; default: convert to all formats.")] = None,
             allow_drop: Annotated[bool, typer.Option("--allow-drop", help="Exit 0 even when an int8 artifact "
                                                      "misses convert's max_accuracy_drop.")] = False,
             force: Annotated[bool, typer.Option(
                 "--force", help="--out is an earlier edgeopt output that also holds other files: replace only "
                                 "the files its manifest lists (the others stay).")] = False,
             signature: Annotated[str | None, typer.Option(
                 help="SavedModel signature to use (default: serving_default, or the only one).")] = None,
             num_classes: Annotated[int | None, typer.Option(help=NUM_CLASSES_HELP)] = None,
             scale: Annotated[str | None, typer.Option(help=SCALE_HELP)] = None,
             no_cache: Annotated[bool, typer.Option(
                 "--no-cache", help="Neither read nor write the stage cache (every model stage runs).")] = False,
             cache_max_mb: Annotated[float | None, typer.Option(
                 min=0, help="Stage cache size limit in MB (default $EDGEOPT_CACHE_MAX_MB or 2048); least "
                             "recently used entries go first.")] = None,
             task: Annotated[TaskName | None, typer.Option(
                 help="What the model does (default: the recipe's task:, else inferred from its output and the "
                      "labels).")] = None,
             metric: Annotated[str | None, typer.Option(
                 help="Your own headline metric, module:function (fn(y_true, y_pred) -> float; higher is better "
                      "unless fn.lower_is_better = True).")] = None,
             ) -> None:
    """Compress MODEL with a recipe and write artifacts + manifest.json to --out."""
    manifest = do_compress(model, data, out, recipe, force, signature=signature, num_classes=num_classes,
                           scale=scale, cache=not no_cache, cache_max_mb=cache_max_mb,
                           task=task.value if task else None, metric=metric)
    _print_manifest(manifest, out)
    _console().print(f"manifest: {out / 'manifest.json'}")
    problems = verdict_lines(manifest, allow_drop)
    for line in problems:
        _console(stderr=True).print(f"verdict: {line}", highlight=False, markup=False, soft_wrap=True)
    if problems:
        raise typer.Exit(1)
