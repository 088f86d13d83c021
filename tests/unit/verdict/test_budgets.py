"""budgets.yaml: parsing, round trip, selectors, and the error messages a typo gets."""

from __future__ import annotations

import pytest

from edgeopt.errors import UsageError
from edgeopt.verdict.budgets import (
    LIMIT_KEYS,
    Budgets,
    Limit,
    RegressionRules,
    load_budgets,
    parse_selector,
    selector_matches,
)

EXAMPLE = """\
targets:
  x86-cpu:                # target name (or "*" for all targets)
    max_size_kb: 200
    max_p90_ms: 5
    min_accuracy: 0.9
    max_accuracy_drop: 0.02
    max_peak_rss_mb: 800
    artifacts:
      "*_int8": {max_size_kb: 60}
      "format=onnx": {max_p90_ms: 3, level: warn}
regression:
  p50: 0.10
  alpha: 0.01
  size: 0.0
  accuracy: 0.005
"""


def _write(tmp_path, text, name="budgets.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_the_documented_example_loads(tmp_path):
    b = load_budgets(_write(tmp_path, EXAMPLE))

    tb = b.targets["x86-cpu"]
    assert tb.max_size_kb == Limit(limit=200)
    assert tb.max_p90_ms.limit == 5 and tb.level == "error"
    assert tb.max_accuracy_drop.limit == pytest.approx(0.02)
    assert tb.artifacts["*_int8"].max_size_kb.limit == 60
    assert tb.artifacts["format=onnx"].level == "warn"
    assert b.regression == RegressionRules(p50=0.10, alpha=0.01, size=0.0, accuracy=0.005)


@pytest.mark.parametrize("data", [
    {},
    {"targets": {"*": {"max_p99_ms": 10}}},
    {"targets": {"rpi4": {"level": "warn", "max_gzip_kb": 50, "min_agreement": 0.99,
                          "max_p50_ms": {"limit": 4, "level": "error"},
                          "artifacts": {"format=tflite,precision=int8": {"max_size_kb": 40, "level": "warn"},
                                        "role=source": {"max_p90_ms": 100}}}},
     "regression": {"p50": 0.05, "alpha": 0.001, "size": 0.01, "accuracy": 0.0, "level": "warn"}},
])
def test_round_trip(data):
    b = Budgets.from_dict(data)

    again = Budgets.from_dict(b.to_dict())

    assert again == b
    assert again.to_dict() == b.to_dict()


def test_round_trip_of_every_limit_key():
    b = Budgets.from_dict({"targets": {"t": {k: 1 for k in LIMIT_KEYS}}})

    assert Budgets.from_dict(b.to_dict()) == b
    assert list(b.targets["t"].limits()) == list(LIMIT_KEYS)


def test_per_limit_level_is_kept_and_short_form_inherits():
    b = Budgets.from_dict({"targets": {"t": {"level": "warn", "max_p90_ms": {"limit": 5, "level": "error"},
                                             "max_size_kb": 10}}})

    tb = b.targets["t"]
    assert tb.max_p90_ms.level == "error"
    assert tb.max_size_kb.level is None  # inherits the block's warn
    assert b.to_dict()["targets"]["t"] == {"max_size_kb": 10.0, "max_p90_ms": {"limit": 5.0, "level": "error"},
                                           "level": "warn"}


@pytest.mark.parametrize("data, expected", [
    ({"targets": {"x86-cpu": {"max_p90": 5}}},
     "budgets.yaml: targets.x86-cpu: unknown key 'max_p90' (did you mean 'max_p90_ms'?)"),
    ({"targets": {"x86-cpu": {"artifacts": {"*_int8": {"max_sise_kb": 5}}}}},
     "targets.x86-cpu.artifacts.*_int8: unknown key 'max_sise_kb' (did you mean 'max_size_kb'?)"),
    ({"regresion": {}}, "top level: unknown key 'regresion' (did you mean 'regression'?)"),
    ({"regression": {"p90": 0.1}}, "regression: unknown key 'p90' (did you mean 'p50'?)"),
    ({"targets": {"t": {"max_p90_ms": {"limit": 5, "lvl": "warn"}}}},
     "targets.t.max_p90_ms: unknown key 'lvl' (did you mean 'level'?)"),
])
def test_unknown_key_suggests_the_nearest(data, expected):
    with pytest.raises(UsageError) as e:
        Budgets.from_dict(data)

    assert expected in str(e.value)
    assert "valid keys there:" in e.value.fix


@pytest.mark.parametrize("data, where, expected", [
    ({"targets": {"t": {"max_p90_ms": "fast"}}}, "targets.t.max_p90_ms", "expected a number"),
    ({"targets": {"t": {"max_p90_ms": True}}}, "targets.t.max_p90_ms", "expected a number"),
    ({"targets": {"t": {"max_p90_ms": None}}}, "targets.t.max_p90_ms", "expected a number"),
    ({"targets": {"t": {"max_p90_ms": {"limit": "x"}}}}, "targets.t.max_p90_ms.limit", "expected a number"),
    ({"targets": {"t": {"max_size_kb": -1}}}, "targets.t.max_size_kb.limit", "greater than or equal to 0"),
    ({"targets": {"t": {"level": "warning"}}}, "targets.t.level", "expected one of error, warn"),
    ({"targets": {"t": 5}}, "targets.t", "expected a mapping"),
    ({"targets": ["t"]}, "targets", "expected a mapping"),
    ({"regression": {"alpha": 1.5}}, "regression.alpha", "less than 1"),
    ({"regression": {"p50": "10%"}}, "regression.p50", "expected a number"),
])
def test_wrong_type_names_key_and_expected_type(data, where, expected):
    with pytest.raises(UsageError) as e:
        Budgets.from_dict(data)

    assert f"budgets.yaml: {where}: " in e.value.problem
    assert expected in e.value.problem


def test_number_error_suggests_a_fix():
    with pytest.raises(UsageError) as e:
        Budgets.from_dict({"targets": {"t": {"max_p90_ms": "fast"}}})

    assert e.value.fix == "write a number, e.g. max_p90_ms: 5"


def test_bad_selector_is_refused_with_suggestion():
    with pytest.raises(UsageError) as e:
        Budgets.from_dict({"targets": {"t": {"artifacts": {"formt=onnx": {"max_p90_ms": 3}}}}})

    assert "unknown key 'formt' (did you mean 'format'?)" in str(e.value)


def test_selector_parsing():
    assert parse_selector("*_int8") == {"name": "*_int8"}
    assert parse_selector("format=tflite, precision=int8") == {"format": "tflite", "precision": "int8"}
    with pytest.raises(ValueError, match="not key=value"):
        parse_selector("format=onnx,int8")


def test_selector_matching():
    int8 = {"name": "model_int8", "format": "tflite", "precision": "int8", "runtime": "litert", "role": "artifact"}
    src = {"name": "model", "format": "keras", "precision": "fp32", "runtime": "tf", "role": "source"}

    assert selector_matches("*_int8", int8)
    assert selector_matches("format=tflite,precision=int8", int8)
    assert not selector_matches("format=onnx", int8)
    assert not selector_matches("*", src)  # the source model is a reference, not a release candidate
    assert selector_matches("role=source", src)


def test_load_budgets_bad_files(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_budgets(tmp_path / "nope.yaml")
    with pytest.raises(UsageError, match="is empty"):
        load_budgets(_write(tmp_path, ""))
    with pytest.raises(UsageError, match="not valid YAML"):
        load_budgets(_write(tmp_path, "targets: [unclosed\n"))
    with pytest.raises(UsageError, match="expected a mapping"):
        load_budgets(_write(tmp_path, "- a\n- b\n"))


def test_error_names_the_file(tmp_path):
    p = _write(tmp_path, "targets:\n  x86-cpu:\n    max_p90: 5\n", name="ci-budgets.yaml")

    with pytest.raises(UsageError, match=r"^ci-budgets.yaml: targets.x86-cpu: unknown key 'max_p90'"):
        load_budgets(p)
