"""The gate judges, never writes: nothing in verdict/ imports a writer or a printer or calls one, and
gate.py does no I/O at all (reading the inputs is verdict/inputs.py's and budgets.load_budgets' job)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import edgeopt.verdict

VERDICT = Path(edgeopt.verdict.__file__).parent
WRITERS = ("edgeopt.atomic", "edgeopt.render", "edgeopt.cli", "rich", "typer", "click")
WRITE_CALLS = {"print", "write_text", "write_bytes", "write_json", "mkdir", "touch", "unlink", "rmdir", "pprint"}
IO_MODULES = ("os", "sys", "io", "pathlib", "json", "yaml", "shutil", "tempfile", "subprocess", "logging",
              "edgeopt.verdict.inputs")
IO_NAMES = {"open", "read_text", "read_bytes", "load_report", "load_budgets", "load_input", "Path"}


def imports(tree: ast.AST) -> list[str]:
    """Every module a file imports, at the top or inside a function, with ``module.name`` for from-imports."""
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return out


def called(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            names.add(f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else "")
    return names


def used(tree: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | called(tree)


def writes(source: str) -> list[str]:
    """What in this source imports a writer/printer or calls one (empty: it writes and prints nothing)."""
    tree = ast.parse(source)
    bad = [m for m in imports(tree) if any(m == w or m.startswith(w + ".") for w in WRITERS)]
    bad += sorted(called(tree) & WRITE_CALLS)
    bad += [n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr in ("stdout", "stderr")]
    return bad


def does_io(source: str) -> list[str]:
    tree = ast.parse(source)
    bad = [m for m in imports(tree) if any(m == w or m.startswith(w + ".") for w in IO_MODULES)]
    bad += [m.rsplit(".", 1)[-1] for m in imports(tree) if m.rsplit(".", 1)[-1] in IO_NAMES]
    return writes(source) + bad + sorted(used(tree) & IO_NAMES)


@pytest.mark.parametrize("path", sorted(VERDICT.glob("*.py")), ids=lambda p: p.name)
def test_verdict_modules_import_and_call_no_writer_or_printer(path):
    assert writes(path.read_text()) == []


def test_gate_does_no_io_at_all():
    assert does_io((VERDICT / "gate.py").read_text()) == []


@pytest.mark.parametrize("source, found", [
    ("from edgeopt import atomic\n", "edgeopt.atomic"),
    ("def f():\n    from edgeopt.render.markdown import to_markdown\n", "edgeopt.render.markdown"),
    ("import rich.console\n", "rich.console"),
    ("def f(v):\n    print(v)\n", "print"),
    ("def f(p, t):\n    p.write_text(t)\n", "write_text"),
    ("import sys\nsys.stderr.write('x')\n", "stderr"),
])
def test_the_writer_check_catches_each_kind(source, found):
    assert found in writes(source)


@pytest.mark.parametrize("source, found", [
    ("from pathlib import Path\n", "pathlib"),
    ("import os\n", "os"),
    ("from edgeopt.verdict.budgets import Budgets, load_budgets\n", "load_budgets"),
    ("def f(p):\n    return open(p).read()\n", "open"),
    ("def f(p):\n    return p.read_text()\n", "read_text"),
])
def test_the_io_check_catches_each_kind(source, found):
    assert found in does_io(source)
