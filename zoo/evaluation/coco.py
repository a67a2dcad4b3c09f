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
* Equal scores rank as pycocotools ranks them (stable mergesort twice): within an image and
  category in the results' order, then across images in image-id order -- for ``zoo eval`` on
  a COCO file, that file's own ids (:func:`zoo.evaluation.results.in_coco_id_order`).
  Rounded scores (3 decimals is common) make ties the rule, and the order moves AP.
* Keypoint OKS sigmas: the dataset's (``oks_sigmas``, from ``zoo.yaml``) when given; COCO's
  when the keypoint names are the 17 COCO body points; otherwise :data:`DEFAULT_SIGMA` for
  every point.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from zoo import __version__
from zoo.dataset import Dataset, ImageRecord
from zoo.evaluation import bootstrap
from zoo.evaluation.base import Evaluator
from zoo.evaluation.batched_cocoeval import batched_cocoeval, images_only_coco
from zoo.errors import ZooError
from zoo.metrics import Metric, MetricsSchema
from zoo.predictions import InstancePredictions

BOX_STATS = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
KEYPOINT_STATS = ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]


def coco_schema(stats: list[str]) -> MetricsSchema:
    """The metrics of a COCO evaluation with summary ``stats``: AP first; the precision-type
    scores at the IoU thresholds head the tables, the size-range and recall stats stay in
    metrics.json's full list; ci95 of AP and AP50 (:func:`zoo.evaluation.bootstrap.coco_samples`)."""
    return MetricsSchema(scores=tuple(Metric(k) for k in stats), headline=("AP", "AP50", "AP75"),
                         per_class=("AP", "AP50"), per_class_count="instances", intervals=("AP", "AP50"))


BOX_SCHEMA = coco_schema(BOX_STATS)
KEYPOINT_SCHEMA = coco_schema(KEYPOINT_STATS)

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
    from zoo.data.raster import rasterise_polygons_rles

    size = {img["id"]: (img["height"], img["width"]) for img in gt["images"]}
    # a COCO file's own polygons stay polygons: pycocotools fills them by its rule
    given = {id(i.coco["segmentation"]) for r in dataset.images for i in r.instances
             if i.coco is not None and "segmentation" in i.coco}
    polygonal = [ann for ann in gt["annotations"] if isinstance(ann.get("segmentation"), list) and ann["segmentation"]
                 and id(ann["segmentation"]) not in given]
    # one batched rasterisation for all polygons: the slowest step of segm evaluation
    rles = rasterise_polygons_rles([(ann["segmentation"], *size[ann["image_id"]]) for ann in polygonal])
    for ann, rle in zip(polygonal, rles):
        ann["segmentation"] = rle
    return gt


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

    coco_gt, coco_dt = _coco_indexes(gt, results, iou_type, loaded)
    ev = batched_cocoeval()(coco_gt, coco_dt, iou_type, print_function=_quiet, kpt_oks_sigmas=sigmas,
                            rle_iou_max_workers=_iou_workers(), separate_eval=keep_matching)
    # faster-coco-eval keeps only categories with keypoint annotations; pin all of them so
    # per-class rows line up with the category list (absent ones stay -1, as in pycocotools).
    ev.params.catIds = sorted(cat_ids if cat_ids is not None else coco_gt.getCatIds())
    if sigmas is not None:
        ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=float)
    ev.evaluate()
    ev.accumulate()
    return ev


