"""K-fold cross-validation and repeated seeds for ``zoo compare --folds K --seeds 0,1,2``.

* :func:`make_folds` deals the task's usable images into K folds, stratified by
  :meth:`zoo.tasks.Task.stratum` and seeded like :func:`zoo.data.split.make_split`: each stratum
  is shuffled with ``random.Random(f"{seed}:fold:{stratum}")`` and dealt round-robin, the
  dealing continuing from one stratum to the next, so every stratum is spread as evenly as
  it can be and fold sizes differ by at most one. With groups (:mod:`zoo.data.groups`:
  patients, volumes, duplicates) whole groups are dealt instead of images, largest first
  (stratified group K-fold): every group lies in one fold, and each stratum's groups per fold
  differ by at most one; fewer groups than folds is an error. Fold ``i`` scores on its own images and
  trains on the others; the model-selection split is then carved from that training part
  (:func:`zoo.data.split.carve_selection`). The folds depend only on the data, the task, K and
  the seed: the same for every backend and every training seed.
* :func:`aggregate` folds a backend's runs (one per fold and seed) into one leaderboard row:
  the mean of every score, with the standard deviation (``ddof=1``, over all of that
  backend's runs) under ``metrics["std"]``.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from zoo.data.groups import Grouping
from zoo.data.split import Split, by_stratum, data_hash, dealing_units, make_split, with_groups
from zoo.dataset import Dataset
from zoo.errors import ZooError
from zoo.tasks import Task


def make_folds(dataset: Dataset, task: Task, k: int, *, seed: int = 0, digest: str | None = None,
               grouping: Grouping | None = None, test: float = 0.0) -> list[Split]:
    """The K train/val splits of stratified (group) K-fold cross-validation (see module doc).

    ``test`` > 0: that share of the usable images is first held out as a test split, drawn as
    :func:`zoo.data.split.make_split` draws one (seeded, stratified, groups whole); the folds
    are dealt from the rest, and every fold's split carries the same test images (what the fold
    models and their ensemble are scored on once, after cross-validation)."""
    test_ids = (make_split(dataset, task, val=0.0, test=test, seed=seed, digest=digest, grouping=grouping).test
                if test else [])
    held = set(test_ids)
    usable = sorted((r for r in dataset.images if task.is_annotated(r) and r.id not in held), key=lambda r: r.id)
    if k < 2:
        raise ZooError(f"--folds {k}: cross-validation needs at least 2 folds")
    if k > len(usable):
        raise ZooError(f"--folds {k}: only {len(usable)} usable image(s), fewer than the folds")
    units = dealing_units(usable, task, grouping)
    if k > len(units):
        raise ZooError(f"--folds {k}: only {len(units)} group(s) ({grouping.rule}), fewer than the folds; "
                       "every group must be whole in one fold: lower --folds, or add patients (groups)")
    strata = by_stratum(units)
    folds: list[list[str]] = [[] for _ in range(k)]
    dealt = 0
    for s in sorted(strata):
        keys = list(strata[s])
        random.Random(f"{seed}:fold:{s}").shuffle(keys)
        keys.sort(key=lambda key: -len(units[key][1]))  # stable: large groups first, then as shuffled
        for key in keys:
            folds[dealt % k] += units[key][1]
            dealt += 1
    digest = digest or data_hash(dataset)
    excluded = sorted(r.id for r in dataset.images if not task.is_annotated(r))
    all_ids = {r.id for r in usable}
    base = Split(task=task.name, seed=seed, val_fraction=round(1 / k, 4), test_fraction=test, data_hash=digest,
                 excluded=excluded, stratified=len(strata) > 1, source=f"{k}-fold", test=sorted(test_ids))
    splits = [replace(base, val=sorted(f), train=sorted(all_ids - set(f)), source=f"fold {i} of {k}")
              for i, f in enumerate(folds)]
    return [with_groups(sp, grouping) for sp in splits]


def fold_split(dataset: Dataset, task: Task, fold: int, folds: int, *, seed: int, digest: str,
               grouping: Grouping | None = None, test: float = 0.0) -> Split:
    """``zoo run --fold i --folds K [--test F]``: the one cell of a compare's cross-validation."""
    if not 0 <= fold < folds:
        raise ZooError(f"--fold {fold}: expected 0 to {folds - 1} for --folds {folds}")
    return make_folds(dataset, task, folds, seed=seed, digest=digest, grouping=grouping, test=test)[fold]


def parse_seeds(text: str | None) -> list[int] | None:
    """``--seeds 0,1,2``: the training seeds, in order, without repeats."""
    if text is None or not str(text).strip():
        return None
    try:
        seeds = [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        raise ZooError(f"--seeds {text!r}: expected whole numbers separated by commas (0,1,2)") from None
    return list(dict.fromkeys(seeds))


def scores(metrics: dict[str, Any]) -> dict[str, float]:
    """The top-level scores of a metrics.json (the numbers a leaderboard shows)."""
    return {k: v for k, v in metrics.items() if isinstance(v, float)}


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value)."""
    import statistics

    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


def aggregate_metrics(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One metrics dict for several runs of a backend: every score the runs share as its mean,
    its standard deviation under ``std``; per-class scores as means; ``main`` and
    ``conventions`` from the first run; no ``ci95`` (the spread over runs replaces it)."""
    first = runs[0]
    out: dict[str, Any] = {k: v for k, v in first.items() if not isinstance(v, float)}
    out.pop("ci95", None)
    out.pop("test", None)
    std: dict[str, float | None] = {}
    for k in scores(first):
        vals = [m[k] for m in runs if isinstance(m.get(k), float)]
        if len(vals) == len(runs):
            out[k], std[k] = mean_std(vals)
    out["std"] = std
    out["runs"] = len(runs)
    per_class: dict[str, dict[str, Any]] = {}
    for cname, vals in (first.get("per_class") or {}).items():
        if not isinstance(vals, dict):
            continue
        per_class[cname] = {}
        for key, v in vals.items():
            got = [((m.get("per_class") or {}).get(cname) or {}).get(key) for m in runs]
            if all(isinstance(g, float) for g in got):
                per_class[cname][key] = mean_std(got)[0]
            elif not isinstance(v, float):
                per_class[cname][key] = v
    if per_class:
        out["per_class"] = per_class
    return out
