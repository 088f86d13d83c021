"""Bridge a Keras 3 model into tf_keras (tfmot trains tf_keras only; its tracker #1119 asks for exactly this).

The functional graph is rebuilt from the Keras 3 config: each layer's config is translated to its tf_keras
twin (dtype policies, InputLayer ``batch_shape``, LeakyReLU's ``negative_slope``, activations whose meaning
differs), Keras 3 ops on tensors (``x + 3.0`` in MobileNetV3) become TF ops, weights are copied layer by
layer, and the outputs are compared on samples. Anything else is an ``UnsupportedLayer`` naming the layer.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import numpy as np

from edgeopt.core.inputs import Inputs

log = logging.getLogger(__name__)

LAYERS = frozenset({
    "InputLayer", "Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D", "Dense",
    "BatchNormalization", "LayerNormalization", "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax",
    "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D", "GlobalAveragePooling1D",
    "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "Dropout", "SpatialDropout2D",
    "Flatten", "Reshape", "Permute", "ZeroPadding1D", "ZeroPadding2D", "Cropping2D", "UpSampling2D", "Add",
    "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Rescaling", "Normalization", "LSTM",
    "GRU", "Embedding",
})  # fmt: skip
MODELS = frozenset({"Functional", "Sequential", "Model"})
RENAMED_KEYS = {"LeakyReLU": {"negative_slope": "alpha"}}
TOLERANCE = 1e-5


class UnsupportedLayer(ValueError):
    """A layer (or op) of the Keras 3 model that the bridge cannot rebuild in tf_keras."""


def _tf_activation(name: str):
    """Keras 3 activation name → callable on tf_keras tensors with the Keras 3 meaning (None: not known)."""
    import tensorflow as tf

    ops = {
        "hard_sigmoid": lambda x: tf.nn.relu6(x + 3.0) * (1.0 / 6.0),
        "hard_silu": lambda x: x * (tf.nn.relu6(x + 3.0) * (1.0 / 6.0)),
        "hard_swish": lambda x: x * (tf.nn.relu6(x + 3.0) * (1.0 / 6.0)),
        "relu6": tf.nn.relu6, "silu": tf.nn.silu, "swish": tf.nn.silu,
        "leaky_relu": lambda x: tf.nn.leaky_relu(x, 0.2),
    }
    return ops.get(name)


def _same_activation(name: str) -> bool:
    """True when tf_keras's activation of that name computes what Keras 3's does (checked, not assumed)."""
    import keras
    import tensorflow as tf
    import tf_keras

    v = tf.constant(np.linspace(-8, 8, 65, dtype=np.float32)[None])
    try:
        a = np.asarray(keras.activations.get(name)(v))
        b = np.asarray(tf_keras.activations.get(name)(v))
    except (ValueError, AttributeError, TypeError):
        return False
    return a.shape == b.shape and float(np.max(np.abs(a - b))) < 1e-6


def _activation_name(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("config", {}).get("name") or value.get("class_name", "")).lower()
    return str(value or "linear")


def _plain(value: Any) -> Any:
    """Keras 3 nested objects (``{"module","class_name","config","registered_name"}``) → tf_keras form."""
    if isinstance(value, dict) and "class_name" in value and "config" in value:
        if value["class_name"] == "DTypePolicy" or value["class_name"].endswith("DTypePolicy"):
            return value["config"].get("name", "float32")
        return {"class_name": value["class_name"], "config": {k: _plain(v) for k, v in value["config"].items()}}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def translate(class_name: str, config: dict, layer_name: str) -> tuple[dict, Any]:
    """(tf_keras config, activation to apply after the layer or None)."""
    import tf_keras

    cls = getattr(tf_keras.layers, class_name)
    cfg = {}
    post = None
    for key, value in config.items():
        key = RENAMED_KEYS.get(class_name, {}).get(key, key)
        if key.endswith("_initializer"):
            continue  # weights are copied; initializers only matter for fresh layers
        if key in ("activation", "recurrent_activation"):
            name = _activation_name(value)
            if not _same_activation(name):
                fn = _tf_activation(name)
                if fn is None or key == "recurrent_activation" or class_name in ("LSTM", "GRU"):
                    raise UnsupportedLayer(f"layer '{layer_name}' ({class_name}) uses activation '{name}', "
                                           "which tf_keras computes differently or lacks")
                if class_name == "Activation":
                    return {"name": config.get("name", layer_name)}, fn
                post, name = fn, "linear"
            value = name
        cfg[key] = _plain(value)
    params = inspect.signature(cls.__init__).parameters
    allowed = set(params) | {"name", "trainable", "dtype"}
    if class_name == "InputLayer":
        cfg["batch_input_shape"] = cfg.pop("batch_shape", None) or cfg.get("batch_input_shape")
        allowed |= {"batch_input_shape"}
    dropped = {k: v for k, v in cfg.items() if k not in allowed}
    if dropped:
        log.debug("bridge: %s (%s) drops Keras 3 keys %s", layer_name, class_name, sorted(dropped))
    return {k: v for k, v in cfg.items() if k in allowed}, post


def _op(class_name: str, config: dict, name: str):
    """Keras 3 op node (keras.src.ops.*) → function of resolved args on tf_keras tensors."""
    import tensorflow as tf

    binary = {"Add": tf.math.add, "Subtract": tf.math.subtract, "Multiply": tf.math.multiply,
              "Divide": tf.math.truediv, "TrueDivide": tf.math.truediv, "Maximum": tf.math.maximum,
              "Minimum": tf.math.minimum}
    if class_name in binary:
        fn = binary[class_name]
        return lambda a, b: fn(a, b)
    unary = {"Negative": tf.math.negative, "Relu": tf.nn.relu, "Relu6": tf.nn.relu6, "Sigmoid": tf.math.sigmoid,
             "Tanh": tf.math.tanh, "Silu": tf.nn.silu, "HardSigmoid": _tf_activation("hard_sigmoid"),
             "HardSilu": _tf_activation("hard_silu"), "Sqrt": tf.math.sqrt, "Square": tf.math.square}
    if class_name in unary:
        fn = unary[class_name]
        return lambda x: fn(x)
    if class_name == "Mean":
        return lambda x, axis=None, keepdims=False: tf.reduce_mean(
            x, axis=config.get("axis", axis), keepdims=config.get("keepdims", keepdims))
    if class_name == "Reshape":
        return lambda x, newshape=None: tf.reshape(x, [-1, *list(config.get("newshape", newshape))[1:]])
    raise UnsupportedLayer(f"op '{name}' ({class_name}) has no tf_keras equivalent in the bridge")


def _resolve(value: Any, tensors: dict) -> Any:
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        hist = value["config"]["keras_history"]
        key = (hist[0], int(hist[1]), int(hist[2]))
        if key not in tensors:
            raise KeyError(key)
        return tensors[key]
    if isinstance(value, list | tuple):
        return [_resolve(v, tensors) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, tensors) for k, v in value.items()}
    return value


class _Builder:
    """Rebuilds one Keras 3 Functional/Sequential model; ``layers`` maps names to (Keras 3, tf_keras) pairs."""

    def __init__(self, k3model) -> None:
        self.k3 = k3model
        self.pairs: list[tuple[Any, Any]] = []

    def _make(self, entry: dict):
        cls_name, name = entry["class_name"], entry["config"].get("name", entry.get("name"))
        module = entry.get("module") or ""
        if cls_name in MODELS:
            sub = self.k3.get_layer(name)
            return bridge(sub), None
        if module.startswith("keras.src.ops") or module.startswith("keras.ops"):
            return _op(cls_name, entry["config"], name), None
        if cls_name not in LAYERS:
            raise UnsupportedLayer(f"layer '{name}' ({cls_name}) is not one the Keras 3 bridge translates")
        import tf_keras

        cfg, post = translate(cls_name, entry["config"], name)
        if cls_name == "Activation" and post is not None:
            return post, None
        layer = getattr(tf_keras.layers, cls_name).from_config(cfg)
        self.pairs.append((self.k3.get_layer(name), layer))
        return layer, post

    def functional(self, config: dict):
        import tf_keras

        tensors: dict[tuple[str, int, int], Any] = {}
        pending = list(config["layers"])
        while pending:
            progressed, waiting = False, []
            for entry in pending:
                name = entry.get("name") or entry["config"]["name"]
                if entry["class_name"] == "InputLayer":
                    cfg, _ = translate("InputLayer", entry["config"], name)
                    shape = cfg["batch_input_shape"]
                    tensors[(name, 0, 0)] = tf_keras.Input(batch_shape=tuple(shape), name=name,
                                                           dtype=cfg.get("dtype") or "float32")
                    progressed = True
                    continue
                try:
                    calls = [(_resolve(n["args"], tensors), _resolve(n.get("kwargs", {}), tensors))
                             for n in entry["inbound_nodes"]]
                except KeyError:
                    waiting.append(entry)
                    continue
                fn, post = self._make(entry)
                for node_index, (args, kwargs) in enumerate(calls):
                    kwargs = {k: v for k, v in kwargs.items() if v is not None}
                    out = fn(*args, **kwargs)
                    if post is not None:
                        out = post(out)
                    outs = out if isinstance(out, list | tuple) else [out]
                    for i, t in enumerate(outs):
                        tensors[(name, node_index, i)] = t
                progressed = True
            if not progressed:
                names = ", ".join(e.get("name", "?") for e in waiting[:3])
                raise UnsupportedLayer(f"cannot order the graph around {names} (inputs never produced)")
            pending = waiting

        def pick(spec):
            spec = spec if spec and isinstance(spec[0], list) else [spec]
            return [tensors[(s[0], int(s[1]), int(s[2]))] for s in spec]

        inputs, outputs = pick(config["input_layers"]), pick(config["output_layers"])
        return tf_keras.Model(inputs[0] if len(inputs) == 1 else inputs,
                              outputs[0] if len(outputs) == 1 else outputs, name=config.get("name"))

    def sequential(self, config: dict):
        import tf_keras

        entries = list(config["layers"])
        if entries and entries[0]["class_name"] == "InputLayer":
            cfg, _ = translate("InputLayer", entries.pop(0)["config"], "input")
            shape = cfg["batch_input_shape"]
        else:
            shape = config.get("build_input_shape") or self.k3.input_shape
        x = inp = tf_keras.Input(batch_shape=tuple(shape))
        for entry in entries:
            fn, post = self._make(entry)
            x = fn(x)
            if post is not None:
                x = post(x)
        return tf_keras.Model(inp, x, name=config.get("name"))

    def copy_weights(self) -> None:
        for k3_layer, layer in self.pairs:
            weights = k3_layer.get_weights()
            if not weights:
                continue
            try:
                layer.set_weights(weights)
            except ValueError as e:
                raise UnsupportedLayer(f"layer '{k3_layer.name}' ({type(k3_layer).__name__}): weights do not fit "
                                       f"its tf_keras twin ({str(e).splitlines()[0][:120]})") from None
            if hasattr(layer, "finalize_state"):
                layer.finalize_state()  # Normalization derives its broadcast mean/variance from the weights


def bridge(k3model):
    """A tf_keras model with the Keras 3 model's architecture and weights (not yet verified)."""
    config = k3model.get_config()
    builder = _Builder(k3model)
    kind = type(k3model).__name__
    if "input_layers" in config:
        model = builder.functional(config)
    elif kind == "Sequential" or "layers" in config:
        model = builder.sequential(config)
    else:
        raise UnsupportedLayer(f"model '{k3model.name}' is a subclassed Keras 3 {kind}; only Functional and "
                               "Sequential models can be bridged")
    builder.copy_weights()
    return model


