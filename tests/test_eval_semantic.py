"""Semantic-seg metrics: a hand-computed example, then random maps against torchmetrics and
scikit-learn, then the whole path from canonical records through zoo.data.raster."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.dataset import Dataset, ImageRecord, Instance
from zoo.evaluation import evaluate
from zoo.evaluation.semantic import SemanticEvaluator
from zoo.predictions import SemanticPrediction
from zoo.tasks import get_task


def _evaluator(categories):
    return SemanticEvaluator(Dataset(categories=list(categories)), task=get_task("semantic-seg"))


def test_hand_computed_example():
    ev = _evaluator(["a", "b", "c"])  # c is absent from truth and prediction
    gt = np.array([[0, 0, 1, 1], [0, 2, 2, 255]], np.uint8)
    pred = np.array([[0, 1, 1, 1], [0, 2, 0, 2]], np.uint8)  # the last pixel is ignored
    ev.process_maps(gt, pred)
    m = ev.evaluate()
    assert m["confusion_matrix"] == [[2, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    assert m["IoU"] == {"_background_": 0.5, "a": pytest.approx(2 / 3), "b": 0.5, "c": None}
    assert m["Dice"] == {"_background_": pytest.approx(2 / 3), "a": 0.8, "b": pytest.approx(2 / 3), "c": None}
    assert m["mIoU"] == pytest.approx((0.5 + 2 / 3 + 0.5) / 3)
    assert m["mIoU_foreground"] == pytest.approx((2 / 3 + 0.5) / 2)
    assert m["mDice"] == pytest.approx((2 / 3 + 0.8 + 2 / 3) / 3)
    assert m["mDice_foreground"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert m["pixel_accuracy"] == pytest.approx(5 / 7)
    assert m["main"] == "mIoU" and "absent_classes" in m["conventions"]


def test_random_maps_against_torchmetrics_and_sklearn():
    import torch
    from sklearn.metrics import confusion_matrix
    from torchmetrics.classification import MulticlassF1Score, MulticlassJaccardIndex

    rng = np.random.default_rng(0)
    names = ["k1", "k2", "k3", "k4", "k5"]
    n = len(names) + 1
    ev = _evaluator(names)
    jac = MulticlassJaccardIndex(n, average=None, ignore_index=255)
    f1 = MulticlassF1Score(n, average=None, ignore_index=255)
    gts, preds = [], []
    for _ in range(12):
        h, w = rng.integers(20, 90, 2)
        gt = rng.choice(np.array([0, 1, 2, 3, 4, 255], np.uint8), size=(h, w), p=[0.4, 0.2, 0.1, 0.1, 0.1, 0.1])
        pred = np.where(rng.random((h, w)) < 0.7, np.where(gt == 255, 0, gt), rng.integers(0, 5, (h, w))).astype(np.uint8)
        ev.process_maps(gt, SemanticPrediction("x", pred))
        jac.update(torch.from_numpy(pred.astype(np.int64)), torch.from_numpy(gt.astype(np.int64)))
        f1.update(torch.from_numpy(pred.astype(np.int64)), torch.from_numpy(gt.astype(np.int64)))
        gts.append(gt.ravel()), preds.append(pred.ravel())
    m = ev.evaluate()
    gt_all, pred_all = np.concatenate(gts), np.concatenate(preds)
    keep = gt_all != 255
    want = confusion_matrix(gt_all[keep], pred_all[keep], labels=range(n))
    assert np.array_equal(np.array(m["confusion_matrix"]), want)
    iou, dice = jac.compute().numpy(), f1.compute().numpy()  # class 5 ("k5") absent: torchmetrics says 0
    classes = ["_background_", *names]
    assert [m["IoU"][c] for c in classes[:5]] == pytest.approx(iou[:5].tolist(), abs=1e-6)
    assert [m["Dice"][c] for c in classes[:5]] == pytest.approx(dice[:5].tolist(), abs=1e-6)
    assert m["IoU"]["k5"] is None and m["mIoU"] == pytest.approx(iou[:5].mean(), abs=1e-6)
    assert m["pixel_accuracy"] == pytest.approx((gt_all[keep] == pred_all[keep]).mean())


def test_from_records_through_the_rasteriser(tmp_path):
    recs = [
        ImageRecord("a", 40, 30, instances=[Instance(0, (5, 5, 15, 15)), Instance(-1, (30, 0, 39, 9), ignore=True)]),
        ImageRecord("b", 40, 30, instances=[Instance(1, (0, 0, 9, 9), polygons=[[0, 0, 9, 0, 9, 9, 0, 9]])]),
    ]
    ds = Dataset(categories=["cell", "vessel"], images=recs)
    from zoo.data.raster import semantic_label_map

    perfect = [SemanticPrediction(r.id, np.where(semantic_label_map(r, ds) == 255, 0, semantic_label_map(r, ds))) for r in recs]
    m = evaluate("semantic-seg", ds, perfect, plots_dir=tmp_path)
    assert m["mIoU"] == 1.0 and m["pixel_accuracy"] == 1.0 and m["task"] == "semantic-seg"
    assert (tmp_path / "confusion_matrix.png").stat().st_size > 1000
    assert m["pixels"]["cell"] == 11 * 11  # box pixels, both ends included (zoo.data.raster's rule)
    blank = [SemanticPrediction(r.id, np.zeros((30, 40), np.uint8)) for r in recs]
    m = evaluate("semantic-seg", ds, blank)
    assert m["IoU"]["cell"] == 0.0 and m["mIoU_foreground"] == 0.0


def test_bad_predictions_are_clear_errors():
    from zoo.errors import ZooError

    ev = _evaluator(["a"])
    with pytest.raises(ZooError, match=r"\(w, h\)"):
        ev.process_maps(np.zeros((4, 5), np.uint8), np.zeros((5, 4), np.uint8), "img1")
    with pytest.raises(ZooError, match="label 7"):
        ev.process_maps(np.zeros((4, 5), np.uint8), np.full((4, 5), 7, np.uint8), "img1")
    with pytest.raises(ZooError, match="ground truth holds label 9"):
        ev.process_maps(np.full((4, 5), 9, np.uint8), np.zeros((4, 5), np.uint8), "img1")
    assert ev.confusion.sum() == 0  # nothing half-added


def test_uint8_fast_path_equals_the_general_path():
    from zoo.evaluation.semantic import confusion_update

    rng = np.random.default_rng(3)
    for n in (2, 7, 255):
        gt = rng.integers(0, n, (33, 47)).astype(np.uint8)
        gt[rng.random(gt.shape) < 0.2] = 255
        pred = rng.integers(0, n, (33, 47)).astype(np.uint8)
        fast, slow = np.zeros((n, n), np.int64), np.zeros((n, n), np.int64)
        confusion_update(fast, gt, pred)
        confusion_update(slow, gt.astype(np.int32), pred.astype(np.int64))
        assert np.array_equal(fast, slow) and fast.sum() == (gt != 255).sum()
