"""COCO evaluation (boxes, masks, keypoints) for detect, instance-seg and keypoint.

Matching and accumulation are faster-coco-eval's (a C++ re-implementation of pycocotools
proven equal to it to 1e-9 in ``tests/test_eval_coco.py``); this module only translates
canonical ground truth and predictions into COCO dicts and names the numbers.

Conventions (also written into every metrics dict under ``conventions``):

* IoU thresholds 0.50:0.05:0.95, 101 recall points, COCO area ranges (small < 32², medium
  < 96², large), maxDets 1/10/100 for boxes and masks, 20 for keypoints (COCO's own choice;
  its summary is defined only at 20).
* ``Instance.ignore`` becomes ``iscrowd=1``: a detection that overlaps it is neither a true
  nor a false positive. ``category == -1`` is an ignored region for every category.
* Ground truth read from a COCO file is scored as the file gives it (``Instance.coco``: its
  ``area``, ``iscrowd``, boxes, polygons and keypoints), so the numbers are pycocotools' on
  that file; category ids are the file's own. Annotations zoo cannot train on (zero area, a box
  outside the image) are scored too (``ImageRecord.scored_only``), as pycocotools counts them; a
  field pycocotools needs and the file lacks is filled by the rule ``ground_truth`` states
  (pycocotools raises KeyError there); an annotation with no bbox and no segmentation is refused.
* ``segm``: a COCO file's polygons are filled as pycocotools fills them. Polygons from other
  sources (labelme, VOC, YOLO) are scored as the pixels :mod:`zoo.data.raster` fills for them
  (labelme's rule, the pixels mask models are trained on), not pycocotools' own polygon
  scan-conversion (``polygon_raster="coco"`` restores that); ``data/val_coco.json`` holds
  those pixels as RLE. Instance-seg and keypoint metrics also carry the box AP of the same
  detections under ``"bbox"``.
* A stat pycocotools reports as ``-1`` (nothing to measure: no ground truth in that area
  range) is ``None`` (JSON ``null``), never averaged in as a number.
* Keypoint OKS sigmas: the dataset's (``oks_sigmas``, from ``zoo.yaml``) when given; COCO's
  when the keypoint names are the 17 COCO body points; otherwise :data:`DEFAULT_SIGMA` for
  every point.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import gc
import itertools
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from zoo import __version__
from zoo.dataset import Dataset, ImageRecord
from zoo.evaluation import bootstrap
from zoo.evaluation.base import Evaluator
from zoo.errors import ZooError
from zoo.predictions import InstancePredictions

BOX_STATS = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
KEYPOINT_STATS = ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]

#: COCO's per-keypoint sigmas, by body-point name (cocoapi PythonAPI/pycocotools/cocoeval.py).
COCO_SIGMAS = {
    "nose": 0.026, "left_eye": 0.025, "right_eye": 0.025, "left_ear": 0.035, "right_ear": 0.035,
    "left_shoulder": 0.079, "right_shoulder": 0.079, "left_elbow": 0.072, "right_elbow": 0.072,
    "left_wrist": 0.062, "right_wrist": 0.062, "left_hip": 0.107, "right_hip": 0.107,
    "left_knee": 0.087, "right_knee": 0.087, "left_ankle": 0.089, "right_ankle": 0.089,
}  # fmt: skip

#: Sigma for every keypoint of a skeleton that is neither COCO's nor given one in zoo.yaml:
#: the mean of COCO's 17 sigmas (0.0719, rounded), i.e. an unknown point is judged as
#: leniently as an average COCO body point. Set ``oks_sigmas`` in zoo.yaml for your points.
DEFAULT_SIGMA = 0.072

IOU_TYPES = ("bbox", "segm", "keypoints")


def oks_sigmas(meta: Dataset) -> tuple[list[float], str]:
    """The per-keypoint OKS sigmas for ``meta``'s skeleton and where they came from."""
    names = list(meta.keypoint_names)
    norm = [n.strip().lower().replace("-", "_").replace(" ", "_") for n in names]
    coco = len(norm) == 17 and set(norm) == set(COCO_SIGMAS)
    if coco and (not meta.oks_sigmas or [float(s) for s in meta.oks_sigmas] == [COCO_SIGMAS[n] for n in norm]):
        return [COCO_SIGMAS[n] for n in norm], "COCO (the 17 COCO body points are named)"
    if meta.oks_sigmas:
        if len(meta.oks_sigmas) != len(names):
            raise ZooError(
                f"oks_sigmas has {len(meta.oks_sigmas)} values but there are {len(names)} keypoints"
            )
        return [float(s) for s in meta.oks_sigmas], "dataset (zoo.yaml oks_sigmas)"
    return [DEFAULT_SIGMA] * len(names), f"default {DEFAULT_SIGMA} for every keypoint (mean of COCO's sigmas)"


