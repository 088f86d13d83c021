"""A wheel built from the repository works where the repository is not: targets and the demo model ship in it.

The wheel is built from a copy of the tree (the checkout is left untouched) and installed without its
dependencies into a fresh virtualenv that sees the test's own site-packages (so TensorFlow is not downloaded
again); every command runs outside the checkout, with no PYTHONPATH, so only the installed package answers."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _run(cmd: list, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EDGEOPT_TARGETS_PATH", "VIRTUAL_ENV")}
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """bin/ folder of a fresh virtualenv holding only the built edgeopt wheel."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for name in ("edgeopt", "targets", "sample_models"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc",
                                                                                "shapes_mobilenetv2.keras"))
    proc = _run([sys.executable, "-m", "pip", "wheel", src, "--no-deps", "--no-build-isolation", "-q", "-w",
                 tmp / "dist"], cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("edgeopt-*.whl")
    venv = tmp / "venv"
    proc = _run([sys.executable, "-m", "venv", venv], cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    py = venv / "bin" / "python"
    own = _run([py, "-c", "import site; print(site.getsitepackages()[0])"], cwd=tmp).stdout.strip()
    # the test's site-packages after the venv's own: dependencies come from there, edgeopt from the wheel
    Path(own, "shared_site.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    proc = _run([py, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel], cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    where = _run([py, "-c", "import edgeopt; print(edgeopt.__file__)"], cwd=tmp).stdout.strip()
    assert where.startswith(str(venv)), where  # the installed copy, not the checkout
    return venv / "bin"


def test_installed_wheel_lists_targets_benches_and_runs_the_demo(installed, tmp_path, tiny_model_path):
    import tensorflow as tf
    import tf_keras

    proc = _run([installed / "edgeopt", "targets"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "x86-cpu" in proc.stdout and "rpi4" in proc.stdout

    model = tf_keras.models.load_model(tiny_model_path, compile=False)
    tflite = tmp_path / "tiny.tflite"
    tflite.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    proc = _run([installed / "edgeopt", "bench", tflite, "--data", "digits", "--target", "x86-cpu", "--out",
                 tmp_path / "r.json", "--max-runs", "5", "--min-runs", "2", "--min-seconds", "0"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "r.json").is_file() and '"status": "ok"' in (tmp_path / "r.json").read_text()

    target = tmp_path / "mine.yaml"  # a user's own target file still loads by path
    target.write_text((REPO / "targets" / "x86-cpu.yaml").read_text().replace("x86-cpu", "mine"))
    proc = _run([installed / "edgeopt", "bench", tflite, "--data", "digits", "--target", target, "--out",
                 tmp_path / "r2.json", "--max-runs", "3", "--min-runs", "2", "--min-seconds", "0"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]

    proc = _run([installed / "edgeopt", "demo", "--out", tmp_path / "demo", "--min-seconds", "0.05"], cwd=tmp_path)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]  # 1: the gate said no; either way it ran
    assert "Traceback" not in proc.stderr
    for name in ("artifacts/manifest.json", "report.json", "report.html", "verdict.json"):
        assert (tmp_path / "demo" / name).is_file(), name
