"""The recommendation: only among artifacts that pass every budget; ties inside the measured noise go to the
smallest, then the most accurate; when none passes, which budget the closest ones miss."""

from __future__ import annotations

from edgeopt.core.report import Report
from edgeopt.verdict.budgets import Budgets
from edgeopt.verdict.gate import check
from tests.unit.verdict.launched import launched


def _rep(*results):
    return Report(environment={}, results=list(results))


def _budgets(**limits):
    return Budgets.from_dict({"targets": {"x86-cpu": limits}})


def test_latencies_inside_the_noise_are_a_tie_broken_by_size_then_accuracy():
    # 0.022 / 0.023 / 0.024 ms, each one's launches wandering by about +-14 %: no real difference in speed.
    a = launched([0.022, 0.026, 0.020, 0.024, 0.022], name="a", size=90_000, acc=0.95, seed=1)
    b = launched([0.023, 0.027, 0.021, 0.025, 0.023], name="b", size=40_000, acc=0.93, seed=2)
    c = launched([0.024, 0.028, 0.022, 0.026, 0.024], name="c", size=40_000, acc=0.94, seed=3)

    (rec,) = check(_rep(a, b, c), _budgets(max_size_kb=1000)).recommendations

    assert rec.artifact == "c"  # smallest (b and c), then more accurate
    assert set(rec.tied_with) == {"a", "b"} and "within the measured noise" in rec.describe()


def test_a_difference_beyond_the_noise_is_not_a_tie():
    fast = launched([1.0, 1.01, 0.99, 1.0, 1.0], name="fast", size=90_000, seed=1)
    slow = launched([1.5, 1.51, 1.49, 1.5, 1.5], name="slow", size=10_000, seed=2)

    (rec,) = check(_rep(fast, slow), _budgets(max_size_kb=1000)).recommendations

    assert rec.artifact == "fast" and rec.tied_with == []


def test_only_artifacts_passing_every_budget_are_candidates():
    fast = launched([1.0] * 5, name="fast", size=500_000, seed=1)  # fails max_size_kb
    slow = launched([2.0] * 5, name="slow", size=10_000, seed=2)

    (rec,) = check(_rep(fast, slow), _budgets(max_size_kb=100)).recommendations

    assert rec.artifact == "slow"


def test_under_a_fail_it_says_none_passes_and_what_the_closest_misses():
    near = launched([1.1] * 5, name="near", size=10_000, seed=1)
    far = launched([5.0] * 5, name="far", size=900_000, seed=2)

    v = check(_rep(near, far), _budgets(max_p90_ms=1.0, max_size_kb=100))

    (rec,) = v.recommendations
    assert v.exit_code == 1 and rec.artifact is None
    text = rec.describe()
    assert "no artifact passes every budget" in text
    assert text.index("near misses p90_ms") < text.index("far misses")  # the closest first
    assert "size_kb" in text.split("far misses")[1]
