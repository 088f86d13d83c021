"""Refuse model files that would run Python code on load, before anything is deserialised.

A Lambda layer stores marshalled bytecode (.h5, SavedModel) or source (.keras) that Keras runs while it loads;
a custom class runs whatever its module does. edgeopt reads the model's config as plain JSON first — the
``config.json`` of a .keras archive, the ``model_config`` attribute of an .h5, every node of a SavedModel's
``keras_metadata.pb`` — and refuses such a model unless the user opted in: ``--unsafe-load`` (any code) or
``--custom-objects module.path`` (the classes that module registers). The choice travels in the environment so
that every process that loads a model (the CLI and each bench worker) applies the same rule."""

from __future__ import annotations

import importlib
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeopt.errors import UsageError

UNSAFE_ENV = "EDGEOPT_UNSAFE_LOAD"
CUSTOM_ENV = "EDGEOPT_CUSTOM_OBJECTS"
KNOWN_PACKAGES = ("keras", "tf_keras", "tensorflow", "tensorflow_model_optimization", "tfmot")
CODE_CLASSES = ("Lambda", "__lambda__", "TFOpLambda_unsafe")


def allow_unsafe_load() -> None:
    os.environ[UNSAFE_ENV] = "1"


def allow_custom_objects(modules: list[str]) -> None:
    prior = [m for m in os.environ.get(CUSTOM_ENV, "").split(",") if m]
    os.environ[CUSTOM_ENV] = ",".join(dict.fromkeys([*prior, *modules]))


def unsafe_allowed() -> bool:
    return os.environ.get(UNSAFE_ENV, "") not in ("", "0")


def custom_modules() -> list[str]:
    return [m.strip() for m in os.environ.get(CUSTOM_ENV, "").split(",") if m.strip()]


def import_custom_modules() -> list[str]:
    """Import every ``--custom-objects`` module (their import registers the classes); a bad name is exit 2."""
    mods = custom_modules()
    for name in mods:
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 — any import failure is a bad --custom-objects value
            raise UsageError(f"--custom-objects {name}: cannot import it ({type(e).__name__}: {str(e)[:120]})",
                             "pass an importable module.path that registers the model's custom classes") from None
    return mods


def _configs(p: Path) -> Iterator[Any]:
    """The model's config documents, read as plain data (no Keras involved)."""
    if p.is_dir():
        meta = p / "keras_metadata.pb"
        if meta.is_file():
            from tf_keras.protobuf import saved_metadata_pb2

            saved = saved_metadata_pb2.SavedMetadata()
            saved.ParseFromString(meta.read_bytes())
            for node in saved.nodes:
                yield _json(node.metadata, p)
        return
    if zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as z:
            if "config.json" in z.namelist():
                yield _json(z.read("config.json"), p)
        return
    import h5py

    try:
        with h5py.File(p, "r") as f:
            raw = f.attrs.get("model_config")
    except OSError:
        return  # not HDF5 either: the loader reports it
    if raw is not None:
        yield _json(raw, p)


def _json(raw: bytes | str, p: Path) -> Any:
    from edgeopt.core.safe_yaml import parse_json

    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return parse_json(text, f"model {p} config", "re-save the model with tf_keras")


def _walk(doc: Any) -> Iterator[dict]:
    stack = [doc]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            if "class_name" in cur:
                yield cur
            stack.extend(cur.values())
        elif isinstance(cur, list):
            stack.extend(cur)


def _registered(name: str) -> bool:
    for mod in ("tf_keras", "keras"):
        try:
            saving = importlib.import_module(mod).saving
            if saving.get_registered_object(name) is not None:
                return True
        except Exception:  # noqa: BLE001, S112 — a framework that is not there registers nothing
            continue
    return False


def find_code(p: Path) -> tuple[str, str] | None:
    """('code' | 'custom', what) for the first thing in the model at ``p`` that would run Python on load."""
    allowed_mods = import_custom_modules()
    try:
        docs = list(_configs(p))
    except UsageError:
        raise
    except Exception as e:  # noqa: BLE001 — truncated zip, broken HDF5 or protobuf: the file is not a model
        first = (str(e).strip().splitlines() or [""])[0][:160]
        raise UsageError(f"cannot read model {p} ({type(e).__name__}: {first})",
                         "check that the file is a complete tf_keras model") from None
    for doc in docs:
        for obj in _walk(doc):
            cls = str(obj.get("class_name"))
            cfg = obj.get("config") if isinstance(obj.get("config"), dict) else {}
            if cls in CODE_CLASSES or "function_type" in cfg:
                return "code", f"a {cls} layer '{cfg.get('name', '?')}'"
            registered = obj.get("registered_name")
            module = obj.get("module")
            names = [n for n in (cls, registered) if isinstance(n, str) and ">" in n]
            if names and not all(_registered(n) for n in names):
                return "custom", f"the custom class '{names[0]}'"
            if isinstance(module, str) and module.split(".")[0] not in KNOWN_PACKAGES and not any(
                    module == m or module.startswith(m + ".") for m in allowed_mods):
                return "custom", f"the class '{cls}' from module '{module}'"
    return None


def check_safe(p: Path) -> None:
    """Raise a UsageError when the model at ``p`` would run Python code on load and the user did not opt in."""
    if unsafe_allowed():
        return
    found = find_code(p)
    if found is None:
        return
    kind, what = found
    if kind == "code":
        raise UsageError(f"model {p} holds {what}: Python code that would run when it loads, so it was not loaded",
                         "rebuild the model without Lambda layers, or pass --unsafe-load if you trust the file")
    raise UsageError(f"model {p} uses {what}, whose code would run when it loads, so it was not loaded",
                     "pass --custom-objects module.path (a module that registers it), or --unsafe-load if you "
                     "trust the file")
