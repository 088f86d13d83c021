"""The search loop of `edgeopt optimize`: check the inputs (before any work), open the study, run trials (each a
candidate, see candidate.py) until ``trials`` are done in the whole study or the time budget is spent, then —
unless this process is a worker — pick the best candidate and build ``best/`` with ``edgeopt compress``'s own
code from the real data set (its test split is read here, once)."""

from __future__ import annotations

import hashlib
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeopt.data.arrays import selection_view
from edgeopt.errors import UsageError
from edgeopt.optimize import candidate as cand
from edgeopt.optimize import front as front_mod
from edgeopt.optimize import space as space_mod
from edgeopt.optimize import study as study_mod
from edgeopt.out_folder import check_out_path

log = logging.getLogger(__name__)

MARKER = "optimize.json"  # says a folder is an optimize output: its best/, candidates/ and reports are ours


@dataclass
class Problem:
    model_path: Path
    dataset: Any
    view: Any
    measurer: cand.Measurer
    budgets: Any
    space: space_mod.Space
    dims: space_mod.Dimensions
    train: Any
    max_stage_drop: float
    out: Path
    url: str
    study_name: str
    source_params: int = 0
    fingerprint: dict[str, Any] = field(default_factory=dict)


def check_out_dir(out: Path, model_path: Path) -> Path:
    """DIR is new, empty or an earlier optimize output (it holds optimize.json); never the current folder, the
    model or a folder above them."""
    pick = "pick a new folder for --out (e.g. out/optimize)"
    out = check_out_path(out, model_path, pick)
    if out.exists() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise UsageError(f"--out {out} is not empty and is not an earlier `edgeopt optimize` output",
                         f"{pick}, or empty that folder yourself")
    return out


def split_recipe(path: Path | None):
    """(base Recipe: train defaults and max_stage_drop, Space from its ``optimize:`` section)."""
    from edgeopt.core.safe_yaml import load_yaml
    from edgeopt.recipe import Recipe

    if path is None:
        return Recipe(), space_mod.Space()
    if not Path(path).is_file():
        raise UsageError(f"recipe {path} does not exist", "pass a recipe .yaml with an optimize: section, or omit it")
    raw = load_yaml(path, "recipe", "pass a recipe .yaml (see README.md) or omit --recipe") or {}
    if not isinstance(raw, dict):
        raise UsageError(f"recipe {path} is not a mapping", "a recipe has `train:`, `max_stage_drop:`, `optimize:`")
    raw = dict(raw)
    space = space_mod.Space.from_dict(raw.pop("optimize", None), source=f"{path}: optimize")
    if raw.get("stages"):
        raise UsageError(f"recipe {path}: optimize builds the stages itself",
                         "remove `stages:`; give the search space in `optimize:` (train: and max_stage_drop: stay)")
    return Recipe.from_dict(raw, source=str(path)), space


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def prepare(model, data, target, budgets, out, recipe=None, storage=None, study: str = "edgeopt") -> Problem:
    """Every input checked and loaded, before any trial: bad ones raise UsageError (exit 2)."""
    from edgeopt.bench.targets import load_target
    from edgeopt.compress import check_compatible
    from edgeopt.data.loaders import load_dataset
    from edgeopt.models.load import check_model_path, load_model
    from edgeopt.verdict.budgets import load_budgets

    model_path = check_model_path(model)
    out = check_out_dir(Path(out), model_path)
    tgt = load_target(target) if isinstance(target, str | Path) else target
    bud = load_budgets(budgets) if isinstance(budgets, str | Path) else budgets
    if not any(name in bud.targets for name in (tgt.name, "*")):
        raise UsageError(f"the budgets name no limits for target {tgt.name} (they have: "
                         f"{', '.join(bud.targets) or 'none'})", f"add a `targets: {{{tgt.name}: {{...}}}}` section")
    base, space = split_recipe(recipe)
    url = study_mod.storage_url(storage, out)
    dataset = data if hasattr(data, "x_test") else load_dataset(data)
    view = selection_view(dataset, space.holdout, space.seed)
    loaded = load_model(model_path, sample=dataset.x_val[:64])
    check_compatible(loaded, dataset)
    check_classifier(loaded, dataset)
    dims = space_mod.resolve(space, tgt, image_input=len(dataset.input_shape) == 3)
    measurer = cand.Measurer.for_target(tgt)
    fingerprint = {"model": _sha256(model_path), "data": dataset.name, "target": tgt.name,
                   "budgets": bud.to_dict(), "space": space.to_dict(), "train": base.train.model_dump(mode="json"),
                   "max_stage_drop": base.max_stage_drop}
    return Problem(model_path, dataset, view, measurer, bud, space, dims, base.train, base.max_stage_drop, out, url,
                   study, int(loaded.count_params()), fingerprint)


