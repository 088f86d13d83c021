"""Hyperband vs random search at an equal epoch budget: the best validation accuracy each finds (and the test
accuracy of that best trial's model), over oracle seeds.

Hyperband gets ``max_epochs`` and ``factor``; its bracket plan fixes the epochs it spends (edgeopt.train.tuner.
hyperband_plan). Random search gets as many full-length (``max_epochs``) trials as fit in the same budget.
Early stopping is off for both, so the budgets are exact.

    python benchmarks/tuning.py [--data digits] [--train-samples 0] [--seeds 0 1 2] [--max-epochs 9]
    python benchmarks/tuning.py --data shapes --train-samples 3000 --seeds 0 1    # → results/tuning_shapes.*
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from benchmarks._common import md_table, write_results  # noqa: E402

log = logging.getLogger("benchmarks.tuning")

SPACE = {"width": {"choice": [0.25, 0.5, 1.0]}, "depth": {"int": [1, 4]}, "kernel": {"choice": [3, 5]},
         "dropout": {"float": [0.0, 0.5], "step": 0.1}, "lr": {"float": [1e-4, 3e-2], "sampling": "log"},
         "batch_size": {"choice": [32, 64, 128]}}


def subset(dataset, n_train: int | None, seed: int = 0):
    """The first ``n_train`` training samples (shuffled, seeded), val/test as they are: faster epochs."""
    import numpy as np

    from edgeopt.data.dataset import Dataset

    if not n_train or n_train >= len(dataset.x_train):
        return dataset
    idx = np.random.default_rng(seed).permutation(len(dataset.x_train))[:n_train]
    return Dataset.from_arrays(f"{dataset.name}[:{n_train}]", dataset.x_train[idx], dataset.y_train[idx],
                               dataset.x_val, dataset.y_val, dataset.x_test, dataset.y_test,
                               num_classes=dataset.num_classes, class_names=dataset.class_names)


def search_once(dataset, strategy: str, seed: int, max_epochs: int, factor: int, max_trials: int, root: Path) -> dict:
    from edgeopt.recipe import Recipe
    from edgeopt.stages.tune import search

    raw = {"model": {"zoo": "small_cnn"}, "strategy": strategy, "max_epochs": max_epochs, "factor": factor,
           "max_trials": max_trials, "patience": None, "retrain": False, "overwrite": True, "seed": seed,
           "cache_dir": str(root / f"{strategy}_{seed}"), "space": SPACE}
    rec = Recipe.from_dict({"train": {"seed": seed}, "stages": [{"tune": raw}]})
    result = search(None, dataset, rec.stages[0][1], rec.train)
    s = result.summary
    return {"strategy": strategy, "seed": seed, "best_val_accuracy": s["best_score"], "trials": s["trials_run"],
            "epochs": s["epochs_spent"], "best_trial_test_accuracy": s["final"]["test_accuracy"],
            "best_hyperparameters": s["best_hyperparameters"], "seconds": s["search_seconds"]}


def main() -> None:
    from edgeopt.data.loaders import load_dataset
    from edgeopt.train.tuner import hyperband_plan

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="digits")
    ap.add_argument("--train-samples", type=int, default=0, help="train on a seeded subset (0: all)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--max-epochs", type=int, default=9)
    ap.add_argument("--factor", type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    dataset = subset(load_dataset(args.data), args.train_samples)
    hb_trials, budget = hyperband_plan(args.max_epochs, args.factor)
    random_trials = budget // args.max_epochs
    start = time.perf_counter()
    runs = []
    with tempfile.TemporaryDirectory(prefix="edgeopt-tuning-bench-") as tmp:
        for seed in args.seeds:
            runs.append(search_once(dataset, "hyperband", seed, args.max_epochs, args.factor, hb_trials, Path(tmp)))
            runs.append(search_once(dataset, "random", seed, args.max_epochs, args.factor, random_trials, Path(tmp)))
            for r in runs[-2:]:
                log.info("seed %d %s: best val %.4f (%d trials, %d epochs, %.0f s)", seed, r["strategy"],
                         r["best_val_accuracy"], r["trials"], r["epochs"], r["seconds"])
    summary, rows = {}, []
    for strategy in ("hyperband", "random"):
        mine = [r for r in runs if r["strategy"] == strategy]
        val = [r["best_val_accuracy"] for r in mine]
        test = [r["best_trial_test_accuracy"] for r in mine]
        summary[strategy] = {"best_val_mean": round(statistics.mean(val), 4),
                             "best_val_std": round(statistics.stdev(val), 4) if len(val) > 1 else 0.0,
                             "test_mean": round(statistics.mean(test), 4),
                             "trials": mine[0]["trials"], "epochs_mean": statistics.mean(r["epochs"] for r in mine)}
        s = summary[strategy]
        rows.append([strategy, s["trials"], f"{s['epochs_mean']:.0f}", f"{s['best_val_mean']:.4f} ± {s['best_val_std']:.4f}",
                     f"{s['test_mean']:.4f}", " / ".join(f"{v:.4f}" for v in val)])
    minutes = (time.perf_counter() - start) / 60
    md = (f"# Tuning: Hyperband vs random search at an equal epoch budget\n\n"
          f"Data {dataset.name} ({len(dataset.x_train)} train, {len(dataset.x_val)} val), small_cnn over "
          f"width/depth/kernel/dropout/lr/batch size; Hyperband max_epochs {args.max_epochs}, factor {args.factor} "
          f"(plan: {hb_trials} trials, {budget} epochs); random: {random_trials} trials × {args.max_epochs} epochs. "
          f"No early stopping. Seeds {args.seeds}. {minutes:.1f} min.\n\n"
          + md_table(["strategy", "trials", "epochs", "best val accuracy (mean ± std)", "its test accuracy",
                      "best val per seed"], rows))
    write_results("tuning" if args.data == "digits" else f"tuning_{args.data}", {"data": dataset.name, "train_samples": len(dataset.x_train), "space": SPACE,
                             "max_epochs": args.max_epochs, "factor": args.factor, "budget_epochs": budget,
                             "summary": summary, "runs": runs, "minutes": round(minutes, 1)}, md)
    print(md)


if __name__ == "__main__":
    main()
