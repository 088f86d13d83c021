"""The release gate: a report against budgets and/or a baseline report -> a Verdict and an exit code.

``check`` is a pure function of objects already loaded (verdict/inputs.py, budgets.load_budgets); the CLI
prints and writes what it returns (render/*).

Every limit that applies to a result becomes a Check; so does every baseline comparison, every failed
or skipped result under a budget, and every budget that matched nothing (a typo must not pass
silently). Error-level failures fail the gate (exit 1); warnings and notes never do. A baseline
comparison whose noise floor is above its threshold is inconclusive: never a pass, never a fail (exit 0,
or 1 with ``strict``). An A/B report (``bench --against``) judges each new artifact against its old twin.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from edgeopt.core.report import Measurement, Report
from edgeopt.errors import UsageError, nearest
from edgeopt.verdict.budgets import ALL_TARGETS, LIMIT_KEYS, Budgets, RegressionRules, selector_matches
from edgeopt.verdict.compare import INCONCLUSIVE, MISSING, NOT_COMPARED, REGRESSED, Comparison, compare
from edgeopt.verdict.text import fmt_change, fmt_ms, fmt_value, one_line

OUTCOMES = ("fail", "inconclusive", "warn", "note", "pass")


@dataclass(frozen=True)
class Rule:
    """One budget limit as it applies to one result, after precedence (see budgets.py): the budget key
    (``max_p90_ms``), its bound, its level and where it is written (``targets.x86-cpu.artifacts.*_int8``).
    Every budget check is one Rule held against one measured value."""

    key: str
    limit: float
    level: str
    source: str

    @property
    def metric(self) -> str:
        return self.key[4:]  # max_p90_ms -> p90_ms, min_accuracy -> accuracy: every budget key is max_* or min_*

    @property
    def kind(self) -> str:
        return self.key[:3]

    def holds(self, value: float) -> bool:
        return value <= self.limit if self.kind == "max" else value >= self.limit


@dataclass
class Check:
    """One verdict line: a budget Rule, a baseline comparison, a result that did not run under a budget, or a
    budget that matched nothing. ``level`` is error | warn | info (info: a note, never a failure)."""

    target: str
    artifact: str
    runtime: str
    metric: str
    measured: float | str | None
    limit: float | str | None
    level: str
    passed: bool
    message: str
    source: str = ""  # where the limit came from: "targets.x86-cpu.artifacts.*_int8", "regression.p50"
    inconclusive: bool = False  # the run's noise floor is above the threshold: it cannot tell

    @property
    def outcome(self) -> str:
        if self.inconclusive:
            return "inconclusive"
        if self.level == "info":
            return "note"
        if self.passed:
            return "pass"
        return "fail" if self.level == "error" else "warn"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "outcome": self.outcome}

    @classmethod
    def about(cls, x: Measurement | Comparison, metric: str, measured: float | str | None, limit: float | str | None,
              level: str, passed: bool, message: str, source: str = "") -> Check:
        """A check on one result (or its comparison): its target, artifact and runtime name the line."""
        return cls(x.target, x.artifact, x.runtime, metric, measured, limit, level, passed,
                   f"{x.artifact} on {x.target} ({x.runtime}): {message}", source)


@dataclass
class Recommendation:
    """The artifact to ship on one target: meets every budget, lowest p90 (ties inside the noise: smallest, then
    most accurate)."""

    target: str
    artifact: str | None
    runtime: str | None = None
    p90_ms: float | None = None
    size_bytes: int | None = None
    estimated: bool = False
    reason: str = ""
    tied_with: list[str] = field(default_factory=list)  # latencies inside the measured noise of this one's

    def describe(self) -> str:
        if self.artifact is None:
            return f"{self.target}: nothing to ship — {self.reason}"
        size = f", {self.size_bytes / 1024:,.1f} KB" if self.size_bytes is not None else ""
        est = " (estimated)" if self.estimated else ""
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.target}: ship {self.artifact} with {self.runtime} — p90 {fmt_ms(self.p90_ms)}{est}{size}{why}"


@dataclass
class Verdict:
    checks: list[Check] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    recommendations: list[Recommendation] = field(default_factory=list)
    strict: bool = False  # an inconclusive check fails the gate too

    def by_outcome(self, outcome: str) -> list[Check]:
        return [c for c in self.checks if c.outcome == outcome]

    @property
    def failures(self) -> list[Check]:
        return self.by_outcome("fail")

    @property
    def warnings(self) -> list[Check]:
        return self.by_outcome("warn")

    @property
    def passed(self) -> bool:
        return not self.failures and not (self.strict and self.by_outcome("inconclusive"))

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def summary(self) -> str:
        counts = {o: len(self.by_outcome(o)) for o in OUTCOMES}
        parts = [f"{counts['fail']} failed", _plural(counts["warn"], "warning"), f"{counts['pass']} passed"]
        if counts["inconclusive"]:
            parts.insert(1, f"{counts['inconclusive']} inconclusive")
        if counts["note"]:
            parts.append(_plural(counts["note"], "note"))
        head = "FAIL" if self.failures else "INCONCLUSIVE" if counts["inconclusive"] else "PASS"
        return f"{head} — {', '.join(parts)} ({len(self.checks)} checks)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "exit_code": self.exit_code,
            "summary": self.summary(),
            "counts": {o: len(self.by_outcome(o)) for o in OUTCOMES},
            "checks": [c.to_dict() for c in self.checks],
            "regressions": [c.to_dict() for c in self.comparisons],
            "recommendations": [asdict(r) for r in self.recommendations],
        }


def check(report: Report, budgets: Budgets | None = None, baseline: Report | None = None,
          strict: bool = False) -> Verdict:
    """Judge one report against budgets and/or a baseline report. Pure: reads no file, prints, writes nothing.

    An A/B report (``bench --against``) is judged as its new half against its old half (paired launches);
    budgets apply to the new artifacts. A ``baseline`` given as well replaces the old half."""
    if not report.results:
        raise UsageError("the report has no results", "run `edgeopt bench` on at least one artifact first")
    paired = False
    if report.is_ab:
        report, old = report.split_ab()
        if baseline is None:
            baseline, paired = old, True
    checks = budget_checks(report, budgets) if budgets is not None else []
    comparisons: list[Comparison] = []
    if baseline is not None:
        rules = budgets.regression if budgets is not None else RegressionRules()
        comparisons = compare(report, baseline, rules, paired=paired)
        checks += [comparison_check(c, rules) for c in comparisons]
    return Verdict(checks=checks, comparisons=comparisons, recommendations=recommend(report, checks), strict=strict)


# --- budgets ------------------------------------------------------------------------------------------

def _fields(m: Measurement) -> dict[str, str]:
    return {"name": m.artifact, "format": m.format, "precision": m.precision, "runtime": m.runtime, "role": m.role}


def effective_limits(budgets: Budgets, m: Measurement) -> dict[str, Rule]:
    """budget key -> the Rule that applies to one result, after precedence (see budgets.py)."""
    names = [t for t in dict.fromkeys((ALL_TARGETS, m.target)) if t in budgets.targets]
    blocks = [(budgets.targets[t], f"targets.{t}") for t in names if m.role != "source"]
    fields = _fields(m)
    for t in names:
        blocks += [(ab, f"targets.{t}.artifacts.{sel}") for sel, ab in budgets.targets[t].artifacts.items()
                   if selector_matches(sel, fields)]
    out: dict[str, Rule] = {}
    for block, where in blocks:
        for key, lim in block.limits().items():
            out[key] = Rule(key, lim.limit, lim.level or block.level, where)
    return {k: out[k] for k in LIMIT_KEYS if k in out}


def budget_checks(report: Report, budgets: Budgets) -> list[Check]:
    checks: list[Check] = []
    for m in report.results:
        rules = effective_limits(budgets, m)
        if not rules:
            continue
        if m.status != "ok":
            level = "error" if any(r.level == "error" for r in rules.values()) else "warn"
            if m.status == "skipped":
                level = "info"
            reason = f": {one_line(m.error)}" if m.error else ""
            checks.append(Check.about(m, "status", m.status, "ok", level, False, f"{m.status}{reason}"))
            continue
        checks += [_limit_check(report, m, rule) for rule in rules.values()]
    checks += unmatched_checks(report, budgets)
    return checks


def _limit_check(report: Report, m: Measurement, rule: Rule) -> Check:
    metric, kind = rule.metric, rule.kind
    value, missing = measured_value(report, m, metric)
    shown_limit = fmt_value(metric, rule.limit)
    if metric in ("metric", "metric_drop") and m.metric:  # named for the task's metric: mae, mae_drop, f1, ...
        metric = m.metric + metric[len("metric"):]
    if value is None:
        return Check.about(m, metric, None, rule.limit, rule.level, False,
                           f"cannot check {rule.key} {shown_limit}: {missing}", rule.source)
    ok = rule.holds(value)
    op = ("<=" if ok else ">") if kind == "max" else (">=" if ok else "<")
    est = " (estimated)" if m.estimated and metric.endswith("_ms") else ""
    extra = ""
    if metric == "accuracy_drop":
        src = report.source_for(m)
        extra = f" ({src.accuracy:.4f} -> {m.accuracy:.4f} vs source {src.artifact})" if src else ""
    if rule.metric == "metric_drop":
        src = report.source_for(m)
        worse = " (a rise: lower is better)" if m.lower_is_better else ""
        extra = f" ({src.metric_value:.4f} -> {m.metric_value:.4f} vs source {src.artifact}{worse})" if src else ""
    msg = f"{metric} {fmt_value(metric, value)}{est}{extra} {op} {kind} {shown_limit} [{rule.source}]"
    return Check.about(m, metric, value, rule.limit, rule.level, ok, msg, rule.source)


def measured_value(report: Report, m: Measurement, metric: str) -> tuple[float | None, str]:
    """The value a check compares, or None and why it is missing."""
    if metric in ("size_kb", "gzip_kb"):
        b = m.size_bytes if metric == "size_kb" else m.gzip_bytes
        return (b / 1024, "") if b is not None else (None, f"{metric.replace('_kb', '_bytes')} was not measured")
    if metric in ("p50_ms", "p90_ms", "p99_ms"):
        lat = m.latency_ms
        return (getattr(lat, metric[:3]), "") if lat is not None else (None, "latency was not measured")
    if metric == "accuracy_drop":
        src = report.source_for(m)
        if src is None:
            return None, f"no ok source-model result (role: source) on target {m.target} in this report"
        if src.accuracy is None or m.accuracy is None:
            return None, "accuracy was not measured" + (" for the source model" if src.accuracy is None else "")
        return src.accuracy - m.accuracy, ""
    if metric == "metric_drop":
        src = report.source_for(m)
        if src is None:
            return None, f"no ok source-model result (role: source) on target {m.target} in this report"
        if src.metric_value is None or m.metric_value is None:
            return None, "the task's metric was not measured" + (" for the source model" if src.metric_value is None
                                                                  else "")
        return m.goodness(src.metric_value) - m.goodness(m.metric_value), ""
    if metric == "metric":
        if m.metric_value is None:
            return None, "the task's metric was not measured (no labels, or no source to compare with)"
        return float(m.metric_value), ""
    value = getattr(m, metric)
    return (float(value), "") if value is not None else (None, f"{metric} was not measured")


def unmatched_checks(report: Report, budgets: Budgets) -> list[Check]:
    """A failing check for every target block or selector that matched no result."""
    checks: list[Check] = []
    targets = list(dict.fromkeys(m.target for m in report.results))
    for name, tb in budgets.targets.items():
        pool = report.results if name == ALL_TARGETS else [m for m in report.results if m.target == name]
        if not pool:
            checks.append(Check(name, "", "", "budget", None, None, tb.level, False,
                                f"budget for target '{name}' matches no result{nearest(name, targets)}; "
                                f"targets in the report: {', '.join(targets)}", f"targets.{name}"))
            continue
        for sel, ab in tb.artifacts.items():
            if not any(selector_matches(sel, _fields(m)) for m in pool):
                names = list(dict.fromkeys(m.artifact for m in pool))
                checks.append(Check(name, sel, "", "budget", None, None, ab.level, False,
                                    f"budget selector '{sel}' under target '{name}' matches no result"
                                    f"{nearest(sel, names)}; artifacts there: {', '.join(names)}",
                                    f"targets.{name}.artifacts.{sel}"))
    return checks


# --- baseline -----------------------------------------------------------------------------------------

def comparison_check(c: Comparison, rules: RegressionRules) -> Check:
    # A vanished result is worth a warning; a comparison that could not run is a note; the source model
    # is a reference, not a release: its changes are shown (a slower machine shows there first) as notes.
    level = "info" if c.role == "source" and c.verdict != "unchanged" else \
        {MISSING: "warn", NOT_COMPARED: "info"}.get(c.verdict, rules.level)
    passed = c.verdict not in (REGRESSED, MISSING)
    if c.metric in ("status", "presence"):
        text = f"{c.metric} {c.old} -> {c.new}"
    else:
        text = f"{c.metric} {fmt_value(c.metric, c.old)} -> {fmt_value(c.metric, c.new)} ({fmt_change(c.metric, c.change)}"
        text += f", p={c.p_value:.2g})" if c.p_value is not None else ")"
    note = f"; {c.note}" if c.note else ""
    limit = {"p50_ms": "p50", "size_bytes": "size", "accuracy": "accuracy", "status": None, "presence": None}.get(
        c.metric, "metric")  # any other name is the task's metric (compare_metric)
    chk = Check.about(c, f"regression_{c.metric}", c.change, c.threshold, level, passed,
                      f"{text} vs baseline: {c.verdict}{note}", f"regression.{limit}" if limit else "baseline")
    chk.inconclusive = c.verdict == INCONCLUSIVE and c.role != "source"
    return chk


# --- recommendation -----------------------------------------------------------------------------------

def recommend(report: Report, checks: list[Check]) -> list[Recommendation]:
    """Per target, the artifact to ship: only one that passes every check on it. Latencies inside the measured
    noise (the launches' spread) are ties, broken by size, then accuracy. When none passes: which budget the
    closest candidates miss."""
    bad: dict[tuple[str, str, str], list[Check]] = {}
    for c in checks:
        if c.outcome in ("fail", "warn"):
            bad.setdefault((c.artifact, c.target, c.runtime), []).append(c)
    out = []
    for target in dict.fromkeys(m.target for m in report.results):
        pool = [m for m in report.results if m.target == target and m.role != "source" and m.status == "ok"]
        lat = [(m, measured_value(report, m, "p90_ms")[0]) for m in pool]
        ok = [(m, p90) for m, p90 in lat if p90 is not None and m.key not in bad]
        if not ok:
            out.append(Recommendation(target, None, reason=_none_passes(pool, bad)))
            continue
        fastest, best = min(ok, key=lambda t: t[1])
        ties = [(m, p90) for m, p90 in ok if p90 <= best * (1 + max(_noise(fastest), _noise(m))) + 1e-12]
        pick, p90 = min(ties, key=lambda t: (t[0].size_bytes if t[0].size_bytes is not None else float("inf"),
                                             -_goodness(t[0]), t[1], t[0].artifact))
        others = [m.artifact for m, _ in ties if m is not pick]
        reason = ""
        if others:
            noise = max(_noise(m) for m, _ in ties)
            reason = (f"p90 within the measured noise (±{noise:.0%}) of {', '.join(others)}: the smallest, then most "
                      "accurate, of them")
        out.append(Recommendation(target, pick.artifact, pick.runtime, p90, pick.size_bytes, pick.estimated,
                                  reason=reason, tied_with=others))
    return out


def _goodness(m: Measurement) -> float:
    """Accuracy, else the task's metric with higher = better; -1 when neither was measured."""
    if m.accuracy is not None:
        return m.accuracy
    if m.metric_value is not None:
        return m.goodness(m.metric_value)
    return -1.0


def _noise(m: Measurement) -> float:
    lat = m.latency_ms
    return lat.noise if lat is not None and lat.noise is not None else 0.0


def _none_passes(pool: list[Measurement], bad: dict[tuple[str, str, str], list[Check]]) -> str:
    if not pool:
        return "no ok artifact result"
    def miss(c: Check) -> float:
        if isinstance(c.measured, (int, float)) and isinstance(c.limit, (int, float)) and c.limit:
            return abs(c.measured - c.limit) / abs(c.limit)
        return float("inf")

    failing = [(m, bad.get(m.key, [])) for m in pool]
    failing = [(m, cs) for m, cs in failing if cs] or [(m, []) for m in pool]
    failing.sort(key=lambda t: (len(t[1]), sum(miss(c) for c in t[1]), t[0].artifact))
    parts = []
    for m, cs in failing[:3]:
        misses = "; ".join(f"{c.metric} {fmt_value(c.metric, c.measured)} vs {fmt_value(c.metric, c.limit)}"
                           f" [{c.source or c.metric}]" for c in cs) or "no latency measured"
        parts.append(f"{m.artifact} misses {misses}")
    return "no artifact passes every budget; closest: " + " | ".join(parts)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
