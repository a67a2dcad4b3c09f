"""The run folder on disk, as a type: :class:`RunFolder` names every file of a run and reads
and writes each one; :class:`Manifest` is the schema of its ``manifest.json``.

Layout of ``<out>/<name>/`` (:mod:`zoo.pipeline.run` writes it, predict, compare, the
reports and ``--resume`` read it, all through :class:`RunFolder`)::

    config.yaml            resolved config (device as the user gave it, e.g. "auto")
    split.json             the train / val / test ids (zoo.data.split)
    manifest.json          versions, data hash, seed, device, timings, status, phases done
    checkpoint/            the backend's checkpoint (Backend.load reads it)
    work/                  the backend's scratch (converted data, framework logs)
    data/meta.json         the vocabularies trained with (classes, keypoints, ...): zoo predict's
    data/val_coco.json     the ground truth that was scored, in COCO (test_coco.json with --test)
    predictions/           coco_results.json (instance tasks) | masks/<id>.png (semantic-seg)
                           | predictions.csv (classify); labelme/<id>.json for every task;
                           test/ the same for the test split
    metrics.json           the shared evaluator's output
    plots/                 the evaluator's plots (plots/test/ for the test split), samples.png
    report.md, report.html human-readable summary
    ranking/               --rank: ranking.csv and the pre-filled labelme JSON
    log.txt                the run's log
    .zoo.lock              while a zoo process works on the run: its pid and host

Naming rule: the default name is ``<backend>-<task>``. A folder that already exists is never
overwritten: the run goes to the first free ``<name>-2``, ``<name>-3``, ... (printed at the
start). ``--resume`` continues the newest existing one of that series instead.

One process at a time: a run holds ``.zoo.lock`` while it works, so a second ``--resume`` of
the same run is refused instead of racing the first on its files. A lock left by a process
that died (kill -9, power cut) is taken over.

A folder written by an older zoo reads when its manifest carries what this one needs
(backend, task, phases done, data hash, split key); a field added since takes its default
(no ``checkpoints``: the checksums are not verified, and zoo says so). One that lacks them
is refused with one line naming the file and the field.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from zoo.atomic import read_json, write_bytes, write_json, write_yaml
from zoo.checksums import Ledger
from zoo.config import load_yaml_file
from zoo.data.split import read_split, write_split
from zoo.dataset import Dataset, id_path
from zoo.errors import ZooError
from zoo.evaluation.results import default_image_ids, predictions_to_coco_results, read_predictions
from zoo.predictions import ClassPrediction, Prediction
from zoo.tasks import get_task

MANIFEST = "manifest.json"
LOCK = ".zoo.lock"
#: Phases in order; the manifest's ``done`` lists those finished.
PHASES = ("prepare", "fit", "predict", "evaluate", "report")

_SUFFIX = re.compile(r"^(?P<base>.+)-(?P<n>\d+)$")
log = logging.getLogger("zoo")


# -- manifest.json ---------------------------------------------------------------------------


class _Record(BaseModel):
    # extra="allow": a key another zoo version wrote survives a resume that rewrites the file
    model_config = ConfigDict(extra="allow")


class DataRecord(_Record):
    """``manifest.data``: where the data came from and what it held."""

    path: str  # absolute, so --resume finds it from anywhere; "demo" for the demo data
    hash: str  # zoo.data.split.data_hash
    format: str | None = None
    summary: dict[str, Any] = {}
    #: images of the folder no annotation covers (not trained on; --rank ranks them)
    unlabelled: list[str] = []


class SplitRecord(_Record):
    """``manifest.split``: the split's key (split.json holds the ids) and its sizes."""

    key: str
    train: int = 0
    selection: int = 0
    val: int = 0
    test: int = 0
    excluded: int = 0
    val_fraction: float | None = None
    test_fraction: float | None = None
    selection_fraction: float | None = None
    #: how images were grouped (zoo.data.groups), the groups in each part (None: one per image),
    #: and the leaks --allow-leak kept
    group_rule: str | None = None
    groups: dict[str, int] | None = None
    leaks: list[str] | None = None


