"""compress's verdict through the CLI as users run it: a stage the accuracy guard stops exits 1 with one line
naming the stage, its figure and the fix; an int8 artifact that misses its tolerance (against the source model)
exits 1 unless --allow-drop; the table shows every model's validation top-1 and its drop from the source."""

from __future__ import annotations

import json
import os
import subprocess
import sys

EDGEOPT = [sys.executable, "-m", "edgeopt.cli"]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", COLUMNS="220")


def run(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*EDGEOPT, *map(str, args)], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=600)


def verdict_lines(proc) -> list[str]:
    assert "Traceback" not in proc.stderr
    return [ln for ln in proc.stderr.splitlines() if ln.startswith("verdict:")]


def test_guard_stops_the_pipeline_exit_1_naming_the_stage(tmp_path, tiny_model_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("max_stage_drop: 0.0\ntrain: {epochs: 1}\nstages:\n"
                      "  - prune: {target_sparsity: 0.95, bn_samples: 0}\n  - convert: {tflite: [fp32], onnx: []}\n")
    proc = run("compress", tiny_model_path, "--data", "digits", "--out", tmp_path / "out", "--recipe", recipe)
    assert proc.returncode == 1, proc.stderr
    (line,) = verdict_lines(proc)
    assert "stage 'prune' lost" in line and "top-1 against the source model" in line
    assert "raise prune.epochs or lower prune.target_sparsity" in line
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["guard"]["verdict"] == "stopped" and manifest["guard"]["stopped_at"] == "prune"
    assert [a["role"] for a in manifest["artifacts"]] == ["source"]
    assert "stopped at prune" in proc.stdout


def test_int8_missing_its_tolerance_exits_1_unless_allow_drop(tmp_path, tiny_model_path):
    from edgeopt.cli.compress import verdict_lines as lines_of
    from edgeopt.core.artifact import load_manifest

    recipe = tmp_path / "r.yaml"
    # prune opens a gap to the source that the guard allows (max_stage_drop 1) but int8's tolerance does not
    recipe.write_text("max_stage_drop: 1.0\ntrain: {epochs: 1}\nstages:\n"
                      "  - prune: {target_sparsity: 0.9, bn_samples: 0}\n"
                      "  - convert: {tflite: [fp32, int8], onnx: [], max_accuracy_drop: 0.0}\n")
    proc = run("compress", tiny_model_path, "--data", "digits", "--out", tmp_path / "out", "--recipe", recipe,
               "--allow-drop")
    assert proc.returncode == 0, proc.stderr
    assert verdict_lines(proc) == []
    cells = [[c.strip() for c in ln.split("│")[1:-1]] for ln in proc.stdout.splitlines() if "│ tiny_" in ln]
    rows = {c[0]: c for c in cells}
    assert rows["tiny_int8.tflite"][-1] == "TOLERANCE NOT MET"
    val, val_drop = rows["tiny_prune.keras"][4:6]  # an intermediate model shows its val top-1 and its drop
    assert float(val) < 1 and float(val_drop) > 0
    m = load_manifest(tmp_path / "out")
    par = next(a for a in m.artifacts if a.precision == "int8").info["parity"]
    assert par["within_tolerance"] is False and par["accuracy_drop"] > 0
    # without --allow-drop the same manifest is a "no": one line naming the artifact and the way out
    (line,) = lines_of(m)
    assert line.startswith("tiny_int8.tflite: TOLERANCE NOT MET") and "--allow-drop" in line
    assert lines_of(m, allow_drop=True) == []
