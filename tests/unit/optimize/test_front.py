"""front.py on hand-made records: the Pareto front, the best candidate within budget, the closest misses."""

from __future__ import annotations

from edgeopt.optimize import front


def rec(n, acc, p90, size, meets_all=True, measured="bench", constraints=None, **kw):
    return {"trial": n, "state": "complete", "accuracy": acc, "p90_ms": p90, "size_bytes": size,
            "meets_all": meets_all, "measured": measured, "constraints": constraints or [0.0], "label": f"c{n}",
            "misses": [] if meets_all else [f"c{n} misses"], **kw}


def test_pareto_keeps_only_non_dominated():
    recs = [rec(0, 0.9, 2.0, 100), rec(1, 0.95, 3.0, 200), rec(2, 0.89, 2.5, 150),  # 2: dominated by 0
            rec(3, 0.9, 2.0, 100, duplicate_of=0), {"trial": 4, "state": "pruned"}]
    assert front.pareto(recs) == [0, 1]


def test_best_is_the_most_accurate_fully_measured_candidate_within_budget():
    recs = [rec(0, 0.9, 2.0, 100), rec(1, 0.97, 1.0, 50, meets_all=False, constraints=[0.3]),
            rec(2, 0.95, 3.0, 200), rec(3, 0.99, 1.0, 10, measured="screen"), rec(4, 0.95, 2.0, 200)]
    assert front.best(recs)["trial"] == 4  # 0.95 twice: the faster one
    assert front.best([r for r in recs if r["trial"] == 1]) is None


def test_closest_misses_are_ordered_by_summed_relative_miss():
    recs = [rec(0, 0.9, 2.0, 100, meets_all=False, constraints=[0.5, 0.0, -0.2]),
            rec(1, 0.8, 1.0, 50, meets_all=False, constraints=[0.1, 0.1]),
            rec(2, 0.7, 1.0, 50, meets_all=False, constraints=[2.0])]
    got = front.closest(recs, n=2)
    assert [c["trial"] for c in got] == [1, 0]
    assert got[0]["misses"] == ["c1 misses"] and got[0]["miss"] == 0.2
