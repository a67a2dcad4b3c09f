"""``zoo convert``: any annotation folder the adapters read, into another format."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def convert(
    src: Path = typer.Argument(..., help="Annotation folder or file (only read, never written)."),
    to: str = typer.Option(..., "--to", help="coco, yolo, masks, voc or labelme."),
    out: Path = typer.Option(..., "--out", help="Output folder (new or empty; not inside SRC)."),
    fmt: str = typer.Option("auto", "--from", help="Input format (labelme, voc, yolo, coco, folders); detected when 'auto'."),
    task: Optional[str] = typer.Option(
        None, "--task", help="Shapes the output: yolo detect / instance-seg (segment) / keypoint (pose) / classify."
    ),
    labels: Optional[Path] = typer.Option(
        None, "--labels", help="Class names, one per line, fixing their order (labelme labels.txt: __ignore__ and _background_ understood)."
    ),
    images: Optional[Path] = typer.Option(
        None, "--images", help="The folder holding the images, when the annotations live elsewhere (found by path, else by file name).",
    ),
    no_images: bool = typer.Option(False, "--no-images", help="coco / masks: write annotations only, do not copy images."),
    geometry: str = typer.Option(
        "exact", "--geometry",
        help="coco area/bbox: 'exact' (polygon extents, shoelace areas) or 'pixels' (painted pixels, as labelme's labelme2coco.py).",
    ),
) -> None:
    """Convert annotations between formats, with a summary of what was read."""
    from zoo.cli.views import print_summary
    from zoo.pipeline.convert import convert as run_convert
    from zoo.registry import get_registry

    done = run_convert(src, to=to, out=out, fmt=fmt, task=task, labels=labels, copy_images=not no_images,
                       geometry=geometry, images=images, registry=get_registry())
    print_summary(done.dataset, title=done.title, summary=done.summary)
