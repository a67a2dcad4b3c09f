"""Canonical predictions: what every backend translates its framework's output into.

One type per task family, so the shared evaluator never sees a framework's format:

* detect, instance-seg, keypoint -> :class:`InstancePredictions` (a list of
  :class:`Detection`; instance-seg fills ``mask``, keypoint fills ``keypoints``);
* semantic-seg -> :class:`SemanticPrediction` (a label map, background 0, category i at i+1);
* classify -> :class:`ClassPrediction`.

Coordinates follow :mod:`zoo.dataset`: absolute pixels of the original image, unrounded.

Two things every room does with predictions, written once here:

* :func:`check_predictions` -- the one check that a backend returned one well-formed
  prediction per image, in order (``zoo run``, ``zoo predict``, the ranking and
  :mod:`zoo.testing`);
* :func:`score_predictions` -- the one function that feeds the shared evaluator, after
  detectron2's ``inference_on_dataset``: build the task's evaluator, process every
  scorable image with its prediction, evaluate (``zoo.evaluation.evaluate``, model
  selection's scorer, the comparison's verdict and :mod:`zoo.testing`). It lives in the
  contract, not in :mod:`zoo.evaluation`, because :class:`zoo.selection.Selection` (a
  contract type every backend gets) scores with it; it reaches the evaluators only through
  :meth:`zoo.tasks.Task.evaluator`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from zoo.dataset import Box, Dataset, ImageRecord
from zoo.errors import ZooError

_log = logging.getLogger("zoo.evaluation")


@dataclass(slots=True)
class Detection:
    category: int
    score: float
    bbox: Box
    mask: dict | None = None  # COCO RLE over the whole image
    keypoints: list[tuple[float, float, float]] | None = None  # (x, y, score)
    # Only for a COCO result given without a bbox: the area pycocotools' loadRes gives it (the
    # mask's pixel count; keypoints: the box of the points, = bbox). None: the box's area.
    area: float | None = None


@dataclass(slots=True)
class InstancePredictions:
    image_id: str
    detections: list[Detection] = field(default_factory=list)


@dataclass(slots=True)
class SemanticPrediction:
    image_id: str
    label_map: Any  # (H, W) integer numpy array, same size as the image


@dataclass(slots=True)
class ClassPrediction:
    image_id: str
    label: int
    scores: list[float] | None = None  # one per class, summing to ~1, when the model gives them


Prediction = Union[InstancePredictions, SemanticPrediction, ClassPrediction]


#: how far (pixels) a box may reach past the image's edge under ``inside_image``: float noise
#: of a backend's rescaling back to original pixels
BOX_SLACK = 1.0


def check_predictions(task: Any, backend: str, images: Sequence[ImageRecord], preds: Sequence[Any],
                      meta: Dataset, *, inside_image: bool = False) -> None:
    """One well-formed prediction per image of ``images``, in order; else a :class:`ZooError`
    naming the backend and the first problem.

    Well-formed is what ``task.validate`` says, plus a semantic label map of the image's size.
    ``inside_image`` adds the conformance suite's stricter rule (:mod:`zoo.testing`): every
    box lies in its image (within :data:`BOX_SLACK`), i.e. in original-image pixels.
    """
    if len(preds) != len(images):
        raise ZooError(f"backend '{backend}' returned {len(preds)} predictions for {len(images)} images")
    for record, pred in zip(images, preds):
        if getattr(pred, "image_id", None) != record.id:
            raise ZooError(
                f"backend '{backend}' returned a prediction for '{getattr(pred, 'image_id', None)}' "
                f"where '{record.id}' was expected (predictions must follow the input order)"
            )
        problems = task.validate(pred, meta) or _shape_problems(record, pred, inside_image)
        if problems:
            raise ZooError(f"backend '{backend}' returned a bad prediction for image '{record.id}': {problems[0]}")


def _shape_problems(record: ImageRecord, pred: Any, inside_image: bool) -> list[str]:
    """A label map not of the image's size; under ``inside_image``, boxes outside it."""
    shape = getattr(getattr(pred, "label_map", None), "shape", None)
    if shape is not None and tuple(shape) != (record.height, record.width):
        return [f"label map is {shape[1]}x{shape[0]}, the image is {record.width}x{record.height}"]
    if not inside_image or not isinstance(pred, InstancePredictions):
        return []
    W, H, slack = record.width, record.height, BOX_SLACK
    return [f"box {d.bbox} outside the {W}x{H} image (boxes must be in original-image pixels)"
            for d in pred.detections
            if not (-slack <= d.bbox[0] and d.bbox[2] <= W + slack and -slack <= d.bbox[1] and d.bbox[3] <= H + slack)]


def score_predictions(task: Any, dataset: Dataset, predictions: Iterable[Any], *,
                      ci95: bool = False, ground_truth: Any = None) -> tuple[dict[str, Any], Any]:
    """Score ``predictions`` (canonical, any order, at most one per image) against
    ``dataset`` with the shared evaluator of ``task``: the one place an evaluator is fed.

    Every image of ``dataset`` that the task can score (``task.is_annotated``) is processed;
    an instance task's image without a prediction counts as "nothing detected" (a semantic-seg
    or classify image without one is the evaluator's error), and a prediction for an image not
    in ``dataset``, or a second one for an image, is an error. ``ci95``: the evaluator's
    bootstrap interval over images (and its per-image results, for
    :meth:`~zoo.evaluation.base.Evaluator.resampled`). Returns the metrics and the evaluator,
    evaluated (for plots and resampling). ``ground_truth``: ``dataset``'s ground truth converted
    once by the caller (:class:`zoo.evaluation.coco.GroundTruth`), for images scored again and again.
    """
    t0 = time.perf_counter()
    by_id: dict[str, Any] = {}
    for pred in predictions:
        if pred.image_id in by_id:
            raise ZooError(f"two predictions for image '{pred.image_id}'")
        by_id[pred.image_id] = pred
    known = {r.id for r in dataset.images}
    stray = [i for i in by_id if i not in known]
    if stray:
        raise ZooError(
            f"{len(stray)} prediction(s) for images not in the ground truth, e.g. {', '.join(map(repr, stray[:3]))}"
        )
    options = {"ci95": ci95} if ground_truth is None else {"ci95": ci95, "ground_truth": ground_truth}
    evaluator = task.evaluator(dataset, **options)
    scored = 0
    for record in dataset.images:
        if task.is_annotated(record):
            evaluator.process(record, by_id.get(record.id))
            scored += 1
    metrics = evaluator.evaluate()
    _check_schema(task, metrics)
    _log.debug("%s: scored %d image(s) in %.2f s", task.name, scored, time.perf_counter() - t0)
    return metrics, evaluator


def _check_schema(task: Any, metrics: dict[str, Any]) -> None:
    """Refuse metrics that differ from the evaluator's declared schema (zoo.metrics): a score it
    did not declare would be left out of every report without a word."""
    spec = task.evaluator_spec
    problems = spec.schema.problems(metrics)
    if problems:
        raise ZooError(f"the {task.name} evaluator ({spec.plugin or spec.factory.__name__}) wrote metrics its "
                       f"schema does not declare: {'; '.join(problems)}")
