"""The search space of `edgeopt optimize` (pydantic, overridable from a recipe's ``optimize:`` section) and how one
Optuna trial's choices become a Recipe.

Every dimension is a list of choices; a candidate is one choice per dimension, written as a plain recipe (distill
→ prune → cluster → quantize → convert), so ``best/recipe.yaml`` is what ``edgeopt compress --recipe`` reruns.
Parameters are Optuna categoricals (``student``, ``channel``, ``sparsity`` — only without channel pruning: one prune
stage per recipe —, ``cluster``, ``runtime``, ``quant.<runtime>``, ``threads``): a dimension with one choice is
fixed, not searched."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edgeopt.errors import UsageError, validation_error
from edgeopt.recipe import Recipe
from edgeopt.train.augment import AugmentConfig
from edgeopt.train.fit import TrainDefaults, switch

QuantMode = Literal["fp32", "fp16", "dynamic", "int8_weights", "int8", "int8_fallback", "qat", "u8s8"]
QUANT_MODES: tuple[str, ...] = ("fp32", "fp16", "dynamic", "int8_weights", "int8", "int8_fallback", "qat", "u8s8")
# what each runtime edgeopt converts for can run: LiteRT the TFLite modes (int8_weights: weight-only int8, needs
# the aiedge extra), ONNX Runtime fp32, int8 and u8s8 (uint8 activations, int8 weights, QDQ)
RUNTIME_MODES = {"litert": ("fp32", "fp16", "dynamic", "int8_weights", "int8", "int8_fallback", "qat"),
                 "onnxruntime": ("fp32", "int8", "u8s8")}
NEEDS_AIEDGE = "int8_weights"
NO_STUDENT = "none"


class StudentSpace(BaseModel):
    """Students to distill the model into: every zoo builder × width × depth, and (``none: true``) no student.

    ``depth`` is each builder's own: small_cnn's conv blocks, mobilenet_v2_like's inverted residual blocks (fewer
    blocks = fewer ops: the floor of a latency estimate that charges each op), mlp's dense layers. ``options``
    fixes other builder options per zoo (e.g. ``{mobilenet_v2_like: {kernel: 5}}``). Two fidelities: when
    ``screen_epochs`` is fewer than ``epochs``, a student is first distilled for ``screen_epochs`` (its own stage,
    so the stage cache keeps it) and the trial is pruned when that run's validation accuracy plus ``screen_gain``
    is still under the accuracy the budgets need; otherwise a second distill stage trains it for the remaining
    epochs. ``screen_epochs: null`` (or ≥ ``epochs``): one distill stage, no short run."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    none: bool = True  # "no student": keep the input model
    zoo: list[str] | None = None  # None: small_cnn and mobilenet_v2_like for image inputs, mlp otherwise
    width: list[float] = [0.25, 0.5, 1.0]
    depth: list[int] = [2, 3]
    options: dict[str, dict[str, Any]] = {}  # fixed builder options, per zoo name
    epochs: int = Field(30, ge=1)
    screen_epochs: int | None = Field(5, ge=1)  # None (or >= epochs): one distill stage, no short run first
    # the most the remaining epochs are taken to add to the short run's validation accuracy (absolute)
    # (0.6: only the clearly hopeless go; measured on shapes, a 3-block MobileNetV2 student's 10-epoch short run
    # read 0.42 val top-1 and the same student 0.96 after 100 epochs, +0.54; another read 0.33 after 5 of its 30
    # epochs and 0.78 at the end)
    screen_gain: float = Field(0.6, ge=0, le=1)
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.1, ge=0, le=1)
    # the teacher runs on every augmented batch (stages/distill.py); image inputs only, false: off
    augment: AugmentConfig | None = AugmentConfig()

    @field_validator("width")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(w <= 0 for w in v):
            raise ValueError(f"width must be positive, got {v}")
        return v

    @field_validator("depth")
    @classmethod
    def _depths(cls, v: list[int]) -> list[int]:
        if any(d < 1 for d in v):
            raise ValueError(f"depth choices must be 1 or more, got {v}")
        return v

    @field_validator("augment", mode="before")
    @classmethod
    def _switch(cls, v):
        return switch(v)

    @property
    def screened(self) -> bool:
        """Whether a student's distillation starts with the short run (two stages)."""
        return self.screen_epochs is not None and self.screen_epochs < self.epochs


