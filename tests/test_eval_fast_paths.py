"""The evaluator's fast paths equal the slow ones they replace, value for value.

* ``zoo.data.raster.rasterise_polygons_rles`` (batched) == ``mask_to_rle(polygons_mask(...))``;
* ``zoo.data.raster.rle_areas`` == ``rle_area`` one by one;
* ``to_coco`` (areas and ignored regions batched) == a per-instance reference built from
  ``annotation_geometry`` and ``instance_mask``;
* ``scoring_results`` == ``detection_to_coco`` + faster-coco-eval's ``loadRes``;
* the batched IoU step == ``COCOeval_faster.computeIoU``, matrix for matrix, bit for bit.
"""

from __future__ import annotations

import copy
import gc

import numpy as np
import pytest
from test_eval_coco import CATS, _rle, random_dataset, random_predictions

from zoo.data import raster
from zoo.evaluation.ground_truth import annotation_geometry, to_coco
from zoo.dataset import Dataset, ImageRecord, Instance
from zoo.evaluation.batched_cocoeval import batched_cocoeval
from zoo.evaluation.coco import evaluation_ground_truth, gc_paused, scoring_results
from zoo.evaluation.results import default_image_ids, detection_to_coco
from zoo.predictions import Detection, InstancePredictions


def _random_items(rng, n):
    items = []
    for _ in range(n):
        h, w = (int(v) for v in rng.integers(1, 120, 2))
        polys = [
            [float(v) for v in rng.uniform(-10, max(h, w) + 10, int(rng.integers(2, 12)) * 2)]
            for _ in range(int(rng.integers(1, 3)))
        ]
        items.append((polys, h, w))
    return items


def test_rasterise_polygons_rles_is_the_rasteriser_pixel_for_pixel():
    rng = np.random.default_rng(5)
    items = _random_items(rng, 600) + [
        ([[-5, -5, -1, -5, -1, -1]], 10, 10),  # wholly outside: no pixels
        ([[0, 0, 9, 0, 9, 6, 0, 6]], 7, 10),  # every pixel: one run across all columns
        ([[0, 0, 9, 0, 9, 6]], 7, 10),  # reaches the last pixel
        ([[2, 2, 6, 5]], 7, 10),  # 2 points: a line
        ([], 4, 4),  # nothing at all
        ([[0.5, 0.5, 3.5, 0.5, 3.5, 3.5], [1, 1, 2, 1, 2, 2]], 5, 5),  # two parts OR-ed
    ]
    expected = [raster.mask_to_rle(raster.polygons_mask(p, h, w)) for p, h, w in items]
    assert raster.rasterise_polygons_rles(items) == expected
    assert raster.rasterise_polygons_rles(items[:1]) == expected[:1]
    assert raster.rasterise_polygons_rles([]) == []


def test_rle_areas_equal_rle_area_one_by_one():
    rng = np.random.default_rng(1)
    rles = [raster.mask_to_rle(rng.random((int(rng.integers(1, 30)), 17)) > 0.5) for _ in range(600)]
    rles.append({"size": [3, 4], "counts": [2, 5, 5]})  # uncompressed counts
    assert raster.rle_areas(rles) == [raster.rle_area(r) for r in rles]  # more than 255 RLEs at once
    assert raster.rle_areas([]) == []


def _reference_to_coco_annotations(ds: Dataset, geometry: str) -> list[dict]:
    """to_coco's annotation rules, one instance at a time through the slow functions."""
    anns = []
    for image_id, rec in enumerate(ds.images, start=1):
        for inst in rec.instances:
            area, bbox = annotation_geometry(inst, rec, geometry)
            if inst.ignore:
                seg = inst.mask or raster.mask_to_rle(raster.instance_mask(inst, rec.height, rec.width))
                if geometry != "pixels" and inst.mask is None:
                    area = raster.rle_area(seg)
                for c in range(len(ds.categories)) if inst.category < 0 else [inst.category]:
                    anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": c + 1, "bbox": bbox,
                                 "area": area, "iscrowd": 1, "segmentation": seg})
                continue
            seg = inst.polygons or inst.mask or [[bbox[0], bbox[1], inst.bbox[2], bbox[1], inst.bbox[2],
                                                  inst.bbox[3], bbox[0], inst.bbox[3]]]
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": inst.category + 1,
                         "bbox": bbox, "area": area, "iscrowd": 0, "segmentation": seg})
    return anns


@pytest.mark.parametrize("geometry", ["exact", "pixels"])
def test_to_coco_batched_equals_instance_by_instance(geometry):
    ds = random_dataset(60, seed=3)
    rec = ds.images[0]
    rec.instances += [
        Instance(1, (2.0, 3.0, 20.5, 30.0)),  # box only
        Instance(0, (2.0, 3.0, 20.5, 30.0), ignore=True),  # ignored box
        Instance(-1, (5.0, 5.0, 15.0, 15.0), ignore=True, polygons=[[5, 5, 15, 5, 15, 15]]),  # every category
        Instance(2, (1.0, 1.0, 4.0, 3.0), mask={"size": [rec.height, rec.width],
                                                    "counts": [rec.height + 1, 2, rec.height * rec.width - rec.height - 3]}),
    ]
    assert to_coco(ds, geometry=geometry)["annotations"] == _reference_to_coco_annotations(ds, geometry)


