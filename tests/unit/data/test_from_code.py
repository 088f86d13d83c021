"""edgeopt.data.from_code: ``--data module:function`` — numpy dicts and tf.data.Datasets from the user's code, with
the same checks as files and one-line errors for a failing import or function."""

from __future__ import annotations

import sys
import textwrap
import uuid

import numpy as np
import pytest

from edgeopt.data.classes import describe
from edgeopt.data.loaders import load_dataset
from edgeopt.errors import UsageError


@pytest.fixture
def module(tmp_path, monkeypatch):
    """Write a module into a fresh current directory; returns its (unique) name."""
    name = f"userdata_{uuid.uuid4().hex[:8]}"
    monkeypatch.chdir(tmp_path)

    def write(body: str) -> str:
        (tmp_path / f"{name}.py").write_text("import numpy as np\n" + textwrap.dedent(body))
        return name

    yield write
    sys.modules.pop(name, None)


ARRAYS = """
def data(n=40, labels=None):
    rng = np.random.default_rng(0)
    y = np.arange(n) % 3
    return {"x_train": rng.random((n, 4)), "y_train": y, "x_test": rng.random((10, 4)),
            "y_test": np.arange(10) % 3 if labels is None else labels}
"""


def test_a_numpy_dict_loads_like_an_npz(module):
    name = module(ARRAYS + "def unlabelled():\n    d = data()\n    return {k: v for k, v in d.items() if k[0] == 'x'}\n")
    ds = load_dataset(f"{name}:data")
    assert ds.name == f"{name}:data" and ds.input_shape == (4,) and ds.num_classes == 3
    assert len(ds.x_train) + len(ds.x_val) == 40 and len(ds.x_test) == 10  # val carved from train, seeded
    assert ds.x_train.dtype == np.float32 and describe(ds)["kind"] == "module:function"
    plain = load_dataset(f"{name}:unlabelled")
    assert not plain.labelled and len(plain.x_test) == 10


def test_the_current_directory_is_on_the_path_only_for_the_import(module, tmp_path):
    name = module(ARRAYS)
    before = list(sys.path)
    load_dataset(f"{name}:data")
    assert sys.path == before


def test_tf_data_splits_are_read_batched_or_not(module):
    name = module("""
        import tensorflow as tf
        def data():
            rng = np.random.default_rng(0)
            x, y = rng.random((50, 4)).astype("float32"), np.arange(50) % 3
            return {"train": tf.data.Dataset.from_tensor_slices((x, y)).batch(8),
                    "test": tf.data.Dataset.from_tensor_slices((x[:12], y[:12]))}
        def endless():
            x = np.ones((7, 4), "float32")
            return tf.data.Dataset.from_tensor_slices((x, np.arange(7) % 2)).repeat()
        def inputs_only():
            x = np.ones((30, 4), "float32")
            return {"train": tf.data.Dataset.from_tensor_slices(x), "test": tf.data.Dataset.from_tensor_slices(x[:5])}
    """)
    ds = load_dataset(f"{name}:data")
    assert ds.input_shape == (4,) and len(ds.x_train) + len(ds.x_val) == 50 and len(ds.x_test) == 12
    np.testing.assert_array_equal(ds.y_test, np.arange(12) % 3)
    capped = load_dataset(f"{name}:endless", max_samples=100)
    assert len(capped.x_train) + len(capped.x_val) + len(capped.x_test) == 100
    assert describe(capped)["capped"] == {"all": 100}
    plain = load_dataset(f"{name}:inputs_only")
    assert not plain.labelled and len(plain.x_test) == 5


@pytest.mark.parametrize("body, call, match", [
    ("def f():\n    raise ValueError('no such bucket\\nsecond line')\n", "f",
     r"^--data \S+:f raised ValueError: no such bucket — "),
    ("raise RuntimeError('broken at import')\ndef f():\n    pass\n", "f", r"importing \S+ raised RuntimeError: broken"),
    ("import not_a_real_package_xyz\n", "f", r"importing \S+ failed \(ModuleNotFoundError: No module named"),
    ("def g():\n    pass\n", "f", r"has no function 'f' \(it has: g\)"),
    ("def f():\n    return [1, 2]\n", "f", r"returned a list — return a dict"),
    ("def f():\n    return {'x_train': np.ones((5, 2)), 'weights': 1}\n", "f", r"unknown key 'weights'"),
    (ARRAYS + "def f():\n    return data(labels=np.array([0, 1, 2, -3, 1, 1, 0, 0, 1, 1]))\n", "f",
     r"y_test holds negative label -3 in 1 rows"),
    (ARRAYS + "def f():\n    d = data()\n    d['x_test'][2, 1] = np.nan\n    return d\n", "f", r"x_test holds 1 NaN"),
    (ARRAYS + "def f():\n    d = data()\n    d['x_test'] = d['x_test'][:0]\n    d['y_test'] = d['y_test'][:0]\n"
     "    return d\n", "f", r"split is empty"),
    (ARRAYS + "def f():\n    d = data()\n    del d['y_test']\n    return d\n", "f", r"lacks y_test"),
    (ARRAYS + "def f():\n    d = data()\n    d['x_test'] = np.ones((10, 5))\n    return d\n", "f",
     r"splits differ in sample shape"),
])
def test_bad_code_data_is_one_line_exit_2(module, body, call, match):
    name = module(body)
    with pytest.raises(UsageError, match=match) as e:
        load_dataset(f"{name}:{call}")
    assert "\n" not in str(e.value) and "Traceback" not in str(e.value)


def test_a_missing_module_names_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=r"--data nosuchmod_q:load: no module 'nosuchmod_q' in .* installed packages"):
        load_dataset("nosuchmod_q:load")


def test_bad_labels_against_the_model_count(module):
    from edgeopt.data.classes import fit_to_model

    name = module(ARRAYS + "def f():\n    return data(labels=np.array([0, 1, 2, 9, 9, 1, 1, 0, 0, 1]))\n")
    with pytest.raises(UsageError, match=r"y_test holds label 9 in 2 rows.*has 5 classes"):
        fit_to_model(load_dataset(f"{name}:f"), 5)
