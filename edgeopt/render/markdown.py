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
    FAILING_HEADERS,
    TARGET_HEADERS,
    check_row,
    checks_to_look_at,
    comparison_row,
    failing_row,
    result_headers,
    result_row,
    target_rows,
)
from edgeopt.verdict.text import one_line

if TYPE_CHECKING:
    from edgeopt.verdict.gate import Check, Verdict

ICON = {"fail": "❌", "warn": "⚠️", "note": "ℹ️", "pass": "✅", "inconclusive": "❔"}
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#~])")
GITHUB_COMMENT_LIMIT = 65_536  # characters in one PR comment body; longer ones are refused


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


def to_markdown(report: Report, verdict: Verdict | None = None, limit: int = GITHUB_COMMENT_LIMIT) -> str:
    """The PR comment: the verdict per target, the failing checks (measured, limit, margin), what changed
    against the baseline, then the results table, then every check and comparison collapsed. Cut to ``limit``
    characters (GitHub's comment size) with a note saying so."""
    out: list[str] = []
    if verdict is not None:
        out += [f"### {icon('pass' if verdict.passed else 'fail')} edgeopt gate: {md_cell(verdict.summary())}", ""]
        out += [_md_table(TARGET_HEADERS, [[icon(passed), *row] for passed, row in target_rows(verdict)]), ""]
        bad = checks_to_look_at(verdict)
        if bad:
            out += ["#### Failing checks" if any(c.outcome == "fail" for c in bad) else "#### Warnings", "",
                    _md_table(FAILING_HEADERS, [[icon(c.outcome), *failing_row(c)] for c in bad]),
                    ""]
        unsure = verdict.by_outcome("inconclusive")
        if unsure:
            out += ["#### Inconclusive (the run's noise is above the threshold: neither a pass nor a fail)", ""]
            out += [f"- {ICON['inconclusive']} {md_cell(c.message)}" for c in unsure] + [""]
        moved = [c for c in verdict.comparisons if c.regressed or c.verdict in ("missing", "improved")]
        if moved:
            out += ["#### What changed against the baseline", "",
                    _md_table(COMPARISON_HEADERS, [comparison_row(c) for c in moved]), ""]
    else:
        out += ["### edgeopt report", ""]
    out += [f"#### Results ({len(report.results)})", "",
            _md_table(result_headers(report.results), [result_row(m) for m in report.results]), ""]
    out += sensitivity_md(report.extra.get("sensitivity"))
    if verdict is not None and verdict.checks:
        out += [f"<details><summary>All checks ({len(verdict.checks)})</summary>", "",
                _md_table(CHECK_HEADERS, _check_rows(verdict.checks)), "", "</details>", ""]
    if verdict is not None and verdict.comparisons:
        out += [f"<details><summary>All baseline comparisons ({len(verdict.comparisons)})</summary>", "",
                _md_table(COMPARISON_HEADERS, [comparison_row(c) for c in verdict.comparisons]), "", "</details>", ""]
    return fit("\n".join(out), limit)


def sensitivity_md(sections: Any) -> list[str]:
    """The prune stage's sensitivity scans (report section ``sensitivity``: compress folder → scan), one table
    each: layer, damage at each scanned sparsity, the sparsity chosen. Collapsed: it is looked up, not read."""
    out: list[str] = []
    for folder, scan in (sections or {}).items() if isinstance(sections, dict) else ():
        rows = scan.get("layers") if isinstance(scan, dict) else None
        if not rows or not all(isinstance(r, dict) for r in rows):
            continue
        drops = [k for k in rows[0] if k.startswith("top1_drop@")]
        headers = ["layer", "params", *(f"top-1 drop @{k.split('@')[1]}" for k in drops), "chosen"]
        table = [[r.get("layer"), r.get("params"), *(_points(r.get(k)) for k in drops), r.get("chosen", "—")]
                 for r in rows]
        out += [f"<details><summary>Sensitivity scan of {md_cell(folder)}: {md_cell(scan.get('unit', 'weights'))} "
                f"pruned to {md_cell(scan.get('target'))} overall, {md_cell(scan.get('allocation'))} allocation "
                f"({md_cell(scan.get('samples'))} {md_cell(scan.get('split', 'val'))} rows)</summary>", "",
                _md_table(headers, table), "", "</details>", ""]
    return out


def _points(v: Any) -> str:
    return f"{100 * v:+.1f} pt" if isinstance(v, int | float) else "—"


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
