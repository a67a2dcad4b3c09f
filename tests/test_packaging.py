"""Packaging as users meet it: ``pip install 'zoo[smp]'`` (no ``all``, no ``dev``) must hold
everything the core imports. CI installs ``[all,dev]``, which hides a missing base dependency
(scipy was one: HD95 and ROC-AUC died at scoring); this test reads the imports instead."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The core: what every install has. Backends (plugins/) bring their frameworks in their extra.
CORE = ("zoo", "adapters")
#: Third-party modules the core imports only for a feature an extra installs, and why.
OPTIONAL = {
    "torch": "training and checkpoints: every backend's extra installs torch",
    "torchvision": "published weights: the extras of the backends that use them install it",
    "mlflow": "--track mlflow (extra mlflow)",
    "tensorboard": "--track tensorboard (extra tensorboard)",
    "ray": "--executor ray (extra ray)",
    "pytest": "zoo.testing, the conformance checks a plugin author runs under pytest",
    "pydicom": "DICOM images (extra medical)",
    "nibabel": "NIfTI volumes (extra medical)",
    "tifffile": "16-bit, float and multi-page TIFF (extra medical)",
    "onnx": "zoo export (extra export)",
    "onnxruntime": "zoo export's parity check, zoo predict --engine onnx (extra export)",
    "ensemble_boxes": "weighted boxes fusion of fold ensembles, --ensemble on detections (extra export)",
    "segmentation_models_pytorch": "the dense kit's Dice term (zoo.training.dense.loss): the extras of the "
    "backends built on the kit (smp, monai) install it",
}


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirement_name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower().replace("_", "-")


def third_party_imports() -> dict[str, str]:
    """Top-level module -> one file importing it, over the core's sources."""
    found: dict[str, str] = {}
    for folder in CORE:
        for f in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(f.read_text(), str(f))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top != "zoo":
                        found.setdefault(top, str(f.relative_to(ROOT)))
    return found


def test_everything_the_core_imports_is_a_base_dependency():
    base = {requirement_name(r) for r in project()["dependencies"]}
    dists = packages_distributions()
    missing = {}
    for module, where in third_party_imports().items():
        if module in OPTIONAL:
            continue
        names = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
        if not names & base:
            missing[module] = where
    assert not missing, f"imported by the core but in no base dependency: {missing}"
    assert "scipy" in base


def test_each_optional_import_is_installed_by_an_extra():
    extras = project()["optional-dependencies"]
    in_extras = {requirement_name(r) for reqs in extras.values() for r in reqs}
    dists = packages_distributions()
    for module in OPTIONAL:
        names = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
        assert names & in_extras, f"{module} ({OPTIONAL[module]}) is in no extra"


def test_the_version_is_written_once():
    import zoo

    assert project()["dynamic"] == ["version"] and "version" not in project()
    setuptools_version = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["dynamic"]
    assert setuptools_version["version"] == {"attr": "zoo.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", zoo.__version__)
