"""Evaluator benchmark: zoo's COCO evaluator vs pycocotools vs faster-coco-eval, and mIoU throughput.

COCO part: 5,000 random images, 20 detections each (jittered copies of the ground truth,
wrong-class copies, false positives; ground truth as polygons and RLE masks with crowd
regions), evaluated for ``bbox`` and ``segm``:

* pycocotools and faster-coco-eval start from the COCO dicts (GT dict + results list), as a
  user of either library would;
* zoo starts from canonical records and predictions, so its time *includes* the
  conversion to COCO dicts (``to_coco``, for segm the rasterisation of GT polygons by
  ``zoo.data.raster``, and the results list), which the others are handed for free.

zoo is timed twice: *cold* (the evaluator converts the ground truth: the first evaluation of
it) and *warm* (handed a ``GroundTruth`` converted before, as ``zoo compare`` scores every
backend's runs on one split, or a run its selection images every epoch: ``to_coco`` and the
GT polygon rasterisation are not redone; the results list and the scoring are).

Every stat must agree to 1e-9; the script prints times and the ratios zoo / faster-coco-eval.

mIoU part: label pixels per second of the semantic evaluator's mIoU path (one streaming
bincount into a confusion matrix) on one core, against torchmetrics' ``MulticlassJaccardIndex``
(one thread) as the anchor; and of the whole ``SemanticEvaluator``, which adds HD95 / ASSD
per image (on random-noise maps, the worst case for boundary distances).

``--round 1`` rounds every score to one decimal: most detections then tie, and the stats must
still equal pycocotools' (zoo ranks ties as pycocotools does, tests/test_eval_ties.py); with
``--ci`` it times the bootstrap's tie handling (runs of equal scores laid out per copy).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python bench/bench_evaluator.py [--images 5000] [--dets 20] [--round N]``
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np  # noqa: E402


def make_data(n_images: int, n_dets: int, seed: int = 0, decimals: int | None = None):
    """The random case; ``decimals``: scores rounded (ties, as in real results files)."""
    ds, preds = _random_case(n_images, n_dets, seed)
    if decimals is not None:
        import dataclasses

        preds = [dataclasses.replace(p, detections=[dataclasses.replace(d, score=round(d.score, decimals))
                                                    for d in p.detections]) for p in preds]
    return ds, preds


def _random_case(n_images: int, n_dets: int, seed: int):
    from test_eval_coco import CATS, _box, _det, _polygon, _rle

    from zoo.dataset import Dataset, ImageRecord, Instance
    from zoo.predictions import Detection, InstancePredictions

    rng = np.random.default_rng(seed)
    images, preds = [], []
    for k in range(n_images):
        w, h = int(rng.integers(200, 640)), int(rng.integers(200, 640))
        insts, dets = [], []
        for _ in range(int(rng.integers(3, 12))):
            box = _box(rng, w, h)
            poly = _polygon(rng, *box)
            roll = rng.random()
            cat = -1 if roll < 0.01 else int(rng.integers(len(CATS)))
            inst = Instance(cat, box, ignore=roll < 0.05)
            if rng.random() < 0.5:
                inst.polygons = [poly]
            else:
                inst.mask = _rle([poly], h, w)
            insts.append(inst)
            if cat >= 0 and len(dets) < n_dets and rng.random() < 0.85:
                s = rng.normal(0, 0.03, 4) * ([box[2] - box[0], box[3] - box[1]] * 2)
                jb = (box[0] + s[0], box[1] + s[1], box[2] + s[2], box[3] + s[3])
                c = cat if rng.random() > 0.1 else int(rng.integers(len(CATS)))
                shifted = [v + (s[0] if i % 2 == 0 else s[1]) for i, v in enumerate(poly)]
                dets.append(Detection(c, float(rng.uniform(0.05, 1.0)), jb, mask=_rle([shifted], h, w)))
        while len(dets) < n_dets:
            dets.append(_det(rng, int(rng.integers(len(CATS))), _box(rng, w, h), w, h, True, None))
        images.append(ImageRecord(id=f"img{k:05d}", width=w, height=h, instances=insts))
        preds.append(InstancePredictions(f"img{k:05d}", dets))
    return Dataset(categories=list(CATS), images=images), preds


def run_pycocotools(gt, results, iou_type):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(results), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return list(ev.stats)


def run_faster(gt, results, iou_type):
    from faster_coco_eval import COCO, COCOeval_faster

    coco_gt = COCO(gt)
    ev = COCOeval_faster(coco_gt, coco_gt.loadRes(results), iou_type, print_function=lambda *a: None)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return list(ev.stats)


def run_zoo(ds, preds, iou_type, truth=None):
    """zoo's evaluation; ``truth``: a GroundTruth converted before (warm), else none (cold)."""
    from zoo.evaluation.coco import BOX_STATS, CocoEvaluator

    # box_ap=False: the others compute one iou_type too
    ev = CocoEvaluator(ds, iou_type=iou_type, box_ap=False, ground_truth=truth)
    for rec, p in zip(ds.images, preds):
        ev.process(rec, p)
    m = ev.evaluate()
    return [-1.0 if m[k] is None else m[k] for k in BOX_STATS]


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def coco_part(n_images: int, n_dets: int, repeats: int, iou_types=("bbox", "segm"),
              decimals: int | None = None) -> list[str]:
    from zoo.evaluation.coco import GroundTruth, evaluation_ground_truth, gc_paused, scoring_results
    from zoo.evaluation.results import default_image_ids, predictions_to_coco_results

    t0 = time.perf_counter()
    ds, preds = make_data(n_images, n_dets, decimals=decimals)
    gts = {t: evaluation_ground_truth(ds, t) for t in iou_types}
    gt = next(iter(gts.values()))
    results = predictions_to_coco_results(preds, default_image_ids(ds))
    print(f"data: {n_images} images, {len(gt['annotations'])} GT annotations "
          f"({sum(a['iscrowd'] for a in gt['annotations'])} crowd), {len(results)} detections "
          f"(made in {time.perf_counter() - t0:.1f} s)")
    lines = []
    for iou_type in iou_types:
        # the references get the very dict zoo scores against (for segm: GT polygons as the
        # RLE of zoo.data.raster's pixels), prepared outside their timing
        gt = gts[iou_type]
        truth = GroundTruth(ds)
        truth.coco(iou_type)  # converted once, before the warm runs
        best = {}
        stats = {}
        for _ in range(repeats):
            for name, fn, args in (
                ("pycocotools", run_pycocotools, lambda: (copy.deepcopy(gt), copy.deepcopy(results), iou_type)),
                ("faster-coco-eval", run_faster, lambda: (copy.deepcopy(gt), copy.deepcopy(results), iou_type)),
                ("zoo cold", run_zoo, lambda: (ds, preds, iou_type)),
                ("zoo warm", run_zoo, lambda: (ds, preds, iou_type, truth)),
            ):
                if name == "pycocotools" and name in best:
                    continue  # one pycocotools run is enough (it is the slow reference)
                a = args()
                sec, stats[name] = timed(fn, *a)
                best[name] = min(best.get(name, sec), sec)
        ref = np.array(stats["pycocotools"])
        for name in ("faster-coco-eval", "zoo cold", "zoo warm"):
            diff = float(np.max(np.abs(np.array(stats[name]) - ref)))
            assert diff <= 1e-9, f"{iou_type}: {name} differs from pycocotools by {diff}"
        # where zoo's extra time goes: the canonical -> COCO conversion the others are handed
        with gc_paused():  # as inside CocoEvaluator.evaluate
            conv_gt = min(timed(evaluation_ground_truth, ds, iou_type)[0] for _ in range(2))
            conv_warm = min(timed(truth.coco, iou_type)[0] for _ in range(2))  # its per-evaluation copy
            conv_res = min(timed(scoring_results, preds, default_image_ids(ds), iou_type)[0] for _ in range(2))
        fce = best["faster-coco-eval"]
        line = (f"{iou_type}: pycocotools {best['pycocotools']:.2f} s, faster-coco-eval {fce:.2f} s, "
                f"zoo cold {best['zoo cold']:.2f} s, zoo warm {best['zoo warm']:.2f} s; zoo / faster-coco-eval = "
                f"{best['zoo cold'] / fce:.2f} cold, {best['zoo warm'] / fce:.2f} warm; zoo cold / pycocotools = "
                f"{best['zoo cold'] / best['pycocotools']:.2f}; AP {ref[0]:.4f}, stats equal to 1e-9; of zoo's "
                f"time, GT conversion {conv_gt:.2f} s cold (to_coco{' + polygon rasterisation' if iou_type == 'segm' else ''}) "
                f"/ {conv_warm:.2f} s warm (the GroundTruth's copy of its annotation dicts), results list {conv_res:.2f} s")
        print(line)
        lines.append(line)
    return lines


