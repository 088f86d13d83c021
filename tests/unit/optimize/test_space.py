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
    # students: none + (small_cnn, mobilenet_v2_like) x 3 widths x 2 depths
    assert seen == dims.size() == 13 * (3 + 2) * 2 * (len(dims.quant["litert"]) + 3)
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
    assert dims.student == ["small_cnn:w0.5:d2", "small_cnn:w0.5:d3", "mobilenet_v2_like:w0.5:d2",
                            "mobilenet_v2_like:w0.5:d3"]
    assert dims.quant == {"litert": ["int8"], "onnxruntime": ["int8"]}
    assert sp.resolve(sp.Space.from_dict({"quant": ["u8s8", "int8_weights"]}), load_target("x86-cpu"),
                      image_input=True).quant == {"litert": ["int8_weights"], "onnxruntime": ["u8s8"]}


def test_mobilenet_students_search_alpha_and_depth():
    space = sp.Space.from_dict({"student": {"zoo": ["mobilenet_v2_like"], "width": [0.35], "depth": [3],
                                            "options": {"mobilenet_v2_like": {"kernel": 5}}}})
    dims = sp.resolve(space, load_target("x86-cpu"), image_input=True)
    assert dims.student == ["none", "mobilenet_v2_like:w0.35:d3"]
    assert sp.parse_student(dims.student[1]) == {"zoo": "mobilenet_v2_like", "alpha": 0.35, "depth": 3}
    assert sp.parse_student(dims.student[1], space.student.options) == {"zoo": "mobilenet_v2_like", "alpha": 0.35,
                                                                        "depth": 3, "kernel": 5}
    choice = {"student": dims.student[1], "channel": 0.0, "sparsity": 0.0, "cluster": 0, "runtime": "litert",
              "quant": "int8", "threads": 1}
    distill = dict(sp.to_recipe(choice, space, TrainDefaults(), 0.1).stages[:1])["distill"]
    assert distill.student.options == {"alpha": 0.35, "depth": 3, "kernel": 5}


def test_default_students_of_image_and_other_inputs():
    rpi4 = load_target("rpi4")
    image = sp.resolve(sp.Space(), rpi4, image_input=True).student
    assert "mobilenet_v2_like:w0.5:d2" in image and "small_cnn:w1:d3" in image and image[0] == "none"
    assert sp.resolve(sp.Space(), rpi4, image_input=False).student == [
        "none", *(f"mlp:w{w:g}:d{d}" for w in (0.25, 0.5, 1.0) for d in (2, 3))]
    with pytest.raises(UsageError, match="more than mobilenet_v2_like's 8 blocks"):
        sp.resolve(sp.Space.from_dict({"student": {"depth": [9]}}), rpi4, image_input=True)


def test_a_student_is_distilled_in_two_stages_short_run_first():
    choice = {"student": "small_cnn:w0.5:d2", "channel": 0.0, "sparsity": 0.0, "cluster": 0, "runtime": "litert",
              "quant": "int8", "threads": 1}
    two = sp.Space.from_dict({"student": {"epochs": 12, "screen_epochs": 3, "temperature": 2.0}})
    stages = sp.to_recipe(choice, two, TrainDefaults(), 0.1).stages
    (first, a), (second, b) = stages[:2]
    assert (first, second) == ("distill", "distill")
    assert a.student.options == {"width": 0.5, "depth": 2} and a.epochs == 3 and a.augment is not None
    assert b.student is None and b.epochs == 9 and b.temperature == a.temperature == 2.0  # trains the short run on
    assert (a.start_epoch, a.run_epochs, b.start_epoch, b.run_epochs) == (0, None, 0, None)  # a warm restart
    one = sp.Space.from_dict({"student": {"epochs": 12, "screen_epochs": None, "augment": False}})
    stages = sp.to_recipe(choice, one, TrainDefaults(), 0.1).stages
    assert [n for n, _ in stages].count("distill") == 1 and stages[0][1].epochs == 12
    assert stages[0][1].augment is None
    short = sp.Space.from_dict({"student": {"epochs": 5, "screen_epochs": 5}})  # no shorter run to screen with
    assert not short.student.screened and sp.Space().student.screened
    assert [n for n, _ in sp.to_recipe(choice, short, TrainDefaults(), 0.1).stages].count("distill") == 1


@pytest.mark.parametrize("options, needle", [
    ({"mlp": {"units": 4}}, "not among the students"),
    ({"small_cnn": {"depth": 4}}, "searched dimension"),
    ({"small_cnn": {"kernal": 5}}, "no option 'kernal'"),
    ({"small_cnn": {"kernel": 0}}, "kernel must be a positive integer"),
])
def test_bad_student_options_are_usage_errors(options, needle):
    space = sp.Space.from_dict({"student": {"zoo": ["small_cnn"], "options": options}})
    with pytest.raises(UsageError, match=needle):
        sp.resolve(space, load_target("x86-cpu"), image_input=True)


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
