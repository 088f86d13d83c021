"""The CLI's output plumbing: plain log lines that say who wrote them, global flags hoisted from anywhere."""

from __future__ import annotations

import logging

from edgeopt.cli import hoist_global_flags
from edgeopt.cli.logs import PlainFormatter


def _line(name: str, level: int, msg: str) -> str:
    return PlainFormatter().format(logging.LogRecord(name, level, __file__, 1, msg, (), None))


def test_plain_log_lines_name_who_wrote_them():
    assert _line("edgeopt.cli", logging.INFO, "bench: done") == "edgeopt: bench: done"
    assert _line("edgeopt.bench.run", logging.WARNING, "slow") == "edgeopt: warning: slow"
    assert _line("tensorflow", logging.WARNING, "deprecated") == "tensorflow: warning: deprecated"


def test_global_flags_move_in_front_of_the_command_up_to_a_double_dash():
    assert hoist_global_flags(["bench", "a.tflite", "-q", "--data", "digits", "--debug"]) == [
        "-q", "--debug", "bench", "a.tflite", "--data", "digits"]
    assert hoist_global_flags(["gate", "r.json", "--", "-v"]) == ["gate", "r.json", "--", "-v"]
    assert hoist_global_flags(["-v", "compress", "m.keras"]) == ["-v", "compress", "m.keras"]


def test_plain_progress_takes_every_call_the_commands_make(caplog):
    from edgeopt.cli import PlainProgress

    with caplog.at_level(logging.INFO, logger="edgeopt.cli"), PlainProgress() as p:
        trials = p.add_task("trials", total=3)
        epochs = p.add_task("epochs", total=None, visible=False)
        p.reset(epochs, total=None, visible=True, description="trial 1: width=0.5")
        p.update(epochs, total=4, completed=2, description="trial 1 epoch 2/4")
        p.update(trials, advance=1, description="trials (best 0.9)")
        p.advance(trials)
        p.update(trials, description="trials: done")

    assert [r.getMessage() for r in caplog.records] == [
        "trial 1: width=0.5", "trial 1 epoch 2/4 (2/4)", "trials (best 0.9) (1/3)", "trials: done (2/3)"]
