"""``zoo eval``: score a predictions file against ground truth with the shared evaluator."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def evaluate(
    task: str = typer.Option(..., "--task", "-t", help="classify, detect, semantic-seg, instance-seg or keypoint."),
    gt: Path = typer.Option(..., "--gt", help="Ground truth: any folder or file the adapters read."),
    pred: Path = typer.Option(..., "--pred", help="COCO results JSON, mask PNG folder, or CSV image,label."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write the metrics (default ./metrics.json, never replaced unless named here)."),
    fmt: str = typer.Option("auto", "--from", help="Ground-truth format; detected when 'auto'."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Class names, one per line."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Folder for PR curves / confusion matrices."),
) -> None:
    """Score predictions against ground truth with zoo's shared evaluator.

    detect / instance-seg / keypoint: PRED is a COCO results JSON (category_id = class index + 1).

    semantic-seg: PRED is a folder of single-channel PNGs named like the images.

    classify: PRED is a CSV 'image,label' (label = class name or index).

    Writes metrics.json with a 'conventions' block and prints a table.
    """
    from zoo.cli.views import print_metrics
    from zoo.pipeline.evaluate import evaluate_files, metrics_file
    from zoo.registry import get_registry

    out = metrics_file(out)
    metrics = evaluate_files(task=task, gt=gt, pred=pred, out=out, fmt=fmt, labels=labels, plots=plots,
                             registry=get_registry())
    print_metrics(metrics, out)
