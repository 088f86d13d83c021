"""Artifacts: precision detection of bare files, their file facts (read once), and the manifest contract."""

from __future__ import annotations

import gzip
import json

from edgeopt.core.artifact import FileFacts, collect, detect_precision, param_counts


def test_bare_artifact_precision_is_detected(compressed):
    out, manifest = compressed
    for a in manifest.artifacts:
        assert detect_precision(out / a.path) == a.precision, a.name


def test_float_artifacts_count_the_same_parameters(compressed):
    out, manifest = compressed
    counts = {(a.format, a.precision): param_counts(out / a.path, a.format) for a in manifest.artifacts}

    assert counts[("tflite", "fp16")][0] == counts[("tflite", "fp32")][0]
    # int8 biases are int32: a bias of 8 or fewer reads as plumbing (shapes, axes), so int8 counts a little lower
    assert counts[("tflite", "fp32")][0] - 8 <= counts[("tflite", "int8")][0] <= counts[("tflite", "fp32")][0]
    assert counts[("onnx", "fp32")] == counts[("tflite", "fp32")]
    assert all(0 < nonzero <= params for params, nonzero in [counts[("tflite", "int8")], counts[("onnx", "fp32")]])
    assert param_counts(out / next(a.path for a in manifest.artifacts if a.format == "keras"), "keras") == (None, None)


def test_file_facts_are_read_once(tmp_path, compressed):
    out, manifest = compressed
    src = out / next(a.path for a in manifest.artifacts if a.format == "tflite")
    path = tmp_path / "m.tflite"
    path.write_bytes(src.read_bytes())
    facts = FileFacts(path, "tflite")

    first = facts.astuple()
    path.write_bytes(b"changed")  # a later read would see this

    assert facts.astuple() == first
    assert first[:2] == (src.stat().st_size, len(gzip.compress(src.read_bytes(), 9)))
    assert first[2:] == param_counts(src, "tflite")


def test_collect_gives_each_artifact_its_facts_and_the_manifest_never_saves_them(compressed):
    out, manifest = compressed
    items = collect([out])

    assert [a.name for a, _ in items] == [a.name for a in manifest.artifacts]
    for a, path in items:
        assert a.facts is not None and a.facts.path == path and a.facts.format == a.format
        assert a == next(m for m in manifest.artifacts if m.name == a.name)  # facts do not change identity
        assert "facts" not in a.to_dict()
    assert all("facts" not in a for a in json.loads((out / "manifest.json").read_text())["artifacts"])
