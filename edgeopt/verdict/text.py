"""How the verdict writes values: a metric's value with the unit its name ends in, a change, one line.

The gate writes these into every check's message (verdict.json, JUnit, the PR comment); the renderers
use the same ones for their tables, so a value reads the same everywhere. Nothing here knows a renderer.
"""

from __future__ import annotations

from typing import Any


def fmt_ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f} ms" if v < 1 else f"{v:.2f} ms" if v < 100 else f"{v:,.0f} ms"


def fmt_value(metric: str, v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    if metric.endswith("_kb"):
        return f"{v:,.1f} KB"
    if metric.endswith("_bytes"):
        return f"{v / 1024:,.1f} KB"
    if metric.endswith("_ms"):
        return fmt_ms(v)
    if metric.endswith("_mb"):
        return f"{v:,.1f} MB"
    return f"{v:.4f}"


def fmt_change(metric: str, change: float | None) -> str:
    if change is None:
        return "—"
    return f"{change:+.4f}" if metric.endswith("accuracy") else f"{change:+.1%}"


def one_line(text: Any) -> str:
    return " ".join(str(text).split())
