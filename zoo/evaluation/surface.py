"""Boundary distances between two binary masks: HD95 and ASSD, as MONAI computes them.

Definitions (MONAI's ``compute_hausdorff_distance(percentile=95)`` and
``compute_average_surface_distance(symmetric=True)``, Euclidean metric):

* A mask's *edge* is its pixels that a 3x3 cross erosion removes, the image border counting
  as outside (``mask ^ binary_erosion(mask)``).
* From every edge pixel of one mask, the distance to the nearest edge pixel of the other, in
  pixels scaled by ``spacing`` (row, column): prediction -> truth and truth -> prediction.
* HD95 = the larger of the two directions' 95th percentiles (linear interpolation, as
  ``torch.quantile``); ASSD = the mean of both directions' distances pooled together.
* Empty masks: both empty -> ``nan`` (nothing to measure); exactly one empty -> ``inf``
  (every edge pixel of the other mask is infinitely far from a surface that is not there).

zoo computes these itself (edges found in the bounding box of both masks, nearest edge pixel
by a scipy KD-tree: exact, and several times faster than a distance transform of the whole
box when edges are sparse); MONAI is only the reference the tests compare against.
"""

from __future__ import annotations

from collections.abc import Sequence

SpacingLike = Sequence[float] | float | None


def edges(mask):
    """The pixels of a boolean mask that a 3x3 cross erosion removes (border = outside)."""
    from scipy.ndimage import binary_erosion

    return mask & ~binary_erosion(mask, border_value=0)


def surface_distances(pred, truth, spacing: SpacingLike = None):
    """``(pred -> truth, truth -> pred)`` edge distances of two boolean masks, float64 arrays.

    ``None`` when both masks are empty; an array of ``inf`` for the direction whose target is
    empty."""
    import numpy as np
    from scipy.spatial import KDTree

    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    box = _union_box(pred, truth)
    if box is None:
        return None
    scale = np.asarray(_sampling(spacing) or (1.0, 1.0))
    pred_points = np.argwhere(edges(_crop(pred, box))) * scale
    truth_points = np.argwhere(edges(_crop(truth, box))) * scale

    def towards(src, dst):
        if not len(dst):
            return np.full(len(src), np.inf)
        if not len(src):
            return np.zeros(0)
        return KDTree(dst, leafsize=32).query(src, k=1)[0]

    return towards(pred_points, truth_points), towards(truth_points, pred_points)


def hd95_assd(pred, truth, spacing: SpacingLike = None) -> tuple[float, float]:
    """HD95 and ASSD of two boolean masks (``nan`` both empty, ``inf`` one empty)."""
    import numpy as np

    d = surface_distances(pred, truth, spacing)
    if d is None:
        return float("nan"), float("nan")
    a, b = d
    if not (a.size and b.size) or np.isinf(a).any() or np.isinf(b).any():
        return float("inf"), float("inf")
    hd = max(float(np.percentile(a, 95)), float(np.percentile(b, 95)))
    return hd, float(np.concatenate([a, b]).mean())


def _union_box(pred, truth):
    """Slices of the bounding box of ``pred | truth`` grown by one pixel (``None`` if empty)."""
    import numpy as np

    union = pred | truth
    rows = np.flatnonzero(union.any(1))
    if not rows.size:
        return None
    cols = np.flatnonzero(union.any(0))
    return rows[0] - 1, rows[-1] + 2, cols[0] - 1, cols[-1] + 2


def _crop(mask, box):
    """``mask`` over ``box``, zero-padded where the box leaves the image, so the erosion sees
    the image border as outside and the crop holds every edge pixel."""
    import numpy as np

    r0, r1, c0, c1 = box
    h, w = mask.shape
    out = np.zeros((r1 - r0, c1 - c0), bool)
    out[max(r0, 0) - r0 : min(r1, h) - r0, max(c0, 0) - c0 : min(c1, w) - c0] = mask[max(r0, 0) : r1, max(c0, 0) : c1]
    return out


def _sampling(spacing: SpacingLike):
    if spacing is None:
        return None
    if isinstance(spacing, (int, float)):
        return (float(spacing), float(spacing))
    return tuple(float(s) for s in spacing)
