"""Keras / SavedModel reference runtime (tf_keras). Host only: it needs TensorFlow."""

from __future__ import annotations

import numpy as np

NAME = "tf"
FORMATS = ("keras",)
PACKAGES = {"tensorflow": "tensorflow"}
INSTALL_HINT = "pip install tensorflow"
STANDALONE = False  # loads models through edgeopt.models.load


def devices() -> list[str]:
    """The GPUs TensorFlow sees (what a GPU probe asks for)."""
    import tensorflow as tf

    return [d.name for d in tf.config.list_physical_devices("GPU")]


def version() -> str:
    import tensorflow as tf

    return f"tensorflow {tf.__version__}"


class Session:
    def __init__(self, path: str, threads: int | None = None, device: str = "cpu", output: str | None = None) -> None:
        import tensorflow as tf

        if threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(int(threads))
                tf.config.threading.set_inter_op_parallelism_threads(1)
            except RuntimeError:
                pass  # already initialised in this process; the setting cannot change any more
        if device == "gpu" and not tf.config.list_physical_devices("GPU"):
            raise RuntimeError("no GPU visible to TensorFlow — run on a machine with CUDA and the GPU build")
        from edgeopt.models.load import load_model  # noqa: PLC0415 (host-only runtime)

        self.model = load_model(path)
        self.params = int(self.model.count_params())
        self.nonzero_params = int(sum(int(np.count_nonzero(w)) for w in self.model.get_weights()))
        names = list(getattr(self.model, "output_names", None) or [])
        pick = names.index(output) if output in names else 0

        def call(x):
            out = self.model(x, training=False)
            if isinstance(out, dict):
                return out[output] if output in out else next(iter(out.values()))
            return out[pick] if isinstance(out, list | tuple) else out  # several outputs: the one asked for

        self._fn = tf.function(call, reduce_retracing=True)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.model.input_shape[1:])

    def prepare(self, x):
        if isinstance(x, dict):  # several inputs, by name
            return {k: np.asarray(v, dtype=np.float32) for k, v in x.items()}
        return np.asarray(x, dtype=np.float32)

    def bind(self, xq) -> None:
        import tensorflow as tf

        self._x = {k: tf.constant(v) for k, v in xq.items()} if isinstance(xq, dict) else tf.constant(xq)

    def invoke(self) -> None:
        self._fn(self._x).numpy()  # .numpy() waits for the result

    def invoke_prepared(self, xq: np.ndarray) -> np.ndarray:
        return self._fn(xq).numpy()

    def run(self, x, chunk: int = 256) -> np.ndarray:
        x = self.prepare(x)
        if isinstance(x, dict):
            n = len(next(iter(x.values())))
            return np.concatenate([self.invoke_prepared({k: v[i : i + chunk] for k, v in x.items()})
                                   for i in range(0, n, chunk)], axis=0)
        return np.concatenate([self.invoke_prepared(x[i : i + chunk]) for i in range(0, len(x), chunk)], axis=0)


def load(path: str, threads: int | None = None, options: dict | None = None) -> Session:
    options = options or {}
    return Session(path, threads=threads, device=options.get("device", "cpu"), output=options.get("output"))
