"""A device's result for one job → a Measurement. Raw samples are kept; statistics are derived from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeopt.core import metrics
from edgeopt.core.artifact import Artifact, FileFacts
from edgeopt.core.report import Measurement


def skipped(artifact: Artifact, path: Path, target: str, runtime: str, reason: str, status: str = "skipped",
            threads: int | None = None) -> Measurement:
    """A result for a job that never reached a runner (no file facts: nothing was run)."""
    return Measurement(artifact=artifact.name, format=artifact.format, precision=artifact.precision, target=target,
                       runtime=runtime, status=status, error=reason, path=str(path), role=artifact.role,
                       stages=list(artifact.stages), threads=threads)


def to_measurement(artifact: Artifact, path: Path, target_name: str, runtime: str, raw: dict, out: Path,
                   labels: np.ndarray, reference: np.ndarray | None, threads: int) -> tuple[Measurement, np.ndarray | None]:
    """The Measurement, and the outputs on the eval split when the run is ok (None otherwise).

    Accuracy and agreement are scored whenever the runner wrote outputs, also for a run the device failed
    afterwards (a GPU provider that fell back to the CPU): the outputs are right, the times are not."""
    m = Measurement(artifact=artifact.name, format=artifact.format, precision=artifact.precision, target=target_name,
                    runtime=runtime, status=raw.get("status", "failed"), error=raw.get("error"), path=str(path),
                    role=artifact.role, stages=list(artifact.stages), threads=threads)
    m.size_bytes, m.gzip_bytes, m.params, m.nonzero_params = (artifact.facts or FileFacts(path, artifact.format)).astuple()
    if raw.get("params") is not None:
        m.params, m.nonzero_params = raw["params"], raw.get("nonzero_params")
    m.init_ms, m.first_ms, m.peak_rss_mb = raw.get("init_ms"), raw.get("first_ms"), raw.get("peak_rss_mb")
    samples = raw.get("samples_ms") or []
    if samples:
        m.samples_ms = [round(s, 5) for s in samples]  # latency_ms derives from these
    outputs = None
    if raw.get("outputs"):
        outputs = np.load(out / raw["outputs"])
        if len(outputs) != len(labels):
            m.status, m.error = "failed", f"runner returned {len(outputs)} outputs for {len(labels)} samples"
            return m, None
        m.accuracy = metrics.accuracy(outputs, labels)
        if reference is not None and reference.shape == outputs.shape:
            m.agreement = metrics.agreement(outputs, reference)
            m.max_abs_diff = metrics.max_abs_diff(outputs, reference)
    return m, outputs if m.status == "ok" else None