def _flat_outputs(out) -> np.ndarray:
    """Every output (one, or a list/dict of several) as one float64 row per sample."""
    parts = list(out.values()) if isinstance(out, dict) else list(out) if isinstance(out, list | tuple) else [out]
    return np.concatenate([np.asarray(p, dtype=np.float64).reshape(len(p), -1) for p in parts], axis=1)


def max_output_diff(k3model, model, sample) -> float:
    """Several inputs (core.inputs.Inputs): fed by name to both; several outputs: compared all together."""
    if isinstance(sample, Inputs):
        feed = {k: np.asarray(v, dtype=np.float32) for k, v in sample.items()}
        a, b = _flat_outputs(k3model(feed, training=False)), _flat_outputs(model(feed, training=False))
    else:
        sample = np.asarray(sample, dtype=np.float32)
        a, b = _flat_outputs(k3model(sample, training=False)), _flat_outputs(model(sample, training=False))
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(a)))))


def sample_for(k3model, n: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    if isinstance(k3model.input_shape, list):  # several inputs: random ones, by name
        return Inputs({t.name: rng.normal(size=(n, *[int(d) for d in shape[1:]])).astype(np.float32)
                       for t, shape in zip(k3model.inputs, k3model.input_shape, strict=True)})
    shape = [int(d) for d in k3model.input_shape[1:]]
    return rng.normal(size=(n, *shape)).astype(np.float32)


def bridge_verified(k3model, sample: np.ndarray | None = None):
    """(tf_keras model, max relative output difference); raises UnsupportedLayer when it exceeds 1e-5."""
    model = bridge(k3model)
    x = sample if sample is not None else sample_for(k3model)
    diff = max_output_diff(k3model, model, x)
    if not diff <= TOLERANCE:
        raise UnsupportedLayer(f"the tf_keras rebuild of '{k3model.name}' differs from the Keras 3 model by {diff:.3g} "
                               f"(tolerance {TOLERANCE})")
    log.info("bridged Keras 3 model '%s' into tf_keras (max output difference %.2g)", k3model.name, diff)
    return model, diff
