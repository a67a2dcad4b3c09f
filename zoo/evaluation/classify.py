"""Image classification: accuracy, per-class and macro precision / recall / F1, confusion matrix.

Conventions (also written into every metrics dict under ``conventions``):

* Single-label: an image counts when it has exactly one label (``Task.is_annotated``).
* precision = TP / predicted, recall = TP / true, F1 = 2PR / (P + R) per class; 0/0 is 0
  (scikit-learn's ``zero_division=0``).
* Macro averages are plain means of the per-class values (macro F1 is the mean of per-class
  F1, not the F1 of macro P and R) over the classes that occur in the truth *or* the
  predictions; a class absent from both is ``null`` and left out -- scikit-learn's
  behaviour when no ``labels=`` are given.
* sensitivity = TP / (TP + FN) (= recall), specificity = TN / (TN + FP) per class, one
  class against the rest; 0/0 is ``null``.
* ``balanced_accuracy`` = the mean of per-class recall over the classes present in the truth
  (scikit-learn's ``balanced_accuracy_score``).
* ``roc_auc``: one-vs-rest ROC-AUC per class from the backends' class scores (the area under
  the ROC curve, ties counted half: the Mann-Whitney statistic), macro-averaged over the
  classes that have both positive and negative images (scikit-learn's
  ``roc_auc_score(multi_class="ovr", average="macro")`` when every class occurs). ``null``
  when a prediction carries no scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo import __version__
from zoo.dataset import ImageRecord
from zoo.evaluation import bootstrap
from zoo.evaluation.base import Evaluator
from zoo.errors import ZooError
from zoo.metrics import Metric, MetricsSchema
from zoo.predictions import ClassPrediction

_SCORES = ("accuracy", "precision", "recall", "f1", "balanced_accuracy", "roc_auc")
SCHEMA = MetricsSchema(
    scores=tuple(Metric(k) for k in _SCORES), headline=_SCORES,
    per_class=("precision", "recall", "f1"), per_class_count="support",
    per_class_main="f1",  # accuracy has no per-class form: F1 stands for it
    intervals=("accuracy",),  # bootstrap.accuracy_samples
)


class ClassifyEvaluator(Evaluator):
    """Accuracy and precision / recall / F1 from one confusion matrix."""

    def reset(self) -> None:
        import numpy as np

        self.names = self.task.class_names(self.meta) if self.task is not None else self.meta.classes
        self.confusion = np.zeros((len(self.names), len(self.names)), dtype=np.int64)
        self.truths: list[int] = []
        self.scores: list[list[float] | None] = []
        self.correct: list[bool] = []  # each image right or wrong, for ci95
        self.groups: list = []  # each scored image's group, for ci95 (bootstrap.group_keys)

    def process(self, gt: ImageRecord, pred: ClassPrediction | None) -> None:
        if len(gt.labels) != 1:
            return  # unlabelled or multi-label image: not scored by single-label classification
        if pred is None:
            raise ZooError(f"no prediction for image '{gt.id}'")
        self.add(gt.labels[0], pred.label, gt.id, scores=pred.scores)
        self.groups += bootstrap.group_keys([gt])

    def add(self, truth: int, predicted: int, image_id: str = "?", scores: list[float] | None = None) -> None:
        n = len(self.names)
        for what, v in (("label", truth), ("prediction", predicted)):
            if not 0 <= int(v) < n:
                raise ZooError(f"image '{image_id}': {what} {v} outside 0..{n - 1}")
        if scores is not None and len(scores) != n:
            raise ZooError(f"image '{image_id}': {len(scores)} class scores for {n} classes")
        self.confusion[int(truth), int(predicted)] += 1
        self.truths.append(int(truth))
        self.scores.append(scores)
        self.correct.append(int(truth) == int(predicted))

    def evaluate(self) -> dict[str, Any]:
        import numpy as np

        if not self.confusion.sum():
            raise ZooError("nothing to evaluate: no image with exactly one label was processed")
        r = class_rates(self.confusion)
        auc = roc_auc_per_class(self.truths, self.scores, len(self.names))
        valid_auc = [a for a in (auc if auc is not None else []) if a == a]
        metrics = {
            "main": SCHEMA.main,
            # the bootstrap's statistic, every image weighing once: one formula for both
            "accuracy": float(bootstrap.accuracy_samples(self.correct, np.ones((1, len(self.correct))))[0]),
            # macro means over the classes in the truth or the predictions (scikit-learn without labels=)
            "precision": float(r.precision[r.seen].mean()),
            "recall": float(r.recall[r.seen].mean()),
            "f1": float(r.f1[r.seen].mean()),
            "balanced_accuracy": float(r.recall[r.true > 0].mean()),
            "roc_auc": float(np.mean(valid_auc)) if valid_auc else None,
            "per_class": self._per_class(r, auc),
            "confusion_matrix": self.confusion.tolist(),
            "classes": list(self.names),
            "images": int(r.total),
            "conventions": _conventions(),
        }
        if self.options.get("ci95"):
            metrics["ci95"], metrics["conventions"]["ci95"] = bootstrap.ci95(self.resampled, self.groups,
                                                                             len(self.correct))
        return metrics

    def _per_class(self, r: ClassRates, auc) -> dict[str, dict[str, Any]]:
        """Each class's row; precision / recall / F1 ``None`` for a class in neither the truth
        nor the predictions."""
        aucs = auc if auc is not None else [None] * len(self.names)
        rows = {}
        for name, p, rc, f, support, seen, sp, a in zip(self.names, r.precision, r.recall, r.f1, r.true, r.seen,
                                                         r.specificity, aucs):
            row = ({"precision": float(p), "recall": float(rc), "f1": float(f), "support": int(support)} if seen
                   else {"precision": None, "recall": None, "f1": None, "support": 0})
            rows[name] = row | {
                "sensitivity": float(rc) if support else None,
                "specificity": None if sp != sp else float(sp),
                "roc_auc": None if a is None or a != a else float(a),
            }
        return rows

    def resampled(self, weights) -> dict[str, Any]:
        return {"accuracy": bootstrap.accuracy_samples(self.correct, weights)}

    def plot(self, out_dir: Path) -> list[Path]:
        from zoo.evaluation.plots import confusion_matrix_plot

        return [confusion_matrix_plot(self.confusion, self.names, Path(out_dir) / "confusion_matrix.png",
                                      title="Classification (row-normalised)")]


@dataclass
class ClassRates:
    """Per-class counts and rates of a confusion matrix (rows truth, columns prediction);
    0/0 is 0 (``zero_division=0``), except specificity's, which is ``nan``."""

    total: float
    tp: Any
    true: Any  # images of each class in the truth (support)
    seen: Any  # the class occurs in the truth or the predictions
    precision: Any
    recall: Any
    f1: Any
    specificity: Any


