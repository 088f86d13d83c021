"""Which layers prune, quantize and cluster wrap, and what their kernels hold: the model must be wrappable,
layers are picked by recipe patterns (``exclude``, ``skip_first``, ``skip_last``), wrapped on a copy, and
the kernels' sparsity is read back by variable name. The fine-tune itself is train/fit.py's loop.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable

import numpy as np

from edgeopt.errors import UsageError


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
