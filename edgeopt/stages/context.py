"""What a stage gets besides its config and model: the data, where to write, what came before."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class StageContext:
    dataset: Any  # edgeopt.data.dataset.Dataset
    out_dir: Path  # staging folder; compress moves it into place when every stage is done
    base_name: str  # file stem for artifacts, e.g. "digits_cnn"
    train: Any  # recipe.TrainDefaults
    teacher: Any = None  # the input model (tf_keras), for distillation
    stages_done: list[str] = field(default_factory=list)
    parent: str | None = None  # artifact name the next artifacts derive from
    cache_dir: Path | None = None
    notes: dict[str, Any] = field(default_factory=dict)  # sections for the manifest (tuning, sparsity, ...)
    progress: Callable[[str], None] = lambda msg: None
