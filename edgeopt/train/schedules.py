"""Learning-rate schedules from the recipe's ``lr_schedule`` (``LRSchedule``, checked without TensorFlow), for
every training stage.

``build(cfg, steps_per_epoch, epochs)`` gives a tf_keras ``LearningRateSchedule`` to hand to any optimizer;
``lr_at(cfg, epoch, epochs)`` is the same curve in plain Python (tests, plots, logs); ``warmup_steps`` puts a
linear warm-up in optimizer steps in front of any kind (the compression fine-tunes' ``warmup_steps``). Epochs are fractional:
``constant_then_exponential`` and ``step`` change at epoch boundaries (the course example), the cosines per step.

Other stages call it like this::

    from edgeopt.train import schedules
    lr = schedules.build(ctx.train, steps_per_epoch, epochs, initial=cfg.lr)   # cfg.lr may be None
    optimizer = schedules.optimizer(ctx.train, lr)
"""

from __future__ import annotations

import functools
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# which optional LRSchedule keys each kind reads (others must stay unset: a key that does nothing is a mistake)
LR_KEYS = {"constant": (), "constant_then_exponential": ("hold_epochs", "decay_rate"),
           "step": ("step_epochs", "decay_rate"), "cosine": ("min_lr",), "warmup_cosine": ("warmup_epochs", "min_lr")}


class LRSchedule(BaseModel):
    """Learning rate over training, in epochs (edgeopt/train/schedules.py builds it for a stage).

    constant; constant_then_exponential (``initial`` for ``hold_epochs``, then × ``decay_rate`` per epoch);
    step (× ``decay_rate`` every ``step_epochs``); cosine (to ``min_lr`` at the last epoch); warmup_cosine
    (linear from 0 over ``warmup_epochs``, then cosine). Unset keys take per-kind defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["constant", "constant_then_exponential", "step", "cosine", "warmup_cosine"] = "constant"
    initial: float = Field(1e-3, gt=0)
    hold_epochs: float | None = Field(None, ge=0)
    decay_rate: float | None = Field(None, gt=0, le=1)
    step_epochs: float | None = Field(None, gt=0)
    warmup_epochs: float | None = Field(None, ge=0)
    min_lr: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _keys_fit_kind(self) -> LRSchedule:
        allowed = LR_KEYS[self.kind]
        for key in ("hold_epochs", "decay_rate", "step_epochs", "warmup_epochs", "min_lr"):
            if getattr(self, key) is not None and key not in allowed:
                raise ValueError(f"'{key}' does nothing for kind '{self.kind}' (it reads: "
                                 f"{', '.join(allowed) or 'only initial'})")
        if self.min_lr is not None and self.min_lr > self.initial:
            raise ValueError(f"min_lr {self.min_lr} is above initial {self.initial}")
        return self


# per-kind defaults for the keys LRSchedule leaves unset
DEFAULTS = {"hold_epochs": 0.0, "decay_rate": {"constant_then_exponential": 0.9, "step": 0.5}, "step_epochs": 10.0,
            "warmup_epochs": 1.0, "min_lr": 0.0}


def resolve(cfg: Any, initial: float | None = None):
    """An LRSchedule from a TrainDefaults, an LRSchedule, a dict or a bare float; ``initial`` overrides its start."""
    if hasattr(cfg, "lr_schedule"):
        cfg = cfg.lr_schedule
    if isinstance(cfg, int | float) and not isinstance(cfg, bool):
        cfg = LRSchedule(initial=float(cfg))
    elif isinstance(cfg, dict):
        cfg = LRSchedule.model_validate(cfg)
    elif cfg is None:
        cfg = LRSchedule()
    if initial is not None:
        cfg = LRSchedule.model_validate({**cfg.model_dump(exclude_none=True), "initial": float(initial)})
    return cfg


def params(cfg) -> dict[str, float]:
    """The numbers the curve reads, per-kind defaults filled in."""
    out = {"initial": float(cfg.initial)}
    for key in ("hold_epochs", "decay_rate", "step_epochs", "warmup_epochs", "min_lr"):
        value = getattr(cfg, key)
        if value is None:
            default = DEFAULTS[key]
            value = default.get(cfg.kind, 1.0) if isinstance(default, dict) else default
        out[key] = float(value)
    return out


def lr_at(cfg: Any, epoch: float, epochs: int) -> float:
    """Learning rate at (fractional) ``epoch`` of a run of ``epochs`` epochs."""
    cfg = resolve(cfg)
    p = params(cfg)
    lr0 = p["initial"]
    if cfg.kind == "constant":
        return lr0
    if cfg.kind == "constant_then_exponential":
        if epoch < p["hold_epochs"]:
            return lr0
        return lr0 * p["decay_rate"] ** max(0.0, math.floor(epoch) - p["hold_epochs"] + 1)
    if cfg.kind == "step":
        return lr0 * p["decay_rate"] ** math.floor(epoch / p["step_epochs"])
    warm = p["warmup_epochs"] if cfg.kind == "warmup_cosine" else 0.0
    if epoch < warm:
        return lr0 * epoch / warm
    span = max(epochs - warm, 1e-9)
    progress = min(1.0, (epoch - warm) / span)
    return p["min_lr"] + (lr0 - p["min_lr"]) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build(cfg: Any, steps_per_epoch: int, epochs: int, initial: float | None = None, warmup_steps: int = 0,
          start_step: int = 0):
    """A tf_keras LearningRateSchedule for a run of ``epochs`` × ``steps_per_epoch`` optimizer steps; with
    ``warmup_steps`` the rate rises linearly from initial / warmup_steps at the first step to the curve's value
    at step ``warmup_steps`` (counted in optimizer steps, so it means the same whatever the data size).
    ``start_step``: the schedule of a run that continues one cut short — an optimizer's step 0 reads the curve at
    ``start_step`` (its own step count, which Adam's bias correction reads, still starts at 0)."""
    if steps_per_epoch < 1 or epochs < 1:
        raise ValueError(f"steps_per_epoch ({steps_per_epoch}) and epochs ({epochs}) must be ≥ 1")
    if warmup_steps < 0 or start_step < 0:
        raise ValueError(f"warmup_steps ({warmup_steps}) and start_step ({start_step}) must be ≥ 0")
    cfg = resolve(cfg, initial)
    return _schedule_class()(kind=cfg.kind, steps_per_epoch=int(steps_per_epoch), epochs=int(epochs),
                             warmup_steps=int(warmup_steps), start_step=int(start_step), **params(cfg))


def warmup_factor(step: int, warmup_steps: int) -> float:
    """The share of the curve's rate at (0-based) optimizer ``step`` under a linear warm-up."""
    return 1.0 if warmup_steps <= 0 else min(1.0, (step + 1) / warmup_steps)


def optimizer(train: Any, learning_rate, name: str | None = None):
    """The recipe's optimizer (``train.optimizer``: adam, adamw, sgd, rmsprop) at ``learning_rate``."""
    import tf_keras as keras

    name = name or getattr(train, "optimizer", "adam")
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=float(getattr(train, "weight_decay", 0.0)))
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate)
    from edgeopt.errors import UsageError

    raise UsageError(f"unknown optimizer '{name}'", "use adam, adamw, sgd or rmsprop")


