"""Run the runner for one artifact in a fresh local subprocess, with a timeout, and turn what it
wrote into a Measurement. Raw samples are kept; statistics are derived from them."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeopt.core import metrics as measure
from edgeopt.core.artifact import Artifact
from edgeopt.core.report import Latency, Measurement

log = logging.getLogger(__name__)

POOL_SIZE = 64  # distinct inputs cycled through during timing


@dataclass(frozen=True)
class RunPlan:
    """How to time one artifact: from the target's run settings, overridable by CLI flags."""

    threads: int
    warmup: int
    min_runs: int
    min_seconds: float
    max_seconds: float
    max_runs: int
    timeout_s: float

    @classmethod
    def from_target(cls, target) -> RunPlan:
        r = target.run
        return cls(threads=target.threads, warmup=r.warmup, min_runs=r.min_runs, min_seconds=r.min_seconds,
                   max_seconds=r.max_seconds, max_runs=r.max_runs, timeout_s=r.timeout_s)


def write_inputs(folder: Path, x_eval: np.ndarray) -> Path:
    """The data file a runner reads: a pool of distinct samples for timing and the full eval split."""
    x_eval = np.ascontiguousarray(x_eval, dtype=np.float32)
    pool = x_eval[: min(POOL_SIZE, len(x_eval))]
    if not np.any(pool):
        raise ValueError("the timing inputs are all zeros; pass real data")
    path = folder / "inputs.npz"
    np.savez(path, x_pool=pool, x_eval=x_eval)
    return path


def job_for(artifact_path: Path, runtime: str, plan: RunPlan, options: dict, data: Path, out: Path,
            skip_timing: bool = False) -> dict:
    return {
        "artifact": str(artifact_path), "runtime": runtime, "threads": plan.threads, "options": options,
        "data": str(data), "warmup": plan.warmup, "min_runs": plan.min_runs, "min_seconds": plan.min_seconds,
        "max_seconds": plan.max_seconds, "max_runs": plan.max_runs, "out": str(out), "skip_timing": skip_timing,
    }


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"worker killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"worker killed by signal {-code}"
    return f"worker exited with code {code}"


def run_local(job: dict, timeout_s: float) -> dict:
    """Run the runner in a fresh interpreter; a crash or a hang becomes a failed result, never an exception."""
    out = Path(job["out"])
    out.mkdir(parents=True, exist_ok=True)
    job_path = out / "job.json"
    job_path.write_text(json.dumps(job))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore")
    try:
        proc = subprocess.run([sys.executable, "-m", "edgeopt.bench.ondevice.runner", str(job_path)], capture_output=True,
                              text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return {"status": "failed", "error": f"timed out after {timeout_s:g} s (raise run.timeout_s in the target)"}
    result_path = out / "result.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    tail = (proc.stderr or "").strip().splitlines()[-1:] or [""]
    return {"status": "failed", "error": f"{_describe_exit(proc.returncode)} {tail[0][:300]}".strip()}


def to_measurement(artifact: Artifact, path: Path, target_name: str, runtime: str, raw: dict, out: Path,
                   labels: np.ndarray, reference: np.ndarray | None, threads: int) -> tuple[Measurement, np.ndarray | None]:
    m = Measurement(artifact=artifact.name, format=artifact.format, precision=artifact.precision, target=target_name,
                    runtime=runtime, status=raw.get("status", "failed"), error=raw.get("error"), path=str(path),
                    role=artifact.role, stages=list(artifact.stages), threads=threads)
    m.size_bytes, m.gzip_bytes, m.params, m.nonzero_params = measure.file_facts(path, artifact.format)
    if raw.get("params") is not None:
        m.params, m.nonzero_params = raw["params"], raw.get("nonzero_params")
    m.init_ms, m.first_ms, m.peak_rss_mb = raw.get("init_ms"), raw.get("first_ms"), raw.get("peak_rss_mb")
    samples = raw.get("samples_ms") or []
    if samples:
        m.samples_ms = [round(s, 5) for s in samples]
        m.latency_ms = Latency.from_samples(samples)
    outputs = None
    if m.status == "ok" and raw.get("outputs"):
        outputs = np.load(out / raw["outputs"])
        if len(outputs) != len(labels):
            m.status, m.error = "failed", f"runner returned {len(outputs)} outputs for {len(labels)} samples"
            return m, None
        m.accuracy = measure.accuracy(outputs, labels)
        if reference is not None and reference.shape == outputs.shape:
            m.agreement = measure.agreement(outputs, reference)
            m.max_abs_diff = measure.max_abs_diff(outputs, reference)
    return m, outputs
