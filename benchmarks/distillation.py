"""Does distillation help? The same student architecture trained on the labels alone vs distilled from the
bundled teacher: same initial weights, data order, epochs and LR schedule per seed; test accuracy, mean ± std
over seeds, on digits and shapes. Goal: the distilled student is better on average (Hinton et al. 2015:
MNIST test errors 146 → 74).

    python benchmarks/distillation.py [--datasets digits shapes] [--seeds 0 1 2] [--epochs 20]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from benchmarks._common import REPO, md_table, write_results  # noqa: E402

log = logging.getLogger("benchmarks.distillation")

# per data set: the bundled teacher, the student, and the run length (sized for ~15 min on 2 cores in all)
SETUPS = {
    "digits": {"teacher": "digits_cnn.keras", "student": {"zoo": "small_cnn", "width": 0.25, "depth": 2},
               "epochs": 20, "batch_size": 32, "lr": 0.01},
    "shapes": {"teacher": "shapes_mobilenetv2.keras", "student": {"zoo": "small_cnn", "width": 0.25, "depth": 4},
               "epochs": 30, "batch_size": 64, "lr": 0.01},
}


def run_one(dataset, teacher_logits, setup: dict, seed: int, distill: bool, temperature: float, alpha: float) -> dict:
    import tf_keras as keras

    from edgeopt.models import zoo
    from edgeopt.train.fit import Settings, evaluate, train
    from edgeopt.train.schedules import LRSchedule

    spec = dict(setup["student"])
    keras.utils.set_random_seed(seed)  # the same initial weights for both arms of a seed
    student = zoo.build(spec.pop("zoo"), dataset.input_shape, dataset.num_classes, **spec)
    settings = Settings(epochs=setup["epochs"], batch_size=setup["batch_size"], lr=setup["lr"], seed=seed,
                        schedule=LRSchedule(kind="cosine"), temperature=temperature, alpha=alpha)
    start = time.perf_counter()
    student, history = train(student, dataset.x_train, dataset.y_train, settings,
                             soft=teacher_logits if distill else None, validation=(dataset.x_val, dataset.y_val))
    test = evaluate(student, dataset.x_test, dataset.y_test)
    return {"seed": seed, "distilled": distill, "test_accuracy": test["accuracy"],
            "val_accuracy": round(history["val_accuracy"][-1], 4), "params": int(student.count_params()),
            "seconds": round(time.perf_counter() - start, 1)}


def bench_dataset(name: str, seeds: list[int], temperature: float, alpha: float, epochs: int | None) -> dict | None:
    from edgeopt.data.loaders import load_dataset
    from edgeopt.models.load import load_model
    from edgeopt.train.distiller import teacher_logits
    from edgeopt.train.fit import evaluate

    setup = dict(SETUPS[name])
    if epochs:
        setup["epochs"] = epochs
    path = REPO / "sample_models" / setup["teacher"]
    if not path.is_file():
        log.warning("%s: teacher %s is missing (run sample_models/build.py); skipped", name, path)
        return None
    dataset = load_dataset(name)
    teacher = load_model(path)
    soft = teacher_logits(teacher, dataset.x_train)
    runs = []
    for seed in seeds:
        for distill in (False, True):
            runs.append(run_one(dataset, soft, setup, seed, distill, temperature, alpha))
            log.info("%s seed %d %s: test accuracy %.4f (%.0f s)", name, seed, "distilled" if distill else "alone",
                     runs[-1]["test_accuracy"], runs[-1]["seconds"])
    arms = {}
    for distill, arm in ((False, "alone"), (True, "distilled")):
        accs = [r["test_accuracy"] for r in runs if r["distilled"] == distill]
        arms[arm] = {"mean": round(statistics.mean(accs), 4), "std": round(statistics.stdev(accs), 4) if len(accs) > 1
                     else 0.0, "test_accuracy": accs, "errors": [round((1 - a) * len(dataset.y_test)) for a in accs]}
    return {"teacher": {"file": setup["teacher"], "params": int(teacher.count_params()),
                        "test_accuracy": evaluate(teacher, dataset.x_test, dataset.y_test)["accuracy"]},
            "student": setup["student"], "student_params": runs[0]["params"], "epochs": setup["epochs"],
            "batch_size": setup["batch_size"], "lr": {"kind": "cosine", "initial": setup["lr"]},
            "test_samples": len(dataset.y_test), "arms": arms, "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["digits", "shapes"], choices=sorted(SETUPS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=None, help="override every data set's epochs")
    ap.add_argument("--temperature", type=float, default=4.0)
    ap.add_argument("--alpha", type=float, default=0.1, help="weight of the hard-label loss")
    ap.add_argument("--name", default="distillation", help="results file stem")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.perf_counter()
    results = {n: r for n in args.datasets if (r := bench_dataset(n, args.seeds, args.temperature, args.alpha,
                                                                   args.epochs)) is not None}
    rows = []
    for n, r in results.items():
        a, d = r["arms"]["alone"], r["arms"]["distilled"]
        rows.append([n, f"{r['teacher']['test_accuracy']:.4f} ({r['teacher']['params']:,})",
                     f"{r['student']['zoo']} {r['student_params']:,}", r["epochs"],
                     f"{a['mean']:.4f} ± {a['std']:.4f}", f"{d['mean']:.4f} ± {d['std']:.4f}",
                     f"{d['mean'] - a['mean']:+.4f}", f"{sum(a['errors']) / len(a['errors']):.1f} → "
                     f"{sum(d['errors']) / len(d['errors']):.1f}"])
    minutes = (time.perf_counter() - start) / 60
    md = (f"# Distillation: student alone vs distilled\n\nT = {args.temperature:g}, alpha = {args.alpha:g} (hard-label "
          f"weight), seeds {args.seeds}, cosine LR, same init and data order per seed; test accuracy mean ± std. "
          f"{minutes:.1f} min.\n\n"
          + md_table(["data", "teacher acc (params)", "student (params)", "epochs", "alone", "distilled", "Δ",
                      "test errors (mean)"], rows))
    write_results(args.name, {"temperature": args.temperature, "alpha": args.alpha, "seeds": args.seeds,
                              "minutes": round(minutes, 1), "datasets": results}, md)
    print(md)


if __name__ == "__main__":
    main()
