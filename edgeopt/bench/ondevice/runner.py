"""The on-device benchmark runner: one artifact, one runtime, one process; also the environment probe.

Needs only the standard library, numpy and a runtime package (ai_edge_litert / tflite_runtime /
onnxruntime), so it can be copied to a Raspberry Pi next to ``litert.py`` and ``onnxrt.py`` and run
with the device's Python. ``python runner.py job.json`` writes ``result.json`` (and ``outputs.npy``)
into the job's ``out`` folder and never raises: failures become ``status: failed``. The job's fields are
``edgeopt.bench.plan.Job``'s; this file assumes no defaults of its own.

``python runner.py --probe SPEC`` prints what this machine offers as one JSON line: ``environment()``, the
versions of the packages SPEC names (``{"packages": {import name: distribution}}``, found without importing
them) and, for each runtime file SPEC names (``"runtimes": [...]``), its version and devices (loaded for
real: a smoke test); ``"gpu": true`` adds ``nvidia-smi -L``. It works without numpy (and says so), and
also as ``python - --probe SPEC`` with this file on stdin.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import resource
import sys
import time
import traceback

try:
    import numpy as np
except ImportError:  # only the probe can run without numpy, and it reports that numpy is missing
    np = None  # type: ignore[assignment]


def runtime_module(file: str):
    """A runtime by its file name: from edgeopt where it is installed, else the copy shipped beside this file."""
    try:
        return importlib.import_module(f"edgeopt.runtimes.{file}")
    except ModuleNotFoundError as e:
        if not (e.name or "").startswith("edgeopt"):
            raise
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    return importlib.import_module(file)


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def environment(runtime_version: str | None = None) -> dict:
    cpu = None
    info = _read("/proc/cpuinfo") or ""
    for line in info.splitlines():
        key = line.split(":")[0].strip().lower()
        if key in ("model name", "hardware", "model") and ":" in line:
            cpu = line.split(":", 1)[1].strip()
            if key == "model name":
                break
    temp = _read("/sys/class/thermal/thermal_zone0/temp")
    u = platform.uname()
    return {
        "hostname": u.node,
        "system": f"{u.system} {u.release}",
        "machine": u.machine,
        "cpu": cpu or platform.processor() or u.machine,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__ if np is not None else None,
        "runtime_version": runtime_version,
        "cpu_governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "temperature_c": round(int(temp) / 1000, 1) if temp and temp.lstrip("-").isdigit() else None,
    }


def peak_rss_mb() -> float:
    # VmHWM belongs to this process image; ru_maxrss survives exec and can report the parent's peak.
    for line in (_read("/proc/self/status") or "").splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / 1024 if sys.platform != "darwin" else kb / 2**20, 1)


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def _busy_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies of the whole machine from /proc/stat, or None where there is none."""
    line = (_read("/proc/stat") or "").split("\n", 1)[0].split()
    if not line or line[0] != "cpu":
        return None
    vals = [int(v) for v in line[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return sum(vals) - idle, sum(vals)


def time_runs(bind, invoke, pool: list, warmup: int, min_runs: int, min_seconds: float, max_seconds: float,
              max_runs: int = 5000, stats: dict | None = None) -> list:
    """Single-sample latencies (ms) until both min_runs and min_seconds are reached, capped by max_seconds.

    ``max_runs`` caps how many samples are KEPT, never how long timing lasts: past it, timing goes on until
    min_seconds and the kept samples are a uniform random subset (reservoir sampling, seeded) of every timed
    run, so a 10 us model is timed for min_seconds without keeping hundreds of thousands of samples.
    ``max_seconds`` is the one hard stop (a slow or hung model), below min_seconds too when set lower.
    ``stats`` (a dict) receives the timed runs, the timed seconds, and the worker's CPU time / wall time and
    the rest of the machine's busy cores during timing (how contended the launch was).

    Inputs cycle through ``pool`` so no run sees the same cached sample twice in a row; ``bind`` sets each
    one outside the timed region and only ``invoke`` (the runtime's inference call) is timed.
    """
    import random

    n = len(pool)
    for i in range(warmup):
        bind(pool[i % n])
        invoke()
    rng = random.Random(0)
    samples: list = []
    clock = time.perf_counter_ns
    cpu0, busy0 = _cpu_s(), _busy_jiffies()
    start = clock()
    i = 0
    while True:
        elapsed_s = (clock() - start) / 1e9
        done = i >= min_runs and elapsed_s >= min_seconds
        if done or elapsed_s >= max_seconds:
            break
        bind(pool[i % n])
        t0 = clock()
        invoke()
        ms = (clock() - t0) / 1e6
        if len(samples) < max_runs:
            samples.append(ms)
        else:
            j = rng.randrange(i + 1)
            if j < max_runs:
                samples[j] = ms
        i += 1
    wall_s = (clock() - start) / 1e9
    if stats is not None:
        cpu_s = _cpu_s() - cpu0
        stats.update(runs=i, timed_s=round(wall_s, 4), cpu_ratio=round(cpu_s / wall_s, 3) if wall_s > 0 else None,
                     load_1m=round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None, other_cpu=None)
        busy1 = _busy_jiffies()
        if busy0 and busy1 and busy1[1] > busy0[1]:
            cores = os.cpu_count() or 1
            busy_cores = (busy1[0] - busy0[0]) / (busy1[1] - busy0[1]) * cores
            stats["other_cpu"] = round(max(0.0, busy_cores - cpu_s / wall_s), 2) if wall_s > 0 else None
    return samples


def _inputs(data, key: str):
    """``key`` of inputs.npz: one array, or — for a model with several inputs — a dict of ``key.<input name>``."""
    if key in data.files:
        return data[key]
    named = {f.split(".", 1)[1]: data[f] for f in data.files if f.startswith(key + ".")}
    return named or None


def _rows(x, start: int, stop: int):
    return {k: v[start:stop] for k, v in x.items()} if isinstance(x, dict) else x[start:stop]


def _n(x) -> int:
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def run_job(job: dict) -> dict:
    """One launch: load + one batch-1 inference first (``peak_rss_mb``: the worker's VmHWM before anything
    else touched memory), then timing, then, when ``evaluate``, the eval split (``eval_peak_rss_mb``)."""
    out_dir = job["out"]
    os.makedirs(out_dir, exist_ok=True)
    result: dict = {"status": "ok", "error": None}
    try:
        mod = runtime_module(job["module"])
        rt_version = mod.version()  # imports the runtime package outside the timed init
        result["environment"] = environment(rt_version)
        data = np.load(job["data"])  # lazy: each array is read when first used
        x_one = _inputs(data, "x_one")
        x_one = _rows(_inputs(data, "x_pool"), 0, 1) if x_one is None else x_one
        t0 = time.perf_counter()
        sess = mod.load(job["artifact"], threads=job["threads"], options=job["options"])
        result["init_ms"] = (time.perf_counter() - t0) * 1e3
        for attr in ("params", "nonzero_params", "providers"):
            if hasattr(sess, attr):
                result[attr] = getattr(sess, attr)
        first = sess.prepare(_rows(x_one, 0, 1))
        t0 = time.perf_counter()
        sess.invoke_prepared(first)
        result["first_ms"] = (time.perf_counter() - t0) * 1e3
        result["peak_rss_mb"] = peak_rss_mb()  # load + one inference: what a device needs to run the model
        if not job["skip_timing"]:
            x_pool = _inputs(data, "x_pool")
            pool = [sess.prepare(_rows(x_pool, i, i + 1)) for i in range(_n(x_pool))]
            stats: dict = {}
            result["samples_ms"] = time_runs(sess.bind, sess.invoke, pool, int(job["warmup"]), int(job["min_runs"]),
                                             float(job["min_seconds"]), float(job["max_seconds"]),
                                             int(job["max_runs"]), stats)
            result["timing"] = stats
        if job.get("evaluate", True):
            outputs = sess.run(_inputs(data, "x_eval"))
            if not np.all(np.isfinite(outputs)):
                raise FloatingPointError("the model produced NaN or Inf outputs on the test split")
            np.save(os.path.join(out_dir, "outputs.npy"), outputs.astype(np.float32))
            result["outputs"] = "outputs.npy"
            result["eval_peak_rss_mb"] = peak_rss_mb()
    except BaseException as e:  # noqa: BLE001 — the host needs a result, whatever happened
        result["status"] = "failed"
        result["error"] = f"{type(e).__name__}: {e}".splitlines()[0][:500]
        result["traceback"] = traceback.format_exc()[-4000:]
    result.setdefault("peak_rss_mb", peak_rss_mb())
    tmp = os.path.join(out_dir, ".result.json.tmp")
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, os.path.join(out_dir, "result.json"))
    return result


def probe(spec: dict) -> dict:
    """What this machine offers (see the module docstring); never raises for a missing package."""
    from importlib import metadata, util

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except Exception:  # noqa: BLE001 — found by import name, installed under another distribution name
            return "unknown"

    info = environment()
    packages = {"numpy": "numpy", **spec.get("packages", {})}
    info["modules"] = {mod: version(dist) if util.find_spec(mod) is not None else None
                       for mod, dist in packages.items()}
    runtimes = {}
    for file in spec.get("runtimes", []):
        try:
            mod = runtime_module(file)
            runtimes[file] = {"version": mod.version(),
                              "devices": mod.devices() if hasattr(mod, "devices") else []}
        except Exception as e:  # noqa: BLE001 — the caller decides what a runtime that does not load means
            runtimes[file] = {"error": f"{type(e).__name__}: {e}".splitlines()[0][:200]}
    info["runtimes"] = runtimes
    if spec.get("gpu"):
        import shutil
        import subprocess

        smi = shutil.which("nvidia-smi")
        info["nvidia_smi"] = subprocess.run([smi, "-L"], capture_output=True, text=True,
                                            timeout=60).stdout.strip() if smi else ""
    return info


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] == "--probe":
        print(json.dumps(probe(json.loads(argv[2]))))
        return 0
    if len(argv) != 2:
        sys.stderr.write("usage: runner.py job.json | runner.py --probe SPEC\n")
        return 2
    with open(argv[1]) as f:
        job = json.load(f)
    return 0 if run_job(job)["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
