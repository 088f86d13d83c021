"""Depth pruning of tf_keras functional models: find the residual branches that can go, measure what each costs on
validation data, and rebuild the model without the cheapest.

A branch is removable when an ``Add`` reads a skip tensor ``s`` and the end of a sub-graph (any layers, any depth,
forks and joins inside) whose only outside input is ``s`` and whose tensors nobody outside it reads (nor the
model's outputs): then ``Add(s, branch(s)) == s + branch(s)``, and without the branch the Add's readers read ``s``
(an Add of more inputs keeps the others). A projection shortcut is no skip (its Add's other input does not come
from the projection's output), so such blocks stay. ``remove`` rebuilds the model: every kept layer called in
topological order on the mapped tensors, as a fresh layer with its own copy of the weights (names kept), so it
computes exactly what the original computes with the removed branches' outputs forced to zero.

Each removed block takes its ops with it (conv, depthwise, conv and the Add of an inverted residual: 4 TFLite ops);
a cost model that charges per op (the Pi 4 estimate: 30 µs an op) gains from that what fewer channels cannot give.
``select`` picks the blocks by measured damage: each candidate removed alone (BN statistics re-estimated on
training rows), scored on a validation sample with sensitivity.score, the cheapest taken, and (greedy) the
remaining ones scanned again on the model without it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from edgeopt.train.rebuild import SKIP, rebuild
from edgeopt.train.rebuild import flat as _flat
from edgeopt.train.rebuild import node_key as _node_key
from edgeopt.train.rebuild import nodes as _nodes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Branch:
    """One removable residual branch: the Add (its layer name), which of its inputs the branch ends in, the
    skip tensor's producer, and the branch's layers (topological order)."""

    name: str  # the Add's name; "add:1" when the Add has more than two inputs
    add: str
    position: int  # index of the branch's end among the Add's inputs
    skip: str  # the layer whose output is the skip tensor
    skip_position: int  # index of the skip tensor among the Add's inputs (two inputs may come from one layer)
    layers: tuple[str, ...]
    params: int

    def to_dict(self) -> dict:
        return {"name": self.name, "skip": self.skip, "layers": list(self.layers), "params": self.params}


def _key(t) -> tuple[str, int, int]:
    h = t._keras_history
    return h.layer.name, h.node_index, h.tensor_index


def _producer(t):
    h = t._keras_history
    return h.layer._inbound_nodes[h.node_index]


def _graph(model) -> tuple[dict, set]:
    """Who reads each tensor (tensor key → nodes), and the keys of the model's outputs."""
    readers: dict[tuple, list] = {}
    for node in _nodes(model):
        for t in node.keras_inputs:
            readers.setdefault(_key(t), []).append(node)
    return readers, {_key(t) for t in model.outputs}


def find(model) -> list[Branch]:
    """Every removable residual branch of a functional (or Sequential) tf_keras model, in topological order."""
    import tf_keras as keras

    if not getattr(model, "_is_graph_network", False):
        return []
    nodes = _nodes(model)
    readers, outputs = _graph(model)
    found: list[Branch] = []
    for node in nodes:
        if node.is_input or type(node.layer) is not keras.layers.Add or sum(
                any(m is n for n in nodes) for m in node.layer._inbound_nodes) != 1:
            continue  # a shared Add would lose its branch in every call
        ins = list(node.keras_inputs)
        out_shape = tuple(_flat(node.outputs)[0].shape[1:])
        for j, end in enumerate(ins):
            for i, s in enumerate(ins):
                if i == j or _key(s) == _key(end) or tuple(s.shape[1:]) != out_shape:
                    continue
                members = _members(end, s, node, readers, outputs)
                if members is None:
                    continue
                layers = tuple(n.layer.name for n in nodes if _node_key(n) in members)
                owned = [n.layer for n in nodes if _node_key(n) in members
                         and all(_node_key(m) in members for m in n.layer._inbound_nodes if m in nodes)]
                name = node.layer.name if len(ins) == 2 else f"{node.layer.name}:{j}"
                found.append(Branch(name, node.layer.name, j, s._keras_history.layer.name, i, layers,
                                    int(sum(layer.count_params() for layer in owned))))
                break
    return found


