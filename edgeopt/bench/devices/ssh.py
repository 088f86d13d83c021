"""SSH devices: copy the runner, the inputs and one artifact at a time to a temporary folder on the
device, run it with the device's Python, fetch ``result.json`` + ``outputs.npy``, clean up.

System ``ssh``/``scp`` only, key authentication only (BatchMode: never a password prompt), host keys
checked against known_hosts (``accept_new_host_key: true`` opts into trust-on-first-use; a changed key
is always refused). Every remote argument is ``shlex.quote``-d. An ssh exit of 255 (the connection, not
the command) is retried once; a second one raises ``DeviceLost`` so the caller can mark what is left on
that device failed and carry on with the other targets.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import shutil
import time
from dataclasses import replace
from pathlib import Path

from edgeopt.bench.devices._proc import Finished, last_line, launch
from edgeopt.bench.ondevice import RUNNER, probe_spec, ship_runner
from edgeopt.bench.plan import Job, not_run
from edgeopt.errors import UsageError

log = logging.getLogger(__name__)

SSH_CONNECTION_ERROR = 255
RETRY_PAUSE_S = 1.0
REMOTE_DIR = re.compile(r"^/[A-Za-z0-9._/+-]*/edgeopt\.[A-Za-z0-9]{8}$")  # what `mktemp -d .../edgeopt.XXXXXXXX` prints


class DeviceLost(RuntimeError):
    """The SSH connection failed twice in a row: the device dropped off (or never answered)."""


def _quote_path(p: str) -> str:
    """shlex.quote, but a leading ``~/`` still means the remote home."""
    return '"$HOME"/' + shlex.quote(p[2:]) if p.startswith("~/") else shlex.quote(p)


class SSHDevice:
    """One device over SSH. ``probe`` asks what it has, ``run`` benchmarks one job (the first one makes the remote
    folder and copies the runner and the inputs into it), ``close`` removes the folder."""

    shares_host = False
    timed = True
    reports_environment = True
    agreement = "source"

    def __init__(self, name: str, connection) -> None:
        self.name = name
        self.conn = connection
        self.remote_dir: str | None = None
        self.lost: str | None = None  # why the device is gone: every later job fails with it
        self._jobs = 0

    @property
    def where(self) -> str:
        user = f"{self.conn.user}@" if self.conn.user else ""
        return f"{user}{self.conn.host}:{self.conn.port}"

    # --- ssh plumbing --------------------------------------------------------------------------------

    def _options(self) -> list[str]:
        c = self.conn
        opts = ["-o", "BatchMode=yes", "-o", "PreferredAuthentications=publickey", "-o", "PasswordAuthentication=no",
                "-o", "KbdInteractiveAuthentication=no",
                "-o", f"StrictHostKeyChecking={'accept-new' if c.accept_new_host_key else 'yes'}",
                "-o", f"ConnectTimeout={max(1, int(c.connect_timeout_s))}", "-o", "ServerAliveInterval=5",
                "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR"]
        if c.known_hosts_file:  # ssh splits this option's value on spaces (a list of files) unless it is quoted
            opts += ["-o", f'UserKnownHostsFile="{Path(c.known_hosts_file).expanduser()}"']
        if c.identity_file:
            opts += ["-i", str(Path(c.identity_file).expanduser()), "-o", "IdentitiesOnly=yes"]
        return opts

    def _destination(self) -> str:
        return f"{self.conn.user}@{self.conn.host}" if self.conn.user else str(self.conn.host)

    def _call(self, argv: list[str], timeout_s: float, what: str, stdin: str | None = None,
              retry: bool = True) -> Finished:
        """Run an ssh/scp command; a connection failure (255 or a timeout) is retried once, then DeviceLost."""
        for attempt in (1, 2):
            proc = launch(argv, timeout_s, stdin=stdin)
            if proc.timed_out:
                reason = f"{what} on {self.where} timed out after {timeout_s:g} s"
            else:
                if proc.returncode != SSH_CONNECTION_ERROR:
                    return proc
                reason = f"{what} on {self.where}: {proc.last_line() or 'connection failed'}"
                if _is_config_error(proc.stderr):
                    raise UsageError(*_explain(proc.stderr, self))
            if not retry or attempt == 2:
                raise DeviceLost(reason)
            log.warning("%s — retrying once", reason)
            time.sleep(RETRY_PAUSE_S)
        raise AssertionError("unreachable")

    def ssh(self, command: str, timeout_s: float, what: str, stdin: str | None = None,
            retry: bool = True) -> Finished:
        argv = ["ssh", *self._options(), "-p", str(self.conn.port), "--", self._destination(), command]
        return self._call(argv, timeout_s, what, stdin=stdin, retry=retry)

    def _remote(self, path: str) -> str:
        """``host:path`` for scp: only paths under the run folder edgeopt made (validated), quoted for the remote shell."""
        if not self.remote_dir or not (path == self.remote_dir or path.startswith(self.remote_dir + "/")) \
                or ".." in path.split("/"):
            raise DeviceLost(f"refusing to copy {path!r}: not inside the run folder edgeopt made")
        return f"{self._destination()}:{shlex.quote(path)}"

    def put(self, files: list[Path], remote_dir: str, timeout_s: float = 300) -> None:
        argv = ["scp", "-q", *self._options(), "-P", str(self.conn.port), "--", *map(str, files),
                self._remote(remote_dir) + "/"]
        proc = self._call(argv, timeout_s, "copying files to the device")
        if proc.returncode != 0:
            raise DeviceLost(f"scp to {self.where} failed: {proc.last_line()}")

    def get(self, remote_paths: list[str], local_dir: Path, timeout_s: float = 300) -> bool:
        """Fetch files; False (not an error) when one of them does not exist on the device."""
        argv = ["scp", "-q", *self._options(), "-P", str(self.conn.port), "--",
                *[self._remote(p) for p in remote_paths], str(local_dir) + "/"]
        return self._call(argv, timeout_s, "fetching results").returncode == 0

    # --- the verbs -----------------------------------------------------------------------------------

    def check(self) -> dict:
        """Connect and ask the device's Python what it has (the runner's probe, sent on stdin); bad
        configuration raises UsageError."""
        c = self.conn
        if c.host.startswith("-"):
            raise UsageError(f"target {self.name}: host {c.host!r} starts with '-'", "set a host name or address")
        if c.identity_file and not Path(c.identity_file).expanduser().is_file():
            raise UsageError(f"target {self.name}: identity file {c.identity_file} does not exist",
                             "point connection.identity_file (or the EDGEOPT_*_KEY variable) at your private key")
        if c.known_hosts_file and not Path(c.known_hosts_file).expanduser().is_file() and not c.accept_new_host_key:
            raise UsageError(f"target {self.name}: known_hosts file {c.known_hosts_file} does not exist",
                             f"add the device's key: ssh-keyscan -p {c.port} {c.host} >> {c.known_hosts_file} "
                             "(check its fingerprint), or set accept_new_host_key: true")
        spec = shlex.quote(json.dumps(probe_spec()))
        try:
            proc = self.ssh(f"{_quote_path(c.python)} - --probe {spec}", c.connect_timeout_s + 60, "probing the device",
                            stdin=RUNNER.read_text())
        except DeviceLost as e:
            raise UsageError(f"target {self.name}: cannot reach {self.where} ({e})",
                             "check the host, port and network, and that sshd runs there") from None
        if proc.returncode == 127:
            raise UsageError(f"target {self.name}: no Python at '{c.python}' on {self.where}",
                             "install python3 there or set connection.python to its interpreter")
        if proc.returncode != 0:
            raise UsageError(f"target {self.name}: the device's Python failed: {proc.last_line()}",
                             "check connection.python on the target")
        info = _probe_json(proc.stdout)
        if info is None:
            first = next((ln.strip() for ln in (proc.stdout or "").splitlines() if ln.strip()), "")
            raise UsageError(f"target {self.name}: device probe returned no JSON (first line: {first[:120]!r})",
                             "check that connection.python runs a plain Python there (no shell banner on stdout)")
        if not info["modules"].get("numpy"):
            raise UsageError(f"target {self.name}: numpy is not installed for {c.python} on {self.where}",
                             "on the device: pip install numpy")
        return info

    def probe(self, runtimes: set[str]) -> dict:
        """``check``, and that the device has a package for each of ``runtimes``."""
        from edgeopt.runtimes import get

        info = self.check()
        for name in sorted(runtimes):
            rt = get(name)
            if not rt.standalone or rt.provider(info["modules"]) is None:  # the runner ships stand-alone ones only
                raise UsageError(f"target {self.name}: the device has no {name} runtime for {self.conn.python}",
                                 f"on the device: {rt.install_hint} — or remove {name} from the target's runtimes")
        return {"device": info}

    def open(self, inputs: Path, timeout_s: float = 300) -> str:
        """Make the remote folder and copy the runner and the inputs into it; returns its path."""
        tmp = self.conn.remote_tmp.rstrip("/") or "/tmp"
        if not re.fullmatch(r"[A-Za-z0-9._/~+-]+", tmp) or ".." in tmp.split("/"):
            raise UsageError(f"target {self.name}: connection.remote_tmp {tmp!r} has characters edgeopt does not "
                             "send to a remote shell", "use a path of letters, digits and . _ - / (or ~/...)")
        proc = self.ssh(f"mkdir -p -- {_quote_path(tmp)} && mktemp -d {_quote_path(tmp + '/edgeopt.XXXXXXXX')}",
                        60, "making a folder on the device")
        if proc.returncode != 0 or not proc.stdout.strip():
            raise DeviceLost(f"cannot make a folder under {tmp} on {self.where}: {proc.last_line()}")
        made = proc.stdout.strip().splitlines()[-1].strip()
        if not REMOTE_DIR.match(made) or ".." in made.split("/"):
            raise DeviceLost(f"the device named {made[:80]!r} as its new folder, not an edgeopt.XXXXXXXX path")
        self.remote_dir = made
        local = ship_runner(Path(inputs).parent / f"ship-{self.name}")
        self.put([*sorted(local.iterdir()), Path(inputs)], self.remote_dir, timeout_s)
        return self.remote_dir

    def run(self, job: Job) -> dict:
        """Benchmark one job (its paths local) on the device; a lost device fails this job and every later one."""
        if self.lost:
            return not_run("failed", self.lost)
        if self.remote_dir is None:
            try:
                self.open(Path(job.data))
            except (DeviceLost, UsageError) as e:
                log.warning("%s: device lost before the first run: %s", self.name, e)
                self.lost = self.scrub(f"device lost before the first run: {e}")
                return not_run("failed", self.lost)
        self._jobs += 1
        try:
            raw = self._run(job, self._jobs - 1, Path(job.out))
        except (DeviceLost, UsageError) as e:
            log.warning("%s: device dropped: %s", self.name, e)
            self.lost = self.scrub(f"device dropped: {e}")
            return {"status": "failed", "error": self.lost}
        if isinstance(raw.get("error"), str):
            raw["error"] = self.scrub(raw["error"])
        return raw

    def scrub(self, text: str) -> str:
        """``text`` without the connection's user, host, port or key paths: results go into reports and PR
        comments, where the target's name is enough (the log on stderr keeps the details)."""
        c = self.conn
        secrets = [(str(Path(p).expanduser()), "<key>") for p in (c.identity_file, c.known_hosts_file) if p]
        secrets += [(str(p), "<key>") for p in (c.identity_file, c.known_hosts_file) if p]
        secrets += [(self.where, f"target {self.name}"), (self._destination(), f"target {self.name}")]
        secrets += [(str(c.user), "<user>")] if c.user else []
        secrets += [(str(c.host), "<host>")]
        for secret, mark in sorted(secrets, key=lambda sm: -len(sm[0])):
            if secret:
                text = text.replace(secret, mark)
        return re.sub(rf"\bport {re.escape(str(c.port))}\b|-p {re.escape(str(c.port))}\b", "port <port>", text)

    def _run(self, job: Job, index: int, local_out: Path) -> dict:
        assert self.remote_dir, "open() first"
        rdir = self.remote_dir
        artifact = Path(job.artifact)
        name = f"model-{index}{artifact.suffix}"  # a fixed, safe remote name whatever the local one is
        out = f"{rdir}/out-{index}"
        local_out.mkdir(parents=True, exist_ok=True)
        staged = local_out / "stage"
        staged.mkdir(exist_ok=True)
        job_file = replace(job, artifact=f"{rdir}/{name}", data=f"{rdir}/{Path(job.data).name}",
                           out=out).write(staged / f"job-{index}.json")
        link = staged / name
        shutil.copy(artifact, link)
        self.put([link, job_file], rdir)
        py = _quote_path(self.conn.python)
        limit = max(1, int(job.timeout_s))
        cmd = (f"cd {shlex.quote(rdir)} && if command -v timeout >/dev/null 2>&1; then exec timeout -k 5 {limit} "
               f"{py} runner.py {shlex.quote(job_file.name)}; else exec {py} runner.py {shlex.quote(job_file.name)}; fi")
        proc = self.ssh(cmd, job.timeout_s + 30, f"running {artifact.name}")
        fetched = self.get([f"{out}/result.json"], local_out)
        if fetched:
            try:
                raw = json.loads((local_out / "result.json").read_text())
            except (ValueError, UnicodeDecodeError):
                raw = {"status": "failed", "error": "the device wrote a result.json that is not JSON"}
            if not isinstance(raw, dict):
                raw = {"status": "failed", "error": "the device wrote a result.json that is not a JSON object"}
            if raw.get("outputs") and not self.get([f"{out}/{raw['outputs']}"], local_out):
                raw = {"status": "failed", "error": "the device wrote a result but its outputs could not be fetched"}
        elif proc.returncode == 124:
            raw = {"status": "failed", "error": f"timed out on the device after {limit} s (raise run.timeout_s)"}
        else:
            raw = {"status": "failed", "error": f"runner on {self.where} exited {proc.returncode}: "
                                                f"{proc.last_line() or 'no result'}"}
        try:  # the result is in hand: a failed clean-up must not lose it (the next run finds out if the device is gone)
            self.ssh(f"rm -rf -- {shlex.quote(out)} {shlex.quote(f'{rdir}/{name}')} "
                     f"{shlex.quote(f'{rdir}/{job_file.name}')}", 60, "cleaning up", retry=False)
        except (DeviceLost, UsageError) as e:
            log.warning("clean-up on %s failed: %s", self.where, e)
        return raw

    def close(self) -> None:
        if self.remote_dir and not self.lost and REMOTE_DIR.match(self.remote_dir):
            try:
                self.ssh(f"rm -rf -- {shlex.quote(self.remote_dir)}", 60, "removing the run folder", retry=False)
            except (DeviceLost, UsageError) as e:
                log.warning("could not remove %s on %s: %s", self.remote_dir, self.where, e)
            self.remote_dir = None


