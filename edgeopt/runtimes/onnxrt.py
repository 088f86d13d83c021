"""ONNX Runtime: CPU provider by default; CUDA/TensorRT when asked for and present.

Stand-alone on purpose (numpy + onnxruntime only) so the on-device runner can ship it.
"""

from __future__ import annotations

import numpy as np

NAME = "onnxruntime"
FORMATS = ("onnx",)
PACKAGES = {"onnxruntime": "onnxruntime"}
INSTALL_HINT = "pip install onnxruntime"
STANDALONE = True


def version() -> str:
    import onnxruntime as ort

    return f"onnxruntime {ort.__version__}"


def devices() -> list[str]:
    """The execution providers this onnxruntime build offers (what a GPU probe asks for)."""
    import onnxruntime as ort

    return list(ort.get_available_providers())


class ProviderUnavailable(RuntimeError):
    """Asked-for execution provider is not in this onnxruntime build (e.g. CUDA without the gpu extra)."""


def _has_quantized_ops(path: str) -> bool:
    """True when the graph holds Q/DQ pairs (an int8 model); False when it can't tell (no onnx package)."""
    try:
        import onnx
    except ImportError:
        return False
    model = onnx.load(str(path), load_external_data=False)
    return any(n.op_type == "DequantizeLinear" for n in model.graph.node)


class Session:
    def __init__(self, path: str, threads: int | None = None, providers: list[str] | None = None,
                 disabled_optimizers: list[str] | None = None, output: str | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ImportError("onnxruntime is not installed — pip install onnxruntime (or onnxruntime-gpu)") from None
        wanted = list(providers or ["CPUExecutionProvider"])
        have = ort.get_available_providers()
        missing = [p for p in wanted if p not in have and p != "CPUExecutionProvider"]
        if missing:
            raise ProviderUnavailable(
                f"{', '.join(missing)} not available in this onnxruntime (has {', '.join(have)}) — "
                "install the gpu extra (pip install 'edgeopt[gpu]') on a machine with CUDA"
            )
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if disabled_optimizers is None and _has_quantized_ops(path):
            # ORT's MatMulAddFusion re-quantizes dense layers an int8 graph deliberately kept in float
            # (accuracy-aware int8): measured 0.106 vs 0.928 top-1 on a model with one outlier row.
            disabled_optimizers = ["MatMulAddFusion"]
        kwargs = {"disabled_optimizers": list(disabled_optimizers)} if disabled_optimizers else {}
        self._sess = ort.InferenceSession(str(path), sess_options=opts, providers=wanted, **kwargs)
        self.providers = self._sess.get_providers()
        inputs = self._sess.get_inputs()
        inp = inputs[0]
        self._input_name = inp.name
        self._shape = tuple(inp.shape)
        # "tensor(float)", "tensor(int8)", "tensor(int32)" (token ids), ...: feed the dtype the graph takes
        kinds = {"float": np.float32, "float16": np.float16, "int8": np.int8, "uint8": np.uint8, "int32": np.int32,
                 "int64": np.int64}
        self._dtypes = {i.name: kinds.get(i.type.removeprefix("tensor(").rstrip(")"), np.float32) for i in inputs}
        self._dtype = self._dtypes[inp.name]
        names = [o.name for o in self._sess.get_outputs()]
        self._out = names.index(output) if output in names else 0  # several outputs: the one asked for

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) if isinstance(d, int) else -1 for d in self._shape[1:])

    @property
    def input_names(self) -> list[str]:
        return list(self._dtypes)

    def prepare(self, x):
        """An array for the one input, or a dict by input name for several."""
        if isinstance(x, dict):
            return {n: np.ascontiguousarray(x[n], dtype=dt) for n, dt in self._dtypes.items()}
        return np.ascontiguousarray(x, dtype=self._dtype)

    def bind(self, xq) -> None:
        self._feed = xq if isinstance(xq, dict) else {self._input_name: xq}

    def invoke(self) -> None:
        self._sess.run(None, self._feed)

    def invoke_prepared(self, xq) -> np.ndarray:
        return self._sess.run(None, xq if isinstance(xq, dict) else {self._input_name: xq})[self._out]

    def run(self, x, chunk: int = 256) -> np.ndarray:
        named = isinstance(x, dict)
        x = {k: np.asarray(v, dtype=np.float32) for k, v in x.items()} if named else np.asarray(x, dtype=np.float32)
        n = len(next(iter(x.values()))) if named else len(x)
        fixed_batch = isinstance(self._shape[0], int) and self._shape[0] > 0
        step = 1 if fixed_batch else chunk

        def rows(i):
            return {k: v[i : i + step] for k, v in x.items()} if named else x[i : i + step]

        outs = [self.invoke_prepared(self.prepare(rows(i))) for i in range(0, n, step)]
        return np.concatenate(outs, axis=0).astype(np.float32)


def load(path: str, threads: int | None = None, options: dict | None = None) -> Session:
    options = options or {}
    return Session(path, threads=threads, providers=options.get("providers"),
                   disabled_optimizers=options.get("disabled_optimizers"), output=options.get("output"))
