"""Which task a data set is scored for, and the data set as that task reads it (``resolve``).

The task is given (``--task``, the recipe's ``task:``) or inferred from the source model's outputs and the labels
(core.metrics.infer_task). Without labels the task is ``raw``: scores are fidelity to the source model — its own
top-1 as labels (agreement) for a classifier-shaped output, its outputs themselves (cosine similarity) otherwise."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgeopt.core import metrics
from edgeopt.errors import UsageError

FIX = "pass --task classification|multilabel|regression|raw (or `task:` in the recipe)"


def labels_of(dataset) -> np.ndarray | None:
    """The labels as given (targets, else class ids) of the test split, or None without labels."""
    if not getattr(dataset, "labelled", True):
        return None
    targets = getattr(dataset, "targets", None)
    return targets[2] if targets is not None else dataset.y_test


def infer(dataset, outputs: np.ndarray) -> tuple[str, str]:
    """(task, why) for ``dataset`` and the source model's ``outputs`` on its first test samples."""
    kind = getattr(dataset, "label_kind", "ids")
    if kind == "values" and metrics.OutputKind.of(outputs).classifier:
        dataset.for_task("classification")  # raises with what the labels hold and the fix
    y = labels_of(dataset)
    return metrics.infer_task(outputs, None if y is None else y[: len(outputs)])


def resolve(dataset, predict: Callable[[np.ndarray], np.ndarray], task: str | None = None,
            metric: str | None = None):
    """(Task, the data set as the task reads it). ``predict``: the source model's outputs for a batch."""
    if task is not None and task not in metrics.TASKS:
        raise UsageError(f"unknown task '{task}'", FIX)
    sample = np.asarray(predict(dataset.x_test[:256]))
    kind = metrics.OutputKind.of(sample)
    why = ""
    if task is None:
        task, why = infer(dataset, sample)
    labelled = getattr(dataset, "labelled", True)
    if task != "raw" and not labelled:
        raise UsageError(f"task {task} needs labels, but data '{dataset.name}' has none (no y_* keys)",
                         "give labels, or use --task raw (fidelity to the source model)")
    custom = metrics.load_metric(metric) if metric else None
    made = metrics.make_task(task, num_classes=kind.width, classifier_output=kind.class_scores(task), custom=custom,
                             inferred=why)
    if task == "raw":
        if made.classifier_output:  # the source's own top-1 stands in for the labels: the score is agreement
            unlabelled = dataset if not labelled else _without_labels(dataset)
            return made, unlabelled.labelled_by(predict)
        return made, dataset.labelled_with_outputs(predict)
    if task in ("multilabel", "regression"):
        ds = dataset.for_task(task)
        _check_width(ds, sample, task)
        return made, ds
    return made, dataset.for_task(task)


def for_output(dataset, name: str | None):
    """The data set labelled for the model's output ``name`` (its ``y_<split>.<name>`` keys) — the first output of a
    model with several is the headline; a data set with one set of labels is returned as it is."""
    labels = getattr(dataset, "output_labels", None)
    if not labels or name is None or dataset.label_output == name:
        return dataset
    if name not in labels:
        raise UsageError(f"data '{dataset.name}' has labels for {', '.join(labels)} but none for the model's first "
                         f"output {name}", f"add y_train.{name}, y_test.{name}: the first output is the one scored")
    from dataclasses import replace

    from edgeopt.data.dataset import Dataset

    t = labels[name]
    ds = Dataset.from_arrays(dataset.name, dataset.x_train, t[0], dataset.x_val, t[1], dataset.x_test, t[2])
    return replace(ds, label_output=name, output_labels=labels)


def _without_labels(dataset):
    from dataclasses import replace

    return replace(dataset, labelled=False, label_kind="none", targets=None)


def _check_width(ds, outputs: np.ndarray, task: str) -> None:
    width = int(np.prod(outputs.shape[1:])) if outputs.ndim > 1 else 1
    y = ds.y_test
    y_width = int(np.prod(y.shape[1:])) if y.ndim > 1 else 1
    if width != y_width:
        raise UsageError(f"the model outputs {width} value(s) per sample but data '{ds.name}' has {y_width} "
                         f"label column(s) for task {task}", "pass the data set the model was trained on")
