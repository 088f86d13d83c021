"""`edgeopt compress`: run a recipe on a model, show the artifacts it wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeopt.cli import _console, _fmt, _progress, app


def do_compress(model: Path, data: str, out: Path, recipe: Path | None):
    from edgeopt.compress import compress
    from edgeopt.data.loaders import load_dataset
    from edgeopt.models.load import check_model_path
    from edgeopt.recipe import load_recipe
    from edgeopt.stages.convert import plan

    check_model_path(model)
    rec = load_recipe(recipe)
    data = load_dataset(data)  # bad names fail here, before any progress is drawn
    total = len(rec.stages) - 1 + sum(len(plan(cfg)) for name, cfg in rec.stages if name == "convert")
    with _progress() as progress:
        task = progress.add_task("compress", total=total)

        def step(msg: str) -> None:
            progress.update(task, description=f"compress: {msg}")
            progress.advance(task)

        manifest = compress(model, data, out, recipe=rec, progress=step)
        progress.update(task, completed=total, description="compress: done")
    return manifest


def _print_manifest(manifest, out: Path) -> None:
    from rich.table import Table

    t = Table(title=f"artifacts in {out}")
    for col in ("artifact", "format", "precision", "size KB", "accuracy", "agreement", "max |Δ|"):
        t.add_column(col, justify="right" if col not in ("artifact", "format", "precision") else "left")
    for a in manifest.artifacts:
        par = a.info.get("parity", {})
        t.add_row(a.name, a.format, a.precision, f"{a.size_bytes / 1024:.1f}", _fmt(par.get("accuracy"), ".4f"),
                  _fmt(par.get("agreement"), ".4f"), _fmt(par.get("max_abs_diff"), ".2g"))
    _console().print(t)


@app.command()
def compress(model: Annotated[Path, typer.Argument(help="tf_keras .keras/.h5 file or SavedModel folder.")],
             data: Annotated[str, typer.Option(help="digits, shapes, a .npz or an image folder.")],
             out: Annotated[Path, typer.Option(help="Output folder (manifest.json + artifacts).")],
             recipe: Annotated[Path | None, typer.Option(help="Recipe YAML; default: convert to all formats.")] = None,
             ) -> None:
    """Compress MODEL with a recipe and write artifacts + manifest.json to --out."""
    manifest = do_compress(model, data, out, recipe)
    _print_manifest(manifest, out)
    _console().print(f"manifest: {out / 'manifest.json'}")
