"""``zoo predict``: a finished run's model on new images, written as labelme JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def predict(
    run_dir: Path = typer.Option(..., "--run", help="A run folder made by `zoo run`, or a `zoo compare` folder (its "
                                 "leaderboard's winner predicts)."),
    images: list[Path] = typer.Argument(..., help="Image files, folders (searched recursively) or a quoted glob ('new/*.jpg'); never written to."),
    out: Path = typer.Option(..., "--out", help="Folder for the image copies and their labelme JSON."),
    conf: float = typer.Option(0.25, "--conf", help="Drop detections scoring below this."),
    device: str = typer.Option("auto", "--device", help="auto (the run's own setting), cpu, cuda or cuda:N."),
    rank: bool = typer.Option(False, "--rank", help="Rank the images no annotation file covers by the model's "
                              "uncertainty: ranking.csv, and labelme JSON for the --top N only."),
    top: int = typer.Option(10, "--top", help="With --rank: pre-fill labelme JSON for this many, most useful first."),
    engine: str = typer.Option("torch", "--engine", help="torch, or onnx: the run's `zoo export` run by onnxruntime."),
    onnx_dir: Optional[Path] = typer.Option(None, "--onnx", help="With --engine onnx: the export folder "
                                            "(default RUN/export/onnx)."),
) -> None:
    """Predict with a trained run; open the results in labelme to correct them."""
    from zoo.cli.render import ConsoleReporter, predicted_line, show_ranking, stderr_console

    if rank:
        from zoo.pipeline.ranking import rank_folder

        show_ranking(rank_folder(run_dir, images, out, top=top, conf=conf, device=device), out, top)
        return
    from zoo.pipeline.predict import predict_to_labelme

    result = predict_to_labelme(run_dir, images, out, conf=conf, device=device, reporter=ConsoleReporter(),
                                engine=engine, onnx_dir=onnx_dir)
    stderr_console().print(predicted_line(result), markup=False, highlight=True, soft_wrap=True)
