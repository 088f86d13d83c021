"""Recipe parsing: round trip, defaults, and one-line errors for bad recipes."""

from __future__ import annotations

import pytest

from edgeopt.errors import UsageError
from edgeopt.recipe import Recipe, load_recipe
from edgeopt.stages.convert import ConvertConfig


def test_round_trip():
    r = Recipe.from_dict({"train": {"epochs": 3}, "stages": [{"convert": {"tflite": ["int8"], "onnx": []}}]})
    assert Recipe.from_dict(r.to_dict()) == r
    assert r.train.epochs == 3


def test_default_recipe_is_a_full_convert():
    r = load_recipe(None)
    assert r.stages == [("convert", ConvertConfig())]
    assert ConvertConfig().tflite == ["fp32", "fp16", "dynamic", "int8"]


@pytest.mark.parametrize("raw, needle", [
    ({"stage": []}, "unknown top-level key 'stage' (did you mean 'stages'?)"),
    ({"stages": [{"convert": {"tflte": ["fp32"]}}]}, "unknown key 'tflte' (did you mean 'tflite'?)"),
    ({"stages": [{"convert": {"tflite": ["int4"]}}]}, "got 'int4'"),
    ({"stages": [{"convrt": {}}]}, "unknown stage 'convrt' (did you mean 'convert'?)"),
    ({"stages": ["convert"]}, "must be a mapping"),
    ({"train": {"epochs": 0}}, "train.epochs"),
])
def test_bad_recipes(raw, needle):
    with pytest.raises(UsageError) as e:
        Recipe.from_dict(raw)
    assert needle in str(e.value)


def test_recipe_file_errors(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: [convert: {tflite: [fp32]\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        load_recipe(bad)
