"""What ``zoo run`` takes (``zoo compare`` builds these too): :class:`RunOptions`.

On its own so that the steps of a run (:mod:`zoo.pipeline.prepare`, :mod:`zoo.pipeline.run`)
share it without importing each other; ``zoo.pipeline.run.RunOptions`` is the same class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.dataset import Dataset
from zoo.progress import Reporter


@dataclass
class RunOptions:
    """Everything ``zoo run`` takes; ``zoo compare`` builds these too."""

    task: str
    backend: str
    data: Path | None = None  # None: the demo data (zoo.data.demo.ensure_demo)
    fmt: str = "auto"
    labels: Path | None = None
    #: ``--images DIR``: where the images are when the annotations live elsewhere (zoo.data.reading)
    images: Path | None = None
    seed: int | None = None  # None: the config's seed (default 0)
    name: str | None = None  # None: <backend>-<task>
    out: Path = Path("runs")
    config_files: list[Path] = field(default_factory=list)
    sets: list[str] = field(default_factory=list)
    val: float = 0.2
    test: float = 0.0
    resume: bool = False
    #: The dedicated flags (epochs, imgsz, batch, device, seed, weights, pretrained); None = not given.
    flags: dict[str, Any] = field(default_factory=dict)
    #: ``--split``: "auto" (the data's own train/val split if it has one, else seeded),
    #: "random" (always seeded), or a split.json to reuse (checked against the data).
    split_file: Path | str | None = None
    #: The plugin registry (tests inject plugins here); None: the installed plugins.
    registry: Any = None
    #: An already-read dataset (zoo compare reads the folder once); ``data`` then only labels it.
    dataset: Dataset | None = None
    #: ``dataset`` is the demo data (the demo's preset applies, configs/demo.yaml).
    demo: bool = False
    #: Who hears of the progress; None: the ``zoo`` logger (zoo.progress.LogReporter).
    reporter: Reporter | None = None
    #: No progress messages (to the log instead); the reporter still draws progress bars.
    quiet: bool = False
    #: ``--strict``: refuse data in which ``zoo check`` finds errors (zoo.data.lint).
    strict: bool = False
    #: ``--rank``: end by ranking the folder's unlabelled images (zoo.pipeline.ranking); ``top`` pre-filled.
    rank: bool = False
    top: int = 10
    #: ``--trust-weights``: a starting-weights file that is a pickle may be unpickled.
    trust_weights: bool = False
    #: Model selection (zoo.selection): ``--select last|best``, ``--select-frac``,
    #: ``--patience``. None = not given: the defaults for a new run (last, 0.1, no early
    #: stopping), the interrupted run's own protocol for ``--resume``.
    select: str | None = None
    select_frac: float | None = None
    patience: int | None = None
    #: ``--fold i --folds K``: score on fold i of stratified K-fold cross-validation (zoo.data.folds)
    fold: int | None = None
    folds: int | None = None
    #: ``--group REGEX``: the group (patient, study, ...) in each image path (zoo.data.groups);
    #: None: zoo.yaml's, else the reader's. ``grouping``: one already made (zoo compare groups once).
    group: str | None = None
    grouping: Any = None
    #: ``--allow-leak``: go on with a data-defined split that puts a group or a duplicate on two sides
    allow_leak: bool = False
    #: ``--track mlflow|tensorboard`` (zoo.pipeline.tracking); ``track_parent``: a compare's parent run id.
    track: str | None = None
    track_parent: str | None = None
