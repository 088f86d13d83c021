"""Weight initialisation by activation: He for the ReLU family, Glorot/Xavier for tanh/sigmoid/linear.

Names (initializers and the activations the zoo knows) are checked here without TensorFlow (recipes are
validated before anything heavy loads); the zoo builders call ``default_initializer``; ``reinitialize`` redraws a built model's kernels (a fresh start with the
same architecture, e.g. a student trained from scratch next to a distilled one).
"""

from __future__ import annotations

from edgeopt.errors import UsageError, nearest

HE_ACTIVATIONS = frozenset({"relu", "relu6", "elu", "selu", "swish", "silu", "gelu", "leaky_relu", "mish"})
GLOROT_ACTIVATIONS = frozenset({"tanh", "sigmoid", "hard_sigmoid", "linear", "softsign"})
ACTIVATIONS = HE_ACTIVATIONS | GLOROT_ACTIVATIONS

# tf_keras initializer names a recipe may use (all take a seed; the zero/one ones make no sense for kernels)
INITIALIZERS = ("he_normal", "he_uniform", "glorot_normal", "glorot_uniform", "lecun_normal", "lecun_uniform",
                "orthogonal", "truncated_normal", "random_normal", "random_uniform")
ALIASES = {"xavier_normal": "glorot_normal", "xavier_uniform": "glorot_uniform", "kaiming_normal": "he_normal",
           "kaiming_uniform": "he_uniform", "he": "he_normal", "xavier": "glorot_uniform", "glorot": "glorot_uniform"}


def check(name: str) -> str:
    """The tf_keras name for ``name`` (aliases like ``xavier_uniform`` accepted); UsageError when unknown."""
    key = str(name).lower()
    key = ALIASES.get(key, key)
    if key not in INITIALIZERS:
        raise UsageError(f"unknown initializer '{name}'{nearest(str(name), [*INITIALIZERS, *ALIASES])}",
                         f"use one of: {', '.join(INITIALIZERS)}")
    return key


def check_activation(activation: str) -> str:
    if activation not in ACTIVATIONS:
        raise UsageError(
            f"unknown activation '{activation}'{nearest(str(activation), sorted(ACTIVATIONS))}",
            f"use one of: {', '.join(sorted(ACTIVATIONS))}",
        )
    return activation


def default_initializer(activation: str) -> str:
    """He (``he_normal``) for the ReLU family, Glorot/Xavier (``glorot_uniform``) for saturating or linear ones."""
    check_activation(activation)
    return "he_normal" if activation in HE_ACTIVATIONS else "glorot_uniform"


def for_activation(activation: str, override: str | None = None) -> str:
    """``override`` when given (checked), else He (``he_normal``) for ReLU-like, Glorot for saturating ones."""
    if override is not None:
        return check(override)
    return default_initializer(activation)


def reinitialize(model, seed: int = 0) -> None:
    """Redraw every kernel with its layer's own initializer (seeded) and reset biases and batch-norm statistics."""
    import tf_keras as keras

    for i, layer in enumerate(model.layers):
        for attr in ("kernel", "depthwise_kernel", "pointwise_kernel"):
            var = getattr(layer, attr, None)
            init = getattr(layer, f"{attr}_initializer", None)
            if var is not None and init is not None:
                fresh = init.__class__.from_config({**init.get_config(), "seed": seed + i}) if hasattr(
                    init, "get_config") else init
                var.assign(fresh(var.shape, var.dtype))
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(keras.backend.zeros_like(layer.bias))
        if isinstance(layer, keras.layers.BatchNormalization):
            for var, value in ((layer.gamma, 1.0), (layer.beta, 0.0), (layer.moving_mean, 0.0),
                               (layer.moving_variance, 1.0)):
                if var is not None:
                    var.assign(keras.backend.ones_like(var) * value)
