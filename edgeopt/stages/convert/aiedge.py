"""Weight-only int8 TFLite through ai-edge-quantizer (the optional ``aiedge`` extra): int8 weight constants,
each dequantized to float by a DEQUANTIZE op that LiteRT folds at load time, float compute — the fp32 model's
accuracy and speed at about a third of its size. Made from the fp32 flatbuffer in a fraction of a second.

The converter has no weight-only mode of its own: its dynamic-range mode (``dynamic``) also keeps int8
weights and float tensors, but its hybrid kernels quantize activations at every inference; on this x86 CPU
that ran MobileNetV2 ~4x slower than fp32 (benchmarks/results/quant_variants.md)."""

from __future__ import annotations

from edgeopt.errors import UsageError

PACKAGE = "ai-edge-quantizer"
INSTALL_HINT = "pip install 'edgeopt[aiedge]' (or pip install ai-edge-quantizer)"


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("ai_edge_quantizer") is not None


def require(what: str) -> None:
    """UsageError (exit 2) naming the extra when ai-edge-quantizer is not installed."""
    if not available():
        raise UsageError(f"{what} needs {PACKAGE}, which is not installed", INSTALL_HINT)


def weight_only(fp32: bytes) -> bytes:
    """int8 weights (per-channel, symmetric min/max), float activations, from an fp32 TFLite flatbuffer."""
    from ai_edge_quantizer import quantizer, recipe

    q = quantizer.Quantizer(bytearray(fp32), recipe.weight_only_wi8_afp32())
    return bytes(q.quantize(enable_progress_report=False).quantized_model)
