"""What a worker is asked to do. ``RunSettings`` (a target's ``run:`` section, overridable by CLI flags) is
the one definition of the timing defaults; a ``Job`` is one artifact on one runtime, written as ``job.json``
for ``ondevice/runner.py``, which reads every field from it and assumes no defaults of its own."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

POOL_SIZE = 64  # distinct inputs cycled through during timing


class RunSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    warmup: int = Field(10, ge=0)
    min_runs: int = Field(50, ge=1)
    min_seconds: float = Field(1.0, ge=0)
    max_seconds: float = Field(30.0, gt=0)  # the one hard stop: timing ends here whatever min_runs/min_seconds say
    max_runs: int = Field(5000, ge=1)  # samples KEPT per launch (a uniform subset past it); timing still lasts min_seconds
    timeout_s: float = Field(300.0, gt=0)  # whole worker (load + accuracy + timing) per launch
    # independent worker launches per artifact, interleaved round-robin across the run's artifacts: the
    # statistics and the baseline comparison work on launch-level figures (between-launch variance)
    launches: int = Field(5, ge=1)
    max_memory_mb: int | None = Field(None, ge=64)  # worker tree's resident memory cap; None: a share of the RAM


# The outputs an untimed run needs no more than one call for (reference outputs, emulation).
REFERENCE = RunSettings(warmup=0, min_runs=1, min_seconds=0, max_seconds=1, max_runs=1, timeout_s=600, launches=1)


@dataclass(frozen=True)
class Job:
    artifact: str  # the model file, as the worker sees it
    runtime: str  # registry name (litert, onnxruntime, tf)
    module: str  # the runtime's file: the runner imports edgeopt.runtimes.<module>, or <module>.py beside it
    data: str  # inputs.npz from write_inputs
    out: str  # folder the worker writes result.json (and outputs.npy) into
    threads: int
    warmup: int  # the timing fields are RunSettings' (Job.build copies them): no second set of defaults
    min_runs: int
    min_seconds: float
    max_seconds: float
    max_runs: int
    timeout_s: float  # the device's limit for the whole worker
    options: dict[str, Any] = field(default_factory=dict)
    skip_timing: bool = False  # outputs only (emulation, reference outputs)
    max_memory_mb: int | None = None  # RunSettings' cap (local workers; None = default_memory_mb())
    evaluate: bool = True  # run the eval split after timing (one launch per artifact does; the others only time)

    @classmethod
    def build(cls, artifact: str | Path, runtime: str, data: str | Path, out: str | Path, threads: int,
              run: RunSettings, options: dict | None = None, skip_timing: bool = False, evaluate: bool = True) -> Job:
        from edgeopt.runtimes import get

        settings = run.model_dump()
        settings.pop("launches")  # the orchestrator's business: a job is one launch
        return cls(artifact=str(artifact), runtime=runtime, module=get(runtime).file, data=str(data), out=str(out),
                   threads=threads, options=dict(options or {}), skip_timing=skip_timing, evaluate=evaluate,
                   **settings)

    @classmethod
    def for_target(cls, target, artifact: str | Path, runtime: str, data: str | Path, out: str | Path,
                   skip_timing: bool = False, evaluate: bool = True, output: str | None = None) -> Job:
        """A job with the target's threads, run settings and options for ``runtime``; ``output``: the output a model
        with several returns (by name; the source model's first)."""
        options = dict(target.runtime_options.get(runtime, {}))
        if output:
            options["output"] = output
        return cls.build(artifact, runtime, data, out, target.threads, target.run, options, skip_timing, evaluate)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_dict()))
        return path


def write_inputs(folder: Path, x_eval) -> Path:
    """The data file a runner reads: one sample (the memory phase), a pool of distinct samples for timing and the
    full eval split; the runner reads each array only when it needs it. Several named inputs (core.inputs.Inputs):
    the same keys with ``.<input name>`` appended."""
    named = x_eval.items() if hasattr(x_eval, "arrays") else [(None, x_eval)]
    arrays: dict[str, np.ndarray] = {}
    for name, x in named:
        x = np.ascontiguousarray(x, dtype=np.float32)
        pool = x[: min(POOL_SIZE, len(x))]
        suffix = "" if name is None else f".{name}"
        arrays.update({f"x_one{suffix}": pool[:1], f"x_pool{suffix}": pool, f"x_eval{suffix}": x})
    if not any(np.any(v) for k, v in arrays.items() if k.startswith("x_pool")):
        raise ValueError("the timing inputs are all zeros; pass real data")
    path = folder / "inputs.npz"
    np.savez(path, **arrays)
    return path


def not_run(status: str, reason: str) -> dict[str, Any]:
    """A device's answer for a job it did not hand to a runner (no GPU path, device lost)."""
    return {"status": status, "error": reason, "ran": False}
