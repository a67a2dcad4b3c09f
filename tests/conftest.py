"""Shared fixtures.

Real annotation files written by other people live in ``../shared/fixtures/real`` beside
the checkout. A user's clone has no such folder: tests that need it skip with a reason. CI
sets ``ZOO_REQUIRE_FIXTURES=1`` so that a missing folder fails instead of skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# One BLAS / OpenMP thread per test process: two cores, and torch runs many small ops where
# a second thread costs more in hand-offs than it gains. Set before any test imports torch
# (torch reads it once, at import); subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Tests never reach the internet: pretrained weights not in a test's cache fail at once
# (zoo.training.fetch); tests/test_fetch.py serves its files from 127.0.0.1 with this unset.
os.environ["ZOO_OFFLINE"] = "1"

REPO = Path(__file__).resolve().parents[1]
REAL_FIXTURES = REPO.parent / "shared" / "fixtures" / "real"


@pytest.fixture(autouse=True)
def _own_working_directory(tmp_path_factory, monkeypatch):
    """Every test runs in a fresh, empty working directory (subprocesses inherit it): what
    the checkout holds (a runs/ left by the README's demo run, say) never changes a result,
    and a command without --out writes nowhere near the checkout."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(scope="session")
def real_fixtures() -> Path:
    """Path of ``../shared/fixtures/real`` (read-only: copy before writing)."""
    if not REAL_FIXTURES.is_dir():
        msg = f"real annotation fixtures not found at {REAL_FIXTURES} (they ship beside the repo, not in it)"
        if os.environ.get("ZOO_REQUIRE_FIXTURES") == "1":
            pytest.fail(msg + "; ZOO_REQUIRE_FIXTURES=1 makes this an error")
        pytest.skip(msg)
    return REAL_FIXTURES


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> Path:
    """A small demo dataset (labelme format) written once per session."""
    from zoo.data.demo import write_demo

    out = tmp_path_factory.mktemp("demo")
    write_demo(out, images=12, size=96, seed=0)
    return out


@pytest.fixture
def predict_new_images(tiny_demo, tmp_path):
    """A function running ``zoo predict --run RUN`` on copies of two demo images; it
    returns the labelme JSON files written (sorted) in its output folder."""
    from zoo.cli import main

    def predict(run_dir: Path) -> list[Path]:
        images = tmp_path / "new"
        images.mkdir()
        for p in sorted(tiny_demo.glob("*.jpg"))[:2]:
            (images / p.name).write_bytes(p.read_bytes())
        main(["predict", "--run", str(run_dir), str(images), "--out", str(tmp_path / "pred"), "--device", "cpu"])
        return sorted((tmp_path / "pred").glob("*.json"))

    return predict


@pytest.fixture
def zoo_cli(capsys):
    """``zoo ARGV`` through the real entry point in this process: (exit status, stderr)."""
    from zoo.cli import main

    def run(argv) -> tuple[int, str]:
        capsys.readouterr()
        try:
            main([str(a) for a in argv])
            code = 0
        except SystemExit as e:
            code = e.code or 0
        return code, capsys.readouterr().err

    return run
