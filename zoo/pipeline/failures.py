"""The validation images a model gets most wrong, and pictures of them.

A per-image failure score, deliberately simple so a reader can check it by eye:

- detect / instance-seg / keypoint: the predictions scored at least ``conf`` (0.25, the
  cut ``zoo predict`` uses) are matched greedily, highest score first, to unmatched ground
  truth of the same category at box IoU >= 0.5. The score is false positives + misses;
  ignored (crowd / difficult) ground truth is neither a miss nor a match target, and a
  prediction lying on it is not a false positive.
- semantic-seg: the fraction of pixels whose class is wrong (0..1).
- classify: 1 when the class is wrong, plus the prediction's confidence when known (a
  confident mistake ranks first).

This ranks images for people to look at; the scores in metrics.json are the shared
evaluator's (:mod:`zoo.evaluation`), never these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.atomic import write_bytes
from zoo.data.raster import semantic_label_map
from zoo.dataset import box_iou
from zoo.pipeline.drawing import draw_answer, pyplot

CONF = 0.25
IOU = 0.5


@dataclass
class ImageFailure:
    image_id: str
    score: float
    false_positives: list = field(default_factory=list)  # boxes (x0, y0, x1, y1)
    misses: list = field(default_factory=list)  # ground-truth boxes nothing found

    def describe(self) -> str:
        if self.score == 0:
            return "no mistake"
        if self.false_positives or self.misses:
            return f"{len(self.false_positives)} false positive(s), {len(self.misses)} miss(es)"
        return f"failure score {self.score:.2f}"


def _instance_failure(record, pred, conf: float) -> ImageFailure:
    gts = [i for i in record.instances if not i.ignore]
    ignored = [i for i in record.instances if i.ignore]
    dets = sorted((d for d in (pred.detections if pred else []) if d.score >= conf), key=lambda d: -d.score)
    matched: set[int] = set()
    fps = []
    for d in dets:
        best, best_iou = None, IOU
        for k, g in enumerate(gts):
            if k not in matched and g.category == d.category:
                iou = box_iou(d.bbox, g.bbox)
                if iou >= best_iou:
                    best, best_iou = k, iou
        if best is not None:
            matched.add(best)
        elif not any(g.category == d.category and box_iou(d.bbox, g.bbox) >= IOU for g in ignored):
            fps.append(tuple(d.bbox))
    misses = [tuple(g.bbox) for k, g in enumerate(gts) if k not in matched]
    return ImageFailure(record.id, float(len(fps) + len(misses)), fps, misses)


def image_failure(task, record, pred, meta, conf: float = CONF) -> ImageFailure:
    """How badly ``pred`` gets one image wrong (see the module doc)."""
    import numpy as np

    if task.answer_kind == "label":
        wrong = pred is None or pred.label not in record.labels
        confidence = max(pred.scores) if pred is not None and pred.scores else 0.0
        return ImageFailure(record.id, float(wrong) * (1.0 + confidence))
    if task.answer_kind == "label_map":
        truth = np.asarray(semantic_label_map(record, meta))
        guess = np.asarray(pred.label_map) if pred is not None else np.zeros_like(truth)
        return ImageFailure(record.id, float((truth != guess).mean()) if truth.size else 0.0)
    return _instance_failure(record, pred, conf)


def worst_images(task, dataset, preds_by_id: list[dict[str, Any]], n: int) -> list[tuple[Any, float]]:
    """The ``n`` images with the highest failure score (summed over the prediction sets
    given: one for a run, one per backend for a compare), worst first, then by id; images
    nothing gets wrong are left out."""
    meta = dataset.meta()
    scored = []
    for rec in dataset.images:
        total = sum(image_failure(task, rec, preds.get(rec.id), meta).score for preds in preds_by_id)
        if total > 0:
            scored.append((rec, total))
    scored.sort(key=lambda t: (-t[1], t[0].id))
    return scored[:n]


def nothing_wrong(task, n_images: int) -> str:
    """Why a run has no plots/samples.png when its model got every validation image right
    (written beside where the picture would be, so the folder itself says so)."""
    rule = {"semantic-seg": "no pixel of any of them has the wrong class",
            "classify": "every one has the right class"}.get(
        task.name, f"no prediction scoring {CONF:g} or more is a false positive and no object is missed "
                   f"(matched at box IoU >= {IOU:g})")
    return (f"No samples.png: it shows the validation images the model gets most wrong, and none of the "
            f"{n_images} is wrong: {rule}. Nothing failed; the scores are in metrics.json.")


def failures_figure(task, dataset, columns: dict[str, dict[str, Any]], n: int = 6, path: Path | None = None):
    """A grid, worst image first: ground truth, then each column's predictions with its
    false positives (red, dashed) and misses (orange, dotted) marked. Returns
    ``(png bytes, [(image id, {column: ImageFailure})])``, or ``(None, [])`` when no image
    is wrong; with ``path``, also writes the PNG there."""
    import io

    worst = worst_images(task, dataset, list(columns.values()), n)
    if not worst:
        return None, []
    plt = pyplot()
    meta = dataset.meta()
    cols = ["ground truth", *columns]
    size = 2.8
    fig, axes = plt.subplots(len(worst), len(cols), figsize=(size * len(cols), size * len(worst) + 0.6),
                             dpi=100, squeeze=False)
    listing = []
    for i, (rec, total) in enumerate(worst):
        found = {}
        for j, col in enumerate(cols):
            ax = axes[i][j]
            pred = rec if j == 0 else columns[col].get(rec.id)
            draw_answer(ax, rec, pred, task, meta)
            if j > 0:
                found[col] = image_failure(task, rec, pred, meta)
                _mark(ax, found[col])
            if i == 0:
                ax.set_title(col, fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{rec.id} ({total:g})", fontsize=7)
        listing.append((rec.id, found))
    _legend(fig, task)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    png = buf.getvalue()
    if path is not None:
        write_bytes(path, png)
    return png, listing


def _mark(ax, fail: ImageFailure) -> None:
    """A prediction's false positives (red, dashed) and misses (orange, dotted), and its verdict."""
    from matplotlib import patches

    for style, color, boxes in (("--", "red", fail.false_positives), (":", "orange", fail.misses)):
        for x0, y0, x1, y1 in boxes:
            ax.add_patch(patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=2.0, ec=color, ls=style))
    ax.set_xlabel(fail.describe(), fontsize=7)


def _legend(fig, task) -> None:
    """What the marks mean, where there are boxes to mark."""
    if task.answer_kind != "instances":
        fig.tight_layout()
        return
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color="red", ls="--", label="false positive"),
               Line2D([], [], color="orange", ls=":", label="missed ground truth")]
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
