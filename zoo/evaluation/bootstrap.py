"""95% bootstrap intervals over images -- or over groups -- for the headline numbers (``ci95``
in metrics.json).

The images scored are resampled with replacement (:data:`RESAMPLES` times, numpy's
``default_rng(SEED)``), and each resample's score is re-aggregated from the per-image results
the evaluation already computed -- nothing is re-matched and no IoU is recomputed. When the
images are grouped (:attr:`zoo.dataset.ImageRecord.group`: patients, studies, volumes; see
:mod:`zoo.data.groups`), the groups are resampled instead, each drawn group bringing all its
images (the cluster bootstrap): the slices of one patient are not independent samples, and
resampling them as if they were makes the interval too narrow. With one image per group the
two are the same draws (:func:`cluster_weights` equals :func:`image_weights`, same seed).

* COCO AP / AP50: the per-image matching faster-coco-eval's ``evaluate`` made (for each
  category and image, which detection matched at which IoU threshold, which were ignored,
  how many ground truths count), accumulated as pycocotools' ``accumulate`` does, with each
  image weighted by how often the resample drew it. All resamples of a category are done at
  once with numpy (cumulative sums over the score-sorted detections, one row per resample).
  Equal scores rank as pycocotools ranks them on the resample written out as a dataset: in
  image order, and an image drawn twice ranks its run of equal scores copy after copy
  (:func:`_ranked_rows`);
* semantic-seg mIoU: the per-image confusion matrices, summed with the resample's weights;
* classify accuracy: each image's right / wrong.

The interval is the 2.5th and 97.5th percentile of the resampled scores (the percentile
bootstrap); resamples where a score is undefined (no ground truth drawn) are left out.
"""

from __future__ import annotations

from typing import Any

#: 300 keeps the interval's cost under one evaluation on the 5,000-image benchmark
#: (bench/README.md, "ci95"); the 2.5% tails then rest on 7-8 resamples each.
RESAMPLES = 300
SEED = 0
#: Resamples handled in one numpy block (memory: a few blocks of RESAMPLES_PER_BLOCK x
#: detections-of-one-category float64 values).
RESAMPLES_PER_BLOCK = 250


def method(groups: int | None = None) -> dict[str, Any]:
    """The ``conventions`` entry describing ``ci95`` (``groups``: the cluster bootstrap's number
    of groups; None: over images)."""
    unit = (f"groups (cluster bootstrap: {groups} groups -- patients, studies, volumes -- resampled whole)"
            if groups is not None else "images")
    return {
        "method": f"percentile bootstrap over {unit} (2.5th-97.5th percentile of the resampled scores)",
        "resamples": RESAMPLES,
        "seed": SEED,
        "source": "the evaluation's own per-image results (COCO matching, confusion matrices), re-weighted; "
        "nothing re-matched",
    }


def image_weights(n_images: int, resamples: int | None = None, seed: int = SEED):
    """``(resamples, n_images)`` float64: how often each resample drew each image
    (default :data:`RESAMPLES` resamples)."""
    import numpy as np

    resamples = RESAMPLES if resamples is None else resamples
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_images, size=(resamples, n_images))
    draws += np.arange(resamples)[:, None] * n_images
    return np.bincount(draws.ravel(), minlength=resamples * n_images).reshape(resamples, n_images).astype(np.float64)


def group_keys(records) -> list:
    """Each record's group for :func:`cluster_weights`: its ``group``, else the image itself."""
    return [(0, r.id) if r.group is None else (1, r.group) for r in records]


def clustered(groups) -> int | None:
    """The number of groups when some group holds several images (the cluster bootstrap
    applies), else None."""
    n = len(set(groups))
    return n if n < len(groups) else None


def cluster_weights(groups, resamples: int | None = None, seed: int = SEED):
    """``(resamples, images)`` float64 for images in the groups ``groups`` (one key per image):
    each resample draws as many groups as there are, with replacement; an image weighs as
    often as its group was drawn. Groups are numbered by first appearance, so with one image
    per group this is :func:`image_weights` (the same draws)."""
    import numpy as np

    index: dict = {}
    of = np.array([index.setdefault(g, len(index)) for g in groups], dtype=np.int64)
    return image_weights(len(index), resamples, seed)[:, of] if len(of) else image_weights(0, resamples, seed)


