"""The HTML report: one self-contained file (CSS inline, plots as base64 PNG) that reads on a phone.

Sections: verdict, per-target Pareto and latency charts, sizes, results (regressions marked when a
baseline is given), checks, baseline comparisons, every extra section of the report in its order (what
stages recorded: manifests with per-layer sensitivity/sparsity, tuning, ...; each rendered generically,
none known by name) and the environment.
"""

from __future__ import annotations

import html
import json
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
from edgeopt.verdict.text import fmt_change

if TYPE_CHECKING:
    from edgeopt.verdict.compare import Comparison
    from edgeopt.verdict.gate import Check, Verdict

MAX_ROWS = 500  # generic tables: enough for a per-layer table, bounded for a runaway section
MAX_DEPTH = 6

CSS = """
:root{--fail:#b3261e;--warn:#8a6d00;--ok:#1b7f3b;--muted:#667;--line:#dde}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:64rem;
padding:0.75rem;color:#1d1d24;background:#fff}
h1{font-size:1.4rem;margin:.3rem 0}h2{font-size:1.15rem;margin-top:1.6rem;border-bottom:1px solid var(--line)}
h3{font-size:1rem}
.banner{padding:.7rem 1rem;border-radius:.5rem;font-weight:600;margin:.6rem 0}
.banner.pass{background:#e6f4ea;color:var(--ok)}.banner.fail{background:#fce8e6;color:var(--fail)}
.banner.info{background:#eef1f8;color:#234}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;margin:.4rem 0}
table{border-collapse:collapse;font-size:.85rem;min-width:100%}
th,td{border:1px solid var(--line);padding:.25rem .45rem;text-align:left;vertical-align:top;white-space:nowrap}
td.msg{white-space:normal;min-width:14rem}
th{background:#f4f5fa;position:sticky;top:0}
tr.fail td,span.regressed{color:var(--fail);font-weight:600}tr.warn td,span.missing{color:var(--warn)}
tr.note td,span.not-compared{color:var(--muted)}span.improved{color:var(--ok)}
tr.regressed td{background:#fdf1f0}
img{max-width:100%;height:auto;display:block;margin:.5rem 0}
details{margin:.4rem 0}summary{cursor:pointer;font-weight:600}
pre{background:#f6f7fb;padding:.5rem;overflow-x:auto;font-size:.8rem}
.muted{color:var(--muted)}
@media (max-width:600px){body{font-size:14px;padding:.5rem}th,td{padding:.2rem .3rem}}
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def table(headers: list[str], rows: list[list[Any]], row_classes: list[str] | None = None,
          msg_col: int | None = None) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{esc(row_classes[i])}"' if row_classes and row_classes[i] else ""
        cells = "".join(f'<td class="msg">{esc(v)}</td>' if j == msg_col else f"<td>{esc(v)}</td>"
                        for j, v in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def img(b64: str | None, alt: str) -> str:
    if b64 is None:
        return f'<p class="muted">{esc(alt)}: nothing to plot.</p>'
    return f'<img src="data:image/png;base64,{b64}" alt="{esc(alt)}">'


def to_html(report: Report, verdict: Verdict | None = None, baseline: Report | None = None) -> str:
    from edgeopt.render import plots

    comparisons: list[Comparison] = list(verdict.comparisons) if verdict is not None else []
    if baseline is not None and not comparisons:
        from edgeopt.verdict.compare import compare

        comparisons = compare(report, baseline)
    title = "edgeopt report"
    parts = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{esc(title)}</title><style>{CSS}</style></head><body>", f"<h1>{esc(title)}</h1>"]
    parts.append(summary_html(report, verdict, comparisons))
    targets = list(dict.fromkeys(m.target for m in report.results))
    for t in targets:
        rows = [m for m in report.results if m.target == t]
        parts.append(f"<h2>Target {esc(t)}</h2>")
        parts.append(img(plots.pareto_png(rows, t), f"{t}: accuracy vs p90"))
        parts.append(img(plots.latency_png(rows, t), f"{t}: latency distribution"))
    parts.append("<h2>Size</h2>" + img(plots.size_png(report.results), "size raw vs gzip"))
    parts.append("<h2>Results</h2>" + results_html(report, comparisons))
    if verdict is not None and verdict.checks:
        order = {"fail": 0, "warn": 1, "note": 2, "pass": 3}
        checks = sorted(verdict.checks, key=lambda c: order[c.outcome])
        parts.append("<h2>Checks</h2>" + table(CHECK_HEADERS, _check_rows(checks), [c.outcome for c in checks],
                                               msg_col=7))
    if comparisons:
        parts.append("<h2>Against the baseline</h2>" + comparisons_html(comparisons))
    for key, value in report.extra.items():
        parts.append(f"<h2>{esc(section_title(key))}</h2>" + generic_html(value))
    parts.append("<h2>Environment</h2>" + generic_html(report.environment))
    parts.append(f'<p class="muted">schema_version {esc(report.schema_version)} · written by edgeopt</p>')
    parts.append("</body></html>\n")
    return "\n".join(parts)


def summary_html(report: Report, verdict: Verdict | None, comparisons: list[Comparison]) -> str:
    out = []
    if verdict is not None:
        out.append(f'<div class="banner {"pass" if verdict.passed else "fail"}">{esc(verdict.summary())}</div>')
        if verdict.recommendations:
            items = "".join(f"<li>{esc(r.describe())}</li>" for r in verdict.recommendations)
            out.append(f"<p><strong>Recommended</strong></p><ul>{items}</ul>")
        bad = [c for c in verdict.checks if c.outcome in ("fail", "warn")]
        if bad:
            items = "".join(f'<li class="{esc(c.outcome)}">{esc(c.outcome.upper())}: {esc(c.message)}</li>'
                            for c in bad)
            out.append(f"<ul>{items}</ul>")
    else:
        ok = sum(m.status == "ok" for m in report.results)
        regressed = sum(c.regressed for c in comparisons)
        text = f"{len(report.results)} results, {ok} ok" + (f", {regressed} regressions vs baseline"
                                                           if comparisons else "")
        out.append(f'<div class="banner info">{esc(text)}</div>')
    return "\n".join(out)


def results_html(report: Report, comparisons: list[Comparison]) -> str:
    by_key: dict[tuple[str, str, str], list[Comparison]] = {}
    for c in comparisons:
        by_key.setdefault(c.key, []).append(c)
    headers = RESULT_HEADERS + (["vs baseline"] if comparisons else [])
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for m in report.results:
        cells = "".join(f"<td>{esc(v)}</td>" for v in result_row(m))
        cmp = by_key.get(m.key, [])
        if comparisons:
            cells += f"<td>{baseline_marks(cmp)}</td>"
        cls = "regressed" if any(c.regressed for c in cmp) else "fail" if m.status == "failed" else ""
        body.append(f'<tr class="{cls}">{cells}</tr>' if cls else f"<tr>{cells}</tr>")
    errors = [m for m in report.results if m.status != "ok" and m.error]
    notes = "".join(f"<li>{esc(m.artifact)} on {esc(m.target)} ({esc(m.runtime)}): {esc(m.status)}: "
                    f"{esc(m.error)}</li>" for m in errors)
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
            + (f"<ul>{notes}</ul>" if notes else ""))


def baseline_marks(cmp: list[Comparison]) -> str:
    """What moved for one result, for the results table's "vs baseline" column."""
    if not cmp:
        return '<span class="muted">not in baseline</span>'
    marks = []
    for c in cmp:
        if c.verdict != "unchanged":
            cls = "note" if c.role == "source" else c.verdict.replace(" ", "-")
            text = f"{c.metric} {fmt_change(c.metric, c.change)} {c.verdict}"
            marks.append(f'<span class="{esc(cls)}">{esc(text)}</span>')
    return ", ".join(marks) or '<span class="muted">unchanged</span>'


