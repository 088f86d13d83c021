"""main() is the exit-code boundary: an unexpected exception is exit 3 with one line, Ctrl-C is 130, a bad input 2."""

from __future__ import annotations

import sys

import pytest

import edgeopt.cli.verdict as verdict_cli
from edgeopt.cli import _state, logs, main
from edgeopt.errors import UsageError


def _run(monkeypatch, capsys, boom: BaseException, debug: bool = False) -> tuple[int, str]:
    def raise_it(*a, **k):
        raise boom

    monkeypatch.setattr(verdict_cli, "do_gate", raise_it)
    monkeypatch.setattr(logs, "capture_stderr", lambda: None)  # it re-points fd 2: not inside pytest
    monkeypatch.setattr(sys, "argv", ["edgeopt", *(["--debug"] if debug else []), "gate", "r.json", "--budgets",
                                      "b.yaml"])
    monkeypatch.setitem(_state, "debug", False)
    with pytest.raises(SystemExit) as e:
        main()
    return e.value.code, capsys.readouterr().err


@pytest.mark.parametrize("boom, code, words", [
    (RuntimeError("kaboom\nsecond line"), 3, "internal error: RuntimeError: kaboom; rerun with --debug and report it"),
    (KeyError("x"), 3, "internal error: KeyError: 'x'; rerun with --debug"),
    (KeyboardInterrupt(), 130, "interrupted"),
    (UsageError("the problem", "the fix"), 2, "error: the problem — the fix"),
])
def test_exit_codes_mean_what_they_say(monkeypatch, capsys, boom, code, words):
    rc, err = _run(monkeypatch, capsys, boom)
    assert rc == code
    assert words in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_debug_shows_the_traceback(monkeypatch, capsys):
    with pytest.raises(RuntimeError, match="kaboom"):
        _run(monkeypatch, capsys, RuntimeError("kaboom"), debug=True)
