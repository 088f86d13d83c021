"""The CLI as users run it: real subprocesses, real exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

EDGEOPT = [sys.executable, "-m", "edgeopt.cli"]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", COLUMNS="200")


def run(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*EDGEOPT, *map(str, args)], capture_output=True, text=True, env=ENV, cwd=cwd,
                          timeout=600)


def error_line(proc) -> str:
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_import_is_light():
    code = ("import sys, edgeopt, edgeopt.cli; "
            "print(sorted(m for m in ('tensorflow', 'tf_keras', 'onnxruntime', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_lists_every_command():
    proc = run("--help")
    assert proc.returncode == 0
    for cmd in ("compress", "bench", "gate", "report", "demo", "targets"):
        assert cmd in proc.stdout


@pytest.mark.parametrize("args, needle", [
    (["compress", "missing.keras", "--data", "digits", "--out", "o"], "does not exist"),
    (["compress", "{model}", "--data", "digts", "--out", "o"], "did you mean 'digits'"),
    (["compress", "{model}", "--data", "{npz}", "--out", "o"], "y_test"),
    (["compress", "{corrupt}", "--data", "digits", "--out", "o"], "not a valid .keras"),
    (["compress", "{model}", "--data", "digits", "--out", "o", "--recipe", "{recipe}"], "did you mean 'tflite'"),
    (["bench", "{model}", "--data", "digits", "--out", "r.json", "--target", "x86"], "did you mean 'x86-cpu'"),
    (["compress", "{model}", "--data", "digits", "--out", "o", "--recipe", "{blocks}"], "0 removable residual"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, tiny_model_path, args, needle):
    import numpy as np

    npz = tmp_path / "bad.npz"
    np.savez(npz, x_train=np.ones((4, 8, 8, 1)), y_train=np.zeros(4))
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"PK\x03\x04 truncated")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("stages:\n  - convert: {tflte: [fp32]}\n")
    blocks = tmp_path / "b.yaml"
    blocks.write_text("stages:\n  - prune: {structure: channel, blocks: 1}\n")
    fmt = {"model": tiny_model_path, "npz": npz, "corrupt": corrupt, "recipe": recipe, "blocks": blocks}
    proc = run(*[a.format(**fmt) for a in args], cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert needle in error_line(proc)
    assert not (tmp_path / "o").exists() and not (tmp_path / "r.json").exists()


def test_compress_then_bench_then_report_then_gate(tmp_path, tiny_model_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("stages:\n  - convert: {tflite: [fp32, int8], onnx: [fp32]}\n")
    out = tmp_path / "art"
    proc = run("compress", tiny_model_path, "--data", "digits", "--out", out, "--recipe", recipe)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(a["name"] for a in manifest["artifacts"]) == ["tiny_fp32.onnx", "tiny_fp32.tflite",
                                                                "tiny_int8.tflite", "tiny_source.keras"]
    report = tmp_path / "report.json"
    proc = run("bench", out / "tiny_int8.tflite", out / "tiny_fp32.onnx", "--data", "digits", "--out", report,
               "--threads", "1", "--min-runs", "20", "--min-seconds", "0", "--warmup", "2", "--launches", "2")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(report.read_text())
    assert [r["status"] for r in data["results"]] == ["ok", "ok"]
    assert all(r["threads"] == 1 for r in data["results"])
    assert data["environment"]["targets"]["x86-cpu"]["threads"] == 1

    proc = run("report", report, "--html", tmp_path / "r.html", "--markdown", tmp_path / "r.md")
    assert proc.returncode == 0, proc.stderr
    assert "data:image/png;base64," in (tmp_path / "r.html").read_text()
    assert "tiny\\_int8.tflite | tflite | int8" in (tmp_path / "r.md").read_text()

    loose = tmp_path / "loose.yaml"
    loose.write_text("targets:\n  x86-cpu: {max_size_kb: 1000, min_accuracy: 0.5}\n")
    tight = tmp_path / "tight.yaml"
    tight.write_text("targets:\n  x86-cpu: {max_size_kb: 1}\n")
    typo = tmp_path / "typo.yaml"
    typo.write_text("targets:\n  x86-cpu: {max_size_k: 1}\n")
    assert run("gate", report, "--budgets", loose).returncode == 0
    proc = run("gate", report, "--budgets", tight, "--junit", tmp_path / "j.xml")
    assert proc.returncode == 1
    assert "failure" in (tmp_path / "j.xml").read_text()
    proc = run("gate", report, "--budgets", typo)
    assert proc.returncode == 2
    assert "max_size_kb" in error_line(proc)


def test_task_flag_reaches_compress_and_bench(tmp_path, tiny_model_path):
    # both commands once passed rich's progress-bar id (0) as the task, so --task did nothing
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("stages:\n  - convert: {tflite: [fp32], onnx: []}\n")
    out = tmp_path / "art"
    proc = run("compress", tiny_model_path, "--data", "digits", "--out", out, "--recipe", recipe, "--task", "raw")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "manifest.json").read_text())["source"]["task"] == "raw"
    report = tmp_path / "report.json"
    proc = run("bench", out / "tiny_fp32.tflite", "--data", "digits", "--out", report, "--task", "raw", "--threads",
               "1", "--min-runs", "5", "--min-seconds", "0", "--warmup", "1", "--launches", "1")
    assert proc.returncode == 0, proc.stderr
    assert [r["task"] for r in json.loads(report.read_text())["results"]] == ["raw"]


def test_channel_pruning_shows_macs_and_its_scan_from_compress_to_report(tmp_path, tiny_model_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("train: {epochs: 1}\nmax_stage_drop: 1.0\nstages:\n"
                      "  - prune: {structure: channel, target_sparsity: 0.5}\n  - convert: {tflite: [fp32], onnx: []}\n")
    out = tmp_path / "art"
    proc = run("compress", tiny_model_path, "--data", "digits", "--out", out, "--recipe", recipe)
    assert proc.returncode == 0, proc.stderr
    assert "MMACs" in proc.stdout and "channel pruning: 4 of 8 prunable channels removed; MACs" in proc.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["pruning"]["macs"]["ratio"] > 1.5 and manifest["sensitivity"]["unit"] == "channels"
    report = tmp_path / "report.json"
    proc = run("bench", out, "--data", "digits", "--out", report, "--threads", "1", "--min-runs", "5",
               "--min-seconds", "0", "--warmup", "1", "--launches", "1")
    assert proc.returncode == 0, proc.stderr
    proc = run("report", report, "--markdown", tmp_path / "r.md")
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "r.md").read_text()
    assert "Sensitivity scan of art: channels pruned to 0.5 overall" in md and "| conv2d | 8 |" in md


def test_targets_lists_x86(tmp_path):
    proc = run("targets")
    assert proc.returncode == 0
    assert "x86-cpu" in proc.stdout


@pytest.mark.parametrize("args, needle", [
    (["compress", "x.keras"], "--data"),
    (["bench", "x.tflite", "--data", "digits", "--out", "r.json", "--threads", "0"], "--threads"),
    (["nosuchcommand"], "nosuchcommand"),
])
def test_usage_errors_exit_2_without_traceback(tmp_path, args, needle):
    proc = run(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
