"""TFLite conversion: fp32, fp16, dynamic-range, int8 (full-integer, accuracy-aware through int8_search) and
int16x8 flatbuffers from a tf_keras model — or from the wrappers models.load returns for plain SavedModels and
Keras 3 models the bridge could not translate (PTQ only)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from edgeopt.core.inputs import Inputs
from edgeopt.errors import UsageError
from edgeopt.stages.convert import int8_search

if TYPE_CHECKING:
    from edgeopt.stages.convert import ConvertConfig

log = logging.getLogger(__name__)


RECURRENT = ("LSTM", "GRU", "SimpleRNN")


def check_calibration(samples, dtype="float32"):
    """Finite, non-empty samples in the model's input dtype (token ids stay integers for an int input). Several
    inputs (core.inputs.Inputs): each checked, in ``dtype``'s order (name → dtype, the model's input order)."""
    if isinstance(samples, Inputs):
        dtypes = dtype if isinstance(dtype, dict) else dict.fromkeys(samples.names, dtype)
        return Inputs({n: check_calibration(samples[n], dtypes.get(n, "float32")) for n in dtypes})
    samples = np.asarray(samples, dtype=np.float32)
    if samples.size == 0:
        raise UsageError("the calibration set is empty", "pass a data set with training samples")
    if not np.all(np.isfinite(samples)):
        raise UsageError("the calibration set contains NaN or Inf values", "clean the training data before int8 conversion")
    return samples.astype(dtype) if np.dtype(dtype) != np.float32 else samples


def input_dtype(model):
    """numpy name of the model's (first) input dtype: float32 for images and features, int32/int64 for token ids;
    for a model with several inputs, name → dtype in the model's input order."""
    inputs = getattr(model, "inputs", None)
    if inputs and len(inputs) > 1 and getattr(model, "input_names", None):
        return {str(n): str(np.dtype(t.dtype.as_numpy_dtype)) for n, t in zip(model.input_names, inputs, strict=True)}
    if inputs:
        return str(np.dtype(inputs[0].dtype.as_numpy_dtype))
    return str(getattr(model, "input_dtype", "float32"))


def recurrent_kinds(model) -> set[str]:
    """Class names of the recurrent layers (LSTM, GRU, SimpleRNN) in a tf_keras model, also inside wrappers."""
    found: set[str] = set()
    for layer in getattr(model, "layers", []):
        inner = getattr(layer, "forward_layer", None) or getattr(layer, "layer", None)  # Bidirectional, TimeDistributed
        for candidate in (layer, inner):
            name = type(candidate).__name__
            if name in RECURRENT and not getattr(candidate, "unroll", False):
                found.add(name)
        if hasattr(layer, "layers"):
            found |= recurrent_kinds(layer)
    return found


def unrolled(model):
    """The same tf_keras model with every recurrent layer unrolled over its (static) time steps, weights copied:
    no TensorList/While ops, so GRU and SimpleRNN lower to TFLite builtins (TF's recommended path for them)."""
    import tf_keras

    def set_unroll(config):
        if isinstance(config, dict):
            return {k: True if k == "unroll" else set_unroll(v) for k, v in config.items()}
        if isinstance(config, list):
            return [set_unroll(v) for v in config]
        return config

    for t in model.inputs:
        if len(t.shape) >= 3 and t.shape[1] is None:
            raise ValueError(f"the sequence length is not fixed (input shape {tuple(t.shape)}): GRU and SimpleRNN "
                             "lower to TFLite builtins only unrolled over a fixed number of time steps")

    def clone(layer):
        return type(layer).from_config(set_unroll(layer.get_config()))

    try:
        copy = tf_keras.models.clone_model(model, clone_function=clone)
    except ValueError as e:  # "Cannot unroll a RNN if the time dimension is undefined", subclassed models
        raise ValueError(f"cannot unroll the recurrent layers ({str(e).splitlines()[0][:160]}): give the model a "
                         "fixed sequence length") from None
    copy.set_weights(model.get_weights())
    return copy


def converter_for(model):
    """TFLiteConverter for a tf_keras model, or for any callable model wrapper (SavedModel, Keras 3).

    Recurrent tf_keras models: LSTM-only ones convert from a concrete function of batch 1 (TFLite's fused
    UNIDIRECTIONAL_SEQUENCE_LSTM needs a static batch; LiteRT then runs one sample at a time); models with GRU or
    SimpleRNN are unrolled first. Both stay TFLite builtins, so int8 works as for any model."""
    import tensorflow as tf
    import tf_keras

    if isinstance(model, tf_keras.Model):
        kinds = recurrent_kinds(model)
        if kinds and kinds <= {"LSTM"}:
            specs = [tf.TensorSpec((1, *t.shape[1:]), t.dtype) for t in model.inputs]
            fn = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False))
            return tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function(*specs)], model)
        return tf.lite.TFLiteConverter.from_keras_model(unrolled(model) if kinds else model)
    return tf.lite.TFLiteConverter.from_saved_model(model.saved_model_dir(),
                                                    signature_keys=getattr(model, "signature_keys", None))


