"""The prune stage's ``structure: channel``: remove a share of the prunable channels (whole filters, tied through
residual adds, depthwise convs, concatenations and BN — train/channels.py), rebuild a smaller dense model with
the kept weights, fine-tune it and re-estimate its BN statistics. Per-group shares come from a sensitivity scan
on validation data (``allocation: sensitivity``) or are the target everywhere (``uniform``); channels within a
group are ranked by filter L1 norm or BN |γ| (``importance``). ``blocks: N`` first removes the N residual branches
whose removal costs the least on validation data (train/blocks.py; fewer ops, which fewer channels cannot give),
then channels are cut from the shallower model (``target_sparsity: 0``: blocks only). The manifest gets the
channels, MACs and TFLite op count (from the graph reader) before and after, both scans and the blocks removed."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from edgeopt.errors import UsageError
from edgeopt.train import blocks, channels, sensitivity
from edgeopt.train.batchnorm import reestimate as reestimate_bn
from edgeopt.train.fit import fine_tune
from edgeopt.train.layers import copy_model, excluded, require_functional

if TYPE_CHECKING:
    from edgeopt.stages import StageContext

# ``cfg`` below is a stages.prune.PruneConfig (not imported: prune imports this module)

log = logging.getLogger(__name__)


def pickable(g: channels.ChannelGraph, cfg: Any) -> list[channels.ChannelGroup]:
    """The channel groups the recipe lets the stage cut: none holding an excluded layer, nor (skip_first /
    skip_last) the first or last Conv/Dense layer's."""
    found = channels.groups(g)
    producers = list(g.produced)
    skip = set()
    if cfg.skip_first and producers:
        skip.add(producers[0])
    if cfg.skip_last and producers:
        skip.add(producers[-1])
    model = g.model
    return [grp for grp in found
            if not skip & set(grp.layers) and not any(excluded(model.get_layer(n), cfg.exclude) for n in grp.layers)]


def tflite_counts(model) -> tuple[int | None, int | None]:
    """(MACs, ops) of one inference of the model's fp32 TFLite conversion (the one graph reader counts them)."""
    from edgeopt.core import graph
    from edgeopt.stages.convert.tflite import tflite_bytes

    try:
        g = graph.read_tflite(tflite_bytes(model, "fp32"))
    except Exception as e:  # noqa: BLE001 — a count we cannot make is missing from the notes, not fatal
        log.warning("channel pruning: no MAC / op count (TFLite conversion failed: %s)", e)
        return None, None
    return g.macs(), len(g.main.ops)


def drop_blocks(model, ctx: StageContext, cfg: Any):
    """The model without its ``cfg.blocks`` cheapest removable residual branches (BN statistics as they were: the
    caller re-estimates them), and the manifest's ``blocks`` section."""
    found = [b for b in blocks.find(model)
             if not any(excluded(model.get_layer(n), cfg.exclude) for n in (*b.layers, b.add))]
    most = blocks.most_removable(found)  # a branch nested in another goes with it: they do not count twice
    if cfg.blocks > most:
        have = ", ".join(b.name for b in found) or "none: no Add reads an identity skip and a branch of it"
        nested = "; a branch inside another goes with it" if most < len(found) else ""
        raise UsageError(f"prune: blocks: {cfg.blocks} asked, but '{model.name}' has {most} removable residual "
                         f"branch(es) ({have}{nested})",
                         f"set prune.blocks to at most {most}" if most else "drop prune.blocks")
    x, y, split = sensitivity.validation_sample(ctx.dataset, cfg.sensitivity_samples, ctx.train.seed)
    chosen, scan = blocks.select(model, found, cfg.blocks, x, y, prepare=lambda m: reestimate_bn(
        m, ctx.dataset.x_train, cfg.bn_samples, seed=ctx.train.seed))
    return blocks.remove(model, chosen), {"asked": cfg.blocks, "removable": [b.to_dict() for b in found],
                     "removed": [b.name for b in chosen], "scan": {**scan, "split": split}}