def ci_part(n_images: int, n_dets: int, repeats: int, resamples: int, iou_types=("bbox",),
            decimals: int | None = None) -> list[str]:
    """The cost of ``ci95`` (bootstrap.RESAMPLES resamples of the 5,000 images): zoo's
    evaluation with and without it, best of ``repeats`` each, alternating."""
    from zoo.evaluation import bootstrap
    from zoo.evaluation.coco import CocoEvaluator

    bootstrap.RESAMPLES = resamples
    ds, preds = make_data(n_images, n_dets, decimals=decimals)
    lines = []
    for iou_type in iou_types:
        best: dict[bool, float] = {}
        for _ in range(repeats):
            for ci in (False, True):
                ev = CocoEvaluator(ds, iou_type=iou_type, box_ap=False, ci95=ci)
                for rec, p in zip(ds.images, preds):
                    ev.process(rec, p)
                sec, m = timed(ev.evaluate)
                best[ci] = min(best.get(ci, sec), sec)
        extra = best[True] - best[False]
        ci = m["ci95"]["AP"]
        line = (f"ci95 {iou_type}: {n_images} images, {resamples} resamples: evaluation {best[False]:.2f} s, "
                f"with ci95 {best[True]:.2f} s; the interval costs {extra:.2f} s = {extra / best[False]:.2f}x "
                f"one evaluation; AP {m['AP']:.4f} ({ci[0]:.4f}-{ci[1]:.4f})")
        print(line)
        lines.append(line)
    return lines


