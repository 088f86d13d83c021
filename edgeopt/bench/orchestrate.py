"""benchmark(): every artifact × target, one report. Each target is a Device (``devices/``); one loop
measures every artifact on it. Devices that burn this machine's CPU (local, GPU, qemu) run one after
another in one lane so they never disturb each other's timings; each remote device gets its own lane,
in parallel. Configuration errors (an unreachable host, a missing runtime or sysroot) are found by the
devices' probes before anything is measured and raise UsageError; a device that drops mid-run fails
its remaining results and the others carry on. The report is saved after every result so a crash
keeps what was measured.
"""

from __future__ import annotations

import logging
import os
import platform
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from edgeopt.bench.devices import Device, device_for
from edgeopt.bench.estimate import estimate_items
from edgeopt.bench.measurement import add_launch, skipped, to_measurement
from edgeopt.bench.plan import REFERENCE, Job, write_inputs
from edgeopt.bench.schedule import changed_since_manifest, pair_ab, rounds
from edgeopt.bench.scoring import Scorer
from edgeopt.core.artifact import Artifact, collect, load_manifest
from edgeopt.core.report import Latency, Measurement, Report
from edgeopt.errors import UsageError
from edgeopt.out_folder import remove_dead_owners

log = logging.getLogger(__name__)

VERSIONED = ("tensorflow", "tf-keras", "ai-edge-litert", "onnxruntime", "onnxruntime-gpu", "tf2onnx", "onnx", "numpy",
             "tensorflow-model-optimization")