class Timings(_Record):
    """``manifest.timings``, seconds (``predict_per_image_ms`` in ms); a phase not run is None."""

    read: float | None = None
    #: the training time of each part: an interrupted one counts up to its last checkpoint
    fit_parts: list[float] | None = None
    fit: float | None = None
    predict: float | None = None
    predict_per_image_ms: float | None = None
    save_predictions: float | None = None
    predict_test: float | None = None
    evaluate: float | None = None
    report: float | None = None


class Manifest(_Record):
    """``manifest.json``: what a run is, how far it got and what it took.

    Written after every phase (``done``), so ``--resume`` knows where to continue. Optional
    fields are left out of the file while unset.
    """

    zoo: str = "unknown"  # the zoo version that started the run
    backend: str
    framework: str = ""
    task: str
    status: str = "running"  # running | finished | failed | interrupted
    done: list[str] = []  # PHASES finished, in order
    started: str | None = None
    finished: str | None = None
    command: str = ""
    data: DataRecord
    seed: int | None = None
    device: str | None = None
    split: SplitRecord
    #: zoo.selection: {"protocol": ..., "description": ...}, then Selection.summary() after fit
    selection: dict[str, Any] = {}
    versions: dict[str, Any] = {}  # framework -> version (as the backend reports them)
    parameters: int | None = None
    timings: Timings = Timings()
    #: path -> sha256 of each checkpoint written (zoo.checksums; a list of the old and the new
    #: one while a file is being replaced); None: a run written before zoo kept them, whose
    #: checkpoints cannot be verified
    checkpoints: dict[str, str | list[str]] | None = None
    #: imgsz / epochs "auto": key -> {"value", "reason"} (zoo.training.autoconfig)
    choices: dict[str, dict[str, Any]] | None = None
    #: the published weights training started from (zoo.training.fetch records)
    weights: list[dict[str, Any]] | None = None
    #: what a self-configuring framework chose (patch size, batch, ...)
    plan: dict[str, Any] | None = None
    #: per-epoch rows a backend reported ({"epoch": n, "loss": ...}), for --track
    history: list[dict[str, Any]] | None = None
    #: the backend's own numbers, for the log only (metrics.json holds the ranked scores)
    framework_metrics: dict[str, Any] | None = None
    # --budget: {"seconds", "fit_seconds"} and, from the backend's loop, "epochs" (ran),
    # "epochs_asked", "stopped_inside_epoch" (zoo.training.budget.describe_budget)
    budget: dict[str, Any] | None = None
    #: how the shared loop trained (zoo.training.cpu.Compute): precision (fp32 | bf16 | fp16),
    #: channels_last, threads and why; ``pixels``: the training pixels decoded once
    #: (zoo.training.cache: images, bytes, memory or disk)
    compute: dict[str, Any] | None = None
    world_size: int | None = None  # under a launcher (torchrun): the number of processes
    error: str | None = None  # why a failed or interrupted run stopped

    @property
    def trained(self) -> bool:
        return "fit" in self.done

    @property
    def is_finished(self) -> bool:
        return self.status == "finished"

    def phase_done(self, phase: str, seconds: float | None = None) -> None:
        if phase not in self.done:
            self.done.append(phase)
        if seconds is not None:
            setattr(self.timings, phase, round(seconds, 3))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to manifest.json (unset optional fields left out)."""
        return self.model_dump(exclude_none=True)


def _first_problem(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"'{where}' is missing" if err["type"] == "missing" else f"'{where}': {err['msg']}"


# -- the folder ------------------------------------------------------------------------------


class RunFolder:
    """One run's folder: the name of every file zoo keeps there, and how each is read back."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        p = self.path
        self.config_file = p / "config.yaml"
        self.manifest_file = p / MANIFEST
        self.split_file = p / "split.json"
        self.meta_file = p / "data" / "meta.json"
        self.val_truth_file = p / "data" / "val_coco.json"
        self.test_truth_file = p / "data" / "test_coco.json"
        self.predictions_dir = p / "predictions"
        self.metrics_file = p / "metrics.json"
        self.plots_dir = p / "plots"
        self.samples_file = self.plots_dir / "samples.png"
        self.report_file = p / "report.md"
        self.html_file = p / "report.html"
        self.ranking_dir = p / "ranking"
        self.ranking_file = self.ranking_dir / "ranking.csv"
        self.log_file = p / "log.txt"
        self.lock_file = p / LOCK

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def predictions_of(self, split: str = "val") -> Path:
        """Where a split's predictions are saved (val's at the top, test's in test/)."""
        return self.predictions_dir if split == "val" else self.predictions_dir / split

    def prediction_files_of(self, writer: str) -> Path:
        """Where the val predictions are written as files to correct, in that output
        format (``WriterSpec.predictions``): ``predictions/labelme/``."""
        return self.predictions_dir / writer

    def plots_of(self, split: str = "val") -> Path:
        return self.plots_dir if split == "val" else self.plots_dir / split

    def relative(self, path: str | Path) -> str:
        """``path`` relative to the folder (a run folder may be moved or shared)."""
        try:
            return Path(path).resolve().relative_to(self.path.resolve()).as_posix()
        except ValueError:
            return str(path)

    # manifest.json --------------------------------------------------------------------------

    def manifest(self) -> Manifest:
        """The run's manifest, or one clear line: no such folder, not a run, or a manifest
        this zoo cannot read (an older zoo's without a field it needs)."""
        if not self.path.is_dir():
            raise ZooError(f"{self.path}: no such run folder")
        try:
            data = read_json(self.manifest_file)
        except (OSError, ValueError):
            raise ZooError(f"{self.path}: not a zoo run folder (no readable {MANIFEST})") from None
        if not isinstance(data, dict):
            raise ZooError(f"{self.manifest_file}: not a zoo manifest (expected a JSON object)")
        try:
            return Manifest.model_validate(data)
        except ValidationError as e:
            raise ZooError(f"{self.manifest_file}: written by zoo {data.get('zoo', '(unknown version)')}, "
                           f"which this zoo cannot read ({_first_problem(e)}); start a new run") from None

    def manifest_or_none(self) -> Manifest | None:
        """The manifest, or None where there is no readable one (a folder that is not a run)."""
        try:
            return self.manifest()
        except ZooError:
            return None

    def write_manifest(self, manifest: Manifest) -> Path:
        return write_json(self.manifest_file, manifest.to_dict())

    def trained_manifest(self) -> Manifest:
        """The manifest of a run whose training finished (what predict needs), or a clear error."""
        m = self.manifest()
        if not m.trained:
            raise ZooError(f"{self.path}: this run never finished training; continue it with `zoo run --resume`")
        return m

    def ledger(self, manifest: Manifest, save=None) -> Ledger:
        """The sha256 records of the run's checkpoints (``manifest.checkpoints``, updated in
        place; ``save`` persists the manifest). Untracked for a run written before zoo kept them."""
        ledger = Ledger(self.path, manifest.checkpoints, save=save)
        if not ledger.tracked:
            log.warning("%s was written before zoo recorded checkpoint checksums; they are not verified", self.path)
        return ledger

    # config.yaml, split.json, data/meta.json, metrics.json ---------------------------------

    def read_config(self) -> dict[str, Any]:
        """The resolved config the run trained with, as written (a mapping of keys), read as
        every config file is (zoo.config: one clear line for broken YAML)."""
        if not self.config_file.is_file():
            raise ZooError(f"{self.config_file}: missing; this run folder is incomplete")
        return load_yaml_file(self.config_file)

    def write_config(self, config: dict[str, Any]) -> Path:
        return write_yaml(self.config_file, config)

    def read_split(self):
        return read_split(self.split_file)

    def write_split(self, split) -> None:
        write_split(split, self.split_file)

    def write_meta(self, meta: Dataset) -> Path:
        """The vocabularies trained with, which a prediction needs without the data folder."""
        return write_json(self.meta_file, {
            "categories": meta.categories, "classes": meta.classes, "keypoint_names": meta.keypoint_names,
            "skeleton": [list(s) for s in meta.skeleton], "oks_sigmas": meta.oks_sigmas,
            "pixel_spacing": meta.pixel_spacing,
        })

    def read_meta(self) -> Dataset:
        """The vocabularies the run was trained with, as an empty :class:`Dataset`."""
        if not self.meta_file.is_file():
            raise ZooError(f"{self.meta_file}: missing; this run folder is incomplete")
        try:
            m = read_json(self.meta_file)
        except (OSError, ValueError):
            raise ZooError(f"{self.meta_file}: not valid JSON") from None
        if not isinstance(m, dict):
            raise ZooError(f"{self.meta_file}: not a zoo meta file (expected a JSON object)")
        return Dataset(
            categories=m.get("categories", []), classes=m.get("classes", []),
            keypoint_names=m.get("keypoint_names", []),
            skeleton=[tuple(s) for s in m.get("skeleton", [])], oks_sigmas=m.get("oks_sigmas"),
            pixel_spacing=tuple(m["pixel_spacing"]) if m.get("pixel_spacing") else None,
        )

    def read_metrics(self) -> dict[str, Any]:
        try:
            return read_json(self.metrics_file)
        except (OSError, ValueError):
            raise ZooError(f"{self.metrics_file}: missing or unreadable; this run has no scores") from None

    def write_metrics(self, metrics: dict[str, Any]) -> Path:
        return write_json(self.metrics_file, metrics)

    # predictions/ ---------------------------------------------------------------------------

    def prediction_path(self, task, split: str = "val") -> Path:
        """The file (or folder) a split's predictions are saved in: the exchange format of
        the task's answer, the one ``zoo eval --pred`` reads."""
        return self.predictions_of(split) / _PREDICTION_NAMES[task.answer_kind]

    def save_predictions(self, task, preds: Sequence[Prediction], gt: Dataset, split: str = "val") -> list[Path]:
        """``preds`` (one per ``gt`` image) in the task's exchange format."""
        path = self.prediction_path(task, split)
        if task.answer_kind == "instances":
            return [write_json(path, predictions_to_coco_results(preds, default_image_ids(gt), gt.coco_category_ids()))]
        if task.answer_kind == "label_map":
            return [write_bytes(path / id_path(p.image_id, ".png"), _png(p.label_map)) for p in preds]
        return [write_bytes(path, _label_csv(preds, gt.classes))]

    def load_predictions(self, gt: Dataset, split: str = "val", task=None) -> list[Prediction]:
        """The saved predictions of ``gt``'s images, read by zoo's one prediction-file reader
        (``task``: the run's own when not given)."""
        task = task or get_task(self.manifest().task)
        path = self.prediction_path(task, split)
        if not path.exists():
            raise ZooError(f"{path}: no saved predictions")
        return read_predictions(task, path, gt)


