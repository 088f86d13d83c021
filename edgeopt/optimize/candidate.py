"""One candidate of the search: its recipe run through the stage pipeline (compress), its artifact screened by
cheap figures (file size, the convert stage's validation top-1, the target's latency estimate), then — when it
could meet the budgets — measured by the one bench harness, and judged against the budgets by the gate.

Everything here scores on the VALIDATION split: the pipeline gets a view of the data set (data.arrays.selection_view)
whose test split is part of the validation split, so the search never reads the test split (optimize reads it once,
for the best artifact), and whose validation split is the other part (``optimize: {holdout}``): what the stages
choose (early stopping with the best epoch restored, sensitivity scans, int8 fallbacks) is chosen on rows that do
not rank the candidates.

A target that cannot be reached from here (a board over SSH that is not there) but has a latency calibration is
measured on this machine for accuracy, with its latency from the cost model, marked ``estimated``."""

from __future__ import annotations

import logging
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeopt.core.report import Latency, Measurement, Report
from edgeopt.errors import UsageError
from edgeopt.verdict.budgets import LIMIT_KEYS, Budgets

log = logging.getLogger(__name__)

CONSTRAINTS = (*LIMIT_KEYS, "status")  # one Optuna constraint per budget key (≤ 0: met), the same in every trial
STAND_IN = {"warmup": 0, "min_runs": 1, "min_seconds": 0.0, "max_seconds": 1.0, "launches": 1}


class Stopped(Exception):
    """The candidate cannot be scored: the accuracy guard stopped its pipeline, or its artifact was not built."""

    def __init__(self, message: str, cached: list[str] | None = None) -> None:
        super().__init__(message)
        self.cached = cached or []


def cached_stages(manifest) -> list[str]:
    """The model stages the stage cache gave this run (a prefix shared with an earlier candidate)."""
    return [s["stage"] for s in (manifest.extra.get("cache") or {}).get("stages", []) if s.get("from_cache")]


@dataclass(frozen=True)
class Measurer:
    """How candidates are measured on one target: on the target itself (``mode='device'``) or on this machine
    with the target's latency estimate (``mode='estimate'``)."""

    target: Any  # bench.targets.Target the budgets name
    bench_target: Any  # what benchmark() runs on: the target, or a local stand-in under its name
    mode: str  # device | estimate
    why: str

    @classmethod
    def for_target(cls, target) -> Measurer:
        from edgeopt.bench.devices.reachability import reachability

        ok, why = reachability(target)
        if ok == "yes":
            return cls(target, target, "device", why)
        if target.calibration is None:
            raise UsageError(f"target {target.name} is not reachable from here ({why}) and has no latency "
                             "calibration to estimate with", "connect the target (see `edgeopt targets`) or "
                                                             "add a calibration: section to its file")
        return cls(target, stand_in(target), "estimate", f"{why}; latency estimated from its calibration")


def stand_in(target):
    """This machine's CPU under ``target``'s name and runtimes: runs the artifact for its outputs (one short
    launch); the latency is the target's estimate."""
    from edgeopt.bench.targets import Connection, Target

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    spec = target.spec.model_copy(update={
        "connection": Connection(), "arch": platform.machine(), "device": "cpu", "cores": cores,
        "threads": min(target.threads, cores), "run": target.spec.run.model_copy(update=STAND_IN)})
    return Target(spec=spec, source=target.source)


def pipeline(model_path: Path, view, recipe, out: Path, progress=None):
    """Run ``recipe`` on the model (compress, into ``out``); the manifest. Raises Stopped when the accuracy guard
    stopped it or its artifact was not built."""
    from edgeopt.compress import compress

    manifest = compress(model_path, view, out, recipe=recipe, force=True, progress=progress)
    guard = manifest.extra.get("guard") or {}
    if guard.get("verdict") == "stopped":
        raise Stopped(guard.get("message", "the accuracy guard stopped the pipeline"), cached_stages(manifest))
    built = [a for a in manifest.artifacts if a.format in ("tflite", "onnx")]
    if not built or built[-1].status == "failed":
        raise Stopped(f"not built: {built[-1].error if built else 'no artifact'}", cached_stages(manifest))
    return manifest


def final_artifact(manifest, out: Path):
    a = [a for a in manifest.artifacts if a.format in ("tflite", "onnx")][-1]
    return a, out / a.path


def source_measurement(manifest, target_name: str) -> Measurement:
    """The source model as the gate's reference for accuracy_drop: its top-1 on the rows the candidate is scored
    on (the view's test split, the validation rows that rank), as the pipeline measured it; not the guard's
    figure, which is on the rows the stages chose on."""
    src = next(a for a in manifest.artifacts if a.role == "source")
    guard = manifest.extra.get("guard") or {}
    return Measurement(artifact=src.name, format=src.format, precision=src.precision, target=target_name,
                       runtime="tf", status="ok", role="source", size_bytes=src.size_bytes,
                       accuracy=(guard.get("reference") or {}).get("test", guard.get("source_accuracy")))