def host_environment() -> dict:
    from edgeopt import __version__
    from edgeopt.bench.ondevice.runner import environment
    from edgeopt.cache import installed_versions

    env = environment()
    env.pop("runtime_version", None)
    versions = {k: v for k, v in installed_versions(VERSIONED).items() if v is not None}
    env.update({"edgeopt": __version__, "os": platform.platform(), "versions": versions,
                "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None})
    return env


def _ordered(items: list[tuple[Artifact, Path]]) -> list[tuple[Artifact, Path]]:
    return sorted(items, key=lambda it: 0 if it[0].role == "source" else 1)


def _runtime_for(artifact: Artifact, target) -> str | None:
    from edgeopt.runtimes import for_format

    try:
        runtime = for_format(artifact.format)
    except KeyError:
        return None
    return runtime if runtime in target.runtimes else None


class _Run:
    """What the lanes share: the report (under a lock), the inputs, callbacks, x86 outputs per artifact."""

    def __init__(self, report: Report, items, data: Path, scorer: Scorer, tmp: Path, out, on_result, on_start,
                 groups: list[str | None], units: list[list[int]], changed: dict[int, str]):
        self.report, self.items, self.data, self.scorer, self.tmp = report, items, data, scorer, tmp
        self.out, self.on_result, self.on_start = out, on_result, on_start
        self.lock = threading.Lock()
        self.host_outputs: dict[int, np.ndarray] = {}  # item index → outputs on this x86 CPU
        self.pending: list[tuple[Measurement, np.ndarray, str, int]] = []  # agreement to fill in after the lanes
        self.groups = groups  # A/B: "new" | "old" per item (None outside A/B)
        self.units = units  # item indices measured back to back (A/B twins; else one item each)
        self.changed = changed  # item index → why its file is not the one its manifest names
        self.output: str | None = None  # the output scored, by name, for models with several

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

    def save(self) -> None:
        """Save again after a result grew (another launch)."""
        if self.out:
            with self.lock:
                self.report.save(self.out)

    def target_env(self, name: str) -> dict:
        return self.report.environment["targets"].setdefault(name, {})


def benchmark(paths: list[str | Path], targets: list, dataset, out: str | Path | None = None,
              on_result: Callable[[Measurement], None] | None = None, on_start: Callable[[str], None] | None = None,
              against: list[str | Path] | None = None, task: str | None = None, metric: str | None = None,
              **overrides) -> Report:
    """Measure every artifact found in ``paths`` on every target; returns (and saves to ``out``) the report.

    ``against``: A/B mode. The artifacts found there are the old twins of the new ones (paired by name), measured
    interleaved with them in the same run; each result names its group ("new" | "old"). ``overrides`` are run
    settings (threads and the fields of ``plan.RunSettings``). ``task``: what the outputs are scored for (default:
    the compress manifest's, else inferred from the first outputs and the labels); ``metric``: the user's own
    headline metric, ``module:function``.
    """
    found = collect(list(paths))
    if not found:
        raise UsageError("no artifacts found in " + ", ".join(map(str, paths)), "pass artifact files or compress folders")
    # a manifest entry compress could not build has no file: reported as skipped, with compress's reason
    unbuilt = [(a, p) for a, p in found if a.status == "failed"]
    items = _ordered([(a, p) for a, p in found if a.status != "failed"])
    groups, units, unpaired = [None] * len(items), [[i] for i in range(len(items))], []
    if against is not None:
        items, groups, units, unpaired = pair_ab(items, _ordered(collect(list(against))))
    targets = [t.with_overrides(**overrides) for t in targets]
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise UsageError(f"target listed twice: {', '.join(n for n in names if names.count(n) > 1)}",
                         "pass each --target once")
    report = Report(environment=host_environment())
    report.environment["data"] = dataset.name
    if hasattr(dataset, "info"):  # how the data was read: kind, classes and their order, pixel scale, caps
        from edgeopt.data.classes import describe

        report.environment["dataset"] = describe(dataset)
    if not getattr(dataset, "labelled", True):
        report.environment["labels"] = "none: agreement with the source model only"
    report.environment["targets"] = {}
    if against is not None:
        report.environment["ab"] = {"against": [str(p) for p in against], "unpaired_old": unpaired}
    for folder in map(Path, paths):
        _copy_manifest_sections(report, folder)
    remove_dead_owners(Path(tempfile.gettempdir()), "edgeopt-bench-")  # left by a bench that was kill -9'd
    with tempfile.TemporaryDirectory(prefix=f"edgeopt-bench-{os.getpid()}.") as tmp:
        # without labels (a data set without y_*) results carry fidelity to the source only
        source = _manifest_source(paths)
        scorer = Scorer(dataset, task or source.get("task"), metric)
        run = _Run(report, items, write_inputs(Path(tmp), dataset.x_test), scorer, Path(tmp), out,
                   on_result, on_start, groups, units, changed_since_manifest(items))
        # several outputs: every artifact is scored on the source model's first (TFLite orders them by name)
        run.output = ((source.get("model") or {}).get("output_names") or [None])[0]
        for t in targets:
            run.target_env(t.name).update({"threads": t.threads, "run": t.run.model_dump(),
                                           "connection": t.connection.kind, "device_type": t.device})
        devices = {t.name: device_for(t) for t in targets}
        try:
            _probe(run, targets, devices)  # UsageError here, before anything is measured
            host = [t for t in targets if devices[t.name].shares_host]
            host.sort(key=lambda t: not devices[t.name].timed)  # x86 outputs first: emulated runs compare to them
            own = [[t] for t in targets if not devices[t.name].shares_host]
            lanes = ([host] if host else []) + own
            with ThreadPoolExecutor(max_workers=max(1, len(lanes)), thread_name_prefix="edgeopt-lane") as pool:
                for lane in [pool.submit(_lane, run, lane, devices) for lane in lanes]:
                    lane.result()
        finally:
            for dev in devices.values():
                dev.close()
        _fill_agreement(run)
        for t in targets:
            for a, p in unbuilt:
                run.add(skipped(a, p, t.name, "-", f"not built by compress: {a.error}"))
        order = {n: i for i, n in enumerate(names)}
        arts = {(a.name, groups[i]): i for i, (a, _) in enumerate(items)}
        report.results.sort(key=lambda m: (order.get(m.target, 99), arts.get((m.artifact, m.group), 99)))
        for t in targets:
            if t.calibration is not None and devices[t.name].timed:  # next to measurements: a check on the model
                run.target_env(t.name)["estimates_ms"] = estimate_items(run.items, t)
        if out:
            report.save(out)
    return report


def _probe(run: _Run, targets: list, devices: dict[str, Device]) -> None:
    """Every device's probe (remote ones together: they wait on the network); its record goes into the report."""
    needs = {t.name: {_runtime_for(a, t) for a, _ in run.items} - {None} for t in targets}
    remote = [t for t in targets if not devices[t.name].shares_host]
    with ThreadPoolExecutor(max_workers=max(1, len(remote))) as pool:
        futures = {t.name: pool.submit(devices[t.name].probe, needs[t.name]) for t in remote}
        found = {t.name: devices[t.name].probe(needs[t.name]) for t in targets if t.name not in futures}
        found.update({name: fut.result() for name, fut in futures.items()})  # re-raises a probe's UsageError
    for t in targets:
        run.target_env(t.name).update(found[t.name])


# --- the one loop ---------------------------------------------------------------------------------------

def _lane(run: _Run, targets: list, devices: dict[str, Device]) -> None:
    for t in targets:
        _measure(run, t, devices[t.name])


def _measure(run: _Run, target, device: Device) -> None:
    env = run.target_env(target.name)
    label = "" if device.timed else " (emulated)"
    launches = target.run.launches if device.timed else 1
    references: dict[str | None, np.ndarray] = {}  # group → its source model's outputs, for inline agreement
    results: dict[int, Measurement] = {}
    done: set[int] = set()  # skipped or failed: no further launches
    for k, order in enumerate(rounds(run.units, launches)):
        for i in order:
            if i in done:
                continue
            artifact, path = run.items[i]
            more = f" (launch {k + 1}/{launches})" if launches > 1 else ""
            run.started(f"{artifact.name} on {target.name}{label}{more}")
            if k == 0:
                m = _first_launch(run, i, target, device, env, references)
                results[i] = m
                if m.status != "ok" or not device.timed:
                    done.add(i)
                run.add(m)  # in the report (and saved) from its first launch on: a crash keeps it
                continue
            m = results[i]
            with tempfile.TemporaryDirectory(prefix="edgeopt-run-", dir=run.tmp) as tmp:
                job = Job.for_target(target, path, m.runtime, run.data, tmp, evaluate=False, output=run.output)
                raw = device.run(job)
            if raw.get("status") != "ok":
                m.status, m.error = "failed", f"launch {k + 1}/{launches}: {raw.get('error')}"
                log.warning("%s on %s: %s", artifact.name, target.name, m.error)
                done.add(i)
            else:
                add_launch(m, raw, job.threads, _cores(raw))
            run.save()


def _cores(raw: dict) -> int | None:
    return (raw.get("environment") or {}).get("cores")


def _first_launch(run: _Run, i: int, target, device: Device, env: dict, references: dict) -> Measurement:
    """Launch 1 of artifact ``i``: it also evaluates the test split (accuracy, agreement, outputs)."""
    artifact, path = run.items[i]
    group = run.groups[i]
    runtime = _runtime_for(artifact, target)
    if runtime is None:
        m = skipped(artifact, path, target.name, "-", f"target {target.name} has no runtime for {artifact.format}")
        m.group = group
        return m
    if not path.exists():  # deleted since the manifest was written: this one fails, the others still run
        m = skipped(artifact, path, target.name, runtime, f"artifact file {path.name} is missing", status="failed")
        m.group = group
        return m
    if i in run.changed:
        m = skipped(artifact, path, target.name, runtime, run.changed[i], status="failed")
        m.group = group
        return m
    with tempfile.TemporaryDirectory(prefix="edgeopt-run-", dir=run.tmp) as tmp:
        job = Job.for_target(target, path, runtime, run.data, tmp, skip_timing=not device.timed, output=run.output)
        raw = device.run(job)
        if raw.get("ran") is False:
            m = skipped(artifact, path, target.name, runtime, raw["error"], status=raw["status"], threads=job.threads)
            m.group = group
            return m
        if raw.get("status") != "ok":
            log.warning("%s on %s/%s failed: %s", artifact.name, target.name, runtime, raw.get("error"))
        inline = device.agreement == "inline"
        m, outputs = to_measurement(artifact, path, target.name, runtime, raw, Path(tmp), run.scorer,
                                    references.get(group) if inline else None, job.threads)
    m.group = group
    if m.samples_ms:
        m.samples_ms = []
        add_launch(m, raw, job.threads, _cores(raw))
    for section, record in (raw.get("record") or {}).items():
        env.setdefault(section, {})[artifact.name] = record
    if device.reports_environment and raw.get("environment") and not env.get("device", {}).get("runtime_version"):
        env["device"] = {**env.get("device", {}), **raw["environment"]}
    if not device.timed:  # emulated times and qemu's RSS say nothing about the board
        m.init_ms = m.first_ms = m.peak_rss_mb = m.eval_peak_rss_mb = None
        m.launches = []
        if m.status == "ok":
            noted = _set_estimate(m, path, artifact.format, target)
            for record in (raw.get("record") or {}).values():
                record.update(noted)
    if outputs is not None:
        if inline:
            if artifact.role == "source" and group not in references:
                references[group] = outputs
            if target.device == "cpu" and target.arch == platform.machine():
                run.host_outputs.setdefault(i, outputs)
        else:
            run.pending.append((m, outputs, device.agreement, i))
    return m


def _set_estimate(m: Measurement, path: Path, fmt: str, target) -> dict:
    """The cost model's latency as ``m``'s (marked estimated); what to note beside the run's record."""
    from edgeopt.bench.estimate import estimate_artifact

    if target.calibration is None:
        return {}
    try:
        est = estimate_artifact(path, fmt, target)
    except Exception as e:  # noqa: BLE001 — an unreadable graph leaves the latency empty, the outputs still count
        log.warning("no latency estimate for %s on %s: %s", path.name, target.name, e)
        return {"estimate_error": str(e)[:300]}
    ms = est.ms
    m.latency_ms = Latency(p50=ms, p90=ms, p99=ms, mean=ms, std=0.0, n=0)
    m.samples_ms = []
    m.estimated = True
    return {"estimate": est.to_dict()}


# --- after the lanes ----------------------------------------------------------------------------------

def _fill_agreement(run: _Run) -> None:
    """Agreement for emulated results (vs x86 outputs of the same artifact) and remote results (vs the x86
    source model), computed on this machine after the timed lanes so it cannot disturb them."""
    if not run.pending:
        return
    for m, outputs, against, i in run.pending:
        ref_i = i if against != "source" else next((j for j, (a, _) in enumerate(run.items)
                                                    if a.role == "source" and run.groups[j] == run.groups[i]), None)
        if ref_i is None:
            continue
        ref = _host_outputs(run, ref_i)
        if ref is not None and ref.shape == outputs.shape:
            run.scorer.fidelity(m, outputs, ref)
    if run.out:
        run.report.save(run.out)


def _host_outputs(run: _Run, i: int) -> np.ndarray | None:
    from edgeopt.bench.devices.local import run_local
    from edgeopt.runtimes import for_format

    artifact, path = run.items[i]
    if i not in run.host_outputs:
        run.started(f"{artifact.name} on this x86 CPU (reference outputs)")
        with tempfile.TemporaryDirectory(prefix="edgeopt-ref-", dir=run.tmp) as tmp:
            job = Job.build(path, for_format(artifact.format), run.data, tmp, min(2, os.cpu_count() or 1), REFERENCE,
                            {"output": run.output} if run.output else None, skip_timing=True)
            raw = run_local(job)
            if raw.get("status") != "ok" or not raw.get("outputs"):
                log.warning("no x86 reference outputs for %s: %s", artifact.name, raw.get("error"))
                return None
            run.host_outputs[i] = np.load(Path(tmp) / raw["outputs"])
    return run.host_outputs[i]


def _manifest_source(paths) -> dict:
    """The ``source`` section of the first compress folder's manifest among ``paths`` (its task, its model's
    outputs), or {}."""
    for folder in map(Path, paths):
        if (folder / "manifest.json").is_file():
            return dict(load_manifest(folder).source)
    return {}


def _copy_manifest_sections(report: Report, folder: Path) -> None:
    """What stages recorded goes into the report by compress folder, so the HTML report can show it next to the
    measurements: each manifest section under its own name, what each artifact recorded under ``manifests``."""
    if not (folder / "manifest.json").is_file():
        return
    manifest = load_manifest(folder)
    name = folder.resolve().name
    for key, value in manifest.extra.items():
        report.extra.setdefault(key, {})[name] = value
    per_artifact = {a.name: {k: v for k, v in a.info.items() if k != "parity"} for a in manifest.artifacts}
    per_artifact = {n: info for n, info in per_artifact.items() if info}
    if per_artifact:
        report.extra.setdefault("manifests", {})[name] = {"artifacts": per_artifact}
