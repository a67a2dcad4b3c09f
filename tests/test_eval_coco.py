"""The COCO evaluator against pycocotools on seeded random data: every stat equal to 1e-9.

The random data has several categories, crowd / ignored regions (also category -1, ignored
for every category), ground truth as polygons and as RLE masks, predictions that are
jittered copies, wrong-class copies and false positives, and a 4-keypoint skeleton with
custom sigmas. The reference path is pycocotools itself, fed the same COCO dicts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math

import numpy as np
import pytest

from zoo.dataset import Dataset, ImageRecord, Instance
from zoo.evaluation.coco import (
    BOX_STATS,
    KEYPOINT_STATS,
    CocoEvaluator,
    coco_ground_truth,
    evaluation_ground_truth,
    oks_sigmas,
)
from zoo.evaluation.results import coco_results_to_predictions, predictions_to_coco_results
from zoo.errors import ZooError
from zoo.predictions import Detection, InstancePredictions
from zoo.data.raster import mask_to_rle, polygons_mask
from zoo.tasks import get_task

CATS = ["nucleus", "mitosis", "debris", "vessel"]
KP_NAMES = ["apex", "base", "left", "right"]
KP_SIGMAS = [0.03, 0.05, 0.08, 0.11]


def _polygon(rng, x0, y0, x1, y1) -> list[float]:
    """A random star-shaped polygon inside the box."""
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    n = int(rng.integers(5, 12))
    ang = np.sort(rng.uniform(0, 2 * math.pi, n))
    r = rng.uniform(0.55, 1.0, n)
    return [float(v) for a, k in zip(ang, r) for v in (cx + k * rx * math.cos(a), cy + k * ry * math.sin(a))]


def _rle(polys, h, w) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
    return {"size": [int(h), int(w)], "counts": rle["counts"].decode("ascii")}


def _box(rng, w, h):
    bw, bh = rng.uniform(4, w * 0.6), rng.uniform(4, h * 0.6)
    x0, y0 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
    return float(x0), float(y0), float(x0 + bw), float(y0 + bh)


def random_dataset(n_images=200, seed=0, keypoints=False, max_objects=8) -> Dataset:
    rng = np.random.default_rng(seed)
    images = []
    for k in range(n_images):
        w, h = int(rng.integers(64, 400)), int(rng.integers(64, 400))
        insts = []
        for _ in range(int(rng.integers(0, max_objects + 1))):
            box = _box(rng, w, h)
            poly = _polygon(rng, *box)
            roll = rng.random()
            ignore = roll < 0.08
            cat = -1 if roll < 0.02 else int(rng.integers(len(CATS)))
            inst = Instance(cat, box, ignore=ignore)
            if rng.random() < 0.5:
                inst.polygons = [poly]
            else:
                inst.mask = _rle([poly], h, w)
            if keypoints:
                x0, y0, x1, y1 = box
                inst.keypoints = [
                    (float(rng.uniform(x0, x1)), float(rng.uniform(y0, y1)), int(rng.choice([0, 1, 2], p=[0.2, 0.2, 0.6])))
                    for _ in KP_NAMES
                ]
            insts.append(inst)
        images.append(ImageRecord(id=f"img{k:04d}", width=w, height=h, instances=insts))
    ds = Dataset(categories=list(CATS), images=images)
    if keypoints:
        ds.keypoint_names = list(KP_NAMES)
        ds.skeleton = [(0, 1), (2, 3)]
        ds.oks_sigmas = list(KP_SIGMAS)
    return ds


def random_predictions(ds: Dataset, seed=1, masks=True, max_fp=4) -> list[InstancePredictions]:
    rng = np.random.default_rng(seed)
    out = []
    for rec in ds.images:
        w, h = rec.width, rec.height
        dets = []
        for inst in rec.instances:
            if inst.category < 0 or rng.random() < 0.2:
                continue
            x0, y0, x1, y1 = inst.bbox
            s = rng.normal(0, 0.03, 4) * [x1 - x0, y1 - y0, x1 - x0, y1 - y0]
            box = (max(0.0, x0 + s[0]), max(0.0, y0 + s[1]), min(w, x1 + s[2]), min(h, y1 + s[3]))
            cat = inst.category if rng.random() > 0.1 else int(rng.integers(len(CATS)))
            d = _det(rng, cat, box, w, h, False, inst.keypoints)
            if masks:  # the true shape, shifted by a few pixels
                d.mask = _shifted(inst, h, w, int(round(s[0])), int(round(s[1])))
            dets.append(d)
        for _ in range(int(rng.integers(0, max_fp + 1))):
            dets.append(_det(rng, int(rng.integers(len(CATS))), _box(rng, w, h), w, h, masks, None, n_kp=len(ds.keypoint_names)))
        out.append(InstancePredictions(rec.id, dets))
    return out


def _shifted(inst, h, w, dx, dy) -> dict:
    from pycocotools import mask as mask_utils

    rle = inst.mask or _rle(inst.polygons, h, w)
    m = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")})
    m = np.roll(m, (dy, dx), axis=(0, 1))
    out = mask_utils.encode(np.asfortranarray(m))
    return {"size": [h, w], "counts": out["counts"].decode("ascii")}


def _det(rng, cat, box, w, h, masks, gt_kps, n_kp=0):
    d = Detection(cat, float(rng.uniform(0.05, 1.0)), box)
    if masks:
        d.mask = _rle([_polygon(rng, *box)], h, w)
    if gt_kps is not None:
        d.keypoints = [(x + rng.normal(0, 3), y + rng.normal(0, 3), float(rng.random())) for x, y, _ in gt_kps]
    elif n_kp:
        x0, y0, x1, y1 = box
        d.keypoints = [(float(rng.uniform(x0, x1)), float(rng.uniform(y0, y1)), float(rng.random())) for _ in range(n_kp)]
    return d


def gt_as_predictions(ds: Dataset, masks=True) -> list[InstancePredictions]:
    out = []
    for rec in ds.images:
        dets = []
        for inst in rec.instances:
            if inst.ignore:
                continue
            mask = inst.mask or (mask_to_rle(polygons_mask(inst.polygons, rec.height, rec.width)) if masks else None)
            kps = [(x, y, 1.0) for x, y, _ in inst.keypoints] if inst.keypoints else None
            dets.append(Detection(inst.category, 1.0, inst.bbox, mask=mask, keypoints=kps))
        out.append(InstancePredictions(rec.id, dets))
    return out


def zoo_metrics(ds, preds, iou_type, **options):
    ev = CocoEvaluator(ds, task=None, iou_type=iou_type, **options)
    for rec, p in zip(ds.images, preds):
        ev.process(rec, p)
    return ev.evaluate()


def pycocotools_eval(ds, preds, iou_type, sigmas=None):
    """The reference: pycocotools on the same COCO dicts."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = evaluation_ground_truth(ds, iou_type)
    ids = {img["file_name"].rsplit(".", 1)[0]: img["id"] for img in gt["images"]}
    results = predictions_to_coco_results(preds, ids)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results) if results else COCO()
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = np.asarray(sigmas)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def assert_equal_to_reference(metrics, ref, names):
    for name, want in zip(names, ref.stats):
        got = metrics[name]
        if want == -1:
            assert got is None, name
        else:
            assert got == pytest.approx(want, abs=1e-9), name
    prec = ref.eval["precision"]
    for k, cat in enumerate(CATS):
        p = prec[:, :, k, 0, -1]
        want = p[p > -1].mean() if (p > -1).any() else None
        got = metrics["per_class"][cat]["AP"]
        assert (got is None) if want is None else got == pytest.approx(want, abs=1e-9), cat


