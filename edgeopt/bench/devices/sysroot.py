"""The aarch64 sysroot qemu-user runs the on-device runner in: where it is, how to build it once, and how
to start its Python (``devices/qemu.py`` runs jobs with it).

The sysroot (default ``<edgeopt.cache.root()>/sysroot-aarch64``: ``$EDGEOPT_CACHE`` or ``~/.cache/edgeopt``) holds
``bin/qemu-aarch64`` (static, from Debian 13's qemu-user: Debian 12's 7.2 segfaults in LiteRT and ONNX
Runtime), ``rootfs/`` (a Debian 12 arm64 minbase with python3, from ``debootstrap --foreign``, its
packages unpacked with ``dpkg-deb -x``: nothing runs as arm64 during set-up) and ``site/`` (aarch64
wheels of numpy, ai-edge-litert and onnxruntime, unzipped). ``ready.json`` is written last: a folder
without it is unfinished and ``setup`` resumes it. Emulated wall time is not device time: callers
report the runner's outputs (agreement with x86) and an estimated latency, never what this measured.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from edgeopt import atomic, cache
from edgeopt.bench.devices._proc import Finished, launch
from edgeopt.errors import UsageError

log = logging.getLogger(__name__)

SETUP_COMMAND = "edgeopt targets setup rpi4-emulated"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"  # the arm64 userland: Python 3.11, like Raspberry Pi OS 12
QEMU_SUITE = "trixie"  # where a qemu-user new enough for LiteRT/ORT (10.x) comes from
WHEELS = ("numpy", "ai-edge-litert", "onnxruntime")
WHEEL_PLATFORMS = ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux2014_aarch64")  # glibc 2.36 here


def sysroot_dir(target=None) -> Path:
    configured = target.connection.sysroot if target is not None else None
    return Path(configured).expanduser() if configured else cache.root() / "sysroot-aarch64"


def ready_info(root: Path) -> dict | None:
    """The set-up record if the sysroot at ``root`` is complete, else None."""
    stamp = root / "ready.json"
    if not stamp.is_file() or not (root / "bin" / "qemu-aarch64").is_file():
        return None
    try:
        return json.loads(stamp.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def require(root: Path) -> dict:
    info = ready_info(root)
    if info is None:
        raise UsageError(f"the aarch64 sysroot {root} is not built", f"run `{SETUP_COMMAND}` once (about 2 minutes)")
    return info


def python_command(root: Path, qemu_cpu: str | None = None) -> list[str]:
    cmd = [str(root / "bin" / "qemu-aarch64")]
    if qemu_cpu:
        cmd += ["-cpu", qemu_cpu]
    return cmd + ["-L", str(root / "rootfs"), str(root / "rootfs" / "usr" / "bin" / "python3")]


def environment(root: Path) -> dict[str, str]:
    """A clean environment for the emulated Python: only the wheels folder on its path."""
    env = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "TMPDIR", "TZ")}
    env.update(PATH="/usr/bin:/bin", PYTHONPATH=str(root / "site"), PYTHONNOUSERSITE="1", PYTHONWARNINGS="ignore",
               TF_CPP_MIN_LOG_LEVEL="2")
    return env


# --- set-up -------------------------------------------------------------------------------------------

def setup(root: Path | None = None, force: bool = False, progress: Callable[[str], None] | None = None) -> dict:
    """Build the sysroot at ``root`` (idempotent: a finished one is left alone unless ``force``)."""
    root = Path(root or sysroot_dir())
    say = progress or (lambda msg: log.info("%s", msg))
    if not force and (info := ready_info(root)):
        say(f"sysroot already built at {root}")
        return info
    if force and root.exists():
        shutil.rmtree(root)
    _check_tools()
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    (root / "ready.json").unlink(missing_ok=True)
    steps = [("qemu-aarch64 from Debian 13's qemu-user", _fetch_qemu), ("arm64 Python (debootstrap)", _build_rootfs),
             ("aarch64 wheels", _install_wheels), ("byte-compiling", _compile), ("smoke test", _smoke)]
    info: dict = {}
    for i, (what, step) in enumerate(steps, 1):
        say(f"[{i}/{len(steps)}] {what}")
        t = time.monotonic()
        info.update(step(root) or {})
        log.debug("%s took %.1f s", what, time.monotonic() - t)
    info["setup_s"] = round(time.monotonic() - t0, 1)
    info["root"] = str(root)
    atomic.write_json(root / "ready.json", info)
    say(f"sysroot ready at {root} in {info['setup_s']:.0f} s")
    return info


def _check_tools() -> None:
    missing = [t for t in ("apt-get", "dpkg-deb", "debootstrap") if shutil.which(t) is None
               and not Path("/usr/sbin", t).exists()]
    if missing:
        raise UsageError(f"building the aarch64 sysroot needs {', '.join(missing)}",
                         "on Debian/Ubuntu: apt-get install debootstrap (dpkg and apt come with the system)")


def _run(cmd: list[str], what: str, timeout: float = 900, **kw) -> Finished:
    proc = launch(cmd, timeout, **kw)
    if proc.timed_out:
        raise UsageError(f"{what} timed out after {timeout:.0f} s", "check the network to the package mirrors and "
                         f"re-run `{SETUP_COMMAND}`")
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise UsageError(f"{what} failed (exit {proc.returncode}): {' | '.join(tail)[:400]}",
                         f"fix the cause and re-run `{SETUP_COMMAND}` (finished steps are kept)")
    return proc


def _fetch_qemu(root: Path) -> dict:
    target = root / "bin" / "qemu-aarch64"
    if target.is_file():
        return {"qemu": _qemu_version(target)}
    mirror = os.environ.get("EDGEOPT_DEBIAN_MIRROR", DEBIAN_MIRROR)
    with tempfile.TemporaryDirectory(prefix="edgeopt-apt-", dir=root) as tmp:
        apt = Path(tmp)
        for sub in ("lists/partial", "cache/archives/partial"):
            (apt / sub).mkdir(parents=True)
        (apt / "sources.list").write_text(f"deb {mirror} {QEMU_SUITE} main\n")
        # A private apt state: nothing is installed and the system's sources stay untouched.
        opts = [f"-oDir::Etc::SourceList={apt / 'sources.list'}", "-oDir::Etc::SourceParts=/nonexistent",
                f"-oDir::State::Lists={apt / 'lists'}", f"-oDir::Cache={apt / 'cache'}",
                "-oDir::State::status=/dev/null", "-oDebug::NoLocking=1", "-oAPT::Sandbox::User=root", "-q"]
        _run(["apt-get", *opts, "update"], f"apt-get update ({QEMU_SUITE})")
        _run(["apt-get", *opts, "download", "qemu-user"], "apt-get download qemu-user", cwd=apt)
        deb = next(apt.glob("qemu-user_*.deb"))
        out = apt / "x"
        out.mkdir()
        _run(["sh", "-c", f"dpkg-deb --fsys-tarfile {shlex.quote(str(deb))} | "
              f"tar -x -C {shlex.quote(str(out))} ./usr/bin/qemu-aarch64"], "unpacking qemu-aarch64")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(out / "usr" / "bin" / "qemu-aarch64", target)
    target.chmod(0o755)
    return {"qemu": _qemu_version(target)}


def _qemu_version(qemu: Path) -> str:
    proc = launch([str(qemu), "--version"], 30)
    return proc.stdout.splitlines()[0].strip() if proc.returncode == 0 and proc.stdout else "unknown"


def _build_rootfs(root: Path) -> dict:
    rootfs = root / "rootfs"
    if (rootfs / "usr" / "bin" / "python3").exists():
        return {"suite": SUITE}
    work = root / "rootfs.partial"
    if work.exists():
        shutil.rmtree(work)
    mirror = os.environ.get("EDGEOPT_DEBIAN_MIRROR", DEBIAN_MIRROR)
    _run(["debootstrap", "--variant=minbase", "--foreign", "--arch=arm64", "--include=python3", SUITE, str(work),
          mirror], "debootstrap (arm64, --foreign)", timeout=1200)
    # --foreign unpacks only the base set; the rest (python3 and its libraries) is unpacked here, without
    # running any maintainer script: the emulated Python needs files, not a configured system.
    debs = sorted((work / "var" / "cache" / "apt" / "archives").glob("*.deb"))
    for deb in debs:
        _run(["dpkg-deb", "-x", str(deb), str(work)], f"unpacking {deb.name}")
        deb.unlink()
    work.rename(rootfs)
    return {"suite": SUITE}


def _install_wheels(root: Path) -> dict:
    site = root / "site"
    record = root / "wheels.json"
    if site.is_dir() and record.is_file():
        return json.loads(record.read_text())
    wheels = root / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    host = cache.installed_versions(WHEELS)
    base = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--only-binary=:all:",
            "--python-version", "3.11", "--implementation", "cp", "-d", str(wheels)]
    for p in WHEEL_PLATFORMS:
        base += ["--platform", p]
    pinned = [f"{d}=={v}" if v else d for d, v in host.items()]
    try:  # the host's versions, so a difference between x86 and ARM is the ISA's, not a release's
        _run(base + pinned, "pip download (aarch64 wheels, host versions)")
    except UsageError as e:
        log.warning("aarch64 wheels of the host's versions are not all available (%s); taking the newest", e.problem)
        _run(base + list(WHEELS), "pip download (aarch64 wheels)")
    partial = root / "site.partial"
    shutil.rmtree(partial, ignore_errors=True)
    names = []
    for whl in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(whl) as z:
            z.extractall(partial)
        names.append(whl.name)
    shutil.rmtree(site, ignore_errors=True)
    partial.rename(site)
    shutil.rmtree(wheels)
    info = {"wheels": names}
    atomic.write_json(record, info)
    return info


def _compile(root: Path) -> dict:
    # Byte-compiling under emulation costs minutes; .pyc files are portable within a Python minor version.
    if sys.version_info[:2] != (3, 11):
        return {}
    for folder in (root / "rootfs" / "usr" / "lib" / "python3.11", root / "site"):
        launch([sys.executable, "-m", "compileall", "-q", "-j", "0", str(folder)], 900)
    return {}


def _smoke(root: Path) -> dict:
    """The runner's probe under qemu, loading LiteRT and ONNX Runtime for real (Debian 12's qemu crashed here)."""
    from edgeopt.bench.ondevice import probe_spec, ship_runner

    with tempfile.TemporaryDirectory(prefix="edgeopt-smoke-", dir=root) as tmp:
        ship = ship_runner(Path(tmp))
        spec = probe_spec(["litert", "onnxrt"])
        proc = _run([*python_command(root, "cortex-a72"), str(ship / "runner.py"), "--probe", json.dumps(spec)],
                    "smoke test under qemu-aarch64", timeout=300, env=environment(root), cwd=ship)
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    broken = {f: rt["error"] for f, rt in found["runtimes"].items() if "error" in rt}
    if broken:
        raise UsageError(f"smoke test under qemu-aarch64 failed: {'; '.join(broken.values())[:400]}",
                         f"fix the cause and re-run `{SETUP_COMMAND}` (finished steps are kept)")
    if found.get("machine") != "aarch64":
        raise UsageError(f"the emulated Python reports machine {found.get('machine')!r}, not aarch64",
                         f"remove {root} and re-run `{SETUP_COMMAND}`")
    modules = found["modules"]
    info = {"machine": found["machine"], "python": found["python"], "numpy": modules.get("numpy"),
            "onnxruntime": modules.get("onnxruntime"), "ai_edge_litert": modules.get("ai_edge_litert")}
    return {"device": info}
