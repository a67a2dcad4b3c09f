"""``zoo check``: read a folder as `zoo run` would and report every problem, training nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def check(
    data: Path = typer.Argument(..., help="Annotation folder or file."),
    fmt: str = typer.Option("auto", "--from"),
    labels: Optional[Path] = typer.Option(None, "--labels"),
    task: Optional[str] = typer.Option(None, "--task", help="Also check the data can serve this task."),
) -> None:
    """Read an annotation folder and report its contents and problems."""
    from zoo.adapters.convert import check_folder

    check_folder(data, fmt=fmt, labels=labels, task=task)
