"""Values as every renderer and the gate's messages write them: latencies in the unit they read best in."""

from __future__ import annotations

import pytest

from edgeopt.verdict.text import fmt_ms, fmt_value


@pytest.mark.parametrize("ms, shown", [
    (0.00085, "850 ns"), (0.0123, "12.3 µs"), (0.010, "10.0 µs"), (0.99, "990 µs"), (0.9996, "1.00 ms"),
    (1.234, "1.23 ms"), (12.34, "12.3 ms"), (123.4, "123 ms"), (999.7, "1.00 s"), (1234.0, "1.23 s"),
    (65_000.0, "65.0 s"), (0.0, "0 ms"), (None, "—"),
])
def test_latency_units_scale(ms, shown):
    assert fmt_ms(ms) == shown


def test_every_ms_metric_uses_the_scaled_units():
    assert fmt_value("p90_ms", 0.0042) == "4.20 µs" and fmt_value("init_ms", 2500.0) == "2.50 s"
