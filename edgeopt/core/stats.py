"""Latency statistics, derived from raw single-inference samples in one place (habit 10: keep raw samples,
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

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> Latency:
        import numpy as np

        a = np.asarray(samples_ms, dtype=np.float64)
        if a.size == 0:
            raise ValueError("no latency samples")
        p50, p90, p99 = np.percentile(a, [50, 90, 99])
        return cls(p50=float(p50), p90=float(p90), p99=float(p99), mean=float(a.mean()),
                   std=float(a.std(ddof=1)) if a.size > 1 else 0.0, n=int(a.size))

    @property
    def cv(self) -> float:
        return self.std / self.mean if self.mean else 0.0
