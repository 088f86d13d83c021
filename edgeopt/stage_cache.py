"""The stage cache: what a model stage made, kept by a content hash so a rerun (after kill -9, or another
candidate of `edgeopt optimize` sharing the first stages) takes it instead of training again.

A key chains: stage 1's key hashes the input model's bytes, stage k's the key of stage k-1; each also hashes
the data set's arrays (the train and validation splits a model stage reads — every split for data without a
validation split — fingerprinted once per run), the stage's name and config, the recipe's ``train:`` defaults
and the versions of edgeopt, TensorFlow, tf_keras, tfmot and Keras. The same first k stages of two recipes on
the same model and data so have the same k keys. One model stage run through the cache: stage_step.py.

An entry is ``cache.root()/stages/<key[:2]>/<key>/``: ``entry.json`` (stage, config, the manifest notes the
stage wrote, its guard figures, the sha256 of each file) and its files (``model.keras``; ``float_twin.keras``
after QAT). It is written in a temp folder ``stages/.entry-<pid>.<random>`` and renamed into place, so a
reader never sees half of one; a crash leaves only the temp folder, removed at the next start once its
owner is gone (out_folder.remove_dead_owners). An entry whose files do not match entry.json is dropped and
rebuilt. After each write, least recently used entries go until the cache is under its size limit
(``$EDGEOPT_CACHE_MAX_MB``, default 2048); entries this process used or wrote stay."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeopt import cache as cache_root
from edgeopt.atomic import current_umask
from edgeopt.out_folder import remove_dead_owners

log = logging.getLogger(__name__)

MAX_MB_ENV = "EDGEOPT_CACHE_MAX_MB"
DEFAULT_MAX_MB = 2048.0
ENTRY = "entry.json"
TEMP_PREFIX = ".entry-"
FORMAT = 1  # bump when an entry's layout changes: old entries then simply miss
PACKAGES = ("edgeopt", "tensorflow", "tf_keras", "tensorflow-model-optimization", "keras")


def versions() -> dict[str, str | None]:
    return cache_root.installed_versions(PACKAGES)


def _update_array(h, a) -> None:
    import numpy as np

    if isinstance(a, dict):  # several inputs: x_train.<input name>
        for k in sorted(a):
            h.update(f"[{k}]".encode())
            _update_array(h, a[k])
        return
    a = np.ascontiguousarray(a)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    if a.size:  # (a cast of an empty view raises: a data set without a validation split has one)
        h.update(memoryview(a).cast("B"))


def data_fingerprint(dataset, splits: tuple[str, ...] = ("train", "val", "test")) -> str:
    """sha256 of the ``splits``' arrays (dtype, shape and bytes) and the class count."""
    h = hashlib.sha256(f"classes={dataset.num_classes}".encode())
    for split in splits:
        for kind in ("x", "y"):
            h.update(f"|{kind}_{split}|".encode())
            _update_array(h, getattr(dataset, f"{kind}_{split}"))
    return h.hexdigest()


