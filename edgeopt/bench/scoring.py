"""How bench scores a runner's outputs: the task (given, from the compress manifest, or inferred from the first
outputs and the labels), its headline metric and other figures, and the fidelity to the source model.

One ``Scorer`` per benchmark run, shared by its lanes (the task is settled once, under a lock). Scores come from
core.metrics; the labels as the task reads them from data.tasks."""

from __future__ import annotations

import threading

import numpy as np

from edgeopt.core import metrics
from edgeopt.core.report import Measurement
from edgeopt.data import tasks


class Scorer:
    def __init__(self, dataset, task: str | None = None, metric: str | None = None) -> None:
        self.dataset, self.task_name, self.metric_spec = dataset, task, metric
        self.task: metrics.Task | None = None
        self.y: np.ndarray | None = None  # labels as the task reads them; None for raw (scored against the source)
        self.lock = threading.Lock()
        self.custom = metrics.load_metric(metric) if metric else None

    def __len__(self) -> int:
        return len(self.dataset.x_test)

    def settle(self, outputs: np.ndarray) -> metrics.Task:
        with self.lock:
            if self.task is None:
                name, why = (self.task_name, "") if self.task_name else tasks.infer(self.dataset, outputs[:256])
                if name != "raw" and not getattr(self.dataset, "labelled", True):
                    name, why = "raw", "no labels: fidelity to the source model"
                kind = metrics.OutputKind.of(outputs[:256])
                self.task = metrics.make_task(name, num_classes=kind.width, classifier_output=kind.class_scores(name),
                                              custom=self.custom, inferred=why)
                self.y = None if name == "raw" else self.dataset.for_task(name).y_test
        return self.task

    def score(self, m: Measurement, outputs: np.ndarray, reference: np.ndarray | None, source: bool) -> None:
        """Fill ``m``'s accuracy (classification), headline metric and figures; fidelity when ``reference`` (the
        source's outputs on the same target) is known — for the source itself, against its own outputs."""
        task = self.settle(outputs)
        m.task, m.metric, m.lower_is_better = task.name, task.metric.name, task.metric.lower_is_better
        if self.y is not None:
            figures = task.figures(outputs, self.y)
            m.metrics = {**m.metrics, **figures}
            m.metric_value = figures[task.metric.name]
            if task.name == "classification":
                m.accuracy = metrics.accuracy(outputs, self.y)
        if source and reference is None and task.name == "raw":  # the source against itself: the reference value
            m.metric_value = task.fidelity(outputs, outputs).get(task.metric.name)
        if reference is not None and reference.shape == outputs.shape:
            self.fidelity(m, outputs, reference)

    def fidelity(self, m: Measurement, outputs: np.ndarray, reference: np.ndarray) -> None:
        task = self.task or self.settle(outputs)
        figures = task.fidelity(outputs, reference)
        m.metrics = {**m.metrics, **figures}
        if task.classifier_output:
            m.agreement = figures["agreement"]
        m.max_abs_diff = metrics.max_abs_diff(outputs, reference)
        if task.name == "raw":  # no labels: the headline is the fidelity itself
            m.metric_value = figures.get(task.metric.name)
