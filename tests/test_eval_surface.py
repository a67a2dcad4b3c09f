"""HD95, ASSD, sensitivity and specificity of semantic-seg against MONAI and scikit-learn:
random masks (empty ones included), the real fixtures' VOC class maps, pixel spacing from
zoo.yaml. MONAI is only the reference here; zoo never calls it to score."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from zoo.dataset import Dataset
from zoo.evaluation.semantic import SemanticEvaluator
from zoo.evaluation.surface import hd95_assd
from zoo.tasks import get_task

torch = pytest.importorskip("torch")
monai_metrics = pytest.importorskip("monai.metrics")


def _monai(pred: np.ndarray, truth: np.ndarray, spacing=None) -> tuple[float, float]:
    """MONAI's HD95 and symmetric ASSD of two boolean masks (one image, one class)."""
    def one_hot(m):
        return torch.from_numpy(np.stack([~m, m])[None].astype(np.float32))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns on every empty mask
        hd = monai_metrics.compute_hausdorff_distance(one_hot(pred), one_hot(truth), percentile=95, spacing=spacing)
        asd = monai_metrics.compute_average_surface_distance(one_hot(pred), one_hot(truth), symmetric=True,
                                                             spacing=spacing)
    return float(hd), float(asd)


def _blobs(rng, shape, fill):
    """Smooth random blobs covering about ``fill`` of the image."""
    from scipy.ndimage import gaussian_filter

    field = gaussian_filter(rng.random(shape), rng.uniform(1, 6))
    return field > np.quantile(field, 1 - fill)


@pytest.mark.parametrize("spacing", [None, (0.7, 1.3)])
def test_random_masks_equal_monai(spacing):
    rng = np.random.default_rng(0 if spacing is None else 1)
    for _ in range(40):
        shape = tuple(int(v) for v in rng.integers(3, 90, 2))
        pred, truth = _blobs(rng, shape, rng.uniform(0.05, 0.9)), _blobs(rng, shape, rng.uniform(0.05, 0.9))
        if rng.random() < 0.3:  # a mask touching the image border on purpose
            pred[0, :] = True
        for mask in (pred, truth):
            if rng.random() < 0.15:
                mask[:] = False  # empty masks, one side or both
        ours, ref = hd95_assd(pred, truth, spacing), _monai(pred, truth, spacing)
        if pred.any() and truth.any():
            assert ours == pytest.approx(ref, rel=1e-6, abs=1e-6)
        elif pred.any() or truth.any():
            assert ours == (np.inf, np.inf) and ref[1] == np.inf and np.isnan(ref[0])
        else:
            assert np.isnan(ours).all() and np.isnan(ref).all()


def test_empty_masks_as_monai():
    empty, square = np.zeros((9, 9), bool), np.zeros((9, 9), bool)
    square[2:6, 3:7] = True
    assert all(np.isnan(v) for v in hd95_assd(empty, empty)) and all(np.isnan(v) for v in _monai(empty, empty))
    for pred, truth in ((empty, square), (square, empty)):
        assert hd95_assd(pred, truth) == (np.inf, np.inf)
        hd, asd = _monai(pred, truth)
        assert asd == np.inf and np.isnan(hd)  # MONAI's HD95 reads nan: torch.quantile of infinities
    assert hd95_assd(square, square) == (0.0, 0.0)


def test_hand_computed_distances():
    truth = np.zeros((10, 10), bool)
    truth[2:5, 2:5] = True  # 3x3: 8 edge pixels around the centre
    pred = np.roll(truth, 3, axis=1)  # the same square 3 columns to the right
    # Edge columns 1, 2 and 3 px from the other square's nearest edge, 3 + 2 + 3 pixels each way.
    hd, asd = hd95_assd(pred, truth)
    assert hd == pytest.approx(3.0) and asd == pytest.approx((3 * 1 + 2 * 2 + 3 * 3) / 8)
    hd, asd = hd95_assd(pred, truth, spacing=(1.0, 0.5))  # columns 0.5 mm wide
    assert hd == pytest.approx(1.5) and asd == pytest.approx(1.0)


def _evaluator(names, spacing=None):
    return SemanticEvaluator(Dataset(categories=list(names), pixel_spacing=spacing), task=get_task("semantic-seg"))


def _voc_maps(real_fixtures):
    from PIL import Image

    folder = real_fixtures / "labelme" / "instance_segmentation" / "expected" / "data_dataset_voc" / "SegmentationClass"
    maps = [np.array(Image.open(p)) for p in sorted(folder.glob("*.png"))]
    assert len(maps) == 3
    return maps


def _perturbed(gt: np.ndarray, rng) -> np.ndarray:
    """A plausible prediction: the truth shifted, one class dropped, noise blobs added."""
    pred = np.roll(np.where(gt == 255, 0, gt), (int(rng.integers(-6, 7)), int(rng.integers(-6, 7))), (0, 1))
    classes = [c for c in np.unique(pred) if c]
    if len(classes) > 1:
        pred[pred == classes[0]] = 0  # a class the model misses: one side empty
    pred[_blobs(rng, gt.shape, 0.1) & (rng.random(gt.shape) < 0.02)] = 20
    return pred.astype(np.uint8)


