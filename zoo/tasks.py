"""The Task interface: what differs between classify, detect, semantic-seg, instance-seg and
keypoint, in one place, so the run pipeline, the evaluator and the conformance suite never
branch on a task name.
"""

from __future__ import annotations

from abc import ABC
from typing import Any, ClassVar

import zoo.registry
from zoo.dataset import Dataset, ImageRecord
from zoo.errors import ZooError, unknown
from zoo.metrics import EvaluatorSpec, MetricsSchema
from zoo.predictions import (
    ClassPrediction,
    InstancePredictions,
    Prediction,
    SemanticPrediction,
)


class Task(ABC):
    """A vision task: its vocabulary, its prediction type, what it draws. Its evaluator and
    the schema of its metrics are registered by the evaluation room (``zoo_evaluators``)."""

    name: ClassVar[str]
    title: ClassVar[str]
    prediction_type: ClassVar[type]
    #: ``imgsz: auto`` per device: (cap, ceiling) -- the size used when the objects allow, and
    #: the most small objects may raise it to (see zoo.training.autoconfig).
    imgsz_caps: ClassVar[dict[str, tuple[int, int]]] = {"cpu": (416, 640), "gpu": (1024, 1280)}

    # -- how the task is shown (pictures, leaderboard plots, failure galleries) --
    #: What one image's answer is: ``"label"`` (a class, shown as a caption), ``"label_map"``
    #: (a class per pixel, shown tinted) or ``"instances"`` (objects, shown as boxes).
    answer_kind: ClassVar[str] = "instances"
    #: Whether pictures of the ground truth show each instance's mask / keypoints.
    draws_masks: ClassVar[bool] = False
    draws_keypoints: ClassVar[bool] = False
    #: The overlap named on a precision-recall curve ("box", "mask", "OKS"); None: the task
    #: has no PR curve (a compare's ``pr_curves.png``).
    pr_curve_overlap: ClassVar[str | None] = None
    #: Whether a prediction carries scores an image can be ranked by (``zoo run --rank``).
    scored_predictions: ClassVar[bool] = True

    def class_names(self, meta: Dataset) -> list[str]:
        """The names a model of this task predicts, index = predicted id."""
        return meta.categories

    def is_annotated(self, record: ImageRecord) -> bool:
        """Whether an image carries annotation this task can learn from or be scored on.

        An image with no instances still counts for detection tasks (a negative image); it
        is the dataset as a whole that must have something (see :meth:`check`).
        """
        return True

    def check(self, dataset: Dataset) -> None:
        """Raise a :class:`ZooError` when the dataset cannot serve this task."""
        if not dataset.categories or not any(r.instances for r in dataset.images):
            raise ZooError(f"{self.title} needs annotated objects; {_where(dataset)} has none")

    def stratum(self, record: ImageRecord) -> str:
        """A key to stratify the train/val split by: the image's most frequent category."""
        cats = [i.category for i in record.instances if not i.ignore]
        return str(max(set(cats), key=cats.count)) if cats else "-"

    def validate(self, pred: Prediction, meta: Dataset) -> list[str]:
        """Problems with a backend's prediction (empty when it is well-formed)."""
        if not isinstance(pred, self.prediction_type):
            return [f"expected {self.prediction_type.__name__}, got {type(pred).__name__}"]
        return []

    @property
    def evaluator_spec(self) -> EvaluatorSpec:
        """The evaluator registered for this task (:mod:`zoo.metrics`, the ``zoo_evaluators`` hook)."""
        return zoo.registry.get_registry().evaluator(self.name)

    @property
    def metrics_schema(self) -> MetricsSchema:
        """What this task's metrics hold and how they are shown (the evaluator's declaration)."""
        return self.evaluator_spec.schema

    def evaluator(self, meta: Dataset, **conventions: Any):
        """The shared evaluator for this task (see :mod:`zoo.evaluation`)."""
        spec = self.evaluator_spec
        return spec.factory(meta, task=self, **{**spec.options, **conventions})

    def __repr__(self) -> str:
        return f"<Task {self.name}>"


class _InstanceTask(Task):
    prediction_type = InstancePredictions

    def validate(self, pred, meta):
        problems = super().validate(pred, meta)
        if problems:
            return problems
        n = len(self.class_names(meta))
        for k, d in enumerate(pred.detections):
            x0, y0, x1, y1 = d.bbox
            if not (0 <= d.category < n):
                problems.append(f"detection {k}: category {d.category} outside 0..{n - 1}")
            if not (x1 >= x0 and y1 >= y0):
                problems.append(f"detection {k}: box {d.bbox} is not x0 <= x1, y0 <= y1")
            if not (0.0 <= d.score <= 1.0):
                problems.append(f"detection {k}: score {d.score} outside [0, 1]")
        return problems


