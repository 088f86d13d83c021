"""Can a target be benchmarked from here right now? The probe behind `edgeopt targets`."""

from __future__ import annotations

import platform

from edgeopt.bench.devices.gpu import gpu_probe, gpu_skip_reason
from edgeopt.errors import UsageError


def reachability(target, timeout_s: float = 5) -> tuple[str, str]:
    """("yes" | "no", why) for `edgeopt targets`: can this target be benchmarked from here right now?"""
    from edgeopt.bench.devices import sysroot
    from edgeopt.bench.devices.ssh import SSHDevice
    from edgeopt.runtimes import standalone

    kind = target.connection.kind
    if kind == "qemu":
        info = sysroot.ready_info(sysroot.sysroot_dir(target))
        if info is None:
            return "no", f"sysroot not built: run `edgeopt targets setup {target.name}`"
        qemu = " ".join(str(info.get("qemu", "qemu")).split()[:3:2])  # "qemu-aarch64 10.0.13"
        return "yes", f"emulated by {qemu}; latency estimated"
    if kind == "ssh":
        conn = target.connection.model_copy(update={"connect_timeout_s": min(timeout_s, target.connection.connect_timeout_s)})
        try:
            info = SSHDevice(target.name, conn).check()
        except UsageError as e:
            return "no", e.problem.removeprefix(f"target {target.name}: ")
        have = [p for rt in standalone() if (p := rt.provider(info["modules"]))]  # what the runner would load
        return "yes", f"{info['machine']}, Python {info['python']}, {', '.join(have) or 'no runtime'}"
    if target.device == "gpu":
        probe = gpu_probe()
        reason = gpu_skip_reason(probe, "onnxruntime")
        return ("no", reason) if reason else ("yes", (probe.get("nvidia_smi") or "GPU").splitlines()[0][:80])
    if target.arch != platform.machine():
        return "no", f"this machine is {platform.machine()}, the target is {target.arch}"
    return "yes", "this machine"
