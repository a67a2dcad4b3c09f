"""``zoo predict``: a finished run's model on new images, written as labelme JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def predict(
    run_dir: Path = typer.Option(..., "--run", help="A run folder made by `zoo run`, or a `zoo compare` folder (its "
                                 "leaderboard's winner predicts)."),
    images: Optional[list[Path]] = typer.Argument(None, help="Image files, folders (searched recursively) or a quoted glob ('new/*.jpg'); never written to."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the image copies and their labelme JSON."),
    conf: float = typer.Option(0.25, "--conf", help="Drop detections scoring below this."),
    device: str = typer.Option("auto", "--device", help="auto (the run's own setting), cpu, cuda or cuda:N."),
    rank: bool = typer.Option(False, "--rank", help="Rank the images no annotation file covers by the model's "
                              "uncertainty: ranking.csv, and labelme JSON for the --top N only."),
    top: int = typer.Option(10, "--top", help="With --rank: pre-fill labelme JSON for this many, most useful first."),
    engine: str = typer.Option("torch", "--engine", help="torch, or onnx: the run's `zoo export` run by onnxruntime."),
    onnx_dir: Optional[Path] = typer.Option(None, "--onnx", help="With --engine onnx: the export folder "
                                            "(default RUN/export/onnx)."),
    ensemble: bool = typer.Option(False, "--ensemble", help="With --run COMPARE_DIR --backend B: the ensemble of B's "
                                  "fold models; scored on the compare's test split, and predicting IMAGES if given."),
    backend: Optional[str] = typer.Option(None, "--backend", help="With --ensemble: whose fold models."),
    to: Optional[str] = typer.Option(None, "--to", help="The format of the files to correct: one that writes "
                                     "predictions (default: the one installed, labelme)."),
) -> None:
    """Predict with a trained run; open the results in labelme to correct them."""
    from zoo.cli.render import ConsoleReporter, predicted_line, show_ranking, stderr_console

    if ensemble:
        _ensemble(run_dir, backend, images, out, conf=conf, device=device, engine=engine, onnx_dir=onnx_dir)
        return
    if not images or out is None:
        raise typer.BadParameter("give the IMAGES to predict and --out", param_hint="IMAGES / --out")

    if rank:
        from zoo.pipeline.ranking import rank_folder
        from zoo.registry import get_registry

        show_ranking(rank_folder(run_dir, images, out, top=top, conf=conf, device=device, to=to,
                                 registry=get_registry()), out, top)
        return
    from zoo.pipeline.predict import predict_to_labelme
    from zoo.registry import get_registry

    result = predict_to_labelme(run_dir, images, out, conf=conf, device=device, reporter=ConsoleReporter(),
                                engine=engine, onnx_dir=onnx_dir, to=to, registry=get_registry())
    stderr_console().print(predicted_line(result), markup=False, highlight=True, soft_wrap=True)


def _ensemble(compare_dir: Path, backend: Optional[str], images, out, *, conf: float, device: str, engine: str,
              onnx_dir: Optional[Path]) -> None:
    """``--ensemble``: score the fold ensemble on the test split; predict IMAGES with it if given
    (``--engine onnx``: with the members exported by ``zoo export --run COMPARE_DIR``)."""
    from zoo.cli.render import ConsoleReporter, predicted_line, stderr_console, stdout_console
    from zoo.errors import ZooError
    from zoo.pipeline.ensemble import load_ensemble, score_ensemble
    from zoo.pipeline.predict import predict_to_labelme

    if not backend:
        raise ZooError("--ensemble: name the backend whose fold models to fuse (--backend B)")
    if engine not in ("torch", "onnx"):
        raise ZooError(f"--engine {engine}: expected torch or onnx")
    if engine == "onnx" and not images:
        raise ZooError("--ensemble --engine onnx: give IMAGES and --out (zoo export already scored the ONNX "
                       "ensemble on the test split: its model.json 'parity')")
    if images and out is None:
        raise ZooError("--ensemble with IMAGES: say where to write them (--out)")
    dev = "cpu" if device == "auto" else device
    graphs = None if engine == "torch" else (onnx_dir if onnx_dir is not None else compare_dir / "export" / "onnx")
    model = load_ensemble(compare_dir, backend, dev, onnx_dir=graphs) if images else None  # a missing export fails first
    result = score_ensemble(compare_dir, backend, device=dev, reporter=ConsoleReporter())
    stdout_console().print(ensemble_line(result), markup=False)
    if images:
        written = predict_to_labelme(compare_dir, images, out, conf=conf, device=dev, reporter=ConsoleReporter(),
                                     model=model)
        stderr_console().print(predicted_line(written), markup=False, highlight=True, soft_wrap=True)


def ensemble_line(result) -> str:
    """``unet: ensemble of 5 mIoU 0.712 on test; single folds 0.690 ± 0.010, best 0.701; ensemble − best
    +0.011 (+0.002–+0.020), P 0.99``."""
    from zoo.pipeline.ensemble import fmt_verdict

    s = result.summary()
    std = f" ± {s['singles_std']:.3f}" if s["singles_std"] is not None else ""
    verdict = f"; ensemble − best {fmt_verdict(s['verdict'])}" if s["verdict"] else ""
    return (f"{s['backend']}: ensemble of {s['k']} {s['main']} {s['ensemble']:.3f} on test; single folds "
            f"{s['singles_mean']:.3f}{std}, best {s['best_single']:.3f}{verdict} ({result.out})")
