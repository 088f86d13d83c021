"""What `edgeopt optimize` found, from front.json's content: the Pareto front as rows (terminal and Markdown) and
report.html — one self-contained page (CSS inline, the scatter an inline SVG whose points carry <title> tooltips
with the candidate's recipe; nothing loaded from the network)."""

from __future__ import annotations

import json
import math
from typing import Any

from edgeopt.render.html import CSS, esc, table
from edgeopt.render.markdown import _md_table
from edgeopt.verdict.text import fmt_ms

FRONT_HEADERS = ["trial", "candidate", "val top-1", "p90", "size KB", "budgets", "measured"]
NUMERIC_FRONT_COLUMNS = frozenset(("trial", "val top-1", "p90", "size KB"))  # right-aligned where aligned


def _p90(rec: dict[str, Any]) -> str:
    if rec.get("p90_ms") is None:
        return "-"
    return fmt_ms(rec["p90_ms"]) + (" est." if rec.get("estimated") else "")


def candidate_row(rec: dict[str, Any]) -> list[str]:
    acc = rec.get("accuracy")
    size = rec.get("size_bytes")
    meets = "pruned" if rec.get("state") == "pruned" else "all met" if rec.get("meets_all") else \
        "misses " + ", ".join(k for k, ok in (rec.get("meets") or {}).items() if not ok)
    return [str(rec.get("trial", "")), str(rec.get("label", "")), "-" if acc is None else f"{acc:.4f}", _p90(rec),
            "-" if size is None else f"{size / 1024:,.1f}", meets,
            {"bench": "bench", "screen": "screened"}.get(rec.get("measured", ""), "-")]


def front_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The front's candidates, best validation accuracy first."""
    front = set(doc.get("front") or [])
    rows = [r for r in doc.get("candidates", []) if r.get("trial") in front]
    return sorted(rows, key=lambda r: (-(r.get("accuracy") or 0), r.get("p90_ms") or math.inf))


def to_markdown(doc: dict[str, Any]) -> str:
    how = "estimated" if doc.get("latency") == "estimate" else "measured on the target"
    lines = [f"# edgeopt optimize: {doc.get('target')} (latency {how})", "",
             f"{_trials_line(doc)}", "", "## Pareto front (validation accuracy, p90, size)", "",
             _md_table(FRONT_HEADERS, [candidate_row(r) for r in front_rows(doc)]), ""]
    lines += [f"## {line}" if i == 0 else line for i, line in enumerate(verdict_lines(doc))]
    return "\n".join(lines) + "\n"


def _trials_line(doc: dict[str, Any]) -> str:
    t = doc.get("trials") or {}
    return (f"{t.get('total', 0)} trials: {t.get('complete', 0)} complete ({t.get('fully_measured', 0)} fully "
            f"measured, {t.get('screened_only', 0)} screened only), {t.get('pruned', 0)} pruned "
            f"({t.get('pruned_after_short_run', 0)} after their student's short run), "
            f"{t.get('failed', 0)} failed; space of {doc.get('space_size')} candidates; sampler {doc.get('sampler')}")


def verdict_lines(doc: dict[str, Any]) -> list[str]:
    """The answer: the best candidate and its test-split figures, or the closest misses and what each misses."""
    best = doc.get("best")
    if best:
        test = best.get("test") or {}
        acc = test.get("accuracy")
        lines = [f"Best: trial {best['trial']} — {best.get('label')}",
                 f"test top-1 {'-' if acc is None else f'{acc:.4f}'}, p90 {_p90(test)}, "
                 f"{(test.get('size_bytes') or 0) / 1024:,.1f} KB; artifacts in best/, rerun with "
                 "`edgeopt compress --recipe best/recipe.yaml`"]
        if best.get("size_reproduced") is False:
            lines.append("note: the rerun's artifact size differs from the candidate's")
        return lines
    if not doc.get("closest"):
        reasons = list(dict.fromkeys(r["pruned"] for r in doc.get("candidates", []) if r.get("pruned")))
        return ["No candidate meets every budget: every candidate was pruned." if reasons else
                "No candidate meets every budget: no candidate was scored.",
                *(f"- {reason}" for reason in reasons[:3])]
    lines = ["No candidate meets every budget. Closest:"]
    for c in doc.get("closest") or []:
        lines.append(f"- trial {c['trial']} ({c.get('label')}): " + "; ".join(c.get("misses") or ["?"]))
    return lines


