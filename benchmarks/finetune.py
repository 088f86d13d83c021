"""The compression fine-tunes through the one training loop (issue 13, items 1 and 6): the plain user recipe
``prune: {target_sparsity: 0.8, schedule: polynomial, epochs: 4}`` then ``quantize: {qat: true,
preserve_sparsity: true, epochs: 2}`` and int8, on the bundled digits CNN and shapes MobileNetV2, with the
fine-tune options switched on one by one:

- ``labels only``: no self-distillation, no augmentation, no early stopping (what the fine-tunes did before);
- ``self-distill T a``: soft targets from the uncompressed input model at temperature T, label weight a;
- ``augment``: shift 0.1 (whole pixels, so none on 8×8 digits), crop 0.1, no flip; ``early stopping``:
  patience 2 on val_loss, best epoch kept;
- ``defaults: SD T1 a0.5 + early stopping``: what a recipe gets without saying anything. It was chosen on
  the validation splits: T 1 / alpha 0.5 over the other temperatures, and without augmentation because
  ``SD T1 a0.5 + augment + early stopping`` (the defaults when it ran) lowered both models' validation top-1.

Every stage is judged on the validation split (the accuracy guard's figures; early stopping reads only it);
the test split is read once per final artifact (the int8 TFLite's parity). The guard is opened wide
(``max_stage_drop: 1``) so every setting runs to the end. Prints a table; writes
benchmarks/results/finetune.{json,md}.

    python benchmarks/finetune.py [--models digits,shapes] [--shapes-epochs 4,2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _common import REPO, RESULTS, md_table, write_results

MODELS = {"digits": "digits_cnn.keras", "shapes": "shapes_mobilenetv2.keras"}
OFF = {"self_distill": False, "augment": False, "early_stopping": False}
SETTINGS = {  # every setting tried, in the order tried; "defaults" is what a recipe gets without saying anything
    "labels only": OFF,
    "self-distill T4 a0.1": {**OFF, "self_distill": True, "temperature": 4.0, "alpha": 0.1},
    "self-distill T4 a0.5": {**OFF, "self_distill": True, "temperature": 4.0, "alpha": 0.5},
    "augment": {**OFF, "augment": True},
    "early stopping": {**OFF, "early_stopping": True},
    "self-distill T2 a0.5": {**OFF, "self_distill": True, "alpha": 0.5, "temperature": 2.0},
    "self-distill T1 a0.5": {**OFF, "self_distill": True, "alpha": 0.5, "temperature": 1.0},
    "SD T4 a0.1 + augment + early stopping": {"temperature": 4.0, "alpha": 0.1},
    "SD T1 a0.5 + augment + early stopping": {"augment": True},  # the defaults when it ran
    "defaults: SD T1 a0.5 + early stopping": {},  # augmentation opt-in since (it lowered val on both models)
}


def recipe(train: dict, prune_epochs: int = 4, qat_epochs: int = 2) -> dict:
    return {"max_stage_drop": 1.0, "train": train, "stages": [
        # uniform: as measured (prune's default allocation became the sensitivity scan after these runs)
        {"prune": {"target_sparsity": 0.8, "schedule": "polynomial", "epochs": prune_epochs, "allocation": "uniform"}},
        {"quantize": {"qat": True, "preserve_sparsity": True, "epochs": qat_epochs}},
        {"convert": {"tflite": ["int8"], "onnx": []}}]}


def run_one(model: str, data: str, label: str, train: dict, epochs: tuple[int, int], seed: int = 0) -> dict:
    from edgeopt.compress import compress
    from edgeopt.core.artifact import gzip_bytes
    from edgeopt.recipe import Recipe

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        m = compress(REPO / "sample_models" / model, data, Path(tmp) / "out",
                     recipe=Recipe.from_dict(recipe({**train, "seed": seed}, *epochs)))
        seconds = time.perf_counter() - start
        int8 = next(a for a in m.artifacts if a.format == "tflite" and a.precision == "int8")
        gz = gzip_bytes(Path(tmp) / "out" / int8.path)
        source_gz = gzip_bytes(Path(tmp) / "out" / next(a for a in m.artifacts if a.role == "source").path)
    guard = m.extra["guard"]
    val = {s["stage"]: s["accuracy"] for s in guard["stages"]}
    par = int8.info["parity"]
    fits = {k: m.extra[k]["fine_tune"] for k in ("pruning", "quantization")}
    return {"data": data, "setting": label, "seed": seed, "train": train, "prune_epochs": epochs[0], "qat_epochs": epochs[1],
            "source_val": guard["source_accuracy"], "val": val, "int8_test": par["accuracy"],
            "source_test": par["source_accuracy"], "int8_drop_vs_source_test": par["accuracy_drop"],
            "int8_gzip_bytes": gz, "source_keras_gzip_bytes": source_gz,
            "sparsity": m.extra["pruning"]["achieved_sparsity"],
            "early_stopping": {k: f["validation"].get("best_epoch") for k, f in fits.items()},
            "wall_s": round(seconds, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="digits,shapes")
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--shapes-epochs", default="4,2", help="prune,qat epochs on shapes (fewer on a busy machine)")
    ap.add_argument("--seeds", default="0,1,2", help="train.seed values per digits setting (shapes: the first)")
    ap.add_argument("--name", default="finetune")
    ap.add_argument("--merge", action="store_true", help="keep the runs already in results/<name>.json (a rerun of "
                    "the same data, setting and seed replaces its run)")
    args = ap.parse_args()
    chosen = [s for s in args.settings.split(",") if s]
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = json.loads((RESULTS / f"{args.name}.json").read_text())["runs"] if args.merge else []
    for data in args.models.split(","):
        epochs = tuple(int(e) for e in args.shapes_epochs.split(",")) if data == "shapes" else (4, 2)
        for label in chosen:
            for seed in seeds if data == "digits" else seeds[:1]:
                run = run_one(MODELS[data], data, label, SETTINGS[label], epochs, seed)
                runs = [r for r in runs if (r["data"], r["setting"], r["seed"]) != (data, label, seed)] + [run]
                print(run, flush=True)
    groups: dict = {}
    for r in runs:
        groups.setdefault((r["data"], r["setting"], (r["prune_epochs"], r["qat_epochs"])), []).append(r)
    order = list(SETTINGS)
    keys = sorted(groups, key=lambda k: (list(MODELS).index(k[0]), order.index(k[1]) if k[1] in order else 99))
    rows = [_row(data, label, epochs, groups[(data, label, epochs)]) for data, label, epochs in keys]
    chosen = sorted({r["setting"] for r in runs}, key=lambda k: order.index(k) if k in order else 99)
    header = ["data", "setting", "epochs prune+QAT", "seeds", "source val", "prune val", "prune+PQAT val",
              "int8 test (once per run)", "source test", "int8 Δ source (test)", "int8 gzip B", "wall s"]
    md = ("# Fine-tunes through the one loop: prune 0.8 + PQAT + int8\n\n" + md_table(header, rows) +
          f"\n{len(chosen)} settings tried in all ({len(runs)} runs); figures are means over the seeds listed. "
          "Prune allocation uniform (every layer at 0.8). Every choice on the validation split, the test split read "
          "once per final int8 artifact. The machine "
          "was shared (2 cores, several jobs): wall times are loose.\n")
    print(md)
    write_results(args.name, {"settings_tried": len(chosen), "settings": {k: SETTINGS.get(k) for k in chosen},
                              "runs": runs}, md)


def _row(data: str, label: str, epochs: tuple[int, int], mine: list[dict]) -> list:
    def mean(get) -> str:
        vals = [get(r) for r in mine]
        return f"{sum(vals) / len(vals):.4f}" if all(v is not None for v in vals) else "-"

    return [data, label, f"{epochs[0]}+{epochs[1]}", len(mine), mine[0]["source_val"],
            mean(lambda r: r["val"].get("prune")), mean(lambda r: r["val"].get("quantize")),
            mean(lambda r: r["int8_test"]), mine[0]["source_test"],
            f"{float(mean(lambda r: r['int8_drop_vs_source_test'])):+.4f}",
            f"{round(sum(r['int8_gzip_bytes'] for r in mine) / len(mine)):,}",
            f"{sum(r['wall_s'] for r in mine) / len(mine):.0f}"]


if __name__ == "__main__":
    main()
