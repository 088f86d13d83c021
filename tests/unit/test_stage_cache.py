"""The stage cache on its own: chained keys, atomic entries, damaged entries dropped, LRU eviction."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edgeopt.errors import UsageError
from edgeopt.stage_cache import ENTRY, TEMP_PREFIX, Chain, StageCache, data_fingerprint, max_mb_from_env
from edgeopt.stages import STAGES
from edgeopt.train.fit import TrainDefaults


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    arrays = {f"{k}_{s}": (rng.random((4, 3)).astype("float32") if k == "x" else rng.integers(0, 2, 4))
              for k in ("x", "y") for s in ("train", "val", "test")}
    return SimpleNamespace(num_classes=2, **arrays)


def _chain(tmp_path: Path, **kw) -> Chain:
    return Chain(StageCache(tmp_path / "stages"), source="a" * 64, data="d" * 64, packages={"tensorflow": "2.21.0"},
                 **kw)


def _cfg(name: str, **values):
    return STAGES[name].config.model_validate(values)


def test_keys_chain_and_change_with_what_they_hash(tmp_path):
    c = _chain(tmp_path)
    train = TrainDefaults()
    k1 = c.key(None, "prune", _cfg("prune", target_sparsity=0.5), train)
    k2 = c.key(k1, "quantize", _cfg("quantize", epochs=1), train)
    # the same first stage, then another second one: the first key is shared, the second is not
    assert c.key(None, "prune", _cfg("prune", target_sparsity=0.5), train) == k1
    assert c.key(k1, "quantize", _cfg("quantize", epochs=2), train) != k2
    assert c.key(None, "prune", _cfg("prune", target_sparsity=0.6), train) != k1
    assert c.key(None, "prune", _cfg("prune", target_sparsity=0.5), TrainDefaults(seed=1)) != k1
    other_data = Chain(c.cache, c.source, "e" * 64, c.packages)
    assert other_data.key(None, "prune", _cfg("prune", target_sparsity=0.5), train) != k1
    newer_tf = Chain(c.cache, c.source, c.data, {"tensorflow": "2.22.0"})
    assert newer_tf.key(None, "prune", _cfg("prune", target_sparsity=0.5), train) != k1
    other_model = Chain(c.cache, "b" * 64, c.data, c.packages)
    assert other_model.key(None, "prune", _cfg("prune", target_sparsity=0.5), train) != k1


def test_a_model_file_named_in_a_config_is_hashed_by_content(tmp_path):
    teacher = tmp_path / "teacher.keras"
    teacher.write_bytes(b"one")
    c = _chain(tmp_path)
    cfg = _cfg("distill", teacher=str(teacher))
    before = c.key(None, "distill", cfg, TrainDefaults())
    teacher.write_bytes(b"two")
    assert c.key(None, "distill", cfg, TrainDefaults()) != before


def test_data_fingerprint_sees_one_changed_value():
    a, b = _data(), _data()
    assert data_fingerprint(a) == data_fingerprint(b)
    b.y_test = b.y_test.copy()
    b.y_test[0] = 1 - b.y_test[0]
    assert data_fingerprint(a) != data_fingerprint(b)


def test_model_stages_are_keyed_on_the_splits_they_read(tmp_path):
    """Two data sets that differ only in their test split share their model stages' entries (they read train and
    val; tune's final figure in a pipeline is a validation one); without a validation split the guard judges on
    test, so then every stage is keyed on it."""
    cache, model = StageCache(tmp_path / "stages"), tmp_path / "m.keras"
    model.write_bytes(b"model")
    a, b = _data(), _data()
    b.y_test = 1 - b.y_test
    prune, tune = _cfg("prune", target_sparsity=0.5), _cfg("tune", max_trials=1, space={"width": {"choice": [0.25]}})
    ca, cb = Chain.start(cache, model, a), Chain.start(cache, model, b)
    assert ca.key(None, "prune", prune, TrainDefaults()) == cb.key(None, "prune", prune, TrainDefaults())
    assert ca.key(None, "tune", tune, TrainDefaults()) == cb.key(None, "tune", tune, TrainDefaults())
    b.x_val = a.x_val + 1  # another validation split: another entry
    assert Chain.start(cache, model, b).key(None, "prune", prune, TrainDefaults()) != \
        ca.key(None, "prune", prune, TrainDefaults())
    no_val_a, no_val_b = _data(), _data()
    for d in (no_val_a, no_val_b):
        d.x_val, d.y_val = d.x_val[:0], d.y_val[:0]
    no_val_b.y_test = 1 - no_val_b.y_test
    assert Chain.start(cache, model, no_val_a).key(None, "prune", prune, TrainDefaults()) != \
        Chain.start(cache, model, no_val_b).key(None, "prune", prune, TrainDefaults())


def _put(cache: StageCache, key: str, tmp_path: Path, size: int = 1000):
    src = tmp_path / f"src-{key[:6]}.keras"
    src.write_bytes(os.urandom(size))
    return cache.put(key, {"model.keras": src}, {"stage": "prune", "accuracy": 0.5, "notes": {}})


def test_put_then_get_returns_the_same_files(tmp_path):
    cache = StageCache(tmp_path / "stages")
    entry = _put(cache, "ab" + "1" * 62, tmp_path)
    assert entry.folder == tmp_path / "stages" / "ab" / ("ab" + "1" * 62)
    got = StageCache(cache.folder).get("ab" + "1" * 62)
    assert got is not None and got.meta["accuracy"] == 0.5
    assert (got.folder / "model.keras").read_bytes() == (tmp_path / "src-ab1111.keras").read_bytes()
    assert StageCache(cache.folder).get("cd" + "1" * 62) is None
    assert not [p for p in cache.folder.iterdir() if p.name.startswith(TEMP_PREFIX)]  # no temp folder left


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "drop entry.json", "bad json"])
def test_a_damaged_entry_is_dropped_not_read(tmp_path, damage):
    key = "ef" + "2" * 62
    entry = _put(StageCache(tmp_path / "stages"), key, tmp_path)
    model = entry.folder / "model.keras"
    if damage == "flip a byte":
        data = bytearray(model.read_bytes())
        data[10] ^= 0xFF
        model.write_bytes(bytes(data))
    elif damage == "truncate":
        model.write_bytes(model.read_bytes()[:100])
    elif damage == "drop entry.json":
        (entry.folder / ENTRY).unlink()
    else:
        (entry.folder / ENTRY).write_text("{not json")
    assert StageCache(tmp_path / "stages").get(key) is None
    assert not entry.folder.exists()  # removed, so the stage runs and writes it again
    assert _put(StageCache(tmp_path / "stages"), key, tmp_path) is not None


def test_a_killed_writers_temp_folder_is_never_read_and_is_swept(tmp_path):
    cache = StageCache(tmp_path / "stages")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    half = cache.folder / f"{TEMP_PREFIX}{pid}.abcd1234"
    half.mkdir(parents=True)
    (half / "model.keras").write_bytes(b"half")
    live = cache.folder / f"{TEMP_PREFIX}{os.getpid()}.live0000"  # a running writer's: stays
    live.mkdir()
    assert cache.entries() == []
    _put(cache, "12" + "3" * 62, tmp_path)
    assert not half.exists() and live.exists()


def test_eviction_is_least_recently_used_and_spares_this_runs_entries(tmp_path):
    folder = tmp_path / "stages"
    keys = [f"{i:02d}" + str(i) * 62 for i in range(1, 4)]
    earlier = StageCache(folder, max_mb=100)
    for i, key in enumerate(keys):
        entry = _put(earlier, key, tmp_path, size=400_000)
        os.utime(entry.folder, (1000 + i, 1000 + i))  # used in this order: 1 oldest
    run = StageCache(folder, max_mb=1.3)
    assert run.get(keys[0]) is not None  # using the oldest makes it the most recent
    _put(run, "04" + "4" * 62, tmp_path, size=400_000)
    left = {p.name for _, _, p in run.entries()}
    assert left == {keys[0], keys[2], "04" + "4" * 62}  # keys[1] was the least recently used
    # this run's own entries stay even when they alone exceed the limit
    tight = StageCache(folder, max_mb=0)
    _put(tight, "05" + "5" * 62, tmp_path, size=10)
    assert {p.name for _, _, p in tight.entries()} == {"05" + "5" * 62}


def test_size_limit_from_the_environment(monkeypatch):
    monkeypatch.setenv("EDGEOPT_CACHE_MAX_MB", "12.5")
    assert max_mb_from_env() == 12.5
    monkeypatch.setenv("EDGEOPT_CACHE_MAX_MB", "lots")
    with pytest.raises(UsageError, match="EDGEOPT_CACHE_MAX_MB"):
        max_mb_from_env()
    monkeypatch.delenv("EDGEOPT_CACHE_MAX_MB")
    assert max_mb_from_env() == 2048


def test_default_cache_lives_under_the_one_root(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEOPT_CACHE", str(tmp_path))
    assert StageCache.default().folder == tmp_path / "stages"
    assert StageCache.default(max_mb=5).max_mb == 5
