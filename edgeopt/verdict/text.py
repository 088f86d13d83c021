"""How the verdict writes values: a metric's value with the unit its name ends in, a change, one line.

The gate writes these into every check's message (verdict.json, JUnit, the PR comment); the renderers
use the same ones for their tables, so a value reads the same everywhere. Nothing here knows a renderer.
"""

from __future__ import annotations

from typing import Any

# (unit, how many of it make one millisecond), smallest first: a latency is shown in the largest unit it
# reaches at least 1 of, the way pytest-benchmark and LiteRT's benchmark_model scale theirs.
TIME_UNITS = (("ns", 1e6), ("µs", 1e3), ("ms", 1.0), ("s", 1e-3))


def time_unit(ms: float) -> tuple[str, float]:
    """The unit a duration of ``ms`` milliseconds reads best in, and the factor from ms into it."""
    chosen = TIME_UNITS[0]
    for unit, per_ms in TIME_UNITS:
        if abs(ms) * per_ms >= 1 - 5e-4:  # 0.9996 ms rounds to 1.00 ms, not 1000 µs
            chosen = (unit, per_ms)
    return chosen


def _three_figures(x: float) -> str:
    a = abs(x)
    return f"{x:.2f}" if a < 10 else f"{x:.1f}" if a < 100 else f"{x:,.0f}"


def fmt_ms(v: float | None) -> str:
    """A duration given in milliseconds, in the unit it reads best in: 850 ns, 12.3 µs, 4.56 ms, 1.20 s."""
    if v is None:
        return "—"
    if v == 0:
        return "0 ms"
    unit, per_ms = time_unit(v)
    text = _three_figures(v * per_ms)
    if text.lstrip("-").replace(",", "") == "1000" and unit != "s":  # 999.7 µs rounds up into the next unit
        unit, per_ms = TIME_UNITS[[u for u, _ in TIME_UNITS].index(unit) + 1]
        text = _three_figures(v * per_ms)
    return f"{text} {unit}"


def fmt_value(metric: str, v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    if metric.endswith("_kb"):
        return f"{v:,.1f} KB"
    if metric.endswith("_bytes"):
        return f"{v / 1024:,.1f} KB"
    if metric.endswith("_ms"):
        return fmt_ms(v)
    if metric.endswith("_mb"):
        return f"{v:,.1f} MB"
    return f"{v:.4f}"


RELATIVE_CHANGES = ("p50_ms", "size_bytes")


def fmt_change(metric: str, change: float | None) -> str:
    if change is None:
        return "—"
    # p50 and size move relative to the baseline; accuracy and task metrics (mae, f1, ...) by their own units
    return f"{change:+.1%}" if metric.removeprefix("regression_") in RELATIVE_CHANGES else f"{change:+.4f}"


def one_line(text: Any) -> str:
    return " ".join(str(text).split())
