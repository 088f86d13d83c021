"""The launcher's guarantees: a worker in its own process group, killed when edgeopt dies (even by kill -9),
stopped at its memory cap with a clear result, and a killed bench's temp folder removed at the next start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import yaml

from edgeopt.bench.devices._proc import launch

REPO = Path(__file__).resolve().parents[3]


def _wait_for(path: Path, timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def _gone(pid: int, timeout_s: float = 10) -> bool:
    """The process ended (a zombie counts: it runs nothing, its parent just has not reaped it yet)."""
    try:
        proc = psutil.Process(pid)
        _, alive = psutil.wait_procs([proc], timeout=timeout_s)
        return not alive or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _cmdline(proc: psutil.Process) -> str:
    """A child's command line, or "" for one that ended (or became a zombie) while the children were listed."""
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def test_worker_has_its_own_process_group(tmp_path):
    done = launch([sys.executable, "-c", "import os; print(os.getpid(), os.getpgid(0))"], 30)
    pid, pgid = map(int, done.stdout.split())
    assert pid == pgid != os.getpgid(0)


def test_kill_9_of_the_parent_kills_the_worker(tmp_path):
    pid_file = tmp_path / "worker.pid"
    parent = subprocess.Popen([sys.executable, "-c", (
        "import sys; from edgeopt.bench.devices._proc import launch\n"
        f"launch([sys.executable, '-c', \"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
        "time.sleep(120)\"], 300)\n")], env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        worker = int(_wait_for(pid_file))
        assert psutil.pid_exists(worker)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        assert _gone(worker), "the worker outlived a kill -9 of its parent"
    finally:
        parent.kill()


def test_memory_cap_stops_the_worker_with_a_reason():
    t0 = time.monotonic()
    done = launch([sys.executable, "-c", "import time; b = bytearray(900 * 2**20); b[::4096] = b'x' * len(b[::4096]); "
                                          "time.sleep(60)"], 120, memory_mb=300)
    assert done.out_of_memory and not done.timed_out
    assert time.monotonic() - t0 < 30
    small = launch([sys.executable, "-c", "print('fine')"], 60, memory_mb=300)
    assert not small.out_of_memory and small.stdout.strip() == "fine"


def test_local_device_reports_out_of_memory(tmp_path, monkeypatch):
    from edgeopt.bench.devices import local

    monkeypatch.setattr(local, "launch", lambda argv, timeout_s, **kw: launch(
        [sys.executable, "-c", "b = bytearray(600 * 2**20); b[::4096] = b'x' * len(b[::4096]); import time; "
                               "time.sleep(60)"], timeout_s, memory_mb=kw["memory_mb"]))
    from edgeopt.bench.plan import Job, RunSettings

    run = RunSettings(warmup=0, min_runs=1, min_seconds=0, max_seconds=1, max_runs=1, timeout_s=60, max_memory_mb=200)
    job = Job(artifact="m.tflite", runtime="litert", module="litert", data="x.npz", out=str(tmp_path / "o"), threads=1,
              **{k: v for k, v in run.model_dump().items() if k != "launches"})  # launches: the orchestrator's
    raw = local.run_local(job)
    assert raw == {"status": "failed", "error": "out of memory (cap 200 MB; raise run.max_memory_mb in the target)"}


def test_kill_9_of_bench_leaves_no_worker_and_its_temp_folder_goes_next_time(tmp_path, tiny_model_path):
    """A real `edgeopt bench` killed mid-run: its worker dies with it; the next bench removes the temp folder."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp)}
    target = tmp_path / "slow.yaml"
    spec = yaml.safe_load((REPO / "targets" / "x86-cpu.yaml").read_text())
    spec.update(name="slow", runtimes=["tf"], run={"warmup": 100000, "min_runs": 100000, "min_seconds": 600,
                                                   "max_seconds": 600, "max_runs": 100000, "timeout_s": 900})
    target.write_text(yaml.safe_dump(spec))
    bench = subprocess.Popen([sys.executable, "-m", "edgeopt.cli", "bench", str(tiny_model_path), "--target",
                              str(target), "--data", "digits", "--out", str(tmp_path / "r.json")], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, workers = time.monotonic() + 120, []
        while time.monotonic() < deadline and not workers:
            workers = [c for c in psutil.Process(bench.pid).children(recursive=True)
                       if "edgeopt.bench.ondevice.runner" in _cmdline(c)]
            time.sleep(0.2)
        assert workers, "no worker started"
        left = [p.name for p in tmp.iterdir()]
        assert any(n.startswith(f"edgeopt-bench-{bench.pid}.") for n in left), left
        os.kill(bench.pid, signal.SIGKILL)
        bench.wait(10)
        assert all(_gone(w.pid) for w in workers), "a worker outlived kill -9 of bench"
    finally:
        bench.kill()
    again = subprocess.run([sys.executable, "-m", "edgeopt.cli", "bench", str(tiny_model_path), "--data", "digits",
                            "--max-runs", "2", "--out", str(tmp_path / "r2.json")], env=env, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode in (0, 1), again.stderr[-500:]
    assert not [p.name for p in tmp.iterdir() if p.name.startswith("edgeopt-bench-")]