@pytest.fixture(scope="module")
def boxes_and_masks():
    ds = random_dataset(240, seed=3)
    return ds, random_predictions(ds, seed=4)


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_equal_to_pycocotools(boxes_and_masks, iou_type):
    ds, preds = boxes_and_masks
    metrics = zoo_metrics(ds, preds, iou_type)
    ref = pycocotools_eval(ds, preds, iou_type)
    assert_equal_to_reference(metrics, ref, BOX_STATS)
    # the data must exercise what it claims: crowd regions, both shapes, real mistakes
    gt = coco_ground_truth(ds)
    assert sum(a["iscrowd"] for a in gt["annotations"]) > 20
    assert {type(a["segmentation"]) for a in gt["annotations"]} == {list, dict}
    assert 0.2 < metrics["AP"] < 0.9
    assert metrics["main"] == "AP" and metrics["conventions"]["max_dets"] == [1, 10, 100]
    if iou_type == "segm":  # masks also report the box AP of the same detections
        assert metrics["bbox"]["AP"] == pytest.approx(zoo_metrics(ds, preds, "bbox")["AP"], abs=1e-12)


def test_keypoints_equal_to_pycocotools_with_custom_sigmas():
    ds = random_dataset(200, seed=5, keypoints=True, max_objects=5)
    preds = random_predictions(ds, seed=6, masks=False)
    metrics = zoo_metrics(ds, preds, "keypoints")
    ref = pycocotools_eval(ds, preds, "keypoints", sigmas=KP_SIGMAS)
    assert_equal_to_reference(metrics, ref, KEYPOINT_STATS)
    assert 0.05 < metrics["AP"] < 0.95
    assert metrics["conventions"]["oks_sigmas"] == dict(zip(KP_NAMES, KP_SIGMAS))
    # the sigmas are used: looser ones score higher
    loose = zoo_metrics(dataclasses.replace(ds, oks_sigmas=[0.3] * 4), preds, "keypoints")
    assert loose["AP"] > metrics["AP"]