class MeasureSettings(BaseModel):
    """Bench run settings (plan.RunSettings fields) for a candidate's full measurement on a timed target; the
    target's own settings where not given."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    warmup: int | None = Field(None, ge=0)
    min_runs: int | None = Field(None, ge=1)
    min_seconds: float | None = Field(None, ge=0)
    max_seconds: float | None = Field(None, gt=0)
    launches: int | None = Field(None, ge=1)

    def overrides(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class Space(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    student: StudentSpace = StudentSpace()
    channel: list[float] = [0.0, 0.25, 0.5]  # share of channels channel pruning removes (0: none): a smaller model
    sparsity: list[float] = [0.0, 0.5, 0.8]  # unstructured magnitude pruning (0: none), when not channel pruned
    prune_epochs: int = Field(2, ge=1)
    cluster: list[int] = [0, 16]  # weight clusters (0: no clustering)
    cluster_epochs: int = Field(2, ge=1)
    quant: list[QuantMode] | None = None  # None: every mode the runtimes offer (int8_weights where installed)
    qat_epochs: int = Field(2, ge=1)
    max_accuracy_drop: float = Field(0.01, ge=0, le=1)  # int8_fallback: float ops kept until within this
    runtimes: list[Literal["litert", "onnxruntime"]] | None = None  # None: those the target offers
    threads: list[int] | None = None  # None: the target's own thread count
    sampler: Literal["tpe", "nsga2"] = "tpe"
    # share of the validation split the candidates' stages choose on (early stopping, scans, int8 fallbacks, the
    # guard); the rest ranks them, so no candidate is ranked on rows its stages chose on (data.arrays.
    # selection_view). 0: the whole validation split does both, which flatters the candidates it suits
    holdout: float = Field(0.5, ge=0, lt=1)
    seed: int = 0
    # a candidate within this factor of every budget by its cheap figures (estimate, size) gets the full bench run
    screen_margin: float = Field(1.25, ge=1)
    measure: MeasureSettings = MeasureSettings()

    @field_validator("sparsity", "channel")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if any(not 0 <= s < 1 for s in v):
            raise ValueError(f"choices must be shares in [0, 1), got {v}")
        return v

    @field_validator("cluster")
    @classmethod
    def _clusters(cls, v: list[int]) -> list[int]:
        if any(c != 0 and not 2 <= c <= 256 for c in v):
            raise ValueError(f"cluster choices are 0 (off) or 2..256 clusters, got {v}")
        return v

    @classmethod
    def from_dict(cls, raw: Any, source: str = "optimize") -> Space:
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise UsageError(f"{source}: the optimize section must be a mapping (got {raw!r})",
                             "write e.g. `optimize: {sparsity: [0.0, 0.5], quant: [int8]}`")
        try:
            return cls.model_validate(raw)
        except ValidationError as e:
            raise validation_error(e, source, "see `edgeopt optimize` in README.md for the search space") from None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class Dimensions(BaseModel):
    """The space resolved for one model and target: every dimension's choices as Optuna categoricals."""

    model_config = ConfigDict(frozen=True)
    student: list[str]
    channel: list[float]
    sparsity: list[float]
    cluster: list[int]
    runtime: list[str]
    quant: dict[str, list[str]]  # runtime -> its quant modes
    threads: list[int]

    def size(self) -> int:
        per_runtime = sum(len(self.quant.get(r, [])) for r in self.runtime)
        pruning = sum(len(self.sparsity) if c == 0 else 1 for c in self.channel)
        return len(self.student) * pruning * len(self.cluster) * per_runtime * len(self.threads)

    def empty_dimension(self) -> str | None:
        for name in ("student", "channel", "sparsity", "cluster", "runtime", "threads"):
            if not getattr(self, name):
                return name
        if not any(self.quant.get(r) for r in self.runtime):
            return "quant"
        return None


def student_key(zoo: str, width: float, depth: int | None) -> str:
    return f"{zoo}:w{width:g}" + (f":d{depth}" if depth is not None else "")


def parse_student(key: str, options: dict[str, dict[str, Any]] | None = None) -> dict[str, Any] | None:
    """A student choice as the distill stage's ``student:`` (the width is mobilenet_v2_like's ``alpha``), with the
    space's fixed ``options`` for its zoo builder."""
    if key == NO_STUDENT:
        return None
    zoo, w, *d = key.split(":")
    spec: dict[str, Any] = {"zoo": zoo, ("alpha" if zoo == "mobilenet_v2_like" else "width"): float(w[1:])}
    if d:
        spec["depth"] = int(d[0][1:])
    return {**spec, **(options or {}).get(zoo, {})}


def default_zoos(image_input: bool) -> list[str]:
    """The students searched when the space names none: small CNNs and shallow MobileNetV2s for images (a
    MobileNet-like student with few blocks has few ops, the floor of an estimate that charges every op), MLPs
    for other inputs."""
    return ["small_cnn", "mobilenet_v2_like"] if image_input else ["mlp"]


