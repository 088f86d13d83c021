"""edgeopt.data.classes and the image-folder options: class count from --num-classes or the model (never the labels
present), class order (alphabetical, classes.txt, the model's names), pixel scaling, the recorded description."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.data.classes import describe, fit_to_model, one_line, with_num_classes
from edgeopt.data.loaders import load_dataset
from edgeopt.errors import UsageError


def _folder(root, classes, per_class=5, size=(6, 6), seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, size, dtype=np.uint8)
            pixels[0, 0], pixels[0, 1] = 0, 255  # every image spans the whole 0..255 range
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_a_folder_missing_classes_takes_the_model_count(tmp_path):
    ds = load_dataset(_folder(tmp_path / "f", [f"c{i}" for i in range(9)]))
    assert ds.num_classes == 9 and ds.info["class_order"] == "alphabetical by folder name"
    fitted = fit_to_model(ds, 10)
    assert fitted.num_classes == 10 and fitted.class_names[:9] == ds.class_names and fitted.class_names[9] == "9"
    np.testing.assert_array_equal(fitted.y_test, ds.y_test)
    d = describe(fitted)
    assert d["num_classes"] == 10 and d["class_names"][0] == "c0" and d["named_classes"] == 9
    assert "alphabetical" in one_line(d)


def test_a_folder_with_more_classes_than_the_model_is_refused_naming_both(tmp_path):
    ds = load_dataset(_folder(tmp_path / "f", [f"c{i:02d}" for i in range(11)]))
    with pytest.raises(UsageError, match=r"11 classes \(11 sub-folders\).* has 10"):
        fit_to_model(ds, 10)


def test_num_classes_overrides_and_is_checked(tmp_path):
    np.savez(tmp_path / "d.npz", x_train=np.zeros((30, 3)), y_train=np.arange(30) % 4, x_test=np.zeros((8, 3)),
             y_test=np.array([0, 1, 2, 7, 7, 7, 1, 0]))
    with pytest.raises(UsageError, match=r"y_test holds label 7 in 3 rows.*--num-classes has 5"):
        load_dataset(tmp_path / "d.npz", num_classes=5)
    ds = load_dataset(tmp_path / "d.npz", num_classes=12)
    assert ds.num_classes == 12 and len(ds.class_names) == 12
    assert fit_to_model(ds, 12).num_classes == 12
    with pytest.raises(UsageError, match=r"--num-classes 12 but the model's output has 10 classes"):
        fit_to_model(ds, 10)
    with pytest.raises(UsageError, match="--num-classes 0"):
        with_num_classes(ds, 0)
    folder = load_dataset(_folder(tmp_path / "f", ["a", "b", "c"]), num_classes=10)
    assert folder.num_classes == 10 and folder.class_names[:3] == ("a", "b", "c")
    with pytest.raises(UsageError, match=r"3 classes \(3 sub-folders\) but --num-classes has 2"):
        load_dataset(tmp_path / "f", num_classes=2)


def test_labels_alone_never_set_the_count(tmp_path):
    """An .npz whose labels reach 6 of a 10-class model: scored as 10 classes, not refused."""
    np.savez(tmp_path / "d.npz", x_train=np.zeros((30, 3)), y_train=np.arange(30) % 7, x_test=np.zeros((7, 3)),
             y_test=np.arange(7))
    ds = fit_to_model(load_dataset(tmp_path / "d.npz"), 10)
    assert ds.num_classes == 10 and ds.info["num_classes_from"] == "the model's output"
    with pytest.raises(UsageError, match="label 6"):
        fit_to_model(load_dataset(tmp_path / "d.npz"), 4)


def test_classes_txt_sets_the_order_and_may_list_missing_classes(tmp_path):
    root = _folder(tmp_path / "f", ["cat", "ant"])
    (root / "classes.txt").write_text("dog\ncat\n\nant\n")
    ds = load_dataset(root)
    assert ds.class_names == ("dog", "cat", "ant") and ds.info["class_order"] == "classes.txt"
    assert set(np.unique(ds.y_train)) == {1, 2}  # nothing is a dog
    (root / "classes.txt").write_text("cat\n")
    with pytest.raises(UsageError, match=r"folder '.*ant' is not listed in"):
        load_dataset(root)
    (root / "classes.txt").write_text("cat\nant\ncat\n")
    with pytest.raises(UsageError, match="lists 'cat' twice"):
        load_dataset(root)


def test_the_model_class_names_reorder_the_labels(tmp_path):
    ds = load_dataset(_folder(tmp_path / "f", ["ant", "cat"]))
    fitted = fit_to_model(ds, 3, model_names=["cat", "dog", "ant"])
    assert fitted.class_names == ("cat", "dog", "ant") and fitted.info["class_order"] == "the model's class names"
    np.testing.assert_array_equal(fitted.y_test, np.where(ds.y_test == 0, 2, 0))
    with pytest.raises(UsageError, match="'ant', which is not one of the model's 2 class names"):
        fit_to_model(ds, 2, model_names=["cat", "dog"])


@pytest.mark.parametrize("scale, low, high", [("0-1", 0.0, 1.0), ("-1-1", -1.0, 1.0), ("none", 0.0, 255.0)])
def test_scale_maps_pixels_and_is_recorded(tmp_path, scale, low, high):
    ds = load_dataset(_folder(tmp_path / "f", ["a", "b"]), scale=scale)
    x = np.concatenate([ds.x_train, ds.x_val, ds.x_test])
    assert float(x.min()) == pytest.approx(low) and float(x.max()) == pytest.approx(high)
    assert describe(ds)["scale"] == scale


def test_scale_default_is_unchanged_and_only_for_image_folders(tmp_path):
    assert load_dataset(_folder(tmp_path / "f", ["a", "b"])).info["scale"] == "0-1"
    np.savez(tmp_path / "d.npz", x_train=np.zeros((10, 3)), y_train=np.arange(10) % 2, x_test=np.zeros((4, 3)),
             y_test=np.arange(4) % 2)
    for spec in (tmp_path / "d.npz", "digits"):
        with pytest.raises(UsageError, match="applies to image folders only.*taken as they are"):
            load_dataset(spec, scale="-1-1")
    with pytest.raises(UsageError, match=r"--scale '0-255'.*0-1, -1-1, none"):
        load_dataset(tmp_path / "f", scale="0-255")


def test_readme_documents_class_order_scale_and_code_data():
    from pathlib import Path

    from edgeopt.data.from_code import MAX_SAMPLES
    from edgeopt.data.loaders import CLASSES_FILE, DEFAULT_SCALE, SCALES

    readme = " ".join((Path(__file__).resolve().parents[3] / "README.md").read_text().split())
    assert "alphabetical order" in readme and f"`{CLASSES_FILE}`" in readme
    assert all(f"--scale {s}" in readme for s in SCALES if s != DEFAULT_SCALE) and "scaled to [0, 1] by default" in readme
    assert "`--scale` applies to image folders only" in readme and "`--num-classes N`" in readme
    assert f"{MAX_SAMPLES:,} samples per split" in readme and "`--data mydata:load`" in readme


def test_model_class_names_are_read_from_the_model_or_its_saved_object():
    from types import SimpleNamespace

    from edgeopt.data.classes import model_class_names, output_width

    class Constant:  # what a tf.constant of strings on a tf.Module gives back
        def numpy(self):
            return np.array([b"cat", b"dog"])

    assert model_class_names(SimpleNamespace(class_names=["a", "b"])) == ["a", "b"]
    assert model_class_names(SimpleNamespace(_loaded=SimpleNamespace(class_names=Constant()))) == ["cat", "dog"]
    assert model_class_names(SimpleNamespace()) is None
    assert output_width(np.zeros((2, 7))) == 7 and output_width(np.zeros((2, 3, 3))) is None
    assert output_width([np.zeros((2, 7))]) is None


def test_num_classes_is_checked_against_the_model_without_labels_too(tmp_path):
    np.savez(tmp_path / "u.npz", x_train=np.zeros((20, 3)), x_test=np.zeros((5, 3)))
    ds = load_dataset(tmp_path / "u.npz", num_classes=5)
    assert not ds.labelled
    with pytest.raises(UsageError, match="--num-classes 5 but the model's output has 10"):
        fit_to_model(ds, 10)
    assert fit_to_model(ds, 5) is ds
