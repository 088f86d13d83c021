"""The runtime registry is built from what each runtime file declares, once."""

from __future__ import annotations

import pytest

from edgeopt import runtimes
from edgeopt.errors import UsageError


def test_registry_reads_each_runtime_file():
    for file in runtimes.FILES:
        mod = __import__(f"edgeopt.runtimes.{file}", fromlist=["NAME"])
        entry = runtimes.get(mod.NAME)
        assert (entry.file, entry.formats, entry.packages, entry.install_hint, entry.standalone) == (
            file, tuple(mod.FORMATS), mod.PACKAGES, mod.INSTALL_HINT, mod.STANDALONE)
        assert runtimes.module(mod.NAME) is mod


def test_lookups_by_name_and_format():
    assert [runtimes.for_format(f) for f in ("tflite", "onnx", "keras")] == ["litert", "onnxruntime", "tf"]
    with pytest.raises(KeyError):
        runtimes.for_format("pt")
    with pytest.raises(UsageError, match="did you mean 'litert'"):
        runtimes.module("litrt")
    assert [rt.name for rt in runtimes.standalone()] == ["litert", "onnxruntime"]  # tf needs edgeopt: host only


def test_provider_is_the_first_package_a_device_has():
    litert = runtimes.get("litert")
    assert litert.provider({"tflite_runtime": "2.14", "tensorflow": "2.21"}) == "tflite_runtime"
    assert litert.provider({"tensorflow": "2.21"}) == "tensorflow"  # interpreter_class falls back to tf.lite
    assert litert.provider({"onnxruntime": "1.32", "ai_edge_litert": None}) is None
