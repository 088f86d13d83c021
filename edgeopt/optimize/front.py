"""What a study found, from its trials alone (any worker's): every candidate's record, the Pareto front of
(validation accuracy up, p90 down, size down), the best candidate that meets every budget, and — when none
does — the closest misses. Pure: reads trials, writes nothing."""

from __future__ import annotations

import math
from typing import Any

SCHEMA_VERSION = 1


def records(study) -> list[dict[str, Any]]:
    """One record per finished trial (completed or pruned), in trial order."""
    from optuna.trial import TrialState

    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        rec = dict(t.user_attrs.get("record") or {})
        if not rec:
            continue
        rec.update(trial=t.number, state=t.state.name.lower(), worker=t.user_attrs.get("worker"))
        out.append(rec)
    return out


def scored(rec: dict[str, Any]) -> bool:
    return rec.get("state") == "complete" and rec.get("accuracy") is not None and rec.get("size_bytes") is not None


def _objectives(rec: dict[str, Any]) -> tuple[float, float, float]:
    p90 = rec.get("p90_ms")
    return (-float(rec["accuracy"]), math.inf if p90 is None else float(p90), float(rec["size_bytes"]))


def dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def pareto(recs: list[dict[str, Any]]) -> list[int]:
    """Trial numbers of the non-dominated candidates (every candidate that was scored, in or out of budget);
    duplicates of an earlier trial's choices stand for that trial, not beside it."""
    pool = [r for r in recs if scored(r) and r.get("duplicate_of") is None]
    objs = {r["trial"]: _objectives(r) for r in pool}
    return [n for n, o in objs.items() if not any(dominates(p, o) for m, p in objs.items() if m != n)]


def best(recs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The candidate to ship: fully measured, meets every budget, best validation accuracy (then lower p90, then
    smaller)."""
    ok = [r for r in recs if scored(r) and r.get("measured") == "bench" and r.get("meets_all")
          and r.get("duplicate_of") is None]
    if not ok:
        return None
    return min(ok, key=lambda r: _objectives(r))


def miss_score(rec: dict[str, Any]) -> float:
    return sum(max(0.0, float(c)) for c in rec.get("constraints") or [1.0])


def closest(recs: list[dict[str, Any]], n: int = 3) -> list[dict[str, Any]]:
    """The ``n`` scored candidates nearest to meeting every budget (smallest summed relative miss), each with the
    budgets it misses."""
    pool = [r for r in recs if scored(r) and not r.get("meets_all") and r.get("duplicate_of") is None]
    pool.sort(key=lambda r: (miss_score(r), _objectives(r)))
    return [{"trial": r["trial"], "label": r.get("label"), "miss": round(miss_score(r), 4),
             "misses": r.get("misses", []), "accuracy": r.get("accuracy"), "p90_ms": r.get("p90_ms"),
             "size_bytes": r.get("size_bytes")} for r in pool[:n]]


def summary(study, recs: list[dict[str, Any]]) -> dict[str, int]:
    from collections import Counter

    counts = Counter(t.state.name.lower() for t in study.get_trials(deepcopy=False))
    return {"total": sum(counts.values()), "complete": counts.get("complete", 0), "pruned": counts.get("pruned", 0),
            "failed": counts.get("fail", 0), "running": counts.get("running", 0),
            "fully_measured": sum(1 for r in recs if r.get("measured") == "bench"),
            "screened_only": sum(1 for r in recs if r.get("measured") == "screen"),
            "pruned_after_short_run": sum(1 for r in recs if (r.get("screen") or {}).get("verdict") == "pruned"
                                          and r.get("duplicate_of") is None)}


def front_document(study, header: dict[str, Any]) -> dict[str, Any]:
    """front.json's content (without the best/ section, which the caller adds once best/ is written)."""
    recs = records(study)
    on_front = set(pareto(recs))
    for r in recs:
        r["on_front"] = r["trial"] in on_front
    pick = best(recs)
    return {"schema_version": SCHEMA_VERSION, **header, "trials": summary(study, recs),
            "front": sorted(on_front), "best_trial": pick["trial"] if pick else None,
            "closest": [] if pick else closest(recs), "candidates": recs}
