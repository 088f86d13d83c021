"""core.metrics: the per-task metrics against hand-computed values, the fidelity figures, the task inference rules,
and a user's metric loaded by module:function."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from edgeopt.core import metrics
from edgeopt.errors import UsageError


def test_classification_top1_top5_and_registry():
    y = np.array([0, 1, 2, 3])
    p = np.eye(12)[[0, 2, 2, 3]] + np.eye(12)[[1, 1, 0, 0]] * 0.5  # row 1: top-1 wrong, top-2 right
    assert metrics.top1(y, p) == 0.75 and metrics.top5(y, p) == 1.0
    assert metrics.make_task("classification", num_classes=12).extra == (metrics.TOP5,)
    assert metrics.make_task("classification", num_classes=3).extra == ()  # top-5 only from 10 classes on
    assert metrics.make_task("classification").metric.name == "top1"
    assert set(metrics.TASKS) == set(metrics.TASK_NAMES)


def test_multilabel_f1_and_auc():
    y = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
    p = np.array([[0.9, 0.2], [0.6, 0.4], [0.3, 0.8], [0.7, 0.1]])
    # label 0: tp 2 fp 1 fn 0 → 0.8; label 1: tp 1 fp 0 fn 1 → 2/3
    assert metrics.f1(y, p) == pytest.approx((0.8 + 2 / 3) / 2)
    assert metrics.per_label_f1(y, p) == [0.8, pytest.approx(0.666667)]
    # label 0: positives (0.9, 0.6) vs negatives (0.3, 0.7): 3 of 4 pairs ordered; label 1: all 4
    assert metrics.auc(y, p) == pytest.approx((0.75 + 1.0) / 2)
    assert metrics.f1(y, np.log(p / (1 - p))) == metrics.f1(y, p)  # logits: threshold 0


def test_regression_mae_rmse_r2_and_direction():
    y, p = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 2.0, 2.0, 4.0])
    assert metrics.mae(y, p) == pytest.approx(0.375)
    assert metrics.rmse(y, p) == pytest.approx(np.sqrt(1.25 / 4))
    assert metrics.r2(y, p) == pytest.approx(1 - 1.25 / 5)
    task = metrics.make_task("regression")
    assert task.metric.name == "mae" and task.metric.lower_is_better
    assert task.drop(0.3, 0.4) == pytest.approx(0.1) and task.drop(0.3, 0.2) == pytest.approx(-0.1)  # a rise is worse
    assert metrics.make_task("classification").drop(0.9, 0.8) == pytest.approx(0.1)
    assert task.figures(p, y) == {"mae": 0.375, "rmse": pytest.approx(0.559017), "r2": 0.75}


def test_fidelity_cosine_and_snr():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(50, 8))
    assert metrics.cosine(ref, ref) == pytest.approx(1.0) and metrics.cosine(ref, -ref) == pytest.approx(-1.0)
    assert metrics.snr_db(ref, ref) == metrics.SNR_CAP_DB
    noisy = ref + rng.normal(size=ref.shape) * 0.1  # noise power 1% of the signal's: ~20 dB
    assert 18 < metrics.snr_db(ref, noisy) < 22
    col = np.arange(1.0, 6.0)[:, None]
    assert metrics.cosine(col, col[::-1]) < 0.9  # one value per sample: compared across samples, not by sign
    assert metrics.fidelity(ref, ref, classifier_output=True) == {"agreement": 1.0}
    assert set(metrics.fidelity(ref, noisy, classifier_output=False)) == {"cosine", "snr_db"}


@pytest.mark.parametrize("outputs, y, task", [
    (np.full((4, 3), 1 / 3), np.array([0, 1, 2, 0]), "classification"),
    (np.array([[2.0, -1.0], [0.5, 3.0]]), np.array([0, 1]), "classification"),  # logits
    (np.array([[0.9, 0.2, 0.7]] * 2), np.array([[1, 0, 1], [0, 0, 1]]), "multilabel"),
    (np.array([[0.9], [0.1]]), np.array([1, 0]), "multilabel"),  # binary sigmoid
    (np.array([[1.5], [-0.3]]), np.array([1.2, -0.4]), "regression"),
    (np.array([[1.5], [-0.3]]), np.array([3, 1]), "regression"),  # integer targets, one linear output
    (np.full((4, 3), 1 / 3), None, "raw"),
])
def test_infer_task(outputs, y, task):
    assert metrics.infer_task(outputs, y)[0] == task


def test_infer_task_refuses_what_it_cannot_tell():
    with pytest.raises(UsageError, match="cannot tell the task.*softmax output of width 3, labels values"):
        metrics.infer_task(np.full((2, 3), 1 / 3), np.array([0.5, 1.5]))


def test_user_metric_by_module_function(tmp_path, monkeypatch):
    (tmp_path / "my_metrics.py").write_text(
        "import numpy as np\n"
        "def worst(y_true, y_pred):\n    return float(np.max(np.abs(np.ravel(y_pred) - np.ravel(y_true))))\n"
        "worst.lower_is_better = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    m = metrics.load_metric("my_metrics:worst")
    assert m.name == "worst" and m.lower_is_better and m(np.array([1.0, 2.0]), np.array([1.5, 2.0])) == 0.5
    task = metrics.make_task("regression", custom=m)
    assert task.metric is m and task.custom and [x.name for x in task.extra] == ["mae", "rmse", "r2"]
    sys.modules.pop("my_metrics", None)
    for spec, match in [("nope_module_xyz:f", "cannot import nope_module_xyz"), ("my_metrics:missing", "no attribute"),
                        ("justname", "not module:function")]:
        with pytest.raises(UsageError, match=match):
            metrics.load_metric(spec)
