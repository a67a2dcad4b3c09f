"""``zoo install detectron2``: detectron2 from PyPI, into the running interpreter's environment.

detectron2 publishes no wheels on PyPI. ``sal-detectron2==0.7.2`` is upstream a59f0563
packaged as one wheel tagged ``cp310-none-any``, so pip refuses it on any other Python.
Its Python code runs on 3.10+; only its compiled extension (``detectron2/_C``, built for
CPython 3.10 and one torch) does not load elsewhere. So: download the wheel for 3.10,
install it under a ``py3-none-any`` name without its dependencies (its metadata pins
``numpy<2`` and pulls black and tensorboard), then install the dependencies detectron2's
Python code imports, with the installed torch, torchvision and numpy held where they are.
What works without ``_C`` is in :mod:`.ops`.

A user with a compiler and network may instead build detectron2 from its repository
(``pip install 'git+https://github.com/facebookresearch/detectron2.git'``); this command
then sees it importable and does nothing.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from zoo.errors import ZooError

WHEEL = "sal-detectron2==0.7.2"
#: what detectron2's Python code imports (its own metadata lists more, and pins numpy<2)
DEPENDENCIES = (
    "fvcore>=0.1.5,<0.1.6",
    "iopath>=0.1.7,<0.1.10",
    "yacs>=0.1.8",
    "omegaconf>=2.1,<2.4",
    "hydra-core>=1.1",
    "termcolor>=1.1",
    "tabulate",
    "cloudpickle",
    "setuptools<81",  # detectron2.model_zoo imports pkg_resources, gone from setuptools 81
)
#: installed packages pip must not replace while resolving the dependencies above
HELD = ("torch", "torchvision", "numpy")


def importable() -> bool:
    importlib.invalidate_caches()
    return importlib.util.find_spec("detectron2") is not None


def install(say: Callable[[str], None] = print) -> str:
    """Make ``import detectron2`` work here; nothing when it already does."""
    if importable():
        where = Path(importlib.util.find_spec("detectron2").origin).parent
        return f"detectron2 is already importable ({where}); nothing to do"
    with tempfile.TemporaryDirectory(prefix="zoo-detectron2-") as tmp:
        tmp = Path(tmp)
        say(f"downloading {WHEEL} (the cp310 wheel) from the package index")
        _pip("download", "--no-deps", "--python-version", "3.10", "--only-binary=:all:", "-d", str(tmp), WHEEL)
        wheel = _any_python_name(_one_wheel(tmp))
        say(f"installing {wheel.name} without its dependencies")
        _pip("install", "--no-deps", str(wheel))
        say(f"installing what detectron2 imports: {', '.join(DEPENDENCIES)}")
        say("(detectron2's metadata also asks for black, tensorboard and numpy<2; it trains and predicts "
            "without them, so pip's complaint about them is left out)")
        _pip("install", "--constraint", str(_constraints(tmp / "held.txt")), *DEPENDENCIES, quiet_conflicts=True)
    compiled = _check_import()
    if compiled:
        return f"detectron2 installed from {WHEEL}, with its compiled ops"
    return (
        f"detectron2 installed from {WHEEL}, without its compiled ops (built for CPython 3.10): "
        "rotated boxes and deformable convolution are unavailable; everything else works"
    )


def _pip(*args: str, quiet_conflicts: bool = False) -> None:
    """pip with this interpreter; its stderr is shown, all of it when pip fails.
    ``quiet_conflicts``: on success, without the resolver's complaint about detectron2's own
    pins (an ``ERROR:`` line on a command that worked, which reads like a failure)."""
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    done = subprocess.run(cmd, stderr=subprocess.PIPE, text=True)
    ok = done.returncode == 0
    sys.stderr.write(without_detectron2_conflicts(done.stderr) if ok and quiet_conflicts else done.stderr)
    if not ok:
        raise ZooError(f"`{' '.join(cmd)}` failed with exit status {done.returncode} (its output is above)")


def without_detectron2_conflicts(stderr: str) -> str:
    """pip's stderr less the "detectron2 X requires Y" lines of its resolver notice ("ERROR:
    pip's dependency resolver does not currently take into account ..."), and less the
    notice itself when those were all it listed."""
    lines = stderr.splitlines(keepends=True)
    kept: list[str] = []
    k = 0
    while k < len(lines):
        if not lines[k].startswith("ERROR: pip's dependency resolver"):
            kept.append(lines[k])
            k += 1
            continue
        end = k + 1
        while end < len(lines) and " requires " in lines[end]:
            end += 1
        others = [line for line in lines[k + 1:end] if not line.startswith("detectron2 ")]
        kept += [lines[k], *others] if others else []
        k = end
    return "".join(kept)


def _one_wheel(folder: Path) -> Path:
    wheels = sorted(folder.glob("*.whl"))
    if len(wheels) != 1:
        raise ZooError(f"pip download of {WHEEL} left {len(wheels)} wheels in {folder}, expected one")
    return wheels[0]


def _any_python_name(wheel: Path) -> Path:
    """The wheel renamed to ``<name>-<version>-py3-none-any.whl``: pip reads compatibility
    from the file name, and the Python code inside is not 3.10-specific."""
    name, version = wheel.name.split("-")[:2]
    target = wheel.with_name(f"{name}-{version}-py3-none-any.whl")
    wheel.rename(target)
    return target


def _constraints(path: Path) -> Path:
    """A pip constraints file holding :data:`HELD` at their installed versions."""
    lines = []
    for dist in HELD:
        try:
            lines.append(f"{dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _check_import() -> bool:
    """Import detectron2's training stack in a fresh interpreter (this one may have cached
    the miss); whether its compiled ops load there."""
    code = (
        "import detectron2.engine, detectron2.modeling, detectron2.model_zoo\n"
        "try:\n    from detectron2 import _C\nexcept (ImportError, OSError):\n    print(False)\n"
        "else:\n    print(True)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ZooError(f"detectron2 was installed but does not import: {last}")
    return done.stdout.strip().endswith("True")
