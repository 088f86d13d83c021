"""The one way edgeopt launches a subprocess: with a timeout that kills the child's whole process tree.

Every device (local worker, qemu, ssh/scp, the GPU probe) and the sysroot set-up launch through ``launch``.
A timeout or a crash is an answer (``Finished``), never an exception; Ctrl-C kills the tree and re-raises.
"""

from __future__ import annotations

import logging
import subprocess
import time
from dataclasses import dataclass
from typing import IO

import psutil

log = logging.getLogger(__name__)

KILL_WAIT_S = 5.0


@dataclass(frozen=True)
class Finished:
    returncode: int | None  # None when it was killed for running past the timeout
    stdout: str
    stderr: str
    wall_s: float

    @property
    def timed_out(self) -> bool:
        return self.returncode is None


def kill_tree(pid: int) -> None:
    """Kill ``pid`` and every descendant (a runner's own children, ssh's proxies) and reap them."""
    try:
        parent = psutil.Process(pid)
        procs = [*parent.children(recursive=True), parent]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=KILL_WAIT_S)


def launch(argv: list[str], timeout_s: float, *, stdin: str | IO | None = None, env: dict | None = None,
           cwd=None) -> Finished:
    """Run ``argv`` to the end or to ``timeout_s``; ``stdin`` is text to send or a file to read from."""
    log.debug("launching %s", " ".join(map(str, argv)))
    text_in = isinstance(stdin, str)
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE if text_in else stdin if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    try:
        out, err = proc.communicate(stdin if text_in else None, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        out, err = _drain(proc)
        return Finished(None, out, err, time.monotonic() - t0)
    except BaseException:  # Ctrl-C: no orphan keeps burning the CPU
        kill_tree(proc.pid)
        raise
    return Finished(proc.returncode, out or "", err or "", time.monotonic() - t0)


def _drain(proc: subprocess.Popen) -> tuple[str, str]:
    try:
        out, err = proc.communicate(timeout=KILL_WAIT_S)
    except subprocess.TimeoutExpired:  # a grandchild that escaped the tree still holds the pipes
        return "", ""
    return out or "", err or ""
