"""COCO files with the annotations real files hold but zoo cannot train on, scored by
``zoo eval`` and by pycocotools on the very same files: every stat and per-class AP equal
to 1e-9, or both refuse.

pycocotools counts a zero-area box, a box outside the image, an image entry given twice
(one image per id), an image without annotations; it ignores an annotation whose
category_id is not a category; it takes ``iscrowd`` as a bool too; and it raises on a
ground-truth annotation without ``area`` / ``iscrowd`` (KeyError), which zoo fills in by
the rule its ``conventions`` state.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_eval_coco_files import (
    _zoo_eval,
    assert_same_as_pycocotools,
    make_files,
    make_results,
    pycocotools_on_files,
)

from zoo.errors import DataError, ZooError


def _box_rle(bbox, h, w) -> dict:
    from pycocotools import mask as mask_utils

    m = np.zeros((h, w), np.uint8, order="F")
    x, y, bw, bh = (int(v) for v in bbox)
    m[y:y + bh, x:x + bw] = 1
    return {"size": [h, w], "counts": mask_utils.encode(m)["counts"].decode("ascii")}


def _degenerate_file(tmp_path):
    """make_files' ground truth plus what zoo does not train on, in an unsorted category list."""
    gt_path, gt = make_files(tmp_path, n_images=30, seed=11)
    res = make_results(gt, seed=12, masks=True)
    anns, images = gt["annotations"], gt["images"]
    next_id = max(a["id"] for a in anns) + 1
    for k, im in enumerate(images[:12]):
        w, h = im["width"], im["height"]
        x, y = 10.0 + k, 20.0
        if k % 3 == 0:  # a line: zero width, zero area
            bbox, poly = [x, y, 0.0, 30.0], [x, y, x, y + 30, x, y + 15]
        elif k % 3 == 1:  # wholly outside the image: zero area once clipped, not as given
            bbox, poly = [w + 5.0, y, 20.0, 20.0], [w + 5, y, w + 25, y, w + 25, y + 20, w + 5, y + 20]
            res.append({"image_id": im["id"], "category_id": 3, "score": 0.7, "bbox": [w + 6.0, y, 20.0, 20.0],
                        "segmentation": _box_rle([w - 4.0, y, 4.0, 20.0], h, w)})  # its edge, inside
        else:  # zero height, crowd flag given as a bool
            bbox, poly = [x, y, 25.0, 0.0], [x, y, x + 25, y, x + 12, y]
        anns.append({"id": next_id, "image_id": im["id"], "category_id": [1, 3, 18][k % 3],
                     "iscrowd": False if k % 3 == 2 else 0, "bbox": bbox, "area": bbox[2] * bbox[3],
                     "segmentation": [poly]})
        next_id += 1
    for a in anns[::5]:
        a["iscrowd"] = bool(a["iscrowd"])  # True / False, as some exporters write it
    # a category that is not in the file's categories: pycocotools never loads it
    anns.append({**anns[0], "id": next_id, "category_id": 2})
    # an image entry given twice, the same both times: pycocotools keeps one image per id
    images.append(dict(images[3]))
    # negatives: images without annotations, detections on them are false positives
    for k in range(3):
        im = {"id": 90000 + k, "file_name": f"negative_{k}.jpg", "width": 200, "height": 150}
        images.append(im)
        res.append({"image_id": im["id"], "category_id": 44, "score": 0.9, "bbox": [10.0, 10.0, 50.0, 40.0],
                    "segmentation": _box_rle([10.0, 10.0, 50.0, 40.0], 150, 200)})
    gt["categories"] = sorted(gt["categories"], key=lambda c: -c["id"])  # 90, 44, 18, 3, 1
    gt_path.write_text(json.dumps(gt))
    return gt_path, gt, res


@pytest.mark.parametrize("task, iou_type", [("detect", "bbox"), ("instance-seg", "segm")])
def test_annotations_zoo_does_not_train_on_are_scored_as_pycocotools_scores_them(tmp_path, task, iou_type):
    from zoo.data.reading import read_dataset

    gt_path, gt, res = _degenerate_file(tmp_path)
    metrics, pred = _zoo_eval(task, gt_path, res, tmp_path)
    ref = pycocotools_on_files(gt_path, pred, iou_type)
    assert_same_as_pycocotools(metrics, ref, gt)
    assert 0.1 < metrics["AP"] < 0.95
    # the zero-area ones are scored, never trained on: set apart, each with a warning
    ds = read_dataset(gt_path)
    scored_only = [i for r in ds.images for i in r.scored_only]
    assert len(scored_only) == 12 and all(not r.scored_only or r.file is None for r in ds.images)
    assert sum("zero area; not trained on, kept for scoring" in w.reason for w in ds.warnings) == 12
    assert sum("repeats image id" in w.reason for w in ds.warnings) == 1
    assert len(ds.images) == 33  # 30 + 3 negatives; the repeated entry is one image


def test_a_line_outscores_nothing_it_lowers_recall(tmp_path):
    """The effect pycocotools gives a zero-area ground truth: unmatched, it lowers recall."""
    gt_path, gt = make_files(tmp_path, n_images=6, seed=13)
    perfect = [{"image_id": a["image_id"], "category_id": a["category_id"], "score": 0.9, "bbox": a["bbox"]}
               for a in gt["annotations"] if not a["iscrowd"]]
    full, _ = _zoo_eval("detect", gt_path, perfect, tmp_path)
    im = gt["images"][0]
    gt["annotations"].append({"id": 10**6, "image_id": im["id"], "category_id": 1, "iscrowd": 0,
                              "bbox": [5.0, 5.0, 0.0, 10.0], "area": 0.0, "segmentation": [[5, 5, 5, 15, 5, 10]]})
    gt_path.write_text(json.dumps(gt))
    lowered, pred = _zoo_eval("detect", gt_path, perfect, tmp_path)
    assert full["AR100"] == 1.0 and lowered["AR100"] < 1.0
    assert_same_as_pycocotools(lowered, pycocotools_on_files(gt_path, pred, "bbox"), gt)


