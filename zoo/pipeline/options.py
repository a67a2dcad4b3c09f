"""What ``zoo run`` takes, as a few value objects the CLI builds and the pipeline reads.

:class:`RunOptions` is a run's task and backend, and:

- :class:`Source`: what is read (``--data``, ``--from``, ``--labels``, ``--images``, ``--strict``);
- :class:`SplitPlan`: how it is split (``--val``, ``--test``, ``--split``, ``--fold``/``--folds``,
  ``--group``, ``--allow-leak``);
- :class:`zoo.selection.Protocol`: model selection (``--select``, ``--select-frac``, ``--patience``);
- :class:`Training`: how the backend is configured (``--config``, ``--set``, the dedicated
  flags, ``--trust-weights``);
- :class:`Output`: where the run goes and what else it does (``--out``, ``--name``,
  ``--resume``, ``--track``, ``--rank``, ``--top``).

``zoo compare`` (:class:`zoo.pipeline.compare.CompareOptions`) takes the same objects and
hands each of its runs a :class:`RunOptions` made of them. On its own module so that the
steps of a run (:mod:`zoo.pipeline.prepare`, :mod:`zoo.pipeline.run`) share it without
importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.dataset import Dataset
from zoo.progress import Reporter
from zoo.selection import Protocol


@dataclass(frozen=True)
class Source:
    """What is read: a folder (or file) in a format, or the demo data."""

    path: Path | None = None  # --data; None: the demo data (zoo.data.demo.ensure_demo)
    fmt: str = "auto"  # --from
    labels: Path | None = None  # --labels: class names, one per line
    #: ``--images DIR``: where the images are when the annotations live elsewhere (zoo.data.reading)
    images: Path | None = None
    #: ``--strict``: refuse data in which ``zoo check`` finds errors (zoo.data.lint).
    strict: bool = False
    #: An already-read dataset (zoo compare reads the folder once); ``path`` then only labels it.
    dataset: Dataset | None = None
    #: ``dataset`` is the demo data (the demo's preset applies, configs/demo.yaml).
    demo: bool = False

    @property
    def is_demo(self) -> bool:
        """The demo data: named so, or nothing given to read."""
        return self.demo or (self.path is None and self.dataset is None)


@dataclass(frozen=True)
class SplitPlan:
    """How the images are split into train / val / test (zoo.data.split, zoo.data.folds)."""

    val: float = 0.2
    test: float = 0.0
    #: ``--split``: "auto" (the data's own train/val split if it has one, else seeded),
    #: "random" (always seeded), or a split.json to reuse (checked against the data); None: auto.
    rule: Path | str | None = None
    #: ``--fold i --folds K``: score on fold i of stratified K-fold cross-validation
    #: (zoo compare: ``folds`` alone, every fold).
    fold: int | None = None
    folds: int | None = None
    #: ``--group REGEX``: the group (patient, study, ...) in each image path (zoo.data.groups);
    #: None: zoo.yaml's, else the reader's. ``grouping``: one already made (zoo compare groups once).
    group: str | None = None
    grouping: Any = None
    #: ``--allow-leak``: go on with a data-defined split that puts a group or a duplicate on two sides
    allow_leak: bool = False


@dataclass(frozen=True)
class Training:
    """How the backend is configured and started."""

    #: The dedicated flags (epochs, imgsz, budget, batch, device, seed, weights, pretrained);
    #: None = not given (the config's value stands).
    flags: dict[str, Any] = field(default_factory=dict)
    config_files: list[Path] = field(default_factory=list)  # --config, applied in order
    sets: list[str] = field(default_factory=list)  # --set key=value
    #: ``--trust-weights``: a starting-weights file that is a pickle may be unpickled.
    trust_weights: bool = False


@dataclass(frozen=True)
class Output:
    """Where the run goes, and what it does besides training and scoring."""

    out: Path = Path("runs")  # --out: the folder that holds run folders
    name: str | None = None  # --name; None: <backend>-<task>
    resume: bool = False  # --resume: continue the interrupted run of that name
    #: ``--track mlflow|tensorboard`` (zoo.pipeline.tracking); ``track_parent``: a compare's parent run id.
    track: str | None = None
    track_parent: str | None = None
    #: ``--rank``: end by ranking the folder's unlabelled images (zoo.pipeline.ranking); ``top`` pre-filled.
    rank: bool = False
    top: int = 10


@dataclass(frozen=True)
class RunOptions:
    """Everything ``zoo run`` takes; ``zoo compare`` builds these too."""

    task: str
    backend: str
    source: Source = field(default_factory=Source)
    split: SplitPlan = field(default_factory=SplitPlan)
    #: Model selection (zoo.selection); None = not given: the defaults for a new run
    #: (last, 0.1, no early stopping), the interrupted run's own protocol for ``--resume``.
    selection: Protocol | None = None
    training: Training = field(default_factory=Training)
    output: Output = field(default_factory=Output)
    #: The plugin registry (tests inject plugins here); None: the installed plugins.
    registry: Any = None
    #: Who hears of the progress; None: the ``zoo`` logger (zoo.progress.LogReporter).
    reporter: Reporter | None = None
    #: No progress messages (to the log instead); the reporter still draws progress bars.
    quiet: bool = False


def asked_selection(rule: str | None, fraction: float | None, patience: int | None) -> Protocol | None:
    """``--select``, ``--select-frac``, ``--patience`` as a protocol (what is not given, its
    default); None when none is given."""
    given = {k: v for k, v in (("rule", rule), ("fraction", fraction), ("patience", patience)) if v is not None}
    return Protocol(**given) if given else None
