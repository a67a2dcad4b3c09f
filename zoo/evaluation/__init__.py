"""The shared evaluator: every backend is scored by this code, and only this code.

``evaluate(task, dataset, predictions)`` is what the run pipeline and ``zoo eval`` call; the
evaluators themselves (:mod:`.coco`, :mod:`.semantic`, :mod:`.classify`) follow the
reset / process / evaluate interface of :mod:`.base`. Nothing heavy is imported here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from zoo.errors import ZooError


def evaluate(task, dataset, predictions: Iterable, plots_dir: str | Path | None = None,
             ci95: bool = True) -> dict[str, Any]:
    """Score ``predictions`` (canonical, one per image) against ``dataset`` for ``task``.

    ``task`` is a :class:`zoo.tasks.Task` (or its name). Every image of ``dataset`` that the
    task can score is processed; an instance task's image without a prediction counts as
    "nothing detected", a semantic-seg or classify image without one is an error, and a
    prediction for an image not in ``dataset`` is an error. With ``plots_dir`` the PR curves
    or confusion matrix are written there and listed under ``"plots"``. ``ci95``: a bootstrap
    interval over images of the headline numbers under ``"ci95"``
    (:mod:`zoo.evaluation.bootstrap`).
    """
    from zoo.tasks import get_task

    if isinstance(task, str):
        task = get_task(task)
    by_id: dict[str, Any] = {}
    for p in predictions:
        if p.image_id in by_id:
            raise ZooError(f"two predictions for image '{p.image_id}'")
        by_id[p.image_id] = p
    known = {r.id for r in dataset.images}
    stray = [i for i in by_id if i not in known]
    if stray:
        raise ZooError(
            f"{len(stray)} prediction(s) for images not in the ground truth, e.g. {', '.join(map(repr, stray[:3]))}"
        )
    evaluator = task.evaluator(dataset, ci95=ci95)
    for record in dataset.images:
        if task.is_annotated(record):
            evaluator.process(record, by_id.get(record.id))
    metrics = evaluator.evaluate()
    metrics = {"task": task.name, **metrics}
    if plots_dir is not None:
        metrics["plots"] = [str(p) for p in evaluator.plot(Path(plots_dir))]
    return metrics


__all__ = ["evaluate"]
