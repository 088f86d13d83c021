"""Model kinds a user brings, each built tiny here and taken through compress → bench → gate.

Every kind asks for TFLite fp32 + int8 and ONNX fp32 + int8; the test states which of them each kind reaches and
how the others are reported (a `failed` manifest entry with its reason, or `requires: flex`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

STEPS, FEATURES, VOCAB, TOKENS = 8, 4, 40, 10
RECIPE = {"stages": [{"convert": {"tflite": ["fp32", "int8"], "onnx": ["fp32", "int8"], "calibration_samples": 32,
                                  "max_accuracy_drop": 0.1}}]}
ALL = {"fp32.tflite", "int8.tflite", "fp32.onnx", "int8.onnx"}


def _sequences(rng, n):
    """Class = which of the first three features has the largest mean over time: learnable by any RNN."""
    x = rng.random((n, STEPS, FEATURES)).astype(np.float32)
    x[np.arange(n), :, rng.integers(0, 3, n)] += 0.5
    return x, x.mean(1)[:, :3].argmax(1)


def _tokens(rng, n):
    x = rng.integers(1, VOCAB, (n, TOKENS)).astype(np.int32)
    return x, ((x >= VOCAB // 2).mean(1) > 0.5).astype(np.int64)  # mostly "high" tokens: average pooling sees it


def _fit(model, x, y, loss="sparse_categorical_crossentropy"):
    import tf_keras as K

    model.compile(K.optimizers.Adam(0.01), loss)
    model.fit(x, y, epochs=10, batch_size=32, verbose=0)
    return model


def _build(kind: str, folder: Path) -> tuple[Path, Path]:
    """(model path, data .npz) of one kind; Keras's layer-name counters are reset after, as they were before."""
    import tf_keras as K

    try:
        return _make(kind, folder)
    finally:
        K.backend.clear_session()


def _make(kind: str, folder: Path) -> tuple[Path, Path]:
    import tensorflow as tf
    import tf_keras as K

    K.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    if kind in ("regression", "multilabel"):
        return _task_kind(kind, folder, rng)
    if kind in ("two_inputs", "two_outputs"):
        return _several(kind, folder, rng)
    tokens = kind == "embedding"
    x, y = (_tokens if tokens else _sequences)(rng, 400)
    data = folder / f"{kind}.npz"
    labels = {} if kind == "unlabelled" else {"y_train": y[:300], "y_test": y[300:]}
    np.savez(data, x_train=x[:300], x_test=x[300:], **labels)
    if tokens:
        inp = K.layers.Input((TOKENS,), dtype="int32")
        h = K.layers.GlobalAveragePooling1D()(K.layers.Embedding(VOCAB, 8)(inp))
        model = K.Model(inp, K.layers.Dense(2, activation="softmax")(h))
    elif kind == "tf_module":
        keras_model = _fit(K.Sequential([K.layers.Input((STEPS, FEATURES)), K.layers.Flatten(),
                                         K.layers.Dense(3, activation="softmax")]), x[:300], y[:300])

        class Classifier(tf.Module):  # the plain-TF export: no Keras object in the SavedModel
            def __init__(self):
                super().__init__()
                self.w, self.b = (tf.Variable(v) for v in keras_model.layers[-1].get_weights())

            @tf.function(input_signature=[tf.TensorSpec([None, STEPS, FEATURES], tf.float32)])
            def __call__(self, x):
                return {"probs": tf.nn.softmax(tf.reshape(x, (-1, STEPS * FEATURES)) @ self.w + self.b)}

        path = folder / "tf_module"
        module = Classifier()
        tf.saved_model.save(module, str(path), signatures={"serving_default": module.__call__})
        return path, data
    elif kind == "tf1_saved_model":
        path = folder / "tf1_saved_model"
        w, b = _fit(K.Sequential([K.layers.Input((STEPS, FEATURES)), K.layers.Flatten(),
                                  K.layers.Dense(3, activation="softmax")]), x[:300], y[:300]).layers[-1].get_weights()
        graph = tf.Graph()
        with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
            inp = tf.compat.v1.placeholder(tf.float32, [None, STEPS, FEATURES], name="x")
            wv, bv = tf.compat.v1.Variable(w), tf.compat.v1.Variable(b)
            probs = tf.nn.softmax(tf.matmul(tf.reshape(inp, [-1, STEPS * FEATURES]), wv) + bv)
            sess.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(str(path))
            sig = tf.compat.v1.saved_model.predict_signature_def({"x": inp}, {"probs": probs})
            builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={"serving_default": sig})
            builder.save()
        return path, data
    else:
        layer = {"lstm": K.layers.LSTM, "gru": K.layers.GRU, "simple_rnn": K.layers.SimpleRNN,
                 "gru_any_length": K.layers.GRU, "unlabelled": K.layers.GRU}[kind]
        steps = None if kind == "gru_any_length" else STEPS
        model = K.Sequential([K.layers.Input((steps, FEATURES)), layer(12), K.layers.Dense(3, activation="softmax")])
    path = folder / f"{kind}.keras"
    _fit(model, x[:300], y[:300]).save(path)
    return path, data


