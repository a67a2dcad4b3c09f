"""Semantic segmentation: one streaming confusion matrix (IoU, Dice, sensitivity,
specificity), and per-image boundary distances (HD95, ASSD).

Conventions (also written into every metrics dict under ``conventions``):

* Label maps put background at 0 and category ``i`` at ``i + 1``; ground-truth pixels equal
  to 255 (ignored regions) are left out of every count. Ground truth comes from
  ``zoo.data.raster.semantic_label_map`` -- the one rasteriser backends train on.
* One confusion matrix over all pixels of all images (rows truth, columns prediction), so
  every metric is dataset-level ("micro over pixels, macro over classes"), not an average of
  per-image scores.
* IoU = TP / (TP + FP + FN), Dice = 2TP / (2TP + FP + FN) per class. A class absent from
  both truth and prediction has 0/0: its IoU / Dice are ``null`` and it is left out of the
  means (it is not counted as 1, nor as 0). A class present in only one of them scores 0.
* ``mIoU`` / ``mDice`` average over every class *including* background (the torchmetrics and
  mmsegmentation convention); ``mIoU_foreground`` / ``mDice_foreground`` exclude it, which is
  what a small-lesion task usually means. ``pixel_accuracy`` = trace / total.
* sensitivity = TP / (TP + FN), specificity = TN / (TN + FP) per class, from the same
  matrix (0/0 is ``null``); ``sensitivity`` / ``specificity`` at the top level are their
  means over the foreground classes.
* HD95 and ASSD (:mod:`.surface`, equal to MONAI's ``compute_hausdorff_distance(percentile=95)``
  and ``compute_average_surface_distance(symmetric=True)``) are computed per image and
  foreground class, then averaged over images, then (``mHD95`` / ``mASSD``) over foreground
  classes. Distances are in pixels, or in the unit of ``pixel_spacing`` from ``zoo.yaml``
  (millimetres, row then column spacing). Predicted pixels under an ignored (255) truth
  pixel are treated as background before the edges are found.
* Empty masks, as MONAI: a class absent from both truth and prediction in an image has no
  distance (MONAI: ``nan``) and that image is left out of the class's average; a class in only
  one of them is infinitely far (MONAI's ASSD and Hausdorff distance: ``inf``; its HD95 reads
  ``nan`` there, ``torch.quantile`` of infinities). zoo leaves such an image out of the class's
  average too -- an ``inf`` would swamp every mean -- and counts it per class under
  ``one_side_empty``; Dice already charges the miss.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo import __version__
from zoo.dataset import ImageRecord
from zoo.evaluation import bootstrap
from zoo.evaluation.base import Evaluator
from zoo.evaluation.rates import class_counts, class_mean, foreground
from zoo.errors import ZooError
from zoo.metrics import Metric, MetricsSchema
from zoo.predictions import SemanticPrediction

IGNORE = 255

_DISTANCE = "pixels, or millimetres with a pixel spacing"
SCHEMA = MetricsSchema(
    scores=(Metric("mIoU"), Metric("mDice"), Metric("mHD95", higher_is_better=False, unit=_DISTANCE),
            Metric("mIoU_foreground"), Metric("mDice_foreground"), Metric("pixel_accuracy"),
            Metric("sensitivity"), Metric("specificity"), Metric("mASSD", higher_is_better=False, unit=_DISTANCE)),
    # HD95 next to Dice: the overlap and the boundary a reader weighs together
    headline=("mIoU", "mDice", "mHD95", "mIoU_foreground", "mDice_foreground", "pixel_accuracy"),
    per_class=("IoU", "Dice"), per_class_count="pixels",
    intervals=("mIoU", "mIoU_foreground"),  # bootstrap.confusion_samples
)


def label_map_for(record: ImageRecord, meta):
    """The ground-truth label map of ``record`` (background 0, category i at i+1, 255 ignored)."""
    from zoo.data.raster import semantic_label_map

    return semantic_label_map(record, meta)


def confusion_update(conf, gt, pred) -> None:
    """Add one image's pixels to the ``(n, n)`` int64 confusion matrix ``conf`` in place.

    ``pred`` must hold labels ``0..n-1`` (the caller checks); ``gt`` may also hold 255.
    """
    import numpy as np

    n = conf.shape[0]
    gt = np.asarray(gt).ravel()
    pred = np.asarray(pred).ravel()
    if gt.dtype == np.uint8 and n <= 255:
        # One bincount over truth * n + prediction in uint16: ignored pixels (255) land in
        # bins past n*n and are dropped, with no masking copy; 4x the int64 path below.
        idx = np.multiply(gt, np.uint16(n), dtype=np.uint16)
        np.add(idx, pred, out=idx, casting="unsafe")
        counts = np.bincount(idx, minlength=256 * n)
        bad = counts[n * n : IGNORE * n]
    else:
        keep = gt != IGNORE
        if not keep.all():
            gt, pred = gt[keep], pred[keep]
        idx = gt.astype(np.intp, copy=False) * n + pred.astype(np.intp, copy=False)
        counts = np.bincount(idx, minlength=n * n)
        bad = counts[n * n :]
    if bad.any():
        raise ValueError(f"ground truth holds label {n + int(np.flatnonzero(bad)[0]) // n}; only 0..{n - 1} exist")
    conf += counts[: n * n].reshape(n, n)


def confusion_metrics(conf, names: list[str], background: int | None = 0) -> dict[str, Any]:
    """IoU, Dice, their means with and without ``background``, pixel accuracy, sensitivity and
    specificity (means over the foreground), from ``conf``."""
    import numpy as np

    conf = np.asarray(conf, dtype=np.float64)
    counts = class_counts(conf)
    iou, dice = counts.iou(), counts.dice()
    sensitivity, specificity = counts.sensitivity(), counts.specificity()
    fg = foreground(len(names), background)
    total = conf.sum()
    return {
        "mIoU": _num(class_mean(iou)),
        "mDice": _num(class_mean(dice)),
        "mIoU_foreground": _num(class_mean(iou[fg])),
        "mDice_foreground": _num(class_mean(dice[fg])),
        "pixel_accuracy": float(counts.tp.sum() / total) if total else None,
        "sensitivity": _num(class_mean(sensitivity[fg])),
        "specificity": _num(class_mean(specificity[fg])),
        "per_class": {
            n: {"IoU": _num(i), "Dice": _num(d), "sensitivity": _num(se), "specificity": _num(sp), "pixels": int(p)}
            for n, i, d, se, sp, p in zip(names, iou, dice, sensitivity, specificity, conf.sum(1))
        },
        "IoU": {n: _num(v) for n, v in zip(names, iou)},
        "Dice": {n: _num(v) for n, v in zip(names, dice)},
        "pixels": {n: int(v) for n, v in zip(names, conf.sum(1))},
    }


class BoundaryDistances:
    """Per-image HD95 and ASSD of every foreground class, averaged over images on demand."""

    def __init__(self, n_classes: int, spacing=None):
        self.n = n_classes
        self.spacing = spacing
        self.hd95: list[list[float]] = [[] for _ in range(n_classes)]
        self.assd: list[list[float]] = [[] for _ in range(n_classes)]
        self.one_side_empty = [0] * n_classes

    def add(self, gt_map, pred_map, spacing=None) -> None:
        """One image's label maps (truth may hold 255, which is neither side's class), and its
        own pixel spacing when the dataset has none for all images."""
        import numpy as np

        from zoo.evaluation.surface import hd95_assd

        pred_map = np.where(gt_map == IGNORE, 0, pred_map)
        present = np.bincount(gt_map.ravel(), minlength=256)[: self.n] + np.bincount(pred_map.ravel(), minlength=self.n)
        for c in np.flatnonzero(present[1:]) + 1:  # foreground classes on either side
            hd, asd = hd95_assd(pred_map == c, gt_map == c, self.spacing or spacing)
            if np.isinf(hd):
                self.one_side_empty[c] += 1
            else:
                self.hd95[c].append(hd)
                self.assd[c].append(asd)

    def metrics(self, names: list[str]) -> dict[str, Any]:
        """``mHD95`` / ``mASSD`` and the per-class averages (``None`` for background and for a
        class never present on both sides of one image)."""
        hd = [_mean(v) if c else None for c, v in enumerate(self.hd95)]
        asd = [_mean(v) if c else None for c, v in enumerate(self.assd)]
        return {
            "mHD95": _mean([v for v in hd if v is not None]),
            "mASSD": _mean([v for v in asd if v is not None]),
            "per_class": {
                n: {"HD95": h, "ASSD": a, "distance_images": len(self.hd95[c]), "one_side_empty": self.one_side_empty[c]}
                for c, (n, h, a) in enumerate(zip(names, hd, asd))
            },
        }


class SemanticEvaluator(Evaluator):
    """mIoU, Dice and pixel accuracy over a streaming confusion matrix."""

    def reset(self) -> None:
        import numpy as np

        self.names = self.task.class_names(self.meta) if self.task is not None else self.meta.semantic_classes()
        self.confusion = np.zeros((len(self.names), len(self.names)), dtype=np.int64)
        self.distances = BoundaryDistances(len(self.names), self.meta.pixel_spacing)
        self.images = 0
        self.per_image: list = []  # each image's confusion matrix, kept for ci95 only
        self.groups: list = []  # each image's group, for ci95 (bootstrap.group_keys)

    def process(self, gt: ImageRecord, pred: SemanticPrediction | None) -> None:
        self.process_maps(label_map_for(gt, self.meta), pred, gt.id, self.meta.image_spacing.get(gt.id))
        self.groups += bootstrap.group_keys([gt])

    def process_maps(self, gt_map, pred: SemanticPrediction | Any, image_id: str = "?", spacing=None) -> None:
        """Add a ground-truth label map and a prediction (label map or SemanticPrediction)."""
        import numpy as np

        pred_map = self._checked_prediction(gt_map, pred, image_id)
        ci95 = self.options.get("ci95")
        # with ci95 each image's matrix is kept too: the bootstrap re-sums them per resample
        target = np.zeros_like(self.confusion) if ci95 else self.confusion
        try:
            confusion_update(target, gt_map, pred_map)
        except ValueError as e:
            raise ZooError(f"image '{image_id}': {e}") from None
        self.distances.add(gt_map, pred_map, spacing)
        if ci95:
            self.confusion += target
            self.per_image.append(target)
        self.images += 1

    def _checked_prediction(self, gt_map, pred, image_id: str):
        """The prediction's label map, refused unless it has the image's size and labels 0..n-1."""
        import numpy as np

        if pred is None:
            raise ZooError(f"no prediction for image '{image_id}'")
        pred_map = np.asarray(getattr(pred, "label_map", pred))
        if pred_map.shape != gt_map.shape:
            raise ZooError(
                f"prediction for image '{image_id}' is {pred_map.shape[::-1]} (w, h); the image is {gt_map.shape[::-1]}"
            )
        n = len(self.names)
        if pred_map.size:
            lo, hi = int(pred_map.min()), int(pred_map.max())
            if hi >= n or lo < 0:
                raise ZooError(
                    f"prediction for image '{image_id}' holds label {hi if hi >= n else lo}; only 0..{n - 1} exist"
                )
        return pred_map

    def evaluate(self) -> dict[str, Any]:
        if not self.images:
            raise ZooError("nothing to evaluate: no images were processed")
        metrics: dict[str, Any] = {"main": SCHEMA.main}
        metrics.update(confusion_metrics(self.confusion, self.names, background=0))
        distances = self.distances.metrics(self.names)
        # metrics.json's key order, as it has always been (the schema orders what is shown)
        metrics = _insert_after(metrics, "mDice", {"mHD95": distances["mHD95"]})
        metrics["mASSD"] = distances["mASSD"]
        for name, row in distances["per_class"].items():
            metrics["per_class"][name].update(row)
        metrics["confusion_matrix"] = self.confusion.tolist()
        metrics["classes"] = list(self.names)
        metrics["images"] = self.images
        metrics["conventions"] = _conventions(self.names[0], self.meta.pixel_spacing or (
            "headers" if self.meta.image_spacing else None))
        if self.per_image:
            metrics["ci95"], metrics["conventions"]["ci95"] = bootstrap.ci95(self.resampled, self.groups,
                                                                             len(self.per_image))
        return metrics

    def resampled(self, weights) -> dict[str, Any]:
        return bootstrap.confusion_samples(self.per_image, weights)

    def plot(self, out_dir: Path) -> list[Path]:
        from zoo.evaluation.plots import confusion_matrix_plot

        return [confusion_matrix_plot(self.confusion, self.names, Path(out_dir) / "confusion_matrix.png",
                                      title="Semantic segmentation: pixels (row-normalised)")]


def _conventions(background: str, spacing) -> dict[str, Any]:
    import numpy as np

    return {
        "ignore_index": IGNORE,
        "matrix": "one confusion matrix over all pixels of all images (rows truth, columns prediction)",
        "averaging": "mIoU / mDice: mean over classes including background; *_foreground: without "
        "background (class 0)",
        "absent_classes": "a class absent from both truth and prediction has IoU/Dice null and is "
        "left out of the means; present in only one of them: 0",
        "background": background,
        "sensitivity_specificity": "per class from the matrix, TP/(TP+FN) and TN/(TN+FP); top-level: "
        "mean over foreground classes",
        "distances": "HD95 (95th percentile Hausdorff, symmetric: max of both directions) and ASSD "
        "(mean of both directions' edge distances) per image and foreground class, as MONAI's "
        "compute_hausdorff_distance(percentile=95) / compute_average_surface_distance(symmetric=True); "
        "averaged over images, then (mHD95, mASSD) over foreground classes",
        "distance_unit": _unit(spacing),
        "empty_masks": "class absent from both truth and prediction of an image: no distance (MONAI nan), "
        "image left out; present in only one: infinite (MONAI inf; its HD95 gives nan), image left "
        "out of the average and counted in per_class one_side_empty",
        "distance_ignore": "predicted pixels under ignored (255) truth are background for distances",
        "backend": "numpy bincount",
        "backend_version": np.__version__,
        "zoo_version": __version__,
    }


def _insert_after(d: dict, key: str, new: dict) -> dict:
    out = {}
    for k, v in d.items():
        out[k] = v
        if k == key:
            out.update(new)
    return out


def _unit(spacing) -> str:
    if spacing == "headers":
        return "millimetres (each image's pixel spacing from its own header: DICOM PixelSpacing, NIfTI zooms)"
    return f"millimetres (pixel_spacing {list(spacing)} from zoo.yaml)" if spacing else "pixels"


def _mean(values) -> float | None:
    return float(sum(values) / len(values)) if values else None


def _num(v) -> float | None:
    """A rate as metrics.json writes it: NaN (0/0, undefined) is null."""
    return None if v != v else float(v)

