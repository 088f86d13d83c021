"""Report: pydantic models, JSON round trip, loading old files, and the JSON Schema generated from the models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeopt.core.report import (
    Latency,
    Measurement,
    Report,
    json_schema,
    load_report,
    schema_path,
    schema_text,
    write_schema,
)
from edgeopt.errors import UsageError

V1 = Path(__file__).resolve().parents[2] / "data" / "report_v1.json"  # written by edgeopt before the models


def _full_measurement(**kw):
    samples = [1.0, 1.1, 1.2, 1.3, 5.0]
    base = dict(artifact="model_int8", format="tflite", precision="int8", target="x86-cpu", runtime="litert",
                status="ok", error=None, path="artifacts/model_int8.tflite", role="artifact",
                stages=["prune", "convert"], size_bytes=81_920, gzip_bytes=40_000, params=12_000,
                nonzero_params=2_400, accuracy=0.905, agreement=0.99, max_abs_diff=0.01,
                samples_ms=samples, init_ms=12.5, first_ms=3.0, peak_rss_mb=210.0, threads=4, estimated=False)
    base.update(kw)
    return Measurement(**base)


def _sample_report():
    return Report(environment={"python": "3.11.7", "host": {"cpu": "x86_64", "cores": 16}},
                  results=[_full_measurement(artifact="model", format="keras", precision="fp32", runtime="tf",
                                             role="source", accuracy=0.92),
                           _full_measurement(),
                           _full_measurement(artifact="model_fp16", status="failed", error="boom", samples_ms=[],
                                             accuracy=None),
                           _full_measurement(artifact="model_est", samples_ms=[], estimated=True,
                                             latency_ms=Latency(p50=2.0, p90=2.0, p99=2.0, mean=2.0, std=0.0, n=0))],
                  tuning={"trials": 3}, manifests=[{"artifacts": []}])  # sections stages add: extra keys


def test_round_trip_through_json(tmp_path):
    rep = _sample_report()

    again = load_report(rep.save(tmp_path / "report.json"))

    assert again == rep
    assert again.to_json() == rep.to_json()
    assert list(json.loads(rep.to_json())) == ["schema_version", "environment", "results", "tuning", "manifests"]


def test_latency_is_derived_from_the_samples_never_a_stored_copy():
    m = _full_measurement(latency_ms=Latency(p50=99.0, p90=99.0, p99=99.0, mean=99.0, std=0.0, n=1))

    assert m.latency_ms == Latency.from_samples([1.0, 1.1, 1.2, 1.3, 5.0])
    m.samples_ms = [3.0, 4.0]
    assert (m.latency_ms.p50, m.latency_ms.n) == (3.5, 2)
    assert json.loads(m.model_dump_json(by_alias=True))["latency_ms"]["p50"] == 3.5


def test_without_samples_the_given_latency_stands():
    est = _full_measurement(samples_ms=[], estimated=True)
    assert est.latency_ms is None
    est.latency_ms = Latency(p50=2.0, p90=2.0, p99=2.0, mean=2.0, std=0.0, n=0)

    assert est.latency_ms.p90 == 2.0
    assert est.model_dump(by_alias=True)["latency_ms"]["n"] == 0


def test_an_empty_report_in_memory_is_still_a_full_file():
    assert json.loads(Report().to_json()) == {"schema_version": 1, "environment": {}, "results": []}


def test_source_for_is_the_ok_source_on_the_same_target():
    rep = _sample_report()
    rep.results.append(_full_measurement(target="rpi4"))

    assert rep.source_for(rep.results[1]).artifact == "model"
    assert rep.source_for(rep.results[-1]) is None


# --- files written before the models ------------------------------------------------------------------

def _keys(node):
    if isinstance(node, dict):
        return {k: _keys(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_keys(v) for v in node]
    return type(node).__name__


def test_a_report_written_by_the_dataclass_code_loads_and_round_trips(tmp_path):
    original = json.loads(V1.read_text())

    rep = load_report(V1)
    written = json.loads(rep.to_json())

    assert _keys(written) == _keys(original)  # same keys, same order, same JSON types
    for old, new in zip(original["results"], written["results"], strict=True):
        assert {k: v for k, v in new.items() if k != "latency_ms"} == {k: v for k, v in old.items() if k != "latency_ms"}
        # latency_ms is re-derived from the (5-decimal) samples the file keeps: equal to well under a microsecond
        assert new["latency_ms"] == pytest.approx(old["latency_ms"], abs=1e-5)
        assert new["latency_ms"]["n"] == len(old["samples_ms"])
    assert {k: v for k, v in written.items() if k != "results"} == {k: v for k, v in original.items() if k != "results"}
    assert load_report(rep.save(tmp_path / "again.json")) == rep


# --- refusing bad files -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, match", [
    ("{", "not valid JSON"),
    ("[]", "not a JSON object"),
    ('{"schema_version": 2, "environment": {}, "results": []}', "schema_version 2"),
    ('{"environment": {}, "results": []}', "schema_version None"),
    ('{"schema_version": 1, "environment": {}, "results": [{"artifact": "a", "format": "tflite", "precision": "fp32", '
     '"target": "t", "runtime": "r", "status": "weird"}]}', "does not match the report schema"),
])
def test_load_report_refuses_bad_files(tmp_path, text, match):
    p = tmp_path / "report.json"
    p.write_text(text)

    with pytest.raises(UsageError, match=match):
        load_report(p)


def test_load_report_missing_file(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_report(tmp_path / "nope.json")


@pytest.mark.parametrize("mutate, problem", [
    (lambda d: d.pop("results"), "top level: missing required key 'results'"),
    (lambda d: d.pop("environment"), "top level: missing required key 'environment'"),
    (lambda d: d["results"][0].update(status="weird"), "results[0].status: expected one of ok, skipped, failed"),
    (lambda d: d["results"][0].update(role="teacher"), "results[0].role: expected one of artifact, source"),
    (lambda d: d["results"][1].update(size_bytes="big"), "results[1].size_bytes: expected integer or null, got str"),
    (lambda d: d["results"][1].update(size_bytes=True), "results[1].size_bytes: expected integer or null"),
    (lambda d: d["results"][1].update(size_bytes=-1), "results[1].size_bytes: -1 is below the minimum 0"),
    (lambda d: d["results"][1].update(accuracy=1.5), "results[1].accuracy: 1.5 is above the maximum 1"),
    (lambda d: d["results"][1]["latency_ms"].pop("p90"), "results[1].latency_ms: missing required key 'p90'"),
    (lambda d: d["results"][1].update(latency_ms=5), "results[1].latency_ms: expected object or null"),
    (lambda d: d["results"][1]["samples_ms"].append("x"), "results[1].samples_ms[5]: expected number, got str"),
    (lambda d: d["results"][2].pop("target"), "results[2]: missing required key 'target'"),
    (lambda d: d["results"][2].update(artifact=""), "results[2].artifact: must not be empty"),
    (lambda d: d.update(environment=[]), "environment: expected object"),
])
def test_schema_problems_name_the_place(tmp_path, mutate, problem):
    data = json.loads(_sample_report().to_json())
    mutate(data)
    (tmp_path / "r.json").write_text(json.dumps(data))

    with pytest.raises(UsageError) as e:
        load_report(tmp_path / "r.json")

    assert f"does not match the report schema: {problem}" in e.value.problem
    assert "\n" not in str(e.value) and e.value.fix


# --- the JSON Schema ----------------------------------------------------------------------------------

def test_shipped_schema_is_the_one_the_models_generate():
    assert schema_path().read_text() == schema_text(), \
        "report.schema.json is stale: run `python -m edgeopt.core.report --write-schema`"


def test_write_schema_writes_the_generated_text(tmp_path):
    assert write_schema(tmp_path / "s.json").read_text() == schema_text()


def test_schema_is_draft_2020_12_and_names_the_contract():
    s = json_schema()

    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert s["required"] == ["schema_version", "environment", "results"]
    assert s["properties"]["schema_version"]["const"] == 1
    result = s["$defs"]["Measurement"]
    assert set(result["required"]) == {"artifact", "format", "precision", "target", "runtime", "status"}
    assert result["properties"]["status"]["enum"] == ["ok", "skipped", "failed"]
    written = set(json.loads(_sample_report().to_json())["results"][0])
    when_not_empty = {"launches", "eval_peak_rss_mb", "group", "task", "metric", "metric_value", "lower_is_better",
                      "metrics"}
    assert set(result["properties"]) == written | when_not_empty
    assert set(s["$defs"]["Latency"]["required"]) == {"p50", "p90", "p99", "mean", "std", "n"}

