"""Distillation: the loss is the formula, the teacher stays frozen, logits are read correctly off softmax
models, the stage hands back a plain student, and bad pairs are one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.errors import UsageError
from edgeopt.recipe import Recipe, TrainDefaults

keras = pytest.importorskip("tf_keras")


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _dense_softmax_model(shape, classes, activation="softmax"):
    inp = keras.Input(shape)
    x = keras.layers.Flatten()(inp)
    x = keras.layers.Dense(16, activation="relu")(x)
    return keras.Model(inp, keras.layers.Dense(classes, activation=activation, name="out")(x))


def test_loss_is_alpha_ce_plus_t2_kl():
    from edgeopt.train.distiller import make_distiller

    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(6, 5)).astype("float32"), rng.normal(size=(6, 5)).astype("float32") * 3
    y = rng.integers(0, 5, 6)
    temp, alpha = 3.0, 0.25
    d = make_distiller(keras.Sequential([keras.layers.Input((5,))]), temperature=temp, alpha=alpha)
    loss, ce, kd = (float(v) for v in d._loss_terms(y, s, t))
    want_ce = -np.mean(np.log(_softmax(s)[np.arange(6), y]))
    p_t, p_s = _softmax(t / temp), _softmax(s / temp)
    want_kd = temp ** 2 * np.mean(np.sum(p_t * np.log(p_t / p_s), axis=-1))
    assert ce == pytest.approx(want_ce, rel=1e-5)
    assert kd == pytest.approx(want_kd, rel=1e-4)
    assert loss == pytest.approx(alpha * want_ce + (1 - alpha) * want_kd, rel=1e-4)
    assert float(d._loss_terms(y, s, None)[0]) == pytest.approx(want_ce, rel=1e-5)  # no teacher: labels alone


def test_logits_of_softmax_layer_dense_softmax_and_logits(digits):
    from edgeopt.models import zoo
    from edgeopt.train.distiller import logits_of

    x = digits.x_test[:4]
    z = zoo.build("small_cnn", digits.input_shape, 10, width=0.25)
    clf, logits = logits_of(z)
    assert clf is z and logits.layers[-1].name == "logits"
    np.testing.assert_allclose(_softmax(np.asarray(logits(x))), np.asarray(z(x)), atol=1e-5)

    dense = _dense_softmax_model(digits.input_shape, 10)
    clf, logits = logits_of(dense)
    assert clf.layers[-1].name == "softmax" and clf.layers[-1].dtype_policy.name == "float32"
    np.testing.assert_allclose(np.asarray(clf(x)), np.asarray(dense(x)), atol=1e-6)
    np.testing.assert_allclose(_softmax(np.asarray(logits(x))), np.asarray(dense(x)), atol=1e-5)

    raw = _dense_softmax_model(digits.input_shape, 10, activation=None)
    assert logits_of(raw) == (raw, raw)
    with pytest.raises(UsageError, match="ends in a 'sigmoid' activation, so its output is not a class distribution"):
        logits_of(_dense_softmax_model(digits.input_shape, 10, activation="sigmoid"), "teacher")


@pytest.fixture(scope="module")
def teacher(tiny_model_path):
    from edgeopt.models.load import load_model

    return load_model(tiny_model_path)


def _ctx(digits, teacher, epochs=2):
    from edgeopt.stages import StageContext

    return StageContext(dataset=digits, out_dir=None, base_name="t", teacher=teacher,
                        train=TrainDefaults(epochs=epochs, lr_schedule={"kind": "constant", "initial": 0.01}))


def _cfg(raw):
    return Recipe.from_dict({"stages": [{"distill": raw}]}).stages[0][1]


def test_stage_returns_a_plain_trained_student_and_leaves_the_teacher_frozen(digits, teacher):
    from edgeopt.stages import distill

    before = [w.copy() for w in teacher.get_weights()]
    ctx = _ctx(digits, teacher)
    student = distill.apply(teacher, ctx, _cfg({"student": {"zoo": "mlp", "width": 0.25, "depth": 1},
                                                "temperature": 2.0, "alpha": 0.5}))
    assert isinstance(student, keras.Model) and type(student).__name__ != "Distiller"
    assert student.layers[-1].name == "softmax"
    for a, b in zip(before, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    notes = ctx.notes["distillation"]
    assert notes["student"]["params"] < notes["teacher"]["params"]
    assert notes["student"]["val_accuracy"] > 0.6, notes  # well above chance (0.1) after two epochs
    assert notes["split"] == "val" and "test_accuracy" not in notes["student"]  # the test split stays unread
    probs = student.predict(digits.x_test[:8], verbose=0)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


def test_without_student_the_previous_model_keeps_training(digits, teacher):
    from edgeopt.models import zoo
    from edgeopt.stages import distill

    previous = zoo.build("small_cnn", digits.input_shape, 10, width=0.25, depth=1)
    w0 = previous.get_layer("block1_conv").get_weights()[0].copy()
    ctx = _ctx(digits, teacher, epochs=1)
    ctx.stages_done.append("tune")
    out = distill.apply(previous, ctx, _cfg({}))
    assert out.name == previous.name
    assert ctx.notes["distillation"]["student"]["origin"].startswith("the tune stage's model, trained further")
    assert not np.array_equal(out.get_layer("block1_conv").get_weights()[0], w0)


def test_a_distill_stage_can_continue_the_schedule_of_an_earlier_one(digits, teacher):
    """start_epoch / run_epochs: the stage's optimizer reads the whole run's LR curve from where the earlier
    part stopped (not a restarted schedule), and says so in its notes."""
    from edgeopt.stages import distill
    from edgeopt.train import fit, schedules

    cosine = {"kind": "cosine", "initial": 0.01}
    opt = fit._optimizer(fit.Settings(epochs=4, start_epoch=2, run_epochs=6, schedule=cosine), steps=10)
    whole = schedules.build(cosine, steps_per_epoch=10, epochs=6)
    rest = type(whole).from_config(opt.get_config()["learning_rate"]["config"])  # what the optimizer steps with
    assert float(rest(0)) == pytest.approx(float(whole(20)), rel=1e-6)
    assert float(rest(39)) == pytest.approx(float(whole(59)), rel=1e-6)
    ctx = _ctx(digits, teacher, epochs=1)
    distill.apply(teacher, ctx, _cfg({"student": {"zoo": "mlp", "width": 0.25, "depth": 1}, "start_epoch": 3,
                                      "run_epochs": 4}))
    assert ctx.notes["distillation"]["schedule"] == {"start_epoch": 3, "run_epochs": 4}
    assert ctx.notes["distillation"]["epochs"] == 1
    with pytest.raises(UsageError, match="start_epoch 3 \\+ epochs 2 run past run_epochs 4"):  # epochs from train:
        distill.apply(teacher, _ctx(digits, teacher), _cfg({"student": {"zoo": "mlp"}, "start_epoch": 3,
                                                            "run_epochs": 4}))
    with pytest.raises(UsageError, match="start_epoch 3 \\+ epochs 2 run past run_epochs 4"):  # when parsed
        _cfg({"epochs": 2, "start_epoch": 3, "run_epochs": 4})


def test_dense_softmax_student_file(digits, teacher, tmp_path):
    from edgeopt.stages import distill

    path = tmp_path / "student.keras"
    _dense_softmax_model(digits.input_shape, 10).save(path)
    out = distill.apply(teacher, _ctx(digits, teacher, epochs=1), _cfg({"student": {"path": str(path)}}))
    assert [layer.name for layer in out.layers][-2:] == ["out_logits", "softmax"]


def test_bad_pairs_are_usage_errors(digits, teacher, tmp_path):
    from edgeopt.stages import distill

    wrong_classes = tmp_path / "five.keras"
    _dense_softmax_model(digits.input_shape, 5).save(wrong_classes)
    with pytest.raises(UsageError, match="the student outputs 5 classes but the teacher 10"):
        distill.apply(teacher, _ctx(digits, teacher), _cfg({"student": {"path": str(wrong_classes)}}))
    sigmoid_teacher = _dense_softmax_model(digits.input_shape, 10, activation="sigmoid")
    with pytest.raises(UsageError, match="not a class distribution"):
        distill.apply(sigmoid_teacher, _ctx(digits, sigmoid_teacher), _cfg({"student": {"zoo": "mlp"}}))
    with pytest.raises(UsageError, match="has no teacher"):
        distill.apply(teacher, _ctx(digits, None), _cfg({"student": {"zoo": "mlp"}}))


def test_distill_says_which_model_it_trains():
    from edgeopt.stages.distill import DistillConfig, student_origin

    assert student_origin(DistillConfig(), ["tune"]) == "the tune stage's model, trained further (no student: given)"
    assert "self-distillation" in student_origin(DistillConfig(), [])
    fresh = student_origin(DistillConfig(student={"zoo": "small_cnn", "width": 0.25}), ["tune"])
    assert fresh.startswith("a fresh small_cnn (width=0.25)") and "the tune stage's model is not used" in fresh
    assert student_origin(DistillConfig(student={"path": "s.keras"}), []) == "file s.keras from student:"



def test_augmented_distillation_runs_the_teacher_on_each_augmented_batch(digits, teacher, monkeypatch):
    from edgeopt.stages import distill
    from edgeopt.train import fit

    seen = {}
    real = fit.train

    def spy(model, x, y, settings, **kw):
        seen.update(soft=kw.get("soft"), teacher=kw.get("teacher"), augment=settings.augment)
        return real(model, x, y, settings, **kw)

    monkeypatch.setattr(fit, "train", spy)
    spec = {"student": {"zoo": "mlp", "width": 0.25, "depth": 1}, "temperature": 2.0, "alpha": 0.5}
    plain_ctx, aug_ctx = _ctx(digits, teacher), _ctx(digits, teacher)
    plain = distill.apply(teacher, plain_ctx, _cfg(spec))
    assert seen["soft"] is not None and seen["teacher"] is None and seen["augment"] is None  # logits once
    augmented = distill.apply(teacher, aug_ctx, _cfg({**spec, "augment": {"shift": 0.15, "crop": 0.0}}))
    assert seen["soft"] is None and seen["teacher"] is not None and seen["augment"].shift == 0.15
    note = aug_ctx.notes["distillation"]["augment"]
    assert note["applied"] and note["shift_pixels"] == [1, 1]  # 15 % of 8 px, whole pixels
    assert plain_ctx.notes["distillation"]["augment"] == {"applied": False, "why": "off in the recipe"}
    assert aug_ctx.notes["distillation"]["student"]["val_accuracy"] > 0.3  # trains (chance: 0.1)
    w_plain, w_aug = plain.get_layer("dense1").get_weights()[0], augmented.get_layer("dense1").get_weights()[0]
    assert not np.allclose(w_plain, w_aug)  # same seeds: only the augmented batches differ
    assert _cfg({**spec, "augment": True}).augment.shift == 0.1 and _cfg({**spec, "augment": False}).augment is None
