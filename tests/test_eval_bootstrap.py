"""``ci95``: bootstrap intervals over images, re-aggregated from the evaluation's own
per-image results.

The re-aggregation is checked exactly: a resample that draws each image 0 or 1 times is the
evaluation of that subset of images, so its AP must be what faster-coco-eval gives on the
subset. The interval must hold the point estimate and narrow as the same case is repeated.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_eval_coco import random_dataset, random_predictions

from zoo.evaluation import bootstrap, evaluate
from zoo.evaluation.coco import evaluation_ground_truth, run_cocoeval, scoring_results, summary_stats
from zoo.evaluation.results import default_image_ids
from zoo.predictions import ClassPrediction, InstancePredictions, SemanticPrediction


def _coco_ap(ds, preds, iou_type, keep_matching=False):
    gt = evaluation_ground_truth(ds, iou_type)
    return run_cocoeval(gt, scoring_results(preds, default_image_ids(ds), iou_type), iou_type, loaded=True,
                        keep_matching=keep_matching)


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_a_zero_one_resample_is_the_evaluation_of_that_subset(iou_type):
    ds = random_dataset(60, seed=21)
    preds = random_predictions(ds, seed=22)
    ev = _coco_ap(ds, preds, iou_type, keep_matching=True)
    rng = np.random.default_rng(0)
    weights = (rng.random((8, len(ds))) < 0.5).astype(float)
    weights[0] = 1.0  # all images: the point estimate itself
    samples = bootstrap.coco_samples(bootstrap.coco_matching(ev), ev.params.recThrs, weights)
    for w, ap, ap50 in zip(weights, samples["AP"], samples["AP50"]):
        keep = [r.id for r, k in zip(ds.images, w) if k]
        sub = ds.subset(keep)
        stats = summary_stats(_coco_ap(sub, [p for p in preds if p.image_id in set(keep)], iou_type))
        assert ap == pytest.approx(stats[0], abs=1e-6) and ap50 == pytest.approx(stats[1], abs=1e-6)


def _copies(ds, preds, n):
    """``n`` copies of every image (and its predictions) under new ids."""
    images, out = [], []
    for k in range(n):
        for r, p in zip(ds.images, preds):
            images.append(dataclasses.replace(r, id=f"{k}/{r.id}"))
            out.append(dataclasses.replace(p, image_id=f"{k}/{r.id}"))
    return dataclasses.replace(ds, images=images), out


def _width(ci):
    return ci[1] - ci[0]


def test_coco_interval_holds_the_estimate_and_narrows_with_more_images():
    ds = random_dataset(2, seed=5, max_objects=6)
    preds = random_predictions(ds, seed=6)
    small, large = (evaluate("detect", *_copies(ds, preds, n)) for n in (50, 500))
    for m in (small, large):
        for key in ("AP", "AP50"):
            lo, hi = m["ci95"][key]
            assert lo <= m[key] <= hi, (key, m[key], m["ci95"][key])
        assert m["conventions"]["ci95"]["resamples"] == bootstrap.RESAMPLES
    assert small["AP"] == pytest.approx(large["AP"], abs=1e-12)  # the same case, repeated
    assert 0 < _width(large["ci95"]["AP"]) < 0.5 * _width(small["ci95"]["AP"])


def test_semantic_and_classify_intervals():
    from zoo.dataset import Dataset, ImageRecord, Instance

    recs, sem, cls = [], [], []
    for k in range(4):
        box = (4.0 + k, 4.0, 20.0, 18.0 + k)
        recs.append(ImageRecord(f"i{k}", 32, 32, labels=[k % 2], instances=[Instance(k % 2, box)]))
        pred = np.zeros((32, 32), np.uint8)
        pred[5:19, 3 + k:21] = 1 + (k % 2) if k != 3 else 2
        sem.append(SemanticPrediction(f"i{k}", pred))
        cls.append(ClassPrediction(f"i{k}", [0, 1, 1, 1][k]))
    ds = Dataset(categories=["a", "b"], classes=["x", "y"], images=recs)
    widths = {}
    for task, preds, key in (("semantic-seg", sem, "mIoU"), ("classify", cls, "accuracy")):
        for n in (50, 500):
            big, big_preds = _copies(ds, preds, n)
            m = evaluate(task, big, big_preds)
            lo, hi = m["ci95"][key]
            assert lo <= m[key] <= hi
            widths[task, n] = hi - lo
        assert 0 < widths[task, 500] < 0.5 * widths[task, 50]


def test_no_interval_when_not_asked():
    ds = random_dataset(5, seed=1)
    m = evaluate("detect", ds, [InstancePredictions(r.id, []) for r in ds.images], ci95=False)
    assert "ci95" not in m and "ci95" not in m["conventions"]
