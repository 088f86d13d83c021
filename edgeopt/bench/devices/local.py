"""This machine's CPU: the runner for one job in a fresh interpreter, with a timeout."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from edgeopt.bench.devices._proc import launch
from edgeopt.bench.plan import Job

log = logging.getLogger(__name__)


def default_memory_mb() -> int:
    """Three quarters of this machine's RAM: a runaway model fails its own result instead of the machine."""
    import psutil

    return int(psutil.virtual_memory().total * 0.75 / 2**20)


def run_local(job: Job) -> dict:
    """Run the runner in a fresh interpreter; a crash or a hang becomes a failed result, never an exception."""
    out = Path(job.out)
    out.mkdir(parents=True, exist_ok=True)
    job_path = job.write(out / "job.json")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore")
    cap = job.max_memory_mb or default_memory_mb()
    done = launch([sys.executable, "-m", "edgeopt.bench.ondevice.runner", str(job_path)], job.timeout_s, env=env,
                  memory_mb=cap)
    if done.out_of_memory:
        return {"status": "failed", "error": f"out of memory (cap {cap} MB; raise run.max_memory_mb in the target)"}
    if done.timed_out:
        return {"status": "failed", "error": f"timed out after {job.timeout_s:g} s (raise run.timeout_s in the target)"}
    result_path = out / "result.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    return {"status": "failed", "error": f"worker {done.how_it_ended()} {done.last_line()}".strip()}


class LocalDevice:
    """This machine's CPU, measured directly."""

    shares_host = True
    timed = True
    reports_environment = False
    agreement = "inline"

    def __init__(self, target) -> None:
        self.name = target.name

    def probe(self, runtimes: set[str]) -> dict:
        return {}

    def run(self, job: Job) -> dict:
        return run_local(job)

    def close(self) -> None:
        pass
