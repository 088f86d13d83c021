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


def test_max_stage_drop_round_trips_and_defaults_to_two_points():
    assert Recipe().max_stage_drop == 0.02
    r = Recipe.from_dict({"max_stage_drop": 0.05, "stages": [{"convert": {}}]})
    assert r.max_stage_drop == 0.05
    assert Recipe.from_dict(r.to_dict()) == r


@pytest.mark.parametrize("bad", [-0.1, 1.5, "much", True])
def test_bad_max_stage_drop_is_one_line(bad):
    with pytest.raises(UsageError, match="max_stage_drop must be a number from 0 to 1"):
        Recipe.from_dict({"max_stage_drop": bad})


def test_readme_example_recipe_parses_and_distill_keeps_the_tuned_model():
    """The README's recipe is valid as written, and its distill trains the tuned model (no fresh student)."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = re.search(r"## Recipes.*?```yaml\n(.*?)```", readme, re.S).group(1)
    import yaml

    r = Recipe.from_dict(yaml.safe_load(block))
    names = [n for n, _ in r.stages]
    assert names[:2] == ["tune", "distill"]
    assert dict(r.stages)["distill"].student is None
