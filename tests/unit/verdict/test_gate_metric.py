"""The gate's task-metric budgets: min_metric / max_metric / max_metric_drop, named for the report's metric, with a
lower-is-better metric's drop being its rise."""

from __future__ import annotations

from edgeopt.verdict.budgets import Budgets
from edgeopt.verdict.gate import check
from tests.unit.verdict.sample import measurement, report_of


def _regression_report():
    kw = {"task": "regression", "metric": "mae", "lower_is_better": True, "acc": None}
    return report_of(measurement("m", "keras", role="source", runtime="tf", metric_value=0.30, **kw),
                     measurement("m_fp32", metric_value=0.30, **kw),
                     measurement("m_int8", precision="int8", metric_value=0.36, **kw))


def test_max_metric_drop_on_a_lower_is_better_metric_is_its_rise():
    v = check(_regression_report(), Budgets.from_dict({"targets": {"x86-cpu": {"max_metric_drop": 0.05}}}))
    by = {c.artifact: c for c in v.checks}
    assert by["m_fp32"].passed and by["m_fp32"].metric == "mae_drop" and by["m_fp32"].measured == 0.0
    assert not by["m_int8"].passed and abs(by["m_int8"].measured - 0.06) < 1e-9
    assert "0.3000 -> 0.3600" in by["m_int8"].message and "lower is better" in by["m_int8"].message
    assert v.exit_code == 1


def test_min_and_max_metric_name_the_metric():
    rep = _regression_report()
    v = check(rep, Budgets.from_dict({"targets": {"x86-cpu": {"max_metric": 0.33}}}))
    assert [(c.artifact, c.metric, c.passed) for c in v.checks] == [("m_fp32", "mae", True), ("m_int8", "mae", False)]
    assert v.recommendations[0].artifact == "m_fp32"
    f1 = report_of(measurement("s", "keras", role="source", runtime="tf", acc=None, task="multilabel", metric="f1",
                               metric_value=0.8),
                   measurement("a", acc=None, task="multilabel", metric="f1", metric_value=0.78))
    v = check(f1, Budgets.from_dict({"targets": {"x86-cpu": {"min_metric": 0.79, "max_metric_drop": 0.05}}}))
    assert [(c.metric, c.passed) for c in v.checks] == [("f1", False), ("f1_drop", True)]


def test_metric_budget_without_the_metric_says_why():
    rep = report_of(measurement("s", "keras", role="source", runtime="tf", metric_value=None, metric=None),
                    measurement("a", metric_value=None, metric=None))
    (c,) = check(rep, Budgets.from_dict({"targets": {"x86-cpu": {"min_metric": 0.5}}})).checks
    assert not c.passed and "not measured" in c.message


def test_classification_keeps_its_accuracy_checks_and_top1_is_the_metric():
    rep = report_of(measurement("s", "keras", role="source", runtime="tf", acc=0.92),
                    measurement("a", acc=0.90))
    v = check(rep, Budgets.from_dict({"targets": {"x86-cpu": {"max_accuracy_drop": 0.01, "max_metric_drop": 0.01}}}))
    assert [(c.metric, c.passed) for c in v.checks] == [("accuracy_drop", False), ("top1_drop", False)]
    assert v.checks[0].measured == v.checks[1].measured


def test_a_task_metric_that_worsens_against_the_baseline_regresses():
    kw = {"task": "regression", "metric": "mae", "lower_is_better": True, "acc": None}
    old = report_of(measurement("m_int8", precision="int8", metric_value=0.30, **kw),
                    measurement("m_fp32", metric_value=0.30, **kw))
    new = report_of(measurement("m_int8", precision="int8", metric_value=0.36, **kw),  # mae rose: worse
                    measurement("m_fp32", metric_value=0.29, **kw))  # mae fell: better
    v = check(new, baseline=old)
    by = {c.artifact: c for c in v.comparisons if c.metric == "mae"}
    assert by["m_int8"].verdict == "regressed" and abs(by["m_int8"].change - 0.06) < 1e-9
    assert by["m_fp32"].verdict == "improved"
    failed = [c for c in v.checks if c.metric == "regression_mae" and not c.passed]
    assert [c.artifact for c in failed] == ["m_int8"] and v.exit_code == 1
    assert "mae 0.3000 -> 0.3600 (+0.0600)" in failed[0].message and "lower is better" in failed[0].message
    loose = check(new, Budgets.from_dict({"regression": {"metric": 0.1}}), baseline=old)
    assert loose.exit_code == 0


def test_classification_is_judged_by_accuracy_alone_against_a_baseline():
    old = report_of(measurement("m_int8", precision="int8", acc=0.90))
    new = report_of(measurement("m_int8", precision="int8", acc=0.80))
    v = check(new, baseline=old)
    assert {c.metric for c in v.comparisons} == {"p50_ms", "size_bytes", "accuracy"}
