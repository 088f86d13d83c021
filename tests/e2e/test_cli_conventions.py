"""The CLI behaves as command-line tools do: quiet by default, --version, -h, global flags anywhere, help in
words not Python types, colour and bars only on a terminal (and never under NO_COLOR)."""

from __future__ import annotations

import os
import pty
import re
import shlex
import subprocess
import sys

import pytest

EDGEOPT = [sys.executable, "-m", "edgeopt.cli"]
# no TF_CPP_MIN_LOG_LEVEL here: the CLI must be quiet on its own (the C++ lines ignore it anyway)
BASE_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("TF_CPP", "NO_COLOR", "FORCE_COLOR"))}
ANSI = re.compile(r"\x1b\[([0-9;]*)m")
PY_TYPES = re.compile(r"<(list\[|bool>|str>|int|float|path>|Path>)")


def has_colour(text: str) -> bool:
    """Whether ``text`` holds an SGR colour (foreground/background), not just bold or italic: what NO_COLOR bans."""
    codes = {int(c) for m in ANSI.finditer(text) for c in m.group(1).split(";") if c.isdigit()}
    return any(30 <= c <= 49 or 90 <= c <= 107 for c in codes)


def run(*args, env=None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*EDGEOPT, *map(str, args)], capture_output=True, text=True, env=env or BASE_ENV,
                          cwd=cwd, timeout=600)


def test_compress_writes_only_its_own_lines_to_stderr(tmp_path, tiny_model_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("stages:\n  - convert: {tflite: [fp32, int8], onnx: [fp32]}\n")
    log = tmp_path / "edgeopt.log"
    env = {**BASE_ENV, "EDGEOPT_LOG": str(log)}

    quiet = run("compress", tiny_model_path, "--data", "digits", "--out", tmp_path / "q", "--recipe", recipe, "-q",
                env=env)
    default = run("compress", tiny_model_path, "--data", "digits", "--out", tmp_path / "d", "--recipe", recipe,
                  env=env)
    verbose = run("compress", tiny_model_path, "--data", "digits", "--out", tmp_path / "v", "--recipe", recipe,
                  "-v", env=env)

    assert quiet.returncode == default.returncode == verbose.returncode == 0, default.stderr
    assert quiet.stderr == ""  # -q after the command: a global flag works there too
    lines = default.stderr.splitlines()
    assert [ln for ln in lines if not ln.startswith(("edgeopt: ", "verdict: "))] == [], default.stderr
    assert "edgeopt: compress: done (3/3)" in lines  # non-TTY: one plain line per step, no bar
    assert not ANSI.search(default.stderr + default.stdout) and "━" not in default.stderr
    assert "tiny_int8.tflite" in default.stdout
    # what TensorFlow and the converter said is kept in the log file, and shown with -v
    foreign = [ln for ln in verbose.stderr.splitlines() if ln.strip() and not ln.startswith("edgeopt: ")]
    assert foreign, verbose.stderr
    kept = log.read_text()
    assert kept.count("edgeopt compress") == 2  # a header per captured run (-v captures nothing)
    assert any(ln.strip() in kept for ln in foreign if len(ln.strip()) > 30 and "0000 00:00" not in ln)


def test_version_and_short_help():
    from edgeopt import __version__

    version = run("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"edgeopt {__version__}"
    for cmd in ([], ["compress"], ["bench"], ["gate"], ["report"], ["demo"], ["targets"], ["tune"]):
        proc = run(*cmd, "-h")
        assert proc.returncode == 0, (cmd, proc.stderr)
        assert "Usage: edgeopt" in proc.stdout
        assert not PY_TYPES.search(proc.stdout), (cmd, PY_TYPES.search(proc.stdout), proc.stdout)
    assert "PATHS" in run("bench", "-h").stdout and "--install-completion" in run("-h").stdout


def test_shell_completion_script():
    # typer finds the shell among the process's ancestors (shellingham), as when a user types the command; a
    # test runner started without a shell above it (nohup, a container's entry point) has none, so bash runs it
    cmd = " ".join(shlex.quote(a) for a in [*EDGEOPT, "--show-completion"])
    proc = subprocess.run(["bash", "-c", f"{cmd}; exit $?"], capture_output=True, text=True,
                          env={**BASE_ENV, "SHELL": "/bin/bash"}, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "complete" in proc.stdout and "edgeopt" in proc.stdout.lower()


def test_debug_after_the_command_shows_the_traceback(tmp_path):
    budgets = tmp_path / "b.yaml"
    budgets.write_text("targets:\n  x86-cpu: {max_size_kb: 1}\n")
    plain = run("gate", tmp_path / "missing.json", "--budgets", budgets)
    debug = run("gate", tmp_path / "missing.json", "--budgets", budgets, "--debug")

    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert [ln for ln in plain.stderr.splitlines() if ln.startswith("error:")], plain.stderr
    assert "Traceback" in debug.stderr


def _run_on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """stdout+stderr of the CLI run on a pseudo-terminal, as a person would see it."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec the CLI on the pty
        os.execvpe(EDGEOPT[0], [*EDGEOPT, *args], env)
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.waitpid(pid, 0)
    os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.parametrize("no_color", [False, True])
def test_colour_only_on_a_terminal_without_no_color(tmp_path, no_color):
    from tests.unit.render.sample import sample_report

    report = sample_report().save(tmp_path / "report.json")
    budgets = tmp_path / "b.yaml"
    budgets.write_text("targets:\n  x86-cpu: {max_size_kb: 1}\n")  # FAIL, drawn in red on a terminal
    env = {**BASE_ENV, "TERM": "xterm-256color", "COLUMNS": "120"}
    if no_color:
        env["NO_COLOR"] = "1"

    shown = _run_on_a_terminal(["gate", str(report), "--budgets", str(budgets)], env)

    assert "FAIL" in shown
    assert has_colour(shown) is not no_color, shown[:400]
    piped = run("gate", report, "--budgets", budgets)
    assert "FAIL" in piped.stdout and not ANSI.search(piped.stdout + piped.stderr)

