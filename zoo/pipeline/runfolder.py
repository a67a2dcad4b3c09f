"""The run folder on disk: its layout, its name, its manifest, its saved predictions.

Layout of ``<out>/<name>/`` (see :mod:`zoo.pipeline.run` for who writes what)::

    config.yaml            resolved config (device as the user gave it, e.g. "auto")
    split.json             the train / val / test ids (zoo.data.split)
    manifest.json          versions, data hash, seed, device, timings, status, phases done
    checkpoint/            the backend's checkpoint (Backend.load reads it)
    work/                  the backend's scratch (converted data, framework logs)
    data/val_coco.json     the ground truth that was scored, in COCO
    predictions/           coco_results.json (instance tasks) | masks/<id>.png (semantic-seg)
                           | predictions.csv (classify); labelme/<id>.json for every task
    metrics.json           the shared evaluator's output
    plots/                 the evaluator's plots
    report.md              human-readable summary
    log.txt                the run's log
    .zoo.lock              while a zoo process works on the run: its pid and host

Naming rule: the default name is ``<backend>-<task>``. A folder that already exists is never
overwritten: the run goes to the first free ``<name>-2``, ``<name>-3``, ... (printed at the
start). ``--resume`` continues the newest existing one of that series instead.

One process at a time: a run holds ``.zoo.lock`` while it works, so a second ``--resume`` of
the same run is refused instead of racing the first on its files. A lock left by a process
that died (kill -9, power cut) is taken over.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from zoo.atomic import read_json, write_bytes, write_json
from zoo.checksums import KEY as CHECKSUMS_KEY
from zoo.checksums import Ledger
from zoo.dataset import Dataset, id_path
from zoo.errors import ZooError
from zoo.predictions import ClassPrediction, InstancePredictions, Prediction, SemanticPrediction

MANIFEST = "manifest.json"
LOCK = ".zoo.lock"
#: Phases in order; the manifest's ``done`` lists those finished.
PHASES = ("prepare", "fit", "predict", "evaluate", "report")

_SUFFIX = re.compile(r"^(?P<base>.+)-(?P<n>\d+)$")


def default_name(backend: str, task: str) -> str:
    return f"{backend}-{task}"


def check_name(name: str) -> str:
    if not name or name in {".", ".."} or "/" in name or "\\" in name:
        raise ZooError(f"--name {name!r}: a run name is one folder name (no slashes)")
    return name


def series(out: Path, name: str) -> list[Path]:
    """``<out>/<name>``, ``<out>/<name>-2``, ... that exist, oldest first."""
    found = []
    if (out / name).is_dir():
        found.append((1, out / name))
    if out.is_dir():
        for p in out.iterdir():
            m = _SUFFIX.match(p.name)
            if p.is_dir() and m and m["base"] == name and int(m["n"]) >= 2:
                found.append((int(m["n"]), p))
    return [p for _, p in sorted(found)]


def next_free(out: Path, name: str) -> Path:
    """``<out>/<name>`` when free, else the first free ``<out>/<name>-N`` (N >= 2)."""
    if not (out / name).exists():
        return out / name
    n = 2
    while (out / f"{name}-{n}").exists():
        n += 1
    return out / f"{name}-{n}"


def read_manifest(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        data = read_json(path)
    except Exception:  # noqa: BLE001 - a broken manifest means "not a usable run"
        return None
    return data if isinstance(data, dict) else None


def is_finished(run_dir: Path) -> bool:
    m = read_manifest(run_dir)
    return bool(m) and m.get("status") == "finished"


def require_run(run_dir: Path) -> dict[str, Any]:
    """The manifest of a finished run, or a clear error."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ZooError(f"{run_dir}: no such run folder")
    m = read_manifest(run_dir)
    if m is None:
        raise ZooError(f"{run_dir}: not a zoo run folder (no readable {MANIFEST})")
    if "fit" not in m.get("done", []):
        raise ZooError(f"{run_dir}: this run never finished training; continue it with `zoo run --resume`")
    return m


def checkpoint_ledger(run_dir: Path, manifest: dict[str, Any], save=None) -> Ledger:
    """The sha256 records of the run's checkpoints (``manifest["checkpoints"]``, updated in
    place; ``save`` persists the manifest). Untracked for a run written before zoo kept them."""
    hashes = manifest.get(CHECKSUMS_KEY)
    return Ledger(run_dir, hashes if isinstance(hashes, dict) else None, save=save)


