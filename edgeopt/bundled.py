"""Where the bundled data folders are: the repository's own (``targets/``, ``sample_models/`` in a checkout or an
editable install) or the copies a built wheel carries under ``edgeopt/_bundled/`` (setup.py puts them there)."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def folder(name: str) -> Path:
    """``targets`` or ``sample_models``: the checkout's folder when there is one, else the wheel's copy."""
    checkout = _PACKAGE.parent / name
    if checkout.is_dir():
        return checkout
    return _PACKAGE / "_bundled" / name
