"""The evaluator interface (reset / process / evaluate), after detectron2's DatasetEvaluator."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from zoo.dataset import Dataset, ImageRecord
from zoo.predictions import Prediction


class Evaluator(ABC):
    """Accumulates (ground truth, prediction) pairs, then computes metrics.

    Built by :meth:`zoo.tasks.Task.evaluator` as ``Evaluator(meta, task=task, **options)``
    where ``meta`` carries the vocabularies (categories, classes, keypoint names, sigmas).
    """

    def __init__(self, meta: Dataset, *, task, **options: Any):
        self.meta = meta.meta()
        self.task = task
        self.options = options
        self.reset()

    @abstractmethod
    def reset(self) -> None:
        """Forget everything processed so far."""

    @abstractmethod
    def process(self, gt: ImageRecord, pred: Prediction) -> None:
        """Add one image's ground truth and prediction."""

    @abstractmethod
    def evaluate(self) -> dict[str, Any]:
        """The metrics dict written to metrics.json, including a ``conventions`` block."""

    def plot(self, out_dir: Path) -> list[Path]:
        """Write plots (PR curves, confusion matrices) into ``out_dir``; returns their paths."""
        return []

    def resampled(self, weights) -> dict[str, Any]:
        """After ``evaluate()`` with ``ci95``: the headline scores of each resample for image
        ``weights`` ``(resamples, images)`` in processing order (zoo.evaluation.bootstrap).
        The same weights given to two evaluators of the same images pair their resamples
        (zoo.pipeline.verdict)."""
        raise NotImplementedError(f"{type(self).__name__} keeps no per-image results")


class Evaluators(Evaluator):
    """Several evaluators fed the same (ground truth, prediction) pairs, like detectron2's
    ``DatasetEvaluators``: ``evaluate`` merges their metrics under each one's ``name``
    (e.g. ``Evaluators({"mask": segm, "box": bbox})``), ``plot`` writes each one's plots
    into its own sub-folder."""

    def __init__(self, evaluators: dict[str, Evaluator]):
        if not evaluators:
            raise ValueError("Evaluators needs at least one evaluator")
        self.evaluators = dict(evaluators)

    def reset(self) -> None:
        for ev in self.evaluators.values():
            ev.reset()

    def process(self, gt: ImageRecord, pred: Prediction) -> None:
        for ev in self.evaluators.values():
            ev.process(gt, pred)

    def evaluate(self) -> dict[str, Any]:
        return {name: ev.evaluate() for name, ev in self.evaluators.items()}

    def plot(self, out_dir: Path) -> list[Path]:
        return [p for name, ev in self.evaluators.items() for p in ev.plot(Path(out_dir) / name)]