def _check_student_options(space: StudentSpace, zoos: list[str]) -> None:
    from edgeopt.models import zoo as zoo_mod

    for z, opts in space.options.items():
        if z not in zoos:
            raise UsageError(f"optimize.student.options: {z} is not among the students searched ({', '.join(zoos)})",
                             "give options only for the zoo builders in optimize.student.zoo")
        fixed = {"zoo", "width", "alpha", "depth"} & set(opts)
        if fixed:
            raise UsageError(f"optimize.student.options.{z}: {sorted(fixed)[0]} is a searched dimension",
                             "give its choices in optimize.student.width / depth instead")
        for key, value in opts.items():
            if key not in zoo_mod.options(z):
                raise UsageError(f"optimize.student.options.{z}: {z} has no option '{key}'",
                                 f"its options are: {', '.join(zoo_mod.options(z))}")
            problem = zoo_mod.option_problem(key, [value])
            if problem:
                raise UsageError(f"optimize.student.options.{z}.{key}: {problem}", "give a valid value or drop it")
    if "mobilenet_v2_like" in zoos:
        table = space.options.get("mobilenet_v2_like", {}).get("blocks") or zoo_mod.MOBILENET_V2_32PX_BLOCKS
        total = sum(int(row[2]) for row in table)
        deep = [d for d in space.depth if d > total]
        if deep:
            raise UsageError(f"optimize.student.depth: {deep[0]} is more than mobilenet_v2_like's {total} blocks",
                             f"give depths from 1 to {total} (or a deeper blocks: table in optimize.student.options)")


def resolve(space: Space, target, image_input: bool) -> Dimensions:
    """The choices for ``target`` (its runtimes, its thread count) and a model with image-shaped (H, W, C) or
    other inputs; UsageError when a choice names something the target or the zoo cannot do, or when a dimension
    has no choice at all (an empty space: nothing to search)."""
    from edgeopt.models import zoo as zoo_mod

    zoos = space.student.zoo if space.student.zoo is not None else default_zoos(image_input)
    for z in zoos:
        if z not in zoo_mod.BUILDERS:
            raise UsageError(f"optimize.student.zoo: unknown zoo model '{z}'",
                             f"use one of {', '.join(zoo_mod.BUILDERS)}")
        if not {"width", "alpha"} & set(zoo_mod.options(z)):
            raise UsageError(f"optimize.student.zoo: {z} has no width (or alpha) option to search",
                             "use small_cnn, mlp or mobilenet_v2_like")
    _check_student_options(space.student, zoos)
    students = [NO_STUDENT] if space.student.none else []
    for z in zoos:
        depths = space.student.depth if "depth" in zoo_mod.options(z) else [None]
        students += [student_key(z, w, d) for w in space.student.width for d in depths]
    offered = [r for r in target.runtimes if r in RUNTIME_MODES]
    runtimes = space.runtimes if space.runtimes is not None else offered
    missing = [r for r in runtimes if r not in target.runtimes]
    if missing:
        raise UsageError(f"optimize.runtimes: target {target.name} has no runtime {missing[0]}",
                         f"use the runtimes it offers: {', '.join(offered) or '(none edgeopt converts for)'}")
    threads = space.threads if space.threads is not None else [target.threads]
    too_many = [t for t in threads if t < 1 or t > target.cores]
    if too_many:
        raise UsageError(f"optimize.threads: {too_many[0]} is not in 1..{target.cores} (target {target.name})",
                         f"give thread counts from 1 to {target.cores}")
    from edgeopt.stages.convert import aiedge

    modes = list(space.quant) if space.quant is not None else [
        q for q in QUANT_MODES if q != NEEDS_AIEDGE or aiedge.available()]
    if NEEDS_AIEDGE in modes and not aiedge.available():
        raise UsageError("optimize.quant: int8_weights needs ai-edge-quantizer, which is not installed",
                         f"{aiedge.INSTALL_HINT}, or remove int8_weights from optimize.quant")
    quant = {r: [q for q in modes if q in RUNTIME_MODES[r]] for r in runtimes}
    dims = Dimensions(student=students, channel=list(dict.fromkeys(space.channel)),
                      sparsity=list(dict.fromkeys(space.sparsity)),
                      cluster=list(dict.fromkeys(space.cluster)), runtime=list(runtimes), quant=quant,
                      threads=list(dict.fromkeys(threads)))
    empty = dims.empty_dimension()
    if empty:
        raise UsageError(f"the search space is empty: optimize.{empty} has no choice left for target {target.name}",
                         f"give optimize.{empty} at least one choice (see README.md, `edgeopt optimize`)")
    return dims