def coco_ground_truth(dataset: Dataset) -> dict[str, Any]:
    """The COCO dict of ``dataset`` through :func:`zoo.evaluation.ground_truth.to_coco` (the one
    conversion)."""
    from zoo.evaluation.ground_truth import to_coco

    return to_coco(dataset)


def evaluation_ground_truth(dataset: Dataset, iou_type: str, polygon_raster: str = "zoo") -> dict[str, Any]:
    """The COCO dict the evaluator scores against.

    For ``segm`` with ``polygon_raster="zoo"`` every polygon is replaced by the RLE of the
    pixels :mod:`zoo.data.raster` fills for it (labelme's rule, outline included) -- the same
    pixels semantic label maps and mask targets are made of. pycocotools' own polygon
    scan-conversion leaves most outline pixels out, which on small objects (a 10-pixel cell)
    costs a perfect mask ~10 points of AP. ``polygon_raster="coco"`` keeps the polygons, for
    numbers comparable with labelme2coco + pycocotools.

    A COCO annotation pycocotools cannot score (no bbox and no segmentation) is refused.
    """
    from zoo.evaluation.ground_truth import unscorable

    problem = unscorable(dataset)
    if problem is not None:
        raise ZooError(problem)
    if iou_type == "bbox":
        from zoo.evaluation.ground_truth import to_coco

        # ignored polygons are not rasterised: box scoring reads neither a crowd region's
        # mask nor its area (tests/test_eval_fast_paths.py: the same stats as with them)
        return to_coco(dataset, ignored_pixels=False)
    gt = coco_ground_truth(dataset)
    if iou_type != "segm" or polygon_raster == "coco":
        return gt
    if polygon_raster != "zoo":
        raise ValueError(f"polygon_raster must be 'zoo' or 'coco', not {polygon_raster!r}")
    from zoo.data.raster import polygons_rles

    size = {img["id"]: (img["height"], img["width"]) for img in gt["images"]}
    # a COCO file's own polygons stay polygons: pycocotools fills them by its rule
    given = {id(i.coco["segmentation"]) for r in dataset.images for i in r.instances
             if i.coco is not None and "segmentation" in i.coco}
    polygonal = [ann for ann in gt["annotations"] if isinstance(ann.get("segmentation"), list) and ann["segmentation"]
                 and id(ann["segmentation"]) not in given]
    # one batched rasterisation for all polygons: the slowest step of segm evaluation
    rles = polygons_rles([(ann["segmentation"], *size[ann["image_id"]]) for ann in polygonal])
    for ann, rle in zip(polygonal, rles):
        ann["segmentation"] = rle
    return gt


def polygons_rle(polygons: list[list[float]], height: int, width: int) -> dict:
    """``mask_to_rle(polygons_mask(polygons, height, width))`` of :mod:`zoo.data.raster`, faster
    (one item of :func:`zoo.data.raster.polygons_rles`)."""
    from zoo.data.raster import polygons_rles

    return polygons_rles([(polygons, height, width)])[0]


