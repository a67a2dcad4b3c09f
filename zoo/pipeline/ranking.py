"""What to label next: unlabelled images ranked by how unsure a trained model is about them.

The score of an image (higher = a person's annotation teaches the model more):

* **detect, instance-seg, keypoint** — the sum, over the image's detections scoring at least
  ``MIN_SCORE`` (0.1), of each one's uncertainty, the larger of

  - *low confidence*: ``1 - |2s - 1|`` (1 at s = 0.5, 0 at s = 0 or 1), and
  - *low margin*: ``1 - (s - r)`` where ``r`` is the best score of a detection of another
    class overlapping it (box IoU >= 0.5) and scoring no higher: the model cannot tell the
    classes apart there. That rival is not counted again on its own.

  Many confident detections score little; a few objects near the decision threshold or
  disputed between classes score high.
* **classify** — the entropy of the class scores, divided by ``log K`` (0: certain, 1: every
  class equally likely).
* **semantic-seg** — not ranked: zoo's semantic predictions are label maps without
  per-pixel scores.

Ties are broken by image id, so a run ranks the same images the same way every time.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from zoo.atomic import write_text
from zoo.data.reading import read_dataset
from zoo.dataset import Dataset, ImageRecord, box_iou
from zoo.errors import ZooError
from zoo.pipeline.predict import (
    _check_out,
    _collect_images,
    _record,
    load_backend,
    prediction_writer,
    write_prediction_files,
)
from zoo.predictions import ClassPrediction, InstancePredictions, Prediction, check_predictions
from zoo.progress import track

#: Detections below this score are background noise, not uncertainty (yolov8 keeps 0.001+).
MIN_SCORE = 0.1
#: Boxes overlapping this much are the same object claimed by two classes.
RIVAL_IOU = 0.5


@dataclass(frozen=True)
class Ranked:
    image_id: str
    file: Path | None
    score: float
    why: str


def require_scores(task) -> None:
    """A ZooError, before any training, for a task whose predictions carry no scores."""
    if not task.scored_predictions:
        raise ZooError(f"--rank: {task.name} predictions are label maps without per-pixel scores; "
                       "rank with an instance-seg or detect run instead")


def uncertainty(pred: Prediction, meta: Dataset) -> tuple[float, str]:
    """The image's score (see the module doc) and a short reason for the ranking.csv."""
    if isinstance(pred, ClassPrediction):
        return _entropy(pred, meta)
    if isinstance(pred, InstancePredictions):
        return _detection_uncertainty(pred, meta)
    raise ZooError(f"--rank: cannot score a {type(pred).__name__} (it carries no confidence)")


def _entropy(pred: ClassPrediction, meta: Dataset) -> tuple[float, str]:
    if not pred.scores:
        raise ZooError("--rank: this classifier gives no class scores to rank by")
    total = sum(pred.scores) or 1.0
    p = [s / total for s in pred.scores]
    k = len(p)
    h = -sum(q * math.log(q) for q in p if q > 0) / math.log(k) if k > 1 else 0.0
    top = sorted(range(k), key=lambda i: -p[i])[:2]
    names = meta.classes or [str(i) for i in range(k)]
    return h, f"entropy {h:.2f}: " + ", ".join(f"{names[i]} {p[i]:.2f}" for i in top)


def _detection_uncertainty(pred: InstancePredictions, meta: Dataset) -> tuple[float, str]:
    dets = sorted((d for d in pred.detections if d.score >= MIN_SCORE), key=lambda d: -d.score)
    rivalled: set[int] = set()
    parts: list[tuple[float, str]] = []
    for i, d in enumerate(dets):
        if i in rivalled:
            continue
        u, why = 1 - abs(2 * d.score - 1), f"{meta.categories[d.category]} {d.score:.2f}"
        for j in range(i + 1, len(dets)):
            r = dets[j]
            if j not in rivalled and r.category != d.category and box_iou(d.bbox, r.bbox) >= RIVAL_IOU:
                rivalled.add(j)
                if 1 - (d.score - r.score) > u:
                    u = 1 - (d.score - r.score)
                    why = f"{meta.categories[d.category]} {d.score:.2f} or {meta.categories[r.category]} {r.score:.2f}"
                break
        parts.append((u, why))
    score = sum(u for u, _ in parts)
    if not parts:
        return 0.0, "no detection above 0.1"
    top = sorted(parts, key=lambda p: -p[0])[:3]
    return score, f"{len(parts)} detection(s); least sure: " + "; ".join(w for _, w in top)