def ci95(resampled, groups: list, n: int) -> tuple[dict[str, list[float] | None], dict[str, Any]]:
    """``ci95`` and its ``conventions`` entry for an evaluator's ``resampled(weights)`` over its
    ``n`` scored images in ``groups`` (one key per image, :func:`group_keys`; when they do not
    line up -- images added without their record -- each image is its own group)."""
    if len(groups) != n:
        groups = list(range(n))
    found = intervals(resampled(cluster_weights(groups)))
    if len(set(groups)) < 2:
        # one patient (or one image) drawn again and again gives a zero-width interval that
        # says nothing about the spread: no interval, and the conventions say why
        return dict.fromkeys(found), {**method(clustered(groups)), "undefined": "fewer than 2 groups scored"}
    return found, method(clustered(groups))


def intervals(samples: dict[str, Any]) -> dict[str, list[float] | None]:
    """:func:`interval` of each named set of resampled scores."""
    return {k: interval(v) for k, v in samples.items()}


def interval(samples) -> list[float] | None:
    """``[low, high]``: the 2.5th and 97.5th percentile of the defined (non-NaN) samples."""
    import numpy as np

    s = np.asarray(samples, dtype=np.float64)
    s = s[~np.isnan(s)]
    if not s.size:
        return None
    lo, hi = np.percentile(s, [2.5, 97.5])
    return [float(lo), float(hi)]


# -- classify ---------------------------------------------------------------------------------


def accuracy_samples(correct, weights):
    """Accuracy of each resample from each image's right (1) / wrong (0); with one row of
    ones, the accuracy itself (the evaluator's point estimate)."""
    import numpy as np

    # a resample that drew none of these images (one fold's share of a pooled draw): NaN, left out
    with np.errstate(invalid="ignore", divide="ignore"):
        return weights @ np.asarray(correct, dtype=np.float64) / weights.sum(1)


# -- semantic-seg -----------------------------------------------------------------------------


def confusion_samples(per_image, weights, background: int | None = 0) -> dict[str, Any]:
    """mIoU (with and without ``background``) of each resample from per-image confusion
    matrices ``(images, n, n)``, with the evaluator's rules (a class absent from truth and
    prediction is left out of the mean)."""
    import numpy as np

    from zoo.evaluation.rates import class_counts, class_mean, foreground

    per_image = np.asarray(per_image, dtype=np.float64)
    n = per_image.shape[1]
    conf = (weights @ per_image.reshape(len(per_image), n * n)).reshape(-1, n, n)
    iou = class_counts(conf).iou()  # NaN where 0/0: absent from both
    return {"mIoU": class_mean(iou), "mIoU_foreground": class_mean(iou[:, foreground(n, background)])}


# -- COCO -------------------------------------------------------------------------------------


def coco_matching(ev) -> list[dict[str, Any]]:
    """Per category, the area-"all" per-image matching of an evaluated ``COCOeval_faster``
    (built with ``separate_eval=True``): detection scores, image index, matched / ignored per
    IoU threshold, and each image's number of counted ground truths."""
    import numpy as np

    p = ev._paramsEval
    n_img, n_area, n_thr = len(p.imgIds), len(p.areaRng), len(p.iouThrs)
    evals = ev._evalImgs_cpp
    out = []
    for k in range(len(p.catIds)):
        base = k * n_area * n_img  # area range 0: "all"
        scores, images, matched, ignored = [], [], [], []
        positives = np.zeros(n_img)
        for i in range(n_img):
            dt_matches, _gt_matches, dt_scores, gt_ignore, dt_ignore = evals[base + i].__getstate__()[:5]
            if gt_ignore:
                positives[i] = len(gt_ignore) - sum(gt_ignore)
            if dt_scores:
                n = len(dt_scores)
                scores += dt_scores
                images.append(np.full(n, i))
                matched.append(np.asarray(dt_matches, bool).reshape(n_thr, n))
                ignored.append(np.asarray(dt_ignore, bool).reshape(n_thr, n))
        scores_a = np.asarray(scores, np.float64)
        order = np.argsort(-scores_a, kind="mergesort")  # accumulate's order
        cat = {"positives": positives, "images": np.concatenate(images)[order] if images else np.zeros(0, int)}
        cat["tie_start"], cat["tie_size"] = _tie_runs(scores_a[order], cat["images"])
        cat["matched"] = np.concatenate(matched, 1)[:, order] if matched else np.zeros((n_thr, 0), bool)
        cat["ignored"] = np.concatenate(ignored, 1)[:, order] if ignored else np.zeros((n_thr, 0), bool)
        out.append(cat)
    return out


