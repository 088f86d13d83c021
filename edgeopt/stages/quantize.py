"""Quantize stage: quantization-aware training (tfmot). After a prune (or cluster) stage it uses tfmot's
collaborative-optimisation schemes so fine-tuning keeps the zeros (and the clusters) the earlier stage made:
prune-preserving QAT (PQAT), cluster-preserving QAT (CQAT) and both together (PCQAT).

Layers tfmot has no 8-bit recipe for (and ``exclude``d ones) stay float during training; the converter
calibrates them. ``qat: false`` leaves the model as it is and lets convert do post-training quantization."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from edgeopt.errors import UsageError
from edgeopt.train.batchnorm import reestimate as reestimate_bn
from edgeopt.train.fit import FineTuneConfig, fine_tune
from edgeopt.train.fold import foldable  # the pairs tfmot's Conv/Dense + BatchNorm layout transforms fold
from edgeopt.train.layers import (
    copy_model,
    excluded,
    has_weights,
    kernel_sparsity,
    overall,
    require_functional,
    unknown_patterns,
    wrap,
)

if TYPE_CHECKING:
    from edgeopt.stages import StageContext

log = logging.getLogger(__name__)

QAT_LR_SCALE = 0.1  # QAT starts from a trained model: a tenth of the training LR unless `lr` is given
SPARSE_ENOUGH = 0.2  # kernel sparsity above which an un-recorded prune is assumed (model pruned elsewhere)
SPARSITY_LOSS_WARN = 0.02


class QuantizeConfig(FineTuneConfig):
    """Quantization-aware training. ``preserve_sparsity`` / ``preserve_clusters``: ``None`` = on when an earlier
    stage pruned / clustered the model (tfmot's collaborative-optimisation schemes)."""

    qat: bool = True  # false: no training here; convert does post-training quantization
    preserve_sparsity: bool | None = None
    preserve_clusters: bool | None = None


def scheme(preserve_sparsity: bool, preserve_clusters: bool):
    """(tfmot QuantizeScheme, short name) for the combination asked for."""
    import tensorflow_model_optimization as tfmot

    combine = tfmot.experimental.combine
    if preserve_clusters:
        name = "pcqat" if preserve_sparsity else "cqat"
        return combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=preserve_sparsity), name
    if preserve_sparsity:
        return combine.Default8BitPrunePreserveQuantizeScheme(), "pqat"
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import default_8bit_quantize_scheme

    return default_8bit_quantize_scheme.Default8BitQuantizeScheme(), "qat"


def _quantizable(layer) -> bool:
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as reg,
    )

    return reg.Default8BitQuantizeRegistry().supports(layer)


def foldable_batchnorms(model, chosen: list) -> list:
    """BatchNormalization layers that fold into a chosen layer (train/fold.foldable: one linear Conv2D,
    DepthwiseConv2D or Dense whose only reader the BN is, channels-last, called once): annotated, they let tfmot's
    layout transforms keep fake-quant out from between the two, and the converter folds the BN into the layer's
    weights (no separate MUL/ADD in the int8 graph). The registry alone does not take a bare BN."""
    into = foldable(model)
    chosen_names = {layer.name for layer in chosen}
    return [layer for layer in model.layers if into.get(layer.name) in chosen_names]


def annotate(model, cfg: QuantizeConfig) -> tuple[object, list[str]]:
    """A copy of ``model`` with QAT annotations on every layer tfmot supports and the recipe did not exclude.

    Returns (annotated model, names of layers left float)."""
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    q = tfmot.quantization.keras
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    weighted = [layer for layer in layers if has_weights(layer)]
    skip = set()
    if cfg.skip_first and weighted:
        skip.add(weighted[0].name)
    if cfg.skip_last and weighted:
        skip.add(weighted[-1].name)
    chosen = [layer for layer in layers
              if _quantizable(layer) and layer.name not in skip and not excluded(layer, cfg.exclude)]
    chosen += [layer for layer in foldable_batchnorms(model, chosen) if not excluded(layer, cfg.exclude)]
    chosen = [layer for layer in layers if layer in chosen]  # model order
    kept_float = [layer.name for layer in layers if layer not in chosen]
    if len(chosen) == len(layers):
        return q.quantize_annotate_model(copy_model(model)), []
    if not chosen:
        raise UsageError(f"quantize: no layer of '{model.name}' can be trained quantization-aware "
                         f"(unsupported or excluded: {', '.join(kept_float[:5])})",
                         "exclude fewer layers, or set quantize: {qat: false} for post-training quantization")
    return wrap(model, chosen, q.quantize_annotate_layer), kept_float


