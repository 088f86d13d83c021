"""Does the parent's memory grow with the number of artifacts it benchmarks? Peak RSS of the `benchmark()` process
for 5, 25 and 50 artifacts in one report (each count in a fresh interpreter; the workers are separate processes and
not counted). Goal: flat beyond the report itself (a few KB per result).

    python benchmarks/parent_rss.py [--counts 5 25 50]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import REPO, md_table, write_results

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CHILD = """
import json, resource, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from edgeopt.bench.orchestrate import benchmark
from edgeopt.bench.targets import load_target
from edgeopt.data.loaders import load_dataset
paths = sorted(Path({folder!r}).glob("*.tflite"))[:{n}]
report = benchmark(paths, [load_target("x86-cpu")], load_dataset("digits"), Path({folder!r}) / "r{n}.json",
                   warmup=1, min_runs=5, min_seconds=0, max_seconds=0.2, max_runs=20)
print(json.dumps({{"n": len(report.results), "ok": sum(m.status == "ok" for m in report.results),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "report_kb": (Path({folder!r}) / "r{n}.json").stat().st_size / 1024}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[5, 25, 50])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgeopt-rss-") as tmp:
        folder = Path(tmp)
        recipe = folder / "r.yaml"
        recipe.write_text("stages:\n  - convert: {tflite: [fp32], onnx: []}\n")
        subprocess.run([sys.executable, "-m", "edgeopt.cli", "-q", "compress", str(REPO / "sample_models" /
                        "digits_cnn.keras"), "--data", "digits", "--recipe", str(recipe), "--out", str(folder / "c")],
                       check=True, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True)
        src = next((folder / "c").glob("*.tflite"))
        for i in range(max(args.counts)):
            shutil.copy(src, folder / f"copy_{i:03d}.tflite")
        rows = []
        for n in args.counts:
            done = subprocess.run([sys.executable, "-c", CHILD.format(repo=str(REPO), folder=str(folder), n=n)],
                                  check=True, capture_output=True, text=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    table = md_table(["artifacts", "ok", "parent peak RSS MB", "report KB"],
                     [[r["n"], r["ok"], f"{r['peak_rss_mb']:.0f}", f"{r['report_kb']:.0f}"] for r in rows])
    growth = rows[-1]["peak_rss_mb"] - rows[0]["peak_rss_mb"]
    md = (f"# Parent peak RSS vs artifacts in one report\n\n{table}\n"
          f"Growth from {rows[0]['n']} to {rows[-1]['n']} artifacts: {growth:+.0f} MB.\n")
    write_results("parent_rss", {"rows": rows, "growth_mb": growth}, md)
    print(md)


if __name__ == "__main__":
    main()