def test_real_fixture_masks_equal_monai_per_image_and_class(real_fixtures):
    rng = np.random.default_rng(5)
    names = [f"c{k}" for k in range(1, 21)]  # VOC: 20 classes after background
    for gt in _voc_maps(real_fixtures):
        pred = _perturbed(gt, rng)
        ev = _evaluator(names, spacing=(0.8, 0.6))
        ev.process_maps(gt, pred)
        m = ev.evaluate()
        masked = np.where(gt == 255, 0, pred)  # zoo's rule: prediction under ignored truth is background
        checked = 0
        for c in range(1, 21):
            row = m["per_class"][names[c - 1]]
            p, t = masked == c, gt == c
            if p.any() and t.any():
                assert (row["HD95"], row["ASSD"]) == pytest.approx(_monai(p, t, (0.8, 0.6)), rel=1e-6, abs=1e-6)
                checked += 1
            else:
                assert row["HD95"] is None and row["one_side_empty"] == int(p.any() or t.any())
        assert checked >= 1
        assert "millimetres" in m["conventions"]["distance_unit"]


def test_aggregation_per_image_then_over_images_then_classes():
    ev = _evaluator(["a", "b"])
    truth, pred = np.zeros((12, 12), np.uint8), np.zeros((12, 12), np.uint8)
    truth[2:5, 2:5] = 1
    pred[2:5, 4:7] = 1  # class a: 2 px off
    ev.process_maps(truth, pred)
    truth2, pred2 = truth.copy(), np.roll(truth, 4, 1)
    truth2[8:11, 8:11] = 2  # class b only in truth: one side empty
    ev.process_maps(truth2, pred2)
    m = ev.evaluate()
    a = m["per_class"]["a"]
    assert a["HD95"] == pytest.approx((2 + 4) / 2) and a["distance_images"] == 2 and a["one_side_empty"] == 0
    assert m["per_class"]["b"]["HD95"] is None and m["per_class"]["b"]["one_side_empty"] == 1
    assert m["per_class"]["_background_"]["HD95"] is None
    assert m["mHD95"] == pytest.approx(3.0) and m["mASSD"] == a["ASSD"]
    assert list(m)[:4] == ["main", "mIoU", "mDice", "mHD95"]  # HD95 beside Dice in reports


def test_sensitivity_specificity_against_sklearn():
    from sklearn.metrics import confusion_matrix

    rng = np.random.default_rng(2)
    ev = _evaluator(["a", "b", "c"])
    gts, preds = [], []
    for _ in range(5):
        gt = rng.choice(np.array([0, 1, 2, 3, 255], np.uint8), size=(20, 30), p=[0.5, 0.2, 0.1, 0.1, 0.1])
        pred = np.where(rng.random(gt.shape) < 0.7, np.where(gt == 255, 0, gt), rng.integers(0, 4, gt.shape))
        ev.process_maps(gt, pred.astype(np.uint8))
        keep = gt != 255
        gts.append(gt[keep]), preds.append(pred[keep])
    m = ev.evaluate()
    y, p = np.concatenate(gts), np.concatenate(preds)
    sens, spec = [], []
    for k, name in enumerate(["_background_", "a", "b", "c"]):
        tn, fp, fn, tp = confusion_matrix(y == k, p == k, labels=[False, True]).ravel()
        assert m["per_class"][name]["sensitivity"] == pytest.approx(tp / (tp + fn), abs=1e-12)
        assert m["per_class"][name]["specificity"] == pytest.approx(tn / (tn + fp), abs=1e-12)
        sens.append(tp / (tp + fn)), spec.append(tn / (tn + fp))
    assert m["sensitivity"] == pytest.approx(np.mean(sens[1:])) and m["specificity"] == pytest.approx(np.mean(spec[1:]))


def test_pixel_spacing_from_zoo_yaml(tmp_path):
    from zoo.data.demo import write_demo
    from zoo.errors import DataError
    from zoo.data.reading import read_dataset

    write_demo(tmp_path / "d", images=2, size=48, seed=0)
    yaml_file = tmp_path / "d" / "zoo.yaml"
    text = yaml_file.read_text()
    yaml_file.write_text(text + "pixel_spacing: [0.5, 0.25]\n")
    assert read_dataset(tmp_path / "d").pixel_spacing == (0.5, 0.25)
    yaml_file.write_text(text + "pixel_spacing: 0.3\n")
    assert read_dataset(tmp_path / "d").pixel_spacing == (0.3, 0.3)
    yaml_file.write_text(text + "pixel_spacing: [0, 1]\n")
    with pytest.raises(DataError, match="pixel_spacing"):
        read_dataset(tmp_path / "d")
