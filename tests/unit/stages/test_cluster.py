"""Cluster stage: distinct values per kernel, sparsity preserved after pruning, cluster-preserving QAT."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.errors import UsageError
from edgeopt.recipe import Recipe, TrainDefaults
from edgeopt.stages.cluster import ClusterConfig
from edgeopt.stages.prune import PruneConfig
from edgeopt.stages.quantize import QuantizeConfig


def _ctx(tmp_path, data):
    from edgeopt.stages import StageContext

    return StageContext(dataset=data, out_dir=tmp_path, base_name="m", train=TrainDefaults(epochs=1))


@pytest.fixture(scope="module")
def tiny(tiny_model_path):
    from edgeopt.models.load import load_model

    return load_model(tiny_model_path)


def test_kernels_keep_at_most_n_values(tmp_path, tiny, digits):
    from edgeopt.stages import cluster

    ctx = _ctx(tmp_path, digits)
    out = cluster.apply(tiny, ctx, ClusterConfig(number_of_clusters=8))
    notes = ctx.notes["clustering"]
    assert notes["clustered_layers"] == ["conv2d", "dense"]
    for name in notes["clustered_layers"]:
        assert len(np.unique(out.get_layer(name).get_weights()[0])) <= 8
        assert notes["distinct_values"][name] <= 8
    assert not any("Cluster" in type(layer).__name__ for layer in out.layers)


def test_clustering_after_pruning_keeps_zeros_and_cqat_keeps_both(tmp_path, tiny, digits):
    from edgeopt.stages import cluster, prune, quantize

    ctx = _ctx(tmp_path, digits)
    pruned = prune.apply(tiny, ctx, PruneConfig(target_sparsity=0.6, epochs=2))
    ctx.stages_done.append("prune")
    clustered = cluster.apply(pruned, ctx, ClusterConfig(number_of_clusters=8))
    ctx.stages_done.append("cluster")
    assert ctx.notes["clustering"]["preserve_sparsity"]
    kernel = clustered.get_layer("dense").get_weights()[0]
    assert 1 - np.count_nonzero(kernel) / kernel.size >= 0.58
    qat = quantize.apply(clustered, ctx, QuantizeConfig(epochs=1))
    assert ctx.notes["quantization"]["scheme"] == "pcqat"
    assert ctx.notes["quantization"]["kernel_sparsity_after"] >= 0.55
    assert qat.output_shape == tiny.output_shape
    from edgeopt.core.artifact import param_counts
    from edgeopt.stages.convert import tflite_bytes

    path = tmp_path / "pcqat_int8.tflite"
    path.write_bytes(tflite_bytes(qat, "int8", digits.representative(64)))
    params, nonzero = param_counts(path, "tflite")
    assert 1 - nonzero / params > 0.5  # zeros survive clustering, PCQAT and conversion


@pytest.mark.parametrize("bad", [{"number_of_clusters": 1}, {"centroid_init": "kmeans"}, {"clusters": 8}])
def test_bad_cluster_config(bad):
    with pytest.raises(UsageError):
        Recipe.from_dict({"stages": [{"cluster": bad}]})


def test_too_many_clusters_for_every_layer(tmp_path, tiny, digits):
    from edgeopt.stages import cluster

    with pytest.raises(UsageError, match="no layer .* can be clustered"):
        cluster.apply(tiny, _ctx(tmp_path, digits), ClusterConfig(number_of_clusters=256, exclude=["dense"]))
