"""Batch-norm re-estimation after weight-changing stages (issue 13, item 0): the plain recipe
``prune: {target_sparsity: 0.8, schedule: polynomial, epochs: 4}`` + ``quantize: {qat: true,
preserve_sparsity: true, epochs: 2}`` + int8 on the bundled digits model, with the moving statistics kept as
the fine-tune left them (``bn_samples: 0``) and re-estimated (the default, 2048 samples).

Every stage is judged on the validation split (the accuracy guard's figures); the test split is read once per
final artifact (the int8 TFLite's parity). The guard is opened wide (``max_stage_drop: 1``) so both settings
run to the end. Prints a table; writes benchmarks/results/batchnorm.{json,md} (batchnorm_<data>.* for other data).

    python benchmarks/batchnorm.py [--model sample_models/digits_cnn.keras --data digits]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import REPO, md_table, write_results

SETTINGS = {"stale (bn_samples: 0)": 0, "re-estimated (bn_samples: 2048)": 2048}


def recipe(bn_samples: int) -> dict:
    return {"max_stage_drop": 1.0, "stages": [
        {"prune": {"target_sparsity": 0.8, "schedule": "polynomial", "epochs": 4, "bn_samples": bn_samples}},
        {"quantize": {"qat": True, "preserve_sparsity": True, "epochs": 2, "bn_samples": bn_samples}},
        {"convert": {"tflite": ["fp32", "int8"], "onnx": []}}]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(REPO / "sample_models" / "digits_cnn.keras"))
    ap.add_argument("--data", default="digits")
    args = ap.parse_args()
    from edgeopt.compress import compress
    from edgeopt.core.artifact import gzip_bytes
    from edgeopt.recipe import Recipe

    rows, payload = [], {"model": args.model, "data": args.data, "settings_tried": len(SETTINGS), "runs": []}
    for label, n in SETTINGS.items():
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            m = compress(args.model, args.data, Path(tmp) / "out", recipe=Recipe.from_dict(recipe(n)))
            seconds = time.perf_counter() - start
            int8 = next(a for a in m.artifacts if a.format == "tflite" and a.precision == "int8")
            gz = gzip_bytes(Path(tmp) / "out" / int8.path)
        guard = m.extra["guard"]
        val = {s["stage"]: s["accuracy"] for s in guard["stages"]}
        par = int8.info["parity"]
        bn_s = [m.extra[k]["batchnorm"].get("seconds", 0) for k in ("pruning", "quantization")]
        run = {"setting": label, "bn_samples": n, "source_val": guard["source_accuracy"], "val": val,
               "int8_test": par["accuracy"], "source_test": par["source_accuracy"],
               "int8_drop_vs_source": par["accuracy_drop"], "int8_gzip_bytes": gz,
               "bn_seconds": bn_s, "wall_s": round(seconds, 1)}
        payload["runs"].append(run)
        rows.append([label, guard["source_accuracy"], val.get("prune"), val.get("quantize"), par["accuracy"],
                     f"{par['accuracy_drop']:+.4f}", f"{sum(bn_s):.2f}", f"{seconds:.0f}"])
        print(rows[-1], flush=True)
    header = ["setting", "source val", "prune val", "prune+PQAT val", "int8 test (once)", "int8 Δ source (test)",
              "BN pass s", "wall s"]
    md = (f"# Batch-norm re-estimation: prune 0.8 + PQAT + int8, {args.data}\n\n" + md_table(header, rows) +
          f"\n{len(SETTINGS)} settings tried; choices on the validation split, test read once per final artifact.\n")
    print(md)
    write_results("batchnorm" if args.data == "digits" else f"batchnorm_{args.data}", payload, md)


if __name__ == "__main__":
    main()
