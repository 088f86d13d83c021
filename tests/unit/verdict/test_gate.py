"""The gate: budgets and baselines -> checks, recommendation, exit code."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgeopt.core.report import Latency, Measurement, Report
from edgeopt.errors import UsageError
from edgeopt.verdict.budgets import LIMIT_KEYS, Budgets, Limit, RegressionRules, TargetBudget
from edgeopt.verdict.gate import Rule, Verdict, check, effective_limits, measured_value
from tests.unit.verdict.sample import measurement, report_of, standard_report


def _budgets(targets, **regression):
    return Budgets.from_dict({"targets": targets, **({"regression": regression} if regression else {})})


def _failed(verdict):
    return [c for c in verdict.checks if c.outcome == "fail"]


def test_check_judges_objects_in_memory_and_touches_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    lat = Latency.from_samples([1.0, 1.1, 1.2, 1.3])
    report = Report(environment={}, results=[
        Measurement(artifact="m_int8", format="tflite", precision="int8", target="x86-cpu", runtime="litert",
                    status="ok", size_bytes=80 * 1024, accuracy=0.9, latency_ms=lat, samples_ms=[]),
        Measurement(artifact="m_fp32", format="tflite", precision="fp32", target="x86-cpu", runtime="litert",
                    status="ok", size_bytes=300 * 1024, accuracy=0.91, latency_ms=lat, samples_ms=[])])
    budgets = Budgets(targets={"x86-cpu": TargetBudget(max_size_kb=Limit(limit=100))},
                      regression=RegressionRules(size=0.05))
    baseline = Report(environment={}, results=[
        Measurement(artifact="m_int8", format="tflite", precision="int8", target="x86-cpu", runtime="litert",
                    status="ok", size_bytes=60 * 1024, accuracy=0.9)])

    v = check(report, budgets, baseline)

    assert isinstance(v, Verdict)
    assert [(c.artifact, c.metric, c.outcome) for c in v.checks] == [
        ("m_int8", "size_kb", "pass"), ("m_fp32", "size_kb", "fail"),
        ("m_int8", "regression_size_bytes", "fail"), ("m_int8", "regression_accuracy", "pass")]
    assert v.checks[2].source == "regression.size" and v.checks[2].measured == pytest.approx(1 / 3)
    assert v.exit_code == 1 and v.recommendations[0].artifact is None
    assert list(tmp_path.iterdir()) == []  # no file written, not even the step summary
    assert capsys.readouterr() == ("", "")  # nothing printed


def test_every_budget_key_is_a_rule_the_gate_can_measure():
    rep = standard_report()
    m = rep.results[1]

    for key in LIMIT_KEYS:
        rule = Rule(key, 1.0, "error", "targets.x86-cpu")
        assert rule.kind in ("max", "min"), key
        value, missing = measured_value(rep, m, rule.metric)
        assert value is not None and not missing, key
        assert rule.holds(1.0)  # a bound holds at the bound, whichever side it limits


def test_all_within_budget_passes_and_recommends_fastest():
    v = check(standard_report(), _budgets({"x86-cpu": {"max_size_kb": 400, "max_p90_ms": 10, "min_accuracy": 0.9}}))

    assert v.exit_code == 0 and v.passed
    assert all(c.passed for c in v.checks)
    (rec,) = v.recommendations
    assert (rec.target, rec.artifact, rec.runtime) == ("x86-cpu", "model_int8", "litert")
    assert "ship model_int8 with litert" in rec.describe()


def test_source_model_is_not_gated_by_target_limits():
    v = check(standard_report(), _budgets({"x86-cpu": {"max_size_kb": 400}}))

    assert {c.artifact for c in v.checks} == {"model_fp32", "model_int8", "model_onnx"}


def test_error_level_failure_exits_1_with_a_useful_message():
    v = check(standard_report(), _budgets({"x86-cpu": {"max_size_kb": 200}}))

    assert v.exit_code == 1
    msgs = [c.message for c in _failed(v)]
    assert len(msgs) == 2
    assert "model_fp32 on x86-cpu (litert): size_kb 300.0 KB > max 200.0 KB [targets.x86-cpu]" in msgs


def test_warnings_never_fail():
    v = check(standard_report(), _budgets({"x86-cpu": {"level": "warn", "max_size_kb": 10}}))

    assert v.exit_code == 0
    assert len(v.warnings) == 3 and not v.failures
    assert "3 warnings" in v.summary()


def test_per_limit_level_overrides_block_level():
    v = check(standard_report(), _budgets({"x86-cpu": {"level": "warn", "max_size_kb": {"limit": 10, "level": "error"},
                                                 "max_p90_ms": 0.1}}))

    assert {c.metric for c in v.failures} == {"size_kb"}
    assert {c.metric for c in v.warnings} == {"p90_ms"}


def test_selector_overrides_target_and_star_target_applies_everywhere():
    b = _budgets({"*": {"max_p99_ms": 50, "max_size_kb": 1000},
                  "x86-cpu": {"max_size_kb": 400, "artifacts": {"*_int8": {"max_size_kb": 60},
                                                                "format=onnx": {"max_p90_ms": 1, "level": "warn"}}}})
    rep = standard_report()
    int8, onnx = rep.results[2], rep.results[3]

    assert effective_limits(b, int8)["max_size_kb"] == Rule("max_size_kb", 60, "error",
                                                             "targets.x86-cpu.artifacts.*_int8")
    assert effective_limits(b, int8)["max_p99_ms"] == Rule("max_p99_ms", 50, "error", "targets.*")
    assert effective_limits(b, onnx)["max_size_kb"] == Rule("max_size_kb", 400, "error", "targets.x86-cpu")
    v = check(rep, b)
    assert [(c.artifact, c.metric) for c in v.failures] == [("model_int8", "size_kb")]
    assert [(c.artifact, c.metric, c.level) for c in v.warnings] == [("model_onnx", "p90_ms", "warn")]
    assert v.recommendations[0].artifact == "model_fp32"  # the only one meeting every budget


def test_accuracy_drop_is_against_the_source_on_the_same_target():
    v = check(standard_report(), _budgets({"x86-cpu": {"max_accuracy_drop": 0.01}}))

    (bad,) = v.failures
    assert bad.artifact == "model_int8"
    assert bad.measured == pytest.approx(0.015)
    assert "(0.9200 -> 0.9050 vs source model)" in bad.message


def test_accuracy_drop_without_a_source_cannot_pass_silently():
    rep = report_of(measurement("model_int8", precision="int8"))

    (bad,) = check(rep, _budgets({"x86-cpu": {"max_accuracy_drop": 0.01}})).failures

    assert "no ok source-model result" in bad.message


def test_unmeasured_metric_fails_the_check():
    rep = standard_report()
    rep.results[1].gzip_bytes = None

    (bad,) = check(rep, _budgets({"x86-cpu": {"max_gzip_kb": 1000}})).failures

    assert bad.artifact == "model_fp32" and "gzip_bytes was not measured" in bad.message


def test_budget_matching_nothing_fails():
    v = check(standard_report(), _budgets({"x86-cpux": {"max_size_kb": 1000},
                                     "x86-cpu": {"artifacts": {"*_int9": {"max_size_kb": 1}}}}))

    msgs = [c.message for c in v.failures]
    assert v.exit_code == 1
    assert any("budget for target 'x86-cpux' matches no result (did you mean 'x86-cpu'?)" in m for m in msgs)
    assert any("selector '*_int9' under target 'x86-cpu' matches no result" in m for m in msgs)


def test_failed_result_under_budget_fails_and_skipped_is_noted():
    rep = standard_report()
    rep.results += [measurement("model_fp16", precision="fp16", status="failed", error="converter crashed\nat line 3"),
                    measurement("model_int16", precision="int16x8", status="skipped", error="runtime not installed")]

    v = check(rep, _budgets({"x86-cpu": {"max_size_kb": 1000}}))

    (bad,) = v.failures
    assert bad.metric == "status" and bad.message == "model_fp16 on x86-cpu (litert): failed: converter crashed at line 3"
    (note,) = [c for c in v.checks if c.outcome == "note"]
    assert note.artifact == "model_int16" and "skipped: runtime not installed" in note.message


def test_estimated_latency_is_marked():
    rep = report_of(measurement("model_int8", estimated=True))

    (c,) = check(rep, _budgets({"x86-cpu": {"max_p90_ms": 100}})).checks

    assert c.passed and "(estimated)" in c.message


def test_recommendation_ties_go_to_the_smallest():
    a = measurement("a", size_kb=200, seed=7)
    b = measurement("b", size_kb=100, seed=7)  # same samples, same p90

    v = check(report_of(a, b), _budgets({"x86-cpu": {"max_size_kb": 1000}}))

    assert v.recommendations[0].artifact == "b"


def test_no_recommendation_when_nothing_meets_every_budget():
    v = check(standard_report(), _budgets({"x86-cpu": {"max_p90_ms": 0.001}}))

    (rec,) = v.recommendations
    assert rec.artifact is None and "nothing to ship" in rec.describe()


def test_report_without_results_is_a_usage_error():
    with pytest.raises(UsageError, match="no results"):
        check(report_of(), _budgets({}))


def test_baseline_regression_fails_and_same_passes():
    old = standard_report()
    same = standard_report()
    slower = report_of(*[measurement(m.artifact, m.format, m.precision, runtime=m.runtime, role=m.role,
                          size_kb=m.size_bytes / 1024, acc=m.accuracy, p50=m.latency_ms.p50 * 1.3, seed=10 + i)
                       for i, m in enumerate(old.results)])

    assert check(same, baseline=old).exit_code == 0
    v = check(slower, baseline=old)
    assert v.exit_code == 1
    assert {c.artifact for c in v.failures} == {"model_fp32", "model_int8", "model_onnx"}  # not the source
    assert all(c.metric == "regression_p50_ms" for c in v.failures)


def test_verdict_to_dict_is_json():
    v = check(standard_report(), _budgets({"x86-cpu": {"max_size_kb": 200}}), baseline=standard_report())

    d = json.loads(json.dumps(v.to_dict()))

    assert d["exit_code"] == 1 and d["passed"] is False
    assert d["counts"]["fail"] == 2
    assert {"target", "artifact", "runtime", "metric", "measured", "limit", "level", "passed", "message",
            "outcome"} <= set(d["checks"][0])
    assert d["regressions"] and d["recommendations"][0]["target"] == "x86-cpu"


def test_importing_gate_is_light():
    code = ("import sys, edgeopt.verdict.gate; heavy = [m for m in ('tensorflow', 'matplotlib', 'scipy') if m in sys.modules];"
            "print(heavy); sys.exit(bool(heavy))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    assert r.returncode == 0, r.stdout + r.stderr
