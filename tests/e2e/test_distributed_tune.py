"""Distributed tuning: `edgeopt tune --chief` serves keras-tuner's oracle on 127.0.0.1, two `--worker`s run
the trials between them, and the chief retrains the best configuration and writes it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

EDGEOPT = [sys.executable, "-m", "edgeopt.cli"]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", COLUMNS="200")
for var in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
    ENV.pop(var, None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_chief_and_two_workers_split_the_trials(tmp_path):
    common = ["tune", "--data", "digits", "--zoo", "mlp", "--strategy", "random", "--max-trials", "6",
              "--max-epochs", "1", "--cache-dir", str(tmp_path / "cache"), "--oracle", f"127.0.0.1:{_free_port()}"]
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("chief", "w0", "w1")}  # noqa: SIM115
    procs = {"chief": subprocess.Popen([*EDGEOPT, *common, "--chief", "--out", str(tmp_path / "out")], env=ENV,
                                       stdout=logs["chief"], stderr=subprocess.STDOUT, cwd=tmp_path)}
    time.sleep(1)  # workers wait for the chief anyway (gRPC wait_for_ready); this only orders the logs
    for i in (0, 1):
        procs[f"w{i}"] = subprocess.Popen([*EDGEOPT, *common, "--worker", str(i)], env=ENV, stdout=logs[f"w{i}"],
                                          stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        codes = {name: p.wait(timeout=300) for name, p in procs.items()}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
        for f in logs.values():
            f.close()
    text = {name: (tmp_path / f"{name}.log").read_text() for name in procs}
    assert codes == {"chief": 0, "w0": 0, "w1": 0}, {n: t[-2000:] for n, t in text.items()}
    summary = json.loads((tmp_path / "out" / "tuning.json").read_text())["tuning"]
    workers = [t["worker"] for t in summary["trials"] if t["status"] == "COMPLETED"]
    # both workers ran trials (usually 3/3; a worker that starts late on a busy machine gets fewer)
    assert len(workers) == 6 and set(workers) == {"tuner0", "tuner1"}, workers
    assert summary["trials_run"] == 6 and summary["final"]["trained_on"] == "train+val"
    assert (tmp_path / "out" / "mlp_tuned.keras").is_file()
    assert "trials done" in text["w0"] and "trials done" in text["w1"]
