"""Desktop GPU: what this machine offers (asked by the runner's probe in a subprocess, so the parent never
imports TensorFlow) and which ONNX Runtime providers to ask for. Without a GPU, results are skipped with
the reason; CPU numbers are never reported under a GPU target."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace

from edgeopt.bench.devices._proc import launch
from edgeopt.bench.devices.local import run_local
from edgeopt.bench.plan import Job, not_run

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def gpu_probe(with_tf: bool = False, timeout_s: float = 120) -> dict:
    """What GPU execution this machine offers: ``ort_providers``, ``nvidia_smi`` and (with_tf) ``tf_gpus``."""
    from edgeopt.bench.ondevice import probe_spec

    spec = probe_spec(["onnxrt", *(["tf"] if with_tf else [])], packages=False, gpu=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = launch([sys.executable, "-m", "edgeopt.bench.ondevice.runner", "--probe", json.dumps(spec)], timeout_s,
                  env=env)
    try:
        info = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        why = f"timed out after {timeout_s:g} s" if done.timed_out else (done.stderr.strip()[-200:] or "no output")
        return {"ort_providers": [], "nvidia_smi": "", "error": f"GPU probe failed: {why}"}
    out = {"nvidia_smi": info.get("nvidia_smi", "")}
    for file, key in (("onnxrt", "ort"), ("tf", "tf")):
        if file in info["runtimes"]:
            rt = info["runtimes"][file]
            out["ort_providers" if key == "ort" else "tf_gpus"] = rt.get("devices", [])
            if "error" in rt:
                out[f"{key}_error"] = rt["error"]
    return out


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


def with_available_providers(options: dict, gpu: dict) -> dict:
    """Ask only for the GPU providers this onnxruntime has (TensorRT is optional), CPU last for unsupported ops."""
    wanted = options.get("providers") or list(GPU_PROVIDERS)
    have = gpu.get("ort_providers", [])
    return {**options, "providers": [p for p in wanted if p in have and p in GPU_PROVIDERS] + ["CPUExecutionProvider"]}


class GPUDevice:
    """This machine's GPU: a local worker asked for the GPU providers (or TensorFlow's GPU)."""

    shares_host = True
    timed = True
    reports_environment = False
    agreement = "inline"

    def __init__(self, target) -> None:
        self.name = target.name
        self.gpu: dict = {}

    def probe(self, runtimes: set[str]) -> dict:
        self.gpu = gpu_probe(with_tf="tf" in runtimes)
        return {}

    def run(self, job: Job) -> dict:
        reason = gpu_skip_reason(self.gpu, job.runtime)
        if reason:
            return not_run("skipped", reason)
        if job.runtime == "onnxruntime":
            job = replace(job, options=with_available_providers(job.options, self.gpu))
        raw = run_local(job)
        providers = raw.get("providers")
        raw["record"] = {"providers": providers}
        if raw.get("status") == "ok" and job.runtime == "onnxruntime" and not any(p in GPU_PROVIDERS
                                                                                  for p in providers or []):
            # ORT falls back to the CPU when a GPU provider fails to load: never report that as GPU time.
            raw.update(status="failed", samples_ms=[],
                       error=f"onnxruntime ran on {providers}, not the GPU (GPU provider did not load)")
        return raw

    def close(self) -> None:
        pass
