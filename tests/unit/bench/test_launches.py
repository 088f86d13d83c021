"""Launches with real LiteRT / ONNX Runtime workers: K per artifact, interleaved, raw samples kept per launch,
min_seconds of timing whatever max_runs says, memory of one inference, artifacts checked against their manifest."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from edgeopt.bench.orchestrate import benchmark
from edgeopt.bench.targets import load_target


def _pick(compressed, *wanted):
    out, manifest = compressed
    return [out / a.path for fmt, prec in wanted for a in manifest.artifacts if (a.format, a.precision) == (fmt, prec)]


def test_launches_interleave_round_robin_and_keep_samples_per_launch(tmp_path, compressed, digits):
    arts = _pick(compressed, ("tflite", "int8"), ("tflite", "fp32"), ("onnx", "fp32"))
    started: list[str] = []
    report = benchmark(arts, [load_target("x86-cpu")], digits, tmp_path / "r.json", warmup=1, min_runs=1,
                       min_seconds=0.1, max_runs=40, launches=2, on_start=started.append)
    names = [p.name for p in arts]
    order = [(re.match(r"(\S+) on", s)[1], re.search(r"launch (\d)/2", s)[1]) for s in started]
    # round 1 in the given order, round 2 rotated: every artifact once per round, never K in a row
    assert order == [(n, "1") for n in names] + [(n, "2") for n in names[1:] + names[:1]]
    for m in report.results:
        assert m.status == "ok", m.error
        assert len(m.launches) == 2 and m.latency_ms.launches == 2 and m.latency_ms.noise is not None
        assert [len(s) for s in m.launch_samples()] == [40, 40] == [la.n for la in m.launches]
        for la in m.launches:  # max_runs caps what is kept, never the min_seconds of timing
            assert la.timed_s >= 0.1 and la.runs > 40
            assert la.cpu_ratio > 0 and la.other_cpu is not None and isinstance(la.contended, bool)
    saved = json.loads((tmp_path / "r.json").read_text())["results"][0]
    assert len(saved["launches"]) == 2 and saved["latency_ms"]["launches"] == 2


BARE = """
import sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter
it = Interpreter(model_path=sys.argv[1], num_threads=int(sys.argv[3]))
it.allocate_tensors()
d = it.get_input_details()[0]
it.set_tensor(d["index"], np.load(sys.argv[2])["x_one"].astype(d["dtype"]))
it.invoke()
print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024)
"""


def test_peak_rss_is_load_and_one_inference_like_a_bare_process(tmp_path, compressed, digits):
    from edgeopt.bench.plan import write_inputs

    (art,) = _pick(compressed, ("tflite", "fp32"))
    target = load_target("x86-cpu")
    (m,) = benchmark([art], [target], digits, None, warmup=0, min_runs=1, min_seconds=0, launches=1).results
    data = write_inputs(tmp_path, digits.x_test)
    bare = [float(subprocess.run([sys.executable, "-c", BARE, str(art), str(data), str(target.threads)],
                                 capture_output=True, text=True, check=True).stdout.split()[-1]) for _ in range(2)]
    assert m.status == "ok", m.error
    # The runner's extra (its own modules, a 64-sample timing pool) is small; the eval pass is reported apart.
    assert min(bare) * 0.95 <= m.peak_rss_mb <= max(bare) * 1.15 + 5, (m.peak_rss_mb, bare)
    assert m.eval_peak_rss_mb >= m.peak_rss_mb


@pytest.fixture()
def changed_folder(tmp_path, compressed):
    """A copy of the compress folder holding only the fp32 .tflite, whose bytes changed after compress."""
    out, manifest = compressed
    folder = tmp_path / "changed"
    shutil.copytree(out, folder)
    data = json.loads((folder / "manifest.json").read_text())
    data["artifacts"] = [a for a in data["artifacts"] if a["format"] == "tflite" and a["precision"] == "fp32"]
    (folder / "manifest.json").write_text(json.dumps(data))
    path = folder / data["artifacts"][0]["path"]
    path.write_bytes(path.read_bytes() + b"\0")
    return folder


def test_an_artifact_changed_since_compress_fails_and_bench_exits_1(tmp_path, changed_folder, digits):
    (m,) = benchmark([changed_folder], [load_target("x86-cpu")], digits, None, launches=1).results
    assert m.status == "failed" and m.error.startswith("artifact changed since compress")
    cmd = [sys.executable, "-m", "edgeopt.cli", "bench", str(changed_folder), "--data", "digits", "--launches", "1"]
    failed = subprocess.run([*cmd, "--out", str(tmp_path / "a.json")], capture_output=True, text=True)
    assert failed.returncode == 1, failed.stderr
    assert "artifact changed since compress" in failed.stdout and "--allow-failures" in failed.stdout
    allowed = subprocess.run([*cmd, "--out", str(tmp_path / "b.json"), "--allow-failures"], capture_output=True,
                             text=True)
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads((tmp_path / "b.json").read_text())["results"][0]["status"] == "failed"


def test_ab_mode_pairs_twins_by_name_and_measures_them_back_to_back(tmp_path, compressed, digits):
    arts = _pick(compressed, ("tflite", "int8"), ("onnx", "fp32"))
    old = tmp_path / "old"
    old.mkdir()
    for p in arts:
        shutil.copy(p, old / p.name)
    (old / "only_old.tflite").write_bytes(arts[0].read_bytes())
    started: list[str] = []
    report = benchmark(arts, [load_target("x86-cpu")], digits, tmp_path / "ab.json", against=sorted(old.iterdir()), warmup=1,
                       min_runs=5, min_seconds=0.02, launches=2, on_start=started.append)
    assert [(m.artifact, m.group) for m in report.results] == [(a.name, g) for a in arts for g in ("new", "old")]
    assert report.environment["ab"]["unpaired_old"] == ["only_old.tflite"]
    # twins run back to back; round 2 swaps which twin goes first
    assert [s.split(" on ")[0] for s in started][:2] == [arts[0].name] * 2
    from edgeopt.verdict.gate import check

    v = check(report)  # no baseline: each new artifact against its old twin
    lat = [c for c in v.comparisons if c.metric == "p50_ms"]
    assert len(lat) == 2 and all("paired" in c.note for c in lat)
    assert all(c.verdict != "regressed" for c in lat)  # identical files: never a regression