@functools.cache
def _schedule_class():
    """Defined on first use so importing this module stays free of TensorFlow; registered so saved models load."""
    import tensorflow as tf
    import tf_keras as keras

    @keras.saving.register_keras_serializable(package="edgeopt")
    class EpochSchedule(keras.optimizers.schedules.LearningRateSchedule):
        def __init__(self, kind, steps_per_epoch, epochs, initial, hold_epochs, decay_rate, step_epochs,
                     warmup_epochs, min_lr, warmup_steps=0, start_step=0):
            super().__init__()
            self.warmup_steps, self.start_step = int(warmup_steps), int(start_step)
            self.kind, self.steps_per_epoch, self.epochs = kind, steps_per_epoch, epochs
            self.initial, self.hold_epochs, self.decay_rate = initial, hold_epochs, decay_rate
            self.step_epochs, self.warmup_epochs, self.min_lr = step_epochs, warmup_epochs, min_lr

        def __call__(self, step):
            step = tf.cast(step, tf.float32) + float(self.start_step)
            lr = self._curve(step)
            if self.warmup_steps <= 0:
                return lr
            return lr * tf.minimum(1.0, (tf.cast(step, tf.float32) + 1.0) / float(self.warmup_steps))

        def _curve(self, step):
            epoch = tf.cast(step, tf.float32) / float(self.steps_per_epoch)
            lr0 = tf.constant(self.initial, tf.float32)
            if self.kind == "constant":
                return lr0
            if self.kind == "constant_then_exponential":
                n = tf.maximum(0.0, tf.floor(epoch) - self.hold_epochs + 1.0)
                return tf.where(epoch < self.hold_epochs, lr0, lr0 * tf.pow(self.decay_rate, n))
            if self.kind == "step":
                return lr0 * tf.pow(self.decay_rate, tf.floor(epoch / self.step_epochs))
            warm = self.warmup_epochs if self.kind == "warmup_cosine" else 0.0
            span = max(self.epochs - warm, 1e-9)
            progress = tf.clip_by_value((epoch - warm) / span, 0.0, 1.0)
            cosine = self.min_lr + (lr0 - self.min_lr) * 0.5 * (1.0 + tf.cos(math.pi * progress))
            if warm <= 0:
                return cosine
            return tf.where(epoch < warm, lr0 * epoch / warm, cosine)

        def get_config(self):
            return {"kind": self.kind, "steps_per_epoch": self.steps_per_epoch, "epochs": self.epochs,
                    "initial": self.initial, "hold_epochs": self.hold_epochs, "decay_rate": self.decay_rate,
                    "step_epochs": self.step_epochs, "warmup_epochs": self.warmup_epochs, "min_lr": self.min_lr,
                    "warmup_steps": self.warmup_steps, "start_step": self.start_step}

    return EpochSchedule
