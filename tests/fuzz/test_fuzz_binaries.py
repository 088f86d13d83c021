"""Seeded corruption of binary inputs — .npz data, image folders, model files, artifacts — and models that carry
code: each is accepted or refused with one line; nothing crashes, hangs, runs a payload or leaves files behind."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.fuzz.conftest import SIZES, feed, image_folder

REPO = Path(__file__).resolve().parents[2]
COUNT = {"quick": 12, "full": 40}


def corruptions(data: bytes, n: int, seed: int):
    """n seeded variants of ``data``: truncated, bit-flipped, zeroed runs, spliced, or a random prefix kept."""
    rng = random.Random(seed)
    for i in range(n):
        b = bytearray(data)
        kind = i % 5
        if kind == 0:
            b = b[: rng.randrange(0, len(b))]
        elif kind == 1:
            for _ in range(rng.randint(1, 40)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif kind == 2:
            start = rng.randrange(len(b))
            b[start:start + rng.randint(1, 4096)] = bytes(min(4096, len(b) - start))
        elif kind == 3:
            cut = rng.randrange(len(b))
            b = b[:cut] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))) + b[cut:]
        else:
            b = bytearray(rng.randbytes(rng.randint(0, 512)))
        yield f"{['truncated', 'bitflip', 'zeroed', 'spliced', 'random'][kind]}#{i}", bytes(b)


def _npz_variants(digits, tmp_path):
    """Valid archives holding wrong things (dtypes, shapes, labels), on top of byte-level corruption."""
    x, y = digits.x_train[:60], digits.y_train[:60]
    xt, yt = digits.x_test[:20], digits.y_test[:20]
    big = y.copy()
    big[3] = np.iinfo(np.int64).max
    return {"object dtype": dict(x_train=np.array([object()] * 60, dtype=object), y_train=y, x_test=xt, y_test=yt),
            "int64 max label": dict(x_train=x, y_train=big, x_test=xt, y_test=yt),
            "negative label": dict(x_train=x, y_train=-y - 1, x_test=xt, y_test=yt),
            "float labels": dict(x_train=x, y_train=y + 0.5, x_test=xt, y_test=yt),
            "huge float label": dict(x_train=x, y_train=y * 1e30, x_test=xt, y_test=yt),
            "nan x": dict(x_train=x * np.nan, y_train=y, x_test=xt, y_test=yt),
            "shape mismatch": dict(x_train=x, y_train=y[:10], x_test=xt, y_test=yt),
            "empty split": dict(x_train=x[:0], y_train=y[:0], x_test=xt, y_test=yt),
            "string x": dict(x_train=np.array(["a"] * 60), y_train=y, x_test=xt, y_test=yt),
            "missing keys": dict(x_train=x),
            "one array": None}


@pytest.mark.parametrize("size", SIZES)
def test_npz_data(tmp_path, clean, digits, size):
    from edgeopt.data.loaders import load_dataset

    good = tmp_path / "good.npz"
    np.savez(good, x_train=digits.x_train[:200], y_train=digits.y_train[:200], x_test=digits.x_test[:50],
             y_test=digits.y_test[:50])
    for label, blob in corruptions(good.read_bytes(), COUNT[size] * 2, seed=11):
        p = tmp_path / "bad.npz"
        p.write_bytes(blob)
        feed(f"npz {label}", lambda p=p: load_dataset(p))
    for label, arrays in _npz_variants(digits, tmp_path).items():
        p = tmp_path / "odd.npz"
        if arrays is None:
            with open(p, "wb") as f:
                np.save(f, digits.x_train[:5])
        else:
            np.savez(p, **arrays)
        assert feed(f"npz {label}", lambda p=p: load_dataset(p)) != "ok" or label == "float labels"


@pytest.mark.parametrize("size", SIZES)
def test_image_folders(tmp_path, clean, size):
    from PIL import Image

    from edgeopt.data.loaders import load_dataset

    rng = np.random.default_rng(3)
    root = image_folder(tmp_path / "imgs", rng, 3, (8, 8, 3))
    good = (root / "cat" / "0.png").read_bytes()
    victim = root / "dog" / "bad.png"
    for label, blob in corruptions(good, COUNT[size], seed=5):
        victim.write_bytes(blob)
        feed(f"image {label}", lambda: load_dataset(root))
    Image.new("L", (12000, 12000)).save(victim)  # 144 M pixels from a ~150 KB file
    assert feed("image bomb", lambda: load_dataset(root)) == "refused"


@pytest.mark.parametrize("size", SIZES)
def test_model_files(tmp_path, clean, tiny_model_path, size):
    import tf_keras

    from edgeopt.models.load import load_model

    h5 = tmp_path / "tiny.h5"
    tf_keras.models.load_model(tiny_model_path, compile=False).save(h5)
    for src in (tiny_model_path, h5):
        for label, blob in corruptions(src.read_bytes(), COUNT[size] // 2, seed=7):
            p = tmp_path / f"bad{src.suffix}"
            p.write_bytes(blob)
            feed(f"model {src.suffix} {label}", lambda p=p: load_model(p))


@pytest.mark.parametrize("size", SIZES)
def test_artifacts(tmp_path, clean, compressed, size):
    """Corrupt .tflite/.onnx files: the parent reads sizes, parameters and graphs without crashing."""
    from edgeopt.core.artifact import collect

    out, manifest = compressed
    sources = [out / a.path for a in manifest.artifacts if a.format in ("tflite", "onnx")][:2]
    for src in sources:
        for label, blob in corruptions(src.read_bytes(), COUNT[size] // 2, seed=13):
            p = tmp_path / f"bad{src.suffix}"
            p.write_bytes(blob)
            feed(f"artifact {src.suffix} {label}", lambda p=p: [a.facts.astuple() for a, _ in collect([p])])


def _lambda_model(kind: str, marker: Path):
    import tf_keras

    body = eval(f"lambda x: (open({str(marker)!r}, 'a').write('ran\\n'), x)[1]")  # noqa: S307
    inp = tf_keras.Input((4,))
    if kind == "nested":  # the Lambda inside a Sequential inside a functional model
        inner = tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Lambda(body)])
        return tf_keras.Model(inp, tf_keras.layers.Dense(2)(inner(inp)))
    if kind == "tail":
        return tf_keras.Model(inp, tf_keras.layers.Lambda(body)(tf_keras.layers.Dense(2)(inp)))
    return tf_keras.Model(inp, tf_keras.layers.Dense(2)(tf_keras.layers.Lambda(body)(inp)))


@pytest.mark.parametrize("size", SIZES)
def test_models_with_code(tmp_path, clean, tally, size, monkeypatch):
    from edgeopt.models.load import load_model
    from edgeopt.models.safety import UNSAFE_ENV

    monkeypatch.delenv(UNSAFE_ENV, raising=False)
    kinds = ["head", "nested", "tail"] if size == "full" else ["nested"]
    for kind in kinds:
        for suffix in (".h5", ".keras", ""):
            marker = tmp_path / f"marker_{kind}{suffix}"
            path = tmp_path / f"evil_{kind}{suffix or '_saved'}"
            model = _lambda_model(kind, marker)
            model.save(path) if suffix else model.save(path, save_format="tf")
            marker.unlink(missing_ok=True)
            outcome = feed(f"code {kind}{suffix}", lambda path=path: load_model(path))
            if marker.exists():
                tally.bad("code-exec", f"{kind}{suffix or ' SavedModel'}: the Lambda body ran ({outcome})")
            assert outcome == "refused"


@pytest.mark.parametrize("size", SIZES)
def test_cli_end_to_end(tmp_path, clean, tally, tiny_model_path, size):
    """The real command line on bad inputs: exit 2, one line, and no staging folder or temp file left."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "bomb.yaml").write_text("a: &a [x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a]\n"
                                    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c]\n"
                                    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e]\nstages: *f\n")
    (work / "empty.npz").write_bytes(b"")
    (work / "notes.txt").write_text("mine")
    cases = [["compress", str(tiny_model_path), "--data", "digits", "--recipe", "bomb.yaml", "--out", "o"],
             ["compress", str(tiny_model_path), "--data", "empty.npz", "--out", "o"],
             ["compress", str(tiny_model_path), "--data", "digits", "--out", "notes.txt"],
             ["compress", str(tiny_model_path), "--data", "digits", "--out", "."],
             ["bench", str(tiny_model_path), "--data", "digits", "--target", "bomb.yaml", "--out", "r.json"]]
    cases = cases if size == "full" else cases[:2]
    before = sorted(p.name for p in work.iterdir())
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp)}
    for args in cases:
        tally.counts["inputs"] += 1
        done = subprocess.run([sys.executable, "-m", "edgeopt.cli", *args], cwd=work, env=env, capture_output=True,
                              text=True, timeout=300)
        lines = [ln for ln in done.stderr.splitlines() if ln.startswith(("error:", "internal error:"))]
        if "Traceback" in done.stderr:
            tally.bad("tracebacks", f"{args}: {done.stderr[-300:]}")
        elif done.returncode != 2 or len(lines) != 1:
            tally.bad("crashes", f"{args}: exit {done.returncode}: {done.stderr[-300:]}")
        else:
            tally.counts["refused"] += 1
        left = sorted(set(p.name for p in work.iterdir()) - set(before)) + [p.name for p in tmp.iterdir()]
        if left:
            tally.bad("leftovers", f"{args}: {left}")
    assert (work / "notes.txt").read_text() == "mine"
