"""BatchNormalization folded into the Conv2D / DepthwiseConv2D / Dense layer that feeds it, in the Keras model.

The TFLite converter folds such a BN anyway, at conversion: each output channel's weights are multiplied by that
channel's gamma / sqrt(var + eps). That is harmless for a float model and ruinous for a clustered one: the 16
values a clustered kernel shares become 16 per channel, and per-tensor int8 rounds them to many more (the digits
student's two convolutions: 47 and 68 distinct int8 values), so the file gzips like an unclustered one. Folding
first, then clustering, keeps the clusters in the file: the converter has no BN left to fold.

A BN folds when it is channels-last, called once (not with a fixed ``training=``), and reads the output of exactly
one call of a linear (no fused activation) Conv2D, DepthwiseConv2D or Dense that nothing else reads. The folded
layer computes the same function in inference mode (the BN's moving statistics); training the folded model
afterwards trains it without BN.
"""

from __future__ import annotations

import numpy as np

from edgeopt.train.rebuild import nodes, rebuild

FOLDS_INTO = ("Conv2D", "DepthwiseConv2D", "Dense")


def _bn(layer) -> bool:
    return type(layer).__name__ in ("BatchNormalization", "SyncBatchNormalization")


def foldable(model) -> dict[str, str]:
    """{BN layer name: name of the layer it folds into} for every BN of ``model`` (top level) that can fold."""
    if not getattr(model, "_is_graph_network", False):
        return {}
    readers: dict[int, int] = {}
    calls: dict[int, int] = {}  # a layer's calls inside this model (a shared layer has nodes in other models too)
    for node in nodes(model):
        calls[id(node.layer)] = calls.get(id(node.layer), 0) + 1
        for t in node.keras_inputs:
            readers[id(t)] = readers.get(id(t), 0) + 1
    outputs = {id(t) for t in model.outputs}
    found = {}
    for node in nodes(model):
        bn = node.layer
        if node.is_input or not _bn(bn) or calls[id(bn)] != 1 or len(node.keras_inputs) != 1:
            continue
        if node.call_kwargs.get("training") is not None:  # BN(x, training=True) normalises by the batch, always
            continue
        t = node.keras_inputs[0]
        prev = t._keras_history.layer
        axis = bn.axis if isinstance(bn.axis, (list, tuple)) else [bn.axis]
        last = len(t.shape) - 1
        if (type(prev).__name__ not in FOLDS_INTO or calls.get(id(prev)) != 1
                or prev.get_config().get("activation") != "linear" or readers.get(id(t)) != 1 or id(t) in outputs
                or [a % len(t.shape) for a in axis] != [last]
                or prev.get_config().get("data_format", "channels_last") != "channels_last"):
            continue
        found[bn.name] = prev.name
    return found


def folded_weights(layer, bn) -> tuple[np.ndarray, np.ndarray]:
    """(kernel, bias) of ``layer`` with ``bn`` (inference mode) folded in."""
    mean, var = bn.moving_mean.numpy(), bn.moving_variance.numpy()
    gamma = bn.gamma.numpy() if bn.scale else np.ones_like(mean)
    beta = bn.beta.numpy() if bn.center else np.zeros_like(mean)
    s = gamma / np.sqrt(var + bn.epsilon)
    own = layer.get_weights()
    kernel = own[0]
    bias = own[1] if layer.use_bias else np.zeros_like(mean)
    if type(layer).__name__ == "DepthwiseConv2D":  # output channel i * multiplier + m
        kernel = kernel * s.reshape(kernel.shape[2], kernel.shape[3])
    else:
        kernel = kernel * s
    return kernel.astype(own[0].dtype), ((bias - mean) * s + beta).astype(own[0].dtype)


def fold(model) -> tuple[object, dict[str, str]]:
    """(a new model with every foldable BN folded into its layer, {BN name: layer name}); the input model is
    left as it is. With nothing to fold the model comes back unchanged."""
    pairs = foldable(model)
    if not pairs:
        return model, {}
    into = {v: k for k, v in pairs.items()}

    def route(node, mapped, fresh):
        if node.layer.name in pairs:
            return mapped(node.keras_inputs[0])  # the BN's readers read the folded layer's output
        return None

    def replace(layer):
        if layer.name not in into:
            return None
        kernel, bias = folded_weights(layer, model.get_layer(into[layer.name]))
        return {**layer.get_config(), "use_bias": True}, [kernel, bias]

    return rebuild(model, route, replace), pairs
