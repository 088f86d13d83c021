"""Baseline comparison: which results got slower, bigger or less accurate than in an older report.

Results measured in several worker launches are compared on launch-level figures (each launch's median):
samples within one process are correlated, so thousands of them prove nothing about the next process. The
change is the ratio of the launches' medians (A/B twins: the median of the paired launches' ratios, which
cancels drift that hits both); the noise floor is half the range of the launch-level figures (unpaired:
both sides' combined). A change is a regression only when it exceeds the threshold (the effect size), the
noise floor does not, and the launches do not overlap; a noise floor above the threshold makes the
comparison inconclusive, never a pass or a fail. With a stored baseline, contended launches are left out.

Results without launch records (one process, older reports) keep the old rule: significant (two-sided
Mann-Whitney U on the raw samples, p < alpha) and large. Estimated latencies are a deterministic model,
so they are compared with estimated ones only, by p50.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from edgeopt.core.report import Measurement, Report
from edgeopt.errors import UsageError
from edgeopt.verdict.budgets import RegressionRules

REGRESSED, IMPROVED, UNCHANGED, NOT_COMPARED, MISSING = "regressed", "improved", "unchanged", "not compared", "missing"
INCONCLUSIVE = "inconclusive"
_EPS = 1e-9  # float slack so a drop of exactly the tolerance is not flagged by rounding


@dataclass
class Comparison:
    """One metric of one (artifact, target, runtime) in the new report against the baseline."""

    artifact: str
    target: str
    runtime: str
    metric: str  # p50_ms | size_bytes | accuracy | the task metric's name (mae, f1, ...) | status | presence
    old: float | str | None
    new: float | str | None
    change: float | None  # relative for p50_ms and size_bytes, absolute (new - old) for accuracy and task metrics
    p_value: float | None
    threshold: float | None
    verdict: str  # regressed | improved | unchanged | inconclusive | not compared | missing
    note: str = ""
    role: str = "artifact"  # "source": the reference model; its changes are reported, never a regression
    noise: float | None = None  # the comparison's relative noise floor (launch-level), when measured

    @property
    def regressed(self) -> bool:
        """A regression that gates: the source model is a reference, its changes are only shown."""
        return self.verdict == REGRESSED and self.role != "source"

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.artifact, self.target, self.runtime)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(report: Report, baseline: Report, rules: RegressionRules | None = None,
            paired: bool = False) -> list[Comparison]:
    """Compare every (artifact, target, runtime) present in both reports, plus what disappeared. ``paired``: the
    two are the new and old halves of one A/B run (launch k of each twin ran back to back)."""
    if report.schema_version != baseline.schema_version:
        raise UsageError(f"baseline has schema_version {baseline.schema_version}, the report has "
                         f"{report.schema_version}", "re-run `edgeopt bench` with the same edgeopt for both reports")
    rules = rules or RegressionRules()
    old_by_key = {r.key: r for r in baseline.results}
    new_keys = {r.key for r in report.results}
    out: list[Comparison] = []
    for new in report.results:
        old = old_by_key.get(new.key)
        if old is None or old.status != "ok":
            continue  # nothing to regress from
        if new.status != "ok":
            verdict = REGRESSED if new.status == "failed" else NOT_COMPARED
            out.append(_cmp(new, "status", "ok", new.status, None, None, None, verdict, new.error or ""))
            continue
        out += [c for c in (compare_latency(old, new, rules, paired), compare_size(old, new, rules),
                            compare_accuracy(old, new, rules), compare_metric(old, new, rules)) if c is not None]
    for old in baseline.results:
        if old.key not in new_keys and old.status == "ok":
            out.append(_cmp(old, "presence", "present", "absent", None, None, None, MISSING,
                            "in the baseline but not in this report"))
    return out


def compare_latency(old: Measurement, new: Measurement, rules: RegressionRules,
                    paired: bool = False) -> Comparison | None:
    if old.latency_ms is None:
        return None
    if new.latency_ms is None:
        return _cmp(new, "p50_ms", _p50(old), None, None, None, rules.p50, NOT_COMPARED, "no latency in this report")
    if old.estimated != new.estimated:
        which = "estimated" if new.estimated else "measured"
        return _cmp(new, "p50_ms", _p50(old), _p50(new), None, None, rules.p50, NOT_COMPARED,
                    f"{which} latency is compared only with {which} latency; the baseline's is not")
    old_p50, new_p50 = _p50(old), _p50(new)
    change = (new_p50 - old_p50) / old_p50 if old_p50 else None
    if new.estimated:
        verdict = _by_threshold(change, rules.p50)
        return _cmp(new, "p50_ms", old_p50, new_p50, change, None, rules.p50, verdict, "estimated: compared by p50")
    if len(old.launches) >= 2 and len(new.launches) >= 2:
        return compare_launches(old, new, rules, paired)
    if len(old.samples_ms) < 2 or len(new.samples_ms) < 2:
        return _cmp(new, "p50_ms", old_p50, new_p50, change, None, rules.p50, NOT_COMPARED,
                    "raw samples missing: cannot tell noise from change")
    p_value = mann_whitney_p(old.samples_ms, new.samples_ms)
    verdict = _by_threshold(change, rules.p50) if p_value < rules.alpha else UNCHANGED
    note = "" if p_value < rules.alpha else f"not significant at alpha {rules.alpha:g}"
    note = "; ".join(x for x in (note, "one launch per side: between-launch noise unknown") if x)
    return _cmp(new, "p50_ms", old_p50, new_p50, change, p_value, rules.p50, verdict, note)


def compare_launches(old: Measurement, new: Measurement, rules: RegressionRules, paired: bool) -> Comparison:
    """p50 on launch-level figures (see the module docstring)."""
    import numpy as np

    from edgeopt.core.stats import launch_p50s, relative_spread

    threshold = rules.p50
    o, n = launch_p50s(old.samples_ms, old.launches, not paired), launch_p50s(new.samples_ms, new.launches, not paired)
    rests = (f"{len(n)} vs {len(o)} launches ({len(new.samples_ms)} vs {len(old.samples_ms)} samples)"
             + (", paired" if paired else ""))
    old_p50 = float(np.median(o)) if o else _p50(old)
    new_p50 = float(np.median(n)) if n else _p50(new)
    if len(o) < 2 or len(n) < 2:
        quiet = f"{len(n)} of {len(new.launches)} new and {len(o)} of {len(old.launches)} baseline launches"
        return _cmp(new, "p50_ms", old_p50, new_p50, None, None, threshold, INCONCLUSIVE,
                    f"too few uncontended launches ({quiet}): rerun on a quiet machine or in A/B mode (--against)")
    if paired:
        ratios = [a / b for a, b in zip(n, o, strict=False) if b > 0]
        change = float(np.median(ratios)) - 1
        noise = relative_spread(ratios) or 0.0
        separated = all(r > 1 for r in ratios) if change > 0 else all(r < 1 for r in ratios)
    else:
        change = new_p50 / old_p50 - 1 if old_p50 else 0.0
        noise = float(np.hypot(relative_spread(o) or 0.0, relative_spread(n) or 0.0))
        separated = min(n) > max(o) if change > 0 else max(n) < min(o)
    floor = f"noise floor ±{noise:.1%}"
    if noise > threshold + _EPS:
        verdict, note = INCONCLUSIVE, f"{floor} is above the {threshold:.0%} threshold: this run cannot tell"
    elif change > threshold + _EPS and not separated:
        verdict, note = INCONCLUSIVE, f"{floor}, but the launches overlap"
    elif abs(change) > threshold + _EPS and not separated:
        verdict, note = UNCHANGED, f"{floor}; the launches overlap"
    else:
        verdict, note = _by_threshold(change, threshold), floor
    c = _cmp(new, "p50_ms", old_p50, new_p50, change, None, threshold, verdict, f"{note}; {rests}")
    c.noise = noise
    return c


def compare_size(old: Measurement, new: Measurement, rules: RegressionRules) -> Comparison | None:
    if not old.size_bytes or new.size_bytes is None:
        return None
    change = (new.size_bytes - old.size_bytes) / old.size_bytes
    verdict = REGRESSED if change > rules.size + _EPS else IMPROVED if change < 0 else UNCHANGED
    return _cmp(new, "size_bytes", old.size_bytes, new.size_bytes, change, None, rules.size, verdict)


def compare_accuracy(old: Measurement, new: Measurement, rules: RegressionRules) -> Comparison | None:
    if old.accuracy is None or new.accuracy is None:
        return None
    change = new.accuracy - old.accuracy
    verdict = REGRESSED if -change > rules.accuracy + _EPS else IMPROVED if change > rules.accuracy + _EPS \
        else UNCHANGED
    return _cmp(new, "accuracy", old.accuracy, new.accuracy, change, None, rules.accuracy, verdict)


def compare_metric(old: Measurement, new: Measurement, rules: RegressionRules) -> Comparison | None:
    """The task's headline metric where it is not top-1 (classification is judged by compare_accuracy): worse by
    more than ``rules.metric`` (absolute, in the metric's units; for a lower-is-better metric, a rise) regresses."""
    if new.accuracy is not None or old.metric_value is None or new.metric_value is None:
        return None
    if old.metric != new.metric:
        return _cmp(new, new.metric or "metric", old.metric_value, new.metric_value, None, None, rules.metric,
                    NOT_COMPARED, f"the baseline's metric is {old.metric}, this report's {new.metric}")
    change = new.metric_value - old.metric_value
    worse = new.goodness(old.metric_value) - new.goodness(new.metric_value)
    verdict = REGRESSED if worse > rules.metric + _EPS else IMPROVED if -worse > rules.metric + _EPS else UNCHANGED
    note = "lower is better" if new.lower_is_better else ""
    return _cmp(new, new.metric or "metric", old.metric_value, new.metric_value, change, None, rules.metric, verdict,
                note)


def mann_whitney_p(a: list[float], b: list[float]) -> float:
    """Two-sided Mann-Whitney U p-value; 1.0 when every sample is identical (nothing to test)."""
    import numpy as np
    from scipy.stats import mannwhitneyu

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if np.ptp(np.concatenate([x, y])) == 0:
        return 1.0
    return float(mannwhitneyu(x, y, alternative="two-sided").pvalue)


def _p50(m: Measurement) -> float:
    assert m.latency_ms is not None  # derived from the raw samples when there are any
    return float(m.latency_ms.p50)


def _by_threshold(change: float | None, threshold: float) -> str:
    if change is None:
        return UNCHANGED
    return REGRESSED if change > threshold + _EPS else IMPROVED if change < -threshold - _EPS else UNCHANGED


def _cmp(m: Measurement, metric: str, old: Any, new: Any, change: float | None, p_value: float | None,
         threshold: float | None, verdict: str, note: str = "") -> Comparison:
    if m.role == "source" and verdict != UNCHANGED:
        note = "; ".join(x for x in (note, "source model: a reference, not gated") if x)
    return Comparison(m.artifact, m.target, m.runtime, metric, old, new, change, p_value, threshold, verdict, note,
                      m.role)
