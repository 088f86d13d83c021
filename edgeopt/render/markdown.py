"""The PR comment: a report and, when there is one, its verdict as GitHub Markdown.

Every renderer (markdown, junit, html, terminal) reads a Report and/or a Verdict and returns what to show;
none measures, decides or writes anything.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING, Any

from edgeopt.core.report import Report
from edgeopt.render.format import (
    CHECK_HEADERS,
    COMPARISON_HEADERS,
    RESULT_HEADERS,
    check_row,
    comparison_row,
    result_row,
)
from edgeopt.verdict.text import one_line

if TYPE_CHECKING:
    from edgeopt.verdict.gate import Check, Verdict

ICON = {"fail": "❌", "warn": "⚠️", "note": "ℹ️", "pass": "✅"}
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#~])")


def md_cell(value: Any) -> str:
    """Text safe inside a GitHub Markdown table cell: one line, no HTML, no table/emphasis syntax."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(one_line(value), quote=False))


def _md_table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(md_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _check_rows(checks: list[Check]) -> list[list[Any]]:
    return [[ICON[c.outcome], *check_row(c)] for c in checks]


def to_markdown(report: Report, verdict: Verdict | None = None) -> str:
    """A compact PR comment: verdict first, then what failed, then everything collapsed."""
    out: list[str] = []
    if verdict is not None:
        icon = ICON["pass"] if verdict.passed else ICON["fail"]
        out += [f"### {icon} edgeopt gate: {md_cell(verdict.summary())}", ""]
        for r in verdict.recommendations:
            out.append(f"- **Recommendation** — {md_cell(r.describe())}")
        out.append("")
        bad = sorted((c for c in verdict.checks if c.outcome in ("fail", "warn")), key=lambda c: c.outcome)
        if bad:
            out += ["#### Failing checks", ""] + [f"- {ICON[c.outcome]} {md_cell(c.message)}" for c in bad] + [""]
        moved = [c for c in verdict.comparisons if c.regressed or c.verdict == "missing"]
        if moved:
            out += ["#### Regressions against the baseline", "",
                    _md_table(COMPARISON_HEADERS, [comparison_row(c) for c in moved]), ""]
    else:
        out += ["### edgeopt report", ""]
    n = len(report.results)
    table = _md_table(RESULT_HEADERS, [result_row(m) for m in report.results])
    out += [f"<details><summary>All results ({n})</summary>", "", table, "", "</details>", ""]
    if verdict is not None and verdict.checks:
        out += [f"<details><summary>All checks ({len(verdict.checks)})</summary>", "",
                _md_table(CHECK_HEADERS, _check_rows(verdict.checks)), "", "</details>", ""]
    if verdict is not None and verdict.comparisons:
        out += [f"<details><summary>All baseline comparisons ({len(verdict.comparisons)})</summary>", "",
                _md_table(COMPARISON_HEADERS, [comparison_row(c) for c in verdict.comparisons]), "", "</details>", ""]
    return "\n".join(out)
