"""How much smaller edgeopt makes the bundled teachers, at what accuracy — one table.

    python benchmarks/compression.py                    # digits and shapes teachers (~15-30 min on 2 cores)
    python benchmarks/compression.py --models digits    # digits only (~3 min)
    python benchmarks/compression.py --no-keras3        # skip the Keras 3 MobileNetV3Small acceptance run

Rows per teacher: fp32 TFLite (the baseline), plain int8 PTQ written the way a user would in ten lines
(TFLiteConverter, no edgeopt), edgeopt's accuracy-aware int8, prune+int8, prune+PQAT int8, cluster+int8,
prune+cluster+PCQAT int8, and distill+prune+PQAT int8 (a smaller student). Columns: gzip size, ratio to the
baseline's gzip size, top-1 on the test split, drop in points. Goals (issue 4): same architecture ≥ 12× at
≤ 1.0 point; with distillation ≥ 40× at ≤ 1.5 points. The ONNX int8 candidates (tf2onnx on the int8 TFLite
vs ONNX Runtime static quantization) are measured on the edgeopt int8 row. Writes
benchmarks/results/compression.json and .md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from edgeopt.core import metrics as measure  # noqa: E402
from edgeopt.core.artifact import gzip_bytes, param_counts  # noqa: E402
from edgeopt.recipe import Recipe  # noqa: E402

log = logging.getLogger("benchmarks.compression")
GOAL_SAME_ARCH = (12.0, 1.0)  # (ratio ≥, drop ≤ points)
GOAL_DISTILLED = (40.0, 1.5)
INT8 = {"convert": {"tflite": ["int8"], "onnx": []}}

# Per teacher: fine-tune length, what to prune (first conv and classifier stay dense: few weights, much
# accuracy), clusters, and the distilled students (two sparsities that straddle the goal on digits).
TEACHERS = {
    "digits": {"file": "digits_cnn.keras", "train": {"epochs": 12, "batch_size": 32},
               "prune": {"target_sparsity": 0.93, "skip_first": True, "skip_last": True}, "clusters": 8,
               "students": [({"zoo": "mlp", "units": 32, "depth": 1}, 0.70, 8),
                            ({"zoo": "mlp", "units": 32, "depth": 1}, 0.75, 6)],
               "distill_epochs": 100, "student_epochs": 30},
    "shapes": {"file": "shapes_mobilenetv2.keras", "train": {"epochs": 3, "batch_size": 64},
               "prune": {"target_sparsity": 0.75, "skip_first": True, "skip_last": True}, "clusters": 16,
               "students": [({"zoo": "mobilenet_v2_like", "alpha": 0.35}, 0.6, 16)],
               "distill_epochs": 15, "student_epochs": 4},
}


def variants(t: dict) -> dict[str, tuple[str, dict]]:
    """name → (kind, recipe dict). kind: same (architecture) or distilled."""
    prune, n = {"prune": t["prune"]}, t["clusters"]
    out = {
        "edgeopt int8 (accuracy-aware)": ("reference", {"stages": [{"convert": {"tflite": ["int8"],
                                                                           "onnx": ["fp32", "int8"]}}]}),
        "prune + int8": ("same", {"stages": [prune, INT8]}),
        "prune + PQAT int8": ("same", {"stages": [prune, {"quantize": {"epochs": 2}}, INT8]}),
        f"cluster({n}) + int8": ("same", {"stages": [{"cluster": {"number_of_clusters": n}}, INT8]}),
        f"prune + cluster({n}) + PCQAT int8": ("same", {"stages": [prune, {"cluster": {"number_of_clusters": n}},
                                                                 {"quantize": {"epochs": 2}}, INT8]}),
    }
    e = t["student_epochs"]
    for student, sparsity, clusters in t["students"]:
        label = ", ".join(f"{k}={v}" for k, v in student.items() if k != "zoo")
        out[f"distill {student['zoo']}({label}) + prune {sparsity:g} + cluster({clusters}) + PCQAT int8"] = (
            "distilled", {"stages": [
                {"distill": {"student": student, "epochs": t["distill_epochs"]}},
                {"prune": {"target_sparsity": sparsity, "skip_last": True, "epochs": e}},
                {"cluster": {"number_of_clusters": clusters, "epochs": max(1, e // 3)}},
                {"quantize": {"epochs": max(2, e // 8)}}, INT8]})
    return out


def ptq_ten_lines(model_path: Path, data, out: Path) -> Path:
    """Plain post-training int8, as the TFLite guide writes it: what a user gets without edgeopt."""
    import tensorflow as tf
    import tf_keras

    model = tf_keras.models.load_model(model_path, compile=False)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([data.x_train[i : i + 1]] for i in range(100))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    out.write_bytes(converter.convert())
    return out


def tflite_accuracy(path: Path, data) -> float:
    from edgeopt.runtimes import litert

    return measure.accuracy(litert.load(str(path)).run(data.x_test), data.y_test)


def stripped_gzip(path: Path) -> int:
    """gzip size with tensor names and signatures stripped (convert: {strip_strings: true})."""
    import gzip

    from edgeopt.stages.convert import strip_strings

    return len(gzip.compress(strip_strings(path.read_bytes()), compresslevel=9))


def row(name: str, kind: str, path: Path, acc: float, base: dict | None, seconds: float, **extra) -> dict:
    params, nonzero = param_counts(path, "tflite")
    gz = gzip_bytes(path)
    r = {"variant": name, "kind": kind, "gzip_bytes": gz, "gzip_bytes_stripped": stripped_gzip(path),
         "size_bytes": path.stat().st_size, "params": params, "nonzero_params": nonzero, "top1": round(acc, 4),
         "seconds": round(seconds, 1), **extra}
    if base:
        r["ratio"] = round(base["gzip_bytes"] / gz, 2)
        r["ratio_stripped"] = round(base["gzip_bytes"] / r["gzip_bytes_stripped"], 2)
        r["drop_points"] = round(100 * (base["top1"] - acc), 2)
        goal = GOAL_DISTILLED if kind == "distilled" else GOAL_SAME_ARCH if kind == "same" else None
        if goal:
            r["goal"] = f"≥{goal[0]:g}× at ≤{goal[1]:g} pt"
            r["goal_met"] = bool(r["ratio"] >= goal[0] and r["drop_points"] <= goal[1])
            r["goal_met_stripped"] = bool(r["ratio_stripped"] >= goal[0] and r["drop_points"] <= goal[1])
    return r


def run_teacher(name: str, t: dict, work: Path, only: list[str] | None) -> list[dict]:
    from edgeopt.compress import compress
    from edgeopt.data.loaders import load_dataset

    model_path = REPO / "sample_models" / t["file"]
    if not model_path.exists():
        log.warning("%s: %s is not built yet (python sample_models/build.py --only %s); skipped", name, model_path,
                    name)
        return [{"teacher": name, "variant": "(teacher missing)", "error": f"{model_path.name} not built"}]
    data = load_dataset(name)
    rows = []
    t0 = time.time()
    base_out = compress(model_path, data, work / f"{name}_fp32",
                        Recipe.from_dict({"stages": [{"convert": {"tflite": ["fp32"], "onnx": []}}]}))
    base_art = base_out.artifacts[-1]
    base_path = work / f"{name}_fp32" / base_art.path
    base = row("fp32 TFLite (baseline)", "baseline", base_path, base_art.info["parity"]["accuracy"], None,
               time.time() - t0)
    base.update(ratio=1.0, drop_points=0.0)
    rows.append(base)
    t0 = time.time()
    ptq = ptq_ten_lines(model_path, data, work / f"{name}_ptq.tflite")
    rows.append(row("plain int8 PTQ (ten lines)", "reference", ptq, tflite_accuracy(ptq, data), base, time.time() - t0))
    train = t["train"]
    for vname, (kind, rec) in variants(t).items():
        if only and not any(o in vname for o in only):
            continue
        t0 = time.time()
        out = work / f"{name}_{len(rows)}"
        try:
            m = compress(model_path, data, out, Recipe.from_dict({"train": train, **rec}))
        except Exception as e:  # noqa: BLE001 — a failed variant is a row that says why, not a lost table
            log.exception("%s / %s failed", name, vname)
            rows.append({"variant": vname, "kind": kind, "error": f"{type(e).__name__}: {e}"[:300]})
            continue
        art = next(a for a in m.artifacts if a.format == "tflite" and a.precision == "int8")
        extra = {"recipe": rec["stages"], "within_tolerance": art.info["parity"].get("within_tolerance")}
        if "pruning" in m.extra:
            extra["sparsity"] = m.extra["pruning"]["achieved_sparsity"]
        kept = art.info.get("int8", {}).get("kept_float")
        if kept:
            extra["kept_float"] = [k["op"] for k in kept]
        onnx = next((a for a in m.artifacts if a.format == "onnx" and a.precision == "int8"), None)
        if onnx:
            extra["onnx_int8"] = {**onnx.info["onnx_int8"], "test_top1": onnx.info["parity"]["accuracy"],
                                  "gzip_bytes": gzip_bytes(out / onnx.path)}
        rows.append(row(vname, kind, out / art.path, art.info["parity"]["accuracy"], base, time.time() - t0,
                        **extra))
        log.info("%s / %s: %s", name, vname, {k: rows[-1].get(k) for k in ("gzip_bytes", "ratio", "top1")})
    for r in rows:
        r["teacher"] = name
    return rows


def keras3_mobilenetv3(work: Path) -> dict:
    """The acceptance case: a Keras 3 MobileNetV3Small (weights=None) bridged, pruned and converted to int8."""
    import keras
    import numpy as np

    from edgeopt.compress import compress
    from edgeopt.data.dataset import Dataset
    from edgeopt.data.loaders import load_dataset
    from edgeopt.models.load import load_model

    t0 = time.time()
    shapes = load_dataset("shapes")
    n = 512  # random-init network: this checks the path, not accuracy
    data = Dataset.from_arrays("shapes-512", shapes.x_train[:n] * 255, shapes.y_train[:n], shapes.x_val[:128] * 255,
                               shapes.y_val[:128], shapes.x_test[:256] * 255, shapes.y_test[:256], num_classes=10)
    k3 = keras.applications.MobileNetV3Small(weights=None, input_shape=(32, 32, 3), classes=10)
    path = work / "mobilenetv3small_keras3.keras"
    k3.save(path)
    bridged = load_model(path, sample=data.x_val[:32])
    diff = float(np.max(np.abs(np.asarray(k3(data.x_test[:64])) - np.asarray(bridged(data.x_test[:64])))))
    rec = Recipe.from_dict({"train": {"epochs": 1, "batch_size": 64},
                            "stages": [{"prune": {"target_sparsity": 0.5}},
                                       {"convert": {"tflite": ["fp32", "int8"], "onnx": [], "calibration_samples": 64}}]})
    m = compress(path, data, work / "mnv3", rec)
    arts = {a.precision: a for a in m.artifacts if a.format == "tflite"}
    gz = {p: gzip_bytes(work / "mnv3" / a.path) for p, a in arts.items()}
    return {"model": "keras.applications.MobileNetV3Small(weights=None, input_shape=(32,32,3), classes=10)",
            "keras_version": keras.__version__, "bridge_max_abs_diff": diff, "params": int(k3.count_params()),
            "achieved_sparsity": m.extra["pruning"]["achieved_sparsity"],
            "pruned_layers": len(m.extra["pruning"]["pruned_layers"]), "fp32_gzip_bytes": gz["fp32"],
            "int8_gzip_bytes": gz["int8"], "int8_agreement_with_pruned": arts["int8"].info["parity"]["agreement"],
            "seconds": round(time.time() - t0, 1)}


def markdown(rows: list[dict], keras3: dict | None) -> str:
    lines = ["# Compression benchmark", "",
             "gzip -9 sizes of the TFLite artifact; top-1 on the test split; drop against the fp32 TFLite baseline.",
             f"Goals: same architecture ≥ {GOAL_SAME_ARCH[0]:g}× at ≤ {GOAL_SAME_ARCH[1]:g} point; distilled ≥ "
             f"{GOAL_DISTILLED[0]:g}× at ≤ {GOAL_DISTILLED[1]:g} points.", "",
             "Stripped: the same file with tensor names and signature defs removed (`convert: {strip_strings: true}`), "
             "the baseline is not stripped. Goal column: met with names kept / met stripped.", "",
             "| teacher | variant | gzip bytes | ratio | stripped bytes | ratio stripped | top-1 | drop (pt) | "
             "nonzero / params | goal met |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['teacher']} | {r['variant']} | — | — | — | — | — | — | — | error: {r['error'][:80]} |")
            continue
        goal = "" if "goal_met" not in r else " / ".join("yes" if r[k] else "**no**"
                                                          for k in ("goal_met", "goal_met_stripped"))
        stripped = f"{r['ratio_stripped']:.1f}×" if "ratio_stripped" in r else "—"
        lines.append(f"| {r['teacher']} | {r['variant']} | {r['gzip_bytes']} | {r['ratio']:.1f}× | "
                     f"{r['gzip_bytes_stripped']} | {stripped} | {r['top1']:.4f} | {r['drop_points']:+.2f} | "
                     f"{r['nonzero_params']} / {r['params']} | {goal} |")
    onnx = [(r["teacher"], r["variant"], r["onnx_int8"]) for r in rows if "onnx_int8" in r]
    if onnx:
        lines += ["", "## ONNX int8: tf2onnx on the int8 TFLite vs ONNX Runtime static quantization", "",
                  "| teacher | variant | candidate | val top-1 | gzip bytes | chosen |", "|---|---|---|---:|---:|---|"]
        for teacher, variant, o in onnx:
            for cand, s in o["candidates"].items():
                lines.append(f"| {teacher} | {variant} | {cand} | {s.get('val_accuracy', '—')} | "
                             f"{s.get('gzip_bytes', s.get('error', '—'))} | {'yes' if cand == o['method'] else ''} |")
    if keras3:
        lines += ["", "## Keras 3 input: MobileNetV3Small through prune + int8", "", "```",
                  json.dumps(keras3, indent=2), "```"]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="digits,shapes")
    ap.add_argument("--only", default="", help="comma-separated substrings of variant names to run")
    ap.add_argument("--no-keras3", action="store_true")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger().setLevel(logging.ERROR)  # ORT's quantizer talks on the root logger
    for ours in ("benchmarks", "edgeopt"):
        logging.getLogger(ours).setLevel(logging.INFO)
    for noisy in ("tensorflow", "absl", "tf2onnx", "h5py"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    only = [o for o in args.only.split(",") if o]
    rows, keras3 = [], None
    with tempfile.TemporaryDirectory(prefix="edgeopt-bench-") as tmp:
        for name in [m for m in args.models.split(",") if m]:
            rows += run_teacher(name, TEACHERS[name], Path(tmp), only)
        if not args.no_keras3:
            try:
                keras3 = keras3_mobilenetv3(Path(tmp))
            except Exception as e:  # noqa: BLE001
                log.exception("Keras 3 MobileNetV3Small run failed")
                keras3 = {"error": f"{type(e).__name__}: {e}"[:300]}
    args.out.mkdir(parents=True, exist_ok=True)
    previous = args.out / "compression.json"
    if previous.exists():  # a partial run (--models, --no-keras3) keeps the other teachers' rows
        old = json.loads(previous.read_text())
        ran = {r["teacher"] for r in rows}
        rows = [r for r in old.get("rows", []) if r.get("teacher") not in ran] + rows
        keras3 = keras3 if keras3 is not None else old.get("keras3")
    order = list(TEACHERS)
    rows.sort(key=lambda r: order.index(r["teacher"]) if r.get("teacher") in order else len(order))
    previous.write_text(json.dumps({"rows": rows, "keras3": keras3}, indent=2) + "\n")
    md = markdown(rows, keras3)
    (args.out / "compression.md").write_text(md)
    sys.stdout.write(md)


if __name__ == "__main__":
    main()
