"""Image classification: accuracy, per-class and macro precision / recall / F1, confusion matrix.

Conventions (also written into every metrics dict under ``conventions``):

* Single-label: an image counts when it has exactly one label (``Task.is_annotated``).
* precision = TP / predicted, recall = TP / true, F1 = 2PR / (P + R) per class; 0/0 is 0
  (scikit-learn's ``zero_division=0``).
* Macro averages are plain means of the per-class values (macro F1 is the mean of per-class
  F1, not the F1 of macro P and R) over the classes that occur in the truth *or* the
  predictions; a class absent from both is ``null`` and left out -- scikit-learn's
  behaviour when no ``labels=`` are given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo import __version__
from zoo.dataset import ImageRecord
from zoo.evaluation.base import Evaluator
from zoo.errors import ZooError
from zoo.predictions import ClassPrediction


class ClassifyEvaluator(Evaluator):
    """Accuracy and precision / recall / F1 from one confusion matrix."""

    def reset(self) -> None:
        import numpy as np

        self.names = self.task.class_names(self.meta) if self.task is not None else self.meta.classes
        self.confusion = np.zeros((len(self.names), len(self.names)), dtype=np.int64)

    def process(self, gt: ImageRecord, pred: ClassPrediction | None) -> None:
        if len(gt.labels) != 1:
            return  # unlabelled or multi-label image: not scored by single-label classification
        if pred is None:
            raise ZooError(f"no prediction for image '{gt.id}'")
        self.add(gt.labels[0], pred.label, gt.id)

    def add(self, truth: int, predicted: int, image_id: str = "?") -> None:
        n = len(self.names)
        for what, v in (("label", truth), ("prediction", predicted)):
            if not 0 <= int(v) < n:
                raise ZooError(f"image '{image_id}': {what} {v} outside 0..{n - 1}")
        self.confusion[int(truth), int(predicted)] += 1

    def evaluate(self) -> dict[str, Any]:
        import numpy as np

        conf = self.confusion.astype(np.float64)
        total = conf.sum()
        if not total:
            raise ZooError("nothing to evaluate: no image with exactly one label was processed")
        tp = np.diag(conf)
        predicted, true = conf.sum(0), conf.sum(1)
        precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
        recall = np.divide(tp, true, out=np.zeros_like(tp), where=true > 0)
        pr = precision + recall
        f1 = np.divide(2 * precision * recall, pr, out=np.zeros_like(tp), where=pr > 0)
        seen = (predicted + true) > 0
        per_class = {
            name: (
                {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                if ok
                else {"precision": None, "recall": None, "f1": None, "support": 0}
            )
            for name, p, r, f, s, ok in zip(self.names, precision, recall, f1, true, seen)
        }
        return {
            "main": "accuracy",
            "accuracy": float(tp.sum() / total),
            "precision": float(precision[seen].mean()),
            "recall": float(recall[seen].mean()),
            "f1": float(f1[seen].mean()),
            "per_class": per_class,
            "confusion_matrix": self.confusion.tolist(),
            "classes": list(self.names),
            "images": int(total),
            "conventions": {
                "averaging": "precision / recall / f1: macro (unweighted mean over classes present in "
                "truth or predictions; f1 = mean of per-class F1)",
                "zero_division": 0,
                "absent_classes": "a class absent from truth and predictions is null and left out of "
                "the macro means (scikit-learn without labels=)",
                "matrix": "rows truth, columns prediction",
                "backend": "numpy",
                "backend_version": np.__version__,
                "zoo_version": __version__,
            },
        }

    def plot(self, out_dir: Path) -> list[Path]:
        from zoo.evaluation.plots import confusion_matrix_plot

        return [confusion_matrix_plot(self.confusion, self.names, Path(out_dir) / "confusion_matrix.png",
                                      title="Classification (row-normalised)")]
