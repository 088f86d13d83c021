"""What the stage cache saves: wall time of `edgeopt compress` (each a fresh process) with a fresh cache, with
every model stage cached, with only the last model stage changed, and with --no-cache; the cache entries' sizes;
and whether the artifacts of those runs are byte-identical (sha256 of every file but manifest.json).

    python benchmarks/resume.py [--model sample_models/digits_cnn.keras] [--epochs 2]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, md_table, write_results

RECIPE = """train: {{epochs: {epochs}, batch_size: 64}}
stages:
  - prune: {{target_sparsity: 0.5, epochs: {epochs}}}
  - quantize: {{epochs: {qat_epochs}}}
  - convert: {{tflite: [fp32, int8], onnx: [fp32]}}
"""


def digests(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())
            if p.is_file() and p.name != "manifest.json"}


def compress(model: Path, recipe: Path, out: Path, cache: Path, *extra: str) -> tuple[float, str]:
    env = dict(os.environ, EDGEOPT_CACHE=str(cache), TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "edgeopt.cli", "compress", str(model), "--data", "digits",
                           "--recipe", str(recipe), "--out", str(out), *extra], capture_output=True, text=True,
                          env=env, timeout=1800)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"compress failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return seconds, "; ".join(ln.removeprefix("edgeopt: ") for ln in proc.stderr.splitlines()
                              if ln.startswith("edgeopt: stage ") and (": from the cache" in ln or ": ran (" in ln))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=REPO / "sample_models" / "digits_cnn.keras")
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgeopt-resume-") as tmp:
        tmp = Path(tmp)
        cache = tmp / "cache"
        recipe, changed = tmp / "recipe.yaml", tmp / "changed.yaml"
        recipe.write_text(RECIPE.format(epochs=args.epochs, qat_epochs=1))
        changed.write_text(RECIPE.format(epochs=args.epochs, qat_epochs=2))
        runs = [("fresh cache", recipe, tmp / "a", ()), ("every model stage cached", recipe, tmp / "b", ()),
                ("quantize changed (prune cached)", changed, tmp / "c", ()),
                ("--no-cache", recipe, tmp / "d", ("--no-cache",))]
        rows, results = [], []
        for label, rec, out, extra in runs:
            seconds, log = compress(args.model, rec, out, cache, *extra)
            same = None if label.startswith("quantize") else digests(out) == digests(tmp / "a")
            results.append({"run": label, "seconds": round(seconds, 2), "log": log,
                            "byte_identical_to_first": same})
            rows.append([label, f"{seconds:.1f}", "-" if same is None else ("yes" if same else "NO"), log])
        entries = [{"stage": (p / "entry.json").read_text().split('"stage": "')[1].split('"')[0],
                    "kb": round(sum(f.stat().st_size for f in p.iterdir()) / 1024, 1),
                    "files": sorted(f.name for f in p.iterdir())}
                   for p in sorted((cache / "stages").glob("*/*"))]
    payload = {"model": str(args.model.relative_to(REPO) if args.model.is_relative_to(REPO) else args.model),
               "recipe": RECIPE.format(epochs=args.epochs, qat_epochs=1), "runs": results, "entries": entries}
    md = ("# Stage cache: rerun times and sizes\n\n" + md_table(["run", "seconds", "same bytes as 1st", "log"], rows)
          + "\n" + md_table(["stage", "entry KB", "files"],
                            [[e["stage"], e["kb"], ", ".join(e["files"])] for e in entries]))
    j, _ = write_results("resume", payload, md)
    print(md)
    print(f"wrote {j}")


if __name__ == "__main__":
    main()
