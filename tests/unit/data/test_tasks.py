"""data.tasks: the task resolved for a data set and a model (given or inferred), the labels as it reads them, the
user's metric as the headline, and the refusals (exit 2 with the fix) on the command line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgeopt.data.dataset import Dataset
from edgeopt.data.tasks import resolve
from edgeopt.errors import UsageError


def _data(y, name="d"):
    x = np.random.default_rng(0).random((len(y), 4)).astype(np.float32)
    return Dataset.from_arrays(name, x, y, x[:5], y[:5], x, y)


def test_classifier_keeps_ids_and_top1():
    ds = _data(np.arange(30) % 3)
    task, scored = resolve(ds, lambda x: np.full((len(x), 3), 1 / 3))
    assert (task.name, task.metric.name) == ("classification", "top1") and scored is ds


def test_regression_gets_the_values_and_multilabel_the_matrix():
    rng = np.random.default_rng(1)
    task, scored = resolve(_data(rng.normal(size=30).astype(np.float32)), lambda x: x[:, :1] * 2)
    assert task.name == "regression" and scored.y_test.dtype == np.float32 and scored.y_test.shape == (30,)
    y = (rng.random((30, 2)) > 0.5).astype(np.int64)
    task, scored = resolve(_data(y), lambda x: 1 / (1 + np.exp(-x[:, :2])))
    assert task.name == "multilabel" and scored.y_test.shape == (30, 2)


def test_raw_scores_outputs_against_the_source():
    x = np.random.default_rng(0).random((30, 4)).astype(np.float32)
    ds = Dataset.from_arrays("u", x, None, x[:5], None, x, None)
    task, scored = resolve(ds, lambda x: x[:, :2] - 0.5)  # values, not class scores
    assert (task.name, task.metric.name) == ("raw", "cosine")
    np.testing.assert_allclose(scored.y_test, x[:, :2] - 0.5)
    task, scored = resolve(ds, lambda x: np.eye(3)[np.argmax(x[:, :3], 1)])
    assert (task.name, task.metric.name) == ("raw", "agreement") and task.classifier_labels
    with pytest.raises(UsageError, match="task regression needs labels"):
        resolve(ds, lambda x: x[:, :1], task="regression")


def test_given_task_and_wrong_widths_refused():
    ds = _data(np.arange(30) % 3)
    with pytest.raises(UsageError, match="outputs 3 value.*1 label column"):
        resolve(ds, lambda x: np.full((len(x), 3), 1 / 3), task="regression")
    with pytest.raises(UsageError, match="non-integer values, not class ids"):
        resolve(_data(np.linspace(0, 1, 30)), lambda x: np.full((len(x), 3), 1 / 3))


def test_cli_refuses_a_metric_it_cannot_import(tmp_path, tiny_model_path):
    proc = subprocess.run([sys.executable, "-m", "edgeopt.cli", "compress", str(tiny_model_path), "--data", "digits",
                           "--out", str(tmp_path / "out"), "--metric", "no_such_module_q:fn"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "cannot import no_such_module_q" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_user_metric_is_the_headline_in_compress(tmp_path, tiny_model_path, digits, monkeypatch):
    from edgeopt.compress import compress
    from edgeopt.recipe import Recipe

    (tmp_path / "user_metric.py").write_text(
        "import numpy as np\n"
        "def errors(y_true, y_pred):\n    return float(np.mean(np.argmax(y_pred, -1) != y_true))\n"
        "errors.lower_is_better = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    rec = Recipe.from_dict({"stages": [{"convert": {"tflite": ["fp32"], "onnx": []}}]})
    manifest = compress(tiny_model_path, digits, tmp_path / "out", recipe=rec, metric="user_metric:errors")
    assert (manifest.source["task"], manifest.source["metric"], manifest.source["lower_is_better"]) == \
        ("classification", "errors", True)
    par = next(a for a in manifest.artifacts if a.format == "tflite").info["parity"]
    assert par["metric"] == "errors" and par["score"] == pytest.approx(1 - par["accuracy"], abs=1e-6)
    assert par["metrics"]["top1"] == par["accuracy"] and par["drop"] == pytest.approx(0.0, abs=1e-6)
    assert manifest.extra["guard"]["metric"] == "errors on the val split"
    sys.modules.pop("user_metric", None)


def test_npz_named_inputs_and_outputs(tmp_path):
    from edgeopt.core.inputs import Inputs
    from edgeopt.data.loaders import load_dataset
    from edgeopt.data.tasks import for_output

    rng = np.random.default_rng(0)
    a, b = rng.random((50, 4)).astype(np.float32), rng.integers(0, 9, (50, 3))
    cls, value = np.arange(50) % 3, rng.normal(size=50).astype(np.float32)
    path = tmp_path / "multi.npz"
    np.savez(path, **{"x_train.a": a[:40], "x_train.b": b[:40], "x_test.b": b[40:], "x_test.a": a[40:],
                      "y_train.cls": cls[:40], "y_test.cls": cls[40:], "y_train.value": value[:40],
                      "y_test.value": value[40:]})
    ds = load_dataset(path)
    assert isinstance(ds.x_train, Inputs) and ds.input_shapes == {"a": (4,), "b": (3,)}
    assert len(ds.x_train) + len(ds.x_val) == 40 and len(ds.x_test) == 10  # val carved from train, rows aligned
    assert ds.label_output == "cls" and ds.label_kind == "ids" and set(ds.output_labels) == {"cls", "value"}
    np.testing.assert_array_equal(ds.y_test, cls[40:])
    by_value = for_output(ds, "value")
    assert by_value.label_kind == "values" and by_value.label_output == "value"
    np.testing.assert_allclose(by_value.for_task("regression").y_test, value[40:])
    assert len(ds.representative(8)) == 8 and ds.representative(8).names == ["a", "b"]
    with pytest.raises(UsageError, match="none for the model's first output probs"):
        for_output(ds, "probs")


@pytest.mark.parametrize("keys, match", [
    ({"x_train.a": 1, "x_train.b": 1, "x_test.a": 1, "y_train": 0, "y_test": 0}, "splits name different inputs"),
    ({"x_train": 1, "x_train.a": 1, "x_test": 1, "y_train": 0, "y_test": 0}, "both x_train and x_train.a"),
    ({"z_train.a": 1, "x_train": 1, "x_test": 1, "y_train": 0, "y_test": 0}, "is not x_<split>.<input name>"),
])
def test_npz_named_keys_refused_with_the_fix(tmp_path, keys, match):
    from edgeopt.data.loaders import load_dataset

    rng = np.random.default_rng(0)
    arrays = {k: (rng.random((20, 3)).astype(np.float32) if v else np.arange(20) % 2) for k, v in keys.items()}
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(UsageError, match=match):
        load_dataset(tmp_path / "bad.npz")


def test_training_stages_refused_before_any_work_for_other_tasks_and_several_inputs(tmp_path):
    from edgeopt.core.inputs import Inputs
    from edgeopt.core.metrics import make_task
    from edgeopt.recipe import Recipe, run
    from edgeopt.stages import StageContext

    rec = Recipe.from_dict({"task": "regression", "stages": [{"prune": {"epochs": 1}}]})
    assert rec.task == "regression" and Recipe.from_dict(rec.to_dict()) == rec
    ds = _data(np.linspace(0, 1, 30).astype(np.float32))
    ctx = StageContext(dataset=ds, out_dir=tmp_path, base_name="m", train=rec.train, task=make_task("regression"))
    with pytest.raises(UsageError, match="stage 'prune' trains against class labels; task regression"):
        run(rec, None, ctx)
    x = Inputs({"a": ds.x_train, "b": ds.x_train})
    multi = Dataset.from_arrays("m", x, np.arange(30) % 2, x[:5], np.arange(5) % 2, x, np.arange(30) % 2)
    ctx = StageContext(dataset=multi, out_dir=tmp_path, base_name="m", train=rec.train)
    with pytest.raises(UsageError, match="several"):
        run(Recipe.from_dict({"stages": [{"prune": {"epochs": 1}}]}), None, ctx)
    with pytest.raises(UsageError, match="task must be one of"):
        Recipe.from_dict({"task": "segmentation"})
