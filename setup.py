"""Bundle the repository's data folders into the wheel (metadata lives in pyproject.toml).

``targets/*.yaml`` and the demo's teacher and budgets (``sample_models/``) sit at the repository root, where a
checkout and its docs use them; a built wheel carries copies under ``edgeopt/_bundled/`` so that an installed
edgeopt lists its targets and runs ``edgeopt demo`` (edgeopt/bundled.py finds either)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

BUNDLED = {"targets": ["*.yaml"], "sample_models": ["digits_cnn.keras", "budgets.yaml", "models.json", "README.md"]}


class BuildWithBundledData(build_py):
    def run(self):
        super().run()
        root = Path(__file__).resolve().parent
        for folder, patterns in BUNDLED.items():
            dest = Path(self.build_lib) / "edgeopt" / "_bundled" / folder
            dest.mkdir(parents=True, exist_ok=True)
            for pattern in patterns:
                for f in sorted((root / folder).glob(pattern)):
                    shutil.copy2(f, dest / f.name)


setup(cmdclass={"build_py": BuildWithBundledData})