def scoring_results(preds, image_ids, iou_type: str, category_ids: list[int] | None = None) -> list[dict[str, Any]]:
    """The COCO results of canonical predictions as ``loadRes`` leaves them, made in one pass.

    Each dict is :func:`zoo.evaluation.results.detection_to_coco`'s plus what
    faster-coco-eval's (and pycocotools') ``loadRes`` adds to a result with a box: ``id``
    1..M, ``area`` = box width * height (or the detection's own ``area``, which a result
    without a box had: pycocotools takes the mask's), ``iscrowd`` 0 and, for ``segm``, the box as the
    polygon of a detection without a mask (loadRes writes that polygon for every iou_type;
    box and OKS scoring never read it, so it is left out there). Hand the list to :func:`run_cocoeval` with
    ``loaded=True``: converting and then re-walking 100,000 detections in ``loadRes`` cost
    more than the box matching itself (bench/bench_evaluator.py).
    """
    if category_ids is None:  # index + 1, as detection_to_coco's default
        category_ids = range(1, 1 + 1 + max((d.category for p in preds for d in p.detections), default=0))
    results: list[dict[str, Any]] = []
    append = results.append
    n = 0
    for p in preds:
        try:
            coco_id = int(image_ids[p.image_id])
        except KeyError:
            raise ZooError(f"prediction for image '{p.image_id}', which is not in the ground truth") from None
        for det in p.detections:
            n += 1
            x0, y0, x1, y1 = det.bbox
            x0, y0 = float(x0), float(y0)
            w, h = float(x1) - x0, float(y1) - y0
            out: dict[str, Any] = {"image_id": coco_id, "category_id": category_ids[det.category],
                                   "bbox": [x0, y0, w, h], "score": float(det.score),
                                   "area": w * h if det.area is None else det.area, "id": n, "iscrowd": 0}
            mask = det.mask
            if mask is not None:
                counts = mask["counts"]
                if not isinstance(counts, str):  # bytes from pycocotools
                    mask = {"size": [int(v) for v in mask["size"]], "counts": counts.decode("ascii")}
                out["segmentation"] = mask
            elif iou_type == "segm":
                xe, ye = x0 + w, y0 + h  # loadRes's corners, computed as it does
                out["segmentation"] = [[x0, y0, x0, ye, xe, ye, xe, y0]]
            if det.keypoints is not None:
                out["keypoints"] = [float(v) for kp in det.keypoints for v in kp]
            append(out)
    return results