def tflite_bytes(model, precision: str, calibration: np.ndarray | None = None, int8_io: str = "int8",
                 denylist: tuple[str, ...] = (), per_channel: bool = True) -> bytes:
    """One TFLite flatbuffer. ``calibration`` feeds the representative dataset for int8/int16x8; ``per_channel``
    False gives their weights one scale per tensor (the converter's default is one per output channel)."""
    import tensorflow as tf

    converter = converter_for(model)
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif precision in ("int8", "int16x8"):
        if calibration is None:
            raise ValueError(f"{precision} conversion needs calibration samples")
        samples = calibration if isinstance(calibration, Inputs) else check_calibration(calibration, calibration.dtype)

        def representative():
            for i in range(len(samples)):  # several inputs: a dict by input name (the converter's inputs sort by name)
                row = samples[i : i + 1]
                yield dict(row.items()) if isinstance(row, Inputs) else [row]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        # what TF 2.x exposes for it (lite.py); it acts only where ranges come from the weights' values (post-training)
        converter._experimental_disable_per_channel = not per_channel
        if precision == "int8":
            ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if denylist:
                ops.append(tf.lite.OpsSet.TFLITE_BUILTINS)  # denylisted ops stay float
            converter.target_spec.supported_ops = ops
            if int8_io == "int8":
                converter.inference_input_type = tf.int8
                converter.inference_output_type = tf.int8
        else:
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            ]
    elif precision != "fp32":
        raise ValueError(f"unknown TFLite precision {precision!r}")
    return converter.convert()


