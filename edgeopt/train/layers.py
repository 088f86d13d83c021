"""What prune, quantize and cluster share: checking the model can be wrapped, picking layers, fine-tuning.

The optimizer and LR schedule are the recipe's (edgeopt.train.schedules), starting at the stage's ``lr`` or
``train.lr_schedule.initial`` (scaled down for QAT and clustering). Fine-tuning runs in float32 whatever
``train.precision`` says: tfmot's wrappers are not tested under mixed precision.
"""

from __future__ import annotations

import fnmatch
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgeopt.errors import UsageError
from edgeopt.stages.context import StageContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """Resolved fine-tune settings: stage keys, falling back to the recipe's train defaults."""

    epochs: int
    batch_size: int
    lr: float
    steps_per_epoch: int

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


def plan(cfg, ctx: StageContext, lr_scale: float = 1.0) -> Plan:
    epochs = cfg.epochs or ctx.train.epochs
    batch = cfg.batch_size or ctx.train.batch_size
    lr = cfg.lr or ctx.train.lr_schedule.initial * lr_scale
    return Plan(epochs=epochs, batch_size=batch, lr=lr,
                steps_per_epoch=max(1, math.ceil(len(ctx.dataset.x_train) / batch)))


def require_functional(model, stage: str) -> None:
    """tfmot wraps layers of Sequential / functional tf_keras models only; say so before it fails deep inside."""
    import tf_keras as keras

    if not isinstance(model, keras.Model):
        why = getattr(model, "bridge_error", None) or f"it is a {type(model).__name__}, not a tf_keras model"
        raise UsageError(f"the {stage} stage cannot train this model: {why}",
                         "use a PTQ-only recipe (only `convert`), or pass a tf_keras / Keras 3 functional model")
    if not (isinstance(model, keras.Sequential) or getattr(model, "_is_graph_network", False)):
        raise UsageError(f"model '{model.name}' is a subclassed Model ({type(model).__name__}); tfmot can only wrap "
                         f"Sequential or functional models, so the {stage} stage cannot run",
                         "rebuild it with the functional API, or use a PTQ-only recipe (only `convert`)")


def has_weights(layer) -> bool:
    return any(len(w.shape) >= 1 and int(np.prod(w.shape)) > 1 for w in layer.weights)


def select_layers(model, cfg, supports: Callable[[object], bool]) -> list:
    """Layers to wrap: weighted layers ``supports`` accepts, minus ``exclude`` patterns and first/last."""
    candidates = [layer for layer in model.layers if has_weights(layer) and supports(layer)]
    if cfg.skip_first and candidates:
        candidates = candidates[1:]
    if cfg.skip_last and candidates:
        candidates = candidates[:-1]
    return [layer for layer in candidates if not excluded(layer, cfg.exclude)]


def excluded(layer, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(layer.name, p) or fnmatch.fnmatchcase(type(layer).__name__, p) for p in patterns)


def unknown_patterns(model, patterns: list[str]) -> list[str]:
    return [p for p in patterns if not any(excluded(layer, [p]) for layer in model.layers)]


def wrap(model, chosen: list, wrapper: Callable):
    """A copy of ``model`` with ``wrapper(layer)`` around the chosen layers (matched by name). The input model
    is left untouched: later stages (distillation, the convert stage's reference) still read it."""
    import tf_keras as keras

    names = {layer.name for layer in chosen}
    copy = copy_model(model)

    def clone(layer):
        if layer.name in names:
            return wrapper(layer)
        if isinstance(layer, keras.layers.InputLayer):
            return layer.__class__.from_config(layer.get_config())
        return layer

    return keras.models.clone_model(copy, clone_function=clone)


def copy_model(model):
    """Same architecture, own weights: tfmot's wrappers reuse layer objects, and training would change the input."""
    import tf_keras as keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def outputs_probabilities(model, x: np.ndarray) -> bool:
    """True when the model ends in a softmax (rows sum to 1), so the loss must not apply one again."""
    out = np.asarray(model(x[:16], training=False), dtype=np.float64)
    return bool(np.all(out >= -1e-6) and np.allclose(out.sum(axis=-1), 1.0, atol=1e-3))


def optimizer(ctx: StageContext, p: Plan):
    """The recipe's optimizer on the recipe's LR schedule, sized to this fine-tune and starting at ``p.lr``."""
    from edgeopt.train import schedules

    return schedules.optimizer(ctx.train, schedules.build(ctx.train, p.steps_per_epoch, p.epochs, initial=p.lr))


def fit(model, ctx: StageContext, p: Plan, callbacks: list | None = None, stage: str = "fine-tune") -> dict:
    """Compile and fit on the train split; returns the final train/val loss and accuracy."""
    import tensorflow as tf
    import tf_keras as keras

    ds = ctx.dataset
    tf.random.set_seed(ctx.train.seed)
    if ctx.train.precision != "float32":
        log.info("%s: fine-tuning in float32 (train.precision %s applies to training stages)", stage,
                 ctx.train.precision)
    from_logits = not outputs_probabilities(model, ds.x_train)
    model.compile(optimizer=optimizer(ctx, p),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits), metrics=["accuracy"])
    ctx.progress(f"{stage}: {p.epochs} epochs × {p.steps_per_epoch} steps")
    hist = model.fit(ds.x_train, ds.y_train, batch_size=p.batch_size, epochs=p.epochs, verbose=0,
                     validation_data=(ds.x_val, ds.y_val) if len(ds.x_val) else None,
                     callbacks=list(callbacks or []), shuffle=True)
    last = {k: round(float(v[-1]), 6) for k, v in hist.history.items()}
    log.info("%s: %s", stage, last)
    return last


KERNELS = frozenset({"kernel", "depthwise_kernel", "pointwise_kernel", "recurrent_kernel", "embeddings"})


def kernel_sparsity(model) -> dict[str, dict]:
    """Per layer: share of exact zeros in its kernels and their size. Kernels are found by variable name, so
    QAT / clustering wrappers' bookkeeping (indices, copies of the original weights) does not count."""
    out = {}
    for layer in model.layers:
        kernels = [w.numpy() for w in layer.weights
                   if w.name.split("/")[-1].split(":")[0] in KERNELS and w.dtype.is_floating and len(w.shape) >= 2]
        if not kernels:
            continue
        size = sum(int(k.size) for k in kernels)
        zeros = sum(int(k.size - np.count_nonzero(k)) for k in kernels)
        out[layer.name] = {"sparsity": round(zeros / size, 4), "params": size}
    return out


def overall(per_layer: dict[str, dict], names: list[str] | None = None) -> float:
    rows = [v for k, v in per_layer.items() if names is None or k in names]
    size = sum(r["params"] for r in rows)
    return round(sum(r["sparsity"] * r["params"] for r in rows) / size, 4) if size else 0.0
