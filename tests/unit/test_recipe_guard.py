"""The pipeline's accuracy guard (recipe.run): every model stage is measured on the validation split against
the source model — never the previous stage — and one that loses more than max_stage_drop stops the pipeline,
keeping what came before it. Convert's tolerances are measured against the source too."""

from __future__ import annotations

import pytest

from edgeopt.recipe import Recipe


def _stages(m):
    return {a.name: a for a in m.artifacts}


@pytest.fixture(scope="module")
def two_prunes(tmp_path_factory, tiny_model_path, digits):
    """prune 0.5 then prune 0.9 (1 epoch, statistics left stale) with the guard open: every figure recorded."""
    from edgeopt.compress import compress

    rec = Recipe.from_dict({"max_stage_drop": 1.0, "train": {"epochs": 1}, "stages": [
        {"prune": {"target_sparsity": 0.5}}, {"prune": {"target_sparsity": 0.9, "bn_samples": 0}},
        {"convert": {"tflite": ["fp32", "int8"], "onnx": [], "max_accuracy_drop": 0.0}}]})
    out = tmp_path_factory.mktemp("guard") / "out"
    return out, compress(tiny_model_path, digits, out, rec)


def test_every_stage_is_measured_against_the_source(two_prunes, tiny_model_path, digits):
    from edgeopt.models.load import load_model
    from edgeopt.recipe import top1

    _, m = two_prunes
    guard = m.extra["guard"]
    source_val = top1(load_model(tiny_model_path), digits.x_val, digits.y_val)
    assert guard["verdict"] == "passed" and guard["source_accuracy"] == pytest.approx(source_val, abs=1e-6)
    first, second = guard["stages"]
    assert second["source_accuracy"] == first["source_accuracy"] == guard["source_accuracy"]
    assert second["drop"] == pytest.approx(second["source_accuracy"] - second["accuracy"], abs=1e-6)
    assert second["stage_drop"] == pytest.approx(first["accuracy"] - second["accuracy"], abs=1e-6)
    # each intermediate model carries its figures (the compress table shows them)
    art = _stages(m)["tiny_prune.keras"]
    assert art.info["validation"] == second
    assert second["accuracy"] == pytest.approx(top1(load_model(two_prunes[0] / art.path), digits.x_val,
                                                    digits.y_val), abs=1e-6)


def test_int8_tolerance_is_against_the_source_not_the_last_stage(two_prunes):
    _, m = two_prunes
    par = _stages(m)["tiny_int8.tflite"].info["parity"]
    ref = m.extra["guard"]["reference"]["test"]
    assert par["source_accuracy"] == ref != par["input_accuracy"]
    assert par["accuracy_drop"] == pytest.approx(ref - par["accuracy"], abs=1e-6)
    assert par["within_tolerance"] is (par["accuracy_drop"] <= 0.0)
    fp32 = _stages(m)["tiny_fp32.tflite"].info["parity"]
    assert fp32["accuracy_drop"] == pytest.approx(ref - fp32["accuracy"], abs=1e-6)


def test_a_stage_over_max_stage_drop_stops_and_keeps_what_came_before(tmp_path, tiny_model_path, digits):
    from edgeopt.compress import compress

    rec = Recipe.from_dict({"max_stage_drop": 0.0, "train": {"epochs": 1}, "stages": [
        {"prune": {"target_sparsity": 0.95, "bn_samples": 0}}, {"quantize": {}}, {"convert": {}}]})
    m = compress(tiny_model_path, digits, tmp_path / "out", rec)
    guard = m.extra["guard"]
    assert guard["verdict"] == "stopped" and guard["stopped_at"] == "prune"
    assert guard["stages"][-1]["drop"] > 0
    assert "stage 'prune' lost" in guard["message"] and "prune.epochs" in guard["fix"]
    assert [a.role for a in m.artifacts] == ["source"] and guard["kept"] == []
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["manifest.json", "tiny_source.keras"]  # no rejected model, no conversions


def test_int8_larger_than_fp32_is_not_a_win():
    from edgeopt.core.artifact import Artifact
    from edgeopt.stages.convert import _against_fp32

    def art(name, precision, size):
        return Artifact(name=name, path=name, format="tflite", precision=precision, size_bytes=size, sha256="")

    arts = _against_fp32([art("a_fp32.tflite", "fp32", 1000), art("a_int8.tflite", "int8", 1200),
                          art("a_fp16.tflite", "fp16", 500)])
    assert arts[1].info["size_vs_fp32"] == 1.2 and "no size gain" in arts[1].info["no_size_win"]
    assert arts[2].info["size_vs_fp32"] == 0.5 and "no_size_win" not in arts[2].info
