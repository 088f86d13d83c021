"""The prune stage's ``blocks:`` (structure: channel): residual branches removed by measured damage first, then
channels cut from the shallower model, one fine-tune; refusals when the model has fewer removable branches."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from edgeopt.errors import UsageError
from edgeopt.recipe import Recipe
from edgeopt.stages.prune import PruneConfig
from tests.unit.stages.test_prune import _ctx, tiny  # noqa: F401 — the shared tiny model fixture


@pytest.fixture(scope="module")
def residual(digits):
    """stem → two residual blocks (conv-BN-ReLU-conv-BN + Add) → GAP → Dense → softmax, trained a few epochs."""
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    L = keras.layers
    inp = keras.Input(digits.input_shape)
    x = L.ReLU(name="stem_relu")(L.BatchNormalization(name="stem_bn")(L.Conv2D(16, 3, padding="same", name="stem")(inp)))
    for i in (1, 2):
        y = L.ReLU(name=f"b{i}_relu")(L.BatchNormalization(name=f"b{i}_bn1")(
            L.Conv2D(16, 3, padding="same", name=f"b{i}_c1")(x)))
        y = L.BatchNormalization(name=f"b{i}_bn2")(L.Conv2D(16, 3, padding="same", name=f"b{i}_c2")(y))
        x = L.ReLU(name=f"b{i}_out")(L.Add(name=f"b{i}_add")([x, y]))
    out = L.Activation("softmax", name="softmax")(L.Dense(digits.num_classes, name="logits")(
        L.GlobalAveragePooling2D(name="gap")(x)))
    model = keras.Model(inp, out, name="res")
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(digits.x_train, digits.y_train, epochs=4, batch_size=64, verbose=0)
    from edgeopt.train.batchnorm import reestimate

    reestimate(model, digits.x_train)  # 80 steps leave the moving statistics far from the weights' own
    return model


def _top1(model, data) -> float:
    return float(np.mean(np.argmax(model.predict(data.x_val, verbose=0), -1) == data.y_val))


@pytest.mark.parametrize("share", [0.25, 0.0])
def test_blocks_go_first_then_channels(tmp_path, residual, digits, share):
    from edgeopt.stages import prune

    ctx = _ctx(tmp_path, digits, epochs=2)
    out = prune.apply(residual, ctx, PruneConfig(structure="channel", target_sparsity=share, blocks=1,
                                                 sensitivity_samples=100, bn_samples=256))
    rec = ctx.notes["pruning"]
    b = rec["blocks"]
    assert [r["name"] for r in b["removable"]] == ["b1_add", "b2_add"] and b["asked"] == 1
    (gone,) = b["removed"]
    first = b["scan"]["rounds"][0]
    assert set(first["val_top1"]) == {"b1_add", "b2_add"} and b["scan"]["split"] == "val"
    assert gone == min(first["loss"], key=first["loss"].get) and b["scan"]["samples"] == min(100, len(digits.x_val))
    kept = {layer.name for layer in out.layers}
    assert gone not in kept and f"{gone[:2]}_c1" not in kept and {"b1_add", "b2_add"} - {gone} <= kept
    # a block is two convs and an ADD in the fp32 TFLite graph (BN folded, ReLU fused)
    assert rec["ops"]["after"] == rec["ops"]["before"] - 3 and rec["macs"]["after"] < rec["macs"]["before"]
    if share:  # the channel scan ran on the shallower model: no group names a removed layer
        assert rec["channels"]["removed"] > 0 and all(gone[:2] not in g for g in rec["groups"])
        assert {n["layer"] for n in ctx.notes["sensitivity"]["layers"]} == set(rec["groups"])
        assert any(v["after"] < v["before"] for v in rec["layers"].values())
        assert all(getattr(out.get_layer(n), "filters", None) in (v["after"], None) for n, v in rec["layers"].items())
    else:  # blocks only: every channel kept, no channel scan
        assert rec["channels"] is None and "sensitivity" not in ctx.notes
        assert out.get_layer("stem").filters == 16
    assert rec["params"]["after"] < rec["params"]["before"] == residual.count_params()
    assert _top1(out, digits) > _top1(residual, digits) - 0.25 and out.optimizer is None


def test_more_blocks_than_removable_is_refused(tmp_path, residual, tiny, digits):  # noqa: F811
    from edgeopt.stages import prune

    with pytest.raises(UsageError, match="has 2 removable residual branch") as e:
        prune.apply(residual, _ctx(tmp_path, digits), PruneConfig(structure="channel", blocks=3))
    assert "at most 2" in e.value.fix
    with pytest.raises(UsageError, match="has 0 removable") as e:
        prune.apply(tiny, _ctx(tmp_path, digits), PruneConfig(structure="channel", blocks=1))
    assert "drop prune.blocks" in e.value.fix
    with pytest.raises(UsageError, match="has 1 removable"):  # an excluded layer keeps its block
        prune.apply(residual, _ctx(tmp_path, digits), PruneConfig(structure="channel", blocks=2, exclude=["b1_c2"]))


def test_blocks_config():
    rec = Recipe.from_dict({"stages": [{"prune": {"structure": "channel", "target_sparsity": 0, "blocks": 2}}]})
    assert rec.stages[0][1].blocks == 2 and Recipe.from_dict(rec.to_dict()) == rec
    assert PruneConfig().blocks == 0
    with pytest.raises(ValidationError, match="structure 'channel'"):
        PruneConfig(blocks=1)
    with pytest.raises(ValidationError, match="blocks"):
        PruneConfig(structure="channel", blocks=-1)