@pytest.mark.parametrize("iou_type", ["bbox", "segm", "keypoints"])
def test_ground_truth_as_predictions_scores_one(iou_type):
    ds = random_dataset(60, seed=7, keypoints=iou_type == "keypoints")
    metrics = zoo_metrics(ds, gt_as_predictions(ds), iou_type)
    names = KEYPOINT_STATS if iou_type == "keypoints" else BOX_STATS
    for name in names:
        if name in ("AR1", "AR10"):  # recall with 1 or 10 detections per image cannot reach 1
            continue
        assert metrics[name] in (None, pytest.approx(1.0, abs=1e-12)), name
    assert metrics["AP"] == pytest.approx(1.0)
    assert all(v["AP"] == pytest.approx(1.0) for v in metrics["per_class"].values())


def test_no_predictions_scores_zero_and_missing_ranges_are_null():
    ds = Dataset(categories=["a", "b"], images=[ImageRecord("x", 100, 100, instances=[Instance(0, (10, 10, 50, 50))])])
    metrics = zoo_metrics(ds, [InstancePredictions("x", [])], "bbox")
    assert metrics["AP"] == 0.0 and metrics["AR100"] == 0.0
    assert metrics["APs"] is None and metrics["APl"] is None  # 40x40 box: medium only
    assert metrics["per_class"]["b"]["AP"] is None and metrics["per_class"]["a"]["instances"] == 1


def test_detection_on_ignored_region_is_not_a_false_positive():
    inst = [Instance(0, (10, 10, 50, 50)), Instance(-1, (60, 60, 95, 95), ignore=True)]
    ds = Dataset(categories=["a", "b"], images=[ImageRecord("x", 100, 100, instances=inst)])
    hit = Detection(0, 0.5, (10, 10, 50, 50))
    for cat in (0, 1):  # category -1 is ignored for every category
        on_ignored = Detection(cat, 0.9, (61, 61, 94, 94))
        metrics = zoo_metrics(ds, [InstancePredictions("x", [on_ignored, hit])], "bbox")
        assert metrics["AP"] == pytest.approx(1.0)
    # the same detection elsewhere is a false positive ranked above the hit
    fp = Detection(0, 0.9, (0, 60, 30, 95))
    assert zoo_metrics(ds, [InstancePredictions("x", [fp, hit])], "bbox")["AP50"] == pytest.approx(0.5, abs=0.01)


def test_sigmas_coco_names_and_default():
    coco17 = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
              "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
              "left_knee", "right_knee", "left_ankle", "right_ankle"]  # fmt: skip
    sig, src = oks_sigmas(Dataset(keypoint_names=list(reversed(coco17))))
    assert sig[-1] == 0.026 and sig[0] == 0.089 and src.startswith("COCO")
    sig, src = oks_sigmas(Dataset(keypoint_names=["a", "b"]))
    assert sig == [0.072, 0.072] and src.startswith("default")


def test_results_json_round_trip_is_unrounded(boxes_and_masks):
    ds, preds = boxes_and_masks
    ids = {r.id: k + 1 for k, r in enumerate(ds.images)}
    results = predictions_to_coco_results(preds, ids)
    x0, y0, x1, y1 = preds[0].detections[0].bbox if preds[0].detections else next(
        p.detections[0].bbox for p in preds if p.detections
    )
    assert any(r["bbox"][:2] == [x0, y0] and r["bbox"][2] == x1 - x0 for r in results)
    back = coco_results_to_predictions(results, ds)
    assert [p.image_id for p in back] == [r.id for r in ds.images]
    for a, b in zip(preds, back):
        assert len(a.detections) == len(b.detections)
        for da, db in zip(a.detections, b.detections):
            assert da.category == db.category and da.score == db.score and da.mask == db.mask
            assert np.allclose(da.bbox, db.bbox, rtol=0, atol=1e-9)


def test_task_builds_the_evaluator():
    ds = random_dataset(5, seed=9)
    ev = get_task("instance-seg").evaluator(ds)
    assert isinstance(ev, CocoEvaluator) and ev.iou_type == "segm"


