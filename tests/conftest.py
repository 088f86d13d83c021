"""Shared, expensive fixtures (built once per session): a tiny trained digits model and its artifacts."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _session_cache() -> str:
    """The session's own cache root (stage cache, tuner state), never the user's ~/.cache/edgeopt — with the
    user's aarch64 sysroot linked in, read only, so the emulated tests still find it."""
    from edgeopt import cache

    real = cache.root()
    own = Path(tempfile.mkdtemp(prefix="edgeopt-tests-cache-"))
    if (real / "sysroot-aarch64").is_dir():
        (own / "sysroot-aarch64").symlink_to(real / "sysroot-aarch64")
    return str(own)


os.environ["EDGEOPT_CACHE"] = _session_cache()
# the CLI's log file (TensorFlow's chatter): the tests' own, never the user's ~/.cache/edgeopt/logs
os.environ.setdefault("EDGEOPT_LOG", os.path.join(tempfile.gettempdir(), f"edgeopt-tests-{os.getpid()}.log"))

REPO = Path(__file__).resolve().parent.parent
SAMPLE_MODELS = REPO / "sample_models"


@pytest.fixture(scope="session")
def digits():
    from edgeopt.data.loaders import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory, digits) -> Path:
    """A small Conv-BN-ReLU digits classifier, trained for a few seconds (well above chance)."""
    import tf_keras as keras

    keras.utils.set_random_seed(0)  # Python, NumPy and TF: the same model whichever test builds it first
    inp = keras.layers.Input(digits.input_shape)
    # named: tests pick layers by these names, whatever models the session built before this one
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv2d")(inp)
    x = keras.layers.BatchNormalization(name="batch_normalization")(x)
    x = keras.layers.ReLU(name="re_lu")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(digits.num_classes, name="dense")(x)
    out = keras.layers.Activation("softmax", name="softmax")(x)
    model = keras.Model(inp, out, name="tiny")
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(digits.x_train, digits.y_train, epochs=4, batch_size=64, verbose=0)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def compressed(tmp_path_factory, tiny_model_path, digits):
    """(out folder, manifest) of the default recipe on the tiny model."""
    from edgeopt.compress import compress

    out = tmp_path_factory.mktemp("compressed") / "out"
    return out, compress(tiny_model_path, digits, out)


@pytest.fixture(scope="session")
def quick_report(tmp_path_factory, compressed, digits):
    """A real benchmark of the tiny model's artifacts on x86-cpu with few runs."""
    from edgeopt.bench.orchestrate import benchmark
    from edgeopt.bench.targets import load_target

    out_dir, _ = compressed
    path = tmp_path_factory.mktemp("report") / "report.json"
    report = benchmark([out_dir], [load_target("x86-cpu")], digits, path, warmup=2, min_runs=30, min_seconds=0.05, launches=2,
                       max_seconds=2)
    return path, report