def _tie_runs(scores, images):
    """Each detection's run of equal scores on one image (consecutive in accumulate's order):
    the run's first position and its length."""
    import numpy as np

    n = len(scores)
    if not n:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    new = np.ones(n, bool)
    new[1:] = (scores[1:] != scores[:-1]) | (images[1:] != images[:-1])
    starts = np.flatnonzero(new)
    run = np.cumsum(new) - 1
    sizes = np.diff(np.append(starts, n))
    return starts[run], sizes[run]


def coco_samples(matching: list[dict[str, Any]], rec_thrs, weights) -> dict[str, Any]:
    """AP and AP50 (area all, the last maxDets) of each resample: pycocotools' accumulate
    with image weights, every resample of a block at once."""
    import numpy as np

    n_res = weights.shape[0]
    n_thr = matching[0]["matched"].shape[0] if matching else 10
    ap = np.full((n_res, len(matching), n_thr), np.nan)
    rec_thrs = np.asarray(rec_thrs, np.float64)
    for k, cat in enumerate(matching):
        for b0 in range(0, n_res, RESAMPLES_PER_BLOCK):
            w = weights[b0:b0 + RESAMPLES_PER_BLOCK]
            ap[b0:b0 + len(w), k] = _category_precision(cat, w, rec_thrs)
    with _quiet_nanmean():
        return {"AP": np.nanmean(ap.reshape(n_res, -1), axis=1), "AP50": np.nanmean(ap[:, :, 0], axis=1)}


def _category_precision(cat: dict[str, Any], w, rec_thrs):
    """``(resamples, thresholds)``: mean interpolated precision over the recall thresholds of
    one category; NaN where the resample holds no counted ground truth (pycocotools' -1).

    Precision only rises at a true positive, and the first detection to reach a recall is
    one, so accumulate's envelope and recall look-up are taken over the true positives
    alone (what the other detections change is the count of detections seen before each).
    Arrays are (detections, resamples): the running sums along the detections are then
    whole-row vector adds. Weights are small whole numbers, exact in float32.
    """
    import numpy as np

    n_res = len(w)
    n_thr = cat["matched"].shape[0]
    positives = w @ cat["positives"]  # (resamples,)
    out = np.zeros((n_res, n_thr))
    if cat["matched"].shape[1]:
        rows, wd = _ranked_rows(cat, w)  # (rows, resamples) weights, rows in pycocotools' ranking
        matched, ignored = cat["matched"][:, rows], cat["ignored"][:, rows]
        seen_all = np.cumsum(wd, axis=0)  # weight of the detections up to each one
        # recall >= r  <=>  tp >= the whole number needed; resamples side by side in one sorted
        # row (resample b shifted by b * span, whole numbers: exact) for one searchsorted
        span = float(positives.max()) + 1.0
        shift = span * np.arange(n_res)
        # whole numbers: exact in float32 below 2**24 (half the memory traffic), else float64
        exact = np.float32 if span * n_res < 2**24 else np.float64
        queries = (_needed_true_positives(positives, rec_thrs) + shift[:, None]).ravel().astype(exact)
        for t in range(n_thr):
            tp_pos = np.flatnonzero(matched[t] & ~ignored[t])
            if tp_pos.size:
                out[:, t] = _interpolated_precision(wd, seen_all, tp_pos, np.flatnonzero(ignored[t]), shift, queries)
    out[positives == 0] = np.nan
    return out