def run_cocoeval(gt: dict, results: list[dict], iou_type: str, *, sigmas=None, cat_ids=None,
                 loaded: bool = False, keep_matching: bool = False):
    """faster-coco-eval's COCOeval, evaluated and accumulated (not summarised).

    ``keep_matching``: evaluate and accumulate as two steps, so that the per-image matching
    stays readable afterwards (:func:`zoo.evaluation.bootstrap.coco_matching`).

    ``gt`` and ``results`` are not copied; ``results`` is modified (``loadRes`` adds ids and
    areas), so pass a list made for this call. ``loaded=True``: ``results`` comes from
    :func:`scoring_results`, which already holds what ``loadRes`` would add.
    """
    import numpy as np
    from faster_coco_eval import COCO

    if loaded and iou_type in ("bbox", "segm"):
        # _batched_cocoeval's _prepare reads the annotations straight from the dataset lists and
        # only images / categories through the index: skip indexing 100,000+ annotations twice
        coco_gt = _images_only_coco(gt)
        coco_dt = _images_only_coco({"images": list(gt["images"]), "annotations": results,
                                     "categories": copy.deepcopy(gt["categories"])})
    elif loaded:
        coco_gt = COCO(gt)
        # what loadRes does besides filling in the fields scoring_results already wrote
        coco_dt = COCO()
        coco_dt.dataset = {"images": list(coco_gt.dataset["images"]), "annotations": results,
                           "categories": copy.deepcopy(coco_gt.dataset["categories"])}
        coco_dt.createIndex()
    else:
        coco_gt = COCO(gt)
        coco_dt = coco_gt.loadRes(results)
    # faster-coco-eval runs its per-pair IoU calls in a thread pool; on a machine with a couple
    # of (shared) cores the pool costs more than it gives (measured in bench/bench_evaluator.py),
    # so scale it to the cores. (Box and mask IoUs are computed up front by _batched_cocoeval,
    # the pool then only hands them out.)
    workers = max(1, min(8, (os.cpu_count() or 1) // 2))
    ev = _batched_cocoeval()(coco_gt, coco_dt, iou_type, print_function=_quiet, kpt_oks_sigmas=sigmas,
                             rle_iou_max_workers=workers, separate_eval=keep_matching)
    # faster-coco-eval keeps only categories with keypoint annotations; pin all of them so
    # per-class rows line up with the category list (absent ones stay -1, as in pycocotools).
    ev.params.catIds = sorted(cat_ids if cat_ids is not None else coco_gt.getCatIds())
    if sigmas is not None:
        ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=float)
    ev.evaluate()
    ev.accumulate()
    return ev


def _images_only_coco(dataset: dict):
    """A faster-coco-eval ``COCO`` over ``dataset`` with only its image and category index
    (what ``COCOeval.__init__`` and :func:`_batched_cocoeval`'s ``_prepare`` read); marked, so
    that any other path builds the full index first (``_full_index``)."""
    from faster_coco_eval import COCO

    coco = COCO()
    coco.dataset = dataset
    coco.imgs = {img["id"]: img for img in dataset["images"]}
    coco.cats = {cat["id"]: cat for cat in dataset["categories"]}
    coco._zoo_images_only = True
    return coco


def _full_index(coco) -> None:
    if getattr(coco, "_zoo_images_only", False):
        coco.createIndex()
        coco._zoo_images_only = False


@functools.cache
def _batched_cocoeval():
    """faster-coco-eval's ``COCOeval_faster`` with its IoU step done for all (image,
    category) pairs at once instead of one Python call per pair.

    ``COCOeval_faster.computeIoU`` fetches a pair's annotations from its C++ index, sorts the
    detections by score, and calls the C IoU: ~25 us of Python per pair, 16,000 pairs in
    the 5,000-image benchmark. Here the pairs are formed once with numpy from the same
    annotations in the same order (ground truth in annotation order; detections stably
    sorted by descending score, cut at ``maxDets[-1]``: ``computeIoU``'s order, which the
    C++ matching relies on), box IoUs are computed in one vectorised pass with
    pycocotools' ``bbIou`` arithmetic (same operations, same order, so the same doubles:
    tests/test_eval_coco.py compares every matrix), and mask IoUs are the same C call per
    pair, without the per-pair lookups. Everything else (matching, accumulation) is
    faster-coco-eval's own.
    """
    import numpy as np
    from faster_coco_eval import COCOeval_faster
    from faster_coco_eval.core import mask as mask_utils

    class BatchedIoUCOCOeval(COCOeval_faster):
        def _prepare(self):
            p = self.params
            self._pair_ious = None
            if self.lvis_style or not p.useCats or p.iouType not in ("bbox", "segm") or p.compute_boundary:
                _full_index(self.cocoGt)
                _full_index(self.cocoDt)
                return super()._prepare()
            # COCOeval_faster._prepare for this case, step for step, except that the
            # annotations are taken from the dataset list in one pass instead of through
            # getAnnIds / loadAnns (same annotations, same order within each pair: the only
            # order the C++ index keeps)
            self.gt_dataset.clean()
            self.dt_dataset.clean()
            gts, dts = self._annotations(self.cocoGt), self._annotations(self.cocoDt)
            for gt in gts:
                gt["ignore"] = int(gt.get("iscrowd", 0))  # iscrowd wins over a given ignore flag
            sizes = {}
            if p.compute_rle:
                imgs = self.cocoGt.imgs
                for a in gts:
                    if a["image_id"] not in sizes:
                        sizes[a["image_id"]] = imgs[a["image_id"]]["height"], imgs[a["image_id"]]["width"]
            mask_utils.calculateRleForAllAnnotations(gts, sizes, p.compute_rle, False, self.boundary_dilation_ratio,
                                                     self.boundary_cpu_count)
            if p.compute_rle:
                imgs = self.cocoDt.imgs
                for a in dts:
                    if a["image_id"] not in sizes:
                        sizes[a["image_id"]] = imgs[a["image_id"]]["height"], imgs[a["image_id"]]["width"]
            mask_utils.calculateRleForAllAnnotations(dts, sizes, p.compute_rle, False, self.boundary_dilation_ratio,
                                                     self.boundary_cpu_count)
            for anns, index in ((gts, self.gt_dataset), (dts, self.dt_dataset)):
                for a in anns:
                    index.append_ref(a["image_id"], a["category_id"], a)
            self._pair_ious = self._all_pair_ious(gts, dts)
            # the pairs with both ground truth and detections: exactly those with an IoU matrix
            self._nonempty_iou_pairs = set(self._pair_ious)

        def computeIoU(self, imgId, catId):
            if self._pair_ious is None:
                return super().computeIoU(imgId, catId)
            return self._pair_ious.get((imgId, catId), [])

        def _annotations(self, coco):
            # the annotations getAnnIds(imgIds, catIds) would give, in annotation order
            p = self.params
            anns = coco.dataset["annotations"]
            imgs = set(p.imgIds) if len(p.imgIds) else None  # empty: no filter, as in getAnnIds
            cats = set(p.catIds) if len(p.catIds) else None
            if (imgs is None or imgs.issuperset({a["image_id"] for a in anns})) and (
                cats is None or cats.issuperset({a["category_id"] for a in anns})
            ):
                return list(anns)  # every annotation passes (the usual case)
            return [a for a in anns if (imgs is None or a["image_id"] in imgs)
                    and (cats is None or a["category_id"] in cats)]

        def _all_pair_ious(self, gts, dts) -> dict:
            p = self.params
            if not gts or not dts:
                return {}
            # (image, category) as one integer key; _annotations kept only p.catIds when given
            top = max(p.catIds) if p.catIds else max(a["category_id"] for a in itertools.chain(gts, dts))
            n_cat = int(top) + 1
            g_key = np.array([a["image_id"] * n_cat + a["category_id"] for a in gts], np.int64)
            d_key = np.array([a["image_id"] * n_cat + a["category_id"] for a in dts], np.int64)
            d_score = np.array([a["score"] for a in dts], np.float64)
            g_order = np.argsort(g_key, kind="stable")  # annotation order within a pair
            d_order = np.lexsort((-d_score, d_key))  # stable: computeIoU's mergesort on -score
            g_key, d_key = g_key[g_order], d_key[d_order]
            pairs, g_start, g_count = np.unique(g_key, return_index=True, return_counts=True)
            # each detection's pair among the ground-truth pairs, and its rank by score
            d_pair = np.searchsorted(pairs, d_key)
            d_pair[d_pair == len(pairs)] = 0
            has_gt = pairs[d_pair] == d_key
            first = np.searchsorted(d_key, d_key, side="left")
            keep = has_gt & (np.arange(len(d_key)) - first < p.maxDets[-1])
            d_order, d_key, d_pair = d_order[keep], d_key[keep], d_pair[keep]
            if not len(d_order):
                return {}
            d_pairs, d_start, d_count = np.unique(d_key, return_index=True, return_counts=True)
            pair_of = np.searchsorted(pairs, d_pairs)
            n_g_of = g_count[pair_of]
            keys = [(key // n_cat, key % n_cat) for key in d_pairs.tolist()]
            if p.iouType == "bbox":
                ious = self._box_ious(gts, dts, g_order, d_order, d_pair, g_start, g_count)
                size = (d_count * n_g_of).tolist()  # one block of the flat IoUs per pair, in order
                start = (np.cumsum(d_count * n_g_of) - d_count * n_g_of).tolist()
                return {key: ious[o:o + k].reshape(n_d, k // n_d)
                        for key, o, k, n_d in zip(keys, start, size, d_count.tolist())}
            out = {}
            g_order, d_order = g_order.tolist(), d_order.tolist()
            for key, g0, n_g, d0, n_d in zip(keys, g_start[pair_of].tolist(), n_g_of.tolist(),
                                             d_start.tolist(), d_count.tolist()):
                g = [gts[i] for i in g_order[g0:g0 + n_g]]
                d = [dts[i] for i in d_order[d0:d0 + n_d]]
                out[key] = mask_utils.iou([a["rle"] for a in d], [a["rle"] for a in g],
                                          [int(a.get("iscrowd", 0)) for a in g])
            return out

        @staticmethod
        def _box_ious(gts, dts, g_order, d_order, d_pair, g_start, g_count):
            # every (detection, ground truth) of a pair, detection-major: the rows of its matrix
            gb = np.array([a["bbox"] for a in gts], np.float64).reshape(-1, 4)[g_order]
            db = np.array([a["bbox"] for a in dts], np.float64).reshape(-1, 4)[d_order]
            crowd = np.array([a.get("iscrowd", 0) for a in gts], bool)[g_order]
            reps = g_count[d_pair]
            di = np.repeat(np.arange(len(d_order)), reps)
            gi = np.repeat(g_start[d_pair] - (np.cumsum(reps) - reps), reps) + np.arange(int(reps.sum()))
            D, G = db[di], gb[gi]
            # pycocotools' bbIou, operation for operation
            w = np.minimum(D[:, 2] + D[:, 0], G[:, 2] + G[:, 0]) - np.maximum(D[:, 0], G[:, 0])
            h = np.minimum(D[:, 3] + D[:, 1], G[:, 3] + G[:, 1]) - np.maximum(D[:, 1], G[:, 1])
            i = w * h
            da, ga = D[:, 2] * D[:, 3], G[:, 2] * G[:, 3]
            u = np.where(crowd[gi], da, da + ga - i)
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where((w > 0) & (h > 0), i / u, 0.0)

    return BatchedIoUCOCOeval


def summary_stats(ev) -> list[float]:
    """The standard COCO summary (pycocotools' ``stats`` order) of an accumulated evaluation."""
    ev.summarize()
    n = len(KEYPOINT_STATS) if ev.params.iouType == "keypoints" else len(BOX_STATS)
    return [float(s) for s in ev.all_stats[:n]]


@contextlib.contextmanager
def gc_paused():
    """Python's cyclic garbage collector off for a block that builds many small objects.

    Converting 5,000 images to COCO dicts and indexing them creates a few hundred thousand
    dicts and lists, none of them in reference cycles; the collector still walked all of them
    several times (~20% of an evaluation in bench/bench_evaluator.py). Reference counting
    frees everything as usual; the previous state is restored afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _quiet(*_args, **_kwargs) -> None:
    pass


class CocoEvaluator(Evaluator):
    """COCO AP/AR for boxes (``iou_type="bbox"``), masks (``"segm"``) or keypoints (``"keypoints"``)."""

    def __init__(self, meta: Dataset, *, task=None, iou_type: str = "bbox", polygon_raster: str = "zoo",
                 box_ap: bool = True, **options: Any):
        if iou_type not in IOU_TYPES:
            raise ValueError(f"iou_type must be one of {IOU_TYPES}, got {iou_type!r}")
        self.iou_type = iou_type
        self.polygon_raster = polygon_raster
        #: masks / keypoints also report box AP under "bbox" (the boxes the same model gave)
        self.box_ap = box_ap
        #: a bootstrap interval of the headline numbers under "ci95" (zoo.evaluation.bootstrap)
        self.ci95 = bool(options.get("ci95", False))
        self._curves = None
        super().__init__(meta, task=task, **options)

    def reset(self) -> None:
        self._records: list[ImageRecord] = []
        self._preds: list[InstancePredictions] = []
        self._curves = None
        self._matching = None

    def process(self, gt: ImageRecord, pred: InstancePredictions | None) -> None:
        if pred is None:
            pred = InstancePredictions(gt.id, [])
        elif pred.image_id != gt.id:
            raise ValueError(f"prediction for '{pred.image_id}' given with ground truth '{gt.id}'")
        self._records.append(gt)
        self._preds.append(pred)

    def evaluate(self) -> dict[str, Any]:
        if not self._records:
            raise ZooError("nothing to evaluate: no images were processed")
        with gc_paused():
            return self._evaluate()

    def _evaluate(self) -> dict[str, Any]:
        dataset = replace(self.meta, images=list(self._records))
        gt = evaluation_ground_truth(dataset, self.iou_type, self.polygon_raster)
        image_ids = {r.id: img["id"] for r, img in zip(self._records, gt["images"])}
        category_ids = self.meta.coco_category_ids()
        results = scoring_results(self._preds, image_ids, self.iou_type, category_ids)
        sigmas, sigma_source = (None, None)
        if self.iou_type == "keypoints":
            sigmas, sigma_source = oks_sigmas(self.meta)
        cat_ids = [c["id"] for c in gt["categories"]]
        ev = run_cocoeval(gt, results, self.iou_type, sigmas=sigmas, cat_ids=cat_ids, loaded=True,
                          keep_matching=self.ci95)
        stats = summary_stats(ev)
        names = KEYPOINT_STATS if self.iou_type == "keypoints" else BOX_STATS
        # only what plot() needs: keeping the COCOeval (its two COCO indexes, every annotation
        # and result dict) would make the collector walk all of them as soon as it is back on
        self._curves = ev.eval["precision"], ev.params.recThrs
        metrics: dict[str, Any] = {"main": "AP"}
        metrics.update({k: _num(v) for k, v in zip(names, stats)})
        metrics["per_class"] = self._per_class(ev, gt)
        metrics["images"] = len(self._records)
        metrics["detections"] = len(results)
        metrics["conventions"] = self._conventions(ev, sigmas, sigma_source)
        if self.ci95:
            metrics["ci95"] = self._intervals(ev)
            metrics["conventions"]["ci95"] = bootstrap.method()
        if self.box_ap and self.iou_type != "bbox":
            box = run_cocoeval(gt, scoring_results(self._preds, image_ids, "bbox", category_ids), "bbox", cat_ids=cat_ids,
                               loaded=True)
            metrics["bbox"] = {k: _num(v) for k, v in zip(BOX_STATS, summary_stats(box))}
            metrics["bbox"]["per_class"] = {k: v["AP"] for k, v in self._per_class(box, gt).items()}
        return metrics

    def _intervals(self, ev) -> dict[str, list[float] | None]:
        """Bootstrap intervals of AP and AP50 from the matching ``ev`` already made."""
        # the per-image matching, kept (small arrays, not the COCOeval) for resampled()
        self._matching = bootstrap.coco_matching(ev), ev.params.recThrs
        return bootstrap.intervals(self.resampled(bootstrap.image_weights(len(ev._paramsEval.imgIds))))

    def resampled(self, weights) -> dict[str, Any]:
        matching, rec_thrs = self._matching
        return bootstrap.coco_samples(matching, rec_thrs, weights)

    def _per_class(self, ev, gt: dict) -> dict[str, dict[str, Any]]:
        precision = ev.eval["precision"]  # [T, R, K, A, M]
        n_gt: dict[int, int] = {}
        for a in gt["annotations"]:
            if not a.get("iscrowd", 0) and (self.iou_type != "keypoints" or a.get("num_keypoints", 0) > 0):
                n_gt[a["category_id"]] = n_gt.get(a["category_id"], 0) + 1
        name_of = {c["id"]: c["name"] for c in gt["categories"]}
        out = {}
        for k, cid in enumerate(ev.params.catIds):
            p = precision[:, :, k, 0, -1]
            out[name_of[cid]] = {
                "AP": _mean_valid(p),
                "AP50": _mean_valid(p[0]),
                "AP75": _mean_valid(p[5]),
                "instances": n_gt.get(cid, 0),
            }
        return out

    def _conventions(self, ev, sigmas, sigma_source) -> dict[str, Any]:
        import faster_coco_eval

        p = ev.params
        conv: dict[str, Any] = {
            "iou_type": self.iou_type,
            "iou_thresholds": "0.50:0.05:0.95",
            "recall_points": len(p.recThrs),
            "max_dets": list(p.maxDets),
            "area_ranges": dict(zip(p.areaRngLbl, [list(map(float, r)) for r in p.areaRng])),
            "averaging": "AP: mean of 101-point interpolated precision over IoU thresholds and over "
            "categories with ground truth (pycocotools); per_class: the same for one category",
            "ignore": "Instance.ignore -> iscrowd=1 (detections matching it are not counted); "
            "category -1 is ignored for every category",
            "null": "null where pycocotools reports -1 (no ground truth in that range or class)",
            "backend": "faster-coco-eval",
            "backend_version": faster_coco_eval.__version__,
            "zoo_version": __version__,
            "reference": "pycocotools' COCOeval on the same ground truth (a COCO source: its own annotations; "
            "a run: data/val_coco.json) and results (predictions/coco_results.json) gives these numbers "
            "to 1e-9 (tests/test_eval_coco.py, tests/test_eval_coco_files.py)",
        }
        given = sum(1 for r in self._records for i in r.instances if i.coco is not None)
        conv["ground_truth"] = (
            f"{self.meta.format or 'COCO'} file annotations as given (area, iscrowd, bbox, segmentation, "
            "keypoints; no image files needed), zero-area ones included (scored, not trained on). A field an "
            "annotation lacks, on which pycocotools raises KeyError, is filled by zoo: iscrowd 0, area the "
            "polygons' shoelace area (an RLE's pixel count, else the box's w*h), bbox the box of the "
            "segmentation clipped to the image, segmentation the box as a polygon" if given else
            f"{self.meta.format or 'dataset'} shapes; area computed by zoo (polygon shoelace area, RLE pixel "
            "count, else box area)"
        )
        if self.iou_type == "segm":
            source = self.meta.format or "dataset"
            conv["polygon_raster"] = (
                f"pycocotools (the {source} file's own polygons, filled as pycocotools fills them)" if given
                else f"zoo.data.raster (labelme's rule, outline pixels included; the pixels masks are trained on) "
                f"for the {source} polygons" if self.polygon_raster == "zoo"
                else f"pycocotools (the {source} polygons passed to COCO as they are)"
            )
        if sigmas is not None:
            conv["oks_sigmas"] = dict(zip(self.meta.keypoint_names, sigmas))
            conv["oks_sigmas_source"] = sigma_source
        return conv

    def plot(self, out_dir: Path) -> list[Path]:
        from zoo.evaluation.plots import pr_curves

        if self._curves is None:
            self.evaluate()
        names = self.task.class_names(self.meta) if self.task is not None else self.meta.categories
        label = {"bbox": "box", "segm": "mask", "keypoints": "OKS"}[self.iou_type]
        precision, rec_thrs = self._curves
        return pr_curves(precision, rec_thrs, names, Path(out_dir), label)


def _mean_valid(a) -> float | None:
    valid = a[a > -1]
    return float(valid.mean()) if valid.size else None


def _num(v: float) -> float | None:
    return None if v == -1 else float(v)
