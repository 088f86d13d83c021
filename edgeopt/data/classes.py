"""The class count and class order of a data set, fitted to a model, and the description of a data set that the
manifest and the report record (``dataset``).

The class count comes from ``--num-classes`` when given, else from the model's output width — never from the
labels present (a 10-class model scored on a folder that holds 9 of its classes is fine). A data set that names
more classes than the model outputs is refused, naming both counts. Imports no TensorFlow.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from edgeopt.errors import UsageError

log = logging.getLogger(__name__)

MAX_NUM_CLASSES = 100_000


def padded_names(names: tuple[str, ...], n: int) -> tuple[str, ...]:
    """``names`` for the first classes, then the ids of the classes the data does not name."""
    return tuple(names[:n]) + tuple(str(i) for i in range(len(names), n))


def declared_classes(dataset) -> int:
    """How many classes the data itself names (image sub-folders, an .npz's class_names); 0 when it names none."""
    return int(dataset.info.get("declared_classes") or 0)


def with_num_classes(dataset, num_classes: int, source: str = "--num-classes"):
    """The data set with ``num_classes`` classes (given by the user: a model's width must then match it)."""
    return _set_classes(dataset, num_classes, source, given=True)


def _set_classes(dataset, num_classes: int, source: str, given: bool):
    """Every label must be below ``num_classes``, and the data may not name more classes than that."""
    n = int(num_classes)
    if not 1 <= n <= MAX_NUM_CLASSES:
        raise UsageError(f"{source} {num_classes}", f"give a class count between 1 and {MAX_NUM_CLASSES}")
    info = {**dataset.info, "num_classes_from": source}
    if given:
        info["num_classes_given"] = n
    if not getattr(dataset, "labelled", True):
        return replace(dataset, info=info)
    declared = declared_classes(dataset)
    if declared > n:
        raise UsageError(f"data set '{dataset.name}' has {declared} classes ({dataset.info.get('declared_by')}) but "
                         f"{source} has {n}", f"pass data with at most {n} classes, or the model trained on "
                                              f"{declared}")
    dataset.check_labels(n, source)
    names = dataset.class_names[:declared] if declared else dataset.class_names
    names = padded_names(names, n) if len(names) <= n else tuple(str(i) for i in range(n))
    return replace(dataset, num_classes=n, class_names=names, info=info)


def fit_to_model(dataset, width: int | None, what: str = "the model's output", model_names=None):
    """The data set's class count set to the model's (``width``: its output width; None when it is not a
    classifier's), checked against ``--num-classes`` when that was given; with ``model_names`` (a model that carries
    its class names), labels of a data set that names its classes are re-mapped to the model's order by name."""
    if width is None or width < 2:
        return dataset
    given = dataset.info.get("num_classes_given")
    if given and given != width:
        raise UsageError(f"--num-classes {given} but {what} has {width} classes",
                         f"pass --num-classes {width}, or leave it out to take the model's count")
    if not getattr(dataset, "labelled", True):
        return dataset
    if model_names is not None and declared_classes(dataset):
        dataset = _by_model_names(dataset, [str(c) for c in model_names], width)
    return dataset if given else _set_classes(dataset, width, what, given=False)


def _by_model_names(dataset, model_names: list[str], width: int):
    if len(model_names) != width:
        log.warning("the model names %d classes but outputs %d: its names are not used", len(model_names), width)
        return dataset
    declared = dataset.class_names[: declared_classes(dataset)]
    unknown = [c for c in declared if c not in model_names]
    if unknown:
        raise UsageError(f"data set '{dataset.name}' has class {unknown[0]!r}, which is not one of the model's "
                         f"{width} class names ({', '.join(model_names[:5])}{', …' if width > 5 else ''})",
                         "name the class folders as the model names its classes")
    mapping = np.array([model_names.index(c) for c in declared], dtype=np.int64)
    ys = {s: mapping[getattr(dataset, f"y_{s}")] for s in ("train", "val", "test")}
    if not np.array_equal(mapping, np.arange(len(mapping))):
        log.info("data set %r: classes re-ordered to the model's class names", dataset.name)
    return replace(dataset, y_train=ys["train"], y_val=ys["val"], y_test=ys["test"], num_classes=width,
                   class_names=tuple(model_names),
                   info={**dataset.info, "declared_classes": width, "class_order": "the model's class names"})


def describe(dataset) -> dict:
    """What the manifest's ``source.dataset`` and the report's ``environment.dataset`` say about the data."""
    info = dict(getattr(dataset, "info", None) or {})
    info.pop("declared_by", None)
    d = {"name": dataset.name, **{k: v for k, v in info.items() if k not in ("declared_classes", "num_classes_given")},
         "named_classes": declared_classes(dataset),
         "labelled": bool(getattr(dataset, "labelled", True)), "num_classes": int(dataset.num_classes),
         "samples": {s: len(getattr(dataset, f"x_{s}")) for s in ("train", "val", "test")}}
    kind = getattr(dataset, "label_kind", "ids")
    if kind in ("values", "multihot"):  # not class ids: regression values, or a multi-label 0/1 matrix
        d["labels"] = "values" if kind == "values" else f"0/1 matrix of {dataset.num_classes} labels"
        d.pop("num_classes"), d.pop("named_classes")
    elif d["labelled"]:
        d["class_names"] = list(dataset.class_names)
    if getattr(dataset, "input_shapes", None):
        d["inputs"] = {k: list(v) for k, v in dataset.input_shapes.items()}
    if getattr(dataset, "output_labels", None):
        d["labelled_outputs"] = list(dataset.output_labels)
    return d


def one_line(desc: dict) -> str:
    """``describe``'s dict in a line, for the terminal."""
    parts = [str(desc.get("kind", "data"))]
    if desc.get("inputs"):
        parts.append("inputs " + ", ".join(desc["inputs"]))
    if desc.get("labels"):
        parts.append(f"labels: {desc['labels']}" + (f" (outputs {', '.join(desc['labelled_outputs'])})"
                                                    if desc.get("labelled_outputs") else ""))
    elif desc.get("labelled", True):
        names = desc.get("class_names") or []
        shown = ", ".join(names[:6]) + (", …" if len(names) > 6 else "")
        order = f", order: {desc['class_order']}" if desc.get("class_order") else ""
        parts.append(f"{desc.get('num_classes')} classes ({shown}{order})")
    else:
        parts.append("no labels (fidelity only)")
    if desc.get("scale"):
        parts.append(f"pixels scaled {desc['scale']}")
    if desc.get("capped"):
        parts.append("capped at " + ", ".join(f"{n} {s}" for s, n in desc["capped"].items()) + " samples")
    return f"data: {desc.get('name')}: " + "; ".join(parts)


def model_class_names(model) -> list[str] | None:
    """The class names a model carries (rare: a ``class_names`` attribute on the Keras model, or a string
    constant/variable of that name on a SavedModel's object), else None."""
    for holder in (model, getattr(model, "_loaded", None)):
        value = getattr(holder, "class_names", None) if holder is not None else None
        if value is None or callable(value) and not hasattr(value, "numpy"):
            continue
        try:
            value = value.numpy() if hasattr(value, "numpy") else value
            names = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in np.asarray(value).reshape(-1)]
        except (TypeError, ValueError, UnicodeDecodeError):
            continue
        if names:
            return names
    return None


