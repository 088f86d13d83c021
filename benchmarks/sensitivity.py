"""Uniform vs sensitivity-guided per-layer sparsity (prune: {allocation: ...}) on the bundled teachers.

    python benchmarks/sensitivity.py                   # digits and shapes (~6 min on 2 cores)
    python benchmarks/sensitivity.py --models digits

Per teacher and target sparsity: the prune stage alone (magnitude pruning, fine-tune, BN re-estimation), once
with every layer at the target and once with the scan's per-layer sparsities. Scored on the VALIDATION split
only (this benchmark chooses the default; the test split is not read). Columns: val top-1 after pruning, its
drop from the source, the scan's time, wall time. Writes benchmarks/results/sensitivity.{json,md}.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from _common import REPO, md_table, write_results  # noqa: E402

SETTINGS = {  # teacher → (file, fine-tune settings, target sparsities)
    "digits": ("digits_cnn.keras", {"epochs": 4, "batch_size": 32}, [0.8, 0.9]),
    "shapes": ("shapes_mobilenetv2.keras", {"epochs": 3, "batch_size": 64}, [0.8]),
}


def run_one(model, dataset, train: dict, target: float, allocation: str) -> dict:
    from edgeopt.recipe import top1
    from edgeopt.stages import StageContext, prune
    from edgeopt.train.fit import TrainDefaults

    with tempfile.TemporaryDirectory() as tmp:
        ctx = StageContext(dataset=dataset, out_dir=Path(tmp), base_name="m", train=TrainDefaults(**train))
        start = time.perf_counter()
        out = prune.apply(model, ctx, prune.PruneConfig(target_sparsity=target, allocation=allocation))
        wall = time.perf_counter() - start
    scan = ctx.notes.get("sensitivity") or {}
    return {"allocation": allocation, "target": target, "val_top1": round(top1(out, dataset.x_val, dataset.y_val), 4),
            "achieved": ctx.notes["pruning"]["achieved_sparsity"], "scan_s": scan.get("seconds", 0.0),
            "wall_s": round(wall, 1), "chosen": {r["layer"]: r["chosen"] for r in scan.get("layers", [])}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from edgeopt.data.loaders import load_dataset
    from edgeopt.models.load import load_model
    from edgeopt.recipe import top1

    rows, payload = [], {"runs": {}}
    for name in args.models:
        file, train, targets = SETTINGS[name]
        dataset = load_dataset(name)
        model = load_model(REPO / "sample_models" / file)
        source = top1(model, dataset.x_val, dataset.y_val)
        runs = []
        for target in targets:
            for allocation in ("uniform", "sensitivity"):
                r = run_one(model, dataset, train, target, allocation)
                r["drop_points"] = round(100 * (source - r["val_top1"]), 2)
                runs.append(r)
                rows.append([name, f"{target:g}", allocation, f"{source:.4f}", f"{r['val_top1']:.4f}",
                             f"{r['drop_points']:+.2f}", f"{r['achieved']:.3f}", f"{r['scan_s']:.1f}",
                             f"{r['wall_s']:.0f}"])
                print(" | ".join(rows[-1]), flush=True)
        payload["runs"][name] = {"source_val_top1": round(source, 4), "train": train, "runs": runs}
    n = len(rows)
    md = ("# Sensitivity-guided vs uniform per-layer sparsity (prune stage alone)\n\n"
          + md_table(["teacher", "target", "allocation", "source val", "pruned val", "drop (points)", "achieved",
                      "scan s", "wall s"], rows)
          + f"\n{n} settings tried, all scored on the validation split (the test split is not read here).\n")
    write_results("sensitivity", payload, md)
    print(md)


if __name__ == "__main__":
    main()