def suggest(trial, dims: Dimensions) -> dict[str, Any]:
    """One choice per dimension from an Optuna trial (fixed dimensions are still recorded, as one-choice
    categoricals, so every trial has the same parameter names)."""
    runtime = trial.suggest_categorical("runtime", dims.runtime)
    student = trial.suggest_categorical("student", dims.student)
    channel = trial.suggest_categorical("channel", dims.channel)
    return {"student": student, "channel": channel,
            "sparsity": trial.suggest_categorical("sparsity", dims.sparsity) if channel == 0 else 0.0,
            "cluster": trial.suggest_categorical("cluster", dims.cluster),
            "runtime": runtime,
            "quant": trial.suggest_categorical(f"quant.{runtime}", dims.quant[runtime]),
            "threads": trial.suggest_categorical("threads", dims.threads)}


def choices_of(params: dict[str, Any]) -> dict[str, Any]:
    """A trial's params (as Optuna stores them) back to the choice dict ``suggest`` returned."""
    runtime = params["runtime"]
    return {"student": params["student"], "channel": params.get("channel", 0.0),
            "sparsity": params.get("sparsity", 0.0), "cluster": params["cluster"],
            "runtime": runtime, "quant": params[f"quant.{runtime}"], "threads": params["threads"]}


def to_recipe(choice: dict[str, Any], space: Space, train: TrainDefaults, max_stage_drop: float) -> Recipe:
    """The recipe one candidate runs: distill (a student) → prune → cluster → quantize (QAT) → convert to the one
    format its runtime and quant mode name. Parsed through Recipe.from_dict, so it is a valid recipe file."""
    stages: list[dict[str, Any]] = list(distill_stages(choice, space))
    if choice.get("channel", 0) > 0:
        stages.append({"prune": {"structure": "channel", "target_sparsity": choice["channel"],
                                 "epochs": space.prune_epochs}})
    elif choice["sparsity"] > 0:
        stages.append({"prune": {"target_sparsity": choice["sparsity"], "epochs": space.prune_epochs}})
    if choice["cluster"]:
        stages.append({"cluster": {"number_of_clusters": choice["cluster"], "epochs": space.cluster_epochs}})
    quant = choice["quant"]
    if quant == "qat":
        stages.append({"quantize": {"qat": True, "epochs": space.qat_epochs}})
    precision = {"int8_fallback": "int8", "qat": "int8"}.get(quant, quant)
    convert: dict[str, Any] = {"tflite": [], "onnx": []}
    convert["tflite" if choice["runtime"] == "litert" else "onnx"] = [precision]
    if precision == "int8":
        convert.update(accuracy_aware=quant == "int8_fallback", max_accuracy_drop=space.max_accuracy_drop)
    stages.append({"convert": convert})
    raw = {"train": train.model_dump(mode="json"), "max_stage_drop": max_stage_drop, "stages": stages}
    return Recipe.from_dict(raw, source="optimize candidate")


def distill_stages(choice: dict[str, Any], space: Space) -> list[dict[str, Any]]:
    """The candidate's distill stages: none without a student; with ``screen_epochs`` the short run (the screening
    prefix, see StudentSpace) and its continuation for the remaining epochs (no ``student:``: it trains the short
    run's model further), else one stage of ``epochs``."""
    st = space.student
    student = parse_student(choice["student"], st.options)
    if student is None:
        return []
    common = {"temperature": st.temperature, "alpha": st.alpha,
              "augment": st.augment.model_dump() if st.augment is not None else False}
    if not st.screened:
        return [{"distill": {"student": student, "epochs": st.epochs, **common}}]
    # the continuation restarts its LR schedule (a warm restart). Continuing the short run's schedule instead
    # (distill's start_epoch / run_epochs) read 1.5–2.4 points lower on the three MobileNet students of
    # benchmarks/optimize.py (10 + 70 epochs), and no candidate met its budget; benchmarks/distill_resume.py
    # (5 + 25 epochs, fp32) read the other way, +1.7. Both one seed: kept as it was measured to work.
    return [{"distill": {"student": student, "epochs": st.screen_epochs, **common}},
            {"distill": {"epochs": st.epochs - st.screen_epochs, **common}}]


def describe(choice: dict[str, Any]) -> str:
    """A short, human label of a candidate: 'small_cnn w0.5 d2 · sparsity 0.5 · int8 (litert, 4 threads)'."""
    parts = []
    s = parse_student(choice["student"])
    parts.append("no student" if s is None else " ".join(
        [s["zoo"], f"w{s.get('width', s.get('alpha')):g}", *([f"d{s['depth']}"] if "depth" in s else [])]))
    if choice.get("channel"):
        parts.append(f"channels -{choice['channel']:.0%}")
    if choice["sparsity"]:
        parts.append(f"sparsity {choice['sparsity']:g}")
    if choice["cluster"]:
        parts.append(f"{choice['cluster']} clusters")
    parts.append(f"{choice['quant']} ({choice['runtime']}, {choice['threads']} thr)")
    return " · ".join(parts)
