"""Public functions named like their modules: ``edgeopt.compress(...)`` and ``edgeopt.optimize(...)`` are functions
(edgeopt/__init__.py), but importing the submodule ``edgeopt.compress`` (or the package ``edgeopt.optimize``) — which
those functions do on their first call, and other modules do too — rebinds the package's name to the module.
``callable_module`` makes such a module call its function, so ``edgeopt.NAME(...)`` works whatever imported it
first (without it a second ``edgeopt.compress(...)`` in one process raised "'module' object is not callable")."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any


def callable_module(name: str, function: Callable[..., Any]) -> None:
    """Calling the module ``name`` (already in sys.modules: call this at its end) calls ``function``."""

    class CallableModule(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return function(*args, **kwargs)

    sys.modules[name].__class__ = CallableModule
