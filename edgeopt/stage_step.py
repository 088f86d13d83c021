"""One model stage of a compress pipeline, through the stage cache (recipe.run calls ``run_model_stage``): the
entry restored when its key is there, else the stage run under fixed seeds and name counters, its model saved
(deterministic .keras), loaded back and checked to give the same outputs, then stored (edgeopt/stage_cache.py
holds the store and the keys)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeopt.stage_cache import Chain, Entry

log = logging.getLogger(__name__)

MODEL = "model.keras"
TWIN = "float_twin.keras"  # quantize's ctx.float_twin: convert's float artifacts of a QAT model come from it


@dataclass
class Step:
    model: Any  # what the next stage gets: the stage's model as loaded back from ``keras``
    keras: Path  # its .keras file (deterministic bytes)
    accuracy: float
    from_cache: bool


def deterministic():
    """TensorFlow's op determinism on for the block, then back as it was."""
    import contextlib

    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    @contextlib.contextmanager
    def block():
        was = tf_config.is_op_determinism_enabled()
        tf.config.experimental.enable_op_determinism()
        try:
            yield
        finally:
            if not was:
                tf_config.disable_op_determinism()

    return block()


def fresh_state(seed: int, *models) -> None:
    """Before a stage: the seeds set (Python, NumPy, TF) and Keras's name counters back to zero, with the names
    of ``models`` (the stage's input, the teacher) marked taken — the state a fresh process has after loading
    them, so a stage names its new layers alike (``quantize_layer``, not ``quantize_layer_1``) whatever ran
    before it in this process."""
    import tf_keras
    from tf_keras.src import backend  # observe_object_name is not in the public tf_keras.backend

    backend.reset_uids()
    for model in models:
        for item in [model, *getattr(model, "submodules", ())]:
            name = getattr(item, "name", None)
            if isinstance(name, str):
                backend.observe_object_name(name)
    tf_keras.utils.set_random_seed(seed)


def _restore(entry: Entry, ctx) -> Any:
    from edgeopt.models.load import load_model

    model = load_model(entry.folder / MODEL)
    if entry.file(TWIN):
        ctx.float_twin = (model, load_model(entry.folder / TWIN))
    ctx.notes.update(entry.meta.get("notes") or {})
    return model


def _loads_back(model, path: Path, x) -> tuple[Any, str | None]:
    """(the model loaded from ``path``, None) when it gives ``model``'s outputs; else (None, why not)."""
    import numpy as np

    from edgeopt.models.load import load_model

    try:
        loaded = load_model(path)
        same = np.array_equal(np.asarray(model(x, training=False)), np.asarray(loaded(x, training=False)))
    except Exception as e:  # noqa: BLE001 — any failure to load back means: not restorable, not cached
        return None, f"{type(e).__name__}: {str(e).strip()[:120]}"
    return (loaded, None) if same else (None, "the loaded model's outputs differ")


def run_model_stage(name: str, cfg, model, ctx, chain: Chain | None, key: str | None, work: Path,
                    score) -> Step:
    """Stage ``name`` on ``model``: restored from ``chain``'s cache under ``key``, or run, saved (deterministic
    .keras in ``work``), loaded back and stored. ``score(model)``: its top-1 on the guard's split. A stage whose
    model (or float twin) does not load back with the same outputs is not cached, and the log says so."""
    from edgeopt.models.save import save_keras
    from edgeopt.stages import STAGES

    entry = chain.cache.get(key) if chain and key else None
    if entry is not None:
        try:
            restored = _restore(entry, ctx)
            log.info("stage %s: from the cache (key %s)", name, key[:8])
            ctx.progress(f"{name}: from the cache")
            return Step(restored, entry.folder / MODEL, float(entry.meta["accuracy"]), True)
        except Exception as e:  # noqa: BLE001 — a damaged entry is rebuilt, never fatal
            log.warning("stage %s: cache entry %s does not load (%s); running the stage", name, key[:8], e)
            chain.cache._remove(entry.folder)
    log.info("stage %s", name)
    before = dict(ctx.notes)
    twin_before = ctx.float_twin
    result = STAGES[name].apply(model, ctx, cfg)
    notes = {k: v for k, v in ctx.notes.items() if before.get(k, before) is not v}
    work.mkdir(parents=True)
    path = save_keras(result, work / MODEL)
    x = ctx.dataset.x_val[:32] if len(ctx.dataset.x_val) else ctx.dataset.x_test[:32]
    loaded, why = _loads_back(result, path, x)
    twin = ctx.float_twin if ctx.float_twin is not twin_before and ctx.float_twin else None
    files = {MODEL: path}
    if loaded is not None and twin is not None and twin[0] is result:
        files[TWIN] = save_keras(twin[1], work / TWIN)
        loaded_twin, why = _loads_back(twin[1], files[TWIN], x)
        if loaded_twin is not None:
            ctx.float_twin = (loaded, loaded_twin)
        else:
            loaded = None
    if loaded is None:  # goes on with the model in memory: right, but not restorable, so not stored
        log.info("stage %s: ran (not cached: its model does not load back: %s)", name, why)
        return Step(result, path, score(result), False)
    accuracy = score(loaded)
    if chain is None or key is None:
        log.info("stage %s: ran (cache off)", name)
        return Step(loaded, path, accuracy, False)
    meta = {"stage": name, "config": cfg.model_dump(mode="json"), "accuracy": accuracy,
            "notes": json.loads(json.dumps(notes, default=str))}
    stored = chain.cache.put(key, files, meta)
    log.info("stage %s: ran (%s %s)", name, "cached as" if stored else "not cached, key", key[:8])
    return Step(loaded, path, accuracy, False)
