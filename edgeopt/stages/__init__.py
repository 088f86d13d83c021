"""The stages a recipe can name — the one registry, ``STAGES`` — and what every stage gets besides its config
and its input model (``StageContext``).

A stage is one module (or package) holding its pydantic Config and ``apply(model, ctx, cfg)``, which returns
the next stage's model (``yields="model"``: recipe.run saves it as ``<base>_<stage>.keras``) or the artifacts it
wrote (``yields="artifacts"``). Stage modules import TensorFlow only inside functions: recipes are parsed
through this registry before anything heavy loads. Adding a stage = one file + one entry below; the
conformance suite runs every entry with its ``example`` config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from edgeopt.stages import cluster, convert, distill, prune, quantize, tune


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
    # the source model's top-1 per split ("val", "test"), set by recipe.run: every tolerance is measured against it
    reference: dict[str, float] = field(default_factory=dict)
    # (QAT model, the same weights in the plain float architecture): convert's float artifacts of that model
    float_twin: tuple[Any, Any] | None = None
    progress: Callable[[str], None] = lambda msg: None
    # what the artifacts are scored by (core.metrics.Task); classification (top-1) unless compress resolved another
    task: Any = field(default_factory=lambda: _classification())


def _classification():
    from edgeopt.core.metrics import make_task

    return make_task("classification")


@dataclass(frozen=True)
class Stage:
    """One registry entry: the recipe key's config model, the stage's apply, what it yields, and a small,
    fast config the conformance suite runs it with."""

    config: type[BaseModel]
    apply: Callable[[Any, StageContext, Any], Any]
    yields: Literal["model", "artifacts"] = "model"
    example: dict[str, Any] = field(default_factory=dict)
    fix: str = "train longer or compress less"  # what to change when the accuracy guard stops the pipeline here


# snake_case recipe key -> stage (this order is the order error messages list them in)
STAGES: dict[str, Stage] = {
    "convert": Stage(convert.ConvertConfig, convert.apply, "artifacts", {"tflite": ["fp32", "int8"], "onnx": ["fp32"]}),
    "tune": Stage(tune.TuneConfig, tune.apply, "model",
                  {"strategy": "random", "max_trials": 1, "max_epochs": 1, "final_epochs": 1, "overwrite": True,
                   "space": {"width": {"choice": [0.25]}}},
                  "raise tune.max_epochs or max_trials, or search wider models (the space's width choices)"),
    "distill": Stage(distill.DistillConfig, distill.apply, "model", {"epochs": 1},
                     "raise distill.epochs, or distill into a wider student (student: {zoo: ..., width: ...})"),
    "prune": Stage(prune.PruneConfig, prune.apply, "model", {"target_sparsity": 0.5, "epochs": 1},
                   "raise prune.epochs or lower prune.target_sparsity (or exclude the most sensitive layers)"),
    "quantize": Stage(quantize.QuantizeConfig, quantize.apply, "model", {"epochs": 1},
                      "raise quantize.epochs, or use quantize: {qat: false} (post-training int8 in convert)"),
    "cluster": Stage(cluster.ClusterConfig, cluster.apply, "model", {"number_of_clusters": 8, "epochs": 1},
                     "raise cluster.epochs or cluster.number_of_clusters"),
}