def _ranked_rows(cat: dict[str, Any], w):
    """The rows the resamples accumulate over, as pycocotools would rank a resample's images:
    ``(detection index per row, (rows, resamples) float32 weights)``.

    A detection weighs as often as its image was drawn. Where one image holds a run of equal
    scores, a resample that draws the image ``k`` times ranks the run ``k`` times over, copy
    after copy (each copy is an image of its own there, and ties keep image order); so such a
    run is laid out once per copy the block of resamples needs, each copy weighing 1 where the
    resample drew the image that often and 0 elsewhere (a zero row changes no count).

    Only runs that mix true and false positives (at some IoU threshold) need it: precision
    changes only at a true positive, so within a run of false positives alone, or of true
    positives alone, the order moves no value the accumulation reads.
    """
    import numpy as np

    images = cat["images"]
    wt = np.ascontiguousarray(w.T, dtype=np.float32)  # (images, resamples)
    size = cat.get("tie_size")
    if size is None or not (size > 1).any():
        return np.arange(len(images)), wt[images]
    start = cat["tie_start"]
    first = np.flatnonzero(start == np.arange(len(start)))  # each run's first detection
    k = size[first]
    counted = ~cat["ignored"]
    hit = np.add.reduceat((cat["matched"] & counted).T, first, axis=0)  # (runs, thresholds)
    miss = np.add.reduceat((~cat["matched"] & counted).T, first, axis=0)
    mixed = ((hit > 0) & (miss > 0)).any(1)
    copies = np.where(mixed, np.maximum(1, wt.max(1)[images[first]].astype(np.int64)), 1)
    per_run = k * copies
    run = np.repeat(np.arange(len(first)), per_run)
    local = np.arange(int(per_run.sum())) - np.repeat(np.cumsum(per_run) - per_run, per_run)
    rows = first[run] + local % k[run]
    copy = local // k[run]
    wd = wt[images[rows]]
    tied = mixed[run]
    wd[tied] = wd[tied] > copy[tied, None]
    return rows, wd


def _needed_true_positives(positives, rec_thrs):
    """``(resamples, recall thresholds)``: the least whole number ``m`` with ``m / positives
    >= r`` computed as accumulate computes recall (a float64 division), so that comparing
    whole true-positive counts with ``m`` decides exactly as pycocotools' ``rc >= r``."""
    import numpy as np

    npos = np.where(positives > 0, positives, 1.0)[:, None]
    r = np.asarray(rec_thrs, np.float64)[None, :]
    m = np.ceil(r * npos)
    m = np.where((m - 1 >= 0) & ((m - 1) / npos >= r), m - 1, m)
    return np.where(m / npos >= r, m, m + 1)


def _interpolated_precision(wd, seen_all, tp_pos, ign_pos, shift, queries):
    """Mean over the recall thresholds of the interpolated precision, one IoU threshold."""
    import numpy as np

    n_res, n_tp = wd.shape[1], tp_pos.size
    tp = np.cumsum(wd[tp_pos], axis=0)  # (true positives, resamples)
    seen = seen_all[tp_pos]
    if ign_pos.size:  # ignored detections count neither way
        ign = np.cumsum(wd[ign_pos], axis=0)
        before = np.searchsorted(ign_pos, tp_pos, side="right")
        has = before > 0
        seen[has] -= ign[before[has] - 1]
    # accumulate's tp / (tp + fp + eps): 0/0 (nothing drawn yet) is NaN here, which fmax skips
    with np.errstate(invalid="ignore"):
        np.divide(tp, seen, out=seen)
    # the envelope (best precision at this recall or beyond), in reversed order
    envelope = np.fmax.accumulate(seen[::-1], axis=0)
    rows = np.empty((n_res, n_tp), queries.dtype)
    np.add(tp.T, shift[:, None].astype(queries.dtype), out=rows)
    idx = np.searchsorted(rows.ravel(), queries, side="left").reshape(n_res, -1)
    idx -= (np.arange(n_res) * n_tp)[:, None]
    # reversed index of the first true positive at each recall; past the last: precision 0
    rev = np.clip(n_tp - 1 - idx, 0, None)
    q = envelope[rev, np.arange(n_res)[:, None]]
    q[(idx >= n_tp) | np.isnan(q)] = 0.0
    return q.mean(1)


class _quiet_nanmean:
    """``np.nanmean`` of an all-NaN row is NaN (an undefined resample) without a warning."""

    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)