def _task_kind(kind: str, folder: Path, rng) -> tuple[Path, Path]:
    """A regression head (float targets, linear output) or a multi-label one (0/1 matrix, sigmoid outputs)."""
    import tf_keras as K

    x, _ = _sequences(rng, 400)
    means = x.mean(1)
    if kind == "regression":
        y = (means @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.1 * rng.normal(size=400)).astype(np.float32)
        head, loss = K.layers.Dense(1), "mse"
    else:
        y = (means[:, :3] > np.median(means[:, :3], axis=0)).astype(np.float32)  # three independent labels
        head, loss = K.layers.Dense(3, activation="sigmoid"), "binary_crossentropy"
    model = K.Sequential([K.layers.Input((STEPS, FEATURES)), K.layers.Flatten(), K.layers.Dense(16, activation="relu"),
                          head])
    path, data = folder / f"{kind}.keras", folder / f"{kind}.npz"
    np.savez(data, x_train=x[:300], y_train=y[:300], x_test=x[300:], y_test=y[300:])
    _fit(model, x[:300], y[:300], loss).save(path)
    return path, data


def _several(kind: str, folder: Path, rng) -> tuple[Path, Path]:
    """two_inputs: a Keras 3 functional classifier of a sequence and a feature vector (named inputs); two_outputs:
    a tf_keras model with a class head and a value head (named outputs). The .npz names them: x_train.<input>,
    y_train.<output>."""
    x, y = _sequences(rng, 400)
    meta = x.mean(1).astype(np.float32)  # a second view of the same sample
    value = (meta @ np.array([1.0, -2.0, 0.5, 3.0])).astype(np.float32)
    data = folder / f"{kind}.npz"
    if kind == "two_inputs":
        import keras

        keras.utils.set_random_seed(0)
        seq, feat = keras.Input((STEPS, FEATURES), name="seq"), keras.Input((FEATURES,), name="feat")
        h = keras.layers.Concatenate()([keras.layers.Flatten()(seq), keras.layers.Dense(8, activation="relu")(feat)])
        model = keras.Model([seq, feat], keras.layers.Dense(3, activation="softmax", name="probs")(h))
        model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
        model.fit({"seq": x[:300], "feat": meta[:300]}, y[:300], epochs=10, batch_size=32, verbose=0)
        np.savez(data, **{"x_train.seq": x[:300], "x_train.feat": meta[:300], "x_test.seq": x[300:],
                          "x_test.feat": meta[300:], "y_train": y[:300], "y_test": y[300:]})
    else:
        import tf_keras as K

        inp = K.layers.Input((STEPS, FEATURES), name="seq")
        h = K.layers.Dense(16, activation="relu")(K.layers.Flatten()(inp))
        model = K.Model(inp, [K.layers.Dense(3, activation="softmax", name="probs")(h), K.layers.Dense(1, name="value")(h)])
        model.compile(K.optimizers.Adam(0.01), ["sparse_categorical_crossentropy", "mse"])
        model.fit(x[:300], [y[:300], value[:300]], epochs=10, batch_size=32, verbose=0)
        np.savez(data, x_train=x[:300], x_test=x[300:], **{"y_train.probs": y[:300], "y_test.probs": y[300:],
                                                           "y_train.value": value[:300], "y_test.value": value[300:]})
    path = folder / f"{kind}.keras"
    model.save(path)
    return path, data


