"""The on-device runner: the timing loop's rules, running stand-alone from a shipped folder, and its probe."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from edgeopt.bench.ondevice import RUNNER, probe_spec, ship_runner
from edgeopt.bench.ondevice.runner import time_runs
from edgeopt.bench.plan import Job, RunSettings, write_inputs
from edgeopt.runtimes import standalone

# -S: no site processing, so the editable install's .pth (which makes edgeopt importable) is not read.
BARE_ENV = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(np.__file__).parent.parent)}


def test_time_runs_meets_both_minimums():
    seen = []
    samples = time_runs(seen.append, lambda: None, pool=list(range(7)), warmup=3, min_runs=20, min_seconds=0.05, max_seconds=5)
    assert len(samples) >= 20
    assert sum(samples) > 0
    assert seen[:3] == [0, 1, 2]  # warm-up first
    assert set(seen[3:]) == set(range(7))  # inputs cycle through the whole pool


def test_time_runs_min_seconds_keeps_going_past_min_runs():
    t0 = time.perf_counter()
    samples = time_runs(lambda x: None, lambda: None, pool=[0], warmup=0, min_runs=1, min_seconds=0.1, max_seconds=5,
                        max_runs=10**9)
    assert time.perf_counter() - t0 >= 0.1
    assert len(samples) > 1


def test_max_runs_caps_the_samples_kept_never_the_time_timed():
    stats = {}
    t0 = time.perf_counter()
    samples = time_runs(lambda x: None, lambda: None, [0], 0, 1, 0.2, max_seconds=60, max_runs=123, stats=stats)
    assert time.perf_counter() - t0 >= 0.2 and stats["timed_s"] >= 0.2  # min_seconds of timing, whatever max_runs
    assert len(samples) == 123 < stats["runs"]  # a uniform subset of every timed run
    assert stats["cpu_ratio"] > 0 and stats["other_cpu"] is not None and stats["load_1m"] is not None


def test_time_runs_caps():
    t0 = time.perf_counter()
    time_runs(lambda x: None, lambda: time.sleep(0.01), [0], 0, 10**9, 100, max_seconds=0.1)
    assert time.perf_counter() - t0 < 1.0


def test_runner_ships_standalone(tmp_path, compressed, digits):
    """The runner and the registry's stand-alone runtime files run from a bare folder, without edgeopt importable."""
    ship = ship_runner(tmp_path / "ship")
    assert sorted(p.name for p in ship.iterdir()) == sorted(["runner.py", *(f"{rt.file}.py" for rt in standalone())])
    out, manifest = compressed
    art = next(out / a.path for a in manifest.artifacts if a.format == "onnx")
    data = write_inputs(tmp_path, digits.x_test[:50])
    run = RunSettings(warmup=1, min_runs=3, min_seconds=0, max_seconds=1, max_runs=10, timeout_s=60)
    job = Job.build(art, "onnxruntime", data, tmp_path / "res", 1, run).write(tmp_path / "job.json")
    probe = subprocess.run([sys.executable, "-S", "-c", "import edgeopt"], capture_output=True, env=BARE_ENV,
                           cwd=tmp_path)
    assert probe.returncode != 0  # edgeopt really is out of reach
    proc = subprocess.run([sys.executable, "-S", str(ship / "runner.py"), str(job)], cwd=ship,
                          capture_output=True, text=True, env=BARE_ENV)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "res" / "result.json").read_text())
    assert result["status"] == "ok", result.get("error")
    assert len(result["samples_ms"]) >= 3


def test_probe_from_stdin_reports_packages_and_environment(tmp_path):
    """How an SSH device is probed: the runner's source on stdin, nothing shipped yet."""
    spec = probe_spec()
    proc = subprocess.run([sys.executable, "-S", "-", "--probe", json.dumps(spec)], input=RUNNER.read_text(),
                          capture_output=True, text=True, env=BARE_ENV, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["machine"] and info["python"] and info["cpu"] and "cpu_governor" in info
    assert set(info["modules"]) == {"numpy", *spec["packages"]}
    assert info["modules"]["numpy"] == np.__version__ and info["modules"]["onnxruntime"]


def test_probe_without_numpy_says_so(tmp_path):
    proc = subprocess.run([sys.executable, "-I", "-S", "-", "--probe", json.dumps(probe_spec())],
                          input=RUNNER.read_text(), capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["modules"]["numpy"] is None and info["numpy"] is None


def test_probe_loads_runtime_files_for_real(tmp_path):
    ship = ship_runner(tmp_path / "ship")
    proc = subprocess.run([sys.executable, "-S", str(ship / "runner.py"), "--probe",
                           json.dumps(probe_spec(["litert", "onnxrt", "no_such_runtime"], packages=False))],
                          capture_output=True, text=True, env=BARE_ENV, cwd=ship)
    runtimes = json.loads(proc.stdout.strip().splitlines()[-1])["runtimes"]
    assert runtimes["litert"]["version"].startswith("ai_edge_litert")
    assert "CPUExecutionProvider" in runtimes["onnxrt"]["devices"]
    assert "ModuleNotFoundError" in runtimes["no_such_runtime"]["error"]
