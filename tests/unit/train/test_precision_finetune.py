"""Mixed precision in the compression fine-tunes, with real tfmot wrappers: a prune fine-tune under mixed_bfloat16
reaches its sparsity and hands on a float32 model (that converts) about as accurate as the float32 fine-tune's;
QAT and clustering fall back to float32 when ``train:`` asks and are refused when the stage asks; ``auto`` is
float32 on a CPU and mixed_float16 where fast float16 is visible."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.errors import UsageError
from edgeopt.recipe import TrainDefaults, parse_stage
from edgeopt.stages import STAGES, StageContext
from edgeopt.train import precision


@pytest.fixture(scope="module")
def small(digits):
    from edgeopt.data.dataset import Dataset

    return Dataset.from_arrays("digits-small", digits.x_train[:512], digits.y_train[:512], digits.x_val[:192],
                               digits.y_val[:192], digits.x_test[:64], digits.y_test[:64], num_classes=10)


@pytest.fixture(scope="module")
def source(tiny_model_path):
    from edgeopt.models.load import load_model

    return load_model(tiny_model_path)


def _run(stage: str, cfg: dict, model, small, tmp_path, **train):
    ctx = StageContext(dataset=small, out_dir=tmp_path, base_name="tiny", train=TrainDefaults(epochs=1, **train),
                       teacher=model, cache_dir=tmp_path / "cache")
    out = STAGES[stage].apply(model, ctx, parse_stage(stage, cfg, stage))
    return out, ctx.notes


PRUNE = {"target_sparsity": 0.75, "allocation": "uniform", "epochs": 3, "batch_size": 32, "early_stopping": False}


def test_prune_under_mixed_bfloat16_keeps_the_sparsity_and_hands_on_float32(source, small, tmp_path):
    import tf_keras as keras
    from ai_edge_litert.interpreter import Interpreter

    from edgeopt.core import graph
    from edgeopt.stages.convert import tflite_bytes
    from edgeopt.train.fit import evaluate

    if precision.has_fast_float16():
        pytest.skip("a GPU is visible: auto would not be float32")
    plain, plain_notes = _run("prune", PRUNE, source, small, tmp_path / "f32")  # the default: auto
    mixed, notes = _run("prune", {**PRUNE, "precision": "mixed_bfloat16"}, source, small, tmp_path / "bf16")
    assert plain_notes["pruning"]["fine_tune"]["precision"]["used"] == "float32"
    assert plain_notes["pruning"]["fine_tune"]["precision"]["asked"] == "auto"
    assert notes["pruning"]["fine_tune"]["precision"] == {"used": "mixed_bfloat16", "asked": "mixed_bfloat16",
                                                         "why": "asked"}
    assert keras.mixed_precision.global_policy().name == "float32"
    # the masks held: the stripped model has the target sparsity, and every layer is float32 again
    assert notes["pruning"]["achieved_sparsity"] >= 0.74
    assert set(precision.dtype_policies(mixed).values()) == {"float32"}
    assert all(w.dtype == np.float32 for w in mixed.get_weights())
    out = np.asarray(mixed(small.x_val))
    assert out.dtype == np.float32 and np.isfinite(out).all()
    acc_mixed = evaluate(mixed, small.x_val, small.y_val)["accuracy"]
    acc_plain = evaluate(plain, small.x_val, small.y_val)["accuracy"]
    assert acc_mixed > 0.5 and abs(acc_mixed - acc_plain) <= 0.06, (acc_mixed, acc_plain)
    # the converter sees a plain float32 model: fp32 graph, same size as the float32 fine-tune's, same outputs
    blob = tflite_bytes(mixed, "fp32")
    assert graph.read_tflite(blob).precision() == "fp32"
    assert abs(len(blob) - len(tflite_bytes(plain, "fp32"))) <= 0.01 * len(blob)
    interp = Interpreter(model_content=blob)
    interp.allocate_tensors()
    inp, res = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.set_tensor(inp["index"], small.x_val[:1].astype(np.float32))
    interp.invoke()
    np.testing.assert_allclose(interp.get_tensor(res["index"]), out[:1], atol=1e-5)


def test_the_mixed_twin_of_a_pruning_wrapper_keeps_its_m_by_n_structure(source):
    """tfmot's PruneLowMagnitude.get_config drops sparsity_m_by_n: a config round trip would prune unstructured."""
    import tensorflow_model_optimization as tfmot

    from edgeopt.train.layers import wrap

    chosen = [layer for layer in source.layers if layer.name == "dense"]
    wrapped = wrap(source, chosen, lambda layer: tfmot.sparsity.keras.prune_low_magnitude(
        layer, sparsity_m_by_n=(2, 4)))
    twin = precision.to_policy(wrapped, "mixed_bfloat16")
    (layer,) = [x for x in twin.layers if type(x).__name__ == "PruneLowMagnitude"]
    assert layer.sparsity_m_by_n == (2, 4)
    # the output wrapper and its layer stay float32 with the outputs; the rest computes in bfloat16
    assert layer.name == "prune_low_magnitude_dense" and layer.dtype_policy.name == "mixed_bfloat16"
    assert layer.layer.dtype_policy.name == "mixed_bfloat16" and twin.get_layer("softmax").dtype == "float32"
    for a, b in zip(twin.get_weights(), wrapped.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("stage, cfg, why", [
    ("quantize", {"qat": True, "epochs": 1}, "fake-quant"),
    ("cluster", {"number_of_clusters": 8, "epochs": 1}, "clustering wrapper"),
])
def test_qat_and_clustering_fall_back_to_float32_when_train_asks(stage, cfg, why, source, small, tmp_path):
    _, notes = _run(stage, {**cfg, "batch_size": 64, "early_stopping": False}, source, small, tmp_path,
                    precision="mixed_bfloat16")
    section = notes["quantization" if stage == "quantize" else "clustering"]
    used = section["fine_tune"]["precision"]
    assert used["used"] == "float32" and used["asked"] == "mixed_bfloat16" and why in used["why"]


@pytest.mark.parametrize("stage, cfg", [("quantize", {"qat": True}), ("cluster", {"number_of_clusters": 8})])
def test_qat_and_clustering_refuse_a_mixed_policy_asked_on_the_stage(stage, cfg, source, small, tmp_path, monkeypatch):
    from edgeopt.train import fit

    monkeypatch.setattr(fit, "train", lambda *a, **k: pytest.fail("refused before training"))
    with pytest.raises(UsageError) as e:
        _run(stage, {**cfg, "epochs": 1, "precision": "mixed_float16"}, source, small, tmp_path)
    assert e.value.problem.startswith(f"{stage}: precision mixed_float16 cannot train this model")
    assert "drop `precision`" in e.value.fix


def test_auto_is_float32_on_a_cpu_and_mixed_float16_where_float16_is_fast(source, monkeypatch):
    import tensorflow_model_optimization as tfmot

    qat = tfmot.quantization.keras.quantize_model(source)
    if not precision.has_fast_float16():
        choice = precision.choose(source, "auto", explicit=False, stage="prune")
        assert choice.policy == "float32" and "no GPU" in choice.why
    monkeypatch.setattr(precision, "has_fast_float16", lambda: True)
    assert precision.choose(source, "auto", explicit=False, stage="prune").policy == "mixed_float16"
    # auto never refuses: a model that cannot train mixed falls back, the reason said
    back = precision.choose(qat, "auto", explicit=False, stage="quantize")
    assert back.policy == "float32" and "QuantizeLayer" in back.why and "fake-quant" in back.why
    assert precision.choose(qat, "float32", explicit=True, stage="quantize").policy == "float32"


def test_subclassed_and_nested_models_fall_back_under_auto_and_are_refused_when_asked(monkeypatch):
    import tf_keras as keras

    class Sub(keras.Model):
        def call(self, x):
            return x

    monkeypatch.setattr(precision, "has_fast_float16", lambda: True)
    assert precision.choose(Sub(), "auto", explicit=False, stage="training").policy == "float32"
    with pytest.raises(UsageError, match="subclassed"):
        precision.choose(Sub(), "mixed_bfloat16", explicit=True, stage="training")
    inner = keras.Sequential([keras.layers.Dense(4)], name="inner")
    inp = keras.Input((3,))
    nested = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(inner(inp)))
    back = precision.choose(nested, "auto", explicit=False, stage="training")
    assert back.policy == "float32" and "nested model" in back.why


