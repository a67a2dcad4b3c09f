"""``zoo export``: a trained run's network as ONNX, with parity checked on the run's val split."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def export(
    run_dir: Path = typer.Option(..., "--run", help="A run folder made by `zoo run`, or a `zoo compare` folder "
                                 "(its leaderboard's winner is exported)."),
    fmt: str = typer.Option("onnx", "--format", help="onnx (the only format so far)."),
    opset: Optional[int] = typer.Option(None, "--opset", help="ONNX opset (default: the backend's; 17 for torch's "
                                        "exporter)."),
    dynamic: bool = typer.Option(False, "--dynamic", help="Free height and width in the graph (the batch is always "
                                 "free)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for model.onnx and model.json "
                                       "(default RUN/export/onnx)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Where the run's data is now, if it moved (parity "
                                        "predicts its val images)."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="The --labels file the run was given, if any."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N: where both engines are timed."),
) -> None:
    """Export a trained run to ONNX; its val predictions through onnxruntime are scored
    against torch's (parity within 1e-3 on the main metric)."""
    from zoo.cli.render import ConsoleReporter
    from zoo.pipeline.export import export_run

    result = export_run(run_dir, fmt=fmt, opset=opset, dynamic=dynamic, out=out, device=device, data=data,
                        labels=labels, reporter=ConsoleReporter())
    show_export(result)
    if not result.parity.ok:
        raise typer.Exit(1)


def show_export(result) -> None:
    """What was written, and the parity, one line each."""
    from zoo.cli.render import stdout_console

    p, raw = result.parity, result.raw_parity
    console = stdout_console()
    ensemble = result.card.get("ensemble")
    written = (f"the ensemble of {ensemble['k']}: {result.out}/member-0 .. member-{ensemble['k'] - 1} (one "
               "model.onnx each) and model.json (the fusion rule)" if ensemble else
               f"{result.out / 'model.onnx'} and model.json")
    console.print(f"{result.backend} ({result.task}) -> {written}", markup=False)
    verdict = "parity ok" if p.ok else f"PARITY FAILED (more than {p.to_dict()['tolerance']:g} apart)"
    console.print(f"{p.split}, {p.images} images: {p.metric} torch {p.torch:.4f}, onnxruntime {p.onnx:.4f} "
                  f"(difference {p.difference:.2g}): {verdict}", markup=False)
    if raw:
        console.print(f"raw outputs: max |onnx - torch| {raw['max_abs_diff']:.2g} "
                      f"(tolerance {raw['tolerance']:.2g}{'' if raw['ok'] else ', EXCEEDED'})", markup=False)
    console.print(f"ms / image: torch {p.torch_ms:.1f}, onnxruntime {p.onnx_ms:.1f}", markup=False)
