"""Which Optuna sampler should drive `edgeopt optimize`: multi-objective TPE or NSGA-II (both with the budgets as
constraints), against random sampling — measured on real candidate figures.

1. Runs EVERY candidate of a small space once, for real (the digits sample model, target x86-cpu, the stage
   pipeline and the bench harness through edgeopt.optimize), into a table: choice → (val accuracy, p90, size,
   constraints).
2. Replays each sampler on that table (an in-memory study whose objective looks the figures up), ``--seeds``
   times until ``--trials`` distinct candidates were tried (as edgeopt's loop does: a repeat costs no pipeline),
   and counts: trials until the first candidate within budget, whether the best
   candidate within budget was found, and the hypervolume of the feasible front found, as a share of the whole
   table's.

    python benchmarks/optimize_sampler.py [--trials 12 24] [--seeds 40]

Writes benchmarks/results/optimize_sampler.{json,md}. The table is cached in $EDGEOPT_CACHE/optimize_sampler.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, md_table, write_results  # noqa: E402

SPACE = {"student": {"none": True, "zoo": ["small_cnn"], "width": [0.5, 0.75, 1.0], "depth": [2, 3], "epochs": 4},
         "channel": [0.0], "sparsity": [0.0, 0.6], "prune_epochs": 2, "cluster": [0], "runtimes": ["litert"],
         "quant": ["fp32", "fp16", "dynamic", "int8", "int8_fallback"],
         "measure": {"launches": 1, "min_seconds": 0.3, "warmup": 5, "min_runs": 50}}
BUDGETS = {"targets": {"x86-cpu": {"max_size_kb": 20, "max_accuracy_drop": 0.1}}}


def build_table(cache: Path) -> list[dict]:
    """Every candidate of SPACE, run once for real (cached)."""
    import yaml

    from edgeopt.optimize import search

    path = cache / "table-v3.json"
    if path.is_file():
        return json.loads(path.read_text())
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "budgets.yaml").write_text(yaml.safe_dump(BUDGETS))
    (cache / "space.yaml").write_text(yaml.safe_dump({"train": {"epochs": 2}, "max_stage_drop": 0.5,
                                                      "optimize": SPACE}))
    out = Path(tempfile.mkdtemp(prefix="optimize-sampler-", dir=cache))
    p = search.prepare(REPO / "sample_models" / "digits_cnn.keras", "digits", "x86-cpu", cache / "budgets.yaml",
                       out, recipe=cache / "space.yaml")
    study = search.open_problem_study(p, worker=False)
    d = p.dims
    grid = [{"student": s, "sparsity": sp, "cluster": c, "runtime": r, f"quant.{r}": q, "threads": t}
            for s, sp, c, r, t in itertools.product(d.student, d.sparsity, d.cluster, d.runtime, d.threads)
            for q in d.quant[r]]
    for params in grid:
        study.enqueue_trial(params)
    started = time.monotonic()
    search.search(p, study, len(grid), None, lambda kind, rec: print(kind, rec.get("label"), flush=True)
                  if kind != "start" else None)
    table = []
    for rec in search.front_mod.records(study):
        table.append({"params": {k: v for k, v in study.trials[rec["trial"]].params.items()},
                      "label": rec["label"], "state": rec["state"], "accuracy": rec.get("accuracy"),
                      "p90_ms": rec.get("p90_ms"), "size_bytes": rec.get("size_bytes"),
                      "constraints": rec.get("constraints"), "meets_all": rec.get("meets_all"),
                      "pruned": rec.get("pruned")})
    path.write_text(json.dumps({"seconds": round(time.monotonic() - started, 1), "table": table}, indent=1))
    return json.loads(path.read_text())


def replay(table: list[dict], sampler_name: str, seed: int, trials: int) -> dict:
    import optuna

    from edgeopt.optimize import study as st
    from edgeopt.optimize.candidate import CONSTRAINTS

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    by_params = {json.dumps(r["params"], sort_keys=True): r for r in table}
    keys = sorted({k for r in table for k in r["params"]})
    choices = {k: sorted({r["params"][k] for r in table if k in r["params"]}, key=str) for k in keys}
    sampler = optuna.samplers.RandomSampler(seed=seed) if sampler_name == "random" else st.make_sampler(
        sampler_name, seed)
    study = optuna.create_study(directions=list(st.DIRECTIONS), sampler=sampler)

    def objective(trial):
        params = {k: trial.suggest_categorical(k, choices[k]) for k in keys if not k.startswith("quant.")}
        params[f"quant.{params['runtime']}"] = trial.suggest_categorical(f"quant.{params['runtime']}",
                                                                          choices[f"quant.{params['runtime']}"])
        r = by_params[json.dumps(params, sort_keys=True)]
        if r["state"] == "pruned":
            raise optuna.TrialPruned()
        for key, value in zip(CONSTRAINTS, r["constraints"], strict=True):
            trial.set_constraint(key, value)
        return r["accuracy"], float("inf") if r["p90_ms"] is None else r["p90_ms"], r["size_bytes"]

    def enough(study, _trial) -> None:  # as edgeopt's loop: ``trials`` distinct candidates, repeats are free
        seen = {json.dumps(t.params, sort_keys=True) for t in study.trials}
        if len(seen) >= trials or len(study.trials) >= 3 * trials:
            study.stop()

    study.optimize(objective, n_trials=3 * trials, callbacks=[enough])
    found, seen = [], []
    first = None
    for t in study.trials:
        key = json.dumps(t.params, sort_keys=True)
        if key in seen:
            continue
        seen.append(key)
        r = by_params[key]
        if r["state"] == "complete" and r["meets_all"]:
            found.append(r)
            first = len(seen) if first is None else first
    return {"first_feasible": first, "found": found, "trials": len(study.trials)}


def hypervolume(rows: list[dict], ref: tuple[float, float, float]) -> float:
    """Dominated volume of (−accuracy, p90, size) points below ``ref`` (Optuna's own hypervolume)."""
    import numpy as np
    from optuna._hypervolume import compute_hypervolume

    if not rows:
        return 0.0
    pts = np.array([[-r["accuracy"], r["p90_ms"], r["size_bytes"]] for r in rows])
    return float(compute_hypervolume(pts, np.array(ref)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, nargs="+", default=[12, 24])
    ap.add_argument("--seeds", type=int, default=40)
    args = ap.parse_args()
    from edgeopt import cache

    data = build_table(cache.root() / "optimize_sampler")
    table = data["table"]
    feasible = [r for r in table if r["state"] == "complete" and r["meets_all"]]
    scored = [r for r in table if r["state"] == "complete"]
    ref = (0.0, max(r["p90_ms"] for r in scored if r["p90_ms"] is not None) * 1.1,  # screened-only: no p90
           max(r["size_bytes"] for r in scored) * 1.1)
    total_hv = hypervolume(feasible, ref)
    best_acc = max((r["accuracy"] for r in feasible), default=None)
    rows, summary = [], {}
    for n in args.trials:
        for name in ("tpe", "nsga2", "random"):
            runs = [replay(table, name, seed, n) for seed in range(args.seeds)]
            firsts = [r["first_feasible"] for r in runs if r["first_feasible"] is not None]
            hv = [hypervolume(r["found"], ref) / total_hv if total_hv else 0.0 for r in runs]
            got_best = sum(1 for r in runs if best_acc is not None and any(f["accuracy"] == best_acc
                                                                           for f in r["found"]))
            s = summary.setdefault(str(n), {})[name] = {
                "found_feasible": len(firsts), "median_first_feasible": sorted(firsts)[len(firsts) // 2]
                if firsts else None, "found_best": got_best, "mean_hv_share": round(sum(hv) / len(hv), 4),
                "mean_trials": round(sum(r["trials"] for r in runs) / len(runs), 2)}
            rows.append([n, name, f"{s['found_feasible']}/{args.seeds}", s["median_first_feasible"],
                         f"{s['found_best']}/{args.seeds}", f"{s['mean_hv_share']:.3f}", s["mean_trials"]])
    md = (f"# Sampler for `edgeopt optimize`: TPE vs NSGA-II vs random\n\n"
          f"Table: every candidate of a {len(table)}-candidate space on the digits sample model, run once for real "
          f"(x86-cpu, {data['seconds']:.0f} s; {len(feasible)} within budget {BUDGETS['targets']['x86-cpu']}, "
          f"{sum(1 for r in table if r['state'] == 'pruned')} pruned: weights over the size budget, or stopped by the "
          f"accuracy guard). Each sampler replayed on it {args.seeds} times (seeds 0..{args.seeds - 1}) until N "
          f"distinct candidates were tried (repeats are free, at most 3N trials), as edgeopt's loop does.\n\n"
          + md_table(["N distinct", "sampler", "found a feasible one", "median distinct tries to the first",
                      "found the best feasible", "feasible hypervolume share (mean)", "trials incl. repeats (mean)"],
                     rows))
    print(md)
    write_results("optimize_sampler", {"space": SPACE, "budgets": BUDGETS, "distinct_trials": args.trials,
                                       "seeds": args.seeds, "summary": summary, "table": table}, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
