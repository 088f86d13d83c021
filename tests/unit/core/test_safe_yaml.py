"""The one bounded reader of YAML and JSON files: legitimate anchors work; bombs, depth, huge ints, binary and
truncated files are one UsageError line that quotes at most a short piece of the input."""

from __future__ import annotations

import resource
import time

import pytest

from edgeopt.core.safe_yaml import MAX_ALIASES, load_json, load_yaml, parse_yaml
from edgeopt.errors import UsageError


def test_ordinary_anchors_still_work():
    doc = parse_yaml("base: &b {epochs: 2, lr: 0.01}\nstages:\n  - prune: *b\n  - quantize: *b\n", "recipe", "fix")
    assert doc["stages"][1]["quantize"] == {"epochs": 2, "lr": 0.01}


def test_a_300_byte_alias_bomb_is_refused_fast_and_small():
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"{c}: &{c} [{','.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
    text = "\n".join(lines) + "\ntargets: *i\n"
    assert len(text) < 400
    before, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.monotonic()
    with pytest.raises(UsageError, match="expands to more than|more than .* aliases"):
        parse_yaml(text, "budgets file b.yaml", "fix")
    assert time.monotonic() - t0 < 5
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 200  # MB


def test_too_many_aliases():
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * (MAX_ALIASES + 1)) + "]\n"
    with pytest.raises(UsageError, match=f"more than {MAX_ALIASES} aliases"):
        parse_yaml(text, "recipe", "fix")


@pytest.mark.parametrize("text, words", [
    ("a: " + "[" * 5000 + "]" * 5000, "nested deeper than"),
    ("x: " + "9" * 5000, "a value cannot be read"),
    ("a: &a [*a]\n", None),  # a self-referencing alias: bounded, either accepted or refused
    ("stages:\n  - convert: {tflite: ['fp32" + "x" * 5000, "is not valid YAML"),
])
def test_hostile_yaml(text, words):
    if words is None:
        try:
            parse_yaml(text, "recipe", "fix")
        except UsageError:
            pass
        return
    with pytest.raises(UsageError, match=words) as e:
        parse_yaml(text, "recipe", "fix")
    assert len(str(e.value)) < 400 and "\n" not in str(e.value)


def test_files_binary_big_folder(tmp_path):
    (tmp_path / "bin.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    with pytest.raises(UsageError, match="not UTF-8 text"):
        load_yaml(tmp_path / "bin.yaml", "recipe", "fix")
    (tmp_path / "big.yaml").write_text("a: 1\n" * 300_000)
    with pytest.raises(UsageError, match="over the .*-byte limit"):
        load_yaml(tmp_path / "big.yaml", "recipe", "fix")
    with pytest.raises(UsageError, match="is a folder"):
        load_yaml(tmp_path, "recipe", "fix")


def test_json_has_the_same_limits(tmp_path):
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UsageError, match="nested deeper than"):
        load_json(tmp_path / "deep.json", "report", "fix")
    (tmp_path / "int.json").write_text('{"a": ' + "7" * 5000 + "}")
    with pytest.raises(UsageError, match="not valid JSON"):
        load_json(tmp_path / "int.json", "report", "fix")
    (tmp_path / "ok.json").write_text('{"a": [1, {"b": 2}]}')
    assert load_json(tmp_path / "ok.json", "report", "fix") == {"a": [1, {"b": 2}]}
