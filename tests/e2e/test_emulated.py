"""rpi4-emulated: the artifacts run on aarch64 kernels under qemu-user and agree with x86; the latency
shown is the rpi4 estimate, never emulated time. Needs the sysroot (`edgeopt targets setup rpi4-emulated`,
built by .ci/setup-system.sh)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from edgeopt.bench.devices import sysroot

EDGEOPT = [sys.executable, "-m", "edgeopt.cli"]


def _needs_sysroot():
    if sysroot.ready_info(sysroot.sysroot_dir()) is None:
        pytest.skip(f"aarch64 sysroot not built at {sysroot.sysroot_dir()}: run `edgeopt targets setup rpi4-emulated`")


@pytest.mark.slow
def test_bench_x86_and_emulated_rpi4_in_one_report(compressed, tmp_path):
    _needs_sysroot()
    out, manifest = compressed
    report_path = tmp_path / "report.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", COLUMNS="200")
    proc = subprocess.run([*EDGEOPT, "bench", str(out), "--data", "digits", "--target", "x86-cpu", "--target",
                           "rpi4-emulated", "--out", str(report_path), "--min-seconds", "0.05", "--max-seconds", "0.5", "--launches", "2",
                           "--warmup", "1", "--min-runs", "5"], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(report_path.read_text())
    results = data["results"]
    assert [r["target"] for r in results] == ["x86-cpu"] * 6 + ["rpi4-emulated"] * 6
    x86 = {r["artifact"]: r for r in results if r["target"] == "x86-cpu"}
    emu = {r["artifact"]: r for r in results if r["target"] == "rpi4-emulated"}
    assert all(r["status"] == "ok" and not r["estimated"] for r in x86.values())
    src = next(a.name for a in manifest.artifacts if a.role == "source")
    assert emu[src]["status"] == "skipped"  # no TensorFlow for aarch64 in the sysroot
    for name, r in emu.items():
        if name == src:
            continue
        assert r["status"] == "ok", r["error"]
        assert r["estimated"] is True and r["samples_ms"] == [] and r["latency_ms"]["n"] == 0
        assert 0 < r["latency_ms"]["p50"] == r["latency_ms"]["p90"]
        assert r["init_ms"] is None and r["first_ms"] is None and r["peak_rss_mb"] is None  # no emulated times
        assert r["agreement"] >= 0.99, name  # vs the x86 run of the same artifact
        assert r["max_abs_diff"] < (0.02 if "int8" in name else 1e-4), name
        assert abs(r["accuracy"] - x86[name]["accuracy"]) <= 0.01
    env_t = data["environment"]["targets"]["rpi4-emulated"]
    assert env_t["device"]["machine"] == "aarch64"
    assert all(v["wall_s"] > 0 and v["estimate"]["ms"] > 0 for k, v in env_t["emulation"].items())


def test_missing_sysroot_names_the_setup_command(compressed, tmp_path):
    out, _ = compressed
    env = dict(os.environ, EDGEOPT_CACHE=str(tmp_path / "empty-cache"), TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([*EDGEOPT, "bench", str(out), "--data", "digits", "--target", "rpi4-emulated", "--out",
                           str(tmp_path / "r.json")], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "edgeopt targets setup rpi4-emulated" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "r.json").exists()
