"""Charts for the HTML report."""

from __future__ import annotations

from edgeopt.render.plots import pareto_front


def test_pareto_front():
    pts = [(1.0, 0.80), (2.0, 0.90), (1.5, 0.85), (3.0, 0.88), (2.5, 0.95), (1.0, 0.70)]

    assert pareto_front(pts) == [0, 2, 1, 4]
