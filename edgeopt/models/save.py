"""Save a tf_keras model as a ``.keras`` file whose bytes depend on the model only: the same weights and config
give the same file on any run (the stage cache and resume after kill -9 compare them by sha256).

tf_keras writes the save time twice: in ``metadata.json`` (``date_saved``) and as every zip entry's timestamp.
Both are set to a fixed value here (the zip epoch, 1980-01-01), entries keep their order and compression."""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

from edgeopt import atomic

FIXED_DATE = "1980-01-01@00:00:00"
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def normalise_keras(src: Path, dest: Path) -> None:
    """Rewrite the .keras archive ``src`` into ``dest`` without its save times."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "metadata.json":
                meta = json.loads(data)
                if "date_saved" in meta:
                    meta["date_saved"] = FIXED_DATE
                data = json.dumps(meta).encode()
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_ZIP_TIME)
            fixed.compress_type = info.compress_type
            fixed.external_attr = 0o644 << 16
            fixed.create_system = 3  # unix, whatever machine wrote it
            zout.writestr(fixed, data)


def save_keras(model, path: str | Path) -> Path:
    """``model`` saved to ``path`` (.keras) reproducibly and atomically (a reader never sees half a file)."""
    path = Path(path)
    tmp = atomic.temp_path_for(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".keras", dir=path.parent)  # Keras wants .keras
    os.close(fd)
    raw = Path(name)
    try:
        model.save(raw)
        normalise_keras(raw, tmp)
        os.chmod(tmp, 0o666 & ~atomic.current_umask())
        os.replace(tmp, path)
    finally:
        raw.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    return path