@pytest.mark.parametrize("task, iou_type", [("detect", "bbox"), ("instance-seg", "segm")])
def test_missing_area_and_iscrowd_are_filled_by_the_stated_rule(tmp_path, task, iou_type):
    """pycocotools raises KeyError on a ground truth without area / iscrowd; zoo fills them
    (iscrowd 0, area the polygon's shoelace area) and says so: pycocotools on the file with
    those values written in gives zoo's numbers."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_path, gt = make_files(tmp_path, n_images=20, seed=14)
    res = make_results(gt, seed=15, masks=True)
    stripped = json.loads(json.dumps(gt))
    for a in stripped["annotations"]:
        if not a["iscrowd"]:
            del a["area"], a["iscrowd"]
    gt_path.write_text(json.dumps(stripped))
    metrics, pred = _zoo_eval(task, gt_path, res, tmp_path)
    with pytest.raises(KeyError):  # pycocotools itself cannot score the file
        ev = COCOeval(COCO(str(gt_path)), COCO(str(gt_path)).loadRes(str(pred)), iou_type)
        ev.evaluate()
    for a in gt["annotations"]:
        if not a["iscrowd"]:
            xs, ys = np.array(a["segmentation"][0][0::2]), np.array(a["segmentation"][0][1::2])
            a["area"] = float(abs(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1))) / 2)
    filled = tmp_path / "filled.json"
    filled.write_text(json.dumps(gt))
    assert_same_as_pycocotools(metrics, pycocotools_on_files(filled, pred, iou_type), gt)
    assert "area" in metrics["conventions"]["ground_truth"] and "shoelace" in metrics["conventions"]["ground_truth"]


def test_an_annotation_without_bbox_or_segmentation_is_refused_as_pycocotools_refuses_it(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from zoo.data.reading import read_dataset

    gt_path, gt = make_files(tmp_path, n_images=6, seed=16)
    res = make_results(gt, seed=17)
    gt["annotations"].append({"id": 10**6, "image_id": gt["images"][1]["id"], "category_id": 3, "iscrowd": 0,
                              "area": 50.0})
    gt_path.write_text(json.dumps(gt))
    with pytest.raises(ZooError, match="has no bbox and no segmentation; pycocotools cannot score it"):
        _zoo_eval("detect", gt_path, res, tmp_path)
    pred = tmp_path / "results.json"
    with pytest.raises(KeyError, match="bbox"):
        ev = COCOeval(COCO(str(gt_path)), COCO(str(gt_path)).loadRes(str(pred)), "bbox")
        ev.evaluate()
    ds = read_dataset(gt_path)  # still readable to train on: the annotation is set apart
    assert sum(len(r.scored_only) for r in ds.images) == 1
    assert any("not trained on, and scoring it is refused" in w.reason for w in ds.warnings)


def test_an_image_id_or_file_name_given_twice_differently_is_refused(tmp_path):
    """pycocotools keeps one image per id (the last entry) and one per id, whatever its
    file_name; zoo keeps one image per file: where the two differ, zoo refuses."""
    from zoo.data.reading import read_dataset

    gt_path, gt = make_files(tmp_path, n_images=6, seed=18)
    other_size = json.loads(json.dumps(gt))
    other_size["images"].append({**gt["images"][2], "width": gt["images"][2]["width"] + 1})
    gt_path.write_text(json.dumps(other_size))
    with pytest.raises(DataError, match="repeats image id .* with another file_name or size"):
        read_dataset(gt_path)
    same_name = json.loads(json.dumps(gt))
    same_name["images"][4]["file_name"] = gt["images"][1]["file_name"]
    gt_path.write_text(json.dumps(same_name))
    with pytest.raises(DataError, match="has the file_name .* of image id"):
        read_dataset(gt_path)


def test_zero_area_keypoint_annotations_score_as_pycocotools(tmp_path):
    """A labelled person of zero area (OKS divides by area) and one with no labelled point
    (pycocotools ignores it), kept as given."""
    from test_eval_coco_files import KEYPOINTS

    from zoo.evaluation.coco import KEYPOINT_STATS

    gt_path, gt = make_files(tmp_path, n_images=30, seed=19, keypoints=True)
    res = make_results(gt, seed=20, bbox=False, keypoints=True)
    for k, im in enumerate(gt["images"][:8]):
        x, y = 12.0 + k, 30.0
        kp = [0] * (3 * len(KEYPOINTS))
        if k % 2 == 0:
            kp[0:3], kp[3:6] = [x, y, 2], [x, y + 9, 1]
        gt["annotations"].append({"id": 10**6 + k, "image_id": im["id"], "category_id": 1, "iscrowd": 0,
                                  "bbox": [x, y, 0.0, 9.0], "area": 0.0, "keypoints": kp,
                                  "num_keypoints": sum(v > 0 for v in kp[2::3]),
                                  "segmentation": [[x, y, x, y + 9, x, y + 4]]})
        res.append({"image_id": im["id"], "category_id": 1, "score": 0.8,
                    "keypoints": [v + (0.5 if j % 3 < 2 else 0) for j, v in enumerate(kp)]})
    gt_path.write_text(json.dumps(gt))
    metrics, pred = _zoo_eval("keypoint", gt_path, res, tmp_path)
    assert_same_as_pycocotools(metrics, pycocotools_on_files(gt_path, pred, "keypoints"), gt, KEYPOINT_STATS)
    assert 0.1 < metrics["AP"] < 0.95
