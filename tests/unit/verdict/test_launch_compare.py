"""Launch-level comparison: the change and the noise floor come from launches, not from samples of one process."""

from __future__ import annotations

from edgeopt.core.report import Report
from edgeopt.verdict.budgets import RegressionRules
from edgeopt.verdict.compare import compare, compare_latency
from edgeopt.verdict.gate import check
from tests.unit.verdict.launched import launched

RULES = RegressionRules()  # p50: 10 %


def test_quiet_launches_of_the_same_model_are_unchanged():
    old, new = launched([1.00, 1.02, 0.99, 1.01, 1.00], seed=1), launched([1.01, 0.99, 1.00, 1.02, 1.00], seed=2)

    c = compare_latency(old, new, RULES)

    assert c.verdict == "unchanged" and c.noise < 0.05
    assert "5 vs 5 launches (300 vs 300 samples)" in c.note


def test_a_30_percent_slowdown_on_quiet_launches_is_a_regression():
    old, new = launched([1.00, 1.02, 0.99, 1.01, 1.00], seed=1), launched([1.30, 1.31, 1.29, 1.32, 1.30], seed=2)

    c = compare_latency(old, new, RULES)

    assert c.verdict == "regressed" and abs(c.change - 0.30) < 0.02


def test_noise_above_the_threshold_is_inconclusive_not_a_fail_and_not_a_pass():
    # Launches that wander by +-40 % (a busy machine): the same model, and a slower one, both "cannot tell".
    old = launched([1.0, 1.4, 0.8, 1.2, 1.0], seed=1)
    for new in (launched([1.1, 0.8, 1.5, 1.0, 1.2], seed=2), launched([1.4, 1.8, 1.1, 1.6, 1.3], seed=3)):
        c = compare_latency(old, new, RULES)
        assert c.verdict == "inconclusive" and c.noise > RULES.p50
        assert "above the 10% threshold" in c.note


def test_thousands_of_samples_in_one_noisy_launch_pair_do_not_make_a_regression():
    # Within each launch the samples are tight (spread 1 %): a sample-level test would call the 15 % shift
    # between the overlapping launches significant; launch-level it overlaps.
    old = launched([1.0, 1.1, 1.05, 1.0, 1.08], n=2000, spread=0.01, seed=1)
    new = launched([1.15, 1.02, 1.2, 1.1, 1.25], n=2000, spread=0.01, seed=2)

    assert compare_latency(old, new, RULES).verdict in ("inconclusive", "unchanged")


def test_contended_launches_are_left_out_of_a_stored_baseline_comparison():
    old = launched([1.0, 1.01, 0.99, 1.0, 1.0], seed=1)
    quiet_but_two = launched([1.0, 2.5, 1.01, 2.2, 0.99], contended=(1, 3), seed=2)
    all_busy = launched([1.0, 2.5, 1.01, 2.2, 0.99], contended=(0, 1, 2, 3, 4), seed=3)

    assert compare_latency(old, quiet_but_two, RULES).verdict == "unchanged"
    c = compare_latency(old, all_busy, RULES)
    assert c.verdict == "inconclusive" and "too few uncontended launches" in c.note


def test_paired_launches_cancel_drift_that_hits_both_twins():
    drift = [1.0, 1.6, 0.9, 2.0, 1.3]  # the machine's state per round, shared by the twins of that round
    old = launched(drift, seed=1)
    same = launched([d * 1.01 for d in drift], seed=2)
    slower = launched([d * 1.3 for d in drift], seed=3)

    assert compare_latency(old, same, RULES).verdict == "inconclusive"  # unpaired: the drift is noise
    assert compare_latency(old, same, RULES, paired=True).verdict == "unchanged"
    c = compare_latency(old, slower, RULES, paired=True)
    assert c.verdict == "regressed" and abs(c.change - 0.30) < 0.03 and "paired" in c.note


def _ab(new, old, *, extra=()):
    return Report(environment={}, results=[new, old, *extra])


def test_gate_judges_an_ab_report_new_against_old_without_a_baseline():
    drift = [1.0, 1.5, 0.9, 1.8, 1.2]
    rep = _ab(launched([d * 1.3 for d in drift], group="new", seed=1), launched(drift, group="old", seed=2))

    v = check(rep)

    (lat,) = [c for c in v.comparisons if c.metric == "p50_ms"]
    assert lat.verdict == "regressed" and not v.passed and v.exit_code == 1
    assert {c.artifact for c in v.checks} == {"model_int8"}


def test_inconclusive_exits_0_unless_strict_and_the_renderers_say_why():
    from edgeopt.render.junit import to_junit
    from edgeopt.render.markdown import to_markdown

    rep = Report(environment={}, results=[launched([1.0, 1.5, 0.8, 1.3, 1.1], seed=2)])
    base = Report(environment={}, results=[launched([1.0, 1.4, 0.8, 1.2, 1.0], seed=1)])

    v = check(rep, baseline=base)
    assert v.by_outcome("inconclusive") and v.exit_code == 0 and v.summary().startswith("INCONCLUSIVE")
    md = to_markdown(rep, v)
    assert "Inconclusive" in md and "noise floor" in md and "above the 10% threshold" in md
    xml = to_junit(v)
    assert 'failures="0"' in xml and "INCONCLUSIVE: " in xml and "noise floor" in xml
    strict = check(rep, baseline=base, strict=True)
    assert strict.exit_code == 1 and not strict.passed and 'failures="1"' in to_junit(strict)


def test_compare_of_ab_halves_pairs_by_name():
    new = [launched([1.0] * 3, name=n, group="new", seed=i) for i, n in enumerate("ab")]
    old = [launched([1.0] * 3, name=n, group="old", seed=9 + i) for i, n in enumerate("ab")]
    half_new, half_old = Report(environment={}, results=new + old).split_ab()

    cs = compare(half_new, half_old, RULES, paired=True)

    assert {(c.artifact, c.verdict) for c in cs if c.metric == "p50_ms"} == {("a", "unchanged"), ("b", "unchanged")}
