"""The per-class rates of a confusion matrix (IoU, Dice, sensitivity, specificity) and their
mean over classes: each statistic computed by one function, for the point estimate (one
matrix, :mod:`.semantic`) and the bootstrap (a stack of resampled matrices, :mod:`.bootstrap`)
alike, so the two can never disagree on a rule.

Matrices are rows truth, columns prediction; a stack is ``(..., n, n)``. Counts are whole
numbers in float64 (exact), so every rate is the same to the last bit however it is stacked.
0/0 is NaN: a class absent from both truth and prediction has no rate and is left out of
:func:`class_mean` (not counted as 1, nor as 0).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any


@dataclass
class ClassCounts:
    """True / false positives and negatives of every class, one against the rest."""

    tp: Any
    fp: Any
    fn: Any
    tn: Any

    def iou(self):
        """TP / (TP + FP + FN)."""
        return _ratio(self.tp, self.tp + self.fp + self.fn)

    def dice(self):
        """2TP / (2TP + FP + FN)."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    def sensitivity(self):
        """TP / (TP + FN)."""
        return _ratio(self.tp, self.tp + self.fn)

    def specificity(self):
        """TN / (TN + FP)."""
        return _ratio(self.tn, self.tn + self.fp)


def class_counts(conf) -> ClassCounts:
    """The :class:`ClassCounts` of a confusion matrix, or of each matrix of a stack."""
    import numpy as np

    conf = np.asarray(conf, dtype=np.float64)
    tp = np.diagonal(conf, axis1=-2, axis2=-1)
    fp = conf.sum(-2) - tp
    fn = conf.sum(-1) - tp
    tn = conf.sum((-2, -1))[..., None] - tp - fp - fn
    return ClassCounts(tp, fp, fn, tn)


def foreground(n: int, background: int | None):
    """The classes other than ``background`` (all of them when it is None), as a mask."""
    import numpy as np

    fg = np.ones(n, bool)
    if background is not None:
        fg[background] = False
    return fg


def class_mean(rates):
    """The mean over classes (the last axis) of the defined rates (NaN ones left out); NaN
    where no class has one.

    One matrix's rates: the plain mean of the defined values, as metrics.json has always
    written it; a stack's: ``np.nanmean`` along the classes, every resample at once (it adds the
    left-out classes as zeros, which can round the last bit differently from the plain mean).
    """
    import numpy as np

    rates = np.asarray(rates, dtype=np.float64)
    if rates.ndim == 1:
        defined = rates[~np.isnan(rates)]
        return float(defined.mean()) if defined.size else float("nan")
    with warnings.catch_warnings():  # an all-NaN row (an undefined resample) is NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(rates, axis=-1)


def _ratio(a, b):
    import numpy as np

    with np.errstate(invalid="ignore", divide="ignore"):
        return a / b