@pytest.mark.parametrize("bad", ["bfloat16", "fp16"])
def test_an_unknown_fine_tune_precision_is_a_usage_error(bad):
    from edgeopt.recipe import Recipe

    with pytest.raises(UsageError, match="precision"):
        Recipe.from_dict({"stages": [{"prune": {"precision": bad}}]})


@pytest.mark.parametrize("extra, sparsity", [({"structure": "2:4", "exclude": ["conv2d"]}, 0.5),
                                             ({"structure": "channel", "target_sparsity": 0.25}, 0.25)])
def test_structured_pruning_trains_under_mixed_bfloat16_too(extra, sparsity, source, small, tmp_path):
    cfg = {**PRUNE, "epochs": 2, "allocation": "uniform", "precision": "mixed_bfloat16", **extra}
    model, notes = _run("prune", cfg, source, small, tmp_path)
    assert notes["pruning"]["fine_tune"]["precision"]["used"] == "mixed_bfloat16"
    assert notes["pruning"]["achieved_sparsity"] == pytest.approx(sparsity, abs=0.01)
    assert set(precision.dtype_policies(model).values()) == {"float32"}
    assert np.isfinite(np.asarray(model(small.x_val[:8]))).all()
    if extra["structure"] == "2:4":  # two zeros in every block of 4 along the input axis, not just half overall
        kernel = model.get_layer("dense").get_weights()[0]
        blocks = (kernel.reshape(-1, 4, kernel.shape[-1]) == 0).sum(axis=1)
        assert (blocks >= 2).all()
