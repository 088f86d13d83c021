"""Dataset: train/val/test splits as float32 x and int64 class ids (``data/loaders.py`` makes one).

Inputs are converted once, here (``Dataset.from_arrays``): x to float32, y to int64 ids (one-hot is argmax'ed),
no NaN/Inf. Labels that are not class ids — float values (regression) or a 0/1 matrix that is not one-hot
(multi-label) — are kept as given (``targets``, ``label_kind``) and ``for_task`` puts them in y for the task the
model is compressed for. Imports no TensorFlow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np

from edgeopt.core.inputs import Inputs
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
    # "ids" (y holds class ids), "multihot" (0/1 rows, not one-hot), "values" (floats) or "none" (no labels)
    label_kind: str = "ids"
    # the labels as given, float32, per split (train, val, test); None without labels
    targets: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    # .npz keys y_<split>.<output name>: the output y belongs to, and every named output's labels (train, val, test)
    label_output: str | None = None
    output_labels: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None

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
        kind, targets = "none", None
        if labelled:
            kind, targets = _label_kind(name, {"train": y_train, "val": y_val, "test": y_test})
        if kind in ("multihot", "values"):  # not class ids: kept as targets, y holds placeholders until for_task
            width = int(np.prod(targets[0].shape[1:])) if targets[0].ndim > 1 else 1
            y_train, y_val, y_test = (np.zeros(len(t), np.int64) for t in targets)
            num_classes, class_names = width, class_names if class_names is not None and len(class_names) == width \
                else None
        if not labelled:
            y_train, y_val, y_test = (np.zeros(len(np.asarray(x)), np.int64) for x in (x_train, x_val, x_test))
            num_classes = num_classes or 1
        splits = {"train": (x_train, y_train), "val": (x_val, y_val), "test": (x_test, y_test)}
        xs, ys = {}, {}
        onehot_classes = 0
        for split, (x, y) in splits.items():
            if isinstance(x, Inputs):  # several named inputs: each converted and checked on its own
                xs[split] = Inputs({k: _as_x(v, f"{split}.{k}", name) for k, v in x.items()})
            else:
                xs[split] = _as_x(x, split, name)
            ys[split], width = as_y(y, split, name)
            onehot_classes = max(onehot_classes, width)
            if len(xs[split]) != len(ys[split]):
                raise UsageError(
                    f"data set '{name}': x_{split} has {len(xs[split])} samples but y_{split} has {len(ys[split])}",
                    f"give x_{split} and y_{split} the same first dimension",
                )
        shapes = {_sample_shape(xs[s]) for s in xs}
        if len(shapes) != 1:
            got = ", ".join(f"x_{s} {_sample_shape(xs[s])}" for s in xs)
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
                   labelled, label_kind=kind, targets=targets)

    def for_task(self, task: str) -> Dataset:
        """The data set with y as the task reads it: class ids (classification), the 0/1 matrix (multilabel), the
        values (regression). UsageError when the labels cannot be read that way."""
        if task in ("raw",) or not self.labelled:
            return self
        if task == "classification":
            if self.label_kind == "ids":
                return self
            what = "a 0/1 matrix with rows that are not one-hot" if self.label_kind == "multihot" else \
                "non-integer values"
            raise UsageError(f"data set '{self.name}': y_train holds {what}, not class ids",
                             "give y as integer class ids (or one-hot) for classification, or pass --task "
                             f"{'multilabel' if self.label_kind == 'multihot' else 'regression'}")
        assert self.targets is not None
        if task == "multilabel" and not all(np.all((t == 0) | (t == 1)) for t in self.targets):
            raise UsageError(f"data set '{self.name}': y holds values other than 0 and 1",
                             "give y as a 0/1 matrix (samples, labels) for multilabel")
        t_train, t_val, t_test = self.targets
        return replace(self, y_train=t_train, y_val=t_val, y_test=t_test)

    def labelled_with_outputs(self, predict) -> Dataset:
        """An unlabelled data set whose y are ``predict(x)`` itself (the source model's outputs): what a task
        without class scores (raw) measures fidelity against."""
        ys = [np.asarray(predict(x), np.float32) if len(x) else np.zeros((0,), np.float32)
              for x in (self.x_train, self.x_val, self.x_test)]
        return replace(self, y_train=ys[0], y_val=ys[1], y_test=ys[2])

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
        """Shape of one sample, without the batch dimension (several inputs: see ``input_shapes``)."""
        if isinstance(self.x_train, Inputs):
            return next(iter(self.x_train.shapes.values()))
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]] | None:
        """name → shape of one sample, for data with several named inputs (``x_train.<name>``); else None."""
        return self.x_train.shapes if isinstance(self.x_train, Inputs) else None

    def representative(self, n: int = 100, seed: int = 0) -> np.ndarray:
        """``n`` training samples in proportion to class frequency, the same for the same seed (int8 calibration)."""
        if n < 1:
            raise UsageError(f"representative sample size {n}", "ask for at least 1 sample")
        rng = np.random.default_rng(seed)
        ids = self.y_train.ndim == 1 and np.issubdtype(self.y_train.dtype, np.integer)
        order = stratified_order(self.y_train, rng) if ids else rng.permutation(len(self.x_train))
        return self.x_train[np.sort(order[: min(n, len(order))])]

    def __repr__(self) -> str:
        shape = self.input_shapes or self.input_shape
        return (
            f"Dataset({self.name!r}, input_shape={shape}, num_classes={self.num_classes}, "
            f"{'' if self.labelled else 'unlabelled, '}"
            f"train={len(self.x_train)}, val={len(self.x_val)}, test={len(self.x_test)})"
        )


# --- conversion at the boundary -------------------------------------------------------------------------


def group_named(arrays: dict[str, np.ndarray], source: str) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    """``.npz`` keys for several inputs and outputs: ``x_<split>.<input name>`` become one Inputs per split under
    ``x_<split>``; ``y_<split>.<output name>`` go into the second dict (output name → split key → array) and the
    first output named becomes ``y_<split>``. Plain keys pass through."""
    out: dict = {k: v for k, v in arrays.items() if "." not in k}
    xs: dict[str, dict[str, np.ndarray]] = {}
    ys: dict[str, dict[str, np.ndarray]] = {}
    for key, value in arrays.items():
        if "." not in key:
            continue
        base, _, sub = key.partition(".")
        if not sub or not (base.startswith("x_") or base.startswith("y_")):
            raise UsageError(f"{source}: key '{key}' is not x_<split>.<input name> or y_<split>.<output name>",
                             "name several inputs x_train.<input name> and outputs y_train.<output name>")
        if base in out:
            raise UsageError(f"{source} has both {base} and {key}", f"use either {base} or {base}.<name> keys")
        (xs if base.startswith("x_") else ys).setdefault(base, {})[sub] = value
    names = [list(v) for v in xs.values()]
    if names and any(sorted(n) != sorted(names[0]) for n in names):
        got = "; ".join(f"{b}: {', '.join(v)}" for b, v in xs.items())
        raise UsageError(f"{source}: the splits name different inputs ({got})", "give every split the same inputs")
    for base, named in xs.items():
        try:
            out[base] = Inputs({n: named[n] for n in names[0]})
        except ValueError as e:
            raise UsageError(f"{source}: {base}.*: {e}", "give each input of a split as an array of samples (one row each), all with as many rows") from None
    by_output: dict[str, dict[str, np.ndarray]] = {}
    for base, named in ys.items():
        for n, v in named.items():
            by_output.setdefault(n, {})[base] = v
    if by_output:
        first = next(iter(by_output))
        for base, v in by_output[first].items():
            out[base] = v
    return out, by_output


def with_output_labels(ds: Dataset, by_output: dict[str, dict[str, np.ndarray]], source: str) -> Dataset:
    """``ds`` (labelled by the first named output) with every named output's labels, float32 (train, val, test)."""
    labels = {}
    for name, splits in by_output.items():
        missing = [k for k in ("y_train", "y_val", "y_test") if k not in splits]
        if missing:
            raise UsageError(f"{source} lacks {missing[0]}.{name}", f"give y_train.{name}, y_test.{name} "
                             f"(and y_val.{name} with x_val) for every named output")
        arrays = tuple(np.asarray(splits[k], dtype=np.float32) for k in ("y_train", "y_val", "y_test"))
        for split, x, y in zip(("train", "val", "test"), (ds.x_train, ds.x_val, ds.x_test), arrays, strict=True):
            if len(x) != len(y):
                raise UsageError(f"{source}: x_{split} has {len(x)} samples but y_{split}.{name} has {len(y)}",
                                 "give every output's labels one row per sample")
        labels[name] = arrays
    return replace(ds, label_output=next(iter(by_output)), output_labels=labels)


def _sample_shape(x) -> tuple:
    if isinstance(x, Inputs):
        return tuple(sorted(x.shapes.items()))
    return tuple(x.shape[1:])


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


def _label_kind(name: str, splits: dict) -> tuple[str, tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
    """("ids" | "multihot" | "values", the labels as float32 per split). Integer dtypes are class ids (checked by
    as_y as before); float labels with fractions or negatives are values; a 0/1 matrix not one-hot is multihot."""
    arrays = [np.asarray(y) for y in splits.values()]
    numeric = all(np.issubdtype(a.dtype, np.number) or a.dtype == bool for a in arrays)
    if not numeric or any(a.ndim == 0 for a in arrays) or len({a.shape[1:] for a in arrays if len(a)}) > 1 \
            or any(not np.all(np.isfinite(a)) for a in arrays):
        return "ids", None  # as_y refuses them with its own message
    targets = tuple(a.astype(np.float32) for a in arrays)
    sq = [a[:, 0] if a.ndim == 2 and a.shape[1] == 1 else a for a in arrays]
    if all(a.ndim == 2 and np.all((a == 0) | (a == 1)) for a in sq if len(a)) and any(a.ndim == 2 for a in sq):
        return ("multihot" if any(len(a) and not np.all(a.sum(1) == 1) for a in sq) else "ids"), targets
    if any(a.ndim >= 2 for a in sq):
        return "values", targets
    floats = [a for a in sq if np.issubdtype(a.dtype, np.floating) and len(a)]
    if any(np.any(a != np.round(a)) or a.min() < 0 for a in floats) and all(np.abs(a).max() <= 2**62 for a in floats):
        return "values", targets
    return "ids", targets


def stratify_ids(y, name: str = "") -> np.ndarray:
    """What a split is stratified by: class ids where y holds them, else one group (values, multi-label rows)."""
    a = np.asarray(y)
    kind, _ = _label_kind("", {"train": a})
    if kind == "ids":
        return as_y(a, "train", name)[0]
    return np.zeros(len(a), np.int64)


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
