"""COCO files written the way real ones are, scored by ``zoo eval`` and by pycocotools on the
very same files: every stat and every per-class AP equal to 1e-9.

The files: non-contiguous category ids (COCO's 1..90 with gaps), image ids that are not
1..N, no image files anywhere, crowd regions as uncompressed RLE (``counts`` a list, as in
COCO's own files), ``area`` values that differ from the polygon area (COCO's areas are the
pixel counts of the original masks), a 17-point person skeleton whose results carry no
bbox, segm results with counts as strings and as lists, and with and without a bbox.
"""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest
from flat_options import run_options

from zoo.pipeline.evaluate import evaluate_files
from zoo.evaluation.coco import BOX_STATS, COCO_SIGMAS, KEYPOINT_STATS
from zoo.errors import ZooError

CATEGORIES = {1: "person", 3: "car", 18: "dog", 44: "bottle", 90: "toothbrush"}
KEYPOINTS = list(COCO_SIGMAS)  # the 17 COCO body points, in COCO's order


def _polygon(rng, x0, y0, x1, y1) -> list[float]:
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    n = int(rng.integers(5, 12))
    ang = np.sort(rng.uniform(0, 2 * math.pi, n))
    r = rng.uniform(0.55, 1.0, n)
    return [round(float(v), 2) for a, k in zip(ang, r) for v in (cx + k * rx * math.cos(a), cy + k * ry * math.sin(a))]


def _box(rng, w, h):
    bw, bh = rng.uniform(4, w * 0.6), rng.uniform(4, h * 0.6)
    x0, y0 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
    return float(x0), float(y0), float(x0 + bw), float(y0 + bh)


def _uncompressed_rle(polys, h, w) -> dict:
    """COCO's crowd format: column-major run lengths as a plain list."""
    from pycocotools import mask as mask_utils

    m = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, h, w)))
    flat = m.flatten(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0, *counts]
    return {"size": [h, w], "counts": counts}


def _rle_str(polys, h, w) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
    return {"size": [h, w], "counts": rle["counts"].decode("ascii")}


def make_files(tmp_path, n_images=40, seed=0, keypoints=False):
    """A COCO ground-truth file like a real one, and its images' (id, w, h, annotations)."""
    rng = np.random.default_rng(seed)
    cats = {1: "person"} if keypoints else CATEGORIES
    images, anns = [], []
    for k in range(n_images):
        image_id = int(1000 + 37 * k + rng.integers(0, 30))  # neither 1..N nor in order
        w, h = int(rng.integers(120, 400)), int(rng.integers(120, 400))
        images.append({"id": image_id, "file_name": f"{image_id:012d}.jpg", "width": w, "height": h})
        for _ in range(int(rng.integers(0 if k % 7 == 0 else 1, 7))):
            box = _box(rng, w, h)
            poly = _polygon(rng, *box)
            xs, ys = poly[0::2], poly[1::2]
            bbox = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
            crowd = rng.random() < 0.12
            a = {"id": len(anns) + 1, "image_id": image_id, "category_id": int(rng.choice(list(cats))),
                 "iscrowd": int(crowd), "bbox": bbox,
                 # not the polygon's area: COCO's areas are the original masks' pixel counts
                 "area": float(bbox[2] * bbox[3] * rng.uniform(0.3, 0.9)),
                 "segmentation": _uncompressed_rle([poly], h, w) if crowd else [poly]}
            if keypoints:
                kp = []
                for _j in KEYPOINTS:
                    v = int(rng.choice([0, 1, 2], p=[0.25, 0.2, 0.55]))
                    x, y = (rng.uniform(box[0], box[2]), rng.uniform(box[1], box[3])) if v else (0, 0)
                    kp += [round(float(x), 2), round(float(y), 2), v]
                a["keypoints"] = kp
                a["num_keypoints"] = sum(1 for v in kp[2::3] if v > 0)
            anns.append(a)
    categories = [{"id": cid, "name": name, "supercategory": "thing"} for cid, name in cats.items()]
    if keypoints:
        categories[0].update(keypoints=KEYPOINTS, skeleton=[[16, 14], [14, 12], [17, 15], [15, 13], [12, 13]])
    gt = {"info": {}, "licenses": [], "images": images, "annotations": anns, "categories": categories}
    path = tmp_path / ("person_keypoints_val.json" if keypoints else "instances_val.json")
    path.write_text(json.dumps(gt))
    return path, gt