def _coco_indexes(gt: dict, results: list[dict], iou_type: str, loaded: bool):
    """faster-coco-eval ``COCO`` objects of the ground truth and the results, indexed no
    more than the evaluation will read."""
    from faster_coco_eval import COCO

    if loaded and iou_type in ("bbox", "segm"):
        # the batched _prepare reads the annotations straight from the dataset lists and only
        # images / categories through the index: skip indexing 100,000+ annotations twice
        coco_dt = {"images": list(gt["images"]), "annotations": results, "categories": copy.deepcopy(gt["categories"])}
        return images_only_coco(gt), images_only_coco(coco_dt)
    coco_gt = COCO(gt)
    if not loaded:
        return coco_gt, coco_gt.loadRes(results)
    # what loadRes does besides filling in the fields scoring_results already wrote
    coco_dt = COCO()
    coco_dt.dataset = {"images": list(coco_gt.dataset["images"]), "annotations": results,
                       "categories": copy.deepcopy(coco_gt.dataset["categories"])}
    coco_dt.createIndex()
    return coco_gt, coco_dt


def _iou_workers() -> int:
    """faster-coco-eval's IoU thread pool, scaled to the cores: on a machine with a couple of
    (shared) cores the pool costs more than it gives (measured in bench/bench_evaluator.py).
    (Box and mask IoUs are computed up front by the batched ``_prepare``; the pool then only
    hands them out.)"""
    return max(1, min(8, (os.cpu_count() or 1) // 2))


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


class GroundTruth:
    """The ground truth of a dataset's scored images as the COCO evaluator scores it: converted
    once, then handed to every evaluation of those images.

    ``zoo compare`` scores every backend's runs on the same val images (the paired verdict
    re-scores each run, the PR curves each backend), and a training run scores the same
    selection images every epoch: built once there and given to the evaluator
    (``task.evaluator(val, ground_truth=truth)``, or through
    :func:`zoo.predictions.score_predictions`), each COCO form (``bbox``; ``segm`` with its
    polygons rasterised, the dearest step; ``keypoints``) is converted on first use and kept on
    this value -- not in a module-level cache: it lives as long as its user holds it. Other
    evaluators (semantic, classify) ignore it.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self._coco: dict[tuple[str, str], dict[str, Any]] = {}

    def coco(self, iou_type: str, polygon_raster: str = "zoo") -> dict[str, Any]:
        """:func:`evaluation_ground_truth` of the dataset, converted on the first call.

        Each call gets annotation dicts of its own: faster-coco-eval writes into the ones it
        scores (``ignore``; ``rle`` for masks), and the kept conversion must stay as made.
        """
        key = (iou_type, polygon_raster if iou_type == "segm" else "")
        if key not in self._coco:
            self._coco[key] = evaluation_ground_truth(self.dataset, iou_type, polygon_raster)
        gt = self._coco[key]
        return {**gt, "annotations": [dict(a) for a in gt["annotations"]]}

    def covers(self, records: list[ImageRecord], meta: Dataset) -> bool:
        """Whether this is the ground truth of exactly ``records`` (the same objects, in order)
        under ``meta``'s vocabulary (categories, their ids, keypoints)."""
        images = self.dataset.images
        return (len(images) == len(records) and all(a is b for a, b in zip(images, records))
                and self.dataset.meta() == meta)


class CocoEvaluator(Evaluator):
    """COCO AP/AR for boxes (``iou_type="bbox"``), masks (``"segm"``) or keypoints (``"keypoints"``)."""

    def __init__(self, meta: Dataset, *, task=None, iou_type: str = "bbox", polygon_raster: str = "zoo",
                 box_ap: bool = True, ground_truth: GroundTruth | None = None, **options: Any):
        if iou_type not in IOU_TYPES:
            raise ValueError(f"iou_type must be one of {IOU_TYPES}, got {iou_type!r}")
        self.iou_type = iou_type
        #: the metrics it reports (COCO's summary for keypoints differs from boxes' and masks')
        self.schema = KEYPOINT_SCHEMA if iou_type == "keypoints" else BOX_SCHEMA
        self.polygon_raster = polygon_raster
        #: the images' ground truth converted once by the caller, used when it is that of the
        #: images processed; else theirs is converted at evaluate() and kept here, for a caller
        #: that scores the same images again (zoo.selection.Selection, every epoch)
        self.ground_truth = ground_truth
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
        gt = self._ground_truth().coco(self.iou_type, self.polygon_raster)
        results = self._results(gt, self.iou_type)
        sigmas, sigma_source = oks_sigmas(self.meta) if self.iou_type == "keypoints" else (None, None)
        ev = run_cocoeval(gt, results, self.iou_type, sigmas=sigmas, cat_ids=_category_ids(gt), loaded=True,
                          keep_matching=self.ci95)
        # only what plot() needs: keeping the COCOeval (its two COCO indexes, every annotation
        # and result dict) would make the collector walk all of them as soon as it is back on
        self._curves = ev.eval["precision"], ev.params.recThrs
        metrics: dict[str, Any] = {"main": self.schema.main, **self._summary(ev, gt)}
        metrics["images"] = len(self._records)
        metrics["detections"] = len(results)
        metrics["conventions"] = conventions(ev, self.meta, self._records, self.polygon_raster, sigmas, sigma_source)
        if self.ci95:
            metrics["ci95"], metrics["conventions"]["ci95"] = self._intervals(ev)
        if self.box_ap and self.iou_type != "bbox":
            metrics["bbox"] = self._box_ap(gt)
        return metrics

    def _ground_truth(self) -> GroundTruth:
        """The ground truth given, when it is that of the images processed; else theirs, made now."""
        given = self.ground_truth
        if given is None or not given.covers(self._records, self.meta):
            self.ground_truth = GroundTruth(replace(self.meta, images=list(self._records)))
        return self.ground_truth

    def _results(self, gt: dict, iou_type: str) -> list[dict[str, Any]]:
        """The predictions processed, as COCO results against ``gt``'s image and category ids."""
        image_ids = {r.id: img["id"] for r, img in zip(self._records, gt["images"])}
        return scoring_results(self._preds, image_ids, iou_type, self.meta.coco_category_ids())

    def _summary(self, ev, gt: dict) -> dict[str, Any]:
        """The named summary stats (``None`` where pycocotools says -1) and the per-class rows."""
        names = [m.key for m in self.schema.scores]
        return {**{k: _num(v) for k, v in zip(names, summary_stats(ev))}, "per_class": self._per_class(ev, gt)}

    def _box_ap(self, gt: dict) -> dict[str, Any]:
        """Box AP of the same detections: a mask or keypoint model's boxes, scored as a detector's."""
        box = run_cocoeval(gt, self._results(gt, "bbox"), "bbox", cat_ids=_category_ids(gt), loaded=True)
        out: dict[str, Any] = {k: _num(v) for k, v in zip(BOX_STATS, summary_stats(box))}
        out["per_class"] = {k: v["AP"] for k, v in self._per_class(box, gt).items()}
        return out

    def _intervals(self, ev) -> tuple[dict[str, list[float] | None], dict[str, Any]]:
        """Bootstrap intervals of AP and AP50 from the matching ``ev`` already made (over the
        records' groups when they have some), and their conventions entry."""
        # the per-image matching, kept (small arrays, not the COCOeval) for resampled()
        self._matching = bootstrap.coco_matching(ev), ev.params.recThrs
        # one image id per record, 1..N in processing order (GroundTruth): the records' groups line up
        return bootstrap.ci95(self.resampled, bootstrap.group_keys(self._records), len(ev._paramsEval.imgIds))

    def resampled(self, weights) -> dict[str, Any]:
        matching, rec_thrs = self._matching
        return bootstrap.coco_samples(matching, rec_thrs, weights)

    def _per_class(self, ev, gt: dict) -> dict[str, dict[str, Any]]:
        precision = ev.eval["precision"]  # [T, R, K, A, M]
        n_gt = _instances_per_category(gt, self.iou_type)
        name_of = {c["id"]: c["name"] for c in gt["categories"]}
        out = {}
        for k, cid in enumerate(ev.params.catIds):
            p = precision[:, :, k, 0, -1]  # all areas, most detections
            out[name_of[cid]] = {
                "AP": _mean_valid(p),
                "AP50": _mean_valid(p[0]),
                "AP75": _mean_valid(p[5]),
                "instances": n_gt.get(cid, 0),
            }
        return out

    def plot(self, out_dir: Path) -> list[Path]:
        from zoo.evaluation.plots import pr_curves

        if self._curves is None:
            self.evaluate()
        names = self.task.class_names(self.meta) if self.task is not None else self.meta.categories
        label = {"bbox": "box", "segm": "mask", "keypoints": "OKS"}[self.iou_type]
        precision, rec_thrs = self._curves
        return pr_curves(precision, rec_thrs, names, Path(out_dir), label)


def _category_ids(gt: dict) -> list[int]:
    return [c["id"] for c in gt["categories"]]


def _instances_per_category(gt: dict, iou_type: str) -> dict[int, int]:
    """The ground truth that counts, by category id: not crowd, and with a keypoint for OKS."""
    n_gt: dict[int, int] = {}
    for a in gt["annotations"]:
        if not a.get("iscrowd", 0) and (iou_type != "keypoints" or a.get("num_keypoints", 0) > 0):
            n_gt[a["category_id"]] = n_gt.get(a["category_id"], 0) + 1
    return n_gt


# -- conventions: how the numbers were made, written into every metrics dict ---------------------


def conventions(ev, meta: Dataset, records: list[ImageRecord], polygon_raster: str, sigmas,
                sigma_source) -> dict[str, Any]:
    """The ``conventions`` block of an evaluation ``ev`` of ``records``."""
    import faster_coco_eval

    p = ev.params
    iou_type = p.iouType
    conv: dict[str, Any] = {
        "iou_type": iou_type,
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
        "ties": "equal scores rank as pycocotools ranks them: per image and category in the results' order, "
        "then across images in the ground truth's image-id order (stable mergesort twice; rounded scores "
        "equal to pycocotools to 1e-12, tests/test_eval_ties.py)",
    }
    # annotations read from a COCO file are scored as the file gives them (Instance.coco)
    given = any(i.coco is not None for r in records for i in r.instances)
    conv["ground_truth"] = _ground_truth_note(meta.format, given)
    if iou_type == "segm":
        conv["polygon_raster"] = _polygon_raster_note(meta.format, given, polygon_raster)
    if sigmas is not None:
        conv["oks_sigmas"] = dict(zip(meta.keypoint_names, sigmas))
        conv["oks_sigmas_source"] = sigma_source
    return conv


def _ground_truth_note(source: str | None, given: bool) -> str:
    if given:
        return (f"{source or 'COCO'} file annotations as given (area, iscrowd, bbox, segmentation, "
                "keypoints; no image files needed), zero-area ones included (scored, not trained on). A field an "
                "annotation lacks, on which pycocotools raises KeyError, is filled by zoo: iscrowd 0, area the "
                "polygons' shoelace area (an RLE's pixel count, else the box's w*h), bbox the box of the "
                "segmentation clipped to the image, segmentation the box as a polygon")
    return (f"{source or 'dataset'} shapes; area computed by zoo (polygon shoelace area, RLE pixel "
            "count, else box area)")


def _polygon_raster_note(source: str | None, given: bool, polygon_raster: str) -> str:
    source = source or "dataset"
    if given:
        return f"pycocotools (the {source} file's own polygons, filled as pycocotools fills them)"
    if polygon_raster == "zoo":
        return (f"zoo.data.raster (labelme's rule, outline pixels included; the pixels masks are trained on) "
                f"for the {source} polygons")
    return f"pycocotools (the {source} polygons passed to COCO as they are)"


def _mean_valid(a) -> float | None:
    valid = a[a > -1]
    return float(valid.mean()) if valid.size else None


def _num(v: float) -> float | None:
    return None if v == -1 else float(v)
