"""edgeopt command line: thin typer commands over the public API. Exit codes: 0 ok, 1 verdict no, 2 bad input."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Compress a trained Keras model for a device, benchmark it there, and gate the release.")
targets_app = typer.Typer(no_args_is_help=False, help="List benchmark targets (and set them up).")
app.add_typer(targets_app, name="targets")

log = logging.getLogger("edgeopt.cli")  # not __name__: that is "__main__" under `python -m edgeopt.cli`
_state = {"debug": False}
SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_models"


def _console(stderr: bool = False):
    from rich.console import Console

    console = Console(stderr=stderr)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 160  # logs and CI output: don't squeeze tables into 80 columns
    return console


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
          quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False) -> None:
    _state["debug"] = debug
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if not debug else "0")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    from rich.logging import RichHandler

    logging.basicConfig(level=logging.WARNING, handlers=[RichHandler(console=_console(stderr=True), show_path=False,
                                                                      show_time=False)], format="%(message)s")
    logging.getLogger("edgeopt").setLevel(level)
    for noisy in ("tensorflow", "absl", "tf2onnx", "h5py"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=_console(stderr=True), transient=False)


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


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


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


def do_bench(paths: list[Path], targets: list[str], data: str, out: Path, **overrides):
    from edgeopt.bench.orchestrate import benchmark
    from edgeopt.bench.targets import load_target
    from edgeopt.core.artifact import collect
    from edgeopt.data.loaders import load_dataset

    target_objs = [load_target(t) for t in targets]
    dataset = load_dataset(data)
    n = len(collect(list(paths))) * len(target_objs)
    with _progress() as progress:
        task = progress.add_task("bench", total=n)
        report = benchmark(paths, target_objs, dataset, out,
                           on_start=lambda what: progress.update(task, description=f"bench: {what}"),
                           on_result=lambda m: progress.advance(task), **overrides)
        progress.update(task, description="bench: done")
    return report


def _print_results(report) -> None:
    from rich.table import Table

    t = Table(title="benchmark")
    for col in ("artifact", "target", "runtime", "status", "size KB", "gzip KB", "accuracy", "agree", "p50 ms",
                "p90 ms", "n", "RSS MB"):
        t.add_column(col)
    for m in report.results:
        lat = m.latency_ms
        t.add_row(m.artifact, m.target, m.runtime, m.status if m.status == "ok" else f"[red]{m.status}[/]: {m.error}",
                  _fmt(m.size_bytes and m.size_bytes / 1024, ".1f"), _fmt(m.gzip_bytes and m.gzip_bytes / 1024, ".1f"),
                  _fmt(m.accuracy, ".4f"), _fmt(m.agreement, ".4f"), _fmt(lat and lat.p50, ".4f"),
                  _fmt(lat and lat.p90, ".4f"), _fmt(lat and lat.n, "d"), _fmt(m.peak_rss_mb, ".0f"))
    _console().print(t)


@app.command()
def bench(paths: Annotated[list[Path], typer.Argument(help="Artifacts or compress output folders.")],
          data: Annotated[str, typer.Option(help="digits, shapes, a .npz or an image folder.")],
          out: Annotated[Path, typer.Option(help="report.json to write.")],
          target: Annotated[list[str], typer.Option(help="Target name or .yaml (repeatable).")] = ["x86-cpu"],
          threads: Annotated[int | None, typer.Option(help="Override the target's thread count.", min=1)] = None,
          warmup: Annotated[int | None, typer.Option(help="Warm-up runs.", min=0)] = None,
          min_runs: Annotated[int | None, typer.Option(help="Minimum timed runs.", min=1)] = None,
          min_seconds: Annotated[float | None, typer.Option(help="Minimum timed seconds.", min=0)] = None,
          max_seconds: Annotated[float | None, typer.Option(help="Stop timing after this.", min=0.01)] = None,
          max_runs: Annotated[int | None, typer.Option(help="Stop timing after this many runs.", min=1)] = None,
          timeout: Annotated[float | None, typer.Option(help="Per-artifact worker timeout (s).", min=1)] = None,
          ) -> None:
    """Benchmark artifacts on targets; write report.json."""
    report = do_bench(paths, target, data, out, threads=threads, warmup=warmup, min_runs=min_runs,
                      min_seconds=min_seconds, max_seconds=max_seconds, max_runs=max_runs, timeout_s=timeout)
    _print_results(report)
    failed = [m for m in report.results if m.status == "failed"]
    _console().print(f"report: {out}" + (f" ({len(failed)} failed)" if failed else ""))


def do_gate(report: Path, budgets: Path | None = None, baseline: Path | None = None, junit: Path | None = None,
            markdown: Path | None = None, json_out: Path | None = None, console=None) -> int:
    """Load the inputs, judge them, print the verdict, write the files asked for; the exit code (0 or 1)."""
    from edgeopt import atomic
    from edgeopt.errors import UsageError
    from edgeopt.render.junit import to_junit
    from edgeopt.render.markdown import to_markdown
    from edgeopt.render.terminal import verdict_view
    from edgeopt.verdict.gate import check
    from edgeopt.verdict.inputs import load_inputs

    if budgets is None and baseline is None:
        raise UsageError("nothing to gate against", "pass --budgets budgets.yaml and/or --baseline old_report.json")
    rep, limits, old = load_inputs(report, budgets, baseline)
    verdict = check(rep, limits, old)
    console = console or _console()
    for part in verdict_view(verdict):
        console.print(part)
    md = to_markdown(rep, verdict)
    if junit is not None:
        atomic.write_text(junit, to_junit(verdict))
    if markdown is not None:
        atomic.write_text(markdown, md)
    if json_out is not None:
        atomic.write_json(json_out, verdict.to_dict())
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:  # appended to: earlier steps of the job wrote theirs
        before = Path(summary).read_text(encoding="utf-8") if Path(summary).is_file() else ""
        atomic.write_text(summary, before + ("\n" if before and not before.endswith("\n") else "") + md)
    log.info("gate: %s", verdict.summary())
    return verdict.exit_code


@app.command()
def gate(report: Annotated[Path, typer.Argument(help="report.json from `edgeopt bench`.")],
         budgets: Annotated[Path | None, typer.Option(help="budgets.yaml.")] = None,
         baseline: Annotated[Path | None, typer.Option(help="Baseline report.json to compare against.")] = None,
         junit: Annotated[Path | None, typer.Option(help="Write JUnit XML here.")] = None,
         markdown: Annotated[Path | None, typer.Option(help="Write a PR-comment Markdown here.")] = None,
         json_out: Annotated[Path | None, typer.Option("--json", help="Write the verdict as JSON here.")] = None,
         ) -> None:
    """Check a report against budgets and/or a baseline. Exit 0 pass, 1 violated, 2 bad input."""
    raise typer.Exit(do_gate(report, budgets, baseline, junit=junit, markdown=markdown, json_out=json_out,
                             console=_console()))


def do_report(report: Path, html: Path | None = None, markdown: Path | None = None,
              baseline: Path | None = None) -> list[Path]:
    """Write the HTML and/or Markdown report; with no output named, HTML next to the report."""
    from edgeopt import atomic
    from edgeopt.errors import UsageError
    from edgeopt.render.html import to_html
    from edgeopt.render.markdown import to_markdown
    from edgeopt.verdict.gate import check
    from edgeopt.verdict.inputs import load_inputs

    rep, _, old = load_inputs(report, baseline=baseline)
    if not rep.results:
        raise UsageError(f"report {report} has no results", "run `edgeopt bench` on at least one artifact")
    verdict = check(rep, baseline=old) if old is not None else None
    if html is None and markdown is None:
        html = Path(report).with_suffix(".html")
    written: list[Path] = []
    if html is not None:
        written.append(atomic.write_text(html, to_html(rep, verdict, old)))
    if markdown is not None:
        written.append(atomic.write_text(markdown, to_markdown(rep, verdict)))
    return written


@app.command()
def report(report: Annotated[Path, typer.Argument(help="report.json from `edgeopt bench`.")],
           html: Annotated[Path | None, typer.Option(help="Write a self-contained HTML report here.")] = None,
           markdown: Annotated[Path | None, typer.Option(help="Write a Markdown table here.")] = None,
           baseline: Annotated[Path | None, typer.Option(help="Baseline report.json to compare against.")] = None,
           ) -> None:
    """Render a report as HTML and/or Markdown."""
    from edgeopt.errors import UsageError

    if html is None and markdown is None:
        raise UsageError("nothing to write", "pass --html FILE and/or --markdown FILE")
    for p in do_report(report, html=html, markdown=markdown, baseline=baseline):
        _console().print(f"wrote {p}")


@app.command()
def demo(out: Annotated[Path, typer.Option(help="Output folder.")] = Path("out/demo"),
         min_seconds: Annotated[float | None, typer.Option(help="Minimum timed seconds per artifact.")] = None,
         ) -> None:
    """Compress the bundled digits teacher, benchmark it on x86-cpu, render and gate the report."""
    model = SAMPLE_DIR / "digits_cnn.keras"
    budgets = SAMPLE_DIR / "budgets.yaml"
    console = _console()
    console.rule("1/4 compress")
    manifest = do_compress(model, "digits", out / "artifacts", None)
    _print_manifest(manifest, out / "artifacts")
    console.rule("2/4 bench on x86-cpu")
    report_path = out / "report.json"
    rep = do_bench([out / "artifacts"], ["x86-cpu"], "digits", report_path, min_seconds=min_seconds)
    _print_results(rep)
    console.rule("3/4 report")
    written = do_report(report_path, html=out / "report.html", markdown=out / "report.md")
    console.rule("4/4 gate")
    code = do_gate(report_path, budgets, junit=out / "gate.junit.xml", markdown=out / "gate.md",
                   json_out=out / "verdict.json", console=console)
    console.print(f"\nmanifest: {out / 'artifacts' / 'manifest.json'}\nreport:   {report_path}")
    console.print(f"gate:     {'PASS' if code == 0 else 'FAIL'} against {budgets}")
    console.print(f"HTML report: {written[0]}")
    raise typer.Exit(code)


@targets_app.callback(invoke_without_command=True)
def targets(ctx: typer.Context,
            check: Annotated[bool, typer.Option("--check/--no-check", help="Probe reachability (SSH, GPU).")] = True,
            ) -> None:
    """List the targets edgeopt knows and whether each is reachable now."""
    if ctx.invoked_subcommand is not None:
        return
    from concurrent.futures import ThreadPoolExecutor

    from rich.table import Table

    from edgeopt.bench.devices.reachability import reachability
    from edgeopt.bench.targets import available, load_target

    found = {name: load_target(path) for name, path in available().items()}
    with ThreadPoolExecutor(max_workers=max(1, len(found))) as pool:  # SSH probes wait on the network: together
        reach = {n: pool.submit(reachability, t) for n, t in found.items()} if check else {}
    t = Table(title="targets")
    for col in ("name", "arch", "device", "threads", "connection", "reachable", "why", "file"):
        t.add_column(col)
    for name, tg in found.items():
        ok, why = reach[name].result() if check else ("?", "not checked")
        conn = tg.connection.kind + (f" {tg.connection.user + '@' if tg.connection.user else ''}{tg.connection.host}"
                                     if tg.connection.kind == "ssh" else "")
        t.add_row(name, tg.arch, tg.device, str(tg.threads), conn, f"[green]{ok}[/]" if ok == "yes" else ok,
                  why.split(" — ")[0], _short_path(tg.source))
    _console().print(t)


def _short_path(p: Path | None) -> str:
    if p is None:
        return "-"
    try:
        return str(p.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(p)


@targets_app.command("setup")
def targets_setup(name: Annotated[str, typer.Argument(help="Target to prepare (rpi4-emulated builds its sysroot).")],
                  force: Annotated[bool, typer.Option(help="Rebuild even if it is already there.")] = False) -> None:
    """Prepare a target once: for an emulated one, build the aarch64 sysroot in the cache folder."""
    from edgeopt.bench.devices import sysroot
    from edgeopt.bench.devices.reachability import reachability
    from edgeopt.bench.targets import load_target
    from edgeopt.errors import UsageError

    tg = load_target(name)
    if tg.connection.kind != "qemu":
        ok, why = reachability(tg)
        if ok != "yes":
            raise UsageError(f"target {tg.name} is not reachable: {why}",
                             "edit its connection (or the EDGEOPT_* variables in its file) and run `edgeopt targets`")
        _console().print(f"{tg.name}: nothing to set up; reachable ({why})")
        return
    console = _console(stderr=True)
    info = sysroot.setup(sysroot.sysroot_dir(tg), force=force, progress=lambda msg: console.print(msg))
    dev = info.get("device", {})
    _console().print(f"{tg.name}: sysroot {info['root']} — {info.get('qemu')}, Python {dev.get('python')}, "
                     f"numpy {dev.get('numpy')}, ai-edge-litert {dev.get('ai_edge_litert')}, "
                     f"onnxruntime {dev.get('onnxruntime')}")


# --- tune: the search alone (training engine) ------------------------------------------------------------------


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
         data: Annotated[str, typer.Option(help="digits, shapes, a .npz or an image folder.")] = ...,
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


def main() -> None:
    from edgeopt.errors import UsageError

    try:
        rc = app(standalone_mode=False)  # click returns typer.Exit's code instead of raising in this mode
    except UsageError as e:
        if _state["debug"]:
            raise
        sys.stderr.write(f"error: {e}\n")
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        sys.stderr.write("aborted\n")
        sys.exit(130)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; partial results were kept\n")
        sys.exit(130)
    except Exception as e:
        # Usage errors (missing option, bad value) come from click, which typer vendors in newer releases:
        # recognise them by shape rather than by importing a module that may not exist.
        if hasattr(e, "show") and hasattr(e, "exit_code"):
            e.show()
            sys.exit(e.exit_code if isinstance(e.exit_code, int) and e.exit_code else 2)
        raise
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
