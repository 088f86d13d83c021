"""THE training loop: every stage that trains a classifier — tune, distill, prune, quantize, cluster — fits
through ``train``: recipe optimizer + LR schedule, labels alone or distilled from teacher logits, mixed
precision for the duration, and back to a plain float32 model at the end.

``train(model, x, y, settings)`` returns ``(trained float32 classifier, history dict)``; the input model's
weights are trained in place when no rebuild is needed (a final ``Dense(activation='softmax')`` or a mixed
precision policy rebuilds it, see distiller.logits_of and precision.to_policy).

The compression fine-tunes (prune, quantize, cluster) train tfmot-wrapped models (``fine_tune``;
``FineTuneConfig.settings``): ``fit_through="model"`` trains the wrapped model object itself through the same
Distiller (its softmax output read as log-probabilities; tfmot's ``UpdatePruningStep`` finds its wrappers through
the Distiller), by default **self-distilled** from the uncompressed input model (``self_distill``, ``temperature``,
``alpha``: the distill stage's loss), with an optional linear warm-up in steps (``warmup_steps``), light
augmentation of image batches when asked (train/augment.py), validation after every epoch on fresh batch-norm statistics and
early stopping on it (train/early_stopping.py; only the validation split decides).

Precision (``precision:`` in ``train:`` or on a stage: ``auto`` — the default — ``float32``, ``mixed_float16``,
``mixed_bfloat16``; train/precision.py ``choose``): ``auto`` is mixed_float16 on a GPU with fast float16 and float32
on CPUs, where mixed precision trains slower (benchmarks/results/mixed_precision.md). A fine-tune under a mixed
policy trains a rebuilt twin of its model (layers and pruning wrappers under the policy, outputs float32) and copies
the weights back into the float32 model the stage strips, hands on and converts. Pruning (tfmot wrappers, M:N,
channel) trains under mixed precision; QAT and clustering cannot (tfmot's fake-quant and clustering ops are
float32-only there): asked for in ``train:`` they fall back to float32 with the reason logged, asked for on the
stage itself they are a UsageError. The manifest's ``fine_tune.precision`` says what each fine-tune used and why.
Keras's own batch-norm momentum is kept
(``scale_bn_momentum=False``; the statistics are re-estimated instead) and the seed is TensorFlow-only
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

from edgeopt.train import augment as augment_mod
from edgeopt.train import precision as precision_mod
from edgeopt.train import schedules
from edgeopt.train.augment import AugmentConfig
from edgeopt.train.early_stopping import EarlyStoppingConfig, validation_callback
from edgeopt.train.schedules import LRSchedule

log = logging.getLogger(__name__)


class TrainDefaults(BaseModel):
    """Settings every training stage shares unless the stage overrides them."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=1)
    # auto: mixed_float16 on a GPU with fast float16, float32 on CPUs (train/precision.py)
    precision: Literal["auto", "float32", "mixed_float16", "mixed_bfloat16"] = "auto"
    lr_schedule: LRSchedule = LRSchedule()
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    weight_decay: float = Field(0.0, ge=0)  # adamw's decoupled weight decay (e.g. 0.004); the others ignore it
    seed: int = 0
    # defaults of the compression fine-tunes (prune, cluster, quantize); a stage's own key overrides them
    self_distill: bool = True  # distil from the uncompressed input model (soft targets) besides the labels
    # milder than distill's T 4 / alpha 0.1: the student starts as the teacher (benchmarks/finetune.py measured
    # T 1 / alpha 0.5 best on the bundled models' validation splits, of T 4/0.1, 4/0.5, 2/0.5, 1/0.5)
    temperature: float = Field(1.0, gt=0)
    alpha: float = Field(0.5, ge=0, le=1)  # weight of the label loss when self-distilling
    warmup_steps: int = Field(0, ge=0)  # linear learning-rate warm-up over this many optimizer steps
    early_stopping: EarlyStoppingConfig | None = EarlyStoppingConfig()  # false: train every epoch, keep the last
    # image inputs only; off unless asked (`augment: true` or {shift, crop, flip}): on the bundled models' validation
    # splits it did not help a 4 + 2 epoch fine-tune (benchmarks/finetune.py)
    augment: AugmentConfig | None = None

    @field_validator("early_stopping", "augment", mode="before")
    @classmethod
    def _switch(cls, v):
        return switch(v)

    @field_validator("lr_schedule", mode="before")
    @classmethod
    def _schedule_shorthand(cls, v):
        # `lr_schedule: cosine` or `lr_schedule: 0.01` as shorthands
        if isinstance(v, str):
            return {"kind": v}
        if isinstance(v, int | float) and not isinstance(v, bool):
            return {"kind": "constant", "initial": v}
        return v


def switch(v):
    """``false`` turns an option block off (None), ``true`` takes its defaults."""
    if v is False:
        return None
    return {} if v is True else v


