"""edgeopt.cache: one root for everything edgeopt can rebuild (sysroot, tuning state)."""

from pathlib import Path

from edgeopt import cache


def test_edgeopt_cache_names_the_root(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEOPT_CACHE", str(tmp_path / "a"))
    monkeypatch.setenv("EDGEOPT_CACHE_DIR", str(tmp_path / "b"))
    assert cache.root() == tmp_path / "a"


def test_the_tuners_old_variable_still_counts_when_the_new_one_is_unset(monkeypatch, tmp_path):
    monkeypatch.delenv("EDGEOPT_CACHE", raising=False)
    monkeypatch.setenv("EDGEOPT_CACHE_DIR", str(tmp_path / "b"))
    assert cache.root() == tmp_path / "b"


def test_default_is_under_home(monkeypatch, tmp_path):
    monkeypatch.delenv("EDGEOPT_CACHE", raising=False)
    monkeypatch.delenv("EDGEOPT_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache.root() == Path(tmp_path) / ".cache" / "edgeopt"


def test_sysroot_and_tuning_state_share_it(monkeypatch, tmp_path):
    from edgeopt.bench.devices.sysroot import sysroot_dir

    monkeypatch.setenv("EDGEOPT_CACHE", str(tmp_path))
    assert sysroot_dir() == tmp_path / "sysroot-aarch64"