def flex_bytes(model, precision: str) -> bytes:
    """The float flatbuffer with Select TF ops allowed (needs a runtime linked with the Flex delegate): the
    fallback when builtins cannot express the graph, e.g. a recurrent layer over a variable-length sequence."""
    import tensorflow as tf
    import tf_keras

    plain = isinstance(model, tf_keras.Model)  # as it is: the graph builtins could not express
    converter = tf.lite.TFLiteConverter.from_keras_model(model) if plain else converter_for(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    converter._experimental_lower_tensor_list_ops = False
    if precision in ("fp16", "dynamic"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if precision == "fp16":
            converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def int8_tflite(model, calibration: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, float_val_acc: float,
                cfg: ConvertConfig, io_type: str, source_val_acc: float | None = None,
                float_tflite: Callable[[], bytes] | None = None, task=None) -> int8_search.Int8Result:
    """Full-integer int8; accuracy-aware unless the model is quantization-aware (QAT fixed its ranges) or the
    recipe turned it off. The tolerance is measured against ``source_val_acc`` (the model compress was given;
    ``float_val_acc``, this model's, when not known), in ``task``'s metric (top-1 when None; figures of a
    lower-is-better metric are negated, so that higher is better everywhere in the search). ``float_tflite``: the
    model's fp32 flatbuffer (built once by the caller for the fp32 artifact too); post-training int8 calibrates it
    rather than converting again."""
    from edgeopt.runtimes import evaluate

    source_val_acc = float_val_acc if source_val_acc is None else source_val_acc
    if task is not None:
        float_val_acc, source_val_acc = (task.metric.oriented(v) for v in (float_val_acc, source_val_acc))
    if int8_search.is_quantization_aware(model):  # the converter reads QAT's fake-quant ranges from the graph
        data = tflite_bytes(model, "int8", calibration, io_type, per_channel=cfg.per_channel)
        acc = evaluate.accuracy(data, "tflite", x_val, y_val, task)
        met = source_val_acc - acc <= cfg.max_accuracy_drop
        info = {"float_val_accuracy": round(float_val_acc, 6), "source_val_accuracy": round(source_val_acc, 6),
                "int8_val_accuracy": round(acc, 6), "kept_float": [], "met": met,
                "search": "skipped: quantization-aware model: ranges come from training"}
        return int8_search.Int8Result(data, info, lambda: tflite_bytes(model, "int8", calibration, "float",
                                                                       per_channel=cfg.per_channel))
    float_tflite = float_tflite or functools.cache(lambda: tflite_bytes(model, "fp32"))
    calibrated = int8_search.Calibrated(float_tflite, calibration, cfg.debug_samples, cfg.per_channel)
    if not cfg.accuracy_aware:
        data = calibrated.quantize((), io_type)
        acc = evaluate.accuracy(data, "tflite", x_val, y_val, task)
        info = {"float_val_accuracy": round(float_val_acc, 6), "source_val_accuracy": round(source_val_acc, 6),
                "int8_val_accuracy": round(acc, 6), "kept_float": [],
                "met": source_val_acc - acc <= cfg.max_accuracy_drop, "search": "skipped: accuracy_aware is off"}
        return int8_search.Int8Result(data, info, lambda: calibrated.quantize((), "float"))
    result = int8_search.search(calibrated, x_val, y_val, float_val_acc, cfg.max_accuracy_drop, io_type,
                                cfg.max_float_ops, source_val_acc, task)
    if task is not None and task.metric.name != "top1":
        result.info["metric"] = task.metric.name + (" (negated: lower is better)" if task.metric.lower_is_better else "")
    return result


def strip_strings(data: bytes) -> bytes:
    """LiteRT's flatbuffer_utils.strip_strings: no tensor/subgraph names, no signature defs; same arithmetic."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    flatbuffer_utils.strip_strings(model)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


METADATA = (b"min_runtime_version", b"CONVERSION_METADATA")  # what the converter writes; no runtime reads either


def strip_metadata(data: bytes) -> bytes:
    """Drop the converter's metadata entries (``min_runtime_version``, ``CONVERSION_METADATA``: the converter's
    version and options, for tools) and the buffers only they use; other metadata (e.g. TFLITE_METADATA of the
    support library) is kept. Tensors, ops and signature defs are untouched."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    entries = list(model.metadata or [])
    drop = [m for m in entries if bytes(m.name or b"") in METADATA]
    if not drop or _external_data(model, "strip_metadata"):
        return data
    model.metadata = [m for m in entries if m not in drop] or None
    return _without_buffers(model, {m.buffer for m in drop})


def share_empty_buffers(data: bytes) -> bytes:
    """Point every tensor without data (activations, inputs, outputs) at buffer 0, the schema's shared empty buffer,
    and drop the empty buffer the converter gives each of them: ~8 gzip bytes per such tensor, the same arithmetic
    (the runtime allocates those tensors in its arena either way). Variable tensors keep their own buffer."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))

    def empty(i: int) -> bool:
        b = model.buffers[i]
        return (b.data is None or len(b.data) == 0) and not getattr(b, "offset", 0) and not getattr(b, "size", 0)

    if not model.buffers or not empty(0) or _external_data(model, "share_empty_buffers"):
        return data  # no shared empty buffer to point at, or data this rewrite would not carry
    moved = set()
    for sg in model.subgraphs:
        for t in sg.tensors:
            if t.buffer and not getattr(t, "isVariable", False) and empty(t.buffer):
                moved.add(t.buffer)
                t.buffer = 0
    return _without_buffers(model, moved) if moved else data


def _external_data(model, option: str) -> bool:
    """True (with a warning) when constants live after the flatbuffer (buffer offset/size, the converter's layout
    for models over 2 GB): re-serializing the object would drop them, so the file is left as it is."""
    if any(getattr(b, "offset", 0) > 1 for b in model.buffers or []):
        log.warning("%s: the file keeps its constants outside the flatbuffer (a model over 2 GB); left as it is",
                    option)
        return True
    return False


def _without_buffers(model, candidates: set[int]) -> bytes:
    """``model`` (flatbuffer_utils' object) without those of the buffers ``candidates`` that nothing references
    any more (no tensor, no metadata entry, not the older metadata_buffer list; never buffer 0, the shared empty
    one), every index remapped; its bytes."""
    from tensorflow.lite.tools import flatbuffer_utils

    used = {t.buffer for sg in model.subgraphs for t in sg.tensors} | {m.buffer for m in model.metadata or []}
    used |= set(model.metadataBuffer or [])  # the older list of metadata buffers, if a writer filled it
    unused = set(candidates) - used - {0}
    remap, buffers = {}, []
    for i, b in enumerate(model.buffers):
        if i not in unused:
            remap[i] = len(buffers)
            buffers.append(b)
    model.buffers = buffers
    for sg in model.subgraphs:
        for t in sg.tensors:
            t.buffer = remap[t.buffer]
    for m in model.metadata or []:
        m.buffer = remap[m.buffer]
    if model.metadataBuffer is not None:
        model.metadataBuffer = [remap[i] for i in model.metadataBuffer]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
