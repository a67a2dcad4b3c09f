"""``zoo compare``: several backends, one split, one evaluator, one leaderboard."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def compare(
    task: str = typer.Option(..., "--task", "-t", help="The task all backends are scored on."),
    backends: str = typer.Option(..., "--backends", help="Comma-separated backend names."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Annotation folder; the demo data when omitted."),
    fmt: str = typer.Option("auto", "--from", help="Input format; detected when 'auto'."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Class names, one per line."),
    images: Optional[Path] = typer.Option(None, "--images", help="The folder holding the images, when the annotations live elsewhere (found by path, else by file name)."),
    epochs: Optional[str] = typer.Option(None, "--epochs", help="Training epochs, every backend, or auto: enough optimiser steps for the number of training images (the default)."),
    imgsz: Optional[str] = typer.Option(None, "--imgsz", help="Training image size in pixels, every backend, or auto: from the images' median size, the device and the smallest objects (the default)."),
    budget: Optional[str] = typer.Option(None, "--budget", help="Train for this wall-clock time, the same for every backend (the fair comparison when their speeds differ) (15m, 1h30m, 90s): the epochs are set to what fits once the first is timed."),
    batch: Optional[int] = typer.Option(None, "--batch", help="Batch size, every backend."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N, or GPU numbers 0,1 (yolov8 trains on several itself; other backends: torchrun)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="One seed for the split and every backend (default 0)."),
    pretrained: bool = typer.Option(False, "--pretrained", help="Every backend starts from the framework's published pretrained weights, fetched once into its own cache (ZOO_WEIGHTS_MIRROR=URL: from a mirror; ZOO_OFFLINE=1: never fetch). Default: from scratch."),
    trust_weights: bool = typer.Option(False, "--trust-weights", help="Unpickle a weights / pretrained file that needs it (a pickle can run code: only files you trust)."),
    name: Optional[str] = typer.Option(None, "--name", help="Leaderboard name (default: the task)."),
    out: Path = typer.Option(Path("runs"), "--out", help="Runs go to OUT/<backend>-<task>[-N], the leaderboard to OUT/compare/<name>."),
    config: list[Path] = typer.Option([], "--config", help="YAML config file(s) for every backend, applied in order."),
    set_: list[str] = typer.Option([], "--set", help="key=value for every backend, or BACKEND.key=value for one (unknown keys fail)."),
    val: float = typer.Option(0.2, "--val", help="Fraction of images held out for evaluation."),
    split: str = typer.Option("auto", "--split", help="auto (the data's own train/val split if any, else seeded), random, or a split.json."),
    select: Optional[str] = typer.Option(None, "--select", help="Model selection, the same for every backend: last (final weights, the default) or best (best epoch on a selection split carved from train, never the scored split)."),
    select_frac: Optional[float] = typer.Option(None, "--select-frac", help="Share of the training images set aside as the selection split (default 0.1; only when something is scored during training)."),
    patience: Optional[int] = typer.Option(None, "--patience", help="Early stopping: stop after N epochs without improvement on the selection split."),
    rerun: bool = typer.Option(False, "--rerun", help="Train again even where a finished run with the same data, split, seed and config exists."),
    folds: Optional[int] = typer.Option(None, "--folds", help="K-fold cross-validation: K stratified, seeded folds, the same for every backend; the leaderboard shows mean ± std."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Repeat training with each of these seeds (0,1,2); the leaderboard shows mean ± std."),
    jobs: int = typer.Option(1, "--jobs", help="Runs at once on this machine (processes; one GPU each when there are GPUs, the CPU threads divided)."),
    executor: str = typer.Option("local", "--executor", help="local (this machine, the default) or ray (each run a task on an existing Ray cluster; pip install 'zoo[ray]')."),
    address: Optional[str] = typer.Option(None, "--address", help="With --executor ray: the cluster's address (default: RAY_ADDRESS, else auto)."),
    samples: int = typer.Option(3, "--samples", help="Validation images shown side by side in samples.png."),
    group: Optional[str] = typer.Option(None, "--group", help="Regex whose first capture group names each image's patient (study, volume, video, slide) in its path, e.g. '(P\\d+)_': splits, folds and intervals keep every group whole. Default: zoo.yaml group:/groups:, else the reader's (DICOM PatientID)."),
    allow_leak: bool = typer.Option(False, "--allow-leak", help="Go on when the data's own split puts one group or one duplicate image on both sides (an error otherwise); every output says so."),
    test: float = typer.Option(0.0, "--test", help="Fraction of images held out as a test split, scored once after "
                               "training (with --folds: held out before the folds are dealt)."),
    ensemble: bool = typer.Option(False, "--ensemble", help="With --folds K --test F: each backend's K fold models "
                                  "fused (mean of probabilities; weighted boxes fusion for instances) and scored on the test split beside "
                                  "its single folds."),
    track: Optional[str] = typer.Option(None, "--track", help="Log to an experiment tracker: mlflow (MLFLOW_TRACKING_URI, else OUT/mlruns; pip install 'zoo[mlflow]') or tensorboard (event files in the run folder; 'zoo[tensorboard]')."),
) -> None:
    """Run several backends on the same split and rank them."""
    from zoo.cli.render import ConsoleReporter
    from zoo.cli.views import print_leaderboard
    from zoo.data.folds import parse_seeds
    from zoo.pipeline.compare import CompareOptions, compare as run_compare
    from zoo.pipeline.options import Output, Source, SplitPlan, Training, asked_selection
    from zoo.registry import get_registry
    from zoo.selection import Protocol

    result = run_compare(
        CompareOptions(
            task=task, backends=[b.strip() for b in backends.split(",") if b.strip()],
            source=Source(path=data, fmt=fmt, labels=labels, images=images),
            split=SplitPlan(val=val, test=test, rule=split, folds=folds, group=group, allow_leak=allow_leak),
            selection=asked_selection(select, select_frac, patience) or Protocol(),
            training=Training(
                flags={"epochs": epochs, "imgsz": imgsz, "budget": budget, "batch": batch, "device": device,
                       "seed": seed, "pretrained": pretrained},
                config_files=list(config), sets=list(set_), trust_weights=trust_weights),
            output=Output(out=out, name=name, track=track),
            seeds=parse_seeds(seeds), rerun=rerun, samples=samples, jobs=jobs, executor=executor, address=address,
            ensemble=ensemble, registry=get_registry(),
        ),
        ConsoleReporter(),
    )
    print_leaderboard(result)
    if result.ensembles:
        from zoo.cli.predict_cmd import ensemble_line
        from zoo.cli.render import stdout_console

        for e in result.ensembles:
            stdout_console().print(ensemble_line(e), markup=False)
