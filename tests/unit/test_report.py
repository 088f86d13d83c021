"""Report: JSON round trip, loading, and the shipped JSON Schema (validated with jsonschema when present)."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest

from edgeopt.core.report import Latency, Measurement, Report, load_report, schema_path, schema_problems
from edgeopt.errors import UsageError

try:  # not a dependency: when present, it cross-checks the schema and the small built-in validator
    import jsonschema
except ImportError:
    jsonschema = None


def _full_measurement(**kw):
    samples = [1.0, 1.1, 1.2, 1.3, 5.0]
    base = dict(artifact="model_int8", format="tflite", precision="int8", target="x86-cpu", runtime="litert",
                status="ok", error=None, path="artifacts/model_int8.tflite", role="artifact",
                stages=["prune", "convert"], size_bytes=81_920, gzip_bytes=40_000, params=12_000,
                nonzero_params=2_400, accuracy=0.905, agreement=0.99, max_abs_diff=0.01,
                latency_ms=Latency.from_samples(samples), samples_ms=samples, init_ms=12.5, first_ms=3.0,
                peak_rss_mb=210.0, threads=4, estimated=False)
    base.update(kw)
    return Measurement(**base)


def _sample_report():
    return Report(environment={"python": "3.11.7", "host": {"cpu": "x86_64", "cores": 16}},
                  results=[_full_measurement(artifact="model", format="keras", precision="fp32", runtime="tf",
                                             role="source", accuracy=0.92),
                           _full_measurement(),
                           _full_measurement(artifact="model_fp16", status="failed", error="boom", latency_ms=None,
                                             samples_ms=[], accuracy=None)],
                  extra={"tuning": {"trials": 3}, "manifests": [{"artifacts": []}]})


def test_latency_from_samples():
    lat = Latency.from_samples([1.0, 2.0, 3.0, 4.0])

    assert (lat.p50, lat.n, lat.mean) == (2.5, 4, 2.5)
    assert lat.std == pytest.approx(1.2910, abs=1e-4)
    assert lat.cv == pytest.approx(lat.std / 2.5)
    with pytest.raises(ValueError):
        Latency.from_samples([])


def test_round_trip_through_json(tmp_path):
    rep = _sample_report()

    again = load_report(rep.save(tmp_path / "report.json"))

    assert again == rep
    assert again.to_dict() == rep.to_dict()


def test_source_for_is_the_ok_source_on_the_same_target():
    rep = _sample_report()
    rep.results.append(_full_measurement(target="rpi4"))

    assert rep.source_for(rep.results[1]).artifact == "model"
    assert rep.source_for(rep.results[-1]) is None


@pytest.mark.parametrize("text, match", [
    ("{", "not valid JSON"),
    ("[]", "not a JSON object"),
    ('{"schema_version": 2, "environment": {}, "results": []}', "schema_version 2"),
    ('{"environment": {}, "results": []}', "schema_version None"),
    ('{"schema_version": 1, "results": [{"artifact": "a", "format": "tflite", "precision": "fp32", '
     '"target": "t", "runtime": "r", "status": "weird"}]}', "malformed"),
])
def test_load_report_refuses_bad_files(tmp_path, text, match):
    p = tmp_path / "report.json"
    p.write_text(text)

    with pytest.raises(UsageError, match=match):
        load_report(p)


def test_load_report_missing_file(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_report(tmp_path / "nope.json")


# --- the JSON Schema ----------------------------------------------------------------------------------

def _schema():
    return json.loads(schema_path().read_text())


def test_schema_is_draft_2020_12_and_names_the_contract():
    s = _schema()

    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert s["required"] == ["schema_version", "environment", "results"]
    result = s["$defs"]["result"]
    assert set(result["required"]) == {"artifact", "format", "precision", "target", "runtime", "status"}
    assert result["properties"]["status"]["enum"] == ["ok", "skipped", "failed"]


def test_schema_describes_every_measurement_field():
    props = set(_schema()["$defs"]["result"]["properties"])

    assert {f.name for f in fields(Measurement)} <= props


def test_sample_report_is_valid():
    data = json.loads(_sample_report().to_json())

    assert schema_problems(data) == []
    if jsonschema is not None:
        jsonschema.Draft202012Validator.check_schema(_schema())
        jsonschema.Draft202012Validator(_schema()).validate(data)


@pytest.mark.parametrize("mutate, problem", [
    (lambda d: d.pop("results"), "top level: missing required key 'results'"),
    (lambda d: d.update(schema_version=2), "schema_version: expected 1"),
    (lambda d: d["results"][0].update(status="weird"), "results[0].status: expected one of ok, skipped, failed"),
    (lambda d: d["results"][1].update(size_bytes="big"), "results[1].size_bytes: expected integer or null"),
    (lambda d: d["results"][1].update(size_bytes=True), "results[1].size_bytes: expected integer or null"),
    (lambda d: d["results"][1].update(accuracy=1.5), "results[1].accuracy: 1.5 is above the maximum 1"),
    (lambda d: d["results"][1]["latency_ms"].pop("p90"), "results[1].latency_ms: missing required key 'p90'"),
    (lambda d: d["results"][1].update(latency_ms=5), "results[1].latency_ms: expected object or null"),
    (lambda d: d["results"][1]["samples_ms"].append("x"), "results[1].samples_ms[5]: expected number"),
    (lambda d: d["results"][2].pop("target"), "results[2]: missing required key 'target'"),
    (lambda d: d["results"][2].update(artifact=""), "results[2].artifact: must not be empty"),
])
def test_schema_problems_name_the_place(mutate, problem):
    data = json.loads(_sample_report().to_json())
    mutate(data)

    problems = schema_problems(data)

    assert problem in problems[0]
    if jsonschema is not None:
        assert not jsonschema.Draft202012Validator(_schema()).is_valid(data)