def test_polygon_raster_convention():
    """GT polygons are scored as the pixels zoo.data.raster fills (what masks are trained on);
    polygon_raster="coco" keeps pycocotools' scan-conversion instead."""
    poly = [[10, 10, 19, 10, 19, 19, 10, 19]]  # a 10x10-pixel cell outline
    ds = Dataset(categories=["c"], images=[ImageRecord("x", 40, 40, instances=[Instance(0, (10, 10, 19, 19), polygons=poly)])])
    zoo_pixels = Detection(0, 1.0, (10, 10, 19, 19), mask=mask_to_rle(polygons_mask(poly, 40, 40)))
    coco_pixels = Detection(0, 1.0, (10, 10, 19, 19), mask=_rle(poly, 40, 40))
    preds = [InstancePredictions("x", [zoo_pixels])]
    assert zoo_metrics(ds, preds, "segm")["AP"] == pytest.approx(1.0)
    ev = CocoEvaluator(ds, iou_type="segm", polygon_raster="coco")
    ev.process(ds.images[0], InstancePredictions("x", [coco_pixels]))
    m = ev.evaluate()
    assert m["AP"] == pytest.approx(1.0) and m["conventions"]["polygon_raster"].startswith("pycocotools")
    # the two rules differ by the outline: 100 vs 81 pixels, IoU 0.81 passes 7 of the 10 thresholds
    assert zoo_metrics(ds, [InstancePredictions("x", [coco_pixels])], "segm")["AP"] == pytest.approx(0.7)


def test_fast_polygon_rle_is_zoo_raster_pixel_for_pixel():
    from zoo.data.raster import rasterise_polygons_rles

    def polygons_rle(polygons, height, width):  # what the evaluator does for each GT polygon set
        return rasterise_polygons_rles([(polygons, height, width)])[0]

    rng = np.random.default_rng(11)
    for _ in range(400):
        h, w = (int(v) for v in rng.integers(1, 200, 2))
        polys = [
            [float(v) for v in rng.uniform(-10, max(h, w) + 10, int(rng.integers(2, 12)) * 2)]
            for _ in range(int(rng.integers(1, 3)))
        ]
        assert polygons_rle(polys, h, w) == mask_to_rle(polygons_mask(polys, h, w)), (h, w, polys)
    assert polygons_rle([[-5, -5, -1, -5, -1, -1]], 10, 10) == mask_to_rle(np.zeros((10, 10), bool))
    full = [[0, 0, 9, 0, 9, 6, 0, 6]]  # every pixel: runs joined across columns
    assert polygons_rle(full, 7, 10) == mask_to_rle(np.ones((7, 10), bool))
    assert polygons_rle([[0, 0, 9, 0, 9, 6]], 7, 10) == mask_to_rle(polygons_mask([[0, 0, 9, 0, 9, 6]], 7, 10))


def _perturbed(ds, seed, masks):
    """Predictions from real ground truth: shifted copies (boxes and pixels), misses, false positives."""
    from zoo.data.raster import instance_mask

    rng = np.random.default_rng(seed)
    out = []
    for rec in ds.images:
        dets = []
        for inst in rec.instances:
            if inst.ignore or rng.random() < 0.15:
                continue
            dx, dy = (int(v) for v in rng.integers(-6, 7, 2))
            x0, y0, x1, y1 = inst.bbox
            box = (max(0.0, x0 + dx), max(0.0, y0 + dy), min(rec.width, x1 + dx), min(rec.height, y1 + dy))
            m = None
            if masks:
                m = mask_to_rle(np.roll(instance_mask(inst, rec.height, rec.width), (dy, dx), axis=(0, 1)))
            dets.append(Detection(inst.category, float(rng.random()), box, mask=m))
        for _ in range(2):
            box = _box(rng, rec.width, rec.height)
            m = _rle([_polygon(rng, *box)], rec.height, rec.width) if masks else None
            dets.append(Detection(int(rng.integers(len(ds.categories))), float(rng.random()), box, mask=m))
        out.append(InstancePredictions(rec.id, dets))
    return out


