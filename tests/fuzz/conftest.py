"""The fuzz tally: every generated input is fed through `feed`, which sorts its outcome; the session ends with
``fuzz: N inputs, 0 crashes, 0 tracebacks, 0 leftovers, 0 hangs, 0 code-exec``.

Each test runs a quick subset by default (`make test` deselects the rest) and the whole generated set under
``-m fuzz_full``, which `.ci/run` runs after `make test`."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from edgeopt.errors import UsageError

HANG_S = 60  # per input; a parse or load that takes this long is a hang


@dataclass
class Tally:
    counts: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        c = self.counts
        return (f"fuzz: {c['inputs']} inputs, {c['crashes']} crashes, {c['tracebacks']} tracebacks, "
                f"{c['leftovers']} leftovers, {c['hangs']} hangs, {c['code-exec']} code-exec")

    def bad(self, kind: str, what: str) -> None:
        self.counts[kind] += 1
        self.problems.append(f"{kind}: {what}")


TALLY = Tally()


class _Hang(BaseException):
    pass


def _alarm(signum, frame):
    raise _Hang


def feed(label: str, fn: Callable[[], object]) -> str:
    """Run one generated input: 'ok' (accepted) or 'refused' (a one-line UsageError); anything else is tallied as
    a crash (another exception), a traceback (a multi-line message) or a hang, and returned as such."""
    TALLY.counts["inputs"] += 1
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_S)
    try:
        fn()
        TALLY.counts["accepted"] += 1
        return "ok"
    except UsageError as e:
        if "\n" in str(e) or "Traceback" in str(e):
            TALLY.bad("tracebacks", f"{label}: {str(e)[:300]!r}")
            return "traceback"
        TALLY.counts["refused"] += 1
        return "refused"
    except _Hang:
        TALLY.bad("hangs", label)
        return "hang"
    except Exception as e:  # noqa: BLE001 — exactly what the fuzz suite exists to find
        TALLY.bad("crashes", f"{label}: {type(e).__name__}: {str(e)[:300]}")
        return "crash"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# every fuzz test runs at two sizes: the quick one in `make test`, the full one under `-m fuzz_full`
SIZES = [pytest.param("quick"), pytest.param("full", marks=pytest.mark.fuzz_full)]


def pytest_terminal_summary(terminalreporter):
    if TALLY.counts["inputs"]:
        terminalreporter.write_line(TALLY.line())
        terminalreporter.write_line(f"  ({TALLY.counts['refused']} refused with one line, "
                                    f"{TALLY.counts['accepted']} accepted as valid)")
        for p in TALLY.problems[:20]:
            terminalreporter.write_line(f"  {p}")


def image_folder(root: Path, rng, per_class: int, shape: tuple[int, ...], classes=("cat", "dog")) -> Path:
    """A small, valid image folder (one sub-folder per class, random PNGs ``0.png``, ``1.png``, ...) that the
    fuzz tests then break; drawn from ``rng`` class by class, so a seed gives the same pixels."""
    from PIL import Image

    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


@pytest.fixture
def tally() -> Tally:
    return TALLY


@pytest.fixture
def clean(tally):
    """Assert that the test's inputs added no crash, traceback, leftover, hang or code execution."""
    before = dict(tally.counts)
    yield tally
    added = {k: tally.counts[k] - before.get(k, 0) for k in ("crashes", "tracebacks", "leftovers", "hangs",
                                                             "code-exec")}
    assert not any(added.values()), f"{added}: {tally.problems[-5:]}"
