"""Distill stage: train a student on the labels and on the softened outputs of a frozen teacher.

Teacher: ``teacher:`` (a model file) or the model compress was given. Student: ``student: {zoo: ...}`` (built
fresh), ``student: {path: ...}`` (a model file), or — without ``student:`` — the previous stage's model (e.g.
the tuned student, trained further). The stage returns the plain student (softmax output, float32), not the
Distiller wrapper, so later stages and the converters see an ordinary model.

``augment:`` (image inputs; off unless asked) shifts/crops/flips/turns every training batch and runs the teacher
on the augmented batch, so the student matches the teacher on inputs it never saw as they are ("function
matching", Beyer et al. 2022), where fixed teacher logits of a small training set overfit. Measured on the
bundled shapes teacher's validation split (6,000 training images) with a 3-block MobileNetV2-like student:
0.56 val top-1 after 30 epochs without augmentation, 0.78 with shifts, crops and flips; 0.958 (the teacher:
0.945) after 100 epochs with quarter turns too, the teacher's own training augmentation.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edgeopt.errors import UsageError
from edgeopt.models.zoo import ModelSpec
from edgeopt.train.augment import AugmentConfig

if TYPE_CHECKING:
    from edgeopt.stages import StageContext

log = logging.getLogger(__name__)


class DistillConfig(BaseModel):
    """Teacher → student: loss = alpha·CE(labels) + (1 − alpha)·T²·KL(teacher_T ‖ student_T)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    student: ModelSpec | None = None  # None: keep training the previous stage's model
    teacher: str | None = None  # a model file; default: the model compress was given
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.1, ge=0, le=1)
    epochs: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0)
    augment: AugmentConfig | None = None  # true: shift 0.1, crop 0.1 (train/augment.py); image inputs only
    # one run in two stages (e.g. a short screening run, then the rest): this stage trains ``epochs`` epochs from
    # epoch ``start_epoch`` of a run of ``run_epochs``, and the LR schedule goes on where the first part left it
    # (shapes, 3-block student, 5 + 25 epochs: val 0.834 restarted, 0.851 resumed; benchmarks/distill_resume.py)
    start_epoch: int = Field(0, ge=0)
    run_epochs: int | None = Field(None, ge=1)  # None: start_epoch + epochs

    @field_validator("augment", mode="before")
    @classmethod
    def _switch(cls, v):
        from edgeopt.train.fit import switch

        return switch(v)

    @model_validator(mode="after")
    def _within_the_run(self) -> DistillConfig:  # (epochs from train: is checked when the stage runs)
        past = past_the_run(self, self.epochs)
        if past:
            raise ValueError(f"{past}: {RUN_FIX}")
        return self


RUN_FIX = "give run_epochs ≥ start_epoch + epochs, or leave run_epochs out"


def past_the_run(cfg: DistillConfig, epochs: int | None) -> str | None:
    """What is wrong when ``epochs`` from ``cfg.start_epoch`` run past ``cfg.run_epochs``, or None."""
    if epochs is None or cfg.run_epochs is None or cfg.run_epochs >= cfg.start_epoch + epochs:
        return None
    return f"start_epoch {cfg.start_epoch} + epochs {epochs} run past run_epochs {cfg.run_epochs}"


def build_student(cfg: DistillConfig, previous, dataset, seed: int = 0):
    """The student the config names (fresh zoo model or loaded file), or ``previous`` when it names none."""
    if cfg.student is None:
        return previous
    if cfg.student.path is not None:
        from edgeopt.models.load import load_model

        return load_model(cfg.student.path)
    import tf_keras as keras

    from edgeopt.models import zoo

    keras.utils.set_random_seed(seed)
    return zoo.build(cfg.student.zoo, dataset.input_shape, dataset.num_classes, **cfg.student.options)


def load_teacher(cfg: DistillConfig, ctx: StageContext):
    if cfg.teacher is None:
        if ctx.teacher is None:
            raise UsageError("the distill stage has no teacher", "give teacher: <model file> in the distill stage")
        return ctx.teacher
    from edgeopt.models.load import load_model

    return load_model(cfg.teacher)


def check_pair(teacher, student, dataset) -> None:
    """Both are classifiers over the data set's classes; the student takes the data's inputs."""
    from edgeopt.stages.tune import check_teacher
    from edgeopt.train.distiller import num_classes

    check_teacher(teacher, dataset, "teacher")
    if getattr(student, "output_shape", None) and num_classes(student) != num_classes(teacher):
        raise UsageError(f"the student outputs {num_classes(student)} classes but the teacher {num_classes(teacher)}",
                         "give the student as many classes as the teacher (zoo students take them from the data)")
    check_teacher(student, dataset, "student")
    in_shape = tuple(int(d) for d in student.input_shape[1:])
    if in_shape != tuple(dataset.input_shape):
        raise UsageError(f"the student takes inputs of shape {in_shape} but data '{dataset.name}' has "
                         f"{dataset.input_shape}", "build the student for the data set's input shape")


