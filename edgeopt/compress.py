"""compress(): load the model and data, run the recipe (recipe.run, the pipeline loop) in a staging folder,
write manifest.json, and move the folder into place only when every stage is done."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from edgeopt._callable import callable_module
from edgeopt.core.artifact import Artifact, Manifest
from edgeopt.errors import UsageError
from edgeopt.out_folder import check_out, make_staging, swap_into_place
from edgeopt.recipe import Recipe, load_recipe, run
from edgeopt.stages import StageContext


def _check_named_inputs(model, dataset) -> None:
    """Several inputs: the data's ``x_<split>.<name>`` keys are the model's input names, with matching shapes."""
    names = list(getattr(model, "input_names", None) or [])
    shapes = dataset.input_shapes
    if sorted(names) != sorted(shapes):
        raise UsageError(f"the model's inputs are named {', '.join(names) or '?'} but data '{dataset.name}' has "
                         f"{', '.join(shapes)}", "name the .npz keys x_train.<input name> after the model's inputs")
    for name, want in zip(names, model.input_shape, strict=True):
        want = tuple(want[1:])
        if len(want) != len(shapes[name]) or any(d is not None and d != n for d, n in zip(want, shapes[name],
                                                                                          strict=True)):
            raise UsageError(f"the model's input {name} takes shape {want} but data '{dataset.name}' has "
                             f"{shapes[name]}", "pass the data set the model was trained on")


def check_compatible(model, dataset, labels: bool = True) -> None:
    multi = isinstance(getattr(model, "input_shape", None), list)
    if multi or getattr(dataset, "input_shapes", None):
        if not multi:
            raise UsageError(f"data '{dataset.name}' has several inputs ({', '.join(dataset.input_shapes)}) but the "
                             "model takes one", "give the model's one input as x_train, x_test")
        _check_named_inputs(model, dataset)
        if labels:
            from edgeopt.stages.convert import predict

            out = predict(model, dataset.x_test[:2])
            if out.ndim == 2:
                dataset.check_labels(int(out.shape[-1]), "the model's first output")
        return
    in_shape = tuple(None if d is None else int(d) for d in model.input_shape[1:])
    fits = len(in_shape) == len(dataset.input_shape) and all(
        d is None or d == n for d, n in zip(in_shape, dataset.input_shape, strict=True))  # None: any length
    if not fits:
        shown = tuple("None" if d is None else d for d in in_shape)
        raise UsageError(f"the model takes inputs of shape {shown} but data '{dataset.name}' has {dataset.input_shape}",
                         "pass the data set the model was trained on")
    if not labels:
        return
    from edgeopt.stages.convert import predict

    out = predict(model, dataset.x_test[:2])  # several outputs: the first one
    if out.ndim == 2:
        dataset.check_labels(int(out.shape[-1]), "the model's output")
    if out.ndim != 2 or out.shape[-1] != dataset.num_classes:
        raise UsageError(f"the model outputs shape {out.shape[1:]} but data '{dataset.name}' has "
                         f"{dataset.num_classes} classes", "pass matching data, or --task regression|multilabel|raw "
                         "for a model that is not a classifier")


def fit_classes(model, dataset):
    """The data's class count from --num-classes or the model's output width (never from the labels present), and
    its class order from the model's class names where it carries them (edgeopt.data.classes)."""
    from edgeopt.data.classes import fit_to_model, model_class_names, output_width

    if not hasattr(dataset, "info"):  # a data set object from elsewhere: taken as it is
        return dataset
    from edgeopt.stages.convert import predict

    width = output_width(predict(model, dataset.x_test[:2]))  # several inputs and outputs: by name, the first
    return fit_to_model(dataset, width, "the model's output", model_class_names(model))


def _copy_source(model_path: Path, staging: Path, base: str) -> Artifact:
    dest = staging / (f"{base}_source" if model_path.is_dir() else f"{base}_source{model_path.suffix}")
    if model_path.is_dir():
        shutil.copytree(model_path, dest)
    else:
        shutil.copy2(model_path, dest)
    return Artifact.from_file(dest, name=dest.name, precision="fp32", role="source", relative_to=staging)


def _chain(rec: Recipe, model_path: Path, dataset, max_mb: float | None):
    """The stage cache's keys for this run, or None when the recipe has no model stage to cache."""
    from edgeopt.stage_cache import Chain, StageCache
    from edgeopt.stages import STAGES

    if not any(STAGES[name].yields == "model" for name, _ in rec.stages):
        return None
    return Chain.start(StageCache.default(max_mb), model_path, dataset)