def rank(records: Sequence[ImageRecord], preds: Sequence[Prediction], meta: Dataset) -> list[Ranked]:
    """The images, most useful to label first (ties: by id)."""
    out = []
    for rec, pred in zip(records, preds):
        score, why = uncertainty(pred, meta)
        out.append(Ranked(rec.id, rec.file, round(score, 6), why))
    return sorted(out, key=lambda r: (-r.score, r.image_id))


def write_ranking_csv(path: Path, ranked: Sequence[Ranked]) -> Path:
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image", "score", "why"])
    for r in ranked:
        w.writerow([str(r.file) if r.file is not None else r.image_id, f"{r.score:.4f}", r.why])
    return write_text(Path(path), buf.getvalue())


def rank_and_prefill(backend, task, meta: Dataset, backend_name: str, records: list[ImageRecord], out: Path, *,
                     top: int, conf: float = 0.25, writer=None) -> list[Ranked]:
    """Predict ``records``, write ``out/ranking.csv`` (every image) and, for the ``top``
    first, a copy of the image with its pre-filled labelme JSON under ``out``."""
    preds = list(track(backend.predict(records), "predicting", total=len(records)))
    check_predictions(task, backend_name, records, preds, meta)
    ranked = rank(records, preds, meta)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_ranking_csv(out / "ranking.csv", ranked)
    chosen = {r.image_id for r in ranked[:top]}
    keep = [(rec, p) for rec, p in zip(records, preds) if rec.id in chosen]
    write_prediction_files(out, Dataset(categories=meta.categories, classes=meta.classes,
                                        keypoint_names=meta.keypoint_names, images=[r for r, _ in keep]),
                           [p for _, p in keep], conf=conf, copy_images=True, writer=writer)
    return ranked


def _annotated_files(inputs: Sequence[Path], registry=None) -> set[str]:
    """Image files an annotation file in one of the input folders already covers.

    Only a file of its own counts (a labelme JSON, even one with no shape: a labelled
    negative; a VOC XML; a YOLO .txt; an image listed in a COCO file), never a folder name:
    a folder of new images sorted into sub-folders (``day1/``, ``day2/``) must not be taken
    for class folders and skipped as labelled."""
    import os

    done: set[str] = set()
    for p in map(Path, inputs):
        if not p.is_dir():
            continue
        try:
            ds = read_dataset(p, registry=registry)
        except ZooError:  # no reader takes the folder: nothing in it is annotated
            continue
        done |= {os.path.realpath(r.file) for r in ds.images if r.file is not None and _has_annotation_file(r)}
    return done


def _has_annotation_file(record: ImageRecord) -> bool:
    """Was the record read from an annotation file that exists and is not the image itself?"""
    import os

    if record.source is None:
        return False
    source = os.path.realpath(record.source.file)
    return os.path.isfile(source) and source != os.path.realpath(record.file)


def rank_folder(run_dir: Path, inputs: Sequence[Path], out: Path, *, top: int = 10, conf: float = 0.25,
                device: str = "auto", registry=None, to: str | None = None) -> list[Ranked]:
    """``zoo predict --run RUN DIR --rank``: the unlabelled images of DIR (those no annotation
    in DIR covers) ranked; ranking.csv and the top N pre-filled in ``out``, in the format ``to``
    (default: the one installed that writes predictions)."""
    import os

    if top < 0:
        raise ZooError(f"--top {top}: expected 0 or more")
    writer = prediction_writer(registry, to)
    files = _collect_images(inputs)
    _check_out(Path(out), inputs, files)
    done = _annotated_files(inputs, registry)
    files = [(f, rid) for f, rid in files if os.path.realpath(f) not in done]
    if not files:
        raise ZooError(f"{', '.join(map(str, inputs))}: every image is annotated already; nothing to rank")
    backend, task, meta, name = load_backend(run_dir, device, registry)
    require_scores(task)
    records = [_record(f, rid) for f, rid in files]
    return rank_and_prefill(backend, task, meta, name, records, Path(out), top=top, conf=conf, writer=writer)


def rank_unlabelled_of_run(run_dir: Path, backend, task, meta: Dataset, backend_name: str, data_root: Path,
                           unlabelled: Sequence[str], *, top: int) -> list[Ranked]:
    """``zoo run --rank``: the data folder's unlabelled images (paths relative to it) ranked
    by the model just trained; ranking.csv and the top N pre-filled in ``RUN/ranking/``."""
    records = [_record(Path(data_root) / rel, Path(rel).with_suffix("").as_posix()) for rel in unlabelled]
    return rank_and_prefill(backend, task, meta, backend_name, records, Path(run_dir) / "ranking", top=top)
