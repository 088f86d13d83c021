"""Every runtime in the registry passes the same suite on the artifacts it runs (real LiteRT, ONNX Runtime, TF)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.runtimes import REGISTRY, for_format, formats, module


@pytest.fixture(scope="module")
def artifacts(compressed):
    out, manifest = compressed
    return {a.name: (out / a.path, a.format, a.precision) for a in manifest.artifacts}


def test_every_format_has_a_runtime(artifacts):
    assert {fmt for _, fmt, _ in artifacts.values()} == set(formats())
    assert len(formats()) == len(set(formats()))  # one runtime per format


@pytest.mark.parametrize("name", list(REGISTRY))
def test_runtime_contract(name, artifacts, digits):
    entry = REGISTRY[name]
    rt = entry.module()
    assert rt.NAME == name and isinstance(rt.version(), str) and rt.version()
    assert entry.provider({p: "1" for p in entry.packages}) == next(iter(entry.packages))
    x = digits.x_test[:37]  # odd batch size on purpose
    mine = {n: a for n, a in artifacts.items() if a[1] in entry.formats}
    assert mine, f"no artifact exercises {name}"
    for art, (path, _, _) in mine.items():
        sess = rt.load(str(path), threads=1)
        assert tuple(sess.input_shape) == digits.input_shape, art
        out = sess.run(x)
        assert out.shape == (37, digits.num_classes), art
        assert out.dtype == np.float32, art
        assert np.allclose(out.sum(axis=1), 1.0, atol=0.05), name  # softmax survives every conversion
        single = sess.invoke_prepared(sess.prepare(x[:1]))
        assert single.shape[-1] == digits.num_classes, art


def test_runtimes_agree_on_the_same_inputs(artifacts, digits):
    x = digits.x_test[:100]
    outs = {n: module(for_format(f)).load(str(p)).run(x) for n, (p, f, _) in artifacts.items()}
    ref = next(o for n, o in outs.items() if n.endswith("_source.keras"))
    for name, out in outs.items():
        agree = np.mean(out.argmax(1) == ref.argmax(1))
        assert agree >= 0.95, (name, agree)


def test_int8_io_quantisation_round_trip():
    from edgeopt.runtimes.litert import dequantize, quantize

    detail = {"dtype": np.int8, "quantization": (0.02, -5)}
    x = np.linspace(-2.0, 2.0, 50, dtype=np.float32)
    q = quantize(x, detail)
    assert q.dtype == np.int8 and q.min() >= -128 and q.max() <= 127
    back = dequantize(q, detail)
    inside = (x > -2.46) & (x < 2.64)  # representable range for this scale/zero point
    assert np.max(np.abs(back[inside] - x[inside])) <= 0.01 + 1e-6


def test_missing_provider_is_a_clear_error(artifacts):
    import onnxruntime as ort

    from edgeopt.runtimes import onnxrt

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has the CUDA provider")
    path = next(p for p, f, _ in artifacts.values() if f == "onnx")
    with pytest.raises(onnxrt.ProviderUnavailable, match="gpu extra"):
        onnxrt.load(str(path), options={"providers": ["CUDAExecutionProvider"]})
