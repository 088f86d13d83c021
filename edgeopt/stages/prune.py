"""Prune stage: tfmot magnitude pruning (polynomial or constant schedule, or M:N structure such as 2:4),
fine-tuned with ``UpdatePruningStep``, then stripped. The schedule is sized to the fine-tune's step count;
per-layer sparsities come from a sensitivity scan on validation data (``allocation: sensitivity``, the
default; train/sensitivity.py) or are the target everywhere (``uniform``); the manifest gets the achieved
sparsity per layer (``pruning``) and the scan (``sensitivity``). ``structure: channel`` removes whole channels
instead and yields a smaller dense model (stages/prune_channels.py)."""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from edgeopt.errors import UsageError
from edgeopt.stages import prune_channels
from edgeopt.train import sensitivity, taps
from edgeopt.train.batchnorm import reestimate as reestimate_bn
from edgeopt.train.fit import FineTuneConfig, Settings, fine_tune
from edgeopt.train.layers import (
    excluded,
    has_weights,
    kernel_sparsity,
    overall,
    require_functional,
    select_layers,
    unknown_patterns,
    wrap,
)

if TYPE_CHECKING:
    from edgeopt.stages import StageContext

log = logging.getLogger(__name__)

RAMP_UPDATES = 16  # mask updates along the sparsity ramp when `frequency` is not given
SHORTFALL_WARN = 0.02  # achieved sparsity this far under the target is worth a warning
STRUCTURES = ("channel", "tap")  # besides "M:N"


class PruneConfig(FineTuneConfig):
    """Magnitude pruning (tfmot). Begin/end steps and frequency are derived from data size, batch and epochs
    unless given; a schedule that cannot fire inside the fine-tune is a UsageError."""

    target_sparsity: float = Field(0.5, ge=0.0, lt=1.0)
    initial_sparsity: float = Field(0.0, ge=0.0, lt=1.0)
    schedule: Literal["polynomial", "constant"] = "polynomial"
    # "M:N" (tfmot m_by_n), e.g. "2:4": M zeros in every N weights; "channel": whole filters removed, a smaller
    # dense model (stages/prune_channels.py); "tap": Conv1D/Conv2D zeros in whole kernel taps, all input channels of
    # one filter at one position (long zero runs in the file: smaller gzip; train/taps.py), other layers unstructured
    structure: str | None = None
    begin_step: int | None = Field(None, ge=0)
    end_step: int | None = Field(None, ge=1)
    frequency: int | None = Field(None, ge=1)  # steps between mask updates
    end_fraction: float = Field(0.7, gt=0.0, le=1.0)  # where the sparsity ramp ends when end_step is not given
    # per-layer sparsities: the same for every pruned layer, or chosen from a per-layer sensitivity scan on
    # validation data (train/sensitivity.py) so the overall target costs the least measured damage
    # default: sensitivity (measured: benchmarks/results/sensitivity.md), uniform under an M:N structure
    allocation: Literal["uniform", "sensitivity"] = "sensitivity"
    importance: Literal["l1", "bn_gamma"] = "l1"  # structure: channel — how channels are ranked in a layer
    # structure: channel — first remove this many residual branches (the cheapest on validation data; fewer ops)
    blocks: int = Field(0, ge=0)
    sensitivity_shares: list[float] = [0.5, 0.75, 0.9]  # sparsities each layer is scanned at
    sensitivity_samples: int = Field(1000, ge=1)  # validation rows the scan measures on

    @field_validator("structure")
    @classmethod
    def _structure(cls, v: str | None) -> str | None:
        if v is None or v in STRUCTURES:
            return v
        m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", str(v))
        if not m or not 0 < int(m.group(1)) < int(m.group(2)):
            raise ValueError("structure must be 'channel', 'tap' or 'M:N' with 0 < M < N, e.g. '2:4'")
        return f"{int(m.group(1))}:{int(m.group(2))}"

    @field_validator("sensitivity_shares")
    @classmethod
    def _shares(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 < s < 1 for s in v):
            raise ValueError("sensitivity_shares must be sparsities between 0 and 1, e.g. [0.5, 0.75, 0.9]")
        return sorted(set(v))

    @model_validator(mode="before")
    @classmethod
    def _default_allocation(cls, raw):
        if isinstance(raw, dict) and raw.get("allocation") is None and ":" in str(raw.get("structure") or ""):
            raw = {**raw, "allocation": "uniform"}  # M:N fixes every layer's sparsity
        return raw

    @model_validator(mode="after")
    def _ramp(self) -> PruneConfig:
        if self.initial_sparsity > self.target_sparsity:
            raise ValueError(f"initial_sparsity {self.initial_sparsity} is above target_sparsity {self.target_sparsity}")
        if self.begin_step is not None and self.end_step is not None and self.end_step <= self.begin_step:
            raise ValueError(f"end_step {self.end_step} must be after begin_step {self.begin_step}")
        if self.blocks and self.structure != "channel":
            raise ValueError(f"blocks removes residual branches under structure 'channel' (got structure "
                             f"{self.structure!r}); add `structure: channel` or drop blocks")
        if self.allocation == "sensitivity" and self.structure is not None and ":" in self.structure:
            raise ValueError(f"allocation 'sensitivity' chooses per-layer sparsities; structure {self.structure} "
                             "fixes them (drop one of the two)")
        return self

    @property
    def m_by_n(self) -> tuple[int, int] | None:
        if self.structure is None or self.structure in STRUCTURES:
            return None
        m, n = self.structure.split(":")
        return int(m), int(n)


