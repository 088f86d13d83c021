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
    FAILING_HEADERS,
    NUMERIC_RESULT_COLUMNS,
    RESULT_HEADERS,
    TARGET_HEADERS,
    check_row,
    checks_to_look_at,
    comparison_row,
    failing_row,
    result_headers,
    result_row,
    target_rows,
)
from edgeopt.verdict.text import fmt_change

if TYPE_CHECKING:
    from edgeopt.verdict.compare import Comparison
    from edgeopt.verdict.gate import Check, Verdict

MARK = {"pass": "✓", "fail": "✗", "warn": "!", "note": "i", "inconclusive": "?"}  # glyphs every font has (no emoji)
MAX_ROWS = 500  # generic tables: enough for a per-layer table, bounded for a runaway section
MAX_DEPTH = 6

CSS = """
:root{--fail:#b3261e;--warn:#8a6d00;--ok:#1b7f3b;--muted:#667;--line:#dde}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:84rem;
padding:0.75rem;color:#1d1d24;background:#fff}
h1{font-size:1.4rem;margin:.3rem 0}h2{font-size:1.15rem;margin-top:1.6rem;border-bottom:1px solid var(--line)}
h3{font-size:1rem}
.banner{padding:.7rem 1rem;border-radius:.5rem;font-weight:600;margin:.6rem 0}
.banner.pass{background:#e6f4ea;color:var(--ok)}.banner.fail{background:#fce8e6;color:var(--fail)}
.banner.info{background:#eef1f8;color:#234}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;margin:.4rem 0;max-width:100%}
figure{margin:.8rem 0}figcaption{font-size:.8rem;color:var(--muted)}
td.num{text-align:right;font-variant-numeric:tabular-nums}
table{border-collapse:collapse;font-size:.85rem;min-width:100%}table.kv{min-width:0}
#results table{font-size:.8rem}
th,td{border:1px solid var(--line);padding:.25rem .45rem;text-align:left;vertical-align:top;white-space:nowrap}
#results th,#results td{padding:.2rem .35rem}
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
          msg_col: int | None = None, cls: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{esc(row_classes[i])}"' if row_classes and row_classes[i] else ""
        cells = "".join(f'<td class="msg">{esc(v)}</td>' if j == msg_col else f"<td>{esc(v)}</td>"
                        for j, v in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    attr = f' class="{esc(cls)}"' if cls else ""
    return (f'<div class="scroll"><table{attr}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
            "</div>")


def img(b64: str | None, alt: str, caption: str = "", chart: str = "") -> str:
    """A chart as an inline PNG in a <figure> (``data-chart`` names it for tests and readers), or a line
    saying there was nothing to plot."""
    if b64 is None:
        return f'<p class="muted">{esc(alt)}: nothing to plot.</p>'
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return (f'<figure class="chart" data-chart="{esc(chart or alt)}"><img src="data:image/png;base64,{b64}" '
            f'alt="{esc(alt)}">{cap}</figure>')


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
        _, quality, lower = plots.quality_axis([m for m in rows if m.status == "ok"])
        better = "Down and left" if lower else "Up and left"
        parts.append(img(plots.pareto_png(rows, t), f"{t}: {quality} vs p90", chart=f"pareto {t}",
                         caption=f"{better} is better. Marker area grows with the size on disk; outlined red points "
                                 f"are on the Pareto front (nothing else is both faster and better in {quality})."))
        parts.append(img(plots.latency_png(rows, t), f"{t}: latency distribution", chart=f"latency {t}",
                         caption="Box: p25–p75, line: p50, whiskers: p1–p99 of the timed single inferences."))
        moved = plots.comparison_png(comparisons, t) if comparisons else None
        if moved is not None:  # only where some p50 could be compared
            parts.append(img(moved, f"{t}: p50 against the baseline", chart=f"comparison {t}",
                             caption="Change of the median latency against the baseline."))
    parts.append("<h2>Size</h2>" + img(plots.size_png(report.results), "size raw vs gzip", chart="size"))
    parts.append("<h2>Results</h2>" + results_html(report, comparisons))
    if verdict is not None and verdict.checks:
        order = {"fail": 0, "inconclusive": 1, "warn": 2, "note": 3, "pass": 4}
        checks = sorted(verdict.checks, key=lambda c: order.get(c.outcome, len(order)))
        shown = [c for c in checks if c.outcome != "pass"]
        passed = [c for c in checks if c.outcome == "pass"]
        html_checks = table(CHECK_HEADERS, _check_rows(shown), [c.outcome for c in shown], msg_col=7) if shown else ""
        if passed:  # the passing ones are there to be looked up, not read
            html_checks += (f"<details><summary>{len(passed)} passed checks</summary>"
                            f"{table(CHECK_HEADERS, _check_rows(passed), msg_col=7)}</details>")
        parts.append("<h2>Checks</h2>" + html_checks)
    if comparisons:
        parts.append("<h2>Against the baseline</h2>" + comparisons_html(comparisons))
    for key, value in report.extra.items():
        value = pruned(value)
        if value is not None:  # a stage section with nothing in it is left out, not drawn as empty headings
            parts.append(f"<h2>{esc(section_title(key))}</h2>" + generic_html(value))
    parts.append("<h2>Environment</h2>" + generic_html(pruned(report.environment) or {}))
    parts.append(f'<p class="muted">schema_version {esc(report.schema_version)} · written by edgeopt</p>')
    parts.append("</body></html>\n")
    return "\n".join(parts)


def summary_html(report: Report, verdict: Verdict | None, comparisons: list[Comparison]) -> str:
    """The banner (the gate's summary, or counts when no budgets or baseline were given), then per target its
    outcome and what to ship, then the checks that failed or warned with measured value, limit and margin."""
    out = []
    if verdict is not None:
        out.append(f'<div class="banner {"pass" if verdict.passed else "fail"}" id="verdict">'
                   f'{esc(verdict.summary())}</div>')
        rows = target_rows(verdict)
        out.append(table(TARGET_HEADERS, [[MARK[o], *r] for o, r in rows],
                         [o if o == "fail" else "" for o, _ in rows], msg_col=3))
        bad = checks_to_look_at(verdict)
        if bad:
            out.append("<h3>Checks to look at</h3>" + table(
                FAILING_HEADERS, [[f"{MARK.get(c.outcome, '?')} {c.outcome.upper()}", *failing_row(c)] for c in bad],
                [c.outcome for c in bad]))
    else:
        ok = sum(m.status == "ok" for m in report.results)
        regressed = sum(c.regressed for c in comparisons)
        text = f"{len(report.results)} results, {ok} ok" + (f", {regressed} regressions vs baseline"
                                                           if comparisons else "")
        text += " — no verdict: pass --budgets (and/or --baseline) to `edgeopt report` for one"
        out.append(f'<div class="banner info" id="verdict">{esc(text)}</div>')
    return "\n".join(out)


def results_html(report: Report, comparisons: list[Comparison]) -> str:
    by_key: dict[tuple[str, str, str], list[Comparison]] = {}
    for c in comparisons:
        by_key.setdefault(c.key, []).append(c)
    headers = result_headers(report.results) + (["vs baseline"] if comparisons else [])
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    numeric = [h in NUMERIC_RESULT_COLUMNS for h in RESULT_HEADERS]
    for m in report.results:
        cells = "".join(f'<td class="num">{esc(v)}</td>' if n else f"<td>{esc(v)}</td>"
                        for v, n in zip(result_row(m), numeric, strict=True))
        cmp = by_key.get(m.key, [])
        if comparisons:
            cells += f"<td>{baseline_marks(cmp)}</td>"
        cls = "regressed" if any(c.regressed for c in cmp) else "fail" if m.status == "failed" else ""
        body.append(f'<tr class="{cls}">{cells}</tr>' if cls else f"<tr>{cells}</tr>")
    errors = [m for m in report.results if m.status != "ok" and m.error]
    notes = "".join(f"<li>{esc(m.artifact)} on {esc(m.target)} ({esc(m.runtime)}): {esc(m.status)}: "
                    f"{esc(m.error)}</li>" for m in errors)
    return (f'<div class="scroll" id="results"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
            f'</table></div>' + (f"<ul>{notes}</ul>" if notes else ""))


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


def pruned(value: Any) -> Any:
    """``value`` without empty parts (None, "", {}, [] at any depth); None when nothing is left."""
    if isinstance(value, dict):
        kept = {k: p for k, v in value.items() if (p := pruned(v)) is not None}
        return kept or None
    if isinstance(value, list):
        items = [p for v in value if (p := pruned(v)) is not None]
        return items or None
    return None if value is None or value == "" else value


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
        out = [table(["key", "value"], [[k, _cell(v)] for k, v in list(flat.items())[:MAX_ROWS]], cls="kv")] if flat else []
        for k, v in value.items():
            if k not in flat:
                path = [str(k)]  # a chain of one-key mappings reads as one heading: "artifacts › model.tflite › int8"
                while isinstance(v, dict) and len(v) == 1 and not _is_flat(next(iter(v.values()))):
                    (inner, v), = v.items()
                    path.append(str(inner))
                out.append(f"<details open><summary>{esc(' › '.join(path))}</summary>"
                           f"{generic_html(v, depth + 1)}</details>")
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
