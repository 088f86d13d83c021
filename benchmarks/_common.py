"""Shared bits of the benchmark scripts: where results go and how they are written."""

from __future__ import annotations

import json
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
sys.path.insert(0, str(REPO))


def write_results(name: str, payload: dict, markdown: str) -> tuple[Path, Path]:
    from edgeopt import atomic

    payload = {"benchmark": name, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "machine": {"cpu": _cpu(), "python": platform.python_version()}, **payload}
    j = atomic.write_text(RESULTS / f"{name}.json", json.dumps(payload, indent=2) + "\n")
    m = atomic.write_text(RESULTS / f"{name}.md", markdown)
    return j, m


def _cpu() -> str:
    from edgeopt.bench.ondevice.runner import environment

    env = environment()
    return f"{env['cpu']} ({env['cores']} cores)"


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
