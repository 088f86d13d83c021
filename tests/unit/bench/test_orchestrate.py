"""Benchmark harness: timing loop rules, fresh worker per artifact, failures isolated, report contract."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest

from edgeopt.bench.ondevice.runner import time_runs


def test_time_runs_meets_both_minimums():
    seen = []
    samples = time_runs(seen.append, lambda: None, pool=list(range(7)), warmup=3, min_runs=20, min_seconds=0.05, max_seconds=5)
    assert len(samples) >= 20
    assert sum(samples) > 0
    assert seen[:3] == [0, 1, 2]  # warm-up first
    assert set(seen[3:]) == set(range(7))  # inputs cycle through the whole pool


def test_time_runs_min_seconds_keeps_going_past_min_runs():
    t0 = time.perf_counter()
    samples = time_runs(lambda x: None, lambda: None, pool=[0], warmup=0, min_runs=1, min_seconds=0.1, max_seconds=5,
                        max_runs=10**9)
    assert time.perf_counter() - t0 >= 0.1
    assert len(samples) > 1


def test_time_runs_caps():
    assert len(time_runs(lambda x: None, lambda: None, [0], 0, 10**9, 10, max_seconds=60, max_runs=123)) == 123
    t0 = time.perf_counter()
    time_runs(lambda x: None, lambda: time.sleep(0.01), [0], 0, 10**9, 100, max_seconds=0.1)
    assert time.perf_counter() - t0 < 1.0


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
                       min_seconds=0, max_seconds=1)
    by = {m.artifact: m for m in report.results}
    assert by["broken.tflite"].status == "failed" and by["broken.tflite"].error
    assert by[good.name].status == "ok"
    saved = json.loads((tmp_path / "r.json").read_text())
    assert [r["status"] for r in saved["results"]] == ["failed", "ok"]


def test_a_hanging_worker_times_out(tmp_path, compressed, digits):
    from edgeopt.bench.devices import local as harness

    out, manifest = compressed
    src = next(out / a.path for a in manifest.artifacts if a.role == "source")
    data = harness.write_inputs(tmp_path, digits.x_test)
    plan = harness.RunPlan(threads=1, warmup=0, min_runs=1, min_seconds=0, max_seconds=1, max_runs=10, timeout_s=0.5)
    raw = harness.run_local(harness.job_for(src, "tf", plan, {}, data, tmp_path / "job"), plan.timeout_s)
    assert raw["status"] == "failed"
    assert "timed out after 0.5 s" in raw["error"]


def test_all_zero_inputs_are_refused(tmp_path):
    from edgeopt.bench.devices import local as harness

    with pytest.raises(ValueError, match="all zeros"):
        harness.write_inputs(tmp_path, np.zeros((10, 8, 8, 1), np.float32))


def test_runner_ships_standalone(tmp_path, compressed, digits):
    """The runner and the two runtime files run from a bare folder, without edgeopt importable."""
    import subprocess
    import sys
    from pathlib import Path

    import edgeopt.bench.ondevice.runner as runner_mod
    import edgeopt.runtimes.litert as lit
    import edgeopt.runtimes.onnxrt as ort_mod

    ship = tmp_path / "ship"
    ship.mkdir()
    for mod in (runner_mod, lit, ort_mod):
        shutil.copy(mod.__file__, ship / Path(mod.__file__).name)
    out, manifest = compressed
    art = next(out / a.path for a in manifest.artifacts if a.format == "onnx")
    from edgeopt.bench.devices import local as harness

    data = harness.write_inputs(tmp_path, digits.x_test[:50])
    plan = harness.RunPlan(threads=1, warmup=1, min_runs=3, min_seconds=0, max_seconds=1, max_runs=10, timeout_s=60)
    job = harness.job_for(art, "onnxruntime", plan, {}, data, tmp_path / "res")
    (tmp_path / "job.json").write_text(json.dumps(job))
    # -S: no site processing, so the editable install's .pth (which makes edgeopt importable) is not read.
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(np.__file__).parent.parent)}
    probe = subprocess.run([sys.executable, "-S", "-c", "import edgeopt"], capture_output=True, env=env, cwd=tmp_path)
    assert probe.returncode != 0  # edgeopt really is out of reach
    proc = subprocess.run([sys.executable, "-S", str(ship / "runner.py"), str(tmp_path / "job.json")], cwd=ship,
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "res" / "result.json").read_text())
    assert result["status"] == "ok", result.get("error")
    assert len(result["samples_ms"]) >= 3


def test_stage_records_reach_the_report(quick_report):
    """The int8 search record (sensitivity, ops kept float) travels from the manifest into the report."""
    _, report = quick_report
    (section,) = report.extra["manifests"].values()
    int8 = next(info for name, info in section["artifacts"].items() if name.endswith("_int8.tflite"))
    assert "int8" in int8