def distill(teacher, student, dataset, cfg: DistillConfig, train, progress=None):
    """Train ``student`` from ``teacher`` on ``dataset``'s train split; returns (student, notes)."""
    from edgeopt.models.load import use_legacy_keras

    use_legacy_keras()
    from edgeopt.train.distiller import teacher_logits
    from edgeopt.train.fit import Settings, evaluate
    from edgeopt.train.fit import train as fit

    check_pair(teacher, student, dataset)
    if student is teacher:
        log.warning("distill: the student is the teacher itself (no student: and no earlier stage); "
                    "this is self-distillation — give student: {zoo: ...} for a smaller model")
    from edgeopt.train import augment as augment_mod
    from edgeopt.train.distiller import logits_of

    settings = Settings.from_train(train, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                                   temperature=cfg.temperature, alpha=cfg.alpha, augment=cfg.augment,
                                   start_epoch=cfg.start_epoch, run_epochs=cfg.run_epochs)
    past = past_the_run(cfg, settings.epochs)
    if past:
        raise UsageError(f"distill: {past}", RUN_FIX)
    augmented = augment_mod.describe(cfg.augment, dataset.input_shape)
    # augmented batches need the teacher's logits of each batch as augmented; plain ones take them once
    soft = None if augmented["applied"] else teacher_logits(teacher, dataset.x_train)
    on_the_fly = logits_of(teacher, "teacher")[1] if augmented["applied"] else None
    val = (dataset.x_val, dataset.y_val) if len(dataset.x_val) else None
    on_epoch = (lambda e, logs: progress(e + 1, settings.epochs, logs)) if progress else None
    source = student
    if student is teacher:  # train a copy: the teacher's own weights must stay frozen
        import tf_keras as keras

        source = keras.models.clone_model(teacher)
        source.set_weights(teacher.get_weights())
    student, history = fit(source, dataset.x_train, dataset.y_train, settings, soft=soft, teacher=on_the_fly,
                           validation=val, on_epoch=on_epoch)
    # figures on the validation split: the student is not a final artifact, so the test split stays unread
    # (convert reads it once for the artifacts made from this model)
    notes = {"temperature": cfg.temperature, "alpha": cfg.alpha, "epochs": settings.epochs,
             "split": "val" if val else None, "augment": augmented,
             **({"schedule": {"start_epoch": cfg.start_epoch, "run_epochs": settings.run_epochs
                              or cfg.start_epoch + settings.epochs}} if cfg.start_epoch or cfg.run_epochs else {}),
             "student": {"name": student.name, "params": int(student.count_params())},
             "teacher": {"name": teacher.name, "params": int(teacher.count_params())},
             "val_accuracy": [round(v, 4) for v in history.get("val_accuracy", [])]}
    if val:
        for role, net in (("student", student), ("teacher", teacher)):
            notes[role]["val_accuracy"] = evaluate(net, *val)["accuracy"]
        log.info("distill: student %s (%d params) val accuracy %.4f; teacher %s (%d params) %.4f", student.name,
                 student.count_params(), notes["student"]["val_accuracy"], teacher.name, teacher.count_params(),
                 notes["teacher"]["val_accuracy"])
    return student, notes


def student_origin(cfg: DistillConfig, stages_done: list[str]) -> str:
    """Which model the stage trains, in words for the log and the manifest."""
    earlier = stages_done[-1] if stages_done else None
    if cfg.student is None:
        return (f"the {earlier} stage's model, trained further (no student: given)" if earlier
                else "a copy of the input model (no student: given, no earlier stage): self-distillation")
    what = f"file {cfg.student.path}" if cfg.student.path is not None else f"a fresh {cfg.student.zoo}" + (
        f" ({', '.join(f'{k}={v}' for k, v in cfg.student.options.items())})" if cfg.student.options else "")
    if earlier:
        return (f"{what} from student: — the {earlier} stage's model is not used (drop student: to train it "
                "further)")
    return f"{what} from student:"


def apply(model, ctx: StageContext, cfg: DistillConfig):
    teacher = load_teacher(cfg, ctx)
    student = build_student(cfg, model, ctx.dataset, seed=ctx.train.seed)
    origin = student_origin(cfg, ctx.stages_done)
    # a fresh student after tune/prune throws the earlier stage's work away: worth a warning, not a whisper
    (log.warning if cfg.student is not None and ctx.stages_done else log.info)("distill: the student is %s", origin)
    ctx.progress(f"distill: {cfg.epochs or ctx.train.epochs} epochs, T={cfg.temperature:g}, alpha={cfg.alpha:g}")
    student, notes = distill(teacher, student, ctx.dataset, cfg, ctx.train)
    notes["student"]["origin"] = origin
    ctx.notes["distillation"] = notes
    return student
