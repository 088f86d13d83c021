"""Models that would run Python on load are refused before Keras reads them: a Lambda layer whose body writes a
marker file proves the payload never ran (and, with --unsafe-load, that the same model does run it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeopt.errors import UsageError
from edgeopt.models.safety import CUSTOM_ENV, UNSAFE_ENV

REPO = Path(__file__).resolve().parents[3]


def _payload(marker: Path):
    # eval: the marker path is a constant of the lambda's code, which the model file then carries
    return eval(f"lambda x: (open({str(marker)!r}, 'a').write('ran\\n'), x)[1]")  # noqa: S307


def _tf_keras_lambda_model(marker: Path):
    import tf_keras

    inp = tf_keras.Input((4,))
    x = tf_keras.layers.Lambda(_payload(marker))(inp)
    return tf_keras.Model(inp, tf_keras.layers.Dense(3, activation="softmax")(x))


def _save(model, path: Path, marker: Path) -> Path:
    if path.suffix:
        model.save(path)
    else:
        model.save(path, save_format="tf")
    marker.unlink(missing_ok=True)  # building and saving ran the lambda; only a load may write it from here
    return path


@pytest.fixture(autouse=True)
def _safe_env(monkeypatch):
    monkeypatch.delenv(UNSAFE_ENV, raising=False)
    monkeypatch.delenv(CUSTOM_ENV, raising=False)


@pytest.mark.parametrize("name", ["m.h5", "m.keras", "saved"])
def test_lambda_is_refused_before_it_runs(tmp_path, monkeypatch, name):
    from edgeopt.models.load import load_model

    marker = tmp_path / "marker"
    path = _save(_tf_keras_lambda_model(marker), tmp_path / name, marker)
    with pytest.raises(UsageError, match="Lambda layer.*--unsafe-load") as e:
        load_model(path)
    assert "\n" not in str(e.value)
    assert not marker.exists(), "the Lambda body ran during a refused load"
    monkeypatch.setenv(UNSAFE_ENV, "1")  # the opt-in loads it, and then the payload does run: the marker works
    load_model(path)
    if name != "saved":  # a SavedModel revives the traced graph, not the Python body
        assert marker.exists()


def test_keras3_lambda_is_refused_naming_edgeopts_flag(tmp_path):
    import keras

    from edgeopt.models.load import load_model

    marker = tmp_path / "marker"
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Lambda(_payload(marker))(inp)))
    path = _save(model, tmp_path / "k3.keras", marker)
    with pytest.raises(UsageError, match="--unsafe-load") as e:
        load_model(path)
    assert "safe_mode" not in str(e.value)
    assert not marker.exists()


def test_registered_custom_class_needs_custom_objects(tmp_path, monkeypatch):
    import tf_keras

    from edgeopt.models.load import load_model

    pkg = tmp_path / "mylayers_pkg"
    pkg.mkdir()
    marker = tmp_path / "imported"
    (pkg / "__init__.py").write_text(
        f"open({str(marker)!r}, 'a').write('imported\\n')\n"
        "import tf_keras\n"
        "@tf_keras.saving.register_keras_serializable(package='Mine')\n"
        "class Twice(tf_keras.layers.Layer):\n"
        "    def call(self, x):\n"
        "        return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import mylayers_pkg

    model = tf_keras.Sequential([tf_keras.Input((4,)), mylayers_pkg.Twice(), tf_keras.layers.Dense(2)])
    path = tmp_path / "custom.keras"
    model.save(path)
    tf_keras.saving.get_custom_objects().pop("Mine>Twice")  # as in a fresh process: not registered yet
    with pytest.raises(UsageError, match="Mine>Twice.*--custom-objects module.path"):
        load_model(path)
    monkeypatch.setenv(CUSTOM_ENV, "mylayers_pkg")
    sys.modules.pop("mylayers_pkg")
    assert load_model(path).count_params() == model.count_params()
    monkeypatch.setenv(CUSTOM_ENV, "no_such_module_here")
    with pytest.raises(UsageError, match="cannot import"):
        load_model(path)


def test_plain_models_still_load(tiny_model_path):
    from edgeopt.models.load import load_model

    assert load_model(tiny_model_path).count_params() > 0


def test_cli_and_bench_worker_refuse_a_lambda(tmp_path, digits):
    """The CLI (exit 2, one line) and a bench worker (a `failed` result) never run the payload."""
    import tf_keras

    marker = tmp_path / "marker"
    inp = tf_keras.Input(digits.input_shape)
    x = tf_keras.layers.Lambda(_payload(marker))(inp)
    model = tf_keras.Model(inp, tf_keras.layers.Dense(digits.num_classes, activation="softmax")(
        tf_keras.layers.Flatten()(x)))
    path = _save(model, tmp_path / "evil.h5", marker)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(UNSAFE_ENV, None)
    cli = [sys.executable, "-m", "edgeopt.cli"]
    done = subprocess.run([*cli, "compress", str(path), "--data", "digits", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "--unsafe-load" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
    done = subprocess.run([*cli, "bench", str(path), "--target", "x86-cpu", "--data", "digits", "--max-runs", "3",
                           "--out", str(tmp_path / "r.json")], capture_output=True, text=True, env=env, timeout=300)
    assert "Traceback" not in done.stderr
    assert not marker.exists(), "the Lambda body ran in the bench worker"
    from edgeopt.core.report import load_report

    results = load_report(tmp_path / "r.json").results
    assert [r.status for r in results] == ["failed"] and "--unsafe-load" in results[0].error
