"""Where edgeopt keeps what it can rebuild: the aarch64 sysroot, tuning state, benchmark models.

One root for all of it: ``$EDGEOPT_CACHE``, else ``~/.cache/edgeopt``. ``$EDGEOPT_CACHE_DIR`` (the name the
tuner read before) is still honoured when ``$EDGEOPT_CACHE`` is unset, so existing set-ups keep their state.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "EDGEOPT_CACHE"
OLD_ENV = "EDGEOPT_CACHE_DIR"


def root() -> Path:
    configured = os.environ.get(ENV) or os.environ.get(OLD_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "edgeopt"
