"""Scores computed from a model's outputs — the one place: per task (``TASKS``, the registry of each task's metrics,
headline first), the fidelity to a source model (agreement; cosine similarity and SNR of outputs), a user's own
metric (``--metric module:function``) and the task inferred from outputs and labels. Shared by the stages (guard,
parity checks, int8 search) and the benchmark; file facts (sizes, parameter counts) live in core/artifact.py.

A metric is ``fn(y_true, y_pred) -> float``, higher is better unless it says ``lower_is_better``. ``Task.drop``
is always "how much worse than the reference" (for a lower-is-better metric: the rise). Imports numpy only."""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgeopt.errors import UsageError

TASK_NAMES = ("classification", "multilabel", "regression", "raw")


# --- the metric functions ---------------------------------------------------------------------------------


def _flat(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    return y.reshape(len(y), -1)


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(outputs, axis=-1) == np.asarray(labels).reshape(-1)))


def agreement(outputs: np.ndarray, reference: np.ndarray) -> float:
    """Share of samples whose top-1 class matches the reference model's."""
    return float(np.mean(np.argmax(outputs, axis=-1) == np.argmax(reference, axis=-1)))


def max_abs_diff(outputs: np.ndarray, reference: np.ndarray) -> float:
    return float(np.max(np.abs(outputs.astype(np.float64) - reference.astype(np.float64))))


def top1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return accuracy(y_pred, y_true)


def top5(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_pred = _flat(y_pred)
    best = np.argsort(-y_pred, axis=1, kind="stable")[:, :5]
    return float(np.mean(np.any(best == np.asarray(y_true).reshape(-1, 1), axis=1)))


def _positive(y_pred: np.ndarray) -> np.ndarray:
    """Predicted labels of a multi-label output: probabilities over 0.5 (sigmoid), or logits over 0."""
    p = _flat(y_pred)
    return p > (0.5 if p.min() >= 0 and p.max() <= 1 else 0.0)


def _f1_per_label(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    t, p = _flat(y_true) > 0.5, _positive(y_pred)
    tp, fp, fn = (t & p).sum(0), (~t & p).sum(0), (t & ~p).sum(0)
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 1.0)  # no positives, none predicted: perfect


def f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Per-label F1 (threshold 0.5 on probabilities, 0 on logits), averaged over the labels (macro)."""
    return float(_f1_per_label(y_true, y_pred).mean())


def per_label_f1(y_true: np.ndarray, y_pred: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in _f1_per_label(y_true, y_pred)]


def auc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean ROC AUC over the labels that have both classes (rank statistic, ties averaged); NaN when none does."""
    from scipy.stats import rankdata

    t, p = _flat(y_true) > 0.5, _flat(y_pred)
    scores = []
    for j in range(t.shape[1]):
        pos = int(t[:, j].sum())
        neg = len(t) - pos
        if pos and neg:
            ranks = rankdata(p[:, j])
            scores.append((ranks[t[:, j]].sum() - pos * (pos + 1) / 2) / (pos * neg))
    return float(np.mean(scores)) if scores else float("nan")


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.abs(_flat(y_pred) - _flat(y_true))))


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((_flat(y_pred) - _flat(y_true)) ** 2)))


def r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination over every output value (1 - SSE / SST); NaN when y is constant."""
    t, p = _flat(y_true), _flat(y_pred)
    sst = float(((t - t.mean(0)) ** 2).sum())
    return 1.0 - float(((p - t) ** 2).sum()) / sst if sst > 0 else float("nan")


def cosine(reference: np.ndarray, outputs: np.ndarray) -> float:
    """Mean per-sample cosine similarity of the outputs to the reference model's (1.0: same direction); for one
    value per sample, the cosine of the two columns over the samples (a per-sample one would only compare signs)."""
    a, b = _flat(reference), _flat(outputs)
    if a.shape[1] == 1:
        a, b = a.T, b.T
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    both_zero = (na == 0) & (nb == 0)
    cos = np.where(both_zero, 1.0, (a * b).sum(1) / np.maximum(na * nb, 1e-30))
    return float(np.clip(cos, -1.0, 1.0).mean())


SNR_CAP_DB = 200.0  # identical outputs: a finite number JSON can hold


def snr_db(reference: np.ndarray, outputs: np.ndarray) -> float:
    """Signal-to-noise ratio of the outputs against the reference's, in dB (10 log10 signal / error power)."""
    a, b = _flat(reference), _flat(outputs)
    noise = float(((a - b) ** 2).sum())
    signal = float((a**2).sum())
    if noise == 0:
        return SNR_CAP_DB
    return round(min(SNR_CAP_DB, 10 * math.log10(max(signal, 1e-300) / noise)), 4)


