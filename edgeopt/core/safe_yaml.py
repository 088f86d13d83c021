"""The one reader of user-written YAML and JSON files (recipes, budgets, targets, reports, manifests): bounded.

A 300-byte YAML alias bomb expands to gigabytes; a deeply nested file overflows Python's stack; a binary file is
not text; a 5000-digit integer trips Python's int limit. Each becomes one UsageError line (exit 2) here, before
the document is built: size is checked on disk, nesting and aliases on the parser's event stream, and the
expanded size on the composed graph (where an alias is a shared node, so measuring it costs nothing)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeopt.errors import UsageError

MAX_CONFIG_BYTES = 1 << 20  # recipes, budgets, targets: a few KB in practice
MAX_REPORT_BYTES = 256 << 20  # reports and manifests keep raw latency samples
MAX_DEPTH = 64
MAX_ALIASES = 100
MAX_NODES = 100_000  # values after expanding every alias
QUOTE_CHARS = 120


def clip(text: object, limit: int = QUOTE_CHARS) -> str:
    """``text`` as one line of at most ``limit`` characters: what an error message may quote of a value."""
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def read_text(path: str | Path, what: str, fix: str, max_bytes: int = MAX_CONFIG_BYTES) -> str:
    """The file's text, or a UsageError for a folder, an oversized file or one that is not UTF-8 text."""
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{what} {p} is a folder", fix)
    if not p.is_file():
        raise UsageError(f"{what} {p} does not exist", fix)
    size = p.stat().st_size
    if size > max_bytes:
        raise UsageError(f"{what} {p} is {size} bytes, over the {max_bytes}-byte limit", fix)
    data = p.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{what} {p} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})",
                         fix) from None


def _check_events(text: str, where: str, fix: str) -> None:
    import yaml

    depth = aliases = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise UsageError(f"{where}: nested deeper than {MAX_DEPTH} levels", fix)
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
            elif isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_ALIASES:
                    raise UsageError(f"{where}: more than {MAX_ALIASES} aliases (*name)", fix)
    except yaml.YAMLError as e:
        raise UsageError(f"{where} is not valid YAML ({clip(str(e).splitlines()[0] if str(e) else e)})",
                         "fix the YAML syntax") from None


def _expanded_size(node, memo: dict[int, int]) -> int:
    """Nodes the document has once every alias is expanded (an alias is the same node object, counted by id)."""
    import yaml

    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = 1  # a self-referencing alias counts once instead of recursing forever
    if isinstance(node, yaml.SequenceNode):
        n = 1 + sum(_expanded_size(c, memo) for c in node.value)
    elif isinstance(node, yaml.MappingNode):
        n = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    else:
        n = 1
    memo[id(node)] = n
    return min(n, MAX_NODES + 1)


def parse_yaml(text: str, where: str, fix: str) -> Any:
    """``text`` as YAML (safe types only), bounded in depth, aliases and expanded size."""
    import yaml

    _check_events(text, where, fix)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_NODES:
            raise UsageError(f"{where}: expands to more than {MAX_NODES} values (alias bomb?)", fix)
        loader = yaml.SafeLoader("")
        try:
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except UsageError:
        raise
    except yaml.YAMLError as e:
        raise UsageError(f"{where} is not valid YAML ({clip(str(e).splitlines()[0] if str(e) else e)})",
                         "fix the YAML syntax") from None
    except (ValueError, TypeError, RecursionError) as e:  # int('9'*5000), unhashable keys, ...
        raise UsageError(f"{where}: a value cannot be read ({clip(e)})", fix) from None


def load_yaml(path: str | Path, what: str, fix: str, max_bytes: int = MAX_CONFIG_BYTES) -> Any:
    """Read and parse the YAML file at ``path``; every failure is a UsageError naming ``what`` and the file."""
    return parse_yaml(read_text(path, what, fix, max_bytes), f"{what} {path}", fix)


def _depth_ok(obj: Any) -> bool:
    stack = [(obj, 1)]
    while stack:
        cur, d = stack.pop()
        if d > MAX_DEPTH:
            return False
        if isinstance(cur, dict):
            stack.extend((v, d + 1) for v in cur.values())
        elif isinstance(cur, list):
            stack.extend((v, d + 1) for v in cur)
    return True


def parse_json(text: str, where: str, fix: str) -> Any:
    try:
        obj = json.loads(text)
    except RecursionError:
        raise UsageError(f"{where}: nested deeper than {MAX_DEPTH} levels", fix) from None
    except ValueError as e:  # JSONDecodeError, and int('9'*5000)
        raise UsageError(f"{where} is not valid JSON ({clip(e)})", fix) from None
    if not _depth_ok(obj):
        raise UsageError(f"{where}: nested deeper than {MAX_DEPTH} levels", fix)
    return obj


def load_json(path: str | Path, what: str, fix: str, max_bytes: int = MAX_REPORT_BYTES) -> Any:
    """Read and parse the JSON file at ``path``, with the same limits as YAML (size, depth, readable values)."""
    return parse_json(read_text(path, what, fix, max_bytes), f"{what} {path}", fix)