@dataclass(frozen=True)
class Settings:
    """Resolved training settings of one run (stage keys over recipe ``train:`` defaults)."""

    epochs: int
    batch_size: int = 64
    lr: float | None = None  # None: the schedule's own ``initial``
    optimizer: str = "adam"
    precision: str = "float32"  # or "auto" / a mixed policy (train/precision.py)
    precision_explicit: bool = False  # the stage's own key asked: refuse a policy the model cannot train under
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
    warmup_steps: int = 0  # linear learning-rate warm-up over the first optimizer steps
    # a run cut in parts (two distill stages): this part trains ``epochs`` epochs from epoch ``start_epoch`` of a
    # run of ``run_epochs``, so the LR schedule (and warm-up) goes on where the earlier part left it
    start_epoch: int = 0
    run_epochs: int | None = None  # None: start_epoch + epochs
    self_distill: bool = False  # fine_tune: distil from the teacher it is given
    augment: Any = None  # an AugmentConfig (image inputs only) or None
    early_stopping: Any = None  # an EarlyStoppingConfig or None
    bn_samples: int = 0  # fine_tune: batch-norm statistics re-estimated on this many rows before each validation

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
    # None: the recipe's train: default (see TrainDefaults)
    self_distill: bool | None = None
    temperature: float | None = Field(None, gt=0)
    alpha: float | None = Field(None, ge=0, le=1)
    warmup_steps: int | None = Field(None, ge=0)
    early_stopping: EarlyStoppingConfig | None | Literal[False] = None
    augment: AugmentConfig | None | Literal[False] = None
    # None: train.precision (a mixed policy the wrappers cannot train under falls back to float32, logged); set
    # here, such a policy is a UsageError
    precision: Literal["auto", "float32", "mixed_float16", "mixed_bfloat16"] | None = None

    @field_validator("early_stopping", "augment", mode="before")
    @classmethod
    def _switch(cls, v):
        return False if v is False else switch(v)  # False kept: "off here", unlike None ("the train: default")

    def settings(self, train: Any, lr_scale: float = 1.0) -> Settings:
        """The fine-tune's settings: stage keys over ``train`` defaults, starting at ``lr`` or
        ``train.lr_schedule.initial × lr_scale`` (QAT and clustering start lower)."""

        def pick(key: str):
            own = getattr(self, key)
            if own is False and key in ("early_stopping", "augment"):
                return None
            return getattr(train, key, TrainDefaults.model_fields[key].default) if own is None else own

        base = Settings.from_train(train, epochs=self.epochs, batch_size=self.batch_size,
                                   lr=self.lr or train.lr_schedule.initial * lr_scale, precision=self.precision,
                                   precision_explicit=self.precision is not None, fit_through="model",
                                   scale_bn_momentum=False, seed_all=False)
        return replace(base, self_distill=pick("self_distill"), temperature=pick("temperature"), alpha=pick("alpha"),
                       warmup_steps=pick("warmup_steps"), early_stopping=pick("early_stopping"),
                       augment=pick("augment"), bn_samples=self.bn_samples)


def train(model, x: np.ndarray, y: np.ndarray, settings: Settings, *, soft: np.ndarray | None = None,
          teacher=None, validation: tuple[np.ndarray, np.ndarray] | None = None, callbacks: Sequence = (),
          initial_epoch: int = 0, on_epoch: Callable[[int, dict], None] | None = None):
    """Fit ``model`` on (x, y) — distilled from ``soft`` (teacher logits for x) or from ``teacher`` (a logits
    model, run on each augmented batch when ``settings.augment`` applies, else once on x) when given.

    ``callbacks`` see the Distiller as ``self.model`` (its ``student`` is the logits model, or the model itself
    with ``fit_through="model"``). ``on_epoch(epoch, logs)`` is called after each epoch. Returns (float32
    classifier, history)."""
    import tf_keras as keras

    from edgeopt.train.distiller import logits_of

    distilled = soft is not None or teacher is not None
    choice = precision_mod.choose(model, settings.precision, explicit=settings.precision != precision_mod.AUTO,
                                  stage="training")
    settings = replace(settings, precision=choice.policy)
    if settings.fit_through == "model":
        precision_mod.require_built_under(model, settings.precision)  # fine_tune rebuilt it (and logged why)
    else:
        log.info("training under %s (%s)", choice.policy, choice.why)
    _seed(settings)
    steps = settings.steps_per_epoch(len(x))
    augment = augment_mod.make(settings.augment, x.shape[1:], settings.seed)
    if teacher is not None and augment is None:
        soft, teacher = np.asarray(teacher.predict(x, batch_size=256, verbose=0), np.float32), None
    classifier = model if settings.fit_through == "model" else logits_of(model, "student")[0]
    with precision_mod.policy(settings.precision):
        classifier, trainee = _distiller(classifier, x, distilled, settings, steps, teacher=teacher, augment=augment)
        target = (y, soft) if soft is not None else y
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
              progress: Callable[[str], None] = lambda msg: None, teacher=None, start_epoch: int = 0) -> dict:
    """A compression stage's fine-tune of ``model`` (its weights trained in place, the model stays float32) on the
    train split — self-distilled from ``teacher`` (the uncompressed input model) when ``settings.self_distill`` —
    under ``settings.precision`` where the model can train under it, validated after every epoch and early-stopped
    on the validation split (never before ``start_epoch``). Returns the final train/val figures and what the
    fine-tune did, for the stage's manifest notes."""
    choice = precision_mod.choose(model, settings.precision, explicit=settings.precision_explicit,
                                  stage=stage.split()[0])
    log.info("%s: fine-tuning under %s (%s)", stage, choice.policy, choice.why)
    settings = replace(settings, precision=choice.policy)
    trainee = model if choice.policy == "float32" else precision_mod.to_policy(model, choice.policy)
    steps = settings.steps_per_epoch(len(dataset.x_train))
    progress(f"{stage}: {settings.epochs} epochs × {steps} steps, {choice.policy}")
    logits, distill_note = _self_distill_teacher(teacher, model, dataset, settings)
    if logits is None:
        settings = replace(settings, alpha=1.0)
    val_cb = None
    if len(dataset.x_val):
        val_cb = validation_callback(trainee, dataset.x_val, dataset.y_val, evaluate,
                                     early_stopping=settings.early_stopping, start_epoch=start_epoch,
                                     bn_x=dataset.x_train, bn_samples=settings.bn_samples, seed=settings.seed)
    _, history = train(trainee, dataset.x_train, dataset.y_train, settings, teacher=logits,
                       callbacks=[*callbacks, *([val_cb] if val_cb else [])])
    if trainee is not model:
        model.set_weights(trainee.get_weights())  # float32 variables under the mixed layers: the same values
    out = {k: round(v[-1], 6) for k, v in history.items()}
    out["precision"] = choice.note()
    out.update(self_distill=distill_note, augment=augment_mod.describe(settings.augment, dataset.x_train.shape[1:]),
               warmup_steps=settings.warmup_steps, steps_per_epoch=steps,
               validation=val_cb.summary if val_cb else {"split": None, "why": "no validation split"})
    log.info("%s: %s", stage, {k: v for k, v in out.items() if not isinstance(v, dict)})
    return out


