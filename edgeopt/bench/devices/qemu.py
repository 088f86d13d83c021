"""aarch64 under qemu-user: the on-device runner, run in the sysroot (``devices/sysroot.py``) for one job.

Emulated wall time is not device time: callers report the runner's outputs (agreement with x86) and an
estimated latency, never what this measured.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgeopt.bench.devices import sysroot
from edgeopt.bench.devices._proc import launch
from edgeopt.bench.plan import Job

NOTE = "outputs from aarch64 kernels under qemu-user; latency is the rpi4 cost-model estimate"


def run_emulated(job: Job, root: Path, qemu_cpu: str | None = None) -> dict:
    """Run the shipped runner under qemu for one job; like ``local.run_local``, never raises.

    qemu-user sees the host's files, so the job's paths are used as they are. Adds ``emulated_wall_s``.
    """
    from edgeopt.bench.ondevice import ship_runner

    out = Path(job.out)
    out.mkdir(parents=True, exist_ok=True)
    ship = ship_runner(out / "ship")
    job_path = job.write(out / "job.json")
    proc = launch([*sysroot.python_command(root, qemu_cpu), str(ship / "runner.py"), str(job_path)], job.timeout_s,
                  env=sysroot.environment(root), cwd=ship)
    if proc.timed_out:
        return {"status": "failed", "error": f"timed out under emulation after {job.timeout_s:g} s "
                "(raise run.timeout_s in the target)"}
    result_path = out / "result.json"
    if result_path.is_file():
        raw = json.loads(result_path.read_text())
    else:
        tail = proc.last_line(skip="cpuid_info")  # qemu's note about the host CPU, not the runner's error
        raw = {"status": "failed", "error": f"emulated runner {proc.how_it_ended()} {tail}".strip()}
    raw["emulated_wall_s"] = round(proc.wall_s, 2)
    return raw


class QemuDevice:
    """The target's ISA under qemu-user on this machine: outputs only, never times."""

    shares_host = True
    timed = False
    reports_environment = True
    agreement = "same"

    def __init__(self, target) -> None:
        self.name = target.name
        self.root = sysroot.sysroot_dir(target)
        self.qemu_cpu = target.connection.qemu_cpu

    def probe(self, runtimes: set[str]) -> dict:
        info = sysroot.require(self.root)  # UsageError naming the set-up command
        self.root = Path(info["root"])
        return {"sysroot": {k: info.get(k) for k in ("qemu", "suite", "device")}, "note": NOTE}

    def run(self, job: Job) -> dict:
        raw = run_emulated(job, self.root, self.qemu_cpu)
        raw["record"] = {"emulation": {"wall_s": raw.get("emulated_wall_s"), "init_ms": raw.get("init_ms"),
                                       "first_ms": raw.get("first_ms")}}
        return raw

    def close(self) -> None:
        pass
