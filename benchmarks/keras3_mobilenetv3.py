"""The Keras 3 acceptance case (moved out of compression.py, whose table is now the goals of issue 13): a Keras 3
``keras.applications.MobileNetV3Small`` (weights=None: nothing can be downloaded here) saved as .keras, bridged
into tf_keras, pruned 0.5 and converted to fp32 and int8 TFLite through ``edgeopt.compress``. It checks the
path (bridge fidelity, sparsity reached, int8 agreement with the pruned float model), not accuracy: the network
is random-initialised and sees 512 training rows. ~1-2 min on 2 cores.

    python benchmarks/keras3_mobilenetv3.py        # writes benchmarks/results/keras3_mobilenetv3.{json,md}
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from _common import write_results  # noqa: E402


def run(work: Path) -> dict:
    import keras
    import numpy as np

    from edgeopt import compress
    from edgeopt.core.artifact import gzip_bytes
    from edgeopt.data.dataset import Dataset
    from edgeopt.data.loaders import load_dataset
    from edgeopt.models.load import load_model
    from edgeopt.recipe import Recipe

    t0 = time.time()
    shapes = load_dataset("shapes")
    n = 512  # random-init network: this checks the path, not accuracy
    data = Dataset.from_arrays("shapes-512", shapes.x_train[:n] * 255, shapes.y_train[:n], shapes.x_val[:128] * 255,
                               shapes.y_val[:128], shapes.x_test[:256] * 255, shapes.y_test[:256], num_classes=10)
    k3 = keras.applications.MobileNetV3Small(weights=None, input_shape=(32, 32, 3), classes=10)
    path = work / "mobilenetv3small_keras3.keras"
    k3.save(path)
    bridged = load_model(path, sample=data.x_val[:32])
    diff = float(np.max(np.abs(np.asarray(k3(data.x_test[:64])) - np.asarray(bridged(data.x_test[:64])))))
    rec = Recipe.from_dict({"train": {"epochs": 1, "batch_size": 64},
                            "stages": [{"prune": {"target_sparsity": 0.5}},
                                       {"convert": {"tflite": ["fp32", "int8"], "onnx": [], "calibration_samples": 64}}]})
    m = compress(path, data, work / "mnv3", rec)
    arts = {a.precision: a for a in m.artifacts if a.format == "tflite"}
    gz = {p: gzip_bytes(work / "mnv3" / a.path) for p, a in arts.items()}
    return {"model": "keras.applications.MobileNetV3Small(weights=None, input_shape=(32,32,3), classes=10)",
            "keras_version": keras.__version__, "bridge_max_abs_diff": diff, "params": int(k3.count_params()),
            "achieved_sparsity": m.extra["pruning"]["achieved_sparsity"],
            "pruned_layers": len(m.extra["pruning"]["pruned_layers"]), "fp32_gzip_bytes": gz["fp32"],
            "int8_gzip_bytes": gz["int8"], "int8_agreement_with_pruned": arts["int8"].info["parity"]["agreement"],
            "seconds": round(time.time() - t0, 1)}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        res = run(Path(tmp))
    md = "# Keras 3 input: MobileNetV3Small through prune 0.5 + int8\n\n```\n" + json.dumps(res, indent=2) + "\n```\n"
    write_results("keras3_mobilenetv3", res, md)
    print(md)


if __name__ == "__main__":
    main()
