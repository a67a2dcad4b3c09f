"""Canonical instance predictions <-> COCO results JSON (the list pycocotools' ``loadRes`` reads).

Conventions:

* ``bbox`` is ``[x, y, w, h]`` in pixels, **unrounded** (rounding boxes to whole pixels is a
  known source of mAP drift between tools);
* ``category_id`` is the canonical category index + 1 (the ids ``to_coco`` writes);
* ``image_id`` is the COCO image id of the record: by default ``1..N`` in dataset order,
  the numbering ``zoo.adapters.coco.to_coco`` uses;
* ``segmentation`` is the detection's RLE mask (``counts`` as str), written only when present;
* ``keypoints`` is the flat ``[x0, y0, s0, x1, y1, s1, ...]`` list, the third value being the
  keypoint's score (COCO's OKS ignores it), written only when present.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from zoo.dataset import Dataset
from zoo.errors import ZooError
from zoo.predictions import Detection, InstancePredictions


def default_image_ids(dataset: Dataset) -> dict[str, int]:
    """Record id -> COCO image id: ``1..N`` in dataset order (``to_coco``'s numbering)."""
    return {r.id: k + 1 for k, r in enumerate(dataset.images)}


def detection_to_coco(det: Detection, image_id: int) -> dict[str, Any]:
    """One COCO result dict for one canonical detection."""
    x0, y0, x1, y1 = det.bbox
    x0, y0 = float(x0), float(y0)
    out: dict[str, Any] = {
        "image_id": image_id,
        "category_id": int(det.category) + 1,
        "bbox": [x0, y0, float(x1) - x0, float(y1) - y0],
        "score": float(det.score),
    }
    mask = det.mask
    if mask is not None:
        counts = mask["counts"]
        if not isinstance(counts, str):  # bytes from pycocotools: JSON needs str
            h, w = mask["size"]
            mask = {"size": [int(h), int(w)], "counts": counts.decode("ascii")}
        out["segmentation"] = mask  # shared, not copied: COCO readers never modify it
    if det.keypoints is not None:
        out["keypoints"] = [float(v) for kp in det.keypoints for v in kp]
    return out


def predictions_to_coco_results(
    preds: Iterable[InstancePredictions], image_ids: Mapping[str, int]
) -> list[dict[str, Any]]:
    """COCO results list for canonical predictions; ``image_ids`` maps record id -> COCO id."""
    results = []
    for p in preds:
        try:
            coco_id = image_ids[p.image_id]
        except KeyError:
            raise ZooError(f"prediction for image '{p.image_id}', which is not in the ground truth") from None
        coco_id = int(coco_id)
        results += [detection_to_coco(d, coco_id) for d in p.detections]
    return results


def coco_results_to_predictions(
    results: list[dict[str, Any]],
    dataset: Dataset,
    image_ids: Mapping[int | str, str] | None = None,
    *,
    source: str = "results",
) -> list[InstancePredictions]:
    """Canonical predictions (one per dataset image, possibly empty) from a COCO results list.

    ``image_ids`` maps a result's ``image_id`` to a record id; by default ``1..N`` in dataset
    order. A string ``image_id`` equal to a record id is accepted as it is. ``source`` names
    the file in error messages.
    """
    if not isinstance(results, list):
        raise ZooError(f"{source}: a COCO results file is a JSON list of detections, got {type(results).__name__}")
    if image_ids is None:
        image_ids = {k + 1: r.id for k, r in enumerate(dataset.images)}
    record_ids = {r.id for r in dataset.images}
    by_image: dict[str, list[Detection]] = {r.id: [] for r in dataset.images}
    n_cats = len(dataset.categories)
    k_names = len(dataset.keypoint_names)
    for n, res in enumerate(results):
        where = f"{source}: result {n}"
        if not isinstance(res, dict):
            raise ZooError(f"{where}: expected an object, got {type(res).__name__}")
        try:
            raw_id, cat, score = res["image_id"], int(res["category_id"]), float(res.get("score", 1.0))
        except (KeyError, TypeError, ValueError) as e:
            raise ZooError(f"{where}: needs image_id, category_id and score ({e})") from None
        rid = image_ids.get(raw_id)
        if rid is None and isinstance(raw_id, str) and raw_id in record_ids:
            rid = raw_id
        if rid is None:
            raise ZooError(f"{where}: image_id {raw_id!r} matches no ground-truth image")
        if not 1 <= cat <= n_cats:
            raise ZooError(f"{where}: category_id {cat} outside 1..{n_cats} (ids are category index + 1)")
        mask = res.get("segmentation")
        if mask is not None and not (isinstance(mask, dict) and "counts" in mask):
            raise ZooError(f"{where}: segmentation must be an RLE dict with 'size' and 'counts'")
        bbox = res.get("bbox")
        if bbox is None and mask is not None:
            bbox = _rle_box(mask)
        if bbox is None or len(bbox) != 4:
            raise ZooError(f"{where}: needs a bbox [x, y, w, h]")
        x, y, w, h = (float(v) for v in bbox)
        kps = res.get("keypoints")
        keypoints = None
        if kps is not None:
            if len(kps) % 3 or (k_names and len(kps) != 3 * k_names):
                raise ZooError(f"{where}: {len(kps)} keypoint values, expected {3 * k_names} (x, y, score each)")
            keypoints = [(float(kps[i]), float(kps[i + 1]), float(kps[i + 2])) for i in range(0, len(kps), 3)]
        by_image[rid].append(Detection(cat - 1, score, (x, y, x + w, y + h), mask=mask, keypoints=keypoints))
    return [InstancePredictions(rid, dets) for rid, dets in by_image.items()]


def _rle_box(rle: dict) -> list[float]:
    from pycocotools import mask as mask_utils

    counts = rle["counts"]
    rle = {"size": rle["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return [float(v) for v in mask_utils.toBbox(rle)]
