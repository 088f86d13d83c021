"""`edgeopt demo` on the bundled digits teacher: the product path end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import SAMPLE_MODELS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    if not (SAMPLE_MODELS / "digits_cnn.keras").is_file():
        pytest.fail("sample_models/digits_cnn.keras is missing: run python sample_models/build.py")
    out = tmp_path_factory.mktemp("demo") / "demo"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", COLUMNS="200")
    proc = subprocess.run([sys.executable, "-m", "edgeopt.cli", "demo", "--out", str(out), "--min-seconds", "0.3", "--launches", "2"],
                          capture_output=True, text=True, env=env, timeout=900)
    return out, proc


def test_demo_passes_and_ends_with_the_html_path(demo):
    out, proc = demo
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("HTML report:") and last.endswith("report.html")
    for name in ("report.json", "report.html", "report.md", "verdict.json", "gate.junit.xml", "gate.md",
                 "artifacts/manifest.json"):
        assert (out / name).is_file(), name


def test_demo_report_has_five_ok_artifacts_and_int8_within_two_points(demo):
    out, _ = demo
    results = json.loads((out / "report.json").read_text())["results"]
    ok = {(r["format"], r["precision"]): r for r in results if r["status"] == "ok" and r["role"] == "artifact"}
    assert {("tflite", "fp32"), ("tflite", "fp16"), ("tflite", "dynamic"), ("tflite", "int8"),
            ("onnx", "fp32")} <= set(ok)
    assert ok[("tflite", "int8")]["accuracy"] >= ok[("tflite", "fp32")]["accuracy"] - 0.02
    assert ok[("tflite", "int8")]["gzip_bytes"] < ok[("tflite", "fp32")]["gzip_bytes"] / 2


def test_gate_fails_a_budget_the_demo_cannot_meet(demo, tmp_path):
    out, _ = demo
    impossible = tmp_path / "b.yaml"
    impossible.write_text("targets:\n  x86-cpu: {max_p90_ms: 0.00001, min_accuracy: 0.999}\n")
    proc = subprocess.run([sys.executable, "-m", "edgeopt.cli", "gate", str(out / "report.json"), "--budgets",
                           str(impossible)], capture_output=True, text=True)
    assert proc.returncode == 1
    samples = subprocess.run([sys.executable, "-m", "edgeopt.cli", "gate", str(out / "report.json"), "--budgets",
                              str(SAMPLE_MODELS / "budgets.yaml")], capture_output=True, text=True)
    assert samples.returncode == 0, samples.stdout[-2000:]
