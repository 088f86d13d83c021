"""Rebuilding a tf_keras functional model node by node: the one graph walk behind the edits that change a model's
structure (train/blocks.py removes residual branches, train/fold.py folds BatchNormalization into the layer before
it). Every layer the new model calls is a fresh copy (same name, config and its own copy of the weights), so the
input model is left untouched and later stages can still read it."""

from __future__ import annotations

from collections.abc import Callable

SKIP = object()  # route(): the node is left out of the new model


def nodes(model) -> list:
    """The model's own nodes in topological order (deepest first), inputs included."""
    return [n for d in sorted(model._nodes_by_depth, reverse=True) for n in model._nodes_by_depth[d]]


def node_key(node) -> tuple[str, int]:
    return node.layer.name, node.layer._inbound_nodes.index(node)


def flat(x) -> list:
    import tensorflow as tf

    return tf.nest.flatten(x)


def rebuild(model, route: Callable | None = None, replace: Callable | None = None):
    """A new model with ``model``'s graph, each node called as a fresh layer on the mapped tensors.

    ``route(node, mapped, fresh)`` may take a node over: it returns the tensor(s) the node's outputs map to (a
    tensor of the new graph: ``mapped(old_tensor)``, or ``fresh(layer)(...)``), ``SKIP`` for a node whose outputs
    nobody reads any more, or None for the default call. ``replace(layer)`` may give a layer's fresh copy another
    config and weights: it returns ``(config, weights)`` or None (same config, the layer's own weights)."""
    import tensorflow as tf
    import tf_keras as keras

    made: dict[int, tuple[object, list | None]] = {}

    def fresh(layer):
        if id(layer) not in made:
            swap = replace(layer) if replace is not None else None
            if swap is not None:
                made[id(layer)] = (layer.__class__.from_config(swap[0]), swap[1])
            elif isinstance(layer, keras.Model):
                made[id(layer)] = (keras.models.clone_model(layer), None)
            else:
                made[id(layer)] = (layer.__class__.from_config(layer.get_config()), None)
        return made[id(layer)][0]

    tensors: dict[int, object] = {}
    inputs = []
    for t in model.inputs:
        layer = t._keras_history.layer
        inputs.append(layer.__class__.from_config(layer.get_config())._inbound_nodes[0].outputs)
        tensors[id(t)] = inputs[-1]

    def mapped(t):
        return tensors[id(t)]

    for node in nodes(model):
        if node.is_input:
            continue
        out = route(node, mapped, fresh) if route is not None else None
        if out is SKIP:
            continue
        if out is None:
            args, kwargs = tf.nest.map_structure(lambda v: tensors.get(id(v), v), (node.call_args, node.call_kwargs))
            out = fresh(node.layer)(*args, **kwargs)
        for old, new in zip(flat(node.outputs), flat(out), strict=True):
            tensors[id(old)] = new
    outs = [tensors[id(t)] for t in model.outputs]
    # the model's own input and output structure (a dict of named inputs stays a dict)
    new = keras.Model(tf.nest.pack_sequence_as(getattr(model, "_nested_inputs", inputs), inputs),
                      tf.nest.pack_sequence_as(getattr(model, "_nested_outputs", outs), outs), name=model.name)
    for layer in model.layers:
        if id(layer) in made:
            copy, weights = made[id(layer)]
            if weights is not None:
                copy.set_weights(weights)
            elif layer.weights:
                copy.set_weights(layer.get_weights())
    return new

