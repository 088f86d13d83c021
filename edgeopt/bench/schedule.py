"""Which artifacts a run measures, and in which order: A/B pairing by name, the launch rounds (interleaved so drift
hits every artifact alike), and the check that each file is still the one its manifest recorded."""

from __future__ import annotations

import logging
from pathlib import Path

from edgeopt.core.artifact import Artifact
from edgeopt.errors import UsageError

log = logging.getLogger(__name__)


def rounds(units: list[list[int]], launches: int) -> list[list[int]]:
    """The order of every launch: round k measures every artifact once, so drift over the run hits all alike.
    Round 0 keeps the given order (the source model first: its outputs are the reference); later rounds rotate
    the units, and an A/B pair (a unit of two) alternates which twin goes first."""
    out = []
    for k in range(launches):
        shift = k % len(units) if units else 0
        turn = units[shift:] + units[:shift]
        out.append([i for u in turn for i in (u[::-1] if k % 2 else u)])
    return out


def pair_ab(new: list[tuple[Artifact, Path]], old: list[tuple[Artifact, Path]]):
    """A/B items: each new artifact followed by its old twin (same name), the groups, the units measured back to
    back, and the old artifacts without a new twin (not measured: nothing to compare them with)."""
    for side, items in (("new", new), ("old", old)):
        names = [a.name for a, _ in items]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise UsageError(f"artifact name {twice[0]} appears twice among the {side} artifacts",
                             "A/B pairs artifacts by name: pass each artifact once on each side")
    old_by_name = {a.name: (a, p) for a, p in old}
    items, groups, units = [], [], []
    for a, p in new:
        unit = [len(items)]
        items.append((a, p))
        groups.append("new")
        if a.name in old_by_name:
            unit.append(len(items))
            items.append(old_by_name[a.name])
            groups.append("old")
        units.append(unit)
    unpaired = [a.name for a, _ in old if a.name not in {x.name for x, _ in new}]
    if unpaired:
        log.warning("no new twin for %s: not measured", ", ".join(unpaired))
    return items, groups, units, unpaired


def changed_since_manifest(items: list[tuple[Artifact, Path]]) -> dict[int, str]:
    """Item index → why it is not measured: its file's sha256 is not the one its manifest recorded."""
    from edgeopt.core.artifact import sha256_of

    out = {}
    for i, (a, path) in enumerate(items):
        if a.sha256 and path.is_file():
            now = sha256_of(path)
            if now != a.sha256:
                out[i] = (f"artifact changed since compress (manifest sha256 {a.sha256[:12]}…, file {now[:12]}…): "
                          "re-run `edgeopt compress`, or bench the file by itself")
    return out
