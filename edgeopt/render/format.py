"""What every renderer shows the same way: the table headers and rows for results, checks and baseline
comparisons. Markdown, HTML and the terminal differ only in how they draw a row, never in what it says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgeopt.verdict.text import fmt_change, fmt_ms, fmt_value

if TYPE_CHECKING:
    from edgeopt.core.report import Measurement
    from edgeopt.verdict.compare import Comparison
    from edgeopt.verdict.gate import Check

RESULT_HEADERS = ["artifact", "format", "precision", "target", "runtime", "status", "size", "gzip", "accuracy",
                  "p50", "p90", "p99", "peak RSS"]
CHECK_HEADERS = ["", "target", "artifact", "runtime", "check", "measured", "limit", "message"]
COMPARISON_HEADERS = ["artifact", "target", "runtime", "metric", "old", "new", "change", "p-value", "verdict"]


def result_row(m: Measurement) -> list[str]:
    lat = m.latency_ms
    est = " (est.)" if m.estimated else ""
    return [m.artifact + (" (source)" if m.role == "source" else ""), m.format, m.precision, m.target, m.runtime,
            m.status, fmt_value("size_bytes", m.size_bytes), fmt_value("gzip_bytes", m.gzip_bytes),
            fmt_value("accuracy", m.accuracy), fmt_ms(lat.p50) + est if lat else "—",
            fmt_ms(lat.p90) + est if lat else "—", fmt_ms(lat.p99) + est if lat else "—",
            fmt_value("peak_rss_mb", m.peak_rss_mb)]


def fmt_check_value(c: Check, v: Any) -> str:
    """A check's measured value or limit as shown: regression checks hold changes, not values."""
    if c.metric.startswith("regression_") and not isinstance(v, str):
        return fmt_change(c.metric, v)
    return fmt_value(c.metric, v)


def check_row(c: Check) -> list[str]:
    """CHECK_HEADERS after the first column (each renderer draws the outcome its own way)."""
    return [c.target, c.artifact, c.runtime, c.metric, fmt_check_value(c, c.measured), fmt_check_value(c, c.limit),
            c.message]


def comparison_row(c: Comparison) -> list[str]:
    return [c.artifact, c.target, c.runtime, c.metric, fmt_value(c.metric, c.old), fmt_value(c.metric, c.new),
            fmt_change(c.metric, c.change), "—" if c.p_value is None else f"{c.p_value:.2g}",
            c.verdict + (f" ({c.note})" if c.note else "")]
