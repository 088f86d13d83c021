"""Convert stage and compress(): every format, manifest contract, parity, atomic output."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeopt.core.artifact import load_manifest, sha256_of
from edgeopt.errors import UsageError

EXPECTED = {("tflite", "fp32"), ("tflite", "fp16"), ("tflite", "dynamic"), ("tflite", "int8"), ("onnx", "fp32")}


def test_manifest_lists_source_and_five_artifacts(compressed):
    out, manifest = compressed
    data = json.loads((out / "manifest.json").read_text())
    assert data["schema_version"] == 1
    assert {"schema_version", "source", "artifacts"} <= set(data)
    kinds = {(a["format"], a["precision"]) for a in data["artifacts"] if a["role"] == "artifact"}
    assert kinds == EXPECTED
    for a in data["artifacts"]:
        assert {"name", "path", "format", "precision", "size_bytes", "sha256", "stages", "parent"} <= set(a)
        path = out / a["path"]
        assert path.stat().st_size == a["size_bytes"]
        assert sha256_of(path) == a["sha256"]
    assert load_manifest(out).to_dict() == manifest.to_dict()


def test_parity_records_are_real(compressed):
    _, manifest = compressed
    by = {(a.format, a.precision): a.info.get("parity") for a in manifest.artifacts if a.role == "artifact"}
    assert by[("tflite", "fp32")]["max_abs_diff"] < 1e-4
    assert by[("onnx", "fp32")]["max_abs_diff"] < 1e-4
    assert by[("tflite", "fp32")]["agreement"] == 1.0
    assert by[("tflite", "fp16")]["agreement"] >= 0.99
    int8 = by[("tflite", "int8")]
    assert int8["agreement"] >= 0.95
    assert 0 < int8["max_abs_diff"] < 0.5  # quantized: close but not identical
    assert "within_tolerance" in int8 and "accuracy_drop" in int8


def test_int8_artifact_has_int8_io_and_smaller_size(compressed):
    from ai_edge_litert.interpreter import Interpreter

    out, manifest = compressed
    art = {(a.format, a.precision): a for a in manifest.artifacts}
    interp = Interpreter(model_path=str(out / art[("tflite", "int8")].path))
    assert interp.get_input_details()[0]["dtype"] == np.int8
    assert interp.get_output_details()[0]["dtype"] == np.int8
    assert art[("tflite", "int8")].size_bytes < art[("tflite", "fp32")].size_bytes


def test_calibration_with_nan_is_refused():
    from edgeopt.stages.convert import check_calibration

    bad = np.ones((4, 8, 8, 1), np.float32)
    bad[1, 2, 3, 0] = np.nan
    with pytest.raises(UsageError, match="NaN or Inf"):
        check_calibration(bad)


def test_one_format_failing_leaves_the_others(tmp_path, tiny_model_path, digits, monkeypatch):
    """A conversion that fails becomes a `failed` manifest entry with its reason; the other formats are built."""
    from edgeopt.compress import compress
    from edgeopt.core.artifact import load_manifest
    from edgeopt.recipe import Recipe
    from edgeopt.stages import convert

    real = convert.tflite_bytes

    def flaky(model, precision, *a, **k):
        if precision == "fp16":
            raise RuntimeError("converter blew up")
        return real(model, precision, *a, **k)

    def no_flex(*a, **k):
        raise RuntimeError("flex did not help")

    monkeypatch.setattr(convert, "tflite_bytes", flaky)
    monkeypatch.setattr(convert, "flex_bytes", no_flex)
    out = tmp_path / "out"
    recipe = Recipe.from_dict({"stages": [{"convert": {"tflite": ["fp32", "fp16"], "onnx": ["fp32"]}}]})
    compress(tiny_model_path, digits, out, recipe=recipe)
    by_name = {a.name: a for a in load_manifest(out).artifacts}
    bad = by_name["tiny_fp16.tflite"]
    assert bad.status == "failed" and "converter blew up" in bad.error and bad.size_bytes == 0
    assert not (out / bad.path).exists()
    for name in ("tiny_fp32.tflite", "tiny_fp32.onnx"):
        assert by_name[name].status == "ok" and by_name[name].error is None and (out / name).is_file()
        assert by_name[name].info["parity"]["agreement"] > 0.99
    saved = (out / "manifest.json").read_text()
    assert '"status": "failed"' in saved and '"status": "ok"' in saved


def test_failed_compress_leaves_nothing_behind(tmp_path, tiny_model_path, digits, monkeypatch):
    from edgeopt.compress import compress
    from edgeopt.stages import convert

    def broken(*a, **k):
        raise RuntimeError("model blew up")

    monkeypatch.setattr(convert, "predict", broken)  # before any format: the whole stage fails
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="blew up"):
        compress(tiny_model_path, digits, out)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no staging folder left


def test_rerun_replaces_previous_output_whole(tmp_path, tiny_model_path, digits):
    from edgeopt.compress import compress
    from edgeopt.recipe import Recipe

    out = tmp_path / "out"
    compress(tiny_model_path, digits, out, recipe=Recipe.from_dict({"stages": [{"convert": {"tflite": ["fp32"],
                                                                                            "onnx": []}}]}))
    first = {p.name for p in out.iterdir()}
    m = compress(tiny_model_path, digits, out, recipe=Recipe.from_dict({"stages": [{"convert": {"tflite": ["fp16"],
                                                                                                "onnx": []}}]}))
    assert [a.precision for a in m.artifacts if a.role == "artifact"] == ["fp16"]
    assert {p.name for p in out.iterdir()} == {a.path for a in m.artifacts} | {"manifest.json"}  # fp32 file gone
    assert first != {p.name for p in out.iterdir()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    (out / "notes.txt").write_text("mine")  # a file the manifest does not list is the user's: never removed
    with pytest.raises(UsageError, match="--force"):
        compress(tiny_model_path, digits, out)
    compress(tiny_model_path, digits, out, recipe=Recipe.from_dict(
        {"stages": [{"convert": {"tflite": ["fp32"], "onnx": []}}]}), force=True)
    assert (out / "notes.txt").read_text() == "mine"


def test_model_data_mismatch_is_a_usage_error(tiny_model_path):
    from edgeopt.compress import compress

    with pytest.raises(UsageError, match=r"inputs of shape \(8, 8, 1\).*\(32, 32, 3\)"):
        compress(tiny_model_path, "shapes", "/tmp/never-written")

