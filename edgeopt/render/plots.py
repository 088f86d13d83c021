"""Matplotlib charts for the HTML report, each returned as base64 PNG (or None when there is nothing to plot).

Figures are built with the object API on an Agg canvas: no pyplot global state, no display needed.
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeopt.core.report import Measurement
from edgeopt.verdict.text import time_unit

if TYPE_CHECKING:
    from edgeopt.verdict.compare import Comparison

WIDTH_IN = 9.0  # ~1080 px at the dpi below: sharp at 1400 px, scaled down by CSS on a phone
DPI = 120
FONT = 8
FRONT, DOMINATED = "#d1495b", "#8d99ae"


def _figure(height_in: float) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def latency_scale(values_ms: list[float]) -> tuple[str, float]:
    """One unit for a latency axis (the one its middle value reads best in) and the factor from ms into it."""
    ordered = sorted(v for v in values_ms if v > 0)
    return time_unit(ordered[len(ordered) // 2]) if ordered else ("ms", 1.0)


def latency_axis(ax: Any, which: str, lo: float, hi: float) -> None:
    """A log axis when the values span more than 20x (a TensorFlow reference next to tiny TFLite models),
    with a few plain tick labels (1, 10, 100 — no 2×10⁻² pile-up); a linear one otherwise."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    if lo > 0 and hi / lo > 20:
        (ax.set_xscale if which == "x" else ax.set_yscale)("log")
        axis.set_major_locator(LogLocator(base=10, numticks=8))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())


def _spread_labels(ax: Any, texts: list[Any], xs: list[float], ys: list[float]) -> None:
    """Move point labels apart so that none covers another (adjustText), a thin line back to each point."""
    if len(texts) < 2:
        return
    try:
        from adjustText import adjust_text
    except ImportError:  # labels stay where they were put: readable for a few points
        return
    adjust_text(texts, x=xs, y=ys, ax=ax, expand=(1.3, 1.6), arrowprops={"arrowstyle": "-", "color": "#777",
                                                                         "lw": 0.5})


def label(m: Measurement, with_runtime: bool) -> str:
    text = f"{m.artifact} ({m.runtime})" if with_runtime else m.artifact
    return plain(text + (" est." if m.estimated else ""))


def plain(text: str) -> str:
    """Text matplotlib draws as given: a '$' in a name would otherwise start mathtext."""
    return text.replace("$", r"\$")


def pareto_front(points: list[tuple[float, float]], lower_is_better: bool = False) -> list[int]:
    """Indices of the points no other point beats on both lower p90 and a better score (higher accuracy; lower
    for a lower-is-better metric such as MAE), by p90."""
    sign = -1.0 if lower_is_better else 1.0
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -sign * points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if sign * points[i][1] > best:
            front.append(i)
            best = sign * points[i][1]
    return front


def headline(m: Measurement) -> float | None:
    """What the quality axis shows: top-1 for classifiers, else the task's headline metric (the report names it)."""
    return m.accuracy if m.accuracy is not None else m.metric_value


def quality_axis(rows: list[Measurement]) -> tuple[list[Measurement], str, bool]:
    """(the results drawn, the quality axis's name, whether lower is better): accuracy when every result has one,
    else the task metric most of them name (one metric per axis)."""
    rows = [m for m in rows if headline(m) is not None]
    if all(m.accuracy is not None for m in rows):
        return rows, "accuracy", False
    names = [m.metric for m in rows if m.accuracy is None]
    rows = [m for m in rows if m.accuracy is None and m.metric == max(set(names), key=names.count)]
    return rows, rows[0].metric or "metric", bool(rows[0].lower_is_better)


def pareto_png(results: list[Measurement], target: str) -> str | None:
    fig = pareto_figure(results, target)
    return None if fig is None else _png(fig)


