"""A real OpenSSH server on 127.0.0.1 for the SSH target tests: throwaway host and user keys, a high
port, key authentication only. The "device" is this machine; its Python is the test interpreter."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

SSHD = Path("/usr/sbin/sshd")


@dataclass
class Sshd:
    port: int
    user: str
    folder: Path
    identity: Path
    known_hosts: Path
    host_key_line: str
    proc: subprocess.Popen

    def target_file(self, path: Path, name: str = "loopback-pi", **connection) -> Path:
        """A target .yaml that reaches this server, for the runtimes this machine has."""
        conn = {"kind": "ssh", "host": "127.0.0.1", "port": self.port, "user": self.user,
                "identity_file": str(self.identity), "known_hosts_file": str(self.known_hosts),
                "python": sys.executable, "connect_timeout_s": 5, "remote_tmp": str(self.folder / "remote")}
        conn.update(connection)
        spec = {"name": name, "arch": "x86_64", "cores": 2, "threads": 1, "runtimes": ["litert", "onnxruntime"],
                "run": {"warmup": 1, "min_runs": 5, "min_seconds": 0.05, "max_seconds": 1, "timeout_s": 120, "launches": 2},
                "connection": conn}
        path.write_text(yaml.safe_dump(spec))
        return path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def start_sshd(folder: Path) -> Sshd:
    if not SSHD.exists() or shutil.which("ssh") is None or shutil.which("scp") is None:
        pytest.skip("OpenSSH server/client not installed (/usr/sbin/sshd, ssh, scp): apt-get install openssh-server")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "remote").mkdir(exist_ok=True)
    _keygen(folder / "host_key")
    _keygen(folder / "user_key")
    (folder / "authorized_keys").write_text((folder / "user_key.pub").read_text())
    (folder / "authorized_keys").chmod(0o600)
    port = _free_port()
    host_pub = (folder / "host_key.pub").read_text().split()
    line = f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n"
    (folder / "known_hosts").write_text(line)
    config = folder / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {folder / 'host_key'}", f"PidFile {folder / 'sshd.pid'}",
        f"AuthorizedKeysFile {folder / 'authorized_keys'}", "PubkeyAuthentication yes", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", "PermitRootLogin prohibit-password",
        "Subsystem sftp internal-sftp", "LogLevel VERBOSE", "",
    ]))
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory sshd insists on as root
    log = open(folder / "sshd.log", "w")  # noqa: SIM115 — lives as long as the server
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"sshd exited {proc.returncode}: {(folder / 'sshd.log').read_text()[-800:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("sshd did not start listening within 10 s")
    return Sshd(port=port, user=getpass.getuser(), folder=folder, identity=folder / "user_key",
                known_hosts=folder / "known_hosts", host_key_line=line, proc=proc)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()