@pytest.fixture(scope="module")
def run_kind(tmp_path_factory):
    """kind → (manifest, report, out folder), each built, compressed and benchmarked once."""
    done: dict = {}

    def go(kind: str):
        if kind not in done:
            from edgeopt import benchmark
            from edgeopt.compress import compress
            from edgeopt.recipe import Recipe

            folder = tmp_path_factory.mktemp(kind)
            model, data = _build(kind, folder)
            manifest = compress(model, str(data), folder / "out", recipe=Recipe.from_dict(RECIPE))
            report = benchmark([folder / "out"], data=str(data), out=folder / "report.json", warmup=1, min_runs=3,
                               min_seconds=0, max_seconds=1, max_runs=10, launches=1)
            done[kind] = manifest, report, folder
        return done[kind]

    return go


def _artifacts(manifest) -> dict:
    return {f"{a.precision}.{a.format}": a for a in manifest.artifacts if a.role == "artifact"}


def _ops(path: Path) -> set[str]:
    from edgeopt.core import graph

    return {op.type for op in graph.read_tflite(path.read_bytes()).main.ops}


@pytest.mark.parametrize("kind", ["tf_module", "tf1_saved_model", "lstm", "gru", "simple_rnn", "embedding"])
def test_kind_reaches_every_format_with_parity(kind, run_kind):
    manifest, report, folder = run_kind(kind)
    arts = _artifacts(manifest)
    assert set(arts) == ALL
    for name, a in arts.items():
        assert a.status == "ok" and a.error is None, (name, a.error)
        par = a.info["parity"]
        assert par["agreement"] >= 0.9, (name, par)
        if a.precision == "fp32":
            assert par["max_abs_diff"] < 1e-4, (name, par)
    assert arts["fp32.tflite"].info["parity"]["source_accuracy"] > 0.6  # the tiny model learned something
    ops = _ops(folder / "out" / arts["int8.tflite"].path)
    assert not ops & {"WHILE", "CUSTOM"}, ops  # builtins only: no TensorList loop, no Select TF ops
    if kind == "lstm":
        assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in ops  # the fused op
    found = manifest.source["model"]
    assert found["inputs"][0]["shape"][1:] == ([TOKENS] if kind == "embedding" else [STEPS, FEATURES])
    assert found["inputs"][0]["dtype"] == ("int32" if kind == "embedding" else "float32")
    if "saved_model" in kind or kind == "tf_module":
        assert found["kind"] == "saved_model" and found["signature"] == "serving_default"
    results = {m.artifact: m for m in report.results}
    assert all(m.status == "ok" for m in results.values()), {m.artifact: m.error for m in results.values()}
    assert results[arts["int8.tflite"].name].accuracy is not None


def test_embedding_model_gets_integer_token_ids(run_kind):
    from edgeopt.runtimes.litert import load

    manifest, _, folder = run_kind("embedding")
    arts = _artifacts(manifest)
    for name in ("fp32.tflite", "int8.tflite"):
        session = load(str(folder / "out" / arts[name].path))
        assert np.dtype(session.input["dtype"]) == np.int32  # ids stay ids; only the weights are int8


