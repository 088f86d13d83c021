"""The loaders: a data set named on the command line (``digits``, ``shapes``, an ``.npz`` file or an image
folder with one sub-folder per class) becomes a :class:`~edgeopt.data.dataset.Dataset`.

Where a source has no split of its own, it is split here, stratified and seeded. Imports no TensorFlow;
scikit-learn and Pillow are imported only by the loaders that need them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from edgeopt.data.dataset import Dataset, as_y, stratified_order
from edgeopt.data.shapes import SHAPES_CLASSES, SHAPES_TEST, SHAPES_TRAIN, SHAPES_VAL, generate_shapes
from edgeopt.errors import UsageError, nearest

log = logging.getLogger(__name__)

BUILTIN: tuple[str, ...] = ("digits", "shapes")
NPZ_REQUIRED: tuple[str, ...] = ("x_train", "y_train", "x_test", "y_test")
NPZ_OPTIONAL: tuple[str, ...] = ("x_val", "y_val")
TEST_FRACTION = 0.2  # share of all samples that goes to test where we split (digits, image folders)
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


MAX_IMAGE_PIXELS = 1 << 25  # 32 M pixels: ~100 MB decoded; data sets here are thumbnails


def load_dataset(spec: str | os.PathLike, *, seed: int = 0, val_fraction: float = 0.1) -> Dataset:
    """Load a builtin name, an ``.npz`` file or an image folder as a :class:`Dataset`.

    ``seed`` fixes every split (and the generated ``shapes`` images). ``val_fraction`` is the share the
    validation split takes where it is carved: of all samples for ``digits`` and image folders, of the
    train split for an ``.npz`` without ``x_val``/``y_val``. ``shapes`` has fixed split sizes.
    """
    if not 0.0 < val_fraction < 1.0 - TEST_FRACTION:
        raise UsageError(f"val_fraction={val_fraction}", f"use a value between 0 and {1.0 - TEST_FRACTION} (exclusive)")
    seed = int(seed)
    if isinstance(spec, str) and spec in BUILTIN:
        return _load_digits(seed, val_fraction) if spec == "digits" else _load_shapes(seed)
    path = Path(spec)
    if path.is_dir():
        return _load_image_folder(path, seed, val_fraction)
    if path.is_file() and path.suffix.lower() == ".npz":
        return _load_npz(path, seed, val_fraction)
    if path.is_file():
        raise UsageError(
            f"data file '{path}' is not a .npz", "save the arrays with numpy.savez, or give an image folder"
        )
    if path.suffix or len(path.parts) > 1:
        raise UsageError(f"no file or folder '{path}'", "check the path, or use a builtin data set: digits, shapes")
    raise UsageError(
        f"unknown data set '{spec}'{nearest(str(spec), BUILTIN)}",
        "use digits, shapes, a .npz file (x_train, y_train, x_test, y_test) or an image folder (one sub-folder per class)",
    )


def _split_indices(y: np.ndarray, seed: int, fractions: tuple[float, ...], name: str) -> list[np.ndarray]:
    """Stratified, seeded split: one index array per fraction, then the rest. Each part non-empty."""
    n = len(y)
    sizes = [max(1, round(n * f)) for f in fractions]
    if sum(sizes) >= n:
        raise UsageError(f"data set '{name}' has only {n} samples to split", f"give at least {sum(sizes) + 1}")
    order = stratified_order(y, np.random.default_rng(seed))
    bounds = np.cumsum([0, *sizes, n - sum(sizes)])
    return [np.sort(order[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _from_pool(name: str, x, y, seed: int, val_fraction: float, class_names=None) -> Dataset:
    test, val, train = _split_indices(np.asarray(y), seed, (TEST_FRACTION, val_fraction), name)
    return Dataset.from_arrays(name, x[train], y[train], x[val], y[val], x[test], y[test], class_names=class_names)


# --- builtin: digits --------------------------------------------------------------------------------------


def _load_digits(seed: int, val_fraction: float) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[..., np.newaxis]  # pixel values are 0..16
    ds = _from_pool("digits", x, bunch.target, seed, val_fraction, [str(c) for c in bunch.target_names])
    log.info("loaded %r", ds)
    return ds


# --- .npz and image folders ------------------------------------------------------------------------------


def _load_npz(path: Path, seed: int, val_fraction: float) -> Dataset:
    if path.stat().st_size == 0:
        raise UsageError(f"'{path}' is empty (0 bytes)", "write it with numpy.savez(x_train=..., ...)")
    try:
        f = np.load(path, allow_pickle=False)
        if not hasattr(f, "files"):  # a .npy: one bare array
            raise UsageError(f"'{path}' holds one array, not an .npz archive of named arrays",
                             "write it with numpy.savez(x_train=..., ...)")
        with f:
            arrays = {key: f[key] for key in f.files}
    except UsageError:
        raise
    except Exception as e:  # noqa: BLE001 — truncated, bit-flipped, pickled, unsupported: numpy raises many types
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise UsageError(f"cannot read '{path}' as .npz ({type(e).__name__}: {first})",
                         "write it with numpy.savez(x_train=..., ...)") from None
    if not any(key.startswith("y_") for key in arrays):
        return _load_unlabelled_npz(path, arrays, seed, val_fraction)
    missing = [key for key in NPZ_REQUIRED if key not in arrays]
    has_val = [key for key in NPZ_OPTIONAL if key in arrays]
    if len(has_val) == 1:
        missing += [key for key in NPZ_OPTIONAL if key not in arrays]
    if missing:
        raise UsageError(
            f"'{path}' lacks {', '.join(missing)} (it has: {', '.join(sorted(arrays)) or 'nothing'})",
            f"save the keys {', '.join(NPZ_REQUIRED)} and optionally {', '.join(NPZ_OPTIONAL)}",
        )
    names = arrays.get("class_names")
    class_names = [str(c) for c in names] if names is not None else None
    x_train, y_train = arrays["x_train"], arrays["y_train"]
    if has_val:
        x_val, y_val = arrays["x_val"], arrays["y_val"]
    else:
        # convert y first, so one-hot labels stratify by class and train/val stay aligned
        ids, _ = as_y(y_train, "train", path.stem)
        if len(np.asarray(x_train)) != len(ids):
            raise UsageError(
                f"'{path}': x_train has {len(np.asarray(x_train))} samples but y_train has {len(ids)}",
                "give x_train and y_train the same first dimension",
            )
        val, train = _split_indices(ids, seed, (val_fraction,), path.stem)
        y_train = np.asarray(y_train)
        x_train, x_val = np.asarray(x_train)[train], np.asarray(x_train)[val]
        y_train, y_val = y_train[train], y_train[val]
        log.info("%s: no x_val/y_val, carved %d of %d train samples (seed %d)", path, len(val), len(ids), seed)
    ds = Dataset.from_arrays(
        path.stem, x_train, y_train, x_val, y_val, arrays["x_test"], arrays["y_test"], class_names=class_names
    )
    log.info("loaded %r from %s", ds, path)
    return ds


def _load_unlabelled_npz(path: Path, arrays: dict, seed: int, val_fraction: float) -> Dataset:
    """An .npz without y_* keys: inputs only; compress and bench then score fidelity to the source model."""
    missing = [key for key in ("x_train", "x_test") if key not in arrays]
    if missing:
        raise UsageError(f"'{path}' lacks {', '.join(missing)} (it has: {', '.join(sorted(arrays)) or 'nothing'}; "
                         "with no y_train, y_test it is read as inputs without labels)",
                         f"save the keys {', '.join(NPZ_REQUIRED)} and optionally {', '.join(NPZ_OPTIONAL)} "
                         "(without y_* keys: inputs only, scored by agreement with the source model)")
    x_train = np.asarray(arrays["x_train"])
    if "x_val" in arrays:
        x_val = arrays["x_val"]
    else:
        val, train = _split_indices(np.zeros(len(x_train), np.int64), seed, (val_fraction,), path.stem)
        x_train, x_val = x_train[train], x_train[val]
    ds = Dataset.from_arrays(path.stem, x_train, None, x_val, None, arrays["x_test"], None)
    log.info("loaded %r from %s (no y_* keys: no labels, fidelity only)", ds, path)
    return ds


def _load_image_folder(root: Path, seed: int, val_fraction: float) -> Dataset:
    """One sub-folder per class (sorted names); images resized to the first one's size, scaled to [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files = [(f, c) for c, name in enumerate(classes) for f in sorted((root / name).iterdir())
             if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]  # fmt: skip
    if not classes or not files:
        raise UsageError(
            f"image folder '{root}' has {len(classes)} class sub-folders and {len(files)} images",
            f"put images ({', '.join(sorted(IMAGE_SUFFIXES))}) in one sub-folder per class, e.g. {root}/cat/1.png",
        )
    images, size, mode = [], None, None
    for f, _ in files:
        try:
            with Image.open(f) as im:
                if im.width * im.height > MAX_IMAGE_PIXELS:  # the header says so before any pixel is decoded
                    raise UsageError(f"image '{f}' is {im.width}x{im.height} pixels, over the "
                                     f"{MAX_IMAGE_PIXELS}-pixel limit (a decompression bomb?)",
                                     "remove the file or shrink it")
                if size is None:
                    size, mode = im.size, ("L" if im.mode in ("1", "L", "I", "I;16", "F") else "RGB")
                    log.info(
                        "%s: %d images of %d classes, resized to %dx%d %s", root, len(files), len(classes), *size, mode
                    )
                im = im.convert(mode)
                images.append(np.asarray(im if im.size == size else im.resize(size, Image.BILINEAR)))
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError, SyntaxError) as e:
            raise UsageError(f"cannot read image '{f}' ({str(e)[:160]})", "remove or replace the file") from None
    x = np.stack(images).astype(np.float32) / 255.0
    if x.ndim == 3:
        x = x[..., np.newaxis]
    y = np.array([c for _, c in files], dtype=np.int64)
    return _from_pool(root.name, x, y, seed, val_fraction, classes)


# --- builtin: shapes --------------------------------------------------------------------------------------

_SHAPES_CACHE: dict[int, tuple[np.ndarray, ...]] = {}
def _load_shapes(seed: int) -> Dataset:
    if seed not in _SHAPES_CACHE:
        arrays = []
        for split, n in enumerate((SHAPES_TRAIN, SHAPES_VAL, SHAPES_TEST)):
            arrays += generate_shapes(n, np.random.default_rng([seed, split]))
        _SHAPES_CACHE.clear()  # keep one seed's worth (~100 MB) at most
        _SHAPES_CACHE[seed] = tuple(arrays)
    # copies: a caller that edits its arrays in place must not change the next caller's
    arrays = [a.copy() for a in _SHAPES_CACHE[seed]]
    ds = Dataset("shapes", *arrays, num_classes=len(SHAPES_CLASSES), class_names=SHAPES_CLASSES)
    log.info("generated %r", ds)
    return ds
