"""train/fit.py is the one training loop: every training stage fits through it; the compression fine-tunes train
the wrapped model itself (float32, Keras's BN momentum) through the same Distiller, self-distilled from the input
model."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.recipe import TrainDefaults
from edgeopt.stages import STAGES, StageContext
from edgeopt.train import fit
from edgeopt.train.distiller import is_probabilities

# keras-tuner's oracle calls threading.currentThread().getName() on every call
pytestmark = pytest.mark.filterwarnings("ignore:(currentThread|getName).*:DeprecationWarning")


class Trained(BaseException):
    """Raised by the stand-in loop: a BaseException, so keras-tuner does not file it as a failed trial."""


@pytest.mark.parametrize("stage, through", [("tune", "distiller"), ("distill", "distiller"), ("prune", "model"),
                                            ("quantize", "model"), ("cluster", "model")])
def test_every_training_stage_fits_through_the_one_loop(stage, through, monkeypatch, tiny_model_path, digits,
                                                        tmp_path):
    from edgeopt.models.load import load_model
    from edgeopt.recipe import parse_stage

    seen, teachers = [], []

    def stand_in(model, x, y, settings, **kwargs):
        seen.append(settings)
        teachers.append(kwargs.get("teacher") is not None or kwargs.get("soft") is not None)
        raise Trained

    monkeypatch.setattr(fit, "train", stand_in)
    ctx = StageContext(dataset=digits, out_dir=tmp_path, base_name="tiny", train=TrainDefaults(epochs=1),
                       teacher=load_model(tiny_model_path), cache_dir=tmp_path / "cache")
    with pytest.raises(Trained):
        STAGES[stage].apply(ctx.teacher, ctx, parse_stage(stage, STAGES[stage].example, stage))
    (settings,) = seen
    assert settings.fit_through == through
    assert settings.scale_bn_momentum is settings.seed_all is (through == "distiller")
    # the fine-tunes self-distil from the input model by default; tune/distill as their configs say
    assert teachers == [through == "model" or stage == "distill"]


def test_fine_tune_settings_take_the_recipe_precision_and_optimizer():
    from edgeopt.stages.quantize import QuantizeConfig

    train = TrainDefaults(precision="mixed_bfloat16", optimizer="sgd", lr_schedule=0.02, seed=7)
    s = QuantizeConfig(epochs=3).settings(train, lr_scale=0.1)
    # inherited from train: (fine_tune falls back to float32 where the wrappers cannot train mixed); the stage's
    # own key is explicit (refused there instead)
    assert (s.epochs, s.batch_size, s.optimizer, s.seed, s.precision) == (3, 64, "sgd", 7, "mixed_bfloat16")
    assert not s.precision_explicit
    own = QuantizeConfig(precision="float32").settings(train)
    assert own.precision == "float32" and own.precision_explicit
    assert TrainDefaults().precision == "auto" and QuantizeConfig().settings(TrainDefaults()).precision == "auto"
    assert s.lr == pytest.approx(0.002) and s.schedule == train.lr_schedule
    assert QuantizeConfig(lr=0.5).settings(train, lr_scale=0.1).lr == 0.5


def _bn_model():
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, use_bias=False)(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Flatten()(keras.layers.ReLU()(x))
    return keras.Model(inp, keras.layers.Dense(10, activation="softmax", name="out")(x))


def test_model_mode_trains_the_model_itself_and_keeps_bn_momentum(digits):
    model = _bn_model()
    before = model.get_layer("out").get_weights()[0].copy()
    settings = fit.Settings(epochs=1, batch_size=64, lr=0.01, fit_through="model", scale_bn_momentum=False,
                            seed_all=False)
    out, history = fit.train(model, digits.x_train[:256], digits.y_train[:256], settings)
    assert out is model and model.get_layer("bn").momentum == 0.99
    assert not np.array_equal(model.get_layer("out").get_weights()[0], before)
    assert {"loss", "student_loss", "distillation_loss", "accuracy"} <= set(history)
    assert history["distillation_loss"] == [0.0] and history["loss"] == history["student_loss"]  # labels alone
    with pytest.raises(ValueError, match="not under mixed_bfloat16"):
        fit.train(model, digits.x_train[:64], digits.y_train[:64], fit.Settings(
            epochs=1, fit_through="model", precision="mixed_bfloat16"))


def test_distiller_mode_sizes_bn_momentum_to_the_epoch(digits):
    model = _bn_model()
    out, history = fit.train(model, digits.x_train[:256], digits.y_train[:256], fit.Settings(epochs=1, lr=0.01))
    assert out.get_layer("bn").momentum == fit.bn_momentum_for(4) == 0.9
    assert {"loss", "student_loss", "distillation_loss", "accuracy"} <= set(history)


def test_probabilities_or_logits_is_decided_once():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(16, 10))
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    assert is_probabilities(p) and not is_probabilities(z) and not is_probabilities(p * 0.9)
    y = p.argmax(-1)
    model = type("Fixed", (), {"predict": lambda self, x, batch_size, verbose: x})()
    # logits are softmaxed, probabilities taken as they are: the same scores either way
    assert fit.evaluate(model, z, y) == pytest.approx(fit.evaluate(model, p, y), abs=1e-5)