def test_gru_without_fixed_length_reports_what_it_could_not_build(run_kind):
    manifest, report, _ = run_kind("gru_any_length")
    arts = _artifacts(manifest)
    assert arts["int8.tflite"].status == "failed" and "sequence length is not fixed" in arts["int8.tflite"].error
    assert arts["fp32.tflite"].status == "ok" and arts["fp32.tflite"].info["requires"] == "flex"
    assert arts["fp32.onnx"].status == "ok" and arts["fp32.onnx"].info["parity"]["agreement"] >= 0.9
    results = {m.artifact: m for m in report.results}
    unbuilt = results[arts["int8.tflite"].name]
    assert unbuilt.status == "skipped" and "not built by compress" in unbuilt.error
    flex = results[arts["fp32.tflite"].name]
    assert flex.status == "failed" and "Select TensorFlow op" in flex.error  # LiteRT's wheel has no Flex delegate
    assert results[arts["fp32.onnx"].name].status == "ok"


def test_gru_without_fixed_length_compress_cli_exits_1(tmp_path, run_kind):
    import subprocess
    import sys

    _, _, folder = run_kind("gru_any_length")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("stages:\n  - convert: {tflite: [int8], onnx: [fp32], calibration_samples: 16}\n")
    proc = subprocess.run([sys.executable, "-m", "edgeopt.cli", "compress", str(folder / "gru_any_length.keras"),
                           "--data", str(folder / "gru_any_length.npz"), "--out", str(tmp_path / "out"),
                           "--recipe", str(recipe)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "gru_any_length_int8.tflite was not built: ValueError: the sequence length is not fixed" in proc.stderr
    assert (tmp_path / "out" / "gru_any_length_fp32.onnx").is_file()


def test_data_without_labels_scores_fidelity_only(run_kind):
    manifest, report, _ = run_kind("unlabelled")
    assert manifest.source["labels"].startswith("none")
    assert (manifest.source["task"], manifest.source["metric"]) == ("raw", "agreement")
    assert manifest.extra["guard"]["metric"] == "agreement on the val split"
    for a in _artifacts(manifest).values():
        assert a.status == "ok"
        assert a.info["parity"]["accuracy"] is None and a.info["parity"]["agreement"] >= 0.9
    assert report.environment["labels"].startswith("none")
    for m in report.results:
        assert m.status == "ok" and m.accuracy is None
        assert m.role == "source" or m.agreement >= 0.9
        assert (m.task, m.metric) == ("raw", "agreement")
        assert m.metric_value == (1.0 if m.role == "source" else m.agreement)


TASK_METRICS = {"regression": ("mae", {"mae", "rmse", "r2"}), "multilabel": ("f1", {"f1", "auc"})}


@pytest.mark.parametrize("kind", ["regression", "multilabel"])
def test_task_kind_is_inferred_and_scored_with_its_metric(kind, run_kind, tmp_path):
    from edgeopt import gate

    manifest, report, _ = run_kind(kind)
    headline, figures = TASK_METRICS[kind]
    src = manifest.source
    assert (src["task"], src["metric"]) == (kind, headline) and src["inferred"]
    guard = manifest.extra["guard"]
    assert guard["task"] == kind and guard["metric"] == f"{headline} on the val split"
    arts = _artifacts(manifest)
    assert set(arts) == ALL and all(a.status == "ok" for a in arts.values()), {n: a.error for n, a in arts.items()}
    for name, a in arts.items():
        par = a.info["parity"]
        assert par["metric"] == headline and set(par["metrics"]) == figures and par["accuracy"] is None
        assert par["cosine"] > 0.99 and par["snr_db"] > (30 if a.precision == "fp32" else 10), (name, par)
        assert "agreement" not in par  # values, not class scores
        assert par["within_tolerance"] if a.precision == "int8" else True
    if kind == "regression":
        assert arts["fp32.tflite"].info["parity"]["metrics"]["r2"] > 0.8  # the tiny head learned the target
    else:
        assert arts["fp32.tflite"].info["parity"]["metrics"]["auc"] > 0.8
    results = {m.artifact: m for m in report.results}
    assert all(m.status == "ok" and m.metric == headline and m.metric_value is not None and m.accuracy is None
               for m in results.values()), {m.artifact: m.error for m in results.values()}
    int8 = results[arts["int8.tflite"].name]
    assert set(int8.metrics) == figures | {"cosine", "snr_db"}
    loose, tight = tmp_path / "loose.yaml", tmp_path / "tight.yaml"
    loose.write_text("targets:\n  x86-cpu: {max_metric_drop: 0.1}\n")
    tight.write_text("targets:\n  x86-cpu: {max_metric: 0.0}\n" if kind == "regression" else
                     "targets:\n  x86-cpu: {min_metric: 1.01}\n")
    assert gate(report, loose).exit_code == 0
    verdict = gate(report, tight)
    assert verdict.exit_code == 1 and {c.metric for c in verdict.checks} == {headline}


@pytest.mark.parametrize("kind", ["tf_module", "lstm", "unlabelled"])
def test_gate_judges_each_kind(kind, run_kind, tmp_path):
    from edgeopt import gate

    _, report, _ = run_kind(kind)
    loose, tight = tmp_path / "loose.yaml", tmp_path / "tight.yaml"
    loose.write_text("targets:\n  x86-cpu: {max_size_kb: 1000}\n")
    tight.write_text("targets:\n  x86-cpu: {max_size_kb: 1}\n")
    assert gate(report, loose).exit_code == 0
    assert gate(report, tight).exit_code == 1


@pytest.mark.parametrize("kind", ["two_inputs", "two_outputs"])
def test_several_named_inputs_and_outputs(kind, run_kind):
    manifest, report, folder = run_kind(kind)
    arts = _artifacts(manifest)
    assert set(arts) == ALL and all(a.status == "ok" for a in arts.values()), {n: a.error for n, a in arts.items()}
    found = manifest.source["model"]
    if kind == "two_inputs":
        assert sorted(found["input_names"]) == ["feat", "seq"]
    else:
        assert found["output_names"] == ["probs", "value"]
    assert (manifest.source["task"], manifest.source["metric"]) == ("classification", "top1")
    for name, a in arts.items():
        par = a.info["parity"]
        assert par["agreement"] >= 0.9 and par["accuracy"] > 0.6, (name, par)
        if kind == "two_outputs":  # the other output listed: its own task, fidelity and metrics from y_*.value
            other = par["outputs"]["value"]
            assert other["task"] == "regression" and other["cosine"] > 0.99 and other["metrics"]["r2"] > 0.5, other
    results = {m.artifact: m for m in report.results}
    assert all(m.status == "ok" and m.metric == "top1" for m in results.values()), \
        {m.artifact: m.error for m in results.values()}
    src = next(m for m in results.values() if m.role == "source")
    for m in results.values():  # every format scored on the same (first) output: TFLite orders outputs by name
        assert m.role == "source" or (m.agreement >= 0.9 and abs(m.accuracy - src.accuracy) <= 0.1), m


def test_several_inputs_by_name_in_litert_and_onnx_runtime(run_kind):
    from edgeopt.core.inputs import Inputs
    from edgeopt.data.loaders import load_dataset
    from edgeopt.runtimes import litert, onnxrt

    manifest, _, folder = run_kind("two_inputs")
    arts = _artifacts(manifest)
    x = load_dataset(folder / "two_inputs.npz").x_test
    assert isinstance(x, Inputs)
    fed = dict(x.items())
    flipped = dict(reversed(list(fed.items())))  # the order of the dict does not matter: names do
    for name, mod in (("fp32.tflite", litert), ("int8.tflite", litert), ("fp32.onnx", onnxrt), ("int8.onnx", onnxrt)):
        session = mod.load(str(folder / "out" / arts[name].path))
        assert sorted(session.input_names) == ["feat", "seq"]
        np.testing.assert_allclose(session.run(fed), session.run(flipped), atol=1e-6)
