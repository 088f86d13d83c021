"""Does the gate cry wolf on a noisy machine, and does it still catch a real slowdown?

Artifacts: the demo's int8 .tflite and fp32 .onnx (the bundled digits teacher, compressed here) and the
bundled shapes MobileNetV2 as fp32 .tflite. The "slower" artifact is that MobileNetV2 with extra work inside
it (a stack of small convolutions on the input, summed into the output with a tiny weight), its size chosen
by measuring so its bare p50 is about 1.3x the original's; it carries the original's file name, so the gate
pairs it with the original. Each pair of the schedule:

  1. quiet run of the originals                          -> the stored baseline
  2. the same originals with a CPU burner beside them     -> gate vs 1: false alarms (stored, burner)
  3. quiet run with the slower MobileNetV2                -> gate vs 1: caught? (stored, quiet)
  4. A/B run, slower vs originals, quiet                  -> gate: caught? + false alarms on the twins
  5. A/B run, slower vs originals, burner beside it       -> gate: caught? + false alarms on the twins

The burner is one process spinning on one core, with its own deadline, started and killed (by PID) here.
The issue asks for the two runs of a pair to be >= 10 minutes apart; --gap-s sets the pause between pairs
(default 0: the runs of a pair follow each other). With a gap, two more modes judge every later pair against
the FIRST pair's quiet run, stored >= gap seconds earlier: the unchanged artifacts (false alarms) and the slower
MobileNetV2 (caught?); those results go to gate_noise_gap.{json,md}, beside the back-to-back gate_noise ones.

    python benchmarks/gate_noise.py [--pairs 5] [--launches 5] [--min-seconds 0.3] [--gap-s 0] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, md_table, write_results

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
SAMPLES = REPO / "sample_models"


def bare_p50_ms(path: Path, x, runs: int = 400) -> float:
    import statistics

    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=2)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    for _ in range(30):
        it.set_tensor(inp["index"], x)
        it.invoke()
    out = []
    for _ in range(runs):
        it.set_tensor(inp["index"], x)
        t0 = time.perf_counter_ns()
        it.invoke()
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return statistics.median(out)


def slower_model(model, layers: int):
    import tf_keras as keras

    inp = keras.Input(model.input_shape[1:])
    extra = inp
    for _ in range(layers):
        extra = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(extra)
    work = keras.layers.GlobalAveragePooling2D()(extra)
    work = keras.layers.Dense(model.output_shape[-1])(work)
    out = keras.layers.Add()([model(inp), keras.layers.Rescaling(1e-6)(work)])
    return keras.Model(inp, out)


def build(folder: Path, shapes) -> dict:
    """The MobileNetV2 fp32 .tflite, its slower twin (same file name, another folder), and the demo artifacts."""
    from edgeopt.compress import compress
    from edgeopt.data.loaders import load_dataset
    from edgeopt.models.load import load_model
    from edgeopt.stages.convert.tflite import tflite_bytes

    base, slow = folder / "base", folder / "slow"
    base.mkdir()
    slow.mkdir()
    name = "shapes_mobilenetv2_fp32.tflite"
    model = load_model(SAMPLES / "shapes_mobilenetv2.keras")
    (base / name).write_bytes(tflite_bytes(model, "fp32"))
    x = shapes.x_test[:1].astype("float32")
    p0 = bare_p50_ms(base / name, x)
    layers, ratio = 2, None
    for _ in range(3):  # two or three conversions: the extra work's cost is about linear in its layers
        (slow / name).write_bytes(tflite_bytes(slower_model(model, layers), "fp32"))
        ratio = bare_p50_ms(slow / name, x) / p0
        if abs(ratio - 1.3) < 0.06:
            break
        per_layer = max((ratio - 1) / layers, 1e-3)
        layers = max(1, round(0.3 / per_layer))
    digits = load_dataset("digits")
    manifest = compress(SAMPLES / "digits_cnn.keras", digits, folder / "demo")
    demo = [folder / "demo" / a.path for a in manifest.artifacts
            if (a.format, a.precision) in (("tflite", "int8"), ("onnx", "fp32"))]
    return {"base": base / name, "slow": slow / name, "demo": demo, "digits": digits,
            "built": {"bare_p50_ms": round(p0, 4), "slow_ratio": round(ratio, 3), "extra_conv_layers": layers}}


class Burner:
    """One process spinning on one core until its own deadline; stopped by PID."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Burner:
        code = f"import time\nt = time.time() + {self.seconds}\nwhile time.time() < t:\n    pass\n"
        self.proc = subprocess.Popen([sys.executable, "-c", code])
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()


def bench(arts, against, data, settings):
    from edgeopt.bench.orchestrate import benchmark
    from edgeopt.bench.targets import load_target

    return benchmark(arts, [load_target("x86-cpu")], data, None, against=against, **settings)


def merged(*reports):
    from edgeopt.core.report import Report

    return Report(environment=reports[0].environment, results=[m for r in reports for m in r.results])


def judge(report, baseline=None) -> dict:
    """Per artifact: the p50 comparison's verdict (regressed | inconclusive | unchanged | improved | ...)."""
    from edgeopt.verdict.gate import check

    v = check(report, baseline=baseline)
    return {c.artifact: {"verdict": c.verdict, "change": round(c.change, 4) if c.change is not None else None,
                         "noise": round(c.noise, 4) if c.noise is not None else None}
            for c in v.comparisons if c.metric == "p50_ms"}


