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


def _conv_kernel_values(flatbuffer: bytes) -> list[int]:
    """Distinct int8 values of each CONV_2D kernel in a TFLite file (model order)."""
    from tensorflow.lite.tools import flatbuffer_utils

    m = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in m.operatorCodes]
    sg = m.subgraphs[0]
    out = []
    for op in sg.operators:
        if codes[op.opcodeIndex] == 3:  # CONV_2D
            data = m.buffers[sg.tensors[op.inputs[1]].buffer].data
            out.append(len(np.unique(np.frombuffer(bytes(data), np.int8))))
    return out


def test_clusters_survive_conversion_only_with_batchnorm_folded_first(tmp_path, digits, caplog):
    """The converter folds a Conv's BatchNormalization into its kernel, scaling each channel apart: the file's
    per-tensor int8 kernel has many more than N values. Folded before clustering, it keeps at most N."""
    from edgeopt.models import zoo
    from edgeopt.stages import cluster
    from edgeopt.stages.convert import tflite_bytes
    from edgeopt.train.fit import Settings, train

    model = zoo.build("small_cnn", digits.input_shape, digits.num_classes, width=0.5, depth=2)
    model, _ = train(model, digits.x_train, digits.y_train, Settings(epochs=2, batch_size=32, lr=0.01))
    files = {}
    for fold in (False, True):
        ctx = _ctx(tmp_path / str(fold), digits)
        with caplog.at_level("WARNING", logger="edgeopt.stages.cluster"):
            caplog.clear()
            out = cluster.apply(model, ctx, ClusterConfig(number_of_clusters=8, fold_batch_norm=fold))
        notes = ctx.notes["clustering"]
        files[fold] = _conv_kernel_values(tflite_bytes(out, "int8", digits.representative(64), per_channel=False))
        if fold:
            assert notes["folded_batchnorms"] == {"block1_bn": "block1_conv", "block2_bn": "block2_conv"}
            assert notes["scaled_by_batchnorm"] == [] and "fold_batch_norm" not in caplog.text
            assert not any("BatchNormalization" in type(layer).__name__ for layer in out.layers)
        else:
            assert notes["folded_batchnorms"] == {} and notes["scaled_by_batchnorm"] == ["block1_conv", "block2_conv"]
            assert "cluster: {fold_batch_norm: true}" in caplog.text
    assert len(files[True]) == 2 and all(n <= 8 for n in files[True]), files
    assert all(n > 16 for n in files[False]), files