def miou_part(n_images: int = 40, size: int = 512, classes: int = 6) -> list[str]:
    import torch
    from torchmetrics.classification import MulticlassJaccardIndex

    from zoo.dataset import Dataset
    from zoo.evaluation.semantic import SemanticEvaluator, confusion_metrics, confusion_update

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    gts = [rng.integers(0, classes, (size, size), dtype=np.uint8) for _ in range(n_images)]
    for g in gts[::4]:
        g[:32] = 255
    preds = [np.where(rng.random((size, size)) < 0.8, np.where(g == 255, 0, g), 1).astype(np.uint8) for g in gts]
    pixels = n_images * size * size
    ev = SemanticEvaluator(Dataset(categories=[f"c{k}" for k in range(classes - 1)]), task=None)
    # the mIoU path alone: one streaming confusion matrix (what the anchor computes) ...
    conf = np.zeros((classes, classes), np.int64)
    t0 = time.perf_counter()
    for g, p in zip(gts, preds):
        confusion_update(conf, g, p)
    iou = confusion_metrics(conf, ev.names)["IoU"]
    zoo_s = time.perf_counter() - t0
    # ... and the whole evaluator, which also finds HD95 / ASSD per image and class: on these
    # random-noise maps nearly every pixel is an edge, the worst case for boundary distances
    t0 = time.perf_counter()
    for g, p in zip(gts, preds):
        ev.process_maps(g, p)
    m = ev.evaluate()
    full_s = time.perf_counter() - t0
    assert m["IoU"] == iou
    jac = MulticlassJaccardIndex(classes, average=None, ignore_index=255)
    tg = [torch.from_numpy(g.astype(np.int64)) for g in gts]
    tp = [torch.from_numpy(p.astype(np.int64)) for p in preds]
    t0 = time.perf_counter()
    for g, p in zip(tg, tp):
        jac.update(p, g)
    ref = jac.compute().numpy()
    tm_s = time.perf_counter() - t0
    assert np.allclose([m["IoU"][n] for n in ev.names], ref, atol=1e-6)
    line = (f"mIoU: {n_images} maps {size}x{size}, {classes} classes, 1 thread: zoo {pixels / zoo_s / 1e6:.0f} M "
            f"label px/s, torchmetrics MulticlassJaccardIndex {pixels / tm_s / 1e6:.0f} M px/s "
            f"(uint8 maps for zoo, int64 tensors for torchmetrics, conversion not timed); "
            f"ratio {tm_s / zoo_s:.1f}x; IoU equal to 1e-6; SemanticEvaluator with HD95 / ASSD on these "
            f"random-noise maps {pixels / full_s / 1e6:.2f} M px/s ({full_s:.1f} s)")
    print(line)
    return [line]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--dets", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--iou-types", default="bbox,segm", help="comma-separated; empty skips the COCO part")
    ap.add_argument("--no-miou", action="store_true")
    ap.add_argument("--ci", type=int, default=0, metavar="RESAMPLES",
                    help="time ci95 with this many resamples instead (bbox and --iou-types)")
    ap.add_argument("--round", type=int, default=None, metavar="DECIMALS",
                    help="round the detection scores (equal scores, as in real results files)")
    a = ap.parse_args()
    if a.ci:
        ci_part(a.images, a.dets, a.repeats, a.ci, tuple(a.iou_types.split(",")), a.round)
        return
    if a.iou_types:
        coco_part(a.images, a.dets, a.repeats, tuple(a.iou_types.split(",")), a.round)
    if not a.no_miou:
        miou_part()


if __name__ == "__main__":
    main()
