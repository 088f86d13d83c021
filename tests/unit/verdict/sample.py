"""Sample results for the gate tests: a source model and three artifacts on x86-cpu, seeded latencies."""

from __future__ import annotations

import numpy as np

from edgeopt.core.report import Latency, Measurement, Report


def measurement(name, fmt="tflite", precision="fp32", *, target="x86-cpu", runtime="litert", size_kb=100.0, acc=0.9,
                p50=2.0, role="artifact", status="ok", seed=0, estimated=False, **kw):
    samples = [] if status != "ok" else list(np.random.default_rng(seed).lognormal(np.log(p50), 0.1, 100))
    return Measurement(artifact=name, format=fmt, precision=precision, target=target, runtime=runtime, status=status, role=role,
                       size_bytes=int(size_kb * 1024) if status == "ok" else None,
                       gzip_bytes=int(size_kb * 512) if status == "ok" else None, accuracy=acc if status == "ok" else None,
                       agreement=0.99 if status == "ok" else None,
                       latency_ms=Latency.from_samples(samples) if samples else None, samples_ms=samples,
                       peak_rss_mb=300.0 if status == "ok" else None, estimated=estimated,
                       **{"task": "classification", "metric": "top1", "metric_value": acc if status == "ok" else None,
                          **kw})


def report_of(*results):
    return Report(environment={"host": "test"}, results=list(results))


def standard_report():
    return report_of(
        measurement("model", "keras", role="source", runtime="tf", size_kb=800, acc=0.92, p50=8.0, seed=1),
        measurement("model_fp32", size_kb=300, acc=0.92, p50=4.0, seed=2),
        measurement("model_int8", precision="int8", size_kb=80, acc=0.905, p50=2.0, seed=3),
        measurement("model_onnx", "onnx", runtime="onnxruntime", size_kb=310, acc=0.92, p50=3.0, seed=4),
    )
