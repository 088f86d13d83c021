"""Resume through the stage cache: a rerun takes the model stages already made (same bytes), a changed stage
misses from there on, --no-cache neither reads nor writes, a damaged entry is rebuilt, and a compress killed
with SIGKILL during its second stage resumes from the first and ends byte-identical to an uninterrupted run."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeopt.recipe import Recipe

EDGEOPT = [sys.executable, "-m", "edgeopt.cli"]
CONVERT = {"tflite": ["fp32", "int8"], "onnx": ["fp32"], "calibration_samples": 50, "debug_samples": 16}
RECIPE = {"train": {"epochs": 1, "batch_size": 64},
          "stages": [{"prune": {"target_sparsity": 0.5, "epochs": 1, "bn_samples": 256}},
                     {"quantize": {"epochs": 1, "bn_samples": 256}}, {"convert": CONVERT}]}
RECIPE_YAML = """train: {epochs: 1, batch_size: 64}
stages:
  - prune: {target_sparsity: 0.5, epochs: 1, bn_samples: 256}
  - quantize: {epochs: EPOCHS, bn_samples: 256}
  - convert: {tflite: [fp32, int8], onnx: [fp32], calibration_samples: 50, debug_samples: 16}
"""


def digests(out: Path) -> dict[str, str]:
    """sha256 of every artifact (manifest.json apart: it records where each stage came from)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())
            if p.is_file() and p.name != "manifest.json"}


def from_cache(manifest) -> list[bool]:
    return [s["from_cache"] for s in manifest.extra["cache"]["stages"]]


def entries(cache: Path) -> dict[str, float]:
    return {str(p.relative_to(cache)): p.stat().st_mtime for p in (cache / "stages").glob("*/*/*")}


def test_rerun_hits_every_model_stage_and_a_changed_stage_misses_from_there(tmp_path, monkeypatch,
                                                                            tiny_model_path, digits, caplog):
    from edgeopt.compress import compress

    monkeypatch.setenv("EDGEOPT_CACHE", str(tmp_path / "cache"))
    caplog.set_level("INFO", logger="edgeopt")
    first = compress(tiny_model_path, digits, tmp_path / "a", recipe=Recipe.from_dict(RECIPE))
    assert from_cache(first) == [False, False]
    keys = [s["key"] for s in first.extra["cache"]["stages"]]
    assert f"stage prune: ran (cached as {keys[0][:8]})" in caplog.text
    caplog.clear()
    second = compress(tiny_model_path, digits, tmp_path / "b", recipe=Recipe.from_dict(RECIPE))
    assert from_cache(second) == [True, True]
    assert [s["key"] for s in second.extra["cache"]["stages"]] == keys
    assert f"stage prune: from the cache (key {keys[0][:8]})" in caplog.text
    assert f"stage quantize: from the cache (key {keys[1][:8]})" in caplog.text
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    assert len(digests(tmp_path / "a")) == 6  # source, prune, quantize, 2 tflite, onnx
    # the restored stages' manifest notes and guard figures are those the run that made them wrote
    for section in ("pruning", "quantization"):
        assert second.extra[section] == first.extra[section]
    assert second.extra["guard"]["stages"] == first.extra["guard"]["stages"]

    changed = {**RECIPE, "stages": [RECIPE["stages"][0], {"quantize": {"epochs": 2, "bn_samples": 256}},
                                    {"convert": CONVERT}]}
    third = compress(tiny_model_path, digits, tmp_path / "c", recipe=Recipe.from_dict(changed))
    assert from_cache(third) == [True, False]
    assert third.extra["cache"]["stages"][0]["key"] == keys[0]
    assert digests(tmp_path / "c")["tiny_prune.keras"] == digests(tmp_path / "a")["tiny_prune.keras"]

    # another test split (optimize's candidates score on a view whose test split is the validation split, its
    # best/ on the real one): the model stages read train and val only, so they come from the cache
    from edgeopt.data.dataset import Dataset

    view = Dataset.from_arrays("digits-view", digits.x_train, digits.y_train, digits.x_val, digits.y_val,
                               digits.x_val, digits.y_val, num_classes=digits.num_classes)
    fourth = compress(tiny_model_path, view, tmp_path / "d", recipe=Recipe.from_dict(RECIPE))
    assert from_cache(fourth) == [True, True]
    assert fourth.extra["guard"]["stages"] == first.extra["guard"]["stages"]  # judged on val, as before

    # a damaged entry (its model file cut short) is rebuilt, never a crash; the stage runs again in this same
    # process (tfmot's layers named as in a fresh one) and the bytes are the same again
    model = next((tmp_path / "cache" / "stages").glob(f"*/{keys[1]}/model.keras"))
    model.write_bytes(model.read_bytes()[:1000])
    fourth = compress(tiny_model_path, digits, tmp_path / "d", recipe=Recipe.from_dict(RECIPE))
    assert from_cache(fourth) == [True, False]
    assert digests(tmp_path / "d") == digests(tmp_path / "a")
    assert next((tmp_path / "cache" / "stages").glob(f"*/{keys[1]}/model.keras")).stat().st_size > 1000


