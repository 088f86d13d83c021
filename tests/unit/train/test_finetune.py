"""The compression fine-tune's options in the one loop: self-distillation from the input model, warm-up in steps,
validation on fresh batch-norm statistics with early stopping, light augmentation of image inputs, and the recipe
keys that switch them."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.errors import UsageError
from edgeopt.recipe import Recipe, TrainDefaults
from edgeopt.stages.prune import PruneConfig
from edgeopt.stages.quantize import QuantizeConfig
from edgeopt.train import augment, fit, schedules
from edgeopt.train.augment import AugmentConfig
from edgeopt.train.early_stopping import EarlyStoppingConfig


def _bn_model(classes=10, seed=0, bn=True):
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, use_bias=False)(inp)
    x = keras.layers.BatchNormalization(name="bn")(x) if bn else x
    x = keras.layers.Flatten()(keras.layers.ReLU()(x))
    x = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inp, keras.layers.Activation("softmax", name="softmax")(x), name=f"m{classes}")


@pytest.fixture(scope="module")
def small(digits):
    from edgeopt.data.dataset import Dataset

    return Dataset.from_arrays("digits-small", digits.x_train[:384], digits.y_train[:384], digits.x_val[:96],
                               digits.y_val[:96], digits.x_test[:64], digits.y_test[:64], num_classes=10)


# --- recipe keys ---------------------------------------------------------------------------------------------

def test_defaults_self_distil_with_early_stopping_and_augment_only_when_asked():
    t = TrainDefaults()
    assert (t.self_distill, t.temperature, t.alpha, t.warmup_steps) == (True, 1.0, 0.5, 0)
    assert t.early_stopping == EarlyStoppingConfig(patience=2, monitor="val_loss")
    assert t.augment is None
    assert TrainDefaults(augment=True).augment == AugmentConfig(shift=0.1, crop=0.1, flip=False)  # no flips
    s = PruneConfig().settings(t)
    assert s.self_distill and s.early_stopping == t.early_stopping and s.augment is None
    assert PruneConfig(augment=True).settings(t).augment == AugmentConfig()
    assert s.precision == "auto" and s.bn_samples == 2048  # float32 on a CPU: test_precision_finetune.py


def test_stage_keys_override_the_train_defaults_and_false_switches_off():
    rec = Recipe.from_dict({"train": {"alpha": 0.5, "augment": {"shift": 0.2, "flip": True}, "warmup_steps": 10},
                            "stages": [{"prune": {"self_distill": False, "augment": False, "early_stopping": {
                                "patience": 1, "monitor": "val_accuracy"}}},
                                       {"quantize": {"temperature": 2.0}}]})
    prune, quant = rec.stages[0][1].settings(rec.train), rec.stages[1][1].settings(rec.train, lr_scale=0.1)
    assert (prune.self_distill, prune.augment, prune.alpha, prune.warmup_steps) == (False, None, 0.5, 10)
    assert prune.early_stopping == EarlyStoppingConfig(patience=1, monitor="val_accuracy")
    assert (quant.self_distill, quant.temperature, quant.augment) == (True, 2.0, AugmentConfig(shift=0.2, flip=True))
    off = Recipe.from_dict({"train": {"augment": False, "early_stopping": False}}).train
    assert off.augment is None and off.early_stopping is None
    assert Recipe.from_dict(rec.to_dict()) == rec and Recipe.from_dict(Recipe(train=off).to_dict()).train == off


@pytest.mark.parametrize("bad, match", [({"train": {"augment": {"rotate": "sideways"}}}, "rotate"),
                                        ({"train": {"augment": {"shift": 0.9}}}, "shift"),
                                        ({"train": {"alpha": 2}}, "alpha"),
                                        ({"stages": [{"quantize": {"early_stopping": {"patience": -1}}}]}, "patience"),
                                        ({"stages": [{"cluster": {"warmup_steps": -5}}]}, "warmup_steps")])
def test_bad_fine_tune_keys_are_usage_errors(bad, match):
    with pytest.raises(UsageError, match=match):
        Recipe.from_dict(bad)


def test_a_recipe_without_the_new_keys_means_what_it_meant_plus_self_distillation():
    s = QuantizeConfig(epochs=3).settings(TrainDefaults(epochs=7, batch_size=32), lr_scale=0.1)
    assert (s.epochs, s.batch_size, s.lr, s.fit_through, s.scale_bn_momentum) == (3, 32, pytest.approx(1e-4),
                                                                                   "model", False)


# --- warm-up --------------------------------------------------------------------------------------------------

def test_warmup_rises_linearly_in_steps_then_follows_the_curve():
    sched = schedules.build({"kind": "cosine", "initial": 0.01}, steps_per_epoch=10, epochs=5, warmup_steps=8)
    plain = schedules.build({"kind": "cosine", "initial": 0.01}, steps_per_epoch=10, epochs=5)
    for step in (0, 3, 7, 8, 20, 49):
        want = float(plain(step)) * schedules.warmup_factor(step, 8)
        assert float(sched(step)) == pytest.approx(want, rel=1e-5)
    assert float(sched(0)) == pytest.approx(0.01 / 8, rel=1e-4) and float(sched(8)) == pytest.approx(float(plain(8)))
    assert sched.get_config()["warmup_steps"] == 8
    assert type(sched).from_config(sched.get_config()).warmup_steps == 8
    with pytest.raises(ValueError, match="warmup_steps"):
        schedules.build(None, 10, 1, warmup_steps=-1)


def test_a_run_cut_in_two_follows_one_schedule():
    """The second part of a run (start_step) reads the whole run's curve where the first part stopped, warm-up
    included, instead of restarting it."""
    cfg = {"kind": "cosine", "initial": 0.01}
    whole = schedules.build(cfg, steps_per_epoch=10, epochs=6, warmup_steps=25)  # warm-up runs past the cut
    rest = schedules.build(cfg, steps_per_epoch=10, epochs=6, warmup_steps=25, start_step=20)  # epochs 2-5
    for step in range(20, 60):
        assert float(rest(step - 20)) == pytest.approx(float(whole(step)), rel=1e-6)
    plain = schedules.build(cfg, steps_per_epoch=10, epochs=6)  # still warming up at the cut (steps 20-24 of 25)
    assert float(rest(0)) == pytest.approx(float(plain(20)) * schedules.warmup_factor(20, 25), rel=1e-6)
    assert schedules.warmup_factor(20, 25) < 1
    assert float(rest(0)) < float(schedules.build(cfg, steps_per_epoch=10, epochs=4)(0))  # not a restart
    assert type(rest).from_config(rest.get_config()).start_step == 20
    with pytest.raises(ValueError, match="start_step"):
        schedules.build(None, 10, 1, start_step=-1)


# --- augmentation ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, image", [((8, 8, 1), True), ((32, 32, 3), True), ((32, 32, 4), False),
                                          ((20,), False), ((16, 8), False), ((1, 1, 3), False),
                                          ((None, None, 3), False)])
def test_only_image_inputs_are_augmented(shape, image):
    assert augment.is_image(shape) is image
    assert (augment.make(AugmentConfig(), shape) is not None) is image
    assert augment.describe(AugmentConfig(), shape)["applied"] is image
    assert augment.describe(None, shape) == {"applied": False, "why": "off in the recipe"}


def test_shifts_are_whole_pixels_within_the_fraction_and_evaluation_is_untouched():
    assert augment.shift_pixels(AugmentConfig(shift=0.1), (8, 8, 1)) == (0, 0)  # 0.8 px: none, not a blur
    assert augment.shift_pixels(AugmentConfig(shift=0.1), (32, 48, 3)) == (3, 4)
    rng = np.random.default_rng(0)
    x = rng.random((16, 32, 32, 3)).astype(np.float32)
    fn = augment.make(AugmentConfig(shift=0.1, crop=0.0), x.shape[1:], seed=3)
    out = np.asarray(fn(x, training=True))
    assert np.asarray(fn(x, training=False)) is x or np.array_equal(np.asarray(fn(x, training=False)), x)
    padded = np.pad(x, ((0, 0), (3, 3), (3, 3), (0, 0)), mode="symmetric")
    moved = 0
    for i in range(len(x)):
        offsets = [(dy, dx) for dy in range(7) for dx in range(7)
                   if np.array_equal(padded[i, dy:dy + 32, dx:dx + 32], out[i])]
        assert offsets, f"sample {i} is not a whole-pixel shift of its input"
        moved += offsets[0] != (3, 3)
    assert moved >= 8  # each sample draws its own shift


def test_flip_is_off_unless_asked():
    x = np.tile(np.arange(8, dtype=np.float32)[None, None, :, None], (64, 8, 1, 1))
    out = np.asarray(augment.make(AugmentConfig(shift=0.0, crop=0.0, flip=True), x.shape[1:])(x))
    flipped = [np.array_equal(o, x[0, :, ::-1]) for o in out]
    assert any(flipped) and not all(flipped)
    assert augment.make(AugmentConfig(shift=0.0, crop=0.0), x.shape[1:]) is None


def test_rotate_turns_each_sample_by_quarter_turns_of_square_images_only():
    rng = np.random.default_rng(1)
    x = rng.random((32, 8, 8, 1)).astype(np.float32)
    cfg = AugmentConfig(shift=0.0, crop=0.0, rotate=True)
    out = np.asarray(augment.make(cfg, x.shape[1:], seed=2)(x, training=True))
    turns = []
    for i in range(len(x)):
        k = [j for j in range(4) if np.array_equal(np.rot90(x[i], j, axes=(0, 1)), out[i])]
        assert k, f"sample {i} is not a quarter turn of its input"
        turns.append(k[0])
    assert len(set(turns)) >= 3  # each sample draws its own turn
    assert augment.make(AugmentConfig(shift=0.0, crop=0.0), x.shape[1:]) is None  # off unless asked
    wide = augment.describe(cfg, (8, 16, 3))
    assert wide["applied"] is False or wide["rotate"] is False
    assert "not square" in augment.describe(AugmentConfig(rotate=True), (8, 16, 3))["rotate_why"]
    assert augment.describe(cfg, (8, 8, 1))["rotate"] is True


# --- self-distillation, validation, early stopping -------------------------------------------------------------

def _settings(**kw):
    base = dict(epochs=2, batch_size=64, lr=0.01, fit_through="model", scale_bn_momentum=False, seed_all=False,
                self_distill=True, bn_samples=256)
    return fit.Settings(**{**base, **kw})


def test_fine_tune_self_distils_from_the_teacher_and_validates_on_fresh_statistics(small):
    teacher, student = _bn_model(seed=1), _bn_model(seed=2)
    out = fit.fine_tune(student, small, _settings(), teacher=teacher)
    assert out["self_distill"] == {"on": True, "teacher": teacher.name, "temperature": 4.0, "alpha": 0.1}
    assert out["distillation_loss"] > 0 and out["loss"] != out["student_loss"]
    assert out["validation"]["split"] == "val"
    # the logged val figures are the model's own on val (statistics re-estimated before scoring)
    assert out["val_accuracy"] == fit.evaluate(student, small.x_val, small.y_val)["accuracy"]
    alone = fit.fine_tune(_bn_model(seed=2), small, _settings(self_distill=False), teacher=teacher)
    assert alone["self_distill"]["on"] is False and alone["distillation_loss"] == 0.0
    assert alone["loss"] == alone["student_loss"]


def test_a_teacher_that_does_not_fit_is_left_out_and_said_so(small):
    out = fit.fine_tune(_bn_model(), small, _settings(epochs=1), teacher=_bn_model(classes=7))
    assert out["self_distill"]["on"] is False and "differ" in out["self_distill"]["why"]
    assert fit.fine_tune(_bn_model(), small, _settings(epochs=1))["self_distill"]["on"] is False


def test_augmented_batches_get_the_teachers_logits_on_the_same_batch(small):
    """With augmentation the teacher runs on each augmented batch: distilling a model from its own copy then
    costs (almost) nothing, which precomputed logits of the clean inputs would not give."""
    import tf_keras as keras

    teacher = _bn_model(seed=4, bn=False)  # no batch norm: training and inference mode compute the same
    fit.fine_tune(teacher, small, _settings(epochs=1, self_distill=False))
    student = keras.models.clone_model(teacher)
    student.set_weights(teacher.get_weights())
    cfg = AugmentConfig(shift=0.0, crop=0.3)
    out = fit.fine_tune(student, small, _settings(epochs=1, lr=1e-9, augment=cfg), teacher=teacher)
    assert out["augment"]["applied"] is True
    assert out["distillation_loss"] < 1e-3


class _Sabotage:
    """After epoch ``after`` (0-based) zero the classifier's kernel: every later epoch scores worse."""

    def __new__(cls, model, after):
        import tf_keras as keras

        class Cb(keras.callbacks.Callback):
            kept = None

            def on_epoch_end(self, epoch, logs=None):
                layer = model.get_layer("logits")
                if epoch == after:
                    Cb.kept = [w.copy() for w in layer.get_weights()]
                if epoch > after:
                    layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])

        return Cb()


