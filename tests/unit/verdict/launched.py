"""Results measured in several launches, for the comparison and gate tests: each launch's samples are
log-normal around the median given for it."""

from __future__ import annotations

import numpy as np

from edgeopt.core.report import Launch, Measurement


def launched(p50s, name="model_int8", *, n=60, contended=(), seed=0, group=None, size=80_000, acc=0.9,
             spread=0.02, role="artifact", target="x86-cpu"):
    rng = np.random.default_rng(seed)
    samples, launches = [], []
    for k, p in enumerate(p50s):
        samples += [float(x) for x in rng.lognormal(np.log(p), spread, n)]
        launches.append(Launch(n=n, contended=k in contended))
    return Measurement(artifact=name, format="tflite", precision="int8", target=target, runtime="litert", status="ok",
                       role=role, size_bytes=size, accuracy=acc, samples_ms=samples, launches=launches, group=group)
