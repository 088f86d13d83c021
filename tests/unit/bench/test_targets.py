"""Target files: the shipped ones load and say where their numbers come from; bad files are one clear
UsageError; dispatch keeps GPU targets honest without a GPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edgeopt.bench.targets import TargetSpec, available, expand_env, load_target
from edgeopt.errors import UsageError

SHIPPED = ("x86-cpu", "desktop-gpu", "rpi4", "rpi5", "rpi4-emulated")


def _write(tmp_path: Path, spec: dict, name: str = "t.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return path


BASE = {"name": "mine", "cores": 4, "threads": 4}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_targets_load_and_round_trip(name):
    t = load_target(name)
    assert t.name == name and t.threads <= t.cores
    assert TargetSpec.model_validate(t.spec.model_dump()) == t.spec
    assert set(t.runtimes) <= {"litert", "onnxruntime", "tf"}


def test_at_least_five_targets_are_listed():
    assert set(SHIPPED) <= set(available())


def test_board_targets_carry_a_sourced_calibration():
    rpi4, rpi5, emu = load_target("rpi4"), load_target("rpi5"), load_target("rpi4-emulated")
    assert rpi4.connection.kind == "ssh" and rpi4.arch == "aarch64" and rpi4.connection.accept_new_host_key is False
    assert {(p.model, p.precision): p.ms for p in rpi4.calibration.points} == {
        ("mobilenet_v1", "fp32"): 77, ("mobilenet_v2", "fp32"): 46, ("mobilenet_v1", "int8"): 24,
        ("mobilenet_v2", "int8"): 17}
    for cal in (rpi4.calibration, rpi5.calibration):
        for key in [f"gmacs.{c}" for c in cal.gmacs] + ["bandwidth_gbs", "op_overhead_us"]:
            assert cal.sources[key].strip(), key
    assert rpi5.calibration.proxy and "proxy" in rpi5.calibration.sources["gmacs.conv"]
    assert rpi5.calibration.gmacs["conv"]["fp32"] > rpi4.calibration.gmacs["conv"]["fp32"]
    assert emu.connection.kind == "qemu" and emu.estimate_as == "rpi4" and emu.calibration == rpi4.calibration
    assert load_target("x86-cpu").calibration is None


def test_environment_fills_connection_fields(monkeypatch):
    monkeypatch.setenv("EDGEOPT_RPI4_HOST", "10.1.2.3")
    monkeypatch.setenv("EDGEOPT_RPI4_PORT", "2222")
    monkeypatch.delenv("EDGEOPT_RPI4_USER", raising=False)
    t = load_target("rpi4")
    assert (t.connection.host, t.connection.port, t.connection.user) == ("10.1.2.3", 2222, "pi")
    assert expand_env("${EDGEOPT_SURELY_UNSET_VAR}") == "${EDGEOPT_SURELY_UNSET_VAR}"
    assert expand_env({"a": ["${EDGEOPT_SURELY_UNSET_VAR:-x}"]}) == {"a": ["x"]}


def test_user_file_by_path_and_overrides(tmp_path):
    path = _write(tmp_path, {**BASE, "run": {"min_runs": 7}})
    t = load_target(path)
    assert t.name == "mine" and t.run.min_runs == 7 and t.source == path
    o = t.with_overrides(threads=2, min_seconds=0.5, warmup=None)
    assert (o.threads, o.run.min_seconds, o.run.warmup, o.run.min_runs) == (2, 0.5, t.run.warmup, 7)


@pytest.mark.parametrize("spec,message", [
    ({**BASE, "colour": "red"}, "colour"),
    ({**BASE, "connection": {"kind": "ssh"}}, "needs a host"),
    ({**BASE, "connection": {"kind": "telnet"}}, "connection.kind"),
    ({**BASE, "connection": {"kind": "qemu"}}, "arch: aarch64"),
    ({**BASE, "runtimes": ["tensorrt"]}, "unknown runtime 'tensorrt'"),
    ({**BASE, "threads": 0}, "threads"),
    ({**BASE, "calibration": {"threads": 4, "gmacs": {"conv": {"fp32": 1}}, "bandwidth_gbs": 1, "sources": {}}},
     "sources must say"),
    ({**BASE, "estimate_as": "mine"}, "refers back to itself"),
])
def test_bad_target_files_are_usage_errors(tmp_path, spec, message):
    with pytest.raises(UsageError, match=message) as info:
        load_target(_write(tmp_path, spec))
    assert info.value.fix


def test_unknown_name_and_bad_yaml(tmp_path):
    with pytest.raises(UsageError, match="did you mean 'rpi4'"):
        load_target("rpi44")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        load_target(bad)
    with pytest.raises(UsageError, match="does not exist"):
        load_target(tmp_path / "missing.yaml")


def test_reachability_says_why(tmp_path, monkeypatch):
    from edgeopt.bench.devices.reachability import reachability

    assert reachability(load_target("x86-cpu"))[0] == "yes"
    monkeypatch.setenv("EDGEOPT_CACHE", str(tmp_path / "cache"))
    ok, why = reachability(load_target("rpi4-emulated"))
    assert ok == "no" and "edgeopt targets setup rpi4-emulated" in why
    monkeypatch.setenv("EDGEOPT_RPI4_KEY", str(tmp_path / "no-such-key"))
    ok, why = reachability(load_target("rpi4"))
    assert ok == "no" and "identity file" in why


def test_targets_command_lists_them_all():
    env = dict(os.environ, COLUMNS="250")
    proc = subprocess.run([sys.executable, "-m", "edgeopt.cli", "targets", "--no-check"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for name in SHIPPED:
        assert name in proc.stdout


def test_desktop_gpu_without_a_gpu_is_skipped_never_cpu(monkeypatch, compressed, digits, tmp_path):
    from edgeopt.bench import orchestrate as run
    from edgeopt.bench.devices import gpu

    monkeypatch.setattr(gpu, "gpu_probe", lambda with_tf=False: {"ort_providers": ["CPUExecutionProvider"],
                                                                 "tf_gpus": [], "nvidia_smi": ""})
    out, _ = compressed
    report = run.benchmark([out], [load_target("desktop-gpu")], digits, tmp_path / "r.json")
    assert len(report.results) == 6
    assert {m.status for m in report.results} == {"skipped"}
    assert all(m.latency_ms is None and not m.samples_ms for m in report.results)
    by_fmt = {m.format: m.error for m in report.results}
    assert "pip install 'edgeopt[gpu]'" in by_fmt["onnx"] and "TensorFlow sees no GPU" in by_fmt["keras"]
    assert "no runtime for tflite" in by_fmt["tflite"]


def test_a_gpu_provider_that_does_not_load_fails_rather_than_reporting_cpu(monkeypatch, compressed, digits, tmp_path):
    from edgeopt.bench import orchestrate as run
    from edgeopt.bench.devices import gpu

    # The probe claims CUDA, but this onnxruntime has none: the run must fail, never fall back silently.
    monkeypatch.setattr(gpu, "gpu_probe", lambda with_tf=False: {"ort_providers": ["CUDAExecutionProvider",
                                                                                   "CPUExecutionProvider"],
                                                                 "tf_gpus": [], "nvidia_smi": "GPU 0"})
    out, manifest = compressed
    onnx = [out / a.path for a in manifest.artifacts if a.format == "onnx"]
    report = run.benchmark(onnx, [load_target("desktop-gpu")], digits, tmp_path / "r.json", min_seconds=0,
                           max_seconds=0.2, min_runs=1)
    (m,) = report.results
    assert m.status == "failed" and m.latency_ms is None and not m.samples_ms
    assert "CUDAExecutionProvider" in m.error


def test_a_target_listed_twice_is_refused(compressed, digits):
    from edgeopt.bench.orchestrate import benchmark

    out, _ = compressed
    with pytest.raises(UsageError, match="listed twice"):
        benchmark([out], [load_target("x86-cpu"), load_target("x86-cpu")], digits)
