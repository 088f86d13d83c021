"""Desktop GPU: what this machine offers (asked in a subprocess, so the parent never imports TensorFlow)
and which ONNX Runtime providers to ask for. Without a GPU, results are skipped with the reason; CPU
numbers are never reported under a GPU target."""

from __future__ import annotations

import json
import os
import subprocess
import sys

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def gpu_probe(with_tf: bool = False, timeout_s: float = 120) -> dict:
    """What GPU execution this machine offers, asked in a subprocess so this process stays light."""
    code = ("import json, shutil, subprocess\nout = {}\n"
            "try:\n    import onnxruntime as ort\n    out['ort_providers'] = ort.get_available_providers()\n"
            "except Exception as e:\n    out['ort_providers'] = []; out['ort_error'] = str(e)[:200]\n"
            "smi = shutil.which('nvidia-smi')\n"
            "out['nvidia_smi'] = subprocess.run([smi, '-L'], capture_output=True, text=True).stdout.strip()"
            " if smi else ''\n")
    if with_tf:
        code += ("try:\n    import tensorflow as tf\n"
                 "    out['tf_gpus'] = [d.name for d in tf.config.list_physical_devices('GPU')]\n"
                 "except Exception as e:\n    out['tf_gpus'] = []; out['tf_error'] = str(e)[:200]\n")
    code += "print(json.dumps(out))\n"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s, env=env)
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError) as e:
        return {"ort_providers": [], "nvidia_smi": "", "error": f"GPU probe failed: {e}"}


def gpu_skip_reason(probe: dict, runtime: str) -> str | None:
    """Why ``runtime`` cannot run on the GPU here (None: it can)."""
    if runtime == "onnxruntime":
        if not any(p in probe.get("ort_providers", []) for p in GPU_PROVIDERS):
            have = ", ".join(probe.get("ort_providers", [])) or "none"
            return (f"no GPU: onnxruntime offers {have} — install the gpu extra (pip install 'edgeopt[gpu]') "
                    "on a machine with an NVIDIA GPU and CUDA")
        return None
    if runtime == "tf":
        if not probe.get("tf_gpus"):
            return "no GPU: TensorFlow sees no GPU device (needs an NVIDIA GPU, its driver and a CUDA build of TF)"
        return None
    return f"{runtime} has no desktop GPU path"


def with_available_providers(target, gpu: dict):
    """Ask only for the GPU providers this onnxruntime has (TensorRT is optional), CPU last for unsupported ops."""
    from edgeopt.bench.targets import Target

    opts = {k: dict(v) for k, v in target.runtime_options.items()}
    wanted = opts.get("onnxruntime", {}).get("providers") or list(GPU_PROVIDERS)
    have = gpu.get("ort_providers", [])
    opts.setdefault("onnxruntime", {})["providers"] = [p for p in wanted if p in have and p in GPU_PROVIDERS] + ["CPUExecutionProvider"]
    return Target(spec=target.spec.model_copy(update={"runtime_options": opts}), source=target.source)
