"""Malformed reports, baselines and budgets: always a UsageError with a useful line, never a traceback."""

from __future__ import annotations

import copy
import io
import json
import random

import pytest
from rich.console import Console

from edgeopt.cli.verdict import do_gate, do_report
from edgeopt.errors import UsageError

GOOD_RESULT = {"artifact": "model_int8", "format": "tflite", "precision": "int8", "target": "x86-cpu",
               "runtime": "litert", "status": "ok", "size_bytes": 81920, "gzip_bytes": 40000, "accuracy": 0.9,
               "agreement": 0.99, "latency_ms": {"p50": 1.1, "p90": 1.3, "p99": 1.5, "mean": 1.15, "std": 0.1, "n": 5},
               "samples_ms": [1.0, 1.1, 1.2, 1.3, 1.5], "peak_rss_mb": 200.0, "estimated": False}
GOOD = {"schema_version": 1, "environment": {"host": "ci"}, "results": [GOOD_RESULT]}
BUDGETS = "targets:\n  x86-cpu:\n    max_size_kb: 200\n    max_p90_ms: 5\n"


def _console():
    return Console(file=io.StringIO(), width=160)


def _write(tmp_path, name, content):
    p = tmp_path / name
    p.write_text(content if isinstance(content, str) else json.dumps(content))
    return p


@pytest.fixture
def budgets(tmp_path):
    return _write(tmp_path, "budgets.yaml", BUDGETS)


def test_good_inputs_pass(tmp_path, budgets):
    assert do_gate(_write(tmp_path, "r.json", GOOD), budgets, console=_console()) == 0


@pytest.mark.parametrize("content, expected", [
    ("not json at all", "is not valid JSON"),
    ("", "is not valid JSON"),
    ("[1, 2]", "is not a JSON object"),
    ({**GOOD, "schema_version": 2}, "schema_version 2, this edgeopt reads 1"),
    ({**GOOD, "schema_version": "1"}, "schema_version '1'"),
    ({k: v for k, v in GOOD.items() if k != "schema_version"}, "schema_version None"),
    ({**GOOD, "results": []}, "no results"),
    ({**GOOD, "results": "abc"}, "results: expected array"),
    ({**GOOD, "results": [1]}, "results[0]: expected object"),
    ({**GOOD, "results": [{}]}, "results[0]: missing required key 'artifact'"),
    ({**GOOD, "results": [{**GOOD_RESULT, "status": "weird"}]}, "results[0].status: expected one of ok, skipped, failed"),
    ({**GOOD, "results": [{**GOOD_RESULT, "size_bytes": "big"}]}, "results[0].size_bytes: expected integer"),
    ({**GOOD, "results": [{**GOOD_RESULT, "latency_ms": "fast"}]}, "results[0].latency_ms: expected object or null"),
    ({**GOOD, "results": [{**GOOD_RESULT, "latency_ms": {"p50": 1}}]}, "latency_ms: missing required key 'p90'"),
    ({**GOOD, "results": [{**GOOD_RESULT, "samples_ms": [1, None]}]}, "samples_ms[1]: expected number"),
    ({**GOOD, "environment": []}, "environment: expected object"),
])
def test_bad_report_is_a_usage_error(tmp_path, budgets, content, expected):
    report = _write(tmp_path, "report.json", content)

    with pytest.raises(UsageError) as e:
        do_gate(report, budgets, console=_console())

    assert expected in str(e.value)
    assert e.value.fix  # always says what to do
    assert "\n" not in str(e.value)  # one line for the CLI


def test_missing_report(tmp_path, budgets):
    with pytest.raises(UsageError, match="does not exist"):
        do_gate(tmp_path / "nope.json", budgets)


def test_baseline_with_another_schema_version(tmp_path):
    report = _write(tmp_path, "r.json", GOOD)
    baseline = _write(tmp_path, "old.json", {**GOOD, "schema_version": 0})

    with pytest.raises(UsageError) as e:
        do_gate(report, baseline=baseline, console=_console())

    assert str(e.value).startswith("baseline: report ")
    assert "schema_version 0" in str(e.value)


@pytest.mark.parametrize("text, expected", [
    ("targets:\n  x86-cpu:\n    max_p90: 5\n",
     "budgets.yaml: targets.x86-cpu: unknown key 'max_p90' (did you mean 'max_p90_ms'?)"),
    ("targets:\n  x86-cpu:\n    max_p90_ms: fast\n", "budgets.yaml: targets.x86-cpu.max_p90_ms: expected a number"),
    ("targets:\n  x86-cpu:\n    max_size_kb: [1, 2]\n", "targets.x86-cpu.max_size_kb: expected a number"),
    ("targets:\n  x86-cpu:\n    level: fatal\n", "targets.x86-cpu.level: expected one of error, warn"),
    ("regression:\n  alpha: 0\n", "regression.alpha: Input should be greater than 0"),
    ("targets: [\n", "not valid YAML"),
    ("just a string\n", "expected a mapping"),
    ("\n", "is empty"),
])
def test_bad_budgets_are_usage_errors(tmp_path, text, expected):
    report = _write(tmp_path, "r.json", GOOD)

    with pytest.raises(UsageError) as e:
        do_gate(report, _write(tmp_path, "budgets.yaml", text), console=_console())

    assert expected in str(e.value)
    assert "\n" not in str(e.value)


def test_render_refuses_bad_reports_too(tmp_path):
    with pytest.raises(UsageError, match="no results"):
        do_report(_write(tmp_path, "r.json", {**GOOD, "results": []}), html=tmp_path / "r.html")
    with pytest.raises(UsageError, match="expected integer"):
        do_report(_write(tmp_path, "r.json", {**GOOD, "results": [{**GOOD_RESULT, "size_bytes": 1.5}]}))


_JUNK = [None, True, -1, 0, 1.5, "x", "", [], {}, [1, "a"], {"p50": "x"}, float("1e308")]


def _holders(data):
    """Every mapping in the report that damage can hit (re-walked, since earlier damage changes it)."""
    out = [data]
    for r in data.get("results") if isinstance(data.get("results"), list) else []:
        if isinstance(r, dict):
            out.append(r)
            if isinstance(r.get("latency_ms"), dict):
                out.append(r["latency_ms"])
    return [h for h in out if h]


def _mutations(seed, count):
    """Seeded random damage to a good report: drop a key, or swap a value for junk, one to three times."""
    rng = random.Random(seed)
    for _ in range(count):
        data = copy.deepcopy(GOOD)
        data["results"].append(copy.deepcopy({**GOOD_RESULT, "artifact": "model_fp32", "precision": "fp32"}))
        for _ in range(rng.randint(1, 3)):
            holders = _holders(data)
            if not holders:
                break
            holder = rng.choice(holders)
            key = rng.choice(sorted(holder))
            if rng.random() < 0.3:
                del holder[key]
            else:
                holder[key] = copy.deepcopy(rng.choice(_JUNK))
        yield data


@pytest.mark.parametrize("seed", range(4))
def test_random_damage_never_crashes(tmp_path, budgets, seed):
    for i, data in enumerate(_mutations(seed, 50)):
        report = _write(tmp_path, f"r{i}.json", data)
        try:
            code = do_gate(report, budgets, baseline=_write(tmp_path, "old.json", GOOD), console=_console())
        except UsageError as e:
            assert e.problem and e.fix and "\n" not in str(e)
            continue
        assert code in (0, 1), data
