"""The one place that knows tf_keras (Keras 2) from Keras 3. Every model the engine trains is tf_keras."""

from __future__ import annotations

import json
import logging
import os
import zipfile
from pathlib import Path

from edgeopt.errors import UsageError

log = logging.getLogger(__name__)


def use_legacy_keras() -> None:
    """tfmot and our stages need tf.keras to mean tf_keras; set before TensorFlow is first imported."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def keras_version_of(path: Path) -> str | None:
    """Keras version recorded in a .keras archive (``metadata.json``), or None when not recorded."""
    try:
        with zipfile.ZipFile(path) as z:
            meta = json.loads(z.read("metadata.json"))
        return str(meta.get("keras_version"))
    except (KeyError, zipfile.BadZipFile, json.JSONDecodeError):
        return None


def check_model_path(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise UsageError(f"model {p} does not exist", "pass a tf_keras .keras/.h5 file or a SavedModel folder")
    if p.is_dir():
        if not (p / "saved_model.pb").exists():
            raise UsageError(f"{p} is a folder without saved_model.pb", "pass a SavedModel folder or a .keras/.h5 file")
        return p
    if p.suffix.lower() not in (".keras", ".h5", ".hdf5"):
        raise UsageError(f"model {p} has suffix {p.suffix!r}", "pass a tf_keras .keras/.h5 file or a SavedModel folder")
    if p.suffix.lower() == ".keras" and not zipfile.is_zipfile(p):
        raise UsageError(f"model {p} is not a valid .keras archive (corrupt or truncated)",
                         "re-save the model with model.save('model.keras')")
    return p


def load_model(path: str | Path):
    """Load a tf_keras model (.keras, .h5) or a SavedModel; errors name the file and the fix."""
    use_legacy_keras()
    p = check_model_path(path)
    import tf_keras

    if p.suffix.lower() == ".keras":
        version = keras_version_of(p)
        if version and version.startswith("3"):
            raise UsageError(f"model {p} was saved by Keras {version}, not tf_keras",
                             "re-save it with tf_keras (import tf_keras as keras), or bridge it with Keras 3 support")
    try:
        if p.is_dir():
            try:
                return tf_keras.models.load_model(p, compile=False)
            except (ValueError, OSError, KeyError):
                import tensorflow as tf

                return _SavedModelAsKeras(tf.saved_model.load(str(p)))
        return tf_keras.models.load_model(p, compile=False)
    except UsageError:
        raise
    except Exception as e:  # noqa: BLE001 — any loader failure is a bad model file for the user
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"cannot load model {p}: {first[:200]}", "check that the file is a complete tf_keras model") from None


class _SavedModelAsKeras:
    """A plain TF SavedModel (not Keras) wrapped as a one-input, one-output callable model."""

    def __init__(self, loaded) -> None:
        self._loaded = loaded
        sig = loaded.signatures.get("serving_default")
        if sig is None:
            raise UsageError("SavedModel has no serving_default signature", "export it with a serving signature")
        self._sig = sig
        specs = list(sig.structured_input_signature[1].values())
        if len(specs) != 1:
            raise UsageError(f"SavedModel takes {len(specs)} inputs", "edgeopt handles one-input classifiers")
        self._in_name = list(sig.structured_input_signature[1].keys())[0]
        self.input_shape = tuple(specs[0].shape.as_list())
        self.saved_model = loaded

    def __call__(self, x, training: bool = False):
        out = self._sig(**{self._in_name: x})
        return next(iter(out.values()))

    def count_params(self) -> int:
        return int(sum(v.shape.num_elements() for v in self._loaded.variables if v.trainable))

    def get_weights(self):
        return [v.numpy() for v in self._loaded.variables]
