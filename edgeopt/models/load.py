"""The one place that knows tf_keras (Keras 2) from Keras 3. Every model the engine trains is tf_keras."""

from __future__ import annotations

import json
import logging
import os
import zipfile
from pathlib import Path

from edgeopt.errors import UsageError
from edgeopt.models.safety import check_safe, unsafe_allowed
from edgeopt.models.saved_model import SavedModelAsKeras, is_keras_saved_model, load_saved_model

log = logging.getLogger(__name__)


def use_legacy_keras() -> None:
    """tfmot and our stages need tf.keras to mean tf_keras; set before TensorFlow is first imported, as is the
    C++ log level (errors only, unless the user set one: the CLI's -v does, see edgeopt/cli/logs.py)."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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


def load_model(path: str | Path, sample=None, signature: str | None = None):
    """Load a tf_keras model (.keras, .h5), a SavedModel, or a Keras 3 .keras (bridged into tf_keras).

    ``sample``: inputs to compare a bridged Keras 3 model with the original on (random inputs when None).
    ``signature``: which signature of a plain SavedModel to use (models/saved_model.py chooses otherwise).
    Errors name the file and the fix."""
    use_legacy_keras()
    p = check_model_path(path)
    check_safe(p)  # before Keras reads anything: a refused model never runs a line of its code
    import tf_keras

    unsafe = {"safe_mode": False} if unsafe_allowed() else {}
    if p.suffix.lower() == ".keras":
        version = keras_version_of(p)
        if version and version.startswith("3"):
            return load_keras3(p, sample)
    try:
        if p.is_dir():
            # tf_keras reads only its own SavedModels (keras_metadata.pb); a tf.Module export loads there as a
            # bare _UserObject and a TF1 one raises IndexError, so the others never reach it
            if is_keras_saved_model(p) and signature is None:
                try:
                    return tf_keras.models.load_model(p, compile=False)
                except (ValueError, OSError, KeyError, IndexError, AttributeError):
                    log.info("%s: not loadable as tf_keras; reading its signatures", p)
            return load_saved_model(p, signature)
        if _mentions_qat(p):
            return _load_qat(p)
        return tf_keras.models.load_model(p, compile=False, **(unsafe if p.suffix.lower() == ".keras" else {}))
    except UsageError:
        raise
    except Exception as e:  # noqa: BLE001 — any loader failure is a bad model file for the user
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"cannot load model {p}: {first[:200]}",
                         "check that the file is a complete tf_keras model") from None


def load_keras3(p: Path, sample=None):
    """Keras 3 ``.keras`` → bridged tf_keras model; when the bridge cannot, a wrapper that still converts (PTQ)."""
    try:
        import keras

        k3 = keras.saving.load_model(p, compile=False, safe_mode=not unsafe_allowed())
    except Exception as e:  # noqa: BLE001
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"cannot load Keras 3 model {p}: {first[:200]}",
                         "check the file with keras.saving.load_model") from None
    from edgeopt.models.keras3_bridge import UnsupportedLayer, bridge_verified

    try:
        model, _ = bridge_verified(k3, sample)
        return model
    except UnsupportedLayer as e:
        log.warning("Keras 3 model %s stays Keras 3 (%s): conversion works, training stages do not", p.name, e)
        return Keras3Model(k3, bridge_error=f"Keras 3 model {p.name} cannot be bridged into tf_keras: {e}")


# --- quantization-aware (tfmot) models -----------------------------------------------------------------------
# tfmot's QuantizeLayer.build is not idempotent and tf_keras's .keras loader builds each layer twice (once from
# build_config, once when the graph is wired), so a QAT model saved as .keras does not load back as is. The
# quantize stage hands over a model rebuilt from its own config (qat_roundtrip), whose variables match what a
# loader rebuilds; _load_qat rebuilds the same way and reads the weights.


def _strip_quantize_build(config: dict) -> dict:
    for layer in config.get("config", {}).get("layers", []):
        if layer.get("class_name") == "QuantizeLayer":
            layer.pop("build_config", None)
    return config


def qat_roundtrip(model):
    """The same QAT model, rebuilt from its config with the weights copied by name, so it saves and loads."""
    import tensorflow_model_optimization as tfmot
    import tf_keras

    with tfmot.quantization.keras.quantize_scope():
        clone = tf_keras.models.model_from_json(json.dumps(_strip_quantize_build(json.loads(model.to_json()))))

    def key(w) -> str:
        return w.name.split("/")[-1].split(":")[0]

    pairs = list(zip(model.layers, clone.layers, strict=True))
    if any(len(old.weights) != len(new.weights) for old, new in pairs):
        # cluster-preserving schemes keep training state their config does not describe: no rebuild possible
        log.info("QAT model '%s' keeps state its config does not describe; its .keras will not load back",
                 model.name)
        return model
    for old, new in pairs:
        src = {key(w): w for w in old.weights}
        dst = {key(w): w for w in new.weights}
        if len(src) == len(old.weights) and set(src) == set(dst):
            for k, w in dst.items():
                w.assign(src[k])
        else:  # names not unique in this layer: same construction, so same order
            new.set_weights(old.get_weights())
    return clone


def _mentions_qat(p: Path) -> bool:
    try:
        if p.suffix.lower() == ".keras":
            with zipfile.ZipFile(p) as z:
                return b"QuantizeWrapper" in z.read("config.json")
        import h5py

        with h5py.File(p, "r") as f:
            cfg = f.attrs.get("model_config")
        cfg = cfg.decode() if isinstance(cfg, bytes) else str(cfg or "")
        return "QuantizeWrapper" in cfg
    except (KeyError, OSError, zipfile.BadZipFile):
        return False


def _load_qat(p: Path):
    import tensorflow_model_optimization as tfmot
    import tf_keras

    with tfmot.quantization.keras.quantize_scope():
        if p.suffix.lower() != ".keras":
            return tf_keras.models.load_model(p, compile=False)
        with zipfile.ZipFile(p) as z:
            config = _strip_quantize_build(json.loads(z.read("config.json")))
        model = tf_keras.models.model_from_json(json.dumps(config))
        model.load_weights(p)
    return model


_SavedModelAsKeras = SavedModelAsKeras  # the name before models/saved_model.py


class Keras3Model:
    """A Keras 3 model the bridge could not translate: callable and convertible (PTQ), not trainable by tfmot."""

    def __init__(self, k3model, bridge_error: str) -> None:
        self.keras3 = k3model
        self.trackable = k3model
        self.name = k3model.name
        self.bridge_error = bridge_error
        self.input_shape = tuple(k3model.input_shape)
        self._export_dir = None

    def __call__(self, x, training: bool = False):
        return self.keras3(x, training=False)

    def saved_model_dir(self) -> str:
        """Keras 3's own SavedModel export, made once; the TFLite converter freezes its variables."""
        if self._export_dir is None:
            import tempfile

            self._export_dir = tempfile.TemporaryDirectory(prefix="edgeopt-keras3-")
            self.keras3.export(self._export_dir.name, format="tf_saved_model", verbose=False)
        return self._export_dir.name

    def count_params(self) -> int:
        return int(self.keras3.count_params())

    def get_weights(self):
        return self.keras3.get_weights()
