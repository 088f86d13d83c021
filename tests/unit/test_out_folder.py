"""`compress --out` never loses a user's file: new, empty or an earlier edgeopt output only; --force replaces just
the files an earlier manifest lists; the input model, a file or `.` are refused before any work."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from edgeopt.errors import UsageError
from edgeopt.out_folder import check_out, make_staging, remove_stale_staging

REPO = Path(__file__).resolve().parents[2]
FAST = {"stages": [{"convert": {"tflite": ["fp32"], "onnx": []}}]}


def _compress(model, digits, out, **kw):
    from edgeopt.compress import compress
    from edgeopt.recipe import Recipe

    return compress(model, digits, out, recipe=Recipe.from_dict(FAST), **kw)


def test_a_users_folder_is_refused_and_untouched(tmp_path, tiny_model_path, digits):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "thesis.txt").write_text("years of work")
    os.chmod(out, 0o750)
    with pytest.raises(UsageError, match=f"{out}.*no edgeopt manifest") as e:
        _compress(tiny_model_path, digits, out, force=True)  # --force never widens to a user's folder
    assert "pick a new folder" in str(e.value)
    assert (out / "thesis.txt").read_text() == "years of work"
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert [p.name for p in tmp_path.iterdir()] == ["notes"], "a staging folder was left behind"


def test_new_empty_and_earlier_output_keep_their_modes(tmp_path, tiny_model_path, digits):
    out = tmp_path / "empty"
    out.mkdir()
    os.chmod(out, 0o751)
    manifest = _compress(tiny_model_path, digits, out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o751
    names = {a.path for a in manifest.artifacts} | {"manifest.json"}
    assert {p.name for p in out.iterdir()} == names
    _compress(tiny_model_path, digits, out)  # an earlier output with nothing else in it: replaced in place
    assert stat.S_IMODE(out.stat().st_mode) == 0o751 and {p.name for p in out.iterdir()} == names
    fresh = tmp_path / "new" / "deeper"
    _compress(tiny_model_path, digits, fresh)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o777 & ~umask  # not mkdtemp's 0700
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "new"]


def test_force_replaces_only_listed_files(tmp_path, tiny_model_path, digits):
    out = tmp_path / "out"
    _compress(tiny_model_path, digits, out)
    (out / "my_notes.md").write_text("keep me")
    with pytest.raises(UsageError, match="my_notes.md.*--force"):
        _compress(tiny_model_path, digits, out)
    before = (out / "manifest.json").stat().st_mtime_ns
    _compress(tiny_model_path, digits, out, force=True)
    assert (out / "my_notes.md").read_text() == "keep me"
    assert (out / "manifest.json").stat().st_mtime_ns != before


@pytest.mark.parametrize("case", ["dot", "file", "model_dir", "model_itself", "inside_savedmodel"])
def test_out_that_would_hit_the_input_is_refused_before_work(tmp_path, monkeypatch, case):
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    model = model_dir / "m.keras"
    model.write_bytes(b"PK")
    monkeypatch.chdir(tmp_path)
    out, words = {"dot": (".", "current folder"), "file": (model_dir / "notes.txt", "is a file"),
                  "model_dir": (model_dir, "contains the input model"),
                  "model_itself": (model, "contains the input model"),
                  "inside_savedmodel": (tmp_path / "sm" / "out", "inside the input model")}[case]
    if case == "file":
        out.write_text("x")
    if case == "inside_savedmodel":
        (tmp_path / "sm").mkdir()
        model = tmp_path / "sm"
    with pytest.raises(UsageError, match=words):
        check_out(out, model)


def test_cli_refuses_before_loading_anything(tmp_path, tiny_model_path):
    (tmp_path / "afile.txt").write_text("mine")
    done = subprocess.run([sys.executable, "-m", "edgeopt.cli", "compress", str(tiny_model_path), "--data",
                           "no-such-data", "--out", str(tmp_path / "afile.txt")], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120, cwd=tmp_path)
    assert done.returncode == 2 and "is a file" in done.stderr and "Traceback" not in done.stderr
    assert (tmp_path / "afile.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile.txt"]


def test_staging_of_a_dead_owner_is_removed(tmp_path):
    out = tmp_path / "out"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".out.edgeopt-{dead.pid}.abc123"
    stale.mkdir()
    (stale / "copy.keras").write_bytes(b"x")
    alive = tmp_path / f".out.edgeopt-{os.getpid()}.zzz"
    alive.mkdir()
    other = tmp_path / f".other.edgeopt-{dead.pid}.abc"
    other.mkdir()
    assert remove_stale_staging(out) == [stale]
    staging = make_staging(out)
    assert staging.name.startswith(f".out.edgeopt-{os.getpid()}.")
    assert alive.exists() and other.exists() and not stale.exists()
