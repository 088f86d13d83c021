"""Channel (filter) pruning of tf_keras functional models: which channels are tied together, how much each is
worth, and the smaller dense model that keeps the chosen ones.

``analyse`` walks the layer graph once. Every channel a Conv/Dense layer makes is a node; layers that act per
channel (BatchNormalization, a depthwise conv, activations, pooling, dropout, padding) pass their input's nodes
on; ``Add``-like merges tie channel i of every input together (union-find), so a residual stream is pruned the
same way everywhere; ``Concatenate`` lines its inputs' nodes up; ``Flatten`` repeats them per position. A set of
tied nodes (a ``ChannelGroup`` member) is removed whole or kept whole. Nodes that reach the model's outputs,
come from its inputs, or touch a layer this module does not understand are fixed: never removed (the log names
the layer). ``slim`` then rebuilds the model with fewer filters, slicing kernels, biases and BN statistics;
``zero_removed`` is the same cut done in place by zeroing what reads the removed channels (the sensitivity scan
uses it, and a test checks that both give the same outputs).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

# layers that act on each channel alone and have no per-channel weights: output channels = input channels
_PASS = ("Activation", "ReLU", "LeakyReLU", "ELU", "ThresholdedReLU", "Dropout", "SpatialDropout1D",
         "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
         "ActivityRegularization", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D",
         "AveragePooling2D", "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
         "GlobalAveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
         "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D",
         "UpSampling1D", "UpSampling2D", "UpSampling3D", "Resizing")
_MERGE = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
_PRODUCERS = ("Conv1D", "Conv2D", "Conv3D", "Dense")


@dataclass
class ChannelGraph:
    """The model's channels as nodes: what each layer's output carries, who made it, who reads it."""

    model: object
    parent: list[int] = field(default_factory=list)  # union-find over nodes
    fixed: set[int] = field(default_factory=set)  # nodes (any member of a set) that must stay
    outputs: dict[tuple[str, int], list[int]] = field(default_factory=dict)  # (layer, tensor index) → nodes
    produced: dict[str, list[int]] = field(default_factory=dict)  # Conv/Dense layer → the nodes it makes
    reads: dict[str, list[int]] = field(default_factory=dict)  # Conv/Dense layer → the nodes of its input axis
    per_channel: dict[str, list[int]] = field(default_factory=dict)  # BN / depthwise → the nodes it scales
    gamma: dict[int, float] = field(default_factory=dict)  # node → |γ| of the first BN that normalises it
    unsupported: dict[str, str] = field(default_factory=dict)  # layer → why its channels stay

    def new(self, n: int, fixed: bool = False) -> list[int]:
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        if fixed:
            self.fixed.update(range(start, start + n))
        return list(range(start, start + n))

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra

    def tie(self, tensors: list[list[int]]) -> list[int]:
        """Channel i of every tensor becomes one channel (what an Add, or a concatenation along another axis,
        requires); returns the tied channels."""
        for nodes in tensors[1:]:
            for a, b in zip(tensors[0], nodes, strict=True):
                self.union(a, b)
        return list(tensors[0])

    def fixed_roots(self) -> set[int]:
        return {self.find(n) for n in self.fixed}


@dataclass(frozen=True)
class ChannelGroup:
    """Layers whose channels are tied (a producer alone, or every producer feeding one residual stream); its
    ``sets`` are the removable units, each a list of tied nodes."""

    name: str
    layers: tuple[str, ...]
    sets: tuple[tuple[int, ...], ...]


def _inputs(layer) -> list[tuple[str, int]]:
    node = layer._inbound_nodes[0]
    return [(t._keras_history.layer.name, t._keras_history.tensor_index) for t in node.keras_inputs]


def _channels_last(layer) -> bool:
    return getattr(layer, "data_format", "channels_last") == "channels_last"


def _last_dim(shape) -> int:
    return int(shape[-1]) if shape and shape[-1] is not None else 0


def analyse(model) -> ChannelGraph:
    """The channel graph of a functional tf_keras model (layers are visited in the model's topological order)."""
    import tf_keras as keras

    g = ChannelGraph(model)
    for t in model.inputs:  # a Sequential model does not list its InputLayer among its layers
        h = t._keras_history
        g.outputs[(h.layer.name, h.tensor_index)] = g.new(_last_dim(t.shape), fixed=True)
    for layer in model.layers:
        kind = type(layer).__name__
        if isinstance(layer, keras.layers.InputLayer):
            continue
        ins = [g.outputs.get(k) for k in _inputs(layer)] if len(layer._inbound_nodes) == 1 else None
        why = _why_unsupported(layer, ins)
        if why is None:
            why = _visit(g, layer, kind, ins)
        if why is not None:
            g.unsupported[layer.name] = why
            for nodes in ins or []:
                g.fixed.update(nodes or [])
            shapes = layer.output_shape if isinstance(layer.output_shape, list) else [layer.output_shape]
            for i, shape in enumerate(shapes):
                g.outputs[(layer.name, i)] = g.new(_last_dim(shape), fixed=True)
    for t in model.outputs:
        h = t._keras_history
        g.fixed.update(g.outputs.get((h.layer.name, h.tensor_index), []))
    for name, why in g.unsupported.items():
        log.info("channel pruning: layer '%s' keeps its channels (%s)", name, why)
    return g


def _why_unsupported(layer, ins) -> str | None:
    if ins is None:
        return "used more than once (shared layer)"
    if any(n is None for n in ins):
        return "reads a tensor the channel walk did not see"
    if isinstance(layer.output_shape, list) and len(layer.output_shape) > 1:
        return "has several outputs"
    if not _channels_last(layer):
        return "channels_first data format"
    return None


def _visit(g: ChannelGraph, layer, kind: str, ins: list[list[int]]) -> str | None:
    """Record one layer; returns why it is not supported (None when it is)."""
    import tf_keras as keras

    out_dim = _last_dim(layer.output_shape)
    if kind in _PRODUCERS and getattr(layer, "groups", 1) == 1 and len(ins) == 1:
        c_in = int(layer.kernel.shape[-2]) if kind != "Dense" else int(layer.kernel.shape[0])
        if len(ins[0]) != c_in:
            return f"input has {len(ins[0])} channels, kernel {c_in}"
        g.reads[layer.name] = ins[0]
        g.produced[layer.name] = g.outputs[(layer.name, 0)] = g.new(out_dim)
        return None
    if kind in ("DepthwiseConv2D", "DepthwiseConv1D") and layer.depth_multiplier == 1:
        g.per_channel[layer.name] = g.outputs[(layer.name, 0)] = list(ins[0])
        return None
    if isinstance(layer, keras.layers.BatchNormalization):
        axes = layer.axis if isinstance(layer.axis, list | tuple) else [layer.axis]
        rank = len(layer.input_shape)
        if [a % rank for a in axes] != [rank - 1]:
            return f"normalises axis {layer.axis}, not the channel axis"
        g.per_channel[layer.name] = g.outputs[(layer.name, 0)] = list(ins[0])
        if layer.scale:
            for node, v in zip(ins[0], np.abs(layer.gamma.numpy()), strict=True):
                g.gamma.setdefault(node, float(v))
        return None
    if kind == "Activation" and layer.get_config().get("activation") in ("softmax", "log_softmax"):
        return "softmax mixes its channels"
    if kind in _PASS or (kind == "Rescaling" and np.ndim(layer.scale) == 0 and np.ndim(layer.offset) == 0):
        if len(ins) != 1 or len(ins[0]) != out_dim:
            return "changes the channel count"
        g.outputs[(layer.name, 0)] = list(ins[0])
        return None
    if kind in _MERGE:
        if len({len(n) for n in ins}) != 1 or len(ins[0]) != out_dim:
            return "merges tensors of different channel counts (broadcast)"
        g.outputs[(layer.name, 0)] = g.tie(ins)
        return None
    if kind == "Concatenate":
        rank = len(layer.output_shape)
        if layer.axis % rank == rank - 1:
            g.outputs[(layer.name, 0)] = [n for nodes in ins for n in nodes]
        else:  # along another axis: channel i of every input ends up in one channel
            g.outputs[(layer.name, 0)] = g.tie(ins)
        return None
    if kind == "Flatten":
        positions = layer.input_shape[1:-1]
        if any(d is None for d in positions):
            return "flattens a tensor of unknown size"
        g.outputs[(layer.name, 0)] = list(ins[0]) * int(np.prod(positions, dtype=int))
        return None
    return f"no rule for a {kind}'s channels"


def groups(g: ChannelGraph) -> list[ChannelGroup]:
    """The removable channel sets, by group of tied producers; fixed sets left out."""
    fixed_roots = g.fixed_roots()
    members: dict[int, list[int]] = {}
    for nodes in g.produced.values():
        for n in nodes:
            members.setdefault(g.find(n), []).append(n)
    owner = {n: layer for layer, nodes in g.produced.items() for n in nodes}
    # producers tied through any set form one group (a small union-find over layer names)
    lparent = {name: name for name in g.produced}

    def lfind(a: str) -> str:
        while lparent[a] != a:
            a = lparent[a]
        return a

    for nodes in members.values():
        first = lfind(owner[nodes[0]])
        for n in nodes[1:]:
            other = lfind(owner[n])
            if other != first:
                lparent[other] = first
    by_group: dict[str, list[tuple[int, ...]]] = {}
    for root, nodes in members.items():
        if root not in fixed_roots:
            by_group.setdefault(lfind(owner[nodes[0]]), []).append(tuple(sorted(nodes)))
    out = []
    for head, sets in by_group.items():
        names = tuple(name for name in g.produced if lfind(name) == head)
        out.append(ChannelGroup("+".join(names) if len(names) <= 3 else f"{names[0]}+{len(names) - 1} more",
                                names, tuple(sorted(sets))))
    return out


def importance(g: ChannelGraph, group: ChannelGroup, kind: str = "l1") -> np.ndarray:
    """One score per set of ``group``: the summed, per-layer normalised filter L1 norm (``l1``) or |γ| of the
    BN after it (``bn_gamma``; L1 where no BN follows) of its members."""
    score: dict[int, float] = {}
    for name in group.layers:
        layer = g.model.get_layer(name)
        k = layer.kernel.numpy()
        l1 = np.abs(k.reshape(-1, k.shape[-1])).sum(0)
        nodes = g.produced[name]
        values = l1
        if kind == "bn_gamma" and all(n in g.gamma for n in nodes):
            values = np.array([g.gamma[n] for n in nodes])
        values = values / (values.mean() or 1.0)
        score.update(zip(nodes, values.tolist(), strict=True))
    return np.array([sum(score[n] for n in s) for s in group.sets])


def choose(g: ChannelGraph, shares: dict[str, float], kind: str = "l1",
           found: list[ChannelGroup] | None = None) -> set[int]:
    """Roots of the sets to remove: per group, its ``shares[group.name]`` least important sets, never the last
    set of any of its layers."""
    removed: set[int] = set()
    owner = {n: layer for layer, nodes in g.produced.items() for n in nodes}
    for group in found if found is not None else groups(g):
        n = int(np.floor(shares.get(group.name, 0.0) * len(group.sets) + 1e-9))
        if not n:
            continue
        left = {name: len(g.produced[name]) for name in group.layers}
        cut: set[int] = set()
        for i in np.argsort(importance(g, group, kind), kind="stable"):
            if len(cut) == n:
                break
            hit: dict[str, int] = {}
            for node in group.sets[i]:
                hit[owner[node]] = hit.get(owner[node], 0) + 1
            if any(left[name] - k < 1 for name, k in hit.items()):
                continue  # a layer left without channels would not be a layer
            for name, k in hit.items():
                left[name] -= k
            cut.add(g.find(group.sets[i][0]))
        removed |= cut
    return removed


def keep_mask(g: ChannelGraph, nodes: list[int], removed: set[int]) -> np.ndarray:
    return np.array([g.find(n) not in removed for n in nodes], dtype=bool)


def zero_removed(g: ChannelGraph, removed: set[int]):
    """In place on ``g.model``: every Conv/Dense input row that reads a removed channel set to zero, which is
    what removing those channels computes. Returns the callable that puts the weights back."""
    saved = []
    for name, nodes in g.reads.items():
        mask = keep_mask(g, nodes, removed)
        if mask.all():
            continue
        kernel = g.model.get_layer(name).kernel
        value = kernel.numpy()
        saved.append((kernel, value))
        cut = value.copy()
        cut[..., ~mask, :] = 0.0
        kernel.assign(cut)
    return lambda: [k.assign(v) for k, v in saved]


def slim(g: ChannelGraph, removed: set[int]):
    """A new model without the ``removed`` channel sets: fewer filters/units, kernels, biases, depthwise kernels
    and BN parameters sliced; every other layer as it was (same names)."""
    import tf_keras as keras

    model = g.model
    outs = {name: keep_mask(g, nodes, removed) for name, nodes in g.produced.items()}

    def clone(layer):
        cfg = layer.get_config()
        if layer.name in outs:
            cfg["units" if "units" in cfg else "filters"] = int(outs[layer.name].sum())
        return layer.__class__.from_config(cfg)

    new = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if layer.name in outs:
            rows = keep_mask(g, g.reads[layer.name], removed)
            kernel = weights[0][..., rows, :][..., outs[layer.name]]
            weights = [kernel, *(w[outs[layer.name]] for w in weights[1:])]
        elif layer.name in g.per_channel:
            keep = keep_mask(g, g.per_channel[layer.name], removed)
            weights = [w[..., keep, :] if w.ndim > 2 else w[keep] for w in weights]
        new.get_layer(layer.name).set_weights(weights)
    return new


def channel_counts(g: ChannelGraph, removed: set[int]) -> dict[str, dict[str, int]]:
    """Per Conv/Dense layer: channels before and after."""
    return {name: {"before": len(nodes), "after": int(keep_mask(g, nodes, removed).sum())}
            for name, nodes in g.produced.items()}
