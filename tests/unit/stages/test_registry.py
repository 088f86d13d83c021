"""The stage registry is the only place a stage is known: one config + one apply + one STAGES entry, and a
recipe can name the stage, compress runs it, and its model and notes reach the manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict, Field

from edgeopt.errors import UsageError
from edgeopt.recipe import Recipe
from edgeopt.stages import STAGES, Stage


class ScaleLogitsConfig(BaseModel):
    """A toy stage: divides the model's logits by ``temperature`` (the top-1 class stays the same)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    temperature: float = Field(2.0, gt=0)


def scale_logits(model, ctx, cfg: ScaleLogitsConfig):
    import tf_keras as keras

    from edgeopt.train.distiller import logits_of

    _, logits = logits_of(model)
    z = keras.layers.Rescaling(1.0 / cfg.temperature, name="scale")(logits.output)
    out = keras.layers.Activation("softmax", name="softmax_scaled")(z)
    ctx.notes["scale_logits"] = {"temperature": cfg.temperature, "after": list(ctx.stages_done)}
    return keras.Model(logits.inputs, out, name=f"{model.name}_scaled")


@pytest.fixture
def toy_stage(monkeypatch):
    monkeypatch.setitem(STAGES, "scale_logits", Stage(ScaleLogitsConfig, scale_logits, "model", {"temperature": 3.0}))


def test_a_registered_stage_runs_through_a_recipe(toy_stage, tmp_path, tiny_model_path, digits):
    from edgeopt.compress import compress
    from edgeopt.models.load import load_model

    rec = Recipe.from_dict({"stages": [{"scale_logits": {"temperature": 4.0}},
                                       {"convert": {"tflite": ["fp32"], "onnx": []}}]})
    assert rec.stages[0] == ("scale_logits", ScaleLogitsConfig(temperature=4.0))
    assert Recipe.from_dict(rec.to_dict()) == rec
    manifest = compress(tiny_model_path, digits, tmp_path / "out", rec)

    names = [a.name for a in manifest.artifacts]
    assert names == ["tiny_source.keras", "tiny_scale_logits.keras", "tiny_fp32.tflite"]
    keras_art, tflite_art = manifest.artifacts[1:]
    assert keras_art.stages == ("scale_logits",) and keras_art.parent == "tiny_source.keras"
    assert tflite_art.stages == ("scale_logits", "convert") and tflite_art.parent == "tiny_scale_logits.keras"
    saved = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert saved["scale_logits"] == {"temperature": 4.0, "after": []}
    # the stage really ran: softer probabilities, same top-1 as the input model
    x = digits.x_test[:64]
    before = np.asarray(load_model(tiny_model_path)(x, training=False))
    after = np.asarray(load_model(tmp_path / "out" / "tiny_scale_logits.keras")(x, training=False))
    assert np.array_equal(before.argmax(-1), after.argmax(-1)) and after.max(-1).mean() < before.max(-1).mean()


def test_a_registered_stage_gets_recipe_errors(toy_stage):
    with pytest.raises(UsageError, match=r"stages\[0\]\.scale_logits: unknown key 'temperatur' \(did you mean "
                                         r"'temperature'\?\)"):
        Recipe.from_dict({"stages": [{"scale_logits": {"temperatur": 2}}]})
    with pytest.raises(UsageError, match=r"unknown stage 'scale_logit' \(did you mean 'scale_logits'\?\)"):
        Recipe.from_dict({"stages": [{"scale_logit": {}}]})


def test_without_its_entry_the_stage_is_unknown():
    with pytest.raises(UsageError, match="unknown stage 'scale_logits'"):
        Recipe.from_dict({"stages": [{"scale_logits": {}}]})