def cut_channels(model, ctx: StageContext, cfg: Any):
    """The channel cut of the stage (no fine-tune yet): the slim model and its manifest notes."""
    g = channels.analyse(copy_model(model))
    found = pickable(g, cfg)
    if not found:
        why = "; ".join(f"{k}: {v}" for k, v in list(g.unsupported.items())[:3]) or "every channel is tied to an input or output"
        raise UsageError(f"prune: no prunable channels in '{model.name}' ({why})",
                         "exclude fewer layers, or use unstructured pruning (drop `structure: channel`)")
    shares, scan = shares_for(g, found, ctx, cfg)
    removed = channels.choose(g, shares, cfg.importance, found)
    slim = channels.slim(g, removed)
    total = sum(len(grp.sets) for grp in found)
    log.info("prune: %d of %d prunable channel sets removed (%d groups); unsupported layers kept: %s",
             len(removed), total, len(found), ", ".join(g.unsupported) or "none")
    if scan is not None:
        ctx.notes["sensitivity"] = scan
    return slim, {"achieved_sparsity": round(len(removed) / total, 4) if total else 0.0,
                  "channels": {"prunable": total, "removed": len(removed)},
                  "groups": {grp.name: round(shares.get(grp.name, 0.0), 4) for grp in found},
                  "layers": channels.channel_counts(g, removed), "kept_unsupported": dict(g.unsupported)}


def shares_for(g: channels.ChannelGraph, found: list[channels.ChannelGroup], ctx: StageContext,
               cfg: Any) -> tuple[dict[str, float], dict | None]:
    """Per group share of channels to remove, and the scan's manifest section (None for uniform)."""
    target = cfg.target_sparsity
    if cfg.allocation == "uniform":
        return {grp.name: target for grp in found}, None
    start = time.perf_counter()
    x, y, split = sensitivity.validation_sample(ctx.dataset, cfg.sensitivity_samples, ctx.train.seed)

    def unit(grp: channels.ChannelGroup) -> sensitivity.Unit:
        return sensitivity.Unit(grp.name, len(grp.sets), lambda s: channels.zero_removed(
            g, channels.choose(g, {grp.name: s}, cfg.importance, [grp])))

    curves = sensitivity.scan(g.model, [unit(grp) for grp in found], x, y,
                              sensitivity.scan_shares(cfg.sensitivity_shares, target))
    chosen = sensitivity.allocate(curves, target)
    section = sensitivity.summary(curves, chosen, target=target, allocation="sensitivity", samples=len(x),
                                  seconds=time.perf_counter() - start, unit="channels")
    section["split"] = split
    return chosen, section


def apply(model, ctx: StageContext, cfg: Any):
    require_functional(model, "prune")
    shallow, depth = drop_blocks(model, ctx, cfg) if cfg.blocks else (model, None)
    if depth is not None and cfg.target_sparsity == 0:  # blocks only
        slim, cut = shallow, {"achieved_sparsity": 0.0, "channels": None}  # channels not analysed
    else:
        if depth is not None:  # the channel scan scores the shallower model: with its own BN statistics
            reestimate_bn(shallow, ctx.dataset.x_train, cfg.bn_samples, seed=ctx.train.seed)
        slim, cut = cut_channels(shallow, ctx, cfg)
    p = cfg.settings(ctx.train)
    # the kept channels' BN statistics were taken with the removed ones feeding the next layer: re-estimated
    # first, the fine-tune starts near the source (shapes, 20 % of channels: val 0.12 → 0.68 before any step)
    reestimate_bn(slim, ctx.dataset.x_train, cfg.bn_samples, seed=ctx.train.seed)
    fit = fine_tune(slim, ctx.dataset, p, stage="prune", progress=ctx.progress,
                    teacher=ctx.teacher)  # self-distilled from the unpruned input model, like every fine-tune
    slim = copy_model(slim)  # without the fine-tune's compile state (its optimizer would be saved with it)
    bn = reestimate_bn(slim, ctx.dataset.x_train, cfg.bn_samples, seed=ctx.train.seed)
    (macs_before, ops_before), (macs_after, ops_after) = tflite_counts(model), tflite_counts(slim)
    ctx.notes["pruning"] = {
        "structure": "channel", "allocation": cfg.allocation, "importance": cfg.importance,
        "target_sparsity": round(cfg.target_sparsity, 4), "achieved_sparsity": cut.pop("achieved_sparsity"),
        "channels": cut.pop("channels"),
        "macs": {"before": macs_before, "after": macs_after,
                 "ratio": round(macs_before / macs_after, 3) if macs_before and macs_after else None},
        "ops": {"before": ops_before, "after": ops_after},
        "params": {"before": int(model.count_params()), "after": int(slim.count_params())},
        **cut, **({"blocks": depth} if depth is not None else {}),
        "epochs": p.epochs, "batch_size": p.batch_size, "lr": p.lr, "fine_tune": fit, "batchnorm": bn,
    }
    return slim
