"""Semantic segmentation: one streaming confusion matrix, IoU / Dice per class, mIoU.

Conventions (also written into every metrics dict under ``conventions``):

* Label maps put background at 0 and category ``i`` at ``i + 1``; ground-truth pixels equal
  to 255 (ignored regions) are left out of every count. Ground truth comes from
  ``zoo.raster.semantic_label_map`` -- the one rasteriser backends train on.
* One confusion matrix over all pixels of all images (rows truth, columns prediction), so
  every metric is dataset-level ("micro over pixels, macro over classes"), not an average of
  per-image scores.
* IoU = TP / (TP + FP + FN), Dice = 2TP / (2TP + FP + FN) per class. A class absent from
  both truth and prediction has 0/0: its IoU / Dice are ``null`` and it is left out of the
  means (it is not counted as 1, nor as 0). A class present in only one of them scores 0.
* ``mIoU`` / ``mDice`` average over every class *including* background (the torchmetrics and
  mmsegmentation convention); ``mIoU_foreground`` / ``mDice_foreground`` exclude it, which is
  what a small-lesion task usually means. ``pixel_accuracy`` = trace / total.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo import __version__
from zoo.dataset import ImageRecord
from zoo.evaluation.base import Evaluator
from zoo.errors import ZooError
from zoo.predictions import SemanticPrediction

IGNORE = 255


def label_map_for(record: ImageRecord, meta):
    """The ground-truth label map of ``record`` (background 0, category i at i+1, 255 ignored)."""
    from zoo.raster import semantic_label_map

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
    """IoU, Dice, their means with and without ``background``, pixel accuracy, from ``conf``."""
    import numpy as np

    conf = np.asarray(conf, dtype=np.float64)
    tp = np.diag(conf)
    fp = conf.sum(0) - tp
    fn = conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / (tp + fp + fn)
        dice = 2 * tp / (2 * tp + fp + fn)
    fg = np.ones(len(names), bool)
    if background is not None:
        fg[background] = False
    total = conf.sum()
    return {
        "mIoU": _nanmean(iou),
        "mIoU_foreground": _nanmean(iou[fg]),
        "mDice": _nanmean(dice),
        "mDice_foreground": _nanmean(dice[fg]),
        "pixel_accuracy": float(tp.sum() / total) if total else None,
        "per_class": {
            n: {"IoU": _num(i), "Dice": _num(d), "pixels": int(p)}
            for n, i, d, p in zip(names, iou, dice, conf.sum(1))
        },
        "IoU": {n: _num(v) for n, v in zip(names, iou)},
        "Dice": {n: _num(v) for n, v in zip(names, dice)},
        "pixels": {n: int(v) for n, v in zip(names, conf.sum(1))},
    }


class SemanticEvaluator(Evaluator):
    """mIoU, Dice and pixel accuracy over a streaming confusion matrix."""

    def reset(self) -> None:
        import numpy as np

        self.names = self.task.class_names(self.meta) if self.task is not None else self.meta.semantic_classes()
        self.confusion = np.zeros((len(self.names), len(self.names)), dtype=np.int64)
        self.images = 0

    def process(self, gt: ImageRecord, pred: SemanticPrediction | None) -> None:
        self.process_maps(label_map_for(gt, self.meta), pred, gt.id)

    def process_maps(self, gt_map, pred: SemanticPrediction | Any, image_id: str = "?") -> None:
        """Add a ground-truth label map and a prediction (label map or SemanticPrediction)."""
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
        try:
            confusion_update(self.confusion, gt_map, pred_map)
        except ValueError as e:
            raise ZooError(f"image '{image_id}': {e}") from None
        self.images += 1

    def evaluate(self) -> dict[str, Any]:
        import numpy as np

        if not self.images:
            raise ZooError("nothing to evaluate: no images were processed")
        metrics: dict[str, Any] = {"main": "mIoU"}
        metrics.update(confusion_metrics(self.confusion, self.names, background=0))
        metrics["confusion_matrix"] = self.confusion.tolist()
        metrics["classes"] = list(self.names)
        metrics["images"] = self.images
        metrics["conventions"] = {
            "ignore_index": IGNORE,
            "matrix": "one confusion matrix over all pixels of all images (rows truth, columns prediction)",
            "averaging": "mIoU / mDice: mean over classes including background; *_foreground: without "
            "background (class 0)",
            "absent_classes": "a class absent from both truth and prediction has IoU/Dice null and is "
            "left out of the means; present in only one of them: 0",
            "background": self.names[0],
            "backend": "numpy bincount",
            "backend_version": np.__version__,
            "zoo_version": __version__,
        }
        return metrics

    def plot(self, out_dir: Path) -> list[Path]:
        from zoo.evaluation.plots import confusion_matrix_plot

        return [confusion_matrix_plot(self.confusion, self.names, Path(out_dir) / "confusion_matrix.png",
                                      title="Semantic segmentation: pixels (row-normalised)")]


def _nanmean(a) -> float | None:
    import numpy as np

    a = np.asarray(a, dtype=float)
    a = a[~np.isnan(a)]
    return float(a.mean()) if a.size else None


def _num(v) -> float | None:
    return None if v != v else float(v)
