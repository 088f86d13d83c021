"""Seeded malformed data from ``--data module:function`` (values a user's function might return, exceptions it might
raise), malformed ``classes.txt`` files and ``--scale``/``--num-classes`` values: each is accepted or refused with
one line, never a crash or a traceback."""

from __future__ import annotations

import sys
import uuid

import numpy as np
import pytest

from tests.fuzz.conftest import SIZES, feed, image_folder

COUNT = {"quick": 40, "full": 300}
ODD = [None, "text", 3, 2.5, b"bytes", np.array("x"), np.zeros(()), np.zeros((0,)), np.zeros((0, 4)),
       np.full((30, 4), np.inf), np.full((30, 4), np.nan), np.array([[1, 2], [3]], dtype=object), {"a": 1},
       [1, 2, 3], [[0.1] * 4] * 30, np.ones((30, 4, 1, 1, 1)), np.full(30, 2**62), np.full(30, -1), np.full(30, 0.5),
       np.ones(30, dtype=complex), np.ones((30, 4), dtype=bool), np.array(["a"] * 30), np.ones((30, 2 ** 17 + 1)),
       np.full(30, np.iinfo(np.uint64).max, dtype=np.uint64), np.eye(30)[:, :3], np.ones((30, 0))]
RAISES = [ValueError("first\nsecond"), SystemExit(3), RecursionError(), KeyError("k"), MemoryError(),
          OSError(2, "No such file"), ImportError("no"), TypeError(), AssertionError("a" * 5000)]
KEYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test", "class_names", "train", "x_train.a", "junk")


def _good(rng):
    return {"x_train": rng.random((30, 4)), "y_train": np.arange(30) % 3, "x_test": rng.random((9, 4)),
            "y_test": np.arange(9) % 3}


def _variants(n: int, seed: int):
    rng = np.random.default_rng(seed)
    for i in range(n):
        value = _good(rng)
        for _ in range(int(rng.integers(1, 3))):
            op = int(rng.integers(0, 4))
            if op == 0 and value:
                value.pop(sorted(value)[int(rng.integers(0, len(value)))])
            elif op in (1, 2):
                value[KEYS[int(rng.integers(0, len(KEYS)))]] = ODD[int(rng.integers(0, len(ODD)))]
            else:
                key = sorted(value)[int(rng.integers(0, len(value)))] if value else "x_train"
                old = np.asarray(value.get(key, np.zeros(3)))
                value[key] = old[: int(rng.integers(0, 12))] if old.ndim else old
        yield f"dict #{i}", value
    for thing in [*ODD, *RAISES, (np.ones((5, 4)), np.zeros(5)), {}]:
        yield f"{type(thing).__name__}", thing


@pytest.mark.parametrize("size", SIZES)
def test_code_data(tmp_path, clean, monkeypatch, size):
    from edgeopt.data.loaders import load_dataset

    name = f"fuzzdata_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("VALUE = None\ndef load():\n    if isinstance(VALUE, BaseException):\n"
                                         "        raise VALUE\n    return VALUE\n")
    monkeypatch.chdir(tmp_path)
    feed("code none", lambda: load_dataset(f"{name}:load"))  # imports it once; VALUE is set below
    module = sys.modules[name]
    try:
        for label, value in _variants(COUNT[size], seed=17):
            module.VALUE = value
            feed(f"code {label}", lambda: load_dataset(f"{name}:load"))
    finally:
        sys.modules.pop(name, None)
    for spec in (f"{name}:nothing", "a.b.c.nosuch:f", f"{name}:VALUE", "os:getcwd"):
        assert feed(f"code spec {spec}", lambda spec=spec: load_dataset(spec)) == "refused"


@pytest.mark.parametrize("size", SIZES)
def test_classes_files_and_options(tmp_path, clean, size):
    from edgeopt.data.loaders import load_dataset

    rng = np.random.default_rng(5)
    root = image_folder(tmp_path / "imgs", rng, 2, (4, 4))
    listing = root / "classes.txt"
    texts = [b"", b"\n\n", b"cat\n", b"dog\ncat\ncat\n", b"\xff\xfe\x00c", b"cat\ndog\n" * 5000, b"dog\r\ncat\r\n",
             bytes(rng.integers(0, 256, 64, dtype=np.uint8))]
    texts += [bytes(rng.integers(32, 127, int(rng.integers(1, 40)), dtype=np.uint8)) for _ in range(COUNT[size] // 4)]
    for i, text in enumerate(texts):
        listing.write_bytes(text)
        feed(f"classes.txt #{i}", lambda: load_dataset(root))
    listing.unlink()
    for scale in ("0-1", "-1-1", "none", "", "1-1", "0..1", "NONE", None):
        feed(f"scale {scale!r}", lambda scale=scale: load_dataset(root, scale=scale))
    for n in (0, 1, 2, -1, 10**9, 2.5):
        feed(f"num_classes {n!r}", lambda n=n: load_dataset(root, num_classes=n))