def _probe_json(stdout: str | None) -> dict | None:
    """The probe's JSON object (its last line), or None for no output, a shell banner or anything not a dict."""
    lines = [ln for ln in (stdout or "").strip().splitlines() if ln.strip()]
    try:
        info = json.loads(lines[-1]) if lines else None
    except ValueError:
        return None
    return info if isinstance(info, dict) and isinstance(info.get("modules"), dict) else None


_CONFIG_MARKERS = ("Permission denied", "Host key verification failed", "REMOTE HOST IDENTIFICATION HAS CHANGED",
                   "No ED25519 host key is known", "host key is known", "Could not resolve hostname",
                   "Connection refused", "No route to host", "Name or service not known")


def _is_config_error(stderr: str | None) -> bool:
    return any(m in (stderr or "") for m in _CONFIG_MARKERS)


def _explain(stderr: str, dev: SSHDevice) -> tuple[str, str]:
    """(problem, fix) for an ssh failure that retrying cannot help."""
    c, where = dev.conn, dev.where
    if "IDENTIFICATION HAS CHANGED" in stderr:
        return (f"target {dev.name}: the host key of {where} CHANGED since it was recorded",
                "if the device was re-imaged, remove the old key (ssh-keygen -R HOST) and add the new one; "
                "otherwise do not connect")
    if "Host key verification failed" in stderr or "host key is known" in stderr:
        kh = c.known_hosts_file or "~/.ssh/known_hosts"
        return (f"target {dev.name}: the host key of {where} is not in {kh}",
                f"check and add it (ssh-keyscan -p {c.port} {c.host} >> {kh}) or set accept_new_host_key: true")
    if "Permission denied" in stderr:
        return (f"target {dev.name}: {where} refused the key ({last_line(stderr)})",
                "add your public key to ~/.ssh/authorized_keys on the device or set connection.identity_file")
    return (f"target {dev.name}: cannot reach {where} ({last_line(stderr)})",
            "check the host, port and network, and that sshd runs there")
