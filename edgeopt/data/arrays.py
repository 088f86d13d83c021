"""Named arrays (the keys of an .npz, or what a ``module:function`` returns) and pools of samples become a
:class:`~edgeopt.data.dataset.Dataset`; where a source has no split of its own it is split here, stratified and
seeded. Imports no TensorFlow."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from edgeopt.core.inputs import Inputs
from edgeopt.data.dataset import Dataset, group_named, stratified_order, stratify_ids, with_output_labels
from edgeopt.errors import UsageError

log = logging.getLogger(__name__)

NPZ_REQUIRED: tuple[str, ...] = ("x_train", "y_train", "x_test", "y_test")
NPZ_OPTIONAL: tuple[str, ...] = ("x_val", "y_val")
TEST_FRACTION = 0.2  # share of all samples that goes to test where we split (digits, image folders)


def split_indices(y: np.ndarray, seed: int, fractions: tuple[float, ...], name: str) -> list[np.ndarray]:
    """Stratified, seeded split: one index array per fraction, then the rest. Each part non-empty."""
    n = len(y)
    sizes = [max(1, round(n * f)) for f in fractions]
    if sum(sizes) >= n:
        raise UsageError(f"data set '{name}' has only {n} samples to split", f"give at least {sum(sizes) + 1}")
    order = stratified_order(y, np.random.default_rng(seed))
    bounds = np.cumsum([0, *sizes, n - sum(sizes)])
    return [np.sort(order[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def selection_view(ds: Dataset, holdout: float, seed: int = 0, final: bool = False) -> Dataset:
    """``ds`` as a search ranks candidates on it. The test split is never read: a stratified, seeded ``holdout``
    share of the validation split becomes the view's validation split, what the stages choose on (early stopping
    with the best epoch restored, sensitivity scans, int8 fallbacks, the guard's reference), and the rest of it
    becomes the view's test split, what ranks the candidates. So no candidate is ranked on rows its own stages
    chose on. Both parts are rows the source model did not train on, so its accuracy on them is a fair reference
    (rows held out of train are not: the source trained on them). ``holdout`` 0: the whole validation split does
    both, and ranks each candidate on rows its stages chose on. ``final``: the same train and validation rows,
    with the real test split, for the one read of the chosen candidate."""
    if not len(ds.x_val):
        raise UsageError(f"data '{ds.name}' has no validation split to score candidates on",
                         "give x_val/y_val in the .npz (or use a builtin data set): the test split is kept for the "
                         "final model")
    if holdout <= 0:
        stages, ranks = np.arange(len(ds.x_val)), np.arange(len(ds.x_val))
    else:
        if max(1, round(len(ds.x_val) * holdout)) >= len(ds.x_val):
            raise UsageError(f"data '{ds.name}' has {len(ds.x_val)} validation sample(s), too few to give "
                             f"{holdout:g} of them to the stages and keep some to rank the candidates",
                             "give more validation samples, or a smaller `optimize: {holdout: ...}` (0: none)")
        groups = ds.y_val if ds.labelled and ds.label_kind == "ids" else np.zeros(len(ds.y_val), np.int64)
        stages, ranks = split_indices(groups, seed, (holdout,), ds.name)

    def moved(train, val, test):  # per-split labels, moved as the x are
        return train, val[stages], test if final else val[ranks]

    x_test, y_test = (ds.x_test, ds.y_test) if final else (ds.x_val[ranks], ds.y_val[ranks])
    return replace(
        ds, x_val=ds.x_val[stages], y_val=ds.y_val[stages], x_test=x_test, y_test=y_test,
        targets=None if ds.targets is None else moved(*ds.targets),
        output_labels=None if ds.output_labels is None else {k: moved(*v) for k, v in ds.output_labels.items()},
        info={**ds.info, "selection_view": {"holdout": holdout, "stage_rows": int(len(stages)),
                                            "ranked_rows": int(len(ranks)), "of_val_rows": int(len(ds.x_val)),
                                            "test_split": "the data set's" if final else "the ranked rows"}})


def from_pool(name: str, x, y, seed: int, val_fraction: float, class_names=None) -> Dataset:
    test, val, train = split_indices(np.asarray(y), seed, (TEST_FRACTION, val_fraction), name)
    return Dataset.from_arrays(name, x[train], y[train], x[val], y[val], x[test], y[test], class_names=class_names)


def from_named_arrays(name: str, arrays: dict, seed: int, val_fraction: float, where: str, verb: str) -> Dataset:
    """A Dataset from arrays named like an .npz's keys (x_train, y_train, …; no y_* = no labels). ``where`` names
    the source in messages, ``verb`` starts the fix ("save the keys", "return the keys"). Several inputs and
    outputs: keys ``x_train.<input name>``, ``y_train.<output name>`` (likewise val, test; see dataset.group_named)."""
    arrays, by_output = group_named(arrays, where)
    for key in (*NPZ_REQUIRED, *NPZ_OPTIONAL):
        if key in arrays and not isinstance(arrays[key], Inputs) and np.ndim(arrays[key]) < 1:
            raise UsageError(f"{where}: {key} has shape {np.shape(arrays[key])}, not (samples, ...)",
                             "give each x_* as (samples, *input_shape) and each y_* as (samples,)")
    if not any(key.startswith("y_") for key in arrays):
        return _unlabelled(name, arrays, seed, val_fraction, where, verb)
    missing = [key for key in NPZ_REQUIRED if key not in arrays]
    has_val = [key for key in NPZ_OPTIONAL if key in arrays]
    if len(has_val) == 1:
        missing += [key for key in NPZ_OPTIONAL if key not in arrays]
    if missing:
        raise UsageError(
            f"{where} lacks {', '.join(missing)} (it has: {', '.join(sorted(arrays)) or 'nothing'})",
            f"{verb} {', '.join(NPZ_REQUIRED)} and optionally {', '.join(NPZ_OPTIONAL)}",
        )
    names = arrays.get("class_names")
    class_names = [str(c) for c in np.asarray(names).reshape(-1)] if names is not None else None
    x_train, y_train = arrays["x_train"], arrays["y_train"]
    if has_val:
        x_val, y_val = arrays["x_val"], arrays["y_val"]
    else:
        # convert y first, so one-hot labels stratify by class and train/val stay aligned (values: one group)
        ids = stratify_ids(y_train, name)
        x_train = x_train if isinstance(x_train, Inputs) else np.asarray(x_train)
        if len(x_train) != len(ids):
            raise UsageError(
                f"{where}: x_train has {len(x_train)} samples but y_train has {len(ids)}",
                "give x_train and y_train the same first dimension",
            )
        val, train = split_indices(ids, seed, (val_fraction,), name)
        y_train = np.asarray(y_train)
        x_train, x_val = x_train[train], x_train[val]
        y_train, y_val = y_train[train], y_train[val]
        by_output = {n: {**v, "y_train": np.asarray(v["y_train"])[train], "y_val": np.asarray(v["y_train"])[val]}
                     if "y_train" in v and "y_val" not in v else v for n, v in by_output.items()}
        log.info("%s: no x_val/y_val, carved %d of %d train samples (seed %d)", where, len(val), len(ids), seed)
    ds = Dataset.from_arrays(
        name, x_train, y_train, x_val, y_val, arrays["x_test"], arrays["y_test"], class_names=class_names
    )
    if class_names:
        ds = replace(ds, info={"declared_classes": len(class_names), "declared_by": "its class_names",
                               "class_order": "as in class_names"})
    if by_output:
        ds = with_output_labels(ds, by_output, where)
    return ds


def _unlabelled(name: str, arrays: dict, seed: int, val_fraction: float, where: str, verb: str) -> Dataset:
    """Inputs without y_* keys: compress and bench then score fidelity to the source model."""
    missing = [key for key in ("x_train", "x_test") if key not in arrays]
    if missing:
        raise UsageError(f"{where} lacks {', '.join(missing)} (it has: {', '.join(sorted(arrays)) or 'nothing'}; "
                         "with no y_train, y_test it is read as inputs without labels)",
                         f"{verb} {', '.join(NPZ_REQUIRED)} and optionally {', '.join(NPZ_OPTIONAL)} "
                         "(without y_* keys: inputs only, scored by agreement with the source model)")
    x_train = arrays["x_train"] if isinstance(arrays["x_train"], Inputs) else np.asarray(arrays["x_train"])
    if "x_val" in arrays:
        x_val = arrays["x_val"]
    else:
        if not isinstance(x_train, Inputs) and x_train.ndim < 1:
            raise UsageError(f"{where}: x_train has shape {x_train.shape}", "give x as (samples, *input_shape)")
        val, train = split_indices(np.zeros(len(x_train), np.int64), seed, (val_fraction,), name)
        x_train, x_val = x_train[train], x_train[val]
    ds = Dataset.from_arrays(name, x_train, None, x_val, None, arrays["x_test"], None)
    log.info("loaded %r from %s (no y_* keys: no labels, fidelity only)", ds, where)
    return ds