@pytest.mark.fixtures
@pytest.mark.parametrize(
    "folder, iou_type",
    [("labelme/instance_segmentation", "segm"), ("labelme/instance_segmentation", "bbox"),
     ("voc/Tony607_object_detection_demo", "bbox")],
)  # fmt: skip
def test_real_annotations_equal_to_pycocotools(real_fixtures, folder, iou_type):
    """Real labelme (group_id parts, __ignore__) and VOC files, read by zoo's readers."""
    from zoo.data.reading import read_dataset

    ds = read_dataset(real_fixtures / folder)
    preds = _perturbed(ds, seed=0, masks=iou_type == "segm")
    metrics = zoo_metrics(ds, preds, iou_type)
    ref = pycocotools_eval(ds, preds, iou_type)
    for name, want in zip(BOX_STATS, ref.stats):
        assert metrics[name] == (None if want == -1 else pytest.approx(want, abs=1e-9)), name
    assert 0.05 < metrics["AP"] < 0.95
    if folder.startswith("labelme"):
        assert any(i.ignore for r in ds.images for i in r.instances)


@pytest.mark.fixtures
def test_real_coco_body_keypoints_get_coco_sigmas(real_fixtures):
    from zoo.data.reading import read_dataset

    ds = read_dataset(real_fixtures / "keypoints/X-AnyLabeling_human_pose")
    sigmas, source = oks_sigmas(ds)
    assert source.startswith("COCO") and sigmas[0] == 0.026 and sigmas[-1] == 0.089
    gt = gt_as_predictions(ds, masks=False)
    assert zoo_metrics(ds, gt, "keypoints")["AP"] == pytest.approx(1.0)


def test_evaluators_compose(tmp_path):
    from zoo.evaluation.base import Evaluators

    ds = random_dataset(30, seed=13)
    preds = random_predictions(ds, seed=14)
    group = Evaluators({"mask": CocoEvaluator(ds, iou_type="segm", box_ap=False), "box": CocoEvaluator(ds, iou_type="bbox")})
    for rec, p in zip(ds.images, preds):
        group.process(rec, p)
    m = group.evaluate()
    assert m["mask"]["AP"] == zoo_metrics(ds, preds, "segm")["AP"]
    assert m["box"]["AP"] == zoo_metrics(ds, preds, "bbox")["AP"]
    assert [p.relative_to(tmp_path).as_posix() for p in group.plot(tmp_path)] == ["mask/pr_curve.png", "box/pr_curve.png"]
    group.reset()
    with pytest.raises(ZooError, match="nothing to evaluate"):
        group.evaluate()


@pytest.mark.parametrize("iou_type", ["bbox", "segm", "keypoints"])
def test_ground_truth_converted_once_scores_as_converted_each_time(iou_type):
    """A GroundTruth handed to several evaluations (zoo compare's runs, a run's epochs) gives
    each the numbers of converting it afresh, and scoring leaves the kept conversion unchanged."""
    import copy

    from zoo.evaluation.coco import GroundTruth

    ds = random_dataset(40, seed=21, keypoints=iou_type == "keypoints")
    truth = GroundTruth(ds)
    truth.coco(iou_type)  # converted here, once ...
    made = copy.deepcopy(truth._coco)
    for seed in (22, 23):
        preds = random_predictions(ds, seed=seed)
        given = CocoEvaluator(ds, iou_type=iou_type, ground_truth=truth, ci95=True)
        for rec, p in zip(ds.images, preds):
            given.process(rec, p)
        assert given.evaluate() == zoo_metrics(ds, preds, iou_type, ci95=True)
        assert truth._coco == made  # ... and scoring left it as made


def test_ground_truth_of_other_images_is_not_used():
    from zoo.evaluation.coco import GroundTruth

    ds = random_dataset(20, seed=24)
    preds = random_predictions(ds, seed=25)
    truth = GroundTruth(ds)
    part = CocoEvaluator(ds, iou_type="segm", ground_truth=truth)
    for rec, p in list(zip(ds.images, preds))[:10]:
        part.process(rec, p)
    sub = dataclasses.replace(ds, images=ds.images[:10])
    assert part.evaluate() == zoo_metrics(sub, preds[:10], "segm") and not truth._coco
    renamed = GroundTruth(dataclasses.replace(ds, categories=[c.upper() for c in CATS]))
    assert not renamed.covers(ds.images, ds.meta()) and GroundTruth(ds).covers(ds.images, ds.meta())


def test_selection_scores_every_epoch_against_one_conversion():
    """A training run scores the same selection images every epoch: the evaluator's first
    conversion is handed back to it for the later ones."""
    from zoo.selection import Selection

    ds = random_dataset(15, seed=26)
    selection = Selection.of(get_task("instance-seg"), ds)
    assert selection.score(gt_as_predictions(ds)) == pytest.approx(1.0)
    truth = selection.ground_truth
    assert truth is not None and list(truth._coco) == [("segm", "zoo")]
    preds = random_predictions(ds, seed=27)
    assert selection.score(preds) == zoo_metrics(ds, preds, "segm")["AP"]
    assert selection.ground_truth is truth
