"""Two distill stages as one run (``start_epoch`` / ``run_epochs``) against a restarted schedule and one stage.

    nice -n 5 python benchmarks/distill_resume.py            # ~10 min on 2 loaded cores

edgeopt optimize distils each student in two stages: a short screening run, then the rest from the cached short run. This measures what the second stage's LR schedule costs, on the bundled shapes teacher with a 3-block
MobileNetV2-like student (alpha 0.75, 5×5 depthwise, the optimize benchmark's winner), augmented distillation,
cosine schedule from 0.005 (as benchmarks/optimize.py): (a) one stage of N epochs, (b) S + (N − S) epochs with the second stage's schedule restarted
(what optimize did before), (c) S + (N − S) epochs as one run in two parts. Validation split only; the test split
is not read (convert writes no artifact). Writes benchmarks/results/distill_resume.json and .md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, md_table, write_results  # noqa: E402

STUDENT = {"zoo": "mobilenet_v2_like", "alpha": 0.75, "depth": 3, "kernel": 5}
AUGMENT = {"shift": 0.1, "crop": 0.1, "flip": True, "rotate": True}


def variants(total: int, short: int) -> dict[str, list[dict]]:
    common = {"temperature": 4.0, "alpha": 0.1, "augment": AUGMENT}
    return {
        f"one stage of {total}": [{"distill": {"student": STUDENT, "epochs": total, **common}}],
        f"{short} + {total - short}, schedule restarted": [
            {"distill": {"student": STUDENT, "epochs": short, **common}},
            {"distill": {"epochs": total - short, **common}}],
        f"{short} + {total - short}, one run in two parts": [
            {"distill": {"student": STUDENT, "epochs": short, "run_epochs": total, **common}},
            {"distill": {"epochs": total - short, "start_epoch": short, "run_epochs": total, **common}}],
    }


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    from edgeopt import compress
    from edgeopt.data.loaders import load_dataset
    from edgeopt.models.load import load_model
    from edgeopt.recipe import Recipe
    from edgeopt.train.fit import evaluate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--short", type=int, default=5)
    a = ap.parse_args()
    data = load_dataset("shapes")
    load = [uptime()]
    rows, out = [], {}
    with tempfile.TemporaryDirectory(prefix="edgeopt-resume-") as tmp:
        os.environ["EDGEOPT_CACHE"] = str(Path(tmp) / "cache")  # a fresh stage cache: every variant trains
        for i, (label, stages) in enumerate(variants(a.epochs, a.short).items()):
            recipe = Recipe.from_dict({"train": {"lr_schedule": {"kind": "cosine", "initial": 0.005}, "batch_size": 64},
                                       "max_stage_drop": 1.0,
                                       "stages": [*stages, {"convert": {"tflite": [], "onnx": []}}]})
            start = time.perf_counter()
            m = compress(REPO / "sample_models" / "shapes_mobilenetv2.keras", data, Path(tmp) / f"v{i}", recipe)
            wall = time.perf_counter() - start
            keras_art = [x for x in m.artifacts if x.format == "keras" and x.role != "source"][-1]
            student = load_model(Path(tmp) / f"v{i}" / keras_art.path)
            val = evaluate(student, data.x_val, data.y_val)["accuracy"]
            out[label] = {"val_top1": round(val, 4), "wall_s": round(wall, 1), "recipe": stages,
                          "guard": [(s["stage"], s["accuracy"]) for s in m.extra["guard"].get("stages", [])]}
            rows.append([label, f"{val:.4f}", f"{wall:.0f}"])
            print(label, out[label]["val_top1"], flush=True)
    load.append(uptime())
    payload = {"epochs": a.epochs, "short": a.short, "student": STUDENT, "variants": out, "load": load}
    md = "\n".join(["# Two distill stages as one run", "", __doc__.split("\n\n")[2].replace("\n", " "), "",
                    md_table(["variant", "val top-1", "wall s"], rows), "",
                    f"Load: `{load[0]}` at start, `{load[1]}` at end (other jobs shared the 2 cores).", ""])
    write_results("distill_resume", payload, md)
    print(md)


if __name__ == "__main__":
    main()