def apply_qat(model, cfg: QuantizeConfig, preserve_sparsity: bool, preserve_clusters: bool):
    """(QAT model, scheme name, layers left float) — the paired verb is convert: the TFLite converter folds it."""
    import tensorflow_model_optimization as tfmot

    annotated, kept_float = annotate(model, cfg)
    sch, name = scheme(preserve_sparsity, preserve_clusters)
    with tfmot.quantization.keras.quantize_scope():
        try:
            qat = tfmot.quantization.keras.quantize_apply(annotated, sch)
        except (ValueError, RuntimeError, TypeError) as e:
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise UsageError(f"quantize: tfmot cannot make '{model.name}' quantization-aware ({first})",
                             "exclude the layer it names (quantize: {exclude: [name]}) or use "
                             "quantize: {qat: false} (post-training quantization)") from None
    return qat, name, kept_float


def float_twin(model, qat):
    """``model``'s own architecture carrying the QAT-trained weights (matched by layer and variable name; tfmot
    names its wrappers ``quant_<layer>``): the real float model behind the QAT one, for convert's fp32, fp16,
    dynamic and ONNX fp32 artifacts, which would otherwise be fake-quant graphs (bigger, slower, no more exact).
    None when a weight cannot be matched."""

    def key(w) -> str:
        return w.name.split("/")[-1].split(":")[0]

    trained = {}
    for layer in qat.layers:
        name = layer.name.removeprefix("quant_") if hasattr(layer, "layer") else layer.name
        trained[name] = {key(w): w for w in layer.weights}
    twin = copy_model(model)
    for layer in twin.layers:
        if not layer.weights:
            continue
        src = trained.get(layer.name, {})
        values = [src[key(w)].numpy() if key(w) in src else None for w in layer.weights]
        if any(v is None or v.shape != tuple(w.shape) for v, w in zip(values, layer.weights, strict=True)):
            log.info("quantize: no float twin (layer '%s' has no matching trained weights)", layer.name)
            return None
        layer.set_weights(values)
    return twin


def apply(model, ctx: StageContext, cfg: QuantizeConfig):
    if not cfg.qat:
        ctx.notes["quantization"] = {"qat": False, "note": "post-training quantization happens in convert"}
        return model
    from edgeopt.models.load import qat_roundtrip

    require_functional(model, "quantize")
    missing = unknown_patterns(model, cfg.exclude)
    if missing:
        raise UsageError(f"quantize: exclude pattern '{missing[0]}' matches no layer of '{model.name}'",
                         "use layer or class names of the model")
    before = kernel_sparsity(model)
    was_sparse = overall(before) >= SPARSE_ENOUGH
    preserve_sparsity = cfg.preserve_sparsity if cfg.preserve_sparsity is not None else (
        "prune" in ctx.stages_done or was_sparse)
    preserve_clusters = cfg.preserve_clusters if cfg.preserve_clusters is not None else "cluster" in ctx.stages_done
    if preserve_sparsity and not was_sparse:
        log.warning("quantize: preserve_sparsity is on but '%s' has only %.0f%% zeros in its kernels", model.name,
                    100 * overall(before))
    qat, name, kept_float = apply_qat(model, cfg, preserve_sparsity, preserve_clusters)
    p = cfg.settings(ctx.train, lr_scale=QAT_LR_SCALE)
    fit = fine_tune(qat, ctx.dataset, p, stage=f"quantize ({name})", progress=ctx.progress,
                    teacher=ctx.teacher)
    bn = reestimate_bn(qat, ctx.dataset.x_train, cfg.bn_samples, seed=ctx.train.seed)
    qat = qat_roundtrip(qat)
    twin = float_twin(model, qat)
    if twin is not None:
        ctx.float_twin = (qat, twin)
    after = kernel_sparsity(qat)
    s_before, s_after = overall(before), overall(after)
    if preserve_sparsity and s_after < s_before - SPARSITY_LOSS_WARN:
        log.warning("quantize: kernel sparsity fell from %.3f to %.3f during %s", s_before, s_after, name)
    ctx.notes["quantization"] = {
        "qat": True, "scheme": name, "preserve_sparsity": preserve_sparsity, "preserve_clusters": preserve_clusters,
        "kept_float": kept_float, "float_twin": twin is not None, "epochs": p.epochs, "batch_size": p.batch_size, "lr": p.lr,
        "kernel_sparsity_before": s_before, "kernel_sparsity_after": s_after, "fine_tune": fit,
        "batchnorm": bn,
    }
    return qat