@pytest.mark.parametrize("iou_type", ["bbox", "segm", "keypoints"])
def test_scoring_results_are_detection_to_coco_then_load_res(iou_type):
    from faster_coco_eval import COCO

    ds = random_dataset(30, seed=4, keypoints=iou_type == "keypoints")
    preds = random_predictions(ds, seed=5, masks=iou_type == "segm")
    if iou_type == "segm":  # mask-less detections get their box as a polygon; bytes counts become str
        preds[0].detections.append(Detection(1, 0.5, (3.25, 4.5, 17.0, 20.125)))
        m = preds[1].detections[-1].mask
        preds[1].detections[-1].mask = {"size": m["size"], "counts": m["counts"].encode("ascii")}
    ids = default_image_ids(ds)
    plain = [detection_to_coco(d, ids[p.image_id]) for p in preds for d in p.detections]
    loaded = COCO(evaluation_ground_truth(ds, iou_type)).loadRes(plain).dataset["annotations"]
    if iou_type != "segm":  # loadRes also gives every box a polygon, which only segm reads
        for a in loaded:
            assert a.pop("segmentation") == [[a["bbox"][0], a["bbox"][1], a["bbox"][0], a["bbox"][1] + a["bbox"][3],
                                              a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3],
                                              a["bbox"][0] + a["bbox"][2], a["bbox"][1]]]
    assert scoring_results(preds, ids, iou_type) == loaded


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_batched_ious_are_compute_iou_bit_for_bit(iou_type):
    from faster_coco_eval import COCO, COCOeval_faster

    ds = random_dataset(120, seed=6, max_objects=10)
    preds = random_predictions(ds, seed=7, masks=True, max_fp=6)
    for p in preds[::7]:  # equal scores: the stable order decides
        for d in p.detections:
            d.score = 0.5
    gt = evaluation_ground_truth(ds, iou_type)
    results = scoring_results(preds, default_image_ids(ds), iou_type)
    coco_gt = COCO(gt)
    coco_dt = coco_gt.loadRes(copy.deepcopy(results))
    quiet = {"print_function": lambda *a: None}
    ref, fast = COCOeval_faster(coco_gt, coco_dt, iou_type, **quiet), batched_cocoeval()(coco_gt, coco_dt, iou_type, **quiet)
    for ev in (ref, fast):
        ev.params.maxDets = [1, 2, 3]  # detections beyond maxDets[-1] are cut from the matrices
        ev._prepare()
    pairs = {(a["image_id"], a["category_id"]) for a in gt["annotations"] + results}
    compared = 0
    for pair in pairs:
        a, b = ref.computeIoU(*pair), fast.computeIoU(*pair)
        if len(a) == 0:
            assert len(b) == 0, pair
            continue
        assert np.asarray(b).shape == np.asarray(a).shape and np.array_equal(np.asarray(b), np.asarray(a)), pair
        compared += 1
    assert compared > 100


def test_gc_paused_restores_the_collector():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_box_only_detection_in_segm_is_scored_as_its_box():
    """loadRes's rule kept: a detection without a mask is its box in segm (the same as before)."""
    ds = Dataset(categories=list(CATS), images=[ImageRecord("a", 50, 50, instances=[
        Instance(0, (10, 10, 30, 30), polygons=[[10, 10, 30, 10, 30, 30, 10, 30]])])])
    from zoo.evaluation.coco import CocoEvaluator

    ev = CocoEvaluator(ds, iou_type="segm")
    ev.process(ds.images[0], InstancePredictions("a", [Detection(0, 0.9, (10, 10, 30, 30))]))
    m = ev.evaluate()
    assert 0 < m["AP"] < 1  # the box polygon (pycocotools' fill) misses the outline pixels zoo counts


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_batched_evaluation_equals_faster_coco_eval_on_a_subset_of_images_and_categories(iou_type):
    """params.imgIds / catIds narrowed: the batched _prepare keeps exactly what getAnnIds keeps."""
    from faster_coco_eval import COCO, COCOeval_faster

    ds = random_dataset(80, seed=8)
    preds = random_predictions(ds, seed=9, masks=True)
    gt = evaluation_ground_truth(ds, iou_type)
    results = scoring_results(preds, default_image_ids(ds), iou_type)
    stats = []
    for cls in (COCOeval_faster, batched_cocoeval()):
        coco_gt = COCO(copy.deepcopy(gt))
        ev = cls(coco_gt, coco_gt.loadRes(copy.deepcopy(results)), iou_type, print_function=lambda *a: None)
        ev.params.imgIds = list(range(1, 81, 3))
        ev.params.catIds = [1, 3]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        stats.append(np.asarray(ev.stats))
    assert np.array_equal(stats[0], stats[1]) and stats[0][0] > 0


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_run_cocoeval_without_annotation_index_equals_load_res(iou_type):
    """loaded=True skips faster-coco-eval's annotation index (images and categories only):
    the same evaluation, array for array, as COCO(gt) + loadRes."""
    from zoo.evaluation.coco import run_cocoeval

    ds = random_dataset(60, seed=10)
    preds = random_predictions(ds, seed=11, masks=True)
    gt = evaluation_ground_truth(ds, iou_type)
    ids = default_image_ids(ds)
    plain = [detection_to_coco(d, ids[p.image_id]) for p in preds for d in p.detections]
    ref = run_cocoeval(copy.deepcopy(gt), plain, iou_type)
    fast = run_cocoeval(copy.deepcopy(gt), scoring_results(preds, ids, iou_type), iou_type, loaded=True)
    assert getattr(fast.cocoDt, "_zoo_images_only", False) and not fast.cocoDt.anns
    for key in ("precision", "recall", "scores"):
        assert np.array_equal(ref.eval[key], fast.eval[key]), key
    assert ref.eval["precision"].max() > 0