def output_width(out) -> int | None:
    """A classifier's class count from one batch of its outputs: (batch, classes) → classes; else None."""
    if isinstance(out, list | tuple | dict):
        return None
    shape = np.shape(out)
    return int(shape[-1]) if len(shape) == 2 else None


def recorded(paths: list) -> dict[str, dict]:
    """The ``source.dataset`` each compress output among ``paths`` recorded, by folder."""
    from edgeopt.core.artifact import MANIFEST, load_manifest

    return {str(p): d for p in paths if Path(p).is_dir() and (Path(p) / MANIFEST).is_file()
            and isinstance(d := load_manifest(p).source.get("dataset"), dict)}


def manifest_scale(paths: list) -> str | None:
    """The pixel scale the compress outputs among ``paths`` recorded for their image-folder data (bench scales the
    same way unless --scale says otherwise); None when none recorded one. Outputs that disagree are refused."""
    found = {p: d["scale"] for p, d in recorded(paths).items() if d.get("scale")}
    if len(set(found.values())) > 1:
        shown = ", ".join(f"{p}: {s}" for p, s in found.items())
        raise UsageError(f"the compress outputs scaled their pixels differently ({shown})",
                         "pass --scale to choose one, or bench them separately")
    return next(iter(found.values()), None)


def check_class_order(dataset, paths: list) -> None:
    """A data set that names its classes must give each the id compress gave it (recorded in the manifest)."""
    declared = dataset.class_names[: declared_classes(dataset)]
    for p, d in recorded(paths).items():
        names = d.get("class_names") if isinstance(d.get("class_names"), list) else []
        names = names[: int(d.get("named_classes") or 0)]
        for i, name in enumerate(declared[: len(names)]):
            if names[i] != name:
                raise UsageError(f"data set '{dataset.name}' gives class id {i} to {name!r} but compress gave it to "
                                 f"{names[i]!r} ({p}/manifest.json)", "bench with the folders compress was given, "
                                 "or a classes.txt in their order")
