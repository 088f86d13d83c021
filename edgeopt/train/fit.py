"""THE training loop: every stage that trains a classifier — tune, distill, prune, quantize, cluster — fits
through ``train``: recipe optimizer + LR schedule, labels alone or distilled from teacher logits, mixed
precision for the duration, and back to a plain float32 model at the end.

``train(model, x, y, settings)`` returns ``(trained float32 classifier, history dict)``; the input model's
weights are trained in place when no rebuild is needed (a final ``Dense(activation='softmax')`` or a mixed
precision policy rebuilds it, see distiller.logits_of and precision.to_policy).

The compression fine-tunes (prune, quantize, cluster) train tfmot-wrapped models, and three settings keep
them as they have always trained (``FineTuneConfig.settings``): ``fit_through="model"`` compiles the model
itself with cross-entropy on its own output (tfmot's callbacks, e.g. ``UpdatePruningStep``, must see their
wrappers as ``self.model``), float32 whatever ``train.precision`` says (tfmot's wrappers are not tested under
mixed precision), Keras's own batch-norm momentum (``scale_bn_momentum=False``) and a TensorFlow-only seed
(``seed_all=False``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from edgeopt.train import precision as precision_mod
from edgeopt.train import schedules
from edgeopt.train.schedules import LRSchedule

log = logging.getLogger(__name__)


class TrainDefaults(BaseModel):
    """Settings every training stage shares unless the stage overrides them."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=1)
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = "float32"
    lr_schedule: LRSchedule = LRSchedule()
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    weight_decay: float = Field(0.0, ge=0)  # adamw's decoupled weight decay (e.g. 0.004); the others ignore it
    seed: int = 0

    @field_validator("lr_schedule", mode="before")
    @classmethod
    def _schedule_shorthand(cls, v):
        # `lr_schedule: cosine` or `lr_schedule: 0.01` as shorthands
        if isinstance(v, str):
            return {"kind": v}
        if isinstance(v, int | float) and not isinstance(v, bool):
            return {"kind": "constant", "initial": v}
        return v


@dataclass(frozen=True)
class Settings:
    """Resolved training settings of one run (stage keys over recipe ``train:`` defaults)."""

    epochs: int
    batch_size: int = 64
    lr: float | None = None  # None: the schedule's own ``initial``
    optimizer: str = "adam"
    precision: str = "float32"
    temperature: float = 4.0
    alpha: float = 0.1  # weight of the hard-label loss when distilling
    seed: int = 0
    schedule: Any = None  # an LRSchedule (None: constant)
    weight_decay: float = 0.0
    bn_momentum: float | None = None  # None: sized to the epoch (see bn_momentum_for)
    # "distiller": the logits (softmax cut off) train through the Distiller, labels ± teacher logits (tune, distill);
    # "model": the model compiles itself, cross-entropy on its own output (the tfmot fine-tunes)
    fit_through: Literal["distiller", "model"] = "distiller"
    scale_bn_momentum: bool = True  # False: leave every BatchNormalization's momentum as the model has it
    seed_all: bool = True  # keras.utils.set_random_seed (Python, NumPy, TF); False: tf.random.set_seed only

    @classmethod
    def from_train(cls, train: Any, **overrides: Any) -> Settings:
        """From the recipe's TrainDefaults; ``None`` overrides fall back to the defaults."""
        base = cls(epochs=train.epochs, batch_size=train.batch_size, optimizer=train.optimizer,
                   precision=train.precision, seed=train.seed, schedule=train.lr_schedule,
                   weight_decay=train.weight_decay)
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    def steps_per_epoch(self, n: int) -> int:
        return max(1, math.ceil(n / self.batch_size))


