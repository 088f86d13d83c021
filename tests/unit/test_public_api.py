"""The public API's names stay the functions they are, however often they are called: ``edgeopt.compress``'s own
first call imports the ``edgeopt.compress`` module, which rebinds the package attribute of the same name."""

from __future__ import annotations

import importlib

import pytest

from edgeopt.errors import UsageError


@pytest.mark.parametrize("name", ["compress", "optimize"])
def test_public_function_survives_its_module_being_imported(name):
    import edgeopt

    importlib.import_module(f"edgeopt.{name}")  # what the function's first call does
    assert callable(getattr(edgeopt, name))


def test_compress_called_twice_in_one_process_runs_both_times(tmp_path):
    import edgeopt

    for i in range(2):  # a missing model is refused by compress itself (UsageError), not by Python (TypeError)
        with pytest.raises(UsageError, match="missing.keras"):
            edgeopt.compress(tmp_path / "missing.keras", "digits", tmp_path / f"out{i}")
