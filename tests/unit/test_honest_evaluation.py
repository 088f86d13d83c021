"""Honest evaluation (issue 13, item 6): no stage's decision reads the test split. The same pipeline — tune (with
distillation), distill, prune, QAT, convert — runs twice on data whose test split is, the second time, noise with
shuffled labels: every model a stage makes and every validation figure comes out identical; only the final
artifacts' test figures differ."""

from __future__ import annotations

import hashlib

import numpy as np

RECIPE = {"max_stage_drop": 1.0, "train": {"epochs": 1, "batch_size": 64}, "stages": [
    {"tune": {"model": {"zoo": "small_cnn"}, "distill": True, "strategy": "random", "max_trials": 1,
              "max_epochs": 1, "final_epochs": 1, "overwrite": True, "space": {"width": {"choice": [0.25]}}}},
    {"distill": {"epochs": 1}},
    {"prune": {"target_sparsity": 0.5, "epochs": 2}},
    {"quantize": {"qat": True, "epochs": 1}},
    {"convert": {"tflite": ["fp32", "int8"], "onnx": []}}]}


def _data(digits, garbage: bool):
    from edgeopt.data.dataset import Dataset

    x_test, y_test = digits.x_test[:96], digits.y_test[:96]
    if garbage:
        rng = np.random.default_rng(1)
        x_test = rng.random(x_test.shape).astype(np.float32)
        y_test = rng.permutation(y_test)
    return Dataset.from_arrays("digits-honest", digits.x_train[:384], digits.y_train[:384], digits.x_val[:96],
                               digits.y_val[:96], x_test, y_test, num_classes=10)


def _run(tmp_path, name, model_path, data):
    from edgeopt.compress import compress
    from edgeopt.recipe import Recipe

    return compress(model_path, data, tmp_path / name, recipe=Recipe.from_dict(RECIPE))


def _weights(path) -> str:
    from edgeopt.models.load import load_model

    h = hashlib.sha256()
    for w in load_model(path).get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


# wall clock, the run's own folders and the stage cache's keys (they hash every split, test included, so that a
# changed data set never reuses an entry): bookkeeping, not decisions
TIMINGS = ("seconds", "search_seconds", "cache_dir", "cache")


def _without_test(notes):
    """The manifest's stage notes minus the source's test reference figure and the timings."""
    if isinstance(notes, dict):
        return {k: _without_test(v) for k, v in notes.items()
                if k not in TIMINGS and not (k == "reference" and isinstance(v, dict) and "test" in v)}
    if isinstance(notes, list):
        return [_without_test(v) for v in notes]
    return notes


def test_no_stage_decision_reads_the_test_split(tmp_path, monkeypatch, digits, tiny_model_path):
    monkeypatch.setenv("EDGEOPT_CACHE", str(tmp_path / "cache"))
    real = _run(tmp_path, "real", tiny_model_path, _data(digits, garbage=False))
    noise = _run(tmp_path, "noise", tiny_model_path, _data(digits, garbage=True))
    stages = [a for a in real.artifacts if a.format == "keras" and a.role != "source"]
    assert [a.name for a in stages] == [f"tiny_{s}.keras" for s in ("tune", "distill", "prune", "quantize")]
    by_name = {a.name: a for a in noise.artifacts}
    for a in stages:  # every model a stage handed on, weight for weight
        assert _weights(tmp_path / "real" / a.path) == _weights(tmp_path / "noise" / by_name[a.name].path), a.name
        assert _without_test(a.info) == _without_test(by_name[a.name].info)  # its validation figures
    for a in (a for a in real.artifacts if a.format == "tflite"):  # the final artifacts themselves (int8 search on val)
        assert a.sha256 == by_name[a.name].sha256, a.name
    assert _without_test(real.extra) == _without_test(noise.extra)
    assert real.extra["guard"]["reference"]["val"] == noise.extra["guard"]["reference"]["val"]
    assert real.extra["tuning"]["final"]["split"] == "val" and "test_accuracy" not in real.extra["tuning"]["final"]
    assert real.extra["distillation"]["split"] == "val"
    for stage in ("pruning", "quantization"):
        assert real.extra[stage]["fine_tune"]["validation"]["split"] == "val"
    # ... and the test split is read: the final artifacts' test figures are what differ
    assert real.extra["guard"]["reference"]["test"] != noise.extra["guard"]["reference"]["test"]
    for a in (a for a in real.artifacts if a.format == "tflite"):
        got, noisy = a.info["parity"], by_name[a.name].info["parity"]
        assert (got["accuracy"], got["source_accuracy"]) != (noisy["accuracy"], noisy["source_accuracy"]), a.name
