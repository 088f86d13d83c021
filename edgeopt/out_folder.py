"""Where `compress` may write: never over a user's file.

``--out`` may be new, empty, or an earlier edgeopt output (it holds an edgeopt manifest.json). Anything else is a
UsageError before any work. An earlier output is replaced file by file — only the files its manifest lists,
manifest.json last — so files a user added there survive (and need ``--force``, which says "I know they are
there"). The staging folder carries its owner's PID, so one left by a killed run is removed at the next start."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from edgeopt.atomic import current_umask
from edgeopt.errors import UsageError

MANIFEST = "manifest.json"


def _listed(out: Path) -> set[str] | None:
    """Top-level names an earlier edgeopt manifest in ``out`` owns, or None when it is not an edgeopt output."""
    from edgeopt.core.safe_yaml import load_json

    try:
        raw = load_json(out / MANIFEST, "manifest", "")
    except UsageError:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("artifacts"), list) or "schema_version" not in raw:
        return None
    names = {MANIFEST}
    for a in raw["artifacts"]:
        rel = a.get("path") if isinstance(a, dict) else None
        if not isinstance(rel, str) or not rel:
            return None
        parts = Path(rel).parts
        if Path(rel).is_absolute() or ".." in parts:
            return None  # a manifest naming files outside its folder is not one edgeopt wrote
        names.add(parts[0])
    return names


def check_out_path(out: str | Path, model_path: str | Path, pick: str) -> Path:
    """``out`` as a Path if it is a place a command may make its output folder — not the current folder, a folder
    above it or the filesystem root, not the input model, a folder holding it or one inside it, not a file — else a
    UsageError ending in ``pick`` (the fix). Who owns a non-empty ``out`` is each command's own check."""
    raw = str(out)
    out = Path(out)
    here = Path.cwd().resolve()
    target = out.resolve()
    model = Path(model_path).resolve()
    if raw in (".", "..", "") or target == here or target in here.parents or target == Path(target.anchor):
        raise UsageError(f"--out {raw} is the current folder or one above it", pick)
    if target == model or target in model.parents:
        raise UsageError(f"--out {out} is or contains the input model {model_path}", pick)
    if model.is_dir() and model in target.parents:
        raise UsageError(f"--out {out} is inside the input model folder {model_path}", pick)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder", pick)
    return out


def check_out(out: str | Path, model_path: str | Path, force: bool = False) -> Path:
    """``out`` if compress may write there, else a UsageError naming the folder and the fix (before any work)."""
    pick = "pick a new folder for --out (e.g. out/compressed)"
    out = check_out_path(out, model_path, pick)
    if not out.exists() or not any(out.iterdir()):
        return out
    owned = _listed(out)
    if owned is None:
        raise UsageError(f"--out {out} is not empty and holds no edgeopt manifest.json, so it is not an earlier "
                         "edgeopt output", f"{pick}, or empty that folder yourself")
    extra = sorted(p.name for p in out.iterdir() if p.name not in owned and not p.name.startswith(".manifest.json."))
    if extra and not force:
        raise UsageError(f"--out {out} holds files its manifest does not list ({', '.join(extra[:3])}"
                         f"{', ...' if len(extra) > 3 else ''})",
                         "pass --force to replace only the files of the earlier edgeopt output (the others stay), "
                         f"or {pick}")
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead_owners(parent: Path, prefix: str) -> list[Path]:
    """Delete the folders ``<prefix><pid>.<anything>`` in ``parent`` whose owner process is gone (a kill -9 leaves
    them); a live owner's folder, and every other name, stays."""
    removed = []
    if not parent.is_dir():
        return removed
    pattern = re.compile(rf"^{re.escape(prefix)}(?P<pid>\d+)\.[^./]+$")
    for p in parent.iterdir():
        m = pattern.match(p.name)
        if m and p.is_dir() and not p.is_symlink() and not _alive(int(m["pid"])):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def remove_stale_staging(out: Path) -> list[Path]:
    """Staging folders next to ``out`` whose owner is gone, removed."""
    return remove_dead_owners(out.parent if str(out.parent) else Path("."), f".{out.name}.edgeopt-")


def make_staging(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.edgeopt-{os.getpid()}.", dir=out.parent))


def swap_into_place(staging: Path, out: Path) -> None:
    """Move the finished staging folder to ``out`` (checked by check_out): a new or empty ``out`` becomes the
    staging folder (with the mode a plain mkdir would give, or the empty folder's own); an earlier output has
    its listed files replaced one by one, manifest.json last, and keeps its mode and any other files."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        mode = out.stat().st_mode & 0o7777 if out.exists() else 0o777 & ~current_umask()
        if out.exists():
            out.rmdir()
        os.chmod(staging, mode)  # mkdtemp made it 0700
        staging.rename(out)
        return
    old = _listed(out) or {MANIFEST}
    new = {p.name for p in staging.iterdir()}
    clash = sorted(n for n in new - old if (out / n).exists() or (out / n).is_symlink())
    if clash:
        raise UsageError(f"--out {out} holds {clash[0]}, which the earlier manifest does not list and this run "
                         "would write", f"move {out / clash[0]} away, or pick a new folder for --out")
    trash = Path(tempfile.mkdtemp(prefix=".old.", dir=staging))
    for name in sorted(new - {MANIFEST}):
        dest = out / name
        if dest.exists() or dest.is_symlink():
            dest.rename(trash / name)  # whatever it was (file, folder, link), it was this output's own
        (staging / name).rename(dest)
    for name in sorted(old - new):
        p = out / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    os.replace(staging / MANIFEST, out / MANIFEST)
    shutil.rmtree(staging, ignore_errors=True)
