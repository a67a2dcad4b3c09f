"""What ``zoo export`` leaves, and which run a ``--run`` names: shared by ``zoo export`` and
``zoo predict`` (:mod:`zoo.pipeline.export`, :mod:`zoo.pipeline.predict`).

An export folder holds ``model.onnx`` and ``model.json``; the card records the sha256 of the
graph and of the run checkpoints it was made from, so ``--engine onnx`` runs only a graph
that zoo wrote from this very run. ``--run`` may name a ``zoo compare`` folder: its
leaderboard's winner is the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.atomic import read_json
from zoo.checksums import sha256_file
from zoo.errors import ZooError
from zoo.pipeline.runfolder import RunFolder
from zoo.selection import describe

MODEL_FILE = "model.onnx"
CARD_FILE = "model.json"


@dataclass(frozen=True)
class Target:
    """What a ``--run`` names: one run, or (a cross-validated compare's winner) the fold
    ensemble of one backend in a compare folder; ``why`` says which when it was chosen."""

    run: Path | None = None
    compare: Path | None = None
    backend: str | None = None
    why: str | None = None

    @property
    def is_ensemble(self) -> bool:
        return self.compare is not None


def winner(path: Path) -> Target:
    """``path`` itself when it is a run folder; for a ``zoo compare`` folder, its
    leaderboard's winner (the first scored row of compare.json, ranked by the main metric on
    the protocol the leaderboard states): its run, or with ``--folds K`` the ensemble of its
    K fold models (nnU-Net's deployed model), and a sentence saying so."""
    path = Path(path)
    board = path / "compare.json"
    if not board.is_file():
        return Target(run=path)
    try:
        doc = read_json(board)
        rows = [r for r in doc["rows"] if r.get("status") != "failed" and r.get("score") is not None]
    except (OSError, ValueError, KeyError, TypeError):
        raise ZooError(f"{board}: not a zoo compare.json; pass --run RUN for one run") from None
    if not rows:
        raise ZooError(f"{board}: no backend was scored; there is no winner to take")
    top = rows[0]
    folds = int(doc.get("folds") or 1)
    ranked = f"{top.get('main')} {top['score']:.4f}; model selection: {describe(doc.get('selection'))}"
    if folds > 1:
        return Target(compare=path, backend=top["backend"],
                      why=f"{path} is a {folds}-fold comparison: using its winner, {top['backend']} ({ranked}), "
                          f"as the ensemble of its fold models")
    if not top.get("run"):
        raise ZooError(f"{board}: the winner {top['backend']} has no run folder")
    return Target(run=Path(top["run"]), backend=top["backend"],
                  why=f"{path} is a comparison: using its winner, {top['backend']} ({ranked})")


def checked_onnx(onnx_dir: Path, run_dir: Path) -> Path:
    """``onnx_dir/model.onnx``, refused unless it is what ``zoo export`` wrote there from this
    run's checkpoints (model.json holds the sha256 of both)."""
    card, model = Path(onnx_dir) / CARD_FILE, Path(onnx_dir) / MODEL_FILE
    if not card.is_file() or not model.is_file():
        raise ZooError(f"{onnx_dir}: no ONNX export here; make it with `zoo export --run {run_dir}`")
    try:
        doc = read_json(card)
        expected, source = doc["sha256"], doc["checkpoints"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ZooError(f"{card}: not a zoo model.json (no sha256 of {MODEL_FILE} and its checkpoints)") from None
    if source != checkpoints_of(run_dir):
        raise ZooError(f"{onnx_dir}: exported from another run than {run_dir} (its checkpoints differ); "
                       f"export this run with `zoo export --run {run_dir}`")
    if sha256_file(model) != expected:
        raise ZooError(f"{model}: changed since zoo export wrote it (sha256 differs); export again")
    return model


def checkpoints_of(run_dir: Path) -> dict[str, Any]:
    """The sha256 of the run's checkpoints, as its manifest records them: what the export is of."""
    return RunFolder(run_dir).manifest().checkpoints or {}
