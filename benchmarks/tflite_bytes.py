"""Where the bytes of a TFLite flatbuffer go: raw and gzip -9 bytes of each part, removed one after another in a
fixed order (names and signature defs, the converter's metadata, the empty buffers of tensors without data,
per-channel quantization beyond one scale per tensor, the remaining quantization parameters, constant data, shape
signatures); what is left is the structure
(ops, tensors, op codes, the buffer table). The parts add up to the file's size and gzip size exactly; a part's
gzip figure is what removing it saves once the parts before it are gone.

    python benchmarks/tflite_bytes.py FILE.tflite [...]
"""

from __future__ import annotations

import argparse
import copy
import gzip
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _gz(data: bytes) -> int:
    return len(gzip.compress(data, 9, mtime=0))


def _drop_names(model) -> None:
    from tensorflow.lite.tools import flatbuffer_utils

    flatbuffer_utils.strip_strings(model)


def _drop_metadata(model) -> None:
    from edgeopt.stages.convert.tflite import METADATA

    model.metadata = [m for m in (model.metadata or []) if bytes(m.name or b"") not in METADATA] or None
    kept = {m.buffer for m in model.metadata or []}
    used = {t.buffer for sg in model.subgraphs for t in sg.tensors}
    for i, b in enumerate(model.buffers):  # the metadata's buffers emptied (indices stay valid)
        if i not in used and i not in kept:
            b.data = None


def _share_empty(model) -> None:
    """The product's share_empty_buffers, applied to the object in place."""
    from tensorflow.lite.tools import flatbuffer_utils

    from edgeopt.stages.convert.tflite import share_empty_buffers

    data = share_empty_buffers(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
    model.__dict__.update(flatbuffer_utils.convert_bytearray_to_object(bytearray(data)).__dict__)


def _quant(model, keep_one: bool) -> None:
    for sg in model.subgraphs:
        for t in sg.tensors:
            q = t.quantization
            if q is None:
                continue
            if not keep_one:
                t.quantization = None
            elif q.scale is not None and len(q.scale) > 1:
                q.scale, q.zeroPoint = q.scale[:1], (q.zeroPoint[:1] if q.zeroPoint is not None else None)


def _bias_buffers(model) -> set[int]:
    """Buffers of the third input (the bias) of conv / depthwise / fully-connected ops."""
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    weighted = {3, 4, 9}  # CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED (schema BuiltinOperator)
    return {sg.tensors[op.inputs[2]].buffer for sg in model.subgraphs for op in sg.operators
            if codes[op.opcodeIndex] in weighted and len(op.inputs) > 2 and op.inputs[2] >= 0}


def _drop_data(model, biases: bool) -> None:
    chosen = _bias_buffers(model)
    for i, b in enumerate(model.buffers):
        if (i in chosen) == biases:
            b.data = None


def _drop_shape_signatures(model) -> None:
    for sg in model.subgraphs:
        for t in sg.tensors:
            t.shapeSignature = None


PARTS = (
    ("tensor names + signature defs (strip_strings)", _drop_names),
    ("converter metadata (strip_metadata)", _drop_metadata),
    ("one empty buffer per tensor without data (share_empty_buffers)", _share_empty),
    ("per-channel scales + zero points beyond one per tensor", lambda m: _quant(m, True)),
    ("per-tensor quantization params (scale float32, zero point int64)", lambda m: _quant(m, False)),
    ("biases (int32 when quantized)", lambda m: _drop_data(m, True)),
    ("weights and other constants (shapes, axes)", lambda m: _drop_data(m, False)),
    ("shape signatures (batch -1)", _drop_shape_signatures),
)


def breakdown(data: bytes) -> dict:
    """{"file_bytes", "gzip_bytes", "ops", "tensors", "parts": [{"part", "bytes", "gzip_bytes"}, ...]}: each part's
    share, the last being the structure that remains."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    sg = model.subgraphs[0]
    out = {"file_bytes": len(data), "gzip_bytes": _gz(data), "ops": len(sg.operators), "tensors": len(sg.tensors),
           "parts": []}
    current = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    # the re-serialized file is the first reference (flatbuffer_utils writes the same bytes or a few fewer)
    prev_raw, prev_gz = len(current), _gz(current)
    if (len(data), _gz(data)) != (prev_raw, prev_gz):
        out["parts"].append({"part": "re-serialization (flatbuffer_utils)", "bytes": len(data) - prev_raw,
                             "gzip_bytes": out["gzip_bytes"] - prev_gz})
    for name, drop in PARTS:
        model = copy.deepcopy(model)
        drop(model)
        current = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
        out["parts"].append({"part": name, "bytes": prev_raw - len(current), "gzip_bytes": prev_gz - _gz(current)})
        prev_raw, prev_gz = len(current), _gz(current)
    out["parts"].append({"part": f"structure: {out['ops']} ops, {out['tensors']} tensors, op codes, buffer table",
                         "bytes": prev_raw, "gzip_bytes": prev_gz})
    return out


def markdown(name: str, b: dict) -> str:
    from _common import md_table

    rows = [[p["part"], p["bytes"], p["gzip_bytes"], f"{100 * p['gzip_bytes'] / b['gzip_bytes']:.0f} %"]
            for p in b["parts"]]
    return (f"{name}: {b['file_bytes']} B, {b['gzip_bytes']} B gzip -9\n\n"
            + md_table(["part (removed in this order)", "bytes", "gzip bytes", "of gzip"], rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    for f in ap.parse_args().files:
        print(markdown(Path(f).name, breakdown(Path(f).read_bytes())))


if __name__ == "__main__":
    main()