def screen(artifact, path: Path, measurer: Measurer, threads: int) -> Measurement:
    """Cheap figures: the file's size, the convert stage's top-1 (validation, in a LiteRT/ORT session), the
    target's latency estimate when it has a calibration (None otherwise)."""
    from edgeopt.runtimes import for_format

    par = artifact.info.get("parity") or {}
    m = Measurement(artifact=artifact.name, format=artifact.format, precision=artifact.precision,
                    target=measurer.target.name, runtime=for_format(artifact.format), status="ok", path=str(path),
                    stages=list(artifact.stages), size_bytes=artifact.size_bytes, accuracy=par.get("accuracy"),
                    threads=threads)
    if measurer.target.calibration is not None:
        try:
            m.latency_ms = estimated_latency(path, artifact.format, measurer, threads)
            m.estimated = True
        except Exception as e:  # noqa: BLE001 — no estimate: the full measurement decides
            log.info("no latency estimate for %s: %s", path.name, e)
    return m


def estimated_latency(path: Path, fmt: str, measurer: Measurer, threads: int) -> Latency:
    """The target's latency estimate of one artifact, as a Latency (every percentile the one figure, no samples)."""
    from edgeopt.bench.estimate import estimate_artifact

    ms = estimate_artifact(path, fmt, measurer.target, threads=threads).ms
    return Latency(p50=ms, p90=ms, p99=ms, mean=ms, std=0.0, n=0)


def measure(path: Path, dataset, measurer: Measurer, threads: int, overrides: dict[str, Any],
            estimate: Latency | None = None) -> Measurement:
    """The bench harness on one artifact (``dataset``'s test split scores it); on a stand-in the latency is
    replaced by the target's estimate (``estimate``, the screen's, when it made one) and marked so."""
    from edgeopt.bench.orchestrate import benchmark

    extra = overrides if measurer.mode == "device" else {}
    report = benchmark([path], [measurer.bench_target], dataset, threads=threads, **extra)
    m = report.results[0]
    if measurer.mode == "estimate" and m.status == "ok":
        m.samples_ms, m.launches = [], []
        m.latency_ms = estimate or estimated_latency(path, m.format, measurer, threads)
        m.estimated = True
        m.init_ms = m.first_ms = m.peak_rss_mb = m.eval_peak_rss_mb = None  # this machine's, not the board's
    return m


def judge(m: Measurement, source: Measurement, budgets: Budgets) -> dict[str, Any]:
    """The gate's checks on one candidate: which budgets it meets, the misses (messages), and one Optuna
    constraint per budget key (relative miss, > 0 when it misses; a check that cannot be made counts as a
    miss of 1)."""
    from edgeopt.verdict.gate import check

    verdict = check(Report(results=[source, m]), budgets)
    mine = [c for c in verdict.checks if c.artifact == m.artifact and c.metric != "budget"]
    constraints = dict.fromkeys(CONSTRAINTS, 0.0)
    meets: dict[str, bool] = {}
    misses: list[str] = []
    unknown: list[str] = []  # checks that could not be made (no latency estimate yet)
    for c in mine:
        key = next((k for k in LIMIT_KEYS if k[4:] == c.metric), "status")
        meets[key] = meets.get(key, True) and c.passed
        if c.level != "error":
            continue
        if not c.passed:
            misses.append(c.message)
            if c.measured is None:
                unknown.append(key)
        constraints[key] = max(constraints[key], _violation(c))
    return {"meets": meets, "meets_all": all(meets.values()) if meets else True, "misses": misses,
            "unknown": unknown,
            "constraints": [round(constraints[k], 6) for k in CONSTRAINTS],
            "checks": [{"metric": c.metric, "measured": c.measured, "limit": c.limit, "level": c.level,
                        "passed": c.passed, "message": c.message} for c in mine]}


def _violation(c) -> float:
    if c.passed:
        return 0.0
    if not isinstance(c.measured, int | float) or not isinstance(c.limit, int | float):
        return 1.0
    scale = abs(c.limit) if c.limit else 1.0
    return abs(c.measured - c.limit) / scale


def figures(m: Measurement) -> dict[str, Any]:
    lat = m.latency_ms
    return {"accuracy": m.accuracy, "p90_ms": None if lat is None else round(lat.p90, 6), "size_bytes": m.size_bytes,
            "gzip_bytes": m.gzip_bytes, "estimated": m.estimated, "runtime": m.runtime, "threads": m.threads,
            "status": m.status, "error": m.error}


def promising(judged: dict[str, Any], margin: float) -> bool:
    """Worth the full measurement: every miss of the cheap figures is within ``margin`` (relative) of its
    budget; a check that could not be made yet (no latency estimate) does not rule it out."""
    return all(v <= margin - 1 for k, v in zip(CONSTRAINTS, judged["constraints"], strict=True)
               if k not in judged["unknown"])


# the fewest bytes a weight takes in each quant mode's artifact (int8 fallback keeps some ops in float: more)
BYTES_PER_WEIGHT = {"fp32": 4, "fp16": 2, "dynamic": 1, "int8_weights": 1, "int8": 1, "int8_fallback": 1, "qat": 1,
                    "u8s8": 1}


