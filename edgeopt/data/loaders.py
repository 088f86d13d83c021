"""The loaders: a data set named on the command line (``digits``, ``shapes``, an ``.npz`` file or an image
folder with one sub-folder per class) becomes a :class:`~edgeopt.data.dataset.Dataset`.

Where a source has no split of its own, it is split (edgeopt.data.arrays), stratified and seeded; `module:function`
is read by edgeopt.data.from_code. Imports no TensorFlow;
scikit-learn and Pillow are imported only by the loaders that need them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from edgeopt.data.arrays import TEST_FRACTION, from_named_arrays
from edgeopt.data.arrays import from_pool as _from_pool
from edgeopt.data.dataset import Dataset
from edgeopt.data.shapes import SHAPES_CLASSES, SHAPES_TEST, SHAPES_TRAIN, SHAPES_VAL, generate_shapes
from edgeopt.errors import UsageError, nearest

log = logging.getLogger(__name__)

BUILTIN: tuple[str, ...] = ("digits", "shapes")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


MAX_IMAGE_PIXELS = 1 << 25  # 32 M pixels: ~100 MB decoded; data sets here are thumbnails


SCALES: dict[str, tuple[float, float]] = {"0-1": (1 / 255.0, 0.0), "-1-1": (1 / 127.5, -1.0), "none": (1.0, 0.0)}
DEFAULT_SCALE = "0-1"
CLASSES_FILE = "classes.txt"  # in an image folder: the class order, one name per line (else alphabetical)


def load_dataset(spec: str | os.PathLike, *, seed: int = 0, val_fraction: float = 0.1, scale: str | None = None,
                 num_classes: int | None = None, max_samples: int | None = None) -> Dataset:
    """Load a builtin name, an ``.npz`` file, an image folder or ``module:function`` as a :class:`Dataset`.

    ``seed`` fixes every split (and the generated ``shapes`` images). ``val_fraction`` is the share the
    validation split takes where it is carved: of all samples for ``digits`` and image folders, of the
    train split for an ``.npz`` without ``x_val``/``y_val``. ``shapes`` has fixed split sizes. ``scale``
    (image folders only): pixels to ``0-1`` (default), ``-1-1`` or ``none`` (0..255 as they are). ``num_classes``:
    the class count (else the model's output width decides, see edgeopt.data.classes). ``max_samples``: the cap
    per split on what a ``module:function``'s tf.data.Dataset yields.
    """
    if not 0.0 < val_fraction < 1.0 - TEST_FRACTION:
        raise UsageError(f"val_fraction={val_fraction}", f"use a value between 0 and {1.0 - TEST_FRACTION} (exclusive)")
    if scale is not None and scale not in SCALES:
        raise UsageError(f"--scale {scale!r}{nearest(str(scale), tuple(SCALES))}",
                         f"use one of {', '.join(SCALES)} (pixels to [0, 1], [-1, 1], or 0..255 as they are)")
    if scale is not None and not is_image_folder(spec):
        raise UsageError(f"--scale {scale} applies to image folders only, not '{spec}'",
                         "leave --scale out: .npz arrays, builtin sets and module:function data are taken as they are")
    ds = _load(spec, int(seed), val_fraction, scale or DEFAULT_SCALE, max_samples)
    if num_classes is not None:
        from edgeopt.data.classes import with_num_classes

        ds = with_num_classes(ds, num_classes)
    return ds


def is_image_folder(spec) -> bool:
    """Whether ``spec`` names an image folder (where --scale applies)."""
    return not (isinstance(spec, str) and spec in BUILTIN) and Path(spec).is_dir()


def _load(spec, seed: int, val_fraction: float, scale: str, max_samples: int | None) -> Dataset:
    from edgeopt.data.from_code import CODE_SPEC, load_from_code

    if isinstance(spec, str) and spec in BUILTIN:
        ds = _load_digits(seed, val_fraction) if spec == "digits" else _load_shapes(seed)
        return replace(ds, info={"kind": "builtin", **ds.info})
    path = Path(spec)
    if path.is_dir():
        return _load_image_folder(path, seed, val_fraction, scale)
    if path.is_file() and path.suffix.lower() == ".npz":
        return _load_npz(path, seed, val_fraction)
    if path.is_file():
        raise UsageError(
            f"data file '{path}' is not a .npz", "save the arrays with numpy.savez, or give an image folder"
        )
    if isinstance(spec, str) and CODE_SPEC.fullmatch(spec):
        return load_from_code(spec, seed, val_fraction, max_samples)
    if path.suffix or len(path.parts) > 1:
        raise UsageError(f"no file or folder '{path}'", "check the path, or use a builtin data set: digits, shapes")
    raise UsageError(
        f"unknown data set '{spec}'{nearest(str(spec), BUILTIN)}",
        "use digits, shapes, a .npz file (x_train, y_train, x_test, y_test), an image folder (one sub-folder per "
        "class) or module:function (a function that returns the arrays)",
    )


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
    ds = from_named_arrays(path.stem, arrays, seed, val_fraction, f"'{path}'", "save the keys")
    log.info("loaded %r from %s", ds, path)
    return replace(ds, info={"kind": "npz", **ds.info})


def _load_image_folder(root: Path, seed: int, val_fraction: float, scale: str = DEFAULT_SCALE) -> Dataset:
    """One sub-folder per class; class ids in alphabetical order of the folder names, or in the order of the
    folder's classes.txt (one name per line: classes may then be missing from the folder); images resized to the
    first one's size; pixels scaled by ``scale`` (see SCALES)."""
    from PIL import Image, UnidentifiedImageError

    folders = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    classes, order = _class_order(root, folders)
    files = [(f, c) for c, name in enumerate(classes) if (root / name).is_dir()
             for f in sorted((root / name).iterdir()) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]  # fmt: skip
    if not classes or not files:
        raise UsageError(
            f"image folder '{root}' has {len(folders)} class sub-folders and {len(files)} images",
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
    factor, offset = SCALES[scale]
    x = np.stack(images).astype(np.float32) * np.float32(factor) + np.float32(offset)
    if x.ndim == 3:
        x = x[..., np.newaxis]
    y = np.array([c for _, c in files], dtype=np.int64)
    ds = _from_pool(root.name, x, y, seed, val_fraction, classes)
    return replace(ds, info={"kind": "image folder", "declared_classes": len(classes),
                             "declared_by": f"{len(classes)} class names" if order == CLASSES_FILE
                             else f"{len(classes)} sub-folders", "class_order": order, "scale": scale})


def _class_order(root: Path, folders: list[str]) -> tuple[list[str], str]:
    """The class names in id order and where the order came from."""
    listing = root / CLASSES_FILE
    if not listing.is_file():
        return folders, "alphabetical by folder name"
    try:
        text = listing.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read '{listing}' ({str(e)[:160]})", "write one class name per line, UTF-8") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes or not names:
        raise UsageError(f"'{listing}' " + (f"lists {dupes[0]!r} twice" if dupes else "lists no class"),
                         "write each class name once, one per line, in the model's class order")
    unlisted = [f for f in folders if f not in names]
    if unlisted:
        raise UsageError(f"folder '{root / unlisted[0]}' is not listed in '{listing}' ({len(names)} names)",
                         f"add {unlisted[0]!r} to {CLASSES_FILE} at its class id, or remove the folder")
    return names, CLASSES_FILE


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
