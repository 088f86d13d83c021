"""`edgeopt tune`: the Keras Tuner search alone (chief, worker or stand-alone), with progress bars."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeopt.cli import DATA_HELP, _console, _progress, app


class _TuneBars:
    """Rich progress for `edgeopt tune`: one bar over trials, one over the running trial's epochs."""

    def __init__(self, progress, total: int | None):
        self.progress = progress
        self.trials = progress.add_task("trials", total=total)
        self.epochs = progress.add_task("epochs", total=None, visible=False)
        self.best: float | None = None

    def trial_started(self, trial_id: str, values: dict) -> None:
        shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
        self.progress.reset(self.epochs, total=None, visible=True, description=f"trial {trial_id}: {shown}"[:90])

    def epoch_done(self, trial_id: str, epoch: int, epochs: int, logs: dict) -> None:
        acc = logs.get("val_accuracy")
        self.progress.update(self.epochs, total=epochs, completed=epoch,
                             description=f"trial {trial_id} epoch {epoch}/{epochs}"
                                         + (f" val_accuracy {acc:.4f}" if acc is not None else ""))

    def trial_done(self, trial_id: str, score: float | None, epochs_run: int) -> None:
        if score is not None:
            self.best = score if self.best is None else max(self.best, score)
        self.progress.update(self.trials, advance=1, description=f"trials (best {self.best:.4f})"
                             if self.best is not None else "trials")


@app.command()
def tune(model: Annotated[Path | None, typer.Argument(help="Teacher model (needed with distill).")] = None,
         data: Annotated[str, typer.Option(help=DATA_HELP)] = ...,
         recipe: Annotated[Path | None, typer.Option(help="Recipe YAML; its first tune stage is the search.")] = None,
         out: Annotated[Path, typer.Option(help="Folder for <name>_tuned.keras and tuning.json.")] = Path("out/tune"),
         zoo: Annotated[str | None, typer.Option(help="Zoo builder to search (small_cnn, mobilenet_v2_like, mlp).")] = None,
         strategy: Annotated[str | None, typer.Option(help="random, hyperband or bayesian.")] = None,
         max_trials: Annotated[int | None, typer.Option(help="Most trials to run.", min=1)] = None,
         max_epochs: Annotated[int | None, typer.Option(help="Epochs per trial (hyperband: the most).", min=1)] = None,
         distill: Annotated[bool | None, typer.Option("--distill/--no-distill", help="Train trials as students of MODEL.")] = None,
         cache_dir: Annotated[Path | None, typer.Option(help="Search state folder (share it between chief and workers).")] = None,
         chief: Annotated[bool, typer.Option("--chief", help="Serve the oracle; workers run the trials.")] = False,
         worker: Annotated[str | None, typer.Option(help="Run trials for the chief as worker ID (0, 1, ...).")] = None,
         oracle: Annotated[str, typer.Option(help="The chief's HOST:PORT.")] = "127.0.0.1:8765",
         ) -> None:
    """Search a zoo model's options and training settings with Keras Tuner; write the best model, retrained."""
    from edgeopt.data.loaders import load_dataset
    from edgeopt.errors import UsageError
    from edgeopt.recipe import stage_config
    from edgeopt.stages import tune as tune_stage
    from edgeopt.train.tuner import distributed

    if chief and worker is not None:
        raise UsageError("--chief and --worker were both given", "start one chief and one or more workers")
    # without a recipe the search space is the builder's DEFAULT_SPACES entry
    cfg, train = stage_config(recipe, "tune", {"space": tune_stage.DEFAULT_SPACES.get(zoo or "small_cnn", {})},
                              model={"zoo": zoo} if zoo else None, strategy=strategy, max_trials=max_trials,
                              max_epochs=max_epochs, distill=distill, cache_dir=str(cache_dir) if cache_dir else None)
    dataset = load_dataset(data)
    teacher = None
    if model is not None:
        from edgeopt.models.load import check_model_path, load_model

        teacher = load_model(check_model_path(model))
    role = "chief" if chief else "worker" if worker is not None else None
    with distributed(role, worker, oracle), _progress() as progress:
        bars = _TuneBars(progress, None if chief else tune_stage.planned_trials(cfg))
        result = tune_stage.search(teacher, dataset, cfg, train, reporter=bars)
    if result.model is None:
        _console().print(f"worker {worker}: trials done (state in {result.summary['cache_dir']})")
        return
    path = tune_stage.write_outputs(result, out, model.stem if model else cfg.model.zoo)
    s = result.summary
    _console().print(f"{s['trials_run']} trials, {s['epochs_spent']} epochs; best {s['objective']} "
                     f"{s['best_score']:.4f} with {s['best_hyperparameters']}")
    _console().print(f"final model ({s['final']['trained_on']}): test accuracy {s['final']['test_accuracy']:.4f}, "
                     f"{s['final']['params']} params → {path}")