def error_limit(budgets: Budgets, target_name: str, key: str) -> float | None:
    """The error-level limit ``key`` that holds for every artifact on ``target_name``, or None: the pre-checks
    prune candidates before their artifact exists, so only a limit no artifact can escape is used. The target's
    own rule comes from the gate's precedence (verdict.gate.effective_limits: the target's block over ``*``, a
    warn level included); an ``artifacts:`` selector that sets the key may hold some artifacts to another limit,
    so the loosest of them counts, and none when one of them only warns."""
    from edgeopt.verdict.gate import effective_limits

    plain = budgets.model_copy(update={"targets": {
        t: b.model_copy(update={"artifacts": {}}) for t, b in budgets.targets.items()}})
    anyone = Measurement(artifact="candidate", format="tflite", precision="int8", target=target_name, runtime="any",
                         status="ok")  # (selectors are dropped from `plain`: its fields select nothing)
    rule = effective_limits(plain, anyone).get(key)
    if rule is None or rule.level != "error":
        return None
    limits = [rule.limit]
    for block in (budgets.targets[t] for t in (target_name, "*") if t in budgets.targets):
        for ab in block.artifacts.values():
            lim = ab.limits().get(key)
            if lim is None:
                continue
            if (lim.level or ab.level) != "error":
                return None
            limits.append(lim.limit)
    return max(limits) if key.startswith("max_") else min(limits)


def size_limit_kb(budgets: Budgets, target_name: str) -> float | None:
    return error_limit(budgets, target_name, "max_size_kb")


def needed_accuracy(budgets: Budgets, target_name: str, source_accuracy: float | None) -> float | None:
    """The lowest validation top-1 that can meet the target's error-level min_accuracy and max_accuracy_drop
    (against the source's ``source_accuracy``), or None when the budgets ask no accuracy."""
    need = [v for v in (error_limit(budgets, target_name, "min_accuracy"),) if v is not None]
    drop = error_limit(budgets, target_name, "max_accuracy_drop")
    if drop is not None and source_accuracy is not None:
        need.append(source_accuracy - drop)
    return max(need) if need else None


def screen_student(model_path: Path, view, recipe, out: Path) -> dict[str, Any]:
    """The short run of a candidate's student: only the recipe's first stage (its short distill, see
    space.distill_stages), through the stage cache — the full pipeline then starts from the cached entry, so the
    short epochs never train twice. Returns its validation top-1, the source's, and whether it came from the
    cache; raises Stopped when the accuracy guard stopped it."""
    import shutil

    from edgeopt.compress import compress
    from edgeopt.stages import STAGES

    prefix = recipe.model_copy(update={"stages": [recipe.stages[0],
                                                  ("convert", STAGES["convert"].config(tflite=[], onnx=[]))]})
    manifest = compress(model_path, view, out, recipe=prefix, force=True)
    guard = manifest.extra.get("guard") or {}
    shutil.rmtree(out, ignore_errors=True)  # ours (candidates/); the model lives on in the stage cache
    if guard.get("verdict") == "stopped":
        raise Stopped(guard.get("message", "the accuracy guard stopped the short run"), cached_stages(manifest))
    stage = guard["stages"][0]
    return {"accuracy": stage["accuracy"], "source_accuracy": guard.get("source_accuracy"),
            "epochs": recipe.stages[0][1].epochs, "cached": bool(cached_stages(manifest))}


def hopeless_accuracy(short: dict[str, Any], gain: float, needed: float | None, epochs: int) -> str | None:
    """Why the candidate's student cannot reach the accuracy the budgets need — its short run's validation top-1
    plus ``gain`` (the most the remaining epochs are taken to add) is still under it — or None."""
    if needed is None or short["accuracy"] + gain >= needed:
        return None
    return (f"hopeless after the short run: val top-1 {short['accuracy']:.4f} after {short['epochs']} of {epochs} "
            f"distillation epochs; + {gain:g} for the rest is still under the {needed:.4f} the budgets need")


def weights_of(student: dict[str, Any] | None, source_params: int, dataset, channel: float = 0.0) -> int:
    """The fewest weights the candidate's model can have, known before any stage trains it: the source's or the
    (built, untrained) student's, times (1 − channel share)² when channel pruning removes that share of every
    layer's inputs and outputs (the input and output layers keep theirs: more, never fewer)."""
    if student is None:
        n = source_params
    else:
        from edgeopt.models import zoo

        spec = dict(student)
        n = int(zoo.build(spec.pop("zoo"), dataset.input_shape, dataset.num_classes, **spec).count_params())
    return int(n * (1 - channel) ** 2)


def hopeless_size(weights: int, quant: str, limit_kb: float | None) -> str | None:
    """Why the candidate cannot meet max_size_kb whatever its training does (its weights alone are over it), or
    None. Pruning and clustering keep every weight in a .tflite/.onnx file: they do not shrink it."""
    if limit_kb is None:
        return None
    floor_kb = weights * BYTES_PER_WEIGHT[quant] / 1024
    if floor_kb <= limit_kb:
        return None
    return (f"hopeless before training: {weights:,} weights (at least) as {quant} take {floor_kb:,.1f} KB, over "
            f"max_size_kb {limit_kb:g}")