# --- report.html ---------------------------------------------------------------------------------------

W, H, PAD = 760, 420, 56


def _scale(values: list[float], lo_px: float, hi_px: float, log: bool):
    vals = [math.log10(v) if log else v for v in values]
    lo, hi = min(vals), max(vals)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5

    def at(v: float) -> float:
        x = math.log10(v) if log else v
        return lo_px + (x - lo) / (hi - lo) * (hi_px - lo_px)

    return at, (lo, hi)


def scatter_svg(doc: dict[str, Any]) -> str:
    """Accuracy (validation) against p90, marker area by size; front points outlined, budget lines dashed; each
    point's <title> is its candidate's label, figures and recipe (the browser shows it on hover)."""
    pts = [r for r in doc.get("candidates", []) if r.get("accuracy") is not None and r.get("p90_ms") is not None
           and r.get("duplicate_of") is None]
    if not pts:
        return '<p class="muted">No candidate with a latency and an accuracy to plot.</p>'
    p90s = [max(r["p90_ms"], 1e-6) for r in pts]
    log = max(p90s) / min(p90s) > 20
    x_at, (x_lo, x_hi) = _scale(p90s, PAD, W - 16, log)
    y_at, (y_lo, y_hi) = _scale([r["accuracy"] for r in pts], H - PAD, 16, False)
    sizes = [r.get("size_bytes") or 1 for r in pts]
    s_max = max(sizes)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="100%" role="img" '
           f'aria-label="accuracy vs p90" data-chart="optimize front" style="max-width:{W}px">',
           f'<rect x="{PAD}" y="16" width="{W - 16 - PAD}" height="{H - 16 - PAD}" fill="#fafbfe" stroke="#dde"/>']
    for i in range(5):  # axis ticks
        fx, fy = x_lo + (x_hi - x_lo) * i / 4, y_lo + (y_hi - y_lo) * i / 4
        px, py = PAD + (W - 16 - PAD) * i / 4, H - PAD - (H - 16 - PAD) * i / 4
        xv = 10 ** fx if log else fx
        out.append(f'<text x="{px:.1f}" y="{H - PAD + 16}" font-size="11" text-anchor="middle">{esc(fmt_ms(xv))}</text>')
        out.append(f'<text x="{PAD - 6}" y="{py + 4:.1f}" font-size="11" text-anchor="end">{fy:.3f}</text>')
    est = " (estimated)" if any(r.get("estimated") for r in pts) else ""
    out.append(f'<text x="{(W + PAD) / 2:.0f}" y="{H - 12}" font-size="12" text-anchor="middle">p90 latency'
               f'{esc(est)}{" — log scale" if log else ""}</text>')
    out.append(f'<text x="14" y="{(H - PAD) / 2:.0f}" font-size="12" text-anchor="middle" '
               f'transform="rotate(-90 14 {(H - PAD) / 2:.0f})">validation top-1</text>')
    for key, at, horizontal in (("max_p90_ms", x_at, False), ("min_accuracy", y_at, True)):
        limit = _limit(doc, key)
        if limit is None or (not horizontal and limit <= 0):
            continue
        pos = at(limit)
        if horizontal and 16 <= pos <= H - PAD:
            out.append(f'<line x1="{PAD}" x2="{W - 16}" y1="{pos:.1f}" y2="{pos:.1f}" stroke="#b3261e" '
                       f'stroke-dasharray="5 4"><title>{esc(key)} {limit}</title></line>')
        elif not horizontal and PAD <= pos <= W - 16:
            out.append(f'<line y1="16" y2="{H - PAD}" x1="{pos:.1f}" x2="{pos:.1f}" stroke="#b3261e" '
                       f'stroke-dasharray="5 4"><title>{esc(key)} {limit} ms</title></line>')
    front = set(doc.get("front") or [])
    best = (doc.get("best") or {}).get("trial")
    for r, p90, size in sorted(zip(pts, p90s, sizes, strict=True), key=lambda t: -t[2]):
        radius = 4 + 14 * math.sqrt(size / s_max)
        fill = "#1b7f3b" if r.get("meets_all") else "#8a94a6"
        stroke = ' stroke="#b3261e" stroke-width="2.5"' if r["trial"] in front else ' stroke="#fff"'
        tip = (f"trial {r['trial']}{' (best)' if r['trial'] == best else ''}: {r.get('label')}\n"
               f"top-1 {r['accuracy']:.4f}, p90 {_p90(r)}, {size / 1024:,.1f} KB, "
               f"{'meets every budget' if r.get('meets_all') else 'misses a budget'}\n"
               + json.dumps({"stages": (r.get("recipe") or {}).get("stages")}, indent=1))
        out.append(f'<circle class="candidate" data-trial="{r["trial"]}" cx="{x_at(p90):.1f}" '
                   f'cy="{y_at(r["accuracy"]):.1f}" r="{radius:.1f}" fill="{fill}" fill-opacity="0.7"{stroke}>'
                   f"<title>{esc(tip)}</title></circle>")
    out.append("</svg>")
    return "".join(out)


