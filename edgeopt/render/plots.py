"""Matplotlib charts for the HTML report, each returned as base64 PNG (or None when there is nothing to plot).

Figures are built with the object API on an Agg canvas: no pyplot global state, no display needed.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from edgeopt.core.report import Measurement

WIDTH_IN = 6.4  # ~700 px at the dpi below: fits a phone when scaled by CSS, sharp on a laptop
DPI = 110


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


def label(m: Measurement, with_runtime: bool) -> str:
    text = f"{m.artifact} ({m.runtime})" if with_runtime else m.artifact
    return plain(text + (" est." if m.estimated else ""))


def plain(text: str) -> str:
    """Text matplotlib draws as given: a '$' in a name would otherwise start mathtext."""
    return text.replace("$", r"\$")


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both lower p90 and higher accuracy, by p90."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def pareto_png(results: list[Measurement], target: str) -> str | None:
    """Accuracy vs p90 on one target; marker area grows with size on disk; the front is highlighted."""
    rows = [m for m in results if m.status == "ok" and m.accuracy is not None and m.latency_ms is not None]
    if not rows:
        return None
    pts = [(m.latency_ms.p90, m.accuracy) for m in rows]  # type: ignore[union-attr]
    front = set(pareto_front(pts))
    sizes = [m.size_bytes or 0 for m in rows]
    biggest = max(sizes) or 1
    with_runtime = len({m.runtime for m in rows}) > 1
    # Neighbours along the x axis get labels at different heights, so equal accuracies stay readable.
    lift = {i: (6, -12, 18, -24)[rank % 4] for rank, i in enumerate(sorted(range(len(rows)), key=lambda j: pts[j]))}
    fig, ax = _figure(4.2)
    for i, m in enumerate(rows):
        area = 40 + 600 * sizes[i] / biggest
        on_front = i in front
        marker = "*" if m.role == "source" else "o"
        ax.scatter(pts[i][0], pts[i][1], s=area, marker=marker, alpha=0.85 if on_front else 0.45,
                   color="#d1495b" if on_front else "#8d99ae", edgecolors="black" if on_front else "none",
                   linewidths=1.0, zorder=3)
        ax.annotate(label(m, with_runtime), pts[i], textcoords="offset points", xytext=(6, lift[i]), fontsize=7)
    line = sorted(pts[i] for i in front)
    if len(line) > 1:
        ax.step([p[0] for p in line], [p[1] for p in line], where="post", color="#d1495b", lw=1, zorder=2,
                label="Pareto front")
        ax.legend(loc="lower right", fontsize=7)
    xs = [p[0] for p in pts]
    if min(xs) > 0 and max(xs) / min(xs) > 20:  # a TensorFlow reference next to tiny TFLite models
        ax.set_xscale("log")
    ax.set_xlabel("p90 latency (ms)" + (" — some estimated" if any(m.estimated for m in rows) else ""))
    ax.set_ylabel("accuracy")
    ax.set_title(plain(f"{target}: accuracy vs p90 (marker area ∝ size on disk)"), fontsize=9)
    ax.grid(alpha=0.3)
    ax.margins(0.15)
    return _png(fig)


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
    fig, ax = _figure(1.0 + 0.35 * len(names))
    ys = range(len(names))
    ax.barh([y - 0.2 for y in ys], raw, height=0.4, color="#2e86ab", label="raw")
    ax.barh([y + 0.2 for y in ys], gz, height=0.4, color="#f6ae2d", label="gzip")
    ax.set_yticks(list(ys), [plain(n) for n in names], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("size (KB)")
    ax.set_title("size on disk: raw vs gzip", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def latency_png(results: list[Measurement], target: str) -> str | None:
    """Box plot of the raw latency samples of each (artifact, runtime) on one target."""
    rows = [m for m in results if m.status == "ok" and len(m.samples_ms) > 0]
    if not rows:
        return None
    with_runtime = len({m.runtime for m in rows}) > 1
    data = [m.samples_ms for m in rows]
    fig, ax = _figure(1.0 + 0.4 * len(rows))
    # Whiskers at p1/p99 and no fliers: tens of thousands of samples would draw a smear of dots.
    style: dict[str, Any] = {"whis": (1, 99), "showfliers": False, "widths": 0.6}
    try:
        ax.boxplot(data, orientation="horizontal", **style)
    except TypeError:  # matplotlib < 3.10 spells it vert=False
        ax.boxplot(data, vert=False, **style)
    ax.set_yticks(range(1, len(rows) + 1), [label(m, with_runtime) for m in rows])
    lo = min(min(d) for d in data)
    hi = max(max(d) for d in data)
    if lo > 0 and hi / lo > 20:  # a fp32 model next to an int8 one squashes every box on a linear axis
        ax.set_xscale("log")
    ax.tick_params(axis="y", labelsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("latency per inference (ms): box p25-p75, line p50, whiskers p1-p99")
    ax.set_title(plain(f"{target}: latency distribution"), fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)
