"""The CLI on data a user brings: an image folder missing one of the model's classes, scaled to [-1, 1] and recorded
in the manifest so that bench scales the same way; too many classes, --num-classes, a class order that changed, and
``--data module:function`` — each a real subprocess with its real exit code."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.e2e.test_cli import error_line, run


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A 10-class 6x6 grayscale tf_keras model, a folder with 9 of its classes, one with 11, and a recipe."""
    import tf_keras as keras
    from PIL import Image

    root = tmp_path_factory.mktemp("data_sources")
    rng = np.random.default_rng(0)
    for n in (9, 11):
        for c in range(n):
            (root / f"f{n}" / f"c{c:02d}").mkdir(parents=True)
            for i in range(5):
                Image.fromarray(rng.integers(0, 256, (6, 6), dtype=np.uint8)).save(root / f"f{n}" / f"c{c:02d}" /
                                                                                    f"{i}.png")
    keras.utils.set_random_seed(0)
    inp = keras.layers.Input((6, 6, 1), name="pixels")
    out = keras.layers.Dense(10, activation="softmax", name="probs")(keras.layers.Flatten(name="flat")(inp))
    keras.Model(inp, out).save(root / "m10.keras")
    (root / "r.yaml").write_text("stages:\n  - convert: {tflite: [fp32], onnx: []}\n")
    return root


def test_missing_classes_scale_and_manifest_then_bench_scales_the_same(made, tmp_path):
    proc = run("compress", made / "m10.keras", "--data", made / "f9", "--scale", "-1-1", "--recipe", made / "r.yaml",
               "--out", tmp_path / "o")
    assert proc.returncode == 0, proc.stderr
    assert "10 classes (c00" in proc.stdout and "order: alphabetical by folder name" in proc.stdout
    data = json.loads((tmp_path / "o" / "manifest.json").read_text())["source"]["dataset"]
    assert data["scale"] == "-1-1" and data["num_classes"] == 10 and data["named_classes"] == 9
    assert data["class_names"][:9] == [f"c{c:02d}" for c in range(9)]
    assert data["class_order"] == "alphabetical by folder name" and data["kind"] == "image folder"

    proc = run("bench", tmp_path / "o", "--data", made / "f9", "--out", tmp_path / "r.json", "--launches", "1",
               "--min-runs", "2", "--max-seconds", "0.2", "--warmup", "0")
    assert proc.returncode == 0, proc.stderr
    env = json.loads((tmp_path / "r.json").read_text())["environment"]["dataset"]
    assert env["scale"] == "-1-1" and env["scale_from"] == "the compress output's manifest"
    assert env["num_classes"] == 10

    # the same folders under other names: class ids would move, so bench refuses
    (made / "f9" / "c00").rename(made / "f9" / "z00")
    try:
        proc = run("bench", tmp_path / "o", "--data", made / "f9", "--out", tmp_path / "r2.json", "--launches", "1")
    finally:
        (made / "f9" / "z00").rename(made / "f9" / "c00")
    assert proc.returncode == 2
    assert "gives class id 0 to 'c01' but compress gave it to 'c00'" in error_line(proc)


@pytest.mark.parametrize("extra, message", [
    (["--data", "f11"], "data set 'f11' has 11 classes (11 sub-folders) but the model's output has 10"),
    (["--data", "f9", "--num-classes", "12"], "--num-classes 12 but the model's output has 10 classes"),
    (["--data", "f9", "--num-classes", "5"], "has 9 classes (9 sub-folders) but --num-classes has 5"),
    (["--data", "digits", "--scale", "-1-1"], "--scale -1-1 applies to image folders only"),
    (["--data", "userdata_e2e:broken"], "--data userdata_e2e:broken raised KeyError: 'bucket'"),
    (["--data", "userdata_e2e_missing:load"], "no module 'userdata_e2e_missing'"),
])
def test_refusals_are_one_line_exit_2(made, tmp_path, extra, message):
    (tmp_path / "userdata_e2e.py").write_text("def broken():\n    return {}['bucket']\n")
    extra = [str(made / e) if e in ("f9", "f11") else e for e in extra]
    proc = run("compress", made / "m10.keras", *extra, "--recipe", made / "r.yaml", "--out", tmp_path / "o",
               cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in error_line(proc)
    assert not (tmp_path / "o").exists()


def test_module_function_data_compresses(made, tmp_path):
    (tmp_path / "mydata.py").write_text(
        "import numpy as np\n"
        "def load():\n"
        "    rng = np.random.default_rng(1)\n"
        "    return {'x_train': rng.random((40, 6, 6, 1)), 'y_train': np.arange(40) % 7,\n"
        "            'x_test': rng.random((12, 6, 6, 1)), 'y_test': np.arange(12) % 7}\n")
    proc = run("compress", made / "m10.keras", "--data", "mydata:load", "--recipe", made / "r.yaml", "--out",
               tmp_path / "o", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "o" / "manifest.json").read_text())["source"]
    assert data["data"] == "mydata:load" and data["dataset"]["kind"] == "module:function"
    assert data["dataset"]["num_classes"] == 10  # the model's width, not the 7 labels present