def _members(end, s, add, readers: dict, outputs: set) -> set | None:
    """The node keys of the branch from ``s`` to ``end``, or None when it is not a closed branch of ``s``."""
    members: dict[tuple, object] = {}
    stack = [_producer(end)]
    while stack:
        n = stack.pop()
        k = _node_key(n)
        if k in members:
            continue
        if n.is_input:
            return None  # reached a model input around s: the branch has another outside input
        members[k] = n
        stack.extend(_producer(t) for t in n.keras_inputs if _key(t) != _key(s))
    for n in members.values():
        for t in _flat(n.outputs):
            if _key(t) in outputs:
                return None
            for r in readers.get(_key(t), []):
                if _node_key(r) not in members and not (r is add and _key(t) == _key(end)):
                    return None
    if sum(_key(t) == _key(end) for t in add.keras_inputs) != 1:
        return None
    return set(members)


def remove(model, branches: Sequence[Branch]):
    """A new model without ``branches`` (from ``find(model)``): each Add reads what is left of its inputs, or is
    replaced by its skip tensor when only that is left. Kept layers are fresh copies (same names and weights)."""
    import tf_keras as keras

    from edgeopt.train.layers import copy_model

    if not branches:
        return copy_model(model)
    graph = _graph(model)
    by_name = {n.layer.name: n for n in _nodes(model) if not n.is_input}
    dropped: set = set()
    cut: dict[str, set[int]] = {}
    for b in branches:
        add = by_name[b.add]
        members = _members(add.keras_inputs[b.position], add.keras_inputs[b.skip_position], add, *graph)
        assert members is not None, f"{b.name}: not a branch of this model (find() made it)"
        dropped |= members
        cut.setdefault(b.add, set()).add(b.position)

    def route(node, mapped, fresh):
        if _node_key(node) in dropped:
            return SKIP
        if node.layer.name in cut and type(node.layer) is keras.layers.Add:
            kept = [mapped(t) for k, t in enumerate(node.keras_inputs) if k not in cut[node.layer.name]]
            return kept[0] if len(kept) == 1 else fresh(node.layer)(kept)
        return None

    return rebuild(model, route)


def nested(a: Branch, b: Branch) -> bool:
    """One branch holds the other (a residual inside a residual): removing the outer removes the inner too."""
    return a.add in b.layers or b.add in a.layers


def most_removable(found: Sequence[Branch]) -> int:
    """How many of ``found`` can go together: the innermost ones (no other branch's Add inside them)."""
    return sum(not any(o is not b and o.add in b.layers for o in found) for b in found)


def select(model, found: Sequence[Branch], n: int, x: np.ndarray, y: np.ndarray, *,
           prepare: Callable[[object], object] | None = None, greedy: bool = True) -> tuple[list[Branch], dict]:
    """The ``n`` branches whose removal costs the least measured damage (cross-entropy increase on (x, y), the
    same signal as the sensitivity scan; top-1 recorded beside it). ``prepare(model)`` runs on each candidate
    before it is scored (the BN re-estimate). Greedy: after each pick the rest are scanned again without it;
    else one scan ranks them all. Returns the picks and the manifest's ``scan`` section."""
    from edgeopt.train.sensitivity import score

    start = time.perf_counter()
    chosen: list[Branch] = []
    rounds = []
    left = list(found)
    base_top1, base_loss = score(model, x, y)
    while left and (len(chosen) < n or not rounds):  # one round at least: the record of what each would cost
        scores = {}
        for b in left:
            candidate = remove(model, [*chosen, b])
            if prepare is not None:
                prepare(candidate)
            scores[b.name] = score(candidate, x, y)
        order = sorted(left, key=lambda b: (scores[b.name][1], -scores[b.name][0]))
        take: list[Branch] = []
        for b in order:  # never a branch inside (or around) one already taken: it would remove nothing more
            if len(take) < min(1 if greedy else n, n - len(chosen)) and not any(nested(b, c) for c in take):
                take.append(b)
        rounds.append({"removed_before": [b.name for b in chosen],
                       "val_top1": {k: round(v[0], 4) for k, v in scores.items()},
                       "loss": {k: round(v[1], 4) for k, v in scores.items()},
                       "picked": [b.name for b in take]})
        chosen += take
        left = [b for b in left if b not in take and not any(nested(b, c) for c in take)]
        if not greedy:
            break
    seconds = time.perf_counter() - start
    log.info("blocks: removed %s of %d removable (scan %.1f s on %d samples)", [b.name for b in chosen],
             len(found), seconds, len(x))
    return chosen, {"greedy": greedy, "samples": int(len(x)), "seconds": round(seconds, 2),
                    "base": {"val_top1": round(base_top1, 4), "loss": round(base_loss, 4)}, "rounds": rounds}