def test_early_stopping_keeps_the_best_epoch_and_stops_after_patience(small):
    model = _bn_model()
    sabotage = _Sabotage(model, after=1)
    out = fit.fine_tune(model, small, _settings(epochs=6, self_distill=False,
                                                early_stopping=EarlyStoppingConfig(patience=2)),
                        callbacks=[sabotage])
    v = out["validation"]
    assert (v["best_epoch"], v["epochs_run"], v["restored_best"], v["monitor"]) == (2, 4, True, "val_loss")
    for a, b in zip(model.get_layer("logits").get_weights(), sabotage.kept, strict=True):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_never_keeps_an_epoch_before_start_epoch(small):
    model = _bn_model()
    out = fit.fine_tune(model, small, _settings(epochs=4, self_distill=False,
                                                early_stopping=EarlyStoppingConfig(patience=5)),
                        callbacks=[_Sabotage(model, after=0)], start_epoch=2)
    assert out["validation"]["best_epoch"] >= 3 and out["validation"]["start_epoch"] == 2
    off = fit.fine_tune(_bn_model(), small, _settings(epochs=2, self_distill=False, early_stopping=None))
    assert "best_epoch" not in off["validation"] and "val_loss" in off


def test_prune_keeps_its_target_sparsity_with_the_defaults(small, tmp_path):
    from edgeopt.stages import StageContext, prune
    from edgeopt.train.layers import kernel_sparsity, overall

    teacher = _bn_model(seed=5)
    fit.fine_tune(teacher, small, _settings(epochs=2, self_distill=False))
    ctx = StageContext(dataset=small, out_dir=tmp_path, base_name="m", train=TrainDefaults(), teacher=teacher)
    out = prune.apply(teacher, ctx, PruneConfig(target_sparsity=0.75, epochs=3))
    notes = ctx.notes["pruning"]
    ft = notes["fine_tune"]
    assert ft["self_distill"]["on"] and ft["validation"]["start_epoch"] == notes["schedule"]["end_step"] // 6
    assert overall(kernel_sparsity(out), notes["pruned_layers"]) >= 0.74