class FineTuneConfig(BaseModel):
    """Keys every compression stage shares: how long and how fast to fine-tune, which layers to leave alone.

    ``None`` means "take it from the recipe's ``train:`` defaults"."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    epochs: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0)
    # fnmatch patterns on layer names or class names ("conv2d", "dense_*", "DepthwiseConv2D")
    exclude: list[str] = []
    skip_first: bool = False  # leave the first weighted layer dense / unclustered (it is small and sensitive)
    skip_last: bool = False  # same for the classifier
    # training samples the batch-norm moving statistics are re-estimated on after the fine-tune (0: keep them)
    bn_samples: int = Field(2048, ge=0)

    def settings(self, train: Any, lr_scale: float = 1.0) -> Settings:
        """The fine-tune's settings: stage keys over ``train`` defaults, starting at ``lr`` or
        ``train.lr_schedule.initial × lr_scale`` (QAT and clustering start lower)."""
        return Settings.from_train(train, epochs=self.epochs, batch_size=self.batch_size,
                                   lr=self.lr or train.lr_schedule.initial * lr_scale, precision="float32",
                                   fit_through="model", scale_bn_momentum=False, seed_all=False)


def train(model, x: np.ndarray, y: np.ndarray, settings: Settings, *, soft: np.ndarray | None = None,
          validation: tuple[np.ndarray, np.ndarray] | None = None, callbacks: Sequence = (), initial_epoch: int = 0,
          on_epoch: Callable[[int, dict], None] | None = None):
    """Fit ``model`` on (x, y) — distilled from ``soft`` (teacher logits for x) when given.

    ``callbacks`` see the Distiller as ``self.model`` (its ``student`` is the logits model), or the model itself
    with ``fit_through="model"``. ``on_epoch(epoch, logs)`` is called after each epoch. Returns (float32
    classifier, history)."""
    import tf_keras as keras

    from edgeopt.train.distiller import logits_of

    if settings.fit_through == "model" and (soft is not None or settings.precision != "float32"):
        raise ValueError("fit_through='model' trains on labels in float32 only (no teacher, no mixed precision)")
    _seed(settings)
    steps = settings.steps_per_epoch(len(x))
    classifier = model if settings.fit_through == "model" else logits_of(model, "student")[0]
    with precision_mod.policy(settings.precision):
        if settings.fit_through == "model":
            trainee, target = classifier, y
            _compile_model(classifier, x, _optimizer(settings, steps))
        else:
            classifier, trainee, target = _distiller(classifier, y, soft, settings, steps)
        if initial_epoch:
            # Hyperband continues a trial from a checkpoint: resume the schedule where it left off
            trainee.optimizer.iterations.assign(initial_epoch * steps)
        cbs = list(callbacks)
        if on_epoch is not None:
            cbs.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: on_epoch(e, dict(logs or {}))))
        hist = trainee.fit(x, target, batch_size=settings.batch_size, epochs=settings.epochs,
                           initial_epoch=initial_epoch, validation_data=validation, callbacks=cbs, shuffle=True,
                           verbose=0)
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    if settings.fit_through == "model":
        return classifier, history
    return precision_mod.to_policy(classifier, "float32"), history


def fine_tune(model, dataset, settings: Settings, *, callbacks: Sequence = (), stage: str = "fine-tune",
              recipe_precision: str = "float32", progress: Callable[[str], None] = lambda msg: None) -> dict:
    """A compression stage's fine-tune of ``model`` (trained in place) on the train split; returns the final
    train/val loss and accuracy."""
    if recipe_precision != "float32":
        log.info("%s: fine-tuning in float32 (train.precision %s applies to training stages)", stage,
                 recipe_precision)
    progress(f"{stage}: {settings.epochs} epochs × {settings.steps_per_epoch(len(dataset.x_train))} steps")
    validation = (dataset.x_val, dataset.y_val) if len(dataset.x_val) else None
    _, history = train(model, dataset.x_train, dataset.y_train, settings, validation=validation, callbacks=callbacks)
    last = {k: round(v[-1], 6) for k, v in history.items()}
    log.info("%s: %s", stage, last)
    return last


def _seed(settings: Settings) -> None:
    if settings.seed_all:
        import tf_keras as keras

        keras.utils.set_random_seed(settings.seed)
    else:
        import tensorflow as tf

        tf.random.set_seed(settings.seed)


def _optimizer(settings: Settings, steps: int):
    """The recipe's optimizer on the recipe's LR schedule, sized to this run and starting at ``settings.lr``."""
    lr = schedules.build(settings.schedule, steps, settings.epochs, initial=settings.lr)
    return schedules.optimizer(settings, lr, name=settings.optimizer)


def _compile_model(model, x: np.ndarray, optimizer) -> None:
    import tf_keras as keras

    from edgeopt.train.distiller import is_probabilities

    # a model that ends in a softmax gets plain cross-entropy; one that outputs logits, from_logits
    from_logits = not is_probabilities(model(x[:16], training=False))
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
                  metrics=["accuracy"])


def _distiller(classifier, y: np.ndarray, soft: np.ndarray | None, settings: Settings, steps: int):
    """(classifier under ``settings.precision``, compiled Distiller around its logits, fit target); runs
    inside the precision policy."""
    from edgeopt.train.distiller import logits_of, make_distiller

    classifier = precision_mod.to_policy(classifier, settings.precision)
    classifier, logits = logits_of(classifier, "student")
    if settings.scale_bn_momentum:
        set_bn_momentum(classifier, settings.bn_momentum or bn_momentum_for(steps))
    distiller = make_distiller(logits, settings.temperature, settings.alpha if soft is not None else 1.0)
    distiller.compile(optimizer=precision_mod.wrap_optimizer(_optimizer(settings, steps), settings.precision))
    return classifier, distiller, ((y, soft) if soft is not None else y)


def bn_momentum_for(steps_per_epoch: int) -> float:
    """Batch-norm moving-average momentum whose horizon (1 / (1 − m) steps) is about half an epoch, 10 to 100
    steps. Keras's fixed 0.99 (100 steps) means that on a small data set (digits: 20 steps an epoch) the
    statistics used at evaluation still mostly hold their initial values after a few epochs, so validation
    accuracy — and every short tuning trial — reads near chance however well the weights have trained."""
    horizon = min(100.0, max(10.0, steps_per_epoch / 2))
    return round(1.0 - 1.0 / horizon, 4)


def set_bn_momentum(model, momentum: float) -> None:
    """Lower (never raise) the momentum of every BatchNormalization layer to ``momentum``."""
    import tf_keras as keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization) and layer.momentum > momentum:
            layer.momentum = momentum


def evaluate(model, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> dict[str, float]:
    """Top-1 accuracy and cross-entropy of a classifier (softmax or logits output) on (x, y)."""
    from edgeopt.train.distiller import is_probabilities

    probs = np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float64)
    if not is_probabilities(probs):
        z = probs - probs.max(-1, keepdims=True)
        probs = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    ce = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0))))
    return {"accuracy": round(float(np.mean(probs.argmax(-1) == y)), 6), "loss": round(ce, 6)}
