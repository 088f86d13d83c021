"""Every model stage passes the same suite: it returns a tf_keras model with the input's I/O shapes, leaves
the input model alone, says what it did in ctx.notes, saves and loads back, and still converts (fp32 TFLite
that matches it, int8 TFLite)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from edgeopt.recipe import STAGE_CONFIGS, TrainDefaults, _register_stage_modules, parse_stage

# A small, fast config per stage. A new stage adds its line here (a missing one fails the suite on purpose).
MINIMAL = {
    "prune": {"target_sparsity": 0.5, "epochs": 1},
    "quantize": {"epochs": 1},
    "cluster": {"number_of_clusters": 8, "epochs": 1},
    "distill": {"epochs": 1},
    "tune": {"strategy": "random", "max_trials": 1, "max_epochs": 1, "final_epochs": 1, "overwrite": True,
             "space": {"width": {"choice": [0.25]}}},
}


def _stages() -> list[str]:
    _register_stage_modules()
    return sorted(name for name in STAGE_CONFIGS if name != "convert")


@pytest.fixture(scope="module")
def model(tiny_model_path):
    from edgeopt.models.load import load_model

    return load_model(tiny_model_path)


@pytest.mark.parametrize("stage", _stages())
def test_stage_contract(stage, model, digits, tmp_path):
    import tf_keras

    from edgeopt.models.load import load_model
    from edgeopt.runtimes import litert
    from edgeopt.stages.context import StageContext
    from edgeopt.stages.convert import tflite_bytes

    assert stage in MINIMAL, f"add a minimal config for stage '{stage}' to MINIMAL in {__file__}"
    raw = dict(MINIMAL[stage], **({"cache_dir": str(tmp_path / "cache")} if stage == "tune" else {}))
    cfg = parse_stage(stage, raw, f"conformance: {stage}")
    before = [w.copy() for w in model.get_weights()]
    ctx = StageContext(dataset=digits, out_dir=tmp_path, base_name="tiny", train=TrainDefaults(epochs=1),
                       teacher=model, parent="tiny_source.keras")
    out = importlib.import_module(f"edgeopt.stages.{stage}").apply(model, ctx, cfg)

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