def check_classifier(model, dataset) -> None:
    """optimize trains students and prunes against class labels and ranks candidates by top-1: a model and data of
    another task (regression, multi-label, no labels) are refused before any trial, with what to do instead."""
    from edgeopt.data import tasks
    from edgeopt.stages.convert import predict

    task, why = tasks.infer(dataset, predict(model, dataset.x_test[:64]))  # (as compress: test rows, their labels)
    if task != "classification":
        raise UsageError(f"edgeopt optimize searches classifiers (candidates are trained on class labels and ranked by "
                         f"top-1), but model and data '{dataset.name}' are a {task} task"
                         f"{f' ({why})' if why else ''}",
                         "for other tasks: edgeopt compress with a convert-only recipe, then edgeopt bench and gate")


def open_problem_study(p: Problem, worker: bool):
    from edgeopt.atomic import write_json

    p.out.mkdir(parents=True, exist_ok=True)  # the default SQLite file lives there
    study = study_mod.open_study(p.url, p.study_name, p.space.sampler, p.space.seed)
    study_mod.check_same_problem(study, p.fingerprint)
    if not (p.out / MARKER).is_file():
        write_json(p.out / MARKER, {"study": p.study_name, "storage": study_mod.shown_url(p.url),
                                    "model": str(p.model_path), "target": p.measurer.target.name})
    return study


def _duplicate(study, params: dict[str, Any]):
    """An earlier completed or pruned trial with the same choices (the pipeline is seeded: the same figures)."""
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        if t.params == params and (t.user_attrs.get("record") or {}).get("duplicate_of") is None:
            return t
    return None


def objective(p: Problem, study, on_event: Callable[[str, dict], None]):
    wid = study_mod.worker_id()

    def run_trial(trial) -> tuple[float, float, float]:
        # (the trial's "worker" attribute is written by the sampler as Optuna creates the trial: study.make_sampler)
        choice = space_mod.suggest(trial, p.dims)
        recipe = space_mod.to_recipe(choice, p.space, p.train, p.max_stage_drop)
        rec: dict[str, Any] = {"choice": choice, "label": space_mod.describe(choice), "recipe": recipe.to_dict(),
                               "trial": trial.number, "worker": wid}
        on_event("start", rec)
        dup = _duplicate(study, trial.params)
        if dup is not None:  # a categorical space repeats itself: its figures are already in the study
            rec.update({k: v for k, v in dup.user_attrs["record"].items() if k not in rec}, duplicate_of=dup.number)
            if "pruned" in rec:
                raise _pruned(trial, rec, rec["pruned"], on_event)
            return _finish(trial, rec, on_event)
        limit_kb = cand.size_limit_kb(p.budgets, p.measurer.target.name)
        hopeless = limit_kb is not None and cand.hopeless_size(  # (no size limit: no student built to count)
            cand.weights_of(space_mod.parse_student(choice["student"], p.space.student.options), p.source_params, p.dataset,
                            choice.get("channel", 0.0)), choice["quant"], limit_kb)
        if hopeless:  # pruned before any training: its size is fixed by its architecture
            raise _pruned(trial, rec, hopeless, on_event)
        folder = p.out / "candidates" / f"trial-{trial.number:04d}"
        started = time.monotonic()
        try:
            if choice["student"] != space_mod.NO_STUDENT and p.space.student.screened:
                _screen(p, recipe, folder.with_name(folder.name + "-screen"), rec, started, trial, on_event)
            manifest = cand.pipeline(p.model_path, p.view, recipe, folder)
        except cand.Stopped as e:
            rec.update(pruned=str(e), cached_stages=e.cached, seconds=round(time.monotonic() - started, 1))
            raise _pruned(trial, rec, str(e), on_event) from None
        artifact, path = cand.final_artifact(manifest, folder)
        source = cand.source_measurement(manifest, p.measurer.target.name)
        threads = choice["threads"]
        m = cand.screen(artifact, path, p.measurer, threads)
        judged = cand.judge(m, source, p.budgets)
        measured = "screen"
        if cand.promising(judged, p.space.screen_margin):
            m = cand.measure(path, p.view, p.measurer, threads, p.space.measure.overrides(),
                             estimate=m.latency_ms if m.estimated else None)
            judged = cand.judge(m, source, p.budgets)
            measured = "bench"
        rec.update(**cand.figures(m), **judged, measured=measured, source_accuracy=source.accuracy,
                   cached_stages=cand.cached_stages(manifest),
                   artifact=str(path.relative_to(p.out)), seconds=round(time.monotonic() - started, 1))
        if m.status != "ok" or m.accuracy is None:
            raise _pruned(trial, rec, f"measurement {m.status}: {m.error or 'no accuracy'}", on_event)
        return _finish(trial, rec, on_event)

    return run_trial