class RunLock:
    """``<run>/.zoo.lock``, created exclusively, holding ``pid host`` of the zoo process at work."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK
        self.held = False

    def acquire(self) -> RunLock:
        me = f"{os.getpid()} {socket.gethostname()}"
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is None and self._age() > 10:  # its writer died between create and write
                    holder = (0, socket.gethostname())
                if holder is None or (holder[0] and _alive(*holder)):
                    who = f"zoo process {holder[0]} on {holder[1]}" if holder else "another zoo process"
                    raise ZooError(f"{self.path.parent} is in use by {who} (lock file {self.path}); "
                                   "wait for it to finish, or delete the lock file if that process is gone") from None
                logging.getLogger("zoo").warning("%s: taking over the lock of process %s, which is gone",
                                                 self.path.parent, holder[0])
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(me + "\n")
            self.held = True
            return self
        raise ZooError(f"{self.path}: could not take the run's lock")

    def _holder(self) -> tuple[int, str] | None:
        """(pid, host) of the lock's holder; None while it is being written or unreadable."""
        try:
            pid, host = self.path.read_text(encoding="utf-8").split()
            return int(pid), host
        except (OSError, ValueError):
            return None

    def _age(self) -> float:
        import time

        try:
            return time.time() - self.path.stat().st_mtime
        except OSError:
            return 0.0

    def release(self) -> None:
        if self.held and self._holder() == (os.getpid(), socket.gethostname()):
            self.path.unlink(missing_ok=True)
        self.held = False


def _alive(pid: int, host: str) -> bool:
    """Whether process ``pid`` runs; one on another host is taken to run (it cannot be asked)."""
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's process
        return True
    return True


# -- predictions on disk ---------------------------------------------------------------------


def save_predictions(pred_dir: Path, task, preds: Sequence[Prediction], gt: Dataset) -> list[Path]:
    """Write predictions in the task's exchange format (the ones ``zoo eval --pred`` reads)."""
    written = []
    kind = task.prediction_type
    if kind is InstancePredictions:
        from zoo.evaluation.results import default_image_ids, predictions_to_coco_results

        results = predictions_to_coco_results(preds, default_image_ids(gt), gt.coco_category_ids())
        written.append(write_json(pred_dir / "coco_results.json", results))
    elif kind is SemanticPrediction:
        import io

        import numpy as np
        from PIL import Image

        for p in preds:
            buf = io.BytesIO()
            Image.fromarray(np.asarray(p.label_map).astype(np.uint8)).save(buf, format="PNG")
            written.append(write_bytes(pred_dir / "masks" / id_path(p.image_id, ".png"), buf.getvalue()))
    elif kind is ClassPrediction:
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["image", "label", *(f"score_{c}" for c in gt.classes)])
        for p in preds:
            scores = [f"{s:.6g}" for s in p.scores] if p.scores else [""] * len(gt.classes)
            w.writerow([p.image_id, gt.classes[p.label], *scores])
        written.append(write_bytes(pred_dir / "predictions.csv", buf.getvalue().encode()))
    return written


def load_predictions(run_dir: Path, gt: Dataset) -> list[Prediction]:
    """The saved predictions of a run, one per ``gt`` image, in ``gt`` order."""
    pred_dir = Path(run_dir) / "predictions"
    if (pred_dir / "coco_results.json").is_file():
        from zoo.evaluation.results import coco_results_to_predictions

        path = pred_dir / "coco_results.json"
        return coco_results_to_predictions(read_json(path), gt, source=str(path))
    if (pred_dir / "masks").is_dir():
        import numpy as np
        from PIL import Image

        out = []
        for r in gt.images:
            path = pred_dir / "masks" / id_path(r.id, ".png")
            if not path.is_file():
                raise ZooError(f"{path}: missing prediction for image {r.id}")
            out.append(SemanticPrediction(r.id, np.asarray(Image.open(path))))
        return out
    if (pred_dir / "predictions.csv").is_file():
        import csv

        with open(pred_dir / "predictions.csv", newline="", encoding="utf-8") as f:
            rows = {row["image"]: row for row in csv.DictReader(f)}
        out = []
        for r in gt.images:
            row = rows.get(r.id)
            if row is None:
                raise ZooError(f"{pred_dir / 'predictions.csv'}: missing prediction for image {r.id}")
            scores = [row.get(f"score_{c}", "") for c in gt.classes]
            out.append(ClassPrediction(
                r.id, gt.classes.index(row["label"]),
                [float(s) for s in scores] if all(scores) else None,
            ))
        return out
    raise ZooError(f"{pred_dir}: no saved predictions")


def iter_runs(out: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every run folder directly under ``out`` with its manifest."""
    if not out.is_dir():
        return
    for p in sorted(out.iterdir()):
        m = read_manifest(p) if p.is_dir() else None
        if m is not None:
            yield p, m
