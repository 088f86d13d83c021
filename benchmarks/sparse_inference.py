"""Does LiteRT here run sparse models faster than dense ones? fp32, 1 thread, edgeopt's own bench harness.

    python benchmarks/sparse_inference.py                 # shapes MobileNetV2 and digits (~5 min on 2 cores)
    python benchmarks/sparse_inference.py --models shapes

Variants of each bundled teacher, all fp32 TFLite, timed side by side (interleaved launches) on x86-cpu with
1 thread: dense (the source); tfmot magnitude pruning to 80 % (unstructured) converted normally and with the
converter's EXPERIMENTAL_SPARSITY (weights stored sparse, DENSIFY ops, what XNNPACK's sparse path needs); tfmot
2:4 (``sparsity_m_by_n=(2, 4)``) both ways; tfmot's ``PruneForLatencyOnXNNPack`` policy (XNNPACK-sparse-ready
pruning of the 1x1 convs) with EXPERIMENTAL_SPARSITY; and edgeopt's channel pruning (half the channels, a
smaller dense model) for contrast. Latency needs the sparsity pattern, not the accuracy: masks are applied by
one tfmot step at learning rate 0 (weights unchanged otherwise), no fine-tune; top-1 is shown for what it is.
Writes benchmarks/results/sparse_inference.{json,md}.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from _common import REPO, md_table, write_results  # noqa: E402

MODELS = {"shapes": "shapes_mobilenetv2.keras", "digits": "digits_cnn.keras"}
SPARSITY = 0.8


def tfmot_masked(model, x, *, m_by_n=None, policy=None):
    """``model`` with tfmot's masks applied (ConstantSparsity from step 0, one step at lr 0), stripped."""
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    from edgeopt.train.layers import copy_model, wrap

    sp = tfmot.sparsity.keras
    sched = sp.ConstantSparsity(SPARSITY, begin_step=0, frequency=1)
    if policy is not None:
        copy = copy_model(model)
        wrapped = sp.prune_low_magnitude(copy, pruning_schedule=sched, pruning_policy=policy)
    else:
        def fits(layer):
            if isinstance(layer, keras.layers.DepthwiseConv2D):
                return False
            if isinstance(layer, keras.layers.Conv2D):
                return not m_by_n or layer.kernel.shape[-2] % 4 == 0
            return isinstance(layer, keras.layers.Dense) and (not m_by_n or layer.kernel.shape[0] % 4 == 0)

        wrapped = wrap(model, [layer for layer in model.layers if fits(layer)], lambda layer: sp.prune_low_magnitude(
            layer, pruning_schedule=sched, sparsity_m_by_n=m_by_n))
    wrapped.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    wrapped.fit(x[:8], model.predict(x[:8], verbose=0).argmax(-1), epochs=1, batch_size=8, verbose=0,
                callbacks=[sp.UpdatePruningStep()])
    return sp.strip_pruning(wrapped)


def xnnpack_ready(model):
    """The same weights in the layout XNNPACK's sparse path (and tfmot's policy) accepts: stride-2 3x3 convs as
    ZeroPadding2D(1) + VALID (TF's SAME pads 0/1 on even sizes, so outputs shift by a pixel; top-1 is shown),
    global pooling with keepdims and a Flatten before the classifier. None when the model has no such stem."""
    import tf_keras as keras

    cfg = model.get_config()
    out, renamed = [], {}
    for entry in cfg["layers"]:
        c = entry["config"]
        entry["inbound_nodes"] = [[[renamed.get(n[0], n[0]), *n[1:]] for n in node] for node in entry["inbound_nodes"]]
        if entry["class_name"] in ("Conv2D", "DepthwiseConv2D") and tuple(c["strides"]) == (2, 2) and \
                tuple(c["kernel_size"]) == (3, 3) and c["padding"] == "same":
            pad = {"module": "keras.layers", "class_name": "ZeroPadding2D", "registered_name": None,
                   "config": {"name": f"{c['name']}_pad", "padding": [[1, 1], [1, 1]]}, "name": f"{c['name']}_pad",
                   "inbound_nodes": entry["inbound_nodes"]}
            out.append(pad)
            entry["inbound_nodes"] = [[[pad["name"], 0, 0, {}]]]
            c["padding"] = "valid"
        out.append(entry)
        if entry["class_name"] == "GlobalAveragePooling2D" and not c.get("keepdims"):
            c["keepdims"] = True
            flat = {"module": "keras.layers", "class_name": "Flatten", "registered_name": None,
                    "config": {"name": f"{c['name']}_flat"}, "name": f"{c['name']}_flat",
                    "inbound_nodes": [[[entry["name"], 0, 0, {}]]]}
            out.append(flat)
            renamed[entry["name"]] = flat["name"]
    cfg["layers"] = out
    cfg["output_layers"] = [[renamed.get(o[0], o[0]), *o[1:]] for o in cfg["output_layers"]]
    new = keras.Model.from_config(cfg)
    for layer in model.layers:
        if layer.weights:
            new.get_layer(layer.name).set_weights(layer.get_weights())
    return new


