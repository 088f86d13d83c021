"""`edgeopt optimize`: from a target's budgets to the best model that fits, with the measured Pareto front.

An Optuna study (space.py: the search space; study.py: storage, sampler, resumption) over recipes; every trial is
a candidate (candidate.py: the stage pipeline, screening, the bench harness, the gate's budgets as constraints);
front.py reads what the study found; search.py runs the loop and builds best/. Imports no TensorFlow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeopt._callable import callable_module


def optimize(model, data, target, budgets, out, trials: int | None = 20, time_budget_s: float | None = None,
             recipe: str | Path | None = None, storage: str | None = None, study: str = "edgeopt",
             worker: bool = False, on_event=None) -> dict[str, Any] | None:
    """Search compressions of ``model`` for ``target`` under ``budgets``; returns front.json's content (None for a
    ``worker``, which only runs trials). Writes candidates/, the study (SQLite in ``out`` unless ``storage``) and,
    when a candidate meets every budget, best/."""
    from edgeopt.optimize import search

    p = search.prepare(model, data, target, budgets, out, recipe=recipe, storage=storage, study=study)
    st = search.open_problem_study(p, worker)
    search.search(p, st, trials, time_budget_s, on_event or (lambda kind, rec: None))
    return None if worker else search.finish(p, st)


callable_module(__name__, optimize)  # edgeopt.optimize(...) stays the function (edgeopt/_callable.py)
