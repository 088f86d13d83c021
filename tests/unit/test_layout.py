"""The package's shape (DESIGN.md "Layout"): no import cycles, one-way flow between rooms, files cut small."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "edgeopt"
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    mods = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """module -> edgeopt modules it imports anywhere (module level or inside functions); a module importing
    its own parent package does not count (Python runs the package's __init__ first either way)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
                names = [base, *(f"{base}.{a.name}" for a in node.names)]
            for name in names:
                target = _resolve(name, mods) if name.split(".")[0] == "edgeopt" else None
                if target and target != mod and not (mod.startswith(target + ".") and mods[target].name == "__init__.py"):
                    graph[mod].add(target)
    return graph


def test_the_walker_sees_imports_inside_functions():
    graph = import_graph()
    # the CLI imports the engine lazily, inside its commands
    assert "edgeopt.compress" in graph["edgeopt.cli.compress"]
    assert "edgeopt.bench.orchestrate" in graph["edgeopt.cli.bench"]


def test_no_import_cycles():
    try:
        tuple(graphlib.TopologicalSorter(import_graph()).static_order())
    except graphlib.CycleError as e:
        pytest.fail(f"import cycle: {' -> '.join(e.args[1])}")


@pytest.mark.parametrize("room, forbidden", [
    ("edgeopt.stages", ("edgeopt.bench", "edgeopt.verdict", "edgeopt.render", "edgeopt.cli")),
    ("edgeopt.train", ("edgeopt.bench", "edgeopt.verdict", "edgeopt.render", "edgeopt.stages", "edgeopt.cli")),
    ("edgeopt.models", ("edgeopt.bench", "edgeopt.verdict", "edgeopt.render", "edgeopt.stages", "edgeopt.cli")),
    ("edgeopt.runtimes", ("edgeopt.bench", "edgeopt.verdict", "edgeopt.render", "edgeopt.stages", "edgeopt.cli")),
    ("edgeopt.core", ("edgeopt.bench", "edgeopt.verdict", "edgeopt.render", "edgeopt.stages", "edgeopt.train",
                      "edgeopt.cli")),
    ("edgeopt.bench", ("edgeopt.stages", "edgeopt.train", "edgeopt.verdict", "edgeopt.render", "edgeopt.cli")),
    ("edgeopt.verdict", ("edgeopt.bench", "edgeopt.stages", "edgeopt.train", "edgeopt.render", "edgeopt.atomic",
                         "edgeopt.cli")),
    ("edgeopt.render", ("edgeopt.bench", "edgeopt.stages", "edgeopt.train", "edgeopt.atomic", "edgeopt.cli",
                        "edgeopt.optimize")),
    # the search drives the pipeline and the bench; what it found is rendered and written by the CLI
    ("edgeopt.optimize", ("edgeopt.cli", "edgeopt.render")),
])
def test_data_flows_one_way(room, forbidden):
    bad = sorted(f"{mod} imports {dep}" for mod, deps in import_graph().items()
                 if mod == room or mod.startswith(room + ".")
                 for dep in deps if any(dep == f or dep.startswith(f + ".") for f in forbidden))
    assert not bad, "\n".join(bad)


def test_files_are_cut_small():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"files over {MAX_LINES} lines (cut them by job): {long}"


def test_no_grab_bag_modules():
    assert not [p for p in PACKAGE.rglob("*.py") if p.stem in ("utils", "helpers", "misc", "common")]
