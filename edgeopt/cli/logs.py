"""Where output goes: edgeopt's own lines on the terminal, the libraries' chatter in a log file.

TensorFlow, absl, XLA and the TFLite converter write from C++ straight to file descriptor 2 (``I0000 …
cudart_stub.cc``, ``E0000 … failed call to cuInit``, ``fully_quantize: 0, …``), some of it before absl reads
``TF_CPP_MIN_LOG_LEVEL``; Python-side they warn (``tf.lite.Interpreter is deprecated``) and log through their
own loggers. So, unless ``-v``/``--debug``:

* the environment asks TensorFlow for errors only, before anything imports it (:func:`quiet_environment`);
* their Python loggers and ``warnings`` go to the log file only (:func:`setup_logging`);
* fd 2 itself points at the log file, and ``sys.stderr`` at a duplicate of the real stderr
  (:func:`capture_stderr`), so whatever C++ writes lands in the file while edgeopt's progress, log lines and
  errors still reach the terminal. Worker processes inherit fd 2: their stray output is kept there too.

The log file is ``$EDGEOPT_LOG``, else ``<cache>/logs/edgeopt.log``, appended to (a header line per run), and
moved to ``edgeopt.log.1`` once it passes 10 MB.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import time
from pathlib import Path

# loggers of the libraries under edgeopt: their records go to the log file, on the terminal only with -v
LIBRARY_LOGGERS = ("tensorflow", "absl", "tf2onnx", "h5py", "keras", "tf_keras", "keras_tuner", "onnx",
                   "onnxruntime", "matplotlib", "PIL", "py.warnings", "optuna")
ROTATE_BYTES = 10 * 1024 * 1024


class PlainFormatter(logging.Formatter):
    """Off a terminal (CI logs, pipes): ``edgeopt: message``, ``edgeopt: warning: message``; a library's
    record (shown with -v) under its own name, never passed off as edgeopt's."""

    def format(self, record: logging.LogRecord) -> str:
        who = "edgeopt" if record.name.split(".")[0] in ("edgeopt", "__main__") else record.name
        level = f"{record.levelname.lower()}: " if record.levelno >= logging.WARNING else ""
        text = f"{who}: {level}{record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text



def log_path() -> Path:
    configured = os.environ.get("EDGEOPT_LOG")
    if configured:
        return Path(configured).expanduser()
    from edgeopt import cache

    return cache.root() / "logs" / "edgeopt.log"


def quiet_environment(verbose: bool) -> None:
    """Ask TensorFlow and friends for errors only (or everything, verbose); the user's own settings win.
    Must run before TensorFlow is imported: it reads these once."""
    level = "0" if verbose else "3"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", level)
    os.environ.setdefault("GRPC_VERBOSITY", "INFO" if verbose else "ERROR")
    os.environ.setdefault("GLOG_minloglevel", level)
    os.environ.setdefault("AUTOGRAPH_VERBOSITY", "1" if verbose else "0")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def open_log() -> tuple[Path, int] | None:
    """The log file opened for appending (rotated when large), or None when it cannot be written."""
    path = log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file() and path.stat().st_size > ROTATE_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError:
        return None
    header = f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}: edgeopt {' '.join(sys.argv[1:])}\n"
    os.write(fd, header.encode("utf-8", "backslashreplace"))
    return path, fd


def capture_stderr() -> Path | None:
    """Point fd 2 at the log file and ``sys.stderr`` at the real stderr; the log's path (None: left as is).

    For the process's lifetime: C++ libraries also write at exit. Call once, from the CLI's entry point."""
    opened = open_log()
    if opened is None:
        return None
    path, fd = opened
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    real = os.dup(2)
    os.dup2(fd, 2)
    os.close(fd)
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    sys.stderr = io.TextIOWrapper(io.FileIO(real, "w", closefd=True), encoding=encoding, errors="backslashreplace",
                                  line_buffering=True, write_through=True)
    return path


def setup_logging(level: int, verbose: bool, console=None) -> None:
    """edgeopt's records at ``level`` on stderr (rich on a terminal, plain lines otherwise); the libraries'
    records and Python warnings in the log file, and on stderr too when verbose."""
    logging.captureWarnings(True)
    if console is not None and console.is_terminal:
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=console, show_path=False, show_time=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(PlainFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_edgeopt", False)]:
        root.removeHandler(old)
    handler._edgeopt = True  # type: ignore[attr-defined]
    handler.setLevel(level)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    file_handler = _file_handler()
    ours = logging.getLogger("edgeopt")
    ours.setLevel(logging.DEBUG if file_handler is not None else level)  # the file keeps edgeopt's debug lines
    for old in [h for h in ours.handlers if getattr(h, "_edgeopt", False)]:
        ours.removeHandler(old)
    if file_handler is not None:
        ours.addHandler(file_handler)
    for name in LIBRARY_LOGGERS:
        lib = logging.getLogger(name)
        lib.setLevel(logging.DEBUG if verbose else logging.INFO)
        lib.propagate = verbose
        for old in [h for h in lib.handlers if getattr(h, "_edgeopt", False)]:
            lib.removeHandler(old)
        if file_handler is not None and not verbose:
            lib.addHandler(file_handler)


def _file_handler() -> logging.Handler | None:
    try:
        path = log_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8", delay=True)
    except OSError:
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler._edgeopt = True  # type: ignore[attr-defined]
    return handler