def contended(*reports) -> str:
    las = [la for r in reports for m in r.results for la in m.launches]
    return f"{sum(la.contended for la in las)}/{len(las)}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--launches", type=int, default=5)
    ap.add_argument("--min-seconds", type=float, default=0.3)
    ap.add_argument("--gap-s", type=float, default=0.0, help="pause between pairs")
    ap.add_argument("--threads", type=int, default=None, help="worker threads (default: the x86-cpu target's)")
    ap.add_argument("--machine", default="", help="what else ran on the machine meanwhile (written to the results)")
    args = ap.parse_args()
    from edgeopt.data.loaders import load_dataset

    settings = {"launches": args.launches, "min_seconds": args.min_seconds, "warmup": 10, "min_runs": 20,
                "threads": args.threads}
    shapes = load_dataset("shapes")
    t_start = time.time()
    with tempfile.TemporaryDirectory(prefix="edgeopt-gate-noise-") as tmp:
        built = build(Path(tmp), shapes)
        digits, base, slow, demo = built["digits"], built["base"], built["slow"], built["demo"]
        print(f"built: {built['built']}", flush=True)
        burn_s = 600.0  # the burner's own deadline: it never outlives a run even if this script is killed
        pairs, first_quiet = [], None
        for i in range(args.pairs):
            if i and args.gap_s:
                time.sleep(args.gap_s)
            t0 = time.time()
            quiet = merged(bench(demo, None, digits, settings), bench([base], None, shapes, settings))
            with Burner(burn_s):
                busy = merged(bench(demo, None, digits, settings), bench([base], None, shapes, settings))
            slower = bench([slow], None, shapes, settings)
            ab_quiet = merged(bench(demo, demo, digits, settings), bench([slow], [base], shapes, settings))
            with Burner(burn_s):
                ab_busy = merged(bench(demo, demo, digits, settings), bench([slow], [base], shapes, settings))
            row = {"pair": i + 1, "seconds": round(time.time() - t0, 1),
                   "stored_burner": judge(busy, quiet), "stored_slower_quiet": judge(slower, quiet),
                   "ab_quiet": judge(ab_quiet), "ab_burner": judge(ab_busy),
                   "contended_launches": {"quiet": contended(quiet), "burner": contended(busy),
                                          "ab_quiet": contended(ab_quiet), "ab_burner": contended(ab_busy)}}
            if first_quiet is None:
                first_quiet = quiet
            else:  # the first pair's quiet run as the stored baseline, i x (gap + a pair's run time) older
                row.update(stored_later=judge(quiet, first_quiet), stored_slower_later=judge(slower, first_quiet),
                           baseline_age_s=round(time.time() - t_start, 1))
            pairs.append(row)
            print(row, flush=True)
    slow_name = base.name
    counts = tally(pairs, slow_name)
    payload = {"schedule": {"pairs": args.pairs, "launches": args.launches, "min_seconds": args.min_seconds,
                            "threads": args.threads or "x86-cpu default",
                            "gap_between_pairs_s": args.gap_s, "total_s": round(time.time() - t_start, 1),
                            "note": ("runs of a pair follow each other; the stored_later modes compare each later "
                                     "pair's runs with the first pair's quiet run, >= gap_between_pairs_s older"
                                     if args.gap_s else "runs of a pair follow each other (not >= 10 minutes apart)"),
                            "machine": args.machine},
               "built": built["built"], "counts": counts, "pairs": pairs}
    rows = [[k, v["false_alarms"], v["inconclusive_unchanged"], v.get("caught", "-"), v.get("inconclusive_slow", "-"),
             v["comparisons"]] for k, v in counts.items()]
    md = ("# gate noise\n\n" + md_table(["mode", "false alarms", "inconclusive (same)", "caught (slower)",
                                          "inconclusive (slower)", "comparisons"], rows))
    j, m = write_results("gate_noise_gap" if args.gap_s else "gate_noise", payload, md)
    print(md)
    print(f"wrote {j} and {m}")


def tally(pairs: list[dict], slow_name: str) -> dict:
    out = {}
    for mode in ("stored_burner", "stored_slower_quiet", "ab_quiet", "ab_burner", "stored_later",
                 "stored_slower_later"):
        if not any(mode in p for p in pairs):
            continue
        c = {"false_alarms": 0, "inconclusive_unchanged": 0, "comparisons": 0}
        if mode not in ("stored_burner", "stored_later"):
            c.update(caught=0, inconclusive_slow=0)
        for p in pairs:
            for art, r in p.get(mode, {}).items():
                c["comparisons"] += 1
                if art == slow_name and "caught" in c:
                    c["caught"] += r["verdict"] == "regressed"
                    c["inconclusive_slow"] += r["verdict"] == "inconclusive"
                else:
                    c["false_alarms"] += r["verdict"] == "regressed"
                    c["inconclusive_unchanged"] += r["verdict"] == "inconclusive"
        out[mode] = c
    return out


if __name__ == "__main__":
    main()
