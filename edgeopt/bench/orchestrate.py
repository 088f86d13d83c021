"""benchmark(): every artifact × target, one report. Dispatch by connection: local targets (and the
qemu one, which burns the same CPU) run one after another in one lane so they never disturb each
other's timings; each SSH device gets its own lane, in parallel. Configuration errors (an unreachable
host, a missing runtime or sysroot) are found before anything is measured and raise UsageError; a
device that drops mid-run marks its remaining results failed and the others carry on. The report is
saved after every result so a crash keeps what was measured.
"""

from __future__ import annotations

import logging
import os
import platform
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import numpy as np

from edgeopt.bench.devices import local as harness
from edgeopt.bench.devices.gpu import GPU_PROVIDERS, gpu_probe, gpu_skip_reason, with_available_providers
from edgeopt.bench.estimate import estimate_items
from edgeopt.core import metrics as measure
from edgeopt.core.artifact import Artifact, collect, load_manifest
from edgeopt.core.report import Latency, Measurement, Report
from edgeopt.errors import UsageError

log = logging.getLogger(__name__)

VERSIONED = ("tensorflow", "tf-keras", "ai-edge-litert", "onnxruntime", "onnxruntime-gpu", "tf2onnx", "onnx", "numpy",
             "tensorflow-model-optimization")


