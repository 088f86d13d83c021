"""What every renderer shows the same way: the table headers and rows for results, checks and baseline
comparisons. Markdown, HTML and the terminal differ only in how they draw a row, never in what it says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgeopt.verdict.text import RELATIVE_CHANGES, fmt_change, fmt_ms, fmt_value

if TYPE_CHECKING:
    from edgeopt.core.report import Measurement
    from edgeopt.verdict.compare import Comparison
    from edgeopt.verdict.gate import Check, Verdict

RESULT_HEADERS = ["artifact", "format", "precision", "target", "runtime", "status", "size", "gzip", "accuracy",
                  "agree", "init", "first", "p50", "p90", "p99", "n", "peak RSS"]
CHECK_HEADERS = ["", "target", "artifact", "runtime", "check", "measured", "limit", "message"]
COMPARISON_HEADERS = ["artifact", "target", "runtime", "metric", "old", "new", "change", "p-value", "verdict"]
FAILING_HEADERS = ["", "target", "artifact", "runtime", "check", "measured", "limit", "margin"]
TARGET_HEADERS = ["", "target", "checks", "ship"]
COUNTED = {"fail": "failed", "warn": "warned", "note": "noted", "pass": "passed"}
OUTCOME_ORDER = ("fail", "inconclusive", "warn", "note", "pass")
NUMERIC_RESULT_COLUMNS = frozenset(RESULT_HEADERS[6:])  # drawn right-aligned where a renderer aligns


def result_headers(results: list[Measurement]) -> list[str]:
    """RESULT_HEADERS for these results: the accuracy column named for the task's headline metric when it is not
    top-1 (f1, mae, cosine, the user's own), the agreement column "cosine" when the outputs are not class scores."""
    headers = list(RESULT_HEADERS)
    names = list(dict.fromkeys(m.metric for m in results if m.metric))
    if names and names != ["top1"]:
        headers[headers.index("accuracy")] = "/".join(n for n in names if n != "top1") if "top1" not in names \
            else "/".join(["accuracy", *(n for n in names if n != "top1")])
    if not any(m.agreement is not None for m in results) and any("cosine" in m.metrics for m in results):
        headers[headers.index("agree")] = "cosine"
    return headers


def result_row(m: Measurement) -> list[str]:
    """RESULT_HEADERS for one result: init = loading the artifact into its runtime, first = the first inference, which
    pays one-time costs the steady-state p50/p90/p99 leave out; n = timed samples behind the percentiles."""
    lat = m.latency_ms
    est = " (est.)" if m.estimated else ""

    def pct(v: float | None) -> str:
        return fmt_ms(v) + est if lat else "—"

    return [m.artifact + (" (source)" if m.role == "source" else ""), m.format, m.precision, m.target, m.runtime,
            m.status, fmt_value("size_bytes", m.size_bytes), fmt_value("gzip_bytes", m.gzip_bytes),
            fmt_value("accuracy", m.accuracy if m.accuracy is not None else m.metric_value),
            fmt_value("agreement", m.agreement if m.agreement is not None else m.metrics.get("cosine")), fmt_ms(m.init_ms),
            fmt_ms(m.first_ms), pct(lat and lat.p50), pct(lat and lat.p90), pct(lat and lat.p99),
            f"{lat.n:,}" if lat and lat.n else "—", fmt_value("peak_rss_mb", m.peak_rss_mb)]


def fmt_check_value(c: Check, v: Any) -> str:
    """A check's measured value or limit as shown: regression checks hold changes, not values."""
    if c.metric.startswith("regression_") and not isinstance(v, str):
        return fmt_change(c.metric, v)
    return fmt_value(c.metric, v)


def fmt_margin(c: Check) -> str:
    """How far a check's measured value sits from its limit, in the metric's unit and relative to the limit:
    ``+100.0 KB (+50%)`` over a max, ``-0.0200 (-2%)`` under a min. "—" where either side is not a number."""
    v, lim = c.measured, c.limit
    if isinstance(v, (str, type(None))) or isinstance(lim, (str, type(None))) or isinstance(v, bool):
        return "—"
    diff = float(v) - float(lim)
    metric = c.metric
    if metric.startswith("regression_"):
        shown = f"{diff * 100:+.1f} pp" if metric.removeprefix("regression_") in RELATIVE_CHANGES else f"{diff:+.4f}"
        return shown
    if metric.endswith("_ms"):
        shown = ("+" if diff >= 0 else "-") + fmt_ms(abs(diff))
    elif metric.endswith(("_kb", "_bytes", "_mb")):
        shown = ("+" if diff >= 0 else "-") + fmt_value(metric, abs(diff))
    else:
        shown = f"{diff:+.4f}"
    return shown + (f" ({diff / float(lim):+.0%})" if lim else "")


def check_row(c: Check) -> list[str]:
    """CHECK_HEADERS after the first column (each renderer draws the outcome its own way)."""
    return [c.target, c.artifact, c.runtime, c.metric, fmt_check_value(c, c.measured), fmt_check_value(c, c.limit),
            c.message]


def comparison_row(c: Comparison) -> list[str]:
    return [c.artifact, c.target, c.runtime, c.metric, fmt_value(c.metric, c.old), fmt_value(c.metric, c.new),
            fmt_change(c.metric, c.change), "—" if c.p_value is None else f"{c.p_value:.2g}",
            c.verdict + (f" ({c.note})" if c.note else "")]


def failing_row(c: Check) -> list[str]:
    """FAILING_HEADERS after the first column: where, what, the measured value, the limit and the margin."""
    return [*check_row(c)[:6], fmt_margin(c)]


def checks_to_look_at(verdict: Verdict) -> list[Check]:
    """The checks a reader must see first (failed, inconclusive, warned), worst first."""
    rank = {o: i for i, o in enumerate(OUTCOME_ORDER)}
    return sorted((c for c in verdict.checks if c.outcome not in ("pass", "note")),
                  key=lambda c: rank.get(c.outcome, len(rank)))


def target_rows(verdict: Verdict) -> list[tuple[str, list[str]]]:
    """Per target: its outcome ("fail" or "pass") and TARGET_HEADERS after the first column (the counts of its
    checks, what to ship there)."""
    targets = list(dict.fromkeys([*(c.target for c in verdict.checks), *(r.target for r in verdict.recommendations)]))
    rank = {o: i for i, o in enumerate(OUTCOME_ORDER)}
    rows = []
    for t in targets:
        mine = [c for c in verdict.checks if c.target == t]
        counts: dict[str, int] = {}
        for c in sorted(mine, key=lambda c: rank.get(c.outcome, len(rank))):
            counts[c.outcome] = counts.get(c.outcome, 0) + 1
        shown = ", ".join(f"{n} {COUNTED.get(o, o)}" for o, n in counts.items())
        rec = next((r for r in verdict.recommendations if r.target == t), None)
        ship = "—" if rec is None else rec.describe().split(": ", 1)[-1]
        rows.append(("fail" if counts.get("fail") else "pass", [t, shown or "no checks", ship]))
    return rows
