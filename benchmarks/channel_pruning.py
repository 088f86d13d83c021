"""Channel pruning + int8: fewer MACs, lower latency? On the bundled teachers, through `edgeopt compress`.

    python benchmarks/channel_pruning.py                  # shapes MobileNetV2 and digits (~15 min on 2 cores)
    python benchmarks/channel_pruning.py --models shapes --shares 0.3 0.5

Per teacher: the source converted to fp32 and int8 TFLite, and for each setting tried (a share of the prunable
channels, sensitivity-guided per-layer shares, L1 importance, a fine-tune) the recipe
``prune: {structure: channel, ...}`` + ``convert: {tflite: [fp32, int8]}``. The setting is chosen on the
VALIDATION split (the largest share whose pruned model stays within 1 point of the source on val); the test
split is read once per final artifact (convert's parity). All TFLite files are timed in one interleaved run on
x86-cpu with 1 thread (edgeopt's bench harness), and estimated on the Raspberry Pi 4 target. Goal (issue 13,
shapes): ≥ 1.5× lower p50 (fp32 and int8) at ≤ 1.0 point drop. Writes benchmarks/results/channel_pruning.*.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from _common import REPO, md_table, write_results  # noqa: E402

TEACHERS = {  # file, fine-tune settings, shares tried
    "shapes": ("shapes_mobilenetv2.keras", {"epochs": 15, "batch_size": 64}, [0.3, 0.45]),
    "digits": ("digits_cnn.keras", {"epochs": 12, "batch_size": 32}, [0.5, 0.75]),
}
CONVERT = {"convert": {"tflite": ["fp32", "int8"], "onnx": []}}
GOAL = (1.5, 1.0)  # p50 speed-up ≥, drop ≤ points


def compress_one(model_path: Path, data, out: Path, train: dict, share: float | None) -> tuple[dict, float]:
    from edgeopt.compress import compress
    from edgeopt.recipe import Recipe

    stages = [CONVERT] if share is None else [
        {"prune": {"structure": "channel", "target_sparsity": share}}, CONVERT]
    start = time.perf_counter()
    manifest = compress(model_path, data, out, Recipe.from_dict({"train": train, "max_stage_drop": 1.0,
                                                                 "stages": stages}))
    return manifest, time.perf_counter() - start


def run_teacher(name: str, shares: list[float] | None, work: Path, launches: int) -> dict:
    from edgeopt.bench.estimate import estimate_artifact
    from edgeopt.bench.orchestrate import benchmark
    from edgeopt.bench.targets import load_target
    from edgeopt.core import graph
    from edgeopt.data.loaders import load_dataset

    file, train, default_shares = TEACHERS[name]
    data = load_dataset(name)
    model_path = REPO / "sample_models" / file
    settings = {"source": None, **{f"channel {s:g}": s for s in (shares or default_shares)}}
    runs = {}
    for label, share in settings.items():
        out = work / f"{name}_{len(runs)}"
        manifest, wall = compress_one(model_path, data, out, train, share)
        guard = manifest.extra["guard"]
        val = guard["stages"][-1]["accuracy"] if guard["stages"] else guard["source_accuracy"]
        arts = {a.precision: a for a in manifest.artifacts if a.format == "tflite"}
        pruning = manifest.extra.get("pruning") or {}
        runs[label] = {"share": share, "wall_s": round(wall, 1), "val_top1": val,
                       "val_drop_points": round(100 * (guard["source_accuracy"] - val), 2),
                       "achieved": pruning.get("achieved_sparsity"), "params": pruning.get("params"),
                       "files": {p: str(out / a.path) for p, a in arts.items()},
                       "test_top1": {p: a.info["parity"]["accuracy"] for p, a in arts.items()},
                       "macs": {p: graph.read_tflite((out / a.path).read_bytes()).macs() for p, a in arts.items()}}
        print(f"{name} {label}: val {val:.4f} ({runs[label]['val_drop_points']:+.2f} pt), wall {wall:.0f} s",
              flush=True)
    bench_dir = work / f"{name}_bench"  # one name per file: the report knows artifacts by file name
    bench_dir.mkdir()
    for i, r in enumerate(runs.values()):
        for prec, f in list(r["files"].items()):
            r["files"][prec] = str(shutil.copy(f, bench_dir / f"{name}_{i}_{prec}.tflite"))
    paths = [p for r in runs.values() for p in r["files"].values()]
    rep = benchmark(paths, [load_target("x86-cpu")], data, None, threads=1, launches=launches, min_seconds=1.0,
                    min_runs=100, warmup=20)
    p50 = {Path(m.artifact).name: m.latency_ms.p50 for m in rep.results if m.latency_ms is not None}
    pi4 = load_target("rpi4")
    for r in runs.values():
        r["p50_ms"] = {p: p50.get(Path(f).name) for p, f in r["files"].items()}
        r["pi4_estimated_ms"] = {p: round(estimate_artifact(f, "tflite", pi4).ms, 4) for p, f in r["files"].items()}
    ok = [k for k, r in runs.items() if r["share"] is not None and r["val_drop_points"] <= GOAL[1]]
    chosen = max(ok, key=lambda k: runs[k]["share"]) if ok else None
    return {"runs": runs, "chosen_on_val": chosen, "settings_tried": len(settings) - 1, "train": train}


def table(name: str, res: dict) -> tuple[list[list], list[str]]:
    src = res["runs"]["source"]
    rows, verdicts = [], []
    for label, r in res["runs"].items():
        for prec in ("fp32", "int8"):
            if prec not in r["files"]:
                continue
            p50, base = r["p50_ms"].get(prec), src["p50_ms"].get(prec)
            speed = base / p50 if p50 and base else None
            drop = 100 * (src["test_top1"][prec] - r["test_top1"][prec]) if r["share"] is not None else 0.0
            mark = " (chosen on val)" if label == res["chosen_on_val"] else ""
            rows.append([name, label + mark, prec, f"{r['macs'][prec] / 1e6:.2f}", f"{p50:.4f}" if p50 else "—",
                         f"{speed:.2f}×" if speed else "—", f"{r['pi4_estimated_ms'][prec]:.3f}",
                         f"{r['val_top1']:.4f}", f"{r['test_top1'][prec]:.4f}", f"{drop:+.2f}", f"{r['wall_s']:.0f}"])
            if mark:
                met = speed is not None and speed >= GOAL[0] and drop <= GOAL[1]
                verdicts.append(f"{name} {prec}: {speed:.2f}× p50 at {drop:+.2f} pt (test) — goal ≥{GOAL[0]}× at "
                                f"≤{GOAL[1]} pt {'MET' if met else 'NOT met'}")
    return rows, verdicts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(TEACHERS), choices=list(TEACHERS))
    ap.add_argument("--shares", nargs="+", type=float, default=None)
    ap.add_argument("--launches", type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    payload, rows, verdicts = {"goal": {"speedup": GOAL[0], "max_drop_points": GOAL[1]}, "teachers": {}}, [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            res = run_teacher(name, args.shares, Path(tmp), args.launches)
            payload["teachers"][name] = res
            r, v = table(name, res)
            rows += r
            verdicts += v
    tried = sum(t["settings_tried"] for t in payload["teachers"].values())
    md = ("# Channel pruning + int8 (x86-cpu, 1 thread)\n\n"
          + md_table(["teacher", "setting", "precision", "MMACs", "p50 ms", "speed-up", "Pi 4 est. ms", "val top-1",
                      "test top-1", "test Δ (pt)", "wall s"], rows)
          + "\n" + "\n".join(f"- {v}" for v in verdicts)
          + f"\n\n{tried} channel-pruning settings tried in all; each chosen on the validation split (largest share "
            "within 1 point on val); test read once per artifact. Sensitivity-guided shares, L1 importance, "
            "fine-tune through the prune stage.\n")
    write_results("channel_pruning", payload, md)
    print(md)


if __name__ == "__main__":
    main()
