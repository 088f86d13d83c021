"""The study's storage URLs, resumption bookkeeping and sampler choice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgeopt.errors import UsageError
from edgeopt.optimize import study as st


def test_storage_urls(tmp_path):
    assert st.storage_url(None, tmp_path) == f"sqlite:///{tmp_path.resolve() / 'study.db'}"
    assert st.storage_url("postgresql://u@h:5/db", tmp_path) == "postgresql+psycopg://u@h:5/db"
    assert st.storage_url("postgres://u@h/db", tmp_path) == "postgresql+psycopg://u@h/db"
    assert st.storage_url("sqlite:///x.db", tmp_path) == "sqlite:///x.db"
    assert "secret" not in st.shown_url("postgresql+psycopg://u:secret@h/db")


@pytest.mark.parametrize("bad", ["mysql://u@h/db", "not a url", "sqlite://"])
def test_bad_storage_urls_are_usage_errors(tmp_path, bad):
    with pytest.raises(UsageError, match="--storage"):
        st.storage_url(bad, tmp_path)


def test_unreachable_server_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="cannot open the study storage"):
        st.open_study("postgresql+psycopg://nobody@127.0.0.1:1/none", "s", "tpe", 0)


def test_a_study_keeps_its_problem(tmp_path):
    url = st.storage_url(None, tmp_path)
    study = st.open_study(url, "s", "tpe", 0)
    st.check_same_problem(study, {"target": "rpi4", "data": "digits"})
    st.check_same_problem(st.open_study(url, "s", "nsga2", 0), {"target": "rpi4", "data": "digits"})
    with pytest.raises(UsageError, match="another target"):
        st.check_same_problem(study, {"target": "x86-cpu", "data": "digits"})


WORKER = """
import os, sys, time
from pathlib import Path
from edgeopt.optimize import study as st
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.005)
st.open_study(sys.argv[1], "shared", "tpe", 0)
print("opened")
"""


def test_workers_starting_together_on_a_fresh_database_all_open_the_study(tmp_path):
    # optuna/optuna#1092: without the retry, six workers released at once on a fresh SQLite file lost the race
    # to create its tables ("table alembic_version already exists") in every round tried (4 of 4)
    url, go = st.storage_url(None, tmp_path), tmp_path / "go"
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = [subprocess.Popen([sys.executable, str(script), url, str(go)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(6)]
    try:
        import time

        time.sleep(3.0)  # every worker has imported optuna and is waiting
        go.touch()
        results = [w.communicate(timeout=120) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    assert [out.strip() for out, _ in results] == ["opened"] * 6, [err[-300:] for _, err in results]
    assert [s.study_name for s in __import__("optuna").get_all_study_summaries(url)] == ["shared"]


def test_a_trial_left_running_by_a_dead_local_process_is_failed_and_queued_again(tmp_path):
    from optuna.trial import TrialState

    study = st.open_study(st.storage_url(None, tmp_path), "s", "tpe", 0)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    trial = study.ask({"x": __import__("optuna").distributions.CategoricalDistribution(["a", "b"])})
    host = st.worker_id().rpartition(":")[0]
    trial.set_user_attr("worker", f"{host}:{dead.stdout.strip()}")
    alive = study.ask()
    alive.set_user_attr("worker", st.worker_id())  # this process: left alone
    assert st.fail_dead_local_trials(study) == [trial.number]
    states = {t.number: t.state for t in study.get_trials()}
    assert states[trial.number] == TrialState.FAIL and states[alive.number] == TrialState.RUNNING
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.params for t in waiting] == [{"x": trial.params["x"]}]  # its choices, retried once


def test_samplers():
    from optuna.samplers import NSGAIISampler, TPESampler

    assert isinstance(st.make_sampler("tpe", 0), TPESampler)
    assert isinstance(st.make_sampler("nsga2", 0), NSGAIISampler)


def test_sqlite_file_is_in_the_output_folder(tmp_path):
    st.open_study(st.storage_url(None, tmp_path), "s", "tpe", 0)
    assert Path(tmp_path / "study.db").is_file()


@pytest.mark.parametrize("kind", ["tpe", "nsga2"])
def test_a_trial_names_its_worker_the_moment_it_exists(tmp_path, kind):
    # a worker killed while TPE samples (after Optuna made the trial, before any choice) used to leave a RUNNING
    # trial with no worker: no restart could tell it was its own, and it stayed RUNNING in the study for good
    study = st.open_study(st.storage_url(None, tmp_path), "s", kind, 0)
    study.ask()
    (trial,) = study.get_trials()
    assert trial.params == {} and trial.user_attrs == {"worker": st.worker_id()}


OPTUNA_LOGS = """
import logging, sys
from edgeopt.cli.logs import setup_logging
from edgeopt.optimize import study as st
if sys.argv[2] == "cli":
    setup_logging(logging.INFO, verbose=False)
st.open_study(sys.argv[1], "s", "tpe", 0)
try:
    raise ValueError("boom")
except ValueError:
    logging.getLogger("optuna.study._optimize").warning("Trial 0 failed", exc_info=True)
print(logging.getLogger("optuna").propagate)
"""


@pytest.mark.parametrize("how", ["cli", "api"])
def test_optuna_records_go_to_the_cli_log_file_not_the_terminal(tmp_path, how):
    """A failed trial's record (Optuna logs it with its traceback) is kept in the CLI's log file, off the
    terminal; used from Python, Optuna's records reach the caller's logging."""
    log = tmp_path / "edgeopt.log"
    proc = subprocess.run([sys.executable, "-c", OPTUNA_LOGS, st.storage_url(None, tmp_path), how],
                          capture_output=True, text=True, timeout=120, env={**__import__("os").environ,
                                                                             "EDGEOPT_LOG": str(log)})
    assert proc.returncode == 0, proc.stderr
    if how == "cli":
        assert proc.stdout.strip() == "False" and "Traceback" not in proc.stderr and "boom" not in proc.stderr
        assert "Trial 0 failed" in log.read_text() and "ValueError: boom" in log.read_text()
    else:
        assert proc.stdout.strip() == "True" and "Trial 0 failed" in proc.stderr  # Python's last-resort handler


def test_a_study_started_with_other_settings_names_the_nested_key_that_differs(tmp_path):
    """A rerun whose problem differs in one nested setting (a space key the first run did not have) is refused,
    naming that key and both values, not two dicts cut short."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}")
    first = {"model": "abc", "space": {"sparsity": [0.0, 0.5], "quant": ["int8"], "seed": 0}}
    st.check_same_problem(study, first)
    st.check_same_problem(study, first)  # the same problem: accepted
    with pytest.raises(UsageError, match=r"another space\.holdout \(\(not set\) instead of 0\.5\)"):
        st.check_same_problem(study, {**first, "space": {**first["space"], "holdout": 0.5}})
    with pytest.raises(UsageError, match=r"another space\.sparsity \(\[0\.0, 0\.5\] instead of \[0\.5\]\)"):
        st.check_same_problem(study, {**first, "space": {**first["space"], "sparsity": [0.5]}})
    with pytest.raises(UsageError, match=r"another model \('abc' instead of 'xyz'\)"):
        st.check_same_problem(study, {**first, "model": "xyz"})
