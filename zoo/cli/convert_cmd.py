"""``zoo convert``: any annotation folder the adapters read, into another format."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def convert(
    src: Path = typer.Argument(..., help="Annotation folder or file."),
    to: str = typer.Option(..., "--to", help="coco, yolo, masks, voc or labelme."),
    out: Path = typer.Option(..., "--out", help="Output folder (created; must not be inside SRC)."),
    fmt: str = typer.Option("auto", "--from", help="Input format; detected from the folder when 'auto'."),
    task: Optional[str] = typer.Option(None, "--task", help="Shapes the output (e.g. yolo segment vs detect)."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Class names, one per line (fixes their order)."),
) -> None:
    """Convert annotations between formats."""
    from zoo.adapters.convert import convert_folder

    convert_folder(src, to=to, out=out, fmt=fmt, task=task, labels=labels)
