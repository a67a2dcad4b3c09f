"""The paired verdict of ``zoo compare``: is the winner really better than each other backend?

Both backends were scored on the same images, so their scores are compared resample by
resample (a paired bootstrap), which cancels what the images themselves make easy or hard:

* the images scored in every fold are pooled and resampled with replacement
  (:func:`zoo.evaluation.bootstrap.image_weights`, the ``ci95`` bootstrap's resamples and
  seed); each resample re-weights every fold's images at once. Grouped images (patients:
  :attr:`zoo.dataset.ImageRecord.group`) are resampled as whole groups
  (:func:`zoo.evaluation.bootstrap.cluster_weights`), as ``ci95`` does;
* each run's main metric is re-aggregated for every resample from its evaluation's own
  per-image results (:meth:`zoo.evaluation.base.Evaluator.resampled`: COCO matching,
  confusion matrices, right/wrong), re-scored from the run folder's saved predictions;
* a backend's resampled score is the mean over its runs (folds × seeds), as its leaderboard
  score is the mean of its runs' scores; the difference is winner minus other, per resample.

Reported: the observed difference (the two leaderboard means), its 95% percentile interval,
and the probability that the winner is better (the share of resamples with a positive
difference, ties counted half). A backend whose interval reaches 0 is not distinguishable
from the winner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zoo.evaluation import bootstrap
from zoo.evaluation.coco import GroundTruth
from zoo.pipeline.runfolder import load_predictions
from zoo.predictions import score_predictions


@dataclass
class Verdict:
    backend: str
    #: winner minus this backend, main metric (the leaderboard means)
    difference: float
    ci95: list[float] | None
    #: the probability that the winner is better (share of resamples, ties half)
    p_better: float | None

    @property
    def distinguishable(self) -> bool:
        return self.ci95 is not None and self.ci95[0] > 0

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "difference": self.difference, "ci95": self.ci95,
                "p_winner_better": self.p_better, "distinguishable": self.distinguishable}


def method(main: str, groups: int | None = None) -> str:
    """The ``conventions`` line of the leaderboard (``groups``: resampled as groups, how many)."""
    unit = f"groups ({groups} patients / studies / volumes, each resampled whole)" if groups else "images"
    return (f"paired bootstrap over {unit}, pooled over folds: the scored images of every fold resampled together "
            f"({bootstrap.RESAMPLES} resamples, seed {bootstrap.SEED}), each run's {main} re-aggregated from its "
            "own per-image results, a backend's score the mean over its runs; the winner minus each backend, "
            "95% percentile interval, P(winner better) = share of resamples with a positive difference "
            "(ties half); ≈ marks a backend whose interval reaches 0 (not distinguishable from the winner)")


def run_samples(task, val, run_dir, main: str, weights, truth=None):
    """A run's ``main`` for each resample of ``weights`` over ``val``'s scored images,
    re-scored from the run folder's saved predictions by the shared evaluator (``truth``:
    ``val``'s :class:`~zoo.evaluation.coco.GroundTruth`, converted once for all runs)."""
    _, evaluator = score_predictions(task, val, load_predictions(run_dir, val), ci95=True, ground_truth=truth)
    return evaluator.resampled(weights)[main]


def fold_weights(task, folds: list) -> list:
    """One resampling of the pooled images of all folds, cut into each fold's columns; when
    the images are grouped (patients), of their pooled groups (the cluster bootstrap)."""
    import numpy as np

    scored = [[r for r in val.images if task.is_annotated(r)] for val in folds]
    sizes = [len(s) for s in scored]
    pooled = bootstrap.cluster_weights(bootstrap.group_keys([r for s in scored for r in s]))
    edges = np.cumsum([0, *sizes])
    return [pooled[:, a:b] for a, b in zip(edges[:-1], edges[1:])]


def backend_samples(task, runs: list[tuple[int, Any]], truths: list, weights: list, main: str):
    """A backend's resampled score: the mean over its runs ``(fold index, run_dir)``
    (``truths``: each fold's :class:`~zoo.evaluation.coco.GroundTruth`)."""
    import numpy as np

    return np.mean([run_samples(task, truths[f].dataset, run_dir, main, weights[f], truths[f]) for f, run_dir in runs],
                   axis=0)


def paired(winner, other, observed: float, backend: str) -> Verdict:
    """The verdict from the two backends' paired resampled scores."""
    import numpy as np

    diff = np.asarray(winner, np.float64) - np.asarray(other, np.float64)
    diff = diff[~np.isnan(diff)]
    if not diff.size:
        return Verdict(backend, observed, None, None)
    p = float((diff > 0).mean() + 0.5 * (diff == 0).mean())
    return Verdict(backend, observed, bootstrap.interval(diff), p)


def verdicts(task, folds: list, runs_by_backend: dict[str, list[tuple[int, Any]]], scores: dict[str, float],
             main: str, winner: str, truths: list | None = None) -> list[Verdict]:
    """The winner against each other backend (``runs_by_backend``: its runs as
    ``(fold index, run_dir)``; ``scores``: the leaderboard's main-metric means).

    ``truths``: each fold's :class:`~zoo.evaluation.coco.GroundTruth`, when the caller has
    them; else made here. Either way every run of a fold is scored against one conversion.
    """
    truths = truths if truths is not None else [GroundTruth(val) for val in folds]
    weights = fold_weights(task, folds)
    best = backend_samples(task, runs_by_backend[winner], truths, weights, main)
    return [paired(best, backend_samples(task, runs, truths, weights, main), scores[winner] - scores[b], b)
            for b, runs in runs_by_backend.items() if b != winner]
