"""A candidate's judgement by the gate (constraints, misses), the screening rule and the early size prune."""

from __future__ import annotations

from edgeopt.core.report import Latency, Measurement
from edgeopt.optimize import candidate as cand
from edgeopt.verdict.budgets import Budgets


def m(acc=0.9, p90=2.0, size=50_000, **kw) -> Measurement:
    r = Measurement(artifact="tiny_int8.tflite", format="tflite", precision="int8", target="rpi4", runtime="litert",
                    status="ok", accuracy=acc, size_bytes=size, **kw)
    if p90 is not None:
        r.latency_ms = Latency(p50=p90, p90=p90, p99=p90, mean=p90, std=0.0, n=0)
        r.estimated = True
    return r


SOURCE = Measurement(artifact="tiny_source.keras", format="keras", precision="fp32", target="rpi4", runtime="tf",
                     status="ok", role="source", accuracy=0.92, size_bytes=400_000)
BUDGETS = Budgets.from_dict({"targets": {"rpi4": {"max_size_kb": 100, "max_p90_ms": 4, "max_accuracy_drop": 0.05,
                                                  "artifacts": {"*_fp32": {"max_size_kb": 1}}},
                                         "x86-cpu": {"max_size_kb": 1}}})


def test_a_candidate_within_every_budget():
    j = cand.judge(m(), SOURCE, BUDGETS)
    assert j["meets_all"] and not j["misses"] and max(j["constraints"]) == 0.0
    assert set(j["meets"]) == {"max_size_kb", "max_p90_ms", "max_accuracy_drop"}  # other targets/selectors: not its


def test_misses_give_relative_constraints_and_messages():
    j = cand.judge(m(acc=0.8, p90=6.0, size=150 * 1024), SOURCE, BUDGETS)
    assert not j["meets_all"] and len(j["misses"]) == 3
    c = dict(zip(cand.CONSTRAINTS, j["constraints"], strict=True))
    assert c["max_size_kb"] == 0.5 and c["max_p90_ms"] == 0.5 and round(c["max_accuracy_drop"], 6) == 1.4
    assert cand.promising(j, 1.25) is False


def test_screening_ignores_what_cannot_be_checked_yet():
    j = cand.judge(m(p90=None), SOURCE, BUDGETS)  # no latency estimate (a target without a calibration)
    assert j["unknown"] == ["max_p90_ms"] and not j["meets_all"]
    assert cand.promising(j, 1.25)
    near = cand.judge(m(size=110 * 1024), SOURCE, BUDGETS)  # 10 % over: worth measuring
    assert cand.promising(near, 1.25) and not cand.promising(near, 1.05)


def test_size_floor_prunes_before_training():
    assert cand.size_limit_kb(BUDGETS, "rpi4") == 100
    assert cand.size_limit_kb(Budgets.from_dict({"targets": {"*": {"max_size_kb": {"limit": 5, "level": "warn"}}}}),
                              "rpi4") is None
    assert cand.hopeless_size(200_000, "int8", 100) is not None  # 195 KB of int8 weights
    assert "800,000 weights (at least) as fp32" in cand.hopeless_size(800_000, "fp32", 100)
    assert cand.weights_of(None, 400_000, None, channel=0.5) == 100_000  # (1 - 0.5)² of the source's
    assert cand.hopeless_size(50_000, "int8", 100) is None and cand.hopeless_size(10**9, "fp32", None) is None


def test_pre_check_limits_follow_the_gates_precedence():
    """The limit a pre-check prunes by is one no artifact escapes, by the gate's precedence."""
    def limit(targets: dict, key: str = "max_size_kb", target: str = "rpi4"):
        return cand.error_limit(Budgets.from_dict({"targets": targets}), target, key)

    # the target's own warn-level limit overrides an error one under "*" (the gate only warns)
    assert limit({"*": {"max_size_kb": 5}, "rpi4": {"max_size_kb": {"limit": 9, "level": "warn"}}}) is None
    assert limit({"*": {"max_size_kb": 5}, "rpi4": {"max_p90_ms": 2}}) == 5  # "*" holds where the target is silent
    assert limit({"*": {"max_size_kb": 5}, "rpi4": {"level": "warn", "max_size_kb": 7}}) is None  # block level
    # artifacts: selectors may hold some artifacts to a looser limit (the loosest counts), or only warn
    assert limit({"rpi4": {"max_size_kb": 100, "artifacts": {"*_int8*": {"max_size_kb": 150}}}}) == 150
    assert limit({"rpi4": {"max_size_kb": 100, "artifacts": {"*_int8*": {"max_size_kb": 50}}}}) == 100
    assert limit({"rpi4": {"max_size_kb": 100, "artifacts": {"format=onnx": {"level": "warn", "max_size_kb": 9}}}}) \
        is None
    assert limit({"rpi4": {"artifacts": {"*_int8*": {"max_size_kb": 50}}}}) is None  # others: no limit at all
    assert limit({"rpi4": {"min_accuracy": 0.9, "artifacts": {"*_fp16*": {"min_accuracy": 0.8}}}},
                 "min_accuracy") == 0.8  # a lower bound: the loosest is the smallest


def test_the_accuracy_the_budgets_need_and_the_short_run_rule():
    assert cand.needed_accuracy(BUDGETS, "rpi4", 0.92) == 0.92 - 0.05
    assert cand.needed_accuracy(BUDGETS, "rpi4", None) is None  # no source figure: no drop to judge
    assert cand.needed_accuracy(BUDGETS, "x86-cpu", 0.92) is None  # asks no accuracy
    both = Budgets.from_dict({"targets": {"*": {"min_accuracy": 0.9, "max_accuracy_drop": 0.05}}})
    assert cand.needed_accuracy(both, "rpi4", 0.92) == 0.9  # the stricter of the two
    warn = Budgets.from_dict({"targets": {"rpi4": {"min_accuracy": {"limit": 0.99, "level": "warn"}}}})
    assert cand.needed_accuracy(warn, "rpi4", 0.92) is None
    short = {"accuracy": 0.5, "epochs": 5}
    why = cand.hopeless_accuracy(short, 0.3, 0.87, 30)
    assert why and "0.5000 after 5 of 30 distillation epochs" in why and "0.8700" in why
    assert cand.hopeless_accuracy(short, 0.4, 0.87, 30) is None  # 0.9 could still reach it
    assert cand.hopeless_accuracy(short, 0.0, None, 30) is None