def make_results(gt, seed=1, *, masks=False, bbox=True, list_counts=False, keypoints=False) -> list[dict]:
    """Results like a model's: jittered copies (some with the wrong class), misses, false positives."""
    rng = np.random.default_rng(seed)
    size = {im["id"]: (im["height"], im["width"]) for im in gt["images"]}
    cat_ids = [c["id"] for c in gt["categories"]]
    out = []

    def add(image_id, cat, box, poly, gt_kp=None):
        h, w = size[image_id]
        r = {"image_id": image_id, "category_id": cat, "score": round(float(rng.random()), 4)}
        if bbox:
            r["bbox"] = [box[0], box[1], box[2] - box[0], box[3] - box[1]]
        if masks:
            r["segmentation"] = (_uncompressed_rle if list_counts and rng.random() < 0.5 else _rle_str)([poly], h, w)
        if keypoints:
            kp = []
            for j in range(len(KEYPOINTS)):
                if gt_kp is not None and gt_kp[3 * j + 2] > 0:  # the labelled point, a few pixels off
                    x, y = gt_kp[3 * j] + rng.normal(0, 2), gt_kp[3 * j + 1] + rng.normal(0, 2)
                else:
                    x, y = rng.uniform(box[0], box[2]), rng.uniform(box[1], box[3])
                kp += [round(float(x), 2), round(float(y), 2), 1.0]
            r["keypoints"] = kp
        out.append(r)

    for a in gt["annotations"]:
        if rng.random() < 0.15:
            continue
        h, w = size[a["image_id"]]
        x, y, bw, bh = a["bbox"]
        dx, dy = rng.uniform(-4, 4, 2)
        box = (max(0.0, x + dx), max(0.0, y + dy), min(w, x + bw + dx), min(h, y + bh + dy))
        cat = a["category_id"] if rng.random() < 0.85 else int(rng.choice(cat_ids))
        poly = a["segmentation"][0] if isinstance(a["segmentation"], list) else _polygon(rng, *box)
        poly = [v + (dx if i % 2 == 0 else dy) for i, v in enumerate(poly)]
        add(a["image_id"], cat, box, poly, a.get("keypoints"))
    for im in gt["images"]:
        for _ in range(2):
            box = _box(rng, im["width"], im["height"])
            add(im["id"], int(rng.choice(cat_ids)), box, _polygon(rng, *box))
    return out


