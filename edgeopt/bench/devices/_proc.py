"""The one way edgeopt launches a subprocess: with a timeout that kills the child's whole process tree.

Every device (local worker, qemu, ssh/scp, the GPU probe) and the sysroot set-up launch through ``launch``.
A timeout or a crash is an answer (``Finished``), never an exception; Ctrl-C kills the tree and re-raises.
Each child runs in its own process group and gets SIGKILL when edgeopt dies, even by ``kill -9`` (Linux's
parent-death signal); ``memory_mb`` caps its resident memory (the tree's RSS, polled: no cgroups needed) and
``Finished.out_of_memory`` says the cap, not the program, ended it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import IO

import psutil

log = logging.getLogger(__name__)

KILL_WAIT_S = 5.0
MEMORY_POLL_S = 0.02
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Finished:
    returncode: int | None  # None when it was killed for running past the timeout
    stdout: str
    stderr: str
    wall_s: float
    out_of_memory: bool = False  # killed because the tree's memory passed ``memory_mb``

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    def how_it_ended(self) -> str:
        """``killed by SIGSEGV`` / ``exited with code 1`` (for a failed result's message)."""
        code = self.returncode
        if code is not None and code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exited with code {code}"

    def last_line(self, skip: str | None = None) -> str:
        """The last non-blank line of its stderr (see ``last_line``)."""
        return last_line(self.stderr, skip)


def last_line(text: str | None, skip: str | None = None) -> str:
    """The last non-blank line of ``text`` (at most 300 characters), ignoring lines that contain ``skip``:
    what a failed command's message quotes."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip() and not (skip and skip in ln)]
    return lines[-1][:300] if lines else ""


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
    try:  # and whatever re-parented itself out of the tree but stayed in the worker's own group
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    psutil.wait_procs(procs, timeout=KILL_WAIT_S)


def _libc_prctl():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: the process group alone still lets kill_tree find the tree
        return None


_PRCTL = _libc_prctl()  # looked up here, in the parent: the child between fork and exec only calls it


def _in_own_group_dying_with_parent() -> None:
    """preexec_fn: a process group of its own (Ctrl-C and killpg reach the whole worker tree, and nothing else),
    and SIGKILL when the thread that launched it dies — so a kill -9 of edgeopt leaves no orphan running."""
    os.setpgid(0, 0)
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def tree_rss_mb(pid: int) -> float:
    try:
        parent = psutil.Process(pid)
        procs = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def _watch_memory(pid: int, memory_mb: float, stop: threading.Event, hit: list) -> None:
    while not stop.wait(MEMORY_POLL_S):
        if tree_rss_mb(pid) > memory_mb:
            hit.append(True)
            kill_tree(pid)
            return


def launch(argv: list[str], timeout_s: float, *, stdin: str | IO | None = None, env: dict | None = None,
           cwd=None, memory_mb: float | None = None) -> Finished:
    """Run ``argv`` to the end or to ``timeout_s``; ``stdin`` is text to send or a file to read from;
    ``memory_mb`` kills the tree when its resident memory passes that many MB (``Finished.out_of_memory``)."""
    log.debug("launching %s", " ".join(map(str, argv)))
    text_in = isinstance(stdin, str)
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE if text_in else stdin if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
                            preexec_fn=_in_own_group_dying_with_parent)  # noqa: PLW1509 — only async-safe calls
    stop, hit = threading.Event(), []
    if memory_mb:
        threading.Thread(target=_watch_memory, args=(proc.pid, memory_mb, stop, hit), daemon=True).start()
    try:
        out, err = proc.communicate(stdin if text_in else None, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        out, err = _drain(proc)
        return Finished(None, out, err, time.monotonic() - t0, out_of_memory=bool(hit))
    except BaseException:  # Ctrl-C: no orphan keeps burning the CPU
        kill_tree(proc.pid)
        raise
    finally:
        stop.set()
    return Finished(proc.returncode, out or "", err or "", time.monotonic() - t0, out_of_memory=bool(hit))


def _drain(proc: subprocess.Popen) -> tuple[str, str]:
    try:
        out, err = proc.communicate(timeout=KILL_WAIT_S)
    except subprocess.TimeoutExpired:  # a grandchild that escaped the tree still holds the pipes
        return "", ""
    return out or "", err or ""
