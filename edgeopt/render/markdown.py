"""Reports people act on: Markdown (PR comment), JUnit XML (CI test view), HTML (render_html.py).

Every renderer reads a Report and, when there is one, a Verdict; none measures or decides anything.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeopt import atomic
from edgeopt.core.report import Report
from edgeopt.render.format import (
    CHECK_HEADERS,
    COMPARISON_HEADERS,
    RESULT_HEADERS,
    check_row,
    comparison_row,
    fmt_check_value,
    result_row,
)
from edgeopt.verdict.text import fmt_change, fmt_value

if TYPE_CHECKING:
    from edgeopt.verdict.compare import Comparison
    from edgeopt.verdict.gate import Check, Verdict

ICON = {"fail": "❌", "warn": "⚠️", "note": "ℹ️", "pass": "✅"}
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#~])")
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


# --- Markdown -----------------------------------------------------------------------------------------

def md_cell(value: Any) -> str:
    """Text safe inside a GitHub Markdown table cell: one line, no HTML, no table/emphasis syntax."""
    text = " ".join(str(value).split())
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def _md_table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(md_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _check_rows(checks: list[Check]) -> list[list[Any]]:
    return [[ICON[c.outcome], *check_row(c)] for c in checks]


def _comparison_rows(comparisons: list[Comparison]) -> list[list[Any]]:
    return [comparison_row(c) for c in comparisons]


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
                    _md_table(COMPARISON_HEADERS, _comparison_rows(moved)), ""]
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
                _md_table(COMPARISON_HEADERS, _comparison_rows(verdict.comparisons)), "", "</details>", ""]
    return "\n".join(out)


# --- JUnit XML ----------------------------------------------------------------------------------------

def _xml_text(value: Any) -> str:
    return _XML_INVALID.sub("?", str(value))


def to_junit(verdict: Verdict, suite: str = "edgeopt.gate") -> str:
    """One testcase per check. Errors are failures; warnings pass with a note in system-out; notes skip."""
    import xml.etree.ElementTree as ET

    counts = {o: len(verdict.by_outcome(o)) for o in ("fail", "note")}
    attrs = {"name": suite, "tests": str(len(verdict.checks)), "failures": str(counts["fail"]), "errors": "0",
             "skipped": str(counts["note"])}
    root = ET.Element("testsuites", attrs)
    ts = ET.SubElement(root, "testsuite", attrs)
    for c in verdict.checks:
        if c.metric == "budget":  # a budget that matched nothing: name it by where it is written
            name = f"budget {c.source}"
        else:
            name = f"{c.artifact} [{c.runtime}] {c.metric}" if c.runtime else f"{c.artifact} {c.metric}"
        tc = ET.SubElement(ts, "testcase", {"classname": _xml_text(f"{suite}.{c.target}"), "name": _xml_text(name)})
        msg = _xml_text(c.message)
        if c.outcome == "fail":
            failure = ET.SubElement(tc, "failure", {"message": msg, "type": c.metric})
            failure.text = msg
        elif c.outcome == "note":
            ET.SubElement(tc, "skipped", {"message": msg})
        elif c.outcome == "warn":
            ET.SubElement(tc, "system-out").text = f"WARNING: {msg}"
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# --- terminal ------------------------------------------------------------------------------------------

STYLE = {"fail": "bold red", "warn": "yellow", "note": "dim", "pass": "green",
         "regressed": "bold red", "improved": "green", "missing": "yellow", "not compared": "dim", "unchanged": ""}


def print_verdict(verdict: Verdict, console: Any = None) -> None:
    """The terminal view: checks, regressions (old/new/change/p/verdict), recommendation, summary."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console()
    budget_checks_ = [c for c in verdict.checks if not c.metric.startswith("regression_")]
    if budget_checks_:
        t = Table(title="Budget checks", show_lines=False)
        for col in ("verdict", "target", "artifact", "runtime", "check", "measured", "limit", "level"):
            t.add_column(col, justify="right" if col in ("measured", "limit") else "left")
        for c in budget_checks_:
            t.add_row(Text(c.outcome.upper(), style=STYLE[c.outcome]), Text(c.target), Text(c.artifact),
                      Text(c.runtime), Text(c.metric), Text(fmt_check_value(c, c.measured)),
                      Text(fmt_check_value(c, c.limit)), Text(c.level))
        console.print(t)
        for c in budget_checks_:
            if c.outcome != "pass":
                console.print(Text(f"{c.outcome.upper()}: {c.message}", style=STYLE[c.outcome]))
    if verdict.comparisons:
        t = Table(title="Against the baseline")
        for col in ("artifact", "target", "runtime", "metric", "old", "new", "change", "p-value", "verdict"):
            t.add_column(col, justify="right" if col in ("old", "new", "change", "p-value") else "left")
        for c in verdict.comparisons:
            t.add_row(Text(c.artifact), Text(c.target), Text(c.runtime), Text(c.metric),
                      Text(fmt_value(c.metric, c.old)), Text(fmt_value(c.metric, c.new)),
                      Text(fmt_change(c.metric, c.change)), Text("—" if c.p_value is None else f"{c.p_value:.2g}"),
                      Text(c.verdict + (f" ({c.note})" if c.note else ""), style="dim" if c.role == "source" else STYLE.get(c.verdict, "")))
        console.print(t)
    for r in verdict.recommendations:
        console.print(Text("Recommendation — " + r.describe(), style="bold" if r.artifact else "dim"))
    console.print(Text(verdict.summary(), style="bold green" if verdict.passed else "bold red"))


# --- HTML and the CLI's entry point -------------------------------------------------------------------

def to_html(report: Report, verdict: Verdict | None = None, baseline: Report | None = None) -> str:
    """Self-contained HTML (plots inlined); see render_html.py."""
    from edgeopt.render.html import to_html as _to_html

    return _to_html(report, verdict, baseline)


def run_report(report_path: str | Path, html: str | Path | None = None, markdown: str | Path | None = None,
               baseline_path: str | Path | None = None) -> list[Path]:
    """Write the HTML and/or Markdown report; with no output named, HTML next to the report."""
    from edgeopt.verdict.gate import check, load_input

    report = load_input(report_path, "report")
    baseline = load_input(baseline_path, "baseline") if baseline_path is not None else None
    if not report.results:
        from edgeopt.errors import UsageError

        raise UsageError(f"report {report_path} has no results", "run `edgeopt bench` on at least one artifact")
    verdict = check(report, baseline=baseline) if baseline is not None else None
    if html is None and markdown is None:
        html = Path(report_path).with_suffix(".html")
    written: list[Path] = []
    if html is not None:
        written.append(atomic.write_text(html, to_html(report, verdict, baseline)))
    if markdown is not None:
        written.append(atomic.write_text(markdown, to_markdown(report, verdict)))
    return written
