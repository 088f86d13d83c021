"""Latency statistics and launch records, derived from raw single-inference samples in one place (habit 10: keep raw samples,
derive statistics from them). The report, the gate and the baseline comparison all read them from here."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

_MS = Field(ge=0)


class Latency(BaseModel):
    """Summary of raw single-inference samples, in milliseconds (n = 0: an estimate, not a run)."""

    model_config = ConfigDict(extra="ignore")

    p50: float = _MS
    p90: float = _MS
    p99: float = _MS
    mean: float = _MS
    std: float = _MS
    n: int = Field(ge=0)
    launches: int | None = Field(None, ge=0, description="independent worker launches the samples come from")
    noise: float | None = Field(None, ge=0, description="between-launch noise: half the range of the launches' "
                                                       "medians relative to their median (None: one launch)")

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float], launches: Sequence[Launch] = ()) -> Latency:
        import numpy as np

        a = np.asarray(samples_ms, dtype=np.float64)
        if a.size == 0:
            raise ValueError("no latency samples")
        p50, p90, p99 = np.percentile(a, [50, 90, 99])
        parts = split(samples_ms, launches)
        return cls(p50=float(p50), p90=float(p90), p99=float(p99), mean=float(a.mean()),
                   std=float(a.std(ddof=1)) if a.size > 1 else 0.0, n=int(a.size),
                   launches=len(parts) if launches else None,
                   noise=relative_spread([float(np.median(p)) for p in parts]) if launches else None)

    @property
    def cv(self) -> float:
        return self.std / self.mean if self.mean else 0.0


class Launch(BaseModel):
    """One independent worker launch of one artifact: how many of the result's raw samples it holds (its slice of
    ``samples_ms``, in launch order) and how contended the machine was while it timed."""

    model_config = ConfigDict(extra="ignore")

    n: int = Field(ge=0, description="samples kept from this launch: the next n of samples_ms")
    runs: int | None = Field(None, ge=0, description="timed runs (n is a uniform subset of them when smaller)")
    timed_s: float | None = Field(None, ge=0)
    cpu_ratio: float | None = Field(None, ge=0, description="worker CPU time / wall time while timing")
    load_1m: float | None = Field(None, ge=0, description="system load average (1 min) after timing")
    other_cpu: float | None = Field(None, ge=0, description="cores other processes kept busy while timing")
    contended: bool = Field(False, description="the launch shared the CPU with other work (see cpu_ratio, other_cpu)")
    init_ms: float | None = Field(None, ge=0)
    first_ms: float | None = Field(None, ge=0)
    peak_rss_mb: float | None = Field(None, ge=0)


def split(samples_ms: Sequence[float], launches: Sequence[Launch]) -> list[list[float]]:
    """Each launch's raw samples (its slice of the result's samples_ms); [all samples] without launch records."""
    if not launches or sum(la.n for la in launches) != len(samples_ms):
        return [list(samples_ms)] if len(samples_ms) else []
    out, i = [], 0
    for la in launches:
        out.append(list(samples_ms[i : i + la.n]))
        i += la.n
    return [s for s in out if s]


def launch_p50s(samples_ms: Sequence[float], launches: Sequence[Launch], uncontended: bool = False) -> list[float]:
    """The median of each launch (uncontended=True: of each uncontended launch only)."""
    import numpy as np

    parts = split(samples_ms, launches)
    if uncontended and launches and len(parts) == len(launches):
        parts = [p for p, la in zip(parts, launches, strict=True) if not la.contended]
    return [float(np.median(p)) for p in parts]


def relative_spread(values: Sequence[float]) -> float | None:
    """Half the range of ``values`` relative to their median: the noise floor of a launch-level figure (None
    with fewer than two values: one launch cannot tell its noise)."""
    import numpy as np

    if len(values) < 2:
        return None
    med = float(np.median(values))
    return float((max(values) - min(values)) / 2 / med) if med > 0 else None