def _limit(doc: dict[str, Any], key: str) -> float | None:
    targets = (doc.get("budgets") or {}).get("targets") or {}
    for name in (doc.get("target"), "*"):
        v = (targets.get(name) or {}).get(key)
        if v is not None:
            return float(v["limit"] if isinstance(v, dict) else v)
    return None


def to_html(doc: dict[str, Any]) -> str:
    title = f"edgeopt optimize — {doc.get('target')}"
    best = doc.get("best")
    banner = (f'<div class="banner pass">{esc(" — ".join(verdict_lines(doc)[:2]))}</div>' if best else
              f'<div class="banner fail">{esc(verdict_lines(doc)[0])}</div>')
    parts = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{esc(title)}</title><style>{CSS}</style></head><body>", f"<h1>{esc(title)}</h1>", banner,
             f'<p class="muted">{esc(_trials_line(doc))}. Latency: {esc(doc.get("latency"))} '
             f'({esc(doc.get("latency_why"))}). Scored on the {esc(doc.get("scored_on"))}'
             + (f'; the stages chose on {esc(doc["stages_validated_on"])}' if doc.get("stages_validated_on") else "")
             + '.</p>']
    if not best:
        parts.append("<ul>" + "".join(f"<li>{esc(line[2:])}</li>" for line in verdict_lines(doc)[1:]) + "</ul>")
    parts += ["<h2>Accuracy vs p90</h2>",
              '<figure class="chart">' + scatter_svg(doc) + "<figcaption>Up and left is better; marker area grows with "
              "the size on disk; green: meets every budget; red outline: on the Pareto front; dashed: the budget. "
              "Hover a point for its recipe.</figcaption></figure>",
              "<h2>Pareto front</h2>", table(FRONT_HEADERS, [candidate_row(r) for r in front_rows(doc)]),
              "<h2>Every candidate</h2>",
              table([*FRONT_HEADERS, "note"], [[*candidate_row(r), r.get("pruned") or "; ".join(r.get("misses") or [])]
                                               for r in doc.get("candidates", [])], msg_col=7),
              "<h2>Search space</h2>", f"<pre>{esc(json.dumps(doc.get('dimensions'), indent=1))}</pre>",
              "</body></html>"]
    return "".join(parts)