def _self_distill_teacher(teacher, model, dataset, settings: Settings):
    """(teacher's logits model or None, manifest note): the teacher must be a tf_keras classifier over the same
    classes and inputs as the model being fine-tuned."""
    from edgeopt.errors import UsageError
    from edgeopt.train.distiller import logits_of

    if not settings.self_distill:
        return None, {"on": False, "why": "self_distill: false"}
    if teacher is None:
        return None, {"on": False, "why": "no teacher (no input model in this run)"}
    try:
        _, logits = logits_of(teacher, "teacher")
    except UsageError as e:
        log.warning("fine-tune: not self-distilling: %s", e.problem)
        return None, {"on": False, "why": e.problem}
    same = (tuple(logits.output_shape[1:]) == tuple(model.output_shape[1:])
            and tuple(teacher.input_shape[1:]) == tuple(model.input_shape[1:]))
    if not same:
        why = (f"the teacher's inputs/outputs {teacher.input_shape[1:]} -> {logits.output_shape[1:]} differ from the "
               f"model's {model.input_shape[1:]} -> {model.output_shape[1:]}")
        log.warning("fine-tune: not self-distilling: %s", why)
        return None, {"on": False, "why": why}
    return logits, {"on": True, "teacher": teacher.name, "temperature": settings.temperature, "alpha": settings.alpha}


def _seed(settings: Settings) -> None:
    if settings.seed_all:
        import tf_keras as keras

        keras.utils.set_random_seed(settings.seed)
    else:
        import tensorflow as tf

        tf.random.set_seed(settings.seed)


def _optimizer(settings: Settings, steps: int):
    """The recipe's optimizer on the recipe's LR schedule, sized to this run and starting at ``settings.lr``."""
    lr = schedules.build(settings.schedule, steps, settings.run_epochs or settings.start_epoch + settings.epochs,
                         initial=settings.lr, warmup_steps=settings.warmup_steps,
                         start_step=settings.start_epoch * steps)
    return schedules.optimizer(settings, lr, name=settings.optimizer)


def _distiller(classifier, x: np.ndarray, distilled: bool, settings: Settings, steps: int, *, teacher=None,
               augment=None):
    """(classifier, compiled Distiller around it); runs inside the precision policy. The distiller path trains
    the logits (softmax cut off) under ``settings.precision``; ``fit_through="model"`` trains the model as it
    is, its softmax output (if any) read as log-probabilities."""
    from edgeopt.train.distiller import is_probabilities, logits_of, make_distiller

    if settings.fit_through == "model":
        student, probabilities = classifier, is_probabilities(classifier(x[:16], training=False))
    else:
        classifier = precision_mod.to_policy(classifier, settings.precision)
        classifier, student = logits_of(classifier, "student")
        probabilities = False
    if settings.scale_bn_momentum:
        set_bn_momentum(classifier, settings.bn_momentum or bn_momentum_for(steps))
    distiller = make_distiller(student, settings.temperature, settings.alpha if distilled else 1.0,
                               probabilities=probabilities, teacher=teacher, augment=augment)
    distiller.compile(optimizer=precision_mod.wrap_optimizer(_optimizer(settings, steps), settings.precision))
    return classifier, distiller


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