def pycocotools_on_files(gt_path, res_path, iou_type):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_path))
        ev = COCOeval(coco_gt, coco_gt.loadRes(str(res_path)), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def assert_same_as_pycocotools(metrics, ref, gt, names=BOX_STATS, tol=1e-9):
    for name, want in zip(names, ref.stats):
        assert metrics[name] == (None if want == -1 else pytest.approx(want, abs=tol)), name
    prec = ref.eval["precision"]
    for k, cid in enumerate(ref.params.catIds):
        p = prec[:, :, k, 0, -1]
        want = float(p[p > -1].mean()) if (p > -1).any() else None
        name = next(c["name"] for c in gt["categories"] if c["id"] == cid)
        got = metrics["per_class"][name]
        got = got["AP"] if isinstance(got, dict) else got  # "bbox" of masks: {name: AP}
        assert (got is None) if want is None else got == pytest.approx(want, abs=tol), name


def _zoo_eval(task, gt_path, res, tmp_path):
    pred = tmp_path / "results.json"
    pred.write_text(json.dumps(res))
    with contextlib.redirect_stdout(io.StringIO()):
        return evaluate_files(task, gt_path, pred, tmp_path / "metrics.json"), pred


@pytest.mark.parametrize(
    "task, iou_type, options",
    [("detect", "bbox", {}),
     ("instance-seg", "segm", {"masks": True, "list_counts": True}),
     ("instance-seg", "segm", {"masks": True, "bbox": False})],
    ids=["bbox", "segm-list-counts", "segm-without-bbox"],
)  # fmt: skip
def test_coco_files_score_as_pycocotools_scores_them(tmp_path, task, iou_type, options):
    gt_path, gt = make_files(tmp_path, seed=3)
    metrics, pred = _zoo_eval(task, gt_path, make_results(gt, seed=4, **options), tmp_path)
    ref = pycocotools_on_files(gt_path, pred, iou_type)
    assert_same_as_pycocotools(metrics, ref, gt)
    assert 0.1 < metrics["AP"] < 0.95  # a real mix of hits and misses, not a degenerate case
    if iou_type == "segm":
        box_ref = pycocotools_on_files(gt_path, pred, "bbox") if options.get("bbox", True) else None
        if box_ref is not None:
            assert_same_as_pycocotools(metrics["bbox"], box_ref, gt)
        assert "pycocotools" in metrics["conventions"]["polygon_raster"]
    assert "as given" in metrics["conventions"]["ground_truth"]


def test_keypoint_results_without_bbox_score_as_pycocotools(tmp_path):
    gt_path, gt = make_files(tmp_path, n_images=60, seed=5, keypoints=True)
    res = make_results(gt, seed=6, bbox=False, keypoints=True)
    metrics, pred = _zoo_eval("keypoint", gt_path, res, tmp_path)
    ref = pycocotools_on_files(gt_path, pred, "keypoints")
    assert_same_as_pycocotools(metrics, ref, gt, KEYPOINT_STATS)
    assert 0.1 < metrics["AP"] < 0.95
    assert metrics["conventions"]["oks_sigmas"] == COCO_SIGMAS


def test_result_with_an_unknown_category_id_or_image_is_an_error(tmp_path):
    gt_path, gt = make_files(tmp_path, n_images=5, seed=7)
    res = make_results(gt, seed=8)
    res[3]["category_id"] = 2  # between 1 and 3: not one of the file's ids
    with pytest.raises(ZooError, match="category_id 2 is not a category of the ground truth"):
        _zoo_eval("detect", gt_path, res, tmp_path)
    res[3]["category_id"], res[4]["image_id"] = 3, 999999
    with pytest.raises(ZooError, match="image_id 999999 matches no ground-truth image"):
        _zoo_eval("detect", gt_path, res, tmp_path)


def test_empty_result_list_scores_zero(tmp_path):
    gt_path, gt = make_files(tmp_path, n_images=8, seed=9)
    metrics, _ = _zoo_eval("detect", gt_path, [], tmp_path)
    assert metrics["AP"] == 0.0 and metrics["detections"] == 0


def test_ground_truth_file_is_not_rederived(tmp_path):
    """The reader keeps each annotation as given; zoo's own COCO dict of the dataset writes
    the file's area, crowd RLE and ids back unchanged."""
    from zoo.evaluation.ground_truth import to_coco
    from zoo.data.reading import read_dataset

    gt_path, gt = make_files(tmp_path, n_images=12, seed=10)
    ds = read_dataset(gt_path)
    assert ds.coco_category_ids() == sorted(CATEGORIES) and all(r.file is None for r in ds.images)
    assert any("kept for scoring" in w.reason for w in ds.warnings)
    out = to_coco(ds)
    assert [c["id"] for c in out["categories"]] == sorted(CATEGORIES)
    fields = ("category_id", "bbox", "area", "iscrowd", "segmentation")
    assert [[a[k] for k in fields] for a in out["annotations"]] == [[a[k] for k in fields] for a in gt["annotations"]]


def _jittered_ground_truth(dataset, seed):
    """A Toy.predict that returns each image's ground truth a few pixels off (masks and
    keypoints moved with the box), misses some, adds a false positive: a real mix of scores."""
    from zoo.predictions import Detection, InstancePredictions
    from zoo.data.raster import instance_mask, mask_to_rle

    truth = {r.id: r for r in dataset.images}
    rng = np.random.default_rng(seed)

    def predict(self, images):
        for r in images:
            gt, dets = truth[r.id], []
            for inst in gt.instances:
                if inst.ignore or inst.category < 0 or rng.random() < 0.15:
                    continue
                dx, dy = (int(v) for v in rng.integers(-3, 4, 2))
                x0, y0, x1, y1 = inst.bbox
                box = (max(0.0, x0 + dx), max(0.0, y0 + dy), min(r.width, x1 + dx), min(r.height, y1 + dy))
                mask = mask_to_rle(np.roll(instance_mask(inst, r.height, r.width), (dy, dx), axis=(0, 1)))
                kps = [(x + dx, y + dy, 1.0) for x, y, _ in inst.keypoints] if inst.keypoints else None
                dets.append(Detection(inst.category, float(rng.random()), box, mask=mask, keypoints=kps))
            box = _box(rng, r.width, r.height)
            k = len(self.meta.keypoint_names)
            dets.append(Detection(0, float(rng.random()), box, keypoints=[(box[0], box[1], 0.5)] * k if k else None,
                                  mask=mask_to_rle(np.ones((r.height, r.width), bool))))
            yield InstancePredictions(r.id, dets)

    return predict


@pytest.mark.fixtures
@pytest.mark.parametrize(
    "task, folder",
    [("detect", "labelme/instance_segmentation"), ("instance-seg", "labelme/instance_segmentation"),
     ("keypoint", None)],
)  # fmt: skip
def test_a_runs_own_files_reproduce_its_metrics(tmp_path, real_fixtures, monkeypatch, task, folder):
    """pycocotools on data/val_coco.json + predictions/coco_results.json gives metrics.json
    (labelme polygons: the val_coco.json holds zoo's pixels as RLE; keypoints: the sigmas
    metrics.json states)."""
    import toy_backend

    from zoo.data.reading import read_dataset
    from zoo.pipeline.run import execute

    data = read_dataset(real_fixtures / folder) if folder else toy_backend.make_dataset(tmp_path / "d", n=16)
    monkeypatch.setattr(toy_backend.Toy, "predict", _jittered_ground_truth(data, seed=2))
    result = execute(run_options(task=task, backend="toy", registry=toy_backend.registry(), quiet=True,
                                 dataset=data, val=0.67, flags={"device": "cpu"}, out=tmp_path / "runs"))
    run, metrics = result.run_dir, result.metrics
    iou_type = {"detect": "bbox", "instance-seg": "segm", "keypoint": "keypoints"}[task]
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(run / "data/val_coco.json"))
        ev = COCOeval(coco_gt, coco_gt.loadRes(str(run / "predictions/coco_results.json")), iou_type)
        if task == "keypoint":
            ev.params.kpt_oks_sigmas = np.array(list(metrics["conventions"]["oks_sigmas"].values()))
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    gt = json.loads((run / "data/val_coco.json").read_text())
    assert_same_as_pycocotools(metrics, ev, gt, KEYPOINT_STATS if task == "keypoint" else BOX_STATS)
    assert 0.05 < metrics["AP"] < 0.99


