"""Per-layer sensitivity: how much each layer alone can lose, and per-layer shares that reach an overall target.

``scan`` prunes one unit at a time (a layer's smallest-magnitude weights, or a channel group's least important
channels — the caller says how, through ``Unit.apply``), without training, at a few shares, and measures the
damage on a capped validation sample: the top-1 drop and the cross-entropy increase against the unpruned model.
``allocate`` then picks a share per unit that reaches the requested overall share (weighted by each unit's
parameter count) with the least summed damage, on the lower convex hull of each unit's scanned curve
(interpolated linearly between the scanned shares; greedy over the hull is optimal for a fractional budget).

Damage for the allocation is the cross-entropy increase: on a 1000-row sample top-1 moves in steps of 0.1 point
and reads 0 for most single-layer cuts, while the loss already says which layer hurts more.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_SHARES = (0.5, 0.75, 0.9)
DEFAULT_SAMPLES = 1000
STEP = 0.01  # the allocation's grid


@dataclass(frozen=True)
class Unit:
    """One thing the scan prunes alone: ``apply(share)`` prunes it in the model in place and returns the
    callable that puts the weights back."""

    name: str
    params: int  # what it weighs in the overall share (kernel elements, or prunable channels)
    apply: Callable[[float], Callable[[], None]]


@dataclass(frozen=True)
class Curve:
    name: str
    params: int
    shares: tuple[float, ...]
    top1_drop: tuple[float, ...]
    loss_increase: tuple[float, ...]

    def to_dict(self, chosen: float | None = None) -> dict:
        """One flat row (a table line wherever it is shown): the damage at each scanned share, then the choice."""
        d: dict = {"layer": self.name, "params": self.params}
        d.update({f"top1_drop@{s:g}": round(v, 4) for s, v in zip(self.shares, self.top1_drop, strict=True)})
        d.update({f"loss_increase@{s:g}": round(v, 4) for s, v in zip(self.shares, self.loss_increase, strict=True)})
        if chosen is not None:
            d["chosen"] = round(chosen, 4)
        return d


def scan_shares(shares: Sequence[float], target: float) -> tuple[float, ...]:
    """The shares to scan: the configured ones, plus a share halfway from the target to 1 when none lies that
    high — the allocation never goes past the highest scanned share, and a target at the top would leave every
    layer at the target, as uniform does."""
    out = sorted({round(float(s), 4) for s in shares if 0 < s < 1})
    room = round(target + (1 - target) / 2, 4)
    if not out or out[-1] < room:
        out.append(room)
    return tuple(out)


def sample(x: np.ndarray, y: np.ndarray, n: int = DEFAULT_SAMPLES, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """At most ``n`` rows of (x, y), picked with ``seed`` (the scan's cost grows with every row)."""
    if len(x) <= n:
        return x, y
    pick = np.sort(np.random.default_rng(seed).choice(len(x), size=n, replace=False))
    return x[pick], y[pick]


def score(model, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(top-1, mean cross-entropy) of a softmax-or-logits classifier."""
    from edgeopt.train.distiller import is_probabilities

    out = np.concatenate([np.asarray(model(x[i : i + 512], training=False), dtype=np.float64)
                          for i in range(0, len(x), 512)])
    if not is_probabilities(out):
        z = out - out.max(-1, keepdims=True)
        out = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    ce = float(-np.mean(np.log(np.clip(out[np.arange(len(y)), y], 1e-12, 1.0))))
    return float(np.mean(out.argmax(-1) == y)), ce


def scan(model, units: Sequence[Unit], x: np.ndarray, y: np.ndarray, shares: Sequence[float]) -> list[Curve]:
    """Each unit pruned alone at each share (weights restored after each), damage against the unpruned model."""
    start = time.perf_counter()
    base_top1, base_ce = score(model, x, y)
    curves = []
    for unit in units:
        drops, losses = [], []
        for s in shares:
            restore = unit.apply(s)
            try:
                top1, ce = score(model, x, y)
            finally:
                restore()
            drops.append(base_top1 - top1)
            losses.append(ce - base_ce)
        curves.append(Curve(unit.name, unit.params, tuple(shares), tuple(drops), tuple(losses)))
    log.info("sensitivity: %d units × %d shares on %d samples in %.1f s", len(units), len(shares), len(x),
             time.perf_counter() - start)
    return curves


def _hull(shares: Sequence[float], damage: Sequence[float]) -> list[tuple[float, float]]:
    """Lower convex hull of (0, 0) and the scanned points, damage made non-negative and non-decreasing."""
    pts = [(0.0, 0.0)]
    worst = 0.0
    for s, d in zip(shares, damage, strict=True):
        worst = max(worst, float(d), 0.0)
        pts.append((float(s), worst))
    hull: list[tuple[float, float]] = []
    for p in pts:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (y2 - y1) * (p[0] - x1) >= (p[1] - y1) * (x2 - x1):  # hull[-1] on or above the chord: drop it
                hull.pop()
            else:
                break
        hull.append(p)
    return hull


def _at(hull: list[tuple[float, float]], s: float) -> float:
    xs, ys = zip(*hull, strict=True)
    return float(np.interp(s, xs, ys))


def allocate(curves: Sequence[Curve], target: float, damage: str = "loss_increase") -> dict[str, float]:
    """Share per unit (name → share) whose parameter-weighted mean is ``target``, with the least summed damage
    on each unit's convex curve; no unit goes past the highest share scanned for it."""
    if not curves:
        return {}
    hulls = {c.name: _hull(c.shares, getattr(c, damage)) for c in curves}
    caps = {c.name: max(c.shares) for c in curves}
    weight = {c.name: max(int(c.params), 1) for c in curves}
    total = sum(weight.values())
    budget = target * total
    if sum(caps[n] * weight[n] for n in weight) < budget - 1e-9:
        raise ValueError(f"the scanned shares (at most {max(caps.values())}) cannot reach {target}")
    share = dict.fromkeys(weight, 0.0)
    spent = 0.0
    while spent < budget - 1e-9:
        best, best_cost = None, None
        for n in weight:
            if share[n] >= caps[n] - 1e-12:
                continue
            step = min(STEP, caps[n] - share[n])
            cost = (_at(hulls[n], share[n] + step) - _at(hulls[n], share[n])) / (step * weight[n])
            key = (cost, share[n], -weight[n])  # ties: the least pruned first, then the larger
            if best_cost is None or key < best_cost:
                best, best_cost = n, key
        if best is None:
            break
        step = min(STEP, caps[best] - share[best], (budget - spent) / weight[best])
        share[best] += step
        spent += step * weight[best]
    return {n: round(v, 6) for n, v in share.items()}


def overall(shares: dict[str, float], params: dict[str, int]) -> float:
    total = sum(params[n] for n in shares)
    return sum(shares[n] * params[n] for n in shares) / total if total else 0.0


def magnitude_units(layers: Sequence, taps: frozenset[str] | set[str] = frozenset()) -> list[Unit]:
    """One unit per layer: each of its kernels' smallest-magnitude weights set to zero (what tfmot's masks do;
    kernels found by variable name, as train.layers.kernel_sparsity counts them); the layers named in ``taps`` lose
    whole kernel taps instead (train/taps.py, what prune's structure 'tap' masks do)."""
    from edgeopt.train.taps import tap_mask

    units = []
    for layer in layers:
        kernels = _kernels(layer)
        if not kernels:
            continue

        def apply(s: float, kernels=kernels, by_tap=layer.name in taps):
            saved = [k.numpy() for k in kernels]
            for kernel, value in zip(kernels, saved, strict=True):
                if by_tap and value.ndim >= 3:
                    kernel.assign(value * tap_mask(value, s))
                    continue
                flat = np.abs(value).ravel()
                n = int(round(s * flat.size))
                pruned = value.copy().ravel()
                if n:
                    pruned[np.argpartition(flat, n - 1)[:n]] = 0.0
                kernel.assign(pruned.reshape(value.shape))
            return lambda: [k.assign(v) for k, v in zip(kernels, saved, strict=True)]

        units.append(Unit(layer.name, sum(int(np.prod(k.shape)) for k in kernels), apply))
    return units


def validation_sample(dataset, n: int = DEFAULT_SAMPLES, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """(x, y, split) the scan measures on: the validation split, else training rows (never the test split)."""
    if len(dataset.x_val):
        return (*sample(dataset.x_val, dataset.y_val, n, seed), "val")
    log.warning("data '%s' has no validation split: the sensitivity scan measures on training rows", dataset.name)
    return (*sample(dataset.x_train, dataset.y_train, n, seed), "train")


def weights(model, chosen: Sequence, dataset, target: float, shares: Sequence[float],
            samples: int = DEFAULT_SAMPLES, seed: int = 0, taps: frozenset[str] | set[str] = frozenset(),
            ) -> tuple[dict[str, float], dict]:
    """Per-layer sparsities (layer name → sparsity) for magnitude pruning ``chosen`` to ``target`` overall,
    from a scan of a copy of ``model``; and the manifest section that records the scan."""
    from edgeopt.train.layers import copy_model

    start = time.perf_counter()
    x, y, split = validation_sample(dataset, samples, seed)
    copy = copy_model(model)
    layers = [copy.get_layer(layer.name) for layer in chosen]
    curves = scan(copy, magnitude_units(layers, taps), x, y, scan_shares(shares, target))
    # a layer without a kernel the scan knows (none so far among tfmot's) is pruned to the target
    chosen_shares = {layer.name: target for layer in chosen} | allocate(curves, target)
    section = summary(curves, chosen_shares, target=target, allocation="sensitivity", samples=len(x),
                      seconds=time.perf_counter() - start)
    section["split"] = split
    log.info("sensitivity: per-layer sparsities %s", {k: round(v, 3) for k, v in chosen_shares.items()})
    return chosen_shares, section


def _kernels(layer) -> list:
    from edgeopt.train.layers import KERNELS

    return [w for w in layer.weights
            if w.name.split("/")[-1].split(":")[0] in KERNELS and w.dtype.is_floating and len(w.shape) >= 2]


def summary(curves: Sequence[Curve], chosen: dict[str, float], *, target: float, allocation: str, samples: int,
            seconds: float, unit: str = "weights") -> dict:
    """The manifest's ``sensitivity`` section."""
    return {"allocation": allocation, "target": round(target, 4), "unit": unit, "samples": int(samples),
            "damage": "loss_increase", "seconds": round(seconds, 2),
            "shares": list(curves[0].shares) if curves else [],
            "achieved": round(overall({c.name: chosen.get(c.name, 0.0) for c in curves},
                                      {c.name: c.params for c in curves}), 4) if chosen else None,
            "layers": [c.to_dict(chosen.get(c.name)) for c in curves]}
