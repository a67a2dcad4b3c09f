"""Equal scores ranked exactly as pycocotools ranks them.

pycocotools sorts detections by score with a stable mergesort twice: per image and category
in ``evaluateImg`` (ties keep the results file's order) and again in ``accumulate`` over the
per-image lists concatenated in image-id order (ties keep that order). Real results files
round their scores, so ties decide real numbers. Here the ground-truth file lists its images
out of id order, scores are rounded to 1, 2 and 3 decimals, all equal or left as drawn, and
the results are shuffled within equal scores: every stat and per-class AP of ``zoo eval``
equals pycocotools' on the same files to 1e-12, and a bootstrap resample ranks its ties as
pycocotools ranks them on that resample written out as a dataset.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import random

import numpy as np
import pytest
from test_eval_coco import pycocotools_eval, random_dataset, random_predictions
from test_eval_coco_files import _zoo_eval, assert_same_as_pycocotools, make_files, make_results, pycocotools_on_files

from zoo.evaluation import bootstrap
from zoo.evaluation.coco import BOX_STATS, KEYPOINT_STATS, evaluation_ground_truth, run_cocoeval, scoring_results
from zoo.evaluation.results import default_image_ids
from zoo.predictions import InstancePredictions

ROUNDINGS = [1, 2, 3, "equal", "random"]
TASKS = {"bbox": ("detect", {}), "segm": ("instance-seg", {"masks": True}),
         "keypoints": ("keypoint", {"keypoints": True})}


def _rounded(score: float, rounding) -> float:
    if rounding == "equal":
        return 0.5
    return score if rounding == "random" else round(score, rounding)


def _shuffled_within_ties(results: list[dict], seed: int) -> list[dict]:
    """The results with every run of equal scores reordered (by score, then at random)."""
    rng = random.Random(seed)
    keyed = [(r["score"], rng.random(), r) for r in results]
    return [r for *_, r in sorted(keyed, key=lambda k: (k[0], k[1]))]


def _files(tmp_path, iou_type, rounding):
    keypoints = iou_type == "keypoints"
    gt_path, gt = make_files(tmp_path, n_images=40, seed=11, keypoints=keypoints)
    random.Random(0).shuffle(gt["images"])  # listed out of id order, as COCO's own files are
    gt_path.write_text(json.dumps(gt))
    res = make_results(gt, seed=12, **TASKS[iou_type][1])
    random.Random(1).shuffle(res)
    for r in res:
        r["score"] = _rounded(r["score"], rounding)
    return gt_path, gt, res


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("iou_type", list(TASKS))
def test_rounded_scores_rank_as_pycocotools(tmp_path, iou_type, rounding):
    gt_path, gt, res = _files(tmp_path, iou_type, rounding)
    names = KEYPOINT_STATS if iou_type == "keypoints" else BOX_STATS
    if rounding != "random":
        assert len({r["score"] for r in res}) < len(res)  # there are ties to rank
    for order in (res, _shuffled_within_ties(res, 2), _shuffled_within_ties(res, 3)):
        metrics, pred = _zoo_eval(TASKS[iou_type][0], gt_path, order, tmp_path)
        ref = pycocotools_on_files(gt_path, pred, iou_type)
        assert_same_as_pycocotools(metrics, ref, gt, names, tol=1e-12)
        assert 0.05 < metrics["AP"] < 0.95


def test_ties_change_pycocotools_numbers(tmp_path):
    """The case above can fail: reordering equal scores moves pycocotools' AP, so only the
    same ranking gives the same numbers."""
    gt_path, _gt, res = _files(tmp_path, "bbox", 1)
    pred = tmp_path / "r.json"
    aps = set()
    for seed in range(4):
        pred.write_text(json.dumps(_shuffled_within_ties(res, seed)))
        aps.add(round(pycocotools_on_files(gt_path, pred, "bbox").stats[0], 12))
    assert len(aps) > 1


def _copies_side_by_side(ds, preds, weights):
    """A resample as a dataset: image i drawn ``weights[i]`` times, its copies images of their
    own with ids next to each other."""
    images, out = [], []
    for rec, p, w in zip(ds.images, preds, weights):
        for c in range(int(w)):
            images.append(dataclasses.replace(rec, id=f"{rec.id}#{c}"))
            out.append(InstancePredictions(f"{rec.id}#{c}", p.detections))
    return dataclasses.replace(ds, images=images), out


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_bootstrap_resample_with_ties_is_pycocotools_on_that_resample(iou_type):
    """Scores rounded to one decimal, images drawn 0 to 3 times: each resample's AP is
    pycocotools' on the resample written out (an image drawn twice ranks its equal scores copy
    after copy); float32 running sums: to 1e-7."""
    ds = random_dataset(40, seed=31)
    preds = [InstancePredictions(p.image_id, [dataclasses.replace(d, score=round(d.score, 1)) for d in p.detections])
             for p in random_predictions(ds, seed=32)]
    gt = evaluation_ground_truth(ds, iou_type)
    ev = run_cocoeval(gt, scoring_results(preds, default_image_ids(ds), iou_type), iou_type, loaded=True,
                      keep_matching=True)
    matching = bootstrap.coco_matching(ev)
    assert any((cat["tie_size"] > 1).any() for cat in matching)  # runs of equal scores on one image
    weights = np.random.default_rng(5).integers(0, 4, size=(4, len(ds))).astype(float)
    samples = bootstrap.coco_samples(matching, ev.params.recThrs, weights)
    for w, ap, ap50 in zip(weights, samples["AP"], samples["AP50"]):
        with contextlib.redirect_stdout(io.StringIO()):
            ref = pycocotools_eval(*_copies_side_by_side(ds, preds, w), iou_type)
        assert ap == pytest.approx(ref.stats[0], abs=1e-7) and ap50 == pytest.approx(ref.stats[1], abs=1e-7)