@pytest.mark.fixtures
@pytest.mark.parametrize(
    "folder, task, iou_type",
    [("labelme/instance_segmentation", "instance-seg", "segm"), ("labelme/instance_segmentation", "detect", "bbox"),
     ("keypoints/X-AnyLabeling_human_pose", "keypoint", "keypoints")],
)  # fmt: skip
def test_real_fixtures_as_coco_files_score_as_pycocotools(tmp_path, real_fixtures, folder, task, iou_type):
    """Real annotations written as a COCO file (no images beside it), perturbed results as
    a results file: zoo eval on the two files equals pycocotools on them."""
    from zoo.adapters.coco import write
    from zoo.data.reading import read_dataset

    ds = read_dataset(real_fixtures / folder)
    gt_path = write(ds, tmp_path / "coco", copy_images=False)
    gt = json.loads(gt_path.read_text())
    rng = np.random.default_rng(3)
    res = []
    for a in gt["annotations"]:
        if a["iscrowd"]:
            continue
        x, y, w, h = a["bbox"]
        dx, dy = rng.uniform(-5, 5, 2)
        r = {"image_id": a["image_id"], "category_id": a["category_id"], "score": float(rng.random()),
             "bbox": [x + dx, y + dy, w, h]}
        if iou_type == "segm":
            im = next(i for i in gt["images"] if i["id"] == a["image_id"])
            poly = a["segmentation"] if isinstance(a["segmentation"], list) else [[x, y, x + w, y, x + w, y + h]]
            r["segmentation"] = _rle_str([[v + (dx if k % 2 == 0 else dy) for k, v in enumerate(p)] for p in poly],
                                         im["height"], im["width"])
        if iou_type == "keypoints":
            kp = a["keypoints"]
            r["keypoints"] = [v + (rng.normal(0, 3) if k % 3 < 2 else 0) for k, v in enumerate(kp)]
            del r["bbox"]
        res.append(r)
    metrics, pred = _zoo_eval(task, gt_path, res, tmp_path)
    ref = pycocotools_on_files(gt_path, pred, iou_type)
    assert_same_as_pycocotools(metrics, ref, gt, KEYPOINT_STATS if iou_type == "keypoints" else BOX_STATS)
    assert metrics["AP"] > 0.05