# --- the registry -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """One score: its name in manifests and reports, ``fn(y_true, y_pred)``, and which way is better."""

    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    lower_is_better: bool = False

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return float(self.fn(y_true, y_pred))

    def oriented(self, value: float) -> float:
        """The value with higher = better (a lower-is-better metric negated): what searches maximise."""
        return -value if self.lower_is_better else value


TOP1, TOP5, AGREEMENT = Metric("top1", top1), Metric("top5", top5), Metric("agreement", top1)
COSINE = Metric("cosine", cosine)
# task -> its metrics, the headline first (classification adds top-5 from 10 classes on, see Task.extra)
TASKS: dict[str, tuple[Metric, ...]] = {
    "classification": (TOP1, TOP5),
    "multilabel": (Metric("f1", f1), Metric("auc", auc)),
    "regression": (Metric("mae", mae, lower_is_better=True), Metric("rmse", rmse, lower_is_better=True),
                   Metric("r2", r2)),
    "raw": (),  # no labels: fidelity to the source model only
}
assert tuple(TASKS) == TASK_NAMES


@dataclass(frozen=True)
class Task:
    """A task with its headline metric and the other figures reported beside it.

    ``y`` a metric reads: class ids (classification; also ``raw`` with a classifier-shaped output, where they are
    the source model's own top-1 and the headline is ``agreement``), 0/1 matrices (multilabel), values
    (regression), the source model's outputs (``raw`` otherwise: the headline is ``cosine``)."""

    name: str
    metric: Metric
    extra: tuple[Metric, ...] = ()
    custom: bool = False  # the headline is the user's own (--metric)
    inferred: str = ""  # why this task, when it was inferred rather than given
    classifier_output: bool = True  # class scores (fidelity = agreement) rather than values (cosine, SNR)
    output: str | None = None  # a model with several outputs: the one scored (its first), by name

    @property
    def classifier_labels(self) -> bool:
        """Whether y holds class ids (and training stages can fit against them)."""
        return self.name == "classification" or (self.name == "raw" and self.metric.name == "agreement")

    def score(self, outputs: np.ndarray, y: np.ndarray) -> float:
        return self.metric(y, outputs)

    def oriented(self, outputs: np.ndarray, y: np.ndarray) -> float:
        return self.metric.oriented(self.score(outputs, y))

    def drop(self, reference: float, value: float) -> float:
        """How much worse ``value`` is than ``reference`` in the headline metric (negative: better)."""
        return value - reference if self.metric.lower_is_better else reference - value

    def fidelity(self, outputs: np.ndarray, reference: np.ndarray) -> dict[str, float]:
        return fidelity(outputs, reference, self.classifier_output)

    def figures(self, outputs: np.ndarray, y: np.ndarray) -> dict[str, float | None]:
        """Every metric of the task (headline first), NaN as None."""
        out: dict[str, float | None] = {}
        for m in (self.metric, *self.extra):
            v = m(y, outputs)
            out[m.name] = None if not math.isfinite(v) else round(v, 6)
        return out

    def describe(self) -> dict:
        d = {"task": self.name, "metric": self.metric.name, "lower_is_better": self.metric.lower_is_better,
             "also": [m.name for m in self.extra]}
        if self.inferred:
            d["inferred"] = self.inferred
        return d


def make_task(name: str, *, num_classes: int = 0, classifier_output: bool = True, custom: Metric | None = None,
              inferred: str = "") -> Task:
    """The Task ``name`` with its headline metric (``custom`` replaces it; the task's own move to ``extra``)."""
    if name not in TASKS:
        raise UsageError(f"unknown task '{name}'", f"use one of {', '.join(TASK_NAMES)}")
    own = TASKS[name]
    if name == "classification" and num_classes < 10:
        own = (TOP1,)
    if name == "raw":
        own = (AGREEMENT,) if classifier_output else (COSINE,)
    if custom is not None:
        return Task(name, custom, tuple(own), True, inferred, classifier_output)
    return Task(name, own[0], tuple(own[1:]), False, inferred, classifier_output)


