"""report.html and the Markdown front of `edgeopt optimize`, from a front.json-shaped document."""

from __future__ import annotations

import re

from edgeopt.render.optimize import front_rows, scatter_svg, to_html, to_markdown


def doc(best: bool = True) -> dict:
    cands = [
        {"trial": 0, "state": "complete", "label": "no student · int8", "accuracy": 0.95, "p90_ms": 2.0,
         "size_bytes": 20_000, "meets_all": True, "meets": {"max_p90_ms": True}, "measured": "bench",
         "estimated": True, "recipe": {"stages": [{"convert": {"tflite": ["int8"]}}]}, "misses": []},
        {"trial": 1, "state": "complete", "label": "no student · fp32 <b>", "accuracy": 0.97, "p90_ms": 6.0,
         "size_bytes": 80_000, "meets_all": False, "meets": {"max_p90_ms": False}, "measured": "bench",
         "estimated": True, "recipe": {"stages": []}, "misses": ["p90_ms 6 ms > max 3 ms"]},
        {"trial": 2, "state": "pruned", "label": "student", "pruned": "stage 'distill' lost 0.3"},
    ]
    return {"target": "rpi4", "latency": "estimate", "latency_why": "not reachable", "scored_on": "validation split",
            "trials": {"total": 3, "complete": 2, "pruned": 1}, "space_size": 8, "sampler": "tpe",
            "budgets": {"targets": {"rpi4": {"max_p90_ms": 3.0, "min_accuracy": {"limit": 0.9, "level": "warn"}}}},
            "front": [0, 1], "candidates": cands, "dimensions": {"student": ["none"]},
            "best": {"trial": 0, "label": "no student · int8", "test": {"accuracy": 0.94, "p90_ms": 2.0,
                                                                        "size_bytes": 20_000, "estimated": True}}
            if best else None,
            "closest": [] if best else [{"trial": 1, "label": "fp32", "misses": ["p90_ms 6 ms > max 3 ms"]}]}


def test_front_rows_best_accuracy_first():
    assert [r["trial"] for r in front_rows(doc())] == [1, 0]


def test_the_scatter_is_inline_svg_with_a_tooltip_per_candidate():
    svg = scatter_svg(doc())
    assert svg.startswith("<svg") and svg.count('class="candidate"') == 2  # the pruned one has nothing to plot
    titles = re.findall(r"<title>(.*?)</title>", svg, re.S)
    assert any("trial 0 (best)" in t and "convert" in t for t in titles)
    assert "&lt;b&gt;" in svg and "<b>" not in svg  # labels are escaped
    assert "max_p90_ms 3.0 ms" in svg  # the budget line


def test_the_page_works_offline_and_says_the_answer():
    page = to_html(doc())
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page
    assert "Best: trial 0" in page and "(estimated)" in page
    missed = to_html(doc(best=False))
    assert "No candidate meets every budget" in missed and "p90_ms 6 ms &gt; max 3 ms" in missed


def test_markdown_front_and_verdict():
    md = to_markdown(doc(best=False))
    assert "| trial |" in md and "misses max\\_p90\\_ms" in md and "latency estimated" in md and "- trial 1 (fp32): p90_ms 6 ms > max 3 ms" in md
