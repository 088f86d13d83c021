"""Mixed precision for the length of one training stage: ``auto | float32 | mixed_float16 | mixed_bfloat16``.

``policy(name)`` sets tf_keras's global policy and restores the previous one on exit, even on error.
``to_policy(model, name)`` rebuilds a model's layers under a policy with the same weights: every layer
computes in the policy's dtype except the output layer(s), which stay float32 (a float16 softmax loses the
small probabilities distillation needs). Train the rebuilt model, then ``to_policy(trained, "float32")`` (or
``set_weights`` into the float32 original) gives the plain float32 model that later stages and the TFLite / ONNX
converters see. ``wrap_optimizer`` adds dynamic loss scaling for float16 (bfloat16 has float32's range and needs
none).

``choose(model, asked, explicit=, stage=)`` decides what a stage trains under. ``auto`` is mixed_float16 where a
GPU with fast float16 (compute capability ≥ 7.0) is visible and float32 elsewhere: on the x86 CPUs here mixed
precision trains slower (a prune fine-tune of shapes MobileNetV2: 11.3 s float32, 16.9 s mixed_bfloat16, 24.1 s
mixed_float16; benchmarks/results/mixed_precision.md). A model mixed precision cannot train (``blocker``)
trains in float32 with the reason logged — or, when the stage's own ``precision`` key asked for a mixed policy, is a
UsageError. Measured with tfmot 0.8.1 / tf_keras 2.21 (2026-12-01, tests/unit/train/test_precision_finetune.py):

- ``prune_low_magnitude`` trains under mixed_bfloat16 and mixed_float16 once the layers *and* their wrappers are
  rebuilt under the policy (``to_policy`` does both; a wrapper made under one policy around a layer of another
  fails: "Input 'y' of 'Mul' Op has type bfloat16 ...", cf. tensorflow/model-optimization#409): masks reach the
  target sparsity, the stripped model is float32 and its outputs match the trained mixed model's to ~1e-3.
  tfmot's ``PruneLowMagnitude.get_config`` drops ``sparsity_m_by_n``, so the wrapper is rebuilt from its attributes,
  never from its config (a 2:4 model would silently become unstructured).
- QAT (``quantize_apply``) cannot: ``FakeQuantWithMinMaxVars`` has float32 kernels only (model-optimization#367,
  #824).
- ``cluster_weights`` cannot: with ``preserve_sparsity`` the wrapper multiplies a bfloat16 kernel by its float32
  mask (TypeError); without it, the k-means++ init rejects bfloat16 when wrapped under the policy, and a rebuilt
  wrapper assigns weights to centroids from bfloat16-rounded values, so the float32 model handed on differs from
  the one trained (softmax outputs up to 0.04 apart on digits).

Stages do not call these themselves: train/fit.py (the one training loop) applies them from
``Settings.precision``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from edgeopt.errors import UsageError

log = logging.getLogger(__name__)

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
AUTO = "auto"
CHOICES = (AUTO, *POLICIES)

_QAT = "tfmot's fake-quant ops have float32 kernels only (QAT trains in float32)"
_CLUSTER = ("tfmot's clustering wrapper mixes bfloat16/float16 kernels with float32 centroids and masks (clustering "
            "trains in float32)")
# wrapper classes (by name: no tfmot import here) that cannot train under a mixed policy, and why
REFUSED = {"QuantizeWrapper": _QAT, "QuantizeWrapperV2": _QAT, "QuantizeLayer": _QAT, "QuantizeAnnotate": _QAT,
           "ClusterWeights": _CLUSTER, "ClusterWeightsRNN": _CLUSTER, "ClusterWeightsMHA": _CLUSTER}
TRAINS_MIXED = ("PruneLowMagnitude",)  # the only wrapper measured to train correctly under a mixed policy


def _kind(layer) -> str:
    """The wrapper class a layer is, subclasses named by their tfmot base (prune's tap wrapper is a
    PruneLowMagnitude with its own mask step)."""
    return next((c.__name__ for c in type(layer).__mro__ if c.__name__ in TRAINS_MIXED), type(layer).__name__)


def check(name: str, choices: tuple[str, ...] = POLICIES) -> str:
    if name not in choices:
        from edgeopt.errors import nearest

        raise UsageError(f"unknown precision '{name}'{nearest(str(name), choices)}", f"use one of {', '.join(choices)}")
    return name


def has_fast_float16() -> bool:
    """True when a GPU with fast float16 compute is visible: NVIDIA compute capability 7.0 or newer (tensor cores;
    Keras's own rule), or a GPU that does not say (assumed able). x86 CPUs emulate float16 slowly."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability is None or tuple(capability) >= (7, 0):
            return True
    return False


@dataclass(frozen=True)
class Choice:
    """What one stage trains under (``policy``), what the recipe asked for, and why they differ (or agree)."""

    policy: str
    asked: str
    why: str

    def note(self) -> dict[str, str]:
        return {"used": self.policy, "asked": self.asked, "why": self.why}


def auto_policy() -> tuple[str, str]:
    """(policy, reason) of ``precision: auto`` on this machine."""
    if has_fast_float16():
        return "mixed_float16", "auto: a GPU with fast float16 compute is visible"
    return "float32", ("auto: no GPU with fast float16 compute, and mixed precision trains slower than float32 on "
                       "x86 CPUs (benchmarks/results/mixed_precision.md)")


def blocker(model) -> str | None:
    """Why ``model`` cannot train under a mixed policy (None: it can): a subclassed model cannot be rebuilt layer by
    layer, and only the wrappers in TRAINS_MIXED were measured to train correctly."""
    import tf_keras as keras

    if not _is_graph(model):
        return f"'{model.name}' is a subclassed model (mixed precision rebuilds a functional or Sequential one)"
    for layer in model.layers:
        kind = _kind(layer)
        if kind in REFUSED:
            return f"layer '{layer.name}' is a {kind}: {REFUSED[kind]}"
        if isinstance(layer, keras.layers.Wrapper) and kind not in TRAINS_MIXED:
            return f"layer '{layer.name}' is a {kind} wrapper, not tested under mixed precision"
        if isinstance(layer, keras.Model):
            return f"layer '{layer.name}' is a nested model (rebuilt layer by layer only at the top level)"
    return None


def choose(model, asked: str, *, explicit: bool, stage: str) -> Choice:
    """The policy ``stage`` trains ``model`` under. ``asked`` is the recipe's value (``auto`` or a policy);
    ``explicit``: the stage's own key asked for it, so a mixed policy that cannot train this model is a UsageError
    (one line, with the fix) instead of a float32 fallback with the reason logged."""
    check(asked, CHOICES)
    if asked == "float32":
        return Choice("float32", asked, "asked")
    want, why = auto_policy() if asked == AUTO else (asked, "asked")
    if want == "float32":
        return Choice("float32", asked, why)
    problem = blocker(model)
    if problem is None:
        return Choice(want, asked, why)
    if explicit and asked != AUTO:
        raise UsageError(f"{stage}: precision {asked} cannot train this model: {problem}",
                         f"drop `precision` from the {stage} stage (or set precision: float32 there)")
    return Choice("float32", asked, f"{problem}; float32 instead of {want}")  # the caller logs it


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
    """The same functional/Sequential model with every layer (and a pruning wrapper's inner layer) under ``name``
    and the outputs in float32. Returns ``model`` itself when nothing would change (all layers already match)."""
    import tf_keras as keras

    check(name)
    if not _is_graph(model):
        raise UsageError(f"model '{model.name}' is subclassed; mixed precision needs a functional or Sequential model",
                         "rebuild it with the functional API, or train with precision: float32")
    outputs = _output_layer_names(model)

    def want(layer) -> str:
        return "float32" if layer.name in outputs else name

    if _built_under(model, name):
        return model

    def clone(layer):
        if isinstance(layer, keras.layers.InputLayer):
            return layer.__class__.from_config(layer.get_config())
        return _rebuilt(layer, want(layer))

    rebuilt = keras.models.clone_model(model, clone_function=clone)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def require_built_under(model, name: str) -> None:
    """A model trained as it is (tfmot-wrapped, ``fit_through="model"``) must already have its layers under
    ``name``: a global policy alone changes nothing in layers that exist."""
    check(name)
    if _is_graph(model) and not _built_under(model, name):
        raise ValueError(f"fit_through='model' trains the model as built, and '{model.name}' is not under {name}: "
                         "rebuild it first (precision.to_policy; fit.fine_tune does)")


def _built_under(model, name: str) -> bool:
    import tf_keras as keras

    outputs = _output_layer_names(model)
    return all(_policies(x) <= {"float32" if x.name in outputs else name} for x in model.layers
               if not isinstance(x, keras.layers.InputLayer))


def _rebuilt(layer, dtype: str):
    """A fresh copy of ``layer`` under ``dtype``. A pruning wrapper is made again from its attributes around a
    fresh inner layer: its get_config loses ``sparsity_m_by_n``, and wrapper and inner layer must share the policy."""
    if _kind(layer) == "PruneLowMagnitude":
        inner = _rebuilt(layer.layer, dtype)
        return type(layer)(inner, pruning_schedule=layer.pruning_schedule, block_size=layer.block_size,
                           block_pooling_type=layer.block_pooling_type, sparsity_m_by_n=layer.sparsity_m_by_n,
                           name=layer.name, dtype=dtype)
    return layer.__class__.from_config({**layer.get_config(), "dtype": dtype})


def _policies(layer) -> set[str]:
    inner = getattr(layer, "layer", None)
    return {layer.dtype_policy.name} | ({inner.dtype_policy.name} if inner is not None else set())


def _is_graph(model) -> bool:
    import tf_keras as keras

    return isinstance(model, keras.Sequential) or bool(getattr(model, "_is_graph_network", False))


def dtype_policies(model) -> dict[str, str]:
    """Layer name -> policy name (what a test checks)."""
    return {layer.name: layer.dtype_policy.name for layer in model.layers}


def _output_layer_names(model) -> set[str]:
    return {t._keras_history.layer.name for t in model.outputs}
