"""Runtime registry, built from the runtime files themselves.

Each runtime file (``litert.py``, ``onnxrt.py``, ``tf.py``) declares, once: ``NAME``, ``FORMATS`` (the artifact
formats it runs), ``PACKAGES`` (import name → distribution of the packages that provide it on a machine, in
the order it tries them), ``INSTALL_HINT`` and ``STANDALONE`` (True: numpy + its package only, so the on-device
runner can ship the file as it is). A runtime module exposes ``version()`` and ``load(path, threads, options)``
returning a Session with ``input_shape``, ``prepare(x)`` (float → input dtype), ``bind(xq)`` (set the input,
untimed), ``invoke()`` (the one timed call), ``invoke_prepared(xq)`` (bind + invoke + output) and ``run(x)``
(float batch in, float32 outputs out).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

FILES = ("litert", "onnxrt", "tf")  # the runtime files in this package; each declares its own facts


@dataclass(frozen=True)
class Runtime:
    name: str
    file: str  # the module's file name without .py (what a job names and what ships to a device)
    formats: tuple[str, ...]
    packages: dict[str, str]  # import name → distribution name
    install_hint: str
    standalone: bool

    def module(self) -> ModuleType:
        return importlib.import_module(f"{__name__}.{self.file}")

    def provider(self, modules: dict) -> str | None:
        """The first of this runtime's packages that ``modules`` (a probe's import name → version) has."""
        return next((p for p in self.packages if modules.get(p)), None)


def _entry(file: str) -> Runtime:
    mod = importlib.import_module(f"{__name__}.{file}")
    return Runtime(name=mod.NAME, file=file, formats=tuple(mod.FORMATS), packages=dict(mod.PACKAGES),
                   install_hint=mod.INSTALL_HINT, standalone=bool(mod.STANDALONE))


REGISTRY: dict[str, Runtime] = {rt.name: rt for rt in map(_entry, FILES)}


def get(name: str) -> Runtime:
    from edgeopt.errors import UsageError, nearest

    if name not in REGISTRY:
        raise UsageError(f"unknown runtime '{name}'{nearest(name, list(REGISTRY))}",
                         f"use one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


def module(name: str) -> ModuleType:
    return get(name).module()


def for_format(fmt: str) -> str:
    """The runtime that runs artifacts of format ``fmt`` (KeyError for a format none runs)."""
    for rt in REGISTRY.values():
        if fmt in rt.formats:
            return rt.name
    raise KeyError(fmt)


def formats() -> list[str]:
    return [f for rt in REGISTRY.values() for f in rt.formats]


def standalone() -> list[Runtime]:
    """The runtimes a device can run with only numpy and their package (the runner ships their files)."""
    return [rt for rt in REGISTRY.values() if rt.standalone]
