"""benchmark(): the report contract, agreement against the source model, failures isolated, stage records."""

from __future__ import annotations

import json

import numpy as np
import pytest


def test_report_holds_every_contract_field(quick_report):
    path, report = quick_report
    data = json.loads(path.read_text())
    assert data["schema_version"] == 1
    env = data["environment"]
    for key in ("cpu", "cores", "python", "versions", "targets"):
        assert key in env
    assert {"tensorflow", "ai-edge-litert", "onnxruntime"} <= set(env["versions"])
    keys = {"artifact", "format", "precision", "target", "runtime", "status", "error", "size_bytes", "gzip_bytes",
            "params", "nonzero_params", "accuracy", "agreement", "latency_ms", "samples_ms", "init_ms", "first_ms",
            "peak_rss_mb", "estimated"}
    assert len(data["results"]) == 6
    for r in data["results"]:
        assert keys <= set(r), keys - set(r)
        assert r["status"] == "ok", r["error"]
        assert r["latency_ms"]["n"] == len(r["samples_ms"]) >= 30
        lat = r["latency_ms"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"]
        assert abs(lat["p50"] - float(np.median(r["samples_ms"]))) < 1e-3
        assert r["gzip_bytes"] < r["size_bytes"]
        assert 10 < r["peak_rss_mb"] < (2000 if r["runtime"] == "tf" else 400)
        assert 0.5 < r["accuracy"] <= 1.0
        assert r["init_ms"] > 0 and r["first_ms"] > 0


def test_agreement_is_against_the_source_model(quick_report):
    _, report = quick_report
    by = {m.artifact: m for m in report.results}
    src = next(m for m in report.results if m.role == "source")
    assert report.results[0] is src  # measured first: its outputs are the reference
    assert src.agreement is None
    fp32 = next(m for m in by.values() if m.precision == "fp32" and m.format == "tflite")
    assert fp32.agreement == 1.0 and fp32.accuracy == pytest.approx(src.accuracy)
    # Counted from the flatbuffer vs from Keras: the 8-channel BatchNorm (4×8 values) folds into an 8-value conv bias.
    assert fp32.params == src.params - 4 * 8 + 8


def test_a_broken_artifact_fails_alone(tmp_path, compressed, digits):
    from edgeopt.bench.orchestrate import benchmark
    from edgeopt.bench.targets import load_target

    out, manifest = compressed
    good = next(out / a.path for a in manifest.artifacts if a.precision == "int8")
    bad = tmp_path / "broken.tflite"
    bad.write_bytes(b"TFL3" + b"\x00" * 64)
    report = benchmark([bad, good], [load_target("x86-cpu")], digits, tmp_path / "r.json", warmup=1, min_runs=5,
                       min_seconds=0, max_seconds=1, launches=2)
    by = {m.artifact: m for m in report.results}
    assert by["broken.tflite"].status == "failed" and by["broken.tflite"].error
    assert by[good.name].status == "ok"
    saved = json.loads((tmp_path / "r.json").read_text())
    assert [r["status"] for r in saved["results"]] == ["failed", "ok"]


def test_stage_records_reach_the_report(quick_report):
    """The int8 search record (sensitivity, ops kept float) travels from the manifest into the report."""
    _, report = quick_report
    (section,) = report.extra["manifests"].values()
    int8 = next(info for name, info in section["artifacts"].items() if name.endswith("_int8.tflite"))
    assert "int8" in int8


def test_manifest_sections_are_copied_by_one_rule(tmp_path, compressed):
    """Every section a stage wrote goes under its own name, keyed by folder; per-artifact records under manifests."""
    import shutil

    from edgeopt.bench.orchestrate import _copy_manifest_sections
    from edgeopt.core.report import Report

    out, _ = compressed
    folder = tmp_path / "run1"
    shutil.copytree(out, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(tuning={"best_trial": "3"}, pruning={"achieved_sparsity": 0.5}, my_stage={"x": 1})
    (folder / "manifest.json").write_text(json.dumps(manifest))
    report = Report()
    _copy_manifest_sections(report, folder)
    assert report.extra["tuning"] == {"run1": {"best_trial": "3"}}
    assert report.extra["pruning"] == {"run1": {"achieved_sparsity": 0.5}}
    assert report.extra["my_stage"] == {"run1": {"x": 1}}  # a new stage needs no edit here
    assert set(report.extra["manifests"]["run1"]) == {"artifacts"}
