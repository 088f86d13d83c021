"""Baseline comparison: noise is not a regression, a real slowdown is; size, accuracy, estimates."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.core.report import Latency, Measurement, Report
from edgeopt.errors import UsageError
from edgeopt.verdict.budgets import RegressionRules
from edgeopt.verdict.compare import compare, compare_latency

RULES = RegressionRules()
SIGMA = 0.15  # log-normal spread of single-inference latencies seen on this machine
N = 200
TRIALS = 200


def _m(samples=None, *, name="model_int8", size=80_000, acc=0.9, estimated=False, status="ok", role="artifact",
       p50=None):
    samples = [] if samples is None else [float(x) for x in samples]
    lat = Latency.from_samples(samples) if samples else (Latency(p50=p50, p90=p50, p99=p50, mean=p50, std=0.0, n=0) if p50 else None)
    return Measurement(artifact=name, format="tflite", precision="int8", target="x86-cpu", runtime="litert", status=status, role=role, size_bytes=size,
                       accuracy=acc, latency_ms=lat, samples_ms=samples, estimated=estimated)


def _lognormal(rng, median_ms, n=N):
    return rng.lognormal(np.log(median_ms), SIGMA, n)


def _flag_rate(shift, seed):
    rng = np.random.default_rng(seed)
    flagged = 0
    for _ in range(TRIALS):
        old, new = _m(_lognormal(rng, 2.0)), _m(_lognormal(rng, 2.0 * shift))
        flagged += compare_latency(old, new, RULES).verdict == "regressed"
    return flagged / TRIALS


def test_same_distribution_is_flagged_at_most_1_percent():
    assert _flag_rate(1.0, seed=0) <= 0.01


def test_20_percent_slowdown_is_flagged_at_least_99_percent():
    assert _flag_rate(1.2, seed=1) >= 0.99


def test_small_but_significant_change_is_not_flagged():
    rng = np.random.default_rng(2)
    old, new = _m(_lognormal(rng, 2.0, 5000)), _m(_lognormal(rng, 2.06, 5000))  # +3%: real, but small

    c = compare_latency(old, new, RULES)

    assert c.p_value < RULES.alpha
    assert c.verdict == "unchanged"


def test_large_but_not_significant_change_is_not_flagged():
    c = compare_latency(_m([1.0, 5.0, 1.2]), _m([1.5, 5.2, 1.4]), RULES)  # +25% p50 on three noisy samples

    assert c.change > RULES.p50
    assert c.p_value >= RULES.alpha
    assert c.verdict == "unchanged" and "not significant" in c.note


def test_faster_is_improved_not_regressed():
    rng = np.random.default_rng(3)

    c = compare_latency(_m(_lognormal(rng, 2.0)), _m(_lognormal(rng, 1.5)), RULES)

    assert c.verdict == "improved"
    assert c.change == pytest.approx(-0.25, abs=0.05)


def test_identical_samples_do_not_crash():
    c = compare_latency(_m([1.0] * 50), _m([1.0] * 50), RULES)

    assert c.p_value == 1.0 and c.verdict == "unchanged"


def test_estimated_compared_only_with_estimated():
    measured, est_old, est_new = _m([1.0, 1.1, 1.2]), _m(p50=1.0, estimated=True), _m(p50=1.3, estimated=True)

    mixed = compare_latency(measured, est_new, RULES)
    both = compare_latency(est_old, est_new, RULES)

    assert mixed.verdict == "not compared" and "estimated" in mixed.note
    assert both.verdict == "regressed" and both.p_value is None and both.change == pytest.approx(0.3)


def _report(*results, version=1):
    return Report(environment={}, results=list(results), schema_version=version)


def test_size_uses_exact_relative_tolerance():
    old = _report(_m(size=100_000))

    assert [c.verdict for c in compare(_report(_m(size=100_001)), old) if c.metric == "size_bytes"] == ["regressed"]
    assert [c.verdict for c in compare(_report(_m(size=100_000)), old) if c.metric == "size_bytes"] == ["unchanged"]
    loose = RegressionRules(size=0.01)
    assert [c.verdict for c in compare(_report(_m(size=101_000)), old, loose) if c.metric == "size_bytes"] == \
        ["unchanged"]
    assert [c.verdict for c in compare(_report(_m(size=101_001)), old, loose) if c.metric == "size_bytes"] == \
        ["regressed"]


def test_accuracy_uses_absolute_drop():
    old = _report(_m(acc=0.900))

    def verdict(acc):
        return [c.verdict for c in compare(_report(_m(acc=acc)), old) if c.metric == "accuracy"][0]

    assert verdict(0.895) == "unchanged"  # exactly the 0.005 tolerance
    assert verdict(0.894) == "regressed"
    assert verdict(0.910) == "improved"


def test_other_schema_version_is_a_usage_error():
    with pytest.raises(UsageError, match="schema_version 2"):
        compare(_report(_m()), _report(_m(), version=2))


def test_failed_now_and_missing_now():
    baseline = _report(_m(name="a"), _m(name="b"))
    report = _report(_m(name="a", status="failed"))

    by_metric = {(c.artifact, c.metric): c for c in compare(report, baseline)}

    assert by_metric[("a", "status")].verdict == "regressed"
    assert by_metric[("b", "presence")].verdict == "missing"


def test_source_model_changes_are_shown_but_not_gating():
    rng = np.random.default_rng(4)
    old = _report(_m(_lognormal(rng, 2.0), name="model", role="source"))
    new = _report(_m(_lognormal(rng, 3.0), name="model", role="source"))

    (lat,) = [c for c in compare(new, old) if c.metric == "p50_ms"]

    assert lat.verdict == "regressed" and not lat.regressed
    assert "reference" in lat.note
