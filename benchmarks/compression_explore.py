"""Settings exploration for benchmarks/compression.py, on the VALIDATION split only: each recipe runs through
``edgeopt.compress`` on a view of the data whose test split IS part of the validation split (the real test split
is dropped before any stage runs), so every figure printed here — the guard's per-stage val top-1 and convert's "test"
parity — is a validation figure, on the part of it the stages did not choose on: they early-stop, scan and pick
int8 fallbacks on --holdout of the validation split (with --holdout 0 on all of it, and the figures flatter the
settings: restored best epochs). Runs h01-h06 (stop 21) held 15 % of TRAIN out instead, logged as
``"stage_split": "train"``; the source model trained on those rows, so their in-pipeline references were inflated
(the val figures here were not). One JSON line per run is appended to --log
(default benchmarks/results/compression_explore.jsonl, the log of the settings tried for compression.py).

    python benchmarks/compression_explore.py --model shapes --name p85 --recipe '{"stages": [...]}'
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from _common import REPO, RESULTS  # noqa: E402

FILES = {"digits": ("digits", "digits_cnn.keras"), "shapes": ("shapes", "shapes_mobilenetv2.keras")}


def val_view(name: str, holdout: float):
    """The data set as optimize ranks candidates on it (data.arrays.selection_view): ``holdout`` of the validation
    split for what the stages choose on (early stopping, scans, int8 fallbacks), the rest in the test split's place
    to rank the settings (exploration never reads test)."""
    from edgeopt.data.arrays import selection_view
    from edgeopt.data.loaders import load_dataset

    return selection_view(load_dataset(name), holdout)


def main() -> None:
    import numpy as np

    from edgeopt import compress
    from edgeopt.bench.estimate import estimate_artifact
    from edgeopt.bench.targets import load_target
    from edgeopt.core.artifact import gzip_bytes
    from edgeopt.recipe import Recipe
    from edgeopt.runtimes import evaluate

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--model-path", default=None)
    ap.add_argument("--data", default=None)
    ap.add_argument("--name", required=True)
    ap.add_argument("--recipe", required=True)
    ap.add_argument("--log", default=str(RESULTS / "compression_explore.jsonl"))
    ap.add_argument("--holdout", type=float, default=0.5,
                    help="share of val the stages choose on, the rest ranks (0: all of val does both)")
    ap.add_argument("--keep", default=None, help="copy the run's output folder here (to look at its files)")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("edgeopt").setLevel(logging.INFO)
    data_name, file = FILES.get(a.model, (a.data, None))
    path = Path(a.model_path) if a.model_path else REPO / "sample_models" / file
    rec = json.loads(a.recipe)
    stages = rec["stages"]
    if not any("convert" in s for s in stages):
        stages.append({"convert": {"tflite": ["fp32", "int8"], "onnx": []}})
    data = val_view(data_name, a.holdout)
    pi4 = load_target("rpi4")  # the estimate depends on the file only: no split is read
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        m = compress(path, data, Path(tmp) / "out", Recipe.from_dict(rec))
        base = compress(path, data, Path(tmp) / "base",
                        Recipe.from_dict({"stages": [{"convert": {"tflite": ["fp32"], "onnx": []}}]}))
        b = base.artifacts[-1]
        bgz = gzip_bytes(Path(tmp) / "base" / b.path)
        arts = {a_.precision: a_ for a_ in m.artifacts if a_.format == "tflite"}
        out = {"name": a.name, "model": a.model, "recipe": rec, "holdout": a.holdout, "stage_split": "val",
               "wall_s": round(time.time() - t0, 1),
               "guard": [(s.get("stage"), s.get("accuracy")) for s in m.extra["guard"].get("stages", [])],
               "guard_verdict": m.extra["guard"]["verdict"], "source_val": m.extra["guard"]["source_accuracy"]}
        # finer selectors than val top-1 (saturated on small val splits): top-1 agreement with the source's fp32
        # TFLite and the mean cross-entropy of the artifact's outputs on the labels, both on the validation split
        source_out = evaluate.outputs(Path(tmp) / "base" / b.path, "tflite", data.x_test)
        for p, art in arts.items():
            gz = gzip_bytes(Path(tmp) / "out" / art.path)
            acc = art.info["parity"]["accuracy"]
            probs = evaluate.outputs(Path(tmp) / "out" / art.path, "tflite", data.x_test)
            nll = -np.log(np.clip(probs[np.arange(len(probs)), data.y_test.astype(int)], 1e-7, 1)).mean()
            out[p] = {"val_top1": acc, "gzip": gz, "ratio": round(bgz / gz, 2),
                      "drop_pt": round(100 * (b.info["parity"]["accuracy"] - acc), 2),
                      "val_agreement_source": round(float(np.mean(probs.argmax(1) == source_out.argmax(1))), 4),
                      "val_nll": round(float(nll), 4),
                      "pi4_estimated_ms": round(estimate_artifact(Path(tmp) / "out" / art.path, "tflite", pi4).ms, 4)}
        for k in ("pruning", "clustering"):
            if k in m.extra:
                ft = m.extra[k].get("fine_tune", {})
                out[k] = {"achieved": m.extra[k].get("achieved_sparsity"), "val": ft.get("validation"),
                          **{kk: m.extra[k][kk] for kk in ("macs", "ops") if kk in m.extra[k]}}
                if "blocks" in m.extra[k]:  # which residual branches went, and what each cost on val
                    blk = m.extra[k]["blocks"]
                    out[k]["blocks"] = {"removed": blk["removed"], "scan": blk["scan"]["rounds"]}
        if a.keep:
            shutil.copytree(Path(tmp) / "out", a.keep)
    print(json.dumps(out))
    with open(a.log, "a") as f:
        f.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
