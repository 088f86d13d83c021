"""The verdict for a terminal: rich tables of checks and baseline comparisons, the recommendation, the summary.

It builds renderables; the CLI prints them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgeopt.render.format import (
    COMPARISON_HEADERS,
    NUMERIC_RESULT_COLUMNS,
    RESULT_HEADERS,
    check_row,
    comparison_row,
    result_headers,
    result_row,
)

if TYPE_CHECKING:
    from edgeopt.core.report import Report
    from edgeopt.verdict.gate import Verdict

STYLE = {"fail": "bold red", "inconclusive": "magenta", "warn": "yellow", "note": "dim", "pass": "green",
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
            if c.verdict == "inconclusive" and c.note:
                shown = f"{shown} ({c.note.split(';')[0]})"
            t.add_row(*map(Text, cells),
                      Text(shown, style="dim" if c.role == "source" else STYLE.get(c.verdict, "")))
        out.append(t)
    out += [Text("Recommendation — " + r.describe(), style="bold" if r.artifact else "dim")
            for r in verdict.recommendations]
    out.append(Text(verdict.summary(), style="bold green" if verdict.passed else "bold red"))
    return out


# dropped first when the terminal is too narrow for every column (the HTML and Markdown tables keep them all)
OPTIONAL_RESULT_COLUMNS = ("gzip", "n", "agree", "p99", "format", "precision", "init", "first", "peak RSS")


def results_view(report: Report, title: str = "benchmark", width: int | None = None) -> list[Any]:
    """The results table (the columns of the Markdown and HTML ones; a column that holds one value in every row,
    such as the only target, moves into the title; on a terminal narrower than the table, the least needed
    columns go), then one line per failed or skipped result saying why."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    rows = [result_row(m) for m in report.results]
    shown = result_headers(report.results)
    constant = [i for i, h in enumerate(RESULT_HEADERS) if h in ("format", "precision", "target", "runtime", "status")
                and len(rows) > 1 and len({r[i] for r in rows}) == 1]
    if constant:
        title += " — " + ", ".join(f"{shown[i]} {rows[0][i]}" for i in constant)
    keep = [i for i in range(len(RESULT_HEADERS)) if i not in constant]

    def natural_width() -> int:
        return sum(max(len(shown[i]), *(len(r[i]) for r in rows)) + 3 for i in keep)

    for name in OPTIONAL_RESULT_COLUMNS:
        if width is None or natural_width() <= width:
            break
        keep.remove(RESULT_HEADERS.index(name)) if RESULT_HEADERS.index(name) in keep else None
    t = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    for i in keep:
        col = RESULT_HEADERS[i]
        t.add_column(shown[i], justify="right" if col in NUMERIC_RESULT_COLUMNS else "left", no_wrap=True,
                     overflow="fold" if col == "artifact" else "ellipsis")
    status_style = {"ok": "", "failed": "bold red", "skipped": "yellow"}
    status_at = RESULT_HEADERS.index("status")
    for m, row in zip(report.results, rows, strict=True):
        t.add_row(*[Text(row[i], style=status_style.get(m.status, "") if i == status_at else "") for i in keep])
    out: list[Any] = [t]
    out += [Text(f"{m.status}: {m.artifact} on {m.target} ({m.runtime}): {m.error}", style=status_style[m.status])
            for m in report.results if m.status != "ok" and m.error]
    return out
