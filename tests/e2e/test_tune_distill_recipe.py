"""The training half through the CLI: tune (hyperband, distilled) → distill → convert on the bundled digits
teacher, benchmarked; the report carries the tuning section and the student next to the teacher. Bad training
input exits 2 with one line (the stage-level cases — student/teacher class mismatch and the rest — are unit
tests of the UsageErrors that the CLI turns into that line)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EDGEOPT = [sys.executable, "-m", "edgeopt.cli"]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", COLUMNS="200")
TEACHER = Path(__file__).resolve().parents[2] / "sample_models" / "digits_cnn.keras"

# two-epoch trials are for speed, not accuracy: the accuracy guard is opened so the test reaches bench
RECIPE = """
max_stage_drop: 0.5
train: {epochs: 2, batch_size: 64, lr_schedule: {kind: constant_then_exponential, initial: 0.005, hold_epochs: 1,
        decay_rate: 0.8}}
stages:
  - tune: {model: {zoo: small_cnn, depth: 2}, distill: true, strategy: hyperband, max_epochs: 2, factor: 2,
           cache_dir: CACHE, space: {width: {choice: [0.25, 0.5]}, lr: {float: [0.002, 0.02], sampling: log}}}
  - distill: {temperature: 4.0, alpha: 0.3, epochs: 2}
  - convert: {tflite: [fp32], onnx: []}
"""


def run(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*EDGEOPT, *map(str, args)], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=600)


def error_line(proc) -> str:
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def teacher(tiny_model_path) -> Path:
    return TEACHER if TEACHER.is_file() else tiny_model_path


@pytest.mark.slow
def test_tune_distill_convert_then_bench(tmp_path, teacher):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE.replace("CACHE", str(tmp_path / "cache")))
    out = tmp_path / "out"
    proc = run("compress", teacher, "--data", "digits", "--recipe", recipe, "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    tuning = manifest["tuning"]
    assert tuning["strategy"] == "hyperband" and tuning["distill"] is True
    assert tuning["trials_run"] == 5 and tuning["epochs_spent"] <= 7  # hyperband_plan(2, 2); early stops only cut
    assert {t["hyperparameters"].get("tuner/round") for t in tuning["trials"]} == {0, 1}  # a halving round ran
    assert set(tuning["best_hyperparameters"]) == {"width", "lr"}
    assert tuning["final"]["trained_on"] == "train+val"
    names = [a["name"] for a in manifest["artifacts"]]
    assert names[1:3] == [f"{teacher.stem}_tune.keras", f"{teacher.stem}_distill.keras"]

    report = tmp_path / "report.json"
    proc = run("bench", out, "--data", "digits", "--out", report, "--warmup", "1", "--min-runs", "5",
               "--min-seconds", "0", "--max-seconds", "1", "--launches", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rep = json.loads(report.read_text())
    assert rep["tuning"][out.name]["best_trial"] == tuning["best_trial"]
    assert rep["distillation"][out.name]["teacher"]["params"] > rep["distillation"][out.name]["student"]["params"]
    rows = {r["artifact"]: r for r in rep["results"] if r["status"] == "ok"}
    source, student = rows[f"{teacher.stem}_source.keras"], rows[f"{teacher.stem}_distill.keras"]
    assert student["params"] < source["params"]
    assert student["accuracy"] > 0.5 and source["accuracy"] > 0.5  # side by side in the report
    assert rows[f"{teacher.stem}_fp32.tflite"]["accuracy"] == pytest.approx(student["accuracy"], abs=0.01)


def _sigmoid_teacher(path: Path) -> Path:
    import tf_keras as keras

    inp = keras.Input((8, 8, 1))
    keras.Model(inp, keras.layers.Dense(10, activation="sigmoid")(keras.layers.Flatten()(inp))).save(path)
    return path


@pytest.mark.parametrize("args, recipe, needle", [
    (["tune", "--data", "digits", "--strategy", "grid"], None, "got 'grid'"),
    (["tune", "--data", "digits", "--recipe", "{recipe}"], "stages:\n  - tune: {space: {}}\n", "search space is empty"),
    (["tune", "--data", "digits", "--recipe", "{recipe}"], "stages:\n  - tune: {space: {widht: {choice: [1, 2]}}}\n",
     "did you mean 'width'"),
    (["tune", "--data", "digits", "--chief", "--worker", "0"], None, "--chief and --worker"),
    (["compress", "{teacher}", "--data", "digits", "--out", "o", "--recipe", "{recipe}"],
     "stages:\n  - distill: {student: {zoo: small_cnn}, epochs: 1}\n", "not a class distribution"),
])
def test_bad_training_input_exits_2_with_one_line(tmp_path, tiny_model_path, args, recipe, needle):
    fmt = {"model": tiny_model_path, "recipe": tmp_path / "r.yaml", "teacher": tmp_path / "sigmoid.keras"}
    if recipe:
        (tmp_path / "r.yaml").write_text(recipe)
    if "{teacher}" in args:
        _sigmoid_teacher(tmp_path / "sigmoid.keras")
    proc = run(*[a.format(**fmt) for a in args], cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert needle in error_line(proc)
