"""edgeopt command line: thin typer commands over the public API. Exit codes: 0 ok, 1 verdict no, 2 bad input,
3 internal error, 130 interrupted.

The only room that prints and writes outputs. This file holds the app, its global options and ``main()`` (the
exit-code boundary); each command group has its own module, imported at the bottom so that it registers."""

from __future__ import annotations

import enum
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
import typer.main

from edgeopt import bundled

HELP = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(add_completion=True, no_args_is_help=True, pretty_exceptions_enable=False, context_settings=HELP,
                  help="Compress a trained Keras model for a device, benchmark it there, and gate the release.")
targets_app = typer.Typer(no_args_is_help=False, context_settings=HELP, help="List benchmark targets (and set them up).")
app.add_typer(targets_app, name="targets")

log = logging.getLogger("edgeopt.cli")  # not __name__: that is "__main__" under `python -m edgeopt.cli`
_state = {"debug": False}
DATA_HELP = ("digits, shapes, a .npz, an image folder (one sub-folder per class, alphabetical unless it holds "
             "classes.txt) or module:function (returns the arrays or tf.data.Datasets).")
NUM_CLASSES_HELP = "Class count (default: the model's output width; never the labels present)."
SCALE_HELP = "Image folders: pixels to 0-1 (default), -1-1 or none (0..255); bench: default from the manifest."
SAMPLE_DIR = bundled.folder("sample_models")  # the demo's teacher and budgets: the checkout's, or the wheel's copy


def _console(stderr: bool = False):
    from rich.console import Console

    console = Console(file=sys.stderr if stderr else sys.stdout)  # sys.stderr: edgeopt's, see logs.capture_stderr
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 200  # logs and CI output: don't squeeze tables into 80 columns
    return console


def _version(value: bool) -> None:
    if value:
        from edgeopt import __version__

        sys.stdout.write(f"edgeopt {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
          quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
          verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also show TensorFlow's and the converters' "
                                                "own logs (else kept in the log file).")] = False,
          version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False,
          unsafe_load: Annotated[bool, typer.Option(
              "--unsafe-load", help="Load models whose files hold Python code (Lambda layers, custom objects): "
                                    "only for model files you trust.")] = False,
          custom_objects: Annotated[list[str] | None, typer.Option(
              "--custom-objects", help="module.path whose import registers the model's custom Keras classes "
                                       "(repeatable).")] = None) -> None:
    """Global options work before or after the command: `edgeopt -q bench …` and `edgeopt bench … -q`."""
    from edgeopt.cli import logs
    from edgeopt.models.safety import allow_custom_objects, allow_unsafe_load

    if unsafe_load:
        allow_unsafe_load()  # via the environment, so that bench workers inherit the choice
    if custom_objects:
        allow_custom_objects(custom_objects)

    _state["debug"] = debug
    logs.quiet_environment(verbose or debug)
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    logs.setup_logging(level, verbose or debug, _console(stderr=True))


class TaskName(str, enum.Enum):
    """--task on compress and bench (core.metrics.TASK_NAMES)."""

    classification = "classification"
    multilabel = "multilabel"
    regression = "regression"
    raw = "raw"


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _progress():
    """A progress bar on a terminal; on anything else (CI logs, pipes) one plain log line per step."""
    console = _console(stderr=True)
    if not console.is_terminal:
        return PlainProgress()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=False)


class PlainProgress:
    """The part of rich's Progress the commands use (add_task, update, advance, reset), as log lines: each new
    description is one line; bars, visibility and refreshes have no plain-text meaning and are ignored."""

    def __init__(self) -> None:
        self.tasks: dict[int, dict] = {}

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, **_) -> int:
        self.tasks[len(self.tasks)] = {"description": description, "total": total, "completed": 0}
        return len(self.tasks) - 1

    def advance(self, task: int, advance: float = 1) -> None:
        self.tasks[task]["completed"] += advance

    def reset(self, task: int, total: float | None = None, description: str | None = None, **_) -> None:
        self.tasks[task].update(total=total, completed=0)
        self.update(task, description=description)

    def update(self, task: int, description: str | None = None, completed: float | None = None,
               advance: float | None = None, total: float | None = None, **_) -> None:
        t = self.tasks[task]
        if total is not None:
            t["total"] = total
        if completed is not None:
            t["completed"] = completed
        if advance:
            t["completed"] += advance
        if description is not None and description != t["description"]:
            t["description"] = description
            done = f" ({int(t['completed'])}/{int(t['total'])})" if t["total"] else ""
            log.info("%s%s", description, done)


