"""``zoo run``: annotation folder (or the demo data) -> trained model -> shared scores."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def run(
    task: str = typer.Option(..., "--task", "-t", help="classify, detect, semantic-seg, instance-seg or keypoint."),
    backend: str = typer.Option(..., "--backend", "-b", help="A backend from `zoo list`."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Annotation folder or file; the demo data when omitted."),
    fmt: str = typer.Option("auto", "--from", help="Input format; detected from the folder when 'auto'."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Class names, one per line (fixes their order)."),
    images: Optional[Path] = typer.Option(None, "--images", help="The folder holding the images, when the annotations live elsewhere (found by path, else by file name)."),
    epochs: Optional[str] = typer.Option(None, "--epochs", help="Training epochs, or auto: enough optimiser steps for the number of training images (the default)."),
    imgsz: Optional[str] = typer.Option(None, "--imgsz", help="Training image size in pixels, or auto: from the images' median size, the device and the smallest objects (the default)."),
    budget: Optional[str] = typer.Option(None, "--budget", help="Train for this wall-clock time (15m, 1h30m, 90s): the epochs are set to what fits once the first is timed."),
    batch: Optional[int] = typer.Option(None, "--batch", help="Batch size."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N, or GPU numbers 0,1 (yolov8 trains on several itself; other backends: torchrun)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for the split and training (default 0)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Start from this local weights file."),
    pretrained: bool = typer.Option(False, "--pretrained", help="Start from the framework's published pretrained weights, fetched once into its own cache (ZOO_WEIGHTS_MIRROR=URL: from a mirror; ZOO_OFFLINE=1: never fetch). Default: from scratch."),
    trust_weights: bool = typer.Option(False, "--trust-weights", help="Unpickle a --weights / pretrained file that needs it (a pickle can run code: only files you trust)."),
    name: Optional[str] = typer.Option(None, "--name", help="Run folder name (default: <backend>-<task>; an existing folder gets -2, -3, ...)."),
    out: Path = typer.Option(Path("runs"), "--out", help="Folder that holds run folders."),
    config: list[Path] = typer.Option([], "--config", help="YAML config file(s), applied in order."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: key=value (repeatable)."),
    val: float = typer.Option(0.2, "--val", help="Fraction of images held out for evaluation."),
    test: float = typer.Option(0.0, "--test", help="Fraction held out as a test split: never seen by training, the chosen model is scored on it once."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run of the same name."),
    split: str = typer.Option("auto", "--split", help="auto (the data's own train/val split if any, else seeded), random, or a split.json to reuse."),
    fold: Optional[int] = typer.Option(None, "--fold", help="With --folds K: train on the other folds and score on fold i (0..K-1), as `zoo compare --folds K` does."),
    folds: Optional[int] = typer.Option(None, "--folds", help="K-fold cross-validation folds (stratified, seeded by --seed); used with --fold."),
    strict: bool = typer.Option(False, "--strict", help="Refuse data in which `zoo check` finds errors."),
    rank: bool = typer.Option(False, "--rank", help="End by ranking the folder's unlabelled images: what to annotate next."),
    top: int = typer.Option(10, "--top", help="With --rank: pre-fill labelme JSON for this many."),
    select: Optional[str] = typer.Option(None, "--select", help="Model selection, the same for every backend: last (final weights, the default) or best (best epoch on a selection split carved from train, never the scored split)."),
    select_frac: Optional[float] = typer.Option(None, "--select-frac", help="Share of the training images set aside as the selection split (default 0.1; only when something is scored during training)."),
    patience: Optional[int] = typer.Option(None, "--patience", help="Early stopping: stop after N epochs without improvement on the selection split."),
    group: Optional[str] = typer.Option(None, "--group", help="Regex whose first capture group names each image's patient (study, volume, video, slide) in its path, e.g. '(P\\d+)_': splits, folds and intervals keep every group whole. Default: zoo.yaml group:/groups:, else the reader's (DICOM PatientID)."),
    allow_leak: bool = typer.Option(False, "--allow-leak", help="Go on when the data's own split puts one group or one duplicate image on both sides (an error otherwise); every output says so."),
    track: Optional[str] = typer.Option(None, "--track", help="Log to an experiment tracker: mlflow (MLFLOW_TRACKING_URI, else OUT/mlruns; pip install 'zoo[mlflow]') or tensorboard (event files in the run folder; 'zoo[tensorboard]')."),
) -> None:
    """Train a backend on a folder and score it with the shared evaluator."""
    from zoo.cli.render import ConsoleReporter, show_run
    from zoo.pipeline.options import Output, RunOptions, Source, SplitPlan, Training, asked_selection
    from zoo.pipeline.run import execute
    from zoo.registry import get_registry
    from zoo.training.distributed import world

    result = execute(
        RunOptions(
            task=task, backend=backend,
            source=Source(path=data, fmt=fmt, labels=labels, images=images, strict=strict),
            split=SplitPlan(val=val, test=test, rule=split, fold=fold, folds=folds, group=group, allow_leak=allow_leak),
            selection=asked_selection(select, select_frac, patience),
            training=Training(
                flags={"epochs": epochs, "imgsz": imgsz, "budget": budget, "batch": batch, "device": device,
                       "seed": seed, "weights": weights, "pretrained": True if pretrained else None},
                config_files=list(config), sets=list(set_), trust_weights=trust_weights),
            output=Output(out=out, name=name, resume=resume, track=track, rank=rank, top=top),
            registry=get_registry(), reporter=ConsoleReporter(),
        )
    )
    if world().main:  # under a launcher, one summary: rank 0's
        show_run(result, top)
