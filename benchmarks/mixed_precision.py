"""Mixed precision in a compression fine-tune (issue 13, item 1): one prune fine-tune (``target_sparsity 0.75``,
uniform allocation, polynomial ramp, no early stopping) of each bundled model under ``precision: float32``,
``mixed_bfloat16`` and ``mixed_float16``, side by side in one run on this machine. Per run: the prune stage's wall
time, the stripped model's validation top-1 (Keras and its fp32 TFLite), the achieved sparsity, the fp32 TFLite's
size and gzip size, whether every layer came back float32, and the largest gap between the TFLite and Keras
outputs. Only the validation split is read. ``auto`` (the default) is float32 on a CPU: this is the measurement
behind that rule. One untimed warm-up prune (float32, a few rows) runs first, so TensorFlow's and tfmot's one-time
start-up costs are nobody's; the precisions then run in turn, ``--repeats`` rounds (digits) or ``--shapes-repeats``
(shapes), and the table gives each precision's fastest run (the one least slowed by other jobs on a shared machine;
every run's time is in the JSON).

    nice -n 5 python benchmarks/mixed_precision.py [--models digits,shapes] [--shapes-train 1024] [--epochs 3]

Writes benchmarks/results/mixed_precision.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _common import REPO, md_table, write_results

MODELS = {"digits": "digits_cnn.keras", "shapes": "shapes_mobilenetv2.keras"}
POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


def subset(dataset, n_train: int | None):
    from edgeopt.data.dataset import Dataset

    if not n_train or n_train >= len(dataset.x_train):
        return dataset
    d = dataset
    return Dataset.from_arrays(d.name, d.x_train[:n_train], d.y_train[:n_train], d.x_val, d.y_val, d.x_test[:1],
                               d.y_test[:1], num_classes=d.num_classes)


def tflite_figures(model, x, y) -> dict:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from edgeopt.core import graph
    from edgeopt.core.artifact import gzip_bytes
    from edgeopt.stages.convert import tflite_bytes

    blob = tflite_bytes(model, "fp32")
    interp = Interpreter(model_content=blob)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], (len(x), *x.shape[1:]))
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], x.astype(np.float32))
    interp.invoke()
    lite = interp.get_tensor(out["index"])
    keras_out = np.asarray(model.predict(x, batch_size=256, verbose=0))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.tflite"
        path.write_bytes(blob)
        gz = gzip_bytes(path)
    return {"tflite_precision": graph.read_tflite(blob).precision(), "tflite_bytes": len(blob), "tflite_gzip_bytes": gz,
            "tflite_val_accuracy": round(float(np.mean(lite.argmax(-1) == y)), 4),
            "tflite_vs_keras_max_abs": float(np.abs(lite - keras_out).max())}


def run_one(data: str, dataset, policy: str, epochs: int) -> dict:
    import numpy as np

    from edgeopt.models.load import load_model
    from edgeopt.recipe import TrainDefaults, parse_stage
    from edgeopt.stages import STAGES, StageContext
    from edgeopt.train import precision
    from edgeopt.train.fit import evaluate

    model = load_model(REPO / "sample_models" / MODELS[data])
    cfg = parse_stage("prune", {"target_sparsity": 0.75, "allocation": "uniform", "epochs": epochs,
                                "early_stopping": False, "precision": policy}, "prune")
    with tempfile.TemporaryDirectory() as tmp:
        ctx = StageContext(dataset=dataset, out_dir=Path(tmp), base_name=data, train=TrainDefaults(),
                           teacher=model, cache_dir=Path(tmp) / "cache")
        start = time.perf_counter()
        pruned = STAGES["prune"].apply(model, ctx, cfg)
        seconds = time.perf_counter() - start
    notes = ctx.notes["pruning"]
    out = np.asarray(pruned.predict(dataset.x_val, batch_size=256, verbose=0))
    return {"data": data, "precision": policy, "used": notes["fine_tune"]["precision"]["used"],
            "epochs": epochs, "train_samples": len(dataset.x_train),
            "steps": epochs * notes["fine_tune"]["steps_per_epoch"], "wall_s": round(seconds, 1),
            "source_val_accuracy": evaluate(model, dataset.x_val, dataset.y_val)["accuracy"],
            "val_accuracy": evaluate(pruned, dataset.x_val, dataset.y_val)["accuracy"],
            "sparsity": notes["achieved_sparsity"], "all_float32": set(precision.dtype_policies(pruned).values()) ==
            {"float32"}, "finite": bool(np.isfinite(out).all()),
            **tflite_figures(pruned, dataset.x_val, dataset.y_val)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="digits,shapes")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--shapes-train", type=int, default=1024, help="training rows of shapes used (all: 0)")
    ap.add_argument("--repeats", type=int, default=2, help="rounds of the three precisions on digits")
    ap.add_argument("--shapes-repeats", type=int, default=2)
    args = ap.parse_args()
    from edgeopt.data.loaders import load_dataset

    load = [f"{x:.2f}" for x in os.getloadavg()]
    runs = []
    for i, data in enumerate(args.models.split(",")):
        dataset = subset(load_dataset(data), args.shapes_train if data == "shapes" else None)
        if i == 0:
            run_one(data, subset(dataset, 128), "float32", 1)  # warm-up, not reported
        for _ in range(args.shapes_repeats if data == "shapes" else args.repeats):
            for policy in POLICIES:
                run = run_one(data, dataset, policy, args.epochs)
                runs.append(run)
                print(run, flush=True)
    load_after = [f"{x:.2f}" for x in os.getloadavg()]
    runs_of = {}
    for r in runs:
        runs_of.setdefault((r["data"], r["precision"]), []).append(r)
    table = [_fastest_run(mine) for mine in runs_of.values()]
    base = {r["data"]: r for r in table if r["precision"] == "float32"}
    header = ["data", "precision", "train rows × epochs (steps)", "runs", "prune stage s (fastest)", "× float32 time",
              "val top-1",
              "Δ float32", "TFLite val top-1", "sparsity", "fp32 TFLite B", "gzip B", "all float32",
              "TFLite−Keras max |Δ|"]
    rows = [[r["data"], r["precision"], f"{r['train_samples']} × {r['epochs']} ({r['steps']})", r["runs"], r["wall_s"],
             f"{r['wall_s'] / base[r['data']]['wall_s']:.2f}", r["val_accuracy"],
             f"{r['val_accuracy'] - base[r['data']]['val_accuracy']:+.4f}", r["tflite_val_accuracy"], r["sparsity"],
             f"{r['tflite_bytes']:,}", f"{r['tflite_gzip_bytes']:,}", r["all_float32"],
             f"{r['tflite_vs_keras_max_abs']:.1e}"] for r in table]
    md = ("# Mixed precision in a prune fine-tune (prune 0.75, uniform, one stage)\n\n" + md_table(header, rows) +
          f"\n{len(POLICIES)} precisions per model, validation split only; times are each precision's fastest run, every "
          "run's in the JSON (the accuracy columns are the fastest run's; a rerun with the same seed trains the same). Wall time is the whole prune "
          "stage (wrap, fine-tune, strip, batch-norm re-estimation); the mixed runs include rebuilding the model under "
          f"the policy. Load average (1, 5, 15 min) {', '.join(load)} at the start, {', '.join(load_after)} at the "
          "end: the 2 cores were shared with other benchmarks, so times are loose; their ratio is the figure. "
          "`precision: auto` (the default) trains float32 on a CPU because of these times.\n")
    print(md)
    write_results("mixed_precision", {"epochs": args.epochs, "shapes_train": args.shapes_train,
                                      "loadavg_start": load, "loadavg_end": load_after, "runs": runs}, md)


def _fastest_run(mine: list[dict]) -> dict:
    """The fastest run, with the count of runs and every run's time."""
    return {**min(mine, key=lambda r: r["wall_s"]), "runs": len(mine), "wall_s_all": [r["wall_s"] for r in mine]}


if __name__ == "__main__":
    main()
