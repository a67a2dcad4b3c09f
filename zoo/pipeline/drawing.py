"""One image's annotation or prediction drawn on a matplotlib axis, for the compare's
``samples.png`` and the hard-image galleries (:mod:`zoo.pipeline.failures`).

What a task's answer looks like is the Task's (``answer_kind``, ``draws_masks``,
``draws_keypoints``): nothing here asks for a task by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zoo.data.raster import instance_mask, rle_to_mask, semantic_label_map
from zoo.dataset import ImageRecord
from zoo.evaluation.plots import _pyplot
from zoo.predictions import ClassPrediction, InstancePredictions, SemanticPrediction
from zoo.tasks import Task


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, never a window): the evaluator's
    plots' own setup (zoo.evaluation.plots), so there is one."""
    return _pyplot()


@dataclass
class Shape:
    """One thing to draw: an instance of the ground truth (``score`` None) or a detection."""

    category: int
    score: float | None
    box: tuple
    mask: Any = None  # bool array, or None
    keypoints: list | None = None


@dataclass
class Picture:
    """An image ready to show: its pixels (masks and label maps tinted in), the shapes to
    outline on it and a caption."""

    pixels: Any
    shapes: list[Shape]
    caption: str = ""


def draw_answer(ax, record, answer, task: Task, meta, conf: float = 0.25) -> None:
    """``record``'s image with ``answer`` on it: the record itself (its ground truth), a
    prediction, or None (nothing predicted)."""
    import numpy as np

    pixels = record.load_rgb().astype(np.float32) / 255.0
    if isinstance(answer, ImageRecord):
        picture = truth_picture(answer, task, meta, pixels)
    else:
        picture = prediction_picture(answer, meta, pixels, conf)
    show(ax, picture)


def truth_picture(record, task: Task, meta, pixels) -> Picture:
    """The ground truth of ``record`` as the task shows it."""
    if task.answer_kind == "label":
        return Picture(pixels, [], ", ".join(meta.classes[c] for c in record.labels))
    if task.answer_kind == "label_map":
        return Picture(tint_label_map(pixels, semantic_label_map(record, meta), meta), [])
    h, w = pixels.shape[:2]
    shapes = [Shape(i.category, None, i.bbox, instance_mask(i, h, w) if task.draws_masks else None,
                    i.keypoints if task.draws_keypoints else None)
              for i in record.instances if not i.ignore]
    return Picture(tint_masks(pixels, shapes), shapes)


def prediction_picture(pred, meta, pixels, conf: float) -> Picture:
    """A prediction (or None): its detections scored ``conf`` or more, its label map or its class."""
    if isinstance(pred, InstancePredictions):
        shown = [d for d in sorted(pred.detections, key=lambda d: -d.score) if d.score >= conf][:50]
        shapes = [Shape(d.category, d.score, d.bbox, rle_to_mask(d.mask).astype(bool) if d.mask is not None else None,
                        d.keypoints) for d in shown]
        return Picture(tint_masks(pixels, shapes), shapes,
                       f"{len(shown)} of {len(pred.detections)} detections (score ≥ {conf:g})")
    if isinstance(pred, SemanticPrediction):
        return Picture(tint_label_map(pixels, pred.label_map, meta), [])
    if isinstance(pred, ClassPrediction):
        caption = meta.classes[pred.label]
        if pred.scores:
            caption += f" ({max(pred.scores):.2f})"
        return Picture(pixels, [], caption)
    return Picture(pixels, [])


def _color(k: int):
    return pyplot().get_cmap("tab10")(k % 10)


def tint_label_map(pixels, label_map, meta):
    """Each foreground class's pixels half-tinted with its colour."""
    import numpy as np

    out = pixels.copy()
    lm = np.asarray(label_map)
    for c in range(1, len(meta.categories) + 1):
        sel = lm == c
        out[sel] = 0.5 * out[sel] + 0.5 * np.asarray(_color(c - 1)[:3])
    return out


def tint_masks(pixels, shapes: list[Shape]):
    """Each shape's mask tinted with its category's colour."""
    import numpy as np

    out = pixels.copy()
    for s in shapes:
        if s.mask is not None:
            out[s.mask] = 0.55 * out[s.mask] + 0.45 * np.asarray(_color(s.category)[:3])
    return out


def show(ax, picture: Picture) -> None:
    """The picture on ``ax``: pixels, boxes, visible keypoints, caption, no ticks."""
    from matplotlib import patches

    ax.imshow(picture.pixels)
    for s in picture.shapes:
        color = _color(s.category)
        x0, y0, x1, y1 = s.box
        ax.add_patch(patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=1.0, ec=color))
        for x, y, v in s.keypoints or []:
            if v > (0 if s.score is None else 0.5):
                ax.plot([x], [y], ".", ms=3, color=color)
    if picture.caption:
        ax.set_xlabel(picture.caption, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def legend_of_categories(task: Task, meta) -> list:
    """The colour of each category, for a figure's legend (none where the answer is a label)."""
    if task.answer_kind == "label" or not meta.categories:
        return []
    from matplotlib.patches import Patch

    return [Patch(color=_color(k), label=name) for k, name in enumerate(meta.categories)]
