"""Recipe configs of the compression stages: prune, quantize, cluster. No TensorFlow here: recipes are
parsed and checked before anything heavy is imported."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edgeopt.recipe import STAGE_CONFIGS
from edgeopt.train.fit import FineTuneConfig

CENTROID_INITS = ("kmeans_plus_plus", "linear", "random", "density_based")


class PruneConfig(FineTuneConfig):
    """Magnitude pruning (tfmot). Begin/end steps and frequency are derived from data size, batch and epochs
    unless given; a schedule that cannot fire inside the fine-tune is a UsageError."""

    target_sparsity: float = Field(0.5, ge=0.0, lt=1.0)
    initial_sparsity: float = Field(0.0, ge=0.0, lt=1.0)
    schedule: Literal["polynomial", "constant"] = "polynomial"
    structure: str | None = None  # "M:N" (tfmot m_by_n), e.g. "2:4": M zeros in every N weights
    begin_step: int | None = Field(None, ge=0)
    end_step: int | None = Field(None, ge=1)
    frequency: int | None = Field(None, ge=1)  # steps between mask updates
    end_fraction: float = Field(0.7, gt=0.0, le=1.0)  # where the sparsity ramp ends when end_step is not given

    @field_validator("structure")
    @classmethod
    def _structure(cls, v: str | None) -> str | None:
        if v is None:
            return v
        m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", str(v))
        if not m or not 0 < int(m.group(1)) < int(m.group(2)):
            raise ValueError(f"structure must be 'M:N' with 0 < M < N, e.g. '2:4' (got {v!r})")
        return f"{int(m.group(1))}:{int(m.group(2))}"

    @model_validator(mode="after")
    def _ramp(self) -> PruneConfig:
        if self.initial_sparsity > self.target_sparsity:
            raise ValueError(f"initial_sparsity {self.initial_sparsity} is above target_sparsity {self.target_sparsity}")
        if self.begin_step is not None and self.end_step is not None and self.end_step <= self.begin_step:
            raise ValueError(f"end_step {self.end_step} must be after begin_step {self.begin_step}")
        return self

    @property
    def m_by_n(self) -> tuple[int, int] | None:
        if self.structure is None:
            return None
        m, n = self.structure.split(":")
        return int(m), int(n)


class QuantizeConfig(FineTuneConfig):
    """Quantization-aware training. ``preserve_sparsity`` / ``preserve_clusters``: ``None`` = on when an earlier
    stage pruned / clustered the model (tfmot's collaborative-optimisation schemes)."""

    qat: bool = True  # false: no training here; convert does post-training quantization
    preserve_sparsity: bool | None = None
    preserve_clusters: bool | None = None


class ClusterConfig(FineTuneConfig):
    """Weight clustering (tfmot): every clustered kernel keeps ``number_of_clusters`` distinct values."""

    number_of_clusters: int = Field(16, ge=2, le=256)
    centroid_init: Literal["kmeans_plus_plus", "linear", "random", "density_based"] = "kmeans_plus_plus"
    preserve_sparsity: bool | None = None  # None = on when the model was pruned
    per_channel: bool = False  # Conv2D kernels clustered per output channel


STAGE_CONFIGS.update({"prune": PruneConfig, "quantize": QuantizeConfig, "cluster": ClusterConfig})
