"""The search space: every sampled candidate is a valid recipe that round-trips; an empty space is refused."""

from __future__ import annotations

import itertools

import pytest

from edgeopt.bench.targets import load_target
from edgeopt.errors import UsageError
from edgeopt.optimize import space as sp
from edgeopt.recipe import Recipe
from edgeopt.train.fit import TrainDefaults


def _all_choices(dims: sp.Dimensions):
    for student, channel, sparsity, cluster, runtime, threads in itertools.product(
            dims.student, dims.channel, dims.sparsity, dims.cluster, dims.runtime, dims.threads):
        if channel and sparsity:
            continue  # one prune stage per recipe: channel pruning or unstructured sparsity
        for quant in dims.quant[runtime]:
            yield {"student": student, "channel": channel, "sparsity": sparsity, "cluster": cluster,
                   "runtime": runtime, "quant": quant, "threads": threads}


def test_every_candidate_of_the_default_space_is_a_recipe_that_round_trips():
    space = sp.Space()
    dims = sp.resolve(space, load_target("rpi4"), image_input=True)
    seen = 0
    for choice in _all_choices(dims):
        recipe = sp.to_recipe(choice, space, TrainDefaults(epochs=1), 0.02)
        assert Recipe.from_dict(recipe.to_dict()) == recipe
        names = [name for name, _ in recipe.stages]
        assert names[-1] == "convert"
        assert ("distill" in names) == (choice["student"] != sp.NO_STUDENT)
        assert names.count("prune") == (choice["sparsity"] > 0 or choice["channel"] > 0)
        if choice["channel"]:
            assert dict(recipe.stages)["prune"].structure == "channel"
        assert ("cluster" in names) == bool(choice["cluster"])
        assert ("quantize" in names) == (choice["quant"] == "qat")
        convert = recipe.stages[-1][1]
        assert len(convert.tflite) + len(convert.onnx) == 1  # one artifact per candidate
        seen += 1
    assert seen == dims.size() == 7 * (3 + 2) * 2 * (len(dims.quant["litert"]) + 3)
    assert dims.quant["onnxruntime"] == ["fp32", "int8", "u8s8"]


def test_optuna_trial_params_map_back_to_the_choice():
    import optuna

    dims = sp.resolve(sp.Space(), load_target("x86-cpu"), image_input=True)
    params = {"student": "small_cnn:w0.5:d2", "channel": 0.0, "sparsity": 0.5, "cluster": 16,
              "runtime": "onnxruntime", "quant.onnxruntime": "int8", "threads": 2}
    choice = sp.suggest(optuna.trial.FixedTrial(params), dims)
    assert choice == sp.choices_of(params)
    assert "small_cnn w0.5 d2" in sp.describe(choice) and "int8 (onnxruntime" in sp.describe(choice)
    channel = sp.suggest(optuna.trial.FixedTrial({**params, "channel": 0.25}), dims)  # no sparsity asked then
    assert channel["sparsity"] == 0.0 and "channels -25%" in sp.describe(channel)


def test_space_config_round_trips_and_overrides():
    space = sp.Space.from_dict({"sparsity": [0.0, 0.7], "quant": ["int8"], "student": {"none": False, "width": [0.5]}})
    assert sp.Space.from_dict(space.to_dict()) == space
    dims = sp.resolve(space, load_target("x86-cpu"), image_input=True)
    assert dims.student == ["small_cnn:w0.5:d2", "small_cnn:w0.5:d3"]
    assert dims.quant == {"litert": ["int8"], "onnxruntime": ["int8"]}
    assert sp.resolve(sp.Space.from_dict({"quant": ["u8s8", "int8_weights"]}), load_target("x86-cpu"),
                      image_input=True).quant == {"litert": ["int8_weights"], "onnxruntime": ["u8s8"]}


def test_mobilenet_students_search_alpha():
    space = sp.Space.from_dict({"student": {"zoo": ["mobilenet_v2_like"], "width": [0.35]}})
    dims = sp.resolve(space, load_target("x86-cpu"), image_input=True)
    assert dims.student == ["none", "mobilenet_v2_like:w0.35"]
    assert sp.parse_student(dims.student[1]) == {"zoo": "mobilenet_v2_like", "alpha": 0.35}


@pytest.mark.parametrize("raw, needle", [
    ({"quant": []}, "optimize.quant has no choice"),
    ({"sparsity": []}, "optimize.sparsity has no choice"),
    ({"student": {"none": False, "width": []}}, "optimize.student has no choice"),
    ({"runtimes": ["onnxruntime"], "quant": ["fp16", "qat"]}, "optimize.quant has no choice"),
    ({"runtimes": ["litert"], "quant": ["u8s8"]}, "optimize.quant has no choice"),
])
def test_an_empty_space_is_a_usage_error(raw, needle):
    with pytest.raises(UsageError, match=needle):
        sp.resolve(sp.Space.from_dict(raw), load_target("x86-cpu"), image_input=True)


@pytest.mark.parametrize("raw, needle", [
    ({"sparsity": [1.5]}, "sparsity"),
    ({"quant": ["int4"]}, "quant"),
    ({"colour": 1}, "colour"),
])
def test_bad_space_values_name_the_key(raw, needle):
    with pytest.raises(UsageError, match=needle):
        sp.Space.from_dict(raw)


def test_threads_and_runtimes_must_be_the_targets():
    with pytest.raises(UsageError, match="threads"):
        sp.resolve(sp.Space(threads=[64]), load_target("rpi4"), image_input=True)
    with pytest.raises(UsageError, match="no runtime"):
        sp.resolve(sp.Space.from_dict({"runtimes": ["onnxruntime"]}), _litert_only(), image_input=True)


def _litert_only():
    from edgeopt.bench.targets import Target

    t = load_target("x86-cpu")
    return Target(spec=t.spec.model_copy(update={"runtimes": ("litert",)}))