def comparisons_html(comparisons: list[Comparison]) -> str:
    rows = [comparison_row(c) for c in comparisons]
    classes = ["regressed" if c.regressed else "warn" if c.verdict == "missing" else
               "note" if c.verdict == "not compared" else "" for c in comparisons]
    return table(COMPARISON_HEADERS, rows, classes, msg_col=8)


def _check_rows(checks: list[Check]) -> list[list[Any]]:
    return [[c.outcome.upper(), *check_row(c)] for c in checks]


# --- generic sections (manifests, tuning, environment, anything a stage adds) -------------------------

def section_title(key: str) -> str:
    """A report section's heading from its key: ``per_layer`` -> ``Per layer``."""
    text = key.replace("_", " ")
    return text[:1].upper() + text[1:]


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def _is_flat(v: Any) -> bool:
    return _is_scalar(v) or (isinstance(v, list) and len(v) <= 16 and all(_is_scalar(x) for x in v))


def _cell(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "—" if v is None else str(v).lower()
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return ", ".join(_cell(x) for x in v)
    if isinstance(v, (dict, tuple)):
        return json.dumps(v, default=str)[:200]
    return str(v)


def generic_html(value: Any, depth: int = 0) -> str:
    """Any JSON value as tables: flat mappings as key/value rows, lists of mappings as one table
    (their nested parts below, per item), deeper levels as collapsible sections."""
    if depth >= MAX_DEPTH:
        return f"<pre>{esc(json.dumps(value, indent=1, default=str)[:4000])}</pre>"
    if isinstance(value, dict):
        flat = {k: v for k, v in value.items() if _is_flat(v)}
        out = [table(["key", "value"], [[k, _cell(v)] for k, v in list(flat.items())[:MAX_ROWS]])] if flat else []
        for k, v in value.items():
            if k not in flat:
                out.append(f"<details open><summary>{esc(k)}</summary>{generic_html(v, depth + 1)}</details>")
        return "\n".join(out) or '<p class="muted">(empty)</p>'
    if isinstance(value, list):
        if value and all(isinstance(x, dict) for x in value):
            cols = list(dict.fromkeys(k for x in value for k, v in x.items() if _is_flat(v)))
            out = [table(cols, [[_cell(x.get(c)) for c in cols] for x in value[:MAX_ROWS]])] if cols else []
            if len(value) > MAX_ROWS:
                out.append(f'<p class="muted">… {len(value) - MAX_ROWS} more rows</p>')
            opened = " open" if len(value) <= 8 else ""  # a few manifests: show their layer tables at once
            for i, x in enumerate(value[:MAX_ROWS]):
                nested = {k: v for k, v in x.items() if not _is_flat(v)}
                if nested:
                    name = x.get("name") or x.get("artifact") or x.get("layer") or f"#{i + 1}"
                    out.append(f"<details{opened}><summary>{esc(name)}</summary>"
                               f"{generic_html(nested, depth + 1)}</details>")
            return "\n".join(out)
        if all(_is_scalar(x) for x in value):
            return f"<p>{esc(_cell(value))}</p>"
        return "\n".join(generic_html(x, depth + 1) for x in value[:MAX_ROWS])
    return f"<p>{esc(_cell(value))}</p>"