#: Task.answer_kind -> what its predictions are saved as, under predictions/
_PREDICTION_NAMES = {"instances": "coco_results.json", "label_map": "masks", "label": "predictions.csv"}


def _png(label_map) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(label_map).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _label_csv(preds: Sequence[ClassPrediction], classes: list[str]) -> bytes:
    """``image,label,score_<class>...``: the class scores left empty where a model gives none."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image", "label", *(f"score_{c}" for c in classes)])
    for p in preds:
        scores = [f"{s:.6g}" for s in p.scores] if p.scores else [""] * len(classes)
        w.writerow([p.image_id, classes[p.label], *scores])
    return buf.getvalue().encode()


# -- the series of runs under --out ------------------------------------------------------------


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


def iter_run_folders(out: Path) -> Iterator[tuple[RunFolder, Manifest]]:
    """Every run folder directly under ``out`` with its manifest (unreadable ones skipped)."""
    if not out.is_dir():
        return
    for p in sorted(out.iterdir()):
        folder = RunFolder(p)
        m = folder.manifest_or_none() if p.is_dir() else None
        if m is not None:
            yield folder, m


def load_predictions(run_dir: Path, gt: Dataset) -> list[Prediction]:
    """The saved (val) predictions of a run, one per ``gt`` image, in ``gt`` order."""
    return RunFolder(run_dir).load_predictions(gt)


# -- one process at a time -------------------------------------------------------------------


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
