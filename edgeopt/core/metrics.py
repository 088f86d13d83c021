"""Scores computed from a model's outputs: accuracy, top-1 agreement, max abs difference. Shared by the stages
(parity checks, int8 search) and the benchmark; file facts (sizes, parameter counts) live in core/artifact.py."""

from __future__ import annotations

import numpy as np


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(outputs, axis=-1) == np.asarray(labels).reshape(-1)))


def agreement(outputs: np.ndarray, reference: np.ndarray) -> float:
    """Share of samples whose top-1 class matches the reference model's."""
    return float(np.mean(np.argmax(outputs, axis=-1) == np.argmax(reference, axis=-1)))


def max_abs_diff(outputs: np.ndarray, reference: np.ndarray) -> float:
    return float(np.max(np.abs(outputs.astype(np.float64) - reference.astype(np.float64))))
