"""Dataset: train/val/test splits as float32 x and int64 class ids (``data/loaders.py`` makes one).

Inputs are converted once, here (``Dataset.from_arrays``): x to float32, y to int64 ids (one-hot is argmax'ed),
no NaN/Inf. Imports no TensorFlow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np

from edgeopt.errors import UsageError

log = logging.getLogger(__name__)


MAX_CLASSES = 100_000  # a label of 2**63-1 must not become 9e18 class names


@dataclass(frozen=True, eq=False)
class Dataset:
    """Three splits of one data set. x: float32 (N, *input_shape); y: int64 class ids (N,)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    class_names: tuple[str, ...]
    # False: the source had no labels (an .npz without y_* keys); y holds placeholders until ``labelled_by`` fills
    # it with a model's own top-1, and scores are then fidelity to that model (agreement), never accuracy
    labelled: bool = True
    # where the data came from and how it was read (kind, class order, pixel scale, sample caps): what the manifest
    # and the report record as ``dataset`` (see edgeopt.data.classes.describe)
    info: dict = field(default_factory=dict)

    @classmethod
    def from_arrays(
        cls,
        name: str,
        x_train,
        y_train,
        x_val,
        y_val,
        x_test,
        y_test,
        *,
        num_classes: int | None = None,
        class_names: tuple[str, ...] | list[str] | None = None,
    ) -> Dataset:
        """Convert and check arrays from anywhere (float32 x, int64 y, one-hot → ids, no NaN/Inf).

        Every y None: a data set without labels (fidelity only)."""
        labelled = not (y_train is None and y_val is None and y_test is None)
        if not labelled:
            y_train, y_val, y_test = (np.zeros(len(np.asarray(x)), np.int64) for x in (x_train, x_val, x_test))
            num_classes = num_classes or 1
        splits = {"train": (x_train, y_train), "val": (x_val, y_val), "test": (x_test, y_test)}
        xs, ys = {}, {}
        onehot_classes = 0
        for split, (x, y) in splits.items():
            xs[split] = _as_x(x, split, name)
            ys[split], width = as_y(y, split, name)
            onehot_classes = max(onehot_classes, width)
            if len(xs[split]) != len(ys[split]):
                raise UsageError(
                    f"data set '{name}': x_{split} has {len(xs[split])} samples but y_{split} has {len(ys[split])}",
                    f"give x_{split} and y_{split} the same first dimension",
                )
        shapes = {xs[s].shape[1:] for s in xs}
        if len(shapes) != 1:
            got = ", ".join(f"x_{s} {xs[s].shape[1:]}" for s in xs)
            raise UsageError(
                f"data set '{name}': splits differ in sample shape ({got})", "give every split the same shape"
            )
        if len(xs["train"]) == 0 or len(xs["test"]) == 0:
            raise UsageError(f"data set '{name}': the train or test split is empty", "give at least one sample in each")
        seen = max(int(y.max()) + 1 if len(y) else 0 for y in ys.values())
        if not num_classes and not class_names and seen > MAX_CLASSES:
            split, y = max(ys.items(), key=lambda kv: int(kv[1].max()) if len(kv[1]) else -1)
            top = int(y.max())
            raise UsageError(f"data set '{name}': y_{split} holds label {top} in {int(np.sum(y == top))} rows, more "
                             f"than {MAX_CLASSES} classes", "give y as class ids 0..num_classes-1")
        if class_names is not None:
            class_names = tuple(str(c) for c in class_names)
        n = num_classes or (len(class_names) if class_names else 0) or max(seen, onehot_classes)
        if seen > n:
            source = "num_classes" if num_classes else "class names" if class_names else "one-hot width"
            raise UsageError(
                f"data set '{name}': labels go up to {seen - 1} but there are {n} classes (from the {source})",
                "give y as class ids 0..num_classes-1, and one name per class",
            )
        if class_names is None:
            class_names = tuple(str(i) for i in range(n))
        if len(class_names) != n:
            raise UsageError(
                f"data set '{name}': {len(class_names)} class names for {n} classes",
                "give one name per class",
            )
        return cls(name, xs["train"], ys["train"], xs["val"], ys["val"], xs["test"], ys["test"], n, class_names,
                   labelled)

    def labelled_by(self, predict) -> Dataset:
        """An unlabelled data set's splits labelled with ``predict(x)``'s top-1 (the source model's own answers):
        what compress scores fidelity and fine-tunes against. A labelled data set is returned as it is."""
        if self.labelled:
            return self
        ys = [np.argmax(np.asarray(predict(x)).reshape(len(x), -1), axis=1).astype(np.int64) if len(x)
              else np.zeros(0, np.int64) for x in (self.x_train, self.x_val, self.x_test)]
        width = int(np.asarray(predict(self.x_test[:1])).reshape(1, -1).shape[1])
        return replace(self, y_train=ys[0], y_val=ys[1], y_test=ys[2], num_classes=width,
                       class_names=tuple(str(i) for i in range(width)))

    def check_labels(self, num_classes: int, source: str) -> None:
        """Every label is a class id in [0, num_classes) — the class count of the model (``source``) — else a
        UsageError naming the first offending value and how many rows hold it."""
        for split, y in (("train", self.y_train), ("val", self.y_val), ("test", self.y_test)):
            bad = y[(y < 0) | (y >= num_classes)]
            if len(bad):
                value = int(bad.max())
                raise UsageError(f"data set '{self.name}': y_{split} holds label {value} in {int(np.sum(y == value))} "
                                 f"rows ({len(bad)} rows out of range), but {source} has {num_classes} classes "
                                 f"(ids 0..{num_classes - 1})", "pass the data set the model was trained on")

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, without the batch dimension."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    def representative(self, n: int = 100, seed: int = 0) -> np.ndarray:
        """``n`` training samples in proportion to class frequency, the same for the same seed (int8 calibration)."""
        if n < 1:
            raise UsageError(f"representative sample size {n}", "ask for at least 1 sample")
        order = stratified_order(self.y_train, np.random.default_rng(seed))
        return self.x_train[np.sort(order[: min(n, len(order))])]

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, input_shape={self.input_shape}, num_classes={self.num_classes}, "
            f"{'' if self.labelled else 'unlabelled, '}"
            f"train={len(self.x_train)}, val={len(self.x_val)}, test={len(self.x_test)})"
        )


