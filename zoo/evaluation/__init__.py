"""The shared evaluator: every backend is scored by this code, and only this code.

``evaluate(task, dataset, predictions)`` is what the run pipeline and ``zoo eval`` call; the
evaluators themselves (:mod:`.coco`, :mod:`.semantic`, :mod:`.classify`) follow the
reset / process / evaluate interface of :mod:`.base`, and are fed in one place only,
:func:`zoo.predictions.score_predictions` (re-exported here). Nothing heavy is imported here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from zoo.predictions import score_predictions


def evaluate(task, dataset, predictions: Iterable, plots_dir: str | Path | None = None,
             ci95: bool = True, ground_truth=None) -> dict[str, Any]:
    """Score ``predictions`` (canonical, one per image) against ``dataset`` for ``task``.

    ``task`` is a :class:`zoo.tasks.Task` (or its name). The evaluator is fed by
    :func:`zoo.predictions.score_predictions` (which images count, missing and stray
    predictions). With ``plots_dir`` the PR curves or confusion matrix are written there and
    listed under ``"plots"``. ``ci95``: a bootstrap interval over images of the headline
    numbers under ``"ci95"`` (:mod:`zoo.evaluation.bootstrap`). ``ground_truth``: ``dataset``'s
    :class:`~zoo.evaluation.coco.GroundTruth`, when the caller converted it once already.
    """
    from zoo.tasks import get_task

    if isinstance(task, str):
        task = get_task(task)
    metrics, evaluator = score_predictions(task, dataset, predictions, ci95=ci95, ground_truth=ground_truth)
    metrics = {"task": task.name, **metrics}
    if plots_dir is not None:
        metrics["plots"] = [str(p) for p in evaluator.plot(Path(plots_dir))]
    return metrics


__all__ = ["evaluate", "score_predictions"]