def pareto_figure(results: list[Measurement], target: str) -> Any:
    """Accuracy (or the task's metric) vs p90 on one target; marker area grows with size on disk; the front is
    highlighted and named in the legend; labels pushed apart so none overlaps another; an accuracy axis stops at 1."""
    from matplotlib.lines import Line2D

    rows = [m for m in results if m.status == "ok" and headline(m) is not None and m.latency_ms is not None]
    if not rows:
        return None
    rows, quality, lower = quality_axis(rows)
    classifier = quality == "accuracy"
    unit, per_ms = latency_scale([m.latency_ms.p90 for m in rows])  # type: ignore[union-attr]
    pts = [(m.latency_ms.p90 * per_ms, headline(m)) for m in rows]  # type: ignore[union-attr, operator]
    front = set(pareto_front(pts, lower))
    sizes = [m.size_bytes or 0 for m in rows]
    biggest = max(sizes) or 1
    with_runtime = len({m.runtime for m in rows}) > 1
    fig, ax = _figure(4.8)
    texts = []
    for i, m in enumerate(rows):
        on_front = i in front
        ax.scatter(pts[i][0], pts[i][1], s=40 + 500 * sizes[i] / biggest, marker="*" if m.role == "source" else "o",
                   alpha=0.9 if on_front else 0.5, color=FRONT if on_front else DOMINATED,
                   edgecolors="black" if on_front else "none", linewidths=1.0, zorder=3)
        texts.append(ax.text(pts[i][0], pts[i][1], label(m, with_runtime), fontsize=FONT, zorder=4))
    line = sorted(pts[i] for i in front)
    if len(line) > 1:
        ax.step([p[0] for p in line], [p[1] for p in line], where="post", color=FRONT, lw=1, zorder=2)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    latency_axis(ax, "x", min(xs), max(xs))
    lo, hi = min(ys), max(ys)
    pad = max(0.01, (hi - lo) * 0.2)
    if classifier:
        ax.set_ylim(max(0.0, lo - pad), min(1.0, hi + pad) if hi < 1 else 1.0 + pad / 4)
    else:
        ax.set_ylim(lo - pad, hi + pad)
    ax.margins(x=0.12)
    _spread_labels(ax, texts, xs, ys)
    handles = [Line2D([], [], marker="o", ls="", color=FRONT, markeredgecolor="black", label="on the Pareto front"),
               Line2D([], [], marker="o", ls="", color=DOMINATED, alpha=0.6, label=f"beaten on p90 and {quality}")]
    if len(line) > 1:
        handles.append(Line2D([], [], color=FRONT, lw=1, label="Pareto front"))
    if any(m.role == "source" for m in rows):
        handles.append(Line2D([], [], marker="*", ls="", color=DOMINATED, markersize=10, label="source model"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=FONT, frameon=False)
    ax.set_xlabel(f"p90 latency ({unit})" + (" — some estimated" if any(m.estimated for m in rows) else ""),
                  fontsize=FONT + 1)
    ax.set_ylabel(quality + (" (lower is better)" if lower else ""), fontsize=FONT + 1)
    ax.set_title(plain(f"{target}: {quality} vs p90 latency — marker area ∝ size on disk"), fontsize=FONT + 2)
    ax.tick_params(labelsize=FONT)
    ax.grid(alpha=0.3)
    return fig


def size_png(results: list[Measurement]) -> str | None:
    """Raw vs gzip size per artifact (size does not depend on target or runtime: one bar pair each)."""
    seen: dict[str, Measurement] = {}
    for m in results:
        if m.size_bytes is not None:
            seen.setdefault(m.artifact, m)
    if not seen:
        return None
    names = list(seen)
    raw = [seen[n].size_bytes / 1024 for n in names]  # type: ignore[operator]
    gz = [(seen[n].gzip_bytes or 0) / 1024 for n in names]
    fig, ax = _figure(1.2 + 0.4 * len(names))
    ys = range(len(names))
    ax.barh([y - 0.2 for y in ys], raw, height=0.4, color="#2e86ab", label="raw")
    ax.barh([y + 0.2 for y in ys], gz, height=0.4, color="#f6ae2d", label="gzip")
    ax.set_yticks(list(ys), [plain(n) for n in names], fontsize=FONT)
    ax.invert_yaxis()
    ax.set_xlabel("size (KB)")
    ax.set_title("size on disk: raw vs gzip", fontsize=FONT + 2)
    ax.tick_params(labelsize=FONT)
    ax.legend(fontsize=FONT, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def latency_png(results: list[Measurement], target: str) -> str | None:
    """Box plot of the raw latency samples of each (artifact, runtime) on one target: box p25-p75, line p50,
    whiskers p1-p99 (the HTML says so under the chart)."""
    rows = [m for m in results if m.status == "ok" and len(m.samples_ms) > 0]
    if not rows:
        return None
    with_runtime = len({m.runtime for m in rows}) > 1
    unit, per_ms = latency_scale([float(np.median(m.samples_ms)) for m in rows])
    data = [np.asarray(m.samples_ms, dtype=float) * per_ms for m in rows]
    fig, ax = _figure(1.2 + 0.42 * len(rows))
    # Whiskers at p1/p99 and no fliers: tens of thousands of samples would draw a smear of dots.
    style: dict[str, Any] = {"whis": (1, 99), "showfliers": False, "widths": 0.6}
    try:
        ax.boxplot(data, orientation="horizontal", **style)
    except TypeError:  # matplotlib < 3.10 spells it vert=False
        ax.boxplot(data, vert=False, **style)
    ax.set_yticks(range(1, len(rows) + 1), [label(m, with_runtime) for m in rows])
    latency_axis(ax, "x", min(float(np.percentile(d, 1)) for d in data), max(float(np.percentile(d, 99)) for d in data))
    ax.tick_params(labelsize=FONT)
    ax.invert_yaxis()
    ax.set_xlabel(f"latency per inference ({unit})", fontsize=FONT + 1)
    ax.set_title(plain(f"{target}: latency distribution"), fontsize=FONT + 2)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def comparison_png(comparisons: list[Comparison], target: str) -> str | None:
    """Per artifact on one target: the change of p50 against the baseline (or the other side of an A/B pair),
    red where it regressed, green where it improved, the regression threshold dashed."""
    rows = [c for c in comparisons if c.target == target and c.metric == "p50_ms" and c.change is not None]
    if not rows:
        return None
    colour = {"regressed": FRONT, "improved": "#2a9d55"}
    fig, ax = _figure(1.2 + 0.42 * len(rows))
    ys = list(range(len(rows)))
    changes = [100 * (c.change or 0.0) for c in rows]
    ax.barh(ys, changes, color=[colour.get(c.verdict, DOMINATED) for c in rows], height=0.6)
    with_runtime = len({c.runtime for c in rows}) > 1
    ax.set_yticks(ys, [plain(f"{c.artifact} ({c.runtime})" if with_runtime else c.artifact) for c in rows])
    for y, c, v in zip(ys, rows, changes, strict=True):
        ax.annotate(f"{v:+.1f}% ({c.verdict})", (v, y), xytext=(4 if v >= 0 else -4, 0), textcoords="offset points",
                    ha="left" if v >= 0 else "right", va="center", fontsize=FONT)
    thresholds = sorted({c.threshold for c in rows if c.threshold})
    for t in thresholds:
        ax.axvline(100 * t, color=FRONT, ls="--", lw=0.8)
    ax.axvline(0, color="black", lw=0.8)
    span = max([abs(v) for v in changes] + [100 * t for t in thresholds] + [1.0])
    ax.set_xlim(-span * 1.5, span * 1.5)
    ax.invert_yaxis()
    ax.tick_params(labelsize=FONT)
    ax.set_xlabel("p50 change against the baseline (%)" + (" — dashed: regression threshold" if thresholds else ""),
                  fontsize=FONT + 1)
    ax.set_title(plain(f"{target}: p50 against the baseline"), fontsize=FONT + 2)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)
