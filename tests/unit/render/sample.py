"""Sample reports for the renderer tests: the evil name, a failed result, manifests and tuning sections."""

from __future__ import annotations

import numpy as np

from edgeopt.core.report import Latency, Measurement, Report
from edgeopt.verdict.budgets import Budgets
from edgeopt.verdict.gate import check

EVIL = 'net<script>alert("x")</script>&|$x$'


def measurement(name, fmt="tflite", precision="fp32", *, runtime="litert", size_kb=100.0, acc=0.9, p50=2.0,
                role="artifact", status="ok", seed=0, target="x86-cpu", error=None):
    ok = status == "ok"
    samples = list(np.random.default_rng(seed).lognormal(np.log(p50), 0.15, 120)) if ok else []
    return Measurement(artifact=name, format=fmt, precision=precision, target=target, runtime=runtime, status=status, error=error, role=role,
                       size_bytes=int(size_kb * 1024) if ok else None, gzip_bytes=int(size_kb * 400) if ok else None,
                       accuracy=acc if ok else None, latency_ms=Latency.from_samples(samples) if ok else None,
                       samples_ms=samples)


def sample_report(shift=1.0):
    return Report(
        environment={"python": "3.11.7", "cpu": {"model": "Xeon <E5>", "cores": 16}, "libs": ["tflite", "onnx"]},
        results=[measurement("model", "keras", runtime="tf", role="source", size_kb=800, acc=0.93, p50=8 * shift,
                             seed=1),
                 measurement("model_fp32", size_kb=300, acc=0.93, p50=4 * shift, seed=2),
                 measurement("model_int8", precision="int8", size_kb=80, acc=0.91, p50=2 * shift, seed=3),
                 measurement(EVIL, "onnx", runtime="onnxruntime", size_kb=310, acc=0.925, p50=3 * shift, seed=4),
                 measurement("model_fp16", precision="fp16", status="failed", error="boom <here>")],
        **{"manifests": [{"schema_version": 1, "artifacts": [
                   {"name": "model_int8", "precision": "int8", "stages": ["prune", "convert"],
                    "info": {"sensitivity": [{"layer": "conv2d_sensitive", "rmse": 0.031, "scale": 0.02}],
                             "sparsity": {"dense_layer_sparsity": 0.8}}}]}],
               "tuning": {"trials": 20, "best_hyperparameters": {"width": 0.5}, "best_score": 0.931}})


def sample_verdict(report, **kw):
    budgets = Budgets.from_dict({"targets": {"x86-cpu": {"max_size_kb": 200, "max_p90_ms": 50}}})
    return check(report, budgets, **kw)
