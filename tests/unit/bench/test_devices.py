"""Every device launches through devices/_proc: a timeout kills the child's whole process tree and the job is
`failed` with the reason; a hang never outlives the benchmark."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psutil
import pytest

from edgeopt.bench.devices import _proc
from edgeopt.bench.plan import Job, RunSettings

SHORT = RunSettings(warmup=0, min_runs=1, min_seconds=0, max_seconds=1, max_runs=1, timeout_s=1.5)


def _hangs(path: Path, pidfile: Path) -> Path:
    """A program that starts a grandchild (recording its pid) and waits on it forever."""
    path.write_text(f"#!/bin/sh\nsleep 300 &\necho $! > {pidfile}\nwait\n")
    path.chmod(0o755)
    return path


def _gone(pidfile: Path) -> bool:
    deadline = time.monotonic() + 5
    pid = int(pidfile.read_text())
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_launch_kills_the_tree_on_timeout(tmp_path):
    prog = _hangs(tmp_path / "hang.sh", tmp_path / "pid")
    t0 = time.monotonic()
    done = _proc.launch([str(prog)], 0.5)
    assert done.timed_out and done.returncode is None and time.monotonic() - t0 < 10
    assert _gone(tmp_path / "pid")
    ok = _proc.launch([sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"], 30, stdin="hi")
    assert (ok.returncode, ok.stdout.strip(), ok.timed_out) == (0, "HI", False)


def test_local_device_timeout_fails_the_job_and_kills_the_worker_tree(tmp_path, monkeypatch):
    """A runtime whose load() starts a child and hangs: the worker and its child are killed."""
    from edgeopt.bench.devices.local import LocalDevice

    pidfile = tmp_path / "pid"
    (tmp_path / "hang_rt.py").write_text(
        "import subprocess, time\n"
        "def version():\n    return 'hang 0'\n"
        "def load(path, threads=None, options=None):\n"
        f"    p = subprocess.Popen(['sleep', '300'])\n    open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "    time.sleep(300)\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    data = tmp_path / "inputs.npz"
    import numpy as np

    np.savez(data, x_pool=np.ones((1, 2), np.float32), x_eval=np.ones((1, 2), np.float32))
    job = Job(**{**Job.build(tmp_path / "m.bin", "litert", data, tmp_path / "out", 1, SHORT).to_dict(),
                 "module": "hang_rt"})
    raw = LocalDevice(type("T", (), {"name": "here"})()).run(job)
    assert raw == {"status": "failed", "error": "timed out after 1.5 s (raise run.timeout_s in the target)"}
    assert _gone(pidfile)


def test_qemu_device_timeout_kills_the_emulator_tree(tmp_path):
    from edgeopt.bench.devices import qemu

    root = tmp_path / "sysroot"
    (root / "bin").mkdir(parents=True)
    _hangs(root / "bin" / "qemu-aarch64", tmp_path / "pid")
    job = Job.build(tmp_path / "m.tflite", "litert", tmp_path / "inputs.npz", tmp_path / "out", 1, SHORT, skip_timing=True)
    raw = qemu.run_emulated(job, root)
    assert raw["status"] == "failed" and "timed out under emulation after 1.5 s" in raw["error"]
    assert _gone(tmp_path / "pid")


def test_ssh_device_timeout_kills_ssh_and_loses_the_device(tmp_path, monkeypatch):
    from edgeopt.bench.devices.ssh import DeviceLost, SSHDevice
    from edgeopt.bench.targets import Connection

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _hangs(bin_dir / "ssh", tmp_path / "pid")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    dev = SSHDevice("pi", Connection(kind="ssh", host="example.invalid"))
    with pytest.raises(DeviceLost, match="timed out after 0.5 s"):
        dev.ssh("true", 0.5, "probing", retry=False)
    assert _gone(tmp_path / "pid")


def test_gpu_probe_timeout_is_an_answer_not_a_hang():
    from edgeopt.bench.devices.gpu import gpu_probe, gpu_skip_reason

    t0 = time.monotonic()
    probe = gpu_probe(timeout_s=0.01)
    assert time.monotonic() - t0 < 10
    assert probe["error"].startswith("GPU probe failed: timed out") and probe["ort_providers"] == []
    assert "no GPU" in gpu_skip_reason(probe, "onnxruntime")