def class_rates(confusion) -> ClassRates:
    import numpy as np

    conf = confusion.astype(np.float64)
    total = conf.sum()
    tp = np.diag(conf)
    predicted, true = conf.sum(0), conf.sum(1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, true, out=np.zeros_like(tp), where=true > 0)
    pr = precision + recall
    f1 = np.divide(2 * precision * recall, pr, out=np.zeros_like(tp), where=pr > 0)
    negatives = total - true
    specificity = np.divide(negatives - (predicted - tp), negatives, out=np.full_like(tp, np.nan), where=negatives > 0)
    return ClassRates(total, tp, true, (predicted + true) > 0, precision, recall, f1, specificity)


def roc_auc_per_class(truths: list[int], scores: list[list[float] | None], n_classes: int):
    """One-vs-rest ROC-AUC of every class (``nan`` without both positives and negatives),
    or ``None`` when some prediction gave no class scores."""
    import numpy as np
    from scipy.stats import rankdata

    if not scores or any(s is None for s in scores):
        return None
    truth = np.asarray(truths)
    scores = np.asarray(scores, dtype=np.float64)
    out = np.full(n_classes, np.nan)
    for c in range(n_classes):
        positive = truth == c
        n_pos, n_neg = int(positive.sum()), int((~positive).sum())
        if n_pos and n_neg:
            # Mann-Whitney U over average ranks = the trapezoidal area under the ROC curve.
            ranks = rankdata(scores[:, c])
            out[c] = (ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return out


def _conventions() -> dict[str, Any]:
    import numpy as np

    return {
        "averaging": "precision / recall / f1: macro (unweighted mean over classes present in "
        "truth or predictions; f1 = mean of per-class F1)",
        "zero_division": 0,
        "absent_classes": "a class absent from truth and predictions is null and left out of "
        "the macro means (scikit-learn without labels=)",
        "sensitivity_specificity": "per class, one against the rest: TP/(TP+FN), TN/(TN+FP); 0/0 null",
        "balanced_accuracy": "mean recall over classes present in the truth (scikit-learn)",
        "roc_auc": "one-vs-rest per class from the predictions' class scores (ties count half), "
        "macro mean over classes with positive and negative images; null without scores",
        "matrix": "rows truth, columns prediction",
        "backend": "numpy",
        "backend_version": np.__version__,
        "zoo_version": __version__,
    }
