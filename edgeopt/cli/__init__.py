"""edgeopt command line: thin typer commands over the public API. Exit codes: 0 ok, 1 verdict no, 2 bad input,
3 internal error, 130 interrupted.

The only room that prints and writes outputs. This file holds the app, its global options and ``main()`` (the
exit-code boundary); each command group has its own module, imported at the bottom so that it registers."""

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
SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_models"


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


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=_console(stderr=True), transient=False)


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
        if _state["debug"]:
            raise
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        sys.stderr.write(f"internal error: {type(e).__name__}{': ' + first if first else ''} — rerun with --debug "
                         "and report it\n")
        sys.exit(3)
    sys.exit(rc if isinstance(rc, int) else 0)


# the command modules register themselves on `app` when imported, in the order `--help` lists them
# isort: off
from edgeopt.cli import compress, bench, verdict, targets, tune  # noqa: E402, F401
# isort: on
