"""The verdict for a terminal: rich tables of checks and baseline comparisons, the recommendation, the summary.

It builds renderables; the CLI prints them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgeopt.render.format import COMPARISON_HEADERS, check_row, comparison_row

if TYPE_CHECKING:
    from edgeopt.verdict.gate import Verdict

STYLE = {"fail": "bold red", "warn": "yellow", "note": "dim", "pass": "green",
         "regressed": "bold red", "improved": "green", "missing": "yellow", "not compared": "dim", "unchanged": ""}
CHECK_COLUMNS = ("verdict", "target", "artifact", "runtime", "check", "measured", "limit", "level")


def verdict_view(verdict: Verdict) -> list[Any]:
    """Checks, regressions (old/new/change/p/verdict), recommendation, summary: in the order they print."""
    from rich.table import Table
    from rich.text import Text

    out: list[Any] = []
    budget_checks = [c for c in verdict.checks if not c.metric.startswith("regression_")]
    if budget_checks:
        t = Table(title="Budget checks", show_lines=False)
        for col in CHECK_COLUMNS:
            t.add_column(col, justify="right" if col in ("measured", "limit") else "left")
        for c in budget_checks:
            t.add_row(Text(c.outcome.upper(), style=STYLE[c.outcome]), *map(Text, check_row(c)[:6]), Text(c.level))
        out.append(t)
        out += [Text(f"{c.outcome.upper()}: {c.message}", style=STYLE[c.outcome])
                for c in budget_checks if c.outcome != "pass"]
    if verdict.comparisons:
        t = Table(title="Against the baseline")
        for col in COMPARISON_HEADERS:
            t.add_column(col, justify="right" if col in ("old", "new", "change", "p-value") else "left")
        for c in verdict.comparisons:
            *cells, shown = comparison_row(c)
            t.add_row(*map(Text, cells),
                      Text(shown, style="dim" if c.role == "source" else STYLE.get(c.verdict, "")))
        out.append(t)
    out += [Text("Recommendation — " + r.describe(), style="bold" if r.artifact else "dim")
            for r in verdict.recommendations]
    out.append(Text(verdict.summary(), style="bold green" if verdict.passed else "bold red"))
    return out
