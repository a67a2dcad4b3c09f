"""Training images without any annotation, thinned (``--set empty_slices=0.1``).

A volume cut into slices is mostly slices without foreground: all of them are kept by
default (they teach the model what background looks like); ``empty_slices`` keeps that
fraction of them for training, drawn with the run's seed. Only the training part changes:
val, test and the selection split are scored on every image they hold.
"""

from __future__ import annotations

from dataclasses import replace

from zoo.data.split import Split
from zoo.dataset import Dataset


def thin_empty_images(split: Split, dataset: Dataset, keep: float, seed: int) -> tuple[Split, int]:
    """``split`` with only ``keep`` of its unannotated training images (at least one when
    any), and how many were left out."""
    import numpy as np

    if keep >= 1.0:
        return split, 0
    by_id = {r.id: r for r in dataset.images}
    empty = [i for i in split.train if not by_id[i].instances and not by_id[i].labels]
    if not empty:
        return split, 0
    n_keep = max(1, round(keep * len(empty)))
    kept = set(np.random.default_rng([seed, 25]).choice(len(empty), n_keep, replace=False).tolist())
    dropped = {e for k, e in enumerate(empty) if k not in kept}
    return replace(split, train=[i for i in split.train if i not in dropped]), len(dropped)
