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
