"""``zoo eval``: score a predictions file against ground truth with the shared evaluator."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def evaluate(
    task: str = typer.Option(..., "--task", "-t"),
    gt: Path = typer.Option(..., "--gt", help="Ground truth: any folder or file the adapters read."),
    pred: Path = typer.Option(..., "--pred", help="COCO results JSON, mask PNG folder, or CSV image,label."),
    out: Path = typer.Option(Path("metrics.json"), "--out", help="Where to write metrics.json."),
    fmt: str = typer.Option("auto", "--from", help="Ground-truth format; detected when 'auto'."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Class names, one per line."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Folder for PR curves / confusion matrices."),
) -> None:
    """Score predictions against ground truth."""
    from zoo.evaluation.cli import evaluate_files

    evaluate_files(task=task, gt=gt, pred=pred, out=out, fmt=fmt, labels=labels, plots=plots)
