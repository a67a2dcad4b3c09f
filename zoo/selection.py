"""Model selection: which weights a run keeps, decided by zoo, the same rule for every backend.

The protocol (``zoo run`` / ``zoo compare``: ``--select``, ``--select-frac``, ``--patience``):

* ``last`` (the default): the final weights; nothing is scored during training.
* ``best``: the epoch that scores best on the **selection split**, by zoo's evaluator (the
  task's main metric, the one the leaderboard ranks by).
* ``--patience N``: early stopping, on the same selection split, after N epochs without
  improvement (with ``last``, the weights where training stopped are kept).

The selection split is carved from the training images (:func:`zoo.data.split.carve_selection`,
seeded and stratified, ``--select-frac`` of them, recorded in ``split.json``) only when the
protocol scores something. It is never the validation or test split that gets reported: a
backend's ``fit(train, selection)`` receives a :class:`Selection`, never the scored split,
and :func:`zoo.testing.check_backend` fails a backend that reads the scored split's images
before prediction.

A backend on zoo's shared loop passes ``selection`` and ``selection.scorer(predict)`` to
:func:`zoo.training.fit`, which scores, keeps the best epoch and stops early as the
protocol says. A backend with its own loop hands ``selection.images`` to its framework as
validation data and reports each scored epoch with :meth:`Selection.record` and the weights
it kept with :meth:`Selection.choose`. Either way the run states the protocol in
``metrics.json`` conventions, ``manifest.json`` (``selection``) and ``report.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from zoo.dataset import Dataset, ImageRecord, strip_annotations
from zoo.errors import ZooError
from zoo.predictions import score_predictions
from zoo.tasks import Task

RULES = ("last", "best")
#: what a backend on zoo's shared loop scores with: zoo's evaluator, the task's main metric
ZOO_CRITERION = "zoo's evaluator, the task's main metric"


@dataclass(frozen=True)
class Protocol:
    """The rule every backend of a run (or a comparison) follows."""

    rule: str = "last"
    fraction: float = 0.1  # of the training images, set aside when the protocol scores
    patience: int | None = None  # epochs without improvement before stopping; None: never

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ZooError(f"--select {self.rule!r}: expected last or best")
        if not 0 < self.fraction < 1:
            raise ZooError(f"--select-frac {self.fraction:g}: expected a fraction between 0 and 1")
        if self.patience is not None and self.patience < 1:
            raise ZooError(f"--patience {self.patience}: expected at least 1 epoch")

    @property
    def scores(self) -> bool:
        """Whether anything is scored during training (and so a selection split is needed)."""
        return self.rule == "best" or self.patience is not None

    @property
    def split_fraction(self) -> float:
        """The share of training images the selection split takes (0 when nothing scores)."""
        return self.fraction if self.scores else 0.0

    def to_dict(self) -> dict[str, Any]:
        """What identifies the protocol: two runs with equal dicts played by the same rules."""
        return {"rule": self.rule, "selection_fraction": self.split_fraction, "patience": self.patience}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Protocol:
        frac = d.get("selection_fraction") or 0.1
        return cls(rule=d.get("rule", "last"), fraction=frac, patience=d.get("patience"))

    def describe(self) -> str:
        """One line for reports and leaderboard headers."""
        if self.rule == "best":
            text = (f"best epoch on a selection split ({self.fraction:.0%} of the training images), "
                    f"scored by {ZOO_CRITERION}")
        else:
            text = "last epoch (final weights)"
            if not self.scores:
                text += "; nothing scored during training"
        if self.patience is not None:
            text += f"; early stopping after {self.patience} epoch(s) without improvement on the selection split"
        return text


def describe(protocol: dict[str, Any] | None) -> str:
    """:meth:`Protocol.describe` of a recorded protocol (a manifest's), or 'unknown'."""
    return Protocol.from_dict(protocol).describe() if protocol else "unknown (a run made before zoo recorded it)"


@dataclass
class Selection:
    """What ``Backend.fit`` gets besides its training images: the protocol, the selection
    split (:attr:`data`, empty when nothing is scored) and zoo's scorer for it.

    It also records what happened, for the run's manifest: each scored epoch, the epoch
    whose weights were kept, and where training stopped early.
    """

    protocol: Protocol
    data: Dataset
    task: Task
    #: what ranks the epochs; a backend whose framework scores itself says so (yolov8)
    criterion: str = ZOO_CRITERION
    scored: list[dict[str, float]] = field(default_factory=list)
    chosen_epoch: int | None = None
    stopped_after: int | None = None  # the epoch (0-based) early stopping ended training after
    every: int = 1  # the backend's scoring interval, in epochs
    #: the selection images' ground truth as the evaluator converted it for the first scored
    #: epoch (zoo.evaluation.coco.GroundTruth), handed back to it for every later one
    ground_truth: Any = field(default=None, repr=False)

    @classmethod
    def of(cls, task: Task, data: Dataset | None = None, *, rule: str | None = None,
           patience: int | None = None) -> Selection:
        """A selection for calling a backend directly (tests, benchmarks): ``best`` on
        ``data`` when it has images, else ``last`` with nothing to score."""
        data = data if data is not None else Dataset()
        rule = rule or ("best" if len(data.images) else "last")
        return cls(Protocol(rule=rule, patience=patience), data, task)

    @property
    def images(self) -> list[ImageRecord]:
        return self.data.images

    def __len__(self) -> int:
        return len(self.data.images)

    @property
    def active(self) -> bool:
        """Whether this run scores during training (the protocol asks, and there are images)."""
        return self.protocol.scores and len(self) > 0

    @property
    def keeps_best(self) -> bool:
        return self.protocol.rule == "best" and self.active

    # scoring ---------------------------------------------------------------------------------

    def score(self, predictions: Iterable[Any]) -> float:
        """The main metric of zoo's evaluator for predictions on :attr:`images` (one per image;
        fed by :func:`zoo.predictions.score_predictions`)."""
        metrics, evaluator = score_predictions(self.task, self.data, predictions, ground_truth=self.ground_truth)
        self.ground_truth = getattr(evaluator, "ground_truth", None)
        value = metrics.get(metrics.get("main", ""))
        return float(value) if value is not None and not math.isnan(value) else 0.0

    def scorer(self, predict: Callable[[Sequence[ImageRecord]], Iterable[Any]]) -> Callable[[Any], float]:
        """A ``val_fn`` for :func:`zoo.training.fit`: the backend's ``predict`` (on the model
        being trained) on the selection images without their annotations, scored by zoo."""

        def val_fn(model: Any = None) -> float:
            return self.score(list(predict(strip_annotations(self.data))))

        return val_fn

    # what happened -----------------------------------------------------------------------------

    def record(self, epoch: int, score: float) -> None:
        """One scored epoch (0-based); a resumed training records its earlier ones again."""
        self.scored = [s for s in self.scored if s["epoch"] != epoch] + [{"epoch": epoch, "score": float(score)}]

    def best_epoch(self) -> int | None:
        """The best-scoring epoch so far; ties go to the later one (a from-scratch model may
        score 0 for many epochs, and the untrained first must not win that tie)."""
        if not self.scored:
            return None
        return max(self.scored, key=lambda s: (s["score"], s["epoch"]))["epoch"]

    def should_stop(self, epoch: int) -> bool:
        """Whether early stopping ends training after ``epoch``: ``patience`` epochs have
        passed since the best score."""
        best = self.best_epoch()
        patience = self.protocol.patience
        return self.active and patience is not None and best is not None and epoch - best >= patience

    def choose(self, epoch: int, stopped_after: int | None = None) -> None:
        """The epoch (0-based) whose weights the backend kept, and the one early stopping
        ended training after (None: it ran every epoch)."""
        self.chosen_epoch = epoch
        self.stopped_after = stopped_after

    def summary(self) -> dict[str, Any]:
        """The run's record of the protocol (``manifest.json`` ``selection``)."""
        return {
            "protocol": self.protocol.to_dict(),
            "description": self.protocol.describe(),
            "criterion": self.criterion if self.active else None,
            "selection_images": len(self),
            "chosen_epoch": None if self.chosen_epoch is None else self.chosen_epoch + 1,  # 1-based, as logged
            "times_scored": len(self.scored),
            "every_epochs": self.every if self.active else None,
            "stopped_early_after_epoch": None if self.stopped_after is None else self.stopped_after + 1,
            "scores": [{"epoch": s["epoch"] + 1, "score": round(s["score"], 6)} for s in sorted(
                self.scored, key=lambda s: s["epoch"])],
        }


def statement(summary: dict[str, Any] | None) -> str:
    """One sentence for metrics.json conventions and report.md: the rule, the selection
    split's size, the chosen epoch and how often selection scored."""
    if not summary:
        return describe(None)
    text = summary.get("description") or describe(summary.get("protocol"))
    parts = []
    if summary.get("selection_images"):
        parts.append(f"selection split {summary['selection_images']} image(s)")
    if summary.get("chosen_epoch") is not None:
        parts.append(f"kept epoch {summary['chosen_epoch']}")
    n = summary.get("times_scored") or 0
    every = summary.get("every_epochs")
    parts.append(f"scored {n} time(s)" + (f", every {every} epoch(s)" if n and every else "") + " during training")
    if summary.get("criterion") and summary.get("criterion") != ZOO_CRITERION:
        parts.append(f"by {summary['criterion']}")
    if summary.get("stopped_early_after_epoch"):
        parts.append(f"stopped early after epoch {summary['stopped_early_after_epoch']}")
    return f"{text} ({'; '.join(parts)})"