def _screen(p: Problem, recipe, folder: Path, rec: dict[str, Any], started: float, trial, on_event) -> None:
    """The cheap fidelity of a student candidate: its short distillation run; the trial is pruned (the reason in
    its record) when that run's accuracy cannot grow into the budgets' (cand.hopeless_accuracy)."""
    short = cand.screen_student(p.model_path, p.view, recipe, folder)
    needed = cand.needed_accuracy(p.budgets, p.measurer.target.name, short["source_accuracy"])
    why = cand.hopeless_accuracy(short, p.space.student.screen_gain, needed, p.space.student.epochs)
    rec["screen"] = {**short, "needed_accuracy": needed, "gain": p.space.student.screen_gain,
                     "verdict": "pruned" if why else "continued"}
    if why:
        rec.update(pruned=why, cached_stages=["distill"] if short["cached"] else [],
                   seconds=round(time.monotonic() - started, 1))
        raise _pruned(trial, rec, why, on_event)


def _pruned(trial, rec: dict[str, Any], why: str, on_event):
    """The TrialPruned to raise for a candidate dropped for ``why``, its record stored and shown first."""
    import optuna

    rec["pruned"] = why
    trial.set_user_attr("record", rec)
    on_event("pruned", rec)
    return optuna.TrialPruned(why)


def _finish(trial, rec: dict[str, Any], on_event) -> tuple[float, float, float]:
    trial.set_user_attr("record", rec)
    for key, value in zip(cand.CONSTRAINTS, rec.get("constraints") or [], strict=True):
        trial.set_constraint(key, value)
    on_event("done", rec)
    p90 = rec.get("p90_ms")
    return float(rec["accuracy"]), math.inf if p90 is None else float(p90), float(rec["size_bytes"])


def distinct(study) -> int:
    """Completed or pruned trials that ran their own pipeline (a repeat of earlier choices does not count)."""
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=tuple(getattr(TrialState, s) for s in study_mod.COUNTED))
    return sum(1 for t in done if (t.user_attrs.get("record") or {}).get("duplicate_of") is None)


class StopWhenDone:
    """Stop after ``target`` distinct candidates in the whole study, when the space has no new one left, or when
    the sampler keeps repeating itself (3 × target trials)."""

    def __init__(self, target: int | None, space_size: int) -> None:
        self.target, self.space_size = target, space_size

    def __call__(self, study, trial) -> None:
        n = distinct(study)
        if n >= self.space_size or (self.target is not None and (n >= self.target
                                                                 or len(study.get_trials(deepcopy=False)) >= 3 * self.target)):
            study.stop()


