"""Malformed compression recipes and inputs: always a UsageError (exit 2, one line naming the problem), never a
traceback, and never a half-written output."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeopt.errors import UsageError
from edgeopt.recipe import Recipe, load_recipe

KEYS = {
    "prune": ["target_sparsity", "initial_sparsity", "schedule", "structure", "begin_step", "end_step", "frequency",
              "end_fraction", "epochs", "batch_size", "lr", "exclude", "skip_first", "skip_last", "blocks"],
    "distill": ["temperature", "alpha", "epochs", "start_epoch", "run_epochs", "augment"],
    "quantize": ["qat", "preserve_sparsity", "preserve_clusters", "epochs", "lr", "exclude"],
    "cluster": ["number_of_clusters", "centroid_init", "preserve_sparsity", "per_channel", "fold_batch_norm", "epochs",
                "exclude"],
    "convert": ["tflite", "onnx", "opset", "int8_io", "calibration_samples", "max_accuracy_drop", "accuracy_aware",
                "max_float_ops", "debug_samples", "onnx_int8", "per_channel", "strip_metadata",
                "share_empty_buffers"],
}
VALUES = [None, 0, 1, -1, 2, 0.5, 1.0, 1.5, -0.3, math.nan, math.inf, "", "2:4", "4:2", "x", "polynomial", "int8",
          "fp32", "auto", True, False, [], ["int8"], ["fp64"], ["conv*"], {}, {"a": 1}, 10**9]


@pytest.mark.parametrize("stage, cfg, names", [
    ("prune", {"target_sparsity": 1.0}, "target_sparsity"),
    ("prune", {"target_sparsity": math.nan}, "target_sparsity"),
    ("prune", {"target_sparsity": "high"}, "target_sparsity"),
    ("prune", {"structure": "2:2"}, "structure"),
    ("prune", {"sparsity": 0.5}, "unknown key 'sparsity'"),
    ("prune", {"frequency": 0}, "frequency"),
    ("quantize", {"qat": "maybe"}, "qat"),
    ("quantize", {"preserve_sparsity": "yes please"}, "preserve_sparsity"),
    ("cluster", {"number_of_clusters": 1}, "number_of_clusters"),
    ("cluster", {"centroid_init": "kmeans"}, "centroid_init"),
    ("convert", {"onnx": ["int4"]}, "onnx"),
    ("convert", {"onnx_int8": "fastest"}, "onnx_int8"),
    ("convert", {"max_float_ops": 0}, "max_float_ops"),
    ("convert", {"max_accuracy_drop": 2}, "max_accuracy_drop"),
])
def test_bad_values_name_the_key(stage, cfg, names):
    with pytest.raises(UsageError, match=names):
        Recipe.from_dict({"stages": [{stage: cfg}]})


def test_random_recipes_parse_or_raise_usage_error():
    rng = random.Random(4)
    for _ in range(400):
        stage = rng.choice(list(KEYS))
        cfg = {rng.choice([*KEYS[stage], "bogus"]): rng.choice(VALUES) for _ in range(rng.randint(1, 4))}
        try:
            rec = Recipe.from_dict({"stages": [{stage: cfg}]})
        except UsageError as e:
            assert "\n" not in str(e) and str(e)
            continue
        assert Recipe.from_dict(rec.to_dict()) == rec  # whatever parses round-trips


def test_bad_recipe_file_exits_2_with_one_line(tmp_path, tiny_model_path):
    bad = tmp_path / "r.yaml"
    bad.write_text("stages:\n  - prune: {target_sparsity: 1.2}\n")
    with pytest.raises(UsageError):
        load_recipe(bad)
    exe = Path(sys.executable).with_name("edgeopt")
    proc = subprocess.run([str(exe), "compress", str(tiny_model_path), "--data", "digits", "--recipe", str(bad),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "target_sparsity" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_nan_calibration_is_refused_before_any_conversion(tmp_path, tiny_model_path, digits):
    from edgeopt.models.load import load_model
    from edgeopt.recipe import TrainDefaults
    from edgeopt.stages import StageContext, convert
    from edgeopt.stages.convert import ConvertConfig

    class Poisoned:
        """A data set object from elsewhere whose calibration samples carry an Inf."""

        def __getattr__(self, name):
            return getattr(digits, name)

        def representative(self, n):
            x = digits.representative(n).copy()
            x[3, 1, 1, 0] = np.inf
            return x

    ctx = StageContext(dataset=Poisoned(), out_dir=tmp_path, base_name="tiny", train=TrainDefaults())
    with pytest.raises(UsageError, match="NaN or Inf"):
        convert.apply(load_model(tiny_model_path), ctx, ConvertConfig())
    assert list(tmp_path.iterdir()) == []  # refused before the fp32 artifact was written
