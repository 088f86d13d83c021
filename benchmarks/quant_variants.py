"""The quantized variants edgeopt and its peers offer, side by side, on the bundled digits CNN and shapes MobileNetV2.

Per model: one `compress` with convert {tflite: [fp32, fp16, dynamic, int8_weights, int8], onnx: [fp32, int8, u8s8]}
(each artifact's convert seconds, size, gzip size, agreement and top-1 with the source on the test split come
from its manifest entry), one with int8 weights per tensor (convert: {per_channel: false}), both int8 files
again without names and converter metadata (strip_strings + strip_metadata) and where their bytes go
(benchmarks/tflite_bytes.py), then the peers made from the same fp32 flatbuffer / fp32 ONNX with the same 200
calibration samples: ai-edge-quantizer static w8a8 and dynamic-range (its weight-only is edgeopt's
int8_weights), ONNX Runtime's per-channel s8s8 (the candidate edgeopt's ONNX int8 did not pick, when it did
not), and the converter's own int8 path timed as edgeopt ran it before (one more full Keras → TFLite
conversion to calibrate). Every file is then benchmarked in ONE `edgeopt.benchmark` run (x86-cpu target,
1 thread, interleaved launches), so the p50s share the machine's state.

No choice is made on the test split here: every row is a fixed recipe (one setting per variant).

    python benchmarks/quant_variants.py [--models digits,shapes] [--launches 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from _common import REPO, md_table, write_results

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
log = logging.getLogger("quant_variants")

MODELS = {"digits": "digits_cnn.keras", "shapes": "shapes_mobilenetv2.keras"}
CONVERT = {"tflite": ["fp32", "fp16", "dynamic", "int8_weights", "int8"], "onnx": ["fp32", "int8", "u8s8"]}
WHAT = {
    ("tflite", "fp32"): "fp32", ("tflite", "fp16"): "fp16 weights",
    ("tflite", "dynamic"): "converter dynamic-range (int8 weights, hybrid kernels)",
    ("tflite", "int8_weights"): "weight-only int8 (ai-edge-quantizer, float compute)",
    ("tflite", "int8"): "full int8 (accuracy-aware)",
    ("onnx", "fp32"): "fp32 (tf2onnx)", ("onnx", "int8"): "existing ONNX int8 (auto)",
    ("onnx", "u8s8"): "ORT static u8s8 per-tensor QDQ",
}


def peers(model, data, fp32_tflite: Path, fp32_onnx: Path, folder: Path, calibration) -> list[dict]:
    """Peer variants written into ``folder``: (file, label, seconds)."""
    from edgeopt.stages.convert import tflite_bytes
    from edgeopt.stages.convert.onnx import ort_static

    rows = []

    def add(name: str, label: str, make) -> None:
        t0 = time.perf_counter()
        try:
            data_bytes = make()
        except Exception as e:  # noqa: BLE001 — a peer that fails is a row that says why
            rows.append({"file": name, "label": label, "error": f"{type(e).__name__}: {str(e)[:200]}"})
            return
        seconds = time.perf_counter() - t0
        (folder / name).write_bytes(data_bytes)
        rows.append({"file": name, "label": label, "convert_seconds": round(seconds, 3)})

    fp32 = fp32_tflite.read_bytes()
    try:
        from ai_edge_litert.interpreter import Interpreter
        from ai_edge_quantizer import quantizer, recipe

        signature = Interpreter(model_content=fp32).get_signature_list()
        key = next(iter(signature))
        name = signature[key]["inputs"][0]

        def aeq(rec, calibrate: bool) -> bytes:
            q = quantizer.Quantizer(bytearray(fp32), rec)
            if not calibrate:
                return bytes(q.quantize(enable_progress_report=False).quantized_model)
            result = q.calibrate({key: [{name: calibration[i : i + 1]} for i in range(len(calibration))]})
            return bytes(q.quantize(result, enable_progress_report=False).quantized_model)

        add("aeq_static_w8a8.tflite", "ai-edge-quantizer static w8a8", lambda: aeq(recipe.static_wi8_ai8(), True))
        add("aeq_dynamic_wi8.tflite", "ai-edge-quantizer dynamic-range wi8",
            lambda: aeq(recipe.dynamic_wi8_afp32(), False))
    except ImportError:
        log.warning("ai-edge-quantizer not installed: its rows are left out")
    add("converter_int8_before.tflite", "converter's own int8 (a second full conversion, as before)",
        lambda: tflite_bytes(model, "int8", calibration))
    add("ort_s8s8_perchannel.onnx", "ORT static s8s8 per-channel QDQ",
        lambda: ort_static(fp32_onnx.read_bytes(), calibration))
    return rows


def run_model(name: str, work: Path, launches: int) -> tuple[list[dict], dict]:
    import numpy as np
    from tflite_bytes import breakdown as tflite_bytes_breakdown

    from edgeopt.bench.orchestrate import benchmark
    from edgeopt.bench.targets import load_target
    from edgeopt.compress import compress
    from edgeopt.core import metrics
    from edgeopt.core.artifact import gzip_bytes
    from edgeopt.data.loaders import load_dataset
    from edgeopt.models.load import load_model
    from edgeopt.recipe import Recipe
    from edgeopt.runtimes import evaluate
    from edgeopt.stages.convert import check_calibration, predict
    from edgeopt.stages.convert.tflite import strip_metadata, strip_strings

    data = load_dataset(name)
    model_path = REPO / "sample_models" / MODELS[name]
    out = work / f"{name}_compress"
    t0 = time.perf_counter()
    manifest = compress(model_path, data, out, Recipe.from_dict({"stages": [{"convert": CONVERT}]}))
    compress_seconds = time.perf_counter() - t0
    arts = {(a.format, a.precision): a for a in manifest.artifacts if a.role == "artifact"}
    rows = []
    for (fmt, precision), a in arts.items():
        r = {"model": name, "file": a.name, "format": fmt, "precision": precision,
             "variant": WHAT.get((fmt, precision), precision), "by": "edgeopt", "status": a.status}
        if a.status == "ok":
            par = a.info["parity"]
            r.update(convert_seconds=a.info.get("convert_seconds"), size_bytes=a.size_bytes,
                     gzip_bytes=gzip_bytes(out / a.path), agreement=par["agreement"], top1=par["accuracy"])
            if "onnx_int8" in a.info:
                r["onnx_int8_method"] = a.info["onnx_int8"]["method"]
        else:
            r["error"] = a.error
        rows.append(r)
    # the same int8 with one weight scale per tensor (convert: {per_channel: false}), and each int8 without its
    # names and the converter's metadata (convert's strip_strings / strip_metadata, applied to the files as convert
    # applies them): rows of their own, measured like the peers below
    pt_out = work / f"{name}_per_tensor"
    pt_manifest = compress(model_path, data, pt_out, Recipe.from_dict(
        {"stages": [{"convert": {"tflite": ["int8"], "onnx": [], "per_channel": False}}]}))
    per_tensor = next(a for a in pt_manifest.artifacts if a.role == "artifact")
    peer_dir = work / f"{name}_peers"
    peer_dir.mkdir()
    ours = {"int8_per_tensor.tflite": ((pt_out / per_tensor.path).read_bytes(),
                                       "full int8, per-tensor weights (per_channel: false)", per_tensor)}
    channel_bytes = (out / arts[("tflite", "int8")].path).read_bytes()
    ours["int8_per_channel_stripped.tflite"] = (strip_metadata(strip_strings(channel_bytes)),
                                                "full int8 + strip_strings + strip_metadata", None)
    ours["int8_per_tensor_stripped.tflite"] = (strip_metadata(strip_strings(ours["int8_per_tensor.tflite"][0])),
                                               "full int8, per-tensor + strip_strings + strip_metadata", None)
    breakdowns = {"int8 (per-channel)": tflite_bytes_breakdown(channel_bytes)}
    for file, (blob, label, _art) in ours.items():
        (peer_dir / file).write_bytes(blob)
        breakdowns[label.removeprefix("full ")] = tflite_bytes_breakdown(blob)
    # peers, from the same fp32 files and calibration samples
    source = load_model(model_path)
    source = getattr(source, "model", source)
    reference = predict(source, data.x_test)
    for file, (_blob, label, art) in ours.items():
        r = {"model": name, "file": file, "format": "tflite", "precision": "int8", "variant": label, "by": "edgeopt"}
        outputs = evaluate.outputs(peer_dir / file, "tflite", data.x_test)
        r.update(status="ok", size_bytes=(peer_dir / file).stat().st_size, gzip_bytes=gzip_bytes(peer_dir / file),
                 agreement=round(metrics.agreement(outputs, reference), 6),
                 top1=round(metrics.accuracy(outputs, data.y_test), 6))
        if art is not None:
            r["convert_seconds"] = art.info.get("convert_seconds")
        rows.append(r)
    calibration = check_calibration(data.representative(200))
    chosen = arts[("onnx", "int8")].info.get("onnx_int8", {}).get("method")
    for p in peers(source, data, out / arts[("tflite", "fp32")].path, out / arts[("onnx", "fp32")].path, peer_dir,
                   calibration):
        fmt = p["file"].rsplit(".", 1)[1]
        r = {"model": name, "file": p["file"], "format": fmt, "variant": p["label"], "by": "peer"}
        if "error" in p:
            rows.append({**r, "status": "failed", "error": p["error"]})
            continue
        if p["file"].startswith("ort_s8s8") and chosen == "ort_static":
            r["note"] = "the candidate edgeopt's ONNX int8 picked"
        path = peer_dir / p["file"]
        outputs = evaluate.outputs(path, fmt, data.x_test)
        r.update(status="ok", convert_seconds=p["convert_seconds"], size_bytes=path.stat().st_size,
                 gzip_bytes=gzip_bytes(path), agreement=round(metrics.agreement(outputs, reference), 6),
                 top1=round(metrics.accuracy(outputs, data.y_test), 6))
        rows.append(r)
    # one benchmark run: every file of this model side by side, 1 thread
    report = benchmark([out, *sorted(peer_dir.iterdir())], [load_target("x86-cpu")], data, None, threads=1,
                       launches=launches)
    by_file = {Path(m.artifact).name: m for m in report.results}
    contended = total = 0
    for r in rows:
        m = by_file.get(r["file"])
        if m is None or m.status != "ok" or m.latency_ms is None:
            r["p50_ms"] = None
            continue
        r["p50_ms"] = round(m.latency_ms.p50, 4)
        r["noise"] = m.latency_ms.noise
        r["precision_read"] = m.precision  # a bare file's: what the graph reader says it is
        r.setdefault("precision", m.precision)
        contended += sum(la.contended for la in m.launches)
        total += len(m.launches)
    src = by_file.get(model_path.name) or next((m for m in report.results if m.role == "source"), None)
    fp32 = next(r for r in rows if r["file"] == arts[("tflite", "fp32")].name)
    for r in rows:
        if r.get("gzip_bytes") and fp32.get("gzip_bytes"):
            r["gzip_vs_fp32_tflite"] = round(fp32["gzip_bytes"] / r["gzip_bytes"], 2)
    meta = {"compress_seconds": round(compress_seconds, 1), "test_samples": int(len(data.x_test)),
            "source_top1": round(float(np.mean(reference.argmax(1) == data.y_test)), 6),
            "source_p50_ms": round(src.latency_ms.p50, 4) if src is not None and src.latency_ms else None,
            "launches_contended": f"{contended}/{total}", "load_avg_after": round(os.getloadavg()[0], 2),
            "bytes": breakdowns}
    return rows, meta


def markdown(rows: list[dict], meta: dict, machine: str) -> str:
    lines = ["# Quantized variants: edgeopt and peers\n",
             f"`python benchmarks/quant_variants.py` — {machine}. **The machine was loaded** (2 cores shared by six "
             "sessions working in parallel): load average and contended launches per model below; compare p50s "
             "within a model's table (one interleaved benchmark run), not across runs.\n",
             "One fixed setting per variant (no choice made on the test split). Agreement/top-1: test split, vs the "
             "source model. Convert seconds: what building that file cost; edgeopt's first artifact to need the "
             "fp32 TFLite pays for its conversion (the fp32 row), later ones reuse it.\n"]
    for model, m in meta.items():
        lines.append(f"\n## {model}\n\nsource top-1 {m['source_top1']}, {m['test_samples']} test samples; "
                     f"load average after the run {m['load_avg_after']}, contended launches {m['launches_contended']}"
                     f"; whole compress {m['compress_seconds']} s\n")
        table = [[r["format"], r.get("precision", "—"), r["variant"], r.get("convert_seconds", "—"),
                  r.get("size_bytes", "—"), r.get("gzip_bytes", "—"), r.get("gzip_vs_fp32_tflite", "—"),
                  r.get("agreement", "—"), r.get("top1", "—"), r.get("p50_ms", "—"),
                  r.get("error") or r.get("note") or
                  (f"picked: {r['onnx_int8_method']}" if "onnx_int8_method" in r else "")]
                 for r in rows if r["model"] == model]
        lines.append(md_table(["format", "precision", "variant", "convert s", "bytes", "gzip", "gzip ×",
                               "agreement", "top-1", "p50 ms (1 thr)", "note"], table))
        lines.append(f"\nWhere the bytes of {model}'s int8 TFLite files go (`benchmarks/tflite_bytes.py`: parts "
                     "removed one after another, gzip -9 bytes each part saves):\n")
        parts = [p["part"] for p in next(iter(m["bytes"].values()))["parts"]]
        shares = [[part, *(next((f"{p['gzip_bytes']} ({p['bytes']})" for p in b["parts"] if p["part"] == part), "—")
                           for b in m["bytes"].values())] for part in parts]
        shares.append(["total gzip (file bytes)", *(f"{b['gzip_bytes']} ({b['file_bytes']})"
                                                     for b in m["bytes"].values())])
        lines.append(md_table(["part: gzip B (raw B)", *m["bytes"]], shares))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="digits,shapes")
    ap.add_argument("--launches", type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from _common import _cpu

    work = Path(tempfile.mkdtemp(prefix="quant_variants_"))
    all_rows, meta = [], {}
    try:
        for name in args.models.split(","):
            rows, meta[name] = run_model(name, work, args.launches)
            all_rows += rows
    finally:
        shutil.rmtree(work, ignore_errors=True)
    payload = {"loaded_machine": "2 cores shared by six parallel sessions: p50s are under contention",
               "settings_tried": "one per variant", "models": meta, "rows": all_rows}
    j, m = write_results("quant_variants", payload, markdown(all_rows, meta, _cpu()))
    print(Path(m).read_text())
    print(f"wrote {j} and {m}")


if __name__ == "__main__":
    main()