class Detect(_InstanceTask):
    name = "detect"
    title = "Object detection"
    pr_curve_overlap = "box"


class InstanceSeg(_InstanceTask):
    name = "instance-seg"
    title = "Instance segmentation"
    draws_masks = True
    pr_curve_overlap = "mask"

    def check(self, dataset):
        super().check(dataset)
        _require_shapes(self, dataset)

    def validate(self, pred, meta):
        problems = super().validate(pred, meta)
        problems += [f"detection {k}: no mask" for k, d in enumerate(getattr(pred, "detections", [])) if d.mask is None]
        return problems


class Keypoint(_InstanceTask):
    name = "keypoint"
    title = "Keypoint detection"
    draws_keypoints = True
    pr_curve_overlap = "OKS"

    def check(self, dataset):
        super().check(dataset)
        if not dataset.keypoint_names or not any(
            i.keypoints for r in dataset.images for i in r.instances
        ):
            raise ZooError(f"{self.title} needs keypoints; {_where(dataset)} has none")

    def validate(self, pred, meta):
        problems = super().validate(pred, meta)
        k = len(meta.keypoint_names)
        for n, d in enumerate(getattr(pred, "detections", [])):
            if d.keypoints is None or len(d.keypoints) != k:
                problems.append(f"detection {n}: expected {k} keypoints")
        return problems


class SemanticSeg(Task):
    name = "semantic-seg"
    title = "Semantic segmentation"
    prediction_type = SemanticPrediction
    answer_kind = "label_map"
    # label maps hold no per-pixel scores
    scored_predictions = False

    def class_names(self, meta):
        return meta.semantic_classes()

    def check(self, dataset):
        super().check(dataset)
        _require_shapes(self, dataset)

    def validate(self, pred, meta):
        problems = super().validate(pred, meta)
        if problems:
            return problems
        m = pred.label_map
        if getattr(m, "ndim", 0) != 2:
            return [f"label map must be 2-D, got shape {getattr(m, 'shape', None)}"]
        n = len(self.class_names(meta))
        top = int(m.max()) if m.size else 0
        if top >= n:
            problems.append(f"label map holds class {top}; only 0..{n - 1} exist")
        return problems


class Classify(Task):
    name = "classify"
    title = "Image classification"
    prediction_type = ClassPrediction
    answer_kind = "label"
    # a whole-image label needs no fine detail: ImageNet's 224 on a CPU, a little more on a GPU
    imgsz_caps = {"cpu": (224, 224), "gpu": (384, 384)}

    def class_names(self, meta):
        return meta.classes

    def is_annotated(self, record):
        return len(record.labels) == 1

    def check(self, dataset):
        if not dataset.classes or not any(len(r.labels) == 1 for r in dataset.images):
            raise ZooError(
                f"{self.title} needs image-level labels (labelme flags or class folders); "
                f"{_where(dataset)} has none"
            )

    def stratum(self, record):
        return str(record.labels[0]) if record.labels else "-"

    def validate(self, pred, meta):
        problems = super().validate(pred, meta)
        if not problems and not (0 <= pred.label < len(meta.classes)):
            problems.append(f"label {pred.label} outside 0..{len(meta.classes) - 1}")
        if not problems and pred.scores is not None and len(pred.scores) != len(meta.classes):
            # ROC-AUC reads score k as class k's: a short or long list would misalign them
            problems.append(f"{len(pred.scores)} class scores for {len(meta.classes)} classes")
        return problems


TASKS: dict[str, Task] = {t.name: t for t in (Classify(), Detect(), SemanticSeg(), InstanceSeg(), Keypoint())}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise unknown("task", name, TASKS) from None


def _require_shapes(task: Task, dataset: Dataset) -> None:
    """Pixel-level tasks learn from outlines: boxes alone cannot serve them."""
    if not any(i.polygons or i.mask for r in dataset.images for i in r.instances):
        raise ZooError(f"{task.title} needs polygons or masks; {_where(dataset)} has boxes only")


def _where(dataset: Dataset) -> str:
    return str(dataset.root) if dataset.root else "the dataset"
