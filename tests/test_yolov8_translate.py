"""ultralytics ``Results`` -> canonical predictions, checked against known values.

Real ``Results`` objects are built from known tensors (ground truth of the demo data, or
hand-made masks in a letterboxed frame), translated, and compared with what went in; fed
through zoo's evaluator, ground truth translated this way must score exactly 1.0.
No training here: these run in a second.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

if importlib.util.find_spec("torch") is None:
    pytest.skip("torch is not installed", allow_module_level=True)
if importlib.util.find_spec("ultralytics") is None:  # find, not import: importing it unprepared probes the network
    pytest.skip("ultralytics is not installed", allow_module_level=True)

import torch  # noqa: E402

from zoo.plugins.yolov8 import translate  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _ultralytics_offline(tmp_path_factory):
    # as the backend does before it first imports ultralytics
    from zoo.plugins.yolov8 import offline

    offline.prepare(tmp_path_factory.mktemp("ultralytics-config"))


def _results(h, w, *, boxes=None, masks=None, keypoints=None, probs=None, names=None):
    from ultralytics.engine.results import Results

    return Results(
        np.zeros((h, w, 3), dtype=np.uint8),
        path="image.jpg",
        names=names or {0: "platelet", 1: "rbc", 2: "wbc"},
        boxes=boxes,
        masks=masks,
        keypoints=keypoints,
        probs=probs,
    )


@pytest.fixture(scope="module")
def demo_ds(tmp_path_factory):
    from zoo.data.demo import write_demo
    from zoo.data.reading import read_dataset

    out = tmp_path_factory.mktemp("demo")
    write_demo(out, images=4, size=96)
    return read_dataset(out)


def _gt_results(rec, *, with_masks=False, with_keypoints=False):
    from zoo.data.raster import instance_mask

    insts = [i for i in rec.instances if not i.ignore]
    boxes = torch.tensor([[*i.bbox, 1.0, float(i.category)] for i in insts], dtype=torch.float32)
    masks = None
    if with_masks:
        masks = torch.from_numpy(np.stack([instance_mask(i, rec.height, rec.width) for i in insts]).astype(np.float32))
    kps = None
    if with_keypoints:
        kps = torch.tensor([[(x, y, 0.9) for x, y, _ in i.keypoints] for i in insts], dtype=torch.float32)
    return _results(rec.height, rec.width, boxes=boxes, masks=masks, keypoints=kps)


def test_boxes_pass_through_unrounded():
    boxes = torch.tensor([[10.25, 20.5, 30.75, 41.125, 0.875, 2.0], [0.0, 1.5, 5.5, 9.0, 0.25, 0.0]], dtype=torch.float64)
    pred = translate.to_instances(_results(48, 64, boxes=boxes), "img")
    assert pred.image_id == "img"
    assert [d.category for d in pred.detections] == [2, 0]
    assert [d.score for d in pred.detections] == [0.875, 0.25]
    assert pred.detections[0].bbox == (10.25, 20.5, 30.75, 41.125)
    assert pred.detections[1].bbox == (0.0, 1.5, 5.5, 9.0)
    assert all(d.mask is None and d.keypoints is None for d in pred.detections)


def test_no_detections_is_an_empty_prediction():
    empty = torch.zeros((0, 6))
    assert translate.to_instances(_results(32, 32, boxes=empty), "x").detections == []


@pytest.mark.parametrize(
    "task, kwargs",
    [
        ("detect", {}),
        ("instance-seg", {"with_masks": True}),
        ("keypoint", {"with_keypoints": True}),
    ],
)
def test_ground_truth_through_translation_scores_one(demo_ds, task, kwargs):
    from zoo.evaluation import evaluate

    preds = [translate.to_instances(_gt_results(r, **kwargs), r.id, **kwargs) for r in demo_ds.images]
    metrics = evaluate(task, demo_ds, preds)
    assert metrics["AP"] == pytest.approx(1.0)
    assert metrics["AP50"] == pytest.approx(1.0)


def test_masks_and_keypoints_match_the_tensors(demo_ds):
    from zoo.data.raster import instance_mask, rle_to_mask

    rec = demo_ds.images[0]
    res = _gt_results(rec, with_masks=True, with_keypoints=True)
    pred = translate.to_instances(res, rec.id, with_masks=True, with_keypoints=True)
    for inst, det in zip(rec.instances, pred.detections):
        assert np.array_equal(rle_to_mask(det.mask), instance_mask(inst, rec.height, rec.width))
        assert det.keypoints == [pytest.approx((x, y, 0.9), abs=1e-4) for x, y, _ in inst.keypoints]


def test_letterboxed_masks_are_mapped_back_to_the_original_image():
    # A 100x200 image predicted at 128x128: scaled by 0.64 to 64x128, padded 32 rows on top.
    # A block at input rows 48..64, cols 32..64 is original rows 25..50, cols 50..100.
    m = torch.zeros((1, 128, 128))
    m[0, 48:64, 32:64] = 1.0
    boxes = torch.tensor([[50.0, 25.0, 100.0, 50.0, 0.9, 1.0]])
    pred = translate.to_instances(_results(100, 200, boxes=boxes, masks=m), "x", with_masks=True)
    from zoo.data.raster import rle_to_mask

    got = rle_to_mask(pred.detections[0].mask)
    assert got.shape == (100, 200)
    want = np.zeros((100, 200), bool)
    want[25:50, 50:100] = True
    iou = (got & want).sum() / (got | want).sum()
    assert iou > 0.9, iou


def test_keypoints_without_confidence_get_score_one():
    boxes = torch.tensor([[1.0, 1.0, 9.0, 9.0, 0.5, 0.0]])
    kps = torch.tensor([[[2.0, 3.0], [4.5, 5.5]]])
    pred = translate.to_instances(_results(16, 16, boxes=boxes, keypoints=kps), "x", with_keypoints=True)
    assert pred.detections[0].keypoints == [(2.0, 3.0, 1.0), (4.5, 5.5, 1.0)]


def test_class_probabilities_follow_zoo_class_order():
    # ultralytics' output i is class folder i (sorted); zoo's classes may be in another order.
    probs = torch.tensor([0.1, 0.7, 0.2])
    class_of_output = [2, 0, 1]  # output 0 is zoo class 2, ...
    pred = translate.to_class(_results(8, 8, probs=probs), "x", class_of_output, 3)
    assert pred.label == 0
    assert pred.scores == pytest.approx([0.7, 0.2, 0.1])


def test_ground_truth_masks_painted_score_one_for_semantic_seg(demo_ds):
    from zoo.evaluation import evaluate
    from zoo.data.raster import semantic_label_map

    preds = [translate.to_label_map(_gt_results(r, with_masks=True), r.id, 0.25) for r in demo_ds.images]
    for r, p in zip(demo_ds.images, preds):
        assert np.array_equal(p.label_map, semantic_label_map(r, demo_ds))
    assert evaluate("semantic-seg", demo_ds, preds)["mIoU"] == pytest.approx(1.0)


def test_label_map_paints_confident_masks_most_confident_on_top():
    m = torch.zeros((3, 10, 10))
    m[0, 0:6, 0:6] = 1  # class 0, score 0.9
    m[1, 3:9, 3:9] = 1  # class 2, score 0.5: under the first where they overlap
    m[2, 8:10, 0:2] = 1  # class 1, score 0.1: below the threshold, not painted
    boxes = torch.tensor([[0, 0, 6, 6, 0.9, 0], [3, 3, 9, 9, 0.5, 2], [0, 8, 2, 10, 0.1, 1]], dtype=torch.float32)
    lm = translate.to_label_map(_results(10, 10, boxes=boxes, masks=m), "x", 0.25).label_map
    assert lm.dtype == np.uint8 and lm.shape == (10, 10)
    assert lm[0, 0] == 1 and lm[4, 4] == 1 and lm[7, 7] == 3 and lm[9, 0] == 0 and lm[9, 9] == 0