def host_environment() -> dict:
    from edgeopt import __version__
    from edgeopt.bench.ondevice.runner import environment

    env = environment()
    env.pop("runtime_version", None)
    versions = {}
    for dist in VERSIONED:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    env.update({"edgeopt": __version__, "os": platform.platform(), "versions": versions,
                "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None})
    return env


def _ordered(items: list[tuple[Artifact, Path]]) -> list[tuple[Artifact, Path]]:
    return sorted(items, key=lambda it: 0 if it[0].role == "source" else 1)


def skipped(artifact: Artifact, path: Path, target: str, runtime: str, reason: str, status: str = "skipped",
            threads: int | None = None) -> Measurement:
    return Measurement(artifact=artifact.name, format=artifact.format, precision=artifact.precision, target=target,
                       runtime=runtime, status=status, error=reason, path=str(path), role=artifact.role,
                       stages=list(artifact.stages), threads=threads)


def _runtime_for(artifact: Artifact, target) -> str | None:
    from edgeopt.runtimes import for_format

    try:
        runtime = for_format(artifact.format)
    except KeyError:
        return None
    return runtime if runtime in target.runtimes else None


class _Run:
    """What the lanes share: the report (under a lock), the inputs, callbacks, x86 outputs per artifact."""

    def __init__(self, report: Report, items, data: Path, labels: np.ndarray, tmp: Path, out, on_result, on_start):
        self.report, self.items, self.data, self.labels, self.tmp = report, items, data, labels, tmp
        self.out, self.on_result, self.on_start = out, on_result, on_start
        self.lock = threading.Lock()
        self.host_outputs: dict[str, np.ndarray] = {}  # artifact name → outputs on this x86 CPU
        self.pending: list[tuple[Measurement, np.ndarray, str]] = []  # agreement to fill in after the lanes

    def started(self, what: str) -> None:
        if self.on_start:
            self.on_start(what)

    def add(self, m: Measurement) -> None:
        with self.lock:
            self.report.results.append(m)
            if self.out:
                self.report.save(self.out)  # partial reports survive a crash or Ctrl-C
        if self.on_result:
            self.on_result(m)

    def runtime_or_skip(self, artifact: Artifact, path: Path, target, label: str = "") -> str | None:
        """Announce the artifact; its runtime on ``target``, or None after recording it as skipped."""
        self.started(f"{artifact.name} on {target.name}{label}")
        runtime = _runtime_for(artifact, target)
        if runtime is None:
            self.add(skipped(artifact, path, target.name, "-",
                             f"target {target.name} has no runtime for {artifact.format}"))
        return runtime

    def target_env(self, name: str) -> dict:
        return self.report.environment["targets"].setdefault(name, {})


def benchmark(paths: list[str | Path], targets: list, dataset, out: str | Path | None = None,
              on_result: Callable[[Measurement], None] | None = None, on_start: Callable[[str], None] | None = None,
              **overrides) -> Report:
    """Measure every artifact found in ``paths`` on every target; returns (and saves to ``out``) the report.

    ``overrides`` are run settings (threads, warmup, min_runs, min_seconds, max_seconds, timeout_s).
    """
    items = _ordered(collect(list(paths)))
    if not items:
        raise UsageError("no artifacts found in " + ", ".join(map(str, paths)), "pass artifact files or compress folders")
    targets = [t.with_overrides(**overrides) for t in targets]
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise UsageError(f"target listed twice: {', '.join(n for n in names if names.count(n) > 1)}",
                         "pass each --target once")
    report = Report(environment=host_environment())
    report.environment["data"] = dataset.name
    report.environment["targets"] = {}
    for folder in map(Path, paths):
        _copy_manifest_sections(report, folder)
    with tempfile.TemporaryDirectory(prefix="edgeopt-bench-") as tmp:
        run = _Run(report, items, harness.write_inputs(Path(tmp), dataset.x_test), dataset.y_test, Path(tmp), out,
                   on_result, on_start)
        for t in targets:
            plan = harness.RunPlan.from_target(t)
            run.target_env(t.name).update({"threads": plan.threads, "run": t.run.model_dump(),
                                           "connection": t.connection.kind, "device_type": t.device})
        checked = _preflight(targets, items)  # UsageError here, before anything is measured
        local = [t for t in targets if t.connection.kind != "ssh"]
        local.sort(key=lambda t: t.connection.kind == "qemu")  # x86 outputs first: the emulated run compares to them
        remote = [t for t in targets if t.connection.kind == "ssh"]
        with ThreadPoolExecutor(max_workers=1 + len(remote), thread_name_prefix="edgeopt-lane") as pool:
            lanes = [pool.submit(_local_lane, run, local, checked)] if local else []
            lanes += [pool.submit(_ssh_lane, run, t, checked[t.name]) for t in remote]
            for lane in lanes:
                lane.result()
        _fill_agreement(run)
        order = {n: i for i, n in enumerate(names)}
        arts = {a.name: i for i, (a, _) in enumerate(items)}
        report.results.sort(key=lambda m: (order.get(m.target, 99), arts.get(m.artifact, 99)))
        for t in targets:
            if t.calibration is not None and t.connection.kind != "qemu":  # next to measurements: a check on the model
                run.target_env(t.name)["estimates_ms"] = estimate_items(run.items, t)
        if out:
            report.save(out)
    return report


# --- preflight ----------------------------------------------------------------------------------------

def _preflight(targets: list, items) -> dict[str, dict]:
    """Per target, what set-up found (device info, GPU probe, sysroot); configuration errors raise."""
    from edgeopt.bench.devices import qemu as emulate
    from edgeopt.bench.devices.ssh import SSHDevice
    from edgeopt.runtimes import get

    found: dict[str, dict] = {}
    ssh = [t for t in targets if t.connection.kind == "ssh"]
    with ThreadPoolExecutor(max_workers=max(1, len(ssh))) as pool:
        probes = {t.name: pool.submit(SSHDevice(t.name, t.connection).check) for t in ssh}
        for t in targets:
            if t.connection.kind == "qemu":
                found[t.name] = {"sysroot": emulate.require(emulate.sysroot_dir(t))}
            elif t.device == "gpu":
                found[t.name] = {"gpu": gpu_probe(with_tf="tf" in t.runtimes and any(a.format == "keras"
                                                                                      for a, _ in items))}
            elif t.name not in probes:
                found[t.name] = {}
        for name, fut in probes.items():
            info = fut.result()  # re-raises the probe's UsageError
            t = next(t for t in ssh if t.name == name)
            needed = {_runtime_for(a, t) for a, _ in items} - {None}
            for rt in map(get, sorted(needed)):
                if not rt.standalone or rt.provider(info["modules"]) is None:  # the runner ships stand-alone ones
                    raise UsageError(f"target {name}: the device has no {rt.name} runtime for {t.connection.python}",
                                     f"on the device: {rt.install_hint} — or remove {rt.name} from the target's "
                                     "runtimes")
            found[name] = {"device": info}
    return found


# --- lanes --------------------------------------------------------------------------------------------

def _local_lane(run: _Run, targets: list, checked: dict) -> None:
    for t in targets:
        if t.connection.kind == "qemu":
            _emulated_target(run, t, checked[t.name]["sysroot"])
        else:
            _local_target(run, t, checked[t.name].get("gpu"))


def _local_target(run: _Run, target, gpu: dict | None) -> None:
    plan = harness.RunPlan.from_target(target)
    reference = None
    for artifact, path in run.items:
        runtime = run.runtime_or_skip(artifact, path, target)
        if runtime is None:
            continue
        tgt = target
        if gpu is not None:
            reason = gpu_skip_reason(gpu, runtime)
            if reason:
                run.add(skipped(artifact, path, target.name, runtime, reason, threads=plan.threads))
                continue
            tgt = with_available_providers(target, gpu)
        m, outputs, raw = _bench_local(run, artifact, path, tgt, runtime, plan, reference)
        if gpu is not None:
            providers = raw.get("providers")
            run.target_env(target.name).setdefault("providers", {})[artifact.name] = providers
            if m.status == "ok" and runtime == "onnxruntime" and not any(p in GPU_PROVIDERS for p in providers or []):
                # ORT falls back to the CPU when a GPU provider fails to load: never report that as GPU time.
                m.status, m.error = "failed", f"onnxruntime ran on {providers}, not the GPU (GPU provider did not load)"
                m.latency_ms, m.samples_ms, outputs = None, [], None
        if artifact.role == "source" and outputs is not None and reference is None:
            reference = outputs
        if outputs is not None and target.device == "cpu" and target.arch == platform.machine():
            run.host_outputs.setdefault(artifact.name, outputs)
        run.add(m)


def _bench_local(run: _Run, artifact: Artifact, path: Path, target, runtime: str, plan, reference):
    """One artifact in a fresh local worker: (Measurement, outputs on the eval split or None, raw runner result)."""
    options = dict(target.runtime_options.get(runtime, {}))
    with tempfile.TemporaryDirectory(prefix="edgeopt-run-", dir=run.tmp) as tmp:
        out = Path(tmp)
        raw = harness.run_local(harness.job_for(path, runtime, plan, options, run.data, out), plan.timeout_s)
        if raw.get("status") != "ok":
            log.warning("%s on %s/%s failed: %s", artifact.name, target.name, runtime, raw.get("error"))
        m, outputs = harness.to_measurement(artifact, path, target.name, runtime, raw, out, run.labels, reference,
                                            plan.threads)
    return m, outputs, raw


def _emulated_target(run: _Run, target, sysroot: dict) -> None:
    from edgeopt.bench.devices import qemu as emulate

    root = Path(sysroot["root"])
    plan = harness.RunPlan.from_target(target)
    env = run.target_env(target.name)
    env["sysroot"] = {k: sysroot.get(k) for k in ("qemu", "suite", "device")}
    env["note"] = "outputs from aarch64 kernels under qemu-user; latency is the rpi4 cost-model estimate"
    emulation = env.setdefault("emulation", {})
    for artifact, path in run.items:
        runtime = run.runtime_or_skip(artifact, path, target, " (emulated)")
        if runtime is None:
            continue
        options = dict(target.runtime_options.get(runtime, {}))
        with tempfile.TemporaryDirectory(prefix="edgeopt-qemu-", dir=run.tmp) as tmp:
            job = harness.job_for(path, runtime, plan, options, run.data, Path(tmp), skip_timing=True)
            raw = emulate.run_emulated(job, root, plan.timeout_s, target.connection.qemu_cpu)
            m, outputs = harness.to_measurement(artifact, path, target.name, runtime, raw, Path(tmp), run.labels, None,
                                                plan.threads)
        emulation[artifact.name] = {"wall_s": raw.get("emulated_wall_s"), "init_ms": raw.get("init_ms"),
                                    "first_ms": raw.get("first_ms")}
        m.init_ms = m.first_ms = m.peak_rss_mb = None  # emulated times and qemu's RSS say nothing about a Pi
        if raw.get("environment"):
            env.setdefault("device", raw["environment"])
        if m.status == "ok":
            _set_estimate(m, path, artifact.format, target, emulation[artifact.name])
        if outputs is not None:
            run.pending.append((m, outputs, "same"))
        run.add(m)


def _set_estimate(m: Measurement, path: Path, fmt: str, target, record: dict) -> None:
    from edgeopt.bench.estimate import estimate_artifact

    if target.calibration is None:
        return
    try:
        est = estimate_artifact(path, fmt, target)
    except Exception as e:  # noqa: BLE001 — an unreadable graph leaves the latency empty, the outputs still count
        log.warning("no latency estimate for %s on %s: %s", path.name, target.name, e)
        record["estimate_error"] = str(e)[:300]
        return
    ms = est.ms
    m.latency_ms = Latency(p50=ms, p90=ms, p99=ms, mean=ms, std=0.0, n=0)
    m.samples_ms = []
    m.estimated = True
    record["estimate"] = est.to_dict()


def _ssh_lane(run: _Run, target, checked: dict) -> None:
    from edgeopt.bench.devices.ssh import DeviceLost, SSHDevice

    plan = harness.RunPlan.from_target(target)
    dev = SSHDevice(target.name, target.connection)
    run.target_env(target.name)["device"] = checked.get("device")
    lost: str | None = None
    try:
        dev.open(run.data)
    except (DeviceLost, UsageError) as e:
        lost = f"device lost before the first run: {e}"
    try:
        for i, (artifact, path) in enumerate(run.items):
            runtime = run.runtime_or_skip(artifact, path, target)
            if runtime is None:
                continue
            if lost:
                run.add(skipped(artifact, path, target.name, runtime, lost, status="failed", threads=plan.threads))
                continue
            options = dict(target.runtime_options.get(runtime, {}))
            local_out = run.tmp / f"{target.name}-{i}"
            job = harness.job_for(path, runtime, plan, options, run.data, local_out)
            try:
                raw = dev.run(job, i, local_out, plan.timeout_s)
            except (DeviceLost, UsageError) as e:
                lost = f"device dropped: {e}"
                log.warning("%s: %s", target.name, lost)
                raw = {"status": "failed", "error": lost}
            if raw.get("environment") and not run.target_env(target.name).get("device", {}).get("cpu"):
                run.target_env(target.name)["device"] = {**(checked.get("device") or {}), **raw["environment"]}
            m, outputs = harness.to_measurement(artifact, path, target.name, runtime, raw, local_out, run.labels, None,
                                                plan.threads)
            if outputs is not None:
                run.pending.append((m, outputs, "source"))
            run.add(m)
    finally:
        if not lost:
            dev.close()


# --- after the lanes ----------------------------------------------------------------------------------

def _fill_agreement(run: _Run) -> None:
    """Agreement for emulated results (vs x86 outputs of the same artifact) and SSH results (vs the x86
    source model), computed on this machine after the timed lanes so it cannot disturb them."""
    if not run.pending:
        return
    plan = harness.RunPlan(threads=min(2, os.cpu_count() or 1), warmup=0, min_runs=1, min_seconds=0, max_seconds=1,
                           max_runs=1, timeout_s=600)
    source = next(((a, p) for a, p in run.items if a.role == "source"), None)
    for m, outputs, against in run.pending:
        ref_item = source if against == "source" else next(((a, p) for a, p in run.items if a.name == m.artifact),
                                                            None)
        if ref_item is None:
            continue
        ref = _host_outputs(run, ref_item, plan)
        if ref is not None and ref.shape == outputs.shape:
            m.agreement = measure.agreement(outputs, ref)
            m.max_abs_diff = measure.max_abs_diff(outputs, ref)
    if run.out:
        run.report.save(run.out)


def _host_outputs(run: _Run, item, plan) -> np.ndarray | None:
    from edgeopt.runtimes import for_format

    artifact, path = item
    if artifact.name not in run.host_outputs:
        run.started(f"{artifact.name} on this x86 CPU (reference outputs)")
        with tempfile.TemporaryDirectory(prefix="edgeopt-ref-", dir=run.tmp) as tmp:
            job = harness.job_for(path, for_format(artifact.format), plan, {}, run.data, Path(tmp), skip_timing=True)
            raw = harness.run_local(job, plan.timeout_s)
            if raw.get("status") != "ok" or not raw.get("outputs"):
                log.warning("no x86 reference outputs for %s: %s", artifact.name, raw.get("error"))
                return None
            run.host_outputs[artifact.name] = np.load(Path(tmp) / raw["outputs"])
    return run.host_outputs[artifact.name]


def _copy_manifest_sections(report: Report, folder: Path) -> None:
    """What stages recorded (tuning, distillation, per-layer sparsity, int8 sensitivity) goes into the report
    by compress folder, so the HTML report can show it next to the measurements."""
    if not (folder / "manifest.json").is_file():
        return
    manifest = load_manifest(folder)
    name = folder.resolve().name
    for key in ("tuning", "distillation"):
        if key in manifest.extra:
            report.extra.setdefault(key, {})[name] = manifest.extra[key]
    section = {k: v for k, v in manifest.extra.items() if k not in ("tuning", "distillation")}
    per_artifact = {a.name: {k: v for k, v in a.info.items() if k != "parity"} for a in manifest.artifacts}
    per_artifact = {n: info for n, info in per_artifact.items() if info}
    if per_artifact:
        section["artifacts"] = per_artifact
    if section:
        report.extra.setdefault("manifests", {})[name] = section