@dataclass(frozen=True)
class Schedule:
    kind: str
    begin_step: int
    end_step: int  # -1: constant schedule, keeps pruning until the end
    frequency: int
    total_steps: int


def size_schedule(cfg: PruneConfig, p: Settings, n_train: int) -> Schedule:
    """Begin/end/frequency inside the steps the fine-tune runs; refuses schedules that never fire."""
    steps = p.steps_per_epoch(n_train)
    total = p.epochs * steps
    how = f"{p.epochs} epochs × {steps} steps ({n_train} samples / batch {p.batch_size}) = {total} steps"
    if total < 2:
        raise UsageError(f"prune: the fine-tune has only {how}, too few to prune",
                         "raise prune.epochs or lower prune.batch_size")
    begin = cfg.begin_step if cfg.begin_step is not None else 0
    if begin >= total - 1:
        raise UsageError(f"prune: begin_step {begin} is at or past the last fine-tune step ({how})",
                         "lower begin_step or raise prune.epochs")
    if cfg.schedule == "constant":
        span = total - 1 - begin
        freq = cfg.frequency or max(1, span // RAMP_UPDATES)
        if freq > span:
            raise UsageError(f"prune: frequency {freq} exceeds the {span} steps after begin_step {begin} ({how}); "
                             "the mask would be set once at most", "lower prune.frequency or raise prune.epochs")
        return Schedule("constant", begin, -1, freq, total)
    end = cfg.end_step if cfg.end_step is not None else max(begin + 1, int(round(total * cfg.end_fraction)) - 1)
    end = min(end, total - 1) if cfg.end_step is None else end
    if end > total - 1:
        raise UsageError(f"prune: end_step {end} is past the last fine-tune step {total - 1} ({how}); the target "
                         "sparsity would never be reached", "lower prune.end_step or raise prune.epochs")
    if end <= begin:
        raise UsageError(f"prune: the sparsity ramp is empty (begin_step {begin}, end_step {end}; {how})",
                         "raise prune.epochs or lower begin_step")
    freq = cfg.frequency or max(1, (end - begin) // RAMP_UPDATES)
    if freq > end - begin:
        raise UsageError(f"prune: frequency {freq} exceeds the {end - begin} steps between begin_step {begin} and "
                         f"end_step {end} ({how}); the schedule would never reach the target",
                         "lower prune.frequency or raise prune.epochs")
    end = begin + freq * ((end - begin) // freq)  # the last mask update must land on end_step
    return Schedule("polynomial", begin, end, freq, total)


def _prunable(layer) -> bool:
    from tensorflow_model_optimization.python.core.sparsity.keras import prunable_layer, prune_registry

    if isinstance(layer, prunable_layer.PrunableLayer) or hasattr(layer, "get_prunable_weights"):
        return True
    reg = prune_registry.PruneRegistry
    if not reg.supports(layer):
        return False
    if layer.__class__ in reg._LAYERS_WEIGHTS_MAP:
        return bool(reg._weight_names(layer))
    return True  # RNN / attention layers the registry knows how to prune


def check_supported(model, cfg: PruneConfig) -> None:
    """A weighted layer tfmot cannot wrap and the recipe did not exclude: name it and the way out."""
    from tensorflow_model_optimization.python.core.sparsity.keras import prune_registry

    for layer in model.layers:
        if excluded(layer, cfg.exclude) or not has_weights(layer) or _prunable(layer):
            continue
        if prune_registry.PruneRegistry.supports(layer):
            continue  # known layer without prunable kernels (BatchNormalization, DepthwiseConv2D): left dense
        raise UsageError(f"prune: layer '{layer.name}' ({type(layer).__name__}) has weights tfmot cannot prune",
                         f"exclude it (prune: {{exclude: [{layer.name}]}}) or use a PTQ-only recipe")


def check_m_by_n(layers, m_by_n: tuple[int, int]) -> None:
    """tfmot's M:N masks act on the input-channel axis of Conv2D and Dense kernels; it must split into N-blocks."""
    import tf_keras as keras

    m, n = m_by_n
    for layer in layers:
        kind = type(layer).__name__
        plain_conv = isinstance(layer, keras.layers.Conv2D) and not isinstance(
            layer, (keras.layers.DepthwiseConv2D, keras.layers.Conv2DTranspose, keras.layers.SeparableConv2D))
        if not (plain_conv and getattr(layer, "groups", 1) == 1) and not isinstance(layer, keras.layers.Dense):
            raise UsageError(f"prune: {m}:{n} sparsity applies to Conv2D and Dense kernels, but layer "
                             f"'{layer.name}' is a {kind}",
                             f"exclude it (prune: {{exclude: [{layer.name}]}}) or drop `structure`")
        c_in = int(layer.kernel.shape[-2]) if plain_conv else int(layer.kernel.shape[0])
        if c_in % n:
            raise UsageError(f"prune: {m}:{n} sparsity needs input channels in blocks of {n}, but layer "
                             f"'{layer.name}' ({kind}) has {c_in}",
                             f"exclude it (prune: {{exclude: [{layer.name}]}}) or drop `structure`")


def pruning_schedule(cfg: PruneConfig, s: Schedule):
    import tensorflow_model_optimization as tfmot

    sp = tfmot.sparsity.keras
    if s.kind == "constant":
        return sp.ConstantSparsity(cfg.target_sparsity, s.begin_step, s.end_step, s.frequency)
    return sp.PolynomialDecay(cfg.initial_sparsity, cfg.target_sparsity, s.begin_step, s.end_step,
                              power=3, frequency=s.frequency)


def apply_pruning(model, chosen: list, cfg: PruneConfig, s: Schedule, targets: dict[str, float] | None = None):
    """``chosen`` wrapped for pruning; ``targets`` (layer name → sparsity) overrides the target per layer."""
    import tensorflow_model_optimization as tfmot

    def schedule_of(layer):
        if targets is None:
            return pruning_schedule(cfg, s)
        t = targets[layer.name]
        return pruning_schedule(cfg.model_copy(update={"target_sparsity": t,
                                                       "initial_sparsity": min(cfg.initial_sparsity, t)}), s)

    def wrapper(layer):
        if cfg.structure == "tap" and taps.tap_layer(layer):
            return taps.prune_taps(layer, schedule_of(layer))
        return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule_of(layer),
                                                        sparsity_m_by_n=cfg.m_by_n)

    return wrap(model, chosen, wrapper)


def strip_pruning(model):
    import tensorflow_model_optimization as tfmot

    return tfmot.sparsity.keras.strip_pruning(model)


def apply(model, ctx: StageContext, cfg: PruneConfig):
    import tensorflow_model_optimization as tfmot

    require_functional(model, "prune")
    missing = unknown_patterns(model, cfg.exclude)
    if missing:
        raise UsageError(f"prune: exclude pattern '{missing[0]}' matches no layer of '{model.name}'",
                         f"use layer or class names, e.g. {', '.join(layer.name for layer in model.layers[1:4])}")
    if cfg.structure == "channel":
        return prune_channels.apply(model, ctx, cfg)
    check_supported(model, cfg)
    chosen = select_layers(model, cfg, _prunable)
    if not chosen:
        raise UsageError(f"prune: no prunable layer left in '{model.name}' after exclusions",
                         "exclude fewer layers (Conv/Dense kernels are prunable)")
    if cfg.m_by_n:
        check_m_by_n(chosen, cfg.m_by_n)
    tap_layers = [layer.name for layer in chosen if taps.tap_layer(layer)] if cfg.structure == "tap" else []
    if cfg.structure == "tap" and not tap_layers:
        raise UsageError(f"prune: structure 'tap' prunes Conv1D/Conv2D kernels in whole taps, and no pruned layer "
                         f"of '{model.name}' is a Conv1D/Conv2D with more than one input channel",
                         "drop `structure` (unstructured pruning) or prune its convolutions")
    p = cfg.settings(ctx.train)
    s = size_schedule(cfg, p, len(ctx.dataset.x_train))
    log.info("prune: %d layers, schedule %s", len(chosen), s)
    targets = None
    if cfg.allocation == "sensitivity":
        targets, ctx.notes["sensitivity"] = sensitivity.weights(model, chosen, ctx.dataset, cfg.target_sparsity,
                                                                 cfg.sensitivity_shares, cfg.sensitivity_samples,
                                                                 taps=set(tap_layers))
    pruned = apply_pruning(model, chosen, cfg, s, targets)
    # early stopping keeps no epoch before the ramp has reached the target sparsity
    fit = fine_tune(pruned, ctx.dataset, p, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()], stage="prune",
                    progress=ctx.progress, teacher=ctx.teacher,
                    start_epoch=max(s.end_step, s.begin_step) // p.steps_per_epoch(len(ctx.dataset.x_train)))
    stripped = strip_pruning(pruned)
    bn = reestimate_bn(stripped, ctx.dataset.x_train, cfg.bn_samples, seed=ctx.train.seed)
    per_layer = kernel_sparsity(stripped)
    names = [layer.name for layer in chosen]
    target = 1 - (cfg.m_by_n[1] - cfg.m_by_n[0]) / cfg.m_by_n[1] if cfg.m_by_n else cfg.target_sparsity
    achieved = overall(per_layer, names)
    wanted = targets or dict.fromkeys(names, target)
    short = [n for n in names if per_layer.get(n, {}).get("sparsity", 0) < wanted[n] - SHORTFALL_WARN]
    if short:
        log.warning("prune: %d layer(s) under the %.2f target (%s); the schedule fired too rarely", len(short),
                    target, ", ".join(short[:5]))
    ctx.notes["pruning"] = {
        "target_sparsity": round(target, 4), "structure": cfg.structure, "allocation": cfg.allocation,
        "achieved_sparsity": achieved,
        "whole_model_sparsity": overall(per_layer), "schedule": asdict(s), "epochs": p.epochs,
        "batch_size": p.batch_size, "lr": p.lr, "pruned_layers": names,
        **({"tap_layers": tap_layers} if tap_layers else {}),
        "kept_dense": [n for n in per_layer if n not in names], "layers": per_layer, "fine_tune": fit,
        "batchnorm": bn,
    }
    return stripped
