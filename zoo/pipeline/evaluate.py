"""``zoo eval``: score a predictions file against ground truth with the shared evaluator.

The ground truth is any folder or file the readers know; the predictions are read by
:func:`zoo.evaluation.results.read_predictions` (a COCO results JSON, a folder of PNG label
maps or a CSV of labels, by task). The metrics are written to ``metrics.json`` and returned;
the CLI draws them (:mod:`zoo.cli.views`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoo.atomic import write_json
from zoo.data.reading import read_dataset
from zoo.errors import ZooError
from zoo.evaluation import evaluate
from zoo.evaluation.results import coco_image_ids, in_coco_id_order, read_predictions
from zoo.tasks import get_task


def evaluate_files(task: str, gt: Path, pred: Path, out: Path, fmt: str = "auto",
                   labels: Path | None = None, plots: Path | None = None, registry=None) -> dict[str, Any]:
    """Read GT (by ``registry``'s readers) and PRED, score them, write ``out`` (metrics.json);
    the metrics."""
    t = get_task(task)
    gt, pred = Path(gt), Path(pred)
    if not pred.exists():
        raise ZooError(f"{pred}: no such file or folder")
    dataset = read_dataset(gt, fmt, labels, registry=registry)
    t.check(dataset)
    coco_ids = coco_image_ids(gt, dataset) if t.answer_kind == "instances" else None
    preds = read_predictions(t, pred, dataset, gt, coco_ids=coco_ids)
    # scored in the ground-truth file's image-id order: pycocotools ranks equal scores by it
    metrics = evaluate(t, in_coco_id_order(dataset, coco_ids), preds, plots_dir=plots)
    metrics = {**metrics, "ground_truth": str(gt), "predictions": str(pred)}
    write_json(out, metrics)
    return metrics


#: Where ``zoo eval`` writes without ``--out`` (in the current folder).
DEFAULT_OUT = Path("metrics.json")


def metrics_file(out: Path | None) -> Path:
    """Where ``zoo eval`` writes: ``--out`` as named (replaced if it exists: the user named
    it), else ./metrics.json, refused when one is there (an earlier evaluation is never
    replaced silently)."""
    if out is not None:
        return Path(out)
    if DEFAULT_OUT.exists():
        raise ZooError(f"{DEFAULT_OUT.resolve()} exists (an earlier zoo eval?); name the file to write with "
                       f"--out (--out {DEFAULT_OUT} replaces it)")
    return DEFAULT_OUT
