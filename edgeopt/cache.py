"""Where edgeopt keeps what it can rebuild: the aarch64 sysroot, tuning state, benchmark models.

One root for all of it: ``$EDGEOPT_CACHE``, else ``~/.cache/edgeopt``. ``$EDGEOPT_CACHE_DIR`` (the name the
tuner read before) is still honoured when ``$EDGEOPT_CACHE`` is unset, so existing set-ups keep their state.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "EDGEOPT_CACHE"
OLD_ENV = "EDGEOPT_CACHE_DIR"


def installed_versions(dists) -> dict[str, str | None]:
    """The installed version of each distribution (None where it is absent): what a cached thing was built with,
    so a cache can tell when it no longer matches (the stage cache's keys, the sysroot's aarch64 wheels)."""
    from importlib import metadata

    out: dict[str, str | None] = {}
    for dist in dists:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def root() -> Path:
    configured = os.environ.get(ENV) or os.environ.get(OLD_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "edgeopt"
