"""``--data module:function``: data that lives in the user's code.

The function is called with no arguments and returns either a dict named like an .npz's keys (``x_train``,
``y_train``, ``x_val``, ``y_val``, ``x_test``, ``y_test``; ``y_*`` optional: without them, no labels) holding numpy
arrays, or a dict of ``tf.data.Dataset`` splits (``train``, ``val``, ``test``; val optional) yielding ``(x, y)`` or
``x``, or one ``tf.data.Dataset`` (split here, seeded). Datasets are read into arrays up to ``max_samples`` per
split (default MAX_SAMPLES), and the data's description says when a split was capped. The arrays then go through
the same checks as an .npz. Importing the module runs the user's code: the user asked for it by naming it.
Imports no TensorFlow itself (a tf.data.Dataset comes from a module that did).
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys
from dataclasses import replace

import numpy as np

from edgeopt.data.arrays import from_named_arrays, from_pool, split_indices
from edgeopt.errors import UsageError

log = logging.getLogger(__name__)

CODE_SPEC = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
MAX_SAMPLES = 10_000  # per split read from a tf.data.Dataset (which may be endless)
SPLITS = ("train", "val", "test")
_FIX = "return a dict of numpy arrays (x_train, y_train, x_test, y_test, optionally x_val, y_val) or of tf.data.Dataset splits (train, val, test)"  # noqa: E501


def _first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: " + ((str(e).strip().splitlines() or [""])[0][:200])


def call_function(spec: str):
    """Import ``module`` (from the current directory or an installed package) and return ``function()``."""
    module_name, func_name = spec.split(":")
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
            raise UsageError(f"--data {spec}: no module '{module_name}' in {cwd} or the installed packages",
                             f"run edgeopt from the folder that holds {module_name.split('.')[0]}.py, or install "
                             "it") from None
        raise UsageError(f"--data {spec}: importing {module_name} failed ({_first_line(e)})",
                         "fix the import in the module, or install what it needs") from None
    except (Exception, SystemExit) as e:  # noqa: BLE001 — the user's module may raise anything while it loads
        raise UsageError(f"--data {spec}: importing {module_name} raised {_first_line(e)}",
                         "fix the module so that it imports") from None
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)
    fn = getattr(module, func_name, None)
    if not callable(fn):
        public = sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n, None)))
        raise UsageError(f"--data {spec}: module {module_name} has no function '{func_name}'"
                         f" (it has: {', '.join(public[:8]) or 'none'})", "name a function the module defines")
    try:
        return fn()
    except (Exception, SystemExit) as e:  # noqa: BLE001 — the user's function may raise anything
        raise UsageError(f"--data {spec} raised {_first_line(e)}", "fix the function; it is called with no "
                                                                     "arguments") from None


def is_tf_dataset(value) -> bool:
    return type(value).__module__.startswith("tensorflow") and hasattr(value, "as_numpy_iterator")


def materialise(ds, what: str, spec: str, cap: int) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """(x, y or None, capped) from a tf.data.Dataset of ``(x, y)`` or ``x`` elements, batched or not: one whose
    leading dimension is unknown (``ds.batch(n)``) is unbatched first."""
    try:
        element = ds.element_spec
        first = element[0] if isinstance(element, tuple) else element
        if not hasattr(first, "shape"):
            raise UsageError(f"--data {spec}: {what} yields {type(first).__name__} elements",
                             "yield (x, y) or x tensors (several named inputs are not read from a tf.data.Dataset)")
        if first.shape.rank and first.shape[0] is None:
            ds = ds.unbatch()
        xs, ys, capped = [], [], False
        for i, el in enumerate(ds.take(cap + 1).as_numpy_iterator()):
            if i == cap:
                capped = True
                break
            if isinstance(el, tuple):
                if not 1 <= len(el) <= 3:
                    raise UsageError(f"--data {spec}: {what} yields tuples of {len(el)}", "yield (x, y) or x")
                xs.append(el[0])
                if len(el) > 1:
                    ys.append(el[1])
            else:
                xs.append(el)
        if ys and len(ys) != len(xs):
            raise UsageError(f"--data {spec}: {what} yields labels for only some elements", "yield (x, y) always")
        x = np.stack(xs) if xs else np.zeros((0, *[d or 1 for d in first.shape]), np.float32)
        y = np.stack(ys) if ys else None
    except UsageError:
        raise
    except Exception as e:  # noqa: BLE001 — the user's pipeline (map functions, files it reads) may raise anything
        raise UsageError(f"--data {spec}: reading {what} raised {_first_line(e)}",
                         "fix the tf.data pipeline; every element must have the same shape") from None
    if capped:
        log.warning("--data %s: %s has more than %d samples; read the first %d", spec, what, cap, cap)
    return x, y, capped


def load_from_code(spec: str, seed: int, val_fraction: float, max_samples: int | None = None):
    cap = int(max_samples or MAX_SAMPLES)
    if cap < 1:
        raise UsageError(f"max_samples {max_samples}", "give at least 1")
    result = call_function(spec)
    name = spec.split(":")[0].rsplit(".", 1)[-1]
    capped: dict[str, int] = {}
    if is_tf_dataset(result):  # one pool: split here like an image folder
        x, y, cut = materialise(result, "the dataset", spec, cap)
        if cut:
            capped["all"] = cap
        if y is None:
            test, val, train = split_indices(np.zeros(len(x), np.int64), seed, (0.2, val_fraction), name)
            arrays = {"x_train": x[train], "x_val": x[val], "x_test": x[test]}
            ds = from_named_arrays(name, arrays, seed, val_fraction, f"--data {spec}", "return")
        elif not len(x):
            raise UsageError(f"--data {spec}: the dataset yields no samples", "give at least a few samples")
        else:
            from edgeopt.data.dataset import as_y

            ds = from_pool(name, x, as_y(y, "all", name)[0], seed, val_fraction)
    elif isinstance(result, dict):
        arrays = {}
        for key, value in result.items():
            key = str(key)
            if is_tf_dataset(value):
                split = {"validation": "val"}.get(key, key)
                if split not in SPLITS:
                    raise UsageError(f"--data {spec}: returned a tf.data.Dataset under {key!r}",
                                     "name the splits train, val, test")
                x, y, cut = materialise(value, f"the {split} split", spec, cap)
                if cut:
                    capped[split] = cap
                arrays[f"x_{split}"] = x
                if y is not None:
                    arrays[f"y_{split}"] = y
            elif key.startswith(("x_", "y_")) or key == "class_names":
                arrays[key] = value
            else:
                raise UsageError(f"--data {spec}: returned an unknown key {key!r}", _FIX)
        ds = from_named_arrays(name, arrays, seed, val_fraction, f"--data {spec}", "return the keys")
    else:
        raise UsageError(f"--data {spec} returned a {type(result).__name__}", _FIX)
    info = {"kind": "module:function", **ds.info}
    if capped:
        info["capped"] = capped
    log.info("loaded %r from %s", ds, spec)
    return replace(ds, name=spec, info=info)