def fidelity(outputs: np.ndarray, reference: np.ndarray, classifier_output: bool) -> dict[str, float]:
    """How close the outputs are to the source model's: agreement for a classifier, cosine similarity and SNR (dB)
    of the outputs otherwise."""
    if classifier_output:
        return {"agreement": round(agreement(outputs, reference), 6)}
    return {"cosine": round(cosine(reference, outputs), 6), "snr_db": snr_db(reference, outputs)}


def load_metric(spec: str) -> Metric:
    """``module:function`` → a Metric (``fn(y_true, y_pred) -> float``; ``fn.lower_is_better = True`` flips it).
    The module is imported: this is the user's opt-in to run their code."""
    module, sep, func = spec.partition(":")
    fix = "pass --metric package.module:function, importable from here (fn(y_true, y_pred) -> float)"
    if not sep or not module or not func:
        raise UsageError(f"--metric {spec!r} is not module:function", fix)
    try:
        fn = getattr(importlib.import_module(module), func)
    except ImportError as e:
        raise UsageError(f"--metric {spec}: cannot import {module} ({type(e).__name__}: {e})", fix) from None
    except AttributeError:
        raise UsageError(f"--metric {spec}: {module} has no attribute {func!r}", fix) from None
    if not callable(fn):
        raise UsageError(f"--metric {spec}: {func} is not a function", fix)
    name = getattr(fn, "metric_name", None) or func
    return Metric(str(name), fn, bool(getattr(fn, "lower_is_better", False)))


# --- inferring the task -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputKind:
    """What a model's (first) output looks like on a few samples: width and activation."""

    width: int
    activation: str  # softmax | sigmoid | linear
    extra: dict = field(default_factory=dict)

    @classmethod
    def of(cls, outputs: np.ndarray) -> OutputKind:
        o = _flat(outputs)
        width = int(o.shape[1])
        in_unit = bool(o.size) and o.min() >= 0 and o.max() <= 1
        if in_unit and width > 1 and np.allclose(o.sum(1), 1.0, atol=1e-3):
            return cls(width, "softmax")
        return cls(width, "sigmoid" if in_unit else "linear")

    @property
    def classifier(self) -> bool:
        """Class scores (probabilities or logits of several classes) rather than values."""
        return self.width > 1 and self.activation in ("softmax", "linear")

    def class_scores(self, task: str) -> bool:
        """Whether fidelity for ``task`` is top-1 agreement: with labels, class scores; without (raw), only
        probabilities — a linear output could as well be an embedding, compared by cosine similarity and SNR."""
        return self.activation == "softmax" if task == "raw" else self.classifier


def label_kind(y: np.ndarray | None) -> str:
    """none | ids (integer class ids, or one-hot rows) | multihot (0/1 matrix, rows not all one-hot) | values."""
    if y is None:
        return "none"
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    integral = bool(np.all(np.isfinite(y))) and bool(np.all(y == np.round(y)))
    if y.ndim == 1:
        return "ids" if integral and (not len(y) or y.min() >= 0) else "values"
    binary = bool(np.all((y == 0) | (y == 1)))
    if binary and y.ndim == 2:
        return "ids" if np.all(y.sum(1) == 1) else "multihot"
    return "values"


def infer_task(outputs: np.ndarray, y: np.ndarray | None) -> tuple[str, str]:
    """(task, why) from the source model's outputs and the labels; UsageError when they do not say."""
    kind = OutputKind.of(outputs)
    labels = label_kind(y)
    seen = f"{kind.activation} output of width {kind.width}, labels {labels}"
    fix = "pass --task classification|multilabel|regression|raw (or `task:` in the recipe)"
    if labels == "none":
        return "raw", f"no labels ({kind.activation} output of width {kind.width}): fidelity to the source model"
    y = np.asarray(y)
    y_width = 1 if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1) else int(np.prod(y.shape[1:]))
    if labels == "ids" and kind.width > 1:  # class ids or one-hot rows, several class scores (any activation)
        return "classification", seen
    if labels == "multihot" and kind.width == y_width:
        return "multilabel", seen + ("" if kind.activation == "sigmoid" else " (logits)")
    if labels == "ids" and kind.width == 1 and kind.activation == "sigmoid" and set(np.unique(y)) <= {0, 1}:
        return "multilabel", seen + " (one binary label)"
    if labels == "values" and kind.activation != "softmax" and y_width == kind.width:
        return "regression", seen
    if labels == "ids" and kind.width == 1 and kind.activation == "linear":
        return "regression", seen + " (integer targets)"
    raise UsageError(f"cannot tell the task from a {seen} (label width {y_width})", fix)
