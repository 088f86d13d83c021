"""Train the bundled sample models from the builtin data sets, seeded: ``python sample_models/build.py``.

    python sample_models/build.py                 # both models (~5-10 min on 2 CPU cores)
    python sample_models/build.py --only digits   # digits_cnn.keras only (~20 s)

Writes ``<name>.keras`` (tf_keras format, trained with Adam, a cosine schedule, SparseCategoricalCrossentropy
and accuracy; saved uncompiled, so no optimizer state inflates the file: compile it before ``fit``/``evaluate``) and updates ``models.json`` beside this file. Each
saved model is loaded back and re-evaluated; the script fails if the reloaded test accuracy differs.
Results are bit-for-bit repeatable on the same machine and TensorFlow build (op determinism is on); other
CPUs may differ in the last digits.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYTHONHASHSEED", "0")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

from edgeopt.atomic import write_json  # noqa: E402
from edgeopt.data.loaders import load_dataset  # noqa: E402
from edgeopt.models.zoo import build  # noqa: E402

log = logging.getLogger("sample_models.build")
SEED = 0
MODELS_JSON = HERE / "models.json"


@dataclass(frozen=True)
class Spec:
    name: str
    dataset: str
    builder: str
    options: dict = field(default_factory=dict)
    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-3  # peak of a cosine decay to 0 over all steps
    augment: bool = False  # random 90° rotations and mirror images (only for rotation-invariant classes)

    @property
    def file(self) -> str:
        return f"{self.name}.keras"


SPECS = {
    "digits": Spec("digits_cnn", "digits", "small_cnn", epochs=40, batch_size=32),
    "shapes": Spec("shapes_mobilenetv2", "shapes", "mobilenet_v2_like", epochs=30, augment=True),
}


def seed_everything(seed: int) -> None:
    import tensorflow as tf
    import tf_keras as keras

    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)  # python, numpy and tf global seeds
    tf.config.experimental.enable_op_determinism()


def batches(x: np.ndarray, y: np.ndarray, batch_size: int, augment: bool, seed: int):
    """Endless shuffled batches, a new order each epoch; numpy-seeded so every run sees the same stream."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            xb = x[idx]
            if augment:
                turns = rng.integers(0, 4, len(idx))
                for k in (1, 2, 3):
                    xb[turns == k] = np.rot90(xb[turns == k], k, axes=(1, 2))
                mirror = rng.random(len(idx)) < 0.5
                xb[mirror] = xb[mirror][:, :, ::-1]
            yield xb, y[idx]


def save_keras(model, path: Path) -> None:
    """tf_keras insists on a ``.keras`` name, so write into a temp folder beside ``path``, then rename."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", dir=path.parent))
    try:
        model.save(tmp / path.name)
        os.replace(tmp / path.name, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(model.predict(x, batch_size=256, verbose=0), axis=1) == y))


def train(spec: Spec) -> dict:
    import tf_keras as keras

    seed_everything(SEED)
    ds = load_dataset(spec.dataset, seed=SEED)
    model = build(spec.builder, ds.input_shape, ds.num_classes, name=spec.name, **spec.options)
    steps = -(-len(ds.x_train) // spec.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(spec.lr, spec.epochs * steps)
    model.compile(keras.optimizers.Adam(schedule), keras.losses.SparseCategoricalCrossentropy(), ["accuracy"])
    log.info("%s: %s, %d params, %d epochs of %d steps", spec.name, ds, model.count_params(), spec.epochs, steps)
    start = time.perf_counter()
    history = model.fit(
        batches(ds.x_train, ds.y_train, spec.batch_size, spec.augment, SEED),
        steps_per_epoch=steps,
        epochs=spec.epochs,
        validation_data=(ds.x_val, ds.y_val),
        verbose=2,
    )
    train_s = time.perf_counter() - start
    test_accuracy = accuracy(model, ds.x_test, ds.y_test)
    # Saved uncompiled: a compiled save carries the optimizer (Adam's slots triple the file, and file sizes are
    # what this project compares; an unbuilt one makes load_model warn). edgeopt loads with compile=False.
    shipped = keras.models.clone_model(model)
    shipped.set_weights(model.get_weights())
    path = HERE / spec.file
    save_keras(shipped, path)
    reloaded = keras.models.load_model(path)
    reloaded_accuracy = accuracy(reloaded, ds.x_test, ds.y_test)
    if reloaded_accuracy != test_accuracy:
        raise RuntimeError(f"{path}: test accuracy {test_accuracy} in memory but {reloaded_accuracy} reloaded")
    log.info("%s: test accuracy %.4f (reloaded: same), %.0f s training", spec.name, test_accuracy, train_s)
    return {
        "name": spec.name,
        "dataset": spec.dataset,
        "file": spec.file,
        "builder": spec.builder,
        "options": spec.options,
        "input_shape": list(ds.input_shape),
        "num_classes": ds.num_classes,
        "params": int(model.count_params()),
        "size_bytes": path.stat().st_size,
        "test_accuracy": round(test_accuracy, 4),
        "val_accuracy": round(float(history.history["val_accuracy"][-1]), 4),
        "epochs": spec.epochs,
        "seed": SEED,
        "training": {k: v for k, v in asdict(spec).items() if k in ("batch_size", "lr", "augment")},
        "train_seconds": round(train_s, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SPECS), help="build one model; keep the other's entry")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    old = json.loads(MODELS_JSON.read_text())["models"] if MODELS_JSON.exists() else []
    entries = {e["name"]: e for e in old}
    for key in [args.only] if args.only else list(SPECS):
        entries[SPECS[key].name] = train(SPECS[key])
        order = [s.name for s in SPECS.values()]
        write_json(
            MODELS_JSON,
            {
                "models": sorted(
                    entries.values(), key=lambda e: order.index(e["name"]) if e["name"] in order else len(order)
                )
            },
        )
    log.info("wrote %s", MODELS_JSON)
    return 0


if __name__ == "__main__":
    sys.exit(main())
