"""Several named model inputs as one batch: ``Inputs`` (name → array, the same number of rows each), indexed by rows
like an array. A single-input model keeps a plain array everywhere; ``feed`` and ``ordered`` take both.

Models, converters and runtimes are fed by name (``feed``): TFLite orders its inputs and outputs by name, ONNX and
Keras by the model's own order, so an index would not mean the same tensor in every format."""

from __future__ import annotations

from typing import Any

import numpy as np


class Inputs:
    """Named arrays with the same first dimension; ``x[i:j]``, ``x[idx]`` select rows of every array."""

    def __init__(self, arrays: dict[str, Any]) -> None:
        if not arrays:
            raise ValueError("Inputs needs at least one array")
        self.arrays = {str(k): np.asarray(v) for k, v in arrays.items()}
        scalars = [k for k, v in self.arrays.items() if v.ndim == 0]
        if scalars:
            raise ValueError(f"input {scalars[0]} holds one value ({self.arrays[scalars[0]]!r:.60}), not samples")
        lengths = {len(v) for v in self.arrays.values()}
        if len(lengths) != 1:
            got = ", ".join(f"{k} {len(v)}" for k, v in self.arrays.items())
            raise ValueError(f"inputs differ in number of samples ({got})")

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def __getitem__(self, idx):
        if isinstance(idx, str):
            return self.arrays[idx]
        return Inputs({k: v[idx] for k, v in self.arrays.items()})

    @property
    def names(self) -> list[str]:
        return list(self.arrays)

    def items(self):
        return self.arrays.items()

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """name → shape of one sample (without the batch dimension)."""
        return {k: tuple(int(d) for d in v.shape[1:]) for k, v in self.arrays.items()}

    def __array__(self, *args, **kwargs):  # never silently one array: a caller that needs one must pick an input
        raise TypeError(f"{self!r} holds several named inputs; feed them by name (core.inputs.feed)")

    def __repr__(self) -> str:
        return f"Inputs({', '.join(f'{k}: {v.dtype}{tuple(v.shape)}' for k, v in self.arrays.items())})"


def feed(x, names: list[str] | None = None):
    """What a model is called with: a plain array, or a dict by input name (in ``names`` order when given)."""
    if not isinstance(x, Inputs):
        return x
    if names is None:
        return dict(x.arrays)
    missing = [n for n in names if n not in x.arrays]
    if missing:
        raise KeyError(f"the data has no input named {missing[0]!r} (it has {', '.join(x.names)})")
    return {n: x.arrays[n] for n in names}


def ordered(x, names: list[str] | None) -> list[np.ndarray]:
    """The arrays of ``x`` in the model's input order (``names``; None: the order ``x`` holds them in) — a
    converter's representative dataset takes a list."""
    return list(feed(x, names).values()) if isinstance(x, Inputs) else [x]
