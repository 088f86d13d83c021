"""Malformed train / tune / distill recipes: a one-line UsageError naming the problem, never a traceback, and
every recipe that parses round-trips."""

from __future__ import annotations

import copy
import random

import pytest

from edgeopt.errors import UsageError
from edgeopt.recipe import Recipe

GOOD = {
    "train": {"epochs": 10, "batch_size": 64, "precision": "float32",
              "lr_schedule": {"kind": "constant_then_exponential", "initial": 0.001, "hold_epochs": 10,
                              "decay_rate": 0.9}},
    "stages": [
        {"tune": {"model": {"zoo": "small_cnn"}, "distill": True, "strategy": "hyperband", "max_epochs": 9,
                  "max_trials": 20, "space": {"width": {"choice": [0.25, 0.5]},
                                              "lr": {"float": [0.0001, 0.01], "sampling": "log"},
                                              "init": {"choice": ["he_normal", "glorot_uniform"]}}}},
        {"distill": {"student": {"zoo": "small_cnn", "width": 0.25}, "temperature": 4.0, "alpha": 0.1, "epochs": 10}},
    ],
}

BAD = [
    ({"stages": [{"tune": {"space": {}}}]}, "search space is empty"),
    ({"stages": [{"tune": {"space": {"width": 0.5, "depth": 2}}}]}, "search space is empty"),
    ({"stages": [{"tune": {"strategy": "grid", "space": {"width": {"choice": [1, 2]}}}}]}, "got 'grid'"),
    ({"stages": [{"tune": {"space": {"width": {"float": [1.0, 0.5]}}}}]}, "range [1.0, 0.5] is empty"),
    ({"stages": [{"tune": {"space": {"lr": {"float": [0, 0.1], "sampling": "log"}}}}]}, "log sampling needs a positive"),
    ({"stages": [{"tune": {"space": {"init": {"choice": ["he_normal", "kaiming"]}}}}]}, "unknown initializer 'kaiming'"),
    ({"stages": [{"tune": {"model": {"zoo": "small_cnn", "init": "zeros"}, "space": {"depth": {"int": [1, 2]}}}}]},
     "unknown initializer 'zeros'"),
    ({"stages": [{"tune": {"space": {"activation": {"choice": ["relu", "rleu"]}}}}]}, "unknown activation 'rleu'"),
    ({"stages": [{"tune": {"space": {"widht": {"choice": [1, 2]}}}}]}, "did you mean 'width'"),
    ({"stages": [{"tune": {"space": {"width": {"chioce": [1, 2]}}}}]}, "did you mean 'choice'"),
    ({"stages": [{"tune": {"space": {"width": {"choice": []}}}}]}, "is empty"),
    ({"stages": [{"tune": {"space": {"width": {"choice": [0.5, 0.5]}}}}]}, "lists a value twice"),
    ({"stages": [{"tune": {"space": {"temperature": {"float": [1, 4]}}}}]}, "needs distill: true"),
    ({"stages": [{"tune": {"model": {"zoo": "small_cnn", "width": 1}, "space": {"width": {"choice": [1, 2]}}}}]},
     "both fixed in model: and searched in space:"),
    ({"stages": [{"tune": {"model": {"path": "x.keras"}, "space": {"lr": {"float": [0.001, 0.01]}}}}]},
     "searches a zoo builder"),
    ({"stages": [{"tune": {"objective": "val_acc", "space": {"width": {"choice": [1, 2]}}}}]}, "did you mean"),
    ({"stages": [{"tune": {"space": {"optimizer": {"choice": ["adam", "lion"]}}}}]}, "unknown optimizer 'lion'"),
    ({"stages": [{"tune": {"space": {"batch_size": {"choice": [0, 32]}}}}]}, "positive integer"),
    ({"stages": [{"tune": {"space": {"depth": {"int": [1, 5], "step": 1.5}}}}]}, "integer step"),
    ({"stages": [{"tune": {"space": {"depth": {"int": [1, 2], "step": 4}}}}]}, "wider than the range"),
    ({"stages": [{"tune": {"max_trials": 0, "space": {"width": {"choice": [1, 2]}}}}]}, "max_trials"),
    ({"stages": [{"tune": {"factor": 1, "space": {"width": {"choice": [1, 2]}}}}]}, "factor"),
    ({"stages": [{"distill": {"student": {"zoo": "small_cnn", "path": "s.keras"}}}]}, "exactly one of"),
    ({"stages": [{"distill": {"student": {"zoo": "tiny_cnn"}}}]}, "unknown zoo model 'tiny_cnn'"),
    ({"stages": [{"distill": {"student": {"zoo": "small_cnn", "widht": 0.25}}}]}, "did you mean 'width'"),
    ({"stages": [{"distill": {"alpha": 1.5}}]}, "alpha"),
    ({"stages": [{"distill": {"temperature": 0}}]}, "temperature"),
    ({"stages": [{"distill": {"student": {"path": "s.keras", "width": 0.5}}}]}, "only apply to a zoo builder"),
    ({"train": {"precision": "float16"}}, "got 'float16'"),
    ({"train": {"optimizer": "lion"}}, "got 'lion'"),
    ({"train": {"lr_schedule": {"kind": "cosine", "decay_rate": 0.5}}}, "'decay_rate' does nothing for kind 'cosine'"),
]


def _parse(raw):
    try:
        return Recipe.from_dict(raw)
    except UsageError as e:
        assert "\n" not in str(e) and len(str(e)) < 400, str(e)
        raise


def test_good_recipe_parses_and_round_trips():
    r = _parse(copy.deepcopy(GOOD))
    assert Recipe.from_dict(r.to_dict()) == r
    assert [name for name, _ in r.stages] == ["tune", "distill"]


@pytest.mark.parametrize("raw, needle", BAD, ids=[n for _, n in BAD])
def test_bad_recipes_are_one_line_usage_errors(raw, needle):
    with pytest.raises(UsageError) as e:
        _parse(raw)
    assert needle in str(e.value)


JUNK = [None, 0, -1, 1.5, "", "x", [], {}, [1, 2], {"a": 1}, True, float("nan"), 1e30, [0.1, "a"]]


def _mutations(rng: random.Random, n: int):
    """Random recipes near GOOD: one value replaced by junk, a key dropped, or a key renamed."""
    paths = []

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                paths.append((*path, k))
                walk(v, (*path, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*path, i))

    walk(GOOD, ())
    for _ in range(n):
        raw = copy.deepcopy(GOOD)
        path = rng.choice(paths)
        parent = raw
        for key in path[:-1]:
            parent = parent[key]
        action = rng.random()
        if action < 0.6:
            parent[path[-1]] = rng.choice(JUNK)
        elif action < 0.8:
            parent.pop(path[-1])
        else:
            parent[str(path[-1]) + "x"] = parent.pop(path[-1])
        yield raw


def test_random_mutations_never_escape_as_other_errors():
    for raw in _mutations(random.Random(0), 400):
        try:
            r = _parse(raw)
        except UsageError:
            continue
        assert Recipe.from_dict(r.to_dict()) == r