def test_images_only_coco_gets_its_full_index_on_the_fallback_path():
    """Any _prepare other than the batched one (here: useCats=0) indexes the annotations first."""
    from faster_coco_eval import COCO, COCOeval_faster

    from zoo.evaluation.batched_cocoeval import images_only_coco

    ds = random_dataset(30, seed=12)
    preds = random_predictions(ds, seed=13)
    gt = evaluation_ground_truth(ds, "bbox")
    results = scoring_results(preds, default_image_ids(ds), "bbox")
    stats = []
    for light in (False, True):
        g = copy.deepcopy(gt)
        dt = {"images": list(g["images"]), "annotations": copy.deepcopy(results),
              "categories": copy.deepcopy(g["categories"])}
        coco_gt, coco_dt = (images_only_coco(g), images_only_coco(dt)) if light else (COCO(g), COCO(dt))
        cls = batched_cocoeval() if light else COCOeval_faster
        ev = cls(coco_gt, coco_dt, "bbox", print_function=lambda *a: None)
        ev.params.useCats = 0
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        stats.append(np.asarray(ev.stats))
    assert np.array_equal(stats[0], stats[1]) and stats[0][0] > 0


def test_rasteriser_shared_canvas_leaves_nothing_behind():
    """rasterise_polygons_rles draws every shape of one image size on one canvas and wipes
    it after each: thousands of random shapes in a row on a few image sizes (crossing the
    edges, overlapping, several parts, 2-point lines, far outside) are each the pixels of
    their own full-image polygons_mask."""
    rng = np.random.default_rng(21)
    items = []
    for _ in range(60):  # 60 images, ~40 shapes each, consecutive
        h, w = (int(v) for v in rng.integers(1, 160, 2))
        for _ in range(int(rng.integers(1, 80))):
            polys = []
            for _ in range(int(rng.integers(1, 4))):
                cx, cy = rng.uniform(-20, w + 20), rng.uniform(-20, h + 20)
                r = rng.uniform(0.2, max(h, w) / 2)
                n = int(rng.integers(2, 14))
                polys.append([float(v) for v in np.column_stack(
                    (cx + rng.uniform(-r, r, n), cy + rng.uniform(-r, r, n))).ravel()])
            items.append((polys, h, w))
    items.append(([[-300.0, -300.0, -250.0, -300.0, -250.0, -250.0]], 20, 30))  # wholly outside
    items.append(([[0.0, 0.0, 29.0, 0.0, 29.0, 19.0, 0.0, 19.0]], 20, 30))  # the whole image
    items.append(([[3.0, 3.0, 4.0, 4.0]], 20, 30))  # a line, right after the whole image
    assert len(items) > 2000
    expected = [raster.mask_to_rle(raster.polygons_mask(p, h, w)) for p, h, w in items]
    assert raster.rasterise_polygons_rles(items) == expected


def test_box_ground_truth_without_rasterised_ignored_regions_scores_the_same():
    """evaluation_ground_truth(..., "bbox") keeps ignored polygons as polygons (no pixels, the
    shoelace area): pycocotools gives the same 12 stats as on to_coco's full dict."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ds = random_dataset(120, seed=14)
    preds = random_predictions(ds, seed=15)
    light, full = evaluation_ground_truth(ds, "bbox"), to_coco(ds)
    crowd_polys = [a for a in light["annotations"] if a["iscrowd"] and isinstance(a["segmentation"], list)]
    assert crowd_polys  # the case under test is there
    assert [{k: v for k, v in a.items() if k not in ("segmentation", "area")} for a in light["annotations"]] == \
        [{k: v for k, v in a.items() if k not in ("segmentation", "area")} for a in full["annotations"]]
    assert all(a == b for a, b in zip(light["annotations"], full["annotations"]) if not a["iscrowd"])
    ids = default_image_ids(ds)
    results = [detection_to_coco(d, ids[p.image_id]) for p in preds for d in p.detections]
    stats = []
    for gt in (light, full):
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO()
            coco.dataset = copy.deepcopy(gt)
            coco.createIndex()
            ev = COCOeval(coco, coco.loadRes(copy.deepcopy(results)), "bbox")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        stats.append(ev.stats)
    assert np.array_equal(stats[0], stats[1]) and stats[0][0] > 0
