"""SSH targets against a real sshd on 127.0.0.1: benchmark through it, refuse bad configuration with one
clear line, and keep the other targets' results when a device drops mid-run."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from edgeopt.errors import UsageError
from tests.e2e.sshd_fixture import sshd, start_sshd  # noqa: F401 — the fixture is used by name

pytestmark = pytest.mark.slow


def _pick(compressed, *precisions_formats):
    out, manifest = compressed
    return [out / a.path for a in manifest.artifacts if (a.precision, a.format) in precisions_formats]


def test_bench_over_ssh(sshd, compressed, digits, tmp_path):  # noqa: F811
    from edgeopt.bench.orchestrate import benchmark
    from edgeopt.bench.targets import load_target

    out, _ = compressed
    target = load_target(sshd.target_file(tmp_path / "pi.yaml"))
    report = benchmark([out], [target], digits, tmp_path / "report.json")
    assert {m.status for m in report.results} == {"ok", "skipped"}
    assert next(m for m in report.results if m.role == "source").status == "skipped"  # no TF among its runtimes
    ran = [m for m in report.results if m.status == "ok"]
    assert {m.runtime for m in ran} == {"litert", "onnxruntime"}
    for m in ran:
        assert m.latency_ms.n == len(m.samples_ms) >= 5 and not m.estimated
        assert m.accuracy > 0.5
        assert m.agreement is not None and m.agreement > 0.95  # against the x86 source model
    device = report.environment["targets"]["loopback-pi"]
    dev = device["device"]
    assert dev["machine"] and dev["cpu"] and dev["python"] and dev["system"] and dev["modules"]["numpy"]
    assert "cpu_governor" in dev and "temperature_c" in dev and dev["runtime_version"]
    assert json.loads((tmp_path / "report.json").read_text())["results"]
    assert list((sshd.folder / "remote").iterdir()) == []  # the run folder on the device is gone


def test_unknown_host_key_is_refused_unless_opted_in(sshd, compressed, digits, tmp_path):  # noqa: F811
    from edgeopt.bench.orchestrate import benchmark
    from edgeopt.bench.targets import load_target

    art = _pick(compressed, ("int8", "tflite"))
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    target = load_target(sshd.target_file(tmp_path / "a.yaml", known_hosts_file=str(empty)))
    with pytest.raises(UsageError, match="host key of .* is not in"):
        benchmark(art, [target], digits)
    target = load_target(sshd.target_file(tmp_path / "b.yaml", known_hosts_file=str(empty), accept_new_host_key=True))
    report = benchmark(art, [target], digits)
    assert report.results[0].status == "ok", report.results[0].error
    assert sshd.host_key_line.split()[2] in empty.read_text()  # recorded on first use


def test_changed_host_key_is_refused_even_when_opted_in(sshd, compressed, digits, tmp_path):  # noqa: F811
    from edgeopt.bench.orchestrate import benchmark
    from edgeopt.bench.targets import load_target

    other = tmp_path / "other_key"
    os.system(f"ssh-keygen -q -t ed25519 -N '' -f {other}")
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{sshd.port} " + " ".join(Path(f"{other}.pub").read_text().split()[:2]) + "\n")
    target = load_target(sshd.target_file(tmp_path / "t.yaml", known_hosts_file=str(wrong), accept_new_host_key=True))
    with pytest.raises(UsageError, match="CHANGED"):
        benchmark(_pick(compressed, ("int8", "tflite")), [target], digits)


def test_wrong_key_and_unreachable_host_are_usage_errors(sshd, compressed, digits, tmp_path):  # noqa: F811
    from edgeopt.bench.orchestrate import benchmark
    from edgeopt.bench.targets import load_target

    art = _pick(compressed, ("int8", "tflite"))
    stranger = tmp_path / "stranger"
    os.system(f"ssh-keygen -q -t ed25519 -N '' -f {stranger}")
    target = load_target(sshd.target_file(tmp_path / "k.yaml", identity_file=str(stranger)))
    with pytest.raises(UsageError, match="refused the key"):
        benchmark(art, [target], digits)
    closed = sshd.target_file(tmp_path / "c.yaml", port=sshd.port + 1 if sshd.port < 65535 else 1)
    with pytest.raises(UsageError, match="cannot reach"):
        benchmark(art, [load_target(closed)], digits)
    missing = sshd.target_file(tmp_path / "m.yaml", identity_file=str(tmp_path / "nope"))
    with pytest.raises(UsageError, match="identity file .* does not exist"):
        benchmark(art, [load_target(missing)], digits)


def _wrapper(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_device_without_numpy_or_runtime_names_the_package(sshd, compressed, digits, tmp_path):  # noqa: F811
    import numpy as np

    from edgeopt.bench.orchestrate import benchmark
    from edgeopt.bench.targets import load_target

    art = _pick(compressed, ("int8", "tflite"))
    bare = _wrapper(tmp_path / "bare-python", f'exec {sys.executable} -I -S "$@"\n')
    with pytest.raises(UsageError, match="pip install numpy"):
        benchmark(art, [load_target(sshd.target_file(tmp_path / "n.yaml", python=bare))], digits)
    only_numpy = tmp_path / "only-numpy"
    only_numpy.mkdir()
    site = Path(np.__file__).parent.parent
    for name in ("numpy", "numpy.libs"):
        if (site / name).exists():
            (only_numpy / name).symlink_to(site / name)
    numpy_python = _wrapper(tmp_path / "numpy-python", f'PYTHONPATH={only_numpy} exec {sys.executable} -S "$@"\n')
    with pytest.raises(UsageError, match="no litert runtime.*pip install ai-edge-litert"):
        benchmark(art, [load_target(sshd.target_file(tmp_path / "r.yaml", python=numpy_python))], digits)


def test_a_device_dropping_mid_run_fails_its_results_only(compressed, digits, tmp_path):
    """The device's sshd dies during the first run: its results are failed, the local target's are kept."""
    from edgeopt.bench.orchestrate import benchmark
    from edgeopt.bench.targets import load_target

    server = start_sshd(tmp_path / "sshd")
    try:
        pid = server.proc.pid
        flaky = _wrapper(tmp_path / "flaky-python",
                         f'case "$*" in *runner.py*) kill -9 {pid}; kill -9 $PPID;; esac\nexec {sys.executable} "$@"\n')
        dev = load_target(server.target_file(tmp_path / "d.yaml", name="dropping-pi", python=flaky))
        local = load_target("x86-cpu")
        arts = _pick(compressed, ("int8", "tflite"), ("fp32", "onnx"))
        report = benchmark(arts, [local, dev], digits, tmp_path / "r.json", warmup=1, min_runs=5, min_seconds=0.05,
                           max_seconds=1)
    finally:
        server.stop()
    by_target = {}
    for m in report.results:
        by_target.setdefault(m.target, []).append(m)
    assert [m.status for m in by_target["x86-cpu"]] == ["ok", "ok"]
    assert [m.status for m in by_target["dropping-pi"]] == ["failed", "failed"]
    assert all("device dropped" in m.error or "device lost" in m.error for m in by_target["dropping-pi"])
    saved = json.loads((tmp_path / "r.json").read_text())
    assert len(saved["results"]) == 4