def tflite(model, sparse: bool) -> bytes:
    import tensorflow as tf

    from edgeopt.stages.convert.tflite import converter_for

    conv = converter_for(model)
    if sparse:
        conv.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    return conv.convert()


def kernel_sparsity(model) -> float:
    from edgeopt.train.layers import kernel_sparsity as per_layer
    from edgeopt.train.layers import overall

    return overall(per_layer(model))


def variants(model, dataset, log):
    from edgeopt.stages.prune import PruneConfig
    from edgeopt.stages.prune_channels import pickable
    from edgeopt.train import channels
    from edgeopt.train.layers import copy_model

    out = {"dense": (model, False)}
    masked = tfmot_masked(model, dataset.x_train)
    out["unstructured 0.8"] = (masked, False)
    out["unstructured 0.8, sparse storage"] = (masked, True)
    two_four = tfmot_masked(model, dataset.x_train, m_by_n=(2, 4))
    out["2:4"] = (two_four, False)
    out["2:4, sparse storage"] = (two_four, True)
    try:
        import tensorflow_model_optimization as tfmot

        policy = tfmot.sparsity.keras.PruneForLatencyOnXNNPack()
        ready = xnnpack_ready(model)
        out["XNNPACK layout, dense"] = (ready, False)
        xnn = tfmot_masked(ready, dataset.x_train, policy=policy)
        out["XNNPACK policy 0.8"] = (xnn, False)
        out["XNNPACK policy 0.8, sparse storage"] = (xnn, True)
    except ValueError as e:  # the policy refuses models it cannot make XNNPACK-sparse
        log["XNNPACK policy 0.8, sparse storage"] = f"tfmot refused: {str(e).splitlines()[0][:200]}"
    g = channels.analyse(copy_model(model))
    found = pickable(g, PruneConfig(structure="channel", target_sparsity=0.5))
    out["channel pruning 0.5 (dense, smaller)"] = (channels.slim(g, channels.choose(
        g, {grp.name: 0.5 for grp in found}, "l1", found)), False)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--launches", type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from edgeopt.bench.orchestrate import benchmark
    from edgeopt.bench.targets import load_target
    from edgeopt.core import graph
    from edgeopt.data.loaders import load_dataset
    from edgeopt.models.load import load_model

    payload, md = {"sparsity": SPARSITY, "threads": 1, "models": {}}, ["# Sparse inference in LiteRT (fp32, 1 thread)\n"]
    for name in args.models:
        start = time.perf_counter()
        dataset = load_dataset(name)
        model = load_model(REPO / "sample_models" / MODELS[name])
        notes: dict = {}
        with tempfile.TemporaryDirectory() as tmp:
            files = {}
            for label, (m, sparse) in variants(model, dataset, notes).items():
                path = Path(tmp) / f"{name}_{len(files)}.tflite"
                path.write_bytes(tflite(m, sparse))
                ops = {op.type for op in graph.read_tflite(path.read_bytes()).main.ops}
                files[label] = (path, kernel_sparsity(m), "DENSIFY" in ops, graph.read_tflite(path.read_bytes()).macs())
            rep = benchmark([p for p, *_ in files.values()], [load_target("x86-cpu")], dataset, None, threads=1,
                            launches=args.launches, min_seconds=1.0, min_runs=100, warmup=20)
        by_file = {Path(m.artifact).name: m for m in rep.results}
        base = None
        rows, runs = [], []
        for label, (path, sparsity, densify, macs) in files.items():
            m = by_file.get(path.name)
            p50 = m.latency_ms.p50 if m is not None and m.latency_ms is not None else None
            base = base if base is not None else p50
            runs.append({"variant": label, "kernel_sparsity": sparsity, "densify_ops": densify, "macs": macs,
                         "size_bytes": path.stat().st_size if path.exists() else None, "p50_ms": p50,
                         "accuracy": m.accuracy if m is not None else None,
                         "status": m.status if m is not None else "missing"})
            rows.append([label, f"{sparsity:.2f}", "yes" if densify else "no", f"{macs / 1e6:.2f}",
                         f"{p50:.4f}" if p50 else "—", f"{base / p50:.2f}×" if p50 and base else "—",
                         f"{m.accuracy:.4f}" if m is not None and m.accuracy is not None else "—"])
        for label, why in notes.items():
            rows.append([label, "—", "—", "—", "—", "—", why])
        payload["models"][name] = {"runs": runs, "refused": notes, "wall_s": round(time.perf_counter() - start, 1)}
        md += [f"## {name}\n", md_table(["variant", "kernel sparsity", "DENSIFY ops", "MMACs (graph)", "p50 ms",
                                        "speed-up vs dense", "test top-1 (no fine-tune)"], rows)]
        print("\n".join(md[-2:]), flush=True)
    md.append(f"\nx86-cpu target, 1 thread, {args.launches} interleaved launches per artifact; p50 of the launches' "
              "samples. Pruned variants are not fine-tuned (latency depends on the pattern, not the values).\n")
    write_results("sparse_inference", payload, "\n".join(md))


if __name__ == "__main__":
    main()
