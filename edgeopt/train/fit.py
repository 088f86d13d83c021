"""One way every training stage trains a classifier: recipe optimizer + LR schedule, mixed precision for the
duration, labels alone or distilled from teacher logits, and back to a plain float32 model at the end.

``train(model, x, y, settings)`` returns ``(trained float32 classifier, history dict)``; the input model's
weights are trained in place when no rebuild is needed (a final ``Dense(activation='softmax')`` or a mixed
precision policy rebuilds it, see distiller.logits_of and precision.to_policy).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from edgeopt.train import precision as precision_mod
from edgeopt.train import schedules

log = logging.getLogger(__name__)


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
    schedule: Any = None  # recipe.LRSchedule (None: constant)
    weight_decay: float = 0.0
    bn_momentum: float | None = None  # None: sized to the epoch (see bn_momentum_for)

    @classmethod
    def from_train(cls, train: Any, **overrides: Any) -> Settings:
        """From recipe TrainDefaults; ``None`` overrides fall back to the defaults."""
        base = cls(epochs=train.epochs, batch_size=train.batch_size, optimizer=train.optimizer,
                   precision=train.precision, seed=train.seed, schedule=train.lr_schedule,
                   weight_decay=train.weight_decay)
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    def steps_per_epoch(self, n: int) -> int:
        return max(1, math.ceil(n / self.batch_size))


def train(model, x: np.ndarray, y: np.ndarray, settings: Settings, *, soft: np.ndarray | None = None,
          validation: tuple[np.ndarray, np.ndarray] | None = None, callbacks: Sequence = (), initial_epoch: int = 0,
          on_epoch: Callable[[int, dict], None] | None = None):
    """Fit ``model`` on (x, y) — distilled from ``soft`` (teacher logits for x) when given.

    ``callbacks`` see the Distiller as ``self.model`` (its ``student`` is the logits model).
    ``on_epoch(epoch, logs)`` is called after each epoch. Returns (float32 classifier, history)."""
    import tf_keras as keras

    from edgeopt.train.distiller import logits_of, make_distiller

    keras.utils.set_random_seed(settings.seed)
    classifier, _ = logits_of(model, "student")
    with precision_mod.policy(settings.precision):
        classifier = precision_mod.to_policy(classifier, settings.precision)
        classifier, logits = logits_of(classifier, "student")
        steps = settings.steps_per_epoch(len(x))
        set_bn_momentum(classifier, settings.bn_momentum or bn_momentum_for(steps))
        lr = schedules.build(settings.schedule, steps, settings.epochs, initial=settings.lr)
        opt = schedules.optimizer(settings, lr, name=settings.optimizer)
        distiller = make_distiller(logits, settings.temperature, settings.alpha if soft is not None else 1.0)
        distiller.compile(optimizer=precision_mod.wrap_optimizer(opt, settings.precision))
        if initial_epoch:
            # Hyperband continues a trial from a checkpoint: resume the schedule where it left off
            distiller.optimizer.iterations.assign(initial_epoch * steps)
        cbs = list(callbacks)
        if on_epoch is not None:
            cbs.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: on_epoch(e, dict(logs or {}))))
        target = (y, soft) if soft is not None else y
        hist = distiller.fit(x, target, batch_size=settings.batch_size, epochs=settings.epochs,
                             initial_epoch=initial_epoch, validation_data=validation, callbacks=cbs, shuffle=True,
                             verbose=0)
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    return precision_mod.to_policy(classifier, "float32"), history


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
    probs = np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float64)
    if not (np.all(probs >= -1e-6) and np.allclose(probs.sum(-1), 1.0, atol=1e-3)):
        z = probs - probs.max(-1, keepdims=True)
        probs = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    ce = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0))))
    return {"accuracy": round(float(np.mean(probs.argmax(-1) == y)), 6), "loss": round(ce, 6)}
