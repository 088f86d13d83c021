"""What runs on the device: ``runner.py`` (stand-alone) and, beside it, the stand-alone runtime files."""

from __future__ import annotations

import shutil
from pathlib import Path

RUNNER = Path(__file__).with_name("runner.py")


def ship_runner(folder: Path) -> Path:
    """Copy the runner and the runtime files it may import (the registry's stand-alone ones) into ``folder``."""
    from edgeopt.runtimes import standalone

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for path in (RUNNER, *(Path(rt.module().__file__) for rt in standalone())):
        shutil.copy(path, folder / path.name)
    return folder


def probe_spec(runtimes: list[str] = (), packages: bool = True, gpu: bool = False) -> dict:
    """The ``--probe`` argument: the stand-alone runtimes' packages, and the runtime files to load for real."""
    from edgeopt.runtimes import standalone

    spec: dict = {"runtimes": list(runtimes), "gpu": gpu}
    if packages:
        spec["packages"] = {mod: dist for rt in standalone() for mod, dist in rt.packages.items()}
    return spec
