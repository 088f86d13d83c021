"""Cluster stage: tfmot weight clustering — each clustered kernel keeps ``number_of_clusters`` distinct values,
which gzip (and a palette-aware runtime) turn into size. Fine-tuned, then stripped back to plain layers.
After a prune stage it preserves the zeros (sparsity-preserving clustering) unless told otherwise."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from edgeopt.errors import UsageError
from edgeopt.train.batchnorm import reestimate as reestimate_bn
from edgeopt.train.fit import FineTuneConfig, fine_tune
from edgeopt.train.fold import fold as fold_batchnorms
from edgeopt.train.fold import foldable
from edgeopt.train.layers import kernel_sparsity, overall, require_functional, select_layers, unknown_patterns, wrap

if TYPE_CHECKING:
    from edgeopt.stages import StageContext

log = logging.getLogger(__name__)

CLUSTER_LR_SCALE = 0.1  # centroids move in small steps from a trained model
SPARSE_ENOUGH = 0.2


class ClusterConfig(FineTuneConfig):
    """Weight clustering (tfmot): every clustered kernel keeps ``number_of_clusters`` distinct values."""

    number_of_clusters: int = Field(16, ge=2, le=256)
    centroid_init: Literal["kmeans_plus_plus", "linear", "random", "density_based"] = "kmeans_plus_plus"
    preserve_sparsity: bool | None = None  # None = on when the model was pruned
    per_channel: bool = False  # Conv2D kernels clustered per output channel
    # fold each BatchNormalization into the Conv/Dense before it, then cluster: the converter would fold it at
    # conversion and scale every channel's shared values apart (train/fold.py); the stage's model has no such BN
    fold_batch_norm: bool = False


def _clusterable(layer) -> bool:
    from tensorflow_model_optimization.python.core.clustering.keras import clusterable_layer, clustering_registry

    if isinstance(layer, clusterable_layer.ClusterableLayer):
        return True
    reg = clustering_registry.ClusteringRegistry
    if not reg.supports(layer):
        return False
    weights = reg._LAYERS_WEIGHTS_MAP.get(layer.__class__)
    return weights is None or bool(weights)


def _big_enough(layer, cfg: ClusterConfig) -> bool:
    """tfmot leaves kernels with no more weights than clusters alone (and warns); skip them up front."""
    kernel = getattr(layer, "kernel", None)
    if kernel is None:
        kernel = getattr(layer, "pointwise_kernel", None)
    if kernel is None:
        return True
    n = int(np.prod(kernel.shape))
    if cfg.per_channel:
        n //= int(kernel.shape[-1])
    return n > cfg.number_of_clusters


def apply_clustering(model, chosen: list, cfg: ClusterConfig, preserve_sparsity: bool):
    import tensorflow_model_optimization as tfmot

    cl = tfmot.clustering.keras
    init = getattr(cl.CentroidInitialization, cfg.centroid_init.upper())
    return wrap(model, chosen, lambda layer: cl.cluster_weights(
        layer, number_of_clusters=cfg.number_of_clusters, cluster_centroids_init=init,
        preserve_sparsity=preserve_sparsity, cluster_per_channel=cfg.per_channel))


def strip_clustering(model):
    import tensorflow_model_optimization as tfmot

    return tfmot.clustering.keras.strip_clustering(model)


def distinct_values(model, names: list[str]) -> dict[str, int]:
    out = {}
    for layer in model.layers:
        if layer.name in names:
            kernels = [w for w in layer.get_weights() if w.ndim >= 2]
            out[layer.name] = int(max(len(np.unique(k)) for k in kernels)) if kernels else 0
    return out


def apply(model, ctx: StageContext, cfg: ClusterConfig):
    require_functional(model, "cluster")
    missing = unknown_patterns(model, cfg.exclude)
    if missing:
        raise UsageError(f"cluster: exclude pattern '{missing[0]}' matches no layer of '{model.name}'",
                         "use layer or class names of the model")
    folded: dict[str, str] = {}
    if cfg.fold_batch_norm:
        model, folded = fold_batchnorms(model)
    chosen = [layer for layer in select_layers(model, cfg, _clusterable) if _big_enough(layer, cfg)]
    if not chosen:
        raise UsageError(f"cluster: no layer of '{model.name}' can be clustered with {cfg.number_of_clusters} "
                         "clusters after exclusions", "exclude fewer layers or lower number_of_clusters")
    before = kernel_sparsity(model)
    preserve = cfg.preserve_sparsity if cfg.preserve_sparsity is not None else (
        "prune" in ctx.stages_done or overall(before) >= SPARSE_ENOUGH)
    clustered = apply_clustering(model, chosen, cfg, preserve)
    p = cfg.settings(ctx.train, lr_scale=CLUSTER_LR_SCALE)
    fit = fine_tune(clustered, ctx.dataset, p, stage="cluster", progress=ctx.progress,
                    teacher=ctx.teacher)
    stripped = strip_clustering(clustered)
    bn = reestimate_bn(stripped, ctx.dataset.x_train, cfg.bn_samples, seed=ctx.train.seed)
    names = [layer.name for layer in chosen]
    after = kernel_sparsity(stripped)
    # per-channel clusters stay N values per channel under a per-channel factor: nothing to warn about
    scaled = [] if cfg.per_channel else sorted(set(names) & set(foldable(stripped).values()))
    if scaled:
        log.warning("cluster: %d clustered layer(s) feed a BatchNormalization (%s): the converter folds it into "
                    "their kernels and scales each channel's %d shared values apart, so the file keeps many more; "
                    "cluster: {fold_batch_norm: true} folds it before clustering",
                    len(scaled), ", ".join(scaled[:3]), cfg.number_of_clusters)
    ctx.notes["clustering"] = {
        "number_of_clusters": cfg.number_of_clusters, "centroid_init": cfg.centroid_init,
        "per_channel": cfg.per_channel, "preserve_sparsity": preserve, "clustered_layers": names,
        "distinct_values": distinct_values(stripped, names), "kernel_sparsity_before": overall(before),
        "kernel_sparsity_after": overall(after), "epochs": p.epochs, "lr": p.lr, "fine_tune": fit,
        "batchnorm": bn, "folded_batchnorms": folded, "scaled_by_batchnorm": scaled,
    }
    return stripped
