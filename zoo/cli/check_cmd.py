"""``zoo check``: read a folder as `zoo run` would and report every problem, training nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def check(
    data: Path = typer.Argument(..., help="Annotation folder or file (only read)."),
    fmt: str = typer.Option("auto", "--from", help="Input format (labelme, voc, yolo, coco, folders); detected when 'auto'."),
    labels: Optional[Path] = typer.Option(
        None, "--labels", help="Class names, one per line, fixing their order (labelme labels.txt convention)."
    ),
    task: Optional[str] = typer.Option(None, "--task", help="Also check the data can serve this task (error if not)."),
) -> None:
    """Read an annotation folder and report its contents and every problem found."""
    from zoo.adapters.convert import check_folder

    check_folder(data, fmt=fmt, labels=labels, task=task)
