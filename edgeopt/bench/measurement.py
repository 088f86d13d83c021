"""A device's result for one job → a Measurement. Raw samples are kept; statistics are derived from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeopt.bench.scoring import Scorer
from edgeopt.core.artifact import Artifact, FileFacts
from edgeopt.core.report import Launch, Measurement


def skipped(artifact: Artifact, path: Path, target: str, runtime: str, reason: str, status: str = "skipped",
            threads: int | None = None) -> Measurement:
    """A result for a job that never reached a runner (no file facts: nothing was run)."""
    return Measurement(artifact=artifact.name, format=artifact.format, precision=artifact.precision, target=target,
                       runtime=runtime, status=status, error=reason, path=str(path), role=artifact.role,
                       stages=list(artifact.stages), threads=threads)


def to_measurement(artifact: Artifact, path: Path, target_name: str, runtime: str, raw: dict, out: Path,
                   scorer: Scorer, reference: np.ndarray | None, threads: int) -> tuple[Measurement, np.ndarray | None]:
    """The Measurement, and the outputs on the eval split when the run is ok (None otherwise).

    The task's metrics and the fidelity are scored (``scorer``) whenever the runner wrote outputs, also for a run the
    device failed afterwards (a GPU provider that fell back to the CPU): the outputs are right, the times are not."""
    m = Measurement(artifact=artifact.name, format=artifact.format, precision=artifact.precision, target=target_name,
                    runtime=runtime, status=raw.get("status", "failed"), error=raw.get("error"), path=str(path),
                    role=artifact.role, stages=list(artifact.stages), threads=threads)
    m.size_bytes, m.gzip_bytes, m.params, m.nonzero_params = (artifact.facts or FileFacts(path, artifact.format)).astuple()
    if raw.get("params") is not None:
        m.params, m.nonzero_params = raw["params"], raw.get("nonzero_params")
    m.init_ms, m.first_ms, m.peak_rss_mb = raw.get("init_ms"), raw.get("first_ms"), raw.get("peak_rss_mb")
    m.eval_peak_rss_mb = raw.get("eval_peak_rss_mb")
    samples = raw.get("samples_ms") or []
    if samples:
        m.samples_ms = [round(s, 5) for s in samples]  # latency_ms derives from these
    outputs = None
    if raw.get("outputs"):
        outputs = np.load(out / raw["outputs"])
        if len(outputs) != len(scorer):
            m.status, m.error = "failed", f"runner returned {len(outputs)} outputs for {len(scorer)} samples"
            return m, None
        scorer.score(m, outputs, reference, artifact.role == "source")
    return m, outputs if m.status == "ok" else None


# A launch shared the CPU when its worker was off the CPU for a fifth of its timing, or other processes kept
# busy the cores its threads needed (more than a quarter of a core over what was left free).
MIN_CPU_RATIO = 0.8
SPARE_CORES = 0.25


def launch_record(raw: dict, threads: int | None, cores: int | None) -> Launch:
    """What one worker launch timed, and whether it was contended."""
    timing = raw.get("timing") or {}
    ratio, other = timing.get("cpu_ratio"), timing.get("other_cpu")
    contended = ratio is not None and ratio < MIN_CPU_RATIO
    if other is not None and cores:
        contended |= other > cores - min(threads or 1, cores) + SPARE_CORES
    return Launch(n=len(raw.get("samples_ms") or []), runs=timing.get("runs"), timed_s=timing.get("timed_s"),
                  cpu_ratio=ratio, load_1m=timing.get("load_1m"), other_cpu=other, contended=contended,
                  init_ms=raw.get("init_ms"), first_ms=raw.get("first_ms"), peak_rss_mb=raw.get("peak_rss_mb"))


def add_launch(m: Measurement, raw: dict, threads: int | None, cores: int | None) -> None:
    """Append one more launch's samples and record to ``m``; init, first-inference and memory figures become
    the launches' median (times) and largest (memory: a budget is an upper bound)."""
    la = launch_record(raw, threads, cores)
    m.samples_ms = [*m.samples_ms, *(round(s, 5) for s in raw.get("samples_ms") or [])]
    m.launches = [*m.launches, la]
    for attr, pick in (("init_ms", np.median), ("first_ms", np.median), ("peak_rss_mb", np.max)):
        vals = [getattr(x, attr) for x in m.launches if getattr(x, attr) is not None]
        if vals:
            setattr(m, attr, round(float(pick(vals)), 4))
