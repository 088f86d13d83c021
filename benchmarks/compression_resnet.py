"""The small residual net benchmarks/compression.py builds and trains itself (a model nobody tuned edgeopt on):
a ResNet-style classifier for the generated shapes data — a 3×3 stride-2 stem, three stages of two basic
residual blocks (two 3×3 Conv → BN, identity or strided 1×1-projection shortcut, Add, ReLU), global average
pooling and a softmax classifier. Trained the way sample_models/build.py trains the bundled teachers (Adam on a cosine decay,
random 90° turns and mirror images of each batch, seeded, op determinism), and kept in the edgeopt cache folder
under a name that hashes its settings, so a rerun of the benchmark reuses it.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

SPEC = {"widths": [16, 32, 64], "blocks": [2, 2, 2], "stem_stride": 2, "epochs": 30, "batch_size": 64, "lr": 3e-3, "seed": 0, "data": "shapes"}


def build(input_shape, num_classes: int, widths=(16, 32, 64), blocks=(2, 2, 2), stem_stride: int = 2):
    import tf_keras as keras

    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name="input")
    x = layers.Conv2D(widths[0], 3, strides=stem_stride, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for i, (w, n) in enumerate(zip(widths, blocks, strict=True)):
        for j in range(n):
            stride, p = (2 if i and not j else 1), f"s{i}b{j}"
            shortcut = x
            y = layers.Conv2D(w, 3, strides=stride, padding="same", use_bias=False, name=f"{p}_conv1")(x)
            y = layers.BatchNormalization(name=f"{p}_bn1")(y)
            y = layers.ReLU(name=f"{p}_relu1")(y)
            y = layers.Conv2D(w, 3, padding="same", use_bias=False, name=f"{p}_conv2")(y)
            y = layers.BatchNormalization(name=f"{p}_bn2")(y)
            if stride != 1 or int(shortcut.shape[-1]) != w:
                shortcut = layers.Conv2D(w, 1, strides=stride, use_bias=False, name=f"{p}_proj")(shortcut)
                shortcut = layers.BatchNormalization(name=f"{p}_proj_bn")(shortcut)
            x = layers.Add(name=f"{p}_add")([y, shortcut])
            x = layers.ReLU(name=f"{p}_relu2")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="resnet_small")


def trained(cache_dir: Path) -> tuple[Path, dict]:
    """(path of the trained .keras, its facts); trained now unless a model of the same SPEC is cached."""
    key = hashlib.sha256(json.dumps(SPEC, sort_keys=True).encode()).hexdigest()[:12]
    path = cache_dir / f"resnet_small_{key}.keras"
    facts_path = path.with_suffix(".json")
    if path.exists() and facts_path.exists():
        return path, {**json.loads(facts_path.read_text()), "reused": True}
    import tf_keras as keras

    from edgeopt import atomic
    from edgeopt.data.loaders import load_dataset
    from sample_models.build import accuracy, batches, save_keras, seed_everything

    seed_everything(SPEC["seed"])
    ds = load_dataset(SPEC["data"], seed=SPEC["seed"])
    model = build(ds.input_shape, ds.num_classes, SPEC["widths"], SPEC["blocks"], SPEC["stem_stride"])
    steps = -(-len(ds.x_train) // SPEC["batch_size"])
    schedule = keras.optimizers.schedules.CosineDecay(SPEC["lr"], SPEC["epochs"] * steps)
    model.compile(keras.optimizers.Adam(schedule), keras.losses.SparseCategoricalCrossentropy(), ["accuracy"])
    start = time.perf_counter()
    model.fit(batches(ds.x_train, ds.y_train, SPEC["batch_size"], True, SPEC["seed"]), steps_per_epoch=steps,
              epochs=SPEC["epochs"], verbose=0)
    seconds = time.perf_counter() - start
    shipped = keras.models.clone_model(model)  # saved uncompiled, as the bundled teachers are
    shipped.set_weights(model.get_weights())
    cache_dir.mkdir(parents=True, exist_ok=True)
    save_keras(shipped, path)
    facts = {"spec": SPEC, "params": int(model.count_params()), "train_seconds": round(seconds, 1),
             "val_accuracy": round(accuracy(model, ds.x_val, ds.y_val), 4)}
    atomic.write_text(facts_path, json.dumps(facts, indent=2) + "\n")
    return path, {**facts, "reused": False}
