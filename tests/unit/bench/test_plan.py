"""The typed job: one definition of the run settings, written as the runner reads it."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from edgeopt.bench.plan import Job, RunSettings, write_inputs
from edgeopt.bench.targets import load_target


def test_job_carries_the_target_settings_and_nothing_else(tmp_path):
    target = load_target("x86-cpu").with_overrides(warmup=3, threads=1)
    job = Job.for_target(target, tmp_path / "m.onnx", "onnxruntime", tmp_path / "inputs.npz", tmp_path / "out")
    assert (job.threads, job.warmup, job.min_runs, job.timeout_s) == (1, 3, target.run.min_runs, target.run.timeout_s)
    assert job.module == "onnxrt" and job.options == {"providers": ["CPUExecutionProvider"]}
    timing = {f.name for f in dataclasses.fields(Job)} & set(RunSettings.model_fields)
    assert timing == set(RunSettings.model_fields) - {"launches"}  # every run setting reaches the worker
    assert target.run.launches == 5  # ... but launches: a job is one launch; the orchestrator runs K of them
    written = json.loads(job.write(tmp_path / "job.json").read_text())
    assert Job(**written) == job


def test_run_setting_defaults_have_one_definition(tmp_path):
    """A target without a run: section gets RunSettings' defaults, and so does its job."""
    (tmp_path / "t.yaml").write_text("name: bare\ncores: 1\nthreads: 1\n")
    job = Job.for_target(load_target(tmp_path / "t.yaml"), "m.tflite", "litert", "d.npz", "out")
    defaults = RunSettings().model_dump()
    assert defaults.pop("launches") == 5
    assert {k: getattr(job, k) for k in defaults} == defaults


def test_all_zero_inputs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="all zeros"):
        write_inputs(tmp_path, np.zeros((10, 8, 8, 1), np.float32))


def test_every_run_setting_is_a_bench_flag():
    """`edgeopt bench` can override each run setting (and only those, plus threads): the CLI cannot drift."""
    import typer.main

    from edgeopt.cli import app

    bench = typer.main.get_command(app).commands["bench"]
    flags = {p.name for p in bench.params} - {"paths", "data", "num_classes", "scale", "out", "target", "against",
                                              "allow_failures", "task", "metric"}
    assert flags == {"threads", "timeout", *RunSettings.model_fields} - {"timeout_s"}
