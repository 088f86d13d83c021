"""Every stage in the registry passes the same suite, run with the registry's own example config.

A model stage returns a tf_keras model with the input's I/O shapes, leaves the input model alone, says what it
did in ctx.notes, saves and loads back, and still converts (fp32 TFLite that matches it, int8 TFLite). An
artifact stage writes files into ctx.out_dir that descend from ctx.parent and name the stages behind them.
Every example config round-trips, and the whole registry parses without TensorFlow."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgeopt.recipe import TrainDefaults, parse_stage
from edgeopt.stages import STAGES, StageContext

MODEL_STAGES = sorted(name for name, stage in STAGES.items() if stage.yields == "model")
ARTIFACT_STAGES = sorted(name for name, stage in STAGES.items() if stage.yields == "artifacts")


@pytest.fixture(scope="module")
def model(tiny_model_path):
    from edgeopt.models.load import load_model

    return load_model(tiny_model_path)


def _run(stage: str, model, digits, tmp_path) -> tuple[object, StageContext]:
    cfg = parse_stage(stage, STAGES[stage].example, f"conformance: {stage}")
    ctx = StageContext(dataset=digits, out_dir=tmp_path, base_name="tiny", train=TrainDefaults(epochs=1),
                       teacher=model, parent="tiny_source.keras", cache_dir=tmp_path / "cache")
    return STAGES[stage].apply(model, ctx, cfg), ctx


@pytest.mark.parametrize("stage", MODEL_STAGES)
def test_model_stage_contract(stage, model, digits, tmp_path):
    import tf_keras

    from edgeopt.models.load import load_model
    from edgeopt.runtimes import litert
    from edgeopt.stages.convert.tflite import tflite_bytes

    before = [w.copy() for w in model.get_weights()]
    out, ctx = _run(stage, model, digits, tmp_path)

    assert isinstance(out, tf_keras.Model)
    assert out.input_shape == model.input_shape and out.output_shape == model.output_shape
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True)), "input model changed"
    assert ctx.notes, f"{stage} recorded nothing in ctx.notes"

    x = digits.x_test[:32]
    expected = np.asarray(out(x, training=False))
    path = tmp_path / f"tiny_{stage}.keras"
    out.save(path)
    np.testing.assert_allclose(np.asarray(load_model(path)(x, training=False)), expected, atol=1e-5)

    fp32 = tmp_path / "fp32.tflite"
    fp32.write_bytes(tflite_bytes(out, "fp32"))
    # A QAT model's fake-quant nodes become real int8 kernels in TFLite: outputs may differ by a few quantization
    # steps of the output (seen: 2.3e-3 on a 1-epoch QAT digits model), not by float round-off.
    tol = 2e-2 if stage == "quantize" else 1e-4
    np.testing.assert_allclose(litert.load(str(fp32)).run(x), expected, atol=tol)
    int8 = tmp_path / "int8.tflite"
    int8.write_bytes(tflite_bytes(out, "int8", digits.representative(64)))
    agreement = np.mean(litert.load(str(int8)).run(x).argmax(-1) == expected.argmax(-1))
    assert agreement >= 0.8


@pytest.mark.parametrize("stage", ARTIFACT_STAGES)
def test_artifact_stage_contract(stage, model, digits, tmp_path):
    from edgeopt.core.artifact import Artifact

    before = [w.copy() for w in model.get_weights()]
    artifacts, ctx = _run(stage, model, digits, tmp_path)

    assert artifacts and all(isinstance(a, Artifact) for a in artifacts)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True)), "input model changed"
    for a in artifacts:
        assert (tmp_path / a.path).is_file() and a.size_bytes == (tmp_path / a.path).stat().st_size
        assert a.parent == "tiny_source.keras" and a.stages[-1] == stage
    assert len({a.name for a in artifacts}) == len(artifacts)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_example_config_round_trips(stage):
    cfg = parse_stage(stage, STAGES[stage].example, stage)
    assert isinstance(cfg, STAGES[stage].config)
    assert parse_stage(stage, cfg.model_dump(mode="json"), stage) == cfg


def test_the_registry_parses_without_tensorflow():
    code = ("import sys; from edgeopt.recipe import Recipe; from edgeopt.stages import STAGES; "
            "Recipe.from_dict({'stages': [{n: s.example} for n, s in STAGES.items()]}); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