def compress(model_path, data, out, recipe: Recipe | str | Path | None = None,
             progress: Callable[[str], None] | None = None, force: bool = False,
             signature: str | None = None, num_classes: int | None = None, scale: str | None = None,
             cache: bool = True, cache_max_mb: float | None = None, task: str | None = None,
             metric: str | None = None) -> Manifest:
    """Run ``recipe`` on the model at ``model_path`` with ``data``; write ``out``/manifest.json.

    A stage the accuracy guard stops ends the run early, not with an exception: ``out`` then holds what was made
    before it and the manifest's ``guard`` section has ``verdict: stopped`` (the CLI exits 1 on it). ``out`` must
    be new, empty or an earlier edgeopt output (``force``: one that also holds other files, which stay); see
    edgeopt.out_folder. ``signature``: the signature of a plain SavedModel to compress (default: serving_default,
    or the only one). ``num_classes``, ``scale``: as ``--num-classes``, ``--scale`` (see edgeopt.data.loaders).
    ``cache``: take model stages already run on the same model, data and settings from the stage cache
    (edgeopt.stage_cache) and store the ones that run; ``cache_max_mb`` its size limit (default
    ``$EDGEOPT_CACHE_MAX_MB`` or 2048). ``task``: classification | multilabel | regression | raw (default: the
    recipe's ``task:``, else inferred from the model's output and the labels); ``metric``: ``module:function``, the
    user's own headline metric (see core.metrics.load_metric)."""
    from edgeopt.data.classes import describe as describe_data
    from edgeopt.data.loaders import load_dataset
    from edgeopt.models.load import check_model_path, load_model
    from edgeopt.models.saved_model import describe

    model_path = check_model_path(model_path)
    out = check_out(out, model_path, force)
    rec = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    rec = rec.with_default_convert()
    if hasattr(data, "x_test"):
        dataset = data
        if scale is not None:
            raise UsageError(f"scale={scale!r} with a Dataset object", "scale applies when data names an image folder")
        if num_classes is not None:
            from edgeopt.data.classes import with_num_classes

            dataset = with_num_classes(dataset, num_classes)
    else:
        dataset = load_dataset(data, num_classes=num_classes, scale=scale)
    # a bridged Keras 3 model is checked on real data
    model = load_model(model_path, sample=dataset.x_val[:64], signature=signature)
    check_compatible(model, dataset, labels=False)
    labelled = getattr(dataset, "labelled", True)
    from edgeopt.data.tasks import for_output, resolve
    from edgeopt.stages.convert import predict

    outputs = list(getattr(model, "output_names", None) or [])
    dataset = for_output(dataset, outputs[0] if len(outputs) > 1 else None)
    scored, dataset = resolve(dataset, lambda x: predict(model, x), task or rec.task, metric)
    if len(outputs) > 1:  # several outputs: the first is scored (by name: TFLite orders them by name)
        scored = replace(scored, output=outputs[0])
    if scored.classifier_labels:  # class ids (the data's, or the source's own top-1): the model's class count
        dataset = fit_classes(model, dataset)
        check_compatible(model, dataset)
    base = model_path.stem if model_path.is_file() else model_path.name
    staging = make_staging(out)
    try:
        source = _copy_source(model_path, staging, base)
        ctx = StageContext(dataset=dataset, out_dir=staging, base_name=base, train=rec.train, teacher=model,
                           parent=source.name, progress=progress or (lambda m: None), task=scored)
        chain = _chain(rec, model_path, dataset, cache_max_mb) if cache and getattr(dataset, "input_shapes", None) is None else None
        artifacts = [source, *run(rec, model, ctx, chain)]
        manifest = Manifest(source={"path": str(model_path.resolve()), "name": base, "data": dataset.name,
                                    "labels": "data" if labelled else
                                    f"none: scored by {scored.metric.name} with the source model",
                                    "recipe": rec.to_dict(), "model": describe(model), **scored.describe(),
                                    "dataset": describe_data(dataset) if hasattr(dataset, "info") else None},
                            artifacts=artifacts, extra=dict(ctx.notes))
        manifest.save(staging)
        out = check_out(out, model_path, force)  # again: the folder may have changed while the stages ran
        swap_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


callable_module(__name__, compress)  # edgeopt.compress(...) stays the function (edgeopt/_callable.py)
