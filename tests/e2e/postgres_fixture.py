"""A real, throwaway PostgreSQL server on 127.0.0.1 for the tests where a database is the point (several
``edgeopt optimize --worker`` processes sharing one Optuna study): its own data folder and socket folder under
the test's tmp, a free high port, trust authentication for loopback only; stopped (by its pid file, through
pg_ctl) and removed after. Skipped, with the reason, where PostgreSQL's server binaries are absent.

PostgreSQL refuses to run as root; as root (CI containers) the server runs as the ``postgres`` system user
that Debian's package creates, and only the folder made for it is handed over."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

USER = "edgeopt"


def server_bin() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<major>/bin."""
    found = shutil.which("initdb") or shutil.which("pg_ctl")
    if found and (Path(found).resolve().parent / "initdb").exists():
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
                      if p.parent.parent.name.isdigit() else 0)
    return versions[-1].parent if versions else None


@dataclass
class Postgres:
    port: int
    folder: Path
    bin: Path
    run_as: list[str]

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        subprocess.run([*self.run_as, str(self.bin / "pg_ctl"), "-D", str(self.folder / "db"), "-m", "fast", "-w",
                        "stop"], capture_output=True, timeout=60)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_postgres(folder: Path) -> Postgres:
    bin_dir = server_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server not installed (initdb, pg_ctl): apt-get install postgresql")
    run_as: list[str] = []
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        try:
            import pwd

            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as (PostgreSQL "
                        "refuses root): apt-get install postgresql creates it")
        run_as = ["runuser", "-u", "postgres", "--"]
        os.chown(folder, pw.pw_uid, pw.pw_gid)
        folder.chmod(0o700)
        for parent in folder.parents:  # the server user must be able to reach its folder
            if parent == Path("/"):
                break
            if parent.stat().st_mode & 0o011 != 0o011:
                parent.chmod(parent.stat().st_mode | 0o011)
    elif getpass.getuser() == "":
        pytest.skip("no user name to run PostgreSQL as")
    init = subprocess.run([*run_as, str(bin_dir / "initdb"), "-D", str(folder / "db"), "-A", "trust", "-U", USER,
                           "--no-sync"], capture_output=True, text=True, timeout=120)
    if init.returncode:
        pytest.skip(f"initdb failed here: {(init.stderr or init.stdout).strip().splitlines()[-1:]}")
    port = _free_port()
    start = subprocess.run([*run_as, str(bin_dir / "pg_ctl"), "-D", str(folder / "db"), "-l", str(folder / "log"),
                            "-o", f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off", "-w", "-t", "60", "start"],
                           capture_output=True, text=True, timeout=90)
    if start.returncode:
        log = (folder / "log").read_text(errors="replace") if (folder / "log").exists() else start.stderr
        raise RuntimeError(f"PostgreSQL did not start: {log.strip().splitlines()[-3:]}")
    return Postgres(port=port, folder=folder, bin=bin_dir, run_as=run_as)


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    server = start_postgres(tmp_path_factory.mktemp("postgres"))
    yield server
    server.stop()
