"""edgeopt.data.dataset: builtin sets, .npz and image-folder loaders, splits, representative samples."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgeopt.data.dataset import Dataset
from edgeopt.data.loaders import BUILTIN, load_dataset
from edgeopt.data.shapes import SHAPES_CLASSES, SHAPES_TEST, SHAPES_TRAIN, SHAPES_VAL, generate_shapes
from edgeopt.errors import UsageError

SPLITS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


@pytest.fixture(scope="module")
def shapes() -> Dataset:
    return load_dataset("shapes")


def _arrays(n: int = 60, classes: int = 3, shape=(4, 4, 1), seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.random((n, *shape)), np.arange(n) % classes


def _npz(tmp_path, name="d.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


# --- digits and splits ------------------------------------------------------------------------------------


def test_digits_is_converted_once_and_split_70_10_20():
    ds = load_dataset("digits")
    assert ds.input_shape == (8, 8, 1) and ds.num_classes == 10 and len(ds.class_names) == 10
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (1258, 180, 359)
    for split in ("train", "val", "test"):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        assert x.dtype == np.float32 and y.dtype == np.int64 and len(x) == len(y)
        assert 0.0 <= x.min() and x.max() <= 1.0
    # stratified: every class in every split, test shares within 2 samples of 20%
    counts = np.bincount(ds.y_test, minlength=10)
    total = counts + np.bincount(ds.y_train, minlength=10) + np.bincount(ds.y_val, minlength=10)
    assert np.all(np.abs(counts - 0.2 * total) <= 2)
    assert np.bincount(ds.y_val, minlength=10).min() >= 1


def test_same_seed_same_split_other_seed_other_split():
    a, b, c = load_dataset("digits", seed=3), load_dataset("digits", seed=3), load_dataset("digits", seed=4)
    for key in SPLITS:
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert not np.array_equal(a.y_train, c.y_train)
    assert len(a.x_train) + len(a.x_val) + len(a.x_test) == len(c.x_train) + len(c.x_val) + len(c.x_test) == 1797


def test_val_fraction_sizes_the_carved_split_and_is_checked():
    assert len(load_dataset("digits", val_fraction=0.2).x_val) == round(0.2 * 1797)
    for bad in (0.0, 0.9, -0.1):
        with pytest.raises(UsageError, match="val_fraction"):
            load_dataset("digits", val_fraction=bad)


# --- shapes -----------------------------------------------------------------------------------------------


def test_shapes_dtype_range_shape_and_balance(shapes):
    assert shapes.name == "shapes" and shapes.class_names == SHAPES_CLASSES and shapes.num_classes == 10
    assert (len(shapes.x_train), len(shapes.x_val), len(shapes.x_test)) == (SHAPES_TRAIN, SHAPES_VAL, SHAPES_TEST)
    assert shapes.input_shape == (32, 32, 3)
    for x in (shapes.x_train, shapes.x_val, shapes.x_test):
        assert x.dtype == np.float32 and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    for y, n in ((shapes.y_train, SHAPES_TRAIN), (shapes.y_test, SHAPES_TEST)):
        assert y.dtype == np.int64
        np.testing.assert_array_equal(np.bincount(y, minlength=10), np.full(10, n // 10))


def test_shapes_is_deterministic_and_seeded():
    a, b = generate_shapes(40, np.random.default_rng(7)), generate_shapes(40, np.random.default_rng(7))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], generate_shapes(40, np.random.default_rng(8))[0])


def test_shapes_loads_copies(shapes):
    again = load_dataset("shapes")
    np.testing.assert_array_equal(again.x_test, shapes.x_test)
    again.x_test[:] = 0  # a caller editing its arrays must not change the next caller's
    assert load_dataset("shapes").x_test.max() > 0


def test_shapes_is_not_trivial(shapes):
    x = shapes.x_train
    flat = x.reshape(len(x), -1)
    assert len(np.unique(flat, axis=0)) == len(x)  # no two images alike
    # noise: neighbouring pixels differ almost everywhere, also on flat backgrounds
    assert np.mean(np.abs(np.diff(x[:200], axis=2)) > 1e-4) > 0.9
    # colour statistics alone say little about the class (a model must look at the shape)
    from sklearn.linear_model import LogisticRegression

    def features(images):
        return np.concatenate([images.mean(axis=(1, 2)), images.std(axis=(1, 2))], axis=1)

    clf = LogisticRegression(max_iter=500).fit(features(x), shapes.y_train)
    assert clf.score(features(shapes.x_test), shapes.y_test) < 0.3


# --- .npz -------------------------------------------------------------------------------------------------


def test_npz_with_val_keys(tmp_path):
    x, y = _arrays()
    path = _npz(tmp_path, x_train=x, y_train=y, x_val=x[:6], y_val=y[:6], x_test=x[:9], y_test=y[:9])
    ds = load_dataset(path)
    assert ds.name == "d" and ds.input_shape == (4, 4, 1) and ds.num_classes == 3
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (60, 6, 9)
    np.testing.assert_array_equal(ds.x_val, x[:6].astype(np.float32))


def test_npz_without_val_carves_it_from_train_seeded(tmp_path):
    x, y = _arrays()
    path = _npz(tmp_path, x_train=x, y_train=y, x_test=x[:9], y_test=y[:9])
    ds, again = load_dataset(path, seed=1, val_fraction=0.2), load_dataset(str(path), seed=1, val_fraction=0.2)
    assert (len(ds.x_train), len(ds.x_val)) == (48, 12)
    np.testing.assert_array_equal(np.bincount(ds.y_val), [4, 4, 4])
    np.testing.assert_array_equal(ds.x_val, again.x_val)
    rows = {r.tobytes() for r in ds.x_train} | {r.tobytes() for r in ds.x_val}
    assert len(rows) == 60  # disjoint, nothing lost


def test_npz_one_hot_labels_become_ids(tmp_path):
    x, y = _arrays()
    onehot = np.eye(4)[y]  # a fourth class that never occurs still counts
    path = _npz(tmp_path, x_train=x, y_train=onehot, x_test=x[:9], y_test=onehot[:9])
    ds = load_dataset(path)
    assert ds.num_classes == 4 and ds.y_train.dtype == np.int64 and ds.y_train.ndim == 1
    np.testing.assert_array_equal(np.sort(np.concatenate([ds.y_train, ds.y_val])), np.sort(y))


def test_npz_missing_keys_names_them_and_the_expected_ones(tmp_path):
    x, y = _arrays()
    with pytest.raises(UsageError) as err:
        load_dataset(_npz(tmp_path, x_train=x, labels=y))
    assert "y_train" in err.value.problem and "x_test" in err.value.problem and "y_test" in err.value.problem
    assert "labels" in err.value.problem  # what it holds instead
    assert all(k in err.value.fix for k in ("x_train", "y_train", "x_test", "y_test", "x_val", "y_val"))


def test_npz_half_of_the_val_pair_is_an_error(tmp_path):
    x, y = _arrays()
    with pytest.raises(UsageError, match="y_val"):
        load_dataset(_npz(tmp_path, x_train=x, y_train=y, x_test=x, y_test=y, x_val=x))


def test_npz_nan_inf_and_length_mismatch(tmp_path):
    x, y = _arrays()
    bad = x.copy()
    bad[3, 0, 0, 0] = np.nan
    bad[4, 1, 1, 0] = np.inf
    with pytest.raises(UsageError, match="2 NaN or Inf"):
        load_dataset(_npz(tmp_path, "nan.npz", x_train=x, y_train=y, x_test=bad, y_test=y))
    with pytest.raises(UsageError, match="x_test has 60 samples but y_test has 59"):
        load_dataset(_npz(tmp_path, "len.npz", x_train=x, y_train=y, x_test=x, y_test=y[:-1]))
    frac = load_dataset(_npz(tmp_path, "frac.npz", x_train=x, y_train=y + 0.5, x_test=x, y_test=y))
    assert frac.label_kind == "values"  # regression targets: kept as given, refused only as class ids
    np.testing.assert_allclose(frac.for_task("regression").y_test, y.astype(np.float32))
    with pytest.raises(UsageError, match="non-integer"):
        frac.for_task("classification")


def test_unreadable_npz_and_other_files(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(UsageError, match="cannot read"):
        load_dataset(junk)
    other = tmp_path / "data.csv"
    other.write_text("1,2\n")
    with pytest.raises(UsageError, match="not a .npz"):
        load_dataset(other)


# --- names ------------------------------------------------------------------------------------------------


def test_unknown_name_suggests_the_nearest_builtin():
    with pytest.raises(UsageError) as err:
        load_dataset("digts")
    assert err.value.problem == "unknown data set 'digts' (did you mean 'digits'?)"
    assert all(word in err.value.fix for word in (*BUILTIN, ".npz", "image folder"))


def test_missing_path_says_so(tmp_path):
    with pytest.raises(UsageError, match="no file or folder"):
        load_dataset(tmp_path / "absent.npz")


# --- image folders ----------------------------------------------------------------------------------------


def _write_images(root, per_class=5, classes=("dog", "cat", "bird"), mode="RGB"):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            size = (12, 10) if i else (16, 20)  # sizes differ: all get resized to the first image's
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            pixels[..., 0] = 80 * c
            Image.fromarray(pixels).convert(mode).save(root / name / f"{i}.png")
    (root / "notes.txt").write_text("ignored")


def test_image_folder_loader(tmp_path):
    _write_images(tmp_path / "pets")
    ds = load_dataset(tmp_path / "pets", seed=2)
    assert ds.name == "pets" and ds.class_names == ("bird", "cat", "dog") and ds.num_classes == 3
    assert ds.input_shape == (20, 16, 3)  # the first image, bird/0.png, is 16 wide and 20 high
    assert len(ds.x_train) + len(ds.x_val) + len(ds.x_test) == 15 and len(ds.x_test) == 3 and len(ds.x_val) >= 1
    assert ds.x_train.dtype == np.float32 and 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    # the red channel encodes the folder: labels follow the sorted folder names
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        np.testing.assert_allclose(x[:, 0, 0, 0], [{"bird": 160, "cat": 80, "dog": 0}[ds.class_names[i]] / 255 for i in y],
                                   atol=0.02)  # fmt: skip
    again = load_dataset(tmp_path / "pets", seed=2)
    np.testing.assert_array_equal(ds.x_test, again.x_test)


def test_image_folder_greyscale_gets_one_channel(tmp_path):
    _write_images(tmp_path / "grey", mode="L")
    assert load_dataset(tmp_path / "grey").input_shape[-1] == 1


def test_empty_image_folders_are_usage_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="0 class sub-folders"):
        load_dataset(tmp_path / "empty")
    (tmp_path / "flat").mkdir()
    from PIL import Image

    Image.new("RGB", (4, 4)).save(tmp_path / "flat" / "a.png")
    with pytest.raises(UsageError, match="one sub-folder per class"):
        load_dataset(tmp_path / "flat")
    (tmp_path / "hollow" / "a").mkdir(parents=True)
    with pytest.raises(UsageError, match="0 images"):
        load_dataset(tmp_path / "hollow")


# --- Dataset ----------------------------------------------------------------------------------------------


def test_representative_is_seeded_stratified_and_bounded():
    ds = load_dataset("digits")
    a, b, c = ds.representative(100), ds.representative(100), ds.representative(100, seed=1)
    assert a.shape == (100, 8, 8, 1) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    index = {row.tobytes(): label for row, label in zip(ds.x_train, ds.y_train, strict=True)}
    counts = np.bincount([index[row.tobytes()] for row in a], minlength=10)
    assert counts.min() >= 8 and counts.max() <= 12
    assert len(ds.representative(10**6)) == len(ds.x_train)
    with pytest.raises(UsageError):
        ds.representative(0)


def test_from_arrays_checks_shapes_and_labels():
    x, y = _arrays(n=10)
    ds = Dataset.from_arrays("t", x, y, x, y, x, y, class_names=["a", "b", "c"])
    assert ds.class_names == ("a", "b", "c") and "Dataset('t'" in repr(ds)
    with pytest.raises(UsageError, match="sample shape"):
        Dataset.from_arrays("t", x, y, x[:, :2], y, x, y)
    with pytest.raises(UsageError, match="negative"):
        Dataset.from_arrays("t", x, y - 1, x, y, x, y)
    with pytest.raises(UsageError, match=r"labels go up to 2 but there are 1 classes \(from the class names\)"):
        Dataset.from_arrays("t", x, y, x, y, x, y, class_names=["a"])
    with pytest.raises(UsageError, match="1 class names for 3 classes"):
        Dataset.from_arrays("t", x, y, x, y, x, y, num_classes=3, class_names=["a"])
    with pytest.raises(UsageError, match="shape"):
        Dataset.from_arrays("t", np.zeros(10), y, x, y, x, y)


def test_import_does_not_pull_in_tensorflow():
    code = "import sys, edgeopt.data.dataset; print(sorted(m for m in ('tensorflow', 'tf_keras', 'keras') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_npz_without_y_keys_is_unlabelled_and_labelled_by_a_model(tmp_path):
    x, _ = _arrays()
    ds = load_dataset(_npz(tmp_path, x_train=x, x_test=x[:10]))
    assert not ds.labelled and len(ds.x_val) > 0 and len(ds.x_train) + len(ds.x_val) == len(x)
    assert "unlabelled" in repr(ds)

    def predict(batch):  # a stand-in model: class = brightest of three quarters
        return np.stack([batch[:, :2, :2].mean((1, 2, 3)), batch[:, 2:, :2].mean((1, 2, 3)),
                         batch[:, :2, 2:].mean((1, 2, 3))], axis=1)

    labelled = ds.labelled_by(predict)
    assert not labelled.labelled and labelled.num_classes == 3  # still says the labels are the model's own
    np.testing.assert_array_equal(labelled.y_test, predict(ds.x_test).argmax(1))
    assert ds.labelled_by(predict) is not ds and load_dataset("digits").labelled_by(predict).labelled


def test_npz_without_y_keys_still_needs_x_test(tmp_path):
    x, _ = _arrays()
    with pytest.raises(UsageError, match="lacks x_test.*without labels"):
        load_dataset(_npz(tmp_path, x_train=x))