def path_digest(path: str | Path) -> str:
    """sha256 of a file's bytes, or of a folder's files (relative names and bytes, in sorted order)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        if path.is_dir():
            h.update(f"|{p.relative_to(path).as_posix()}|".encode())
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def model_files(config: Any):
    """Model files and SavedModel folders a stage config names (a distill teacher or student): their bytes are
    part of the key, so a file changed under the same name misses."""
    if isinstance(config, dict):
        for v in config.values():
            yield from model_files(v)
    elif isinstance(config, list):
        for v in config:
            yield from model_files(v)
    elif isinstance(config, str) and len(config) < 4096:
        p = Path(config)
        if (p.suffix.lower() in MODEL_SUFFIXES and p.is_file()) or (p.is_dir() and (p / "saved_model.pb").is_file()):
            yield config


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def max_mb_from_env() -> float:
    from edgeopt.errors import UsageError

    raw = os.environ.get(MAX_MB_ENV)
    if not raw:
        return DEFAULT_MAX_MB
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise UsageError(f"{MAX_MB_ENV}={raw[:40]!r} is not a size in MB",
                         f"set {MAX_MB_ENV} to a number of megabytes, e.g. 2048 (0 keeps only this run's entries)")
    return value


@dataclass
class Entry:
    key: str
    folder: Path
    meta: dict[str, Any]

    def file(self, name: str) -> Path | None:
        return self.folder / name if name in self.meta.get("files", {}) else None


@dataclass
class StageCache:
    """The entries under ``folder`` (default ``cache.root()/stages``), at most ``max_mb`` megabytes of them."""

    folder: Path
    max_mb: float = DEFAULT_MAX_MB
    used: set[str] = field(default_factory=set)  # keys this process read or wrote: never evicted by it

    @classmethod
    def default(cls, max_mb: float | None = None) -> StageCache:
        return cls(cache_root.root() / "stages", max_mb_from_env() if max_mb is None else max_mb)

    def _folder_of(self, key: str) -> Path:
        return self.folder / key[:2] / key

    def sweep(self) -> list[Path]:
        """Temp folders of writers (or evictions) that died mid-way, removed."""
        return remove_dead_owners(self.folder, TEMP_PREFIX)

    def get(self, key: str) -> Entry | None:
        """The complete entry under ``key``, or None. One that does not check out (a file missing or not matching
        its sha256, entry.json unreadable) is removed, so the caller rebuilds it."""
        folder = self._folder_of(key)
        if not folder.is_dir():
            return None
        try:
            meta = json.loads((folder / ENTRY).read_text())
            files = meta["files"]
            if meta.get("key") != key or meta.get("format") != FORMAT or not isinstance(files, dict):
                raise ValueError("entry.json is not this key's")
            for name, digest in files.items():
                if Path(name).name != name or path_digest(folder / name) != digest:
                    raise ValueError(f"{name} does not match its sha256")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            log.warning("stage cache: entry %s is damaged (%s); it is removed and rebuilt", key[:8], e)
            self._remove(folder)
            return None
        now = time.time()
        os.utime(folder, (now, now))  # least recently *used* goes first
        self.used.add(key)
        return Entry(key, folder, meta)

    def put(self, key: str, files: dict[str, Path], meta: dict[str, Any]) -> Entry | None:
        """Store copies of ``files`` (entry name -> path) and ``meta`` under ``key``; the entry, or None when it
        could not be written (a full disk, a read-only cache: the run goes on without it)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.sweep()
        tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}.", dir=self.folder))
        try:
            digests = {}
            for name, src in files.items():
                shutil.copyfile(src, tmp / name)
                digests[name] = path_digest(tmp / name)
            meta = {**meta, "key": key, "format": FORMAT, "files": digests, "created": time.time()}
            (tmp / ENTRY).write_text(json.dumps(meta, indent=1) + "\n")
            os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp made it 0700
            dest = self._folder_of(key)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists():  # written meanwhile by another run (same key, same content): keep that one
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.rename(dest)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            log.warning("stage cache: could not write entry %s (%s); going on without it", key[:8], e)
            return None
        self.used.add(key)
        self.evict()
        return Entry(key, dest, meta)

    def entries(self) -> list[tuple[float, int, Path]]:
        """(last use, size in bytes, folder) of every entry."""
        out = []
        if not self.folder.is_dir():
            return out
        for shard in self.folder.iterdir():
            if shard.name.startswith(".") or not shard.is_dir():
                continue
            for entry in shard.iterdir():
                try:
                    size = sum(p.stat().st_size for p in entry.iterdir() if p.is_file())
                    out.append((entry.stat().st_mtime, size, entry))
                except OSError:
                    continue
        return out

    def evict(self) -> list[str]:
        """Remove least recently used entries until the cache is under ``max_mb``; keys in ``used`` stay."""
        entries = sorted(self.entries())
        total = sum(size for _, size, _ in entries)
        limit = self.max_mb * 1024 * 1024
        removed = []
        for _, size, folder in entries:
            if total <= limit:
                break
            if folder.name in self.used:
                continue
            self._remove(folder)
            total -= size
            removed.append(folder.name)
        if removed:
            log.info("stage cache: evicted %d least recently used entr%s to stay under %g MB", len(removed),
                     "y" if len(removed) == 1 else "ies", self.max_mb)
        return removed

    def _remove(self, folder: Path) -> None:
        """Renamed to a temp name first, then deleted: a crash mid-delete never leaves half an entry to read."""
        doomed = self.folder / f"{TEMP_PREFIX}{os.getpid()}.gone-{folder.name[:16]}"
        try:
            folder.rename(doomed)
        except OSError:
            doomed = folder
        shutil.rmtree(doomed, ignore_errors=True)


def fitted_fingerprint(dataset) -> str:
    """The fingerprint of what a model stage reads: the train and validation splits (the guard and every
    fine-tune's checks judge on validation); every split when there is no validation split (the guard then
    judges on test)."""
    return data_fingerprint(dataset, ("train", "val") if len(dataset.x_val) else ("train", "val", "test"))


@dataclass
class Chain:
    """One pipeline's keys: the cache, the input model's digest and the data's fingerprints (computed once):
    ``data`` of every split, ``fitted`` of the splits a model stage reads (fitted_fingerprint), so a pipeline
    that differs only in its test split (optimize's candidates score on a view whose test split is part of the
    validation split, its best/ on the real one: data.arrays.selection_view) shares its stages (no model stage reads the test split: tune's final figure
    in a pipeline is a validation one). ``key(previous, ...)`` is stage k's key from stage k-1's (``None`` for the
    first stage)."""

    cache: StageCache
    source: str
    data: str
    packages: dict[str, str | None] = field(default_factory=versions)
    fitted: str | None = None  # None: ``data``

    @classmethod
    def start(cls, cache: StageCache, model_path: str | Path, dataset) -> Chain:
        return cls(cache, path_digest(model_path), data_fingerprint(dataset), fitted=fitted_fingerprint(dataset))

    def key(self, previous: str | None, stage: str, cfg, train) -> str:
        config = cfg.model_dump(mode="json")
        data = self.fitted or self.data
        parts = {"format": FORMAT, "input": previous or f"model:{self.source}", "data": data, "stage": stage,
                 "config": config, "train": train.model_dump(mode="json"), "versions": self.packages,
                 "model_files": {p: path_digest(p) for p in sorted(set(model_files(config)))}}
        return hashlib.sha256(canonical(parts).encode()).hexdigest()