def _env(cache: Path) -> dict[str, str]:
    return dict(os.environ, EDGEOPT_CACHE=str(cache), TF_CPP_MIN_LOG_LEVEL="3", COLUMNS="200")


def test_no_cache_neither_reads_nor_writes(tmp_path, tiny_model_path, digits, monkeypatch):
    from edgeopt.compress import compress

    cache = tmp_path / "cache"
    monkeypatch.setenv("EDGEOPT_CACHE", str(cache))
    recipe = {"train": {"epochs": 1}, "stages": [{"prune": {"epochs": 1, "bn_samples": 256}},
                                                 {"convert": {"tflite": ["fp32"], "onnx": []}}]}
    compress(tiny_model_path, digits, tmp_path / "a", recipe=Recipe.from_dict(recipe))
    before = entries(cache)
    assert before
    (tmp_path / "r.yaml").write_text("train: {epochs: 1}\nstages:\n  - prune: {epochs: 1, bn_samples: 256}\n"
                                     "  - convert: {tflite: [fp32], onnx: []}\n")
    proc = subprocess.run([*EDGEOPT, "compress", str(tiny_model_path), "--data", "digits", "--recipe",
                           str(tmp_path / "r.yaml"), "--out", str(tmp_path / "b"), "--no-cache"],
                          capture_output=True, text=True, env=_env(cache), timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "stage prune: ran (cache off)" in proc.stderr
    assert "from the cache" not in proc.stderr
    assert entries(cache) == before  # nothing read (no use time moved), nothing written
    from edgeopt.core.artifact import load_manifest

    assert load_manifest(tmp_path / "b").extra["cache"] == {"enabled": False,
                                                            "stages": [{"stage": "prune", "key": None,
                                                                        "from_cache": False}]}


def _compress(model: Path, recipe: Path, out: Path, cache: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([*EDGEOPT, "compress", str(model), "--data", "digits", "--recipe", str(recipe),
                             "--out", str(out)], stdout=subprocess.DEVNULL, stderr=open(log, "w"), env=_env(cache))


@pytest.mark.slow
def test_kill_9_during_the_second_stage_resumes_from_the_first_with_the_same_bytes(tmp_path, tiny_model_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE_YAML.replace("EPOCHS", "3"))
    cache, out = tmp_path / "cache", tmp_path / "out"
    proc = _compress(tiny_model_path, recipe, out, cache, tmp_path / "killed.log")
    deadline = time.monotonic() + 600
    try:
        # killed once the first stage is in the cache and the second has begun
        while "stage quantize" not in (tmp_path / "killed.log").read_text():
            assert proc.poll() is None, (tmp_path / "killed.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(60)
    assert proc.returncode == -signal.SIGKILL
    assert "stage prune: ran (cached as" in (tmp_path / "killed.log").read_text()
    assert "stage quantize: ran" not in (tmp_path / "killed.log").read_text()  # killed during it
    assert not out.exists()
    assert len(list((cache / "stages").glob("*/*/entry.json"))) == 1

    resumed = _compress(tiny_model_path, recipe, out, cache, tmp_path / "resumed.log")
    reference = _compress(tiny_model_path, recipe, tmp_path / "reference", tmp_path / "fresh-cache",
                          tmp_path / "reference.log")
    assert resumed.wait(600) == 0, (tmp_path / "resumed.log").read_text()
    assert reference.wait(600) == 0, (tmp_path / "reference.log").read_text()
    log = (tmp_path / "resumed.log").read_text()
    assert "stage prune: from the cache (key " in log
    assert "stage quantize: ran (cached as " in log
    assert "stage prune: ran" in (tmp_path / "reference.log").read_text()
    assert digests(out) == digests(tmp_path / "reference")
    assert {"tiny_int8.tflite", "tiny_fp32.tflite", "tiny_fp32.onnx", "tiny_quantize.keras"} <= set(digests(out))
    # the killed run's staging folder is gone (removed at the next start: its owner was dead)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.edgeopt-")]
