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


# -- the cluster bootstrap: groups (patients) resampled whole ------------------------------------


def test_cluster_weights_with_one_image_per_group_are_the_image_weights():
    groups = [f"patient-{k}" for k in range(37)]
    assert np.array_equal(bootstrap.cluster_weights(groups), bootstrap.image_weights(37))
    assert np.array_equal(bootstrap.cluster_weights(groups, 11, seed=4), bootstrap.image_weights(37, 11, seed=4))


def test_cluster_weights_draw_whole_groups():
    groups = ["a", "b", "a", "c", "b", "a"]
    w = bootstrap.cluster_weights(groups)
    assert np.array_equal(w[:, 0], w[:, 2]) and np.array_equal(w[:, 0], w[:, 5]) and np.array_equal(w[:, 1], w[:, 4])
    per_group = w[:, [0, 1, 3]]  # one column per group: each resample draws 3 groups in all
    assert (per_group.sum(1) == 3).all() and not np.array_equal(w[:, 0], w[:, 1])


def _grouped(ds, preds, copies):
    """Each image ``copies`` times, the copies of one image one group (one patient's slices)."""
    images, out = [], []
    for k in range(copies):
        for r, p in zip(ds.images, preds):
            images.append(dataclasses.replace(r, id=f"{k}/{r.id}", group=r.id))
            out.append(dataclasses.replace(p, image_id=f"{k}/{r.id}"))
    return dataclasses.replace(ds, images=images), out


@pytest.mark.parametrize("task", ["detect", "classify"])
def test_grouped_images_widen_the_interval_and_one_per_group_changes_nothing(task):
    if task == "classify":
        ds = random_dataset(40, seed=8)
        ds = dataclasses.replace(ds, classes=["a", "b"], images=[dataclasses.replace(r, labels=[k % 2])
                                                                for k, r in enumerate(ds.images)])
        rng = np.random.default_rng(9)
        preds = [ClassPrediction(r.id, int(r.labels[0] if rng.random() < 0.7 else 1 - r.labels[0])) for r in ds.images]
        key = "accuracy"
    else:
        ds = random_dataset(40, seed=8)
        preds = random_predictions(ds, seed=9)
        key = "AP"
    plain = evaluate(task, ds, preds)
    named = evaluate(task, dataclasses.replace(ds, images=[dataclasses.replace(r, group=f"P-{r.id}") for r in ds.images]),
                     preds)  # every patient one image: the image bootstrap, draw for draw
    assert named["ci95"] == plain["ci95"] and "over images" in named["conventions"]["ci95"]["method"]
    ds5, preds5 = _grouped(ds, preds, 5)
    grouped = evaluate(task, ds5, preds5)
    loose = evaluate(task, dataclasses.replace(ds5, images=[dataclasses.replace(r, group=None) for r in ds5.images]),
                     preds5)  # the same images taken as 200 independent ones
    assert grouped[key] == pytest.approx(plain[key], abs=1e-9) and loose[key] == grouped[key]
    assert "cluster bootstrap: 40 groups" in grouped["conventions"]["ci95"]["method"]
    # five slices of one patient are one sample, not five: as wide as 40 patients allow, not 200
    assert abs(_width(grouped["ci95"][key]) - _width(plain["ci95"][key])) < 0.25 * _width(plain["ci95"][key])
    assert _width(loose["ci95"][key]) < 0.7 * _width(grouped["ci95"][key])


def test_one_patient_scored_gives_no_interval_and_says_why():
    """Three slices of one patient: every resample redraws that patient, so a zero-width
    interval would claim a certainty the data cannot give."""
    ds = random_dataset(3, seed=2)
    preds = random_predictions(ds, seed=3)
    one = dataclasses.replace(ds, images=[dataclasses.replace(r, group="P1") for r in ds.images])
    m = evaluate("detect", one, preds)
    assert m["ci95"]["AP"] is None and m["ci95"]["AP50"] is None
    assert m["conventions"]["ci95"]["undefined"] == "fewer than 2 groups scored"
    assert evaluate("detect", ds, preds)["ci95"]["AP"] is not None  # three images, three groups
