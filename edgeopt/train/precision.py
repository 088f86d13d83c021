"""Mixed precision for the length of one training stage: ``float32 | mixed_float16 | mixed_bfloat16``.

``policy(name)`` sets tf_keras's global policy and restores the previous one on exit, even on error.
``to_policy(model, name)`` rebuilds a model's layers under a policy with the same weights: every layer
computes in the policy's dtype except the output layer(s), which stay float32 (a float16 softmax loses the
small probabilities distillation needs). Train the rebuilt model, then ``to_policy(trained, "float32")`` gives
the plain float32 model that later stages and the TFLite / ONNX converters see. ``wrap_optimizer`` adds
dynamic loss scaling for float16 (bfloat16 has float32's range and needs none).

Stages do not call these themselves: train/fit.py (the one training loop) applies ``policy``, ``to_policy`` and
``wrap_optimizer`` from ``Settings.precision``. The compression fine-tunes stay float32 (see fit.py).
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterator

from edgeopt.errors import UsageError

log = logging.getLogger(__name__)

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def check(name: str) -> str:
    if name not in POLICIES:
        from edgeopt.errors import nearest

        raise UsageError(f"unknown precision '{name}'{nearest(str(name), POLICIES)}", f"use one of {', '.join(POLICIES)}")
    return name


def has_fast_float16() -> bool:
    """True when a GPU is visible (tensor cores do float16 fast; x86 CPUs emulate it slowly)."""
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


@contextlib.contextmanager
def policy(name: str) -> Iterator[str]:
    """Set the global tf_keras dtype policy to ``name`` inside the block; the previous policy comes back after."""
    check(name)
    import tf_keras as keras

    if name == "mixed_float16" and not has_fast_float16():
        log.warning("mixed_float16 on a CPU without fast float16: training will be slower than float32 — "
                    "use precision: mixed_bfloat16 (or float32) on this machine")
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield name
    finally:
        keras.mixed_precision.set_global_policy(before)


def wrap_optimizer(optimizer, name: str):
    """Loss scaling for float16 (gradients underflow otherwise); other policies get the optimizer as is."""
    import tf_keras as keras

    if name != "mixed_float16" or isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer):
        return optimizer
    return keras.mixed_precision.LossScaleOptimizer(optimizer)


def to_policy(model, name: str):
    """The same functional/Sequential model with every layer under ``name`` and the outputs in float32.

    Returns ``model`` itself when nothing would change (all layers already match)."""

    check(name)
    config = model.get_config()
    layers = config.get("layers")
    if not isinstance(layers, list):
        raise UsageError(f"model '{model.name}' is subclassed; mixed precision needs a functional or Sequential model",
                         "rebuild it with the functional API, or train with precision: float32")
    outputs = _output_layer_names(model, config)
    changed = False
    config = copy.deepcopy(config)
    for layer in config["layers"]:
        cfg = layer.get("config", {})
        if layer.get("class_name") == "InputLayer":
            continue
        want = "float32" if cfg.get("name") in outputs else name
        if _policy_name(cfg.get("dtype")) != want:
            cfg["dtype"] = want
            changed = True
    if not changed:
        return model
    rebuilt = model.__class__.from_config(config)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def dtype_policies(model) -> dict[str, str]:
    """Layer name -> policy name (what a test checks)."""
    return {layer.name: layer.dtype_policy.name for layer in model.layers}


def _output_layer_names(model, config) -> set[str]:
    if "output_layers" in config:
        outs = config["output_layers"]
        outs = [outs] if outs and isinstance(outs[0], str) else outs
        return {o[0] for o in outs}
    return {model.layers[-1].name}


def _policy_name(dtype) -> str | None:
    if isinstance(dtype, dict):  # serialized Policy: {"class_name": "Policy", "config": {"name": ...}}
        return dtype.get("config", {}).get("name")
    return dtype

