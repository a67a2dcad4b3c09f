"""Canonical predictions: what every backend translates its framework's output into.

One type per task family, so the shared evaluator never sees a framework's format:

* detect, instance-seg, keypoint -> :class:`InstancePredictions` (a list of
  :class:`Detection`; instance-seg fills ``mask``, keypoint fills ``keypoints``);
* semantic-seg -> :class:`SemanticPrediction` (a label map, background 0, category i at i+1);
* classify -> :class:`ClassPrediction`.

Coordinates follow :mod:`zoo.dataset`: absolute pixels of the original image, unrounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from zoo.dataset import Box


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
