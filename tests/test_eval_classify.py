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
    assert m["per_class"]["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert m["per_class"]["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["per_class"]["d"]["f1"] is None
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


def test_missing_prediction_and_stray_prediction_are_errors():
    from zoo.errors import ZooError

    ds = _dataset([0, 1], ["a", "b"])
    with pytest.raises(ZooError, match="no prediction for image 'i1'"):
        evaluate("classify", ds, [ClassPrediction("i0", 0)])
    with pytest.raises(ZooError, match="not in the ground truth"):
        evaluate("classify", ds, [ClassPrediction("i0", 0), ClassPrediction("i1", 0), ClassPrediction("zz", 1)])