# --- conversion at the boundary -------------------------------------------------------------------------


def _as_x(x, split: str, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype == object or np.iscomplexobj(x) or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise UsageError(f"data set '{name}': x_{split} has dtype {x.dtype}", "give x as a numeric array")
    if x.ndim < 2:
        raise UsageError(
            f"data set '{name}': x_{split} has shape {x.shape}",
            "give x as (samples, *input_shape), e.g. (N, 28, 28, 1) or (N, features)",
        )
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise UsageError(f"data set '{name}': x_{split} holds {bad} NaN or Inf values", "clean or impute them first")
    return x


def as_y(y, split: str, name: str) -> tuple[np.ndarray, int]:
    """Class ids as int64, plus the one-hot width (0 when y was ids)."""
    y = np.asarray(y)
    width = 0
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    elif y.ndim == 2 and y.shape[1] == 0:
        raise UsageError(f"data set '{name}': y_{split} has shape {y.shape}", "give y as class ids (N,) or one-hot "
                         "(N, classes)")
    elif y.ndim == 2:
        width = int(y.shape[1])
        y = np.argmax(y, axis=1)
    if y.ndim != 1 or np.iscomplexobj(y) or not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise UsageError(
            f"data set '{name}': y_{split} has shape {y.shape} and dtype {y.dtype}",
            "give y as integer class ids (N,) or one-hot (N, classes)",
        )
    if np.issubdtype(y.dtype, np.floating) and (not np.isfinite(y).all() or np.any(y != np.round(y))):
        raise UsageError(f"data set '{name}': y_{split} holds non-integer values", "give y as integer class ids")
    ids = y.astype(np.int64)
    if np.issubdtype(y.dtype, np.floating) and len(y) and np.abs(y).max() > 2**62:
        value = float(y[np.argmax(np.abs(y))])
        raise UsageError(f"data set '{name}': y_{split} holds label {value:g} in {int(np.sum(y == value))} rows",
                         "give y as class ids 0..num_classes-1")
    if len(ids) and ids.min() < 0:
        low = int(ids.min())
        raise UsageError(f"data set '{name}': y_{split} holds negative label {low} in {int(np.sum(ids == low))} rows",
                         "give y as class ids 0..num_classes-1")
    return ids, width


def stratified_order(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A permutation of indices whose every prefix holds the classes in proportion to their frequency."""
    perm = rng.permutation(len(y))
    yp = y[perm]
    _, inverse, counts = np.unique(yp, return_inverse=True, return_counts=True)
    rank = np.zeros(len(yp), dtype=np.int64)
    for c in range(len(counts)):
        members = np.flatnonzero(inverse == c)
        rank[members] = np.arange(len(members))
    position = (rank + 0.5) / counts[inverse]
    return perm[np.argsort(position, kind="stable")]