def search(p: Problem, study, trials: int | None, time_budget_s: float | None,
           on_event: Callable[[str, dict], None] = lambda kind, rec: None) -> int:
    """Run trials until the study holds ``trials`` distinct completed/pruned candidates (all workers together),
    the space is exhausted or the time budget is spent; returns how many trials this process ran."""
    study_mod.fail_dead_local_trials(study)
    target = trials if trials is not None else (None if time_budget_s else 20)
    stop = StopWhenDone(target, p.dims.size())
    before = len(study.get_trials(deepcopy=False))
    if distinct(study) >= min(target or stop.space_size, stop.space_size):
        return 0
    study.optimize(objective(p, study, on_event), timeout=time_budget_s, callbacks=[stop], gc_after_trial=True)
    return len(study.get_trials(deepcopy=False)) - before


def header(p: Problem) -> dict[str, Any]:
    m = p.measurer
    return {"study": p.study_name, "storage": study_mod.shown_url(p.url), "model": str(p.model_path),
            "data": p.dataset.name, "target": m.target.name, "latency": m.mode, "latency_why": m.why,
            "scored_on": "validation split (the test split scores only the best candidate)",
            "stages_validated_on": f"{p.space.holdout:g} of the validation split (early stopping, scans, int8 "
            "fallbacks, the guard); the rest ranks the candidates" if p.space.holdout > 0 else
            "validation split (optimize.holdout 0: it also ranks the candidates)",
            "sampler": p.space.sampler, "budgets": p.budgets.to_dict(), "space": p.space.to_dict(),
            "dimensions": p.dims.model_dump(), "space_size": p.dims.size()}


def build_best(p: Problem, rec: dict[str, Any]) -> dict[str, Any]:
    """best/: the winner's recipe rerun by compress on the rows its candidate was built on (train, and the
    validation rows its stages chose on: the same stages, from the stage cache, so the same artifact),
    best/recipe.yaml, and the artifact measured once on the test split."""
    import yaml

    from edgeopt.atomic import write_text
    from edgeopt.compress import compress
    from edgeopt.recipe import Recipe

    recipe = Recipe.from_dict(rec["recipe"], source=f"trial {rec['trial']}'s recipe")
    final = selection_view(p.dataset, p.space.holdout, p.space.seed, final=True)
    best_dir = p.out / "best"
    old = None
    if best_dir.exists():  # ours (check_out_dir): kept aside until the new one is complete
        old = best_dir.with_name(f".best.old-{time.time_ns()}")
        best_dir.rename(old)
    try:
        manifest = compress(p.model_path, final, best_dir, recipe=recipe)
        write_text(best_dir / "recipe.yaml", yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    except BaseException:
        shutil.rmtree(best_dir, ignore_errors=True)
        if old is not None:
            old.rename(best_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    artifact, path = cand.final_artifact(manifest, best_dir)
    m = cand.measure(path, final, p.measurer, rec["choice"]["threads"], p.space.measure.overrides())
    test = {**cand.figures(m), "accuracy_drop": None}
    src = (manifest.extra.get("guard") or {}).get("reference", {}).get("test")
    if src is not None and m.accuracy is not None:
        test["source_accuracy"], test["accuracy_drop"] = src, round(src - m.accuracy, 6)
    return {"trial": rec["trial"], "label": rec.get("label"), "folder": "best", "artifact": str(path.relative_to(p.out)),
            "recipe": "best/recipe.yaml", "validation": {k: rec.get(k) for k in ("accuracy", "p90_ms", "size_bytes")},
            "test": test, "size_reproduced": artifact.size_bytes == rec.get("size_bytes")}


def finish(p: Problem, study) -> dict[str, Any]:
    """front.json's content, with best/ built when a candidate meets every budget."""
    doc = front_mod.front_document(study, header(p))
    pick = next((r for r in doc["candidates"] if r["trial"] == doc["best_trial"]), None)
    if pick is None and (p.out / "best").is_dir():
        shutil.rmtree(p.out / "best")  # an earlier run's (the folder is ours): no candidate meets the budgets now
    doc["best"] = build_best(p, pick) if pick is not None else None
    return doc
