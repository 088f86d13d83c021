"""Where a job runs. Every device has one verb, ``run(job) -> result`` (the runner's result dict; a job it
could not run is a failed or skipped result, never an exception), a ``probe`` that finds configuration
errors before anything is measured, and ``close``. Class attributes tell the orchestrator how to treat
its results. Every device launches its subprocesses through ``devices._proc.launch``."""

from __future__ import annotations

from typing import ClassVar, Literal, Protocol

from edgeopt.bench.plan import Job


class Device(Protocol):
    name: str
    shares_host: ClassVar[bool]  # burns this machine's CPU: runs one at a time with the other host devices
    timed: ClassVar[bool]  # False: outputs only; the latency reported is the target's cost-model estimate
    reports_environment: ClassVar[bool]  # its runner's environment() describes another machine: record it
    # whose x86 outputs its agreement is against: the source model on this device (inline), the source model
    # on this machine, or the same artifact on this machine (both filled in after every device has run)
    agreement: ClassVar[Literal["inline", "source", "same"]]

    def probe(self, runtimes: set[str]) -> dict:
        """Check the device can run ``runtimes``; what it found, for the target's environment record."""
        ...

    def run(self, job: Job) -> dict:
        ...

    def close(self) -> None:
        ...


def device_for(target) -> Device:
    kind = target.connection.kind
    if kind == "ssh":
        from edgeopt.bench.devices.ssh import SSHDevice

        return SSHDevice(target.name, target.connection)
    if kind == "qemu":
        from edgeopt.bench.devices.qemu import QemuDevice

        return QemuDevice(target)
    if target.device == "gpu":
        from edgeopt.bench.devices.gpu import GPUDevice

        return GPUDevice(target)
    from edgeopt.bench.devices.local import LocalDevice

    return LocalDevice(target)