GLOBAL_FLAGS = ("-q", "--quiet", "-v", "--verbose", "--debug", "--unsafe-load")


def hoist_global_flags(argv: list[str]) -> list[str]:
    """Global flags moved in front of the command, so that they work anywhere on the line (up to ``--``)."""
    flags, rest = [], []
    for i, arg in enumerate(argv):
        if arg == "--":
            rest += argv[i:]
            break
        (flags if arg in GLOBAL_FLAGS else rest).append(arg)
    return flags + rest


def friendly_metavars(command) -> None:
    """Help shows PATH, TEXT, INTEGER, NUMBER (click's words) where typer would print Python types (<list[Path]>)."""
    from types import SimpleNamespace

    helper = command.get_help_option(SimpleNamespace(help_option_names=HELP["help_option_names"]))
    for param in [*getattr(command, "params", []), *([helper] if helper is not None else [])]:
        if getattr(param, "is_flag", False):
            param.metavar = ""  # a flag takes no value: no <bool>
            continue
        if param.metavar is not None:
            continue
        desc = getattr(param, "type_descriptor", None)
        annotation = getattr(desc, "annotation", None)
        args = getattr(annotation, "__args__", None) or ()
        inner = args[0] if getattr(annotation, "__origin__", None) is list and args else annotation
        kind = ("PATH" if getattr(desc, "is_path", False) or inner is Path else "INTEGER" if inner is int
                else "NUMBER" if inner is float else "TEXT")
        if param.param_type_name == "argument":
            param.metavar = param.name.upper()
            param.display_type_rich = lambda ctx, _kind=kind + ("..." if param.nargs != 1 else ""): _kind
        else:
            param.metavar = kind
    for sub in getattr(command, "commands", {}).values():
        friendly_metavars(sub)


def _internal_error(e: BaseException) -> None:
    first = (str(e).strip().splitlines() or [""])[0][:200]
    sys.stderr.write(f"internal error: {type(e).__name__}{': ' + first if first else ''}; "
                     "rerun with --debug and report it\n")
    sys.exit(3)


def main() -> None:
    from edgeopt.cli import logs
    from edgeopt.errors import UsageError

    argv = hoist_global_flags(sys.argv[1:])
    verbose = any(a in ("-v", "--verbose", "--debug") for a in argv)
    logs.quiet_environment(verbose)  # before anything can import TensorFlow
    if not verbose:
        logs.capture_stderr()
    command = typer.main.get_command(app)
    friendly_metavars(command)
    try:
        rc = command.main(args=argv, prog_name="edgeopt", standalone_mode=False)  # returns typer.Exit's code
    except UsageError as e:
        if _state["debug"]:
            raise
        sys.stderr.write(f"error: {e}\n")
        sys.exit(2)
    except typer.Exit as e:
        if e.exit_code == 130:  # typer turns a Ctrl-C inside a command into Exit(130), silently
            sys.stderr.write("interrupted\n")
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt) as e:  # click turns Ctrl-C (and a stray EOFError) into Abort
        if isinstance(e.__context__, EOFError) and not _state["debug"]:
            _internal_error(e.__context__)
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:
        # Usage errors (missing option, bad value) come from click, which typer vendors in newer releases:
        # recognise them by shape rather than by importing a module that may not exist.
        if hasattr(e, "show") and hasattr(e, "exit_code"):
            e.show()
            sys.exit(e.exit_code if isinstance(e.exit_code, int) and e.exit_code else 2)
        if _state["debug"]:
            raise
        _internal_error(e)
    if rc == 130:  # click/typer turn a Ctrl-C inside a command into a returned 130, silently
        sys.stderr.write("interrupted\n")
    sys.exit(rc if isinstance(rc, int) else 0)


# the command modules register themselves on `app` when imported, in the order `--help` lists them
# isort: off
from edgeopt.cli import compress, bench, verdict, targets, tune, optimize  # noqa: E402, F401
# isort: on
