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
* ``segm``: ground-truth polygons are scored as the pixels :mod:`zoo.raster` fills for them
  (labelme's rule, the pixels mask models are trained on), not pycocotools' own polygon
  scan-conversion (``polygon_raster="coco"`` restores that). Instance-seg and keypoint
  metrics also carry the box AP of the same detections under ``"bbox"``.
* A stat pycocotools reports as ``-1`` (nothing to measure: no ground truth in that area
  range) is ``None`` (JSON ``null``), never averaged in as a number.
* Keypoint OKS sigmas: the dataset's (``oks_sigmas``, from ``zoo.yaml``) when given; COCO's
  when the keypoint names are the 17 COCO body points; otherwise :data:`DEFAULT_SIGMA` for
  every point.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from zoo import __version__
from zoo.dataset import Dataset, ImageRecord
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
    """The COCO dict of ``dataset`` through the adapters' ``to_coco`` (the one conversion)."""
    from zoo.adapters.coco import to_coco

    return to_coco(dataset)


def evaluation_ground_truth(dataset: Dataset, iou_type: str, polygon_raster: str = "zoo") -> dict[str, Any]:
    """The COCO dict the evaluator scores against.

    For ``segm`` with ``polygon_raster="zoo"`` every polygon is replaced by the RLE of the
    pixels :mod:`zoo.raster` fills for it (labelme's rule, outline included) -- the same
    pixels semantic label maps and mask targets are made of. pycocotools' own polygon
    scan-conversion leaves most outline pixels out, which on small objects (a 10-pixel cell)
    costs a perfect mask ~10 points of AP. ``polygon_raster="coco"`` keeps the polygons, for
    numbers comparable with labelme2coco + pycocotools.
    """
    gt = coco_ground_truth(dataset)
    if iou_type != "segm" or polygon_raster == "coco":
        return gt
    if polygon_raster != "zoo":
        raise ValueError(f"polygon_raster must be 'zoo' or 'coco', not {polygon_raster!r}")
    size = {img["id"]: (img["height"], img["width"]) for img in gt["images"]}
    for ann in gt["annotations"]:
        seg = ann.get("segmentation")
        if isinstance(seg, list) and seg:
            ann["segmentation"] = polygons_rle(seg, *size[ann["image_id"]])
    return gt


def polygons_rle(polygons: list[list[float]], height: int, width: int) -> dict:
    """``mask_to_rle(polygons_mask(polygons, height, width))`` of :mod:`zoo.raster`, 2-3x faster.

    The same PIL calls with the same origin (so the same pixels, checked on thousands of
    random polygons in tests/test_eval_coco.py), on a canvas that ends where the shape does,
    and the RLE is built from the columns the shape covers instead of encoding the image. Scoring masks rasterises
    every GT polygon, which made this the slowest step of ``segm`` evaluation.
    """
    import numpy as np
    from PIL import Image, ImageDraw
    from pycocotools import mask as mask_utils

    # The canvas stops just past the shape's right and bottom ends: PIL clips there without
    # moving any pixel (only a shift of the origin would), so the pixels are the full image's.
    xs = [v for p in polygons if len(p) >= 4 for v in p[0::2]]
    ys = [v for p in polygons if len(p) >= 4 for v in p[1::2]]
    cw = min(width, max(1, math.ceil(max(xs, default=0)) + 3))
    ch = min(height, max(1, math.ceil(max(ys, default=0)) + 3))
    img = Image.new("L", (cw, ch), 0)
    draw = ImageDraw.Draw(img)
    for poly in polygons:  # zoo.raster.polygons_mask's rule: outline included, 2 points a line
        if len(poly) >= 6:
            draw.polygon(list(zip(poly[0::2], poly[1::2])), fill=1, outline=1)
        elif len(poly) >= 4:
            draw.line(list(zip(poly[0::2], poly[1::2])), fill=1)
    box = img.getbbox()
    n = height * width
    if box is None:
        counts = [n]
    else:
        x0, y0, _, y1 = box
        # Transposed by PIL so a C-order scan walks columns (COCO RLE's order), with one
        # zero appended to every column so no run crosses into the next one; then only the
        # run boundaries (few) are mapped back to whole-image positions.
        cols = np.asarray(img.crop(box).transpose(Image.Transpose.TRANSPOSE))
        bh = y1 - y0
        padded = np.zeros((cols.shape[0], bh + 1), np.int8)
        padded[:, :bh] = cols
        t = np.flatnonzero(np.diff(padded.ravel(), prepend=np.int8(0)))
        q, r = np.divmod(t, bh + 1)
        pos = (q + x0).astype(np.int64) * height + (r + y0)
        starts, ends = pos[0::2], pos[1::2]
        joined = starts[1:] == ends[:-1]  # a run down to the bottom edge going on at the top
        if joined.any():
            starts = np.concatenate((starts[:1], starts[1:][~joined]))
            ends = np.concatenate((ends[:-1][~joined], ends[-1:]))
        c = np.empty(2 * len(starts) + 1, np.int64)  # zeros, ones, zeros, ..., zeros
        c[0] = starts[0]
        c[1::2] = ends - starts
        c[2:-1:2] = starts[1:] - ends[:-1]
        c[-1] = n - ends[-1]
        counts = (c if c[-1] else c[:-1]).tolist()
    rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def run_cocoeval(gt: dict, results: list[dict], iou_type: str, *, sigmas=None, cat_ids=None):
    """faster-coco-eval's COCOeval, evaluated and accumulated (not summarised).

    ``gt`` and ``results`` are not copied; ``results`` is modified (``loadRes`` adds ids and
    areas), so pass a list made for this call.
    """
    import numpy as np
    from faster_coco_eval import COCO, COCOeval_faster

    coco_gt = COCO(gt)
    coco_dt = coco_gt.loadRes(results)
    # Mask IoUs run in a thread pool; on a machine with a couple of (shared) cores the pool
    # costs more than it gives (measured in bench/bench_evaluator.py), so scale it to the cores.
    workers = max(1, min(8, (os.cpu_count() or 1) // 2))
    ev = COCOeval_faster(coco_gt, coco_dt, iou_type, print_function=_quiet, kpt_oks_sigmas=sigmas,
                         rle_iou_max_workers=workers)
    # faster-coco-eval keeps only categories with keypoint annotations; pin all of them so
    # per-class rows line up with the category list (absent ones stay -1, as in pycocotools).
    ev.params.catIds = sorted(cat_ids if cat_ids is not None else coco_gt.getCatIds())
    if sigmas is not None:
        ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=float)
    ev.evaluate()
    ev.accumulate()
    return ev


def summary_stats(ev) -> list[float]:
    """The standard COCO summary (pycocotools' ``stats`` order) of an accumulated evaluation."""
    ev.summarize()
    n = len(KEYPOINT_STATS) if ev.params.iouType == "keypoints" else len(BOX_STATS)
    return [float(s) for s in ev.all_stats[:n]]


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
        self._eval = None
        super().__init__(meta, task=task, **options)

    def reset(self) -> None:
        self._records: list[ImageRecord] = []
        self._preds: list[InstancePredictions] = []
        self._eval = None

    def process(self, gt: ImageRecord, pred: InstancePredictions | None) -> None:
        if pred is None:
            pred = InstancePredictions(gt.id, [])
        elif pred.image_id != gt.id:
            raise ValueError(f"prediction for '{pred.image_id}' given with ground truth '{gt.id}'")
        self._records.append(gt)
        self._preds.append(pred)

    def evaluate(self) -> dict[str, Any]:
        from zoo.evaluation.results import predictions_to_coco_results

        if not self._records:
            raise ZooError("nothing to evaluate: no images were processed")
        dataset = replace(self.meta, images=list(self._records))
        gt = evaluation_ground_truth(dataset, self.iou_type, self.polygon_raster)
        image_ids = {r.id: img["id"] for r, img in zip(self._records, gt["images"])}
        results = predictions_to_coco_results(self._preds, image_ids)
        sigmas, sigma_source = (None, None)
        if self.iou_type == "keypoints":
            sigmas, sigma_source = oks_sigmas(self.meta)
        cat_ids = [c["id"] for c in gt["categories"]]
        ev = run_cocoeval(gt, results, self.iou_type, sigmas=sigmas, cat_ids=cat_ids)
        stats = summary_stats(ev)
        names = KEYPOINT_STATS if self.iou_type == "keypoints" else BOX_STATS
        self._eval = ev
        metrics: dict[str, Any] = {"main": "AP"}
        metrics.update({k: _num(v) for k, v in zip(names, stats)})
        metrics["per_class"] = self._per_class(ev, gt)
        metrics["images"] = len(self._records)
        metrics["detections"] = len(results)
        metrics["conventions"] = self._conventions(ev, sigmas, sigma_source)
        if self.box_ap and self.iou_type != "bbox":
            box = run_cocoeval(gt, predictions_to_coco_results(self._preds, image_ids), "bbox", cat_ids=cat_ids)
            metrics["bbox"] = {k: _num(v) for k, v in zip(BOX_STATS, summary_stats(box))}
            metrics["bbox"]["per_class"] = {k: v["AP"] for k, v in self._per_class(box, gt).items()}
        return metrics

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
            "reference": "equal to pycocotools to 1e-9 (tests/test_eval_coco.py)",
        }
        if self.iou_type == "segm":
            conv["polygon_raster"] = (
                "zoo.raster (labelme's rule, outline pixels included; the pixels masks are trained on)"
                if self.polygon_raster == "zoo" else "pycocotools (polygons passed to COCO as they are)"
            )
        if sigmas is not None:
            conv["oks_sigmas"] = dict(zip(self.meta.keypoint_names, sigmas))
            conv["oks_sigmas_source"] = sigma_source
        return conv

    def plot(self, out_dir: Path) -> list[Path]:
        from zoo.evaluation.plots import pr_curves

        if self._eval is None:
            self.evaluate()
        names = self.task.class_names(self.meta) if self.task is not None else self.meta.categories
        label = {"bbox": "box", "segm": "mask", "keypoints": "OKS"}[self.iou_type]
        return pr_curves(self._eval.eval["precision"], self._eval.params.recThrs, names, Path(out_dir), label)


def _mean_valid(a) -> float | None:
    valid = a[a > -1]
    return float(valid.mean()) if valid.size else None


def _num(v: float) -> float | None:
    return None if v == -1 else float(v)
