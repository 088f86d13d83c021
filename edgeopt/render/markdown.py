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
    fmt_margin,
    result_row,
)
from edgeopt.verdict.text import one_line

if TYPE_CHECKING:
    from edgeopt.verdict.gate import Check, Verdict

ICON = {"fail": "❌", "warn": "⚠️", "note": "ℹ️", "pass": "✅", "inconclusive": "❔"}
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#~])")
GITHUB_COMMENT_LIMIT = 65_536  # characters in one PR comment body; longer ones are refused
FAILING_HEADERS = ["", "target", "artifact", "runtime", "check", "measured", "limit", "margin"]
TARGET_HEADERS = ["", "target", "checks", "ship"]
COUNTED = {"fail": "failed", "warn": "warned", "note": "noted", "pass": "passed"}


def md_cell(value: Any) -> str:
    """Text safe inside a GitHub Markdown table cell: one line, no HTML, no table/emphasis syntax."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(one_line(value), quote=False))


def _md_table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(md_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def icon(outcome: str) -> str:
    return ICON.get(outcome, "❔")


def _check_rows(checks: list[Check]) -> list[list[Any]]:
    return [[icon(c.outcome), *check_row(c)] for c in checks]


def target_rows(verdict: Verdict) -> list[list[Any]]:
    """One row per target: ✅/❌, the counts of its checks, what to ship there."""
    targets = list(dict.fromkeys([*(c.target for c in verdict.checks), *(r.target for r in verdict.recommendations)]))
    rows = []
    for t in targets:
        mine = [c for c in verdict.checks if c.target == t]
        counts = {o: sum(c.outcome == o for c in mine) for o in dict.fromkeys(c.outcome for c in mine)}
        shown = ", ".join(f"{n} {COUNTED.get(o, o)}" for o, n in sorted(
            counts.items(), key=lambda kv: list(ICON).index(kv[0]) if kv[0] in ICON else len(ICON)))
        rec = next((r for r in verdict.recommendations if r.target == t), None)
        ship = "—" if rec is None else rec.describe().split(": ", 1)[-1]
        rows.append([icon("fail" if counts.get("fail") else "pass"), t, shown or "no checks", ship])
    return rows


def to_markdown(report: Report, verdict: Verdict | None = None, limit: int = GITHUB_COMMENT_LIMIT) -> str:
    """The PR comment: the verdict per target, the failing checks (measured, limit, margin), what changed
    against the baseline, then the results table, then every check and comparison collapsed. Cut to ``limit``
    characters (GitHub's comment size) with a note saying so."""
    out: list[str] = []
    if verdict is not None:
        out += [f"### {icon('pass' if verdict.passed else 'fail')} edgeopt gate: {md_cell(verdict.summary())}", ""]
        out += [_md_table(TARGET_HEADERS, target_rows(verdict)), ""]
        order = list(ICON)
        bad = sorted((c for c in verdict.checks if c.outcome not in ("pass", "note")),
                     key=lambda c: order.index(c.outcome) if c.outcome in order else len(order))
        if bad:
            out += ["#### Failing checks" if any(c.outcome == "fail" for c in bad) else "#### Warnings", "",
                    _md_table(FAILING_HEADERS, [[icon(c.outcome), *check_row(c)[:6], fmt_margin(c)] for c in bad]),
                    ""]
        moved = [c for c in verdict.comparisons if c.regressed or c.verdict in ("missing", "improved")]
        if moved:
            out += ["#### What changed against the baseline", "",
                    _md_table(COMPARISON_HEADERS, [comparison_row(c) for c in moved]), ""]
    else:
        out += ["### edgeopt report", ""]
    out += [f"#### Results ({len(report.results)})", "",
            _md_table(RESULT_HEADERS, [result_row(m) for m in report.results]), ""]
    if verdict is not None and verdict.checks:
        out += [f"<details><summary>All checks ({len(verdict.checks)})</summary>", "",
                _md_table(CHECK_HEADERS, _check_rows(verdict.checks)), "", "</details>", ""]
    if verdict is not None and verdict.comparisons:
        out += [f"<details><summary>All baseline comparisons ({len(verdict.comparisons)})</summary>", "",
                _md_table(COMPARISON_HEADERS, [comparison_row(c) for c in verdict.comparisons]), "", "</details>", ""]
    return fit("\n".join(out), limit)


def fit(md: str, limit: int) -> str:
    """``md`` cut at a line boundary to at most ``limit`` characters, an open <details> closed and a note added."""
    if len(md) <= limit:
        return md
    lines = md.splitlines()
    kept: list[str] = []
    size, open_details = 0, False
    reserve = 400  # the note, a closing tag and a blank line
    for line in lines:
        if size + len(line) + 1 > limit - reserve:
            break
        kept.append(line)
        size += len(line) + 1
        if line.startswith("<details>"):
            open_details = True
        elif line.startswith("</details>"):
            open_details = False
    dropped = len(lines) - len(kept)
    if kept and kept[-1].startswith("|"):
        kept.append("")
    if open_details:
        kept += ["", "</details>"]
    kept += ["", f"> ✂️ Truncated to fit GitHub's comment limit ({limit:,} characters): {dropped:,} more lines "
             "left out. The full tables are in the HTML report (`edgeopt report --html`) and `gate --json`."]
    return "\n".join(kept) + "\n"
