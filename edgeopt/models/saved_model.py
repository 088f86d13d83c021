"""Plain TensorFlow SavedModels (``tf.saved_model.save`` of a ``tf.Module``, Keras 3 ``model.export``, TF1
``SavedModelBuilder``): one signature, chosen, wrapped as a callable one-input model the stages convert (PTQ).

The serving signature is ``serving_default`` when there is one, else the only signature; ``signature`` picks
another. ``describe`` says what was found (signatures, inputs, outputs, dtypes) for the manifest and the table."""

from __future__ import annotations

import logging
from pathlib import Path

from edgeopt.errors import UsageError

log = logging.getLogger(__name__)

SERVING = "serving_default"


def is_keras_saved_model(path: Path) -> bool:
    """tf_keras writes keras_metadata.pb beside saved_model.pb; every other exporter does not."""
    return (path / "keras_metadata.pb").is_file()


def load_saved_model(path: Path, signature: str | None = None) -> SavedModelAsKeras:
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as e:  # noqa: BLE001 — any loader failure is a bad model folder for the user
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise UsageError(f"cannot load SavedModel {path}: {first}",
                         "check the folder with `saved_model_cli show --dir FOLDER --all`") from None
    return SavedModelAsKeras(loaded, path=path, signature=signature)


def _spec(name: str, spec) -> dict:
    shape = spec.shape.as_list() if spec.shape.rank is not None else None
    return {"name": name, "dtype": spec.dtype.name, "shape": shape}


class SavedModelAsKeras:
    """A plain TF SavedModel (not Keras), one signature of it, as a one-input callable model."""

    def __init__(self, loaded, path: Path | None = None, signature: str | None = None) -> None:
        self._loaded = loaded
        self.path = path
        self.trackable = loaded  # what the TFLite converter must keep alive
        self.saved_model = loaded
        self.name = "saved_model"
        self.bridge_error = "it is a plain TensorFlow SavedModel, not a Keras model"
        names = sorted(loaded.signatures.keys())
        if signature is None:
            if not names:
                raise UsageError(f"SavedModel {path} has no signatures",
                                 "export it with tf.saved_model.save(obj, dir, signatures={'serving_default': fn})")
            signature = SERVING if SERVING in names else names[0] if len(names) == 1 else None
            if signature is None:
                raise UsageError(f"SavedModel {path} has no {SERVING} signature but several: {', '.join(names)}",
                                 "pick one with --signature NAME")
        elif signature not in names:
            raise UsageError(f"SavedModel {path} has no signature '{signature}' (it has: {', '.join(names) or 'none'})",
                             "pass one of those to --signature")
        self.signature = signature
        self.signature_keys = [signature]
        self._sig = loaded.signatures[signature]
        inputs = self._sig.structured_input_signature[1]
        if len(inputs) != 1:
            raise UsageError(f"signature '{signature}' of {path} takes {len(inputs)} inputs ({', '.join(inputs)})",
                             "edgeopt converts one-input models: export a signature with one input tensor")
        (self._in_name, in_spec), = inputs.items()
        outputs = self._sig.structured_outputs
        self._out_names = sorted(outputs)
        self._out_name = self._out_names[0]  # several outputs: the first by name, said in describe()
        if len(self._out_names) > 1:
            log.warning("signature '%s' has outputs %s: edgeopt scores '%s'", signature, self._out_names,
                        self._out_name)
        self.input_shape = tuple(in_spec.shape.as_list())
        self.input_dtype = in_spec.dtype.name
        self._described = {"kind": "saved_model", "signature": signature, "signatures": names,
                           "inputs": [_spec(self._in_name, in_spec)],
                           "outputs": [_spec(n, outputs[n]) for n in self._out_names], "scored_output": self._out_name}

    def __call__(self, x, training: bool = False):
        import tensorflow as tf

        x = tf.cast(x, self.input_dtype) if self.input_dtype != "float32" else x
        return self._sig(**{self._in_name: x})[self._out_name]

    def describe(self) -> dict:
        return dict(self._described)

    def saved_model_dir(self) -> str:
        """Where the TFLite converter reads it from (variables frozen by the converter, not by us)."""
        return str(self.path)

    def count_params(self) -> int:
        return int(sum(v.shape.num_elements() for v in getattr(self._loaded, "variables", []) if v.trainable))

    def get_weights(self):
        return [v.numpy() for v in getattr(self._loaded, "variables", [])]


def describe(model) -> dict:
    """What the loader found: kind, inputs and outputs (name, dtype, shape), and the signature for SavedModels."""
    if hasattr(model, "describe"):
        return model.describe()
    kind = "keras3" if hasattr(model, "keras3") else "tf_keras"
    target = getattr(model, "keras3", model)

    def tensors(ts) -> list[dict]:
        return [{"name": str(getattr(t, "name", i)).split(":")[0], "dtype": str(getattr(t.dtype, "name", t.dtype)),
                 "shape": [None if d is None else int(d) for d in t.shape]} for i, t in enumerate(ts or [])]

    found = {"kind": kind, "inputs": tensors(getattr(target, "inputs", None)),
             "outputs": tensors(getattr(target, "outputs", None))}
    for key in ("input_names", "output_names"):  # what several inputs and outputs are fed and read by
        names = getattr(target, key, None)
        if names and len(names) > 1:
            found[key] = [str(n) for n in names]
    return found
