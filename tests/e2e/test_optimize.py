"""`edgeopt optimize` as users run it: real subprocesses, a real Optuna study (SQLite, and PostgreSQL for two
workers), real pipelines on the tiny digits model, real bench runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeopt.optimize.candidate import CONSTRAINTS
from tests.e2e.postgres_fixture import postgres  # noqa: F401 — the fixture

EDGEOPT = [sys.executable, "-m", "edgeopt.cli"]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", COLUMNS="200")

# four candidates: no student × sparsity {0, 0.5} × {fp32, int8} on LiteRT, one short bench launch each
SPACE = """
train: {epochs: 1}
max_stage_drop: 0.1
optimize:
  student: {none: true, zoo: [small_cnn], width: [0.5], depth: [1], epochs: 1}
  channel: [0.0]
  sparsity: [0.0, 0.5]
  prune_epochs: 1
  cluster: [0]
  quant: [fp32, int8]
  runtimes: [litert]
  measure: {launches: 1, warmup: 1, min_runs: 10, min_seconds: 0.05}
"""
NO_STUDENT = SPACE.replace("none: true, zoo: [small_cnn]", "none: true, zoo: []")
# twelve candidates, for the tests that need a study to outlast something (a kill, a second worker's start-up) on
# a fast machine as well as on a loaded one
WIDE = NO_STUDENT.replace("sparsity: [0.0, 0.5]", "sparsity: [0.0, 0.3, 0.5, 0.7]").replace(
    "quant: [fp32, int8]", "quant: [fp32, fp16, int8]")
EASY = "targets:\n  x86-cpu: {max_size_kb: 1000, max_accuracy_drop: 0.2}\n"
IMPOSSIBLE = "targets:\n  x86-cpu: {max_size_kb: 1000, min_accuracy: 0.9999}\n"  # the tiny model: ~0.9


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def command(model, tmp_path, out, budgets=EASY, space=NO_STUDENT, trials=4, *extra) -> list[str]:
    return [*EDGEOPT, "optimize", str(model), "--data", "digits", "--target", "x86-cpu",
            "--budgets", str(write(tmp_path, "budgets.yaml", budgets)),
            "--recipe", str(write(tmp_path, "space.yaml", space)), "--trials", str(trials), "--out", str(out), *extra]


def run(args, cwd=None, **env) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env={**ENV, **env}, cwd=cwd, timeout=900)


def trials_of(url: str, name: str = "edgeopt"):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna.load_study(study_name=name, storage=url).get_trials()


def test_an_empty_space_is_exit_2_with_one_line(tmp_path, tiny_model_path):
    space = "optimize: {quant: []}\n"
    proc = run(command(tiny_model_path, tmp_path, tmp_path / "out", space=space))
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "search space is empty" in errors[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "study.db").exists()


@pytest.mark.parametrize("extra, needle", [
    (["--storage", "mysql://u@h/db"], "SQLite or PostgreSQL"),
    (["--time-budget", "soon"], "not a duration"),
])
def test_bad_storage_or_duration_is_exit_2(tmp_path, tiny_model_path, extra, needle):
    proc = run(command(tiny_model_path, tmp_path, tmp_path / "out", EASY, NO_STUDENT, 4, *extra))
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr


def test_a_folder_of_the_users_is_refused(tmp_path, tiny_model_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    proc = run(command(tiny_model_path, tmp_path, out))
    assert proc.returncode == 2 and "not an earlier `edgeopt optimize` output" in proc.stderr
    assert (out / "notes.txt").read_text() == "keep me" and sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_a_regression_model_is_refused_before_any_trial(tmp_path):
    """optimize ranks classifiers by top-1: another task is exit 2 with one line saying what to use instead."""
    import numpy as np
    import tf_keras as keras

    rng = np.random.default_rng(0)
    x = rng.random((300, 6)).astype("float32")
    y = (x @ rng.random((6, 1))).astype("float32")
    np.savez(tmp_path / "reg.npz", x_train=x[:200], y_train=y[:200], x_val=x[200:250], y_val=y[200:250],
             x_test=x[250:], y_test=y[250:])
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)])
    model.save(tmp_path / "reg.keras")
    args = command(tmp_path / "reg.keras", tmp_path, tmp_path / "out")
    args[args.index("digits")] = str(tmp_path / "reg.npz")
    proc = run(args)
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "searches classifiers" in errors[0] and "a regression task" in errors[0]
    assert "edgeopt compress with a convert-only recipe" in errors[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "study.db").exists()


@pytest.mark.slow
def test_impossible_budgets_exit_1_with_the_closest_misses_and_no_best(tmp_path, tiny_model_path):
    out = tmp_path / "out"
    proc = run(command(tiny_model_path, tmp_path, out, IMPOSSIBLE, NO_STUDENT, 4))
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "No candidate meets every budget" in proc.stdout and "accuracy" in proc.stdout
    assert not (out / "best").exists()
    doc = json.loads((out / "front.json").read_text())
    assert doc["best"] is None and doc["closest"]
    for c in doc["closest"]:
        assert any("< min" in m and "accuracy" in m for m in c["misses"]), c
    assert "No candidate meets every budget" in (out / "front.md").read_text()


def test_a_candidate_the_accuracy_guard_stops_is_pruned_with_its_reason(tmp_path, tiny_model_path):
    # the only candidate: a 1-epoch student, far under the source model
    space = SPACE.replace("none: true", "none: false").replace("sparsity: [0.0, 0.5]", "sparsity: [0.0]").replace(
        "quant: [fp32, int8]", "quant: [fp32]")
    out = tmp_path / "out"
    proc = run(command(tiny_model_path, tmp_path, out, EASY, space, 3))
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "every candidate was pruned" in proc.stdout and "stage 'distill' lost" in proc.stdout
    doc = json.loads((out / "front.json").read_text())
    assert doc["trials"]["pruned"] == 1 and doc["trials"]["total"] == 1  # a one-candidate space: one trial
    assert doc["candidates"][0]["state"] == "pruned" and "max_stage_drop" in doc["candidates"][0]["pruned"]
    assert not (out / "best").exists()


# one candidate: a small_cnn student distilled 1 + 1 epochs (the short run first), int8
SCREENED = SPACE.replace("none: true, zoo: [small_cnn], width: [0.5], depth: [1], epochs: 1",
                         "none: false, zoo: [small_cnn], width: [0.25], depth: [1], epochs: 2, screen_epochs: 1, "
                         "screen_gain: GAIN").replace("sparsity: [0.0, 0.5]", "sparsity: [0.0]").replace(
    "quant: [fp32, int8]", "quant: [int8]").replace("max_stage_drop: 0.1", "max_stage_drop: 0.9")
CLOSE = "targets:\n  x86-cpu: {max_size_kb: 1000, max_accuracy_drop: 0.01}\n"


def test_a_hopeless_short_run_prunes_the_trial_before_the_full_training(tmp_path, tiny_model_path):
    out = tmp_path / "out"
    proc = run(command(tiny_model_path, tmp_path, out, CLOSE, SCREENED.replace("GAIN", "0.0"), 1))
    assert proc.returncode == 1, proc.stderr[-3000:]
    doc = json.loads((out / "front.json").read_text())
    (c,) = doc["candidates"]
    assert c["state"] == "pruned" and c["pruned"].startswith("hopeless after the short run"), c
    screen = c["screen"]
    assert screen["verdict"] == "pruned" and screen["epochs"] == 1
    # the rule as documented: short-run accuracy + gain (0 here) under the source's accuracy - max_accuracy_drop
    assert screen["needed_accuracy"] == pytest.approx(screen["source_accuracy"] - 0.01)
    assert screen["accuracy"] + screen["gain"] < screen["needed_accuracy"]
    assert f"{screen['accuracy']:.4f} after 1 of 2 distillation epochs" in c["pruned"]
    assert not (out / "candidates" / "trial-0000").exists()  # the full pipeline never ran
    assert "accuracy" not in c or c.get("accuracy") is None


@pytest.mark.slow
def test_a_promising_short_run_continues_from_the_stage_cache(tmp_path, tiny_model_path):
    out = tmp_path / "out"
    proc = run(command(tiny_model_path, tmp_path, out, CLOSE, SCREENED.replace("GAIN", "1.0"), 1),
               EDGEOPT_CACHE=str(tmp_path / "cache"))  # its own: the short run is stored by this run, not another
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    (c,) = json.loads((out / "front.json").read_text())["candidates"]
    assert c["state"] == "complete" and c["screen"]["verdict"] == "continued", c
    assert not c["screen"]["cached"] and c["cached_stages"] == ["distill"]  # the short run was not trained again
    names = [next(iter(stage)) for stage in c["recipe"]["stages"]]
    assert names == ["distill", "distill", "convert"]
    assert c["recipe"]["stages"][1]["distill"]["student"] is None and c["accuracy"] is not None
    manifest = json.loads((out / "candidates" / "trial-0000" / "manifest.json").read_text())
    assert [s["from_cache"] for s in manifest["cache"]["stages"]] == [True, False]


@pytest.mark.slow
def test_a_small_run_writes_the_front_and_a_best_that_compress_reproduces(tmp_path, tiny_model_path):
    out = tmp_path / "out"
    proc = run(command(tiny_model_path, tmp_path, out, EASY, NO_STUDENT, 4))  # 4 trials: the whole space
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Pareto front on x86-cpu" in proc.stdout and "Best: trial" in proc.stdout
    doc = json.loads((out / "front.json").read_text())
    assert doc["schema_version"] == 1 and doc["target"] == "x86-cpu" and doc["latency"] == "device"
    scored = [c for c in doc["candidates"] if c["state"] == "complete"]
    assert scored and doc["front"]
    for c in doc["candidates"]:
        assert {"trial", "choice", "label", "recipe", "state", "worker", "on_front"} <= set(c)
        if c["state"] == "complete":
            assert c["accuracy"] is not None and c["size_bytes"] > 0 and c["measured"] in ("bench", "screen")
            assert set(c["meets"]) == {"max_size_kb", "max_accuracy_drop"}
            assert len(c["constraints"]) == len(CONSTRAINTS)  # one per budget key and the status
        else:
            assert c["pruned"]
    pruned_too = [c for c in doc["candidates"] if c["choice"]["sparsity"] == 0.5 and c.get("duplicate_of") is None]
    assert len(pruned_too) == 2 and "prune" in pruned_too[1]["cached_stages"]  # the shared prefix came from the cache
    best = doc["best"]
    pick = next(c for c in doc["candidates"] if c["trial"] == best["trial"])
    assert pick["meets_all"] and pick["measured"] == "bench" and best["size_reproduced"]
    # candidates: the stages chose on half of val, the other half ranked them; best/: the same rows, read on test
    from edgeopt.data.loaders import load_dataset

    digits = load_dataset("digits")
    seen = json.loads((out / "candidates" / f"trial-{pick['trial']:04d}" / "manifest.json").read_text())
    final = json.loads((out / "best" / "manifest.json").read_text())
    view, built = seen["source"]["dataset"], final["source"]["dataset"]
    assert view["selection_view"]["holdout"] == 0.5 and built["selection_view"]["test_split"] == "the data set's"
    assert view["samples"]["val"] + view["samples"]["test"] == len(digits.x_val)
    assert built["samples"]["val"] == view["samples"]["val"] and built["samples"]["test"] == len(digits.x_test)
    assert all(s["from_cache"] for s in final["cache"]["stages"])  # the candidate's own stages: the same artifact
    src = final["guard"]["reference"]
    assert seen["guard"]["reference"]["test"] == pick["source_accuracy"]  # drop measured on ranked rows
    assert doc["stages_validated_on"].startswith("0.5 of the validation split")
    assert src["test"] == best["test"]["source_accuracy"]
    assert best["test"]["accuracy"] is not None and best["test"]["p90_ms"] > 0
    html = (out / "report.html").read_text()
    assert "<svg" in html and "<title>trial" in html and "http://" not in html.replace("http://www.w3.org", "")
    # the user's rerun of the winner's recipe builds the same artifact
    again = tmp_path / "again"
    rerun = run([*EDGEOPT, "compress", str(tiny_model_path), "--data", "digits", "--recipe",
                 str(out / "best" / "recipe.yaml"), "--out", str(again), "--allow-drop", "--no-cache"])
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    manifest = json.loads((again / "manifest.json").read_text())
    built = [a for a in manifest["artifacts"] if a["format"] in ("tflite", "onnx")]
    assert [a["size_bytes"] for a in built] == [pick["size_bytes"]]
    # rerunning the finished study runs no trial and writes the same answer
    proc2 = run(command(tiny_model_path, tmp_path, out, EASY, NO_STUDENT, 4))
    assert proc2.returncode == 0, proc2.stderr[-2000:]
    doc2 = json.loads((out / "front.json").read_text())
    assert [c["trial"] for c in doc2["candidates"]] == [c["trial"] for c in doc["candidates"]]
    assert doc2["best"]["trial"] == best["trial"]


@pytest.mark.slow
def test_kill_mid_study_then_rerun_continues(tmp_path, tiny_model_path):
    import optuna
    from optuna.trial import TrialState

    out = tmp_path / "out"
    url = f"sqlite:///{out / 'study.db'}"
    args = command(tiny_model_path, tmp_path, out, IMPOSSIBLE, WIDE, 8)
    err = tmp_path / "first.stderr"
    with err.open("w") as sink:  # the child keeps its own copy of the descriptor
        first = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=sink, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            time.sleep(0.2)
            if first.poll() is not None:
                pytest.fail(f"optimize ended (rc {first.returncode}) before it could be interrupted: "
                            f"{err.read_text()[-1500:]}")
            try:
                trials = trials_of(url)
            except (KeyError, Exception):  # noqa: BLE001 — the study is not created yet
                continue
            done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
            if done and any(t.state == TrialState.RUNNING for t in trials):
                break
        else:
            pytest.fail("no trial finished in time")
    finally:
        if first.poll() is None:  # (an early exit is the failure to report, not a missing process group)
            os.killpg(first.pid, signal.SIGKILL)  # our own process group (start_new_session)
        first.wait()
    before = {t.number: t.user_attrs.get("worker") for t in trials_of(url)
              if t.state in (TrialState.COMPLETE, TrialState.PRUNED)}
    proc = run(args)
    assert proc.returncode == 1, proc.stderr[-3000:]  # impossible budgets: ran to the end, no best
    after = trials_of(url)
    finished = {t.number: t.user_attrs.get("worker") for t in after
                if t.state in (TrialState.COMPLETE, TrialState.PRUNED)}
    assert all(finished[n] == w for n, w in before.items())  # earlier trials kept, not rerun
    assert all(w.endswith(f":{first.pid}") for w in before.values())
    assert len(finished) >= 4 and len(finished) > len(before)
    killed = [t for t in after if t.state == TrialState.FAIL]
    assert len(killed) <= 1  # the one running at the kill (if the kill fell inside one): failed at restart
    for k in killed:  # ... and its choices retried (a kill while the sampler chose leaves some: those are kept)
        assert any(k.params.items() <= t.params.items() for t in after if t.number > k.number), \
            (k.number, k.params, [(t.number, t.state.name, t.params) for t in after])
    assert optuna.load_study(study_name="edgeopt", storage=url).get_trials(states=(TrialState.RUNNING,)) == []


@pytest.mark.slow
def test_two_workers_share_a_postgres_study(tmp_path, tiny_model_path, postgres):  # noqa: F811
    from optuna.trial import TrialState

    url = postgres.url
    shared = ["--storage", url, "--study", "shared"]
    outs = [tmp_path / "w0", tmp_path / "w1"]
    workers = []
    sql_url = url.replace("postgresql://", "postgresql+psycopg://")
    for i, out in enumerate(outs):
        workers.append(subprocess.Popen(command(tiny_model_path, tmp_path, out, EASY, WIDE, 12, *shared,
                                                "--worker"),
                                        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        deadline = time.monotonic() + 300
        while i == 0 and time.monotonic() < deadline:  # the first creates the tables and the study
            time.sleep(0.2)
            if workers[0].poll() is not None:
                break
            try:
                trials_of(sql_url, "shared")
                break
            except Exception:  # noqa: BLE001 — not created yet
                continue
    results = [w.communicate(timeout=900) for w in workers]
    for w, (so, se) in zip(workers, results, strict=True):
        assert w.returncode == 0, se[-3000:]
        assert "worker: ran" in so
    trials = trials_of(sql_url, "shared")
    ran = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
           and (t.user_attrs.get("record") or {}).get("duplicate_of") is None]
    by = {w.pid: [t.number for t in ran if t.user_attrs["worker"].endswith(f":{w.pid}")] for w in workers}
    assert all(by.values()), by  # both workers contributed
    for t in ran:  # each trial's pipeline ran in exactly one worker
        homes = [o for o in outs if (o / "candidates" / f"trial-{t.number:04d}").is_dir()]
        assert len(homes) == 1, (t.number, homes)
    final = tmp_path / "final"
    proc = run(command(tiny_model_path, tmp_path, final, EASY, WIDE, 12, *shared))
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((final / "front.json").read_text())
    assert {c["trial"] for c in doc["candidates"]} == {t.number for t in trials
                                                      if t.state in (TrialState.COMPLETE, TrialState.PRUNED)}
    assert (final / "best" / "recipe.yaml").is_file() and not (final / "candidates").exists()
    assert len({c["worker"] for c in doc["candidates"]}) >= 2
