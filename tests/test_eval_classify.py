"""Classification metrics: a hand-computed example and random labels against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.dataset import Dataset, ImageRecord
from zoo.evaluation import evaluate
from zoo.predictions import ClassPrediction


def _dataset(labels, classes):
    return Dataset(classes=list(classes), images=[ImageRecord(f"i{k}", 8, 8, labels=[y]) for k, y in enumerate(labels)])


def test_hand_computed_example(tmp_path):
    ds = _dataset([0, 0, 1, 1, 2], ["a", "b", "c", "d"])  # d never true, never predicted
    preds = [ClassPrediction(f"i{k}", y) for k, y in enumerate([0, 1, 1, 1, 0])]
    m = evaluate("classify", ds, preds, plots_dir=tmp_path)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["confusion_matrix"] == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    assert m["per_class"]["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2, "sensitivity": 0.5,
                                   "specificity": pytest.approx(2 / 3), "roc_auc": None}  # no scores given
    assert m["per_class"]["b"]["f1"] == pytest.approx(0.8) and m["per_class"]["b"]["specificity"] == pytest.approx(2 / 3)
    assert m["per_class"]["c"]["recall"] == 0.0 and m["per_class"]["c"]["specificity"] == 1.0
    assert m["per_class"]["d"]["f1"] is None and m["per_class"]["d"]["sensitivity"] is None
    assert m["per_class"]["d"]["specificity"] == 1.0  # never predicted: no false positive
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1.0 + 0.0) / 3) and m["roc_auc"] is None
    assert m["precision"] == pytest.approx((0.5 + 2 / 3) / 3)
    assert m["recall"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx((0.5 + 0.8) / 3)
    assert m["main"] == "accuracy" and (tmp_path / "confusion_matrix.png").exists()


def test_random_labels_against_sklearn():
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    rng = np.random.default_rng(0)
    classes = [f"c{k}" for k in range(7)]
    y = rng.integers(0, 6, 500)  # c6 never true ...
    p = np.where(rng.random(500) < 0.6, y, rng.integers(0, 7, 500))  # ... but sometimes predicted
    m = evaluate("classify", _dataset(y.tolist(), classes), [ClassPrediction(f"i{k}", int(v)) for k, v in enumerate(p)])
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p), abs=1e-12)
    P, R, F, _ = precision_recall_fscore_support(y, p, average="macro", zero_division=0)
    assert (m["precision"], m["recall"], m["f1"]) == pytest.approx((P, R, F), abs=1e-12)
    Pc, Rc, Fc, S = precision_recall_fscore_support(y, p, labels=range(7), zero_division=0)
    for k, c in enumerate(classes):
        assert m["per_class"][c]["f1"] == pytest.approx(Fc[k], abs=1e-12)
        assert m["per_class"][c]["support"] == S[k]
    assert np.array_equal(m["confusion_matrix"], confusion_matrix(y, p, labels=range(7)))


def _scored_predictions(y, n_classes, rng, ties=False):
    logits = rng.normal(size=(len(y), n_classes)) + 1.5 * np.eye(n_classes)[y]
    if ties:
        logits = np.round(logits)  # many equal scores: ties must count half, as scikit-learn does
    scores = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return scores, [ClassPrediction(f"i{k}", int(s.argmax()), scores=s.tolist()) for k, s in enumerate(scores)]


@pytest.mark.parametrize("n_classes,ties", [(2, False), (5, False), (5, True)])
def test_sensitivity_specificity_balanced_accuracy_and_roc_auc_against_sklearn(n_classes, ties):
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix, recall_score, roc_auc_score

    rng = np.random.default_rng(n_classes)
    classes = [f"c{k}" for k in range(n_classes)]
    y = rng.integers(0, n_classes, 300)
    scores, preds = _scored_predictions(y, n_classes, rng, ties)
    m = evaluate("classify", _dataset(y.tolist(), classes), preds)
    p = scores.argmax(1)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, p), abs=1e-6)
    want_auc = roc_auc_score(y, scores[:, 1] if n_classes == 2 else scores, multi_class="ovr", average="macro")
    assert m["roc_auc"] == pytest.approx(want_auc, abs=1e-6)
    sens = recall_score(y, p, average=None, labels=range(n_classes))
    conf = confusion_matrix(y, p, labels=range(n_classes))
    for k, c in enumerate(classes):
        row = m["per_class"][c]
        negatives = np.delete(np.delete(conf, k, 0), k, 1).sum()
        assert row["sensitivity"] == pytest.approx(sens[k], abs=1e-6)
        assert row["specificity"] == pytest.approx(negatives / (negatives + np.delete(conf[:, k], k).sum()), abs=1e-6)
        assert row["roc_auc"] == pytest.approx(roc_auc_score(y == k, scores[:, k]), abs=1e-6)


def test_roc_auc_leaves_out_a_class_without_positives():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 100)  # class 3 never true: its one-vs-rest AUC is undefined
    scores, preds = _scored_predictions(y, 4, rng)
    m = evaluate("classify", _dataset(y.tolist(), ["a", "b", "c", "d"]), preds)
    assert m["per_class"]["d"]["roc_auc"] is None
    assert m["roc_auc"] == pytest.approx(np.mean([roc_auc_score(y == k, scores[:, k]) for k in range(3)]), abs=1e-12)


def test_missing_prediction_and_stray_prediction_are_errors():
    from zoo.errors import ZooError

    ds = _dataset([0, 1], ["a", "b"])
    with pytest.raises(ZooError, match="no prediction for image 'i1'"):
        evaluate("classify", ds, [ClassPrediction("i0", 0)])
    with pytest.raises(ZooError, match="not in the ground truth"):
        evaluate("classify", ds, [ClassPrediction("i0", 0), ClassPrediction("i1", 0), ClassPrediction("zz", 1)])


def test_class_scores_of_the_wrong_length_are_an_invalid_prediction():
    from zoo.tasks import get_task

    meta = Dataset(classes=["a", "b", "c"])
    task = get_task("classify")
    assert task.validate(ClassPrediction("i", 0, scores=[0.5, 0.3, 0.2]), meta) == []
    assert task.validate(ClassPrediction("i", 0, scores=[0.5, 0.5]), meta) == ["2 class scores for 3 classes"]
