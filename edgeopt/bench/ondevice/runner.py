"""The on-device benchmark runner: one artifact, one runtime, one process.

Needs only the standard library, numpy and a runtime package (ai_edge_litert / tflite_runtime /
onnxruntime), so it can be copied to a Raspberry Pi next to ``litert.py`` and ``onnxrt.py`` and run
with the device's Python. Usage: ``python runner.py job.json``; it writes ``result.json`` (and
``outputs.npy``) into the job's ``out`` folder and never raises: failures become ``status: failed``.

Job keys: artifact, runtime, threads, options, data (an .npz with ``x_pool`` for timing and ``x_eval``
for accuracy), warmup, min_runs, min_seconds, max_seconds, max_runs, out, skip_timing.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
import traceback

import numpy as np

try:
    from edgeopt.runtimes import litert, onnxrt
except ImportError:  # shipped stand-alone to a device: the runtime files sit next to this one
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import litert  # type: ignore[no-redef]
    import onnxrt  # type: ignore[no-redef]


def runtime_module(name: str):
    if name == "litert":
        return litert
    if name == "onnxruntime":
        return onnxrt
    if name == "tf":
        from edgeopt.runtimes import tf

        return tf
    raise ValueError(f"unknown runtime {name!r}")


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
        "numpy": np.__version__,
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


def time_runs(bind, invoke, pool: list, warmup: int, min_runs: int, min_seconds: float, max_seconds: float,
              max_runs: int = 5000) -> list:
    """Single-sample latencies (ms) until both min_runs and min_seconds are reached, capped by max_seconds
    and max_runs (a 10 µs model would otherwise keep hundreds of thousands of samples).

    Inputs cycle through ``pool`` so no run sees the same cached sample twice in a row; ``bind`` sets each
    one outside the timed region and only ``invoke`` (the runtime's inference call) is timed.
    """
    n = len(pool)
    for i in range(warmup):
        bind(pool[i % n])
        invoke()
    samples = []
    clock = time.perf_counter_ns
    start = clock()
    i = 0
    while True:
        elapsed_s = (clock() - start) / 1e9
        done = len(samples) >= min_runs and elapsed_s >= min_seconds
        if done or elapsed_s >= max_seconds or len(samples) >= max_runs:
            break
        bind(pool[i % n])
        t0 = clock()
        invoke()
        samples.append((clock() - t0) / 1e6)
        i += 1
    return samples


def run_job(job: dict) -> dict:
    out_dir = job["out"]
    os.makedirs(out_dir, exist_ok=True)
    result: dict = {"status": "ok", "error": None}
    try:
        mod = runtime_module(job["runtime"])
        rt_version = mod.version()  # imports the runtime package outside the timed init
        result["environment"] = environment(rt_version)
        data = np.load(job["data"])
        x_pool, x_eval = data["x_pool"], data["x_eval"]
        t0 = time.perf_counter()
        sess = mod.load(job["artifact"], threads=job.get("threads"), options=job.get("options") or {})
        result["init_ms"] = (time.perf_counter() - t0) * 1e3
        for attr in ("params", "nonzero_params", "providers"):
            if hasattr(sess, attr):
                result[attr] = getattr(sess, attr)
        pool = [sess.prepare(x_pool[i : i + 1]) for i in range(len(x_pool))]
        t0 = time.perf_counter()
        sess.invoke_prepared(pool[0])
        result["first_ms"] = (time.perf_counter() - t0) * 1e3
        if not job.get("skip_timing"):
            result["samples_ms"] = time_runs(
                sess.bind, sess.invoke, pool, int(job.get("warmup", 10)), int(job.get("min_runs", 50)),
                float(job.get("min_seconds", 1.0)), float(job.get("max_seconds", 30.0)),
                int(job.get("max_runs", 5000)),
            )
        outputs = sess.run(x_eval)
        if not np.all(np.isfinite(outputs)):
            raise FloatingPointError("the model produced NaN or Inf outputs on the test split")
        np.save(os.path.join(out_dir, "outputs.npy"), outputs.astype(np.float32))
        result["outputs"] = "outputs.npy"
    except BaseException as e:  # noqa: BLE001 — the host needs a result, whatever happened
        result["status"] = "failed"
        result["error"] = f"{type(e).__name__}: {e}".splitlines()[0][:500]
        result["traceback"] = traceback.format_exc()[-4000:]
    result["peak_rss_mb"] = peak_rss_mb()
    tmp = os.path.join(out_dir, ".result.json.tmp")
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, os.path.join(out_dir, "result.json"))
    return result


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: runner.py job.json\n")
        return 2
    with open(argv[1]) as f:
        job = json.load(f)
    return 0 if run_job(job)["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
