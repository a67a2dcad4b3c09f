"""``zoo predict``: a finished run's model on new images, written as labelme JSON."""

from __future__ import annotations

from pathlib import Path

import typer


def predict(
    run_dir: Path = typer.Option(..., "--run", help="A run folder made by `zoo run`."),
    images: list[Path] = typer.Argument(..., help="Image files or folders (searched recursively); never written to."),
    out: Path = typer.Option(..., "--out", help="Folder for the image copies and their labelme JSON."),
    conf: float = typer.Option(0.25, "--conf", help="Drop detections scoring below this."),
    device: str = typer.Option("auto", "--device", help="auto (the run's own setting), cpu, cuda or cuda:N."),
) -> None:
    """Predict with a trained run; open the results in labelme to correct them."""
    from zoo.predict import predict_to_labelme

    predict_to_labelme(run_dir, images, out, conf=conf, device=device)
